//! In-memory backend for `-dev` and tests. Clones share the same storage, so a test can
//! "reopen" it to simulate a restart.

use super::{check_readable, read_fits, LogBackend, Recovered, StorageError};
use parking_lot::Mutex;
use protocol::ids::LogIndex;
use protocol::raft::{CacheBudget, Entry, HardState, RecoveredLog};
use std::sync::Arc;

#[derive(Default)]
struct State {
    hard_state: HardState,
    /// Index of `entries[0]` (or of the next append when empty).
    first: u64,
    entries: Vec<Entry>,
    /// Next index as of the last `sync` (lowered by truncations and resets): what
    /// `recover_after_error` keeps.
    synced_next: u64,
}

impl State {
    fn next_index(&self) -> u64 {
        self.first.max(1) + self.entries.len() as u64
    }
}

#[derive(Clone, Default)]
pub struct MemoryBackend {
    state: Arc<Mutex<State>>,
    /// The tail `recover` keeps whole.
    budget: CacheBudget,
}

impl MemoryBackend {
    pub fn new() -> MemoryBackend {
        MemoryBackend::default()
    }

    /// Recover tails within `budget` (the default: the core's default cache budget).
    pub fn with_budget(mut self, budget: CacheBudget) -> MemoryBackend {
        self.budget = budget;
        self
    }

    /// What a restart would recover: terms and configurations of every entry, a tail
    /// within the budget.
    pub fn recover(&self) -> Recovered {
        let state = self.state.lock();
        state.recovered(self.budget)
    }
}

impl State {
    fn recovered(&self, budget: CacheBudget) -> Recovered {
        let mut log = RecoveredLog::new(budget);
        for e in &self.entries {
            // Appends are checked to be contiguous, so this cannot fail.
            if let Err(why) = log.push(e.clone()) {
                tracing::error!(%why, "memory log is not contiguous");
            }
        }
        Recovered {
            hard_state: self.hard_state.clone(),
            log,
        }
    }
}

impl LogBackend for MemoryBackend {
    fn truncate_from(&mut self, from: LogIndex) -> Result<(), StorageError> {
        let mut state = self.state.lock();
        let keep = from.0.saturating_sub(state.first.max(1)) as usize;
        state.entries.truncate(keep);
        state.synced_next = state.synced_next.min(from.0.max(state.first.max(1)));
        Ok(())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        let mut state = self.state.lock();
        for e in entries {
            let expected = state.next_index();
            if e.index.0 != expected {
                return Err(StorageError::Io(format!(
                    "append of index {} but next is {expected}",
                    e.index
                )));
            }
            state.first = state.first.max(1);
            state.entries.push(e.clone());
        }
        Ok(())
    }

    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError> {
        self.state.lock().hard_state = hard_state.clone();
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        let mut state = self.state.lock();
        state.synced_next = state.next_index();
        Ok(())
    }

    fn last_index(&self) -> LogIndex {
        LogIndex(self.state.lock().next_index() - 1)
    }

    fn compact_until(&mut self, index: LogIndex) -> Result<(), StorageError> {
        let mut state = self.state.lock();
        let first = state.first.max(1);
        let drop =
            (index.0.saturating_add(1).saturating_sub(first) as usize).min(state.entries.len());
        state.entries.drain(..drop);
        state.first = first + drop as u64;
        Ok(())
    }

    fn reset_after(&mut self, index: LogIndex) -> Result<(), StorageError> {
        let mut state = self.state.lock();
        state.entries.clear();
        state.first = index.0 + 1;
        state.synced_next = state.first;
        Ok(())
    }

    fn read(
        &mut self,
        from: LogIndex,
        to: LogIndex,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let state = self.state.lock();
        let first = state.first.max(1);
        check_readable(from, first, state.next_index())?;
        let mut out = Vec::new();
        let mut total = 0usize;
        for e in &state.entries[(from.0 - first) as usize..] {
            let bytes = e.payload.approx_bytes();
            if e.index > to || !read_fits(out.len(), total, bytes, max_bytes) {
                break;
            }
            total = total.saturating_add(bytes);
            out.push(e.clone());
        }
        Ok(out)
    }

    fn recover_after_error(&mut self) -> Result<Recovered, StorageError> {
        let mut state = self.state.lock();
        let keep = state.synced_next.saturating_sub(state.first.max(1)) as usize;
        state.entries.truncate(keep);
        Ok(state.recovered(self.budget))
    }
}
