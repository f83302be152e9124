//! `cargo xtask`: parses the command line and dispatches; the work lives in the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = xtask::cli::Cli::parse();
    match xtask::cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
