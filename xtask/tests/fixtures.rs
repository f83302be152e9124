//! Fixture images: programs from their Go modules and busybox from Debian, reproducible (same
//! inputs, same digests), valid OCI (skopeo reads them), truly multi-arch (the arm64 image's
//! binaries are aarch64), and rebuilt only where a recipe changed.

use camino::Utf8PathBuf;
use xtask::bundle::image_tar::{LayoutDir, image_tar};
use xtask::fixtures::{self, go};
use xtask::stack::{self, Arch};
use xtask::{lock, paths, registry, tools};

fn tmp() -> (tempfile::TempDir, Utf8PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let p = Utf8PathBuf::from_path_buf(t.path().to_path_buf()).unwrap();
    (t, p)
}

/// ELF machine of the first ELF file found in a gzip'd layer (EM_X86_64 = 62, EM_AARCH64 = 183).
fn elf_machine(layer_gz: &[u8]) -> Option<u16> {
    use std::io::Read;
    let tar = flate2::read::GzDecoder::new(layer_gz);
    let mut archive = tar::Archive::new(tar);
    for e in archive.entries().ok()? {
        let mut e = e.ok()?;
        let mut head = [0u8; 20];
        if e.header().entry_type() == tar::EntryType::Regular
            && e.read_exact(&mut head).is_ok()
            && &head[..4] == b"\x7fELF"
        {
            return Some(u16::from_le_bytes([head[18], head[19]]));
        }
    }
    None
}

/// `skopeo inspect` of `target` (e.g. `oci:DIR:TAG`) for linux/`arch`, as JSON.
fn skopeo_inspect(skopeo: &camino::Utf8Path, target: &str, arch: Arch) -> serde_json::Value {
    let out = std::process::Command::new(skopeo.as_str())
        .args(["inspect", "--override-os", "linux", "--override-arch", arch.as_str(), target])
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo inspect {target} {arch}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn fixture_images_are_reproducible_multi_arch_and_readable_by_skopeo() {
    let skopeo = tools::SKOPEO.find().unwrap_or_else(|e| panic!("{e:#}"));
    let stack = stack::load(&paths::stack_file()).unwrap();
    let arches = [Arch::Amd64, Arch::Arm64];
    if let Err(e) = fixtures::require_arches(&arches) {
        panic!("{e:#}");
    }
    let (_a, out_a) = tmp();
    let (_b, out_b) = tmp();
    let dirs = |oci| fixtures::Dirs { oci, ..fixtures::Dirs::default_under_target() };
    let a = fixtures::build(&stack, &arches, &dirs(out_a)).unwrap_or_else(|e| panic!("{e:#}"));
    let b = fixtures::build(&stack, &arches, &dirs(out_b)).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(a.packages, b.packages);
    assert_eq!(a.images.len(), fixtures::plan(&stack).unwrap().len());
    for (reference, img) in &a.images {
        let other = &b.images[reference];
        assert_eq!(img.index_digest, other.index_digest, "{reference} is not reproducible");
        assert_eq!(img.platforms, other.platforms);
        assert_eq!(img.platforms.len(), 2, "{reference}: {:?}", img.platforms);
        let tag = reference.rsplit_once(':').unwrap().1;
        for arch in arches {
            let v = skopeo_inspect(&skopeo, &format!("oci:{}:{tag}", img.layout), arch);
            assert_eq!(v["Architecture"], arch.as_str());
            // The image's own layer (the last) holds the program; its ELF machine must match.
            let layer = v["Layers"].as_array().unwrap().last().unwrap().as_str().unwrap();
            let blob =
                std::fs::read(img.layout.join("blobs/sha256").join(layer.trim_start_matches("sha256:"))).unwrap();
            let want = if arch == Arch::Amd64 { 62 } else { 183 };
            assert_eq!(elf_machine(&blob), Some(want), "{reference} {arch}: wrong ELF machine");
        }
    }

    // Per-arch image archives: deterministic, readable as OCI (containerd) and as a
    // Docker archive (docker load), platform and digests preserved.
    let (_t, tars) = tmp();
    for (reference, img) in &a.images {
        for arch in arches {
            let (bytes, info) = image_tar(&LayoutDir(&img.layout), reference, &img.index_digest, arch, 0).unwrap();
            let (again, _) = image_tar(&LayoutDir(&img.layout), reference, &img.index_digest, arch, 0).unwrap();
            assert!(bytes == again, "{reference} {arch}: image archive is not deterministic");
            assert_eq!(info.manifest_digest, img.platforms[&format!("linux/{arch}")]);
            let file = tars.join(format!("{}-{arch}.tar", reference.replace(['/', ':'], "_")));
            std::fs::write(&file, &bytes).unwrap();
            for transport in ["oci-archive", "docker-archive"] {
                let v = skopeo_inspect(&skopeo, &format!("{transport}:{file}"), arch);
                assert_eq!(v["Architecture"], arch.as_str(), "{transport} {reference}");
            }
        }
    }

    // The archives import into a real containerd (as kubeprepare's edge install does),
    // keeping the image's name and its index digest, so charts' pinned digests resolve.
    let (_c, ctd_dir) = tmp();
    let ctd = xtask::containerd::Containerd::start(&ctd_dir).unwrap_or_else(|e| panic!("{e:#}"));
    for arch in arches {
        let ns = format!("import-{arch}");
        for (reference, img) in &a.images {
            let file = tars.join(format!("{}-{arch}.tar", reference.replace(['/', ':'], "_")));
            ctd.import(&ns, &file, arch).unwrap_or_else(|e| panic!("{e:#}"));
            let listed = ctd.list(&ns).unwrap();
            let found = listed
                .iter()
                .find(|l| &l.name == reference)
                .unwrap_or_else(|| panic!("{reference} imported under no name: {listed:?}"));
            assert_eq!(found.digest, img.index_digest, "{reference} {arch}");
        }
    }
    drop(ctd);

    // Push to a real registry on loopback and resolve through the distribution API:
    // the lock must name exactly the digests that were built.
    let (_r, reg_dir) = tmp();
    let reg = registry::LocalRegistry::start(&fixtures::registry_addr(&stack).unwrap(), &reg_dir)
        .unwrap_or_else(|e| panic!("{e:#}"));
    fixtures::push(&a, &reg).unwrap_or_else(|e| panic!("{e:#}"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let locked = rt.block_on(lock::resolve(stack.profile("local").unwrap())).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(locked.images.len(), a.images.len());
    for (reference, img) in &a.images {
        let l = &locked.images[reference];
        assert_eq!(l.digest, img.index_digest, "{reference}: registry digest differs from the built one");
        assert_eq!(l.platforms, img.platforms, "{reference}");
    }
}

/// Go builds are reproducible: the same program built again in an empty Go build cache (every
/// package compiled anew) is the same bytes.
#[test]
fn a_go_program_built_again_from_nothing_is_the_same_bytes() {
    let stack = stack::load(&paths::stack_file()).unwrap();
    let name = "blackbox-exporter";
    let p = stack.program(name).unwrap();
    go::update_wrapper(name, p).unwrap_or_else(|e| panic!("{e:#}"));
    let first = go::build(name, p, Arch::Amd64, &paths::go_build_dir(), None).unwrap_or_else(|e| panic!("{e:#}"));
    let (_o, out) = tmp();
    let (_c, gocache) = tmp();
    let again = go::build(name, p, Arch::Amd64, &out, Some(&gocache)).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(again.compiled, "the second build must compile (its output folder was empty)");
    assert_eq!(first.record, again.record, "{name} built twice differs");
}

/// The committed wrapper modules were resolved from the recipes stack.toml has now (a changed
/// recipe rewrites them: committing that is part of the change).
#[test]
fn every_wrapper_module_is_the_one_its_recipe_writes() {
    let stack = stack::load(&paths::stack_file()).unwrap();
    let planned = fixtures::plan(&stack).unwrap();
    let mut names = fixtures::programs(&planned);
    assert!(names.len() >= 5, "{names:?}");
    // And the e2e kubernetes tier's node image.
    names.extend(fixtures::node::plan(&stack).unwrap().programs.into_keys());
    for name in &names {
        let p = stack.program(name).unwrap();
        assert!(
            go::wrapper_is_current(name, p),
            "fixtures/go/{name} is stale: run `cargo xtask fixtures` and commit it"
        );
    }
    // Every wrapper belongs to a program.
    for e in std::fs::read_dir(paths::go_wrappers_dir()).unwrap() {
        let dir = e.unwrap().file_name().to_string_lossy().into_owned();
        assert!(
            names.contains(&dir),
            "fixtures/go/{dir} belongs to no [programs] entry the local profile or [node] uses"
        );
    }
}

/// Our own Go programs (`local = true`: the edge tunnel) pass their Go tests.
#[test]
fn our_own_go_programs_pass_their_go_tests() {
    let stack = stack::load(&paths::stack_file()).unwrap();
    let ours: Vec<_> = stack.programs.iter().filter(|(_, p)| p.local).collect();
    assert!(!ours.is_empty(), "stack.toml has no program of our own");
    for (name, p) in ours {
        go::test(name.as_str(), p).unwrap_or_else(|e| panic!("{e:#}"));
    }
}

/// A changed recipe rebuilds its program and the images that carry it, and nothing else; an
/// unchanged one is not rebuilt at all.
#[test]
fn a_changed_recipe_rebuilds_only_its_image() {
    let stack = stack::load(&paths::stack_file()).unwrap();
    fixtures::require_arches(&[Arch::Amd64]).unwrap_or_else(|e| panic!("{e:#}"));
    let (_g, go_dir) = tmp();
    let (_o, oci) = tmp();
    let dirs = fixtures::Dirs { go: go_dir, oci, ..fixtures::Dirs::default_under_target() };
    let before = fixtures::build(&stack, &[Arch::Amd64], &dirs).unwrap_or_else(|e| panic!("{e:#}"));
    let same = fixtures::build(&stack, &[Arch::Amd64], &dirs).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(same.programs.values().all(|p| !p.compiled), "unchanged recipes were rebuilt");
    assert_eq!(before.images, same.images);

    let mut changed = stack.clone();
    let name = "node-exporter";
    let p = changed.programs.iter_mut().find(|(n, _)| n.as_str() == name).unwrap().1;
    p.ldflags.insert("github.com/prometheus/common/version.BuildUser".into(), "someone-else".into());
    let after = fixtures::build(&changed, &[Arch::Amd64], &dirs).unwrap_or_else(|e| panic!("{e:#}"));
    let compiled: Vec<&String> = after.programs.iter().filter(|(_, p)| p.compiled).map(|(k, _)| k).collect();
    assert_eq!(compiled, [&format!("{name}/linux/amd64")]);
    let differ: Vec<&String> =
        after.images.iter().filter(|(r, i)| before.images[*r].index_digest != i.index_digest).map(|(r, _)| r).collect();
    assert_eq!(differ.len(), 1, "{differ:?}");
    assert!(differ[0].contains("/node-exporter:"), "{differ:?}");
}
