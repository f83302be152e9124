//! `cargo xtask bench bundle`: how fast and how big bundles are, against the
//! tools people would otherwise use, in one run on this machine.
//! `cargo xtask bench e2e`: how long an e2e run takes, phase by phase, and what the edge and
//! the alerts measured, over several runs (see [`e2e`]).
//!
//! - time: a cold build (empty cache), a warm build (cached blobs, new output),
//!   a no-change rebuild, against `skopeo copy` of the same images (by digest,
//!   same platform) from the same registry into OCI archives;
//! - size: the image archives' bytes against the sum of their unique blobs
//!   (the floor for a bundle that keeps upstream bytes), and against
//!   `docker save | gzip` of the same images (what a Docker-based bundle ships).
//!
//! Each timing is the median of `--runs` runs; every figure is printed.
//!
//! `cargo xtask bench fixtures`: how long the local profile's Go programs take to build, per
//! program and arch: cold (an empty Go build cache: every package compiled, modules already
//! downloaded), warm (Go's cache warm, a new output folder: what a changed -X setting costs) and
//! unchanged (equal inputs: the build is skipped), and how big each binary is.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use camino::Utf8PathBuf;

use crate::bundle::{ArchiveFormat, BundleRole, ImageArchives, ImageFormat, Options, Source};
use crate::stack::{Arch, Backend};

/// Measure the tool; print figures.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub what: What,
}

#[derive(Debug, clap::Subcommand)]
pub enum What {
    /// Bundle build time against skopeo copy, bundle bytes against unique blobs and docker save | gzip.
    Bundle(BundleArgs),
    /// e2e run time by phase against the 3-minute target, edge resources and alert latencies.
    E2e(E2eArgs),
    /// Go program build times per program and arch (cold, warm, unchanged) and binary sizes.
    Fixtures(FixturesArgs),
}

#[derive(Debug, clap::Args)]
pub struct FixturesArgs {
    /// Programs to build (default: every one the local profile uses).
    #[arg(long, value_delimiter = ',')]
    pub program: Vec<String>,
    /// Architectures (default: the matrix's).
    #[arg(long, value_enum, value_delimiter = ',')]
    pub arch: Vec<Arch>,
    /// Leave out the cold build (minutes per program on 2 cores).
    #[arg(long)]
    pub no_cold: bool,
}

#[derive(Debug, clap::Args)]
pub struct E2eArgs {
    /// Cluster backend.
    #[arg(long, value_enum, default_value = "compose")]
    pub backend: Backend,
    /// Profile whose bundle is run.
    #[arg(long, default_value = "local")]
    pub profile: String,
    /// Architecture (default: this machine's; arm64 on amd64 runs emulated).
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// Runs (min, median and max of each figure are reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
    /// How long each run idles before its scenarios: the edge components' idle figures.
    #[arg(long, default_value = "30s")]
    pub idle: crate::stack::Duration,
}

/// The compose tier's wall-time target for one run once the fixture images exist (issue 4).
const E2E_TARGET_S: f64 = 180.0;

/// The kubernetes tier's bring-up, once its images exist: node image loaded, API server ready,
/// cloud nodes Ready, edges joined.
const CLUSTER_TARGET_S: f64 = 60.0;

#[derive(Debug, clap::Args)]
pub struct BundleArgs {
    /// Profile to bundle (its lock must exist: `cargo xtask fixtures --push` for local).
    #[arg(long, default_value = "local")]
    pub profile: String,
    /// Architecture (default: this machine's).
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// Runs per timing (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

pub fn run(args: Args) -> Result<()> {
    match args.what {
        What::Bundle(a) => bundle(a),
        What::E2e(a) => e2e(a),
        What::Fixtures(a) => fixtures(a),
    }
}

/// One program on one arch in `bench fixtures`.
struct Row {
    name: String,
    arch: Arch,
    cold: Option<f64>,
    warm: f64,
    unchanged: f64,
    bytes: u64,
}

fn fixtures(args: FixturesArgs) -> Result<()> {
    use crate::fixtures::go;
    let stack = crate::stack::load(&crate::paths::stack_file())?;
    let mut names = args.program.clone();
    if names.is_empty() {
        names = crate::fixtures::programs(&crate::fixtures::plan(&stack)?);
    }
    let arches = if args.arch.is_empty() { stack.matrix.arch.clone() } else { args.arch.clone() };
    let scratch = tempfile::tempdir().context("creating a scratch folder")?;
    let scratch = Utf8PathBuf::from_path_buf(scratch.path().to_path_buf())
        .map_err(|p| anyhow::anyhow!("{} is not UTF-8", p.display()))?;
    let mut rows = Vec::new();
    for name in &names {
        let p = stack.program(name)?;
        go::update_wrapper(name, p)?;
        for &arch in &arches {
            let timed = |out: &Utf8PathBuf, cache: Option<&camino::Utf8Path>| -> Result<(f64, go::BuiltProgram)> {
                let t = Instant::now();
                let b = go::build(name, p, arch, out, cache)?;
                Ok((t.elapsed().as_secs_f64(), b))
            };
            let cold = if args.no_cold {
                None
            } else {
                let cache = scratch.join(format!("gocache-{name}-{arch}"));
                let (secs, _) = timed(&scratch.join(format!("cold-{name}-{arch}")), Some(&cache))?;
                std::fs::remove_dir_all(&cache).with_context(|| format!("removing {cache}"))?;
                Some(secs)
            };
            let out = scratch.join(format!("warm-{name}-{arch}"));
            let (warm, built) = timed(&out, None)?;
            let (unchanged, again) = timed(&out, None)?;
            if again.compiled {
                bail!("{name} ({arch}) was rebuilt with unchanged inputs");
            }
            let bytes: u64 = built
                .record
                .binaries
                .keys()
                .map(|b| std::fs::metadata(built.dir.join(b)).map(|m| m.len()).unwrap_or(0))
                .sum();
            rows.push(Row { name: name.clone(), arch, cold, warm, unchanged, bytes });
        }
    }
    let mut out = std::io::stdout().lock();
    let toolchain = go::toolchain(&crate::paths::root())?;
    writeln!(out, "Go programs, {toolchain}, {} cores", std::thread::available_parallelism().map_or(1, |n| n.get()))?;
    writeln!(
        out,
        "{:<20} {:<6} {:>9} {:>9} {:>10} {:>10}",
        "program", "arch", "cold s", "warm s", "unchanged", "binary MiB"
    )?;
    for Row { name, arch, cold, warm, unchanged, bytes } in &rows {
        writeln!(
            out,
            "{name:<20} {arch:<6} {:>9} {warm:>9.1} {:>8.3} s {:>10.1}",
            cold.map_or("-".to_string(), |c| format!("{c:.1}")),
            unchanged,
            *bytes as f64 / (1024.0 * 1024.0)
        )?;
    }
    let total = |f: fn(&Row) -> f64| rows.iter().map(f).sum::<f64>();
    writeln!(
        out,
        "{:<27} {:>9} {:>9.1}",
        "all",
        if args.no_cold { "-".to_string() } else { format!("{:.1}", total(|r| r.cold.unwrap_or(0.0))) },
        total(|r| r.warm)
    )?;
    Ok(())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// `min / median / max` of a non-empty set of figures.
fn spread(v: &[f64], unit: &str) -> String {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    format!("{:.1} / {:.1} / {:.1} {unit}", v[0], v[v.len() / 2], v[v.len() - 1])
}

/// `--runs` e2e runs of every scenario, one after another; every run must pass. The first one
/// provisions (fixture images, bundle) if needed: its `provision` phase says how long that took,
/// and the whole-run figure is also given without it.
fn e2e(args: E2eArgs) -> Result<()> {
    use crate::e2e::report::Outcome;
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    if let Some(why) = crate::e2e::tier_missing(args.backend) {
        bail!("--backend {}: {why}, so it has no figures; use --backend compose (the default)", args.backend);
    }
    let arch = args.arch.or_else(Arch::host).context("cannot tell this machine's arch: pass --arch")?;
    let stack = crate::stack::load(&crate::paths::stack_file())?;
    let scenarios = crate::e2e::scenario::load_dir(&crate::paths::scenarios_dir(), &[])?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let cancel = crate::e2e::cancel::Cancel::install(&rt)?;
    let cell =
        crate::stack::Cell { backend: args.backend, profile: args.profile.clone(), arch, k3s: None, kubeedge: None };
    let cfg = crate::e2e::RunConfig { idle: Some(args.idle), ..crate::e2e::RunConfig::of(cell) };
    let mut reports = Vec::new();
    for i in 1..=args.runs {
        let run_id = crate::e2e::run_id(arch);
        crate::note!("bench e2e: run {i} of {}", args.runs);
        let t = Instant::now();
        cancel.check()?;
        let report = crate::e2e::run_once(&rt, &cancel, &stack, &cfg, &run_id, &scenarios)?;
        let wall = t.elapsed().as_secs_f64();
        if report.outcome() != Outcome::Passed {
            bail!(
                "run {i} failed, so its figures are not a benchmark: see {}",
                crate::paths::shown(&crate::paths::e2e_run_dir(&run_id).join("summary.md"))
            );
        }
        reports.push((wall, report));
    }
    let emulated = reports[0].1.emulated;
    let phase = |r: &crate::e2e::report::Report, name: &str| {
        r.phases.iter().filter(|p| p.name == name).map(|p| p.seconds).sum::<f64>()
    };
    let walls: Vec<f64> = reports.iter().map(|(w, _)| *w).collect();
    let without: Vec<f64> = reports.iter().map(|(w, r)| w - phase(r, "provision")).collect();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "e2e, {} tier{}, profile {}, {arch}{}, {} runs (min / median / max)",
        args.backend,
        reports[0].1.tier.as_ref().map(|t| format!(" ({t})")).unwrap_or_default(),
        args.profile,
        if emulated { " (emulated)" } else { "" },
        args.runs
    )?;
    writeln!(out, "time      whole run                       {}", spread(&walls, "s"))?;
    let worst = without.iter().copied().fold(0.0, f64::max);
    writeln!(
        out,
        "          without provisioning            {}   target {E2E_TARGET_S:.0} s: {}",
        spread(&without, "s"),
        if worst <= E2E_TARGET_S { "met by every run" } else { "MISSED" }
    )?;
    if args.backend == Backend::Kubernetes {
        // From loading the node image to both edges joined: the cluster's own bring-up.
        let ready: Vec<f64> = reports
            .iter()
            .map(|(_, r)| crate::e2e::CLUSTER_PHASES.iter().map(|name| phase(r, name)).sum::<f64>())
            .collect();
        let worst = ready.iter().copied().fold(0.0, f64::max);
        writeln!(
            out,
            "          cluster ready, edges joined     {}   target {CLUSTER_TARGET_S:.0} s: {}",
            spread(&ready, "s"),
            if worst <= CLUSTER_TARGET_S { "met by every run" } else { "MISSED" }
        )?;
    }
    for name in reports[0].1.phases.iter().map(|p| p.name.clone()).collect::<Vec<_>>() {
        let v: Vec<f64> = reports.iter().map(|(_, r)| phase(r, &name)).collect();
        writeln!(out, "          {name:<32}{}", spread(&v, "s"))?;
    }
    for s in reports[0].1.scenarios.iter().filter(|s| s.status.is_passed()) {
        let v: Vec<f64> = reports
            .iter()
            .filter_map(|(_, r)| r.scenarios.iter().find(|x| x.name == s.name))
            .map(|x| x.duration_s)
            .collect();
        writeln!(out, "          scenario {:<23}{}", s.name, spread(&v, "s"))?;
    }
    writeln!(out, "latency   (from the fault taking effect to the receiver; bound, earliest possible)")?;
    let mut alerts: BTreeMap<String, (f64, Option<f64>, Vec<f64>)> = BTreeMap::new();
    for (_, r) in &reports {
        for l in &r.latencies {
            let e =
                alerts.entry(format!("{} in {}", l.alert, l.scenario)).or_insert((l.bound_s, l.earliest_s, Vec::new()));
            e.2.extend(l.measured_s);
        }
    }
    for (alert, (bound, earliest, measured)) in &alerts {
        if measured.is_empty() {
            writeln!(out, "          {alert}: not measured")?;
            continue;
        }
        writeln!(
            out,
            "          {alert:<52} {}   bound {bound:.1} s, earliest {}",
            spread(measured, "s"),
            earliest.map_or("n/a".to_string(), |e| format!("{e:.1} s"))
        )?;
    }
    writeln!(
        out,
        "edge      memory max / CPU p95, over nodes and runs{}",
        if emulated { " (under emulation: shown, not enforced)" } else { "" }
    )?;
    /// One edge component's figures over nodes and runs.
    #[derive(Default)]
    struct Edge {
        memory_mib: Vec<f64>,
        cpu_p95: Vec<f64>,
        memory_budget: Option<u64>,
        cpu_budget: Option<u64>,
    }
    // Idle (the window each run idled before its scenarios), then the whole run.
    let idle = format!("idle {}", args.idle);
    for (when, window) in [(idle.as_str(), true), ("whole run", false)] {
        let mut components: BTreeMap<String, Edge> = BTreeMap::new();
        for (_, r) in &reports {
            for series in &r.resources {
                let series = match (window, r.idle_s) {
                    (true, Some(w)) => series.window(w),
                    (true, None) => continue,
                    (false, _) => series.clone(),
                };
                let sum = series.summary();
                let e = components.entry(series.component.clone()).or_default();
                e.memory_budget = series.budget_memory_bytes;
                e.cpu_budget = series.budget_cpu_millicores;
                e.memory_mib.extend(sum.memory_bytes.map(|m| m.max as f64 / (1024.0 * 1024.0)));
                e.cpu_p95.extend(sum.cpu_millicores.map(|c| c.p95));
            }
        }
        writeln!(out, "          {when}:")?;
        if components.is_empty() {
            writeln!(out, "            not measured: no run sampled this window")?;
        }
        for (component, e) in &components {
            if e.memory_mib.is_empty() {
                writeln!(out, "            {component}: no samples")?;
                continue;
            }
            writeln!(
                out,
                "            {component:<20}memory {}  (budget {}), CPU {}  (budget {})",
                spread(&e.memory_mib, "MiB"),
                e.memory_budget.map_or("none".to_string(), |b| format!("{:.0} MiB", b as f64 / (1024.0 * 1024.0))),
                if e.cpu_p95.is_empty() { "n/a".to_string() } else { spread(&e.cpu_p95, "m") },
                e.cpu_budget.map_or("none".to_string(), |b| format!("{b} m")),
            )?;
        }
    }
    writeln!(out, "link      per edge, over runs: steady state (budget, both directions) and replay after a fault")?;
    let mut nodes: BTreeMap<String, (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Option<u64>)> = BTreeMap::new();
    for (_, r) in &reports {
        for link in &r.links {
            let sum = link.summary();
            let e = nodes.entry(link.node.clone()).or_default();
            e.0.extend(sum.steady.map(|s| s.sent / 1024.0));
            e.1.extend(sum.steady.map(|s| s.received / 1024.0));
            e.2.extend(sum.replay.map(|s| s.sent / 1024.0));
            e.3.extend(sum.replay.map(|s| s.received / 1024.0));
            e.4 = link.budget_bytes_per_min;
        }
    }
    if nodes.is_empty() {
        writeln!(out, "          not measured: no run recorded its links")?;
    }
    let show = |v: &[f64]| if v.is_empty() { "n/a".to_string() } else { spread(v, "KiB/min") };
    for (node, (sent, received, replay_sent, replay_received, budget)) in &nodes {
        writeln!(
            out,
            "          {node:<20}sent {}, received {}  (budget {}); replay sent {}, received {}",
            show(sent),
            show(received),
            budget.map_or("none".to_string(), |b| crate::e2e::report::per_min(b as f64)),
            show(replay_sent),
            show(replay_received),
        )?;
    }
    Ok(())
}

fn timed(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64())
}

fn bundle(args: BundleArgs) -> Result<()> {
    if args.runs == 0 {
        bail!("--runs must be at least 1");
    }
    let arch = args.arch.or_else(Arch::host).context("cannot tell this machine's arch: pass --arch")?;
    let stack = crate::stack::load(&crate::paths::stack_file())?;
    let profile = stack.profile(&args.profile)?;
    let lock_file = profile.lock_file();
    let lock = crate::lock::read(&lock_file)?;
    let Some(plock) = lock.profiles.get(&args.profile) else {
        bail!(
            "{lock_file} has no {} profile: run `cargo xtask fixtures --push` (local) or `cargo xtask lock`",
            args.profile
        )
    };
    let _registry = crate::registry::LocalRegistry::start_if_needed(profile)?;
    // The guard removes the work directory when the bench ends, whatever happens.
    let guard = tempfile::Builder::new().prefix("xtask-bench-").tempdir_in(crate::paths::target_dir())?;
    let work =
        Utf8PathBuf::from_path_buf(guard.path().to_path_buf()).map_err(|_| anyhow::anyhow!("non UTF-8 temp dir"))?;
    let opts = |cache: &str, out: &str| Options {
        profile: args.profile.clone(),
        arch,
        role: None,
        out: work.join(out),
        cache: work.join(cache),
        image_format: ImageFormat::Tar,
        image_archives: ImageArchives::PerComponent,
        archive: ArchiveFormat::None,
        allow_unpinned: false,
    };
    let quiet = |o: &Options| -> Result<crate::bundle::Built> { crate::bundle::build(&stack, Some(plock), o) };

    crate::note!("bench: {} runs each, profile {}, {arch}", args.runs, args.profile);
    let (mut cold, mut warm, mut rebuild, mut skopeo) = (vec![], vec![], vec![], vec![]);
    let mut built = None;
    for i in 0..args.runs {
        let o = opts(&format!("cache-{i}"), &format!("cold-{i}"));
        cold.push(timed(|| quiet(&o).map(|_| ()))?);
        let o = opts(&format!("cache-{i}"), &format!("warm-{i}"));
        warm.push(timed(|| quiet(&o).map(|b| built = Some(b)))?);
        rebuild.push(timed(|| quiet(&o).map(|_| ()))?);
        skopeo.push(skopeo_copy(&stack, &args.profile, plock, arch, &work.join(format!("skopeo-{i}")))?);
    }
    let built = built.context("no build ran")?;

    // Sizes: image archives vs their unique blobs.
    let mut image_bytes = 0u64;
    let mut blobs: BTreeMap<String, u64> = BTreeMap::new();
    let mut own_blobs = 0u64;
    let mut references = Vec::new();
    for (path, rec) in &built.files {
        if let Source::Image { reference, index_digest, .. } = &rec.source {
            image_bytes += rec.size;
            let cache = crate::cache::Cache::open(&work.join("cache-0"))?;
            let (_, info) =
                crate::bundle::image_tar::write_image(&cache, reference, index_digest, arch, 0, std::io::sink())
                    .with_context(|| format!("reading back {path}"))?;
            own_blobs += info.blobs.values().sum::<u64>();
            blobs.extend(info.blobs);
            references.push((reference.clone(), built.dir.join(path)));
        }
    }
    let unique: u64 = blobs.values().sum();
    // kubeprepare ships a cloud and an edge package: each, with one archive per role,
    // against the unique blobs of its own images.
    let cache = crate::cache::Cache::open(&work.join("cache-0"))?;
    let mut packages = Vec::new();
    for role in [BundleRole::Cloud, BundleRole::Edge] {
        let mut o = opts("cache-0", &format!("per-role-{}", role.as_str()));
        o.image_archives = ImageArchives::PerRole;
        o.role = Some(role);
        let b = quiet(&o)?;
        let (mut bytes, mut uniq) = (0u64, BTreeMap::new());
        for rec in b.files.values() {
            if let Source::Images { images, .. } = &rec.source {
                bytes += rec.size;
                let list: Vec<(&str, &str)> = images.iter().map(|(r, d)| (r.as_str(), d.as_str())).collect();
                let (_, infos) = crate::bundle::image_tar::write_images(&cache, &list, arch, 0, std::io::sink())?;
                infos.into_iter().for_each(|i| uniq.extend(i.blobs));
            }
        }
        packages.push((role, bytes, uniq.values().sum::<u64>()));
    }
    let total: u64 = built.files.values().map(|r| r.size).sum();
    let docker = docker_save_gzip(&references);

    let (c, w, r, s) = (median(cold), median(warm), median(rebuild), median(skopeo));
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "bench bundle: profile {}, {arch}, {} images, median of {} runs",
        args.profile,
        references.len(),
        args.runs
    )?;
    writeln!(out, "  time    cold build (empty cache)        {c:8.2} s   {:5.2}x skopeo", c / s)?;
    writeln!(out, "          warm build (cached, new output) {w:8.2} s   {:5.2}x skopeo", w / s)?;
    writeln!(out, "          rebuild, nothing changed        {r:8.2} s   {:5.2}x skopeo", r / s)?;
    writeln!(out, "          skopeo copy (same images)       {s:8.2} s")?;
    writeln!(out, "  bytes   image archives, per component   {image_bytes:>12}")?;
    for (role, bytes, uniq) in &packages {
        writeln!(
            out,
            "          {:5} package, one archive      {bytes:>12}   {:+.3}% against its {uniq} bytes of unique blobs",
            role.as_str(),
            (*bytes as f64 / *uniq as f64 - 1.0) * 100.0
        )?;
    }
    writeln!(
        out,
        "          unique blobs                    {unique:>12}   per-component archives are {:+.3}%",
        (image_bytes as f64 / unique as f64 - 1.0) * 100.0
    )?;
    writeln!(
        out,
        "          each archive's own blobs        {own_blobs:>12}   archives are {:+.3}% (tar framing)",
        (image_bytes as f64 / own_blobs as f64 - 1.0) * 100.0
    )?;
    writeln!(
        out,
        "          blobs shared between archives   {:>12}   (each archive loads alone, so shared base layers repeat)",
        own_blobs - unique
    )?;
    match docker {
        Ok(d) => writeln!(
            out,
            "          docker save | gzip              {d:>12}   per-component archives are {:+.1}%",
            (image_bytes as f64 / d as f64 - 1.0) * 100.0
        )?,
        Err(e) => writeln!(out, "          docker save | gzip              not run: {e:#}")?,
    }
    writeln!(out, "          whole bundle (all files)        {total:>12}")?;
    Ok(())
}

/// `skopeo copy` of every image of the profile (by digest, one platform) into OCI archives; seconds.
fn skopeo_copy(
    stack: &crate::stack::Stack,
    profile: &str,
    lock: &crate::lock::ProfileLock,
    arch: Arch,
    dir: &camino::Utf8Path,
) -> Result<f64> {
    let skopeo = crate::tools::SKOPEO.find()?;
    std::fs::create_dir_all(dir)?;
    let mut jobs = Vec::new();
    for c in stack.profile(profile)?.enabled() {
        for img in &c.images {
            let name = img.reference.to_string();
            let l = lock.images.get(&name).with_context(|| format!("{name} is not in the lock"))?;
            let repo = name.rsplit_once(':').map(|(r, _)| r).unwrap_or(&name);
            let tls = if crate::lock::is_loopback(&img.reference.registry) { "false" } else { "true" };
            jobs.push((format!("docker://{repo}@{}", l.digest), dir.join(format!("{}.tar", c.name)), tls));
        }
    }
    timed(|| {
        for (src, dst, tls) in &jobs {
            let status = std::process::Command::new(skopeo.as_str())
                .args(["copy", "--quiet", "--override-arch", arch.as_str(), "--override-os", "linux"])
                .arg(format!("--src-tls-verify={tls}"))
                .arg(src)
                .arg(format!("oci-archive:{dst}"))
                .status()?;
            if !status.success() {
                bail!("skopeo copy {src} failed");
            }
        }
        Ok(())
    })
}

/// Load the archives into Docker, `docker save` them all and gzip (level 6): its bytes.
fn docker_save_gzip(images: &[(String, Utf8PathBuf)]) -> Result<u64> {
    let ok = std::process::Command::new("docker").args(["info"]).output().is_ok_and(|o| o.status.success());
    if !ok {
        bail!("no Docker engine answers (start dockerd)");
    }
    for (_, tar) in images {
        let o = std::process::Command::new("docker").args(["load", "-i", tar.as_str()]).output()?;
        if !o.status.success() {
            bail!("docker load {tar}: {}", String::from_utf8_lossy(&o.stderr));
        }
    }
    let mut save = std::process::Command::new("docker")
        .arg("save")
        .args(images.iter().map(|(r, _)| r))
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let mut stdout = save.stdout.take().context("docker save has no stdout")?;
    let counter = Counter(0);
    let mut gz = flate2::write::GzEncoder::new(counter, flate2::Compression::new(6));
    std::io::copy(&mut stdout, &mut gz)?;
    let counter = gz.finish()?;
    if !save.wait()?.success() {
        bail!("docker save failed");
    }
    let _ = std::process::Command::new("docker").arg("rmi").args(images.iter().map(|(r, _)| r)).output();
    Ok(counter.0)
}

struct Counter(u64);

impl Write for Counter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
