//! The edge agent built here (`[programs.edge-agent]`: an OpenTelemetry Collector from published
//! components): it tails the node's pod logs and pushes them over OTLP/HTTP to the log store, and
//! forwards the spans the node's workloads send it (OTLP/HTTP on 127.0.0.1) to Jaeger.
//!
//! An edge is behind NAT and its link drops (SPEC.md, "The network an edge really has"): the
//! agent pushes, and its sending queue lives in `file_storage` on the node's disk, so what it
//! read while the link was down (or before it restarted) is sent once the store answers again.
//! Read offsets are kept in the same storage, so a restart neither loses nor repeats lines.
//!
//! Pod log paths (`/var/log/pods/<namespace>_<pod>_<uid>/<container>/<n>.log`) give the
//! `k8s.namespace.name`, `k8s.pod.name` and `k8s.container.name` resource attributes (the
//! container parser's `add_metadata_from_filepath`); the node's name comes from the
//! `K8S_NODE_NAME` environment variable, set by whoever runs the agent (the downward API's
//! `spec.nodeName`, or the compose tier's plan). VictoriaLogs makes every resource attribute a
//! stream field.
//!
//! On Kubernetes it is a DaemonSet on every edge ([`MANIFEST_FILE`]), on the node's network, as
//! root (the kubelet's pod logs are root's), pushing to the NodePorts of VictoriaLogs and Jaeger
//! at `CLOUD_HOST_IP` from the ConfigMap `observability-endpoints` (the collector expands
//! `${env:…}` anywhere in its config); its queues and read offsets on a hostPath.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use serde::Serialize;

use super::logagent::{POD_LOGS, STATE_DIR};
use super::names::{ENV_CLOUD_HOST, RELEASE_JAEGER};
use super::ports::{COLLECTOR_HEALTH, OTLP_HTTP, VICTORIA_LOGS};
use super::{Ctx, Files};
use crate::stack::Kind;

/// The variable carrying the node's name.
pub const NODE_NAME_ENV: &str = "K8S_NODE_NAME";
/// The rendered config.
pub const CONFIG_FILE: &str = "log-agent/agent.yaml";
/// The agent's ConfigMap and DaemonSet (Kubernetes).
pub const MANIFEST_FILE: &str = "manifests/23-edge-agent.yaml";
/// The compose alias of the log store built here.
pub const VICTORIA_LOGS_HOST: &str = "victoria-logs";
/// Its data folder, relative to the image's root (`-storageDataPath`).
pub const VICTORIA_LOGS_DATA: &str = "victoria-logs-data";
/// VictoriaLogs' OTLP base path: the exporter appends `/v1/logs`.
pub const VICTORIA_LOGS_OTLP: &str = "/insert/opentelemetry";
/// Where the node's workloads send spans: OTLP/HTTP on the node's loopback only.
pub fn otlp_listen() -> String {
    format!("127.0.0.1:{OTLP_HTTP}")
}

/// The resource attributes a log line carries, by the neutral label a scenario names.
pub const RESOURCE_ATTRIBUTES: [(&str, &str); 4] = [
    ("node", "k8s.node.name"),
    ("namespace", "k8s.namespace.name"),
    ("pod", "k8s.pod.name"),
    ("container", "k8s.container.name"),
];

#[derive(Serialize)]
struct Config {
    extensions: Extensions,
    receivers: Receivers,
    processors: Processors,
    exporters: Exporters,
    service: Service,
}

#[derive(Serialize)]
struct Extensions {
    health_check: HealthCheck,
    file_storage: FileStorage,
}

#[derive(Serialize)]
struct HealthCheck {
    endpoint: String,
}

#[derive(Serialize)]
struct FileStorage {
    directory: String,
    create_directory: bool,
}

#[derive(Serialize)]
struct Receivers {
    file_log: FileLog,
    #[serde(skip_serializing_if = "Option::is_none")]
    otlp: Option<Otlp>,
}

#[derive(Serialize)]
struct Otlp {
    protocols: Protocols,
}

#[derive(Serialize)]
struct Protocols {
    http: Endpoint,
}

#[derive(Serialize)]
struct Endpoint {
    endpoint: String,
}

#[derive(Serialize)]
struct FileLog {
    include: Vec<&'static str>,
    /// A new file is read from its start: a pod's first lines are not lost to the agent starting late.
    start_at: &'static str,
    include_file_path: bool,
    include_file_name: bool,
    poll_interval: String,
    storage: &'static str,
    resource: BTreeMap<&'static str, String>,
    operators: Vec<Operator>,
}

#[derive(Serialize)]
struct Operator {
    #[serde(rename = "type")]
    type_: &'static str,
    /// CRI lines as containerd and the kubelet write them (RFC 3339 times); `crio` is CRI-O's layout.
    format: &'static str,
    add_metadata_from_filepath: bool,
}

#[derive(Serialize)]
struct Processors {
    memory_limiter: MemoryLimiter,
    batch: Batch,
}

#[derive(Serialize)]
struct MemoryLimiter {
    check_interval: String,
    limit_mib: u64,
    spike_limit_mib: u64,
}

#[derive(Serialize)]
struct Batch {
    timeout: String,
    send_batch_size: u32,
}

#[derive(Serialize)]
struct Exporters {
    #[serde(rename = "otlp_http/logs")]
    logs: OtlpHttp,
    #[serde(rename = "otlp_http/traces", skip_serializing_if = "Option::is_none")]
    traces: Option<OtlpHttp>,
}

#[derive(Serialize)]
struct OtlpHttp {
    endpoint: String,
    compression: &'static str,
    sending_queue: SendingQueue,
    retry_on_failure: Retry,
}

#[derive(Serialize)]
struct SendingQueue {
    enabled: bool,
    /// Persistent: survives the agent's restart and a link cut of any length, up to `queue_size`.
    storage: &'static str,
    /// `queue_size` counts bytes (of the requests, before compression): a bound on the disk a cut
    /// may fill whatever the batch sizes, unlike a count of requests.
    sizer: &'static str,
    queue_size: u64,
    num_consumers: u32,
}

#[derive(Serialize)]
struct Retry {
    enabled: bool,
    initial_interval: String,
    max_interval: String,
    /// 0: retry a queued request for as long as the link is down.
    max_elapsed_time: String,
}

#[derive(Serialize)]
struct Service {
    extensions: Vec<&'static str>,
    telemetry: Telemetry,
    pipelines: BTreeMap<&'static str, Pipeline>,
}

#[derive(Serialize)]
struct Telemetry {
    metrics: Level,
}

#[derive(Serialize)]
struct Level {
    /// `none`: no self-metrics listener on the node (it would bind :8888).
    level: &'static str,
}

#[derive(Serialize)]
struct Pipeline {
    receivers: Vec<&'static str>,
    processors: Vec<&'static str>,
    exporters: Vec<&'static str>,
}

const STORAGE: &str = "file_storage";

/// The agent's memory limits from its budget: the limiter refuses data at 3/4 of it, and starts
/// collecting garbage a spike (1/4 of the limit) earlier, leaving room for the runtime itself.
fn memory_limits(budget_bytes: u64) -> (u64, u64) {
    let limit = budget_bytes / (1024 * 1024) * 3 / 4;
    (limit, limit / 4)
}

/// The Go runtime's soft limit for the agent (`GOMEMLIMIT`, whole MiB): 9/10 of its budget, so it
/// collects garbage harder before the budget is reached.
pub fn go_memory_limit(budget_bytes: u64) -> String {
    format!("{}MiB", budget_bytes / (1024 * 1024) * 9 / 10)
}

/// How `settings.edge_buffer.size` is shared between the agent's two queues.
#[derive(Debug, PartialEq, Eq)]
struct QueueBytes {
    logs: u64,
    traces: u64,
}

/// The edge's buffer (`settings.edge_buffer.size`) is this agent's queues: the Prometheus agent's
/// WAL, which has no size limit, is bounded by the window instead (stack.toml says so). Logs take
/// three quarters (a node writes far more log bytes than its workloads send spans), traces the
/// rest; with no traces, logs take it all. A full queue refuses what comes next, which the agent
/// counts and logs ("sending queue is full"): the oldest data is kept, the newest dropped.
fn queue_bytes(size: u64, traces: bool) -> QueueBytes {
    if traces {
        let logs = size / 4 * 3;
        QueueBytes { logs, traces: size - logs }
    } else {
        QueueBytes { logs: size, traces: 0 }
    }
}

fn config(ctx: &Ctx<'_>) -> Result<Config> {
    let Some(agent) = ctx.component(Kind::OtelAgent) else { bail!("profile {} has no otel-agent", ctx.profile_name) };
    let Some(budget) = &agent.budget else {
        bail!("component {} has no budget: an edge component needs one", agent.name)
    };
    let (limit_mib, spike_limit_mib) = memory_limits(budget.memory.bytes());
    if !ctx.has(Kind::VictoriaLogs) {
        bail!("profile {} has the OpenTelemetry edge agent but no victoria-logs to push to", ctx.profile_name);
    }
    let pipeline = |receiver, exporter| Pipeline {
        receivers: vec![receiver],
        processors: vec!["memory_limiter", "batch"],
        exporters: vec![exporter],
    };
    // Each exporter has a queue of its own in the node's storage: a store that is down holds back
    // only its own signal.
    let queues = queue_bytes(ctx.settings().edge_buffer.size.bytes(), ctx.has(Kind::Jaeger));
    let exporter = |endpoint: String, queue_size: u64| OtlpHttp {
        endpoint,
        compression: "gzip",
        sending_queue: SendingQueue { enabled: true, storage: STORAGE, sizer: "bytes", queue_size, num_consumers: 1 },
        retry_on_failure: Retry {
            enabled: true,
            initial_interval: "1s".into(),
            max_interval: "10s".into(),
            max_elapsed_time: "0s".into(),
        },
    };
    let mut pipelines = BTreeMap::from([("logs", pipeline("file_log", "otlp_http/logs"))]);
    // Where it pushes: the cloud's NodePorts on Kubernetes, the services' aliases on the compose tier.
    let (cloud, logs_port, traces_port, health) = if ctx.is_kubernetes() {
        let n = &ctx.settings().node_ports;
        let cloud = format!("${{env:{ENV_CLOUD_HOST}}}");
        ([cloud.clone(), cloud], n.victoria_logs, n.otlp_http, "127.0.0.1")
    } else {
        ([VICTORIA_LOGS_HOST.to_string(), RELEASE_JAEGER.to_string()], VICTORIA_LOGS, OTLP_HTTP, "0.0.0.0")
    };
    let [logs_host, traces_host] = cloud;
    let traces = ctx.has(Kind::Jaeger).then(|| {
        pipelines.insert("traces", pipeline("otlp", "otlp_http/traces"));
        exporter(format!("http://{traces_host}:{traces_port}"), queues.traces)
    });
    Ok(Config {
        extensions: Extensions {
            health_check: HealthCheck { endpoint: format!("{health}:{COLLECTOR_HEALTH}") },
            file_storage: FileStorage { directory: format!("{STATE_DIR}/otel"), create_directory: true },
        },
        receivers: Receivers {
            file_log: FileLog {
                include: vec![POD_LOGS],
                start_at: "beginning",
                include_file_path: true,
                include_file_name: false,
                poll_interval: "1s".into(),
                storage: STORAGE,
                resource: [("k8s.node.name", format!("${{env:{NODE_NAME_ENV}}}"))].into(),
                operators: vec![Operator {
                    type_: "container",
                    format: "containerd",
                    add_metadata_from_filepath: true,
                }],
            },
            otlp: ctx
                .has(Kind::Jaeger)
                .then_some(Otlp { protocols: Protocols { http: Endpoint { endpoint: otlp_listen() } } }),
        },
        processors: Processors {
            memory_limiter: MemoryLimiter { check_interval: "1s".into(), limit_mib, spike_limit_mib },
            batch: Batch { timeout: "1s".into(), send_batch_size: 512 },
        },
        exporters: Exporters {
            logs: exporter(format!("http://{logs_host}:{logs_port}{VICTORIA_LOGS_OTLP}"), queues.logs),
            traces,
        },
        service: Service {
            extensions: vec!["health_check", STORAGE],
            telemetry: Telemetry { metrics: Level { level: "none" } },
            pipelines,
        },
    })
}

/// The agent on every edge (Kubernetes): its config in a ConfigMap and its DaemonSet.
pub fn manifest(ctx: &Ctx<'_>) -> Result<super::workloads::List> {
    use k8s_openapi::api::core::v1::{Container, EnvVar, HostPathVolumeSource, PodSpec, Volume, VolumeMount};

    use super::manifests::{budget_resources, edge_daemonset};
    let Some(c) = ctx.component(Kind::OtelAgent) else { bail!("profile {} has no otel-agent", ctx.profile_name) };
    let name = c.name.as_str();
    let text = file_text(ctx)?;
    let key = CONFIG_FILE.rsplit('/').next().unwrap_or(CONFIG_FILE);
    let config = super::manifests::edge_config(ctx, name, key, &text);
    let mut env = vec![super::manifests::node_name_env(), super::manifests::cloud_host_env(ENV_CLOUD_HOST)];
    if let Some(b) = &c.budget {
        env.push(EnvVar {
            name: "GOMEMLIMIT".into(),
            value: Some(go_memory_limit(b.memory.bytes())),
            ..Default::default()
        });
    }
    let mount = |volume: &str, path: &str, read_only: bool| VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..Default::default()
    };
    let host_path = |volume: &str, path: &str, type_: &str| Volume {
        name: volume.into(),
        host_path: Some(HostPathVolumeSource { path: path.into(), type_: Some(type_.into()) }),
        ..Default::default()
    };
    let pod_logs_dir = POD_LOGS.split("/*").next().unwrap_or("/var/log/pods");
    let agent = Container {
        name: name.into(),
        image: Some(ctx.image(Kind::OtelAgent, "otel-agent")?.pinned()),
        image_pull_policy: Some("IfNotPresent".into()),
        args: Some(vec![format!("--config=/etc/edge-agent/{key}")]),
        env: Some(env),
        readiness_probe: Some(super::manifests::loopback_ready("/", COLLECTOR_HEALTH)),
        resources: budget_resources(c),
        // Root, without a capability: the kubelet's pod logs and the state folder are root's own.
        security_context: Some(super::manifests::as_root(&[])),
        volume_mounts: Some(vec![
            mount("config", "/etc/edge-agent", true),
            mount("pod-logs", pod_logs_dir, true),
            mount("state", STATE_DIR, false),
        ]),
        ..Default::default()
    };
    let pod = PodSpec {
        containers: vec![agent],
        volumes: Some(vec![
            Volume { name: "config".into(), config_map: Some(config.source), ..Default::default() },
            host_path("pod-logs", pod_logs_dir, "Directory"),
            host_path("state", STATE_DIR, "DirectoryOrCreate"),
        ]),
        ..Default::default()
    };
    let daemonset = edge_daemonset(ctx, name, Some(config.annotations), pod);
    Ok(super::workloads::List::of(vec![serde_json::to_value(&config.config_map)?, serde_json::to_value(&daemonset)?]))
}

fn file_text(ctx: &Ctx<'_>) -> Result<String> {
    use super::output::{Comment, to_yaml, with_header};
    Ok(with_header(Comment::Hash, &to_yaml(&config(ctx)?)?))
}

pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    if !ctx.has(Kind::OtelAgent) {
        return Ok(());
    }
    files.add(CONFIG_FILE, file_text(ctx)?)?;
    if ctx.is_kubernetes() {
        files.add_yaml(MANIFEST_FILE, &manifest(ctx)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limiter_leaves_a_quarter_of_the_budget_to_the_runtime() {
        assert_eq!(memory_limits(64 * 1024 * 1024), (48, 12));
        assert_eq!(memory_limits(128 * 1024 * 1024), (96, 24));
        // The runtime's soft limit sits above the limiter's, below the budget.
        assert_eq!(go_memory_limit(64 * 1024 * 1024), "57MiB");
    }

    #[test]
    fn the_queues_share_the_edge_buffer_and_never_exceed_it() {
        let mib = 1024 * 1024;
        assert_eq!(queue_bytes(256 * mib, true), QueueBytes { logs: 192 * mib, traces: 64 * mib });
        assert_eq!(queue_bytes(256 * mib, false), QueueBytes { logs: 256 * mib, traces: 0 });
        for size in [1, 3, 1023, 256 * mib + 1] {
            let q = queue_bytes(size, true);
            assert_eq!(q.logs + q.traces, size, "{size}");
        }
    }
}
