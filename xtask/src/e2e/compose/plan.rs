//! The compose topology of one run, as plain data (printed by `--dry-run`, snapshot-tested).
//!
//! - `<run>-cloud`: an internal network (no route out) with the cloud components, each under
//!   its DNS alias (`prometheus`, `alertmanager`, `grafana`, `blackbox-exporter`, `loki` or
//!   `victoria-logs`, `jaeger`), the names the compose flavour of the render uses; with Jaeger,
//!   `cloud-api`, which the edge workloads call with a W3C `traceparent` (edges call the cloud,
//!   never the other way round) and which reports its spans.
//! - `<run>-edge-<i>`: one internal network per edge node. The node is a holder container
//!   (the probe image sleeping) whose network namespace the node's components share, as pods
//!   share a node's; it is also attached to the cloud network under its node name: that
//!   attachment is the node's link, behind NAT (the cloud can open no connection to the node,
//!   `link.rs`), which the harness cuts and heals. A node runs the node
//!   exporter, the workload (`fixtures/e2e/workload/`: CRI-format logs under
//!   `/var/log/pods`, traced calls to `cloud-api`) and the log agent (Alloy, or the OpenTelemetry
//!   agent built here), which tails that folder (a volume of the node's, as the kubelet's log
//!   folder is the node's).
//! - The harness is the one party outside: it reaches containers at their addresses on
//!   these bridges, and its alert receiver listens on the cloud bridge's host address.
//!   No port is published.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};
use camino::Utf8PathBuf;
use serde::Serialize;

use crate::e2e::engine::{ContainerSpec, LABEL_PID, LABEL_PIDNS, LABEL_RUN};
use crate::render::ports;
use crate::stack::{Arch, Component, Kind, Role, Stack};

/// How the harness knows a container is ready: an HTTP GET answered with a 2xx.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ready {
    pub port: u16,
    pub path: &'static str,
}

/// Where a container sits in the topology.
#[derive(Debug, Clone, Serialize)]
pub struct Planned {
    /// The cloud component's alias (`prometheus`, `loki`, …), the edge component's stack name
    /// (`edge-node-exporter`), or the node's name for its holder.
    pub component: String,
    pub role: Role,
    /// The edge node it belongs to.
    pub node: Option<String>,
    /// Every port it listens on, its HTTP API (what checks query) first.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<Ready>,
    pub spec: ContainerSpec,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub run_id: String,
    pub arch: Arch,
    /// `linux/<arch>`, as the engine names platforms.
    pub platform: String,
    pub cloud_network: String,
    /// Edge node name → its network.
    pub edges: BTreeMap<String, String>,
    pub volumes: Vec<String>,
    /// In start order: cloud components, then each node's holder and components; Prometheus
    /// alone starts last, once the others are
    /// ready, so its first scrapes find every target up.
    pub containers: Vec<Planned>,
    /// Image archives of the bundle to load (relative to the bundle folder).
    pub archives: Vec<String>,
    /// Rendered configs (compose flavour) mounted into the containers.
    pub config_dir: Utf8PathBuf,
    /// What the topology runs, as scenarios `requires` it: component kinds (`node-exporter`,
    /// `loki`, …), `prometheus`, `alertmanager` and `grafana` whichever component brings them,
    /// and `log-agent`.
    pub provides: BTreeSet<String>,
}

impl Plan {
    /// A container by component and node; [`LOG_STORE`] names whichever log store runs.
    pub fn container(&self, component: &str, node: Option<&str>) -> Option<&Planned> {
        let component = match component {
            LOG_STORE => crate::e2e::query::LogStore::of(&self.provides)?.component(),
            c => c,
        };
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

    /// The edge workload's container on `node`.
    pub fn workload(&self, node: &str) -> Option<&Planned> {
        self.containers
            .iter()
            .find(|c| c.node.as_deref() == Some(node) && c.spec.cmd.iter().any(|a| a == EDGE_WORKLOAD))
    }

    pub fn holder_name(&self, node: &str) -> String {
        format!("{}-{node}", self.run_id)
    }

    /// Names a scenario may restart or collect logs of: every component and node.
    pub fn component_names(&self) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = self.containers.iter().map(|c| c.component.clone()).collect();
        if self.provides.contains(LOG_STORE) {
            names.insert(LOG_STORE.into());
        }
        names
    }
}

/// What scenarios call the log store, whichever it is (Loki, VictoriaLogs): a requirement, and a
/// name `collect_logs` and `restart` take.
pub const LOG_STORE: &str = "log-store";

pub fn node_names(edges: usize) -> Vec<String> {
    (1..=edges).map(|i| format!("edge-{i}")).collect()
}

/// The image named `name` of a component, or its only image: a component with several images
/// (kube-prometheus-stack) must name the one that plays each part.
fn image_of(c: &Component, name: &str) -> Result<String> {
    c.image(name)
        .or_else(|| (c.images.len() == 1).then(|| &c.images[0]))
        .map(|i| i.reference.to_string())
        .ok_or_else(|| anyhow::anyhow!("component {} has no image named {name:?}: add one to its images", c.name))
}

/// The edge workload's script, as its container runs it.
const EDGE_WORKLOAD: &str = "/workload/edge-workload.sh";
/// Where the edge workload records each span its agent took (`<unix seconds> <trace id>`), and
/// the shell glob of its pod log: what a `kept` check reads on the node.
pub const SPAN_RECORD: &str = "/tmp/spans.log";
pub const WORKLOAD_POD_LOG: &str = "/var/log/pods/*/workload/0.log";
/// The cloud service edge workloads call (traced), on the workload's port.
pub const CLOUD_API: &str = "cloud-api";

/// Grafana offline: no usage reports, update checks, news or plugin downloads; anonymous admin,
/// as only the harness can reach it (internal network, nothing published).
const GRAFANA_ENV: [(&str, &str); 8] = [
    ("GF_ANALYTICS_REPORTING_ENABLED", "false"),
    ("GF_ANALYTICS_CHECK_FOR_UPDATES", "false"),
    ("GF_ANALYTICS_CHECK_FOR_PLUGIN_UPDATES", "false"),
    ("GF_NEWS_NEWS_FEED_ENABLED", "false"),
    ("GF_PLUGINS_PREINSTALL_DISABLED", "true"),
    ("GF_PLUGINS_PUBLIC_KEY_RETRIEVAL_DISABLED", "true"),
    ("GF_AUTH_ANONYMOUS_ENABLED", "true"),
    ("GF_AUTH_ANONYMOUS_ORG_ROLE", "Admin"),
];

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
    let labels: BTreeMap<String, String> = [
        (LABEL_RUN.to_string(), run_id.to_string()),
        (LABEL_PID.to_string(), std::process::id().to_string()),
        (LABEL_PIDNS.to_string(), crate::e2e::engine::pid_namespace()),
    ]
    .into();
    let workload = crate::paths::workload_dir().to_string();
    let mut containers = Vec::new();
    let mut volumes = Vec::new();
    // kube-state-metrics watches an API server: this tier has none, so it does not start it.
    let mut provides: BTreeSet<String> =
        profile.enabled().filter(|c| c.kind != Kind::KubeStateMetrics).map(|c| c.kind.to_string()).collect();
    if profile.log_agent().is_some() {
        provides.insert("log-agent".into());
    }
    provides.insert(crate::e2e::scenario::E2E_TIMING.into());
    if profile.enabled().any(|c| matches!(c.kind, Kind::Loki | Kind::VictoriaLogs)) {
        provides.insert(LOG_STORE.into());
    }
    let base = |name: &str, image: String, network: &str| ContainerSpec {
        name: format!("{run_id}-{name}"),
        image,
        entrypoint: None,
        cmd: Vec::new(),
        env: BTreeMap::new(),
        user: None,
        network: network.to_string(),
        aliases: Vec::new(),
        binds: BTreeMap::new(),
        volumes: BTreeMap::new(),
        labels: labels.clone(),
        platform: platform.clone(),
    };
    let conf = |sub: &str| config_dir.join(sub).to_string();
    let mut volume = |name: String| {
        volumes.push(name.clone());
        name
    };
    let has = |kind: Kind| profile.enabled().any(|c| c.kind == kind);
    let jaeger_otlp = format!("http://{}:{}/v1/traces", crate::render::names::RELEASE_JAEGER, ports::OTLP_HTTP);

    // The node holder and the workload: the probe image (busybox); every profile's edge has one.
    let Some(probe) = profile.enabled().find(|c| c.kind == Kind::Probe) else {
        bail!(
            "profile {profile_name} has no `probe` component: the compose tier uses its busybox image to hold each \
             edge node's network and run the workloads; add one (kind = \"probe\", role = \"edge\")"
        )
    };
    let probe_image = image_of(probe, "probe")?;
    for c in profile.enabled().filter(|c| c.role == Role::Cloud) {
        let mut add = |alias: &str, ports: &[u16], ready: Ready, mut spec: ContainerSpec| {
            spec.aliases = vec![alias.to_string()];
            provides.insert(alias.to_string());
            containers.push(Planned {
                component: alias.to_string(),
                role: Role::Cloud,
                node: None,
                ports: ports.to_vec(),
                ready: Some(ready),
                spec,
            });
        };
        if matches!(c.kind, Kind::Prometheus | Kind::PrometheusStack) {
            let mut s = base("prometheus", image_of(c, "prometheus")?, &cloud_network);
            s.cmd = vec![
                "--config.file=/etc/prometheus/prometheus.yml".into(),
                "--storage.tsdb.path=/prometheus".into(),
                format!("--web.listen-address=:{}", ports::PROMETHEUS),
                // Resend firing alerts every evaluation (default 1m): a first notification
                // sent before Alertmanager listened would otherwise wait a minute, and
                // Alertmanager would resolve alerts of a Prometheus that stopped sending
                // 4 resend delays sooner.
                format!("--rules.alert.resend-delay={}", timing.evaluation_interval),
            ];
            if profile.edges_push() {
                // Edges push (they are behind NAT): their agents remote-write here.
                s.cmd.push("--web.enable-remote-write-receiver".into());
            }
            s.binds.insert(conf("prometheus"), "/etc/prometheus".into());
            s.volumes.insert(volume(format!("{run_id}-prometheus-data")), "/prometheus".into());
            add("prometheus", &[ports::PROMETHEUS], Ready { port: ports::PROMETHEUS, path: "/-/ready" }, s);
        }
        if matches!(c.kind, Kind::Alertmanager | Kind::PrometheusStack) {
            let mut s = base("alertmanager", image_of(c, "alertmanager")?, &cloud_network);
            s.cmd = vec![
                "--config.file=/etc/alertmanager/alertmanager.yml".into(),
                "--storage.path=/alertmanager".into(),
                format!("--web.listen-address=:{}", ports::ALERTMANAGER),
                // One replica: no gossip cluster.
                "--cluster.listen-address=".into(),
            ];
            s.binds.insert(conf("alertmanager"), "/etc/alertmanager".into());
            s.volumes.insert(volume(format!("{run_id}-alertmanager-data")), "/alertmanager".into());
            add("alertmanager", &[ports::ALERTMANAGER], Ready { port: ports::ALERTMANAGER, path: "/-/ready" }, s);
        }
        if c.kind == Kind::PrometheusStack && c.image("grafana").is_some() {
            let mut s = base("grafana", image_of(c, "grafana")?, &cloud_network);
            s.env = GRAFANA_ENV.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            s.binds.insert(conf("grafana/datasources"), "/etc/grafana/provisioning/datasources".into());
            let port = ports::GRAFANA;
            add("grafana", &[port], Ready { port, path: "/api/health" }, s);
        }
        match c.kind {
            Kind::BlackboxExporter => {
                let mut s = base("blackbox-exporter", image_of(c, "blackbox-exporter")?, &cloud_network);
                s.cmd = vec![
                    "--config.file=/etc/blackbox/blackbox.yml".into(),
                    format!("--web.listen-address=:{}", ports::BLACKBOX),
                ];
                s.binds.insert(conf("blackbox"), "/etc/blackbox".into());
                add("blackbox-exporter", &[ports::BLACKBOX], Ready { port: ports::BLACKBOX, path: "/metrics" }, s);
            }
            Kind::Loki => {
                let mut s = base("loki", image_of(c, "loki")?, &cloud_network);
                s.cmd = vec!["-config.file=/etc/loki/config.yaml".into()];
                s.binds.insert(conf("loki"), "/etc/loki".into());
                // A new named volume takes the image's /loki, owned by Loki's user (10001).
                s.volumes.insert(volume(format!("{run_id}-loki-data")), "/loki".into());
                let port = ports::LOKI;
                add(crate::render::names::RELEASE_LOKI, &[port], Ready { port, path: "/ready" }, s);
            }
            Kind::VictoriaLogs => {
                use crate::render::otelagent::{VICTORIA_LOGS_DATA, VICTORIA_LOGS_HOST};
                let mut s = base(VICTORIA_LOGS_HOST, image_of(c, "victoria-logs")?, &cloud_network);
                s.cmd = vec![
                    format!("-httpListenAddr=:{}", ports::VICTORIA_LOGS),
                    format!("-storageDataPath=/{VICTORIA_LOGS_DATA}"),
                    // Rows become searchable within a second (default 5s).
                    "-inmemoryDataFlushInterval=1s".into(),
                ];
                s.volumes.insert(volume(format!("{run_id}-victoria-logs-data")), format!("/{VICTORIA_LOGS_DATA}"));
                let ready = Ready { port: ports::VICTORIA_LOGS, path: "/health" };
                add(VICTORIA_LOGS_HOST, &[ports::VICTORIA_LOGS], ready, s);
            }
            Kind::Jaeger => {
                let mut s = base("jaeger", image_of(c, "jaeger")?, &cloud_network);
                s.cmd = vec!["--config".into(), "/etc/jaeger/config.yaml".into()];
                s.binds.insert(conf("jaeger"), "/etc/jaeger".into());
                let ready = Ready { port: ports::COLLECTOR_HEALTH, path: "/status" };
                use ports::{COLLECTOR_HEALTH, COLLECTOR_METRICS, JAEGER_QUERY, OTLP_GRPC, OTLP_HTTP};
                let listens = [JAEGER_QUERY, OTLP_GRPC, OTLP_HTTP, COLLECTOR_HEALTH, COLLECTOR_METRICS];
                add(crate::render::names::RELEASE_JAEGER, &listens, ready, s);
                // What edge workloads call: its spans go straight to Jaeger, as a cloud service's do.
                let mut s = base(CLOUD_API, probe_image.clone(), &cloud_network);
                s.entrypoint = Some(vec!["/bin/busybox".into()]);
                s.cmd = vec!["sh".into(), "/workload/cloud-api.sh".into()];
                s.env = [("OTLP_URL".to_string(), jaeger_otlp.clone())].into();
                s.binds.insert(workload.clone(), "/workload".into());
                add(CLOUD_API, &[ports::WORKLOAD], Ready { port: ports::WORKLOAD, path: "/index.html" }, s);
            }
            _ => {}
        }
    }

    let nodes = node_names(edges);
    let mut edge_networks = BTreeMap::new();
    for node in &nodes {
        let network = format!("{run_id}-{node}");
        edge_networks.insert(node.clone(), network.clone());
        let mut holder = base(node, probe_image.clone(), &network);
        holder.entrypoint = Some(vec!["/bin/busybox".into()]);
        holder.cmd = vec!["sleep".into(), "2147483647".into()];
        holder.aliases = vec![node.clone()];
        containers.push(Planned {
            component: node.clone(),
            role: Role::Edge,
            node: Some(node.clone()),
            ports: Vec::new(),
            ready: None,
            spec: holder,
        });
        let netns = format!("container:{run_id}-{node}");
        // The node's pod log folder: the workload writes it (as the kubelet does), the agent tails it.
        let pods = volume(format!("{run_id}-{node}-pods"));
        for c in profile.enabled().filter(|c| c.role == Role::Edge) {
            let mut s = base(&format!("{node}-{}", c.name), String::new(), &netns);
            let (port, ready) = match c.kind {
                Kind::NodeExporter => {
                    let port = stack.settings.edge.node_exporter;
                    s.image = image_of(c, "node-exporter")?;
                    s.cmd = vec![format!("--web.listen-address=:{port}")];
                    (port, Ready { port, path: "/metrics" })
                }
                Kind::LinkProbe => {
                    let port = stack.settings.edge.link_probe;
                    s.image = image_of(c, "blackbox-exporter")?;
                    s.cmd = vec![
                        "--config.file=/etc/blackbox/blackbox.yml".into(),
                        format!("--web.listen-address=:{port}"),
                    ];
                    s.binds.insert(conf("blackbox"), "/etc/blackbox".into());
                    (port, Ready { port, path: "/metrics" })
                }
                Kind::Probe => {
                    s.image = image_of(c, "probe")?;
                    s.entrypoint = Some(vec!["/bin/busybox".into()]);
                    s.cmd = vec!["sh".into(), EDGE_WORKLOAD.into()];
                    s.env.insert("NODE".into(), node.clone());
                    s.env.insert("SPAN_RECORD".into(), SPAN_RECORD.into());
                    if has(Kind::Jaeger) {
                        // Spans go to the node's agent when it takes them (it buffers them while
                        // the link is down), else straight to Jaeger.
                        let otlp = match profile.log_agent().map(|a| a.kind) {
                            Some(Kind::OtelAgent) => {
                                format!("http://{}/v1/traces", crate::render::otelagent::otlp_listen())
                            }
                            _ => jaeger_otlp.clone(),
                        };
                        s.env.insert("OTLP_URL".into(), otlp);
                        s.env.insert(
                            "CLOUD_API_URL".into(),
                            format!("http://{CLOUD_API}:{}/cgi-bin/work", ports::WORKLOAD),
                        );
                    }
                    // Writes the pod log folder as the kubelet does: as root.
                    s.user = Some("0:0".into());
                    s.binds.insert(workload.clone(), "/workload".into());
                    s.volumes.insert(pods.clone(), "/var/log/pods".into());
                    (ports::WORKLOAD, Ready { port: ports::WORKLOAD, path: "/index.html" })
                }
                Kind::PrometheusAgent => {
                    use crate::render::edgemetrics::{CONFIG_FILE, WAL_DIR, args};
                    let (dir, file) = CONFIG_FILE.rsplit_once('/').unwrap_or(("", CONFIG_FILE));
                    let port = stack.settings.edge.metrics_agent;
                    s.image = image_of(c, "prometheus")?;
                    s.cmd = args(timing.buffer_window, &format!(":{port}"), &format!("/etc/edge-metrics/{file}"));
                    s.env.insert(crate::render::otelagent::NODE_NAME_ENV.into(), node.clone());
                    s.binds.insert(conf(dir), "/etc/edge-metrics".into());
                    // The WAL (the offline buffer) survives a restart, as on a hostPath.
                    s.volumes.insert(volume(format!("{run_id}-{node}-metrics")), WAL_DIR.into());
                    (port, Ready { port, path: "/-/ready" })
                }
                Kind::Alloy => {
                    // Where it scrapes itself (`settings.edge.metrics_agent`), as on a node.
                    let port = stack.settings.edge.metrics_agent;
                    s.image = image_of(c, "alloy")?;
                    s.cmd = vec![
                        "run".into(),
                        "/etc/alloy/config.alloy".into(),
                        "--storage.path=/var/lib/alloy/data".into(),
                        // The default listens on loopback only.
                        format!("--server.http.listen-addr=0.0.0.0:{port}"),
                        "--disable-reporting".into(),
                    ];
                    s.binds.insert(conf(&format!("log-agent/{node}")), "/etc/alloy".into());
                    s.volumes.insert(pods.clone(), "/var/log/pods".into());
                    // Positions (what was read) survive a restart of the agent, as on a hostPath.
                    s.volumes.insert(volume(format!("{run_id}-{node}-alloy")), "/var/lib/alloy/data".into());
                    (port, Ready { port, path: "/-/ready" })
                }
                Kind::OtelAgent => {
                    use crate::render::otelagent::{CONFIG_FILE, NODE_NAME_ENV};
                    let (dir, file) = CONFIG_FILE.rsplit_once('/').unwrap_or(("", CONFIG_FILE));
                    s.image = image_of(c, "otel-agent")?;
                    s.cmd = vec![format!("--config=/etc/edge-agent/{file}")];
                    s.env.insert(NODE_NAME_ENV.into(), node.clone());
                    s.binds.insert(conf(dir), "/etc/edge-agent".into());
                    s.volumes.insert(pods.clone(), "/var/log/pods".into());
                    // Read offsets and the sending queue survive a restart, as on a hostPath.
                    let state = crate::render::logagent::STATE_DIR;
                    s.volumes.insert(volume(format!("{run_id}-{node}-agent")), state.into());
                    (ports::COLLECTOR_HEALTH, Ready { port: ports::COLLECTOR_HEALTH, path: "/" })
                }
                // `Ctx::compose` refuses Promtail; nothing else runs on an edge node.
                _ => continue,
            };
            // The Go agents collect garbage harder before their budget is reached.
            if let (Kind::OtelAgent | Kind::PrometheusAgent, Some(b)) = (c.kind, &c.budget) {
                s.env.insert("GOMEMLIMIT".into(), crate::render::otelagent::go_memory_limit(b.memory.bytes()));
            }
            containers.push(Planned {
                component: c.name.to_string(),
                role: Role::Edge,
                node: Some(node.clone()),
                ports: vec![port],
                ready: Some(ready),
                spec: s,
            });
        }
    }
    Ok(Plan {
        run_id: run_id.to_string(),
        arch,
        platform,
        cloud_network,
        edges: edge_networks,
        volumes,
        containers,
        archives,
        config_dir,
        provides,
    })
}
