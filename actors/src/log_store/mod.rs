//! LogStore: the durable Raft log and hard state, behind the [`LogBackend`] trait (a
//! file implementation for real servers, a memory one for `-dev` and tests; both pass
//! the same conformance suite).
//!
//! The store runs on its own OS thread so that blocking writes and fsyncs never stall
//! an actix arbiter. It is the "one ordered I/O queue" of the architecture: persist
//! requests are executed strictly in id order, and it does GROUP COMMIT: it takes every
//! request waiting in its queue (up to [`MAX_BATCH_REQUESTS`]), writes them all, makes
//! them durable with one fdatasync, then reports the highest id. While one batch is on
//! disk, new requests pile up and become the next batch.

mod file;
mod memory;

#[cfg(test)]
mod conformance;

pub use file::{FileBackend, FileOptions};
pub use memory::MemoryBackend;

use protocol::ids::LogIndex;
use protocol::raft::{Entry, HardState, PersistRequest};
use std::sync::mpsc;

/// Most persist requests folded into one fsync.
pub const MAX_BATCH_REQUESTS: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("{0}")]
    Io(String),
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("log store is stopped")]
    Stopped,
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        StorageError::Io(e.to_string())
    }
}

/// What a backend found when opened: the hard state and every entry, contiguous from
/// index 1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    pub hard_state: HardState,
    pub entries: Vec<Entry>,
}

/// Durable storage of the Raft log and hard state. Writes (`append`, `truncate_from`)
/// may be buffered until `sync`; `save_hard_state` is durable when it returns.
pub trait LogBackend: Send + 'static {
    /// Remove every entry with index >= `from` (no-op beyond the end).
    fn truncate_from(&mut self, from: LogIndex) -> Result<(), StorageError>;
    /// Append entries; the first must directly follow the current last entry.
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError>;
    /// Replace the hard state durably (write, fsync, rename, fsync the directory).
    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError>;
    /// Make every earlier append and truncation durable.
    fn sync(&mut self) -> Result<(), StorageError>;
    /// Index of the last stored entry (0 when empty).
    fn last_index(&self) -> LogIndex;
}

/// Execute a batch of requests in order with one sync. Returns the highest id done.
pub fn persist_batch(
    backend: &mut dyn LogBackend,
    batch: &[PersistRequest],
) -> Result<u64, StorageError> {
    let mut hard_state = None;
    for req in batch {
        if let Some(from) = req.truncate_from {
            backend.truncate_from(from)?;
        }
        if !req.entries.is_empty() {
            backend.append(&req.entries)?;
        }
        if let Some(hs) = &req.hard_state {
            hard_state = Some(hs);
        }
    }
    backend.sync()?;
    if let Some(hs) = hard_state {
        backend.save_hard_state(hs)?;
    }
    Ok(batch.last().map(|r| r.id).unwrap_or(0))
}

/// The handle to the log store thread. Dropping it stops the thread after it drains.
pub struct LogStore {
    tx: mpsc::Sender<PersistRequest>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogStore {
    /// Start the I/O thread. `on_done` is called on that thread after each batch with
    /// the highest durable id, or once with the error that stopped the store.
    pub fn spawn<F>(mut backend: Box<dyn LogBackend>, on_done: F) -> Result<LogStore, StorageError>
    where
        F: Fn(Result<u64, StorageError>) + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<PersistRequest>();
        let thread = std::thread::Builder::new()
            .name("cairn-logstore".into())
            .spawn(move || {
                let mut batch = Vec::new();
                while let Ok(first) = rx.recv() {
                    batch.clear();
                    batch.push(first);
                    while batch.len() < MAX_BATCH_REQUESTS {
                        match rx.try_recv() {
                            Ok(req) => batch.push(req),
                            Err(_) => break,
                        }
                    }
                    let result = persist_batch(backend.as_mut(), &batch);
                    let failed = result.is_err();
                    on_done(result);
                    if failed {
                        // The disk state is unknown now; refuse to continue.
                        return;
                    }
                }
            })?;
        Ok(LogStore {
            tx,
            thread: Some(thread),
        })
    }

    /// Finish every queued request, then stop the thread and close the files.
    pub fn stop(mut self) {
        let (dead, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, dead));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Queue a request; it is executed after every earlier one.
    pub fn submit(&self, req: PersistRequest) -> Result<(), StorageError> {
        self.tx.send(req).map_err(|_| StorageError::Stopped)
    }
}
