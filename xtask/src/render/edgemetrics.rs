//! The edge metrics agent: Prometheus in agent mode on every edge node (`kind = "prometheus-agent"`).
//!
//! An edge is behind NAT (SPEC.md, "The network an edge really has"): the cloud cannot open a
//! connection to it, so no cloud job scrapes an edge. The agent scrapes the node's exporters on
//! 127.0.0.1 and remote-writes to the cloud's Prometheus (its remote-write receiver; Remote Write
//! 1.0 bodies are always snappy-compressed). Every series carries the node's name as `node`, an
//! external label expanded from `K8S_NODE_NAME`.
//!
//! While the link is down the samples stay in the agent's WAL on the node's disk; after a heal the
//! queue sends them in order, each series' samples oldest first. The buffer policy is
//! `settings.edge_buffer.window` (`[e2e] buffer_window` on the compose tier): a sample older than
//! the window when it is sent is dropped (`sample_age_limit`) and counted by the agent in
//! `prometheus_remote_storage_samples_dropped_total`; the WAL keeps at least that long; the cloud's
//! Prometheus accepts samples that old (`out_of_order_time_window`), since the other edges' fresh
//! samples move its head on.
//!
//! On Kubernetes it is a DaemonSet on every edge ([`MANIFEST_FILE`]), on the node's network,
//! pushing to the cloud Prometheus' NodePort at `CLOUD_HOST_IP`, the address the cloud install
//! writes into the ConfigMap `observability-endpoints`. Prometheus expands no variable in a URL:
//! an init container (the bundle's busybox probe image) writes the config with the address in
//! ([`INIT_SCRIPT`]); a config change rolls the pods (its digest is on the pod template).
//! The WAL is on a hostPath, so an upgrade or a reboot during an outage loses no buffered sample.

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::names::{
    ENV_CLOUD_HOST_IP, JOB_EDGE_LINK_PROBE, JOB_EDGE_METRICS, JOB_EDGE_NODE_EXPORTER, LABEL_NODE, LABEL_PORT_NAME,
};
use super::otelagent::NODE_NAME_ENV;
use super::prometheus::{Global, ScrapeConfig, StaticConfig, probe_job};
use super::{Ctx, Files};
use crate::stack::{Duration, Kind};

/// The rendered config (on Kubernetes the template the init container fills in).
pub const CONFIG_FILE: &str = "edge-metrics/prometheus.yml";
/// The agent's ConfigMap and DaemonSet (Kubernetes).
pub const MANIFEST_FILE: &str = "manifests/21-edge-metrics.yaml";
/// The hostPath holding the WAL on an edge node (Kubernetes).
pub const STATE_DIR: &str = "/var/lib/kubeprepare-edge-metrics";
/// Where the init container reads the template and writes the config, and the agent reads it.
const TEMPLATE_DIR: &str = "/template";
const CONFIG_DIR: &str = "/etc/edge-metrics";
/// The init container's job (busybox sh, run as root): the cloud address checked and put into
/// the config (an IPv6 one in brackets, as URLs and `host:port` targets need it; a target quoted),
/// written whole before it is renamed; the WAL folder given to the agent's user.
pub const INIT_SCRIPT: &str = r#"set -eu
bb=/bin/busybox
ip=${CLOUD_HOST_IP:-}
case $ip in
"" | *[!0-9A-Fa-f.:]*)
    echo "edge-metrics: CLOUD_HOST_IP=\"$ip\" (ConfigMap observability-endpoints) is not an IP address: rerun install-observability.sh with --cloud-ip IP" >&2
    exit 1
    ;;
*:*) host="[$ip]" ;;
*) host=$ip ;;
esac
# shellcheck disable=SC2016 # the placeholder, literally
token='\${CLOUD_HOST_IP}'
# A list item that is the address and a port is quoted: a YAML scalar cannot start with `[`.
"$bb" sed -e "s/^\( *- \)$token\(:[0-9][0-9]*\)\$/\1\"$host\2\"/" -e "s/$token/$host/g" "$TEMPLATE" >"$CONFIG.tmp"
"$bb" mv "$CONFIG.tmp" "$CONFIG"
"$bb" chown "$OWNER" "$WAL"
"#;
/// Where the WAL lives in the container (the Prometheus image's data folder).
pub const WAL_DIR: &str = "/prometheus";
/// The cloud Prometheus' remote-write path.
pub const REMOTE_WRITE_PATH: &str = "/api/v1/write";
/// The agent never keeps less than this in its WAL (Prometheus' `retention.min-time` default).
const MIN_RETENTION: Duration = Duration::from_secs(300);

#[derive(Serialize)]
struct Config {
    global: Global,
    scrape_configs: Vec<ScrapeConfig>,
    remote_write: Vec<RemoteWrite>,
}

#[derive(Serialize)]
struct RemoteWrite {
    name: &'static str,
    url: String,
    queue_config: QueueConfig,
}

#[derive(Serialize)]
struct QueueConfig {
    /// Samples older than the buffer window when they are sent are dropped (and counted).
    sample_age_limit: String,
    /// A heal is noticed within this (the default 5s; Prometheus' own default max is 5s too).
    max_backoff: String,
    /// One sender: over one thin link more gain nothing, and while the link is down Prometheus
    /// would reshard towards its default 50, each with its own buffers, and replay through all
    /// of them at the heal (measured: 433m CPU and +20 MiB for seconds after a 90 s cut).
    max_shards: u32,
    batch_send_deadline: String,
}

/// The buffer window of this flavour.
pub fn buffer_window(ctx: &Ctx<'_>) -> Duration {
    if ctx.is_kubernetes() { ctx.settings().edge_buffer.window } else { ctx.stack.e2e.buffer_window }
}

/// Remote-write senders of an edge agent (see `QueueConfig::max_shards`).
pub const MAX_SHARDS: u32 = 1;

/// The cloud Prometheus' remote-write URL in the compose flavour (its container alias).
pub fn compose_remote_write_url(ctx: &Ctx<'_>) -> String {
    format!("http://{}:{}{REMOTE_WRITE_PATH}", ctx.host("prometheus"), super::ports::PROMETHEUS)
}

/// The remote-write URL an edge pushes to in this flavour (on Kubernetes, the NodePort on the
/// cloud address the init container puts in).
fn remote_write_url(ctx: &Ctx<'_>) -> String {
    if ctx.is_kubernetes() {
        let port = ctx.settings().node_ports.prometheus;
        format!("http://${{{ENV_CLOUD_HOST_IP}}}:{port}{REMOTE_WRITE_PATH}")
    } else {
        compose_remote_write_url(ctx)
    }
}

/// The config with the cloud address in, as [`INIT_SCRIPT`] writes it (for checking the template).
pub fn with_cloud_host(template: &str, ip: std::net::IpAddr) -> String {
    let host = if ip.is_ipv6() { format!("[{ip}]") } else { ip.to_string() };
    let token = format!("${{{ENV_CLOUD_HOST_IP}}}");
    let mut out = String::with_capacity(template.len());
    for line in template.split_inclusive('\n') {
        let (body, end) = line.strip_suffix('\n').map_or((line, ""), |b| (b, "\n"));
        let item = body.trim_start();
        let indent = &body[..body.len() - item.len()];
        let port =
            item.strip_prefix("- ").and_then(|r| r.strip_prefix(token.as_str())).and_then(|r| r.strip_prefix(':'));
        match port.filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())) {
            Some(port) => out.push_str(&format!("{indent}- \"{host}:{port}\"{end}")),
            None => out.push_str(&line.replace(&token, &host)),
        }
    }
    out
}

/// The longest a sample waits on the edge for its batch to leave: a scrape interval, so pushed
/// series are as fresh as scraped ones.
pub fn send_deadline(ctx: &Ctx<'_>) -> Duration {
    ctx.scrape_interval()
}

/// The agent's command line: agent mode, its WAL kept for at least the buffer window, the node's
/// name expanded into the external labels, listening on `listen` (`[host]:port`).
pub fn args(window: Duration, listen: &str, config_path: &str) -> Vec<String> {
    let retention = window.max(MIN_RETENTION);
    vec![
        "--agent".into(),
        format!("--config.file={config_path}"),
        format!("--storage.agent.path={WAL_DIR}"),
        format!("--storage.agent.retention.max-time={retention}"),
        "--enable-feature=expand-external-labels".into(),
        format!("--web.listen-address={listen}"),
    ]
}

fn local(job: &str, port: u16) -> ScrapeConfig {
    ScrapeConfig {
        job_name: job.into(),
        static_configs: vec![StaticConfig { targets: vec![format!("127.0.0.1:{port}")], labels: Default::default() }],
        ..Default::default()
    }
}

/// The edge's probes of what it dials across the link, through its link probe on 127.0.0.1.
fn link_probe_job(ctx: &Ctx<'_>, port: u16) -> ScrapeConfig {
    let mut job = probe_job(JOB_EDGE_LINK_PROBE, super::blackbox::MODULE_TCP, format!("127.0.0.1:{port}"));
    job.static_configs = super::blackbox::edge_link_targets(ctx)
        .into_iter()
        .map(|t| StaticConfig {
            targets: vec![format!("{}:{}", t.host.unwrap_or_else(|| format!("${{{ENV_CLOUD_HOST_IP}}}")), t.port)],
            labels: [(LABEL_PORT_NAME.to_string(), t.name.to_string())].into(),
        })
        .collect();
    job
}

fn config(ctx: &Ctx<'_>) -> Result<Config> {
    if !ctx.has(Kind::Prometheus) && !ctx.has(Kind::PrometheusStack) {
        bail!("profile {} has an edge metrics agent but no Prometheus to remote-write to", ctx.profile_name);
    }
    let edge = &ctx.settings().edge;
    let mut scrape_configs = vec![local(JOB_EDGE_METRICS, edge.metrics_agent)];
    if ctx.has(Kind::NodeExporter) {
        scrape_configs.push(local(JOB_EDGE_NODE_EXPORTER, edge.node_exporter));
    }
    if ctx.has(Kind::LinkProbe) {
        scrape_configs.push(link_probe_job(ctx, edge.link_probe));
    }
    let interval = ctx.scrape_interval();
    Ok(Config {
        global: Global {
            scrape_interval: interval.to_string(),
            evaluation_interval: ctx.evaluation_interval().to_string(),
            external_labels: [(LABEL_NODE.to_string(), format!("${{{NODE_NAME_ENV}}}"))].into(),
        },
        scrape_configs,
        remote_write: vec![RemoteWrite {
            name: "cloud",
            url: remote_write_url(ctx),
            queue_config: QueueConfig {
                sample_age_limit: buffer_window(ctx).to_string(),
                max_backoff: "5s".into(),
                max_shards: MAX_SHARDS,
                batch_send_deadline: send_deadline(ctx).to_string(),
            },
        }],
    })
}

/// The agent on every edge (Kubernetes): its config template in a ConfigMap and its DaemonSet.
pub fn manifest(ctx: &Ctx<'_>) -> Result<super::workloads::List> {
    use k8s_openapi::api::core::v1::{
        Container, ContainerPort, EmptyDirVolumeSource, EnvVar, HostPathVolumeSource, PodSpec, Volume, VolumeMount,
    };

    use super::manifests::{NOBODY, budget_resources, edge_daemonset, locked_down};

    let c = ctx.component(Kind::PrometheusAgent).context("no edge metrics agent")?;
    let name = c.name.as_str();
    let image = ctx.image(Kind::PrometheusAgent, "prometheus")?;
    let busybox = ctx.image(Kind::Probe, "probe").with_context(|| {
        format!(
            "the edge metrics agent's init container runs the probe image: enable the probe component in profile {}",
            ctx.profile_name
        )
    })?;
    let text = file_text(ctx)?;
    let key = CONFIG_FILE.rsplit('/').next().unwrap_or(CONFIG_FILE);
    let config = super::manifests::edge_config(ctx, name, key, &text);
    let port = ctx.settings().edge.metrics_agent;
    let config_path = format!("{CONFIG_DIR}/{key}");
    let env = |name: &str, value: &str| EnvVar { name: name.into(), value: Some(value.into()), ..Default::default() };
    let mount = |volume: &str, path: &str, read_only: bool| VolumeMount {
        name: volume.into(),
        mount_path: path.into(),
        read_only: Some(read_only),
        ..Default::default()
    };
    let init = Container {
        name: "config".into(),
        image: Some(busybox.pinned()),
        image_pull_policy: Some("IfNotPresent".into()),
        command: Some(["/bin/busybox", "sh", "-c", INIT_SCRIPT].map(String::from).to_vec()),
        env: Some(vec![
            super::manifests::cloud_host_env(ENV_CLOUD_HOST_IP),
            env("TEMPLATE", &format!("{TEMPLATE_DIR}/{key}")),
            env("CONFIG", &config_path),
            env("OWNER", &format!("{NOBODY}:{NOBODY}")),
            env("WAL", WAL_DIR),
        ]),
        // Root, for the WAL folder's owner; nothing else.
        security_context: Some(super::manifests::as_root(&["CHOWN"])),
        resources: budget_resources(c),
        volume_mounts: Some(vec![
            mount("template", TEMPLATE_DIR, true),
            mount("config", CONFIG_DIR, false),
            mount("wal", WAL_DIR, false),
        ]),
        ..Default::default()
    };
    let mut env_vars = vec![super::manifests::node_name_env()];
    if let Some(b) = &c.budget {
        // Collect garbage harder before the budget is reached.
        env_vars.push(env("GOMEMLIMIT", &super::otelagent::go_memory_limit(b.memory.bytes())));
    }
    let agent = Container {
        name: name.into(),
        image: Some(image.pinned()),
        image_pull_policy: Some("IfNotPresent".into()),
        // Loopback only: nothing off the node has business with it.
        args: Some(args(buffer_window(ctx), &format!("127.0.0.1:{port}"), &config_path)),
        env: Some(env_vars),
        ports: Some(vec![ContainerPort {
            name: Some("http".into()),
            container_port: port.into(),
            protocol: Some("TCP".into()),
            ..Default::default()
        }]),
        readiness_probe: Some(super::manifests::loopback_ready("/-/ready", port)),
        resources: budget_resources(c),
        security_context: Some(locked_down()),
        volume_mounts: Some(vec![mount("config", CONFIG_DIR, true), mount("wal", WAL_DIR, false)]),
        ..Default::default()
    };
    let pod = PodSpec {
        init_containers: Some(vec![init]),
        containers: vec![agent],
        volumes: Some(vec![
            Volume { name: "template".into(), config_map: Some(config.source), ..Default::default() },
            Volume { name: "config".into(), empty_dir: Some(EmptyDirVolumeSource::default()), ..Default::default() },
            Volume {
                name: "wal".into(),
                host_path: Some(HostPathVolumeSource {
                    path: STATE_DIR.into(),
                    type_: Some("DirectoryOrCreate".into()),
                }),
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let daemonset = edge_daemonset(ctx, name, Some(config.annotations), pod);
    Ok(super::workloads::List::of(vec![serde_json::to_value(&config.config_map)?, serde_json::to_value(&daemonset)?]))
}

/// [`CONFIG_FILE`] as rendered, and as the ConfigMap carries it.
fn file_text(ctx: &Ctx<'_>) -> Result<String> {
    use super::output::{Comment, to_yaml, with_header};
    Ok(with_header(Comment::Hash, &to_yaml(&config(ctx)?)?))
}

pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    if !ctx.has(Kind::PrometheusAgent) {
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
    use crate::render::ComposeTopology;
    use crate::stack::Arch;

    /// The init container's substitution, as the validator checks the template: an IPv6 address in
    /// brackets, and a target that starts with it quoted (a plain YAML scalar cannot start with `[`).
    #[test]
    fn the_cloud_address_goes_in_as_urls_and_yaml_need_it() {
        let template =
            "url: http://${CLOUD_HOST_IP}:31090/api/v1/write\n  - ${CLOUD_HOST_IP}:10000\n  - x${CLOUD_HOST_IP}\n";
        assert_eq!(
            with_cloud_host(template, "192.0.2.1".parse().unwrap()),
            "url: http://192.0.2.1:31090/api/v1/write\n  - \"192.0.2.1:10000\"\n  - x192.0.2.1\n"
        );
        assert_eq!(
            with_cloud_host(template, "2001:db8::1".parse().unwrap()),
            "url: http://[2001:db8::1]:31090/api/v1/write\n  - \"[2001:db8::1]:10000\"\n  - x[2001:db8::1]\n"
        );
        assert!(
            INIT_SCRIPT.contains(&format!("token='\\${{{ENV_CLOUD_HOST_IP}}}'")),
            "the script replaces the same token"
        );
    }

    #[test]
    fn the_wal_outlives_the_window_and_samples_older_than_it_are_dropped() {
        let stack = crate::stack::load(&crate::paths::stack_file()).expect("stack.toml loads");
        let topology = ComposeTopology::golden();
        let ctx = Ctx::compose(&stack, "local", Arch::Amd64, &topology).unwrap();
        let window = stack.e2e.buffer_window;
        let cfg = config(&ctx).unwrap();
        assert_eq!(cfg.remote_write[0].queue_config.sample_age_limit, window.to_string());
        let retention = args(window, ":1", "x")
            .into_iter()
            .find_map(|a| a.strip_prefix("--storage.agent.retention.max-time=").map(String::from));
        assert_eq!(retention, Some(window.max(MIN_RETENTION).to_string()));
        // Every job is local to the node: nothing dials across the link but the push.
        // (the link probe's targets are parameters of its local exporter).
        for job in &cfg.scrape_configs {
            let local = if job.job_name == JOB_EDGE_LINK_PROBE {
                job.relabel_configs.iter().any(|r| {
                    r.target_label.as_deref() == Some("__address__")
                        && r.replacement.as_deref().is_some_and(|a| a.starts_with("127.0.0.1:"))
                })
            } else {
                job.static_configs.iter().flat_map(|s| &s.targets).all(|t| t.starts_with("127.0.0.1:"))
            };
            assert!(local, "{}", job.job_name);
        }
    }
}
