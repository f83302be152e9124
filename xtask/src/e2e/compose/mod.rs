//! The compose tier: the bundle's real components as plain containers on internal Docker
//! networks, no Kubernetes, with the compose flavour of the rendered configs.
//!
//! [`plan`] lays the topology out as data; [`Compose`] brings it up (images only from the
//! bundle, networks, configs for this topology, containers, each edge NAT'd by [`link`]) and is
//! then the [`Tier`] the scenarios run against.

pub mod link;
pub mod plan;
pub mod qemu;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use camino::Utf8Path;

use super::engine::{self, Engine};
use super::scenario::{Fault, Signal};
use super::tier::{Measured, Reading, Tier};
use crate::render::rules::LatencyModel;
use crate::stack::Stack;
use link::Link;
use plan::{Plan, Planned};

/// A compose topology: its plan and the engine it runs on.
#[derive(Clone)]
pub struct Compose {
    engine: Engine,
    plan: Arc<Plan>,
    /// A node's cloud-side interface, by the pid of its holder (found once per namespace).
    interfaces: Arc<Mutex<HashMap<u32, String>>>,
}

impl Compose {
    pub fn new(engine: Engine, plan: Plan) -> Self {
        Compose { engine, plan: Arc::new(plan), interfaces: Arc::default() }
    }

    /// Load every image archive of the bundle into the engine (nothing is ever pulled) and
    /// check each planned container's image is among them, for the plan's platform; how many
    /// images were loaded.
    pub async fn load_images(&self, bundle: &Utf8Path) -> Result<usize> {
        let plan = &self.plan;
        let mut loaded = BTreeSet::new();
        for a in &plan.archives {
            loaded.extend(self.engine.load_archive(&bundle.join(a)).await?);
        }
        for c in &plan.containers {
            if !loaded.contains(&engine::full_name(&c.spec.image)) {
                bail!(
                    "image {} (for {}) is not in the bundle's archives; rebuild the bundle",
                    c.spec.image,
                    c.component
                );
            }
            match self.engine.image_platform(&c.spec.image).await? {
                Some(p) if p == plan.platform => {}
                other => bail!("image {} is {other:?} in the engine, expected {}", c.spec.image, plan.platform),
            }
        }
        Ok(loaded.len())
    }

    /// Create the internal networks and volumes; the cloud network's gateway (where the
    /// harness's receiver listens).
    pub async fn create_networks(&self) -> Result<std::net::IpAddr> {
        let plan = &self.plan;
        let labels: BTreeMap<String, String> = plan.containers[0].spec.labels.clone();
        self.engine.create_network(&plan.cloud_network, &labels).await?;
        for net in plan.edges.values() {
            self.engine.create_network(net, &labels).await?;
        }
        for v in &plan.volumes {
            self.engine.create_volume(v, &labels).await?;
        }
        self.engine.network_gateway(&plan.cloud_network).await
    }

    /// Render the compose flavour of the configs for this topology into the plan's config
    /// folder; each alert's latency model.
    pub fn configure(
        &self,
        stack: &Stack,
        profile: &str,
        alert_webhook_url: String,
    ) -> Result<BTreeMap<String, LatencyModel>> {
        let topology =
            crate::render::ComposeTopology { edges: self.plan.edges.keys().cloned().collect(), alert_webhook_url };
        let ctx = crate::render::Ctx::compose(stack, profile, self.plan.arch, &topology)?;
        crate::render::render(&ctx)?.write_to(&self.plan.config_dir)?;
        Ok(crate::render::rules::alert_models(&ctx))
    }

    /// Start every container but Prometheus ([`Tier::ready`] starts it once the rest answer).
    pub async fn start(&self) -> Result<()> {
        for c in self.not_scraper() {
            self.start_container(c).await?;
        }
        crate::note!(
            "e2e: started {} containers on {} networks",
            self.plan.containers.len() - self.scraper().len(),
            self.plan.edges.len() + 1
        );
        Ok(())
    }

    /// Prometheus starts last, once every other container answers: its first scrapes then find
    /// every target up, so no `*Down` alert (`absent(up == 1)` holds until a target's first
    /// successful scrape) fires from the order things started in.
    fn scraper(&self) -> Vec<&Planned> {
        self.plan.containers.iter().filter(|c| c.component == crate::render::names::JOB_PROMETHEUS).collect()
    }

    fn not_scraper(&self) -> Vec<&Planned> {
        self.plan.containers.iter().filter(|c| c.component != crate::render::names::JOB_PROMETHEUS).collect()
    }

    /// Start one planned container; a node's holder also gets its link to the cloud, behind NAT.
    async fn start_container(&self, c: &Planned) -> Result<()> {
        let plan = &self.plan;
        self.engine.run(&c.spec).await?;
        if c.node.as_deref() == Some(c.component.as_str()) {
            self.engine.connect_network(&plan.cloud_network, &c.spec.name, std::slice::from_ref(&c.component)).await?;
            Link::of(&self.engine, &c.spec.name, &plan.cloud_network).await?.install().await?;
        }
        Ok(())
    }

    /// `http://<address>:<port>` of a container, as the harness reaches it: a cloud component
    /// at its address on the cloud network, an edge one at its node's address on the node's
    /// network (the node's containers share its network namespace).
    async fn url_of(&self, c: &Planned, port: u16) -> Result<String> {
        let plan = &self.plan;
        let (container, network) = match &c.node {
            None => (c.spec.name.clone(), plan.cloud_network.clone()),
            Some(node) => (
                plan.holder_name(node),
                plan.edges.get(node).cloned().with_context(|| format!("no network for node {node}"))?,
            ),
        };
        let ip = self
            .engine
            .address(&container, &network)
            .await?
            .with_context(|| format!("{} has no address on {network} (is it running?)", c.component))?;
        Ok(format!("http://{ip}:{port}"))
    }

    /// Wait until each of `containers` with a readiness probe answers it, in order. Fails at
    /// once, with its log, when any of them has exited.
    async fn wait_ready(&self, containers: &[&Planned], timeout: Duration) -> Result<()> {
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
        let deadline = Instant::now() + timeout;
        for c in containers.iter().filter(|c| c.ready.is_some()) {
            let Some(ready) = &c.ready else { continue };
            let what = match &c.node {
                Some(node) => format!("{} on {node}", c.component),
                None => c.component.clone(),
            };
            loop {
                for c in containers {
                    self.engine.ensure_running(&c.spec.name).await?;
                }
                let last = match self.url_of(c, ready.port).await {
                    Ok(base) => match http.get(format!("{base}{}", ready.path)).send().await {
                        Ok(r) if r.status().is_success() => break,
                        Ok(r) => format!("{base}{} answered {}", ready.path, r.status()),
                        Err(e) => format!("{base}{}: {e}", ready.path),
                    },
                    Err(e) => format!("{e:#}"),
                };
                if Instant::now() >= deadline {
                    bail!("{what} was not ready within {timeout:?}: {last}");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        Ok(())
    }

    /// The log of every container of the plan (those that exist) into `logs/setup-<name>.log`;
    /// the files, relative to the run folder.
    pub async fn save_logs(&self, run_dir: &Utf8Path) -> Vec<String> {
        let mut out = Vec::new();
        for c in &self.plan.containers {
            let Ok(text) = self.engine.logs(&c.spec.name, 400).await else { continue };
            let name = format!("setup-{}.log", self.short_name(c));
            let Ok(path) = super::scenario::join_safe(&run_dir.join("logs"), &name) else { continue };
            if std::fs::create_dir_all(run_dir.join("logs")).is_ok()
                && crate::atomic::write(&path, text.as_bytes(), false).is_ok()
            {
                out.push(format!("logs/{name}"));
            }
        }
        out
    }

    /// A container's name without the run id.
    fn short_name<'a>(&self, c: &'a Planned) -> &'a str {
        c.spec.name.trim_start_matches(&format!("{}-", self.plan.run_id))
    }

    fn cloud(&self, component: &str) -> Result<&Planned> {
        self.plan.container(component, None).with_context(|| format!("no cloud component {component}"))
    }

    fn holder_link(&self, node: &str) -> impl Future<Output = Result<Link>> + Send + '_ {
        let holder = self.plan.holder_name(node);
        async move { Link::of(&self.engine, &holder, &self.plan.cloud_network).await }
    }
}

impl Tier for Compose {
    fn provides(&self) -> &BTreeSet<String> {
        &self.plan.provides
    }

    fn nodes(&self) -> Vec<String> {
        self.plan.edges.keys().cloned().collect()
    }

    async fn ready(&self) -> Result<()> {
        let timeout = Duration::from_secs(120);
        self.wait_ready(&self.not_scraper(), timeout).await?;
        for c in self.scraper() {
            self.start_container(c).await?;
        }
        self.wait_ready(&self.scraper(), timeout).await
    }

    async fn cloud_url(&self, component: &str) -> Result<String> {
        let c = self.plan.container(component, None).with_context(|| format!("no {component} in this topology"))?;
        let port = *c.ports.first().with_context(|| format!("{component} has no HTTP port"))?;
        self.url_of(c, port).await
    }

    async fn written(&self, node: &str, signal: Signal) -> Result<String> {
        let workload = &self.plan.workload(node).with_context(|| format!("no workload on {node}"))?.spec.name;
        let path = match signal {
            Signal::Logs => plan::WORKLOAD_POD_LOG,
            Signal::Spans => plan::SPAN_RECORD,
        };
        let read = format!("cat {path} 2>/dev/null || true");
        self.engine.exec(workload, &["/bin/busybox", "sh", "-c", &read]).await
    }

    async fn inject(&self, fault: &Fault) -> Result<()> {
        let p = &self.plan;
        match fault {
            // A node going down is a power loss: every container of the node killed at once.
            Fault::StopNode(node) => {
                for c in p.node_containers(node).iter().rev() {
                    self.engine.kill(&c.spec.name).await?;
                }
            }
            Fault::StartNode(node) => {
                for (i, c) in p.node_containers(node).into_iter().enumerate() {
                    self.engine.start(&c.spec.name).await?;
                    // The holder comes back with a new network namespace: NAT it again first.
                    if i == 0 {
                        Link::of(&self.engine, &c.spec.name, &p.cloud_network).await?.install().await?;
                    }
                }
            }
            Fault::CutLink(node) => self.holder_link(node).await?.cut().await?,
            Fault::HealLink(node) => self.holder_link(node).await?.heal().await?,
            Fault::Block { node, component } => {
                let c = self.cloud(component)?;
                let address = self
                    .engine
                    .address(&c.spec.name, &p.cloud_network)
                    .await?
                    .with_context(|| format!("{component} has no address on {} to block", p.cloud_network))?;
                self.holder_link(node).await?.block(&address.to_string(), &c.ports).await?
            }
            Fault::Restart(component) => self.engine.restart(&self.cloud(component)?.spec.name).await?,
            // A scenario using it requires kubelet-tunnel, which this tier does not provide.
            Fault::RestartKubelet(node) => bail!("{node} runs no kubelet on the compose tier"),
        }
        Ok(())
    }

    async fn logs(&self, name: &str, lines: usize) -> Result<Vec<(String, String)>> {
        let containers: Vec<&Planned> = match self.plan.container(name, None) {
            Some(c) => vec![c],
            None => self.plan.node_containers(name),
        };
        let mut out = Vec::new();
        for c in containers {
            let text = self.engine.logs(&c.spec.name, lines).await.unwrap_or_else(|e| format!("{e:#}"));
            out.push((self.short_name(c).to_string(), text));
        }
        Ok(out)
    }

    fn measured(&self) -> Vec<Measured> {
        self.plan
            .measured()
            .into_iter()
            .map(|c| Measured {
                component: c.component.clone(),
                node: c.node.clone().unwrap_or_default(),
                container: c.spec.name.clone(),
            })
            .collect()
    }

    async fn read(&self, m: &Measured, emulated: bool) -> Result<Option<Reading>> {
        let Some(s) = self.engine.stats_once(&m.container).await? else { return Ok(None) };
        // The reading's time is the engine's (a CPU rate between two readings is only as good as
        // their times); the smaps are read after it, off the runtime.
        let at = s.read.map_or_else(Instant::now, crate::e2e::tier::instant_of);
        let qemu = match emulated {
            true => match self.engine.pid(&m.container).await {
                Ok(pid) => tokio::task::spawn_blocking(move || qemu::qemu_in_container(pid)).await.ok().flatten(),
                Err(_) => None,
            },
            false => None,
        };
        Ok(Some(Reading { memory_bytes: s.memory_bytes, cpu_total_ns: s.cpu_total_ns, at, qemu }))
    }

    async fn link_counters(&self, node: &str) -> Result<(u64, u64)> {
        let link = self.holder_link(node).await?;
        let known = self.interfaces.lock().ok().and_then(|m| m.get(&link.pid()).cloned());
        let interface = match known {
            Some(i) => i,
            None => {
                let address = self
                    .engine
                    .address(&self.plan.holder_name(node), &self.plan.cloud_network)
                    .await?
                    .context("the holder has no address on the cloud network")?;
                let i = link.interface(address).await?;
                if let Ok(mut m) = self.interfaces.lock() {
                    m.insert(link.pid(), i.clone());
                }
                i
            }
        };
        link.counters(&interface)
    }

    async fn pulls_since(&self, since: i64) -> Result<Vec<String>> {
        self.engine.pulls_since(since).await
    }
}
