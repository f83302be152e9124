//! `cargo xtask`: parses the command line and dispatches; the work lives in the library.

use std::process::ExitCode;

use clap::Parser;
use clap::error::ErrorKind;

fn main() -> ExitCode {
    let cli = match xtask::cli::Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version are output like any other: a closed or full stdout fails.
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            return match xtask::out::stdout_text(&e.render().to_string()) {
                Ok(()) => ExitCode::SUCCESS,
                Err(err) => fail(&format!("{err:#}")),
            };
        }
        Err(e) => {
            xtask::note!("{}", e.render().to_string().trim_end());
            return ExitCode::from(2);
        }
    };
    match xtask::cli::run(cli) {
        Ok(()) => match xtask::out::stderr_error() {
            None => ExitCode::SUCCESS,
            Some(e) => fail(&e),
        },
        Err(e) => fail(&format!("{e:#}")),
    }
}

fn fail(message: &str) -> ExitCode {
    xtask::note!("error: {message}");
    ExitCode::FAILURE
}
