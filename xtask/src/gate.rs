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

// ---- the gate ----

use std::collections::BTreeSet;

use anyhow::bail;
use camino::Utf8PathBuf;

use crate::e2e::report::Outcome;
use crate::stack::{Cell, CellPattern, Stack, Subset};

/// The release verdict from a folder of evidence.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Folder of evidence, searched at any depth: a CI run's artifacts, or `target/matrix/<subset>`
    /// with the records beside it.
    #[arg(long, value_name = "DIR")]
    pub reports: Utf8PathBuf,
    /// The gate policy (default: ci/gate.toml).
    #[arg(long, value_name = "FILE")]
    pub policy: Option<Utf8PathBuf>,
    /// Where the verdict goes (default: DIR/gate-verdict.json and DIR/gate-verdict.md).
    #[arg(long, value_name = "DIR")]
    pub out: Option<Utf8PathBuf>,
}

/// What a release needs (`ci/gate.toml`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// The subset of the matrix the release is judged on.
    #[serde(default = "pr")]
    pub subset: Subset,
    /// Cells that must have passed (a cell that did not run fails); empty: every cell of the
    /// subset that is not experimental.
    #[serde(default)]
    pub required: Vec<CellPattern>,
    /// Each required cell's bundle has a reproducibility record of two identical builds.
    #[serde(default = "yes")]
    pub reproducible_bundles: bool,
    /// The golden-check record says the snapshots were clean.
    #[serde(default = "yes")]
    pub golden_clean: bool,
    /// No enforced edge budget was exceeded, or left unmeasured, in any cell's report.
    #[serde(default = "yes")]
    pub edge_budgets: bool,
}

fn pr() -> Subset {
    Subset::Pr
}

fn yes() -> bool {
    true
}

/// One check of the verdict.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// What it looked at, when it passed; why it failed, when it did.
    pub reasons: Vec<String>,
}

/// The release verdict (`gate-verdict.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    pub schema: u32,
    pub passed: bool,
    pub subset: Subset,
    pub required: Vec<String>,
    pub checks: Vec<Check>,
}

impl Verdict {
    /// Every reason a failed check gives.
    pub fn failures(&self) -> Vec<String> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .flat_map(|c| c.reasons.iter().map(move |r| format!("{}: {r}", c.name)))
            .collect()
    }

    pub fn markdown(&self) -> String {
        let mut s = format!(
            "# {} release gate: {}\n\nSubset `{}`; required cells: {}.\n\n",
            if self.passed { "✅" } else { "❌" },
            if self.passed { "passed" } else { "failed" },
            self.subset.as_str(),
            if self.required.is_empty() {
                "none".to_string()
            } else {
                self.required.iter().map(|r| format!("`{r}`")).collect::<Vec<_>>().join(", ")
            }
        );
        for c in &self.checks {
            s.push_str(&format!("- {} {}\n", if c.passed { "✅" } else { "❌" }, c.name));
            for r in &c.reasons {
                s.push_str(&format!("  - {}\n", r.replace('\n', " ")));
            }
        }
        s
    }
}

/// Read a policy file; errors name the file, line and field.
pub fn load_policy(path: &Utf8Path) -> Result<Policy> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the gate policy {path}"))?;
    toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| text[..s.start].matches('\n').count() + 1).unwrap_or(0);
        anyhow::anyhow!("{path}:{line}: {}", e.message())
    })
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Utf8Path) -> Result<T> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    serde_json::from_str(&text).with_context(|| format!("{path}: not a record this tool reads (schema {SCHEMA})"))
}

/// The verdict of `policy` on the evidence under `dir`, for the cells of `stack`. Reads `dir`
/// only; decides from what the evidence says, runs nothing.
pub fn decide(stack: &Stack, policy: &Policy, dir: &Utf8Path) -> Result<Verdict> {
    let cells = stack.subset(policy.subset);
    for (i, p) in policy.required.iter().enumerate() {
        if !cells.iter().any(|c| p.matches(c)) {
            bail!("the gate policy's required[{i}] {p} selects no cell of the {} subset", policy.subset.as_str());
        }
    }
    let required: Vec<Cell> = cells
        .iter()
        .filter(|c| {
            if policy.required.is_empty() {
                !stack.is_experimental(c)
            } else {
                policy.required.iter().any(|p| p.matches(c))
            }
        })
        .cloned()
        .collect();
    let found = crate::matrix::find(dir)?;
    let rel = |p: &Utf8Path| p.strip_prefix(dir).unwrap_or(p).to_string();
    let mut checks = Vec::new();

    // Required cells passed.
    let mut reasons = found.unreadable.iter().map(|u| format!("unreadable: {u}")).collect::<Vec<_>>();
    let mut ok = Vec::new();
    for cell in &required {
        match (found.reports.get(cell), found.not_run.get(cell)) {
            (Some((path, r)), _) if r.outcome() == Outcome::Passed => ok.push(format!("{cell}: passed ({path})")),
            (Some((path, r)), _) => {
                let failing: Vec<String> = r
                    .scenarios
                    .iter()
                    .filter(|s| s.status == crate::e2e::report::Status::Failed)
                    .map(|s| {
                        let step = s.steps.iter().find(|x| x.status == crate::e2e::report::Status::Failed);
                        format!("{}{}", s.name, step.map(|x| format!(" / {}", x.name)).unwrap_or_default())
                    })
                    .collect();
                let budgets = r.counts();
                let why = if failing.is_empty() {
                    format!(
                        "{} budget(s) exceeded, {} not measured",
                        budgets.budgets_exceeded, budgets.budgets_unmeasured
                    )
                } else {
                    failing.join(", ")
                };
                reasons.push(format!("required cell {cell} failed: {why} ({path})"));
            }
            (None, Some(why)) => reasons.push(format!("required cell {cell} did not run: {why}")),
            (None, None) => reasons.push(format!("required cell {cell} did not run: no report of it under {dir}")),
        }
    }
    if required.is_empty() {
        // Nothing required would pass every release without a single cell having run.
        reasons.push(format!(
            "no cell is required: every cell of the {} subset is experimental and the policy names none",
            policy.subset.as_str()
        ));
    }
    checks.push(Check {
        name: "required cells passed".into(),
        passed: reasons.is_empty(),
        reasons: if reasons.is_empty() { ok } else { reasons },
    });

    // Bundles reproducible.
    if policy.reproducible_bundles {
        let mut records = Vec::new();
        let mut reasons = Vec::new();
        for path in crate::matrix::files_under(dir, |n| n.ends_with(".repro.json"))? {
            match read_json::<ReproRecord>(&path) {
                Ok(r) => records.push((rel(&path), r)),
                Err(e) => reasons.push(format!("unreadable: {e:#}")),
            }
        }
        let bundles: BTreeSet<(String, crate::stack::Arch)> =
            required.iter().map(|c| (c.profile.clone(), c.arch)).collect();
        let mut ok = Vec::new();
        for (profile, arch) in &bundles {
            let of: Vec<&(String, ReproRecord)> =
                records.iter().filter(|(_, r)| &r.profile == profile && r.arch == *arch).collect();
            if of.is_empty() {
                reasons.push(format!(
                    "no reproducibility record of the {profile} bundle for {arch}: run `cargo xtask bundle repro --profile {profile} --arch {arch}`"
                ));
            }
            for (path, r) in of {
                if r.reproducible() {
                    ok.push(format!(
                        "{profile} {arch}: two builds, {} files, archive {} ({path})",
                        r.files, r.builds[0]
                    ));
                } else {
                    reasons.push(format!(
                        "the {profile} bundle for {arch} is not reproducible: builds {}{} ({path})",
                        r.builds.join(" and "),
                        if r.differing.is_empty() {
                            String::new()
                        } else {
                            format!("; files that differ: {}", r.differing.join(", "))
                        }
                    ));
                }
            }
        }
        checks.push(Check {
            name: "bundles reproducible".into(),
            passed: reasons.is_empty(),
            reasons: if reasons.is_empty() { ok } else { reasons },
        });
    }

    // Golden snapshots clean.
    if policy.golden_clean {
        let records = crate::matrix::files_under(dir, |n| n == "golden-check.json")?;
        let (passed, reasons) = match records.as_slice() {
            [] => (
                false,
                vec![format!(
                    "no golden-check record under {dir}: run `cargo xtask render --check --record golden-check.json`"
                )],
            ),
            paths => {
                let mut passed = true;
                let mut reasons = Vec::new();
                for path in paths {
                    match read_json::<GoldenRecord>(path) {
                        Ok(r) if r.clean => {
                            reasons.push(format!("{} rendered files match golden/ ({})", r.files, rel(path)))
                        }
                        Ok(r) => {
                            passed = false;
                            reasons.push(format!(
                                "golden snapshots are stale ({}): {}; run `cargo xtask render --bless`, review and commit golden/",
                                rel(path),
                                r.problems.join("; ")
                            ));
                        }
                        Err(e) => {
                            passed = false;
                            reasons.push(format!("unreadable: {e:#}"));
                        }
                    }
                }
                (passed, reasons)
            }
        };
        checks.push(Check { name: "golden snapshots clean".into(), passed, reasons });
    }

    // Edge budgets met, in every report of the subset's cells.
    if policy.edge_budgets {
        let mut reasons = Vec::new();
        let mut within = 0;
        for (cell, (path, r)) in found.reports.iter().filter(|(c, _)| cells.contains(c)) {
            for series in &r.resources {
                let sum = series.summary();
                match sum.within_budget {
                    Some(true) => within += 1,
                    Some(false) => {
                        let mem = sum
                            .memory_bytes
                            .map(|m| format!("memory max {:.1} MiB", m.max as f64 / 1048576.0))
                            .unwrap_or_default();
                        let budget = series
                            .budget_memory_bytes
                            .map(|b| format!("{:.0} MiB", b as f64 / 1048576.0))
                            .unwrap_or_default();
                        let cpu = sum.cpu_millicores.map(|c| format!("CPU p95 {:.1} m", c.p95)).unwrap_or_default();
                        reasons.push(format!(
                            "{cell}: {} on {} over its budget (memory {budget}, CPU {} m): {mem}, {cpu} ({path})",
                            series.component,
                            series.node,
                            series.budget_cpu_millicores.unwrap_or_default()
                        ));
                    }
                    None if series.has_budget() && series.samples.is_empty() => {
                        reasons.push(format!(
                            "{cell}: {} on {} was not measured (no sample) ({path})",
                            series.component, series.node
                        ));
                    }
                    None => {}
                }
            }
        }
        if within == 0 && reasons.is_empty() {
            reasons.push(
                "no edge series was measured in any report of the subset: nothing to hold the budgets against".into(),
            );
        }
        let ok = vec![format!("{within} edge series within their budgets")];
        checks.push(Check {
            name: "edge budgets met".into(),
            passed: reasons.is_empty(),
            reasons: if reasons.is_empty() { ok } else { reasons },
        });
    }

    Ok(Verdict {
        schema: SCHEMA,
        passed: checks.iter().all(|c| c.passed),
        subset: policy.subset,
        required: required.iter().map(|c| c.id()).collect(),
        checks,
    })
}

pub fn run(args: Args) -> Result<()> {
    let stack = crate::stack::load(&crate::paths::stack_file())?;
    let policy_path = args.policy.clone().unwrap_or_else(|| crate::paths::root().join("ci").join("gate.toml"));
    let policy = load_policy(&policy_path)?;
    let verdict = decide(&stack, &policy, &args.reports)?;
    let out = args.out.clone().unwrap_or_else(|| args.reports.clone());
    write_record(&out.join("gate-verdict.json"), &verdict)?;
    crate::atomic::write(&out.join("gate-verdict.md"), verdict.markdown().as_bytes(), false)?;
    crate::e2e::report::append_step_summary(&out.join("gate-verdict.md"));
    for c in &verdict.checks {
        crate::note!("gate: {} {}", if c.passed { "ok  " } else { "FAIL" }, c.name);
        for r in &c.reasons {
            crate::note!("        {r}");
        }
    }
    if !verdict.passed {
        bail!(
            "the release gate failed ({} reasons); verdict in {}",
            verdict.failures().len(),
            out.join("gate-verdict.json")
        );
    }
    crate::note!("gate: passed; verdict in {}", out.join("gate-verdict.json"));
    Ok(())
}
