//! `cargo xtask bundle verify` on crafted bundles: a chart's images (the local profile has
//! none), every archive form told by its bytes, archives that unpack to other bytes than
//! they verify as (duplicates, links, entries outside the top folder), bundle.json that
//! lies about the images, and folders with special files, links and a 1 GiB file.

use std::process::Command;
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use xtask::bundle::example::{self, Example};
use xtask::stack::Arch;

fn tgz(files: &[(&str, &str)]) -> Vec<u8> {
    let files: Vec<(&str, &[u8])> = files.iter().map(|(p, t)| (*p, t.as_bytes())).collect();
    example::gzip(&example::tar(&files))
}

/// Writes a bundle folder (amd64) with consistent SHA256SUMS and bundle.json; `images` are (path, name).
fn write_bundle(dir: &Utf8Path, files: &[(&str, Vec<u8>)], images: &[(&str, &str)], unused: &[(&str, &str)]) {
    let mut ex = Example::new(Arch::Amd64);
    for (path, bytes) in files {
        ex = if path.starts_with("charts/") {
            ex.chart(path, bytes.clone(), unused)
        } else {
            ex.rendered(path, bytes.clone())
        };
    }
    for (path, name) in images {
        ex = ex.image(path, name);
    }
    ex.write(dir).unwrap();
}

fn verify(path: &Utf8Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_xtask")).args(["bundle", "verify", path.as_str()]).output().unwrap();
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
    ];
    let mut images = vec![("images/cloud/operator.tar", "quay.io/prometheus-operator/prometheus-operator:v0.93.1")];
    write_bundle(&dir, &files, &images, &[]);
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
    images.push(("images/cloud/grafana.tar", "docker.io/grafana/grafana:13.2.0"));
    images.push(("images/cloud/sidecar.tar", "quay.io/kiwigrid/k8s-sidecar:2.10.1"));
    std::fs::remove_dir_all(&dir).unwrap();
    write_bundle(&dir, &files, &images, &[("operator.thanosImage", "used only by ThanosRuler")]);
    let (ok, stderr) = verify(&dir);
    assert!(ok, "{stderr}");
    assert!(stderr.contains("note: charts/stack-2.0.0.tgz: operator.thanosImage = quay.io/thanos/thanos:v0.39.2 is not bundled, declared unused: used only by ThanosRuler"), "{stderr}");
}

const APP: &str = "quay.io/demo/app:v1";
const MANIFEST: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: app}\nspec:\n  containers:\n  - {name: app, image: quay.io/demo/app:v1}\n";

/// A small, consistent bundle: a manifest, a script and the image the manifest names.
fn sample() -> Example {
    Example::new(Arch::Amd64)
        .rendered("manifests/20-app.yaml", MANIFEST)
        .rendered("scripts/install.sh", "#!/bin/sh\necho install\n")
        .image("images/cloud/app.tar", APP)
}

fn tmp() -> (tempfile::TempDir, Utf8PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let root = Utf8Path::from_path(t.path()).unwrap().to_path_buf();
    (t, root)
}

/// Append an empty entry of a special type (FIFO, device) at `path`.
fn special(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, path: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_size(0);
    b.append_data(&mut h, path, std::io::empty()).unwrap();
}

/// The sample bundle as a tar under observability/, then `extra` entries appended.
fn archive_with(extra: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, bytes) in sample().files() {
        let mut h = tar::Header::new_ustar();
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        b.append_data(&mut h, format!("observability/{path}"), bytes.as_slice()).unwrap();
    }
    extra(&mut b);
    b.into_inner().unwrap()
}

fn link(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, path: &str, target: &str) {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o777);
    h.set_size(0);
    b.append_link(&mut h, path, target).unwrap();
}

fn zstd(bytes: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(bytes, 3).unwrap()
}

/// Item 5: every form `bundle` writes is read, told by its bytes (the names here lie).
#[test]
fn every_archive_form_verifies_whatever_its_name() {
    let (_t, root) = tmp();
    let tar = example::archive(&sample().files());
    for (name, bytes) in
        [("plain.tar.gz", tar.clone()), ("gzip.tar", example::gzip(&tar)), ("zstd.tgz", zstd(&tar)), ("nameless", tar)]
    {
        let path = root.join(name);
        std::fs::write(&path, bytes).unwrap();
        let (ok, stderr) = verify(&path);
        assert!(ok, "{name}: {stderr}");
    }
    let junk = root.join("junk.tar");
    std::fs::write(&junk, b"not an archive at all").unwrap();
    let (ok, stderr) = verify(&junk);
    assert!(!ok && stderr.contains("is not a tar, tar.gz or tar.zst archive"), "{stderr}");
    // The folder form too.
    sample().write(&root.join("folder")).unwrap();
    let (ok, stderr) = verify(&root.join("folder"));
    assert!(ok, "{stderr}");
}

/// Item 4: archives that would unpack to other bytes than the ones verified are refused, naming the entry.
#[test]
fn archives_with_duplicates_links_or_stray_entries_are_refused() {
    let (_t, root) = tmp();
    use tar::EntryType::{Link, Symlink};
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "file-then-symlink",
            archive_with(|b| link(b, Symlink, "observability/scripts/install.sh", "/etc/passwd")),
            "\"observability/scripts/install.sh\" appears twice",
        ),
        (
            "file-then-hardlink",
            archive_with(|b| link(b, Link, "observability/scripts/install.sh", "observability/SHA256SUMS")),
            "\"observability/scripts/install.sh\" appears twice",
        ),
        (
            "chained-symlinks",
            archive_with(|b| {
                link(b, Symlink, "observability/scripts/up", "..");
                link(b, Symlink, "observability/scripts/up2", "up/..");
            }),
            "\"observability/scripts/up\" is a symlink",
        ),
        (
            "extra-hardlink",
            archive_with(|b| link(b, Link, "observability/extra", "observability/bundle.json")),
            "\"observability/extra\" is a hard link",
        ),
        (
            "fifo",
            archive_with(|b| special(b, tar::EntryType::Fifo, "observability/pipe")),
            "\"observability/pipe\" is a FIFO",
        ),
        (
            "char-device",
            archive_with(|b| special(b, tar::EntryType::Char, "observability/null")),
            "\"observability/null\" is a character device",
        ),
        (
            "outside-the-top-folder",
            archive_with(|b| {
                let mut h = tar::Header::new_ustar();
                h.set_mode(0o644);
                h.set_size(2);
                b.append_data(&mut h, "elsewhere.txt", &b"hi"[..]).unwrap();
            }),
            "\"elsewhere.txt\" is outside the bundle's one top folder",
        ),
    ];
    for (name, bytes, needle) in cases {
        let path = root.join(format!("{name}.tar"));
        std::fs::write(&path, &bytes).unwrap();
        let (ok, stderr) = verify(&path);
        assert!(!ok && stderr.contains(needle) && stderr.contains("refused"), "{name}: {stderr}");
    }
    // A file that is in neither SHA256SUMS nor bundle.json.
    let path = root.join("extra-file.tar");
    std::fs::write(
        &path,
        archive_with(|b| {
            let mut h = tar::Header::new_ustar();
            h.set_mode(0o644);
            h.set_size(2);
            b.append_data(&mut h, "observability/extra.txt", &b"hi"[..]).unwrap();
        }),
    )
    .unwrap();
    let (ok, stderr) = verify(&path);
    assert!(!ok && stderr.contains("extra.txt: not listed in SHA256SUMS"), "{stderr}");
}

/// Rewrite bundle.json of the folder `dir` with `edit`.
fn edit_json(dir: &Utf8Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("bundle.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
}

/// Item 6: bundle.json must say what the bundle holds.
#[test]
fn bundle_json_is_checked_against_the_bundle() {
    let (_t, root) = tmp();
    let image = "images/cloud/app.tar";
    let other = example::index_digest(APP, Arch::Arm64);
    type Edit<'a> = Box<dyn Fn(&mut serde_json::Value) + 'a>;
    let cases: Vec<(&str, Edit, String)> = vec![
        (
            "arch",
            Box::new(|v| v["arch"] = "arm64".into()),
            format!("{image}: bundle.json says platform linux/amd64 but the bundle's arch is arm64"),
        ),
        (
            "platform",
            Box::new(|v| v["files"][image]["source"]["platform"] = "linux/arm64".into()),
            format!("{image}: bundle.json says platform linux/arm64"),
        ),
        (
            "index_digest",
            Box::new(move |v| v["files"][image]["source"]["index_digest"] = other.clone().into()),
            format!("{image}: the archive's index.json names"),
        ),
        (
            "reference",
            Box::new(|v| v["files"][image]["source"]["reference"] = "quay.io/demo/other:v1".into()),
            "bundle.json says {\"quay.io/demo/other:v1\"".to_string(),
        ),
        ("schema", Box::new(|v| v["schema"] = 2.into()), "bundle.json: schema 2 is not the one this tool reads".into()),
        (
            "a missing record",
            Box::new(|v| {
                v["files"].as_object_mut().unwrap().remove("scripts/install.sh");
            }),
            "scripts/install.sh: not recorded in bundle.json".into(),
        ),
    ];
    for (name, edit, needle) in cases {
        let dir = root.join(name);
        sample().write(&dir).unwrap();
        assert!(verify(&dir).0, "{name}: the untouched sample must verify");
        edit_json(&dir, edit);
        let (ok, stderr) = verify(&dir);
        assert!(!ok && stderr.contains(&needle), "{name}: missing {needle:?} in:\n{stderr}");
    }
    // A bundle named as `bundle` names it says in bundle.json what it is: an edited profile or
    // role does not verify (under another name, only the records above are compared).
    let dir = root.join("observability-example-amd64");
    sample().write(&dir).unwrap();
    assert!(verify(&dir).0, "the untouched sample under its own name must verify");
    for (field, value) in [("profile", serde_json::json!("upstream")), ("role", serde_json::json!("edge"))] {
        edit_json(&dir, |v| v[field] = value.clone());
        let (ok, stderr) = verify(&dir);
        assert!(
            !ok && stderr.contains("but the bundle is named observability-example-amd64"),
            "an edited {field}: {stderr}"
        );
        edit_json(&dir, |v| v[field] = if field == "profile" { "example".into() } else { serde_json::Value::Null });
    }
}

/// The address space a verify under test may take: a runaway fails the test (the allocation
/// fails), it does not take the machine's memory.
const AS_LIMIT: &str = "--as=1073741824";

/// Run verify, failing the test if it takes longer than `limit` (a hang); its peak RSS in KiB.
fn verify_bounded(path: &Utf8Path, limit: Duration) -> (bool, String, u64) {
    let mut child = Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kib=%M", "prlimit", AS_LIMIT, "--"])
        .args([env!("CARGO_BIN_EXE_xtask"), "bundle", "verify", path.as_str()])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("/usr/bin/time and prlimit (apt-get install time util-linux)");
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > limit {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("bundle verify {path} still ran after {limit:?}: it hangs");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let rss =
        stderr.lines().filter_map(|l| l.strip_prefix("maxrss_kib=")).next_back().and_then(|n| n.trim().parse().ok());
    // /usr/bin/time exits with the command's status.
    (out.status.success(), stderr.clone(), rss.unwrap_or_else(|| panic!("no maxrss in {stderr}")))
}

/// Record the file at `rel` (as it reads, following links) in SHA256SUMS and bundle.json.
fn record(dir: &Utf8Path, rel: &str) {
    let (digest, size) = xtask::cache::hash_file(&dir.join(rel)).unwrap();
    let mut sums = std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap();
    sums.push_str(&format!("{}  {rel}\n", digest.trim_start_matches("sha256:")));
    std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
    edit_json(dir, |v| {
        v["files"][rel] = serde_json::json!({"sha256": digest, "size": size, "source": {"kind": "rendered"}})
    });
}

/// Item 7: in a folder, verify never opens a special file, never follows a link, and streams.
#[test]
fn folders_with_specials_or_links_are_refused_and_big_files_stream() {
    let (_t, root) = tmp();
    let limit = Duration::from_secs(60);
    // A FIFO (no writer: opening it for reading would block forever).
    let dir = root.join("fifo");
    sample().write(&dir).unwrap();
    let status = Command::new("mkfifo").arg(dir.join("scripts/pipe").as_str()).status().unwrap();
    assert!(status.success());
    let (ok, stderr, _) = verify_bounded(&dir, limit);
    assert!(!ok && stderr.contains("scripts/pipe is a FIFO: refused"), "{stderr}");

    // A Unix socket (opening it would fail or hang; it is refused from its metadata).
    let dir = root.join("socket");
    sample().write(&dir).unwrap();
    let _listener = std::os::unix::net::UnixListener::bind(dir.join("scripts/sock")).unwrap();
    let (ok, stderr, _) = verify_bounded(&dir, limit);
    assert!(!ok && stderr.contains("scripts/sock is a socket: refused"), "{stderr}");

    // A directory symlink looping back to the bundle.
    let dir = root.join("loop");
    sample().write(&dir).unwrap();
    std::os::unix::fs::symlink("..", dir.join("scripts/loop")).unwrap();
    let (ok, stderr, rss) = verify_bounded(&dir, limit);
    assert!(!ok && stderr.contains("scripts/loop is a symlink (-> ..)"), "{stderr}");
    assert!(rss < 100 << 10, "{rss} KiB");

    // A symlink to an identical file outside the bundle, recorded in both lists.
    let dir = root.join("outside");
    sample().write(&dir).unwrap();
    std::fs::write(root.join("same.yaml"), MANIFEST).unwrap();
    std::os::unix::fs::symlink(root.join("same.yaml"), dir.join("manifests/30-same.yaml")).unwrap();
    record(&dir, "manifests/30-same.yaml");
    let (ok, stderr, _) = verify_bounded(&dir, limit);
    assert!(!ok && stderr.contains("manifests/30-same.yaml is a symlink"), "{stderr}");

    // A sparse 1 GiB file of zeros, recorded: verified by streaming, in bounded memory.
    let dir = root.join("big");
    sample().write(&dir).unwrap();
    let big = std::fs::File::create(dir.join("scripts/zeros.bin")).unwrap();
    big.set_len(1 << 30).unwrap();
    record(&dir, "scripts/zeros.bin");
    let (ok, stderr, rss) = verify_bounded(&dir, Duration::from_secs(300));
    assert!(ok, "{stderr}");
    assert!(rss < 100 << 10, "verify of a 1 GiB file peaked at {rss} KiB: it must stream");
    // The same bundle as an archive: streamed too.
    let tar = root.join("big.tar");
    let o = Command::new("tar")
        .args(["-cf", tar.as_str(), "-C", dir.as_str(), "--transform", "s,^\\.,observability,", "."])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let (ok, stderr, rss) = verify_bounded(&tar, Duration::from_secs(300));
    assert!(ok, "{stderr}");
    assert!(rss < 100 << 10, "verify of an archive with a 1 GiB file peaked at {rss} KiB");
}

/// A manifest that is not YAML is one problem naming it (verify once looped on the parser's
/// error until memory ran out); the files verify keeps in memory (bundle.json, SHA256SUMS,
/// manifests/, charts/) are capped together, not only one by one.
#[test]
fn a_broken_manifest_and_too_many_kept_bytes_are_problems_in_bounded_memory() {
    let (_t, root) = tmp();
    let limit = Duration::from_secs(60);
    let dir = root.join("not-yaml");
    sample().write(&dir).unwrap();
    std::fs::write(dir.join("manifests/40-broken.yaml"), "a: [\n").unwrap();
    record(&dir, "manifests/40-broken.yaml");
    let (ok, stderr, rss) = verify_bounded(&dir, limit);
    assert!(!ok && stderr.contains("manifests/40-broken.yaml: not valid YAML"), "{stderr}");
    assert_eq!(stderr.matches("not valid YAML").count(), 1, "one problem per broken file:\n{stderr}");
    assert!(rss < 100 << 10, "{rss} KiB");

    // Five 30 MiB manifests (sparse zeros), each under the cap of one file, 150 MiB together.
    let dir = root.join("many-kept");
    sample().write(&dir).unwrap();
    for i in 0..5 {
        let rel = format!("manifests/5{i}-zeros.yaml");
        std::fs::File::create(dir.join(&rel)).unwrap().set_len(30 << 20).unwrap();
        record(&dir, &rel);
    }
    let (ok, stderr, rss) = verify_bounded(&dir, limit);
    assert!(!ok && stderr.contains("manifests/53-zeros.yaml: kept files pass"), "{stderr}");
    assert!(rss < 100 << 10, "verify kept {rss} KiB of manifests in memory");
}

/// An image archive's small layers, however many, do not crowd out the JSON blobs verify reads
/// (it kept every blob up to 64 MiB in all, so a valid archive whose layers came first lost its
/// index.json); and the form of each image archive is the one its name and record say.
#[test]
fn image_archives_are_read_whatever_their_layers_and_must_be_the_form_they_say() {
    let (_t, root) = tmp();
    let dir = root.join("small-layers");
    // 17 gzip-looking layers of 4 MiB: 68 MiB of blobs small enough to be kept, before the JSON.
    let layers: Vec<Vec<u8>> = (0..17u8)
        .map(|i| {
            let mut l = vec![i; 4 << 20];
            l[..2].copy_from_slice(&[0x1f, 0x8b]);
            l
        })
        .collect();
    Example::new(Arch::Amd64)
        .rendered("manifests/20-app.yaml", MANIFEST)
        .image_with_layers("images/cloud/app.tar", APP, &layers)
        .write(&dir)
        .unwrap();
    let (ok, stderr, rss) = verify_bounded(&dir, Duration::from_secs(120));
    assert!(ok, "{stderr}");
    assert!(rss < 100 << 10, "{rss} KiB");

    // A zstd archive under a .tar name and a `tar` record (k3s picks the decompressor by name).
    let dir = root.join("zstd-as-tar");
    let mut ex = sample();
    let file = ex.files.get_mut("images/cloud/app.tar").unwrap();
    file.0 = zstd(&file.0);
    ex.write(&dir).unwrap();
    let (ok, stderr) = verify(&dir);
    assert!(
        !ok && stderr
            .contains("images/cloud/app.tar: a tar.zst archive, but its name and bundle.json (format tar) say tar"),
        "{stderr}"
    );
    // A plain tar recorded as tar.zst.
    let dir = root.join("tar-as-zstd");
    sample().write(&dir).unwrap();
    edit_json(&dir, |v| v["files"]["images/cloud/app.tar"]["source"]["format"] = "tar.zst".into());
    let (ok, stderr) = verify(&dir);
    assert!(
        !ok && stderr.contains("images/cloud/app.tar: a tar archive, but bundle.json (format tar.zst)"),
        "{stderr}"
    );
}
