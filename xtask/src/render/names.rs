//! Names shared between renderers: scrape job names, labels, service names.
//! A rule's `up{job="..."}` and the scrape config that makes that series must
//! agree, so both read them from here.

/// Edge kubelet (edged) cAdvisor metrics, scraped through the KubeEdge stream tunnel.
pub const JOB_EDGE_CADVISOR: &str = "kubeedge-edge-cadvisor";
/// Edge kubelet (edged) resource metrics, scraped through the KubeEdge stream tunnel.
pub const JOB_EDGE_RESOURCE: &str = "kubeedge-edge-resource";
/// cloudcore's monitor server.
pub const JOB_CLOUDCORE: &str = "kubeedge-cloudcore";
/// Node exporter on edge nodes (scraped by the node's metrics agent, pushed).
pub const JOB_EDGE_NODE_EXPORTER: &str = "edge-node-exporter";
/// The edge metrics agent's own metrics (its scrape of itself, pushed with the rest).
pub const JOB_EDGE_METRICS: &str = "edge-metrics";
/// Each edge's probes of the cloud ports it dials (from the edge, pushed).
pub const JOB_EDGE_LINK_PROBE: &str = "edge-link-probe";
/// Blackbox probes of cloudcore's ports (from the cloud).
pub const JOB_PROBE_CLOUDCORE: &str = "probe-cloudcore";
/// Self-monitoring jobs.
pub const JOB_PROMETHEUS: &str = "prometheus";
pub const JOB_ALERTMANAGER: &str = "alertmanager";
pub const JOB_LOKI: &str = "loki";
pub const JOB_JAEGER: &str = "jaeger";
pub const JOB_BLACKBOX: &str = "blackbox-exporter";
pub const JOB_KUBE_STATE_METRICS: &str = "kube-state-metrics";

/// The label every edge-node series carries with the node's name.
pub const LABEL_NODE: &str = "node";
/// The label naming the port a link probe checks (`cloudhub`, `tunnel`, `prometheus`, ...).
pub const LABEL_PORT_NAME: &str = "port_name";
/// The label carrying the edge component (container) name on budget alerts.
pub const LABEL_COMPONENT: &str = "component";

/// The Secret (and its key) the cloud install writes `--alert-webhook-url` into; Alertmanager
/// reads the URL from it, so no route targets a receiver that does not exist.
pub const ALERT_WEBHOOK_SECRET: &str = "alert-webhook";
pub const ALERT_WEBHOOK_KEY: &str = "url";
/// KubeEdge marks edge nodes with this label, value "" (empty).
pub const EDGE_NODE_LABEL: &str = "node-role.kubernetes.io/edge";
/// The same label as Prometheus' Kubernetes SD exposes its presence.
pub const EDGE_LABEL_PRESENT_META: &str = "__meta_kubernetes_node_labelpresent_node_role_kubernetes_io_edge";

/// Helm release names (and `fullnameOverride`s), which fix the service names below.
pub const RELEASE_KPS: &str = "kps";
pub const RELEASE_LOKI: &str = "loki";
pub const RELEASE_JAEGER: &str = "jaeger";
pub const RELEASE_BLACKBOX: &str = "blackbox-exporter";
/// The Secret holding blackbox.yml for the blackbox exporter's chart.
pub const BLACKBOX_CONFIG_SECRET: &str = "blackbox-exporter-config";
pub const RELEASE_ALLOY: &str = "alloy-edge";
pub const RELEASE_PROMTAIL: &str = "promtail-edge";

/// Environment variable (from the `observability-endpoints` ConfigMap) with the cloud host's IP,
/// which edge agents push to.
pub const ENV_CLOUD_HOST_IP: &str = "CLOUD_HOST_IP";
/// The same address as a URL's host (an IPv6 one in brackets), in the same ConfigMap: what an agent
/// that puts the address into a URL or a `host:port` reads.
pub const ENV_CLOUD_HOST: &str = "CLOUD_HOST";
/// ConfigMap the cloud install script writes with the endpoints edge agents need.
pub const ENDPOINTS_CONFIGMAP: &str = "observability-endpoints";

/// Name of the alert that always fires (dead man's switch).
pub const ALERT_WATCHDOG: &str = "Watchdog";
