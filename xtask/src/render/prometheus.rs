//! Prometheus scrape configuration, typed.
//!
//! The same job list feeds two outputs: a complete `prometheus/prometheus.yml`
//! (for standalone Prometheus and for `promtool check config`) and
//! `prometheus/additional-scrape-configs.yml`, the list kube-prometheus-stack
//! takes as `prometheusSpec.additionalScrapeConfigs`.
//!
//! Edge facts (SPEC.md): edge nodes carry `node-role.kubernetes.io/edge: ""`,
//! so jobs keep on label *presence*; edge kubelets are reached only through the
//! KubeEdge stream tunnel, at the address Kubernetes SD gives each edge node
//! (`<InternalIP>:<tunnel port>`, the port cloudcore negotiated and iptables-manager
//! DNATs to its stream server; never edged's own 10350, which is local to the edge), over https.
//!
//! The compose flavour keeps the job names and labels (so rules and their `by (node)` are
//! unchanged) and swaps discovery for static targets: `<edge>:9100` labelled `node="<edge>"`,
//! cloud services by their container alias. Kubernetes-only jobs (tunnel, cloudcore) are absent.

use anyhow::Result;
use serde::Serialize;

use super::names::*;
use super::{Ctx, Files};
use crate::stack::Kind;

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub global: Global,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alerting: Option<Alerting>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rule_files: Vec<String>,
    pub scrape_configs: Vec<ScrapeConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Storage {
    pub tsdb: Tsdb,
}

/// Pushed samples replayed after a link cut are as old as the cut, older than the head the other
/// edges' fresh samples moved on: accepted up to the edge buffer's window.
#[derive(Debug, Clone, Serialize)]
pub struct Tsdb {
    pub out_of_order_time_window: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Global {
    pub scrape_interval: String,
    pub evaluation_interval: String,
    pub external_labels: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Alerting {
    pub alertmanagers: Vec<AlertmanagerTarget>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertmanagerTarget {
    pub static_configs: Vec<StaticConfig>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ScrapeConfig {
    pub job_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheme: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub params: Option<std::collections::BTreeMap<String, Vec<String>>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrape_timeout: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_config: Option<TlsConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub kubernetes_sd_configs: Vec<KubernetesSd>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub static_configs: Vec<StaticConfig>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub relabel_configs: Vec<Relabel>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TlsConfig {
    pub insecure_skip_verify: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct KubernetesSd {
    pub role: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<Namespaces>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Namespaces {
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StaticConfig {
    pub targets: Vec<String>,
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub labels: std::collections::BTreeMap<String, String>,
}

/// One relabeling step (Prometheus `relabel_config`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Relabel {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub source_labels: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub regex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replacement: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
}

impl Relabel {
    /// Keep only targets whose `source` matches `regex`.
    pub fn keep(source: &str, regex: &str) -> Self {
        Relabel {
            source_labels: vec![source.into()],
            regex: Some(regex.into()),
            action: Some("keep"),
            ..Default::default()
        }
    }
    /// Copy `source` into `target`.
    pub fn copy(source: &str, target: &str) -> Self {
        Relabel { source_labels: vec![source.into()], target_label: Some(target.into()), ..Default::default() }
    }
    /// Set `target` from `source` matched by `regex`, rewritten as `replacement`.
    pub fn rewrite(source: &str, regex: &str, target: &str, replacement: &str) -> Self {
        Relabel {
            source_labels: vec![source.into()],
            regex: Some(regex.into()),
            target_label: Some(target.into()),
            replacement: Some(replacement.into()),
            ..Default::default()
        }
    }
    /// Set `target` to a fixed value.
    pub fn set(target: &str, value: &str) -> Self {
        Relabel { target_label: Some(target.into()), replacement: Some(value.into()), ..Default::default() }
    }
}

fn static_target(target: String) -> Vec<StaticConfig> {
    vec![StaticConfig { targets: vec![target], labels: Default::default() }]
}

/// Keep edge nodes only: KubeEdge's label has an EMPTY value, so match on presence.
fn keep_edge_nodes() -> Relabel {
    Relabel::keep(EDGE_LABEL_PRESENT_META, "true")
}

/// The edge kubelet (edged) through the KubeEdge stream tunnel, https, at the address Kubernetes SD
/// already gives: cloudcore writes its tunnel port into each edge Node's
/// `status.daemonEndpoints.kubeletEndpoint.Port`, and iptables-manager on the cloud node DNATs
/// exactly that port to the stream server, which reaches edged's read-only port on the edge. The
/// stream server checks no token (none is sent: it would only expose Prometheus' credentials) and
/// requires no client certificate.
fn edge_tunnel_job(job: &str, path: &str) -> ScrapeConfig {
    ScrapeConfig {
        job_name: job.into(),
        scheme: Some("https"),
        metrics_path: Some(path.into()),
        tls_config: Some(TlsConfig { insecure_skip_verify: true }),
        kubernetes_sd_configs: vec![KubernetesSd { role: "node", namespaces: None }],
        relabel_configs: vec![keep_edge_nodes(), Relabel::copy("__meta_kubernetes_node_name", LABEL_NODE)],
        ..Default::default()
    }
}

/// The blackbox exporter at `exporter` as scrape target, and the relabeling that turns
/// each configured target into a `?target=` parameter.
pub fn probe_job(job: &str, module: &str, exporter: String) -> ScrapeConfig {
    let mut params = std::collections::BTreeMap::new();
    params.insert("module".to_string(), vec![module.to_string()]);
    ScrapeConfig {
        job_name: job.into(),
        metrics_path: Some("/probe".into()),
        params: Some(params),
        relabel_configs: vec![
            Relabel::copy("__address__", "__param_target"),
            Relabel::copy("__param_target", "instance"),
            Relabel::set("__address__", &exporter),
        ],
        ..Default::default()
    }
}

/// Where Prometheus reaches the blackbox exporter.
pub fn blackbox_address(ctx: &Ctx<'_>) -> String {
    format!("{}:{}", ctx.host(RELEASE_BLACKBOX), super::ports::BLACKBOX)
}

/// Where Prometheus reaches Alertmanager.
pub fn alertmanager_address(ctx: &Ctx<'_>) -> String {
    format!("{}:{}", ctx.host("alertmanager"), super::ports::ALERTMANAGER)
}

/// Whether this file's Prometheus sends to and scrapes an Alertmanager of its own: a standalone
/// one, and in the compose flavour also kube-prometheus-stack's, run as a plain container (on k3s
/// the operator wires the chart's Alertmanager itself).
fn own_alertmanager(ctx: &Ctx<'_>) -> bool {
    ctx.has(Kind::Alertmanager) || (!ctx.is_kubernetes() && ctx.has_alertmanager())
}

/// Every scrape job this stack adds. `with_self` adds the jobs for Prometheus and
/// Alertmanager themselves (kube-prometheus-stack brings its own for those).
pub fn scrape_configs(ctx: &Ctx<'_>, with_self: bool) -> Vec<ScrapeConfig> {
    let s = ctx.settings();
    let mut jobs = Vec::new();
    if with_self {
        jobs.push(ScrapeConfig {
            job_name: JOB_PROMETHEUS.into(),
            static_configs: static_target(format!("localhost:{}", super::ports::PROMETHEUS)),
            ..Default::default()
        });
        if own_alertmanager(ctx) {
            jobs.push(ScrapeConfig {
                job_name: JOB_ALERTMANAGER.into(),
                static_configs: static_target(alertmanager_address(ctx)),
                ..Default::default()
            });
        }
    }
    // Edge kubelet metrics through the stream tunnel: only on Kubernetes with KubeEdge edges.
    if ctx.is_kubernetes() {
        jobs.push(edge_tunnel_job(JOB_EDGE_CADVISOR, "/metrics/cadvisor"));
        jobs.push(edge_tunnel_job(JOB_EDGE_RESOURCE, "/metrics/resource"));
        // cloudcore runs with hostNetwork: its monitor server listens on the host IP.
        jobs.push(ScrapeConfig {
            job_name: JOB_CLOUDCORE.into(),
            metrics_path: Some("/metrics".into()),
            kubernetes_sd_configs: vec![KubernetesSd {
                role: "pod",
                namespaces: Some(Namespaces { names: vec!["kubeedge".into()] }),
            }],
            relabel_configs: vec![
                Relabel::keep("__meta_kubernetes_pod_label_kubeedge", "cloudcore"),
                Relabel::rewrite(
                    "__meta_kubernetes_pod_host_ip",
                    "(.+)",
                    "__address__",
                    &format!("$1:{}", s.cloudcore.monitor),
                ),
                Relabel::copy("__meta_kubernetes_pod_node_name", LABEL_NODE),
            ],
            ..Default::default()
        });
    }
    // kube-prometheus-stack's operator scrapes its own kube-state-metrics.
    if ctx.is_kubernetes() && ctx.has(Kind::KubeStateMetrics) {
        jobs.push(ScrapeConfig {
            job_name: JOB_KUBE_STATE_METRICS.into(),
            static_configs: static_target(format!(
                "{}:{}",
                ctx.host(JOB_KUBE_STATE_METRICS),
                super::ports::KUBE_STATE_METRICS
            )),
            ..Default::default()
        });
    }
    if ctx.has(Kind::BlackboxExporter) {
        jobs.push(ScrapeConfig {
            job_name: JOB_BLACKBOX.into(),
            static_configs: static_target(blackbox_address(ctx)),
            ..Default::default()
        });
        if ctx.kps() {
            // cloudcore's ports, probed from inside the cloud through its Service.
            let c = &s.cloudcore;
            let mut probe = probe_job(JOB_PROBE_CLOUDCORE, super::blackbox::MODULE_TCP, blackbox_address(ctx));
            probe.static_configs = [
                (c.cloudhub, "cloudhub"),
                (c.cloudhub_https, "cloudhub-https"),
                (c.stream, "stream"),
                (c.tunnel, "tunnel"),
            ]
            .iter()
            .map(|(port, name)| StaticConfig {
                targets: vec![format!("cloudcore.kubeedge.svc:{port}")],
                labels: [(LABEL_PORT_NAME.to_string(), name.to_string())].into_iter().collect(),
            })
            .collect();
            jobs.push(probe);
        }
    }
    if ctx.has(Kind::Loki) {
        jobs.push(ScrapeConfig {
            job_name: JOB_LOKI.into(),
            static_configs: static_target(format!("{}:{}", ctx.host(RELEASE_LOKI), super::ports::LOKI)),
            ..Default::default()
        });
    }
    if ctx.has(Kind::Jaeger) {
        jobs.push(ScrapeConfig {
            job_name: JOB_JAEGER.into(),
            static_configs: static_target(format!("{}:{}", ctx.host(RELEASE_JAEGER), super::ports::COLLECTOR_METRICS)),
            ..Default::default()
        });
    }
    jobs
}

/// The complete configuration of a standalone Prometheus.
pub fn config(ctx: &Ctx<'_>) -> Config {
    let alerting = own_alertmanager(ctx).then(|| Alerting {
        alertmanagers: vec![AlertmanagerTarget { static_configs: static_target(alertmanager_address(ctx)) }],
    });
    Config {
        global: Global {
            scrape_interval: ctx.scrape_interval().to_string(),
            evaluation_interval: ctx.evaluation_interval().to_string(),
            external_labels: [("cluster".to_string(), "kubeprepare".to_string())].into_iter().collect(),
        },
        alerting,
        rule_files: vec!["rules/observability.rules.yml".into()],
        scrape_configs: scrape_configs(ctx, true),
        storage: ctx.edges_push().then(|| Storage {
            tsdb: Tsdb { out_of_order_time_window: super::edgemetrics::buffer_window(ctx).to_string() },
        }),
    }
}

pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    files.add_yaml("prometheus/prometheus.yml", &config(ctx))?;
    if ctx.kps() {
        files.add_yaml("prometheus/additional-scrape-configs.yml", &scrape_configs(ctx, false))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Arch;

    fn with_ctx(profile: &str, f: impl FnOnce(&Ctx<'_>)) {
        let stack = crate::stack::load(&crate::paths::stack_file()).expect("stack.toml loads");
        let ctx = Ctx::new(&stack, profile, Arch::Amd64).expect("profile exists");
        f(&ctx)
    }

    #[test]
    fn edge_jobs_keep_on_label_presence_never_on_value() {
        with_ctx("upstream", |ctx| {
            let yaml = serde_yaml_ng::to_string(&scrape_configs(ctx, false)).unwrap();
            assert!(yaml.contains(EDGE_LABEL_PRESENT_META));
            // The plan's rule (keep node_role_kubernetes_io_edge == "true") drops every edge node.
            assert!(!yaml.contains("__meta_kubernetes_node_label_node_role_kubernetes_io_edge"));
        });
    }

    #[test]
    fn tunnel_jobs_use_https_at_the_tunnel_address_sd_gives_with_both_paths() {
        with_ctx("upstream", |ctx| {
            let jobs = scrape_configs(ctx, false);
            let paths: Vec<_> = jobs
                .iter()
                .filter(|j| j.scheme == Some("https"))
                .map(|j| {
                    assert!(j.tls_config.as_ref().is_some_and(|t| t.insecure_skip_verify));
                    assert!(
                        j.relabel_configs.iter().all(|r| r.target_label.as_deref() != Some("__address__")),
                        "{}: the address is the node's kubelet endpoint, the tunnel port: {:?}",
                        j.job_name,
                        j.relabel_configs
                    );
                    j.metrics_path.clone().unwrap()
                })
                .collect();
            assert_eq!(paths, ["/metrics/cadvisor", "/metrics/resource"]);
            let yaml = serde_yaml_ng::to_string(&jobs).unwrap();
            // No job dials an edge address: not the kubelet ports, not node exporter's (edges push).
            let edge = &ctx.settings().edge;
            for port in [crate::render::ports::KUBELET, edge.kubelet_readonly, edge.node_exporter] {
                assert!(!yaml.contains(&format!(":{port}")), "{port} in {yaml}");
            }
        });
    }

    #[test]
    fn job_names_are_unique() {
        for profile in ["upstream", "local"] {
            with_ctx(profile, |ctx| {
                let jobs = scrape_configs(ctx, true);
                let mut names: Vec<_> = jobs.iter().map(|j| j.job_name.as_str()).collect();
                names.sort();
                let before = names.len();
                names.dedup();
                assert_eq!(before, names.len(), "{profile}: duplicate job names");
            });
        }
    }
}
