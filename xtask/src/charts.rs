//! `cargo xtask charts`: the real charts as the cluster receives them. Each pinned chart of a
//! bundle is linted (`helm lint --strict`) and rendered (`helm template`, with the values its
//! HelmChart passes, which its `values/` file must equal) and the rendered objects are checked
//! against the stack:
//! - every image a pod (or an operator's Prometheus or Alertmanager) runs is one the bundle carries;
//! - a cloud chart's pods never tolerate the edge taint (edges are tainted, so they stay off them)
//!   and an edge chart's pods select edge nodes and tolerate it;
//! - every container, init container and operator-managed sidecar has a CPU and a memory limit;
//! - every Service our configs dial (`<name>.<namespace>.svc`) and every NodePort the edges push to
//!   exists among the rendered objects.
//!
//! No chart can be fetched on our machines: the generated workflow's bundle job (it has internet)
//! runs `charts check --bundle`, and the tests here run the same checks on crafted `helm template`
//! output (`--rendered`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use serde::Deserialize;
use serde_json::Value;

use crate::bundle::verify::carries;
use crate::render::kubeedge::EDGE_TAINT;
use crate::render::manifests::release_name;
use crate::render::names::EDGE_NODE_LABEL;
use crate::render::{Ctx, Files};
use crate::stack::{Arch, Role};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Check the charts' rendered objects against the stack (images, placement, limits, Services).
    Check(CheckArgs),
}

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    #[arg(long, default_value = "upstream")]
    pub profile: String,
    #[arg(long)]
    pub arch: Arch,
    /// A bundle folder: each chart in its charts/ is linted and rendered by `helm` (on PATH) with
    /// the values its HelmChart passes (equal to values/, or refused), and the output is kept in --out.
    #[arg(long, value_name = "DIR", conflicts_with = "rendered", required_unless_present = "rendered")]
    pub bundle: Option<Utf8PathBuf>,
    /// A folder of `helm template` output already made: `<release>.yaml` for each chart.
    #[arg(long, value_name = "DIR")]
    pub rendered: Option<Utf8PathBuf>,
    /// Where `--bundle` keeps each chart's `helm template` output (default: target/charts).
    #[arg(long, value_name = "DIR")]
    pub out: Option<Utf8PathBuf>,
}

/// Services our configs dial that no chart of ours creates: the platform makes them.
const PLATFORM_SERVICES: &[(&str, &str, &str)] =
    &[("kubeedge", "cloudcore", "created by `keadm init` (kubeprepare's cloud install)")];

/// What the stack expects of the rendered charts: each chart's role, the bundle's images, the
/// Services our configs dial and the NodePorts the edges push to.
#[derive(Debug, Clone)]
pub struct Expect {
    pub namespace: String,
    /// Release name → the role of its component.
    pub releases: BTreeMap<String, Role>,
    /// The bundle's images: `registry/repository:tag` and its digest, when locked.
    pub images: BTreeMap<String, BTreeSet<String>>,
    /// (namespace, name) → the rendered file that dials it.
    pub dialled: BTreeMap<(String, String), String>,
    /// (NodePort, what pushes to it).
    pub node_ports: Vec<(u16, &'static str)>,
    /// Services our own manifests create, (namespace, name), and the NodePorts they expose.
    pub our_services: BTreeSet<(String, String)>,
    pub our_node_ports: BTreeSet<u16>,
}

impl Expect {
    /// Whether a reference a pod runs is one of the bundle's images ([`carries`]).
    fn bundles(&self, image: &str) -> bool {
        carries(&self.images, image)
    }

    pub fn new(ctx: &Ctx<'_>, files: &Files) -> Result<Expect> {
        let namespace = ctx.namespace().to_string();
        let releases = ctx
            .profile
            .enabled()
            .filter(|c| c.chart.is_some())
            .map(|c| (release_name(c).to_string(), c.role))
            .collect();
        let mut images: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for i in ctx.profile.enabled().flat_map(|c| &c.images) {
            images.entry(i.reference.to_string()).or_default().extend(i.digest.iter().map(|d| d.as_str().to_string()));
        }
        let mut dialled = BTreeMap::new();
        let mut our_services = BTreeSet::new();
        let mut our_node_ports = BTreeSet::new();
        for (path, text) in files.iter() {
            for svc in dialled_services(text) {
                dialled.entry(svc).or_insert_with(|| path.to_string());
            }
            if path.as_str().starts_with("manifests/") {
                for doc in documents(path.as_str(), text)? {
                    if let Some((ns, name, ports)) = service(&doc, &namespace) {
                        our_services.insert((ns, name));
                        our_node_ports.extend(ports);
                    }
                }
            }
        }
        let p = &ctx.settings().node_ports;
        let mut node_ports =
            vec![(p.otlp_grpc, "edge workloads' OTLP/gRPC"), (p.otlp_http, "edge workloads' OTLP/HTTP")];
        if ctx.profile.edges_push() {
            node_ports.push((p.prometheus, "the edge metrics agents' remote write"));
        }
        if ctx.profile.log_agent().is_some() {
            node_ports.push((p.loki, "the edge log agents' push"));
        }
        Ok(Expect { namespace, releases, images, dialled, node_ports, our_services, our_node_ports })
    }
}

/// Every `<name>.<namespace>.svc` in a text.
fn dialled_services(text: &str) -> Vec<(String, String)> {
    let label = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-';
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    for (at, _) in text.match_indices(".svc") {
        // `.svc` ends the name (`.svc:`, `.svc/`, `.svc.cluster.local`, end of a word).
        if bytes.get(at + 4).is_some_and(|&b| label(b)) {
            continue;
        }
        // Back to the first byte that is not in a host name (host names are ASCII).
        let start = bytes[..at].iter().rposition(|&b| !(label(b) || b == b'.')).map_or(0, |i| i + 1);
        let host = &text[start..at];
        let parts: Vec<&str> = host.split('.').collect();
        if let [.., name, ns] = parts[..]
            && !name.is_empty()
            && !ns.is_empty()
        {
            found.push((ns.to_string(), name.to_string()));
        }
    }
    found
}

/// The YAML documents of a multi-document text (empty documents left out), named by file and index.
fn documents(file: &str, text: &str) -> Result<Vec<Value>> {
    let mut docs = Vec::new();
    for (i, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let v = Value::deserialize(de).with_context(|| format!("{file}: document {} is not valid YAML", i + 1))?;
        if !v.is_null() {
            docs.push(v);
        }
    }
    Ok(docs)
}

/// A Service's namespace, name and NodePorts.
fn service(doc: &Value, namespace: &str) -> Option<(String, String, Vec<u16>)> {
    if doc["kind"] != "Service" {
        return None;
    }
    let name = doc["metadata"]["name"].as_str()?.to_string();
    let ns = doc["metadata"]["namespace"].as_str().unwrap_or(namespace).to_string();
    let ports = doc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["nodePort"].as_u64().and_then(|n| u16::try_from(n).ok()))
        .collect();
    Some((ns, name, ports))
}

/// One thing wrong with a chart's rendered objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The release (`<release>.yaml`) or `-` for what spans the whole render.
    pub release: String,
    /// `Kind/name`, with the container when it is one container's fault.
    pub object: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.release, self.object, self.message)
    }
}

/// A pod template (or an operator's pod-making resource) found in a rendered object.
struct Pod<'a> {
    object: String,
    spec: &'a Value,
    /// Prometheus and Alertmanager: the operator builds the pod from `spec`.
    operator_made: bool,
}

fn pods(doc: &Value) -> Option<Pod<'_>> {
    let kind = doc["kind"].as_str()?;
    let object = format!("{kind}/{}", doc["metadata"]["name"].as_str().unwrap_or("?"));
    let spec = match kind {
        "Pod" => &doc["spec"],
        "Deployment" | "DaemonSet" | "StatefulSet" | "ReplicaSet" | "Job" => &doc["spec"]["template"]["spec"],
        "CronJob" => &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        "Prometheus" | "Alertmanager"
            if doc["apiVersion"].as_str().is_some_and(|a| a.starts_with("monitoring.coreos.com/")) =>
        {
            return Some(Pod { object, spec: &doc["spec"], operator_made: true });
        }
        _ => return None,
    };
    Some(Pod { object, spec, operator_made: false })
}

/// `helm test` hooks are never run by k3s' helm controller.
fn is_test_hook(doc: &Value) -> bool {
    doc["metadata"]["annotations"]["helm.sh/hook"]
        .as_str()
        .is_some_and(|h| h.split(',').any(|h| h.trim().starts_with("test")))
}

/// Whether a pod's tolerations let it onto a node tainted with the edge taint.
fn tolerates_edge(spec: &Value) -> bool {
    spec["tolerations"].as_array().into_iter().flatten().any(|t| {
        let effect_ok = t["effect"].as_str().is_none_or(|e| e.is_empty() || e == EDGE_TAINT.effect);
        let op = t["operator"].as_str().unwrap_or("Equal");
        match t["key"].as_str().filter(|k| !k.is_empty()) {
            None => op == "Exists" && effect_ok,
            Some(k) => {
                k == EDGE_NODE_LABEL && effect_ok && (op == "Exists" || t["value"].as_str().unwrap_or("").is_empty())
            }
        }
    })
}

/// Whether a pod may only be scheduled on edge nodes: a nodeSelector on the edge label, or a
/// required node affinity each of whose terms asks for it.
fn requires_edge(spec: &Value) -> bool {
    // KubeEdge labels edges with the value "": a selector on another value matches no node.
    if spec["nodeSelector"][EDGE_NODE_LABEL] == "" {
        return true;
    }
    let terms =
        &spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
    terms.as_array().is_some_and(|terms| {
        !terms.is_empty()
            && terms.iter().all(|term| {
                term["matchExpressions"].as_array().into_iter().flatten().any(|e| {
                    e["key"] == EDGE_NODE_LABEL
                        && (e["operator"] == "Exists"
                            || (e["operator"] == "In"
                                && e["values"].as_array().is_some_and(|v| v.iter().any(|v| v == ""))))
                })
            })
    })
}

fn has_limits(resources: &Value) -> Vec<&'static str> {
    ["cpu", "memory"].into_iter().filter(|r| resources["limits"][*r].is_null()).collect()
}

/// Check every release's rendered objects. `rendered` is (release, its `helm template` text).
pub fn check(expect: &Expect, rendered: &[(String, String)]) -> Result<Vec<Problem>> {
    let mut problems = Vec::new();
    let mut services: BTreeSet<(String, String)> = expect.our_services.clone();
    let mut node_ports: BTreeSet<u16> = expect.our_node_ports.clone();
    let got: BTreeSet<&str> = rendered.iter().map(|(r, _)| r.as_str()).collect();
    for release in expect.releases.keys() {
        if !got.contains(release.as_str()) {
            problems.push(Problem {
                release: release.clone(),
                object: "-".into(),
                message: format!("no rendered output ({release}.yaml): every chart of the profile is checked"),
            });
        }
    }
    for (release, text) in rendered {
        let Some(&role) = expect.releases.get(release) else {
            bail!(
                "{release}.yaml: no chart of the profile has the release {release:?} (releases: {})",
                expect.releases.keys().cloned().collect::<Vec<_>>().join(", ")
            );
        };
        let mut p = |object: &str, message: String| {
            problems.push(Problem { release: release.clone(), object: object.to_string(), message })
        };
        for doc in documents(&format!("{release}.yaml"), text)? {
            if let Some((ns, name, ports)) = service(&doc, &expect.namespace) {
                services.insert((ns, name));
                node_ports.extend(ports);
            }
            if is_test_hook(&doc) {
                continue;
            }
            // The operator adds a config-reloader to every Prometheus and Alertmanager it runs,
            // with the image and limits its own arguments give.
            let mut operator_images = Vec::new();
            if doc["kind"] == "Deployment" {
                let object = format!("Deployment/{}", doc["metadata"]["name"].as_str().unwrap_or("?"));
                for arg in containers(&doc["spec"]["template"]["spec"])
                    .flat_map(|(_, c)| c["args"].as_array().into_iter().flatten())
                    .filter_map(Value::as_str)
                {
                    if arg.starts_with("--config-reloader-") && arg.contains("-limit=") && arg.ends_with("=0") {
                        p(
                            &object,
                            format!(
                                "`{arg}`: the config-reloader sidecar the operator adds to every Prometheus and Alertmanager runs without that limit; set prometheusOperator.prometheusConfigReloader.resources.limits"
                            ),
                        );
                    }
                    if let Some(image) = arg.strip_prefix("--prometheus-config-reloader=") {
                        operator_images.push((format!("{object} --prometheus-config-reloader"), image.to_string()));
                    }
                }
            }
            for (at, image) in operator_images {
                if !expect.bundles(&image) {
                    p(
                        &at,
                        format!("image {image} is not in the bundle: add it to the component's images in stack.toml"),
                    );
                }
            }
            let Some(pod) = pods(&doc) else { continue };
            match (role, tolerates_edge(pod.spec), requires_edge(pod.spec)) {
                (Role::Cloud, true, _) => p(
                    &pod.object,
                    format!(
                        "a cloud pod tolerates the edge taint {EDGE_NODE_LABEL}:NoSchedule, so it can land on an edge node: drop the toleration (or narrow `operator: Exists` to a key)"
                    ),
                ),
                (Role::Cloud, _, true) => p(&pod.object, "a cloud pod selects edge nodes".into()),
                (Role::Edge, false, _) => p(
                    &pod.object,
                    format!(
                        "an edge pod does not tolerate the edge taint {EDGE_NODE_LABEL}:NoSchedule: it never starts on an edge"
                    ),
                ),
                (Role::Edge, _, false) => p(
                    &pod.object,
                    format!(
                        "an edge pod may run on cloud nodes: select {EDGE_NODE_LABEL} (nodeSelector, or a required node affinity `Exists`)"
                    ),
                ),
                _ => {}
            }
            let mut images = Vec::new();
            if pod.operator_made {
                match pod.spec["image"].as_str() {
                    Some(i) => images.push((pod.object.clone(), i.to_string())),
                    None => p(
                        &pod.object,
                        "no spec.image: the operator would run its built-in default, which no bundle pins".into(),
                    ),
                }
                let missing = has_limits(&pod.spec["resources"]);
                if !missing.is_empty() {
                    p(&pod.object, format!("spec.resources.limits has no {}", missing.join(" or ")));
                }
            }
            for (what, c) in containers(pod.spec) {
                let name = c["name"].as_str().unwrap_or("?");
                let at = format!("{} {what} {name}", pod.object);
                match c["image"].as_str() {
                    Some(i) => images.push((at.clone(), i.to_string())),
                    None if !pod.operator_made => p(&at, "no image".into()),
                    None => {} // a patch of a container the operator makes
                }
                let missing = has_limits(&c["resources"]);
                // The operator fills its own containers' resources from spec.resources.
                let operator_own = pod.operator_made
                    && matches!(name, "prometheus" | "alertmanager" | "config-reloader" | "init-config-reloader");
                if !missing.is_empty() && !operator_own {
                    p(&at, format!("resources.limits has no {}", missing.join(" or ")));
                }
            }
            for (at, image) in images {
                if !expect.bundles(&image) {
                    p(
                        &at,
                        format!(
                            "image {image} is not in the bundle: add it to the component's images in stack.toml, or change the values so the chart does not run it"
                        ),
                    );
                }
            }
        }
    }
    for ((ns, name), file) in &expect.dialled {
        let platform = PLATFORM_SERVICES.iter().any(|(n, s, _)| n == ns && s == name);
        if !platform && !services.contains(&(ns.clone(), name.clone())) {
            problems.push(Problem {
                release: "-".into(),
                object: format!("Service/{name}"),
                message: format!("{file} dials {name}.{ns}.svc, which no rendered chart or manifest creates"),
            });
        }
    }
    for (port, who) in &expect.node_ports {
        if !node_ports.contains(port) {
            problems.push(Problem {
                release: "-".into(),
                object: format!("NodePort {port}"),
                message: format!("{who} goes to NodePort {port} (stack.toml [settings.node_ports]), which no rendered Service exposes"),
            });
        }
    }
    Ok(problems)
}

/// A pod spec's containers and init containers, each with what it is.
fn containers(spec: &Value) -> impl Iterator<Item = (&'static str, &Value)> {
    let of = |key: &'static str, what: &'static str| spec[key].as_array().into_iter().flatten().map(move |c| (what, c));
    of("initContainers", "init container").chain(of("containers", "container"))
}

/// The rendered outputs of a folder: every `<release>.yaml` in it.
pub fn read_rendered(dir: &Utf8Path) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let entries =
        dir.read_dir_utf8().with_context(|| format!("reading {dir}: expected one `<release>.yaml` per chart"))?;
    for e in entries {
        let e = e.with_context(|| format!("reading {dir}"))?;
        let Some(release) = e.file_name().strip_suffix(".yaml") else { continue };
        let text = std::fs::read_to_string(e.path()).with_context(|| format!("reading {}", e.path()))?;
        out.push((release.to_string(), text));
    }
    out.sort();
    Ok(out)
}

/// Run helm; its standard output, or an error with all it printed.
fn helm(sh: &xshell::Shell, helm: &Utf8Path, args: &[&str]) -> Result<String> {
    let out = xshell::cmd!(sh, "{helm} {args...}")
        .quiet()
        .ignore_status()
        .output()
        .with_context(|| format!("running {helm}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!("helm {} exited with {}\n{stdout}{}", args.join(" "), out.status, String::from_utf8_lossy(&out.stderr));
    }
    Ok(stdout)
}

/// `helm lint --strict` and `helm template` of each chart of the bundle with its HelmChart's values,
/// for the Kubernetes version of the pinned k3s; the outputs are written to `out` (one
/// `<release>.yaml` each). helm's warnings (stderr) stay out of the rendered objects.
fn helm_render(ctx: &Ctx<'_>, bundle: &Utf8Path, out: &Utf8Path) -> Result<Vec<(String, String)>> {
    let bin = crate::tools::find_on_path("helm").context(
        "helm is not on PATH: install Helm 3 (https://helm.sh/docs/intro/install/); the generated workflow's bundle job does",
    )?;
    let sh = xshell::Shell::new()?;
    let kube_version = format!("v{}", ctx.stack.kubeprepare.k3s.as_str().trim_start_matches('v'));
    let ns = ctx.namespace();
    let mut rendered = Vec::new();
    for c in ctx.profile.enabled() {
        let Some(chart) = &c.chart else { continue };
        let archive = bundle.join("charts").join(chart.archive_name());
        if !archive.is_file() {
            bail!("{archive} is missing: is {bundle} a bundle of the {} profile for {}?", ctx.profile_name, ctx.arch);
        }
        let release = release_name(c);
        // What helm-controller passes: the HelmChart's valuesContent, written out for helm.
        let values_text = helm_chart_values(bundle, c)?;
        // Beside the output, not among it (`--rendered` reads every `<release>.yaml` of `out`).
        let values = out.join("values").join(format!("{release}.yaml"));
        crate::atomic::write(&values, values_text.as_bytes(), false)?;
        let (archive, values) = (archive.as_str(), values.as_str());
        crate::note!("charts: helm lint --strict and helm template {release} {}", chart.archive_name());
        helm(
            &sh,
            &bin,
            &["lint", "--strict", archive, "--namespace", ns, "--values", values, "--kube-version", &kube_version],
        )?;
        let text = helm(
            &sh,
            &bin,
            &["template", release, archive, "--namespace", ns, "--values", values, "--kube-version", &kube_version],
        )?;
        crate::atomic::write(&out.join(format!("{release}.yaml")), text.as_bytes(), false)?;
        rendered.push((release.to_string(), text));
    }
    Ok(rendered)
}

/// The values a charted component is installed with, as k3s's helm-controller passes them: its
/// HelmChart's `spec.valuesContent` in the bundle. The bundle's `values/<component>.yaml` (what
/// an operator reads and edits before a manual `helm install`) must say the same, or the error
/// names both files.
pub fn helm_chart_values(bundle: &Utf8Path, c: &crate::stack::Component) -> Result<String> {
    let read = |rel: &str| -> Result<String> {
        let path = bundle.join(rel);
        std::fs::read_to_string(&path).with_context(|| format!("reading {path}: is {bundle} a bundle with charts?"))
    };
    let hc_file = crate::render::manifests::helm_chart_file(c);
    let hc: Value = serde_yaml_ng::from_str(&read(&hc_file)?).with_context(|| format!("{bundle}/{hc_file}"))?;
    let content = hc["spec"]["valuesContent"]
        .as_str()
        .with_context(|| format!("{bundle}/{hc_file}: spec.valuesContent is missing"))?
        .to_string();
    let values_file = crate::render::manifests::values_file(c);
    let parse = |file: &str, text: &str| -> Result<Value> {
        serde_yaml_ng::from_str(text).with_context(|| format!("{bundle}/{file}: not YAML"))
    };
    if parse(&hc_file, &content)? != parse(&values_file, &read(&values_file)?)? {
        bail!(
            "{bundle}/{values_file} and the valuesContent of {bundle}/{hc_file} differ: the cluster would install \
             other values than the file says; rebuild the bundle (`cargo xtask bundle`) rather than editing one of them"
        );
    }
    Ok(content)
}

pub fn run(args: Args) -> Result<()> {
    let Command::Check(a) = args.command;
    let stack = crate::stack::load(&crate::paths::stack_file())?;
    let ctx = Ctx::new(&stack, &a.profile, a.arch)?;
    let files = crate::render::render(&ctx)?;
    let expect = Expect::new(&ctx, &files)?;
    if expect.releases.is_empty() {
        bail!("profile {} deploys no chart: nothing to check (the upstream profile has the charts)", a.profile);
    }
    let (rendered, from) = match (&a.bundle, &a.rendered) {
        (Some(bundle), _) => {
            let out =
                a.out.clone().unwrap_or_else(crate::paths::charts_out_dir).join(format!("{}-{}", a.profile, a.arch));
            (helm_render(&ctx, bundle, &out)?, out)
        }
        (None, Some(dir)) => (read_rendered(dir)?, dir.clone()),
        (None, None) => bail!("name --bundle DIR (helm renders its charts) or --rendered DIR (helm template output)"),
    };
    let problems = check(&expect, &rendered)?;
    for p in &problems {
        crate::outln!("FAILED {p}")?;
    }
    let objects = rendered.len();
    if !problems.is_empty() {
        bail!("{} problem(s) in the rendered charts of {objects} release(s) in {from}", problems.len());
    }
    crate::outln!(
        "charts: {objects} release(s) in {from}: images in the bundle, cloud pods off edges and edge pods on them, a limit on every container, {} dialled Service(s) and {} NodePort(s) present",
        expect.dialled.len(),
        expect.node_ports.len()
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dialled_services_are_read_from_any_text() {
        let text = "url: http://loki.observability.svc:3100/x\n→jaeger.observability.svc.cluster.local\n\
                    targets: [\"cloudcore.kubeedge.svc:10004\"] not.a.svcname x.svc";
        assert_eq!(
            dialled_services(text),
            [("observability", "loki"), ("observability", "jaeger"), ("kubeedge", "cloudcore")]
                .map(|(ns, n)| (ns.to_string(), n.to_string()))
        );
    }

    /// helm renders what helm-controller would install, the HelmChart's valuesContent, and a
    /// values file that says otherwise is refused, naming both.
    #[test]
    fn the_helmchart_values_are_rendered_and_the_values_file_must_agree() {
        let stack = crate::stack::load(&crate::paths::stack_file()).unwrap();
        let ctx = Ctx::new(&stack, "upstream", crate::stack::Arch::Amd64).unwrap();
        let files = crate::render::render(&ctx).unwrap();
        let c = ctx.profile.enabled().find(|c| c.chart.is_some()).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let bundle = Utf8Path::from_path(dir.path()).unwrap();
        let hc_file = crate::render::manifests::helm_chart_file(c);
        let values_file = crate::render::manifests::values_file(c);
        for f in [&hc_file, &values_file] {
            std::fs::create_dir_all(bundle.join(f).parent().unwrap()).unwrap();
            std::fs::write(bundle.join(f), files.get(f).unwrap()).unwrap();
        }
        let got: Value = serde_yaml_ng::from_str(&helm_chart_values(bundle, c).unwrap()).unwrap();
        let want: Value = serde_yaml_ng::from_str(files.get(&values_file).unwrap()).unwrap();
        assert_eq!(got, want);

        std::fs::write(bundle.join(&values_file), "edited: true\n").unwrap();
        let e = format!("{:#}", helm_chart_values(bundle, c).unwrap_err());
        assert!(e.contains(&values_file) && e.contains(&hc_file) && e.contains("differ"), "{e}");
        std::fs::remove_file(bundle.join(&hc_file)).unwrap();
        let e = format!("{:#}", helm_chart_values(bundle, c).unwrap_err());
        assert!(e.contains(&hc_file), "{e}");
    }
}
