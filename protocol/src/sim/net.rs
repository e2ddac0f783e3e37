//! A simulated network: messages in flight with a delivery time, random loss,
//! duplication and delay (which reorders), and partitions that cut chosen peers off
//! (one peer from everyone, or one group from the rest), in both directions or in one
//! direction only (a peer that can send but not hear, or hear but not send).

use crate::rng::CoreRng;
use rand::Rng;
use std::collections::BTreeSet;

/// How unreliable the network is right now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Probability that a message is dropped.
    pub loss: f64,
    /// Probability that a delivered message arrives twice.
    pub duplicate: f64,
    /// Delivery delay drawn uniformly from this range, in milliseconds (`1..10`).
    pub delay_ms: (u64, u64),
}

impl Faults {
    /// No loss, no duplicates, short delays: a healed network.
    pub const HEALTHY: Faults = Faults {
        loss: 0.0,
        duplicate: 0.0,
        delay_ms: (1, 10),
    };
}

/// Messages between peers `P`, carrying `M`.
pub struct SimNet<P, M> {
    /// (delivery time, sequence number for a stable order, from, to, message).
    in_flight: Vec<(u64, u64, P, P, M)>,
    sequence: u64,
    /// Peers cut off from every other peer.
    isolated: BTreeSet<P>,
    /// One side of a split: these peers reach each other but no one else.
    split: BTreeSet<P>,
    /// Directed links that drop everything sent along them: (from, to).
    one_way: BTreeSet<(P, P)>,
    pub faults: Faults,
    pub sent: u64,
    pub dropped: u64,
}

impl<P: Clone + Ord, M: Clone> SimNet<P, M> {
    pub fn new(faults: Faults) -> SimNet<P, M> {
        SimNet {
            in_flight: Vec::new(),
            sequence: 0,
            isolated: BTreeSet::new(),
            split: BTreeSet::new(),
            one_way: BTreeSet::new(),
            faults,
            sent: 0,
            dropped: 0,
        }
    }

    /// Send at `now`: dropped, delivered once or twice, each copy after its own delay.
    pub fn send(&mut self, rng: &mut CoreRng, now: u64, from: P, to: P, msg: M) {
        self.sent += 1;
        let copies = if self.is_cut(&from, &to)
            || (self.faults.loss > 0.0 && rng.random_bool(self.faults.loss))
        {
            0
        } else if self.faults.duplicate > 0.0 && rng.random_bool(self.faults.duplicate) {
            2
        } else {
            1
        };
        self.enqueue(rng, now, from, to, msg, copies);
    }

    /// Send over a reliable stream (TCP): never lost or duplicated, only delayed, but a
    /// partition still cuts it.
    pub fn send_reliable(&mut self, rng: &mut CoreRng, now: u64, from: P, to: P, msg: M) {
        self.sent += 1;
        let copies = if self.is_cut(&from, &to) { 0 } else { 1 };
        self.enqueue(rng, now, from, to, msg, copies);
    }

    fn is_cut(&self, from: &P, to: &P) -> bool {
        self.isolated.contains(from)
            || self.isolated.contains(to)
            || self.split.contains(from) != self.split.contains(to)
            || (!self.one_way.is_empty() && self.one_way.contains(&(from.clone(), to.clone())))
    }

    fn enqueue(&mut self, rng: &mut CoreRng, now: u64, from: P, to: P, msg: M, copies: u32) {
        if copies == 0 {
            self.dropped += 1;
            return;
        }
        let (low, high) = self.faults.delay_ms;
        let mut arrival = |rng: &mut CoreRng| {
            self.sequence += 1;
            (
                now + rng.random_range(low..high.max(low + 1)),
                self.sequence,
            )
        };
        let mut copies_of = Vec::with_capacity(copies as usize);
        for _ in 1..copies {
            copies_of.push((arrival(rng), msg.clone()));
        }
        copies_of.push((arrival(rng), msg));
        for ((at, seq), msg) in copies_of {
            self.in_flight
                .push((at, seq, from.clone(), to.clone(), msg));
        }
    }

    /// When the next message is due, if any is in flight.
    pub fn next_due(&self) -> Option<u64> {
        self.in_flight.iter().map(|m| m.0).min()
    }

    /// Every message due at `now`, in delivery order: (from, to, message).
    pub fn deliver_due(&mut self, now: u64) -> Vec<(P, P, M)> {
        let (mut due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.in_flight)
            .into_iter()
            .partition(|m| m.0 <= now);
        self.in_flight = later;
        due.sort_by_key(|m| (m.0, m.1));
        due.into_iter().map(|(_, _, f, t, m)| (f, t, m)).collect()
    }

    /// Cut `peer` off from everyone (messages already in flight to it are lost too).
    pub fn isolate(&mut self, peer: P) {
        self.in_flight.retain(|m| m.3 != peer && m.2 != peer);
        self.isolated.insert(peer);
    }

    pub fn is_isolated(&self, peer: &P) -> bool {
        self.isolated.contains(peer)
    }

    /// Split the network in two: `side` on one part, everyone else on the other
    /// (messages in flight across the cut are lost).
    pub fn split(&mut self, side: impl IntoIterator<Item = P>) {
        self.split = side.into_iter().collect();
        let split = &self.split;
        self.in_flight
            .retain(|m| split.contains(&m.2) == split.contains(&m.3));
    }

    /// Cut every link from a peer in `senders` to a peer in `receivers`, in that
    /// direction only: the other direction still works (messages in flight along the
    /// cut links are lost). Cuts add up until `heal`.
    pub fn cut_one_way(
        &mut self,
        senders: impl IntoIterator<Item = P>,
        receivers: impl IntoIterator<Item = P> + Clone,
    ) {
        for from in senders {
            for to in receivers.clone() {
                if from != to {
                    self.one_way.insert((from.clone(), to));
                }
            }
        }
        let one_way = &self.one_way;
        self.in_flight
            .retain(|m| !one_way.contains(&(m.2.clone(), m.3.clone())));
    }

    /// Reconnect every peer.
    pub fn heal(&mut self) {
        self.isolated.clear();
        self.split.clear();
        self.one_way.clear();
    }

    /// Forget what is in flight to `peer` (it crashed: its sockets are gone).
    pub fn drop_to(&mut self, peer: &P) {
        self.in_flight.retain(|m| &m.3 != peer);
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng::seeded;

    #[test]
    fn a_healthy_network_delivers_everything_in_time_order() {
        let mut rng = seeded(1);
        let mut net: SimNet<u8, u32> = SimNet::new(Faults::HEALTHY);
        for i in 0..100 {
            net.send(&mut rng, 0, 1, 2, i);
        }
        assert!(
            net.deliver_due(0).is_empty(),
            "nothing arrives before its delay"
        );
        let got: Vec<u32> = net.deliver_due(100).into_iter().map(|m| m.2).collect();
        assert_eq!(got.len(), 100);
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        assert_ne!(got, sorted, "random delays reorder messages");
    }

    #[test]
    fn isolation_and_loss_drop_messages_and_healing_restores_delivery() {
        let mut rng = seeded(2);
        let mut net: SimNet<u8, u32> = SimNet::new(Faults {
            loss: 0.5,
            ..Faults::HEALTHY
        });
        for i in 0..1000 {
            net.send(&mut rng, 0, 1, 2, i);
        }
        let delivered = net.deliver_due(100).len();
        assert!((350..650).contains(&delivered), "{delivered}");
        net.faults = Faults::HEALTHY;
        net.isolate(2);
        net.send(&mut rng, 0, 1, 2, 7);
        assert!(net.deliver_due(100).is_empty());
        net.heal();
        net.send(&mut rng, 100, 1, 2, 8);
        assert_eq!(net.deliver_due(200), vec![(1, 2, 8)]);
    }

    #[test]
    fn a_split_cuts_across_sides_only_and_streams_are_never_lost() {
        let mut rng = seeded(3);
        let mut net: SimNet<u8, u32> = SimNet::new(Faults {
            loss: 1.0,
            ..Faults::HEALTHY
        });
        net.send_reliable(&mut rng, 0, 1, 2, 10);
        assert_eq!(net.next_due().map(|t| t >= 1), Some(true));
        net.split([3, 4]);
        net.send_reliable(&mut rng, 0, 1, 3, 11);
        net.send_reliable(&mut rng, 0, 3, 4, 12);
        net.send(&mut rng, 0, 1, 2, 13);
        let got: Vec<u32> = net.deliver_due(100).into_iter().map(|m| m.2).collect();
        assert_eq!(got.len(), 2);
        assert!(got.contains(&10) && got.contains(&12));
        net.heal();
        net.send_reliable(&mut rng, 100, 1, 3, 14);
        assert_eq!(net.deliver_due(200), vec![(1, 3, 14)]);
        assert_eq!(net.next_due(), None);
    }

    #[test]
    fn a_one_way_cut_drops_one_direction_only_until_healed() {
        let mut rng = seeded(4);
        let mut net: SimNet<u8, u32> = SimNet::new(Faults::HEALTHY);
        net.send(&mut rng, 0, 2, 1, 1); // in flight along a link about to be cut
        net.send(&mut rng, 0, 1, 2, 2); // in flight the other way: kept
                                        // 1 can still send to 2 and 3, but hears from neither.
        net.cut_one_way([2, 3], [1]);
        net.send(&mut rng, 0, 2, 1, 3);
        net.send(&mut rng, 0, 3, 1, 4);
        net.send(&mut rng, 0, 1, 3, 5);
        net.send(&mut rng, 0, 2, 3, 6); // untouched link between the others
        let mut got: Vec<u32> = net.deliver_due(100).into_iter().map(|m| m.2).collect();
        got.sort();
        assert_eq!(got, vec![2, 5, 6]);
        assert_eq!(
            net.dropped, 2,
            "the in-flight message lost to the cut is not a send"
        );
        // Cuts add up: now 1 cannot send to 3 either, but still to 2.
        net.cut_one_way([1], [3]);
        net.send(&mut rng, 100, 1, 3, 7);
        net.send(&mut rng, 100, 1, 2, 8);
        assert_eq!(net.deliver_due(200), vec![(1, 2, 8)]);
        net.heal();
        net.send(&mut rng, 200, 2, 1, 9);
        net.send(&mut rng, 200, 1, 3, 10);
        assert_eq!(net.deliver_due(300).len(), 2);
    }

    #[test]
    fn the_same_seed_gives_the_same_schedule() {
        let run = |seed| {
            let mut rng = seeded(seed);
            let mut net: SimNet<u8, u32> = SimNet::new(Faults {
                loss: 0.1,
                duplicate: 0.1,
                delay_ms: (1, 10),
            });
            for i in 0..50 {
                net.send(&mut rng, i as u64, 1, 2, i);
            }
            net.deliver_due(1000)
        };
        assert_eq!(run(9), run(9));
        assert_ne!(run(9), run(10));
    }
}
