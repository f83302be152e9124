//! Reading a bundle for `bundle verify`, streamed: a folder or an archive (tar, tar.gz or
//! tar.zst, told by its bytes), every file hashed as it passes and never held whole. Only
//! `bundle.json`, `SHA256SUMS`, `manifests/` and `charts/` are kept in memory (each capped);
//! an image archive is read inside the stream (its blobs hashed, its small JSON blobs kept)
//! to learn the images, index digests and platforms it really carries.
//!
//! A bundle holds only regular files and directories under one top folder: a link, a
//! device, a FIFO, a socket or a repeated name is refused, in an archive (the strict mode of
//! [`crate::archive`]) and in a folder (`symlink_metadata` before any open, which is
//! `O_NOFOLLOW | O_NONBLOCK` and checked to be the same regular file).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest as _, Sha256};

use crate::archive::{self, Form, Kind, Limits, Mode};
use crate::oci::{ANNOTATION_CONTAINERD_NAME, Index, Manifest};

/// The single top folder of a bundle archive.
pub const TOP: &str = "observability";
/// The most a kept file (bundle.json, SHA256SUMS, a manifest, a chart) may hold.
pub const SMALL_CAP: u64 = 64 << 20;
/// The most all kept files of a bundle may hold together (a bundle's own are a few MiB).
pub const KEPT_TOTAL: u64 = 64 << 20;
/// The most a blob kept from an image archive (index, manifest, config) may hold.
const BLOB_CAP: u64 = 4 << 20;
/// The most all JSON blobs of one image archive may hold together.
const KEPT_CAP: u64 = 64 << 20;

/// A bundle as read: its files (path relative to the top folder) and what reading found.
#[derive(Debug, Default)]
pub struct Bundle {
    /// `folder`, `tar`, `tar.gz` or `tar.zst`.
    pub form: &'static str,
    pub files: BTreeMap<String, Scanned>,
    /// Problems found while reading (corrupt blobs, oversized files).
    pub problems: Vec<String>,
    /// Bytes of kept files so far (at most [`KEPT_TOTAL`]).
    kept: u64,
}

/// One file: its digest and size, its bytes when it is kept, what it holds when it is an image archive.
#[derive(Debug, Clone)]
pub struct Scanned {
    pub sha256: String,
    pub size: u64,
    pub bytes: Option<Vec<u8>>,
    pub image: Option<ImageContent>,
}

/// What an image archive carries, from its own index.json and blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageContent {
    pub form: Form,
    /// Image name (`io.containerd.image.name`) → index digest.
    pub images: BTreeMap<String, String>,
    /// Image name → `os/arch` of every platform whose manifest the archive holds.
    pub platforms: BTreeMap<String, BTreeSet<String>>,
}

impl Bundle {
    /// The bytes of a kept file (`bundle.json`, `SHA256SUMS`, `manifests/…`, `charts/…`).
    pub fn get(&self, path: &str) -> Option<&[u8]> {
        self.files.get(path).and_then(|f| f.bytes.as_deref())
    }

    /// A bundle from files in memory (tests), read as an archive's entries would be.
    pub fn from_memory(files: &BTreeMap<String, Vec<u8>>) -> Result<Bundle> {
        let mut b = Bundle { form: "memory", ..Bundle::default() };
        for (path, bytes) in files {
            b.add(path, bytes.len() as u64, &mut bytes.as_slice())?;
        }
        Ok(b)
    }

    fn add(&mut self, rel: &str, size: u64, r: &mut dyn Read) -> Result<()> {
        let mut h = Hashing::new(r);
        let mut bytes = None;
        let mut image = None;
        if kept(rel) {
            if size > SMALL_CAP {
                self.problems.push(format!(
                    "{rel}: {size} bytes, more than the {SMALL_CAP} a bundle's {rel} may hold: refused; rebuild the \
                     bundle with `cargo xtask bundle`"
                ));
            } else if self.kept + size > KEPT_TOTAL {
                self.problems.push(format!(
                    "{rel}: kept files pass {KEPT_TOTAL} bytes together with its {size} (verify reads bundle.json, \
                     SHA256SUMS, manifests/ and charts/ into memory; a bundle's are a few MiB): refused; rebuild the \
                     bundle with `cargo xtask bundle`"
                ));
            } else {
                let mut v = Vec::with_capacity(size as usize);
                // Never more than its size said, even if a file grows while it is read (the rest is hashed below).
                (&mut h).take(size).read_to_end(&mut v).with_context(|| format!("reading {rel}"))?;
                self.kept += v.len() as u64;
                bytes = Some(v);
            }
        } else if rel.starts_with("images/") {
            image = image_content(&mut h, rel, &mut self.problems);
        }
        std::io::copy(&mut h, &mut std::io::sink()).with_context(|| format!("reading {rel}"))?;
        let (sha256, size) = h.finish();
        self.files.insert(rel.to_string(), Scanned { sha256, size, bytes, image });
        Ok(())
    }
}

/// Whether `rel` is read into memory: the bundle's own records and the small texts verify parses.
fn kept(rel: &str) -> bool {
    rel == "bundle.json" || rel == "SHA256SUMS" || rel.starts_with("manifests/") || rel.starts_with("charts/")
}

/// Read a bundle folder or archive (its form told by its bytes), streaming every file.
pub fn load(path: &Utf8Path) -> Result<Bundle> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("{path}: cannot read it; pass a bundle folder or a bundle archive"))?;
    let mut b = Bundle::default();
    if meta.is_dir() {
        b.form = "folder";
        let mut count = 0;
        walk(path, path, &mut b, &mut count)?;
        return Ok(b);
    }
    if !meta.is_file() {
        bail!("{path} is neither a folder nor a regular file: pass a bundle folder or a bundle archive");
    }
    let file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
    let (form, r) = archive::decompress(std::io::BufReader::with_capacity(1 << 20, file), path.as_str())?;
    b.form = form.as_str();
    archive::for_each(r, path.as_str(), Limits::BUNDLE, Mode::Strict, |item| {
        let rel = match item.path.strip_prefix(TOP) {
            Some("") => return Ok(()),
            Some(rest) if rest.starts_with('/') => &rest[1..],
            _ => bail!(
                "{path}: entry {:?} is outside the bundle's one top folder {TOP}/: refused; \
                 a bundle archive holds only {TOP}/ (rebuild it with `cargo xtask bundle`)",
                item.path
            ),
        };
        match item.kind {
            Kind::Dir => Ok(()),
            Kind::File => b.add(rel, item.size, item.reader).with_context(|| format!("{path}: {}", item.path)),
            Kind::Symlink(_) | Kind::HardLink(_) => bail!("{path}: entry {:?} is a link: refused", item.path),
        }
    })?;
    Ok(b)
}

/// Walk a bundle folder without following links or opening special files.
fn walk(root: &Utf8Path, dir: &Utf8Path, b: &mut Bundle, count: &mut usize) -> Result<()> {
    let mut entries = Vec::new();
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {dir}"))? {
        let p = e.with_context(|| format!("listing {dir}"))?.path();
        entries.push(Utf8PathBuf::from_path_buf(p).map_err(|p| anyhow::anyhow!("{}: a non UTF-8 name", p.display()))?);
    }
    entries.sort();
    for p in entries {
        *count += 1;
        if *count > Limits::BUNDLE.entries {
            bail!("{root} has more than {} entries: refused", Limits::BUNDLE.entries);
        }
        let rel = p.strip_prefix(root).with_context(|| format!("{p} is outside {root}"))?.as_str().to_string();
        let meta = std::fs::symlink_metadata(&p).with_context(|| format!("reading {p}"))?;
        let kind = meta.file_type();
        if kind.is_dir() {
            walk(root, &p, b, count)?;
        } else if kind.is_file() {
            let mut f = open_regular(&p, &meta)?;
            b.add(&rel, meta.len(), &mut f).with_context(|| format!("{root}: {rel}"))?;
        } else {
            let what = if kind.is_symlink() {
                let target = std::fs::read_link(&p).map(|t| t.display().to_string()).unwrap_or_default();
                format!("a symlink (-> {target}), which verify never follows")
            } else {
                format!("a {}", special(&kind))
            };
            bail!(
                "{root}: {rel} is {what}: refused, a bundle holds only regular files and folders; \
                 remove it (or replace it with the file itself), or rebuild the bundle with `cargo xtask bundle`"
            );
        }
    }
    Ok(())
}

#[cfg(unix)]
fn special(kind: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if kind.is_fifo() {
        "FIFO"
    } else if kind.is_socket() {
        "socket"
    } else if kind.is_block_device() {
        "block device"
    } else if kind.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

#[cfg(not(unix))]
fn special(_: &std::fs::FileType) -> &'static str {
    "special file"
}

/// Open a file `symlink_metadata` said is regular, without following a link or blocking on a
/// FIFO swapped in meanwhile; refused unless it is still that regular file.
#[cfg(unix)]
fn open_regular(p: &Utf8Path, seen: &std::fs::Metadata) -> Result<std::fs::File> {
    use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(p)
        .with_context(|| format!("opening {p} (without following links)"))?;
    let now = f.metadata().with_context(|| format!("reading {p}"))?;
    if !now.is_file() || now.ino() != seen.ino() || now.dev() != seen.dev() {
        bail!("{p} changed while it was verified (it is no longer the regular file it was): refused");
    }
    Ok(f)
}

#[cfg(not(unix))]
fn open_regular(p: &Utf8Path, _: &std::fs::Metadata) -> Result<std::fs::File> {
    std::fs::File::open(p).with_context(|| format!("opening {p}"))
}

/// The images, index digests and platforms an image archive holds, its blobs checked against
/// their names on the way; `None` (with the problem recorded) when it cannot be read.
fn image_content(r: &mut dyn Read, rel: &str, problems: &mut Vec<String>) -> Option<ImageContent> {
    let (form, inner) = match archive::decompress(r, rel) {
        Ok(x) => x,
        Err(e) => {
            problems.push(format!("{e:#}: not an image archive; rebuild the bundle"));
            return None;
        }
    };
    let mut blobs: BTreeMap<String, Option<Vec<u8>>> = BTreeMap::new();
    let (mut index, mut docker) = (None, None);
    let mut kept = 0u64;
    let mut found = Vec::new();
    let walked = archive::for_each(inner, rel, Limits::BUNDLE, Mode::Strict, |item| {
        if item.kind == Kind::Dir {
            return Ok(());
        }
        let mut h = Hashing::new(item.reader);
        // Only JSON is kept (index.json, manifest.json, indexes, manifests, configs): layers,
        // however small or many, are hashed and dropped, so they never crowd the JSON out.
        let mut data = None;
        if item.size <= BLOB_CAP {
            let mut v = Vec::new();
            (&mut h).take(64).read_to_end(&mut v)?;
            if v.iter().find(|b| !b.is_ascii_whitespace()).is_some_and(|b| *b == b'{' || *b == b'[') {
                if kept + item.size > KEPT_CAP {
                    bail!(
                        "{rel}: its JSON blobs pass {KEPT_CAP} bytes together (at {:?}): refused; rebuild the bundle \
                         with `cargo xtask bundle`",
                        item.path
                    );
                }
                (&mut h).take(item.size).read_to_end(&mut v)?;
                kept += v.len() as u64;
                data = Some(v);
            }
        }
        std::io::copy(&mut h, &mut std::io::sink())?;
        let (digest, _) = h.finish();
        match item.path.as_str() {
            "index.json" => index = data,
            "manifest.json" => docker = data,
            "oci-layout" => {}
            p => match p.strip_prefix("blobs/sha256/") {
                Some(hex) if format!("sha256:{hex}") == digest => {
                    blobs.insert(digest, data);
                }
                Some(hex) => found.push(format!(
                    "{rel}: blob sha256:{hex} is corrupt (its content hashes to {digest}); rebuild the bundle"
                )),
                None => found.push(format!(
                    "{rel}: unexpected entry {p:?} (an image archive holds blobs/sha256/, index.json, manifest.json \
                     and oci-layout)"
                )),
            },
        }
        Ok(())
    });
    problems.append(&mut found);
    if let Err(e) = walked {
        problems.push(format!("{e:#}"));
        return None;
    }
    let Some(index) = index.and_then(|b| serde_json::from_slice::<Index>(&b).ok()) else {
        problems.push(format!("{rel}: no readable index.json (the OCI layout's index); rebuild the bundle"));
        return None;
    };
    let mut content = ImageContent { form, images: BTreeMap::new(), platforms: BTreeMap::new() };
    for d in &index.manifests {
        let Some(name) = d.annotations.get(ANNOTATION_CONTAINERD_NAME) else {
            problems.push(format!(
                "{rel}: index entry {} has no {ANNOTATION_CONTAINERD_NAME} (it would import as nothing)",
                d.digest
            ));
            continue;
        };
        content.images.insert(name.clone(), d.digest.clone());
        content.platforms.insert(name.clone(), platforms(&d.digest, &blobs, rel, problems));
    }
    let names: BTreeSet<&String> = content.images.keys().collect();
    match docker.and_then(|b| serde_json::from_slice::<Vec<serde_json::Value>>(&b).ok()) {
        None => problems.push(format!("{rel}: no readable manifest.json (`docker load` needs it); rebuild the bundle")),
        Some(list) => {
            let tags: BTreeSet<String> = list
                .iter()
                .flat_map(|e| e["RepoTags"].as_array().into_iter().flatten())
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect();
            if tags.iter().collect::<BTreeSet<_>>() != names {
                problems.push(format!(
                    "{rel}: manifest.json names {tags:?} but index.json names {names:?} (`docker load` and \
                     containerd would disagree); rebuild the bundle"
                ));
            }
        }
    }
    Some(content)
}

/// `os/arch` of every platform of index (or manifest) `digest` whose manifest the archive
/// holds, each checked against its config; its layers must be in the archive.
fn platforms(
    digest: &str,
    blobs: &BTreeMap<String, Option<Vec<u8>>>,
    rel: &str,
    problems: &mut Vec<String>,
) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let json = |d: &str| blobs.get(d).and_then(|b| b.as_ref()).and_then(|b| serde_json::from_slice(b).ok());
    let Some(top): Option<serde_json::Value> = json(digest) else {
        problems.push(format!("{rel}: index.json names {digest}, which the archive does not hold readable"));
        return out;
    };
    // The manifest's platform from its config; the layers must all be present.
    let manifest = |md: &str, problems: &mut Vec<String>| -> Option<String> {
        let m: Manifest = json(md).and_then(|v: serde_json::Value| serde_json::from_value(v).ok())?;
        for l in &m.layers {
            if !blobs.contains_key(&l.digest) {
                problems.push(format!("{rel}: layer {} of manifest {md} is not in the archive", l.digest));
            }
        }
        let config: serde_json::Value = json(&m.config.digest)?;
        Some(format!("{}/{}", config["os"].as_str()?, config["architecture"].as_str()?))
    };
    if let Some(list) = top["manifests"].as_array() {
        for m in list {
            let Some(md) = m["digest"].as_str().filter(|d| blobs.contains_key(*d)) else { continue };
            let listed = format!(
                "{}/{}",
                m["platform"]["os"].as_str().unwrap_or("?"),
                m["platform"]["architecture"].as_str().unwrap_or("?")
            );
            match manifest(md, problems) {
                Some(p) if p == listed => {
                    out.insert(p);
                }
                Some(p) => problems.push(format!(
                    "{rel}: manifest {md} is listed for {listed} but its config says {p}; rebuild the bundle"
                )),
                None => problems.push(format!("{rel}: manifest {md} or its config is not readable in the archive")),
            }
        }
    } else if let Some(p) = manifest(digest, problems) {
        out.insert(p);
    }
    if out.is_empty() {
        problems.push(format!("{rel}: {digest} has no platform whose manifest the archive holds"));
    }
    out
}

/// A reader that hashes and counts what passes through it.
struct Hashing<'a> {
    inner: &'a mut dyn Read,
    hasher: Sha256,
    n: u64,
}

impl<'a> Hashing<'a> {
    fn new(inner: &'a mut dyn Read) -> Self {
        Hashing { inner, hasher: Sha256::new(), n: 0 }
    }

    fn finish(self) -> (String, u64) {
        (format!("sha256:{:x}", self.hasher.finalize()), self.n)
    }
}

impl Read for Hashing<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.n += n as u64;
        Ok(n)
    }
}
