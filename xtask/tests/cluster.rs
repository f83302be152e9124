//! The e2e kubernetes tier's cluster for real: a Kubernetes v1.34.2 cluster built from the node
//! image (`cargo xtask fixtures --node`), brought up with testcontainers on this machine's Docker
//! engine, checked through kube-rs, and removed.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kube::api::{Api, ListParams, PostParams};
use xtask::e2e::cluster::{self, Cluster, plan};
use xtask::e2e::engine::Engine;
use xtask::stack::{self, Arch};
use xtask::{fixtures, paths};

#[test]
fn a_cluster_with_simulated_edges_comes_up_runs_pods_from_the_bundle_and_goes() {
    let stack = stack::load(&paths::stack_file()).unwrap();
    let host = Arch::host().unwrap();
    let node = fixtures::node::build(&stack, &[host], &paths::node_image_dir()).unwrap_or_else(|e| panic!("{e:#}"));
    let bundle = xtask::e2e::provision::bundle(&stack, "local", host).unwrap_or_else(|e| panic!("{e:#}"));
    let shape = cluster::shape(&stack, 1, 2, host).unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let engine = Engine::connect().await.unwrap_or_else(|e| panic!("{e:#}"));
        let run = format!("cluster-test-{}", std::process::id());
        let since = jiff::Timestamp::now().as_second();
        let mut c =
            Cluster::start(&engine, &run, &shape, &node.archives, &bundle).await.unwrap_or_else(|e| panic!("{e:#}"));
        eprintln!("cluster up: {:?}", c.timings);
        let checked = check(&c, &shape).await;
        let logs = if checked.is_err() { c.node_logs("edge-1", 20).await.unwrap_or_default() } else { String::new() };
        let removed = c.remove().await.unwrap();
        checked.unwrap_or_else(|e| panic!("{e:#}\nedge-1:\n{logs}"));
        assert!(removed.containers >= 4 && removed.networks == 1 && removed.volumes >= 4, "{removed}");
        assert!(engine.remove_run(&run).await.unwrap() == Default::default(), "the run left something behind");
        assert_eq!(engine.pulls_since(since).await.unwrap(), Vec::<String>::new(), "the engine pulled an image");
    });
}

async fn check(c: &Cluster, shape: &plan::Shape) -> anyhow::Result<()> {
    use anyhow::{Context, ensure};
    let nodes: Api<Node> = Api::all(c.client.clone());
    for n in nodes.list(&ListParams::default()).await?.items {
        let name = n.metadata.name.clone().unwrap_or_default();
        let edge = name.starts_with("edge-");
        let labels = n.metadata.labels.clone().unwrap_or_default();
        let port =
            n.status.as_ref().and_then(|s| s.daemon_endpoints.as_ref()).and_then(|d| d.kubelet_endpoint.as_ref());
        let taints = n.spec.as_ref().and_then(|s| s.taints.clone()).unwrap_or_default();
        let tainted = taints.iter().any(|t| t.key == plan::EDGE_ROLE && t.effect == "NoSchedule");
        if edge {
            ensure!(labels.get(plan::EDGE_ROLE).map(String::as_str) == Some(""), "{name}: labels {labels:?}");
            ensure!(tainted, "{name}: taints {taints:?}");
            ensure!(port.map(|p| p.port) == Some(plan::TUNNEL_PORT.into()), "{name}: kubelet endpoint {port:?}");
        } else {
            ensure!(!labels.contains_key(plan::EDGE_ROLE) && !tainted, "{name} is a cloud node");
            ensure!(port.map(|p| p.port) == Some(plan::KUBELET_PORT.into()), "{name}: kubelet endpoint {port:?}");
        }
    }
    // An edge's kubelet listens on its loopback only: not at its address.
    let edge = c.addresses["edge-1"];
    let dialled = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        tokio::net::TcpStream::connect((edge, plan::TUNNEL_PORT)),
    )
    .await;
    ensure!(!matches!(dialled, Ok(Ok(_))), "the harness reached edge-1's kubelet at {edge}");

    // A pod on an edge and one on a cloud agent, from the bundle's probe image, never pulled; each
    // serves HTTP on its node's own network.
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    for (name, node) in [("on-edge", "edge-1"), ("on-agent", "agent-0")] {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name },
            "spec": {
                "nodeName": node,
                "hostNetwork": true,
                "tolerations": [{ "key": plan::EDGE_ROLE, "operator": "Exists", "effect": "NoSchedule" }],
                "containers": [{
                    "name": "c", "image": shape.sandbox_image, "imagePullPolicy": "Never",
                    "command": ["/bin/busybox", "sh", "-c",
                        format!("echo up; exec /bin/busybox httpd -f -p {HOST_PORT} -h /etc")]
                }]
            }
        }))?;
        pods.create(&PostParams::default(), &pod).await.with_context(|| format!("creating {name}"))?;
    }
    xtask::e2e::engine::wait_for("both pods Running", std::time::Duration::from_secs(90), || async {
        let phases: BTreeMap<String, String> = pods
            .list(&ListParams::default())
            .await?
            .items
            .into_iter()
            .map(|p| (p.metadata.name.unwrap_or_default(), p.status.and_then(|s| s.phase).unwrap_or_default()))
            .collect();
        Ok((phases.len() == 2 && phases.values().all(|p| p == "Running")).then_some(()))
    })
    .await?;
    let events: Api<Event> = Api::all(c.client.clone());
    let pulls: Vec<String> = events
        .list(&ListParams::default())
        .await?
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Pulling"))
        .map(|e| e.message.unwrap_or_default())
        .collect();
    ensure!(pulls.is_empty(), "images were pulled: {pulls:?}");

    // The edge is behind NAT: what listens on its network is not reachable, what listens on a
    // cloud node's is (the check can fail).
    let dial = |node: &str| {
        let addr = c.addresses[node];
        async move {
            let connect = tokio::net::TcpStream::connect((addr, HOST_PORT));
            matches!(tokio::time::timeout(std::time::Duration::from_secs(3), connect).await, Ok(Ok(_)))
        }
    };
    let served = xtask::e2e::engine::wait_for("agent-0's pod to serve", std::time::Duration::from_secs(30), || async {
        Ok(dial("agent-0").await.then_some(()))
    })
    .await;
    if let Err(e) = served {
        let mut why = String::new();
        for name in ["on-agent", "on-edge"] {
            let status = pods.get(name).await.ok().and_then(|p| p.status);
            let last = pods.logs(name, &kube::api::LogParams { previous: true, ..Default::default() }).await;
            why.push_str(&format!("\n{name}: {status:?}\nits last run logged: {last:?}"));
        }
        return Err(e.context(why));
    }
    ensure!(!dial("edge-1").await, "the harness opened a connection to edge-1: it is not behind NAT");

    // Through the tunnel, as Prometheus scrapes an edge kubelet on KubeEdge: from cloudcore's node,
    // at the edge's InternalIP and tunnel port; iptables-manager's DNAT sends it to the stream
    // server, which finds the edge by that address and goes through its tunnel to the kubelet.
    let edge_ip = c.addresses["edge-1"].to_string();
    for (path, expect) in
        [("metrics", "kubelet_running_pods"), ("metrics/cadvisor", "container_cpu_usage_seconds_total")]
    {
        let url = format!("https://{edge_ip}:{}/{path}", plan::TUNNEL_PORT);
        let body =
            c.exec("server", &["edge-tunnel", "get", &url]).await.context("a scrape of edge-1 through the tunnel")?;
        ensure!(body.contains(expect), "{url} is not the kubelet's: {:.300}", body);
    }
    // `kubectl logs` of an edge pod: the kubelet's TLS server through the same tunnel.
    let logs = pods.logs("on-edge", &Default::default()).await.context("the logs of a pod on edge-1")?;
    ensure!(logs.trim() == "up", "on-edge logged {logs:?}");
    prometheus_scrapes_the_edges_through_the_tunnel(c).await?;

    // Port-forward is not in KubeEdge v1.22's stream tunnel: the emulation refuses it too.
    let forward = c
        .client
        .request_text(http::Request::get("/api/v1/nodes/edge-1/proxy/portForward/default/on-edge").body(Vec::new())?)
        .await;
    ensure!(forward.is_err(), "port-forward to an edge answered: {forward:?}");
    Ok(())
}

/// The local profile's Prometheus, rendered as Kubernetes objects and applied, discovers the
/// edges through the real API server and scrapes their kubelets through the tunnel, as the
/// upstream profile's jobs do on KubeEdge; read through the API server's service proxy.
async fn prometheus_scrapes_the_edges_through_the_tunnel(c: &Cluster) -> anyhow::Result<()> {
    use anyhow::{Context, ensure};
    use xtask::render::{self, names, workloads};
    let stack = stack::load(&paths::stack_file())?;
    let files = render::render(&render::Ctx::new(&stack, "local", Arch::host().context("an unknown host arch")?)?)?;
    for file in ["manifests/00-namespace.yaml", workloads::PROMETHEUS_FILE] {
        let text = files.get(file).with_context(|| format!("the local profile renders no {file}"))?;
        c.apply(text, file).await?;
    }
    let ns = stack.settings.namespace.as_str();
    // Through the API server's service proxy, and through a port-forward as the scenarios read it.
    let ready_path = format!("/api/v1/namespaces/{ns}/services/prometheus:web/proxy/-/ready");
    xtask::e2e::engine::wait_for("Prometheus ready (service proxy)", std::time::Duration::from_secs(90), || async {
        Ok(c.client.request_text(http::Request::get(&ready_path).body(Vec::new())?).await.ok())
    })
    .await?;
    let forward = c.forward(ns, "prometheus", xtask::render::ports::PROMETHEUS).await?;
    let http = reqwest::Client::new();
    let query = format!("up{{job=\"{}\"}}", names::JOB_EDGE_CADVISOR);
    let url = format!("{}/api/v1/query", forward.url());
    let last = std::sync::Mutex::new(String::new());
    let found = xtask::e2e::engine::wait_for(
        "Prometheus to scrape both edges' cAdvisor",
        std::time::Duration::from_secs(120),
        || async {
            let Ok(resp) = http.get(&url).query(&[("query", &query)]).send().await else { return Ok(None) };
            let text = resp.text().await.unwrap_or_default();
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let up: BTreeMap<String, String> = v["data"]["result"]
                .as_array()
                .map(|r| {
                    r.iter()
                        .map(|s| {
                            (
                                s["metric"]["node"].as_str().unwrap_or("").to_string(),
                                s["value"][1].as_str().unwrap_or("").to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            *last.lock().unwrap() = text;
            Ok((up.len() == 2 && up.values().all(|v| v == "1")).then_some(up))
        },
    )
    .await;
    cluster_dns_resolves_the_services(c, ns, &stack).await?;
    let up = found.with_context(|| format!("the last answer: {}", last.lock().unwrap()))?;
    ensure!(up.keys().map(String::as_str).eq(["edge-1", "edge-2"]), "{up:?}");
    Ok(())
}

/// A cloud pod resolves a Service's name through the cluster DNS (CoreDNS on the server node,
/// behind the `kube-dns` Service kubelets give their pods).
async fn cluster_dns_resolves_the_services(c: &Cluster, ns: &str, stack: &stack::Stack) -> anyhow::Result<()> {
    use anyhow::{Context, ensure};
    let services: Api<k8s_openapi::api::core::v1::Service> = Api::namespaced(c.client.clone(), ns);
    let ip =
        services.get("prometheus").await?.spec.and_then(|s| s.cluster_ip).context("prometheus has no ClusterIP")?;
    let name = format!("prometheus.{ns}.svc.{}", plan::CLUSTER_DOMAIN);
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let image = cluster::shape(stack, 1, 2, Arch::host().context("host arch")?)?.sandbox_image;
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": { "name": "resolver" },
        "spec": {
            "nodeName": "agent-0",
            "restartPolicy": "Never",
            "containers": [{
                "name": "c", "image": image, "imagePullPolicy": "Never",
                "command": ["/bin/busybox", "nslookup", name]
            }]
        }
    }))?;
    pods.create(&PostParams::default(), &pod).await?;
    xtask::e2e::engine::wait_for("the resolver pod to finish", std::time::Duration::from_secs(60), || async {
        let phase = pods.get("resolver").await?.status.and_then(|s| s.phase).unwrap_or_default();
        Ok(matches!(phase.as_str(), "Succeeded" | "Failed").then_some(()))
    })
    .await?;
    let out = pods.logs("resolver", &Default::default()).await?;
    ensure!(out.contains(&ip), "{name} did not resolve to {ip}:\n{out}");
    Ok(())
}

/// What the test pods serve on their node's network.
const HOST_PORT: u16 = 18080;
