//! The errors a server's Raft group answers with: what a write can end with, and why a
//! start failed. Leaf module: it imports nothing of this crate.

/// Errors a write can end with. Their Display texts are what Consul answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("No cluster leader")]
    NoLeader,
    #[error("leadership lost while committing log")]
    LeadershipLost,
    /// Two cases share Consul's text. The pending-proposal queue was full: nothing was
    /// proposed. Or `propose` waited [`PROPOSE_TIMEOUT`] for its entry to be applied:
    /// then the outcome is UNKNOWN, the entry may still commit and be applied later.
    #[error("timed out enqueuing operation")]
    Timeout,
    #[error("storage error: {0}")]
    Storage(String),
    #[error("agent is shutting down")]
    ShuttingDown,
    #[error("encode failed: {0}")]
    Encode(String),
    /// The encoded command is over [`codec::MAX_COMMAND_BYTES`]; nothing was proposed.
    #[error("command of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
}

/// Why a Raft membership change did not happen (or its outcome is unknown).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// The leader refused it; nothing was appended.
    #[error("{0}")]
    Refused(protocol::raft::ChangeError),
    /// Appended but not seen committed (leadership lost, timeout, shutdown, storage).
    #[error("{0}")]
    Write(#[from] WriteError),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    #[error("failed to open data dir: {0}")]
    Storage(String),
    #[error("{0}")]
    Config(String),
}
