//! In-memory snapshots for `-dev` and tests. Clones share storage (a test "restarts"
//! with a clone). The data section is the same record stream as on disk, and the CRC
//! over it is checked on load just as on disk.

use super::{
    stream_verified, CrcWriter, DataReader, DataSummary, DataWriter, LoadError, SnapshotBackend,
    SnapshotId, RETAINED_SNAPSHOTS,
};
use crate::storage_error::StorageError;
use parking_lot::Mutex;
use protocol::raft::SnapshotMeta;
use std::sync::Arc;

/// One saved snapshot: meta, data section, crc32 of the data when saved.
type Saved = (SnapshotMeta, Arc<Vec<u8>>, u32);

#[derive(Clone, Default)]
pub struct MemorySnapshotStore {
    /// Oldest first.
    saved: Arc<Mutex<Vec<Saved>>>,
}

impl MemorySnapshotStore {
    pub fn new() -> MemorySnapshotStore {
        MemorySnapshotStore::default()
    }

    /// Test hook: damage the newest snapshot's data, as a bad disk would.
    #[cfg(test)]
    pub(crate) fn corrupt_newest(&self) {
        if let Some((_, data, _)) = self.saved.lock().last_mut() {
            let data = Arc::make_mut(data);
            match data.first_mut() {
                Some(b) => *b ^= 0xff,
                None => data.push(1),
            }
        }
    }
}

impl SnapshotBackend for MemorySnapshotStore {
    fn save_with(&self, meta: &SnapshotMeta, write: DataWriter<'_>) -> Result<u64, StorageError> {
        // Written outside the lock: loads of other snapshots go on meanwhile.
        let mut out = CrcWriter::new(Vec::new());
        write(&mut out)?;
        let data = std::mem::take(&mut out.inner);
        let (len, crc) = out.finish();
        let mut saved = self.saved.lock();
        let id = SnapshotId::of(meta);
        saved.retain(|(m, _, _)| SnapshotId::of(m) != id);
        saved.push((meta.clone(), Arc::new(data), crc));
        saved.sort_by_key(|(m, _, _)| SnapshotId::of(m));
        let excess = saved.len().saturating_sub(RETAINED_SNAPSHOTS);
        saved.drain(..excess);
        Ok(len)
    }

    fn list(&self) -> Result<Vec<SnapshotId>, StorageError> {
        Ok(self
            .saved
            .lock()
            .iter()
            .rev()
            .map(|(m, _, _)| SnapshotId::of(m))
            .collect())
    }

    fn quarantine(&self, id: SnapshotId) -> Result<(), StorageError> {
        self.saved
            .lock()
            .retain(|(m, _, _)| SnapshotId::of(m) != id);
        Ok(())
    }

    fn data_summary(
        &self,
        id: SnapshotId,
    ) -> Result<Option<(SnapshotMeta, DataSummary)>, LoadError> {
        let saved = self.saved.lock();
        let (meta, data, crc) = saved
            .iter()
            .find(|(m, _, _)| SnapshotId::of(m) == id)
            .ok_or_else(|| StorageError::Io(format!("no snapshot {}-{}", id.term, id.index)))?;
        let summary = DataSummary {
            len: data.len() as u64,
            crc: *crc,
        };
        Ok(Some((meta.clone(), summary)))
    }

    fn load_with(&self, id: SnapshotId, read: DataReader<'_>) -> Result<SnapshotMeta, LoadError> {
        let what = format!("snapshot {}-{}", id.term, id.index);
        let (meta, data, crc) = self
            .saved
            .lock()
            .iter()
            .find(|(m, _, _)| SnapshotId::of(m) == id)
            .cloned()
            .ok_or_else(|| StorageError::Io(format!("no {what}")))?;
        stream_verified(
            &what,
            &meta,
            data.as_slice(),
            (data.len() as u64, crc),
            read,
        )?;
        Ok(meta)
    }
}
