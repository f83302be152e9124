//! The images a Helm chart would deploy, computed from its values alone: `bundle
//! verify` runs offline with no helm binary, so it cannot render the chart. The
//! values are decided by Helm's rules (coalescing, subcharts, globals, conditions,
//! tags); images are then found by the convention charts follow, which is a
//! heuristic: see "Not modelled" below.
//!
//! # Chart layout
//!
//! - The archive holds one directory, `<chart>/`, with `<chart>/Chart.yaml` and an
//!   optional `<chart>/values.yaml`; a file outside that directory is refused.
//!   Archives (the chart's and nested ones) are read only with
//!   [`read_tgz`] and [`Limits::CHART`], which refuse traversal, escaping links
//!   and bombs; all archives of one chart together may expand to at most
//!   [`Limits::CHART`]`.total` bytes and nest at most [`MAX_NESTING`] deep.
//! - Subcharts are `<chart>/charts/<sub>/` directories (with their own
//!   `Chart.yaml`) or `<chart>/charts/<sub>.tgz` archives, recursively. As in
//!   Helm, names starting with `_` or `.` and other files in `charts/` are ignored.
//! - Dependencies come from `Chart.yaml` `dependencies` (or, for `apiVersion: v1`
//!   charts, `requirements.yaml`). Each is matched to the subchart of that name in
//!   `charts/` (missing or ambiguous is an error, as `helm install` refuses it) and
//!   keyed by its `alias`, else its name; a subchart no dependency names is keyed by
//!   its name and always enabled. One subchart may be used under several aliases.
//!
//! # Values (Helm semantics)
//!
//! - A chart's values are its `values.yaml` with the values given to it deep-merged
//!   over: maps merge key by key, anything else (lists included) is replaced, and
//!   `null` deletes the key. YAML merge keys (`<<`) are applied.
//! - The values given to the top-level chart are `overrides`. The values given to a
//!   subchart are the parent's merged values under the subchart's key, with the
//!   parent's `global` merged over their `global` (the parent's globals win).
//! - A dependency is enabled unless its `tags` turn it off (one of its tags is
//!   `false` and none is `true` in the top-level chart's `tags:`) or the first of
//!   its comma-separated `condition` paths that resolves to a boolean in the
//!   parent's merged values (where the subchart's own defaults are merged in
//!   under its key, as Helm does) is `false`; a condition beats tags. Disabled
//!   subcharts contribute no images, nor do the parent's values under their key.
//!
//! # Images (a convention, not a Helm rule)
//!
//! - A map anywhere in a chart's values with a non-empty string `repository` is an
//!   image (usually under a key `image`, `…Image` or `…image`, with `tag`,
//!   `registry`, `digest` or `sha`); an empty `repository` is no image. The search
//!   does not descend into an image map.
//! - Its reference is `[registry/]repository[:tag][@digest]`:
//!   - registry: the chart's `global.imageRegistry` when non-empty, else the map's
//!     `registry`. The global wins because the charts we bundle say so
//!     (`.Values.global.imageRegistry | default .Values.….image.registry` in
//!     kube-prometheus-stack, kube-state-metrics, node exporter and Grafana).
//!     `global.image.registry` (Loki, Alloy) is not modelled;
//!   - tag: the map's `tag`, else (missing, `null` or empty) the appVersion of the
//!     chart whose values hold the map, as written in its `Chart.yaml`. Charts
//!     differ here (kube-state-metrics uses `v` + appVersion), so set tags
//!     explicitly for anything that must match exactly;
//!   - digest: the map's `digest` (`sha256:` is prefixed when it has no algorithm),
//!     else its `sha` (prefixed with `sha256:` unless it starts with it; Grafana and
//!     kube-prometheus-stack want the bare hex, kube-state-metrics the prefixed
//!     form). Some charts (Loki) drop the tag when a digest is set: compare by
//!     digest when there is one.
//! - A string under a key named exactly `image` that contains `:` or `/` (and no
//!   template braces `{{`) is an image reference taken verbatim: no registry or
//!   tag defaulting, no normalization (`busybox:1.36` stays as it is).
//! - Images inside a map with `enabled: false` (the boolean, at any level of that
//!   chart's values, the image map itself included) are skipped. A subchart's
//!   `global` is searched only for the keys its parent's `global` lacks (the rest
//!   is the parent's, reported once, at the parent's path).
//! - `values_path` is the dotted path from the top-level chart's values
//!   (`prometheusOperator.image`, `kube-state-metrics.image`,
//!   `extraContainers[0].image`); the result is sorted by it.
//!
//! Not modelled: templates (an image a template hardcodes is not found, an image
//! a template never uses is still reported), `import-values`, and the numeric
//! formatting quirks of Helm's YAML-to-JSON conversion.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

use crate::archive::{Limits, read_tgz};
use crate::oci::layer::Entry;

/// How deep chart archives may nest inside chart archives.
pub const MAX_NESTING: usize = 8;

/// One image a chart's values would deploy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ChartImage {
    /// Where the image is in the values, from the top-level chart: `prometheusOperator.image`,
    /// `kube-state-metrics.image` (a subchart's values are under its key).
    pub values_path: String,
    /// `[registry/]repository[:tag][@digest]`.
    pub reference: String,
}

/// Images referenced by the chart archive `tgz` (named `name` in messages) once `overrides`
/// (the values passed to the chart; `null` means none) are merged over its values, subcharts
/// included. See the module documentation for the rules.
pub fn chart_images(tgz: &[u8], name: &str, overrides: &Value) -> Result<Vec<ChartImage>> {
    let user = match overrides {
        Value::Null => Mapping::new(),
        Value::Mapping(m) => m.clone(),
        _ => bail!("{name}: the values passed to the chart are not a YAML mapping"),
    };
    let mut budget = Budget { used: 0 };
    let chart = Chart::from_archive(tgz, name, 0, &mut budget)?;
    let values = coalesce(&chart, &user);
    let tags = values.get("tags").and_then(Value::as_mapping).cloned().unwrap_or_default();
    let mut out = Vec::new();
    collect(&chart, &values, &tags, "", None, &mut out);
    out.sort();
    out.dedup();
    Ok(out)
}

/// A chart and its subcharts, read from an archive.
#[derive(Debug, Clone)]
struct Chart {
    /// `name` from its Chart.yaml.
    name: String,
    app_version: Option<String>,
    values: Mapping,
    subcharts: Vec<Subchart>,
}

/// A dependency of a chart, resolved to the subchart it uses.
#[derive(Debug, Clone)]
struct Subchart {
    /// The key of its values in the parent's: its alias, else its name.
    key: String,
    condition: Option<String>,
    tags: Vec<String>,
    chart: Chart,
}

/// The parts of `Chart.yaml` that decide values.
#[derive(Debug, Deserialize)]
struct ChartMeta {
    name: String,
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(rename = "appVersion", default)]
    app_version: Option<String>,
    #[serde(default)]
    dependencies: Option<Vec<Dependency>>,
}

/// `requirements.yaml` of an `apiVersion: v1` chart.
#[derive(Debug, Deserialize)]
struct Requirements {
    #[serde(default)]
    dependencies: Vec<Dependency>,
}

#[derive(Debug, Deserialize)]
struct Dependency {
    name: String,
    #[serde(default)]
    alias: Option<String>,
    #[serde(default)]
    condition: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

/// Bytes expanded so far from a chart's archive and the archives nested in it.
struct Budget {
    used: u64,
}

impl Budget {
    fn spend(&mut self, bytes: u64, archive: &str) -> Result<()> {
        self.used = self.used.saturating_add(bytes);
        if self.used > Limits::CHART.total {
            bail!(
                "{archive}: the chart and the chart archives inside it expand to more than {} bytes: refused as a \
                 possible archive bomb",
                Limits::CHART.total
            );
        }
        Ok(())
    }
}

/// An archive's files by path.
type Files = BTreeMap<String, Vec<u8>>;

impl Chart {
    /// The chart in archive `bytes`, named `archive` in messages, nested `depth` archives deep.
    fn from_archive(bytes: &[u8], archive: &str, depth: usize, budget: &mut Budget) -> Result<Chart> {
        if depth > MAX_NESTING {
            bail!("{archive}: chart archives nested more than {MAX_NESTING} deep: refused");
        }
        let mut files = Files::new();
        for (path, entry) in read_tgz(bytes, archive, Limits::CHART)? {
            // Helm reads regular files only.
            if let Entry::File { data, .. } = entry {
                budget.spend(data.len() as u64, archive)?;
                files.insert(path, data);
            }
        }
        let roots: BTreeSet<&str> =
            files.keys().filter_map(|p| p.strip_suffix("/Chart.yaml")).filter(|d| !d.contains('/')).collect();
        let root = match roots.iter().collect::<Vec<_>>()[..] {
            [root] => root.to_string(),
            [] => bail!("{archive}: no <chart>/Chart.yaml at the top: not a Helm chart archive"),
            _ => bail!(
                "{archive}: several charts at the top ({}): not a Helm chart archive",
                roots.iter().copied().collect::<Vec<_>>().join(", ")
            ),
        };
        if let Some(stray) = files.keys().find(|p| !p.starts_with(&format!("{root}/"))) {
            bail!("{archive}: {stray} is outside the chart directory {root}/: refused");
        }
        Chart::load(&files, &root, archive, depth, budget)
    }

    /// The chart in directory `dir` of `files` (from `archive`).
    fn load(files: &Files, dir: &str, archive: &str, depth: usize, budget: &mut Budget) -> Result<Chart> {
        let meta_path = format!("{dir}/Chart.yaml");
        let meta = files.get(&meta_path).with_context(|| format!("{archive}: {meta_path} is missing"))?;
        let meta: ChartMeta = serde_yaml_ng::from_slice(meta)
            .with_context(|| format!("{archive}: {meta_path} is not a valid Chart.yaml"))?;
        let values_path = format!("{dir}/values.yaml");
        let values = match files.get(&values_path) {
            None => Mapping::new(),
            Some(text) => {
                let mut v: Value =
                    serde_yaml_ng::from_slice(text).with_context(|| format!("{archive}: {values_path} is not YAML"))?;
                v.apply_merge().with_context(|| format!("{archive}: {values_path} has a bad merge key (<<)"))?;
                match v {
                    Value::Null => Mapping::new(),
                    Value::Mapping(m) => m,
                    _ => bail!("{archive}: {values_path} is not a YAML mapping"),
                }
            }
        };
        let dependencies = match meta.dependencies {
            Some(deps) => deps,
            // Helm reads requirements.yaml for apiVersion v1 charts only (and a missing apiVersion is v1).
            None if meta.api_version.as_deref().is_none_or(|v| v == "v1") => {
                let req_path = format!("{dir}/requirements.yaml");
                match files.get(&req_path) {
                    None => Vec::new(),
                    Some(text) => serde_yaml_ng::from_slice::<Option<Requirements>>(text)
                        .with_context(|| format!("{archive}: {req_path} is not a valid requirements.yaml"))?
                        .map(|r| r.dependencies)
                        .unwrap_or_default(),
                }
            }
            None => Vec::new(),
        };

        // charts/<sub>/… directories and charts/<sub>.tgz archives.
        let charts_dir = format!("{dir}/charts/");
        let mut dirs = BTreeSet::new();
        let mut loaded: Vec<(String, Chart)> = Vec::new();
        for (path, data) in files.iter().filter(|(p, _)| p.starts_with(&charts_dir)) {
            let rest = &path[charts_dir.len()..];
            if rest.starts_with(['_', '.']) {
                continue;
            }
            match rest.split_once('/') {
                Some((sub, _)) => {
                    dirs.insert(sub);
                }
                None if rest.ends_with(".tgz") => {
                    let nested = format!("{archive}: {path}");
                    loaded.push((path.clone(), Chart::from_archive(data, &nested, depth + 1, budget)?));
                }
                None => {}
            }
        }
        for sub in dirs {
            let sub_dir = format!("{charts_dir}{sub}");
            loaded.push((format!("{sub_dir}/"), Chart::load(files, &sub_dir, archive, depth, budget)?));
        }

        let mut used = vec![false; loaded.len()];
        let mut subcharts = Vec::new();
        for dep in &dependencies {
            let found: Vec<usize> = (0..loaded.len()).filter(|&i| loaded[i].1.name == dep.name).collect();
            let i = match found[..] {
                [i] => i,
                [] => bail!(
                    "{archive}: {meta_path} depends on chart {:?}, but {charts_dir} has no chart of that name (run \
                     `helm dependency build` before packaging)",
                    dep.name
                ),
                _ => bail!(
                    "{archive}: {charts_dir} has several charts named {:?} ({}): cannot tell which one {meta_path} \
                     means",
                    dep.name,
                    found.iter().map(|&i| loaded[i].0.as_str()).collect::<Vec<_>>().join(", ")
                ),
            };
            used[i] = true;
            let key = dep.alias.clone().filter(|a| !a.is_empty()).unwrap_or_else(|| dep.name.clone());
            subcharts.push(Subchart {
                key,
                condition: dep.condition.clone(),
                tags: dep.tags.clone(),
                chart: loaded[i].1.clone(),
            });
        }
        for ((_, chart), _) in loaded.iter().zip(&used).filter(|(_, used)| !**used) {
            subcharts.push(Subchart {
                key: chart.name.clone(),
                condition: None,
                tags: Vec::new(),
                chart: chart.clone(),
            });
        }
        let mut keys = BTreeSet::new();
        for s in &subcharts {
            if !keys.insert(s.key.as_str()) {
                bail!("{archive}: two subcharts of {dir} use the values key {:?}", s.key);
            }
        }
        Ok(Chart { name: meta.name, app_version: meta.app_version, values, subcharts })
    }
}

/// The chart's values with `user` merged over, its subcharts' coalesced values under their
/// keys (all of them, enabled or not, as Helm coalesces before it evaluates conditions).
fn coalesce(chart: &Chart, user: &Mapping) -> Mapping {
    let mut values = chart.values.clone();
    merge(&mut values, user);
    let global = values.get("global").and_then(Value::as_mapping).cloned().unwrap_or_default();
    for sub in &chart.subcharts {
        let mut given = values.get(sub.key.as_str()).and_then(Value::as_mapping).cloned().unwrap_or_default();
        let mut sub_global = given.get("global").and_then(Value::as_mapping).cloned().unwrap_or_default();
        merge(&mut sub_global, &global);
        given.insert("global".into(), Value::Mapping(sub_global));
        values.insert(sub.key.as_str().into(), Value::Mapping(coalesce(&sub.chart, &given)));
    }
    values
}

/// Helm's deep merge: `over` wins, maps merge key by key, `null` deletes.
fn merge(base: &mut Mapping, over: &Mapping) {
    for (k, v) in over {
        if v.is_null() {
            base.remove(k);
            continue;
        }
        match (base.get_mut(k), v) {
            (Some(Value::Mapping(b)), Value::Mapping(o)) => merge(b, o),
            // Nulls under a key the base lacks stay: they delete a subchart's defaults later.
            _ => {
                base.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Is `sub` enabled, given its parent's coalesced `values` and the top-level chart's `tags`?
fn enabled(sub: &Subchart, values: &Mapping, tags: &Mapping) -> bool {
    let mut enabled = true;
    let set: Vec<bool> = sub.tags.iter().filter_map(|t| tags.get(t.as_str()).and_then(Value::as_bool)).collect();
    if set.contains(&false) && !set.contains(&true) {
        enabled = false;
    }
    for path in sub.condition.iter().flat_map(|c| c.split(',')).map(str::trim).filter(|p| !p.is_empty()) {
        if let Some(b) = lookup(values, path).and_then(Value::as_bool) {
            enabled = b;
            break;
        }
    }
    enabled
}

/// The value at dotted `path` (`grafana.enabled`) in `values`.
fn lookup<'a>(values: &'a Mapping, path: &str) -> Option<&'a Value> {
    let (parents, last) = path.rsplit_once('.').unwrap_or(("", path));
    let mut m = values;
    for part in parents.split('.').filter(|p| !p.is_empty()) {
        m = m.get(part)?.as_mapping()?;
    }
    m.get(last)
}

/// What an image's reference defaults from: the chart it is in.
struct Defaults<'a> {
    /// `global.imageRegistry`, when non-empty.
    registry: Option<&'a str>,
    app_version: Option<&'a str>,
}

/// Push the images of `chart` (coalesced `values`, at `prefix`) and of its enabled subcharts.
/// `parent_global` is the parent's `global` (`None` for the top-level chart).
fn collect(
    chart: &Chart,
    values: &Mapping,
    tags: &Mapping,
    prefix: &str,
    parent_global: Option<&Mapping>,
    out: &mut Vec<ChartImage>,
) {
    let global = values.get("global").and_then(Value::as_mapping);
    let defaults = Defaults {
        registry: global.and_then(|g| g.get("imageRegistry")).and_then(Value::as_str).filter(|r| !r.trim().is_empty()),
        app_version: chart.app_version.as_deref().filter(|v| !v.trim().is_empty()),
    };
    if !disabled(values) {
        for (k, v) in values {
            let key = key_text(k);
            if chart.subcharts.iter().any(|s| s.key == key) {
                continue;
            }
            match (key.as_str(), parent_global, v) {
                // A subchart sees its parent's globals: those are searched once, in the parent.
                ("global", Some(inherited), Value::Mapping(own)) => {
                    for (k, v) in own.iter().filter(|(k, _)| !inherited.contains_key(*k)) {
                        let k = key_text(k);
                        walk(&defaults, &k, v, &format!("{prefix}global.{k}"), out);
                    }
                }
                _ => walk(&defaults, &key, v, &format!("{prefix}{key}"), out),
            }
        }
    }
    for sub in chart.subcharts.iter().filter(|s| enabled(s, values, tags)) {
        if let Some(sub_values) = values.get(sub.key.as_str()).and_then(Value::as_mapping) {
            let prefix = format!("{prefix}{}.", sub.key);
            collect(&sub.chart, sub_values, tags, &prefix, Some(global.unwrap_or(&Mapping::new())), out);
        }
    }
}

/// Push the images in `v`, found under `key` at `path`.
fn walk(defaults: &Defaults<'_>, key: &str, v: &Value, path: &str, out: &mut Vec<ChartImage>) {
    match v {
        Value::Mapping(m) => {
            if disabled(m) {
                return;
            }
            if let Some(Value::String(repository)) = m.get("repository") {
                if !repository.trim().is_empty() {
                    out.push(ChartImage {
                        values_path: path.to_string(),
                        reference: reference(defaults, repository, m),
                    });
                }
                return;
            }
            for (k, v) in m {
                let k = key_text(k);
                walk(defaults, &k, v, &format!("{path}.{k}"), out);
            }
        }
        Value::Sequence(items) => {
            for (i, v) in items.iter().enumerate() {
                walk(defaults, "", v, &format!("{path}[{i}]"), out);
            }
        }
        Value::String(s) if key == "image" && s.contains([':', '/']) && !s.contains("{{") => {
            out.push(ChartImage { values_path: path.to_string(), reference: s.trim().to_string() });
        }
        _ => {}
    }
}

/// `enabled: false` (the boolean).
fn disabled(m: &Mapping) -> bool {
    m.get("enabled").and_then(Value::as_bool) == Some(false)
}

/// `[registry/]repository[:tag][@digest]` of an image map.
fn reference(defaults: &Defaults<'_>, repository: &str, m: &Mapping) -> String {
    let registry = defaults.registry.map(str::to_string).or_else(|| scalar(m, "registry"));
    let tag = scalar(m, "tag").or_else(|| defaults.app_version.map(str::to_string));
    let digest = match (scalar(m, "digest"), scalar(m, "sha")) {
        (Some(d), _) if d.contains(':') => Some(d),
        (Some(d), _) => Some(format!("sha256:{d}")),
        (None, Some(s)) if s.starts_with("sha256:") => Some(s),
        (None, Some(s)) => Some(format!("sha256:{s}")),
        (None, None) => None,
    };
    let mut out = String::new();
    if let Some(registry) = registry {
        out.push_str(registry.trim_end_matches('/'));
        out.push('/');
    }
    out.push_str(repository.trim());
    if let Some(tag) = tag {
        out.push(':');
        out.push_str(&tag);
    }
    if let Some(digest) = digest {
        out.push('@');
        out.push_str(&digest);
    }
    out
}

/// A non-empty string or number under `key`, as text.
fn scalar(m: &Mapping, key: &str) -> Option<String> {
    match m.get(key)? {
        Value::String(s) => Some(s.trim().to_string()).filter(|s| !s.is_empty()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A mapping key as text (YAML allows non-string keys).
fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => serde_yaml_ng::to_string(other).map(|s| s.trim().to_string()).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::chart_images;

    /// A gzip'd tar of `files` (path, content), deterministic.
    fn tgz(files: &[(&str, &[u8])]) -> Vec<u8> {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (path, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, *data).unwrap();
        }
        b.into_inner().unwrap().finish().unwrap()
    }

    /// A chart archive of text files.
    fn chart(files: &[(&str, &str)]) -> Vec<u8> {
        tgz(&files.iter().map(|(p, t)| (*p, t.as_bytes())).collect::<Vec<_>>())
    }

    /// The images of `archive` with `overrides` (YAML), one `values_path reference` per line.
    fn images(archive: &[u8], overrides: &str) -> anyhow::Result<String> {
        let overrides = serde_yaml_ng::from_str(overrides).unwrap();
        let images = chart_images(archive, "demo-1.0.0.tgz", &overrides)?;
        Ok(images.iter().map(|i| format!("{} {}\n", i.values_path, i.reference)).collect())
    }

    fn check(archive: &[u8], overrides: &str, expect: &str) {
        let expect: String =
            expect.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| format!("{l}\n")).collect();
        assert_eq!(images(archive, overrides).unwrap(), expect);
    }

    fn check_err(archive: &[u8], expect: &str) {
        let err = format!("{:#}", images(archive, "").unwrap_err());
        assert!(err.contains(expect), "error {err:?} does not contain {expect:?}");
    }

    const DEMO: &str = "apiVersion: v2\nname: demo\nversion: 1.0.0\nappVersion: v0.93.1\n";

    #[test]
    fn image_maps_anywhere_in_the_values() {
        let values = "
image: {registry: quay.io, repository: prometheus-operator/prometheus-operator, tag: v0.93.1}
prometheus:
  prometheusSpec:
    image: {registry: quay.io, repository: prometheus/prometheus, tag: v3.14.0}
sidecar: {downloadImage: {repository: curlimages/curl, tag: 8.9.1}}
extraContainers: [{name: x, image: 'docker.io/library/busybox:1.36'}]
notAnImage: {image: latest, command: 'a:b'}
";
        check(
            &chart(&[("demo/Chart.yaml", DEMO), ("demo/values.yaml", values)]),
            "",
            "
            extraContainers[0].image docker.io/library/busybox:1.36
            image quay.io/prometheus-operator/prometheus-operator:v0.93.1
            prometheus.prometheusSpec.image quay.io/prometheus/prometheus:v3.14.0
            sidecar.downloadImage curlimages/curl:8.9.1
            ",
        );
    }

    #[test]
    fn an_empty_tag_defaults_to_app_version_as_written() {
        let values = "
a: {image: {repository: r/a}}
b: {image: {repository: r/b, tag: ''}}
c: {image: {repository: r/c, tag: null}}
d: {image: {repository: r/d, tag: 8}}
";
        check(
            &chart(&[("demo/Chart.yaml", DEMO), ("demo/values.yaml", values)]),
            "",
            "
            a.image r/a:v0.93.1
            b.image r/b:v0.93.1
            c.image r/c:v0.93.1
            d.image r/d:8
            ",
        );
        // appVersion as written, not as the YAML number it looks like.
        check(
            &chart(&[
                ("demo/Chart.yaml", "name: demo\nversion: 1.0.0\nappVersion: 1.10\n"),
                ("demo/values.yaml", values),
            ]),
            "",
            "a.image r/a:1.10\nb.image r/b:1.10\nc.image r/c:1.10\nd.image r/d:8",
        );
        // No appVersion: no tag.
        check(
            &chart(&[("demo/Chart.yaml", "name: demo\nversion: 1.0.0\n"), ("demo/values.yaml", values)]),
            "",
            "a.image r/a\nb.image r/b\nc.image r/c\nd.image r/d:8",
        );
    }

    #[test]
    fn digests_and_shas() {
        let values = "
a: {image: {registry: docker.io, repository: grafana/loki, tag: 3.7.6, digest: 'sha256:aa'}}
b: {image: {registry: quay.io, repository: prometheus/prometheus, tag: v3.14.0, sha: bb}}
c: {image: {registry: registry.k8s.io, repository: ksm/ksm, tag: v2.20.0, sha: 'sha256:cc'}}
d: {image: {repository: r/d, tag: '1', digest: dd, sha: ee}}
e: {image: {repository: r/e, tag: '1', digest: '', sha: ''}}
";
        check(
            &chart(&[("demo/Chart.yaml", DEMO), ("demo/values.yaml", values)]),
            "",
            "
            a.image docker.io/grafana/loki:3.7.6@sha256:aa
            b.image quay.io/prometheus/prometheus:v3.14.0@sha256:bb
            c.image registry.k8s.io/ksm/ksm:v2.20.0@sha256:cc
            d.image r/d:1@sha256:dd
            e.image r/e:1
            ",
        );
    }

    #[test]
    fn global_image_registry_wins_over_the_maps_registry_in_subcharts_too() {
        let archive = chart(&[
            ("demo/Chart.yaml", DEMO),
            (
                "demo/values.yaml",
                "global: {tool: {image: {repository: r/t, tag: '1'}}}\n\
                 a: {image: {registry: quay.io, repository: r/a, tag: '1'}}\n\
                 b: {image: {repository: r/b, tag: '1'}}\n",
            ),
            ("demo/charts/sub/Chart.yaml", "name: sub\nversion: 2.0.0\nappVersion: 2.0.0\n"),
            (
                "demo/charts/sub/values.yaml",
                "global: {imageRegistry: sub.example, helper: {image: {repository: r/h, tag: '1'}}}\n\
                 image: {registry: docker.io, repository: r/s}\n",
            ),
        ]);
        // A subchart's own default global applies to it alone; the parent's globals win over it.
        check(
            &archive,
            "",
            "
            a.image quay.io/r/a:1
            b.image r/b:1
            global.tool.image r/t:1
            sub.global.helper.image sub.example/r/h:1
            sub.image sub.example/r/s:2.0.0
            ",
        );
        check(
            &archive,
            "global: {imageRegistry: 'registry.local:5000'}",
            "
            a.image registry.local:5000/r/a:1
            b.image registry.local:5000/r/b:1
            global.tool.image registry.local:5000/r/t:1
            sub.global.helper.image registry.local:5000/r/h:1
            sub.image registry.local:5000/r/s:2.0.0
            ",
        );
        // A null in the overrides deletes a subchart's default, even where the parent's values say nothing.
        check(
            &archive,
            "{sub: {global: {imageRegistry: null}, image: {registry: null}}}",
            "
            a.image quay.io/r/a:1
            b.image r/b:1
            global.tool.image r/t:1
            sub.global.helper.image r/h:1
            sub.image r/s:2.0.0
            ",
        );
    }

    #[test]
    fn a_subchart_takes_the_parents_values_under_its_key_or_alias() {
        let archive = chart(&[
            (
                "demo/Chart.yaml",
                "apiVersion: v2\nname: demo\nversion: 1.0.0\ndependencies:\n- {name: exporter, version: 1.x}\n- {name: exporter, alias: second, version: 1.x}\n",
            ),
            ("demo/values.yaml", "exporter: {image: {tag: v1.12.1}}\nsecond: {image: {registry: mirror.example}}\n"),
            ("demo/charts/exporter/Chart.yaml", "name: exporter\nversion: 1.0.0\nappVersion: 1.0.0\n"),
            (
                "demo/charts/exporter/values.yaml",
                "image: {registry: quay.io, repository: prometheus/node-exporter, tag: ''}\n",
            ),
            ("demo/charts/exporter/templates/ds.yaml", "kind: DaemonSet\n"),
        ]);
        check(
            &archive,
            "",
            "
            exporter.image quay.io/prometheus/node-exporter:v1.12.1
            second.image mirror.example/prometheus/node-exporter:1.0.0
            ",
        );
    }

    #[test]
    fn a_subchart_whose_condition_is_false_is_skipped() {
        let archive = chart(&[
            (
                "demo/Chart.yaml",
                "name: demo\nversion: 1.0.0\ndependencies:\n- {name: grafana, condition: grafana.enabled}\n- {name: ksm, condition: 'kubeStateMetrics.enabled,ksm.enabled'}\n- {name: off, condition: off.enabled}\n- {name: tagged, tags: [extras, logging]}\n",
            ),
            ("demo/values.yaml", "grafana: {enabled: true}\nkubeStateMetrics: {enabled: true}\n"),
            ("demo/charts/grafana/Chart.yaml", "name: grafana\nversion: 1.0.0\n"),
            ("demo/charts/grafana/values.yaml", "image: {repository: grafana/grafana, tag: 13.2.0}\n"),
            ("demo/charts/ksm/Chart.yaml", "name: ksm\nversion: 1.0.0\n"),
            ("demo/charts/ksm/values.yaml", "image: {repository: ksm/ksm, tag: v2.20.0}\n"),
            // Disabled by its own default, which Helm merges in before it evaluates conditions.
            ("demo/charts/off/Chart.yaml", "name: off\nversion: 1.0.0\n"),
            ("demo/charts/off/values.yaml", "enabled: false\nimage: {repository: r/off, tag: '1'}\n"),
            ("demo/charts/tagged/Chart.yaml", "name: tagged\nversion: 1.0.0\n"),
            ("demo/charts/tagged/values.yaml", "image: {repository: r/tagged, tag: '1'}\n"),
        ]);
        check(
            &archive,
            "",
            "
            grafana.image grafana/grafana:13.2.0
            ksm.image ksm/ksm:v2.20.0
            tagged.image r/tagged:1
            ",
        );
        // The parent's values under a disabled subchart's key are no images either.
        check(
            &archive,
            "{grafana: {enabled: false, image: {tag: '13'}}, kubeStateMetrics: {enabled: false}, tags: {extras: false}}",
            "",
        );
        // The first condition path that is a boolean decides; a true tag beats a false one.
        check(
            &archive,
            "{kubeStateMetrics: {enabled: null}, ksm: {enabled: true}, off: {enabled: true}, tags: {extras: false, logging: true}}",
            "
            grafana.image grafana/grafana:13.2.0
            ksm.image ksm/ksm:v2.20.0
            off.image r/off:1
            tagged.image r/tagged:1
            ",
        );
    }

    #[test]
    fn images_under_enabled_false_are_skipped() {
        let values = "
admissionWebhooks:
  enabled: false
  patch: {enabled: true, image: {repository: ingress-nginx/kube-webhook-certgen, tag: v1.6.0}}
kubeRBACProxy: {enabled: false, image: {repository: brancz/kube-rbac-proxy, tag: v0.19.1}}
thanosImage: {enabled: false, repository: thanos/thanos, tag: v0.39.2}
quoted: {enabled: 'false', image: {repository: r/quoted, tag: '1'}}
empty: {image: {repository: '', tag: '1'}}
";
        check(&chart(&[("demo/Chart.yaml", DEMO), ("demo/values.yaml", values)]), "", "quoted.image r/quoted:1");
        // The overrides can switch a section on.
        check(
            &chart(&[("demo/Chart.yaml", DEMO), ("demo/values.yaml", values)]),
            "kubeRBACProxy: {enabled: true}",
            "kubeRBACProxy.image brancz/kube-rbac-proxy:v0.19.1\nquoted.image r/quoted:1",
        );
    }

    #[test]
    fn a_nested_subchart_archive_is_read_with_its_own_subcharts() {
        let inner = chart(&[
            ("ksm/Chart.yaml", "name: ksm\nversion: 1.0.0\nappVersion: 2.20.0\n"),
            ("ksm/values.yaml", "image: {registry: registry.k8s.io, repository: ksm/ksm}\n"),
            ("ksm/charts/proxy/Chart.yaml", "name: proxy\nversion: 0.1.0\n"),
            ("ksm/charts/proxy/values.yaml", "image: {repository: brancz/kube-rbac-proxy, tag: v0.19.1}\n"),
        ]);
        let archive = tgz(&[
            ("demo/Chart.yaml", DEMO.as_bytes()),
            ("demo/values.yaml", b"ksm: {proxy: {image: {tag: v0.20.0}}}\n"),
            ("demo/charts/ksm-1.0.0.tgz", &inner),
            ("demo/charts/_ignored.tgz", b"not an archive"),
            ("demo/charts/README.md", b"not a chart"),
        ]);
        check(
            &archive,
            "",
            "
            ksm.image registry.k8s.io/ksm/ksm:2.20.0
            ksm.proxy.image brancz/kube-rbac-proxy:v0.20.0
            ",
        );
        // A broken nested archive is named with the archive it is in.
        let archive = tgz(&[("demo/Chart.yaml", DEMO.as_bytes()), ("demo/charts/bad-1.0.0.tgz", b"not gzip")]);
        check_err(&archive, "demo-1.0.0.tgz: demo/charts/bad-1.0.0.tgz");
    }

    #[test]
    fn nested_archives_share_one_size_budget_and_a_depth_limit() {
        // Each nested archive is within Limits::CHART, together they are not.
        let zeros = vec![0u8; 17 << 20];
        let inner = |name: &str| {
            let chart_yaml = format!("name: {name}\nversion: 1.0.0\n");
            tgz(&[(&format!("{name}/Chart.yaml"), chart_yaml.as_bytes()), (&format!("{name}/blob"), &zeros)])
        };
        let (a, b) = (inner("a"), inner("b"));
        let archive =
            tgz(&[("demo/Chart.yaml", DEMO.as_bytes()), ("demo/charts/a.tgz", &a), ("demo/charts/b.tgz", &b)]);
        check_err(&archive, "demo-1.0.0.tgz: demo/charts/b.tgz: the chart and the chart archives inside it expand");

        let mut archive = chart(&[("c/Chart.yaml", "name: c\nversion: 1.0.0\n")]);
        for _ in 0..=super::MAX_NESTING {
            archive = tgz(&[("c/Chart.yaml", b"name: c\nversion: 1.0.0\n"), ("c/charts/c.tgz", &archive)]);
        }
        check_err(&archive, "nested more than 8 deep");
    }

    #[test]
    fn overrides_merge_deeply_and_null_deletes() {
        let archive = chart(&[
            ("demo/Chart.yaml", DEMO),
            (
                "demo/values.yaml",
                "a: {image: {registry: quay.io, repository: r/a, tag: v1}}\nb: {image: {repository: r/b, tag: v1}}\n",
            ),
        ]);
        check(&archive, "", "a.image quay.io/r/a:v1\nb.image r/b:v1");
        check(
            &archive,
            "{a: {image: {tag: v2, sha: abc}}, b: {image: {tag: null}}, c: {image: {repository: r/c, tag: null}}}",
            "
            a.image quay.io/r/a:v2@sha256:abc
            b.image r/b:v0.93.1
            c.image r/c:v0.93.1
            ",
        );
        // A whole section replaced by a non-map, or deleted.
        check(&archive, "{a: {image: 'mirror.example/r/a:v3'}, b: null}", "a.image mirror.example/r/a:v3");
    }

    #[test]
    fn an_archive_entry_with_dot_dot_is_refused() {
        let gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut b = tar::Builder::new(gz);
        for (name, data) in [("demo/Chart.yaml", DEMO.as_bytes()), ("demo/../../etc/evil.yaml", b"x")] {
            let mut h = tar::Header::new_gnu();
            // Written raw: the tar crate's own setters refuse `..`.
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, data).unwrap();
        }
        let archive = b.into_inner().unwrap().finish().unwrap();
        check_err(&archive, "demo-1.0.0.tgz: entry \"demo/../../etc/evil.yaml\"");
    }

    #[test]
    fn errors_name_the_archive_and_the_file() {
        let bad = |files: &[(&str, &str)], expect: &str| check_err(&chart(files), expect);
        bad(
            &[("demo/Chart.yaml", DEMO), ("demo/values.yaml", "a: [")],
            "demo-1.0.0.tgz: demo/values.yaml is not YAML: ",
        );
        bad(&[("demo/Chart.yaml", DEMO), ("demo/values.yaml", "- a\n")], "demo/values.yaml is not a YAML mapping");
        bad(&[("demo/Chart.yaml", "version: 1\n")], "demo-1.0.0.tgz: demo/Chart.yaml is not a valid Chart.yaml: ");
        bad(&[("demo/values.yaml", "{}")], "demo-1.0.0.tgz: no <chart>/Chart.yaml at the top");
        bad(
            &[("demo/Chart.yaml", DEMO), ("other/values.yaml", "{}")],
            "other/values.yaml is outside the chart directory",
        );
        bad(
            &[("demo/Chart.yaml", "name: demo\ndependencies: [{name: grafana, condition: grafana.enabled}]\n")],
            "demo/Chart.yaml depends on chart \"grafana\", but demo/charts/ has no chart of that name",
        );
        bad(
            &[("demo/Chart.yaml", DEMO), ("demo/charts/sub/values.yaml", "{}")],
            "demo-1.0.0.tgz: demo/charts/sub/Chart.yaml is missing",
        );
    }
}
