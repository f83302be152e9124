//! `charts check` on crafted `helm template` output (fixtures/charts/README.md: written by hand, not
//! recorded; no chart can be fetched here). The crafted output passes; each mutation a real chart or
//! values change could make fails with the object and the fix named.

use xtask::charts::{self, Expect, Problem};
use xtask::paths;
use xtask::render::{self, Ctx};
use xtask::stack::{self, Arch};

fn rendered() -> Vec<(String, String)> {
    charts::read_rendered(&paths::root().join("fixtures/charts/upstream")).unwrap_or_else(|e| panic!("{e:#}"))
}

fn problems(rendered: &[(String, String)]) -> Vec<Problem> {
    let stack = stack::load(&paths::stack_file()).unwrap_or_else(|e| panic!("{e:#}"));
    let ctx = Ctx::new(&stack, "upstream", Arch::Amd64).unwrap_or_else(|e| panic!("{e:#}"));
    let files = render::render(&ctx).unwrap_or_else(|e| panic!("{e:#}"));
    let expect = Expect::new(&ctx, &files).unwrap_or_else(|e| panic!("{e:#}"));
    charts::check(&expect, rendered).unwrap_or_else(|e| panic!("{e:#}"))
}

/// The crafted output with `from` replaced by `to` in one release's file (which must contain it).
fn mutated(release: &str, from: &str, to: &str) -> Vec<(String, String)> {
    let mut r = rendered();
    let (_, text) = r.iter_mut().find(|(n, _)| n == release).unwrap_or_else(|| panic!("no {release}.yaml"));
    assert!(text.contains(from), "{release}.yaml has no {from:?}");
    *text = text.replacen(from, to, 1);
    r
}

#[test]
fn the_crafted_render_of_every_chart_passes() {
    let r = rendered();
    assert_eq!(r.len(), 5, "one file per chart of the upstream profile");
    assert_eq!(problems(&r), vec![]);
}

#[test]
fn each_broken_render_is_refused_naming_the_object() {
    let edge_toleration =
        "      tolerations:\n        - { key: node-role.kubernetes.io/edge, operator: Exists, effect: NoSchedule }\n";
    // (case, the render, the object blamed, what the message says)
    type Case<'a> = (&'a str, Vec<(String, String)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "an image the bundle lacks",
            mutated("kps", "kube-state-metrics:v2.20.0", "kube-state-metrics:v2.19.0"),
            "Deployment/kps-kube-state-metrics container kube-state-metrics",
            "kube-state-metrics:v2.19.0 is not in the bundle",
        ),
        (
            "an operator-made pod's image the bundle lacks",
            mutated("kps", "prometheus/prometheus:v3.14.0", "prometheus/prometheus:v3.13.0"),
            "Prometheus/kps-prometheus",
            "is not in the bundle",
        ),
        (
            "a Docker Hub short name is read as docker.io and checked",
            mutated("jaeger", "jaegertracing/jaeger:2.19.0", "jaegertracing/jaeger:2.18.0"),
            "Deployment/jaeger container jaeger",
            "jaegertracing/jaeger:2.18.0 is not in the bundle",
        ),
        (
            "a cloud pod tolerating every taint (node-exporter charts' default)",
            mutated(
                "blackbox-exporter",
                "      containers:\n",
                "      tolerations:\n        - operator: Exists\n      containers:\n",
            ),
            "Deployment/blackbox-exporter",
            "tolerates the edge taint",
        ),
        (
            "an edge pod without the toleration",
            mutated("alloy-edge", edge_toleration, ""),
            "DaemonSet/alloy-edge",
            "does not tolerate the edge taint",
        ),
        (
            "an edge pod free to run on cloud nodes",
            mutated("alloy-edge", "      nodeSelector:\n        node-role.kubernetes.io/edge: \"\"\n", ""),
            "DaemonSet/alloy-edge",
            "may run on cloud nodes",
        ),
        (
            "a container without a memory limit",
            mutated("kps", "limits: { cpu: 50m, memory: 64Mi }", "limits: { cpu: 50m }"),
            "Deployment/kps-grafana container grafana-sc-dashboard",
            "resources.limits has no memory",
        ),
        (
            "an operator-made pod without limits",
            mutated("kps", "    limits: { cpu: 100m, memory: 128Mi }\n---", "    requests: { cpu: 100m }\n---"),
            "Alertmanager/kps-alertmanager",
            "spec.resources.limits has no cpu or memory",
        ),
        (
            "the config-reloader sidecars without a limit",
            mutated("kps", "--config-reloader-memory-limit=50Mi", "--config-reloader-memory-limit=0"),
            "Deployment/kps-operator",
            "config-reloader sidecar",
        ),
        (
            "a Service our configs dial is renamed by the chart",
            mutated(
                "blackbox-exporter",
                "  name: blackbox-exporter\n  namespace: observability\nspec:\n  ports",
                "  name: kps-blackbox\n  namespace: observability\nspec:\n  ports",
            ),
            "Service/blackbox-exporter",
            "dials blackbox-exporter.observability.svc",
        ),
        (
            "the NodePort the edges push logs to is gone",
            mutated("loki", "  type: NodePort\n", "  type: ClusterIP\n")
                .into_iter()
                .map(|(r, t)| (r, t.replace(", nodePort: 31100", "")))
                .collect(),
            "NodePort 31100",
            "the edge log agents' push",
        ),
    ];
    for (case, rendered, object, message) in cases {
        let found = problems(&rendered);
        assert!(
            found.iter().any(|p| p.object == object && p.message.contains(message)),
            "{case}: expected {object}: …{message}…, got {found:#?}"
        );
    }
}

#[test]
fn a_missing_chart_output_or_an_unknown_release_is_refused() {
    let mut r = rendered();
    r.retain(|(n, _)| n != "jaeger");
    let found = problems(&r);
    assert!(found.iter().any(|p| p.release == "jaeger" && p.message.contains("no rendered output")), "{found:#?}");

    let stack = stack::load(&paths::stack_file()).unwrap_or_else(|e| panic!("{e:#}"));
    let ctx = Ctx::new(&stack, "upstream", Arch::Amd64).unwrap_or_else(|e| panic!("{e:#}"));
    let files = render::render(&ctx).unwrap_or_else(|e| panic!("{e:#}"));
    let expect = Expect::new(&ctx, &files).unwrap_or_else(|e| panic!("{e:#}"));
    let mut r = rendered();
    r.push(("grafana".into(), "kind: Service\n".into()));
    let err = charts::check(&expect, &r).map(|_| ()).unwrap_err();
    assert!(format!("{err:#}").contains("grafana.yaml: no chart of the profile has the release"), "{err:#}");
    r.pop();
    r.push(("loki".into(), "a: [\n".into()));
    r.retain(|(n, t)| n != "loki" || t.starts_with('a'));
    let err = charts::check(&expect, &r).map(|_| ()).unwrap_err();
    assert!(format!("{err:#}").contains("loki.yaml: document 1 is not valid YAML"), "{err:#}");
}
