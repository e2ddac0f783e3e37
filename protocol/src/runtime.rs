//! The one seam between a pure core and whatever runs it, in the spirit of foca's
//! `Runtime`: a core is driven by the same few inputs (a tick with the time, a message
//! from a peer) and answers with the same three kinds of effect: send a message to a
//! peer, notify its runner of an event, or ask to be ticked at a given time. The Raft
//! core speaks it now and the SWIM core will, so the actor shells share one pattern and
//! one simulator (`crate::sim`) drives either.

/// What a core asks of its runner, in the order it must happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect<P, M, E> {
    /// Deliver `msg` to the peer `to` (the network may lose, delay or reorder it).
    Send { to: P, msg: M },
    /// Something only the runner can do or needs to know (persist, apply, a role or
    /// membership change), executed in order with the sends around it.
    Notify(E),
    /// Tick the core again no later than this time (milliseconds on the core's clock).
    TickAt(u64),
}

/// A pure, deterministic state machine driven through the runtime seam.
pub trait Core {
    type Peer: Clone + Ord + std::fmt::Debug;
    type Message: Clone + std::fmt::Debug;
    type Event: std::fmt::Debug;

    /// Time passes; `now_ms` never goes backwards.
    fn tick(&mut self, now_ms: u64);
    /// A message from `from` arrived.
    fn receive(&mut self, now_ms: u64, from: Self::Peer, msg: Self::Message);
    /// The effects produced since the last call, in order.
    fn effects(&mut self) -> Vec<Effect<Self::Peer, Self::Message, Self::Event>>;
}
