//! Operator answers: the Raft configuration, autopilot's server health, and the texts
//! of removing a peer (Consul's `/v1/operator/raft/*` and `/v1/operator/autopilot/*`).

use serde::{Deserialize, Serialize};

/// Which peer `DELETE /v1/operator/raft/peer` names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerSelector {
    Id(String),
    Address(String),
}

impl PeerSelector {
    /// Consul's error when no server of the configuration matches.
    pub fn not_found_text(&self) -> String {
        match self {
            PeerSelector::Id(id) => format!("id {id:?} was not found in the Raft configuration"),
            PeerSelector::Address(addr) => {
                format!("address {addr:?} was not found in the Raft configuration")
            }
        }
    }
}

/// One server of `/v1/operator/raft/configuration`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftServerInfo {
    pub id: String,
    /// Its node name as gossip knows it ("" when gossip does not).
    pub node: String,
    pub address: String,
    pub leader: bool,
    pub voter: bool,
    /// Consul's Raft protocol version, "3".
    pub protocol_version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftConfigurationInfo {
    pub servers: Vec<RaftServerInfo>,
    /// Index of the configuration entry in effect.
    pub index: u64,
}

/// One server of `/v1/operator/autopilot/health` (Consul's `ServerHealth`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerHealthInfo {
    pub id: String,
    pub name: String,
    pub address: String,
    /// Gossip status: "alive", "leaving", "left", "failed" or "none".
    pub serf_status: String,
    pub version: String,
    pub leader: bool,
    /// Since the leader last heard from it.
    pub last_contact_ms: u64,
    pub last_term: u64,
    pub last_index: u64,
    pub healthy: bool,
    pub voter: bool,
    /// Unix milliseconds since when its health has not changed.
    pub stable_since_unix_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AutopilotHealthInfo {
    pub healthy: bool,
    pub failure_tolerance: u64,
    pub servers: Vec<ServerHealthInfo>,
}
