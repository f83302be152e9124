//! Validate rendered files with the real tools that will read them
//! (promtool, amtool, blackbox_exporter, jaeger, shellcheck) and Kubernetes manifests
//! against their typed k8s-openapi objects. What cannot be checked here (Alloy and Loki are AGPL
//! and never built here; no upstream chart can be fetched) is reported as "not run: <reason>",
//! never as passed.

use std::fmt;

use anyhow::{Context, Result, bail};
use camino::{Utf8Path, Utf8PathBuf};
use serde::Deserialize;
use serde_json::Value;
use xshell::{Shell, cmd};

use crate::render::{Ctx, Files};
use crate::tools::{self, Tool};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Passed,
    Failed(String),
    NotRun(String),
}

#[derive(Debug, Clone)]
pub struct Check {
    pub file: Utf8PathBuf,
    /// What checked it, e.g. `promtool check rules`.
    pub by: String,
    pub outcome: Outcome,
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.outcome {
            Outcome::Passed => write!(f, "passed   {} ({})", self.file, self.by),
            Outcome::Failed(why) => write!(f, "FAILED   {} ({}):\n{}", self.file, self.by, indent(why)),
            Outcome::NotRun(why) => write!(f, "not run  {} ({}): {why}", self.file, self.by),
        }
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("    {l}\n")).collect()
}

#[derive(Debug, Default)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    pub fn failed(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| matches!(c.outcome, Outcome::Failed(_)))
    }
    pub fn count(&self, f: fn(&Outcome) -> bool) -> usize {
        self.checks.iter().filter(|c| f(&c.outcome)).count()
    }
    fn push(&mut self, file: &Utf8Path, by: impl Into<String>, outcome: Outcome) {
        self.checks.push(Check { file: file.to_path_buf(), by: by.into(), outcome });
    }
    fn push_result(&mut self, file: &Utf8Path, by: impl Into<String>, r: Result<()>) {
        let outcome = match r {
            Ok(()) => Outcome::Passed,
            Err(e) => Outcome::Failed(format!("{e:#}")),
        };
        self.push(file, by, outcome);
    }
}

/// A tool from Debian (on PATH) or built from its Go module.
trait Runnable: Copy {
    fn path(self) -> Result<Utf8PathBuf>;
    fn binary(self) -> &'static str;
}

impl Runnable for Tool {
    fn path(self) -> Result<Utf8PathBuf> {
        self.find()
    }
    fn binary(self) -> &'static str {
        self.binary
    }
}

impl Runnable for tools::Built {
    fn path(self) -> Result<Utf8PathBuf> {
        self.find()
    }
    fn binary(self) -> &'static str {
        self.binary
    }
}

/// Run `tool args...`; Ok if it exits 0, else an error carrying its output.
fn exec(sh: &Shell, tool: impl Runnable, args: &[&str]) -> Result<()> {
    let bin = tool.path()?;
    let out = cmd!(sh, "{bin} {args...}").quiet().ignore_status().output().with_context(|| format!("running {bin}"))?;
    if out.status.success() {
        Ok(())
    } else {
        bail!(
            "{} {} exited with {}\n{}{}",
            tool.binary(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

fn yaml_file(dir: &Utf8Path, rel: &str) -> Result<Value> {
    let text = std::fs::read_to_string(dir.join(rel)).with_context(|| format!("reading {rel}"))?;
    serde_yaml_ng::from_str(&text).with_context(|| format!("{rel} is not valid YAML"))
}

/// Validate every file of a rendered set, written to `dir` first.
pub fn validate(files: &Files, dir: &Utf8Path) -> Result<Report> {
    files.write_to(dir)?;
    let sh = Shell::new()?;
    let scratch = dir.join(".validate");
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {scratch}"))?;
    let mut report = Report::default();
    for (rel, text) in files.iter() {
        let path = dir.join(rel);
        let p = path.as_str();
        let name = rel.as_str();
        if name.starts_with("prometheus/rules/") && name.ends_with(".rules.yml") {
            report.push_result(rel, "promtool check rules", exec(&sh, tools::PROMTOOL, &["check", "rules", p]));
        } else if name.starts_with("prometheus/rules/") && name.ends_with(".test.yml") {
            report.push_result(rel, "promtool test rules", exec(&sh, tools::PROMTOOL, &["test", "rules", p]));
        } else if name == "prometheus/prometheus.yml" {
            let r = yaml_file(dir, name).and_then(|v| check_prometheus_config(&sh, &scratch, "prometheus", v));
            report.push_result(rel, PROMTOOL_CONFIG, r);
        } else if name == crate::render::edgemetrics::CONFIG_FILE {
            let r = edge_metrics_check(&sh, &scratch, text);
            report.push_result(rel, "promtool check config --agent --syntax-only (with a cloud address put in)", r);
        } else if name == "prometheus/additional-scrape-configs.yml" {
            let r = scrape_list(&sh, &scratch, "additional", yaml_file(dir, name));
            report.push_result(rel, PROMTOOL_CONFIG, r);
        } else if name == "alertmanager/alertmanager.yml" {
            report.push_result(rel, "amtool check-config", exec(&sh, tools::AMTOOL, &["check-config", p]));
        } else if name == "blackbox/blackbox.yml" {
            report.push_result(rel, "blackbox_exporter --config.check", blackbox_check(&sh, &path));
        } else if name.ends_with(".sh") {
            report.push_result(
                rel,
                "shellcheck",
                exec(&sh, tools::SHELLCHECK, &["--severity=style", "--shell=bash", p]),
            );
        } else if name.starts_with("manifests/") {
            report.push_result(rel, "typed Kubernetes objects (k8s-openapi v1_34)", check_manifests(text));
            if name.ends_with("prometheusrule.yaml") {
                let r = prometheus_rule_groups(&sh, &scratch, text);
                report.push_result(rel, "promtool check rules (PrometheusRule spec)", r);
            }
            if name == crate::render::edgemetrics::MANIFEST_FILE {
                let r = edge_metrics_manifest(&sh, dir, &scratch, text);
                report.push_result(
                    rel,
                    "the ConfigMap is edge-metrics/prometheus.yml; shellcheck (the init script)",
                    r,
                );
            }
            if name == crate::render::otelagent::MANIFEST_FILE {
                let r = config_map_carries(dir, text, crate::render::otelagent::CONFIG_FILE).map(drop);
                report.push_result(rel, "the ConfigMap is log-agent/agent.yaml", r);
            }
            if name == crate::render::blackbox::EDGE_LINK_PROBE_FILE {
                let r = config_map_carries(dir, text, "blackbox/blackbox.yml").map(drop);
                report.push_result(rel, "the ConfigMap is blackbox/blackbox.yml", r);
            }
            if name == crate::render::blackbox::SECRET_FILE {
                let r = blackbox_secret_config(&sh, dir, &scratch);
                report.push_result(rel, "blackbox_exporter --config.check (stringData), equal to blackbox.yml", r);
            }
        } else if name == "values/kube-prometheus-stack.yaml" {
            let v = yaml_file(dir, name)?;
            let am = scratch.join("kps-alertmanager.yml");
            write(&am, &v["alertmanager"]["config"])?;
            report.push_result(
                rel,
                "amtool check-config (alertmanager.config)",
                exec(&sh, tools::AMTOOL, &["check-config", am.as_str()]),
            );
            let scrape = Ok(v["prometheus"]["prometheusSpec"]["additionalScrapeConfigs"].clone());
            report.push_result(
                rel,
                format!("{PROMTOOL_CONFIG} (additionalScrapeConfigs)"),
                scrape_list(&sh, &scratch, "kps", scrape),
            );
        } else if name == "values/blackbox-exporter.yaml" {
            // The chart reads its whole config from the Secret the values name (never its merged `config`).
            let r = yaml_file(dir, name).and_then(|v| blackbox_values(dir, &v));
            report.push_result(rel, "config from the rendered Secret (configExistingSecretName)", r);
        } else if name == "kubeedge/keadm-join-set.txt" {
            let r = yaml_file(dir, "kubeedge/edgecore-patch.yaml").and_then(|patch| check_join_args(text, &patch));
            report.push_result(rel, "keadm --set syntax, same settings as edgecore-patch.yaml", r);
        } else if name.ends_with(".alloy") {
            report.push(rel, "alloy fmt", Outcome::NotRun("Grafana Alloy is AGPL and is not built here; runs on GitHub Actions (its syntax is checked by unit tests)".into()));
        } else if name.ends_with(".yaml") || name.ends_with(".yml") {
            report.push_result(rel, "YAML parse", yaml_file(dir, name).map(|_| ()));
            if name == crate::render::otelagent::CONFIG_FILE {
                report.push_result(rel, "edge-agent validate", edge_agent_check(&sh, &path));
            }
            if name == "jaeger/config.yaml" {
                report.push_result(rel, "jaeger validate", jaeger_check(&sh, &path));
            }
            if name == "values/jaeger.yaml" {
                let v = yaml_file(dir, name)?;
                let cfg = scratch.join("jaeger-userconfig.yaml");
                write(&cfg, &v["userconfig"])?;
                report.push_result(rel, "jaeger validate (userconfig)", jaeger_check(&sh, &cfg));
            }
            if name == "values/loki.yaml" || name == "values/jaeger.yaml" {
                report.push(
                    rel,
                    "helm template",
                    Outcome::NotRun("the upstream chart cannot be fetched on this machine; the bundle job on GitHub Actions renders it (`cargo xtask charts check --bundle`)".into()),
                );
            }
        } else {
            report.push(rel, "none", Outcome::NotRun("no validator for this file type".into()));
        }
    }
    Ok(report)
}

/// Every `--set` line is `a.b[0].c=value`, and together they are exactly the edgecore patch.
fn check_join_args(text: &str, patch: &Value) -> Result<()> {
    let from_args = crate::render::kubeedge::parse_set_args(text)?;
    // The patch names its config kind (apiVersion, kind); `--set` carries only the settings.
    let mut settings = patch.clone();
    if let Some(obj) = settings.as_object_mut() {
        obj.remove("apiVersion");
        obj.remove("kind");
    }
    if from_args != settings {
        bail!("the --set lines describe {from_args} but edgecore-patch.yaml is {patch}");
    }
    Ok(())
}

fn write(path: &Utf8Path, v: &Value) -> Result<()> {
    std::fs::write(path, serde_yaml_ng::to_string(v)?).with_context(|| format!("writing {path}"))
}

const PROMTOOL_CONFIG: &str = "promtool check config --syntax-only";

/// Check a bare list of scrape configs by wrapping it in a minimal configuration.
fn scrape_list(sh: &Shell, scratch: &Utf8Path, tag: &str, list: Result<Value>) -> Result<()> {
    let list = list?;
    if !list.is_array() {
        bail!("expected a list of scrape configs, found {list}");
    }
    check_prometheus_config(sh, scratch, tag, serde_json::json!({ "scrape_configs": list }))
}

/// `promtool check config --syntax-only` (the in-cluster token file exists only in the pod), by the
/// promtool of the Prometheus the bundle ships: Kubernetes SD and all, unmodified.
fn check_prometheus_config(sh: &Shell, scratch: &Utf8Path, tag: &str, cfg: Value) -> Result<()> {
    let path = scratch.join(format!("{tag}-prometheus.yml"));
    write(&path, &cfg)?;
    exec(sh, tools::PROMTOOL, &["check", "config", "--syntax-only", path.as_str()])
}

/// `jaeger validate`: the configuration read and every component's settings checked, nothing started.
fn jaeger_check(sh: &Shell, cfg: &Utf8Path) -> Result<()> {
    let flag = format!("--config={cfg}");
    exec(sh, tools::JAEGER, &["validate", &flag])
}

/// The OpenTelemetry Collector's own check (`validate`: loads the config, resolves `${env:…}`
/// and validates every component and pipeline, starting nothing), with a node's name set as the
/// compose tier and the downward API set it, and on Kubernetes the cloud's address as the
/// endpoints ConfigMap gives it: IPv4, and IPv6 in brackets.
fn edge_agent_check(sh: &Shell, cfg: &Utf8Path) -> Result<()> {
    let _env = sh.push_env(crate::render::otelagent::NODE_NAME_ENV, "edge-1");
    let flag = format!("--config={cfg}");
    for host in ["192.0.2.10", "[2001:db8::10]"] {
        let _cloud = sh.push_env(crate::render::names::ENV_CLOUD_HOST, host);
        exec(sh, tools::EDGE_AGENT, &["validate", &flag]).with_context(|| format!("with the cloud host {host}"))?;
    }
    Ok(())
}

/// The agent's config as the init container writes it on a node (a template on Kubernetes: the
/// cloud address put in, IPv4 and IPv6), by the promtool of the Prometheus it runs.
fn edge_metrics_check(sh: &Shell, scratch: &Utf8Path, template: &str) -> Result<()> {
    use crate::render::edgemetrics::with_cloud_host;
    for (tag, ip) in [("v4", "192.0.2.10"), ("v6", "2001:db8::10")] {
        let cfg = scratch.join(format!("edge-metrics-{tag}.yml"));
        let text = with_cloud_host(template, ip.parse()?);
        std::fs::write(&cfg, text).with_context(|| format!("writing {cfg}"))?;
        exec(sh, tools::PROMTOOL, &["check", "config", "--agent", "--syntax-only", cfg.as_str()])
            .with_context(|| format!("with the cloud address {ip}"))?;
    }
    Ok(())
}

/// The agent's manifest carries edge-metrics/prometheus.yml unchanged, and its init container's
/// script passes shellcheck as the POSIX sh busybox runs.
fn edge_metrics_manifest(sh: &Shell, dir: &Utf8Path, scratch: &Utf8Path, text: &str) -> Result<()> {
    let list = config_map_carries(dir, text, crate::render::edgemetrics::CONFIG_FILE)?;
    let items = list["items"].as_array().context("not a v1 List")?;
    let daemonset = items.iter().find(|i| i["kind"] == "DaemonSet").context("no DaemonSet")?;
    let init = &daemonset["spec"]["template"]["spec"]["initContainers"][0]["command"];
    let script = init[3].as_str().context("the init container has no `sh -c` script")?;
    let path = scratch.join("edge-metrics-init.sh");
    std::fs::write(&path, script).with_context(|| format!("writing {path}"))?;
    exec(sh, tools::SHELLCHECK, &["--severity=style", "--shell=sh", path.as_str()])
}

/// The manifest (a `v1 List`) has a ConfigMap carrying the rendered `file` unchanged under its
/// file name. Returns the List.
fn config_map_carries(dir: &Utf8Path, manifest: &str, file: &str) -> Result<Value> {
    let list: Value = serde_yaml_ng::from_str(manifest)?;
    let items = list["items"].as_array().context("not a v1 List")?;
    let config_map = items.iter().find(|i| i["kind"] == "ConfigMap").context("no ConfigMap")?;
    let key = file.rsplit('/').next().unwrap_or(file);
    let text = std::fs::read_to_string(dir.join(file)).with_context(|| format!("reading {file}"))?;
    if config_map["data"][key].as_str() != Some(text.as_str()) {
        bail!("the ConfigMap's data.{key} differs from {file}");
    }
    Ok(list)
}

/// The values take the config from the rendered Secret, never from the chart's `config` (which
/// Helm merges into the chart's defaults, so the deployed modules would not be blackbox.yml's).
fn blackbox_values(dir: &Utf8Path, values: &Value) -> Result<()> {
    use crate::render::blackbox::SECRET_FILE;
    if values.get("config").is_some() {
        bail!("`config` is set: Helm merges it into the chart's defaults; the config belongs in {SECRET_FILE}");
    }
    let wanted = values["configExistingSecretName"].as_str().context("no configExistingSecretName")?;
    let secret = yaml_file(dir, SECRET_FILE)?;
    let name = secret["metadata"]["name"].as_str().unwrap_or_default();
    if name != wanted {
        bail!("configExistingSecretName is {wanted:?} but {SECRET_FILE} names {name:?}");
    }
    Ok(())
}

/// The Secret carries exactly blackbox.yml under the chart's key, and blackbox_exporter reads it.
fn blackbox_secret_config(sh: &Shell, dir: &Utf8Path, scratch: &Utf8Path) -> Result<()> {
    use crate::render::blackbox::{CHART_CONFIG_KEY, SECRET_FILE};
    let secret = yaml_file(dir, SECRET_FILE)?;
    let text =
        secret["stringData"][CHART_CONFIG_KEY].as_str().with_context(|| format!("no stringData.{CHART_CONFIG_KEY}"))?;
    let file = std::fs::read_to_string(dir.join("blackbox/blackbox.yml")).context("reading blackbox/blackbox.yml")?;
    if text != file {
        bail!("stringData.{CHART_CONFIG_KEY} differs from blackbox/blackbox.yml");
    }
    let cfg = scratch.join("blackbox-secret.yml");
    std::fs::write(&cfg, text).with_context(|| format!("writing {cfg}"))?;
    blackbox_check(sh, &cfg)
}

fn blackbox_check(sh: &Shell, cfg: &Utf8Path) -> Result<()> {
    let flag = format!("--config.file={cfg}");
    exec(sh, tools::BLACKBOX, &["--config.check", &flag])
}

/// The PrometheusRule's `spec` is a rules file: check it with promtool too.
fn prometheus_rule_groups(sh: &Shell, scratch: &Utf8Path, text: &str) -> Result<()> {
    let obj: PrometheusRule =
        serde_yaml_ng::from_str(text).context("PrometheusRule does not match monitoring.coreos.com/v1")?;
    let rules = scratch.join("prometheusrule-spec.yml");
    std::fs::write(&rules, serde_yaml_ng::to_string(&obj.spec)?).with_context(|| format!("writing {rules}"))?;
    exec(sh, tools::PROMTOOL, &["check", "rules", rules.as_str()])
}

/// monitoring.coreos.com/v1 PrometheusRule, as much as a rules file uses; strict.
#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PrometheusRule {
    api_version: String,
    kind: String,
    metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    spec: PrometheusRuleSpec,
}

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct PrometheusRuleSpec {
    groups: Vec<RuleGroup>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct RuleGroup {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interval: Option<String>,
    rules: Vec<Rule>,
}

#[derive(Debug, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct Rule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    alert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    record: Option<String>,
    expr: String,
    #[serde(default, rename = "for", skip_serializing_if = "Option::is_none")]
    for_: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    labels: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<std::collections::BTreeMap<String, String>>,
}

/// Every document of a manifest file must be a known kind and survive a typed
/// round trip unchanged: a misspelt or misplaced field is dropped by the typed
/// object, so the round trip shows it.
pub fn check_manifests(text: &str) -> Result<()> {
    let mut n = 0;
    for doc in serde_yaml_ng::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).context("not valid YAML")?;
        if value.is_null() {
            continue;
        }
        n += 1;
        if value["apiVersion"] == "v1" && value["kind"] == "List" {
            let items = value["items"].as_array().filter(|i| !i.is_empty());
            let items = items.with_context(|| format!("document {n}: a List with no items"))?;
            for (i, item) in items.iter().enumerate() {
                check_object(item).with_context(|| format!("document {n}, item {i}"))?;
            }
        } else {
            check_object(&value).with_context(|| format!("document {n}"))?;
        }
    }
    if n == 0 {
        bail!("no Kubernetes object in the file");
    }
    Ok(())
}

/// One object, deserialized into its k8s-openapi type and back with nothing lost.
fn check_object(value: &Value) -> Result<()> {
    use k8s_openapi::api::{apps::v1 as apps, core::v1 as core, rbac::v1 as rbac, storage::v1 as storage};
    let kind = format!("{}/{}", value["apiVersion"].as_str().unwrap_or("?"), value["kind"].as_str().unwrap_or("?"));
    let round = match kind.as_str() {
        "v1/Namespace" => round_trip::<core::Namespace>(value),
        "v1/ConfigMap" => round_trip::<core::ConfigMap>(value),
        "v1/Secret" => round_trip::<core::Secret>(value),
        "v1/Service" => round_trip::<core::Service>(value),
        "v1/ServiceAccount" => round_trip::<core::ServiceAccount>(value),
        "apps/v1/DaemonSet" => round_trip::<apps::DaemonSet>(value),
        "apps/v1/Deployment" => round_trip::<apps::Deployment>(value),
        "rbac.authorization.k8s.io/v1/ClusterRole" => round_trip::<rbac::ClusterRole>(value),
        "rbac.authorization.k8s.io/v1/ClusterRoleBinding" => round_trip::<rbac::ClusterRoleBinding>(value),
        "storage.k8s.io/v1/StorageClass" => round_trip::<storage::StorageClass>(value),
        "helm.cattle.io/v1/HelmChart" => round_trip::<crate::render::manifests::HelmChart>(value),
        "monitoring.coreos.com/v1/PrometheusRule" => round_trip::<PrometheusRule>(value),
        other => bail!("unknown kind {other}; add it to validate::check_object"),
    };
    round.with_context(|| kind.clone())
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(value: &Value) -> Result<()> {
    let typed: T = serde_json::from_value(value.clone()).context("does not deserialize into its typed object")?;
    let back = serde_json::to_value(&typed)?;
    if &back != value {
        let diff = first_json_difference(value, &back, String::new()).unwrap_or_default();
        bail!("fields lost in the typed round trip (unknown or misplaced field?): {diff}");
    }
    Ok(())
}

fn first_json_difference(a: &Value, b: &Value, at: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, va) in x {
                match y.get(k) {
                    None => return Some(format!("{at}.{k} is not a field of the typed object")),
                    Some(vb) => {
                        if let Some(d) = first_json_difference(va, vb, format!("{at}.{k}")) {
                            return Some(d);
                        }
                    }
                }
            }
            y.keys().find(|k| !x.contains_key(*k)).map(|k| format!("{at}.{k} appears only after the round trip"))
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            x.iter().zip(y).enumerate().find_map(|(i, (va, vb))| first_json_difference(va, vb, format!("{at}[{i}]")))
        }
        _ if a == b => None,
        _ => Some(format!("{at}: {a} became {b}")),
    }
}

/// Validate rendered configs with the real tools: promtool, amtool, blackbox_exporter,
/// shellcheck, and typed Kubernetes objects. Files no tool here can read are reported
/// as "not run".
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub select: crate::stack::Selection,
}

pub fn run(args: Args) -> Result<()> {
    tools::require_validators()?;
    let stack = crate::stack::load(&crate::paths::stack_file())?;
    let mut failed = 0;
    for (profile, arch) in args.select.pairs(&stack)? {
        let ctx = Ctx::new(&stack, profile, arch)?;
        let files = crate::render::render(&ctx)?;
        let dir = crate::paths::validate_out_dir(profile, arch.as_str());
        let report = validate(&files, &dir)?;
        crate::note!("validate {profile}/{arch}:");
        for c in &report.checks {
            crate::note!("  {c}");
        }
        crate::note!(
            "  {} passed, {} failed, {} not run",
            report.count(|o| *o == Outcome::Passed),
            report.count(|o| matches!(o, Outcome::Failed(_))),
            report.count(|o| matches!(o, Outcome::NotRun(_)))
        );
        failed += report.failed().count();
    }
    if failed > 0 {
        bail!("{failed} validation(s) failed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_manifests;

    #[test]
    fn a_list_is_checked_item_by_item_and_an_empty_one_refused() {
        let ok =
            "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ServiceAccount\n  metadata:\n    name: a\n";
        check_manifests(ok).unwrap();
        let bad = ok.replace("kind: ServiceAccount", "kind: ServiceAcount");
        let err = format!("{:#}", check_manifests(&bad).unwrap_err());
        assert!(err.contains("document 1, item 0") && err.contains("v1/ServiceAcount"), "{err}");
        let typo = ok.replace("metadata:", "metdata:");
        assert!(format!("{:#}", check_manifests(&typo).unwrap_err()).contains("metdata"));
        let empty = "apiVersion: v1\nkind: List\nitems: []\n";
        assert!(format!("{:#}", check_manifests(empty).unwrap_err()).contains("a List with no items"));
    }
}
