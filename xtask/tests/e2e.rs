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

/// The release flow on this machine: `matrix run --subset pr` runs the compose cells for real
/// (amd64, and arm64 under qemu) and records the k3s cell as not run here; `bundle repro` and
/// `render --check --record` add their evidence; `gate` passes on it all. Each compose cell's
/// report is checked in detail.
#[test]
fn the_pr_matrix_runs_here_and_its_evidence_passes_the_gate() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let tmp = tempfile::tempdir().unwrap();
    let out = Utf8PathBuf::from_path_buf(tmp.path().join("pr")).unwrap();
    let run = xtask()
        .args(["matrix", "run", "--subset", "pr", "--out", out.as_str()])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr).into_owned();
    eprintln!("{stderr}");
    assert!(run.status.success(), "{stderr}");
    for arch in ["amd64", "arm64"] {
        let text = std::fs::read_to_string(out.join(format!("cells/compose-local-{arch}/report.json"))).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
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
        for name in [
            "metrics",
            "alerts",
            "link-probe",
            "link-outage",
            "buffer-window",
            "restart",
            "quiet",
            "offline",
            "logs",
            "traces",
        ] {
            assert_eq!(status(name)["status"], "passed", "{arch} {name}: {}", status(name));
        }
        // kube-state-metrics is in the bundle, but without an API server this tier does not run it.
        let reason = status("node-not-ready")["reason"].as_str().unwrap().to_string();
        assert!(reason.contains("from a Kubernetes API server, which this tier has not"), "{reason}");
        // Only what is AGPL (never built here) does not run, and it says so.
        for name in ["grafana", "grafana-datasources"] {
            assert_eq!(status(name)["status"], "not-run", "{name}");
            let reason = status(name)["reason"].as_str().unwrap().to_string();
            assert!(reason.ends_with("is AGPL and is not built here; runs on GitHub Actions"), "{name}: {reason}");
        }
        // Alert latencies were measured against their bounds; edge containers were sampled.
        let latencies = json["latencies"].as_array().unwrap();
        assert_eq!(latencies.len(), 3, "node down, link cut, port blocked: {latencies:?}");
        for l in latencies {
            let (measured, bound, earliest) =
                (l["measured_s"].as_f64().unwrap(), l["bound_s"].as_f64().unwrap(), l["earliest_s"].as_f64().unwrap());
            assert!(earliest <= measured && measured <= bound * 1.1, "{arch}: {l}");
            if measured < bound * 0.9 {
                assert!(l["explanation"].as_str().is_some_and(|e| e.contains("expected window")), "{arch}: {l}");
            }
        }
        // Each edge's link was measured at steady state and while replaying the cut's backlog.
        let links = json["links"].as_array().unwrap();
        assert_eq!(links.len(), 2, "one link per edge: {links:?}");
        for l in links {
            assert!(l["samples"].as_array().unwrap().len() > 10, "link of {} sampled", l["node"]);
            assert!(l["budget_bytes_per_min"].as_u64().is_some_and(|b| b > 0));
        }
        let cut = links.iter().find(|l| l["node"] == "edge-2").unwrap();
        assert!(!cut["faults"].as_array().unwrap().is_empty(), "the cut of edge-2 is a fault window: {cut}");
        // …and every format shows them.
        for (file, heading) in [
            ("summary.md", "## Edge links"),
            ("report.html", "<h2>Edge links</h2>"),
            ("junit.xml", "testcase name=\"link edge-2\""),
        ] {
            let text = std::fs::read_to_string(out.join(format!("cells/compose-local-{arch}/{file}"))).unwrap();
            assert!(text.contains(heading), "{arch} {file} has no {heading}");
        }
        let resources = json["resources"].as_array().unwrap();
        assert_eq!(resources.len(), 10, "2 nodes × (node exporter, metrics agent, link probe, edge agent, probe)");
        for r in resources {
            assert!(!r["samples"].as_array().unwrap().is_empty(), "every edge container sampled: {}", r["container"]);
            assert_eq!(r["emulated"], arch == "arm64");
        }
        assert!(
            json["notes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n.as_str().unwrap().starts_with("engine images came only from the bundle"))
        );
        let run_id = json["run_id"].as_str().unwrap();
        assert_eq!(leftovers(run_id), "", "everything of the run is removed");
    }
    // The kubernetes tier: a real cluster, named for what it is; the edges' metrics pushed by their
    // agents, the edge kubelets scraped through the tunnel (through a restart of edge-2's kubelet
    // too), edge-1 powered off and on (its alert fired and resolved), edge-1 cut off until
    // Kubernetes marks it NotReady (kube-state-metrics' view paged and resolved), edge-1 blocked
    // from Jaeger (its own probes page), edge-2 cut off and healed with nothing of the cut lost,
    // Prometheus restarted in its pod (Alertmanager on another node), the edge workload's pod logs
    // in VictoriaLogs and its traced call in Jaeger, no unexpected alert; what it does not run
    // says why.
    let text = std::fs::read_to_string(out.join("cells/kubernetes-local-amd64/report.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json["backend"], "kubernetes");
    assert_eq!(json["tier"], "kubernetes v1.34.2, edges: simulated KubeEdge 1.22.0 contract");
    for s in json["scenarios"].as_array().unwrap() {
        match s["name"].as_str().unwrap() {
            "metrics" | "edge-kubelet" | "alerts" | "node-not-ready" | "link-probe" | "link-outage" | "restart"
            | "logs" | "traces" | "quiet" | "offline" => {
                assert_eq!(s["status"], "passed", "{s}")
            }
            name => {
                assert_eq!(s["status"], "not-run", "{s}");
                let reason = s["reason"].as_str().unwrap();
                assert!(
                    reason.contains("the kubernetes tier does not deploy it yet")
                        || reason.contains("written for the compose tier's [e2e] timing")
                        || reason.contains("is AGPL"),
                    "{name}: {reason}"
                );
            }
        }
    }
    // Every edge DaemonSet, measured on each edge from its cgroup, within its 64Mi / 100m.
    let resources = json["resources"].as_array().unwrap();
    let measured: Vec<(&str, &str)> =
        resources.iter().map(|r| (r["component"].as_str().unwrap(), r["node"].as_str().unwrap())).collect();
    let components = ["edge-node-exporter", "edge-metrics", "edge-link-probe", "edge-agent"];
    let expected: Vec<(&str, &str)> = components.iter().flat_map(|c| [(*c, "edge-1"), (*c, "edge-2")]).collect();
    assert_eq!(measured, expected);
    for r in resources {
        assert!(r["samples"].as_array().unwrap().len() >= 10, "sampled through the run: {r}");
        assert_eq!(r["budget_memory_bytes"], 64 * 1024 * 1024, "{r}");
    }
    let phases: Vec<&str> = json["phases"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(xtask::e2e::CLUSTER_PHASES.iter().all(|p| phases.contains(p)), "{phases:?}");
    assert_eq!(leftovers(json["run_id"].as_str().unwrap()), "", "everything of the cluster is removed");
    let k3s =
        std::fs::read_to_string(out.join("cells/k3s-upstream-amd64-k3s-v1.34.2-k3s1-kubeedge-1.22.0/not-run.json"))
            .unwrap();
    assert!(k3s.contains("the k3s tier is not built yet"), "{k3s}");
    let md = std::fs::read_to_string(out.join("matrix.md")).unwrap();
    assert!(md.contains("| profile local | + | + |"), "both compose cells passed, some scenarios not run: {md}");
    let kubernetes = md.split("## kubernetes tier").nth(1).unwrap_or_default();
    assert!(kubernetes.contains("| profile local | + |"), "the kubernetes cell passed, some not run: {md}");
    assert!(md.contains("| KubeEdge 1.22.0 | ○ ᵉ |"), "the k3s cell: not run, experimental: {md}");
    assert!(md.contains("not run here: the k3s tier is not built yet"), "{md}");

    // The rest of the evidence, by the commands CI runs, then the verdict.
    for arch in ["amd64", "arm64"] {
        let record = out.join(format!("observability-local-{arch}.repro.json"));
        let o = xtask()
            .args(["bundle", "repro", "--profile", "local", "--arch", arch, "--record", record.as_str()])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let golden = out.join("golden-check.json");
    let o = xtask().args(["render", "--check", "--record", golden.as_str()]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = xtask().args(["gate", "--reports", out.as_str()]).output().unwrap();
    let gate = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "the gate refused this machine's own evidence:\n{gate}");
    for check in ["required cells passed", "bundles reproducible", "golden snapshots clean", "edge budgets met"] {
        assert!(gate.contains(&format!("gate: ok   {check}")), "{gate}");
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

/// The kubernetes tier, SIGTERM once edge-1 is powered off mid-scenario: the cluster's every
/// container, network and volume is removed, none published a port or had a route out, and the
/// report says interrupted.
#[test]
fn sigterm_mid_scenario_removes_the_whole_cluster() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut child = xtask()
        .args(["e2e", "--backend", "kubernetes", "--scenario", "edge-kubelet"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            eprintln!("{line}");
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(1800);
    let mut run = None;
    loop {
        let line =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("the run got to the fault");
        if let Some(id) = run_id(&line) {
            run = Some(id);
        }
        if line.contains("edge-kubelet / stop edge-1") {
            break;
        }
    }
    let run = run.expect("run id");
    let label = format!("label=io.kubeprepare.e2e.run={run}");
    let nets = Command::new("docker").args(["network", "ls", "--filter", &label, "--format", "{{.Internal}}"]).output();
    let nets = String::from_utf8_lossy(&nets.unwrap().stdout).into_owned();
    assert_eq!(nets.trim(), "true", "one internal cluster network");
    let ports = Command::new("docker").args(["ps", "--filter", &label, "--format", "{{.Names}} [{{.Ports}}]"]).output();
    let ports = String::from_utf8_lossy(&ports.unwrap().stdout).into_owned();
    assert_eq!(ports.lines().count(), 3, "server, agent and edge-2 up, edge-1 off: {ports}");
    assert!(ports.lines().all(|l| l.ends_with(" []")), "no published port: {ports}");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    assert!(!child.wait().unwrap().success());
    assert_eq!(leftovers(&run), "", "the cluster is removed on SIGTERM");
    let json: serde_json::Value = serde_json::from_str(&report(&run, "report.json")).unwrap();
    let s = &json["scenarios"][0];
    assert_eq!(
        (&s["name"], &s["status"], &s["signal"]),
        (&"edge-kubelet".into(), &"interrupted".into(), &"SIGTERM".into())
    );
    assert_eq!(s["steps"][1]["name"], "stop edge-1");
    assert_eq!(s["steps"][1]["status"], "passed", "{json}");
}

/// SIGINT once `metrics` has finished and `alerts` has stopped its node: every resource is removed,
/// and the report keeps `metrics`' result, marks `alerts` interrupted, and says interrupted.
#[test]
fn sigint_mid_scenario_removes_every_container_network_and_volume() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let mut child =
        xtask().args(["e2e", "--scenario", "metrics", "--scenario", "alerts"]).stderr(Stdio::piped()).spawn().unwrap();
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
    // Mid-scenario, after a finished one: once `alerts` (which runs after `metrics`) has stopped
    // the edge node. A condition on the run's progress line, not a fixed sleep.
    let mut metrics_done = false;
    loop {
        let line =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("the run got to the fault");
        if let Some(id) = run_id(&line) {
            run = Some(id);
        }
        metrics_done |= line.contains(" metrics / ");
        if line.contains("alerts / stop edge-1") {
            break;
        }
    }
    let run = run.expect("run id");
    assert!(metrics_done, "metrics ran before alerts");
    assert_ne!(leftovers(&run), "", "the run is up");
    // Offline for real: every network of the run is internal (no route out), and no container
    // publishes a port.
    let label = format!("label=io.kubeprepare.e2e.run={run}");
    let nets = Command::new("docker").args(["network", "ls", "-q", "--filter", &label]).output().unwrap();
    let nets: Vec<String> = String::from_utf8_lossy(&nets.stdout).split_whitespace().map(String::from).collect();
    assert_eq!(nets.len(), 3, "a cloud network and two edge networks");
    let internal = Command::new("docker")
        .args(["network", "inspect", "-f", "{{.Name}} {{.Internal}}"])
        .args(&nets)
        .output()
        .unwrap();
    let internal = String::from_utf8_lossy(&internal.stdout).into_owned();
    assert!(internal.lines().all(|l| l.ends_with(" true")), "{internal}");
    let ports = Command::new("docker")
        .args(["ps", "--filter", &label, "--format", "{{.Names}} [{{.Ports}}]"])
        .output()
        .unwrap();
    let ports = String::from_utf8_lossy(&ports.stdout).into_owned();
    assert!(!ports.is_empty() && ports.lines().all(|l| l.ends_with(" []")), "no published port: {ports}");
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let status = child.wait().unwrap();
    assert!(!status.success());
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("interrupted (SIGINT)")), "{rest:?}");
    // It still reports, for CI and the gate to read: what finished keeps its result, the running
    // scenario is interrupted (not a made-up setup failure), and so is the run.
    let json: serde_json::Value = serde_json::from_str(&report(&run, "report.json")).unwrap();
    let scenarios = json["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios.iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["metrics", "alerts"], "{json}");
    assert_eq!(scenarios[0]["status"], "passed", "{json}");
    assert_eq!(scenarios[1]["status"], "interrupted", "{json}");
    assert_eq!(scenarios[1]["signal"], "SIGINT");
    let steps = scenarios[1]["steps"].as_array().unwrap();
    let stop = steps.iter().find(|s| s["name"] == "stop edge-1").expect("the step the signal followed");
    assert_eq!(stop["status"], "passed", "{json}");
    assert!(steps.iter().any(|s| s["status"] == "interrupted"), "{json}");
    let phases: Vec<&str> = json["phases"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(phases.starts_with(&["provision", "load images", "start", "ready"]), "{phases:?}");
    assert!(report(&run, "summary.md").starts_with("# ⏹ e2e interrupted"));
    assert!(report(&run, "junit.xml").contains(r#"<error message="interrupted by SIGINT""#));
    assert!(report(&run, "report.html").contains("interrupted by SIGINT"));
    assert_eq!(leftovers(&run), "", "an interrupted run removes everything it made");
}

#[test]
fn bad_flags_and_the_k3s_backend_fail_clearly() {
    let out = xtask().args(["e2e", "--backend", "k3s"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--backend k3s: the k3s tier is not built yet"), "{err}");
    assert!(err.contains("github.com/k3s-io/k3s@v1.34.2"), "the refused module is named: {err}");
    // A k3s version with the compose tier is a mistake, named as such.
    let out = xtask().args(["e2e", "--k3s", "v1.34.2+k3s1", "--dry-run"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--k3s is a k3s-tier version"));
    let out = xtask().args(["e2e", "--backend", "kubernetes", "--k3s", "v1.34.2+k3s1", "--dry-run"]).output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("the kubernetes tier runs no k3s"));
    // The kubernetes tier's nodes are this machine's arch: another is refused with why.
    let other = if xtask::stack::Arch::host() == Some(xtask::stack::Arch::Arm64) { "amd64" } else { "arm64" };
    let out = xtask().args(["e2e", "--backend", "kubernetes", "--arch", other, "--dry-run"]).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("a {other} node's runc would run under qemu-user")), "{err}");
    // The k3s tier cannot run here, but its plan is printed.
    let out = xtask().args(["e2e", "--backend", "k3s", "--profile", "upstream", "--dry-run"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["images"]["k3s"], "docker.io/rancher/k3s:v1.34.2-k3s1");
    let out = xtask().args(["e2e", "--scenario", "nope", "--dry-run"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no scenario named \"nope\""));
    let out = xtask().args(["e2e", "--edges", "0", "--dry-run"]).output().unwrap();
    assert!(!out.status.success());
    // One run id per arch run: an arch named twice is refused.
    let out = xtask().args(["e2e", "--arch", "amd64,amd64", "--dry-run"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--arch amd64 is given twice"));
    // A bad scenario is refused before anything starts, with its file and line.
    let out = xtask().args(["e2e", "--scenarios-dir", "fixtures/scenarios/bad-names", "--dry-run"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("escape.yaml:3: name: \"../../../x\""));
}

/// The topology of both profiles as data: the contract for the upstream one, whose images
/// cannot run here (Loki, Jaeger, Grafana, Alloy). Every container's image, command, mounts,
/// user, environment, readiness probe and network is in the snapshot.
#[test]
fn the_plan_of_each_profile_is_snapshot_tested() {
    let stack = xtask::stack::load(&xtask::paths::stack_file()).unwrap();
    for profile in ["local", "upstream"] {
        let plan = xtask::e2e::compose::plan::plan(
            &stack,
            profile,
            xtask::stack::Arch::Amd64,
            "RUN",
            2,
            Utf8PathBuf::from("RUN/config"),
            vec!["images/cloud/prometheus.tar".into()],
        )
        .unwrap();
        let text = serde_json::to_string_pretty(&plan)
            .unwrap()
            .replace(root().as_str(), "[ROOT]")
            .replace(&format!("\"{}\"", std::process::id()), "\"[PID]\"")
            .replace(&xtask::e2e::engine::pid_namespace(), "[PIDNS]");
        insta::with_settings!({ snapshot_path => root().join("golden/e2e"), prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(format!("plan-{profile}-amd64"), text);
        });
    }
}

/// The k3s tier runs on GitHub only; here its whole plan (images, archives, containers, files,
/// commands) is snapshot-tested for each arch.
#[test]
fn the_k3s_plan_of_each_arch_is_snapshot_tested() {
    let stack = xtask::stack::load(&xtask::paths::stack_file()).unwrap();
    for arch in [xtask::stack::Arch::Amd64, xtask::stack::Arch::Arm64] {
        let cell = xtask::stack::Cell {
            backend: xtask::stack::Backend::K3s,
            profile: "upstream".into(),
            arch,
            k3s: Some(stack.kubeprepare.k3s.clone()),
            kubeedge: Some(stack.kubeprepare.kubeedge.clone()),
        };
        let plan = xtask::e2e::k3s::plan::plan(&stack, &cell, "RUN", 2, "BUNDLE", "TIER-IMAGES").unwrap();
        let text = serde_json::to_string_pretty(&plan).unwrap();
        insta::with_settings!({ snapshot_path => root().join("golden/e2e"), prepend_module_to_snapshot => false }, {
            insta::assert_snapshot!(format!("k3s-plan-{arch}"), text);
        });
    }
}

/// The workload scripts for real, with the local bundle's busybox and the upstream plan's own
/// container specs, on a network of the test's own: the edge workload writes its pod log in CRI
/// format where the log agent tails it, and its traced call to the cloud yields one trace of an
/// `edge-workload` CLIENT span and a `cloud-api` SERVER span, the cloud span its child (the W3C
/// traceparent crossed the call). Spans go to the harness' receiver instead of the agent and Jaeger.
#[test]
fn the_workload_writes_pod_logs_and_its_traced_call_crosses_the_link() {
    use xtask::e2e::engine::Engine;
    use xtask::e2e::receiver::Receiver;
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stack = xtask::stack::load(&xtask::paths::stack_file()).unwrap();
    let bundle = xtask::e2e::provision::bundle(&stack, "local", xtask::stack::Arch::Amd64).unwrap();
    let run = format!("e2e-workload-test-{}", std::process::id());
    let _cleanup = RemoveRun(run.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let engine = Engine::connect().await.unwrap();
        let busybox = engine.load_archive(&bundle.join("images/edge/edge-probe.tar")).await.unwrap().remove(0);
        let plan = xtask::e2e::compose::plan::plan(
            &stack,
            "upstream",
            xtask::stack::Arch::Amd64,
            &run,
            1,
            "unused".into(),
            vec![],
        )
        .unwrap();
        let labels = plan.containers[0].spec.labels.clone();
        let network = format!("{run}-net");
        engine.create_network(&network, &labels).await.unwrap();
        let pods = format!("{run}-pods");
        engine.create_volume(&pods, &labels).await.unwrap();
        let receiver = Receiver::start(engine.network_gateway(&network).await.unwrap()).await.unwrap();
        let otlp = receiver.url_of("/v1/traces");
        let mut edge = plan.container("edge-probe", Some("edge-1")).unwrap().spec.clone();
        let mut cloud = plan.container("cloud-api", None).unwrap().spec.clone();
        assert_eq!(edge.env.get("OTLP_URL").map(String::as_str), Some("http://jaeger:4318/v1/traces"));
        assert_eq!(cloud.env.get("OTLP_URL").map(String::as_str), Some("http://jaeger:4318/v1/traces"));
        assert_eq!(edge.env.get("CLOUD_API_URL").map(String::as_str), Some("http://cloud-api:8080/cgi-bin/work"));
        for spec in [&mut edge, &mut cloud] {
            spec.image = busybox.clone();
            spec.platform = "linux/amd64".into();
            spec.network = network.clone();
            spec.env.insert("OTLP_URL".into(), otlp.clone());
        }
        edge.aliases = vec!["edge-1".into()];
        edge.volumes = [(pods.clone(), "/var/log/pods".to_string())].into();
        edge.env.insert("INTERVAL".into(), "1".into());
        cloud.aliases = vec!["cloud-api".into()];
        engine.run(&cloud).await.unwrap();
        engine.run(&edge).await.unwrap();

        // One linked pair of spans.
        let deadline = Instant::now() + Duration::from_secs(60);
        let spans = loop {
            let spans: Vec<serde_json::Value> = receiver
                .posts("/v1/traces")
                .iter()
                .map(|b| serde_json::from_slice::<serde_json::Value>(b).expect("OTLP JSON"))
                .collect();
            let service = |s: &serde_json::Value| {
                s["resourceSpans"][0]["resource"]["attributes"][0]["value"]["stringValue"].clone()
            };
            let span = |s: &serde_json::Value| s["resourceSpans"][0]["scopeSpans"][0]["spans"][0].clone();
            // (caller, callee): the edge's CLIENT span and the cloud's SERVER span under it.
            let pair = spans.iter().filter(|s| service(s) == "cloud-api").find_map(|e| {
                let e = span(e);
                spans
                    .iter()
                    .filter(|c| service(c) == "edge-workload")
                    .map(span)
                    .find(|c| c["traceId"] == e["traceId"] && e["parentSpanId"] == c["spanId"])
                    .map(|c| (c, e))
            });
            if let Some(pair) = pair {
                break pair;
            }
            assert!(
                Instant::now() < deadline,
                "no linked spans within 60 s; received: {spans:?}\nedge: {}\ncloud: {}",
                engine.logs(&edge.name, 20).await.unwrap_or_default(),
                engine.logs(&cloud.name, 20).await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        };
        let (c, e) = spans;
        assert_eq!((c["kind"].as_i64(), e["kind"].as_i64()), (Some(3), Some(2)), "client and server kinds");
        let hex = |v: &serde_json::Value, n: usize| {
            v.as_str()
                .is_some_and(|s| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
        };
        assert!(hex(&c["traceId"], 32) && hex(&c["spanId"], 16) && hex(&e["spanId"], 16), "{c} {e}");
        let ns = |v: &serde_json::Value| v.as_str().and_then(|s| s.parse::<u128>().ok()).unwrap();
        assert!(
            ns(&c["startTimeUnixNano"]) <= ns(&e["startTimeUnixNano"]),
            "the call starts after its caller: {c} {e}"
        );
        assert!(ns(&e["endTimeUnixNano"]) <= ns(&c["endTimeUnixNano"]), "and ends before it: {c} {e}");
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        assert!(now.abs_diff(ns(&c["startTimeUnixNano"])) < 120_000_000_000, "span times are wall-clock times: {c}");

        // The pod log, where the agent's path rule takes namespace, pod and container from.
        let found =
            engine.exec(&edge.name, &["/bin/busybox", "find", "/var/log/pods", "-name", "*.log"]).await.unwrap();
        let path = found.trim();
        let parts: Vec<&str> = path.trim_start_matches("/var/log/pods/").split('/').collect();
        assert_eq!(parts.len(), 3, "{path}");
        let pod_dir: Vec<&str> = parts[0].splitn(3, '_').collect();
        assert_eq!(
            (pod_dir[0], pod_dir[1], parts[1], parts[2]),
            ("e2e", "workload-edge-1", "workload", "0.log"),
            "{path}"
        );
        let log = engine.exec(&edge.name, &["/bin/busybox", "cat", path]).await.unwrap();
        let line = log.lines().next().expect("a log line");
        let (time, rest) = line.split_once(' ').unwrap();
        assert!(time.len() == 30 && time.ends_with('Z') && time.as_bytes()[10] == b'T', "RFC 3339 nanoseconds: {line}");
        assert_eq!(
            rest, "stdout F level=info msg=\"edge workload tick\" node=edge-1 seq=1",
            "CRI: stream, flag, content"
        );
        engine.remove_run(&run).await.unwrap();
    });
    assert_eq!(leftovers(&run), "");
}

/// The compose tier's edges are behind NAT, as real edges are: on networks of the test's own, the
/// cloud cannot open a connection to an edge while the edge's own connections to the cloud work;
/// a cut stops the edge's traffic both ways, and a heal restores it.
#[test]
fn the_cloud_cannot_dial_an_edge_and_a_cut_stops_both_ways() {
    use xtask::e2e::compose::link::Link;
    use xtask::e2e::engine::{ContainerSpec, Engine};
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stack = xtask::stack::load(&xtask::paths::stack_file()).unwrap();
    let bundle = xtask::e2e::provision::bundle(&stack, "local", xtask::stack::Arch::Amd64).unwrap();
    let run = format!("e2e-nat-test-{}", std::process::id());
    let _cleanup = RemoveRun(run.clone());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let engine = Engine::connect().await.unwrap();
        let busybox = engine.load_archive(&bundle.join("images/edge/edge-probe.tar")).await.unwrap().remove(0);
        let plan =
            xtask::e2e::compose::plan::plan(&stack, "local", xtask::stack::Arch::Amd64, &run, 1, "unused".into(), vec![]).unwrap();
        let labels = plan.containers[0].spec.labels.clone();
        let (cloud_net, edge_net) = (format!("{run}-cloud"), format!("{run}-edge"));
        for n in [&cloud_net, &edge_net] {
            engine.create_network(n, &labels).await.unwrap();
        }
        // Both serve a page on :8080.
        let server = |name: &str, network: &str| ContainerSpec {
            name: format!("{run}-{name}"),
            image: busybox.clone(),
            entrypoint: Some(vec!["/bin/busybox".into()]),
            cmd: ["sh", "-c", "/bin/busybox mkdir -p /tmp/w && echo up >/tmp/w/index.html && exec /bin/busybox httpd -f -p 8080 -h /tmp/w"]
                .map(String::from)
                .to_vec(),
            env: Default::default(),
            user: None,
            network: network.into(),
            aliases: vec![name.into()],
            binds: Default::default(),
            volumes: Default::default(),
            labels: labels.clone(),
            platform: "linux/amd64".into(),
        };
        let (cloud, edge) = (server("cloud", &cloud_net), server("edge", &edge_net));
        engine.run(&cloud).await.unwrap();
        engine.run(&edge).await.unwrap();
        engine.connect_network(&cloud_net, &edge.name, &["edge".into()]).await.unwrap();
        let edge_ip = engine.address(&edge.name, &cloud_net).await.unwrap().expect("the edge is on the cloud network");
        let link = Link::of(&engine, &edge.name, &cloud_net).await.unwrap();
        let get = |from: &str, url: String| {
            let engine = &engine;
            let from = from.to_string();
            async move {
                let cmd = format!("/bin/busybox timeout 3 /bin/busybox wget -q -O- {url} && echo REACHED || echo FAILED");
                let out = engine.exec(&from, &["/bin/busybox", "sh", "-c", &cmd]).await.unwrap();
                out.contains("REACHED")
            }
        };
        let to_edge = format!("http://{edge_ip}:8080/");
        let to_cloud = "http://cloud:8080/".to_string();
        // Before NAT both ways work (once both servers listen): the checks below can fail.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !(get(&cloud.name, to_edge.clone()).await && get(&edge.name, to_cloud.clone()).await) {
            assert!(Instant::now() < deadline, "the cloud and the edge do not reach each other before NAT");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        link.install().await.unwrap();
        link.install().await.unwrap();
        assert!(!get(&cloud.name, to_edge.clone()).await, "behind NAT the cloud must not reach the edge");
        assert!(get(&edge.name, to_cloud.clone()).await, "the edge reaches the cloud");
        link.cut().await.unwrap();
        assert!(!get(&edge.name, to_cloud.clone()).await, "a cut link carries nothing from the edge");
        link.heal().await.unwrap();
        assert!(get(&edge.name, to_cloud).await, "the healed link carries the edge's traffic again");
        assert!(!get(&cloud.name, to_edge).await, "and still none from the cloud");
        engine.remove_run(&run).await.unwrap();
    });
    assert_eq!(leftovers(&run), "");
}

/// Removes a run's containers, networks and volumes when dropped, also when the test panics.
struct RemoveRun(String);

impl Drop for RemoveRun {
    fn drop(&mut self) {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        let _ = rt.block_on(async { xtask::e2e::engine::Engine::connect().await?.remove_run(&self.0).await });
    }
}

/// The compose configs and the plan agree, for the profile that cannot run here: every host:port a
/// rendered config points at (Grafana's datasources, the log agents' Loki, Prometheus' targets)
/// is a planned container's alias and port, and Loki keeps its data on the planned volume.
#[test]
fn the_upstream_configs_point_at_what_the_plan_runs() {
    let stack = xtask::stack::load(&xtask::paths::stack_file()).unwrap();
    let arch = xtask::stack::Arch::Amd64;
    let plan =
        xtask::e2e::compose::plan::plan(&stack, "upstream", arch, "RUN", 2, "RUN/config".into(), vec![]).unwrap();
    let topology = xtask::render::ComposeTopology {
        edges: plan.edges.keys().cloned().collect(),
        alert_webhook_url: "http://172.18.0.1:39000/alerts".parse().unwrap(),
    };
    let files =
        xtask::render::render(&xtask::render::Ctx::compose(&stack, "upstream", arch, &topology).unwrap()).unwrap();
    // Every (name, port) the plan serves: what the configs may point at.
    let served: Vec<(String, u16)> = plan
        .containers
        .iter()
        .flat_map(|c| {
            let ports: Vec<u16> = c.ports.iter().copied().chain(c.ready.as_ref().map(|r| r.port)).collect();
            let names: Vec<String> = match &c.node {
                // An edge component is reached by its node's name (the holder's alias on the cloud network).
                Some(node) => vec![node.clone()],
                None => c.spec.aliases.clone(),
            };
            names.into_iter().flat_map(move |n| ports.clone().into_iter().map(move |p| (n.clone(), p)))
        })
        .collect();
    let check = |file: &str, target: &str| {
        let (host, port) = target.rsplit_once(':').unwrap_or_else(|| panic!("{file}: {target} has no port"));
        let port: u16 = port.parse().unwrap();
        assert!(
            host == "localhost" || served.contains(&(host.to_string(), port)),
            "{file} points at {target}, which the plan does not run; it runs {served:?}"
        );
    };
    let yaml = |f: &str| serde_yaml_ng::from_str::<serde_json::Value>(files.get(f).unwrap()).unwrap();
    for ds in yaml("grafana/datasources/datasources.yaml")["datasources"].as_array().unwrap() {
        check("grafana datasources", ds["url"].as_str().unwrap().trim_start_matches("http://"));
    }
    for node in plan.edges.keys() {
        let alloy = files.get(&format!("log-agent/{node}/config.alloy")).unwrap();
        let url = alloy.split("url = \"").nth(1).and_then(|r| r.split('"').next()).unwrap();
        check("alloy", url.trim_start_matches("http://").split('/').next().unwrap());
    }
    let prometheus = yaml("prometheus/prometheus.yml");
    for job in prometheus["scrape_configs"].as_array().unwrap() {
        for sc in job["static_configs"].as_array().into_iter().flatten() {
            for t in sc["targets"].as_array().unwrap() {
                // Blackbox probe targets are what the blackbox exporter dials, also planned.
                check(&format!("prometheus job {}", job["job_name"]), t.as_str().unwrap());
            }
        }
    }
    for c in &plan.containers {
        for (k, v) in c.spec.env.iter().filter(|(_, v)| v.starts_with("http://")) {
            check(&format!("{} env {k}", c.component), v.trim_start_matches("http://").split('/').next().unwrap());
        }
    }
    let loki = yaml("loki/config.yaml");
    let data = plan.container("loki", None).unwrap().spec.volumes.values().next().unwrap().clone();
    assert_eq!(loki["common"]["path_prefix"].as_str(), Some(data.as_str()), "Loki writes on its volume");
    assert_eq!(loki["schema_config"]["configs"][0]["schema"], "v13", "Loki 3 needs v13 on tsdb");
    assert_eq!(loki["ingester"]["lifecycler"]["min_ready_duration"], "0s");
}

/// `docker load` names docker.io images by their familiar name (`busybox:1.37.0`); the engine
/// reports them in full form, as plans name them, so the upstream profile's images are found.
#[test]
fn docker_io_images_load_under_their_full_names() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let stack = xtask::stack::load(&xtask::paths::stack_file()).unwrap();
    let bundle = xtask::e2e::provision::bundle(&stack, "local", xtask::stack::Arch::Amd64).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let tar = Utf8PathBuf::from_path_buf(tmp.path().join("busybox.tar")).unwrap();
    let name = format!("docker.io/library/busybox:e2e-test-{}", std::process::id());
    rt.block_on(async {
        let engine = xtask::e2e::engine::Engine::connect().await.unwrap();
        let probe = engine.load_archive(&bundle.join("images/edge/edge-probe.tar")).await.unwrap().remove(0);
        let docker = |args: &[&str]| {
            let o = Command::new("docker").args(args).output().unwrap();
            assert!(o.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8_lossy(&o.stdout).into_owned()
        };
        docker(&["tag", &probe, &name]);
        docker(&["save", "-o", tar.as_str(), &name]);
        docker(&["rmi", &name]);
        let loaded = engine.load_archive(&tar).await.unwrap();
        docker(&["rmi", &name]);
        assert_eq!(loaded, std::slice::from_ref(&name), "the familiar name is reported in full");
    });
}

/// The workload scripts are POSIX sh as busybox runs them; shellcheck reads every one.
#[test]
fn the_workload_scripts_pass_shellcheck() {
    let shellcheck = xtask::tools::SHELLCHECK.find().unwrap();
    let dir = root().join("fixtures/e2e/workload");
    let out = Command::new(shellcheck.as_str())
        .current_dir(&dir)
        .args(["-S", "style", "-s", "sh", "-x", "lib.sh", "edge-workload.sh", "cloud-api.sh", "www/cgi-bin/work"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
}
