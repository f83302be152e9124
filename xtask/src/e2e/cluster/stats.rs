//! A container's CPU and memory as its node's containerd reads them from the container's cgroup
//! (`ctr task metrics`, cgroup v1 or v2), the figures the kubelet's `/metrics/resource` (and so
//! metrics-server) reports: cumulative CPU time and the working set. Read on the node itself,
//! never across its link, so the link's figures stay the edge's own traffic.

use serde_json::Value;

/// One container's usage at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub cpu_ns: u64,
    /// Usage less inactive file pages, as the kubelet computes it.
    pub working_set_bytes: u64,
    /// When it was read, in nanoseconds since the epoch (the node's clock, just before the read).
    pub at_ns: u128,
}

/// The script a node runs for one container: the time, then containerd's metrics of the task
/// `$1` as JSON.
pub const SCRIPT: &str = "date +%s%N; exec ctr -n k8s.io task metrics --format json \"$1\" 2>/dev/null";

/// The usage in what [`SCRIPT`] printed; `None` for anything else (the task gone, a half answer).
/// Pure.
pub fn usage(out: &str) -> Option<Usage> {
    let (time, json) = out.trim_start().split_once('\n')?;
    let at_ns = time.trim().parse().ok()?;
    let m: Value = serde_json::from_str(json).ok()?;
    let n = |v: &Value| v.as_u64();
    let (cpu_ns, usage, inactive) = if m["cpu"]["usage_usec"].is_u64() {
        // cgroup v2
        let memory = &m["memory"];
        (n(&m["cpu"]["usage_usec"])?.checked_mul(1000)?, n(&memory["usage"])?, n(&memory["inactive_file"]).unwrap_or(0))
    } else {
        // cgroup v1
        let memory = &m["memory"];
        (n(&m["cpu"]["usage"]["total"])?, n(&memory["usage"]["usage"])?, n(&memory["total_inactive_file"]).unwrap_or(0))
    };
    Some(Usage { cpu_ns, working_set_bytes: usage.saturating_sub(inactive), at_ns })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_cgroup_versions_give_cpu_and_the_working_set() {
        let v1 = "1796636841372219482\n{\"pids\":{\"current\":7},\"cpu\":{\"usage\":{\"total\":1913892684,\"kernel\":560000000}},\
                  \"memory\":{\"inactive_file\":94208,\"total_inactive_file\":94208,\"usage\":{\"limit\":67108864,\"usage\":25808896}}}\n";
        assert_eq!(
            usage(v1),
            Some(Usage { cpu_ns: 1913892684, working_set_bytes: 25808896 - 94208, at_ns: 1796636841372219482 })
        );
        let v2 = "1796636841372219482\n{\"cpu\":{\"usage_usec\":1913892,\"user_usec\":1350000},\
                  \"memory\":{\"usage\":25808896,\"usage_limit\":67108864,\"inactive_file\":94208}}";
        assert_eq!(
            usage(v2),
            Some(Usage { cpu_ns: 1913892000, working_set_bytes: 25808896 - 94208, at_ns: 1796636841372219482 })
        );
        // The task gone (ctr printed nothing), or an answer without the figures: no reading.
        assert_eq!(usage("1796636841372219482\n"), None);
        assert_eq!(usage("1796636841372219482\n{\"pids\":{}}"), None);
        assert_eq!(usage(""), None);
    }
}
