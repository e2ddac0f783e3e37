//! Reaping KV tombstones: the replicated half of Consul's tombstone GC.
//!
//! A delete leaves a tombstone (key, deleting index) so a prefix index never goes back
//! when the prefix's newest row disappears. Kept forever, they grow the store with every
//! delete, so the leader proposes [`super::Command::ReapTombstones`] once they are older
//! than `tombstone_ttl` (the timing lives in [`crate::tombstone_gc`]); every replica
//! applies it at the same log position and drops the same tombstones.
//!
//! Indexes still never go back: the highest deleting index among reaped tombstones is
//! kept as the KV "graveyard floor" (a table index, so snapshots carry it), and every
//! prefix index is at least that floor. Consul instead lets a prefix index drop after a
//! reap (clients reset on a lower index); the floor costs at most one early answer per
//! parked prefix read per reap (the reap touches all of KV).

use super::{CommandResult, Store, Table};

impl Store {
    pub(super) fn apply_reap_tombstones(&mut self, up_to_index: u64) -> CommandResult {
        self.reap_tombstones(up_to_index);
        CommandResult::Done
    }

    /// Drop tombstones whose deleting index is `<= up_to_index`; returns how many went.
    /// Pure bookkeeping: it must only be driven by a replicated decision (a log entry), so
    /// every replica reaps the same tombstones at the same point. The highest reaped
    /// index becomes the graveyard floor, so no prefix index goes back.
    pub fn reap_tombstones(&mut self, up_to_index: u64) -> usize {
        let reaped: Vec<(String, u64)> = self
            .kv_tombstones
            .iter()
            .filter(|(_, deleted_at)| **deleted_at <= up_to_index)
            .map(|(key, deleted_at)| (key.clone(), *deleted_at))
            .collect();
        let mut floor = self.kv_graveyard_floor();
        for (key, deleted_at) in &reaped {
            self.kv_tombstones.remove(key);
            floor = floor.max(*deleted_at);
        }
        if floor > 0 {
            self.bump(Table::KvGraveyard, floor);
        }
        reaped.len()
    }

    /// Number of KV tombstones currently kept.
    pub fn kv_tombstone_count(&self) -> usize {
        self.kv_tombstones.len()
    }

    /// The highest deleting index of any reaped tombstone (0 before the first reap):
    /// every prefix index is at least this.
    pub fn kv_graveyard_floor(&self) -> u64 {
        self.table_index(Table::KvGraveyard)
    }
}
