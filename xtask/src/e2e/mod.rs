//! `cargo xtask e2e`: offline end-to-end scenarios against a bundle.
//!
//! A run is a [`RunConfig`], one matrix cell. The compose tier ([`compose`]: plain containers,
//! no Kubernetes) runs the bundle's real components with the compose flavour of the rendered
//! configs; the kubernetes tier ([`cluster`]: a real cluster in containers, simulated KubeEdge
//! edges) applies the Kubernetes render's objects. The scenarios reach either only through the
//! [`tier::Tier`] trait. A compose run:
//!
//! 1. provision: a Docker engine, qemu for arm64, the fixture images and the bundle
//!    ([`provision`]);
//! 2. plan the topology as data ([`compose::plan`], printed by `--dry-run`);
//! 3. load every image archive of the bundle into the engine (nothing is ever pulled,
//!    and the run checks the engine's events for pulls), create the internal networks,
//!    start the alert receiver ([`receiver`]) on the cloud bridge, render the configs
//!    for that topology and start the containers ([`compose::Compose`], over [`engine`]);
//! 4. run the scenarios of `scenarios/` ([`scenario`], [`runner`]) while sampling the edge
//!    containers' memory and CPU;
//! 5. write the reports ([`report`]) and remove every labelled resource: on success,
//!    failure, panic, SIGINT and SIGTERM. A later run sweeps what a killed run left.

pub mod cancel;
pub mod cluster;
pub mod compose;
pub mod engine;
pub mod k3s;
pub mod provision;
pub mod query;
pub mod receiver;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod tier;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};

use crate::stack::{Arch, Cell, Stack, Version};
use compose::{Compose, plan};
use engine::Engine;
use tier::Tier;

pub use crate::stack::Backend;

/// Whether the harness can run a backend's cells at all yet (the k3s tier is not built).
pub fn tier_built(backend: Backend) -> bool {
    tier_missing(backend).is_none()
}

/// Why a backend's tier cannot run anywhere yet, or `None` when it can.
pub fn tier_missing(backend: Backend) -> Option<&'static str> {
    match backend {
        Backend::Compose | Backend::Kubernetes => None,
        // Measured on our machines: both proxy lookups answer 403 "This module version is not
        // available", and no registry is reachable for rancher/k3s or kubeedge/*.
        Backend::K3s => Some(
            "the k3s tier is not built yet; nor can its node images be built on our machines: the Go module \
             proxy refuses github.com/k3s-io/k3s@v1.34.2 (v1.34.2+k3s1) and github.com/kubeedge/kubeedge@v1.22.0 \
             (403, \"This module version is not available\"), and no registry is reachable for rancher/k3s or kubeedge/*; \
             --backend kubernetes runs a cluster of k3s's parts with simulated KubeEdge edges here; \
             `--backend k3s --dry-run` prints what the k3s tier would run",
        ),
    }
}

/// Why a backend cannot run nodes of `arch` on this machine, or `None` when it can.
///
/// The kubernetes tier's nodes run this machine's arch only. A foreign-arch node would run its own
/// containerd and runc under qemu-user, and qemu-user refuses `clone()` with `CLONE_PARENT` or a
/// namespace flag (`EINVAL`; measured with qemu 7.2 on 2026-12-07), which runc's nsexec calls to
/// start every container. The arm64 cells run natively on GitHub's arm64 runners.
pub fn arch_missing(backend: Backend, arch: Arch) -> Option<String> {
    let host = Arch::host();
    (backend == Backend::Kubernetes && host != Some(arch)).then(|| {
        format!(
            "the kubernetes tier's nodes run this machine's arch ({}) only: a {arch} node's runc would run under \
             qemu-user, which refuses the clone() flags runc starts containers with (EINVAL); the {arch} cell runs \
             natively on a {arch} machine (GitHub's {arch} runners)",
            host.map_or("unknown".to_string(), |h| h.to_string())
        )
    })
}

/// Run the offline end-to-end scenarios against a bundle (compose or kubernetes tier).
///
/// Provisions what it needs when run as root on Debian/Ubuntu (Docker engine, qemu for arm64,
/// fixture images, the bundle); otherwise says what is missing. Reports go to target/e2e/<run-id>/.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Cluster backend.
    #[arg(long, value_enum, default_value = "compose")]
    pub backend: Backend,
    /// Stack profile whose bundle is tested.
    #[arg(long, default_value = "local")]
    pub profile: String,
    /// Architectures, comma-separated (default: this machine's); arm64 on amd64 runs under qemu.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub arch: Vec<Arch>,
    /// Run only these scenarios (by `name:`), repeatable.
    #[arg(long = "scenario", value_name = "NAME")]
    pub scenarios: Vec<String>,
    /// Folder of scenario files (default: scenarios/).
    #[arg(long, value_name = "DIR")]
    pub scenarios_dir: Option<Utf8PathBuf>,
    /// The k3s release of a `--backend k3s` run (default: `[kubeprepare].k3s` of stack.toml).
    #[arg(long, value_name = "VERSION")]
    pub k3s: Option<String>,
    /// The KubeEdge release of a `--backend k3s` run (default: `[kubeprepare].kubeedge`).
    #[arg(long, value_name = "VERSION")]
    pub kubeedge: Option<String>,
    /// Number of simulated edge nodes.
    #[arg(long, default_value_t = DEFAULT_EDGES, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub edges: u8,
    /// Use this bundle folder (built elsewhere, e.g. a CI artifact) instead of building one; it is
    /// verified offline first and must match --profile and --arch (one arch only).
    #[arg(long, value_name = "DIR")]
    pub bundle: Option<Utf8PathBuf>,
    /// Print the topology plan (networks, containers, mounts) as JSON and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Leave the containers running after the run (remove them later with `e2e --sweep`).
    #[arg(long)]
    pub keep: bool,
    /// Before the scenarios, let the topology idle this long (e.g. `30s`) while the edge
    /// components are sampled: their idle figures, apart from those under the scenarios.
    #[arg(long, value_name = "DURATION")]
    pub idle: Option<crate::stack::Duration>,
    /// Remove what earlier runs left (containers, networks, volumes labelled by the e2e) and stop.
    #[arg(long)]
    pub sweep: bool,
}

/// `--backend k3s --dry-run`: the k3s tier's plan of each arch, as JSON (it runs on GitHub only).
fn k3s_dry_run(args: &Args) -> Result<()> {
    let stack = crate::stack::load(&crate::paths::stack_file())?;
    for cfg in args.configs(&stack)? {
        let arch = cfg.cell.arch;
        let bundle = cfg.bundle.clone().unwrap_or_else(|| {
            crate::paths::bundle_out_dir().join(format!("observability-{}-{arch}", cfg.cell.profile))
        });
        let images = crate::paths::k3s_images_dir(&arch.to_string());
        let plan = k3s::plan::plan(&stack, &cfg.cell, &run_id(arch), cfg.edges, bundle.as_str(), images.as_str())?;
        crate::outln!("{}", serde_json::to_string_pretty(&plan)?);
    }
    Ok(())
}

/// Edge nodes of a run unless `--edges` says otherwise: two, so that one can fail while the
/// other shows the cloud still serves.
pub const DEFAULT_EDGES: u8 = 2;

/// The `offline` result's one step: the tier's own record shows no image pulled.
const OFFLINE_STEP: &str = "the engine recorded no image pull during the run";

/// What one run is: the matrix cell it stands for, and how it runs. Made from a [`Cell`]
/// (`matrix run`, `bench e2e`) or from the command line (`e2e`: one per `--arch`).
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub cell: Cell,
    /// Number of edge nodes.
    pub edges: usize,
    /// A bundle folder built elsewhere (verified first), instead of building one.
    pub bundle: Option<Utf8PathBuf>,
    /// Leave the containers running after the run.
    pub keep: bool,
    /// Idle this long before the scenarios, the edge components sampled.
    pub idle: Option<crate::stack::Duration>,
}

impl RunConfig {
    /// A cell as the matrix runs it: two edges, the bundle built here, nothing left behind.
    pub fn of(cell: Cell) -> Self {
        RunConfig { cell, edges: DEFAULT_EDGES.into(), bundle: None, keep: false, idle: None }
    }
}

impl Args {
    /// One run per architecture asked for, each a cell of the stack's matrix.
    pub fn configs(&self, stack: &Stack) -> Result<Vec<RunConfig>> {
        // An unknown profile is named before anything starts.
        stack.profile(&self.profile)?;
        let arches = if self.arch.is_empty() {
            vec![Arch::host().context("this machine is neither amd64 nor arm64: pass --arch")?]
        } else {
            self.arch.clone()
        };
        if let Some(twice) = arches.iter().enumerate().find_map(|(i, a)| arches[..i].contains(a).then_some(a)) {
            bail!(
                "--arch {twice} is given twice: each arch is one run with its own run id and report; \
                 name each arch once (e.g. --arch amd64,arm64)"
            );
        }
        if self.bundle.is_some() && arches.len() != 1 {
            bail!("--bundle is one arch's bundle: pass exactly one --arch with it");
        }
        let version = |flag: &str, given: &Option<String>, default: &Version| -> Result<Option<Version>> {
            match (self.backend.has_versions(), given) {
                (false, Some(_)) => {
                    bail!(
                        "--{flag} is a k3s-tier version: the {} tier runs no {flag}; drop it or pass --backend k3s",
                        self.backend
                    )
                }
                (false, None) => Ok(None),
                (true, None) => Ok(Some(default.clone())),
                (true, Some(v)) => {
                    Version::try_from(v.clone()).map(Some).map_err(|e| anyhow::anyhow!("--{flag} {v}: {e}"))
                }
            }
        };
        let k3s = version("k3s", &self.k3s, &stack.kubeprepare.k3s)?;
        let kubeedge = version("kubeedge", &self.kubeedge, &stack.kubeprepare.kubeedge)?;
        arches
            .into_iter()
            .map(|arch| {
                if !stack.matrix.arch.contains(&arch) {
                    bail!("--arch {arch}: the stack's matrix has no {arch}");
                }
                if let Some(why) = arch_missing(self.backend, arch) {
                    bail!("--backend {} --arch {arch}: {why}", self.backend);
                }
                let cell = Cell {
                    backend: self.backend,
                    profile: self.profile.clone(),
                    arch,
                    k3s: k3s.clone(),
                    kubeedge: kubeedge.clone(),
                };
                Ok(RunConfig {
                    cell,
                    edges: self.edges.into(),
                    bundle: self.bundle.clone(),
                    keep: self.keep,
                    idle: self.idle,
                })
            })
            .collect()
    }
}

pub fn run(args: Args) -> Result<()> {
    if args.backend == Backend::K3s && args.dry_run {
        return k3s_dry_run(&args);
    }
    if let Some(why) = tier_missing(args.backend) {
        bail!("--backend {}: {why}; use --backend compose (the default)", args.backend);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let cancel = cancel::Cancel::install(&rt)?;
    if args.sweep {
        provision::docker(&rt)?;
        let removed = rt.block_on(async { Engine::connect().await?.sweep().await })?;
        crate::note!("e2e: sweep removed {removed}");
        return Ok(());
    }
    let stack = crate::stack::load(&crate::paths::stack_file())?;
    let configs = args.configs(&stack)?;
    let scenarios_dir = args.scenarios_dir.clone().unwrap_or_else(crate::paths::scenarios_dir);
    let scenarios = scenario::load_dir(&scenarios_dir, &args.scenarios)?;
    if scenarios.is_empty() {
        bail!("no scenario in {scenarios_dir}");
    }
    let mut failed = Vec::new();
    for cfg in &configs {
        let arch = cfg.cell.arch;
        let run_id = run_id(arch);
        if args.dry_run {
            preflight(&stack, cfg, &scenarios)?;
            let run_dir = crate::paths::e2e_run_dir(&run_id);
            let json = match cfg.cell.backend {
                Backend::Kubernetes => serde_json::to_string_pretty(&cluster_shape(&stack, cfg)?)?,
                _ => serde_json::to_string_pretty(&plan::plan(
                    &stack,
                    &cfg.cell.profile,
                    arch,
                    &run_id,
                    cfg.edges,
                    run_dir.join("config"),
                    Vec::new(),
                )?)?,
            };
            crate::outln!("{json}")?;
            continue;
        }
        cancel.check()?;
        let report = run_once(&rt, &cancel, &stack, cfg, &run_id, &scenarios)?;
        let summary = crate::paths::shown(&crate::paths::e2e_run_dir(&run_id).join("summary.md"));
        let asked: Vec<&report::ScenarioResult> =
            report.scenarios.iter().filter(|s| args.scenarios.contains(&s.name)).collect();
        if report.outcome() == report::Outcome::Interrupted {
            failed.push(format!("{arch}: interrupted ({summary})"));
        } else if !asked.is_empty() && asked.iter().all(|s| matches!(s.status, report::Status::NotRun { .. })) {
            failed.push(format!("{arch}: none of the scenarios asked for could run here ({summary})"));
        } else if report.outcome() != report::Outcome::Passed {
            failed.push(format!("{arch} ({summary})"));
        }
    }
    if !failed.is_empty() {
        bail!("e2e failed for {}", failed.join(", "));
    }
    Ok(())
}

/// One run on one arch: provision (Docker, qemu), check the scenarios, get the bundle, then
/// [`run_arch`]. Its report is written whatever happens from there: a bundle that cannot be built
/// or does not verify, or a scenario that names what the topology lacks, is a failed `setup`.
/// `Err` only when this machine cannot run it at all (no Docker engine, no qemu for arm64), or
/// when its report cannot be written. Used by `e2e`, `matrix run` and `bench e2e`.
pub fn run_once(
    rt: &tokio::runtime::Runtime,
    cancel: &cancel::Cancel,
    stack: &Stack,
    cfg: &RunConfig,
    run_id: &str,
    scenarios: &[scenario::Scenario],
) -> Result<report::Report> {
    let t = Instant::now();
    let (profile, arch) = (cfg.cell.profile.as_str(), cfg.cell.arch);
    let mut run = RunInfo {
        run_id,
        cfg,
        emulated: false,
        bundle: "(none: it could not be had)".into(),
        started: (jiff::Timestamp::now(), Instant::now()),
        provisioned: None,
        node_image: BTreeMap::new(),
        tier: tier_label(stack, cfg.cell.backend),
    };
    // Scenarios first: a name the topology lacks is reported before anything is provisioned.
    if let Err(e) = preflight(stack, cfg, scenarios) {
        crate::note!("e2e: {e:#}");
        return finish(&run, setup_failed(&e, true, &run.started.1, Vec::new()), Phases::default());
    }
    run.emulated = provision::machine(rt, stack, &cfg.cell)?;
    let bundle = match &cfg.bundle {
        Some(dir) => provision::given_bundle(dir, profile, arch),
        None => provision::bundle(stack, profile, arch),
    };
    let bundle = match cfg.cell.backend {
        Backend::Kubernetes => bundle.and_then(|b| {
            run.node_image = provision::node_image(stack, arch)?;
            Ok(b)
        }),
        _ => bundle,
    };
    run.provisioned = Some(report::Phase { name: "provision".into(), seconds: t.elapsed().as_secs_f64() });
    run.started = (jiff::Timestamp::now(), Instant::now());
    let report = match bundle {
        Ok(bundle) => {
            run.bundle = bundle.to_string();
            match cancel.reason() {
                None => run_arch(rt, cancel, stack, &run, &bundle, scenarios)?,
                // A signal that came while provisioning stops the run before it makes anything.
                Some(why) => {
                    finish(&run, interrupted(why, &runner::Progress::default(), scenarios), Phases::default())?
                }
            }
        }
        Err(e) => {
            crate::note!("e2e: {e:#}");
            finish(&run, setup_failed(&e, true, &run.started.1, Vec::new()), Phases::default())?
        }
    };
    Ok(report)
}

/// What a backend's name alone does not say: the kubernetes tier is Kubernetes built here with
/// simulated KubeEdge edges, never k3s or KubeEdge.
pub fn tier_label(stack: &Stack, backend: Backend) -> Option<String> {
    (backend == Backend::Kubernetes).then(|| {
        let kubernetes = stack.program("kubernetes").map_or_else(|_| "(unknown)".to_string(), |p| p.release.clone());
        format!("kubernetes {kubernetes}, edges: simulated KubeEdge {} contract", stack.kubeprepare.kubeedge)
    })
}

/// What a report says about its run besides what the run found.
struct RunInfo<'a> {
    run_id: &'a str,
    cfg: &'a RunConfig,
    emulated: bool,
    bundle: String,
    /// Wall clock and monotonic start.
    started: (jiff::Timestamp, Instant),
    /// The provision phase, once done: the first phase of the written report.
    provisioned: Option<report::Phase>,
    /// The kubernetes tier's node image: `linux/<arch>` → its archive.
    node_image: BTreeMap<String, Utf8PathBuf>,
    /// What the backend really runs, for the report ([`report::Report::tier`]).
    tier: Option<String>,
}

/// A run a signal stopped: every finished scenario with its result, the running one
/// `interrupted` (its finished steps kept, the running step interrupted, the rest not started),
/// then every other scenario not started. Stopped before the scenarios (or after them), the
/// `setup` (or `offline`) entry is the interrupted one, so the verdict is always interrupted.
fn interrupted(why: &str, progress: &runner::Progress, scenarios: &[scenario::Scenario]) -> Executed {
    let signal = cancel::signal_name(why).to_string();
    let stopped = report::Status::Interrupted { signal: signal.clone() };
    let not_started = report::Status::NotRun { reason: format!("not started: the run was interrupted by {signal}") };
    let step = |name: &str, status: &report::Status, duration_s: f64, message: Option<String>| report::StepResult {
        name: name.into(),
        status: status.clone(),
        duration_s,
        message,
        expected: None,
        actual: None,
    };
    let mut results = progress.done.clone();
    let phases = progress.phases.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ");
    let during = match &progress.running {
        Some(r) => {
            let mut steps = r.steps.clone();
            if let Some(name) = &r.step {
                steps.push(step(name, &stopped, 0.0, Some(format!("{why} while this step ran"))));
            }
            if let Some(s) = scenarios.iter().find(|s| s.name == r.name) {
                let cleanup = (!s.finally.is_empty()).then_some("finally");
                for name in s.steps.iter().map(|x| x.name.as_str()).chain(cleanup) {
                    if !steps.iter().any(|x| x.name == name) {
                        steps.push(step(name, &not_started, 0.0, None));
                    }
                }
            }
            results.push(report::ScenarioResult {
                name: r.name.clone(),
                file: r.file.clone(),
                status: stopped.clone(),
                duration_s: r.started.elapsed().as_secs_f64(),
                steps,
                logs: Vec::new(),
            });
            format!("during scenario {}{}", r.name, r.step.as_ref().map(|s| format!(" / {s}")).unwrap_or_default())
        }
        None => {
            let (name, what) =
                if results.is_empty() { ("setup", "bring the topology up") } else { ("offline", OFFLINE_STEP) };
            let after = if phases.is_empty() { String::new() } else { format!(" after {phases}") };
            results.push(report::ScenarioResult {
                name: name.into(),
                file: String::new(),
                status: stopped.clone(),
                duration_s: 0.0,
                steps: vec![step(what, &stopped, 0.0, Some(format!("{why}{after}")))],
                logs: Vec::new(),
            });
            format!("during {name}")
        }
    };
    let listed: BTreeSet<String> = results.iter().map(|r| r.name.clone()).collect();
    for s in scenarios.iter().filter(|s| !listed.contains(&s.name)) {
        results.push(report::ScenarioResult {
            name: s.name.clone(),
            file: s.display_file(),
            status: not_started.clone(),
            duration_s: 0.0,
            steps: Vec::new(),
            logs: Vec::new(),
        });
    }
    Executed {
        scenarios: results,
        resources: Vec::new(),
        idle_s: None,
        latencies: Vec::new(),
        links: Vec::new(),
        notes: vec![format!(
            "the run was {why} {during}: finished scenarios keep their result, the rest did not start; \
             resources, links and latencies were not collected"
        )],
    }
}

/// A run that could not come up: a failed `setup` scenario with the error and the logs saved
/// for it.
fn setup_failed(e: &anyhow::Error, finished: bool, started: &Instant, logs: Vec<String>) -> Executed {
    let saved = if logs.is_empty() {
        String::new()
    } else {
        "; every container's log is saved with this report (rerun with --keep to inspect the containers)".into()
    };
    Executed {
        scenarios: vec![report::ScenarioResult {
            name: "setup".into(),
            file: String::new(),
            status: report::Status::Failed,
            duration_s: started.elapsed().as_secs_f64(),
            steps: vec![report::StepResult {
                name: if finished { "bring the topology up" } else { "run to the end" }.into(),
                status: report::Status::Failed,
                duration_s: started.elapsed().as_secs_f64(),
                message: Some(format!("{e:#}{saved}")),
                expected: None,
                actual: None,
            }],
            logs,
        }],
        resources: Vec::new(),
        idle_s: None,
        latencies: Vec::new(),
        links: Vec::new(),
        notes: vec![format!("the run stopped before its scenarios ended: {e:#}")],
    }
}

/// Write the report of a run into `target/e2e/<run>/` (and the step summary on GitHub Actions).
fn finish(run: &RunInfo<'_>, executed: Executed, phases: Phases) -> Result<report::Report> {
    let run_dir = crate::paths::e2e_run_dir(run.run_id);
    let Executed { scenarios, resources, idle_s, latencies, links, mut notes } = executed;
    // Claimed only when the engine's events were read and showed no pull.
    if scenarios.iter().any(|s| s.name == "offline" && s.status.is_passed()) {
        notes.insert(0, format!("engine images came only from the bundle: {}", run.bundle));
    }
    let report = report::Report {
        schema: report::SCHEMA,
        run_id: run.run_id.to_string(),
        started: run.started.0.to_string(),
        duration_s: run.started.1.elapsed().as_secs_f64(),
        backend: run.cfg.cell.backend,
        profile: run.cfg.cell.profile.clone(),
        arch: run.cfg.cell.arch,
        k3s: run.cfg.cell.k3s.clone(),
        kubeedge: run.cfg.cell.kubeedge.clone(),
        tier: run.tier.clone(),
        emulated: run.emulated,
        tool: format!("xtask {}", env!("CARGO_PKG_VERSION")),
        bundle: run.bundle.clone(),
        scenarios,
        resources,
        links,
        idle_s,
        latencies,
        notes,
        phases: run.provisioned.iter().cloned().chain(phases.0).collect(),
    };
    let written = report::write_all(&run_dir, &report)?;
    crate::note!(
        "e2e: {} in {:.0}s; reports: {}",
        report.outcome_line(),
        report.duration_s,
        written.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ")
    );
    report::append_step_summary(&run_dir.join("summary.md"));
    Ok(report)
}

/// Check the scenarios that will run against the topology and the rendered rules, before
/// anything is started: every node, component, alert and step they name must exist. Pure.
fn preflight(stack: &Stack, cfg: &RunConfig, scenarios: &[scenario::Scenario]) -> Result<()> {
    let (profile, arch) = (cfg.cell.profile.as_str(), cfg.cell.arch);
    if cfg.cell.backend == Backend::Kubernetes {
        let shape = cluster_shape(stack, cfg)?;
        let provides = cluster::tier::provides(stack, profile)?;
        let all = shape.names();
        let nodes: Vec<String> =
            all.iter().filter(|(_, r)| *r == cluster::plan::Role::Edge).map(|(n, _)| n.clone()).collect();
        let mut cloud: BTreeSet<String> = provides.iter().filter(|p| *p != scenario::KUBELET_TUNNEL).cloned().collect();
        if provides.contains(&crate::stack::Kind::Jaeger.to_string()) {
            // The test workload's cloud end, whose spans the traces scenario finds.
            cloud.insert(plan::CLOUD_API.into());
        }
        // Logs may be collected of a cloud component or of any node (its processes).
        let components: BTreeSet<String> = cloud.iter().cloned().chain(all.into_iter().map(|(n, _)| n)).collect();
        let alerts = alert_names(&crate::render::Ctx::new(stack, profile, arch)?);
        for s in scenarios.iter().filter(|s| scenario::missing_requirement(s, &provides).is_none()) {
            scenario::check(
                s,
                &scenario::Names { nodes: &nodes, components: &components, cloud: &cloud, alerts: &alerts },
            )?;
        }
        return Ok(());
    }
    let plan = plan::plan(stack, profile, arch, "preflight", cfg.edges, Utf8PathBuf::from("config"), Vec::new())?;
    let topology = crate::render::ComposeTopology {
        edges: plan.edges.keys().cloned().collect(),
        alert_webhook_url: "http://127.0.0.1:1/alerts".parse()?,
    };
    let ctx = crate::render::Ctx::compose(stack, profile, arch, &topology)?;
    let alerts = alert_names(&ctx);
    let components = plan.component_names();
    let cloud: BTreeSet<String> =
        plan.containers.iter().filter(|c| c.node.is_none()).map(|c| c.component.clone()).collect();
    let nodes: Vec<String> = plan.edges.keys().cloned().collect();
    for s in scenarios.iter().filter(|s| scenario::missing_requirement(s, &plan.provides).is_none()) {
        scenario::check(
            s,
            &scenario::Names { nodes: &nodes, components: &components, cloud: &cloud, alerts: &alerts },
        )?;
    }
    Ok(())
}

/// The kubernetes tier's cluster for a run: one server, one cloud agent, the run's edges.
fn cluster_shape(stack: &Stack, cfg: &RunConfig) -> Result<cluster::plan::Shape> {
    cluster::shape(stack, 1, cfg.edges, cfg.cell.arch)
}

/// Every alert the rendered rules of `ctx` define.
fn alert_names(ctx: &crate::render::Ctx<'_>) -> BTreeSet<String> {
    crate::render::rules::alert_names(ctx).into_iter().collect()
}

/// `e2e-<UTC time>-<arch>-<pid>`: unique, sortable, valid as a container name prefix.
pub fn run_id(arch: Arch) -> String {
    let now = jiff::Timestamp::now().strftime("%Y%m%d-%H%M%S");
    format!("e2e-{now}-{arch}-{}", std::process::id())
}

fn run_arch(
    rt: &tokio::runtime::Runtime,
    cancel: &cancel::Cancel,
    stack: &Stack,
    run: &RunInfo<'_>,
    bundle: &Utf8Path,
    scenarios: &[scenario::Scenario],
) -> Result<report::Report> {
    let RunInfo { run_id, cfg, emulated, .. } = *run;
    let (profile, arch) = (cfg.cell.profile.as_str(), cfg.cell.arch);
    let run_dir = crate::paths::e2e_run_dir(run_id);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {run_dir}"))?;
    let started = run.started.1;
    crate::note!(
        "e2e: run {run_id}: {} on {arch}{}, bundle {bundle}",
        profile,
        if emulated { " (emulated)" } else { "" }
    );
    let topology = match cfg.cell.backend {
        Backend::Kubernetes => cluster_shape(stack, cfg).map(Topology::Cluster),
        _ => image_archives(bundle)
            .and_then(|archives| plan::plan(stack, profile, arch, run_id, cfg.edges, run_dir.join("config"), archives))
            .map(Topology::Compose),
    };
    let topology = match topology {
        Ok(t) => t,
        Err(e) => return finish(run, setup_failed(&e, true, &started, Vec::new()), Phases::default()),
    };
    let planned = match &topology {
        Topology::Compose(plan) => serde_json::to_string_pretty(plan)?,
        Topology::Cluster(shape) => serde_json::to_string_pretty(shape)?,
    };
    crate::atomic::write(&run_dir.join("plan.json"), planned.as_bytes(), false)?;
    let node_image = run.node_image.clone();

    let mut cancel = cancel.clone();
    let progress = runner::SharedProgress::default();
    let idle = cfg.idle.map(|d| std::time::Duration::from_millis(d.as_millis()));
    let keep = cfg.keep;
    let (result, phases, finished, logs) = rt.block_on(async {
        let mut work = tokio::spawn({
            let progress = progress.clone();
            let (stack, topology, args_profile, bundle, run_dir, scenarios, run_id) = (
                stack.clone(),
                topology.clone(),
                profile.to_string(),
                bundle.to_path_buf(),
                run_dir.clone(),
                scenarios.to_vec(),
                run_id.to_string(),
            );
            async move {
                let run = Execution { emulated, started, idle, keep };
                match &topology {
                    Topology::Compose(plan) => {
                        execute(&stack, &args_profile, plan, &bundle, &run_dir, &scenarios, run, &progress).await
                    }
                    Topology::Cluster(shape) => {
                        let on = OnCluster { shape, node_image: &node_image, run_id: &run_id };
                        execute_cluster(&stack, &args_profile, on, &bundle, &run_dir, &scenarios, run, &progress).await
                    }
                }
            }
        });
        let mut finished = true;
        let mut stopped = None;
        let result = tokio::select! {
            r = &mut work => match r {
                Ok(r) => r,
                Err(e) if e.is_panic() => Err(anyhow::anyhow!("the e2e run panicked: {e}")),
                Err(e) => Err(anyhow::anyhow!("the e2e run was cancelled: {e}")),
            },
            why = cancel.cancelled() => { finished = false; stopped = Some(why); Err(anyhow::anyhow!("{why}")) }
        };
        if !finished {
            // Stop the run (it may be creating containers) before removing what it made.
            work.abort();
            let _ = work.await;
        }
        // What the run went through, whether it finished or not.
        let mut phases = Phases(progress.lock().map(|p| p.phases.clone()).unwrap_or_default());
        let result = match stopped {
            Some(why) => {
                let so_far = progress.lock().map(|p| p.clone()).unwrap_or_default();
                Ok(interrupted(why, &so_far, &scenarios))
            }
            None => result,
        };
        let mut logs = Vec::new();
        if let Some(why) = stopped {
            crate::note!("e2e: {why}");
        }
        if let Err(e) = &result {
            crate::note!("e2e: {e:#}");
            // What went wrong is in the containers' logs: save them before they are removed.
            if finished {
                if let Ok(engine) = Engine::connect().await {
                    logs = match &topology {
                        Topology::Compose(plan) => Compose::new(engine, plan.clone()).save_logs(&run_dir).await,
                        Topology::Cluster(shape) => cluster::save_logs(&engine, run_id, shape, &run_dir).await,
                    };
                }
            }
        }
        if cfg.keep {
            crate::note!("e2e: --keep: leaving the containers of {run_id}; remove them with `cargo xtask e2e --sweep` once this process is gone");
        } else {
            let cleanup = Instant::now();
            match Engine::connect().await {
                Ok(engine) => match engine.remove_run(run_id).await {
                    Ok(removed) => crate::note!("e2e: removed {removed}"),
                    Err(e) => crate::note!("e2e: cleanup failed: {e:#}; run `cargo xtask e2e --sweep`"),
                },
                Err(e) => crate::note!("e2e: cleanup failed: {e:#}; run `cargo xtask e2e --sweep`"),
            }
            phases.mark_since("cleanup", cleanup);
        }
        (result, phases, finished, logs)
    });
    // A run that could not bring its topology up still reports, as a failed `setup` (a stopped
    // one as interrupted): CI, the matrix and the gate read the report, not the exit code alone.
    let executed = result.unwrap_or_else(|e| setup_failed(&e, finished, &started, logs));
    finish(run, executed, phases)
}

/// What a run brings up: the compose tier's containers, or the kubernetes tier's cluster.
#[derive(Clone)]
enum Topology {
    Compose(plan::Plan),
    Cluster(cluster::plan::Shape),
}

/// What a run found, for its report.
struct Executed {
    scenarios: Vec<report::ScenarioResult>,
    resources: Vec<report::ResourceSeries>,
    /// When the topology idled (`--idle`), in seconds of the resource samples.
    idle_s: Option<[f64; 2]>,
    latencies: Vec<report::Latency>,
    links: Vec<report::LinkSeries>,
    notes: Vec<String>,
}

/// Wall time of each phase of a run, in order.
#[derive(Default)]
struct Phases(Vec<report::Phase>);

impl Phases {
    fn mark_since(&mut self, name: &str, since: Instant) {
        self.0.push(report::Phase { name: name.into(), seconds: since.elapsed().as_secs_f64() });
    }
}

/// Record a phase of a running run as it ends.
fn phase_done(progress: &runner::SharedProgress, name: &str, since: Instant) {
    let phase = report::Phase { name: name.into(), seconds: since.elapsed().as_secs_f64() };
    runner::update(progress, |p| p.phases.push(phase));
}

/// Aborts a spawned task when dropped: the sampler stops on every way out of a run.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Every image archive of the bundle, relative to its folder, sorted.
fn image_archives(bundle: &Utf8Path) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for role in ["cloud", "edge"] {
        let dir = bundle.join("images").join(role);
        if !dir.exists() {
            continue;
        }
        for e in std::fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
            let name = e?.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tar") || name.ends_with(".tar.zst") {
                out.push(format!("images/{role}/{name}"));
            }
        }
    }
    out.sort();
    if out.is_empty() {
        bail!("{bundle} has no image archive under images/: rebuild it with `cargo xtask bundle`");
    }
    Ok(out)
}

/// How one run executes: on emulated edges or not, when it started (the resource samples'
/// zero), and how long it idles before the scenarios.
#[derive(Clone, Copy)]
struct Execution {
    emulated: bool,
    started: Instant,
    idle: Option<std::time::Duration>,
    /// `--keep`: what the run made outlives it.
    keep: bool,
}

async fn execute(
    stack: &Stack,
    profile_name: &str,
    plan: &plan::Plan,
    bundle: &Utf8Path,
    run_dir: &Utf8Path,
    scenarios: &[scenario::Scenario],
    run: Execution,
    progress: &runner::SharedProgress,
) -> Result<Executed> {
    let t = Instant::now();
    let engine = Engine::connect().await?;
    let swept = engine.sweep().await?;
    if swept != engine::Removed::default() {
        crate::note!("e2e: swept leftovers of earlier runs: {swept}");
    }
    let since = jiff::Timestamp::now().as_second() - 1;
    let profile = stack.profile(profile_name)?;

    let tier = Compose::new(engine, plan.clone());
    let images = tier.load_images(bundle).await?;
    crate::note!("e2e: loaded {images} images from {} archives", plan.archives.len());
    phase_done(progress, "load images", t);
    let t = Instant::now();
    let gateway = tier.create_networks().await?;
    let receiver = receiver::Receiver::start(gateway).await?;
    let models = tier.configure(stack, profile_name, receiver.url())?;
    tier.start().await?;
    phase_done(progress, "start", t);
    let link_budget = stack.e2e_link_budget_per_minute();
    let pace = Pace::of(stack.e2e.scrape_interval, stack.e2e.evaluation_interval);
    scenarios_on(&tier, profile, link_budget, receiver, (models, pace), since, run_dir, scenarios, run, progress).await
}

/// The phases of the kubernetes tier's bring-up, in order, as its report names them: the node
/// image loaded (and the nodes' secrets made), the API server ready, the cloud nodes Ready, the
/// edges joined.
pub const CLUSTER_PHASES: [&str; 4] =
    ["load node image", "cluster: API ready", "cluster: cloud nodes Ready", "cluster: edges joined"];

/// What a kubernetes-tier run brings up, and from what.
struct OnCluster<'a> {
    shape: &'a cluster::plan::Shape,
    /// `linux/<arch>` → the node image's archive.
    node_image: &'a BTreeMap<String, Utf8PathBuf>,
    run_id: &'a str,
}

/// The kubernetes tier: the cluster up (node image loaded, the bundle's images imported into each
/// node's containerd), the profile's objects applied, then the scenarios through [`Tier`].
#[allow(clippy::too_many_arguments)]
async fn execute_cluster(
    stack: &Stack,
    profile_name: &str,
    on: OnCluster<'_>,
    bundle: &Utf8Path,
    run_dir: &Utf8Path,
    scenarios: &[scenario::Scenario],
    run: Execution,
    progress: &runner::SharedProgress,
) -> Result<Executed> {
    let t = Instant::now();
    let engine = Engine::connect().await?;
    let swept = engine.sweep().await?;
    if swept != engine::Removed::default() {
        crate::note!("e2e: swept leftovers of earlier runs: {swept}");
    }
    let since = jiff::Timestamp::now().as_second() - 1;
    let profile = stack.profile(profile_name)?;
    crate::note!("e2e: bringing up {} edges", on.shape.edges);
    let mut c = cluster::Cluster::start(&engine, on.run_id, on.shape, on.node_image, bundle).await?;
    if run.keep {
        c.detach();
    }
    let cluster::Timings { api_ready_s, cloud_ready_s, edges_joined_s } = c.timings.clone();
    crate::note!(
        "e2e: {}: API ready in {api_ready_s:.1}s, cloud nodes Ready in {cloud_ready_s:.1}s, edges joined in {edges_joined_s:.1}s",
        cluster::describe(&c.plan)
    );
    let phase = |name: &str, seconds: f64| {
        let phase = report::Phase { name: name.into(), seconds };
        runner::update(progress, |p| p.phases.push(phase));
    };
    let before = t.elapsed().as_secs_f64() - edges_joined_s;
    let [load, api, cloud, edges] = CLUSTER_PHASES;
    phase(load, before);
    phase(api, api_ready_s);
    phase(cloud, cloud_ready_s - api_ready_s);
    phase(edges, edges_joined_s - cloud_ready_s);
    let t = Instant::now();
    let gateway = engine.network_gateway(&c.network).await?;
    let receiver = receiver::Receiver::start(gateway).await?;
    let ctx = crate::render::Ctx::new(stack, profile_name, on.shape.arch)?;
    let models = crate::render::rules::alert_models(&ctx);
    let tier = cluster::tier::Kube::deploy(c, engine, stack, profile_name, &receiver.url()).await?;
    phase_done(progress, "install", t);
    // The link at the install's own pace: [settings], not the compose tier's faster [e2e] timing.
    let link_budget = stack.settings.edge_link.budget_per_minute.bytes();
    let pace = Pace::of(stack.settings.scrape_interval, stack.settings.evaluation_interval);
    scenarios_on(&tier, profile, link_budget, receiver, (models, pace), since, run_dir, scenarios, run, progress).await
}

/// A tier's pace, as its checks wait and its scenarios' `${scrape_interval}` says.
struct Pace {
    /// The least a check waits for what it looks for: twice a pushed sample's way to a query
    /// (scraped at most a scrape interval after it happens, sent within a send deadline of one
    /// more, evaluated within an evaluation interval). A scenario's timeouts are written for the
    /// compose tier's `[e2e]` pace; at the install's own, this is longer than most of them.
    min_wait: std::time::Duration,
    scrape_interval: std::time::Duration,
}

impl Pace {
    fn of(scrape: crate::stack::Duration, evaluation: crate::stack::Duration) -> Pace {
        let ms = |d: crate::stack::Duration| std::time::Duration::from_millis(d.as_millis());
        let (scrape, evaluation) = (ms(scrape), ms(evaluation));
        Pace { min_wait: 2 * (2 * scrape + evaluation), scrape_interval: scrape }
    }
}

/// Run the scenarios on a tier that has started: sample its edge components and links while
/// they run, wait for it to be ready, idle if asked, then check it pulled nothing.
#[allow(clippy::too_many_arguments)]
async fn scenarios_on<T: Tier + Clone + 'static>(
    tier: &T,
    profile: &crate::stack::Profile,
    link_budget: u64,
    receiver: receiver::Receiver,
    (models, pace): (BTreeMap<String, crate::render::rules::LatencyModel>, Pace),
    since: i64,
    run_dir: &Utf8Path,
    scenarios: &[scenario::Scenario],
    run: Execution,
    progress: &runner::SharedProgress,
) -> Result<Executed> {
    let Execution { emulated, started, idle, .. } = run;
    // Sampled from the start, so what the components take while starting counts too.
    let samples = Arc::new(Mutex::new(BTreeMap::new()));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sampler = AbortOnDrop(tokio::spawn(runner::sample(tier.clone(), started, emulated, samples.clone(), stop_rx)));

    let t = Instant::now();
    let mut runner = runner::Runner::new(tier, receiver, run_dir.to_path_buf(), models)?;
    runner.progress = progress.clone();
    runner.started = started;
    runner.min_wait = pace.min_wait;
    runner.scrape_interval = pace.scrape_interval;
    tier.ready().await?;
    phase_done(progress, "ready", t);
    // Links from here on: what an edge sends once the stack is up, not its first connections.
    let nodes = tier.nodes();
    let link_samples = Arc::new(Mutex::new(BTreeMap::new()));
    let (link_stop_tx, link_stop_rx) = tokio::sync::watch::channel(false);
    let link_sampler = AbortOnDrop(tokio::spawn(runner::sample_links(
        tier.clone(),
        nodes.clone(),
        started,
        link_samples.clone(),
        link_stop_rx,
    )));
    let idle_s = match idle {
        Some(d) => {
            let t = Instant::now();
            crate::note!("e2e: idling {:.0}s (edge components sampled)", d.as_secs_f64());
            let from = started.elapsed().as_secs_f64();
            tokio::time::sleep(d).await;
            phase_done(progress, "idle", t);
            Some([from, started.elapsed().as_secs_f64()])
        }
        None => None,
    };
    let t = Instant::now();
    let mut results = Vec::new();
    for s in scenarios {
        if let Some(missing) = scenario::missing_requirement(s, tier.provides()) {
            let reason = tier.not_run_reason(&missing);
            crate::note!("  not run: {}: {reason}", s.name);
            let result = report::ScenarioResult {
                name: s.name.clone(),
                file: s.display_file(),
                status: report::Status::NotRun { reason },
                duration_s: 0.0,
                steps: Vec::new(),
                logs: Vec::new(),
            };
            runner::update(progress, |p| p.done.push(result.clone()));
            results.push(result);
            continue;
        }
        results.push(runner.scenario(s).await);
    }
    phase_done(progress, "scenarios", t);
    let _ = stop_tx.send(true);
    let _ = link_stop_tx.send(true);
    let mut sampler = sampler;
    let _ = (&mut sampler.0).await;
    let mut link_sampler = link_sampler;
    let _ = (&mut link_sampler.0).await;
    let faults = runner.fault_windows(started.elapsed().as_secs_f64());
    let link_samples = link_samples.lock().map(|s| s.clone()).unwrap_or_default();
    let budget = Some(link_budget);
    let links = nodes
        .iter()
        .map(|node| report::LinkSeries {
            node: node.clone(),
            budget_bytes_per_min: budget,
            faults: faults.get(node).cloned().unwrap_or_default(),
            samples: link_samples.get(node).cloned().unwrap_or_default(),
        })
        .collect();

    // Offline: the tier's own record says no image was pulled while the run went on.
    let (status, message) = match tier.pulls_since(since).await {
        Ok(pulls) if pulls.is_empty() => (report::Status::Passed, None),
        Ok(pulls) => {
            (report::Status::Failed, Some(format!("the engine pulled {} (the e2e must never pull)", pulls.join(", "))))
        }
        Err(e) => {
            (report::Status::Failed, Some(format!("the engine's events could not be read, so it is not known: {e:#}")))
        }
    };
    let offline = report::StepResult {
        name: OFFLINE_STEP.into(),
        status,
        duration_s: 0.0,
        message,
        expected: None,
        actual: None,
    };
    results.push(report::ScenarioResult {
        name: "offline".into(),
        file: String::new(),
        status: offline.status.clone(),
        duration_s: 0.0,
        steps: vec![offline],
        logs: Vec::new(),
    });
    let samples = samples.lock().map(|s| s.clone()).unwrap_or_default();
    let resources = runner::series(&tier.measured(), profile, &samples, emulated);
    Ok(Executed { scenarios: results, resources, idle_s, latencies: runner.latencies, links, notes: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(name: &str, steps: &[&str]) -> scenario::Scenario {
        let steps: String =
            steps.iter().map(|s| format!("  - name: {s}\n    try: [{{stop_node: edge-1}}]\n")).collect();
        let text = format!("name: {name}\ndescription: d\nsteps:\n{steps}finally: [{{start_node: edge-1}}]\n");
        scenario::parse(Utf8Path::new("scenarios/x.yaml"), &text).unwrap()
    }

    fn passed(name: &str) -> report::StepResult {
        report::StepResult {
            name: name.into(),
            status: report::Status::Passed,
            duration_s: 1.0,
            message: None,
            expected: None,
            actual: None,
        }
    }

    /// Item 9 of "Unfoolable evidence": a SIGINT while the second scenario ran keeps the first's
    /// result, marks the second interrupted at its running step, and lists the third not started.
    #[test]
    fn an_interrupted_run_keeps_the_finished_scenarios() {
        let scenarios =
            [scenario("metrics", &["up"]), scenario("alerts", &["stop", "fires"]), scenario("logs", &["x"])];
        let done = report::ScenarioResult {
            name: "metrics".into(),
            file: "scenarios/10-metrics.yaml".into(),
            status: report::Status::Passed,
            duration_s: 3.0,
            steps: vec![passed("up"), passed("finally")],
            logs: Vec::new(),
        };
        let progress = runner::Progress {
            phases: vec![report::Phase { name: "ready".into(), seconds: 2.0 }],
            done: vec![done.clone()],
            running: Some(runner::Running {
                name: "alerts".into(),
                file: "scenarios/20-alerts.yaml".into(),
                started: Instant::now(),
                steps: vec![passed("stop")],
                step: Some("fires".into()),
            }),
        };
        let e = interrupted("interrupted (SIGINT)", &progress, &scenarios);
        let sigint = report::Status::Interrupted { signal: "SIGINT".into() };
        let not_started = report::Status::NotRun { reason: "not started: the run was interrupted by SIGINT".into() };
        let got: Vec<(&str, &report::Status)> = e.scenarios.iter().map(|s| (s.name.as_str(), &s.status)).collect();
        assert_eq!(got, [("metrics", &report::Status::Passed), ("alerts", &sigint), ("logs", &not_started)]);
        assert_eq!(e.scenarios[0], done);
        let steps: Vec<(&str, &report::Status)> =
            e.scenarios[1].steps.iter().map(|s| (s.name.as_str(), &s.status)).collect();
        assert_eq!(steps, [("stop", &report::Status::Passed), ("fires", &sigint), ("finally", &not_started)]);
        assert!(e.notes[0].contains("during scenario alerts / fires"), "{:?}", e.notes);

        // Before any scenario: the setup is what was interrupted, never a made-up failure.
        let e = interrupted("terminated (SIGTERM)", &runner::Progress::default(), &scenarios);
        assert_eq!(e.scenarios[0].name, "setup");
        assert_eq!(e.scenarios[0].status, report::Status::Interrupted { signal: "SIGTERM".into() });
        assert!(e.scenarios[1..].iter().all(|s| matches!(s.status, report::Status::NotRun { .. })));
    }
}
