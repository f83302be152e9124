//! Jaeger v2 all-in-one values (chart 4.x, `jaeger:` + `userconfig`): OTLP gRPC and HTTP in, memory storage
//! with a cap, and OTLP reachable from edge nodes through NodePorts.

use anyhow::Result;
use serde_json::{Value, json};

use super::Ctx;
use super::ports::{COLLECTOR_HEALTH, COLLECTOR_METRICS, OTLP_GRPC, OTLP_HTTP};
use super::values::{DigestKey, image, off_edge, resources_burst};
use crate::stack::Kind;

/// The Jaeger v2 (OpenTelemetry Collector based) configuration.
pub fn jaeger_config(ctx: &Ctx<'_>) -> Value {
    json!({
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query", "healthcheckv2"],
            "pipelines": {
                "traces": { "receivers": ["otlp"], "processors": ["batch"], "exporters": ["jaeger_storage_exporter"] }
            },
            "telemetry": {
                "metrics": { "level": "detailed", "readers": [{ "pull": { "exporter": { "prometheus": { "host": "0.0.0.0", "port": COLLECTOR_METRICS } } } }] }
            },
        },
        "extensions": {
            "healthcheckv2": { "use_v2": true, "http": { "endpoint": format!("0.0.0.0:{COLLECTOR_HEALTH}") } },
            // Without this the query service traces itself into the same store (a `jaeger`
            // service among the user's).
            "jaeger_query": { "enable_tracing": false, "storage": { "traces": "memstore" } },
            "jaeger_storage": {
                "backends": { "memstore": { "memory": { "max_traces": ctx.settings().trace_max_traces } } }
            },
        },
        "receivers": {
            "otlp": {
                "protocols": {
                    "grpc": { "endpoint": format!("0.0.0.0:{OTLP_GRPC}") },
                    "http": { "endpoint": format!("0.0.0.0:{OTLP_HTTP}") },
                }
            }
        },
        "processors": { "batch": {} },
        "exporters": { "jaeger_storage_exporter": { "trace_storage": "memstore" } },
    })
}

pub fn values(ctx: &Ctx<'_>) -> Result<Value> {
    Ok(json!({
        "fullnameOverride": super::names::RELEASE_JAEGER,
        // Chart 4.x deploys only the v2 all-in-one (`jaeger:`); `userconfig` replaces its
        // whole configuration (ConfigMap `user-config`).
        "jaeger": {
            "enabled": true,
            "replicas": 1,
            "image": image(ctx.image(Kind::Jaeger, "jaeger")?, DigestKey::Digest),
            "affinity": off_edge(),
            "resources": resources_burst("100m", "256Mi", "1", "1Gi"),
        },
        "userconfig": jaeger_config(ctx),
    }))
}

/// The compose flavour: the all-in-one's whole configuration as a file (`jaeger --config
/// /etc/jaeger/config.yaml`), the same as the chart's `userconfig`, so its metrics are on
/// [`COLLECTOR_METRICS`] where the `jaeger` job scrapes them.
pub fn render_compose(ctx: &Ctx<'_>, files: &mut super::Files) -> Result<()> {
    if ctx.has(Kind::Jaeger) {
        files.add_yaml("jaeger/config.yaml", &jaeger_config(ctx))?;
    }
    Ok(())
}

/// Labels of the chart's all-in-one pod (`jaeger.selectorLabels` + component).
pub fn pod_selector() -> std::collections::BTreeMap<String, String> {
    [
        ("app.kubernetes.io/name", "jaeger"),
        ("app.kubernetes.io/instance", super::names::RELEASE_JAEGER),
        ("app.kubernetes.io/component", "all-in-one"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// OTLP on fixed NodePorts, so edge workloads reach it at `<cloud host IP>:<nodePort>`
/// (the chart's Service can be NodePort but cannot fix the port numbers).
pub fn otlp_node_port_service(
    ctx: &Ctx<'_>,
    selector: std::collections::BTreeMap<String, String>,
) -> k8s_openapi::api::core::v1::Service {
    use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let s = ctx.settings();
    let port = |name: &str, port: u16, node_port: u16| ServicePort {
        name: Some(name.into()),
        port: port.into(),
        target_port: Some(IntOrString::Int(port.into())),
        node_port: Some(node_port.into()),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    Service {
        metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
            name: Some(format!("{}-otlp-nodeport", super::names::RELEASE_JAEGER)),
            namespace: Some(ctx.namespace().into()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("NodePort".into()),
            selector: Some(selector),
            ports: Some(vec![
                port("otlp-grpc", OTLP_GRPC, s.node_ports.otlp_grpc),
                port("otlp-http", OTLP_HTTP, s.node_ports.otlp_http),
            ]),
            ..Default::default()
        }),
        ..Default::default()
    }
}
