//! Session and lock rules: create/destroy, acquire contention, LockIndex, release by the
//! holder only, lock-delay with explicit times, invalidation by a critical or removed
//! check, node deregistration, destroy with behavior release vs delete, snapshots.

use super::*;
use crate::codec;

const N1: &str = "n1";

fn register(store: &mut Store, index: u64, node: &str, checks: &[(&str, CheckStatus)]) {
    let req = RegisterRequest {
        node: Node {
            node: node.into(),
            address: "10.0.0.1".into(),
            ..Node::default()
        },
        checks: checks
            .iter()
            .map(|(id, status)| Check {
                check_id: id.to_string(),
                name: id.to_string(),
                status: *status,
                ..Check::default()
            })
            .collect(),
        ..RegisterRequest::default()
    };
    assert_eq!(
        store.apply(index, &Command::Register(req)),
        CommandResult::Done
    );
}

fn session(id: &str, behavior: SessionBehavior, lock_delay_ms: u64, checks: &[&str]) -> Session {
    Session {
        id: id.into(),
        node: N1.into(),
        behavior,
        lock_delay_ns: lock_delay_ms * 1_000_000,
        node_checks: checks.iter().map(|c| c.to_string()).collect(),
        ..Session::default()
    }
}

fn create(store: &mut Store, index: u64, s: Session) -> CommandResult {
    store.apply(index, &Command::Session(SessionOp::Create(s)))
}

fn lock(store: &mut Store, index: u64, now_ms: u64, key: &str, session: &str) -> CommandResult {
    let cmd = Command::Kv(KvOp::Lock {
        key: key.into(),
        value: b"v".to_vec(),
        flags: 7,
        session: session.into(),
    });
    store.apply(index, &cmd.stamped(now_ms))
}

fn unlock(store: &mut Store, index: u64, key: &str, session: &str) -> CommandResult {
    let cmd = Command::Kv(KvOp::Unlock {
        key: key.into(),
        value: b"r".to_vec(),
        flags: 9,
        session: session.into(),
    });
    store.apply(index, &cmd)
}

fn destroy(store: &mut Store, index: u64, now_ms: u64, id: &str) -> CommandResult {
    let cmd = Command::Session(SessionOp::Destroy { id: id.into() });
    store.apply(index, &cmd.stamped(now_ms))
}

/// A store with node n1 (serfHealth passing) and sessions s1, s2 (release, 1 s delay).
fn base() -> Store {
    let mut store = Store::new();
    register(&mut store, 1, N1, &[("serfHealth", CheckStatus::Passing)]);
    let s1 = session("s1", SessionBehavior::Release, 1000, &["serfHealth"]);
    assert_eq!(create(&mut store, 2, s1), CommandResult::Done);
    let s2 = session("s2", SessionBehavior::Release, 1000, &[]);
    assert_eq!(create(&mut store, 3, s2), CommandResult::Done);
    store
}

#[test]
fn create_stamps_indexes_and_refuses_what_consul_refuses() {
    let mut store = base();
    let s1 = store.session_get("s1").unwrap();
    assert_eq!((s1.create_index, s1.modify_index), (2, 2));
    assert_eq!(store.table_index(Table::Sessions), 3);
    assert_eq!(store.node_sessions("N1").len(), 2);
    let refused = |store: &mut Store, s: Session| match create(store, 10, s) {
        CommandResult::Rejected(text) => text,
        other => panic!("{other:?}"),
    };
    let dup = session("s1", SessionBehavior::Release, 0, &[]);
    assert!(refused(&mut store, dup).contains("already exists"));
    let mut no_node = session("x", SessionBehavior::Release, 0, &[]);
    no_node.node = "ghost".into();
    assert_eq!(refused(&mut store, no_node), "Missing node registration");
    let no_check = session("x", SessionBehavior::Release, 0, &["disk"]);
    assert_eq!(
        refused(&mut store, no_check),
        "Missing check 'disk' registration"
    );
    register(&mut store, 11, N1, &[("disk", CheckStatus::Critical)]);
    let critical = session("x", SessionBehavior::Release, 0, &["disk"]);
    assert_eq!(
        refused(&mut store, critical),
        "Check 'disk' is in critical state"
    );
    let mut short = session("x", SessionBehavior::Release, 0, &[]);
    short.ttl_ms = 5_000;
    assert_eq!(
        refused(&mut store, short),
        "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"
    );
    let mut empty = session("", SessionBehavior::Release, 0, &[]);
    empty.id.clear();
    assert_eq!(refused(&mut store, empty), "Missing session ID");
    assert!(store.session_get("x").is_none());
}

#[test]
fn acquire_contention_lock_index_and_release_by_the_holder_only() {
    let mut store = base();
    assert_eq!(
        lock(&mut store, 10, 0, "k", "s1"),
        CommandResult::Bool(true)
    );
    let e = store.kv_get("k").unwrap().clone();
    assert_eq!(
        (e.lock_index, e.session.as_deref(), e.flags),
        (1, Some("s1"), 7)
    );
    assert_eq!((e.create_index, e.modify_index), (10, 10));
    // Another session: false, nothing changes.
    assert_eq!(
        lock(&mut store, 11, 0, "k", "s2"),
        CommandResult::Bool(false)
    );
    assert_eq!(store.kv_get("k").unwrap().modify_index, 10);
    // The holder again: true, LockIndex unchanged.
    assert_eq!(
        lock(&mut store, 12, 0, "k", "s1"),
        CommandResult::Bool(true)
    );
    assert_eq!(store.kv_get("k").unwrap().lock_index, 1);
    assert_eq!(store.kv_get("k").unwrap().modify_index, 12);
    // Release by another session: false; by the holder: true, value/flags written.
    assert_eq!(
        unlock(&mut store, 13, "k", "s2"),
        CommandResult::Bool(false)
    );
    assert_eq!(unlock(&mut store, 14, "k", "s1"), CommandResult::Bool(true));
    let e = store.kv_get("k").unwrap();
    assert_eq!((e.lock_index, e.session.as_deref()), (1, None));
    assert_eq!((&*e.value, e.flags, e.modify_index), (&b"r"[..], 9, 14));
    assert!(store.session_keys("s1").is_empty());
    // A new acquisition moves LockIndex; an explicit release starts no lock-delay.
    assert_eq!(
        lock(&mut store, 15, 0, "k", "s2"),
        CommandResult::Bool(true)
    );
    assert_eq!(store.kv_get("k").unwrap().lock_index, 2);
    assert_eq!(
        unlock(&mut store, 16, "missing", "s2"),
        CommandResult::Bool(false)
    );
    assert!(store.session_holds("k", "s2"));
}

#[test]
fn unknown_or_missing_sessions_are_errors() {
    let mut store = base();
    assert_eq!(
        lock(&mut store, 10, 0, "k", "nope"),
        CommandResult::Rejected("invalid session \"nope\"".into())
    );
    assert_eq!(
        lock(&mut store, 11, 0, "k", ""),
        CommandResult::Rejected("missing session".into())
    );
    assert_eq!(
        unlock(&mut store, 12, "k", ""),
        CommandResult::Rejected("missing session".into())
    );
    assert!(store.kv_get("k").is_none());
}

#[test]
fn destroy_releases_keys_and_lock_delay_holds_until_its_time() {
    let mut store = base();
    lock(&mut store, 10, 5_000, "a", "s1");
    lock(&mut store, 11, 5_000, "b", "s1");
    assert_eq!(store.session_keys("s1"), ["a", "b"]);
    assert_eq!(destroy(&mut store, 12, 100_000, "s1"), CommandResult::Done);
    assert!(store.session_get("s1").is_none());
    for key in ["a", "b"] {
        let e = store.kv_get(key).unwrap();
        assert_eq!(
            (e.session.as_deref(), e.lock_index, e.modify_index),
            (None, 1, 12)
        );
        assert_eq!(store.lock_delay_until(key), Some(101_000));
    }
    // Within the delay: false (not an error); at its end: true.
    assert_eq!(
        lock(&mut store, 13, 100_999, "a", "s2"),
        CommandResult::Bool(false)
    );
    assert_eq!(
        lock(&mut store, 14, 101_000, "a", "s2"),
        CommandResult::Bool(true)
    );
    assert_eq!(store.kv_get("a").unwrap().lock_index, 2);
    // Destroying a session that is gone changes nothing and is not an error.
    let before = store.clone();
    assert_eq!(destroy(&mut store, 15, 0, "s1"), CommandResult::Done);
    assert_eq!(store.kv_get("a"), before.kv_get("a"));
}

#[test]
fn behavior_delete_deletes_the_held_keys_with_tombstones() {
    let mut store = base();
    let s = session("d", SessionBehavior::Delete, 0, &[]);
    assert_eq!(create(&mut store, 10, s), CommandResult::Done);
    lock(&mut store, 11, 0, "eph/1", "d");
    store.apply(
        12,
        &Command::Kv(KvOp::Set {
            key: "eph/2".into(),
            value: vec![],
            flags: 0,
        }),
    );
    assert_eq!(
        store.apply(13, &Command::Session(SessionOp::Expire { id: "d".into() })),
        CommandResult::Done
    );
    assert!(store.kv_get("eph/1").is_none());
    assert!(store.kv_get("eph/2").is_some());
    assert_eq!(store.kv_prefix_index("eph/1"), 13);
    // No lock-delay with a zero delay.
    assert_eq!(store.lock_delay_until("eph/1"), None);
}

#[test]
fn a_check_going_critical_or_removed_invalidates_its_sessions_in_the_same_apply() {
    let mut store = base();
    lock(&mut store, 10, 0, "k", "s1");
    lock(&mut store, 11, 0, "j", "s2");
    // serfHealth critical: s1 (linked) goes, s2 (no checks) stays.
    let cmd = Command::Register(RegisterRequest {
        node: Node {
            node: N1.into(),
            address: "10.0.0.1".into(),
            ..Node::default()
        },
        checks: vec![Check {
            check_id: "serfHealth".into(),
            name: "serfHealth".into(),
            status: CheckStatus::Critical,
            ..Check::default()
        }],
        ..RegisterRequest::default()
    });
    store.apply(12, &cmd.stamped(50_000));
    assert!(store.session_get("s1").is_none());
    assert!(store.session_get("s2").is_some());
    assert_eq!(store.kv_get("k").unwrap().session, None);
    assert_eq!(store.lock_delay_until("k"), Some(51_000));
    // A check removed: sessions linked to it go too.
    register(&mut store, 13, N1, &[("disk", CheckStatus::Passing)]);
    create(
        &mut store,
        14,
        session("s3", SessionBehavior::Release, 0, &["disk"]),
    );
    let cmd = Command::Deregister(DeregisterRequest {
        node: N1.into(),
        check_id: Some("disk".into()),
        service_id: None,
    });
    store.apply(15, &cmd);
    assert!(store.session_get("s3").is_none());
    assert!(store.check_sessions(N1, "disk").is_empty());
}

#[test]
fn deregistering_the_node_invalidates_its_sessions() {
    let mut store = base();
    lock(&mut store, 10, 0, "k", "s2");
    let cmd = Command::Deregister(DeregisterRequest {
        node: "N1".into(),
        ..DeregisterRequest::default()
    });
    store.apply(11, &cmd.stamped(7_000));
    assert!(store.sessions().is_empty());
    assert_eq!(store.kv_get("k").unwrap().session, None);
    assert_eq!(store.lock_delay_until("k"), Some(8_000));
    assert_eq!(store.table_index(Table::Sessions), 11);
}

#[test]
fn a_plain_write_keeps_the_lock_and_a_delete_drops_it() {
    let mut store = base();
    lock(&mut store, 10, 0, "k", "s1");
    store.apply(
        11,
        &Command::Kv(KvOp::Set {
            key: "k".into(),
            value: b"x".to_vec(),
            flags: 0,
        }),
    );
    assert_eq!(store.kv_get("k").unwrap().session.as_deref(), Some("s1"));
    store.apply(12, &Command::Kv(KvOp::Delete { key: "k".into() }));
    assert!(store.session_keys("s1").is_empty());
    // Destroying the session later touches nothing of a key it no longer holds.
    destroy(&mut store, 13, 0, "s1");
    assert!(store.kv_get("k").is_none());
}

#[test]
fn lock_delay_is_capped_at_sixty_seconds() {
    let mut store = base();
    let s = session("long", SessionBehavior::Release, 600_000, &[]);
    create(&mut store, 10, s);
    lock(&mut store, 11, 0, "k", "long");
    destroy(&mut store, 12, 1_000, "long");
    assert_eq!(store.lock_delay_until("k"), Some(61_000));
}

#[test]
fn a_snapshot_round_trip_keeps_sessions_locks_and_lock_delays() {
    let mut store = base();
    lock(&mut store, 10, 0, "k", "s1");
    lock(&mut store, 11, 0, "gone", "s2");
    destroy(&mut store, 12, 1_000, "s2");
    let image = image::encode_image(&store).unwrap();
    let loaded = image::store_from_image(&image, codec::MAX_DECODE_BYTES).unwrap();
    assert_eq!(loaded, store);
    assert_eq!(loaded.session_keys("s1"), ["k"]);
    assert_eq!(loaded.check_sessions(N1, "serfHealth"), ["s1"]);
    assert_eq!(loaded.lock_delay_until("gone"), Some(2_000));
    // Invalidation works on the loaded store as on the original.
    let mut a = store.clone();
    let mut b = loaded;
    destroy(&mut a, 13, 5_000, "s1");
    destroy(&mut b, 13, 5_000, "s1");
    assert_eq!(a, b);
}

#[test]
fn a_stream_written_before_sessions_existed_still_loads() {
    // Old streams have no Session/LockDelay records: their kinds come after `End` in the
    // enum, so every older record keeps its encoding.
    let mut store = Store::new();
    register(&mut store, 1, N1, &[]);
    let records: Vec<SnapshotRecord> = store
        .snapshot_records()
        .map(|r| codec::decode(&codec::encode(&r).unwrap(), usize::MAX).unwrap())
        .collect();
    assert!(matches!(records.last(), Some(SnapshotRecord::End { .. })));
    let loaded = Store::from_records(records).unwrap();
    assert!(loaded.sessions().is_empty());
    assert_eq!(loaded, store);
}

#[test]
fn a_restore_keeps_sessions_and_their_locks() {
    let mut store = base();
    lock(&mut store, 10, 0, "k", "s1");
    let image = image::encode_image(&store).unwrap();
    let mut other = Store::new();
    assert_eq!(
        other.apply(20, &Command::Restore { image }),
        CommandResult::Done
    );
    assert_eq!(other.session_get("s1").unwrap().create_index, 20);
    assert_eq!(other.session_keys("s1"), ["k"]);
    destroy(&mut other, 21, 0, "s1");
    assert_eq!(other.kv_get("k").unwrap().session, None);
}

#[test]
fn session_commands_are_stamped_and_others_are_left_alone() {
    let set = Command::Kv(KvOp::Set {
        key: "k".into(),
        value: vec![],
        flags: 0,
    });
    assert_eq!(set.clone().stamped(5), set);
    let destroy = Command::Session(SessionOp::Destroy { id: "x".into() });
    let stamped = destroy.clone().stamped(5);
    assert!(matches!(stamped, Command::Stamped { now_ms: 5, .. }));
    assert_eq!(stamped.unstamped(), &destroy);
}
