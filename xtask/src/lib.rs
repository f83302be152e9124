//! `cargo xtask`: the reproducible build-and-test harness for kubeprepare's
//! offline observability platform. See ARCHITECTURE.md for the map.

pub mod paths;
pub mod stack;
