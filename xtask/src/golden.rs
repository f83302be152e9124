//! Golden snapshots of rendered files, stored in insta's `.snap` format under
//! `golden/render/<profile>/<arch>/`, so `cargo test` (insta) and
//! `cargo xtask render --check` read the same files.

use std::collections::BTreeSet;
use std::fmt;

use anyhow::{Context, Result};
use camino::{Utf8Path, Utf8PathBuf};

use crate::paths;
use crate::render::Files;
use crate::stack::Arch;

/// The test that asserts these snapshots; written into each header as insta does.
const SOURCE: &str = "xtask/tests/render.rs";

/// Where the rendered-file snapshots live: `golden/render/`.
pub fn render_root() -> Utf8PathBuf {
    paths::golden_dir().join("render")
}

/// Directory of one profile/arch's snapshots under `root`.
pub fn dir_in(root: &Utf8Path, profile: &str, arch: Arch) -> Utf8PathBuf {
    root.join(profile).join(arch.as_str())
}

/// Directory of one profile/arch's snapshots in the project.
pub fn dir(profile: &str, arch: Arch) -> Utf8PathBuf {
    dir_in(&render_root(), profile, arch)
}

/// Snapshot name of a rendered path: `/` becomes `__` (insta names are flat).
pub fn snapshot_name(rel: &Utf8Path) -> String {
    rel.as_str().replace('/', "__")
}

/// A snapshot file's full text, as insta writes it.
pub fn snapshot_text(contents: &str) -> String {
    format!("---\nsource: {SOURCE}\nexpression: contents\n---\n{}\n", contents.trim_end_matches('\n'))
}

/// The body of a `.snap` file (what follows the `---` header).
pub fn snapshot_body(text: &str) -> Option<&str> {
    let rest = text.strip_prefix("---\n")?;
    let end = rest.find("\n---\n")?;
    Some(&rest[end + 5..])
}

/// One way the golden snapshots differ from the renderers' output.
#[derive(Debug)]
pub enum Drift {
    Changed { snapshot: Utf8PathBuf, line: usize, golden: String, rendered: String },
    Missing { snapshot: Utf8PathBuf },
    Unreferenced { snapshot: Utf8PathBuf },
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Drift::Changed { snapshot, line, golden, rendered } => write!(
                f,
                "{snapshot}: differs from the rendered file at line {line}\n  golden:   {golden}\n  rendered: {rendered}"
            ),
            Drift::Missing { snapshot } => {
                write!(f, "{snapshot}: missing (a renderer produces a file with no snapshot)")
            }
            Drift::Unreferenced { snapshot } => {
                write!(f, "{snapshot}: unreferenced (no renderer produces this file any more)")
            }
        }
    }
}

/// Compare every rendered file with its snapshot in golden/, and look for snapshots nothing renders.
pub fn check(sets: &[(String, Arch, &Files)]) -> Result<Vec<Drift>> {
    check_in(&render_root(), sets)
}

/// Rewrite golden/ from the rendered sets; returns how many snapshots it holds.
pub fn bless(sets: &[(String, Arch, &Files)]) -> Result<usize> {
    bless_in(&render_root(), sets)
}

/// [`check`] against the snapshots under `root`.
pub fn check_in(root: &Utf8Path, sets: &[(String, Arch, &Files)]) -> Result<Vec<Drift>> {
    let mut drift = Vec::new();
    let mut expected = BTreeSet::new();
    for (profile, arch, files) in sets {
        let dir = dir_in(root, profile, *arch);
        for (rel, contents) in files.iter() {
            let snap = dir.join(format!("{}.snap", snapshot_name(rel)));
            expected.insert(snap.clone());
            let text = match std::fs::read_to_string(&snap) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    drift.push(Drift::Missing { snapshot: paths::shown(&snap) });
                    continue;
                }
                Err(e) => return Err(e).with_context(|| format!("reading {snap}")),
            };
            let golden = snapshot_body(&text).unwrap_or(&text).trim_end_matches('\n');
            let rendered = contents.trim_end_matches('\n');
            if golden != rendered {
                let (line, g, r) = first_difference(golden, rendered);
                drift.push(Drift::Changed { snapshot: paths::shown(&snap), line, golden: g, rendered: r });
            }
        }
    }
    for snap in existing_snapshots(root)? {
        if !expected.contains(&snap) {
            drift.push(Drift::Unreferenced { snapshot: paths::shown(&snap) });
        }
    }
    Ok(drift)
}

/// Rewrite the snapshots under `root` and delete unreferenced ones. Returns the count.
pub fn bless_in(root: &Utf8Path, sets: &[(String, Arch, &Files)]) -> Result<usize> {
    let mut expected = BTreeSet::new();
    for (profile, arch, files) in sets {
        let dir = dir_in(root, profile, *arch);
        for (rel, contents) in files.iter() {
            let snap = dir.join(format!("{}.snap", snapshot_name(rel)));
            let text = snapshot_text(contents);
            if std::fs::read_to_string(&snap).ok().as_deref() != Some(text.as_str()) {
                crate::atomic::write(&snap, text.as_bytes(), false)?;
            }
            expected.insert(snap);
        }
    }
    for snap in existing_snapshots(root)? {
        if !expected.contains(&snap) {
            std::fs::remove_file(&snap).with_context(|| format!("removing unreferenced {snap}"))?;
        }
    }
    Ok(expected.len())
}

fn existing_snapshots(root: &Utf8Path) -> Result<Vec<Utf8PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("listing {dir}")),
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("listing {dir}"))?;
            let path = Utf8PathBuf::from_path_buf(entry.path())
                .map_err(|p| anyhow::anyhow!("non UTF-8 path under golden/: {}", p.display()))?;
            if entry.file_type()?.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn first_difference(golden: &str, rendered: &str) -> (usize, String, String) {
    let mut g = golden.lines();
    let mut r = rendered.lines();
    let mut line = 1;
    loop {
        match (g.next(), r.next()) {
            (Some(a), Some(b)) if a == b => line += 1,
            (a, b) => {
                let show = |s: Option<&str>| s.map(|s| s.to_string()).unwrap_or_else(|| "(end of file)".into());
                return (line, show(a), show(b));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_text_round_trips() {
        let text = snapshot_text("a: 1\nb: 2\n");
        assert_eq!(snapshot_body(&text).map(|b| b.trim_end()), Some("a: 1\nb: 2"));
    }

    #[test]
    fn first_difference_names_the_line() {
        assert_eq!(first_difference("a\nb\nc", "a\nx\nc"), (2, "b".into(), "x".into()));
        assert_eq!(first_difference("a", "a\nb"), (2, "(end of file)".into(), "b".into()));
    }
}
