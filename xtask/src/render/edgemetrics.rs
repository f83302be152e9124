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
//! Only the compose flavour is rendered: the local profile (the only one with this agent) runs on
//! the compose tier.

use anyhow::{Result, bail};
use serde::Serialize;

use super::names::{
    ENV_CLOUD_HOST_IP, JOB_EDGE_LINK_PROBE, JOB_EDGE_METRICS, JOB_EDGE_NODE_EXPORTER, LABEL_NODE, LABEL_PORT_NAME,
};
use super::otelagent::NODE_NAME_ENV;
use super::prometheus::{Global, ScrapeConfig, StaticConfig, probe_job};
use super::{Ctx, Files};
use crate::stack::{Duration, Kind};

/// The rendered file, relative to the compose config folder.
pub const CONFIG_FILE: &str = "edge-metrics/prometheus.yml";
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

/// The longest a sample waits on the edge for its batch to leave: a scrape interval, so pushed
/// series are as fresh as scraped ones.
pub fn send_deadline(ctx: &Ctx<'_>) -> Duration {
    ctx.scrape_interval()
}

/// The agent's command line: agent mode, its WAL kept for at least the buffer window, the node's
/// name expanded into the external labels.
pub fn args(window: Duration, port: u16, config_path: &str) -> Vec<String> {
    let retention = window.max(MIN_RETENTION);
    vec![
        "--agent".into(),
        format!("--config.file={config_path}"),
        format!("--storage.agent.path={WAL_DIR}"),
        format!("--storage.agent.retention.max-time={retention}"),
        "--enable-feature=expand-external-labels".into(),
        format!("--web.listen-address=:{port}"),
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
            url: compose_remote_write_url(ctx),
            queue_config: QueueConfig {
                sample_age_limit: buffer_window(ctx).to_string(),
                max_backoff: "5s".into(),
                max_shards: MAX_SHARDS,
                batch_send_deadline: send_deadline(ctx).to_string(),
            },
        }],
    })
}

pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    if !ctx.has(Kind::PrometheusAgent) || ctx.is_kubernetes() {
        return Ok(());
    }
    files.add_yaml(CONFIG_FILE, &config(ctx)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::ComposeTopology;
    use crate::stack::Arch;

    #[test]
    fn the_wal_outlives_the_window_and_samples_older_than_it_are_dropped() {
        let stack = crate::stack::load(&crate::paths::stack_file()).expect("stack.toml loads");
        let topology = ComposeTopology::golden();
        let ctx = Ctx::compose(&stack, "local", Arch::Amd64, &topology).unwrap();
        let window = stack.e2e.buffer_window;
        let cfg = config(&ctx).unwrap();
        assert_eq!(cfg.remote_write[0].queue_config.sample_age_limit, window.to_string());
        let retention = args(window, stack.settings.edge.metrics_agent, "x")
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
