//! The command line: `--help` of every command is snapshot-tested.

use clap::CommandFactory;
use xtask::cli::Cli;
use xtask::paths;

#[test]
fn help_output_of_every_command() {
    let mut cmd = Cli::command().term_width(100);
    cmd.build();
    let mut report = cmd.render_help().to_string();
    for sub in cmd.get_subcommands_mut() {
        let name = sub.get_name().to_string();
        report.push_str(&format!("\n===== cargo xtask {name} --help =====\n"));
        report.push_str(&sub.render_help().to_string());
    }
    insta::with_settings!({ snapshot_path => paths::golden_dir().join("cli"), prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("help", report);
    });
}

#[test]
fn every_command_has_one_line_help() {
    let cmd = Cli::command();
    for sub in cmd.get_subcommands() {
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        assert!(!about.is_empty() && !about.contains('\n'), "{} lacks a one-line help", sub.get_name());
    }
}

/// A closed or full stdout or stderr ends a command non-zero with a message, never a panic
/// (`> /dev/full`, `| head`, `2> /dev/full`).
#[test]
fn closed_or_full_output_fails_without_panic() {
    use std::process::{Command, Stdio};
    let exe = env!("CARGO_BIN_EXE_xtask");
    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full").expect("/dev/full");
    // (`bundle --dry-run` needs a lock, which a fresh checkout has not: its printing goes through
    // the same helper, as tidy's `printing_goes_through_out` holds.)
    let commands: [&[&str]; 4] = [&["matrix", "plan"], &["e2e", "--dry-run"], &["fixtures", "--dry-run"], &["--help"]];
    for args in commands {
        let out = Command::new(exe).args(args).stdout(full()).output().expect("running xtask");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} > /dev/full exited 0");
        assert!(!err.contains("panicked"), "{args:?} > /dev/full panicked: {err}");
        assert!(err.contains("writing to standard output"), "{args:?} > /dev/full: no message: {err}");
    }
    // A pipe whose reader has gone: the write fails with EPIPE (Rust ignores SIGPIPE).
    let mut child = Command::new(exe)
        .args(["matrix", "plan"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running xtask");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("waiting for xtask");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !err.contains("panicked"), "matrix plan | (closed): {:?} {err}", out.status);
    // Progress on a full stderr: the work is done, the exit says it could not be told.
    let out = Command::new(exe).args(["ci", "generate", "--check"]).stderr(full()).output().expect("running xtask");
    assert_eq!(out.status.code(), Some(1), "ci generate --check 2> /dev/full: {:?}", out.status);
}
