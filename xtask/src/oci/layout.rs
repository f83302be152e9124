//! An OCI image layout directory (`oci-layout`, `index.json`, `blobs/sha256/…`),
//! built in memory and written through a temporary directory and a rename, so a
//! killed run never leaves a half-written layout.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use camino::Utf8Path;

use super::{Descriptor, Index, MEDIA_INDEX, json_bytes, sha256};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Layout {
    blobs: BTreeMap<String, Vec<u8>>,
    pub index: Vec<Descriptor>,
}

impl Layout {
    /// Store a blob; returns its descriptor (without platform or annotations).
    pub fn add_blob(&mut self, media_type: &str, bytes: Vec<u8>) -> Descriptor {
        let digest = sha256(&bytes);
        let size = bytes.len() as u64;
        self.blobs.entry(digest.clone()).or_insert(bytes);
        Descriptor { media_type: media_type.into(), digest, size, platform: None, annotations: BTreeMap::new() }
    }

    pub fn index_json(&self) -> Vec<u8> {
        json_bytes(&Index { schema_version: 2, media_type: MEDIA_INDEX.into(), manifests: self.index.clone() })
    }

    /// Write the layout to `dir`, replacing what was there.
    pub fn write(&self, dir: &Utf8Path) -> Result<()> {
        crate::atomic::replace_dir(dir, |tmp| {
            let blobs = tmp.join("blobs").join("sha256");
            std::fs::create_dir_all(&blobs).with_context(|| format!("creating {blobs}"))?;
            for (digest, bytes) in &self.blobs {
                let hex = digest.trim_start_matches("sha256:");
                std::fs::write(blobs.join(hex), bytes).with_context(|| format!("writing blob {digest}"))?;
            }
            std::fs::write(tmp.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
                .context("writing oci-layout")?;
            std::fs::write(tmp.join("index.json"), self.index_json()).context("writing index.json")
        })
    }
}
