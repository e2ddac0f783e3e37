//! What a failure-injection run needs from the system under test, and nothing more: a
//! KV client bound to one node, and a cluster it can fault. `cairn chaos` drives cairn
//! through a local cluster (`crate::localcluster`) and etcd through `super::etcd` with
//! the same workload, schedule and checker, so a verdict means the same for both.
//!
//! Everything here is blocking: the harness runs one OS thread per workload client, and
//! every call must return within the timeout it was built with (no call may hang).

use std::fmt;
use std::time::Duration;

/// One node of the cluster under test.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// `node1`, `node2` ... (the name faults and reports use).
    pub name: String,
    /// Whether it stores data and votes (a cairn server, every etcd member).
    pub server: bool,
    /// `host:port` of its KV API (cairn: HTTP 8500; etcd: its client URL).
    pub api_addr: String,
}

/// A value read from a key, with the version a CAS must name to replace it
/// (cairn: ModifyIndex; etcd: mod_revision).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    pub value: String,
    pub version: u64,
}

/// Why an operation did not give a clean answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpError {
    /// Short, stable, for counting errors by kind in the report: `timeout`, `refused`,
    /// `no-leader`, `unknown-outcome`, `http-500`, `http-429` ...
    pub kind: String,
    /// `true` only when the operation certainly did not take effect (the request never
    /// left, or the server said so before doing anything: refused connection, 4xx,
    /// "No cluster leader" from a node that does not forward). Everything else —
    /// timeouts, resets after sending, 5xx that may follow a commit — is `false`, and
    /// the history records the write as an unknown outcome.
    pub definitely_not_applied: bool,
    /// The detail, for the history file.
    pub message: String,
}

impl fmt::Display for OpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

/// Consistency a read asks for. cairn: `Default` = no parameter (linearizable in
/// cairn), `Consistent` = `?consistent`, `Stale` = `?stale`; etcd: `Stale` =
/// serializable, the others linearizable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadMode {
    Default,
    Consistent,
    Stale,
}

/// A KV client bound to one node. One per workload thread.
pub trait KvClient: Send {
    /// `Ok(None)`: the key does not exist.
    fn get(&mut self, key: &str, mode: ReadMode) -> Result<Option<Versioned>, OpError>;
    /// Unconditional write.
    fn put(&mut self, key: &str, value: &str) -> Result<(), OpError>;
    /// Write only if the key's version is `expect` (`None`: only if the key is absent,
    /// Consul's `cas=0`). `Ok(false)`: the comparison failed and nothing changed.
    fn cas(&mut self, key: &str, expect: Option<u64>, value: &str) -> Result<bool, OpError>;
    /// Unconditional delete (deleting an absent key succeeds).
    fn delete(&mut self, key: &str) -> Result<(), OpError>;
}

/// A fault the schedule can inject. Not every cluster supports every kind
/// ([`Cluster::supports`]); the schedule only draws supported ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum FaultKind {
    /// SIGKILL a node (the schedule restarts it when the fault ends).
    Kill,
    /// SIGSTOP a node (SIGCONT when the fault ends).
    Pause,
    /// Split the nodes into groups that cannot talk to each other.
    Partition,
    /// SIGKILL a node and restart it at once (a crash-restart, no downtime window).
    Restart,
    /// Remove a server from the Raft configuration and add it back (cairn: leave and
    /// rejoin with the same data dir wiped, so it catches up by snapshot).
    Membership,
    /// Make a server's log disk slow: every fsync stalls (cairn's `-fault-injection`
    /// disk stall), so its acknowledgements lag while its network stays fast.
    SlowDisk,
}

impl FaultKind {
    pub const ALL: [FaultKind; 6] = [
        FaultKind::Kill,
        FaultKind::Pause,
        FaultKind::Partition,
        FaultKind::Restart,
        FaultKind::Membership,
        FaultKind::SlowDisk,
    ];

    /// Whether the fault, aimed at the leader, leaves the cluster to elect another:
    /// what "failover" is measured for. A membership cycle hands leadership over
    /// gracefully and a slow disk deposes nobody; their cost shows as availability.
    pub fn takes_the_leader_away(self) -> bool {
        matches!(
            self,
            FaultKind::Kill | FaultKind::Pause | FaultKind::Partition | FaultKind::Restart
        )
    }

    /// The name used on the command line (`-faults kill,pause,...`) and in reports.
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::Kill => "kill",
            FaultKind::Pause => "pause",
            FaultKind::Partition => "partition",
            FaultKind::Restart => "restart",
            FaultKind::Membership => "membership",
            FaultKind::SlowDisk => "slow-disk",
        }
    }

    pub fn parse(name: &str) -> Option<FaultKind> {
        FaultKind::ALL.into_iter().find(|f| f.name() == name)
    }
}

/// The cluster under test, as the fault injector sees it. Node arguments are indexes
/// into [`Cluster::nodes`]. Every method is idempotent: killing a dead node, resuming a
/// running one or healing a healed cluster succeeds and does nothing.
pub trait Cluster: Send {
    fn nodes(&self) -> Vec<NodeInfo>;
    /// A new client bound to `node`, whose every request gives up after `timeout`.
    fn client(&self, node: usize, timeout: Duration) -> Box<dyn KvClient>;
    fn supports(&self, fault: FaultKind) -> bool;
    /// The node that leads now, as the cluster reports it, if any (for reports and for
    /// faults aimed at the leader).
    fn leader(&self) -> Option<usize>;
    fn kill(&mut self, node: usize) -> Result<(), String>;
    /// Start a killed node again with its data dir; returns once its process runs (not
    /// necessarily once it has caught up).
    fn restart(&mut self, node: usize) -> Result<(), String>;
    fn pause(&mut self, node: usize) -> Result<(), String>;
    fn resume(&mut self, node: usize) -> Result<(), String>;
    /// Nodes in different groups cannot reach each other; nodes in no group keep every
    /// link. Replaces any earlier partition.
    fn partition(&mut self, groups: &[Vec<usize>]) -> Result<(), String>;
    /// Lift every partition.
    fn heal(&mut self) -> Result<(), String>;
    /// Remove a server from the configuration and bring it back (see
    /// [`FaultKind::Membership`]); returns once it is a member again or the attempt failed.
    fn cycle_membership(&mut self, node: usize) -> Result<(), String>;
    /// Make `node`'s log disk stall this long before every fsync (`None`: lift it).
    /// Targets that cannot do it keep this default and leave [`FaultKind::SlowDisk`]
    /// unsupported.
    fn slow_disk(&mut self, node: usize, stall: Option<Duration>) -> Result<(), String> {
        let _ = (node, stall);
        Err("a slow disk is not supported by this target".to_string())
    }
    /// Every key under `prefix` with its value as `node` holds it locally (a stale read,
    /// no forwarding), for the convergence check after the run.
    fn local_snapshot(
        &self,
        node: usize,
        prefix: &str,
    ) -> Result<std::collections::BTreeMap<String, String>, String>;
    /// Stop every process the cluster started (the harness calls it once at the end,
    /// also after a failed run, unless the cluster was attached to rather than started).
    fn shutdown(&mut self);
}
