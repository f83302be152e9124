//! The cluster as data (pure): its nodes, what each runs and every file each is given. A
//! Kubernetes v1.34 cluster of the parts k3s is made of (etcd, kube-apiserver,
//! kube-controller-manager, kube-scheduler on the server; containerd, kubelet on every node;
//! kube-proxy and the cluster's bridge network on cloud nodes only), with edges set up as
//! KubeEdge sets them: the kubelet on loopback only, its endpoint port the tunnel port, its read-only
//! port edged's, registered with the edge taint, behind NAT, reached only through the edge tunnel
//! it dials out (`fixtures/go/edge-tunnel`, cloudstream's part on the server with iptables-manager's
//! DNAT). `--dry-run` prints it; tests snapshot it with placeholder secrets.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;
use serde_json::json;

use super::pki::{self, Secrets};
use crate::render::ports;
use crate::stack::Arch;

/// Where a node's files go.
pub const ETC: &str = "/etc/kubeprepare";
/// The name the harness checks the API server's certificate against (it dials an address).
pub const APISERVER_TLS_NAME: &str = "kubernetes";
pub const APISERVER_PORT: u16 = ports::KUBE_APISERVER;
pub const SERVICE_CIDR: &str = "10.96.0.0/16";
/// The `kubernetes` Service's address, the first of the service range.
pub const SERVICE_IP: &str = "10.96.0.1";
/// The `kube-dns` Service's address (k3s' default `--cluster-dns`), what cloud pods resolve with.
pub const DNS_SERVICE_IP: &str = "10.96.0.10";
pub const CLUSTER_DOMAIN: &str = "cluster.local";
/// The port CoreDNS serves on the server node.
pub const DNS_PORT: u16 = 53;
pub const CLUSTER_CIDR: &str = "10.244.0.0/16";
/// The edge node label and taint KubeEdge's nodes carry (SPEC: `node-role.kubernetes.io/edge: ""`).
pub const EDGE_ROLE: &str = "node-role.kubernetes.io/edge";
/// The tunnel port cloudcore negotiates for its first instance (ConfigMap `kubeedge/tunnelport`):
/// every edge Node's `status.daemonEndpoints.kubeletEndpoint.Port`.
pub const TUNNEL_PORT: u16 = ports::EDGE_TUNNEL_FIRST;
/// The kubelet's default port, on cloud nodes.
pub const KUBELET_PORT: u16 = ports::KUBELET;

/// What a node is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The control plane and a kubelet (a k3s server).
    Server,
    /// A cloud kubelet (a k3s agent).
    Agent,
    /// A kubelet playing a KubeEdge edge node.
    Edge,
}

/// One process of a node, kept running by the node's init (restarted a second after it exits).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Process {
    pub name: String,
    pub argv: Vec<String>,
}

/// A file given to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct File {
    pub mode: u32,
    pub text: String,
}

/// The iptables rules a node's init adds before anything starts: KubeEdge's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Firewall {
    /// A cloud node without cloudcore: none.
    Open,
    /// cloudcore's node: iptables-manager's nat chain `TUNNEL-PORT`, jumped to from PREROUTING and
    /// OUTPUT, DNATs the tunnel port to the stream server on this node's address (kubeedge/kubeedge
    /// PR #2999), so the API server and Prometheus here reach edge kubelets through the tunnel.
    ///
    /// With it, cloudhub's ports (`hub_ports`, websocket and https), DNATed to the API server: a
    /// simulated edge's kubelet reaches the control plane there instead of through edgehub and
    /// cloudhub, so an edge's link probe of cloudhub checks the path its control plane really takes.
    TunnelPort { port: u16, stream_port: u16, hub_ports: [u16; 2] },
    /// An edge behind NAT: no new connection in, except on its loopback and from its pods.
    Nat,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    pub name: String,
    pub role: Role,
    pub arch: Arch,
    /// This node's pod subnet.
    pub pod_cidr: String,
    pub firewall: Firewall,
    pub processes: Vec<Process>,
    /// Absolute path → file.
    pub files: BTreeMap<String, File>,
}

impl Node {
    pub fn is_edge(&self) -> bool {
        self.role == Role::Edge
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    pub image: String,
    pub kubernetes: String,
    pub nodes: Vec<Node>,
}

/// The cluster's shape: how many nodes of each kind, and their arch.
#[derive(Debug, Clone, Serialize)]
pub struct Shape {
    pub image: String,
    pub kubernetes: String,
    pub agents: usize,
    pub edges: usize,
    /// Every node's arch, this machine's: no mixed-arch cluster here (see `e2e::arch_missing`).
    pub arch: Arch,
    /// The containerd sandbox ("pause") image: the bundle's probe image, imported on every node.
    pub sandbox_image: String,
    /// The node-monitor grace period, in seconds (short, so a cut edge turns NotReady soon).
    pub node_grace_seconds: u32,
    /// edged's read-only server on the edge's loopback (`settings.edge.kubelet_readonly`).
    pub edge_readonly_port: u16,
    /// cloudstream's stream and tunnel ports (`settings.cloudcore`).
    pub stream_port: u16,
    pub tunnel_port: u16,
    /// cloudhub's websocket and https ports (`settings.cloudcore`), what edges dial on KubeEdge.
    pub hub_ports: [u16; 2],
}

impl Shape {
    /// Node names in order: `server`, `agent-<i>`, `edge-<i>` (from 1, as the compose tier and the scenarios name them).
    pub fn names(&self) -> Vec<(String, Role)> {
        let mut out = vec![("server".to_string(), Role::Server)];
        out.extend((0..self.agents).map(|i| (format!("agent-{i}"), Role::Agent)));
        out.extend((1..=self.edges).map(|i| (format!("edge-{i}"), Role::Edge)));
        out
    }

    /// The names and addresses the API server's certificate (and the tunnel's) carries, besides
    /// the server's container name (which nodes dial).
    pub fn server_names() -> Vec<String> {
        [
            APISERVER_TLS_NAME,
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
            SERVICE_IP,
            "127.0.0.1",
        ]
        .map(String::from)
        .to_vec()
    }
}

/// The plan of a cluster of `shape` with `secrets`, whose server the nodes reach at
/// `server_host` (its container's name on the cluster network). Pure.
pub fn plan(shape: &Shape, secrets: &Secrets, server_host: &str) -> Result<Plan> {
    let mut nodes = Vec::new();
    for (i, (name, role)) in shape.names().into_iter().enumerate() {
        let arch = shape.arch;
        let pod_cidr = format!("10.244.{i}.0/24");
        let firewall = match role {
            Role::Server => {
                Firewall::TunnelPort { port: TUNNEL_PORT, stream_port: shape.stream_port, hub_ports: shape.hub_ports }
            }
            Role::Agent => Firewall::Open,
            Role::Edge => Firewall::Nat,
        };
        let mut n =
            Node { name: name.clone(), role, arch, pod_cidr, firewall, processes: Vec::new(), files: BTreeMap::new() };
        common(&mut n, shape, secrets)?;
        if role == Role::Server {
            control_plane(&mut n, shape, secrets, server_host)?;
        }
        tunnel(&mut n, shape, secrets, server_host)?;
        kubelet(&mut n, shape, secrets, server_host)?;
        if role != Role::Edge {
            kube_proxy(&mut n, secrets, server_host)?;
        }
        let init = init_script(&n);
        n.files.insert(format!("{ETC}/init.sh"), File { mode: 0o755, text: init });
        nodes.push(n);
    }
    Ok(Plan { image: shape.image.clone(), kubernetes: shape.kubernetes.clone(), nodes })
}

fn file(n: &mut Node, path: &str, text: String) {
    n.files.insert(path.to_string(), File { mode: 0o644, text });
}

fn secret(n: &mut Node, path: &str, text: &str) {
    n.files.insert(path.to_string(), File { mode: 0o600, text: text.to_string() });
}

fn arg(flag: &str, value: impl std::fmt::Display) -> String {
    format!("--{flag}={value}")
}

/// What every node has: the CA, containerd and its configuration, the CNI configuration, and
/// the kernel settings the kubelet checks, as files (see [`init_script`]).
fn common(n: &mut Node, shape: &Shape, secrets: &Secrets) -> Result<()> {
    secret(n, &format!("{ETC}/pki/ca.crt"), &secrets.ca.cert);
    file(n, "/etc/containerd/config.toml", containerd_config(&shape.sandbox_image)?);
    // The cluster's bridge on every node; on edges it is the edge's own (KubeEdge brings no cloud
    // CNI to edges): no route leads to an edge's pod subnet from the cloud.
    file(n, "/etc/cni/net.d/10-kubeprepare.conflist", cni_conflist(&n.pod_cidr)?);
    for (key, value) in KERNEL_DEFAULTS {
        file(n, &format!("{ETC}/sysctl/{key}"), format!("{value}\n"));
    }
    n.processes.push(Process {
        name: "containerd".into(),
        argv: vec!["containerd".into(), arg("config", "/etc/containerd/config.toml")],
    });
    Ok(())
}

/// A node's CNI configuration: a bridge `cni0` for the pod subnet `subnet`, with port mappings.
pub(crate) fn cni_conflist(subnet: &str) -> Result<String> {
    let conflist = json!({
        "cniVersion": "1.0.0",
        "name": "kubeprepare",
        "plugins": [
            {
                "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true, "mtu": POD_MTU,
                "ipam": { "type": "host-local", "ranges": [[{ "subnet": subnet }]], "routes": [{ "dst": "0.0.0.0/0" }] }
            },
            { "type": "portmap", "capabilities": { "portMappings": true } }
        ]
    });
    Ok(serde_json::to_string_pretty(&conflist)? + "\n")
}

/// The kernel settings the kubelet wants (`protectKernelDefaults` checks them instead of writing
/// them): bind-mounted read-only over `/proc/sys` in each node, so a kubelet in a container never
/// rewrites the host's, which are not namespaced.
pub const KERNEL_DEFAULTS: [(&str, &str); 6] = [
    ("vm.overcommit_memory", "1"),
    ("vm.panic_on_oom", "0"),
    ("kernel.panic", "10"),
    ("kernel.panic_on_oops", "1"),
    ("kernel.keys.root_maxkeys", "1000000"),
    ("kernel.keys.root_maxbytes", "25000000"),
];

pub(crate) fn containerd_config(sandbox: &str) -> Result<String> {
    let config = json!({
        "version": 3,
        "root": "/var/lib/containerd",
        "state": "/run/containerd",
        "grpc": { "address": "/run/containerd/containerd.sock" },
        "plugins": {
            "io.containerd.cri.v1.images": {
                "snapshotter": "overlayfs",
                "pinned_images": { "sandbox": sandbox },
                // No registry is ever asked: a missing image fails at once.
                "registry": { "config_path": "" }
            },
            "io.containerd.cri.v1.runtime": {
                // The node container lacks CAP_SYS_RESOURCE: runc cannot lower oom_score_adj.
                "restrict_oom_score_adj": true,
                "containerd": { "runtimes": { "runc": {
                    "runtime_type": "io.containerd.runc.v2",
                    "options": { "SystemdCgroup": false }
                } } },
                "cni": { "bin_dirs": ["/opt/cni/bin"], "conf_dir": "/etc/cni/net.d" }
            }
        }
    });
    let header = "# Generated by cargo xtask e2e; do not edit.\n";
    Ok(format!("{header}{}", toml::to_string(&config)?))
}

/// Give `n` the kubeconfig `{ETC}/<name>.kubeconfig` of `user` (its token from `s`).
fn kubeconfig_file(n: &mut Node, name: &str, server: &str, user: &str, s: &Secrets) -> Result<()> {
    secret(n, &format!("{ETC}/{name}.kubeconfig"), &kubeconfig(server, user, s.token(user)?)?);
    Ok(())
}

/// A kubeconfig for `user` with a bearer token, reaching the API server at `server`.
fn kubeconfig(server: &str, user: &str, token: &str) -> Result<String> {
    let config = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "e2e", "cluster": {
            "server": format!("https://{server}:{APISERVER_PORT}"),
            "certificate-authority": format!("{ETC}/pki/ca.crt")
        } }],
        "users": [{ "name": user, "user": { "token": token } }],
        "contexts": [{ "name": "e2e", "context": { "cluster": "e2e", "user": user } }],
        "current-context": "e2e"
    });
    Ok(serde_yaml_ng::to_string(&config)?)
}

fn control_plane(n: &mut Node, shape: &Shape, s: &Secrets, server: &str) -> Result<()> {
    let pki = format!("{ETC}/pki");
    for (name, pair) in [("apiserver", &s.apiserver), ("apiserver-kubelet-client", &s.apiserver_kubelet_client)] {
        secret(n, &format!("{pki}/{name}.crt"), &pair.cert);
        secret(n, &format!("{pki}/{name}.key"), &pair.key);
    }
    secret(n, &format!("{pki}/sa.pub"), &s.service_account.cert);
    secret(n, &format!("{pki}/sa.key"), &s.service_account.key);
    secret(n, &format!("{ETC}/tokens.csv"), &s.token_file());
    for (file_name, user) in [("controller-manager", pki::CONTROLLER_MANAGER_USER), ("scheduler", pki::SCHEDULER_USER)]
    {
        kubeconfig_file(n, file_name, server, user, s)?;
    }
    let etcd_client = format!("http://127.0.0.1:{}", ports::ETCD_CLIENT);
    let etcd_peer = format!("http://127.0.0.1:{}", ports::ETCD_PEER);
    n.processes.push(Process {
        name: "etcd".into(),
        argv: vec![
            "etcd".into(),
            arg("name", "server"),
            arg("data-dir", "/var/lib/etcd"),
            arg("listen-client-urls", &etcd_client),
            arg("advertise-client-urls", &etcd_client),
            arg("listen-peer-urls", &etcd_peer),
            arg("initial-advertise-peer-urls", &etcd_peer),
            arg("initial-cluster", format!("server={etcd_peer}")),
            arg("listen-metrics-urls", format!("http://127.0.0.1:{}", ports::ETCD_METRICS)),
        ],
    });
    n.processes.push(Process {
        name: "kube-apiserver".into(),
        argv: vec![
            "kube-apiserver".into(),
            arg("etcd-servers", &etcd_client),
            arg("secure-port", APISERVER_PORT),
            arg("service-cluster-ip-range", SERVICE_CIDR),
            arg("token-auth-file", format!("{ETC}/tokens.csv")),
            arg("authorization-mode", "Node,RBAC"),
            arg("enable-admission-plugins", "NodeRestriction"),
            arg("tls-cert-file", format!("{pki}/apiserver.crt")),
            arg("tls-private-key-file", format!("{pki}/apiserver.key")),
            arg("client-ca-file", format!("{pki}/ca.crt")),
            arg("kubelet-client-certificate", format!("{pki}/apiserver-kubelet-client.crt")),
            arg("kubelet-client-key", format!("{pki}/apiserver-kubelet-client.key")),
            arg("kubelet-preferred-address-types", "InternalIP"),
            arg("service-account-key-file", format!("{pki}/sa.pub")),
            arg("service-account-signing-key-file", format!("{pki}/sa.key")),
            arg("service-account-issuer", "https://kubernetes.default.svc"),
            arg("allow-privileged", "true"),
            arg("profiling", "false"),
        ],
    });
    n.processes.push(Process {
        name: "kube-controller-manager".into(),
        argv: vec![
            "kube-controller-manager".into(),
            arg("kubeconfig", format!("{ETC}/controller-manager.kubeconfig")),
            arg("use-service-account-credentials", "true"),
            arg("service-account-private-key-file", format!("{pki}/sa.key")),
            arg("root-ca-file", format!("{pki}/ca.crt")),
            arg("service-cluster-ip-range", SERVICE_CIDR),
            arg("node-monitor-grace-period", format!("{}s", shape.node_grace_seconds)),
            arg("leader-elect", "false"),
            arg("profiling", "false"),
        ],
    });
    // The cluster DNS: CoreDNS's kubernetes plugin against the API server, everything else to the
    // node's resolver (Docker's, which knows the run's containers and nothing outside).
    kubeconfig_file(n, "coredns", server, pki::COREDNS_USER, s)?;
    let corefile = format!(
        ".:{DNS_PORT} {{\n    errors\n    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{\n        kubeconfig {ETC}/coredns.kubeconfig e2e\n        pods insecure\n        fallthrough in-addr.arpa ip6.arpa\n    }}\n    forward . /etc/resolv.conf\n    cache 30\n}}\n"
    );
    file(n, &format!("{ETC}/Corefile"), corefile);
    n.processes.push(Process {
        name: "coredns".into(),
        argv: vec!["coredns".into(), "-conf".into(), format!("{ETC}/Corefile")],
    });
    n.processes.push(Process {
        name: "kube-scheduler".into(),
        argv: vec![
            "kube-scheduler".into(),
            arg("kubeconfig", format!("{ETC}/scheduler.kubeconfig")),
            arg("leader-elect", "false"),
            arg("profiling", "false"),
        ],
    });
    Ok(())
}

/// The edge tunnel (`fixtures/go/edge-tunnel`): on the server, cloudstream's tunnel server
/// (edges dial it) and stream server (the DNAT target, TLS, client certificate asked, none
/// required); on each edge, edgestream's client dialling out, letting the cloud reach the
/// kubelet's two servers on the edge's loopback and nothing else.
fn tunnel(n: &mut Node, shape: &Shape, s: &Secrets, server: &str) -> Result<()> {
    let token = format!("{ETC}/edge-tunnel.token");
    let kubelet = format!("127.0.0.1:{TUNNEL_PORT}");
    let readonly = format!("127.0.0.1:{}", shape.edge_readonly_port);
    let argv = match n.role {
        Role::Server => {
            secret(n, &format!("{ETC}/pki/edge-tunnel.crt"), &s.tunnel.cert);
            secret(n, &format!("{ETC}/pki/edge-tunnel.key"), &s.tunnel.key);
            vec![
                "server".into(),
                arg("tunnel-listen", format!(":{}", shape.tunnel_port)),
                arg("stream-listen", format!(":{}", shape.stream_port)),
                arg("tls-cert", format!("{ETC}/pki/edge-tunnel.crt")),
                arg("tls-key", format!("{ETC}/pki/edge-tunnel.key")),
                arg("edge-kubelet", kubelet),
                arg("edge-readonly", readonly),
            ]
        }
        Role::Edge => vec![
            "client".into(),
            arg("server", format!("ws://{server}:{}/connect", shape.tunnel_port)),
            arg("node", &n.name),
            arg("allow", format!("{kubelet},{readonly}")),
        ],
        Role::Agent => return Ok(()),
    };
    secret(n, &token, s.token(pki::TUNNEL_USER)?);
    let mut full = vec!["edge-tunnel".to_string()];
    full.extend(argv);
    full.push(arg("token-file", &token));
    n.processes.push(Process { name: "edge-tunnel".into(), argv: full });
    Ok(())
}

fn kubelet(n: &mut Node, shape: &Shape, s: &Secrets, server: &str) -> Result<()> {
    let user = pki::node_user(&n.name);
    kubeconfig_file(n, "kubelet", server, &user, s)?;
    let mut config = json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "cgroupDriver": "cgroupfs",
        "failSwapOn": false,
        "containerRuntimeEndpoint": "unix:///run/containerd/containerd.sock",
        "authentication": {
            "anonymous": { "enabled": false },
            "webhook": { "enabled": true },
            "x509": { "clientCAFile": format!("{ETC}/pki/ca.crt") }
        },
        "authorization": { "mode": "Webhook" },
        "clusterDomain": CLUSTER_DOMAIN,
        "protectKernelDefaults": true,
        // A full-ish host disk must neither evict the pods nor collect the imported images.
        "evictionHard": { "memory.available": "1Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%" },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "podCIDR": n.pod_cidr,
        "serializeImagePulls": false,
    });
    if !n.is_edge() {
        // Edges have no cluster DNS (edged's pods resolve with the node's own).
        config["clusterDNS"] = json!([DNS_SERVICE_IP]);
    } else {
        // As edged: the kubelet only on the edge's loopback (the cloud reaches it through the
        // tunnel), its endpoint port the tunnel port, the read-only server on 10350, and
        // like KubeEdge's stream server, no token asked of what comes through the tunnel.
        config["address"] = json!("127.0.0.1");
        config["port"] = json!(TUNNEL_PORT);
        config["readOnlyPort"] = json!(shape.edge_readonly_port);
        config["authentication"]["anonymous"]["enabled"] = json!(true);
        config["authorization"]["mode"] = json!("AlwaysAllow");
        config["registerWithTaints"] = json!([{ "key": EDGE_ROLE, "effect": "NoSchedule" }]);
    }
    file(n, &format!("{ETC}/kubelet.yaml"), serde_yaml_ng::to_string(&config)?);
    n.processes.push(Process {
        name: "kubelet".into(),
        argv: vec![
            "kubelet".into(),
            arg("config", format!("{ETC}/kubelet.yaml")),
            arg("kubeconfig", format!("{ETC}/kubelet.kubeconfig")),
            arg("hostname-override", &n.name),
        ],
    });
    Ok(())
}

fn kube_proxy(n: &mut Node, s: &Secrets, server: &str) -> Result<()> {
    let user = pki::KUBE_PROXY_USER;
    kubeconfig_file(n, "kube-proxy", server, user, s)?;
    n.processes.push(Process {
        name: "kube-proxy".into(),
        argv: vec![
            "kube-proxy".into(),
            arg("kubeconfig", format!("{ETC}/kube-proxy.kubeconfig")),
            arg("hostname-override", &n.name),
            arg("cluster-cidr", CLUSTER_CIDR),
            arg("proxy-mode", "iptables"),
            // Conntrack's limits are the host's: leave them alone.
            arg("conntrack-max-per-core", 0),
            arg("conntrack-tcp-timeout-established", "0s"),
            arg("conntrack-tcp-timeout-close-wait", "0s"),
            arg("profiling", "false"),
        ],
    });
    Ok(())
}

/// What the cluster DNS needs once the API answers, as objects to apply: CoreDNS's ClusterRole
/// and its binding, the `kube-dns` Service at [`DNS_SERVICE_IP`] with no selector, and its
/// EndpointSlice pointing at CoreDNS on the server node's `server_ip`. Pure.
pub fn dns_objects(server_ip: &str) -> Vec<serde_json::Value> {
    let ports = || {
        [("dns", "UDP"), ("dns-tcp", "TCP")]
            .map(|(name, protocol)| json!({ "name": name, "protocol": protocol, "port": DNS_PORT }))
            .to_vec()
    };
    let mut service_ports = ports();
    for p in &mut service_ports {
        p["targetPort"] = json!(DNS_PORT);
    }
    vec![
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": { "name": "kubeprepare:coredns" },
            "rules": [
                { "apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"], "verbs": ["list", "watch"] },
                { "apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"], "verbs": ["list", "watch"] }
            ]
        }),
        json!({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": { "name": "kubeprepare:coredns" },
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kubeprepare:coredns" },
            "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": pki::COREDNS_USER }]
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": "kube-dns", "namespace": "kube-system", "labels": { "k8s-app": "kube-dns" } },
            "spec": { "clusterIP": DNS_SERVICE_IP, "ports": service_ports }
        }),
        json!({
            "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {
                "name": "kube-dns-server", "namespace": "kube-system",
                "labels": { "kubernetes.io/service-name": "kube-dns", "endpointslice.kubernetes.io/managed-by": "kubeprepare" }
            },
            "addressType": "IPv4",
            "endpoints": [{ "addresses": [server_ip], "conditions": { "ready": true } }],
            "ports": ports()
        }),
    ]
}

/// The node's init (its container's command): shared mounts, writable cgroups, `/dev/kmsg`, the
/// kernel defaults bound over `/proc/sys`, then every process kept running, its output in
/// `/var/log/<name>.log`. Built from data; each word quoted.
pub fn init_script(n: &Node) -> String {
    use crate::render::scripts::quote;
    let mut s = String::new();
    s.push_str("#!/bin/sh\n");
    s.push_str(&format!(
        "# Generated by cargo xtask e2e (kubernetes tier): the init of node {}; do not edit.\nset -eu\n",
        n.name
    ));
    s.push_str("trap 'kill 0; exit 0' TERM INT\n");
    // Files are copied in with the engine's default mode: give each its own (secrets 0600).
    for (path, f) in n.files.iter().filter(|(_, f)| f.mode != 0o644) {
        s.push_str(&format!("chmod {:o} {}\n", f.mode, quote(path)));
    }
    s.push_str("mount --make-rshared /\n");
    s.push_str("mount -o remount,rw /sys/fs/cgroup\n");
    s.push_str("for c in /sys/fs/cgroup/*; do [ -L \"$c\" ] || mount -o remount,bind,rw \"$c\"; done\n");
    s.push_str("[ -e /dev/kmsg ] || mknod /dev/kmsg c 1 11\n");
    for (key, _) in KERNEL_DEFAULTS {
        let target = format!("/proc/sys/{}", key.replace('.', "/"));
        let src = format!("{ETC}/sysctl/{key}");
        s.push_str(&format!("mount --bind {} {t} && mount -o remount,bind,ro {t}\n", quote(&src), t = quote(&target)));
    }
    s.push_str(&firewall(n.firewall));
    s.push_str("mkdir -p /var/log /var/lib/etcd /var/lib/kubelet\n");
    s.push_str(
        "keep() { name=$1; shift; ( while :; do \"$@\" >>\"/var/log/$name.log\" 2>&1 || true; \
         echo \"$name exited\" >>\"/var/log/$name.log\"; sleep 1; done ) & }\n",
    );
    for p in &n.processes {
        let words: Vec<String> = p.argv.iter().map(|w| quote(w)).collect();
        s.push_str(&format!("keep {} {}\n", quote(&p.name), words.join(" ")));
    }
    s.push_str("wait\n");
    s
}

/// The init's iptables rules for `f`, idempotent (a restarted node container runs its init
/// again).
pub(crate) fn firewall(f: Firewall) -> String {
    let mut s = String::new();
    let chain = |s: &mut String, table: &str, name: &str| {
        s.push_str(&format!("iptables -t {table} -N {name} 2>/dev/null || iptables -t {table} -F {name}\n"));
    };
    match f {
        Firewall::Open => {}
        Firewall::TunnelPort { port, stream_port, hub_ports } => {
            s.push_str("set -- $(hostname -i); address=$1\n");
            chain(&mut s, "nat", "TUNNEL-PORT");
            for from in ["PREROUTING", "OUTPUT"] {
                let jump = format!("{from} -p tcp -m comment --comment 'kubeedge tunnel port' -j TUNNEL-PORT");
                s.push_str(&format!("iptables -t nat -C {jump} 2>/dev/null || iptables -t nat -A {jump}\n"));
            }
            s.push_str(&format!(
                "iptables -t nat -A TUNNEL-PORT -p tcp --dport {port} -j DNAT --to-destination \"$address:{stream_port}\"\n"
            ));
            chain(&mut s, "nat", "CLOUDHUB");
            let jump = "PREROUTING -p tcp -m comment --comment 'cloudhub: the API server' -j CLOUDHUB";
            s.push_str(&format!("iptables -t nat -C {jump} 2>/dev/null || iptables -t nat -A {jump}\n"));
            for hub in hub_ports {
                s.push_str(&format!(
                    "iptables -t nat -A CLOUDHUB -p tcp -d \"$address\" --dport {hub} -j DNAT --to-destination \"$address:{APISERVER_PORT}\"\n"
                ));
            }
        }
        Firewall::Nat => {
            chain(&mut s, "filter", "EDGE-NAT");
            for rule in [
                "-i lo -j RETURN",
                "-i cni0 -j RETURN",
                "-m conntrack --ctstate ESTABLISHED,RELATED -j RETURN",
                "-j DROP",
            ] {
                s.push_str(&format!("iptables -A EDGE-NAT {rule}\n"));
            }
            for from in ["INPUT", "FORWARD"] {
                s.push_str(&format!(
                    "iptables -C {from} -j EDGE-NAT 2>/dev/null || iptables -I {from} 1 -j EDGE-NAT\n"
                ));
            }
        }
    }
    s
}

/// flannel's VXLAN device on the cloud nodes (k3s's default backend, its name, VNI and port).
pub const OVERLAY_DEVICE: &str = "flannel.1";
const OVERLAY_VNI: &str = "1";
const OVERLAY_PORT: &str = "8472";
/// The pods' MTU: the node network's 1500 less VXLAN's 50 bytes, as flannel sets it.
pub const POD_MTU: u16 = 1450;

/// The commands that join the cloud nodes' pod subnets over VXLAN, as flannel's vxlan backend
/// does on k3s: on each cloud node a `flannel.1` device holding the subnet's network address, and
/// for every other cloud node a route to its subnet through that node's device address, with a
/// permanent ARP entry and a forwarding entry to its node address. Pod traffic between nodes so
/// travels as UDP between node addresses: a plain route would not do, because the Docker network
/// the nodes share drops packets whose addresses are not its own. Edges get none (no cloud CNI on
/// a KubeEdge edge). `addresses` are the nodes' addresses on the cluster network. Pure.
pub fn overlay(plan: &Plan, addresses: &BTreeMap<String, std::net::IpAddr>) -> Result<Vec<(String, Vec<Vec<String>>)>> {
    let cloud: Vec<&Node> = plan.nodes.iter().filter(|n| !n.is_edge()).collect();
    let device = |n: &Node| -> Result<(String, String, String)> {
        let net = n.pod_cidr.split('/').next().unwrap_or_default().to_string();
        let octets: Vec<u8> = net
            .split('.')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|_| anyhow::anyhow!("node {}: pod subnet {:?} is not an IPv4 subnet", n.name, n.pod_cidr))?;
        let mac = format!("0e:00:{}", octets.iter().map(|o| format!("{o:02x}")).collect::<Vec<_>>().join(":"));
        let address = addresses.get(&n.name).ok_or_else(|| anyhow::anyhow!("node {} has no address", n.name))?;
        Ok((net, mac, address.to_string()))
    };
    // Every word is a name, a number or an address: none holds a space.
    let argv = |line: String| line.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    let dev = OVERLAY_DEVICE;
    let mut out = Vec::new();
    for a in &cloud {
        let (net, mac, local) = device(a)?;
        let mut cmds = vec![
            argv(format!(
                "ip link add {dev} address {mac} type vxlan id {OVERLAY_VNI} local {local} dev eth0 \
                 dstport {OVERLAY_PORT} nolearning"
            )),
            argv(format!("ip link set {dev} mtu {POD_MTU} up")),
            argv(format!("ip addr add {net}/32 dev {dev}")),
        ];
        for b in cloud.iter().filter(|b| b.name != a.name) {
            let (b_net, b_mac, b_address) = device(b)?;
            cmds.push(argv(format!("ip neigh replace {b_net} lladdr {b_mac} dev {dev} nud permanent")));
            cmds.push(argv(format!("bridge fdb append {b_mac} dev {dev} dst {b_address}")));
            cmds.push(argv(format!("ip route replace {} via {b_net} dev {dev} onlink", b.pod_cidr)));
        }
        out.push((a.name.clone(), cmds));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape {
            image: "kubeprepare.local/e2e/node:v1.34.2".into(),
            kubernetes: "v1.34.2".into(),
            agents: 1,
            edges: 2,
            arch: Arch::Amd64,
            sandbox_image: "probe:1".into(),
            node_grace_seconds: 20,
            edge_readonly_port: crate::stack::EdgePorts::default().kubelet_readonly,
            stream_port: crate::stack::CloudcorePorts::default().stream,
            tunnel_port: crate::stack::CloudcorePorts::default().tunnel,
            hub_ports: [
                crate::stack::CloudcorePorts::default().cloudhub,
                crate::stack::CloudcorePorts::default().cloudhub_https,
            ],
        }
    }

    /// The test shape, its node names and its plan.
    fn planned() -> (Shape, Vec<String>, Plan) {
        let s = shape();
        let names: Vec<String> = s.names().into_iter().map(|(n, _)| n).collect();
        let secrets = Secrets::generate(&Shape::server_names(), &names).unwrap();
        let p = plan(&s, &secrets, "run-server").unwrap();
        (s, names, p)
    }

    #[test]
    fn edges_are_set_up_as_kubeedge_sets_them() {
        let (s, names, p) = planned();
        assert_eq!(names, ["server", "agent-0", "edge-1", "edge-2"]);
        let edge = &p.nodes[2];
        let kubelet: serde_json::Value =
            serde_yaml_ng::from_str(&edge.files[&format!("{ETC}/kubelet.yaml")].text).unwrap();
        assert_eq!(kubelet["address"], "127.0.0.1");
        assert_eq!(kubelet["port"], TUNNEL_PORT);
        assert_eq!(kubelet["registerWithTaints"][0]["key"], EDGE_ROLE);
        assert!(!edge.processes.iter().any(|p| p.name == "kube-proxy"), "no kube-proxy on edges");
        assert_eq!(edge.firewall, Firewall::Nat);
        assert_eq!(
            p.nodes[0].firewall,
            Firewall::TunnelPort { port: TUNNEL_PORT, stream_port: s.stream_port, hub_ports: s.hub_ports }
        );
        assert_eq!(p.nodes[1].firewall, Firewall::Open, "iptables-manager runs on cloudcore's node only");
        let client = edge.processes.iter().find(|p| p.name == "edge-tunnel").expect("the edge dials its tunnel");
        assert_eq!(client.argv[1], "client");
        assert!(client.argv.contains(&format!("--allow=127.0.0.1:{TUNNEL_PORT},127.0.0.1:{}", s.edge_readonly_port)));
        assert!(p.nodes[0].processes.iter().any(|p| p.name == "edge-tunnel" && p.argv[1] == "server"));
        assert!(!p.nodes[1].processes.iter().any(|p| p.name == "edge-tunnel"));
        assert!(p.nodes[1].processes.iter().any(|p| p.name == "kube-proxy"));
        assert!(!edge.files.contains_key(&format!("{ETC}/tokens.csv")), "an edge holds no one else's token");
        let cidrs: std::collections::BTreeSet<&str> = p.nodes.iter().map(|n| n.pod_cidr.as_str()).collect();
        assert_eq!(cidrs.len(), 4, "each node its own pod subnet");
        let init = &edge.files[&format!("{ETC}/init.sh")].text;
        assert!(
            init.contains("mount --bind '/etc/kubeprepare/sysctl/kernel.panic' '/proc/sys/kernel/panic'"),
            "{init}"
        );
        assert!(init.contains("iptables -I INPUT 1 -j EDGE-NAT"), "{init}");
        assert!(init.contains("chmod 600 '/etc/kubeprepare/kubelet.kubeconfig'"), "{init}");
        let dns = |n: &Node| {
            let k: serde_json::Value = serde_yaml_ng::from_str(&n.files[&format!("{ETC}/kubelet.yaml")].text).unwrap();
            k["clusterDNS"].clone()
        };
        assert_eq!(dns(&p.nodes[1]), json!([DNS_SERVICE_IP]));
        assert!(dns(edge).is_null(), "edges have no cluster DNS");
        assert!(p.nodes[0].processes.iter().any(|p| p.name == "coredns"));
        let server_init = &p.nodes[0].files[&format!("{ETC}/init.sh")].text;
        assert!(
            server_init
                .contains(&format!("--dport {TUNNEL_PORT} -j DNAT --to-destination \"$address:{}\"", s.stream_port)),
            "{server_init}"
        );
        toml::from_str::<toml::Value>(&edge.files["/etc/containerd/config.toml"].text).unwrap();
    }

    #[test]
    fn cloud_pod_subnets_are_joined_over_vxlan_and_edges_are_left_out() {
        let (_, names, p) = planned();
        let addresses: BTreeMap<String, std::net::IpAddr> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), format!("172.18.0.{}", i + 2).parse().unwrap()))
            .collect();
        let o = overlay(&p, &addresses).unwrap();
        assert_eq!(o.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["server", "agent-0"]);
        let server: Vec<String> = o[0].1.iter().map(|c| c.join(" ")).collect();
        assert!(
            server[0].contains(
                "add flannel.1 address 0e:00:0a:f4:00:00 type vxlan id 1 local 172.18.0.2 dev eth0 dstport 8472 nolearning"
            ),
            "{server:?}"
        );
        assert!(server.contains(&"ip addr add 10.244.0.0/32 dev flannel.1".to_string()), "{server:?}");
        assert!(
            server.contains(&"bridge fdb append 0e:00:0a:f4:01:00 dev flannel.1 dst 172.18.0.3".to_string()),
            "{server:?}"
        );
        assert!(
            server.contains(&"ip route replace 10.244.1.0/24 via 10.244.1.0 dev flannel.1 onlink".to_string()),
            "{server:?}"
        );
        assert!(
            !server.iter().any(|c| c.contains("10.244.2.") || c.contains("10.244.3.")),
            "no route to an edge: {server:?}"
        );
        let mut missing = addresses.clone();
        missing.remove("agent-0");
        assert!(overlay(&p, &missing).unwrap_err().to_string().contains("agent-0"));
    }
}
