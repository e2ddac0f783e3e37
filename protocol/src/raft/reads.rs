//! Linearizable reads without a log entry: the leader's heartbeat rounds, ReadIndex
//! (Raft thesis §6.4) and the leader lease (§6.4.1), kept apart from the rest of the
//! core so that their one idea — "a quorum acknowledged me as leader after time X" — is
//! in one place.
//!
//! # Rounds
//! Every broadcast of AppendEntries by the leader (heartbeats, the new leader's first
//! append, a round started for waiting reads) opens a new numbered round and records
//! when it was sent. Every AppendEntries carries the current round; a follower echoes
//! it in its reply, success or not (either way it accepted us as its leader in our
//! term at that moment and reset its election timer). Appends sent between broadcasts
//! carry the latest round, whose recorded send time is earlier than their real one:
//! that errs on the safe side for the lease and never confirms a read early.
//!
//! # ReadIndex
//! A read is given the index it must see (the commit index, at least the leader's
//! own no-op) and the first round opened AFTER it arrived. Once a quorum of voters
//! (the leader counting itself) has acknowledged that round, no other leader can have
//! been elected before the read arrived, so after applying up to its index the
//! leader's state answers it. Reads arriving while a read round is on its way wait for
//! the next one: one round serves a whole batch.
//!
//! # Lease
//! A follower that acknowledged round `r` sent at time `s` heard from us after `s`, and
//! refuses to vote for anyone else for an election timeout `T` after that (leader
//! stickiness; and a restarted server refuses votes for `T` after it starts, since it
//! forgot when it last heard from us). So while `now < s + lease` for a round `s`
//! acknowledged by a quorum, no other leader exists, and the leader may answer from its
//! state without a round. `lease = T × 9/10`: the 10 % margin absorbs clock-rate
//! differences between servers (monotonic clocks drift by parts per million; NTP slews
//! at most 0.05 %). Time is the leader's monotonic clock, given by the shell.

use crate::ids::{LogIndex, ServerId};
use std::collections::{BTreeMap, VecDeque};

/// Rounds whose send times are remembered. A round older than these cannot extend the
/// lease any more in practice (ten heartbeats per election timeout); if it is forgotten
/// it simply counts as expired.
const REMEMBERED_ROUNDS: usize = 256;
/// Most reads waiting for a round at once; more are refused at once.
pub const MAX_PENDING_READS: usize = 65_536;

/// A read waiting for leadership to be confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PendingRead {
    id: u64,
    index: LogIndex,
    /// The round whose quorum acknowledgement confirms it.
    round: u64,
}

/// The leader's read bookkeeping for one term (reset on every role change).
#[derive(Debug, Default)]
pub(super) struct ReadTracker {
    /// The last round opened (0: none yet).
    round: u64,
    /// Send times of the most recent rounds, oldest first; the last is `round`'s.
    sent: VecDeque<u64>,
    /// Highest round each peer acknowledged in this term.
    acked: BTreeMap<ServerId, u64>,
    pending: VecDeque<PendingRead>,
}

impl ReadTracker {
    /// Leadership began or ended: forget everything; the ids of waiting reads are
    /// returned so they can be failed.
    pub(super) fn reset(&mut self) -> Vec<u64> {
        let failed = self.pending.iter().map(|r| r.id).collect();
        *self = ReadTracker::default();
        failed
    }

    /// The round that AppendEntries sent now carry.
    pub(super) fn current_round(&self) -> u64 {
        self.round
    }

    /// Open a new round sent at `now_ms`; returns its number.
    pub(super) fn open_round(&mut self, now_ms: u64) -> u64 {
        self.round += 1;
        if self.sent.len() == REMEMBERED_ROUNDS {
            self.sent.pop_front();
        }
        self.sent.push_back(now_ms);
        self.round
    }

    /// A peer answered an AppendEntries of our term that carried `round`.
    pub(super) fn on_ack(&mut self, peer: &ServerId, round: u64) {
        if round > self.round {
            return; // from the future: not ours (a previous leadership of ours)
        }
        match self.acked.get_mut(peer) {
            Some(r) => *r = (*r).max(round),
            None => {
                self.acked.insert(peer.clone(), round);
            }
        }
    }

    /// Queue a read that must see `index`; it is confirmed by the next round opened.
    /// Returns false (nothing queued) when too many are waiting.
    pub(super) fn queue(&mut self, id: u64, index: LogIndex) -> bool {
        if self.pending.len() >= MAX_PENDING_READS {
            return false;
        }
        self.pending.push_back(PendingRead {
            id,
            index,
            round: self.round + 1,
        });
        true
    }

    /// Whether a round should be opened now for waiting reads: some read needs a round
    /// not yet opened, and no earlier round is still unconfirmed (that one's answer
    /// comes first; the heartbeat timer opens the next one if it was lost).
    pub(super) fn wants_round(&self, confirmed: u64) -> bool {
        self.pending.back().is_some_and(|r| r.round > self.round) && confirmed >= self.round
    }

    /// The highest round a quorum of `voters` acknowledged (`me` counts as having
    /// acknowledged every round). 0 when none.
    pub(super) fn confirmed_round(
        &self,
        voters: &[(ServerId, String)],
        me: &ServerId,
        quorum: usize,
    ) -> u64 {
        let mut rounds: Vec<u64> = voters
            .iter()
            .map(|(v, _)| match v == me {
                true => self.round,
                false => self.acked.get(v).copied().unwrap_or(0),
            })
            .collect();
        if quorum == 0 || rounds.len() < quorum {
            return 0;
        }
        rounds.sort_unstable_by(|a, b| b.cmp(a));
        rounds[quorum - 1]
    }

    /// Until when (leader clock, exclusive) the lease lets this leader answer reads
    /// without a round; None when no acknowledged round makes it valid at all.
    pub(super) fn lease_expiry(
        &self,
        voters: &[(ServerId, String)],
        me: &ServerId,
        quorum: usize,
        now_ms: u64,
        lease_ms: u64,
    ) -> Option<u64> {
        // Rounds are consecutive: the one `back` of the newest is at `len - 1 - back`.
        let sent_at = |round: u64| {
            let back = self.round.checked_sub(round)?;
            let position = (self.sent.len() as u64).checked_sub(back + 1)?;
            self.sent.get(position as usize).copied()
        };
        // A peer's newest acknowledged round stands for its send time; the leader
        // itself stands for now. Rounds forgotten count as never sent.
        let mut times: Vec<u64> = voters
            .iter()
            .map(|(v, _)| {
                if v == me {
                    Some(now_ms)
                } else {
                    self.acked.get(v).and_then(|r| sent_at(*r))
                }
            })
            .map(|t| t.unwrap_or(0))
            .collect();
        if quorum == 0 || times.len() < quorum {
            return None;
        }
        times.sort_unstable_by(|a, b| b.cmp(a));
        let oldest_in_quorum = times[quorum - 1];
        if voters.len() == 1 && voters[0].0 == *me {
            return Some(u64::MAX); // a sole voter: nobody else can ever lead
        }
        if oldest_in_quorum == 0 {
            return None;
        }
        Some(oldest_in_quorum.saturating_add(lease_ms))
    }

    /// Reads confirmed by `confirmed`, as (id, index), in arrival order.
    pub(super) fn take_confirmed(&mut self, confirmed: u64) -> Vec<(u64, LogIndex)> {
        let mut ready = Vec::new();
        while let Some(r) = self.pending.front() {
            if r.round > confirmed {
                break;
            }
            ready.push((r.id, r.index));
            self.pending.pop_front();
        }
        ready
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&str]) -> Vec<(ServerId, String)> {
        names
            .iter()
            .map(|n| (ServerId(n.to_string()), format!("{n}:8300")))
            .collect()
    }

    #[test]
    fn a_read_is_confirmed_only_by_a_round_opened_after_it() {
        let voters = ids(&["a", "b", "c"]);
        let me = &voters[0].0;
        let mut t = ReadTracker::default();
        t.open_round(10); // round 1, before the read
        t.on_ack(&voters[1].0, 1);
        assert!(t.queue(7, LogIndex(5)));
        assert_eq!(t.confirmed_round(&voters, me, 2), 1);
        assert!(
            t.take_confirmed(1).is_empty(),
            "round 1 was sent before the read"
        );
        assert!(t.wants_round(1));
        assert_eq!(t.open_round(11), 2);
        assert!(!t.wants_round(1), "one read round at a time");
        t.on_ack(&voters[2].0, 2);
        assert_eq!(t.confirmed_round(&voters, me, 2), 2);
        assert_eq!(t.take_confirmed(2), vec![(7, LogIndex(5))]);
    }

    #[test]
    fn reads_arriving_during_a_round_wait_for_the_next_one_together() {
        let voters = ids(&["a", "b", "c"]);
        let mut t = ReadTracker::default();
        t.queue(1, LogIndex(1));
        t.open_round(0);
        t.queue(2, LogIndex(2));
        t.queue(3, LogIndex(2));
        t.on_ack(&voters[1].0, 1);
        let c = t.confirmed_round(&voters, &voters[0].0, 2);
        assert_eq!(t.take_confirmed(c), vec![(1, LogIndex(1))]);
        assert!(t.wants_round(c));
        t.open_round(1);
        t.on_ack(&voters[2].0, 2);
        let c = t.confirmed_round(&voters, &voters[0].0, 2);
        assert_eq!(
            t.take_confirmed(c),
            vec![(2, LogIndex(2)), (3, LogIndex(2))]
        );
    }

    #[test]
    fn the_lease_runs_from_the_send_time_of_the_quorum_round() {
        let voters = ids(&["a", "b", "c", "d", "e"]);
        let me = &voters[0].0;
        let mut t = ReadTracker::default();
        assert_eq!(t.lease_expiry(&voters, me, 3, 0, 90), None);
        t.open_round(100); // 1
        t.open_round(200); // 2
        t.on_ack(&voters[1].0, 2);
        assert_eq!(t.lease_expiry(&voters, me, 3, 250, 90), None, "only 2 of 5");
        t.on_ack(&voters[2].0, 1);
        // Quorum {a: now, b: 200, c: 100}: the oldest of the best three counts.
        assert_eq!(t.lease_expiry(&voters, me, 3, 250, 90), Some(190));
        t.on_ack(&voters[3].0, 2);
        assert_eq!(t.lease_expiry(&voters, me, 3, 250, 90), Some(290));
    }

    #[test]
    fn a_sole_voter_always_holds_the_lease_and_confirms_at_once() {
        let voters = ids(&["a"]);
        let mut t = ReadTracker::default();
        assert_eq!(
            t.lease_expiry(&voters, &voters[0].0, 1, 5, 90),
            Some(u64::MAX)
        );
        t.queue(1, LogIndex(3));
        t.open_round(5);
        let c = t.confirmed_round(&voters, &voters[0].0, 1);
        assert_eq!(t.take_confirmed(c), vec![(1, LogIndex(3))]);
    }

    #[test]
    fn forgotten_rounds_and_future_rounds_never_extend_the_lease() {
        let voters = ids(&["a", "b", "c"]);
        let me = &voters[0].0;
        let mut t = ReadTracker::default();
        for i in 0..(REMEMBERED_ROUNDS as u64 + 10) {
            t.open_round(i);
        }
        t.on_ack(&voters[1].0, 3); // forgotten by now
        assert_eq!(t.lease_expiry(&voters, me, 2, 1000, 90), None);
        t.on_ack(&voters[2].0, 10_000); // never opened
        assert_eq!(t.lease_expiry(&voters, me, 2, 1000, 90), None);
    }

    #[test]
    fn reset_fails_waiting_reads_and_the_queue_is_bounded() {
        let mut t = ReadTracker::default();
        for id in 0..MAX_PENDING_READS as u64 {
            assert!(t.queue(id, LogIndex(1)));
        }
        assert!(!t.queue(u64::MAX, LogIndex(1)));
        assert_eq!(t.reset().len(), MAX_PENDING_READS);
        assert_eq!(t.current_round(), 0);
    }
}
