//! Blackbox exporter modules (typed) for the cloud↔edge link probes: the cloud's probes of
//! cloudcore, and each edge's probes of what it dials ([`edge_link_targets`]). The probe jobs live
//! with the scrape configs (`prometheus.rs`, `edgemetrics.rs`, Alloy's in `logagent.rs`).

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::names::BLACKBOX_CONFIG_SECRET;
use super::output::{Comment, to_yaml, with_header};
use super::{Ctx, Files};
use crate::stack::Kind;

/// TCP connect: is the port reachable across the link?
pub const MODULE_TCP: &str = "tcp_connect";
/// HTTP GET answering 2xx.
pub const MODULE_HTTP: &str = "http_2xx";

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub modules: BTreeMap<&'static str, Module>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Module {
    pub prober: &'static str,
    pub timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProbe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TcpProbe {
    pub preferred_ip_protocol: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpProbe {
    pub preferred_ip_protocol: &'static str,
    pub valid_status_codes: Vec<u16>,
    pub method: &'static str,
    pub follow_redirects: bool,
}

/// The modules; the timeout stays below the scrape timeout (Prometheus' default is 10s).
pub fn config() -> Config {
    let mut modules = BTreeMap::new();
    modules.insert(
        MODULE_TCP,
        Module {
            prober: "tcp",
            timeout: "5s".into(),
            tcp: Some(TcpProbe { preferred_ip_protocol: "ip4" }),
            http: None,
        },
    );
    modules.insert(
        MODULE_HTTP,
        Module {
            prober: "http",
            timeout: "5s".into(),
            tcp: None,
            http: Some(HttpProbe {
                preferred_ip_protocol: "ip4",
                valid_status_codes: vec![],
                method: "GET",
                follow_redirects: false,
            }),
        },
    );
    Config { modules }
}

/// One cloud endpoint an edge dials across its link, probed from the edge's side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkTarget {
    /// The `port_name` label of its probe.
    pub name: &'static str,
    /// `None`: the cloud host's IP (Kubernetes, from the endpoints ConfigMap); else a host name.
    pub host: Option<String>,
    pub port: u16,
}

/// What every edge must reach across its link, in this flavour. On Kubernetes: cloudcore's
/// cloudhub (websocket 10000, https 10002) and tunnel (10004) ports and the NodePorts the edge's
/// agents and workloads push to. On the compose tier (no KubeEdge): the cloud services the agents
/// push to, by container alias.
pub fn edge_link_targets(ctx: &Ctx<'_>) -> Vec<LinkTarget> {
    let on_cloud = |name, port| LinkTarget { name, host: None, port };
    let at = |name, host: &str, port| LinkTarget { name, host: Some(host.to_string()), port };
    let mut out = Vec::new();
    if ctx.is_kubernetes() {
        let (c, n) = (&ctx.settings().cloudcore, &ctx.settings().node_ports);
        out.extend([
            on_cloud("cloudhub", c.cloudhub),
            on_cloud("cloudhub-https", c.cloudhub_https),
            on_cloud("tunnel", c.tunnel),
        ]);
        if ctx.edges_push() {
            out.push(on_cloud("prometheus", n.prometheus));
        }
        if ctx.has(Kind::Loki) {
            out.push(on_cloud("loki", n.loki));
        }
        if ctx.has(Kind::VictoriaLogs) {
            out.push(on_cloud("victoria-logs", n.victoria_logs));
        }
        if ctx.has(Kind::Jaeger) {
            out.extend([on_cloud("otlp-grpc", n.otlp_grpc), on_cloud("otlp-http", n.otlp_http)]);
        }
    } else {
        if ctx.edges_push() {
            out.push(at("prometheus", &ctx.host("prometheus"), super::ports::PROMETHEUS));
        }
        if ctx.has(Kind::Loki) {
            out.push(at("loki", &ctx.host(super::names::RELEASE_LOKI), super::ports::LOKI));
        }
        if ctx.has(Kind::VictoriaLogs) {
            use super::otelagent::VICTORIA_LOGS_HOST;
            out.push(at("victoria-logs", VICTORIA_LOGS_HOST, super::ports::VICTORIA_LOGS));
        }
        if ctx.has(Kind::Jaeger) {
            out.push(at("otlp-http", &ctx.host(super::names::RELEASE_JAEGER), super::ports::OTLP_HTTP));
        }
    }
    out
}

/// blackbox.yml as deployed: the file in the bundle and the chart's config Secret hold these bytes.
pub fn file_text() -> Result<String> {
    Ok(with_header(Comment::Hash, &to_yaml(&config())?))
}

pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    // The edge link probes read the same modules.
    if ctx.has(Kind::BlackboxExporter) || ctx.has(Kind::LinkProbe) {
        files.add("blackbox/blackbox.yml", file_text()?)?;
    }
    Ok(())
}

/// The key the chart mounts its config from (`/config/blackbox.yaml`, its default `configPath`).
pub const CHART_CONFIG_KEY: &str = "blackbox.yaml";
/// Where the Secret is rendered.
pub const SECRET_FILE: &str = "manifests/05-blackbox-config.yaml";

/// The Secret the chart reads its config from (`configExistingSecretName`). The chart's own
/// `config` would be merged by Helm into its defaults (`http_2xx` gains `valid_http_versions` and
/// `follow_redirects: true`), so the deployed modules would not be blackbox.yml's.
pub fn config_secret(ctx: &Ctx<'_>) -> Result<Secret> {
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(BLACKBOX_CONFIG_SECRET.into()),
            namespace: Some(ctx.namespace().into()),
            ..Default::default()
        },
        string_data: Some([(CHART_CONFIG_KEY.to_string(), file_text()?)].into_iter().collect()),
        ..Default::default()
    })
}

/// The edge link probe (Kubernetes): the blackbox exporter on every edge, on the node's loopback
/// (the edge metrics agent scrapes it there; it dials the cloud ports from the edge's side),
/// blackbox.yml in its ConfigMap.
pub const EDGE_LINK_PROBE_FILE: &str = "manifests/22-edge-link-probe.yaml";

pub fn edge_link_probe(ctx: &Ctx<'_>) -> Result<super::workloads::List> {
    use anyhow::Context;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec, Volume, VolumeMount};

    use super::manifests::{budget_resources, edge_daemonset, locked_down};
    let c = ctx.component(Kind::LinkProbe).context("no edge link probe")?;
    let name = c.name.as_str();
    let port = ctx.settings().edge.link_probe;
    let text = file_text()?;
    let config = super::manifests::edge_config(ctx, name, CONFIG_KEY, &text);
    let container = Container {
        name: name.into(),
        image: Some(ctx.image(Kind::LinkProbe, "blackbox-exporter")?.pinned()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec![
            format!("--config.file=/etc/blackbox/{CONFIG_KEY}"),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ]),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: port.into(),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        readiness_probe: Some(super::manifests::loopback_ready("/metrics", port)),
        resources: budget_resources(c),
        security_context: Some(locked_down()),
        volume_mounts: Some(vec![VolumeMount {
            name: "config".into(),
            mount_path: "/etc/blackbox".into(),
            read_only: Some(true),
            ..Default::default()
        }]),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(vec![Volume { name: "config".into(), config_map: Some(config.source), ..Default::default() }]),
        ..Default::default()
    };
    let daemonset = edge_daemonset(ctx, name, Some(config.annotations), pod);
    Ok(super::workloads::List::of(vec![serde_json::to_value(&config.config_map)?, serde_json::to_value(&daemonset)?]))
}

/// The key (and file name) of blackbox.yml in the link probe's ConfigMap.
pub const CONFIG_KEY: &str = "blackbox.yml";

/// Chart values (prometheus-blackbox-exporter): the config from [`config_secret`].
pub fn values(ctx: &Ctx<'_>) -> Result<serde_json::Value> {
    use super::values::{DigestKey, image, off_edge, resources_burst};
    Ok(serde_json::json!({
        "fullnameOverride": super::names::RELEASE_BLACKBOX,
        "image": image(ctx.image(Kind::BlackboxExporter, "blackbox-exporter")?, DigestKey::Digest),
        "configExistingSecretName": BLACKBOX_CONFIG_SECRET,
        "affinity": off_edge(),
        "resources": resources_burst("20m", "32Mi", "200m", "128Mi"),
        "serviceMonitor": { "enabled": false },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Arch;

    /// Helm merges a chart's `config` into its defaults; the chart reads ours whole from the Secret.
    #[test]
    fn the_chart_deploys_exactly_blackbox_yml() {
        let stack = crate::stack::load(&crate::paths::stack_file()).expect("stack.toml loads");
        let ctx = Ctx::new(&stack, "upstream", Arch::Amd64).expect("profile exists");
        let files = crate::render::render(&ctx).expect("renders");
        let secret: Secret =
            serde_yaml_ng::from_str(files.get(SECRET_FILE).expect("the Secret is rendered")).expect("a Secret");
        let data = secret.string_data.expect("string data");
        assert_eq!(data.keys().collect::<Vec<_>>(), [CHART_CONFIG_KEY]);
        assert_eq!(data[CHART_CONFIG_KEY], files.get("blackbox/blackbox.yml").expect("blackbox.yml"));
        let v = values(&ctx).expect("values");
        assert_eq!(v["configExistingSecretName"], secret.metadata.name.expect("named").as_str());
        assert!(v.get("config").is_none() && v.get("secretConfig").is_none(), "the chart's own config stays unused");
    }
}
