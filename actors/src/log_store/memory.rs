//! In-memory backend for `-dev` and tests. Clones share the same storage, so a test can
//! "reopen" it to simulate a restart.

use super::{LogBackend, Recovered, StorageError};
use parking_lot::Mutex;
use protocol::ids::LogIndex;
use protocol::raft::{Entry, HardState};
use std::sync::Arc;

#[derive(Clone, Default)]
pub struct MemoryBackend {
    state: Arc<Mutex<Recovered>>,
}

impl MemoryBackend {
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    /// What a restart would recover.
    pub fn recover(&self) -> Recovered {
        self.state.lock().clone()
    }
}

impl LogBackend for MemoryBackend {
    fn truncate_from(&mut self, from: LogIndex) -> Result<(), StorageError> {
        let keep = from.0.saturating_sub(1) as usize;
        self.state.lock().entries.truncate(keep);
        Ok(())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let mut state = self.state.lock();
        for e in entries {
            let expected = state.entries.len() as u64 + 1;
            if e.index.0 != expected {
                return Err(StorageError::Io(format!(
                    "append of index {} but next is {expected}",
                    e.index
                )));
            }
            state.entries.push(e.clone());
        }
        Ok(())
    }

    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError> {
        self.state.lock().hard_state = hard_state.clone();
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        Ok(())
    }

    fn last_index(&self) -> LogIndex {
        LogIndex(self.state.lock().entries.len() as u64)
    }
}
