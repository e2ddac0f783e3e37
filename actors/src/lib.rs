//! Actor shells around the pure cores in `protocol`. They own sockets, files, timers and
//! mailboxes; every decision is delegated to a core.
//!
//! The write path of a server (see `handle::ServerHandle::propose`):
//! ```text
//! propose ──▶ RaftCore (raft core: assign index) ──Persist──▶ LogStore thread
//!                 ▲                                             (group commit: many
//!                 └──────────────── PersistDone(id) ◀────────── entries, one fdatasync)
//!             RaftCore: durable quorum ⇒ Committed ──Apply(entries, waiters)──▶ Fsm
//!             Fsm (own arbiter): apply under the view's write lock, publish the applied
//!             index, answer each waiting proposal with its CommandResult
//! ```
//!
//! Snapshots (see `fsm`, `snapshot_store`, `raft_core`): every `snapshot_threshold`
//! applied entries the Fsm clones the store and a `cairn-snapshot` thread encodes and
//! saves it (`<data_dir>/raft/snapshots/`, newest 2 kept); RaftCore then compacts its
//! in-memory log to `trailing_logs` entries below the snapshot and the LogStore deletes
//! whole segments up to the OLDEST retained snapshot. Recovery loads the newest snapshot
//! that verifies and replays only the log after it.
#![forbid(unsafe_code)]

pub mod endpoint;
pub mod events;
mod fsm;
pub mod handle;
pub mod log_store;
mod raft_core;
pub mod snapshot_store;
#[cfg(test)]
mod snapshot_tests;
mod status;
pub mod storage_error;
#[cfg(test)]
mod write_path_tests;

pub use endpoint::{Api, Endpoint, ServerEndpoint, ViewEndpoint};
pub use events::ServerEvent;
pub use handle::{
    RaftRole, RaftStatus, ReadView, ServerHandle, ServerOptions, StartError, WriteError,
    DEFAULT_SNAPSHOT_THRESHOLD, DEFAULT_TRAILING_LOGS,
};
pub use raft_core::MAX_PENDING_PROPOSALS;
