//! OCI image format, written deterministically: layers as sorted, normalized
//! tar archives, gzip with no timestamp, JSON with ordered keys, content-
//! addressed blobs in an OCI image layout.
//!
//! The types are ours (BTreeMap everywhere) rather than a spec crate's: the
//! reference crate keeps annotations and ports in HashMaps, whose order changes
//! from run to run and would change every digest.

pub mod layer;
pub mod layout;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// `org.opencontainers.image.ref.name`: the tag, read by containerd when no other name is set.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";
/// `io.containerd.image.name`: the full name containerd gives an imported image.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";

/// `sha256:<hex>` of some bytes.
pub fn sha256(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    let mut s = String::with_capacity(71);
    s.push_str("sha256:");
    for b in d {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Index {
    pub schema_version: u32,
    /// Optional in the OCI spec; Docker manifest lists always carry it.
    #[serde(default)]
    pub media_type: String,
    pub manifests: Vec<Descriptor>,
}

impl Index {
    /// The manifest for linux/`architecture` (attestations and other platforms skipped).
    pub fn for_linux(&self, architecture: &str) -> Option<&Descriptor> {
        self.manifests
            .iter()
            .find(|d| d.platform.as_ref().is_some_and(|p| p.os == "linux" && p.architecture == architecture))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// The image configuration (`application/vnd.oci.image.config.v1+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageConfig {
    pub created: String,
    pub architecture: String,
    pub os: String,
    pub config: RuntimeConfig,
    pub rootfs: RootFs,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeConfig {
    #[serde(rename = "User")]
    pub user: String,
    #[serde(rename = "Env")]
    pub env: Vec<String>,
    #[serde(rename = "Entrypoint")]
    pub entrypoint: Vec<String>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Vec::is_empty")]
    pub cmd: Vec<String>,
    #[serde(rename = "ExposedPorts", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exposed_ports: BTreeMap<String, serde_json::Value>,
    #[serde(rename = "Labels", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type")]
    pub kind: String,
    pub diff_ids: Vec<String>,
}

/// Canonical JSON bytes of a value (compact, keys in declared or sorted order).
pub fn json_bytes<T: Serialize>(v: &T) -> Vec<u8> {
    // Our OCI types serialize infallibly (string keys only).
    serde_json::to_vec(v).expect("OCI types serialize")
}

#[cfg(test)]
mod tests {
    #[test]
    fn sha256_of_empty() {
        assert_eq!(super::sha256(b""), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
