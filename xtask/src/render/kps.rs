//! kube-prometheus-stack values for k3s + KubeEdge (SPEC.md):
//! - k3s runs the control plane in one process with one metrics registry: the
//!   controller-manager, scheduler, proxy and etcd monitors (and their rules) are off;
//! - the operator's kubelet Service excludes edge nodes (they have no 10250 server;
//!   their kubelet metrics come through the tunnel jobs instead);
//! - every stack pod stays off edge nodes;
//! - no admission webhooks (their cert-generation image is one more image to carry offline,
//!   and the PrometheusRule we ship is validated here by promtool instead).

use anyhow::Result;
use serde_json::{Value, json};

use super::Ctx;
use super::values::{DigestKey, image, off_edge, resources_burst, to_value};
use crate::stack::Kind;

pub fn values(ctx: &Ctx<'_>) -> Result<Value> {
    let s = ctx.settings();
    let img = |name: &str| ctx.image(Kind::PrometheusStack, name);
    let storage_bytes = s.metrics_storage.bytes();
    // Keep retention by size under the volume size so Prometheus never fills it.
    let retention_size_mib = storage_bytes / (1 << 20) * 85 / 100;
    let claim = |size: String| {
        json!({
            "volumeClaimTemplate": {
                "spec": {
                    "storageClassName": s.storage_class.as_str(),
                    "accessModes": ["ReadWriteOnce"],
                    "resources": { "requests": { "storage": size } },
                }
            }
        })
    };
    let grafana_datasources = super::grafana::additional_datasources(ctx);
    let mut grafana_sidecar = json!({
        "datasources": { "enabled": true },
        "dashboards": { "enabled": true },
        // Both sidecars (datasources, dashboards) take these.
        "resources": resources_burst("10m", "64Mi", "100m", "128Mi"),
    });
    if let Some(img) = ctx.component(Kind::PrometheusStack).and_then(|c| c.image("grafana-sidecar")) {
        grafana_sidecar["image"] = image(img, DigestKey::Sha);
    }
    let mut node_exporter_image = image(img("node-exporter")?, DigestKey::Digest);
    node_exporter_image["distroless"] = json!(false);
    Ok(json!({
        "fullnameOverride": super::names::RELEASE_KPS,
        "cleanPrometheusOperatorObjectNames": true,
        "crds": { "enabled": true },
        "defaultRules": {
            "rules": {
                "etcd": false,
                "kubeControllerManager": false,
                "kubeSchedulerAlerting": false,
                "kubeSchedulerRecording": false,
                "kubeProxy": false,
            }
        },
        "kubeControllerManager": { "enabled": false },
        "kubeScheduler": { "enabled": false },
        "kubeProxy": { "enabled": false },
        "kubeEtcd": { "enabled": false },
        "prometheusOperator": {
            "image": image(img("prometheus-operator")?, DigestKey::Sha),
            // The chart's empty resources become `--config-reloader-*-limit=0`: no limit at all.
            "prometheusConfigReloader": {
                "image": image(img("prometheus-config-reloader")?, DigestKey::Sha),
                "resources": resources_burst("10m", "25Mi", "100m", "64Mi"),
            },
            "admissionWebhooks": { "enabled": false },
            "tls": { "enabled": false },
            "kubeletService": {
                "enabled": true,
                "selector": format!("!{}", super::names::EDGE_NODE_LABEL),
            },
            "affinity": off_edge(),
            "resources": resources_burst("50m", "64Mi", "200m", "256Mi"),
        },
        "prometheus": {
            "service": if ctx.edges_push() {
                json!({ "type": "NodePort", "nodePort": s.node_ports.prometheus })
            } else {
                json!({})
            },
            "prometheusSpec": {
                "image": image(img("prometheus")?, DigestKey::Sha),
                "scrapeInterval": s.scrape_interval.to_string(),
                "evaluationInterval": s.evaluation_interval.to_string(),
                "retention": s.metrics_retention.to_string(),
                "retentionSize": format!("{retention_size_mib}MiB"),
                "storageSpec": claim(s.metrics_storage.to_string()),
                "resources": resources_burst("200m", "512Mi", "1", "2Gi"),
                "affinity": off_edge(),
                "additionalScrapeConfigs": to_value(&super::prometheus::scrape_configs(ctx, false)),
                // Edges are behind NAT and push: their agents remote-write through the NodePort
                // below, and a healed edge's backlog is up to the buffer window old.
                "enableRemoteWriteReceiver": ctx.edges_push(),
                "tsdb": {
                    "outOfOrderTimeWindow": if ctx.edges_push() {
                        super::edgemetrics::buffer_window(ctx).to_string()
                    } else {
                        "0s".into()
                    },
                },
                "ruleSelectorNilUsesHelmValues": false,
                "serviceMonitorSelectorNilUsesHelmValues": false,
                "podMonitorSelectorNilUsesHelmValues": false,
                "probeSelectorNilUsesHelmValues": false,
            }
        },
        "alertmanager": {
            "config": to_value(&super::alertmanager::config(ctx)),
            "alertmanagerSpec": {
                "image": image(img("alertmanager")?, DigestKey::Sha),
                "affinity": off_edge(),
                "resources": resources_burst("20m", "64Mi", "200m", "256Mi"),
                "storage": claim("1Gi".into()),
                // The webhook URL the install was given (`--alert-webhook-url`).
                "secrets": [super::names::ALERT_WEBHOOK_SECRET],
            }
        },
        "grafana": {
            "enabled": true,
            "image": image(img("grafana")?, DigestKey::Sha),
            "affinity": off_edge(),
            "testFramework": { "enabled": false },
            // fsGroup already owns the volume; the chown init container would need a busybox image.
            "initChownData": { "enabled": false },
            // Offline: no update checks and no usage reporting.
            // Grafana 12+ also installs and updates its preinstalled apps from grafana.com at every
            // start unless told not to.
            "grafana.ini": {
                "analytics": { "reporting_enabled": false, "check_for_updates": false, "check_for_plugin_updates": false },
                "plugins": { "preinstall_disabled": true },
            },
            "persistence": { "enabled": true, "storageClassName": s.storage_class.as_str(), "size": "1Gi" },
            "additionalDataSources": grafana_datasources,
            "sidecar": grafana_sidecar,
            "resources": resources_burst("50m", "128Mi", "500m", "512Mi"),
        },
        "kube-state-metrics": {
            "image": image(img("kube-state-metrics")?, DigestKey::ShaPrefixed),
            "affinity": off_edge(),
            "resources": resources_burst("10m", "64Mi", "200m", "256Mi"),
        },
        // kube-prometheus-stack's own node exporter covers cloud nodes; edge nodes run
        // the budgeted edge node exporter instead.
        "prometheus-node-exporter": {
            // kube-prometheus-stack turns on `distroless`, which appends `-distroless` to the
            // tag; keep the tag we pinned.
            "image": node_exporter_image,
            "affinity": off_edge(),
            "resources": resources_burst("10m", "32Mi", "200m", "64Mi"),
        },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Arch;

    /// Every container of the chart that our values can size has a limit (the chart's defaults
    /// leave these unlimited).
    #[test]
    fn every_container_we_size_has_limits() {
        let stack = crate::stack::load(&crate::paths::stack_file()).unwrap();
        let v = values(&Ctx::new(&stack, "upstream", Arch::Amd64).unwrap()).unwrap();
        for path in [
            "/prometheusOperator/resources",
            "/prometheusOperator/prometheusConfigReloader/resources",
            "/prometheus/prometheusSpec/resources",
            "/alertmanager/alertmanagerSpec/resources",
            "/grafana/resources",
            "/grafana/sidecar/resources",
            "/kube-state-metrics/resources",
            "/prometheus-node-exporter/resources",
        ] {
            let r = v.pointer(path).unwrap_or_else(|| panic!("no {path}"));
            assert!(r["limits"]["cpu"].is_string() && r["limits"]["memory"].is_string(), "{path}: {r}");
        }
        assert_eq!(v["grafana"]["grafana.ini"]["plugins"]["preinstall_disabled"], true);
    }

    /// Every receiver posts to the URL the install wrote into the Secret Alertmanager mounts: no
    /// route leads to a receiver that does not exist, and the cloud script requires the URL.
    #[test]
    fn every_receiver_reads_the_webhook_the_install_requires() {
        let stack = crate::stack::load(&crate::paths::stack_file()).unwrap();
        let ctx = Ctx::new(&stack, "upstream", Arch::Amd64).unwrap();
        let v = values(&ctx).unwrap();
        let secret = super::super::names::ALERT_WEBHOOK_SECRET;
        assert_eq!(v["alertmanager"]["alertmanagerSpec"]["secrets"], serde_json::json!([secret]));
        let receivers = v["alertmanager"]["config"]["receivers"].as_array().unwrap();
        let posting: Vec<_> =
            receivers.iter().filter_map(|r| r.get("webhook_configs")).flat_map(|w| w.as_array().unwrap()).collect();
        assert!(!posting.is_empty());
        for w in posting {
            assert_eq!(w.get("url"), None, "a URL known at render time: {w}");
            assert_eq!(w["url_file"], super::super::alertmanager::webhook_url_file());
            assert!(w["url_file"].as_str().unwrap().starts_with(&format!("/etc/alertmanager/secrets/{secret}/")));
        }
        let files = crate::render::render(&ctx).unwrap();
        let script = files.get(super::super::scripts::CLOUD_SCRIPT).unwrap();
        assert!(script.contains("pass --alert-webhook-url URL"), "the install refuses to run without it");
    }

    #[test]
    fn control_plane_monitors_are_off_and_nothing_runs_on_edges() {
        let stack = crate::stack::load(&crate::paths::stack_file()).unwrap();
        let ctx = Ctx::new(&stack, "upstream", Arch::Amd64).unwrap();
        let v = values(&ctx).unwrap();
        for key in ["kubeControllerManager", "kubeScheduler", "kubeProxy", "kubeEtcd"] {
            assert_eq!(v[key]["enabled"], json!(false), "{key}");
        }
        assert_eq!(v["prometheusOperator"]["kubeletService"]["selector"], json!("!node-role.kubernetes.io/edge"));
        let off = off_edge();
        for path in [
            &v["prometheusOperator"]["affinity"],
            &v["prometheus"]["prometheusSpec"]["affinity"],
            &v["alertmanager"]["alertmanagerSpec"]["affinity"],
            &v["grafana"]["affinity"],
            &v["kube-state-metrics"]["affinity"],
            &v["prometheus-node-exporter"]["affinity"],
        ] {
            assert_eq!(path, &off);
        }
        assert!(off.to_string().contains("DoesNotExist"));
    }
}
