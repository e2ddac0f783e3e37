//! `cairn chaos`: failure-injection runs with a verdict (issue 9). A seeded workload of
//! KV reads, writes and CAS runs through several nodes while a seeded schedule injects
//! faults; afterwards the history is checked for linearizability per key
//! (`protocol::linearizability`), acknowledged writes are looked for on every node, and
//! the figures and a picture are written. See `target.rs` for the system-under-test
//! interface.
//!
//! The parts, each driving only a `&mut dyn Cluster` so that any target works:
//! - `workload`: worker threads doing seeded operations through `KvClient`s;
//! - `history`: what each operation did and when, its JSON-lines file and its
//!   conversion to the checker's operations;
//! - `schedule`: the seeded fault plan and its execution against the cluster;
//! - `verdict`: convergence, final reads, the linearizability check, lost writes and
//!   the figures, rendered as one verdict line;
//! - `report`: `report.html`, a picture of the run in plain SVG;
//! - `run`: the orchestration and the live progress line;
//! - `targets`: where the command line gets its cluster from (`etcd` is the etcd
//!   control target; the local cairn cluster is `crate::localcluster`).
//!
//! Reproducibility: a run's seed fixes every worker's choice of operations and the
//! fault plan (kinds, targets, windows). Timing still varies from run to run (latency,
//! which op lands in which fault window, which node leads when a fault starts), so two
//! runs with one seed do the same things but not necessarily with the same outcome.

pub mod attached;
pub mod etcd;
pub mod history;
pub mod report;
pub mod run;
pub mod schedule;
pub mod target;
pub mod targets;
pub mod verdict;
pub mod workload;

#[cfg(test)]
pub(crate) mod fake;

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

pub use run::{run, RunOutcome};
use target::FaultKind;

/// The system a run drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetKind {
    Cairn,
    Etcd,
}

impl TargetKind {
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Cairn => "cairn",
            TargetKind::Etcd => "etcd",
        }
    }

    pub fn parse(name: &str) -> Option<TargetKind> {
        match name {
            "cairn" => Some(TargetKind::Cairn),
            "etcd" => Some(TargetKind::Etcd),
            _ => None,
        }
    }
}

/// The pacing of the fault schedule. The defaults are the command's; tests shrink them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScheduleTiming {
    /// From the start of the run to the first fault (leaders get elected, keys exist).
    pub warmup: Duration,
    /// A quiet window lasts between these (inclusive).
    pub quiet_min: Duration,
    pub quiet_max: Duration,
    /// A fault window lasts between these (inclusive).
    pub fault_min: Duration,
    pub fault_max: Duration,
}

impl Default for ScheduleTiming {
    fn default() -> Self {
        ScheduleTiming {
            warmup: Duration::from_secs(3),
            quiet_min: Duration::from_secs(2),
            quiet_max: Duration::from_secs(5),
            fault_min: Duration::from_secs(2),
            fault_max: Duration::from_secs(8),
        }
    }
}

/// Everything a run is asked to do (the command line, parsed).
#[derive(Debug, Clone, PartialEq)]
pub struct ChaosOptions {
    pub target: TargetKind,
    /// Voting, data-holding nodes (cairn servers, etcd members).
    pub servers: usize,
    /// Client agents (cairn only; etcd has none).
    pub clients: usize,
    /// How long the workload and the schedule run (the verdict comes after).
    pub duration: Duration,
    /// The fault kinds asked for; the schedule draws only those the target supports.
    pub faults: Vec<FaultKind>,
    pub seed: u64,
    /// Shared keys `chaos/k<i>`.
    pub keys: usize,
    /// Worker threads; `None`: two per node, at most [`MAX_DEFAULT_WORKERS`].
    pub workers: Option<usize>,
    /// Where history.jsonl, verdict.txt and report.html go.
    pub out_dir: PathBuf,
    /// Where the target keeps its nodes' data (`None`: the target's choice).
    pub data_dir: Option<PathBuf>,
    /// The first loopback address of the nodes (node i listens on base + i).
    pub base: Ipv4Addr,
    /// cairn target: let followers answer default-mode reads locally (a known-unsafe
    /// setting, for showing that the checker catches stale reads).
    pub unsafe_local_reads: bool,
    /// `-attach`: HTTP addresses of running cairn agents to drive instead of starting
    /// a cluster (empty: start one).
    pub attach: Vec<String>,
    /// Every workload request gives up after this.
    pub request_timeout: Duration,
    /// A worker's pause between two operations (leaves CPU to the cluster).
    pub think_time: Duration,
    pub timing: ScheduleTiming,
    /// How long the verdict waits for the nodes to converge and the final reads.
    pub settle_timeout: Duration,
    /// Search steps the checker may spend per key before answering "unknown".
    pub check_budget: u64,
}

/// The default worker count's ceiling.
pub const MAX_DEFAULT_WORKERS: usize = 16;

impl ChaosOptions {
    /// The defaults of `cairn chaos` for a seed.
    pub fn new(seed: u64) -> ChaosOptions {
        ChaosOptions {
            target: TargetKind::Cairn,
            servers: 3,
            clients: 2,
            duration: Duration::from_secs(60),
            faults: vec![FaultKind::Kill, FaultKind::Pause, FaultKind::Partition],
            seed,
            keys: 16,
            workers: None,
            out_dir: PathBuf::from(format!("chaos-seed{seed}")),
            data_dir: None,
            base: Ipv4Addr::new(127, 0, 0, 21),
            unsafe_local_reads: false,
            attach: Vec::new(),
            request_timeout: Duration::from_secs(3),
            think_time: Duration::from_millis(2),
            timing: ScheduleTiming::default(),
            settle_timeout: Duration::from_secs(60),
            check_budget: 20_000_000,
        }
    }

    /// The worker count for a cluster of `nodes` nodes.
    pub fn worker_count(&self, nodes: usize) -> usize {
        self.workers
            .unwrap_or_else(|| (2 * nodes).clamp(1, MAX_DEFAULT_WORKERS))
    }
}

/// `12345678` as `12,345,678`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(41_233), "41,233");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn default_workers_are_two_per_node_capped() {
        let opts = ChaosOptions::new(1);
        assert_eq!(opts.worker_count(3), 6);
        assert_eq!(opts.worker_count(20), MAX_DEFAULT_WORKERS);
        let opts = ChaosOptions {
            workers: Some(3),
            ..opts
        };
        assert_eq!(opts.worker_count(20), 3);
    }
}
