//! The replicated state: catalog (nodes, services, checks) and KV, with per-table and
//! per-key indexes and KV tombstones. `apply` is the only mutator and is deterministic:
//! the same log applied in the same order gives the same store on every replica.
//!
//! Indexes are Raft log indexes: the entry that changed a row stamps its
//! CreateIndex/ModifyIndex, and the table's max index moves with it (never backwards).

mod command;
mod types;

pub use command::{Command, CommandResult, DeregisterRequest, KvOp, RegisterRequest};
pub use types::{
    Check, CheckDefinition, CheckStatus, KvEntry, Node, Service, ServiceAddress, Table, Weights,
};

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

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
        self.checks.iter().map(|c| c.status).max().unwrap_or(CheckStatus::Passing)
    }
}

/// The whole replicated state. Serializable as one value for snapshots.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Store {
    nodes: BTreeMap<String, Node>,
    /// Keyed by (node, service id).
    services: BTreeMap<(String, String), Service>,
    /// Keyed by (node, check id).
    checks: BTreeMap<(String, String), Check>,
    kv: BTreeMap<String, KvEntry>,
    /// Deleted KV keys and the index that deleted them, so prefix indexes never go back.
    kv_tombstones: BTreeMap<String, u64>,
    table_indexes: BTreeMap<Table, u64>,
    /// Index of the last applied entry (any kind, including no-ops).
    last_index: u64,
}

impl Store {
    pub fn new() -> Store {
        Store::default()
    }

    /// Apply one committed entry's command at `index`. Deterministic; never panics on any
    /// input (bad input is a `Rejected` result and changes nothing).
    pub fn apply(&mut self, _index: u64, _cmd: &Command) -> CommandResult {
        todo!("store work")
    }

    /// Record that entry `index` carried no command (Raft no-op, config change).
    pub fn apply_noop(&mut self, _index: u64) {
        todo!("store work")
    }

    /// Index of the last applied entry.
    pub fn last_index(&self) -> u64 {
        self.last_index
    }

    /// Max index of a table (0 when it never changed).
    pub fn table_index(&self, table: Table) -> u64 {
        self.table_indexes.get(&table).copied().unwrap_or(0)
    }

    /// All nodes, sorted by name.
    pub fn nodes(&self) -> Vec<&Node> {
        todo!("store work")
    }

    /// Node by name (case-insensitive, as Consul's node index is).
    pub fn node(&self, _name: &str) -> Option<&Node> {
        todo!("store work")
    }

    /// Services registered on a node, sorted by service id.
    pub fn node_services(&self, _node: &str) -> Vec<&Service> {
        todo!("store work")
    }

    /// Service name → sorted, de-duplicated union of tags over its instances.
    pub fn services(&self) -> BTreeMap<String, Vec<String>> {
        todo!("store work")
    }

    /// Instances of a service (name case-insensitive) that carry every tag in `tags`
    /// (case-insensitive), sorted by (node, service id), with their checks.
    pub fn service_instances(&self, _service: &str, _tags: &[String]) -> Vec<ServiceInstance<'_>> {
        todo!("store work")
    }

    /// Every check on a node (node-level and service-level), sorted by check id.
    pub fn node_checks(&self, _node: &str) -> Vec<&Check> {
        todo!("store work")
    }

    /// Checks of every instance of a service, sorted by (node, check id).
    pub fn service_checks(&self, _service: &str) -> Vec<&Check> {
        todo!("store work")
    }

    /// All checks, or only those in `state`, sorted by (node, check id).
    pub fn checks_in_state(&self, _state: Option<CheckStatus>) -> Vec<&Check> {
        todo!("store work")
    }

    /// One KV entry.
    pub fn kv_get(&self, _key: &str) -> Option<&KvEntry> {
        todo!("store work")
    }

    /// Every entry whose key starts with `prefix`, sorted by key.
    pub fn kv_list(&self, _prefix: &str) -> Vec<&KvEntry> {
        todo!("store work")
    }

    /// Keys under `prefix`; with a separator, keys are cut just after the first separator
    /// following the prefix and de-duplicated ("folders"), as Consul's `?keys&separator=`.
    pub fn kv_keys(&self, _prefix: &str, _separator: Option<&str>) -> Vec<String> {
        todo!("store work")
    }

    /// Max ModifyIndex under a prefix, tombstones included (0 when nothing ever lived
    /// there); what X-Consul-Index reports for recurse/keys reads and missing keys.
    pub fn kv_prefix_index(&self, _prefix: &str) -> u64 {
        todo!("store work")
    }
}
