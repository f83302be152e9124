//! What the runner asks the log stores (Loki, VictoriaLogs) and Jaeger, and how it reads their
//! answers: pure functions from an answer to a [`Mismatch`] (or none), contract-tested against
//! recorded answers in `fixtures/e2e/api/` (see its README for where each comes from).
//!
//! A scenario's `log` check is neutral: labels (`node`, `namespace`, `pod`, `container`) and a
//! text. [`LogStore`] asks it in the store's own language: LogQL for Loki, LogsQL for
//! VictoriaLogs, whose stream fields are the agent's OpenTelemetry resource attributes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::runner::Mismatch;
use super::scenario::labels_text;

/// Lines shown in a mismatch, at most.
const SHOWN: usize = 5;

// ---- log stores ----

/// The labels a `log` check may name, and what each store calls them: Loki's labels (the Alloy
/// pipeline's) and VictoriaLogs' stream fields (the OpenTelemetry agent's resource attributes).
pub const LOG_LABELS: [(&str, &str); 4] = crate::render::otelagent::RESOURCE_ATTRIBUTES;

/// Where the topology keeps logs, and how it is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogStore {
    Loki,
    VictoriaLogs,
}

impl LogStore {
    /// The store a topology runs (by what its plan provides), if any.
    pub fn of(provides: &BTreeSet<String>) -> Option<LogStore> {
        if provides.contains(crate::render::names::RELEASE_LOKI) {
            Some(LogStore::Loki)
        } else if provides.contains(crate::render::otelagent::VICTORIA_LOGS_HOST) {
            Some(LogStore::VictoriaLogs)
        } else {
            None
        }
    }

    /// Its container alias.
    pub fn component(self) -> &'static str {
        match self {
            LogStore::Loki => crate::render::names::RELEASE_LOKI,
            LogStore::VictoriaLogs => crate::render::otelagent::VICTORIA_LOGS_HOST,
        }
    }

    /// The query API's path.
    pub fn path(self) -> &'static str {
        match self {
            LogStore::Loki => "/loki/api/v1/query_range",
            LogStore::VictoriaLogs => "/select/logsql/query",
        }
    }

    /// The store's name for a neutral label.
    fn field(self, label: &str) -> Result<&'static str> {
        let (neutral, otel) = LOG_LABELS
            .iter()
            .find(|(n, _)| *n == label)
            .with_context(|| format!("a log check has no label {label:?}; it names {}", neutral_labels()))?;
        Ok(match self {
            LogStore::Loki => neutral,
            LogStore::VictoriaLogs => otel,
        })
    }

    /// The query for lines containing `text` with these labels: a LogQL stream selector and line
    /// filter, or a LogsQL stream filter and phrase.
    pub fn query(self, labels: &BTreeMap<String, String>, text: &str) -> Result<String> {
        let mut matchers = Vec::new();
        for (k, v) in labels {
            matchers.push(format!("{}={}", self.field(k)?, quote(v)));
        }
        if matchers.is_empty() {
            bail!("a log check names at least one label ({})", neutral_labels());
        }
        let selector = matchers.join(", ");
        Ok(match self {
            LogStore::Loki => format!("{{{selector}}} |= {}", quote(text)),
            LogStore::VictoriaLogs => format!("{{{selector}}} {}", quote(text)),
        })
    }

    /// The query's parameters from `since` to now, newest first, at most `limit` lines.
    pub fn params(
        self,
        query: &str,
        since: SystemTime,
        now: SystemTime,
        limit: usize,
    ) -> Result<Vec<(&'static str, String)>> {
        match self {
            LogStore::Loki => loki_params(query, since, now, limit),
            LogStore::VictoriaLogs => {
                // Unix seconds; `end` is exclusive, so the second after now.
                let s = |t: SystemTime| -> Result<u64> { Ok(t.duration_since(SystemTime::UNIX_EPOCH)?.as_secs()) };
                Ok(vec![
                    ("query", query.to_string()),
                    ("start", s(since)?.to_string()),
                    ("end", (s(now)? + 1).to_string()),
                    ("limit", limit.to_string()),
                ])
            }
        }
    }

    /// The answer's streams, labelled with the neutral names.
    pub fn streams(self, body: &[u8]) -> Result<Vec<Stream>> {
        match self {
            LogStore::Loki => loki_streams(body),
            LogStore::VictoriaLogs => victoria_logs_streams(body),
        }
    }
}

fn neutral_labels() -> String {
    LOG_LABELS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
}

/// A double-quoted string as LogQL and LogsQL read one (Go's escapes for `\` and `"`).
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The rows of a LogsQL answer (`application/stream+json`: one JSON object per line, every value
/// a string), grouped by `_stream`, with their stream fields under the neutral names.
pub fn victoria_logs_streams(body: &[u8]) -> Result<Vec<Stream>> {
    let text = std::str::from_utf8(body).context("VictoriaLogs' answer is not UTF-8")?;
    let mut by_stream: BTreeMap<String, Stream> = BTreeMap::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let row: BTreeMap<String, String> = serde_json::from_str(line).with_context(|| {
            format!("line {} of VictoriaLogs' answer is not a LogsQL row (an error page?): {}", i + 1, truncate(line))
        })?;
        let stream = row.get("_stream").cloned().unwrap_or_default();
        let entry = by_stream.entry(stream).or_insert_with(|| {
            let labels = LOG_LABELS
                .iter()
                .filter_map(|(neutral, otel)| row.get(*otel).map(|v| (neutral.to_string(), v.clone())))
                .collect();
            (labels, Vec::new())
        });
        entry.1.push(row.get("_msg").cloned().unwrap_or_default());
    }
    Ok(by_stream.into_values().collect())
}

fn truncate(s: &str) -> String {
    s.chars().take(200).collect()
}

// ---- Loki ----

/// `GET /loki/api/v1/query_range` parameters: `query` from `since` to now, newest first.
/// Loki reads integer times as nanoseconds; without `start` it looks back only an hour.
pub fn loki_params(
    query: &str,
    since: SystemTime,
    now: SystemTime,
    limit: usize,
) -> Result<Vec<(&'static str, String)>> {
    let ns = |t: SystemTime| -> Result<String> { Ok(t.duration_since(SystemTime::UNIX_EPOCH)?.as_nanos().to_string()) };
    Ok(vec![
        ("query", query.to_string()),
        ("start", ns(since)?),
        ("end", ns(now)?),
        ("limit", limit.to_string()),
        ("direction", "backward".into()),
    ])
}

#[derive(Deserialize)]
struct LokiAnswer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    data: Option<LokiData>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LokiData {
    result_type: String,
    result: Vec<LokiStream>,
}

#[derive(Deserialize)]
struct LokiStream {
    stream: BTreeMap<String, String>,
    values: Vec<(String, String)>,
}

/// One log stream of an answer: its labels and its lines.
pub type Stream = (BTreeMap<String, String>, Vec<String>);

/// The streams of a query_range answer. A metric query or an error is refused.
pub fn loki_streams(body: &[u8]) -> Result<Vec<Stream>> {
    let a: LokiAnswer = serde_json::from_slice(body).context("Loki's answer is not a query_range result")?;
    if a.status != "success" {
        bail!("Loki refused the query: {}", a.error.unwrap_or_else(|| a.status.clone()));
    }
    let data = a.data.context("Loki's answer has no data")?;
    if data.result_type != "streams" {
        bail!("the LogQL query returned {} (a metric query?); a logql check needs a log query", data.result_type);
    }
    Ok(data.result.into_iter().map(|s| (s.stream, s.values.into_iter().map(|(_, line)| line).collect())).collect())
}

/// `None` when some stream carries every one of `labels` (others may be there too: Loki adds
/// `service_name` and `detected_level`) and has a line.
pub fn log_match(query: &str, labels: &BTreeMap<String, String>, streams: &[Stream]) -> Option<Mismatch> {
    let carries = |s: &BTreeMap<String, String>| labels.iter().all(|(k, v)| s.get(k) == Some(v));
    if streams.iter().any(|(s, lines)| carries(s) && !lines.is_empty()) {
        return None;
    }
    let actual = if streams.is_empty() {
        "no line matches the query".to_string()
    } else {
        let mut out: Vec<String> = streams
            .iter()
            .take(SHOWN)
            .map(|(s, lines)| format!("{} ({} lines)", labels_text(s), lines.len()))
            .collect();
        if streams.len() > SHOWN {
            out.push(format!("… and {} more streams", streams.len() - SHOWN));
        }
        out.join("\n")
    };
    Some(Mismatch { expected: format!("a line of {query} in a stream with {}", labels_text(labels)), actual })
}

// ---- kept across a cut ----

/// The `seq=` number of a workload log line.
pub fn seq_of(line: &str) -> Option<u64> {
    let rest = &line[line.find("seq=")? + 4..];
    rest[..rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len())].parse().ok()
}

/// The sequence numbers of the CRI log lines (`<RFC 3339 time> stdout F <line>`) written from
/// `from` to `to`, unix seconds, both included.
pub fn written_lines(text: &str, from: i64, to: i64) -> BTreeSet<u64> {
    text.lines()
        .filter_map(|l| {
            let t = l.split_whitespace().next()?.parse::<jiff::Timestamp>().ok()?.as_second();
            (from..=to).contains(&t).then(|| seq_of(l)).flatten()
        })
        .collect()
}

/// The trace ids of the span record (`<unix seconds> <trace id>`) from `from` to `to`.
pub fn written_spans(text: &str, from: i64, to: i64) -> BTreeSet<String> {
    text.lines()
        .filter_map(|l| {
            let (t, id) = l.trim().split_once(' ')?;
            (from..=to).contains(&t.parse().ok()?).then(|| id.to_string())
        })
        .collect()
}

/// `None` when every one of `written` was `found`. Nothing written is a mismatch: the check
/// would hold for a workload that stopped.
pub fn kept_match<T: Ord + std::fmt::Display>(
    what: &str,
    written: &BTreeSet<T>,
    found: &BTreeSet<T>,
) -> Option<Mismatch> {
    let missing: Vec<String> = written.difference(found).map(ToString::to_string).collect();
    if !written.is_empty() && missing.is_empty() {
        return None;
    }
    let expected = format!("every one of the {} {what} written in the window", written.len());
    let actual = if written.is_empty() {
        format!(
            "the node holds no {what} written in the window: the workload did not run, or what it wrote is gone (an evicted pod's log is removed)"
        )
    } else {
        let shown: Vec<&str> = missing.iter().take(20).map(String::as_str).collect();
        format!(
            "{} of {} missing: {}{}",
            missing.len(),
            written.len(),
            shown.join(", "),
            if missing.len() > shown.len() { ", …" } else { "" }
        )
    };
    Some(Mismatch { expected, actual })
}

// ---- Jaeger ----

/// `GET /api/traces` parameters (Jaeger's v1-compatible API, served by v2's `jaeger_query`):
/// traces of `service` from `since` to now. It reads `start`/`end` in microseconds and ignores
/// `lookback`.
pub fn jaeger_params(service: &str, since: SystemTime, now: SystemTime) -> Result<Vec<(&'static str, String)>> {
    let us =
        |t: SystemTime| -> Result<String> { Ok(t.duration_since(SystemTime::UNIX_EPOCH)?.as_micros().to_string()) };
    Ok(vec![("service", service.to_string()), ("start", us(since)?), ("end", us(now)?), ("limit", "50".into())])
}

#[derive(Deserialize)]
struct JaegerAnswer {
    #[serde(default)]
    data: Option<Vec<JaegerTrace>>,
    #[serde(default)]
    errors: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JaegerTrace {
    #[serde(rename = "traceID")]
    trace_id: String,
    spans: Vec<JaegerSpan>,
    processes: BTreeMap<String, JaegerProcess>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JaegerSpan {
    #[serde(rename = "spanID")]
    span_id: String,
    #[serde(rename = "processID")]
    process_id: String,
    #[serde(default)]
    references: Vec<JaegerRef>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JaegerRef {
    ref_type: String,
    #[serde(rename = "spanID")]
    span_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JaegerProcess {
    service_name: String,
}

/// One trace as the check sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSummary {
    pub id: String,
    /// Services with a span in the trace.
    pub services: BTreeSet<String>,
    pub spans: usize,
    /// (child's service, parent's service) of each `CHILD_OF` reference inside the trace: a call
    /// whose context propagated from the parent's service to the child's.
    pub links: BTreeSet<(String, String)>,
}

/// The traces of an `/api/traces` answer.
pub fn jaeger_traces(body: &[u8]) -> Result<Vec<TraceSummary>> {
    let a: JaegerAnswer = serde_json::from_slice(body).context("Jaeger's answer is not an /api/traces result")?;
    if let Some(errors) = a.errors.filter(|e| !e.is_empty()) {
        bail!("Jaeger answered with errors: {}", serde_json::Value::Array(errors));
    }
    Ok(a.data
        .unwrap_or_default()
        .into_iter()
        .map(|t| {
            let service = |process: &str| t.processes.get(process).map(|p| p.service_name.clone());
            let span_service: BTreeMap<&str, String> =
                t.spans.iter().filter_map(|s| Some((s.span_id.as_str(), service(&s.process_id)?))).collect();
            let links = t
                .spans
                .iter()
                .flat_map(|s| s.references.iter().filter(|r| r.ref_type == "CHILD_OF").map(move |r| (s, r)))
                .filter_map(|(s, r)| Some((service(&s.process_id)?, span_service.get(r.span_id.as_str())?.clone())))
                .collect();
            TraceSummary {
                services: t.spans.iter().filter_map(|s| service(&s.process_id)).collect(),
                spans: t.spans.len(),
                links,
                id: t.trace_id,
            }
        })
        .collect())
}

/// `None` when one trace has spans of all `services` and each service after the first has a
/// span that is the child of a span of the first (the caller): the context crossed each call, so
/// these are not separate traces that share an id by chance.
pub fn trace_match(services: &[String], traces: &[TraceSummary]) -> Option<Mismatch> {
    let wanted: BTreeSet<String> = services.iter().cloned().collect();
    let caller = services.first().cloned().unwrap_or_default();
    let linked = |t: &TraceSummary| services.iter().skip(1).all(|s| t.links.contains(&(s.clone(), caller.clone())));
    if traces.iter().any(|t| wanted.is_subset(&t.services) && linked(t)) {
        return None;
    }
    let actual = if traces.is_empty() {
        format!("no trace of {caller} found")
    } else {
        let mut out: Vec<String> = traces
            .iter()
            .take(SHOWN)
            .map(|t| {
                let names: Vec<&str> = t.services.iter().map(String::as_str).collect();
                let links: Vec<String> = t.links.iter().map(|(c, p)| format!("{c} ← {p}")).collect();
                format!(
                    "trace {}: {} spans of {}; calls: {}",
                    t.id,
                    t.spans,
                    names.join(", "),
                    if links.is_empty() { "none".to_string() } else { links.join(", ") }
                )
            })
            .collect();
        if traces.len() > SHOWN {
            out.push(format!("… and {} more traces", traces.len() - SHOWN));
        }
        out.join("\n")
    };
    Some(Mismatch {
        expected: format!(
            "one trace with spans of {}, each after the first the child of a {caller} span",
            services.join(", ")
        ),
        actual,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let p = crate::paths::fixtures_dir().join("e2e/api").join(name);
        std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn loki_streams_match_on_a_subset_of_their_labels() {
        let streams = loki_streams(&fixture("loki-query-range.json")).unwrap();
        assert_eq!(streams.len(), 2);
        assert_eq!(streams[0].1.len(), 2);
        let q = r#"{node="edge-1"} |= "edge workload tick""#;
        assert!(log_match(q, &labels(&[("node", "edge-1")]), &streams).is_none());
        assert!(log_match(q, &labels(&[("node", "edge-2"), ("container", "workload")]), &streams).is_none());
        let m = log_match(q, &labels(&[("node", "edge-3")]), &streams).unwrap();
        assert_eq!(m.expected, r#"a line of {node="edge-1"} |= "edge workload tick" in a stream with {node="edge-3"}"#);
        assert!(m.actual.starts_with(r#"{cluster="kubeprepare", container="workload""#), "{}", m.actual);
        assert!(m.actual.contains("(2 lines)"), "{}", m.actual);

        let none = loki_streams(&fixture("loki-query-range-empty.json")).unwrap();
        assert_eq!(log_match(q, &labels(&[("node", "edge-1")]), &none).unwrap().actual, "no line matches the query");
    }

    #[test]
    fn each_store_is_asked_in_its_own_language() {
        let l =
            labels(&[("node", "edge-1"), ("namespace", "e2e"), ("pod", "workload-edge-1"), ("container", "workload")]);
        assert_eq!(
            LogStore::Loki.query(&l, "edge workload tick").unwrap(),
            r#"{container="workload", namespace="e2e", node="edge-1", pod="workload-edge-1"} |= "edge workload tick""#
        );
        assert_eq!(
            LogStore::VictoriaLogs.query(&l, "edge workload tick").unwrap(),
            r#"{k8s.container.name="workload", k8s.namespace.name="e2e", k8s.node.name="edge-1", k8s.pod.name="workload-edge-1"} "edge workload tick""#
        );
        // Quotes and backslashes in a text stay inside its string.
        assert_eq!(
            LogStore::VictoriaLogs.query(&labels(&[("node", "a")]), r#"say "hi" \ bye"#).unwrap(),
            r#"{k8s.node.name="a"} "say \"hi\" \\ bye""#
        );
        let err = LogStore::Loki.query(&labels(&[("host", "a")]), "x").unwrap_err();
        assert_eq!(err.to_string(), r#"a log check has no label "host"; it names node, namespace, pod, container"#);
        assert!(LogStore::Loki.query(&BTreeMap::new(), "x").is_err());
    }

    /// Recorded from VictoriaLogs v1.52.1 fed by the edge agent (both built here) tailing two
    /// pods' CRI logs, one agent per node: fixtures/e2e/api/README.md.
    #[test]
    fn victoria_logs_rows_become_streams_with_the_neutral_labels() {
        let streams = victoria_logs_streams(&fixture("victoria-logs-query.jsonl")).unwrap();
        assert_eq!(streams.len(), 2, "{streams:?}");
        for (i, (l, lines)) in streams.iter().enumerate() {
            let node = format!("edge-{}", i + 1);
            let pod = format!("workload-{node}");
            let want = labels(&[("node", &node), ("namespace", "e2e"), ("pod", &pod), ("container", "workload")]);
            assert_eq!(l, &want);
            assert_eq!(lines.len(), 3);
            assert!(
                lines.iter().all(|m| m.contains("edge workload tick") && m.contains(&format!("node={node}"))),
                "{lines:?}"
            );
        }
        let q = r#"{k8s.container.name="workload"} "edge workload tick""#;
        let want = labels(&[("node", "edge-2"), ("pod", "workload-edge-2")]);
        assert!(log_match(q, &want, &streams).is_none());
        let m = log_match(q, &labels(&[("node", "edge-2"), ("pod", "workload-edge-1")]), &streams).unwrap();
        assert!(m.actual.contains(r#"node="edge-1""#) && m.actual.contains("(3 lines)"), "{}", m.actual);

        let none = victoria_logs_streams(&fixture("victoria-logs-query-empty.jsonl")).unwrap();
        assert_eq!(log_match(q, &want, &none).unwrap().actual, "no line matches the query");
        let err = victoria_logs_streams(b"{\"_msg\":\"a\"}\n<html>").unwrap_err();
        assert!(format!("{err:#}").contains("line 2 of VictoriaLogs' answer is not a LogsQL row"), "{err:#}");
    }

    #[test]
    fn loki_errors_and_metric_results_are_refused_by_name() {
        let err =
            loki_streams(br#"{"status":"error","errorType":"bad_data","error":"parse error at line 1"}"#).unwrap_err();
        assert!(format!("{err:#}").contains("Loki refused the query: parse error at line 1"), "{err:#}");
        let metric = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(format!("{:#}", loki_streams(metric).unwrap_err()).contains("returned matrix"));
        assert!(loki_streams(b"<html>").is_err());
    }

    #[test]
    fn log_store_and_jaeger_times_are_in_their_units() {
        let since = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_796_120_748_123);
        let now = since + std::time::Duration::from_secs(60);
        let p = loki_params("{node=\"edge-1\"}", since, now, 100).unwrap();
        assert_eq!(p[1], ("start", "1796120748123000000".into()));
        assert_eq!(p[2], ("end", "1796120808123000000".into()));
        let p = LogStore::VictoriaLogs.params("x", since, now, 100).unwrap();
        assert_eq!((&p[1], &p[2]), (&("start", "1796120748".into()), &("end", "1796120809".into())));
        let p = jaeger_params("cloud-client", since, now).unwrap();
        assert_eq!(p[1], ("start", "1796120748123000".into()));
        assert_eq!(p[2], ("end", "1796120808123000".into()));
    }

    #[test]
    fn a_trace_must_span_every_service_with_a_propagated_call() {
        let traces = jaeger_traces(&fixture("jaeger-traces.json")).unwrap();
        assert_eq!(
            traces[0],
            TraceSummary {
                id: "0501715accf8df7e8e5bf6af10f0cad0".into(),
                services: ["cloud-client".to_string(), "edge-workload".into()].into(),
                spans: 2,
                links: [("edge-workload".to_string(), "cloud-client".to_string())].into(),
            }
        );
        let both = ["cloud-client".to_string(), "edge-workload".into()];
        assert!(trace_match(&both, &traces).is_none());
        // The second trace has the client alone: not enough by itself.
        let m = trace_match(&both, &traces[1..]).unwrap();
        assert_eq!(m.actual, "trace 788e673cd7416a7fd5dcfe8e645bd21a: 1 spans of cloud-client; calls: none");
        // Both services in one trace but no call between them: the context did not cross.
        let unlinked = TraceSummary { links: BTreeSet::new(), ..traces[0].clone() };
        assert!(trace_match(&both, &[unlinked]).is_some());
        // Linked the wrong way round (the caller named second): not the call that was asked for.
        let reversed = ["edge-workload".to_string(), "cloud-client".into()];
        assert!(trace_match(&reversed, &traces).is_some());

        let none = jaeger_traces(&fixture("jaeger-traces-empty.json")).unwrap();
        assert_eq!(trace_match(&both, &none).unwrap().actual, "no trace of cloud-client found");
        assert!(
            format!("{:#}", jaeger_traces(br#"{"data":null,"errors":[{"code":400,"msg":"bad"}]}"#).unwrap_err())
                .contains("errors")
        );
    }

    #[test]
    fn what_was_written_in_a_window_is_counted_and_every_gap_named() {
        let log = "2026-12-03T10:00:00.000000000Z stdout F level=info msg=\"edge workload tick\" node=edge-2 seq=7\n\
                   2026-12-03T10:00:01.000000000Z stdout F level=info msg=\"edge workload tick\" node=edge-2 seq=8\n\
                   2026-12-03T10:00:02.000000000Z stdout F level=info msg=\"edge workload tick\" node=edge-2 seq=9\n\
                   2026-12-03T10:00:03.000000000Z stdout F level=info msg=\"edge workload tick\" node=edge-2 seq=10\n";
        let t0: i64 = "2026-12-03T10:00:01Z".parse::<jiff::Timestamp>().unwrap().as_second();
        let written = written_lines(log, t0, t0 + 1);
        assert_eq!(written, BTreeSet::from([8, 9]));
        assert_eq!(seq_of("x seq=12 y"), Some(12));
        assert!(kept_match("log lines", &written, &BTreeSet::from([7, 8, 9, 10])).is_none());
        let m = kept_match("log lines", &written, &BTreeSet::from([8])).unwrap();
        assert_eq!(
            (m.expected.as_str(), m.actual.as_str()),
            ("every one of the 2 log lines written in the window", "1 of 2 missing: 9")
        );
        assert!(
            kept_match::<u64>("log lines", &BTreeSet::new(), &BTreeSet::new()).unwrap().actual.contains("did not run")
        );
        let spans = written_spans("100 aa\n101 bb\n103 cc\n", 101, 102);
        assert_eq!(spans, BTreeSet::from(["bb".to_string()]));
    }
}
