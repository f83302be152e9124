//! What `cargo xtask e2e` needs before it starts, provisioned when it can be (root on
//! Debian/Ubuntu), else named with the command that provides it.

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{Shell, cmd};

use crate::stack::{Arch, Stack};

fn is_root() -> bool {
    std::fs::metadata("/proc/self").map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0).unwrap_or(false)
}

fn is_debian() -> bool {
    std::path::Path::new("/etc/debian_version").exists()
}

/// Whether a program is on PATH.
fn have(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

fn apt_install(sh: &Shell, packages: &[&str]) -> Result<()> {
    crate::note!("e2e: installing {} (apt-get)", packages.join(" "));
    cmd!(sh, "apt-get update -qq").env("DEBIAN_FRONTEND", "noninteractive").quiet().run()?;
    if packages.is_empty() {
        return Ok(());
    }
    cmd!(sh, "apt-get install -y -qq --no-install-recommends {packages...}")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .quiet()
        .run()
        .with_context(|| format!("apt-get install {}", packages.join(" ")))
}

/// A Docker engine answering on the default socket: started (and installed) when we are root
/// on Debian/Ubuntu, else an error saying how to get one.
pub fn docker(rt: &tokio::runtime::Runtime) -> Result<()> {
    if let Ok(engine) = rt.block_on(super::engine::Engine::connect()) {
        return rt.block_on(engine.check_local());
    }
    if !(is_root() && is_debian()) || std::env::var_os("DOCKER_HOST").is_some() {
        bail!("no Docker engine answers: {}", super::engine::DOCKER_FIX);
    }
    let sh = Shell::new()?;
    if !have("dockerd") {
        apt_install(&sh, &["docker.io"])?;
    }
    let log = crate::paths::target_dir().join("dockerd.log");
    std::fs::create_dir_all(crate::paths::target_dir())?;
    crate::note!("e2e: starting dockerd (log: {log})");
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

/// Whether arm64 binaries run here: natively, or through a registered qemu-aarch64.
pub fn arch(arch: Arch) -> Result<bool> {
    if Some(arch) == Arch::host() {
        return Ok(false);
    }
    if arch != Arch::Arm64 {
        bail!("{arch} can only run on a {arch} host (emulation is set up for arm64 only)");
    }
    let registered = std::path::Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64");
    let enabled = |p: &std::path::Path| std::fs::read_to_string(p).is_ok_and(|s| s.starts_with("enabled"));
    if enabled(registered) {
        return Ok(true);
    }
    let fix = "apt-get install qemu-user-static binfmt-support; mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc; update-binfmts --enable qemu-aarch64";
    if !(is_root() && is_debian()) {
        bail!("arm64 needs qemu registered with binfmt_misc (as root: {fix})");
    }
    let sh = Shell::new()?;
    if !have("qemu-aarch64-static") || !have("update-binfmts") {
        apt_install(&sh, &["qemu-user-static", "binfmt-support"])?;
    }
    if !std::path::Path::new("/proc/sys/fs/binfmt_misc/register").exists() {
        cmd!(sh, "mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc").quiet().run()?;
    }
    cmd!(sh, "update-binfmts --enable qemu-aarch64").quiet().run()?;
    if !enabled(registered) {
        bail!("qemu-aarch64 is still not registered with binfmt_misc; run: {fix}");
    }
    Ok(true)
}

/// What `cargo xtask fixtures --push` needs: skopeo and docker-registry, and dpkg set up for every
/// arch of the matrix (the fixtures are built from each arch's packages). Installed when we are
/// root on Debian/Ubuntu, else an error with the commands.
pub fn fixture_tools(arches: &[Arch]) -> Result<()> {
    let packages: Vec<&str> = [crate::tools::SKOPEO, crate::registry::DOCKER_REGISTRY]
        .into_iter()
        .filter(|t| t.find().is_err())
        .map(|t| t.package)
        .collect();
    let foreign = crate::fixtures::deb::missing_arches(arches)?;
    if packages.is_empty() && foreign.is_empty() {
        return Ok(());
    }
    let sh = Shell::new()?;
    if !(is_root() && is_debian()) {
        let mut fix: Vec<String> = foreign.iter().map(|a| format!("dpkg --add-architecture {a}")).collect();
        fix.push("apt-get update".into());
        if !packages.is_empty() {
            fix.push(format!("apt-get install -y {}", packages.join(" ")));
        }
        bail!("the fixture images need more than this machine has; as root: {}", fix.join(" && "));
    }
    for a in &foreign {
        crate::note!("e2e: adding dpkg's {a} architecture (the fixtures are built from {a} packages too)");
        let a = a.as_str();
        cmd!(sh, "dpkg --add-architecture {a}").quiet().run()?;
    }
    apt_install(&sh, &packages)
}

/// The bundle for `profile` and `arch`, built (and, for the local profile, its fixture images
/// assembled and locked) when missing or stale. Must run outside an async runtime.
pub fn bundle(stack: &Stack, profile: &str, arch: Arch) -> Result<Utf8PathBuf> {
    let p = stack.profile(profile)?;
    let lock_file = p.lock_file();
    if profile == "local" && !lock_file.exists() {
        crate::note!(
            "e2e: no fixture images yet ({lock_file} is missing): assembling them (`cargo xtask fixtures --push`)"
        );
        crate::fixtures::run(crate::fixtures::Args { out: None, dry_run: false, push: true })?;
    }
    let lock = crate::lock::read(&lock_file)?;
    let opts = crate::bundle::Options {
        profile: profile.to_string(),
        arch,
        role: None,
        out: crate::paths::target_dir().join("bundle"),
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
