//! One image archive per component and arch, importable by `k3s` (auto-import),
//! `ctr images import` and `docker load` alike:
//!
//! - an OCI image layout whose `index.json` names the image
//!   (`io.containerd.image.name` and `org.opencontainers.image.ref.name`; an
//!   unnamed entry imports as nothing, silently) and points at the upstream
//!   *index*, so the digest charts pin still resolves offline; only the blobs of
//!   the bundle's platform are included (importers skip the missing platforms);
//! - a Docker `manifest.json` for Docker Engine 20.10's `docker load`, which does
//!   not read OCI layouts;
//! - every blob byte-for-byte as upstream, each verified against its digest.
//!
//! The archive itself is deterministic: entries sorted, fixed mtime, uid/gid 0.

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use camino::Utf8Path;
use serde::Serialize;

use crate::oci::layer::{Entry, Tree};
use crate::oci::{ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, Descriptor, Index, MEDIA_INDEX, json_bytes, sha256};
use crate::stack::Arch;

/// Where blobs come from: an OCI layout directory or the bundle cache.
pub trait Blobs {
    fn get(&self, digest: &str) -> Result<Vec<u8>>;
}

/// The blobs of an OCI image layout directory, each verified on read.
pub struct LayoutDir<'a>(pub &'a Utf8Path);

impl Blobs for LayoutDir<'_> {
    fn get(&self, digest: &str) -> Result<Vec<u8>> {
        let hex = digest.strip_prefix("sha256:").with_context(|| format!("unsupported digest {digest}"))?;
        let path = self.0.join("blobs/sha256").join(hex);
        let bytes = std::fs::read(&path).with_context(|| format!("reading blob {path}"))?;
        let actual = sha256(&bytes);
        if actual != digest {
            bail!("blob {path} is corrupt: its content hashes to {actual}, not {digest}; delete it and fetch again");
        }
        Ok(bytes)
    }
}

#[derive(Debug, Serialize)]
struct DockerManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags")]
    repo_tags: Vec<String>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

fn blob_path(digest: &str) -> String {
    format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"))
}

/// What an image archive holds, for bundle.json.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ImageArchive {
    pub reference: String,
    pub index_digest: String,
    pub manifest_digest: String,
    pub blobs: BTreeMap<String, u64>,
}

/// Build the archive of `reference` (whose index is `index_digest`) for `arch`.
pub fn image_tar(
    blobs: &dyn Blobs,
    reference: &str,
    index_digest: &str,
    arch: Arch,
    mtime: u64,
) -> Result<(Vec<u8>, ImageArchive)> {
    let index_bytes = blobs.get(index_digest)?;
    let index: Index = serde_json::from_slice(&index_bytes)
        .with_context(|| format!("{reference}: index {index_digest} is not an image index"))?;
    let manifest_desc = index
        .manifests
        .iter()
        .find(|d| d.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == arch.as_str()))
        .with_context(|| format!("{reference} has no linux/{arch} manifest"))?;
    let manifest_bytes = blobs.get(&manifest_desc.digest)?;
    let manifest: crate::oci::Manifest = serde_json::from_slice(&manifest_bytes)
        .with_context(|| format!("{reference}: {} is not an image manifest", manifest_desc.digest))?;

    let mut tree = Tree::default();
    let mut sizes = BTreeMap::new();
    let mut add = |tree: &mut Tree, digest: &str, bytes: Vec<u8>| -> Result<()> {
        sizes.insert(digest.to_string(), bytes.len() as u64);
        tree.insert(&blob_path(digest), Entry::File { mode: 0o644, data: bytes })
    };
    add(&mut tree, index_digest, index_bytes)?;
    add(&mut tree, &manifest_desc.digest, manifest_bytes)?;
    add(&mut tree, &manifest.config.digest, blobs.get(&manifest.config.digest)?)?;
    for layer in &manifest.layers {
        add(&mut tree, &layer.digest, blobs.get(&layer.digest)?)?;
    }

    let tag = reference.rsplit_once(':').map(|(_, t)| t).unwrap_or("latest");
    let mut annotations = BTreeMap::new();
    annotations.insert(ANNOTATION_CONTAINERD_NAME.to_string(), reference.to_string());
    annotations.insert(ANNOTATION_REF_NAME.to_string(), tag.to_string());
    let top = Index {
        schema_version: 2,
        media_type: MEDIA_INDEX.into(),
        manifests: vec![Descriptor {
            media_type: MEDIA_INDEX.into(),
            digest: index_digest.into(),
            size: sizes[index_digest],
            platform: None,
            annotations,
        }],
    };
    tree.insert("index.json", Entry::File { mode: 0o644, data: json_bytes(&top) })?;
    tree.insert("oci-layout", Entry::File { mode: 0o644, data: br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec() })?;
    let docker = vec![DockerManifestEntry {
        config: blob_path(&manifest.config.digest),
        repo_tags: vec![reference.to_string()],
        layers: manifest.layers.iter().map(|l| blob_path(&l.digest)).collect(),
    }];
    tree.insert("manifest.json", Entry::File { mode: 0o644, data: json_bytes(&docker) })?;
    let archive = ImageArchive {
        reference: reference.into(),
        index_digest: index_digest.into(),
        manifest_digest: manifest_desc.digest.clone(),
        blobs: sizes,
    };
    Ok((tree.tar(mtime)?, archive))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_blob_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let root = camino::Utf8PathBuf::from_path_buf(dir.path().to_path_buf()).unwrap();
        let blobs = root.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let digest = sha256(b"hello");
        std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), b"hellp").unwrap();
        let err = format!("{:#}", LayoutDir(&root).get(&digest).unwrap_err());
        assert!(err.contains("is corrupt") && err.contains(digest.trim_start_matches("sha256:")), "{err}");
    }
}
