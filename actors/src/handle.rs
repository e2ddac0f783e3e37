//! The façade the edges (HTTP, DNS, agent wiring) use to talk to a server's Raft group:
//! propose commands, read the published view, and see Raft status.

use parking_lot::{RwLock, RwLockReadGuard};
use protocol::store::{Command, CommandResult, Store};
use std::path::PathBuf;
use std::sync::Arc;

/// How to start the Raft group of this server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Stable Raft id of this server (the node UUID).
    pub server_id: String,
    /// Node name, for logs and operator output.
    pub node_name: String,
    /// `ip:port` other servers reach this one on (advertise address + server port).
    pub server_addr: String,
    /// Where the log and hard state live; `None` keeps everything in memory (`-dev`).
    pub data_dir: Option<PathBuf>,
    /// `-bootstrap`: start as the only voter of a fresh cluster and elect itself.
    pub bootstrap: bool,
    /// Consul's `performance.raft_multiplier` (1 = fastest timings).
    pub raft_multiplier: u32,
}

/// Errors a write can end with. Their Display texts are what Consul answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("No cluster leader")]
    NoLeader,
    #[error("leadership lost while committing log")]
    LeadershipLost,
    #[error("timed out enqueuing operation")]
    Timeout,
    #[error("storage error: {0}")]
    Storage(String),
    #[error("agent is shutting down")]
    ShuttingDown,
    #[error("encode failed: {0}")]
    Encode(String),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    #[error("failed to open data dir: {0}")]
    Storage(String),
    #[error("{0}")]
    Config(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RaftRole {
    #[default]
    Follower,
    Candidate,
    Leader,
}

/// A snapshot of Raft status for headers, `/v1/status/*` and agent/self.
#[derive(Debug, Clone, Default)]
pub struct RaftStatus {
    pub role: RaftRole,
    pub term: u64,
    pub leader_id: Option<String>,
    /// Leader's `ip:port` (server RPC address), as `/v1/status/leader` reports it.
    pub leader_addr: Option<String>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub last_log_term: u64,
    /// Milliseconds since this server last heard from a leader (0 on the leader).
    pub last_contact_ms: u64,
    /// Voters as (id, address).
    pub voters: Vec<(String, String)>,
}

impl RaftStatus {
    pub fn is_leader(&self) -> bool {
        self.role == RaftRole::Leader
    }
    pub fn known_leader(&self) -> bool {
        self.leader_id.is_some()
    }
}

/// The published read view of the replicated store. Readers take a short read lock; the
/// Fsm actor takes the write lock only while applying one batch.
#[derive(Clone, Default)]
pub struct ReadView(Arc<RwLock<Store>>);

impl ReadView {
    pub fn new(store: Store) -> Self {
        ReadView(Arc::new(RwLock::new(store)))
    }
    pub fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.0.read()
    }
    pub(crate) fn inner(&self) -> &Arc<RwLock<Store>> {
        &self.0
    }
}

/// Cheap to clone; every edge holds one.
#[derive(Clone)]
pub struct ServerHandle {
    view: ReadView,
    // filled in by the Raft work: actor addresses, status cell, applied-index watch
}

impl ServerHandle {
    /// Start LogStore, RaftCore and Fsm actors. Must run inside an actix System.
    pub async fn start(_opts: ServerOptions) -> Result<ServerHandle, StartError> {
        todo!("Raft work")
    }

    /// Replicate a command and wait until it is applied; the result is the state
    /// machine's answer. Never answers before the entry is applied.
    pub async fn propose(&self, _cmd: Command) -> Result<CommandResult, WriteError> {
        todo!("Raft work")
    }

    pub fn view(&self) -> &ReadView {
        &self.view
    }

    pub fn status(&self) -> RaftStatus {
        todo!("Raft work")
    }

    /// Watch of the last applied index; blocking queries wait on it.
    pub fn applied(&self) -> tokio::sync::watch::Receiver<u64> {
        todo!("Raft work")
    }
}
