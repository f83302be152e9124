//! Grafana's datasources, one list for both flavours: kube-prometheus-stack's
//! `grafana.additionalDataSources` (the chart provisions Prometheus itself) and, in the compose
//! flavour, the provisioning file `grafana/datasources/datasources.yaml` the Grafana container
//! reads from `/etc/grafana/provisioning/datasources/`.

use anyhow::Result;
use serde::Serialize;

use super::names::{RELEASE_JAEGER, RELEASE_LOKI};
use super::{Ctx, Files};
use crate::stack::Kind;

/// Stable datasource uids: dashboards, links and the e2e's health checks name them.
pub const UID_PROMETHEUS: &str = "prometheus";
pub const UID_LOKI: &str = "loki";
pub const UID_JAEGER: &str = "jaeger";

/// One entry of a datasource provisioning file (Grafana's `apiVersion: 1` schema).
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Datasource {
    pub name: &'static str,
    #[serde(rename = "type")]
    pub type_: &'static str,
    pub uid: &'static str,
    pub access: &'static str,
    pub url: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub is_default: bool,
    pub editable: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Provisioning {
    api_version: u32,
    datasources: Vec<Datasource>,
}

fn datasource(name: &'static str, type_: &'static str, uid: &'static str, url: String) -> Datasource {
    Datasource { name, type_, uid, access: "proxy", url, is_default: false, editable: false }
}

/// Loki and Jaeger when the profile has them, by the host Grafana reaches them at.
pub fn additional_datasources(ctx: &Ctx<'_>) -> Vec<Datasource> {
    let mut ds = Vec::new();
    if ctx.has(Kind::Loki) {
        ds.push(datasource(
            "Loki",
            "loki",
            UID_LOKI,
            format!("http://{}:{}", ctx.host(RELEASE_LOKI), super::ports::LOKI),
        ));
    }
    if ctx.has(Kind::Jaeger) {
        ds.push(datasource(
            "Jaeger",
            "jaeger",
            UID_JAEGER,
            format!("http://{}:{}", ctx.host(RELEASE_JAEGER), super::ports::JAEGER_QUERY),
        ));
    }
    ds
}

/// The compose flavour: Prometheus (the default) and the additional datasources, as a provisioning
/// file. Only for a profile whose Prometheus comes with Grafana (kube-prometheus-stack).
pub fn render_compose(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    if !ctx.has(Kind::PrometheusStack) {
        return Ok(());
    }
    let prometheus = Datasource {
        is_default: true,
        ..datasource(
            "Prometheus",
            "prometheus",
            UID_PROMETHEUS,
            format!("http://{}:{}", ctx.host("prometheus"), super::ports::PROMETHEUS),
        )
    };
    let mut datasources = vec![prometheus];
    datasources.extend(additional_datasources(ctx));
    files.add_yaml("grafana/datasources/datasources.yaml", &Provisioning { api_version: 1, datasources })
}
