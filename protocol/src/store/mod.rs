//! The replicated state: catalog (nodes, services, checks) and KV, with per-table and
//! per-key indexes and KV tombstones. `apply` is the only mutator and is deterministic:
//! the same log applied in the same order gives the same store on every replica.
//!
//! Indexes are Raft log indexes: the entry that changed a row stamps its
//! CreateIndex/ModifyIndex, and the table's max index moves with it (never backwards).

mod catalog;
mod command;
pub mod image;
mod kv;
mod queries;
pub mod registration;
mod restore;
pub mod session;
mod snapshot;
#[cfg(test)]
mod tests_catalog;
#[cfg(test)]
mod tests_kv;
#[cfg(test)]
mod tests_random;
#[cfg(test)]
mod tests_restore;
#[cfg(test)]
mod tests_session;
#[cfg(test)]
mod tests_snapshot;
#[cfg(test)]
mod tests_tombstones;
#[cfg(test)]
mod tests_txn;
mod tombstones;
pub mod txn;
mod types;

pub use command::{Command, CommandResult, DeregisterRequest, KvOp, RegisterRequest};
pub use registration::{carried_bytes, MAX_REGISTRATION_COPY_BYTES};
pub use session::{Session, SessionBehavior, SessionOp};
pub use snapshot::{RestoreError, SnapshotRecord, SnapshotRecordRef, StoreBuilder};
pub use types::{
    shared_bytes, Check, CheckDefinition, CheckStatus, KvEntry, Node, Service, ServiceAddress,
    Table, Weights,
};

use imbl::{OrdMap, OrdSet};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// One service instance with its node and every check that affects it (node-level checks
/// first, then the instance's own), as `/v1/health/service/:name` and DNS need it.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceInstance<'a> {
    pub node: &'a Node,
    pub service: &'a Service,
    pub checks: Vec<&'a Check>,
}

impl ServiceInstance<'_> {
    /// Worst status over all checks (passing when there are none).
    pub fn aggregate_status(&self) -> CheckStatus {
        self.checks
            .iter()
            .map(|c| c.status)
            .max()
            .unwrap_or(CheckStatus::Passing)
    }
}

/// One service instance with its node and the worst status over the checks that affect
/// it (node-level and its own), without the check lists: what DNS and the catalog need.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InstanceHealth<'a> {
    pub node: &'a Node,
    pub service: &'a Service,
    pub status: CheckStatus,
}

impl InstanceHealth<'_> {
    /// Worst status over all checks (passing when there are none).
    pub fn aggregate_status(&self) -> CheckStatus {
        self.status
    }
}

/// The whole replicated state. Snapshots stream it as records ([`Store::snapshot_records`],
/// [`StoreBuilder`]); the serde derive is kept to read version-1 snapshot files, which
/// hold the whole store as one codec value.
///
/// Node names are case-insensitive (as Consul's node index is), so every catalog map is
/// keyed by the lower-cased node name ("node key"); rows keep the name as registered.
///
/// The tables are persistent maps (`imbl::OrdMap`, a B+tree whose nodes are shared
/// between clones) and rows sit behind `Arc`: cloning a store is O(1), and a write to a
/// clone copies only the path to the row it changes (a few nodes of 16 slots, each slot
/// a key and a pointer). That is what lets the state machine publish a new immutable
/// version after every batch and a snapshot take one without copying the store (see
/// `actors::ReadView`). Field privacy is what keeps the version immutable to readers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Store {
    /// Keyed by node key.
    nodes: OrdMap<String, Arc<Node>>,
    /// Keyed by (node key, service id).
    services: OrdMap<(String, String), Arc<Service>>,
    /// Keyed by (node key, check id).
    checks: OrdMap<(String, String), Arc<Check>>,
    /// Keyed by lower-cased service name; an entry lives while the name has instances.
    service_names: OrdMap<String, ServiceNameEntry>,
    kv: OrdMap<String, Arc<KvEntry>>,
    /// Deleted KV keys and the index that deleted them, so prefix indexes never go back.
    kv_tombstones: OrdMap<String, u64>,
    table_indexes: BTreeMap<Table, u64>,
    /// Index of the last applied entry (any kind, including no-ops).
    last_index: u64,
    /// Sessions by ID. (`serde(skip)`: version-1 snapshot files, the only user of the
    /// serde derive, predate sessions.)
    #[serde(skip)]
    sessions: OrdMap<String, Arc<Session>>,
    /// KV key -> time (ms, the proposers' clock) until which it cannot be acquired.
    #[serde(skip)]
    lock_delays: OrdMap<String, u64>,
    /// Derived (rebuilt on load): session ID -> keys it holds.
    #[serde(skip)]
    session_locks: OrdMap<String, OrdSet<String>>,
    /// Derived (rebuilt on load): (node key, check ID) -> sessions linked to the check.
    #[serde(skip)]
    session_checks: OrdMap<(String, String), OrdSet<String>>,
}

/// Per-service-name bookkeeping: Consul's fine-grained "service.<name>" index plus the
/// instances carrying the name, so name lookups don't scan every service.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct ServiceNameEntry {
    /// Last index that changed an instance of this name, one of its checks, or its node.
    index: u64,
    /// (node key, service id) of every instance.
    instances: OrdSet<(String, String)>,
}

/// Case folding used for node names, service names and tags.
fn fold(s: &str) -> String {
    s.to_lowercase()
}

/// Case-insensitive equality for tags and node IDs, after Go's `strings.EqualFold`
/// (Consul's): rune by rune, two runes match when they are equal or share a simple case
/// mapping (so `σ`/`ς`/`Σ`, `ſ`/`s` and `K` (Kelvin)/`k` match, while `ß` never matches
/// `ss`). It allocates nothing: it runs for every tag of every instance on the DNS path.
fn eq_fold(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        return a.eq_ignore_ascii_case(b);
    }
    let mut left = a.chars();
    let mut right = b.chars();
    loop {
        match (left.next(), right.next()) {
            (None, None) => return true,
            (Some(x), Some(y)) if chars_eq_fold(x, y) => {}
            _ => return false,
        }
    }
}

fn chars_eq_fold(x: char, y: char) -> bool {
    x == y || x.to_lowercase().eq(y.to_lowercase()) || x.to_uppercase().eq(y.to_uppercase())
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// Apply one committed entry's command at `index`. Deterministic; never panics on any
    /// input (bad input is a `Rejected` result and changes nothing).
    ///
    /// Raft hands entries over in increasing index order; should an index ever repeat or go
    /// back, `last_index` and the table indexes still never move backwards.
    ///
    /// A command not wrapped in [`Command::Stamped`] is applied at time 0 (no lock-delay
    /// outlives it); the leader stamps every command that needs the time.
    pub fn apply(&mut self, index: u64, cmd: &Command) -> CommandResult {
        self.apply_at(index, 0, cmd)
    }

    /// Apply `cmd` as proposed at `now_ms` (the proposer's wall clock, milliseconds).
    pub fn apply_at(&mut self, index: u64, now_ms: u64, cmd: &Command) -> CommandResult {
        self.last_index = self.last_index.max(index);
        match cmd {
            Command::Register(req) => self.apply_register(index, now_ms, req),
            Command::Deregister(req) => self.apply_deregister(index, now_ms, req),
            Command::Kv(op) => self.apply_kv(index, now_ms, op),
            Command::Restore { image } => self.apply_restore(index, image),
            Command::Session(op) => self.apply_session(index, now_ms, op),
            Command::Stamped { now_ms, command } => self.apply_at(index, *now_ms, command),
            Command::Txn(ops) => self.apply_txn(index, now_ms, ops),
            Command::ReapTombstones { up_to_index } => self.apply_reap_tombstones(*up_to_index),
        }
    }

    /// Record that entry `index` carried no command (Raft no-op, config change).
    pub fn apply_noop(&mut self, index: u64) {
        self.last_index = self.last_index.max(index);
    }

    /// Index of the last applied entry.
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Max index of a table (0 when it never changed).
    pub fn table_index(&self, table: Table) -> u64 {
        self.table_indexes.get(&table).copied().unwrap_or(0)
    }

    /// Move a table's index forward to `index` (never back).
    fn bump(&mut self, table: Table, index: u64) {
        let current = self.table_indexes.entry(table).or_insert(0);
        *current = (*current).max(index);
    }
}
