//! `cargo xtask gate`: the release verdict, from a folder of evidence.
//!
//! Evidence is data that other commands write, pass or fail, so the gate decides from what
//! happened rather than re-running anything:
//!
//! | file (any depth) | written by | says |
//! |---|---|---|
//! | `report.json` | `cargo xtask e2e` (a matrix cell) | the cell's scenarios, edge budgets, latencies |
//! | `not-run.json` | `cargo xtask matrix run` | a cell this machine could not run, and why |
//! | `*.repro.json` | `cargo xtask bundle repro` | two builds of one bundle and their sha256 |
//! | `golden-check.json` | `cargo xtask render --check --record` | whether the golden snapshots were clean |

use anyhow::{Context, Result};
use camino::Utf8Path;
use serde::{Deserialize, Serialize};

use crate::stack::Arch;

/// Version of every record's format.
pub const SCHEMA: u32 = 1;

/// `render --check --record`: the golden snapshots against the renderers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct GoldenRecord {
    pub schema: u32,
    pub clean: bool,
    /// Rendered files compared.
    pub files: usize,
    /// Each drifted, missing or unreferenced snapshot.
    pub problems: Vec<String>,
}

/// `bundle repro`: one bundle built twice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReproRecord {
    pub schema: u32,
    pub profile: String,
    pub arch: Arch,
    /// The archive's sha256 of each build.
    pub builds: Vec<String>,
    pub files: usize,
    /// Files whose sha256 differs between the builds.
    pub differing: Vec<String>,
}

impl ReproRecord {
    pub fn reproducible(&self) -> bool {
        self.builds.len() >= 2
            && self.builds.iter().all(|b| !b.is_empty() && *b == self.builds[0])
            && self.differing.is_empty()
    }
}

/// Write a record as pretty JSON, atomically.
pub fn write_record<T: Serialize>(path: &Utf8Path, record: &T) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
    }
    let text = format!("{}\n", serde_json::to_string_pretty(record)?);
    crate::atomic::write(path, text.as_bytes(), false)
}
