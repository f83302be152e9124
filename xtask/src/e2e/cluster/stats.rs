//! A container's CPU and memory as its node's kubelet reports them on `/metrics/resource`, the
//! endpoint metrics-server reads (on KubeEdge through cloudcore's tunnel, as here): cumulative CPU
//! seconds and the working set, each sample stamped with the time the kubelet took it.

use std::collections::BTreeMap;

/// One container's usage at one moment, as the kubelet measured it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub cpu_seconds: f64,
    pub working_set_bytes: f64,
    /// When the kubelet took the CPU sample, in milliseconds since the epoch.
    pub at_ms: i64,
}

const CPU: &str = "container_cpu_usage_seconds_total";
const MEMORY: &str = "container_memory_working_set_bytes";

/// The usage of the container named `container` in a pod of `namespace`, from the text of a
/// `/metrics/resource` answer; `None` when the answer has no such container (not running yet, or
/// gone) or lacks its CPU or memory sample or their timestamp. Pure.
pub fn container_usage(text: &str, namespace: &str, container: &str) -> Option<Usage> {
    let mut cpu = None;
    let mut memory = None;
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(s) = sample(line) else { continue };
        if s.labels.get("namespace").map(String::as_str) != Some(namespace)
            || s.labels.get("container").map(String::as_str) != Some(container)
        {
            continue;
        }
        match s.name {
            CPU => cpu = Some((s.value, s.at_ms?)),
            MEMORY => memory = Some(s.value),
            _ => {}
        }
    }
    let (cpu_seconds, at_ms) = cpu?;
    Some(Usage { cpu_seconds, working_set_bytes: memory?, at_ms })
}

/// One line of the text exposition format: `name{labels} value [timestamp]`.
struct Sample<'a> {
    name: &'a str,
    labels: BTreeMap<String, String>,
    value: f64,
    at_ms: Option<i64>,
}

fn sample(line: &str) -> Option<Sample<'_>> {
    let open = line.find('{')?;
    let (labels, rest) = labels(&line[open + 1..])?;
    let mut fields = rest.split_whitespace();
    let value = fields.next()?.parse().ok()?;
    let at_ms = fields.next().and_then(|t| t.parse().ok());
    Some(Sample { name: &line[..open], labels, value, at_ms })
}

/// The label pairs up to the closing `}` (values with `\"`, `\\` and `\n` escapes), and what follows.
fn labels(s: &str) -> Option<(BTreeMap<String, String>, &str)> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    loop {
        rest = rest.trim_start_matches([',', ' ']);
        if let Some(after) = rest.strip_prefix('}') {
            return Some((out, after));
        }
        let eq = rest.find("=\"")?;
        let key = rest[..eq].to_string();
        let mut value = String::new();
        let mut chars = rest[eq + 2..].char_indices();
        let end = loop {
            match chars.next()? {
                (_, '\\') => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    c => value.push(c),
                },
                (i, '"') => break eq + 2 + i + 1,
                (_, c) => value.push(c),
            }
        };
        out.insert(key, value);
        rest = &rest[end..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"# HELP container_cpu_usage_seconds_total [STABLE] Cumulative cpu time consumed by the container in core-seconds
# TYPE container_cpu_usage_seconds_total counter
container_cpu_usage_seconds_total{container="edge-node-exporter",namespace="observability",pod="edge-node-exporter-7x2kq"} 0.412345 1765080000123
container_cpu_usage_seconds_total{container="edge-node-exporter",namespace="other",pod="x"} 9 1765080000123
container_cpu_usage_seconds_total{container="odd",namespace="observability",pod="a\"b,c=\"d"} 1 1765080000123
# TYPE container_memory_working_set_bytes gauge
container_memory_working_set_bytes{container="edge-node-exporter",namespace="observability",pod="edge-node-exporter-7x2kq"} 8.192e+06 1765080000456
node_cpu_usage_seconds_total 12.5 1765080000000
"#;

    #[test]
    fn a_containers_usage_is_read_with_the_kubelets_own_time() {
        assert_eq!(
            container_usage(ANSWER, "observability", "edge-node-exporter"),
            Some(Usage { cpu_seconds: 0.412345, working_set_bytes: 8.192e6, at_ms: 1765080000123 })
        );
        // Escaped quotes and separators inside a value do not end it.
        let odd = format!(
            "{ANSWER}container_memory_working_set_bytes{{container=\"odd\",namespace=\"observability\",pod=\"a\\\"b,c=\\\"d\"}} 5 1\n"
        );
        assert_eq!(container_usage(&odd, "observability", "odd").map(|u| u.working_set_bytes), Some(5.0));
        // Not there, or half there: no reading rather than a wrong one.
        assert_eq!(container_usage(ANSWER, "observability", "prometheus"), None);
        assert_eq!(container_usage(ANSWER, "observability", "odd"), None, "no memory sample");
        let untimed = ANSWER.replace("0.412345 1765080000123", "0.412345");
        assert_eq!(container_usage(&untimed, "observability", "edge-node-exporter"), None, "no timestamp");
    }
}
