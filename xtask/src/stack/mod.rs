//! The stack model: the one typed source of truth (`stack.toml`) for components,
//! charts, images, edge budgets, settings and the compatibility matrix.
//!
//! Loading does I/O only to read the file; everything else here is pure.
//! Every error names the file, line and field, and says how to fix it.

mod load;
pub mod values;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use load::{StackError, load, load_str};
pub use values::{Cpu, Digest, Duration, ImageRef, Memory, Name, Url, Version};

/// The whole stack definition.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Stack {
    /// Format version of the stack file; this tool reads version 1.
    pub schema: u32,
    /// The kubeprepare pins the observability platform ships with.
    pub kubeprepare: Kubeprepare,
    pub settings: Settings,
    pub matrix: Matrix,
    /// Timing of the e2e compose tier; an absent table or field takes [`E2e::default`].
    #[serde(default)]
    pub e2e: E2e,
    /// Programs built from Go modules by `cargo xtask fixtures` for the local profile's images.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub programs: BTreeMap<Name, GoProgram>,
    /// The node image of the e2e `kubernetes` tier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Node>,
    pub profiles: BTreeMap<Name, Profile>,
}

/// The node image of the e2e `kubernetes` tier: Kubernetes, etcd, containerd and the CNI plugins
/// from their Go modules (`programs`), on a Debian minbase of `suite` with `debian`'s packages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// The image's name in the Docker engine (never pushed anywhere).
    pub image: ImageRef,
    pub programs: Vec<Name>,
    /// The folder a program's binaries go to where it is not `/usr/local/bin` (CNI plugins).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub install: BTreeMap<Name, String>,
    pub suite: String,
    pub debian: Vec<String>,
}

impl Node {
    /// The folder (absolute) `program`'s binaries are installed in.
    pub fn bin_dir(&self, program: &str) -> &str {
        self.install.iter().find(|(n, _)| n.as_str() == program).map(|(_, d)| d.as_str()).unwrap_or("/usr/local/bin")
    }
}

impl Stack {
    /// The `[programs.<name>]` recipe.
    pub fn program(&self, name: &str) -> anyhow::Result<&GoProgram> {
        self.programs
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, p)| p)
            .ok_or_else(|| anyhow::anyhow!("no [programs.{name}] in the stack file: define it, or remove the name"))
    }
}

/// A program built from a published Go module (CONVENTIONS §17): what goes in is data, so the
/// same recipe, module sums and toolchain give the same binary.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GoProgram {
    /// Module path, e.g. `github.com/prometheus/prometheus`.
    pub module: String,
    /// Module version (`v0.314.0`); may differ from the release's own number.
    pub version: String,
    /// The release this is, as the upstream image's tag says it (`v3.14.0`).
    pub release: String,
    /// Packages inside the module, one binary each, named by the package's last element.
    pub packages: Vec<String>,
    /// `-X` linker settings, e.g. the version the release stamps into `--version`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ldflags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The binary a package is installed as where that is not the package's last element
    /// (`"." = "etcd"` for a module whose path ends in its major version).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub names: BTreeMap<String, String>,
    /// Whether the program needs cgo (`CGO_ENABLED=1`); off by default, for static binaries.
    #[serde(default)]
    pub cgo: bool,
    /// `replace` lines the upstream go.mod carries to published modules, as `old => new version`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replace: Vec<String>,
    /// Why this release is not the one the upstream profile ships, when it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differs: Option<String>,
    /// Our own program: its sources, go.mod and go.sum are committed in `fixtures/go/<name>/`
    /// (`module` is that module's path), not written from the recipe.
    #[serde(default)]
    pub local: bool,
    /// The Go toolchain to build with (`GOTOOLCHAIN`, e.g. `go1.27.3`) where a module needs a
    /// newer one than the machine's; the Go module proxy serves it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub toolchain: Option<String>,
    /// An OpenTelemetry Collector assembled by the collector builder: `module`/`version` name the
    /// builder, which writes the program's sources and go.mod into the wrapper module.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub collector: Option<Collector>,
}

/// The collector builder's manifest, as data: the binary's name and the published components
/// (`gomod` lines, `module version`) of each class.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Collector {
    pub name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub receivers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processors: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exporters: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extensions: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<String>,
}

impl Collector {
    /// Each class of components with its `gomod` lines, as the builder's manifest names them.
    pub fn classes(&self) -> [(&'static str, &[String]); 5] {
        [
            ("receivers", &self.receivers),
            ("processors", &self.processors),
            ("exporters", &self.exporters),
            ("extensions", &self.extensions),
            ("providers", &self.providers),
        ]
    }
}

impl GoProgram {
    /// The binaries it builds, by package.
    pub fn binaries(&self) -> impl Iterator<Item = (&str, &str)> {
        self.packages.iter().map(|p| match &self.collector {
            Some(c) => (p.as_str(), c.name.as_str()),
            None => match self.names.get(p) {
                Some(name) => (p.as_str(), name.as_str()),
                None => {
                    let from = if p == "." { self.module.as_str() } else { p.as_str() };
                    (p.as_str(), from.rsplit('/').next().unwrap_or(from))
                }
            },
        })
    }

    /// Import path of a package of the module (`.` is the module root; for a collector, the
    /// wrapper module the builder wrote).
    pub fn import_path(&self, package: &str) -> String {
        match (package, &self.collector) {
            (_, Some(_)) => ".".to_string(),
            ("." | "", None) => self.module.clone(),
            (p, None) => format!("{}/{p}", self.module),
        }
    }
}

/// Versions of the kubeprepare packages this stack is built for.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Kubeprepare {
    pub k3s: Version,
    pub kubeedge: Version,
    pub edgemesh: Version,
    pub helm: Version,
}

/// Deployment-wide settings every renderer reads.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Namespace of every observability workload.
    pub namespace: Name,
    /// Name of the StorageClass the stack creates (k3s local-path provisioner).
    pub storage_class: Name,
    pub scrape_interval: Duration,
    pub evaluation_interval: Duration,
    /// How long Prometheus keeps samples.
    pub metrics_retention: Duration,
    /// Size of Prometheus' volume; retention by size is set just below it.
    pub metrics_storage: Memory,
    /// How long Loki keeps log lines.
    pub log_retention: Duration,
    pub log_storage: Memory,
    /// Cap of Jaeger's in-memory trace store.
    pub trace_max_traces: u32,
    /// Cloud NodePorts edge nodes push to (edge nodes have no cluster DNS nor service network).
    pub node_ports: NodePorts,
    #[serde(default)]
    pub cloudcore: CloudcorePorts,
    #[serde(default)]
    pub edge: EdgePorts,
    /// What each edge keeps while its link to the cloud is down.
    pub edge_buffer: EdgeBuffer,
    /// What each edge may send and receive over its link.
    pub edge_link: EdgeLink,
}

/// One edge's traffic budget over its link to the cloud, both directions together, at steady
/// state (a replay after an outage is the outage's backlog, bounded by the buffer).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeLink {
    /// Bytes per minute at `settings.scrape_interval`. The e2e compose tier scrapes faster
    /// (`[e2e] scrape_interval`) and checks the budget scaled by the same factor.
    pub budget_per_minute: Memory,
}

impl Stack {
    /// [`EdgeLink::budget_per_minute`] at the e2e compose tier's pace: scaled by
    /// `settings.scrape_interval / e2e.scrape_interval` (the metrics, most of the traffic, scale
    /// so; the workload's logs and spans come at the e2e's own pace and weigh little).
    pub fn e2e_link_budget_per_minute(&self) -> u64 {
        let factor =
            self.settings.scrape_interval.as_millis() as f64 / self.e2e.scrape_interval.as_millis().max(1) as f64;
        (self.settings.edge_link.budget_per_minute.bytes() as f64 * factor.max(1.0)) as u64
    }
}

/// The edge agents' offline buffer (SPEC.md, "The network an edge really has"): while the link is
/// down each agent keeps what it collects on the node's disk and, after a heal, sends it in order.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EdgeBuffer {
    /// How old data may be when it is sent: a sample older than this is dropped at sending (and
    /// counted by the agent), so a cut shorter than the window loses nothing.
    pub window: Duration,
    /// The disk the buffers of one edge may take.
    pub size: Memory,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NodePorts {
    /// Prometheus (remote writes from edge metrics agents).
    pub prometheus: u16,
    /// Loki gateway (log push from edge agents).
    pub loki: u16,
    /// Jaeger OTLP gRPC (4317 in the pod).
    pub otlp_grpc: u16,
    /// Jaeger OTLP HTTP (4318 in the pod).
    pub otlp_http: u16,
    /// VictoriaLogs (OTLP log push from edge agents; 9428 in the pod).
    #[serde(default = "NodePorts::default_victoria_logs")]
    pub victoria_logs: u16,
}

impl NodePorts {
    fn default_victoria_logs() -> u16 {
        31428
    }
}

/// Ports of cloudcore; the defaults are KubeEdge's.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CloudcorePorts {
    /// CloudHub websocket (edgecore connects here).
    pub cloudhub: u16,
    /// CloudHub https (certificates for edge nodes).
    pub cloudhub_https: u16,
    /// CloudStream stream port (iptables-manager DNATs the tunnel ports, from 10351, here).
    pub stream: u16,
    /// CloudStream tunnel port (edgeStream dials here).
    pub tunnel: u16,
    /// cloudcore's monitor server (`commonConfig.monitorServer`), `/metrics`.
    pub monitor: u16,
}

impl Default for CloudcorePorts {
    fn default() -> Self {
        CloudcorePorts { cloudhub: 10000, cloudhub_https: 10002, stream: 10003, tunnel: 10004, monitor: 9091 }
    }
}

/// Ports on edge nodes; the defaults are KubeEdge's and node exporter's.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EdgePorts {
    /// edged's kubelet read-only server (`modules.edged.tailoredKubeletConfig.readOnlyPort`),
    /// reached from the cloud only through the stream tunnel.
    pub kubelet_readonly: u16,
    pub node_exporter: u16,
    /// The edge metrics agent (Prometheus in agent mode): its own metrics and readiness.
    pub metrics_agent: u16,
    /// The link probe (blackbox exporter), on 127.0.0.1 for the metrics agent.
    pub link_probe: u16,
}

impl Default for EdgePorts {
    fn default() -> Self {
        EdgePorts { kubelet_readonly: 10350, node_exporter: 9100, metrics_agent: 9095, link_probe: 9115 }
    }
}

/// Timing of the compose flavour of the render (`render::Ctx::compose`), which the e2e compose tier
/// runs: seconds instead of minutes, so an alert fires, is delivered and is measured within one short
/// run. The Kubernetes flavour never reads it: it keeps [`Settings`]' intervals and the rules' own `for`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct E2e {
    /// Prometheus' global scrape interval (the scrape timeout follows it: Prometheus caps it at the interval).
    pub scrape_interval: Duration,
    /// Prometheus' global evaluation interval and the rule group's interval.
    pub evaluation_interval: Duration,
    /// The `for` of every alert rule whose `for` is non-zero (Watchdog keeps 0). One value rather than
    /// a divisor of each rule's `for`: the e2e checks that each alert is raised and delivered, not the
    /// production tolerances (the promtool cases pin those), and one value gives every alert the same
    /// latency bound (`render::rules::alert_bound`).
    pub alert_for: Duration,
    /// Alertmanager's `group_wait` for critical and warning alerts (Watchdog's route keeps 0s).
    pub group_wait: Duration,
    /// Alertmanager's `group_interval`: also how late a resolved notification can be.
    pub group_interval: Duration,
    /// Alertmanager's `repeat_interval`: longer than a run, so each alert is delivered once.
    pub repeat_interval: Duration,
    /// The Watchdog route's `repeat_interval`: short, so the dead man's switch keeps arriving
    /// through a run and a scenario can see it still does after a restart.
    pub watchdog_repeat_interval: Duration,
    /// The edge buffer's window (`settings.edge_buffer.window` in production): short, so a run can
    /// cut a link for longer than it and see what the buffer policy drops.
    pub buffer_window: Duration,
}

impl Default for E2e {
    fn default() -> Self {
        E2e {
            scrape_interval: Duration::from_secs(2),
            evaluation_interval: Duration::from_secs(2),
            alert_for: Duration::from_secs(6),
            group_wait: Duration::from_secs(2),
            group_interval: Duration::from_secs(5),
            repeat_interval: Duration::from_secs(3600),
            watchdog_repeat_interval: Duration::from_secs(10),
            buffer_window: Duration::from_secs(60),
        }
    }
}

/// The compatibility-matrix axes.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Matrix {
    /// k3s versions (the k3s backend's axis).
    pub k3s: Vec<Version>,
    /// KubeEdge versions (the k3s backend's axis).
    pub kubeedge: Vec<Version>,
    pub arch: Vec<Arch>,
    /// Cluster backends; default: both.
    #[serde(default = "Backend::all")]
    pub backend: Vec<Backend>,
    /// Profiles; empty (the default): every profile of the stack.
    #[serde(default)]
    pub profile: Vec<Name>,
    /// Cells left out of the product: each pattern names some axes (`{ backend = "k3s", profile = "local" }`).
    #[serde(default)]
    pub exclude: Vec<CellPattern>,
    /// Cells added to the product, whole (every axis named; k3s and KubeEdge versions for the k3s
    /// backend, which need not be on the axes): one pair worth one cell, not a whole row.
    #[serde(default)]
    pub include: Vec<Cell>,
    /// Cells that run but whose failure fails neither the workflow nor, unless a gate policy
    /// requires them, the release (their tier is not built yet, or they are known flaky).
    #[serde(default)]
    pub experimental: Vec<CellPattern>,
    /// The subset every pull request runs; empty (the default): every cell. The full set runs
    /// weekly.
    #[serde(default)]
    pub pr: Vec<CellPattern>,
}

/// A cluster backend of the e2e.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Plain containers on internal Docker networks (no Kubernetes).
    Compose,
    /// A real Kubernetes cluster in containers, built here from the parts k3s is made of, whose
    /// edge nodes reproduce KubeEdge's contract (`e2e::cluster`): runnable with no registry.
    Kubernetes,
    /// Real k3s and KubeEdge in containers, from their release images (GitHub Actions).
    K3s,
}

impl Backend {
    pub const ALL: [Backend; 3] = [Backend::Compose, Backend::Kubernetes, Backend::K3s];

    fn all() -> Vec<Backend> {
        Self::ALL.to_vec()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Compose => "compose",
            Backend::Kubernetes => "kubernetes",
            Backend::K3s => "k3s",
        }
    }

    /// Whether its cells have k3s and KubeEdge versions (the matrix's k3s × KubeEdge axes).
    pub fn has_versions(self) -> bool {
        self == Backend::K3s
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Some axes of the matrix with a value each; it matches every cell that has those values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CellPattern {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<Backend>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arch: Option<Arch>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k3s: Option<Version>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeedge: Option<Version>,
}

/// One cell of the matrix: what one e2e leg runs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Cell {
    pub backend: Backend,
    pub profile: String,
    pub arch: Arch,
    /// The k3s backend's versions; `None` for compose.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub k3s: Option<Version>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubeedge: Option<Version>,
}

impl CellPattern {
    pub fn matches(&self, c: &Cell) -> bool {
        self.backend.is_none_or(|b| b == c.backend)
            && self.profile.as_ref().is_none_or(|p| p.as_str() == c.profile)
            && self.arch.is_none_or(|a| a == c.arch)
            && self.k3s.as_ref().is_none_or(|v| c.k3s.as_ref() == Some(v))
            && self.kubeedge.as_ref().is_none_or(|v| c.kubeedge.as_ref() == Some(v))
    }
}

impl fmt::Display for CellPattern {
    /// `{backend = "k3s", arch = "amd64"}`, as written in stack.toml.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if let Some(b) = self.backend {
            parts.push(format!("backend = \"{b}\""));
        }
        if let Some(p) = &self.profile {
            parts.push(format!("profile = \"{}\"", p.as_str()));
        }
        if let Some(a) = self.arch {
            parts.push(format!("arch = \"{a}\""));
        }
        if let Some(v) = &self.k3s {
            parts.push(format!("k3s = \"{v}\""));
        }
        if let Some(v) = &self.kubeedge {
            parts.push(format!("kubeedge = \"{v}\""));
        }
        write!(f, "{{ {} }}", parts.join(", "))
    }
}

impl Cell {
    /// A stable id, usable in file and artifact names: `compose-local-amd64`,
    /// `k3s-upstream-amd64-k3s-v1.34.2-k3s1-kubeedge-1.22.0`.
    pub fn id(&self) -> String {
        let mut id = format!("{}-{}-{}", self.backend, self.profile, self.arch);
        if let (Some(k), Some(e)) = (&self.k3s, &self.kubeedge) {
            id.push_str(&format!("-k3s-{}-kubeedge-{e}", k.to_string().replace('+', "-")));
        }
        id
    }
}

impl fmt::Display for Cell {
    /// `compose local amd64`, `k3s upstream amd64 (k3s v1.34.2+k3s1, KubeEdge 1.22.0)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.backend, self.profile, self.arch)?;
        if let (Some(k), Some(e)) = (&self.k3s, &self.kubeedge) {
            write!(f, " (k3s {k}, KubeEdge {e})")?;
        }
        Ok(())
    }
}

impl Stack {
    /// Every cell of the matrix, sorted: [`Stack::product`] less `exclude`, plus `include`. Pure.
    pub fn cells(&self) -> Vec<Cell> {
        let m = &self.matrix;
        let mut out = self.product();
        out.retain(|c| !m.exclude.iter().any(|p| p.matches(c)));
        out.extend(m.include.iter().cloned());
        out.sort();
        out.dedup();
        out
    }

    /// The axes' product: backend × profile × arch, and k3s × KubeEdge for the k3s backend.
    pub fn product(&self) -> Vec<Cell> {
        let m = &self.matrix;
        let profiles: Vec<String> = if m.profile.is_empty() {
            self.profiles.keys().map(|p| p.to_string()).collect()
        } else {
            m.profile.iter().map(|p| p.to_string()).collect()
        };
        let mut out = Vec::new();
        for &backend in &m.backend {
            for profile in &profiles {
                for &arch in &m.arch {
                    let cell = |k3s: Option<&Version>, kubeedge: Option<&Version>| Cell {
                        backend,
                        profile: profile.clone(),
                        arch,
                        k3s: k3s.cloned(),
                        kubeedge: kubeedge.cloned(),
                    };
                    if backend.has_versions() {
                        for k in &m.k3s {
                            for e in &m.kubeedge {
                                out.push(cell(Some(k), Some(e)));
                            }
                        }
                    } else {
                        out.push(cell(None, None));
                    }
                }
            }
        }
        out.sort();
        out
    }

    /// The cells of a subset: `pr` (the patterns of `matrix.pr`, or every cell) or `full`.
    pub fn subset(&self, subset: Subset) -> Vec<Cell> {
        let all = self.cells();
        match subset {
            Subset::Pr if !self.matrix.pr.is_empty() => {
                all.into_iter().filter(|c| self.matrix.pr.iter().any(|p| p.matches(c))).collect()
            }
            _ => all,
        }
    }

    pub fn is_experimental(&self, cell: &Cell) -> bool {
        self.matrix.experimental.iter().any(|p| p.matches(cell))
    }
}

/// Which cells a run covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Subset {
    /// `matrix.pr`: what every pull request runs.
    Pr,
    /// Every cell: the weekly run.
    Full,
}

impl Subset {
    pub fn as_str(self) -> &'static str {
        match self {
            Subset::Pr => "pr",
            Subset::Full => "full",
        }
    }
}

/// One set of components and images: `upstream` (real charts and images) or
/// `local` (images assembled from Debian packages, no registry needed).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    pub description: String,
    /// Where `cargo xtask lock` writes this profile's pins, relative to the
    /// stack file's directory (default `stack.lock`). The local profile keeps its lock under
    /// `target/`: its digests depend on the Debian packages of the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    pub components: Vec<Component>,
}

impl Profile {
    /// The lock file holding this profile's pins.
    pub fn lock_file(&self) -> camino::Utf8PathBuf {
        crate::paths::stack_dir().join(self.lock.as_deref().unwrap_or("stack.lock"))
    }

    /// Enabled components, in file order.
    pub fn enabled(&self) -> impl Iterator<Item = &Component> {
        self.components.iter().filter(|c| c.enabled)
    }

    /// The enabled component of this kind, if any.
    pub fn component(&self, kind: Kind) -> Option<&Component> {
        self.enabled().find(|c| c.kind == kind)
    }

    pub fn has(&self, kind: Kind) -> bool {
        self.component(kind).is_some()
    }

    /// Whether edges push their metrics: a Prometheus agent, or Alloy, runs on each and
    /// remote-writes to the cloud's Prometheus.
    pub fn edges_push(&self) -> bool {
        self.has(Kind::PrometheusAgent) || self.has(Kind::Alloy)
    }

    /// Whether each edge probes its link from its own side and pushes the results: a link probe
    /// scraped by the metrics agent, or Alloy's embedded prober.
    pub fn probes_link(&self) -> bool {
        self.has(Kind::LinkProbe) || self.has(Kind::Alloy)
    }

    /// The enabled edge log agent (Alloy, or Promtail as the legacy option).
    pub fn log_agent(&self) -> Option<&Component> {
        self.enabled().find(|c| matches!(c.kind, Kind::Alloy | Kind::Promtail | Kind::OtelAgent))
    }

    pub fn edge_components(&self) -> impl Iterator<Item = &Component> {
        self.enabled().filter(|c| c.role == Role::Edge)
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Component {
    pub name: Name,
    pub kind: Kind,
    pub role: Role,
    /// Disabled components stay in the file (e.g. Promtail, the legacy log agent) but are not rendered or bundled.
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chart: Option<Chart>,
    pub images: Vec<Image>,
    /// Resource budget; required for edge components, where it is enforced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
}

fn yes() -> bool {
    true
}

impl Component {
    pub fn image(&self, name: &str) -> Option<&Image> {
        self.images.iter().find(|i| i.name.as_str() == name)
    }
}

/// What a component is; decides how it is rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// kube-prometheus-stack: operator, Prometheus, Alertmanager, kube-state-metrics, Grafana.
    PrometheusStack,
    /// A standalone Prometheus server (local profile).
    Prometheus,
    /// A standalone Alertmanager (local profile).
    Alertmanager,
    BlackboxExporter,
    /// Node exporter on edge nodes.
    NodeExporter,
    Loki,
    /// Grafana Alloy, the edge log agent.
    Alloy,
    /// Promtail, the legacy edge log agent (end-of-life 2026-03-02).
    Promtail,
    /// Jaeger v2 all-in-one.
    Jaeger,
    /// VictoriaLogs, the log store built here (Loki is AGPL): OTLP in, LogsQL out.
    VictoriaLogs,
    /// The edge agent built here with the OpenTelemetry Collector builder: tails pod logs, keeps
    /// a persistent queue while the link is down, pushes OTLP to the cloud.
    OtelAgent,
    /// Prometheus in agent mode on edge nodes: scrapes the node's exporters on 127.0.0.1 and
    /// remote-writes to the cloud's Prometheus, buffering in its WAL while the link is down.
    PrometheusAgent,
    /// The blackbox exporter on edge nodes: probes, from the edge's side, the cloud ports the
    /// edge needs (cloudhub, the tunnel, the NodePorts its agents push to); the node's metrics
    /// agent scrapes it on 127.0.0.1 and pushes the results. (Alloy embeds the same prober.)
    LinkProbe,
    /// A small base image for probes and test workloads.
    Probe,
    /// kube-state-metrics (standalone, local profile): the nodes' status in Kubernetes as metrics,
    /// for EdgeNodeNotReady. Kubernetes only: the compose flavour has no API server to watch.
    KubeStateMetrics,
}

impl Kind {
    pub const ALL: [Kind; 15] = [
        Kind::PrometheusStack,
        Kind::Prometheus,
        Kind::Alertmanager,
        Kind::BlackboxExporter,
        Kind::NodeExporter,
        Kind::Loki,
        Kind::Alloy,
        Kind::Promtail,
        Kind::Jaeger,
        Kind::VictoriaLogs,
        Kind::OtelAgent,
        Kind::PrometheusAgent,
        Kind::LinkProbe,
        Kind::Probe,
        Kind::KubeStateMetrics,
    ];

    /// Image names a component of this kind must declare (renderers look them up by name).
    pub fn required_images(self) -> &'static [&'static str] {
        match self {
            Kind::PrometheusStack => &[
                "prometheus-operator",
                "prometheus-config-reloader",
                "prometheus",
                "alertmanager",
                "kube-state-metrics",
                "node-exporter",
                "grafana",
            ],
            Kind::Prometheus => &["prometheus"],
            Kind::Alertmanager => &["alertmanager"],
            Kind::BlackboxExporter => &["blackbox-exporter"],
            Kind::NodeExporter => &["node-exporter"],
            Kind::Loki => &["loki"],
            Kind::Alloy => &["alloy"],
            Kind::Promtail => &["promtail"],
            Kind::Jaeger => &["jaeger"],
            Kind::VictoriaLogs => &["victoria-logs"],
            Kind::OtelAgent => &["otel-agent"],
            Kind::PrometheusAgent => &["prometheus"],
            Kind::LinkProbe => &["blackbox-exporter"],
            Kind::Probe => &["probe"],
            Kind::KubeStateMetrics => &["kube-state-metrics"],
        }
    }

    /// Whether a component of this kind is deployed from a Helm chart and so must name one.
    pub fn needs_chart(self) -> bool {
        matches!(self, Kind::PrometheusStack | Kind::Loki | Kind::Alloy | Kind::Promtail | Kind::Jaeger)
    }

    /// The roles this kind may take.
    pub fn allowed_roles(self) -> &'static [Role] {
        match self {
            Kind::Alloy
            | Kind::Promtail
            | Kind::OtelAgent
            | Kind::PrometheusAgent
            | Kind::NodeExporter
            | Kind::LinkProbe => &[Role::Edge],
            Kind::Probe => &[Role::Cloud, Role::Edge],
            _ => &[Role::Cloud],
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = serde_json::to_value(self).ok();
        f.write_str(s.as_ref().and_then(|v| v.as_str()).unwrap_or("?"))
    }
}

/// Where a component runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Cloud,
    Edge,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Cloud => "cloud",
            Role::Edge => "edge",
        })
    }
}

/// A Helm chart, pinned by version (and by sha256 once locked).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Chart {
    pub repo: Url,
    pub name: Name,
    pub version: Version,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    /// Images the chart's values name that its templates do not deploy with this stack's
    /// values (values path → why), so the bundle leaves them out: `bundle verify` reports
    /// them instead of failing. Every other image the values name must be in the bundle.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unused_images: BTreeMap<String, String>,
}

impl Chart {
    /// File name of the chart archive inside a bundle: `charts/<name>-<version>.tgz`.
    pub fn archive_name(&self) -> String {
        format!("{}-{}.tgz", self.name, self.version)
    }

    /// The chart's key in a lock file: `<repo>/<archive name>`.
    pub fn lock_key(&self) -> String {
        format!("{}/{}", self.repo, self.archive_name())
    }
}

/// One container image of a component.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// The image's role inside the component (renderers look it up by this name).
    pub name: Name,
    #[serde(rename = "ref")]
    pub reference: ImageRef,
    /// Index (multi-arch) digest; filled by `cargo xtask lock`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<Digest>,
    pub platforms: Vec<Platform>,
    /// Local profile: the `[programs]` this image is built from (the first one's first binary is
    /// its entrypoint). None: assembled from a Debian package.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub programs: Vec<Name>,
}

impl Image {
    /// `registry/repo:tag@sha256:…` when locked, else `registry/repo:tag`.
    pub fn pinned(&self) -> String {
        match &self.digest {
            Some(d) => format!("{}@{}", self.reference, d.as_str()),
            None => self.reference.to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
pub enum Platform {
    #[serde(rename = "linux/amd64")]
    LinuxAmd64,
    #[serde(rename = "linux/arm64")]
    LinuxArm64,
}

impl Platform {
    pub fn arch(self) -> Arch {
        match self {
            Platform::LinuxAmd64 => Arch::Amd64,
            Platform::LinuxArm64 => Arch::Arm64,
        }
    }
}

/// CPU architecture of a bundle and of the nodes it installs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Arch {
    Amd64,
    Arm64,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Amd64, Arch::Arm64];

    pub fn as_str(self) -> &'static str {
        match self {
            Arch::Amd64 => "amd64",
            Arch::Arm64 => "arm64",
        }
    }

    pub fn platform(self) -> Platform {
        match self {
            Arch::Amd64 => Platform::LinuxAmd64,
            Arch::Arm64 => Platform::LinuxArm64,
        }
    }

    /// The architecture of the machine running this tool, if it is one we build for.
    pub fn host() -> Option<Arch> {
        match std::env::consts::ARCH {
            "x86_64" => Some(Arch::Amd64),
            "aarch64" => Some(Arch::Arm64),
            _ => None,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The resource budget of an edge component (SPEC: 64Mi memory, 100m CPU by default).
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Budget {
    pub memory: Memory,
    pub cpu: Cpu,
}

impl Stack {
    pub fn profile(&self, name: &str) -> anyhow::Result<&Profile> {
        self.profiles.iter().find(|(n, _)| n.as_str() == name).map(|(_, p)| p).ok_or_else(|| {
            let known: Vec<&str> = self.profiles.keys().map(Name::as_str).collect();
            anyhow::anyhow!("no profile {name:?} in stack.toml; known profiles: {}", known.join(", "))
        })
    }
}

/// Which profiles and arches a command works on (`--profile`, `--arch`).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Selection {
    /// Profile from stack.toml (default: every profile).
    #[arg(long)]
    pub profile: Option<String>,
    /// Architecture (default: every arch of the matrix).
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
}

impl Selection {
    pub fn is_all(&self) -> bool {
        self.profile.is_none() && self.arch.is_none()
    }

    /// The selected (profile, arch) pairs; an unknown profile or an arch outside the matrix is an error.
    pub fn pairs<'a>(&self, stack: &'a Stack) -> anyhow::Result<Vec<(&'a str, Arch)>> {
        if let Some(p) = &self.profile {
            stack.profile(p)?;
        }
        if let Some(a) = self.arch
            && !stack.matrix.arch.contains(&a)
        {
            let built: Vec<&str> = stack.matrix.arch.iter().map(|a| a.as_str()).collect();
            anyhow::bail!("arch {a} is not in the matrix of stack.toml, which builds: {}", built.join(", "));
        }
        let mut out = Vec::new();
        for name in stack.profiles.keys().filter(|n| self.profile.as_deref().is_none_or(|p| p == n.as_str())) {
            for &arch in stack.matrix.arch.iter().filter(|a| self.arch.is_none_or(|want| want == **a)) {
                out.push((name.as_str(), arch));
            }
        }
        Ok(out)
    }
}
