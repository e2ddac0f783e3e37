//! Elections: leader stickiness, pre-vote, votes, becoming leader and stepping down,
//! and the leader's tick (it steps down once a quorum has gone quiet, else sends what
//! is due).

use super::Raft;
use crate::ids::{LogIndex, ServerId, Term};
use crate::raft::types::{Message, Output, Payload, Role};
use std::collections::BTreeSet;

impl Raft {
    /// Leader stickiness: while a leader is alive, a candidate that merely timed out
    /// (e.g. partitioned and back) must not depose it or bump our term.
    pub(super) fn leader_alive(&self) -> bool {
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
    pub(super) fn log_up_to_date(&self, last: (Term, LogIndex)) -> bool {
        last >= (self.log.last_term(), self.log.last_index())
    }

    pub(super) fn on_pre_vote_request(
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

    pub(super) fn on_pre_vote_reply(&mut self, from: ServerId, term: Term, granted: bool) {
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
    pub(super) fn start_pre_vote(&mut self) {
        if self.term.0 == u64::MAX {
            return;
        }
        self.pre_votes = Some(BTreeSet::from([self.cfg.id.clone()]));
        self.reset_election_timer();
        self.ask_for_votes(Term(self.term.0.saturating_add(1)), true);
    }

    pub(super) fn on_request_vote(
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
                self.unflushed.hard_state_changed();
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

    pub(super) fn on_vote_reply(&mut self, from: ServerId, term: Term, granted: bool) {
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

    pub(super) fn become_candidate(&mut self) {
        if self.term.0 == u64::MAX {
            return; // terms are exhausted (only a hostile peer gets here): never re-vote
        }
        self.pre_votes = None;
        self.term = Term(self.term.0.saturating_add(1));
        self.voted_for = Some(self.cfg.id.clone());
        self.unflushed.hard_state_changed();
        self.role = Role::Candidate;
        self.leader = None;
        self.last_leader_contact_ms = None;
        self.votes.clear();
        self.progress.clear();
        self.reset_election_timer();
        // Our own vote counts only once it is durable: hand it to the disk now.
        self.flush_persist();
        self.persists.await_own_vote();
        self.ask_for_votes(self.term, false);
    }

    /// Ask every other voter for its vote (or pre-vote) in `term`, on our log's last entry.
    fn ask_for_votes(&mut self, term: Term, pre_vote: bool) {
        let msg = Message::RequestVote {
            term,
            candidate: self.cfg.id.clone(),
            last_log_index: self.log.last_index(),
            last_log_term: self.log.last_term(),
            pre_vote,
        };
        for peer in self.peers() {
            self.send(peer, msg.clone());
        }
    }

    pub(super) fn check_election_won(&mut self) {
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

    pub(super) fn become_leader(&mut self) {
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
    pub(super) fn step_down(&mut self, term: Term) {
        if term > self.term {
            self.pre_votes = None;
            self.term = term;
            self.voted_for = None;
            self.unflushed.hard_state_changed();
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

    pub(super) fn tick_leader(&mut self) {
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
}
