//! The errors a server's Raft group answers with: what a write can end with, and why a
//! start failed. Leaf module: it imports nothing of this crate.

/// Errors a write can end with. Their Display texts are what Consul answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("No cluster leader")]
    NoLeader,
    #[error("leadership lost while committing log")]
    LeadershipLost,
    /// The pending-proposal queue was full: nothing was proposed (Consul's text).
    #[error("timed out enqueuing operation")]
    Timeout,
    /// The write was handed to Raft but its fate is not known: `propose` waited its
    /// whole timeout, or the log store failed while the entry was waiting. The entry may
    /// still commit and be applied later, or never; the answer says so rather than
    /// guessing `true` or `false`.
    #[error("{0} (the write may or may not have been applied)")]
    OutcomeUnknown(String),
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
