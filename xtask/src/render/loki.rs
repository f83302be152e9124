//! Loki values (grafana-community chart 18.x): monolithic (`singleBinary` values), filesystem storage, replication 1,
//! a schema config, retention by the compactor, no memcached caches (their
//! defaults request ~10 GiB), no auth, and the gateway as a NodePort edge agents
//! push to (SPEC.md).

use anyhow::Result;
use serde_json::{Value, json};

use super::Ctx;
use super::values::{DigestKey, image, off_edge, resources_burst};
use crate::stack::Kind;

/// Loki's HTTP port (push API and `/metrics`) in its pod or container.
pub const HTTP_PORT: u16 = 3100;

pub fn values(ctx: &Ctx<'_>) -> Result<Value> {
    let s = ctx.settings();
    let gateway_image = ctx.component(Kind::Loki).and_then(|c| c.image("gateway"));
    let mut gateway = json!({
        "enabled": true,
        "service": { "type": "NodePort", "nodePort": s.node_ports.loki },
        "affinity": off_edge(),
        // The chart adds an access-log exporter sidecar (another image) by default; nothing
        // scrapes it here, so it stays off rather than weighing on the bundle.
        "metrics": { "enabled": false },
    });
    if let Some(img) = gateway_image {
        gateway["image"] = image(img, DigestKey::Digest);
    }
    Ok(json!({
        "fullnameOverride": super::names::RELEASE_LOKI,
        "deploymentMode": "Monolithic",
        "loki": {
            "image": image(ctx.image(Kind::Loki, "loki")?, DigestKey::Digest),
            "auth_enabled": false,
            "commonConfig": { "replication_factor": 1 },
            "storage": { "type": "filesystem" },
            "schemaConfig": {
                "configs": [{
                    "from": "2024-04-01",
                    "store": "tsdb",
                    "object_store": "filesystem",
                    "schema": "v13",
                    "index": { "prefix": "index_", "period": "24h" },
                }]
            },
            "limits_config": { "retention_period": s.log_retention.to_string() },
            "compactor": { "retention_enabled": true, "delete_request_store": "filesystem" },
        },
        "singleBinary": {
            "replicas": 1,
            "affinity": off_edge(),
            "resources": resources_burst("100m", "256Mi", "1", "1Gi"),
            "persistence": { "enabled": true, "storageClass": s.storage_class.as_str(), "size": s.log_storage.to_string() },
        },
        "read": { "replicas": 0 },
        "write": { "replicas": 0 },
        "backend": { "replicas": 0 },
        "chunksCache": { "enabled": false },
        "resultsCache": { "enabled": false },
        "memcachedExporter": { "enabled": false },
        "gateway": gateway,
        "lokiCanary": { "enabled": false },
        "test": { "enabled": false },
        "minio": { "enabled": false },
        "sidecar": { "rules": { "enabled": false } },
    }))
}
