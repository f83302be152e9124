//! Rendering: golden snapshots (insta, in golden/render/), determinism, and the
//! drift check behind `cargo xtask render --check`; both flavours (Kubernetes, and the
//! compose tier's under golden/render/compose/).

use std::collections::BTreeSet;

use camino::Utf8PathBuf;
use serde_yaml_ng::Value;
use std::time::Duration;
use xtask::golden::{self, Drift};
use xtask::render::{self, ComposeTopology, Ctx, Files};

use xtask::stack::{self, Arch, Stack};
use xtask::validate::{self, Outcome};
use xtask::{paths, tools};

fn project_stack() -> Stack {
    stack::load(&paths::stack_file()).unwrap_or_else(|e| panic!("{e:#}"))
}

fn all() -> Vec<(String, Arch, Files)> {
    render::render_all(&project_stack()).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Both flavours: what golden/render/ holds.
fn golden_sets() -> Vec<(String, Arch, Files)> {
    render::render_golden(&project_stack()).unwrap_or_else(|e| panic!("{e:#}"))
}

fn sets(all: &[(String, Arch, Files)]) -> Vec<(String, Arch, &Files)> {
    all.iter().map(|(p, a, f)| (p.clone(), *a, f)).collect()
}

/// Every rendered file equals its insta snapshot in golden/render/<profile>/<arch>/
/// (compose flavour: golden/render/compose/<profile>/<arch>/).
#[test]
fn rendered_files_match_golden_snapshots() {
    for (profile, arch, files) in golden_sets() {
        insta::with_settings!({
            snapshot_path => golden::dir(&profile, arch),
            prepend_module_to_snapshot => false,
        }, {
            for (rel, contents) in files.iter() {
                insta::assert_snapshot!(golden::snapshot_name(rel), contents);
            }
        });
    }
}

/// `cargo xtask render --check` over the committed golden/: no drift, no unreferenced snapshot.
#[test]
fn golden_dir_has_no_drift_and_no_unreferenced_snapshot() {
    let all = golden_sets();
    let drift = golden::check(&sets(&all)).unwrap();
    let text: Vec<String> = drift.iter().map(ToString::to_string).collect();
    assert!(drift.is_empty(), "golden/ is stale; run `cargo xtask render --bless`:\n{}", text.join("\n"));
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(golden_sets(), golden_sets());
}

#[test]
fn every_profile_and_arch_of_the_matrix_renders() {
    let all = all();
    let s = project_stack();
    assert_eq!(all.len(), s.profiles.len() * s.matrix.arch.len());
    for (p, a, files) in &all {
        for must in [
            "prometheus/prometheus.yml",
            "prometheus/rules/observability.rules.yml",
            "alertmanager/alertmanager.yml",
            "manifests/00-namespace.yaml",
        ] {
            assert!(files.get(must).is_some(), "{p}/{a} lacks {must}");
        }
    }
}

/// The drift check fails on an edited, a missing and an unreferenced snapshot, naming each file.
#[test]
fn drift_check_names_edited_missing_and_unreferenced_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();
    let all = all();
    let sets = sets(&all);
    golden::bless_in(&root, &sets).unwrap();
    assert!(golden::check_in(&root, &sets).unwrap().is_empty(), "fresh snapshots must match");

    let (profile, arch, files) = &all[0];
    let mut rels = files.iter().map(|(r, _)| r.to_path_buf());
    let edited =
        golden::dir_in(&root, profile, *arch).join(format!("{}.snap", golden::snapshot_name(&rels.next().unwrap())));
    let removed =
        golden::dir_in(&root, profile, *arch).join(format!("{}.snap", golden::snapshot_name(&rels.next().unwrap())));
    let extra = golden::dir_in(&root, profile, *arch).join("nobody__renders__this.snap");
    let text = std::fs::read_to_string(&edited).unwrap();
    std::fs::write(&edited, format!("{text}# an edit\n")).unwrap();
    std::fs::remove_file(&removed).unwrap();
    std::fs::write(&extra, golden::snapshot_text("x")).unwrap();

    let drift = golden::check_in(&root, &sets).unwrap();
    assert_eq!(drift.len(), 3, "{drift:?}");
    assert!(drift.iter().any(|d| matches!(d, Drift::Changed { snapshot, .. } if *snapshot == edited)));
    assert!(drift.iter().any(|d| matches!(d, Drift::Missing { snapshot } if *snapshot == removed)));
    assert!(drift.iter().any(|d| matches!(d, Drift::Unreferenced { snapshot } if *snapshot == extra)));
    for d in &drift {
        assert!(d.to_string().contains(".snap"), "{d}");
    }
}

/// The real command: `cargo xtask render --check` passes on the committed golden/.
#[test]
fn render_check_command_passes() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["render", "--check"])
        .output()
        .expect("xtask runs");
    assert!(out.status.success(), "render --check failed:\n{}", String::from_utf8_lossy(&out.stderr));
}

/// `render --out` writes every file, scripts executable, and nothing half-written.
#[test]
fn render_writes_files_to_out() {
    let tmp = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["render", "--profile", "upstream", "--arch", "arm64", "--out"])
        .arg(tmp.path())
        .output()
        .expect("xtask runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let written = tmp.path().join("prometheus/prometheus.yml");
    assert!(written.is_file());
    let leftovers: Vec<_> = walk(tmp.path()).into_iter().filter(|p| p.to_string_lossy().contains(".tmp-")).collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

/// Bad flags name the problem and exit non-zero.
#[test]
fn bad_flags_are_refused_with_a_reason() {
    for (args, needle) in [
        (vec!["render", "--profile", "nope"], "no profile \"nope\""),
        (vec!["render", "--arch", "riscv64"], "invalid value 'riscv64'"),
        (vec!["render", "--out", "/tmp/x"], "--out needs exactly one profile and arch"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_xtask")).args(&args).output().expect("xtask runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} should fail");
        assert!(err.contains(needle), "{args:?}: stderr lacks {needle:?}:\n{err}");
    }
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

// ---- the compose flavour ----

fn compose(profile: &str, f: impl FnOnce(&Ctx<'_>, &Files)) {
    let stack = project_stack();
    let topology = ComposeTopology::golden();
    let ctx = Ctx::compose(&stack, profile, Arch::Amd64, &topology).unwrap_or_else(|e| panic!("{e:#}"));
    let files = render::render(&ctx).unwrap_or_else(|e| panic!("{e:#}"));
    f(&ctx, &files)
}

fn yaml(files: &Files, rel: &str) -> Value {
    serde_yaml_ng::from_str(files.get(rel).unwrap_or_else(|| panic!("{rel} not rendered"))).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence().into_iter().flatten().filter_map(|s| s.as_str().map(String::from)).collect()
}

/// Only what the compose containers read: no manifests, scripts, KubeEdge patches or chart values.
#[test]
fn compose_renders_only_what_its_containers_read() {
    let rendered = |profile: &str| {
        let mut out = BTreeSet::new();
        compose(profile, |_, files| out = files.iter().map(|(p, _)| p.to_string()).collect());
        out
    };
    let common = [
        "alertmanager/alertmanager.yml",
        "blackbox/blackbox.yml",
        "jaeger/config.yaml",
        "prometheus/prometheus.yml",
        "prometheus/rules/observability.rules.yml",
        "prometheus/rules/observability.test.yml",
    ];
    let local: BTreeSet<String> =
        common.iter().chain(&["edge-metrics/prometheus.yml", "log-agent/agent.yaml"]).map(|s| s.to_string()).collect();
    assert_eq!(rendered("local"), local);
    let mut upstream: BTreeSet<String> = common.iter().map(|s| s.to_string()).collect();
    upstream.extend(
        [
            "grafana/datasources/datasources.yaml",
            "log-agent/edge-1/config.alloy",
            "log-agent/edge-2/config.alloy",
            "loki/config.yaml",
        ]
        .map(String::from),
    );
    assert_eq!(rendered("upstream"), upstream);
}

/// Static targets by alias, no Kubernetes discovery, no `.svc` name; and no job dials an edge:
/// edges are behind NAT, and their agents push (the remote-write receiver takes it, replays up to
/// the buffer window old), each series labelled with its node.
#[test]
fn compose_prometheus_scrapes_the_cloud_only_and_edges_push() {
    compose("local", |ctx, files| {
        let text = files.get("prometheus/prometheus.yml").unwrap();
        assert!(!text.contains("kubernetes_sd_configs") && !text.contains(".svc"), "{text}");
        let cfg = yaml(files, "prometheus/prometheus.yml");
        assert_eq!(cfg["global"]["scrape_interval"].as_str(), Some("2s"));
        assert_eq!(cfg["global"]["evaluation_interval"].as_str(), Some("2s"));
        assert_eq!(
            strings(&cfg["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]),
            ["alertmanager:9093"]
        );
        let jobs = cfg["scrape_configs"].as_sequence().unwrap();
        let names: Vec<&str> = jobs.iter().filter_map(|j| j["job_name"].as_str()).collect();
        assert_eq!(names, ["prometheus", "alertmanager", "blackbox-exporter", "jaeger"]);
        for edge in &ctx.compose_topology().unwrap().edges {
            assert!(!text.contains(edge.as_str()), "a cloud job names edge {edge}: {text}");
        }
        let window = ctx.stack.e2e.buffer_window.to_string();
        assert_eq!(cfg["storage"]["tsdb"]["out_of_order_time_window"].as_str(), Some(window.as_str()));
        let agent = yaml(files, "edge-metrics/prometheus.yml");
        assert_eq!(agent["global"]["external_labels"]["node"].as_str(), Some("${K8S_NODE_NAME}"));
        let rw = &agent["remote_write"][0];
        assert_eq!(rw["url"].as_str(), Some("http://prometheus:9090/api/v1/write"));
        assert_eq!(rw["queue_config"]["sample_age_limit"].as_str(), Some(window.as_str()));
        // What the agent dials: a job's targets, or the exporter a probe job's relabeling sends them to.
        let dialled: Vec<String> = agent["scrape_configs"]
            .as_sequence()
            .unwrap()
            .iter()
            .flat_map(|j| {
                let exporter = j["relabel_configs"].as_sequence().into_iter().flatten().find_map(|r| {
                    (r["target_label"].as_str() == Some("__address__"))
                        .then(|| r["replacement"].as_str().unwrap().to_string())
                });
                match exporter {
                    Some(address) => vec![address],
                    None => {
                        j["static_configs"].as_sequence().unwrap().iter().flat_map(|s| strings(&s["targets"])).collect()
                    }
                }
            })
            .collect();
        assert_eq!(dialled, ["127.0.0.1:9095", "127.0.0.1:9100", "127.0.0.1:9115"]);
    });
}

/// Every waiting rule waits `[e2e] alert_for`, but the link probe, which waits two scrape intervals
/// more (its node-down inhibitor fires first); Watchdog still does not wait; the group evaluates
/// at `[e2e]`'s interval.
#[test]
fn compose_rules_take_the_e2e_for_and_interval() {
    for profile in ["local", "upstream"] {
        compose(profile, |ctx, files| {
            let rules = yaml(files, "prometheus/rules/observability.rules.yml");
            let group = &rules["groups"][0];
            assert_eq!(group["interval"].as_str(), Some("2s"));
            for r in group["rules"].as_sequence().unwrap() {
                let name = r["alert"].as_str().unwrap();
                let e = &ctx.stack.e2e;
                let want = match name {
                    "Watchdog" => None,
                    _ => Some(e.alert_for.to_string()),
                };
                assert_eq!(r["for"].as_str().map(String::from), want, "{profile}: {name}");
            }
            // No rule on what only k3s + KubeEdge produce (kube-state-metrics, cloudcore, the tunnel).
            let text = files.get("prometheus/rules/observability.rules.yml").unwrap();
            for absent in ["kube_node", "kubeedge-", "container_memory", "kps-"] {
                assert!(!text.contains(absent), "{profile}: compose rules mention {absent}");
            }
        });
    }
}

/// Alertmanager posts to the harness' webhook with `[e2e]` timing; Watchdog's route keeps
/// `group_wait: 0s` and repeats every `watchdog_repeat_interval`, so it keeps arriving in a run.
#[test]
fn compose_alertmanager_posts_to_the_harness_webhook_with_e2e_timing() {
    let stack = project_stack();
    let k8s = render::render(&Ctx::new(&stack, "local", Arch::Amd64).unwrap()).unwrap();
    let k8s = yaml(&k8s, "alertmanager/alertmanager.yml");
    compose("local", |ctx, files| {
        let cfg = yaml(files, "alertmanager/alertmanager.yml");
        let e = &ctx.stack.e2e;
        for r in cfg["receivers"].as_sequence().unwrap() {
            assert_eq!(r["webhook_configs"][0]["url"].as_str(), Some("http://172.18.0.1:39000/alerts"));
        }
        let route = &cfg["route"];
        assert_eq!(route["group_wait"].as_str(), Some(e.group_wait.to_string().as_str()));
        assert_eq!(route["group_interval"].as_str(), Some(e.group_interval.to_string().as_str()));
        assert_eq!(route["repeat_interval"].as_str(), Some(e.repeat_interval.to_string().as_str()));
        let routes = route["routes"].as_sequence().unwrap();
        let watchdog = &routes[0];
        assert_eq!(watchdog["matchers"], k8s["route"]["routes"][0]["matchers"]);
        assert_eq!(watchdog["group_wait"].as_str(), Some("0s"));
        assert_eq!(watchdog["group_interval"].as_str(), Some(e.group_interval.to_string().as_str()));
        assert_eq!(watchdog["repeat_interval"].as_str(), Some(e.watchdog_repeat_interval.to_string().as_str()));
        assert_ne!(watchdog["repeat_interval"], k8s["route"]["routes"][0]["repeat_interval"]);
        for r in &routes[1..] {
            assert_eq!(r["group_wait"].as_str(), Some(e.group_wait.to_string().as_str()), "{r:?}");
        }
        assert_eq!(cfg["inhibit_rules"], k8s["inhibit_rules"]);
    });
}

/// The real tools accept the compose files: `promtool check config --syntax-only`, `amtool
/// check-config`, `promtool check rules` / `test rules` (the promtool cases still hold with the
/// compose `for`), `blackbox_exporter --config.check`, `jaeger validate` and the edge agent's
/// `validate`.
#[test]
fn compose_files_pass_their_real_validators() {
    tools::require_validators().unwrap_or_else(|e| panic!("{e:#}"));
    for profile in ["local", "upstream"] {
        compose(profile, |_, files| {
            let tmp = tempfile::tempdir().unwrap();
            let dir = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();
            let report = validate::validate(files, &dir).unwrap();
            let failed: Vec<String> = report.failed().map(ToString::to_string).collect();
            assert!(failed.is_empty(), "{profile}:\n{}", failed.join("\n"));
            // The edge agent built here checks its own config (local), as Jaeger does its own.
            let agent = (profile == "local").then_some("log-agent/agent.yaml");
            for must in [
                "prometheus/prometheus.yml",
                "alertmanager/alertmanager.yml",
                "prometheus/rules/observability.test.yml",
                "jaeger/config.yaml",
            ]
            .into_iter()
            .chain(agent)
            {
                assert!(
                    report.checks.iter().any(|c| c.file.as_str() == must && c.outcome == Outcome::Passed),
                    "{profile}: {must} was not checked"
                );
            }
            for c in &report.checks {
                if let Outcome::NotRun(why) = &c.outcome {
                    // Only what this machine may not run: AGPL programs and charts it cannot fetch;
                    // a file with no validator at all fails here.
                    let allowed = why.contains(" is AGPL and is not built here") || why.contains("cannot be fetched");
                    assert!(allowed, "{profile}: {}: unexpected not-run: {why}", c.file);
                }
            }
        });
    }
}

/// The bound is detection + evaluation + `for` + group_wait: with the compose defaults 18s for a
/// node that stops pushing (8s of silence), 16s for a fault the edge pushes (two of its scrapes
/// and the send deadline), well inside the
/// run; the Kubernetes flavour's own timing gives minutes.
#[test]
fn alert_bounds_follow_the_flavours_timing() {
    compose("local", |ctx, _| {
        assert_eq!(render::rules::alert_bound(ctx, "EdgeNodeUnreachable"), Some(Duration::from_secs(18)));
        assert_eq!(render::rules::alert_bound(ctx, "EdgeNodeExporterDown"), Some(Duration::from_secs(16)));
        assert_eq!(render::rules::alert_bound(ctx, "Watchdog"), Some(Duration::from_secs(6)));
        assert_eq!(render::rules::alert_bound(ctx, "EdgeNodeNotReady"), None, "a k3s-only alert in compose");
        // Every alert of the catalog has a bound.
        let names = render::rules::alert_names(ctx);
        let bounds: std::collections::BTreeMap<String, Duration> =
            names.iter().filter_map(|a| Some((a.clone(), render::rules::alert_bound(ctx, a)?))).collect();
        assert_eq!(bounds.keys().cloned().collect::<Vec<_>>(), names);
        assert!(bounds.values().all(|b| *b <= Duration::from_secs(30)), "{bounds:?}");
    });
    let stack = project_stack();
    let k8s = Ctx::new(&stack, "local", Arch::Amd64).unwrap();
    // 4 × 30s of silence + 30s + 60s + 10s (critical group_wait).
    assert_eq!(render::rules::alert_bound(&k8s, "EdgeNodeUnreachable"), Some(Duration::from_secs(220)));
}

/// A topology the compose tier cannot run is refused before anything renders.
#[test]
fn compose_refuses_a_bad_topology() {
    let stack = project_stack();
    let good = ComposeTopology::golden();
    for (topology, needle) in [
        (ComposeTopology { edges: vec![], ..good.clone() }, "no edge node"),
        (ComposeTopology { edges: vec!["Edge_1".into()], ..good.clone() }, "not a DNS label"),
        (ComposeTopology { edges: vec!["edge-1".into(), "edge-1".into()], ..good.clone() }, "twice"),
        (ComposeTopology { alert_webhook_url: "172.18.0.1:39000".into(), ..good.clone() }, "invalid URL"),
    ] {
        let err = Ctx::compose(&stack, "local", Arch::Amd64, &topology).err().map(|e| format!("{e:#}"));
        assert!(err.as_deref().is_some_and(|e| e.contains(needle)), "{topology:?}: {err:?}");
    }
}
