//! The core's own log and what it hands to the disk: appends, truncations, the one
//! persist request per input (`finish`), and feeding the state machine.

use super::Raft;
use crate::ids::LogIndex;
use crate::raft::types::{Entry, Output, Payload, PersistRequest, Role};

impl Raft {
    pub(super) fn append_local(&mut self, payload: Payload) -> LogIndex {
        let index = LogIndex(self.log.last_index().0 + 1);
        self.append_entry(Entry {
            term: self.term,
            index,
            payload,
        });
        index
    }

    pub(super) fn append_entry(&mut self, entry: Entry) {
        self.unflushed.appended(entry.index);
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

    pub(super) fn truncate_local(&mut self, from: LogIndex) {
        self.unflushed.truncated(from);
        self.log.truncate_from(from);
        if self.durable >= from {
            self.durable = LogIndex(from.0 - 1);
        }
        self.reload_membership();
    }

    /// The membership in effect after the log changed under it (a truncated suffix held
    /// a configuration entry, or a snapshot replaced the log).
    pub(super) fn reload_membership(&mut self) {
        let (index, membership) = self.log.membership_at(self.log.last_index());
        self.membership = membership;
        self.membership_index = index;
    }

    /// Hand everything not yet persisted to the shell as one request.
    pub(super) fn flush_persist(&mut self) {
        if self.unflushed.is_empty() {
            return;
        }
        let unflushed = self.unflushed.take();
        let entries = match unflushed.entries_from {
            // Entries not yet durable are always cached (see `evict_cached`).
            Some(from) => self.log.slice(from, self.log.last_index()),
            None => Vec::new(),
        };
        let hard_state = unflushed.hard_state.then(|| self.hard_state());
        let id = (self.persists).issue(self.log.last_index(), self.log.last_term());
        self.outputs.push(Output::Persist(PersistRequest {
            id,
            reset_after: unflushed.reset_after,
            truncate_from: unflushed.truncate_from,
            entries,
            hard_state,
            then_send: Vec::new(),
        }));
    }

    /// The `Persist` with this id if it is still among the outputs the shell has not
    /// taken.
    pub(super) fn unhanded_persist(&mut self, id: u64) -> Option<&mut PersistRequest> {
        self.outputs.iter_mut().rev().find_map(|o| match o {
            Output::Persist(p) if p.id == id => Some(p),
            _ => None,
        })
    }

    /// End of every input: persist what changed, release or defer acknowledgements,
    /// report role changes.
    pub(super) fn finish(&mut self) {
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
    pub(super) fn hand_out_committed(&mut self) {
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
    pub(super) fn evict_cached(&mut self) {
        let applied = LogIndex(self.apply_next.0 - 1);
        let evictable = self.durable.min(applied).min(self.commit);
        self.log.evict(
            self.cfg.log_cache_bytes,
            self.cfg.log_cache_entries,
            evictable,
        );
    }
}
