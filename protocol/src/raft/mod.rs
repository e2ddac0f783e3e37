//! The Raft core: a pure, deterministic state machine. Inputs are method calls
//! (`on_tick(now_ms)`, `propose`, `on_message`, `on_persisted`, `bootstrap`); outputs
//! are collected and taken with [`Raft::drain_outputs`], to be executed in order by the
//! shell (actors/raft_core). Time is a number of milliseconds; randomness comes from the
//! seeded [`crate::rng::CoreRng`] given at construction. No I/O happens here.
//!
//! # Timings
//! Consul scales hashicorp/raft's defaults (1000 ms heartbeat/election timeout) by
//! `performance.raft_multiplier`, where 5 gives those defaults. One multiplier unit is
//! therefore 200 ms:
//! - election timeout `T = 200 ms × multiplier`, each wait drawn uniformly from `[T, 2T)`;
//! - heartbeat interval `T / 10` (as hashicorp/raft sends heartbeats);
//! - a leader that has not heard from a quorum for `T` steps down (check-quorum);
//! - a follower that heard from a leader within `T` refuses to vote for a newer term
//!   (leader stickiness), so a rejoining server cannot depose a healthy leader;
//! - an election starts with a pre-vote round (Raft thesis §9.6): the would-be candidate
//!   asks for votes in `term + 1` without changing any state; only with a quorum of
//!   pre-votes does it bump its term, so a partitioned server never inflates terms;
//! - a server that is the ONLY voter does not wait: it starts an election on its first
//!   tick, since no one else can compete (a single `-bootstrap` server is leader after one
//!   fsync of its vote and one of its no-op).
//!
//! # Durability protocol
//! Every change to the log or the hard state leaves as one numbered [`PersistRequest`].
//! The shell executes them strictly in order and reports the highest durable id with
//! `on_persisted(id)`; that covers every lower id. Nothing that vouches for durable state
//! leaves before its request is confirmed:
//! - a granted vote (and a candidate's own vote, before it counts);
//! - a follower's successful AppendEntries reply (heartbeat replies never wait: they only
//!   vouch for what is already durable);
//! - the leader's own copy of an entry, before it counts toward the commit quorum.
//!
//! Hence a plain `Send` may leave before the persists drained with it are executed (the
//! simulator sends at once and persists later): the shell sends first, so a leader's
//! appends are on the wire while its own copy is still being written. The bookkeeping
//! (numbering, requests in flight, replies and the own vote waiting for durability)
//! is one tracker, `durability::Durability`; what the next request must carry (new
//! entries, a truncation, a reset to a snapshot, the hard state) is one record,
//! `unflushed::Unflushed`, which also holds the rules that tie those together.
//!
//! The core itself is `core.rs` (state, accessors, inputs) with its parts beside it in
//! `core/`: `election.rs`, `replication.rs` and `log_writes.rs`.
//!
//! Decisions (log matching, elections) use the in-memory log.
//!
//! # The log cache
//! The core does not hold the whole log: for every index after the compaction point it
//! knows the term (run-length encoded) and the configuration entries, and it holds full
//! entries only for a suffix, the cache (`log::Log`). Log matching, conflict detection,
//! elections and commit use terms only, so they never wait for the disk. At the end of
//! every input, entries leave the cache oldest first while it holds more than
//! `RaftConfig::log_cache_bytes` (approximate payload bytes) or
//! `RaftConfig::log_cache_entries`, but only entries that are durable (the log store can
//! give them back) and already handed to the state machine (`Output::Apply`):
//! everything still to persist is cached.
//!
//! A restart does not read the whole log into memory either: the log store's open scan
//! (which reads and checks every record) keeps only a [`RecoveredLog`]: the term of
//! every index (run-length), the configuration entries, and the newest entries whole, as
//! many as fit the cache budget (the tail). `Raft::new` starts its cache with the tail.
//!
//! # Applying
//! The core feeds the state machine itself: committed entries leave, in order and each
//! exactly once, as `Output::Apply` (copies, for the shell to execute), at the end of
//! the input that committed them when they are cached. Committed entries older than the
//! cache (after a restart: from the snapshot index + 1 up to the recovered tail) are
//! read back: the core emits `Output::LoadCommitted` for the range (bounded by
//! `max_append_bytes`; one at a time), the shell reads it from the log store in order
//! with the persists, and [`Raft::on_committed_loaded`] checks the entries against the
//! log's terms and the commit index and hands them out, then asks for the next range.
//! Stale and duplicate answers are ignored; a failed load is asked again after a
//! heartbeat interval, a lost one after an election timeout. Elections, heartbeats and
//! replication never wait for it. Entries not yet handed out are never compacted.
//!
//! # Loading for followers
//! A leader whose follower needs entries below the cache emits `Output::LoadEntries`
//! (at most one outstanding per follower, asked again after an election timeout without
//! an answer) and keeps heartbeating it; the shell reads
//! the range from the log store, in order with the persists (every entry below the
//! cache is durable, hence on disk unless compacted since), and answers with
//! [`Raft::on_entries_loaded`]. The core checks the loaded entries against its terms
//! (the log may have been truncated or compacted meanwhile; a stale or duplicate answer
//! is ignored) and sends them if the follower still needs them from there; otherwise
//! replication carries on from where the follower is (perhaps with a new load, or a
//! snapshot if the entries were compacted). A failed load is asked again at the next
//! heartbeat.
//!
//! # Bootstrap
//! `bootstrap` on an empty log (term 0) writes entry 1 in term 1, a configuration with
//! this server as the only voter (as hashicorp/raft's BootstrapCluster). The first
//! election then runs in term 2 and its no-op lands at index 2.
//!
//! # Membership
//! A configuration holds voters and non-voters ([`Configuration`]); the one in effect is
//! the latest configuration entry in the log, committed or not, so appending one takes
//! effect at once and truncating it restores the previous one. Non-voters are
//! replicated to but never count for commit, elections, pre-votes or check-quorum, and
//! never campaign. [`Raft::propose_change`] changes one server at a time, never while a
//! change is uncommitted nor before the leader's no-op has committed; a leader that
//! removes itself leads without counting itself until the change commits, then steps
//! down. Use it, not `propose`, for membership: `propose` does not check these rules.
//!
//! # Snapshots and compaction
//! The log may start after a snapshot: [`SnapshotMeta`] (last included index and term,
//! configuration at that index) is the log's base, and `entries`/`entry`/`term_at` only
//! know what follows it (plus the base's own term, the `prev_log_term` of the first
//! retained entry). `Raft::new` takes the recovered snapshot's meta; entries it covers
//! are dropped, and a log that does not continue it (a stale suffix) is discarded and
//! the disk asked to discard it too (`PersistRequest::reset_after`); a gap is an error.
//! `compact(up_to)` forgets committed, durable entries once the shell holds a durable
//! snapshot at or beyond `up_to`.
//!
//! A leader whose follower needs a compacted entry emits `Output::InstallSnapshot`; the
//! shell sends its newest snapshot, which the follower's core receives as one
//! `Message::InstallSnapshot` (the transport carries it in chunks and hands it over only
//! once whole and verified: [`snapshot_chunks`]). While it travels the
//! follower keeps getting heartbeats (their failures are ignored) and the snapshot is
//! re-sent after [`SNAPSHOT_RETRY_TIMEOUTS`] election timeouts without a reply.
//! A follower receiving a snapshot beyond its commit index either keeps its log (it
//! holds the snapshot's last entry: those entries are just committed) or emits
//! `Output::RestoreSnapshot` then a `Persist` with `reset_after`; its
//! `InstallSnapshotReply` leaves only once that is durable.

mod core;
mod durability;
pub mod frame;
mod log;
mod reads;
mod recovered;
pub mod snapshot_chunks;
mod types;
mod unflushed;

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod snapshot_chunks_tests;
#[cfg(test)]
mod tests;

pub use self::core::{Raft, SNAPSHOT_RETRY_TIMEOUTS};
pub use reads::MAX_PENDING_READS;
pub use recovered::{CacheBudget, RecoveredLog};
pub use types::{
    ChangeError, ConfigChange, Configuration, Entry, HardState, Message, NotLeader, Output,
    Payload, PersistRequest, Role, ServerProgress, SnapshotMeta,
};

use crate::ids::ServerId;

/// One raft_multiplier unit, in milliseconds (see the module docs).
pub const MULTIPLIER_UNIT_MS: u64 = 200;
/// Default cap on entries in one AppendEntries.
pub const MAX_ENTRIES_PER_APPEND: usize = 512;
/// Batches of entries in flight to one follower at once (pipelining: the next batch
/// leaves while the follower is still writing the previous one).
pub const MAX_INFLIGHT_APPENDS: usize = 4;
/// Default cap on the payload bytes of one AppendEntries (one entry always goes, however
/// large: a command is at most `codec::MAX_COMMAND_BYTES`, well inside a Raft frame).
/// Without it 512 large values would make a frame no server accepts, and replication to
/// that follower would stop for good.
pub const MAX_APPEND_BYTES: usize = 4 * 1024 * 1024;
/// Default budget of the log cache: payload bytes of the full entries held in memory
/// (see "The log cache" above).
pub const LOG_CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Default cap on the number of entries in the log cache (small entries cost their
/// struct and allocation more than their payload).
pub const LOG_CACHE_ENTRIES: usize = 65_536;

/// Static settings of one Raft server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConfig {
    pub id: ServerId,
    /// Minimum election timeout; each wait is drawn from `[T, 2T)`.
    pub election_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
    pub max_entries_per_append: usize,
    /// Payload bytes per AppendEntries (at least one entry is always sent).
    pub max_append_bytes: usize,
    /// Budget of the log cache: approximate payload bytes of the entries held whole in
    /// memory. Entries beyond it leave once durable and handed to the state machine;
    /// a restart recovers a tail of the log within it.
    pub log_cache_bytes: usize,
    /// Most entries held whole in memory.
    pub log_cache_entries: usize,
    /// Replies that wait for durability (a follower's AppendEntriesReply, a vote) ride
    /// the `Persist` that makes their state durable ([`PersistRequest::then_send`]) when
    /// it has not left the core yet, so the shell's disk thread sends them straight
    /// after its fsync, instead of reporting to the core and the core sending them:
    /// one thread hand-off less on every write's critical path. Off, they wait in the
    /// core until [`Raft::on_persisted`] (same messages, same order, later).
    pub replies_ride_persists: bool,
}

/// A server's Raft timings: the election timeout `T` (each wait drawn from `[T, 2T)`;
/// also check-quorum, leader stickiness and the lease, see the module docs) and the
/// leader's heartbeat interval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RaftTiming {
    pub election_timeout_ms: u64,
    pub heartbeat_interval_ms: u64,
}

impl RaftTiming {
    /// Consul's `performance.raft_multiplier` (0 is treated as 1): `T = 200 ms × m`,
    /// heartbeats every `T / 10`.
    pub fn with_multiplier(raft_multiplier: u32) -> RaftTiming {
        let election_timeout_ms = MULTIPLIER_UNIT_MS * u64::from(raft_multiplier.max(1));
        RaftTiming {
            election_timeout_ms,
            heartbeat_interval_ms: (election_timeout_ms / 10).max(1),
        }
    }
}

impl RaftConfig {
    /// Timings scaled by Consul's `raft_multiplier` (0 is treated as 1).
    pub fn with_multiplier(id: ServerId, raft_multiplier: u32) -> RaftConfig {
        RaftConfig::with_timing(id, RaftTiming::with_multiplier(raft_multiplier))
    }

    /// Explicit timings (the heartbeat interval is kept at least 1 ms).
    pub fn with_timing(id: ServerId, timing: RaftTiming) -> RaftConfig {
        RaftConfig {
            id,
            election_timeout_ms: timing.election_timeout_ms.max(1),
            heartbeat_interval_ms: timing.heartbeat_interval_ms.max(1),
            max_entries_per_append: MAX_ENTRIES_PER_APPEND,
            max_append_bytes: MAX_APPEND_BYTES,
            log_cache_bytes: LOG_CACHE_BYTES,
            log_cache_entries: LOG_CACHE_ENTRIES,
            replies_ride_persists: true,
        }
    }
}

/// The Raft core behind the runtime seam: sends are effects the network carries, every
/// other output is an event for its runner. Raft asks for no timers of its own: its
/// runner ticks it periodically (the actor every heartbeat / 2).
impl crate::runtime::Core for Raft {
    type Peer = ServerId;
    type Message = Message;
    type Event = Output;

    fn tick(&mut self, now_ms: u64) {
        self.on_tick(now_ms)
    }

    fn receive(&mut self, now_ms: u64, from: ServerId, msg: Message) {
        self.on_message(now_ms, from, msg)
    }

    fn effects(&mut self) -> Vec<crate::runtime::Effect<ServerId, Message, Output>> {
        use crate::runtime::Effect;
        self.drain_outputs()
            .into_iter()
            .map(|output| match output {
                Output::Send { to, msg } => Effect::Send { to, msg },
                other => Effect::Notify(other),
            })
            .collect()
    }
}
