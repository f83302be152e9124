//! Each edge's link to the cloud: the byte counters of its interface on the cloud network, read
//! outside every agent (see `e2e::compose::link`), reduced to traffic per minute at steady state and while
//! the edge replays its buffer after a fault, against the per-edge budget.
//!
//! A fault window (`[from, to]`: a cut to its heal, a node stopped to started) and the
//! [`REPLAY_WINDOW_S`] after it are not steady state; the replay rate is taken over that
//! window after each fault, the highest of them reported. The budget holds steady-state
//! traffic, both directions together: a replay is the backlog of an outage, bounded by the
//! buffer, and shown rather than budgeted.

use serde::{Deserialize, Serialize};

use super::{Mark, Verdict};

/// How long after a fault's end its replay is measured: agents retry at most 5 s apart and send
/// a minute of e2e backlog in a few batches.
pub const REPLAY_WINDOW_S: f64 = 30.0;

/// One edge's link over the run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LinkSeries {
    pub node: String,
    /// Steady-state bytes per minute, sent and received together, the edge may use.
    pub budget_bytes_per_min: Option<u64>,
    /// When the link was down or the node off, in the samples' seconds.
    pub faults: Vec<[f64; 2]>,
    pub samples: Vec<LinkSample>,
}

/// The interface's counters at one time (they restart from zero with the node).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
pub struct LinkSample {
    pub t_s: f64,
    pub sent_bytes: u64,
    pub received_bytes: u64,
}

/// Traffic per minute, each direction.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub sent: f64,
    pub received: f64,
}

impl Rate {
    pub fn total(&self) -> f64 {
        self.sent + self.received
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinkSummary {
    /// Seconds of steady state measured.
    pub steady_s: f64,
    pub steady: Option<Rate>,
    /// The highest replay rate after a fault; `None` without a fault (or samples after it).
    pub replay: Option<Rate>,
    /// Steady traffic against the budget; `None` without either.
    pub within_budget: Option<bool>,
}

impl LinkSeries {
    pub fn summary(&self) -> LinkSummary {
        // Each pair of consecutive samples of one counter epoch is an interval.
        let intervals: Vec<(f64, f64, u64, u64)> = self
            .samples
            .windows(2)
            .filter(|w| {
                w[1].t_s > w[0].t_s && w[1].sent_bytes >= w[0].sent_bytes && w[1].received_bytes >= w[0].received_bytes
            })
            .map(|w| (w[0].t_s, w[1].t_s, w[1].sent_bytes - w[0].sent_bytes, w[1].received_bytes - w[0].received_bytes))
            .collect();
        let disturbed = |from: f64, to: f64| self.faults.iter().any(|[a, b]| from < b + REPLAY_WINDOW_S && to > *a);
        let rate = |pick: &mut dyn FnMut(f64, f64) -> bool| {
            let (mut secs, mut sent, mut received) = (0.0, 0u64, 0u64);
            for &(from, to, s, r) in &intervals {
                if pick(from, to) {
                    secs += to - from;
                    sent += s;
                    received += r;
                }
            }
            (secs > 0.0)
                .then(|| (secs, Rate { sent: sent as f64 * 60.0 / secs, received: received as f64 * 60.0 / secs }))
        };
        let steady = rate(&mut |from, to| !disturbed(from, to));
        let replay = self
            .faults
            .iter()
            .filter_map(|[_, end]| {
                rate(&mut |from, to| from >= *end - 1e-9 && to <= end + REPLAY_WINDOW_S).map(|(_, r)| r)
            })
            .max_by(|a, b| a.total().total_cmp(&b.total()));
        let within_budget = self.budget_bytes_per_min.zip(steady).map(|(b, (_, r))| r.total() <= b as f64);
        LinkSummary { steady_s: steady.map_or(0.0, |(s, _)| s), steady: steady.map(|(_, r)| r), replay, within_budget }
    }

    /// The table cells every format shows: steady sent and received, replay sent and received,
    /// the budget.
    pub fn cells(&self, summary: &LinkSummary) -> [String; 5] {
        let dash = || "—".to_string();
        [
            summary.steady.map_or_else(dash, |r| per_min(r.sent)),
            summary.steady.map_or_else(dash, |r| per_min(r.received)),
            summary.replay.map_or_else(dash, |r| per_min(r.sent)),
            summary.replay.map_or_else(dash, |r| per_min(r.received)),
            self.budget_bytes_per_min.map_or_else(dash, |b| per_min(b as f64)),
        ]
    }

    /// Both directions' traffic per minute over each interval, at its end (for plots).
    pub fn rates(&self) -> Vec<(f64, f64)> {
        self.samples
            .windows(2)
            .filter(|w| {
                w[1].t_s > w[0].t_s && w[1].sent_bytes >= w[0].sent_bytes && w[1].received_bytes >= w[0].received_bytes
            })
            .map(|w| {
                let bytes = (w[1].sent_bytes - w[0].sent_bytes + w[1].received_bytes - w[0].received_bytes) as f64;
                (w[1].t_s, bytes * 60.0 / (w[1].t_s - w[0].t_s))
            })
            .collect()
    }

    /// "link edge-1": the JUnit test case name.
    pub fn name(&self) -> String {
        format!("link {}", self.node)
    }

    pub(crate) fn verdict(&self, summary: &LinkSummary) -> Verdict {
        match (summary.within_budget, summary.steady, self.budget_bytes_per_min) {
            (Some(true), _, _) => Verdict { mark: Mark::Pass, text: "within".into() },
            (Some(false), Some(r), Some(b)) => Verdict {
                mark: Mark::Fail,
                text: format!("over: {} > budget {}", per_min(r.total()), per_min(b as f64)),
            },
            (_, None, _) => {
                Verdict { mark: Mark::Warn, text: "no steady-state interval measured: budget not checked".into() }
            }
            _ => Verdict { mark: Mark::Neutral, text: "no budget declared".into() },
        }
    }
}

/// `12.3 KiB/min`.
pub fn per_min(bytes: f64) -> String {
    if bytes >= 1024.0 * 1024.0 {
        format!("{:.2} MiB/min", bytes / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB/min", bytes / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: f64, sent: u64, received: u64) -> LinkSample {
        LinkSample { t_s, sent_bytes: sent, received_bytes: received }
    }

    #[test]
    fn steady_and_replay_are_told_apart_and_a_restart_is_not_a_negative_rate() {
        // 1 KiB/s sent and 0.5 KiB/s received; cut 20–40 s; 6 KiB/s replayed 40–50 s; then steady.
        let mut samples = Vec::new();
        let (mut s, mut r) = (0u64, 0u64);
        for t in 0..=120u64 {
            let (ds, dr) = match t {
                21..=40 => (0, 0),
                41..=50 => (6144, 512),
                _ => (1024, 512),
            };
            if t > 0 {
                s += ds;
                r += dr;
            }
            samples.push(sample(t as f64, s, r));
        }
        // The node restarts at 100 s: its counters begin again.
        let (s100, r100) = (samples[100].sent_bytes, samples[100].received_bytes);
        for x in samples.iter_mut().filter(|x| x.t_s >= 100.0) {
            x.sent_bytes = x.sent_bytes - s100 + 5000;
            x.received_bytes = x.received_bytes - r100 + 5000;
        }
        let link = LinkSeries {
            node: "edge-1".into(),
            budget_bytes_per_min: Some(100 * 1024),
            faults: vec![[20.0, 40.0]],
            samples,
        };
        let sum = link.summary();
        let steady = sum.steady.unwrap();
        assert_eq!((steady.sent, steady.received), (60.0 * 1024.0, 30.0 * 1024.0), "{sum:?}");
        // 0–20 s and 70–120 s but the restart interval.
        assert_eq!(sum.steady_s, 20.0 + 49.0);
        let replay = sum.replay.unwrap();
        // 40–70 s: 10 s at 6 KiB/s and 20 s at 1 KiB/s, per minute.
        assert_eq!(replay.sent, (10.0 * 6144.0 + 20.0 * 1024.0) * 2.0);
        assert_eq!(sum.within_budget, Some(true));
        assert_eq!(link.verdict(&sum).mark, Mark::Pass);
        let tight = LinkSeries { budget_bytes_per_min: Some(80 * 1024), ..link };
        let v = tight.verdict(&tight.summary());
        assert_eq!((v.mark, v.text.as_str()), (Mark::Fail, "over: 90.0 KiB/min > budget 80.0 KiB/min"));
        let unmeasured = LinkSeries { samples: vec![sample(0.0, 0, 0)], ..tight };
        assert_eq!(unmeasured.summary().within_budget, None);
        assert_eq!(unmeasured.verdict(&unmeasured.summary()).mark, Mark::Warn);
    }
}
