//! Exact-output tests of the Raft core: one state, one input, the exact outputs.

use super::*;
use crate::ids::{LogIndex, ServerId, Term};
use crate::rng::seeded;

const T: u64 = 100; // election timeout in these tests; waits are drawn from [T, 2T)

fn id(s: &str) -> ServerId {
    ServerId(s.to_string())
}

fn config(s: &str) -> RaftConfig {
    RaftConfig {
        id: id(s),
        election_timeout_ms: T,
        heartbeat_interval_ms: 10,
        max_entries_per_append: 64,
        max_append_bytes: 64 * 1024,
        log_cache_bytes: super::LOG_CACHE_BYTES,
        log_cache_entries: super::LOG_CACHE_ENTRIES,
        // These tests read every reply as an output of `on_persisted`; the riding
        // replies have their own tests.
        replies_ride_persists: false,
    }
}

fn node(s: &str, hard_state: HardState, entries: Vec<Entry>) -> Raft {
    Raft::new(config(s), hard_state, None, entries, seeded(7), 0).unwrap()
}

fn entry(term: u64, index: u64, payload: Payload) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload,
    }
}

fn conf(ids: &[&str]) -> Payload {
    Payload::Configuration(ids.iter().map(|s| (id(s), format!("{s}:8300"))).collect())
}

fn cmd(b: &str) -> Payload {
    Payload::Command(b.as_bytes().to_vec())
}

fn hs(term: u64, vote: Option<&str>) -> HardState {
    HardState {
        term: Term(term),
        voted_for: vote.map(id),
    }
}

fn persist(
    id: u64,
    truncate_from: Option<u64>,
    entries: Vec<Entry>,
    hard_state: Option<HardState>,
) -> Output {
    Output::Persist(PersistRequest {
        id,
        reset_after: None,
        truncate_from: truncate_from.map(LogIndex),
        entries,
        hard_state,
        then_send: Vec::new(),
    })
}

fn role(role: Role, term: u64, leader: Option<&str>) -> Output {
    Output::RoleChanged {
        role,
        term: Term(term),
        leader: leader.map(id),
    }
}

fn send(to: &str, msg: Message) -> Output {
    Output::Send { to: id(to), msg }
}

fn committed(up_to: u64) -> Output {
    Output::Committed {
        up_to: LogIndex(up_to),
    }
}

fn vote_request(pre_vote: bool, term: u64, candidate: &str, last: (u64, u64)) -> Message {
    Message::RequestVote {
        term: Term(term),
        candidate: id(candidate),
        last_log_index: LogIndex(last.0),
        last_log_term: Term(last.1),
        pre_vote,
    }
}

fn request_vote(term: u64, candidate: &str, last_index: u64, last_term: u64) -> Message {
    vote_request(false, term, candidate, (last_index, last_term))
}

fn pre_vote(term: u64, candidate: &str, last_index: u64, last_term: u64) -> Message {
    vote_request(true, term, candidate, (last_index, last_term))
}

fn vote_reply(term: u64, granted: bool) -> Message {
    Message::RequestVoteReply {
        term: Term(term),
        granted,
        pre_vote: false,
    }
}

fn pre_vote_reply(term: u64, granted: bool) -> Message {
    Message::RequestVoteReply {
        term: Term(term),
        granted,
        pre_vote: true,
    }
}

fn append(term: u64, leader: &str, prev: (u64, u64), entries: Vec<Entry>, commit: u64) -> Message {
    Message::AppendEntries {
        term: Term(term),
        leader: id(leader),
        prev_log_index: LogIndex(prev.0),
        prev_log_term: Term(prev.1),
        entries,
        leader_commit: LogIndex(commit),
        round: 0,
    }
}

fn append_reply(term: u64, success: bool, match_index: u64, last_log_index: u64) -> Message {
    Message::AppendEntriesReply {
        term: Term(term),
        success,
        match_index: LogIndex(match_index),
        last_log_index: LogIndex(last_log_index),
        round: 0,
    }
}

/// The outputs so far, with heartbeat rounds zeroed and without the state machine's
/// feed: these tests are about the log and elections; rounds (reads) have their own
/// tests in `reads_tests.rs`, `Output::Apply` and `LoadCommitted` in `apply_tests.rs`.
fn drain(r: &mut Raft) -> Vec<Output> {
    let mut out = r.drain_outputs();
    out.retain(|o| !matches!(o, Output::Apply { .. } | Output::LoadCommitted { .. }));
    for o in &mut out {
        if let Output::Send {
            msg: Message::AppendEntries { round, .. } | Message::AppendEntriesReply { round, .. },
            ..
        } = o
        {
            *round = 0;
        }
    }
    out
}

/// Deliver every Send of `outputs` addressed to `to`, from `from`.
fn deliver(outputs: &[Output], from: &str, to: &mut Raft, now_ms: u64) {
    for o in outputs {
        if let Output::Send { to: dest, msg } = o {
            if dest == to.id() {
                to.on_message(now_ms, id(from), msg.clone());
            }
        }
    }
}

// ----- single node ------------------------------------------------------------------

#[test]
fn bootstrap_writes_configuration_at_index_1_term_1() {
    let mut a = node("a", HardState::default(), vec![]);
    assert!(a.bootstrap("a:8300"));
    assert_eq!(
        drain(&mut a),
        vec![
            persist(1, None, vec![entry(1, 1, conf(&["a"]))], Some(hs(1, None))),
            role(Role::Follower, 1, None)
        ]
    );
    // Never twice, and never on a non-empty log.
    assert!(!a.bootstrap("a:8300"));
    let mut b = node("b", hs(3, None), vec![entry(1, 1, conf(&["b"]))]);
    assert!(!b.bootstrap("b:8300"));
    assert_eq!(drain(&mut b), vec![]);
}

fn voters(ids: &[&str]) -> Vec<(ServerId, String)> {
    ids.iter().map(|s| (id(s), format!("{s}:8300"))).collect()
}

#[test]
fn bootstrap_with_writes_the_sorted_voter_set_at_index_1_term_1() {
    let mut b = node("b", HardState::default(), vec![]);
    // Found in any order: the entry is the same on every server.
    assert!(b.bootstrap_with(voters(&["c", "a", "b"])));
    assert_eq!(
        drain(&mut b),
        vec![
            persist(
                1,
                None,
                vec![entry(1, 1, conf(&["a", "b", "c"]))],
                Some(hs(1, None))
            ),
            role(Role::Follower, 1, None)
        ]
    );
    assert_eq!(b.voters(), voters(&["a", "b", "c"]).as_slice());
    // Never twice.
    assert!(!b.bootstrap_with(voters(&["a", "b", "c"])));
    assert_eq!(drain(&mut b), vec![]);
    // Not over existing state: a log, or only a term (it voted for someone already).
    let mut c = node("c", hs(0, None), vec![entry(1, 1, conf(&["c"]))]);
    assert!(!c.bootstrap_with(voters(&["a", "b", "c"])));
    let mut d = node("d", hs(2, None), vec![]);
    assert!(!d.bootstrap_with(voters(&["a", "b", "d"])));
    // Not with nothing, nor with one id twice.
    let mut e = node("e", HardState::default(), vec![]);
    assert!(!e.bootstrap_with(vec![]));
    assert!(!e.bootstrap_with(vec![(id("e"), "e:1".into()), (id("e"), "e:2".into())]));
    assert_eq!(drain(&mut e), vec![]);
    assert_eq!(e.last_log_index(), LogIndex(0));
}

/// Three fresh servers that bootstrap with the same set elect exactly one leader, and
/// a server that bootstraps late (after the others voted) just follows.
#[test]
fn three_servers_bootstrapped_with_one_set_elect_one_leader() {
    for late in [false, true] {
        let names = ["a", "b", "c"];
        // Distinct seeds: identical election timeouts would split every vote.
        let mut nodes: Vec<Raft> = names
            .iter()
            .enumerate()
            .map(|(i, n)| {
                Raft::new(
                    config(n),
                    HardState::default(),
                    None,
                    vec![],
                    seeded(i as u64),
                    0,
                )
                .unwrap()
            })
            .collect();
        let set = voters(&names);
        let bootstrapped = if late { 2 } else { 3 };
        for n in nodes.iter_mut().take(bootstrapped) {
            assert!(n.bootstrap_with(set.clone()));
        }
        let mut inflight: Vec<(usize, ServerId, Message)> = Vec::new();
        let mut now = 0;
        for step in 0..2000u64 {
            now += 5;
            for n in nodes.iter_mut() {
                n.on_tick(now);
            }
            for _ in 0..4 {
                for i in 0..3 {
                    for out in nodes[i].drain_outputs() {
                        match out {
                            Output::Persist(p) => nodes[i].on_persisted(p.id),
                            Output::Send { to, msg } => {
                                let to = names.iter().position(|n| id(n) == to).unwrap();
                                inflight.push((to, id(names[i]), msg));
                            }
                            _ => {}
                        }
                    }
                }
                for (to, from, msg) in std::mem::take(&mut inflight) {
                    nodes[to].on_message(now, from, msg);
                }
            }
            if late && step == 100 {
                // c voted or followed already: it never bootstraps over that.
                let c = &mut nodes[2];
                assert!(c.term() > Term(0));
                assert!(!c.bootstrap_with(set.clone()));
            }
            let leaders = nodes.iter().filter(|n| n.role() == Role::Leader).count();
            assert!(leaders <= 1);
            let all_committed = nodes.iter().all(|n| n.commit_index() >= LogIndex(2));
            if leaders == 1 && all_committed && step > 100 {
                for n in &nodes {
                    assert_eq!(n.voters(), set.as_slice());
                    assert_eq!(n.entry(LogIndex(1)).unwrap().payload, conf(&names));
                }
                break;
            }
            assert!(
                step < 1999,
                "no leader with everything committed (late: {late})"
            );
        }
    }
}

#[test]
fn single_node_elects_itself_and_commits_after_persisting() {
    let mut a = node("a", HardState::default(), vec![]);
    a.bootstrap("a:8300");
    drain(&mut a);

    // A sole voter starts an election on its first tick, without waiting a timeout.
    a.on_tick(1);
    assert_eq!(
        drain(&mut a),
        vec![
            persist(2, None, vec![], Some(hs(2, Some("a")))),
            role(Role::Candidate, 2, None)
        ]
    );

    // Its own vote counts only once durable.
    a.on_persisted(1);
    assert_eq!(drain(&mut a), vec![]);
    assert_eq!(a.role(), Role::Candidate);
    a.on_persisted(2);
    assert_eq!(
        drain(&mut a),
        vec![
            persist(3, None, vec![entry(2, 2, Payload::Noop)], None),
            role(Role::Leader, 2, Some("a"))
        ]
    );
    assert_eq!(a.commit_index(), LogIndex(0));

    // The leader's own copy counts only after Persisted.
    a.on_persisted(3);
    assert_eq!(drain(&mut a), vec![committed(2)]);

    assert_eq!(a.propose(cmd("x")), Ok(LogIndex(3)));
    assert_eq!(a.propose(cmd("y")), Ok(LogIndex(4)));
    assert_eq!(
        drain(&mut a),
        vec![
            persist(4, None, vec![entry(2, 3, cmd("x"))], None),
            persist(5, None, vec![entry(2, 4, cmd("y"))], None)
        ]
    );
    // One confirmation covers every earlier id (group commit).
    a.on_persisted(5);
    assert_eq!(drain(&mut a), vec![committed(4)]);
    assert_eq!(
        a.entries(LogIndex(3), LogIndex(4)),
        &[entry(2, 3, cmd("x")), entry(2, 4, cmd("y"))]
    );
}

#[test]
fn propose_on_follower_is_not_leader() {
    let mut a = node("a", HardState::default(), vec![]);
    assert_eq!(a.propose(cmd("x")), Err(NotLeader { leader: None }));
    // Without a configuration there is nobody to elect: no election, ever.
    a.on_tick(10 * T);
    assert_eq!(drain(&mut a), vec![]);
}

#[test]
fn bogus_and_stale_persist_confirmations_are_ignored() {
    let mut a = node("a", HardState::default(), vec![]);
    a.bootstrap("a:8300");
    drain(&mut a);
    a.on_persisted(7); // never issued
    a.on_persisted(0);
    assert_eq!(drain(&mut a), vec![]);
    assert_eq!(a.durable_index(), LogIndex(0));
}

#[test]
fn restart_recovers_term_and_vote_then_commits_old_entries_with_a_noop() {
    let log = vec![
        entry(1, 1, conf(&["a"])),
        entry(2, 2, Payload::Noop),
        entry(2, 3, cmd("x")),
    ];
    let mut a = node("a", hs(2, Some("a")), log);
    assert_eq!((a.term(), a.hard_state()), (Term(2), hs(2, Some("a"))));
    assert_eq!(
        (a.last_log_index(), a.durable_index(), a.commit_index()),
        (LogIndex(3), LogIndex(3), LogIndex(0))
    );

    a.on_tick(1);
    assert_eq!(
        drain(&mut a),
        vec![
            persist(1, None, vec![], Some(hs(3, Some("a")))),
            role(Role::Candidate, 3, None)
        ]
    );
    a.on_persisted(1);
    assert_eq!(
        drain(&mut a),
        vec![
            persist(2, None, vec![entry(3, 4, Payload::Noop)], None),
            role(Role::Leader, 3, Some("a"))
        ]
    );
    // Entry 3 (term 2) is only committed together with the current term's no-op.
    a.on_persisted(2);
    assert_eq!(drain(&mut a), vec![committed(4)]);
}

#[test]
fn restart_never_runs_in_a_term_older_than_its_log() {
    // The log write landed, the hard-state write did not (crash in between).
    let a = node(
        "a",
        hs(1, None),
        vec![entry(1, 1, conf(&["a"])), entry(4, 2, Payload::Noop)],
    );
    assert_eq!(a.hard_state(), hs(4, None));
}

#[test]
fn recovered_log_with_gaps_is_refused() {
    let r = Raft::new(
        config("a"),
        hs(1, None),
        None,
        vec![entry(1, 2, Payload::Noop)],
        seeded(1),
        0,
    );
    assert!(r.is_err());
}

// ----- three nodes ------------------------------------------------------------------

/// Tick `n` past its timeout and hand it `voter`'s pre-vote and vote; its own vote still
/// has to be persisted (persist id 1) before it leads.
fn campaign(n: &mut Raft, voter: &str) {
    let next = n.term().0 + 1;
    n.on_tick(2 * T);
    drain(n);
    n.on_message(2 * T, id(voter), pre_vote_reply(next, true));
    drain(n);
    n.on_message(2 * T, id(voter), vote_reply(next, true));
}

fn three() -> (Raft, Raft, Raft) {
    let log = || vec![entry(1, 1, conf(&["a", "b", "c"]))];
    (
        node("a", hs(1, None), log()),
        node("b", hs(1, None), log()),
        node("c", hs(1, None), log()),
    )
}

#[test]
fn three_nodes_elect_and_replicate_with_durable_acknowledgements() {
    let (mut a, mut b, mut c) = three();

    // Followers wait a full randomized timeout.
    a.on_tick(T - 1);
    assert_eq!(drain(&mut a), vec![]);
    a.on_tick(2 * T);
    let out = drain(&mut a);
    // First a pre-vote: no term change, nothing to persist.
    assert_eq!(
        out,
        vec![
            send("b", pre_vote(2, "a", 1, 1)),
            send("c", pre_vote(2, "a", 1, 1))
        ]
    );
    deliver(&out, "a", &mut b, 2 * T);
    let b_out = drain(&mut b);
    assert_eq!(b_out, vec![send("a", pre_vote_reply(2, true))]);
    assert_eq!(b.hard_state(), hs(1, None));

    // A quorum of pre-votes (b and a itself): now the real election.
    deliver(&b_out, "b", &mut a, 2 * T);
    let out = drain(&mut a);
    assert_eq!(
        out,
        vec![
            persist(1, None, vec![], Some(hs(2, Some("a")))),
            send("b", request_vote(2, "a", 1, 1)),
            send("c", request_vote(2, "a", 1, 1)),
            role(Role::Candidate, 2, None),
        ]
    );

    // b grants, but its reply waits until the vote is durable.
    deliver(&out, "a", &mut b, 2 * T);
    assert_eq!(
        drain(&mut b),
        vec![
            persist(1, None, vec![], Some(hs(2, Some("a")))),
            role(Role::Follower, 2, None)
        ]
    );
    b.on_persisted(1);
    let b_out = drain(&mut b);
    assert_eq!(b_out, vec![send("a", vote_reply(2, true))]);

    // One granted vote is not a quorum until a's own vote is durable too.
    deliver(&b_out, "b", &mut a, 2 * T);
    assert_eq!(drain(&mut a), vec![]);
    a.on_persisted(1);
    let out = drain(&mut a);
    let noop = entry(2, 2, Payload::Noop);
    assert_eq!(
        out,
        vec![
            send("b", append(2, "a", (1, 1), vec![noop.clone()], 0)),
            send("c", append(2, "a", (1, 1), vec![noop.clone()], 0)),
            persist(2, None, vec![noop.clone()], None),
            role(Role::Leader, 2, Some("a")),
        ]
    );

    // b appends; its success reply waits for its disk.
    deliver(&out, "a", &mut b, 2 * T);
    assert_eq!(
        drain(&mut b),
        vec![
            persist(2, None, vec![noop.clone()], None),
            role(Role::Follower, 2, Some("a"))
        ]
    );
    b.on_persisted(2);
    let b_out = drain(&mut b);
    assert_eq!(b_out, vec![send("a", append_reply(2, true, 2, 2))]);

    // b has it durably, a not yet: no quorum of durable copies, no commit.
    deliver(&b_out, "b", &mut a, 2 * T);
    assert_eq!(drain(&mut a), vec![]);
    a.on_persisted(2);
    assert_eq!(drain(&mut a), vec![committed(2)]);

    // A proposal goes to the leader's disk and to every follower at once, pipelined
    // behind what is in flight (c has not answered the no-op yet); the disk write is
    // handed over first (see `propose`).
    assert_eq!(a.propose(cmd("x")), Ok(LogIndex(3)));
    let x = entry(2, 3, cmd("x"));
    let out = drain(&mut a);
    assert_eq!(
        out,
        vec![
            persist(3, None, vec![x.clone()], None),
            send("b", append(2, "a", (2, 2), vec![x.clone()], 2)),
            send("c", append(2, "a", (2, 2), vec![x.clone()], 2)),
        ]
    );

    // c never got the no-op: the pipelined batch does not fit its log, and its reply
    // says where its log ends; the leader backs up and sends both.
    deliver(&out, "a", &mut c, 2 * T);
    let c_out = drain(&mut c);
    assert_eq!(
        c_out,
        vec![
            send("a", append_reply(2, false, 0, 1)),
            persist(1, None, vec![], Some(hs(2, None))),
            role(Role::Follower, 2, Some("a")),
        ]
    );
    deliver(&c_out, "c", &mut a, 2 * T + 1);
    let out = drain(&mut a);
    assert_eq!(
        out,
        vec![send(
            "c",
            append(2, "a", (1, 1), vec![noop.clone(), x.clone()], 2)
        )]
    );
    deliver(&out, "a", &mut c, 2 * T + 2);
    assert_eq!(
        drain(&mut c),
        vec![
            persist(2, None, vec![noop.clone(), x.clone()], None),
            committed(2),
        ]
    );
    c.on_persisted(2);
    let c_out = drain(&mut c);
    assert_eq!(c_out, vec![send("a", append_reply(2, true, 3, 3))]);
    deliver(&c_out, "c", &mut a, 2 * T + 3);
    // Quorum = a (durable? not yet) + c: a's own copy of 3 is not durable, so 3 waits.
    assert_eq!(drain(&mut a), vec![]);
    a.on_persisted(3);
    assert_eq!(drain(&mut a), vec![committed(3)]);

    // Heartbeats carry the commit index and never wait for a disk: each is sent at
    // what its follower acknowledged (b still has x in flight).
    a.on_tick(2 * T + 10);
    assert_eq!(
        drain(&mut a),
        vec![
            send("b", append(2, "a", (2, 2), vec![], 3)),
            send("c", append(2, "a", (3, 2), vec![], 3)),
        ]
    );
}

#[test]
fn a_batch_unanswered_for_an_election_timeout_is_sent_again() {
    let (mut a, _, _) = three();
    campaign(&mut a, "b");
    a.on_persisted(1);
    a.on_persisted(2);
    drain(&mut a);
    let noop = entry(2, 2, Payload::Noop);
    // Nothing from b or c for a while: only heartbeats (at index 1) go out.
    a.on_message(2 * T + 1, id("b"), append_reply(2, true, 1, 1));
    a.on_message(2 * T + 1, id("c"), append_reply(2, true, 1, 1));
    drain(&mut a);
    a.on_tick(2 * T + 10);
    assert_eq!(
        drain(&mut a),
        vec![
            send("b", append(2, "a", (1, 1), vec![], 0)),
            send("c", append(2, "a", (1, 1), vec![], 0)),
        ]
    );
    a.on_message(2 * T + 11, id("b"), append_reply(2, true, 1, 1));
    a.on_message(2 * T + 11, id("c"), append_reply(2, true, 1, 1));
    drain(&mut a);
    // An election timeout after it was sent, the no-op batch goes again.
    a.on_tick(3 * T);
    let out = drain(&mut a);
    assert!(
        out.contains(&send("b", append(2, "a", (1, 1), vec![noop.clone()], 0)))
            && out.contains(&send("c", append(2, "a", (1, 1), vec![noop], 0))),
        "{out:?}"
    );
}

#[test]
fn follower_truncates_a_conflicting_suffix() {
    // b holds two entries of term 2 that never committed; the term-3 leader has others.
    let log = vec![
        entry(1, 1, conf(&["a", "b", "c"])),
        entry(2, 2, cmd("old2")),
        entry(2, 3, cmd("old3")),
    ];
    let mut b = node("b", hs(2, None), log);
    let new2 = entry(3, 2, cmd("new2"));
    b.on_message(0, id("a"), append(3, "a", (1, 1), vec![new2.clone()], 1));
    assert_eq!(
        drain(&mut b),
        vec![
            // The disk write goes before the apply (see `on_append_entries`).
            persist(1, Some(2), vec![new2.clone()], Some(hs(3, None))),
            committed(1),
            role(Role::Follower, 3, Some("a")),
        ]
    );
    assert_eq!(
        (b.last_log_index(), b.last_log_term()),
        (LogIndex(2), Term(3))
    );
    assert_eq!(b.durable_index(), LogIndex(1));
    b.on_persisted(1);
    assert_eq!(drain(&mut b), vec![send("a", append_reply(3, true, 2, 2))]);
    assert_eq!(b.durable_index(), LogIndex(2));
}

#[test]
fn follower_rejects_a_log_mismatch_with_a_hint_and_leader_backs_up() {
    let mut b = node("b", hs(2, None), vec![entry(1, 1, conf(&["a", "b", "c"]))]);
    b.on_message(0, id("a"), append(2, "a", (5, 2), vec![], 0));
    assert_eq!(
        drain(&mut b),
        vec![
            send("a", append_reply(2, false, 0, 1)),
            role(Role::Follower, 2, Some("a"))
        ]
    );

    // The leader side: a leader whose next index for b is too far moves it to b's hint.
    let log = vec![
        entry(1, 1, conf(&["a", "b", "c"])),
        entry(2, 2, cmd("p")),
        entry(2, 3, cmd("q")),
        entry(2, 4, cmd("r")),
    ];
    let mut a = node("a", hs(2, None), log);
    campaign(&mut a, "b");
    a.on_persisted(1);
    drain(&mut a);
    assert_eq!(a.role(), Role::Leader);
    a.on_message(2 * T, id("b"), append_reply(3, false, 0, 1));
    let noop = entry(3, 5, Payload::Noop);
    assert_eq!(
        drain(&mut a),
        vec![send(
            "b",
            append(
                3,
                "a",
                (1, 1),
                vec![
                    entry(2, 2, cmd("p")),
                    entry(2, 3, cmd("q")),
                    entry(2, 4, cmd("r")),
                    noop
                ],
                0
            )
        )]
    );
}

#[test]
fn heartbeat_reply_never_waits_and_vouches_only_for_durable_entries() {
    let mut b = node("b", hs(2, None), vec![entry(1, 1, conf(&["a", "b", "c"]))]);
    let e2 = entry(2, 2, cmd("x"));
    b.on_message(0, id("a"), append(2, "a", (1, 1), vec![e2.clone()], 0));
    assert_eq!(
        drain(&mut b),
        vec![
            persist(1, None, vec![e2], None),
            role(Role::Follower, 2, Some("a"))
        ]
    );
    // Entry 2 is in memory, not on disk: the heartbeat reply claims only index 1.
    b.on_message(5, id("a"), append(2, "a", (2, 2), vec![], 0));
    assert_eq!(drain(&mut b), vec![send("a", append_reply(2, true, 1, 2))]);
    // The deferred reply to the first append leaves once the entry is durable.
    b.on_persisted(1);
    assert_eq!(drain(&mut b), vec![send("a", append_reply(2, true, 2, 2))]);
}

/// A node whose replies ride its persists (the shell's setting).
fn riding_node(s: &str, hard_state: HardState, entries: Vec<Entry>) -> Raft {
    let cfg = RaftConfig {
        replies_ride_persists: true,
        ..config(s)
    };
    Raft::new(cfg, hard_state, None, entries, seeded(7), 0).unwrap()
}

fn riding(p: Output, then_send: Vec<Output>) -> Output {
    let Output::Persist(mut req) = p else {
        panic!("not a persist: {p:?}")
    };
    req.then_send = then_send
        .into_iter()
        .map(|o| match o {
            Output::Send { to, msg } => (to, msg),
            other => panic!("not a send: {other:?}"),
        })
        .collect();
    Output::Persist(req)
}

#[test]
fn a_reply_rides_the_persist_that_makes_it_true_and_leaves_only_once() {
    let mut b = riding_node("b", hs(2, None), vec![entry(1, 1, conf(&["a", "b", "c"]))]);
    let e2 = entry(2, 2, cmd("x"));
    b.on_message(0, id("a"), append(2, "a", (1, 1), vec![e2.clone()], 0));
    assert_eq!(
        drain(&mut b),
        vec![
            riding(
                persist(1, None, vec![e2], None),
                vec![send("a", append_reply(2, true, 2, 2))]
            ),
            role(Role::Follower, 2, Some("a"))
        ]
    );
    // The heartbeat reply still vouches only for what is durable, at once.
    b.on_message(5, id("a"), append(2, "a", (2, 2), vec![], 0));
    assert_eq!(drain(&mut b), vec![send("a", append_reply(2, true, 1, 2))]);
    // The shell sent the riding reply; the core does not send it again.
    b.on_persisted(1);
    assert_eq!(drain(&mut b), vec![]);
}

#[test]
fn a_granted_vote_rides_the_persist_of_the_vote() {
    let mut b = riding_node(
        "b",
        hs(2, None),
        vec![
            entry(1, 1, conf(&["a", "b", "c"])),
            entry(2, 2, Payload::Noop),
        ],
    );
    b.on_message(T, id("a"), request_vote(3, "a", 2, 2));
    assert_eq!(
        drain(&mut b),
        vec![
            riding(
                persist(1, None, vec![], Some(hs(3, Some("a")))),
                vec![send("a", vote_reply(3, true))]
            ),
            role(Role::Follower, 3, None)
        ]
    );
    b.on_persisted(1);
    assert_eq!(drain(&mut b), vec![]);
}

#[test]
fn a_reply_whose_persist_has_left_waits_in_the_core_and_keeps_its_order() {
    let mut b = riding_node("b", hs(2, None), vec![entry(1, 1, conf(&["a", "b", "c"]))]);
    b.on_message(T, id("a"), request_vote(3, "a", 1, 1));
    let first = drain(&mut b);
    assert!(matches!(&first[0], Output::Persist(p) if p.then_send.len() == 1));
    // The same candidate asks again before the vote is durable: the persist has left
    // the core, so this reply waits in the core and leaves once the vote is durable,
    // after the one the disk sends.
    b.on_message(T, id("a"), request_vote(3, "a", 1, 1));
    assert_eq!(drain(&mut b), vec![]);
    b.on_persisted(1);
    assert_eq!(drain(&mut b), vec![send("a", vote_reply(3, true))]);
}

#[test]
fn a_follower_whose_replies_rode_does_not_wait_on_its_persists() {
    let mut b = riding_node("b", hs(2, None), vec![entry(1, 1, conf(&["a", "b", "c"]))]);
    b.on_message(
        0,
        id("a"),
        append(2, "a", (1, 1), vec![entry(2, 2, cmd("x"))], 0),
    );
    drain(&mut b);
    assert!(
        !b.waits_on_persist(),
        "the reply rode: its confirmation may come late"
    );
    b.on_persisted(1);
    assert_eq!(b.durable_index(), LogIndex(2));

    // A reply that waits in the core (its persist had left) wants the confirmation.
    let mut c = riding_node("c", hs(2, None), vec![entry(1, 1, conf(&["a", "b", "c"]))]);
    c.on_message(T, id("a"), request_vote(3, "a", 1, 1));
    drain(&mut c);
    assert!(!c.waits_on_persist());
    c.on_message(T, id("a"), request_vote(3, "a", 1, 1));
    assert_eq!(drain(&mut c), vec![]);
    assert!(c.waits_on_persist());
    c.on_persisted(1);
    drain(&mut c);
    assert!(!c.waits_on_persist());
}

#[test]
fn candidates_and_leaders_wait_on_their_persists() {
    let mut a = node("a", HardState::default(), vec![]);
    a.bootstrap("a:8300");
    drain(&mut a);
    a.on_tick(1);
    drain(&mut a);
    assert_eq!(a.role(), Role::Candidate);
    assert!(a.waits_on_persist(), "its own vote counts once durable");
    a.on_persisted(2);
    drain(&mut a);
    assert_eq!(a.role(), Role::Leader);
    assert!(
        a.waits_on_persist(),
        "its own copy counts toward the commit"
    );
}

#[test]
fn stale_term_messages_are_refused_and_change_nothing() {
    let mut b = node("b", hs(5, None), vec![entry(1, 1, conf(&["a", "b", "c"]))]);
    b.on_message(
        0,
        id("a"),
        append(4, "a", (1, 1), vec![entry(4, 2, cmd("x"))], 1),
    );
    assert_eq!(drain(&mut b), vec![send("a", append_reply(5, false, 0, 1))]);
    b.on_message(0, id("c"), request_vote(4, "c", 9, 4));
    assert_eq!(drain(&mut b), vec![send("c", vote_reply(5, false))]);
    b.on_message(0, id("c"), vote_reply(4, true));
    b.on_message(0, id("c"), append_reply(4, true, 1, 1));
    assert_eq!(drain(&mut b), vec![]);
    assert_eq!(
        (b.term(), b.last_log_index(), b.commit_index(), b.leader()),
        (Term(5), LogIndex(1), LogIndex(0), None)
    );
}

#[test]
fn vote_is_refused_to_a_candidate_with_an_older_log_and_given_once_per_term() {
    let mut b = node(
        "b",
        hs(2, None),
        vec![
            entry(1, 1, conf(&["a", "b", "c"])),
            entry(2, 2, Payload::Noop),
        ],
    );
    // (A restarted server refuses votes for T: it may have heard from a leader.)
    b.on_message(T, id("c"), request_vote(3, "c", 5, 1));
    assert_eq!(
        drain(&mut b),
        // A refusal vouches for nothing, so it need not wait for the disk.
        vec![
            send("c", vote_reply(3, false)),
            persist(1, None, vec![], Some(hs(3, None))),
            role(Role::Follower, 3, None)
        ]
    );
    b.on_message(T, id("a"), request_vote(3, "a", 2, 2));
    assert_eq!(
        drain(&mut b),
        vec![persist(2, None, vec![], Some(hs(3, Some("a"))))]
    );
    // Another candidate in the same term: refused even though its log is fine.
    b.on_message(T, id("c"), request_vote(3, "c", 2, 2));
    assert_eq!(drain(&mut b), vec![send("c", vote_reply(3, false))]);
    b.on_persisted(2);
    assert_eq!(drain(&mut b), vec![send("a", vote_reply(3, true))]);
}

#[test]
fn follower_with_a_live_leader_ignores_disruptive_candidates() {
    let mut b = node("b", hs(2, None), vec![entry(1, 1, conf(&["a", "b", "c"]))]);
    b.on_message(0, id("a"), append(2, "a", (1, 1), vec![], 0));
    drain(&mut b);
    b.on_message(T / 2, id("c"), request_vote(3, "c", 1, 1));
    assert_eq!(drain(&mut b), vec![send("c", vote_reply(2, false))]);
    assert_eq!(b.term(), Term(2));
}

#[test]
fn leader_steps_down_on_a_higher_term_and_without_a_quorum() {
    let (mut a, _, _) = three();
    campaign(&mut a, "b");
    a.on_persisted(1);
    drain(&mut a);
    assert_eq!(a.role(), Role::Leader);

    // Nobody answers for an election timeout: a stops claiming leadership.
    a.on_tick(3 * T - 1);
    drain(&mut a);
    assert_eq!(a.role(), Role::Leader, "b was heard from at 2T");
    a.on_tick(3 * T);
    assert_eq!(drain(&mut a), vec![role(Role::Follower, 2, None)]);
    assert_eq!(a.propose(cmd("x")), Err(NotLeader { leader: None }));
    // Its last contact with a leader is its own step-down (stale reads age from there).
    assert_eq!(a.last_leader_contact_ms(), Some(3 * T));

    // A higher term in a reply demotes at once.
    let (mut a2, _, _) = three();
    a2.on_tick(2 * T);
    drain(&mut a2);
    a2.on_message(2 * T, id("c"), pre_vote_reply(7, false));
    assert_eq!(
        drain(&mut a2),
        vec![
            persist(1, None, vec![], Some(hs(7, None))),
            role(Role::Follower, 7, None)
        ]
    );
}

#[test]
fn leader_does_not_commit_an_older_term_entry_by_counting_replicas() {
    // a leads term 3; index 2 (term 2) is on a and b, but only the term-3 no-op at
    // index 3 may commit it.
    let log = vec![entry(1, 1, conf(&["a", "b", "c"])), entry(2, 2, cmd("old"))];
    let mut a = node("a", hs(2, None), log);
    campaign(&mut a, "b");
    a.on_persisted(1);
    drain(&mut a);
    a.on_persisted(2); // the no-op is durable on a
                       // b's heartbeat reply: it holds index 2 (an older term's entry); the no-op is
                       // still on its way to it, so nothing is sent again and nothing commits.
    a.on_message(2 * T, id("b"), append_reply(3, true, 2, 2));
    assert_eq!(drain(&mut a), vec![]);
    assert_eq!(a.commit_index(), LogIndex(0));
    a.on_message(2 * T, id("b"), append_reply(3, true, 3, 3));
    assert_eq!(drain(&mut a), vec![committed(3)]);
}

#[test]
fn malformed_append_entries_is_dropped() {
    let mut b = node("b", hs(2, None), vec![entry(1, 1, conf(&["a", "b", "c"]))]);
    // Entries that do not continue prev_log_index.
    b.on_message(
        0,
        id("a"),
        append(2, "a", (1, 1), vec![entry(2, 5, cmd("x"))], 0),
    );
    // Claims to be from a leader other than the sender.
    b.on_message(0, id("c"), append(2, "a", (1, 1), vec![], 0));
    assert_eq!(drain(&mut b), vec![]);
    assert_eq!(b.last_log_index(), LogIndex(1));
}

#[test]
fn timings_scale_with_the_raft_multiplier() {
    let c1 = RaftConfig::with_multiplier(id("a"), 1);
    assert_eq!(
        (c1.election_timeout_ms, c1.heartbeat_interval_ms),
        (200, 20)
    );
    let c5 = RaftConfig::with_multiplier(id("a"), 5);
    assert_eq!(
        (c5.election_timeout_ms, c5.heartbeat_interval_ms),
        (1000, 100)
    );
    let c0 = RaftConfig::with_multiplier(id("a"), 0);
    assert_eq!(c0.election_timeout_ms, 200);
}

#[test]
fn append_entries_near_the_index_limit_does_not_overflow() {
    let mut b = node("b", hs(2, None), vec![entry(1, 1, conf(&["a", "b", "c"]))]);
    b.on_message(
        0,
        id("a"),
        append(2, "a", (u64::MAX, 2), vec![entry(2, 0, cmd("x"))], u64::MAX),
    );
    assert_eq!(drain(&mut b), vec![]);
    b.on_message(0, id("a"), append(2, "a", (u64::MAX, 2), vec![], u64::MAX));
    assert_eq!(
        drain(&mut b),
        vec![
            send("a", append_reply(2, false, 0, 1)),
            role(Role::Follower, 2, Some("a"))
        ]
    );
    assert_eq!(b.commit_index(), LogIndex(0));
}

#[test]
fn pre_vote_changes_nothing_and_is_refused_while_a_leader_is_alive() {
    let mut b = node(
        "b",
        hs(2, None),
        vec![
            entry(1, 1, conf(&["a", "b", "c"])),
            entry(2, 2, Payload::Noop),
        ],
    );
    // Older log: refused, with our term.
    b.on_message(T, id("c"), pre_vote(3, "c", 1, 1));
    assert_eq!(drain(&mut b), vec![send("c", pre_vote_reply(2, false))]);
    // Up-to-date log, no leader: granted, yet neither term nor vote moves.
    b.on_message(T, id("c"), pre_vote(3, "c", 2, 2));
    assert_eq!(drain(&mut b), vec![send("c", pre_vote_reply(3, true))]);
    assert_eq!(b.hard_state(), hs(2, None));
    // A live leader: refused.
    b.on_message(T + 1, id("a"), append(2, "a", (2, 2), vec![], 0));
    drain(&mut b);
    b.on_message(T + 2, id("c"), pre_vote(3, "c", 2, 2));
    assert_eq!(drain(&mut b), vec![send("c", pre_vote_reply(2, false))]);
}

#[test]
fn a_partitioned_server_does_not_inflate_its_term() {
    let (mut a, _, _) = three();
    for round in 1..=5 {
        a.on_tick(round * 2 * T);
        assert_eq!(
            drain(&mut a),
            vec![
                send("b", pre_vote(2, "a", 1, 1)),
                send("c", pre_vote(2, "a", 1, 1))
            ]
        );
    }
    assert_eq!((a.term(), a.role()), (Term(1), Role::Follower));
    // A late pre-vote for a term it no longer seeks is ignored.
    a.on_message(10 * T, id("b"), pre_vote_reply(5, true));
    assert_eq!(drain(&mut a), vec![]);
}

#[test]
fn a_hostile_maximal_term_does_not_panic() {
    let mut b = node("b", hs(2, None), vec![entry(1, 1, conf(&["a", "b", "c"]))]);
    b.on_message(T, id("c"), request_vote(u64::MAX, "c", 0, 0));
    drain(&mut b);
    assert_eq!(b.term(), Term(u64::MAX));
    b.on_tick(10 * T);
    b.on_message(10 * T, id("c"), pre_vote_reply(u64::MAX, true));
    b.on_tick(20 * T);
    drain(&mut b);
    assert_eq!(b.term(), Term(u64::MAX));
}

#[path = "snapshot_tests.rs"]
mod snapshot_tests;

#[path = "cache_tests.rs"]
mod cache_tests;

#[path = "reads_tests.rs"]
mod reads_tests;

#[path = "apply_tests.rs"]
mod apply_tests;

#[test]
fn an_append_is_bounded_by_payload_bytes_but_always_carries_one_entry() {
    let (mut a, _, _) = three();
    campaign(&mut a, "b");
    a.on_persisted(1);
    a.on_persisted(2);
    a.drain_outputs();
    let big = |b: u8| Payload::Command(vec![b; 40 * 1024]);
    for b in 0..4 {
        a.propose(big(b)).unwrap();
    }
    a.drain_outputs();
    // b acknowledges the no-op: the next append to it holds what fits in 64 KiB.
    a.on_message(2 * T + 1, id("b"), append_reply(2, true, 2, 2));
    let sizes: Vec<usize> = drain(&mut a)
        .iter()
        .filter_map(|o| match o {
            Output::Send {
                msg: Message::AppendEntries { entries, .. },
                ..
            } => Some(entries.len()),
            _ => None,
        })
        .collect();
    assert_eq!(
        sizes,
        vec![1],
        "40 KiB each: one fits in 64 KiB, two do not"
    );
    // A single entry larger than the limit still goes (alone).
    assert_eq!(bounded_batch_len(vec![big(9), big(8)], 1024), 1);
    assert_eq!(bounded_batch_len(vec![], 1024), 0);
}

fn bounded_batch_len(payloads: Vec<Payload>, max: usize) -> usize {
    let entries: Vec<Entry> = payloads
        .into_iter()
        .enumerate()
        .map(|(i, p)| entry(1, i as u64 + 1, p))
        .collect();
    super::core::bounded_batch(&entries, max).len()
}

#[path = "membership_tests.rs"]
mod membership_tests;
