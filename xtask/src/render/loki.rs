//! Loki values (grafana-community chart 18.x): monolithic (`singleBinary` values), filesystem storage, replication 1,
//! a schema config, retention by the compactor, no memcached caches (their
//! defaults request ~10 GiB), no auth, and the gateway as a NodePort edge agents
//! push to (SPEC.md).

use anyhow::Result;
use serde_json::{Value, json};

use super::Ctx;
use super::values::{DigestKey, image, off_edge, resources_burst};
use crate::stack::Kind;

/// The one schema of both flavours: Loki 3 requires v13 on tsdb (structured metadata is on by
/// default and refuses any other schema).
fn schema_config() -> Value {
    json!({
        "configs": [{
            "from": "2024-04-01",
            "store": "tsdb",
            "object_store": "filesystem",
            "schema": "v13",
            "index": { "prefix": "index_", "period": "24h" },
        }]
    })
}

/// The compose flavour's `loki/config.yaml` (`loki -config.file=/etc/loki/config.yaml`): the
/// monolithic single binary as the chart deploys it (filesystem under `/loki`, replication 1,
/// in-memory ring, no auth, the same schema and retention), ready as soon as its ring is
/// (`min_ready_duration` 0s instead of 15s), and no usage reports (offline).
pub fn config_compose(ctx: &Ctx<'_>) -> Value {
    json!({
        "auth_enabled": false,
        "server": { "http_listen_port": super::ports::LOKI },
        "common": {
            // Loki's own docker config: the ring advertises loopback, not a guessed interface.
            "instance_addr": "127.0.0.1",
            "path_prefix": "/loki",
            "storage": { "filesystem": { "chunks_directory": "/loki/chunks", "rules_directory": "/loki/rules" } },
            "replication_factor": 1,
            "ring": { "kvstore": { "store": "inmemory" } },
        },
        "schema_config": schema_config(),
        "ingester": { "lifecycler": { "min_ready_duration": "0s" } },
        "limits_config": { "retention_period": ctx.settings().log_retention.to_string() },
        "compactor": { "retention_enabled": true, "delete_request_store": "filesystem" },
        "analytics": { "reporting_enabled": false },
    })
}

/// The compose flavour: `loki/config.yaml` when the profile has Loki.
pub fn render_compose(ctx: &Ctx<'_>, files: &mut super::Files) -> Result<()> {
    if ctx.has(Kind::Loki) {
        files.add_yaml("loki/config.yaml", &config_compose(ctx))?;
    }
    Ok(())
}

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
        "resources": resources_burst("10m", "16Mi", "100m", "64Mi"),
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
            "schemaConfig": schema_config(),
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
