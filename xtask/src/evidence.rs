//! Evidence: the records commands write, pass or fail, for `cargo xtask gate` to judge.
//!
//! | record | type | written by |
//! |---|---|---|
//! | `report.json` | [`crate::e2e::report::Report`] (its own module; read here through [`Record`]) | `cargo xtask e2e` |
//! | `not-run.json` | [`NotRunRecord`] | `cargo xtask matrix run` |
//! | `*.repro.json` | [`ReproRecord`] | `cargo xtask bundle repro` |
//! | `golden-check.json` | [`GoldenRecord`] | `cargo xtask render --check --record` |
//!
//! Every record carries a `schema` version, first in the file. [`read`] refuses a record of
//! another version (naming the file, the version found and the one this tool reads) and a record
//! that claims nothing ([`Record::refusal`]): evidence is never accepted without checking what it
//! says. This module sits at the bottom of the import order (it knows the stack's types and
//! nothing above them), so render, bundle, e2e, matrix and gate all write and read through it.

use anyhow::{Context, Result, bail};
use camino::Utf8Path;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::stack::{Arch, Cell};

/// Version of [`GoldenRecord`]'s format.
pub const GOLDEN_SCHEMA: u32 = 1;
/// Version of [`ReproRecord`]'s format.
pub const REPRO_SCHEMA: u32 = 1;
/// Version of [`NotRunRecord`]'s format.
pub const NOT_RUN_SCHEMA: u32 = 1;

/// The file name of a not-run record.
pub const NOT_RUN: &str = "not-run.json";
/// The file name of an e2e report.
pub const REPORT: &str = "report.json";
/// The file name of the golden-check record.
pub const GOLDEN: &str = "golden-check.json";
/// How a reproducibility record's file name ends.
pub const REPRO_SUFFIX: &str = ".repro.json";

/// A versioned record the gate reads.
pub trait Record: DeserializeOwned {
    /// What it is, for messages (`e2e report`, `not-run record`).
    const KIND: &'static str;
    /// The version this tool reads and writes.
    const SCHEMA: u32;
    /// What to run to write one this tool reads.
    const FIX: &'static str;
    /// Why the record proves nothing, if it does not: it claims nothing, or contradicts itself.
    fn refusal(&self) -> Option<String>;
}

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

impl Record for GoldenRecord {
    const KIND: &'static str = "golden-check record";
    const SCHEMA: u32 = GOLDEN_SCHEMA;
    const FIX: &'static str = "cargo xtask render --check --record golden-check.json";
    fn refusal(&self) -> Option<String> {
        if self.files == 0 {
            Some("no files were compared".into())
        } else if self.clean && !self.problems.is_empty() {
            Some(format!("clean, yet it lists {} problem(s)", self.problems.len()))
        } else if !self.clean && self.problems.is_empty() {
            Some("not clean, yet it lists no problem".into())
        } else {
            None
        }
    }
}

/// `bundle repro`: one bundle built twice.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReproRecord {
    pub schema: u32,
    pub profile: String,
    pub arch: Arch,
    /// The archive's digest of each build, `sha256:<64 hex>` as `bundle repro` writes it.
    pub builds: Vec<String>,
    /// Files of the first build compared with the second.
    pub files: usize,
    /// Files whose sha256 differs between the builds.
    pub differing: Vec<String>,
}

impl ReproRecord {
    /// Two builds with the same archive digest and no differing file.
    pub fn reproducible(&self) -> bool {
        self.refusal().is_none() && self.builds.iter().all(|b| *b == self.builds[0]) && self.differing.is_empty()
    }
}

impl Record for ReproRecord {
    const KIND: &'static str = "reproducibility record";
    const SCHEMA: u32 = REPRO_SCHEMA;
    const FIX: &'static str = "cargo xtask bundle repro --profile <profile> --arch <arch>";
    fn refusal(&self) -> Option<String> {
        let mut why = Vec::new();
        if self.builds.len() < 2 {
            why.push(format!("{} build, two are compared", self.builds.len()));
        }
        // The form `bundle repro` writes and the lock's digests have: `sha256:` and 64 lowercase hex.
        let not_sha256: std::collections::BTreeSet<&String> =
            self.builds.iter().filter(|b| crate::stack::Digest::try_from(b.to_string()).is_err()).collect();
        for b in not_sha256 {
            why.push(format!("build {b:?} is not a sha256 digest (`sha256:` and 64 lowercase hex digits)"));
        }
        if self.files == 0 {
            why.push("no files were compared (`files: 0`)".into());
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

/// `matrix run`: a cell this machine could not run, and why (`cells/<id>/not-run.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NotRunRecord {
    pub schema: u32,
    pub cell: Cell,
    pub reason: String,
}

impl NotRunRecord {
    pub fn new(cell: Cell, reason: String) -> NotRunRecord {
        NotRunRecord { schema: NOT_RUN_SCHEMA, cell, reason }
    }
}

impl Record for NotRunRecord {
    const KIND: &'static str = "not-run record";
    const SCHEMA: u32 = NOT_RUN_SCHEMA;
    const FIX: &'static str = "cargo xtask matrix run";
    fn refusal(&self) -> Option<String> {
        self.reason.trim().is_empty().then(|| "no reason given".into())
    }
}

/// Write a record as pretty JSON, atomically (creating its folder).
pub fn write_record<T: Serialize>(path: &Utf8Path, record: &T) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
    }
    let text = format!("{}\n", serde_json::to_string_pretty(record)?);
    crate::atomic::write(path, text.as_bytes(), false)
}

/// Read a `kind` of version `schema` from `path`: the version is checked before anything else,
/// and another one is refused naming both and what to run (`fix`).
pub fn read_versioned<T: DeserializeOwned>(path: &Utf8Path, kind: &str, schema: u32, fix: &str) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let value: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{path}: not JSON"))?;
    match value.get("schema").and_then(serde_json::Value::as_u64) {
        Some(found) if found == u64::from(schema) => {}
        Some(found) => bail!(
            "{path}: schema {found}, this tool reads schema {schema}; re-run `{fix}` with this tool, or read it with \
             the tool version that wrote it"
        ),
        None => bail!("{path}: field `schema` missing or not a number: not a {kind} of any version"),
    }
    // The field that is wrong is named (`backend: unknown variant "x", expected ...`).
    serde_path_to_error::deserialize(value)
        .map_err(|e| anyhow::anyhow!("{path}: not a schema {schema} {kind}: {}: {}", e.path(), e.inner()))
}

/// Read a record: its schema checked ([`read_versioned`]), then refused if it claims nothing
/// ([`Record::refusal`]). Every error names `path`.
pub fn read<T: Record>(path: &Utf8Path) -> Result<T> {
    let record: T = read_versioned(path, T::KIND, T::SCHEMA, T::FIX)?;
    if let Some(why) = record.refusal() {
        bail!("{path}: refused: the {} proves nothing: {why}", T::KIND);
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    /// A report whose axis is not one this tool knows is refused naming the field.
    #[test]
    fn a_wrong_field_is_named() {
        let good = crate::paths::fixtures_dir().join("gate/good/cells/compose-local-amd64/report.json");
        let mut v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(good).unwrap()).unwrap();
        v["backend"] = "kubeedge".into();
        let dir = tempfile::tempdir().unwrap();
        let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("report.json");
        std::fs::write(&path, v.to_string()).unwrap();
        let e = format!("{:#}", super::read::<crate::e2e::report::Report>(&path).unwrap_err());
        assert!(e.contains("report.json") && e.contains("backend: unknown variant `kubeedge`"), "{e}");
    }
}
