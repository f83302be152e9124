//! `cargo xtask render`: every config of the platform, from the stack model.
//!
//! Rendering is pure: [`render`] takes the model and returns a [`Files`] map;
//! no renderer reads a file, the clock or the environment. The command then
//! writes the map (atomically), or compares it with the golden snapshots.

pub mod alertmanager;
pub mod alloy;
pub mod blackbox;
pub mod jaeger;
pub mod kps;
pub mod kubeedge;
pub mod logagent;
pub mod loki;
pub mod manifests;
pub mod names;
pub mod output;
pub mod prometheus;
pub mod rules;
pub mod scripts;
pub mod values;

use anyhow::{Context, Result, anyhow};
use camino::Utf8PathBuf;

use crate::stack::{Arch, Component, Image, Kind, Profile, Settings, Stack};
pub use output::Files;

/// Everything a renderer may read.
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    pub stack: &'a Stack,
    pub profile_name: &'a str,
    pub profile: &'a Profile,
    pub arch: Arch,
}

impl<'a> Ctx<'a> {
    pub fn new(stack: &'a Stack, profile_name: &'a str, arch: Arch) -> Result<Self> {
        let profile = stack.profile(profile_name)?;
        Ok(Ctx { stack, profile_name, profile, arch })
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

    /// Job names of the self-monitoring scrapes, which depend on who deploys Prometheus.
    pub fn self_jobs(&self) -> SelfJobs {
        if self.has(Kind::PrometheusStack) {
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

/// Render every file for one profile and arch. Pure: no I/O.
pub fn render(ctx: &Ctx<'_>) -> Result<Files> {
    let mut files = Files::new();
    prometheus::render(ctx, &mut files).context("rendering the Prometheus configuration")?;
    rules::render(ctx, &mut files).context("rendering the alert rules")?;
    alertmanager::render(ctx, &mut files).context("rendering the Alertmanager configuration")?;
    blackbox::render(ctx, &mut files).context("rendering the blackbox exporter configuration")?;
    kubeedge::render(ctx, &mut files).context("rendering the KubeEdge patches")?;
    if ctx.profile.log_agent().is_some() {
        logagent::render(ctx, &mut files).context("rendering the edge log agent")?;
    }
    // Chart values (kube-prometheus-stack, Loki, Jaeger, blackbox, log agent) are written
    // by `manifests`, next to the HelmChart that carries them.
    manifests::render(ctx, &mut files).context("rendering the Kubernetes manifests")?;
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
}

pub fn run(args: Args) -> Result<()> {
    let stack = crate::stack::load(&crate::paths::stack_file())?;
    if args.check || args.bless {
        if !args.select.is_all() {
            anyhow::bail!("--check and --bless cover every profile and arch; drop --profile and --arch");
        }
        let all = render_all(&stack)?;
        let sets: Vec<(String, Arch, &Files)> = all.iter().map(|(p, a, f)| (p.clone(), *a, f)).collect();
        if args.bless {
            let n = crate::golden::bless(&sets)?;
            eprintln!("golden: wrote {n} snapshots under golden/render/");
            return Ok(());
        }
        let drift = crate::golden::check(&sets)?;
        if drift.is_empty() {
            eprintln!("golden: {} rendered files match golden/render/", sets.iter().map(|s| s.2.len()).sum::<usize>());
            return Ok(());
        }
        for d in &drift {
            eprintln!("{d}");
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
        eprintln!("render: {profile}/{arch}: {} files in {out}", files.len());
    }
    Ok(())
}
