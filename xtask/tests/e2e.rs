//! `cargo xtask e2e` for real: the compose tier on this machine's Docker engine, with the
//! local profile's bundle. The runs share one engine, so they run one at a time.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn root() -> Utf8PathBuf {
    Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn xtask() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_xtask"));
    c.current_dir(root());
    c
}

/// Runs `e2e` with `args`, echoing its stderr; returns (success, stderr, the run id of each arch).
fn e2e(args: &[&str]) -> (bool, String, Vec<String>) {
    let out = xtask().arg("e2e").args(args).stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!("{stderr}");
    let ids: Vec<String> = stderr.lines().filter_map(run_id).collect();
    assert!(!ids.is_empty(), "no run id in:\n{stderr}");
    (out.status.success(), stderr, ids)
}

fn run_id(line: &str) -> Option<String> {
    line.strip_prefix("e2e: run ")?.split(':').next().map(str::to_string)
}

/// Containers, networks and volumes still labelled with `run`.
fn leftovers(run: &str) -> String {
    let label = format!("label=io.kubeprepare.e2e.run={run}");
    let mut out = String::new();
    for what in
        [&["ps", "-a", "-q", "--filter"][..], &["network", "ls", "-q", "--filter"], &["volume", "ls", "-q", "--filter"]]
    {
        let o = Command::new("docker").args(what).arg(&label).output().expect("docker CLI");
        assert!(o.status.success(), "docker {what:?}: {}", String::from_utf8_lossy(&o.stderr));
        out.push_str(&String::from_utf8_lossy(&o.stdout));
    }
    out
}

fn report(run: &str, file: &str) -> String {
    let p = root().join("target/e2e").join(run).join(file);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

#[test]
fn the_compose_tier_passes_every_scenario_on_amd64_and_emulated_arm64_with_logs_and_traces_not_run() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (ok, stderr, runs) = e2e(&["--arch", "amd64,arm64"]);
    assert!(ok, "{stderr}");
    assert_eq!(runs.len(), 2, "one run per arch: {runs:?}");
    for (run, arch) in runs.iter().zip(["amd64", "arm64"]) {
        let json: serde_json::Value = serde_json::from_str(&report(run, "report.json")).unwrap();
        assert_eq!(json["arch"], arch);
        assert_eq!(json["emulated"], arch == "arm64", "arm64 runs under qemu on this amd64 machine");
        // A scenario's status is flattened into it: `"status": "not-run", "reason": "…"`.
        let status = |name: &str| {
            json["scenarios"]
                .as_array()
                .unwrap()
                .iter()
                .find(|s| s["name"] == name)
                .cloned()
                .unwrap_or_else(|| panic!("no scenario {name}"))
        };
        for name in ["metrics", "alerts", "link-probes", "restart", "quiet"] {
            assert_eq!(status(name)["status"], "passed", "{arch} {name}: {}", status(name));
        }
        for name in ["logs", "traces"] {
            assert_eq!(status(name)["status"], "not-run", "{name}");
            assert!(status(name)["reason"].as_str().unwrap().ends_with("not in bundle"), "{}", status(name));
        }
        // Alert latencies were measured against their bounds; edge containers were sampled.
        let latencies = json["latencies"].as_array().unwrap();
        assert_eq!(latencies.len(), 2, "node down and link cut: {latencies:?}");
        for l in latencies {
            let (measured, bound, earliest) =
                (l["measured_s"].as_f64().unwrap(), l["bound_s"].as_f64().unwrap(), l["earliest_s"].as_f64().unwrap());
            assert!(earliest <= measured && measured <= bound * 1.1, "{arch}: {l}");
            if measured < bound * 0.9 {
                assert!(l["explanation"].as_str().is_some_and(|e| e.contains("expected window")), "{arch}: {l}");
            }
        }
        let resources = json["resources"].as_array().unwrap();
        assert_eq!(resources.len(), 4, "2 nodes × (node exporter, probe)");
        for r in resources {
            assert!(!r["samples"].as_array().unwrap().is_empty(), "every edge container sampled: {}", r["container"]);
            assert_eq!(r["emulated"], arch == "arm64");
        }
        assert!(report(run, "summary.md").contains("not run"), "not-run scenarios are shown as such");
        assert_eq!(leftovers(run), "", "everything of the run is removed");
    }
}

#[test]
fn a_wrong_scenario_fails_with_expected_and_actual_in_every_report_and_leaves_nothing() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (ok, stderr, runs) = e2e(&["--scenarios-dir", "fixtures/scenarios/wrong"]);
    assert!(!ok, "{stderr}");
    let run = &runs[0];
    for file in ["report.json", "junit.xml", "summary.md", "report.html"] {
        let text = report(run, file);
        assert!(text.contains("3 series"), "{file} lacks the expected value:\n{text}");
        assert!(text.contains("2 series"), "{file} lacks the actual value:\n{text}");
    }
    assert!(
        root().join("target/e2e").join(run).join("logs/metrics-wrong-prometheus.log").exists(),
        "the catch block collects Prometheus' log"
    );
    assert_eq!(leftovers(run), "", "a failed run removes everything it made");
}

#[test]
fn sigint_mid_scenario_removes_every_container_network_and_volume() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = xtask().args(["e2e", "--scenario", "alerts"]).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(600);
    let mut run = None;
    // Mid-scenario: once the edge node has been stopped.
    loop {
        let line =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("the run got to the fault");
        if let Some(id) = run_id(&line) {
            run = Some(id);
        }
        if line.contains("alerts / stop edge-1") {
            break;
        }
    }
    let run = run.expect("run id");
    assert_ne!(leftovers(&run), "", "the run is up");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(!status.success());
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("interrupted (SIGINT)")), "{rest:?}");
    assert_eq!(leftovers(&run), "", "an interrupted run removes everything it made");
}

#[test]
fn bad_flags_and_the_k3s_backend_fail_clearly() {
    let out = xtask().args(["e2e", "--backend", "k3s"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--backend k3s is not built yet"));
    let out = xtask().args(["e2e", "--scenario", "nope", "--dry-run"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no scenario named \"nope\""));
    let out = xtask().args(["e2e", "--edges", "0", "--dry-run"]).output().unwrap();
    assert!(!out.status.success());
}
