//! Every well-known path of the project, relative to the project root.
//!
//! Nothing else in the tool spells a project path: ask this module.

use camino::{Utf8Path, Utf8PathBuf};

/// The project root: the directory holding the virtual `Cargo.toml`.
pub fn root() -> Utf8PathBuf {
    // xtask/ is always one level below the root; CARGO_MANIFEST_DIR is set at
    // compile time, so this needs no I/O and no process cwd.
    let manifest_dir = Utf8Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().expect("xtask/ has a parent directory").to_path_buf()
}

static STACK_FILE: std::sync::OnceLock<Utf8PathBuf> = std::sync::OnceLock::new();

/// Use another stack file than the project's (`cargo xtask --stack FILE`); set once, at startup.
pub fn set_stack_file(path: Utf8PathBuf) {
    let _ = STACK_FILE.set(path);
}

/// The stack definition: the one source of truth for components, pins and the matrix
/// (`stack.toml` at the project root unless `--stack` names another).
pub fn stack_file() -> Utf8PathBuf {
    STACK_FILE.get().cloned().unwrap_or_else(|| root().join("stack.toml"))
}

/// The directory lock files are relative to: the stack file's.
pub fn stack_dir() -> Utf8PathBuf {
    stack_file().parent().map(Utf8Path::to_path_buf).unwrap_or_else(root)
}

/// Golden snapshots of every rendered file, per profile and arch.
pub fn golden_dir() -> Utf8PathBuf {
    root().join("golden")
}

/// Test fixtures (malformed stack files, ...).
pub fn fixtures_dir() -> Utf8PathBuf {
    root().join("fixtures")
}

/// The committed wrapper modules of the programs built from Go modules (`fixtures/go/<program>/`).
pub fn go_wrappers_dir() -> Utf8PathBuf {
    fixtures_dir().join("go")
}

/// Where `cargo xtask fixtures` builds them: `target/fixtures/go/<program>/<arch>/`.
pub fn go_build_dir() -> Utf8PathBuf {
    target_dir().join("fixtures").join("go")
}

/// Declarative end-to-end scenarios.
pub fn scenarios_dir() -> Utf8PathBuf {
    root().join("scenarios")
}

/// Everything the tool writes goes under `target/`.
/// The e2e compose tier's workload scripts (busybox), mounted read-only into its containers.
pub fn workload_dir() -> Utf8PathBuf {
    fixtures_dir().join("e2e").join("workload")
}

pub fn target_dir() -> Utf8PathBuf {
    root().join("target")
}

/// Default output directory of `cargo xtask render`.
pub fn render_out_dir(profile: &str, arch: &str) -> Utf8PathBuf {
    target_dir().join("render").join(profile).join(arch)
}
