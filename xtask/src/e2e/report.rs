//! The reports of one `cargo xtask e2e` run, written into `target/e2e/<run-id>/`.
//!
//! One [`Report`] value (built by the caller from the scenarios, the resource
//! measurements and the alert latencies) is written in four formats by
//! [`write_all`]:
//!
//! | file | for | content |
//! |---|---|---|
//! | `report.json` | machines (matrix, gate, later runs) | the [`Report`] itself, pretty JSON, `schema` first |
//! | `junit.xml` | CI test viewers | one testsuite per scenario (a testcase per step), one for edge resource budgets, one for alert latencies |
//! | `summary.md` | `$GITHUB_STEP_SUMMARY` | verdict, counts, tables, failing steps; always under 1 MiB |
//! | `report.html` | people, offline | the same tables plus inline SVG plots; no external JS, CSS or fonts |
//!
//! Every file is written atomically (temporary sibling, then a rename) and
//! deterministically: the same `Report` gives the same bytes. Nothing here reads
//! a clock; times are in the `Report` (`started`, given by the caller).
//!
//! # Verdict rules
//!
//! - A run **fails** when a scenario failed (or one of its steps did, whatever the
//!   scenario's own status says), or an enforced resource budget was exceeded or
//!   could not be checked.
//! - A scenario that did **not run** is never counted as passed: the counts say
//!   "3 passed, 0 failed, 2 not run", JUnit marks it skipped.
//! - A run stopped by a signal is **interrupted**, whatever passed before: the scenario that
//!   was running (and its running step) is `interrupted`, the finished ones keep their result,
//!   the rest are not run ("not started"); JUnit gives the interrupted step an `<error>`.
//! - Budgets ([`ResourceSeries::summary`]): memory is checked on the **maximum**
//!   sample (a memory limit is a hard ceiling: the container would be killed), CPU
//!   on the **95th percentile** (CPU over a limit is throttled, not fatal, so one
//!   burst should not fail a run). Under qemu emulation (`emulated`) neither figure is
//!   the program's: CPU is inflated by the translation, and memory includes qemu's
//!   translation cache, which grows with the code the program runs (measured on the
//!   local profile's edge: busybox 0.9 → 17 MiB, node exporter 7.7 → 41 MiB, the
//!   OpenTelemetry agent 11 → 61 MiB). Emulated figures are shown and warned about when
//!   over, not enforced; budgets are enforced natively (amd64 here, arm64 on arm64
//!   runners). Each emulated sample also tells the processes' memory apart from their smaps:
//!   qemu's own (translation cache, heap, binary: a lower bound) and the guest program's
//!   anonymous memory, what a limit cannot reclaim (the rest: an upper bound), which the
//!   reports give against the budget, and qemu's apart.
//!   CPU cannot be split: the guest's instructions are qemu's. A series with no samples is reported as such and fails the run: it was
//!   not measured, so it is not within budget.
//! - An alert latency measured more than 10% over its bound with no explanation
//!   is a warning in every format, not a failure: a latency depends on scrape and
//!   evaluation phases the run does not control, and the bound is a target.
//!
//! # Schema versioning
//!
//! `report.json` carries [`SCHEMA`]. Bump it on any breaking change (a field
//! removed, renamed, retyped or given a new meaning); [`read`] refuses files of
//! another version, naming both. Adding a field is not breaking if it has
//! `#[serde(default)]`, so older files still read; readers ignore unknown fields.

use std::borrow::Cow;
use std::fmt::Write as _;

use anyhow::{Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::stack::{Arch, Backend, Cell, Version};

mod html;
mod junit;
mod link;
mod markdown;

pub use link::{LinkSample, LinkSeries, LinkSummary, REPLAY_WINDOW_S, Rate, per_min};

/// The version of `report.json`'s format; see the module doc for when to bump it.
pub const SCHEMA: u32 = 1;

/// GitHub refuses a step summary of 1 MiB or more; `summary.md` stays below this.
pub const SUMMARY_LIMIT_BYTES: usize = 1024 * 1024 - 1024;

/// A measured latency this much over its bound, unexplained, is flagged.
pub const LATENCY_TOLERANCE: f64 = 0.10;

/// The file names written by [`write_all`], in the order written.
pub const FILES: [&str; 4] = ["report.json", "junit.xml", "summary.md", "report.html"];

/// Everything one e2e run found. Serialized as `report.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Report {
    /// [`SCHEMA`] when written; first in the file so readers can check it first.
    pub schema: u32,
    pub run_id: String,
    /// When the run started, RFC 3339, as given by the caller.
    pub started: String,
    pub duration_s: f64,
    /// `compose` or `k3s`.
    pub backend: Backend,
    /// The stack profile (`local`, `upstream`).
    pub profile: String,
    pub arch: Arch,
    /// The k3s backend's k3s and KubeEdge versions (the matrix cell's); `None` for compose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k3s: Option<Version>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeedge: Option<Version>,
    /// What the backend really ran, when its name alone would not say (the kubernetes tier:
    /// `kubernetes v1.34.2, edges: simulated KubeEdge 1.22.0 contract`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// The edge ran under qemu emulation (arm64 on an amd64 host).
    pub emulated: bool,
    /// The tool's version (and commit) that ran.
    pub tool: String,
    /// The bundle the run deployed: a path or a digest.
    pub bundle: String,
    pub scenarios: Vec<ScenarioResult>,
    /// Edge containers' memory and CPU over the run.
    pub resources: Vec<ResourceSeries>,
    /// Each edge's link: bytes over its interface, steady and replaying, against its budget.
    #[serde(default)]
    pub links: Vec<LinkSeries>,
    /// When the topology idled before the scenarios (`e2e --idle`): from and to, in the
    /// resource samples' seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_s: Option<[f64; 2]>,
    /// Alert latencies: from fault injection to the alert firing.
    pub latencies: Vec<Latency>,
    /// Free-form notes for readers (substitutions, skipped checks and why).
    pub notes: Vec<String>,
    /// Wall time of each phase of the run, in order (provision, load images, start, ready,
    /// scenarios, cleanup).
    #[serde(default)]
    pub phases: Vec<Phase>,
}

/// One phase of a run and its wall time.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Phase {
    pub name: String,
    pub seconds: f64,
}

/// The status of a scenario or a step.
///
/// Serialized flattened into its owner: `"status": "passed"`, `"status": "failed"`,
/// `"status": "not-run", "reason": "…"`, or `"status": "interrupted", "signal": "SIGINT"`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Status {
    Passed,
    Failed,
    NotRun {
        reason: String,
    },
    /// Running when the run was stopped by a signal (`SIGINT`, `SIGTERM`): neither passed nor
    /// failed, and the run is interrupted. Added to schema 1 (a reader that does not know it
    /// refuses the file rather than misreading it).
    Interrupted {
        signal: String,
    },
}

/// One scenario file's run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ScenarioResult {
    pub name: String,
    /// The scenario file, relative to the project root.
    pub file: String,
    #[serde(flatten)]
    pub status: Status,
    pub duration_s: f64,
    pub steps: Vec<StepResult>,
    /// Collected container logs, relative to the run directory.
    pub logs: Vec<String>,
}

/// One step of a scenario.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StepResult {
    pub name: String,
    #[serde(flatten)]
    pub status: Status,
    pub duration_s: f64,
    pub message: Option<String>,
    /// What the step expected, as a reader would say it (`up == 1 for job=…`).
    pub expected: Option<String>,
    /// What it found instead.
    pub actual: Option<String>,
}

/// Memory and CPU samples of one edge container, with its budget.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResourceSeries {
    pub component: String,
    pub node: String,
    pub container: String,
    pub budget_memory_bytes: Option<u64>,
    pub budget_cpu_millicores: Option<u64>,
    /// Measured under qemu emulation: CPU figures are not comparable with the budget.
    pub emulated: bool,
    pub samples: Vec<Sample>,
}

/// One measurement.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct Sample {
    /// Seconds since the start of the measurement.
    pub t_s: f64,
    pub memory_bytes: u64,
    pub cpu_millicores: f64,
    /// Under qemu emulation, the container's processes' memory told apart (see
    /// [`qemu_resident`](super::runner::qemu_resident)): qemu's own resident memory, at least,
    /// and the guest program's anonymous memory, at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub qemu_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guest_bytes: Option<u64>,
}

/// An alert's latency in a scenario: from the fault to the alert firing.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Latency {
    pub scenario: String,
    pub alert: String,
    /// The latency the stack promises (`for:` plus scrape and evaluation intervals).
    pub bound_s: f64,
    /// The soonest the alert can follow its fault (`for` plus `group_wait`); sooner means the
    /// alert was not caused by it.
    #[serde(default)]
    pub earliest_s: Option<f64>,
    /// `None`: not measured (the alert never fired, or the scenario did not run).
    pub measured_s: Option<f64>,
    /// Why a latency differs from its bound by more than the tolerance; silences the warning
    /// of one over it.
    pub explanation: Option<String>,
}

/// The run's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed,
    /// A signal stopped the run: what finished is reported, but the run proves nothing as a
    /// whole. Never a pass.
    Interrupted,
}

impl Outcome {
    /// `passed`, `failed`, `interrupted`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Interrupted => "interrupted",
        }
    }
}

/// What the verdict rests on; not-run scenarios and unmeasured budgets are
/// counted apart, never as passed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub passed: usize,
    pub failed: usize,
    pub not_run: usize,
    /// Scenarios running when a signal stopped the run.
    pub interrupted: usize,
    /// Series whose enforced budgets were all checked and met.
    pub budgets_within: usize,
    pub budgets_exceeded: usize,
    /// Series with a budget that could not be checked (no samples, no valid CPU sample, or CPU
    /// only under emulation).
    pub budgets_unchecked: usize,
    /// Of those, series with a budget and no sample at all: not measured, which fails the run.
    pub budgets_unmeasured: usize,
    /// Latencies over their bound by more than the tolerance, unexplained.
    pub latency_warnings: usize,
    /// Edge links within their traffic budget, over it, and with a budget but no steady-state
    /// measurement (which fails the run, as an unmeasured resource budget does).
    pub links_within: usize,
    pub links_exceeded: usize,
    pub links_unmeasured: usize,
}

/// p50, p95 and max of a series of values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stats<T> {
    pub p50: T,
    pub p95: T,
    pub max: T,
}

/// A [`ResourceSeries`] reduced to what the reports show and the verdict uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceSummary {
    pub samples: usize,
    /// `None` when there are no samples.
    pub memory_bytes: Option<Stats<u64>>,
    /// `None` when there is no sample with a finite CPU value (others are ignored).
    pub cpu_millicores: Option<Stats<f64>>,
    /// Memory max against its budget; `None` without budget or samples.
    pub memory_within: Option<bool>,
    /// CPU p95 against its budget; `None` without budget or valid samples.
    /// Both are computed under emulation too, but then not enforced (see `enforced`).
    pub cpu_within: Option<bool>,
    /// `false` under emulation: the budgets do not count for the verdict.
    pub enforced: bool,
    /// Under emulation, of the samples that read qemu's share: the guest process's resident
    /// memory (an upper bound) and qemu's (a lower bound).
    pub guest_memory_bytes: Option<Stats<u64>>,
    pub qemu_memory_bytes: Option<Stats<u64>>,
    /// The enforced budgets together: `Some(true)` all declared and checked and
    /// met, `Some(false)` one exceeded, `None` nothing could be checked or one
    /// declared budget could not (never "within" for a series without samples).
    pub within_budget: Option<bool>,
}

impl Status {
    pub fn is_passed(&self) -> bool {
        matches!(self, Status::Passed)
    }

    pub fn is_failed(&self) -> bool {
        matches!(self, Status::Failed)
    }

    pub fn is_interrupted(&self) -> bool {
        matches!(self, Status::Interrupted { .. })
    }

    /// `passed`, `failed`, `not run: <reason>`, `interrupted by SIGINT`.
    pub fn label(&self) -> String {
        match self {
            Status::Passed => "passed".into(),
            Status::Failed => "failed".into(),
            Status::NotRun { reason } => format!("not run: {reason}"),
            Status::Interrupted { signal } => format!("interrupted by {signal}"),
        }
    }
}

impl ScenarioResult {
    /// The status the reports use: the scenario's own, except that a scenario
    /// with a failed step is failed whatever it says (nothing reports success it
    /// did not check).
    pub fn verdict(&self) -> Status {
        match &self.status {
            Status::Passed if self.steps.iter().any(|s| s.status.is_failed()) => Status::Failed,
            Status::Passed | Status::Failed => match self.steps.iter().find(|s| s.status.is_interrupted()) {
                Some(step) => step.status.clone(),
                None => self.status.clone(),
            },
            status => status.clone(),
        }
    }
}

impl StepResult {
    /// [`failure_text`](Self::failure_text) with each field cut to `limit` bytes.
    fn failure_text_cut(&self, limit: usize) -> String {
        let cut = |field: &Option<String>| field.as_deref().map(|t| truncate(t, limit).into_owned());
        StepResult {
            message: cut(&self.message),
            expected: cut(&self.expected),
            actual: cut(&self.actual),
            ..self.clone()
        }
        .failure_text()
    }

    /// The failure in words: the message, then `expected: …` and `actual: …`
    /// lines, each present only when known.
    pub fn failure_text(&self) -> String {
        let mut text = String::new();
        if let Some(message) = &self.message {
            text.push_str(message);
            text.push('\n');
        }
        if let Some(expected) = &self.expected {
            let _ = writeln!(text, "expected: {expected}");
        }
        if let Some(actual) = &self.actual {
            let _ = writeln!(text, "actual:   {actual}");
        }
        if text.is_empty() {
            text.push_str("failed (no message)\n");
        }
        text
    }
}

/// The value at nearest rank `percent` of `sorted` (ascending): the smallest value
/// such that at least `percent`% of the values are less than or equal to it, i.e.
/// the value at 1-based rank ⌈percent/100 × n⌉ (at least 1). Computed in integers,
/// so p95 of 20 values is the 19th exactly. Always one of the values, never an
/// interpolation. `None` for an empty slice or a percent over 100.
pub fn nearest_rank<T: Copy>(sorted: &[T], percent: u32) -> Option<T> {
    if percent > 100 {
        return None;
    }
    let rank = (percent as usize * sorted.len()).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// p50, p95 and max of `values`, sorted in place; `None` when empty.
fn stats<T: Copy>(values: &mut [T], order: impl FnMut(&T, &T) -> std::cmp::Ordering) -> Option<Stats<T>> {
    values.sort_by(order);
    Some(Stats { p50: nearest_rank(values, 50)?, p95: nearest_rank(values, 95)?, max: *values.last()? })
}

impl ResourceSeries {
    /// The same series with only the samples taken from `from` to `to` (seconds).
    pub fn window(&self, [from, to]: [f64; 2]) -> ResourceSeries {
        let samples = self.samples.iter().filter(|s| s.t_s >= from && s.t_s <= to).copied().collect();
        ResourceSeries { samples, ..self.clone() }
    }

    /// Percentiles (nearest rank, see [`nearest_rank`]) of memory and CPU, and the
    /// budget check: memory **max** against the memory budget, CPU **p95** against
    /// the CPU budget, neither enforced under emulation. Non-finite CPU samples
    /// are ignored. No samples: no statistics and `within_budget: None`.
    pub fn summary(&self) -> ResourceSummary {
        let mut memory: Vec<u64> = self.samples.iter().map(|s| s.memory_bytes).collect();
        let mut cpu: Vec<f64> = self.samples.iter().map(|s| s.cpu_millicores).filter(|c| c.is_finite()).collect();
        let memory_bytes = stats(&mut memory, Ord::cmp);
        let cpu_millicores = stats(&mut cpu, f64::total_cmp);
        let split: Vec<(u64, u64)> = self.samples.iter().filter_map(|s| s.guest_bytes.zip(s.qemu_bytes)).collect();
        let guest_memory_bytes = stats(&mut split.iter().map(|(g, _)| *g).collect::<Vec<_>>(), Ord::cmp);
        let qemu_memory_bytes = stats(&mut split.iter().map(|(_, q)| *q).collect::<Vec<_>>(), Ord::cmp);
        let memory_within = self.budget_memory_bytes.zip(memory_bytes).map(|(budget, m)| m.max <= budget);
        let cpu_within = self.budget_cpu_millicores.zip(cpu_millicores).map(|(budget, c)| c.p95 <= budget as f64);
        let enforced = !self.emulated;

        // Each enforced, declared budget: its check, or None when it could not run.
        let mut checks = Vec::new();
        if self.budget_memory_bytes.is_some() && enforced {
            checks.push(memory_within);
        }
        if self.budget_cpu_millicores.is_some() && enforced {
            checks.push(cpu_within);
        }
        let within_budget = if self.samples.is_empty() || checks.is_empty() {
            None
        } else if checks.contains(&Some(false)) {
            Some(false)
        } else if checks.contains(&None) {
            None
        } else {
            Some(true)
        };
        ResourceSummary {
            samples: self.samples.len(),
            memory_bytes,
            cpu_millicores,
            memory_within,
            cpu_within,
            enforced,
            guest_memory_bytes,
            qemu_memory_bytes,
            within_budget,
        }
    }

    pub fn has_budget(&self) -> bool {
        self.budget_memory_bytes.is_some() || self.budget_cpu_millicores.is_some()
    }
}

/// How one series fares against its budget, in words, for every format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mark {
    Pass,
    Fail,
    Warn,
    /// Nothing to check (no budget declared): neither good nor bad.
    Neutral,
}

/// A verdict mark and the words for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    pub mark: Mark,
    pub text: String,
}

impl ResourceSeries {
    /// "budget <component> on <node>": the JUnit test case name.
    pub fn budget_name(&self) -> String {
        format!("budget {} on {}", self.component, self.node)
    }

    /// The component, marked "(emulated)" when it was.
    pub fn label(&self) -> String {
        if self.emulated { format!("{} (emulated)", self.component) } else { self.component.clone() }
    }

    /// Each figure over its budget, in words (`memory max 70.0 MiB > budget 64.0 MiB`), whether
    /// or not the budget is enforced.
    pub(crate) fn over_budget(&self, summary: &ResourceSummary) -> Vec<String> {
        let mut over = Vec::new();
        if let Some((budget, m)) = self.budget_memory_bytes.zip(summary.memory_bytes).filter(|(b, m)| m.max > *b) {
            over.push(format!("memory max {} > budget {}", mib(m.max), mib(budget)));
        }
        if let Some((budget, c)) =
            self.budget_cpu_millicores.zip(summary.cpu_millicores).filter(|(b, c)| c.p95 > *b as f64)
        {
            over.push(format!("CPU p95 {} > budget {budget} m", millicores(c.p95)));
        }
        over
    }

    /// The budget verdict with its reasons: what exceeded by how much, or why
    /// nothing could be checked.
    pub(crate) fn verdict(&self, summary: &ResourceSummary) -> Verdict {
        let mut exceeded = Vec::new();
        let mut remarks = Vec::new();
        let over = self.over_budget(summary);
        if summary.enforced {
            exceeded = over;
        } else if summary.samples > 0 && self.has_budget() {
            let what = if over.is_empty() { String::new() } else { format!("{} ", over.join("; ")) };
            remarks.push(format!("{what}under emulation, not enforced"));
        }
        if let Some((g, q)) = summary.guest_memory_bytes.zip(summary.qemu_memory_bytes) {
            let against = match self.budget_memory_bytes {
                Some(b) if g.max <= b => format!(", within its budget {}", mib(b)),
                Some(b) => format!(", over its budget {} (an upper bound)", mib(b)),
                None => String::new(),
            };
            remarks.push(format!(
                "guest process at most {} anonymous max{against}; qemu at least {} max (translation cache, heap, binary)",
                mib(g.max),
                mib(q.max)
            ));
        } else if self.emulated && summary.samples > 0 {
            remarks.push(
                "qemu's share and the guest's could not be told apart (no process' smaps could be read): \
                 the figures include qemu"
                    .into(),
            );
        }
        if summary.samples > 0 && self.budget_cpu_millicores.is_some() && summary.cpu_millicores.is_none() {
            remarks.push("no valid CPU sample".into());
        }
        let (mark, mut text) = match summary.within_budget {
            _ if summary.samples == 0 => (Mark::Warn, "no samples: budget not checked".to_string()),
            Some(false) => (Mark::Fail, format!("over: {}", exceeded.join("; "))),
            Some(true) => (Mark::Pass, "within".to_string()),
            None if !self.has_budget() => (Mark::Neutral, "no budget declared".to_string()),
            None => {
                // An enforced budget that could not be checked, or a figure over its budget under
                // emulation, deserves a look; budgets under emulation that hold do not.
                let over = summary.memory_within == Some(false) || summary.cpu_within == Some(false);
                let mark = if summary.enforced || over { Mark::Warn } else { Mark::Neutral };
                (mark, "not checked".to_string())
            }
        };
        if !remarks.is_empty() && summary.samples > 0 {
            let _ = write!(text, " ({})", remarks.join("; "));
        }
        Verdict { mark, text }
    }
}

/// How one latency compares with its bound.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatencyVerdict {
    NotMeasured,
    /// Sooner than the alert can follow its fault: it was not caused by it. A warning.
    Early,
    /// Measured, at most [`LATENCY_TOLERANCE`] over the bound.
    Within,
    /// More than the tolerance over, with an explanation.
    OverExplained,
    /// More than the tolerance over and unexplained: a warning.
    Over,
}

impl LatencyVerdict {
    /// Shown as a warning in every format (never a failure: see the module doc).
    pub fn is_warning(self) -> bool {
        matches!(self, LatencyVerdict::Over | LatencyVerdict::Early)
    }
}

impl Latency {
    /// `(measured - bound) / bound` in percent; `None` when not measured or
    /// the bound is not positive.
    pub fn delta_percent(&self) -> Option<f64> {
        let measured = self.measured_s?;
        (self.bound_s > 0.0 && measured.is_finite()).then(|| (measured - self.bound_s) / self.bound_s * 100.0)
    }

    pub fn verdict(&self) -> LatencyVerdict {
        let Some(measured) = self.measured_s.filter(|m| m.is_finite()) else {
            return LatencyVerdict::NotMeasured;
        };
        if self.earliest_s.is_some_and(|e| measured < e * (1.0 - LATENCY_TOLERANCE)) {
            LatencyVerdict::Early
        } else if measured <= self.bound_s * (1.0 + LATENCY_TOLERANCE) {
            LatencyVerdict::Within
        } else if self.explanation.as_deref().is_some_and(|e| !e.trim().is_empty()) {
            LatencyVerdict::OverExplained
        } else {
            LatencyVerdict::Over
        }
    }
}

impl Report {
    /// `provision 1.2 s · load images 2.0 s · …`, or `None` when no phase was recorded.
    pub fn phases_line(&self) -> Option<String> {
        (!self.phases.is_empty()).then(|| {
            self.phases.iter().map(|p| format!("{} {}", p.name, seconds(p.seconds))).collect::<Vec<_>>().join(" · ")
        })
    }

    /// Passed, failed or interrupted: see the module doc's verdict rules.
    pub fn outcome(&self) -> Outcome {
        let counts = self.counts();
        if counts.interrupted > 0 {
            return Outcome::Interrupted;
        }
        // A budget that could not be checked (no sample) fails too: the run did not measure what
        // it is for.
        if counts.failed > 0
            || counts.budgets_exceeded > 0
            || counts.budgets_unmeasured > 0
            || counts.links_exceeded > 0
            || counts.links_unmeasured > 0
        {
            Outcome::Failed
        } else {
            Outcome::Passed
        }
    }

    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for scenario in &self.scenarios {
            match scenario.verdict() {
                Status::Passed => counts.passed += 1,
                Status::Failed => counts.failed += 1,
                Status::NotRun { .. } => counts.not_run += 1,
                Status::Interrupted { .. } => counts.interrupted += 1,
            }
        }
        for series in &self.resources {
            match series.summary().within_budget {
                Some(true) => counts.budgets_within += 1,
                Some(false) => counts.budgets_exceeded += 1,
                None if series.has_budget() => {
                    counts.budgets_unchecked += 1;
                    if series.samples.is_empty() {
                        counts.budgets_unmeasured += 1;
                    }
                }
                None => {}
            }
        }
        for link in &self.links {
            match link.summary().within_budget {
                Some(true) => counts.links_within += 1,
                Some(false) => counts.links_exceeded += 1,
                None if link.budget_bytes_per_min.is_some() => counts.links_unmeasured += 1,
                None => {}
            }
        }
        counts.latency_warnings = self.latencies.iter().filter(|l| l.verdict().is_warning()).count();
        counts
    }

    /// Things a reader must see that do not fail the run: unexplained slow
    /// alerts, series without samples, figures over budget under emulation.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        for latency in &self.latencies {
            if latency.verdict() == LatencyVerdict::Early {
                warnings.push(format!(
                    "alert {} in {}: measured {} is sooner than it can follow its fault ({} at the earliest): it was not caused by the fault",
                    latency.alert,
                    latency.scenario,
                    seconds_opt(latency.measured_s),
                    seconds_opt(latency.earliest_s),
                ));
            }
            if latency.verdict() == LatencyVerdict::Over {
                warnings.push(format!(
                    "alert {} in {}: measured {} > bound {} ({}), more than {:.0}% over, unexplained",
                    latency.alert,
                    latency.scenario,
                    seconds_opt(latency.measured_s),
                    seconds(latency.bound_s),
                    delta_text(latency.delta_percent()),
                    LATENCY_TOLERANCE * 100.0,
                ));
            }
        }
        for series in &self.resources {
            let summary = series.summary();
            if summary.samples == 0 {
                warnings.push(format!(
                    "{} ({}) on {}: no samples, budget not checked",
                    series.component, series.container, series.node
                ));
            } else if !summary.enforced {
                let over = series.over_budget(&summary);
                if !over.is_empty() {
                    warnings.push(format!(
                        "{} ({}) on {}: {}, measured under emulation (not enforced)",
                        series.component,
                        series.container,
                        series.node,
                        over.join(", "),
                    ));
                }
            }
        }
        warnings
    }

    /// One line for logs: `e2e passed: 3 passed, 0 failed, 2 not run`.
    pub fn outcome_line(&self) -> String {
        format!("e2e {}: {}", self.outcome().as_str(), self.counts().scenario_line())
    }

    fn arch_label(&self) -> String {
        if self.emulated { format!("{} (emulated under qemu)", self.arch) } else { self.arch.to_string() }
    }

    /// The matrix cell this report is for, from its axes.
    pub fn cell(&self) -> Cell {
        Cell {
            backend: self.backend,
            profile: self.profile.clone(),
            arch: self.arch,
            k3s: self.k3s.clone(),
            kubeedge: self.kubeedge.clone(),
        }
    }

    /// The backend with the versions it ran: `compose`, `k3s v1.34.2+k3s1, KubeEdge 1.22.0`, or
    /// the tier's own words (`kubernetes v1.34.2, edges: simulated KubeEdge 1.22.0 contract`).
    pub fn backend_label(&self) -> String {
        if let Some(tier) = &self.tier {
            return tier.clone();
        }
        let mut label = self.backend.to_string();
        if let Some(k3s) = &self.k3s {
            label.push_str(&format!(" {k3s}"));
        }
        if let Some(kubeedge) = &self.kubeedge {
            label.push_str(&format!(", KubeEdge {kubeedge}"));
        }
        label
    }
}

impl Counts {
    /// "3 passed, 0 failed, 2 not run", with ", 1 interrupted" before "not run" when one was.
    pub fn scenario_line(&self) -> String {
        let interrupted =
            if self.interrupted > 0 { format!(", {} interrupted", self.interrupted) } else { String::new() };
        format!("{} passed, {} failed{interrupted}, {} not run", self.passed, self.failed, self.not_run)
    }

    /// "budgets: 4 within, 1 exceeded, 0 not checked", then the links' when there are any:
    /// "; links: 2 within, 0 exceeded, 0 not measured".
    pub fn budget_line(&self) -> String {
        let mut line = format!(
            "budgets: {} within, {} exceeded, {} not checked",
            self.budgets_within, self.budgets_exceeded, self.budgets_unchecked
        );
        if self.links_within + self.links_exceeded + self.links_unmeasured > 0 {
            let _ = write!(
                line,
                "; links: {} within, {} exceeded, {} not measured",
                self.links_within, self.links_exceeded, self.links_unmeasured
            );
        }
        line
    }
}

/// Write the four reports into `dir` (created if missing): `report.json`,
/// `junit.xml`, `summary.md`, `report.html`. Returns their paths in that order.
pub fn write_all(dir: &Utf8Path, report: &Report) -> Result<Vec<Utf8PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating the run directory {dir}"))?;
    let contents = [
        to_json(report)?,
        junit::render(report).context("rendering junit.xml")?,
        markdown::render(report),
        html::render(report),
    ];
    let mut written = Vec::new();
    for (name, text) in FILES.iter().zip(contents) {
        let path = dir.join(name);
        write_atomically(&path, text.as_bytes())?;
        written.push(path);
    }
    Ok(written)
}

/// `report.json`'s text: pretty JSON, fields in declaration order, newline-terminated.
pub fn to_json(report: &Report) -> Result<String> {
    let mut text = serde_json::to_string_pretty(report).context("serializing report.json")?;
    text.push('\n');
    Ok(text)
}

/// `junit.xml`'s text.
pub fn to_junit(report: &Report) -> Result<String> {
    junit::render(report)
}

/// `summary.md`'s text (under [`SUMMARY_LIMIT_BYTES`]).
pub fn to_markdown(report: &Report) -> String {
    markdown::render(report)
}

/// `report.html`'s text.
pub fn to_html(report: &Report) -> String {
    html::render(report)
}

/// Read a `report.json`, refusing another schema version.
pub fn read(path: &Utf8Path) -> Result<Report> {
    crate::evidence::read_versioned(path, <Report as crate::evidence::Record>::KIND, SCHEMA, "cargo xtask e2e")
}

/// As evidence for the gate: a report with no scenarios proves nothing.
impl crate::evidence::Record for Report {
    const KIND: &'static str = "e2e report";
    const SCHEMA: u32 = SCHEMA;
    const FIX: &'static str = "cargo xtask e2e";
    fn refusal(&self) -> Option<String> {
        self.scenarios.is_empty().then(|| "no scenarios".into())
    }
}

/// On GitHub Actions (`$GITHUB_STEP_SUMMARY` set), append a written summary to the job's step
/// summary, so a workflow shows it without any script. Best effort: a failure is printed.
pub fn append_step_summary(summary: &Utf8Path) {
    let Some(target) = std::env::var_os("GITHUB_STEP_SUMMARY") else { return };
    let appended = std::fs::read(summary).and_then(|text| {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).create(true).open(&target)?;
        f.write_all(&text)?;
        f.write_all(b"\n")
    });
    if let Err(e) = appended {
        crate::note!("e2e: could not append {summary} to the step summary: {e}");
    }
}

/// Write through a temporary sibling and a rename, so a reader (or an
/// interrupted run) never sees a half-written report; the temporary is
/// removed on error.
fn write_atomically(dest: &Utf8Path, bytes: &[u8]) -> Result<()> {
    let name = dest.file_name().context("report path has no file name")?;
    let tmp = dest.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let result = std::fs::write(&tmp, bytes)
        .with_context(|| format!("writing {tmp}"))
        .and_then(|()| std::fs::rename(&tmp, dest).with_context(|| format!("renaming {tmp} to {dest}")));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

// ---- formatting shared by the formats ----

/// `text` cut to at most `limit` bytes (on a character boundary), with a note
/// saying how much was cut and where the rest is.
fn truncate(text: &str, limit: usize) -> Cow<'_, str> {
    if text.len() <= limit {
        return Cow::Borrowed(text);
    }
    let mut cut = limit;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    Cow::Owned(format!(
        "{}… [truncated: {} of {} bytes shown; the full text is in report.json]",
        &text[..cut],
        cut,
        text.len()
    ))
}

/// A number with `precision` decimals, or `n/a` when not finite.
fn num(value: f64, precision: usize) -> String {
    // `+ 0.0` turns -0.0 (the sum of no durations) into 0.0.
    if value.is_finite() { format!("{:.precision$}", value + 0.0) } else { "n/a".into() }
}

/// Seconds: `12.3 s`.
fn seconds(value: f64) -> String {
    format!("{} s", num(value, 1))
}

fn seconds_opt(value: Option<f64>) -> String {
    value.map_or_else(|| "not measured".into(), seconds)
}

/// Bytes in MiB: `81.2 MiB`.
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// Millicores: `12.5 m`.
fn millicores(value: f64) -> String {
    format!("{} m", num(value, 1))
}

/// A signed percentage: `+12.7%`, `-3.0%`, `n/a`.
fn delta_text(delta: Option<f64>) -> String {
    delta.map_or_else(|| "n/a".into(), |d| format!("{d:+.1}%"))
}

/// The latency verdict in words.
fn latency_label(latency: &Latency) -> &'static str {
    match latency.verdict() {
        LatencyVerdict::NotMeasured => "not measured",
        LatencyVerdict::Early => "sooner than possible",
        LatencyVerdict::Within => "within bound",
        LatencyVerdict::OverExplained => "over bound, explained",
        LatencyVerdict::Over => "over bound, unexplained",
    }
}
