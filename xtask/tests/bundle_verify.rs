//! `cargo xtask bundle verify` on a bundle carrying a chart (the local profile has none):
//! every image the chart's values name, with the HelmChart's values, must be in the bundle.

use std::collections::BTreeMap;
use std::process::Command;

use camino::Utf8Path;
use xtask::oci::sha256;

fn tgz(files: &[(&str, &str)]) -> Vec<u8> {
    let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut b = tar::Builder::new(gz);
    for (path, text) in files {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(text.len() as u64);
        b.append_data(&mut h, path, text.as_bytes()).unwrap();
    }
    b.into_inner().unwrap().finish().unwrap()
}

/// An image archive with only its index (enough for verify's image check).
fn image_archive(name: &str) -> Vec<u8> {
    let index = serde_json::json!({"manifests": [{
        "digest": "sha256:1111111111111111111111111111111111111111111111111111111111111111",
        "annotations": {"io.containerd.image.name": name},
    }]});
    let mut b = tar::Builder::new(Vec::new());
    let text = index.to_string();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(text.len() as u64);
    b.append_data(&mut h, "index.json", text.as_bytes()).unwrap();
    b.into_inner().unwrap()
}

/// Writes a bundle folder with consistent SHA256SUMS and bundle.json.
fn write_bundle(dir: &Utf8Path, files: &[(&str, Vec<u8>)], unused: serde_json::Value) {
    let mut sums = String::new();
    let mut records = BTreeMap::new();
    for (path, bytes) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, bytes).unwrap();
        sums.push_str(&format!("{}  {path}\n", sha256(bytes).trim_start_matches("sha256:")));
        let source = if path.starts_with("charts/") {
            serde_json::json!({"kind": "chart", "url": "https://charts.example/stack-2.0.0.tgz", "digest": sha256(bytes), "unused_images": unused})
        } else {
            serde_json::json!({"kind": "rendered"})
        };
        records.insert(
            path.to_string(),
            serde_json::json!({"sha256": sha256(bytes), "size": bytes.len(), "source": source}),
        );
    }
    std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
    std::fs::write(dir.join("bundle.json"), serde_json::json!({"schema": 1, "files": records}).to_string()).unwrap();
}

fn verify(dir: &Utf8Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["bundle", "verify", dir.as_str()]).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A chart shaped like kube-prometheus-stack: an operator, a conditional Thanos image, and an
/// enabled and a disabled subchart.
fn stack_chart() -> Vec<u8> {
    tgz(&[
        (
            "stack/Chart.yaml",
            "apiVersion: v2\nname: stack\nversion: 2.0.0\nappVersion: v0.93.1\ndependencies:\n- {name: grafana, version: 1.0.0, condition: grafana.enabled}\n- {name: windows, version: 1.0.0, condition: windows.enabled}\n",
        ),
        (
            "stack/values.yaml",
            "operator:\n  image: {registry: quay.io, repository: prometheus-operator/prometheus-operator}\n  thanosImage: {registry: quay.io, repository: thanos/thanos, tag: v0.39.2}\n  webhooks:\n    enabled: false\n    patch:\n      image: {registry: registry.k8s.io, repository: ingress-nginx/kube-webhook-certgen, tag: v1.6.0}\ngrafana:\n  enabled: true\nwindows:\n  enabled: false\n",
        ),
        ("stack/charts/grafana/Chart.yaml", "apiVersion: v2\nname: grafana\nversion: 1.0.0\nappVersion: 13.2.0\n"),
        (
            "stack/charts/grafana/values.yaml",
            "image: {registry: docker.io, repository: grafana/grafana}\nsidecar:\n  image: {registry: quay.io, repository: kiwigrid/k8s-sidecar, tag: 2.10.1}\n",
        ),
        ("stack/charts/windows/Chart.yaml", "apiVersion: v2\nname: windows\nversion: 1.0.0\nappVersion: 0.31.0\n"),
        (
            "stack/charts/windows/values.yaml",
            "image: {registry: ghcr.io, repository: prometheus-community/windows-exporter}\n",
        ),
    ])
}

const HELMCHART: &str = "apiVersion: helm.cattle.io/v1\nkind: HelmChart\nmetadata: {name: kps, namespace: kube-system}\nspec:\n  chart: https://%{KUBERNETES_API}%/static/charts/stack-2.0.0.tgz\n  targetNamespace: observability\n  valuesContent: |\n    operator:\n      image: {tag: v0.93.1}\n    grafana:\n      image: {tag: 13.2.0}\n";

#[test]
fn verify_lists_the_images_a_charts_values_name_that_the_bundle_lacks() {
    let t = tempfile::tempdir().unwrap();
    let dir = Utf8Path::from_path(t.path()).unwrap().join("observability");
    let files = vec![
        ("charts/stack-2.0.0.tgz", stack_chart()),
        ("manifests/10-helmchart-kps.yaml", HELMCHART.as_bytes().to_vec()),
        ("images/cloud/operator.tar", image_archive("quay.io/prometheus-operator/prometheus-operator:v0.93.1")),
    ];
    write_bundle(&dir, &files, serde_json::json!({}));
    let (ok, stderr) = verify(&dir);
    assert!(!ok, "{stderr}");
    for line in [
        "image docker.io/grafana/grafana:13.2.0 is not in the bundle (named by charts/stack-2.0.0.tgz values grafana.image)",
        "image quay.io/kiwigrid/k8s-sidecar:2.10.1 is not in the bundle (named by charts/stack-2.0.0.tgz values grafana.sidecar.image)",
        "image quay.io/thanos/thanos:v0.39.2 is not in the bundle (named by charts/stack-2.0.0.tgz values operator.thanosImage)",
        "3 problem(s) found",
    ] {
        assert!(stderr.contains(line), "missing {line:?} in:\n{stderr}");
    }
    // Disabled: the webhook image (enabled: false) and the windows subchart (condition false).
    assert!(!stderr.contains("certgen") && !stderr.contains("windows-exporter"), "{stderr}");

    // With the images bundled and Thanos declared unused, it passes and says why Thanos is absent.
    let mut files = files;
    files.push(("images/cloud/grafana.tar", image_archive("docker.io/grafana/grafana:13.2.0")));
    files.push(("images/cloud/sidecar.tar", image_archive("quay.io/kiwigrid/k8s-sidecar:2.10.1")));
    std::fs::remove_dir_all(&dir).unwrap();
    write_bundle(&dir, &files, serde_json::json!({"operator.thanosImage": "used only by ThanosRuler"}));
    let (ok, stderr) = verify(&dir);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("note: charts/stack-2.0.0.tgz: operator.thanosImage = quay.io/thanos/thanos:v0.39.2 is not bundled, declared unused: used only by ThanosRuler"), "{stderr}");
}
