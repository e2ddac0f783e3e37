//! Exact-output tests of snapshots and compaction in the Raft core.

use super::*;

fn meta(index: u64, term: u64, ids: &[&str]) -> SnapshotMeta {
    SnapshotMeta {
        index: LogIndex(index),
        term: Term(term),
        configuration: ids.iter().map(|s| (id(s), format!("{s}:8300"))).collect(),
        non_voters: Vec::new(),
    }
}

fn from_snapshot(s: &str, hard_state: HardState, snap: SnapshotMeta, entries: Vec<Entry>) -> Raft {
    Raft::new(config(s), hard_state, Some(snap), entries, seeded(7), 0).unwrap()
}

fn install(term: u64, leader: &str, snap: SnapshotMeta, data: &[u8]) -> Message {
    Message::InstallSnapshot {
        term: Term(term),
        leader: id(leader),
        meta: snap,
        data: data.to_vec(),
    }
}

fn install_reply(term: u64, match_index: u64) -> Message {
    Message::InstallSnapshotReply {
        term: Term(term),
        match_index: LogIndex(match_index),
    }
}

fn reset_persist(
    id: u64,
    after: u64,
    entries: Vec<Entry>,
    hard_state: Option<HardState>,
) -> Output {
    Output::Persist(PersistRequest {
        id,
        reset_after: Some(LogIndex(after)),
        truncate_from: None,
        entries,
        hard_state,
        then_send: Vec::new(),
    })
}

/// A single-server leader in term 2 with x and y committed at 3 and 4.
fn single_leader_with_two_commands() -> Raft {
    let mut a = node("a", HardState::default(), vec![]);
    a.bootstrap("a:8300");
    a.on_tick(1);
    a.on_persisted(2);
    a.propose(cmd("x")).unwrap();
    a.propose(cmd("y")).unwrap();
    a.on_persisted(5);
    drain(&mut a);
    assert_eq!(a.commit_index(), LogIndex(4));
    a
}

#[test]
fn compaction_only_forgets_committed_durable_entries_and_keeps_the_configuration() {
    let mut a = single_leader_with_two_commands();
    a.propose(cmd("z")).unwrap(); // index 5, neither durable nor committed
    assert!(!a.compact(LogIndex(5)), "beyond the commit index");
    assert!(a.compact(LogIndex(3)));
    assert_eq!(
        drain(&mut a),
        vec![persist(6, None, vec![entry(2, 5, cmd("z"))], None)]
    );
    assert_eq!(a.log_base(), &meta(3, 2, &["a"]));
    assert_eq!(a.first_log_index(), LogIndex(4));
    assert_eq!(a.log_len(), 2);
    assert_eq!(a.term_at(LogIndex(3)), Some(Term(2)));
    assert_eq!(a.term_at(LogIndex(2)), None);
    assert_eq!(a.entry(LogIndex(3)), None);
    assert_eq!(
        a.entries(LogIndex(1), LogIndex(5)),
        &[entry(2, 4, cmd("y")), entry(2, 5, cmd("z"))]
    );
    assert_eq!(a.voters(), &[(id("a"), "a:8300".to_string())]);
    assert_eq!(
        a.configuration_at(LogIndex(4)),
        meta(0, 0, &["a"]).membership()
    );
    assert!(!a.compact(LogIndex(3)), "already compacted");
    assert!(!a.compact(LogIndex(2)), "below the base");
    // The log goes on: z commits once durable.
    a.on_persisted(6);
    assert_eq!(drain(&mut a), vec![committed(5)]);
}

#[test]
fn restart_from_a_snapshot_drops_covered_entries_and_starts_committed() {
    let entries = vec![
        entry(2, 9, cmd("i")),
        entry(2, 10, cmd("j")),
        entry(3, 11, cmd("k")),
    ];
    let mut b = from_snapshot("b", hs(3, None), meta(10, 2, &["a", "b", "c"]), entries);
    assert_eq!(b.commit_index(), LogIndex(10));
    assert_eq!(b.first_log_index(), LogIndex(11));
    assert_eq!(
        (b.last_log_index(), b.last_log_term()),
        (LogIndex(11), Term(3))
    );
    assert_eq!(b.durable_index(), LogIndex(11));
    assert_eq!(b.voters().len(), 3);
    b.on_tick(1);
    assert_eq!(drain(&mut b), vec![]);

    // A log that ends before the snapshot, or holds another entry at its index, is a
    // stale suffix: dropped, and the disk is asked to drop it too.
    let stale = vec![
        entry(1, 9, cmd("i")),
        entry(1, 10, cmd("old")),
        entry(1, 11, cmd("o")),
    ];
    let mut c = from_snapshot("c", hs(3, None), meta(10, 2, &["a", "b", "c"]), stale);
    assert_eq!(
        (c.last_log_index(), c.last_log_term()),
        (LogIndex(10), Term(2))
    );
    c.on_tick(1);
    assert_eq!(drain(&mut c), vec![reset_persist(1, 10, vec![], None)]);

    // Only the snapshot (the disk log was reset after it): nothing to discard but the
    // disk's state is unknown, so it is reset again (harmless).
    let mut d = from_snapshot("d", hs(3, None), meta(10, 2, &["a", "b", "c"]), vec![]);
    assert_eq!(d.last_log_index(), LogIndex(10));
    d.on_tick(1);
    assert_eq!(drain(&mut d), vec![reset_persist(1, 10, vec![], None)]);

    // A log continuing right after the snapshot (reset, then appended) is kept.
    let after = vec![entry(3, 11, cmd("k"))];
    let e = from_snapshot("e", hs(3, None), meta(10, 2, &["a", "b", "c"]), after);
    assert_eq!(e.last_log_index(), LogIndex(11));

    // A gap after the snapshot is refused.
    let gap = vec![entry(3, 12, cmd("k")), entry(3, 14, cmd("k"))];
    let r = Raft::new(
        config("f"),
        hs(3, None),
        Some(meta(10, 2, &["f"])),
        vec![entry(2, 10, cmd("j"))]
            .into_iter()
            .chain(gap)
            .collect::<Vec<_>>(),
        seeded(1),
        0,
    );
    assert!(r.is_err());
}

#[test]
fn follower_installs_a_snapshot_its_log_lacks_and_acknowledges_once_durable() {
    let mut b = node("b", hs(2, None), vec![entry(1, 1, conf(&["a", "b", "c"]))]);
    let snap = meta(10, 3, &["a", "b", "c"]);
    b.on_message(0, id("a"), install(4, "a", snap.clone(), b"image"));
    assert_eq!(
        drain(&mut b),
        vec![
            Output::RestoreSnapshot {
                meta: snap.clone(),
                data: b"image".to_vec()
            },
            reset_persist(1, 10, vec![], Some(hs(4, None))),
            role(Role::Follower, 4, Some("a")),
        ]
    );
    assert_eq!(b.commit_index(), LogIndex(10));
    assert_eq!(
        (b.last_log_index(), b.last_log_term()),
        (LogIndex(10), Term(3))
    );
    assert_eq!(b.durable_index(), LogIndex(0));
    b.on_persisted(1);
    assert_eq!(drain(&mut b), vec![send("a", install_reply(4, 10))]);
    assert_eq!(b.durable_index(), LogIndex(10));

    // Replication continues after the snapshot.
    b.on_message(
        1,
        id("a"),
        append(4, "a", (10, 3), vec![entry(4, 11, cmd("n"))], 11),
    );
    assert_eq!(
        drain(&mut b),
        vec![
            persist(2, None, vec![entry(4, 11, cmd("n"))], None),
            committed(11),
        ]
    );
    // An older leader's append reaching below the snapshot matches that prefix.
    b.on_message(
        2,
        id("a"),
        append(4, "a", (8, 3), vec![entry(3, 9, cmd("i"))], 11),
    );
    assert_eq!(drain(&mut b), vec![send("a", append_reply(4, true, 9, 11))]);

    // A stale term is refused, and a snapshot at or below the commit index installs
    // nothing.
    b.on_message(3, id("c"), install(3, "c", meta(12, 3, &["c"]), b""));
    assert_eq!(drain(&mut b), vec![send("c", install_reply(4, 0))]);
    b.on_message(
        3,
        id("a"),
        install(4, "a", meta(9, 3, &["a", "b", "c"]), b""),
    );
    assert_eq!(drain(&mut b), vec![]);
    b.on_persisted(2);
    assert_eq!(
        drain(&mut b),
        vec![
            send("a", append_reply(4, true, 11, 11)),
            send("a", install_reply(4, 9))
        ]
    );
}

#[test]
fn follower_whose_log_holds_the_snapshot_entry_keeps_its_suffix() {
    let log = vec![
        entry(1, 1, conf(&["a", "b", "c"])),
        entry(2, 2, cmd("p")),
        entry(2, 3, cmd("q")),
    ];
    let mut b = node("b", hs(2, None), log);
    b.on_message(
        0,
        id("a"),
        install(2, "a", meta(2, 2, &["a", "b", "c"]), b"image"),
    );
    assert_eq!(
        drain(&mut b),
        vec![
            committed(2),
            send("a", install_reply(2, 2)),
            role(Role::Follower, 2, Some("a")),
        ]
    );
    assert_eq!(b.last_log_index(), LogIndex(3));
}

/// Leader a in term 3 with 1..=5 committed and compacted up to 4.
fn compacted_leader() -> Raft {
    let log = vec![
        entry(1, 1, conf(&["a", "b", "c"])),
        entry(2, 2, cmd("p")),
        entry(2, 3, cmd("q")),
        entry(2, 4, cmd("r")),
    ];
    let mut a = node("a", hs(2, None), log);
    campaign(&mut a, "b");
    a.on_persisted(1);
    a.on_persisted(2); // the no-op at 5
    a.on_message(2 * T, id("b"), append_reply(3, true, 5, 5));
    drain(&mut a);
    assert_eq!(a.commit_index(), LogIndex(5));
    assert!(a.compact(LogIndex(4)));
    a
}

#[test]
fn leader_sends_a_snapshot_to_a_follower_behind_its_compaction_point() {
    let mut a = compacted_leader();
    // c's hint points below the compaction point: the shell ships a snapshot.
    a.on_message(2 * T, id("c"), append_reply(3, false, 0, 1));
    assert_eq!(
        drain(&mut a),
        vec![Output::InstallSnapshot {
            to: id("c"),
            term: Term(3)
        }]
    );
    // While it travels, heartbeats keep c following and c's failures change nothing.
    a.on_tick(2 * T + 10);
    let heartbeat = append(3, "a", (4, 2), vec![], 5);
    assert_eq!(
        drain(&mut a),
        vec![
            send("b", append(3, "a", (5, 3), vec![], 5)),
            send("c", heartbeat)
        ]
    );
    a.on_message(2 * T + 11, id("c"), append_reply(3, false, 0, 1));
    assert_eq!(drain(&mut a), vec![]);
    // Installed at 4: c continues from 5.
    a.on_message(2 * T + 12, id("c"), install_reply(3, 4));
    assert_eq!(
        drain(&mut a),
        vec![send(
            "c",
            append(3, "a", (4, 2), vec![entry(3, 5, Payload::Noop)], 5)
        )]
    );
    // A duplicate reply is ignored.
    a.on_message(2 * T + 13, id("c"), install_reply(3, 4));
    assert_eq!(drain(&mut a), vec![]);
}

#[test]
fn an_unanswered_snapshot_is_sent_again_after_the_retry_timeout() {
    let mut a = compacted_leader();
    a.on_message(2 * T, id("c"), append_reply(3, false, 0, 1));
    drain(&mut a);
    let retry_at = 2 * T + core::SNAPSHOT_RETRY_TIMEOUTS * T;
    // Keep b acknowledging so the leader keeps its quorum.
    a.on_message(retry_at - 1, id("b"), append_reply(3, true, 5, 5));
    a.on_message(retry_at - 1, id("c"), append_reply(3, false, 0, 1));
    a.on_tick(retry_at - 1);
    assert!(!a
        .drain_outputs()
        .iter()
        .any(|o| matches!(o, Output::InstallSnapshot { .. })));
    // The next heartbeat after the timeout carries the retry.
    a.on_tick(retry_at + 9);
    let again: Vec<Output> = a
        .drain_outputs()
        .into_iter()
        .filter(|o| matches!(o, Output::InstallSnapshot { .. }))
        .collect();
    assert_eq!(
        again,
        vec![Output::InstallSnapshot {
            to: id("c"),
            term: Term(3)
        }]
    );
}
