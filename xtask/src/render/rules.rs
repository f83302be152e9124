//! Alert rules: one typed catalog, rendered three ways: a plain rules file
//! (`promtool check rules`), a `PrometheusRule` for kube-prometheus-stack, and a
//! promtool unit-test file in which every alert has a case where it fires and a
//! case where it stays silent (Watchdog, which always fires, has only the first).
//!
//! The catalog holds only alerts whose input series the profile produces: an alert
//! on a metric nobody scrapes would never fire and could never be tested.
//!
//! In the compose flavour every non-zero `for` is `[e2e] alert_for`, and [`alert_bound`] says how
//! late each alert may reach the webhook.

use std::collections::BTreeMap;

use anyhow::Result;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use super::names::*;
use super::{Ctx, Files};
use crate::stack::{Duration, Kind};

/// Where the rules file is rendered; the test file names it relative to its own directory.
pub const RULES_FILE: &str = "prometheus/rules/observability.rules.yml";
/// The promtool unit tests of [`RULES_FILE`].
pub const TESTS_FILE: &str = "prometheus/rules/observability.test.yml";
/// The `PrometheusRule` object (kube-prometheus-stack profiles only); `40-` orders it after
/// the HelmCharts that install its CRD.
pub const PROMETHEUS_RULE_FILE: &str = "manifests/40-prometheusrule.yaml";
/// Name of the one rule group (and of the `PrometheusRule` object's group).
pub const GROUP_NAME: &str = "kubeprepare-observability";

/// How urgent an alert is; Alertmanager routes on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    Warning,
    /// Never pages: Watchdog.
    None,
}

impl Severity {
    /// Every severity, for checks that the route tree covers them.
    pub const ALL: [Severity; 3] = [Severity::Critical, Severity::Warning, Severity::None];

    /// The `severity` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::Warning => "warning",
            Severity::None => "none",
        }
    }
}

/// One promtool case: input series, and the alerts expected once `for` has elapsed.
#[derive(Debug, Clone)]
pub struct Case {
    /// `(series selector, expanding values)` at a 1m interval, e.g. `("up{job=\"x\"}", "0x20")`.
    pub series: Vec<(String, String)>,
    /// Label sets of the expected alerts, without the rule's own labels (added for you);
    /// empty = the rule stays silent.
    pub expect: Vec<BTreeMap<String, String>>,
}

impl Case {
    /// Whether this case expects the alert to fire.
    pub fn fires(&self) -> bool {
        !self.expect.is_empty()
    }
}

/// How an alert's fault reaches the samples its rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detect {
    /// The cloud's Prometheus scrapes it.
    Scrape,
    /// An edge's agent scrapes it and pushes the sample, which waits up to the send deadline.
    Pushed,
    /// Pushed samples stop arriving: `expr` holds once no sample has come for this long.
    Silence(Duration),
}

/// One alerting rule of the catalog, with the promtool cases that pin its behaviour.
#[derive(Debug, Clone)]
pub struct AlertRule {
    /// The `alertname`; several rules may share it (one per edge component).
    pub name: &'static str,
    /// PromQL; the alert's labels are the result's labels plus [`AlertRule::labels`] and `severity`.
    pub expr: String,
    /// How long `expr` must hold before the alert fires.
    pub for_: Duration,
    /// How its fault reaches the rule's input (its [`Detection`] in the latency model).
    pub detect: Detect,
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
    /// How long the condition must hold before the alert fires; see [`LatencyModel`] for the
    /// e2e bound it is part of.
    pub fn for_duration(&self) -> Duration {
        self.for_
    }

    /// The `component` label, for rules repeated per edge component.
    pub fn component(&self) -> Option<&str> {
        self.labels.get(LABEL_COMPONENT).map(String::as_str)
    }

    /// The rule's own labels: [`AlertRule::labels`] plus `severity`.
    pub fn all_labels(&self) -> BTreeMap<String, String> {
        let mut l = self.labels.clone();
        l.insert("severity".into(), self.severity.as_str().into());
        l
    }

    /// `summary`, `description` and `runbook`, unexpanded (Prometheus templates).
    pub fn annotations(&self) -> BTreeMap<String, String> {
        [("summary", &self.summary), ("description", &self.description), ("runbook", &self.runbook)]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// An `up` series of an edge node's target, as the edge jobs label it.
fn node_up(job: &str, port: u16, node: &str, values: &str) -> (String, String) {
    series(format!("up{{job=\"{job}\",instance=\"{node}:{port}\",node=\"{node}\"}}"), values)
}

fn series(sel: impl Into<String>, values: impl Into<String>) -> (String, String) {
    (sel.into(), values.into())
}

fn fires(series: Vec<(String, String)>, expect: &[&[(&str, &str)]]) -> Case {
    Case { series, expect: expect.iter().map(|l| labels(l)).collect() }
}

fn silent(series: Vec<(String, String)>) -> Case {
    Case { series, expect: vec![] }
}

/// `for` of alerts on a node or link: short, so the e2e sees them within minutes.
const FOR_NODE: Duration = Duration::from_secs(60);
/// `for` of "a service is down" alerts.
const FOR_DOWN: Duration = Duration::from_secs(120);
/// `for` of budget alerts: long enough to ride out a start-up spike.
const FOR_BUDGET: Duration = Duration::from_secs(300);

/// The `for` a rule gets in this flavour: its own, or in the compose flavour `[e2e] alert_for`
/// for every rule that waits at all.
fn hold(ctx: &Ctx<'_>, own: Duration) -> Duration {
    match ctx.compose_topology() {
        Some(_) if own.as_millis() > 0 => ctx.stack.e2e.alert_for,
        _ => own,
    }
}

/// `absent(up{job="<job>"} == 1)`: fires when no target of the job is up, or the job is gone,
/// once Prometheus scrapes anything: before its first scrapes (a few seconds after it starts,
/// target discovery applies at most every 5 s) every `up` is absent, and that is no outage.
/// `absent()` of a comparison carries no labels, so the rule adds `job` itself.
fn job_down(ctx: &Ctx<'_>, name: &'static str, job: &str, what: &str, severity: Severity, hint: &str) -> AlertRule {
    let target = |v: &str| series(format!("up{{job=\"{job}\",instance=\"a:1\"}}"), v);
    let other = series("up{job=\"other\",instance=\"b:1\"}", "1x10");
    let for_down = hold(ctx, FOR_DOWN);
    AlertRule {
        name,
        expr: format!("absent(up{{job=\"{job}\"}} == 1) and on () count(up) > 0"),
        for_: for_down,
        detect: Detect::Scrape,
        severity,
        labels: labels(&[("job", job)]),
        summary: format!("{what} is down"),
        description: format!("No target of scrape job {job} ({what}) has been up for {for_down}."),
        runbook: hint.into(),
        cases: vec![
            fires(vec![target("0x10")], &[&[]]),
            // The job is gone while others are scraped.
            fires(vec![other.clone()], &[&[]]),
            silent(vec![target("1x10")]),
            // Nothing scraped yet: Prometheus has just started.
            silent(vec![]),
        ],
    }
}

/// The alert catalog for a profile: only alerts whose signals the profile produces.
pub fn catalog(ctx: &Ctx<'_>) -> Vec<AlertRule> {
    // cloudcore and the stream tunnel to edged exist only on k3s/KubeEdge; kube-state-metrics there
    // and on the kubernetes tier, where the local profile deploys its own.
    let kps = ctx.kps();
    let (for_node, for_down, for_budget) = (hold(ctx, FOR_NODE), hold(ctx, FOR_DOWN), hold(ctx, FOR_BUDGET));
    let (cloudcore, edge_ports) = (&ctx.settings().cloudcore, &ctx.settings().edge);
    let mut rules = Vec::new();
    if ctx.node_states() {
        let ready = |node: &str, v: &str| {
            series(format!("kube_node_status_condition{{condition=\"Ready\",status=\"true\",node=\"{node}\"}}"), v)
        };
        let role =
            |node: &str, role: &str| series(format!("kube_node_role{{node=\"{node}\",role=\"{role}\"}}"), "1x10");
        rules.push(AlertRule {
            name: "EdgeNodeNotReady",
            // KubeEdge labels edge nodes `node-role.kubernetes.io/edge: ""`; kube_node_labels would carry
            // an empty value, but kube-state-metrics' kube_node_role takes the role from the label key.
            expr: "max by (node) (kube_node_status_condition{condition=\"Ready\",status=\"true\"} == 0) \
                   and on (node) kube_node_role{role=\"edge\"}"
                .into(),
            for_: for_down,
            detect: Detect::Scrape,
            severity: Severity::Critical,
            labels: BTreeMap::new(),
            summary: "Edge node {{ $labels.node }} is not Ready".into(),
            description: format!(
                "Edge node {{{{ $labels.node }}}} has been NotReady (or silent towards cloudcore) for {for_down}."
            ),
            runbook: format!(
                "On the edge node: `systemctl status edgecore`, `journalctl -u edgecore`; check the link to cloudcore port {}.",
                cloudcore.cloudhub
            ),
            cases: vec![
                fires(vec![ready("edge-1", "0x10"), role("edge-1", "edge")], &[&[("node", "edge-1")]]),
                // A NotReady cloud node is not this alert's business.
                silent(vec![
                    ready("edge-1", "1x10"),
                    role("edge-1", "edge"),
                    ready("cloud-1", "0x10"),
                    role("cloud-1", "control-plane"),
                ]),
            ],
        });
    }
    if ctx.edges_push() {
        // Edges are behind NAT and push: a node that is down, cut off or whose agent stopped is
        // one that stopped pushing. The newest sample's age is taken over an hour of history (a
        // subquery at the scrape interval), so the alert holds through an outage instead of
        // resolving once the last sample leaves the 5m lookback; replayed samples after a heal
        // only make the newest sample younger.
        let threshold = Duration::from_millis(4 * ctx.scrape_interval().as_millis());
        let step = ctx.scrape_interval();
        let agent = |node: &str, v: &str| {
            let port = edge_ports.metrics_agent;
            series(format!("up{{job=\"{JOB_EDGE_METRICS}\",instance=\"127.0.0.1:{port}\",node=\"{node}\"}}"), v)
        };
        let exporter = |node: &str, v: &str| {
            let port = edge_ports.node_exporter;
            series(format!("up{{job=\"{JOB_EDGE_NODE_EXPORTER}\",instance=\"127.0.0.1:{port}\",node=\"{node}\"}}"), v)
        };
        // The tunnel (on k3s + KubeEdge) is a second path to the node: a node that stopped pushing
        // but answers through it is reachable, and its agent is what stopped.
        let silent_for = format!(
            "time() - max by (node) (max_over_time(timestamp(up{{job=\"{JOB_EDGE_METRICS}\"}})[1h:{step}])) > {}",
            threshold.as_secs()
        );
        let tunnel_up = format!("max by (node) (up{{job=\"{JOB_EDGE_RESOURCE}\"}}) == 1");
        let tunnel = |node: &str, v: &str| node_up(JOB_EDGE_RESOURCE, super::ports::EDGE_TUNNEL_FIRST, node, v);
        let mut unreachable_cases = vec![
            // edge-1 pushed for a minute, then nothing; edge-2 keeps pushing.
            fires(vec![agent("edge-1", "1x1"), agent("edge-2", "1x20")], &[&[("node", "edge-1")]]),
            silent(vec![agent("edge-1", "1x20"), agent("edge-2", "1x20")]),
        ];
        if kps {
            // Silent, but its tunnel still answers: EdgeMetricsNotPushing's, not this alert's.
            unreachable_cases.push(silent(vec![
                agent("edge-1", "1x1"),
                agent("edge-2", "1x20"),
                tunnel("edge-1", "1x20"),
            ]));
            unreachable_cases.push(fires(
                vec![agent("edge-1", "1x1"), agent("edge-2", "1x20"), tunnel("edge-1", "1x1 0x20")],
                &[&[("node", "edge-1")]],
            ));
        }
        rules.push(AlertRule {
            name: "EdgeNodeUnreachable",
            expr: if kps { format!("{silent_for} unless on (node) {tunnel_up}") } else { silent_for.clone() },
            for_: for_node,
            detect: Detect::Silence(threshold),
            severity: Severity::Critical,
            labels: BTreeMap::new(),
            summary: "Edge node {{ $labels.node }} cannot be reached".into(),
            description: format!(
                "No sample from edge node {{{{ $labels.node }}}}'s metrics agent has arrived for over {threshold} \
                 (held {for_node}){}: the node is down or its link is cut. Its agents buffer while cut off and send \
                 the backlog after the heal.",
                if kps { ", and its kubelet does not answer through the tunnel either" } else { "" }
            ),
            runbook: "Check the edge node is powered and its link to the cloud; then `systemctl status edgecore` and the edge-metrics pod's log.".into(),
            cases: unreachable_cases,
        });
        if kps {
            rules.push(AlertRule {
                name: "EdgeMetricsNotPushing",
                expr: format!("{silent_for} and on (node) {tunnel_up}"),
                for_: for_node,
                detect: Detect::Silence(threshold),
                severity: Severity::Warning,
                labels: BTreeMap::new(),
                summary: "Edge node {{ $labels.node }} is reachable but pushes no metrics".into(),
                description: format!(
                    "Edge node {{{{ $labels.node }}}} answers through the tunnel, but no sample from its metrics agent \
                     has arrived for over {threshold} (held {for_node}): the agent stopped, or cannot reach Prometheus' NodePort."
                ),
                runbook: "The edge metrics agent's pod and log on that node; its link-probe results for port_name=\"prometheus\" once it pushes again.".into(),
                cases: vec![
                    fires(vec![agent("edge-1", "1x1"), agent("edge-2", "1x20"), tunnel("edge-1", "1x20")], &[&[("node", "edge-1")]]),
                    // Silent and its tunnel down too: unreachable, EdgeNodeUnreachable's.
                    silent(vec![agent("edge-1", "1x1"), agent("edge-2", "1x20"), tunnel("edge-1", "1x1 0x20")]),
                    silent(vec![agent("edge-1", "1x20"), tunnel("edge-1", "1x20")]),
                ],
            });
            // A node that pushes but whose tunnel fails: the tunnel itself (cloudcore's stream
            // server, iptables-manager's DNAT, the edge's edgeStream). Held longer than the node
            // alerts, so edgecore stopping (NotReady, which inhibits it) pages as itself.
            let pushing = format!(
                "time() - max by (node) (timestamp(up{{job=\"{JOB_EDGE_METRICS}\"}})) < {}",
                threshold.as_secs()
            );
            rules.push(AlertRule {
                name: "EdgeTunnelDown",
                expr: format!("max by (node) (up{{job=\"{JOB_EDGE_RESOURCE}\"}}) == 0 and on (node) ({pushing})"),
                for_: for_budget,
                detect: Detect::Scrape,
                severity: Severity::Warning,
                labels: BTreeMap::new(),
                summary: "The stream tunnel to edge node {{ $labels.node }} is down".into(),
                description: format!(
                    "Edge node {{{{ $labels.node }}}} pushes its metrics, but its kubelet has not answered through the \
                     KubeEdge stream tunnel for {for_budget}: no kubelet metrics, logs or exec for it."
                ),
                runbook: format!(
                    "On the edge: `modules.edgeStream.enable` and edgecore's log; in the cloud: iptables-manager and cloudcore's cloudStream ({}/{}); the edge's link-probe result for port_name=\"tunnel\".",
                    cloudcore.stream, cloudcore.tunnel
                ),
                cases: vec![
                    fires(vec![tunnel("edge-1", "0x20"), agent("edge-1", "1x20")], &[&[("node", "edge-1")]]),
                    // Not pushing either: the node is unreachable, not its tunnel.
                    silent(vec![tunnel("edge-1", "0x20"), agent("edge-1", "1x1")]),
                    silent(vec![tunnel("edge-1", "1x20"), agent("edge-1", "1x20")]),
                ],
            });
        }
        if ctx.probes_link() {
            // Only fresh results: after a heal the agent replays the cut's failed probes, older
            // than `threshold`, and those must not page (the alert is about now).
            let job = format!("job=\"{JOB_EDGE_LINK_PROBE}\"");
            let probe = |port: &str, v: &str| {
                series(format!("probe_success{{{job},instance=\"cloud:1\",node=\"edge-1\",port_name=\"{port}\"}}"), v)
            };
            rules.push(AlertRule {
                name: "EdgeCloudPortUnreachable",
                expr: format!(
                    "min by (node, port_name) (probe_success{{{job}}}) == 0 and on (node, port_name) \
                     (time() - max by (node, port_name) (timestamp(probe_success{{{job}}})) < {})",
                    threshold.as_secs()
                ),
                for_: for_node,
                detect: Detect::Pushed,
                severity: Severity::Warning,
                labels: BTreeMap::new(),
                summary: "Edge node {{ $labels.node }} cannot reach the cloud's {{ $labels.port_name }} port".into(),
                description: format!(
                    "Edge node {{{{ $labels.node }}}} pushes, but its TCP connects to the cloud's {{{{ $labels.port_name }}}} \
                     port have failed for {for_node}: a firewall or NAT rule on the way, or the service behind the port."
                ),
                runbook: "From the edge: `wget -qO- http://<cloud>:<port>` (or `nc -zv`); the site's firewall for that port; the cloud Service or NodePort behind it.".into(),
                cases: vec![
                    fires(vec![probe("tunnel", "0x20")], &[&[("node", "edge-1"), ("port_name", "tunnel")]]),
                    silent(vec![probe("tunnel", "1x20")]),
                    // Failures replayed after a heal: within Prometheus' lookback, but old.
                    silent(vec![probe("tunnel", "0x3")]),
                ],
            });
        }
        if ctx.has(Kind::NodeExporter) {
            rules.push(AlertRule {
                name: "EdgeNodeExporterDown",
                expr: format!("max by (node) (up{{job=\"{JOB_EDGE_NODE_EXPORTER}\"}}) == 0"),
                for_: for_node,
                detect: Detect::Pushed,
                severity: Severity::Warning,
                labels: BTreeMap::new(),
                summary: "Node exporter on edge node {{ $labels.node }} is down".into(),
                description: format!("Edge node {{{{ $labels.node }}}} pushes, but its agent has not scraped node exporter for {for_node}."),
                runbook: "Check the edge-node-exporter pod on that node.".into(),
                cases: vec![
                    fires(vec![exporter("edge-1", "0x10"), exporter("edge-2", "1x10")], &[&[("node", "edge-1")]]),
                    silent(vec![exporter("edge-1", "1x10"), exporter("edge-2", "1x10")]),
                ],
            });
        }
    }
    if kps {
        // Each edge's address is its tunnel port, the first of which cloudcore negotiates is 10351.
        let up = |node: &str, v: &str| node_up(JOB_EDGE_RESOURCE, super::ports::EDGE_TUNNEL_FIRST, node, v);
        rules.push(AlertRule {
            name: "CloudEdgeTunnelDown",
            // `max` of no series is no series: with no edge target at all this stays silent.
            expr: format!("max(up{{job=\"{JOB_EDGE_RESOURCE}\"}}) == 0"),
            for_: for_down,
            detect: Detect::Scrape,
            severity: Severity::Critical,
            labels: BTreeMap::new(),
            summary: "The cloud-edge stream tunnel is down".into(),
            description: format!(
                "No edge kubelet can be scraped through the KubeEdge stream tunnel (each edge node's tunnel port, DNATed to cloudcore's stream port {}) for {for_down}.",
                cloudcore.stream
            ),
            runbook: format!(
                "Check cloudcore's cloudStream (ports {}/{}) and iptables-manager; on edges, `modules.edgeStream.enable` must be true.",
                cloudcore.stream, cloudcore.tunnel
            ),
            cases: vec![
                fires(vec![up("edge-1", "0x10"), up("edge-2", "0x10")], &[&[]]),
                // One node down is that node's alert, not the tunnel's.
                silent(vec![up("edge-1", "0x10"), up("edge-2", "1x10")]),
            ],
        });
        rules.push(job_down(
            ctx,
            "CloudcoreDown",
            JOB_CLOUDCORE,
            "cloudcore",
            Severity::Critical,
            &format!(
                "`kubectl -n kubeedge get pods -l kubeedge=cloudcore`; check its monitorServer bindAddress is the host IP (port {}).",
                cloudcore.monitor
            ),
        ));
        // The probe image is carried, not deployed, by the Kubernetes install: no container to watch.
        for c in ctx.profile.edge_components().filter(|c| c.kind != Kind::Probe) {
            let Some(budget) = c.budget else { continue };
            // Edge containers are named after their component (manifests and chart values).
            let name = c.name.as_str();
            let ns = ctx.namespace();
            let pod = format!("{name}-x");
            let sel = format!("job=\"{JOB_EDGE_CADVISOR}\",container=\"{name}\"");
            let at = |metric: &str, v: String| {
                series(format!("{metric}{{{sel},node=\"edge-1\",namespace=\"{ns}\",pod=\"{pod}\"}}"), v)
            };
            let who = [("node", "edge-1"), ("namespace", ns), ("pod", pod.as_str()), ("container", name)];
            let component = labels(&[(LABEL_COMPONENT, name)]);
            let mem = budget.memory.bytes();
            rules.push(AlertRule {
                name: "EdgeComponentMemoryOverBudget",
                expr: format!("max by (node, namespace, pod, container) (container_memory_working_set_bytes{{{sel}}}) > {mem}"),
                for_: for_budget,
                detect: Detect::Scrape,
                severity: Severity::Warning,
                labels: component.clone(),
                summary: format!("{name} on {{{{ $labels.node }}}} uses more memory than its budget ({})", budget.memory),
                description: format!("The working set of {name} on edge node {{{{ $labels.node }}}} has been above {} for {for_budget}.", budget.memory),
                runbook: format!("Compare with the e2e report's figures for {name}; raise its budget in stack.toml only if the measured need is accepted."),
                cases: vec![
                    fires(vec![at("container_memory_working_set_bytes", format!("{}x15", mem.saturating_mul(2)))], &[&who]),
                    silent(vec![at("container_memory_working_set_bytes", format!("{}x15", mem / 2))]),
                ],
            });
            let cores = budget.cpu.cores();
            // A counter growing by `n` CPU-seconds a minute uses n/60 cores: twice, and half, the budget.
            let m = budget.cpu.millis();
            let (over, under) = ((m * 120).div_ceil(1000), m * 30 / 1000);
            rules.push(AlertRule {
                name: "EdgeComponentCpuOverBudget",
                expr: format!("max by (node, namespace, pod, container) (rate(container_cpu_usage_seconds_total{{{sel}}}[5m])) > {cores}"),
                for_: for_budget,
                detect: Detect::Scrape,
                severity: Severity::Warning,
                labels: component,
                summary: format!("{name} on {{{{ $labels.node }}}} uses more CPU than its budget ({})", budget.cpu),
                description: format!("{name} on edge node {{{{ $labels.node }}}} has used more than {} for {for_budget}.", budget.cpu),
                runbook: format!("Check {name}'s load (log volume, scrape targets) on that node; raise its budget in stack.toml only if accepted."),
                cases: vec![
                    fires(vec![at("container_cpu_usage_seconds_total", format!("0+{over}x20"))], &[&who]),
                    silent(vec![at("container_cpu_usage_seconds_total", format!("0+{under}x20"))]),
                ],
            });
        }
    }
    // Where edges push, the cloud probes only its own side of the link: cloudcore's ports
    // through its Service (a tunnel or cloudhub that stops answering strands every edge).
    if ctx.has(Kind::BlackboxExporter) && ctx.edges_push() && kps {
        let tunnel_instance = format!("cloudcore.kubeedge.svc:{}", cloudcore.tunnel);
        let probe = |port: &str, v: &str| {
            series(
                format!(
                    "probe_success{{job=\"{JOB_PROBE_CLOUDCORE}\",instance=\"{tunnel_instance}\",port_name=\"{port}\"}}"
                ),
                v,
            )
        };
        rules.push(AlertRule {
            name: "CloudcorePortDown",
            expr: format!("max by (instance, port_name) (probe_success{{job=\"{JOB_PROBE_CLOUDCORE}\"}}) == 0"),
            for_: for_node,
            detect: Detect::Scrape,
            severity: Severity::Critical,
            labels: BTreeMap::new(),
            summary: "cloudcore's {{ $labels.port_name }} port ({{ $labels.instance }}) does not answer".into(),
            description: format!(
                "A TCP connect from the cloud to cloudcore's {{{{ $labels.port_name }}}} port has failed for {for_node}: \
                 edges cannot connect, or their tunnel is down."
            ),
            runbook: "`kubectl -n kubeedge get pods,svc`; cloudcore's log; the cloudcore Service's endpoints.".into(),
            cases: vec![
                fires(vec![probe("tunnel", "0x10")], &[&[("instance", &tunnel_instance), ("port_name", "tunnel")]]),
                silent(vec![probe("tunnel", "1x10")]),
            ],
        });
    }
    if ctx.has(Kind::BlackboxExporter) {
        rules.push(job_down(
            ctx,
            "BlackboxExporterDown",
            JOB_BLACKBOX,
            "the blackbox exporter",
            Severity::Warning,
            "Check the blackbox exporter pod; while it is down no link probe runs.",
        ));
    }
    let jobs = ctx.self_jobs();
    let prom_instance = format!("p:{}", super::ports::PROMETHEUS);
    let prom = |metric: &str, v: &str| {
        series(format!("{metric}{{job=\"{}\",instance=\"{prom_instance}\"}}", jobs.prometheus), v)
    };
    let prom_labels: &[(&str, &str)] = &[("job", jobs.prometheus), ("instance", &prom_instance)];
    rules.push(AlertRule {
        name: "PrometheusRuleEvaluationFailures",
        // The cloud's Prometheus only: edge agents push their own prometheus_* metrics too.
        expr: format!(
            "sum by (job, instance) (increase(prometheus_rule_evaluation_failures_total{{job=\"{}\"}}[5m])) > 0",
            jobs.prometheus
        ),
        for_: for_node,
        detect: Detect::Scrape,
        severity: Severity::Warning,
        labels: BTreeMap::new(),
        summary: "Prometheus fails to evaluate rules".into(),
        description:
            "Prometheus {{ $labels.instance }} failed rule evaluations in the last 5 minutes: alerts may be missed."
                .into(),
        runbook: "Read Prometheus' log for the failing rule group; run `promtool check rules` on the rendered rules."
            .into(),
        cases: vec![
            fires(vec![prom("prometheus_rule_evaluation_failures_total", "0+1x15")], &[prom_labels]),
            silent(vec![prom("prometheus_rule_evaluation_failures_total", "3x15")]),
        ],
    });
    rules.push(AlertRule {
        name: "PrometheusAlertmanagerNotConnected",
        expr: format!(
            "max by (job, instance) (prometheus_notifications_alertmanagers_discovered{{job=\"{}\"}}) < 1",
            jobs.prometheus
        ),
        for_: for_down,
        detect: Detect::Scrape,
        severity: Severity::Critical,
        labels: BTreeMap::new(),
        summary: "Prometheus is not connected to any Alertmanager".into(),
        description: format!("Prometheus {{{{ $labels.instance }}}} has discovered no Alertmanager for {for_down}: no alert is delivered."),
        runbook: "Check the Alertmanager pod and Prometheus' `alerting` configuration.".into(),
        cases: vec![
            fires(vec![prom("prometheus_notifications_alertmanagers_discovered", "0x10")], &[prom_labels]),
            silent(vec![prom("prometheus_notifications_alertmanagers_discovered", "1x10")]),
        ],
    });
    if ctx.has_alertmanager() {
        rules.push(job_down(
            ctx,
            "AlertmanagerDown",
            jobs.alertmanager,
            "Alertmanager",
            Severity::Critical,
            "Check the Alertmanager pod and run `amtool check-config` on its configuration.",
        ));
    }
    if ctx.has(Kind::Loki) {
        rules.push(job_down(
            ctx,
            "LokiDown",
            JOB_LOKI,
            "Loki",
            Severity::Warning,
            "Check the Loki pod and its volume (disk full?); edge agents buffer until it returns.",
        ));
    }
    if ctx.has(Kind::Jaeger) {
        rules.push(job_down(
            ctx,
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
        detect: Detect::Scrape,
        severity: Severity::None,
        labels: BTreeMap::new(),
        summary: "Watchdog: the alerting pipeline is alive".into(),
        description: "This alert always fires. If the receiver stops getting it, Prometheus or Alertmanager is broken."
            .into(),
        runbook: "Nothing to do while it arrives; page on its absence.".into(),
        // The one exception to "every rule has a silent case": a dead man's switch fires always,
        // so the only meaningful case is that it fires with no input at all.
        cases: vec![fires(vec![], &[&[]])],
    });
    rules
}

// ---- rules file / PrometheusRule ----

/// A Prometheus rule group, as in a rules file and in a `PrometheusRule`'s spec.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleGroup {
    pub name: String,
    pub interval: String,
    pub rules: Vec<Rule>,
}

/// An alerting rule in Prometheus' rules-file schema.
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
pub struct RulesFile {
    groups: Vec<RuleGroup>,
}

/// The rules file: the catalog's groups.
pub fn rules_file(ctx: &Ctx<'_>) -> RulesFile {
    RulesFile { groups: rule_groups(ctx) }
}

/// The catalog as Prometheus rule groups, evaluated at the stack's evaluation interval.
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
    vec![RuleGroup { name: GROUP_NAME.into(), interval: ctx.evaluation_interval().to_string(), rules }]
}

/// Distinct alert names of the catalog, sorted.
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
    metadata: ObjectMeta,
    spec: RulesFile,
}

// ---- alert latency ----

/// How the fault becomes the rule's condition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detection {
    /// A scrape sees it: the next scrape starts up to one scrape interval later and can take up
    /// to its timeout, which Prometheus caps at the scrape interval (a cut link hangs until then;
    /// a vanished host fails at once).
    Scrape { interval: std::time::Duration },
    /// As a scrape, on the edge, and the sample then waits up to the agent's send deadline.
    Pushed { interval: std::time::Duration, deadline: std::time::Duration },
    /// Silence: pushed samples stop arriving, and the condition holds once the newest one is
    /// `threshold` old. The newest sample to arrive before the fault was scraped up to `lag`
    /// before it: a scrape interval, plus the agent's send deadline for a sample still queued
    /// on the edge when the link went (it arrives after the heal).
    Silence { threshold: std::time::Duration, lag: std::time::Duration },
}

impl Detection {
    /// The longest and shortest time from the fault to the condition holding.
    fn range(self) -> (std::time::Duration, std::time::Duration) {
        match self {
            Detection::Scrape { interval } => (2 * interval, std::time::Duration::ZERO),
            Detection::Pushed { interval, deadline } => (2 * interval + deadline, std::time::Duration::ZERO),
            Detection::Silence { threshold, lag } => (threshold, threshold.saturating_sub(lag)),
        }
    }
}

/// An alert rule's latency: its bound ([`LatencyModel::bound`]) is the latest the alert reaches the
/// webhook after its fault, in a context's flavour (the e2e compose tier measures against it):
///
/// `detection + evaluation_interval + for (rounded up to whole evaluation intervals) + group_wait`
///
/// - detection ([`Detection`]): `2 × scrape_interval` for a fault a scrape sees, the silence
///   threshold for pushed data that stops;
/// - the first evaluation to see the condition comes up to one evaluation interval later, and makes
///   the alert pending;
/// - it fires at the first evaluation at least `for` later, and Prometheus sends it to Alertmanager at once;
/// - Alertmanager holds a new group for its route's `group_wait`, then posts.
///
/// With the compose defaults (2s, 2s, 6s, 2s) a scraped fault's bound is 14s. It holds for a *new*
/// alert group (labels `alertname`, `node`, `component`); an alert joining a group that was notified
/// in the last `group_interval` waits for that group's next flush instead. Resolution is not bounded by it.
///
/// The model keeps the terms, to give the bound and explain a measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyModel {
    pub detection: Detection,
    pub evaluation: std::time::Duration,
    /// `for`, rounded up to whole evaluation intervals.
    pub hold: std::time::Duration,
    pub group_wait: std::time::Duration,
    /// How often Alertmanager flushes the alert's group again: when a resolution is sent.
    pub group_interval: std::time::Duration,
}

impl LatencyModel {
    /// The worst case from the fault's end to the resolved notification: the first good sample
    /// (a scrape interval, plus the send deadline when it is pushed), the next evaluation, then
    /// the group's next flush.
    pub fn resolve_bound(&self) -> std::time::Duration {
        let first_good = match self.detection {
            Detection::Scrape { interval } => interval,
            Detection::Pushed { interval, deadline } => interval + deadline,
            Detection::Silence { lag, .. } => lag,
        };
        first_good + self.evaluation + self.group_interval
    }

    /// The worst case: detection at its longest, the next evaluation a whole interval after it.
    pub fn bound(&self) -> std::time::Duration {
        self.detection.range().0 + self.evaluation + self.hold + self.group_wait
    }

    /// The best case: detection at its shortest and an evaluation right after it; `for` and
    /// `group_wait` are waited in full. An alert sooner than this was not caused by the fault.
    pub fn earliest(&self) -> std::time::Duration {
        self.detection.range().1 + self.hold + self.group_wait
    }

    /// The worst case for a target that fails its scrape at once (connection refused, host gone):
    /// no scrape timeout. For silence, the bound itself.
    pub fn latest_without_timeout(&self) -> std::time::Duration {
        let detect = match self.detection {
            Detection::Scrape { interval } => interval,
            Detection::Pushed { interval, deadline } => interval + deadline,
            Detection::Silence { threshold, .. } => threshold,
        };
        detect + self.evaluation + self.hold + self.group_wait
    }

    /// Why `measured` differs from the bound, in terms of the model: `Some` for a figure more
    /// than `tolerance` (a fraction) under the bound but not sooner than the earliest. `None`
    /// within the tolerance (nothing to explain), sooner than the earliest (the fault did not
    /// cause it) or over the bound (a warning, not something the model explains).
    pub fn explain(&self, measured: std::time::Duration, tolerance: f64) -> Option<String> {
        let s = |d: std::time::Duration| format!("{:.1} s", d.as_secs_f64());
        let bound = self.bound().as_secs_f64();
        let m = measured.as_secs_f64();
        if (m - bound).abs() <= bound * tolerance || measured < self.earliest() || m > bound {
            return None;
        }
        let latest = self.latest_without_timeout();
        let place = if measured <= latest {
            format!("{} lies in it", s(measured))
        } else {
            format!(
                "{} is {} after it: the time Prometheus, Alertmanager and the webhook take to evaluate, send and \
                 deliver, which the model does not count (slower under emulation)",
                s(measured),
                s(measured - latest)
            )
        };
        let (detect, why) = match self.detection {
            Detection::Scrape { interval } => (
                format!("{} to the next scrape + {} scrape timeout", s(interval), s(interval)),
                "A stopped node or cut link refuses its scrape at once (no timeout), and the scrape and evaluation \
                 phases are anywhere in their intervals",
            ),
            Detection::Pushed { interval, deadline } => (
                format!(
                    "{} to the edge's next scrape + {} scrape timeout + {} send deadline",
                    s(interval),
                    s(interval),
                    s(deadline)
                ),
                "A refused connection fails the edge's probe at once (no timeout), a sample may leave at once, and \
                 the scrape and evaluation phases are anywhere in their intervals",
            ),
            Detection::Silence { threshold, lag } => (
                format!("{} of silence", s(threshold)),
                if lag.is_zero() {
                    ""
                } else {
                    "The newest sample to arrive before the fault was scraped up to a scrape interval and a send deadline before it, and the evaluation phase is anywhere in its interval"
                },
            ),
        };
        Some(format!(
            "{:.0}% under the {} bound, which is the worst case: {detect} + {} to the next evaluation + {} `for` + \
             {} group_wait. {why}, so the expected window is {}–{}; {place}",
            (bound - m) / bound * 100.0,
            s(self.bound()),
            s(self.evaluation),
            s(self.hold),
            s(self.group_wait),
            s(self.earliest()),
            s(latest),
        ))
    }
}

/// The [`LatencyModel`] of one rule in this context's flavour.
pub fn latency_model(ctx: &Ctx<'_>, rule: &AlertRule) -> LatencyModel {
    let ms = std::time::Duration::from_millis;
    let eval = ctx.evaluation_interval().as_millis().max(1);
    let interval = ms(ctx.scrape_interval().as_millis());
    let deadline = ms(super::edgemetrics::send_deadline(ctx).as_millis());
    LatencyModel {
        detection: match rule.detect {
            Detect::Scrape => Detection::Scrape { interval },
            Detect::Pushed => Detection::Pushed { interval, deadline },
            Detect::Silence(t) => Detection::Silence { threshold: ms(t.as_millis()), lag: interval + deadline },
        },
        evaluation: ms(eval),
        hold: ms(rule.for_.as_millis().div_ceil(eval) * eval),
        group_wait: ms(super::alertmanager::group_wait(ctx, rule.severity).as_millis()),
        group_interval: ms(super::alertmanager::group_interval(ctx, rule.severity).as_millis()),
    }
}

/// Every alert's latency model ([`alert_model`]), by name.
pub fn alert_models(ctx: &Ctx<'_>) -> std::collections::BTreeMap<String, LatencyModel> {
    alert_names(ctx).into_iter().filter_map(|a| alert_model(ctx, &a).map(|m| (a, m))).collect()
}

/// The [`LatencyModel`] of the alert named `alert` (the slowest of the rules sharing the name).
pub fn alert_model(ctx: &Ctx<'_>, alert: &str) -> Option<LatencyModel> {
    catalog(ctx).iter().filter(|r| r.name == alert).map(|r| latency_model(ctx, r)).max_by_key(|m| m.bound())
}

/// The latency bound ([`LatencyModel::bound`]) of the alert named `alert`, or `None` when this
/// profile's catalog has no such alert.
pub fn alert_bound(ctx: &Ctx<'_>, alert: &str) -> Option<std::time::Duration> {
    alert_model(ctx, alert).map(|m| m.bound())
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

/// Expand the `{{ $labels.x }}` templates the catalog uses (the only template form it uses).
fn expand(template: &str, labels: &BTreeMap<String, String>) -> String {
    labels.iter().fold(template.to_string(), |out, (k, v)| out.replace(&format!("{{{{ $labels.{k} }}}}"), v))
}

fn test_file(ctx: &Ctx<'_>) -> TestFile {
    let mut tests = Vec::new();
    for rule in catalog(ctx) {
        // Evaluate well after `for` has elapsed (series run 1m apart, from t=0).
        let eval = Duration::from_secs(rule.for_.as_secs() + 5 * 60);
        let component = rule.component().map(|c| format!(" ({c})")).unwrap_or_default();
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
            let what = if case.fires() { "fires" } else { "silent" };
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
    let rules_name = RULES_FILE.rsplit('/').next().unwrap_or(RULES_FILE);
    TestFile { rule_files: vec![rules_name.into()], evaluation_interval: ctx.evaluation_interval().to_string(), tests }
}

/// Add the rules file, its promtool tests and (with kube-prometheus-stack) the `PrometheusRule`.
pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    let groups = rule_groups(ctx);
    files.add_yaml(RULES_FILE, &RulesFile { groups: groups.clone() })?;
    files.add_yaml(TESTS_FILE, &test_file(ctx))?;
    if ctx.kps() {
        let object = PrometheusRule {
            api_version: "monitoring.coreos.com/v1",
            kind: "PrometheusRule",
            metadata: ObjectMeta {
                name: Some("observability-rules".into()),
                namespace: Some(ctx.namespace().into()),
                // kube-prometheus-stack's Prometheus selects rules labelled with its release.
                labels: Some(labels(&[("release", RELEASE_KPS)])),
                ..Default::default()
            },
            spec: RulesFile { groups },
        };
        files.add_yaml(PROMETHEUS_RULE_FILE, &object)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::stack::{Arch, Stack};

    fn stack() -> Stack {
        crate::stack::load(&crate::paths::stack_file()).expect("stack.toml loads")
    }

    /// Every profile's catalog, with the profile's name.
    fn catalogs(stack: &Stack) -> Vec<(String, Vec<AlertRule>)> {
        stack
            .profiles
            .keys()
            .map(|p| (p.to_string(), catalog(&Ctx::new(stack, p.as_str(), Arch::Amd64).expect("profile"))))
            .collect()
    }

    #[test]
    fn every_rule_has_firing_and_silent_cases_and_a_runbook() {
        for (profile, rules) in catalogs(&stack()) {
            for r in rules {
                let who = format!("{profile}: {} {:?}", r.name, r.component());
                assert!(r.cases.iter().any(Case::fires), "{who}: no case where it fires");
                // Watchdog always fires: it is the one rule without a silent case.
                if r.name != ALERT_WATCHDOG {
                    assert!(r.cases.iter().any(|c| !c.fires()), "{who}: no case where it stays silent");
                }
                for text in [&r.expr, &r.summary, &r.description, &r.runbook] {
                    assert!(!text.trim().is_empty(), "{who}: empty expr, summary, description or runbook");
                }
            }
        }
    }

    #[test]
    fn rules_are_unique_per_name_and_component() {
        for (profile, rules) in catalogs(&stack()) {
            let mut seen = BTreeSet::new();
            for r in &rules {
                assert!(seen.insert((r.name, r.component())), "{profile}: {} {:?} twice", r.name, r.component());
            }
        }
    }

    #[test]
    fn only_watchdog_is_severity_none_and_every_profile_has_it() {
        for (profile, rules) in catalogs(&stack()) {
            assert!(rules.iter().any(|r| r.name == ALERT_WATCHDOG), "{profile}: no Watchdog");
            for r in &rules {
                assert_eq!(r.severity == Severity::None, r.name == ALERT_WATCHDOG, "{profile}: {}", r.name);
                assert!(!r.labels.contains_key("severity"), "{profile}: {} sets severity twice", r.name);
            }
        }
    }

    #[test]
    fn for_durations_fit_an_e2e_run() {
        for (profile, rules) in catalogs(&stack()) {
            for r in rules {
                assert!(r.for_duration() <= Duration::from_secs(600), "{profile}: {} waits {}", r.name, r.for_);
            }
        }
    }

    #[test]
    fn kubeedge_alerts_need_kube_prometheus_stack() {
        let stack = stack();
        for (profile, rules) in catalogs(&stack) {
            let p = stack.profile(&profile).expect("profile");
            let kps = p.has(Kind::PrometheusStack);
            for name in ["CloudEdgeTunnelDown", "CloudcoreDown", "EdgeComponentMemoryOverBudget"] {
                assert_eq!(rules.iter().any(|r| r.name == name), kps, "{profile}: {name}");
            }
            // Node states come from kube-state-metrics: kube-prometheus-stack's or a standalone one.
            let node_states = kps || p.has(Kind::KubeStateMetrics);
            assert_eq!(rules.iter().any(|r| r.name == "EdgeNodeNotReady"), node_states, "{profile}");
        }
    }

    #[test]
    fn latency_explanations_follow_the_model() {
        let ms = std::time::Duration::from_millis;
        let m = LatencyModel {
            detection: Detection::Scrape { interval: ms(2000) },
            evaluation: ms(2000),
            hold: ms(6000),
            group_wait: ms(2000),
            group_interval: ms(5000),
        };
        assert_eq!((m.bound(), m.earliest(), m.latest_without_timeout()), (ms(14000), ms(8000), ms(12000)));
        // Resolved: the next good scrape, an evaluation, the group's next flush.
        assert_eq!(m.resolve_bound(), ms(9000));
        // Within 10% of the bound, sooner than possible, or over it: nothing the model explains.
        for measured in [13_000, 14_000, 7_900, 15_500] {
            assert_eq!(m.explain(ms(measured), 0.1), None, "{measured} ms");
        }
        let inside = m.explain(ms(11_600), 0.1).unwrap();
        assert!(inside.starts_with("17% under the 14.0 s bound"), "{inside}");
        assert!(inside.ends_with("the expected window is 8.0 s–12.0 s; 11.6 s lies in it"), "{inside}");
        let after = m.explain(ms(12_500), 0.1).unwrap();
        assert!(after.contains("12.5 s is 0.5 s after it: the time Prometheus, Alertmanager"), "{after}");
        // Silence of pushed data: 8 s threshold; the newest sample to arrive was scraped up to
        // 2 s + a 2 s send deadline before the fault.
        let m = LatencyModel { detection: Detection::Silence { threshold: ms(8000), lag: ms(4000) }, ..m };
        assert_eq!((m.bound(), m.earliest(), m.latest_without_timeout()), (ms(18000), ms(12000), ms(18000)));
        let inside = m.explain(ms(13_700), 0.1).unwrap();
        assert!(inside.contains("8.0 s of silence + 2.0 s to the next evaluation"), "{inside}");
        assert!(inside.ends_with("the expected window is 12.0 s–18.0 s; 13.7 s lies in it"), "{inside}");
    }

    #[test]
    fn every_budgeted_edge_component_has_both_budget_alerts() {
        let stack = stack();
        let ctx = Ctx::new(&stack, "upstream", Arch::Amd64).expect("upstream profile");
        let rules = catalog(&ctx);
        // The probe image is carried, not deployed: no container, no budget alert.
        let (probes, deployed): (Vec<_>, Vec<_>) =
            ctx.profile.edge_components().filter(|c| c.budget.is_some()).partition(|c| c.kind == Kind::Probe);
        assert!(!probes.is_empty() && !deployed.is_empty());
        for c in probes {
            assert!(rules.iter().all(|r| r.component() != Some(c.name.as_str())), "{} has a budget alert", c.name);
        }
        for c in deployed {
            for name in ["EdgeComponentMemoryOverBudget", "EdgeComponentCpuOverBudget"] {
                let r = rules.iter().find(|r| r.name == name && r.component() == Some(c.name.as_str()));
                let r = r.unwrap_or_else(|| panic!("{name} missing for {}", c.name));
                assert!(r.expr.contains(&format!("container=\"{}\"", c.name)), "{}", r.expr);
            }
        }
    }

    #[test]
    fn test_file_has_one_test_per_case_and_rule_groups_follow_the_catalog() {
        let stack = stack();
        let ctx = Ctx::new(&stack, "upstream", Arch::Amd64).expect("upstream profile");
        let cases: usize = catalog(&ctx).iter().map(|r| r.cases.len()).sum();
        assert_eq!(test_file(&ctx).tests.len(), cases);
        let group_alerts: Vec<String> = rule_groups(&ctx)[0].rules.iter().map(|r| r.alert.clone()).collect();
        let mut distinct = group_alerts.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct, alert_names(&ctx));
    }

    #[test]
    fn templates_expand() {
        let l = labels(&[("node", "edge-1"), ("job", "j")]);
        assert_eq!(expand("node {{ $labels.node }} of {{ $labels.job }}", &l), "node edge-1 of j");
    }
}
