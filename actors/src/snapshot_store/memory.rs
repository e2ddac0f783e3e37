//! In-memory snapshots for `-dev` and tests. Clones share storage (a test "restarts"
//! with a clone) and the CRC is checked on load just as on disk.

use super::{Snapshot, SnapshotBackend, SnapshotId, RETAINED_SNAPSHOTS};
use crate::log_store::StorageError;
use parking_lot::Mutex;
use protocol::raft::SnapshotMeta;
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct MemorySnapshotStore {
    /// Oldest first: (snapshot, crc32 of its data when saved).
    saved: Arc<Mutex<Vec<(Snapshot, u32)>>>,
}

impl MemorySnapshotStore {
    pub fn new() -> MemorySnapshotStore {
        MemorySnapshotStore::default()
    }

    /// Test hook: damage the newest snapshot's data, as a bad disk would.
    #[cfg(test)]
    pub(crate) fn corrupt_newest(&self) {
        if let Some((snap, _)) = self.saved.lock().last_mut() {
            match snap.data.first_mut() {
                Some(b) => *b ^= 0xff,
                None => snap.data.push(1),
            }
        }
    }
}

impl SnapshotBackend for MemorySnapshotStore {
    fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        let mut saved = self.saved.lock();
        let id = SnapshotId::of(meta);
        saved.retain(|(s, _)| SnapshotId::of(&s.meta) != id);
        saved.push((
            Snapshot {
                meta: meta.clone(),
                data: data.to_vec(),
            },
            crc32fast::hash(data),
        ));
        saved.sort_by_key(|(s, _)| SnapshotId::of(&s.meta));
        let excess = saved.len().saturating_sub(RETAINED_SNAPSHOTS);
        saved.drain(..excess);
        Ok(())
    }

    fn list(&self) -> Result<Vec<SnapshotId>, StorageError> {
        Ok(self
            .saved
            .lock()
            .iter()
            .rev()
            .map(|(s, _)| SnapshotId::of(&s.meta))
            .collect())
    }

    fn quarantine(&self, id: SnapshotId) -> Result<(), StorageError> {
        self.saved
            .lock()
            .retain(|(s, _)| SnapshotId::of(&s.meta) != id);
        Ok(())
    }

    fn load(&self, id: SnapshotId) -> Result<Snapshot, StorageError> {
        let saved = self.saved.lock();
        let (snap, crc) = saved
            .iter()
            .find(|(s, _)| SnapshotId::of(&s.meta) == id)
            .ok_or_else(|| StorageError::Io(format!("no snapshot {}-{}", id.term, id.index)))?;
        if crc32fast::hash(&snap.data) != *crc {
            return Err(StorageError::Corrupt {
                what: format!("snapshot {}-{}", id.term, id.index),
                detail: "crc mismatch".into(),
            });
        }
        Ok(snap.clone())
    }
}
