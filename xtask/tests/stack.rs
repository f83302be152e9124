//! The stack model: the real stack.toml loads, and every malformed fixture gives
//! the expected `file:line: field: message` error (snapshot).

use xtask::{paths, stack};

#[test]
fn the_project_stack_file_loads() {
    let s = stack::load(&paths::stack_file()).unwrap_or_else(|e| panic!("{e:#}"));
    assert!(s.profile("upstream").is_ok());
    assert!(s.profile("local").is_ok());
}

#[test]
fn malformed_stack_files_name_file_line_and_field() {
    let dir = paths::fixtures_dir().join("stack");
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {dir}: {e}"))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    entries.sort();
    assert!(entries.len() >= 10, "the malformed corpus in {dir} has only {} files", entries.len());
    let mut report = String::new();
    for path in entries {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let src = std::fs::read_to_string(&path).expect("fixture readable");
        let shown = format!("fixtures/stack/{name}");
        match stack::load_str(&src, &shown) {
            Ok(_) => panic!("{shown} is a malformed fixture but it loaded"),
            Err(errors) => {
                for e in &errors.0 {
                    assert!(e.line > 0, "{shown}: error without a line: {e}");
                    assert!(
                        !e.field.is_empty() || e.message.starts_with("not valid TOML"),
                        "{shown}: error without a field: {e}"
                    );
                }
                report.push_str(&format!("{errors}\n"));
            }
        }
    }
    insta::with_settings!({ snapshot_path => paths::golden_dir().join("errors"), prepend_module_to_snapshot => false }, {
        insta::assert_snapshot!("stack_errors", report);
    });
}

#[test]
fn the_valid_base_of_the_corpus_loads() {
    let path = paths::fixtures_dir().join("stack-valid.toml");
    let src = std::fs::read_to_string(&path).expect("fixture readable");
    if let Err(e) = stack::load_str(&src, path.as_str()) {
        panic!("{e}");
    }
}

/// `[e2e]` is optional: a stack file without it (the valid base) gets the defaults, which are the
/// values stack.toml spells out, so both agree on the compose tier's timing.
#[test]
fn the_e2e_table_is_optional_and_its_defaults_are_the_project_values() {
    let path = paths::fixtures_dir().join("stack-valid.toml");
    let src = std::fs::read_to_string(&path).expect("fixture readable");
    assert!(!src.contains("[e2e]"), "the valid base should show that [e2e] is optional");
    let base = stack::load_str(&src, path.as_str()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(base.e2e, stack::E2e::default());
    let project = stack::load(&paths::stack_file()).unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(project.e2e, stack::E2e::default(), "stack.toml's [e2e] and E2e::default() differ");
}

/// A stack file that is not text (given with --stack) is named as such, not sent to the project root.
#[test]
fn a_binary_stack_file_is_named() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = camino::Utf8PathBuf::from_path_buf(tmp.path().join("stack.bin")).expect("UTF-8 temp dir");
    std::fs::write(&path, [0xff, 0xfe, 0x00, 0x81]).expect("write");
    let err = format!("{:#}", stack::load(&path).expect_err("a binary file is not a stack file"));
    assert!(err.contains(&format!("{path} is not UTF-8 text")), "{err}");
    assert!(!err.contains("it lives at the project root"), "{err}");
    let missing = path.with_file_name("missing.toml");
    let err = format!("{:#}", stack::load(&missing).expect_err("a missing file"));
    assert!(err.contains(&format!("check the path given to --stack ({missing})")), "{err}");
}
