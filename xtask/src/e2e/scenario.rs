//! Declarative scenarios: `scenarios/*.yaml`.
//!
//! A scenario names the components it needs (`requires`); when the bundle lacks one,
//! the scenario is reported "not run: <component> not in bundle", never passed. Its
//! steps run in order. Each step has a `timeout`, a `try` list, and optional `catch`
//! (run when `try` failed; `collect_logs` belongs here) and `finally` (always run):
//!
//! ```yaml
//! name: alerts
//! description: an edge node going down raises EdgeNodeUnreachable within its bound
//! requires: [prometheus, alertmanager, node-exporter]
//! steps:
//!   - name: stop edge-1
//!     try:
//!       - stop_node: edge-1
//!   - name: node-down alert
//!     timeout: 60s
//!     try:
//!       - alert: { name: EdgeNodeUnreachable, labels: { node: edge-1 }, state: firing, latency_from: stop edge-1 }
//!     catch:
//!       - collect_logs: [prometheus, alertmanager]
//!     finally:
//!       - start_node: edge-1
//! ```
//!
//! A scenario's own `finally` runs after its steps whatever happened, like a step's, so a
//! fault is undone even when a check fails before the step that would undo it.
//!
//! Checks (`promql`, `alert`, `no_unexpected_alerts`, `logql`, `trace`) are polled until
//! they hold or the step's timeout passes; actions (`stop_node`, `cut_link`, …) run once.
//! A step's mark is the moment its `try` actions completed (a fault took effect, a check
//! held): `latency_from`, `after` and `at` name earlier steps.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::stack::Duration;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// What the scenario needs: component kinds (`blackbox-exporter`, `node-exporter`, `loki`,
    /// `alloy`, `jaeger`, …), `prometheus`, `alertmanager` and `grafana` (standalone or from
    /// kube-prometheus-stack), or `log-agent` for whichever agent is enabled.
    #[serde(default)]
    pub requires: Vec<String>,
    /// The number of edge nodes the scenario is written for (counts, node names); the run's
    /// `--edges` must match it.
    #[serde(default)]
    pub edges: Option<usize>,
    pub steps: Vec<Step>,
    /// Actions that always run once the steps are done, whatever happened (heal a cut link,
    /// start a stopped node), so the next scenario starts from an intact topology.
    #[serde(default, with = "serde_yaml_ng::with::singleton_map_recursive")]
    pub finally: Vec<Action>,
    #[serde(skip)]
    pub file: Utf8PathBuf,
}

impl Scenario {
    /// The scenario file for reports: relative to the project root when it is under it.
    pub fn display_file(&self) -> String {
        self.file.strip_prefix(crate::paths::root()).unwrap_or(&self.file).to_string()
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    pub name: String,
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    // Actions are one-key maps (`- stop_node: edge-1`), not YAML tags.
    #[serde(rename = "try", with = "serde_yaml_ng::with::singleton_map_recursive")]
    pub try_: Vec<Action>,
    #[serde(default, with = "serde_yaml_ng::with::singleton_map_recursive")]
    pub catch: Vec<Action>,
    #[serde(default, with = "serde_yaml_ng::with::singleton_map_recursive")]
    pub finally: Vec<Action>,
}

fn ok_status() -> u16 {
    200
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Action {
    /// A PromQL instant query whose result must match `expect`.
    Promql {
        query: String,
        expect: Expect,
        /// Evaluate at the mark of that earlier step (proves data survived since). The query may
        /// also say `${mark:<step>}`: that step's mark in unix seconds.
        #[serde(default)]
        at: Option<String>,
    },
    /// An alert the receiver got (after the mark of step `after`, if given) with these labels and state.
    Alert {
        name: String,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        state: AlertState,
        #[serde(default)]
        after: Option<String>,
        /// Report the time from that step's mark to the alert against the alert's bound.
        #[serde(default)]
        latency_from: Option<String>,
    },
    /// An alert as Alertmanager holds it (its v2 API), whether or not it was delivered:
    /// `suppressed` proves an inhibition (or silence) holds it back, `active` that it is not.
    Alertmanager {
        name: String,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        state: AmState,
    },
    /// Every firing alert received so far matches one of these label sets.
    NoUnexpectedAlerts {
        allowed: Vec<BTreeMap<String, String>>,
    },
    /// A LogQL query with at least one line carrying these labels.
    Logql {
        query: String,
        #[serde(default)]
        labels: BTreeMap<String, String>,
    },
    /// One trace with spans from all of these services (found by the first one).
    Trace {
        services: Vec<String>,
    },
    /// An HTTP GET to a component's port answered with `status` (default 200) and, if given, a
    /// body containing `contains`.
    Http {
        component: String,
        path: String,
        #[serde(default = "ok_status")]
        status: u16,
        #[serde(default)]
        contains: Option<String>,
    },
    StopNode(String),
    StartNode(String),
    CutLink(String),
    HealLink(String),
    /// Restart a cloud component's container (by component name).
    Restart(String),
    /// Save these components' logs with the report.
    CollectLogs(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Resolved,
}

/// An alert's state in Alertmanager.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AmState {
    /// Not inhibited or silenced: it is (or will be) notified.
    Active,
    /// Held back by an inhibition rule or a silence.
    Suppressed,
}

impl AmState {
    /// As Alertmanager's API spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            AmState::Active => "active",
            AmState::Suppressed => "suppressed",
        }
    }
}

/// What a PromQL result must be. Every given field must hold.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    /// The number of series.
    #[serde(default)]
    pub count: Option<usize>,
    /// Every series has this value.
    #[serde(default)]
    pub value: Option<f64>,
    /// These labels take exactly these values across the series (e.g. `node: [edge-1, edge-2]`).
    #[serde(default)]
    pub label_values: BTreeMap<String, BTreeSet<String>>,
}

impl Action {
    /// Whether it is a check, polled until it holds (else an action, run once).
    pub fn is_check(&self) -> bool {
        matches!(
            self,
            Action::Promql { .. }
                | Action::Alert { .. }
                | Action::Alertmanager { .. }
                | Action::NoUnexpectedAlerts { .. }
                | Action::Logql { .. }
                | Action::Trace { .. }
                | Action::Http { .. }
        )
    }

    /// One line for reports: `promql up == 1`, `stop_node edge-1`.
    pub fn describe(&self) -> String {
        match self {
            Action::Promql { query, .. } => format!("promql {query}"),
            Action::Alert { name, labels, state, .. } => format!("alert {name}{} {state:?}", labels_text(labels)),
            Action::Alertmanager { name, labels, state } => {
                format!("alertmanager holds {name}{} {}", labels_text(labels), state.as_str())
            }
            Action::NoUnexpectedAlerts { .. } => "no unexpected alerts".into(),
            Action::Logql { query, .. } => format!("logql {query}"),
            Action::Trace { services } => format!("trace across {}", services.join(", ")),
            Action::Http { component, path, status, .. } => format!("http {component}{path} {status}"),
            Action::StopNode(n) => format!("stop node {n}"),
            Action::StartNode(n) => format!("start node {n}"),
            Action::CutLink(n) => format!("cut link {n}"),
            Action::HealLink(n) => format!("heal link {n}"),
            Action::Restart(c) => format!("restart {c}"),
            Action::CollectLogs(c) => format!("collect logs of {}", c.join(", ")),
        }
    }
}

pub fn labels_text(labels: &BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{{{}}}", inner.join(", "))
}

/// What a scenario may name, to check it before anything starts.
pub struct Names<'a> {
    pub nodes: &'a [String],
    /// Every component and node (what `collect_logs` may name).
    pub components: &'a BTreeSet<String>,
    /// Cloud components (what `restart` and `http` may name).
    pub cloud: &'a BTreeSet<String>,
    pub alerts: &'a BTreeSet<String>,
}

/// Parse one scenario file; errors name the file, line and field.
pub fn parse(path: &Utf8Path, text: &str) -> Result<Scenario> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    let mut s: Scenario = serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let line = inner.location().map(|l| format!(":{}", l.line())).unwrap_or_default();
        let text = inner.to_string();
        // serde_yaml_ng names the field itself when it knows it.
        let text = match text.split_once(": ") {
            _ if field == "." => text.clone(),
            Some((head, rest)) if !head.contains(' ') && field.starts_with(head) => format!("{field}: {rest}"),
            _ => format!("{field}: {text}"),
        };
        anyhow::anyhow!("{path}{line}: {text}")
    })?;
    s.file = path.to_path_buf();
    Ok(s)
}

/// Check every name a scenario uses: nodes, components, alerts, and marks of earlier steps.
pub fn check(s: &Scenario, names: &Names<'_>) -> Result<()> {
    let mut problems = Vec::new();
    if s.steps.is_empty() {
        problems.push("steps: a scenario needs at least one step".to_string());
    }
    let mut earlier: BTreeSet<&str> = BTreeSet::new();
    for (i, step) in s.steps.iter().enumerate() {
        let at = format!("steps[{i}] ({})", step.name);
        if step.try_.is_empty() {
            problems.push(format!("{at}.try: a step needs at least one action"));
        }
        for (list, actions) in [("try", &step.try_), ("catch", &step.catch), ("finally", &step.finally)] {
            for (j, a) in actions.iter().enumerate() {
                check_action(&format!("{at}.{list}[{j}]"), a, names, &earlier, &mut problems);
            }
        }
        if step.name == "finally" {
            problems.push(format!("{at}.name: `finally` is the name of the scenario's own cleanup; rename the step"));
        }
        if !earlier.insert(step.name.as_str()) {
            problems.push(format!("{at}.name: two steps are named {:?}", step.name));
        }
    }
    for (j, a) in s.finally.iter().enumerate() {
        check_action(&format!("finally[{j}]"), a, names, &earlier, &mut problems);
    }
    if let Some(n) = s.edges.filter(|n| *n != names.nodes.len()) {
        problems.push(format!(
            "edges: the scenario is written for {n} edge nodes and the run has {}: run with --edges {n}",
            names.nodes.len()
        ));
    }
    if !problems.is_empty() {
        bail!("{}: {}", s.file, problems.join("\n  "));
    }
    Ok(())
}

/// The steps a query names as `${mark:<step>}`.
pub fn mark_refs(query: &str) -> Vec<&str> {
    query.split("${mark:").skip(1).filter_map(|rest| rest.split_once('}').map(|(name, _)| name)).collect()
}

/// The names one action uses; `earlier` holds the steps before it (the marks it may name).
fn check_action(at: &str, a: &Action, names: &Names<'_>, earlier: &BTreeSet<&str>, problems: &mut Vec<String>) {
    let mut mark = |m: &Option<String>, field: &str| {
        if let Some(m) = m.as_ref().filter(|m| !earlier.contains(m.as_str())) {
            problems.push(format!("{at}.{field}: {m:?} is not the name of an earlier step"));
        }
    };
    match a {
        Action::Alert { after, latency_from, .. } => {
            mark(after, "after");
            mark(latency_from, "latency_from");
        }
        Action::Promql { at: when, query, expect } => {
            mark(when, "at");
            for m in mark_refs(query) {
                mark(&Some(m.to_string()), "query");
            }
            if *expect == Expect::default() {
                problems.push(format!(
                    "{at}.expect: names nothing, so it holds for any result: give count, value or label_values"
                ));
            }
        }
        Action::NoUnexpectedAlerts { allowed } if allowed.iter().any(BTreeMap::is_empty) => {
            problems.push(format!("{at}.allowed: an empty label set allows every alert: name at least alertname"));
        }
        Action::Trace { services } if services.is_empty() => {
            problems.push(format!("{at}.services: name the services the trace must span"));
        }
        _ => {}
    }
    match a {
        Action::StopNode(n) | Action::StartNode(n) | Action::CutLink(n) | Action::HealLink(n)
            if !names.nodes.contains(n) =>
        {
            problems.push(format!("{at}: no edge node {n:?}; the topology has {}", names.nodes.join(", ")));
        }
        Action::Restart(c) | Action::Http { component: c, .. } if !names.components.contains(c) => {
            problems.push(format!("{at}: no component {c:?} in this profile"));
        }
        Action::CollectLogs(cs) => {
            for c in cs.iter().filter(|c| !names.components.contains(*c) && !names.nodes.contains(c)) {
                problems.push(format!("{at}: no component or node {c:?}"));
            }
        }
        Action::Alert { name, .. } | Action::Alertmanager { name, .. } if !names.alerts.contains(name) => problems
            .push(format!(
                "{at}: no alert rule named {name:?}; the rendered rules have {}",
                names.alerts.iter().cloned().collect::<Vec<_>>().join(", ")
            )),
        _ => {}
    }
}

/// Every `*.yaml` scenario of `dir`, sorted by file name, optionally only those named.
pub fn load_dir(dir: &Utf8Path, only: &[String]) -> Result<Vec<Scenario>> {
    let mut files: Vec<Utf8PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("listing scenarios in {dir}"))?
        .filter_map(|e| e.ok().and_then(|e| Utf8PathBuf::from_path_buf(e.path()).ok()))
        .filter(|p| matches!(p.extension(), Some("yaml" | "yml")))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).with_context(|| format!("reading {f}"))?;
        let s = parse(&f, &text)?;
        if only.is_empty() || only.contains(&s.name) {
            out.push(s);
        }
    }
    for name in only {
        if !out.iter().any(|s| &s.name == name) {
            bail!("no scenario named {name:?} in {dir} (the names are the `name:` fields)");
        }
    }
    Ok(out)
}

/// The first requirement the topology does not provide ([`super::plan::Plan::provides`]), if
/// any: the scenario then does not run, and says so.
pub fn missing_requirement(s: &Scenario, provides: &BTreeSet<String>) -> Option<String> {
    s.requires.iter().find(|r| !provides.contains(*r)).cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> (Vec<String>, BTreeSet<String>, BTreeSet<String>) {
        (
            vec!["edge-1".into(), "edge-2".into()],
            ["prometheus".to_string(), "alertmanager".into()].into(),
            ["Watchdog".to_string(), "EdgeNodeUnreachable".into()].into(),
        )
    }

    fn check_text(text: &str) -> Result<Scenario> {
        let s = parse(Utf8Path::new("scenarios/x.yaml"), text)?;
        let (nodes, components, alerts) = names();
        check(&s, &Names { nodes: &nodes, components: &components, cloud: &components, alerts: &alerts })?;
        Ok(s)
    }

    fn check_err(text: &str, expect: &str) {
        let err = format!("{:#}", check_text(text).unwrap_err());
        assert!(err.contains(expect), "error {err:?} does not contain {expect:?}");
    }

    const GOOD: &str = "
name: alerts
description: d
requires: [prometheus]
steps:
  - name: stop
    try: [{stop_node: edge-1}]
  - name: fires
    timeout: 45s
    try:
      - alert: {name: EdgeNodeUnreachable, labels: {node: edge-1}, state: firing, latency_from: stop}
      - promql: {query: 'up == 0', expect: {count: 1, label_values: {node: [edge-1]}}}
    catch: [{collect_logs: [prometheus, edge-1]}]
    finally: [{start_node: edge-1}]
";

    #[test]
    fn a_good_scenario_parses_with_its_defaults() {
        let s = check_text(GOOD).unwrap();
        assert_eq!(s.steps.len(), 2);
        assert_eq!(s.steps[0].timeout, Duration::from_secs(30));
        assert_eq!(s.steps[1].timeout, Duration::from_secs(45));
        assert!(s.steps[1].try_[0].is_check() && !s.steps[0].try_[0].is_check());
        assert_eq!(s.steps[1].try_[0].describe(), "alert EdgeNodeUnreachable{node=\"edge-1\"} Firing");
    }

    #[test]
    fn bad_scenarios_name_the_file_line_and_field() {
        check_err(
            &GOOD.replace("stop_node", "stop_nod"),
            "scenarios/x.yaml:7: steps[0].try[0].stop_nod: unknown variant `stop_nod`, expected one of `promql`",
        );
        check_err(&GOOD.replace("timeout: 45s", "timeout: 45"), "steps[1].timeout");
        check_err(&GOOD.replace("description: d\n", ""), "missing field `description`");
        check_err(
            &GOOD.replace("{stop_node: edge-1}", "{stop_node: edge-9}"),
            "no edge node \"edge-9\"; the topology has edge-1, edge-2",
        );
        check_err(
            &GOOD.replace("latency_from: stop", "latency_from: later"),
            "latency_from: \"later\" is not the name of an earlier step",
        );
        check_err(&GOOD.replace("name: EdgeNodeUnreachable", "name: EdgeDown"), "no alert rule named \"EdgeDown\"");
        check_err(
            &GOOD.replace("collect_logs: [prometheus, edge-1]", "collect_logs: [grafana]"),
            "no component or node \"grafana\"",
        );
        check_err(&GOOD.replace("name: fires", "name: stop"), "two steps are named \"stop\"");
        check_err(
            &GOOD.replace("name: fires", "name: finally"),
            "steps[1] (finally).name: `finally` is the name of the scenario's own cleanup",
        );
        check_err(&format!("{GOOD}finally: [{{heal_link: edge-7}}]\n"), "finally[0]: no edge node \"edge-7\"");
    }

    #[test]
    fn the_readme_example_is_a_valid_scenario() {
        let readme = std::fs::read_to_string(crate::paths::root().join("README.md")).unwrap();
        let section = readme.split("## Writing a scenario").nth(1).expect("README has a scenario section");
        let yaml = section.split("```yaml\n").nth(1).and_then(|b| b.split("```").next()).expect("a yaml block");
        let s = parse(Utf8Path::new("README.md"), yaml).unwrap();
        let (nodes, components, alerts) = names();
        check(&s, &Names { nodes: &nodes, components: &components, cloud: &components, alerts: &alerts }).unwrap();
        assert_eq!(s.finally.len(), 1);
    }

    #[test]
    fn the_shipped_scenarios_parse() {
        let dir = crate::paths::scenarios_dir();
        let all = load_dir(&dir, &[]).unwrap();
        assert!(all.len() >= 6, "{}", all.len());
        let err = format!("{:#}", load_dir(&dir, &["nope".into()]).unwrap_err());
        assert!(err.contains("no scenario named \"nope\""), "{err}");
    }
}
