//! Helpers for Helm chart values.
//!
//! Chart values follow each chart's own schema, which this project does not own,
//! so they are built as `serde_json::Value` trees with `json!` (data, not text
//! templates) from the typed model; the pieces every chart shares are here.

use serde_json::{Value, json};

use crate::stack::Image;

/// How a chart spells an image's digest.
#[derive(Debug, Clone, Copy)]
pub enum DigestKey {
    /// `sha: <hex>` without the `sha256:` prefix (kube-prometheus-stack, Grafana).
    Sha,
    /// `sha: sha256:<hex>`, appended verbatim after `@` (kube-state-metrics).
    ShaPrefixed,
    /// `digest: sha256:<hex>` (node exporter, Loki, Alloy, Jaeger, blackbox exporter).
    Digest,
}

/// `{registry, repository, tag, sha|digest}` for a chart's `image:` block.
pub fn image(img: &Image, key: DigestKey) -> Value {
    let mut v = json!({
        "registry": img.reference.registry,
        "repository": img.reference.repository,
        "tag": img.reference.tag,
    });
    if let Some(d) = &img.digest {
        match key {
            DigestKey::Sha => v["sha"] = json!(d.as_str().trim_start_matches("sha256:")),
            DigestKey::ShaPrefixed => v["sha"] = json!(d.as_str()),
            DigestKey::Digest => v["digest"] = json!(d.as_str()),
        }
    }
    v
}

/// Affinity keeping pods off edge nodes (every cloud component).
pub fn off_edge() -> Value {
    to_value(&super::manifests::edge_affinity(false))
}

/// Affinity keeping pods on edge nodes only (edge agents).
pub fn on_edge() -> Value {
    to_value(&super::manifests::edge_affinity(true))
}

/// `{requests, limits}` with the same cpu and memory.
pub fn resources(cpu: &str, memory: &str) -> Value {
    json!({
        "requests": { "cpu": cpu, "memory": memory },
        "limits": { "cpu": cpu, "memory": memory },
    })
}

/// `{requests, limits}` where requests are lower than limits (cloud components may burst).
pub fn resources_burst(req_cpu: &str, req_mem: &str, lim_cpu: &str, lim_mem: &str) -> Value {
    json!({
        "requests": { "cpu": req_cpu, "memory": req_mem },
        "limits": { "cpu": lim_cpu, "memory": lim_mem },
    })
}

pub fn to_value<T: serde::Serialize>(v: &T) -> Value {
    // Serializing our own typed structs to a JSON tree cannot fail (no maps with
    // non-string keys, no failing Serialize impls).
    serde_json::to_value(v).expect("typed values serialize to JSON")
}
