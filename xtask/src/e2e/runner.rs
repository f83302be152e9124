//! Runs scenarios against a started topology, any [`Tier`]: polls checks to their deadline,
//! injects faults, records marks and alert latencies, and samples the edge components'
//! resource use and the links.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};
use camino::Utf8PathBuf;

use super::query;
use super::receiver::Receiver;
use super::report::{Latency, LinkSample, ResourceSeries, Sample, ScenarioResult, Status, StepResult};
use super::scenario::{Action, AlertState, Check, Expect, Fault, Over, Scenario, Signal, Step, labels_text};
use super::tier::{Measured, Tier};
use crate::render::rules::LatencyModel;

/// One alert of Alertmanager's `GET /api/v2/alerts`.
#[derive(serde::Deserialize)]
struct AmAlert {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    status: AmStatus,
    #[serde(default, rename = "updatedAt")]
    updated_at: Option<String>,
}

#[derive(serde::Deserialize)]
struct AmStatus {
    state: String,
}

/// How long a `catch` or `finally` action (and the scenario's `finally`) may take.
const CLEANUP_TIMEOUT_S: u64 = 30;

/// A check that does not hold (yet): what it wanted and what it saw.
#[derive(Debug, Clone)]
pub struct Mismatch {
    pub expected: String,
    pub actual: String,
}

/// What a run has done so far, shared with whoever waits on it, so a run that is stopped (a
/// signal) still reports every finished scenario, the steps the running one finished, and the
/// phases it went through.
#[derive(Debug, Default, Clone)]
pub struct Progress {
    pub phases: Vec<super::report::Phase>,
    /// Finished scenarios, in order.
    pub done: Vec<ScenarioResult>,
    /// The scenario running: its name and file, when it started, its finished steps, and the
    /// step running.
    pub running: Option<Running>,
}

#[derive(Debug, Clone)]
pub struct Running {
    pub name: String,
    pub file: String,
    pub started: Instant,
    pub steps: Vec<StepResult>,
    pub step: Option<String>,
}

/// A [`Progress`] several tasks update.
pub type SharedProgress = Arc<Mutex<Progress>>;

/// Update the shared progress (a poisoned lock is still updated: it only holds data).
pub fn update(progress: &SharedProgress, f: impl FnOnce(&mut Progress)) {
    let mut p = progress.lock().unwrap_or_else(|e| e.into_inner());
    f(&mut p);
}

pub struct Runner<'a, T: Tier> {
    pub tier: &'a T,
    pub receiver: Receiver,
    pub http: reqwest::Client,
    pub run_dir: Utf8PathBuf,
    /// Alert name → its latency model (at the tier's pace): bound, earliest, explanation.
    pub models: BTreeMap<String, LatencyModel>,
    /// The least a check waits, from when it starts, whatever its step's timeout (the tier's pace).
    pub min_wait: Duration,
    /// The edges' scrape interval at the tier's pace (what `${scrape_interval}` says).
    pub scrape_interval: Duration,
    pub latencies: Vec<Latency>,
    /// Step name → its mark (monotonic and wall clock), per scenario.
    marks: HashMap<String, (Instant, SystemTime)>,
    /// When the running scenario started.
    scenario_since: SystemTime,
    /// When the runner was made: the start of every log store and Jaeger query window.
    since: SystemTime,
    /// Where each scenario's and step's start and end are recorded as they happen.
    pub progress: SharedProgress,
    /// The zero of the resource and link samples.
    pub started: Instant,
    /// Per node, when its link was down or it was off (`[from, to]`, in the samples' seconds);
    /// one still open has no end yet.
    pub link_faults: BTreeMap<String, Vec<(f64, Option<f64>)>>,
}

impl<'a, T: Tier> Runner<'a, T> {
    pub fn new(
        tier: &'a T,
        receiver: Receiver,
        run_dir: Utf8PathBuf,
        models: BTreeMap<String, LatencyModel>,
    ) -> Result<Self> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        Ok(Runner {
            tier,
            receiver,
            http,
            run_dir,
            models,
            min_wait: Duration::ZERO,
            scrape_interval: Duration::ZERO,
            latencies: Vec::new(),
            marks: HashMap::new(),
            since: SystemTime::now(),
            scenario_since: SystemTime::now(),
            progress: SharedProgress::default(),
            started: Instant::now(),
            link_faults: BTreeMap::new(),
        })
    }

    /// Run one scenario to its result. Steps after a failed step do not run; the scenario's
    /// `finally` always runs (reported as a last step named `finally`), so a fault it undoes is
    /// undone whatever happened, and the next scenario starts from a healed topology.
    pub async fn scenario(&mut self, s: &Scenario) -> ScenarioResult {
        let started = Instant::now();
        self.marks.clear();
        self.scenario_since = SystemTime::now();
        update(&self.progress, |p| {
            p.running =
                Some(Running { name: s.name.clone(), file: s.display_file(), started, steps: Vec::new(), step: None })
        });
        let mut steps = Vec::new();
        let mut logs = Vec::new();
        let mut failed = false;
        for step in &s.steps {
            if failed {
                steps.push(StepResult {
                    name: step.name.clone(),
                    status: Status::NotRun { reason: "an earlier step failed".into() },
                    duration_s: 0.0,
                    message: None,
                    expected: None,
                    actual: None,
                });
                continue;
            }
            let result = self.step(s, step, &mut logs).await;
            failed |= result.status == Status::Failed;
            steps.push(result);
        }
        update(&self.progress, |p| {
            if let Some(r) = p.running.as_mut() {
                r.step = (!s.finally.is_empty()).then(|| "finally".to_string());
            }
        });
        if !s.finally.is_empty() {
            let cleanup = Step {
                name: "finally".into(),
                timeout: crate::stack::Duration::from_secs(CLEANUP_TIMEOUT_S),
                try_: s.finally.clone(),
                catch: Vec::new(),
                finally: Vec::new(),
            };
            let result = self.step(s, &cleanup, &mut logs).await;
            failed |= result.status == Status::Failed;
            steps.push(result);
        }
        for l in self.latencies.iter_mut().filter(|l| l.scenario.is_empty()) {
            l.scenario = s.name.clone();
        }
        let result = ScenarioResult {
            name: s.name.clone(),
            file: s.display_file(),
            status: if failed { Status::Failed } else { Status::Passed },
            duration_s: started.elapsed().as_secs_f64(),
            steps,
            logs,
        };
        update(&self.progress, |p| {
            p.running = None;
            p.done.push(result.clone());
        });
        result
    }

    /// Run one step: its `try` actions in order until one fails, then `catch` if one did, then
    /// `finally`. The step's mark (for `after`, `latency_from`, `at`) is the moment its `try`
    /// actions completed: when a fault took effect, or when a check last held.
    async fn step(&mut self, s: &Scenario, step: &Step, logs: &mut Vec<String>) -> StepResult {
        let t0 = Instant::now();
        update(&self.progress, |p| {
            if let Some(r) = p.running.as_mut() {
                r.step = Some(step.name.clone());
            }
        });
        let deadline = t0 + Duration::from(step.timeout);
        let mut result = StepResult {
            name: step.name.clone(),
            status: Status::Passed,
            duration_s: 0.0,
            message: None,
            expected: None,
            actual: None,
        };
        for action in &step.try_ {
            if let Err((message, mismatch)) = self.act(s, action, deadline, logs).await {
                result.status = Status::Failed;
                result.message = Some(format!("{}: {message}", action.describe()));
                if let Some(m) = mismatch {
                    result.expected = Some(m.expected);
                    result.actual = Some(m.actual);
                }
                break;
            }
        }
        self.marks.insert(step.name.clone(), (Instant::now(), SystemTime::now()));
        if result.status == Status::Failed {
            for action in &step.catch {
                let catch_deadline = Instant::now() + Duration::from_secs(CLEANUP_TIMEOUT_S);
                if let Err((m, _)) = self.act(s, action, catch_deadline, logs).await {
                    result.message = result.message.map(|msg| format!("{msg}; catch: {}: {m}", action.describe()));
                }
            }
        }
        for action in &step.finally {
            let finally_deadline = Instant::now() + Duration::from_secs(CLEANUP_TIMEOUT_S);
            if let Err((m, _)) = self.act(s, action, finally_deadline, logs).await {
                result.message = Some(format!(
                    "{}finally: {}: {m}",
                    result.message.map(|m| format!("{m}; ")).unwrap_or_default(),
                    action.describe()
                ));
                result.status = Status::Failed;
            }
        }
        result.duration_s = t0.elapsed().as_secs_f64();
        update(&self.progress, |p| {
            if let Some(r) = p.running.as_mut() {
                r.steps.push(result.clone());
                r.step = None;
            }
        });
        crate::note!(
            "  {} {} / {} ({:.1}s){}",
            if result.status == Status::Passed { "ok  " } else { "FAIL" },
            s.name,
            step.name,
            result.duration_s,
            result.message.as_ref().map(|m| format!(": {m}")).unwrap_or_default()
        );
        result
    }

    /// Run one action; checks are polled until they hold or `deadline`.
    async fn act(
        &mut self,
        s: &Scenario,
        action: &Action,
        deadline: Instant,
        logs: &mut Vec<String>,
    ) -> std::result::Result<(), (String, Option<Mismatch>)> {
        let plain = |e: anyhow::Error| (format!("{e:#}"), None);
        let check = match action {
            Action::Fault(fault) => return self.fault(fault).await.map_err(plain),
            Action::CollectLogs(names) => return self.collect_logs(s, names, logs).await.map_err(plain),
            Action::Check(check) => check,
        };
        // NoUnexpectedAlerts looks at the past: evaluate it once.
        let once = matches!(check, Check::NoUnexpectedAlerts { .. });
        let deadline = deadline.max(self.alert_deadline(check)).max(Instant::now() + self.min_wait);
        let mut last: Option<Mismatch> = None;
        let mut last_err: Option<String> = None;
        loop {
            match self.check(check).await {
                Ok(None) => return Ok(()),
                Ok(Some(m)) => last = Some(m),
                Err(e) => last_err = Some(format!("{e:#}")),
            }
            if once || Instant::now() >= deadline {
                let msg = match (&last, last_err) {
                    (Some(_), _) if once => "does not hold".to_string(),
                    (Some(_), _) => "did not hold before the step's timeout".to_string(),
                    (None, Some(e)) => format!("could not be checked before the step's timeout: {e}"),
                    (None, None) => "did not hold".to_string(),
                };
                return Err((msg, last));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// How long an alert check waits at least, from the step it follows: twice its alert's
    /// latency bound at the tier's pace ([`crate::render::rules::LatencyModel::bound`]), or for a
    /// resolution twice the longer of that and its own ([`crate::render::rules::LatencyModel::resolve_bound`]:
    /// Alertmanager sends it at the group's next flush, minutes on the install). A scenario's
    /// timeouts are written for the compose tier's `[e2e]` pace; the kubernetes tier runs the
    /// install's own, slower one.
    fn alert_deadline(&self, check: &Check) -> Instant {
        let now = Instant::now();
        let Check::Alert { name, after, latency_from, state, .. } = check else { return now };
        let Some(model) = self.models.get(name) else { return now };
        let from = self.mark(after).or_else(|| self.mark(latency_from)).map_or(now, |(t, _)| t);
        let bound = match state {
            AlertState::Firing => model.bound(),
            AlertState::Resolved => model.bound().max(model.resolve_bound()),
        };
        from + 2 * bound
    }

    fn mark(&self, name: &Option<String>) -> Option<(Instant, SystemTime)> {
        name.as_ref().and_then(|n| self.marks.get(n).copied())
    }

    /// `None` when the check holds.
    async fn check(&mut self, check: &Check) -> Result<Option<Mismatch>> {
        match check {
            Check::Promql { query, expect, at } => {
                let time = self.mark(at).map(|(_, wall)| wall);
                let query = self.with_refs(query)?;
                let series = self.promql(&query, time).await?;
                Ok(compare(expect, &series))
            }
            Check::Alert { name, labels, state, after, latency_from } => {
                // Measuring from a fault means the alert must come after it.
                let mark = self.mark(after).or_else(|| self.mark(latency_from));
                let after = mark.map(|(t, _)| t);
                // A latency is measured only on an alert the fault caused, which its own times say
                // (arrival does not: Alertmanager re-sends what still fires, keeping the first
                // `startsAt`): a firing one must have started, a resolved one ended, after the
                // fault (less a second for clock rounding). `after` alone is about arrival.
                let cause = self.mark(latency_from);
                let caused = |a: &super::receiver::Received| {
                    let Some((_, wall)) = cause else { return true };
                    let since = wall - Duration::from_secs(1);
                    match state {
                        AlertState::Firing => a.starts_at.is_none_or(|t| t >= since),
                        AlertState::Resolved => a.ends_at.is_none_or(|t| t >= since),
                    }
                };
                let state_text = match state {
                    AlertState::Firing => "firing",
                    AlertState::Resolved => "resolved",
                };
                let received = self.receiver.alerts();
                let matches = |a: &super::receiver::Received| {
                    a.labels.get("alertname") == Some(name) && labels.iter().all(|(k, v)| a.labels.get(k) == Some(v))
                };
                let found = received
                    .iter()
                    .find(|a| matches(a) && a.status == state_text && after.is_none_or(|t| a.at >= t) && caused(a));
                if let Some(a) = found {
                    if let Some((from, _)) = self.mark(latency_from) {
                        let measured = a.at.saturating_duration_since(from);
                        let model = self.models.get(name);
                        self.latencies.push(Latency {
                            scenario: String::new(),
                            alert: format!("{name}{}", labels_text(labels)),
                            bound_s: model.map_or(f64::NAN, |m| m.bound().as_secs_f64()),
                            earliest_s: model.map(|m| m.earliest().as_secs_f64()),
                            measured_s: Some(measured.as_secs_f64()),
                            explanation: model.and_then(|m| m.explain(measured, super::report::LATENCY_TOLERANCE)),
                        });
                    }
                    return Ok(None);
                }
                let seen: Vec<String> = received
                    .iter()
                    .filter(|a| matches(a))
                    .map(|a| format!("{} {}", labels_text(&a.labels), a.status))
                    .collect();
                Ok(Some(Mismatch {
                    expected: format!(
                        "alert {name}{} {state_text}{}",
                        labels_text(labels),
                        if after.is_some() { " (received after the marked step)" } else { "" }
                    ),
                    actual: if seen.is_empty() { format!("no {name} alert received") } else { seen.join("\n") },
                }))
            }
            Check::Alertmanager { name, labels, state, after } => {
                // Less a second: `updatedAt` and the mark come from different clocks' rounding.
                let since = self.mark(after).map(|(_, wall)| wall - Duration::from_secs(1));
                let held = self.alertmanager_alerts().await?;
                let matching: Vec<&AmAlert> = held
                    .iter()
                    .filter(|a| {
                        a.labels.get("alertname") == Some(name)
                            && labels.iter().all(|(k, v)| a.labels.get(k) == Some(v))
                    })
                    .collect();
                let updated = |a: &AmAlert| super::receiver::time_of(&a.updated_at);
                if matching.iter().any(|a| {
                    a.status.state == state.as_str() && since.is_none_or(|t| updated(a).is_some_and(|u| u >= t))
                }) {
                    return Ok(None);
                }
                let describe = |a: &AmAlert| {
                    let when = updated(a).map_or("never".to_string(), |u| {
                        jiff::Timestamp::try_from(u).map_or("?".to_string(), |t| t.to_string())
                    });
                    format!("{} {} (last sent {when})", labels_text(&a.labels), a.status.state)
                };
                Ok(Some(Mismatch {
                    expected: format!(
                        "Alertmanager holds {name}{} {}{}",
                        labels_text(labels),
                        state.as_str(),
                        if since.is_some() { ", sent again after the marked step" } else { "" }
                    ),
                    actual: if matching.is_empty() {
                        format!("Alertmanager holds no {name}{} alert", labels_text(labels))
                    } else {
                        matching.iter().map(|a| describe(a)).collect::<Vec<_>>().join("\n")
                    },
                }))
            }
            Check::NoUnexpectedAlerts { allowed, over } => {
                let from = match over {
                    Over::Scenario => self.scenario_since,
                    Over::Run => self.since,
                };
                let received = self.receiver.alerts();
                let unexpected: Vec<String> = firing_since(&received, from)
                    .into_iter()
                    .filter(|a| !allowed.iter().any(|m| m.iter().all(|(k, v)| a.labels.get(k) == Some(v))))
                    // When it began, in the run's seconds: a fault it follows, or the start.
                    .map(|a| {
                        let since = a.starts_at.and_then(|t| {
                            let run_start = SystemTime::now().checked_sub(self.started.elapsed())?;
                            t.duration_since(run_start).ok()
                        });
                        match since {
                            Some(d) => {
                                format!("{} since {:.1} s into the run", labels_text(&a.labels), d.as_secs_f64())
                            }
                            None => labels_text(&a.labels),
                        }
                    })
                    .collect::<std::collections::BTreeSet<_>>()
                    .into_iter()
                    .collect();
                Ok((!unexpected.is_empty()).then(|| Mismatch {
                    expected: format!(
                        "only these alerts fire: {}",
                        allowed.iter().map(labels_text).collect::<Vec<_>>().join(", ")
                    ),
                    actual: unexpected.join("\n"),
                }))
            }
            Check::Log { labels, contains } => {
                let store = self.log_store()?;
                let q = store.query(labels, contains)?;
                let base = self.tier.cloud_url(store.component()).await?;
                let params = store.params(&q, self.since, SystemTime::now(), 100)?;
                let body = self.get(&format!("{base}{}", store.path()), &params).await?;
                Ok(query::log_match(&q, labels, &store.streams(&body)?))
            }
            Check::Kept { node, signal, from, to } => {
                let at = |step: &str| -> Result<i64> {
                    let (_, wall) = self.marks.get(step).with_context(|| format!("no mark of step {step:?} yet"))?;
                    Ok(wall.duration_since(SystemTime::UNIX_EPOCH)?.as_secs() as i64)
                };
                // Whole seconds either side: what is written in the boundary seconds counts too.
                let (lo, hi) = (at(from)? - 1, at(to)? + 1);
                // What the workload wrote, read on the node: its pod log, or its span record.
                let text = self.tier.written(node, *signal).await?;
                match signal {
                    Signal::Logs => {
                        let written = query::written_lines(&text, lo, hi);
                        let store = self.log_store()?;
                        let labels: BTreeMap<String, String> =
                            [("node".to_string(), node.clone()), ("container".to_string(), "workload".to_string())]
                                .into();
                        let q = store.query(&labels, "seq=")?;
                        let base = self.tier.cloud_url(store.component()).await?;
                        // Every line since the run began: a line a second, well under the limit.
                        let params = store.params(&q, self.since, SystemTime::now(), 20_000)?;
                        let body = self.get(&format!("{base}{}", store.path()), &params).await?;
                        let found: std::collections::BTreeSet<u64> = store
                            .streams(&body)?
                            .iter()
                            .flat_map(|(_, lines)| lines.iter().filter_map(|l| query::seq_of(l)))
                            .collect();
                        Ok(query::kept_match("log lines", &written, &found))
                    }
                    Signal::Spans => {
                        let written = query::written_spans(&text, lo, hi);
                        let base = self.tier.cloud_url(crate::render::names::RELEASE_JAEGER).await?;
                        let mut found = std::collections::BTreeSet::new();
                        for id in &written {
                            let url = format!("{base}/api/traces/{id}");
                            let resp = self.http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
                            if resp.status().is_success() {
                                let traces = query::jaeger_traces(&resp.bytes().await?)?;
                                if traces.iter().any(|t| t.services.iter().any(|s| s == "edge-workload")) {
                                    found.insert(id.clone());
                                }
                            }
                        }
                        Ok(query::kept_match("spans", &written, &found))
                    }
                }
            }
            Check::Trace { services } => {
                let base = self.tier.cloud_url(crate::render::names::RELEASE_JAEGER).await?;
                let first = services.first().context("a trace check names at least one service")?;
                let params = query::jaeger_params(first, self.since, SystemTime::now())?;
                let body = self.get(&format!("{base}/api/traces"), &params).await?;
                Ok(query::trace_match(services, &query::jaeger_traces(&body)?))
            }
            Check::Http { component, path, status, contains } => {
                let url = format!("{}{path}", self.tier.cloud_url(component).await?);
                let resp = self.http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
                let got = resp.status().as_u16();
                let body = resp.text().await.unwrap_or_default();
                let holds = got == *status && contains.as_ref().is_none_or(|c| body.contains(c.as_str()));
                Ok((!holds).then(|| Mismatch {
                    expected: format!(
                        "GET {component}{path} answers {status}{}",
                        contains.as_ref().map(|c| format!(" with {c:?} in its body")).unwrap_or_default()
                    ),
                    actual: format!("{got}: {}", body.chars().take(300).collect::<String>()),
                }))
            }
        }
    }

    /// Every alert Alertmanager holds: its labels and state (`active`, `suppressed`, `unprocessed`).
    async fn alertmanager_alerts(&self) -> Result<Vec<AmAlert>> {
        let url = format!("{}/api/v2/alerts", self.tier.cloud_url("alertmanager").await?);
        let resp = self.http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        if !status.is_success() {
            bail!("Alertmanager answered {status} to GET {url}");
        }
        resp.json().await.with_context(|| format!("reading the answer of {url}"))
    }

    /// `query` with each `${…}` ([`super::scenario::Ref`]) replaced by its value at the tier's pace.
    fn with_refs(&self, query: &str) -> Result<String> {
        use super::scenario::Ref;
        let wall = |name: &str| -> Result<f64> {
            let (_, wall) = self.marks.get(name).with_context(|| format!("no mark of step {name:?} yet"))?;
            Ok(wall.duration_since(SystemTime::UNIX_EPOCH)?.as_secs_f64())
        };
        let mut out = query.to_string();
        for (whole, r) in super::scenario::refs(query).map_err(anyhow::Error::msg)? {
            let value = match r {
                Ref::Mark(name) => format!("{:.3}", wall(name)?),
                Ref::Seconds(from, to) => {
                    let seconds = (wall(to)? - wall(from)?).floor();
                    if seconds < 1.0 {
                        bail!("{whole}: step {to:?} is not a second or more after step {from:?}");
                    }
                    format!("{seconds:.0}")
                }
                Ref::Bound(alert) => {
                    let model =
                        self.models.get(alert).with_context(|| format!("{whole}: no latency model of {alert}"))?;
                    format!("{:.3}", model.bound().as_secs_f64())
                }
                Ref::ScrapeInterval => format!("{:.3}", self.scrape_interval.as_secs_f64()),
            };
            out = out.replace(whole, &value);
        }
        Ok(out)
    }

    /// GET `url` with query parameters; the body of a 2xx answer, else an error with the status.
    async fn get(&self, url: &str, params: &[(&str, String)]) -> Result<Vec<u8>> {
        let url = reqwest::Url::parse_with_params(url, params)?;
        let resp = self.http.get(url.clone()).send().await.with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let body = resp.bytes().await.with_context(|| format!("reading the answer of {url}"))?;
        if !status.is_success() {
            bail!(
                "GET {url} answered {status}: {}",
                String::from_utf8_lossy(&body).chars().take(300).collect::<String>()
            );
        }
        Ok(body.to_vec())
    }

    /// A PromQL instant query: each series' labels and value.
    async fn promql(&self, query: &str, at: Option<SystemTime>) -> Result<Vec<(BTreeMap<String, String>, f64)>> {
        let base = self.tier.cloud_url("prometheus").await?;
        let mut params = vec![("query", query.to_string())];
        if let Some(t) = at {
            params.push(("time", format!("{:.3}", t.duration_since(SystemTime::UNIX_EPOCH)?.as_secs_f64())));
        }
        let url = reqwest::Url::parse_with_params(&format!("{base}/api/v1/query"), &params)?;
        let resp = self.http.get(url.clone()).send().await.with_context(|| format!("GET {url}"))?;
        let status = resp.status();
        let body: serde_json::Value = resp.json().await.with_context(|| format!("reading the answer of {url}"))?;
        if !status.is_success() || body["status"] != "success" {
            bail!("Prometheus refused the query ({status}): {}", body["error"].as_str().unwrap_or("no error text"));
        }
        let data = &body["data"];
        let value = |v: &serde_json::Value| v[1].as_str().and_then(|s| s.parse::<f64>().ok()).unwrap_or(f64::NAN);
        Ok(match data["resultType"].as_str() {
            Some("vector") => data["result"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    let labels = r["metric"]
                        .as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect();
                    (labels, value(&r["value"]))
                })
                .collect(),
            Some("scalar") => vec![(BTreeMap::new(), value(&data["result"]))],
            other => bail!("unexpected result type {other:?}"),
        })
    }

    fn log_store(&self) -> Result<query::LogStore> {
        query::LogStore::of(self.tier.provides()).context("the topology runs no log store (loki or victoria-logs)")
    }

    /// A fault window on `node`'s link opens (`down`) or closes.
    fn link_fault(&mut self, node: &str, down: bool) {
        let t = self.started.elapsed().as_secs_f64();
        let windows = self.link_faults.entry(node.to_string()).or_default();
        match windows.last_mut() {
            Some((_, end @ None)) if !down => *end = Some(t),
            Some((_, None)) => {}
            _ if down => windows.push((t, None)),
            _ => {}
        }
    }

    /// The fault windows of every node, one still open closed at `end`.
    pub fn fault_windows(&self, end: f64) -> BTreeMap<String, Vec<[f64; 2]>> {
        self.link_faults
            .iter()
            .map(|(node, w)| (node.clone(), w.iter().map(|(from, to)| [*from, to.unwrap_or(end)]).collect()))
            .collect()
    }

    /// Inject a fault, keeping the node's fault window (the link report's) as it opens or closes.
    async fn fault(&mut self, fault: &Fault) -> Result<()> {
        match fault {
            Fault::StopNode(node) | Fault::CutLink(node) => self.link_fault(node, true),
            _ => {}
        }
        self.tier.inject(fault).await?;
        match fault {
            Fault::StartNode(node) | Fault::HealLink(node) => self.link_fault(node, false),
            _ => {}
        }
        Ok(())
    }

    /// Save the logs of these components (or nodes) as `logs/<scenario>-<name>.log`.
    async fn collect_logs(&self, s: &Scenario, names: &[String], logs: &mut Vec<String>) -> Result<()> {
        let dir = self.run_dir.join("logs");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {dir}"))?;
        for name in names {
            for (short, text) in self.tier.logs(name, 400).await? {
                let name = format!("{}-{short}.log", s.name);
                // The names were checked when the file loaded; this refuses anything else.
                let path = super::scenario::join_safe(&dir, &name)?;
                let file = format!("logs/{name}");
                crate::atomic::write(&path, text.as_bytes(), false)?;
                if !logs.contains(&file) {
                    logs.push(file);
                }
            }
        }
        Ok(())
    }
}

/// Compare a PromQL result with what is expected; `None` when it matches.
pub fn compare(expect: &Expect, series: &[(BTreeMap<String, String>, f64)]) -> Option<Mismatch> {
    let mut wanted = Vec::new();
    let mut ok = true;
    if let Some(n) = expect.count {
        wanted.push(format!("{n} series"));
        ok &= series.len() == n;
    }
    if let Some(v) = expect.value {
        // "Every value" of no series would hold vacuously: a value needs a series to have it.
        wanted.push(format!("every value {v} (at least one series)"));
        ok &= !series.is_empty() && series.iter().all(|(_, x)| *x == v);
    }
    for (label, values) in &expect.label_values {
        wanted.push(format!("{label} in {{{}}}", values.iter().cloned().collect::<Vec<_>>().join(", ")));
        let got: std::collections::BTreeSet<String> =
            series.iter().filter_map(|(l, _)| l.get(label).cloned()).collect();
        ok &= &got == values && series.iter().all(|(l, _)| l.contains_key(label));
    }
    if ok {
        return None;
    }
    let actual = if series.is_empty() {
        "0 series (empty result)".to_string()
    } else {
        let mut lines = vec![format!("{} series:", series.len())];
        lines.extend(series.iter().take(20).map(|(l, v)| format!("{} = {v}", labels_text(l))));
        if series.len() > 20 {
            lines.push(format!("… and {} more", series.len() - 20));
        }
        lines.join("\n")
    };
    Some(Mismatch { expected: wanted.join(", "), actual })
}

/// The alerts that fired since `from`: each firing notification of an alert that began then or
/// later (one without a start stamp counts), and each alert still firing now (its latest
/// notification says so), whenever it began: a fault an earlier scenario left unhealed counts.
fn firing_since(received: &[super::receiver::Received], from: SystemTime) -> Vec<&super::receiver::Received> {
    let mut latest: HashMap<&BTreeMap<String, String>, &super::receiver::Received> = HashMap::new();
    for a in received {
        if latest.get(&a.labels).is_none_or(|l| l.at <= a.at) {
            latest.insert(&a.labels, a);
        }
    }
    received
        .iter()
        .filter(|a| a.status == "firing")
        .filter(|a| {
            a.starts_at.is_none_or(|t| t >= from) || latest.get(&a.labels).is_some_and(|l| l.status == "firing")
        })
        .collect()
}

/// Sample every measured component's memory and CPU about once a second until `stop`; under
/// emulation, qemu's share of the memory too.
pub async fn sample<T: Tier>(
    tier: T,
    started: Instant,
    emulated: bool,
    out: Arc<Mutex<BTreeMap<String, Vec<Sample>>>>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let measured = tier.measured();
    let mut previous: HashMap<String, (Instant, u64)> = HashMap::new();
    loop {
        if *stop.borrow() {
            return;
        }
        let tick = Instant::now();
        // All at once: one reading takes the engine about a second, so one by one each
        // component would be read (and its CPU averaged) only every few seconds.
        let tier = &tier;
        let readings =
            futures_util::future::join_all(measured.iter().map(|m| async move { (m, tier.read(m, emulated).await) }))
                .await;
        for (m, reading) in readings {
            let Ok(Some(r)) = reading else {
                previous.remove(&m.container);
                continue;
            };
            // A reading no newer than the last one (a source that refreshes less often than we
            // ask) is not a sample.
            if previous.get(&m.container).is_some_and(|(t, _)| r.at <= *t) {
                continue;
            }
            let cpu = match previous.insert(m.container.clone(), (r.at, r.cpu_total_ns)) {
                Some((t, ns)) if r.cpu_total_ns >= ns => {
                    (r.cpu_total_ns - ns) as f64 / 1e6 / r.at.duration_since(t).as_secs_f64().max(1e-3)
                }
                // The first reading of a (re)started component has no rate yet.
                _ => continue,
            };
            if let Ok(mut map) = out.lock() {
                map.entry(m.container.clone()).or_default().push(Sample {
                    t_s: r.at.duration_since(started).as_secs_f64(),
                    memory_bytes: r.memory_bytes,
                    cpu_millicores: cpu,
                    qemu_bytes: r.qemu.map(|q| q.qemu_bytes),
                    guest_bytes: r.qemu.map(|q| q.guest_bytes),
                });
            }
        }
        if !next_tick(tick, Duration::from_secs(1), &stop).await {
            return;
        }
    }
}

/// Wait out what is left of `period` since `tick`: `false` once stopped, or once the run that
/// owns the sender is gone.
async fn next_tick(tick: Instant, period: Duration, stop: &tokio::sync::watch::Receiver<bool>) -> bool {
    let mut stop = stop.clone();
    tokio::select! {
        _ = tokio::time::sleep(period.saturating_sub(tick.elapsed())) => !*stop.borrow(),
        changed = stop.changed() => changed.is_ok() && !*stop.borrow(),
    }
}

/// Read every edge's link counters every 2 s until `stop`. A node that is off (or restarting)
/// is skipped.
pub async fn sample_links<T: Tier>(
    tier: T,
    nodes: Vec<String>,
    started: Instant,
    out: Arc<Mutex<BTreeMap<String, Vec<LinkSample>>>>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        if *stop.borrow() {
            return;
        }
        let tick = Instant::now();
        for node in &nodes {
            if let Ok((sent, received)) = tier.link_counters(node).await
                && let Ok(mut m) = out.lock()
            {
                m.entry(node.clone()).or_default().push(LinkSample {
                    t_s: started.elapsed().as_secs_f64(),
                    sent_bytes: sent,
                    received_bytes: received,
                });
            }
        }
        if !next_tick(tick, Duration::from_secs(2), &stop).await {
            return;
        }
    }
}

/// The sampled series as report entries, with each component's budget.
pub fn series(
    measured: &[Measured],
    profile: &crate::stack::Profile,
    samples: &BTreeMap<String, Vec<Sample>>,
    emulated: bool,
) -> Vec<ResourceSeries> {
    measured
        .iter()
        .map(|c| {
            let budget = profile.enabled().find(|x| x.name.as_str() == c.component).and_then(|x| x.budget.as_ref());
            ResourceSeries {
                component: c.component.clone(),
                node: c.node.clone(),
                container: c.container.clone(),
                budget_memory_bytes: budget.map(|b| b.memory.bytes()),
                budget_cpu_millicores: budget.map(|b| b.cpu.millis()),
                emulated,
                samples: samples.get(&c.container).cloned().unwrap_or_default(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_of_a_scope_are_those_begun_in_it_and_those_still_firing() {
        use super::super::receiver::Received;
        use std::collections::BTreeSet;
        let now = Instant::now();
        let from = SystemTime::now();
        let before = from - Duration::from_secs(60);
        let after = from + Duration::from_secs(5);
        let alert = |name: &str, status: &str, starts: SystemTime, at: u64| Received {
            at: now + Duration::from_secs(at),
            status: status.into(),
            labels: [("alertname".to_string(), name.to_string())].into(),
            starts_at: Some(starts),
            ends_at: None,
        };
        let received = vec![
            alert("EarlierAndResolved", "firing", before, 0),
            alert("EarlierAndResolved", "resolved", before, 1),
            alert("EarlierStillFiring", "firing", before, 0),
            alert("Begun", "firing", after, 2),
            alert("Begun", "resolved", after, 3),
        ];
        let names: BTreeSet<&str> =
            firing_since(&received, from).iter().map(|a| a.labels["alertname"].as_str()).collect();
        assert_eq!(names, BTreeSet::from(["EarlierStillFiring", "Begun"]));
    }

    fn series(text: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        text.lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| {
                let (labels, v) = l.trim().split_once(" = ").unwrap();
                let labels = labels
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').unwrap();
                        (k.to_string(), v.to_string())
                    })
                    .collect();
                (labels, v.parse().unwrap())
            })
            .collect()
    }

    fn expect(yaml: &str) -> Expect {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn promql_results_are_compared_on_count_value_and_label_values() {
        let two = series("job=edge,node=edge-1 = 1\njob=edge,node=edge-2 = 1");
        assert!(compare(&expect("{count: 2, value: 1, label_values: {node: [edge-1, edge-2]}}"), &two).is_none());
        let m = compare(&expect("{count: 3}"), &two).unwrap();
        assert_eq!(m.expected, "3 series");
        assert_eq!(m.actual, "2 series:\n{job=\"edge\", node=\"edge-1\"} = 1\n{job=\"edge\", node=\"edge-2\"} = 1");
        assert!(compare(&expect("{value: 0}"), &two).is_some());
        assert!(compare(&expect("{label_values: {node: [edge-1]}}"), &two).is_some());
        let m = compare(&expect("{count: 1}"), &[]).unwrap();
        assert_eq!(m.actual, "0 series (empty result)");
        assert!(compare(&expect("{count: 0}"), &[]).is_none());
    }
}
