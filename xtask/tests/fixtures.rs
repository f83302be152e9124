//! Fixture images from Debian packages: reproducible (same packages in, same
//! digests out), valid OCI (skopeo reads them), and truly multi-arch (the arm64
//! image's binaries are aarch64).

use camino::Utf8PathBuf;
use xtask::bundle::image_tar::{LayoutDir, image_tar};
use xtask::fixtures;
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
    let cache = paths::target_dir().join("fixtures").join("debs");
    let (_a, out_a) = tmp();
    let (_b, out_b) = tmp();
    let a = fixtures::build(&stack, &arches, &cache, &out_a).unwrap_or_else(|e| panic!("{e:#}"));
    let b = fixtures::build(&stack, &arches, &cache, &out_b).unwrap_or_else(|e| panic!("{e:#}"));
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

    // A whole local bundle per arch: reproducible archive, SHA256SUMS that coreutils
    // accepts, and an edge bundle carrying only edge images and edge files.
    let layouts = a.images.iter().map(|(r, i)| (r.clone(), (i.index_digest.clone(), i.layout.clone()))).collect();
    for arch in arches {
        let ctx = xtask::render::Ctx::new(&stack, "local", arch).unwrap();
        let files = xtask::render::render(&ctx).unwrap();
        let plan = xtask::bundle::plan(&ctx, &files, &layouts, None).unwrap();
        let one = xtask::bundle::build(&ctx, &files, &plan, None).unwrap();
        let two = xtask::bundle::build(&ctx, &files, &plan, None).unwrap();
        assert!(
            xtask::bundle::archive(&one).unwrap() == xtask::bundle::archive(&two).unwrap(),
            "{arch}: bundle archive differs between builds"
        );
        let (_d, dir) = tmp();
        for (path, bytes) in &one {
            let p = dir.join(path);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, bytes).unwrap();
        }
        let check = std::process::Command::new("sha256sum")
            .args(["--check", "--quiet", "SHA256SUMS"])
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(check.status.success(), "sha256sum -c: {}", String::from_utf8_lossy(&check.stdout));
        // Offline verification: the intact bundle passes; a flipped byte is named.
        let problems = xtask::bundle::verify::verify(&one);
        assert!(problems.is_empty(), "{arch}: {problems:?}");
        let mut broken = one.clone();
        let victim = "prometheus/rules/observability.rules.yml";
        broken.get_mut(victim).unwrap()[10] ^= 1;
        let problems = xtask::bundle::verify::verify(&broken);
        assert!(problems.iter().any(|p| p.starts_with(victim) && p.contains("checksum mismatch")), "{problems:?}");
        let mut missing = one.clone();
        missing.retain(|p, _| !p.ends_with("edge-node-exporter.tar"));
        let problems = xtask::bundle::verify::verify(&missing);
        assert!(
            problems.iter().any(|p| p.contains("not in the bundle") && p.contains("node-exporter")),
            "{problems:?}"
        );
        let edge_plan = xtask::bundle::plan(&ctx, &files, &layouts, Some(xtask::bundle::BundleRole::Edge)).unwrap();
        assert!(
            edge_plan
                .keys()
                .all(|p| p.starts_with("images/edge/") || p.starts_with("kubeedge/") || p.ends_with("-edge.sh")),
            "{:?}",
            edge_plan.keys()
        );
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
