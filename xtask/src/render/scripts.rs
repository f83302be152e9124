//! Install scripts for kubeprepare's packages: `scripts/install-observability.sh` on the k3s
//! server node and `scripts/install-observability-edge.sh` on edge nodes.
//!
//! Bash is not structured data, so the scripts are text; but everything that varies (images,
//! charts, manifests, Helm jobs, namespaces, ports) is planned here as typed data
//! ([`CloudPlan`]) and written as quoted bash arrays and variables ([`quote`]), and the logic is
//! fixed text that only reads them. A step with nothing to do for a profile (no charts, no
//! manifests that need a chart's CRDs) is left out, not skipped at run time.
//!
//! Structural config patching, not sed:
//! - cloud: cloudcore's config is YAML inside the `kubeedge/cloudcore` ConfigMap and a k3s host
//!   has no YAML tool but kubectl. `kubectl patch --local -f FILE --type merge` parses any file
//!   holding an object with apiVersion and kind (cloudcore.yaml is one), applies a JSON merge
//!   patch (RFC 7386: a deep merge of maps) and prints YAML, without the API server. The script
//!   merges `kubeedge/cloudcore-patch.yaml` and the monitor address, compares with the
//!   normalised current config, and writes and restarts only on a change.
//! - edge: the preferred path is `keadm join --set=…` with `--print-join-args` (from the same
//!   typed patch, see `kubeedge.rs`). A node already joined is deep-merged with python3 +
//!   PyYAML, checked, backed up and restarted; without PyYAML the script fails and says what
//!   to install or how to re-join.

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use super::kubeedge::{
    CLOUDCORE_CONFIG_KEY, CLOUDCORE_CONFIGMAP, CLOUDCORE_DEPLOYMENT, CLOUDCORE_NAMESPACE, CLOUDCORE_POD_SELECTOR,
    EDGECORE_CONFIG, JOIN_SET_FILE, PATCH_CLOUDCORE, PATCH_EDGECORE,
};
use super::manifests::{K3S_AUTO_IMPORT, K3S_DATA_DIR, K3S_STATIC_CHARTS};
use super::names::{
    ALERT_WEBHOOK_KEY, ALERT_WEBHOOK_SECRET, EDGE_NODE_LABEL, ENDPOINTS_CONFIGMAP, ENV_CLOUD_HOST, ENV_CLOUD_HOST_IP,
};
use super::output::{Comment, with_header};
use super::{Ctx, Files};
use crate::stack::Role;

pub const CLOUD_SCRIPT: &str = "scripts/install-observability.sh";
pub const EDGE_SCRIPT: &str = "scripts/install-observability-edge.sh";
/// Server-side-apply field manager of everything the cloud script applies.
pub const FIELD_MANAGER: &str = "kubeprepare-observability";

/// Where each component's image tar sits in the bundle (one archive per component;
/// `bundle --image-archives per-role` puts a role's images in one `images.tar`).
pub fn image_tar(role: Role, component: &str) -> String {
    format!("images/{role}/{component}.tar")
}

/// The folder holding a role's image archives.
pub fn image_dir(role: Role) -> String {
    format!("images/{role}")
}

/// The image names (as containerd lists them after import) of a role's components.
fn image_names(ctx: &Ctx<'_>, role: Role) -> Vec<String> {
    ctx.profile
        .enabled()
        .filter(|c| c.role == role)
        .flat_map(|c| c.images.iter().map(|i| i.reference.to_string()))
        .collect()
}

/// Prefix of the archives the cloud script keeps in k3s' auto-import directory (not to clash with
/// kubeprepare's own airgap images there).
pub const AUTO_IMPORT_PREFIX: &str = "kubeprepare-observability-";

/// Single-quote a value for bash.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// What the cloud script does, as data: every list is in the order the script uses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudPlan {
    /// Images of the cloud components, as containerd names them once imported.
    pub images: Vec<String>,
    /// Chart archives, copied to k3s' static charts directory.
    pub charts: Vec<String>,
    /// Manifests holding the Namespace(s): applied first, so the endpoints ConfigMap has a home.
    pub namespace_manifests: Vec<String>,
    /// The other manifests whose kinds the cluster knows before any chart is installed.
    pub manifests: Vec<String>,
    /// `namespace/job` of each HelmChart's helm-controller install job.
    pub helm_jobs: Vec<String>,
    /// Manifests whose kinds come from the charts' CRDs (e.g. PrometheusRule): applied after the charts.
    pub late_manifests: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct Doc {
    api_version: String,
    kind: String,
    metadata: Meta,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Meta {
    name: String,
    namespace: Option<String>,
}

/// Whether a cluster has this API group before any chart is installed: the built-in
/// Kubernetes groups, and k3s' own (its helm-controller's HelmChart).
fn builtin_group(api_version: &str) -> bool {
    let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
    !group.contains('.') || group.ends_with(".k8s.io") || group.ends_with(".cattle.io")
}

fn docs(path: &str, text: &str) -> Result<Vec<Doc>> {
    let mut out = Vec::new();
    for de in serde_yaml_ng::Deserializer::from_str(text) {
        let doc: Option<Doc> = Option::deserialize(de).with_context(|| format!("reading rendered {path}"))?;
        out.extend(doc);
    }
    Ok(out)
}

/// Plan the cloud script from the profile and the manifests already in `files`
/// (`render::render` renders the manifests before the scripts).
pub fn cloud_plan(ctx: &Ctx<'_>, files: &Files) -> Result<CloudPlan> {
    let mut plan = CloudPlan {
        images: image_names(ctx, Role::Cloud),
        charts: ctx
            .profile
            .enabled()
            .filter_map(|c| c.chart.as_ref())
            .map(|ch| format!("charts/{}", ch.archive_name()))
            .collect(),
        namespace_manifests: vec![],
        manifests: vec![],
        helm_jobs: vec![],
        late_manifests: vec![],
    };
    let mut has_namespace = false;
    for (path, text) in files.iter().filter(|(p, _)| p.starts_with("manifests") && p.extension() == Some("yaml")) {
        let docs = docs(path.as_str(), text)?;
        for d in docs.iter().filter(|d| d.kind == "HelmChart") {
            let ns = d.metadata.namespace.as_deref().unwrap_or("default");
            plan.helm_jobs.push(format!("{ns}/helm-install-{}", d.metadata.name));
        }
        has_namespace |= docs.iter().any(|d| d.kind == "Namespace" && d.metadata.name == ctx.namespace());
        let list = if docs.iter().any(|d| !builtin_group(&d.api_version)) {
            &mut plan.late_manifests
        } else if docs.iter().any(|d| d.kind == "Namespace") {
            &mut plan.namespace_manifests
        } else {
            &mut plan.manifests
        };
        list.push(path.to_string());
    }
    if !has_namespace {
        bail!(
            "no rendered manifest creates namespace {}; the manifests must render before the scripts",
            ctx.namespace()
        );
    }
    if !plan.late_manifests.is_empty() && plan.charts.is_empty() {
        bail!(
            "manifests {:?} need CRDs, but profile {} installs no chart that brings them",
            plan.late_manifests,
            ctx.profile_name
        );
    }
    Ok(plan)
}

/// A bash array assignment, or nothing for an empty list (the script then has no step using it).
fn array(out: &mut String, name: &str, items: &[String]) {
    if items.is_empty() {
        return;
    }
    out.push_str(name);
    out.push_str("=(");
    for item in items {
        out.push_str("\n  ");
        out.push_str(&quote(item));
    }
    out.push_str("\n)\n");
}

fn var(out: &mut String, name: &str, value: &str) {
    out.push_str(&format!("{name}={}\n", quote(value)));
}

fn script(description: &str, data: &str, body: &[&str]) -> String {
    let mut text = String::from("#\n");
    for line in description.lines() {
        text.push_str(&format!("# {line}\n").replace("# \n", "#\n"));
    }
    text.push_str(PRELUDE);
    text.push_str("\n# Data, from stack.toml.\n");
    text.push_str(data);
    for part in body {
        text.push('\n');
        text.push_str(part);
    }
    format!("#!/usr/bin/env bash\n{}", with_header(Comment::Hash, &text))
}

const PRELUDE: &str = r##"
set -euo pipefail

BUNDLE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() {
  echo "error: $*" >&2
  exit 1
}

log() {
  echo "==> $*" >&2
}

# import_images <dir> <ctr command...>: import every image archive in <dir> (one per
# component, or one per role), then check that every image in IMAGES is there.
# A .tar.zst (which ctr cannot read) is decompressed on the way.
import_images() {
  local dir="$BUNDLE_DIR/$1" archive missing=() name
  shift
  local archives=()
  for archive in "$dir"/*.tar "$dir"/*.tar.zst; do
    [[ -f "$archive" ]] && archives+=("$archive")
  done
  ((${#archives[@]})) || die "no image archive (.tar or .tar.zst) in $dir"
  log "importing ${#archives[@]} image archive(s) from $dir"
  for archive in "${archives[@]}"; do
    if [[ "$archive" == *.zst ]]; then
      command -v zstd >/dev/null ||
        die "$archive needs zstd (Debian/Ubuntu: apt-get install zstd), or rebuild the bundle with --image-format tar"
      zstd -dc "$archive" | "$@" images import - >/dev/null
    else
      "$@" images import "$archive" >/dev/null
    fi
  done
  local listed
  listed="$("$@" images ls -q)"
  for name in "${IMAGES[@]}"; do
    grep -qxF "$name" <<<"$listed" || missing+=("$name")
  done
  ((${#missing[@]} == 0)) || die "images missing after the import (is the bundle for this arch complete?): ${missing[*]}"
  # Pinned: the kubelet's image garbage collection never removes them (offline they never come back).
  for name in "${IMAGES[@]}"; do
    "$@" images label "$name" io.cri-containerd.pinned=pinned >/dev/null
  done
}

# Fails listing every missing file, not only the first.
require_files() {
  local missing=() f
  for f in "$@"; do
    [[ -e "$BUNDLE_DIR/$f" ]] || missing+=("$f")
  done
  if ((${#missing[@]})); then
    printf 'error: missing from the bundle at %s:\n' "$BUNDLE_DIR" >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 1
  fi
}
"##;

const CLOUD_START: &str = r##"usage() {
  cat <<'EOF'
Usage: install-observability.sh --alert-webhook-url URL [--cloud-ip IP] [--timeout SECONDS]
       install-observability.sh --images-only [--k3s-data-dir DIR]

Deploys the observability stack on this k3s server node, offline, from the bundle around this
script. Safe to run again.
  --images-only            on another cloud node (a k3s agent): import and pin the cloud images
                           only, and keep them in k3s' auto-import directory; cloud pods may run
                           on any node that is not an edge
  --alert-webhook-url URL  where Alertmanager posts every alert (your paging bridge); required on
                           the first run, kept (in a Secret) when a re-run omits it
  --cloud-ip IP            address edge agents push metrics, logs and traces to
                           (default: the InternalIP of a control-plane node)
  --k3s-data-dir DIR       k3s' --data-dir (default: /var/lib/rancher/k3s)
  --timeout SECONDS        how long to wait for each chart and workload (default: 600)
  -h, --help               show this help
EOF
}

# An IPv4 or IPv6 address: it goes into a ConfigMap and a JSON patch, so nothing else may pass.
is_ip() {
  [[ "$1" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ || "$1" =~ ^[0-9A-Fa-f]*:[0-9A-Fa-f:]*$ ]]
}

CLOUD_IP=""
WEBHOOK_URL=""
TIMEOUT=600
IMAGES_ONLY=false
while (($#)); do
  case "$1" in
    --images-only)
      IMAGES_ONLY=true
      shift
      ;;
    --alert-webhook-url)
      [[ "${2:-}" =~ ^https?://[^[:space:]/]+ ]] || die "--alert-webhook-url needs an http:// or https:// URL"
      WEBHOOK_URL="$2"
      shift 2
      ;;
    --cloud-ip)
      is_ip "${2:-}" || die "--cloud-ip needs an IP address"
      CLOUD_IP="$2"
      shift 2
      ;;
    --k3s-data-dir)
      [[ -n "${2:-}" ]] || die "--k3s-data-dir needs k3s' data directory"
      K3S_DATA_DIR="$2"
      shift 2
      ;;
    --timeout)
      [[ "${2:-}" =~ ^[1-9][0-9]*$ ]] || die "--timeout needs a number of seconds"
      TIMEOUT="$2"
      shift 2
      ;;
    -h | --help)
      usage
      exit 0
      ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

[[ "$(id -u)" -eq 0 ]] || die "run as root: k3s' containerd and static charts directory need it"
command -v k3s >/dev/null || die "k3s is not installed here; install kubeprepare's cloud package first"
if [[ "$IMAGES_ONLY" == true ]]; then
  [[ -d "$K3S_DATA_DIR/agent" ]] ||
    die "$K3S_DATA_DIR is not the data directory of a k3s node; pass --k3s-data-dir DIR (k3s' --data-dir)"
else
  [[ -d "$K3S_DATA_DIR/server" ]] ||
    die "$K3S_DATA_DIR is not the data directory of a k3s server; pass --k3s-data-dir DIR (k3s' --data-dir), or --images-only on an agent"
fi
kubectl() { k3s kubectl "$@"; }
# Server-side apply: re-runs converge, and large objects (chart values) need no
# last-applied annotation.
apply() { kubectl apply --server-side --force-conflicts --field-manager="$FIELD_MANAGER" "$@" >/dev/null; }
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
"##;

// k3s imports (and pins) every archive in its agent images directory when it starts and while it
// runs, so the images come back on this node whatever happens to containerd's store.
const CLOUD_IMAGES: &str = r##"import_images "$IMAGE_DIR" k3s ctr
AUTO_IMPORT_DIR="$K3S_DATA_DIR/$K3S_AUTO_IMPORT"
install -d -m 0755 "$AUTO_IMPORT_DIR"
for archive in "$BUNDLE_DIR/$IMAGE_DIR"/*.tar "$BUNDLE_DIR/$IMAGE_DIR"/*.tar.zst; do
  [[ -f "$archive" ]] && install -m 0644 "$archive" "$AUTO_IMPORT_DIR/$AUTO_IMPORT_PREFIX${archive##*/}"
done
"##;

const CLOUD_IMAGES_ONLY: &str = r##"if [[ "$IMAGES_ONLY" == true ]]; then
  log "the cloud images are imported and pinned on this node, and kept in $AUTO_IMPORT_DIR"
  exit 0
fi
"##;

const CLOUD_NO_IMAGES: &str = r##"[[ "$IMAGES_ONLY" == false ]] || {
  log "this profile has no cloud images to import"
  exit 0
}
"##;

// Cloud pods may land on any node that is not an edge, and offline each needs the images there.
const CLOUD_OTHER_NODES: &str = r##"mapfile -t cloud_nodes < <(kubectl get nodes -l "!$EDGE_LABEL" -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}')
if ((${#cloud_nodes[@]} > 1)); then
  echo "warning: cloud pods may run on any of ${cloud_nodes[*]}: run install-observability.sh --images-only on each node but this one" >&2
fi
"##;

const CLOUD_CHARTS: &str = r##"# k3s serves this directory to its helm-controller at https://%{KUBERNETES_API}%/static/charts/.
CHARTS_DIR="$K3S_DATA_DIR/$K3S_STATIC_CHARTS"
log "serving ${#CHARTS[@]} chart(s) from $CHARTS_DIR"
install -d -m 0755 "$CHARTS_DIR"
for chart in "${CHARTS[@]}"; do
  install -m 0644 "$BUNDLE_DIR/$chart" "$CHARTS_DIR/${chart##*/}"
done
"##;

const CLOUD_ENDPOINTS: &str = r##"if [[ -z "$CLOUD_IP" ]]; then
  ips="$(kubectl get nodes -l node-role.kubernetes.io/control-plane \
    -o jsonpath='{range .items[*]}{.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}')"
  CLOUD_IP="${ips%%$'\n'*}"
  is_ip "$CLOUD_IP" || die "found no control-plane node with an InternalIP; pass --cloud-ip IP"
fi
log "edge agents will push to $CLOUD_IP"
# Agents that put the address into a URL or host:port read it as a URL's host: IPv6 in brackets.
case "$CLOUD_IP" in
  *:*) cloud_host="[$CLOUD_IP]" ;;
  *) cloud_host="$CLOUD_IP" ;;
esac
for m in "${NAMESPACE_MANIFESTS[@]}"; do
  apply -f "$BUNDLE_DIR/$m"
done
kubectl -n "$NAMESPACE" create configmap "$ENDPOINTS_CONFIGMAP" --from-literal="$CLOUD_IP_KEY=$CLOUD_IP" \
  --from-literal="$CLOUD_HOST_KEY=$cloud_host" --dry-run=client -o yaml | apply -f -
"##;

// Before anything changes: a first install without a receiver stops here.
const CLOUD_WEBHOOK_CHECK: &str = r##"if [[ "$IMAGES_ONLY" == false && -z "$WEBHOOK_URL" ]] && ! kubectl -n "$NAMESPACE" get secret "$WEBHOOK_SECRET" >/dev/null 2>&1; then
  die "pass --alert-webhook-url URL: Alertmanager posts every alert there, and the bundle carries no receiver"
fi
"##;

// A profile with no Alertmanager on the cluster has no receiver to point anywhere.
const CLOUD_NO_WEBHOOK: &str = r##"[[ -z "$WEBHOOK_URL" ]] || log "this profile deploys no Alertmanager on the cluster: --alert-webhook-url is not used"
"##;

const CLOUD_WEBHOOK: &str = r##"# Alertmanager reads its receiver's URL from this Secret: no route posts to a receiver that is not there.
if [[ -n "$WEBHOOK_URL" ]]; then
  kubectl -n "$NAMESPACE" create secret generic "$WEBHOOK_SECRET" --from-literal="$WEBHOOK_KEY=$WEBHOOK_URL" \
    --dry-run=client -o yaml | apply -f -
fi
"##;

const CLOUD_TAINT: &str = r##"# KubeEdge sets no taint: edges joined before this install (registerWithTaints applies only at
# registration) get it here, so only edge DaemonSets run on them.
kubectl taint nodes -l "$EDGE_LABEL" "$EDGE_TAINT" --overwrite >/dev/null
"##;

const CLOUD_CLOUDCORE: &str = r##"# cloudcore serves /metrics on commonConfig.monitorServer.bindAddress (127.0.0.1 by default);
# Prometheus scrapes the host IP of cloudcore's pod (it runs on the host network). The merge is
# structural (`kubectl patch --local`, see scripts.rs); cloudcore reads its config only at start.
configure_cloudcore() {
  local host_ip bind
  # Not a pod being deleted (a restart's old one): its host may not be the new one's.
  host_ip="$(kubectl -n "$CLOUDCORE_NAMESPACE" get pods -l "$CLOUDCORE_SELECTOR" \
    -o go-template='{{range .items}}{{if not .metadata.deletionTimestamp}}{{.status.hostIP}} {{end}}{{end}}')"
  host_ip="${host_ip% }"
  is_ip "$host_ip" || die "expected one running cloudcore pod (-l $CLOUDCORE_SELECTOR in $CLOUDCORE_NAMESPACE), found host IPs '$host_ip'"
  bind="$host_ip:$MONITOR_PORT"
  [[ "$host_ip" != *:* ]] || bind="[$host_ip]:$MONITOR_PORT"
  kubectl -n "$CLOUDCORE_NAMESPACE" get configmap "$CLOUDCORE_CONFIGMAP" -o jsonpath="$CLOUDCORE_JSONPATH" >"$WORK/current.yaml"
  kubectl patch --local -f "$WORK/current.yaml" --type merge -p '{}' -o yaml >"$WORK/before.yaml"
  kubectl patch --local -f "$WORK/before.yaml" --type merge --patch-file "$BUNDLE_DIR/$CLOUDCORE_PATCH" -o yaml >"$WORK/stream.yaml"
  kubectl patch --local -f "$WORK/stream.yaml" --type merge -o yaml \
    -p "{\"commonConfig\":{\"monitorServer\":{\"bindAddress\":\"$bind\"}}}" >"$WORK/after.yaml"
  if cmp -s "$WORK/before.yaml" "$WORK/after.yaml"; then
    log "cloudcore already serves metrics on $bind"
    return
  fi
  log "cloudcore: metrics on $bind, cloudStream on; restarting cloudcore"
  kubectl -n "$CLOUDCORE_NAMESPACE" create configmap "$CLOUDCORE_CONFIGMAP" \
    --from-file="$CLOUDCORE_KEY=$WORK/after.yaml" --dry-run=client -o yaml | apply -f -
  # Delete the pod rather than `rollout restart`: on the host network a surge pod cannot
  # schedule beside the old one on a single server. Then wait for the old pod to be gone and a
  # new one to be Ready: `rollout status` right after the delete can still see the old one.
  local old
  mapfile -t old < <(kubectl -n "$CLOUDCORE_NAMESPACE" get pods -l "$CLOUDCORE_SELECTOR" -o name)
  kubectl -n "$CLOUDCORE_NAMESPACE" delete pods -l "$CLOUDCORE_SELECTOR" --wait=false >/dev/null
  local deadline=$((SECONDS + TIMEOUT))
  ((${#old[@]} == 0)) || kubectl -n "$CLOUDCORE_NAMESPACE" wait --for=delete "${old[@]}" --timeout="${TIMEOUT}s" >/dev/null ||
    die "the old cloudcore pod is still there after ${TIMEOUT}s: kubectl -n $CLOUDCORE_NAMESPACE get pods"
  until [[ "$(kubectl -n "$CLOUDCORE_NAMESPACE" get pods -l "$CLOUDCORE_SELECTOR" -o go-template='{{range .items}}{{if not .metadata.deletionTimestamp}}{{range .status.conditions}}{{if and (eq .type "Ready") (eq .status "True")}}ready{{end}}{{end}}{{end}}{{end}}')" == ready ]]; do
    ((SECONDS < deadline)) ||
      die "cloudcore is not ready after ${TIMEOUT}s: kubectl -n $CLOUDCORE_NAMESPACE logs deployment/$CLOUDCORE_DEPLOYMENT"
    sleep 2
  done
}

found="$(kubectl -n "$CLOUDCORE_NAMESPACE" get configmap "$CLOUDCORE_CONFIGMAP" --ignore-not-found -o name)"
if [[ -n "$found" ]]; then
  configure_cloudcore
else
  echo "warning: KubeEdge's cloudcore is not installed (no ConfigMap $CLOUDCORE_NAMESPACE/$CLOUDCORE_CONFIGMAP); its metrics stay off" >&2
fi
"##;

// helm-controller reruns a chart's install job when its HelmChart changes; a completed job of an
// earlier run would otherwise pass the wait for it before the new values are installed. Removing
// it first makes helm-controller run the install again, values changed or not (an idempotent
// upgrade).
const CLOUD_HELM_RERUN: &str = r##"for job in "${HELM_JOBS[@]}"; do
  kubectl -n "${job%%/*}" delete job "${job#*/}" --ignore-not-found >/dev/null
done
"##;

const CLOUD_MANIFESTS: &str = r##"log "applying ${#MANIFESTS[@]} manifest(s)"
for m in "${MANIFESTS[@]}"; do
  apply -f "$BUNDLE_DIR/$m"
done
"##;

const CLOUD_HELM: &str = r##"# `wait --for=create` needs kubectl 1.31 or later (k3s 1.31+).
for job in "${HELM_JOBS[@]}"; do
  log "waiting for chart install job $job"
  if ! kubectl -n "${job%%/*}" wait --for=create "job/${job#*/}" --timeout="${TIMEOUT}s" >/dev/null ||
    ! kubectl -n "${job%%/*}" wait --for=condition=complete "job/${job#*/}" --timeout="${TIMEOUT}s" >/dev/null; then
    die "chart job $job did not complete in ${TIMEOUT}s: kubectl -n ${job%%/*} logs job/${job#*/}"
  fi
done
"##;

const CLOUD_LATE: &str = r##"kubectl wait --for=condition=established crd --all --timeout="${TIMEOUT}s" >/dev/null ||
  die "CRDs are not established after ${TIMEOUT}s: kubectl get crd"
log "applying ${#LATE_MANIFESTS[@]} manifest(s) that use the charts' CRDs"
for m in "${LATE_MANIFESTS[@]}"; do
  apply -f "$BUNDLE_DIR/$m"
done
"##;

// Prometheus and Alertmanager are StatefulSets the operator makes from the chart's resources, maybe
// after the chart's job completed: wait for the operator to report them available first.
const CLOUD_WAIT_OPERATOR: &str = r##"for kind in prometheuses alertmanagers; do
  log "waiting for the operator's $kind"
  kubectl -n "$NAMESPACE" wait --for=condition=Available "$kind.monitoring.coreos.com" --all --timeout="${TIMEOUT}s" >/dev/null ||
    die "$kind are not available after ${TIMEOUT}s: kubectl -n $NAMESPACE describe $kind.monitoring.coreos.com"
done
"##;

const CLOUD_WAIT: &str = r##"log "waiting for the workloads in $NAMESPACE"
workloads="$(kubectl -n "$NAMESPACE" get deployments,statefulsets -o name)"
for w in $workloads; do
  kubectl -n "$NAMESPACE" rollout status "$w" --timeout="${TIMEOUT}s" >/dev/null ||
    die "$w is not ready after ${TIMEOUT}s: kubectl -n $NAMESPACE describe $w"
done
# DaemonSets of edge nodes become ready as edge nodes join and connect: shown, not awaited.
kubectl -n "$NAMESPACE" get daemonsets >&2
log "observability is installed"
"##;

fn cloud_script(ctx: &Ctx<'_>, plan: &CloudPlan) -> String {
    let s = ctx.settings();
    let mut data = String::new();
    var(&mut data, "NAMESPACE", ctx.namespace());
    var(&mut data, "FIELD_MANAGER", FIELD_MANAGER);
    var(&mut data, "ENDPOINTS_CONFIGMAP", ENDPOINTS_CONFIGMAP);
    var(&mut data, "CLOUD_IP_KEY", ENV_CLOUD_HOST_IP);
    var(&mut data, "CLOUD_HOST_KEY", ENV_CLOUD_HOST);
    if ctx.deploys_alertmanager() {
        var(&mut data, "WEBHOOK_SECRET", ALERT_WEBHOOK_SECRET);
        var(&mut data, "WEBHOOK_KEY", ALERT_WEBHOOK_KEY);
    }
    var(&mut data, "EDGE_LABEL", EDGE_NODE_LABEL);
    let taint = super::kubeedge::EDGE_TAINT;
    var(&mut data, "EDGE_TAINT", &format!("{}:{}", taint.key, taint.effect));
    var(&mut data, "CLOUDCORE_NAMESPACE", CLOUDCORE_NAMESPACE);
    var(&mut data, "CLOUDCORE_CONFIGMAP", CLOUDCORE_CONFIGMAP);
    var(&mut data, "CLOUDCORE_KEY", CLOUDCORE_CONFIG_KEY);
    var(&mut data, "CLOUDCORE_JSONPATH", &format!("{{.data.{}}}", CLOUDCORE_CONFIG_KEY.replace('.', r"\.")));
    var(&mut data, "CLOUDCORE_SELECTOR", CLOUDCORE_POD_SELECTOR);
    var(&mut data, "CLOUDCORE_DEPLOYMENT", CLOUDCORE_DEPLOYMENT);
    var(&mut data, "CLOUDCORE_PATCH", PATCH_CLOUDCORE);
    var(&mut data, "MONITOR_PORT", &s.cloudcore.monitor.to_string());
    if !plan.images.is_empty() {
        var(&mut data, "IMAGE_DIR", &image_dir(Role::Cloud));
    }
    let arrays = [
        ("IMAGES", &plan.images),
        ("CHARTS", &plan.charts),
        ("NAMESPACE_MANIFESTS", &plan.namespace_manifests),
        ("MANIFESTS", &plan.manifests),
        ("HELM_JOBS", &plan.helm_jobs),
        ("LATE_MANIFESTS", &plan.late_manifests),
    ];
    let mut require = String::from("require_files \"$CLOUDCORE_PATCH\"");
    for (name, items) in arrays {
        array(&mut data, name, items);
        if !items.is_empty() && name != "HELM_JOBS" && name != "IMAGES" {
            require.push_str(&format!(" \"${{{name}[@]}}\""));
        }
    }
    require.push('\n');
    var(&mut data, "K3S_DATA_DIR", K3S_DATA_DIR);
    if !plan.charts.is_empty() {
        var(&mut data, "K3S_STATIC_CHARTS", K3S_STATIC_CHARTS);
    }
    if !plan.images.is_empty() {
        var(&mut data, "K3S_AUTO_IMPORT", K3S_AUTO_IMPORT);
        var(&mut data, "AUTO_IMPORT_PREFIX", AUTO_IMPORT_PREFIX);
    }

    // Files are checked after the arguments are read: `--help` works from anywhere.
    let mut body = vec![CLOUD_START, require.as_str()];
    let steps: [(bool, &str); 17] = [
        (ctx.deploys_alertmanager(), CLOUD_WEBHOOK_CHECK),
        (!ctx.deploys_alertmanager(), CLOUD_NO_WEBHOOK),
        (!plan.images.is_empty(), CLOUD_IMAGES),
        (!plan.images.is_empty(), CLOUD_IMAGES_ONLY),
        (plan.images.is_empty(), CLOUD_NO_IMAGES),
        (!plan.charts.is_empty(), CLOUD_CHARTS),
        (true, CLOUD_ENDPOINTS),
        (ctx.deploys_alertmanager(), CLOUD_WEBHOOK),
        (true, CLOUD_TAINT),
        (!plan.images.is_empty(), CLOUD_OTHER_NODES),
        (true, CLOUD_CLOUDCORE),
        (!plan.helm_jobs.is_empty(), CLOUD_HELM_RERUN),
        (!plan.manifests.is_empty(), CLOUD_MANIFESTS),
        (!plan.helm_jobs.is_empty(), CLOUD_HELM),
        (!plan.late_manifests.is_empty(), CLOUD_LATE),
        (ctx.kps(), CLOUD_WAIT_OPERATOR),
        (true, CLOUD_WAIT),
    ];
    body.extend(steps.iter().filter(|(on, _)| *on).map(|(_, text)| *text));
    script(
        "Deploys kubeprepare's observability stack on the k3s server node, offline: imports and pins the\n\
         cloud images (kept in k3s' auto-import directory), serves the charts to k3s' helm-controller,\n\
         writes the endpoints edge agents push to, exposes cloudcore's metrics, applies the manifests\n\
         in order and waits until ready.\n\
         Run as root by kubeprepare's `install.sh --with-observability`; safe to run again.",
        &data,
        &body,
    )
}

const EDGE_BODY: &str = r##"usage() {
  cat <<'EOF'
Usage: install-observability-edge.sh [--print-join-args | --images-only]

Prepares this KubeEdge edge node for the observability stack, offline, from the bundle around
this script: imports the edge images into containerd (namespace k8s.io), pinned against the
kubelet's image garbage collection, and merges
kubeedge/edgecore-patch.yaml into edgecore's config, then restarts edgecore. Safe to run again.
  --print-join-args  print the `keadm join` flags that configure edgecore the same way at
                     join time, one per line, and exit (no root needed):
                       mapfile -t args < <(install-observability-edge.sh --print-join-args)
                       keadm join ... "${args[@]}"
  --images-only      import the images only (for a node about to be joined with those flags)
  -h, --help         show this help
EOF
}

print_join_args() {
  local line
  while IFS= read -r line; do
    [[ -z "$line" || "$line" == "#"* ]] || printf -- '--set=%s\n' "$line"
  done <"$BUNDLE_DIR/$JOIN_SET"
}

(($# <= 1)) || die "one argument at most (see --help)"
IMAGES_ONLY=false
case "${1:-}" in
  "") ;;
  --print-join-args)
    require_files "$JOIN_SET"
    print_join_args
    exit 0
    ;;
  --images-only) IMAGES_ONLY=true ;;
  -h | --help)
    usage
    exit 0
    ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

[[ "$(id -u)" -eq 0 ]] || die "run as root: containerd and edgecore need it"
command -v ctr >/dev/null || die "ctr (containerd) is not installed; install kubeprepare's edge package first"
require_files "$JOIN_SET" "$PATCH"

JOIN_ARGS="$(print_join_args | tr '\n' ' ')"
JOIN_ARGS="${JOIN_ARGS% }"
if [[ "$IMAGES_ONLY" == false ]]; then
  [[ -f "$EDGECORE_CONFIG" ]] ||
    die "edgecore is not joined ($EDGECORE_CONFIG is missing): join with keadm join ... $JOIN_ARGS, or pass --images-only"
  python3 -c 'import yaml' 2>/dev/null ||
    die "merging into $EDGECORE_CONFIG needs python3 with PyYAML (Debian/Ubuntu: apt-get install python3-yaml), or re-join the node with: keadm join ... $JOIN_ARGS"
fi

import_images "$IMAGE_DIR" ctr -n k8s.io
if [[ "$IMAGES_ONLY" == true ]]; then
  log "images imported; join this node with: keadm join ... $JOIN_ARGS"
  exit 0
fi

# Deep-merges the patch into the config (maps merged, other values replaced), refuses a config
# of another apiVersion/kind, checks the result holds the patch, and prints "unchanged" or
# "changed" (the merged config then written to argv[3]).
merge() {
  python3 - "$EDGECORE_CONFIG" "$BUNDLE_DIR/$PATCH" "$1" <<'PY'
import sys, yaml
config_path, patch_path, out_path = sys.argv[1:]
with open(config_path) as f:
    config = yaml.safe_load(f)
with open(patch_path) as f:
    patch = yaml.safe_load(f)
for key in ("apiVersion", "kind"):
    if config.get(key) != patch[key]:
        sys.exit(f"error: {config_path} has {key} {config.get(key)!r}, the patch is for {patch[key]!r}")
def merge(base, over):
    out = dict(base)
    for k, v in over.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out
def holds(doc, part):
    return all(holds(doc.get(k), v) if isinstance(v, dict) else doc.get(k) == v
               for k, v in part.items()) if isinstance(doc, dict) else False
merged = merge(config, patch)
if not holds(merged, patch):
    sys.exit("error: the merged config does not hold the patch")
if merged == config:
    print("unchanged")
else:
    with open(out_path, "w") as f:
        yaml.safe_dump(merged, f, default_flow_style=False, sort_keys=False)
    print("changed")
PY
}

merged="$(mktemp "$EDGECORE_CONFIG.XXXXXX")"
trap 'rm -f "$merged"' EXIT
result="$(merge "$merged")"
if [[ "$result" == unchanged ]]; then
  log "edgecore is already configured"
  exit 0
fi
backup="$EDGECORE_CONFIG.bak-$(date +%Y%m%d%H%M%S)"
cp -p "$EDGECORE_CONFIG" "$backup"
chmod --reference="$EDGECORE_CONFIG" "$merged"
mv "$merged" "$EDGECORE_CONFIG"
log "edgecore configured (previous config: $backup); restarting edgecore"
systemctl restart edgecore
systemctl is-active --quiet edgecore ||
  die "edgecore did not start: journalctl -u edgecore; the previous config is $backup"
"##;

fn edge_script(ctx: &Ctx<'_>) -> String {
    let images = image_names(ctx, Role::Edge);
    let mut data = String::new();
    var(&mut data, "IMAGE_DIR", &image_dir(Role::Edge));
    var(&mut data, "EDGECORE_CONFIG", EDGECORE_CONFIG);
    var(&mut data, "JOIN_SET", JOIN_SET_FILE);
    var(&mut data, "PATCH", PATCH_EDGECORE);
    // An empty list still imports nothing correctly; every profile has edge components today.
    data.push_str("IMAGES=(");
    for i in &images {
        data.push_str("\n  ");
        data.push_str(&quote(i));
    }
    data.push_str(if images.is_empty() { ")\n" } else { "\n)\n" });
    script(
        "Prepares a KubeEdge edge node for kubeprepare's observability stack, offline: imports and\n\
         pins the edge images in containerd (k8s.io) and turns on what edgecore needs (edgeStream, metaServer\n\
         on loopback, the kubelet read-only port). Run as root; safe to run again.",
        &data,
        &[EDGE_BODY],
    )
}

pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    let plan = cloud_plan(ctx, files)?;
    files.add(CLOUD_SCRIPT, cloud_script(ctx, &plan))?;
    files.add(EDGE_SCRIPT, edge_script(ctx))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Arch;

    fn rendered(profile: &str, f: impl Fn(&Ctx<'_>, &Files)) {
        let stack = crate::stack::load(&crate::paths::stack_file()).expect("stack.toml loads");
        let ctx = Ctx::new(&stack, profile, Arch::Amd64).expect("profile exists");
        f(&ctx, &crate::render::render(&ctx).expect("renders"));
    }

    #[test]
    fn scripts_name_every_image_and_start_strict() {
        for profile in ["upstream", "local"] {
            rendered(profile, |ctx, files| {
                let cloud = files.get(CLOUD_SCRIPT).unwrap();
                let edge = files.get(EDGE_SCRIPT).unwrap();
                for c in ctx.profile.enabled() {
                    let script = if c.role == Role::Cloud { cloud } else { edge };
                    for i in &c.images {
                        assert!(script.contains(&quote(&i.reference.to_string())), "{profile}: {} missing", c.name);
                    }
                }
                for s in [cloud, edge] {
                    assert!(s.starts_with("#!/usr/bin/env bash\n# Generated by"), "{profile}");
                    assert!(s.contains("\nset -euo pipefail\n"), "{profile}");
                    assert!(!s.contains("0.0.0.0"), "{profile}");
                }
            });
        }
    }

    #[test]
    fn every_bundle_file_the_scripts_use_is_rendered_or_bundled() {
        rendered("upstream", |ctx, files| {
            let plan = cloud_plan(ctx, files).unwrap();
            assert_eq!(plan.namespace_manifests, ["manifests/00-namespace.yaml"]);
            assert!(plan.late_manifests.iter().all(|m| m.ends_with("prometheusrule.yaml")), "{plan:?}");
            assert_eq!(plan.helm_jobs.len(), plan.charts.len(), "{plan:?}");
            for m in plan.namespace_manifests.iter().chain(&plan.manifests).chain(&plan.late_manifests) {
                assert!(files.get(m).is_some(), "{m}");
            }
            for f in [PATCH_CLOUDCORE, PATCH_EDGECORE, JOIN_SET_FILE] {
                assert!(files.get(f).is_some(), "{f}");
            }
        });
    }

    #[test]
    fn a_profile_without_charts_has_no_chart_steps() {
        rendered("local", |ctx, files| {
            let plan = cloud_plan(ctx, files).unwrap();
            assert!(plan.charts.is_empty() && plan.helm_jobs.is_empty() && plan.late_manifests.is_empty(), "{plan:?}");
            let cloud = files.get(CLOUD_SCRIPT).unwrap();
            for absent in ["CHARTS", "HELM_JOBS", "LATE_MANIFESTS", "static/charts"] {
                assert!(!cloud.contains(absent), "{absent} in the local cloud script");
            }
        });
    }

    #[test]
    fn api_groups_before_charts() {
        for (api_version, builtin) in [
            ("v1", true),
            ("apps/v1", true),
            ("storage.k8s.io/v1", true),
            ("helm.cattle.io/v1", true),
            ("monitoring.coreos.com/v1", false),
        ] {
            assert_eq!(builtin_group(api_version), builtin, "{api_version}");
        }
    }

    /// Run a rendered script alone in an empty folder (no bundle around it).
    fn run_alone(text: &str, args: &[&str]) -> std::process::Output {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("script.sh");
        std::fs::write(&path, text).unwrap();
        std::process::Command::new("bash").arg(&path).args(args).output().unwrap()
    }

    #[test]
    fn help_works_without_the_bundle_and_a_bad_argument_is_named() {
        rendered("upstream", |_, files| {
            for script in [CLOUD_SCRIPT, EDGE_SCRIPT] {
                let help = run_alone(files.get(script).unwrap(), &["--help"]);
                let out = String::from_utf8_lossy(&help.stdout);
                assert!(help.status.success() && out.starts_with("Usage: "), "{script}: {help:?}");
            }
            let cloud = files.get(CLOUD_SCRIPT).unwrap();
            assert!(cloud.contains("--alert-webhook-url URL"));
            let bad = run_alone(cloud, &["--alert-webhook-url", "alert-receiver:8080"]);
            let err = String::from_utf8_lossy(&bad.stderr);
            assert!(
                !bad.status.success() && err.contains("--alert-webhook-url needs an http:// or https:// URL"),
                "{err}"
            );
        });
    }

    /// Stands in for `k3s` (its `kubectl` and `ctr`): records each call in `$CALLS`, lists the
    /// images in `$LISTED` as imported, reads what is applied from stdin and answers the
    /// control-plane lookup with `$CONTROL_PLANE_IP`.
    const FAKE_K3S: &str = r#"#!/usr/bin/env bash
printf '%s\n' "$*" >>"$CALLS"
case "$*" in
  "ctr images ls -q") cat "$LISTED" ;;
  *"get nodes -l node-role.kubernetes.io/control-plane "*) echo "$CONTROL_PLANE_IP" ;;
  *" create "*) echo "kind: ConfigMap" ;;
  *" -f -") cat >/dev/null ;;
esac
"#;

    /// The whole cloud script, run against the stand-in `k3s`: what it writes into the endpoints
    /// ConfigMap for a given control-plane address and `--cloud-ip`.
    fn endpoints_written(
        ctx: &Ctx<'_>,
        files: &Files,
        control_plane_ip: &str,
        args: &[&str],
    ) -> Result<String, String> {
        let dir = tempfile::tempdir().unwrap();
        let root = camino::Utf8Path::from_path(dir.path()).unwrap();
        let bundle = root.join("bundle");
        files.write_to(&bundle).unwrap();
        std::fs::create_dir_all(bundle.join("images/cloud")).unwrap();
        std::fs::write(bundle.join("images/cloud/cloud.tar"), b"").unwrap();
        std::fs::create_dir_all(root.join("k3s/server")).unwrap();
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        for (name, text) in [("k3s", FAKE_K3S), ("id", "#!/bin/sh\necho 0\n")] {
            crate::atomic::write(&bin.join(name), text.as_bytes(), true).unwrap();
        }
        let listed: Vec<String> = (ctx.profile.enabled().filter(|c| c.role == Role::Cloud))
            .flat_map(|c| c.images.iter().map(|i| i.reference.to_string()))
            .collect();
        std::fs::write(root.join("listed"), listed.join("\n") + "\n").unwrap();
        let out = std::process::Command::new("bash")
            .arg(bundle.join(CLOUD_SCRIPT))
            .args(["--alert-webhook-url", "http://receiver.invalid/hook", "--k3s-data-dir", root.join("k3s").as_str()])
            .args(args)
            .env("PATH", format!("{bin}:{}", std::env::var("PATH").unwrap_or_default()))
            .env("CALLS", root.join("calls"))
            .env("LISTED", root.join("listed"))
            .env("CONTROL_PLANE_IP", control_plane_ip)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        if !out.status.success() {
            return Err(stderr);
        }
        let calls = std::fs::read_to_string(root.join("calls")).unwrap();
        let endpoints = calls.lines().find(|l| l.contains(&format!("create configmap {ENDPOINTS_CONFIGMAP} ")));
        Ok(endpoints.unwrap_or_else(|| panic!("no endpoints ConfigMap among the calls:\n{calls}\n{stderr}")).to_owned())
    }

    #[test]
    fn the_cloud_script_brackets_an_ipv6_cloud_address_for_urls() {
        rendered("local", |ctx, files| {
            let run = |control_plane: &str, args: &[&str]| endpoints_written(ctx, files, control_plane, args);
            let literals = |ip: &str, host: &str| {
                format!("--from-literal={ENV_CLOUD_HOST_IP}={ip} --from-literal={ENV_CLOUD_HOST}={host} ")
            };
            for (control_plane, args, ip, host) in [
                ("10.0.0.1", &[][..], "10.0.0.1", "10.0.0.1"),
                ("2001:db8::10", &[][..], "2001:db8::10", "[2001:db8::10]"),
                ("10.0.0.1", &["--cloud-ip", "fd00::1"][..], "fd00::1", "[fd00::1]"),
                ("2001:db8::10", &["--cloud-ip", "192.0.2.10"][..], "192.0.2.10", "192.0.2.10"),
            ] {
                let written = run(control_plane, args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
                assert!(written.contains(&literals(ip, host)), "{control_plane} {args:?}: {written}");
            }
            let refused = run("10.0.0.1", &["--cloud-ip", "[fd00::1]"]).unwrap_err();
            assert!(refused.contains("--cloud-ip needs an IP address"), "{refused}");
            let none = run("", &[]).unwrap_err();
            assert!(none.contains("found no control-plane node with an InternalIP; pass --cloud-ip IP"), "{none}");
        });
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
    }
}
