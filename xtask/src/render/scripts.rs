//! Install scripts for kubeprepare's packages: `install-observability.sh` on the
//! k3s server node and `install-observability-edge.sh` on edge nodes.
//!
//! Bash is text, so these are built as text, but only from data (component
//! names, file lists, namespaces, ports); every interpolated value is quoted by
//! [`quote`]. The logic is deliberately small; shellcheck checks both scripts.

use std::fmt::Write;

use anyhow::Result;

use super::manifests::{K3S_STATIC_CHARTS_DIR, release_name};
use super::names::{ENDPOINTS_CONFIGMAP, ENV_CLOUD_HOST_IP};
use super::output::{Comment, with_header};
use super::{Ctx, Files};
use crate::stack::Role;

/// Where each component's image tar sits in the bundle.
pub fn image_tar(role: Role, component: &str) -> String {
    format!("images/{role}/{component}.tar")
}

/// Single-quote a value for bash.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn array(name: &str, items: &[String]) -> String {
    let mut out = format!("{name}=(");
    for item in items {
        out.push_str("\n  ");
        out.push_str(&quote(item));
    }
    out.push_str(if items.is_empty() { ")\n" } else { "\n)\n" });
    out
}

const PRELUDE: &str = r#"set -euo pipefail

BUNDLE_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

die() {
  echo "error: $*" >&2
  exit 1
}

log() {
  echo "==> $*" >&2
}

require_files() {
  local missing=()
  local f
  for f in "$@"; do
    [[ -e "$BUNDLE_DIR/$f" ]] || missing+=("$f")
  done
  if ((${#missing[@]})); then
    printf 'error: missing from the bundle at %s:\n' "$BUNDLE_DIR" >&2
    printf '  %s\n' "${missing[@]}" >&2
    exit 1
  fi
}
"#;

fn cloud_script(ctx: &Ctx<'_>, files: &Files) -> String {
    let s = ctx.settings();
    let images: Vec<String> = ctx
        .profile
        .enabled()
        .filter(|c| c.role == Role::Cloud)
        .map(|c| image_tar(Role::Cloud, c.name.as_str()))
        .collect();
    let charts: Vec<String> = ctx
        .profile
        .enabled()
        .filter_map(|c| c.chart.as_ref())
        .map(|ch| format!("charts/{}", ch.archive_name()))
        .collect();
    let helm_releases: Vec<String> =
        ctx.profile.enabled().filter(|c| c.chart.is_some()).map(|c| release_name(c).to_string()).collect();
    let all_manifests: Vec<String> =
        files.iter().map(|(p, _)| p.as_str().to_string()).filter(|p| p.starts_with("manifests/")).collect();
    let (crd_manifests, manifests): (Vec<String>, Vec<String>) =
        all_manifests.into_iter().partition(|p| p.ends_with("prometheusrule.yaml"));

    let mut out = String::from("#!/usr/bin/env bash\n");
    out.push_str(&with_header(
        Comment::Hash,
        "#\n# Deploys kubeprepare's observability stack on the k3s server node, offline:\n\
         # imports the cloud images, serves the charts to k3s' helm-controller, writes the\n\
         # endpoints edge agents push to, applies the manifests and waits until ready.\n\
         # Safe to run again. Usage: install-observability.sh [--cloud-ip IP] [--timeout SECONDS]\n",
    ));
    out.push_str(PRELUDE);
    let _ = write!(
        out,
        "\nNAMESPACE={ns}\nCHARTS_DIR={charts_dir}\nCLOUD_IP=\"\"\nTIMEOUT=600\n\n",
        ns = quote(ctx.namespace()),
        charts_dir = quote(K3S_STATIC_CHARTS_DIR)
    );
    out.push_str(&array("IMAGES", &images));
    out.push_str(&array("CHARTS", &charts));
    out.push_str(&array("HELM_RELEASES", &helm_releases));
    out.push_str(&array("MANIFESTS", &manifests));
    out.push_str("# Objects whose kinds come from the charts' CRDs: applied once those exist.\n");
    out.push_str(&array("CRD_MANIFESTS", &crd_manifests));
    let _ = write!(
        out,
        r#"
usage() {{
  echo "usage: install-observability.sh [--cloud-ip IP] [--timeout SECONDS]"
  echo "  --cloud-ip IP   address edge agents push logs and traces to (default: this node's InternalIP)"
  echo "  --timeout S     seconds to wait for each chart and workload (default: 600)"
}}

while (($#)); do
  case "$1" in
    --cloud-ip) [[ $# -ge 2 ]] || die "--cloud-ip needs an IP address"; CLOUD_IP="$2"; shift 2 ;;
    --timeout) [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || die "--timeout needs a number of seconds"; TIMEOUT="$2"; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

[[ "$(id -u)" -eq 0 ]] || die "run as root (k3s' containerd and static charts need it)"
command -v k3s >/dev/null || die "k3s is not installed on this node; install kubeprepare's cloud package first"
kubectl() {{ k3s kubectl "$@"; }}

require_files "${{IMAGES[@]}}" "${{CHARTS[@]}}" "${{MANIFESTS[@]}}" "${{CRD_MANIFESTS[@]}}"

log "importing ${{#IMAGES[@]}} image archive(s) into k3s' containerd"
for tar in "${{IMAGES[@]}}"; do
  k3s ctr images import "$BUNDLE_DIR/$tar" >/dev/null
done

if ((${{#CHARTS[@]}})); then
  log "serving ${{#CHARTS[@]}} chart(s) to the helm-controller from $CHARTS_DIR"
  for chart in "${{CHARTS[@]}}"; do
    install -D -m 0644 "$BUNDLE_DIR/$chart" "$CHARTS_DIR/$(basename "$chart")"
  done
fi

if [[ -z "$CLOUD_IP" ]]; then
  CLOUD_IP="$(kubectl get nodes -l node-role.kubernetes.io/control-plane -o jsonpath='{{.items[0].status.addresses[?(@.type=="InternalIP")].address}}')"
  [[ -n "$CLOUD_IP" ]] || die "cannot find this node's InternalIP; pass --cloud-ip IP"
fi
log "edge agents will push to $CLOUD_IP"

kubectl apply -f "$BUNDLE_DIR/${{MANIFESTS[0]}}" >/dev/null
kubectl -n "$NAMESPACE" create configmap {endpoints} --from-literal={env}="$CLOUD_IP" \
  --dry-run=client -o yaml | kubectl apply -f - >/dev/null

# cloudcore's metrics listen on 127.0.0.1:{monitor} unless commonConfig.monitorServer says
# otherwise. keadm's chart writes no commonConfig, so adding that top-level key is a
# structural change; an existing commonConfig is left to the operator.
if kubectl -n kubeedge get configmap cloudcore >/dev/null 2>&1; then
  current="$(kubectl -n kubeedge get configmap cloudcore -o jsonpath='{{.data.cloudcore\.yaml}}')"
  wanted="$CLOUD_IP:{monitor}"
  if grep -q '^commonConfig:' <<<"$current"; then
    grep -q "bindAddress: \"\{{0,1\}}$wanted" <<<"$current" ||
      echo "warning: cloudcore has its own commonConfig; set commonConfig.monitorServer.bindAddress to $wanted by hand" >&2
  else
    log "exposing cloudcore's metrics on $wanted"
    tmp="$(mktemp)"
    trap 'rm -f "$tmp"' EXIT
    printf '%s\ncommonConfig:\n  monitorServer:\n    bindAddress: "%s"\n' "$current" "$wanted" >"$tmp"
    kubectl -n kubeedge create configmap cloudcore --from-file=cloudcore.yaml="$tmp" \
      --dry-run=client -o yaml | kubectl apply -f - >/dev/null
    kubectl -n kubeedge rollout restart deployment/cloudcore >/dev/null
  fi
else
  echo "warning: no cloudcore ConfigMap in namespace kubeedge; cloudcore metrics stay off" >&2
fi

log "applying ${{#MANIFESTS[@]}} manifest(s)"
for m in "${{MANIFESTS[@]}}"; do
  kubectl apply -f "$BUNDLE_DIR/$m" >/dev/null
done

for release in "${{HELM_RELEASES[@]}}"; do
  log "waiting for chart $release (helm-controller job helm-install-$release)"
  kubectl -n kube-system wait --for=condition=complete "job/helm-install-$release" --timeout="${{TIMEOUT}}s" >/dev/null ||
    die "chart $release did not install in ${{TIMEOUT}}s: kubectl -n kube-system logs job/helm-install-$release"
done

if ((${{#CRD_MANIFESTS[@]}})); then
  kubectl wait --for=condition=established crd/prometheusrules.monitoring.coreos.com --timeout="${{TIMEOUT}}s" >/dev/null ||
    die "the PrometheusRule CRD is not established; check the kube-prometheus-stack chart"
  for m in "${{CRD_MANIFESTS[@]}}"; do
    kubectl apply -f "$BUNDLE_DIR/$m" >/dev/null
  done
fi

log "waiting for the cloud workloads in $NAMESPACE"
kubectl -n "$NAMESPACE" wait --for=condition=Available deployment --all --timeout="${{TIMEOUT}}s" >/dev/null ||
  die "some deployments are not available: kubectl -n $NAMESPACE get deployments"
for sts in $(kubectl -n "$NAMESPACE" get statefulsets -o name); do
  kubectl -n "$NAMESPACE" rollout status "$sts" --timeout="${{TIMEOUT}}s" >/dev/null ||
    die "$sts is not ready: kubectl -n $NAMESPACE describe $sts"
done
# Edge DaemonSets become ready as edge nodes join; report, do not block on offline nodes.
kubectl -n "$NAMESPACE" get daemonsets >&2
log "observability is installed"
"#,
        endpoints = ENDPOINTS_CONFIGMAP,
        env = ENV_CLOUD_HOST_IP,
        monitor = s.cloudcore.monitor,
    );
    out
}

fn edge_script(ctx: &Ctx<'_>) -> String {
    let images: Vec<String> = ctx.profile.edge_components().map(|c| image_tar(Role::Edge, c.name.as_str())).collect();
    let mut out = String::from("#!/usr/bin/env bash\n");
    out.push_str(&with_header(
        Comment::Hash,
        "#\n# Prepares an edge node for kubeprepare's observability stack, offline: imports the\n\
         # edge images into containerd (k8s.io) and turns on what edgecore needs (edgeStream,\n\
         # metaServer on loopback, the kubelet read-only port). Safe to run again.\n\
         # Usage: install-observability-edge.sh [--print-join-args]\n",
    ));
    out.push_str(PRELUDE);
    out.push_str("\nEDGECORE_CONFIG=/etc/kubeedge/config/edgecore.yaml\nSET_FILE=kubeedge/keadm-join-set.txt\nPATCH_FILE=kubeedge/edgecore-patch.yaml\n\n");
    out.push_str(&array("IMAGES", &images));
    out.push_str(
        r#"
usage() {
  echo "usage: install-observability-edge.sh [--print-join-args]"
  echo "  --print-join-args   print the keadm join --set arguments edgecore needs, and exit"
}

# `keadm join --set` arguments, one per line, for kubeprepare's install.sh to join with.
print_join_args() {
  local line
  while IFS= read -r line; do
    [[ -z "$line" || "$line" == \#* ]] || printf -- '--set %s\n' "$line"
  done <"$BUNDLE_DIR/$SET_FILE"
}

case "${1:-}" in
  --print-join-args) require_files "$SET_FILE"; print_join_args; exit 0 ;;
  -h | --help) usage; exit 0 ;;
  "") ;;
  *) die "unknown argument: $1 (see --help)" ;;
esac

[[ "$(id -u)" -eq 0 ]] || die "run as root (containerd and edgecore need it)"
command -v ctr >/dev/null || die "ctr (containerd) is not installed; install kubeprepare's edge package first"
require_files "${IMAGES[@]}" "$SET_FILE" "$PATCH_FILE"

log "importing ${#IMAGES[@]} image archive(s) into containerd (namespace k8s.io)"
for tar in "${IMAGES[@]}"; do
  ctr -n k8s.io images import "$BUNDLE_DIR/$tar" >/dev/null
done

if [[ ! -f "$EDGECORE_CONFIG" ]]; then
  log "edgecore is not joined yet: join with these arguments (see --print-join-args):"
  print_join_args >&2
  exit 0
fi

# A joined node: deep-merge the patch into edgecore.yaml with a real YAML parser.
if ! python3 -c 'import yaml' 2>/dev/null; then
  die "edgecore is already joined and no YAML tool is here (python3 with PyYAML); install python3-yaml, or re-join with: $(print_join_args | tr '\n' ' ')"
fi

merged="$(mktemp)"
trap 'rm -f "$merged"' EXIT
python3 - "$EDGECORE_CONFIG" "$BUNDLE_DIR/$PATCH_FILE" "$merged" <<'PY'
import sys, yaml
def merge(base, patch):
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base
with open(sys.argv[1]) as f:
    config = yaml.safe_load(f)
with open(sys.argv[2]) as f:
    patch = yaml.safe_load(f)
with open(sys.argv[3], "w") as f:
    yaml.safe_dump(merge(config, patch), f, default_flow_style=False, sort_keys=False)
PY

if python3 -c 'import sys, yaml; a, b = (yaml.safe_load(open(p)) for p in sys.argv[1:]); sys.exit(a != b)' "$EDGECORE_CONFIG" "$merged"; then
  log "edgecore is already configured"
  exit 0
fi
cp -p "$EDGECORE_CONFIG" "$EDGECORE_CONFIG.bak-observability"
install -m 0644 "$merged" "$EDGECORE_CONFIG"
log "edgecore configured (previous config in $EDGECORE_CONFIG.bak-observability); restarting edgecore"
systemctl restart edgecore
"#,
    );
    out
}

pub fn render(ctx: &Ctx<'_>, files: &mut Files) -> Result<()> {
    let cloud = cloud_script(ctx, files);
    files.add("scripts/install-observability.sh", cloud)?;
    files.add("scripts/install-observability-edge.sh", edge_script(ctx))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Arch;

    #[test]
    fn scripts_name_every_image_tar_and_start_strict() {
        let stack = crate::stack::load(&crate::paths::stack_file()).unwrap();
        for profile in ["upstream", "local"] {
            let ctx = Ctx::new(&stack, profile, Arch::Amd64).unwrap();
            let files = crate::render::render(&ctx).unwrap();
            let cloud = files.get("scripts/install-observability.sh").unwrap();
            let edge = files.get("scripts/install-observability-edge.sh").unwrap();
            for c in ctx.profile.enabled() {
                let (script, role) = if c.role == Role::Cloud { (cloud, Role::Cloud) } else { (edge, Role::Edge) };
                assert!(script.contains(&quote(&image_tar(role, c.name.as_str()))), "{profile}: {} missing", c.name);
            }
            for s in [cloud, edge] {
                assert!(s.starts_with("#!/usr/bin/env bash\n"));
                assert!(s.contains("\nset -euo pipefail\n"));
                assert!(!s.contains("0.0.0.0"));
            }
        }
    }

    #[test]
    fn quoting_survives_single_quotes() {
        assert_eq!(quote("a'b"), r"'a'\''b'");
    }
}
