//! The HTTP receiver the harness owns: Alertmanager's webhook posts alerts to `/alerts`,
//! recorded with the moment each arrived; any other path's posts are kept as they came (the
//! workload test points OTLP/HTTP at `/v1/traces`).
//!
//! It listens on the cloud network's bridge address (the only address of the host the
//! containers can reach; nothing else can reach it), speaks just enough HTTP/1.1 for a
//! `POST` with `Content-Length` and answers 200, or 400 to an alert post that is not
//! Alertmanager's JSON. Dropping it stops the listener and every connection it serves.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// The path Alertmanager posts to.
pub const ALERTS_PATH: &str = "/alerts";

/// A request body larger than this is refused (Alertmanager's batches are far smaller).
const BODY_LIMIT: usize = 16 << 20;

/// One alert as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    /// `firing` or `resolved`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
    /// When the alert started and (once resolved) ended, as Alertmanager says: what ties an
    /// alert to a fault, where arrival does not (Alertmanager re-sends what still fires).
    pub starts_at: Option<std::time::SystemTime>,
    pub ends_at: Option<std::time::SystemTime>,
}

#[derive(Deserialize)]
struct Payload {
    alerts: Vec<Alert>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Alert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    starts_at: Option<String>,
    #[serde(default)]
    ends_at: Option<String>,
}

/// An RFC 3339 time; `None` for Alertmanager's "unset" (`0001-01-01T00:00:00Z`) or garbage.
pub(crate) fn time_of(t: &Option<String>) -> Option<std::time::SystemTime> {
    let ts: jiff::Timestamp = t.as_deref()?.parse().ok()?;
    let ns = u64::try_from(ts.as_nanosecond()).ok().filter(|ns| *ns > 0)?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns))
}

#[derive(Default)]
struct Log {
    alerts: Vec<Received>,
    /// Posts to other paths: (path, body).
    posts: Vec<(String, Vec<u8>)>,
}

/// A running receiver; its listener and connections end when it is dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Listen on `ip` (a free port).
    pub async fn start(ip: std::net::IpAddr) -> Result<Receiver> {
        let listener = TcpListener::bind((ip, 0)).await.with_context(|| format!("receiver: listening on {ip}"))?;
        let addr = listener.local_addr()?;
        let log = Arc::new(Mutex::new(Log::default()));
        let sink = log.clone();
        let task = tokio::spawn(async move {
            // Connections live in this set: aborting the accept task drops it, which aborts them.
            let mut connections = tokio::task::JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        // A malformed request is dropped; Alertmanager retries.
                        connections.spawn(serve(stream, sink.clone()));
                    }
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(Receiver { addr, log, task })
    }

    /// The URL Alertmanager posts to.
    pub fn url(&self) -> String {
        format!("http://{}{ALERTS_PATH}", self.addr)
    }

    /// The URL of another path on the receiver (e.g. `/v1/traces`).
    pub fn url_of(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Every alert received so far, in arrival order.
    pub fn alerts(&self) -> Vec<Received> {
        self.log.lock().map(|l| l.alerts.clone()).unwrap_or_default()
    }

    /// The bodies posted to `path` so far, in arrival order.
    pub fn posts(&self, path: &str) -> Vec<Vec<u8>> {
        self.log
            .lock()
            .map(|l| l.posts.iter().filter(|(p, _)| p == path).map(|(_, b)| b.clone()).collect())
            .unwrap_or_default()
    }
}

async fn serve(stream: tokio::net::TcpStream, log: Arc<Mutex<Log>>) -> Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        // `POST /alerts HTTP/1.1`
        let path = request_line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).await?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().context("Content-Length")?;
                }
            }
        }
        anyhow::ensure!(length <= BODY_LIMIT, "body too large");
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        let at = Instant::now();
        let status = if path == ALERTS_PATH {
            match serde_json::from_slice::<Payload>(&body) {
                Ok(p) => {
                    if let Ok(mut l) = log.lock() {
                        l.alerts.extend(p.alerts.into_iter().map(|x| Received {
                            at,
                            starts_at: time_of(&x.starts_at),
                            ends_at: time_of(&x.ends_at),
                            status: x.status,
                            labels: x.labels,
                        }));
                    }
                    "200 OK"
                }
                Err(_) => "400 Bad Request",
            }
        } else {
            if let Ok(mut l) = log.lock() {
                l.posts.push((path, body));
            }
            "200 OK"
        };
        reader.get_mut().write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_alerts_posted_as_alertmanager_does_and_other_posts_by_path() {
        let r = Receiver::start("127.0.0.1".parse().unwrap()).await.unwrap();
        let body = r#"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Watchdog"},"startsAt":"2026-12-01T10:00:00.5Z","endsAt":"0001-01-01T00:00:00Z"},{"status":"resolved","labels":{"alertname":"EdgeNodeUnreachable","node":"edge-1"}}]}"#;
        let client = reqwest::Client::new();
        let resp = client.post(r.url()).body(body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let bad = client.post(r.url()).body("not json").send().await.unwrap();
        assert_eq!(bad.status(), 400);
        let got: Vec<(String, String)> =
            r.alerts().into_iter().map(|a| (a.labels["alertname"].clone(), a.status)).collect();
        assert_eq!(got, [("Watchdog".into(), "firing".into()), ("EdgeNodeUnreachable".into(), "resolved".into())]);
        let first = &r.alerts()[0];
        let start = first.starts_at.unwrap().duration_since(std::time::UNIX_EPOCH).unwrap();
        assert_eq!(start.as_millis(), 1_796_119_200_500, "startsAt read (2026-12-01T10:00:00.5Z)");
        assert_eq!(first.ends_at, None, "Alertmanager's unset time is none");

        let span = client.post(r.url_of("/v1/traces")).body("{\"resourceSpans\":[]}").send().await.unwrap();
        assert_eq!(span.status(), 200);
        assert_eq!(r.posts("/v1/traces"), [b"{\"resourceSpans\":[]}".to_vec()]);
        assert!(r.posts(ALERTS_PATH).is_empty(), "alerts are parsed, not kept raw");
        assert_eq!(r.alerts().len(), 2);
    }
}
