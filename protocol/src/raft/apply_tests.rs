//! Exact-output tests of applying: committed entries leave as `Output::Apply`, in order
//! and once; after a restart whose recovered tail is smaller than what is committed but
//! not applied, they are read back through `Output::LoadCommitted`.

use super::*;

/// The state machine's feed among `outputs`.
fn feed(outputs: Vec<Output>) -> Vec<Output> {
    outputs
        .into_iter()
        .filter(|o| matches!(o, Output::Apply { .. } | Output::LoadCommitted { .. }))
        .collect()
}

fn apply(entries: Vec<Entry>) -> Output {
    Output::Apply { entries }
}

fn load(from: u64, up_to: u64) -> Output {
    Output::LoadCommitted {
        from: LogIndex(from),
        up_to: LogIndex(up_to),
        max_bytes: 64 * 1024,
    }
}

/// Entries 1..=6 of follower `b`: a configuration, then commands in term 2.
fn disk_log() -> Vec<Entry> {
    let mut log = vec![entry(1, 1, conf(&["a", "b", "c"]))];
    for (i, p) in ["p", "q", "r", "s", "t"].iter().enumerate() {
        log.push(entry(2, i as u64 + 2, cmd(p)));
    }
    log
}

/// `b` restarted from its disk: every entry checked, only the last two kept whole.
fn restarted_follower() -> Raft {
    let budget = CacheBudget {
        max_bytes: usize::MAX,
        max_entries: 2,
    };
    let mut recovered = RecoveredLog::new(budget);
    for e in disk_log() {
        recovered.push(e).unwrap();
    }
    let cfg = RaftConfig {
        log_cache_entries: 2,
        ..config("b")
    };
    let b = Raft::new(cfg, hs(2, None), None, recovered, seeded(3), 0).unwrap();
    assert_eq!(b.last_log_index(), LogIndex(6));
    assert_eq!(b.cache_first_index(), LogIndex(5));
    assert_eq!(b.term_at(LogIndex(2)), Some(Term(2)));
    assert_eq!(b.voters().len(), 3, "the configuration is known uncached");
    b
}

/// `a`'s heartbeat to `b`, committing everything.
fn heartbeat_committing_all(b: &mut Raft, now: u64) {
    b.on_message(now, id("a"), append(2, "a", (6, 2), vec![], 6));
}

#[test]
fn a_restart_reads_committed_entries_older_than_its_tail_back_in_order() {
    let mut b = restarted_follower();
    heartbeat_committing_all(&mut b, 10);
    let out = b.drain_outputs();
    // The heartbeat is answered at once; the entries to apply are loaded meanwhile.
    assert!(out.contains(&committed(6)));
    assert!(
        out.contains(&send("a", append_reply(2, true, 6, 6))),
        "{out:?}"
    );
    assert_eq!(feed(out), vec![load(1, 4)]);
    // One load at a time: further heartbeats ask for nothing new.
    heartbeat_committing_all(&mut b, 11);
    assert_eq!(feed(b.drain_outputs()), vec![]);
    // A partial answer (the byte bound) is applied, the rest asked for at once.
    let log = disk_log();
    b.on_committed_loaded(LogIndex(1), Ok(log[0..2].to_vec()));
    assert_eq!(
        feed(b.drain_outputs()),
        vec![apply(log[0..2].to_vec()), load(3, 4)]
    );
    // A duplicate or stale answer changes nothing.
    b.on_committed_loaded(LogIndex(1), Ok(log[0..2].to_vec()));
    assert_eq!(b.drain_outputs(), vec![]);
    // Entries of another term (not this log's) are not applied; asked again after a
    // heartbeat interval, not at once.
    b.on_committed_loaded(LogIndex(3), Ok(vec![entry(9, 3, cmd("x"))]));
    assert_eq!(b.drain_outputs(), vec![]);
    b.on_tick(12);
    assert_eq!(feed(b.drain_outputs()), vec![]);
    b.on_tick(21);
    assert_eq!(feed(b.drain_outputs()), vec![load(3, 4)]);
    // A failure: the same.
    b.on_committed_loaded(LogIndex(3), Err("disk".into()));
    assert_eq!(b.drain_outputs(), vec![]);
    b.on_tick(31);
    assert_eq!(feed(b.drain_outputs()), vec![load(3, 4)]);
    // An answer that never comes: asked again after an election timeout.
    b.on_tick(31 + T - 1);
    assert_eq!(feed(b.drain_outputs()), vec![]);
    b.on_tick(31 + T);
    assert_eq!(feed(b.drain_outputs()), vec![load(3, 4)]);
    // The rest: loaded, then the cached tail, in order.
    b.on_committed_loaded(LogIndex(3), Ok(log[2..4].to_vec()));
    assert_eq!(
        feed(b.drain_outputs()),
        vec![apply(log[2..4].to_vec()), apply(log[4..6].to_vec())]
    );
    assert_eq!(b.apply_next_index(), LogIndex(7));
    b.on_tick(200 + T);
    assert_eq!(feed(b.drain_outputs()), vec![]);
}

#[test]
fn entries_beyond_the_commit_index_are_never_applied_from_a_load() {
    let mut b = restarted_follower();
    b.on_message(10, id("a"), append(2, "a", (6, 2), vec![], 3));
    assert_eq!(feed(b.drain_outputs()), vec![load(1, 3)]);
    // The store answers more than asked (up to its bound): only committed ones go.
    b.on_committed_loaded(LogIndex(1), Ok(disk_log()[0..5].to_vec()));
    assert_eq!(
        feed(b.drain_outputs()),
        vec![apply(disk_log()[0..3].to_vec())]
    );
    // Commit 5: 4 is loaded, 5 is cached.
    b.on_message(11, id("a"), append(2, "a", (6, 2), vec![], 5));
    assert_eq!(feed(b.drain_outputs()), vec![load(4, 4)]);
    b.on_committed_loaded(LogIndex(4), Ok(disk_log()[3..4].to_vec()));
    assert_eq!(
        feed(b.drain_outputs()),
        vec![
            apply(disk_log()[3..4].to_vec()),
            apply(disk_log()[4..5].to_vec())
        ]
    );
}

#[test]
fn a_snapshot_installed_while_loading_replaces_what_is_applied() {
    let mut b = restarted_follower();
    heartbeat_committing_all(&mut b, 10);
    assert_eq!(feed(b.drain_outputs()), vec![load(1, 4)]);
    // The leader's snapshot at 8 (term 3) is not in b's log: it replaces it.
    let meta = SnapshotMeta {
        index: LogIndex(8),
        term: Term(3),
        configuration: voters(&["a", "b", "c"]),
        non_voters: Vec::new(),
    };
    b.on_message(
        20,
        id("a"),
        Message::InstallSnapshot {
            term: Term(3),
            leader: id("a"),
            meta: meta.clone(),
            data: vec![],
        },
    );
    b.drain_outputs();
    // The load's answer comes too late: ignored.
    b.on_committed_loaded(LogIndex(1), Ok(disk_log()[0..4].to_vec()));
    assert_eq!(b.drain_outputs(), vec![]);
    // Applying goes on after the snapshot.
    let next = vec![entry(3, 9, cmd("u"))];
    b.on_message(21, id("a"), append(3, "a", (8, 3), next.clone(), 9));
    assert_eq!(feed(b.drain_outputs()), vec![apply(next)]);
}

#[test]
fn a_core_rebuilt_under_a_running_state_machine_skips_what_it_applied() {
    let mut b = restarted_follower();
    b.skip_applied(LogIndex(4));
    heartbeat_committing_all(&mut b, 10);
    assert_eq!(
        feed(b.drain_outputs()),
        vec![apply(disk_log()[4..6].to_vec())]
    );
}

#[test]
fn entries_not_yet_applied_are_neither_compacted_nor_evicted() {
    let mut b = restarted_follower();
    heartbeat_committing_all(&mut b, 10);
    b.drain_outputs();
    // Committed and durable, but not handed out yet.
    assert!(!b.compact(LogIndex(2)));
    b.on_committed_loaded(LogIndex(1), Ok(disk_log()[0..2].to_vec()));
    b.drain_outputs();
    assert!(b.compact(LogIndex(2)));
    assert!(!b.compact(LogIndex(3)));
    // The cached tail stays until handed out, whatever the budget.
    assert_eq!(b.cache_first_index(), LogIndex(5));
}

#[test]
fn cached_committed_entries_leave_as_one_apply_and_may_then_be_evicted() {
    let mut a = node("a", hs(0, None), vec![]);
    assert!(a.bootstrap("a:8300"));
    a.on_persisted(1);
    a.on_tick(1);
    a.on_persisted(2); // the vote
    a.on_persisted(3); // the no-op
    let out = a.drain_outputs();
    assert_eq!(
        feed(out),
        vec![apply(vec![
            entry(1, 1, conf(&["a"])),
            entry(2, 2, Payload::Noop)
        ])]
    );
    let p = a.propose(cmd("x")).unwrap();
    a.drain_outputs();
    a.on_persisted(4);
    assert_eq!(
        feed(a.drain_outputs()),
        vec![apply(vec![entry(2, p.0, cmd("x"))])]
    );
}
