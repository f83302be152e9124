//! Deterministic layer archives: entries sorted bytewise by path, every parent
//! directory present, mtime fixed (SOURCE_DATE_EPOCH or 0), uid/gid 0, no user or
//! group names, ustar headers (no PAX time records), gzip with mtime 0 at a fixed level.

use std::collections::BTreeMap;
use std::io::Write;

use anyhow::{Context, Result, bail};
use flate2::{Compression, GzBuilder};

/// One file-system entry of a layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Dir { mode: u32 },
    File { mode: u32, data: Vec<u8> },
    Symlink { target: String },
}

/// A layer's contents by path (relative, no leading `/`), kept sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tree {
    entries: BTreeMap<String, Entry>,
}

impl Tree {
    pub fn insert(&mut self, path: &str, entry: Entry) -> Result<()> {
        let path = normalize(path)?;
        if path.is_empty() {
            return Ok(()); // the root itself
        }
        // Every parent must exist as a directory entry.
        let mut parent = String::new();
        for part in path.split('/').collect::<Vec<_>>().split_last().map(|(_, p)| p.to_vec()).unwrap_or_default() {
            if !parent.is_empty() {
                parent.push('/');
            }
            parent.push_str(part);
            self.entries.entry(parent.clone()).or_insert(Entry::Dir { mode: 0o755 });
        }
        self.entries.insert(path, entry);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn paths(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    pub fn get(&self, path: &str) -> Option<&Entry> {
        self.entries.get(path)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Entry)> {
        self.entries.iter().map(|(p, e)| (p.as_str(), e))
    }

    /// Remove `path` and everything under it.
    pub fn remove(&mut self, path: &str) {
        let prefix = format!("{path}/");
        self.entries.retain(|p, _| p != path && !p.starts_with(&prefix));
    }

    /// Read a tar archive (`what` names it in errors): directories, files and symlinks as they are
    /// (mode bits kept, owners and times dropped), a hard link as a copy of its target; entries
    /// that escape the root are refused; devices, FIFOs and the like are skipped and returned.
    pub fn read_tar(reader: impl std::io::Read, what: &str) -> Result<(Tree, Vec<String>)> {
        use std::io::Read;
        let mut t = Tree::default();
        let mut skipped = Vec::new();
        let mut archive = tar::Archive::new(reader);
        for e in archive.entries().with_context(|| format!("reading {what}"))? {
            let mut e = e.with_context(|| format!("reading {what}"))?;
            let raw = e.path().with_context(|| format!("reading {what}"))?.to_string_lossy().into_owned();
            let path = normalize(&raw).with_context(|| format!("{what}: entry {raw:?}"))?;
            if raw.starts_with('/') {
                bail!("{what}: entry {raw:?} is absolute");
            }
            let mode = e.header().mode()? & 0o7777;
            let entry = match e.header().entry_type() {
                tar::EntryType::Directory => Entry::Dir { mode },
                tar::EntryType::Regular | tar::EntryType::Continuous => {
                    let mut data = Vec::new();
                    e.read_to_end(&mut data).with_context(|| format!("reading {path} in {what}"))?;
                    Entry::File { mode, data }
                }
                tar::EntryType::Symlink => {
                    let target = e.link_name()?.with_context(|| format!("{what}: symlink {path} has no target"))?;
                    Entry::Symlink { target: target.to_string_lossy().into_owned() }
                }
                tar::EntryType::Link => {
                    let target = e.link_name()?.with_context(|| format!("{what}: hard link {path} has no target"))?;
                    let target = normalize(&target.to_string_lossy())?;
                    match t.entries.get(&target) {
                        Some(Entry::File { data, .. }) => Entry::File { mode, data: data.clone() },
                        _ => bail!("{what}: hard link {path} points at {target:?}, which is no earlier file"),
                    }
                }
                _ => {
                    skipped.push(path);
                    continue;
                }
            };
            t.insert(&path, entry)?;
        }
        Ok((t, skipped))
    }

    /// The uncompressed tar bytes.
    pub fn tar(&self, mtime: u64) -> Result<Vec<u8>> {
        let mut b = tar::Builder::new(Vec::new());
        b.mode(tar::HeaderMode::Deterministic);
        for (path, entry) in &self.entries {
            let mut h = tar::Header::new_ustar();
            h.set_uid(0);
            h.set_gid(0);
            h.set_mtime(mtime);
            match entry {
                Entry::Dir { mode } => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_mode(*mode);
                    h.set_size(0);
                    b.append_data(&mut h, format!("{path}/"), std::io::empty())
                }
                Entry::File { mode, data } => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_mode(*mode);
                    h.set_size(data.len() as u64);
                    b.append_data(&mut h, path, data.as_slice())
                }
                Entry::Symlink { target } => {
                    h.set_entry_type(tar::EntryType::Symlink);
                    h.set_mode(0o777);
                    h.set_size(0);
                    b.append_link(&mut h, path, target)
                }
            }
            .with_context(|| format!("adding {path} to a layer"))?;
        }
        b.into_inner().context("finishing a layer archive")
    }
}

/// Paths are relative, `/`-separated, with no `.`/`..` components.
fn normalize(path: &str) -> Result<String> {
    let trimmed = path.trim_start_matches("./").trim_start_matches('/').trim_end_matches('/');
    let mut parts = Vec::new();
    for part in trimmed.split('/') {
        match part {
            "" | "." => {}
            ".." => bail!("path {path:?} escapes the layer root"),
            p => parts.push(p),
        }
    }
    Ok(parts.join("/"))
}

/// gzip with no name and mtime 0, at a fixed level: the same bytes in, the same bytes out.
pub fn gzip(bytes: &[u8]) -> Result<Vec<u8>> {
    gzip_at(bytes, 9)
}

/// [`gzip`] at another fixed level (1 for the large layers of the e2e node image, built often and
/// never shipped).
pub fn gzip_at(bytes: &[u8], level: u32) -> Result<Vec<u8>> {
    let mut enc = GzBuilder::new().mtime(0).write(Vec::new(), Compression::new(level));
    enc.write_all(bytes).context("compressing a layer")?;
    enc.finish().context("compressing a layer")
}

/// SOURCE_DATE_EPOCH if set (reproducible-builds.org), else 0.
pub fn source_date_epoch() -> Result<u64> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(v) => v.trim().parse().with_context(|| format!("SOURCE_DATE_EPOCH={v:?} is not a number of seconds")),
        Err(_) => Ok(0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_added_and_order_is_by_path() {
        let mut t = Tree::default();
        t.insert("usr/bin/b", Entry::File { mode: 0o755, data: b"b".to_vec() }).unwrap();
        t.insert("./etc/passwd", Entry::File { mode: 0o644, data: b"p".to_vec() }).unwrap();
        assert_eq!(t.paths().collect::<Vec<_>>(), ["etc", "etc/passwd", "usr", "usr/bin", "usr/bin/b"]);
    }

    #[test]
    fn same_tree_same_bytes_and_no_escape() {
        let mut a = Tree::default();
        let mut b = Tree::default();
        for (p, d) in [("x/1", "one"), ("x/2", "two")] {
            a.insert(p, Entry::File { mode: 0o644, data: d.into() }).unwrap();
        }
        for (p, d) in [("x/2", "two"), ("x/1", "one")] {
            b.insert(p, Entry::File { mode: 0o644, data: d.into() }).unwrap();
        }
        assert_eq!(gzip(&a.tar(0).unwrap()).unwrap(), gzip(&b.tar(0).unwrap()).unwrap());
        assert!(a.insert("../etc/shadow", Entry::Dir { mode: 0o755 }).is_err());
    }
}
