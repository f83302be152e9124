//! The TCP ports that are fixed upstream defaults of the components, in one place.
//!
//! Ports the stack makes configurable are not here: read them from the stack
//! (`settings.edge` for edged's read-only server, node exporter, the edge metrics agent and the
//! link probe; `settings.cloudcore`; `settings.node_ports`), whose defaults live in `stack/mod.rs`.
//! A tidy test (`tests/tidy.rs`) fails when one of these numbers, or one of those defaults, is
//! written as a literal anywhere else in the source.

/// Prometheus' web and API port (scrapes of itself, remote write, queries); the edge metrics
/// agent runs the same image on `settings.edge.metrics_agent`.
pub const PROMETHEUS: u16 = 9090;
/// Alertmanager's web and API port (Prometheus sends alerts here).
pub const ALERTMANAGER: u16 = 9093;
/// The cloud's blackbox exporter (`/probe`, `/metrics`); the edge link probe runs the same image
/// on `settings.edge.link_probe`.
pub const BLACKBOX: u16 = 9115;
/// Grafana's HTTP port.
pub const GRAFANA: u16 = 3000;
/// Loki's HTTP port (push API and `/metrics`) in its pod or container.
pub const LOKI: u16 = 3100;
/// VictoriaLogs' HTTP API (ingestion and LogsQL).
pub const VICTORIA_LOGS: u16 = 9428;
/// Jaeger's query UI and API.
pub const JAEGER_QUERY: u16 = 16686;
/// OTLP over gRPC (Jaeger's receiver).
pub const OTLP_GRPC: u16 = 4317;
/// OTLP over HTTP (Jaeger's receiver, and the edge agent's on the node's loopback).
pub const OTLP_HTTP: u16 = 4318;
/// An OpenTelemetry Collector's own telemetry (Prometheus metrics): Jaeger v2's `/metrics`.
pub const COLLECTOR_METRICS: u16 = 8888;
/// An OpenTelemetry Collector's health check extension (Jaeger v2's `healthcheckv2`, the edge
/// agent's `health_check`).
pub const COLLECTOR_HEALTH: u16 = 13133;
/// kube-state-metrics' metrics of the objects it watches, and its own (with `/readyz`).
pub const KUBE_STATE_METRICS: u16 = 8080;
pub const KUBE_STATE_METRICS_TELEMETRY: u16 = 8081;
/// The kubelet's authenticated server; edge kubelets (edged) have none.
pub const KUBELET: u16 = 10250;
/// KubeEdge's metaServer on the edge node (an API-server proxy for edge pods).
pub const METASERVER: u16 = 10550;
/// The first of the per-node ports cloudcore gives edge kubelets as their endpoint (the address
/// Kubernetes SD gives each edge node, which iptables-manager DNATs to cloudcore's stream port).
pub const EDGE_TUNNEL_FIRST: u16 = 10351;
/// The e2e workload's HTTP server (`fixtures/e2e/workload/`): the edge workload and `cloud-api`.
pub const WORKLOAD: u16 = 8080;
/// kube-apiserver's secure port (k3s' and kubeadm's).
pub const KUBE_APISERVER: u16 = 6443;
/// etcd's client, peer and metrics ports, on the server's loopback.
pub const ETCD_CLIENT: u16 = 2379;
pub const ETCD_PEER: u16 = 2380;
pub const ETCD_METRICS: u16 = 2381;
