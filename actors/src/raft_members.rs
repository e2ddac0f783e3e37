//! What a server tells about its Raft configuration: the members in effect and, on the
//! leader, how far each one is replicated. The operator API and autopilot read this
//! (through `ServerHandle::raft_members`). Leaf types.

use std::time::Duration;

/// One server of the Raft configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftServer {
    /// Its Raft id (the node UUID).
    pub id: String,
    /// Its server address, `ip:port`.
    pub address: String,
    pub voter: bool,
}

/// The leader's view of one member's replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReplication {
    pub id: String,
    /// Highest index known durable there (the leader's own for itself).
    pub match_index: u64,
    /// Since it last answered the leader (zero for the leader itself).
    pub last_contact: Duration,
}

/// The configuration in effect on one server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RaftMembers {
    /// Voters first, then non-voters, each sorted by id.
    pub servers: Vec<RaftServer>,
    /// Index of the configuration entry in effect (the snapshot's index when the
    /// snapshot holds it).
    pub index: u64,
    /// Whether that entry is committed (no change in progress).
    pub committed: bool,
    pub leader_id: Option<String>,
    pub term: u64,
    pub last_index: u64,
    /// Leader only: every member's replication; empty elsewhere.
    pub replication: Vec<ServerReplication>,
}

impl RaftMembers {
    pub fn voters(&self) -> impl Iterator<Item = &RaftServer> {
        self.servers.iter().filter(|s| s.voter)
    }
    pub fn get(&self, id: &str) -> Option<&RaftServer> {
        self.servers.iter().find(|s| s.id == id)
    }
    pub fn replication_of(&self, id: &str) -> Option<&ServerReplication> {
        self.replication.iter().find(|r| r.id == id)
    }
}
