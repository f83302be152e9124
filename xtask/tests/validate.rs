//! Every rendered file is checked by the real tool that will read it: promtool, amtool and
//! blackbox_exporter built from their modules at the versions the bundle ships (stack.toml's
//! `[programs]`), shellcheck from Debian (installed by `.ci/run`). A missing tool fails the test
//! with the install command.

use camino::Utf8PathBuf;
use xtask::render::{self, Ctx};
use xtask::stack::{self, Arch};
use xtask::validate::{self, Outcome};
use xtask::{paths, tools};

fn tmpdir() -> (tempfile::TempDir, Utf8PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = Utf8PathBuf::from_path_buf(t.path().to_path_buf()).unwrap();
    (t, p)
}

#[test]
fn every_rendered_file_passes_its_real_validator() {
    if let Err(e) = tools::require_validators() {
        panic!("{e:#}");
    }
    let stack = stack::load(&paths::stack_file()).unwrap();
    let mut passed = 0;
    for profile in stack.profiles.keys() {
        for &arch in &stack.matrix.arch {
            let ctx = Ctx::new(&stack, profile.as_str(), arch).unwrap();
            let files = render::render(&ctx).unwrap();
            let (_t, dir) = tmpdir();
            let report = validate::validate(&files, &dir).unwrap();
            let failed: Vec<String> = report.failed().map(ToString::to_string).collect();
            assert!(failed.is_empty(), "{profile}/{arch}:\n{}", failed.join("\n"));
            // Only what truly cannot run here may be "not run".
            for c in &report.checks {
                if let Outcome::NotRun(why) = &c.outcome {
                    let allowed = why.contains("cannot be fetched") || why.contains("is AGPL and is not built here");
                    assert!(allowed, "{}: unexpected not-run: {why}", c.file);
                }
            }
            // Every file was looked at by something.
            assert_eq!(
                report.checks.iter().map(|c| &c.file).collect::<std::collections::BTreeSet<_>>().len(),
                files.len()
            );
            passed += report.count(|o| *o == Outcome::Passed);
        }
    }
    assert!(passed > 20, "only {passed} checks passed");
}

/// The validators can fail: a broken file of each kind is refused.
#[test]
fn validators_refuse_broken_files() {
    tools::require_validators().unwrap_or_else(|e| panic!("{e:#}"));
    let stack = stack::load(&paths::stack_file()).unwrap();
    let ctx = Ctx::new(&stack, "upstream", Arch::Amd64).unwrap();
    let good = render::render(&ctx).unwrap();
    let cases = [
        ("prometheus/rules/observability.rules.yml", "expr: vector(1)", "expr: vector(1) +"),
        ("alertmanager/alertmanager.yml", "receiver:", "receiver: no-such-receiver\n  x_receiver:"),
        ("blackbox/blackbox.yml", "prober: tcp", "prober: tcp\n    timeout_typo: 5s"),
        ("prometheus/prometheus.yml", "scrape_interval:", "scrape_interval: soon\n  x_interval:"),
        // Kubernetes SD reaches the pinned promtool unmodified: it alone knows the roles.
        ("prometheus/additional-scrape-configs.yml", "- role: node", "- role: nodes"),
        // Jaeger reads its own settings: a misspelt one is refused.
        ("values/jaeger.yaml", "max_traces:", "max_tracez:"),
        // The chart reads blackbox.yml whole from the Secret: a `config` (merged by Helm) or a
        // Secret that is not blackbox.yml is refused.
        ("values/blackbox-exporter.yaml", "configExistingSecretName:", "config: {}\nconfigExistingSecretName:"),
        ("manifests/05-blackbox-config.yaml", "prober: tcp", "prober: icmp"),
        ("manifests/20-edge-node-exporter.yaml", "hostNetwork: true", "hostNetwork: true\n      hostNetwrok: true"),
        ("scripts/install-observability.sh", "set -euo pipefail", "set -euo pipefail\ncd $HOME"),
    ];
    // The edge agent reads its own config (compose flavour of the local profile): a container
    // parser format it does not know is refused.
    let topology = render::ComposeTopology::golden();
    let agent = render::render(&Ctx::compose(&stack, "local", Arch::Amd64, &topology).unwrap()).unwrap();
    refused(&good, &cases);
    refused(&agent, &[("log-agent/agent.yaml", "format: containerd", "format: cri")]);
}

fn refused(good: &render::Files, cases: &[(&str, &str, &str)]) {
    for &(file, from, to) in cases {
        let mut files = render::Files::new();
        for (rel, text) in good.iter() {
            let text = if rel.as_str() == file {
                assert!(text.contains(from), "{file} no longer contains {from:?}; update this test");
                text.replacen(from, to, 1)
            } else {
                text.to_string()
            };
            files.add(rel.to_path_buf(), text).unwrap();
        }
        let (_t, dir) = tmpdir();
        let report = validate::validate(&files, &dir).unwrap();
        let failed: Vec<_> = report.failed().map(|c| c.file.as_str().to_string()).collect();
        assert!(failed.contains(&file.to_string()), "breaking {file} was not caught; failed: {failed:?}");
    }
}

/// The edge agent built here bounds its queues by bytes (`settings.edge_buffer.size`): with a
/// store that refuses every connection and a queue smaller than what the node's pods write, it
/// keeps the oldest and refuses the rest, and says so, instead of growing the node's disk.
#[test]
fn the_edge_agent_refuses_what_exceeds_its_queue_in_bytes() {
    use render::{logagent, otelagent, ports};
    use std::io::Write;
    let agent = tools::EDGE_AGENT.find().unwrap_or_else(|e| panic!("{e:#}"));
    let mut stack = stack::load(&paths::stack_file()).unwrap();
    stack.settings.edge_buffer.size = "16Ki".to_string().try_into().unwrap();
    let topology = render::ComposeTopology::golden();
    let files = render::render(&Ctx::compose(&stack, "local", Arch::Amd64, &topology).unwrap()).unwrap();
    let (_t, dir) = tmpdir();
    // The rendered config, moved off the node's paths and pointed at a port nothing listens on.
    let pods = dir.join("pods");
    let config = files
        .get(otelagent::CONFIG_FILE)
        .unwrap()
        .replace(logagent::POD_LOGS, &format!("{pods}/*/*/*.log"))
        .replace(logagent::STATE_DIR, dir.join("state").as_str())
        .replace(&format!("0.0.0.0:{}", ports::COLLECTOR_HEALTH), "127.0.0.1:0")
        .replace(&otelagent::otlp_listen(), "127.0.0.1:0")
        .replace(&format!("{}:{}", otelagent::VICTORIA_LOGS_HOST, ports::VICTORIA_LOGS), "127.0.0.1:1");
    assert!(config.contains("sizer: bytes") && config.contains("queue_size: 12288"), "{config}");
    let cfg = dir.join("agent.yaml");
    std::fs::write(&cfg, &config).unwrap();
    let container = pods.join("ns_pod_0000/workload");
    std::fs::create_dir_all(&container).unwrap();
    // ~300 KiB of log lines: twenty-five times the logs' queue.
    let mut log = std::fs::File::create(container.join("0.log")).unwrap();
    for seq in 0..3000 {
        writeln!(log, "2026-12-03T12:00:00.000000000Z stdout F seq={seq} {}", "x".repeat(80)).unwrap();
    }
    drop(log);
    let stderr = std::fs::File::create(dir.join("agent.log")).unwrap();
    let mut child = std::process::Command::new(agent.as_str())
        .arg(format!("--config={cfg}"))
        .env(otelagent::NODE_NAME_ENV, "edge-1")
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut text = String::new();
    while std::time::Instant::now() < deadline && !text.contains("sending queue is full") {
        std::thread::sleep(std::time::Duration::from_millis(250));
        text = std::fs::read_to_string(dir.join("agent.log")).unwrap();
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("sending queue is full"), "the agent never refused for a full queue:\n{text}");
    assert!(text.contains("rejected_items"), "{text}");
}
