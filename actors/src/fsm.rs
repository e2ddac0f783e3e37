//! Fsm actor: applies committed entries to the replicated store, in order and exactly
//! once, to its own working store (the whole batch is decoded first); then publishes an
//! O(1) clone of that store as the read view's new immutable version, wakes the parked
//! blocking reads whose keys the batch touched (`protocol::api::watch`), resolves the
//! proposals waiting on those indexes and publishes the applied index. Readers never
//! wait for it and it never waits for readers: there is no lock between them.
//!
//! It runs on RaftCore's thread. It used to have its own, so that applying overlapped
//! with RaftCore's work; but a committed write then crossed one more thread (RaftCore
//! wakes the Fsm, the Fsm wakes the HTTP worker), and on these 2-core machines every
//! wake of a sleeping thread costs 10-30 us. Measured on a 3-server cluster with its
//! data on tmpfs (so the disk does not hide it), one client's PUT at the leader: p50
//! 262 us on a thread of its own, 246 us here; PUT throughput at 64 clients did not
//! change (18-20k req/s either way). What could hold the thread long stays off it: a
//! snapshot is written by a `cairn-snapshot` thread, a leader's snapshot is decoded on
//! the blocking pool (the actor waits for it, so later entries still apply after it),
//! and RaftCore closes each batch at 4 MiB of payload.
//!
//! # Snapshots
//! After a batch, a snapshot is due once `applied − last snapshot index ≥
//! snapshot_threshold` (entries), OR once the payload bytes applied since the last
//! snapshot reach a budget of `max(snapshot_log_bytes, last snapshot's size / 4)`.
//! The byte trigger exists because the Raft core holds every entry since the last
//! snapshot in memory (and the disk log keeps them): with large values, 16384 entries
//! are gigabytes. The budget grows with the store to bound write amplification: each
//! snapshot rewrites the whole store S, so with a budget of S/4 at most ~4 bytes of
//! snapshot are written per byte of log, while the log held in memory stays below S/4
//! (a fixed 64 MiB budget on a 2 GiB store would rewrite it every 64 MiB: 32x).
//!
//! The Fsm keeps the current published version (an `Arc<Store>`: no copy at all, the
//! tables are persistent maps) and hands it to a one-off `cairn-snapshot` thread
//! that streams it, record by record, into the backend ([`SnapshotBackend::save_with`];
//! see `snapshot_store::records`) and then tells RaftCore ([`SnapshotTaken`]), which
//! compacts the log. Batches applied meanwhile copy only the tree paths they change
//! (the version the snapshot holds keeps the old ones), and the stream never holds more
//! than one record, so a snapshot costs memory for what changes during it, not for the
//! store. At most one snapshot is in
//! progress; when it finishes the Fsm checks again (a threshold crossed meanwhile is not
//! lost). A failed one is logged and retried after another threshold of entries or
//! bytes.
//!
//! No ceiling on the image: only each record is bounded (by the decode limit,
//! [`codec::MAX_DECODE_BYTES`]), and every row comes from one command, which is far
//! smaller; a record that could not be read back fails the snapshot instead of being
//! written.

use crate::errors::WriteError;
use crate::read_view::ReadView;
use crate::snapshot_store::{records, SnapshotBackend};
use crate::status::StatusCell;
use actix::prelude::*;
use protocol::api::watch::{lock_keys_touched, services_touched, touched_by, Touch};
use protocol::codec;
use protocol::ids::{LogIndex, Term};
use protocol::raft::{Configuration, Entry, Payload, SnapshotMeta};
use protocol::store::{Command, CommandResult, Store};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::{oneshot, watch};

pub(crate) type ProposalReply = oneshot::Sender<Result<CommandResult, WriteError>>;

/// A client waiting for the entry it proposed at some index, in `term`.
pub(crate) struct Waiter {
    pub(crate) index: u64,
    pub(crate) term: Term,
    pub(crate) reply: ProposalReply,
}

/// Committed entries (consecutive) and the waiters for any of their indexes.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Apply {
    pub(crate) entries: Vec<Entry>,
    pub(crate) waiters: Vec<Waiter>,
}

/// Replace the whole store with a leader's snapshot (a follower installing one). Sent
/// by RaftCore after it queued the snapshot's durable save.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Restore {
    pub(crate) meta: SnapshotMeta,
    pub(crate) data: Vec<u8>,
}

/// The snapshot thread is done: the data section's size when saved, None when failed.
#[derive(Message)]
#[rtype(result = "()")]
struct SnapshotFinished(Option<u64>);

/// A snapshot is durable: RaftCore compacts the log behind it. (Defined by its sender,
/// so the Fsm does not depend on RaftCore, which depends on the Fsm.)
#[derive(Message, Debug)]
#[rtype(result = "()")]
pub(crate) struct SnapshotTaken {
    pub(crate) meta: SnapshotMeta,
    /// Index of the oldest snapshot still retained: the disk log is never cut beyond it.
    pub(crate) oldest_retained: LogIndex,
    /// Payload bytes of trailing entries (below the snapshot) kept in memory.
    pub(crate) trailing_bytes: u64,
}

/// When and where the Fsm takes snapshots.
pub(crate) struct SnapshotPolicy {
    pub(crate) store: Arc<dyn SnapshotBackend>,
    /// Applied entries between snapshots; 0 turns snapshots off.
    pub(crate) threshold: u64,
    /// Told once each snapshot is durable.
    pub(crate) taken: Recipient<SnapshotTaken>,
    /// Largest snapshot record written: the limit recovery reads records with
    /// ([`codec::MAX_DECODE_BYTES`]; tests inject a small one).
    pub(crate) max_record_bytes: usize,
    /// Floor of the byte trigger: a snapshot is due once this many payload bytes (or a
    /// quarter of the last snapshot's size, if larger) were applied since the last one.
    pub(crate) log_bytes: u64,
    /// Payload bytes of trailing entries RaftCore keeps in memory below a snapshot.
    pub(crate) trailing_bytes: u64,
}

/// Default floor of the byte trigger ([`SnapshotPolicy::log_bytes`]).
pub(crate) const SNAPSHOT_LOG_BYTES: u64 = 64 * 1024 * 1024;
/// Default budget of trailing entries in memory ([`SnapshotPolicy::trailing_bytes`]).
pub(crate) const TRAILING_LOG_BYTES: u64 = 64 * 1024 * 1024;

/// Payload bytes of an entry: what it costs in the in-memory log, near enough.
pub(crate) fn payload_bytes(entry: &Entry) -> u64 {
    match &entry.payload {
        Payload::Command(bytes) => bytes.len() as u64,
        Payload::Noop => 0,
        Payload::Configuration(voters) => voters
            .iter()
            .map(|(id, addr)| (id.0.len() + addr.len()) as u64)
            .sum(),
        Payload::Membership(c) => c
            .servers()
            .map(|(id, addr)| (id.0.len() + addr.len()) as u64)
            .sum(),
    }
}

pub(crate) struct Fsm {
    view: ReadView,
    /// The store batches are applied to. Its tables are persistent maps: after each batch
    /// an O(1) clone of it is published in `view` as the new immutable version.
    working: Store,
    last_applied: u64,
    /// Term and configuration at `last_applied`: a snapshot's meta.
    last_applied_term: Term,
    configuration: Configuration,
    applied_tx: watch::Sender<u64>,
    status: Arc<StatusCell>,
    policy: SnapshotPolicy,
    last_snapshot_index: u64,
    /// Payload bytes applied since the last snapshot started.
    bytes_since_snapshot: u64,
    /// Data size of the last snapshot saved (0: none yet in this run).
    last_snapshot_bytes: u64,
    snapshot_running: bool,
    /// A leader's snapshot could not be restored: nothing is applied any more.
    failed: bool,
}

impl Fsm {
    /// `start` is where the store (already loaded into `view`) stands: the recovered
    /// snapshot's meta, or the default (index 0) for an empty store.
    pub(crate) fn new(
        view: ReadView,
        applied_tx: watch::Sender<u64>,
        status: Arc<StatusCell>,
        start: SnapshotMeta,
        policy: SnapshotPolicy,
    ) -> Fsm {
        Fsm {
            working: (*view.read()).clone(),
            view,
            last_applied: start.index.0,
            last_applied_term: start.term,
            configuration: start.membership(),
            applied_tx,
            status,
            policy,
            last_snapshot_index: start.index.0,
            bytes_since_snapshot: 0,
            last_snapshot_bytes: 0,
            snapshot_running: false,
            failed: false,
        }
    }

    /// Payload bytes after which a snapshot is due (see the module docs).
    fn byte_budget(&self) -> u64 {
        self.policy.log_bytes.max(self.last_snapshot_bytes / 4)
    }

    fn maybe_snapshot(&mut self, ctx: &mut Context<Self>) {
        let entries_due = self.last_applied - self.last_snapshot_index >= self.policy.threshold;
        let bytes_due = self.last_applied > self.last_snapshot_index
            && self.bytes_since_snapshot >= self.byte_budget();
        let due = self.policy.threshold > 0 && !self.failed && (entries_due || bytes_due);
        if !due || self.snapshot_running {
            return;
        }
        self.snapshot_running = true;
        let started = Instant::now();
        // The published version IS the snapshot: holding it costs nothing and blocks
        // nobody (later batches publish new versions beside it).
        let store: Arc<Store> = self.view.read();
        let clone_us = started.elapsed().as_micros() as u64;
        let meta = SnapshotMeta {
            index: LogIndex(self.last_applied),
            term: self.last_applied_term,
            configuration: self.configuration.voters.clone(),
            non_voters: self.configuration.non_voters.clone(),
        };
        self.last_snapshot_index = self.last_applied;
        self.bytes_since_snapshot = 0;
        let backend = self.policy.store.clone();
        let taken = self.policy.taken.clone();
        let limits = SnapshotLimits {
            clone_us,
            max_record_bytes: self.policy.max_record_bytes,
            trailing_bytes: self.policy.trailing_bytes,
        };
        let fsm = ctx.address();
        let spawned = std::thread::Builder::new()
            .name("cairn-snapshot".into())
            .spawn(move || {
                let saved = write_snapshot(backend.as_ref(), &taken, meta, &store, limits);
                // Free the clone's keys before the Fsm may clone again.
                drop(store);
                fsm.do_send(SnapshotFinished(saved));
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "could not start the snapshot thread");
            self.snapshot_running = false;
        }
    }
}

/// What `write_snapshot` needs besides the store.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SnapshotLimits {
    /// How long the clone took (for the log line).
    pub(crate) clone_us: u64,
    /// Largest record written (see [`SnapshotPolicy::max_record_bytes`]).
    pub(crate) max_record_bytes: usize,
    /// Passed on to RaftCore in [`SnapshotTaken`].
    pub(crate) trailing_bytes: u64,
}

/// Stream and save a snapshot, then report it (on the snapshot thread). Returns the
/// data section's size, or None when it failed (nothing is left behind then, and the
/// log is not compacted).
pub(crate) fn write_snapshot(
    backend: &dyn SnapshotBackend,
    taken: &Recipient<SnapshotTaken>,
    meta: SnapshotMeta,
    store: &Store,
    limits: SnapshotLimits,
) -> Option<u64> {
    let started = Instant::now();
    let result = backend
        .save_with(&meta, &mut |w| {
            records::write_store(store, w, limits.max_record_bytes)
        })
        .and_then(|bytes| Ok((bytes, backend.list()?)));
    match result {
        Ok((bytes, retained)) => {
            tracing::info!(
                index = meta.index.0,
                bytes,
                clone_us = limits.clone_us,
                write_ms = started.elapsed().as_millis() as u64,
                "raft snapshot saved"
            );
            let oldest_retained = retained.last().map_or(meta.index, |id| id.index);
            taken.do_send(SnapshotTaken {
                meta,
                oldest_retained,
                trailing_bytes: limits.trailing_bytes,
            });
            Some(bytes)
        }
        Err(error) => {
            tracing::error!(%error, index = meta.index.0, "raft snapshot failed; will retry later");
            None
        }
    }
}

impl Actor for Fsm {
    type Context = Context<Self>;
}

/// An entry's payload, decoded before the store's write lock is taken (decoding a batch
/// can take a while; readers should not wait for it).
// Almost every entry is a command, so boxing it would only add an allocation each.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Decoded {
    Command(Command),
    /// The command bytes did not decode (the error text).
    Undecodable(String),
    /// A no-op or configuration entry: nothing for the store but its index.
    NotACommand,
}

/// Decode every command of a batch (no lock held).
pub(crate) fn decode_batch(entries: &[Entry]) -> Vec<Decoded> {
    entries
        .iter()
        .map(|entry| match &entry.payload {
            Payload::Command(bytes) => {
                match codec::decode::<Command>(bytes, codec::MAX_DECODE_BYTES) {
                    Ok(cmd) => Decoded::Command(cmd),
                    Err(e) => Decoded::Undecodable(e.to_string()),
                }
            }
            Payload::Noop | Payload::Configuration(_) | Payload::Membership(_) => {
                Decoded::NotACommand
            }
        })
        .collect()
}

fn apply_decoded(store: &mut Store, index: u64, decoded: &Decoded) -> Option<CommandResult> {
    match decoded {
        Decoded::Command(cmd) => Some(store.apply(index, cmd)),
        Decoded::Undecodable(e) => {
            // Deterministic on every replica: the entry changes nothing.
            store.apply_noop(index);
            Some(CommandResult::Rejected(format!("undecodable command: {e}")))
        }
        Decoded::NotACommand => {
            store.apply_noop(index);
            None
        }
    }
}

impl Handler<Apply> for Fsm {
    type Result = ();

    fn handle(&mut self, msg: Apply, ctx: &mut Context<Self>) {
        if self.failed {
            for waiter in msg.waiters {
                let error = "state machine stopped after a bad snapshot".to_string();
                let _ = waiter.reply.send(Err(WriteError::Storage(error)));
            }
            return;
        }
        let mut results: Vec<(u64, Term, Option<CommandResult>)> =
            Vec::with_capacity(msg.entries.len());
        let decoded = decode_batch(&msg.entries);
        let mut touches: Vec<Touch<'_>> = Vec::with_capacity(decoded.len());
        // Service names a catalog write may move, found before it applies.
        let mut services: Vec<String> = Vec::new();
        // KV keys that session invalidations may release or delete, found before too.
        let mut lock_keys: Vec<String> = Vec::new();
        let mut sessions_touched = false;
        {
            let store = &mut self.working;
            for (entry, decoded) in msg.entries.iter().zip(&decoded) {
                if entry.index.0 <= self.last_applied {
                    continue; // exactly once
                }
                if entry.index.0 != self.last_applied + 1 {
                    tracing::error!(
                        index = entry.index.0,
                        last_applied = self.last_applied,
                        "gap in committed entries; not applying"
                    );
                    break;
                }
                if let Decoded::Command(cmd) = decoded {
                    services.extend(services_touched(store, cmd));
                    let (sessions, keys) = lock_keys_touched(store, cmd);
                    sessions_touched |= sessions;
                    lock_keys.extend(keys);
                }
                let result = apply_decoded(store, entry.index.0, decoded);
                if let Decoded::Command(cmd) = decoded {
                    touches.extend(touched_by(cmd));
                }
                self.bytes_since_snapshot += payload_bytes(entry);
                if let Some(membership) = entry.payload.membership() {
                    self.configuration = membership;
                }
                self.last_applied = entry.index.0;
                self.last_applied_term = entry.term;
                results.push((entry.index.0, entry.term, result));
            }
        }
        touches.extend(services.iter().map(|name| Touch::Service(name)));
        touches.extend(lock_keys.iter().map(|key| Touch::KvKey(key)));
        if sessions_touched {
            touches.push(Touch::Sessions);
        }
        // Publish before answering, so a writer that reads next sees its own write; the
        // parked reads whose keys the batch touched wake now.
        self.view.publish(Arc::new(self.working.clone()), &touches);
        let applied = self.last_applied;
        self.status.update(|s| s.applied_index = applied);
        self.applied_tx.send_replace(applied);
        for waiter in msg.waiters {
            // `results` holds consecutive indexes, so a waiter's slot is a subtraction.
            let found = results
                .first()
                .and_then(|(first, _, _)| waiter.index.checked_sub(*first))
                .and_then(|pos| results.get(pos as usize));
            let answer = match found {
                Some((_, term, Some(result))) if *term == waiter.term => Ok(result.clone()),
                Some(_) => Err(WriteError::LeadershipLost),
                None => {
                    tracing::error!(
                        index = waiter.index,
                        "waiter for an entry that was not applied"
                    );
                    Err(WriteError::LeadershipLost)
                }
            };
            let _ = waiter.reply.send(answer);
        }
        self.maybe_snapshot(ctx);
    }
}

impl Handler<SnapshotFinished> for Fsm {
    type Result = ();

    fn handle(&mut self, msg: SnapshotFinished, ctx: &mut Context<Self>) {
        self.snapshot_running = false;
        if let Some(bytes) = msg.0 {
            self.last_snapshot_bytes = bytes;
        }
        self.maybe_snapshot(ctx);
    }
}

impl Handler<Restore> for Fsm {
    type Result = ();

    fn handle(&mut self, msg: Restore, ctx: &mut Context<Self>) {
        if msg.meta.index.0 <= self.last_applied {
            return; // already past it
        }
        // An image has no size ceiling: decode it on the blocking pool, never on the
        // thread RaftCore shares. `ctx.wait` holds this actor's later messages (the
        // entries after the snapshot) until it is installed, so the order stays.
        let max_record_bytes = self.policy.max_record_bytes;
        let Restore { meta, data } = msg;
        let bytes = data.len() as u64;
        let decode = tokio::task::spawn_blocking(move || {
            records::store_from_bytes(&data, max_record_bytes).map_err(|e| e.to_string())
        });
        ctx.wait(
            actix::fut::wrap_future::<_, Self>(decode).map(move |joined, fsm, _| {
                let decoded = joined.map_err(|e| e.to_string()).and_then(|d| d);
                fsm.install(decoded, meta, bytes);
            }),
        );
    }
}

impl Fsm {
    /// Install a leader's decoded snapshot as the whole store (see [`Restore`]).
    fn install(&mut self, decoded: Result<Store, String>, meta: SnapshotMeta, bytes: u64) {
        match decoded {
            Ok(store) => {
                self.working = store;
                self.view.replace(Arc::new(self.working.clone()));
                self.bytes_since_snapshot = 0;
                self.last_snapshot_bytes = bytes;
                self.last_applied = meta.index.0;
                self.last_applied_term = meta.term;
                self.configuration = meta.membership();
                self.last_snapshot_index = self.last_applied;
                let applied = self.last_applied;
                self.status.update(|s| s.applied_index = applied);
                self.applied_tx.send_replace(applied);
                // As hashicorp/raft's "Installed remote snapshot": a catch-up by snapshot
                // is worth one line (operators and tests look for it).
                tracing::info!(
                    index = applied,
                    bytes,
                    "raft: installed a snapshot from the leader"
                );
            }
            Err(e) => {
                // The leader's image does not decode: applying later entries on top of
                // the old store would diverge, so stop applying.
                tracing::error!(error = %e, index = meta.index.0, "snapshot from the leader does not decode; this server stops applying");
                self.failed = true;
            }
        }
    }
}
