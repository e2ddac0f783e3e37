//! The typed error of a request. Each variant's Display text is exactly what Consul
//! answers; the HTTP edge maps variants to status codes (400, 404, 413, 500).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum RequestError {
    /// No leader is known, or a new leader could not catch up in time (500).
    #[error("No cluster leader")]
    NoLeader,
    /// The request itself is wrong (400), with Consul's text.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing by that name where a text 404 is due.
    #[error("{0}")]
    NotFound(String),
    /// Over a size limit the client can fix (413).
    #[error("{0}")]
    TooLarge(String),
    /// The encoded command is over the replication limit; nothing was proposed (500).
    #[error("command of {len} bytes exceeds the limit of {limit} bytes")]
    CommandTooLarge { len: u64, limit: u64 },
    /// The state machine or the server refused, text passed through verbatim (500).
    #[error("{0}")]
    Internal(String),
    /// The write queue was full, or the write was not applied in time: outcome unknown.
    #[error("timed out enqueuing operation")]
    Timeout,
    /// The entry was overwritten by another term's leader.
    #[error("leadership lost while committing log")]
    LeadershipLost,
    /// The server cannot write its Raft log.
    #[error("storage error: {0}")]
    Storage(String),
    #[error("agent is shutting down")]
    ShuttingDown,
    /// A client agent knows no server, or could reach none of them (500, Consul's text).
    #[error("No known Consul servers")]
    NoServers,
}

impl RequestError {
    pub fn bad_request(text: impl Into<String>) -> RequestError {
        RequestError::BadRequest(text.into())
    }

    pub fn internal(text: impl Into<String>) -> RequestError {
        RequestError::Internal(text.into())
    }

    pub(super) fn unexpected(response: &super::Response) -> RequestError {
        let kind = match response {
            super::Response::Read(_) => "read",
            super::Response::Write(_) => "write",
            super::Response::Info(_) => "info",
        };
        RequestError::Internal(format!("unexpected {kind} response from the endpoint"))
    }
}

impl RequestError {
    /// The endpoint answered a read with rows of another shape (a bug or a version
    /// mismatch between agents).
    pub fn unexpected_data() -> RequestError {
        RequestError::Internal("unexpected read data from the endpoint".into())
    }
}
