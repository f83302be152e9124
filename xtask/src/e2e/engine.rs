//! The container engine, through the Docker Engine API (bollard).
//!
//! Every network, container and volume the e2e creates carries [`LABEL_RUN`] (its
//! run id) and [`LABEL_PID`] (the harness process): [`Engine::remove_run`] removes a
//! run's resources, [`Engine::sweep`] those of runs whose process is gone.
//!
//! Nothing here pulls an image: containers are created from images loaded from the
//! bundle ([`Engine::load_archive`]), and [`Engine::pulls_since`] lets the run prove it.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use bollard::Docker;
use bollard::models::{
    ContainerCreateBody, EndpointSettings, HostConfig, Mount, MountTypeEnum, NetworkConnectRequest,
    NetworkCreateRequest, NetworkingConfig,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, EventsOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    ListVolumesOptionsBuilder, LogsOptionsBuilder, RemoveContainerOptionsBuilder, StatsOptionsBuilder,
};
use camino::Utf8Path;
use futures_util::StreamExt;

/// Label every e2e resource carries: the run id.
pub const LABEL_RUN: &str = "io.kubeprepare.e2e.run";
/// Label every e2e resource carries: the pid of the harness that made it.
pub const LABEL_PID: &str = "io.kubeprepare.e2e.pid";
/// Label every e2e resource carries: the harness' PID namespace (`pid:[4026531836]`): a pid means
/// something only in its namespace, so the sweep leaves other namespaces' runs alone.
pub const LABEL_PIDNS: &str = "io.kubeprepare.e2e.pidns";

/// This process' PID namespace, as `/proc/self/ns/pid` names it.
pub fn pid_namespace() -> String {
    std::fs::read_link("/proc/self/ns/pid")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

/// How to install and start Docker, for error messages.
pub const DOCKER_FIX: &str = "install and start Docker: on Debian/Ubuntu as root `apt-get install -y docker.io && (dockerd >/var/log/dockerd.log 2>&1 &)`; `cargo xtask e2e` does this itself when run as root";

#[derive(Clone)]
pub struct Engine {
    docker: Docker,
}

/// One container to create (from the plan).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ContainerSpec {
    pub name: String,
    pub image: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    pub cmd: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// `uid:gid` to run as instead of the image's user.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// A network name, or `container:<name>` to share that container's network namespace.
    pub network: String,
    /// DNS aliases on `network`.
    pub aliases: Vec<String>,
    /// Read-only bind mounts: host path → container path.
    pub binds: BTreeMap<String, String>,
    /// Anonymous-volume-free scratch: named volumes (created with the run's labels) → container path.
    pub volumes: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    /// `linux/amd64` or `linux/arm64`.
    pub platform: String,
}

/// A reference in full form (`docker.io/library/busybox:1.37.0`): `docker load` reports the
/// familiar one (`busybox:1.37.0`, `grafana/loki:3.7.6`), plans and stacks name the full one.
pub fn full_name(reference: &str) -> String {
    let (repo, tag, digest) = crate::bundle::verify::normalize(reference);
    let mut out = repo;
    if let Some(t) = tag {
        out.push(':');
        out.push_str(&t);
    }
    if let Some(d) = digest {
        out.push('@');
        out.push_str(&d);
    }
    out
}

impl Engine {
    /// Connect to the local engine (`DOCKER_HOST` or the default socket), at an API version it speaks.
    pub async fn connect() -> Result<Engine> {
        let docker = Docker::connect_with_local_defaults()
            .with_context(|| format!("cannot reach the Docker engine; {DOCKER_FIX}"))?;
        let docker = docker
            .negotiate_version()
            .await
            .with_context(|| format!("the Docker engine does not answer; {DOCKER_FIX}"))?;
        docker.ping().await.with_context(|| format!("the Docker engine does not answer a ping; {DOCKER_FIX}"))?;
        Ok(Engine { docker })
    }

    /// `docker load` one image archive of the bundle (plain tar, or tar.zst decompressed
    /// while streaming). Returns the images the engine reports loaded, in full form ([`full_name`]).
    pub async fn load_archive(&self, path: &Utf8Path) -> Result<Vec<String>> {
        let file = std::fs::File::open(path).with_context(|| format!("opening {path}"))?;
        let reader: Box<dyn std::io::Read + Send> = if path.as_str().ends_with(".zst") {
            Box::new(zstd::stream::read::Decoder::new(file).with_context(|| format!("reading {path} as zstd"))?)
        } else {
            Box::new(file)
        };
        let chunks = futures_util::stream::unfold(Some(reader), |reader| async move {
            let mut reader = reader?;
            let mut buf = vec![0u8; 1 << 20];
            match std::io::Read::read(&mut reader, &mut buf) {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), Some(reader)))
                }
                Err(e) => Some((Err(e), None)),
            }
        });
        let options = bollard::query_parameters::ImportImageOptionsBuilder::default().quiet(true).build();
        let mut out = Vec::new();
        let mut stream = self.docker.import_image_stream(options, chunks, None);
        while let Some(msg) = stream.next().await {
            let msg = msg.with_context(|| format!("docker load {path}"))?;
            if let Some(s) = msg.stream {
                if let Some(name) = s.trim().strip_prefix("Loaded image: ") {
                    out.push(full_name(name));
                }
            }
        }
        if out.is_empty() {
            bail!("docker load {path}: the engine loaded no named image (is it an image archive of the bundle?)");
        }
        Ok(out)
    }

    /// Whether the engine has `image` (by name), and its platform `os/arch`.
    pub async fn image_platform(&self, image: &str) -> Result<Option<String>> {
        match self.docker.inspect_image(image).await {
            Ok(i) => Ok(Some(format!("{}/{}", i.os.unwrap_or_default(), i.architecture.unwrap_or_default()))),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => Ok(None),
            Err(e) => Err(e).with_context(|| format!("inspecting image {image}")),
        }
    }

    /// Image pulls the engine recorded since `since` (unix seconds): the e2e must have none.
    pub async fn pulls_since(&self, since: i64) -> Result<Vec<String>> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
        let filters: HashMap<&str, Vec<&str>> = HashMap::from([("type", vec!["image"]), ("event", vec!["pull"])]);
        let options =
            EventsOptionsBuilder::default().since(&since.to_string()).until(&now.to_string()).filters(&filters).build();
        let mut events = self.docker.events(Some(options));
        let mut out = Vec::new();
        while let Some(e) = events.next().await {
            let e = e.context("reading the engine's events")?;
            out.push(e.actor.and_then(|a| a.id).unwrap_or_default());
        }
        Ok(out)
    }

    /// An internal network (no route out), labelled with the run.
    pub async fn create_network(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        let req = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".into()),
            internal: Some(true),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.docker.create_network(req).await.with_context(|| format!("creating network {name}"))?;
        Ok(())
    }

    /// The host-side address of a network's bridge (its gateway): how the harness reaches
    /// the containers, and where they reach the harness.
    pub async fn network_gateway(&self, name: &str) -> Result<std::net::IpAddr> {
        let gw = self
            .ipam(name)
            .await?
            .into_iter()
            .find_map(|c| c.gateway)
            .with_context(|| format!("network {name} has no gateway address"))?;
        gw.parse().with_context(|| format!("network {name}: gateway {gw:?} is not an IP address"))
    }

    /// The subnet of a network (CIDR), as its IPAM config gives it.
    pub async fn network_subnet(&self, name: &str) -> Result<String> {
        let subnet = self.ipam(name).await?.into_iter().find_map(|c| c.subnet);
        subnet.with_context(|| format!("network {name} has no subnet"))
    }

    /// A network's IPAM configs.
    async fn ipam(&self, name: &str) -> Result<Vec<bollard::models::IpamConfig>> {
        let n = self
            .docker
            .inspect_network(name, None::<bollard::query_parameters::InspectNetworkOptions>)
            .await
            .with_context(|| format!("inspecting network {name}"))?;
        Ok(n.ipam.and_then(|i| i.config).unwrap_or_default())
    }

    /// The host PID of a running container's first process.
    pub async fn pid(&self, name: &str) -> Result<u32> {
        let c = self
            .docker
            .inspect_container(name, None::<bollard::query_parameters::InspectContainerOptions>)
            .await
            .with_context(|| format!("inspecting container {name}"))?;
        c.state
            .and_then(|s| s.pid)
            .filter(|&p| p > 0)
            .and_then(|p| u32::try_from(p).ok())
            .with_context(|| format!("container {name} is not running"))
    }

    pub async fn create_volume(&self, name: &str, labels: &BTreeMap<String, String>) -> Result<()> {
        let req = bollard::models::VolumeCreateRequest {
            name: Some(name.to_string()),
            labels: Some(labels.clone().into_iter().collect()),
            ..Default::default()
        };
        self.docker.create_volume(req).await.with_context(|| format!("creating volume {name}"))?;
        Ok(())
    }

    /// Create and start a container; never pulls (a missing image is an error naming it).
    pub async fn run(&self, spec: &ContainerSpec) -> Result<()> {
        let mut mounts: Vec<Mount> = spec
            .binds
            .iter()
            .map(|(host, target)| Mount {
                target: Some(target.clone()),
                source: Some(host.clone()),
                typ: Some(MountTypeEnum::BIND),
                read_only: Some(true),
                ..Default::default()
            })
            .collect();
        mounts.extend(spec.volumes.iter().map(|(volume, target)| Mount {
            target: Some(target.clone()),
            source: Some(volume.clone()),
            typ: Some(MountTypeEnum::VOLUME),
            read_only: Some(false),
            ..Default::default()
        }));
        let shares_netns = spec.network.starts_with("container:");
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            entrypoint: spec.entrypoint.clone(),
            cmd: Some(spec.cmd.clone()),
            env: (!spec.env.is_empty()).then(|| spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            user: spec.user.clone(),
            labels: Some(spec.labels.clone().into_iter().collect()),
            host_config: Some(HostConfig {
                network_mode: Some(spec.network.clone()),
                mounts: Some(mounts),
                privileged: Some(false),
                ..Default::default()
            }),
            networking_config: (!shares_netns).then(|| NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    spec.network.clone(),
                    EndpointSettings { aliases: Some(spec.aliases.clone()), ..Default::default() },
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::default().name(&spec.name).platform(&spec.platform).build();
        match self.docker.create_container(Some(options), body).await {
            Ok(_) => {}
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, message }) => bail!(
                "creating container {}: {message}; the image {} must come from the bundle (it is never pulled)",
                spec.name,
                spec.image
            ),
            Err(e) => return Err(e).with_context(|| format!("creating container {}", spec.name)),
        }
        self.start(&spec.name).await
    }

    /// Start a container; starting a running one is not an error.
    pub async fn start(&self, name: &str) -> Result<()> {
        match self.docker.start_container(name, None::<bollard::query_parameters::StartContainerOptions>).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 304, .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("starting container {name}")),
        }
    }

    /// Kill a container at once (SIGKILL), as a power loss would; killing a stopped one is not an error.
    pub async fn kill(&self, name: &str) -> Result<()> {
        let options = bollard::query_parameters::KillContainerOptionsBuilder::default().signal("KILL").build();
        match self.docker.kill_container(name, Some(options)).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => Ok(()),
            Err(e) => Err(e).with_context(|| format!("killing container {name}")),
        }
    }

    pub async fn restart(&self, name: &str) -> Result<()> {
        let options = bollard::query_parameters::RestartContainerOptionsBuilder::default().t(5).build();
        self.docker.restart_container(name, Some(options)).await.with_context(|| format!("restarting container {name}"))
    }

    /// Whether a container is running, and its IP address on `network`.
    pub async fn address(&self, name: &str, network: &str) -> Result<Option<std::net::IpAddr>> {
        let c = self
            .docker
            .inspect_container(name, None::<bollard::query_parameters::InspectContainerOptions>)
            .await
            .with_context(|| format!("inspecting container {name}"))?;
        let ip = c
            .network_settings
            .and_then(|n| n.networks)
            .and_then(|mut n| n.remove(network))
            .and_then(|e| e.ip_address)
            .filter(|ip| !ip.is_empty());
        ip.map(|ip| ip.parse().with_context(|| format!("container {name}: address {ip:?}"))).transpose()
    }

    /// `Ok` while the container runs; once it has stopped, an error with its exit code and the
    /// end of its log (what a crashed component says about why).
    pub async fn ensure_running(&self, name: &str) -> Result<()> {
        let c = self
            .docker
            .inspect_container(name, None::<bollard::query_parameters::InspectContainerOptions>)
            .await
            .with_context(|| format!("inspecting container {name}"))?;
        let state = c.state.unwrap_or_default();
        if state.running == Some(true) {
            return Ok(());
        }
        let log = self.logs(name, 15).await.unwrap_or_else(|e| format!("(no log: {e:#})"));
        bail!(
            "container {name} is not running (exit code {}); its log ends:\n{}",
            state.exit_code.map(|c| c.to_string()).unwrap_or_else(|| "unknown".into()),
            log.trim_end()
        )
    }

    pub async fn connect_network(&self, network: &str, container: &str, aliases: &[String]) -> Result<()> {
        let req = NetworkConnectRequest {
            container: container.to_string(),
            endpoint_config: Some(EndpointSettings { aliases: Some(aliases.to_vec()), ..Default::default() }),
        };
        self.docker
            .connect_network(network, req)
            .await
            .with_context(|| format!("connecting {container} to network {network}"))
    }

    /// One stats sample of a running container: (memory working set in bytes, total CPU ns,
    /// system CPU ns, online CPUs). The working set is usage minus inactive file cache, as
    /// `docker stats` and the kubelet count it.
    pub async fn stats_once(&self, name: &str) -> Result<Option<StatsSample>> {
        let options = StatsOptionsBuilder::default().stream(false).one_shot(true).build();
        let mut s = self.docker.stats(name, Some(options));
        let Some(r) = s.next().await else { return Ok(None) };
        let r = match r {
            Ok(r) => r,
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404 | 409, .. }) => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading stats of {name}")),
        };
        let mem = r.memory_stats.unwrap_or_default();
        let usage = mem.usage.unwrap_or(0);
        let stats = mem.stats.unwrap_or_default();
        let inactive = stats.get("inactive_file").or_else(|| stats.get("total_inactive_file")).copied().unwrap_or(0);
        let cpu = r.cpu_stats.unwrap_or_default();
        let total = cpu.cpu_usage.and_then(|u| u.total_usage).unwrap_or(0);
        if usage == 0 && total == 0 {
            return Ok(None); // not running
        }
        let read = r.read.map(std::time::SystemTime::from);
        Ok(Some(StatsSample { memory_bytes: usage.saturating_sub(inactive), cpu_total_ns: total, read }))
    }

    /// The last `tail` lines of a container's stdout and stderr.
    pub async fn logs(&self, name: &str, tail: usize) -> Result<String> {
        let options = LogsOptionsBuilder::default().stdout(true).stderr(true).tail(&tail.to_string()).build();
        let mut s = self.docker.logs(name, Some(options));
        let mut out = String::new();
        while let Some(chunk) = s.next().await {
            out.push_str(&chunk.with_context(|| format!("reading logs of {name}"))?.to_string());
        }
        Ok(out)
    }

    /// Run `cmd` in a running container (no shell: the argv as given); its stdout and stderr.
    pub async fn exec(&self, name: &str, cmd: &[&str]) -> Result<String> {
        let config = bollard::exec::CreateExecOptions {
            cmd: Some(cmd.to_vec()),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let what = || format!("running {cmd:?} in {name}");
        let exec = self.docker.create_exec(name, config).await.with_context(what)?;
        let mut out = String::new();
        if let bollard::exec::StartExecResults::Attached { mut output, .. } =
            self.docker.start_exec(&exec.id, None).await.with_context(what)?
        {
            while let Some(chunk) = output.next().await {
                out.push_str(&chunk.with_context(what)?.to_string());
            }
        }
        Ok(out)
    }

    /// Remove every container, network and volume labelled with `run` (containers first).
    pub async fn remove_run(&self, run: &str) -> Result<Removed> {
        self.remove_where(|labels| labels.get(LABEL_RUN).map(String::as_str) == Some(run)).await
    }

    /// Remove the resources of earlier runs whose harness process is gone: runs of this PID
    /// namespace whose pid no longer exists. Runs of another namespace (another container sharing
    /// this engine) are left alone: their pids cannot be checked from here.
    pub async fn sweep(&self) -> Result<Removed> {
        let ours = pid_namespace();
        self.remove_where(|labels| {
            labels.contains_key(LABEL_RUN)
                && labels.get(LABEL_PIDNS).is_none_or(|ns| *ns == ours)
                && labels
                    .get(LABEL_PID)
                    .and_then(|p| p.parse::<u32>().ok())
                    .is_none_or(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists())
        })
        .await
    }

    /// The compose tier reaches containers at their bridge addresses, listens on the bridge's
    /// host address and bind-mounts project files: it needs an engine on this host, not rootless.
    pub async fn check_local(&self) -> Result<()> {
        let why = "the compose tier needs a rootful Docker engine on this host: it reaches containers at their bridge \
                   addresses and bind-mounts project files";
        if let Some(host) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.starts_with("unix://")) {
            bail!("DOCKER_HOST is {host}: {why}; unset it to use the local engine");
        }
        let info = self.docker.info().await.context("asking the Docker engine about itself")?;
        if info.security_options.unwrap_or_default().iter().any(|o| o.contains("rootless")) {
            bail!("the Docker engine runs rootless: {why}");
        }
        if info.operating_system.unwrap_or_default().contains("Docker Desktop") {
            bail!("the Docker engine is Docker Desktop's (in a VM): {why}");
        }
        Ok(())
    }

    async fn remove_where(&self, select: impl Fn(&HashMap<String, String>) -> bool) -> Result<Removed> {
        let filters: HashMap<&str, Vec<&str>> = HashMap::from([("label", vec![LABEL_RUN])]);
        let mut removed = Removed::default();
        // Every resource is tried; what could not be removed is reported at the end.
        let mut failed = Vec::new();
        let cs = self
            .docker
            .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
            .await
            .context("listing containers")?;
        // Containers sharing another's network namespace go first.
        let mut cs: Vec<_> = cs.into_iter().filter(|c| c.labels.as_ref().is_some_and(&select)).collect();
        cs.sort_by_key(|c| {
            !c.host_config.as_ref().and_then(|h| h.network_mode.as_ref()).is_some_and(|m| m.starts_with("container:"))
        });
        for c in cs {
            let Some(id) = c.id else { continue };
            let options = RemoveContainerOptionsBuilder::default().force(true).v(true).build();
            match self.docker.remove_container(&id, Some(options)).await {
                Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                    removed.containers += 1
                }
                // Already being removed (testcontainers drops its handles on a signal too): wait
                // until it is gone, so its network and volumes are free to remove.
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 409, .. }) => {
                    let gone = wait_for(&format!("container {id} to be removed"), Duration::from_secs(60), || async {
                        match self.docker.inspect_container(&id, None).await {
                            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                                Ok(Some(()))
                            }
                            _ => Ok(None),
                        }
                    })
                    .await;
                    match gone {
                        Ok(()) => removed.containers += 1,
                        Err(e) => failed.push(format!("{e:#}")),
                    }
                }
                Err(e) => failed.push(format!("removing container {id}: {e}")),
            }
        }
        let ns = self
            .docker
            .list_networks(Some(ListNetworksOptionsBuilder::default().filters(&filters).build()))
            .await
            .context("listing networks")?;
        for n in ns.into_iter().filter(|n| n.labels.as_ref().is_some_and(&select)) {
            let Some(name) = n.name else { continue };
            match self.docker.remove_network(&name).await {
                Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                    removed.networks += 1
                }
                Err(e) => failed.push(format!("removing network {name}: {e}")),
            }
        }
        let vs = self
            .docker
            .list_volumes(Some(ListVolumesOptionsBuilder::default().filters(&filters).build()))
            .await
            .context("listing volumes")?;
        for v in vs.volumes.unwrap_or_default().into_iter().filter(|v| select(&v.labels)) {
            match self.docker.remove_volume(&v.name, None::<bollard::query_parameters::RemoveVolumeOptions>).await {
                Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
                    removed.volumes += 1
                }
                Err(e) => failed.push(format!("removing volume {}: {e}", v.name)),
            }
        }
        if !failed.is_empty() {
            bail!("removed {removed}, but not everything: {}", failed.join("; "));
        }
        Ok(removed)
    }
}

/// One stats reading.
#[derive(Debug, Clone, Copy)]
pub struct StatsSample {
    pub memory_bytes: u64,
    pub cpu_total_ns: u64,
    /// When the engine took it (its own `read` time), which can be a second or more before
    /// its answer arrives.
    pub read: Option<std::time::SystemTime>,
}

/// What a cleanup removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Removed {
    pub containers: usize,
    pub networks: usize,
    pub volumes: usize,
}

impl std::fmt::Display for Removed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} containers, {} networks, {} volumes", self.containers, self.networks, self.volumes)
    }
}

/// Poll `check` until it returns `Some`, or fail after `timeout` with the last state it saw.
pub async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last_err = None;
    loop {
        match check().await {
            Ok(Some(v)) => return Ok(v),
            Ok(None) => {}
            Err(e) => last_err = Some(e),
        }
        if tokio::time::Instant::now() >= deadline {
            let why = last_err.map(|e| format!(": last error: {e:#}")).unwrap_or_default();
            bail!("timed out after {:?} waiting for {what}{why}", timeout);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_names_compare_in_full_form() {
        for (familiar, full) in [
            ("busybox:1.37.0", "docker.io/library/busybox:1.37.0"),
            ("grafana/loki:3.7.6", "docker.io/grafana/loki:3.7.6"),
            ("docker.io/library/busybox:1.37.0", "docker.io/library/busybox:1.37.0"),
            (
                "127.0.0.1:5000/kubeprepare-fixtures/probe:bookworm",
                "127.0.0.1:5000/kubeprepare-fixtures/probe:bookworm",
            ),
            ("quay.io/prometheus/prometheus:v3.14.0", "quay.io/prometheus/prometheus:v3.14.0"),
            ("localhost/x:1", "localhost/x:1"),
        ] {
            assert_eq!(full_name(familiar), full, "{familiar}");
        }
    }
}
