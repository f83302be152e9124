//! Kubernetes manifests, typed: k8s-openapi objects for core kinds, and small
//! structs for the k3s `HelmChart` custom resource.
//!
//! Charts are delivered the way k3s delivers its own (traefik): the archive is
//! copied into `/var/lib/rancher/k3s/server/static/charts/` and the HelmChart
//! points at `https://%{KUBERNETES_API}%/static/charts/<file>`, so k3s'
//! helm-controller installs it with no helm binary and no network.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::{DaemonSet, DaemonSetSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Capabilities, Container, ContainerPort, HostPathVolumeSource, Namespace, NodeAffinity, NodeSelector,
    NodeSelectorRequirement, NodeSelectorTerm, PodSecurityContext, PodSpec, PodTemplateSpec, ResourceRequirements,
    SecurityContext, Toleration, Volume, VolumeMount,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use serde::{Deserialize, Serialize};

use super::names::EDGE_NODE_LABEL;
use super::{Ctx, Files};
use crate::stack::{Component, Kind};

/// The namespace every component runs in.
pub const NAMESPACE_FILE: &str = "manifests/00-namespace.yaml";
/// The edge node exporter's DaemonSet.
pub const EDGE_NODE_EXPORTER_FILE: &str = "manifests/20-edge-node-exporter.yaml";

/// k3s' default `--data-dir` (the cloud script takes another with `--k3s-data-dir`).
pub const K3S_DATA_DIR: &str = "/var/lib/rancher/k3s";
/// Where, under the data dir, k3s serves charts to its helm-controller.
pub const K3S_STATIC_CHARTS: &str = "server/static/charts";
/// Where, under the data dir, k3s imports image archives from, pinned against the kubelet's image GC.
pub const K3S_AUTO_IMPORT: &str = "agent/images";

/// k3s' `helm.cattle.io/v1` HelmChart (the fields this stack uses).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HelmChart {
    pub api_version: String,
    pub kind: String,
    pub metadata: ObjectMeta,
    pub spec: HelmChartSpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct HelmChartSpec {
    pub chart: String,
    pub target_namespace: String,
    pub create_namespace: bool,
    pub timeout: String,
    pub values_content: String,
}

pub(super) fn meta(name: &str, namespace: Option<&str>, labels: &[(&str, &str)]) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.into()),
        namespace: namespace.map(Into::into),
        labels: (!labels.is_empty()).then(|| labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()),
        ..Default::default()
    }
}

pub(super) const PART_OF: (&str, &str) = ("app.kubernetes.io/part-of", "kubeprepare-observability");
pub(super) const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "kubeprepare");

pub fn namespace(ctx: &Ctx<'_>) -> Namespace {
    Namespace { metadata: meta(ctx.namespace(), None, &[PART_OF, MANAGED_BY]), ..Default::default() }
}

/// A StorageClass on k3s' local-path provisioner that keeps data when a claim goes away.
pub fn storage_class(ctx: &Ctx<'_>) -> StorageClass {
    StorageClass {
        metadata: meta(ctx.settings().storage_class.as_str(), None, &[PART_OF, MANAGED_BY]),
        provisioner: "rancher.io/local-path".into(),
        reclaim_policy: Some("Retain".into()),
        volume_binding_mode: Some("WaitForFirstConsumer".into()),
        allow_volume_expansion: Some(false),
        ..Default::default()
    }
}

/// Node affinity that keeps a pod on edge nodes (`Exists`) or off them (`DoesNotExist`).
pub fn edge_affinity(on_edge: bool) -> Affinity {
    node_affinity(EDGE_NODE_LABEL, if on_edge { "Exists" } else { "DoesNotExist" })
}

/// Node affinity required: nodes whose label `key` matches `operator` (`Exists`, `DoesNotExist`).
pub fn node_affinity(key: &str, operator: &str) -> Affinity {
    Affinity {
        node_affinity: Some(NodeAffinity {
            required_during_scheduling_ignored_during_execution: Some(NodeSelector {
                node_selector_terms: vec![NodeSelectorTerm {
                    match_expressions: Some(vec![NodeSelectorRequirement {
                        key: key.into(),
                        operator: operator.into(),
                        values: None,
                    }]),
                    ..Default::default()
                }],
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Resources of an edge component: requests = limits = its budget.
pub fn budget_resources(c: &Component) -> Option<ResourceRequirements> {
    let b = c.budget?;
    let q: BTreeMap<String, Quantity> =
        [("cpu".to_string(), Quantity(b.cpu.to_string())), ("memory".to_string(), Quantity(b.memory.to_string()))]
            .into_iter()
            .collect();
    Some(ResourceRequirements { limits: Some(q.clone()), requests: Some(q), ..Default::default() })
}

/// An edge component's DaemonSet, one pod on every edge node: the edge affinity and taint, the
/// node's network (an edge has no pod network the cloud reaches; its agents meet on 127.0.0.1),
/// the node's DNS (edges have no cluster DNS), no service account token, its containers run as
/// `nobody` unless they say otherwise. `pod` gives the rest; `annotations` go on its pods.
pub fn edge_daemonset(
    ctx: &Ctx<'_>,
    name: &str,
    annotations: Option<BTreeMap<String, String>>,
    pod: PodSpec,
) -> DaemonSet {
    let labels: BTreeMap<String, String> =
        [("app.kubernetes.io/name".to_string(), name.to_string())].into_iter().collect();
    let mut md = meta(name, Some(ctx.namespace()), &[PART_OF, MANAGED_BY]);
    md.labels.get_or_insert_default().extend(labels.clone());
    DaemonSet {
        metadata: md,
        spec: Some(DaemonSetSpec {
            selector: LabelSelector { match_labels: Some(labels.clone()), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels), annotations, ..Default::default() }),
                spec: Some(PodSpec {
                    affinity: Some(edge_affinity(true)),
                    tolerations: Some(vec![Toleration {
                        key: Some(EDGE_NODE_LABEL.into()),
                        operator: Some("Exists".into()),
                        effect: Some("NoSchedule".into()),
                        ..Default::default()
                    }]),
                    host_network: Some(true),
                    dns_policy: Some("Default".into()),
                    automount_service_account_token: Some(false),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(NOBODY),
                        run_as_group: Some(NOBODY),
                        ..Default::default()
                    }),
                    ..pod
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The pod template annotation carrying an edge component's config digest: a changed config
/// rolls its pods.
pub const CONFIG_DIGEST_ANNOTATION: &str = "kubeprepare.io/config-digest";

/// An edge component's config file: the ConfigMap `<name>-config` holding `text` under `key`,
/// the volume source that mounts it, and the annotation its pods carry.
pub struct EdgeConfig {
    pub config_map: k8s_openapi::api::core::v1::ConfigMap,
    pub source: k8s_openapi::api::core::v1::ConfigMapVolumeSource,
    pub annotations: BTreeMap<String, String>,
}

pub fn edge_config(ctx: &Ctx<'_>, name: &str, key: &str, text: &str) -> EdgeConfig {
    let config_map_name = format!("{name}-config");
    let mut metadata = meta(&config_map_name, Some(ctx.namespace()), &[PART_OF, MANAGED_BY]);
    metadata.labels.get_or_insert_default().insert("app.kubernetes.io/name".into(), name.into());
    EdgeConfig {
        config_map: k8s_openapi::api::core::v1::ConfigMap {
            metadata,
            data: Some([(key.to_string(), text.to_string())].into()),
            ..Default::default()
        },
        source: k8s_openapi::api::core::v1::ConfigMapVolumeSource { name: config_map_name, ..Default::default() },
        annotations: [(CONFIG_DIGEST_ANNOTATION.to_string(), crate::oci::sha256(text.as_bytes()))].into(),
    }
}

/// A readiness probe of an edge container that listens on the node's loopback only.
pub fn loopback_ready(path: &str, port: u16) -> k8s_openapi::api::core::v1::Probe {
    k8s_openapi::api::core::v1::Probe {
        http_get: Some(k8s_openapi::api::core::v1::HTTPGetAction {
            host: Some("127.0.0.1".into()),
            path: Some(path.into()),
            port: k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(port.into()),
            ..Default::default()
        }),
        period_seconds: Some(5),
        ..Default::default()
    }
}

/// The variable `key` (the address edges push to, [`super::names::ENV_CLOUD_HOST_IP`], or it as a
/// URL's host, [`super::names::ENV_CLOUD_HOST`]) from the ConfigMap the cloud install writes.
pub fn cloud_host_env(key: &str) -> k8s_openapi::api::core::v1::EnvVar {
    use super::names::ENDPOINTS_CONFIGMAP;
    use k8s_openapi::api::core::v1::{ConfigMapKeySelector, EnvVar, EnvVarSource};
    EnvVar {
        name: key.into(),
        value_from: Some(EnvVarSource {
            config_map_key_ref: Some(ConfigMapKeySelector {
                name: ENDPOINTS_CONFIGMAP.into(),
                key: key.into(),
                optional: Some(false),
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The variable with the node's name (the downward API's `spec.nodeName`).
pub fn node_name_env() -> k8s_openapi::api::core::v1::EnvVar {
    use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, ObjectFieldSelector};
    EnvVar {
        name: super::otelagent::NODE_NAME_ENV.into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector { field_path: "spec.nodeName".into(), ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A container running as root with no capability but `add`: for what the node's root owns.
pub fn as_root(add: &[&str]) -> SecurityContext {
    SecurityContext {
        run_as_non_root: Some(false),
        run_as_user: Some(0),
        run_as_group: Some(0),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            add: (!add.is_empty()).then(|| add.iter().map(|c| c.to_string()).collect()),
        }),
        ..locked_down()
    }
}

/// The user and group edge containers run as.
pub const NOBODY: i64 = 65534;

/// A container's own restrictions: no privilege escalation, no capability, a read-only root.
pub fn locked_down() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        capabilities: Some(Capabilities { drop: Some(vec!["ALL".into()]), ..Default::default() }),
        ..Default::default()
    }
}

/// Node exporter on every edge node: host network (the cloud scrapes `<InternalIP>:9100`),
/// host PID and the host's root read-only, container named after the component so its
/// budget alert finds it in cAdvisor's series.
pub fn edge_node_exporter(ctx: &Ctx<'_>) -> Result<DaemonSet> {
    let c = ctx.component(Kind::NodeExporter).context("no node exporter component")?;
    let image = ctx.image(Kind::NodeExporter, "node-exporter")?;
    let name = c.name.as_str();
    let port = ctx.settings().edge.node_exporter;
    let pod = PodSpec {
        host_pid: Some(true),
        containers: vec![Container {
            name: name.into(),
            image: Some(image.pinned()),
            image_pull_policy: Some("IfNotPresent".into()),
            args: Some(vec![
                "--path.rootfs=/host/root".into(),
                format!("--web.listen-address=:{port}"),
                "--collector.filesystem.mount-points-exclude=^/(dev|proc|sys|var/lib/kubelet/.+|var/lib/edged/.+)($|/)"
                    .into(),
            ]),
            ports: Some(vec![ContainerPort {
                name: Some("metrics".into()),
                container_port: port.into(),
                host_port: Some(port.into()),
                protocol: Some("TCP".into()),
                ..Default::default()
            }]),
            resources: budget_resources(c),
            security_context: Some(SecurityContext {
                allow_privilege_escalation: Some(false),
                read_only_root_filesystem: Some(true),
                ..Default::default()
            }),
            volume_mounts: Some(vec![VolumeMount {
                name: "root".into(),
                mount_path: "/host/root".into(),
                read_only: Some(true),
                mount_propagation: Some("HostToContainer".into()),
                ..Default::default()
            }]),
            ..Default::default()
        }],
        volumes: Some(vec![Volume {
            name: "root".into(),
            host_path: Some(HostPathVolumeSource { path: "/".into(), type_: None }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    Ok(edge_daemonset(ctx, name, None, pod))
}

/// The chart values of a charted component, from its renderer.
pub fn chart_values(ctx: &Ctx<'_>, c: &Component) -> Result<Option<serde_json::Value>> {
    Ok(match c.kind {
        Kind::PrometheusStack => Some(super::kps::values(ctx)?),
        Kind::Loki => Some(super::loki::values(ctx)?),
        Kind::Jaeger => Some(super::jaeger::values(ctx)?),
        Kind::BlackboxExporter => Some(super::blackbox::values(ctx)?),
        Kind::Alloy | Kind::Promtail => Some(super::logagent::values(ctx, c)?),
        _ => None,
    })
}

/// Release name of a charted component (fixes its service names).
pub fn release_name(c: &Component) -> &'static str {
    use super::names::*;
    match c.kind {
        Kind::PrometheusStack => RELEASE_KPS,
        Kind::Loki => RELEASE_LOKI,
        Kind::Jaeger => RELEASE_JAEGER,
        Kind::BlackboxExporter => RELEASE_BLACKBOX,
        Kind::Alloy => RELEASE_ALLOY,
        Kind::Promtail => RELEASE_PROMTAIL,
        _ => "unused",
    }
}

/// Where a charted component's chart values are, for an operator's own `helm install`.
pub fn values_file(c: &Component) -> String {
    format!("values/{}.yaml", c.name)
}

/// Where a charted component's HelmChart is, in the rendered files and in the bundle.
pub fn helm_chart_file(c: &Component) -> String {
    format!("manifests/10-helmchart-{}.yaml", c.name)
}

pub fn helm_chart(ctx: &Ctx<'_>, c: &Component, values: &serde_json::Value) -> Result<Option<HelmChart>> {
    let Some(chart) = &c.chart else { return Ok(None) };
    Ok(Some(HelmChart {
        api_version: "helm.cattle.io/v1".into(),
        kind: "HelmChart".into(),
        metadata: meta(release_name(c), Some("kube-system"), &[PART_OF, MANAGED_BY]),
        spec: HelmChartSpec {
            chart: format!("https://%{{KUBERNETES_API}}%/static/charts/{}", chart.archive_name()),
            target_namespace: ctx.namespace().into(),
            create_namespace: false,
            timeout: "15m".into(),
            values_content: super::output::to_yaml(values)?,
        },
    }))
}

pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    files.add_yaml(NAMESPACE_FILE, &namespace(ctx))?;
    files.add_yaml("manifests/01-storageclass.yaml", &storage_class(ctx))?;
    if ctx.has(Kind::NodeExporter) {
        files.add_yaml(EDGE_NODE_EXPORTER_FILE, &edge_node_exporter(ctx)?)?;
    }
    if ctx.has(Kind::LinkProbe) {
        files.add_yaml(super::blackbox::EDGE_LINK_PROBE_FILE, &super::blackbox::edge_link_probe(ctx)?)?;
    }
    if ctx.profile.component(Kind::BlackboxExporter).is_some_and(|c| c.chart.is_some()) {
        files.add_yaml(super::blackbox::SECRET_FILE, &super::blackbox::config_secret(ctx)?)?;
    }
    // Edge agents reach the charted Jaeger through this NodePort (one built here has no chart to deploy it).
    if ctx.profile.component(Kind::Jaeger).is_some_and(|c| c.chart.is_some()) {
        files.add_yaml(
            "manifests/30-jaeger-otlp-nodeport.yaml",
            &super::jaeger::otlp_node_port_service(ctx, super::jaeger::pod_selector()),
        )?;
    }
    for c in ctx.profile.enabled() {
        let Some(values) = chart_values(ctx, c)? else { continue };
        if c.chart.is_none() {
            continue;
        }
        files.add_yaml(values_file(c), &values)?;
        if let Some(hc) = helm_chart(ctx, c, &values)? {
            files.add_yaml(helm_chart_file(c), &hc)?;
        }
    }
    Ok(())
}
