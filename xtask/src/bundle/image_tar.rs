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
//! - every blob byte-for-byte as upstream, each verified against its digest and
//!   size while it is copied (a flipped byte aborts the write, naming the blob).
//!
//! The archive is deterministic: entries sorted bytewise, fixed mtime, uid/gid 0,
//! ustar headers. It is streamed: no blob is held in memory whole.

use std::collections::BTreeMap;
use std::io::{Read, Write};

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::oci::{
    ANNOTATION_CONTAINERD_NAME, ANNOTATION_REF_NAME, Descriptor, Index, MEDIA_INDEX, Manifest, json_bytes, sha256,
};
use crate::stack::Arch;

/// Where blobs come from: an OCI layout directory or the bundle cache.
pub trait Blobs {
    /// The file holding `digest` (not yet verified: [`write_image`] verifies while copying).
    fn path(&self, digest: &str) -> Result<Utf8PathBuf>;

    /// The verified bytes of a small blob (index, manifest).
    fn read(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.path(digest)?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading blob {path}"))?;
        let actual = sha256(&bytes);
        if actual != digest {
            bail!("blob {path} is corrupt: its content hashes to {actual}, not {digest}; delete it and fetch again");
        }
        Ok(bytes)
    }
}

/// The blobs of an OCI image layout directory.
pub struct LayoutDir<'a>(pub &'a Utf8Path);

impl Blobs for LayoutDir<'_> {
    fn path(&self, digest: &str) -> Result<Utf8PathBuf> {
        Ok(self.0.join("blobs/sha256").join(crate::cache::hex(digest)?))
    }
}

impl Blobs for crate::cache::Cache {
    fn path(&self, digest: &str) -> Result<Utf8PathBuf> {
        crate::cache::Cache::path(self, digest)
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
    /// Every blob (index, manifest, config, layers) with its size.
    pub blobs: BTreeMap<String, u64>,
}

/// The image's parts for one platform, read (and verified) from `blobs`.
struct Parts {
    index: Vec<u8>,
    manifest_digest: String,
    manifest: Vec<u8>,
    parsed: Manifest,
}

fn parts(blobs: &dyn Blobs, reference: &str, index_digest: &str, arch: Arch) -> Result<Parts> {
    let index = blobs.read(index_digest)?;
    let parsed_index: Index = serde_json::from_slice(&index)
        .with_context(|| format!("{reference}: index {index_digest} is not an image index"))?;
    let desc =
        parsed_index.for_linux(arch.as_str()).with_context(|| format!("{reference} has no linux/{arch} manifest"))?;
    let manifest = blobs.read(&desc.digest)?;
    let parsed: Manifest = serde_json::from_slice(&manifest)
        .with_context(|| format!("{reference}: {} is not an image manifest", desc.digest))?;
    Ok(Parts { index, manifest_digest: desc.digest.clone(), manifest, parsed })
}

/// Write the archive of `reference` (whose index is `index_digest`) for `arch` to `out`.
pub fn write_image<W: Write>(
    blobs: &dyn Blobs,
    reference: &str,
    index_digest: &str,
    arch: Arch,
    mtime: u64,
    out: W,
) -> Result<(W, ImageArchive)> {
    let (out, mut archives) = write_images(blobs, &[(reference, index_digest)], arch, mtime, out)?;
    Ok((out, archives.remove(0)))
}

/// Write one archive holding several images (each blob once, however many images share it).
pub fn write_images<W: Write>(
    blobs: &dyn Blobs,
    images: &[(&str, &str)],
    arch: Arch,
    mtime: u64,
    out: W,
) -> Result<(W, Vec<ImageArchive>)> {
    // Small blobs (indexes, manifests) in memory; config and layers streamed from their files.
    let mut small: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut large: BTreeMap<String, u64> = BTreeMap::new();
    let mut top = Index { schema_version: 2, media_type: MEDIA_INDEX.into(), manifests: vec![] };
    let mut docker = Vec::new();
    let mut archives = Vec::new();
    for (reference, index_digest) in images {
        let p = parts(blobs, reference, index_digest, arch)?;
        let mut sizes = BTreeMap::new();
        sizes.insert(index_digest.to_string(), p.index.len() as u64);
        sizes.insert(p.manifest_digest.clone(), p.manifest.len() as u64);
        for d in std::iter::once(&p.parsed.config).chain(p.parsed.layers.iter()) {
            sizes.insert(d.digest.clone(), d.size);
            large.insert(d.digest.clone(), d.size);
        }
        let tag = reference.rsplit_once(':').map(|(_, t)| t).filter(|t| !t.contains('/')).unwrap_or("latest");
        let mut annotations = BTreeMap::new();
        annotations.insert(ANNOTATION_CONTAINERD_NAME.to_string(), reference.to_string());
        annotations.insert(ANNOTATION_REF_NAME.to_string(), tag.to_string());
        top.manifests.push(Descriptor {
            media_type: MEDIA_INDEX.into(),
            digest: index_digest.to_string(),
            size: p.index.len() as u64,
            platform: None,
            annotations,
        });
        docker.push(DockerManifestEntry {
            config: blob_path(&p.parsed.config.digest),
            repo_tags: vec![reference.to_string()],
            layers: p.parsed.layers.iter().map(|l| blob_path(&l.digest)).collect(),
        });
        archives.push(ImageArchive {
            reference: reference.to_string(),
            index_digest: index_digest.to_string(),
            manifest_digest: p.manifest_digest.clone(),
            blobs: sizes,
        });
        small.insert(index_digest.to_string(), p.index);
        small.insert(p.manifest_digest, p.manifest);
    }

    let mut tar = Tar { b: tar::Builder::new(out), mtime };
    tar.dir("blobs/")?;
    tar.dir("blobs/sha256/")?;
    // Blob entries in bytewise order of their paths, each blob once.
    let mut all: BTreeMap<&String, Option<u64>> = small.keys().map(|d| (d, None)).collect();
    all.extend(large.iter().map(|(d, s)| (d, Some(*s))));
    for (digest, size) in all {
        let path = blob_path(digest);
        match (small.get(digest), size) {
            (Some(bytes), _) => tar.file(&path, bytes)?,
            (None, Some(size)) => tar.blob(blobs, &path, digest, size)?,
            (None, None) => unreachable!("every digest is small or large"),
        }
    }
    tar.file("index.json", &json_bytes(&top))?;
    tar.file("manifest.json", &json_bytes(&docker))?;
    tar.file("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let out = tar.b.into_inner().context("finishing an image archive")?;
    Ok((out, archives))
}

/// The archive in memory (tests and small images).
pub fn image_tar(
    blobs: &dyn Blobs,
    reference: &str,
    index_digest: &str,
    arch: Arch,
    mtime: u64,
) -> Result<(Vec<u8>, ImageArchive)> {
    write_image(blobs, reference, index_digest, arch, mtime, Vec::new())
}

struct Tar<W: Write> {
    b: tar::Builder<W>,
    mtime: u64,
}

impl<W: Write> Tar<W> {
    fn header(&self, kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(self.mtime);
        h.set_size(size);
        h
    }

    fn dir(&mut self, path: &str) -> Result<()> {
        let mut h = self.header(tar::EntryType::Directory, 0o755, 0);
        self.b.append_data(&mut h, path, std::io::empty()).with_context(|| format!("adding {path}"))
    }

    fn file(&mut self, path: &str, data: &[u8]) -> Result<()> {
        let mut h = self.header(tar::EntryType::Regular, 0o644, data.len() as u64);
        self.b.append_data(&mut h, path, data).with_context(|| format!("adding {path}"))
    }

    /// Copy a blob file, hashing it on the way; refuse it if its bytes are not `digest`.
    fn blob(&mut self, blobs: &dyn Blobs, path: &str, digest: &str, size: u64) -> Result<()> {
        let src = blobs.path(digest)?;
        let file = std::fs::File::open(&src).with_context(|| format!("opening blob {src}"))?;
        let len = file.metadata().with_context(|| format!("reading {src}"))?.len();
        if len != size {
            bail!("blob {src} is corrupt: {len} bytes, the manifest says {size}; delete it and fetch again");
        }
        let mut reader = HashingReader { inner: file, hasher: Sha256::new() };
        let mut h = self.header(tar::EntryType::Regular, 0o644, size);
        self.b.append_data(&mut h, path, &mut reader).with_context(|| format!("copying {src}"))?;
        let actual = format!("sha256:{:x}", reader.hasher.finalize());
        if actual != digest {
            bail!("blob {src} is corrupt: its content hashes to {actual}, not {digest}; delete it and fetch again");
        }
        Ok(())
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
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
        let err = format!("{:#}", LayoutDir(&root).read(&digest).unwrap_err());
        assert!(err.contains("is corrupt") && err.contains(digest.trim_start_matches("sha256:")), "{err}");
    }
}
