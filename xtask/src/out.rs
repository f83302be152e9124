//! Every line the tool prints goes through here, so a closed or full stdout or stderr ends the command
//! with a message and a non-zero exit instead of a panic (`println!` and `eprintln!` panic when the
//! write fails; `cargo xtask matrix plan > /dev/full`, `| head`).
//!
//! - [`outln!`] writes machine output (plans, JSON, diffs) to stdout and returns a `Result`: a command
//!   whose output cannot be written has failed, and stops there.
//! - [`note!`] writes human progress to stderr. A failed progress line does not stop the work (the
//!   command finishes what it started, so nothing is left half-done), but it is remembered and the
//!   process exits non-zero at the end ([`stderr_error`]).
//!
//! The tidy test (`tests/tidy.rs`) keeps `println!`/`eprintln!` out of every other module.

use std::fmt;
use std::io::Write;
use std::sync::Mutex;

use anyhow::{Context, Result};

/// The first stderr write that failed, if any.
static STDERR_ERROR: Mutex<Option<String>> = Mutex::new(None);

/// Write `args` and a newline to stdout, flushed. Use through [`outln!`].
pub fn stdout_line(args: fmt::Arguments<'_>) -> Result<()> {
    stdout_text(&format!("{args}\n"))
}

/// Write `text` as it is to stdout, flushed.
pub fn stdout_text(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .context("writing to standard output (is it closed, full, or a pipe whose reader has gone?)")
}

/// Write `args` and a newline to stderr; a failure is remembered, not raised. Use through [`note!`].
pub fn stderr_line(args: fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    if let Err(e) = writeln!(err, "{args}").and_then(|()| err.flush()) {
        let mut first = STDERR_ERROR.lock().unwrap_or_else(|p| p.into_inner());
        first.get_or_insert_with(|| format!("writing to standard error failed: {e}"));
    }
}

/// Why stderr could not be written, if it could not: the process must then exit non-zero.
pub fn stderr_error() -> Option<String> {
    STDERR_ERROR.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Machine output on stdout: `outln!("{}", json)?`.
#[macro_export]
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::out::stdout_line(format_args!($($arg)*))
    };
}

/// Human progress on stderr: `note!("bundle: wrote {path}")`.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::out::stderr_line(format_args!($($arg)*))
    };
}
