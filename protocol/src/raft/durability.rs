//! The core's durability tracker: which of its persist requests the shell has made
//! durable, and what waits for that (see "Durability protocol" in the module docs).
//!
//! Persist requests are numbered in the order they leave the core; the shell confirms
//! the highest durable id, which covers every lower one. Three things wait on a
//! confirmation: the log position each request brings to disk (the core's durable
//! index, checked against the log by the core, since a truncation may have replaced
//! those entries meanwhile), the replies that vouch for durable state (collected per
//! input, then either riding the input's last persist or held here until it is
//! confirmed), and a candidate's own vote.

use crate::ids::{LogIndex, ServerId, Term};
use std::collections::VecDeque;

use super::types::Message;

/// A persist request handed to the shell and not confirmed yet.
#[derive(Debug, Clone, Copy)]
pub(super) struct InFlight {
    pub(super) id: u64,
    /// The log's last entry when the request was issued.
    pub(super) last_index: LogIndex,
    pub(super) last_term: Term,
}

pub(super) struct Durability {
    next_id: u64,
    confirmed: u64,
    in_flight: VecDeque<InFlight>,
    /// Replies of the current input, to leave once what it issued is durable.
    acks: Vec<(ServerId, Message)>,
    /// Replies held in the core until the persist id beside them is confirmed.
    held: Vec<(u64, ServerId, Message)>,
    /// The persist that makes a candidate's own vote durable.
    own_vote: Option<u64>,
}

impl Durability {
    pub(super) fn new() -> Durability {
        Durability {
            next_id: 1,
            confirmed: 0,
            in_flight: VecDeque::new(),
            acks: Vec::new(),
            held: Vec::new(),
            own_vote: None,
        }
    }

    /// Number a new persist request that brings the log up to (`last_index`,
    /// `last_term`) to disk.
    pub(super) fn issue(&mut self, last_index: LogIndex, last_term: Term) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.in_flight.push_back(InFlight {
            id,
            last_index,
            last_term,
        });
        id
    }

    /// The id of the newest request issued (0: none yet).
    pub(super) fn last_issued(&self) -> u64 {
        self.next_id - 1
    }

    /// Whether every request issued so far is durable.
    pub(super) fn all_confirmed(&self) -> bool {
        self.confirmed >= self.last_issued()
    }

    /// The shell made requests up to `id` durable. False for a stale or bogus id (then
    /// nothing changed); else take what it covers with [`Self::drain_confirmed`] and
    /// [`Self::release_held`].
    pub(super) fn confirm(&mut self, id: u64) -> bool {
        if id <= self.confirmed || id >= self.next_id {
            return false;
        }
        self.confirmed = id;
        true
    }

    /// The requests in flight that are confirmed now, oldest first (no allocation: this
    /// runs on every group commit).
    pub(super) fn drain_confirmed(&mut self) -> impl Iterator<Item = InFlight> + '_ {
        let confirmed = self.confirmed;
        let covered = self
            .in_flight
            .iter()
            .take_while(|p| p.id <= confirmed)
            .count();
        self.in_flight.drain(..covered)
    }

    /// Held replies whose state is durable now, in the order they were held.
    pub(super) fn release_held(&mut self) -> Vec<(ServerId, Message)> {
        if self.held.is_empty() {
            return Vec::new();
        }
        let confirmed = self.confirmed;
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(after, _, _)| *after <= confirmed);
        self.held = waiting;
        ready.into_iter().map(|(_, to, msg)| (to, msg)).collect()
    }

    /// A reply that may leave only once what this input issued is durable.
    pub(super) fn ack_when_durable(&mut self, to: ServerId, msg: Message) {
        self.acks.push((to, msg));
    }

    /// The replies this input produced, to send, ride or hold (at the input's end).
    pub(super) fn take_acks(&mut self) -> Vec<(ServerId, Message)> {
        std::mem::take(&mut self.acks)
    }

    /// Keep a reply in the core until the newest request issued is durable.
    pub(super) fn hold(&mut self, to: ServerId, msg: Message) {
        let after = self.last_issued();
        self.held.push((after, to, msg));
    }

    /// Whether any reply waits in the core (then a new one must wait too: riding a
    /// persist would overtake it).
    pub(super) fn holds_replies(&self) -> bool {
        !self.held.is_empty()
    }

    /// A candidate's own vote counts once the newest request issued is durable.
    pub(super) fn await_own_vote(&mut self) {
        self.own_vote = Some(self.last_issued());
    }

    pub(super) fn awaiting_own_vote(&self) -> bool {
        self.own_vote.is_some()
    }

    /// Whether the awaited own vote is durable now.
    pub(super) fn own_vote_durable(&self) -> bool {
        self.own_vote.is_some_and(|v| v <= self.confirmed)
    }

    pub(super) fn forget_own_vote(&mut self) {
        self.own_vote = None;
    }
}
