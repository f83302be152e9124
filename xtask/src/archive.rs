//! Reading untrusted archives (chart .tgz files, bundles, image archives) safely,
//! with one reader: every entry must stay inside the archive root. Absolute paths,
//! `..` components, duplicate names, and archives that expand past a size limit are
//! refused, naming the archive and the entry.
//!
//! Two modes: [`Mode::Chart`] allows symlinks and hard links that resolve inside the
//! archive (following earlier links, so `up -> ..` then `up2 -> up/..` is refused),
//! [`Mode::Strict`] (bundles and their image archives) refuses every link, device,
//! FIFO and socket: such an archive holds only regular files and directories.
//! The form (tar, tar.gz, tar.zst) is read from the first bytes, never from a name.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;

use anyhow::{Context, Result, bail};

use crate::oci::layer::Entry;

/// Bounds on what one archive may expand to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total bytes of all files.
    pub total: u64,
    /// Number of entries.
    pub entries: usize,
}

impl Limits {
    /// Generous for Helm charts (kube-prometheus-stack expands to a few MiB).
    pub const CHART: Limits = Limits { total: 32 << 20, entries: 10_000 };
    /// A whole bundle, or one of its image archives (streamed: the limit bounds time, not memory).
    pub const BUNDLE: Limits = Limits { total: 256 << 30, entries: 100_000 };
}

/// What links and special files an archive may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Helm charts: symlinks and hard links that resolve inside the archive.
    Chart,
    /// Bundles and image archives: regular files and directories only.
    Strict,
}

/// How a tar stream is stored, read from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Tar,
    TarGz,
    TarZst,
}

impl Form {
    pub fn as_str(self) -> &'static str {
        match self {
            Form::Tar => "tar",
            Form::TarGz => "tar.gz",
            Form::TarZst => "tar.zst",
        }
    }

    /// The form of a stream starting with `head` (at least 512 bytes when there are that many).
    pub fn sniff(head: &[u8]) -> Option<Form> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Some(Form::TarGz)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some(Form::TarZst)
        } else if head.len() >= 262 && &head[257..262] == b"ustar" {
            Some(Form::Tar)
        } else {
            None
        }
    }
}

/// A tar stream, decompressed: its form is detected from its first bytes.
pub fn decompress<'a, R: Read + 'a>(mut r: R, name: &str) -> Result<(Form, Box<dyn Read + 'a>)> {
    let mut head = Vec::with_capacity(512);
    (&mut r).take(512).read_to_end(&mut head).with_context(|| format!("reading {name}"))?;
    let Some(form) = Form::sniff(&head) else {
        bail!("{name} is not a tar, tar.gz or tar.zst archive (its first bytes say neither)");
    };
    let r = std::io::Cursor::new(head).chain(r);
    let out: Box<dyn Read + 'a> = match form {
        Form::Tar => Box::new(r),
        // Every gzip member, as `tar xzf` reads them (a second member is not ignored).
        Form::TarGz => Box::new(flate2::read::MultiGzDecoder::new(r)),
        Form::TarZst => {
            Box::new(zstd::stream::read::Decoder::new(r).with_context(|| format!("{name}: not a zstd stream"))?)
        }
    };
    Ok((form, out))
}

/// Components of a relative path after removing `.`; `None` if it is absolute or climbs out with `..`.
fn inside(path: &str) -> Option<Vec<&str>> {
    if path.starts_with('/') {
        return None;
    }
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts)
}

/// What an entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
    /// A symlink (target relative to its directory), only in [`Mode::Chart`].
    Symlink(String),
    /// A hard link (target from the root), only in [`Mode::Chart`].
    HardLink(String),
}

/// One entry, its contents readable (once) through `reader`.
pub struct Item<'a> {
    /// Normalized: no `.`, no trailing `/`.
    pub path: String,
    pub kind: Kind,
    pub mode: u32,
    pub size: u64,
    pub reader: &'a mut dyn Read,
}

/// Stream every entry of the tar `reader` (already decompressed) to `f`, refusing anything
/// that escapes, repeats a name, exceeds `limits`, or (in [`Mode::Strict`]) is not a regular
/// file or a directory. Nothing is held in memory.
pub fn for_each<R: Read>(
    reader: R,
    name: &str,
    limits: Limits,
    mode: Mode,
    mut f: impl FnMut(Item<'_>) -> Result<()>,
) -> Result<()> {
    // Bound decompression itself: a bomb is cut off, then refused below.
    let bounded = reader.take(limits.total.saturating_add(limits.entries as u64 * 4096 + 4096));
    let mut archive = tar::Archive::new(bounded);
    let mut seen: BTreeSet<String> = BTreeSet::new();
    let mut total: u64 = 0;
    for entry in archive.entries().with_context(|| format!("{name} is not a tar archive"))? {
        let mut e = entry
            .with_context(|| format!("{name}: corrupt or truncated archive (or larger than {} bytes)", limits.total))?;
        if seen.len() >= limits.entries {
            bail!("{name} has more than {} entries: refused", limits.entries);
        }
        let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        if raw.split('/').any(|p| p == "..") || inside(&raw).is_none() {
            bail!("{name}: entry {raw:?} is an absolute path or contains `..`: refused");
        }
        let path = inside(&raw).unwrap_or_default().join("/");
        if !seen.insert(path.clone()) {
            bail!(
                "{name}: entry {raw:?} appears twice (the last one would win on extraction): refused; \
                 rebuild the archive"
            );
        }
        let size = e.header().size().with_context(|| format!("{name}: entry {raw:?} has a bad size"))?;
        total = total.saturating_add(size);
        if total > limits.total {
            bail!(
                "{name} expands to more than {} bytes (at entry {raw:?}): refused as a possible archive bomb",
                limits.total
            );
        }
        let entry_mode = e.header().mode().unwrap_or(0o644) & 0o7777;
        let kind = match (e.header().entry_type(), mode) {
            (tar::EntryType::Directory, _) => Kind::Dir,
            (tar::EntryType::Regular, _) | (tar::EntryType::Continuous, Mode::Chart) => Kind::File,
            (kind @ (tar::EntryType::Symlink | tar::EntryType::Link), Mode::Chart) => {
                let target = e
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .with_context(|| format!("{name}: link {raw:?} has no target"))?;
                if kind == tar::EntryType::Symlink { Kind::Symlink(target) } else { Kind::HardLink(target) }
            }
            (other, Mode::Strict) => bail!(
                "{name}: entry {raw:?} is a {}: refused (a bundle holds only regular files and directories); \
                 rebuild it with `cargo xtask bundle`",
                describe(other)
            ),
            (other, Mode::Chart) => bail!("{name}: entry {raw:?} has unsupported type {other:?}: refused"),
        };
        f(Item { path, kind, mode: entry_mode, size, reader: &mut e })?;
    }
    Ok(())
}

fn describe(kind: tar::EntryType) -> String {
    match kind {
        tar::EntryType::Symlink => "symlink".into(),
        tar::EntryType::Link => "hard link".into(),
        tar::EntryType::Fifo => "FIFO".into(),
        tar::EntryType::Char => "character device".into(),
        tar::EntryType::Block => "block device".into(),
        other => format!("{other:?} entry"),
    }
}

/// Read every entry of a gzip'd tar (a Helm chart), refusing anything that escapes or exceeds
/// `limits`; links are kept when they resolve inside the archive, following earlier links.
pub fn read_tgz(bytes: &[u8], name: &str, limits: Limits) -> Result<Vec<(String, Entry)>> {
    let gz = flate2::read::MultiGzDecoder::new(bytes);
    let mut out = Vec::new();
    let mut links: BTreeMap<String, String> = BTreeMap::new();
    for_each(gz, name, limits, Mode::Chart, |item| {
        let entry = match item.kind {
            Kind::Dir => Entry::Dir { mode: item.mode },
            Kind::File => {
                let mut data = Vec::with_capacity(item.size.min(limits.total) as usize);
                item.reader.read_to_end(&mut data).with_context(|| format!("{name}: reading {:?}", item.path))?;
                Entry::File { mode: item.mode, data }
            }
            Kind::Symlink(target) => {
                // A symlink resolves from its own directory.
                let dir = item.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
                let joined = if dir.is_empty() { target.clone() } else { format!("{dir}/{target}") };
                if target.starts_with('/') {
                    bail!("{name}: link {:?} -> {target:?} points outside the archive: refused", item.path);
                }
                links.insert(item.path.clone(), joined);
                Entry::Symlink { target }
            }
            Kind::HardLink(target) => {
                if target.starts_with('/') || inside(&target).is_none() {
                    bail!("{name}: link {:?} -> {target:?} points outside the archive: refused", item.path);
                }
                Entry::Symlink { target }
            }
        };
        out.push((item.path, entry));
        Ok(())
    })?;
    // With every link known: each must resolve inside, through the others, and no entry may
    // be written through a link (an extractor would follow it).
    for (path, joined) in &links {
        if resolve(joined, &links).is_none() {
            bail!("{name}: link {path:?} points outside the archive (through the links before it): refused");
        }
    }
    for (path, _) in &out {
        if let Some((dir, _)) = path.rsplit_once('/')
            && resolve(dir, &links).is_none_or(|real| real != dir)
        {
            bail!("{name}: entry {path:?} lies under a symlink: refused");
        }
    }
    Ok(out)
}

/// Where `path` really is once the archive's `links` (path → target joined to its directory)
/// are followed; `None` when it leaves the root or loops.
fn resolve(path: &str, links: &BTreeMap<String, String>) -> Option<String> {
    let mut pending: Vec<String> = path.split('/').rev().map(str::to_string).collect();
    let mut cur: Vec<String> = Vec::new();
    let mut hops = 0;
    while let Some(part) = pending.pop() {
        match part.as_str() {
            "" | "." => {}
            ".." => {
                cur.pop()?;
            }
            p => {
                cur.push(p.to_string());
                if let Some(joined) = links.get(&cur.join("/")) {
                    hops += 1;
                    if hops > 40 {
                        return None;
                    }
                    // The link's target replaces it, from the root (joined already holds its directory).
                    cur.clear();
                    pending.extend(joined.split('/').rev().map(str::to_string));
                }
            }
        }
    }
    Some(cur.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inside_resolves_dot_dot_within_the_root_only() {
        assert_eq!(inside("a/./b/../c"), Some(vec!["a", "c"]));
        assert_eq!(inside("a/../../b"), None);
        assert_eq!(inside("/etc"), None);
    }

    #[test]
    fn chained_links_are_resolved_through_each_other() {
        let links: BTreeMap<String, String> =
            [("a/up".to_string(), "a/..".to_string()), ("a/up2".to_string(), "a/up/..".to_string())].into();
        assert_eq!(resolve("a/up", &links).as_deref(), Some(""));
        assert_eq!(resolve("a/up2", &links), None);
        let loop_: BTreeMap<String, String> = [("x".to_string(), "x".to_string())].into();
        assert_eq!(resolve("x", &loop_), None);
    }

    #[test]
    fn forms_are_told_by_their_bytes() {
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert_eq!(Form::sniff(&tar), Some(Form::Tar));
        assert_eq!(Form::sniff(&[0x1f, 0x8b, 8]), Some(Form::TarGz));
        assert_eq!(Form::sniff(&[0x28, 0xb5, 0x2f, 0xfd]), Some(Form::TarZst));
        assert_eq!(Form::sniff(b"not an archive"), None);
    }
}
