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
#![forbid(unsafe_code)]

mod fsm;
pub mod handle;
pub mod log_store;
mod raft_core;
pub mod snapshot_store;
#[cfg(test)]
mod snapshot_tests;
mod status;
#[cfg(test)]
mod write_path_tests;

pub use handle::{
    RaftRole, RaftStatus, ReadView, ServerHandle, ServerOptions, StartError, WriteError,
    DEFAULT_SNAPSHOT_THRESHOLD, DEFAULT_TRAILING_LOGS,
};
pub use raft_core::MAX_PENDING_PROPOSALS;
