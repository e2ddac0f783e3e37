//! The Raft decision maker: election, log matching, commit. See the module docs in
//! `raft/mod.rs` for timings and the durability protocol.

use super::durability::Durability;
use super::log::Log;
use super::reads::ReadTracker;
use super::recovered::RecoveredLog;
use super::types::{
    ChangeError, ConfigChange, Configuration, Entry, HardState, Message, NotLeader, Output,
    Payload, PersistRequest, Role, ServerProgress, SnapshotMeta,
};
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
    hard_state_dirty: bool,
    /// First in-memory entry not yet handed to the shell for persisting.
    unsent_from: Option<LogIndex>,
    /// Disk truncation still to be requested.
    pending_truncate: Option<LogIndex>,
    /// Whole-log discard (snapshot install) still to be requested.
    pending_reset: Option<LogIndex>,

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
            hard_state_dirty: term != hard_state.term,
            unsent_from: None,
            pending_truncate: None,
            pending_reset: discarded.then_some(log_base_index),
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
        self.hard_state_dirty = true;
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

    // ----- elections ------------------------------------------------------------------

    /// Leader stickiness: while a leader is alive, a candidate that merely timed out
    /// (e.g. partitioned and back) must not depose it or bump our term.
    fn leader_alive(&self) -> bool {
        let recently_started =
            self.now_ms < self.started_ms.saturating_add(self.cfg.election_timeout_ms);
        if recently_started && self.role != Role::Leader {
            return true; // we may have heard from a leader just before restarting
        }
        match self.role {
            Role::Leader => true,
            _ => {
                self.leader.is_some()
                    && self.last_leader_contact_ms.is_some_and(|t| {
                        self.now_ms.saturating_sub(t) < self.cfg.election_timeout_ms
                    })
            }
        }
    }

    /// Whether a candidate's (last term, last index) is at least as up to date as ours.
    fn log_up_to_date(&self, last: (Term, LogIndex)) -> bool {
        last >= (self.log.last_term(), self.log.last_index())
    }

    fn on_pre_vote_request(
        &mut self,
        from: ServerId,
        term: Term,
        candidate: ServerId,
        last: (Term, LogIndex),
    ) {
        // No state changes here, whatever the answer.
        let grant = term > self.term
            && candidate == from
            && !self.leader_alive()
            && self.log_up_to_date(last);
        let reply = Message::RequestVoteReply {
            term: if grant { term } else { self.term },
            granted: grant,
            pre_vote: true,
        };
        self.send(from, reply);
    }

    fn on_pre_vote_reply(&mut self, from: ServerId, term: Term, granted: bool) {
        if !granted {
            if term > self.term {
                self.step_down(term);
            }
            return;
        }
        if term != Term(self.term.0.saturating_add(1)) || !self.is_voter(&from) {
            return; // stale
        }
        let Some(pre_votes) = self.pre_votes.as_mut() else {
            return;
        };
        pre_votes.insert(from);
        let granted = self
            .membership
            .voters
            .iter()
            .filter(|(id, _)| pre_votes.contains(id))
            .count();
        if granted >= self.quorum() {
            self.become_candidate();
        }
    }

    /// Ask whether we could win before bumping the term (Raft thesis §9.6).
    fn start_pre_vote(&mut self) {
        if self.term.0 == u64::MAX {
            return;
        }
        self.pre_votes = Some(BTreeSet::from([self.cfg.id.clone()]));
        self.reset_election_timer();
        let msg = Message::RequestVote {
            term: Term(self.term.0.saturating_add(1)),
            candidate: self.cfg.id.clone(),
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote: true,
        };
        for peer in self.peers() {
            self.send(peer, msg.clone());
        }
    }

    fn on_request_vote(
        &mut self,
        from: ServerId,
        term: Term,
        candidate: ServerId,
        last: (Term, LogIndex),
    ) {
        let reject = |s: &Self| Message::RequestVoteReply {
            term: s.term,
            granted: false,
            pre_vote: false,
        };
        if term < self.term {
            self.send(from, reject(self));
            return;
        }
        if self.leader_alive() && term > self.term {
            self.send(from, reject(self));
            return;
        }
        if term > self.term {
            self.step_down(term);
        }
        let log_ok = self.log_up_to_date(last);
        let vote_free = self.voted_for.is_none() || self.voted_for.as_ref() == Some(&candidate);
        if self.role == Role::Follower && log_ok && vote_free && candidate == from {
            if self.voted_for.is_none() {
                self.voted_for = Some(candidate);
                self.hard_state_dirty = true;
            }
            self.reset_election_timer();
            // Rule: a granted vote leaves only once it is durable.
            self.persists.ack_when_durable(
                from,
                Message::RequestVoteReply {
                    term: self.term,
                    granted: true,
                    pre_vote: false,
                },
            );
        } else {
            self.send(from, reject(self));
        }
    }

    fn on_vote_reply(&mut self, from: ServerId, term: Term, granted: bool) {
        if term > self.term {
            self.step_down(term);
            return;
        }
        if self.role != Role::Candidate || term < self.term || !granted {
            return;
        }
        if self.is_voter(&from) {
            self.votes.insert(from);
            self.check_election_won();
        }
    }

    fn become_candidate(&mut self) {
        if self.term.0 == u64::MAX {
            return; // terms are exhausted (only a hostile peer gets here): never re-vote
        }
        self.pre_votes = None;
        self.term = Term(self.term.0.saturating_add(1));
        self.voted_for = Some(self.cfg.id.clone());
        self.hard_state_dirty = true;
        self.role = Role::Candidate;
        self.leader = None;
        self.last_leader_contact_ms = None;
        self.votes.clear();
        self.progress.clear();
        self.reset_election_timer();
        // Our own vote counts only once it is durable: hand it to the disk now.
        self.flush_persist();
        self.persists.await_own_vote();
        let msg = Message::RequestVote {
            term: self.term,
            candidate: self.cfg.id.clone(),
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote: false,
        };
        for peer in self.peers() {
            self.send(peer, msg.clone());
        }
    }

    fn check_election_won(&mut self) {
        let granted = self
            .membership
            .voters
            .iter()
            .filter(|(id, _)| self.votes.contains(id))
            .count();
        if granted >= self.quorum() {
            self.become_leader();
        }
    }

    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.pre_votes = None;
        self.leader = Some(self.cfg.id.clone());
        self.last_leader_contact_ms = None;
        self.persists.forget_own_vote();
        self.leader_since_ms = self.now_ms;
        self.progress.clear();
        self.sync_progress(LogIndex(self.log.last_index().0 + 1));
        // The no-op commits every earlier entry once a quorum stores it.
        for id in self.reads.reset() {
            self.outputs.push(Output::ReadFailed { id });
        }
        self.term_start_index = self.append_local(Payload::Noop);
        self.broadcast_append();
        self.heartbeat_due_ms = self.now_ms + self.cfg.heartbeat_interval_ms;
    }

    /// Move to follower, adopting a newer term if given.
    fn step_down(&mut self, term: Term) {
        if term > self.term {
            self.pre_votes = None;
            self.term = term;
            self.voted_for = None;
            self.hard_state_dirty = true;
            self.leader = None;
        }
        if self.role != Role::Follower {
            if self.role == Role::Leader {
                self.term_start_index = LogIndex(0);
                for id in self.reads.reset() {
                    self.outputs.push(Output::ReadFailed { id });
                }
                // As hashicorp/raft does on step-down: our own leadership was the last
                // contact with a leader. Without this a deposed leader cut off from the
                // cluster would report "last contact 0" on stale reads (fresh data)
                // while its state ages.
                self.last_leader_contact_ms = Some(self.now_ms);
            }
            self.role = Role::Follower;
            self.leader = None;
            self.progress.clear();
            self.votes.clear();
            self.persists.forget_own_vote();
            self.reset_election_timer();
        }
    }

    fn tick_leader(&mut self) {
        // Check quorum: a leader that has not heard from a quorum for an election timeout
        // steps down instead of serving as a stale leader.
        if self.now_ms.saturating_sub(self.leader_since_ms) >= self.cfg.election_timeout_ms {
            let timeout = self.cfg.election_timeout_ms;
            let now = self.now_ms;
            let recent = self
                .membership
                .voters
                .iter()
                .filter(|(id, _)| {
                    *id == self.cfg.id
                        || self
                            .progress
                            .get(id)
                            .is_some_and(|p| now.saturating_sub(p.last_ack_ms) < timeout)
                })
                .count();
            if recent < self.quorum() {
                self.step_down(self.term);
                return;
            }
        }
        self.retransmit_lost_batches();
        if self.now_ms >= self.heartbeat_due_ms {
            self.broadcast_append();
            self.heartbeat_due_ms = self.now_ms + self.cfg.heartbeat_interval_ms;
        }
    }

    // ----- replication ----------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    fn on_append_entries(
        &mut self,
        from: ServerId,
        term: Term,
        leader: ServerId,
        (prev_log_index, prev_log_term): (LogIndex, Term),
        entries: Vec<Entry>,
        leader_commit: LogIndex,
        round: u64,
    ) {
        let fail = |s: &Self| Message::AppendEntriesReply {
            term: s.term,
            success: false,
            match_index: LogIndex(0),
            last_log_index: s.log.last_index(),
            round,
        };
        if term < self.term {
            self.send(from, fail(self));
            return;
        }
        // Malformed input: entries must continue prev_log_index contiguously.
        let contiguous = entries
            .iter()
            .enumerate()
            .all(|(i, e)| prev_log_index.0.checked_add(1 + i as u64) == Some(e.index.0));
        if leader != from || !contiguous {
            return;
        }
        if term > self.term || self.role != Role::Follower {
            self.step_down(term);
        }
        self.accept_leader(leader);

        // Everything up to our compaction point is committed, and a current leader holds
        // every committed entry: that prefix matches without looking.
        let base = self.log.base().clone();
        let (prev_log_index, prev_log_term, entries) = if prev_log_index < base.index {
            let last_sent = LogIndex(prev_log_index.0 + entries.len() as u64);
            if last_sent <= base.index {
                // All of it is covered by our durable snapshot.
                self.send(from, self.ok_reply(last_sent, round));
                return;
            }
            let entries = entries.into_iter().filter(|e| e.index > base.index);
            (base.index, base.term, entries.collect::<Vec<_>>())
        } else {
            (prev_log_index, prev_log_term, entries)
        };
        if self.log.term_at(prev_log_index) != Some(prev_log_term) {
            self.send(from, fail(self));
            return;
        }
        let last_new = LogIndex(prev_log_index.0 + entries.len() as u64);
        for e in entries {
            match self.log.term_at(e.index) {
                Some(t) if t == e.term => continue,
                Some(_) => {
                    if e.index <= self.commit {
                        return; // would erase a committed entry: a broken leader; refuse
                    }
                    self.truncate_local(e.index);
                    self.append_entry(e);
                }
                None => self.append_entry(e),
            }
        }
        let new_commit = leader_commit.min(last_new);
        if new_commit > self.commit {
            // The new entries' disk write goes first: our acknowledgement waits for it,
            // applying what is committed does not (and the shell's apply wakes another
            // thread that would otherwise delay the write).
            self.flush_persist();
            self.commit = new_commit;
            self.outputs.push(Output::Committed { up_to: new_commit });
        }
        let unsent = self.unsent_from.is_some() || self.pending_truncate.is_some();
        if self.durable >= last_new && !unsent {
            self.send(from, self.ok_reply(last_new, round));
        } else if last_new == prev_log_index {
            // A heartbeat never waits on disk: vouch only for what is durable already.
            let durable = self.durable.min(last_new);
            self.send(from, self.ok_reply(durable, round));
        } else {
            let reply = self.ok_reply(last_new, round);
            self.persists.ack_when_durable(from, reply);
        }
    }

    /// Any message from the current leader: follow it and stay quiet.
    fn accept_leader(&mut self, leader: ServerId) {
        self.leader = Some(leader);
        self.pre_votes = None;
        self.last_leader_contact_ms = Some(self.now_ms);
        self.reset_election_timer();
    }

    fn on_install_snapshot(
        &mut self,
        from: ServerId,
        term: Term,
        leader: ServerId,
        meta: SnapshotMeta,
        data: Vec<u8>,
    ) {
        let reply = |s: &Self, match_index| Message::InstallSnapshotReply {
            term: s.term,
            match_index,
        };
        if term < self.term {
            self.send(from, reply(self, LogIndex(0)));
            return;
        }
        if leader != from {
            return;
        }
        if term > self.term || self.role != Role::Follower {
            self.step_down(term);
        }
        self.accept_leader(leader);
        if meta.index > self.commit {
            if self.log.term_at(meta.index) == Some(meta.term) {
                // Our log holds the snapshot's last entry: keep it and what follows
                // (Raft §7); those entries are simply committed now.
                self.commit = meta.index;
                self.outputs.push(Output::Committed { up_to: meta.index });
            } else {
                // Throw the log away: the snapshot replaces it. The shell stores the data
                // durably before the reset below reaches the log.
                self.outputs.push(Output::RestoreSnapshot {
                    meta: meta.clone(),
                    data,
                });
                self.log.reset(meta.clone());
                self.unsent_from = None;
                self.pending_truncate = None;
                self.pending_reset = Some(meta.index);
                // Nothing of the new log is on disk until the reset lands.
                self.durable = LogIndex(0);
                self.commit = meta.index;
                // The state machine is replaced by the snapshot: it goes on after it.
                self.apply_next = LogIndex(meta.index.0 + 1);
                self.apply_load = None;
                self.reload_membership();
            }
        }
        // Acknowledge once everything issued so far (the reset included) is durable.
        let reply = reply(self, meta.index);
        self.persists.ack_when_durable(from, reply);
    }

    fn on_install_snapshot_reply(&mut self, from: ServerId, term: Term, match_index: LogIndex) {
        if !self.is_reply_to_current_leader(term) {
            return;
        }
        let last = self.log.last_index();
        let now = self.now_ms;
        let Some(p) = self.progress.get_mut(&from) else {
            return;
        };
        p.last_ack_ms = now;
        if p.snapshot_sent_ms.take().is_none() {
            return; // not waiting for one: stale or duplicate
        }
        p.inflight.clear();
        let matched = match_index.min(last);
        if matched > p.match_index {
            p.match_index = matched;
        }
        p.next_index = LogIndex(p.match_index.0 + 1);
        self.advance_commit();
        self.replicate(&from);
    }

    /// A reply to something this leader sent in its current term. A newer term in the
    /// reply makes us step down; anything else (stale term, no longer leader) is ignored.
    fn is_reply_to_current_leader(&mut self, term: Term) -> bool {
        if term > self.term {
            self.step_down(term);
            return false;
        }
        self.role == Role::Leader && term == self.term
    }

    fn ok_reply(&self, match_index: LogIndex, round: u64) -> Message {
        Message::AppendEntriesReply {
            term: self.term,
            success: true,
            match_index,
            last_log_index: self.log.last_index(),
            round,
        }
    }

    fn on_append_reply(
        &mut self,
        from: ServerId,
        term: Term,
        success: bool,
        match_index: LogIndex,
        last_log_index: LogIndex,
        round: u64,
    ) {
        if !self.is_reply_to_current_leader(term) {
            return;
        }
        let last = self.log.last_index();
        let base = self.log.base().index;
        let now = self.now_ms;
        if !self.progress.contains_key(&from) {
            return;
        }
        // Success or not, the follower accepted us as leader when it answered.
        self.reads.on_ack(&from, round);
        self.release_reads();
        let Some(p) = self.progress.get_mut(&from) else {
            return;
        };
        p.last_ack_ms = now;
        if p.snapshot_sent_ms.is_some() && !success {
            // A heartbeat's failure while a snapshot is on its way says nothing new.
            return;
        }
        if success {
            let matched = match_index.min(last);
            if matched > p.match_index {
                p.match_index = matched;
            }
            // Batches this acknowledgement covers are done (a heartbeat's covers none).
            while p
                .inflight
                .front()
                .is_some_and(|(end, _)| *end <= p.match_index)
            {
                p.inflight.pop_front();
            }
            if p.next_index.0 < p.match_index.0 + 1 {
                p.next_index = LogIndex(p.match_index.0 + 1);
            }
            if p.next_index > base {
                p.snapshot_sent_ms = None;
            }
            if p.probe.is_some_and(|probe| probe <= p.match_index) {
                p.probe = None;
            }
        } else {
            // The follower's log does not hold what we assumed: probe back (to its last
            // index when that is lower, never below what it matched) and send from
            // there; whatever was in flight after that point is void.
            let mut prev = last_log_index.0.min(p.next_index.0.saturating_sub(1));
            if let Some(probed) = p.probe.filter(|probed| probed.0 <= prev) {
                prev = probed.0.saturating_sub(1);
            }
            let prev = prev.max(p.match_index.0);
            p.probe = Some(LogIndex(prev));
            p.next_index = LogIndex(prev + 1);
            p.inflight.clear();
        }
        if success {
            self.advance_commit();
        }
        self.replicate(&from);
    }

    /// Send every follower what it needs, or at least a heartbeat, as a new round.
    fn broadcast_append(&mut self) {
        self.reads.open_round(self.now_ms);
        self.release_reads();
        for peer in self.progress.keys().cloned().collect::<Vec<_>>() {
            if !self.replicate(&peer) {
                self.heartbeat(&peer);
            }
        }
    }

    /// An empty AppendEntries at an index the follower is known to hold (or the one
    /// it is sent next, when nothing is in flight). It never waits for the follower's
    /// disk, so a follower with a slow disk still answers heartbeats promptly and a
    /// healthy leader is never deposed for it.
    fn heartbeat(&mut self, peer: &ServerId) {
        let Some(p) = self.progress.get(peer) else {
            return;
        };
        let base = self.log.base().index;
        let prev = if p.inflight.is_empty() {
            LogIndex(p.next_index.0.saturating_sub(1))
        } else {
            p.match_index
        }
        .max(base);
        let msg = Message::AppendEntries {
            term: self.term,
            leader: self.cfg.id.clone(),
            prev_log_index: prev,
            prev_log_term: self.log.term_at(prev).unwrap_or_default(),
            entries: Vec::new(),
            leader_commit: self.commit,
            round: self.reads.current_round(),
        };
        self.send(peer.clone(), msg);
    }

    /// Send `peer` its next batch of entries if it needs one and the in-flight window
    /// has room, or a snapshot if it needs entries compacted away. Whether something
    /// was sent.
    fn replicate(&mut self, peer: &ServerId) -> bool {
        let Some(p) = self.progress.get_mut(peer) else {
            return false;
        };
        let last = self.log.last_index();
        let base = self.log.base();
        if p.next_index <= base.index {
            // The follower needs entries we compacted away: it gets a snapshot instead.
            let retry_ms = self.cfg.election_timeout_ms * SNAPSHOT_RETRY_TIMEOUTS;
            let waiting = p
                .snapshot_sent_ms
                .is_some_and(|t| self.now_ms.saturating_sub(t) < retry_ms);
            if waiting {
                // Heartbeats keep it following us meanwhile (their replies are ignored).
                return false;
            }
            p.snapshot_sent_ms = Some(self.now_ms);
            p.inflight.clear();
            p.probe = None;
            self.outputs.push(Output::InstallSnapshot {
                to: peer.clone(),
                term: self.term,
            });
            return true;
        }
        if p.next_index > last || p.inflight.len() >= super::MAX_INFLIGHT_APPENDS {
            return false;
        }
        let prev = LogIndex(p.next_index.0.saturating_sub(1));
        let cache_first = self.log.cache_first();
        if p.next_index < cache_first {
            // The follower needs entries no longer cached: ask the shell to read them
            // (one load per follower at a time); heartbeats go on meanwhile.
            let asked_lately = p.loading.is_some_and(|(_, at)| {
                self.now_ms.saturating_sub(at) < self.cfg.election_timeout_ms
            });
            if !asked_lately {
                p.loading = Some((p.next_index, self.now_ms));
                let up_to =
                    (cache_first.0 - 1).min(prev.0 + self.cfg.max_entries_per_append as u64);
                self.outputs.push(Output::LoadEntries {
                    to: peer.clone(),
                    from: p.next_index,
                    up_to: LogIndex(up_to),
                    max_bytes: self.cfg.max_append_bytes,
                });
            }
            return false;
        }
        let to = LogIndex(last.0.min(prev.0 + self.cfg.max_entries_per_append as u64));
        // Only the entries that fit are copied (a batch is bounded by bytes).
        let entries = bounded_batch(
            self.log.range(LogIndex(prev.0 + 1), to),
            self.cfg.max_append_bytes,
        );
        self.send_entries(peer, prev, entries)
    }

    /// Send `entries` (non-empty, continuing `prev`) to `peer` as the next batch in
    /// flight. Whether something was sent.
    fn send_entries(&mut self, peer: &ServerId, prev: LogIndex, entries: Vec<Entry>) -> bool {
        let Some(p) = self.progress.get_mut(peer) else {
            return false;
        };
        let Some(sent_to) = entries.last().map(|e| e.index) else {
            return false;
        };
        p.inflight.push_back((sent_to, self.now_ms));
        p.next_index = LogIndex(sent_to.0 + 1);
        let msg = Message::AppendEntries {
            term: self.term,
            leader: self.cfg.id.clone(),
            prev_log_index: prev,
            prev_log_term: self.log.term_at(prev).unwrap_or_default(),
            entries,
            leader_commit: self.commit,
            round: self.reads.current_round(),
        };
        self.send(peer.clone(), msg);
        true
    }

    /// Batches unanswered for an election timeout are taken as lost: send again from
    /// what the follower has acknowledged.
    fn retransmit_lost_batches(&mut self) {
        let lost_after = self.cfg.election_timeout_ms;
        let now = self.now_ms;
        let mut lost = Vec::new();
        for (id, p) in &mut self.progress {
            if p.inflight
                .front()
                .is_some_and(|(_, at)| now.saturating_sub(*at) >= lost_after)
            {
                p.inflight.clear();
                p.next_index = LogIndex(p.match_index.0 + 1);
                lost.push(id.clone());
            }
        }
        for id in lost {
            self.replicate(&id);
        }
    }

    /// Answer the reads a quorum has confirmed; open a round for those still waiting
    /// when none is on its way.
    fn release_reads(&mut self) {
        if self.role != Role::Leader {
            return;
        }
        let confirmed =
            self.reads
                .confirmed_round(&self.membership.voters, &self.cfg.id, self.quorum());
        for (id, index) in self.reads.take_confirmed(confirmed) {
            self.outputs.push(Output::ReadReady { id, index });
        }
        if self.reads.wants_round(confirmed) {
            self.broadcast_append();
        }
    }

    /// Commit the highest current-term index a quorum has durably stored. The leader's
    /// own copy counts only once persisted.
    fn advance_commit(&mut self) {
        let mut matches: Vec<LogIndex> = self
            .membership
            .voters
            .iter()
            .map(|(id, _)| {
                if *id == self.cfg.id {
                    self.durable
                } else {
                    self.progress
                        .get(id)
                        .map(|p| p.match_index)
                        .unwrap_or_default()
                }
            })
            .collect();
        if matches.is_empty() {
            return;
        }
        matches.sort_unstable_by(|a, b| b.cmp(a));
        let candidate = matches[self.quorum() - 1];
        if candidate > self.commit && self.log.term_at(candidate) == Some(self.term) {
            self.commit = candidate;
            self.outputs.push(Output::Committed { up_to: candidate });
            self.step_down_if_removed();
        }
    }

    /// A leader whose own removal (or demotion) has committed stops leading: it led the
    /// change through without counting itself (Raft §4.2.2). The followers hear of the
    /// commit first, so the change is applied everywhere without waiting for the next
    /// leader.
    fn step_down_if_removed(&mut self) {
        let removed = !self.membership.is_voter(&self.cfg.id);
        if self.role == Role::Leader && removed && self.membership_index <= self.commit {
            self.broadcast_append();
            self.step_down(self.term);
        }
    }

    /// (Leader) Replication state for exactly the members other than us: new members
    /// start at `next_index`, removed ones are forgotten.
    fn sync_progress(&mut self, next_index: LogIndex) {
        let me = self.cfg.id.clone();
        let now = self.now_ms;
        let members: BTreeSet<ServerId> = self
            .membership
            .servers()
            .map(|(id, _)| id.clone())
            .filter(|id| *id != me)
            .collect();
        self.progress.retain(|id, _| members.contains(id));
        for id in members {
            self.progress.entry(id).or_insert(Progress {
                next_index,
                match_index: LogIndex(0),
                inflight: VecDeque::new(),
                probe: None,
                last_ack_ms: now,
                snapshot_sent_ms: None,
                loading: None,
            });
        }
    }

    // ----- log and durability ---------------------------------------------------------

    fn append_local(&mut self, payload: Payload) -> LogIndex {
        let index = LogIndex(self.log.last_index().0 + 1);
        self.append_entry(Entry {
            term: self.term,
            index,
            payload,
        });
        index
    }

    fn append_entry(&mut self, entry: Entry) {
        if self.unsent_from.is_none() {
            self.unsent_from = Some(entry.index);
        }
        let membership = entry.payload.membership().map(|m| (entry.index, m));
        self.log.append(entry);
        if let Some((index, membership)) = membership {
            self.membership = membership;
            self.membership_index = index;
            if self.role == Role::Leader {
                // A new member is first sent the configuration entry itself.
                self.sync_progress(index);
            }
        }
    }

    fn truncate_local(&mut self, from: LogIndex) {
        match self.unsent_from {
            Some(u) if u < from => {} // only unsent entries go: the disk never saw them
            _ => {
                self.unsent_from = None;
                self.pending_truncate = Some(self.pending_truncate.map_or(from, |t| t.min(from)));
            }
        }
        self.log.truncate_from(from);
        if self.durable >= from {
            self.durable = LogIndex(from.0 - 1);
        }
        self.reload_membership();
    }

    /// The membership in effect after the log changed under it (a truncated suffix held
    /// a configuration entry, or a snapshot replaced the log).
    fn reload_membership(&mut self) {
        let (index, membership) = self.log.membership_at(self.log.last_index());
        self.membership = membership;
        self.membership_index = index;
    }

    /// Hand everything not yet persisted to the shell as one request.
    fn flush_persist(&mut self) {
        if !self.hard_state_dirty
            && self.unsent_from.is_none()
            && self.pending_truncate.is_none()
            && self.pending_reset.is_none()
        {
            return;
        }
        let entries = match self.unsent_from {
            // Entries not yet durable are always cached (see `evict_cached`).
            Some(from) => self.log.slice(from, self.log.last_index()),
            None => Vec::new(),
        };
        let hard_state = self.hard_state_dirty.then(|| self.hard_state());
        let id = (self.persists).issue(self.log.last_index(), self.log.last_term());
        self.outputs.push(Output::Persist(PersistRequest {
            id,
            reset_after: self.pending_reset.take(),
            truncate_from: self.pending_truncate.take(),
            entries,
            hard_state,
            then_send: Vec::new(),
        }));
        self.unsent_from = None;
        self.hard_state_dirty = false;
    }

    /// The `Persist` with this id if it is still among the outputs the shell has not
    /// taken.
    fn unhanded_persist(&mut self, id: u64) -> Option<&mut PersistRequest> {
        self.outputs.iter_mut().rev().find_map(|o| match o {
            Output::Persist(p) if p.id == id => Some(p),
            _ => None,
        })
    }

    /// End of every input: persist what changed, release or defer acknowledgements,
    /// report role changes.
    fn finish(&mut self) {
        self.flush_persist();
        self.hand_out_committed();
        self.evict_cached();
        let last_issued = self.persists.last_issued();
        for (to, msg) in self.persists.take_acks() {
            if self.persists.all_confirmed() {
                self.outputs.push(Output::Send { to, msg });
                continue;
            }
            // Riding the persist keeps the order only while nothing waits in the core.
            let ride = if self.cfg.replies_ride_persists && !self.persists.holds_replies() {
                self.unhanded_persist(last_issued)
            } else {
                None
            };
            match ride {
                Some(persist) => persist.then_send.push((to, msg)),
                None => self.persists.hold(to, msg),
            }
        }
        let now = (self.role, self.term, self.leader.clone());
        if now != self.reported {
            self.reported = now.clone();
            self.outputs.push(Output::RoleChanged {
                role: now.0,
                term: now.1,
                leader: now.2,
            });
        }
    }

    /// Feed the state machine: committed entries not yet handed out leave as one
    /// `Output::Apply` when cached; when the next one is older than the cache, the
    /// shell is asked to read them back (`Output::LoadCommitted`, one at a time, asked
    /// again after an election timeout without an answer) and they are handed out as
    /// the answer comes (`on_committed_loaded`).
    fn hand_out_committed(&mut self) {
        let base = self.log.base().index;
        if self.apply_next <= base {
            // Only a snapshot covers what is below the base (see `compact`).
            self.apply_next = LogIndex(base.0 + 1);
            self.apply_load = None;
        }
        let next = self.apply_next;
        if next > self.commit {
            return;
        }
        let cache_first = self.log.cache_first();
        if next >= cache_first {
            let entries = self.log.slice(next, self.commit);
            if let Some(last) = entries.last().map(|e| e.index) {
                self.apply_next = LogIndex(last.0 + 1);
                self.outputs.push(Output::Apply { entries });
            }
            return;
        }
        let asked_lately = self
            .apply_load
            .is_some_and(|(_, at)| self.now_ms.saturating_sub(at) < self.cfg.election_timeout_ms);
        if asked_lately || self.now_ms < self.apply_retry_ms {
            return;
        }
        self.apply_load = Some((next, self.now_ms));
        self.outputs.push(Output::LoadCommitted {
            from: next,
            up_to: LogIndex(self.commit.0.min(cache_first.0 - 1)),
            max_bytes: self.cfg.max_append_bytes,
        });
    }

    /// Keep the cache within its budget: only entries that are durable (the disk can
    /// give them back) and already handed to the state machine may go.
    fn evict_cached(&mut self) {
        let applied = LogIndex(self.apply_next.0 - 1);
        let evictable = self.durable.min(applied).min(self.commit);
        self.log.evict(
            self.cfg.log_cache_bytes,
            self.cfg.log_cache_entries,
            evictable,
        );
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
