//! Actor shells around the pure cores in `protocol`. They own sockets, files, timers and
//! mailboxes; every decision is delegated to a core.
//!
//! The write path of a server (see `server::ServerHandle::propose`):
//! ```text
//! propose ──▶ RaftCore (raft core: assign index) ──Persist──▶ LogStore thread
//!                 ▲                                             (group commit: many
//!                 └──────────────── PersistDone(id) ◀────────── entries, one fdatasync)
//!             RaftCore: durable quorum ⇒ Committed ──Apply(entries, waiters)──▶ Fsm
//!             Fsm (RaftCore's thread): apply the batch to its working store, publish an O(1)
//!             clone of it as the view's new version (waking the blocking reads whose
//!             keys the batch touched), publish the applied index, answer each waiting
//!             proposal with its CommandResult
//! ```
//!
//! Snapshots (see `fsm`, `snapshot_store`, `raft_core`): every `snapshot_threshold`
//! applied entries (or 64 MiB / a quarter of the store of applied bytes) the Fsm keeps
//! the current published version (an O(1) clone) and a `cairn-snapshot` thread streams
//! it into `<data_dir>/raft/snapshots/` (newest 2 kept); RaftCore then compacts its
//! in-memory log to at most `trailing_logs` entries AND `fsm::TRAILING_LOG_BYTES`
//! (64 MiB) of their payload below the snapshot, and the LogStore deletes whole segments
//! up to that point, but never past the OLDEST retained snapshot. Recovery loads the
//! newest snapshot that verifies and replays only the log after it.
//!
//! Modules, imports running one way: `errors` and `status` (leaf types) ← `read_view`
//! (versions + parked reads, `watch_set`) ← `fsm`, `raft_core`, `recovery` (snapshot
//! choice at start) ← `server` (`ServerHandle`: wiring and façade; `peer_net`: Raft
//! messages between servers) ← `endpoint` ← `rpc` (forwarding requests between agents
//! over the server port, a follower's to its leader; `faults` for test clusters).
#![forbid(unsafe_code)]

pub mod endpoint;
mod errors;
pub mod events;
pub mod faults;
mod fsm;
pub mod health;
pub mod log_store;
pub mod membership;
pub mod peer_net;
#[cfg(test)]
mod peer_net_tests;
mod raft_core;
pub mod raft_members;
#[cfg(test)]
mod raft_membership_tests;
mod read_view;
mod recovery;
pub mod rpc;
mod server;
pub mod session_ttl;
pub mod snapshot_sender;
pub mod snapshot_store;
#[cfg(test)]
mod snapshot_tests;
mod status;
pub mod storage_error;
mod watch_set;
#[cfg(test)]
mod write_path_tests;

pub use endpoint::{Api, Endpoint, ServerEndpoint, ViewEndpoint};
pub use errors::{MembershipError, StartError, WriteError};
pub use events::ServerEvent;
pub use faults::{FaultRule, FaultRules, Verdict};
pub use peer_net::RaftInbox;
pub use raft_core::MAX_PENDING_PROPOSALS;
pub use raft_members::{RaftMembers, RaftServer, ServerReplication};
pub use read_view::{ReadView, Watch};
pub use rpc::{
    ForwardEndpoint, ForwardOptions, LeaderForwarding, RpcServer, RpcServerOptions, ServerList,
    DEFAULT_SERVER_PORT,
};
pub use server::{
    unix_now_ms, ServerHandle, ServerOptions, DEFAULT_SNAPSHOT_THRESHOLD, DEFAULT_TRAILING_LOGS,
    PROPOSE_TIMEOUT,
};
pub use session_ttl::SessionTimers;
pub use status::{RaftRole, RaftStatus};
