//! Restoring a snapshot image as one replicated command (`PUT /v1/snapshot`).
//!
//! # Indexes after a restore (a decision; Consul differs)
//! Consul's restore keeps every row's indexes from the snapshot and moves the Raft index
//! past both logs (hashicorp/raft's `Restore` leaves a hole in the log), so indexes that
//! clients saw can go backwards; Consul then answers every parked blocking query at once
//! (the state store is "abandoned") and clients are expected to reset when an index goes
//! back. cairn's Raft log has no holes, so a restore is an ordinary entry at index `N`,
//! and keeping the image's indexes could not work: an image from a bigger cluster (a
//! backup restored into a fresh one) holds indexes above `N`, and every later write
//! would then move its key's index backwards.
//!
//! So a restore is applied as a write of every row at `N`: each restored node, service,
//! check, service-name index and KV entry gets CreateIndex = ModifyIndex = `N` (lock
//! indexes, flags and values are kept), every table index becomes `N`, and every KV key
//! that lived here (or had a tombstone) but is not in the image gets a tombstone at `N`,
//! as a delete at `N` would leave. Therefore every index a read reports after the
//! restore is at least `N`, above anything a client saw before it: a parked blocking
//! query wakes (the command touches everything) and returns the restored data with a
//! higher index, and no index ever goes backwards. Sessions in the image are restored
//! the same way (with their locks); the leader's TTL timers start them afresh. The cost: CreateIndex/ModifyIndex of
//! restored rows are not the backup's, so a CAS with an index read before the restore
//! fails and the client re-reads (never a lost update).

use super::image::store_from_image;
use super::{CommandResult, Store, Table};
use crate::codec;
use imbl::OrdMap;
use std::sync::Arc;

impl Store {
    /// Replace the whole state with the store `image` holds, as writes at `index` (see
    /// the module docs). A bad image changes nothing (the same on every server).
    pub(super) fn apply_restore(&mut self, index: u64, image: &[u8]) -> CommandResult {
        match store_from_image(image, codec::MAX_DECODE_BYTES) {
            Ok(restored) => {
                *self = restamped(restored, index, self);
                CommandResult::Done
            }
            Err(e) => CommandResult::Rejected(format!("snapshot restore failed: {e}")),
        }
    }
}

/// `image`'s rows stamped at `index`, with tombstones for what `previous` had and the
/// image lacks.
fn restamped(image: Store, index: u64, previous: &Store) -> Store {
    let nodes = image
        .nodes
        .into_iter()
        .map(|(key, node)| {
            let mut node = Arc::unwrap_or_clone(node);
            (node.create_index, node.modify_index) = (index, index);
            (key, Arc::new(node))
        })
        .collect();
    let services = image
        .services
        .into_iter()
        .map(|(key, service)| {
            let mut service = Arc::unwrap_or_clone(service);
            (service.create_index, service.modify_index) = (index, index);
            (key, Arc::new(service))
        })
        .collect();
    let checks = image
        .checks
        .into_iter()
        .map(|(key, check)| {
            let mut check = Arc::unwrap_or_clone(check);
            (check.create_index, check.modify_index) = (index, index);
            (key, Arc::new(check))
        })
        .collect();
    let service_names = image
        .service_names
        .into_iter()
        .map(|(name, mut entry)| {
            entry.index = index;
            (name, entry)
        })
        .collect();
    let kv: OrdMap<_, _> = image
        .kv
        .into_iter()
        .map(|(key, entry)| {
            let mut entry = Arc::unwrap_or_clone(entry);
            (entry.create_index, entry.modify_index) = (index, index);
            (key, Arc::new(entry))
        })
        .collect();
    // Every key that had a row or a tombstone, here or in the image, and has no row now:
    // a prefix index a client saw can only have come from one of them.
    let kv_tombstones = previous
        .kv
        .keys()
        .chain(previous.kv_tombstones.keys())
        .chain(image.kv_tombstones.keys())
        .filter(|key| !kv.contains_key(*key))
        .map(|key| (key.clone(), index))
        .collect();
    let sessions = image
        .sessions
        .into_iter()
        .map(|(id, session)| {
            let mut session = Arc::unwrap_or_clone(session);
            (session.create_index, session.modify_index) = (index, index);
            (id, Arc::new(session))
        })
        .collect();
    let mut table_indexes: std::collections::BTreeMap<Table, u64> = [
        Table::Nodes,
        Table::Services,
        Table::Checks,
        Table::Kv,
        Table::Sessions,
    ]
    .into_iter()
    .map(|table| (table, index))
    .collect();
    // The floor under prefix indexes stays: a prefix with no row and no tombstone now
    // must not report less than it did before the restore.
    let floor = previous.kv_graveyard_floor();
    if floor > 0 {
        table_indexes.insert(Table::KvGraveyard, floor);
    }
    let mut store = Store {
        nodes,
        services,
        checks,
        service_names,
        kv,
        kv_tombstones,
        table_indexes,
        last_index: index.max(previous.last_index),
        sessions,
        lock_delays: image.lock_delays,
        session_locks: Default::default(),
        session_checks: Default::default(),
    };
    store.rebuild_session_indexes();
    store
}
