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
//!
//! The record types and their reading live in [`crate::evidence`]: every record's schema is
//! checked, and a record that claims nothing (no scenarios, no files, digests that are not
//! sha256, fewer than two builds) is refused. Refused evidence fails the gate with its reason;
//! it is never skipped. A required cell passes only if every report of it (all are judged, none
//! is preferred) ran and passed every scenario required of it (see [`required_scenarios`]).

use std::collections::BTreeSet;

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::e2e::report::{Outcome, Report, Status};
use crate::e2e::scenario::Scenario;
use crate::evidence::{GOLDEN, GoldenRecord, REPRO_SUFFIX, ReproRecord};
use crate::stack::{Cell, CellPattern, Stack, Subset};

/// Version of the verdict's format (`gate-verdict.json`).
pub const SCHEMA: u32 = 1;

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
    /// The scenarios (their `name:`) each required cell matching a pattern must have run and
    /// passed. A cell no entry matches: every scenario whose `requires` its bundle provides.
    #[serde(default)]
    pub scenarios: Vec<RequiredScenarios>,
    /// Each required cell's bundle has a reproducibility record of two identical builds.
    #[serde(default = "yes")]
    pub reproducible_bundles: bool,
    /// The golden-check record says the snapshots were clean.
    #[serde(default = "yes")]
    pub golden_clean: bool,
    /// No enforced edge budget (memory, CPU, link traffic) was exceeded, or left unmeasured, in
    /// any cell's report.
    #[serde(default = "yes")]
    pub edge_budgets: bool,
}

/// Scenarios required of the cells a pattern selects (`ci/gate.toml` `scenarios`).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RequiredScenarios {
    pub cells: CellPattern,
    pub names: Vec<String>,
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

/// What the tier of `cell` provides to scenarios, as the e2e decides "not run: <what> not in
/// bundle" ([`crate::e2e::compose::plan::Plan::provides`], [`crate::e2e::cluster::tier::provides`]):
/// computed from the stack, not from a report.
pub fn provides(stack: &Stack, cell: &Cell) -> Result<BTreeSet<String>> {
    if cell.backend == crate::stack::Backend::Kubernetes {
        return crate::e2e::cluster::tier::provides(stack, &cell.profile);
    }
    // The e2e's own plan, so the gate and the run cannot disagree; what it provides depends on
    // the profile's components only, not on the edge count or the run id given here.
    let plan =
        crate::e2e::compose::plan::plan(stack, &cell.profile, cell.arch, "gate", 2, Utf8PathBuf::new(), Vec::new())
            .with_context(|| format!("planning {cell} to know what its bundle provides"))?;
    Ok(plan.provides)
}

/// The scenarios `cell` must have run and passed, in file order: the names of the policy's
/// `scenarios` entries whose pattern matches it, or else every scenario whose `requires` its
/// bundle [`provides`].
pub fn required_scenarios(stack: &Stack, policy: &Policy, scenarios: &[Scenario], cell: &Cell) -> Result<Vec<String>> {
    let named: BTreeSet<&String> =
        policy.scenarios.iter().filter(|r| r.cells.matches(cell)).flat_map(|r| &r.names).collect();
    if !named.is_empty() {
        return Ok(scenarios.iter().filter(|s| named.contains(&s.name)).map(|s| s.name.clone()).collect());
    }
    let provides = provides(stack, cell)?;
    Ok(scenarios
        .iter()
        .filter(|s| crate::e2e::scenario::missing_requirement(s, &provides).is_none())
        .map(|s| s.name.clone())
        .collect())
}

/// An error about `path` as the verdict shows it: relative to the evidence folder.
fn refused(dir: &Utf8Path, path: &Utf8Path, e: &anyhow::Error) -> String {
    format!("{e:#}").replace(path.as_str(), path.strip_prefix(dir).unwrap_or(path).as_str())
}

/// Why one report of a cell does not pass it: each required scenario that is missing, not run,
/// failed or anything but passed (by its verdict: a failed step fails it whatever it says), or
/// passed with no step; each other failed scenario; budgets and any other run verdict than
/// passed. Empty if it passes.
fn report_problems(r: &Report, want: &[String]) -> Vec<String> {
    let failed_step = |s: &crate::e2e::report::ScenarioResult| {
        let step = s.steps.iter().find(|x| x.status == Status::Failed);
        format!("{}{}", s.name, step.map(|x| format!(" / {}", x.name)).unwrap_or_default())
    };
    let mut problems = Vec::new();
    for name in want {
        match r.scenarios.iter().find(|s| &s.name == name) {
            None => problems.push(format!("{name} missing (required, not in the report)")),
            Some(s) => match s.verdict() {
                // Every scenario file has at least one step (the loader refuses one without): a
                // pass that shows none ran nothing.
                Status::Passed if s.steps.is_empty() => problems.push(format!("{name} passed with no step run")),
                Status::Passed => {}
                Status::Failed => problems.push(failed_step(s)),
                // Not run, or any other outcome (interrupted): not a pass.
                other => problems.push(format!("{name} {}", other.label())),
            },
        }
    }
    for s in r.scenarios.iter().filter(|s| !want.contains(&s.name) && s.verdict() == Status::Failed) {
        problems.push(failed_step(s));
    }
    if problems.is_empty() && r.outcome() != Outcome::Passed {
        let c = r.counts();
        problems.push(if c.budgets_exceeded + c.budgets_unmeasured > 0 {
            format!("{} budget(s) exceeded, {} not measured", c.budgets_exceeded, c.budgets_unmeasured)
        } else if c.links_exceeded + c.links_unmeasured > 0 {
            format!("{} link(s) over their budget, {} not measured", c.links_exceeded, c.links_unmeasured)
        } else {
            format!("the run's verdict is {:?}, not passed", r.outcome())
        });
    }
    problems
}

/// The verdict of `policy` on the evidence under `dir`, for the cells of `stack` and the
/// scenarios of `scenarios/`. Reads `dir` and the scenario files only; runs nothing.
pub fn decide(stack: &Stack, policy: &Policy, dir: &Utf8Path) -> Result<Verdict> {
    let scenarios = crate::e2e::scenario::load_dir(&crate::paths::scenarios_dir(), &[])?;
    decide_with(stack, policy, &scenarios, dir)
}

/// [`decide`] with the scenarios given.
pub fn decide_with(stack: &Stack, policy: &Policy, scenarios: &[Scenario], dir: &Utf8Path) -> Result<Verdict> {
    let cells = stack.subset(policy.subset);
    for (i, p) in policy.required.iter().enumerate() {
        if !cells.iter().any(|c| p.matches(c)) {
            bail!("the gate policy's required[{i}] {p} selects no cell of the {} subset", policy.subset.as_str());
        }
    }
    for (i, r) in policy.scenarios.iter().enumerate() {
        if !cells.iter().any(|c| r.cells.matches(c)) {
            bail!(
                "the gate policy's scenarios[{i}] {} selects no cell of the {} subset",
                r.cells,
                policy.subset.as_str()
            );
        }
        if r.names.is_empty() {
            bail!("the gate policy's scenarios[{i}] names no scenario: a cell must be required to prove something");
        }
        for name in &r.names {
            if !scenarios.iter().any(|s| &s.name == name) {
                let known: Vec<&str> = scenarios.iter().map(|s| s.name.as_str()).collect();
                bail!(
                    "the gate policy's scenarios[{i}] names {name:?}, which is no scenario's name; they are {}",
                    known.join(", ")
                );
            }
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

    // Required cells passed: every report of each, all judged.
    let mut reasons = found.unreadable.clone();
    let mut ok = Vec::new();
    let none = Vec::new();
    for cell in &required {
        let want = required_scenarios(stack, policy, scenarios, cell)?;
        let reports = found.reports.get(cell).unwrap_or(&none);
        let paths = || reports.iter().map(|(p, _)| p.to_string()).collect::<Vec<_>>().join(", ");
        if want.is_empty() {
            reasons.push(format!(
                "required cell {cell} has no scenario to pass: its bundle provides none's `requires` and the policy names none"
            ));
            continue;
        }
        if reports.is_empty() {
            match found.not_run.get(cell) {
                Some(records) => reasons.extend(
                    records.iter().map(|(p, n)| format!("required cell {cell} did not run: {} ({p})", n.reason)),
                ),
                None => reasons.push(format!("required cell {cell} did not run: no report of it under {dir}")),
            }
            continue;
        }
        let mut failed = false;
        for (path, r) in reports {
            let problems = report_problems(r, &want);
            if !problems.is_empty() {
                failed = true;
                reasons.push(format!("required cell {cell} failed: {} ({path})", problems.join(", ")));
            }
        }
        if failed && reports.len() > 1 {
            reasons.push(format!("required cell {cell}: {} reports, all judged: {}", reports.len(), paths()));
        }
        if !failed {
            ok.push(format!("{cell}: passed {} required scenarios ({}) in {}", want.len(), want.join(", "), paths()));
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
        for path in crate::matrix::files_under(dir, |n| n.ends_with(REPRO_SUFFIX))? {
            match crate::evidence::read::<ReproRecord>(&path) {
                Ok(r) => records.push((rel(&path), r)),
                Err(e) => reasons.push(refused(dir, &path, &e)),
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
        let records = crate::matrix::files_under(dir, |n| n == GOLDEN)?;
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
                    match crate::evidence::read::<GoldenRecord>(path) {
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
                            reasons.push(refused(dir, path, &e));
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
        let (mut within, mut links_within) = (0, 0);
        let reports = found.reports.iter().filter(|(c, _)| cells.contains(c));
        for (cell, (path, r)) in reports.flat_map(|(c, rs)| rs.iter().map(move |pr| (c, pr))) {
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
            for link in &r.links {
                let sum = link.summary();
                match sum.within_budget {
                    Some(true) => links_within += 1,
                    Some(false) => reasons.push(format!(
                        "{cell}: the link of {} is over its budget: {} ({path})",
                        link.node,
                        link.verdict(&sum).text
                    )),
                    None if link.budget_bytes_per_min.is_some() => reasons
                        .push(format!("{cell}: the link of {} was not measured at steady state ({path})", link.node)),
                    None => {}
                }
            }
        }
        if within == 0 && reasons.is_empty() {
            reasons.push(
                "no edge series was checked against its budget in any report of the subset (none measured natively; \
                 emulated figures are not enforced): nothing holds the budgets"
                    .into(),
            );
        }
        let ok = vec![format!("{within} edge series and {links_within} edge links within their budgets")];
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
    let policy_path = args.policy.clone().unwrap_or_else(crate::paths::gate_policy);
    let policy = load_policy(&policy_path)?;
    let verdict = decide(&stack, &policy, &args.reports)?;
    let out = args.out.clone().unwrap_or_else(|| args.reports.clone());
    crate::evidence::write_record(&out.join("gate-verdict.json"), &verdict)?;
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
