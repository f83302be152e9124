//! The test workload on the kubernetes tier (the harness', never the install's): the compose
//! tier's busybox scripts (`fixtures/e2e/workload/`) in a ConfigMap, one pod per edge and a
//! `cloud-api` pod on the cloud, in namespace `e2e`, from the bundle's probe image.
//!
//! Each edge pod (`workload-<node>`, container `workload`) writes a log line a second to stdout,
//! which its kubelet writes as the pod's log where the edge agent tails it, and makes a traced
//! call to `cloud-api` through its NodePort on the cloud address (edges are behind NAT: the edge
//! calls), its spans to the node's agent on 127.0.0.1 (so it is on the node's network). Each span
//! the agent took is recorded on a hostPath the harness reads on the node ([`span_record`]).
//! `cloud-api` sends its spans straight to Jaeger's Service.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::render::ports;

/// The workload's namespace (what the logs scenario asks the log store for).
pub const NAMESPACE: &str = "e2e";
/// The NodePort edges call `cloud-api` on.
pub const CLOUD_API_NODE_PORT: u16 = 31880;
/// The folder on each edge node holding the record of the spans its agent took.
const RECORD_DIR: &str = "/var/lib/kubeprepare-e2e";

/// The workload's files, as (ConfigMap key, path under `/workload`, mode).
const FILES: [(&str, &str, i32); 5] = [
    ("lib.sh", "lib.sh", 0o644),
    ("edge-workload.sh", "edge-workload.sh", 0o755),
    ("cloud-api.sh", "cloud-api.sh", 0o755),
    ("index.html", "www/index.html", 0o644),
    ("work", "www/cgi-bin/work", 0o755),
];

/// Where on `node` the record of the spans its agent took is.
pub fn span_record(node: &str) -> String {
    format!("{RECORD_DIR}/spans-{node}.log")
}

/// Where the kubelet writes the edge pod's log on `node` (a glob: the pod's uid is in the path).
pub fn pod_log(node: &str) -> String {
    format!("/var/log/pods/{NAMESPACE}_workload-{node}_*/workload/*.log")
}

/// The objects, in the order they are applied: the namespace, the scripts, `cloud-api` and its
/// Service, a pod on each of `edges`, which call the cloud at `cloud_ip`. `image` is the probe
/// image (busybox); `jaeger_otlp` where `cloud-api`'s spans go.
pub fn objects(image: &str, edges: &[String], cloud_ip: &str, jaeger_otlp: &str) -> Result<Vec<Value>> {
    let dir = crate::paths::workload_dir();
    let mut data = serde_json::Map::new();
    for (key, path, _) in FILES {
        let file = dir.join(path);
        let text = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
        data.insert(key.into(), Value::String(text));
    }
    let items: Vec<Value> =
        FILES.iter().map(|(key, path, mode)| json!({ "key": key, "path": path, "mode": mode })).collect();
    let scripts = json!({ "name": "workload", "configMap": { "name": "workload", "items": items } });
    let mount = json!({ "name": "workload", "mountPath": "/workload", "readOnly": true });
    let labels = |name: &str| json!({ "app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "kubeprepare-e2e" });
    let container = |name: &str, script: &str, env: Value| {
        json!({
            "name": name,
            "image": image,
            "imagePullPolicy": "Never",
            "command": ["/bin/busybox", "sh", format!("/workload/{script}")],
            "env": env,
            "volumeMounts": [mount],
            "readinessProbe": {
                "httpGet": { "path": "/index.html", "port": ports::WORKLOAD },
                "periodSeconds": 2,
            },
        })
    };
    let env = |pairs: &[(&str, &str)]| -> Value {
        pairs.iter().map(|(name, value)| json!({ "name": name, "value": value })).collect()
    };
    let cloud_api = crate::e2e::compose::plan::CLOUD_API;
    let mut out = vec![
        json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": NAMESPACE } }),
        json!({
            "apiVersion": "v1", "kind": "ConfigMap",
            "metadata": { "name": "workload", "namespace": NAMESPACE },
            "data": data,
        }),
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": cloud_api, "namespace": NAMESPACE, "labels": labels(cloud_api) },
            "spec": {
                "affinity": crate::render::manifests::edge_affinity(false),
                "automountServiceAccountToken": false,
                "containers": [container(cloud_api, "cloud-api.sh", env(&[("OTLP_URL", jaeger_otlp)]))],
                "volumes": [scripts],
            },
        }),
        json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": { "name": cloud_api, "namespace": NAMESPACE },
            "spec": {
                "type": "NodePort",
                "selector": { "app.kubernetes.io/name": cloud_api },
                "ports": [{ "port": ports::WORKLOAD, "targetPort": ports::WORKLOAD, "nodePort": CLOUD_API_NODE_PORT }],
            },
        }),
    ];
    let otlp = format!("http://{}/v1/traces", crate::render::otelagent::otlp_listen());
    let call = format!("http://{cloud_ip}:{CLOUD_API_NODE_PORT}/cgi-bin/work");
    for node in edges {
        let record = span_record(node);
        let pairs = [
            ("NODE", node.as_str()),
            ("OTLP_URL", otlp.as_str()),
            ("CLOUD_API_URL", call.as_str()),
            ("SPAN_RECORD", record.as_str()),
            // A call every 10 s: enough for the traces scenario, little of the link's budget,
            // which is the observability stack's (the workload's own calls are the node's share).
            ("INTERVAL", "10"),
            // The kubelet writes the pod's log itself.
            ("OWN_POD_LOG", "no"),
        ];
        let mut c = container("workload", "edge-workload.sh", env(&pairs));
        c["volumeMounts"] = json!([mount, { "name": "record", "mountPath": RECORD_DIR }]);
        // Writes the record on the node's disk: as root.
        c["securityContext"] = json!({ "runAsUser": 0 });
        out.push(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": { "name": format!("workload-{node}"), "namespace": NAMESPACE, "labels": labels("workload") },
            "spec": {
                "nodeName": node,
                "hostNetwork": true,
                "dnsPolicy": "Default",
                "automountServiceAccountToken": false,
                // An edge workload stays through a cut, as a DaemonSet's pods do: without these, a
                // node unreachable for 5 minutes has its pods evicted (and their logs removed).
                "tolerations": [
                    { "key": crate::render::names::EDGE_NODE_LABEL, "operator": "Exists", "effect": "NoSchedule" },
                    { "key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute" },
                    { "key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute" },
                ],
                "containers": [c],
                "volumes": [scripts, { "name": "record", "hostPath": { "path": RECORD_DIR, "type": "DirectoryOrCreate" } }],
            },
        }));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every script the pods run is in the ConfigMap where they look for it; each edge pod is on
    /// its node's network (its agent is on 127.0.0.1) and calls the cloud's NodePort.
    #[test]
    fn the_pods_find_their_scripts_and_call_the_cloud() {
        let edges = ["edge-1".to_string(), "edge-2".to_string()];
        let objects =
            objects("probe@sha256:0", &edges, "10.0.0.2", "http://jaeger.observability.svc:4318/v1/traces").unwrap();
        let kinds: Vec<&str> = objects.iter().map(|o| o["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["Namespace", "ConfigMap", "Pod", "Service", "Pod", "Pod"]);
        let data = objects[1]["data"].as_object().unwrap();
        assert!(data["edge-workload.sh"].as_str().unwrap().contains(". /workload/lib.sh"));
        let edge = &objects[4];
        assert_eq!(edge["metadata"]["name"], "workload-edge-1");
        assert_eq!(edge["spec"]["nodeName"], "edge-1");
        assert_eq!(edge["spec"]["hostNetwork"], true);
        let tolerated: Vec<&str> =
            edge["spec"]["tolerations"].as_array().unwrap().iter().map(|t| t["key"].as_str().unwrap()).collect();
        assert!(tolerated.contains(&"node.kubernetes.io/unreachable"), "kept through a cut: {tolerated:?}");
        let env = edge["spec"]["containers"][0]["env"].as_array().unwrap();
        let value =
            |name: &str| env.iter().find(|e| e["name"] == name).map(|e| e["value"].as_str().unwrap().to_string());
        assert_eq!(value("CLOUD_API_URL").as_deref(), Some("http://10.0.0.2:31880/cgi-bin/work"));
        assert_eq!(value("OTLP_URL").as_deref(), Some("http://127.0.0.1:4318/v1/traces"));
        assert_eq!(value("SPAN_RECORD"), Some(span_record("edge-1")));
        for (key, path, _) in FILES {
            assert!(data.contains_key(key), "{key}");
            assert!(crate::paths::workload_dir().join(path).is_file(), "{path}");
        }
    }
}
