//! `cargo xtask bundle`: the offline `observability/` folder for kubeprepare's
//! cloud and edge packages, and its archive.
//!
//! 1. Pin: the profile's lock gives every image its index digest and every chart
//!    its sha256; anything unpinned is refused unless `--allow-unpinned` (then it
//!    is resolved now and listed under `unpinned` in bundle.json).
//! 2. Plan ([`plan`], pure): every output path and where its bytes come from.
//! 3. Fetch: everything into the content-addressed [`Cache`] (by digest, verified,
//!    resumable); a fully cached bundle needs no network at all.
//! 4. Write into a staging directory: a file whose inputs did not change since
//!    the previous build is hard-linked from it (after checking its hash), so a
//!    rebuild rewrites only what changed; `bundle.json` and `SHA256SUMS` last.
//! 5. Swap the staging directory into place and write the archive (streamed,
//!    deterministic). The staging directory lives outside the output directory
//!    when it can, so a killed build leaves nothing partial in the output.

pub mod chart_images;
pub mod diff;
pub mod example;
pub mod image_tar;
pub mod scan;
pub mod verify;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

use crate::cache::{Cache, HashingWriter, hash_file};
use crate::fetch::Fetcher;
use crate::lock::ProfileLock;
use crate::oci::layer::source_date_epoch;
use crate::oci::sha256;
use crate::render::scripts::image_tar as image_tar_path;
use crate::render::{Ctx, Files};
use crate::stack::{Arch, Role, Stack};

/// Version of bundle.json's schema.
pub const SCHEMA: u32 = 1;

/// Where one bundle file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// A file from `cargo xtask render`.
    Rendered,
    /// An image archive for the bundle's platform, built from the image's upstream index.
    Image { reference: String, index_digest: String, platform: String, format: ImageFormat },
    /// One archive holding several images (`--image-archives per-role`): reference → index digest.
    Images { images: BTreeMap<String, String>, platform: String, format: ImageFormat },
    /// A chart archive, byte for byte as its repository serves it, and the images its values
    /// name that the stack declares unused (values path → why; see `stack::Chart`).
    Chart {
        url: String,
        digest: String,
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        unused_images: BTreeMap<String, String>,
    },
}

/// Which nodes a bundle is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BundleRole {
    Cloud,
    Edge,
}

impl BundleRole {
    pub fn as_str(self) -> &'static str {
        match self {
            BundleRole::Cloud => "cloud",
            BundleRole::Edge => "edge",
        }
    }
}

/// How image archives are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum ImageFormat {
    /// Plain tar (layers are compressed already).
    #[value(name = "tar")]
    #[serde(rename = "tar")]
    Tar,
    /// zstd-compressed tar: single-threaded, fixed level, window at most 2^23 (k3s
    /// auto-import, `ctr images import` and `docker load` read it).
    #[value(name = "tar.zst")]
    #[serde(rename = "tar.zst")]
    TarZst,
}

/// How images are grouped into archives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImageArchives {
    /// One archive per component: a changed component rewrites only its file.
    PerComponent,
    /// One archive per role (`images/<role>/images.tar`): blobs shared between images stored once.
    PerRole,
}

/// The bundle archive written beside the folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ArchiveFormat {
    #[value(name = "tar.gz")]
    TarGz,
    #[value(name = "tar.zst")]
    TarZst,
    #[value(name = "tar")]
    Tar,
    /// Only the folder.
    #[value(name = "none")]
    None,
}

impl ArchiveFormat {
    fn extension(self) -> Option<&'static str> {
        match self {
            ArchiveFormat::TarGz => Some("tar.gz"),
            ArchiveFormat::TarZst => Some("tar.zst"),
            ArchiveFormat::Tar => Some("tar"),
            ArchiveFormat::None => None,
        }
    }
}

/// zstd level and window for every zstd stream we write: fixed, so the bytes are reproducible.
const ZSTD_LEVEL: i32 = 9;
const ZSTD_WINDOW_LOG: u32 = 23;

fn zstd_encoder<W: Write>(w: W) -> Result<zstd::stream::write::Encoder<'static, W>> {
    let mut enc = zstd::stream::write::Encoder::new(w, ZSTD_LEVEL)?;
    enc.window_log(ZSTD_WINDOW_LOG)?;
    enc.include_checksum(true)?;
    Ok(enc)
}

/// The path of a component's image archive in the bundle.
pub fn image_path(role: Role, component: &str, format: ImageFormat) -> String {
    let tar = image_tar_path(role, component);
    match format {
        ImageFormat::Tar => tar,
        ImageFormat::TarZst => format!("{tar}.zst"),
    }
}

/// The plan: output path (relative to `observability/`) → source.
pub fn plan(
    ctx: &Ctx<'_>,
    files: &Files,
    lock: &ProfileLock,
    role: Option<BundleRole>,
    format: ImageFormat,
    grouping: ImageArchives,
) -> Result<BTreeMap<String, Source>> {
    let mut out = BTreeMap::new();
    let wants = |r: Role| match role {
        None => true,
        Some(BundleRole::Cloud) => r == Role::Cloud,
        Some(BundleRole::Edge) => r == Role::Edge,
    };
    for (path, _) in files.iter() {
        let p = path.as_str();
        // The edge role carries only what edge nodes need.
        let edge_file = p.starts_with("kubeedge/") || p == "scripts/install-observability-edge.sh";
        if role == Some(BundleRole::Edge) && !edge_file {
            continue;
        }
        out.insert(p.to_string(), Source::Rendered);
    }
    for c in ctx.profile.enabled().filter(|c| wants(c.role)) {
        for img in &c.images {
            let reference = img.reference.to_string();
            let index_digest = img
                .digest
                .as_ref()
                .with_context(|| {
                    format!("{reference} is not pinned; run `cargo xtask lock --profile {}`", ctx.profile_name)
                })?
                .as_str()
                .to_string();
            let platform = format!("linux/{}", ctx.arch);
            match grouping {
                ImageArchives::PerComponent => {
                    out.insert(
                        image_path(c.role, c.name.as_str(), format),
                        Source::Image { reference, index_digest, platform, format },
                    );
                }
                ImageArchives::PerRole => {
                    let path = image_path(c.role, "images", format);
                    let entry =
                        out.entry(path).or_insert_with(|| Source::Images { images: BTreeMap::new(), platform, format });
                    if let Source::Images { images, .. } = entry {
                        images.insert(reference, index_digest);
                    }
                }
            }
        }
        if let Some(chart) = &c.chart
            && role != Some(BundleRole::Edge)
        {
            let key = chart.lock_key();
            let locked = lock.charts.get(&key);
            // `lock::apply` has already copied the lock's digest into the chart.
            let digest = chart.digest.as_ref().map(|d| d.as_str().to_string()).with_context(|| {
                format!("chart {key} is not pinned; run `cargo xtask lock --profile {}`", ctx.profile_name)
            })?;
            let url = locked.map(|l| l.url.clone()).unwrap_or_else(|| key.clone());
            out.insert(
                format!("charts/{}", chart.archive_name()),
                Source::Chart { url, digest, unused_images: chart.unused_images.clone() },
            );
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleJson {
    pub schema: u32,
    pub tool: String,
    pub profile: String,
    pub arch: Arch,
    pub role: Option<BundleRole>,
    pub kubeprepare: crate::stack::Kubeprepare,
    /// Images and charts bundled without a lock entry (`--allow-unpinned`): resolved at build time.
    #[serde(default)]
    pub unpinned: Vec<String>,
    pub files: BTreeMap<String, FileRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub sha256: String,
    pub size: u64,
    /// The image tag or chart version the file carries.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    pub source: Source,
}

/// Everything a build needs besides the stack.
#[derive(Debug, Clone)]
pub struct Options {
    pub profile: String,
    pub arch: Arch,
    pub role: Option<BundleRole>,
    pub out: Utf8PathBuf,
    pub cache: Utf8PathBuf,
    pub image_format: ImageFormat,
    pub image_archives: ImageArchives,
    pub archive: ArchiveFormat,
    pub allow_unpinned: bool,
}

impl Options {
    /// `observability-<profile>-<arch>[-<role>]`.
    pub fn name(&self) -> String {
        bundle_name(&self.profile, self.arch, self.role)
    }
}

/// A bundle's name: `observability-<profile>-<arch>[-<role>]`.
pub fn bundle_name(profile: &str, arch: Arch, role: Option<BundleRole>) -> String {
    let role = role.map(|r| format!("-{}", r.as_str())).unwrap_or_default();
    format!("observability-{profile}-{arch}{role}")
}

/// The endings of the archive files `bundle` writes and `bundle verify` reads.
pub const ARCHIVE_ENDINGS: [&str; 4] = [".tar.gz", ".tar.zst", ".tgz", ".tar"];

/// What a build produced.
#[derive(Debug, Clone)]
pub struct Built {
    pub dir: Utf8PathBuf,
    pub archive: Option<(Utf8PathBuf, String, u64)>,
    pub files: BTreeMap<String, FileRecord>,
    /// Files written afresh (the rest were carried over from the previous build).
    pub written: Vec<String>,
    pub fetch_seconds: f64,
    pub write_seconds: f64,
}

/// Pin, plan, fetch and write one bundle.
pub fn build(stack: &Stack, lock: Option<&ProfileLock>, opts: &Options) -> Result<Built> {
    let mut pinned = stack.clone();
    let unpinned = crate::lock::apply(&mut pinned, &opts.profile, lock)?;
    let mut lock = lock.cloned().unwrap_or_default();
    let started = Instant::now();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if !unpinned.is_empty() {
        if !opts.allow_unpinned {
            bail!(
                "profile {} has unpinned images or charts: {}\n  fix: run `cargo xtask lock --profile {}` (or pass \
                 --allow-unpinned to resolve them now; the bundle then lists them under `unpinned`)",
                opts.profile,
                unpinned.join(", "),
                opts.profile
            );
        }
        crate::note!("bundle: resolving unpinned {} now (--allow-unpinned)", unpinned.join(", "));
        let resolved = rt.block_on(crate::lock::resolve(pinned.profile(&opts.profile)?))?;
        lock.images.extend(resolved.images);
        lock.charts.extend(resolved.charts);
        crate::lock::apply(&mut pinned, &opts.profile, Some(&lock))?;
    }
    let ctx = Ctx::new(&pinned, &opts.profile, opts.arch)?;
    let files = crate::render::render(&ctx)?;
    let plan = plan(&ctx, &files, &lock, opts.role, opts.image_format, opts.image_archives)?;

    let cache = Cache::open(&opts.cache)?;
    rt.block_on(fetch(&ctx, &plan, &cache))?;
    let fetch_seconds = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let name = opts.name();
    let dest = opts.out.join(&name);
    // Staging names carry the output directory's hash (builds into different outputs
    // never meet) and the pid (what a killed build left is swept by the next one).
    let key = format!("{name}.{}", &sha256(opts.out.as_str().as_bytes())[7..19]);
    // What killed builds left (into any output) goes first.
    clean_staging(&[preferred_staging_root(), opts.out.join(".staging")], &key, &dest);
    let staging_root = staging_root(&opts.out)?;
    let staging = staging_root.join(format!("{key}.{}", std::process::id()));
    let previous = previous_records(&dest);
    let result = (|| {
        let (records, written) = write_files(&ctx, &files, &plan, &cache, &dest, &previous, &staging)?;
        let json = BundleJson {
            schema: SCHEMA,
            tool: format!("xtask {}", env!("CARGO_PKG_VERSION")),
            profile: opts.profile.clone(),
            arch: opts.arch,
            role: opts.role,
            kubeprepare: stack.kubeprepare.clone(),
            unpinned: unpinned.clone(),
            files: records.clone(),
        };
        let sums: String =
            records.iter().map(|(p, r)| format!("{}  {p}\n", r.sha256.trim_start_matches("sha256:"))).collect();
        write_new(&staging.join("bundle.json"), format!("{}\n", serde_json::to_string_pretty(&json)?).as_bytes())?;
        write_new(&staging.join("SHA256SUMS"), sums.as_bytes())?;
        // The previous archives go before the folder is swapped: a build killed from here on
        // leaves the new folder alone, never beside an archive of the old one.
        remove_archives(&opts.out, &name)?;
        swap_into_place(&staging, &dest, &staging_root.join(format!("{key}.old.{}", std::process::id())))?;
        let archive = match opts.archive.extension() {
            Some(ext) => {
                let path = opts.out.join(format!("{name}.{ext}"));
                let tmp = staging_root.join(format!("{key}.{ext}.{}", std::process::id()));
                let (digest, size) = write_archive(&dest, &tmp, opts.archive).inspect_err(|_| {
                    let _ = std::fs::remove_file(&tmp);
                })?;
                std::fs::rename(&tmp, &path).with_context(|| format!("moving {tmp} to {path}"))?;
                Some((path, digest, size))
            }
            None => None,
        };
        anyhow::Ok((records, written, archive))
    })();
    if result.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    // No empty staging folder stays in the output (staging on another file system).
    let _ = std::fs::remove_dir(opts.out.join(".staging"));
    let (files, written, archive) = result?;
    Ok(Built { dir: dest, archive, files, written, fetch_seconds, write_seconds: started.elapsed().as_secs_f64() })
}

/// Fetch every image and chart of the plan into the cache (nothing when all is cached).
async fn fetch(ctx: &Ctx<'_>, plan: &BTreeMap<String, Source>, cache: &Cache) -> Result<()> {
    let missing: Vec<&Source> = plan
        .values()
        .filter(|s| match s {
            Source::Rendered => false,
            Source::Chart { digest, .. } => !cache.contains(digest),
            Source::Image { index_digest, .. } => !crate::fetch::cached(cache, index_digest, ctx.arch),
            Source::Images { images, .. } => images.values().any(|d| !crate::fetch::cached(cache, d, ctx.arch)),
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let _registry = crate::registry::LocalRegistry::start_if_needed(ctx.profile)?;
    let fetcher = Fetcher::new(crate::lock::client(ctx.profile), cache.clone());
    let http = reqwest::Client::builder().timeout(std::time::Duration::from_secs(300)).build()?;
    for source in missing {
        match source {
            Source::Rendered => {}
            Source::Chart { url, digest, .. } => fetcher.chart(&http, url, digest).await?,
            Source::Image { reference, index_digest, .. } => {
                fetch_image(&fetcher, reference, index_digest, ctx.arch).await?;
            }
            Source::Images { images, .. } => {
                for (reference, index_digest) in images {
                    fetch_image(&fetcher, reference, index_digest, ctx.arch).await?;
                }
            }
        }
    }
    Ok(())
}

async fn fetch_image(fetcher: &Fetcher, reference: &str, index_digest: &str, arch: Arch) -> Result<()> {
    let r: oci_client::Reference =
        reference.parse().with_context(|| format!("{reference} is not a valid reference"))?;
    fetcher.image(&r, index_digest, arch).await.with_context(|| format!("fetching {reference}"))?;
    Ok(())
}

/// Records of the bundle currently at `dest`, if it has a readable bundle.json.
fn previous_records(dest: &Utf8Path) -> BTreeMap<String, FileRecord> {
    std::fs::read(dest.join("bundle.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<BundleJson>(&b).ok())
        .map(|j| j.files)
        .unwrap_or_default()
}

/// Write every planned file into `staging`; returns the records and the paths written afresh.
fn write_files(
    ctx: &Ctx<'_>,
    files: &Files,
    plan: &BTreeMap<String, Source>,
    cache: &Cache,
    current: &Utf8Path,
    previous: &BTreeMap<String, FileRecord>,
    staging: &Utf8Path,
) -> Result<(BTreeMap<String, FileRecord>, Vec<String>)> {
    if staging.exists() {
        std::fs::remove_dir_all(staging).with_context(|| format!("removing stale {staging}"))?;
    }
    let mtime = source_date_epoch()?;
    let mut records = BTreeMap::new();
    let mut written = Vec::new();
    for (path, source) in plan {
        let dest = staging.join(path);
        let dir = dest.parent().context("bundle path without a parent")?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {dir}"))?;
        let version = match source {
            Source::Rendered | Source::Images { .. } => None,
            Source::Image { reference, .. } => reference.rsplit_once(':').map(|(_, t)| t.to_string()),
            Source::Chart { .. } => ctx
                .profile
                .enabled()
                .filter_map(|c| c.chart.as_ref())
                .find(|ch| *path == format!("charts/{}", ch.archive_name()))
                .map(|ch| ch.version.as_str().to_string()),
        };
        let rendered = match source {
            Source::Rendered => Some(files.get(path).with_context(|| format!("{path} was not rendered"))?.as_bytes()),
            _ => None,
        };
        // Carry the previous build's file over when its inputs are the same and it is intact.
        if let Some(old) = previous
            .get(path)
            .filter(|old| old.source == *source && rendered.is_none_or(|bytes| sha256(bytes) == old.sha256))
            && reuse(&current.join(path), &dest, old)
        {
            records.insert(path.clone(), FileRecord { version, ..old.clone() });
            continue;
        }
        let (sha256, size) = match source {
            Source::Rendered => {
                let bytes = rendered.unwrap_or_default();
                write_new(&dest, bytes)?;
                (sha256(bytes), bytes.len() as u64)
            }
            Source::Chart { digest, .. } => {
                let copied = cache.copy_to(digest, &dest)?;
                set_mode(&dest, 0o644)?;
                copied
            }
            Source::Image { reference, index_digest, format, .. } => {
                write_image_file(cache, &[(reference, index_digest)], ctx.arch, mtime, *format, &dest)?
            }
            Source::Images { images, format, .. } => {
                let list: Vec<(&str, &str)> = images.iter().map(|(r, d)| (r.as_str(), d.as_str())).collect();
                write_image_file(cache, &list, ctx.arch, mtime, *format, &dest)?
            }
        };
        if path.ends_with(".sh") {
            set_mode(&dest, 0o755)?;
        }
        written.push(path.clone());
        records.insert(path.clone(), FileRecord { sha256, size, version, source: source.clone() });
    }
    Ok((records, written))
}

/// Write an image archive file (plain or zstd); its sha256 and size.
fn write_image_file(
    cache: &Cache,
    images: &[(&str, &str)],
    arch: Arch,
    mtime: u64,
    format: ImageFormat,
    dest: &Utf8Path,
) -> Result<(String, u64)> {
    let file = std::fs::File::create(dest).with_context(|| format!("creating {dest}"))?;
    let hashing = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
    let hashing = match format {
        ImageFormat::Tar => image_tar::write_images(cache, images, arch, mtime, hashing)?.0,
        ImageFormat::TarZst => {
            let (enc, _) = image_tar::write_images(cache, images, arch, mtime, zstd_encoder(hashing)?)?;
            enc.finish().with_context(|| format!("compressing {dest}"))?
        }
    };
    let (buf, digest, size) = hashing.finish();
    buf.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {dest}"))?;
    set_mode(dest, 0o644)?;
    Ok((digest, size))
}

/// Hard-link (or copy) `old` to `dest` if `old` still hashes to its record.
fn reuse(old: &Utf8Path, dest: &Utf8Path, record: &FileRecord) -> bool {
    let intact = hash_file(old).is_ok_and(|(d, size)| d == record.sha256 && size == record.size);
    intact && (std::fs::hard_link(old, dest).is_ok() || std::fs::copy(old, dest).is_ok())
}

/// Create `path` with exactly `bytes` (no temporary: it lives in the staging directory).
fn write_new(path: &Utf8Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {path}"))?;
    set_mode(path, 0o644)
}

#[cfg(unix)]
fn set_mode(path: &Utf8Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting the mode of {path}"))
}

#[cfg(not(unix))]
fn set_mode(_: &Utf8Path, _: u32) -> Result<()> {
    Ok(())
}

fn preferred_staging_root() -> Utf8PathBuf {
    crate::paths::tmp_dir("bundle")
}

/// Where staging directories go: `target/tmp/bundle` when it is on the same file
/// system as `out` (so nothing partial is ever inside `out`), else `out/.staging`.
fn staging_root(out: &Utf8Path) -> Result<Utf8PathBuf> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {out}"))?;
    let preferred = preferred_staging_root();
    std::fs::create_dir_all(&preferred).with_context(|| format!("creating {preferred}"))?;
    let root = if same_filesystem(&preferred, out) { preferred } else { out.join(".staging") };
    std::fs::create_dir_all(&root).with_context(|| format!("creating {root}"))?;
    Ok(root)
}

#[cfg(unix)]
fn same_filesystem(a: &Utf8Path, b: &Utf8Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    matches!((std::fs::metadata(a), std::fs::metadata(b)), (Ok(x), Ok(y)) if x.dev() == y.dev())
}

#[cfg(not(unix))]
fn same_filesystem(_: &Utf8Path, _: &Utf8Path) -> bool {
    false
}

/// Replace `dest` with `staging`: the old folder is moved `aside`, then removed.
fn swap_into_place(staging: &Utf8Path, dest: &Utf8Path, aside: &Utf8Path) -> Result<()> {
    if dest.exists() {
        std::fs::rename(dest, aside).with_context(|| format!("moving {dest} aside"))?;
    }
    std::fs::rename(staging, dest).with_context(|| format!("moving {staging} to {dest}"))?;
    if aside.exists() {
        std::fs::remove_dir_all(aside).with_context(|| format!("removing {aside}"))?;
    }
    Ok(())
}

/// Before a build into `dest` (staging names `<key>.…`): a previous bundle that a killed build had
/// moved aside (`<key>.old.<pid>`) and not yet replaced goes back to `dest`; then what killed builds
/// left in the staging `roots` goes.
fn clean_staging(roots: &[Utf8PathBuf], key: &str, dest: &Utf8Path) {
    for root in roots {
        for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
            let file = entry.file_name().to_string_lossy().to_string();
            let Some(pid) = file.strip_prefix(&format!("{key}.old.")) else { continue };
            let dead = pid.bytes().all(|b| b.is_ascii_digit()) && !std::path::Path::new("/proc").join(pid).exists();
            if dead && std::fs::symlink_metadata(dest).is_err() && std::fs::rename(entry.path(), dest).is_ok() {
                crate::note!("bundle: {dest} put back (a build was killed while replacing it)");
            }
        }
        sweep(root);
    }
}

/// Remove what killed builds left in a staging root (`<key>.<…>.<pid>` whose pid is gone),
/// whichever output they were for; an emptied `<out>/.staging` goes too.
fn sweep(staging_root: &Utf8Path) {
    for entry in std::fs::read_dir(staging_root).into_iter().flatten().flatten() {
        let file = entry.file_name().to_string_lossy().to_string();
        let pid = file.rsplit_once('.').map(|(_, p)| p).unwrap_or_default();
        let ours = file.starts_with("observability-") && !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit());
        if ours && !std::path::Path::new("/proc").join(pid).exists() {
            let p = entry.path();
            let is_dir = std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir());
            let _ = if is_dir { std::fs::remove_dir_all(&p) } else { std::fs::remove_file(&p) };
        }
    }
    if staging_root.file_name() == Some(".staging") {
        let _ = std::fs::remove_dir(staging_root);
    }
}

/// Remove `<out>/<name>.<ext>` of every archive form: an archive is never left beside a folder it does not hold.
fn remove_archives(out: &Utf8Path, name: &str) -> Result<()> {
    for ext in [ArchiveFormat::Tar, ArchiveFormat::TarGz, ArchiveFormat::TarZst].iter().filter_map(|f| f.extension()) {
        let path = out.join(format!("{name}.{ext}"));
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing the previous archive {path}")),
        }
    }
    Ok(())
}

/// A deterministic archive of the folder `dir`, its entries under `observability/` ([`scan::TOP`]);
/// its sha256 and size.
pub fn write_archive(dir: &Utf8Path, dest: &Utf8Path, format: ArchiveFormat) -> Result<(String, u64)> {
    let mtime = source_date_epoch()?;
    let mut entries = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).with_context(|| format!("listing {d}"))? {
            let p =
                Utf8PathBuf::from_path_buf(e?.path()).map_err(|p| anyhow::anyhow!("non UTF-8 path {}", p.display()))?;
            let rel = p.strip_prefix(dir)?.to_string();
            if p.is_dir() {
                entries.insert((rel, true));
                stack.push(p);
            } else {
                entries.insert((rel, false));
            }
        }
    }
    let file = std::fs::File::create(dest).with_context(|| format!("creating {dest}"))?;
    let hashing = HashingWriter::new(std::io::BufWriter::with_capacity(1 << 20, file));
    let hashing = match format {
        ArchiveFormat::TarGz => {
            let gz = flate2::GzBuilder::new().mtime(0).write(hashing, flate2::Compression::new(6));
            tar_tree(dir, &entries, mtime, gz)?.finish().context("compressing the archive")?
        }
        ArchiveFormat::TarZst => {
            tar_tree(dir, &entries, mtime, zstd_encoder(hashing)?)?.finish().context("compressing the archive")?
        }
        ArchiveFormat::Tar | ArchiveFormat::None => tar_tree(dir, &entries, mtime, hashing)?,
    };
    let (buf, digest, size) = hashing.finish();
    buf.into_inner().map_err(|e| e.into_error()).with_context(|| format!("writing {dest}"))?;
    Ok((digest, size))
}

fn tar_tree<W: Write>(dir: &Utf8Path, entries: &BTreeSet<(String, bool)>, mtime: u64, out: W) -> Result<W> {
    let mut b = tar::Builder::new(out);
    let header = |kind, mode, size| {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(mtime);
        h.set_size(size);
        h
    };
    let mut h = header(tar::EntryType::Directory, 0o755, 0);
    b.append_data(&mut h, format!("{}/", scan::TOP), std::io::empty())?;
    for (rel, is_dir) in entries {
        let name = format!("{}/{rel}", scan::TOP);
        if *is_dir {
            let mut h = header(tar::EntryType::Directory, 0o755, 0);
            b.append_data(&mut h, format!("{name}/"), std::io::empty())?;
        } else {
            let path = dir.join(rel);
            let f = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
            let size = f.metadata()?.len();
            let mode = if rel.ends_with(".sh") { 0o755 } else { 0o644 };
            let mut h = header(tar::EntryType::Regular, mode, size);
            b.append_data(&mut h, &name, f).with_context(|| format!("archiving {path}"))?;
        }
    }
    b.into_inner().context("finishing the archive")
}

/// Build the offline bundle for one profile and arch, or verify one.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Sub>,
    #[command(flatten)]
    pub build: BuildArgs,
}

#[derive(Debug, clap::Subcommand)]
pub enum Sub {
    /// Check a bundle offline: every checksum and digest, and every referenced image present.
    Verify(verify::Args),
    /// Build a bundle twice into two folders and compare every file and the archive; record it.
    Repro(ReproArgs),
    /// What changed between two bundles or two locks (images, charts, configs), as Markdown.
    Diff(diff::Args),
}

/// Build twice, compare, record (evidence for `cargo xtask gate`).
#[derive(Debug, clap::Args)]
pub struct ReproArgs {
    /// Stack profile.
    #[arg(long, default_value = "local")]
    pub profile: String,
    /// Architecture.
    #[arg(long, value_enum)]
    pub arch: Arch,
    /// The record (default: target/bundle/observability-<profile>-<arch>.repro.json).
    #[arg(long, value_name = "FILE")]
    pub record: Option<Utf8PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Stack profile (`local` needs `cargo xtask fixtures --push` first; `upstream` needs its lock and internet
    /// unless everything is cached).
    #[arg(long, default_value = "local")]
    pub profile: String,
    /// Architecture of the nodes the bundle installs on.
    #[arg(long, value_enum)]
    pub arch: Option<Arch>,
    /// Only what cloud or edge nodes need (default: both).
    #[arg(long, value_enum)]
    pub role: Option<BundleRole>,
    /// Output directory (default: target/bundle).
    #[arg(long)]
    pub out: Option<Utf8PathBuf>,
    /// Blob cache (default: $XTASK_CACHE, else target/cache).
    #[arg(long)]
    pub cache: Option<Utf8PathBuf>,
    /// How image archives are stored.
    #[arg(long, value_enum, default_value = "tar")]
    pub image_format: ImageFormat,
    /// One archive per component (default), or per role with shared blobs stored once.
    #[arg(long, value_enum, default_value = "per-component")]
    pub image_archives: ImageArchives,
    /// The archive written beside the folder.
    /// Image layers are compressed already: gzip or zstd over them saves under 1%.
    #[arg(long, value_enum, default_value = "tar")]
    pub archive: ArchiveFormat,
    /// Resolve images and charts missing from the lock now instead of refusing (listed in bundle.json).
    #[arg(long)]
    pub allow_unpinned: bool,
    /// Print the plan as JSON and stop.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        Some(Sub::Verify(v)) => verify::run(v),
        Some(Sub::Repro(r)) => repro(r),
        Some(Sub::Diff(d)) => diff::run(d),
        None => build_cmd(args.build),
    }
}

/// The bundle built into `target/bundle` (as `cargo xtask bundle` does) and again into
/// `target/bundle-repro`, from the same lock and cache: every file and the archive must have the
/// same sha256. The record is written either way; a difference fails, naming the files.
fn repro(args: ReproArgs) -> Result<()> {
    let stack: Stack = crate::stack::load(&crate::paths::stack_file())?;
    let lock_file = stack.profile(&args.profile)?.lock_file();
    let lock = crate::lock::read(&lock_file)?;
    let options = |out: Utf8PathBuf| Options {
        profile: args.profile.clone(),
        arch: args.arch,
        role: None,
        out,
        cache: crate::cache::default_root(),
        image_format: ImageFormat::Tar,
        image_archives: ImageArchives::PerComponent,
        archive: ArchiveFormat::Tar,
        allow_unpinned: false,
    };
    let mut builds = Vec::new();
    for out in [crate::paths::bundle_out_dir(), crate::paths::bundle_repro_dir()] {
        let built = build(&stack, lock.profiles.get(&args.profile), &options(out))
            .with_context(|| format!("bundling profile {} for {} (pins from {lock_file})", args.profile, args.arch))?;
        builds.push(built);
    }
    let archive = |b: &Built| b.archive.as_ref().map(|(_, d, _)| d.clone()).unwrap_or_default();
    let mut differing: Vec<String> = builds[0]
        .files
        .iter()
        .filter(|(p, r)| builds[1].files.get(*p).map(|x| &x.sha256) != Some(&r.sha256))
        .map(|(p, _)| p.clone())
        .collect();
    differing.extend(builds[1].files.keys().filter(|p| !builds[0].files.contains_key(*p)).cloned());
    let record = crate::evidence::ReproRecord {
        schema: crate::evidence::REPRO_SCHEMA,
        profile: args.profile.clone(),
        arch: args.arch,
        builds: builds.iter().map(archive).collect(),
        files: builds[0].files.len(),
        differing: differing.clone(),
    };
    let path = args.record.clone().unwrap_or_else(|| {
        crate::paths::bundle_out_dir().join(format!("{}.repro.json", options(Utf8PathBuf::new()).name()))
    });
    crate::evidence::write_record(&path, &record)?;
    if !record.reproducible() {
        bail!(
            "the bundle is not reproducible: archives {} and {}; files that differ: {}",
            record.builds[0],
            record.builds[1],
            if differing.is_empty() { "none (only the archive)".to_string() } else { differing.join(", ") }
        );
    }
    crate::note!(
        "bundle: reproducible: two builds of {} files, archive {}; record {path}",
        record.files,
        record.builds[0]
    );
    Ok(())
}

fn build_cmd(args: BuildArgs) -> Result<()> {
    let Some(arch) = args.arch else { bail!("--arch is required: cargo xtask bundle --arch amd64|arm64") };
    let stack: Stack = crate::stack::load(&crate::paths::stack_file())?;
    let profile = stack.profile(&args.profile)?;
    let lock_file = profile.lock_file();
    let lock = crate::lock::read(&lock_file)?;
    let opts = Options {
        profile: args.profile.clone(),
        arch,
        role: args.role,
        out: args.out.unwrap_or_else(crate::paths::bundle_out_dir),
        cache: args.cache.unwrap_or_else(crate::cache::default_root),
        image_format: args.image_format,
        image_archives: args.image_archives,
        archive: args.archive,
        allow_unpinned: args.allow_unpinned,
    };
    if args.dry_run {
        let mut pinned = stack.clone();
        crate::lock::apply(&mut pinned, &opts.profile, lock.profiles.get(&opts.profile))?;
        let ctx = Ctx::new(&pinned, &opts.profile, arch)?;
        let files = crate::render::render(&ctx)?;
        let lock = lock.profiles.get(&opts.profile).cloned().unwrap_or_default();
        crate::outln!(
            "{}",
            serde_json::to_string_pretty(&plan(
                &ctx,
                &files,
                &lock,
                opts.role,
                opts.image_format,
                opts.image_archives
            )?)?
        )?;
        return Ok(());
    }
    let built = build(&stack, lock.profiles.get(&opts.profile), &opts)
        .with_context(|| format!("bundling profile {} for {arch} (pins from {lock_file})", opts.profile))?;
    let bytes: u64 = built.files.values().map(|r| r.size).sum();
    crate::note!(
        "bundle: {}: {} files, {bytes} bytes ({} written, {} unchanged); fetch {:.1}s, write {:.1}s",
        built.dir,
        built.files.len(),
        built.written.len(),
        built.files.len() - built.written.len(),
        built.fetch_seconds,
        built.write_seconds
    );
    if let Some((path, digest, size)) = &built.archive {
        crate::note!("bundle: {path}: {size} bytes, {digest}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid no process has: pids stay below `pid_max`.
    fn dead_pid() -> u32 {
        std::fs::read_to_string("/proc/sys/kernel/pid_max").expect("pid_max").trim().parse().expect("a number")
    }

    #[test]
    fn a_build_killed_between_the_two_renames_of_the_swap_gets_its_previous_bundle_back() {
        let t = tempfile::tempdir().unwrap();
        let root = Utf8Path::from_path(t.path()).unwrap();
        let (staging, out) = (root.join("staging"), root.join("out"));
        let dest = out.join("observability-local-amd64");
        let key = "observability-local-amd64.0123456789ab";
        let dead = dead_pid();
        // Killed after `dest` went aside, before the staging folder took its place.
        let aside = staging.join(format!("{key}.old.{dead}"));
        std::fs::create_dir_all(&aside).unwrap();
        std::fs::write(aside.join("bundle.json"), "previous").unwrap();
        std::fs::create_dir_all(staging.join(format!("{key}.{dead}"))).unwrap();
        std::fs::write(staging.join(format!("{key}.tar.gz.{dead}")), "partial").unwrap();
        // Another output's aside (its key differs) is only swept.
        std::fs::create_dir_all(staging.join(format!("observability-local-arm64.ba9876543210.old.{dead}"))).unwrap();
        std::fs::create_dir_all(&out).unwrap();
        clean_staging(&[staging.clone()], key, &dest);
        assert_eq!(std::fs::read_to_string(dest.join("bundle.json")).unwrap(), "previous");
        assert_eq!(std::fs::read_dir(&staging).unwrap().count(), 0, "everything else of dead builds is swept");

        // Killed after the new folder took its place: the aside is the old one, swept.
        std::fs::create_dir_all(&aside).unwrap();
        std::fs::write(aside.join("bundle.json"), "older").unwrap();
        clean_staging(&[staging.clone()], key, &dest);
        assert_eq!(std::fs::read_to_string(dest.join("bundle.json")).unwrap(), "previous");
        assert!(!aside.exists());
    }

    #[test]
    fn a_staging_folder_in_the_output_goes_once_emptied_and_never_with_what_lives_there() {
        let t = tempfile::tempdir().unwrap();
        let out = Utf8Path::from_path(t.path()).unwrap().join("out");
        let staging = out.join(".staging");
        let dead = dead_pid();
        std::fs::create_dir_all(staging.join(format!("observability-local-amd64.0123456789ab.{dead}"))).unwrap();
        std::fs::write(staging.join(format!("observability-local-amd64.0123456789ab.tar.{dead}")), "partial").unwrap();
        sweep(&staging);
        assert!(!staging.exists(), "the emptied .staging of the output is removed");
        // A live build's staging (this process) and a file that is not ours keep it.
        let live = staging.join(format!("observability-local-amd64.0123456789ab.{}", std::process::id()));
        std::fs::create_dir_all(&live).unwrap();
        std::fs::write(staging.join("notes.txt"), "mine").unwrap();
        sweep(&staging);
        assert!(live.exists() && staging.join("notes.txt").exists());
    }
}
