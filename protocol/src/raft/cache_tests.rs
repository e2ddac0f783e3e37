//! Exact-output tests of the log cache in the Raft core: eviction only of durable,
//! applied entries, and leaders loading entries below the cache (`LoadEntries`).

use super::*;

/// `a` leads term 3 over a, b, c with entries 1..=5 (5: its no-op) committed and
/// applied, its cache capped at two entries, so trimmed to 4..=5.
fn small_cache_leader() -> Raft {
    let log = vec![
        entry(1, 1, conf(&["a", "b", "c"])),
        entry(2, 2, cmd("p")),
        entry(2, 3, cmd("q")),
        entry(2, 4, cmd("r")),
    ];
    let cfg = RaftConfig {
        log_cache_entries: 2,
        ..config("a")
    };
    let mut a = Raft::new(cfg, hs(2, None), None, log, seeded(7), 0).unwrap();
    campaign(&mut a, "b");
    a.on_persisted(1);
    a.on_persisted(2); // the no-op at 5
    a.on_message(2 * T, id("b"), append_reply(3, true, 5, 5));
    // Everything is durable and committed: handed out for applying (as copies), and
    // trimmed in the same input.
    let out = a.drain_outputs();
    let applied = out.iter().find_map(|o| match o {
        Output::Apply { entries } => Some(entries.len()),
        _ => None,
    });
    assert_eq!(applied, Some(5));
    assert_eq!(a.commit_index(), LogIndex(5));
    assert_eq!(a.cache_first_index(), LogIndex(4));
    a.on_tick(2 * T + 1);
    drain(&mut a);
    assert_eq!(a.term_at(LogIndex(2)), Some(Term(2)));
    a
}

fn load(to: &str, from: u64, up_to: u64) -> Output {
    Output::LoadEntries {
        to: id(to),
        from: LogIndex(from),
        up_to: LogIndex(up_to),
        max_bytes: 64 * 1024,
    }
}

fn loads(outputs: &[Output]) -> Vec<Output> {
    outputs
        .iter()
        .filter(|o| matches!(o, Output::LoadEntries { .. }))
        .cloned()
        .collect()
}

#[test]
fn entries_leave_the_cache_only_once_durable_and_applied() {
    let mut a = small_cache_leader();
    // Proposals are cached until durable and committed, whatever the budget (4 and 5
    // make room as far as they can).
    for p in ["x", "y", "z"] {
        a.propose(cmd(p)).unwrap();
    }
    a.on_tick(2 * T + 2);
    drain(&mut a);
    assert_eq!(a.cache_first_index(), LogIndex(6));
    assert_eq!(a.cached().0, 3);
    // Durable but not committed: still cached.
    a.on_persisted(5); // one request per proposal
    a.on_tick(2 * T + 3);
    drain(&mut a);
    assert_eq!(a.cache_first_index(), LogIndex(6));
    // Committed: handed out for applying, so trimmed at once.
    a.on_message(2 * T + 4, id("b"), append_reply(3, true, 8, 8));
    let out = a.drain_outputs();
    assert!(out.contains(&committed(8)));
    let applied: Vec<u64> = out
        .iter()
        .filter_map(|o| match o {
            Output::Apply { entries } => Some(entries.iter().map(|e| e.index.0)),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(applied, vec![6, 7, 8]);
    assert_eq!(a.cache_first_index(), LogIndex(7));
}

#[test]
fn a_follower_below_the_cache_is_sent_loaded_entries_that_match_the_log() {
    let mut a = small_cache_leader();
    // c is behind at 1: its entries from 2 are below the cache.
    a.on_message(2 * T + 2, id("c"), append_reply(3, false, 0, 1));
    assert_eq!(drain(&mut a), vec![load("c", 2, 3)]);
    // One load at a time: heartbeats go on, no second load.
    a.on_tick(2 * T + 20);
    let out = drain(&mut a);
    assert!(loads(&out).is_empty(), "{out:?}");
    assert!(out.contains(&send("c", append(3, "a", (1, 1), vec![], 5))));
    // The loaded entries are checked against the log's terms: 3 comes from another
    // term (a truncated suffix on disk), so only 2 is sent.
    let loaded = vec![entry(2, 2, cmd("p")), entry(9, 3, cmd("old"))];
    a.on_entries_loaded(&id("c"), LogIndex(2), Ok(loaded.clone()));
    // Pipelined: 3, still below the cache, is loaded while 2 travels.
    assert_eq!(
        drain(&mut a),
        vec![
            send("c", append(3, "a", (1, 1), vec![entry(2, 2, cmd("p"))], 5)),
            load("c", 3, 3)
        ]
    );
    // A duplicate answer is ignored.
    a.on_entries_loaded(&id("c"), LogIndex(2), Ok(loaded));
    assert_eq!(drain(&mut a), vec![]);
    // c's acknowledgement of 2 asks nothing new while 3 is being loaded.
    a.on_message(2 * T + 21, id("c"), append_reply(3, true, 2, 2));
    assert_eq!(drain(&mut a), vec![]);
    // Once 3 is sent, the rest comes from the cache.
    a.on_entries_loaded(&id("c"), LogIndex(3), Ok(vec![entry(2, 3, cmd("q"))]));
    assert_eq!(
        drain(&mut a),
        vec![
            send("c", append(3, "a", (2, 2), vec![entry(2, 3, cmd("q"))], 5)),
            send(
                "c",
                append(
                    3,
                    "a",
                    (3, 2),
                    vec![entry(2, 4, cmd("r")), entry(3, 5, Payload::Noop)],
                    5
                )
            )
        ]
    );
}

#[test]
fn stale_and_failed_loads_are_asked_again_from_where_the_follower_is() {
    let mut a = small_cache_leader();
    a.on_message(2 * T + 2, id("c"), append_reply(3, false, 0, 2));
    assert_eq!(drain(&mut a), vec![load("c", 3, 3)]);
    // A load nobody asked for changes nothing.
    a.on_entries_loaded(&id("b"), LogIndex(3), Ok(vec![entry(2, 3, cmd("q"))]));
    a.on_entries_loaded(&id("c"), LogIndex(2), Ok(vec![entry(2, 2, cmd("p"))]));
    assert_eq!(drain(&mut a), vec![]);
    // Meanwhile c turns out to be further behind: the answer for 3 is stale, and the
    // load is asked again from 2.
    a.on_message(2 * T + 3, id("c"), append_reply(3, false, 0, 1));
    assert_eq!(drain(&mut a), vec![]);
    a.on_entries_loaded(&id("c"), LogIndex(3), Ok(vec![entry(2, 3, cmd("q"))]));
    assert_eq!(drain(&mut a), vec![load("c", 2, 3)]);
    // A failed read is asked again at the next heartbeat, not at once.
    a.on_entries_loaded(&id("c"), LogIndex(2), Err("disk".into()));
    assert_eq!(drain(&mut a), vec![]);
    a.on_tick(2 * T + 20);
    assert_eq!(loads(&drain(&mut a)), vec![load("c", 2, 3)]);
    // An answer that never comes: asked again after an election timeout.
    a.on_message(3 * T + 20, id("b"), append_reply(3, true, 5, 5));
    a.on_tick(3 * T + 25);
    assert_eq!(loads(&drain(&mut a)), vec![load("c", 2, 3)]);
}

#[test]
fn entries_compacted_while_loading_are_replaced_by_a_snapshot() {
    let mut a = small_cache_leader();
    a.on_message(2 * T + 2, id("c"), append_reply(3, false, 0, 1));
    assert_eq!(drain(&mut a), vec![load("c", 2, 3)]);
    assert!(a.compact(LogIndex(3)));
    a.on_entries_loaded(
        &id("c"),
        LogIndex(2),
        Ok(vec![entry(2, 2, cmd("p")), entry(2, 3, cmd("q"))]),
    );
    assert_eq!(
        drain(&mut a),
        vec![Output::InstallSnapshot {
            to: id("c"),
            term: Term(3)
        }]
    );
}

#[test]
fn a_load_answered_after_leadership_is_lost_is_ignored() {
    let mut a = small_cache_leader();
    a.on_message(2 * T + 2, id("c"), append_reply(3, false, 0, 1));
    drain(&mut a);
    a.on_message(2 * T + 3, id("b"), append_reply(4, false, 0, 5));
    drain(&mut a);
    assert_eq!(a.role(), Role::Follower);
    a.on_entries_loaded(&id("c"), LogIndex(2), Ok(vec![entry(2, 2, cmd("p"))]));
    assert_eq!(drain(&mut a), vec![]);
}
