//! The e2e reports: golden snapshots of all four formats for a good run and a
//! run failed on purpose, verdict rules (not run is never passed, budgets,
//! latency warnings), percentiles, determinism and the summary's size cap.

use xtask::e2e::report;

use camino::{Utf8Path, Utf8PathBuf};
use report::{
    Latency, LatencyVerdict, LinkSample, LinkSeries, Outcome, Phase, Report, ResourceSeries, SCHEMA, Sample,
    ScenarioResult, Status, StepResult,
};
use xtask::stack::{Arch, Backend};

const MIB: u64 = 1024 * 1024;

fn golden_dir() -> Utf8PathBuf {
    Utf8Path::new(env!("CARGO_MANIFEST_DIR")).join("../golden/report")
}

fn step(name: &str, duration_s: f64) -> StepResult {
    StepResult { name: name.into(), status: Status::Passed, duration_s, message: None, expected: None, actual: None }
}

fn scenario(name: &str, status: Status, steps: Vec<StepResult>) -> ScenarioResult {
    ScenarioResult {
        name: name.into(),
        file: format!("scenarios/{name}.toml"),
        status,
        duration_s: steps.iter().map(|s| s.duration_s).sum(),
        steps,
        logs: vec![],
    }
}

fn not_run(reason: &str) -> Status {
    Status::NotRun { reason: reason.into() }
}

/// A series of `n` samples every 10 s: memory from `memory_mib` rising by 1 MiB
/// per sample, CPU cycling through `cpu`.
fn series(component: &str, container: &str, n: usize, memory_mib: u64, cpu: &[f64]) -> ResourceSeries {
    ResourceSeries {
        component: component.into(),
        node: "edge-1".into(),
        container: container.into(),
        budget_memory_bytes: Some(128 * MIB),
        budget_cpu_millicores: Some(100),
        emulated: false,
        samples: (0..n)
            .map(|i| Sample {
                t_s: i as f64 * 10.0,
                memory_bytes: (memory_mib + i as u64) * MIB,
                cpu_millicores: cpu[i % cpu.len()],
                qemu_bytes: None,
                guest_bytes: None,
            })
            .collect(),
    }
}

fn latency(alert: &str, bound_s: f64, measured_s: Option<f64>, explanation: Option<&str>) -> Latency {
    Latency {
        scenario: "edge-node-down".into(),
        alert: alert.into(),
        bound_s,
        earliest_s: Some(bound_s * 0.5),
        measured_s,
        explanation: explanation.map(Into::into),
    }
}

/// An edge pushing 60 KiB/min (6 KiB/min of replies back) over 3 minutes, cut from 60 s to 90 s,
/// replaying at three times that pace for 10 s after.
fn link(node: &str) -> LinkSeries {
    let mut samples = Vec::new();
    let (mut sent, mut received) = (0u64, 0u64);
    for t in (0..=180u64).step_by(2) {
        if t > 0 && !(62..=90).contains(&t) {
            let burst = if (92..=100).contains(&t) { 3 } else { 1 };
            sent += 2048 * burst;
            received += 204 * burst;
        }
        samples.push(LinkSample { t_s: t as f64, sent_bytes: sent, received_bytes: received });
    }
    LinkSeries { node: node.into(), budget_bytes_per_min: Some(256 * 1024), faults: vec![[60.0, 90.0]], samples }
}

fn base_report(run_id: &str) -> Report {
    Report {
        schema: SCHEMA,
        run_id: run_id.into(),
        started: "2026-05-09T10:00:00Z".into(),
        duration_s: 412.75,
        backend: Backend::Compose,
        profile: "local".into(),
        arch: Arch::Amd64,
        k3s: None,
        kubeedge: None,
        tier: None,
        emulated: false,
        tool: "xtask 0.1.0 (ceb5a6b)".into(),
        bundle: "sha256:3f1c0de2a9b7c4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d".into(),
        scenarios: vec![],
        resources: vec![],
        links: vec![],
        idle_s: None,
        latencies: vec![],
        notes: vec![],
        phases: vec![],
    }
}

/// Two scenarios passed, one not run; budgets met; latencies within or explained.
fn good_run() -> Report {
    let mut scrape = step("edge node-exporter is scraped", 31.2);
    scrape.message = Some("up{job=\"edge-node-exporter\"} == 1 after 31 s".into());
    Report {
        scenarios: vec![
            scenario(
                "metrics-flow",
                Status::Passed,
                vec![step("deploy the bundle", 95.4), scrape, step("edge alert rules are loaded", 2.1)],
            ),
            scenario(
                "logs-flow",
                Status::Passed,
                vec![step("alloy ships edgecore logs to Loki", 44.0), step("query by node label", 1.3)],
            ),
            scenario("edge-offline", not_run("needs the k3s backend (this run: compose)"), vec![]),
        ],
        resources: vec![
            series("alloy", "alloy", 12, 60, &[12.0, 18.5, 25.0, 14.0]),
            series("node-exporter", "node-exporter", 12, 14, &[2.0, 3.5, 4.0]),
        ],
        links: vec![link("edge-1"), link("edge-2")],
        latencies: vec![
            latency("EdgeNodeDown", 150.0, Some(131.5), None),
            latency("EdgeTargetDown", 90.0, Some(104.0), Some("the fault lands just after a scrape")),
        ],
        notes: vec!["Jaeger is not part of the local profile: traces-flow not listed".into()],
        phases: [("provision", 0.4), ("load images", 2.25), ("start", 1.5), ("ready", 6.0), ("scenarios", 402.0)]
            .map(|(name, seconds)| Phase { name: name.into(), seconds })
            .to_vec(),
        ..base_report("20260509T100000Z-compose-local-amd64")
    }
}

/// The metrics scenario failed on purpose: node-exporter stopped on the edge.
/// arm64 under qemu, so CPU is shown but not enforced; one slow alert unexplained.
fn failed_run() -> Report {
    let mut scrape = step("edge node-exporter is scraped", 120.0);
    scrape.status = Status::Failed;
    scrape.message = Some("query `up{job=\"edge-node-exporter\"} < 1` held for 120 s".into());
    scrape.expected = Some("up == 1 for job=edge-node-exporter".into());
    scrape.actual = Some("up == 0".into());
    let mut metrics = scenario(
        "metrics-flow",
        Status::Failed,
        vec![
            step("deploy the bundle", 301.0),
            scrape,
            StepResult { status: not_run("an earlier step failed"), ..step("edge alert rules are loaded", 0.0) },
        ],
    );
    metrics.logs = vec!["logs/metrics-flow/prometheus.log".into(), "logs/metrics-flow/edgecore.log".into()];
    let mut alloy = series("alloy", "alloy", 8, 70, &[80.0, 240.0, 260.0, 90.0]);
    alloy.emulated = true;
    Report {
        arch: Arch::Arm64,
        emulated: true,
        scenarios: vec![
            metrics,
            scenario("logs-flow", Status::Passed, vec![step("alloy ships edgecore logs to Loki", 61.0)]),
        ],
        resources: vec![alloy],
        latencies: vec![latency("EdgeNodeDown", 150.0, Some(171.0), None), latency("EdgeTargetDown", 90.0, None, None)],
        ..base_report("20260509T110000Z-compose-local-arm64")
    }
}

/// Writes `report` into a fresh directory and returns the four files' texts.
fn write(report: &Report) -> (tempfile::TempDir, Vec<(String, String)>) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = Utf8Path::from_path(tmp.path()).expect("UTF-8 temp dir").join("run");
    let written = report::write_all(&dir, report).expect("write_all");
    let names: Vec<&str> = written.iter().map(|p| p.file_name().unwrap_or_default()).collect();
    assert_eq!(names, report::FILES);
    let texts = written
        .iter()
        .map(|p| (p.file_name().unwrap_or_default().to_string(), std::fs::read_to_string(p).expect("read back")))
        .collect();
    let mut listed: Vec<String> = std::fs::read_dir(&dir)
        .expect("list run dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    listed.sort();
    assert_eq!(listed, ["junit.xml", "report.html", "report.json", "summary.md"], "no temporary left behind");
    (tmp, texts)
}

fn snapshot_all(prefix: &str, report: &Report) -> Vec<(String, String)> {
    let (_tmp, texts) = write(report);
    insta::with_settings!({ snapshot_path => golden_dir(), prepend_module_to_snapshot => false }, {
        for (name, text) in &texts {
            insta::assert_snapshot!(format!("{prefix}-{name}"), text);
        }
    });
    texts
}

#[test]
fn good_run_reports() {
    let report = good_run();
    assert_eq!(report.outcome(), Outcome::Passed);
    let texts = snapshot_all("good", &report);
    for (name, text) in &texts {
        if name == "summary.md" || name == "report.html" {
            assert!(text.contains("2 passed, 0 failed, 1 not run"), "{name} lacks the counts");
        }
    }
}

#[test]
fn failed_step_shows_expected_and_actual_in_every_format() {
    let report = failed_run();
    assert_eq!(report.outcome(), Outcome::Failed);
    let texts = snapshot_all("failed", &report);
    let text = |name: &str| &texts.iter().find(|(n, _)| n == name).expect(name).1;

    let json = text("report.json");
    assert!(json.contains(r#""expected": "up == 1 for job=edge-node-exporter""#), "{json}");
    assert!(json.contains(r#""actual": "up == 0""#));
    for name in ["junit.xml", "summary.md", "report.html"] {
        let text = text(name);
        assert!(text.contains("expected: up == 1 for job=edge-node-exporter"), "{name}:\n{text}");
        assert!(text.contains("actual:   up == 0"), "{name}:\n{text}");
    }
    let junit = text("junit.xml");
    assert!(junit.contains(r#"<failure message="expected: up == 1 for job=edge-node-exporter; actual: up == 0""#));
    // The message's quotes and `<` are escaped, not dropped.
    assert!(junit.contains("query `up{job=&quot;edge-node-exporter&quot;} &lt; 1` held for 120 s"), "{junit}");
    assert!(text("report.html").contains("up{job=&quot;edge-node-exporter&quot;} &lt; 1"));
    assert!(text("summary.md").starts_with("# ❌ e2e failed"));
    assert!(text("summary.md").contains("```text\nquery `up{job=\"edge-node-exporter\"} < 1` held"));
}

/// Stopped by SIGINT while `alerts` ran (issue "Unfoolable evidence", item 9): `metrics` had
/// passed and keeps its result, `alerts` is interrupted at its running step, `logs` did not start.
fn interrupted_run() -> Report {
    let signal = || Status::Interrupted { signal: "SIGINT".into() };
    let mut running = step("node-down alert", 0.0);
    running.status = signal();
    running.message = Some("interrupted (SIGINT) while this step ran".into());
    let not_started = || not_run("not started: the run was interrupted by SIGINT");
    let alerts = ScenarioResult {
        status: signal(),
        ..scenario(
            "alerts",
            signal(),
            vec![step("stop edge-1", 1.5), running, StepResult { status: not_started(), ..step("finally", 0.0) }],
        )
    };
    Report {
        scenarios: vec![
            scenario("metrics", Status::Passed, vec![step("edge targets up", 12.0)]),
            alerts,
            scenario("logs", not_started(), vec![]),
        ],
        notes: vec!["the run was interrupted (SIGINT) during scenario alerts / node-down alert".into()],
        phases: [("provision", 0.4), ("load images", 2.25), ("start", 1.5), ("ready", 6.0)]
            .map(|(name, seconds)| Phase { name: name.into(), seconds })
            .to_vec(),
        ..base_report("20260509T120000Z-compose-local-amd64")
    }
}

#[test]
fn an_interrupted_run_keeps_what_finished_and_says_interrupted_in_every_format() {
    let report = interrupted_run();
    assert_eq!(report.outcome(), Outcome::Interrupted, "neither passed nor a made-up failure");
    let counts = report.counts();
    assert_eq!((counts.passed, counts.failed, counts.interrupted, counts.not_run), (1, 0, 1, 1));
    assert_eq!(report.outcome_line(), "e2e interrupted: 1 passed, 0 failed, 1 interrupted, 1 not run");
    // A scenario whose own status says passed but whose step was interrupted is interrupted.
    let mut claimed = report.clone();
    claimed.scenarios[1].status = Status::Passed;
    assert_eq!(claimed.outcome(), Outcome::Interrupted);

    let texts = snapshot_all("interrupted", &report);
    let text = |name: &str| &texts.iter().find(|(n, _)| n == name).expect(name).1;
    let json = text("report.json");
    assert!(json.contains(r#""status": "interrupted","#) && json.contains(r#""signal": "SIGINT""#), "{json}");
    assert!(json.starts_with("{\n  \"schema\": 1,"), "the schema number is unchanged: {json}");
    let junit = text("junit.xml");
    assert!(junit.contains(r#"<error message="interrupted by SIGINT""#), "{junit}");
    assert!(junit.contains(r#"<testsuite name="metrics" tests="1" skipped="0" errors="0" failures="0""#), "{junit}");
    assert!(text("summary.md").starts_with("# ⏹ e2e interrupted"), "{}", text("summary.md"));
    for name in ["summary.md", "report.html"] {
        assert!(text(name).contains("1 passed, 0 failed, 1 interrupted, 1 not run"), "{name}");
        assert!(text(name).contains("interrupted by SIGINT"), "{name}");
        assert!(text(name).contains("not started: the run was interrupted by SIGINT"), "{name}");
    }
    assert!(text("report.html").contains("<header class=\"interrupted\">"));
    // It reads back as it was written.
    let (tmp, _) = write(&report);
    let path = Utf8Path::from_path(tmp.path()).expect("UTF-8").join("run/report.json");
    assert_eq!(report::read(&path).expect("read"), report);
}

#[test]
fn json_reads_back_and_refuses_another_schema() {
    let report = failed_run();
    let (tmp, _) = write(&report);
    let path = Utf8Path::from_path(tmp.path()).expect("UTF-8").join("run/report.json");
    assert_eq!(report::read(&path).expect("read"), report);
    let json = std::fs::read_to_string(&path).expect("read");
    assert!(json.starts_with("{\n  \"schema\": 1,"), "schema first: {json}");
    assert!(json.contains(r#""status": "not-run","#) && json.contains(r#""reason": "an earlier step failed""#));

    std::fs::write(&path, json.replacen("\"schema\": 1", "\"schema\": 2", 1)).expect("write");
    let err = format!("{:#}", report::read(&path).expect_err("schema 2 must be refused"));
    assert!(err.contains("schema 2, this tool reads schema 1"), "{err}");
}

#[test]
fn same_report_same_bytes() {
    for report in [good_run(), failed_run()] {
        let (_a, first) = write(&report);
        let (_b, second) = write(&report);
        assert_eq!(first, second);
    }
    // And rewriting in place (the temporary-and-rename path over an existing file).
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = Utf8Path::from_path(tmp.path()).expect("UTF-8");
    let report = failed_run();
    let read =
        |paths: &[Utf8PathBuf]| -> Vec<Vec<u8>> { paths.iter().map(|p| std::fs::read(p).expect("read")).collect() };
    let first = read(&report::write_all(dir, &report).expect("write"));
    let second = read(&report::write_all(dir, &report).expect("rewrite"));
    assert_eq!(first, second);
}

// ---- percentiles ----

/// Memory values (bytes) in any order → (p50, p95, max), or None for no samples.
fn check_percentiles(values: &[u64], expect: Option<(u64, u64, u64)>) {
    let series = ResourceSeries {
        samples: values
            .iter()
            .enumerate()
            .map(|(i, &m)| Sample {
                t_s: i as f64,
                memory_bytes: m,
                cpu_millicores: m as f64,
                qemu_bytes: None,
                guest_bytes: None,
            })
            .collect(),
        ..series("c", "c", 0, 0, &[0.0])
    };
    let summary = series.summary();
    let memory = summary.memory_bytes.map(|s| (s.p50, s.p95, s.max));
    assert_eq!(memory, expect, "memory percentiles of {values:?}");
    let cpu = summary.cpu_millicores.map(|s| (s.p50, s.p95, s.max));
    assert_eq!(cpu, expect.map(|(a, b, c)| (a as f64, b as f64, c as f64)), "CPU percentiles of {values:?}");
}

#[test]
fn percentiles_are_nearest_rank() {
    let range = |n: u64| (1..=n).collect::<Vec<_>>();
    check_percentiles(&[], None);
    check_percentiles(&[7], Some((7, 7, 7)));
    check_percentiles(&[2, 1], Some((1, 2, 2)));
    check_percentiles(&[3, 1, 2], Some((2, 3, 3)));
    check_percentiles(&range(10), Some((5, 10, 10)));
    // ⌈0.95 × 20⌉ = 19 exactly (a float computation gives 19.000000000000004 → 20).
    check_percentiles(&range(20), Some((10, 19, 20)));
    check_percentiles(&range(100), Some((50, 95, 100)));
    check_percentiles(&range(101), Some((51, 96, 101)));
    check_percentiles(&[5, 5, 5, 100], Some((5, 100, 100)));
    check_percentiles(&[9, 1, 8, 2, 7, 3, 6, 4, 5], Some((5, 9, 9)));
}

#[test]
fn nearest_rank_edges() {
    let values = [10, 20, 30, 40];
    let check = |percent: u32, expect: Option<i32>| {
        assert_eq!(report::nearest_rank(&values, percent), expect, "p{percent}");
    };
    check(0, Some(10));
    check(25, Some(10));
    check(26, Some(20));
    check(100, Some(40));
    check(101, None);
    assert_eq!(report::nearest_rank::<u64>(&[], 50), None);
}

#[test]
fn non_finite_cpu_samples_are_ignored() {
    let mut s = series("c", "c", 3, 10, &[f64::NAN, 50.0, f64::INFINITY]);
    let summary = s.summary();
    assert_eq!(summary.cpu_millicores.map(|c| c.max), Some(50.0));
    s.samples.iter_mut().for_each(|x| x.cpu_millicores = f64::NAN);
    let summary = s.summary();
    assert_eq!(summary.cpu_millicores, None);
    assert_eq!(summary.within_budget, None, "an unchecked CPU budget is not within budget");
}

// ---- budgets ----

/// (memory MiB max, CPU m p95 via constant samples, emulated) → within_budget,
/// with a 128 MiB / 100 m budget.
fn check_budget(memory_mib: u64, cpu: f64, emulated: bool, expect: Option<bool>) {
    let mut s = series("alloy", "alloy", 1, memory_mib, &[cpu]);
    s.emulated = emulated;
    assert_eq!(s.summary().within_budget, expect, "{memory_mib} MiB, {cpu} m, emulated {emulated}");
}

#[test]
fn budget_checks() {
    check_budget(128, 100.0, false, Some(true)); // at the budget is within
    check_budget(129, 10.0, false, Some(false));
    check_budget(10, 100.5, false, Some(false));
    // Under emulation neither is enforced (qemu's own memory and CPU are in the figures).
    check_budget(10, 900.0, true, None);
    check_budget(129, 10.0, true, None);

    // CPU is checked on p95: one burst in 20 samples is not over budget.
    let mut cpu = vec![50.0; 19];
    cpu.push(500.0);
    assert_eq!(series("c", "c", 20, 10, &cpu).summary().within_budget, Some(true));
    cpu[0] = 500.0;
    assert_eq!(series("c", "c", 20, 10, &cpu).summary().within_budget, Some(false));

    let mut unbudgeted = series("c", "c", 5, 500, &[900.0]);
    unbudgeted.budget_memory_bytes = None;
    unbudgeted.budget_cpu_millicores = None;
    assert_eq!(unbudgeted.summary().within_budget, None);
}

/// An idle window (`e2e --idle`) keeps the samples taken inside it, its ends included.
#[test]
fn a_window_keeps_only_its_samples() {
    let s = series("edge-agent", "edge-agent", 6, 20, &[5.0, 50.0]);
    let idle = s.window([10.0, 30.0]);
    assert_eq!(idle.samples.iter().map(|x| x.t_s).collect::<Vec<_>>(), [10.0, 20.0, 30.0]);
    let sum = idle.summary();
    assert_eq!(sum.memory_bytes.unwrap().max, 23 * MIB);
    assert_eq!(sum.samples, 3);
    assert!(s.window([100.0, 200.0]).summary().within_budget.is_none(), "no sample: not within");
}

/// Budgets under emulation: never enforced, warned about when over.
#[test]
fn emulated_budgets_are_shown_not_enforced() {
    let check = |cpu: f64, row: &str, warned: bool| {
        let mut s = series("alloy", "alloy", 3, 10, &[cpu]);
        s.emulated = true;
        s.budget_memory_bytes = None;
        let report = Report { resources: vec![s], ..base_report("emulated") };
        assert_eq!(report.outcome(), Outcome::Passed);
        let md = report::to_markdown(&report);
        assert!(md.contains(row), "{md}");
        assert_eq!(report.warnings().len(), usize::from(warned), "{:?}", report.warnings());
    };
    // No smaps were read in these: the report says its figures include qemu.
    let unsplit = "qemu's share and the guest's could not be told apart (no process' smaps could be read): \
                   the figures include qemu";
    check(50.0, &format!("| — not checked (under emulation, not enforced; {unsplit}) |"), false);
    check(
        500.0,
        &format!("| ⚠️ not checked (CPU p95 500.0 m &gt; budget 100 m under emulation, not enforced; {unsplit}) |"),
        true,
    );
    // Memory as well: qemu's translation cache counts in an emulated container.
    let mut s = series("edge-agent", "edge-agent", 3, 200, &[10.0]);
    s.emulated = true;
    let report = Report { resources: vec![s], ..base_report("emulated") };
    assert_eq!(report.outcome(), Outcome::Passed);
    let md = report::to_markdown(&report);
    assert!(
        md.contains(&format!(
            "| ⚠️ not checked (memory max 202.0 MiB &gt; budget 128.0 MiB under emulation, not enforced; {unsplit}) |"
        )),
        "{md}"
    );
    assert_eq!(
        report.warnings(),
        [
            "edge-agent (edge-agent) on edge-1: memory max 202.0 MiB > budget 128.0 MiB, measured under emulation (not enforced)"
        ]
    );
    // With qemu's share read from the process: the guest's figure is told apart, against the budget.
    let mut s = series("edge-agent", "edge-agent", 3, 200, &[10.0]);
    s.emulated = true;
    for (i, sample) in s.samples.iter_mut().enumerate() {
        sample.qemu_bytes = Some((150 - i as u64) * MIB);
        sample.guest_bytes = Some((50 + 2 * i as u64) * MIB);
    }
    let summary = s.summary();
    assert_eq!(summary.guest_memory_bytes.map(|g| g.max), Some(54 * MIB));
    assert_eq!(summary.qemu_memory_bytes.map(|q| q.max), Some(150 * MIB));
    let md = report::to_markdown(&Report { resources: vec![s.clone()], ..base_report("emulated") });
    assert!(
        md.contains(
            "guest process at most 54.0 MiB anonymous max, within its budget 128.0 MiB; qemu at least 150.0 MiB max"
        ),
        "{md}"
    );
    assert_eq!(s.summary().within_budget, None, "under emulation still not enforced");
    for sample in &mut s.samples {
        sample.guest_bytes = Some(130 * MIB);
    }
    let md = report::to_markdown(&Report { resources: vec![s], ..base_report("emulated") });
    assert!(md.contains("over its budget 128.0 MiB (an upper bound)"), "{md}");
}

#[test]
fn budget_exceeded_fails_the_run() {
    let mut report = good_run();
    report.resources[0] = series("alloy", "alloy", 12, 200, &[12.0]);
    assert_eq!(report.outcome(), Outcome::Failed);
    let counts = report.counts();
    assert_eq!((counts.passed, counts.failed, counts.budgets_exceeded), (2, 0, 1));

    let (_tmp, texts) = write(&report);
    let text = |name: &str| &texts.iter().find(|(n, _)| n == name).expect(name).1;
    assert!(
        text("junit.xml").contains(
            r#"<testcase name="budget alloy on edge-1" classname="resources.alloy">
            <failure message="over: memory max 211.0 MiB &gt; budget 128.0 MiB">"#
        ),
        "{}",
        text("junit.xml")
    );
    assert!(text("summary.md").starts_with("# ❌ e2e failed"));
    assert!(text("summary.md").contains("❌ over: memory max 211.0 MiB &gt; budget 128.0 MiB"));
    assert!(text("report.html").contains("over: memory max 211.0 MiB &gt; budget 128.0 MiB"));
}

#[test]
fn series_without_samples_is_never_within_budget() {
    let mut report = good_run();
    report.resources[1].samples.clear();
    let summary = report.resources[1].summary();
    assert_eq!((summary.samples, summary.within_budget, summary.memory_bytes), (0, None, None));
    let counts = report.counts();
    assert_eq!((counts.budgets_within, counts.budgets_unchecked, counts.budgets_unmeasured), (1, 1, 1));
    assert_eq!(report.outcome(), Outcome::Failed, "an unmeasured budget fails: the run did not measure it");
    assert!(report.warnings().iter().any(|w| w.contains("node-exporter (node-exporter) on edge-1: no samples")));

    let (_tmp, texts) = write(&report);
    let text = |name: &str| &texts.iter().find(|(n, _)| n == name).expect(name).1;
    assert!(text("junit.xml").contains(
        r#"<testcase name="budget node-exporter on edge-1" classname="resources.node-exporter">
            <skipped message="no samples: budget not checked"/>"#
    ));
    assert!(text("summary.md").contains("| 0 | — |"));
    assert!(text("summary.md").contains("⚠️ no samples: budget not checked"));
    assert!(text("report.html").contains("No samples: nothing to plot, budget not checked."));
}

// ---- not run ----

#[test]
fn not_run_is_counted_as_not_run() {
    let report = Report {
        scenarios: vec![
            scenario("a", Status::Passed, vec![step("s", 1.0)]),
            scenario("b", Status::Passed, vec![step("s", 1.0)]),
            scenario("c", Status::Passed, vec![step("s", 1.0)]),
            scenario("d", not_run("needs the k3s backend"), vec![]),
            scenario(
                "e",
                not_run("no arm64 image"),
                vec![StepResult { status: not_run("no arm64 image"), ..step("s", 0.0) }],
            ),
        ],
        ..base_report("not-run")
    };
    let counts = report.counts();
    assert_eq!((counts.passed, counts.failed, counts.not_run), (3, 0, 2));
    assert_eq!(report.outcome(), Outcome::Passed);
    assert_eq!(report.outcome_line(), "e2e passed: 3 passed, 0 failed, 2 not run");

    let (_tmp, texts) = write(&report);
    let text = |name: &str| &texts.iter().find(|(n, _)| n == name).expect(name).1;
    let junit = text("junit.xml");
    assert!(
        junit.contains(r#"<testsuites name="cargo xtask e2e not-run" tests="5" skipped="2" failures="0" errors="0""#),
        "{junit}"
    );
    assert!(junit.contains(
        r#"<testcase name="(scenario)" classname="d">
            <skipped message="not run: needs the k3s backend"/>"#
    ));
    assert!(junit.contains(r#"<skipped message="not run: no arm64 image"/>"#));
    for name in ["summary.md", "report.html"] {
        assert!(text(name).contains("3 passed, 0 failed, 2 not run"), "{name}");
        assert!(text(name).contains("⏭ not run: needs the k3s backend"), "{name}");
    }
}

#[test]
fn a_failed_step_fails_its_scenario_whatever_it_says() {
    let mut failed = step("s", 1.0);
    failed.status = Status::Failed;
    let report = Report { scenarios: vec![scenario("a", Status::Passed, vec![failed])], ..base_report("inconsistent") };
    assert_eq!(report.scenarios[0].verdict(), Status::Failed);
    assert_eq!(report.outcome(), Outcome::Failed);
}

#[test]
fn a_failed_scenario_without_failed_steps_still_fails_in_junit() {
    let report =
        Report { scenarios: vec![scenario("a", Status::Failed, vec![step("s", 1.0)])], ..base_report("setup-failed") };
    let junit = report::to_junit(&report).expect("junit");
    assert!(junit.contains(r#"failures="1""#), "{junit}");
    assert!(junit.contains(r#"<failure message="the scenario failed without a failing step">"#));
}

// ---- latency ----

fn check_latency(bound: f64, measured: Option<f64>, explanation: Option<&str>, expect: LatencyVerdict) {
    let l = latency("A", bound, measured, explanation);
    assert_eq!(l.verdict(), expect, "bound {bound}, measured {measured:?}, explanation {explanation:?}");
}

#[test]
fn latency_over_bound_by_more_than_ten_percent_is_flagged() {
    check_latency(100.0, Some(90.0), None, LatencyVerdict::Within);
    check_latency(100.0, Some(110.0), None, LatencyVerdict::Within);
    check_latency(100.0, Some(110.5), None, LatencyVerdict::Over);
    check_latency(100.0, Some(150.0), Some("scrape phase"), LatencyVerdict::OverExplained);
    check_latency(100.0, Some(150.0), Some("  "), LatencyVerdict::Over);
    check_latency(100.0, None, None, LatencyVerdict::NotMeasured);
    check_latency(100.0, Some(f64::NAN), None, LatencyVerdict::NotMeasured);
    // The earliest is half the bound here: 10% under it is tolerated, more is an alert the fault
    // cannot have caused.
    check_latency(100.0, Some(45.0), None, LatencyVerdict::Within);
    check_latency(100.0, Some(44.0), None, LatencyVerdict::Early);
    assert!(LatencyVerdict::Early.is_warning() && LatencyVerdict::Over.is_warning());
    assert!(!LatencyVerdict::Within.is_warning() && !LatencyVerdict::OverExplained.is_warning());
    let mut early = good_run();
    early.latencies = vec![latency("EdgeNodeDown", 100.0, Some(10.0), None)];
    assert_eq!(early.counts().latency_warnings, 1);
    assert!(
        early
            .warnings()
            .iter()
            .any(|w| w.contains("measured 10.0 s is sooner than it can follow its fault (50.0 s at the earliest)")),
        "{:#?}",
        early.warnings()
    );

    let report = failed_run();
    assert_eq!(report.counts().latency_warnings, 1);
    let warnings = report.warnings();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("alert EdgeNodeDown in edge-node-down: measured 171.0 s > bound 150.0 s (+14.0%)")),
        "{warnings:#?}"
    );
    let mut quiet = good_run();
    quiet.latencies.truncate(1);
    assert!(quiet.warnings().is_empty());
}

// ---- size cap ----

#[test]
fn summary_stays_under_one_mib() {
    let huge = "x".repeat(5 * 1024 * 1024);
    let mut report = failed_run();
    report.scenarios[0].steps[1].actual = Some(huge.clone());
    report.scenarios[0].steps[1].message = Some(huge.clone());
    report.notes.push(huge.clone());
    let md = report::to_markdown(&report);
    assert!(md.len() < 1024 * 1024, "{} bytes", md.len());
    assert!(md.contains("[truncated: 4096 of 5242880 bytes shown; the full text is in report.json]"));
    assert!(md.contains("expected: up == 1 for job=edge-node-exporter"));

    // Thousands of failing scenarios: whole blocks are left out, and it says so.
    let mut report = failed_run();
    let mut step = report.scenarios[0].steps[1].clone();
    step.message = Some("y".repeat(3000));
    report.scenarios = (0..2000).map(|i| scenario(&format!("s{i}"), Status::Failed, vec![step.clone()])).collect();
    let md = report::to_markdown(&report);
    assert!(md.len() < 1024 * 1024, "{} bytes", md.len());
    assert!(md.starts_with("# ❌ e2e failed\n\n**0 passed, 2000 failed, 0 not run**"));
    assert!(
        md.contains("**Summary truncated** to stay under GitHub's 1 MiB step-summary limit"),
        "{}",
        &md[md.len() - 500..]
    );

    // The other formats keep the failure readable too, cut to their own limit.
    let html = report::to_html(&report);
    assert!(html.contains("expected: up == 1 for job=edge-node-exporter"));
}
