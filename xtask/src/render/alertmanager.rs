//! Alertmanager configuration, typed: routes by severity, a webhook receiver whose
//! URL is a stack parameter, and inhibition (an edge node that is down silences the
//! alerts of the components and probes on that node).
//!
//! [`config`] serializes to exactly the `alertmanager.yml` schema, so the same value is
//! the standalone Alertmanager's file and kube-prometheus-stack's `alertmanager.config`.
//!
//! The compose flavour has the same routes, receivers and inhibitions, posts to the harness'
//! webhook, and takes `[e2e]`'s `group_wait`, `group_interval` and `repeat_interval` on every
//! route; Watchdog's route keeps `group_wait: 0s` and repeats every `watchdog_repeat_interval`.

use anyhow::Result;
use serde::Serialize;

use super::names::{ALERT_WATCHDOG, ALERT_WEBHOOK_KEY, ALERT_WEBHOOK_SECRET, LABEL_COMPONENT, LABEL_NODE};
use super::rules::Severity;
use super::{Ctx, Files};
use crate::stack::Duration;

/// The whole `alertmanager.yml`.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub route: Route,
    pub receivers: Vec<Receiver>,
    pub inhibit_rules: Vec<InhibitRule>,
}

/// A node of the routing tree; unset timings are inherited from the parent.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Route {
    pub receiver: String,
    /// Matchers such as `severity="critical"`, all of which must hold.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub matchers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_wait: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group_interval: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repeat_interval: Option<Duration>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
}

/// A named receiver; one with no configs drops what it gets.
#[derive(Debug, Clone, Serialize)]
pub struct Receiver {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub webhook_configs: Vec<WebhookConfig>,
}

/// A webhook target: its URL, or a file holding it.
#[derive(Debug, Clone, Serialize)]
pub struct WebhookConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url_file: Option<String>,
    pub send_resolved: bool,
    /// 0 = send every alert of the group.
    pub max_alerts: u32,
}

/// Mute alerts matching `target_matchers` while one matching `source_matchers` fires with equal `equal` labels.
#[derive(Debug, Clone, Serialize)]
pub struct InhibitRule {
    pub source_matchers: Vec<String>,
    pub target_matchers: Vec<String>,
    pub equal: Vec<String>,
}

/// Alerts that mean "this edge node is gone".
pub const NODE_DOWN_ALERTS: [&str; 2] = ["EdgeNodeNotReady", "EdgeNodeUnreachable"];
/// Alerts about things on an edge node, pointless while the node itself is down.
/// (Alerts on pushed data need none: a node that is gone pushes nothing fresh.)
pub const NODE_SCOPED_ALERTS: [&str; 3] =
    ["EdgeComponentMemoryOverBudget", "EdgeComponentCpuOverBudget", "EdgeTunnelDown"];
/// Alerts that mean "cloudcore is gone for every edge" (k3s + KubeEdge).
pub const CLOUDCORE_DOWN_ALERTS: [&str; 2] = ["CloudcoreDown", "CloudEdgeTunnelDown"];
/// Every edge's symptoms of cloudcore being gone: page once, as cloudcore.
pub const CLOUDCORE_SYMPTOMS: [&str; 3] = ["EdgeNodeNotReady", "EdgeTunnelDown", "EdgeCloudPortUnreachable"];
/// kube-prometheus-stack's default rules fire this (severity `none`) to mute `info` alerts; never delivered.
pub const ALERT_INFO_INHIBITOR: &str = "InfoInhibitor";

/// Receivers; all but `null` post to the stack's webhook, which tells them apart by the payload's `receiver`.
pub const RECEIVER_WEBHOOK: &str = "webhook";
pub const RECEIVER_CRITICAL: &str = "webhook-critical";
pub const RECEIVER_WATCHDOG: &str = "watchdog";
pub const RECEIVER_NULL: &str = "null";

const GROUP_WAIT: Duration = Duration::from_secs(30);
const GROUP_WAIT_CRITICAL: Duration = Duration::from_secs(10);
/// Watchdog is delivered at once, then rarely: the webhook sees it without being flooded.
const WATCHDOG_REPEAT: Duration = Duration::from_secs(12 * 3600);

/// How long Alertmanager holds a new alert of `severity` before the first notification: the
/// last term of the e2e's alert latency bound (`rules::LatencyModel`).
pub fn group_wait(ctx: &Ctx<'_>, severity: Severity) -> Duration {
    match (severity, ctx.compose_topology()) {
        (Severity::None, _) => Duration::from_secs(0),
        (_, Some(_)) => ctx.stack.e2e.group_wait,
        (Severity::Critical, None) => GROUP_WAIT_CRITICAL,
        (Severity::Warning, None) => GROUP_WAIT,
    }
}

/// How often Alertmanager flushes a group of alerts of `severity` again (the route's
/// `group_interval`): a resolution waits for it.
pub fn group_interval(ctx: &Ctx<'_>, severity: Severity) -> Duration {
    let [(critical, _), (root, _)] = intervals(ctx);
    let interval = match severity {
        Severity::None => watchdog_intervals(ctx).0,
        Severity::Critical => critical,
        Severity::Warning => root,
    };
    interval.unwrap_or(ALERTMANAGER_GROUP_INTERVAL)
}

/// Alertmanager's own default `group_interval`.
const ALERTMANAGER_GROUP_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// `(group_interval, repeat_interval)` of Watchdog's route, in this flavour.
fn watchdog_intervals(ctx: &Ctx<'_>) -> (Option<Duration>, Duration) {
    match ctx.compose_topology() {
        None => (Some(Duration::from_secs(60)), WATCHDOG_REPEAT),
        Some(_) => (Some(ctx.stack.e2e.group_interval), ctx.stack.e2e.watchdog_repeat_interval),
    }
}

/// `(group_interval, repeat_interval)` of the critical route and of the root (inherited by the
/// warning route), in this flavour.
fn intervals(ctx: &Ctx<'_>) -> [(Option<Duration>, Option<Duration>); 2] {
    let mins = |m: u64| Some(Duration::from_secs(m * 60));
    match ctx.compose_topology() {
        None => [(mins(1), mins(60)), (mins(5), mins(4 * 60))],
        Some(_) => {
            let e = &ctx.stack.e2e;
            [(Some(e.group_interval), Some(e.repeat_interval)); 2]
        }
    }
}

/// Where the operator mounts the Secret the install writes the webhook URL into
/// (`alertmanagerSpec.secrets`: `/etc/alertmanager/secrets/<name>/<key>`).
pub fn webhook_url_file() -> String {
    format!("/etc/alertmanager/secrets/{ALERT_WEBHOOK_SECRET}/{ALERT_WEBHOOK_KEY}")
}

fn webhook(ctx: &Ctx<'_>, name: &str) -> Receiver {
    Receiver {
        name: name.into(),
        webhook_configs: vec![WebhookConfig {
            url: ctx.alert_webhook_url().map(str::to_string),
            url_file: ctx.alert_webhook_url().is_none().then(webhook_url_file),
            send_resolved: true,
            max_alerts: 0,
        }],
    }
}

fn any_of(names: &[&str]) -> String {
    format!("alertname=~\"{}\"", names.join("|"))
}

fn severity_is(s: Severity) -> String {
    format!("severity=\"{}\"", s.as_str())
}

/// The Alertmanager configuration of a profile.
pub fn config(ctx: &Ctx<'_>) -> Config {
    let kps = ctx.kps();
    let [(critical_interval, critical_repeat), (root_interval, root_repeat)] = intervals(ctx);
    let (watchdog_interval, watchdog_repeat) = watchdog_intervals(ctx);
    let mut routes = vec![
        // The dead man's switch: its own receiver, so a bridge can page on its absence.
        Route {
            receiver: RECEIVER_WATCHDOG.into(),
            matchers: vec![format!("alertname=\"{ALERT_WATCHDOG}\"")],
            group_wait: Some(group_wait(ctx, Severity::None)),
            group_interval: watchdog_interval,
            repeat_interval: Some(watchdog_repeat),
            ..Default::default()
        },
        Route {
            receiver: RECEIVER_CRITICAL.into(),
            matchers: vec![severity_is(Severity::Critical)],
            group_wait: Some(group_wait(ctx, Severity::Critical)),
            group_interval: critical_interval,
            repeat_interval: critical_repeat,
            ..Default::default()
        },
        Route {
            receiver: RECEIVER_WEBHOOK.into(),
            matchers: vec![severity_is(Severity::Warning)],
            group_wait: Some(group_wait(ctx, Severity::Warning)),
            ..Default::default()
        },
    ];
    let mut receivers =
        vec![webhook(ctx, RECEIVER_WEBHOOK), webhook(ctx, RECEIVER_CRITICAL), webhook(ctx, RECEIVER_WATCHDOG)];
    let mut inhibit_rules = vec![
        InhibitRule {
            source_matchers: vec![any_of(&NODE_DOWN_ALERTS)],
            target_matchers: vec![any_of(&NODE_SCOPED_ALERTS)],
            equal: vec![LABEL_NODE.into()],
        },
        InhibitRule {
            source_matchers: vec![severity_is(Severity::Critical)],
            target_matchers: vec![severity_is(Severity::Warning)],
            equal: vec!["alertname".into(), LABEL_NODE.into()],
        },
    ];
    if kps {
        // kube-prometheus-stack's default rules: InfoInhibitor only mutes `info` alerts, as the chart's own config does.
        routes.insert(
            0,
            Route {
                receiver: RECEIVER_NULL.into(),
                matchers: vec![format!("alertname=\"{ALERT_INFO_INHIBITOR}\"")],
                ..Default::default()
            },
        );
        receivers.push(Receiver { name: RECEIVER_NULL.into(), webhook_configs: vec![] });
        inhibit_rules.push(InhibitRule {
            source_matchers: vec![any_of(&CLOUDCORE_DOWN_ALERTS)],
            target_matchers: vec![any_of(&CLOUDCORE_SYMPTOMS)],
            equal: vec![],
        });
        inhibit_rules.push(InhibitRule {
            source_matchers: vec![format!("alertname=\"{ALERT_INFO_INHIBITOR}\"")],
            target_matchers: vec!["severity=\"info\"".into()],
            equal: vec!["namespace".into()],
        });
    }
    Config {
        route: Route {
            // Anything unrouted (e.g. the chart's `info` alerts) still reaches the webhook.
            receiver: RECEIVER_WEBHOOK.into(),
            group_by: ["alertname", LABEL_NODE, LABEL_COMPONENT].map(String::from).to_vec(),
            group_wait: Some(group_wait(ctx, Severity::Warning)),
            group_interval: root_interval,
            repeat_interval: root_repeat,
            routes,
            ..Default::default()
        },
        receivers,
        inhibit_rules,
    }
}

/// Add `alertmanager/alertmanager.yml` (checked by `amtool check-config`).
pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    files.add_yaml("alertmanager/alertmanager.yml", &config(ctx))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::render::rules::catalog;
    use crate::stack::Arch;

    /// Whether a matcher of the two forms this module writes (`l="v"`, `l=~"a|b"`) holds.
    fn holds(matcher: &str, labels: &BTreeMap<String, String>) -> bool {
        let (name, op, value) = match matcher.split_once("=~") {
            Some((n, v)) => (n, "=~", v),
            None => matcher.split_once('=').map(|(n, v)| (n, "=", v)).expect("matcher has ="),
        };
        let value = value.trim_matches('"');
        let actual = labels.get(name).map(String::as_str).unwrap_or("");
        match op {
            "=" => actual == value,
            _ => value.split('|').any(|v| v == actual),
        }
    }

    /// The receiver Alertmanager picks: the first matching child route (none uses `continue`).
    fn receiver_for<'c>(cfg: &'c Config, labels: &BTreeMap<String, String>) -> &'c str {
        let child = cfg.route.routes.iter().find(|r| r.matchers.iter().all(|m| holds(m, labels)));
        child.map_or(cfg.route.receiver.as_str(), |r| r.receiver.as_str())
    }

    #[test]
    fn an_inhibited_alert_waits_for_its_inhibitor_in_both_flavours() {
        let stack = crate::stack::load(&crate::paths::stack_file()).expect("stack.toml loads");
        let topology = crate::render::ComposeTopology::golden();
        for profile in stack.profiles.keys() {
            for ctx in [
                Ctx::new(&stack, profile.as_str(), Arch::Amd64).expect("profile"),
                Ctx::compose(&stack, profile.as_str(), Arch::Amd64, &topology).expect("profile"),
            ] {
                let rules = catalog(&ctx);
                let scrape = ctx.scrape_interval().as_millis();
                let fors = |names: &[&str]| -> Vec<(String, u64)> {
                    rules
                        .iter()
                        .filter(|r| names.contains(&r.name))
                        .map(|r| (r.name.to_string(), r.for_.as_millis()))
                        .collect()
                };
                let (sources, targets) = (fors(&NODE_DOWN_ALERTS), fors(&NODE_SCOPED_ALERTS));
                // One inhibitor firing first is enough: EdgeNodeUnreachable, on the scrape path a
                // cut breaks; EdgeNodeNotReady (the node's status in Kubernetes) may come later.
                for (t, t_for) in &targets {
                    assert!(
                        sources.iter().any(|(_, s_for)| *t_for >= s_for + 2 * scrape),
                        "{profile}: {t} (for {t_for} ms) can page before any of {sources:?} inhibits it"
                    );
                }
            }
        }
    }

    #[test]
    fn every_rule_of_every_profile_reaches_the_receiver_of_its_severity() {
        let stack = crate::stack::load(&crate::paths::stack_file()).expect("stack.toml loads");
        let topology = crate::render::ComposeTopology::golden();
        for (profile, compose) in stack.profiles.keys().flat_map(|p| [(p, false), (p, true)]) {
            let ctx = match compose {
                false => Ctx::new(&stack, profile.as_str(), Arch::Amd64),
                true => Ctx::compose(&stack, profile.as_str(), Arch::Amd64, &topology),
            }
            .expect("profile");
            let profile = if compose { format!("compose/{profile}") } else { profile.to_string() };
            let cfg = config(&ctx);
            let rules = catalog(&ctx);
            for severity in Severity::ALL {
                assert!(rules.iter().any(|r| r.severity == severity), "{profile}: no {severity:?} rule to route");
            }
            for r in &rules {
                let mut labels = r.all_labels();
                labels.insert("alertname".into(), r.name.into());
                let want = match r.severity {
                    Severity::Critical => RECEIVER_CRITICAL,
                    Severity::Warning => RECEIVER_WEBHOOK,
                    Severity::None => RECEIVER_WATCHDOG,
                };
                assert_eq!(receiver_for(&cfg, &labels), want, "{profile}: {}", r.name);
            }
            let names: Vec<&str> = cfg.receivers.iter().map(|r| r.name.as_str()).collect();
            for route in std::iter::once(&cfg.route).chain(&cfg.route.routes) {
                assert!(names.contains(&route.receiver.as_str()), "{profile}: no receiver {}", route.receiver);
            }
        }
    }

    #[test]
    fn inhibitions_name_alerts_of_the_catalog_that_carry_the_node_label() {
        let stack = crate::stack::load(&crate::paths::stack_file()).expect("stack.toml loads");
        let topology = crate::render::ComposeTopology::golden();
        // Every profile in both flavours: a name may exist in one only (EdgeNodeNotReady on
        // Kubernetes), but every name must exist in some.
        let mut rules = Vec::new();
        for profile in stack.profiles.keys() {
            rules.extend(catalog(&Ctx::new(&stack, profile.as_str(), Arch::Amd64).expect("profile")));
            rules.extend(catalog(&Ctx::compose(&stack, profile.as_str(), Arch::Amd64, &topology).expect("profile")));
        }
        for name in CLOUDCORE_DOWN_ALERTS.iter().chain(&CLOUDCORE_SYMPTOMS) {
            assert!(rules.iter().any(|r| r.name == *name), "inhibition names {name}, which no rule defines");
        }
        for name in NODE_DOWN_ALERTS.iter().chain(&NODE_SCOPED_ALERTS) {
            let defs: Vec<_> = rules.iter().filter(|r| r.name == *name).collect();
            assert!(!defs.is_empty(), "inhibition names {name}, which no rule defines");
            // `equal: [node]` needs the node label on both sides; promtool cases pin the output labels.
            for r in defs {
                let fires = r.cases.iter().flat_map(|c| &c.expect);
                assert!(fires.clone().count() > 0 && fires.clone().all(|l| l.contains_key(LABEL_NODE)), "{name}");
            }
        }
    }

    #[test]
    fn matchers_parse_as_this_test_reads_them() {
        let l: BTreeMap<String, String> = [("alertname".to_string(), "B".to_string())].into();
        assert!(holds("alertname=~\"A|B\"", &l) && !holds("alertname=\"A\"", &l) && holds("severity=\"\"", &l));
    }
}
