//! The SWIM core: probes, indirect probes, suspicion, refutation, piggybacked gossip,
//! push-pull, join, leave, force-leave and reaping. See the module docs (`swim/mod.rs`)
//! for the contract with the shell.

use super::awareness::Awareness;
use super::broadcast::BroadcastQueue;
use super::config::{push_pull_interval, retransmit_limit, suspicion_min_timeout, SwimConfig};
use super::members::MemberTable;
use super::suspicion::Suspicion;
use super::types::*;
use crate::codec;
use crate::rng::CoreRng;
use crate::runtime::Effect;
use rand::Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// At most this many updates ride on one message (keeps the list's length prefix at
/// one byte, so the measured base size plus the update sizes is the exact total).
pub const MAX_PIGGYBACK: usize = 250;

pub type SwimEffect = Effect<SocketAddr, Message, SwimEvent>;

/// The probe in progress.
#[derive(Debug, Clone)]
struct Probe {
    seq: u32,
    target: String,
    /// Ask others once this passes without an ack.
    timeout_at: u64,
    /// The verdict (and the next probe) at this time.
    deadline: u64,
    indirect_sent: bool,
    expected_nacks: usize,
    nacks: usize,
    acked: bool,
}

/// A ping we send on behalf of `origin` (an indirect probe).
#[derive(Debug, Clone)]
struct Relay {
    origin: SocketAddr,
    origin_seq: u32,
    nack: bool,
    /// Without an ack by then, nack (if asked) and forget.
    nack_at: u64,
}

/// One SWIM member's protocol state.
pub struct Swim {
    config: SwimConfig,
    me: String,
    rng: CoreRng,
    members: MemberTable,
    awareness: Awareness,
    suspicions: BTreeMap<String, Suspicion>,
    broadcasts: BroadcastQueue,
    next_seq: u32,
    probe: Option<Probe>,
    next_probe_ms: u64,
    relays: BTreeMap<u32, Relay>,
    next_gossip_ms: u64,
    next_push_pull_ms: u64,
    next_reconnect_ms: u64,
    next_reap_ms: u64,
    /// Joins awaiting a push-pull reply: address -> give-up time.
    joins: BTreeMap<SocketAddr, u64>,
    leaving: bool,
    leave_reported: bool,
    outputs: Vec<SwimEffect>,
    /// The last `TickAt` handed out and not yet consumed by a tick.
    requested_tick: Option<u64>,
}

impl Swim {
    /// A member named `name` reachable at `addr`, alone until it joins. Emits
    /// `MemberJoined` for itself first, as serf does.
    pub fn new(
        name: impl Into<String>,
        addr: SocketAddr,
        tags: Tags,
        config: SwimConfig,
        mut rng: CoreRng,
        now_ms: u64,
    ) -> Swim {
        let me = name.into();
        let member = Member {
            name: me.clone(),
            addr,
            incarnation: Incarnation(1),
            status: MemberStatus::Alive,
            tags: SharedTags::new(tags),
            protocol: PROTOCOL_VERSION,
        };
        let mut members = MemberTable::default();
        members.insert(&mut rng, member.clone(), now_ms);
        // Stagger the periodic timers so members started together do not beat in step.
        let stagger =
            |rng: &mut CoreRng, interval: u64| now_ms + rng.random_range(0..interval.max(1));
        let next_probe_ms = stagger(&mut rng, config.probe_interval_ms);
        let next_gossip_ms = stagger(&mut rng, config.gossip_interval_ms);
        let next_push_pull_ms = stagger(&mut rng, config.push_pull_interval_ms);
        let next_reconnect_ms = stagger(&mut rng, config.reconnect_interval_ms);
        let next_reap_ms = now_ms + config.reap_interval_ms;
        let mut swim = Swim {
            awareness: Awareness::new(config.awareness_max_multiplier),
            broadcasts: BroadcastQueue::new(config.broadcast_queue_limit),
            config,
            me,
            rng,
            members,
            suspicions: BTreeMap::new(),
            next_seq: 0,
            probe: None,
            next_probe_ms,
            relays: BTreeMap::new(),
            next_gossip_ms,
            next_push_pull_ms,
            next_reconnect_ms,
            next_reap_ms,
            joins: BTreeMap::new(),
            leaving: false,
            leave_reported: false,
            outputs: Vec::new(),
            requested_tick: None,
        };
        swim.broadcasts.push(swim.alive_update_of(&member));
        swim.notify(SwimEvent::MemberJoined(member));
        swim
    }

    // ----- queries -----

    pub fn name(&self) -> &str {
        &self.me
    }

    pub fn config(&self) -> &SwimConfig {
        &self.config
    }

    /// Every known member, sorted by name (the `agent/members` view).
    pub fn members(&self) -> Vec<Member> {
        self.members.iter().map(|e| e.member.clone()).collect()
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.get(name).map(|e| &e.member)
    }

    pub fn local_member(&self) -> &Member {
        &self
            .members
            .get(&self.me)
            .expect("self is always a member")
            .member
    }

    /// Lifeguard's local health score (0 = healthy).
    pub fn health_score(&self) -> u32 {
        self.awareness.score()
    }

    /// Updates waiting to be gossiped.
    pub fn queued_broadcasts(&self) -> usize {
        self.broadcasts.len()
    }

    /// Alive and suspect members, ourselves included.
    pub fn live_members(&self) -> usize {
        self.members.live_count()
    }

    pub fn is_leaving(&self) -> bool {
        self.leaving
    }

    // ----- commands from the shell -----

    /// Join the cluster through each address: a push-pull with `join` set. Each address
    /// answers with a `JoinResult` event (a reply, a reported stream failure, or
    /// `stream_timeout_ms` without an answer).
    pub fn join(&mut self, now_ms: u64, addrs: Vec<SocketAddr>) {
        for addr in addrs {
            self.joins
                .insert(addr, now_ms + self.config.stream_timeout_ms);
            let msg = self.push_pull_message(true, false);
            self.send(addr, msg);
        }
    }

    /// The shell could not reach `addr` over the stream transport (connect or write
    /// failed). A pending join through it fails at once.
    pub fn stream_failed(&mut self, _now_ms: u64, addr: SocketAddr) {
        if self.joins.remove(&addr).is_some() {
            self.notify(SwimEvent::JoinResult { addr, ok: false });
        }
    }

    /// Leave gracefully: gossip our own dead message (a leave), stop probing. The shell
    /// keeps running the core until `LeaveComplete`, then stops.
    pub fn leave(&mut self, now_ms: u64) {
        if self.leaving {
            return;
        }
        self.leaving = true;
        self.probe = None;
        let me = self.me.clone();
        let inc = self.local_member().incarnation;
        self.on_dead(now_ms, &me, inc, &me);
        if self.members.live_count() == 0 {
            self.report_leave_complete();
        }
    }

    /// Force a failed member to Left everywhere (Consul's `force-leave`); with `prune` it
    /// is forgotten at once (`MemberReaped`). Refused for alive, suspect or unknown
    /// members and for ourselves.
    pub fn force_leave(
        &mut self,
        now_ms: u64,
        name: &str,
        prune: bool,
    ) -> Result<(), ForceLeaveError> {
        let Some(entry) = self.members.get(name) else {
            return Err(ForceLeaveError::UnknownMember(name.to_string()));
        };
        if name == self.me || !entry.member.status.is_dead_or_left() {
            return Err(ForceLeaveError::NotFailed(name.to_string()));
        }
        let inc = entry.member.incarnation;
        self.on_force_leave(now_ms, name, inc, prune);
        Ok(())
    }

    /// Replace our tags: a new incarnation, gossiped as alive; `MemberUpdated` for self.
    pub fn set_tags(&mut self, _now_ms: u64, tags: Tags) -> Result<(), TagsError> {
        let len = codec::encode(&tags).map_or(usize::MAX, |b| b.len());
        if len > MAX_TAGS_BYTES {
            return Err(TagsError::TooLarge {
                len,
                limit: MAX_TAGS_BYTES,
            });
        }
        let me = self.me.clone();
        let Some(member) = self.members.member_mut(&me) else {
            return Ok(());
        };
        member.incarnation = Incarnation(member.incarnation.0.saturating_add(1));
        member.tags = SharedTags::new(tags);
        let member = member.clone();
        self.broadcasts.push(self.alive_update_of(&member));
        self.notify(SwimEvent::MemberUpdated(member));
        Ok(())
    }

    // ----- the runtime inputs -----

    /// Time passes: fire whatever timers are due, in a fixed order.
    pub fn on_tick(&mut self, now_ms: u64) {
        self.requested_tick = None;
        self.expire_relays(now_ms);
        self.expire_joins(now_ms);
        self.expire_suspicions(now_ms);
        self.step_probe(now_ms);
        if now_ms >= self.next_gossip_ms {
            self.next_gossip_ms = now_ms + self.config.gossip_interval_ms;
            self.gossip(now_ms);
        }
        if now_ms >= self.next_push_pull_ms {
            let interval =
                push_pull_interval(self.config.push_pull_interval_ms, self.members.live_count());
            self.next_push_pull_ms = now_ms + interval;
            if !self.leaving {
                self.periodic_push_pull();
            }
        }
        if now_ms >= self.next_reconnect_ms {
            self.next_reconnect_ms = now_ms + self.config.reconnect_interval_ms;
            if !self.leaving {
                self.reconnect();
            }
        }
        if now_ms >= self.next_reap_ms {
            self.next_reap_ms = now_ms + self.config.reap_interval_ms;
            self.reap(now_ms);
        }
    }

    /// A message from `from` (the sender's address) arrived.
    pub fn on_message(&mut self, now_ms: u64, from: SocketAddr, msg: Message) {
        match msg {
            Message::Ping {
                seq,
                target,
                piggyback,
            } => {
                self.apply_all(now_ms, piggyback);
                // A ping for another name is for a previous occupant of our address.
                if target == self.me {
                    let piggyback = self.dead_notice_for(from).into_iter().collect();
                    self.send_packed(from, Message::Ack { seq, piggyback });
                }
            }
            Message::IndirectPing {
                seq,
                target,
                target_addr,
                nack,
                piggyback,
            } => {
                self.apply_all(now_ms, piggyback);
                let relay_seq = self.next_seq();
                self.relays.insert(
                    relay_seq,
                    Relay {
                        origin: from,
                        origin_seq: seq,
                        nack,
                        nack_at: now_ms + self.config.probe_timeout_ms,
                    },
                );
                self.send_packed(
                    target_addr,
                    Message::Ping {
                        seq: relay_seq,
                        target,
                        piggyback: Vec::new(),
                    },
                );
            }
            Message::Ack { seq, piggyback } => {
                self.apply_all(now_ms, piggyback);
                if let Some(relay) = self.relays.remove(&seq) {
                    self.send_packed(
                        relay.origin,
                        Message::Ack {
                            seq: relay.origin_seq,
                            piggyback: Vec::new(),
                        },
                    );
                } else if let Some(probe) = self.probe.as_mut() {
                    if probe.seq == seq && !probe.acked {
                        probe.acked = true;
                        self.awareness.apply_delta(-1);
                    }
                }
            }
            Message::Nack { seq } => {
                if let Some(probe) = self.probe.as_mut() {
                    if probe.seq == seq {
                        probe.nacks += 1;
                    }
                }
            }
            Message::Gossip { updates } => self.apply_all(now_ms, updates),
            Message::PushPull {
                join,
                reply,
                states,
            } => {
                if !reply {
                    let answer = self.push_pull_message(join, true);
                    self.send(from, answer);
                }
                self.merge(now_ms, states);
                if reply && self.joins.remove(&from).is_some() {
                    self.notify(SwimEvent::JoinResult {
                        addr: from,
                        ok: true,
                    });
                }
            }
        }
    }

    /// The effects produced since the last call, in order, ending with a `TickAt` when
    /// the next timer differs from the one last requested.
    pub fn drain_effects(&mut self) -> Vec<SwimEffect> {
        let next = self.next_wakeup();
        if self.requested_tick != Some(next) {
            self.requested_tick = Some(next);
            self.outputs.push(Effect::TickAt(next));
        }
        std::mem::take(&mut self.outputs)
    }

    // ----- probing -----

    fn step_probe(&mut self, now: u64) {
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

    fn start_probe(&mut self, now: u64) {
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

    fn send_indirect_probes(&mut self) {
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

    fn finish_probe(&mut self, now: u64, probe: Probe) {
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

    fn expire_relays(&mut self, now: u64) {
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

    fn expire_joins(&mut self, now: u64) {
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

    fn expire_suspicions(&mut self, now: u64) {
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

    // ----- dissemination -----

    fn gossip(&mut self, now: u64) {
        if self.broadcasts.is_empty() {
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

    fn periodic_push_pull(&mut self) {
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
    fn reconnect(&mut self) {
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

    fn reap(&mut self, now: u64) {
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

    fn forget(&mut self, name: &str) {
        self.suspicions.remove(name);
        if let Some(member) = self.members.remove(name) {
            self.notify(SwimEvent::MemberReaped(member));
        }
    }

    fn push_pull_message(&self, join: bool, reply: bool) -> Message {
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
    fn merge(&mut self, now: u64, states: Vec<PushState>) {
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

    // ----- rumours and their precedence -----

    fn apply_all(&mut self, now: u64, updates: Vec<Update>) {
        for update in updates {
            self.apply(now, update);
        }
    }

    fn apply(&mut self, now: u64, update: Update) {
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
        }
    }

    /// Alive overrides suspect, dead and left only with a strictly higher incarnation
    /// (or, for a left or reclaimable dead member, a new address). About ourselves, a
    /// claim that differs from our own record is refuted.
    fn on_alive(
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
    fn on_suspect(&mut self, now: u64, node: &str, inc: Incarnation, from: &str) {
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
    fn on_dead(&mut self, now: u64, node: &str, inc: Incarnation, from: &str) {
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
    fn on_force_leave(&mut self, now: u64, node: &str, inc: Incarnation, prune: bool) {
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
    fn refute(&mut self, accused: Incarnation) {
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
    fn dead_notice_for(&self, from: SocketAddr) -> Option<Update> {
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
    fn regossip_self(&mut self) {
        if !self.leaving && !self.broadcasts.contains(&self.me) {
            let member = self.local_member().clone();
            self.broadcasts.push(self.alive_update_of(&member));
        }
    }

    // ----- plumbing -----

    fn alive_update_of(&self, member: &Member) -> Update {
        Update::Alive {
            node: member.name.clone(),
            incarnation: member.incarnation,
            addr: member.addr,
            tags: member.tags.clone(),
            protocol: member.protocol,
        }
    }

    fn next_seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    fn notify(&mut self, event: SwimEvent) {
        self.outputs.push(Effect::Notify(event));
    }

    fn send(&mut self, to: SocketAddr, msg: Message) {
        self.outputs.push(Effect::Send { to, msg });
    }

    fn send_packed(&mut self, to: SocketAddr, msg: Message) {
        let msg = self.pack(msg);
        self.send(to, msg);
    }

    /// Fill the message's piggyback list from the broadcast queue up to the datagram
    /// budget, measured through the codec.
    fn pack(&mut self, mut msg: Message) -> Message {
        let base = msg.encoded_len();
        let room = UDP_PACKET_BUDGET.saturating_sub(base);
        let limit = retransmit_limit(self.config.retransmit_mult, self.members.live_count());
        let list = match &mut msg {
            Message::Ping { piggyback, .. }
            | Message::IndirectPing { piggyback, .. }
            | Message::Ack { piggyback, .. } => piggyback,
            Message::Gossip { updates } => updates,
            Message::Nack { .. } | Message::PushPull { .. } => return msg,
        };
        let max_items = MAX_PIGGYBACK.saturating_sub(list.len());
        list.extend(self.broadcasts.take(room, max_items, limit));
        if self.leaving && !self.leave_reported && !self.broadcasts.contains(&self.me) {
            self.report_leave_complete();
        }
        msg
    }

    fn report_leave_complete(&mut self) {
        self.leave_reported = true;
        self.notify(SwimEvent::LeaveComplete);
    }

    /// The earliest time any timer needs the core.
    fn next_wakeup(&self) -> u64 {
        let mut next = self.next_reap_ms.min(self.next_reconnect_ms);
        if !self.leaving {
            next = next.min(self.next_push_pull_ms);
        }
        match &self.probe {
            Some(p) => {
                next = next.min(p.deadline);
                if !p.acked && !p.indirect_sent {
                    next = next.min(p.timeout_at);
                }
            }
            None if !self.leaving => next = next.min(self.next_probe_ms),
            None => {}
        }
        if !self.broadcasts.is_empty() {
            next = next.min(self.next_gossip_ms);
        }
        for relay in self.relays.values() {
            next = next.min(relay.nack_at);
        }
        for at in self.joins.values() {
            next = next.min(*at);
        }
        for s in self.suspicions.values() {
            next = next.min(s.deadline_ms());
        }
        next
    }
}

/// Views into private state for the exact-output tests.
#[cfg(test)]
impl Swim {
    pub(super) fn clear_broadcasts(&mut self) {
        self.broadcasts = BroadcastQueue::new(self.config.broadcast_queue_limit);
    }

    pub(super) fn suspicion_deadline(&self, node: &str) -> Option<u64> {
        self.suspicions.get(node).map(|s| s.deadline_ms())
    }

    /// (target, indirect-probe time, verdict time) of the probe in progress.
    pub(super) fn probe_times(&self) -> Option<(String, u64, u64)> {
        self.probe
            .as_ref()
            .map(|p| (p.target.clone(), p.timeout_at, p.deadline))
    }

    pub(super) fn queued_update(&mut self, node: &str) -> bool {
        self.broadcasts.contains(node)
    }
}
