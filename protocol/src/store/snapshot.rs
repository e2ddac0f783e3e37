//! The store as a stream of snapshot records, and back.
//!
//! A snapshot is written and read ONE RECORD AT A TIME (one table row, or the store's
//! few scalars), so neither side ever holds an encoded image of the whole store and no
//! single decode is larger than a row. The shell frames, checksums and stores the
//! records (`actors::snapshot_store`); this module only says what they are:
//!
//! - [`Store::snapshot_records`] iterates borrowed [`SnapshotRecordRef`]s in a fixed
//!   order: [`SnapshotRecord::Header`] first, then nodes, services, checks, service-name
//!   indexes, KV entries, tombstones, sessions, lock-delays, and [`SnapshotRecord::End`]
//!   (with the count of records before it, so a stream cut at a record boundary is
//!   detected).
//! - Record kinds are versioned by position: a new kind is appended after `End` in the
//!   enums (the codec encodes the variant's position), so streams written before it
//!   existed decode unchanged; its place in the stream order is given by [`section`].
//!   `Session` and `LockDelay` came this way (streams without them load as stores with
//!   no sessions).
//! - [`StoreBuilder`] takes owned [`SnapshotRecord`]s in that order and rebuilds the
//!   store. The instance sets of the service-name index are DERIVED (rebuilt from the
//!   services, so no record grows with the number of instances of one name); the
//!   per-name index is state (it remembers deleted instances) and is stored.
//!
//! `SnapshotRecordRef` and `SnapshotRecord` have the same variants in the same order,
//! so the codec encodes a borrowed record exactly as it decodes the owned one.

use super::{fold, Check, KvEntry, Node, Service, Session, Store, Table};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// One record of a snapshot stream, owned (what is decoded).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub enum SnapshotRecord {
    /// The store's scalars: first record of every stream.
    Header {
        last_index: u64,
        table_indexes: BTreeMap<Table, u64>,
    },
    Node {
        key: String,
        node: Node,
    },
    Service {
        key: (String, String),
        service: Service,
    },
    Check {
        key: (String, String),
        check: Check,
    },
    /// The per-service-name index (its instance set is rebuilt from the services).
    ServiceName {
        name_key: String,
        index: u64,
    },
    Kv(KvEntry),
    Tombstone {
        key: String,
        deleted_at: u64,
    },
    /// Last record: how many records came before it.
    End {
        records: u64,
    },
    /// A session (after the tombstones; appended after `End` in this enum).
    Session(Session),
    /// A key's lock-delay: it cannot be acquired before `until_ms` (after the sessions).
    LockDelay {
        key: String,
        until_ms: u64,
    },
}

/// One record of a snapshot stream, borrowed from the store (what is encoded).
#[derive(Debug, Clone, Serialize)]
pub enum SnapshotRecordRef<'a> {
    Header {
        last_index: u64,
        table_indexes: &'a BTreeMap<Table, u64>,
    },
    Node {
        key: &'a String,
        node: &'a Node,
    },
    Service {
        key: &'a (String, String),
        service: &'a Service,
    },
    Check {
        key: &'a (String, String),
        check: &'a Check,
    },
    ServiceName {
        name_key: &'a String,
        index: u64,
    },
    Kv(&'a KvEntry),
    Tombstone {
        key: &'a String,
        deleted_at: u64,
    },
    End {
        records: u64,
    },
    Session(&'a Session),
    LockDelay {
        key: &'a String,
        until_ms: u64,
    },
}

impl Store {
    /// Every record of this store's snapshot, `Header` first and `End` last. Lazy: it
    /// borrows the rows, nothing is copied.
    pub fn snapshot_records(&self) -> impl Iterator<Item = SnapshotRecordRef<'_>> + '_ {
        let header = std::iter::once(SnapshotRecordRef::Header {
            last_index: self.last_index,
            table_indexes: &self.table_indexes,
        });
        let nodes = self
            .nodes
            .iter()
            .map(|(key, node)| SnapshotRecordRef::Node {
                key,
                node: node.as_ref(),
            });
        let services = self
            .services
            .iter()
            .map(|(key, service)| SnapshotRecordRef::Service {
                key,
                service: service.as_ref(),
            });
        let checks = self
            .checks
            .iter()
            .map(|(key, check)| SnapshotRecordRef::Check {
                key,
                check: check.as_ref(),
            });
        let names = self
            .service_names
            .iter()
            .map(|(name_key, e)| SnapshotRecordRef::ServiceName {
                name_key,
                index: e.index,
            });
        let kv = self.kv.values().map(|e| SnapshotRecordRef::Kv(e.as_ref()));
        let tombstones =
            self.kv_tombstones
                .iter()
                .map(|(key, deleted_at)| SnapshotRecordRef::Tombstone {
                    key,
                    deleted_at: *deleted_at,
                });
        let sessions = self
            .sessions
            .values()
            .map(|s| SnapshotRecordRef::Session(s.as_ref()));
        let lock_delays =
            self.lock_delays
                .iter()
                .map(|(key, until_ms)| SnapshotRecordRef::LockDelay {
                    key,
                    until_ms: *until_ms,
                });
        let end = std::iter::once(SnapshotRecordRef::End {
            records: self.snapshot_record_count(),
        });
        header
            .chain(nodes)
            .chain(services)
            .chain(checks)
            .chain(names)
            .chain(kv)
            .chain(tombstones)
            .chain(sessions)
            .chain(lock_delays)
            .chain(end)
    }

    /// Records before `End` (the header and one per row).
    fn snapshot_record_count(&self) -> u64 {
        let rows = self.nodes.len()
            + self.services.len()
            + self.checks.len()
            + self.service_names.len()
            + self.kv.len()
            + self.kv_tombstones.len()
            + self.sessions.len()
            + self.lock_delays.len();
        1 + rows as u64
    }
}

/// Why a record stream does not make a store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestoreError {
    #[error("snapshot record {position}: {detail}")]
    BadRecord { position: u64, detail: String },
    #[error("snapshot stream ended without its end record after {records} records")]
    Unfinished { records: u64 },
}

/// Rebuilds a [`Store`] from its snapshot records, pushed in stream order.
#[derive(Debug, Default)]
pub struct StoreBuilder {
    store: Store,
    /// Records taken so far.
    records: u64,
    /// Section of the last record taken (see [`section`]).
    section: u8,
    /// Service names whose index record arrived.
    indexed_names: BTreeSet<String>,
    /// The end record arrived (nothing may follow).
    ended: bool,
}

/// Section of the stream a record belongs to: sections come in this order.
fn section(record: &SnapshotRecord) -> u8 {
    match record {
        SnapshotRecord::Header { .. } => 0,
        SnapshotRecord::Node { .. } => 1,
        SnapshotRecord::Service { .. } => 2,
        SnapshotRecord::Check { .. } => 3,
        SnapshotRecord::ServiceName { .. } => 4,
        SnapshotRecord::Kv(_) => 5,
        SnapshotRecord::Tombstone { .. } => 6,
        SnapshotRecord::Session(_) => 7,
        SnapshotRecord::LockDelay { .. } => 8,
        SnapshotRecord::End { .. } => 9,
    }
}

impl StoreBuilder {
    pub fn new() -> StoreBuilder {
        StoreBuilder::default()
    }

    /// Take the next record. Refuses a stream out of order (header not first, sections
    /// mixed up, duplicate keys, anything after the end, a wrong record count).
    pub fn push(&mut self, record: SnapshotRecord) -> Result<(), RestoreError> {
        let position = self.records;
        let bad = |detail: String| RestoreError::BadRecord { position, detail };
        if self.ended {
            return Err(bad("record after the end record".into()));
        }
        let is_header = matches!(record, SnapshotRecord::Header { .. });
        if (position == 0) != is_header {
            return Err(bad("the header must come first, and only once".into()));
        }
        let section = section(&record);
        if section < self.section {
            return Err(bad("record out of order".into()));
        }
        self.section = section;
        let store = &mut self.store;
        let duplicate = match record {
            SnapshotRecord::Header {
                last_index,
                table_indexes,
            } => {
                store.last_index = last_index;
                store.table_indexes = table_indexes;
                false
            }
            SnapshotRecord::Node { key, node } => store.nodes.insert(key, Arc::new(node)).is_some(),
            SnapshotRecord::Service { key, service } => {
                let name_key = fold(&service.service);
                let entry = store.service_names.entry(name_key).or_default();
                entry.instances.insert(key.clone());
                store.services.insert(key, Arc::new(service)).is_some()
            }
            SnapshotRecord::Check { key, check } => {
                store.checks.insert(key, Arc::new(check)).is_some()
            }
            SnapshotRecord::ServiceName { name_key, index } => {
                let Some(entry) = store.service_names.get_mut(&name_key) else {
                    return Err(bad(format!("service name {name_key:?} has no instance")));
                };
                entry.index = index;
                !self.indexed_names.insert(name_key)
            }
            SnapshotRecord::Kv(entry) => store
                .kv
                .insert(entry.key.clone(), Arc::new(entry))
                .is_some(),
            SnapshotRecord::Tombstone { key, deleted_at } => {
                store.kv_tombstones.insert(key, deleted_at).is_some()
            }
            SnapshotRecord::Session(session) => store
                .sessions
                .insert(session.id.clone(), Arc::new(session))
                .is_some(),
            SnapshotRecord::LockDelay { key, until_ms } => {
                store.lock_delays.insert(key, until_ms).is_some()
            }
            SnapshotRecord::End { records } => {
                if records != position {
                    return Err(bad(format!(
                        "end record counts {records} records, the stream had {position}"
                    )));
                }
                self.ended = true;
                false
            }
        };
        if duplicate {
            return Err(bad("duplicate key".into()));
        }
        self.records += 1;
        Ok(())
    }

    /// The store, once the end record was taken.
    pub fn finish(self) -> Result<Store, RestoreError> {
        if !self.ended {
            return Err(RestoreError::Unfinished {
                records: self.records,
            });
        }
        let unindexed = self
            .store
            .service_names
            .keys()
            .find(|name| !self.indexed_names.contains(*name));
        if let Some(name) = unindexed {
            return Err(RestoreError::BadRecord {
                position: self.records,
                detail: format!("service name {name:?} has no index record"),
            });
        }
        let mut store = self.store;
        store.rebuild_session_indexes();
        Ok(store)
    }
}

impl Store {
    /// Rebuild a store from its records (as [`StoreBuilder`], for records at hand).
    pub fn from_records(
        records: impl IntoIterator<Item = SnapshotRecord>,
    ) -> Result<Store, RestoreError> {
        let mut builder = StoreBuilder::new();
        for record in records {
            builder.push(record)?;
        }
        builder.finish()
    }
}
