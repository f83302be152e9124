//! The compose topology of one run, as plain data (printed by `--dry-run`, snapshot-tested).
//!
//! - `<run>-cloud`: an internal network (no route out) with the cloud components,
//!   each under its DNS alias (`prometheus`, `alertmanager`, `blackbox-exporter`).
//! - `<run>-edge-<i>`: one internal network per edge node. The node is a holder container
//!   (the probe image sleeping) whose network namespace the node's components share, as
//!   pods share a node's; it is also attached to the cloud network under its node name:
//!   that attachment is the node's link, which the harness cuts and heals.
//! - The harness is the one party outside: it reaches containers at their addresses on
//!   these bridges, and its alert receiver listens on the cloud bridge's host address.
//!   No port is published.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use camino::Utf8PathBuf;
use serde::Serialize;

use super::engine::{ContainerSpec, LABEL_PID, LABEL_RUN};
use crate::stack::{Arch, Component, Kind, Role, Stack};

/// Where a container sits in the topology.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// The stack component it runs (`edge-1` for a node holder).
    pub component: String,
    pub role: Role,
    /// The edge node it belongs to.
    pub node: Option<String>,
    pub spec: ContainerSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub run_id: String,
    pub platform: String,
    pub cloud_network: String,
    /// Edge node name → its network.
    pub edges: BTreeMap<String, String>,
    pub volumes: Vec<String>,
    /// In start order: cloud components, then each node's holder and components.
    pub containers: Vec<Planned>,
    /// Image archives of the bundle to load (relative to the bundle folder).
    pub archives: Vec<String>,
    /// Rendered configs (compose flavour) mounted into the containers.
    pub config_dir: Utf8PathBuf,
}

impl Plan {
    pub fn container(&self, component: &str, node: Option<&str>) -> Option<&Planned> {
        self.containers.iter().find(|c| c.component == component && c.node.as_deref() == node)
    }

    /// The containers of one edge node: its holder first.
    pub fn node_containers(&self, node: &str) -> Vec<&Planned> {
        self.containers.iter().filter(|c| c.node.as_deref() == Some(node)).collect()
    }

    /// Edge components (not holders): what the budget is measured on.
    pub fn measured(&self) -> Vec<&Planned> {
        self.containers.iter().filter(|c| c.role == Role::Edge && c.node.as_deref() != Some(&c.component)).collect()
    }

    pub fn holder_name(&self, node: &str) -> String {
        format!("{}-{node}", self.run_id)
    }
}

pub fn node_names(edges: usize) -> Vec<String> {
    (1..=edges).map(|i| format!("edge-{i}")).collect()
}

/// The image of a component that plays `name` (the stack's image name).
fn image_of<'a>(c: &'a Component, name: &str) -> Result<&'a crate::stack::Image> {
    c.image(name).or_else(|| c.images.first()).ok_or_else(|| anyhow::anyhow!("component {} has no image", c.name))
}

fn reference(img: &crate::stack::Image) -> String {
    img.reference.to_string()
}

/// Plan the topology for a profile of `stack` on `arch` with `edges` nodes. Pure.
pub fn plan(
    stack: &Stack,
    profile_name: &str,
    arch: Arch,
    run_id: &str,
    edges: usize,
    config_dir: Utf8PathBuf,
    archives: Vec<String>,
) -> Result<Plan> {
    if edges == 0 {
        bail!("--edges must be at least 1");
    }
    let profile = stack.profile(profile_name)?;
    let timing = &stack.e2e;
    let platform = format!("linux/{arch}");
    let cloud_network = format!("{run_id}-cloud");
    let labels: BTreeMap<String, String> =
        [(LABEL_RUN.to_string(), run_id.to_string()), (LABEL_PID.to_string(), std::process::id().to_string())].into();
    let mut containers = Vec::new();
    let mut volumes = Vec::new();
    let base = |name: &str, image: String, network: &str| ContainerSpec {
        name: format!("{run_id}-{name}"),
        image,
        entrypoint: None,
        cmd: Vec::new(),
        network: network.to_string(),
        aliases: Vec::new(),
        binds: BTreeMap::new(),
        volumes: BTreeMap::new(),
        labels: labels.clone(),
        platform: platform.clone(),
    };
    let conf = |sub: &str| config_dir.join(sub).to_string();
    for c in profile.enabled().filter(|c| c.role == Role::Cloud) {
        let mut add = |alias: &str, spec: ContainerSpec| {
            let mut spec = spec;
            spec.aliases = vec![alias.to_string()];
            containers.push(Planned { component: alias.to_string(), role: Role::Cloud, node: None, spec });
        };
        match c.kind {
            Kind::Prometheus | Kind::PrometheusStack => {
                let mut s = base("prometheus", reference(image_of(c, "prometheus")?), &cloud_network);
                s.cmd = vec![
                    "--config.file=/etc/prometheus/prometheus.yml".into(),
                    "--storage.tsdb.path=/prometheus".into(),
                    "--web.listen-address=:9090".into(),
                    // Resend firing alerts every evaluation (default 1m): a first notification
                    // sent before Alertmanager listened would otherwise wait a minute, and
                    // Alertmanager would resolve alerts of a Prometheus that stopped sending
                    // 4 resend delays sooner.
                    format!("--rules.alert.resend-delay={}", timing.evaluation_interval),
                ];
                s.binds.insert(conf("prometheus"), "/etc/prometheus".into());
                let volume = format!("{run_id}-prometheus-data");
                s.volumes.insert(volume.clone(), "/prometheus".into());
                volumes.push(volume);
                add("prometheus", s);
            }
            _ => {}
        }
        match c.kind {
            Kind::Alertmanager | Kind::PrometheusStack => {
                let mut s = base("alertmanager", reference(image_of(c, "alertmanager")?), &cloud_network);
                s.cmd = vec![
                    "--config.file=/etc/alertmanager/alertmanager.yml".into(),
                    "--storage.path=/alertmanager".into(),
                    "--web.listen-address=:9093".into(),
                    // One replica: no gossip cluster.
                    "--cluster.listen-address=".into(),
                ];
                s.binds.insert(conf("alertmanager"), "/etc/alertmanager".into());
                let volume = format!("{run_id}-alertmanager-data");
                s.volumes.insert(volume.clone(), "/alertmanager".into());
                volumes.push(volume);
                add("alertmanager", s);
            }
            Kind::BlackboxExporter => {
                let mut s = base("blackbox-exporter", reference(image_of(c, "blackbox-exporter")?), &cloud_network);
                s.cmd = vec!["--config.file=/etc/blackbox/blackbox.yml".into(), "--web.listen-address=:9115".into()];
                s.binds.insert(conf("blackbox"), "/etc/blackbox".into());
                add("blackbox-exporter", s);
            }
            _ => {}
        }
    }
    // The node holder: the probe image (busybox) sleeping; every profile's edge has one.
    let holder_image =
        profile.enabled().find(|c| c.kind == Kind::Probe).map(|c| image_of(c, "probe").map(reference)).transpose()?;
    let mut edge_networks = BTreeMap::new();
    for node in node_names(edges) {
        let network = format!("{run_id}-{node}");
        edge_networks.insert(node.clone(), network.clone());
        let Some(holder_image) = holder_image.clone() else {
            bail!(
                "profile has no `probe` component: the compose tier uses its busybox image to hold each edge node's network"
            )
        };
        let mut holder = base(&node, holder_image, &network);
        holder.entrypoint = Some(vec!["/bin/busybox".into()]);
        holder.cmd = vec!["sleep".into(), "2147483647".into()];
        holder.aliases = vec![node.clone()];
        containers.push(Planned { component: node.clone(), role: Role::Edge, node: Some(node.clone()), spec: holder });
        let netns = format!("container:{run_id}-{node}");
        for c in profile.enabled().filter(|c| c.role == Role::Edge) {
            let mut s = base(&format!("{node}-{}", c.name), String::new(), &netns);
            match c.kind {
                Kind::NodeExporter => {
                    s.image = reference(image_of(c, "node-exporter")?);
                    s.cmd = vec!["--web.listen-address=:9100".into()];
                }
                Kind::Probe => {
                    // The edge workload: serves HTTP and writes a log line a second.
                    s.image = reference(image_of(c, "probe")?);
                    s.entrypoint = Some(vec!["/bin/busybox".into()]);
                    s.cmd = vec![
                        "sh".into(),
                        "-c".into(),
                        format!(
                            "busybox httpd -p 8080 -h /tmp; while :; do echo \"level=info msg=\\\"edge workload tick\\\" node={node}\"; busybox sleep 1; done"
                        ),
                    ];
                }
                // Log agents need Loki, which the compose tier does not run yet.
                _ => continue,
            }
            containers.push(Planned {
                component: c.name.to_string(),
                role: Role::Edge,
                node: Some(node.clone()),
                spec: s,
            });
        }
    }
    Ok(Plan {
        run_id: run_id.to_string(),
        platform,
        cloud_network,
        edges: edge_networks,
        volumes,
        containers,
        archives,
        config_dir,
    })
}
