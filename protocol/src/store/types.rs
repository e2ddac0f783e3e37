//! The replicated data model. Field meanings follow Consul's catalog and KV; the HTTP edge
//! maps these to Consul's JSON shapes. No `skip_serializing_if` here: these types travel
//! through the bincode codec, which needs every field every time.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Health of a check, ordered from best to worst so `max` gives the aggregate.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
)]
pub enum CheckStatus {
    #[default]
    Passing,
    Warning,
    Critical,
    /// Consul's "maintenance" only appears as an aggregate; stored checks never carry it.
    Maintenance,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Passing => "passing",
            CheckStatus::Warning => "warning",
            CheckStatus::Critical => "critical",
            CheckStatus::Maintenance => "maintenance",
        }
    }

    /// Parse one of Consul's stored status strings (`passing`, `warning`, `critical`).
    pub fn parse(s: &str) -> Option<CheckStatus> {
        match s {
            "passing" => Some(CheckStatus::Passing),
            "warning" => Some(CheckStatus::Warning),
            "critical" => Some(CheckStatus::Critical),
            _ => None,
        }
    }
}

/// A catalog node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Node {
    /// Node UUID (Consul's `ID`); may be empty for external nodes registered without one.
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: BTreeMap<String, String>,
    pub meta: BTreeMap<String, String>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// An address/port pair in a service's tagged addresses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ServiceAddress {
    pub address: String,
    pub port: u16,
}

/// DNS SRV weights of a service instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Weights {
    pub passing: i32,
    pub warning: i32,
}

impl Default for Weights {
    fn default() -> Self {
        Weights {
            passing: 1,
            warning: 1,
        }
    }
}

/// A service instance on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Service {
    pub node: String,
    /// Instance id, unique per node (defaults to the service name).
    pub id: String,
    /// Service name.
    pub service: String,
    pub kind: String,
    pub tags: Vec<String>,
    pub address: String,
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    pub meta: BTreeMap<String, String>,
    pub port: u16,
    pub weights: Weights,
    pub enable_tag_override: bool,
    pub create_index: u64,
    pub modify_index: u64,
}

/// How a check is run (kept for display; catalog checks are never executed by the store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CheckDefinition {
    pub http: String,
    pub tcp: String,
    pub interval: String,
    pub timeout: String,
    pub deregister_critical_service_after: String,
}

/// A health check, node-level when `service_id` is empty.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Check {
    pub node: String,
    pub check_id: String,
    pub name: String,
    pub status: CheckStatus,
    pub notes: String,
    pub output: String,
    pub service_id: String,
    pub service_name: String,
    pub service_tags: Vec<String>,
    /// `ttl`, `http`, `tcp`, `script`, `serf` ... or empty for catalog-only checks.
    pub check_type: String,
    pub definition: CheckDefinition,
    pub create_index: u64,
    pub modify_index: u64,
}

/// A KV entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct KvEntry {
    pub key: String,
    /// Shared, so cloning the store for a snapshot copies keys and metadata but never
    /// the values. Encoded exactly as a `Vec<u8>` (see [`shared_bytes`]), so snapshots
    /// written before the change still decode.
    #[serde(with = "shared_bytes")]
    pub value: Arc<[u8]>,
    pub flags: u64,
    pub lock_index: u64,
    /// Lock holder; None when unlocked.
    pub session: Option<String>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// Tables that carry their own max index, for blocking queries and X-Consul-Index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Table {
    Nodes,
    Services,
    Checks,
    Kv,
    /// Appended last: table indexes are encoded by variant in snapshot headers.
    Sessions,
    /// Not a table of rows: the highest deleting index of reaped KV tombstones (the floor
    /// of every prefix index; see `store::tombstones`). Kept with the table indexes so
    /// snapshots carry it.
    KvGraveyard,
}

/// Serde for `Arc<[u8]>` with `Vec<u8>`'s encoding (a sequence of bytes), whatever the
/// format: version-1 snapshots hold values encoded as `Vec<u8>`.
pub mod shared_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::sync::Arc;

    pub fn serialize<S: Serializer>(value: &Arc<[u8]>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(value.iter())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Arc<[u8]>, D::Error> {
        Vec::<u8>::deserialize(deserializer).map(Arc::from)
    }
}
