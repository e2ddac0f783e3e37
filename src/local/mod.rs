//! The agent's local state (ARCHITECTURE's "Catalog" actor): the services and checks
//! registered with THIS agent, their check runs, persistence in the data dir and
//! anti-entropy with the catalog. Servers and client agents alike run one.
//!
//! - [`handle`]: what the edges hold (`LocalAgent`): commands into the actor's mailbox,
//!   and the published [`LocalView`] that reads answer from without a round trip.
//! - [`actor`]: the task that owns `protocol::health::local::LocalState`, drives the
//!   probes, the TTL timer, the reaper and the syncs.
//! - [`sync`]: one anti-entropy pass through the agent's endpoint (the same forwarding
//!   write path as `/v1/catalog/register`).
//! - [`persist`]: the data-dir file (atomic replace).
//! - [`probes`]: the seam to the probe runner.

mod actor;
pub mod handle;
pub mod persist;
mod probes;
mod sync;

pub use actor::{start, LocalOptions, CHECK_UPDATE_INTERVAL_MS, REAP_INTERVAL_MS};
pub use handle::{LocalAgent, LocalView};
