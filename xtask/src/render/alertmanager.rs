//! Alertmanager configuration, typed: routes by severity, a webhook receiver whose
//! URL is a stack parameter, and inhibition (an edge node that is down silences the
//! alerts of the components and probes on that node).

use anyhow::Result;
use serde::Serialize;

use super::names::ALERT_WATCHDOG;
use super::{Ctx, Files};

#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub route: Route,
    pub receivers: Vec<Receiver>,
    pub inhibit_rules: Vec<InhibitRule>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Route {
    pub receiver: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matchers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_wait: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Receiver {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhook_configs: Vec<WebhookConfig>,
}

#[derive(Debug, Clone, Serialize)]
pub struct WebhookConfig {
    pub url: String,
    pub send_resolved: bool,
    /// 0 = send every alert of the group.
    pub max_alerts: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct InhibitRule {
    pub source_matchers: Vec<String>,
    pub target_matchers: Vec<String>,
    pub equal: Vec<String>,
}

/// Alerts that mean "this edge node is gone".
pub const NODE_DOWN_ALERTS: [&str; 2] = ["EdgeNodeNotReady", "EdgeNodeUnreachable"];
/// Alerts about things on an edge node, pointless while the node itself is down.
pub const NODE_SCOPED_ALERTS: [&str; 3] =
    ["EdgeComponentMemoryOverBudget", "EdgeComponentCpuOverBudget", "LinkProbeFailing"];

/// How long Alertmanager waits before sending a new group (part of the alert latency bound).
pub const GROUP_WAIT_CRITICAL: &str = "10s";
pub const GROUP_WAIT: &str = "30s";

fn webhook(ctx: &Ctx<'_>, name: &str) -> Receiver {
    Receiver {
        name: name.into(),
        webhook_configs: vec![WebhookConfig {
            url: ctx.settings().alert_webhook_url.to_string(),
            send_resolved: true,
            max_alerts: 0,
        }],
    }
}

fn any_of(names: &[&str]) -> String {
    format!("alertname=~\"{}\"", names.join("|"))
}

pub fn config(ctx: &Ctx<'_>) -> Config {
    let group_by = ["alertname", "node", "component"].map(String::from).to_vec();
    Config {
        route: Route {
            receiver: "webhook".into(),
            group_by,
            group_wait: Some(GROUP_WAIT.into()),
            group_interval: Some("5m".into()),
            repeat_interval: Some("4h".into()),
            routes: vec![
                Route {
                    // The dead man's switch: delivered often so its absence is noticed.
                    receiver: "watchdog".into(),
                    matchers: vec![format!("alertname=\"{ALERT_WATCHDOG}\"")],
                    group_wait: Some("0s".into()),
                    group_interval: Some("1m".into()),
                    repeat_interval: Some("1m".into()),
                    ..Default::default()
                },
                Route {
                    receiver: "webhook-critical".into(),
                    matchers: vec!["severity=\"critical\"".into()],
                    group_wait: Some(GROUP_WAIT_CRITICAL.into()),
                    group_interval: Some("1m".into()),
                    repeat_interval: Some("1h".into()),
                    ..Default::default()
                },
                Route {
                    receiver: "webhook".into(),
                    matchers: vec!["severity=\"warning\"".into()],
                    ..Default::default()
                },
            ],
            ..Default::default()
        },
        receivers: vec![webhook(ctx, "webhook"), webhook(ctx, "webhook-critical"), webhook(ctx, "watchdog")],
        inhibit_rules: vec![
            InhibitRule {
                source_matchers: vec![any_of(&NODE_DOWN_ALERTS)],
                target_matchers: vec![any_of(&NODE_SCOPED_ALERTS)],
                equal: vec!["node".into()],
            },
            InhibitRule {
                source_matchers: vec!["severity=\"critical\"".into()],
                target_matchers: vec!["severity=\"warning\"".into()],
                equal: vec!["alertname".into(), "node".into()],
            },
        ],
    }
}

pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    files.add_yaml("alertmanager/alertmanager.yml", &config(ctx))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::rules::{Severity, catalog};
    use crate::stack::Arch;

    #[test]
    fn every_severity_has_a_route_and_inhibitions_name_real_alerts() {
        let stack = crate::stack::load(&crate::paths::stack_file()).unwrap();
        let ctx = Ctx::new(&stack, "upstream", Arch::Amd64).unwrap();
        let cfg = config(&ctx);
        let rules = catalog(&ctx);
        for r in &rules {
            let routed = cfg.route.routes.iter().any(|route| {
                route.matchers.iter().any(|m| {
                    *m == format!("severity=\"{}\"", r.severity.as_str()) || *m == format!("alertname=\"{}\"", r.name)
                })
            });
            assert!(routed, "{} ({:?}) has no route of its own", r.name, r.severity);
        }
        assert!(rules.iter().any(|r| r.severity == Severity::None));
        for name in NODE_DOWN_ALERTS.iter().chain(&NODE_SCOPED_ALERTS) {
            assert!(rules.iter().any(|r| r.name == *name), "inhibition names {name}, which no rule defines");
        }
    }
}
