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
//! Checks (`promql`, `alert`, `alertmanager`, `no_unexpected_alerts`, `log`, `trace`, `kept`,
//! `http`) are polled until they hold or the step's timeout passes ([`Check`]); faults
//! (`stop_node`, `cut_link`, `block`, `restart`, …) run once ([`Fault`]), and so does
//! `collect_logs` ([`Action::CollectLogs`]).
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
    /// Where its parts are in the file, for messages.
    #[serde(skip)]
    pub lines: Lines,
}

impl Scenario {
    /// The scenario file for reports: relative to the project root when it is under it.
    pub fn display_file(&self) -> String {
        crate::paths::shown(&self.file).to_string()
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

/// One item of a step's `try`, `catch` or `finally` (or of a scenario's `finally`): a check,
/// polled until it holds or the step's timeout passes, a fault, run once, or logs saved. The
/// file spells them alike (`- promql: …`, `- stop_node: edge-1`), and both are read (and written) as one
/// enum of every name, so the format and its messages are those of a single list.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(from = "RawAction", into = "RawAction")]
pub enum Action {
    Check(Check),
    Fault(Fault),
    /// Save these components' (or nodes') logs with the report.
    CollectLogs(Vec<String>),
}

/// A check: polled until it holds or the step's timeout passes.
#[derive(Debug, Clone)]
pub enum Check {
    /// A PromQL instant query whose result must match `expect`.
    Promql {
        query: String,
        expect: Expect,
        /// Evaluate at the mark of that earlier step (proves data survived since). The query may
        /// also say `${mark:<step>}`: that step's mark in unix seconds.
        at: Option<String>,
    },
    /// An alert the receiver got (after the mark of step `after`, if given) with these labels and state.
    Alert {
        name: String,
        labels: BTreeMap<String, String>,
        state: AlertState,
        after: Option<String>,
        /// Report the time from that step's mark to the alert against the alert's bound.
        latency_from: Option<String>,
    },
    /// An alert as Alertmanager holds it (its v2 API), whether or not it was delivered:
    /// `suppressed` proves an inhibition (or silence) holds it back, `active` that it is not;
    /// with `after`, Alertmanager must have been sent it again since that step's mark (its
    /// `updatedAt`), which proves a sender is alive without waiting for a notification to repeat.
    Alertmanager { name: String, labels: BTreeMap<String, String>, state: AmState, after: Option<String> },
    /// Every alert that began during this scenario (or, `over: run`, during the whole run), and
    /// every alert still firing, matches one of these label sets.
    NoUnexpectedAlerts { allowed: Vec<BTreeMap<String, String>>, over: Over },
    /// A log line containing `contains` in a stream with these labels (`node`, `namespace`,
    /// `pod`, `container`), asked of the topology's log store in its own language (LogQL for Loki,
    /// LogsQL for VictoriaLogs).
    Log { labels: BTreeMap<String, String>, contains: String },
    /// One trace with spans from all of these services (found by the first one).
    Trace { services: Vec<String> },
    /// Nothing `node`'s workload wrote between the marks of steps `from` and `to` (a cut and
    /// its heal) is lost: every log line (by its `seq=` number) is in the log store, or every
    /// span it handed its agent (by trace id) is in Jaeger. What was written is read on the
    /// node itself, outside every agent.
    Kept { node: String, signal: Signal, from: String, to: String },
    /// An HTTP GET to a component's port answered with `status` (default 200) and, if given, a
    /// body containing `contains`.
    Http { component: String, path: String, status: u16, contains: Option<String> },
}

/// A fault: run once; its step's mark is when it took effect.
#[derive(Debug, Clone)]
pub enum Fault {
    StopNode(String),
    StartNode(String),
    CutLink(String),
    HealLink(String),
    /// The node's connections to one cloud component refused (a firewall on the way), the rest
    /// of its link untouched; `heal_link` lifts it.
    Block {
        node: String,
        component: String,
    },
    /// Restart a cloud component's container (by component name).
    Restart(String),
    /// Restart an edge node's kubelet (on KubeEdge, edgecore): its pods keep running. Only a
    /// tier with kubelets has it, so a scenario using it requires `kubelet-tunnel`.
    RestartKubelet(String),
}

/// An [`Action`] as a scenario file spells it: checks and faults in one enum, so an unknown
/// name is refused with every expected one listed, and the format stays what it always was.
#[derive(Deserialize, Serialize)]
#[serde(rename = "Action", rename_all = "snake_case", deny_unknown_fields)]
enum RawAction {
    Promql {
        query: String,
        expect: Expect,
        #[serde(default)]
        at: Option<String>,
    },
    Alert {
        name: String,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        state: AlertState,
        #[serde(default)]
        after: Option<String>,
        #[serde(default)]
        latency_from: Option<String>,
    },
    Alertmanager {
        name: String,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        state: AmState,
        #[serde(default)]
        after: Option<String>,
    },
    NoUnexpectedAlerts {
        allowed: Vec<BTreeMap<String, String>>,
        #[serde(default)]
        over: Over,
    },
    Log {
        labels: BTreeMap<String, String>,
        contains: String,
    },
    Trace {
        services: Vec<String>,
    },
    Kept {
        node: String,
        signal: Signal,
        from: String,
        to: String,
    },
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
    Block {
        node: String,
        component: String,
    },
    Restart(String),
    RestartKubelet(String),
    CollectLogs(Vec<String>),
}

impl From<RawAction> for Action {
    fn from(a: RawAction) -> Action {
        match a {
            RawAction::Promql { query, expect, at } => Action::Check(Check::Promql { query, expect, at }),
            RawAction::Alert { name, labels, state, after, latency_from } => {
                Action::Check(Check::Alert { name, labels, state, after, latency_from })
            }
            RawAction::Alertmanager { name, labels, state, after } => {
                Action::Check(Check::Alertmanager { name, labels, state, after })
            }
            RawAction::NoUnexpectedAlerts { allowed, over } => {
                Action::Check(Check::NoUnexpectedAlerts { allowed, over })
            }
            RawAction::Log { labels, contains } => Action::Check(Check::Log { labels, contains }),
            RawAction::Trace { services } => Action::Check(Check::Trace { services }),
            RawAction::Kept { node, signal, from, to } => Action::Check(Check::Kept { node, signal, from, to }),
            RawAction::Http { component, path, status, contains } => {
                Action::Check(Check::Http { component, path, status, contains })
            }
            RawAction::StopNode(n) => Action::Fault(Fault::StopNode(n)),
            RawAction::StartNode(n) => Action::Fault(Fault::StartNode(n)),
            RawAction::CutLink(n) => Action::Fault(Fault::CutLink(n)),
            RawAction::HealLink(n) => Action::Fault(Fault::HealLink(n)),
            RawAction::Block { node, component } => Action::Fault(Fault::Block { node, component }),
            RawAction::Restart(c) => Action::Fault(Fault::Restart(c)),
            RawAction::RestartKubelet(n) => Action::Fault(Fault::RestartKubelet(n)),
            RawAction::CollectLogs(c) => Action::CollectLogs(c),
        }
    }
}

impl From<Action> for RawAction {
    fn from(a: Action) -> RawAction {
        match a {
            Action::Check(c) => match c {
                Check::Promql { query, expect, at } => RawAction::Promql { query, expect, at },
                Check::Alert { name, labels, state, after, latency_from } => {
                    RawAction::Alert { name, labels, state, after, latency_from }
                }
                Check::Alertmanager { name, labels, state, after } => {
                    RawAction::Alertmanager { name, labels, state, after }
                }
                Check::NoUnexpectedAlerts { allowed, over } => RawAction::NoUnexpectedAlerts { allowed, over },
                Check::Log { labels, contains } => RawAction::Log { labels, contains },
                Check::Trace { services } => RawAction::Trace { services },
                Check::Kept { node, signal, from, to } => RawAction::Kept { node, signal, from, to },
                Check::Http { component, path, status, contains } => {
                    RawAction::Http { component, path, status, contains }
                }
            },
            Action::Fault(f) => match f {
                Fault::StopNode(n) => RawAction::StopNode(n),
                Fault::StartNode(n) => RawAction::StartNode(n),
                Fault::CutLink(n) => RawAction::CutLink(n),
                Fault::HealLink(n) => RawAction::HealLink(n),
                Fault::Block { node, component } => RawAction::Block { node, component },
                Fault::Restart(c) => RawAction::Restart(c),
                Fault::RestartKubelet(n) => RawAction::RestartKubelet(n),
            },
            Action::CollectLogs(c) => RawAction::CollectLogs(c),
        }
    }
}

/// What a [`Check::Kept`] check counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Signal {
    Logs,
    Spans,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    Firing,
    Resolved,
}

/// The span of time a `no_unexpected_alerts` check looks back over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Over {
    /// Alerts that began since the scenario started: another scenario's faults are its own.
    #[default]
    Scenario,
    /// Alerts that began since the run started.
    Run,
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
    /// The node and component names it uses: [`NAME_RULE`] holds for them, as they become
    /// container and file names.
    pub fn path_names(&self) -> Vec<&str> {
        match self {
            Action::Fault(
                Fault::StopNode(n)
                | Fault::StartNode(n)
                | Fault::CutLink(n)
                | Fault::HealLink(n)
                | Fault::Restart(n)
                | Fault::RestartKubelet(n),
            ) => {
                vec![n.as_str()]
            }
            Action::Check(Check::Http { component, .. }) => vec![component.as_str()],
            Action::Fault(Fault::Block { node, component }) => vec![node.as_str(), component.as_str()],
            Action::CollectLogs(names) => names.iter().map(String::as_str).collect(),
            Action::Check(_) => Vec::new(),
        }
    }

    /// One line for reports: `promql up == 1`, `stop node edge-1`.
    pub fn describe(&self) -> String {
        match self {
            Action::Check(c) => c.describe(),
            Action::Fault(f) => f.describe(),
            Action::CollectLogs(c) => format!("collect logs of {}", c.join(", ")),
        }
    }
}

impl Check {
    /// One line for reports: `promql up == 1`.
    pub fn describe(&self) -> String {
        match self {
            Check::Promql { query, .. } => format!("promql {query}"),
            Check::Alert { name, labels, state, .. } => format!("alert {name}{} {state:?}", labels_text(labels)),
            Check::Alertmanager { name, labels, state, after } => format!(
                "alertmanager holds {name}{} {}{}",
                labels_text(labels),
                state.as_str(),
                after.as_ref().map_or(String::new(), |a| format!(", sent again after {a:?}"))
            ),
            Check::NoUnexpectedAlerts { over: Over::Scenario, .. } => "no unexpected alerts".into(),
            Check::NoUnexpectedAlerts { over: Over::Run, .. } => "no unexpected alerts during the run".into(),
            Check::Log { labels, contains } => format!("log {contains:?} in {}", labels_text(labels)),
            Check::Trace { services } => format!("trace across {}", services.join(", ")),
            Check::Kept { node, signal, from, to } => {
                let what = match signal {
                    Signal::Logs => "log line",
                    Signal::Spans => "span",
                };
                format!("every {what} of {node} from {from:?} to {to:?} kept")
            }
            Check::Http { component, path, status, .. } => format!("http {component}{path} {status}"),
        }
    }
}

impl Fault {
    /// One line for reports: `stop node edge-1`.
    pub fn describe(&self) -> String {
        match self {
            Fault::StopNode(n) => format!("stop node {n}"),
            Fault::StartNode(n) => format!("start node {n}"),
            Fault::CutLink(n) => format!("cut link {n}"),
            Fault::HealLink(n) => format!("heal link {n}"),
            Fault::Block { node, component } => format!("block {node} from {component}"),
            Fault::Restart(c) => format!("restart {c}"),
            Fault::RestartKubelet(n) => format!("restart the kubelet of {n}"),
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

/// The longest scenario file read: the shipped ones are a few KiB.
pub const MAX_FILE_BYTES: usize = 256 * 1024;

/// The deepest nesting of flow collections (`[`, `{`) a scenario may have. The shipped ones
/// nest 4 deep. serde_yaml_ng loads the whole event stream from libyaml before its recursion
/// limit applies, and libyaml's scanner is quadratic in flow depth (measured: 5k deep 0.1 s, 10k
/// 0.3 s, 20k 1 s; 100k took 37 s), so a deeper file is refused before it is parsed.
pub const MAX_DEPTH: usize = 32;

/// The rule for names that become file names (scenarios, and the components and nodes an
/// action names: `collect_logs` writes `logs/<scenario>-<container>.log`).
pub const NAME_RULE: &str = "lowercase letters, digits, '.', '_' and '-', starting with a letter or digit, \
     at most 63 characters, no \"..\"";

/// The longest step name: step names are free text (`cut edge-2`), shown in reports, never a path.
pub const MAX_STEP_NAME: usize = 128;

/// Whether `name` follows [`NAME_RULE`]: `[a-z0-9][a-z0-9._-]{0,62}` without `..`, so it is
/// always one safe path component (never `.`, `..`, empty, or with a separator).
pub fn is_safe_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        && name.len() <= 63
        && !name.contains("..")
}

/// `dir/name` when `name` is one safe file name ([`is_safe_name`] for its stem, an extension
/// allowed), else an error: the last guard before a name from a scenario becomes a path.
pub fn join_safe(dir: &Utf8Path, name: &str) -> Result<Utf8PathBuf> {
    let stem = name.strip_suffix(".log").unwrap_or(name);
    if !is_safe_name(stem) {
        bail!("{name:?} is not a safe file name ({NAME_RULE}): refusing to write it under {dir}");
    }
    Ok(dir.join(name))
}

/// The deepest flow-collection nesting of a YAML text, counting `[`/`{` outside quoted scalars
/// and comments. Cheap and conservative: a bracket in a plain scalar counts too.
fn flow_depth(text: &str) -> (usize, usize) {
    let (mut depth, mut max, mut max_line) = (0usize, 0usize, 1usize);
    for (n, line) in text.lines().enumerate() {
        let mut quote: Option<char> = None;
        let mut prev = ' ';
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match quote {
                Some('"') if c == '\\' => {
                    chars.next();
                }
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None => match c {
                    '#' if prev.is_whitespace() => break,
                    '\'' | '"' if matches!(prev, ' ' | '\t' | ':' | '-' | '[' | '{' | ',' | '?') => quote = Some(c),
                    '[' | '{' => {
                        depth += 1;
                        if depth > max {
                            (max, max_line) = (depth, n + 1);
                        }
                    }
                    ']' | '}' => depth = depth.saturating_sub(1),
                    _ => {}
                },
            }
            if quote.is_none() || c == '\'' || c == '"' {
                prev = c;
            }
        }
        // A single-quoted scalar may span lines; a double-quoted one too. Keep it simple: a
        // quote does not carry over a line (at worst a bracket is counted that is text).
    }
    (max, max_line)
}

/// Parse one scenario file; errors name the file, line and field.
pub fn parse(path: &Utf8Path, text: &str) -> Result<Scenario> {
    if text.len() > MAX_FILE_BYTES {
        bail!("{path}: {} bytes; a scenario file is at most {MAX_FILE_BYTES} bytes", text.len());
    }
    let (depth, line) = flow_depth(text);
    if depth > MAX_DEPTH {
        bail!("{path}:{line}: nested {depth} deep; a scenario nests at most {MAX_DEPTH} deep (`[` and `{{`)");
    }
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
    s.lines = Lines::new(text);
    let mut problems = Vec::new();
    if !is_safe_name(&s.name) {
        problems.push((s.lines.key("name"), format!("name: {:?} is not a valid scenario name: {NAME_RULE}", s.name)));
    }
    for (i, step) in s.steps.iter().enumerate() {
        let bad = step.name.trim().is_empty() || step.name.chars().any(char::is_control);
        if bad || step.name.len() > MAX_STEP_NAME {
            problems.push((
                s.lines.step(i),
                format!(
                    "steps[{i}].name: {:?}: a step name is one line of text, not empty, at most {MAX_STEP_NAME} bytes",
                    step.name
                ),
            ));
        }
    }
    s.each_action(|at, region, a| {
        for name in a.path_names() {
            if !is_safe_name(name) {
                problems.push((
                    s.lines.find(region.clone(), name),
                    format!("{at}: {name:?} is not a valid name: {NAME_RULE}"),
                ));
            }
        }
        if let Action::Check(Check::Promql { query, .. }) = a {
            if let Err(e) = check_promql(query) {
                let line = s.lines.find(region, query.lines().next().unwrap_or(query));
                problems.push((line, format!("{at}.query: not valid PromQL: {e}")));
            }
        }
    });
    if !problems.is_empty() {
        bail!("{}", s.problems(problems));
    }
    Ok(s)
}

/// A value a PromQL query names as `${…}`, which the runner puts in at the tier's pace, so one
/// scenario reads right at the compose tier's 2 s scrapes and at the install's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ref<'a> {
    /// `${mark:<step>}`: that earlier step's mark, in unix seconds.
    Mark(&'a str),
    /// `${seconds:<from>..<to>}`: the whole seconds from one earlier step's mark to another's
    /// (a range, as `[${seconds:cut..heal}s]`).
    Seconds(&'a str, &'a str),
    /// `${bound:<alert>}`: that alert's latency bound at the tier's pace, in seconds.
    Bound(&'a str),
    /// `${scrape_interval}`: the tier's scrape interval, in seconds.
    ScrapeInterval,
}

/// What a query may say in `${…}`, for the messages.
const REF_FORMS: &str = "${mark:<step>}, ${seconds:<from step>..<to step>}, ${bound:<alert>} or ${scrape_interval}";

/// The `${…}` a query names, each with its whole text; an unknown or unclosed one is an error.
pub fn refs(query: &str) -> std::result::Result<Vec<(&str, Ref<'_>)>, String> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(start) = rest.find("${") {
        let after = &rest[start..];
        let end = after.find('}').ok_or_else(|| format!("{:?} is not closed by }}", truncate(after)))?;
        let (whole, inner) = (&after[..=end], &after[2..end]);
        let r = match inner.split_once(':') {
            Some(("mark", step)) => Ref::Mark(step),
            Some(("bound", alert)) => Ref::Bound(alert),
            Some(("seconds", span)) => match span.split_once("..") {
                Some((from, to)) if !from.is_empty() && !to.is_empty() => Ref::Seconds(from, to),
                _ => return Err(format!("{whole:?}: give two steps, as ${{seconds:<from step>..<to step>}}")),
            },
            None if inner == "scrape_interval" => Ref::ScrapeInterval,
            _ => return Err(format!("{whole:?} is not something a query may name: it may say {REF_FORMS}")),
        };
        out.push((whole, r));
        rest = &after[end + 1..];
    }
    Ok(out)
}

/// At most 40 characters of `s`, for a message.
fn truncate(s: &str) -> &str {
    s.char_indices().nth(40).map_or(s, |(i, _)| &s[..i])
}

/// Parse a PromQL query as Prometheus will, with each `${…}` replaced by a representative number
/// (a unix time for a mark, a few seconds for the rest), as the runner replaces it.
pub fn check_promql(query: &str) -> std::result::Result<(), String> {
    let mut q = query.to_string();
    for (whole, r) in refs(query)? {
        let value = match r {
            Ref::Mark(_) => "1700000000.000",
            Ref::Seconds(..) | Ref::Bound(_) | Ref::ScrapeInterval => "60",
        };
        q = q.replace(whole, value);
    }
    promql_parser::parser::parse(&q).map(|_| ()).map_err(|e| e.trim().replace('\n', "; "))
}

impl Scenario {
    /// Each action with its field path (`steps[1].try[0]`) and the lines it may be on.
    fn each_action(&self, mut f: impl FnMut(&str, std::ops::Range<usize>, &Action)) {
        for (i, step) in self.steps.iter().enumerate() {
            for (list, actions) in [("try", &step.try_), ("catch", &step.catch), ("finally", &step.finally)] {
                let region = self.lines.list_in_step(i, list);
                for (j, a) in actions.iter().enumerate() {
                    f(&format!("steps[{i}] ({}).{list}[{j}]", step.name), region.clone(), a);
                }
            }
        }
        for (j, a) in self.finally.iter().enumerate() {
            f(&format!("finally[{j}]"), self.lines.key_region("finally"), a);
        }
    }

    /// `file:line: problem` lines, in line order.
    fn problems(&self, mut problems: Vec<(usize, String)>) -> String {
        problems.sort_by_key(|(line, _)| *line);
        problems.iter().map(|(line, p)| format!("{}:{line}: {p}", self.file)).collect::<Vec<_>>().join("\n")
    }
}

/// Where the parts of a scenario file are, found by reading its text: serde_yaml_ng gives a
/// position only with an error. Exact for the block style the shipped scenarios use (a step per
/// `- ` item, one action per line); for flow style, a step's or key's line. Lines are 1-based.
#[derive(Debug, Clone, Default)]
pub struct Lines {
    text: Vec<String>,
    /// Top-level key → its line.
    keys: BTreeMap<String, usize>,
    /// The first line of each item of `steps:`.
    steps: Vec<usize>,
    /// The line after the last of `steps:`.
    steps_end: usize,
}

impl Lines {
    pub fn new(text: &str) -> Lines {
        let text: Vec<String> = text.lines().map(str::to_string).collect();
        let mut keys = BTreeMap::new();
        for (n, l) in text.iter().enumerate() {
            if let Some((key, _)) = l.split_once(':').filter(|(k, _)| !k.is_empty() && !k.starts_with([' ', '#', '-']))
            {
                keys.entry(key.trim().to_string()).or_insert(n + 1);
            }
        }
        let mut lines = Lines { text, keys, steps: Vec::new(), steps_end: 0 };
        let region = lines.key_region("steps");
        lines.steps_end = region.end;
        let mut indent = None;
        for n in region.clone().skip(1) {
            let l = &lines.text[n - 1];
            let trimmed = l.trim_start();
            if !(trimmed.starts_with("- ") || trimmed == "-") {
                continue;
            }
            let at = l.len() - trimmed.len();
            if *indent.get_or_insert(at) == at {
                lines.steps.push(n);
            }
        }
        lines
    }

    /// The line of a top-level key (1 when absent, e.g. a flow-style file).
    pub fn key(&self, key: &str) -> usize {
        self.keys.get(key).copied().unwrap_or(1)
    }

    /// From a top-level key's line to the next top-level key's (or the end).
    fn key_region(&self, key: &str) -> std::ops::Range<usize> {
        let start = self.key(key);
        let end = self.keys.values().copied().filter(|&l| l > start).min().unwrap_or(self.text.len() + 1);
        start..end
    }

    /// The first line of step `i` (the `steps:` line when not found).
    pub fn step(&self, i: usize) -> usize {
        self.steps.get(i).copied().unwrap_or_else(|| self.key("steps"))
    }

    fn step_region(&self, i: usize) -> std::ops::Range<usize> {
        let end = self.steps.get(i + 1).copied().unwrap_or(self.steps_end);
        self.step(i)..end.max(self.step(i) + 1)
    }

    /// Step `i`'s lines from its `list:` key (`try`, `catch`, `finally`) on.
    fn list_in_step(&self, i: usize, list: &str) -> std::ops::Range<usize> {
        let region = self.step_region(i);
        let key = format!("{list}:");
        let start = region
            .clone()
            .find(|&n| self.text[n - 1].trim_start().trim_start_matches("- ").starts_with(&key))
            .unwrap_or(region.start);
        start..region.end
    }

    /// The first line of `region` containing `needle`, else the region's first line.
    pub fn find(&self, region: std::ops::Range<usize>, needle: &str) -> usize {
        let start = region.start;
        region.filter(|&n| n >= 1 && n <= self.text.len()).find(|&n| self.text[n - 1].contains(needle)).unwrap_or(start)
    }
}

/// Check every name a scenario uses: nodes, components, alerts, and marks of earlier steps.
/// Each problem is `file:line: field: what is wrong`.
pub fn check(s: &Scenario, names: &Names<'_>) -> Result<()> {
    let mut problems: Vec<(usize, String)> = Vec::new();
    if s.steps.is_empty() {
        problems.push((s.lines.key("steps"), "steps: a scenario needs at least one step".to_string()));
    }
    // The steps before each action: the marks it may name (every step for the scenario's finally).
    let mut before: Vec<BTreeSet<&str>> = Vec::new();
    let mut earlier: BTreeSet<&str> = BTreeSet::new();
    for (i, step) in s.steps.iter().enumerate() {
        let at = format!("steps[{i}] ({})", step.name);
        before.push(earlier.clone());
        if step.try_.is_empty() {
            problems.push((s.lines.step(i), format!("{at}.try: a step needs at least one action")));
        }
        if step.name == "finally" {
            problems.push((
                s.lines.step(i),
                format!("{at}.name: `finally` is the name of the scenario's own cleanup; rename the step"),
            ));
        }
        if !earlier.insert(step.name.as_str()) {
            problems.push((s.lines.step(i), format!("{at}.name: two steps are named {:?}", step.name)));
        }
    }
    before.push(earlier);
    s.each_action(|at, region, a| {
        let step = at.strip_prefix("steps[").and_then(|r| r.split(']').next()).and_then(|i| i.parse::<usize>().ok());
        let earlier = &before[step.unwrap_or(before.len() - 1)];
        for (needle, p) in check_action(at, a, names, earlier) {
            problems.push((s.lines.find(region.clone(), &needle), p));
        }
    });
    let mut kubelet = None;
    s.each_action(|at, region, a| {
        if let Action::Fault(Fault::RestartKubelet(n)) = a {
            kubelet.get_or_insert((s.lines.find(region, n), at.to_string()));
        }
    });
    if let Some((line, at)) = kubelet.filter(|_| !s.requires.iter().any(|r| r == KUBELET_TUNNEL)) {
        problems.push((
            line,
            format!(
                "{at}: restart_kubelet needs a tier with kubelets: add {KUBELET_TUNNEL} to the scenario's requires"
            ),
        ));
    }
    if let Some(n) = s.edges.filter(|n| *n != names.nodes.len()) {
        problems.push((
            s.lines.key("edges"),
            format!(
                "edges: the scenario is written for {n} edge nodes and the run has {}: run with --edges {n}",
                names.nodes.len()
            ),
        ));
    }
    if !problems.is_empty() {
        bail!("{}", s.problems(problems));
    }
    Ok(())
}

/// The problems of one action's names, each with the text to find its line by; `earlier` holds
/// the steps before it (the marks it may name).
fn check_action(at: &str, a: &Action, names: &Names<'_>, earlier: &BTreeSet<&str>) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mark = |m: &Option<String>, field: &str, problems: &mut Vec<(String, String)>| {
        if let Some(m) = m.as_ref().filter(|m| !earlier.contains(m.as_str())) {
            problems.push((m.clone(), format!("{at}.{field}: {m:?} is not the name of an earlier step")));
        }
    };
    match a {
        Action::Check(Check::Alert { after, latency_from, .. }) => {
            mark(after, "after", &mut problems);
            mark(latency_from, "latency_from", &mut problems);
        }
        Action::Check(Check::Alertmanager { after, .. }) => mark(after, "after", &mut problems),
        Action::Check(Check::Promql { at: when, query, expect }) => {
            mark(when, "at", &mut problems);
            // A query whose `${…}` do not parse is refused as it loads ([`check_promql`]).
            for (_, r) in refs(query).unwrap_or_default() {
                match r {
                    Ref::Mark(m) => mark(&Some(m.to_string()), "query", &mut problems),
                    Ref::Seconds(from, to) => {
                        mark(&Some(from.to_string()), "query", &mut problems);
                        mark(&Some(to.to_string()), "query", &mut problems);
                    }
                    Ref::Bound(alert) if !names.alerts.contains(alert) => problems.push((
                        alert.to_string(),
                        format!("{at}.query: no alert rule named {alert:?} to take the bound of"),
                    )),
                    Ref::Bound(_) | Ref::ScrapeInterval => {}
                }
            }
            if *expect == Expect::default() {
                problems.push((
                    "expect".into(),
                    format!(
                        "{at}.expect: names nothing, so it holds for any result: give count, value or label_values"
                    ),
                ));
            }
        }
        Action::Check(Check::NoUnexpectedAlerts { allowed, .. }) if allowed.iter().any(BTreeMap::is_empty) => {
            problems.push((
                "allowed".into(),
                format!("{at}.allowed: an empty label set allows every alert: name at least alertname"),
            ));
        }
        Action::Check(Check::Log { labels, contains }) => {
            let known = |l: &String| super::query::LOG_LABELS.iter().any(|(n, _)| n == l);
            for l in labels.keys().filter(|l| !known(l)) {
                let names: Vec<&str> = super::query::LOG_LABELS.iter().map(|(n, _)| *n).collect();
                problems
                    .push((l.clone(), format!("{at}.labels: no label {l:?}; a log check names {}", names.join(", "))));
            }
            if labels.is_empty() {
                problems.push((
                    "labels".into(),
                    format!("{at}.labels: name the node, namespace, pod or container the line comes from"),
                ));
            }
            if contains.trim().is_empty() {
                problems.push(("contains".into(), format!("{at}.contains: give the text the line must contain")));
            }
        }
        Action::Check(Check::Kept { from, to, .. }) => {
            mark(&Some(from.clone()), "from", &mut problems);
            mark(&Some(to.clone()), "to", &mut problems);
        }
        Action::Check(Check::Trace { services }) if services.is_empty() => {
            problems.push(("services".into(), format!("{at}.services: name the services the trace must span")));
        }
        _ => {}
    }
    match a {
        Action::Fault(
            Fault::StopNode(n)
            | Fault::StartNode(n)
            | Fault::CutLink(n)
            | Fault::HealLink(n)
            | Fault::RestartKubelet(n)
            | Fault::Block { node: n, .. },
        )
        | Action::Check(Check::Kept { node: n, .. })
            if !names.nodes.contains(n) =>
        {
            problems
                .push((n.clone(), format!("{at}: no edge node {n:?}; the topology has {}", names.nodes.join(", "))));
        }
        Action::Fault(Fault::Restart(c)) | Action::Check(Check::Http { component: c, .. })
            if !names.components.contains(c) =>
        {
            problems.push((c.clone(), format!("{at}: no component {c:?} in this profile")));
        }
        Action::Fault(Fault::Block { component: c, .. }) if !names.cloud.contains(c) => {
            problems.push((c.clone(), format!("{at}: no cloud component {c:?} to block in this profile")));
        }
        Action::CollectLogs(cs) => {
            for c in cs.iter().filter(|c| !names.components.contains(*c) && !names.nodes.contains(c)) {
                problems.push((c.clone(), format!("{at}: no component or node {c:?}")));
            }
        }
        Action::Check(Check::Alert { name, .. } | Check::Alertmanager { name, .. }) if !names.alerts.contains(name) => {
            problems.push((
                name.clone(),
                format!(
                    "{at}: no alert rule named {name:?}; the rendered rules have {}",
                    names.alerts.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ))
        }
        _ => {}
    }
    problems
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
    // Names are unique across the folder: `--scenario`, reports and log files go by name.
    let mut seen: BTreeMap<String, (Utf8PathBuf, usize)> = BTreeMap::new();
    for f in files {
        let text = std::fs::read_to_string(&f).with_context(|| format!("reading {f}"))?;
        let s = parse(&f, &text)?;
        let line = s.lines.key("name");
        if let Some((first, first_line)) = seen.get(&s.name) {
            bail!("{f}:{line}: name: {:?} is also the name of {first}:{first_line}: scenario names are unique", s.name);
        }
        seen.insert(s.name.clone(), (f.clone(), line));
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

/// The first requirement the topology does not provide ([`super::compose::plan::Plan::provides`]), if
/// any: the scenario then does not run, and says so.
pub fn missing_requirement(s: &Scenario, provides: &BTreeSet<String>) -> Option<String> {
    s.requires.iter().find(|r| !provides.contains(*r)).cloned()
}

/// What a tier whose edge kubelets are reached through KubeEdge's tunnel port provides (no bundle
/// does: a cluster does): scenarios that scrape the edges' kubelets through it require it.
pub const KUBELET_TUNNEL: &str = "kubelet-tunnel";

/// What a tier running at the `[e2e]` timing provides (the compose tier): a scenario that needs
/// that timing itself (a cut outlasting its 1 m buffer window; the install's is hours) requires it.
/// Figures that only follow the pace are written as [`Ref`]s, and run on every tier.
pub const E2E_TIMING: &str = "e2e-timing";

/// Requirements no bundle built here can provide, and why: Grafana, Loki and Alloy are AGPL (or link
/// AGPL code) and are never built on our machines.
const AGPL: [(&str, &str); 3] = [("grafana", "Grafana"), ("loki", "Loki"), ("alloy", "Grafana Alloy")];

/// What a scenario that does not run says: the requirement missing from the bundle, and for the
/// AGPL components where they do run.
pub fn not_run_reason(missing: &str) -> String {
    if missing == KUBELET_TUNNEL {
        return format!(
            "{missing}: this tier has no kubelet behind KubeEdge's tunnel port (the kubernetes and k3s tiers have)"
        );
    }
    if missing == crate::stack::Kind::KubeStateMetrics.to_string() {
        return format!(
            "{missing}: it reports the nodes' status from a Kubernetes API server, which this tier has not (the kubernetes and k3s tiers have)"
        );
    }
    if missing == E2E_TIMING {
        return format!(
            "{missing}: its figures are written for the compose tier's [e2e] timing; this tier runs the install's own intervals"
        );
    }
    match AGPL.iter().find(|(r, _)| *r == missing) {
        Some((_, name)) => {
            format!("{missing} not in bundle: {name} is AGPL and is not built here; runs on GitHub Actions")
        }
        None => format!("{missing} not in bundle"),
    }
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
        assert!(matches!(s.steps[1].try_[0], Action::Check(Check::Alert { .. })));
        assert!(matches!(&s.steps[0].try_[0], Action::Fault(Fault::StopNode(n)) if n == "edge-1"));
        assert_eq!(s.steps[1].try_[0].describe(), "alert EdgeNodeUnreachable{node=\"edge-1\"} Firing");
    }

    /// Checks and faults are one list in the file, read and written as it spells them.
    #[test]
    fn actions_are_written_as_the_file_spells_them() {
        let s = check_text(GOOD).unwrap();
        let text = serde_yaml_ng::to_string(&s).unwrap();
        assert!(text.contains("- stop_node: edge-1\n"), "{text}");
        assert!(text.contains("- alert:\n") && text.contains("latency_from: stop\n"), "{text}");
        assert!(text.contains("- collect_logs:\n  ") && text.contains("- start_node: edge-1\n"), "{text}");
        let again = parse(Utf8Path::new("scenarios/x.yaml"), &text).unwrap();
        let described = |s: &Scenario| -> Vec<String> {
            s.steps
                .iter()
                .flat_map(|st| st.try_.iter().chain(&st.catch).chain(&st.finally))
                .map(Action::describe)
                .collect()
        };
        assert_eq!(described(&again), described(&s));
    }

    #[test]
    fn bad_scenarios_name_the_file_line_and_field() {
        check_err(
            &GOOD.replace("stop_node", "stop_nod"),
            "scenarios/x.yaml:7: steps[0].try[0].stop_nod: unknown variant `stop_nod`, expected one of `promql`",
        );
        check_err(&GOOD.replace("timeout: 45s", "timeout: 45"), "steps[1].timeout");
        check_err(&GOOD.replace("description: d\n", ""), "missing field `description`");
        // Errors of the name checks (after parsing) carry file and line too.
        let edge7 = format!("{GOOD}finally: [{{heal_link: edge-7}}]\n");
        let cases: [(String, &[&str]); 9] = [
            (
                GOOD.replace("{stop_node: edge-1}", "{stop_node: edge-9}"),
                &[
                    "no edge node \"edge-9\"; the topology has edge-1, edge-2",
                    "scenarios/x.yaml:7: steps[0] (stop).try[0]: no edge node \"edge-9\"",
                ],
            ),
            (
                GOOD.replace("latency_from: stop", "latency_from: later"),
                &[
                    "scenarios/x.yaml:11: steps[1] (fires).try[0].latency_from: \"later\" is not the name of an earlier step",
                ],
            ),
            (
                GOOD.replace(
                    "- promql: {query: 'up == 0'",
                    "- alertmanager: {name: Watchdog, state: active, after: fires}\n      - promql: {query: 'up == 0'",
                ),
                &["scenarios/x.yaml:12: steps[1] (fires).try[1].after: \"fires\" is not the name of an earlier step"],
            ),
            (
                GOOD.replace("name: EdgeNodeUnreachable", "name: EdgeDown"),
                &[
                    "no alert rule named \"EdgeDown\"",
                    "scenarios/x.yaml:11: steps[1] (fires).try[0]: no alert rule named",
                ],
            ),
            (
                GOOD.replace("collect_logs: [prometheus, edge-1]", "collect_logs: [grafana]"),
                &["scenarios/x.yaml:13: steps[1] (fires).catch[0]: no component or node \"grafana\""],
            ),
            (
                GOOD.replace("name: fires", "name: stop"),
                &["two steps are named \"stop\"", "scenarios/x.yaml:8: steps[1] (stop).name: two steps are named"],
            ),
            (
                GOOD.replace("name: fires", "name: finally"),
                &["steps[1] (finally).name: `finally` is the name of the scenario's own cleanup"],
            ),
            (edge7, &["scenarios/x.yaml:15: finally[0]: no edge node \"edge-7\""]),
            (
                GOOD.replace("{stop_node: edge-1}", "{log: {labels: {host: edge-1}, contains: ' '}}"),
                &[
                    "scenarios/x.yaml:7: steps[0] (stop).try[0].labels: no label \"host\"; a log check names node, namespace, pod, container",
                    "steps[0] (stop).try[0].contains: give the text the line must contain",
                ],
            ),
        ];
        for (text, expects) in &cases {
            for expect in *expects {
                check_err(text, expect);
            }
        }
    }

    #[test]
    fn names_that_become_paths_follow_the_rule() {
        for good in ["metrics", "link-probes", "a", "0", "v1.2_x", &"a".repeat(63)] {
            assert!(is_safe_name(good), "{good}");
        }
        for bad in ["", "..", ".", "../x", "a/b", "a..b", "-x", ".x", "Metrics", "a b", "x\n", &"a".repeat(64), "é"] {
            assert!(!is_safe_name(bad), "{bad:?}");
        }
        check_err(
            &GOOD.replace("name: alerts", "name: ../../../x"),
            "scenarios/x.yaml:2: name: \"../../../x\" is not a valid scenario name",
        );
        check_err(
            &GOOD.replace("collect_logs: [prometheus, edge-1]", "collect_logs: [prometheus, ../../etc]"),
            "scenarios/x.yaml:13: steps[1] (fires).catch[0]: \"../../etc\" is not a valid name",
        );
        // Step names are text, never paths: spaces stay valid, control characters do not.
        check_text(
            &GOOD
                .replace("name: stop\n", "name: cut edge-2\n")
                .replace("latency_from: stop", "latency_from: cut edge-2"),
        )
        .unwrap();
        check_err(
            &GOOD.replace("name: stop\n", "name: \"a\\tb\"\n"),
            "scenarios/x.yaml:6: steps[0].name: \"a\\tb\": a step name is one line",
        );
        // The writer refuses what is not one safe file name, whatever let it through.
        let dir = Utf8Path::new("/run/logs");
        assert_eq!(join_safe(dir, "alerts-prometheus.log").unwrap(), "/run/logs/alerts-prometheus.log");
        for bad in ["../x.log", "a/b.log", "..", "", ".log"] {
            assert!(join_safe(dir, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn promql_is_parsed_when_the_file_loads() {
        check_err(
            &GOOD.replace("'up == 0'", "'sum(up'"),
            "scenarios/x.yaml:12: steps[1] (fires).try[1].query: not valid PromQL:",
        );
        // Marks are numbers once substituted: a query using one parses.
        check_text(&GOOD.replace("'up == 0'", "'up > ${mark:stop} - 1'")).unwrap();
        assert!(check_promql("up{job=\"x\"} == 1 and on() up > ${mark:a b} - 1").is_ok());
        assert!(check_promql("rate(up[5m]").is_err());
    }

    /// A kubelet restart is for a tier with kubelets: the scenario must say so.
    #[test]
    fn a_kubelet_restart_requires_the_tunnel() {
        let text = GOOD.replace("try: [{stop_node: edge-1}]", "try: [{restart_kubelet: edge-1}]");
        check_err(&text, "scenarios/x.yaml:7: steps[0] (stop).try[0]: restart_kubelet needs a tier with kubelets");
        check_text(&text.replace("requires: [prometheus]", "requires: [prometheus, kubelet-tunnel]")).unwrap();
        check_err(&text.replace("restart_kubelet: edge-1", "restart_kubelet: edge-9"), "no edge node \"edge-9\"");
    }

    /// A query's figures at the tier's pace: each `${…}` is read, a range takes whole seconds,
    /// and what is not one of them is refused with the forms it may take.
    #[test]
    fn pace_references_parse_and_the_wrong_ones_are_refused() {
        let q = "count_over_time(up[${seconds:cut a..heal a}s] @ ${mark:heal a}) > ${seconds:cut a..heal a} / ${scrape_interval} - 1 and on() vector(${bound:X})";
        let r = refs(q).unwrap();
        let kinds: Vec<Ref<'_>> = r.iter().map(|(_, r)| *r).collect();
        assert_eq!(
            kinds,
            [
                Ref::Seconds("cut a", "heal a"),
                Ref::Mark("heal a"),
                Ref::Seconds("cut a", "heal a"),
                Ref::ScrapeInterval,
                Ref::Bound("X")
            ]
        );
        assert_eq!(r[0].0, "${seconds:cut a..heal a}");
        check_promql(q).unwrap();
        for (bad, says) in [
            ("up > ${scrape}", "is not something a query may name"),
            ("up > ${mark:a", "is not closed"),
            ("up[${seconds:a}s]", "give two steps"),
            ("up[${seconds:..b}s]", "give two steps"),
        ] {
            let e = check_promql(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        // As a file loads: a bound of no rule, a span from a later step.
        check_err(
            &GOOD.replace("'up == 0'", "'up > ${bound:Nope}'"),
            "steps[1] (fires).try[1].query: no alert rule named \"Nope\" to take the bound of",
        );
        check_err(
            &GOOD.replace("'up == 0'", "'up[${seconds:stop..later}s]'"),
            "\"later\" is not the name of an earlier step",
        );
    }

    /// The fixtures of items 8 and 12 (issue "Unfoolable evidence"): each is refused as it loads,
    /// naming the file and line.
    #[test]
    fn the_wrong_fixtures_are_refused_with_file_and_line() {
        let dir = crate::paths::fixtures_dir().join("scenarios");
        let err = |sub: &str| format!("{:#}", load_dir(&dir.join(sub), &[]).unwrap_err());
        let e = err("bad-names");
        assert!(e.contains("bad-names/escape.yaml:3: name: \"../../../x\" is not a valid scenario name"), "{e}");
        assert!(e.contains("escape.yaml:8: steps[0] (cut edge-2).try[0]: \"../edge-1\" is not a valid name"), "{e}");
        let e = err("duplicate");
        assert!(
            e.contains("duplicate/20-second.yaml:2: name: \"twice\" is also the name of ")
                && e.contains("duplicate/10-first.yaml:1"),
            "{e}"
        );
        let e = err("bad-promql");
        assert!(e.contains("bad-promql/promql.yaml:12: steps[1] (second).try[1].query: not valid PromQL: "), "{e}");
        assert_eq!(e.lines().count(), 1, "only the broken query: {e}");
    }

    /// A 100k-deep nest is refused at once (libyaml alone took 37 s to reach serde's limit).
    #[test]
    fn a_deep_nest_is_refused_fast() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();
        let n = 100_000;
        for (file, text) in [
            ("flow.yaml", format!("name: deep\ndescription: {}{}\n", "[".repeat(n), "]".repeat(n))),
            ("maps.yaml", format!("name: deep\nsteps: {}{}\n", "{".repeat(n), "}".repeat(n))),
        ] {
            let path = dir.join(file);
            std::fs::write(&path, &text).unwrap();
            let t = std::time::Instant::now();
            let e = format!("{:#}", load_dir(&dir, &[]).unwrap_err());
            let took = t.elapsed();
            std::fs::remove_file(&path).unwrap();
            assert!(e.contains(&format!("{path}:")) && e.contains("nested 100000 deep"), "{e}");
            assert!(took < std::time::Duration::from_millis(500), "{file}: {took:?}");
        }
        // Block nesting cannot be deep in a file of bounded size; compact sequences can.
        let path = dir.join("dashes.yaml");
        std::fs::write(&path, format!("{}x\n", "- ".repeat(n))).unwrap();
        let t = std::time::Instant::now();
        let e = format!("{:#}", load_dir(&dir, &[]).unwrap_err());
        assert!(e.contains(path.as_str()), "{e}");
        assert!(t.elapsed() < std::time::Duration::from_millis(500), "dashes: {:?}: {e}", t.elapsed());
    }

    #[test]
    fn the_readme_example_is_a_valid_scenario() {
        let readme = std::fs::read_to_string(crate::paths::readme()).unwrap();
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
