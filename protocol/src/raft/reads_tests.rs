//! Exact-output tests of linearizable reads in the Raft core: ReadIndex rounds, the
//! lease, and the vote blackout after a restart that the lease relies on.

use super::*;

fn reply_in_round(term: u64, match_index: u64, round: u64) -> Message {
    Message::AppendEntriesReply {
        term: Term(term),
        success: true,
        match_index: LogIndex(match_index),
        last_log_index: LogIndex(match_index),
        round,
    }
}

fn ready(id: u64, index: u64) -> Output {
    Output::ReadReady {
        id,
        index: LogIndex(index),
    }
}

/// `a` leads term 2 of a three-server cluster (its no-op at index 2, durable), having
/// just opened round 1 at time 2T; nobody has answered yet.
fn leader() -> Raft {
    let (mut a, _, _) = three();
    campaign(&mut a, "b");
    a.on_persisted(1);
    a.on_persisted(2);
    a.drain_outputs();
    assert_eq!(a.role(), Role::Leader);
    a
}

fn rounds_sent(out: &[Output]) -> Vec<u64> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send {
                msg: Message::AppendEntries { round, .. },
                ..
            } => Some(*round),
            _ => None,
        })
        .collect()
}

#[test]
fn a_read_waits_for_a_quorum_to_acknowledge_a_round_opened_after_it() {
    let mut a = leader();
    // An acknowledgement of the round sent BEFORE the read does not confirm it.
    assert_eq!(a.read_index(7), Ok(()));
    assert_eq!(rounds_sent(&a.drain_outputs()), Vec::<u64>::new());
    a.on_message(2 * T + 1, id("b"), reply_in_round(2, 2, 1));
    let out = a.drain_outputs();
    assert!(out.contains(&committed(2)));
    assert!(!out.iter().any(|o| matches!(o, Output::ReadReady { .. })));
    // Round 1 is confirmed, so round 2 opens at once for the read.
    assert_eq!(rounds_sent(&out), vec![2, 2]);
    // A second read arriving now waits for round 3, not 2.
    assert_eq!(a.read_index(8), Ok(()));
    assert_eq!(a.drain_outputs(), vec![]);
    a.on_message(2 * T + 2, id("c"), reply_in_round(2, 2, 2));
    let out = a.drain_outputs();
    // The read sees the no-op (or the commit index, whichever is higher).
    assert_eq!(out[0], ready(7, 2));
    assert_eq!(rounds_sent(&out), vec![3, 3], "the next batch's round");
    a.on_message(2 * T + 3, id("b"), reply_in_round(2, 2, 3));
    assert_eq!(a.drain_outputs(), vec![ready(8, 2)]);
}

#[test]
fn a_failed_append_still_confirms_leadership() {
    let mut a = leader();
    a.read_index(1).unwrap();
    a.on_message(2 * T + 1, id("b"), reply_in_round(2, 2, 1));
    a.drain_outputs();
    let mismatch = Message::AppendEntriesReply {
        term: Term(2),
        success: false,
        match_index: LogIndex(0),
        last_log_index: LogIndex(0),
        round: 2,
    };
    a.on_message(2 * T + 2, id("c"), mismatch);
    assert_eq!(a.drain_outputs()[0], ready(1, 2));
}

#[test]
fn losing_leadership_fails_waiting_reads_and_a_follower_refuses_reads() {
    let mut a = leader();
    a.read_index(1).unwrap();
    a.read_index(2).unwrap();
    a.drain_outputs();
    a.on_message(2 * T + 1, id("b"), append_reply(3, false, 0, 0));
    let out = a.drain_outputs();
    assert_eq!(
        &out[..2],
        &[Output::ReadFailed { id: 1 }, Output::ReadFailed { id: 2 }]
    );
    assert_eq!(a.read_index(3), Err(NotLeader { leader: None }));
    assert_eq!(a.lease_expiry_ms(), None);
}

#[test]
fn the_lease_runs_nine_tenths_of_an_election_timeout_from_the_acknowledged_send() {
    let mut a = leader();
    assert_eq!(a.lease_expiry_ms(), None, "no follower answered yet");
    a.on_message(2 * T + 30, id("c"), reply_in_round(2, 2, 1));
    // Round 1 went out at 2T: the lease ends at 2T + 0.9T, however late the reply came.
    assert_eq!(a.lease_expiry_ms(), Some(2 * T + T / 10 * 9));
    // A heartbeat round later, acknowledged, moves it on.
    a.on_tick(2 * T + 40);
    let out = a.drain_outputs();
    assert_eq!(rounds_sent(&out), vec![2, 2]);
    a.on_message(2 * T + 41, id("b"), reply_in_round(2, 2, 2));
    assert_eq!(a.lease_expiry_ms(), Some(2 * T + 40 + T / 10 * 9));
}

#[test]
fn a_sole_voter_confirms_reads_at_once_and_always_holds_the_lease() {
    let mut a = node("a", hs(1, None), vec![entry(1, 1, conf(&["a"]))]);
    a.on_tick(1);
    a.on_persisted(1);
    a.on_persisted(2);
    a.drain_outputs();
    assert_eq!(a.role(), Role::Leader);
    assert_eq!(a.lease_expiry_ms(), Some(u64::MAX));
    a.read_index(5).unwrap();
    assert_eq!(a.drain_outputs(), vec![ready(5, 2)]);
}

#[test]
fn a_restarted_server_refuses_votes_for_an_election_timeout() {
    // It may have acknowledged a leader's heartbeat just before it crashed: granting a
    // vote at once could elect a second leader while the first one's lease runs.
    let log = vec![entry(1, 1, conf(&["a", "b", "c"]))];
    let mut b = Raft::new(config("b"), hs(1, None), None, log, seeded(7), 1000).unwrap();
    b.on_message(1000 + T - 1, id("c"), pre_vote(2, "c", 1, 1));
    assert_eq!(b.drain_outputs(), vec![send("c", pre_vote_reply(1, false))]);
    b.on_message(1000 + T, id("c"), pre_vote(2, "c", 1, 1));
    assert_eq!(b.drain_outputs(), vec![send("c", pre_vote_reply(2, true))]);
}
