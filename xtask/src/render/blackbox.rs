//! Blackbox exporter modules (typed) for the cloud↔edge link probes.
//! The probe targets live in the Prometheus jobs (see `prometheus.rs`).

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::{Ctx, Files};
use crate::stack::Kind;

/// TCP connect: is the port reachable across the link?
pub const MODULE_TCP: &str = "tcp_connect";
/// HTTP GET answering 2xx.
pub const MODULE_HTTP: &str = "http_2xx";

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub modules: BTreeMap<&'static str, Module>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Module {
    pub prober: &'static str,
    pub timeout: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpProbe>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TcpProbe {
    pub preferred_ip_protocol: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct HttpProbe {
    pub preferred_ip_protocol: &'static str,
    pub valid_status_codes: Vec<u16>,
    pub method: &'static str,
    pub follow_redirects: bool,
}

/// The modules; the timeout stays below the scrape timeout (Prometheus' default is 10s).
pub fn config() -> Config {
    let mut modules = BTreeMap::new();
    modules.insert(
        MODULE_TCP,
        Module {
            prober: "tcp",
            timeout: "5s".into(),
            tcp: Some(TcpProbe { preferred_ip_protocol: "ip4" }),
            http: None,
        },
    );
    modules.insert(
        MODULE_HTTP,
        Module {
            prober: "http",
            timeout: "5s".into(),
            tcp: None,
            http: Some(HttpProbe {
                preferred_ip_protocol: "ip4",
                valid_status_codes: vec![],
                method: "GET",
                follow_redirects: false,
            }),
        },
    );
    Config { modules }
}

pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    if ctx.has(Kind::BlackboxExporter) {
        files.add_yaml("blackbox/blackbox.yml", &config())?;
    }
    Ok(())
}

/// Chart values (prometheus-blackbox-exporter) carrying the same modules.
pub fn values(ctx: &Ctx<'_>) -> Result<serde_json::Value> {
    use super::values::{DigestKey, image, off_edge, resources_burst, to_value};
    Ok(serde_json::json!({
        "fullnameOverride": super::names::RELEASE_BLACKBOX,
        "image": image(ctx.image(Kind::BlackboxExporter, "blackbox-exporter")?, DigestKey::Digest),
        "config": to_value(&config()),
        "affinity": off_edge(),
        "resources": resources_burst("20m", "32Mi", "200m", "128Mi"),
        "serviceMonitor": { "enabled": false },
    }))
}
