//! The Raft decision maker: election, log matching, commit. See the module docs in
//! `raft/mod.rs` for timings and the durability protocol.

mod election;
mod log_writes;
mod replication;

use super::durability::Durability;
use super::log::Log;
use super::reads::ReadTracker;
use super::recovered::RecoveredLog;
use super::types::{
    ChangeError, ConfigChange, Configuration, Entry, HardState, Message, NotLeader, Output,
    Payload, Role, ServerProgress, SnapshotMeta,
};
use super::unflushed::Unflushed;
use super::RaftConfig;
use crate::ids::{LogIndex, ServerId, Term};
use crate::rng::CoreRng;
use rand::Rng;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Replication state of one follower, owned by the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Progress {
    /// The next entry to send: advanced as soon as a batch leaves (pipelining).
    next_index: LogIndex,
    match_index: LogIndex,
    /// Batches with entries sent and not yet acknowledged, oldest first: (last index,
    /// sent at). At most [`super::MAX_INFLIGHT_APPENDS`]; a batch unanswered for an
    /// election timeout counts as lost and is sent again.
    inflight: VecDeque<(LogIndex, u64)>,
    /// After a rejection: the `prev_log_index` last probed. A reply does not say which
    /// message it answers, so each further rejection probes strictly lower (a stale
    /// rejection only costs resending a few entries) until a success clears it.
    probe: Option<LogIndex>,
    last_ack_ms: u64,
    /// When we last asked the shell to send this follower a snapshot (None: no snapshot
    /// transfer outstanding). While set, heartbeats continue but failure hints are
    /// ignored, and the snapshot is re-sent after [`SNAPSHOT_RETRY_TIMEOUTS`] election
    /// timeouts without a reply.
    snapshot_sent_ms: Option<u64>,
    /// The first index of the `Output::LoadEntries` outstanding for this follower (at
    /// most one), and when it was asked: entries it needs are below the cache and the
    /// shell is reading them. Asked again after an election timeout without an answer.
    loading: Option<(LogIndex, u64)>,
}

/// A snapshot transfer without a reply is retried after this many election timeouts.
pub const SNAPSHOT_RETRY_TIMEOUTS: u64 = 5;

/// The pure Raft state machine of one server.
pub struct Raft {
    cfg: RaftConfig,
    rng: CoreRng,
    now_ms: u64,

    term: Term,
    voted_for: Option<ServerId>,
    role: Role,
    leader: Option<ServerId>,
    log: Log,
    commit: LogIndex,
    /// The membership in effect: the latest configuration entry in the log, committed
    /// or not (Raft §4.1), else the log base's.
    membership: Configuration,
    /// The index of the entry that set `membership` (the base's index for the base).
    membership_index: LogIndex,

    // Durability bookkeeping.
    /// Highest index known to be on disk AND to match the in-memory log.
    durable: LogIndex,
    /// Persist requests issued and confirmed, and what waits for them.
    persists: Durability,
    /// What the next persist request must carry.
    unflushed: Unflushed,

    // Election.
    election_deadline_ms: u64,
    last_leader_contact_ms: Option<u64>,
    votes: BTreeSet<ServerId>,
    /// Pre-votes gathered for `term + 1` while pre-campaigning (None otherwise).
    pre_votes: Option<BTreeSet<ServerId>>,

    // Leadership.
    progress: BTreeMap<ServerId, Progress>,
    heartbeat_due_ms: u64,
    leader_since_ms: u64,
    /// Index of the no-op this leader appended for its term (0 when not leading).
    term_start_index: LogIndex,
    /// Heartbeat rounds, ReadIndex and the lease (see `raft/reads.rs`).
    reads: ReadTracker,
    /// When this core was created: it refuses votes for an election timeout after that,
    /// since it forgot when it last heard from a leader (the lease depends on it).
    started_ms: u64,

    reported: (Role, Term, Option<ServerId>),
    outputs: Vec<Output>,

    // Applying (see "Applying" in `raft/mod.rs`).
    /// The first committed index not yet handed to the shell in an `Output::Apply`.
    apply_next: LogIndex,
    /// The `Output::LoadCommitted` outstanding (its first index) and when it was asked.
    apply_load: Option<(LogIndex, u64)>,
    /// After a failed load: no new one before this.
    apply_retry_ms: u64,
}

impl Raft {
    /// Restore from what the stores recovered (nothing for a fresh server): the newest
    /// usable snapshot's meta, and the log ([`RecoveredLog`]: terms and configurations
    /// of every stored entry, a tail of them whole; a `Vec<Entry>` converts into one
    /// holding every entry whole). Entries at or below the snapshot index are dropped
    /// (the snapshot covers them; the shell may still hold them on disk); the rest must
    /// continue it contiguously. Everything given is durable, and the snapshot is
    /// committed, so the commit index starts at its index and the state machine is fed
    /// from the entry after it (read back from the log store if older than the tail).
    pub fn new(
        cfg: RaftConfig,
        hard_state: HardState,
        snapshot: Option<SnapshotMeta>,
        log: impl Into<RecoveredLog>,
        rng: CoreRng,
        now_ms: u64,
    ) -> Result<Raft, String> {
        let commit = snapshot.as_ref().map(|s| s.index).unwrap_or_default();
        let (log, discarded) = Log::new(snapshot, log)?;
        // A crash between the log write and the hard-state write can leave entries of a
        // newer term on disk; never run in a term older than our own log.
        let (term, voted_for) = if log.last_term() > hard_state.term {
            (log.last_term(), None)
        } else {
            (hard_state.term, hard_state.voted_for)
        };
        let durable = log.last_index();
        let log_base_index = log.base().index;
        let mut raft = Raft {
            cfg,
            rng,
            now_ms,
            term,
            voted_for,
            role: Role::Follower,
            leader: None,
            log,
            commit,
            membership: Configuration::default(),
            membership_index: LogIndex(0),
            durable,
            persists: Durability::new(),
            unflushed: Unflushed {
                hard_state: term != hard_state.term,
                reset_after: discarded.then_some(log_base_index),
                ..Unflushed::default()
            },
            election_deadline_ms: 0,
            last_leader_contact_ms: None,
            votes: BTreeSet::new(),
            pre_votes: None,
            progress: BTreeMap::new(),
            heartbeat_due_ms: 0,
            leader_since_ms: 0,
            term_start_index: LogIndex(0),
            reads: ReadTracker::default(),
            started_ms: now_ms,
            reported: (Role::Follower, term, None),
            outputs: Vec::new(),
            apply_next: LogIndex(commit.0 + 1),
            apply_load: None,
            apply_retry_ms: 0,
        };
        raft.reload_membership();
        raft.reset_election_timer();
        Ok(raft)
    }

    // ----- read accessors -------------------------------------------------------------

    pub fn id(&self) -> &ServerId {
        &self.cfg.id
    }
    pub fn config(&self) -> &RaftConfig {
        &self.cfg
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn term(&self) -> Term {
        self.term
    }
    pub fn leader(&self) -> Option<&ServerId> {
        self.leader.as_ref()
    }
    pub fn commit_index(&self) -> LogIndex {
        self.commit
    }
    pub fn last_log_index(&self) -> LogIndex {
        self.log.last_index()
    }
    pub fn last_log_term(&self) -> Term {
        self.log.last_term()
    }
    pub fn durable_index(&self) -> LogIndex {
        self.durable
    }
    /// Whether a persist confirmation would let something happen now: a leader's commit,
    /// a candidate's own vote, a reply waiting in the core. When false (a follower whose
    /// replies all rode their persists) `on_persisted` only moves bookkeeping (the
    /// durable index, what the cache may evict), so the shell may deliver it late, with
    /// the next input, rather than wake the core for it. Late is always safe: it is what
    /// a slow disk looks like.
    pub fn waits_on_persist(&self) -> bool {
        self.role != Role::Follower
            || self.persists.holds_replies()
            || self.persists.awaiting_own_vote()
    }
    pub fn heartbeat_interval_ms(&self) -> u64 {
        self.cfg.heartbeat_interval_ms
    }
    pub fn voters(&self) -> &[(ServerId, String)] {
        &self.membership.voters
    }
    /// The membership in effect (voters and non-voters).
    pub fn membership(&self) -> &Configuration {
        &self.membership
    }
    /// The index of the configuration entry in effect; a change is committed once the
    /// commit index reaches it.
    pub fn membership_index(&self) -> LogIndex {
        self.membership_index
    }
    /// (Leader) every member's replication: match index and last contact, for
    /// autopilot. Empty on a non-leader.
    pub fn server_progress(&self) -> Vec<ServerProgress> {
        if self.role != Role::Leader {
            return Vec::new();
        }
        self.membership
            .servers()
            .map(|(id, addr)| {
                let (match_index, last_contact_ms) = if *id == self.cfg.id {
                    (self.durable, self.now_ms)
                } else {
                    self.progress
                        .get(id)
                        .map(|p| (p.match_index, p.last_ack_ms))
                        .unwrap_or_default()
                };
                ServerProgress {
                    id: id.clone(),
                    addr: addr.clone(),
                    voter: self.membership.is_voter(id),
                    match_index,
                    last_contact_ms,
                }
            })
            .collect()
    }
    pub fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for.clone(),
        }
    }
    /// (Leader) until when, on the clock this core is ticked with (exclusive), the
    /// leader lease lets it answer reads from its state without a round (see
    /// `raft/reads.rs`). None when not leading or no lease is held. Reads must still
    /// wait for the state machine to apply [`Raft::read_floor`].
    pub fn lease_expiry_ms(&self) -> Option<u64> {
        if self.role != Role::Leader {
            return None;
        }
        let lease_ms = self.cfg.election_timeout_ms / 10 * 9;
        self.reads.lease_expiry(
            &self.membership.voters,
            &self.cfg.id,
            self.quorum(),
            self.now_ms,
            lease_ms,
        )
    }
    /// (Leader) the lowest index a linearizable read must see applied: this term's
    /// no-op, or the commit index if that is higher.
    pub fn read_floor(&self) -> LogIndex {
        self.commit.max(self.term_start_index)
    }
    /// When we last heard from a current leader (None: never, or we are the leader).
    pub fn last_leader_contact_ms(&self) -> Option<u64> {
        self.last_leader_contact_ms
    }
    /// Committed-or-not entries in `from..=to` still cached (clamped: nothing below
    /// [`Raft::cache_first_index`]). The state machine is fed through `Output::Apply`,
    /// not from here.
    pub fn entries(&self, from: LogIndex, to: LogIndex) -> Vec<Entry> {
        self.log.slice(from, to)
    }
    /// [`Raft::entries`] without copying them.
    pub fn entries_iter(
        &self,
        from: LogIndex,
        to: LogIndex,
    ) -> impl DoubleEndedIterator<Item = &Entry> + ExactSizeIterator {
        self.log.range(from, to)
    }
    /// The entry at `index` if it is cached.
    pub fn entry(&self, index: LogIndex) -> Option<&Entry> {
        self.log.get(index)
    }
    /// Term at `index`: known for every index after the compaction point (cached or
    /// not) and the compaction point itself.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        self.log.term_at(index)
    }
    /// First index whose entry is cached (`last_log_index + 1` when none is).
    pub fn cache_first_index(&self) -> LogIndex {
        self.log.cache_first()
    }
    /// Entries cached and their approximate payload bytes.
    pub fn cached(&self) -> (usize, usize) {
        self.log.cached()
    }
    /// The compaction point: the in-memory log holds only entries after `index`.
    pub fn log_base(&self) -> &SnapshotMeta {
        self.log.base()
    }
    /// First index held in memory.
    pub fn first_log_index(&self) -> LogIndex {
        self.log.first_index()
    }
    /// Number of entries after the compaction point (cached or not).
    pub fn log_len(&self) -> usize {
        self.log.len()
    }
    /// The membership in effect at `index` (after the compaction point, or at it).
    pub fn configuration_at(&self, index: LogIndex) -> Configuration {
        self.log.membership_at(index).1
    }

    /// Forget the in-memory entries up to and including `up_to`, keeping its term and
    /// configuration as the new base. Only committed, durable entries go, and only once
    /// the shell has a durable snapshot at or beyond `up_to` (the shell's promise: a
    /// follower that needs them is then sent that snapshot). Returns whether anything
    /// was compacted. Disk compaction is the shell's business.
    /// Entries not yet handed to the state machine are never compacted (the snapshot
    /// cannot cover them).
    pub fn compact(&mut self, up_to: LogIndex) -> bool {
        if up_to <= self.log.base().index
            || up_to > self.commit
            || up_to > self.durable
            || up_to >= self.apply_next
        {
            return false;
        }
        self.log.compact(up_to)
    }

    /// The first committed index not yet handed out in an `Output::Apply`.
    pub fn apply_next_index(&self) -> LogIndex {
        self.apply_next
    }

    /// The state machine already holds everything up to `up_to` (a core rebuilt under
    /// a running state machine, see `actors::raft_core`): never hand those entries out.
    pub fn skip_applied(&mut self, up_to: LogIndex) {
        if up_to >= self.apply_next {
            self.apply_next = LogIndex(up_to.0 + 1);
            self.apply_load = None;
        }
    }

    /// Take the outputs produced so far, in the order they must be executed.
    pub fn drain_outputs(&mut self) -> Vec<Output> {
        std::mem::take(&mut self.outputs)
    }

    // ----- inputs ---------------------------------------------------------------------

    /// `-bootstrap` on an empty log: write a configuration with ourselves as the only
    /// voter at index 1, term 1 (as hashicorp/raft's BootstrapCluster). A log that has
    /// anything in it, or a server that has seen any term, is never re-bootstrapped.
    /// Returns whether it bootstrapped.
    pub fn bootstrap(&mut self, self_addr: &str) -> bool {
        let me = (self.cfg.id.clone(), self_addr.to_string());
        self.bootstrap_with(vec![me])
    }

    /// `bootstrap` with a whole voter set (`-bootstrap-expect`): on an empty log (no
    /// entries, no snapshot, term 0) write the configuration of `voters` at index 1,
    /// term 1. Every server of a new cluster calls this with the same set, so all write
    /// the identical entry 1 and log matching holds from the start (hashicorp/raft's
    /// BootstrapCluster with identical configurations). The voters are sorted by id
    /// here, so the order the caller found them in cannot make the entries differ.
    /// Refused (false, nothing written) on a used log, an empty set or a duplicate id.
    pub fn bootstrap_with(&mut self, mut voters: Vec<(ServerId, String)>) -> bool {
        if self.log.last_index() != LogIndex(0) || self.term != Term(0) || voters.is_empty() {
            return false;
        }
        voters.sort();
        if voters.windows(2).any(|w| w[0].0 == w[1].0) {
            return false;
        }
        self.term = Term(1);
        self.voted_for = None;
        self.unflushed.hard_state_changed();
        self.append_local(Payload::Configuration(voters));
        self.finish();
        true
    }

    /// Time passes. Drives elections, heartbeats and the leader's quorum check.
    pub fn on_tick(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        match self.role {
            Role::Leader => self.tick_leader(),
            Role::Follower | Role::Candidate => {
                let me_voter = self.is_voter(&self.cfg.id);
                let sole_voter = me_voter && self.membership.voters.len() == 1;
                if sole_voter {
                    // Nobody can compete with or be disrupted by a sole voter: elect at
                    // once instead of waiting a timeout (a candidate waits for its disk).
                    if self.role == Role::Follower || self.now_ms >= self.election_deadline_ms {
                        self.become_candidate();
                    }
                } else if me_voter && self.now_ms >= self.election_deadline_ms {
                    self.start_pre_vote();
                }
            }
        }
        self.finish();
    }

    /// Append a new entry as leader. Returns its index; it is committed later.
    pub fn propose(&mut self, payload: Payload) -> Result<LogIndex, NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader.clone(),
            });
        }
        let index = self.append_local(payload);
        // The leader's own disk write first, then the AppendEntries: both run at once
        // (the leader's copy counts toward the quorum only once durable), and handing a
        // request to the log store costs less than the sends, which the shell may write
        // to the socket right away.
        self.flush_persist();
        let peers: Vec<ServerId> = self.progress.keys().cloned().collect();
        for peer in peers {
            self.replicate(&peer);
        }
        self.finish();
        Ok(index)
    }

    /// (Leader) confirm that a read arriving now may be answered from this server's
    /// state (ReadIndex): `Output::ReadReady { id, index }` follows once a quorum has
    /// acknowledged a heartbeat round opened after this call, or `Output::ReadFailed`
    /// if leadership is lost first. Reads arriving together share one round.
    pub fn read_index(&mut self, id: u64) -> Result<(), NotLeader> {
        if self.role != Role::Leader {
            return Err(NotLeader {
                leader: self.leader.clone(),
            });
        }
        if !self.reads.queue(id, self.read_floor()) {
            self.outputs.push(Output::ReadFailed { id });
        }
        self.release_reads();
        self.finish();
        Ok(())
    }

    /// (Leader) Propose one membership change: appends the new membership, which takes
    /// effect at once (replication to an added server starts, a removed one is dropped,
    /// quorums use the new voters); it is done when committed, i.e. once the commit
    /// index reaches the returned index. Refused while another change is uncommitted
    /// and until this leader has committed an entry of its own term (its no-op).
    pub fn propose_change(&mut self, change: ConfigChange) -> Result<LogIndex, ChangeError> {
        if self.role != Role::Leader {
            return Err(ChangeError::NotLeader(NotLeader {
                leader: self.leader.clone(),
            }));
        }
        if self.log.term_at(self.commit) != Some(self.term) {
            return Err(ChangeError::LeaderNotReady);
        }
        if self.membership_index > self.commit {
            return Err(ChangeError::ChangeInProgress {
                index: self.membership_index,
            });
        }
        let next = changed_membership(&self.membership, change)?;
        if next == self.membership {
            return Ok(self.membership_index); // nothing to change: done already
        }
        self.propose(Payload::Membership(next))
            .map_err(ChangeError::NotLeader)
    }

    /// The shell finished persist requests up to and including `id`.
    pub fn on_persisted(&mut self, id: u64) {
        if !self.persists.confirm(id) {
            return; // stale or bogus
        }
        for p in self.persists.drain_confirmed() {
            // If the entry is no longer in memory, a truncation is queued behind this
            // persist and will move `durable` when it completes.
            if self.log.term_at(p.last_index) == Some(p.last_term) && p.last_index > self.durable {
                self.durable = p.last_index;
            }
        }
        for (to, msg) in self.persists.release_held() {
            self.outputs.push(Output::Send { to, msg });
        }
        if self.role == Role::Candidate && self.persists.own_vote_durable() {
            self.persists.forget_own_vote();
            self.votes.insert(self.cfg.id.clone());
            self.check_election_won();
        }
        if self.role == Role::Leader {
            self.advance_commit();
        }
        self.finish();
    }

    /// The shell's answer to `Output::LoadEntries { to, from, .. }`: the entries read
    /// from the log store (from `from` on, in order), or why they could not be read.
    /// Stale and duplicate answers are ignored (not leading any more, no load for `to`
    /// from `from` outstanding); the entries are checked against the log's terms
    /// (it may have been truncated or compacted meanwhile) and only the prefix that
    /// matches is used. If the follower still needs them they leave as an
    /// AppendEntries; otherwise replication simply carries on from where the follower
    /// is. After a failure the load is asked again at the next heartbeat.
    pub fn on_entries_loaded(
        &mut self,
        to: &ServerId,
        from: LogIndex,
        loaded: Result<Vec<Entry>, String>,
    ) {
        let outstanding = self.role == Role::Leader
            && self
                .progress
                .get(to)
                .is_some_and(|p| p.loading.is_some_and(|(f, _)| f == from));
        if !outstanding {
            return;
        }
        if let Some(p) = self.progress.get_mut(to) {
            p.loading = None;
        }
        if let Ok(entries) = loaded {
            let usable = entries
                .iter()
                .enumerate()
                .take_while(|(i, e)| {
                    e.index.0 == from.0 + *i as u64 && self.log.matches(std::slice::from_ref(e))
                })
                .count();
            let wanted = self.progress.get(to).is_some_and(|p| {
                p.next_index == from
                    && p.snapshot_sent_ms.is_none()
                    && p.inflight.len() < super::MAX_INFLIGHT_APPENDS
            });
            let prev = LogIndex(from.0.saturating_sub(1));
            if usable > 0 && wanted && self.log.term_at(prev).is_some() {
                let entries = &entries[..usable.min(self.cfg.max_entries_per_append)];
                let batch = bounded_batch(entries.iter(), self.cfg.max_append_bytes);
                self.send_entries(to, prev, batch);
            }
            // Pipelining: the next load (or cached batch) goes while this one travels.
            self.replicate(to);
        }
        self.finish();
    }

    /// The shell's answer to `Output::LoadCommitted { from, .. }`: committed entries
    /// read from the log store (from `from` on, in order), or why they could not be
    /// read. Only the answer to the load outstanding is used (a stale or duplicate one
    /// is ignored); its entries are checked against the log's terms and the commit
    /// index, and the prefix that continues what was handed out leaves as an
    /// `Output::Apply`, followed by the next load (or the cached rest). After a failure,
    /// or an answer with nothing usable, the load is asked again after a heartbeat
    /// interval.
    pub fn on_committed_loaded(&mut self, from: LogIndex, loaded: Result<Vec<Entry>, String>) {
        if self.apply_load.map(|(f, _)| f) != Some(from) {
            return;
        }
        self.apply_load = None;
        let next = self.apply_next;
        let usable: Vec<Entry> = match loaded {
            Ok(entries) if from == next => entries
                .into_iter()
                .enumerate()
                .take_while(|(i, e)| {
                    e.index.0 == next.0 + *i as u64
                        && e.index <= self.commit
                        && self.log.matches(std::slice::from_ref(e))
                })
                .map(|(_, e)| e)
                .collect(),
            _ => Vec::new(),
        };
        match usable.last().map(|e| e.index) {
            Some(last) => {
                self.apply_next = LogIndex(last.0 + 1);
                self.outputs.push(Output::Apply { entries: usable });
            }
            None => self.apply_retry_ms = self.now_ms + self.cfg.heartbeat_interval_ms,
        }
        self.finish();
    }

    /// A message from another server.
    pub fn on_message(&mut self, now_ms: u64, from: ServerId, msg: Message) {
        self.now_ms = self.now_ms.max(now_ms);
        match msg {
            Message::RequestVote {
                term,
                candidate,
                last_log_index,
                last_log_term,
                pre_vote,
            } => {
                let last = (last_log_term, last_log_index);
                if pre_vote {
                    self.on_pre_vote_request(from, term, candidate, last)
                } else {
                    self.on_request_vote(from, term, candidate, last)
                }
            }
            Message::RequestVoteReply {
                term,
                granted,
                pre_vote,
            } => {
                if pre_vote {
                    self.on_pre_vote_reply(from, term, granted)
                } else {
                    self.on_vote_reply(from, term, granted)
                }
            }
            Message::AppendEntries {
                term,
                leader,
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                round,
            } => self.on_append_entries(
                from,
                term,
                leader,
                (prev_log_index, prev_log_term),
                entries,
                leader_commit,
                round,
            ),
            Message::AppendEntriesReply {
                term,
                success,
                match_index,
                last_log_index,
                round,
            } => self.on_append_reply(from, term, success, match_index, last_log_index, round),
            Message::InstallSnapshot {
                term,
                leader,
                meta,
                data,
            } => self.on_install_snapshot(from, term, leader, meta, data),
            Message::InstallSnapshotReply { term, match_index } => {
                self.on_install_snapshot_reply(from, term, match_index)
            }
        }
        self.finish();
    }

    // ----- helpers --------------------------------------------------------------------

    fn send(&mut self, to: ServerId, msg: Message) {
        self.outputs.push(Output::Send { to, msg });
    }

    fn is_voter(&self, id: &ServerId) -> bool {
        self.membership.is_voter(id)
    }

    /// The other voters: whom an election asks.
    fn peers(&self) -> Vec<ServerId> {
        self.membership
            .voters
            .iter()
            .filter(|(id, _)| *id != self.cfg.id)
            .map(|(id, _)| id.clone())
            .collect()
    }

    fn quorum(&self) -> usize {
        self.membership.voters.len() / 2 + 1
    }

    fn reset_election_timer(&mut self) {
        let base = self.cfg.election_timeout_ms.max(1);
        self.election_deadline_ms = self.now_ms + base + self.rng.random_range(0..base);
    }
}

/// The longest prefix of `entries` whose payloads fit in `max_bytes` (at least one entry).
pub(super) fn bounded_batch<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    max_bytes: usize,
) -> Vec<Entry> {
    let mut bytes = 0usize;
    entries
        .into_iter()
        .enumerate()
        .take_while(|(i, e)| {
            bytes = bytes.saturating_add(e.payload.approx_bytes());
            *i == 0 || bytes <= max_bytes
        })
        .map(|(_, e)| e.clone())
        .collect()
}

/// The membership `change` makes of `current`, or why it cannot. Lists stay sorted by id
/// so every server writes the same entry for the same change.
fn changed_membership(
    current: &Configuration,
    change: ConfigChange,
) -> Result<Configuration, ChangeError> {
    let mut next = current.clone();
    let address_taken = |addr: &str, except: &ServerId| {
        current
            .servers()
            .find(|(id, a)| a == addr && id != except)
            .map(|(id, _)| id.clone())
    };
    match change {
        ConfigChange::AddNonVoter { id, addr } => {
            if current.contains(&id) {
                return Err(ChangeError::AlreadyMember { id });
            }
            if let Some(by) = address_taken(&addr, &id) {
                return Err(ChangeError::AddressInUse { addr, by });
            }
            next.non_voters.push((id, addr));
        }
        ConfigChange::Promote { id } => {
            if current.is_voter(&id) {
                return Err(ChangeError::AlreadyVoter { id });
            }
            let Some(pos) = next.non_voters.iter().position(|(v, _)| *v == id) else {
                return Err(ChangeError::UnknownServer { id });
            };
            let server = next.non_voters.remove(pos);
            next.voters.push(server);
        }
        ConfigChange::Remove { id } => {
            if let Some(pos) = next.voters.iter().position(|(v, _)| *v == id) {
                if next.voters.len() == 1 {
                    return Err(ChangeError::LastVoter { id });
                }
                next.voters.remove(pos);
            } else if let Some(pos) = next.non_voters.iter().position(|(v, _)| *v == id) {
                next.non_voters.remove(pos);
            } else {
                return Err(ChangeError::UnknownServer { id });
            }
        }
        ConfigChange::Readdress { id, addr } => {
            if let Some(by) = address_taken(&addr, &id) {
                return Err(ChangeError::AddressInUse { addr, by });
            }
            let Some(server) = next
                .voters
                .iter_mut()
                .chain(next.non_voters.iter_mut())
                .find(|(v, _)| *v == id)
            else {
                return Err(ChangeError::UnknownServer { id });
            };
            server.1 = addr;
        }
    }
    next.voters.sort();
    next.non_voters.sort();
    Ok(next)
}
