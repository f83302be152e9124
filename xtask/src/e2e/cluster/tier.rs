//! The kubernetes tier as the scenarios reach it: a [`Cluster`] with the profile's own components
//! applied as the rendered Kubernetes objects ([`deployed`]), behind the [`Tier`] trait.
//!
//! Cloud components are reached through port-forwards ([`super::forward`]); an edge is its node
//! container: powered off and on with the engine, its link cut inside its own network namespace.
//! What this tier does not deploy yet is not provided, so the scenarios needing it report
//! "not run" with the reason ([`Kube::not_run_reason`]), never a pass.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use k8s_openapi::api::core::v1::{Event, Pod, Service};
use kube::api::{Api, ListParams, LogParams};

use super::{Cluster, container_name};
use crate::e2e::engine::Engine;
use crate::e2e::scenario::{Fault, KUBELET_TUNNEL, Signal};
use crate::e2e::tier::{Measured, Reading, Tier};
use crate::render::workloads;
use crate::stack::{Kind, Stack};

/// The rendered files the tier applies, in order: the namespace, the edges' DaemonSets, then the
/// profile's standalone components' objects (as the install applies them).
pub fn deployed(ctx: &crate::render::Ctx<'_>) -> Vec<&'static str> {
    let mut files = vec![crate::render::manifests::NAMESPACE_FILE];
    files.extend(edge_daemonsets(ctx).into_iter().map(|(.., file)| file));
    files.extend(workloads::standalone(ctx).into_iter().map(|(_, file)| file));
    files
}

/// The edge components deployed as DaemonSets on every edge (their kind, their component name,
/// which names their container too, and their file): what the tier measures against the edge budget.
pub fn edge_daemonsets(ctx: &crate::render::Ctx<'_>) -> Vec<(Kind, String, &'static str)> {
    use crate::render::{blackbox, edgemetrics, manifests, otelagent};
    let files = [
        (Kind::NodeExporter, manifests::EDGE_NODE_EXPORTER_FILE),
        (Kind::PrometheusAgent, edgemetrics::MANIFEST_FILE),
        (Kind::LinkProbe, blackbox::EDGE_LINK_PROBE_FILE),
        (Kind::OtelAgent, otelagent::MANIFEST_FILE),
    ];
    files
        .into_iter()
        .filter_map(|(kind, file)| {
            let c = ctx.component(kind).filter(|c| c.role == crate::stack::Role::Edge)?;
            Some((kind, c.name.to_string(), file))
        })
        .collect()
}

/// Deployed, but what their scenarios check needs more than this tier runs yet: not provided,
/// each with its reason.
fn pending(ctx: &crate::render::Ctx<'_>) -> Vec<(Kind, &'static str)> {
    let mut out = Vec::new();
    if !runs_workload(ctx) {
        out.push((Kind::Jaeger, "runs on the kubernetes tier, but no edge workload there sends it spans"));
    }
    if !ctx.has(Kind::PrometheusAgent) {
        out.push((
            Kind::NodeExporter,
            "runs on the kubernetes tier's edges, but no edge metrics agent there pushes its metrics",
        ));
    }
    out
}

/// Whether the tier runs the test workload ([`super::workload`]): the profile has the probe image
/// it runs on and the edge agent its spans go through.
fn runs_workload(ctx: &crate::render::Ctx<'_>) -> bool {
    ctx.has(Kind::Probe) && ctx.has(Kind::OtelAgent)
}

/// SIGTERM to the node's kubelet processes (the node image has no procps), printing each pid.
const KILL_KUBELET: &str = "for p in /proc/[0-9]*; do \
    [ \"$(cat \"$p/comm\" 2>/dev/null)\" = kubelet ] && kill -TERM \"${p#/proc/}\" && echo \"${p#/proc/}\"; done; true";

/// The chain an edge's link cut hangs in its INPUT, OUTPUT and FORWARD chains.
const CUT_CHAIN: &str = "LINK-CUT";

/// What the kubernetes tier gives the scenarios of `profile`: the components it deploys and the
/// kubelet tunnel. Pure: the gate reads it too.
pub fn provides(stack: &Stack, profile: &str) -> Result<BTreeSet<String>> {
    let ctx = crate::render::Ctx::new(stack, profile, crate::stack::Arch::Amd64)?;
    let pending = pending(&ctx);
    let deployed = workloads::standalone(&ctx).into_iter().map(|(kind, _)| kind);
    let deployed = deployed.chain(edge_daemonsets(&ctx).into_iter().map(|(kind, ..)| kind));
    let mut out = BTreeSet::from([KUBELET_TUNNEL.to_string()]);
    out.extend(deployed.filter(|kind| !pending.iter().any(|(k, _)| k == kind)).map(|kind| kind.to_string()));
    // The scenarios' names for whichever log agent and store are there.
    if out.contains(&Kind::OtelAgent.to_string()) {
        out.insert("log-agent".into());
    }
    if out.contains(&Kind::VictoriaLogs.to_string()) {
        out.insert(crate::e2e::compose::plan::LOG_STORE.into());
    }
    Ok(out)
}

/// What the bundle of `profile` provides scenarios (as the compose tier runs it, which runs all of it).
fn bundled(stack: &Stack, profile: &str, arch: crate::stack::Arch) -> Result<BTreeSet<String>> {
    let plan = crate::e2e::compose::plan::plan(stack, profile, arch, "bundled", 2, Default::default(), Vec::new())?;
    Ok(plan.provides)
}

/// Why a scenario needing `missing` does not run on the kubernetes tier: it is [`pending`], or the
/// bundle has it (its kinds are `bundled`) and the tier does not deploy it yet, or as on any tier.
fn not_run_reason(
    pending: &[(Kind, &str)],
    bundled: &BTreeSet<String>,
    provides: &BTreeSet<String>,
    missing: &str,
) -> String {
    if let Some((_, why)) = pending.iter().find(|(k, _)| k.to_string() == missing) {
        format!("{missing} {why}")
    } else if missing == crate::e2e::scenario::E2E_TIMING {
        crate::e2e::scenario::not_run_reason(missing)
    } else if bundled.contains(missing) {
        let deployed: Vec<&str> = provides.iter().map(String::as_str).collect();
        format!(
            "{missing} is in the bundle, but the kubernetes tier does not deploy it yet (it provides {})",
            deployed.join(", ")
        )
    } else {
        crate::e2e::scenario::not_run_reason(missing)
    }
}

/// The ConfigMap the cloud install writes with the address edges push to (its first
/// control-plane node's), and it as a URL's host, which the edge agents read.
fn endpoints_config_map(ctx: &crate::render::Ctx<'_>, cloud_ip: std::net::IpAddr) -> serde_json::Value {
    use crate::render::names::{ENDPOINTS_CONFIGMAP, ENV_CLOUD_HOST, ENV_CLOUD_HOST_IP};
    let host = match cloud_ip {
        std::net::IpAddr::V4(ip) => ip.to_string(),
        std::net::IpAddr::V6(ip) => format!("[{ip}]"),
    };
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": { "name": ENDPOINTS_CONFIGMAP, "namespace": ctx.namespace() },
        "data": { ENV_CLOUD_HOST_IP: cloud_ip.to_string(), ENV_CLOUD_HOST: host },
    })
}

/// The Secret `install-observability.sh --alert-webhook-url URL` writes (Alertmanager reads the URL from it).
fn webhook_secret(ctx: &crate::render::Ctx<'_>, url: &str) -> serde_json::Value {
    use crate::render::names::{ALERT_WEBHOOK_KEY, ALERT_WEBHOOK_SECRET};
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": ALERT_WEBHOOK_SECRET, "namespace": ctx.namespace() },
        "stringData": { ALERT_WEBHOOK_KEY: url },
    })
}

/// A cluster with the profile deployed, as the scenarios use it.
#[derive(Clone)]
pub struct Kube {
    inner: Arc<Inner>,
}

struct Inner {
    cluster: Cluster,
    engine: Engine,
    namespace: String,
    provides: BTreeSet<String>,
    /// The cloud components' pods (by their name label, which is their kind's name).
    cloud: Vec<String>,
    /// What is deployed but not provided yet, with why.
    pending: Vec<(Kind, &'static str)>,
    /// Each edge DaemonSet's pod on each edge, measured against the edge budget.
    measured: Vec<Measured>,
    /// What the bundle holds that the tier does not deploy yet (for the reason a scenario gives).
    bundled: BTreeSet<String>,
    /// One port-forward per cloud Service, made on first use.
    forwards: tokio::sync::Mutex<BTreeMap<String, super::forward::Forward>>,
}

impl Kube {
    /// Apply the [`deployed`] files of `profile`, rendered for Kubernetes (the same renderers as
    /// the install's manifests), on `cluster`, with the Secret the install writes from
    /// `--alert-webhook-url` pointing at `webhook`.
    pub async fn deploy(cluster: Cluster, engine: Engine, stack: &Stack, profile: &str, webhook: &str) -> Result<Kube> {
        let arch = cluster.plan.nodes.iter().find(|n| n.is_edge()).or(cluster.plan.nodes.first());
        let arch = arch.context("the cluster has no node")?.arch;
        let ctx = crate::render::Ctx::new(stack, profile, arch)?;
        let files = crate::render::render(&ctx)?;
        for (i, file) in deployed(&ctx).into_iter().enumerate() {
            let text = files.get(file).with_context(|| format!("profile {profile} renders no {file}"))?;
            cluster.apply(text, file).await?;
            if i == 0 {
                // As the install: the server is the control-plane node the edges push to.
                let server = cluster.addresses.get("server").context("the cluster has no server address")?;
                let endpoints = endpoints_config_map(&ctx, *server);
                cluster.apply_objects(&[endpoints], "the edge agents' endpoints").await?;
            }
            if i == 0 && ctx.deploys_alertmanager() {
                cluster.apply_objects(&[webhook_secret(&ctx, webhook)], "the alert webhook's Secret").await?;
            }
        }
        if runs_workload(&ctx) {
            let edge_names: Vec<String> =
                cluster.plan.nodes.iter().filter(|n| n.is_edge()).map(|n| n.name.clone()).collect();
            let server = cluster.addresses.get("server").context("the cluster has no server address")?.to_string();
            let jaeger = format!(
                "http://{}:{}/v1/traces",
                ctx.svc(crate::render::names::RELEASE_JAEGER),
                crate::render::ports::OTLP_HTTP
            );
            let image = ctx.image(Kind::Probe, "probe")?.reference.to_string();
            let objects = super::workload::objects(&image, &edge_names, &server, &jaeger)?;
            cluster.apply_objects(&objects, "the test workload").await?;
        }
        let bundled = bundled(stack, profile, arch)?;
        let edges: Vec<&str> = cluster.plan.nodes.iter().filter(|n| n.is_edge()).map(|n| n.name.as_str()).collect();
        let measured = edge_daemonsets(&ctx)
            .into_iter()
            .flat_map(|(_, component, _)| {
                edges.iter().map(move |node| Measured {
                    container: format!("{node}/{component}"),
                    component: component.clone(),
                    node: node.to_string(),
                })
            })
            .collect();
        Ok(Kube {
            inner: Arc::new(Inner {
                cluster,
                engine,
                namespace: stack.settings.namespace.to_string(),
                provides: provides(stack, profile)?,
                pending: pending(&ctx),
                cloud: workloads::standalone(&ctx).into_iter().map(|(kind, _)| kind.to_string()).collect(),
                measured,
                bundled,
                forwards: Default::default(),
            }),
        })
    }

    pub fn cluster(&self) -> &Cluster {
        &self.inner.cluster
    }

    fn node_container(&self, node: &str) -> Result<String> {
        let c = &self.inner.cluster;
        if !c.plan.nodes.iter().any(|n| n.name == node && n.is_edge()) {
            bail!("no edge node {node} in this cluster");
        }
        Ok(container_name(&c.run, node))
    }

    /// The Service a component is reached by: its name (the renderers name them so).
    async fn service_port(&self, component: &str) -> Result<u16> {
        let services: Api<Service> = Api::namespaced(self.inner.cluster.client.clone(), &self.inner.namespace);
        let svc = services.get(component).await.with_context(|| format!("no Service {component} in this cluster"))?;
        let port = svc.spec.and_then(|s| s.ports).and_then(|p| p.into_iter().next()).map(|p| p.port);
        let port = port.with_context(|| format!("Service {component} has no port"))?;
        u16::try_from(port).with_context(|| format!("Service {component} has port {port}"))
    }

    /// The pods of a component (by its name label).
    async fn pods(&self, component: &str) -> Result<Vec<Pod>> {
        self.pods_in(&self.inner.namespace, component).await
    }

    async fn pods_in(&self, namespace: &str, component: &str) -> Result<Vec<Pod>> {
        let pods: Api<Pod> = Api::namespaced(self.inner.cluster.client.clone(), namespace);
        let list = pods.list(&ListParams::default().labels(&format!("app.kubernetes.io/name={component}"))).await?;
        Ok(list.items)
    }

    /// The NodePorts of a cloud component's Services (those selecting its pods): what an edge
    /// dials it at.
    async fn node_ports(&self, component: &str) -> Result<Vec<u16>> {
        let services: Api<Service> = Api::namespaced(self.inner.cluster.client.clone(), &self.inner.namespace);
        let mut ports = Vec::new();
        for svc in services.list(&ListParams::default()).await?.items {
            let Some(spec) = svc.spec else { continue };
            let selects = spec.selector.as_ref().and_then(|s| s.get("app.kubernetes.io/name"));
            if selects.map(String::as_str) != Some(component) || spec.type_.as_deref() != Some("NodePort") {
                continue;
            }
            for port in spec.ports.into_iter().flatten().filter_map(|p| p.node_port) {
                ports.push(u16::try_from(port).with_context(|| format!("a NodePort of {component} is {port}"))?);
            }
        }
        if ports.is_empty() {
            bail!("{component} has no NodePort Service: an edge does not reach it, so there is nothing to block");
        }
        Ok(ports)
    }

    /// Change an edge's link, in the node's own network namespace, on its cloud interface; its
    /// loopback (its kubelet, its pods) untouched.
    async fn set_link(&self, node: &str, link: LinkState<'_>) -> Result<()> {
        self.node_container(node)?;
        let script = link_script(link);
        self.inner.cluster.exec(node, &["/bin/sh", "-c", &script]).await.map(drop)
    }
}

/// What an edge's link is made: cut (every packet either way dropped), its new connections to
/// some cloud ports refused (a TCP reset, as a firewall rejecting them), or healed (both lifted).
#[derive(Debug, Clone, Copy)]
enum LinkState<'a> {
    Cut,
    Blocked(&'a [u16]),
    Healed,
}

/// The node's shell script that makes its link `link`: rules in [`CUT_CHAIN`], hung on its
/// cloud interface's INPUT, OUTPUT and FORWARD (where its pods' traffic goes).
fn link_script(link: LinkState<'_>) -> String {
    let c = CUT_CHAIN;
    let hang = |chains: &str, dir: &str| {
        format!(
            "for x in {chains}; do iptables -w -C $x {dir} eth0 -j {c} 2>/dev/null || iptables -w -I $x 1 {dir} eth0 -j {c}; done"
        )
    };
    let fresh = format!("iptables -w -N {c} 2>/dev/null; iptables -w -F {c}");
    match link {
        LinkState::Cut => format!(
            "{fresh} && iptables -w -A {c} -j DROP && {} && {}",
            hang("INPUT FORWARD", "-i"),
            hang("OUTPUT FORWARD", "-o")
        ),
        LinkState::Blocked(ports) => {
            let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
            format!(
                "{fresh} && iptables -w -A {c} -p tcp -m multiport --dports {} -j REJECT --reject-with tcp-reset && {}",
                ports.join(","),
                hang("OUTPUT FORWARD", "-o")
            )
        }
        LinkState::Healed => format!(
            "for x in INPUT FORWARD; do while iptables -w -D $x -i eth0 -j {c} 2>/dev/null; do :; done; done; \
             for x in OUTPUT FORWARD; do while iptables -w -D $x -o eth0 -j {c} 2>/dev/null; do :; done; done; \
             iptables -w -F {c} 2>/dev/null; true"
        ),
    }
}

impl Tier for Kube {
    fn provides(&self) -> &BTreeSet<String> {
        &self.inner.provides
    }

    fn not_run_reason(&self, missing: &str) -> String {
        not_run_reason(&self.inner.pending, &self.inner.bundled, &self.inner.provides, missing)
    }

    fn nodes(&self) -> Vec<String> {
        self.inner.cluster.plan.nodes.iter().filter(|n| n.is_edge()).map(|n| n.name.clone()).collect()
    }

    async fn ready(&self) -> Result<()> {
        let timeout = std::time::Duration::from_secs(180);
        for component in &self.inner.cloud {
            let what = format!("{component} ready in the cluster");
            let client = &self.inner.cluster.client;
            crate::e2e::engine::wait_for(&what, timeout, || async {
                Ok(super::forward::ready_pod(client, &self.inner.namespace, component).await.ok())
            })
            .await?;
        }
        // Each edge DaemonSet ready on every edge.
        let edges = self.nodes().len();
        let components: BTreeSet<&str> = self.inner.measured.iter().map(|m| m.component.as_str()).collect();
        for component in components {
            let what = format!("{component} ready on all {edges} edges");
            crate::e2e::engine::wait_for(&what, timeout, || async {
                let ready = self.pods(component).await?.iter().filter(|p| super::forward::is_ready(p)).count();
                Ok((ready >= edges).then_some(()))
            })
            .await?;
        }
        Ok(())
    }

    async fn cloud_url(&self, component: &str) -> Result<String> {
        let mut forwards = self.inner.forwards.lock().await;
        if let Some(f) = forwards.get(component) {
            return Ok(f.url());
        }
        let port = self.service_port(component).await?;
        let f = self.inner.cluster.forward(&self.inner.namespace, component, port).await?;
        let url = f.url();
        forwards.insert(component.to_string(), f);
        Ok(url)
    }

    /// Read on the node: the pod log its kubelet wrote, or the record of the spans its agent took.
    async fn written(&self, node: &str, signal: Signal) -> Result<String> {
        self.node_container(node)?;
        let path = match signal {
            Signal::Logs => super::workload::pod_log(node),
            Signal::Spans => super::workload::span_record(node),
        };
        self.inner.cluster.exec(node, &["sh", "-c", &format!("cat {path} 2>/dev/null || true")]).await
    }

    async fn inject(&self, fault: &Fault) -> Result<()> {
        let engine = &self.inner.engine;
        match fault {
            // A node going down is a power loss: its container killed, kubelet, containerd and pods with it.
            Fault::StopNode(node) => engine.kill(&self.node_container(node)?).await,
            // Its init starts containerd, the kubelet and its tunnel again; the pods come back from
            // the node's containerd, nothing pulled.
            Fault::StartNode(node) => engine.start(&self.node_container(node)?).await,
            Fault::CutLink(node) => self.set_link(node, LinkState::Cut).await,
            Fault::HealLink(node) => self.set_link(node, LinkState::Healed).await,
            // Its connections to the component's NodePorts (on whichever cloud node) refused.
            Fault::Block { node, component } => {
                let ports = self.node_ports(component).await?;
                self.set_link(node, LinkState::Blocked(&ports)).await
            }
            // As edgecore restarting on KubeEdge: the process killed, the node's init starts it a
            // second later; the pods' containers, children of containerd, keep running.
            Fault::RestartKubelet(node) => {
                self.node_container(node)?;
                let killed = self.inner.cluster.exec(node, &["/bin/sh", "-c", KILL_KUBELET]).await?;
                if killed.trim().is_empty() {
                    bail!("no kubelet process running on {node} to restart");
                }
                Ok(())
            }
            // A restart, as the compose tier's: each of its containers stopped (SIGTERM) in its node's
            // containerd; the kubelet starts it again in the same pod, its volumes kept.
            Fault::Restart(component) => {
                let mut stopped = 0;
                for pod in self.pods(component).await? {
                    let node = pod.spec.as_ref().and_then(|s| s.node_name.clone()).unwrap_or_default();
                    let statuses = pod.status.and_then(|s| s.container_statuses).unwrap_or_default();
                    for id in statuses.iter().filter_map(|c| c.container_id.as_deref()) {
                        let id = id.strip_prefix("containerd://").unwrap_or(id);
                        self.inner
                            .cluster
                            .exec(&node, &["ctr", "-n", "k8s.io", "task", "kill", "-s", "SIGTERM", id])
                            .await?;
                        stopped += 1;
                    }
                }
                if stopped == 0 {
                    bail!("no running container of {component} to restart");
                }
                Ok(())
            }
        }
    }

    async fn logs(&self, name: &str, lines: usize) -> Result<Vec<(String, String)>> {
        let c = &self.inner.cluster;
        if c.plan.nodes.iter().any(|n| n.name == name) {
            let text = c.node_logs(name, lines).await.unwrap_or_else(|e| format!("{e:#}"));
            return Ok(vec![(format!("node-{name}"), text)]);
        }
        // The test workload's cloud end is in its own namespace; the log store is whichever is there.
        let (namespace, name) = match name {
            crate::e2e::compose::plan::CLOUD_API => (super::workload::NAMESPACE, name),
            crate::e2e::compose::plan::LOG_STORE => {
                (self.inner.namespace.as_str(), crate::render::otelagent::VICTORIA_LOGS_HOST)
            }
            _ => (self.inner.namespace.as_str(), name),
        };
        let pods: Api<Pod> = Api::namespaced(c.client.clone(), namespace);
        let mut out = Vec::new();
        for pod in self.pods_in(namespace, name).await?.into_iter().filter_map(|p| p.metadata.name) {
            let params = LogParams { tail_lines: Some(lines as i64), ..Default::default() };
            let text = pods.logs(&pod, &params).await.unwrap_or_else(|e| format!("{e:#}"));
            out.push((pod, text));
        }
        Ok(out)
    }

    fn measured(&self) -> Vec<Measured> {
        self.inner.measured.clone()
    }

    /// The component's container's cgroup figures as the node's containerd reads them (what
    /// its kubelet's `/metrics/resource` reports), read on the node itself: asking the kubelet
    /// through the tunnel as metrics-server does would add the harness' own requests to the link
    /// it measures. Timed by the node's clock just before the read. Under qemu the figures are
    /// the emulator's too.
    async fn read(&self, m: &Measured, _emulated: bool) -> Result<Option<Reading>> {
        let pods = self.pods(&m.component).await?;
        let on_node = pods.iter().filter(|p| p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(&m.node));
        let statuses = on_node.flat_map(|p| p.status.iter().flat_map(|s| s.container_statuses.iter().flatten()));
        let running =
            statuses.filter(|c| c.name == m.component && c.state.as_ref().is_some_and(|s| s.running.is_some()));
        let Some(id) = running.filter_map(|c| c.container_id.as_deref()).next() else { return Ok(None) };
        let id = id.strip_prefix("containerd://").unwrap_or(id);
        let Ok(out) = self.inner.cluster.exec(&m.node, &["sh", "-c", super::stats::SCRIPT, "sh", id]).await else {
            return Ok(None);
        };
        let Some(u) = super::stats::usage(&out) else { return Ok(None) };
        let nanos = u64::try_from(u.at_ns).unwrap_or(0);
        let taken = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(nanos);
        Ok(Some(Reading {
            memory_bytes: u.working_set_bytes,
            cpu_total_ns: u.cpu_ns,
            at: crate::e2e::tier::instant_of(taken),
            qemu: None,
        }))
    }

    async fn link_counters(&self, node: &str) -> Result<(u64, u64)> {
        self.node_container(node)?;
        let out = self
            .inner
            .cluster
            .exec(node, &["cat", "/sys/class/net/eth0/statistics/tx_bytes", "/sys/class/net/eth0/statistics/rx_bytes"])
            .await?;
        let mut n = out.split_whitespace().map(str::parse::<u64>);
        match (n.next(), n.next()) {
            (Some(Ok(tx)), Some(Ok(rx))) => Ok((tx, rx)),
            _ => bail!("{node}'s interface counters are not two numbers: {out:?}"),
        }
    }

    async fn pulls_since(&self, since: i64) -> Result<Vec<String>> {
        let mut out = self.inner.engine.pulls_since(since).await?;
        // A kubelet pulling records a `Pulling` event on the pod, in any namespace.
        let events: Api<Event> = Api::all(self.inner.cluster.client.clone());
        for e in events.list(&ListParams::default().fields("reason=Pulling")).await?.items {
            let object = e.involved_object.name.unwrap_or_default();
            out.push(format!("{object}: {}", e.message.unwrap_or_default()));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The local profile on this tier: Prometheus, Alertmanager, the blackbox exporter,
    /// VictoriaLogs and Jaeger (rendered for Kubernetes), the edges' node exporter, metrics agent,
    /// link probe and edge agent, the test workload and the tunnel, so the scenarios on those run
    /// and every other says what it waits for; the compose tier, which has no kubelet, says why
    /// edge-kubelet does not run there.
    #[test]
    fn the_local_profile_runs_what_the_tier_deploys_and_names_the_rest() {
        let stack = crate::stack::load(&crate::paths::stack_file()).unwrap();
        let provides = provides(&stack, "local").unwrap();
        assert_eq!(
            provides,
            [
                KUBELET_TUNNEL,
                "alertmanager",
                "blackbox-exporter",
                "jaeger",
                "kube-state-metrics",
                "link-probe",
                "log-agent",
                "log-store",
                "node-exporter",
                "otel-agent",
                "prometheus",
                "prometheus-agent",
                "victoria-logs"
            ]
            .map(String::from)
            .into()
        );
        let ctx = crate::render::Ctx::new(&stack, "local", crate::stack::Arch::Amd64).unwrap();
        let files = crate::render::render(&ctx).unwrap();
        let deployed = deployed(&ctx);
        assert_eq!(
            deployed,
            [
                "manifests/00-namespace.yaml",
                "manifests/20-edge-node-exporter.yaml",
                "manifests/21-edge-metrics.yaml",
                "manifests/22-edge-link-probe.yaml",
                "manifests/23-edge-agent.yaml",
                "manifests/35-kube-state-metrics.yaml",
                "manifests/40-prometheus.yaml",
                "manifests/45-alertmanager.yaml",
                "manifests/50-blackbox-exporter.yaml",
                "manifests/55-victoria-logs.yaml",
                "manifests/60-jaeger.yaml"
            ]
        );
        assert!(deployed.iter().all(|f| files.get(f).is_some()), "every deployed file is rendered");
        let scenarios = crate::e2e::scenario::load_dir(&crate::paths::scenarios_dir(), &[]).unwrap();
        let runs: Vec<&str> = scenarios
            .iter()
            .filter(|s| crate::e2e::scenario::missing_requirement(s, &provides).is_none())
            .map(|s| s.name.as_str())
            .collect();
        assert_eq!(
            runs,
            [
                "metrics",
                "edge-kubelet",
                "alerts",
                "node-not-ready",
                "link-probe",
                "link-outage",
                "restart",
                "logs",
                "traces",
                "quiet"
            ]
        );
        // The scenarios written for the compose tier's pace say so.
        let paced: Vec<&str> = scenarios
            .iter()
            .filter(|s| {
                crate::e2e::scenario::missing_requirement(s, &provides).as_deref()
                    == Some(crate::e2e::scenario::E2E_TIMING)
            })
            .map(|s| s.name.as_str())
            .collect();
        // The install's buffer window is hours: a cut outlasting it is the compose tier's.
        assert_eq!(paced, ["buffer-window"]);
        let bundled = bundled(&stack, "local", crate::stack::Arch::Amd64).unwrap();
        let pending = pending(&ctx);
        assert!(pending.is_empty(), "{pending:?}");
        let reason = |missing| not_run_reason(&pending, &bundled, &provides, missing);
        assert!(reason(crate::e2e::scenario::E2E_TIMING).contains("written for the compose tier's [e2e] timing"));
        assert_eq!(reason("grafana"), crate::e2e::scenario::not_run_reason("grafana"));
        let daemonsets = edge_daemonsets(&ctx);
        let names: Vec<(Kind, &str)> = daemonsets.iter().map(|(k, n, _)| (*k, n.as_str())).collect();
        assert_eq!(
            names,
            [
                (Kind::NodeExporter, "edge-node-exporter"),
                (Kind::PrometheusAgent, "edge-metrics"),
                (Kind::LinkProbe, "edge-link-probe"),
                (Kind::OtelAgent, "edge-agent")
            ]
        );
        assert!(
            crate::e2e::scenario::not_run_reason(KUBELET_TUNNEL).contains("no kubelet behind KubeEdge's tunnel port")
        );
    }

    /// A block refuses the component's ports on the way out only; a cut drops everything both
    /// ways; a heal lifts either. Each is a script `sh` reads.
    #[test]
    fn link_scripts_cut_block_and_heal() {
        let block = link_script(LinkState::Blocked(&[31317, 31318]));
        assert!(
            block.contains("-p tcp -m multiport --dports 31317,31318 -j REJECT --reject-with tcp-reset"),
            "{block}"
        );
        assert!(block.contains("for x in OUTPUT FORWARD") && !block.contains("INPUT"), "{block}");
        let cut = link_script(LinkState::Cut);
        assert!(cut.contains(&format!("-A {CUT_CHAIN} -j DROP")) && cut.contains("for x in INPUT FORWARD"), "{cut}");
        for script in [block, cut, link_script(LinkState::Healed)] {
            let out = std::process::Command::new("sh").args(["-n", "-c", &script]).output().unwrap();
            assert!(out.status.success(), "{script}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }

    /// Without a metrics agent, the node exporter's metrics reach no one: not provided, and said why.
    #[test]
    fn a_node_exporter_without_an_agent_is_pending() {
        let mut stack = crate::stack::load(&crate::paths::stack_file()).unwrap();
        let (_, profile) = stack.profiles.iter_mut().find(|(name, _)| name.as_str() == "local").unwrap();
        profile.components.iter_mut().filter(|c| c.kind == Kind::PrometheusAgent).for_each(|c| c.enabled = false);
        let ctx = crate::render::Ctx::new(&stack, "local", crate::stack::Arch::Amd64).unwrap();
        let pending = pending(&ctx);
        assert!(pending.iter().any(|(k, why)| *k == Kind::NodeExporter && why.contains("no edge metrics agent")));
        assert!(!provides(&stack, "local").unwrap().contains("node-exporter"));
    }

    /// The endpoints ConfigMap the tier writes is the one the edge agents read: the metrics
    /// agent's init container the address, the edge agent it as a URL's host (IPv6 in brackets).
    #[test]
    fn the_endpoints_are_where_the_agents_read_them() {
        use crate::render::names::{ENV_CLOUD_HOST, ENV_CLOUD_HOST_IP};
        let stack = crate::stack::load(&crate::paths::stack_file()).unwrap();
        let ctx = crate::render::Ctx::new(&stack, "local", crate::stack::Arch::Amd64).unwrap();
        let cm = endpoints_config_map(&ctx, "10.0.0.1".parse().unwrap());
        assert_eq!(cm["data"][ENV_CLOUD_HOST_IP], "10.0.0.1");
        assert_eq!(cm["data"][ENV_CLOUD_HOST], "10.0.0.1");
        let v6 = endpoints_config_map(&ctx, "fd00::1".parse().unwrap());
        assert_eq!(
            (&v6["data"][ENV_CLOUD_HOST_IP], &v6["data"][ENV_CLOUD_HOST]),
            (&"fd00::1".into(), &"[fd00::1]".into())
        );
        let files = crate::render::render(&ctx).unwrap();
        let name = cm["metadata"]["name"].as_str().unwrap();
        for (file, key) in [
            (crate::render::edgemetrics::MANIFEST_FILE, ENV_CLOUD_HOST_IP),
            (crate::render::otelagent::MANIFEST_FILE, ENV_CLOUD_HOST),
        ] {
            let text = files.get(file).unwrap();
            assert!(text.contains(&format!("key: {key}\n                name: {name}\n")), "{file}: {text}");
        }
        assert_eq!(cm["metadata"]["namespace"], ctx.namespace());
    }

    /// The Secret the tier writes is the one the install writes and Alertmanager mounts.
    #[test]
    fn the_webhook_secret_is_where_alertmanager_reads_it() {
        let stack = crate::stack::load(&crate::paths::stack_file()).unwrap();
        let ctx = crate::render::Ctx::new(&stack, "local", crate::stack::Arch::Amd64).unwrap();
        let secret = webhook_secret(&ctx, "http://10.0.0.1:1/alerts");
        let file = crate::render::alertmanager::webhook_url_file();
        let name = secret["metadata"]["name"].as_str().unwrap();
        let key = secret["stringData"].as_object().unwrap().keys().next().unwrap();
        assert_eq!(file, format!("/etc/alertmanager/secrets/{name}/{key}"));
        let files = crate::render::render(&ctx).unwrap();
        let am = files.get(workloads::ALERTMANAGER_FILE).unwrap();
        assert!(
            am.contains(&format!("secretName: {name}"))
                && am.contains(&format!("mountPath: /etc/alertmanager/secrets/{name}")),
            "{am}"
        );
    }
}
