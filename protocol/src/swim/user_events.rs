//! serf's user events over SWIM: an application message (name, payload) spread to every
//! member by the same piggybacking as membership rumours, from their own bounded queue
//! (membership goes first in every packet), each delivered once per member.
//!
//! - Lamport clock: a fired event takes the clock's time and advances it; a received one
//!   advances our clock past its time (serf's `eventClock`), so later events order after
//!   everything seen.
//! - Dedupe: the last [`USER_EVENT_BUFFER`] Lamport times each keep the events seen at
//!   that time; a repeat is dropped, and so is an event older than the buffer window
//!   (it cannot be told from a repeat any more), as serf's `handleUserEvent`.
//! - Bounds: name + payload at most [`USER_EVENT_SIZE_LIMIT`] (serf's default limit,
//!   which also keeps every event small enough to ride on a datagram), at most
//!   [`USER_EVENT_QUEUE_LIMIT`] waiting to be sent (the most-sent dropped first).

use super::broadcast::BroadcastQueue;
use super::config::retransmit_limit;
use super::core::Swim;
use super::types::{Message, SwimEvent, Update};
use std::net::SocketAddr;

/// serf's default `UserEventSizeLimit` (name + payload bytes).
pub const USER_EVENT_SIZE_LIMIT: usize = 512;
/// serf's default `EventBuffer`: Lamport times remembered for dedupe.
pub const USER_EVENT_BUFFER: u64 = 64;
/// Events waiting to be gossiped.
pub const USER_EVENT_QUEUE_LIMIT: usize = 1024;
/// Events remembered per Lamport time (a bound against a flood at one time).
const EVENTS_PER_SLOT: usize = 64;
/// At most this many (the newest) events in one `UserEventSync`.
pub const MAX_SYNC_EVENTS: usize = 256;

/// Why a user event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserEventError {
    #[error("user event exceeds configured limit of {limit} bytes before encoding")]
    TooLarge { limit: usize },
}

/// The events seen at one Lamport time.
#[derive(Debug, Clone, Default)]
struct Slot {
    ltime: u64,
    seen: Vec<(String, Vec<u8>)>,
}

/// The user-event half of a SWIM member's state.
#[derive(Debug, Clone)]
pub(super) struct UserEvents {
    clock: u64,
    slots: Vec<Slot>,
    pub(super) queue: BroadcastQueue,
}

impl Default for UserEvents {
    fn default() -> UserEvents {
        UserEvents {
            clock: 0,
            slots: vec![Slot::default(); USER_EVENT_BUFFER as usize],
            queue: BroadcastQueue::new(USER_EVENT_QUEUE_LIMIT),
        }
    }
}

impl UserEvents {
    /// Record an event if it is new; false for a repeat or one too old to tell.
    fn admit(&mut self, ltime: u64, name: &str, payload: &[u8]) -> bool {
        // Witness: our next event orders after this one.
        self.clock = self.clock.max(ltime.saturating_add(1));
        if self.clock > USER_EVENT_BUFFER && ltime < self.clock - USER_EVENT_BUFFER {
            return false;
        }
        let slot = &mut self.slots[(ltime % USER_EVENT_BUFFER) as usize];
        if slot.ltime != ltime {
            *slot = Slot {
                ltime,
                seen: Vec::new(),
            };
        }
        if slot
            .seen
            .iter()
            .any(|(n, p)| n == name && p.as_slice() == payload)
            || slot.seen.len() >= EVENTS_PER_SLOT
        {
            return false;
        }
        slot.seen.push((name.to_string(), payload.to_vec()));
        true
    }

    /// The Lamport time the next fired event gets.
    pub(super) fn clock(&self) -> u64 {
        self.clock
    }

    /// The events of the dedupe window, oldest first, at most [`MAX_SYNC_EVENTS`].
    fn window(&self) -> Vec<Update> {
        let oldest = self.clock.saturating_sub(USER_EVENT_BUFFER);
        let mut slots: Vec<&Slot> = self
            .slots
            .iter()
            .filter(|s| !s.seen.is_empty() && s.ltime >= oldest)
            .collect();
        slots.sort_by_key(|s| s.ltime);
        let mut events: Vec<Update> = slots
            .into_iter()
            .flat_map(|s| {
                s.seen.iter().map(|(name, payload)| Update::UserEvent {
                    ltime: s.ltime,
                    name: name.clone(),
                    payload: payload.clone(),
                })
            })
            .collect();
        let excess = events.len().saturating_sub(MAX_SYNC_EVENTS);
        events.drain(..excess);
        events
    }
}

impl Swim {
    /// Fire a user event: delivered here at once (as serf does) and gossiped to every
    /// member. Returns its Lamport time.
    pub fn user_event(
        &mut self,
        name: impl Into<String>,
        payload: Vec<u8>,
    ) -> Result<u64, UserEventError> {
        let name = name.into();
        if name.len() + payload.len() > USER_EVENT_SIZE_LIMIT {
            return Err(UserEventError::TooLarge {
                limit: USER_EVENT_SIZE_LIMIT,
            });
        }
        let ltime = self.user_events.clock();
        self.on_user_event(ltime, name, payload);
        Ok(ltime)
    }

    /// The Lamport time of the next user event fired here.
    pub fn user_event_clock(&self) -> u64 {
        self.user_events.clock()
    }

    /// A user event arrived (or was fired here): deliver and re-gossip it the first time.
    pub(super) fn on_user_event(&mut self, ltime: u64, name: String, payload: Vec<u8>) {
        if name.len() + payload.len() > USER_EVENT_SIZE_LIMIT {
            return;
        }
        if !self.user_events.admit(ltime, &name, &payload) {
            return;
        }
        self.user_events.queue.push(Update::UserEvent {
            ltime,
            name: name.clone(),
            payload: payload.clone(),
        });
        self.notify(SwimEvent::UserEvent {
            ltime,
            name,
            payload,
        });
    }

    /// Send our window of user events to `to` (a member's gossip address), asking for
    /// its window back when `ask_back`. Nothing when we have none and ask nothing.
    pub(super) fn send_user_event_sync(&mut self, to: SocketAddr, ask_back: bool) {
        let events = self.user_events.window();
        if events.is_empty() && !ask_back {
            return;
        }
        let from = self.local_member().addr;
        self.send(
            to,
            Message::UserEventSync {
                from,
                ask_back,
                events,
            },
        );
    }

    /// A peer's window: deliver what is new here, and answer with ours if asked.
    pub(super) fn on_user_event_sync(
        &mut self,
        from: SocketAddr,
        ask_back: bool,
        events: Vec<Update>,
    ) {
        for update in events.into_iter().take(MAX_SYNC_EVENTS) {
            if let Update::UserEvent {
                ltime,
                name,
                payload,
            } = update
            {
                self.on_user_event(ltime, name, payload);
            }
        }
        if ask_back && from != self.local_member().addr {
            self.send_user_event_sync(from, false);
        }
    }

    /// User events for a packet with `room` bytes left (after membership rumours).
    pub(super) fn take_user_events(&mut self, room: usize, max_items: usize) -> Vec<Update> {
        let limit = retransmit_limit(self.config.retransmit_mult, self.members.live_count());
        self.user_events.queue.take(room, max_items, limit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeats_are_dropped_and_the_clock_witnesses() {
        let mut e = UserEvents::default();
        assert!(e.admit(5, "deploy", b"a"));
        assert_eq!(e.clock(), 6);
        assert!(!e.admit(5, "deploy", b"a"), "a repeat");
        assert!(e.admit(5, "deploy", b"b"), "same time, other payload");
        assert!(e.admit(5, "other", b"a"), "same time, other name");
        assert!(e.admit(2, "late", b""), "older but within the window");
        assert_eq!(e.clock(), 6, "an older event does not move the clock back");
    }

    #[test]
    fn events_older_than_the_window_are_dropped() {
        let mut e = UserEvents::default();
        assert!(e.admit(1000, "new", b""));
        assert!(!e.admit(1000 - USER_EVENT_BUFFER - 1, "ancient", b""));
        assert!(e.admit(1000 - USER_EVENT_BUFFER + 1, "recent", b""));
        // A slot reused by a later time forgets the earlier time's events.
        assert!(e.admit(1001 + USER_EVENT_BUFFER, "wrap", b""));
    }

    #[test]
    fn a_slot_holds_a_bounded_number_of_events() {
        let mut e = UserEvents::default();
        for i in 0..EVENTS_PER_SLOT {
            assert!(e.admit(7, "flood", &i.to_le_bytes()));
        }
        assert!(!e.admit(7, "flood", b"one more"));
    }
}
