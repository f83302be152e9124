//! The k3s tier's plan: every image, container, file and command of a run, as data. Pure.
//!
//! Each node is a container of one host image: our node image's Debian userland (with containerd,
//! runc and the CNI plugins) plus systemd as PID 1, as a kubeprepare host has. Into it go the
//! release binaries, copied out of the release images and never rebuilt: `k3s` from
//! `rancher/k3s`, `keadm` and `edgecore` from `kubeedge/installation-package`. Then the cloud is
//! installed as kubeprepare installs it: k3s as a systemd unit with its air-gap images in its
//! auto-import folder and every registry pointed at a closed port, cloudcore by `keadm init` with
//! the server's address advertised, the bundle by its own `install-observability.sh` (run twice:
//! the second run must change nothing). Each edge imports its images with
//! `install-observability-edge.sh --images-only`, is joined by `keadm join` with the flags that
//! script prints (`--print-join-args`), then runs the script (twice). Edges are behind the NAT
//! of the kubernetes tier (`cluster::plan`, [`Firewall::Nat`]).
//!
//! Values known only at run time are written `{name}` in commands ([`RUNTIME_VALUES`]).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use serde::Serialize;

use crate::e2e::cluster::plan::{self as cluster, File, Firewall};
use crate::stack::{Arch, Backend, Cell, Stack};

/// Where the bundle is mounted (read-only) on every node.
pub const BUNDLE_DIR: &str = "/opt/kubeprepare/bundle";
/// Where the tier's image archives are mounted (read-only) on every node.
pub const TIER_IMAGES_DIR: &str = "/opt/kubeprepare/tier-images";
/// Where the release binaries are mounted (read-only) on every node, and linked from /usr/local/bin.
pub const RELEASE_BIN_DIR: &str = "/opt/kubeprepare/bin";
/// k3s's auto-import folder: archives here are imported into its containerd at start.
pub const K3S_IMAGES_DIR: &str = "/var/lib/rancher/k3s/agent/images";
pub const K3S_KUBECONFIG: &str = "/etc/rancher/k3s/k3s.yaml";
/// Every registry's only endpoint: a closed port on loopback, so a pull fails at once.
pub const DEAD_REGISTRY: &str = "http://127.0.0.1:1";
/// The node-monitor grace period, seconds: short, so a cut edge turns NotReady soon.
pub const NODE_GRACE_SECONDS: u32 = 20;
/// The values a run fills in: the server's address on the run's network, the token cloudcore
/// issues (`keadm gettoken`'s Secret), and the harness' alert receiver.
pub const RUNTIME_VALUES: [&str; 3] = ["{server_ip}", "{token}", "{webhook_url}"];

/// The release images of a cell, by tag. The tier's image job pulls them (on GitHub), records
/// their digests and saves them as the [`Archive`]s; a leg loads only those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Images {
    /// KubeEdge's release tag (`v1.22.0`), what keadm's `--kubeedge-version` takes.
    pub kubeedge: String,
    pub k3s: String,
    pub cloudcore: String,
    pub iptables_manager: String,
    pub installation_package: String,
    /// edgecore's default sandbox image.
    pub pause: String,
}

impl Images {
    /// The images of `cell` (a k3s cell: it has k3s and KubeEdge versions).
    pub fn of(cell: &Cell) -> Result<Images> {
        if cell.backend != Backend::K3s {
            bail!("the k3s plan is for k3s cells, not {cell}");
        }
        let k3s = cell.k3s.as_ref().with_context(|| format!("cell {cell} has no k3s version"))?;
        let kubeedge = cell.kubeedge.as_ref().with_context(|| format!("cell {cell} has no KubeEdge version"))?;
        // Docker tags spell k3s's `+` as `-` (v1.34.2+k3s1 → v1.34.2-k3s1).
        let k3s_tag = k3s.as_str().replace('+', "-");
        let ke = format!("v{}", kubeedge.as_str().trim_start_matches('v'));
        Ok(Images {
            kubeedge: ke.clone(),
            k3s: format!("docker.io/rancher/k3s:{k3s_tag}"),
            cloudcore: format!("docker.io/kubeedge/cloudcore:{ke}"),
            iptables_manager: format!("docker.io/kubeedge/iptables-manager:{ke}"),
            installation_package: format!("docker.io/kubeedge/installation-package:{ke}"),
            pause: "docker.io/kubeedge/pause:3.6".into(),
        })
    }
}

/// One archive of the tier's images (in the folder a leg is handed), and what it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Archive {
    pub file: String,
    /// `k3s-release`: k3s's own air-gap archive, from its GitHub release (checked against the
    /// release's sha256sum file); `docker-save`: the listed images, saved by the image job.
    pub source: &'static str,
    pub images: Vec<String>,
}

/// The image every node runs: the node image with systemd, for the units k3s's and keadm's
/// installs write, and PyYAML, which the edge script merges edgecore's config with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostImage {
    pub reference: String,
    pub base: String,
    pub debian: Vec<String>,
}

/// A bind mount from the machine running the harness.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bind {
    pub source: String,
    pub target: String,
    pub read_only: bool,
}

/// Binaries copied out of a release image (created, never started) into a folder of the
/// machine running the harness, which every node mounts at [`RELEASE_BIN_DIR`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extract {
    pub image: String,
    pub paths: Vec<String>,
    pub into: String,
}

/// A node container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Container {
    pub name: String,
    pub hostname: String,
    pub role: cluster::Role,
    pub image: String,
    pub cmd: Vec<String>,
    pub env: BTreeMap<String, String>,
    /// `--privileged` (GitHub's runners allow it; systemd, k3s and edgecore need it).
    pub privileged: bool,
    pub tmpfs: Vec<String>,
    /// Target → the run's volume (containerd and k3s roots: overlayfs cannot sit on overlayfs).
    pub volumes: BTreeMap<String, String>,
    pub binds: Vec<Bind>,
    /// Absolute path → file, copied in before start.
    pub files: BTreeMap<String, File>,
}

/// What the run does, in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "step")]
pub enum Step {
    /// Start a container and wait until systemd answers in it.
    Start { container: String },
    /// Run a command in a container; a non-zero exit fails the run, with its output.
    Exec { on: String, argv: Vec<String>, why: String },
    /// Run a command twice; the second run must succeed and change no object in the cluster
    /// (every object's resourceVersion the same before and after).
    Twice { on: String, argv: Vec<String>, why: String },
    /// Wait (through the API) until these nodes are Ready.
    NodesReady { nodes: Vec<String> },
    /// Wait for a Secret's key; its value fills `into` in later steps.
    Secret { namespace: String, name: String, key: String, into: String },
    /// The edge script's `--print-join-args` must print exactly the `--set` flags of the join.
    JoinArgs { on: String, expected: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub cell: Cell,
    pub network: String,
    pub images: Images,
    pub archives: Vec<Archive>,
    pub host_image: HostImage,
    pub extract: Vec<Extract>,
    pub containers: Vec<Container>,
    pub steps: Vec<Step>,
}

/// The plan of run `run` of k3s `cell` with `edges` edges, the bundle at `bundle` and the tier's
/// archives at `tier_images` (folders of the machine running the harness).
pub fn plan(stack: &Stack, cell: &Cell, run: &str, edges: usize, bundle: &str, tier_images: &str) -> Result<Plan> {
    let images = Images::of(cell)?;
    let node = stack.node.as_ref().context("stack.toml has no [node]: the k3s tier's host image is built on it")?;
    let arch = cell.arch;
    let archives = archives(&images, arch);
    let host_image = HostImage {
        reference: format!(
            "kubeprepare.local/e2e/k3s-host:{}",
            node.image.to_string().rsplit(':').next().unwrap_or("latest")
        ),
        base: node.image.to_string(),
        debian: ["systemd", "systemd-sysv", "dbus", "python3-yaml"].map(String::from).to_vec(),
    };
    let extract = vec![
        Extract { image: images.k3s.clone(), paths: vec!["/bin/k3s".into()], into: release_bin(tier_images) },
        Extract {
            image: images.installation_package.clone(),
            paths: vec!["/usr/local/bin/keadm".into(), "/usr/local/bin/edgecore".into()],
            into: release_bin(tier_images),
        },
    ];
    let ports = &stack.settings.cloudcore;
    let mut containers = Vec::new();
    let mut steps = Vec::new();
    let host = |name: &str, role: cluster::Role| {
        host_container(run, name, role, &host_image.reference, bundle, tier_images, &archives)
    };

    // The cloud: a k3s server and agent as units, as k3s's installer writes them.
    let token = format!("{run}-k3s");
    let mut server = host("server", cluster::Role::Server);
    let server_args = [
        "server".to_string(),
        "--node-name=server".into(),
        "--tls-san=server".into(),
        format!("--token={token}"),
        "--disable=traefik,servicelb,metrics-server".into(),
        "--disable-default-registry-endpoint".into(),
        // The API server dials edge kubelets directly (their tunnel ports, DNATed by
        // iptables-manager to cloudstream): k3s's default `agent` mode refuses a node without a
        // k3s agent tunnel, which an edge is.
        "--egress-selector-mode=disabled".into(),
        format!("--kube-controller-manager-arg=node-monitor-grace-period={NODE_GRACE_SECONDS}s"),
        "--write-kubeconfig-mode=0644".into(),
    ];
    unit(&mut server, "k3s", "k3s", &server_args);
    let mut agent = host("agent-0", cluster::Role::Agent);
    let agent_args = [
        "agent".to_string(),
        "--node-name=agent-0".into(),
        format!("--server=https://server:{}", crate::render::ports::KUBE_APISERVER),
        format!("--token={token}"),
        "--disable-default-registry-endpoint".into(),
    ];
    unit(&mut agent, "k3s-agent", "k3s", &agent_args);
    for c in [&mut server, &mut agent] {
        registries(c);
        c.volumes.insert("/var/lib/rancher/k3s".into(), format!("{run}-{}-k3s", c.hostname));
    }
    steps.push(Step::Start { container: server.name.clone() });
    steps.push(Step::Exec {
        on: "server".into(),
        argv: systemctl_start(&["k3s"]),
        why: "start k3s (it imports its auto-import folder)".into(),
    });
    steps.push(Step::NodesReady { nodes: vec!["server".into()] });
    steps.push(Step::Start { container: agent.name.clone() });
    steps.push(Step::Exec {
        on: "agent-0".into(),
        argv: systemctl_start(&["k3s-agent"]),
        why: "start the k3s agent".into(),
    });
    steps.push(Step::NodesReady { nodes: vec!["server".into(), "agent-0".into()] });

    // cloudcore, as kubeprepare installs it.
    let keadm_init = vec![
        "keadm".to_string(),
        "init".into(),
        "--advertise-address={server_ip}".into(),
        format!("--kubeedge-version={}", images.kubeedge),
        format!("--kube-config={K3S_KUBECONFIG}"),
        "--set=cloudCore.modules.cloudStream.enable=true".into(),
        // No MQTT broker on edges: its image is not in the bundle, and nothing here uses it.
        "--set=mosquitto.enable=false".into(),
        // keadm's own wait is 60 s; the run waits for the token instead (as KubeEdge's e2e does).
        "--force".into(),
    ];
    steps.push(Step::Exec { on: "server".into(), argv: keadm_init, why: "install cloudcore (keadm init)".into() });
    steps.push(Step::Secret {
        namespace: "kubeedge".into(),
        name: "tokensecret".into(),
        key: "tokendata".into(),
        into: "{token}".into(),
    });
    steps.push(Step::Twice {
        on: "server".into(),
        argv: vec![
            "bash".into(),
            format!("{BUNDLE_DIR}/scripts/install-observability.sh"),
            "--alert-webhook-url={webhook_url}".into(),
        ],
        why: "install the bundle's cloud side with its own script".into(),
    });
    containers.push(server);
    containers.push(agent);

    // The edges: NATed, joined by keadm with the bundle's flags.
    let ctx = crate::render::Ctx::new(stack, &cell.profile, arch)?;
    let set: Vec<String> =
        crate::render::kubeedge::edgecore_set_args(&ctx).into_iter().map(|l| format!("--set={l}")).collect();
    let edge_script = format!("{BUNDLE_DIR}/scripts/install-observability-edge.sh");
    for i in 1..=edges {
        let name = format!("edge-{i}");
        let mut edge = host(&name, cluster::Role::Edge);
        edge.volumes.insert("/var/lib/containerd".into(), format!("{run}-{name}-containerd"));
        edge.files.insert(
            "/etc/containerd/config.toml".into(),
            File { mode: 0o644, text: cluster::containerd_config(&images.pause)? },
        );
        edge.files.insert(
            "/etc/cni/net.d/10-kubeprepare.conflist".into(),
            File { mode: 0o644, text: cluster::cni_conflist(&format!("10.42.{}.0/24", 100 + i))? },
        );
        let nat = format!(
            "#!/bin/sh\n# An edge behind NAT (cargo xtask e2e, k3s tier); do not edit.\nset -eu\n{}",
            cluster::firewall(Firewall::Nat)
        );
        edge.files.insert("/usr/local/sbin/edge-nat".into(), File { mode: 0o755, text: nat });
        edge.files.insert(
            "/etc/systemd/system/edge-nat.service".into(),
            File { mode: 0o644, text: oneshot_unit("the edge's NAT: no connection in", "/usr/local/sbin/edge-nat") },
        );
        edge.files.insert(
            "/etc/systemd/system/containerd.service".into(),
            File {
                mode: 0o644,
                text: service_unit("containerd", "/usr/local/bin/containerd --config=/etc/containerd/config.toml"),
            },
        );
        steps.push(Step::Start { container: edge.name.clone() });
        steps.push(Step::Exec {
            on: name.clone(),
            argv: systemctl_start(&["edge-nat", "containerd"]),
            why: "close the edge to new connections, then start containerd".into(),
        });
        steps.push(Step::Exec {
            on: name.clone(),
            argv: vec!["bash".into(), edge_script.clone(), "--images-only".into()],
            why: "import the bundle's edge images (before the join: the edge pulls nothing)".into(),
        });
        steps.push(Step::Exec {
            on: name.clone(),
            argv: vec![
                "ctr".into(),
                "-n".into(),
                "k8s.io".into(),
                "images".into(),
                "import".into(),
                format!("--platform=linux/{arch}"),
                format!("{TIER_IMAGES_DIR}/{}", edge_archive(arch)),
            ],
            why: "import edgecore's sandbox and keadm's installation package".into(),
        });
        steps.push(Step::JoinArgs { on: name.clone(), expected: set.clone() });
        let mut join = vec![
            "keadm".to_string(),
            "join".into(),
            format!("--cloudcore-ipport={{server_ip}}:{}", ports.cloudhub),
            format!("--certport={}", ports.cloudhub_https),
            "--token={token}".into(),
            format!("--edgenode-name={name}"),
            format!("--kubeedge-version={}", images.kubeedge),
            "--remote-runtime-endpoint=unix:///run/containerd/containerd.sock".into(),
            "--cgroupdriver=cgroupfs".into(),
            format!("--labels={}=", cluster::EDGE_ROLE),
        ];
        join.extend(set.iter().cloned());
        steps.push(Step::Exec { on: name.clone(), argv: join, why: "join the edge (keadm join)".into() });
        steps.push(Step::NodesReady { nodes: vec![name.clone()] });
        steps.push(Step::Twice {
            on: name.clone(),
            argv: vec!["bash".into(), edge_script.clone()],
            why: "prepare the edge with the bundle's own script".into(),
        });
        containers.push(edge);
    }
    Ok(Plan {
        cell: cell.clone(),
        network: format!("{run}-k3s"),
        images,
        archives,
        host_image,
        extract,
        containers,
        steps,
    })
}

fn release_bin(tier_images: &str) -> String {
    format!("{tier_images}/bin")
}

fn cloud_archive(arch: Arch) -> String {
    format!("kubeedge-cloud-{arch}.tar")
}

fn edge_archive(arch: Arch) -> String {
    format!("kubeedge-edge-{arch}.tar")
}

fn archives(images: &Images, arch: Arch) -> Vec<Archive> {
    vec![
        Archive { file: format!("k3s-airgap-images-{arch}.tar.zst"), source: "k3s-release", images: Vec::new() },
        Archive {
            file: cloud_archive(arch),
            source: "docker-save",
            images: vec![images.cloudcore.clone(), images.iptables_manager.clone()],
        },
        Archive {
            file: edge_archive(arch),
            source: "docker-save",
            images: vec![images.pause.clone(), images.installation_package.clone()],
        },
    ]
}

fn host_container(
    run: &str,
    name: &str,
    role: cluster::Role,
    image: &str,
    bundle: &str,
    tier_images: &str,
    archives: &[Archive],
) -> Container {
    let ro = |source: String, target: String| Bind { source, target, read_only: true };
    let mut binds = vec![
        ro(bundle.to_string(), BUNDLE_DIR.into()),
        ro(tier_images.to_string(), TIER_IMAGES_DIR.into()),
        ro(release_bin(tier_images), RELEASE_BIN_DIR.into()),
    ];
    // k3s's nodes import its air-gap images and cloudcore's at start.
    if role != cluster::Role::Edge {
        for a in archives.iter().filter(|a| !a.file.starts_with("kubeedge-edge")) {
            binds.push(ro(format!("{tier_images}/{}", a.file), format!("{K3S_IMAGES_DIR}/{}", a.file)));
        }
    }
    let links =
        ["k3s", "keadm", "edgecore"].map(|b| format!("ln -sf {RELEASE_BIN_DIR}/{b} /usr/local/bin/{b}")).join(" && ");
    let mut files = BTreeMap::new();
    files.insert(
        "/etc/systemd/system/release-bin.service".into(),
        File { mode: 0o644, text: oneshot_unit("link the release binaries", &format!("/bin/sh -c '{links}'")) },
    );
    Container {
        name: format!("{run}-{name}"),
        hostname: name.to_string(),
        role,
        image: image.to_string(),
        cmd: vec!["/sbin/init".into()],
        env: BTreeMap::from([("container".to_string(), "docker".to_string())]),
        privileged: true,
        tmpfs: ["/run", "/run/lock", "/tmp"].map(String::from).to_vec(),
        volumes: BTreeMap::new(),
        binds,
        files,
    }
}

/// A k3s unit as k3s's installer writes it (`Type=notify`, restarted always), running `bin args`.
fn unit(c: &mut Container, unit: &str, bin: &str, args: &[String]) {
    let exec =
        std::iter::once(format!("/usr/local/bin/{bin}")).chain(args.iter().cloned()).collect::<Vec<_>>().join(" ");
    let text = format!(
        "# Generated by cargo xtask e2e (k3s tier); do not edit.\n[Unit]\nDescription={unit}\nAfter=network-online.target release-bin.service\n\n\
         [Service]\nType=notify\nDelegate=yes\nKillMode=process\nLimitNOFILE=1048576\nTasksMax=infinity\nTimeoutStartSec=0\n\
         Restart=always\nRestartSec=5s\nExecStart={exec}\n\n[Install]\nWantedBy=multi-user.target\n"
    );
    c.files.insert(format!("/etc/systemd/system/{unit}.service"), File { mode: 0o644, text });
}

fn service_unit(name: &str, exec: &str) -> String {
    format!(
        "# Generated by cargo xtask e2e (k3s tier); do not edit.\n[Unit]\nDescription={name}\nAfter=network.target edge-nat.service\n\n\
         [Service]\nDelegate=yes\nKillMode=process\nLimitNOFILE=1048576\nRestart=always\nRestartSec=5s\nExecStart={exec}\n\n\
         [Install]\nWantedBy=multi-user.target\n"
    )
}

fn oneshot_unit(what: &str, exec: &str) -> String {
    format!(
        "# Generated by cargo xtask e2e (k3s tier); do not edit.\n[Unit]\nDescription={what}\n\n\
         [Service]\nType=oneshot\nRemainAfterExit=yes\nExecStart={exec}\n\n[Install]\nWantedBy=multi-user.target\n"
    )
}

fn systemctl_start(units: &[&str]) -> Vec<String> {
    let mut argv = vec!["systemctl".to_string(), "enable".into(), "--now".into(), "release-bin".into()];
    argv.extend(units.iter().map(|u| u.to_string()));
    argv
}

/// Every registry's only endpoint is [`DEAD_REGISTRY`] (with `--disable-default-registry-endpoint`,
/// containerd never falls back to the registry itself).
fn registries(c: &mut Container) {
    let text = format!(
        "# Generated by cargo xtask e2e (k3s tier); do not edit. Every pull fails at once.\nmirrors:\n  \"*\":\n    endpoint:\n      - \"{DEAD_REGISTRY}\"\n"
    );
    c.files.insert("/etc/rancher/k3s/registries.yaml".into(), File { mode: 0o644, text });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Version;

    fn cell(arch: Arch) -> Cell {
        Cell {
            backend: Backend::K3s,
            profile: "upstream".into(),
            arch,
            k3s: Some(Version::try_from("v1.34.2+k3s1".to_string()).unwrap()),
            kubeedge: Some(Version::try_from("1.22.0".to_string()).unwrap()),
        }
    }

    fn stack() -> Stack {
        crate::stack::load(&crate::paths::stack_file()).unwrap()
    }

    #[test]
    fn images_are_the_release_tags_of_the_cell() {
        let i = Images::of(&cell(Arch::Amd64)).unwrap();
        assert_eq!(i.k3s, "docker.io/rancher/k3s:v1.34.2-k3s1");
        assert_eq!(i.cloudcore, "docker.io/kubeedge/cloudcore:v1.22.0");
        let mut c = cell(Arch::Amd64);
        c.backend = Backend::Kubernetes;
        assert!(Images::of(&c).unwrap_err().to_string().contains("k3s cells"));
    }

    #[test]
    fn the_edges_join_with_the_bundle_flags_behind_nat_and_pull_nothing() {
        let s = stack();
        let p = plan(&s, &cell(Arch::Amd64), "RUN", 2, "/b", "/t").unwrap();
        assert_eq!(
            p.containers.iter().map(|c| c.hostname.as_str()).collect::<Vec<_>>(),
            ["server", "agent-0", "edge-1", "edge-2"]
        );
        let ctx = crate::render::Ctx::new(&s, "upstream", Arch::Amd64).unwrap();
        let set = crate::render::kubeedge::edgecore_set_args(&ctx);
        assert!(!set.is_empty());
        let join = p
            .steps
            .iter()
            .find_map(|st| match st {
                Step::Exec { on, argv, .. } if on == "edge-1" && argv[..2] == ["keadm", "join"] => Some(argv.clone()),
                _ => None,
            })
            .expect("edge-1 is joined by keadm");
        for l in &set {
            assert!(join.contains(&format!("--set={l}")), "{l} missing from {join:?}");
        }
        let edge = &p.containers[2];
        assert!(edge.files["/usr/local/sbin/edge-nat"].text.contains("-j DROP"), "the edge is behind NAT");
        assert!(edge.files["/etc/containerd/config.toml"].text.contains("config_path = \"\""), "no registry is asked");
        let server = &p.containers[0];
        assert!(server.files["/etc/rancher/k3s/registries.yaml"].text.contains(DEAD_REGISTRY));
        assert!(server.files["/etc/systemd/system/k3s.service"].text.contains("--disable-default-registry-endpoint"));
        // The install is run twice, and checked to change nothing.
        assert!(p.steps.iter().any(|st| matches!(st, Step::Twice { on, argv, .. } if on == "server" && argv[1].ends_with("install-observability.sh"))));
        // Every value filled at run time is one the run knows.
        let text = serde_json::to_string(&p).unwrap();
        for cap in text.split('{').skip(1).filter_map(|t| t.split_once('}')).map(|(name, _)| name) {
            if cap.chars().all(|c| c.is_ascii_lowercase() || c == '_') && !cap.is_empty() {
                assert!(RUNTIME_VALUES.contains(&format!("{{{cap}}}").as_str()), "unknown run-time value {{{cap}}}");
            }
        }
    }
}
