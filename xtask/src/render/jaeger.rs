//! Jaeger v2 all-in-one values (chart 4.x): OTLP gRPC and HTTP in, memory storage
//! with a cap, and OTLP reachable from edge nodes through NodePorts.

use anyhow::Result;
use serde_json::{Value, json};

use super::values::{DigestKey, image, off_edge, resources_burst};
use super::Ctx;
use crate::stack::Kind;

/// Jaeger v2's own telemetry (Prometheus metrics).
pub const METRICS_PORT: u16 = 8888;
/// Jaeger query UI / API.
pub const QUERY_PORT: u16 = 16686;
pub const OTLP_GRPC_PORT: u16 = 4317;
pub const OTLP_HTTP_PORT: u16 = 4318;

/// The Jaeger v2 (OpenTelemetry Collector based) configuration.
pub fn jaeger_config(ctx: &Ctx<'_>) -> Value {
    json!({
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
            "pipelines": {
                "traces": { "receivers": ["otlp"], "processors": ["batch"], "exporters": ["jaeger_storage_exporter"] }
            },
            "telemetry": {
                "metrics": { "level": "detailed", "readers": [{ "pull": { "exporter": { "prometheus": { "host": "0.0.0.0", "port": METRICS_PORT } } } }] }
            },
        },
        "extensions": {
            "healthcheckv2": { "use_v2": true, "http": { "endpoint": "0.0.0.0:13133" } },
            "jaeger_query": { "storage": { "traces": "memstore" } },
            "jaeger_storage": {
                "backends": { "memstore": { "memory": { "max_traces": ctx.settings().trace_max_traces } } }
            },
        },
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": { "endpoint": format!("0.0.0.0:{OTLP_GRPC_PORT}") },
                    "http": { "endpoint": format!("0.0.0.0:{OTLP_HTTP_PORT}") },
                }
            }
        },
        "processors": { "batch": {} },
        "exporters": { "jaeger_storage_exporter": { "trace_storage": "memstore" } },
    })
}

pub fn values(ctx: &Ctx<'_>) -> Result<Value> {
    let s = ctx.settings();
    Ok(json!({
        "fullnameOverride": super::names::RELEASE_JAEGER,
        "provisionDataStore": { "cassandra": false, "elasticsearch": false },
        "storage": { "type": "memory" },
        "allInOne": {
            "enabled": true,
            "image": image(ctx.image(Kind::Jaeger, "jaeger")?, DigestKey::Digest),
            "affinity": off_edge(),
            "resources": resources_burst("100m", "256Mi", "1", "1Gi"),
        },
        "userconfig": jaeger_config(ctx),
        "collector": {
            "enabled": false,
            "service": {
                "type": "NodePort",
                "otlp": {
                    "grpc": { "name": "otlp-grpc", "port": OTLP_GRPC_PORT, "nodePort": s.node_ports.otlp_grpc },
                    "http": { "name": "otlp-http", "port": OTLP_HTTP_PORT, "nodePort": s.node_ports.otlp_http },
                }
            }
        },
        "query": { "enabled": false },
        "agent": { "enabled": false },
    }))
}
