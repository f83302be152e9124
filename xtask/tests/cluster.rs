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
        let logs = if checked.is_err() { c.node_logs("edge-0", 20).await.unwrap_or_default() } else { String::new() };
        let removed = c.remove().await.unwrap();
        checked.unwrap_or_else(|e| panic!("{e:#}\nedge-0:\n{logs}"));
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
    let edge = c.addresses["edge-0"];
    let dialled = tokio::time::timeout(
        std::time::Duration::from_secs(3),
        tokio::net::TcpStream::connect((edge, plan::TUNNEL_PORT)),
    )
    .await;
    ensure!(!matches!(dialled, Ok(Ok(_))), "the harness reached edge-0's kubelet at {edge}");

    // A pod on an edge and one on a cloud agent, from the bundle's probe image, never pulled.
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    for (name, node) in [("on-edge", "edge-0"), ("on-agent", "agent-0")] {
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": name },
            "spec": {
                "nodeName": node,
                "tolerations": [{ "key": plan::EDGE_ROLE, "operator": "Exists", "effect": "NoSchedule" }],
                "containers": [{
                    "name": "c", "image": shape.sandbox_image, "imagePullPolicy": "Never",
                    "command": ["/bin/busybox", "sh", "-c", "echo up; sleep 3600"]
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
    Ok(())
}
