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

/// Lines of `files` (all but `home`, the one file allowed them) whose code uses one of `banned`,
/// as `path:line: <banned>…) — <fix>`. Comments are left out (a `//` after a `:` is a URL's, not
/// one), and so is a banned text that is the tail of a longer name (`print!(` in `eprint!(`).
fn banned_outside(files: &[(Utf8PathBuf, String)], home: &str, banned: &[&str], fix: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in files.iter().filter(|(p, _)| p.file_name() != Some(home)) {
        for (i, line) in text.lines().enumerate() {
            let cut = line.match_indices("//").find(|(at, _)| !line[..*at].ends_with(':')).map(|(at, _)| at);
            let code = &line[..cut.unwrap_or(line.len())];
            for b in banned {
                let hit = code
                    .match_indices(b)
                    .any(|(at, _)| !code[..at].chars().last().is_some_and(|c| c.is_alphanumeric() || c == '_'));
                if hit {
                    found.push(format!("{path}:{}: {b}…) — {fix}", i + 1));
                }
            }
        }
    }
    found
}

/// Lines that print without `out.rs`.
fn printing_outside_out(files: &[(Utf8PathBuf, String)]) -> Vec<String> {
    let banned = ["println!(", "eprintln!(", "print!(", "eprint!(", "dbg!("];
    banned_outside(files, "out.rs", &banned, "use crate::outln! or crate::note!")
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

/// The ports with one place, each with the name to use instead of the number: the constants of
/// `render/ports.rs` (read from its text, so a new constant is checked without listing it here),
/// and the stack's configurable ports (`settings.edge` and `settings.cloudcore`, whose defaults
/// are in `stack/mod.rs`; `settings.node_ports`, from stack.toml).
fn well_known_ports() -> std::collections::BTreeMap<u16, Vec<String>> {
    use xtask::stack::{CloudcorePorts, EdgePorts};
    let mut out: std::collections::BTreeMap<u16, Vec<String>> = Default::default();
    let ports_rs = paths::root().join("xtask/src/render/ports.rs");
    let text = std::fs::read_to_string(&ports_rs).unwrap_or_else(|e| panic!("reading {ports_rs}: {e}"));
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("pub const ") else { continue };
        let Some((name, value)) = rest.split_once(": u16 = ") else { continue };
        let port: u16 = value.trim_end_matches(';').parse().unwrap_or_else(|e| panic!("{ports_rs}: {line}: {e}"));
        out.entry(port).or_default().push(format!("render::ports::{name}"));
    }
    assert!(out.len() >= 10, "{ports_rs}: expected its `pub const NAME: u16 = N;` lines, found {out:?}");
    let stack = xtask::stack::load(&paths::stack_file()).expect("stack.toml loads");
    let settings = [
        ("edge", serde_json::to_value(EdgePorts::default())),
        ("cloudcore", serde_json::to_value(CloudcorePorts::default())),
        ("node_ports", serde_json::to_value(&stack.settings.node_ports)),
    ];
    for (table, value) in settings {
        let value = value.expect("ports serialize");
        for (field, port) in value.as_object().expect("a table of ports") {
            let port = port.as_u64().and_then(|p| u16::try_from(p).ok()).expect("a port");
            out.entry(port).or_default().push(format!("settings.{table}.{field}"));
        }
    }
    out
}

/// Literal uses of `ports` in the sources, as `path:line: …`. Not checked: `render/ports.rs` and
/// `stack/mod.rs` (the places), comment lines, and top-level `#[cfg(test)] mod … { … }` blocks
/// (test data may spell a port out). A number counts when it stands alone: not part of a longer
/// number, a word or hex digest, or a decimal fraction.
fn port_literals(
    src: &Utf8Path,
    files: &[(Utf8PathBuf, String)],
    ports: &std::collections::BTreeMap<u16, Vec<String>>,
) -> Vec<String> {
    let mut found = Vec::new();
    for (path, text) in files {
        let rel = path.strip_prefix(src).unwrap_or(path);
        if rel == "render/ports.rs" || rel == "stack/mod.rs" {
            continue;
        }
        let (mut in_tests, mut cfg_test) = (false, false);
        for (i, line) in text.lines().enumerate() {
            if in_tests {
                in_tests = line != "}";
                continue;
            }
            let code = line.trim();
            if cfg_test && line.starts_with("mod ") && code.ends_with('{') {
                in_tests = true;
                continue;
            }
            cfg_test = code == "#[cfg(test)]";
            if code.starts_with("//") {
                continue;
            }
            let bytes = code.as_bytes();
            let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
            let mut at = 0;
            while at < bytes.len() {
                if !bytes[at].is_ascii_digit() {
                    at += 1;
                    continue;
                }
                let start = at;
                while at < bytes.len() && bytes[at].is_ascii_digit() {
                    at += 1;
                }
                let before = start.checked_sub(1).map(|j| bytes[j]);
                let after = bytes.get(at).copied();
                let fraction = after == Some(b'.') && bytes.get(at + 1).is_some_and(|b| b.is_ascii_digit());
                if before.is_some_and(|b| word(b) || b == b'.') || after.is_some_and(word) || fraction {
                    continue;
                }
                if let Some(names) = code[start..at].parse::<u16>().ok().and_then(|p| ports.get(&p)) {
                    found.push(format!("{rel}:{}: {} — use {}", i + 1, &code[start..at], names.join(" or ")));
                }
            }
        }
    }
    found
}

/// A well-known port is written once (`render/ports.rs`, or the stack's setting): a renderer that
/// spells out `9090` would silently disagree with the others the day the number changes.
#[test]
fn ports_have_one_place() {
    let src = paths::root().join("xtask").join("src");
    let found = port_literals(&src, &sources(&src), &well_known_ports());
    assert!(found.is_empty(), "port literals outside render/ports.rs and stack/mod.rs:\n{}", found.join("\n"));
}

/// A check of the check: the rule sees a port in code, and not in comments, test modules, the two
/// places, longer numbers, words or fractions.
#[test]
fn tidy_port_rule_sees_what_it_must() {
    let src = Utf8Path::new("/src");
    let file = |name: &str, text: &str| (src.join(name), text.to_string());
    let ports = [(9090, vec!["render::ports::PROMETHEUS".to_string()])].into_iter().collect();
    let files = [
        file("render/grafana.rs", "fn f() -> String {\n    format!(\"http://prometheus:9090\")\n}\n"),
        file(
            "render/a.rs",
            "// port 9090\n/// `:9090`\nconst A: &str = \"19090 90901 a9090b 9090.5 v1.9090\";\n\
             #[cfg(test)]\nmod tests {\n    const P: u16 = 9090;\n}\nconst B: u16 = 9090;\n",
        ),
        file("render/ports.rs", "pub const PROMETHEUS: u16 = 9090;\n"),
        file("stack/mod.rs", "EdgePorts { x: 9090 }\n"),
    ];
    let found = port_literals(src, &files, &ports);
    assert_eq!(
        found,
        [
            "render/grafana.rs:2: 9090 — use render::ports::PROMETHEUS",
            "render/a.rs:8: 9090 — use render::ports::PROMETHEUS"
        ],
        "{found:?}"
    );
}

/// Lines outside `paths.rs` that spell a project path from the root or from `target/`.
fn paths_outside_paths(files: &[(Utf8PathBuf, String)]) -> Vec<String> {
    let banned = ["paths::root().join(", "target_dir().join("];
    banned_outside(files, "paths.rs", &banned, "name the path once in paths.rs and call it")
}

/// Project paths have one place (`paths.rs`): a folder moved is moved once.
#[test]
fn project_paths_have_one_place() {
    let found = paths_outside_paths(&sources(&paths::root().join("xtask").join("src")));
    assert!(found.is_empty(), "project paths spelled outside paths.rs:\n{}", found.join("\n"));
}

/// A check of the check: the rule sees a joined root or target path, and not paths.rs or comments.
#[test]
fn tidy_path_rule_sees_what_it_must() {
    let file = |name: &str, text: &str| (Utf8PathBuf::from(name), text.to_string());
    let files = [
        file("a.rs", "let d = crate::paths::target_dir().join(\"e2e\");\nlet g = paths::root().join(\"ci\");\n"),
        file("b.rs", "let d = crate::paths::e2e_run_dir(id); // target_dir().join(\"e2e\")\n"),
        file("c.rs", "let u = \"http://x\"; let d = paths::target_dir().join(\"x\");\n"),
        file("paths.rs", "pub fn e2e() -> Utf8PathBuf { target_dir().join(\"e2e\") }\n"),
    ];
    let found = paths_outside_paths(&files);
    assert_eq!(found.len(), 3, "{found:?}");
    assert!(
        found[0].starts_with("a.rs:1: target_dir().join(")
            && found[1].starts_with("a.rs:2: paths::root().join(")
            && found[2].starts_with("c.rs:1: target_dir()"),
        "{found:?}"
    );
}

/// Source files and test binaries ARCHITECTURE.md does not name (by path, file name or module).
fn unmapped(map: &str, src: &[Utf8PathBuf], tests: &[Utf8PathBuf]) -> Vec<String> {
    let named = |s: &str| map.contains(&format!("`{s}`")) || map.contains(&format!("`{s}/`"));
    let mut missing = Vec::new();
    for rel in src {
        let file = rel.file_name().unwrap_or_default();
        let module = match file {
            "mod.rs" | "lib.rs" | "main.rs" => rel.parent().and_then(|p| p.file_name()).unwrap_or(file).to_string(),
            f => f.trim_end_matches(".rs").to_string(),
        };
        let dir = rel.parent().map(|p| p.as_str()).unwrap_or_default();
        let as_dir = rel.as_str().trim_end_matches("/mod.rs");
        // By its path, or the end of it from any folder on (`report/html.rs`).
        let tails = rel.as_str().match_indices('/').map(|(i, _)| &rel.as_str()[i + 1..]).collect::<Vec<_>>();
        let by_path = named(rel.as_str()) || tails.iter().any(|t| named(t));
        if !(by_path || named(file) || named(&module) || named(as_dir) || (file == "lib.rs" && dir.is_empty())) {
            missing.push(format!("xtask/src/{rel}"));
        }
    }
    for t in tests {
        if !named(t.file_name().unwrap_or_default()) {
            missing.push(format!("xtask/tests/{t}"));
        }
    }
    missing
}

fn relative_rs(dir: &Utf8Path) -> Vec<Utf8PathBuf> {
    sources(dir).into_iter().map(|(p, _)| p.strip_prefix(dir).unwrap().to_path_buf()).collect()
}

/// ARCHITECTURE.md is a true map: every source module and test binary is on it.
#[test]
fn the_map_names_every_module_and_test_binary() {
    let map = std::fs::read_to_string(paths::root().join("ARCHITECTURE.md")).unwrap();
    let src = relative_rs(&paths::root().join("xtask/src"));
    let tests: Vec<Utf8PathBuf> =
        relative_rs(&paths::root().join("xtask/tests")).into_iter().filter(|t| !t.as_str().contains('/')).collect();
    assert!(src.len() > 20 && tests.len() > 10, "the sources were found");
    let missing = unmapped(&map, &src, &tests);
    assert!(missing.is_empty(), "ARCHITECTURE.md does not name:\n{}", missing.join("\n"));
    // A check of the check: a module it does not name is found.
    assert_eq!(unmapped("`a.rs`", &["a.rs".into(), "b/c.rs".into()], &[]), ["xtask/src/b/c.rs"]);
}
