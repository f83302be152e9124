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
