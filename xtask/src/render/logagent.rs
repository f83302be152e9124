//! The edge log agent: Grafana Alloy (default) or Promtail (legacy, end-of-life).
//!
//! Edge nodes have no cluster DNS and no service network (SPEC.md), so the agent
//! pushes to the Loki gateway's NodePort on the cloud host:
//! `http://$CLOUD_HOST_IP:<nodePort>/loki/api/v1/push`, with `CLOUD_HOST_IP` taken
//! from the `observability-endpoints` ConfigMap the cloud install script writes.
//! It tails `/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log`, takes namespace,
//! pod and container from the path, and keeps its read positions on a hostPath.
//!
//! Alloy also carries the edge's metrics (Promtail does not: a profile with it has no edge
//! metrics push): it scrapes node exporter and itself on 127.0.0.1 and remote-writes to
//! Prometheus's NodePort, with its WAL on the same hostPath as the read positions. Its WAL keeps
//! the buffer window (`settings.edge_buffer.window`); a sample older than that when sent is dropped.
//!
//! The compose flavour writes one Alloy config per edge node, `log-agent/<edge>/config.alloy`,
//! pushing to `http://loki:3100/loki/api/v1/push` and `http://prometheus:9090/api/v1/write` with
//! the node's name as a literal `node` label (no ConfigMap, no downward API). Promtail has no
//! compose flavour (`Ctx::compose` refuses it).

use anyhow::{Result, bail};
use serde_json::{Value as Json, json};

use super::alloy::{Block, Value, print};
use super::names::{
    ENDPOINTS_CONFIGMAP, ENV_CLOUD_HOST, JOB_EDGE_LINK_PROBE, JOB_EDGE_METRICS, JOB_EDGE_NODE_EXPORTER, LABEL_NODE,
    LABEL_PORT_NAME, RELEASE_LOKI,
};
use super::output::{Comment, with_header};
use super::values::{DigestKey, image, on_edge, to_value};
use super::{Ctx, Files};
use crate::stack::{Component, Kind};

/// Glob of every container log kubelet/edged writes.
pub const POD_LOGS: &str = "/var/log/pods/*/*/*.log";
/// Regex over a pod log path capturing namespace, pod and container.
pub const PATH_REGEX: &str =
    r"^/var/log/pods/(?P<namespace>[^_/]+)_(?P<pod>[^_/]+)_[^/]+/(?P<container>[^/]+)/[^/]+\.log$";
/// hostPath keeping the agent's read positions across restarts.
pub const STATE_DIR: &str = "/var/lib/kubeprepare-log-agent";
const NODE_NAME_ENV: &str = "NODE_NAME";

/// The Loki push path on the cloud NodePort.
fn push_path() -> &'static str {
    "/loki/api/v1/push"
}

/// `http://$CLOUD_HOST:<port><path>`, resolved by Alloy at start.
fn cloud_url(port: u16, path: &str) -> Value {
    Value::Call(
        "string.format".into(),
        vec![Value::str(format!("http://%s:%d{path}")), Value::env(ENV_CLOUD_HOST), Value::Int(port.into())],
    )
}

/// The Alloy pipelines: pod logs (discover files → tail → parse CRI → path labels → push) and
/// metrics (scrape on loopback → remote-write), both to the cloud's NodePorts.
pub fn alloy_config(ctx: &Ctx<'_>) -> Result<String> {
    let ports = &ctx.settings().node_ports;
    pipeline(
        ctx,
        cloud_url(ports.loki, push_path()),
        cloud_url(ports.prometheus, super::edgemetrics::REMOTE_WRITE_PATH),
        Value::env(NODE_NAME_ENV),
    )
}

/// The compose flavour's Alloy config for edge node `node`: Loki and Prometheus by their container
/// aliases, the node's name as a literal label.
pub fn alloy_config_compose(ctx: &Ctx<'_>, node: &str) -> Result<String> {
    let url = format!("http://{}:{}{}", ctx.host(RELEASE_LOKI), super::ports::LOKI, push_path());
    pipeline(ctx, Value::str(url), Value::str(super::edgemetrics::compose_remote_write_url(ctx)), Value::str(node))
}

/// Scrape `127.0.0.1:<port>` as `job` and forward to `to`.
fn scrape(ctx: &Ctx<'_>, job: &str, port: u16, to: &Block) -> Block {
    Block::new("prometheus.scrape", Some(&job.replace('-', "_")))
        .attr("job_name", Value::str(job))
        .attr(
            "targets",
            Value::List(vec![Value::Object(vec![("__address__".into(), Value::str(format!("127.0.0.1:{port}")))])]),
        )
        .attr("scrape_interval", Value::str(ctx.scrape_interval().to_string()))
        .attr("forward_to", Value::List(vec![to.export("receiver")]))
}

/// The metrics half: Alloy's own metrics (its `up` is the edge's heartbeat, as the Prometheus
/// agent's is) and node exporter's, remote-written with the node's name.
fn metrics(ctx: &Ctx<'_>, url: Value, node: Value) -> Result<Vec<Block>> {
    let window = super::edgemetrics::buffer_window(ctx).to_string();
    let write = Block::new("prometheus.remote_write", Some("cloud"))
        .attr("external_labels", Value::Object(vec![(LABEL_NODE.into(), node)]))
        .block(
            Block::new("endpoint", None).attr("url", url).block(
                Block::new("queue_config", None)
                    .attr("sample_age_limit", Value::str(&window))
                    .attr("batch_send_deadline", Value::str(super::edgemetrics::send_deadline(ctx).to_string()))
                    .attr("max_backoff", Value::str("5s"))
                    .attr("max_shards", Value::Int(super::edgemetrics::MAX_SHARDS.into())),
            ),
        )
        // Samples stay in the WAL for the window while the link is down.
        .block(Block::new("wal", None).attr("max_keepalive_time", Value::str(&window)));
    let edge = &ctx.settings().edge;
    let mut blocks = vec![scrape(ctx, JOB_EDGE_METRICS, edge.metrics_agent, &write)];
    if ctx.has(Kind::NodeExporter) {
        blocks.push(scrape(ctx, JOB_EDGE_NODE_EXPORTER, edge.node_exporter, &write));
    }
    blocks.extend(link_probe(ctx, &write)?);
    blocks.push(write);
    Ok(blocks)
}

/// The edge's probes of what it dials across the link ([`super::blackbox::edge_link_targets`]),
/// by Alloy's embedded blackbox exporter with the cloud's modules; relabelled to the link-probe
/// job, each target's `instance` and `port_name` (told by its port), and pushed with the rest.
fn link_probe(ctx: &Ctx<'_>, to: &Block) -> Result<Vec<Block>> {
    use super::blackbox::{MODULE_TCP, config, edge_link_targets};
    let targets = edge_link_targets(ctx);
    let rule = |pairs: Vec<(&str, Value)>| pairs.into_iter().fold(Block::new("rule", None), |b, (k, v)| b.attr(k, v));
    let param = || Value::List(vec![Value::str("__param_target")]);
    let mut exporter = Block::new("prometheus.exporter.blackbox", Some("link"))
        .attr("config", Value::str(super::output::to_yaml(&config())?));
    let mut relabel = Block::new("discovery.relabel", Some("link_probe"))
        .block(rule(vec![("target_label", Value::str("job")), ("replacement", Value::str(JOB_EDGE_LINK_PROBE))]))
        .block(rule(vec![("source_labels", param()), ("target_label", Value::str("instance"))]));
    for t in &targets {
        let address = match &t.host {
            Some(host) => Value::str(format!("{host}:{}", t.port)),
            None => Value::Call(
                "string.format".into(),
                vec![Value::str("%s:%d"), Value::env(ENV_CLOUD_HOST), Value::Int(t.port.into())],
            ),
        };
        exporter = exporter.block(
            Block::new("target", None)
                .attr("name", Value::str(t.name))
                .attr("address", address)
                .attr("module", Value::str(MODULE_TCP)),
        );
        relabel = relabel.block(rule(vec![
            ("source_labels", param()),
            ("regex", Value::str(format!(".*:{}", t.port))),
            ("target_label", Value::str(LABEL_PORT_NAME)),
            ("replacement", Value::str(t.name)),
        ]));
    }
    let relabel = relabel.attr("targets", exporter.export("targets"));
    let scrape = Block::new("prometheus.scrape", Some("link_probe"))
        .attr("targets", relabel.export("output"))
        .attr("scrape_interval", Value::str(ctx.scrape_interval().to_string()))
        .attr("forward_to", Value::List(vec![to.export("receiver")]));
    Ok(vec![exporter, relabel, scrape])
}

fn pipeline(ctx: &Ctx<'_>, url: Value, metrics_url: Value, node: Value) -> Result<String> {
    let write = Block::new("loki.write", Some("cloud")).block(Block::new("endpoint", None).attr("url", url)).attr(
        "external_labels",
        Value::Object(vec![("cluster".into(), Value::str("kubeprepare")), (LABEL_NODE.into(), node.clone())]),
    );
    let labels: Vec<(String, Value)> =
        ["namespace", "pod", "container"].iter().map(|l| (l.to_string(), Value::str(""))).collect();
    let process = Block::new("loki.process", Some("pods"))
        .attr("forward_to", Value::List(vec![write.export("receiver")]))
        .block(Block::new("stage.cri", None))
        .block(
            Block::new("stage.regex", None)
                .attr("source", Value::str("filename"))
                .attr("expression", Value::str(PATH_REGEX)),
        )
        .block(Block::new("stage.labels", None).attr("values", Value::Object(labels)))
        .block(Block::new("stage.label_drop", None).attr("values", Value::List(vec![Value::str("filename")])));
    let files = Block::new("local.file_match", Some("pods"))
        .attr("path_targets", Value::List(vec![Value::Object(vec![("__path__".into(), Value::str(POD_LOGS))])]));
    let source = Block::new("loki.source.file", Some("pods"))
        .attr("targets", files.export("targets"))
        .attr("forward_to", Value::List(vec![process.export("receiver")]));
    let mut blocks = vec![files, source, process, write];
    blocks.extend(metrics(ctx, metrics_url, node)?);
    let body = print(&blocks);
    Ok(with_header(Comment::Slash, &body))
}

fn env_common() -> Json {
    json!([{ "name": NODE_NAME_ENV, "valueFrom": { "fieldRef": { "fieldPath": "spec.nodeName" } } }])
}

fn env_from() -> Json {
    json!([{ "configMapRef": { "name": ENDPOINTS_CONFIGMAP } }])
}

fn tolerations() -> Json {
    json!([{ "key": super::names::EDGE_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule" }])
}

fn state_volume() -> Json {
    json!({ "name": "agent-state", "hostPath": { "path": STATE_DIR, "type": "DirectoryOrCreate" } })
}

/// Chart values of the enabled log agent.
pub fn values(ctx: &Ctx<'_>, c: &Component) -> Result<Json> {
    let resources = super::manifests::budget_resources(c).map(|r| to_value(&r));
    match c.kind {
        Kind::Alloy => Ok(json!({
            "image": image(ctx.image(Kind::Alloy, "alloy")?, DigestKey::Digest),
            // Config changes roll the DaemonSet; no reloader image to carry offline.
            "configReloader": { "enabled": false },
            "crds": { "create": false },
            "alloy": {
                "configMap": { "create": true, "content": alloy_config(ctx)? },
                "storagePath": STATE_DIR,
                // Offline: no usage reporting to the internet.
                "enableReporting": false,
                "mounts": {
                    "varlog": true,
                    "extra": [{ "name": "agent-state", "mountPath": STATE_DIR }],
                },
                // Its HTTP server (metrics, the chart's readiness probe), which it scrapes on loopback.
                // It listens on every interface because the probe dials the host's address.
                "listenPort": ctx.settings().edge.metrics_agent,
                "extraEnv": env_common(),
                "envFrom": env_from(),
                "resources": resources,
            },
            "controller": {
                "type": "daemonset",
                "hostNetwork": true,
                "dnsPolicy": "Default",
                "affinity": on_edge(),
                "tolerations": tolerations(),
                "volumes": { "extra": [state_volume()] },
            },
            "service": { "enabled": false },
            "serviceMonitor": { "enabled": false },
        })),
        Kind::Promtail => Ok(json!({
            "image": image(ctx.image(Kind::Promtail, "promtail")?, DigestKey::Digest),
            "daemonset": { "enabled": true },
            "hostNetwork": true,
            "affinity": on_edge(),
            "tolerations": tolerations(),
            "resources": resources,
            "extraArgs": ["-config.expand-env=true"],
            "extraEnv": env_common(),
            "extraEnvFrom": env_from(),
            "extraVolumes": [state_volume()],
            "extraVolumeMounts": [{ "name": "agent-state", "mountPath": STATE_DIR }],
            "serviceMonitor": { "enabled": false },
            "config": {
                "positions": { "filename": format!("{STATE_DIR}/positions.yaml") },
                "clients": [{
                    "url": format!("http://${{{ENV_CLOUD_HOST}}}:{}{}", ctx.settings().node_ports.loki, push_path()),
                    "external_labels": { "cluster": "kubeprepare", LABEL_NODE: format!("${{{NODE_NAME_ENV}}}") },
                }],
                "snippets": {
                    // Edge nodes cannot reach the API server for pod discovery: tail the files.
                    "scrapeConfigs": super::output::to_yaml(&json!([{
                        "job_name": "edge-pod-logs",
                        "static_configs": [{ "targets": ["localhost"], "labels": { "__path__": POD_LOGS } }],
                        "pipeline_stages": [
                            { "cri": {} },
                            { "regex": { "source": "filename", "expression": PATH_REGEX } },
                            { "labels": { "namespace": null, "pod": null, "container": null } },
                            { "labeldrop": ["filename"] },
                        ],
                    }]))?,
                },
            },
        })),
        other => bail!("{other} is not a log agent"),
    }
}

pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    if !ctx.has(Kind::Alloy) {
        return Ok(());
    }
    match ctx.compose_topology() {
        None => files.add("log-agent/config.alloy", alloy_config(ctx)?)?,
        Some(t) => {
            for edge in &t.edges {
                files.add(format!("log-agent/{edge}/config.alloy"), alloy_config_compose(ctx, edge)?)?;
            }
        }
    }
    Ok(())
}
