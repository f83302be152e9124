//! The profile's own components (those with no chart: the local profile's) as Kubernetes
//! objects, from the same model the compose flavour runs: each a `v1 List` in `manifests/`.
//!
//! Prometheus runs on a control-plane node, where iptables-manager's DNAT of the tunnel port is
//! (KubeEdge's external iptables-manager runs on control-plane nodes; with a single cloud node
//! cloudcore is there too): its edge kubelet jobs reach the edges only from there.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use camino::Utf8PathBuf;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, HTTPGetAction, KeyToPath,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SecretVolumeSource, Service, ServiceAccount, ServicePort,
    ServiceSpec, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::Serialize;

use super::names::ALERT_WEBHOOK_SECRET;
use super::{Ctx, Files, manifests, ports};
use crate::stack::Kind;

/// The label k3s gives its servers (and kubeadm its control-plane nodes).
pub const CONTROL_PLANE_LABEL: &str = "node-role.kubernetes.io/control-plane";

/// The manifests of the standalone components, in the order the install applies them.
pub const KUBE_STATE_METRICS_FILE: &str = "manifests/35-kube-state-metrics.yaml";
pub const PROMETHEUS_FILE: &str = "manifests/40-prometheus.yaml";
pub const ALERTMANAGER_FILE: &str = "manifests/45-alertmanager.yaml";
pub const BLACKBOX_FILE: &str = "manifests/50-blackbox-exporter.yaml";
pub const VICTORIA_LOGS_FILE: &str = "manifests/55-victoria-logs.yaml";
pub const JAEGER_FILE: &str = "manifests/60-jaeger.yaml";

/// A `v1 List`: what `kubectl apply -f` and the harness apply, item by item.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct List {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub items: Vec<serde_json::Value>,
}

impl List {
    pub fn of(items: Vec<serde_json::Value>) -> Self {
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

/// One file of an [`App`]'s ConfigMap: (key, path under the mounted folder, text).
type ConfigFile = (String, String, String);

/// A chartless cloud component as a Deployment: its configuration files in a ConfigMap, its
/// Service, an emptyDir for its data. The pieces of each component's manifest.
struct App<'a> {
    name: &'static str,
    image: &'a crate::stack::Image,
    args: Vec<String>,
    /// The ConfigMap `<name>-config` mounted read-only at this folder, with its files.
    config: Option<(&'static str, Vec<ConfigFile>)>,
    /// A Secret (the install writes it) mounted read-only: (name, folder).
    secret: Option<(&'static str, String)>,
    /// Named ports; the first is the Service's first (the API the harness forwards to).
    ports: Vec<(&'static str, u16)>,
    /// The readiness probe: (port name, path).
    ready: (&'static str, &'static str),
    /// An emptyDir mounted here: kept across restarts of the container, not of the pod.
    data: Option<String>,
    /// Runs under its own ServiceAccount (Prometheus' discovery, kube-state-metrics' watch); others
    /// get no token.
    service_account: bool,
    /// Scheduled on a control-plane node (Prometheus: the tunnel port's DNAT is there).
    control_plane: bool,
}

impl App<'_> {
    fn config_map_name(&self) -> String {
        format!("{}-config", self.name)
    }

    /// The ConfigMap (if any), the Deployment and the Service.
    fn items(&self, ctx: &Ctx<'_>) -> Result<Vec<serde_json::Value>> {
        let mut items = Vec::new();
        let mut mounts = Vec::new();
        let mut volumes = Vec::new();
        if let Some((dir, files)) = &self.config {
            let config_map = ConfigMap {
                metadata: meta(ctx, &self.config_map_name(), true),
                data: Some(files.iter().map(|(key, _, text)| (key.clone(), text.clone())).collect()),
                ..Default::default()
            };
            items.push(item(&config_map)?);
            mounts.push(VolumeMount {
                name: "config".into(),
                mount_path: dir.to_string(),
                read_only: Some(true),
                ..Default::default()
            });
            let paths = files
                .iter()
                .map(|(key, path, _)| KeyToPath { key: key.clone(), path: path.clone(), mode: None })
                .collect();
            volumes.push(Volume {
                name: "config".into(),
                config_map: Some(ConfigMapVolumeSource {
                    name: self.config_map_name(),
                    items: Some(paths),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        if let Some((secret, dir)) = &self.secret {
            mounts.push(VolumeMount {
                name: "secret".into(),
                mount_path: dir.clone(),
                read_only: Some(true),
                ..Default::default()
            });
            volumes.push(Volume {
                name: "secret".into(),
                secret: Some(SecretVolumeSource { secret_name: Some(secret.to_string()), ..Default::default() }),
                ..Default::default()
            });
        }
        if let Some(dir) = &self.data {
            mounts.push(VolumeMount { name: "data".into(), mount_path: dir.clone(), ..Default::default() });
            volumes.push(Volume {
                name: "data".into(),
                empty_dir: Some(EmptyDirVolumeSource::default()),
                ..Default::default()
            });
        }
        let (ready_port, ready_path) = self.ready;
        let deployment = Deployment {
            metadata: meta(ctx, self.name, true),
            spec: Some(DeploymentSpec {
                replicas: Some(1),
                // One data folder: the old pod goes before the new one opens it.
                strategy: Some(DeploymentStrategy { type_: Some("Recreate".into()), ..Default::default() }),
                selector: LabelSelector { match_labels: Some(labels(self.name)), ..Default::default() },
                template: PodTemplateSpec {
                    metadata: Some(ObjectMeta { labels: Some(labels(self.name)), ..Default::default() }),
                    spec: Some(PodSpec {
                        service_account_name: self.service_account.then(|| self.name.into()),
                        automount_service_account_token: (!self.service_account).then_some(false),
                        affinity: self.control_plane.then(|| manifests::node_affinity(CONTROL_PLANE_LABEL, "Exists")),
                        security_context: Some(PodSecurityContext {
                            run_as_non_root: Some(true),
                            run_as_user: Some(65534),
                            run_as_group: Some(65534),
                            fs_group: Some(65534),
                            ..Default::default()
                        }),
                        containers: vec![Container {
                            name: self.name.into(),
                            image: Some(self.image.pinned()),
                            image_pull_policy: Some("IfNotPresent".into()),
                            args: Some(self.args.clone()),
                            ports: Some(
                                self.ports
                                    .iter()
                                    .map(|(name, port)| ContainerPort {
                                        name: Some(name.to_string()),
                                        container_port: (*port).into(),
                                        protocol: Some("TCP".into()),
                                        ..Default::default()
                                    })
                                    .collect(),
                            ),
                            readiness_probe: Some(Probe {
                                http_get: Some(HTTPGetAction {
                                    path: Some(ready_path.into()),
                                    port: IntOrString::String(ready_port.into()),
                                    ..Default::default()
                                }),
                                period_seconds: Some(2),
                                ..Default::default()
                            }),
                            volume_mounts: Some(mounts).filter(|m| !m.is_empty()),
                            ..Default::default()
                        }],
                        volumes: Some(volumes).filter(|v| !v.is_empty()),
                        ..Default::default()
                    }),
                },
                ..Default::default()
            }),
            ..Default::default()
        };
        items.push(item(&deployment)?);
        items.push(item(&self.service(ctx, self.name, None))?);
        Ok(items)
    }

    /// A Service of the app's pods on all its ports, or a NodePort one on its first port.
    fn service(&self, ctx: &Ctx<'_>, name: &str, node_port: Option<u16>) -> Service {
        let ports = self.ports.iter().take(if node_port.is_some() { 1 } else { self.ports.len() });
        let ports = ports
            .map(|(port_name, port)| ServicePort {
                name: Some(port_name.to_string()),
                port: (*port).into(),
                target_port: Some(IntOrString::String(port_name.to_string())),
                node_port: node_port.map(Into::into),
                protocol: Some("TCP".into()),
                ..Default::default()
            })
            .collect();
        Service {
            metadata: meta(ctx, name, true),
            spec: Some(ServiceSpec {
                type_: node_port.map(|_| "NodePort".into()),
                selector: Some(labels(self.name)),
                ports: Some(ports),
                ..Default::default()
            }),
            ..Default::default()
        }
    }
}

/// The ServiceAccount an [`App`] with `service_account` runs under, and the cluster-wide `rules`
/// it is granted (ClusterRole and ClusterRoleBinding `kubeprepare-<name>`).
fn cluster_access(ctx: &Ctx<'_>, name: &str, rules: Vec<PolicyRule>) -> Result<Vec<serde_json::Value>> {
    let role_name = format!("kubeprepare-{name}");
    let account = ServiceAccount { metadata: meta(ctx, name, true), ..Default::default() };
    let role = ClusterRole { metadata: meta(ctx, &role_name, false), rules: Some(rules), ..Default::default() };
    let binding = ClusterRoleBinding {
        metadata: meta(ctx, &role_name, false),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: role_name,
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".into(),
            name: name.into(),
            namespace: Some(ctx.namespace().into()),
            ..Default::default()
        }]),
    };
    Ok(vec![item(&account)?, item(&role)?, item(&binding)?])
}

/// The standalone Prometheus: its service account allowed the node and pod discovery its jobs use,
/// its configuration and rules, one replica on a control-plane node, its Service and the NodePort
/// edge agents remote-write to.
pub fn prometheus(ctx: &Ctx<'_>) -> Result<List> {
    const NAME: &str = "prometheus";
    let config = super::output::to_yaml(&super::prometheus::config(ctx))?;
    let rules = super::output::to_yaml(&super::rules::rules_file(ctx))?;
    // `rule_files` names it relative to prometheus.yml's folder.
    let rules_path =
        super::rules::RULES_FILE.strip_prefix("prometheus/").context("the rules file is not under prometheus/")?;
    let rules_key = rules_path.rsplit('/').next().unwrap_or(rules_path);
    let access = cluster_access(
        ctx,
        NAME,
        vec![
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
        ],
    )?;
    let mut args = vec![
        "--config.file=/etc/prometheus/prometheus.yml".to_string(),
        "--storage.tsdb.path=/prometheus".into(),
        format!("--web.listen-address=:{}", ports::PROMETHEUS),
    ];
    if ctx.edges_push() {
        args.push("--web.enable-remote-write-receiver".into());
    }
    let app = App {
        name: NAME,
        image: ctx.image(Kind::Prometheus, "prometheus")?,
        args,
        config: Some((
            "/etc/prometheus",
            vec![
                ("prometheus.yml".into(), "prometheus.yml".into(), config),
                (rules_key.into(), rules_path.into(), rules),
            ],
        )),
        secret: None,
        ports: vec![("web", ports::PROMETHEUS)],
        ready: ("web", "/-/ready"),
        data: Some("/prometheus".into()),
        service_account: true,
        control_plane: true,
    };
    let mut items = access;
    items.extend(app.items(ctx)?);
    if ctx.edges_push() {
        // Edges are behind NAT: their metrics agents remote-write to this port on a cloud node.
        items.push(item(&app.service(ctx, "prometheus-push", Some(ctx.settings().node_ports.prometheus)))?);
    }
    Ok(List::of(items))
}

/// The standalone Alertmanager: one replica (no gossip), its routes and receivers, the webhook's
/// URL read from the Secret the install writes.
pub fn alertmanager(ctx: &Ctx<'_>) -> Result<List> {
    let config = super::output::to_yaml(&super::alertmanager::config(ctx))?;
    let url_file = Utf8PathBuf::from(super::alertmanager::webhook_url_file());
    let secret_dir = url_file.parent().context("the webhook URL file has no folder")?.to_string();
    let app = App {
        name: "alertmanager",
        image: ctx.image(Kind::Alertmanager, "alertmanager")?,
        args: vec![
            "--config.file=/etc/alertmanager/alertmanager.yml".into(),
            "--storage.path=/alertmanager".into(),
            format!("--web.listen-address=:{}", ports::ALERTMANAGER),
            "--cluster.listen-address=".into(),
        ],
        config: Some(("/etc/alertmanager", vec![("alertmanager.yml".into(), "alertmanager.yml".into(), config)])),
        secret: Some((ALERT_WEBHOOK_SECRET, secret_dir)),
        ports: vec![("web", ports::ALERTMANAGER)],
        ready: ("web", "/-/ready"),
        data: Some("/alertmanager".into()),
        service_account: false,
        control_plane: false,
    };
    Ok(List::of(app.items(ctx)?))
}

/// The standalone blackbox exporter, probing with blackbox.yml's modules.
pub fn blackbox_exporter(ctx: &Ctx<'_>) -> Result<List> {
    let app = App {
        name: "blackbox-exporter",
        image: ctx.image(Kind::BlackboxExporter, "blackbox-exporter")?,
        args: vec![
            "--config.file=/etc/blackbox/blackbox.yml".into(),
            format!("--web.listen-address=:{}", ports::BLACKBOX),
        ],
        config: Some((
            "/etc/blackbox",
            vec![("blackbox.yml".into(), "blackbox.yml".into(), super::blackbox::file_text()?)],
        )),
        secret: None,
        ports: vec![("http", ports::BLACKBOX)],
        ready: ("http", "/metrics"),
        data: None,
        service_account: false,
        control_plane: false,
    };
    Ok(List::of(app.items(ctx)?))
}

/// Jaeger v2 all-in-one with the chart's configuration (`jaeger::jaeger_config`): its query API
/// first, OTLP in, its health and metrics ports; OTLP on the NodePorts edges push spans to.
pub fn jaeger(ctx: &Ctx<'_>) -> Result<List> {
    use ports::{COLLECTOR_HEALTH, COLLECTOR_METRICS, JAEGER_QUERY, OTLP_GRPC, OTLP_HTTP};
    let config = super::output::to_yaml(&super::jaeger::jaeger_config(ctx))?;
    let app = App {
        name: super::names::RELEASE_JAEGER,
        image: ctx.image(Kind::Jaeger, "jaeger")?,
        args: vec!["--config".into(), "/etc/jaeger/config.yaml".into()],
        config: Some(("/etc/jaeger", vec![("config.yaml".into(), "config.yaml".into(), config)])),
        secret: None,
        ports: vec![
            ("query", JAEGER_QUERY),
            ("health", COLLECTOR_HEALTH),
            ("otlp-grpc", OTLP_GRPC),
            ("otlp-http", OTLP_HTTP),
            ("metrics", COLLECTOR_METRICS),
        ],
        ready: ("health", "/status"),
        data: None,
        service_account: false,
        control_plane: false,
    };
    let mut items = app.items(ctx)?;
    items.push(item(&super::jaeger::otlp_node_port_service(ctx, labels(app.name)))?);
    Ok(List::of(items))
}

/// VictoriaLogs, the local profile's log store: its HTTP API (queries, `/health`), and the NodePort
/// edge agents push their logs to over OTLP.
pub fn victoria_logs(ctx: &Ctx<'_>) -> Result<List> {
    use super::otelagent::{VICTORIA_LOGS_DATA, VICTORIA_LOGS_HOST};
    let data = format!("/{VICTORIA_LOGS_DATA}");
    let app = App {
        name: VICTORIA_LOGS_HOST,
        image: ctx.image(Kind::VictoriaLogs, "victoria-logs")?,
        args: vec![format!("-httpListenAddr=:{}", ports::VICTORIA_LOGS), format!("-storageDataPath={data}")],
        config: None,
        secret: None,
        ports: vec![("http", ports::VICTORIA_LOGS)],
        ready: ("http", "/health"),
        data: Some(data),
        service_account: false,
        control_plane: false,
    };
    let mut items = app.items(ctx)?;
    items.push(item(&app.service(ctx, "victoria-logs-push", Some(ctx.settings().node_ports.victoria_logs)))?);
    Ok(List::of(items))
}

/// kube-state-metrics, watching the nodes only (EdgeNodeNotReady reads their Ready condition and
/// role): its service account may list and watch nodes, nothing else.
pub fn kube_state_metrics(ctx: &Ctx<'_>) -> Result<List> {
    const NAME: &str = "kube-state-metrics";
    let access = cluster_access(
        ctx,
        NAME,
        vec![PolicyRule {
            api_groups: Some(vec![String::new()]),
            resources: Some(vec!["nodes".into()]),
            verbs: ["list", "watch"].map(String::from).to_vec(),
            ..Default::default()
        }],
    )?;
    let app = App {
        name: NAME,
        image: ctx.image(Kind::KubeStateMetrics, NAME)?,
        args: vec![
            "--resources=nodes".into(),
            format!("--port={}", ports::KUBE_STATE_METRICS),
            format!("--telemetry-port={}", ports::KUBE_STATE_METRICS_TELEMETRY),
        ],
        config: None,
        secret: None,
        ports: vec![("http", ports::KUBE_STATE_METRICS), ("telemetry", ports::KUBE_STATE_METRICS_TELEMETRY)],
        // Its own readiness endpoint, where its chart probes it.
        ready: ("telemetry", "/readyz"),
        data: None,
        service_account: true,
        control_plane: false,
    };
    let mut items = access;
    items.extend(app.items(ctx)?);
    Ok(List::of(items))
}

/// What renders a component's objects.
type Objects = fn(&Ctx<'_>) -> Result<List>;

/// The standalone (chartless) components of the profile with Kubernetes objects: their kinds and files.
pub fn standalone(ctx: &Ctx<'_>) -> Vec<(Kind, &'static str)> {
    standalone_objects(ctx).into_iter().map(|(kind, file, _)| (kind, file)).collect()
}

fn standalone_objects(ctx: &Ctx<'_>) -> Vec<(Kind, &'static str, Objects)> {
    let all: [(Kind, &str, Objects); 6] = [
        (Kind::KubeStateMetrics, KUBE_STATE_METRICS_FILE, kube_state_metrics),
        (Kind::Prometheus, PROMETHEUS_FILE, prometheus),
        (Kind::Alertmanager, ALERTMANAGER_FILE, alertmanager),
        (Kind::BlackboxExporter, BLACKBOX_FILE, blackbox_exporter),
        (Kind::VictoriaLogs, VICTORIA_LOGS_FILE, victoria_logs),
        (Kind::Jaeger, JAEGER_FILE, jaeger),
    ];
    all.into_iter().filter(|(kind, ..)| ctx.profile.component(*kind).is_some_and(|c| c.chart.is_none())).collect()
}

/// Add the manifests of the profile's own (chartless) components.
pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    for (kind, file, objects) in standalone_objects(ctx) {
        files.add_yaml(file, &objects(ctx).with_context(|| format!("the {kind} objects"))?)?;
    }
    Ok(())
}
