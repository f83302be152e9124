//! The e2e `kubernetes` tier's cluster: a real Kubernetes v1.34 cluster in containers, made of the
//! parts k3s is made of ([`plan`]), brought up with testcontainers on an internal network the run
//! creates, every API call through kube-rs. A server node (control plane and kubelet), cloud agent
//! nodes and simulated KubeEdge edge nodes, each a container of the node image
//! (`cargo xtask fixtures --node`). Nothing is pulled: the node image is loaded from its archive and
//! the workloads' images are imported into each node's containerd from the bundle.

pub mod forward;
pub mod pki;
pub mod plan;
pub mod stats;
pub mod tier;
pub mod workload;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use k8s_openapi::api::core::v1::Node as KubeNode;
use kube::api::{Api, ListParams, Patch, PatchParams};
use testcontainers::core::{Mount, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

use crate::stack::Role as StackRole;

use super::engine::{Engine, LABEL_PID, LABEL_PIDNS, LABEL_RUN, pid_namespace};
use crate::render::workloads::CONTROL_PLANE_LABEL;
use plan::{APISERVER_PORT, APISERVER_TLS_NAME, EDGE_ROLE, Plan, Role, Shape};

/// Where each node finds the bundle (read-only).
pub const BUNDLE_DIR: &str = "/var/lib/kubeprepare/bundle";

/// How long each phase may take before the bring-up fails naming what it waited for.
const API_TIMEOUT: Duration = Duration::from_secs(120);
const NODES_TIMEOUT: Duration = Duration::from_secs(180);

/// The times of a bring-up, from the first container's start.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Timings {
    pub api_ready_s: f64,
    pub cloud_ready_s: f64,
    pub edges_joined_s: f64,
}

/// A cluster that is up. [`Cluster::remove`] tears it down; the run's labels let a later run or
/// `e2e --sweep` remove what a killed one left.
pub struct Cluster {
    pub run: String,
    pub plan: Plan,
    pub network: String,
    pub client: kube::Client,
    /// Node name → its address on the cluster network.
    pub addresses: BTreeMap<String, IpAddr>,
    pub timings: Timings,
    engine: Engine,
    containers: BTreeMap<String, ContainerAsync<GenericImage>>,
}

/// The container of `node` in `run`.
pub fn container_name(run: &str, node: &str) -> String {
    format!("{run}-{node}")
}

fn labels(run: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_RUN.to_string(), run.to_string()),
        (LABEL_PID.to_string(), std::process::id().to_string()),
        (LABEL_PIDNS.to_string(), pid_namespace()),
    ])
}

impl Cluster {
    /// Bring up a cluster of `shape` for `run`: the node image loaded from `node_archives`
    /// (`linux/<arch>` → archive), each node's images imported from `bundle` (a cloud node's the
    /// cloud role's, an edge's the edge role's, every node the sandbox image).
    pub async fn start(
        engine: &Engine,
        run: &str,
        shape: &Shape,
        node_archives: &BTreeMap<String, Utf8PathBuf>,
        bundle: &Utf8Path,
    ) -> Result<Cluster> {
        let images = archives(bundle, &shape.sandbox_image)?;
        let names: Vec<String> = shape.names().into_iter().map(|(n, _)| n).collect();
        let mut server_names = Shape::server_names();
        server_names.push(container_name(run, "server"));
        let secrets = pki::Secrets::generate(&server_names, &names)?;
        let plan = plan::plan(shape, &secrets, &container_name(run, "server"))?;
        let mut arches: Vec<_> = plan.nodes.iter().map(|n| format!("linux/{}", n.arch)).collect();
        arches.sort();
        arches.dedup();
        for platform in &arches {
            let archive = node_archives.get(platform).with_context(|| {
                format!("no node image for {platform}: run `cargo xtask fixtures --node --arch {}`", &platform[6..])
            })?;
            crate::note!("e2e: loading the node image ({platform}) from {}", crate::paths::shown(archive));
            engine.load_archive(archive).await?;
        }
        let network = format!("{run}-cluster");
        let labels = labels(run);
        engine.create_network(&network, &labels).await?;
        let mut cluster = Cluster {
            run: run.to_string(),
            plan,
            network,
            client: placeholder_client()?,
            addresses: BTreeMap::new(),
            timings: Timings::default(),
            engine: engine.clone(),
            containers: BTreeMap::new(),
        };
        match cluster.bring_up(&secrets, bundle, &images, &labels).await {
            Ok(()) => Ok(cluster),
            Err(e) => {
                let logs = cluster.node_logs("server", 30).await.unwrap_or_default();
                cluster.remove().await.ok();
                Err(e.context(format!("bringing up the cluster; the server's last log lines:\n{logs}")))
            }
        }
    }

    async fn bring_up(
        &mut self,
        secrets: &pki::Secrets,
        bundle: &Utf8Path,
        images: &Archives,
        labels: &BTreeMap<String, String>,
    ) -> Result<()> {
        let started = Instant::now();
        let (repo, tag) = self.plan.image.rsplit_once(':').context("the node image has no tag")?;
        for node in self.plan.nodes.clone() {
            let volume = format!("{}-{}-containerd", self.run, node.name);
            self.engine.create_volume(&volume, labels).await?;
            let mut req = GenericImage::new(repo, tag)
                .with_wait_for(WaitFor::Nothing)
                .with_container_name(container_name(&self.run, &node.name))
                .with_network(self.network.clone())
                .with_hostname(node.name.clone())
                .with_platform(format!("linux/{}", node.arch))
                .with_labels(labels.clone())
                .with_cmd(["/bin/sh", &format!("{}/init.sh", plan::ETC)])
                // The near-privileged set (SPEC, "Containers on our machines"): what kubelet and
                // containerd need inside a container where `--privileged` is refused.
                .with_cap_add("ALL")
                .with_cap_drop("SYS_RESOURCE")
                .with_security_opt("seccomp=unconfined")
                .with_security_opt("apparmor=unconfined")
                .with_host_config_modifier(|hc| {
                    hc.device_cgroup_rules = Some(vec!["a *:* rwm".into()]);
                    // `--security-opt systempaths=unconfined`, as the API spells it.
                    hc.masked_paths = Some(Vec::new());
                    hc.readonly_paths = Some(Vec::new());
                })
                // overlayfs on the container's own overlay fails: containerd's root is a volume.
                .with_mount(Mount::volume_mount(volume, "/var/lib/containerd"))
                .with_mount(
                    Mount::bind_mount(bundle.as_str(), BUNDLE_DIR)
                        .with_access_mode(testcontainers::core::AccessMode::ReadOnly),
                );
            for (path, f) in &node.files {
                req = req.with_copy_to(path.clone(), f.text.clone().into_bytes());
            }
            let container = req.start().await.with_context(|| {
                format!("starting node {} from {} (it is never pulled: load it first)", node.name, self.plan.image)
            })?;
            let address = self
                .engine
                .address(container.id(), &self.network)
                .await?
                .with_context(|| format!("node {} has no address on {}", node.name, self.network))?;
            self.addresses.insert(node.name.clone(), address);
            self.containers.insert(node.name.clone(), container);
        }
        self.client = client(self.addresses["server"], secrets)?;
        super::engine::wait_for("the API server to be ready (/readyz)", API_TIMEOUT, || async {
            let req = http::Request::get("/readyz").body(Vec::new())?;
            Ok(self.client.request_text(req).await.ok().filter(|t| t.trim() == "ok"))
        })
        .await?;
        self.timings.api_ready_s = started.elapsed().as_secs_f64();
        self.apply_objects(&plan::dns_objects(&self.addresses["server"].to_string()), "the cluster DNS").await?;
        self.routes().await?;
        self.import_images(images).await?;
        let cloud: Vec<String> = self.plan.nodes.iter().filter(|n| !n.is_edge()).map(|n| n.name.clone()).collect();
        self.wait_ready(&cloud).await?;
        self.timings.cloud_ready_s = started.elapsed().as_secs_f64();
        let edges: Vec<String> = self.plan.nodes.iter().filter(|n| n.is_edge()).map(|n| n.name.clone()).collect();
        self.wait_ready(&edges).await?;
        self.label_nodes(&edges).await?;
        self.timings.edges_joined_s = started.elapsed().as_secs_f64();
        Ok(())
    }

    /// Joins the cloud nodes' pod subnets over VXLAN (`plan::overlay`, flannel's shape); none
    /// to or from an edge's.
    async fn routes(&self) -> Result<()> {
        for (node, cmds) in plan::overlay(&self.plan, &self.addresses)? {
            for cmd in cmds {
                let cmd: Vec<&str> = cmd.iter().map(String::as_str).collect();
                self.exec(&node, &cmd).await.context("joining the cloud nodes' pod subnets")?;
            }
        }
        Ok(())
    }

    /// Import every image archive of the bundle into each node's containerd (namespace k8s.io,
    /// as kubeprepare's installs do), pinned so the kubelet's image GC never removes them.
    async fn import_images(&self, images: &Archives) -> Result<()> {
        for node in &self.plan.nodes {
            let name = &node.name;
            super::engine::wait_for(&format!("containerd on {name}"), API_TIMEOUT, || async {
                Ok(self.exec(name, &["ctr", "version"]).await.ok())
            })
            .await?;
            let platform = format!("--platform=linux/{}", node.arch);
            let role = if node.is_edge() { StackRole::Edge } else { StackRole::Cloud };
            for file in images.of(role) {
                let path = format!("{BUNDLE_DIR}/{file}");
                self.exec(name, &["ctr", "-n", "k8s.io", "images", "import", &platform, &path])
                    .await
                    .with_context(|| format!("importing {file} on {name}"))?;
            }
            for reference in images.references(role) {
                self.exec(
                    name,
                    &["ctr", "-n", "k8s.io", "images", "label", reference, "io.cri-containerd.pinned=pinned"],
                )
                .await
                .with_context(|| format!("pinning {reference} on {name}"))?;
            }
        }
        Ok(())
    }

    async fn wait_ready(&self, names: &[String]) -> Result<()> {
        let nodes: Api<KubeNode> = Api::all(self.client.clone());
        let what = format!("nodes {} to be Ready", names.join(", "));
        super::engine::wait_for(&what, NODES_TIMEOUT, || async {
            let list = nodes.list(&ListParams::default()).await?;
            let ready = |n: &KubeNode| {
                n.status
                    .as_ref()
                    .and_then(|s| s.conditions.as_ref())
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
            };
            let up: Vec<&str> =
                list.items.iter().filter(|n| ready(n)).filter_map(|n| n.metadata.name.as_deref()).collect();
            Ok(names.iter().all(|n| up.contains(&n.as_str())).then_some(()))
        })
        .await
    }

    /// The role labels: as cloudcore does when an edge joins, the edge role (value `""`); as
    /// k3s does on its servers, the control-plane role (`"true"`). NodeRestriction forbids a
    /// kubelet setting `node-role.*` itself.
    async fn label_nodes(&self, edges: &[String]) -> Result<()> {
        let nodes: Api<KubeNode> = Api::all(self.client.clone());
        let edge = serde_json::json!({ "metadata": { "labels": { EDGE_ROLE: "" } } });
        let server = serde_json::json!({ "metadata": { "labels": { CONTROL_PLANE_LABEL: "true" } } });
        let servers = self.plan.nodes.iter().filter(|n| n.role == Role::Server).map(|n| (&n.name, &server));
        for (name, patch) in edges.iter().map(|e| (e, &edge)).chain(servers) {
            nodes
                .patch(name, &PatchParams::default(), &Patch::Merge(patch))
                .await
                .with_context(|| format!("labelling node {name}"))?;
        }
        Ok(())
    }

    /// Server-side apply every object of a rendered manifest (a `v1 List` or one object).
    pub async fn apply(&self, manifest: &str, file: &str) -> Result<()> {
        let doc: serde_json::Value =
            serde_yaml_ng::from_str(manifest).with_context(|| format!("{file} is not YAML"))?;
        let items = match doc.get("kind").and_then(|k| k.as_str()) {
            Some("List") => match doc["items"].as_array() {
                Some(items) if !items.is_empty() => items.clone(),
                _ => bail!("{file} is a List with no items: nothing to apply"),
            },
            _ => vec![doc],
        };
        self.apply_objects(&items, file).await
    }

    /// Server-side apply `objects` (what `file` names them in messages), as field manager
    /// `kubeprepare`, forcing conflicts (the harness owns the run's cluster).
    pub async fn apply_objects(&self, objects: &[serde_json::Value], file: &str) -> Result<()> {
        use kube::api::DynamicObject;
        use kube::core::GroupVersionKind;
        use kube::discovery::Scope;
        let params = PatchParams::apply("kubeprepare").force();
        for item in objects {
            let object: DynamicObject =
                serde_json::from_value(item.clone()).with_context(|| format!("an object of {file}"))?;
            let types =
                object.types.clone().with_context(|| format!("an object of {file} has no apiVersion or kind"))?;
            let (group, version) = types.api_version.rsplit_once('/').unwrap_or(("", &types.api_version));
            let gvk = GroupVersionKind::gvk(group, version, &types.kind);
            let (resource, caps) = kube::discovery::pinned_kind(&self.client, &gvk).await.with_context(|| {
                format!("{} {} of {file}: the API server does not serve it", types.api_version, types.kind)
            })?;
            let name =
                object.metadata.name.clone().with_context(|| format!("a {} of {file} has no name", types.kind))?;
            let api: Api<DynamicObject> = match (caps.scope, object.metadata.namespace.as_deref()) {
                (Scope::Namespaced, Some(ns)) => Api::namespaced_with(self.client.clone(), ns, &resource),
                (Scope::Namespaced, None) => bail!("{} {name} of {file} has no namespace", types.kind),
                (Scope::Cluster, _) => Api::all_with(self.client.clone(), &resource),
            };
            api.patch(&name, &params, &Patch::Apply(item))
                .await
                .with_context(|| format!("applying {} {name} of {file}", types.kind))?;
        }
        Ok(())
    }

    /// `http://127.0.0.1:<port>` reaching `port` of the pods behind `service` through the API
    /// server's port-forward: no port is published.
    pub async fn forward(&self, namespace: &str, service: &str, port: u16) -> Result<forward::Forward> {
        forward::start(self.client.clone(), namespace, service, port).await
    }

    /// Run `cmd` on `node`; fails with its output when it exits non-zero.
    pub async fn exec(&self, node: &str, cmd: &[&str]) -> Result<String> {
        let name = container_name(&self.run, node);
        let mut argv: Vec<&str> =
            vec!["/bin/sh", "-c", "\"$@\"; rc=$?; [ $rc = 0 ] || echo \"exit $rc\" >&2; exit $rc", "sh"];
        argv.extend_from_slice(cmd);
        let out = self.engine.exec(&name, &argv).await?;
        if out.lines().last().is_some_and(|l| l.starts_with("exit ")) {
            bail!("{cmd:?} on {node} failed:\n{out}");
        }
        Ok(out)
    }

    /// The last `lines` of each process log of `node`.
    pub async fn node_logs(&self, node: &str, lines: usize) -> Result<String> {
        process_logs(&self.engine, &container_name(&self.run, node), lines).await
    }

    /// Let the node containers outlive this value (`e2e --keep`): testcontainers removes a
    /// container when its handle drops; `e2e --sweep` removes these later.
    pub fn detach(&mut self) {
        for (_, c) in std::mem::take(&mut self.containers) {
            std::mem::forget(c);
        }
    }

    /// Remove every container, volume and the network of the run.
    pub async fn remove(&mut self) -> Result<super::engine::Removed> {
        let mut removed = 0;
        for (_, c) in std::mem::take(&mut self.containers) {
            if c.rm().await.is_ok() {
                removed += 1;
            }
        }
        // What testcontainers could not remove, and the network and volumes.
        let mut rest = self.engine.remove_run(&self.run).await?;
        rest.containers += removed;
        Ok(rest)
    }
}

/// The process logs of every node of a run's cluster (those still there) into
/// `logs/setup-<node>.log`; the files, relative to the run folder.
pub async fn save_logs(engine: &Engine, run: &str, shape: &Shape, run_dir: &Utf8Path) -> Vec<String> {
    let mut out = Vec::new();
    for (node, _) in shape.names() {
        let Ok(text) = process_logs(engine, &container_name(run, &node), 200).await else { continue };
        let name = format!("setup-{node}.log");
        let Ok(path) = super::scenario::join_safe(&run_dir.join("logs"), &name) else { continue };
        if std::fs::create_dir_all(run_dir.join("logs")).is_ok()
            && crate::atomic::write(&path, text.as_bytes(), false).is_ok()
        {
            out.push(format!("logs/{name}"));
        }
    }
    out
}

/// The last `lines` of each process log of a node's container.
async fn process_logs(engine: &Engine, container: &str, lines: usize) -> Result<String> {
    let n = lines.to_string();
    let script = "for f in /var/log/*.log; do echo \"== $f\"; tail -n \"$1\" \"$f\"; done";
    engine.exec(container, &["/bin/sh", "-c", script, "sh", &n]).await
}

/// The image archives of a bundle a node imports, by role.
struct Archives {
    /// Path in the bundle → (role, references); the sandbox's archive has no role (every node).
    files: BTreeMap<String, (Option<StackRole>, Vec<String>)>,
}

impl Archives {
    fn of(&self, role: StackRole) -> impl Iterator<Item = &str> {
        self.files.iter().filter(move |(_, (r, _))| r.is_none_or(|r| r == role)).map(|(p, _)| p.as_str())
    }

    fn references(&self, role: StackRole) -> impl Iterator<Item = &str> {
        self.files
            .values()
            .filter(move |(r, _)| r.is_none_or(|r| r == role))
            .flat_map(|(_, refs)| refs.iter().map(String::as_str))
    }
}

/// Read the bundle's bundle.json: its image archives (plain tar: `ctr` reads no zstd) by role,
/// and the one holding `sandbox`.
fn archives(bundle: &Utf8Path, sandbox: &str) -> Result<Archives> {
    use crate::bundle::{ImageFormat, Source};
    let file = bundle.join("bundle.json");
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
    let json: crate::bundle::BundleJson =
        serde_json::from_str(&text).with_context(|| format!("{file} is not a bundle.json this tool reads"))?;
    let mut files = BTreeMap::new();
    let mut found_sandbox = false;
    for (path, record) in &json.files {
        let (refs, format) = match &record.source {
            Source::Image { reference, format, .. } => (vec![reference.clone()], *format),
            Source::Images { images, format, .. } => (images.keys().cloned().collect(), *format),
            _ => continue,
        };
        if format != ImageFormat::Tar {
            bail!(
                "{path} in {bundle} is {format:?}: the kubernetes tier imports plain tar archives (bundle --image-format tar)"
            );
        }
        let role = [StackRole::Cloud, StackRole::Edge]
            .into_iter()
            .find(|r| path.starts_with(&format!("{}/", crate::render::scripts::image_dir(*r))));
        let holds_sandbox = refs.iter().any(|r| r == sandbox);
        found_sandbox |= holds_sandbox;
        files.insert(path.clone(), (if holds_sandbox { None } else { role }, refs));
    }
    if !found_sandbox {
        bail!("the bundle {bundle} holds no archive of the sandbox image {sandbox}");
    }
    Ok(Archives { files })
}

/// The harness' client: the admin token, the cluster CA, the server's certificate checked for
/// the name `kubernetes` while dialling its address.
fn client(server: IpAddr, secrets: &pki::Secrets) -> Result<kube::Client> {
    tls_provider();
    let url: http::Uri = format!("https://{server}:{APISERVER_PORT}").parse()?;
    let mut config = kube::Config::new(url);
    config.root_cert = Some(vec![secrets.ca_der.clone()]);
    config.tls_server_name = Some(APISERVER_TLS_NAME.to_string());
    config.auth_info.token = Some(secrets.token(pki::ADMIN_USER)?.to_string().into());
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = Some(Duration::from_secs(30));
    kube::Client::try_from(config).context("making the cluster's API client")
}

/// rustls' crypto for kube's client: two providers are compiled in (reqwest brings aws-lc-rs),
/// so the process chooses ring, as kube is built with, once.
fn tls_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A client that reaches nothing, until the server's address is known.
fn placeholder_client() -> Result<kube::Client> {
    tls_provider();
    let config = kube::Config::new("https://127.0.0.1:1".parse()?);
    kube::Client::try_from(config).context("making a placeholder API client")
}

/// The cluster of the stack's `[node]` image for `arch`: `agents` cloud agents, `edges` edges,
/// the local profile's probe image as every node's sandbox.
pub fn shape(stack: &crate::stack::Stack, agents: usize, edges: usize, arch: crate::stack::Arch) -> Result<Shape> {
    let node = stack.node.as_ref().context("stack.toml has no [node]: the kubernetes tier needs its node image")?;
    let kubernetes = stack.program("kubernetes")?.release.clone();
    let sandbox = stack
        .profile("local")?
        .enabled()
        .find(|c| c.kind == crate::stack::Kind::Probe)
        .and_then(|c| c.images.first())
        .context("the local profile has no probe component: its image is the nodes' sandbox image")?;
    Ok(Shape {
        image: node.image.to_string(),
        kubernetes,
        agents,
        edges,
        arch,
        sandbox_image: sandbox.reference.to_string(),
        node_grace_seconds: 20,
        edge_readonly_port: stack.settings.edge.kubelet_readonly,
        stream_port: stack.settings.cloudcore.stream,
        tunnel_port: stack.settings.cloudcore.tunnel,
        hub_ports: [stack.settings.cloudcore.cloudhub, stack.settings.cloudcore.cloudhub_https],
    })
}

/// Where the roles run, for messages.
pub fn describe(plan: &Plan) -> String {
    let count = |r: Role| plan.nodes.iter().filter(|n| n.role == r).count();
    format!(
        "Kubernetes {} : 1 server, {} agents, {} simulated KubeEdge edges",
        plan.kubernetes,
        count(Role::Agent),
        count(Role::Edge)
    )
}
