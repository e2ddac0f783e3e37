//! A slow disk on demand, for failure-injection runs: wraps a backend so that every
//! `sync` first waits for the stall the agent's fault rules currently ask for
//! (`PUT /v1/cairn/faults/disk?stall=200ms`, only with `-fault-injection`). Everything
//! else passes straight through, so with no stall set the wrapper costs one atomic load
//! per fsync. The wait happens on the log store thread, exactly where a slow fsync
//! would block: acknowledgements wait, reads and heartbeats do not.

use super::{LogBackend, Recovered, StorageError};
use crate::faults::FaultRules;
use protocol::ids::LogIndex;
use protocol::raft::{Entry, HardState};

pub struct StallingBackend {
    inner: Box<dyn LogBackend>,
    faults: FaultRules,
}

impl StallingBackend {
    pub fn new(inner: Box<dyn LogBackend>, faults: FaultRules) -> StallingBackend {
        StallingBackend { inner, faults }
    }

    fn stall(&self) {
        let stall = self.faults.disk_stall();
        if !stall.is_zero() {
            std::thread::sleep(stall);
        }
    }
}

impl LogBackend for StallingBackend {
    fn truncate_from(&mut self, from: LogIndex) -> Result<(), StorageError> {
        self.inner.truncate_from(from)
    }
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.inner.append(entries)
    }
    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError> {
        self.stall();
        self.inner.save_hard_state(hard_state)
    }
    fn sync(&mut self) -> Result<(), StorageError> {
        self.stall();
        self.inner.sync()
    }
    fn last_index(&self) -> LogIndex {
        self.inner.last_index()
    }
    fn compact_until(&mut self, index: LogIndex) -> Result<(), StorageError> {
        self.inner.compact_until(index)
    }
    fn reset_after(&mut self, index: LogIndex) -> Result<(), StorageError> {
        self.inner.reset_after(index)
    }
    fn recover_after_error(&mut self) -> Result<Recovered, StorageError> {
        self.inner.recover_after_error()
    }
    fn read(
        &mut self,
        from: LogIndex,
        to: LogIndex,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        self.inner.read(from, to, max_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log_store::MemoryBackend;
    use std::time::{Duration, Instant};

    #[test]
    fn syncs_wait_for_the_stall_in_force_and_not_after_it_is_lifted() {
        let faults = FaultRules::new();
        let mut backend = StallingBackend::new(Box::new(MemoryBackend::new()), faults.clone());
        faults.set_disk_stall(Duration::from_millis(50));
        let started = Instant::now();
        backend.sync().unwrap();
        // A lower bound only: sleeping never returns early, however loaded the machine.
        assert!(started.elapsed() >= Duration::from_millis(50));
        faults.clear();
        assert_eq!(faults.disk_stall(), Duration::ZERO);
        backend.append(&[]).unwrap();
        backend.sync().unwrap();
    }
}
