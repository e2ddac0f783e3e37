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
//!
//! Log compaction ([`LogStore::compact_until`]) rides the same queue but runs only
//! after the current batch is durable and reported, so deleting old segments never
//! delays an acknowledgement. Installing a leader's snapshot ([`LogStore::save_snapshot`])
//! also rides it, so the snapshot is durable before any later request (which may reset
//! the log) executes.
//!
//! Reads ([`LogStore::read`]) ride the same queue too: a read runs after every request
//! queued before it is durable, and before anything queued after it, so it sees exactly
//! the log the core had asked for when it queued the read. The Raft core keeps only a
//! bounded cache of entries in memory (see `protocol::raft`, "The log cache"); a leader
//! whose follower needs older entries reads them back through here. A failed read is
//! reported to its caller only: it does not stop the store.
//!
//! # Failures
//! A failed batch (a full disk, an I/O error) is reported once through `on_done`; from
//! then on the disk state past the last successful sync is unknown, so the thread drops
//! every queued request unexecuted until RaftCore asks it to [`LogStore::recover`]: the
//! backend discards whatever the last sync did not cover and returns what the log
//! durably holds, and RaftCore rebuilds its core from that (see `raft_core`). Nothing
//! that was acknowledged is lost (acknowledgements follow a successful sync), and
//! nothing is acknowledged that was not durable.

mod file;
mod memory;
mod stall;

#[cfg(test)]
mod conformance;

pub use file::{Damage, FileBackend, FileOptions, Inspection, RepairReport};
pub use memory::MemoryBackend;
pub use stall::StallingBackend;

use crate::snapshot_store::SnapshotBackend;
use protocol::ids::LogIndex;
use protocol::raft::{Entry, HardState, PersistRequest, RecoveredLog, SnapshotMeta};
use std::sync::mpsc;
use std::sync::Arc;

/// Most persist requests folded into one fsync.
pub const MAX_BATCH_REQUESTS: usize = 4096;

pub use crate::storage_error::StorageError;

/// What a backend found when opened: the hard state and the log as a restart needs it
/// ([`RecoveredLog`]): the term of every entry it holds (contiguous, from index 1 or
/// later once the log was compacted or reset), the configuration entries, and the
/// newest entries whole, as many as fit the backend's [`CacheBudget`]. The open scan
/// reads and checks every record but keeps only that, so a long log is never held in
/// memory whole; older entries are read back with [`LogBackend::read`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    pub hard_state: HardState,
    pub log: RecoveredLog,
}

#[cfg(test)]
impl Recovered {
    /// Every entry, for tests whose budget keeps the whole log in the tail (asserted).
    pub fn entries(&self) -> Vec<Entry> {
        assert_eq!(
            self.log.tail().len(),
            self.log.len(),
            "the recovered tail is not the whole log"
        );
        self.log.tail().cloned().collect()
    }
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
    /// Index of the last stored entry (0 when empty; after a reset or compaction of
    /// everything, the index the log continues after).
    fn last_index(&self) -> LogIndex;
    /// Entries up to and including `index` are covered by a durable snapshot and may be
    /// deleted. Backends drop whatever granularity is cheap (the file backend: whole
    /// segments, never the one being appended to), oldest first, so a crash at any
    /// point leaves a contiguous log; durable when it returns. Entries after `index`
    /// always stay.
    fn compact_until(&mut self, index: LogIndex) -> Result<(), StorageError>;
    /// Discard the whole log; the next append is `index + 1` (a follower installed a
    /// snapshot its log did not contain). Durable at the next `sync`.
    fn reset_after(&mut self, index: LogIndex) -> Result<(), StorageError>;
    /// After a failed append/truncate/sync/save_hard_state: forget everything not covered by the
    /// last successful `sync` (truncate the active segment back to its last synced length, remove
    /// segments created since that sync, drop buffered bytes), make that durable, and return
    /// what the log now durably holds, exactly as `open` would recover it (terms,
    /// configurations, a tail within the backend's cache budget). Used to resume after
    /// a full disk without a restart. Must not trust bytes that a failed fsync may have left in
    /// the page cache only.
    fn recover_after_error(&mut self) -> Result<Recovered, StorageError>;
    /// The stored entries `from..=to` (clamped to the last entry), in order, stopping
    /// before the entry whose payload (`Payload::approx_bytes`) would take the total over
    /// `max_bytes` (the first always comes). Includes appends not yet synced. An error
    /// when `from` is not stored (compacted away, or beyond the end) or a record does not
    /// read back intact.
    fn read(
        &mut self,
        from: LogIndex,
        to: LogIndex,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, StorageError>;
}

/// The error of a [`LogBackend::read`] from an index the log does not hold (`first` is
/// the first index stored, `next` the one after the last).
pub fn check_readable(from: LogIndex, first: u64, next: u64) -> Result<(), StorageError> {
    if from.0 < first || from.0 >= next {
        return Err(StorageError::Io(format!(
            "entry {from} is not in the log (it holds {first}..{})",
            next - 1
        )));
    }
    Ok(())
}

/// Whether one more entry of `bytes` fits a read that holds `taken` entries of `total`
/// bytes so far (the first always fits), as [`LogBackend::read`] bounds its result.
pub fn read_fits(taken: usize, total: usize, bytes: usize, max_bytes: usize) -> bool {
    taken == 0 || total.saturating_add(bytes) <= max_bytes
}

/// Execute a batch of requests in order with one sync. Returns the highest id done.
pub fn persist_batch(
    backend: &mut dyn LogBackend,
    batch: &[PersistRequest],
) -> Result<u64, StorageError> {
    let mut hard_state = None;
    for req in batch {
        if let Some(after) = req.reset_after {
            backend.reset_after(after)?;
        }
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

/// Answer to [`LogStore::recover`]: what the log durably holds once the failed state is
/// discarded.
pub type RecoverReply = tokio::sync::oneshot::Sender<Result<Recovered, StorageError>>;

/// Run on the log store thread once its persist request is durable, before the batch
/// is reported through `on_done` (RaftCore sends the request's riding replies with it,
/// see `PersistRequest::then_send`); dropped unrun if the batch fails.
pub type AfterDurable = Box<dyn FnOnce() + Send>;

/// Where the answer to [`LogStore::read`] goes; called on the log store thread.
pub type ReadReply = Box<dyn FnOnce(Result<Vec<Entry>, StorageError>) + Send>;

/// One queued read (see [`LogBackend::read`]).
struct ReadOp {
    from: LogIndex,
    to: LogIndex,
    max_bytes: usize,
    reply: ReadReply,
}

/// Work for the log store thread, executed in order.
enum LogOp {
    Persist(PersistRequest, Option<AfterDurable>),
    /// Run after the batch it arrives with is durable.
    CompactUntil(LogIndex),
    /// Make a leader's snapshot durable before anything queued after it.
    SaveSnapshot(SnapshotMeta, Vec<u8>),
    /// After a reported failure: discard what was not durable and report what is.
    Recover(RecoverReply),
    /// Read entries back once everything queued before is durable.
    Read(ReadOp),
}

/// One gathered unit of work: persists, then maybe a snapshot save, then maybe a
/// recovery, in that order (the two end a batch: what follows them waits for them).
#[derive(Default)]
struct Round {
    batch: Vec<PersistRequest>,
    /// In request order.
    after_durable: Vec<AfterDurable>,
    save: Option<(SnapshotMeta, Vec<u8>)>,
    recover: Option<RecoverReply>,
    read: Option<ReadOp>,
}

/// The state of the log store thread.
struct Worker {
    backend: Box<dyn LogBackend>,
    snapshots: Arc<dyn SnapshotBackend>,
    on_done: Box<dyn Fn(Result<u64, StorageError>) + Send>,
    /// A write failed and was reported: the disk state past the last sync is unknown, so
    /// everything queued is dropped unexecuted until a `Recover` (requests queued after a
    /// failed one may depend on it; RaftCore rebuilds its core from what `Recover`
    /// returns and only then sends new work).
    failed: bool,
}

impl Worker {
    fn run(&mut self, rx: &mpsc::Receiver<LogOp>) {
        let mut compact_to: Option<LogIndex> = None;
        let mut next = rx.recv().ok();
        while let Some(first) = next.take() {
            let round = Self::gather(first, rx, &mut compact_to);
            if !round.batch.is_empty() && !self.failed {
                let result = persist_batch(self.backend.as_mut(), &round.batch);
                if result.is_ok() {
                    for after in round.after_durable {
                        after();
                    }
                }
                self.report(result);
            }
            if let Some((meta, data)) = round.save {
                if !self.failed {
                    let result = self.snapshots.save(&meta, &data);
                    if let Err(e) = result {
                        self.report(Err(e));
                    }
                }
            }
            if let Some(index) = compact_to.take().filter(|_| !self.failed) {
                if let Err(e) = self.backend.compact_until(index) {
                    // Only disk space is at stake: report and carry on.
                    tracing::error!(error = %e, %index, "raft log compaction failed");
                }
            }
            if let Some(op) = round.read {
                let result = if self.failed {
                    Err(StorageError::Io(
                        "the log store failed and has not recovered yet".into(),
                    ))
                } else {
                    self.backend.read(op.from, op.to, op.max_bytes)
                };
                (op.reply)(result);
            }
            if let Some(reply) = round.recover {
                let recovered = self.backend.recover_after_error();
                if recovered.is_ok() {
                    self.failed = false;
                }
                let _ = reply.send(recovered);
            }
            next = rx.recv().ok();
        }
    }

    /// Take `first` and whatever else is queued, up to a full batch or an op that must
    /// run after the batch (a snapshot save or a recovery orders before what follows it).
    fn gather(
        first: LogOp,
        rx: &mpsc::Receiver<LogOp>,
        compact_to: &mut Option<LogIndex>,
    ) -> Round {
        let mut round = Round::default();
        let mut op = Some(first);
        while let Some(current) = op.take() {
            match current {
                LogOp::Persist(req, after) => {
                    round.batch.push(req);
                    round.after_durable.extend(after);
                }
                LogOp::CompactUntil(i) => *compact_to = Some(compact_to.map_or(i, |c| c.max(i))),
                LogOp::SaveSnapshot(meta, data) => {
                    round.save = Some((meta, data));
                    break;
                }
                LogOp::Recover(reply) => {
                    round.recover = Some(reply);
                    break;
                }
                LogOp::Read(op) => {
                    round.read = Some(op);
                    break;
                }
            }
            if round.batch.len() >= MAX_BATCH_REQUESTS {
                break;
            }
            op = rx.try_recv().ok();
        }
        round
    }

    fn report(&mut self, result: Result<u64, StorageError>) {
        if result.is_err() {
            self.failed = true;
        }
        (self.on_done)(result);
    }
}

/// The handle to the log store thread. Dropping it stops the thread after it drains.
pub struct LogStore {
    tx: mpsc::Sender<LogOp>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LogStore {
    /// Start the I/O thread. `on_done` is called on that thread after each batch with
    /// the highest durable id, or once with the error that stopped the store.
    /// `snapshots` is where a leader's snapshot is saved when a follower installs one.
    pub fn spawn<F>(
        backend: Box<dyn LogBackend>,
        snapshots: Arc<dyn SnapshotBackend>,
        on_done: F,
    ) -> Result<LogStore, StorageError>
    where
        F: Fn(Result<u64, StorageError>) + Send + 'static,
    {
        let (tx, rx) = mpsc::channel::<LogOp>();
        let mut worker = Worker {
            backend,
            snapshots,
            on_done: Box::new(on_done),
            failed: false,
        };
        let thread = std::thread::Builder::new()
            .name("cairn-logstore".into())
            .spawn(move || worker.run(&rx))?;
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

    /// Queue a request; it is executed after every earlier one. `after_durable` runs
    /// once it is durable, before it is reported.
    pub fn submit(
        &self,
        req: PersistRequest,
        after_durable: Option<AfterDurable>,
    ) -> Result<(), StorageError> {
        self.tx
            .send(LogOp::Persist(req, after_durable))
            .map_err(|_| StorageError::Stopped)
    }

    /// Let the backend delete entries up to `index` once the current batch is done (see
    /// the compaction rule in `snapshot_store`).
    pub fn compact_until(&self, index: LogIndex) -> Result<(), StorageError> {
        self.tx
            .send(LogOp::CompactUntil(index))
            .map_err(|_| StorageError::Stopped)
    }

    /// After the store reported a failure: discard what was not durable (see
    /// [`LogBackend::recover_after_error`]) and answer with what the log durably holds.
    /// Until this runs, every request queued after the failure is dropped unexecuted.
    pub fn recover(&self, reply: RecoverReply) -> Result<(), StorageError> {
        self.tx
            .send(LogOp::Recover(reply))
            .map_err(|_| StorageError::Stopped)
    }

    /// Read entries `from..=to` (at most about `max_bytes` of payload, see
    /// [`LogBackend::read`]) once every request queued before is durable; the answer
    /// goes to `reply`, on the log store thread.
    pub fn read(
        &self,
        from: LogIndex,
        to: LogIndex,
        max_bytes: usize,
        reply: ReadReply,
    ) -> Result<(), StorageError> {
        self.tx
            .send(LogOp::Read(ReadOp {
                from,
                to,
                max_bytes,
                reply,
            }))
            .map_err(|_| StorageError::Stopped)
    }

    /// Save a snapshot received from a leader before any later request runs.
    pub fn save_snapshot(&self, meta: SnapshotMeta, data: Vec<u8>) -> Result<(), StorageError> {
        self.tx
            .send(LogOp::SaveSnapshot(meta, data))
            .map_err(|_| StorageError::Stopped)
    }
}
