//! Dissemination beyond piggybacking: periodic gossip, push-pull state exchange, serf's
//! reconnect to failed members, and reaping.

use super::core::Swim;
use super::types::*;
use rand::Rng;

impl Swim {
    // ----- dissemination -----

    pub(super) fn gossip(&mut self, now: u64) {
        if self.broadcasts.is_empty() && self.user_events.queue.is_empty() {
            return;
        }
        let me = self.me.clone();
        let dead_window = self.config.gossip_to_the_dead_ms;
        let targets = self
            .members
            .random_members(&mut self.rng, self.config.gossip_nodes, |e| {
                e.member.name != me
                    && match e.member.status {
                        MemberStatus::Alive | MemberStatus::Suspect => true,
                        MemberStatus::Dead => now.saturating_sub(e.status_changed_ms) < dead_window,
                        MemberStatus::Left => false,
                    }
            });
        for target in targets {
            let Some(addr) = self.members.get(&target).map(|e| e.member.addr) else {
                continue;
            };
            let msg = self.pack(Message::Gossip {
                updates: Vec::new(),
            });
            if matches!(&msg, Message::Gossip { updates } if updates.is_empty()) {
                break;
            }
            self.send(addr, msg);
        }
    }

    pub(super) fn periodic_push_pull(&mut self) {
        let me = self.me.clone();
        let peer = self.members.random_members(&mut self.rng, 1, |e| {
            e.member.name != me && e.member.status == MemberStatus::Alive
        });
        if let Some(addr) = peer
            .first()
            .and_then(|n| self.members.get(n))
            .map(|e| e.member.addr)
        {
            let msg = self.push_pull_message(false, false);
            self.send(addr, msg);
        }
    }

    /// Serf's reconnect: with probability failed / live, push-pull with one random
    /// failed member, so sides of a healed partition find each other again.
    pub(super) fn reconnect(&mut self) {
        let failed = self.members.count(MemberStatus::Dead);
        if failed == 0 {
            return;
        }
        let live = self.members.live_count().max(1);
        let probability = (failed as f64 / live as f64).min(1.0);
        if self.rng.random::<f64>() > probability {
            return;
        }
        let peer = self
            .members
            .random_members(&mut self.rng, 1, |e| e.member.status == MemberStatus::Dead);
        if let Some(addr) = peer
            .first()
            .and_then(|n| self.members.get(n))
            .map(|e| e.member.addr)
        {
            let msg = self.push_pull_message(false, false);
            self.send(addr, msg);
        }
    }

    pub(super) fn reap(&mut self, now: u64) {
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|e| e.member.name != self.me)
            .filter(|e| {
                let age = now.saturating_sub(e.status_changed_ms);
                match e.member.status {
                    MemberStatus::Dead => age >= self.config.reconnect_timeout_ms,
                    MemberStatus::Left => age >= self.config.tombstone_timeout_ms,
                    _ => false,
                }
            })
            .map(|e| e.member.name.clone())
            .collect();
        for name in expired {
            self.forget(&name);
        }
    }

    pub(super) fn forget(&mut self, name: &str) {
        self.suspicions.remove(name);
        if let Some(member) = self.members.remove(name) {
            self.notify(SwimEvent::MemberReaped(member));
        }
    }

    pub(super) fn push_pull_message(&self, join: bool, reply: bool) -> Message {
        let states = self
            .members
            .iter()
            .map(|e| PushState {
                name: e.member.name.clone(),
                addr: e.member.addr,
                incarnation: e.member.incarnation,
                status: e.member.status,
                tags: e.member.tags.clone(),
                protocol: e.member.protocol,
            })
            .collect();
        Message::PushPull {
            join,
            reply,
            states,
        }
    }

    /// Merge a peer's full state (memberlist's mergeState): a remote "dead" becomes our
    /// suspicion (its owner gets a chance to refute), a remote "left" is taken as is.
    pub(super) fn merge(&mut self, now: u64, states: Vec<PushState>) {
        let me = self.me.clone();
        for s in states {
            match s.status {
                MemberStatus::Alive => {
                    self.on_alive(now, s.name, s.incarnation, s.addr, s.tags, s.protocol)
                }
                MemberStatus::Left => {
                    let name = s.name.clone();
                    self.on_dead(now, &s.name, s.incarnation, &name)
                }
                MemberStatus::Dead | MemberStatus::Suspect => {
                    self.on_suspect(now, &s.name, s.incarnation, &me)
                }
            }
        }
    }
}
