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
