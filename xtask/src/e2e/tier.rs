//! The seam between the scenarios and a tier: what the runner and the samplers ask of a topology
//! once it is up. The compose tier ([`super::compose`]) and the kubernetes tier
//! ([`super::cluster::tier`]) implement it; nothing above it knows of
//! containers, networks or clusters. How a tier comes up is its own (the compose tier's `start`
//! and [`Tier::ready`]); everything after that goes through here.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Instant;

use anyhow::Result;

use super::scenario::{Fault, Signal};

/// An edge component whose memory and CPU are sampled against its budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Measured {
    pub component: String,
    pub node: String,
    /// What the tier calls it (a container name): the key of its samples.
    pub container: String,
}

/// One resource reading of a [`Measured`] component.
#[derive(Debug, Clone, Copy)]
pub struct Reading {
    pub memory_bytes: u64,
    /// CPU time used since it started, in nanoseconds.
    pub cpu_total_ns: u64,
    /// When the reading was taken (its rate is computed between two of them).
    pub at: Instant,
    /// Under qemu: the emulator's share and the guest's, when they could be told apart.
    pub qemu: Option<QemuSplit>,
}

/// The moment of this process' clock at which the wall-clock time `taken` was (a reading's own
/// time, which may be well before its answer arrived); now, if `taken` is not in the past.
pub fn instant_of(taken: std::time::SystemTime) -> Instant {
    let age = std::time::SystemTime::now().duration_since(taken).unwrap_or_default();
    Instant::now().checked_sub(age).unwrap_or_else(Instant::now)
}

/// A topology that is up, as the scenarios use it.
pub trait Tier: Send + Sync {
    /// What the topology gives scenarios (read by `scenario::missing_requirement` and the log
    /// store's choice).
    fn provides(&self) -> &BTreeSet<String>;

    /// Why a scenario needing `missing` (not [`Tier::provides`]) does not run here.
    fn not_run_reason(&self, missing: &str) -> String {
        super::scenario::not_run_reason(missing)
    }

    /// The edge nodes, in order.
    fn nodes(&self) -> Vec<String>;

    /// Finish bringing the topology up (what must start last starts once the rest answer) and
    /// wait until every component answers its readiness probe; fail when one has exited.
    fn ready(&self) -> impl Future<Output = Result<()>> + Send;

    /// `http://<address>:<port>` of a cloud component's HTTP port, as the harness reaches it.
    fn cloud_url(&self, component: &str) -> impl Future<Output = Result<String>> + Send;

    /// What `node`'s workload wrote (its pod log, or its record of the spans it sent), read on
    /// the node itself, outside every agent.
    fn written(&self, node: &str, signal: Signal) -> impl Future<Output = Result<String>> + Send;

    /// Inject a fault, or undo one (`start_node`, `heal_link`).
    fn inject(&self, fault: &Fault) -> impl Future<Output = Result<()>> + Send;

    /// The last `lines` of the logs of a component, or of every container of a node: a
    /// file-safe name for each (unique within the run) and its text.
    fn logs(&self, name: &str, lines: usize) -> impl Future<Output = Result<Vec<(String, String)>>> + Send;

    /// The edge components sampled against their budgets.
    fn measured(&self) -> Vec<Measured>;

    /// One reading of a measured component; `None` when it is not running.
    fn read(&self, m: &Measured, emulated: bool) -> impl Future<Output = Result<Option<Reading>>> + Send;

    /// Bytes `node` has sent and received over its link to the cloud so far.
    fn link_counters(&self, node: &str) -> impl Future<Output = Result<(u64, u64)>> + Send;

    /// Every image pulled since `since` (unix seconds): the run must show none.
    fn pulls_since(&self, since: i64) -> impl Future<Output = Result<Vec<String>>> + Send;
}

/// Resident memory under qemu-user: qemu's (at least) and the guest program's anonymous memory (at most).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QemuSplit {
    pub qemu_bytes: u64,
    pub guest_bytes: u64,
}
