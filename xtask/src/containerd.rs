//! A private containerd (Debian's `containerd`) for import tests: its own root,
//! state and socket under a directory, stopped on drop. `ctr images import` is
//! what kubeprepare's edge install runs, so bundles are checked with the real thing.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{Shell, cmd};

use crate::process::Background;
use crate::tools::Tool;

pub const CONTAINERD: Tool = Tool { binary: "containerd", package: "containerd" };
pub const CTR: Tool = Tool { binary: "ctr", package: "containerd" };

pub struct Containerd {
    pub socket: Utf8PathBuf,
    _process: Background,
}

/// One image as `ctr images ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub name: String,
    pub media_type: String,
    pub digest: String,
    pub platforms: String,
}

impl Containerd {
    pub fn start(dir: &Utf8Path) -> Result<Self> {
        let bin = CONTAINERD.find()?;
        CTR.find()?;
        let socket = dir.join("c.sock");
        let (root, state) = (dir.join("root"), dir.join("state"));
        let config = dir.join("config.toml");
        // No CRI plugin, no listeners but the socket: only the content and image stores are used.
        std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
        std::fs::write(&config, "version = 2\ndisabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n")
            .context("writing containerd config")?;
        let args = [
            "--config",
            config.as_str(),
            "--root",
            root.as_str(),
            "--state",
            state.as_str(),
            "--address",
            socket.as_str(),
        ];
        let process = Background::start(&bin, &args, &dir.join("containerd.log"))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !socket.exists() {
            process.check_running()?;
            if Instant::now() > deadline {
                bail!("containerd did not create {socket} within 20s; see {}", process.log);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(Containerd { socket, _process: process })
    }

    /// `ctr -n <namespace> images import --platform linux/<arch> <tar>`.
    pub fn import(&self, namespace: &str, tar: &Utf8Path, arch: crate::stack::Arch) -> Result<()> {
        let sh = Shell::new()?;
        let sock = &self.socket;
        let platform = format!("linux/{arch}");
        cmd!(sh, "ctr --address {sock} -n {namespace} images import --platform {platform} {tar}")
            .quiet()
            .ignore_stdout()
            .run()
            .with_context(|| format!("ctr images import {tar}"))
    }

    pub fn list(&self, namespace: &str) -> Result<Vec<Listed>> {
        let sh = Shell::new()?;
        let sock = &self.socket;
        let out = cmd!(sh, "ctr --address {sock} -n {namespace} images ls").quiet().ignore_stderr().read()?;
        Ok(out
            .lines()
            .skip(1)
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // REF TYPE DIGEST SIZE(2 fields) PLATFORMS LABELS
                (f.len() >= 6).then(|| Listed {
                    name: f[0].into(),
                    media_type: f[1].into(),
                    digest: f[2].into(),
                    platforms: f[5].into(),
                })
            })
            .collect())
    }
}
