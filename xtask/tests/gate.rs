//! The release gate on evidence in `fixtures/gate/good/`, copied and broken one way at a time:
//! each way fails with its reason; the intact set passes. Also `bundle diff` of two locks.

use std::process::Command;

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::Value;
use xtask::gate::{Verdict, decide, load_policy};

fn root() -> Utf8PathBuf {
    Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// A copy of the good evidence, then `break_it` applied to it.
fn evidence(break_it: impl FnOnce(&Utf8Path)) -> (tempfile::TempDir, Utf8PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Utf8PathBuf::from_path_buf(tmp.path().join("evidence")).unwrap();
    copy_dir(&root().join("fixtures/gate/good"), &dir);
    break_it(&dir);
    (tmp, dir)
}

fn copy_dir(from: &Utf8Path, to: &Utf8Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (src, dst) = (Utf8PathBuf::from_path_buf(e.path()).unwrap(), to.join(e.file_name().to_str().unwrap()));
        if e.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

fn edit_json(path: &Utf8Path, f: impl FnOnce(&mut Value)) {
    let mut v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string_pretty(&v).unwrap()).unwrap();
}

fn verdict(dir: &Utf8Path) -> Verdict {
    let stack = xtask::stack::load(&root().join("stack.toml")).unwrap();
    let policy = load_policy(&root().join("ci/gate.toml")).unwrap();
    decide(&stack, &policy, dir).unwrap()
}

/// The gate on the evidence broken by `break_it` fails exactly the checks named, each with a
/// reason containing the text given.
fn check_fails_all(break_it: impl FnOnce(&Utf8Path), expect: &[(&str, &str)]) {
    let (_tmp, dir) = evidence(break_it);
    let v = verdict(&dir);
    assert!(!v.passed, "the gate passed: {v:#?}");
    let failed: Vec<&xtask::gate::Check> = v.checks.iter().filter(|c| !c.passed).collect();
    let names: Vec<&str> = expect.iter().map(|(c, _)| *c).collect();
    assert_eq!(failed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), names, "{v:#?}");
    for (check, (_, reason)) in failed.iter().zip(expect) {
        assert!(
            check.reasons.iter().any(|r| r.contains(reason)),
            "no reason containing {reason:?} in {:#?}",
            check.reasons
        );
    }
}

/// The gate fails only `check`, with a reason containing `reason`.
fn check_fails(break_it: impl FnOnce(&Utf8Path), check: &str, reason: &str) {
    check_fails_all(break_it, &[(check, reason)]);
}

/// The gate on `fixtures/gate/<name>/` laid over a copy of `good/` (each of those folders holds
/// only the files that differ) fails exactly the checks named, each with one reason containing
/// every text given (the reason and the file it is about).
fn check(name: &str, expect: &[(&str, &[&str])]) {
    let (_tmp, dir) = evidence(|d| copy_dir(&root().join("fixtures/gate").join(name), d));
    let v = verdict(&dir);
    assert!(!v.passed, "{name}: the gate passed: {v:#?}");
    let failed: Vec<&xtask::gate::Check> = v.checks.iter().filter(|c| !c.passed).collect();
    let names: Vec<&str> = expect.iter().map(|(c, _)| *c).collect();
    assert_eq!(failed.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), names, "{name}: {v:#?}");
    for (check, (_, texts)) in failed.iter().zip(expect) {
        assert!(
            check.reasons.iter().any(|r| texts.iter().all(|t| r.contains(t))),
            "{name}: no reason of {:?} containing all of {texts:?} in {:#?}",
            check.name,
            check.reasons
        );
    }
}

#[test]
fn a_report_with_no_scenarios_is_refused() {
    check(
        "zero-scenarios",
        &[("required cells passed", &["cells/compose-local-amd64/report.json", "refused", "no scenarios"])],
    );
}

#[test]
fn a_report_where_every_scenario_did_not_run_fails_its_cell() {
    check(
        "all-not-run",
        &[(
            "required cells passed",
            &[
                "required cell compose local amd64 failed",
                "metrics not run: node-exporter not in bundle",
                "quiet not run",
                "(cells/compose-local-amd64/report.json)",
            ],
        )],
    );
}

#[test]
fn a_forged_pass_beside_a_real_failure_does_not_pass() {
    check(
        "duplicate-forged-pass",
        &[(
            "required cells passed",
            &[
                "required cell compose local amd64 failed",
                "failed: metrics / every target up",
                "cells/compose-local-amd64/report.json",
            ],
        )],
    );
    // The verdict names both reports it read.
    let (_tmp, dir) = evidence(|d| copy_dir(&root().join("fixtures/gate/duplicate-forged-pass"), d));
    let v = verdict(&dir);
    let reasons = v.checks[0].reasons.join("\n");
    assert!(reasons.contains("cells/forged/report.json"), "{reasons}");
    // The matrix report shows the cell failed, and how many reports it had.
    let stack = xtask::stack::load(&root().join("stack.toml")).unwrap();
    let m = xtask::matrix::build(&stack, xtask::stack::Subset::Pr, &dir).unwrap();
    let cell = m.cells.iter().find(|c| c.id == "compose-local-amd64").unwrap();
    assert_eq!(cell.mark, xtask::matrix::Mark::Failed, "{cell:#?}");
    assert!(cell.detail.iter().any(|d| d.contains("2 reports")), "{cell:#?}");
}

#[test]
fn records_of_an_unknown_schema_are_refused() {
    check(
        "schema-99",
        &[
            (
                "required cells passed",
                &[
                    "cells/k3s-upstream-amd64-k3s-v1.34.2-k3s1-kubeedge-1.22.0/not-run.json",
                    "schema 99, this tool reads schema 1",
                ],
            ),
            (
                "bundles reproducible",
                &["bundle/observability-local-amd64.repro.json", "schema 99, this tool reads schema 1"],
            ),
            ("golden snapshots clean", &["golden-check.json", "schema 99, this tool reads schema 1"]),
        ],
    );
}

#[test]
fn a_repro_record_that_claims_nothing_is_refused() {
    check(
        "repro-claims-nothing",
        &[(
            "bundles reproducible",
            &["bundle/observability-local-amd64.repro.json", "refused", "\"x\" is not a sha256 digest"],
        )],
    );
    check(
        "repro-claims-nothing",
        &[(
            "bundles reproducible",
            &["bundle/observability-local-amd64.repro.json", "refused", "no files were compared"],
        )],
    );
    check(
        "repro-claims-nothing",
        &[(
            "bundles reproducible",
            &["bundle/observability-local-arm64.repro.json", "refused", "1 build, two are compared"],
        )],
    );
}

#[test]
fn a_golden_record_that_claims_nothing_is_refused() {
    check("golden-claims-nothing", &[("golden snapshots clean", &["golden-check.json", "refused", "no files"])]);
}

const AMD64: &str = "cells/compose-local-amd64/report.json";
const ARM64: &str = "cells/compose-local-arm64/report.json";
const KUBERNETES: &str = "cells/kubernetes-local-amd64/report.json";

#[test]
fn the_good_evidence_passes_every_check() {
    let (_tmp, dir) = evidence(|_| {});
    let v = verdict(&dir);
    assert!(v.passed, "{:#?}", v.failures());
    let names: Vec<&str> = v.checks.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, ["required cells passed", "bundles reproducible", "golden snapshots clean", "edge budgets met"]);
    assert_eq!(
        v.required,
        ["compose-local-amd64", "compose-local-arm64", "kubernetes-local-amd64"],
        "the experimental k3s cell is not required"
    );
}

#[test]
fn a_failed_required_cell_fails_the_gate() {
    check_fails(
        |d| {
            edit_json(&d.join(AMD64), |r| {
                let s = r["scenarios"].as_array_mut().unwrap().iter_mut().find(|s| s["name"] == "alerts").unwrap();
                s["status"] = "failed".into();
                s["steps"][3]["status"] = "failed".into();
            })
        },
        "required cells passed",
        "required cell compose local amd64 failed: alerts / node-down alert reaches the receiver",
    );
}

#[test]
fn data_lost_across_a_cut_fails_the_gate() {
    check_fails(
        |d| {
            edit_json(&d.join(AMD64), |r| {
                let s = r["scenarios"].as_array_mut().unwrap().iter_mut().find(|s| s["name"] == "link-outage").unwrap();
                s["status"] = "failed".into();
                let step = &mut s["steps"][1];
                step["status"] = "failed".into();
                step["name"] = "no log line or span of the cut is lost".into();
                step["expected"] = "every one of the 40 log lines written in the window".into();
                step["actual"] = "3 of 40 missing: 17, 18, 19".into();
            })
        },
        "required cells passed",
        "required cell compose local amd64 failed: link-outage / no log line or span of the cut is lost",
    );
}

#[test]
fn a_pass_is_only_as_good_as_its_steps() {
    // A scenario marked passed with no step ran nothing.
    check_fails(
        |d| {
            edit_json(&d.join(AMD64), |r| {
                let s = r["scenarios"].as_array_mut().unwrap().iter_mut().find(|s| s["name"] == "restart").unwrap();
                s["steps"] = serde_json::json!([]);
            })
        },
        "required cells passed",
        "required cell compose local amd64 failed: restart passed with no step run (cells/compose-local-amd64/report.json)",
    );
    // A scenario marked passed with a failed step is failed.
    check_fails(
        |d| edit_json(&d.join(AMD64), |r| r["scenarios"][0]["steps"][1]["status"] = "failed".into()),
        "required cells passed",
        "required cell compose local amd64 failed: metrics / edge metrics carry the node label",
    );
}

#[test]
fn a_required_cell_that_did_not_run_fails_the_gate() {
    check_fails(
        |d| {
            std::fs::remove_file(d.join(ARM64)).unwrap();
            let not_run = serde_json::json!({
                "schema": 1,
                "cell": { "backend": "compose", "profile": "local", "arch": "arm64" },
                "reason": "arm64 needs qemu registered with binfmt_misc",
            });
            std::fs::write(d.join("cells/compose-local-arm64/not-run.json"), not_run.to_string()).unwrap();
        },
        "required cells passed",
        "required cell compose local arm64 did not run: arm64 needs qemu",
    );
    check_fails(
        |d| std::fs::remove_file(d.join(ARM64)).unwrap(),
        "required cells passed",
        "required cell compose local arm64 did not run: no report of it",
    );
}

#[test]
fn two_different_bundle_digests_fail_the_gate() {
    check_fails(
        |d| {
            edit_json(&d.join("bundle/observability-local-arm64.repro.json"), |r| {
                r["builds"][1] = format!("sha256:{}", "c3".repeat(32)).into();
                r["differing"] = serde_json::json!(["images/edge/edge-probe.tar"]);
            })
        },
        "bundles reproducible",
        "the local bundle for arm64 is not reproducible: builds sha256:b2",
    );
    check_fails(
        |d| std::fs::remove_file(d.join("bundle/observability-local-amd64.repro.json")).unwrap(),
        "bundles reproducible",
        "no reproducibility record of the local bundle for amd64",
    );
}

#[test]
fn a_stale_snapshot_fails_the_gate() {
    check_fails(
        |d| {
            edit_json(&d.join("golden-check.json"), |r| {
                r["clean"] = false.into();
                r["problems"] = serde_json::json!([
                    "golden/render/local/amd64/prometheus__prometheus.yml.snap: differs from the rendered file at line 9"
                ]);
            })
        },
        "golden snapshots clean",
        "golden snapshots are stale (golden-check.json): golden/render/local/amd64/prometheus__prometheus.yml.snap: differs",
    );
}

#[test]
fn an_exceeded_budget_fails_the_gate() {
    // The cell's own verdict fails with it.
    check_fails_all(
        |d| {
            edit_json(&d.join(AMD64), |r| {
                let s = r["resources"]
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .find(|s| s["component"] == "edge-node-exporter")
                    .unwrap();
                s["samples"][1]["memory_bytes"] = (80u64 * 1024 * 1024).into();
            })
        },
        &[
            ("required cells passed", "required cell compose local amd64 failed: 1 budget(s) exceeded"),
            (
                "edge budgets met",
                "edge-node-exporter on edge-1 over its budget (memory 64 MiB, CPU 100 m): memory max 80.0 MiB",
            ),
        ],
    );
}

#[test]
fn a_link_over_its_budget_fails_the_gate() {
    check_fails_all(
        |d| {
            edit_json(&d.join(AMD64), |r| {
                r["links"] = serde_json::json!([{
                    "node": "edge-1",
                    "budget_bytes_per_min": 1024,
                    "faults": [],
                    "samples": [
                        { "t_s": 0.0, "sent_bytes": 0, "received_bytes": 0 },
                        { "t_s": 60.0, "sent_bytes": 4096, "received_bytes": 1024 },
                    ],
                }]);
            })
        },
        &[
            (
                "required cells passed",
                "required cell compose local amd64 failed: 1 link(s) over their budget, 0 not measured",
            ),
            ("edge budgets met", "the link of edge-1 is over its budget: over: 5.0 KiB/min > budget 1.0 KiB/min"),
        ],
    );
}

#[test]
fn budgets_with_nothing_measured_do_not_pass() {
    check_fails(
        |d| {
            for f in [AMD64, ARM64, KUBERNETES] {
                edit_json(&d.join(f), |r| r["resources"] = serde_json::json!([]));
            }
        },
        "edge budgets met",
        "no edge series was checked against its budget in any report of the subset",
    );
}

#[test]
fn a_policy_that_requires_nothing_does_not_pass() {
    let (_tmp, dir) = evidence(|_| {});
    let mut stack = xtask::stack::load(&root().join("stack.toml")).unwrap();
    // Every cell experimental, and the policy names none.
    stack.matrix.experimental = vec![
        xtask::stack::CellPattern { profile: Some("local".to_string().try_into().unwrap()), ..Default::default() },
        xtask::stack::CellPattern { backend: Some(xtask::stack::Backend::K3s), ..Default::default() },
    ];
    let mut policy = load_policy(&root().join("ci/gate.toml")).unwrap();
    policy.required.clear();
    let v = decide(&stack, &policy, &dir).unwrap();
    assert!(!v.passed, "{v:#?}");
    assert!(v.failures().iter().any(|f| f.contains("no cell is required")), "{:#?}", v.failures());
}

/// The gate with `policy_extra` appended to ci/gate.toml, on the good evidence.
fn verdict_with_policy(policy_extra: &str) -> anyhow::Result<Verdict> {
    let tmp = tempfile::tempdir().unwrap();
    let path = Utf8PathBuf::from_path_buf(tmp.path().join("gate.toml")).unwrap();
    let text = std::fs::read_to_string(root().join("ci/gate.toml")).unwrap();
    std::fs::write(&path, format!("{text}\n{policy_extra}\n")).unwrap();
    let stack = xtask::stack::load(&root().join("stack.toml")).unwrap();
    decide(&stack, &load_policy(&path)?, &root().join("fixtures/gate/good"))
}

#[test]
fn the_required_scenarios_default_to_what_the_bundle_provides() {
    let stack = xtask::stack::load(&root().join("stack.toml")).unwrap();
    let policy = load_policy(&root().join("ci/gate.toml")).unwrap();
    let scenarios = xtask::e2e::scenario::load_dir(&root().join("scenarios"), &[]).unwrap();
    let cell = stack.subset(xtask::stack::Subset::Pr).into_iter().find(|c| c.id() == "compose-local-amd64").unwrap();
    // The local profile has no Grafana (AGPL, never built here): its scenarios are not required
    // of it; its log store (VictoriaLogs) and Jaeger are, so logs and traces are.
    assert_eq!(
        xtask::gate::required_scenarios(&stack, &policy, &scenarios, &cell).unwrap(),
        ["metrics", "alerts", "link-probe", "link-outage", "buffer-window", "restart", "logs", "traces", "quiet"]
    );
    // The kubernetes tier: what it deploys, not what the bundle holds.
    let cell = stack.subset(xtask::stack::Subset::Pr).into_iter().find(|c| c.id() == "kubernetes-local-amd64").unwrap();
    assert_eq!(
        xtask::gate::required_scenarios(&stack, &policy, &scenarios, &cell).unwrap(),
        [
            "metrics",
            "edge-kubelet",
            "alerts",
            "node-not-ready",
            "link-probe",
            "link-outage",
            "restart",
            "logs",
            "traces",
            "quiet"
        ]
    );
}

#[test]
fn a_policy_can_name_the_required_scenarios_of_a_cell() {
    // A scenario the report shows not run fails the cell, by name.
    let v = verdict_with_policy(
        "[[scenarios]]\ncells = { backend = \"compose\", profile = \"local\", arch = \"amd64\" }\nnames = [\"metrics\", \"grafana\"]",
    )
    .unwrap();
    assert!(!v.passed, "{v:#?}");
    let f = v.failures();
    assert!(
        f.iter().any(|r| r.contains(
            "required cell compose local amd64 failed: grafana not run: grafana not in bundle (cells/compose-local-amd64/report.json)"
        )),
        "{f:#?}"
    );
    assert!(f.iter().all(|r| !r.contains("arm64")), "only the amd64 cell requires grafana: {f:#?}");
    // Naming the scenarios the report passed passes.
    let v = verdict_with_policy(
        "[[scenarios]]\ncells = { backend = \"compose\", profile = \"local\" }\nnames = [\"metrics\", \"quiet\"]",
    )
    .unwrap();
    assert!(v.passed, "{:#?}", v.failures());
    // A name that is no scenario's is refused.
    let err = format!(
        "{:#}",
        verdict_with_policy("[[scenarios]]\ncells = { profile = \"local\" }\nnames = [\"metricz\"]").unwrap_err()
    );
    assert!(err.contains("scenarios[0] names \"metricz\", which is no scenario's name"), "{err}");
}

#[test]
fn the_gate_command_exits_1_with_its_reasons_and_writes_the_verdict() {
    let (_tmp, dir) = evidence(|d| std::fs::remove_file(d.join(ARM64)).unwrap());
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["gate", "--reports", dir.as_str()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("gate: FAIL required cells passed"), "{stderr}");
    let v: Verdict = serde_json::from_str(&std::fs::read_to_string(dir.join("gate-verdict.json")).unwrap()).unwrap();
    assert!(!v.passed);
    assert!(std::fs::read_to_string(dir.join("gate-verdict.md")).unwrap().starts_with("# ❌ release gate: failed"));

    let (_tmp, good) = evidence(|_| {});
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["gate", "--reports", good.as_str()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn a_policy_that_names_no_cell_is_refused_by_line() {
    let tmp = tempfile::tempdir().unwrap();
    let path = Utf8PathBuf::from_path_buf(tmp.path().join("gate.toml")).unwrap();
    std::fs::write(&path, "subset = \"pr\"\nrequired = [{ backend = \"k3s\", arch = \"arm64\" }]\n").unwrap();
    let stack = xtask::stack::load(&root().join("stack.toml")).unwrap();
    let err =
        format!("{:#}", decide(&stack, &load_policy(&path).unwrap(), &root().join("fixtures/gate/good")).unwrap_err());
    assert!(
        err.contains("required[0] { backend = \"k3s\", arch = \"arm64\" } selects no cell of the pr subset"),
        "{err}"
    );
    std::fs::write(&path, "subset = \"pr\"\nrequird = []\n").unwrap();
    let err = format!("{:#}", load_policy(&path).unwrap_err());
    assert!(err.contains("gate.toml:2: unknown field `requird`"), "{err}");
}

/// Two locks that differ in one image: the diff shows exactly that change.
#[test]
fn bundle_diff_of_two_locks_shows_exactly_the_changed_image() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();
    let lock = serde_json::json!({ "profiles": { "upstream": {
        "images": {
            "quay.io/prometheus/prometheus:v3.14.0": { "digest": format!("sha256:{}", "1a".repeat(32)), "media_type": "application/vnd.oci.image.index.v1+json", "platforms": {} },
            "docker.io/grafana/loki:3.7.6": { "digest": format!("sha256:{}", "2b".repeat(32)), "media_type": "application/vnd.oci.image.index.v1+json", "platforms": {} },
        },
        "charts": { "loki": { "url": "https://grafana-community.github.io/helm-charts/loki-18.11.0.tgz", "digest": format!("sha256:{}", "3c".repeat(32)), "size": 1 } },
    }}});
    let (a, b) = (dir.join("a.lock"), dir.join("b.lock"));
    std::fs::write(&a, serde_json::to_string_pretty(&lock).unwrap()).unwrap();
    let mut changed = lock.clone();
    let images = changed["profiles"]["upstream"]["images"].as_object_mut().unwrap();
    images.remove("quay.io/prometheus/prometheus:v3.14.0");
    images.insert(
        "quay.io/prometheus/prometheus:v3.15.0".into(),
        serde_json::json!({ "digest": format!("sha256:{}", "4d".repeat(32)), "media_type": "application/vnd.oci.image.index.v1+json", "platforms": {} }),
    );
    std::fs::write(&b, serde_json::to_string_pretty(&changed).unwrap()).unwrap();
    let out =
        Command::new(env!("CARGO_BIN_EXE_xtask")).args(["bundle", "diff", a.as_str(), b.as_str()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let md = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<&str> = md
        .lines()
        .filter(|l| l.starts_with("| changed") || l.starts_with("| added") || l.starts_with("| removed"))
        .collect();
    assert_eq!(
        rows,
        ["| changed | `quay.io/prometheus/prometheus` | v3.14.0@sha256:1a1a1a1a1a1a… | v3.15.0@sha256:4d4d4d4d4d4d… |"],
        "{md}"
    );
    let same =
        Command::new(env!("CARGO_BIN_EXE_xtask")).args(["bundle", "diff", a.as_str(), a.as_str()]).output().unwrap();
    assert!(String::from_utf8_lossy(&same.stdout).contains("No change"));
}
