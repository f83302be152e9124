//! Reading `stack.toml`: parse, deserialize into the typed model, then check the
//! rules a type cannot express. Every error carries file, line and field.

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;

use camino::Utf8Path;
use serde_path_to_error::Segment;
use toml::de::{DeTable, DeValue};

use super::{CellPattern, Kind, Role, Stack};

/// One problem in a stack file, located by line and field path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackError {
    pub file: String,
    /// 1-based line; 0 when the problem has no position (e.g. an empty file).
    pub line: usize,
    /// Dotted field path, e.g. `profiles.upstream.components[2].budget`.
    pub field: String,
    pub message: String,
}

impl fmt::Display for StackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let field = if self.field.is_empty() { "(top level)" } else { &self.field };
        write!(f, "{}:{}: {}: {}", self.file, self.line, field, self.message)
    }
}

/// All the problems found in one stack file.
#[derive(Debug)]
pub struct StackErrors(pub Vec<StackError>);

impl fmt::Display for StackErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for StackErrors {}

/// Read and check a stack file.
pub fn load(path: &Utf8Path) -> anyhow::Result<Stack> {
    let src = std::fs::read_to_string(path).map_err(|e| {
        // The message names the file that was read: the project's stack.toml or the one --stack gave.
        let hint = if e.kind() == std::io::ErrorKind::InvalidData {
            format!(
                "{path} is not UTF-8 text (a binary file?): a stack file is TOML, like stack.toml at the project root"
            )
        } else if path == crate::paths::default_stack_file() {
            "it lives at the project root (see README.md)".to_string()
        } else {
            format!(
                "check the path given to --stack ({path}), or leave --stack out to read stack.toml at the project root"
            )
        };
        anyhow::anyhow!("cannot read the stack file {path}: {e}; {hint}")
    })?;
    load_str(&src, path.as_str()).map_err(anyhow::Error::new)
}

/// Check a stack file given as text; `file` is only used in messages.
pub fn load_str(src: &str, file: &str) -> Result<Stack, StackErrors> {
    let err = |span: Option<Range<usize>>, field: String, message: String| StackError {
        file: file.to_string(),
        line: span.map(|s| line_of(src, s.start)).unwrap_or(0),
        field,
        message,
    };
    let doc = match DeTable::parse(src) {
        Ok(doc) => doc,
        Err(e) => {
            return Err(StackErrors(vec![err(
                e.span(),
                String::new(),
                format!("not valid TOML: {}", e.message().trim()),
            )]));
        }
    };
    let de = toml::Deserializer::from(doc.clone());
    let stack: Stack = match serde_path_to_error::deserialize(de) {
        Ok(s) => s,
        Err(e) => {
            let path = path_string(e.path());
            let inner = e.into_inner();
            let segments = path_segments(&path);
            let span = inner.span().or_else(|| span_of(doc.get_ref(), &segments));
            return Err(StackErrors(vec![err(span, path, explain(inner.message()))]));
        }
    };
    let mut problems = Vec::new();
    check(&stack, &mut |field: String, message: String| {
        let span = span_of(doc.get_ref(), &path_segments(&field));
        problems.push(err(span, field, message));
    });
    if problems.is_empty() {
        Ok(stack)
    } else {
        problems.sort_by(|a, b| (a.line, &a.field).cmp(&(b.line, &b.field)));
        Err(StackErrors(problems))
    }
}

/// Rules across fields, which serde cannot check.
fn check(stack: &Stack, report: &mut dyn FnMut(String, String)) {
    if stack.schema != 1 {
        report("schema".into(), format!("unsupported schema {}: this tool reads schema 1", stack.schema));
    }
    let s = &stack.settings;
    for (field, port) in [
        ("settings.node_ports.prometheus", s.node_ports.prometheus),
        ("settings.node_ports.loki", s.node_ports.loki),
        ("settings.node_ports.otlp_grpc", s.node_ports.otlp_grpc),
        ("settings.node_ports.otlp_http", s.node_ports.otlp_http),
        ("settings.node_ports.victoria_logs", s.node_ports.victoria_logs),
    ] {
        if !(30000..=32767).contains(&port) {
            report(field.into(), format!("NodePort {port} is outside the Kubernetes NodePort range 30000-32767"));
        }
    }
    let n = &s.node_ports;
    let ports = [n.prometheus, n.loki, n.otlp_grpc, n.otlp_http, n.victoria_logs];
    if ports.iter().collect::<BTreeSet<_>>().len() != ports.len() {
        report("settings.node_ports".into(), "NodePorts must differ from each other".into());
    }
    if s.evaluation_interval < s.scrape_interval {
        report(
            "settings.evaluation_interval".into(),
            format!(
                "evaluation interval {} is shorter than the scrape interval {}: rules would evaluate stale data; make it at least the scrape interval",
                s.evaluation_interval, s.scrape_interval
            ),
        );
    }
    check_e2e(&stack.e2e, report);
    check_matrix(stack, report);
    check_programs(stack, report);
    check_node(stack, report);
    if s.trace_max_traces == 0 {
        report("settings.trace_max_traces".into(), "must be greater than zero".into());
    }
    for (field, list_len) in [
        ("matrix.k3s", stack.matrix.k3s.len()),
        ("matrix.kubeedge", stack.matrix.kubeedge.len()),
        ("matrix.arch", stack.matrix.arch.len()),
    ] {
        if list_len == 0 {
            report(field.into(), "the matrix axis is empty: list at least one value".into());
        }
    }
    for (name, profile) in &stack.profiles {
        if let Some(lock) = &profile.lock {
            let climbs = lock.split('/').any(|p| p == "..");
            if lock.starts_with('/') || climbs || !lock.ends_with(".lock") {
                report(
                    format!("profiles.{name}.lock"),
                    format!(
                        "{lock:?} must be a relative path inside the project ending in .lock, e.g. \"target/fixtures/local.lock\""
                    ),
                );
            }
        }
    }
    if stack.profiles.is_empty() {
        report("profiles".into(), "no profile defined: define at least `upstream`".into());
    }
    for (pname, profile) in &stack.profiles {
        let mut names = BTreeSet::new();
        let mut log_agents = Vec::new();
        for (i, c) in profile.components.iter().enumerate() {
            let at = format!("profiles.{pname}.components[{i}]");
            if !names.insert(c.name.as_str()) {
                report(
                    format!("{at}.name"),
                    format!("component name {:?} is used twice in profile {pname}", c.name.as_str()),
                );
            }
            if !c.kind.allowed_roles().contains(&c.role) {
                let allowed: Vec<String> = c.kind.allowed_roles().iter().map(ToString::to_string).collect();
                report(
                    format!("{at}.role"),
                    format!("kind {} runs on role {}, not {}", c.kind, allowed.join(" or "), c.role),
                );
            }
            match (c.role, &c.budget) {
                (Role::Edge, None) => report(
                    format!("{at}.budget"),
                    format!(
                        "edge component {:?} has no budget: add `budget = {{ memory = \"64Mi\", cpu = \"100m\" }}` (or the budget you measured and accept)",
                        c.name.as_str()
                    ),
                ),
                (Role::Cloud, Some(_)) => report(
                    format!("{at}.budget"),
                    "budgets are enforced on edge components only: remove it, or set role = \"edge\"".into(),
                ),
                _ => {}
            }
            // Images built here run as plain containers (the compose tier): no chart deploys them.
            let built_here = !c.images.is_empty() && c.images.iter().all(|i| !i.programs.is_empty());
            if c.kind.needs_chart() && c.chart.is_none() && !built_here {
                report(
                    format!("{at}.chart"),
                    format!("kind {} is deployed from a Helm chart: add `chart = {{ repo, name, version }}`", c.kind),
                );
            }
            for (path, why) in c.chart.iter().flat_map(|ch| &ch.unused_images) {
                let valid = !path.is_empty()
                    && path.split('.').all(|seg| !seg.is_empty() && !seg.contains(char::is_whitespace));
                if !valid {
                    report(
                        format!("{at}.chart.unused_images"),
                        format!("{path:?} is not a values path: write it dotted, as `prometheusOperator.thanosImage`"),
                    );
                } else if why.trim().is_empty() {
                    report(
                        format!("{at}.chart.unused_images.{path}"),
                        "say why the chart does not deploy this image with this stack's values".into(),
                    );
                }
            }
            if c.images.is_empty() {
                report(format!("{at}.images"), "a component needs at least one image".into());
            }
            let mut image_names = BTreeSet::new();
            for (j, img) in c.images.iter().enumerate() {
                let iat = format!("{at}.images[{j}]");
                if !image_names.insert(img.name.as_str()) {
                    report(format!("{iat}.name"), format!("image name {:?} is used twice", img.name.as_str()));
                }
                if img.platforms.is_empty() {
                    report(
                        format!("{iat}.platforms"),
                        "list the platforms, e.g. [\"linux/amd64\", \"linux/arm64\"]".into(),
                    );
                }
                for arch in &stack.matrix.arch {
                    if !img.platforms.iter().any(|p| p.arch() == *arch) {
                        report(
                            format!("{iat}.platforms"),
                            format!("the matrix builds {arch} but this image does not list linux/{arch}"),
                        );
                    }
                }
            }
            for required in c.kind.required_images() {
                if c.image(required).is_none() {
                    report(format!("{at}.images"), format!("kind {} needs an image named {required:?}", c.kind));
                }
            }
            if c.enabled && matches!(c.kind, Kind::Alloy | Kind::Promtail | Kind::OtelAgent) {
                log_agents.push((i, c.name.as_str()));
            }
            if c.enabled && c.kind == Kind::LinkProbe && !profile.has(Kind::PrometheusAgent) {
                report(
                    format!("{at}.kind"),
                    "a link probe is scraped and pushed by the node's `prometheus-agent`, and this profile has none \
                     (Alloy probes the link itself: remove this component with alloy)"
                        .into(),
                );
            }
            if c.enabled && c.kind == Kind::NodeExporter && c.role == Role::Edge && !profile.edges_push() {
                report(
                    format!("{at}.kind"),
                    "an edge node exporter needs an edge agent to push its metrics (edges are behind NAT: nothing in \
                     the cloud can scrape them): add a `prometheus-agent` component, or enable `alloy`"
                        .into(),
                );
            }
        }
        if log_agents.len() > 1 {
            let (i, _) = log_agents[1];
            let names: Vec<&str> = log_agents.iter().map(|(_, n)| *n).collect();
            report(
                format!("profiles.{pname}.components[{i}].enabled"),
                format!(
                    "more than one edge log agent is enabled ({}): set enabled = false on all but one",
                    names.join(", ")
                ),
            );
        }
    }
}

/// Go programs: well-formed recipes, named by the images that use them, and at the upstream
/// profile's release unless `differs` says why not.
fn check_programs(stack: &Stack, report: &mut dyn FnMut(String, String)) {
    let semver = |v: &str| {
        v.strip_prefix('v').is_some_and(|r| {
            let core = r.split(['-', '+']).next().unwrap_or("");
            core.split('.').count() == 3
                && core.split('.').all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        })
    };
    for (name, p) in &stack.programs {
        let at = format!("programs.{name}");
        if p.module.is_empty() || p.module.contains(char::is_whitespace) || !p.module.contains('/') {
            report(
                format!("{at}.module"),
                format!("{:?} is not a module path, e.g. \"github.com/prometheus/prometheus\"", p.module),
            );
        }
        if !semver(&p.version) {
            report(format!("{at}.version"), format!("{:?} is not a module version, e.g. \"v0.314.0\"", p.version));
        }
        if p.packages.is_empty() {
            report(format!("{at}.packages"), "list the packages to build, e.g. [\"cmd/prometheus\"]".into());
        }
        for pkg in &p.packages {
            let bad = pkg.starts_with('/')
                || pkg.split('/').any(|s| s.is_empty() || s == "..")
                || pkg.contains(char::is_whitespace);
            if bad && pkg != "." {
                report(
                    format!("{at}.packages"),
                    format!("{pkg:?} is not a package path inside the module, e.g. \"cmd/promtool\""),
                );
            }
        }
        for line in &p.replace {
            let ok = line.split_once(" => ").is_some_and(|(old, new)| {
                !old.trim().is_empty()
                    && new.split_whitespace().count() == 2
                    && semver(new.split_whitespace().nth(1).unwrap_or(""))
            });
            if !ok {
                report(
                    format!("{at}.replace"),
                    format!(
                        "{line:?} must read `old/module => new/module vX.Y.Z` (a published module, as upstream's go.mod has it)"
                    ),
                );
            }
        }
        for (key, value) in &p.ldflags {
            if key.contains(char::is_whitespace) || value.contains(['\'', '"']) || !key.contains('.') {
                report(
                    format!("{at}.ldflags.{key}"),
                    "an -X setting is `\"import/path.Var\" = \"value\"`, with no quotes in the value".into(),
                );
            }
        }
        if let Some(c) = &p.collector {
            if p.packages != ["."] {
                report(
                    format!("{at}.packages"),
                    "a collector is one binary, the module the builder writes: packages = [\".\"]".into(),
                );
            }
            if c.name.is_empty() || !c.name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                report(
                    format!("{at}.collector.name"),
                    format!("{:?} is not a binary name, e.g. \"edge-agent\"", c.name),
                );
            }
            for (class, lines) in c.classes() {
                for line in lines {
                    let mut parts = line.split_whitespace();
                    let ok = matches!((parts.next(), parts.next(), parts.next()), (Some(m), Some(v), None) if m.contains('/') && semver(v));
                    if !ok {
                        report(
                            format!("{at}.collector.{class}"),
                            format!(
                                "{line:?} must read `module/path vX.Y.Z`, e.g. \"go.opentelemetry.io/collector/receiver/otlpreceiver v0.165.0\""
                            ),
                        );
                    }
                }
            }
            if c.receivers.is_empty() || c.exporters.is_empty() {
                report(format!("{at}.collector"), "a collector needs at least one receiver and one exporter".into());
            }
        }
        if p.differs.as_deref().is_some_and(|d| d.trim().is_empty()) {
            report(
                format!("{at}.differs"),
                "say why this release differs from the upstream profile's, or remove the field".into(),
            );
        }
    }
    let upstream_tag = |image: &str| {
        stack
            .profiles
            .iter()
            .filter(|(n, _)| n.as_str() != "local")
            .flat_map(|(_, p)| p.enabled())
            .flat_map(|c| &c.images)
            .find(|i| i.name.as_str() == image)
            .map(|i| i.reference.tag.clone())
    };
    for (pname, profile) in &stack.profiles {
        for (i, c) in profile.components.iter().enumerate() {
            for (j, img) in c.images.iter().enumerate() {
                for (k, prog) in img.programs.iter().enumerate() {
                    let field = format!("profiles.{pname}.components[{i}].images[{j}].programs[{k}]");
                    let Some(p) = stack.programs.get(prog) else {
                        report(field, format!("no [programs.{prog}] in the stack: define it, or remove the name"));
                        continue;
                    };
                    let Some(tag) = upstream_tag(img.name.as_str()) else { continue };
                    let same = tag.trim_start_matches('v') == p.release.trim_start_matches('v');
                    let at = format!("programs.{prog}");
                    match (same, &p.differs) {
                        (false, None) => report(
                            format!("{at}.release"),
                            format!(
                                "{} is not the upstream profile's {} ({tag}): build {tag}, or say why in `differs`",
                                p.release, img.name
                            ),
                        ),
                        (true, Some(_)) => report(
                            format!("{at}.differs"),
                            format!("{} is the upstream profile's release: remove `differs`", p.release),
                        ),
                        _ => {}
                    }
                }
            }
        }
    }
}

/// The node image: programs the stack defines, a Debian suite and packages named as apt names them.
fn check_node(stack: &Stack, report: &mut dyn FnMut(String, String)) {
    let Some(node) = &stack.node else { return };
    if node.programs.is_empty() {
        report("node.programs".into(), "list the [programs] the node image carries, e.g. [\"kubernetes\"]".into());
    }
    for (i, name) in node.programs.iter().enumerate() {
        if !stack.programs.contains_key(name) {
            report(
                format!("node.programs[{i}]"),
                format!("no [programs.{name}] in the stack: define it, or remove the name"),
            );
        }
    }
    for (name, dir) in &node.install {
        if !node.programs.contains(name) {
            report(
                format!("node.install.{name}"),
                "names no program of node.programs: add it there, or remove this".into(),
            );
        }
        if !dir.starts_with('/') || dir.split('/').any(|p| p == "..") {
            report(
                format!("node.install.{name}"),
                format!("{dir:?} must be an absolute folder, e.g. \"/opt/cni/bin\""),
            );
        }
    }
    let apt_name = |n: &str| {
        !n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
    };
    if !apt_name(&node.suite) {
        report("node.suite".into(), format!("{:?} is not a Debian suite, e.g. \"bookworm\"", node.suite));
    }
    for (i, p) in node.debian.iter().enumerate() {
        if !apt_name(p) {
            report(format!("node.debian[{i}]"), format!("{p:?} is not a Debian package name, e.g. \"iptables\""));
        }
    }
}

/// The matrix: axes name what exists, and every pattern selects some cell.
fn check_matrix(stack: &Stack, report: &mut dyn FnMut(String, String)) {
    let m = &stack.matrix;
    if m.backend.is_empty() {
        report("matrix.backend".into(), "the matrix axis is empty: list at least one of \"compose\", \"k3s\"".into());
    }
    for (i, p) in m.profile.iter().enumerate() {
        if !stack.profiles.contains_key(p) {
            let known: Vec<&str> = stack.profiles.keys().map(|k| k.as_str()).collect();
            report(
                format!("matrix.profile[{i}]"),
                format!("no profile {:?}; the stack has {}", p.as_str(), known.join(", ")),
            );
        }
    }
    for (i, c) in m.include.iter().enumerate() {
        let at = format!("matrix.include[{i}]");
        if !stack.profiles.keys().any(|p| p.as_str() == c.profile) {
            report(format!("{at}.profile"), format!("no profile {:?}", c.profile));
        }
        if !m.arch.contains(&c.arch) {
            report(
                format!("{at}.arch"),
                format!("{} is not on matrix.arch (bundles are built for those arches only)", c.arch),
            );
        }
        match (c.backend.has_versions(), c.k3s.is_some(), c.kubeedge.is_some()) {
            (true, true, true) | (false, false, false) => {}
            (true, _, _) => report(at, "a k3s cell names both its k3s and its kubeedge version".into()),
            (false, _, _) => report(
                at,
                format!(
                    "{} cells have no k3s or KubeEdge version: drop k3s/kubeedge, or use backend = \"k3s\"",
                    c.backend
                ),
            ),
        }
    }
    // Patterns are checked against the product before `exclude` (for `exclude`) or after it.
    let product = stack.product();
    let cells = stack.cells();
    for (list, patterns, against) in
        [("exclude", &m.exclude, &product), ("experimental", &m.experimental, &cells), ("pr", &m.pr, &cells)]
    {
        for (i, p) in patterns.iter().enumerate() {
            let at = format!("matrix.{list}[{i}]");
            if *p == CellPattern::default() {
                report(at, "the pattern names no axis and would match every cell; name at least one (backend, profile, arch, k3s, kubeedge)".into());
                continue;
            }
            let mut wrong = Vec::new();
            if let Some(v) = p.profile.as_ref().filter(|v| !stack.profiles.contains_key(*v)) {
                wrong.push(("profile", format!("no profile {:?}", v.as_str())));
            }
            if let Some(v) = p.arch.filter(|v| !m.arch.contains(v)) {
                wrong.push(("arch", format!("{v} is not on matrix.arch")));
            }
            if let Some(v) = p.backend.filter(|v| !m.backend.contains(v)) {
                wrong.push(("backend", format!("{v} is not on matrix.backend")));
            }
            if let Some(v) = p.k3s.as_ref().filter(|v| !m.k3s.contains(v)) {
                wrong.push(("k3s", format!("{v} is not on matrix.k3s")));
            }
            if let Some(v) = p.kubeedge.as_ref().filter(|v| !m.kubeedge.contains(v)) {
                wrong.push(("kubeedge", format!("{v} is not on matrix.kubeedge")));
            }
            if !wrong.is_empty() {
                for (field, message) in wrong {
                    report(format!("{at}.{field}"), message);
                }
                continue;
            }
            if let Some(b) = p.backend.filter(|b| !b.has_versions() && (p.k3s.is_some() || p.kubeedge.is_some())) {
                report(
                    at,
                    format!("{b} cells have no k3s or KubeEdge version: drop k3s/kubeedge, or use backend = \"k3s\""),
                );
            } else if !against.iter().any(|c| p.matches(c)) {
                report(
                    at,
                    format!(
                        "{p} selects no cell of the matrix{}; remove it or fix its values",
                        if list == "exclude" { "" } else { " (after exclude)" }
                    ),
                );
            }
        }
    }
}

/// The compose tier's timing: what Prometheus and Alertmanager accept, and what makes an alert meaningful.
fn check_e2e(e: &super::E2e, report: &mut dyn FnMut(String, String)) {
    for (field, d, tool) in [
        ("e2e.scrape_interval", e.scrape_interval, "Prometheus would fall back to its 1m default"),
        ("e2e.evaluation_interval", e.evaluation_interval, "Prometheus would fall back to its 1m default"),
        ("e2e.group_interval", e.group_interval, "Alertmanager refuses a zero group_interval"),
        ("e2e.repeat_interval", e.repeat_interval, "Alertmanager refuses a zero repeat_interval"),
        ("e2e.watchdog_repeat_interval", e.watchdog_repeat_interval, "Alertmanager refuses a zero repeat_interval"),
    ] {
        if d.as_millis() == 0 {
            report(field.into(), format!("must be greater than zero: {tool}"));
        }
    }
    if e.evaluation_interval < e.scrape_interval {
        report(
            "e2e.evaluation_interval".into(),
            format!(
                "evaluation interval {} is shorter than the scrape interval {}: rules would evaluate stale data; make it at least the scrape interval",
                e.evaluation_interval, e.scrape_interval
            ),
        );
    }
    if e.alert_for < e.evaluation_interval {
        report(
            "e2e.alert_for".into(),
            format!(
                "`for` {} is shorter than the evaluation interval {}: a single failed scrape would fire an alert; make it at least the evaluation interval (3 intervals, e.g. \"6s\", ride out one lost scrape)",
                e.alert_for, e.evaluation_interval
            ),
        );
    }
    for (field, repeat) in
        [("e2e.repeat_interval", e.repeat_interval), ("e2e.watchdog_repeat_interval", e.watchdog_repeat_interval)]
    {
        if repeat < e.group_interval {
            report(
                field.into(),
                format!(
                    "repeat interval {repeat} is shorter than the group interval {}: Alertmanager repeats only at group intervals; make it at least the group interval",
                    e.group_interval
                ),
            );
        }
    }
}

/// Make serde's terse messages say what to do.
fn explain(message: &str) -> String {
    let m = message.trim();
    if m.starts_with("unknown field") {
        format!("{m}; remove it or fix its spelling")
    } else if m.starts_with("missing field") {
        format!("{m}; add it (see stack.toml at the project root for an example)")
    } else if m.starts_with("unknown variant") {
        format!("{m}; use one of the listed values")
    } else {
        m.to_string()
    }
}

fn path_string(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

#[derive(Debug, PartialEq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn path_segments(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let (key, rest) = part.split_once('[').map(|(k, r)| (k, Some(r))).unwrap_or((part, None));
        if !key.is_empty() {
            out.push(Seg::Key(key.to_string()));
        }
        if let Some(rest) = rest {
            for idx in rest.split('[') {
                if let Ok(i) = idx.trim_end_matches(']').parse() {
                    out.push(Seg::Index(i));
                }
            }
        }
    }
    out
}

/// The span of the deepest existing node on `path` (a missing field points at its table).
fn span_of(root: &DeTable<'_>, path: &[Seg]) -> Option<Range<usize>> {
    let mut best: Option<Range<usize>> = None;
    let mut table = Some(root);
    let mut array: Option<&[toml::Spanned<DeValue<'_>>]> = None;
    for seg in path {
        let value = match (seg, table, array) {
            (Seg::Key(k), Some(t), _) => {
                let Some((key, value)) = t.iter().find(|(key, _)| key.get_ref().as_ref() == k) else {
                    return best;
                };
                // Prefer the key's line for a scalar, the value's for a table.
                best = Some(key.span());
                value
            }
            (Seg::Index(i), _, Some(a)) => match a.get(*i) {
                Some(v) => v,
                None => return best,
            },
            _ => return best,
        };
        if matches!(seg, Seg::Index(_)) && !value.span().is_empty() {
            best = Some(value.span());
        }
        table = None;
        array = None;
        match value.get_ref() {
            DeValue::Table(t) => table = Some(t),
            DeValue::Array(a) => array = Some(&a[..]),
            _ => {}
        }
    }
    best
}

fn line_of(src: &str, offset: usize) -> usize {
    src.as_bytes()[..offset.min(src.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_segments_parse() {
        assert_eq!(
            path_segments("profiles.upstream.components[2].images[0].ref"),
            vec![
                Seg::Key("profiles".into()),
                Seg::Key("upstream".into()),
                Seg::Key("components".into()),
                Seg::Index(2),
                Seg::Key("images".into()),
                Seg::Index(0),
                Seg::Key("ref".into()),
            ]
        );
    }

    #[test]
    fn lines_are_one_based() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
    }
}
#[cfg(test)]
mod span_tests {
    use super::*;
    #[test]
    fn spans_of_nested_array_tables() {
        let src = "a = 1\n[[p.c]]\nname = \"x\"\n[[p.c]]\nname = \"y\"\nrole = \"z\"\n";
        let doc = DeTable::parse(src).unwrap();
        let span = span_of(doc.get_ref(), &path_segments("p.c[1].role")).unwrap();
        assert_eq!(line_of(src, span.start), 6);
        let span = span_of(doc.get_ref(), &path_segments("p.c[1].budget")).unwrap();
        assert!(line_of(src, span.start) >= 4, "{}", line_of(src, span.start));
    }
}
