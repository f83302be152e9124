//! What `cargo xtask e2e` needs before it starts, provisioned when it can be (root on
//! Debian/Ubuntu), else named with the command that provides it.

use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{Shell, cmd};

use crate::stack::{Arch, Stack};

/// What this machine has, as far as a run cares: probed by [`Machine::probe`], made by hand in tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Machine {
    pub root: bool,
    /// Debian or Ubuntu (`/etc/debian_version`): apt and dpkg are there.
    pub debian: bool,
    pub host: Option<Arch>,
    /// A Docker engine answers on the default socket.
    pub docker_answers: bool,
    /// `DOCKER_HOST` is set: the engine is someone else's to start.
    pub docker_host_set: bool,
    /// Programs found on PATH, of those [`plan`] asks about.
    pub programs: BTreeSet<String>,
    /// Architectures dpkg installs and downloads packages for (native and foreign).
    pub dpkg_arches: BTreeSet<Arch>,
    /// Architectures apt has package lists for (`/var/lib/apt/lists/*binary-<arch>_Packages*`).
    pub apt_lists: BTreeSet<Arch>,
    /// binfmt_misc is mounted.
    pub binfmt_mounted: bool,
    /// qemu-aarch64 is registered with binfmt_misc and enabled.
    pub qemu_aarch64: bool,
}

/// Programs [`plan`] looks for, each with the Debian package that ships it.
const PROGRAMS: [(&str, &str); 8] = [
    ("dockerd", "docker.io"),
    // Each edge's NAT and link: iptables in the node's network namespace (`e2e::compose::link`).
    ("iptables", "iptables"),
    ("nsenter", "util-linux"),
    ("qemu-aarch64-static", "qemu-user-static"),
    ("update-binfmts", "binfmt-support"),
    (crate::tools::SKOPEO.binary, crate::tools::SKOPEO.package),
    (crate::registry::DOCKER_REGISTRY.binary, crate::registry::DOCKER_REGISTRY.package),
    // The kubernetes tier's node image userland (`fixtures::node`).
    (crate::tools::MMDEBSTRAP.binary, crate::tools::MMDEBSTRAP.package),
];

/// The Go toolchain the local profile's programs are built with (no Debian release ships one new
/// enough: it is installed from go.dev).
pub const GO: &str = "go";

const QEMU_AARCH64: &str = "/proc/sys/fs/binfmt_misc/qemu-aarch64";
const BINFMT_REGISTER: &str = "/proc/sys/fs/binfmt_misc/register";
const APT_LISTS: &str = "/var/lib/apt/lists";

impl Machine {
    /// This machine, now.
    pub fn probe(rt: &tokio::runtime::Runtime) -> Machine {
        let root = std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
        let debian = Path::new("/etc/debian_version").exists();
        let programs = PROGRAMS
            .iter()
            .map(|(p, _)| *p)
            .chain([GO])
            .filter(|p| crate::tools::find_on_path(p).is_some())
            .map(String::from)
            .collect();
        // dpkg's own arches, read the way the fixtures read them (no dpkg: none).
        let dpkg_arches = crate::fixtures::deb::missing_arches(&Arch::ALL)
            .map(|missing| Arch::ALL.into_iter().filter(|a| !missing.contains(a)).collect())
            .unwrap_or_default();
        Machine {
            root,
            debian,
            host: Arch::host(),
            docker_answers: rt.block_on(super::engine::Engine::connect()).is_ok(),
            docker_host_set: std::env::var_os("DOCKER_HOST").is_some(),
            programs,
            dpkg_arches,
            apt_lists: Machine::probe_apt_lists(),
            binfmt_mounted: Path::new(BINFMT_REGISTER).exists(),
            qemu_aarch64: qemu_enabled(),
        }
    }

    fn probe_apt_lists() -> BTreeSet<Arch> {
        let lists: Vec<String> = std::fs::read_dir(APT_LISTS)
            .map(|d| d.filter_map(|e| e.ok()).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        Arch::ALL.into_iter().filter(|a| lists.iter().any(|n| n.contains(&format!("binary-{a}_Packages")))).collect()
    }

    fn has(&self, program: &str) -> bool {
        self.programs.contains(program)
    }
}

fn qemu_enabled() -> bool {
    std::fs::read_to_string(QEMU_AARCH64).is_ok_and(|s| s.starts_with("enabled"))
}

/// What a run needs of the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    /// The arch the run's containers are: arm64 on an amd64 host runs under qemu.
    pub arch: Arch,
    /// The arches whose fixture images must be assembled from Debian packages first (empty when
    /// they are already built or the profile has none).
    pub fixtures_for: Vec<Arch>,
    /// The kubernetes tier's node image is assembled (Go and mmdebstrap).
    pub node_image: bool,
}

/// One provisioning step: what [`execute`] runs, and what a user who is not root is told to run.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    AddDpkgArch(Arch),
    AptUpdate,
    AptInstall(Vec<&'static str>),
    MountBinfmt,
    EnableQemuAarch64,
    StartDockerd,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::AddDpkgArch(a) => write!(f, "dpkg --add-architecture {a}"),
            Step::AptUpdate => write!(f, "apt-get update"),
            Step::AptInstall(p) => write!(f, "apt-get install -y --no-install-recommends {}", p.join(" ")),
            Step::MountBinfmt => write!(f, "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc"),
            Step::EnableQemuAarch64 => write!(f, "update-binfmts --enable qemu-aarch64"),
            Step::StartDockerd => write!(f, "dockerd >target/dockerd.log 2>&1 &"),
        }
    }
}

/// The steps that give `machine` what `need` asks for, in the order they must run: pure, so the
/// plan for a bare machine is tested as data. `Err` when the machine cannot be provisioned by us
/// (not root, not Debian/Ubuntu, an engine elsewhere, an arch no emulator here runs), naming the
/// commands that would provision it.
pub fn plan(machine: &Machine, need: &Need) -> Result<Vec<Step>> {
    let mut packages: Vec<&'static str> = Vec::new();
    let want = |program: &str, packages: &mut Vec<&'static str>| {
        if !machine.has(program) {
            let (_, package) = PROGRAMS.iter().find(|(p, _)| *p == program).expect("a program of PROGRAMS");
            if !packages.contains(package) {
                packages.push(package);
            }
        }
    };
    // After apt: binfmt for qemu, then the engine.
    let mut late = Vec::new();
    let emulated = Some(need.arch) != machine.host;
    if emulated && need.arch != Arch::Arm64 {
        bail!("{} can only run on a {} host (emulation is set up for arm64 only)", need.arch, need.arch);
    }
    if emulated && !machine.qemu_aarch64 {
        want("qemu-aarch64-static", &mut packages);
        want("update-binfmts", &mut packages);
        if !machine.binfmt_mounted {
            late.push(Step::MountBinfmt);
        }
        late.push(Step::EnableQemuAarch64);
    }
    if !machine.docker_answers {
        if machine.docker_host_set {
            bail!("DOCKER_HOST is set and no engine answers there: {}", super::engine::DOCKER_FIX);
        }
        want("dockerd", &mut packages);
        late.push(Step::StartDockerd);
    }
    let mut steps = Vec::new();
    let mut update = !packages.is_empty();
    if need.node_image {
        want(crate::tools::MMDEBSTRAP.binary, &mut packages);
    }
    if !need.fixtures_for.is_empty() || need.node_image {
        if !machine.has(GO) {
            bail!(
                "the local profile's programs are built from their Go modules, and `go` is not on PATH: install \
                 Go 1.26 or later from https://go.dev/dl (Debian's golang-go is too old), then run again"
            );
        }
        want(crate::tools::SKOPEO.binary, &mut packages);
        want(crate::registry::DOCKER_REGISTRY.binary, &mut packages);
        update |= !packages.is_empty();
        for a in &need.fixtures_for {
            if !machine.dpkg_arches.contains(a) {
                steps.push(Step::AddDpkgArch(*a));
            }
            update |= !machine.dpkg_arches.contains(a) || !machine.apt_lists.contains(a);
        }
    }
    if update {
        steps.push(Step::AptUpdate);
    }
    if !packages.is_empty() {
        steps.push(Step::AptInstall(packages));
    }
    steps.extend(late);
    if !steps.is_empty() && !(machine.root && machine.debian) {
        bail!(
            "this machine lacks what the e2e needs{}; as root on Debian/Ubuntu run: {} (`cargo xtask e2e` run as root does this itself)",
            if machine.debian { "" } else { " (and it is not Debian/Ubuntu, where the harness can install it)" },
            steps.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(" && ")
        );
    }
    Ok(steps)
}

/// Run `steps` in order, each announced with its number and timed; checks afterwards that each did
/// what it was for.
pub fn execute(rt: &tokio::runtime::Runtime, steps: &[Step], need: &Need) -> Result<()> {
    let sh = Shell::new()?;
    for (i, step) in steps.iter().enumerate() {
        let t = Instant::now();
        crate::note!("e2e: provision {}/{}: {step}", i + 1, steps.len());
        match step {
            Step::AddDpkgArch(a) => {
                let a = a.as_str();
                cmd!(sh, "dpkg --add-architecture {a}").quiet().run()?;
            }
            Step::AptUpdate => apt(&sh, &["update", "-qq"]).context("apt-get update")?,
            Step::AptInstall(p) => {
                let mut args = vec!["install", "-y", "-qq", "--no-install-recommends"];
                args.extend(p.iter().copied());
                apt(&sh, &args).with_context(|| format!("apt-get install {}", p.join(" ")))?;
            }
            Step::MountBinfmt => {
                cmd!(sh, "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc").quiet().run()?;
            }
            Step::EnableQemuAarch64 => {
                cmd!(sh, "update-binfmts --enable qemu-aarch64").quiet().run()?;
                if !qemu_enabled() {
                    bail!(
                        "qemu-aarch64 is still not registered with binfmt_misc after `{step}`; see update-binfmts --display"
                    );
                }
            }
            Step::StartDockerd => start_dockerd(rt)?,
        }
        crate::note!("e2e: provision {}/{}: done in {:.1} s", i + 1, steps.len(), t.elapsed().as_secs_f64());
    }
    if steps.contains(&Step::AptUpdate) {
        let lists = Machine::probe_apt_lists();
        if let Some(a) = need.fixtures_for.iter().find(|a| !lists.contains(a)) {
            bail!(
                "apt has no {a} package lists after `apt-get update`: the fixture images are assembled from {a} packages; \
                 add an apt source that serves {a} (on Ubuntu, {a} lives in the ports archive: a sources entry with \
                 `[arch={a}]`), then `apt-get update`"
            );
        }
    }
    Ok(())
}

fn apt(sh: &Shell, args: &[&str]) -> Result<()> {
    cmd!(sh, "apt-get {args...}").env("DEBIAN_FRONTEND", "noninteractive").quiet().run()?;
    Ok(())
}

fn start_dockerd(rt: &tokio::runtime::Runtime) -> Result<()> {
    let log = crate::paths::dockerd_log();
    std::fs::create_dir_all(crate::paths::target_dir())?;
    let file = std::fs::File::create(&log).with_context(|| format!("creating {log}"))?;
    // dockerd outlives this run, as a system service would.
    std::process::Command::new("dockerd")
        .stdout(file.try_clone()?)
        .stderr(file)
        .stdin(std::process::Stdio::null())
        .spawn()
        .context("starting dockerd")?;
    rt.block_on(super::engine::wait_for("dockerd to answer", std::time::Duration::from_secs(60), || async {
        Ok(super::engine::Engine::connect().await.ok().map(|_| ()))
    }))
    .with_context(|| format!("dockerd did not come up; see {log}"))
}

/// What a run of `profile` on `arch` of `backend` needs of this machine.
pub fn need(stack: &Stack, backend: crate::stack::Backend, profile: &str, arch: Arch) -> Result<Need> {
    // A lock that cannot be checked (no Go to ask its version) is stale: the plan then says what is missing.
    let fixtures_for = if profile == "local" && !crate::fixtures::lock_is_current(stack).unwrap_or(false) {
        stack.matrix.arch.clone()
    } else {
        Vec::new()
    };
    Ok(Need { arch, fixtures_for, node_image: backend == crate::stack::Backend::Kubernetes })
}

/// Everything a run of `profile` on `arch` needs (Docker engine, qemu for arm64 on amd64, what the
/// fixture images are assembled with), provisioned when we are root on Debian/Ubuntu, else an
/// error naming the commands. Returns whether the run is emulated.
pub fn machine(rt: &tokio::runtime::Runtime, stack: &Stack, cell: &crate::stack::Cell) -> Result<bool> {
    let (profile, arch) = (cell.profile.as_str(), cell.arch);
    let need = need(stack, cell.backend, profile, arch)?;
    let steps = plan(&Machine::probe(rt), &need)?;
    execute(rt, &steps, &need)?;
    rt.block_on(async { super::engine::Engine::connect().await?.check_local().await })?;
    Ok(Some(arch) != Arch::host())
}

/// A Docker engine answering on the default socket (for `--sweep`): started, and installed, when
/// we are root on Debian/Ubuntu.
pub fn docker(rt: &tokio::runtime::Runtime) -> Result<()> {
    let host = Arch::host().context("this machine is neither amd64 nor arm64")?;
    let need = Need { arch: host, fixtures_for: Vec::new(), node_image: false };
    let steps = plan(&Machine::probe(rt), &need)?;
    execute(rt, &steps, &need)
}

/// The kubernetes tier's node image for `arch` (every node's: this machine's), assembled from its
/// Go modules (`cargo xtask fixtures --node`; fast once the Go caches hold it): `linux/<arch>` →
/// the archive to load. Must run outside an async runtime.
pub fn node_image(stack: &Stack, arch: Arch) -> Result<std::collections::BTreeMap<String, Utf8PathBuf>> {
    crate::note!("e2e: the node image (`cargo xtask fixtures --node`), for {arch}");
    let built = crate::fixtures::node::build(stack, &[arch], &crate::paths::node_image_dir())?;
    Ok(built.archives)
}

/// The bundle for `profile` and `arch`, built (and, for the local profile, its fixture images
/// assembled and locked) when missing or stale. Must run outside an async runtime.
pub fn bundle(stack: &Stack, profile: &str, arch: Arch) -> Result<Utf8PathBuf> {
    let p = stack.profile(profile)?;
    let lock_file = p.lock_file();
    if profile == "local" && !crate::fixtures::lock_is_current(stack)? {
        crate::note!(
            "e2e: the fixture images are missing or stale ({lock_file} does not pin what stack.toml builds): \
             building them (`cargo xtask fixtures --push`)"
        );
        crate::fixtures::run(crate::fixtures::Args {
            out: None,
            dry_run: false,
            push: true,
            node: false,
            arch: Vec::new(),
        })?;
    }
    let lock = crate::lock::read(&lock_file)?;
    let opts = crate::bundle::Options {
        profile: profile.to_string(),
        arch,
        role: None,
        out: crate::paths::bundle_out_dir(),
        cache: crate::cache::default_root(),
        image_format: crate::bundle::ImageFormat::Tar,
        image_archives: crate::bundle::ImageArchives::PerComponent,
        archive: crate::bundle::ArchiveFormat::None,
        allow_unpinned: false,
    };
    let built = crate::bundle::build(stack, lock.profiles.get(profile), &opts).with_context(|| {
        format!(
            "building the {profile} bundle for {arch} (the e2e runs only pinned images){}",
            if profile == "local" {
                "; if the fixture images are stale, run `cargo xtask fixtures --push`".to_string()
            } else {
                format!(
                    "; pin them with `cargo xtask lock --profile {profile}` on a machine that reaches the registries \
                     (the cache the bundle fills then serves every later run offline)"
                )
            }
        )
    })?;
    Ok(built.dir)
}

/// A bundle built elsewhere (`--bundle DIR`): verified offline (checksums, digests, every
/// referenced image present) and checked to be for `profile` and `arch`.
pub fn given_bundle(dir: &Utf8Path, profile: &str, arch: Arch) -> Result<Utf8PathBuf> {
    if !dir.is_dir() {
        bail!("--bundle {dir}: not a folder; pass the unpacked bundle folder (`tar xf` an archive first)");
    }
    let files = crate::bundle::verify::load(dir)?;
    let verdict = crate::bundle::verify::check(&files);
    if !verdict.problems.is_empty() {
        bail!(
            "--bundle {dir} does not verify:\n  {}\n  rebuild it with `cargo xtask bundle`",
            verdict.problems.join("\n  ")
        );
    }
    let json: serde_json::Value = files
        .get("bundle.json")
        .map(serde_json::from_slice)
        .transpose()
        .with_context(|| format!("{dir}/bundle.json is not JSON"))?
        .with_context(|| format!("{dir} has no bundle.json"))?;
    for (field, want) in [("profile", profile.to_string()), ("arch", arch.to_string())] {
        let got = json[field].as_str().unwrap_or_default();
        if got != want {
            bail!(
                "--bundle {dir} is a bundle for {field} {got:?}, not {want:?}: pass the matching --{field}, or that bundle"
            );
        }
    }
    if let Some(role) = json["role"].as_str() {
        bail!("--bundle {dir} holds only the {role} role; the e2e runs cloud and edge: build it without --role");
    }
    Ok(dir.to_path_buf())
}
