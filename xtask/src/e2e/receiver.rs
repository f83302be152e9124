//! The alert webhook receiver the harness owns: Alertmanager posts to it, it records
//! every alert with the moment it arrived.
//!
//! It listens on the cloud network's bridge address (the only address of the host the
//! containers can reach; nothing else can reach it), speaks just enough HTTP/1.1 for
//! Alertmanager's webhook (`POST` with `Content-Length`, JSON body) and answers 200.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One alert as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub at: Instant,
    /// `firing` or `resolved`.
    pub status: String,
    pub labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Payload {
    alerts: Vec<Alert>,
}

#[derive(Deserialize)]
struct Alert {
    status: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// A running receiver; its task ends when it is dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    alerts: Arc<Mutex<Vec<Received>>>,
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
        let listener =
            TcpListener::bind((ip, 0)).await.with_context(|| format!("alert receiver: listening on {ip}"))?;
        let addr = listener.local_addr()?;
        let alerts = Arc::new(Mutex::new(Vec::new()));
        let sink = alerts.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { continue };
                let sink = sink.clone();
                tokio::spawn(async move {
                    // A malformed request is dropped; Alertmanager retries.
                    let _ = serve(stream, sink).await;
                });
            }
        });
        Ok(Receiver { addr, alerts, task })
    }

    /// The URL Alertmanager posts to.
    pub fn url(&self) -> String {
        format!("http://{}/alerts", self.addr)
    }

    /// Every alert received so far, in arrival order.
    pub fn alerts(&self) -> Vec<Received> {
        self.alerts.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

async fn serve(stream: tokio::net::TcpStream, sink: Arc<Mutex<Vec<Received>>>) -> Result<()> {
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
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
        anyhow::ensure!(length <= 16 << 20, "body too large");
        let mut body = vec![0; length];
        reader.read_exact(&mut body).await?;
        let at = Instant::now();
        let status = match serde_json::from_slice::<Payload>(&body) {
            Ok(p) => {
                if let Ok(mut a) = sink.lock() {
                    a.extend(p.alerts.into_iter().map(|x| Received { at, status: x.status, labels: x.labels }));
                }
                "200 OK"
            }
            Err(_) => "400 Bad Request",
        };
        reader.get_mut().write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\n\r\n").as_bytes()).await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_alerts_posted_as_alertmanager_does() {
        let r = Receiver::start("127.0.0.1".parse().unwrap()).await.unwrap();
        let body = r#"{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{"alertname":"Watchdog"}},{"status":"resolved","labels":{"alertname":"EdgeNodeUnreachable","node":"edge-1"}}]}"#;
        let client = reqwest::Client::new();
        let resp = client.post(r.url()).body(body).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        let bad = client.post(r.url()).body("not json").send().await.unwrap();
        assert_eq!(bad.status(), 400);
        let got: Vec<(String, String)> =
            r.alerts().into_iter().map(|a| (a.labels["alertname"].clone(), a.status)).collect();
        assert_eq!(got, [("Watchdog".into(), "firing".into()), ("EdgeNodeUnreachable".into(), "resolved".into())]);
    }
}
