//! Exact-output tests of transactions: each verb, all-or-nothing, op indexes, limits.

use super::txn::*;
use super::*;

fn kv(verb: KvVerb, key: &str, value: &str, index: u64) -> TxnOp {
    TxnOp::Kv(TxnKv {
        verb,
        key: key.into(),
        value: value.as_bytes().to_vec(),
        flags: 0,
        index,
        session: String::new(),
    })
}

fn node(verb: CatalogVerb, name: &str, index: u64) -> TxnOp {
    TxnOp::Node(TxnNode {
        verb,
        node: Node {
            node: name.into(),
            address: "10.0.0.1".into(),
            datacenter: "dc1".into(),
            ..Node::default()
        },
        index,
    })
}

fn service(verb: CatalogVerb, node: &str, name: &str, index: u64) -> TxnOp {
    TxnOp::Service(TxnService {
        verb,
        node: node.into(),
        service: Service {
            service: name.into(),
            port: 80,
            ..Service::default()
        },
        index,
    })
}

fn check(verb: CatalogVerb, node: &str, id: &str, service_id: &str, index: u64) -> TxnOp {
    TxnOp::Check(TxnCheck {
        verb,
        check: Check {
            node: node.into(),
            check_id: id.into(),
            name: id.into(),
            status: CheckStatus::Critical,
            service_id: service_id.into(),
            ..Check::default()
        },
        index,
    })
}

fn txn(store: &mut Store, index: u64, ops: Vec<TxnOp>) -> TxnOutcome {
    match store.apply(index, &Command::Txn(ops)) {
        CommandResult::Txn(outcome) => outcome,
        other => panic!("{other:?}"),
    }
}

fn committed(outcome: TxnOutcome) -> Vec<TxnResult> {
    match outcome {
        TxnOutcome::Committed(rows) => rows,
        other => panic!("{other:?}"),
    }
}

fn errors(outcome: TxnOutcome) -> Vec<(usize, String)> {
    match outcome {
        TxnOutcome::RolledBack(errors) => {
            errors.into_iter().map(|e| (e.op_index, e.what)).collect()
        }
        other => panic!("{other:?}"),
    }
}

fn entry(key: &str, value: &str, create_index: u64, modify_index: u64) -> KvEntry {
    KvEntry {
        key: key.into(),
        value: value.as_bytes().into(),
        create_index,
        modify_index,
        ..KvEntry::default()
    }
}

/// A store with keys a (index 2) and b/1, b/2 (index 3), node n1 with service web and a
/// check on it (index 4).
fn seeded() -> Store {
    let mut store = Store::new();
    committed(txn(&mut store, 2, vec![kv(KvVerb::Set, "a", "1", 0)]));
    committed(txn(
        &mut store,
        3,
        vec![
            kv(KvVerb::Set, "b/1", "x", 0),
            kv(KvVerb::Set, "b/2", "y", 0),
        ],
    ));
    committed(txn(
        &mut store,
        4,
        vec![
            node(CatalogVerb::Set, "n1", 0),
            service(CatalogVerb::Set, "n1", "web", 0),
            check(CatalogVerb::Set, "n1", "alive", "web", 0),
        ],
    ));
    store
}

#[test]
fn kv_writes_answer_entries_without_values() {
    let mut store = Store::new();
    let rows = committed(txn(
        &mut store,
        5,
        vec![
            kv(KvVerb::Set, "a", "1", 0),
            kv(KvVerb::Cas, "b", "2", 0),
            kv(KvVerb::Delete, "zzz", "", 0),
        ],
    ));
    assert_eq!(
        rows,
        vec![
            TxnResult::Kv(entry("a", "", 5, 5)),
            TxnResult::Kv(entry("b", "", 5, 5))
        ]
    );
    assert_eq!(store.kv_get("a"), Some(&entry("a", "1", 5, 5)));
    assert_eq!(store.kv_get("b"), Some(&entry("b", "2", 5, 5)));
    // cas with the current index, then delete-cas with the new one.
    let rows = committed(txn(
        &mut store,
        6,
        vec![
            kv(KvVerb::Cas, "a", "3", 5),
            kv(KvVerb::DeleteCas, "b", "", 5),
        ],
    ));
    assert_eq!(rows, vec![TxnResult::Kv(entry("a", "", 5, 6))]);
    assert_eq!(store.kv_get("a"), Some(&entry("a", "3", 5, 6)));
    assert_eq!(store.kv_get("b"), None);
    // delete-cas of a missing key is no conflict (Consul's rule).
    committed(txn(&mut store, 7, vec![kv(KvVerb::DeleteCas, "b", "", 99)]));
}

#[test]
fn kv_reads_and_checks() {
    let mut store = seeded();
    let rows = committed(txn(
        &mut store,
        10,
        vec![
            kv(KvVerb::Get, "a", "", 0),
            kv(KvVerb::GetTree, "b/", "", 0),
            kv(KvVerb::CheckIndex, "a", "", 2),
            kv(KvVerb::CheckNotExists, "c", "", 0),
            kv(KvVerb::GetOrEmpty, "c", "", 0),
        ],
    ));
    assert_eq!(
        rows,
        vec![
            TxnResult::Kv(entry("a", "1", 2, 2)),
            TxnResult::Kv(entry("b/1", "x", 3, 3)),
            TxnResult::Kv(entry("b/2", "y", 3, 3)),
            TxnResult::Kv(entry("a", "", 2, 2)),
            TxnResult::Kv(entry("c", "", 0, 0)),
        ]
    );
    let errs = errors(txn(
        &mut store,
        11,
        vec![
            kv(KvVerb::Get, "nope", "", 0),
            kv(KvVerb::CheckIndex, "a", "", 7),
            kv(KvVerb::CheckIndex, "nope", "", 7),
            kv(KvVerb::CheckNotExists, "a", "", 0),
            kv(KvVerb::Cas, "a", "v", 0),
            kv(KvVerb::Cas, "nope", "v", 3),
            kv(KvVerb::DeleteCas, "a", "", 1),
        ],
    ));
    assert_eq!(
        errs,
        vec![
            (0, "key \"nope\" doesn't exist".to_string()),
            (
                1,
                "failed index check for key \"a\", current modify index 2 != 7".to_string()
            ),
            (
                2,
                "failed to check index, key \"nope\" doesn't exist".to_string()
            ),
            (3, "key \"a\" exists".to_string()),
            (4, "failed to set key \"a\", index is stale".to_string()),
            (5, "failed to set key \"nope\", index is stale".to_string()),
            (6, "failed to delete key \"a\", index is stale".to_string()),
        ]
    );
}

#[test]
fn delete_tree_removes_the_prefix_and_leaves_tombstones() {
    let mut store = seeded();
    committed(txn(
        &mut store,
        10,
        vec![kv(KvVerb::DeleteTree, "b/", "", 0)],
    ));
    assert!(store.kv_list("b/").is_empty());
    assert_eq!(store.kv_prefix_index("b/"), 10);
    assert_eq!(store.kv_get("a"), Some(&entry("a", "1", 2, 2)));
}

#[test]
fn a_failing_op_after_successful_ones_changes_nothing() {
    let mut store = seeded();
    let mut expected = store.clone();
    let errs = errors(txn(
        &mut store,
        20,
        vec![
            kv(KvVerb::Set, "a", "changed", 0),
            kv(KvVerb::DeleteTree, "b/", "", 0),
            node(CatalogVerb::Delete, "n1", 0),
            node(CatalogVerb::Set, "n2", 0),
            kv(KvVerb::Cas, "new", "v", 0),
            kv(KvVerb::CheckIndex, "a", "", 2),
        ],
    ));
    // The check ran against the working copy, where op 0 had moved "a" to 20.
    assert_eq!(
        errs,
        vec![(
            5,
            "failed index check for key \"a\", current modify index 20 != 2".to_string()
        )]
    );
    // Only the applied index moved, as for any entry.
    expected.apply_noop(20);
    assert_eq!(store, expected);
    assert_eq!(
        crate::codec::encode(&store).unwrap(),
        crate::codec::encode(&expected).unwrap()
    );
    assert_eq!(store.table_index(Table::Kv), 3);
}

#[test]
fn every_failing_op_is_listed_with_its_index() {
    let mut store = seeded();
    let errs = errors(txn(
        &mut store,
        20,
        vec![
            kv(KvVerb::Get, "x", "", 0),
            kv(KvVerb::Set, "fine", "v", 0),
            node(CatalogVerb::Get, "ghost", 0),
        ],
    ));
    assert_eq!(errs.iter().map(|(i, _)| *i).collect::<Vec<_>>(), vec![0, 2]);
    assert_eq!(errs[1].1, "node \"ghost\" doesn't exist");
    assert_eq!(store.kv_get("fine"), None);
}

#[test]
fn node_verbs() {
    let mut store = seeded();
    let rows = committed(txn(&mut store, 10, vec![node(CatalogVerb::Get, "N1", 0)]));
    let TxnResult::Node(n1) = &rows[0] else {
        panic!("{rows:?}")
    };
    assert_eq!((n1.node.as_str(), n1.modify_index), ("n1", 4));
    // cas: 0 only when absent, else the current ModifyIndex.
    assert_eq!(
        errors(txn(&mut store, 11, vec![node(CatalogVerb::Cas, "n1", 0)])),
        vec![(0, "failed to set node \"n1\", index is stale".to_string())]
    );
    let mut moved = node(CatalogVerb::Cas, "n1", 4);
    if let TxnOp::Node(op) = &mut moved {
        op.node.address = "10.0.0.9".into();
    }
    let rows = committed(txn(&mut store, 12, vec![moved]));
    let TxnResult::Node(n1) = &rows[0] else {
        panic!("{rows:?}")
    };
    assert_eq!((n1.address.as_str(), n1.modify_index), ("10.0.0.9", 12));
    assert_eq!(
        errors(txn(
            &mut store,
            13,
            vec![node(CatalogVerb::DeleteCas, "n1", 4)]
        )),
        vec![(
            0,
            "failed to delete node \"n1\", index is stale".to_string()
        )]
    );
    assert_eq!(
        committed(txn(
            &mut store,
            14,
            vec![node(CatalogVerb::DeleteCas, "n1", 12)]
        )),
        vec![]
    );
    // The node went with its services and checks.
    assert_eq!(store.node("n1"), None);
    assert!(store.node_services("n1").is_empty());
    assert!(store.node_checks("n1").is_empty());
    // delete of a missing node is fine; set needs an address (the catalog's rule).
    committed(txn(
        &mut store,
        15,
        vec![node(CatalogVerb::Delete, "n1", 0)],
    ));
    let mut bare = node(CatalogVerb::Set, "n3", 0);
    if let TxnOp::Node(op) = &mut bare {
        op.node.address.clear();
    }
    assert_eq!(
        errors(txn(&mut store, 16, vec![bare])),
        vec![(0, "Must provide node and address".to_string())]
    );
}

#[test]
fn service_verbs() {
    let mut store = seeded();
    let rows = committed(txn(
        &mut store,
        10,
        vec![service(CatalogVerb::Get, "n1", "web", 0)],
    ));
    let TxnResult::Service(web) = &rows[0] else {
        panic!("{rows:?}")
    };
    assert_eq!(
        (web.id.as_str(), web.node.as_str(), web.port),
        ("web", "n1", 80)
    );
    assert_eq!(
        errors(txn(
            &mut store,
            11,
            vec![
                service(CatalogVerb::Set, "ghost", "db", 0),
                service(CatalogVerb::Cas, "n1", "web", 0),
                service(CatalogVerb::Get, "n1", "db", 0),
                service(CatalogVerb::DeleteCas, "n1", "web", 3),
            ]
        )),
        vec![
            (0, "Missing node registration".to_string()),
            (
                1,
                "failed to set service \"web\" on node \"n1\", index is stale".to_string()
            ),
            (2, "service \"db\" on node \"n1\" doesn't exist".to_string()),
            (
                3,
                "failed to delete service \"web\" on node \"n1\", index is stale".to_string()
            ),
        ]
    );
    let rows = committed(txn(
        &mut store,
        12,
        vec![
            service(CatalogVerb::Cas, "n1", "db", 0),
            service(CatalogVerb::DeleteCas, "n1", "web", 4),
        ],
    ));
    assert_eq!(rows.len(), 1);
    assert_eq!(
        store
            .node_services("n1")
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        vec!["db"]
    );
    // The service's check went with it.
    assert!(store.node_checks("n1").is_empty());
    committed(txn(
        &mut store,
        13,
        vec![service(CatalogVerb::Delete, "n1", "db", 0)],
    ));
    assert!(store.node_services("n1").is_empty());
}

#[test]
fn check_verbs() {
    let mut store = seeded();
    let rows = committed(txn(
        &mut store,
        10,
        vec![check(CatalogVerb::Get, "n1", "alive", "", 0)],
    ));
    let TxnResult::Check(alive) = &rows[0] else {
        panic!("{rows:?}")
    };
    assert_eq!(
        (alive.service_name.as_str(), alive.modify_index),
        ("web", 4)
    );
    assert_eq!(
        errors(txn(
            &mut store,
            11,
            vec![
                check(CatalogVerb::Set, "ghost", "c", "", 0),
                check(CatalogVerb::Set, "n1", "c", "nosuch", 0),
                check(CatalogVerb::Cas, "n1", "alive", "web", 0),
                check(CatalogVerb::Get, "n1", "c", "", 0),
                check(CatalogVerb::DeleteCas, "n1", "alive", "", 5),
            ]
        )),
        vec![
            (0, "Missing node registration".to_string()),
            (1, "Missing service registration".to_string()),
            (
                2,
                "failed to set check \"alive\" on node \"n1\", index is stale".to_string()
            ),
            (3, "check \"c\" on node \"n1\" doesn't exist".to_string()),
            (
                4,
                "failed to delete check \"alive\" on node \"n1\", index is stale".to_string()
            ),
        ]
    );
    let mut passing = check(CatalogVerb::Cas, "n1", "alive", "web", 4);
    if let TxnOp::Check(op) = &mut passing {
        op.check.status = CheckStatus::Passing;
    }
    let rows = committed(txn(
        &mut store,
        12,
        vec![passing, check(CatalogVerb::Set, "n1", "node-level", "", 0)],
    ));
    assert_eq!(rows.len(), 2);
    assert_eq!(store.node_checks("n1")[0].status, CheckStatus::Passing);
    committed(txn(
        &mut store,
        13,
        vec![
            check(CatalogVerb::DeleteCas, "n1", "alive", "", 12),
            check(CatalogVerb::Delete, "n1", "node-level", "", 0),
        ],
    ));
    assert!(store.node_checks("n1").is_empty());
}

#[test]
fn validation_runs_before_anything_and_on_replicas() {
    let mut store = seeded();
    let before = store.clone();
    let errs = errors(txn(
        &mut store,
        20,
        vec![
            kv(KvVerb::Set, "ok", "v", 0),
            kv(KvVerb::Set, "", "v", 0),
            kv(KvVerb::DeleteTree, "", "", 0),
            kv(KvVerb::Lock, "", "v", 0),
        ],
    ));
    assert_eq!(
        errs,
        vec![
            (1, "Must provide key".to_string()),
            (3, "Must provide key".to_string())
        ]
    );
    let too_many: Vec<TxnOp> = (0..=MAX_TXN_OPS)
        .map(|i| kv(KvVerb::Set, &format!("k{i}"), "v", 0))
        .collect();
    assert_eq!(
        errors(txn(&mut store, 21, too_many)),
        vec![(
            0,
            "Transaction contains too many operations (129 > 128)".to_string()
        )]
    );
    let mut expected = before;
    expected.apply_noop(21);
    assert_eq!(store, expected);
    // Exactly the limit is fine.
    let at_limit: Vec<TxnOp> = (0..MAX_TXN_OPS)
        .map(|i| kv(KvVerb::Set, &format!("k{i}"), "v", 0))
        .collect();
    assert_eq!(committed(txn(&mut store, 22, at_limit)).len(), MAX_TXN_OPS);
}

#[test]
fn read_only_transactions_never_change_the_store() {
    let store = seeded();
    let before = store.clone();
    assert_eq!(
        store.read_txn(&[kv(KvVerb::Get, "a", "", 0), node(CatalogVerb::Get, "n1", 0)]),
        TxnOutcome::Committed(vec![
            TxnResult::Kv(entry("a", "1", 2, 2)),
            TxnResult::Node(store.node("n1").unwrap().clone()),
        ])
    );
    assert_eq!(
        store.read_txn(&[kv(KvVerb::Get, "a", "", 0), kv(KvVerb::Set, "a", "2", 0)]),
        TxnOutcome::RolledBack(vec![TxnError {
            op_index: 1,
            what: "write operation in a read-only transaction".into()
        }])
    );
    assert_eq!(store, before);
    assert!(is_read_only(&[kv(KvVerb::CheckIndex, "a", "", 1)]));
    assert!(!is_read_only(&[node(CatalogVerb::Delete, "n", 0)]));
}

#[test]
fn verbs_parse_as_consul_spells_them() {
    for verb in [
        "set",
        "cas",
        "lock",
        "unlock",
        "get",
        "get-or-empty",
        "get-tree",
        "check-index",
        "check-session",
        "check-not-exists",
        "delete",
        "delete-tree",
        "delete-cas",
    ] {
        assert_eq!(KvVerb::parse(verb).map(KvVerb::as_str), Some(verb));
    }
    assert_eq!(KvVerb::parse("SET"), None);
    assert_eq!(
        CatalogVerb::parse("delete-cas"),
        Some(CatalogVerb::DeleteCas)
    );
    assert_eq!(CatalogVerb::parse("get-tree"), None);
}

#[test]
fn a_txn_command_survives_the_codec() {
    let cmd = Command::Txn(vec![
        kv(KvVerb::Cas, "a", "v", 3),
        service(CatalogVerb::Set, "n1", "web", 0),
    ]);
    let bytes = crate::codec::encode(&cmd).unwrap();
    let back: Command = crate::codec::decode(&bytes, crate::codec::MAX_DECODE_BYTES).unwrap();
    assert_eq!(back, cmd);
}

fn lock_op(verb: KvVerb, key: &str, session: &str) -> TxnOp {
    TxnOp::Kv(TxnKv {
        verb,
        key: key.into(),
        value: b"v".to_vec(),
        flags: 0,
        index: 0,
        session: session.into(),
    })
}

/// `seeded()` plus sessions s1 and s2 on n1 (lock-delay 1 s, no checks).
fn with_sessions() -> Store {
    let mut store = seeded();
    for (index, id) in [(5, "s1"), (6, "s2")] {
        let session = Session {
            id: id.into(),
            node: "n1".into(),
            lock_delay_ns: 1_000_000_000,
            ..Session::default()
        };
        let cmd = Command::Session(SessionOp::Create(session));
        assert_eq!(store.apply(index, &cmd), CommandResult::Done);
    }
    store
}

fn stamped_txn(store: &mut Store, index: u64, now_ms: u64, ops: Vec<TxnOp>) -> TxnOutcome {
    match store.apply(index, &Command::Txn(ops).stamped(now_ms)) {
        CommandResult::Txn(outcome) => outcome,
        other => panic!("{other:?}"),
    }
}

#[test]
fn lock_unlock_and_check_session() {
    let mut store = with_sessions();
    let rows = committed(stamped_txn(
        &mut store,
        10,
        1_000,
        vec![
            lock_op(KvVerb::Lock, "leader", "s1"),
            lock_op(KvVerb::CheckSession, "leader", "s1"),
        ],
    ));
    let TxnResult::Kv(held) = &rows[0] else {
        panic!("{rows:?}")
    };
    assert_eq!(
        (held.lock_index, held.session.as_deref(), held.value.len()),
        (1, Some("s1"), 0)
    );
    assert_eq!(rows.len(), 2);
    assert_eq!(
        errors(stamped_txn(
            &mut store,
            11,
            1_000,
            vec![
                lock_op(KvVerb::Lock, "leader", "s2"),
                lock_op(KvVerb::Unlock, "leader", "s2"),
                lock_op(KvVerb::CheckSession, "leader", "s2"),
                lock_op(KvVerb::CheckSession, "nope", "s2"),
                lock_op(KvVerb::Lock, "other", "ghost"),
            ]
        )),
        vec![
            (
                0,
                "failed to lock key \"leader\", lock is already held".to_string()
            ),
            (
                1,
                "failed to unlock key \"leader\", lock isn't held, or is held by another session"
                    .to_string()
            ),
            (
                2,
                "failed session check for key \"leader\", current session \"s1\" != \"s2\""
                    .to_string()
            ),
            (
                3,
                "failed to check session, key \"nope\" doesn't exist".to_string()
            ),
            (4, "invalid session \"ghost\"".to_string()),
        ]
    );
    // check-session is a read verb: the read path answers it.
    assert_eq!(
        store
            .read_txn(&[lock_op(KvVerb::CheckSession, "leader", "s1")])
            .clone(),
        TxnOutcome::Committed(vec![TxnResult::Kv(KvEntry {
            value: Default::default(),
            ..store.kv_get("leader").unwrap().clone()
        })])
    );
    committed(stamped_txn(
        &mut store,
        12,
        1_000,
        vec![lock_op(KvVerb::Unlock, "leader", "s1")],
    ));
    assert_eq!(store.kv_get("leader").unwrap().session, None);
}

#[test]
fn a_txn_that_invalidates_a_session_starts_its_lock_delay_and_rolls_back_whole() {
    let mut store = with_sessions();
    committed(stamped_txn(
        &mut store,
        10,
        1_000,
        vec![lock_op(KvVerb::Lock, "leader", "s1")],
    ));
    // Deleting n1 inside a failing transaction destroys nothing.
    let before = store.clone();
    errors(stamped_txn(
        &mut store,
        11,
        2_000,
        vec![
            node(CatalogVerb::Delete, "n1", 0),
            kv(KvVerb::Get, "missing", "", 0),
        ],
    ));
    let mut expected = before;
    expected.apply_noop(11);
    assert_eq!(store, expected);
    // Committed, it invalidates s1 (released, lock-delay 1 s from the stamp).
    committed(stamped_txn(
        &mut store,
        12,
        2_000,
        vec![node(CatalogVerb::Delete, "n1", 0)],
    ));
    assert_eq!(store.kv_get("leader").unwrap().session, None);
    let mut again = with_sessions_on(&mut store, 13);
    assert_eq!(
        errors(stamped_txn(
            &mut again,
            14,
            2_500,
            vec![lock_op(KvVerb::Lock, "leader", "s3")]
        )),
        vec![(
            0,
            "failed to lock key \"leader\" due to lock delay".to_string()
        )]
    );
    committed(stamped_txn(
        &mut again,
        15,
        3_001,
        vec![lock_op(KvVerb::Lock, "leader", "s3")],
    ));
}

/// Re-register n1 and give it a session s3 (after n1 was deleted).
fn with_sessions_on(store: &mut Store, index: u64) -> Store {
    committed(txn(store, index, vec![node(CatalogVerb::Set, "n1", 0)]));
    let session = Session {
        id: "s3".into(),
        node: "n1".into(),
        ..Session::default()
    };
    let cmd = Command::Session(SessionOp::Create(session));
    assert_eq!(store.apply(index, &cmd), CommandResult::Done);
    store.clone()
}
