//! `cargo xtask bundle`: the offline `observability/` folder for kubeprepare's
//! cloud and edge packages, and its archive.
//!
//! Plan first ([`plan`], pure): every output path and where its bytes come from.
//! Then execute: write each file through a temporary directory and a rename,
//! `bundle.json` and `SHA256SUMS` last, and a deterministic `.tar.gz` of it all.
//!
//! Today the `local` profile is bundled from the fixture layouts; the upstream
//! fetch (content-addressed cache from registries) comes with the rest of the issue.

pub mod image_tar;
pub mod verify;

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use serde::Serialize;

use crate::oci::layer::{Entry, Tree, gzip, source_date_epoch};
use crate::oci::sha256;
use crate::render::scripts::image_tar as image_tar_path;
use crate::render::{Ctx, Files};
use crate::stack::{Arch, Role, Stack};
use image_tar::{LayoutDir, image_tar};

/// Where one bundle file's bytes come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Source {
    /// A file from `cargo xtask render`.
    Rendered,
    /// An image archive built from an OCI layout of the given index digest.
    Image { reference: String, index_digest: String, layout: Utf8PathBuf },
}

/// Which nodes a bundle is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
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

/// The plan: output path (relative to `observability/`) → source.
pub fn plan(
    ctx: &Ctx<'_>,
    files: &Files,
    layouts: &BTreeMap<String, (String, Utf8PathBuf)>,
    role: Option<BundleRole>,
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
    for c in ctx.profile.enabled() {
        if !wants(c.role) {
            continue;
        }
        for img in &c.images {
            let reference = img.reference.to_string();
            let (index_digest, layout) = layouts
                .get(&reference)
                .with_context(|| format!("no image {reference} available: run `cargo xtask fixtures` first"))?;
            out.insert(
                image_tar_path(c.role, c.name.as_str()),
                Source::Image { reference, index_digest: index_digest.clone(), layout: layout.clone() },
            );
        }
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct BundleJson {
    pub profile: String,
    pub arch: Arch,
    pub role: Option<BundleRole>,
    pub kubeprepare: crate::stack::Kubeprepare,
    pub files: BTreeMap<String, FileRecord>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FileRecord {
    pub sha256: String,
    pub size: u64,
    pub source: Source,
}

/// Materialize every planned file (in memory), plus bundle.json and SHA256SUMS.
pub fn build(
    ctx: &Ctx<'_>,
    files: &Files,
    plan: &BTreeMap<String, Source>,
    role: Option<BundleRole>,
) -> Result<BTreeMap<String, Vec<u8>>> {
    let mtime = source_date_epoch()?;
    let mut out = BTreeMap::new();
    let mut records = BTreeMap::new();
    for (path, source) in plan {
        let bytes = match source {
            Source::Rendered => {
                files.get(path).with_context(|| format!("{path} was not rendered"))?.as_bytes().to_vec()
            }
            Source::Image { reference, index_digest, layout } => {
                image_tar(&LayoutDir(layout), reference, index_digest, ctx.arch, mtime)?.0
            }
        };
        records.insert(
            path.clone(),
            FileRecord { sha256: sha256(&bytes), size: bytes.len() as u64, source: source.clone() },
        );
        out.insert(path.clone(), bytes);
    }
    let sums: String =
        records.iter().map(|(p, r)| format!("{}  {p}\n", r.sha256.trim_start_matches("sha256:"))).collect();
    let json = BundleJson {
        profile: ctx.profile_name.into(),
        arch: ctx.arch,
        role,
        kubeprepare: ctx.stack.kubeprepare.clone(),
        files: records,
    };
    out.insert("bundle.json".into(), format!("{}\n", serde_json::to_string_pretty(&json)?).into_bytes());
    out.insert("SHA256SUMS".into(), sums.into_bytes());
    Ok(out)
}

/// A deterministic `.tar.gz` of the files under `observability/`.
pub fn archive(files: &BTreeMap<String, Vec<u8>>) -> Result<Vec<u8>> {
    let mut tree = Tree::default();
    for (path, bytes) in files {
        let mode = if path.ends_with(".sh") { 0o755 } else { 0o644 };
        tree.insert(&format!("observability/{path}"), Entry::File { mode, data: bytes.clone() })?;
    }
    gzip(&tree.tar(source_date_epoch()?)?)
}

/// Fixture layouts by reference, from `cargo xtask fixtures`' summary.
pub fn fixture_layouts(dir: &Utf8Path) -> Result<BTreeMap<String, (String, Utf8PathBuf)>> {
    let summary = dir.join("fixtures.json");
    let text = std::fs::read_to_string(&summary)
        .with_context(|| format!("reading {summary}: run `cargo xtask fixtures` first"))?;
    let v: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{summary} is not valid JSON"))?;
    let mut out = BTreeMap::new();
    for (reference, img) in v["images"].as_object().into_iter().flatten() {
        let digest = img["index_digest"].as_str().context("index_digest missing")?.to_string();
        let layout = Utf8PathBuf::from(img["layout"].as_str().context("layout missing")?);
        out.insert(reference.clone(), (digest, layout));
    }
    Ok(out)
}

/// Build the offline bundle for one profile and arch (the local profile today), or verify one.
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
}

#[derive(Debug, clap::Args)]
pub struct BuildArgs {
    /// Stack profile (only `local` can be bundled on a machine with no registry access).
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
    /// Print the plan as JSON and stop.
    #[arg(long)]
    pub dry_run: bool,
}

pub fn run(args: Args) -> Result<()> {
    match args.command {
        Some(Sub::Verify(v)) => verify::run(v),
        None => build_cmd(args.build),
    }
}

fn build_cmd(args: BuildArgs) -> Result<()> {
    let Some(arch) = args.arch else { bail!("--arch is required: cargo xtask bundle --arch amd64|arm64") };
    let stack: Stack = crate::stack::load(&crate::paths::stack_file())?;
    if args.profile != "local" {
        bail!(
            "bundling profile {} needs the upstream fetch, which is not built yet; bundle `--profile local`",
            args.profile
        );
    }
    let ctx = Ctx::new(&stack, &args.profile, arch)?;
    let files = crate::render::render(&ctx)?;
    let layouts = fixture_layouts(&crate::paths::target_dir().join("fixtures").join("oci"))?;
    let plan = plan(&ctx, &files, &layouts, args.role)?;
    if args.dry_run {
        println!("{}", serde_json::to_string_pretty(&plan)?);
        return Ok(());
    }
    let built = build(&ctx, &files, &plan, args.role)?;
    let role = args.role.map(|r| format!("-{}", r.as_str())).unwrap_or_default();
    let name = format!("observability-{}-{arch}{role}", args.profile);
    let out = args.out.unwrap_or_else(|| crate::paths::target_dir().join("bundle"));
    let tgz = archive(&built)?;
    let path = out.join(format!("{name}.tar.gz"));
    crate::atomic::write(&path, &tgz, false)?;
    eprintln!("bundle: {path}: {} files, {} bytes, {}", built.len(), tgz.len(), sha256(&tgz));
    Ok(())
}
