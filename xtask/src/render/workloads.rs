//! The profile's own components (those with no chart: the local profile's) as Kubernetes
//! objects, from the same model the compose flavour runs: each a `v1 List` in `manifests/`.
//!
//! Prometheus runs on a control-plane node, where iptables-manager's DNAT of the tunnel port is
//! (KubeEdge's external iptables-manager runs on control-plane nodes; with a single cloud node
//! cloudcore is there too): its edge kubelet jobs reach the edges only from there.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, HTTPGetAction, KeyToPath,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, Service, ServiceAccount, ServicePort, ServiceSpec, Volume,
    VolumeMount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::{Ctx, Files, manifests, ports};
use crate::stack::Kind;

/// The label k3s gives its servers (and kubeadm its control-plane nodes).
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// The manifest of the standalone Prometheus.
pub const PROMETHEUS_FILE: &str = "manifests/40-prometheus.yaml";

/// A `v1 List`: what `kubectl apply -f` and the harness apply, item by item.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct List {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub items: Vec<serde_json::Value>,
}

impl List {
    fn of(items: Vec<serde_json::Value>) -> Self {
        List { api_version: "v1", kind: "List", items }
    }
}

fn item<T: Serialize>(object: &T) -> Result<serde_json::Value> {
    Ok(serde_json::to_value(object)?)
}

fn labels(name: &str) -> BTreeMap<String, String> {
    [("app.kubernetes.io/name".to_string(), name.to_string())].into_iter().collect()
}

/// The project's labels and the name label (the pods' selector).
fn meta(ctx: &Ctx<'_>, name: &str, namespaced: bool) -> ObjectMeta {
    let mut md =
        manifests::meta(name, namespaced.then(|| ctx.namespace()), &[manifests::PART_OF, manifests::MANAGED_BY]);
    md.labels.get_or_insert_default().extend(labels(name));
    md
}

/// The standalone Prometheus: its service account allowed the node and pod discovery its jobs use,
/// its configuration and rules, one replica on a control-plane node, its Service and the NodePort
/// edge agents remote-write to.
pub fn prometheus(ctx: &Ctx<'_>) -> Result<List> {
    const NAME: &str = "prometheus";
    let image = ctx.image(Kind::Prometheus, "prometheus")?;
    let config = super::output::to_yaml(&super::prometheus::config(ctx))?;
    let rules = super::output::to_yaml(&super::rules::rules_file(ctx))?;
    // `rule_files` names it relative to prometheus.yml's folder.
    let rules_path =
        super::rules::RULES_FILE.strip_prefix("prometheus/").context("the rules file is not under prometheus/")?;
    let rules_key = rules_path.rsplit('/').next().unwrap_or(rules_path);
    let account = ServiceAccount { metadata: meta(ctx, NAME, true), ..Default::default() };
    let role = ClusterRole {
        metadata: meta(ctx, "kubeprepare-prometheus", false),
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(vec![String::new()]),
                resources: Some(["nodes", "nodes/metrics", "services", "endpoints", "pods"].map(String::from).to_vec()),
                verbs: ["get", "list", "watch"].map(String::from).to_vec(),
                ..Default::default()
            },
            PolicyRule {
                non_resource_urls: Some(vec!["/metrics".into()]),
                verbs: vec!["get".into()],
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let binding = ClusterRoleBinding {
        metadata: meta(ctx, "kubeprepare-prometheus", false),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: "kubeprepare-prometheus".into(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: NAME.into(),
            namespace: Some(ctx.namespace().into()),
            ..Default::default()
        }]),
    };
    let config_map = ConfigMap {
        metadata: meta(ctx, "prometheus-config", true),
        data: Some([("prometheus.yml".to_string(), config), (rules_key.to_string(), rules)].into_iter().collect()),
        ..Default::default()
    };
    let mut args = vec![
        "--config.file=/etc/prometheus/prometheus.yml".to_string(),
        "--storage.tsdb.path=/prometheus".into(),
        format!("--web.listen-address=:{}", ports::PROMETHEUS),
    ];
    if ctx.edges_push() {
        args.push("--web.enable-remote-write-receiver".into());
    }
    let deployment = Deployment {
        metadata: meta(ctx, NAME, true),
        spec: Some(DeploymentSpec {
            replicas: Some(1),
            // One TSDB: the old pod goes before the new one opens it.
            strategy: Some(DeploymentStrategy { type_: Some("Recreate".into()), ..Default::default() }),
            selector: LabelSelector { match_labels: Some(labels(NAME)), ..Default::default() },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta { labels: Some(labels(NAME)), ..Default::default() }),
                spec: Some(PodSpec {
                    service_account_name: Some(NAME.into()),
                    affinity: Some(manifests::node_affinity(CONTROL_PLANE_LABEL, "Exists")),
                    security_context: Some(PodSecurityContext {
                        run_as_non_root: Some(true),
                        run_as_user: Some(65534),
                        run_as_group: Some(65534),
                        fs_group: Some(65534),
                        ..Default::default()
                    }),
                    containers: vec![Container {
                        name: NAME.into(),
                        image: Some(image.pinned()),
                        image_pull_policy: Some("IfNotPresent".into()),
                        args: Some(args),
                        ports: Some(vec![ContainerPort {
                            name: Some("web".into()),
                            container_port: ports::PROMETHEUS.into(),
                            protocol: Some("TCP".into()),
                            ..Default::default()
                        }]),
                        readiness_probe: Some(Probe {
                            http_get: Some(HTTPGetAction {
                                path: Some("/-/ready".into()),
                                port: IntOrString::String("web".into()),
                                ..Default::default()
                            }),
                            period_seconds: Some(2),
                            ..Default::default()
                        }),
                        volume_mounts: Some(vec![
                            VolumeMount {
                                name: "config".into(),
                                mount_path: "/etc/prometheus".into(),
                                read_only: Some(true),
                                ..Default::default()
                            },
                            VolumeMount { name: "data".into(), mount_path: "/prometheus".into(), ..Default::default() },
                        ]),
                        ..Default::default()
                    }],
                    volumes: Some(vec![
                        Volume {
                            name: "config".into(),
                            config_map: Some(ConfigMapVolumeSource {
                                name: "prometheus-config".into(),
                                items: Some(vec![
                                    KeyToPath {
                                        key: "prometheus.yml".into(),
                                        path: "prometheus.yml".into(),
                                        mode: None,
                                    },
                                    KeyToPath { key: rules_key.into(), path: rules_path.into(), mode: None },
                                ]),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                        Volume {
                            name: "data".into(),
                            empty_dir: Some(EmptyDirVolumeSource::default()),
                            ..Default::default()
                        },
                    ]),
                    ..Default::default()
                }),
            },
            ..Default::default()
        }),
        ..Default::default()
    };
    let port = |node_port: Option<u16>| ServicePort {
        name: Some("web".into()),
        port: ports::PROMETHEUS.into(),
        target_port: Some(IntOrString::String("web".into())),
        node_port: node_port.map(Into::into),
        protocol: Some("TCP".into()),
        ..Default::default()
    };
    let service = Service {
        metadata: meta(ctx, NAME, true),
        spec: Some(ServiceSpec { selector: Some(labels(NAME)), ports: Some(vec![port(None)]), ..Default::default() }),
        ..Default::default()
    };
    let mut items =
        vec![item(&account)?, item(&role)?, item(&binding)?, item(&config_map)?, item(&deployment)?, item(&service)?];
    if ctx.edges_push() {
        // Edges are behind NAT: their metrics agents remote-write to this port on a cloud node.
        let push = Service {
            metadata: meta(ctx, "prometheus-push", true),
            spec: Some(ServiceSpec {
                type_: Some("NodePort".into()),
                selector: Some(labels(NAME)),
                ports: Some(vec![port(Some(ctx.settings().node_ports.prometheus))]),
                ..Default::default()
            }),
            ..Default::default()
        };
        items.push(item(&push)?);
    }
    Ok(List::of(items))
}

/// Add the manifests of the profile's own (chartless) components.
pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    if ctx.profile.component(Kind::Prometheus).is_some_and(|c| c.chart.is_none()) {
        files.add_yaml(PROMETHEUS_FILE, &prometheus(ctx)?)?;
    }
    Ok(())
}
