//! `cargo xtask render`: every config of the platform, from the stack model.
//!
//! Rendering is pure: [`render`] takes the model and returns a [`Files`] map;
//! no renderer reads a file, the clock or the environment. The command then
//! writes the map (atomically), or compares it with the golden snapshots.
//!
//! Two flavours of the same model and renderers, chosen by [`Ctx::target`]:
//! [`Target::Kubernetes`] (k3s + KubeEdge: service discovery, Services, charts, manifests,
//! install scripts) and [`Target::Compose`] (the e2e compose tier: plain containers on one
//! Docker network, static targets by DNS alias, the fast timing of `[e2e]`, and only the
//! files those containers read).

pub mod alertmanager;
pub mod alloy;
pub mod blackbox;
pub mod edgemetrics;
pub mod grafana;
pub mod jaeger;
pub mod kps;
pub mod kubeedge;
pub mod logagent;
pub mod loki;
pub mod manifests;
pub mod names;
pub mod otelagent;
pub mod output;
pub mod ports;
pub mod prometheus;
pub mod rules;
pub mod scripts;
pub mod values;
pub mod workloads;

use anyhow::{Context, Result, anyhow};
use camino::Utf8PathBuf;

use crate::stack::{Arch, Component, Duration, Image, Kind, Profile, Settings, Stack};
pub use output::Files;

/// Where the rendered configs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// k3s + KubeEdge: Kubernetes service discovery, in-cluster Services, charts and manifests.
    Kubernetes,
    /// The e2e compose tier: plain containers on one Docker network, reached by DNS alias.
    Compose(&'a ComposeTopology),
}

/// What the compose tier's harness decides at run time: the edge nodes and the alert webhook.
///
/// The cloud containers are reached by DNS aliases equal to their Kubernetes Service names
/// (`prometheus`, `alertmanager`, `blackbox-exporter`, `loki`, `jaeger`); each edge node by its
/// name, with node exporter on `settings.edge.node_exporter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ComposeTopology {
    /// Edge node names, each also its DNS alias on the cloud network (e.g. `edge-1`).
    pub edges: Vec<String>,
    /// Where Alertmanager posts every alert (owned by the harness).
    pub alert_webhook_url: String,
}

impl ComposeTopology {
    /// The fixed topology of the compose golden snapshots: two edges, and a webhook on the
    /// Docker bridge's gateway address.
    pub fn golden() -> Self {
        ComposeTopology {
            edges: vec!["edge-1".into(), "edge-2".into()],
            alert_webhook_url: "http://172.18.0.1:39000/alerts".into(),
        }
    }

    /// Edge names must be DNS labels (they are aliases and label values), distinct, at least one;
    /// the webhook an http(s) URL.
    pub fn check(&self) -> Result<()> {
        if self.edges.is_empty() {
            anyhow::bail!("the compose topology has no edge node: name at least one, e.g. \"edge-1\"");
        }
        let mut seen = std::collections::BTreeSet::new();
        for e in &self.edges {
            let label = !e.is_empty()
                && e.len() <= 63
                && e.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !e.starts_with('-')
                && !e.ends_with('-');
            if !label {
                anyhow::bail!(
                    "edge node name {e:?} is not a DNS label (lowercase letters, digits and `-`, at most 63): it is the node's network alias"
                );
            }
            if !seen.insert(e.as_str()) {
                anyhow::bail!("edge node name {e:?} appears twice in the compose topology");
            }
        }
        crate::stack::Url::try_from(self.alert_webhook_url.clone())
            .map_err(|e| anyhow!("the compose topology's alert webhook: {e}"))?;
        Ok(())
    }
}

/// Everything a renderer may read.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub stack: &'a Stack,
    pub profile_name: &'a str,
    pub profile: &'a Profile,
    pub arch: Arch,
    /// Kubernetes (default) or the compose tier.
    pub target: Target<'a>,
}

impl<'a> Ctx<'a> {
    /// The Kubernetes (k3s + KubeEdge) flavour.
    pub fn new(stack: &'a Stack, profile_name: &'a str, arch: Arch) -> Result<Self> {
        let profile = stack.profile(profile_name)?;
        Ok(Ctx { stack, profile_name, profile, arch, target: Target::Kubernetes })
    }

    /// The compose flavour: the same profile for the e2e compose tier's plain containers, with
    /// `[e2e]` timing. Refuses a topology [`ComposeTopology::check`] refuses, and a profile the
    /// compose tier cannot run.
    pub fn compose(stack: &'a Stack, profile_name: &'a str, arch: Arch, topology: &'a ComposeTopology) -> Result<Self> {
        topology.check()?;
        let ctx = Ctx { target: Target::Compose(topology), ..Ctx::new(stack, profile_name, arch)? };
        if !ctx.has(Kind::Prometheus) && !ctx.has(Kind::PrometheusStack) {
            anyhow::bail!("profile {profile_name} has no Prometheus: the compose tier has nothing to render for");
        }
        if ctx.has(Kind::Promtail) {
            anyhow::bail!(
                "profile {profile_name} enables Promtail: the compose tier runs Alloy as the edge log agent (Promtail is legacy, Kubernetes only)"
            );
        }
        Ok(ctx)
    }

    /// The compose topology, in the compose flavour.
    pub fn compose_topology(&self) -> Option<&'a ComposeTopology> {
        match self.target {
            Target::Kubernetes => None,
            Target::Compose(t) => Some(t),
        }
    }

    pub fn is_kubernetes(&self) -> bool {
        self.target == Target::Kubernetes
    }

    pub fn settings(&self) -> &'a Settings {
        &self.stack.settings
    }

    pub fn namespace(&self) -> &'a str {
        self.stack.settings.namespace.as_str()
    }

    pub fn has(&self, kind: Kind) -> bool {
        self.profile.has(kind)
    }

    /// Whether edges push their metrics ([`crate::stack::Profile::edges_push`]): then no cloud
    /// job scrapes an edge, which is behind NAT, and the cloud's Prometheus takes remote writes.
    pub fn edges_push(&self) -> bool {
        self.profile.edges_push()
    }

    /// Whether each edge probes what it dials and pushes the results ([`crate::stack::Profile::probes_link`]).
    pub fn probes_link(&self) -> bool {
        self.profile.probes_link()
    }

    /// kube-prometheus-stack runs Prometheus on k3s + KubeEdge: its operator takes our scrape
    /// configs and rules, and kube-state-metrics, cloudcore and the stream tunnel exist.
    /// False in the compose flavour, even for a profile that has the chart (its images then run
    /// as plain containers, with none of that around them).
    pub fn kps(&self) -> bool {
        self.is_kubernetes() && self.has(Kind::PrometheusStack)
    }

    /// Whether kube-state-metrics reports the nodes' status (EdgeNodeNotReady): kube-prometheus-stack's,
    /// or the standalone one, on Kubernetes (the compose flavour has no nodes to report).
    pub fn node_states(&self) -> bool {
        self.kps() || (self.is_kubernetes() && self.has(Kind::KubeStateMetrics))
    }

    /// Whether an Alertmanager runs: standalone, or kube-prometheus-stack's.
    pub fn has_alertmanager(&self) -> bool {
        self.has(Kind::Alertmanager) || self.has(Kind::PrometheusStack)
    }

    /// Whether the install deploys an Alertmanager on the cluster (kube-prometheus-stack's or the
    /// standalone one): it reads its webhook's URL from the Secret the install writes.
    pub fn deploys_alertmanager(&self) -> bool {
        self.is_kubernetes() && self.has_alertmanager()
    }

    /// Prometheus' scrape interval: `[settings]`, or `[e2e]` in the compose flavour.
    pub fn scrape_interval(&self) -> Duration {
        match self.target {
            Target::Kubernetes => self.settings().scrape_interval,
            Target::Compose(_) => self.stack.e2e.scrape_interval,
        }
    }

    /// Prometheus' rule evaluation interval: `[settings]`, or `[e2e]` in the compose flavour.
    pub fn evaluation_interval(&self) -> Duration {
        match self.target {
            Target::Kubernetes => self.settings().evaluation_interval,
            Target::Compose(_) => self.stack.e2e.evaluation_interval,
        }
    }

    /// Where Alertmanager posts, known at render time only in the compose flavour (the harness'
    /// webhook); on Kubernetes the install takes it (`--alert-webhook-url`) into a Secret.
    pub fn alert_webhook_url(&self) -> Option<&'a str> {
        match self.target {
            Target::Kubernetes => None,
            Target::Compose(t) => Some(t.alert_webhook_url.as_str()),
        }
    }

    /// The enabled component of `kind`, if any.
    pub fn component(&self, kind: Kind) -> Option<&'a Component> {
        self.profile.component(kind)
    }

    /// The named image of the enabled component of `kind` (the loader guarantees it exists).
    pub fn image(&self, kind: Kind, name: &str) -> Result<&'a Image> {
        let c = self
            .component(kind)
            .ok_or_else(|| anyhow!("profile {} has no enabled {kind} component", self.profile_name))?;
        c.image(name).ok_or_else(|| anyhow!("component {} has no image named {name:?}", c.name))
    }

    /// In-cluster DNS name of a service in the observability namespace.
    pub fn svc(&self, service: &str) -> String {
        format!("{service}.{}.svc", self.namespace())
    }

    /// The host name Prometheus reaches a cloud service by: its in-cluster DNS name, or in the
    /// compose flavour the container's DNS alias, which is the Service name itself.
    pub fn host(&self, service: &str) -> String {
        match self.target {
            Target::Kubernetes => self.svc(service),
            Target::Compose(_) => service.to_string(),
        }
    }

    /// Job names of the self-monitoring scrapes, which depend on who deploys Prometheus.
    pub fn self_jobs(&self) -> SelfJobs {
        if self.kps() {
            // kube-prometheus-stack's ServiceMonitors take the Service name as job label;
            // with fullnameOverride = "kps" those are kps-prometheus and kps-alertmanager.
            SelfJobs { prometheus: "kps-prometheus", alertmanager: "kps-alertmanager" }
        } else {
            SelfJobs { prometheus: names::JOB_PROMETHEUS, alertmanager: names::JOB_ALERTMANAGER }
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct SelfJobs {
    pub prometheus: &'static str,
    pub alertmanager: &'static str,
}

/// Render every file for one profile and arch, in the context's flavour. Pure: no I/O.
///
/// The compose flavour renders only what its containers read: `prometheus/` (config, rules and
/// their promtool tests), `alertmanager/`, `blackbox/`, `edge-metrics/`, `jaeger/`, `loki/`, `grafana/` and
/// `log-agent/` (Alloy's per edge, or the OpenTelemetry agent's); no manifests, scripts, KubeEdge patches or chart values.
pub fn render(ctx: &Ctx<'_>) -> Result<Files> {
    let mut files = Files::new();
    prometheus::render(ctx, &mut files).context("rendering the Prometheus configuration")?;
    rules::render(ctx, &mut files).context("rendering the alert rules")?;
    alertmanager::render(ctx, &mut files).context("rendering the Alertmanager configuration")?;
    blackbox::render(ctx, &mut files).context("rendering the blackbox exporter configuration")?;
    edgemetrics::render(ctx, &mut files).context("rendering the edge metrics agent")?;
    if ctx.profile.log_agent().is_some() {
        logagent::render(ctx, &mut files).context("rendering the edge log agent")?;
        otelagent::render(ctx, &mut files).context("rendering the OpenTelemetry edge agent")?;
    }
    if !ctx.is_kubernetes() {
        jaeger::render_compose(ctx, &mut files).context("rendering the Jaeger configuration")?;
        loki::render_compose(ctx, &mut files).context("rendering the Loki configuration")?;
        grafana::render_compose(ctx, &mut files).context("rendering Grafana's datasources")?;
        return Ok(files);
    }
    kubeedge::render(ctx, &mut files).context("rendering the KubeEdge patches")?;
    // Chart values (kube-prometheus-stack, Loki, Jaeger, blackbox, log agent) are written
    // by `manifests`, next to the HelmChart that carries them.
    manifests::render(ctx, &mut files).context("rendering the Kubernetes manifests")?;
    workloads::render(ctx, &mut files).context("rendering the profile's own components as Kubernetes objects")?;
    scripts::render(ctx, &mut files).context("rendering the install scripts")?;
    Ok(files)
}

/// Render every profile × arch of the matrix: the set the golden snapshots cover.
pub fn render_all(stack: &Stack) -> Result<Vec<(String, Arch, Files)>> {
    let mut out = Vec::new();
    for profile in stack.profiles.keys() {
        for &arch in &stack.matrix.arch {
            let ctx = Ctx::new(stack, profile.as_str(), arch)?;
            let files = render(&ctx).with_context(|| format!("profile {profile}, arch {arch}"))?;
            out.push((profile.to_string(), arch, files));
        }
    }
    Ok(out)
}

/// Golden directory prefix of the compose flavour: `golden/render/compose/<profile>/<arch>/`.
pub const COMPOSE_GOLDEN_PREFIX: &str = "compose";

/// The compose flavour of every profile × arch, with [`ComposeTopology::golden`]; each set is
/// named `compose/<profile>`, its golden directory under `golden/render/`.
pub fn render_all_compose(stack: &Stack) -> Result<Vec<(String, Arch, Files)>> {
    let topology = ComposeTopology::golden();
    let mut out = Vec::new();
    for profile in stack.profiles.keys() {
        for &arch in &stack.matrix.arch {
            let ctx = Ctx::compose(stack, profile.as_str(), arch, &topology)?;
            let files = render(&ctx).with_context(|| format!("compose flavour of profile {profile}, arch {arch}"))?;
            out.push((format!("{COMPOSE_GOLDEN_PREFIX}/{profile}"), arch, files));
        }
    }
    Ok(out)
}

/// Everything `render --check` compares with golden/render/: both flavours.
pub fn render_golden(stack: &Stack) -> Result<Vec<(String, Arch, Files)>> {
    let mut all = render_all(stack)?;
    all.extend(render_all_compose(stack)?);
    Ok(all)
}

/// Render every config from stack.toml: Prometheus, rules, Alertmanager, Loki, the edge log
/// agent, Jaeger, blackbox, KubeEdge patches, Kubernetes manifests and install scripts.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub select: crate::stack::Selection,
    /// Output directory (default: target/render/<profile>/<arch>); only with one profile and arch.
    #[arg(long)]
    pub out: Option<Utf8PathBuf>,
    /// Compare with the golden snapshots in golden/ instead of writing; fail on any drift.
    #[arg(long, conflicts_with_all = ["out", "bless"])]
    pub check: bool,
    /// Rewrite the golden snapshots in golden/ from the current model and renderers.
    #[arg(long)]
    pub bless: bool,
    /// With --check: also write its result to FILE (evidence for `cargo xtask gate`), pass or fail.
    #[arg(long, value_name = "FILE", requires = "check")]
    pub record: Option<Utf8PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let stack = crate::stack::load(&crate::paths::stack_file())?;
    if args.check || args.bless {
        if !args.select.is_all() {
            anyhow::bail!("--check and --bless cover every profile and arch; drop --profile and --arch");
        }
        let all = render_golden(&stack)?;
        let sets: Vec<(String, Arch, &Files)> = all.iter().map(|(p, a, f)| (p.clone(), *a, f)).collect();
        if args.bless {
            let n = crate::golden::bless(&sets)?;
            crate::note!("golden: wrote {n} snapshots under golden/render/");
            return Ok(());
        }
        let drift = crate::golden::check(&sets)?;
        if let Some(path) = &args.record {
            let record = crate::evidence::GoldenRecord {
                schema: crate::evidence::GOLDEN_SCHEMA,
                clean: drift.is_empty(),
                files: sets.iter().map(|s| s.2.len()).sum(),
                problems: drift.iter().map(|d| d.to_string()).collect(),
            };
            crate::evidence::write_record(path, &record)?;
        }
        if drift.is_empty() {
            crate::note!(
                "golden: {} rendered files match golden/render/",
                sets.iter().map(|s| s.2.len()).sum::<usize>()
            );
            return Ok(());
        }
        for d in &drift {
            crate::note!("{d}");
        }
        anyhow::bail!(
            "{} golden snapshot(s) differ from what the renderers produce; if the change is intended, run `cargo xtask render --bless` and commit golden/",
            drift.len()
        );
    }
    let pairs = args.select.pairs(&stack)?;
    if args.out.is_some() && pairs.len() != 1 {
        anyhow::bail!("--out needs exactly one profile and arch: add --profile and --arch");
    }
    for (profile, arch) in pairs {
        let files = render(&Ctx::new(&stack, profile, arch)?)?;
        let out = args.out.clone().unwrap_or_else(|| crate::paths::render_out_dir(profile, arch.as_str()));
        files.write_to(&out)?;
        crate::note!("render: {profile}/{arch}: {} files in {out}", files.len());
    }
    Ok(())
}
