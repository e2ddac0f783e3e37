//! Exact-output tests of the SWIM core: one state, one input, the exact effects.

use super::*;
use crate::rng::seeded;
use crate::runtime::Effect;
use rand::{Rng, RngCore};
use std::collections::BTreeMap;
use std::net::SocketAddr;

const HOUR: u64 = 3_600_000;

fn addr(i: u8) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, i], 8301))
}

/// LAN timings with gossip, push-pull, reconnect and reaping pushed out of the way, so a
/// test sees only the behaviour it drives.
fn quiet() -> SwimConfig {
    SwimConfig {
        gossip_interval_ms: HOUR,
        push_pull_interval_ms: HOUR,
        reconnect_interval_ms: HOUR,
        reap_interval_ms: HOUR,
        ..SwimConfig::default()
    }
}

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn alive(name: &str, i: u8, inc: u64) -> Update {
    Update::Alive {
        node: name.into(),
        incarnation: Incarnation(inc),
        addr: addr(i),
        tags: SharedTags::default(),
        protocol: PROTOCOL_VERSION,
    }
}

fn suspect(name: &str, inc: u64, from: &str) -> Update {
    Update::Suspect {
        node: name.into(),
        incarnation: Incarnation(inc),
        from: from.into(),
    }
}

fn dead(name: &str, inc: u64, from: &str) -> Update {
    Update::Dead {
        node: name.into(),
        incarnation: Incarnation(inc),
        from: from.into(),
    }
}

fn gossip(updates: Vec<Update>) -> Message {
    Message::Gossip { updates }
}

/// Member "a" at 10.0.0.1 knowing `others` (named by the letters after "a", at .2, .3
/// ...) alive at incarnation 1, effects drained, broadcast queue empty.
fn node_with(others: usize, config: SwimConfig) -> Swim {
    let mut a = Swim::new("a", addr(1), Tags::new(), config, seeded(7), 0);
    let updates = (0..others)
        .map(|i| alive(&name(i + 1), i as u8 + 2, 1))
        .collect();
    a.on_message(0, addr(200), gossip(updates));
    a.drain_effects();
    a.clear_broadcasts();
    a
}

fn name(i: usize) -> String {
    ((b'a' + i as u8) as char).to_string()
}

fn events(effects: &[SwimEffect]) -> Vec<SwimEvent> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Notify(ev) => Some(ev.clone()),
            _ => None,
        })
        .collect()
}

fn sends(effects: &[SwimEffect]) -> Vec<(SocketAddr, Message)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Send { to, msg } => Some((*to, msg.clone())),
            _ => None,
        })
        .collect()
}

fn status_of(s: &Swim, name: &str) -> Option<(MemberStatus, u64)> {
    s.member(name).map(|m| (m.status, m.incarnation.0))
}

/// Start a probe at `at` (after any staggered start) and return its (target, timeout
/// time, deadline) with the effects.
fn start_probe(a: &mut Swim, at: u64) -> ((String, u64, u64), Vec<SwimEffect>) {
    a.on_tick(at);
    let effects = a.drain_effects();
    (a.probe_times().expect("a probe started"), effects)
}

#[test]
fn a_new_member_announces_itself_and_asks_for_a_tick() {
    let mut a = Swim::new(
        "a",
        addr(1),
        tags(&[("role", "node")]),
        quiet(),
        seeded(7),
        0,
    );
    let effects = a.drain_effects();
    assert_eq!(effects.len(), 2);
    assert_eq!(
        effects[0],
        Effect::Notify(SwimEvent::MemberJoined(Member {
            name: "a".into(),
            addr: addr(1),
            incarnation: Incarnation(1),
            status: MemberStatus::Alive,
            tags: tags(&[("role", "node")]).into(),
            protocol: PROTOCOL_VERSION,
        }))
    );
    assert!(matches!(effects[1], Effect::TickAt(t) if t < 1000));
    assert_eq!(
        a.drain_effects(),
        vec![],
        "the same timer is not requested twice"
    );
}

#[test]
fn a_probe_sends_one_ping_with_the_target_name() {
    let mut a = node_with(1, quiet());
    let ((target, timeout_at, deadline), effects) = start_probe(&mut a, 1000);
    assert_eq!(target, "b");
    assert_eq!((timeout_at, deadline), (1500, 2000));
    assert_eq!(
        effects,
        vec![
            Effect::Send {
                to: addr(2),
                msg: Message::Ping {
                    seq: 1,
                    target: "b".into(),
                    piggyback: vec![],
                },
            },
            Effect::TickAt(1500),
        ]
    );
}

#[test]
fn an_ack_in_time_means_no_suspicion_and_the_next_probe_at_the_interval() {
    let mut a = node_with(1, quiet());
    start_probe(&mut a, 1000);
    a.on_message(
        1010,
        addr(2),
        Message::Ack {
            seq: 1,
            piggyback: vec![],
        },
    );
    assert_eq!(a.drain_effects(), vec![Effect::TickAt(2000)]);
    a.on_tick(2000);
    let effects = a.drain_effects();
    assert_eq!(
        effects,
        vec![
            Effect::Send {
                to: addr(2),
                msg: Message::Ping {
                    seq: 2,
                    target: "b".into(),
                    piggyback: vec![],
                },
            },
            Effect::TickAt(2500),
        ]
    );
    assert_eq!(status_of(&a, "b"), Some((MemberStatus::Alive, 1)));
    assert_eq!(a.health_score(), 0);
}

#[test]
fn a_missed_ack_sends_indirect_pings_to_k_other_members() {
    let mut a = node_with(5, quiet());
    let ((target, timeout_at, _), _) = start_probe(&mut a, 1000);
    let target_addr = a.member(&target).unwrap().addr;
    a.on_tick(timeout_at);
    let effects = a.drain_effects();
    let sent = sends(&effects);
    assert_eq!(sent.len(), 3, "indirect_checks = 3");
    let mut helpers: Vec<SocketAddr> = sent.iter().map(|(to, _)| *to).collect();
    helpers.sort();
    helpers.dedup();
    assert_eq!(helpers.len(), 3, "three distinct helpers");
    for (to, msg) in &sent {
        assert_ne!(*to, target_addr, "the target is not its own helper");
        assert_ne!(*to, addr(1), "nor are we");
        assert_eq!(
            msg,
            &Message::IndirectPing {
                seq: 1,
                target: target.clone(),
                target_addr,
                nack: true,
                piggyback: vec![],
            }
        );
    }
    assert_eq!(effects.last(), Some(&Effect::TickAt(2000)));
}

#[test]
fn no_ack_by_the_deadline_makes_the_target_suspect_and_raises_the_health_score() {
    let mut a = node_with(5, quiet());
    let ((target, timeout_at, deadline), _) = start_probe(&mut a, 1000);
    a.on_tick(timeout_at);
    a.drain_effects();
    a.on_tick(deadline);
    let effects = a.drain_effects();
    let member = a.member(&target).unwrap().clone();
    assert_eq!(member.status, MemberStatus::Suspect);
    assert_eq!(
        events(&effects),
        vec![SwimEvent::MemberSuspect(member.clone())]
    );
    // Three relays, no nacks: three points against our own health.
    assert_eq!(a.health_score(), 3);
    // The next probe starts at once with an interval scaled by 4.
    let (_, next_timeout, next_deadline) = a.probe_times().unwrap();
    assert_eq!(
        (next_timeout, next_deadline),
        (deadline + 2000, deadline + 4000)
    );
    // The suspicion is gossiped with us as the accuser.
    assert!(a.queued_update(&target));
}

#[test]
fn nacks_from_all_relays_spare_our_health_score() {
    let mut a = node_with(5, quiet());
    let ((target, timeout_at, deadline), _) = start_probe(&mut a, 1000);
    a.on_tick(timeout_at);
    a.drain_effects();
    for _ in 0..3 {
        a.on_message(timeout_at + 600, addr(3), Message::Nack { seq: 1 });
    }
    a.on_tick(deadline);
    a.drain_effects();
    assert_eq!(a.member(&target).unwrap().status, MemberStatus::Suspect);
    assert_eq!(a.health_score(), 0);
}

#[test]
fn an_ack_relayed_by_a_helper_counts() {
    let mut a = node_with(5, quiet());
    let ((target, timeout_at, deadline), _) = start_probe(&mut a, 1000);
    a.on_tick(timeout_at);
    let helper = sends(&a.drain_effects())[0].0;
    a.on_message(
        timeout_at + 20,
        helper,
        Message::Ack {
            seq: 1,
            piggyback: vec![],
        },
    );
    a.on_tick(deadline);
    assert!(events(&a.drain_effects()).is_empty());
    assert_eq!(a.member(&target).unwrap().status, MemberStatus::Alive);
}

#[test]
fn a_relay_pings_the_target_and_forwards_its_ack() {
    let mut b = node_with(2, quiet()); // "a" here, knows b and c
    let request = Message::IndirectPing {
        seq: 77,
        target: "c".into(),
        target_addr: addr(3),
        nack: true,
        piggyback: vec![],
    };
    b.on_message(100, addr(9), request);
    assert_eq!(
        sends(&b.drain_effects()),
        vec![(
            addr(3),
            Message::Ping {
                seq: 1,
                target: "c".into(),
                piggyback: vec![],
            }
        )]
    );
    b.on_message(
        120,
        addr(3),
        Message::Ack {
            seq: 1,
            piggyback: vec![],
        },
    );
    assert_eq!(
        sends(&b.drain_effects()),
        vec![(
            addr(9),
            Message::Ack {
                seq: 77,
                piggyback: vec![],
            }
        )]
    );
    // Nothing more for the origin: no nack after an ack.
    b.on_tick(700);
    assert!(sends(&b.drain_effects())
        .iter()
        .all(|(to, _)| *to != addr(9)));
}

#[test]
fn a_relay_nacks_when_the_target_stays_silent() {
    let mut b = node_with(2, quiet());
    let request = Message::IndirectPing {
        seq: 77,
        target: "c".into(),
        target_addr: addr(3),
        nack: true,
        piggyback: vec![],
    };
    b.on_message(100, addr(9), request);
    b.drain_effects();
    b.on_tick(599);
    assert!(sends(&b.drain_effects())
        .iter()
        .all(|(to, _)| *to != addr(9)));
    b.on_tick(600);
    let to_origin: Vec<_> = sends(&b.drain_effects())
        .into_iter()
        .filter(|(to, _)| *to == addr(9))
        .collect();
    assert_eq!(to_origin, vec![(addr(9), Message::Nack { seq: 77 })]);
}

#[test]
fn a_ping_is_answered_only_for_our_own_name() {
    let mut a = node_with(1, quiet());
    let ping = |target: &str| Message::Ping {
        seq: 5,
        target: target.into(),
        piggyback: vec![],
    };
    a.on_message(10, addr(2), ping("a"));
    assert_eq!(
        sends(&a.drain_effects()),
        vec![(
            addr(2),
            Message::Ack {
                seq: 5,
                piggyback: vec![],
            }
        )]
    );
    a.on_message(10, addr(2), ping("old-name"));
    assert!(sends(&a.drain_effects()).is_empty());
}

#[test]
fn the_suspicion_timeout_declares_the_member_dead() {
    // Two members: no one can confirm (k = 0), so the minimum applies at once:
    // 4 × max(1, log10 2) × 1000 ms = 4000 ms.
    let mut a = node_with(1, quiet());
    a.on_message(50, addr(3), gossip(vec![suspect("b", 1, "x")]));
    let effects = a.drain_effects();
    let b = a.member("b").unwrap().clone();
    assert_eq!(events(&effects), vec![SwimEvent::MemberSuspect(b)]);
    assert_eq!(a.suspicion_deadline("b"), Some(4050));
    a.on_tick(4049);
    assert!(events(&a.drain_effects()).is_empty());
    a.on_tick(4050);
    let effects = a.drain_effects();
    let b = a.member("b").unwrap().clone();
    assert_eq!(b.status, MemberStatus::Dead);
    assert_eq!(events(&effects), vec![SwimEvent::MemberFailed(b)]);
    assert!(a.queued_update("b"), "the death is gossiped");
}

#[test]
fn independent_confirmations_shorten_the_suspicion() {
    // Six members: k = min(3, 6 - 2) = 3, min = 4 × log10(6) × 1000, max = 6 × min.
    let mut a = node_with(5, quiet());
    let min = suspicion_min_timeout(4, 6, 1000);
    let max = 6 * min;
    a.on_message(0, addr(3), gossip(vec![suspect("b", 1, "c")]));
    assert_eq!(a.suspicion_deadline("b"), Some(max));
    a.on_message(10, addr(3), gossip(vec![suspect("b", 1, "c")]));
    assert_eq!(a.suspicion_deadline("b"), Some(max), "the accuser again");
    a.on_message(20, addr(4), gossip(vec![suspect("b", 1, "d")]));
    assert_eq!(
        a.suspicion_deadline("b"),
        Some(suspicion_timeout(1, 3, min, max))
    );
    a.on_message(30, addr(5), gossip(vec![suspect("b", 1, "e")]));
    a.on_message(40, addr(6), gossip(vec![suspect("b", 1, "f")]));
    assert_eq!(a.suspicion_deadline("b"), Some(min));
}

#[test]
fn a_rumour_about_ourselves_is_refuted_with_a_higher_incarnation() {
    let mut a = node_with(1, quiet());
    a.on_message(10, addr(2), gossip(vec![suspect("a", 1, "b")]));
    assert!(events(&a.drain_effects()).is_empty());
    assert_eq!(status_of(&a, "a"), Some((MemberStatus::Alive, 2)));
    assert_eq!(
        a.health_score(),
        1,
        "refuting is a hint of our own slowness"
    );
    // A dead rumour at a higher incarnation is outbid too.
    a.on_message(20, addr(2), gossip(vec![dead("a", 7, "b")]));
    assert_eq!(status_of(&a, "a"), Some((MemberStatus::Alive, 8)));
    // The refutation rides on the next packet.
    a.on_message(
        30,
        addr(2),
        Message::Ping {
            seq: 3,
            target: "a".into(),
            piggyback: vec![],
        },
    );
    assert_eq!(
        sends(&a.drain_effects()),
        vec![(
            addr(2),
            Message::Ack {
                seq: 3,
                piggyback: vec![alive("a", 1, 8)],
            }
        )]
    );
}

#[test]
fn a_ping_to_a_suspect_carries_the_suspicion_and_the_suspect_refutes_at_once() {
    let mut a = node_with(1, quiet());
    a.on_message(0, addr(3), gossip(vec![suspect("b", 1, "x")]));
    a.drain_effects();
    a.clear_broadcasts();
    let (_, effects) = start_probe(&mut a, 1000);
    let ping = sends(&effects).remove(0);
    assert_eq!(
        ping,
        (
            addr(2),
            Message::Ping {
                seq: 1,
                target: "b".into(),
                piggyback: vec![suspect("b", 1, "a")],
            }
        )
    );
    // b hears it inside the ping and refutes in the ack itself.
    let mut b = Swim::new("b", addr(2), Tags::new(), quiet(), seeded(8), 0);
    b.drain_effects();
    b.clear_broadcasts();
    b.on_message(1005, addr(1), ping.1);
    let ack = sends(&b.drain_effects()).remove(0);
    assert_eq!(
        ack,
        (
            addr(1),
            Message::Ack {
                seq: 1,
                piggyback: vec![alive("b", 2, 2)],
            }
        )
    );
    a.on_message(1010, addr(2), ack.1);
    let b_member = a.member("b").unwrap().clone();
    assert_eq!(
        events(&a.drain_effects()),
        vec![SwimEvent::MemberAlive(b_member)]
    );
    assert_eq!(status_of(&a, "b"), Some((MemberStatus::Alive, 2)));
    assert_eq!(a.suspicion_deadline("b"), None);
}

/// Put member "b" (incarnation 5) into `status` as seen by "a".
fn with_b_in(status: MemberStatus) -> Swim {
    let mut a = node_with(0, quiet());
    let mut updates = vec![alive("b", 2, 5)];
    match status {
        MemberStatus::Alive => {}
        MemberStatus::Suspect => updates.push(suspect("b", 5, "x")),
        MemberStatus::Dead => updates.push(dead("b", 5, "x")),
        MemberStatus::Left => updates.push(dead("b", 5, "b")),
    }
    a.on_message(0, addr(9), gossip(updates));
    a.drain_effects();
    assert_eq!(status_of(&a, "b"), Some((status, 5)));
    a
}

#[test]
fn precedence_follows_incarnations_as_in_swim() {
    use MemberStatus::*;
    let left = |inc| dead("b", inc, "b");
    #[rustfmt::skip]
    let table: Vec<(MemberStatus, Update, (MemberStatus, u64))> = vec![
        (Alive, alive("b", 2, 4), (Alive, 5)),
        (Alive, alive("b", 2, 5), (Alive, 5)),
        (Alive, alive("b", 2, 6), (Alive, 6)),
        (Alive, suspect("b", 4, "y"), (Alive, 5)),
        (Alive, suspect("b", 5, "y"), (Suspect, 5)),
        (Alive, suspect("b", 6, "y"), (Suspect, 6)),
        (Alive, dead("b", 4, "y"), (Alive, 5)),
        (Alive, dead("b", 5, "y"), (Dead, 5)),
        (Alive, dead("b", 6, "y"), (Dead, 6)),
        (Alive, left(5), (Left, 5)),
        (Suspect, alive("b", 2, 5), (Suspect, 5)),
        (Suspect, alive("b", 2, 6), (Alive, 6)),
        (Suspect, suspect("b", 6, "y"), (Suspect, 5)),
        (Suspect, dead("b", 4, "y"), (Suspect, 5)),
        (Suspect, dead("b", 5, "y"), (Dead, 5)),
        (Suspect, left(5), (Left, 5)),
        (Dead, alive("b", 2, 5), (Dead, 5)),
        (Dead, alive("b", 2, 6), (Alive, 6)),
        (Dead, suspect("b", 6, "y"), (Dead, 5)),
        (Dead, dead("b", 6, "y"), (Dead, 5)),
        (Dead, left(6), (Dead, 5)),
        (Left, alive("b", 2, 5), (Left, 5)),
        (Left, alive("b", 2, 6), (Alive, 6)),
        (Left, suspect("b", 6, "y"), (Left, 5)),
        (Left, dead("b", 6, "y"), (Left, 5)),
        // A known member's name claimed from another address is ignored unless it left.
        (Alive, alive("b", 7, 9), (Alive, 5)),
        (Dead, alive("b", 7, 9), (Dead, 5)),
        (Left, alive("b", 7, 1), (Alive, 1)),
    ];
    for (i, (start, update, expected)) in table.into_iter().enumerate() {
        let mut a = with_b_in(start);
        a.on_message(10, addr(9), gossip(vec![update.clone()]));
        assert_eq!(
            status_of(&a, "b"),
            Some(expected),
            "row {i}: {start:?} + {update:?}"
        );
    }
}

#[test]
fn events_name_each_transition() {
    let mut a = with_b_in(MemberStatus::Alive);
    let mut b_tags = alive("b", 2, 6);
    if let Update::Alive { tags: t, .. } = &mut b_tags {
        *t = tags(&[("role", "consul")]).into();
    }
    a.on_message(10, addr(9), gossip(vec![b_tags]));
    let got = events(&a.drain_effects());
    assert!(matches!(&got[..], [SwimEvent::MemberUpdated(m)] if m.tags["role"] == "consul"));
    a.on_message(10, addr(9), gossip(vec![dead("b", 6, "x")]));
    assert!(
        matches!(&events(&a.drain_effects())[..], [SwimEvent::MemberFailed(m)] if m.name == "b")
    );
    a.on_message(10, addr(9), gossip(vec![alive("b", 2, 7)]));
    assert!(
        matches!(&events(&a.drain_effects())[..], [SwimEvent::MemberRecovered(m)] if m.name == "b")
    );
    a.on_message(10, addr(9), gossip(vec![dead("b", 7, "b")]));
    assert!(matches!(&events(&a.drain_effects())[..], [SwimEvent::MemberLeft(m)] if m.name == "b"));
}

/// Deliver every send between the given cores until quiet (no loss, in order). Ticks
/// are not driven: only the message exchange.
fn exchange(
    now: u64,
    nodes: &mut BTreeMap<SocketAddr, Swim>,
    from: SocketAddr,
) -> Vec<(SocketAddr, SwimEvent)> {
    let mut seen = Vec::new();
    let mut queue: Vec<(SocketAddr, SocketAddr, Message)> = Vec::new();
    let mut pending = vec![from];
    loop {
        for at in pending.drain(..) {
            let effects = nodes.get_mut(&at).unwrap().drain_effects();
            for e in events(&effects) {
                seen.push((at, e));
            }
            for (to, msg) in sends(&effects) {
                queue.push((at, to, msg));
            }
        }
        if queue.is_empty() {
            return seen;
        }
        let (src, to, msg) = queue.remove(0);
        if let Some(node) = nodes.get_mut(&to) {
            node.on_message(now, src, msg);
            pending.push(to);
        }
    }
}

#[test]
fn a_join_is_a_push_pull_both_sides_learn_each_other() {
    let mut nodes = BTreeMap::new();
    for (i, n) in ["a", "b"].iter().enumerate() {
        let mut s = Swim::new(
            *n,
            addr(i as u8 + 1),
            Tags::new(),
            quiet(),
            seeded(i as u64),
            0,
        );
        s.drain_effects();
        nodes.insert(addr(i as u8 + 1), s);
    }
    nodes.get_mut(&addr(1)).unwrap().join(5, vec![addr(2)]);
    let request = nodes.get_mut(&addr(1)).unwrap().drain_effects();
    let (to, msg) = sends(&request).remove(0);
    assert_eq!(to, addr(2));
    assert_eq!(msg.transport(), Transport::Stream);
    assert!(
        matches!(&msg, Message::PushPull { join: true, reply: false, states } if states.len() == 1)
    );
    nodes.get_mut(&addr(2)).unwrap().on_message(6, addr(1), msg);
    let seen = exchange(6, &mut nodes, addr(2));
    let summary: Vec<(SocketAddr, String)> = seen
        .iter()
        .map(|(at, e)| {
            let what = match e {
                SwimEvent::MemberJoined(m) => format!("joined {}", m.name),
                SwimEvent::JoinResult { addr, ok } => format!("join via {addr} ok={ok}"),
                other => format!("{other:?}"),
            };
            (*at, what)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (addr(2), "joined a".to_string()),
            (addr(1), "joined b".to_string()),
            (addr(1), "join via 10.0.0.2:8301 ok=true".to_string()),
        ]
    );
    for node in nodes.values() {
        let names: Vec<String> = node.members().into_iter().map(|m| m.name).collect();
        assert_eq!(names, vec!["a", "b"]);
    }
}

#[test]
fn a_join_without_answer_fails_after_the_stream_timeout_or_at_once_on_error() {
    let mut a = node_with(0, quiet());
    a.join(100, vec![addr(2), addr(3)]);
    a.drain_effects();
    a.stream_failed(200, addr(3));
    assert_eq!(
        events(&a.drain_effects()),
        vec![SwimEvent::JoinResult {
            addr: addr(3),
            ok: false
        }]
    );
    a.on_tick(10_099);
    assert!(events(&a.drain_effects()).is_empty());
    a.on_tick(10_100);
    assert_eq!(
        events(&a.drain_effects()),
        vec![SwimEvent::JoinResult {
            addr: addr(2),
            ok: false
        }]
    );
}

#[test]
fn a_leave_is_left_everywhere_not_failed_and_completes_after_its_retransmits() {
    let config = SwimConfig {
        gossip_interval_ms: 200,
        ..quiet()
    };
    let mut a = node_with(1, config.clone());
    let mut b = Swim::new("b", addr(2), Tags::new(), config, seeded(3), 0);
    b.on_message(0, addr(9), gossip(vec![alive("a", 1, 1)]));
    b.drain_effects();
    a.leave(100);
    let me = a.member("a").unwrap().clone();
    assert_eq!(me.status, MemberStatus::Left);
    assert_eq!(events(&a.drain_effects()), vec![SwimEvent::MemberLeft(me)]);
    // Gossip rounds carry the leave to b; with n = 1 live (b) the limit is 4 sends.
    let mut complete_at = None;
    for t in (200..=2000).step_by(200) {
        a.on_tick(t);
        let effects = a.drain_effects();
        for (to, msg) in sends(&effects) {
            assert_eq!(to, addr(2));
            b.on_message(t, addr(1), msg);
        }
        if events(&effects).contains(&SwimEvent::LeaveComplete) {
            complete_at = Some(t);
            break;
        }
    }
    assert!(
        complete_at.is_some(),
        "LeaveComplete after the last retransmit"
    );
    assert_eq!(status_of(&b, "a"), Some((MemberStatus::Left, 1)));
    let seen = events(&b.drain_effects());
    assert!(matches!(&seen[..], [SwimEvent::MemberLeft(m)] if m.name == "a"));
    // A leaving member does not refute rumours about itself.
    a.on_message(3000, addr(2), gossip(vec![dead("a", 1, "b")]));
    assert_eq!(status_of(&a, "a"), Some((MemberStatus::Left, 1)));
}

#[test]
fn leaving_alone_completes_at_once() {
    let mut a = node_with(0, quiet());
    a.leave(5);
    let got = events(&a.drain_effects());
    assert!(matches!(
        &got[..],
        [SwimEvent::MemberLeft(_), SwimEvent::LeaveComplete]
    ));
}

#[test]
fn force_leave_turns_a_failed_member_left_and_prune_forgets_it() {
    let mut a = with_b_in(MemberStatus::Dead);
    assert_eq!(
        a.force_leave(10, "a", false),
        Err(ForceLeaveError::NotFailed("a".into()))
    );
    assert_eq!(
        a.force_leave(10, "zz", false),
        Err(ForceLeaveError::UnknownMember("zz".into()))
    );
    a.force_leave(10, "b", false).unwrap();
    let b = a.member("b").unwrap().clone();
    assert_eq!(b.status, MemberStatus::Left);
    assert_eq!(
        events(&a.drain_effects()),
        vec![SwimEvent::MemberLeft(b.clone())]
    );
    assert!(a.queued_update("b"));
    a.force_leave(20, "b", true).unwrap();
    assert_eq!(events(&a.drain_effects()), vec![SwimEvent::MemberReaped(b)]);
    assert!(a.member("b").is_none());
    // An alive member cannot be force-left.
    let mut c = with_b_in(MemberStatus::Alive);
    assert_eq!(
        c.force_leave(10, "b", true),
        Err(ForceLeaveError::NotFailed("b".into()))
    );
    // Receivers apply the gossiped force-leave the same way.
    let mut d = with_b_in(MemberStatus::Dead);
    d.on_message(
        30,
        addr(1),
        gossip(vec![Update::ForceLeave {
            node: "b".into(),
            incarnation: Incarnation(5),
            prune: true,
        }]),
    );
    let got = events(&d.drain_effects());
    assert!(matches!(
        &got[..],
        [SwimEvent::MemberLeft(_), SwimEvent::MemberReaped(_)]
    ));
    assert!(d.member("b").is_none());
}

#[test]
fn failed_and_left_members_are_reaped_after_their_timeouts() {
    let config = SwimConfig {
        reap_interval_ms: 1000,
        reconnect_timeout_ms: 10_000,
        tombstone_timeout_ms: 5_000,
        ..quiet()
    };
    let mut a = node_with(2, config);
    a.on_message(
        0,
        addr(9),
        gossip(vec![dead("b", 1, "x"), dead("c", 1, "c")]),
    );
    a.drain_effects();
    a.on_tick(4_000);
    assert!(events(&a.drain_effects()).is_empty());
    a.on_tick(5_000);
    let got = events(&a.drain_effects());
    assert!(matches!(&got[..], [SwimEvent::MemberReaped(m)] if m.name == "c"));
    a.on_tick(10_000);
    let got = events(&a.drain_effects());
    assert!(matches!(&got[..], [SwimEvent::MemberReaped(m)] if m.name == "b"));
    assert_eq!(a.members().len(), 1);
    // A dead or left rumour about a forgotten member does not resurrect it.
    a.on_message(
        11_000,
        addr(9),
        gossip(vec![dead("b", 1, "x"), suspect("c", 1, "x")]),
    );
    assert_eq!(a.members().len(), 1);
}

#[test]
fn set_tags_bumps_the_incarnation_and_peers_see_an_update() {
    let mut a = node_with(1, quiet());
    a.set_tags(10, tags(&[("role", "consul"), ("dc", "dc1")]))
        .unwrap();
    let me = a.local_member().clone();
    assert_eq!(me.incarnation, Incarnation(2));
    assert_eq!(
        events(&a.drain_effects()),
        vec![SwimEvent::MemberUpdated(me.clone())]
    );
    let (_, effects) = start_probe(&mut a, 1000);
    let Some((_, Message::Ping { piggyback, .. })) = sends(&effects).pop() else {
        panic!("no ping");
    };
    let mut b = Swim::new("b", addr(2), Tags::new(), quiet(), seeded(3), 0);
    b.on_message(0, addr(9), gossip(vec![alive("a", 1, 1)]));
    b.drain_effects();
    b.on_message(1001, addr(1), gossip(piggyback));
    assert_eq!(
        events(&b.drain_effects()),
        vec![SwimEvent::MemberUpdated(me)]
    );
    // Tags beyond the size limit are refused.
    let big = tags(&[("k", &"x".repeat(600))]);
    assert!(matches!(
        a.set_tags(20, big),
        Err(TagsError::TooLarge { .. })
    ));
}

#[test]
fn a_remote_dead_state_in_a_push_pull_becomes_a_suspicion_we_can_refute() {
    let mut a = node_with(1, quiet());
    let dead_b = PushState {
        name: "b".into(),
        addr: addr(2),
        incarnation: Incarnation(1),
        status: MemberStatus::Dead,
        tags: SharedTags::default(),
        protocol: PROTOCOL_VERSION,
    };
    let dead_a = PushState {
        name: "a".into(),
        addr: addr(1),
        ..dead_b.clone()
    };
    a.on_message(
        5,
        addr(2),
        Message::PushPull {
            join: false,
            reply: true,
            states: vec![dead_a, dead_b],
        },
    );
    a.drain_effects();
    assert_eq!(status_of(&a, "b"), Some((MemberStatus::Suspect, 1)));
    assert_eq!(
        status_of(&a, "a"),
        Some((MemberStatus::Alive, 2)),
        "refuted"
    );
}

#[test]
fn piggybacks_fill_a_datagram_up_to_the_udp_budget() {
    let mut a = node_with(1, quiet());
    let many: Vec<Update> = (0..200)
        .map(|i| Update::Alive {
            node: format!("node-{i:03}"),
            incarnation: Incarnation(1),
            addr: addr(50),
            tags: tags(&[("role", "node"), ("dc", "dc1"), ("build", "1.0.0")]).into(),
            protocol: PROTOCOL_VERSION,
        })
        .collect();
    a.on_message(0, addr(9), gossip(many));
    a.drain_effects();
    let (_, effects) = start_probe(&mut a, 1000);
    let (_, ping) = sends(&effects).remove(0);
    let Message::Ping { piggyback, .. } = &ping else {
        panic!("not a ping: {ping:?}");
    };
    let len = ping.encoded_len();
    assert!(len <= UDP_PACKET_BUDGET, "{len} bytes");
    assert!(
        len > UDP_PACKET_BUDGET - 100,
        "the budget is used: {len} bytes"
    );
    assert!(piggyback.len() > 5);
    assert_eq!(ping.transport(), Transport::Datagram);
    // Anything larger than the budget goes over the stream transport.
    let huge = gossip(vec![alive("b", 2, 1); 100]);
    assert_eq!(huge.transport(), Transport::Stream);
}

#[test]
fn reconnect_pushes_to_a_failed_member() {
    let config = SwimConfig {
        reconnect_interval_ms: 1000,
        ..quiet()
    };
    let mut a = node_with(1, config);
    a.on_message(0, addr(9), gossip(vec![dead("b", 1, "x")]));
    a.drain_effects();
    // One failed, one live (ourselves): probability 1.
    a.on_tick(1000);
    let sent = sends(&a.drain_effects());
    assert!(
        matches!(&sent[..], [(to, Message::PushPull { join: false, reply: false, .. })] if *to == addr(2)),
        "{sent:?}"
    );
}

fn sample_messages() -> Vec<Message> {
    let state = PushState {
        name: "a".into(),
        addr: "[::1]:8301".parse().unwrap(),
        incarnation: Incarnation(u64::MAX),
        status: MemberStatus::Suspect,
        tags: tags(&[("role", "consul"), ("id", "5f0e")]).into(),
        protocol: PROTOCOL_VERSION,
    };
    vec![
        Message::Ping {
            seq: 1,
            target: "b".into(),
            piggyback: vec![alive("c", 3, 2), suspect("d", 1, "a"), dead("e", 9, "e")],
        },
        Message::IndirectPing {
            seq: u32::MAX,
            target: "b".into(),
            target_addr: addr(2),
            nack: true,
            piggyback: vec![Update::ForceLeave {
                node: "z".into(),
                incarnation: Incarnation(3),
                prune: true,
            }],
        },
        Message::Ack {
            seq: 0,
            piggyback: vec![],
        },
        Message::Nack { seq: 42 },
        gossip(vec![alive("x", 9, 0)]),
        Message::PushPull {
            join: true,
            reply: false,
            states: vec![state],
        },
    ]
}

#[test]
fn every_message_round_trips_through_the_codec() {
    for msg in sample_messages() {
        let bytes = msg.encode().unwrap();
        let transport = msg.transport();
        assert_eq!(Message::decode(&bytes, transport).unwrap(), msg);
    }
}

#[test]
fn random_and_mutated_bytes_never_panic_the_decoder() {
    let mut rng = seeded(99);
    let valid: Vec<Vec<u8>> = sample_messages()
        .iter()
        .map(|m| m.encode().unwrap())
        .collect();
    for round in 0..20_000 {
        let bytes = if round % 2 == 0 {
            let len = rng.random_range(0..200);
            let mut b = vec![0u8; len];
            rng.fill_bytes(&mut b);
            b
        } else {
            let mut b = valid[round % valid.len()].clone();
            for _ in 0..rng.random_range(1..4) {
                let i = rng.random_range(0..b.len());
                b[i] = rng.random();
            }
            if rng.random_bool(0.3) {
                b.truncate(rng.random_range(0..b.len()));
            }
            b
        };
        let _ = Message::decode(&bytes, Transport::Datagram);
        let _ = Message::decode(&bytes, Transport::Stream);
    }
    let too_big = vec![0u8; MAX_DATAGRAM_BYTES + 1];
    assert!(Message::decode(&too_big, Transport::Datagram).is_err());
}

#[test]
fn decoded_garbage_fed_to_the_core_never_panics() {
    // Whatever decodes, the core must accept without panicking.
    let mut rng = seeded(5);
    let mut a = node_with(3, quiet());
    let valid: Vec<Vec<u8>> = sample_messages()
        .iter()
        .map(|m| m.encode().unwrap())
        .collect();
    let mut accepted = 0;
    for round in 0..5_000u64 {
        let mut b = valid[round as usize % valid.len()].clone();
        let i = rng.random_range(0..b.len());
        b[i] = rng.random();
        if let Ok(msg) = Message::decode(&b, Transport::Stream) {
            accepted += 1;
            a.on_message(round, addr(9), msg);
            a.on_tick(round);
            a.drain_effects();
        }
    }
    assert!(accepted > 100, "{accepted}");
}

#[test]
fn a_user_event_is_delivered_here_at_once_and_rides_on_the_next_gossip() {
    let config = SwimConfig {
        gossip_interval_ms: 100,
        ..quiet()
    };
    let mut a = node_with(2, config);
    assert_eq!(a.user_event("deploy", b"v2".to_vec()), Ok(0));
    assert_eq!(a.user_event_clock(), 1);
    let effects = a.drain_effects();
    assert_eq!(
        events(&effects),
        vec![SwimEvent::UserEvent {
            ltime: 0,
            name: "deploy".into(),
            payload: b"v2".to_vec()
        }]
    );
    a.on_tick(HOUR / 2);
    let carried: Vec<Update> = sends(&a.drain_effects())
        .into_iter()
        .flat_map(|(_, msg)| match msg {
            Message::Gossip { updates } => updates,
            _ => Vec::new(),
        })
        .collect();
    assert!(
        carried.contains(&Update::UserEvent {
            ltime: 0,
            name: "deploy".into(),
            payload: b"v2".to_vec()
        }),
        "{carried:?}"
    );
}

#[test]
fn a_received_user_event_is_delivered_once_and_moves_the_clock_past_it() {
    let mut b = node_with(1, quiet());
    let event = Update::UserEvent {
        ltime: 41,
        name: "deploy".into(),
        payload: b"x".to_vec(),
    };
    b.on_message(10, addr(2), gossip(vec![event.clone()]));
    assert_eq!(events(&b.drain_effects()).len(), 1);
    b.on_message(11, addr(2), gossip(vec![event.clone()]));
    assert_eq!(
        events(&b.drain_effects()),
        vec![],
        "a repeat is not delivered again"
    );
    assert_eq!(b.user_event_clock(), 42);
    assert_eq!(b.user_event("next", Vec::new()), Ok(42));
}

#[test]
fn a_user_event_over_the_size_limit_is_refused() {
    let mut a = node_with(1, quiet());
    let payload = vec![0u8; USER_EVENT_SIZE_LIMIT];
    assert_eq!(
        a.user_event("big", payload).unwrap_err().to_string(),
        "user event exceeds configured limit of 512 bytes before encoding"
    );
    assert_eq!(events(&a.drain_effects()), vec![]);
    assert_eq!(a.user_event_clock(), 0, "a refused event takes no time");
}

#[test]
fn an_event_sync_delivers_what_was_missed_and_answers_with_our_window() {
    let mut a = node_with(1, quiet());
    a.user_event("x", b"1".to_vec()).unwrap();
    a.drain_effects();
    let missed = Update::UserEvent {
        ltime: 7,
        name: "y".into(),
        payload: Vec::new(),
    };
    let sync = Message::UserEventSync {
        from: addr(2),
        ask_back: true,
        events: vec![missed.clone()],
    };
    assert_eq!(sync.transport(), Transport::Stream);
    a.on_message(5, addr(99), sync);
    let effects = a.drain_effects();
    assert_eq!(
        events(&effects),
        vec![SwimEvent::UserEvent {
            ltime: 7,
            name: "y".into(),
            payload: Vec::new()
        }]
    );
    let x = Update::UserEvent {
        ltime: 0,
        name: "x".into(),
        payload: b"1".to_vec(),
    };
    assert_eq!(
        sends(&effects),
        vec![(
            addr(2),
            Message::UserEventSync {
                from: addr(1),
                ask_back: false,
                events: vec![x, missed.clone()],
            }
        )],
        "answered at the sender's gossip address, not the connection's"
    );
    // The same window again delivers nothing and, not asked, answers nothing.
    a.on_message(
        6,
        addr(99),
        Message::UserEventSync {
            from: addr(2),
            ask_back: false,
            events: vec![missed],
        },
    );
    assert_eq!(a.drain_effects().len(), 0);
}
