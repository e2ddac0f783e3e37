//! Probing: randomized round-robin pings, indirect probes through k members with
//! Lifeguard's nacks, the verdict at the end of the (health-scaled) interval, and the
//! timers of relays, joins and suspicions.

use super::core::{Probe, Swim};
use super::types::*;
use std::net::SocketAddr;

impl Swim {
    // ----- probing -----

    pub(super) fn step_probe(&mut self, now: u64) {
        if let Some(probe) = self.probe.as_ref() {
            if !probe.acked
                && !probe.indirect_sent
                && now >= probe.timeout_at
                && now < probe.deadline
            {
                self.send_indirect_probes();
            }
        }
        if self.probe.as_ref().is_some_and(|p| now >= p.deadline) {
            if let Some(probe) = self.probe.take() {
                self.finish_probe(now, probe);
            }
        }
        if self.probe.is_none() && now >= self.next_probe_ms && !self.leaving {
            self.start_probe(now);
        }
    }

    pub(super) fn start_probe(&mut self, now: u64) {
        let interval = self.awareness.scale(self.config.probe_interval_ms);
        self.next_probe_ms = now + interval;
        let Some(target) = self.members.next_probe_target(&mut self.rng, &self.me) else {
            return;
        };
        let Some(entry) = self.members.get(&target) else {
            return;
        };
        let (addr, status, inc) = (
            entry.member.addr,
            entry.member.status,
            entry.member.incarnation,
        );
        let seq = self.next_seq();
        self.probe = Some(Probe {
            seq,
            target: target.clone(),
            timeout_at: now + self.awareness.scale(self.config.probe_timeout_ms),
            deadline: now + interval,
            indirect_sent: false,
            expected_nacks: 0,
            nacks: 0,
            acked: false,
        });
        // Lifeguard's buddy system: tell a suspect of its suspicion directly, so it can
        // refute at once instead of waiting for gossip to reach it.
        let mut piggyback = Vec::new();
        if status == MemberStatus::Suspect {
            piggyback.push(Update::Suspect {
                node: target.clone(),
                incarnation: inc,
                from: self.me.clone(),
            });
        }
        self.send_packed(
            addr,
            Message::Ping {
                seq,
                target,
                piggyback,
            },
        );
    }

    pub(super) fn send_indirect_probes(&mut self) {
        let Some(probe) = self.probe.as_ref() else {
            return;
        };
        let (seq, target) = (probe.seq, probe.target.clone());
        let Some(target_addr) = self.members.get(&target).map(|e| e.member.addr) else {
            return;
        };
        let me = self.me.clone();
        let helpers =
            self.members
                .random_members(&mut self.rng, self.config.indirect_checks, |e| {
                    e.member.name != me
                        && e.member.name != target
                        && e.member.status == MemberStatus::Alive
                });
        if let Some(probe) = self.probe.as_mut() {
            probe.indirect_sent = true;
            probe.expected_nacks = helpers.len();
        }
        for helper in helpers {
            let Some(addr) = self.members.get(&helper).map(|e| e.member.addr) else {
                continue;
            };
            self.send_packed(
                addr,
                Message::IndirectPing {
                    seq,
                    target: target.clone(),
                    target_addr,
                    nack: true,
                    piggyback: Vec::new(),
                },
            );
        }
    }

    pub(super) fn finish_probe(&mut self, now: u64, probe: Probe) {
        if probe.acked {
            return;
        }
        if !probe.indirect_sent {
            // We were not running when the indirect round was due (a stall, a pause):
            // no evidence against the target, but a sign of our own ill health.
            self.awareness.apply_delta(1);
            return;
        }
        // Lifeguard: relays that nacked prove our network works; each missing nack
        // hints that we are the problem. Without relays, any failure counts.
        let delta = if probe.expected_nacks > 0 {
            probe.expected_nacks.saturating_sub(probe.nacks)
        } else {
            1
        };
        self.awareness.apply_delta(delta as i64);
        let Some(inc) = self
            .members
            .get(&probe.target)
            .map(|e| e.member.incarnation)
        else {
            return;
        };
        let me = self.me.clone();
        self.on_suspect(now, &probe.target, inc, &me);
    }

    pub(super) fn expire_relays(&mut self, now: u64) {
        let due: Vec<u32> = self
            .relays
            .iter()
            .filter(|(_, r)| now >= r.nack_at)
            .map(|(s, _)| *s)
            .collect();
        for seq in due {
            if let Some(relay) = self.relays.remove(&seq) {
                if relay.nack {
                    self.send(
                        relay.origin,
                        Message::Nack {
                            seq: relay.origin_seq,
                        },
                    );
                }
            }
        }
    }

    pub(super) fn expire_joins(&mut self, now: u64) {
        let due: Vec<SocketAddr> = self
            .joins
            .iter()
            .filter(|(_, at)| now >= **at)
            .map(|(a, _)| *a)
            .collect();
        for addr in due {
            self.joins.remove(&addr);
            self.notify(SwimEvent::JoinResult { addr, ok: false });
        }
    }

    pub(super) fn expire_suspicions(&mut self, now: u64) {
        let due: Vec<String> = self
            .suspicions
            .iter()
            .filter(|(_, s)| now >= s.deadline_ms())
            .map(|(n, _)| n.clone())
            .collect();
        let me = self.me.clone();
        for node in due {
            self.suspicions.remove(&node);
            let Some(member) = self.members.get(&node).map(|e| &e.member) else {
                continue;
            };
            if member.status == MemberStatus::Suspect {
                let inc = member.incarnation;
                self.on_dead(now, &node, inc, &me);
            }
        }
    }
}
