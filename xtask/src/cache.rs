//! The content-addressed cache of everything a bundle is made of: image
//! indexes, manifests, configs, layers and chart archives, each stored under
//! `blobs/sha256/<hex>` of its own bytes.
//!
//! Invariants:
//! - a file under `blobs/` is complete: downloads go to `partial/<hex>` and are
//!   renamed in only once their size and digest match;
//! - every read is verified: a flipped byte is refused with an error naming the
//!   file, never passed on into a bundle;
//! - `partial/` files are kept across runs, so an interrupted download resumes.

use std::fs::File;
use std::io::{Read, Write};

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use sha2::{Digest as _, Sha256};

use crate::oci::sha256;

/// The default cache root: `$XTASK_CACHE`, else `target/cache`.
pub fn default_root() -> Utf8PathBuf {
    match std::env::var("XTASK_CACHE") {
        Ok(dir) if !dir.is_empty() => Utf8PathBuf::from(dir),
        _ => crate::paths::default_cache_dir(),
    }
}

/// The hex part of a `sha256:<64 hex>` digest, refusing anything else (it becomes a file name).
pub fn hex(digest: &str) -> Result<&str> {
    match digest.strip_prefix("sha256:") {
        Some(h) if h.len() == 64 && h.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) => Ok(h),
        _ => bail!("{digest:?} is not a sha256 digest (`sha256:` and 64 lowercase hex digits)"),
    }
}

#[derive(Debug, Clone)]
pub struct Cache {
    root: Utf8PathBuf,
}

impl Cache {
    pub fn open(root: &Utf8Path) -> Result<Cache> {
        for sub in ["blobs/sha256", "partial"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating cache directory {dir}"))?;
        }
        Ok(Cache { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Utf8Path {
        &self.root
    }

    pub fn path(&self, digest: &str) -> Result<Utf8PathBuf> {
        Ok(self.root.join("blobs/sha256").join(hex(digest)?))
    }

    /// Where an unfinished download of `digest` is kept.
    pub fn partial_path(&self, digest: &str) -> Result<Utf8PathBuf> {
        Ok(self.root.join("partial").join(hex(digest)?))
    }

    pub fn contains(&self, digest: &str) -> bool {
        self.path(digest).is_ok_and(|p| p.is_file())
    }

    /// Copy the cached blob `digest` to `dest`, hashing it on the way (one read); refused,
    /// naming the cache file, when it is corrupt. Its digest and size.
    pub fn copy_to(&self, digest: &str, dest: &Utf8Path) -> Result<(String, u64)> {
        let src = self.path(digest)?;
        let mut from = File::open(&src).with_context(|| format!("opening {src}"))?;
        let file = File::create(dest).with_context(|| format!("creating {dest}"))?;
        let mut to = HashingWriter::new(std::io::BufWriter::new(file));
        std::io::copy(&mut from, &mut to).with_context(|| format!("copying {src} to {dest}"))?;
        let (buf, actual, size) = to.finish();
        buf.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {dest}"))?;
        if actual != digest {
            bail!(
                "cached blob {src} is corrupt: its content hashes to {actual}, not {digest}; \
                 delete it and build again to refetch"
            );
        }
        Ok((actual, size))
    }

    /// The verified bytes of a small cached blob (an index, a manifest, a config).
    pub fn read(&self, digest: &str) -> Result<Vec<u8>> {
        let path = self.path(digest)?;
        let bytes = std::fs::read(&path).with_context(|| format!("reading cached blob {path}"))?;
        let actual = sha256(&bytes);
        if actual != digest {
            bail!(
                "cached blob {path} is corrupt: its content hashes to {actual}, not {digest}; \
                 delete it and build again to refetch"
            );
        }
        Ok(bytes)
    }

    /// Store `bytes` as `digest` after checking they hash to it.
    pub fn insert(&self, digest: &str, bytes: &[u8], what: &str) -> Result<()> {
        let actual = sha256(bytes);
        if actual != digest {
            bail!("{what}: received content hashes to {actual}, not the pinned {digest}; refusing it");
        }
        crate::atomic::write(&self.path(digest)?, bytes, false)
    }

    /// Move a finished download into place once its size and digest match.
    pub fn commit_partial(&self, digest: &str, size: Option<u64>, what: &str) -> Result<()> {
        let partial = self.partial_path(digest)?;
        let (actual, len) = hash_file(&partial)?;
        if actual != digest || size.is_some_and(|s| s != len) {
            let _ = std::fs::remove_file(&partial);
            bail!("{what}: downloaded {len} bytes hashing to {actual}, expected {digest}; the download was discarded");
        }
        File::open(&partial).and_then(|f| f.sync_all()).with_context(|| format!("syncing {partial}"))?;
        std::fs::rename(&partial, self.path(digest)?).with_context(|| format!("moving {partial} into the cache"))
    }
}

/// sha256 digest and length of a file, streamed.
pub fn hash_file(path: &Utf8Path) -> Result<(String, u64)> {
    let mut f = File::open(path).with_context(|| format!("opening {path}"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).with_context(|| format!("reading {path}"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((format!("sha256:{:x}", hasher.finalize()), len))
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W: Write> {
    inner: W,
    hasher: Sha256,
    len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter { inner, hasher: Sha256::new(), len: 0 }
    }

    /// The inner writer, the `sha256:` digest and the byte count.
    pub fn finish(self) -> (W, String, u64) {
        (self.inner, format!("sha256:{:x}", self.hasher.finalize()), self.len)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache() -> (tempfile::TempDir, Cache) {
        let t = tempfile::tempdir().unwrap();
        let root = Utf8PathBuf::from_path_buf(t.path().to_path_buf()).unwrap();
        let c = Cache::open(&root).unwrap();
        (t, c)
    }

    #[test]
    fn a_flipped_byte_in_a_cached_blob_is_refused_naming_it() {
        let (_t, c) = cache();
        let digest = sha256(b"layer bytes");
        c.insert(&digest, b"layer bytes", "test").unwrap();
        assert_eq!(c.read(&digest).unwrap(), b"layer bytes");
        let out = c.root().join("copy");
        assert_eq!(c.copy_to(&digest, &out).unwrap(), (digest.clone(), 11));
        std::fs::write(c.path(&digest).unwrap(), b"layer bytez").unwrap();
        for err in [c.read(&digest).unwrap_err(), c.copy_to(&digest, &out).unwrap_err()] {
            let err = format!("{err:#}");
            assert!(err.contains("is corrupt") && err.contains(hex(&digest).unwrap()), "{err}");
        }
    }

    #[test]
    fn wrong_content_never_enters_the_cache() {
        let (_t, c) = cache();
        let digest = sha256(b"expected");
        let err = format!("{:#}", c.insert(&digest, b"something else", "quay.io/x:y").unwrap_err());
        assert!(err.contains("quay.io/x:y") && err.contains("refusing"), "{err}");
        assert!(!c.contains(&digest));
        std::fs::write(c.partial_path(&digest).unwrap(), b"expecte").unwrap();
        assert!(c.commit_partial(&digest, Some(8), "blob").is_err());
        assert!(!c.partial_path(&digest).unwrap().exists(), "a bad download is discarded");
        std::fs::write(c.partial_path(&digest).unwrap(), b"expected").unwrap();
        c.commit_partial(&digest, Some(8), "blob").unwrap();
        assert!(c.contains(&digest));
    }

    #[test]
    fn digests_that_are_not_sha256_hex_are_refused() {
        for bad in ["sha256:../../etc/passwd", "md5:abc", "sha256:ABCDEF", ""] {
            assert!(hex(bad).is_err(), "{bad}");
        }
    }
}
