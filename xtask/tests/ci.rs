//! The generated GitHub Actions workflows: current with the matrix, accepted by actionlint
//! (inputs of each action checked), their `run:` scripts by shellcheck.

use std::process::Command;

use camino::{Utf8Path, Utf8PathBuf};

fn root() -> Utf8PathBuf {
    Utf8PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn generated() -> Vec<(&'static str, String)> {
    let stack = xtask::stack::load(&root().join("stack.toml")).unwrap();
    xtask::ci::generate(&stack).unwrap()
}

#[test]
fn the_committed_workflows_are_current() {
    let stale = xtask::ci::stale(&generated(), &root());
    assert!(stale.is_empty(), "{} stale: run `cargo xtask ci generate` and commit them", stale.join(", "));
}

#[test]
fn the_check_names_a_stale_or_missing_workflow() {
    let files = generated();
    let tmp = tempfile::tempdir().unwrap();
    let dir = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();
    std::fs::create_dir_all(dir.join(".github/workflows")).unwrap();
    // The first one edited by hand, the second one missing.
    std::fs::write(dir.join(files[0].0), files[0].1.replace("timeout-minutes: 60", "timeout-minutes: 61")).unwrap();
    assert_eq!(xtask::ci::stale(&files, &dir), [files[0].0, files[1].0]);
    std::fs::write(dir.join(files[0].0), &files[0].1).unwrap();
    std::fs::write(dir.join(files[1].0), &files[1].1).unwrap();
    assert!(xtask::ci::stale(&files, &dir).is_empty());
}

/// The workflow with each pinned action written as its major version tag, which actionlint knows
/// the inputs of (it checks no inputs on a commit pin). The majors' inputs used here are the
/// same as the pinned releases'.
fn for_linting(text: &str) -> String {
    let mut out = text.to_string();
    for (a, tag) in [
        (xtask::ci::CHECKOUT, "v4"),
        (xtask::ci::UPLOAD, "v4"),
        (xtask::ci::DOWNLOAD, "v4"),
        (xtask::ci::RUST_CACHE, "v2"),
        (xtask::ci::RUST, "master"),
    ] {
        out = out.replace(&format!("{}@{} # {}", a.name, a.commit, a.tag), &format!("{}@{tag}", a.name));
    }
    assert!(!out.contains("@fbc6f39") && !out.contains(" # v"), "a pin was not rewritten:\n{out}");
    out
}

/// Runs actionlint on `files` (name, text) in a scratch `.github/workflows`; (passed, output).
fn actionlint(files: &[(String, String)]) -> (bool, String) {
    let (linter, what) = xtask::tools::actionlint().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let dir = Utf8PathBuf::from_path_buf(tmp.path().join(".github/workflows")).unwrap();
    std::fs::create_dir_all(&dir).unwrap();
    for (name, text) in files {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let mut cmd = Command::new(linter.as_str());
    if what.contains("WebAssembly") {
        // It takes one glob, and exits 0 when it matches nothing: its count is checked below.
        cmd.arg(format!("{dir}/*.yml"));
    } else {
        cmd.args(files.iter().map(|(name, _)| dir.join(name)));
    }
    let out = cmd.current_dir(tmp.path()).output().unwrap();
    let text = format!("{what}\n{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    if what.contains("WebAssembly") {
        let checking = format!("Checking {} workflow file(s)", files.len());
        assert!(text.contains(&checking), "the linter did not read the files: {text}");
    }
    (out.status.success(), text)
}

#[test]
fn actionlint_accepts_the_workflows_and_refuses_a_broken_one() {
    let files: Vec<(String, String)> =
        generated().iter().map(|(p, t)| (Utf8Path::new(p).file_name().unwrap().to_string(), for_linting(t))).collect();
    let (ok, out) = actionlint(&files);
    assert!(ok, "actionlint refused the generated workflows:\n{out}");
    // The linter really checks: an undefined matrix key and a misspelt input are refused.
    let broken = files[0]
        .1
        .replace("${{ matrix.id }}", "${{ matrix.cell_id }}")
        .replace("persist-credentials", "persist-credential");
    let (ok, out) = actionlint(&[("broken.yml".into(), broken)]);
    assert!(!ok, "actionlint accepted a broken workflow:\n{out}");
    assert!(out.contains("cell_id") && out.contains("persist-credential"), "{out}");
}

#[test]
fn the_run_scripts_pass_shellcheck() {
    let shellcheck = xtask::tools::SHELLCHECK.find().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut n = 0;
    for (path, text) in generated() {
        let w: serde_json::Value = serde_yaml_ng::from_str(&text).unwrap();
        for (job, spec) in w["jobs"].as_object().unwrap() {
            for step in spec["steps"].as_array().unwrap() {
                let Some(script) = step["run"].as_str() else { continue };
                // Expressions are replaced before the shell sees them: stand in a word for each.
                let script = regex_free_expressions(script);
                let file = tmp.path().join(format!("{n}.sh"));
                std::fs::write(&file, format!("#!/usr/bin/env bash\nset -e\n{script}\n")).unwrap();
                let out =
                    Command::new(shellcheck.as_str()).args(["-S", "style", "-s", "bash"]).arg(&file).output().unwrap();
                assert!(out.status.success(), "{path} {job}: `{script}`:\n{}", String::from_utf8_lossy(&out.stdout));
                n += 1;
            }
        }
    }
    assert!(n >= 8, "only {n} run steps found");
}

/// `${{ matrix.id }}` → `matrix_id`.
fn regex_free_expressions(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${{") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find("}}") else { break };
        out.push_str(&rest[i + 3..i + j].trim().replace(['.', ' '], "_"));
        rest = &rest[i + j + 2..];
    }
    out.push_str(rest);
    out
}
