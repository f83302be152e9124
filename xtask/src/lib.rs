//! `cargo xtask`: the reproducible build-and-test harness for kubeprepare's
//! offline observability platform. See ARCHITECTURE.md for the map.

pub mod archive;
pub mod atomic;
pub mod bench;
pub mod bundle;
pub mod cache;
pub mod charts;
pub mod ci;
pub mod cli;
pub mod containerd;
pub mod e2e;
pub mod evidence;
pub mod fetch;
pub mod fixtures;
pub mod gate;
pub mod golden;
pub mod lock;
pub mod matrix;
pub mod oci;
pub mod out;
pub mod paths;
pub mod process;
pub mod registry;
pub mod render;
pub mod stack;
pub mod tools;
pub mod validate;
