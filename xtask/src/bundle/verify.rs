//! `cargo xtask bundle verify PATH`: offline, check every checksum and digest of a
//! bundle (a `.tar.gz` or its unpacked `observability/` folder), and that every
//! image a rendered manifest names is present in one of its image archives.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};

use crate::archive::{Limits, read_tgz};
use crate::oci::layer::Entry;
use crate::oci::{ANNOTATION_CONTAINERD_NAME, sha256};

/// A bundle's files by path relative to `observability/`.
pub type BundleFiles = BTreeMap<String, Vec<u8>>;

/// Read a bundle archive (refusing traversal and bombs) or an unpacked folder.
pub fn load(path: &Utf8Path) -> Result<BundleFiles> {
    let mut out = BTreeMap::new();
    if path.is_dir() {
        let mut stack = vec![path.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for e in std::fs::read_dir(&dir).with_context(|| format!("listing {dir}"))? {
                let p = Utf8PathBuf::from_path_buf(e?.path())
                    .map_err(|p| anyhow::anyhow!("non UTF-8 path {}", p.display()))?;
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p.strip_prefix(path)?.to_string();
                    out.insert(rel, std::fs::read(&p).with_context(|| format!("reading {p}"))?);
                }
            }
        }
        return Ok(out);
    }
    let bytes = std::fs::read(path).with_context(|| format!("reading {path}"))?;
    let limits = Limits { total: 16 << 30, entries: 100_000 };
    for (p, entry) in read_tgz(&bytes, path.as_str(), limits)? {
        if let Entry::File { data, .. } = entry {
            let rel =
                p.strip_prefix("observability/").with_context(|| format!("{path}: {p} is outside observability/"))?;
            out.insert(rel.to_string(), data);
        }
    }
    Ok(out)
}

/// What `bundle verify` found: problems fail it, notes are printed for the reader.
#[derive(Debug, Default)]
pub struct Verdict {
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

/// Every problem found; empty means the bundle is intact and complete.
pub fn verify(files: &BundleFiles) -> Vec<String> {
    check(files).problems
}

/// Check checksums, digests, and that every image the manifests and chart values name is present.
pub fn check(files: &BundleFiles) -> Verdict {
    let mut v = Verdict::default();
    let problems = &mut v.problems;
    let Some(sums) = files.get("SHA256SUMS") else {
        v.problems.push("SHA256SUMS is missing".into());
        return v;
    };
    let mut listed = BTreeSet::new();
    for (i, line) in String::from_utf8_lossy(sums).lines().enumerate() {
        let Some((hex, path)) = line.split_once("  ") else {
            problems.push(format!("SHA256SUMS line {}: not `<sha256>  <path>`", i + 1));
            continue;
        };
        listed.insert(path.to_string());
        match files.get(path) {
            None => problems.push(format!("{path}: listed in SHA256SUMS but missing")),
            Some(bytes) if sha256(bytes) != format!("sha256:{hex}") => problems
                .push(format!("{path}: checksum mismatch (SHA256SUMS says {hex}, content is {})", sha256(bytes))),
            Some(_) => {}
        }
    }
    for path in files.keys() {
        if path != "SHA256SUMS" && path != "bundle.json" && !listed.contains(path) {
            problems.push(format!("{path}: not listed in SHA256SUMS"));
        }
    }
    let mut json = serde_json::Value::Null;
    match files.get("bundle.json").map(|b| serde_json::from_slice::<serde_json::Value>(b)) {
        None => problems.push("bundle.json is missing".into()),
        Some(Err(e)) => problems.push(format!("bundle.json is not valid JSON: {e}")),
        Some(Ok(j)) => {
            for (path, rec) in j["files"].as_object().into_iter().flatten() {
                match files.get(path) {
                    None => problems.push(format!("{path}: in bundle.json but missing")),
                    Some(bytes)
                        if rec["sha256"].as_str() != Some(sha256(bytes).as_str())
                            || rec["size"].as_u64() != Some(bytes.len() as u64) =>
                    {
                        problems.push(format!("{path}: digest or size differs from bundle.json"))
                    }
                    Some(_) => {}
                }
            }
            json = j;
        }
    }
    let present = present_images(files, problems);
    // reference → where it is named (a manifest, or a chart's values path).
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let docs = manifest_docs(files, problems);
    for (reference, at) in manifest_images(&docs) {
        wanted.entry(reference).or_default().insert(at);
    }
    for (reference, at) in chart_images(files, &docs, &json, &present, &mut v) {
        wanted.entry(reference).or_default().insert(at);
    }
    for (reference, at) in &wanted {
        if !is_present(&present, reference) {
            let at: Vec<&str> = at.iter().map(String::as_str).collect();
            v.problems.push(format!("image {reference} is not in the bundle (named by {})", at.join(", ")));
        }
    }
    v
}

/// A reference in the form image archives name images: the registry explicit
/// (`docker.io` when none), `library/` for Docker Hub's official images, and the tag
/// `latest` when there is neither tag nor digest. Returns (`registry/repository`, tag, digest).
pub fn normalize(reference: &str) -> (String, Option<String>, Option<String>) {
    let (name, digest) = match reference.split_once('@') {
        Some((n, d)) => (n, Some(d.to_string())),
        None => (reference, None),
    };
    let (repo, tag) = match name.rfind(':') {
        Some(i) if !name[i..].contains('/') => (&name[..i], Some(name[i + 1..].to_string())),
        _ => (name, None),
    };
    let first = repo.split('/').next().unwrap_or_default();
    let has_registry = repo.contains('/') && (first.contains('.') || first.contains(':') || first == "localhost");
    let repo = match (has_registry, repo.contains('/')) {
        (true, _) => repo.to_string(),
        (false, true) => format!("docker.io/{repo}"),
        (false, false) => format!("docker.io/library/{repo}"),
    };
    let tag = if tag.is_none() && digest.is_none() { Some("latest".to_string()) } else { tag };
    (repo, tag, digest)
}

/// Whether the bundle carries `reference`: by repository and digest when it has a digest
/// (some charts drop the tag then), else by repository and tag.
fn is_present(present: &BTreeMap<String, BTreeSet<String>>, reference: &str) -> bool {
    let (repo, tag, digest) = normalize(reference);
    present.iter().any(|(name, digests)| {
        let (r, t, _) = normalize(name);
        r == repo
            && match &digest {
                Some(d) => digests.contains(d),
                None => t == tag,
            }
    })
}

/// Images named by the values of each chart in `charts/`, with the values its HelmChart
/// manifests pass (`spec.valuesContent`). Images the stack declared unused (recorded in
/// bundle.json) become notes when absent; a declaration the chart does not match is a note too.
fn chart_images(
    files: &BundleFiles,
    docs: &[(String, serde_json::Value)],
    bundle_json: &serde_json::Value,
    present: &BTreeMap<String, BTreeSet<String>>,
    v: &mut Verdict,
) -> Vec<(String, String)> {
    let helm_charts = helm_charts(docs, &mut v.problems);
    let mut out = Vec::new();
    for (path, tgz) in files.iter().filter(|(p, _)| p.starts_with("charts/") && p.ends_with(".tgz")) {
        let file_name = path.trim_start_matches("charts/");
        let unused: BTreeMap<String, String> = bundle_json["files"][path.as_str()]["source"]["unused_images"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, why)| (k.clone(), why.as_str().unwrap_or_default().to_string()))
            .collect();
        let installs: Vec<&(String, serde_yaml_ng::Value)> =
            helm_charts.iter().filter(|(url, _)| url.rsplit('/').next() == Some(file_name)).map(|(_, hc)| hc).collect();
        let installs = if installs.is_empty() {
            v.notes.push(format!(
                "{path}: no HelmChart in manifests/ installs it; its images are checked with its own values"
            ));
            vec![("its default values".to_string(), serde_yaml_ng::Value::Null)]
        } else {
            installs.into_iter().cloned().collect()
        };
        let mut seen_paths = BTreeSet::new();
        for (manifest, values) in installs {
            let images = match super::chart_images::chart_images(tgz, path, &values) {
                Ok(images) => images,
                Err(e) => {
                    v.problems.push(format!("{path} (values from {manifest}): {e:#}"));
                    continue;
                }
            };
            for image in images {
                seen_paths.insert(image.values_path.clone());
                match unused.get(&image.values_path) {
                    Some(why) if !is_present(present, &image.reference) => v.notes.push(format!(
                        "{path}: {} = {} is not bundled, declared unused: {why}",
                        image.values_path, image.reference
                    )),
                    _ => out.push((image.reference, format!("{path} values {}", image.values_path))),
                }
            }
        }
        for stale in unused.keys().filter(|p| !seen_paths.contains(*p)) {
            v.notes.push(format!(
                "{path}: `{stale}` is declared unused but the chart's values name no image there (remove it from the stack)"
            ));
        }
    }
    out
}

/// Every HelmChart of the manifests: (spec.chart URL, (manifest path, parsed spec.valuesContent)).
fn helm_charts(
    docs: &[(String, serde_json::Value)],
    problems: &mut Vec<String>,
) -> Vec<(String, (String, serde_yaml_ng::Value))> {
    let mut out = Vec::new();
    for (path, doc) in docs {
        if doc["kind"].as_str() != Some("HelmChart") {
            continue;
        }
        let Some(url) = doc["spec"]["chart"].as_str() else { continue };
        let values = match doc["spec"]["valuesContent"].as_str() {
            None => serde_yaml_ng::Value::Null,
            Some(text) => match serde_yaml_ng::from_str(text) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(format!("{path}: spec.valuesContent is not valid YAML: {e}"));
                    continue;
                }
            },
        };
        out.push((url.to_string(), (path.clone(), values)));
    }
    out
}

/// The images the bundle's archives carry (from their index.json): name → index digests.
fn present_images(files: &BundleFiles, problems: &mut Vec<String>) -> BTreeMap<String, BTreeSet<String>> {
    let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (path, bytes) in files.iter().filter(|(p, _)| p.starts_with("images/")) {
        let tar = if path.ends_with(".tar.zst") {
            match zstd::stream::decode_all(bytes.as_slice()) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{path}: not a valid zstd stream: {e}"));
                    continue;
                }
            }
        } else if path.ends_with(".tar") {
            bytes.clone()
        } else {
            problems.push(format!("{path}: not an image archive (.tar or .tar.zst)"));
            continue;
        };
        let mut archive = tar::Archive::new(tar.as_slice());
        let index = archive.entries().ok().and_then(|mut es| {
            es.find_map(|e| {
                let mut e = e.ok()?;
                (e.path().ok()?.to_str()? == "index.json").then(|| {
                    let mut s = String::new();
                    std::io::Read::read_to_string(&mut e, &mut s).ok().map(|_| s)
                })?
            })
        });
        let Some(index) = index.and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok()) else {
            problems.push(format!("{path}: no readable index.json"));
            continue;
        };
        for m in index["manifests"].as_array().into_iter().flatten() {
            match m["annotations"][ANNOTATION_CONTAINERD_NAME].as_str() {
                Some(name) => {
                    let digest = m["digest"].as_str().unwrap_or_default().to_string();
                    names.entry(name.to_string()).or_default().insert(digest);
                }
                None => problems.push(format!(
                    "{path}: an index entry has no {ANNOTATION_CONTAINERD_NAME} (it would import as nothing)"
                )),
            }
        }
    }
    names
}

/// Every YAML document of `manifests/`, with its file's path.
fn manifest_docs(files: &BundleFiles, problems: &mut Vec<String>) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    for (path, bytes) in files.iter().filter(|(p, _)| p.starts_with("manifests/")) {
        let text = String::from_utf8_lossy(bytes);
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            match <serde_json::Value as serde::Deserialize>::deserialize(doc) {
                Ok(v) => out.push((path.clone(), v)),
                Err(e) => problems.push(format!("{path}: not valid YAML ({e}), so its images cannot be checked")),
            }
        }
    }
    out
}

/// Image references in the rendered manifests: every `image:` string of every document,
/// with the manifest naming it. A `name:tag@digest` must be that very index.
fn manifest_images(docs: &[(String, serde_json::Value)]) -> Vec<(String, String)> {
    fn walk(v: &serde_json::Value, path: &str, out: &mut Vec<(String, String)>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("image", serde_json::Value::String(s)) => out.push((s.clone(), path.to_string())),
                        _ => walk(v, path, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, path, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (path, doc) in docs {
        walk(doc, path, &mut out);
    }
    out
}

/// Check a bundle offline: checksums, digests, and that every referenced image is present.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A bundle `.tar.gz`, or an unpacked `observability/` folder.
    pub path: Utf8PathBuf,
}

pub fn run(args: Args) -> Result<()> {
    let files = load(&args.path)?;
    let Verdict { problems, notes } = check(&files);
    for n in &notes {
        crate::note!("  note: {n}");
    }
    if problems.is_empty() {
        crate::note!("bundle verify: {}: {} files, all checksums and images OK", args.path, files.len());
        return Ok(());
    }
    for p in &problems {
        crate::note!("  {p}");
    }
    bail!("{}: {} problem(s) found", args.path, problems.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar(files: &[(&str, &[u8])], gzip: bool) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, *data).unwrap();
        }
        let bytes = b.into_inner().unwrap();
        if !gzip {
            return bytes;
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &bytes).unwrap();
        gz.finish().unwrap()
    }

    /// An image archive holding only an index that names `images` (name, index digest).
    fn image_archive(images: &[(&str, &str)]) -> Vec<u8> {
        let manifests: Vec<_> = images
            .iter()
            .map(|(name, digest)| serde_json::json!({"digest": digest, "annotations": {ANNOTATION_CONTAINERD_NAME: name}}))
            .collect();
        tar(&[("index.json", serde_json::json!({ "manifests": manifests }).to_string().as_bytes())], false)
    }

    const CHART_YAML: &str = "apiVersion: v2\nname: demo\nversion: 1.0.0\nappVersion: v1\n";
    const VALUES: &str = "
image: {registry: quay.io, repository: demo/app}
sidecar:
  image: {repository: busybox, tag: '1.36'}
thanosImage: {registry: quay.io, repository: thanos/thanos, tag: v0.39.0}
";
    const DIGEST_A: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const DIGEST_B: &str = "sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    fn helm_chart(values: &str) -> Vec<u8> {
        let doc = serde_json::json!({
            "apiVersion": "helm.cattle.io/v1",
            "kind": "HelmChart",
            "metadata": {"name": "demo", "namespace": "kube-system"},
            "spec": {"chart": "https://%{KUBERNETES_API}%/static/charts/demo-1.0.0.tgz", "valuesContent": values},
        });
        serde_yaml_ng::to_string(&doc).unwrap().into_bytes()
    }

    /// A consistent bundle (sums and bundle.json) of `files`; the chart declares `unused`.
    fn bundle(files: Vec<(&str, Vec<u8>)>, unused: &[(&str, &str)]) -> BundleFiles {
        let mut out: BundleFiles = files.into_iter().map(|(p, b)| (p.to_string(), b)).collect();
        let mut sums = String::new();
        let mut records = serde_json::Map::new();
        for (path, bytes) in &out {
            sums.push_str(&format!("{}  {path}\n", sha256(bytes).trim_start_matches("sha256:")));
            let mut source = serde_json::json!({"kind": "rendered"});
            if path.starts_with("charts/") {
                let unused: BTreeMap<_, _> = unused.iter().copied().collect();
                source = serde_json::json!({"kind": "chart", "url": "https://x/demo-1.0.0.tgz", "digest": sha256(bytes), "unused_images": unused});
            }
            records.insert(
                path.clone(),
                serde_json::json!({"sha256": sha256(bytes), "size": bytes.len(), "source": source}),
            );
        }
        out.insert("SHA256SUMS".into(), sums.into_bytes());
        out.insert("bundle.json".into(), serde_json::json!({ "files": records }).to_string().into_bytes());
        out
    }

    fn demo_chart() -> Vec<u8> {
        tar(&[("demo/Chart.yaml", CHART_YAML.as_bytes()), ("demo/values.yaml", VALUES.as_bytes())], true)
    }

    #[test]
    fn every_image_the_chart_values_name_must_be_in_the_bundle() {
        let files = bundle(
            vec![
                ("charts/demo-1.0.0.tgz", demo_chart()),
                ("manifests/10-helmchart-demo.yaml", helm_chart("image:\n  tag: v2\n")),
                ("images/cloud/app.tar", image_archive(&[("quay.io/demo/app:v2", DIGEST_A)])),
            ],
            &[],
        );
        let v = check(&files);
        assert_eq!(
            v.problems,
            [
                "image busybox:1.36 is not in the bundle (named by charts/demo-1.0.0.tgz values sidecar.image)",
                "image quay.io/thanos/thanos:v0.39.0 is not in the bundle (named by charts/demo-1.0.0.tgz values thanosImage)",
            ]
        );
        assert!(v.notes.is_empty(), "{:?}", v.notes);

        // The chart's default tag (its appVersion) is not what the HelmChart deploys: v2 is.
        let files = bundle(
            vec![
                ("charts/demo-1.0.0.tgz", demo_chart()),
                ("manifests/10-helmchart-demo.yaml", helm_chart("image:\n  tag: v2\n")),
                ("images/cloud/app.tar", image_archive(&[("quay.io/demo/app:v1", DIGEST_A)])),
            ],
            &[("sidecar.image", "x"), ("thanosImage", "y")],
        );
        assert_eq!(
            check(&files).problems,
            ["image quay.io/demo/app:v2 is not in the bundle (named by charts/demo-1.0.0.tgz values image)"]
        );
    }

    #[test]
    fn images_declared_unused_are_notes_and_stale_declarations_are_reported() {
        let files = bundle(
            vec![
                ("charts/demo-1.0.0.tgz", demo_chart()),
                ("manifests/10-helmchart-demo.yaml", helm_chart("image:\n  tag: v2\n")),
                // Docker Hub's short name, as an archive names it in full.
                ("images/cloud/app.tar", image_archive(&[("quay.io/demo/app:v2", DIGEST_A)])),
                ("images/cloud/busybox.tar", image_archive(&[("docker.io/library/busybox:1.36", DIGEST_B)])),
            ],
            &[("thanosImage", "used only by ThanosRuler"), ("grafana.image", "gone")],
        );
        let v = check(&files);
        assert_eq!(v.problems, Vec::<String>::new());
        assert_eq!(
            v.notes,
            [
                "charts/demo-1.0.0.tgz: thanosImage = quay.io/thanos/thanos:v0.39.0 is not bundled, declared unused: used only by ThanosRuler",
                "charts/demo-1.0.0.tgz: `grafana.image` is declared unused but the chart's values name no image there (remove it from the stack)",
            ]
        );
    }

    #[test]
    fn a_digest_in_the_values_must_match_the_bundled_index_whatever_the_tag() {
        let case = |values: &str| {
            let files = bundle(
                vec![
                    ("charts/demo-1.0.0.tgz", demo_chart()),
                    ("manifests/10-helmchart-demo.yaml", helm_chart(values)),
                    ("images/cloud/app.tar", image_archive(&[("quay.io/demo/app:v2", DIGEST_A)])),
                ],
                &[("sidecar.image", "x"), ("thanosImage", "y")],
            );
            check(&files).problems
        };
        assert_eq!(case(&format!("image: {{tag: v2, digest: '{DIGEST_A}'}}")), Vec::<String>::new());
        // The same index under another tag (charts that drop the tag when a digest is set).
        assert_eq!(case(&format!("image: {{tag: v9, digest: '{DIGEST_A}'}}")), Vec::<String>::new());
        assert_eq!(
            case(&format!("image: {{tag: v2, digest: '{DIGEST_B}'}}")),
            [format!(
                "image quay.io/demo/app:v2@{DIGEST_B} is not in the bundle (named by charts/demo-1.0.0.tgz values image)"
            )]
        );
    }

    #[test]
    fn a_chart_no_helmchart_installs_is_checked_with_its_defaults_and_noted() {
        let files = bundle(
            vec![
                ("charts/demo-1.0.0.tgz", demo_chart()),
                ("images/cloud/app.tar", image_archive(&[("quay.io/demo/app:v1", DIGEST_A)])),
            ],
            &[("sidecar.image", "x"), ("thanosImage", "y")],
        );
        let v = check(&files);
        assert_eq!(v.problems, Vec::<String>::new());
        assert!(v.notes[0].contains("no HelmChart in manifests/ installs it"), "{:?}", v.notes);
    }

    #[test]
    fn a_broken_chart_or_values_content_is_a_problem_naming_the_file() {
        let files = bundle(
            vec![
                ("charts/demo-1.0.0.tgz", b"not gzip".to_vec()),
                ("manifests/10-helmchart-demo.yaml", helm_chart("image: [unclosed\n")),
            ],
            &[],
        );
        let v = check(&files);
        assert!(
            v.problems
                .iter()
                .any(|p| p.starts_with("manifests/10-helmchart-demo.yaml: spec.valuesContent is not valid YAML")),
            "{:?}",
            v.problems
        );
        let files = bundle(
            vec![
                ("charts/demo-1.0.0.tgz", b"not gzip".to_vec()),
                ("manifests/10-helmchart-demo.yaml", helm_chart("image: {tag: v2}\n")),
            ],
            &[],
        );
        let v = check(&files);
        assert!(
            v.problems
                .iter()
                .any(|p| p.starts_with("charts/demo-1.0.0.tgz (values from manifests/10-helmchart-demo.yaml)")),
            "{:?}",
            v.problems
        );
    }

    #[test]
    fn references_are_compared_in_full_form() {
        let n = |r: &str| normalize(r);
        let s = |x: &str| Some(x.to_string());
        assert_eq!(n("busybox"), ("docker.io/library/busybox".into(), s("latest"), None));
        assert_eq!(n("grafana/grafana:13.2.0"), ("docker.io/grafana/grafana".into(), s("13.2.0"), None));
        assert_eq!(n("docker.io/grafana/grafana:13.2.0").0, "docker.io/grafana/grafana");
        assert_eq!(n("localhost/app").0, "localhost/app");
        assert_eq!(n("127.0.0.1:5000/a/b:t"), ("127.0.0.1:5000/a/b".into(), s("t"), None));
        assert_eq!(n(&format!("quay.io/a/b@{DIGEST_A}")), ("quay.io/a/b".into(), None, s(DIGEST_A)));
        assert_eq!(n(&format!("quay.io/a/b:v1@{DIGEST_A}")), ("quay.io/a/b".into(), s("v1"), s(DIGEST_A)));
    }
}
