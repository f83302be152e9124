//! Tidy: rules about the source that no compiler checks (rust-analyzer's `tidy.rs` is the model).

use camino::{Utf8Path, Utf8PathBuf};
use xtask::paths;

fn sources(dir: &Utf8Path) -> Vec<(Utf8PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in d.read_dir_utf8().unwrap_or_else(|e| panic!("reading {d}: {e}")) {
            let path = entry.expect("directory entry").path().to_path_buf();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension() == Some("rs") {
                let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
                out.push((path, text));
            }
        }
    }
    out.sort();
    out
}

/// Lines that print without `out.rs`, as `path:line: …`.
fn printing_outside_out(files: &[(Utf8PathBuf, String)]) -> Vec<String> {
    let banned = ["println!(", "eprintln!(", "print!(", "eprint!(", "dbg!("];
    let mut found = Vec::new();
    for (path, text) in files {
        if path.file_name() == Some("out.rs") {
            continue;
        }
        for (i, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for b in banned {
                // `print!(` also matches inside `eprint!(`: look at the character before it.
                let hit = code
                    .match_indices(b)
                    .any(|(at, _)| !code[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_'));
                if hit {
                    found.push(format!("{path}:{}: {b}…) — use crate::outln! or crate::note!", i + 1));
                }
            }
        }
    }
    found
}

/// Printing goes through `out.rs` (`outln!`, `note!`): `println!` and `eprintln!` panic when stdout
/// or stderr is closed or full.
#[test]
fn printing_goes_through_out() {
    let found = printing_outside_out(&sources(&paths::root().join("xtask").join("src")));
    assert!(found.is_empty(), "printing outside out.rs:\n{}", found.join("\n"));
}

/// A check of the check: the rule sees each banned macro, and not the allowed ones or comments.
#[test]
fn tidy_printing_rule_sees_what_it_must() {
    let file = |name: &str, text: &str| (Utf8PathBuf::from(name), text.to_string());
    let files = [
        file("a.rs", "fn f() { println!(\"x\"); }\nfn g() { eprint!(\"y\"); }\n"),
        file("b.rs", "fn f() { crate::note!(\"x\"); crate::outln!(\"y\")?; } // println!(\"z\")\n"),
        file("out.rs", "fn f() { println!(\"allowed here\"); }\n"),
    ];
    let found = printing_outside_out(&files);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(found[0].starts_with("a.rs:1: println!(") && found[1].starts_with("a.rs:2: eprint!("), "{found:?}");
}
