//! SnapshotStore: durable state-machine snapshots behind the [`SnapshotBackend`] trait
//! (files for real servers, memory for `-dev` and tests; one conformance suite).
//!
//! A snapshot is the meta (last included index and term, configuration at that index)
//! plus the codec-encoded `store::Store`. Saving makes it durable before returning, then
//! keeps only the newest [`RETAINED_SNAPSHOTS`]. Loading verifies a CRC over the data,
//! so recovery can fall back to an older snapshot when the newest is damaged.
//!
//! # The log compaction rule
//! The log on disk is only ever cut up to the OLDEST retained snapshot's index (and no
//! further than `trailing_logs` below the newest). So whichever retained snapshot
//! recovery ends up using, the log continues it without a gap.

mod file;
mod memory;

#[cfg(test)]
mod conformance;

pub use file::FileSnapshotStore;
pub use memory::MemorySnapshotStore;

use crate::log_store::StorageError;
use protocol::ids::{LogIndex, Term};
use protocol::raft::SnapshotMeta;

/// How many snapshots are kept (Consul keeps 2 as well).
pub const RETAINED_SNAPSHOTS: usize = 2;

/// Which snapshot: its last included index and term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SnapshotId {
    pub index: LogIndex,
    pub term: Term,
}

impl SnapshotId {
    pub fn of(meta: &SnapshotMeta) -> SnapshotId {
        SnapshotId {
            index: meta.index,
            term: meta.term,
        }
    }
}

/// A verified snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

/// Durable snapshot storage. Shared between threads (the Fsm's writer thread saves,
/// recovery and, later, the leader's InstallSnapshot sender load).
pub trait SnapshotBackend: Send + Sync + 'static {
    /// Store durably (on disk: temp file, fsync, rename, fsync the directory), then
    /// delete all but the newest [`RETAINED_SNAPSHOTS`].
    fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError>;
    /// Retained snapshots, newest first (not yet verified).
    fn list(&self) -> Result<Vec<SnapshotId>, StorageError>;
    /// Read and verify one snapshot (header, lengths, CRC of the data).
    fn load(&self, id: SnapshotId) -> Result<Snapshot, StorageError>;
    /// Set a damaged snapshot aside so it no longer counts as retained: otherwise the
    /// next save would prune the good older snapshot and keep the damaged one, and log
    /// compaction (bounded by the oldest retained snapshot) could leave nothing usable.
    fn quarantine(&self, id: SnapshotId) -> Result<(), StorageError>;
}
