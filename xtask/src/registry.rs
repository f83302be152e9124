//! A local OCI registry (Debian's `docker-registry`, the CNCF distribution
//! server) on 127.0.0.1, for the `local` profile: fixtures are pushed to it and
//! `lock` resolves them through the same distribution API as upstream registries.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use camino::Utf8Path;
use xshell::{Shell, cmd};

use crate::process::Background;
use crate::tools::{self, Tool};

pub const DOCKER_REGISTRY: Tool = Tool { binary: "docker-registry", package: "docker-registry" };

/// A registry serving on `addr` (`127.0.0.1:PORT`) with storage under a directory; stopped on drop.
pub struct LocalRegistry {
    pub addr: String,
    _process: Background,
}

impl LocalRegistry {
    /// Start a registry on `addr` (loopback only) storing blobs under `dir`.
    pub fn start(addr: &str, dir: &Utf8Path) -> Result<Self> {
        if !addr.starts_with("127.0.0.1:") {
            bail!("the local registry listens on loopback only; {addr} is not 127.0.0.1:PORT");
        }
        if std::net::TcpStream::connect(addr).is_ok() {
            bail!("{addr} is already in use: stop whatever listens there (e.g. an earlier registry) and retry");
        }
        let bin = DOCKER_REGISTRY.find()?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
        let config = dir.join("config.yml");
        let storage = dir.join("storage");
        let yaml = serde_json::json!({
            "version": 0.1,
            "log": { "level": "warn" },
            "storage": { "filesystem": { "rootdirectory": storage.as_str() }, "delete": { "enabled": true } },
            "http": { "addr": addr },
        });
        std::fs::write(&config, serde_yaml_ng::to_string(&yaml)?).with_context(|| format!("writing {config}"))?;
        let process = Background::start(&bin, &["serve", config.as_str()], &dir.join("registry.log"))?;
        let reg = LocalRegistry { addr: addr.to_string(), _process: process };
        reg.wait_ready(Duration::from_secs(20))?;
        Ok(reg)
    }

    /// For a profile whose images live on a loopback registry (the local profile):
    /// start that registry from `target/fixtures/registry` unless something already
    /// listens there. `None` when no registry is needed or one is running.
    pub fn start_if_needed(profile: &crate::stack::Profile) -> Result<Option<Self>> {
        let mut loopback: Vec<&str> = profile
            .enabled()
            .flat_map(|c| c.images.iter())
            .map(|i| i.reference.registry.as_str())
            .filter(|r| r.starts_with("127.0.0.1:"))
            .collect();
        loopback.sort();
        loopback.dedup();
        let Some(addr) = loopback.first() else { return Ok(None) };
        if std::net::TcpStream::connect(addr).is_ok() {
            return Ok(None);
        }
        let dir = crate::paths::registry_dir();
        if !dir.join("storage").is_dir() {
            bail!("no registry listens on {addr} and {dir} holds no images: run `cargo xtask fixtures --push` first");
        }
        Ok(Some(Self::start(addr, &dir)?))
    }

    fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self._process.check_running()?;
            if std::net::TcpStream::connect(&self.addr).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the registry did not listen on {} within {timeout:?}", self.addr);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Copy every platform of an OCI layout's image to `reference` on this registry, bytes unchanged.
    pub fn push_layout(&self, layout: &Utf8Path, tag: &str, reference: &str) -> Result<()> {
        if !reference.starts_with(&format!("{}/", self.addr)) {
            bail!("{reference} is not on the local registry {}", self.addr);
        }
        let skopeo = tools::SKOPEO.find()?;
        let sh = Shell::new()?;
        let src = format!("oci:{layout}:{tag}");
        let dst = format!("docker://{reference}");
        cmd!(sh, "{skopeo} copy --quiet --all --preserve-digests --dest-tls-verify=false {src} {dst}")
            .quiet()
            .run()
            .with_context(|| format!("pushing {layout} to {reference}"))?;
        Ok(())
    }
}
