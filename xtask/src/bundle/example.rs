//! Small, consistent bundles built in memory, for tests of `bundle verify` (unit tests
//! and `tests/bundle_verify.rs` alike): image archives shaped as `image_tar` writes them
//! (an upstream index for two platforms, the bundle's platform's manifest, config and
//! layer), and SHA256SUMS and bundle.json that agree with every file.

use std::collections::BTreeMap;

use camino::Utf8Path;

use super::{BundleJson, FileRecord, ImageFormat, SCHEMA, Source};
use crate::oci::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, sha256};
use crate::stack::Arch;

/// A tar of `files` (path → bytes), sorted, regular files with mode 0644.
pub fn tar(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, data) in files {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, path, *data).expect("appending to a tar in memory");
    }
    b.into_inner().expect("finishing a tar in memory")
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, bytes).expect("gzip in memory");
    gz.finish().expect("gzip in memory")
}

/// One image's blobs for `arch`, its layers `layers` (one small layer when empty):
/// (index digest, blobs by digest).
fn image_blobs(name: &str, arch: Arch, layers: &[Vec<u8>]) -> (String, BTreeMap<String, Vec<u8>>) {
    let mut blobs = BTreeMap::new();
    let mut put = |bytes: Vec<u8>| {
        let d = sha256(&bytes);
        blobs.insert(d.clone(), bytes);
        d
    };
    let default = [format!("layer of {name} for {arch}").into_bytes()];
    let layers: Vec<serde_json::Value> = (if layers.is_empty() { &default[..] } else { layers })
        .iter()
        .map(|l| {
            let digest = put(l.clone());
            serde_json::json!({"mediaType": crate::oci::MEDIA_LAYER_GZIP, "digest": digest, "size": l.len()})
        })
        .collect();
    let config = serde_json::json!({"os": "linux", "architecture": arch.as_str()}).to_string().into_bytes();
    let (config_size, config) = (config.len(), put(config));
    let manifest = serde_json::json!({
        "schemaVersion": 2, "mediaType": crate::oci::MEDIA_MANIFEST,
        "config": {"mediaType": crate::oci::MEDIA_CONFIG, "digest": config, "size": config_size},
        "layers": layers,
    })
    .to_string()
    .into_bytes();
    let (manifest_size, manifest) = (manifest.len(), put(manifest));
    let other = if arch == Arch::Amd64 { "arm64" } else { "amd64" };
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": crate::oci::MEDIA_INDEX,
        "manifests": [
            {"mediaType": crate::oci::MEDIA_MANIFEST, "digest": manifest, "size": manifest_size,
             "platform": {"os": "linux", "architecture": arch.as_str()}},
            // The other platform's manifest is not carried (as in a real bundle).
            {"mediaType": crate::oci::MEDIA_MANIFEST, "digest": sha256(other.as_bytes()), "size": 2,
             "platform": {"os": "linux", "architecture": other}},
        ],
    })
    .to_string()
    .into_bytes();
    (put(index), blobs)
}

/// The index digest of `name`'s example image for `arch`.
pub fn index_digest(name: &str, arch: Arch) -> String {
    image_blobs(name, arch, &[]).0
}

/// An image archive (plain tar) holding `names` for `arch`, as `image_tar` lays it out.
pub fn image_archive(names: &[&str], arch: Arch) -> Vec<u8> {
    image_archive_with(names, arch, &[])
}

/// An image archive of `names` whose manifests have the layers `layers` (see [`image_blobs`]),
/// which come first in the archive (a tar's order is free; digest order can put them there too).
fn image_archive_with(names: &[&str], arch: Arch, layers: &[Vec<u8>]) -> Vec<u8> {
    let mut blobs = BTreeMap::new();
    let mut top = Vec::new();
    let mut docker = Vec::new();
    for name in names {
        let (index, b) = image_blobs(name, arch, layers);
        let tag = name.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
        top.push(serde_json::json!({
            "mediaType": crate::oci::MEDIA_INDEX, "digest": index, "size": b[&index].len(),
            "annotations": {ANNOTATION_CONTAINERD_NAME: name, ANNOTATION_REF_NAME: tag},
        }));
        docker.push(serde_json::json!({"Config": "", "RepoTags": [name], "Layers": []}));
        blobs.extend(b);
    }
    let index = serde_json::json!({"schemaVersion": 2, "mediaType": crate::oci::MEDIA_INDEX, "manifests": top})
        .to_string()
        .into_bytes();
    let docker = serde_json::to_vec(&docker).expect("JSON");
    let mut paths: Vec<(String, &[u8])> = blobs
        .iter()
        .map(|(d, b)| (format!("blobs/sha256/{}", d.trim_start_matches("sha256:")), b.as_slice()))
        .collect();
    paths.sort_by_key(|(_, b)| !layers.iter().any(|l| l.as_slice() == *b));
    let mut files: Vec<(&str, &[u8])> = paths.iter().map(|(p, b)| (p.as_str(), *b)).collect();
    files.push(("index.json", &index));
    files.push(("manifest.json", &docker));
    files.push(("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#));
    tar(&files)
}

/// A bundle being put together: files with their sources; [`Example::files`] adds the records.
#[derive(Debug, Clone)]
pub struct Example {
    pub arch: Arch,
    pub files: BTreeMap<String, (Vec<u8>, Source)>,
}

impl Example {
    pub fn new(arch: Arch) -> Example {
        Example { arch, files: BTreeMap::new() }
    }

    pub fn rendered(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Example {
        self.files.insert(path.into(), (bytes.into(), Source::Rendered));
        self
    }

    /// A chart, with the values paths the stack declares unused.
    pub fn chart(mut self, path: &str, bytes: Vec<u8>, unused: &[(&str, &str)]) -> Example {
        let source = Source::Chart {
            url: format!("https://charts.example/{}", path.trim_start_matches("charts/")),
            digest: sha256(&bytes),
            unused_images: unused.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        self.files.insert(path.into(), (bytes, source));
        self
    }

    /// An image archive of one image, recorded as `bundle` records it.
    pub fn image(mut self, path: &str, name: &str) -> Example {
        let source = Source::Image {
            reference: name.into(),
            index_digest: index_digest(name, self.arch),
            platform: format!("linux/{}", self.arch),
            format: ImageFormat::Tar,
        };
        self.files.insert(path.into(), (image_archive(&[name], self.arch), source));
        self
    }

    /// An image archive of one image with the layers `layers`, written before its JSON blobs.
    pub fn image_with_layers(mut self, path: &str, name: &str, layers: &[Vec<u8>]) -> Example {
        let source = Source::Image {
            reference: name.into(),
            index_digest: image_blobs(name, self.arch, layers).0,
            platform: format!("linux/{}", self.arch),
            format: ImageFormat::Tar,
        };
        self.files.insert(path.into(), (image_archive_with(&[name], self.arch, layers), source));
        self
    }

    /// Every file, with SHA256SUMS and bundle.json agreeing with them.
    pub fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut records = BTreeMap::new();
        let mut sums = String::new();
        for (path, (bytes, source)) in &self.files {
            sums.push_str(&format!("{}  {path}\n", sha256(bytes).trim_start_matches("sha256:")));
            records.insert(
                path.clone(),
                FileRecord { sha256: sha256(bytes), size: bytes.len() as u64, version: None, source: source.clone() },
            );
            out.insert(path.clone(), bytes.clone());
        }
        let json = BundleJson {
            schema: SCHEMA,
            tool: "xtask example".into(),
            profile: "example".into(),
            arch: self.arch,
            role: None,
            kubeprepare: serde_json::from_value(serde_json::json!({
                "k3s": "1.34.1", "kubeedge": "1.22.0", "edgemesh": "1.17.0", "helm": "3.19.0"
            }))
            .expect("kubeprepare versions"),
            unpinned: vec![],
            files: records,
        };
        out.insert("SHA256SUMS".into(), sums.into_bytes());
        out.insert("bundle.json".into(), serde_json::to_vec_pretty(&json).expect("JSON"));
        out
    }

    /// Write the bundle as a folder at `dir`.
    pub fn write(&self, dir: &Utf8Path) -> std::io::Result<()> {
        write_folder(dir, &self.files())
    }
}

/// Write `files` (path → bytes) under `dir`.
pub fn write_folder(dir: &Utf8Path, files: &BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    for (path, bytes) in files {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, bytes)?;
    }
    Ok(())
}

/// `files` as a bundle archive (a plain tar under `observability/`, directories first).
pub fn archive(files: &BTreeMap<String, Vec<u8>>) -> Vec<u8> {
    let named: Vec<(String, &[u8])> =
        files.iter().map(|(p, b)| (format!("{}/{p}", super::scan::TOP), b.as_slice())).collect();
    let list: Vec<(&str, &[u8])> = named.iter().map(|(p, b)| (p.as_str(), *b)).collect();
    tar(&list)
}
