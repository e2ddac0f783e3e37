//! RaftCore actor: the shell around `protocol::raft::Raft`, the one decider.
//!
//! It feeds the core ticks (every `heartbeat interval / 2`, at least 5 ms), proposals,
//! persist confirmations and peer messages, and executes
//! the outputs: every `Send` first (see `protocol::raft`, durability protocol), then the
//! rest in order:
//! `Persist` goes to the LogStore thread (group commit happens there), `Committed` sends
//! the newly committed entries with their waiting proposals to the Fsm, `Send` goes to
//! the peer's queue in [`PeerNet`] (never waiting), `RoleChanged` updates the status
//! cell. Peer messages arrive as a stream from the server port's `'R'` connections
//! ([`crate::peer_net::RaftInbox`]).
//!
//! Snapshots: when the Fsm reports a durable snapshot ([`SnapshotTaken`]), the core's
//! in-memory log is compacted so that it keeps at most `trailing_logs` entries below the
//! snapshot index AND at most `fsm::TRAILING_LOG_BYTES` (64 MiB) of their payload
//! (whichever keeps fewer: with large values the count alone would be gigabytes), and
//! the LogStore is told to delete segments up to the lower of that point and the OLDEST
//! retained snapshot's index, so the disk log is bounded the same way (so recovery can fall back to the older snapshot; see
//! `snapshot_store`). `Output::RestoreSnapshot` (a follower installing a leader's
//! snapshot) queues the durable save on the LogStore thread, ahead of the log reset that
//! follows it, and restores the Fsm. `Output::InstallSnapshot`: PeerNet loads the newest
//! durable snapshot from the shared `SnapshotBackend` off the actor thread and sends it.
//!
//! Storage failure (a full disk, an I/O error on write or fsync): the disk state past
//! the last successful sync is unknown, so the server steps down as hashicorp/raft does.
//! It halts its core (a leader stops heartbeating, so other servers can elect a healthy
//! one), fails every waiting proposal and every new write with the storage error,
//! reports itself as a follower with no known leader and publishes the error in its
//! status (`RaftStatus::storage_error`, shown in `/v1/agent/self`). The read view keeps
//! serving stale reads. Then it retries by itself with a capped exponential backoff
//! ([`STORAGE_RETRY_FIRST`] .. [`STORAGE_RETRY_MAX`]): it asks the log store to discard
//! whatever the last sync did not cover and rebuilds the core from what the log durably
//! holds, exactly as a restart would (`Raft::new`), keeping the Fsm and its applied
//! state. The rebuilt core runs a normal election; its first durable write clears the
//! error. A disk that is still full fails that write, and the cycle repeats.
//! Acknowledged writes are never lost (they were synced) and nothing is acknowledged
//! that was not durable (the rebuilt core only knows what the disk holds).
//!
//! The log cache: the core holds full entries only for a bounded suffix of its log (see
//! `protocol::raft`, "The log cache"). `Output::LoadEntries` (a leader's follower needs
//! older entries) queues a read on the LogStore thread, in order with the persists; the
//! answer comes back as [`EntriesLoaded`] and goes into `Raft::on_entries_loaded`.
//! The core feeds the state machine itself: `Output::Apply` carries the next committed
//! entries (sent to the Fsm in batches of at most [`MAX_APPLY_BATCH`], with the
//! proposals waiting for them); `Output::LoadCommitted` (committed entries older than
//! the cache, e.g. after a restart, which recovers only a tail of the log whole) queues
//! a read on the LogStore the same way, answered into `Raft::on_committed_loaded`,
//! which hands them out as an `Apply`. A core rebuilt after a storage failure is told
//! what the Fsm already holds (`Raft::skip_applied`), so nothing is applied twice.
//! Reads are bounded: one per purpose and first index in flight (the core's re-asks of
//! a slow read are not queued again), and a read for applying waits while more than
//! [`MAX_FSM_BACKLOG_BYTES`] handed to the Fsm are not applied yet (its mailbox is the
//! queue), so a slow state machine never makes the whole log pile up in memory.
//!
//! Proposals are bounded: at most [`MAX_PENDING_PROPOSALS`] wait for their entry at once;
//! beyond that a proposal fails at once with `WriteError::Timeout` ("timed out enqueuing
//! operation", Consul's text for a full queue; nothing was proposed then). A `propose`
//! whose wait for its entry timed out ends with `WriteError::OutcomeUnknown`, which says
//! so: the entry may still commit and be applied.

use crate::errors::{MembershipError, WriteError};
use crate::events::{EventBus, ServerEvent};
use crate::fsm::{Apply, Fsm, ProposalReply, Restore, SnapshotTaken, Waiter};
use crate::log_store::{AfterDurable, LogStore, Recovered, StorageError};
use crate::peer_net::PeerNet;
use crate::raft_members::{RaftMembers, RaftServer, ServerReplication};
use crate::status::RaftRole;
use crate::status::{Lease, StatusCell};
use actix::prelude::*;
use protocol::ids::{LogIndex, ServerId};
use protocol::raft::frame::RaftFrame;
use protocol::raft::{
    ChangeError, ConfigChange, Entry, Message, Output, Payload, Raft, Role, SnapshotMeta,
};
use protocol::runtime::{Core, Effect};
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Most proposals waiting for commit at once.
pub const MAX_PENDING_PROPOSALS: usize = 8192;
/// First wait before retrying a failed log store, doubled after each failed retry.
pub const STORAGE_RETRY_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between retries of a failed log store.
pub const STORAGE_RETRY_MAX: Duration = Duration::from_secs(2);
/// Most entries handed to the Fsm in one message.
const MAX_APPLY_BATCH: usize = 1024;
/// Payload bytes after which a batch for the Fsm is closed: the Fsm shares this thread,
/// and one message is applied without a break (a few milliseconds at most).
const MAX_APPLY_BATCH_BYTES: u64 = 4 * 1024 * 1024;
/// Payload bytes handed to the Fsm and not yet applied beyond which committed entries
/// are not read back from the LogStore (the Fsm's mailbox is the queue; reads wait).
const MAX_FSM_BACKLOG_BYTES: u64 = 64 * 1024 * 1024;

type ChangeReply = oneshot::Sender<Result<(), MembershipError>>;

/// Propose a codec-encoded command; the answer arrives on `reply` once applied.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Propose {
    pub(crate) data: Vec<u8>,
    pub(crate) reply: ProposalReply,
}

/// Stop the server's Raft group: waiting proposals fail with `ShuttingDown`, queued
/// writes finish, files close.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Shutdown {
    /// Answered once the actor has stopped and the log store has closed.
    pub(crate) done: oneshot::Sender<()>,
}

/// `-bootstrap-expect`: bootstrap with this voter set if the Raft state is empty; the
/// answer says whether it did.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct BootstrapWith {
    pub(crate) voters: Vec<(ServerId, String)>,
    pub(crate) reply: oneshot::Sender<bool>,
}

/// Confirm leadership for a linearizable read (ReadIndex, see `protocol::raft` reads):
/// answered with the index the state machine must have applied before the read is
/// answered, or None when this server cannot confirm it (not leading, leadership lost,
/// storage halted).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ReadIndex {
    pub(crate) reply: oneshot::Sender<Option<u64>>,
}

/// Propose one membership change; answered once it is committed (or why not).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct ChangeMembers {
    pub(crate) change: ConfigChange,
    pub(crate) reply: oneshot::Sender<Result<(), MembershipError>>,
}

/// The configuration in effect and (on the leader) every member's replication.
#[derive(Message)]
#[rtype(result = "RaftMembers")]
pub(crate) struct ReadMembers;

/// Entries read back from the LogStore (see the module docs).
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct EntriesLoaded {
    purpose: LoadPurpose,
    from: LogIndex,
    result: Result<Vec<Entry>, StorageError>,
}

/// What a read from the LogStore is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum LoadPurpose {
    /// `Output::LoadEntries`: entries for this follower.
    Follower(ServerId),
    /// `Output::LoadCommitted`: committed entries older than the cache, to apply.
    Apply,
}

/// The log store finished (or failed) persist requests.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct PersistDone(pub(crate) Result<u64, StorageError>);

/// Persist confirmations the log store thread leaves for RaftCore instead of waking it,
/// while the core does not wait on them ([`Raft::waits_on_persist`]: a follower whose
/// replies all rode their persists). Each confirmation would otherwise wake the
/// follower's RaftCore once per write, on a machine where every wake of a sleeping
/// thread costs 10-30 us of CPU the write path needs elsewhere. RaftCore takes what was
/// left with its next input (at the latest its next tick); a late confirmation is what
/// a slow disk looks like, so it is always safe. Errors are always sent at once.
pub(crate) struct PersistNotices {
    /// The highest persist id the log store made durable (0: none yet).
    durable: AtomicU64,
    /// Whether RaftCore wants each confirmation at once, as a [`PersistDone`].
    eager: AtomicBool,
}

impl PersistNotices {
    pub(crate) fn new() -> Arc<PersistNotices> {
        Arc::new(PersistNotices {
            durable: AtomicU64::new(0),
            eager: AtomicBool::new(true),
        })
    }

    /// On the log store thread: `id` is durable. Whether to tell RaftCore now.
    pub(crate) fn durable(&self, id: u64) -> bool {
        // Both sides store, then load the other's cell (SeqCst): either this sees the
        // core's wish for eager confirmations, or the core sees this id when it sets it.
        self.durable.store(id, Ordering::SeqCst);
        self.eager.load(Ordering::SeqCst)
    }
}

pub(crate) struct RaftCore {
    raft: Raft,
    /// Confirmations the log store left instead of sending, and the last one taken.
    notices: Arc<PersistNotices>,
    notices_taken: u64,
    /// None once stopped.
    log_store: Option<LogStore>,
    fsm: Addr<Fsm>,
    status: Arc<StatusCell>,
    epoch: Instant,
    /// Proposals waiting for their index to be applied.
    waiters: BTreeMap<u64, Waiter>,
    /// Membership changes waiting for their entry (index, term) to commit.
    change_waiters: Vec<(LogIndex, protocol::ids::Term, ChangeReply)>,
    /// Highest index handed to the Fsm.
    sent_to_fsm: LogIndex,
    storage: StorageHealth,
    /// Index of the no-op this server appended when it last became leader.
    leader_noop_index: u64,
    /// This server's current `ip:port`; when the configuration in the log holds an older
    /// one (restarted on a new address), a new leader proposes the corrected
    /// configuration, as Consul's leader reconciles server addresses.
    self_addr: Option<String>,
    tick: Duration,
    max_pending: usize,
    /// Entries kept in memory (and on disk) below each snapshot.
    trailing_logs: u64,
    shutdown_done: Vec<oneshot::Sender<()>>,
    events: EventBus,
    /// The term this server leads, for `LeadershipLost` (None when not leading).
    leading_term: Option<u64>,
    /// Outgoing peer connections (None: a server without networking, as in tests).
    peer_net: Option<PeerNet>,
    /// Inbound peer messages, taken as a stream when the actor starts.
    inbox: Option<tokio::sync::mpsc::Receiver<RaftFrame>>,
    /// Reads waiting for the core to confirm leadership, by read id.
    reads: HashMap<u64, oneshot::Sender<Option<u64>>>,
    next_read_id: u64,
    /// Our own address, for answers from the LogStore thread (set when started).
    me: Option<Addr<RaftCore>>,
    /// The LogStore read queued for each purpose and not yet answered (its first
    /// index). The core asks a load again when its answer is slow; the same read is
    /// not queued twice (the answer will come: the LogStore answers every read), so a
    /// slow disk never piles up duplicate reads in front of the next one.
    reads_in_flight: BTreeMap<LoadPurpose, LogIndex>,
    /// Apply batches sent to the Fsm and not yet applied: (last index, payload bytes).
    fsm_backlog: std::collections::VecDeque<(LogIndex, u64)>,
    /// An `Output::LoadCommitted` held back while the Fsm's backlog is over
    /// [`MAX_FSM_BACKLOG_BYTES`]: (from, up_to, max_bytes), queued once it drains.
    held_apply_load: Option<(LogIndex, LogIndex, usize)>,
}

/// The log store's health as RaftCore sees it (see the module docs).
struct StorageHealth {
    /// The last write error; set from a failure until a write succeeds again.
    error: Option<String>,
    /// The core is halted: from a failure until it is rebuilt from the durable log.
    halted: bool,
    /// A recovery was asked of the log store and its answer is awaited.
    recovering: bool,
    /// No retry before this.
    retry_at: Instant,
    /// The wait after the next failed retry.
    backoff: Duration,
}

impl Default for StorageHealth {
    fn default() -> Self {
        StorageHealth {
            error: None,
            halted: false,
            recovering: false,
            retry_at: Instant::now(),
            backoff: STORAGE_RETRY_FIRST,
        }
    }
}

/// Sizes RaftCore works with.
pub(crate) struct CoreLimits {
    /// Most proposals waiting at once.
    pub(crate) max_pending: usize,
    /// Entries kept below each snapshot.
    pub(crate) trailing_logs: u64,
}

impl RaftCore {
    pub(crate) fn new(
        raft: Raft,
        log_store: LogStore,
        fsm: Addr<Fsm>,
        status: Arc<StatusCell>,
        epoch: Instant,
        limits: CoreLimits,
    ) -> RaftCore {
        let CoreLimits {
            max_pending,
            trailing_logs,
        } = limits;
        let tick_ms = (raft_heartbeat_ms(&raft) / 2).max(5);
        // The Fsm starts at the recovered snapshot, which is committed.
        let sent_to_fsm = raft.commit_index();
        RaftCore {
            raft,
            notices: PersistNotices::new(),
            notices_taken: 0,
            log_store: Some(log_store),
            fsm,
            status,
            epoch,
            waiters: BTreeMap::new(),
            change_waiters: Vec::new(),
            sent_to_fsm,
            storage: StorageHealth::default(),
            leader_noop_index: 0,
            self_addr: None,
            tick: Duration::from_millis(tick_ms),
            max_pending,
            trailing_logs,
            shutdown_done: Vec::new(),
            events: EventBus::default(),
            leading_term: None,
            peer_net: None,
            inbox: None,
            reads: HashMap::new(),
            next_read_id: 0,
            me: None,
            reads_in_flight: BTreeMap::new(),
            fsm_backlog: std::collections::VecDeque::new(),
            held_apply_load: None,
        }
    }

    /// Talk to other servers: send through `peer_net`, receive from `inbox`.
    pub(crate) fn with_peers(
        mut self,
        peer_net: PeerNet,
        inbox: tokio::sync::mpsc::Receiver<RaftFrame>,
    ) -> RaftCore {
        self.peer_net = Some(peer_net);
        self.inbox = Some(inbox);
        self
    }

    /// The configured address of `id`, if it is a member (voter or not).
    fn member_addr(&self, id: &ServerId) -> Option<String> {
        self.raft.membership().address_of(id).map(str::to_string)
    }

    /// Where the log store leaves confirmations the core does not wait on (the log
    /// store's `on_done` must call [`PersistNotices::durable`]); without it every
    /// confirmation arrives as a [`PersistDone`].
    pub(crate) fn with_persist_notices(mut self, notices: Arc<PersistNotices>) -> RaftCore {
        self.notices = notices;
        self
    }

    /// Where role, leadership and storage events are published.
    pub(crate) fn with_events(mut self, events: EventBus) -> RaftCore {
        self.events = events;
        self
    }

    /// Publish `LeadershipLost` if this server was leading.
    fn lose_leadership(&mut self) {
        if let Some(term) = self.leading_term.take() {
            self.events.publish(ServerEvent::LeadershipLost { term });
        }
    }

    /// The address this server runs on now (see `self_addr`).
    pub(crate) fn with_self_addr(mut self, addr: String) -> RaftCore {
        self.self_addr = Some(addr);
        self
    }

    /// A leader whose own entry in the configuration carries an old address proposes the
    /// configuration with the new one: a change through the log, never a local edit.
    /// Checked on every tick while leading: a change waits until the leader's no-op and
    /// any earlier change have committed.
    fn propose_own_address(&mut self) {
        if self.raft.role() != Role::Leader {
            return;
        }
        let Some(addr) = self.self_addr.clone() else {
            return;
        };
        let id = self.raft.id().clone();
        let Some(old) = self.raft.membership().address_of(&id).map(str::to_string) else {
            return;
        };
        if old == addr {
            return;
        }
        match self.raft.propose_change(ConfigChange::Readdress {
            id,
            addr: addr.clone(),
        }) {
            Ok(_) => {
                tracing::info!(%old, new = %addr, "raft: this server's address changed; proposing the corrected configuration")
            }
            Err(ChangeError::LeaderNotReady | ChangeError::ChangeInProgress { .. }) => {}
            Err(e) => tracing::warn!(%e, "raft: could not propose the corrected configuration"),
        }
    }

    /// Answer membership changes whose entry is now committed (or was replaced).
    fn answer_changes(&mut self, up_to: LogIndex) {
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.change_waiters)
            .into_iter()
            .partition(|(index, _, _)| *index <= up_to);
        self.change_waiters = waiting;
        for (index, term, reply) in done {
            let outcome = if self.raft.term_at(index) == Some(term) {
                Ok(())
            } else {
                Err(MembershipError::Write(WriteError::LeadershipLost))
            };
            let _ = reply.send(outcome);
        }
    }

    fn fail_changes(&mut self, error: WriteError) {
        for (_, _, reply) in self.change_waiters.drain(..) {
            let _ = reply.send(Err(MembershipError::Write(error.clone())));
        }
    }

    fn members(&self) -> RaftMembers {
        let r = &self.raft;
        let m = r.membership();
        let server = |voter: bool| {
            move |(id, addr): &(ServerId, String)| RaftServer {
                id: id.0.clone(),
                address: addr.clone(),
                voter,
            }
        };
        let now = self.now_ms();
        RaftMembers {
            servers: m
                .voters
                .iter()
                .map(server(true))
                .chain(m.non_voters.iter().map(server(false)))
                .collect(),
            index: r.membership_index().0,
            committed: r.membership_index() <= r.commit_index(),
            leader_id: r.leader().map(|l| l.0.clone()),
            term: r.term().0,
            last_index: r.last_log_index().0,
            replication: r
                .server_progress()
                .into_iter()
                .map(|p| ServerReplication {
                    id: p.id.0,
                    match_index: p.match_index.0,
                    last_contact: Duration::from_millis(now.saturating_sub(p.last_contact_ms)),
                })
                .collect(),
        }
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn on_tick(&mut self, ctx: &mut Context<Self>) {
        if self.storage.halted {
            // See the module docs: retry once the backoff has passed.
            if !self.storage.recovering && Instant::now() >= self.storage.retry_at {
                self.start_recovery(ctx);
            }
            return;
        }
        // The core decides on what is durable: take what the log store left first.
        self.take_left_confirmation();
        let now = self.now_ms();
        self.raft.on_tick(now);
        if self.held_apply_load.is_some() && self.fsm_backlog_bytes() <= MAX_FSM_BACKLOG_BYTES {
            if let Some((from, up_to, max_bytes)) = self.held_apply_load.take() {
                self.load(LoadPurpose::Apply, from, up_to, max_bytes);
            }
        }
        // Forget callers that gave up (their propose timed out).
        self.waiters.retain(|_, w| !w.reply.is_closed());
        self.propose_own_address();
        self.run_outputs();
    }

    /// The replies riding a persist, ready to be sent from the log store thread once it
    /// is durable (resolved to their peers' links here, on the actor's thread).
    fn riding_replies(&mut self, then_send: Vec<(ServerId, Message)>) -> Option<AfterDurable> {
        if then_send.is_empty() {
            return None;
        }
        let mut ready = Vec::with_capacity(then_send.len());
        for (to, msg) in then_send {
            let addr = self.member_addr(&to);
            let sender = match &mut self.peer_net {
                Some(net) => net.sender(&to, addr.as_deref()),
                None => None,
            };
            match sender {
                Some(sender) => ready.push((sender, msg)),
                None => tracing::debug!(%to, "raft reply dropped: no peer networking or address"),
            }
        }
        Some(Box::new(move || {
            for (sender, msg) in ready {
                sender.send(msg);
            }
        }))
    }

    fn run_outputs(&mut self) {
        loop {
            self.execute_outputs();
            if !self.take_left_confirmation() {
                return;
            }
        }
    }

    /// Tell the log store whether the core wants confirmations at once, then take the
    /// one it left meanwhile, if any (see [`PersistNotices`]). Whether there was one.
    fn take_left_confirmation(&mut self) -> bool {
        let eager = self.storage.halted || self.raft.waits_on_persist();
        self.notices.eager.store(eager, Ordering::SeqCst);
        let durable = self.notices.durable.load(Ordering::SeqCst);
        if durable == self.notices_taken || self.storage.halted {
            return false;
        }
        self.notices_taken = durable;
        self.persisted(durable);
        true
    }

    /// Requests up to `id` are durable.
    fn persisted(&mut self, id: u64) {
        if let Some(error) = self.storage.error.take() {
            tracing::info!(%error, "raft log storage writable again");
            self.storage.backoff = STORAGE_RETRY_FIRST;
            self.events.publish(ServerEvent::StorageRecovered);
        }
        self.raft.on_persisted(id);
    }

    fn execute_outputs(&mut self) {
        // Through the runtime seam every pure core speaks (`protocol::runtime`).
        // Messages first, then everything else in order: a plain `Send` never vouches
        // for a persist that is not confirmed yet (the core holds such replies back, or
        // they ride the persist), so a leader's appends leave before its own copy is
        // queued for the disk, rather than after the log store thread has been woken
        // (Raft thesis 10.2.1: the leader writes its log in parallel with replication).
        let mut effects = Core::effects(&mut self.raft);
        effects.sort_by_key(|effect| !matches!(effect, Effect::Send { .. }));
        for effect in effects {
            let output = match effect {
                Effect::Send { to, msg } => Output::Send { to, msg },
                Effect::TickAt(_) => continue, // ticked on an interval already
                Effect::Notify(output) => output,
            };
            match output {
                Output::Persist(mut req) => {
                    let after = self.riding_replies(std::mem::take(&mut req.then_send));
                    let submitted = match &self.log_store {
                        Some(store) => store.submit(req, after),
                        None => Err(StorageError::Stopped),
                    };
                    if let Err(e) = submitted {
                        self.fail_storage(e.to_string());
                    }
                }
                Output::Send { to, msg } => {
                    let addr = self.member_addr(&to);
                    match &mut self.peer_net {
                        Some(net) => net.send(to, addr.as_deref(), msg),
                        None => tracing::debug!(%to, "raft message dropped: no peer networking"),
                    }
                }
                Output::Committed { up_to } => self.answer_changes(up_to),
                Output::Apply { entries } => self.apply(entries),
                Output::LoadCommitted {
                    from,
                    up_to,
                    max_bytes,
                } => {
                    if self.fsm_backlog_bytes() > MAX_FSM_BACKLOG_BYTES {
                        self.held_apply_load = Some((from, up_to, max_bytes));
                    } else {
                        self.held_apply_load = None;
                        self.load(LoadPurpose::Apply, from, up_to, max_bytes);
                    }
                }
                Output::InstallSnapshot { to, term } => {
                    let addr = self.member_addr(&to);
                    match &mut self.peer_net {
                        Some(net) => net.send_snapshot(to, addr.as_deref(), term),
                        None => tracing::debug!(%to, "snapshot dropped: no peer networking"),
                    }
                }
                Output::RestoreSnapshot { meta, data } => self.restore_snapshot(meta, data),
                Output::LoadEntries {
                    to,
                    from,
                    up_to,
                    max_bytes,
                } => self.load(LoadPurpose::Follower(to), from, up_to, max_bytes),
                Output::ReadReady { id, index } => {
                    if let Some(reply) = self.reads.remove(&id) {
                        let _ = reply.send(Some(index.0));
                    }
                }
                Output::ReadFailed { id } => {
                    if let Some(reply) = self.reads.remove(&id) {
                        let _ = reply.send(None);
                    }
                }
                Output::RoleChanged { role, term, leader } => {
                    tracing::info!(?role, %term, leader = ?leader.as_ref().map(|l| l.0.as_str()), "raft role changed");
                    self.leader_noop_index = 0;
                    if role == Role::Leader {
                        // Entries from the no-op on replace whatever older terms proposed
                        // there: those proposals can never succeed.
                        let noop = self.raft.last_log_index().0;
                        self.leader_noop_index = noop;
                        for (_, w) in self.waiters.split_off(&noop) {
                            let _ = w.reply.send(Err(WriteError::LeadershipLost));
                        }
                    } else {
                        self.lose_leadership();
                        // A change this server proposed may still commit under the next
                        // leader, but this one can no longer tell.
                        self.fail_changes(WriteError::LeadershipLost);
                    }
                    if role == Role::Leader {
                        self.leading_term = Some(term.0);
                    }
                    self.events.publish(ServerEvent::RoleChanged {
                        role: RaftRole::from(role),
                        term: term.0,
                        leader_id: leader.map(|l| l.0),
                        ready_index: self.leader_noop_index,
                    });
                }
            }
        }
        self.publish_status();
    }

    /// Hand `entries` (the core's next committed ones) and their waiting proposals to
    /// the Fsm, in batches of at most [`MAX_APPLY_BATCH`].
    fn apply(&mut self, entries: Vec<Entry>) {
        let mut entries = entries.into_iter().peekable();
        // The core hands out each entry once; a snapshot restored meanwhile may cover
        // the first ones (never expected, but never applied twice either).
        while entries.next_if(|e| e.index <= self.sent_to_fsm).is_some() {}
        loop {
            let mut batch: Vec<Entry> = Vec::new();
            let mut batch_bytes = 0;
            while batch.len() < MAX_APPLY_BATCH && batch_bytes < MAX_APPLY_BATCH_BYTES {
                let Some(entry) = entries.next() else { break };
                batch_bytes += crate::fsm::payload_bytes(&entry);
                batch.push(entry);
            }
            let Some(last) = batch.last().map(|e| e.index) else {
                return;
            };
            if batch[0].index.0 != self.sent_to_fsm.0 + 1 {
                tracing::error!(first = %batch[0].index, applied = %self.sent_to_fsm, "raft: entries to apply do not continue the state machine");
            }
            let rest = self.waiters.split_off(&(last.0 + 1));
            let waiters = std::mem::replace(&mut self.waiters, rest)
                .into_values()
                .collect();
            self.fsm.do_send(Apply {
                entries: batch,
                waiters,
            });
            self.fsm_backlog.push_back((last, batch_bytes));
            self.sent_to_fsm = last;
        }
    }

    /// Payload bytes sent to the Fsm that it has not applied yet.
    fn fsm_backlog_bytes(&mut self) -> u64 {
        let applied = LogIndex(self.status.snapshot().0.applied_index);
        while self
            .fsm_backlog
            .front()
            .is_some_and(|(last, _)| *last <= applied)
        {
            self.fsm_backlog.pop_front();
        }
        self.fsm_backlog.iter().map(|(_, bytes)| bytes).sum()
    }

    /// Queue a read of `from..=up_to` on the LogStore; the answer arrives as
    /// [`EntriesLoaded`].
    fn load(&mut self, purpose: LoadPurpose, from: LogIndex, up_to: LogIndex, max_bytes: usize) {
        if self.reads_in_flight.get(&purpose) == Some(&from) {
            return; // queued already
        }
        let (Some(store), Some(me)) = (&self.log_store, self.me.clone()) else {
            // The core asks again (it never waits on a load).
            tracing::debug!(%from, "raft log read dropped: not running");
            return;
        };
        let answer = purpose.clone();
        let reply = Box::new(move |result| {
            me.do_send(EntriesLoaded {
                purpose: answer,
                from,
                result,
            })
        });
        match store.read(from, up_to, max_bytes, reply) {
            Ok(()) => {
                self.reads_in_flight.insert(purpose, from);
            }
            Err(e) => tracing::warn!(error = %e, %from, "raft log read not queued"),
        }
    }

    /// A leader's snapshot replaces our state: save it durably (ordered before the log
    /// reset the core asks for next), then load it into the Fsm.
    fn restore_snapshot(&mut self, meta: SnapshotMeta, data: Vec<u8>) {
        let queued = match &self.log_store {
            Some(store) => store.save_snapshot(meta.clone(), data.clone()),
            None => Err(StorageError::Stopped),
        };
        if let Err(e) = queued {
            self.fail_storage(e.to_string());
            return;
        }
        // Proposals at or below the snapshot can no longer learn their result here.
        let rest = self.waiters.split_off(&(meta.index.0 + 1));
        for (_, w) in std::mem::replace(&mut self.waiters, rest) {
            let _ = w.reply.send(Err(WriteError::LeadershipLost));
        }
        self.sent_to_fsm = self.sent_to_fsm.max(meta.index);
        self.fsm.do_send(Restore { meta, data });
    }

    fn fail_storage(&mut self, error: String) {
        if !self.storage.halted {
            let retry_ms = self.storage.backoff.as_millis() as u64;
            if self.storage.error.is_none() {
                tracing::error!(%error, retry_ms, "raft log storage failed; stepping down, serving stale reads, retrying");
            } else {
                tracing::warn!(%error, retry_ms, "raft log storage still failing; retrying");
            }
            self.storage.retry_at = Instant::now() + self.storage.backoff;
            self.lose_leadership();
            if self.storage.error.is_none() {
                let error = error.clone();
                self.events.publish(ServerEvent::StorageFailed { error });
            }
        }
        // These entries are in the log, maybe on disk: whether they survive is unknown.
        for (_, w) in std::mem::take(&mut self.waiters) {
            let why = format!("storage error: {error}");
            let _ = w.reply.send(Err(WriteError::OutcomeUnknown(why)));
        }
        self.fail_reads();
        self.fail_changes(WriteError::Storage(error.clone()));
        self.storage.halted = true;
        self.storage.error = Some(error);
        self.publish_status();
    }

    /// Ask the log store to drop what was not durable and tell us what is.
    fn start_recovery(&mut self, ctx: &mut Context<Self>) {
        let (reply, answer) = oneshot::channel();
        let asked = match &self.log_store {
            Some(store) => store.recover(reply),
            None => Err(StorageError::Stopped),
        };
        if asked.is_err() {
            return; // stopped: nothing to retry
        }
        self.storage.recovering = true;
        ctx.spawn(answer.into_actor(self).map(|answer, act, ctx| {
            act.storage.recovering = false;
            match answer {
                Ok(Ok(recovered)) => act.rebuild_core(recovered, ctx),
                Ok(Err(e)) => act.retry_later(format!("recovery failed: {e}")),
                Err(_) => {} // the log store stopped
            }
        }));
    }

    /// Replace the halted core with one built from the durable log, as a restart would.
    /// The log base (the in-memory compaction point) stays: the disk log reaches back at
    /// least that far, and the Fsm has applied at least up to it.
    fn rebuild_core(&mut self, recovered: Recovered, ctx: &mut Context<Self>) {
        let base = self.raft.log_base().clone();
        let snapshot = (base.index.0 > 0).then_some(base);
        let last_durable = recovered.log.last_index().0;
        let rebuilt = Raft::new(
            self.raft.config().clone(),
            recovered.hard_state,
            snapshot,
            recovered.log,
            protocol::rng::seeded(rand::random()),
            self.now_ms(),
        );
        match rebuilt {
            Ok(mut raft) => {
                // The Fsm keeps what it applied: the new core goes on after it.
                raft.skip_applied(self.sent_to_fsm);
                tracing::info!(
                    last_durable,
                    "raft log storage reopened; resuming from the durable log"
                );
                self.raft = raft;
                // Confirmations left for the halted core name its persist ids, which the
                // new core numbers anew: none may be taken as one of the new core's.
                // (The log store writes none meanwhile: it dropped the halted core's
                // requests, and the new core has queued none yet.)
                self.notices.durable.store(0, Ordering::SeqCst);
                self.notices_taken = 0;
                self.fail_reads(); // the new core knows nothing of them
                self.storage.halted = false;
                self.leader_noop_index = 0;
                self.on_tick(ctx);
            }
            Err(e) => self.retry_later(format!("recovered log is inconsistent: {e}")),
        }
    }

    /// Answer every waiting read "cannot confirm".
    fn fail_reads(&mut self) {
        for (_, reply) in self.reads.drain() {
            let _ = reply.send(None);
        }
    }

    fn retry_later(&mut self, why: String) {
        self.storage.backoff = (self.storage.backoff * 2).min(STORAGE_RETRY_MAX);
        self.storage.retry_at = Instant::now() + self.storage.backoff;
        tracing::warn!(error = %why, retry_ms = self.storage.backoff.as_millis() as u64, "raft log storage not usable yet");
    }

    fn publish_status(&self) {
        let r = &self.raft;
        let halted = self.storage.halted;
        let role = match r.role() {
            _ if halted => RaftRole::Follower,
            Role::Follower => RaftRole::Follower,
            Role::Candidate => RaftRole::Candidate,
            Role::Leader => RaftRole::Leader,
        };
        let leader = r.leader().filter(|_| !halted);
        let leader_addr = leader.and_then(|l| r.membership().address_of(l));
        let leader_ready_index = if role == RaftRole::Leader {
            self.leader_noop_index
        } else {
            0
        };
        // Runs on every proposal: strings are only copied when they changed.
        self.status.update(|s| {
            s.role = role;
            s.leader_ready_index = leader_ready_index;
            s.term = r.term().0;
            if s.leader_id.as_deref() != leader.map(|l| l.0.as_str()) {
                s.leader_id = leader.map(|l| l.0.clone());
            }
            if s.leader_addr.as_deref() != leader_addr {
                s.leader_addr = leader_addr.map(str::to_string);
            }
            if s.storage_error != self.storage.error {
                s.storage_error = self.storage.error.clone();
            }
            s.commit_index = r.commit_index().0;
            s.last_log_index = r.last_log_index().0;
            s.last_log_term = r.last_log_term().0;
            if s.voters.len() != r.voters().len()
                || s.voters
                    .iter()
                    .zip(r.voters())
                    .any(|(a, b)| a.0 != b.0 .0 || a.1 != b.1)
            {
                s.voters = r
                    .voters()
                    .iter()
                    .map(|(id, addr)| (id.0.clone(), addr.clone()))
                    .collect();
            }
        });
        let lease = match r.lease_expiry_ms() {
            _ if halted => Lease::None,
            None => Lease::None,
            Some(u64::MAX) => Lease::Forever,
            Some(ms) => Lease::Until(self.epoch + Duration::from_millis(ms)),
        };
        self.status.set_lease(lease);
        let contact = r
            .last_leader_contact_ms()
            .map(|ms| self.epoch + Duration::from_millis(ms));
        self.status.set_last_contact(contact);
    }
}

fn raft_heartbeat_ms(raft: &Raft) -> u64 {
    raft.heartbeat_interval_ms()
}

impl Actor for RaftCore {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        // A System torn down before our first poll runs this hook from a destructor,
        // where no runtime (and so no timer) exists: just stop.
        if tokio::runtime::Handle::try_current().is_err() {
            ctx.stop();
            return;
        }
        self.me = Some(ctx.address());
        if let Some(inbox) = self.inbox.take() {
            let frames = futures::stream::unfold(inbox, |mut inbox| async move {
                inbox.recv().await.map(|frame| (frame, inbox))
            });
            ctx.add_stream(frames);
        }
        // Execute what construction and bootstrap produced, then tick at once so a sole
        // voter does not wait for the first interval.
        self.on_tick(ctx);
        ctx.run_interval(self.tick, |act, ctx| act.on_tick(ctx));
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        if let Some(net) = &mut self.peer_net {
            net.stop();
        }
        self.lose_leadership();
        for (_, w) in std::mem::take(&mut self.waiters) {
            let _ = w.reply.send(Err(WriteError::ShuttingDown));
        }
        self.fail_changes(WriteError::ShuttingDown);
        if let Some(store) = self.log_store.take() {
            // Blocks for at most the batch on disk: queued writes are never cut short.
            store.stop();
        }
        for done in self.shutdown_done.drain(..) {
            let _ = done.send(());
        }
    }
}

impl Handler<Shutdown> for RaftCore {
    type Result = ();

    fn handle(&mut self, msg: Shutdown, ctx: &mut Context<Self>) {
        tracing::info!("raft shutting down");
        self.shutdown_done.push(msg.done);
        ctx.stop();
    }
}

impl Handler<Propose> for RaftCore {
    type Result = ();

    fn handle(&mut self, msg: Propose, _: &mut Context<Self>) {
        if self.storage.halted {
            let error = self.storage.error.clone().unwrap_or_default();
            let _ = msg.reply.send(Err(WriteError::Storage(error)));
            return;
        }
        if self.waiters.len() >= self.max_pending {
            let _ = msg.reply.send(Err(WriteError::Timeout));
            return;
        }
        match self.raft.propose(Payload::Command(msg.data)) {
            Err(_) => {
                let _ = msg.reply.send(Err(WriteError::NoLeader));
            }
            Ok(index) => {
                let waiter = Waiter {
                    index: index.0,
                    term: self.raft.term(),
                    reply: msg.reply,
                };
                self.waiters.insert(index.0, waiter);
                self.run_outputs();
            }
        }
    }
}

impl Handler<ReadIndex> for RaftCore {
    type Result = ();

    fn handle(&mut self, msg: ReadIndex, _: &mut Context<Self>) {
        if self.storage.halted {
            let _ = msg.reply.send(None);
            return;
        }
        let id = self.next_read_id;
        self.next_read_id += 1;
        self.raft.on_tick(self.now_ms());
        match self.raft.read_index(id) {
            Err(_) => {
                let _ = msg.reply.send(None);
            }
            Ok(()) => {
                self.reads.insert(id, msg.reply);
            }
        }
        self.run_outputs();
    }
}

impl Handler<ChangeMembers> for RaftCore {
    type Result = ();

    fn handle(&mut self, msg: ChangeMembers, _: &mut Context<Self>) {
        if self.storage.halted {
            let error = self.storage.error.clone().unwrap_or_default();
            let _ = msg.reply.send(Err(WriteError::Storage(error).into()));
            return;
        }
        // Forget callers that gave up.
        self.change_waiters.retain(|(_, _, r)| !r.is_closed());
        match self.raft.propose_change(msg.change) {
            Err(ChangeError::NotLeader(_)) => {
                let _ = msg.reply.send(Err(WriteError::NoLeader.into()));
            }
            Err(e) => {
                let _ = msg.reply.send(Err(MembershipError::Refused(e)));
            }
            Ok(index) if index <= self.raft.commit_index() => {
                let _ = msg.reply.send(Ok(())); // nothing to change
            }
            Ok(index) => {
                let term = self.raft.term();
                self.change_waiters.push((index, term, msg.reply));
                self.run_outputs();
            }
        }
    }
}

impl Handler<ReadMembers> for RaftCore {
    type Result = MessageResult<ReadMembers>;

    fn handle(&mut self, _: ReadMembers, _: &mut Context<Self>) -> Self::Result {
        MessageResult(self.members())
    }
}

/// A message from another server (through the server port).
impl StreamHandler<RaftFrame> for RaftCore {
    fn handle(&mut self, frame: RaftFrame, _: &mut Context<Self>) {
        if self.storage.halted {
            return; // a halted server takes no part (see the module docs)
        }
        let RaftFrame {
            from,
            from_addr,
            msg,
        } = frame;
        if let Some(net) = &mut self.peer_net {
            net.learn(&from, &from_addr);
        }
        self.take_left_confirmation();
        let now = self.now_ms();
        self.raft.on_message(now, from, msg);
        self.run_outputs();
    }

    /// The inbox never ends while the server runs; if it does, keep running.
    fn finished(&mut self, _: &mut Context<Self>) {}
}

impl Handler<BootstrapWith> for RaftCore {
    type Result = ();

    fn handle(&mut self, msg: BootstrapWith, _: &mut Context<Self>) {
        let done = !self.storage.halted && self.raft.bootstrap_with(msg.voters);
        if done {
            self.run_outputs();
        }
        let _ = msg.reply.send(done);
    }
}

impl Handler<PersistDone> for RaftCore {
    type Result = ();

    fn handle(&mut self, msg: PersistDone, _: &mut Context<Self>) {
        match msg.0 {
            Ok(id) if !self.storage.halted => {
                self.persisted(id);
                self.run_outputs();
            }
            // Reported before the failure that halted the core: that core is gone.
            Ok(_) => {}
            Err(e) => self.fail_storage(e.to_string()),
        }
    }
}

impl Handler<EntriesLoaded> for RaftCore {
    type Result = ();

    fn handle(&mut self, msg: EntriesLoaded, _: &mut Context<Self>) {
        if self.reads_in_flight.get(&msg.purpose) == Some(&msg.from) {
            self.reads_in_flight.remove(&msg.purpose);
        }
        match msg.purpose {
            // A halted core takes no part; a rebuilt one ignores loads it did not ask for.
            _ if self.storage.halted => {}
            LoadPurpose::Apply => {
                let result = msg.result.map_err(|e| e.to_string());
                if let Err(error) = &result {
                    tracing::warn!(%error, from = %msg.from, "reading committed entries back failed; retrying");
                }
                self.raft.on_committed_loaded(msg.from, result);
                self.run_outputs();
            }
            LoadPurpose::Follower(to) => {
                let result = msg.result.map_err(|e| e.to_string());
                self.raft.on_entries_loaded(&to, msg.from, result);
                self.run_outputs();
            }
        }
    }
}

impl Handler<SnapshotTaken> for RaftCore {
    type Result = ();

    fn handle(&mut self, msg: SnapshotTaken, _: &mut Context<Self>) {
        // Keep `trailing_logs` entries below the snapshot, and at most `trailing_bytes`
        // of payload: with large values the count alone is gigabytes, held in memory and
        // read back into memory at every restart. A follower needing older entries gets
        // the snapshot. The disk never goes beyond the oldest retained snapshot.
        // Only cached entries can be measured: entries below the cache (which is bounded
        // like the trailing bytes) are not kept either.
        let by_count = msg.meta.index.0.saturating_sub(self.trailing_logs);
        let first_held = self.raft.first_log_index().max(LogIndex(by_count + 1));
        let cache_first = self.raft.cache_first_index();
        let mut keep_from = if first_held < cache_first {
            by_count.max(cache_first.0 - 1).min(msg.meta.index.0)
        } else {
            by_count
        };
        let mut trailing = 0u64;
        for entry in self.raft.entries_iter(first_held, msg.meta.index).rev() {
            trailing += crate::fsm::payload_bytes(entry);
            if trailing > msg.trailing_bytes {
                keep_from = entry.index.0;
                break;
            }
        }
        if keep_from == 0 {
            return;
        }
        let before = self.raft.log_len();
        self.raft.compact(LogIndex(keep_from));
        // Never beyond what the core forgot: it may have refused (entries not yet durable
        // or not yet applied), and then it still reads them from the disk.
        let disk_until = keep_from
            .min(msg.oldest_retained.0)
            .min(self.raft.log_base().index.0);
        if let Some(store) = &self.log_store {
            if let Err(e) = store.compact_until(LogIndex(disk_until)) {
                tracing::warn!(error = %e, "raft log compaction not queued");
            }
        }
        tracing::debug!(
            snapshot = msg.meta.index.0,
            memory_from = keep_from + 1,
            disk_until,
            dropped = before - self.raft.log_len(),
            "raft log compacted"
        );
        self.publish_status();
    }
}

/// Test probe: (entries in the log cache, first cached index).
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "(usize, u64)")]
pub(crate) struct CacheStats;

#[cfg(test)]
impl Handler<CacheStats> for RaftCore {
    type Result = MessageResult<CacheStats>;

    fn handle(&mut self, _: CacheStats, _: &mut Context<Self>) -> Self::Result {
        let (cached, _) = self.raft.cached();
        MessageResult((cached, self.raft.cache_first_index().0))
    }
}

/// Test probe: (first index after the compaction point, entries after it).
#[cfg(test)]
#[derive(Message)]
#[rtype(result = "(u64, usize)")]
pub(crate) struct LogStats;

#[cfg(test)]
impl Handler<LogStats> for RaftCore {
    type Result = MessageResult<LogStats>;

    fn handle(&mut self, _: LogStats, _: &mut Context<Self>) -> Self::Result {
        MessageResult((self.raft.first_log_index().0, self.raft.log_len()))
    }
}
