//! Replication: the follower's side of AppendEntries and InstallSnapshot, the leader's
//! pipelined sends, backtracking and retransmission, and the commit rule.

use super::{bounded_batch, Progress, Raft, SNAPSHOT_RETRY_TIMEOUTS};
use crate::ids::{LogIndex, ServerId, Term};
use crate::raft::types::{Entry, Message, Output, Role, SnapshotMeta};
use crate::raft::MAX_INFLIGHT_APPENDS;
use std::collections::{BTreeSet, VecDeque};

impl Raft {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_append_entries(
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
        if self.durable >= last_new && !self.unflushed.log_differs() {
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
    pub(super) fn accept_leader(&mut self, leader: ServerId) {
        self.leader = Some(leader);
        self.pre_votes = None;
        self.last_leader_contact_ms = Some(self.now_ms);
        self.reset_election_timer();
    }

    pub(super) fn on_install_snapshot(
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
                self.unflushed.reset(meta.index);
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

    pub(super) fn on_install_snapshot_reply(
        &mut self,
        from: ServerId,
        term: Term,
        match_index: LogIndex,
    ) {
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
    pub(super) fn is_reply_to_current_leader(&mut self, term: Term) -> bool {
        if term > self.term {
            self.step_down(term);
            return false;
        }
        self.role == Role::Leader && term == self.term
    }

    pub(super) fn ok_reply(&self, match_index: LogIndex, round: u64) -> Message {
        Message::AppendEntriesReply {
            term: self.term,
            success: true,
            match_index,
            last_log_index: self.log.last_index(),
            round,
        }
    }

    pub(super) fn on_append_reply(
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
    pub(super) fn broadcast_append(&mut self) {
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
    pub(super) fn heartbeat(&mut self, peer: &ServerId) {
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
    pub(super) fn replicate(&mut self, peer: &ServerId) -> bool {
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
        if p.next_index > last || p.inflight.len() >= MAX_INFLIGHT_APPENDS {
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
    pub(super) fn send_entries(
        &mut self,
        peer: &ServerId,
        prev: LogIndex,
        entries: Vec<Entry>,
    ) -> bool {
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
    pub(super) fn retransmit_lost_batches(&mut self) {
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
    pub(super) fn release_reads(&mut self) {
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
    pub(super) fn advance_commit(&mut self) {
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
    pub(super) fn step_down_if_removed(&mut self) {
        let removed = !self.membership.is_voter(&self.cfg.id);
        if self.role == Role::Leader && removed && self.membership_index <= self.commit {
            self.broadcast_append();
            self.step_down(self.term);
        }
    }

    /// (Leader) Replication state for exactly the members other than us: new members
    /// start at `next_index`, removed ones are forgotten.
    pub(super) fn sync_progress(&mut self, next_index: LogIndex) {
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
}
