//! `junit.xml`, through the quick-junit crate (which escapes all text).
//!
//! - one testsuite per scenario, one testcase per step; a failed step is a
//!   `<failure>` whose message and text carry `expected: …` and `actual: …`;
//!   a step or scenario that did not run is `<skipped>` with its reason;
//!   the step (or scenario) a signal stopped is an `<error>` "interrupted by SIGINT";
//!   a failed scenario with no failed step gets a `(scenario)` failure, a
//!   not-run scenario without steps a `(scenario)` skip, so no verdict is lost;
//! - a `resources` suite: one testcase "budget <component> on <node>" per
//!   edge container, failing when over budget, skipped when it could not be
//!   checked (no samples, no budget);
//! - an `alert latency` suite: one testcase per alert, skipped when not
//!   measured; an unexplained slow alert passes with the warning in its output
//!   (a warning, not a failure: see the module doc of `report`).
//!
//! No timestamps: `started` is a property, so the file is deterministic.

use std::time::Duration;

use anyhow::{Context, Result};
use quick_junit::{NonSuccessKind, Property, TestCase, TestCaseStatus, TestSuite};

use super::{
    LatencyVerdict, Mark, Report, ScenarioResult, Status, StepResult, delta_text, latency_label, seconds, seconds_opt,
    truncate,
};

/// Longest text put in one attribute or element; the rest is in report.json.
const FIELD_LIMIT: usize = 64 * 1024;

pub(super) fn render(report: &Report) -> Result<String> {
    let mut junit = quick_junit::Report::new(format!("cargo xtask e2e {}", report.run_id));
    if let Some(time) = duration(report.duration_s) {
        junit.set_time(time);
    }
    for scenario in &report.scenarios {
        junit.add_test_suite(scenario_suite(report, scenario));
    }
    if !report.resources.is_empty() {
        junit.add_test_suite(resources_suite(report));
        if !report.links.is_empty() {
            junit.add_test_suite(links_suite(report));
        }
    }
    if !report.latencies.is_empty() {
        junit.add_test_suite(latency_suite(report));
    }
    let mut text = junit.to_string().context("serializing JUnit XML")?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Ok(text)
}

/// The run's identity, on every suite (JUnit has no report-level properties).
fn run_properties(report: &Report) -> Vec<Property> {
    vec![
        Property::new("run_id", report.run_id.as_str()),
        Property::new("started", report.started.as_str()),
        Property::new("backend", report.backend_label()),
        Property::new("profile", report.profile.as_str()),
        Property::new("arch", report.arch.to_string()),
        Property::new("emulated", report.emulated.to_string()),
        Property::new("tool", report.tool.as_str()),
        Property::new("bundle", report.bundle.as_str()),
    ]
}

fn scenario_suite(report: &Report, scenario: &ScenarioResult) -> TestSuite {
    let mut suite = TestSuite::new(scenario.name.as_str());
    if let Some(time) = duration(scenario.duration_s) {
        suite.set_time(time);
    }
    suite.add_properties(run_properties(report));
    suite.add_property(Property::new("file", scenario.file.as_str()));
    for log in &scenario.logs {
        suite.add_property(Property::new("log", log.as_str()));
    }
    for step in &scenario.steps {
        suite.add_test_case(step_case(scenario, step));
    }
    let verdict = scenario.verdict();
    let explained = match &verdict {
        Status::Passed => true,
        Status::Failed => scenario.steps.iter().any(|s| s.status.is_failed()),
        Status::NotRun { .. } => !scenario.steps.is_empty(),
        Status::Interrupted { .. } => scenario.steps.iter().any(|s| s.status.is_interrupted()),
    };
    if !explained {
        let status = match &verdict {
            Status::NotRun { reason } => skipped(&format!("not run: {reason}")),
            Status::Interrupted { .. } => error(&verdict.label()),
            _ => {
                let mut text = "the scenario failed without a failing step".to_string();
                if !scenario.logs.is_empty() {
                    text.push_str("; logs: ");
                    text.push_str(&scenario.logs.join(", "));
                }
                failure(&text, &text)
            }
        };
        let mut case = TestCase::new("(scenario)", status);
        case.set_classname(scenario.name.as_str());
        suite.add_test_case(case);
    }
    suite
}

fn step_case(scenario: &ScenarioResult, step: &StepResult) -> TestCase {
    let status = match &step.status {
        Status::Passed => TestCaseStatus::success(),
        Status::Failed => {
            // The message attribute is one line: expected and actual side by side
            // when known; the text has everything, one item per line.
            let message = match (&step.expected, &step.actual) {
                (Some(expected), Some(actual)) => format!("expected: {expected}; actual: {actual}"),
                _ => step.message.clone().unwrap_or_else(|| "step failed".into()),
            };
            failure(&message, &step.failure_text())
        }
        Status::NotRun { reason } => skipped(&format!("not run: {reason}")),
        Status::Interrupted { .. } => error(&step.status.label()),
    };
    let mut case = TestCase::new(step.name.as_str(), status);
    case.set_classname(scenario.name.as_str());
    if let Some(time) = duration(step.duration_s) {
        case.set_time(time);
    }
    if let Some(message) = step.message.as_deref().filter(|_| step.status.is_passed()) {
        case.set_system_out(truncate(message, FIELD_LIMIT).as_ref());
    }
    case
}

fn resources_suite(report: &Report) -> TestSuite {
    let mut suite = TestSuite::new("resources");
    suite.add_properties(run_properties(report));
    for series in &report.resources {
        let summary = series.summary();
        let verdict = series.verdict(&summary);
        let status = match verdict.mark {
            Mark::Pass => TestCaseStatus::success(),
            Mark::Fail => failure(&verdict.text, &verdict.text),
            Mark::Warn | Mark::Neutral => skipped(&verdict.text),
        };
        let mut case = TestCase::new(series.budget_name(), status);
        case.set_classname(format!("resources.{}", series.component));
        let mut out = format!("container {}; {} samples", series.container, summary.samples);
        if let Some(m) = summary.memory_bytes {
            out.push_str(&format!(
                "; memory p50/p95/max {} / {} / {}",
                super::mib(m.p50),
                super::mib(m.p95),
                super::mib(m.max)
            ));
        }
        if let Some(c) = summary.cpu_millicores {
            out.push_str(&format!(
                "; CPU p50/p95/max {} / {} / {}",
                super::millicores(c.p50),
                super::millicores(c.p95),
                super::millicores(c.max)
            ));
        }
        if series.emulated {
            out.push_str("; emulated");
        }
        if summary.within_budget == Some(true) || verdict.mark == Mark::Fail {
            out.push_str(&format!("; {}", verdict.text));
        }
        case.set_system_out(out);
        suite.add_test_case(case);
    }
    suite
}

fn links_suite(report: &Report) -> TestSuite {
    let mut suite = TestSuite::new("links");
    suite.add_properties(run_properties(report));
    for link in &report.links {
        let summary = link.summary();
        let verdict = link.verdict(&summary);
        let status = match verdict.mark {
            Mark::Pass => TestCaseStatus::success(),
            Mark::Fail => failure(&verdict.text, &verdict.text),
            Mark::Warn | Mark::Neutral => skipped(&verdict.text),
        };
        let mut case = TestCase::new(link.name(), status);
        case.set_classname("links");
        let [sent, received, replay_sent, replay_received, budget] = link.cells(&summary);
        case.set_system_out(format!(
            "steady {:.0} s: sent {sent}, received {received}; replay: sent {replay_sent}, received {replay_received}; budget {budget}; {}",
            summary.steady_s, verdict.text
        ));
        suite.add_test_case(case);
    }
    suite
}

fn latency_suite(report: &Report) -> TestSuite {
    let mut suite = TestSuite::new("alert latency");
    suite.add_properties(run_properties(report));
    for latency in &report.latencies {
        let measured = format!(
            "measured {}, bound {}, delta {}",
            seconds_opt(latency.measured_s),
            seconds(latency.bound_s),
            delta_text(latency.delta_percent())
        );
        let status = match latency.verdict() {
            LatencyVerdict::NotMeasured => skipped("not measured"),
            _ => TestCaseStatus::success(),
        };
        let mut case = TestCase::new(format!("latency {} in {}", latency.alert, latency.scenario), status);
        case.set_classname("latency");
        let mut out = format!("{}: {measured}", latency_label(latency));
        if latency.verdict().is_warning() {
            out = format!("warning: {out}");
        }
        if let Some(explanation) = &latency.explanation {
            out.push_str("\nexplanation: ");
            out.push_str(&truncate(explanation, FIELD_LIMIT));
        }
        if latency.verdict() != LatencyVerdict::NotMeasured {
            case.set_system_out(out);
        }
        suite.add_test_case(case);
    }
    suite
}

fn failure(message: &str, text: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
    status.set_message(truncate(message, FIELD_LIMIT).as_ref());
    status.set_description(truncate(text, FIELD_LIMIT).as_ref());
    status
}

/// Neither a pass nor a test failure: the run was stopped (`interrupted by SIGINT`).
fn error(message: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
    status.set_message(truncate(message, FIELD_LIMIT).as_ref());
    status
}

fn skipped(message: &str) -> TestCaseStatus {
    let mut status = TestCaseStatus::skipped();
    status.set_message(truncate(message, FIELD_LIMIT).as_ref());
    status
}

/// A duration from seconds; `None` (attribute left out) when negative or not finite.
fn duration(seconds: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(seconds).ok()
}
