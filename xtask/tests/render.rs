//! Rendering: golden snapshots (insta, in golden/render/), determinism, and the
//! drift check behind `cargo xtask render --check`.

use camino::Utf8PathBuf;
use xtask::golden::{self, Drift};
use xtask::paths;
use xtask::render::{self, Files};
use xtask::stack::{self, Arch, Stack};

fn project_stack() -> Stack {
    stack::load(&paths::stack_file()).unwrap_or_else(|e| panic!("{e:#}"))
}

fn all() -> Vec<(String, Arch, Files)> {
    render::render_all(&project_stack()).unwrap_or_else(|e| panic!("{e:#}"))
}

fn sets(all: &[(String, Arch, Files)]) -> Vec<(String, Arch, &Files)> {
    all.iter().map(|(p, a, f)| (p.clone(), *a, f)).collect()
}

/// Every rendered file equals its insta snapshot in golden/render/<profile>/<arch>/.
#[test]
fn rendered_files_match_golden_snapshots() {
    for (profile, arch, files) in all() {
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
    let all = all();
    let drift = golden::check(&sets(&all)).unwrap();
    let text: Vec<String> = drift.iter().map(ToString::to_string).collect();
    assert!(drift.is_empty(), "golden/ is stale; run `cargo xtask render --bless`:\n{}", text.join("\n"));
}

#[test]
fn rendering_is_deterministic() {
    assert_eq!(all(), all());
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
