//! Alert rules: one typed catalog, rendered three ways: a plain rules file
//! (`promtool check rules`), a `PrometheusRule` for kube-prometheus-stack, and a
//! promtool unit-test file in which every alert has a case where it fires and a
//! case where it stays silent (Watchdog, which always fires, has only the first).

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use super::names::*;
use super::{Ctx, Files};
use crate::stack::{Duration, Kind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
    /// Never pages: Watchdog.
    None,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::None => "none",
        }
    }
}

/// One promtool case: input series, and the alerts expected at `eval_after`.
#[derive(Debug, Clone)]
pub struct Case {
    /// `(series selector, expanding values)` at a 1m interval, e.g. `("up{job=\"x\"}", "0x20")`.
    pub series: Vec<(String, String)>,
    /// Label sets of the expected alerts (without `severity` and rule labels, added for you); empty = silent.
    pub expect: Vec<BTreeMap<String, String>>,
}

#[derive(Debug, Clone)]
pub struct AlertRule {
    pub name: &'static str,
    pub expr: String,
    pub for_: Duration,
    pub severity: Severity,
    /// Labels the rule adds besides `severity` (e.g. `component`).
    pub labels: BTreeMap<String, String>,
    pub summary: String,
    pub description: String,
    /// What to check first: a short actionable hint.
    pub runbook: String,
    pub cases: Vec<Case>,
}

impl AlertRule {
    /// How long the condition must hold before the alert fires.
    pub fn for_duration(&self) -> Duration {
        self.for_
    }

    fn all_labels(&self) -> BTreeMap<String, String> {
        let mut l = self.labels.clone();
        l.insert("severity".into(), self.severity.as_str().into());
        l
    }

    fn annotations(&self) -> BTreeMap<String, String> {
        [("summary", &self.summary), ("description", &self.description), ("runbook", &self.runbook)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn series(sel: impl Into<String>, values: &str) -> (String, String) {
    (sel.into(), values.into())
}

fn fires(series: Vec<(String, String)>, expect: &[&[(&str, &str)]]) -> Case {
    Case { series, expect: expect.iter().map(|l| labels(l)).collect() }
}

fn silent(series: Vec<(String, String)>) -> Case {
    Case { series, expect: vec![] }
}

const D1M: Duration = Duration::from_secs(60);
const D2M: Duration = Duration::from_secs(120);
const D5M: Duration = Duration::from_secs(300);

/// `absent(up{job="<job>"} == 1)`: fires when no target of the job is up, or the job is gone.
fn job_down(name: &'static str, job: &str, what: &str, severity: Severity, hint: &str) -> AlertRule {
    let up = format!("up{{job=\"{job}\"}}");
    AlertRule {
        name,
        expr: format!("absent({up} == 1)"),
        for_: D2M,
        severity,
        labels: BTreeMap::new(),
        summary: format!("{what} is down"),
        description: format!("No {what} target of job {job} has been up for 2 minutes."),
        runbook: hint.into(),
        cases: vec![
            fires(vec![series(format!("up{{job=\"{job}\",instance=\"a:1\"}}"), "0x10")], &[&[]]),
            fires(vec![], &[&[]]),
            silent(vec![series(format!("up{{job=\"{job}\",instance=\"a:1\"}}"), "1x10")]),
        ],
    }
}

/// The alert catalog for a profile: only alerts whose signals the profile produces.
pub fn catalog(ctx: &Ctx<'_>) -> Vec<AlertRule> {
    let kps = ctx.has(Kind::PrometheusStack);
    let mut rules = Vec::new();
    if kps {
        rules.push(AlertRule {
            name: "EdgeNodeNotReady",
            expr: "max by (node) (kube_node_status_condition{condition=\"Ready\",status=\"true\"} == 0) and on (node) kube_node_role{role=\"edge\"}".into(),
            for_: D2M,
            severity: Severity::Critical,
            labels: BTreeMap::new(),
            summary: "Edge node {{ $labels.node }} is not Ready".into(),
            description: "Edge node {{ $labels.node }} has reported NotReady (or stopped reporting to cloudcore) for 2 minutes.".into(),
            runbook: "On the edge node: `systemctl status edgecore`, `journalctl -u edgecore`; check the link to cloudcore port 10000.".into(),
            cases: vec![
                fires(
                    vec![
                        series("kube_node_status_condition{condition=\"Ready\",status=\"true\",node=\"edge-1\"}", "0x10"),
                        series("kube_node_role{node=\"edge-1\",role=\"edge\"}", "1x10"),
                    ],
                    &[&[("node", "edge-1")]],
                ),
                silent(vec![
                    series("kube_node_status_condition{condition=\"Ready\",status=\"true\",node=\"edge-1\"}", "1x10"),
                    series("kube_node_role{node=\"edge-1\",role=\"edge\"}", "1x10"),
                    // A NotReady cloud node is not this alert's business.
                    series("kube_node_status_condition{condition=\"Ready\",status=\"true\",node=\"cloud-1\"}", "0x10"),
                    series("kube_node_role{node=\"cloud-1\",role=\"control-plane\"}", "1x10"),
                ]),
            ],
        });
    }
    if ctx.has(Kind::NodeExporter) {
        let up = |v: &str, node: &str| {
            series(format!("up{{job=\"{JOB_EDGE_NODE_EXPORTER}\",instance=\"{node}:9100\",node=\"{node}\"}}"), v)
        };
        rules.push(AlertRule {
            name: "EdgeNodeUnreachable",
            expr: format!("max by (node) (up{{job=\"{JOB_EDGE_NODE_EXPORTER}\"}}) == 0"),
            for_: D1M,
            severity: Severity::Critical,
            labels: BTreeMap::new(),
            summary: "Edge node {{ $labels.node }} is unreachable from the cloud".into(),
            description: "Prometheus has not scraped node exporter on edge node {{ $labels.node }} for 1 minute: the node is down or its link is cut.".into(),
            runbook: "Check the edge node is powered and its network link; then `systemctl status edgecore` and the edge-node-exporter pod.".into(),
            cases: vec![
                fires(vec![up("0x10", "edge-1"), up("1x10", "edge-2")], &[&[("node", "edge-1")]]),
                silent(vec![up("1x10", "edge-1"), up("1x10", "edge-2")]),
            ],
        });
    }
    if kps {
        let up = |v: &str, node: &str| {
            series(format!("up{{job=\"{JOB_EDGE_RESOURCE}\",instance=\"{node}:10350\",node=\"{node}\"}}"), v)
        };
        rules.push(AlertRule {
            name: "CloudEdgeTunnelDown",
            expr: format!("max(up{{job=\"{JOB_EDGE_RESOURCE}\"}}) == 0"),
            for_: D2M,
            severity: Severity::Critical,
            labels: BTreeMap::new(),
            summary: "The cloud-edge stream tunnel is down".into(),
            description: "No edge kubelet can be scraped through the KubeEdge stream tunnel (port 10350 to cloudcore 10003) for 2 minutes.".into(),
            runbook: "Check cloudcore's cloudStream (ports 10003/10004) and iptables-manager; on edges, `modules.edgeStream.enable` must be true.".into(),
            cases: vec![
                fires(vec![up("0x10", "edge-1"), up("0x10", "edge-2")], &[&[]]),
                // One node down is that node's alert, not the tunnel's.
                silent(vec![up("0x10", "edge-1"), up("1x10", "edge-2")]),
            ],
        });
        rules.push(job_down(
            "CloudcoreDown",
            JOB_CLOUDCORE,
            "cloudcore",
            Severity::Critical,
            "`kubectl -n kubeedge get pods -l kubeedge=cloudcore`; check its monitorServer bindAddress is the host IP (port 9091).",
        ));
        for c in ctx.profile.edge_components() {
            let Some(budget) = c.budget else { continue };
            let name = c.name.as_str();
            let sel = format!("job=\"{JOB_EDGE_CADVISOR}\",container=\"{name}\"");
            let at = |metric: &str, v: &str| {
                series(format!("{metric}{{{sel},node=\"edge-1\",namespace=\"observability\",pod=\"{name}-x\"}}"), v)
            };
            let who: &[(&str, &str)] = &[
                ("node", "edge-1"),
                ("namespace", "observability"),
                ("pod", &format!("{name}-x")),
                ("container", name),
            ];
            let who: Vec<(&str, &str)> = who.to_vec();
            let mem = budget.memory.bytes();
            let component = labels(&[(LABEL_COMPONENT, name)]);
            rules.push(AlertRule {
                name: "EdgeComponentMemoryOverBudget",
                expr: format!("max by (node, namespace, pod, container) (container_memory_working_set_bytes{{{sel}}}) > {mem}"),
                for_: D5M,
                severity: Severity::Warning,
                labels: component.clone(),
                summary: format!("{name} on {{{{ $labels.node }}}} uses more memory than its budget ({})", budget.memory),
                description: format!("The working set of {name} on edge node {{{{ $labels.node }}}} has been above {} for 5 minutes.", budget.memory),
                runbook: format!("Compare with the e2e report's figures for {name}; raise its budget in stack.toml only if the measured need is accepted."),
                cases: vec![
                    fires(vec![at("container_memory_working_set_bytes", &format!("{}x15", mem + (1 << 20)))], &[&who]),
                    silent(vec![at("container_memory_working_set_bytes", &format!("{}x15", mem - (1 << 20)))]),
                ],
            });
            let cores = budget.cpu.cores();
            // A counter growing by `per_min` CPU-seconds a minute uses per_min/60 cores.
            let over = (cores * 60.0 * 2.0).ceil() as u64;
            let under = ((cores * 60.0) / 2.0).floor() as u64;
            rules.push(AlertRule {
                name: "EdgeComponentCpuOverBudget",
                expr: format!("max by (node, namespace, pod, container) (rate(container_cpu_usage_seconds_total{{{sel}}}[5m])) > {cores}"),
                for_: D5M,
                severity: Severity::Warning,
                labels: component,
                summary: format!("{name} on {{{{ $labels.node }}}} uses more CPU than its budget ({})", budget.cpu),
                description: format!("{name} on edge node {{{{ $labels.node }}}} has used more than {} for 5 minutes.", budget.cpu),
                runbook: format!("Check {name}'s load (log volume, scrape targets) on that node; raise its budget in stack.toml only if accepted."),
                cases: vec![
                    fires(vec![at("container_cpu_usage_seconds_total", &format!("0+{over}x20"))], &[&who]),
                    silent(vec![at("container_cpu_usage_seconds_total", &format!("0+{under}x20"))]),
                ],
            });
        }
    }
    if ctx.has(Kind::BlackboxExporter) {
        let probes = format!("{JOB_PROBE_CLOUDCORE}|{JOB_PROBE_EDGE}");
        let probe = |v: &str| {
            series(format!("probe_success{{job=\"{JOB_PROBE_EDGE}\",instance=\"10.0.0.2:9100\",node=\"edge-1\"}}"), v)
        };
        rules.push(AlertRule {
            name: "LinkProbeFailing",
            expr: format!("max by (job, instance, node) (probe_success{{job=~\"{probes}\"}}) == 0"),
            for_: D1M,
            severity: Severity::Warning,
            labels: BTreeMap::new(),
            summary: "Link probe {{ $labels.job }} to {{ $labels.instance }} is failing".into(),
            description: "The blackbox probe {{ $labels.job }} cannot reach {{ $labels.instance }} for 1 minute."
                .into(),
            runbook:
                "Check the network path between the cloud and that endpoint (routes, firewall, the edge node's link)."
                    .into(),
            cases: vec![
                fires(
                    vec![probe("0x10")],
                    &[&[("job", JOB_PROBE_EDGE), ("instance", "10.0.0.2:9100"), ("node", "edge-1")]],
                ),
                silent(vec![probe("1x10")]),
            ],
        });
        rules.push(job_down(
            "BlackboxExporterDown",
            JOB_BLACKBOX,
            "the blackbox exporter",
            Severity::Warning,
            "Check the blackbox exporter pod; while it is down no link probe runs.",
        ));
    }
    let self_job = ctx.self_jobs().prometheus;
    rules.push(AlertRule {
        name: "PrometheusRuleEvaluationFailures",
        expr: "sum by (job, instance) (increase(prometheus_rule_evaluation_failures_total[5m])) > 0".into(),
        for_: D1M,
        severity: Severity::Warning,
        labels: BTreeMap::new(),
        summary: "Prometheus fails to evaluate rules".into(),
        description: "Prometheus {{ $labels.instance }} failed rule evaluations in the last 5 minutes: alerts may be missed.".into(),
        runbook: "Read Prometheus' log for the failing rule group; `promtool check rules` on the rendered rules.".into(),
        cases: vec![
            fires(
                vec![series(format!("prometheus_rule_evaluation_failures_total{{job=\"{self_job}\",instance=\"p:9090\",rule_group=\"g\"}}"), "0+1x15")],
                &[&[("job", self_job), ("instance", "p:9090")]],
            ),
            silent(vec![series(format!("prometheus_rule_evaluation_failures_total{{job=\"{self_job}\",instance=\"p:9090\",rule_group=\"g\"}}"), "3x15")]),
        ],
    });
    rules.push(AlertRule {
        name: "PrometheusAlertmanagerNotConnected",
        expr: "max by (job, instance) (prometheus_notifications_alertmanagers_discovered) < 1".into(),
        for_: D2M,
        severity: Severity::Critical,
        labels: BTreeMap::new(),
        summary: "Prometheus is not connected to any Alertmanager".into(),
        description:
            "Prometheus {{ $labels.instance }} has discovered no Alertmanager for 2 minutes: no alert is delivered."
                .into(),
        runbook: "Check the Alertmanager pod and Prometheus' alerting configuration.".into(),
        cases: vec![
            fires(
                vec![series(
                    format!(
                        "prometheus_notifications_alertmanagers_discovered{{job=\"{self_job}\",instance=\"p:9090\"}}"
                    ),
                    "0x10",
                )],
                &[&[("job", self_job), ("instance", "p:9090")]],
            ),
            silent(vec![series(
                format!("prometheus_notifications_alertmanagers_discovered{{job=\"{self_job}\",instance=\"p:9090\"}}"),
                "1x10",
            )]),
        ],
    });
    if ctx.has(Kind::PrometheusStack) || ctx.has(Kind::Alertmanager) {
        rules.push(job_down(
            "AlertmanagerDown",
            ctx.self_jobs().alertmanager,
            "Alertmanager",
            Severity::Critical,
            "Check the Alertmanager pod and `amtool check-config` on its configuration.",
        ));
    }
    if ctx.has(Kind::Loki) {
        rules.push(job_down(
            "LokiDown",
            JOB_LOKI,
            "Loki",
            Severity::Warning,
            "Check the Loki pod and its volume (disk full?); edge agents buffer until it returns.",
        ));
    }
    if ctx.has(Kind::Jaeger) {
        rules.push(job_down(
            "JaegerDown",
            JOB_JAEGER,
            "Jaeger",
            Severity::Warning,
            "Check the Jaeger pod; traces sent while it is down are lost (memory storage).",
        ));
    }
    rules.push(AlertRule {
        name: ALERT_WATCHDOG,
        expr: "vector(1)".into(),
        for_: Duration::from_secs(0),
        severity: Severity::None,
        labels: BTreeMap::new(),
        summary: "Watchdog: the alerting pipeline is alive".into(),
        description: "This alert always fires. If the receiver stops getting it, Prometheus or Alertmanager is broken."
            .into(),
        runbook: "Nothing to do while it arrives; page on its absence.".into(),
        cases: vec![fires(vec![], &[&[]])],
    });
    rules
}

// ---- rules file / PrometheusRule ----

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleGroup {
    pub name: String,
    pub interval: String,
    pub rules: Vec<Rule>,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Rule {
    pub alert: String,
    pub expr: String,
    #[serde(rename = "for", skip_serializing_if = "Option::is_none")]
    pub for_: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
}

#[derive(Debug, Serialize)]
struct RulesFile {
    groups: Vec<RuleGroup>,
}

pub fn rule_groups(ctx: &Ctx<'_>) -> Vec<RuleGroup> {
    let rules = catalog(ctx)
        .iter()
        .map(|r| Rule {
            alert: r.name.into(),
            expr: r.expr.clone(),
            for_: (r.for_.as_millis() > 0).then(|| r.for_.to_string()),
            labels: r.all_labels(),
            annotations: r.annotations(),
        })
        .collect();
    vec![RuleGroup {
        name: "kubeprepare-observability".into(),
        interval: ctx.settings().evaluation_interval.to_string(),
        rules,
    }]
}

pub fn alert_names(ctx: &Ctx<'_>) -> Vec<String> {
    let mut names: Vec<String> = catalog(ctx).iter().map(|r| r.name.to_string()).collect();
    names.sort();
    names.dedup();
    names
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PrometheusRule {
    api_version: &'static str,
    kind: &'static str,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: RulesFile,
}

// ---- promtool unit tests ----

#[derive(Debug, Serialize)]
struct TestFile {
    rule_files: Vec<String>,
    evaluation_interval: String,
    tests: Vec<Test>,
}

#[derive(Debug, Serialize)]
struct Test {
    name: String,
    interval: String,
    input_series: Vec<InputSeries>,
    alert_rule_test: Vec<AlertTest>,
}

#[derive(Debug, Serialize)]
struct InputSeries {
    series: String,
    values: String,
}

#[derive(Debug, Serialize)]
struct AlertTest {
    eval_time: String,
    alertname: String,
    exp_alerts: Vec<ExpAlert>,
}

#[derive(Debug, Serialize)]
struct ExpAlert {
    exp_labels: BTreeMap<String, String>,
    exp_annotations: BTreeMap<String, String>,
}

/// Expand the `{{ $labels.x }}` templates the catalog uses.
fn expand(template: &str, labels: &BTreeMap<String, String>) -> String {
    let mut out = template.to_string();
    for (k, v) in labels {
        out = out.replace(&format!("{{{{ $labels.{k} }}}}"), v);
    }
    out
}

fn test_file(ctx: &Ctx<'_>) -> TestFile {
    let mut tests = Vec::new();
    for rule in catalog(ctx) {
        // Evaluate well after `for` has elapsed (series run 1m apart, from t=0).
        let eval = Duration::from_secs(rule.for_.as_secs() + 5 * 60);
        for (i, case) in rule.cases.iter().enumerate() {
            let exp_alerts = case
                .expect
                .iter()
                .map(|l| {
                    let mut all = l.clone();
                    all.extend(rule.all_labels());
                    let exp_annotations =
                        rule.annotations().iter().map(|(k, v)| (k.clone(), expand(v, &all))).collect();
                    ExpAlert { exp_labels: all, exp_annotations }
                })
                .collect();
            let what = if case.expect.is_empty() { "silent" } else { "fires" };
            let component = rule.labels.get(LABEL_COMPONENT).map(|c| format!(" ({c})")).unwrap_or_default();
            tests.push(Test {
                name: format!("{}{component} {what} #{}", rule.name, i + 1),
                interval: "1m".into(),
                input_series: case
                    .series
                    .iter()
                    .map(|(s, v)| InputSeries { series: s.clone(), values: v.clone() })
                    .collect(),
                alert_rule_test: vec![AlertTest {
                    eval_time: eval.to_string(),
                    alertname: rule.name.into(),
                    exp_alerts,
                }],
            });
        }
    }
    TestFile {
        rule_files: vec!["observability.rules.yml".into()],
        evaluation_interval: ctx.settings().evaluation_interval.to_string(),
        tests,
    }
}

pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    files.add_yaml("prometheus/rules/observability.rules.yml", &RulesFile { groups: rule_groups(ctx) })?;
    files.add_yaml("prometheus/rules/observability.test.yml", &test_file(ctx))?;
    if ctx.has(Kind::PrometheusStack) {
        let object = PrometheusRule {
            api_version: "monitoring.coreos.com/v1",
            kind: "PrometheusRule",
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some("observability-rules".into()),
                namespace: Some(ctx.namespace().into()),
                // kube-prometheus-stack's Prometheus selects rules of its release.
                labels: Some(labels(&[("release", RELEASE_KPS)])),
                ..Default::default()
            },
            spec: RulesFile { groups: rule_groups(ctx) },
        };
        files.add_yaml("manifests/40-prometheusrule.yaml", &object)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Arch;

    #[test]
    fn every_rule_has_firing_and_silent_cases_and_a_runbook() {
        let stack = crate::stack::load(&crate::paths::stack_file()).unwrap();
        for profile in ["upstream", "local"] {
            let ctx = Ctx::new(&stack, profile, Arch::Amd64).unwrap();
            for r in catalog(&ctx) {
                assert!(r.cases.iter().any(|c| !c.expect.is_empty()), "{}: no firing case", r.name);
                if r.name != ALERT_WATCHDOG {
                    assert!(r.cases.iter().any(|c| c.expect.is_empty()), "{}: no silent case", r.name);
                }
                assert!(!r.summary.is_empty() && !r.runbook.is_empty(), "{}", r.name);
            }
        }
    }

    #[test]
    fn templates_expand() {
        let l = labels(&[("node", "edge-1")]);
        assert_eq!(expand("node {{ $labels.node }} down", &l), "node edge-1 down");
    }
}
