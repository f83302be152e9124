//! Reading untrusted archives (chart .tgz files, bundles) safely: every entry
//! must stay inside the archive root. Absolute paths, `..` components, symlinks
//! or hard links that point outside, and archives that expand past a size
//! limit are refused, naming the archive and the entry.

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

/// Read every entry of a gzip'd tar, refusing anything that escapes or exceeds `limits`.
pub fn read_tgz(bytes: &[u8], name: &str, limits: Limits) -> Result<Vec<(String, Entry)>> {
    let gz = flate2::read::GzDecoder::new(bytes);
    // Bound decompression itself: a bomb is cut off, then refused below.
    let bounded = gz.take(limits.total + limits.entries as u64 * 1024 + 1024);
    let mut archive = tar::Archive::new(bounded);
    let mut out = Vec::new();
    let mut total: u64 = 0;
    for entry in archive.entries().with_context(|| format!("{name} is not a tar.gz archive"))? {
        let mut e = entry
            .with_context(|| format!("{name}: corrupt or truncated archive (or larger than {} bytes)", limits.total))?;
        if out.len() >= limits.entries {
            bail!("{name} has more than {} entries: refused", limits.entries);
        }
        let raw = String::from_utf8_lossy(&e.path_bytes()).into_owned();
        let Some(parts) = inside(&raw) else {
            bail!("{name}: entry {raw:?} is an absolute path or climbs out of the archive with `..`: refused");
        };
        if raw.split('/').any(|p| p == "..") {
            bail!("{name}: entry {raw:?} contains `..`: refused");
        }
        let path = parts.join("/");
        let size = e.header().size().with_context(|| format!("{name}: entry {raw:?} has a bad size"))?;
        total = total.saturating_add(size);
        if total > limits.total {
            bail!(
                "{name} expands to more than {} bytes (at entry {raw:?}): refused as a possible archive bomb",
                limits.total
            );
        }
        let mode = e.header().mode().unwrap_or(0o644) & 0o7777;
        let item = match e.header().entry_type() {
            tar::EntryType::Directory => Entry::Dir { mode },
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut data = Vec::with_capacity(size as usize);
                e.read_to_end(&mut data).with_context(|| format!("{name}: reading {raw:?}"))?;
                Entry::File { mode, data }
            }
            kind @ (tar::EntryType::Symlink | tar::EntryType::Link) => {
                let target = e
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .with_context(|| format!("{name}: link {raw:?} has no target"))?;
                // A symlink resolves from its own directory, a hard link from the root.
                let base = if kind == tar::EntryType::Symlink {
                    parts[..parts.len().saturating_sub(1)].join("/")
                } else {
                    String::new()
                };
                let joined = if base.is_empty() { target.clone() } else { format!("{base}/{target}") };
                if target.starts_with('/') || inside(&joined).is_none() {
                    bail!("{name}: link {raw:?} -> {target:?} points outside the archive: refused");
                }
                Entry::Symlink { target }
            }
            other => bail!("{name}: entry {raw:?} has unsupported type {other:?}: refused"),
        };
        out.push((path, item));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::inside;

    #[test]
    fn inside_resolves_dot_dot_within_the_root_only() {
        assert_eq!(inside("a/./b/../c"), Some(vec!["a", "c"]));
        assert_eq!(inside("a/../../b"), None);
        assert_eq!(inside("/etc"), None);
    }
}
