//! Filling the [`Cache`] from registries (OCI distribution API through
//! oci-client, Bearer-token auth included) and chart repositories (https).
//!
//! Everything is fetched by digest: a tag is never followed here (that is
//! `lock`'s job). Each blob is verified against its digest and size before it
//! enters the cache; an interrupted download resumes from its `partial/` file
//! with an HTTP range request; failures are retried a bounded number of times
//! with exponential backoff; progress bars go to stderr (plain lines when
//! stderr is not a terminal, as on CI).

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use futures_util::{StreamExt, TryStreamExt};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use oci_client::client::BlobResponse;
use oci_client::manifest::OciDescriptor;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};

use crate::cache::Cache;
use crate::oci::{Index, Manifest, sha256};
use crate::stack::Arch;

/// Media types accepted for indexes and manifests.
pub const ACCEPT: [&str; 4] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v2+json",
];

/// How many times a failing request is tried, and the first wait (doubled each time).
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub attempts: u32,
    pub first_wait: Duration,
}

impl Retry {
    pub const DEFAULT: Retry = Retry { attempts: 4, first_wait: Duration::from_secs(1) };
}

/// Run `f` up to `policy.attempts` times with exponential backoff, reporting each failure.
pub async fn retry<T, F, Fut>(policy: Retry, what: &str, mut f: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T>>,
{
    let mut wait = policy.first_wait;
    let mut attempt = 1;
    loop {
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if attempt < policy.attempts => {
                crate::note!("{what}: {e:#}; retrying in {wait:?} (attempt {attempt} of {})", policy.attempts);
                tokio::time::sleep(wait).await;
                wait *= 2;
                attempt += 1;
            }
            Err(e) => return Err(e).with_context(|| format!("{what} failed after {attempt} tries")),
        }
    }
}

/// The blobs one image needs for one platform, all in the cache once [`Fetcher::image`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBlobs {
    pub index: (String, u64),
    pub manifest: (String, u64),
    pub config: (String, u64),
    pub layers: Vec<(String, u64)>,
}

impl ImageBlobs {
    /// Every blob digest with its size, index first.
    pub fn all(&self) -> impl Iterator<Item = &(String, u64)> {
        [&self.index, &self.manifest, &self.config].into_iter().chain(self.layers.iter())
    }
}

/// Whether every blob `index_digest` needs on linux/`arch` is in the cache
/// (presence only: blobs are verified when they are copied into a bundle).
pub fn cached(cache: &Cache, index_digest: &str, arch: Arch) -> bool {
    let check = || -> Result<bool> {
        let index: Index = serde_json::from_slice(&cache.read(index_digest)?)?;
        let Some(desc) = index.for_linux(arch.as_str()) else { return Ok(false) };
        let manifest: Manifest = serde_json::from_slice(&cache.read(&desc.digest)?)?;
        Ok(std::iter::once(&manifest.config).chain(manifest.layers.iter()).all(|d| cache.contains(&d.digest)))
    };
    cache.contains(index_digest) && check().unwrap_or(false)
}

pub struct Fetcher {
    pub client: Client,
    pub cache: Cache,
    pub retry: Retry,
    progress: MultiProgress,
}

impl Fetcher {
    pub fn new(client: Client, cache: Cache) -> Self {
        let progress = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        Fetcher { client, cache, retry: Retry::DEFAULT, progress }
    }

    fn say(&self, line: String) {
        if self.progress.is_hidden() {
            crate::note!("{line}");
        } else {
            let _ = self.progress.println(line);
        }
    }

    /// An index or manifest by digest: from the cache, else from the registry (verified, then cached).
    pub async fn manifest(&self, image: &Reference, digest: &str) -> Result<Vec<u8>> {
        if self.cache.contains(digest) {
            return self.cache.read(digest);
        }
        let by_digest = image.clone_with_digest(digest.to_string());
        let what = format!("{}/{}@{digest}", image.registry(), image.repository());
        let (raw, _) = retry(self.retry, &format!("fetching {what}"), || async {
            self.client.pull_manifest_raw(&by_digest, &RegistryAuth::Anonymous, &ACCEPT).await.map_err(Into::into)
        })
        .await?;
        self.cache.insert(digest, &raw, &what)?;
        Ok(raw.to_vec())
    }

    /// Everything `image` (pinned to `index_digest`) needs on linux/`arch`, into the cache.
    pub async fn image(&self, image: &Reference, index_digest: &str, arch: Arch) -> Result<ImageBlobs> {
        // oci-client fetches Bearer tokens only for registries whose auth is stored, and only
        // manifest calls store it: with the manifests cached, blob pulls would go out without one.
        self.client.store_auth_if_needed(image.resolve_registry(), &RegistryAuth::Anonymous).await;
        let index_bytes = self.manifest(image, index_digest).await?;
        let index: Index = serde_json::from_slice(&index_bytes)
            .with_context(|| format!("{image}: {index_digest} is not an image index"))?;
        let desc = index
            .for_linux(arch.as_str())
            .with_context(|| format!("{image}@{index_digest} has no linux/{arch} manifest"))?;
        let manifest_bytes = self.manifest(image, &desc.digest).await?;
        let manifest: Manifest = serde_json::from_slice(&manifest_bytes)
            .with_context(|| format!("{image}: {} is not an image manifest", desc.digest))?;
        let blobs = ImageBlobs {
            index: (index_digest.to_string(), index_bytes.len() as u64),
            manifest: (desc.digest.clone(), manifest_bytes.len() as u64),
            config: (manifest.config.digest.clone(), manifest.config.size),
            layers: manifest.layers.iter().map(|l| (l.digest.clone(), l.size)).collect(),
        };
        let wanted: Vec<_> = std::iter::once(&blobs.config).chain(blobs.layers.iter()).cloned().collect();
        futures_util::stream::iter(
            wanted.into_iter().map(|(digest, size)| async move { self.blob(image, &digest, size).await }),
        )
        .buffer_unordered(4)
        .try_collect::<Vec<()>>()
        .await?;
        Ok(blobs)
    }

    /// One blob by digest into the cache, resuming a partial download, retried with backoff.
    pub async fn blob(&self, image: &Reference, digest: &str, size: u64) -> Result<()> {
        if self.cache.contains(digest) {
            return Ok(());
        }
        let what = format!("{}/{}@{digest}", image.registry(), image.repository());
        let bar = self.progress.add(ProgressBar::new(size));
        bar.set_style(
            ProgressStyle::with_template("{prefix:.bold} {bytes:>10}/{total_bytes:10} {bar:30} {bytes_per_sec}")
                .expect("a valid progress template")
                .progress_chars("=> "),
        );
        bar.set_prefix(short(&what));
        // A download whose digest does not match is discarded by commit_partial and tried again.
        let result = retry(self.retry, &format!("downloading {what}"), || async {
            self.download(image, digest, size, &bar).await?;
            self.cache.commit_partial(digest, Some(size), &what)
        })
        .await;
        bar.finish_and_clear();
        self.progress.remove(&bar);
        result?;
        self.say(format!("fetched {what} ({size} bytes)"));
        Ok(())
    }

    /// One attempt: append to the partial file from where it stopped (the digest is
    /// checked once the file is complete, by [`Cache::commit_partial`]).
    async fn download(&self, image: &Reference, digest: &str, size: u64, bar: &ProgressBar) -> Result<()> {
        let partial = self.cache.partial_path(digest)?;
        let mut have = std::fs::metadata(&partial).map(|m| m.len()).unwrap_or(0);
        if have > size {
            std::fs::remove_file(&partial).with_context(|| format!("removing {partial}"))?;
            have = 0;
        }
        if have == size {
            // Complete already (a run stopped before moving it into place); commit_partial checks it.
            return Ok(());
        }
        let desc = OciDescriptor { digest: digest.to_string(), size: size as i64, ..Default::default() };
        let (mut stream, append) = if have == 0 {
            (self.client.pull_blob_stream(image, &desc).await?, false)
        } else {
            match self.client.pull_blob_stream_partial(image, &desc, have, None).await? {
                BlobResponse::Partial(s) => (s, true),
                // The registry ignored the range: start over.
                BlobResponse::Full(s) => (s, false),
            }
        };
        if !append {
            have = 0;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(&partial)
            .with_context(|| format!("opening {partial}"))?;
        bar.set_position(have);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.with_context(|| format!("reading the response after {have} bytes"))?;
            file.write_all(&chunk).with_context(|| format!("writing {partial}"))?;
            have += chunk.len() as u64;
            bar.set_position(have);
            if have > size {
                drop(file);
                std::fs::remove_file(&partial).ok();
                bail!("the registry sent more than the {size} bytes the manifest declares; download discarded");
            }
        }
        file.flush()?;
        if have < size {
            bail!("connection ended after {have} of {size} bytes (kept; the next try resumes)");
        }
        Ok(())
    }

    /// A chart archive by URL and pinned sha256, into the cache.
    pub async fn chart(&self, http: &reqwest::Client, url: &str, digest: &str) -> Result<()> {
        if self.cache.contains(digest) {
            return Ok(());
        }
        let bytes = retry(self.retry, &format!("downloading {url}"), || async {
            Ok(http.get(url).send().await?.error_for_status()?.bytes().await?.to_vec())
        })
        .await?;
        if sha256(&bytes) != digest {
            bail!(
                "chart {url} hashes to {}, not the locked {digest}: the chart was re-published or corrupted; \
                 check it and run `cargo xtask lock` if the change is intended",
                sha256(&bytes)
            );
        }
        // A chart is an untrusted archive: refuse traversal, escaping links and bombs before caching it.
        crate::archive::read_tgz(&bytes, url, crate::archive::Limits::CHART)?;
        self.cache.insert(digest, &bytes, url)?;
        self.say(format!("fetched {url} ({} bytes)", bytes.len()));
        Ok(())
    }
}

/// `registry/repo@sha256:0123456789ab` for a progress prefix.
fn short(what: &str) -> String {
    match what.split_once("@sha256:") {
        Some((name, hex)) => format!("{name}@{}", &hex[..hex.len().min(12)]),
        None => what.to_string(),
    }
}
