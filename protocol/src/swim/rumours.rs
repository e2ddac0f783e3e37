//! Rumours and their precedence: alive, suspect, dead and force-leave, refutation,
//! and the dead-sender notice.

use super::config::suspicion_min_timeout;
use super::core::Swim;
use super::suspicion::Suspicion;
use super::types::*;
use std::net::SocketAddr;

impl Swim {
    // ----- rumours and their precedence -----

    pub(super) fn apply_all(&mut self, now: u64, updates: Vec<Update>) {
        for update in updates {
            self.apply(now, update);
        }
    }

    pub(super) fn apply(&mut self, now: u64, update: Update) {
        match update {
            Update::Alive {
                node,
                incarnation,
                addr,
                tags,
                protocol,
            } => self.on_alive(now, node, incarnation, addr, tags, protocol),
            Update::Suspect {
                node,
                incarnation,
                from,
            } => self.on_suspect(now, &node, incarnation, &from),
            Update::Dead {
                node,
                incarnation,
                from,
            } => self.on_dead(now, &node, incarnation, &from),
            Update::ForceLeave {
                node,
                incarnation,
                prune,
            } => self.on_force_leave(now, &node, incarnation, prune),
            Update::UserEvent {
                ltime,
                name,
                payload,
            } => self.on_user_event(ltime, name, payload),
        }
    }

    /// Alive overrides suspect, dead and left only with a strictly higher incarnation
    /// (or, for a left or reclaimable dead member, a new address). About ourselves, a
    /// claim that differs from our own record is refuted.
    pub(super) fn on_alive(
        &mut self,
        now: u64,
        node: String,
        inc: Incarnation,
        addr: SocketAddr,
        tags: SharedTags,
        protocol: ProtocolVersion,
    ) {
        let is_me = node == self.me;
        if is_me && self.leaving {
            return;
        }
        let Some(entry) = self.members.get(&node) else {
            let member = Member {
                name: node,
                addr,
                incarnation: inc,
                status: MemberStatus::Alive,
                tags,
                protocol,
            };
            self.members.insert(&mut self.rng, member.clone(), now);
            self.broadcasts.push(self.alive_update_of(&member));
            self.notify(SwimEvent::MemberJoined(member));
            return;
        };
        // Most alive rumours are repeats: decide before copying anything.
        let known = &entry.member;
        if is_me {
            let same = inc == known.incarnation
                && tags == known.tags
                && addr == known.addr
                && protocol == known.protocol;
            if inc >= known.incarnation && !same {
                self.refute(inc);
            }
            return;
        }
        if addr != known.addr {
            let reclaimable = known.status == MemberStatus::Left
                || (known.status == MemberStatus::Dead
                    && self.config.dead_node_reclaim_ms > 0
                    && now.saturating_sub(entry.status_changed_ms)
                        >= self.config.dead_node_reclaim_ms);
            if !reclaimable {
                return; // another member claims a live member's name: ignore it
            }
        } else if inc <= known.incarnation {
            return;
        }
        let old = known.clone();
        self.suspicions.remove(&node);
        self.members.set_addr(&node, addr);
        if let Some(m) = self.members.member_mut(&node) {
            m.incarnation = inc;
            m.tags = tags;
            m.protocol = protocol;
        }
        self.members.set_status(&node, MemberStatus::Alive, now);
        let Some(member) = self.members.get(&node).map(|e| e.member.clone()) else {
            return;
        };
        self.broadcasts.push(self.alive_update_of(&member));
        let record_changed =
            member.tags != old.tags || member.addr != old.addr || member.protocol != old.protocol;
        match old.status {
            MemberStatus::Dead | MemberStatus::Left => {
                self.notify(SwimEvent::MemberRecovered(member))
            }
            MemberStatus::Suspect => {
                self.notify(SwimEvent::MemberAlive(member.clone()));
                if record_changed {
                    self.notify(SwimEvent::MemberUpdated(member));
                }
            }
            MemberStatus::Alive => {
                if record_changed {
                    self.notify(SwimEvent::MemberUpdated(member));
                }
            }
        }
    }

    /// Suspect overrides alive at an equal or higher incarnation; a suspicion already
    /// running counts the message as a confirmation instead.
    pub(super) fn on_suspect(&mut self, now: u64, node: &str, inc: Incarnation, from: &str) {
        let Some(entry) = self.members.get(node) else {
            return;
        };
        if inc < entry.member.incarnation {
            if node == self.me {
                self.regossip_self();
            }
            return;
        }
        if let Some(suspicion) = self.suspicions.get_mut(node) {
            if suspicion.confirm(from) {
                self.broadcasts.push(Update::Suspect {
                    node: node.to_string(),
                    incarnation: inc,
                    from: from.to_string(),
                });
            }
            return;
        }
        if entry.member.status != MemberStatus::Alive {
            return;
        }
        if node == self.me {
            self.refute(inc);
            return;
        }
        self.broadcasts.push(Update::Suspect {
            node: node.to_string(),
            incarnation: inc,
            from: from.to_string(),
        });
        if let Some(m) = self.members.member_mut(node) {
            m.incarnation = inc;
        }
        self.members.set_status(node, MemberStatus::Suspect, now);
        // Lifeguard: k independent confirmations expected (fewer in tiny clusters: the
        // suspect and ourselves cannot confirm); the timeout shrinks from max to min.
        let n = self.members.live_count();
        let k = self.config.indirect_checks.min(n.saturating_sub(2));
        let min =
            suspicion_min_timeout(self.config.suspicion_mult, n, self.config.probe_interval_ms);
        let max = min * u64::from(self.config.suspicion_max_timeout_mult.max(1));
        self.suspicions.insert(
            node.to_string(),
            Suspicion::new(inc, from.to_string(), k, min, max, now),
        );
        if let Some(member) = self.member(node).cloned() {
            self.notify(SwimEvent::MemberSuspect(member));
        }
    }

    /// Dead overrides alive and suspect at an equal or higher incarnation; a dead or left
    /// member stays so. About ourselves it is refuted, unless we are leaving.
    pub(super) fn on_dead(&mut self, now: u64, node: &str, inc: Incarnation, from: &str) {
        let Some(entry) = self.members.get(node) else {
            return;
        };
        if inc < entry.member.incarnation {
            if node == self.me {
                self.regossip_self();
            }
            return;
        }
        self.suspicions.remove(node);
        if entry.member.status.is_dead_or_left() {
            return;
        }
        if node == self.me && !self.leaving {
            self.refute(inc);
            return;
        }
        self.broadcasts.push(Update::Dead {
            node: node.to_string(),
            incarnation: inc,
            from: from.to_string(),
        });
        if let Some(m) = self.members.member_mut(node) {
            m.incarnation = inc;
        }
        let left = node == from;
        let status = if left {
            MemberStatus::Left
        } else {
            MemberStatus::Dead
        };
        self.members.set_status(node, status, now);
        if let Some(member) = self.member(node).cloned() {
            self.notify(if left {
                SwimEvent::MemberLeft(member)
            } else {
                SwimEvent::MemberFailed(member)
            });
        }
    }

    /// A force-leave acts as a leave at an equal or higher incarnation (a live member
    /// refutes it), turns a failed member Left, and with `prune` forgets it.
    pub(super) fn on_force_leave(&mut self, now: u64, node: &str, inc: Incarnation, prune: bool) {
        let Some(entry) = self.members.get(node) else {
            return;
        };
        if inc < entry.member.incarnation {
            return;
        }
        if node == self.me {
            if !self.leaving {
                self.refute(inc);
            }
            return;
        }
        let status = entry.member.status;
        if status == MemberStatus::Left && !prune {
            return;
        }
        self.broadcasts.push(Update::ForceLeave {
            node: node.to_string(),
            incarnation: inc,
            prune,
        });
        if status != MemberStatus::Left {
            self.suspicions.remove(node);
            if let Some(m) = self.members.member_mut(node) {
                m.incarnation = inc;
            }
            self.members.set_status(node, MemberStatus::Left, now);
            if let Some(member) = self.member(node).cloned() {
                self.notify(SwimEvent::MemberLeft(member));
            }
        }
        if prune {
            self.forget(node);
        }
    }

    /// Someone claims we are suspect, dead or different: outbid the claim with a new
    /// incarnation and gossip that we are alive. Having to refute is also a hint that we
    /// are slow (Lifeguard), so our health score rises.
    pub(super) fn refute(&mut self, accused: Incarnation) {
        let me = self.me.clone();
        let Some(member) = self.members.member_mut(&me) else {
            return;
        };
        // Saturating: a hostile u64::MAX rumour must not overflow (it pins us there).
        member.incarnation = Incarnation(member.incarnation.0.max(accused.0).saturating_add(1));
        let member = member.clone();
        self.awareness.apply_delta(1);
        self.broadcasts.push(self.alive_update_of(&member));
    }

    /// A member we believe dead is pinging us, so it is running: tell it (in the ack) it
    /// was declared dead, and it refutes at once instead of waiting for a push-pull.
    /// (A cairn addition to memberlist: it makes healed partitions and resumed members
    /// rejoin within a probe interval rather than a reconnect interval.)
    pub(super) fn dead_notice_for(&self, from: SocketAddr) -> Option<Update> {
        let name = self.members.name_at(&from)?;
        let member = &self.members.get(name)?.member;
        (member.status == MemberStatus::Dead && name != self.me).then(|| Update::Dead {
            node: name.to_string(),
            incarnation: member.incarnation,
            from: self.me.clone(),
        })
    }

    /// A suspect or dead rumour about us older than our incarnation: nothing to refute,
    /// but its sender has a stale view, so make sure our current record is gossiped.
    pub(super) fn regossip_self(&mut self) {
        if !self.leaving && !self.broadcasts.contains(&self.me) {
            let member = self.local_member().clone();
            self.broadcasts.push(self.alive_update_of(&member));
        }
    }
}
