//! SWIM membership with the Lifeguard refinements, as a pure state machine (HashiCorp
//! memberlist's protocol plus the serf behaviour Consul relies on: reconnecting to
//! failed members, force-leave, reaping). No I/O: time arrives as `now_ms`, randomness
//! from the seeded [`crate::rng::CoreRng`] given at construction.
//!
//! # Inputs
//! - [`Swim::new`]`(name, addr, tags, config, rng, now_ms)`: a member alone, alive at
//!   incarnation 1.
//! - `tick(now_ms)` ([`Swim::on_tick`]) whenever the last requested `TickAt` is due
//!   (ticking earlier or more often is harmless).
//! - `receive(now_ms, from, msg)` ([`Swim::on_message`]) for every decoded message;
//!   `from` is the sender's address (the UDP source, or the TCP peer of a stream).
//! - Commands: [`Swim::join`], [`Swim::leave`], [`Swim::force_leave`],
//!   [`Swim::set_tags`], and [`Swim::stream_failed`] when a stream connection to an
//!   address could not be made or broke before the reply.
//! - User events: [`Swim::user_event`] (delivered here at once and gossiped; see
//!   `user_events.rs`), [`Swim::user_event_clock`].
//! - Queries: [`Swim::members`] (sorted by name, for `agent/members`), [`Swim::member`],
//!   [`Swim::local_member`], [`Swim::health_score`].
//!
//! # Outputs, in order (`effects()` / [`Swim::drain_effects`])
//! - `Effect::Send { to, msg }`: send `msg` to the address `to` over
//!   [`Message::transport`]: [`Transport::Stream`] (TCP, one length-prefixed frame) for
//!   push-pull and for anything whose encoding exceeds [`UDP_PACKET_BUDGET`], otherwise
//!   one UDP datagram. A push-pull request's reply comes back on the same connection:
//!   deliver it with `receive(now, to, reply)`. If the connection fails, call
//!   `stream_failed(now, to)`. Lost datagrams need no report: timers handle them.
//! - `Effect::Notify(SwimEvent)`: membership changes (joined, updated, suspect, alive
//!   again, failed, left, recovered, reaped), join results, leave completion, user
//!   events (each once). They come
//!   in the order the core made the changes; the shell publishes them as is.
//! - `Effect::TickAt(t)`: last in a batch whenever the next timer changed; it replaces
//!   any earlier request (the shell keeps one timer).
//!
//! Decode with [`Message::decode`]`(bytes, transport)`, which bounds the size by the
//! transport ([`MAX_DATAGRAM_BYTES`], [`MAX_STREAM_BYTES`]); a decode error is a value,
//! the shell drops the packet.
//!
//! # The protocol
//! - Probing: one member per probe interval in randomized round-robin order (reshuffled
//!   each round, newcomers at random places). No ack within the probe timeout: ask
//!   `indirect_checks` alive members to probe it for us (they nack if it does not answer
//!   them either). No ack by the end of the interval: the target becomes Suspect.
//! - Lifeguard: (1) local health: missed acks, missing nacks and refuting rumours about
//!   ourselves raise a score (clamped below `awareness_max_multiplier`), successful
//!   probes lower it; probe interval and timeout are multiplied by `score + 1`.
//!   (2) Dynamic suspicion: the timeout starts at `suspicion_max_timeout_mult × min` and
//!   shrinks logarithmically toward `min = suspicion_mult × max(1, log10 n) × probe
//!   interval` as distinct members confirm the suspicion; `indirect_checks` confirmations
//!   (at most n − 2) reach the minimum. (memberlist uses `suspicion_mult − 2` for that
//!   count; cairn follows the Lifeguard paper's tie to the indirect probes.) (3) Buddy
//!   system: a ping to a member we suspect carries the suspicion, so it refutes at once.
//! - Incarnations: only a member raises its own, when it refutes a suspect or dead
//!   rumour about itself at its incarnation or above, or changes its tags. Precedence:
//!   alive beats suspect/dead/left only with a strictly higher incarnation; suspect
//!   beats alive at an equal or higher one; dead beats alive and suspect at an equal or
//!   higher one; dead and left are final (until a higher alive). A dead message from the
//!   member itself means it left.
//! - Dissemination: every change is queued once per member (a newer rumour replaces the
//!   older), sent at most `retransmit_mult × ceil(log10(n + 1))` times, least-sent first,
//!   on pings, acks and periodic gossip (to `gossip_nodes` random members, including
//!   members dead for less than `gossip_to_the_dead_ms`), filling each datagram up to
//!   [`UDP_PACKET_BUDGET`] bytes as measured through the codec.
//! - Push-pull: every `push_pull_interval_ms` (scaled up past 32 members, as memberlist)
//!   a full state exchange with one random alive member; a remote "dead" becomes a local
//!   suspicion. A join is a push-pull with the given addresses. Serf's reconnect: every
//!   `reconnect_interval_ms`, with probability failed/alive, push-pull with one random
//!   failed member, so the sides of a healed partition find each other.
//! - cairn additions to memberlist: a ping from a member we believe dead is answered
//!   with an ack carrying that belief, so the member refutes within one probe instead of
//!   waiting for a reconnect or push-pull (resumed members, healed partitions); a stale
//!   suspect/dead rumour about ourselves (older incarnation) re-gossips our record; a
//!   probe whose indirect round never ran (we were stalled past the whole interval)
//!   blames no one and only raises our own health score.
//! - Leave: our own dead message (status Left everywhere, not failed); `LeaveComplete`
//!   once it has been gossiped its full count. Force-leave turns a failed member Left
//!   everywhere (with `prune`, forgotten at once). Failed members are reaped after
//!   `reconnect_timeout_ms` (Consul: 72 h), left ones after `tombstone_timeout_ms` (24 h).

mod awareness;
mod broadcast;
mod config;
mod core;
mod dissemination;
mod members;
mod probe;
mod rumours;
mod suspicion;
mod types;
mod user_events;

#[cfg(test)]
mod sim_tests;
#[cfg(test)]
mod tests;

pub use self::core::{Swim, SwimEffect, MAX_PIGGYBACK};
pub use config::{push_pull_interval, retransmit_limit, suspicion_min_timeout, SwimConfig};
pub use suspicion::suspicion_timeout;
pub use types::*;
pub use user_events::{
    UserEventError, USER_EVENT_BUFFER, USER_EVENT_QUEUE_LIMIT, USER_EVENT_SIZE_LIMIT,
};

/// The SWIM core behind the runtime seam: peers are addresses (a join goes to an
/// address before any name is known).
impl crate::runtime::Core for Swim {
    type Peer = std::net::SocketAddr;
    type Message = Message;
    type Event = SwimEvent;

    fn tick(&mut self, now_ms: u64) {
        self.on_tick(now_ms)
    }

    fn receive(&mut self, now_ms: u64, from: std::net::SocketAddr, msg: Message) {
        self.on_message(now_ms, from, msg)
    }

    fn effects(&mut self) -> Vec<SwimEffect> {
        self.drain_effects()
    }
}
