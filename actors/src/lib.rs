//! Actor shells around the pure cores in `protocol`. They own sockets, files, timers and
//! mailboxes; every decision is delegated to a core.
#![forbid(unsafe_code)]

mod fsm;
pub mod handle;
pub mod log_store;
mod raft_core;
mod status;
#[cfg(test)]
mod write_path_tests;

pub use handle::{
    RaftRole, RaftStatus, ReadView, ServerHandle, ServerOptions, StartError, WriteError,
};
