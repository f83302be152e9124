//! `cargo xtask bundle diff A B`: what changed from A to B, two bundles (folders or archives) or
//! two locks, as Markdown for release notes. Images are keyed by repository and charts by name,
//! so a version bump reads as a change (`v3.14.0@sha256:1a2b… → v3.15.0@sha256:3c4d…`), not as a
//! removal and an addition; rendered configs are compared by path and sha256.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use camino::{Utf8Path, Utf8PathBuf};

use super::Source;

/// Compare two bundles or locks.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The earlier bundle (folder or archive) or lock.
    pub a: Utf8PathBuf,
    /// The later one.
    pub b: Utf8PathBuf,
    /// Write the Markdown here instead of printing it.
    #[arg(long, value_name = "FILE")]
    pub out: Option<Utf8PathBuf>,
}

/// What a bundle or lock pins.
#[derive(Debug, Default, PartialEq)]
pub struct Inventory {
    /// Repository → `tag@digest`.
    pub images: BTreeMap<String, String>,
    /// Chart name → `version sha256:…`.
    pub charts: BTreeMap<String, String>,
    /// Rendered file → sha256 (bundles only).
    pub configs: BTreeMap<String, String>,
}

/// `name` and `version` of a chart archive URL (`…/loki-18.11.0.tgz`).
fn chart_of(url: &str) -> (String, String) {
    let file = url.rsplit('/').next().unwrap_or(url).trim_end_matches(".tgz");
    // The version starts at the first `-` followed by a digit.
    let split = file.char_indices().find(|(i, c)| *c == '-' && file[i + 1..].starts_with(|d: char| d.is_ascii_digit()));
    match split {
        Some((i, _)) => (file[..i].to_string(), file[i + 1..].to_string()),
        None => (file.to_string(), String::new()),
    }
}

fn image_entry(inv: &mut Inventory, reference: &str, digest: &str, profile: Option<&str>) {
    let (repo, tag, _) = super::verify::normalize(reference);
    let key = match profile {
        Some(p) => format!("{repo} ({p})"),
        None => repo,
    };
    inv.images.insert(key, format!("{}@{digest}", tag.unwrap_or_default()));
}

/// Read a lock (`*.lock`, JSON with `profiles`) or a bundle.
pub fn inventory(path: &Utf8Path) -> Result<Inventory> {
    let mut inv = Inventory::default();
    if path.is_file() && path.extension() == Some("lock") {
        let lock = crate::lock::read(path)?;
        let several = lock.profiles.len() > 1;
        for (profile, pl) in &lock.profiles {
            let tag = several.then_some(profile.as_str());
            for (reference, img) in &pl.images {
                image_entry(&mut inv, reference, &img.digest, tag);
            }
            for chart in pl.charts.values() {
                let (name, version) = chart_of(&chart.url);
                let key = if several { format!("{name} ({profile})") } else { name };
                inv.charts.insert(key, format!("{version} {}", chart.digest));
            }
        }
        return Ok(inv);
    }
    let archive = super::ARCHIVE_ENDINGS.iter().any(|e| path.as_str().ends_with(e));
    if path.is_file() && !archive {
        anyhow::bail!(
            "{path} is neither a bundle (a folder, or a .tar, .tar.gz or .tar.zst archive) nor a lock (*.lock)"
        );
    }
    let files = super::verify::load(path)?;
    let json =
        files.get("bundle.json").with_context(|| format!("{path} has no bundle.json: is it a bundle or a lock?"))?;
    let bundle: super::BundleJson =
        serde_json::from_slice(json).with_context(|| format!("{path}/bundle.json is not a bundle description"))?;
    for (file, record) in &bundle.files {
        match &record.source {
            Source::Rendered => {
                inv.configs.insert(file.clone(), record.sha256.clone());
            }
            Source::Image { reference, index_digest, .. } => image_entry(&mut inv, reference, index_digest, None),
            Source::Images { images, .. } => {
                for (reference, digest) in images {
                    image_entry(&mut inv, reference, digest, None);
                }
            }
            Source::Chart { url, digest, .. } => {
                let (name, version) = chart_of(url);
                inv.charts.insert(name, format!("{version} {digest}"));
            }
        }
    }
    Ok(inv)
}

/// `sha256:1a2b3c4d5e6f…` for a table.
fn short(v: &str) -> String {
    match v.split_once("sha256:") {
        Some((head, hex)) => format!("{head}sha256:{}…", &hex[..hex.len().min(12)]),
        None => v.to_string(),
    }
}

/// The changes of one section as Markdown table rows; `None` when nothing changed.
fn section(title: &str, a: &BTreeMap<String, String>, b: &BTreeMap<String, String>) -> Option<String> {
    let keys: BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    let rows: Vec<String> = keys
        .into_iter()
        .filter_map(|k| match (a.get(k), b.get(k)) {
            (Some(x), Some(y)) if x == y => None,
            (Some(x), Some(y)) => Some(format!("| changed | `{k}` | {} | {} |", short(x), short(y))),
            (Some(x), None) => Some(format!("| removed | `{k}` | {} | — |", short(x))),
            (None, Some(y)) => Some(format!("| added | `{k}` | — | {} |", short(y))),
            (None, None) => None,
        })
        .collect();
    (!rows.is_empty())
        .then(|| format!("## {title}\n\n| | | before | after |\n|---|---|---|---|\n{}\n", rows.join("\n")))
}

/// The Markdown of what changed from `a` to `b`.
pub fn markdown(a_name: &str, a: &Inventory, b_name: &str, b: &Inventory) -> String {
    let sections: Vec<String> = [
        section("Images", &a.images, &b.images),
        section("Charts", &a.charts, &b.charts),
        section("Configs", &a.configs, &b.configs),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut out = format!("# Changes from `{a_name}` to `{b_name}`\n\n");
    if sections.is_empty() {
        out.push_str("No change: the same images, charts and configs.\n");
    } else {
        out.push_str(&sections.join("\n"));
    }
    out
}

pub fn run(args: Args) -> Result<()> {
    let (a, b) = (inventory(&args.a)?, inventory(&args.b)?);
    let text = markdown(args.a.as_str(), &a, args.b.as_str(), &b);
    match &args.out {
        Some(path) => crate::atomic::write(path, text.as_bytes(), false)?,
        None => crate::out::stdout_text(&text)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_names_and_versions_come_from_their_archive_names() {
        assert_eq!(chart_of("https://x/charts/loki-18.11.0.tgz"), ("loki".into(), "18.11.0".into()));
        assert_eq!(
            chart_of("https://x/kube-prometheus-stack-88.5.3.tgz"),
            ("kube-prometheus-stack".into(), "88.5.3".into())
        );
        assert_eq!(
            chart_of("https://x/prometheus-blackbox-exporter-11.17.2.tgz"),
            ("prometheus-blackbox-exporter".into(), "11.17.2".into())
        );
    }
}
