//! Background processes (the one place duct is used): started with their output
//! in a log file, stopped when dropped, so no test or command leaks a server.

use anyhow::{Context, Result};
use camino::{Utf8Path, Utf8PathBuf};

/// A running background process, killed and reaped on drop.
pub struct Background {
    handle: duct::Handle,
    pub name: String,
    pub log: Utf8PathBuf,
}

impl Background {
    /// Start `program args...`, stdout and stderr to `log`.
    pub fn start(program: &Utf8Path, args: &[&str], log: &Utf8Path) -> Result<Self> {
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
        }
        let handle = duct::cmd(program.as_std_path(), args)
            .stderr_to_stdout()
            .stdout_path(log.as_std_path())
            .stdin_null()
            .unchecked()
            .start()
            .with_context(|| format!("starting {program}"))?;
        Ok(Background { handle, name: program.to_string(), log: log.to_path_buf() })
    }

    /// Ok while running; an error with the end of its log once it has exited.
    pub fn check_running(&self) -> Result<()> {
        match self.handle.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(out)) => {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(15).collect::<Vec<_>>().into_iter().rev().collect();
                anyhow::bail!(
                    "{} exited with {}; its log ({}) ends:\n{}",
                    self.name,
                    out.status,
                    self.log,
                    tail.join("\n")
                )
            }
            Err(e) => Err(e).with_context(|| format!("checking {}", self.name)),
        }
    }
}

impl Drop for Background {
    /// Kill and reap: once dropped, the process is gone and its ports are free (duct's `kill`
    /// alone does not wait, so a server started right after could find the port still taken).
    fn drop(&mut self) {
        let _ = self.handle.kill();
        let _ = self.handle.wait();
    }
}
