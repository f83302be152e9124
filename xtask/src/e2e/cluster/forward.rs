//! How the harness reaches a cloud Service of the cluster without publishing a port: a listener
//! on 127.0.0.1 whose every connection is port-forwarded by the API server (kube-rs) to a ready
//! pod behind the Service, chosen again for each connection, so a restarted pod is found anew.
//! The scenarios' HTTP clients see a plain `http://127.0.0.1:<port>`.

use std::net::SocketAddr;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Pod, Service};
use kube::api::{Api, ListParams};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A listener on `addr` forwarding to a port of the pods behind a Service; stops when dropped.
pub struct Forward {
    pub addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Forward {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Whether a pod is Ready and not being deleted.
pub fn is_ready(p: &Pod) -> bool {
    p.metadata.deletion_timestamp.is_none()
        && p.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The name of a Running, Ready pod behind `service` in `namespace`.
pub async fn ready_pod(client: &kube::Client, namespace: &str, service: &str) -> Result<String> {
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let svc = services.get(service).await.with_context(|| format!("Service {namespace}/{service}"))?;
    let selector = svc.spec.and_then(|s| s.selector).unwrap_or_default();
    if selector.is_empty() {
        bail!("Service {namespace}/{service} selects no pods");
    }
    let labels: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = pods.list(&ListParams::default().labels(&labels.join(","))).await?;
    list.items
        .iter()
        .find(|p| is_ready(p))
        .and_then(|p| p.metadata.name.clone())
        .with_context(|| format!("no ready pod behind Service {namespace}/{service}"))
}

/// Listen on an ephemeral port of 127.0.0.1 and forward each connection to `port` of a ready pod
/// behind `service`.
pub async fn start(client: kube::Client, namespace: &str, service: &str, port: u16) -> Result<Forward> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.context("listening on 127.0.0.1 for a port-forward")?;
    let addr = listener.local_addr()?;
    let (namespace, service) = (namespace.to_string(), service.to_string());
    let task = tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let (client, namespace, service) = (client.clone(), namespace.clone(), service.clone());
            tokio::spawn(async move {
                // A failed forward closes the connection: the client sees it and retries.
                let Ok(pod) = ready_pod(&client, &namespace, &service).await else { return };
                let pods: Api<Pod> = Api::namespaced(client, &namespace);
                let Ok(mut forwarder) = pods.portforward(&pod, &[port]).await else { return };
                if let Some(mut upstream) = forwarder.take_stream(port) {
                    let _ = tokio::io::copy_bidirectional(&mut conn, &mut upstream).await;
                }
                forwarder.abort();
                let _ = forwarder.join().await;
            });
        }
    });
    Ok(Forward { addr, task })
}
