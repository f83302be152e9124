//! The command line: one subcommand per capability, each with its own Args.

use clap::{Parser, Subcommand};

/// Build, render, validate and test kubeprepare's offline observability platform.
///
/// Every command reads stack.toml at the project root (or --stack FILE). Human progress goes to
/// stderr; machine output to files under target/ (or stdout when asked).
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", bin_name = "cargo xtask", version, propagate_version = true)]
pub struct Cli {
    /// Stack file to read instead of stack.toml at the project root (lock files are relative to it).
    #[arg(long, global = true, value_name = "FILE")]
    pub stack: Option<camino::Utf8PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render every config from stack.toml (write, --check against golden/, or --bless).
    Render(crate::render::Args),
    /// Build the local profile's multi-arch images from Go modules and Debian packages (OCI layouts).
    Fixtures(crate::fixtures::Args),
    /// Resolve image tags and chart versions to digests (OCI distribution API) into stack.lock.
    Lock(crate::lock::Args),
    /// Build the offline observability bundle (image archives, rendered configs, checksums) for an arch.
    Bundle(crate::bundle::Args),
    /// Validate rendered configs with the real tools (promtool, amtool, blackbox_exporter, shellcheck).
    Validate(crate::validate::Args),
    /// The real charts as k3s gets them (`helm template` with our values), checked against the stack.
    Charts(crate::charts::Args),
    /// Measure the tool against the alternatives and print the figures (`bench bundle`).
    Bench(crate::bench::Args),
    /// Run the offline end-to-end scenarios against a bundle (compose or kubernetes tier; k3s later).
    E2e(crate::e2e::Args),
    /// The compatibility matrix (stack.toml [matrix]): plan its cells, run them, report.
    Matrix(crate::matrix::Args),
    /// The release verdict from a folder of evidence (e2e reports, reproducibility and golden records).
    Gate(crate::gate::Args),
    /// The GitHub Actions workflows, generated from the matrix (`ci generate [--check]`).
    Ci(crate::ci::Args),
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(stack) = cli.stack {
        crate::paths::set_stack_file(stack);
    }
    match cli.command {
        Command::Render(args) => crate::render::run(args),
        Command::Validate(args) => crate::validate::run(args),
        Command::Charts(args) => crate::charts::run(args),
        Command::Fixtures(args) => crate::fixtures::run(args),
        Command::Lock(args) => crate::lock::run(args),
        Command::Bundle(args) => crate::bundle::run(args),
        Command::Bench(args) => crate::bench::run(args),
        Command::E2e(args) => crate::e2e::run(args),
        Command::Matrix(args) => crate::matrix::run(args),
        Command::Gate(args) => crate::gate::run(args),
        Command::Ci(args) => crate::ci::run_cmd(args),
    }
}
