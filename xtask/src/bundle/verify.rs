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

/// Every problem found; empty means the bundle is intact and complete.
pub fn verify(files: &BundleFiles) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(sums) = files.get("SHA256SUMS") else {
        return vec!["SHA256SUMS is missing".into()];
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
    match files.get("bundle.json").map(|b| serde_json::from_slice::<serde_json::Value>(b)) {
        None => problems.push("bundle.json is missing".into()),
        Some(Err(e)) => problems.push(format!("bundle.json is not valid JSON: {e}")),
        Some(Ok(json)) => {
            for (path, rec) in json["files"].as_object().into_iter().flatten() {
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
        }
    }
    let present = present_images(files, &mut problems);
    let mut missing: Vec<String> = referenced_images(files, &mut problems)
        .into_iter()
        .filter(|r| {
            let (name, digest) = r.split_once('@').map_or((r.as_str(), None), |(n, d)| (n, Some(d)));
            match (present.get(name), digest) {
                (None, _) => true,
                (Some(digests), Some(d)) => !digests.contains(d),
                (Some(_), None) => false,
            }
        })
        .collect();
    missing.sort();
    if !missing.is_empty() {
        problems.push(format!("images referenced by the manifests but not in the bundle: {}", missing.join(", ")));
    }
    problems
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

/// Image references in the rendered manifests: every `image:` string of every document.
fn referenced_images(files: &BundleFiles, problems: &mut Vec<String>) -> BTreeSet<String> {
    fn walk(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("image", serde_json::Value::String(s)) => {
                            // name:tag, or name:tag@digest: then the archive must carry that very index.
                            out.insert(s.clone());
                        }
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for (path, bytes) in files.iter().filter(|(p, _)| p.starts_with("manifests/")) {
        let text = String::from_utf8_lossy(bytes);
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            match <serde_json::Value as serde::Deserialize>::deserialize(doc) {
                Ok(v) => walk(&v, &mut out),
                Err(e) => problems.push(format!("{path}: not valid YAML ({e}), so its images cannot be checked")),
            }
        }
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
    let problems = verify(&files);
    if problems.is_empty() {
        eprintln!("bundle verify: {}: {} files, all checksums and images OK", args.path, files.len());
        return Ok(());
    }
    for p in &problems {
        eprintln!("  {p}");
    }
    bail!("{}: {} problem(s) found", args.path, problems.len())
}
