//! An edge node's link to the cloud, as the edge really has it (SPEC.md, "The network an edge
//! really has"): behind NAT, so the cloud can open no connection to the edge while the edge's own
//! connections to the cloud work, replies included; and a cable that can be cut (every packet
//! either way dropped, as when a link goes down: connections hang, nothing is refused) and healed.
//!
//! Both are iptables rules in the node's network namespace, which every component of the node
//! shares (its holder's), entered from the host with `nsenter`: the harness runs as root where
//! dockerd runs, and no image needs iptables or NET_ADMIN. The rules match the cloud network's
//! subnet, so the node's own network (how the harness reaches its components) is untouched.
//!
//! The link's traffic is read outside every agent, from the byte counters of the node's interface
//! on the cloud network (`/proc/<pid>/net/dev` of the holder): what a metered uplink would bill.

use anyhow::{Context, Result, bail};

use crate::e2e::engine::Engine;

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

    pub fn pid(&self) -> u32 {
        self.pid
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

    /// New connections to `address` on `ports` refused at once (a TCP reset, as a firewall
    /// rejecting them), the rest of the link untouched.
    pub async fn block(&self, address: &str, ports: &[u16]) -> Result<()> {
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        let ports = ports.join(",");
        let rule = ["-A", CHAIN, "-d", address, "-p", "tcp", "-m", "multiport", "--dports", &ports];
        self.iptables(&[&rule[..], &["-j", "REJECT", "--reject-with", "tcp-reset"]].concat()).await
    }

    pub async fn heal(&self) -> Result<()> {
        self.iptables(&["-F", CHAIN]).await
    }

    async fn iptables(&self, args: &[&str]) -> Result<()> {
        self.nsenter("iptables", &["-w"], args).await.map(|_| ())
    }

    /// The name of the node's interface on the cloud network (the one holding `address`).
    pub async fn interface(&self, address: std::net::IpAddr) -> Result<String> {
        let text = self.nsenter("ip", &["-o", "addr", "show"], &[]).await?;
        interface_of(&text, address)
            .with_context(|| format!("no interface of process {} holds the cloud address {address}", self.pid))
    }

    /// Bytes the node has sent and received on `interface` since it came up (a restarted node
    /// starts again from zero).
    pub fn counters(&self, interface: &str) -> Result<(u64, u64)> {
        let path = format!("/proc/{}/net/dev", self.pid);
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        counters_of(&text, interface).with_context(|| format!("{path} has no interface {interface}"))
    }

    async fn nsenter(&self, program: &str, first: &[&str], args: &[&str]) -> Result<String> {
        let pid = self.pid.to_string();
        let out = tokio::process::Command::new("nsenter")
            .args(["-t", &pid, "-n", program])
            .args(first)
            .args(args)
            .output()
            .await
            .context(
                "running nsenter: the compose tier sets each edge's NAT and link with nsenter and iptables \
                 (install them: apt-get install util-linux iptables)",
            )?;
        if !out.status.success() {
            bail!(
                "{program} {} in the network namespace of process {pid} failed: {} (the harness needs root in \
                 dockerd's PID namespace, and {program})",
                first.iter().chain(args).copied().collect::<Vec<_>>().join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// From `ip -o addr show`: the interface with `address` (`3: eth1    inet 172.18.0.3/16 …`).
fn interface_of(text: &str, address: std::net::IpAddr) -> Option<String> {
    text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let name = fields.nth(1)?;
        let _family = fields.next()?;
        let addr = fields.next()?.split('/').next()?;
        (addr.parse::<std::net::IpAddr>().ok()? == address).then(|| name.split('@').next().unwrap_or(name).to_string())
    })
}

/// From `/proc/<pid>/net/dev`: `interface`'s transmitted and received bytes (fields 9 and 1).
fn counters_of(text: &str, interface: &str) -> Option<(u64, u64)> {
    text.lines().find_map(|line| {
        let (name, rest) = line.split_once(':')?;
        if name.trim() != interface {
            return None;
        }
        let fields: Vec<u64> = rest.split_whitespace().map(|f| f.parse().ok()).collect::<Option<_>>()?;
        Some((*fields.get(8)?, *fields.first()?))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cloud_interface_and_its_counters_are_read() {
        let ip = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever\n\
                  2: eth0    inet 172.19.0.2/16 brd 172.19.255.255 scope global eth0\n\
                  3: eth1@if12    inet 172.18.0.3/16 brd 172.18.255.255 scope global eth1\n";
        assert_eq!(interface_of(ip, "172.18.0.3".parse().unwrap()).as_deref(), Some("eth1"));
        assert_eq!(interface_of(ip, "10.0.0.1".parse().unwrap()), None);
        let dev = "Inter-|   Receive                                                |  Transmit\n \
                   face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed\n    \
                   lo:     100       1    0    0    0     0          0         0      100       1    0    0    0     0       0          0\n  \
                   eth1: 5000      40    0    0    0     0          0         0     7000      50    0    0    0     0       0          0\n";
        assert_eq!(counters_of(dev, "eth1"), Some((7000, 5000)));
        assert_eq!(counters_of(dev, "eth0"), None);
    }
}
