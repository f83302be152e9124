//! Cancellation of a whole command (`e2e`, `matrix run`, `bench e2e`): SIGINT and SIGTERM are
//! listened to once, when the command starts, so a signal is seen whatever the command is doing;
//! a run checks it between phases and races it while its scenarios run. A second signal exits
//! at once (what a run made is then left for `cargo xtask e2e --sweep`).
//!
//! The listening task lives as long as the command's runtime and ends with it.

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

const INTERRUPTED: &str = "interrupted (SIGINT)";
const TERMINATED: &str = "terminated (SIGTERM)";

/// The signal a cancellation reason names (`SIGINT`, `SIGTERM`), for reports.
pub fn signal_name(why: &str) -> &'static str {
    if why == TERMINATED { "SIGTERM" } else { "SIGINT" }
}

/// The command's cancellation: `None` until a signal arrived, then why.
#[derive(Clone)]
pub struct Cancel(watch::Receiver<Option<&'static str>>);

impl Cancel {
    /// Listen for SIGINT and SIGTERM on `rt` from now on.
    pub fn install(rt: &tokio::runtime::Runtime) -> Result<Cancel> {
        let (tx, rx) = watch::channel(None);
        let (mut int, mut term) = rt
            .block_on(async {
                Ok::<_, std::io::Error>((signal(SignalKind::interrupt())?, signal(SignalKind::terminate())?))
            })
            .context("listening for SIGINT and SIGTERM")?;
        rt.spawn(async move {
            loop {
                let why = tokio::select! {
                    _ = int.recv() => INTERRUPTED,
                    _ = term.recv() => TERMINATED,
                };
                if tx.borrow().is_some() {
                    crate::note!(
                        "e2e: {why} again: exiting now; remove what the run left with `cargo xtask e2e --sweep`"
                    );
                    std::process::exit(130);
                }
                tx.send_replace(Some(why));
            }
        });
        Ok(Cancel(rx))
    }

    /// Why the command was cancelled, if it was.
    pub fn reason(&self) -> Option<&'static str> {
        *self.0.borrow()
    }

    /// An error when cancelled: call between phases.
    pub fn check(&self) -> Result<()> {
        match self.reason() {
            Some(why) => anyhow::bail!("{why}"),
            None => Ok(()),
        }
    }

    /// Resolves once cancelled, with why.
    pub async fn cancelled(&mut self) -> &'static str {
        loop {
            if let Some(why) = *self.0.borrow_and_update() {
                return why;
            }
            if self.0.changed().await.is_err() {
                // The listener is gone (the runtime is shutting down): never cancelled.
                std::future::pending::<()>().await;
            }
        }
    }
}
