//! The edge log agent: Grafana Alloy (default) or Promtail (legacy, end-of-life).
//!
//! Edge nodes have no cluster DNS and no service network (SPEC.md), so the agent
//! pushes to the Loki gateway's NodePort on the cloud host:
//! `http://$CLOUD_HOST_IP:<nodePort>/loki/api/v1/push`, with `CLOUD_HOST_IP` taken
//! from the `observability-endpoints` ConfigMap the cloud install script writes.
//! It tails `/var/log/pods/<ns>_<pod>_<uid>/<container>/<n>.log`, takes namespace,
//! pod and container from the path, and keeps its read positions on a hostPath.
//!
//! The compose flavour writes one Alloy config per edge node, `log-agent/<edge>/config.alloy`,
//! pushing to `http://loki:3100/loki/api/v1/push` with the node's name as a literal `node` label
//! (no ConfigMap, no downward API). Promtail has no compose flavour (`Ctx::compose` refuses it).

use anyhow::{Result, bail};
use serde_json::{Value as Json, json};

use super::alloy::{Block, Value, print};
use super::names::{ENDPOINTS_CONFIGMAP, ENV_CLOUD_HOST_IP, LABEL_NODE, RELEASE_LOKI};
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

/// The Alloy pipeline: discover files → tail → parse CRI → path labels → push to the cloud.
pub fn alloy_config(ctx: &Ctx<'_>) -> String {
    let port = ctx.settings().node_ports.loki;
    let url = Value::Call(
        "string.format".into(),
        vec![
            Value::str(format!("http://%s:%d{}", push_path())),
            Value::env(ENV_CLOUD_HOST_IP),
            Value::Int(port.into()),
        ],
    );
    pipeline(url, Value::env(NODE_NAME_ENV))
}

/// The compose flavour's Alloy config for edge node `node`: Loki by its container alias, the node's
/// name as a literal label.
pub fn alloy_config_compose(ctx: &Ctx<'_>, node: &str) -> String {
    let url = format!("http://{}:{}{}", ctx.host(RELEASE_LOKI), super::loki::HTTP_PORT, push_path());
    pipeline(Value::str(url), Value::str(node))
}

fn pipeline(url: Value, node: Value) -> String {
    let write = Block::new("loki.write", Some("cloud")).block(Block::new("endpoint", None).attr("url", url)).attr(
        "external_labels",
        Value::Object(vec![("cluster".into(), Value::str("kubeprepare")), (LABEL_NODE.into(), node)]),
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
    let body = print(&[files, source, process, write]);
    with_header(Comment::Slash, &body)
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
                "configMap": { "create": true, "content": alloy_config(ctx) },
                "storagePath": STATE_DIR,
                // Offline: no usage reporting to the internet.
                "enableReporting": false,
                "mounts": {
                    "varlog": true,
                    "extra": [{ "name": "agent-state", "mountPath": STATE_DIR }],
                },
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
                    "url": format!("http://${{{ENV_CLOUD_HOST_IP}}}:{}{}", ctx.settings().node_ports.loki, push_path()),
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
        None => files.add("log-agent/config.alloy", alloy_config(ctx))?,
        Some(t) => {
            for edge in &t.edges {
                files.add(format!("log-agent/{edge}/config.alloy"), alloy_config_compose(ctx, edge))?;
            }
        }
    }
    Ok(())
}
