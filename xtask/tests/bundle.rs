//! Bundles end to end, with the real tools: images built from Debian packages,
//! pushed to a real registry on loopback, locked, fetched into a cache and
//! bundled by the `xtask` binary itself (`--stack` points it at a copy of
//! stack.toml whose local registry is this test's).
//!
//! Each test starts its own registry on a free port; the fixture images are
//! built once per test binary.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use xtask::fixtures::{self, Built};
use xtask::registry::LocalRegistry;
use xtask::stack::{self, Arch, Role};
use xtask::{lock, paths};

const FIXTURE_REGISTRY: &str = "127.0.0.1:5000";

fn utf8(p: &std::path::Path) -> Utf8PathBuf {
    Utf8PathBuf::from_path_buf(p.to_path_buf()).unwrap()
}

/// The local profile's images for both arches, built once.
fn images() -> &'static Built {
    static BUILT: OnceLock<Built> = OnceLock::new();
    BUILT.get_or_init(|| {
        let stack = stack::load(&paths::stack_file()).unwrap();
        fixtures::require_arches(&[Arch::Amd64, Arch::Arm64]).unwrap_or_else(|e| panic!("{e:#}"));
        let dirs = fixtures::Dirs {
            oci: paths::target_dir().join("tmp/tests/bundle-fixtures"),
            ..fixtures::Dirs::default_under_target()
        };
        fixtures::build(&stack, &[Arch::Amd64, Arch::Arm64], &dirs).unwrap_or_else(|e| panic!("{e:#}"))
    })
}

/// How many images the local profile has (of one role).
fn local_images(role: Option<Role>) -> usize {
    let stack = stack::load(&paths::stack_file()).unwrap();
    let profile = stack.profile("local").unwrap();
    profile.enabled().filter(|c| role.is_none_or(|r| c.role == r)).map(|c| c.images.len()).sum()
}

/// A project of our own: a stack file whose local registry is ours, pushed and locked.
struct Site {
    _tmp: tempfile::TempDir,
    dir: Utf8PathBuf,
    addr: String,
    registry: LocalRegistry,
}

impl Site {
    fn new() -> Site {
        let tmp = tempfile::tempdir().unwrap();
        let dir = utf8(tmp.path());
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let addr = format!("127.0.0.1:{port}");
        let text = std::fs::read_to_string(paths::stack_file()).unwrap();
        assert!(text.contains(FIXTURE_REGISTRY) && text.contains("lock = \"target/fixtures/local.lock\""));
        let text = text.replace(FIXTURE_REGISTRY, &addr).replace("target/fixtures/local.lock", "local.lock");
        std::fs::write(dir.join("stack.toml"), text).unwrap();
        let registry = LocalRegistry::start(&addr, &dir.join("registry")).unwrap_or_else(|e| panic!("{e:#}"));
        for (reference, img) in &images().images {
            let tag = reference.rsplit_once(':').unwrap().1;
            registry.push_layout(&img.layout, tag, &reference.replace(FIXTURE_REGISTRY, &addr)).unwrap();
        }
        let site = Site { _tmp: tmp, dir, addr, registry };
        site.relock();
        site
    }

    fn stack(&self) -> stack::Stack {
        stack::load(&self.dir.join("stack.toml")).unwrap()
    }

    /// Resolve the local profile through the registry and write `local.lock`.
    fn relock(&self) {
        let stack = self.stack();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let resolved = rt.block_on(lock::resolve(stack.profile("local").unwrap())).unwrap_or_else(|e| panic!("{e:#}"));
        let mut l = lock::Lock::default();
        l.profiles.insert("local".into(), resolved);
        lock::write(&self.dir.join("local.lock"), &l).unwrap();
    }

    /// Run `xtask --stack <ours> <args>` under `umask`.
    fn xtask(&self, umask: &str, args: &[&str]) -> Output {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(format!("umask {umask}; exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_xtask"))
            .arg("--stack")
            .arg(self.dir.join("stack.toml").as_str())
            .args(args)
            .env_remove("SOURCE_DATE_EPOCH")
            .env_remove("XTASK_CACHE");
        cmd.output().unwrap()
    }

    fn bundle(&self, umask: &str, arch: &str, cache: &Utf8Path, out: &Utf8Path, extra: &[&str]) -> Output {
        let mut args = vec!["bundle", "--arch", arch, "--cache", cache.as_str(), "--out", out.as_str()];
        args.extend_from_slice(extra);
        let o = self.xtask(umask, &args);
        assert!(o.status.success(), "bundle {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
        o
    }
}

/// sha256 of every file under `dir`, by relative path.
fn hashes(dir: &Utf8Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for entry in walk(dir) {
        out.insert(entry.strip_prefix(dir).unwrap().to_string(), xtask::cache::hash_file(&entry).unwrap().0);
    }
    out
}

fn walk(dir: &Utf8Path) -> Vec<Utf8PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = utf8(&e.unwrap().path());
            if p.is_dir() { stack.push(p) } else { out.push(p) }
        }
    }
    out.sort();
    out
}

fn verify(path: &Utf8Path) -> Vec<String> {
    xtask::bundle::verify::verify(&xtask::bundle::verify::load(path).unwrap())
}

#[test]
fn two_builds_are_identical_whatever_the_cache_state_file_order_umask_or_time() {
    let site = Site::new();
    let t = tempfile::tempdir().unwrap();
    let root = utf8(t.path());
    let name = "observability-local-amd64";

    // A: cold cache, umask 022.
    site.bundle("022", "amd64", &root.join("cache-a"), &root.join("out-a"), &["--archive", "tar.gz"]);
    // B: a warm cache filled in the reverse order, umask 077, a second later, from another directory.
    let blobs_a = root.join("cache-a/blobs/sha256");
    let blobs_b = root.join("cache-b/blobs/sha256");
    std::fs::create_dir_all(&blobs_b).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&blobs_a).unwrap().map(|e| e.unwrap().file_name()).collect();
    names.sort();
    for n in names.iter().rev() {
        std::fs::copy(blobs_a.join(n.to_str().unwrap()), blobs_b.join(n.to_str().unwrap())).unwrap();
    }
    std::thread::sleep(Duration::from_millis(1100));
    site.bundle("077", "amd64", &root.join("cache-b"), &root.join("out-b"), &["--archive", "tar.gz"]);
    // C: cold cache again, umask 002, into an output that already holds an older, different bundle.
    site.bundle("002", "amd64", &root.join("cache-c"), &root.join("out-c"), &["--image-format", "tar.zst"]);
    site.bundle("002", "amd64", &root.join("cache-c"), &root.join("out-c"), &["--archive", "tar.gz"]);

    let top = std::fs::read_dir(root.join("out-a")).unwrap().count();
    assert_eq!(top, 2, "the folder and its archive, nothing else");
    let archive = |out: &str| xtask::cache::hash_file(&root.join(out).join(format!("{name}.tar.gz"))).unwrap().0;
    let files = hashes(&root.join("out-a").join(name));
    assert!(files.len() > 10 && files.keys().any(|p| p.ends_with(".tar")), "{files:?}");
    for other in ["out-b", "out-c"] {
        let dir = root.join(other);
        assert_eq!(hashes(&dir.join(name)), files, "{other}: a bundle file differs");
        assert_eq!(archive(other), archive("out-a"), "{other}: the archive differs");
    }
    // coreutils accepts SHA256SUMS, and the offline verification passes on both forms.
    let check = Command::new("sha256sum")
        .args(["--check", "--quiet", "SHA256SUMS"])
        .current_dir(root.join("out-a").join(name))
        .output()
        .unwrap();
    assert!(check.status.success(), "sha256sum -c: {}", String::from_utf8_lossy(&check.stdout));
    assert_eq!(verify(&root.join("out-a").join(name)), Vec::<String>::new());
    assert_eq!(verify(&root.join("out-a").join(format!("{name}.tar.gz"))), Vec::<String>::new());
}

/// Give the probe image a new index (same manifests, one more annotation) under the same tag.
fn republish_probe(site: &Site, work: &Utf8Path) {
    let (reference, img) = images().images.iter().find(|(r, _)| r.contains("/probe:")).unwrap();
    let layout = work.join("probe-v2");
    let status = Command::new("cp").args(["-a", img.layout.as_str(), layout.as_str()]).status().unwrap();
    assert!(status.success());
    let mut top: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let old = top["manifests"][0]["digest"].as_str().unwrap().to_string();
    let blob = |d: &str| layout.join("blobs/sha256").join(d.trim_start_matches("sha256:"));
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(blob(&old)).unwrap()).unwrap();
    index["annotations"] = serde_json::json!({ "org.opencontainers.image.revision": "2" });
    let bytes = serde_json::to_vec(&index).unwrap();
    let new = xtask::oci::sha256(&bytes);
    std::fs::write(blob(&new), &bytes).unwrap();
    top["manifests"][0]["digest"] = new.clone().into();
    top["manifests"][0]["size"] = bytes.len().into();
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let tag = reference.rsplit_once(':').unwrap().1;
    site.registry.push_layout(&layout, tag, &reference.replace(FIXTURE_REGISTRY, &site.addr)).unwrap();
    site.relock();
}

#[test]
fn rebuilding_after_one_component_changes_rewrites_only_its_image_file() {
    let site = Site::new();
    let t = tempfile::tempdir().unwrap();
    let root = utf8(t.path());
    let (cache, out) = (root.join("cache"), root.join("out"));
    let dir = out.join("observability-local-arm64");
    site.bundle("022", "arm64", &cache, &out, &[]);
    let inodes = |dir: &Utf8Path| -> BTreeMap<String, u64> {
        walk(&dir.join("images"))
            .into_iter()
            .map(|p| (p.strip_prefix(dir).unwrap().to_string(), std::fs::metadata(&p).unwrap().ino()))
            .collect()
    };
    let before = inodes(&dir);
    assert_eq!(before.len(), local_images(None), "{before:?}");

    // Nothing changed: nothing is rewritten.
    let again = site.bundle("022", "arm64", &cache, &out, &[]);
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("(0 written"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );
    assert_eq!(inodes(&dir), before);

    republish_probe(&site, &root);
    site.bundle("022", "arm64", &cache, &out, &[]);
    let after = inodes(&dir);
    let rewritten: Vec<&String> = after.iter().filter(|(p, ino)| before.get(*p) != Some(ino)).map(|(p, _)| p).collect();
    assert_eq!(rewritten, ["images/edge/edge-probe.tar"], "only the changed component's image may be rewritten");
    assert_eq!(verify(&dir), Vec::<String>::new());
}

#[test]
fn a_killed_build_leaves_no_partial_file_in_the_output() {
    let site = Site::new();
    let t = tempfile::tempdir().unwrap();
    let root = utf8(t.path());
    let (cache, out) = (root.join("cache"), root.join("out"));
    let name = "observability-local-amd64";
    let exe = env!("CARGO_BIN_EXE_xtask");
    let stack_file = site.dir.join("stack.toml");
    let start = |format: &str| {
        Command::new(exe)
            .args(["--stack", stack_file.as_str(), "bundle", "--arch", "amd64", "--archive", "tar.gz"])
            .args(["--image-format", format, "--cache", cache.as_str(), "--out", out.as_str()])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // Whatever is in the output is complete: a folder and archive that verify, nothing else.
    let check = |when: &str| {
        if !out.exists() {
            return;
        }
        for e in std::fs::read_dir(&out).unwrap() {
            let p = utf8(&e.unwrap().path());
            let file = p.file_name().unwrap();
            assert!(
                file == name || file == format!("{name}.tar.gz"),
                "{when}: unexpected {p} in the output (a partial file?)"
            );
            assert_eq!(verify(&p), Vec::<String>::new(), "{when}: {p} is not a complete bundle");
        }
    };
    // Kill at many points of a cold build (fetching, writing images, archiving), then of rebuilds.
    let mut killed = 0;
    for (i, ms) in [150u64, 400, 800, 1200, 1600, 2000, 2500, 3000, 4000].iter().enumerate() {
        let format = if i % 2 == 0 { "tar" } else { "tar.zst" };
        let mut child = start(format);
        std::thread::sleep(Duration::from_millis(*ms));
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap();
            killed += 1;
        }
        child.wait().unwrap();
        check(&format!("after a kill at {ms} ms"));
    }
    assert!(killed >= 3, "the build finished before most kills ({killed} kills): kill earlier");
    // The cache never holds a partial blob outside partial/.
    for blob in walk(&cache.join("blobs")) {
        let digest = format!("sha256:{}", blob.file_name().unwrap());
        assert_eq!(xtask::cache::hash_file(&blob).unwrap().0, digest, "{blob} is partial or corrupt");
    }
    let last = Command::new(exe)
        .args(["--stack", stack_file.as_str(), "bundle", "--arch", "amd64", "--archive", "tar.gz"])
        .args(["--cache", cache.as_str(), "--out", out.as_str()])
        .output()
        .unwrap();
    assert!(last.status.success(), "the build after the kills failed: {}", String::from_utf8_lossy(&last.stderr));
    check("after a complete build");
    assert!(out.join(name).is_dir());
}

#[test]
fn the_edge_bundle_carries_only_what_edge_nodes_need() {
    let site = Site::new();
    let t = tempfile::tempdir().unwrap();
    let root = utf8(t.path());
    site.bundle("022", "arm64", &root.join("cache"), &root.join("out"), &["--role", "edge"]);
    let dir = root.join("out/observability-local-arm64-edge");
    let files: Vec<String> = hashes(&dir).into_keys().collect();
    assert!(files.iter().any(|p| p.starts_with("images/edge/")), "{files:?}");
    for p in &files {
        assert!(
            p.starts_with("images/edge/")
                || p.starts_with("kubeedge/")
                || p.ends_with("-edge.sh")
                || p == "bundle.json"
                || p == "SHA256SUMS",
            "{p} is not for edge nodes"
        );
    }
    assert_eq!(verify(&dir), Vec::<String>::new());
}

#[test]
fn unpinned_images_are_refused_unless_allowed_and_then_marked() {
    let site = Site::new();
    let t = tempfile::tempdir().unwrap();
    let root = utf8(t.path());
    std::fs::remove_file(site.dir.join("local.lock")).unwrap();
    let (cache, out) = (root.join("cache"), root.join("out"));
    let args = ["bundle", "--arch", "amd64", "--cache", cache.as_str(), "--out", out.as_str()];
    let refused = site.xtask("022", &args);
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(err.contains("unpinned") && err.contains("/kubeprepare-fixtures/prometheus:v3.14.0"), "{err}");
    assert!(err.contains("cargo xtask lock --profile local"), "the fix is named: {err}");
    assert!(!root.join("out/observability-local-amd64").exists(), "a refused build writes nothing");

    let mut allowed = args.to_vec();
    allowed.push("--allow-unpinned");
    let o = site.xtask("022", &allowed);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("out/observability-local-amd64/bundle.json")).unwrap())
            .unwrap();
    let unpinned = json["unpinned"].as_array().unwrap();
    assert_eq!(unpinned.len(), local_images(None), "{unpinned:?}");
}

#[test]
fn corrupt_cache_blobs_and_bundle_files_are_refused_naming_them() {
    let site = Site::new();
    let t = tempfile::tempdir().unwrap();
    let root = utf8(t.path());
    let (cache, out) = (root.join("cache"), root.join("out"));
    site.bundle("022", "amd64", &cache, &out, &[]);
    let dir = out.join("observability-local-amd64");

    // A flipped byte in a bundle file: verify names it.
    let victim = dir.join("prometheus/rules/observability.rules.yml");
    let mut bytes = std::fs::read(&victim).unwrap();
    bytes[10] ^= 1;
    std::fs::write(&victim, &bytes).unwrap();
    let problems = verify(&dir);
    assert!(
        problems.iter().any(|p| p.contains("prometheus/rules/observability.rules.yml") && p.contains("checksum")),
        "{problems:?}"
    );

    // A flipped byte inside an image archive's layer: verify names the archive and the blob.
    let image = dir.join("images/edge/edge-probe.tar");
    let mut bytes = std::fs::read(&image).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 1;
    std::fs::write(&image, &bytes).unwrap();
    let problems = verify(&dir);
    assert!(problems.iter().any(|p| p.contains("images/edge/edge-probe.tar")), "{problems:?}");

    // A removed image archive: its image is reported missing.
    std::fs::remove_file(dir.join("images/edge/edge-node-exporter.tar")).unwrap();
    let problems = verify(&dir);
    assert!(problems.iter().any(|p| p.contains("not in the bundle") && p.contains("node-exporter")), "{problems:?}");

    // A flipped byte in a cached layer: the next build refuses it, naming the file, and writes nothing.
    let layer = walk(&cache.join("blobs")).into_iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
    let mut bytes = std::fs::read(&layer).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&layer, &bytes).unwrap();
    let fresh = root.join("out2");
    let o = site.xtask("022", &["bundle", "--arch", "amd64", "--cache", cache.as_str(), "--out", fresh.as_str()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "a corrupt cache blob was bundled");
    assert!(err.contains("is corrupt") && err.contains(layer.file_name().unwrap()), "{err}");
    assert!(!fresh.join("observability-local-amd64").exists(), "a failed build left a bundle behind");
}

/// Docker Engine (20.10 here) is needed: `.ci/run` installs and starts it.
fn docker(args: &[&str]) -> Output {
    Command::new("docker").args(args).output().unwrap_or_else(|e| panic!("docker {args:?}: {e} (start dockerd)"))
}

#[test]
fn image_archives_load_in_docker_import_in_containerd_and_arm64_runs_under_qemu() {
    let site = Site::new();
    let t = tempfile::tempdir().unwrap();
    let root = utf8(t.path());
    let version = docker(&["version", "--format", "{{.Server.Version}}"]);
    assert!(version.status.success(), "dockerd is not running: {}", String::from_utf8_lossy(&version.stderr));
    let skopeo = xtask::tools::SKOPEO.find().unwrap();
    let ctd = xtask::containerd::Containerd::start(&root.join("containerd")).unwrap_or_else(|e| panic!("{e:#}"));
    let mut loaded = Vec::new();
    for arch in [Arch::Amd64, Arch::Arm64] {
        let out = root.join("out");
        site.bundle("022", arch.as_str(), &root.join("cache"), &out, &[]);
        let dir = out.join(format!("observability-local-{arch}"));
        let json: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("bundle.json")).unwrap()).unwrap();
        for tar in walk(&dir.join("images")) {
            let rel = tar.strip_prefix(&dir).unwrap().to_string();
            let reference = json["files"][&rel]["source"]["reference"].as_str().unwrap().to_string();
            let index_digest = json["files"][&rel]["source"]["index_digest"].as_str().unwrap().to_string();
            // docker load (Docker's manifest.json), under the image's own name and platform.
            let o = docker(&["load", "-i", tar.as_str()]);
            let said = String::from_utf8_lossy(&o.stdout);
            assert!(
                o.status.success() && said.contains(&format!("Loaded image: {reference}")),
                "{rel}: {said} {}",
                String::from_utf8_lossy(&o.stderr)
            );
            let o = docker(&["image", "inspect", "--format", "{{.Architecture}}", &reference]);
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), arch.as_str(), "{rel}");
            loaded.push(reference.clone());
            // ctr images import (the OCI layout), name and index digest kept, right platform.
            let ns = format!("bundle-{arch}");
            ctd.import(&ns, &tar, arch).unwrap_or_else(|e| panic!("{rel}: {e:#}"));
            let listed = ctd.list(&ns).unwrap();
            let found = listed.iter().find(|l| l.name == reference).unwrap_or_else(|| panic!("{rel}: {listed:?}"));
            assert_eq!(found.digest, index_digest, "{rel}");
            assert!(found.platforms.contains(&format!("linux/{arch}")), "{rel}: {found:?}");
            // skopeo reads both forms.
            for transport in ["oci-archive", "docker-archive"] {
                let o = Command::new(skopeo.as_str())
                    .args(["inspect", "--override-arch", arch.as_str(), &format!("{transport}:{tar}")])
                    .output()
                    .unwrap();
                assert!(o.status.success(), "{transport}:{rel}: {}", String::from_utf8_lossy(&o.stderr));
                let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
                assert_eq!(v["Architecture"], arch.as_str(), "{transport}:{rel}");
            }
        }
        if arch == Arch::Arm64 {
            // An aarch64 binary from the bundle runs in a container, under qemu user emulation.
            let probe = loaded.iter().find(|r| r.contains("/probe:")).unwrap().clone();
            let o = docker(&[
                "run",
                "--rm",
                "--network",
                "none",
                "--platform",
                "linux/arm64",
                "--entrypoint",
                "/bin/busybox",
                &probe,
                "uname",
                "-m",
            ]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "aarch64");
            let prom = loaded.iter().find(|r| r.contains("/prometheus:")).unwrap().clone();
            let o = docker(&["run", "--rm", "--network", "none", "--platform", "linux/arm64", &prom, "--version"]);
            let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
            assert!(o.status.success() && text.contains("prometheus, version"), "{text}");
        }
        // docker keeps one image per name: remove before loading the other arch.
        let mut rmi = vec!["rmi", "--force"];
        rmi.extend(loaded.iter().map(String::as_str));
        docker(&rmi);
        loaded.clear();
    }
}

#[test]
fn the_edge_script_imports_every_archive_layout_and_names_a_missing_image() {
    let site = Site::new();
    let t = tempfile::tempdir().unwrap();
    let root = utf8(t.path());
    let arch = Arch::host().unwrap();
    let edge_images: Vec<String> = site
        .stack()
        .profile("local")
        .unwrap()
        .edge_components()
        .flat_map(|c| c.images.iter().map(|i| i.reference.to_string()))
        .collect();
    for (i, (grouping, format)) in [("per-component", "tar"), ("per-role", "tar.zst")].into_iter().enumerate() {
        let out = root.join(format!("out-{i}"));
        let extra = ["--role", "edge", "--image-archives", grouping, "--image-format", format];
        site.bundle("022", arch.as_str(), &root.join("cache"), &out, &extra);
        let dir = out.join(format!("observability-local-{arch}-edge"));
        assert_eq!(verify(&dir), Vec::<String>::new(), "{grouping} {format}");
        // The script's `ctr` is the real one, pointed at a containerd of our own.
        let ctd_dir = root.join(format!("containerd-{i}"));
        let _ctd = xtask::containerd::Containerd::start(&ctd_dir).unwrap_or_else(|e| panic!("{e:#}"));
        let shims = root.join(format!("shims-{i}"));
        std::fs::create_dir_all(&shims).unwrap();
        let ctr = xtask::tools::Tool { binary: "ctr", package: "containerd" }.find().unwrap();
        let point_ctr_at = |containerd: &Utf8Path| {
            let shim = format!("#!/bin/sh\nexec {ctr} --address {} \"$@\"\n", containerd.join("c.sock"));
            std::fs::write(shims.join("ctr"), shim).unwrap();
        };
        point_ctr_at(&ctd_dir);
        std::fs::set_permissions(shims.join("ctr"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let path = format!("{shims}:{}", std::env::var("PATH").unwrap());
        let run = || {
            Command::new("bash")
                .arg(dir.join("scripts/install-observability-edge.sh").as_str())
                .arg("--images-only")
                .env("PATH", &path)
                .output()
                .unwrap()
        };
        let o = run();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{grouping} {format}: {err}");
        let listed = Command::new(ctr.as_str())
            .args(["--address", ctd_dir.join("c.sock").as_str(), "-n", "k8s.io", "images", "ls", "-q"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&listed.stdout);
        for image in &edge_images {
            assert!(listed.lines().any(|l| l == image), "{grouping} {format}: {image} not imported: {listed}");
        }
        if grouping == "per-component" {
            // A missing archive: the script names the image it could not find.
            std::fs::remove_file(dir.join("images/edge/edge-probe.tar")).unwrap();
            let fresh = root.join(format!("containerd-{i}b"));
            drop(_ctd);
            let _ctd = xtask::containerd::Containerd::start(&fresh).unwrap_or_else(|e| panic!("{e:#}"));
            point_ctr_at(&fresh);
            let o = run();
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(!o.status.success(), "the script accepted a bundle without its probe image");
            assert!(err.contains("images missing after the import") && err.contains("/probe:bookworm"), "{err}");
        }
    }
}

#[test]
fn a_per_role_archive_holds_each_blob_once_and_loads_in_docker() {
    let site = Site::new();
    let t = tempfile::tempdir().unwrap();
    let root = utf8(t.path());
    let out = root.join("out");
    site.bundle("022", "arm64", &root.join("cache"), &out, &["--image-archives", "per-role"]);
    let dir = out.join("observability-local-arm64");
    assert_eq!(verify(&dir), Vec::<String>::new());
    let tar = dir.join("images/cloud/images.tar");
    let mut archive = tar::Archive::new(std::fs::File::open(&tar).unwrap());
    let mut seen = std::collections::BTreeSet::new();
    for e in archive.entries().unwrap() {
        let p = e.unwrap().path().unwrap().to_string_lossy().to_string();
        assert!(seen.insert(p.clone()), "{p} is stored twice");
    }
    let o = docker(&["load", "-i", tar.as_str()]);
    let said = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let loaded: Vec<&str> = said.lines().filter_map(|l| l.strip_prefix("Loaded image: ")).collect();
    assert_eq!(loaded.len(), local_images(Some(Role::Cloud)), "{said}");
    let mut rmi = vec!["rmi", "--force"];
    rmi.extend(loaded.iter().copied());
    docker(&rmi);
}

/// Items 5 and 11: `bundle verify` reads every `--archive` form of a real build (and its folder);
/// switching form leaves no stale archive; a build killed while writing its archive leaves the new
/// folder alone (the previous archive went before the swap), and the next build sweeps its partial archive.
#[test]
fn every_archive_form_verifies_and_a_killed_archive_write_leaves_no_stale_archive() {
    let site = Site::new();
    let t = tempfile::tempdir().unwrap();
    let root = utf8(t.path());
    let (cache, out) = (root.join("cache"), root.join("out"));
    let name = "observability-local-amd64";
    let archives = |out: &Utf8Path| -> Vec<String> {
        let mut found: Vec<String> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
            .filter(|f| f != name)
            .collect();
        found.sort();
        found
    };
    for form in ["tar", "tar.gz", "tar.zst"] {
        let started = std::time::Instant::now();
        site.bundle("022", "amd64", &cache, &out, &["--archive", form]);
        eprintln!("bundle --archive {form}: {:.1}s", started.elapsed().as_secs_f64());
        assert_eq!(archives(&out), [format!("{name}.{form}")], "only this form's archive stays beside the folder");
        assert_eq!(verify(&out.join(name)), Vec::<String>::new(), "the folder");
        assert_eq!(verify(&out.join(format!("{name}.{form}"))), Vec::<String>::new(), "{form}");
        let o = site.xtask("022", &["bundle", "verify", out.join(format!("{name}.{form}")).as_str()]);
        assert!(o.status.success(), "{form}: {}", String::from_utf8_lossy(&o.stderr));
    }

    // A changed folder (zstd image archives), killed while its archive is written.
    let exe = env!("CARGO_BIN_EXE_xtask");
    let stack_file = site.dir.join("stack.toml");
    let mut child = Command::new(exe)
        .args(["--stack", stack_file.as_str(), "bundle", "--arch", "amd64", "--archive", "tar.gz"])
        .args(["--image-format", "tar.zst", "--cache", cache.as_str(), "--out", out.as_str()])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let staging = [paths::tmp_dir("bundle"), out.join(".staging")];
    let partial = |dir: &Utf8Path| -> Vec<Utf8PathBuf> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .map(|e| utf8(&e.unwrap().path()))
            .filter(|p| p.as_str().ends_with(&format!(".tar.gz.{pid}")))
            .collect()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let left = loop {
        let found: Vec<Utf8PathBuf> = staging.iter().flat_map(|d| partial(d)).collect();
        if !found.is_empty() {
            break found;
        }
        assert!(child.try_wait().unwrap().is_none(), "the build ended before its archive was seen being written");
        assert!(std::time::Instant::now() < deadline, "no archive was written within 2 minutes");
        std::thread::sleep(Duration::from_millis(5));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(left.iter().all(|p| p.exists()), "the partial archive is there to be swept");
    assert_eq!(archives(&out), Vec::<String>::new(), "an archive of the previous folder stayed beside the new one");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join(name).join("bundle.json")).unwrap()).unwrap();
    assert!(json["files"].as_object().unwrap().keys().any(|p| p.ends_with(".tar.zst")), "the new folder is in place");
    assert_eq!(verify(&out.join(name)), Vec::<String>::new());

    // The next build sweeps what the killed one left, and leaves no staging folder in the output.
    site.bundle("022", "amd64", &cache, &out, &["--archive", "tar.zst", "--image-format", "tar.zst"]);
    assert!(left.iter().all(|p| !p.exists()), "the killed build's partial archive stayed: {left:?}");
    assert_eq!(archives(&out), [format!("{name}.tar.zst")]);
    assert_eq!(verify(&out.join(format!("{name}.tar.zst"))), Vec::<String>::new());
}
