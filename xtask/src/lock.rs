//! `cargo xtask lock`: resolve every image tag to its index digest and
//! per-platform manifest digests through the OCI distribution API (oci-client:
//! bearer-token auth as Docker Hub, ghcr and quay use; plain http only for
//! loopback registries), and every chart to the sha256 of its archive.
//! The lock (`stack.lock`) is JSON with sorted keys: the same answers, the same bytes.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use serde::{Deserialize, Serialize};

use crate::fetch::{ACCEPT, Retry, retry};
use crate::oci::sha256;
use crate::stack::{Chart, Image, Profile, Stack};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// Per profile.
    pub profiles: BTreeMap<String, ProfileLock>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileLock {
    /// Image reference (`registry/repo:tag`) → what it resolved to.
    pub images: BTreeMap<String, LockedImage>,
    /// `repo/name-version.tgz` → sha256 of the archive.
    pub charts: BTreeMap<String, LockedChart>,
    /// Programs built from Go modules into the images (local profile): `<program>/linux/<arch>`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub programs: BTreeMap<String, LockedProgram>,
    /// sha256 of the image plan the images were assembled from (local profile: entrypoints,
    /// defaults, ports, sources), so a change to how an image is put together makes the lock stale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

/// What went into one program's build (CONVENTIONS §17).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedProgram {
    pub module: String,
    pub version: String,
    /// `go env GOVERSION` of the build.
    pub toolchain: String,
    /// sha256 of the wrapper module's go.sum: every module that went in.
    pub go_sum: String,
    /// Digest of recipe, go.mod, go.sum, toolchain and arch: equal inputs, equal binaries.
    pub inputs: String,
    /// Binary name → sha256.
    pub binaries: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedImage {
    pub digest: String,
    pub media_type: String,
    /// `linux/amd64` → manifest digest.
    pub platforms: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LockedChart {
    pub url: String,
    pub digest: String,
    pub size: u64,
}

pub fn is_loopback(registry: &str) -> bool {
    let host = registry
        .rsplit_once(':')
        .map_or(registry, |(h, port)| if port.bytes().all(|b| b.is_ascii_digit()) { h } else { registry });
    host == "localhost" || host == "[::1]" || host.starts_with("127.")
}

/// A client that speaks https everywhere but to loopback registries.
pub fn client(profile: &Profile) -> Client {
    let mut plain: Vec<String> = profile
        .enabled()
        .flat_map(|c| c.images.iter())
        .map(|i| i.reference.registry.clone())
        .filter(|r| is_loopback(r))
        .collect();
    plain.sort();
    plain.dedup();
    Client::new(ClientConfig { protocol: ClientProtocol::HttpsExcept(plain), ..Default::default() })
}

/// Lock talks to registries interactively: fewer, quicker retries than bundle fetches.
const RETRY: Retry = Retry { attempts: 3, first_wait: Duration::from_secs(1) };

/// Resolve one image and check it carries every platform the stack declares.
pub async fn resolve_image(client: &Client, image: &Image) -> Result<LockedImage> {
    let name = image.reference.to_string();
    let reference: Reference = name.parse().with_context(|| format!("{name} is not a valid reference"))?;
    let (raw, digest) = retry(RETRY, &format!("resolving {name}"), || async {
        client.pull_manifest_raw(&reference, &RegistryAuth::Anonymous, &ACCEPT).await.map_err(anyhow::Error::from)
    })
    .await?;
    if sha256(&raw) != digest {
        bail!("{name}: the registry's digest {digest} does not match the manifest it sent ({})", sha256(&raw));
    }
    let doc: serde_json::Value =
        serde_json::from_slice(&raw).with_context(|| format!("{name}: manifest is not JSON"))?;
    let media_type = doc["mediaType"].as_str().unwrap_or_default().to_string();
    let mut platforms = BTreeMap::new();
    if let Some(list) = doc["manifests"].as_array() {
        for m in list {
            let (os, arch) = (m["platform"]["os"].as_str(), m["platform"]["architecture"].as_str());
            if let (Some(os), Some(arch), Some(d)) = (os, arch, m["digest"].as_str()) {
                let variant = m["platform"]["variant"].as_str().map(|v| format!("/{v}")).unwrap_or_default();
                platforms.insert(format!("{os}/{arch}{variant}"), d.to_string());
            }
        }
    } else {
        bail!("{name} is a single-platform image; the stack needs an index covering {:?}", image.platforms);
    }
    for p in &image.platforms {
        let want = serde_json::to_value(p)?.as_str().unwrap_or_default().to_string();
        if !platforms.contains_key(&want) && !platforms.keys().any(|k| k.starts_with(&format!("{want}/"))) {
            bail!(
                "{name} has no {want} manifest (it has: {})",
                platforms.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
    Ok(LockedImage { digest, media_type, platforms })
}

/// Resolve a chart through its repository's index.yaml and hash the archive.
pub async fn resolve_chart(http: &reqwest::Client, chart: &Chart) -> Result<LockedChart> {
    let index_url = format!("{}/index.yaml", chart.repo.as_str().trim_end_matches('/'));
    let index = retry(RETRY, &format!("fetching {index_url}"), || async {
        let r = http.get(&index_url).send().await?.error_for_status()?;
        Ok(r.text().await?)
    })
    .await?;
    let index: serde_yaml_ng::Value =
        serde_yaml_ng::from_str(&index).with_context(|| format!("{index_url} is not YAML"))?;
    let entries = index["entries"][chart.name.as_str()]
        .as_sequence()
        .with_context(|| format!("{index_url} has no chart {}", chart.name))?;
    let entry = entries
        .iter()
        .find(|e| {
            e["version"].as_str() == Some(chart.version.as_str().trim_start_matches('v'))
                || e["version"].as_str() == Some(chart.version.as_str())
        })
        .with_context(|| format!("{index_url} has no {} version {}", chart.name, chart.version))?;
    let url = entry["urls"][0]
        .as_str()
        .with_context(|| format!("{index_url}: {} {} has no url", chart.name, chart.version))?;
    let url = if url.contains("://") {
        url.to_string()
    } else {
        format!("{}/{url}", chart.repo.as_str().trim_end_matches('/'))
    };
    let bytes = retry(RETRY, &format!("downloading {url}"), || async {
        Ok(http.get(&url).send().await?.error_for_status()?.bytes().await?.to_vec())
    })
    .await?;
    Ok(LockedChart { url, digest: sha256(&bytes), size: bytes.len() as u64 })
}

/// Resolve every enabled image and chart of a profile.
pub async fn resolve(profile: &Profile) -> Result<ProfileLock> {
    let client = client(profile);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(120)).build()?;
    let mut lock = ProfileLock::default();
    for c in profile.enabled() {
        for img in &c.images {
            let locked = resolve_image(&client, img).await?;
            lock.images.insert(img.reference.to_string(), locked);
        }
        if let Some(chart) = &c.chart {
            let locked = resolve_chart(&http, chart).await.with_context(|| format!("chart of {}", c.name))?;
            lock.charts.insert(chart.lock_key(), locked);
        }
    }
    Ok(lock)
}

/// Copy the lock's digests into the profile's images and charts (a digest
/// already written in stack.toml is kept, and must agree with the lock).
/// Returns what stays unpinned: image references and chart archive names.
pub fn apply(stack: &mut Stack, profile: &str, lock: Option<&ProfileLock>) -> Result<Vec<String>> {
    let empty = ProfileLock::default();
    let lock = lock.unwrap_or(&empty);
    let profile = stack
        .profiles
        .iter_mut()
        .find(|(n, _)| n.as_str() == profile)
        .map(|(_, p)| p)
        .with_context(|| format!("no profile {profile:?} in stack.toml"))?;
    let mut unpinned = Vec::new();
    for c in profile.components.iter_mut().filter(|c| c.enabled) {
        for img in &mut c.images {
            let name = img.reference.to_string();
            match (lock.images.get(&name), &img.digest) {
                (Some(l), Some(d)) if l.digest != d.as_str() => {
                    bail!("{name}: stack.toml pins {} but the lock says {}; remove one of them", d.as_str(), l.digest)
                }
                (Some(l), None) => img.digest = Some(l.digest.clone().try_into().map_err(anyhow::Error::msg)?),
                (None, None) => unpinned.push(name),
                _ => {}
            }
        }
        if let Some(chart) = &mut c.chart {
            let key = chart.lock_key();
            match (lock.charts.get(&key), &chart.digest) {
                (Some(l), None) => chart.digest = Some(l.digest.clone().try_into().map_err(anyhow::Error::msg)?),
                (None, None) => unpinned.push(key),
                _ => {}
            }
        }
    }
    Ok(unpinned)
}

pub fn read(path: &Utf8Path) -> Result<Lock> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("{path} is not a valid lock file; delete it and run `cargo xtask lock`")),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Lock::default()),
        Err(e) => Err(e).with_context(|| format!("reading {path}")),
    }
}

/// Replace one profile's entry in the lock file at `path`, keeping the others.
pub fn update(path: &Utf8Path, profile: &str, resolved: ProfileLock) -> Result<()> {
    let mut lock = read(path)?;
    lock.profiles.insert(profile.to_string(), resolved);
    write(path, &lock)
}

pub fn write(path: &Utf8Path, lock: &Lock) -> Result<()> {
    let mut text = serde_json::to_string_pretty(lock)?;
    text.push('\n');
    crate::atomic::write(path, text.as_bytes(), false)
}

/// Resolve image tags and chart versions to digests and write stack.lock.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Profile to lock (default: upstream).
    #[arg(long, default_value = "upstream")]
    pub profile: String,
    /// Lock file to update (default: the profile's `lock`, else stack.lock at the project root).
    #[arg(long)]
    pub out: Option<Utf8PathBuf>,
}

pub fn run(args: Args) -> Result<()> {
    let stack: Stack = crate::stack::load(&crate::paths::stack_file())?;
    let profile = stack.profile(&args.profile)?;
    let out = args.out.unwrap_or_else(|| profile.lock_file());
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let resolved = rt.block_on(resolve(profile))?;
    crate::note!("lock: {}: {} images, {} charts resolved", args.profile, resolved.images.len(), resolved.charts.len());
    update(&out, &args.profile, resolved)?;
    crate::note!("lock: wrote {out}");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_loopback_registries_get_plain_http() {
        for yes in ["127.0.0.1:5000", "localhost:5000", "localhost", "[::1]:5000"] {
            assert!(super::is_loopback(yes), "{yes}");
        }
        for no in ["localhost.example.com", "quay.io", "10.0.0.1:5000", "docker.io"] {
            assert!(!super::is_loopback(no), "{no}");
        }
    }
}
