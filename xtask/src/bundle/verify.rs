//! `cargo xtask bundle verify PATH`: offline, check a bundle (a folder, or its archive
//! as tar, tar.gz or tar.zst, told by its bytes) read by [`super::scan`], streamed:
//! every file against SHA256SUMS and bundle.json (both ways: nothing missing, nothing
//! extra), bundle.json against the bundle (schema known; each image archive's own index
//! digest, image names and platforms equal its record; every platform is the bundle's
//! arch; a bundle under the name `bundle` gives it is the profile, arch and role its bundle.json
//! says), and that every image a rendered manifest or chart names is present.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Result, bail};
use camino::{Utf8Path, Utf8PathBuf};

pub use super::scan::{Bundle, load};
use super::{BundleJson, ImageFormat, Source};
use crate::archive::Form;

/// What `bundle verify` found: problems fail it, notes are printed for the reader.
#[derive(Debug, Default)]
pub struct Verdict {
    pub problems: Vec<String>,
    pub notes: Vec<String>,
}

/// Every problem found; empty means the bundle is intact and complete.
pub fn verify(bundle: &Bundle) -> Vec<String> {
    check(bundle).problems
}

/// Check checksums, digests, bundle.json, and that every image the manifests and chart values name is present.
pub fn check(bundle: &Bundle) -> Verdict {
    let mut v = Verdict { problems: bundle.problems.clone(), notes: vec![] };
    let problems = &mut v.problems;
    let files = &bundle.files;
    match bundle.get("SHA256SUMS") {
        None if files.contains_key("SHA256SUMS") => {}
        None => problems.push("SHA256SUMS is missing: rebuild the bundle with `cargo xtask bundle`".into()),
        Some(sums) => {
            let mut listed = BTreeSet::new();
            for (i, line) in String::from_utf8_lossy(sums).lines().enumerate() {
                let Some((hex, path)) = line.split_once("  ") else {
                    problems.push(format!("SHA256SUMS line {}: not `<sha256>  <path>`", i + 1));
                    continue;
                };
                if !listed.insert(path.to_string()) {
                    problems.push(format!("SHA256SUMS line {}: {path} is listed twice", i + 1));
                }
                match files.get(path) {
                    None => problems.push(format!("{path}: listed in SHA256SUMS but missing from the bundle")),
                    Some(f) if f.sha256 != format!("sha256:{hex}") => problems.push(format!(
                        "{path}: checksum mismatch (SHA256SUMS says {hex}, content is {}): the file was changed; \
                         rebuild the bundle",
                        f.sha256
                    )),
                    Some(_) => {}
                }
            }
            for path in files.keys() {
                if path != "SHA256SUMS" && path != "bundle.json" && !listed.contains(path) {
                    problems.push(format!("{path}: not listed in SHA256SUMS (an extra file): remove it or rebuild"));
                }
            }
        }
    }
    let json = bundle_json(bundle, problems);
    if let Some(json) = &json {
        check_records(bundle, json, problems);
    }
    let present = present_images(bundle);
    // reference → where it is named (a manifest, or a chart's values path).
    let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let docs = manifest_docs(bundle, problems);
    for (reference, at) in manifest_images(&docs) {
        wanted.entry(reference).or_default().insert(at);
    }
    for (reference, at) in chart_images(bundle, &docs, json.as_ref(), &present, &mut v) {
        wanted.entry(reference).or_default().insert(at);
    }
    for (reference, at) in &wanted {
        if !carries(&present, reference) {
            let at: Vec<&str> = at.iter().map(String::as_str).collect();
            v.problems.push(format!("image {reference} is not in the bundle (named by {})", at.join(", ")));
        }
    }
    v
}

/// bundle.json, read as the schema this tool writes; a problem when missing, unknown or malformed.
fn bundle_json(bundle: &Bundle, problems: &mut Vec<String>) -> Option<BundleJson> {
    let Some(bytes) = bundle.get("bundle.json") else {
        if !bundle.files.contains_key("bundle.json") {
            problems.push("bundle.json is missing: rebuild the bundle with `cargo xtask bundle`".into());
        }
        return None;
    };
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("bundle.json is not valid JSON: {e}"));
            return None;
        }
    };
    if value["schema"].as_u64() != Some(u64::from(super::SCHEMA)) {
        problems.push(format!(
            "bundle.json: schema {} is not the one this tool reads ({}): verify it with the xtask that built it, \
             or rebuild the bundle",
            value["schema"],
            super::SCHEMA
        ));
        return None;
    }
    match serde_json::from_value::<BundleJson>(value) {
        Ok(j) => Some(j),
        Err(e) => {
            problems.push(format!("bundle.json does not describe a bundle: {e}; rebuild the bundle"));
            None
        }
    }
}

/// Every file against its record, and every image archive's content against its source.
fn check_records(bundle: &Bundle, json: &BundleJson, problems: &mut Vec<String>) {
    let platform = format!("linux/{}", json.arch);
    if json.profile.is_empty() {
        problems.push("bundle.json: the profile is empty".into());
    }
    for (path, rec) in &json.files {
        let Some(file) = bundle.files.get(path) else {
            problems.push(format!("{path}: in bundle.json but missing from the bundle"));
            continue;
        };
        if rec.sha256 != file.sha256 || rec.size != file.size {
            problems.push(format!(
                "{path}: bundle.json says {} ({} bytes), the file is {} ({} bytes)",
                rec.sha256, rec.size, file.sha256, file.size
            ));
        }
        let expected: Option<(BTreeMap<String, String>, &String, ImageFormat)> = match &rec.source {
            Source::Rendered => None,
            Source::Chart { digest, .. } => {
                if *digest != file.sha256 {
                    problems
                        .push(format!("{path}: bundle.json's chart digest {digest} is not the file's {}", file.sha256));
                }
                None
            }
            Source::Image { reference, index_digest, platform: p, format } => {
                Some(([(reference.clone(), index_digest.clone())].into(), p, *format))
            }
            Source::Images { images, platform: p, format } => Some((images.clone(), p, *format)),
        };
        match (expected, &file.image) {
            (None, Some(_)) => {
                problems.push(format!("{path}: an image archive without an image record in bundle.json"))
            }
            (None, None) => {}
            (Some(_), None) if !path.starts_with("images/") => {
                problems.push(format!("{path}: bundle.json records images for a file outside images/"))
            }
            // Unreadable: the reading already said why.
            (Some(_), None) => {}
            (Some((images, p, format)), Some(content)) => {
                check_form(path, content.form, format, problems);
                if *p != platform {
                    problems.push(format!(
                        "{path}: bundle.json says platform {p} but the bundle's arch is {} ({platform})",
                        json.arch
                    ));
                }
                if content.images != images {
                    problems.push(format!(
                        "{path}: the archive's index.json names {:?} but bundle.json says {images:?} (image reference \
                         and index digest must match); rebuild the bundle",
                        content.images
                    ));
                }
                for (name, platforms) in &content.platforms {
                    if platforms.iter().ne([&platform]) {
                        problems.push(format!(
                            "{path}: {name} carries platform(s) {platforms:?}, not the bundle's {platform}"
                        ));
                    }
                }
            }
        }
    }
    for path in bundle.files.keys() {
        if path != "SHA256SUMS" && path != "bundle.json" && !json.files.contains_key(path) {
            problems.push(format!("{path}: not recorded in bundle.json (an extra file): remove it or rebuild"));
        }
    }
}

/// An image archive's form (from its bytes) must be the one its name and its record say:
/// k3s's auto-import and the install scripts choose how to read an archive by its name.
fn check_form(path: &str, actual: Form, recorded: ImageFormat, problems: &mut Vec<String>) {
    let recorded = match recorded {
        ImageFormat::Tar => Form::Tar,
        ImageFormat::TarZst => Form::TarZst,
    };
    let named = if path.ends_with(".tar.zst") {
        Some(Form::TarZst)
    } else if path.ends_with(".tar") {
        Some(Form::Tar)
    } else {
        None
    };
    // Claimed form → who claims it.
    let mut claims: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    if named != Some(actual) {
        claims.entry(named.map_or("neither .tar nor .tar.zst", Form::as_str)).or_default().push("its name".into());
    }
    if recorded != actual {
        claims.entry(recorded.as_str()).or_default().push(format!("bundle.json (format {})", recorded.as_str()));
    }
    for (claimed, who) in claims {
        let verb = if who.len() > 1 { "say" } else { "says" };
        problems.push(format!(
            "{path}: a {} archive, but {} {verb} {claimed} (k3s reads an image archive by its name); rebuild the \
             bundle with `cargo xtask bundle`",
            actual.as_str(),
            who.join(" and ")
        ));
    }
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

/// Whether one of `images` (each a reference and the digests it is known by) is `reference`:
/// the same repository, and then the same digest when the reference has one (some charts drop the
/// tag then), else the same tag. An image known by no digest (an unpinned stack) matches a
/// reference with a digest by its tag. The one rule `bundle verify` and `charts check` use.
pub fn carries<'a>(images: impl IntoIterator<Item = (&'a String, &'a BTreeSet<String>)>, reference: &str) -> bool {
    let (repo, tag, digest) = normalize(reference);
    images.into_iter().any(|(name, digests)| {
        let (r, t, _) = normalize(name);
        r == repo
            && match &digest {
                Some(d) if !digests.is_empty() => digests.contains(d),
                Some(_) => tag.is_some() && t == tag,
                None => t == tag,
            }
    })
}

/// Images named by the values of each chart in `charts/`, with the values its HelmChart
/// manifests pass (`spec.valuesContent`). Images the stack declared unused (recorded in
/// bundle.json) become notes when absent; a declaration the chart does not match is a note too.
fn chart_images(
    bundle: &Bundle,
    docs: &[(String, serde_json::Value)],
    bundle_json: Option<&BundleJson>,
    present: &BTreeMap<String, BTreeSet<String>>,
    v: &mut Verdict,
) -> Vec<(String, String)> {
    let helm_charts = helm_charts(docs, &mut v.problems);
    let mut out = Vec::new();
    let charts = bundle.files.iter().filter(|(p, _)| p.starts_with("charts/") && p.ends_with(".tgz"));
    for (path, tgz) in charts.filter_map(|(p, f)| Some((p, f.bytes.as_deref()?))) {
        let file_name = path.trim_start_matches("charts/");
        let unused: BTreeMap<String, String> = match bundle_json.and_then(|j| j.files.get(path)).map(|r| &r.source) {
            Some(Source::Chart { unused_images, .. }) => unused_images.clone(),
            _ => BTreeMap::new(),
        };
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
                    Some(why) if !carries(present, &image.reference) => v.notes.push(format!(
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

/// The images the bundle's archives carry (from their own index.json): name → index digests.
fn present_images(bundle: &Bundle) -> BTreeMap<String, BTreeSet<String>> {
    let mut names: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for content in bundle.files.values().filter_map(|f| f.image.as_ref()) {
        for (name, digest) in &content.images {
            names.entry(name.clone()).or_default().insert(digest.clone());
        }
    }
    names
}

/// Every YAML document of `manifests/`, with its file's path.
fn manifest_docs(bundle: &Bundle, problems: &mut Vec<String>) -> Vec<(String, serde_json::Value)> {
    let mut out = Vec::new();
    let manifests = bundle.files.iter().filter(|(p, _)| p.starts_with("manifests/"));
    for (path, bytes) in manifests.filter_map(|(p, f)| Some((p, f.bytes.as_deref()?))) {
        let text = String::from_utf8_lossy(bytes);
        for doc in serde_yaml_ng::Deserializer::from_str(&text) {
            match <serde_json::Value as serde::Deserialize>::deserialize(doc) {
                Ok(v) => out.push((path.clone(), v)),
                Err(e) => {
                    problems.push(format!(
                        "{path}: not valid YAML ({e}), so its images cannot be checked; rebuild the bundle with \
                         `cargo xtask bundle`"
                    ));
                    // The parser repeats its error for ever: the rest of the file is unreadable.
                    break;
                }
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
    /// A bundle archive (tar, tar.gz or tar.zst, told by its bytes), or an unpacked `observability/` folder.
    pub path: Utf8PathBuf,
}

/// A bundle `cargo xtask bundle` named (`observability-<profile>-<arch>[-<role>]`, as a folder or
/// an archive) must be what its bundle.json says: an edited profile, arch or role is refused.
pub fn name_problem(path: &Utf8Path, bundle: &Bundle) -> Option<String> {
    let file = path.file_name()?;
    let stem = super::ARCHIVE_ENDINGS.iter().find_map(|ext| file.strip_suffix(ext)).unwrap_or(file);
    if !stem.starts_with("observability-") {
        return None;
    }
    let json: BundleJson = serde_json::from_slice(bundle.get("bundle.json")?).ok()?;
    let said = super::bundle_name(&json.profile, json.arch, json.role);
    (said != stem).then(|| {
        format!(
            "bundle.json says profile {:?}, arch {}{} ({said}) but the bundle is named {stem}: it was edited or renamed; rebuild it",
            json.profile,
            json.arch,
            json.role.map(|r| format!(", role {}", r.as_str())).unwrap_or_default()
        )
    })
}

pub fn run(args: Args) -> Result<()> {
    let bundle = load(&args.path)?;
    let Verdict { mut problems, notes } = check(&bundle);
    problems.extend(name_problem(&args.path, &bundle));
    for n in &notes {
        crate::note!("  note: {n}");
    }
    if problems.is_empty() {
        crate::note!(
            "bundle verify: {} ({}): {} files, all checksums, records and images OK",
            args.path,
            bundle.form,
            bundle.files.len()
        );
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

    use crate::bundle::example::{Example, gzip, index_digest, tar};
    use crate::stack::Arch;

    const CHART_YAML: &str = "apiVersion: v2\nname: demo\nversion: 1.0.0\nappVersion: v1\n";
    const VALUES: &str = "
image: {registry: quay.io, repository: demo/app}
sidecar:
  image: {repository: busybox, tag: '1.36'}
thanosImage: {registry: quay.io, repository: thanos/thanos, tag: v0.39.0}
";
    fn helm_chart(values: &str) -> Vec<u8> {
        let doc = serde_json::json!({
            "apiVersion": "helm.cattle.io/v1",
            "kind": "HelmChart",
            "metadata": {"name": "demo", "namespace": "kube-system"},
            "spec": {"chart": "https://%{KUBERNETES_API}%/static/charts/demo-1.0.0.tgz", "valuesContent": values},
        });
        serde_yaml_ng::to_string(&doc).unwrap().into_bytes()
    }

    /// A consistent bundle of `chart`, its HelmChart's values and the images `(path, name)`;
    /// the chart declares `unused`.
    fn bundle(chart: Vec<u8>, manifest: Option<&str>, images: &[(&str, &str)], unused: &[(&str, &str)]) -> Bundle {
        let mut ex = Example::new(Arch::Amd64).chart("charts/demo-1.0.0.tgz", chart, unused);
        if let Some(values) = manifest {
            ex = ex.rendered("manifests/10-helmchart-demo.yaml", helm_chart(values));
        }
        for (path, name) in images {
            ex = ex.image(path, name);
        }
        Bundle::from_memory(&ex.files()).unwrap()
    }

    fn demo_chart() -> Vec<u8> {
        gzip(&tar(&[("demo/Chart.yaml", CHART_YAML.as_bytes()), ("demo/values.yaml", VALUES.as_bytes())]))
    }

    #[test]
    fn every_image_the_chart_values_name_must_be_in_the_bundle() {
        let v = check(&bundle(demo_chart(), Some("image:\n  tag: v2\n"), &[APP_V2], &[]));
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
            demo_chart(),
            Some("image:\n  tag: v2\n"),
            &[("images/cloud/app.tar", "quay.io/demo/app:v1")],
            &[("sidecar.image", "x"), ("thanosImage", "y")],
        );
        assert_eq!(
            check(&files).problems,
            ["image quay.io/demo/app:v2 is not in the bundle (named by charts/demo-1.0.0.tgz values image)"]
        );
    }

    const APP_V2: (&str, &str) = ("images/cloud/app.tar", "quay.io/demo/app:v2");

    #[test]
    fn images_declared_unused_are_notes_and_stale_declarations_are_reported() {
        let files = bundle(
            demo_chart(),
            Some("image:\n  tag: v2\n"),
            // Docker Hub's short name, as an archive names it in full.
            &[APP_V2, ("images/cloud/busybox.tar", "docker.io/library/busybox:1.36")],
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
            check(&bundle(demo_chart(), Some(values), &[APP_V2], &[("sidecar.image", "x"), ("thanosImage", "y")]))
                .problems
        };
        let digest = index_digest(APP_V2.1, Arch::Amd64);
        let other = index_digest(APP_V2.1, Arch::Arm64);
        assert_eq!(case(&format!("image: {{tag: v2, digest: '{digest}'}}")), Vec::<String>::new());
        // The same index under another tag (charts that drop the tag when a digest is set).
        assert_eq!(case(&format!("image: {{tag: v9, digest: '{digest}'}}")), Vec::<String>::new());
        assert_eq!(
            case(&format!("image: {{tag: v2, digest: '{other}'}}")),
            [format!(
                "image quay.io/demo/app:v2@{other} is not in the bundle (named by charts/demo-1.0.0.tgz values image)"
            )]
        );
    }

    #[test]
    fn a_chart_no_helmchart_installs_is_checked_with_its_defaults_and_noted() {
        let files = bundle(
            demo_chart(),
            None,
            &[("images/cloud/app.tar", "quay.io/demo/app:v1")],
            &[("sidecar.image", "x"), ("thanosImage", "y")],
        );
        let v = check(&files);
        assert_eq!(v.problems, Vec::<String>::new());
        assert!(v.notes[0].contains("no HelmChart in manifests/ installs it"), "{:?}", v.notes);
    }

    #[test]
    fn a_broken_chart_or_values_content_is_a_problem_naming_the_file() {
        let v = check(&bundle(b"not gzip".to_vec(), Some("image: [unclosed\n"), &[], &[]));
        assert!(
            v.problems
                .iter()
                .any(|p| p.starts_with("manifests/10-helmchart-demo.yaml: spec.valuesContent is not valid YAML")),
            "{:?}",
            v.problems
        );
        let v = check(&bundle(b"not gzip".to_vec(), Some("image: {tag: v2}\n"), &[], &[]));
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
        let d = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        assert_eq!(n(&format!("quay.io/a/b@{d}")), ("quay.io/a/b".into(), None, s(d)));
        assert_eq!(n(&format!("quay.io/a/b:v1@{d}")), ("quay.io/a/b".into(), s("v1"), s(d)));
    }
}
