//! The SWIM core: probes, indirect probes, suspicion, refutation, piggybacked gossip,
//! push-pull, join, leave, force-leave and reaping. See the module docs (`swim/mod.rs`)
//! for the contract with the shell.

use super::awareness::Awareness;
use super::broadcast::BroadcastQueue;
use super::config::{push_pull_interval, retransmit_limit, SwimConfig};
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
pub(super) struct Probe {
    pub(super) seq: u32,
    pub(super) target: String,
    /// Ask others once this passes without an ack.
    pub(super) timeout_at: u64,
    /// The verdict (and the next probe) at this time.
    pub(super) deadline: u64,
    pub(super) indirect_sent: bool,
    pub(super) expected_nacks: usize,
    pub(super) nacks: usize,
    pub(super) acked: bool,
}

/// A ping we send on behalf of `origin` (an indirect probe).
#[derive(Debug, Clone)]
pub(super) struct Relay {
    pub(super) origin: SocketAddr,
    pub(super) origin_seq: u32,
    pub(super) nack: bool,
    /// Without an ack by then, nack (if asked) and forget.
    pub(super) nack_at: u64,
}

/// One SWIM member's protocol state.
pub struct Swim {
    pub(super) config: SwimConfig,
    pub(super) me: String,
    pub(super) rng: CoreRng,
    pub(super) members: MemberTable,
    pub(super) awareness: Awareness,
    pub(super) suspicions: BTreeMap<String, Suspicion>,
    pub(super) broadcasts: BroadcastQueue,
    /// serf's user events: Lamport clock, dedupe buffer and their own send queue.
    pub(super) user_events: super::user_events::UserEvents,
    pub(super) next_seq: u32,
    pub(super) probe: Option<Probe>,
    pub(super) next_probe_ms: u64,
    pub(super) relays: BTreeMap<u32, Relay>,
    pub(super) next_gossip_ms: u64,
    pub(super) next_push_pull_ms: u64,
    pub(super) next_reconnect_ms: u64,
    pub(super) next_reap_ms: u64,
    /// Joins awaiting a push-pull reply: address -> give-up time.
    pub(super) joins: BTreeMap<SocketAddr, u64>,
    pub(super) leaving: bool,
    pub(super) leave_reported: bool,
    pub(super) outputs: Vec<SwimEffect>,
    /// The last `TickAt` handed out and not yet consumed by a tick.
    pub(super) requested_tick: Option<u64>,
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
            user_events: Default::default(),
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
            Message::UserEventSync {
                from,
                ask_back,
                events,
            } => self.on_user_event_sync(from, ask_back, events),
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
                if reply {
                    // The peer's listening address is known only on this side.
                    self.send_user_event_sync(from, true);
                }
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

    // ----- plumbing -----

    pub(super) fn alive_update_of(&self, member: &Member) -> Update {
        Update::Alive {
            node: member.name.clone(),
            incarnation: member.incarnation,
            addr: member.addr,
            tags: member.tags.clone(),
            protocol: member.protocol,
        }
    }

    pub(super) fn next_seq(&mut self) -> u32 {
        self.next_seq = self.next_seq.wrapping_add(1);
        self.next_seq
    }

    pub(super) fn notify(&mut self, event: SwimEvent) {
        self.outputs.push(Effect::Notify(event));
    }

    pub(super) fn send(&mut self, to: SocketAddr, msg: Message) {
        self.outputs.push(Effect::Send { to, msg });
    }

    pub(super) fn send_packed(&mut self, to: SocketAddr, msg: Message) {
        let msg = self.pack(msg);
        self.send(to, msg);
    }

    /// Fill the message's piggyback list from the broadcast queue up to the datagram
    /// budget, measured through the codec.
    pub(super) fn pack(&mut self, mut msg: Message) -> Message {
        let base = msg.encoded_len();
        let room = UDP_PACKET_BUDGET.saturating_sub(base);
        let limit = retransmit_limit(self.config.retransmit_mult, self.members.live_count());
        let list = match &mut msg {
            Message::Ping { piggyback, .. }
            | Message::IndirectPing { piggyback, .. }
            | Message::Ack { piggyback, .. } => piggyback,
            Message::Gossip { updates } => updates,
            Message::Nack { .. } | Message::PushPull { .. } | Message::UserEventSync { .. } => {
                return msg
            }
        };
        let max_items = MAX_PIGGYBACK.saturating_sub(list.len());
        let rumours = self.broadcasts.take(room, max_items, limit);
        // User events ride in what membership rumours left (serf queues them apart and
        // sends membership first).
        let used: usize = rumours.iter().map(super::broadcast::update_size).sum();
        let events_max = max_items.saturating_sub(rumours.len());
        list.extend(rumours);
        let events = self.take_user_events(room.saturating_sub(used), events_max);
        list.extend(events);
        if self.leaving && !self.leave_reported && !self.broadcasts.contains(&self.me) {
            self.report_leave_complete();
        }
        msg
    }

    pub(super) fn report_leave_complete(&mut self) {
        self.leave_reported = true;
        self.notify(SwimEvent::LeaveComplete);
    }

    /// The earliest time any timer needs the core.
    pub(super) fn next_wakeup(&self) -> u64 {
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
        if !self.broadcasts.is_empty() || !self.user_events.queue.is_empty() {
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
