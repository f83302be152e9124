//! Alert rules: every alert has promtool cases proving it fires on the intended
//! input and stays silent otherwise, and each case really depends on the rule
//! (mutation check: an always-firing rule breaks the silent case, a never-firing
//! rule breaks the firing case).

use camino::{Utf8Path, Utf8PathBuf};
use serde_json::{Value, json};
use xtask::render::{self, Ctx};
use xtask::stack::{self, Arch};
use xtask::{paths, tools};

const RULES: &str = "prometheus/rules/observability.rules.yml";
const TESTS: &str = "prometheus/rules/observability.test.yml";

fn yaml(text: &str) -> Value {
    serde_yaml_ng::from_str(text).expect("valid YAML")
}

fn promtool_test(dir: &Utf8Path, rules: &Value, tests: &Value) -> Result<(), String> {
    let rules_name = tests["rule_files"][0].as_str().expect("rule_files[0]");
    std::fs::write(dir.join(rules_name), serde_yaml_ng::to_string(rules).unwrap()).unwrap();
    let test_file = dir.join("case.test.yml");
    std::fs::write(&test_file, serde_yaml_ng::to_string(tests).unwrap()).unwrap();
    let promtool = tools::PROMTOOL.find().unwrap_or_else(|e| panic!("{e:#}"));
    let out = std::process::Command::new(promtool.as_str())
        .args(["test", "rules", test_file.as_str()])
        .output()
        .expect("promtool runs");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

/// The test file restricted to one alert's cases, firing or silent.
fn only_cases(tests: &Value, alert: &str, firing: bool) -> (Value, usize) {
    let mut out = tests.clone();
    let mut n = 0;
    let kept: Vec<Value> = tests["tests"]
        .as_array()
        .expect("tests list")
        .iter()
        .filter_map(|t| {
            let cases: Vec<Value> = t["alert_rule_test"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|c| {
                    c["alertname"] == json!(alert)
                        && c["exp_alerts"].as_array().map(|a| !a.is_empty()).unwrap_or(false) == firing
                })
                .cloned()
                .collect();
            n += cases.len();
            (!cases.is_empty()).then(|| {
                let mut t = t.clone();
                t["alert_rule_test"] = json!(cases);
                t
            })
        })
        .collect();
    out["tests"] = json!(kept);
    (out, n)
}

/// The rules with every rule of `alert` given `expr`.
fn with_expr(rules: &Value, alert: &str, expr: &str) -> Value {
    let mut out = rules.clone();
    for g in out["groups"].as_array_mut().expect("groups") {
        for r in g["rules"].as_array_mut().expect("rules") {
            if r["alert"] == json!(alert) {
                r["expr"] = json!(expr);
            }
        }
    }
    out
}

#[test]
fn every_alert_fires_on_its_input_and_is_silent_otherwise() {
    tools::PROMTOOL.find().unwrap_or_else(|e| panic!("{e:#}"));
    let stack = stack::load(&paths::stack_file()).unwrap();
    for profile in ["upstream", "local"] {
        let ctx = Ctx::new(&stack, profile, Arch::Amd64).unwrap();
        let files = render::render(&ctx).unwrap();
        let rules = yaml(files.get(RULES).expect("rules file rendered"));
        let tests = yaml(files.get(TESTS).expect("rule tests rendered"));
        let tmp = tempfile::tempdir().unwrap();
        let dir = Utf8PathBuf::from_path_buf(tmp.path().to_path_buf()).unwrap();

        promtool_test(&dir, &rules, &tests).unwrap_or_else(|e| panic!("{profile}: the rendered rule tests fail:\n{e}"));

        let mut alerts: Vec<String> = rules["groups"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|g| g["rules"].as_array().unwrap().iter())
            .filter_map(|r| r["alert"].as_str().map(str::to_string))
            .collect();
        alerts.sort();
        alerts.dedup();
        assert!(alerts.len() >= 5, "{profile}: only {} alerts", alerts.len());
        for alert in &alerts {
            let (fire, n_fire) = only_cases(&tests, alert, true);
            assert!(n_fire > 0, "{profile}: {alert} has no case where it fires");
            promtool_test(&dir, &rules, &fire).unwrap_or_else(|e| panic!("{profile}: {alert} firing cases fail:\n{e}"));
            let never = with_expr(&rules, alert, "vector(1) > 2");
            assert!(
                promtool_test(&dir, &never, &fire).is_err(),
                "{profile}: {alert}'s firing case passes even when the rule never fires"
            );

            if alert == "Watchdog" {
                continue; // always fires by design: it has no silent case
            }
            let (silent, n_silent) = only_cases(&tests, alert, false);
            assert!(n_silent > 0, "{profile}: {alert} has no case where it stays silent");
            promtool_test(&dir, &rules, &silent)
                .unwrap_or_else(|e| panic!("{profile}: {alert} silent cases fail:\n{e}"));
            let always = with_expr(&rules, alert, "vector(1)");
            assert!(
                promtool_test(&dir, &always, &silent).is_err(),
                "{profile}: {alert}'s silent case passes even when the rule always fires"
            );
        }
    }
}

#[test]
fn prometheus_rule_object_carries_the_same_groups_as_the_rules_file() {
    let stack = stack::load(&paths::stack_file()).unwrap();
    let ctx = Ctx::new(&stack, "upstream", Arch::Amd64).unwrap();
    let files = render::render(&ctx).unwrap();
    let rules = yaml(files.get(RULES).unwrap());
    let object = yaml(files.get("manifests/40-prometheusrule.yaml").expect("PrometheusRule rendered"));
    assert_eq!(object["spec"]["groups"], rules["groups"]);
    assert_eq!(object["kind"], json!("PrometheusRule"));
}
