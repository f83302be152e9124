//! KubeEdge config patches, typed (field names from KubeEdge 1.22's
//! `edgecore.config.kubeedge.io/v1alpha2` and `cloudcore.config.kubeedge.io`):
//!
//! - edgecore: `modules.edgeStream.enable` (the tunnel cloud scrapes go through),
//!   `modules.metaManager.metaServer` on 127.0.0.1 only, and the tailored kubelet's
//!   read-only server on 127.0.0.1:10350 (cloudcore's stream reaches it there);
//! - cloudcore: `modules.cloudStream` on its stream and tunnel ports.
//!
//! The patches are partial documents to deep-merge (no apiVersion: the installed
//! file keeps its own). The same edgecore patch is flattened into `keadm join --set`
//! arguments, so joining and patching cannot drift apart.

use anyhow::Result;
use serde::Serialize;

use super::{Ctx, Files};

#[derive(Debug, Clone, Serialize)]
pub struct EdgecorePatch {
    pub modules: EdgeModules,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EdgeModules {
    pub edged: Edged,
    pub edge_stream: Enable,
    pub meta_manager: MetaManager,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Edged {
    pub tailored_kubelet_config: TailoredKubeletConfig,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TailoredKubeletConfig {
    /// Read-only server address: loopback, cloudcore's stream proxies to it.
    pub address: String,
    pub read_only_port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct Enable {
    pub enable: bool,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaManager {
    pub meta_server: MetaServer,
}

#[derive(Debug, Clone, Serialize)]
pub struct MetaServer {
    pub enable: bool,
    /// Never 0.0.0.0: that would expose an API proxy on every interface.
    pub server: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct CloudcorePatch {
    pub modules: CloudModules,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudModules {
    pub cloud_stream: CloudStream,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CloudStream {
    pub enable: bool,
    pub stream_port: u16,
    pub tunnel_port: u16,
}

pub const METASERVER_ADDRESS: &str = "127.0.0.1:10550";

pub fn edgecore_patch(ctx: &Ctx<'_>) -> EdgecorePatch {
    EdgecorePatch {
        modules: EdgeModules {
            edged: Edged {
                tailored_kubelet_config: TailoredKubeletConfig {
                    address: "127.0.0.1".into(),
                    read_only_port: ctx.settings().edge.kubelet_readonly,
                },
            },
            edge_stream: Enable { enable: true },
            meta_manager: MetaManager { meta_server: MetaServer { enable: true, server: METASERVER_ADDRESS.into() } },
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

/// The edgecore patch as `key.path=value` lines for `keadm join --set`.
pub fn edgecore_set_args(ctx: &Ctx<'_>) -> Vec<String> {
    let value = serde_json::to_value(edgecore_patch(ctx)).unwrap_or_default();
    let mut out = Vec::new();
    flatten(&value, String::new(), &mut out);
    out
}

fn flatten(v: &serde_json::Value, prefix: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(v, key, out);
            }
        }
        serde_json::Value::String(s) => out.push(format!("{prefix}={s}")),
        other => out.push(format!("{prefix}={other}")),
    }
}

pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    files.add_yaml("kubeedge/edgecore-patch.yaml", &edgecore_patch(ctx))?;
    files.add_yaml("kubeedge/cloudcore-patch.yaml", &cloudcore_patch(ctx))?;
    let mut args = edgecore_set_args(ctx).join("\n");
    args.push('\n');
    files.add("kubeedge/keadm-join-set.txt", super::output::with_header(super::output::Comment::Hash, &args))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Arch;

    #[test]
    fn edgecore_patch_enables_the_stream_and_keeps_servers_on_loopback() {
        let stack = crate::stack::load(&crate::paths::stack_file()).unwrap();
        let ctx = Ctx::new(&stack, "upstream", Arch::Amd64).unwrap();
        let args = edgecore_set_args(&ctx);
        assert_eq!(
            args,
            [
                "modules.edged.tailoredKubeletConfig.address=127.0.0.1",
                "modules.edged.tailoredKubeletConfig.readOnlyPort=10350",
                "modules.edgeStream.enable=true",
                "modules.metaManager.metaServer.enable=true",
                "modules.metaManager.metaServer.server=127.0.0.1:10550",
            ]
        );
        assert!(!args.iter().any(|a| a.contains("0.0.0.0")));
    }
}
