//! KubeEdge config patches, typed. Field names are KubeEdge 1.22's, read from
//! `staging/src/github.com/kubeedge/api/apis/componentconfig/{edgecore/v1alpha2,cloudcore/v1alpha1}`:
//!
//! - `kubeedge/edgecore-patch.yaml`: `modules.edgeStream.enable` (the tunnel the cloud's scrapes of
//!   edge kubelets go through; `edgeStream.server` is cloudcore's tunnel address, which `keadm join`
//!   writes, so it is not set here), `modules.metaManager.metaServer` on loopback only, and edged's
//!   kubelet read-only server (`tailoredKubeletConfig.address` / `readOnlyPort`).
//! - `kubeedge/keadm-join-set.txt`: the same edgecore patch flattened to `key=value` lines for
//!   `keadm join --set`, so a node joined with them and a node patched afterwards end up alike.
//! - `kubeedge/cloudcore-patch.yaml`: `modules.cloudStream` on its stream and tunnel ports.
//!   cloudcore's metrics address (`commonConfig.monitorServer.bindAddress`) is the host IP of the
//!   node cloudcore runs on, known only at install time: the cloud script adds it as a second
//!   merge patch (see `scripts.rs`).
//!
//! The patches are partial documents, deep-merged into the installed config. The edgecore patch
//! carries apiVersion and kind so the edge script refuses a config of another version; the
//! cloudcore patch carries neither, because keadm's chart writes `apiVersion:
//! cloudcore.config.kubeedge.io/v1alpha2` for what the Go types call v1alpha1, and the patch must
//! not rewrite it.

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::output::{Comment, with_header};
use super::{Ctx, Files};

pub const EDGECORE_API_VERSION: &str = "edgecore.config.kubeedge.io/v1alpha2";
pub const EDGECORE_KIND: &str = "EdgeCore";
/// Where keadm writes edgecore's config.
pub const EDGECORE_CONFIG: &str = "/etc/kubeedge/config/edgecore.yaml";
/// metaServer's address: KubeEdge's default, loopback. Never 0.0.0.0, which would expose an
/// API-server proxy on every interface.
pub fn metaserver_address() -> String {
    format!("127.0.0.1:{}", super::ports::METASERVER)
}
/// edged's read-only server address: loopback, where the edge side of cloudcore's stream calls it.
pub const KUBELET_READONLY_ADDRESS: &str = "127.0.0.1";

/// Where keadm installs cloudcore: namespace, ConfigMap, its key, and the Deployment.
pub const CLOUDCORE_NAMESPACE: &str = "kubeedge";
pub const CLOUDCORE_CONFIGMAP: &str = "cloudcore";
pub const CLOUDCORE_CONFIG_KEY: &str = "cloudcore.yaml";
pub const CLOUDCORE_DEPLOYMENT: &str = "cloudcore";
/// The label of cloudcore's pods (the cloudcore scrape job keeps on it too).
pub const CLOUDCORE_POD_SELECTOR: &str = "kubeedge=cloudcore";

pub const PATCH_EDGECORE: &str = "kubeedge/edgecore-patch.yaml";
pub const PATCH_CLOUDCORE: &str = "kubeedge/cloudcore-patch.yaml";
pub const JOIN_SET_FILE: &str = "kubeedge/keadm-join-set.txt";

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgecorePatch {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub modules: EdgeModules,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeModules {
    pub edged: Edged,
    pub edge_stream: Enable,
    pub meta_manager: MetaManager,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edged {
    pub tailored_kubelet_config: TailoredKubeletConfig,
}

/// The read-only server of edged's tailored kubelet config (`/metrics/cadvisor`, `/metrics/resource`),
/// and the taints the node registers with.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TailoredKubeletConfig {
    pub address: String,
    pub read_only_port: u16,
    pub register_with_taints: Vec<Taint>,
}

/// A node taint (`k8s.io/api/core/v1.Taint`, no value).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Taint {
    pub key: &'static str,
    pub effect: &'static str,
}

/// Every edge node's taint: KubeEdge sets none, so without it any pod (k3s's `helm-install-*` Jobs,
/// a chart's Deployment) can land on an edge and hang there. Only edge DaemonSets tolerate it.
pub const EDGE_TAINT: Taint = Taint { key: super::names::EDGE_NODE_LABEL, effect: "NoSchedule" };

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Enable {
    pub enable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaManager {
    pub meta_server: MetaServer,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetaServer {
    pub enable: bool,
    pub server: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CloudcorePatch {
    pub modules: CloudModules,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudModules {
    pub cloud_stream: CloudStream,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudStream {
    pub enable: bool,
    pub stream_port: u16,
    pub tunnel_port: u16,
}

pub fn edgecore_patch(ctx: &Ctx<'_>) -> EdgecorePatch {
    EdgecorePatch {
        api_version: EDGECORE_API_VERSION,
        kind: EDGECORE_KIND,
        modules: EdgeModules {
            // Through the tunnel, edgecore's stream calls edged at 127.0.0.1:10350 on the edge
            // (KubeEdge's constants.ServerPort): a different port here breaks the edge scrapes.
            edged: Edged {
                tailored_kubelet_config: TailoredKubeletConfig {
                    address: KUBELET_READONLY_ADDRESS.into(),
                    read_only_port: ctx.settings().edge.kubelet_readonly,
                    register_with_taints: vec![EDGE_TAINT],
                },
            },
            edge_stream: Enable { enable: true },
            meta_manager: MetaManager { meta_server: MetaServer { enable: true, server: metaserver_address() } },
        },
    }
}

pub fn cloudcore_patch(ctx: &Ctx<'_>) -> CloudcorePatch {
    let c = &ctx.settings().cloudcore;
    CloudcorePatch {
        modules: CloudModules {
            cloud_stream: CloudStream { enable: true, stream_port: c.stream, tunnel_port: c.tunnel },
        },
    }
}

/// The edgecore patch's `modules` as `key.path=value` lines for `keadm join --set`
/// (apiVersion and kind are keadm's to write); a list item is `key.path[i].field=value`, as
/// keadm's setter reads it.
pub fn edgecore_set_args(ctx: &Ctx<'_>) -> Vec<String> {
    let modules = serde_json::to_value(edgecore_patch(ctx).modules)
        .expect("a struct of strings, bools and integers always serializes");
    let mut out = Vec::new();
    flatten(&modules, "modules".into(), &mut out);
    out
}

fn flatten(v: &serde_json::Value, prefix: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                flatten(v, format!("{prefix}.{k}"), out);
            }
        }
        serde_json::Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                flatten(v, format!("{prefix}[{i}]"), out);
            }
        }
        serde_json::Value::String(s) => out.push(format!("{prefix}={s}")),
        other => out.push(format!("{prefix}={other}")),
    }
}

/// Read `keadm join --set` lines back into the document they set (`key[i]` a list item, values
/// read as YAML scalars where they parse); `#` lines and blank lines are skipped. The inverse of
/// [`edgecore_set_args`], and what `validate` checks the join file with.
pub fn parse_set_args(text: &str) -> Result<serde_json::Value> {
    use serde_json::{Map, Value};
    let mut root = Value::Object(Map::new());
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#')) {
        let n = n + 1;
        let (key, raw) = line.split_once('=').with_context(|| format!("line {n}: no `=` in {line:?}"))?;
        let value: Value = serde_yaml_ng::from_str(raw).unwrap_or_else(|_| Value::String(raw.into()));
        let mut node = &mut root;
        for part in key.split('.') {
            let (name, index) = match part.strip_suffix(']').and_then(|p| p.split_once('[')) {
                Some((name, i)) => (
                    name,
                    Some(
                        i.parse::<usize>()
                            .ok()
                            .with_context(|| format!("line {n}: {key:?}: `[{i}]` is not a list index"))?,
                    ),
                ),
                None => (part, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
                bail!("line {n}: {key:?} is not a dotted field path (`a.b[0].c`)");
            }
            let map = node.as_object_mut().with_context(|| format!("line {n}: {key} sets a field below a value"))?;
            node = map
                .entry(name)
                .or_insert_with(|| if index.is_some() { Value::Array(Vec::new()) } else { Value::Object(Map::new()) });
            if let Some(i) = index {
                let list = node.as_array_mut().with_context(|| format!("line {n}: {key}: {name} is not a list"))?;
                if i == list.len() {
                    list.push(Value::Object(Map::new()));
                }
                node = list.get_mut(i).with_context(|| format!("line {n}: {key}: index {i} skips list items"))?;
            }
        }
        if !node.as_object().is_some_and(Map::is_empty) {
            bail!("line {n}: {key} is set twice");
        }
        *node = value;
    }
    Ok(root)
}

pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    files.add_yaml(PATCH_EDGECORE, &edgecore_patch(ctx))?;
    files.add_yaml(PATCH_CLOUDCORE, &cloudcore_patch(ctx))?;
    let mut lines =
        String::from("# `keadm join --set` values, one per line (install-observability-edge.sh --print-join-args).\n");
    for arg in edgecore_set_args(ctx) {
        lines.push_str(&arg);
        lines.push('\n');
    }
    files.add(JOIN_SET_FILE, with_header(Comment::Hash, &lines))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Arch;

    fn check(profile: &str, f: impl Fn(&Ctx<'_>)) {
        let stack = crate::stack::load(&crate::paths::stack_file()).expect("stack.toml loads");
        f(&Ctx::new(&stack, profile, Arch::Amd64).expect("profile exists"));
    }

    #[test]
    fn set_args_are_the_patch_flattened() {
        check("upstream", |ctx| {
            let readonly = ctx.settings().edge.kubelet_readonly;
            assert_eq!(
                edgecore_set_args(ctx),
                [
                    "modules.edged.tailoredKubeletConfig.address=127.0.0.1".to_string(),
                    format!("modules.edged.tailoredKubeletConfig.readOnlyPort={readonly}"),
                    "modules.edged.tailoredKubeletConfig.registerWithTaints[0].key=node-role.kubernetes.io/edge".into(),
                    "modules.edged.tailoredKubeletConfig.registerWithTaints[0].effect=NoSchedule".into(),
                    "modules.edgeStream.enable=true".into(),
                    "modules.metaManager.metaServer.enable=true".into(),
                    format!("modules.metaManager.metaServer.server={}", metaserver_address()),
                ]
            );
        });
    }

    #[test]
    fn flattening_round_trips() {
        for profile in ["upstream", "local"] {
            check(profile, |ctx| {
                let back = parse_set_args(&edgecore_set_args(ctx).join("\n")).unwrap();
                let want = serde_json::json!({ "modules": serde_json::to_value(edgecore_patch(ctx).modules).unwrap() });
                assert_eq!(back, want, "{profile}");
            });
        }
    }

    #[test]
    fn edgecore_patch_enables_the_stream_and_binds_only_loopback() {
        check("upstream", |ctx| {
            let p = edgecore_patch(ctx);
            assert!(p.modules.edge_stream.enable);
            assert!(p.modules.meta_manager.meta_server.enable);
            assert!(p.modules.meta_manager.meta_server.server.starts_with("127.0.0.1:"));
            assert_eq!(p.modules.edged.tailored_kubelet_config.address, "127.0.0.1");
            let mut files = Files::new();
            render(ctx, &mut files).unwrap();
            for (path, text) in files.iter() {
                assert!(!text.contains("0.0.0.0"), "{path} binds every interface");
            }
        });
    }

    #[test]
    fn patches_render_with_the_settings_ports() {
        check("local", |ctx| {
            let mut files = Files::new();
            render(ctx, &mut files).unwrap();
            let cloud = files.get(PATCH_CLOUDCORE).unwrap();
            let s = ctx.settings();
            let (stream, tunnel) = (s.cloudcore.stream, s.cloudcore.tunnel);
            assert!(
                cloud.contains(&format!("streamPort: {stream}")) && cloud.contains(&format!("tunnelPort: {tunnel}")),
                "{cloud}"
            );
            let edge = files.get(PATCH_EDGECORE).unwrap();
            assert!(edge.contains(&format!("apiVersion: {EDGECORE_API_VERSION}")), "{edge}");
            assert!(edge.contains(&format!("readOnlyPort: {}", s.edge.kubelet_readonly)), "{edge}");
        });
    }
}
