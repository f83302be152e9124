//! An edge node's link to the cloud, as the edge really has it (SPEC.md, "The network an edge
//! really has"): behind NAT, so the cloud can open no connection to the edge while the edge's own
//! connections to the cloud work, replies included; and a cable that can be cut (every packet
//! either way dropped, as when a link goes down: connections hang, nothing is refused) and healed.
//!
//! Both are iptables rules in the node's network namespace, which every component of the node
//! shares (its holder's), entered from the host with `nsenter`: the harness runs as root where
//! dockerd runs, and no image needs iptables or NET_ADMIN. The rules match the cloud network's
//! subnet, so the node's own network (how the harness reaches its components) is untouched.

use anyhow::{Context, Result, bail};

use super::engine::Engine;

/// The chain a cut fills and a heal empties.
const CHAIN: &str = "kubeprepare-link";

/// Where a node's namespace is and what the cloud's addresses are.
pub struct Link {
    pid: u32,
    cloud_subnet: String,
}

impl Link {
    pub async fn of(engine: &Engine, holder: &str, cloud_network: &str) -> Result<Link> {
        Ok(Link { pid: engine.pid(holder).await?, cloud_subnet: engine.network_subnet(cloud_network).await? })
    }

    /// NAT: connections from the cloud are dropped; the node's own (and their replies) pass.
    /// Once per namespace: nothing to do where the chain exists (a node started while running).
    pub async fn install(&self) -> Result<()> {
        let s = self.cloud_subnet.as_str();
        if self.iptables(&["-S", CHAIN]).await.is_ok() {
            return Ok(());
        }
        self.iptables(&["-N", CHAIN]).await?;
        self.iptables(&["-A", "INPUT", "-j", CHAIN]).await?;
        self.iptables(&["-A", "OUTPUT", "-j", CHAIN]).await?;
        self.iptables(&["-A", "INPUT", "-s", s, "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP"]).await
    }

    /// Every packet to or from the cloud dropped.
    pub async fn cut(&self) -> Result<()> {
        let s = self.cloud_subnet.as_str();
        self.iptables(&["-F", CHAIN]).await?;
        self.iptables(&["-A", CHAIN, "-s", s, "-j", "DROP"]).await?;
        self.iptables(&["-A", CHAIN, "-d", s, "-j", "DROP"]).await
    }

    pub async fn heal(&self) -> Result<()> {
        self.iptables(&["-F", CHAIN]).await
    }

    async fn iptables(&self, args: &[&str]) -> Result<()> {
        let pid = self.pid.to_string();
        let out = tokio::process::Command::new("nsenter")
            .args(["-t", &pid, "-n", "iptables", "-w"])
            .args(args)
            .output()
            .await
            .context(
                "running nsenter: the compose tier sets each edge's NAT and link with nsenter and iptables \
                 (install them: apt-get install util-linux iptables)",
            )?;
        if !out.status.success() {
            bail!(
                "iptables {} in the network namespace of process {pid} failed: {} (the harness needs root in \
                 dockerd's PID namespace, and iptables)",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}
