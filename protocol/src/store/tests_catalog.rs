//! Exact-output tests of catalog registration, deregistration and queries.

use super::*;

fn node(name: &str, address: &str) -> Node {
    Node {
        node: name.into(),
        address: address.into(),
        ..Node::default()
    }
}

fn service(id: &str, name: &str, tags: &[&str]) -> Service {
    Service {
        id: id.into(),
        service: name.into(),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        port: 80,
        ..Service::default()
    }
}

fn check(id: &str, name: &str, service_id: &str, status: CheckStatus) -> Check {
    Check {
        check_id: id.into(),
        name: name.into(),
        service_id: service_id.into(),
        status,
        ..Check::default()
    }
}

fn register(node: Node, service: Option<Service>, checks: Vec<Check>) -> Command {
    Command::Register(RegisterRequest {
        node,
        skip_node_update: false,
        service,
        checks,
    })
}

fn deregister(node: &str, service_id: Option<&str>, check_id: Option<&str>) -> Command {
    Command::Deregister(DeregisterRequest {
        node: node.into(),
        service_id: service_id.map(str::to_string),
        check_id: check_id.map(str::to_string),
    })
}

fn indexes(store: &Store) -> [u64; 4] {
    [Table::Nodes, Table::Services, Table::Checks, Table::Kv].map(|t| store.table_index(t))
}

/// n1 with web-1 (web, tags prod) and a service check, plus a node-level check.
fn populated() -> Store {
    let mut store = Store::new();
    let result = store.apply(
        10,
        &register(
            node("n1", "10.0.0.1"),
            Some(service("web-1", "web", &["prod"])),
            vec![
                check("web-ok", "web ok", "web-1", CheckStatus::Passing),
                check("serfHealth", "Serf", "", CheckStatus::Passing),
            ],
        ),
    );
    assert_eq!(result, CommandResult::Done);
    store
}

#[test]
fn register_stamps_indexes_and_fills_defaults() {
    let mut store = Store::new();
    let mut svc = service("", "web", &["prod"]);
    svc.node = "ignored".into();
    svc.create_index = 999;
    let mut chk = check("", "alive", "web", CheckStatus::Warning);
    chk.node = "ignored".into();
    chk.service_name = "ignored".into();
    let result = store.apply(7, &register(node("n1", "10.0.0.1"), Some(svc), vec![chk]));
    assert_eq!(result, CommandResult::Done);

    assert_eq!(
        store.node("n1"),
        Some(&Node {
            create_index: 7,
            modify_index: 7,
            ..node("n1", "10.0.0.1")
        })
    );
    assert_eq!(
        store.node_services("n1"),
        vec![&Service {
            node: "n1".into(),
            id: "web".into(),
            create_index: 7,
            modify_index: 7,
            ..service("", "web", &["prod"])
        }]
    );
    assert_eq!(
        store.node_checks("n1"),
        vec![&Check {
            node: "n1".into(),
            check_id: "alive".into(),
            service_name: "web".into(),
            service_tags: vec!["prod".into()],
            create_index: 7,
            modify_index: 7,
            ..check("", "alive", "web", CheckStatus::Warning)
        }]
    );
    assert_eq!(indexes(&store), [7, 7, 7, 0]);
    assert_eq!(store.last_index(), 7);
    assert_eq!(store.service_index("web"), 7);
    assert_eq!(store.service_index("WEB"), 7);
}

#[test]
fn identical_reregister_changes_nothing() {
    let mut store = populated();
    let before = store.clone();
    let again = register(
        node("n1", "10.0.0.1"),
        Some(service("web-1", "web", &["prod"])),
        vec![
            check("web-ok", "web ok", "web-1", CheckStatus::Passing),
            check("serfHealth", "Serf", "", CheckStatus::Passing),
        ],
    );
    assert_eq!(store.apply(11, &again), CommandResult::Done);
    assert_eq!(store.last_index(), 11);
    assert_eq!(indexes(&store), [10, 10, 10, 0]);
    assert_eq!(store.service_index("web"), 10);
    // Everything but the last applied index is exactly as before.
    let mut expected = before;
    expected.last_index = 11;
    assert_eq!(store, expected);
}

#[test]
fn changed_node_moves_only_the_node_table_and_its_services_index() {
    let mut store = populated();
    store.apply(11, &register(node("n1", "10.0.0.2"), None, vec![]));
    assert_eq!(
        store.node("n1").map(|n| (n.create_index, n.modify_index)),
        Some((10, 11))
    );
    assert_eq!(indexes(&store), [11, 10, 10, 0]);
    assert_eq!(store.service_index("web"), 11);
    assert_eq!(store.node_services("n1")[0].modify_index, 10);
}

#[test]
fn skip_node_update_keeps_an_existing_node_and_creates_a_missing_one() {
    let mut store = populated();
    let cmd = Command::Register(RegisterRequest {
        node: Node {
            meta: [("k".to_string(), "v".to_string())].into(),
            ..node("N1", "9.9.9.9")
        },
        skip_node_update: true,
        service: Some(service("db-1", "db", &[])),
        checks: vec![],
    });
    assert_eq!(store.apply(11, &cmd), CommandResult::Done);
    assert_eq!(
        store.node("n1"),
        Some(&Node {
            create_index: 10,
            modify_index: 10,
            ..node("n1", "10.0.0.1")
        })
    );
    // The service takes the stored node's name, not the request's spelling.
    assert_eq!(store.node_services("n1")[0].node, "n1");
    assert_eq!(indexes(&store), [10, 11, 10, 0]);

    let cmd = Command::Register(RegisterRequest {
        node: node("n2", "10.0.0.2"),
        skip_node_update: true,
        service: None,
        checks: vec![],
    });
    store.apply(12, &cmd);
    assert_eq!(
        store.node("n2"),
        Some(&Node {
            create_index: 12,
            modify_index: 12,
            ..node("n2", "10.0.0.2")
        })
    );
}

#[test]
fn node_names_are_case_insensitive() {
    let mut store = populated();
    assert_eq!(store.node("N1").map(|n| n.node.as_str()), Some("n1"));
    assert_eq!(store.node_services("N1").len(), 1);
    assert_eq!(store.node_checks("N1").len(), 2);
    // Registering the other spelling updates the same node.
    store.apply(11, &register(node("N1", "10.0.0.1"), None, vec![]));
    assert_eq!(store.nodes().len(), 1);
    assert_eq!(
        store.node("n1").map(|n| (n.node.as_str(), n.modify_index)),
        Some(("N1", 11))
    );
    store.apply(12, &deregister("N1", None, None));
    assert!(store.nodes().is_empty());
    assert!(store.checks_in_state(None).is_empty());
}

#[test]
fn rejections_change_nothing() {
    let mut store = populated();
    let before = store.clone();
    let cases = [
        (
            register(node("", "1.2.3.4"), None, vec![]),
            "Must provide node and address",
        ),
        (
            register(node("n9", ""), None, vec![]),
            "Must provide node and address",
        ),
        (
            register(node("n1", "10.0.0.9"), Some(service("x", "", &[])), vec![]),
            "Must provide service name",
        ),
        (
            register(
                node("n1", "10.0.0.9"),
                Some(service("db-1", "db", &[])),
                vec![check("c", "c", "nope", CheckStatus::Passing)],
            ),
            "Unknown service ID \"nope\" for check ID \"c\"",
        ),
        (
            register(
                node("n1", "10.0.0.9"),
                None,
                vec![check("", "", "", CheckStatus::Passing)],
            ),
            "Must provide check ID or name",
        ),
        (deregister("", None, None), "Must provide node"),
    ];
    for (i, (cmd, reason)) in cases.iter().enumerate() {
        assert_eq!(
            store.apply(11 + i as u64, cmd),
            CommandResult::Rejected(reason.to_string())
        );
    }
    assert_eq!(indexes(&store), [10, 10, 10, 0]);
    let mut expected = before;
    expected.last_index = 16;
    assert_eq!(store, expected);
}

#[test]
fn check_may_name_an_already_registered_service() {
    let mut store = populated();
    let cmd = register(
        node("n1", "10.0.0.1"),
        None,
        vec![check("web-slow", "slow", "web-1", CheckStatus::Critical)],
    );
    assert_eq!(store.apply(11, &cmd), CommandResult::Done);
    let added = store
        .node_checks("n1")
        .into_iter()
        .find(|c| c.check_id == "web-slow")
        .cloned();
    assert_eq!(
        added.map(|c| (c.service_name, c.service_tags, c.create_index)),
        Some(("web".to_string(), vec!["prod".to_string()], 11))
    );
    assert_eq!(indexes(&store), [10, 10, 11, 0]);
    assert_eq!(store.service_index("web"), 11);
}

#[test]
fn reregistering_a_service_updates_its_checks() {
    let mut store = populated();
    store.apply(
        11,
        &register(
            node("n1", "10.0.0.1"),
            Some(service("web-1", "web", &["v2"])),
            vec![],
        ),
    );
    let web_ok = store
        .node_checks("n1")
        .into_iter()
        .find(|c| c.check_id == "web-ok")
        .cloned();
    assert_eq!(
        web_ok.map(|c| (c.service_tags, c.create_index, c.modify_index)),
        Some((vec!["v2".to_string()], 10, 11))
    );
    // The node-level check is untouched.
    let serf = store
        .node_checks("n1")
        .into_iter()
        .find(|c| c.check_id == "serfHealth")
        .cloned();
    assert_eq!(serf.map(|c| c.modify_index), Some(10));
    assert_eq!(indexes(&store), [10, 11, 11, 0]);
}

#[test]
fn renaming_a_service_moves_it_between_names() {
    let mut store = populated();
    store.apply(
        11,
        &register(
            node("n1", "10.0.0.1"),
            Some(service("web-1", "api", &[])),
            vec![],
        ),
    );
    assert!(store.service_instances("web", &[]).is_empty());
    assert_eq!(store.service_instances("api", &[]).len(), 1);
    assert_eq!(store.service_checks("api").len(), 1);
    assert!(store.service_checks("web").is_empty());
    assert_eq!(store.services().keys().collect::<Vec<_>>(), vec!["api"]);
    assert_eq!(store.service_index("api"), 11);
    // "web" has no instances left: it falls back to the catalog index.
    assert_eq!(store.service_index("web"), 11);
}

#[test]
fn deregister_check_service_and_node() {
    let mut store = populated();
    store.apply(
        11,
        &register(
            node("n1", "10.0.0.1"),
            Some(service("web-2", "web", &["canary"])),
            vec![],
        ),
    );

    // One check.
    assert_eq!(
        store.apply(12, &deregister("n1", None, Some("web-ok"))),
        CommandResult::Done
    );
    let ids: Vec<&str> = store
        .node_checks("n1")
        .iter()
        .map(|c| c.check_id.as_str())
        .collect();
    assert_eq!(ids, vec!["serfHealth"]);
    assert_eq!(indexes(&store), [10, 11, 12, 0]);
    assert_eq!(store.service_index("web"), 12);

    // One service, with its checks; the service id wins over a check id.
    store.apply(
        13,
        &register(
            node("n1", "10.0.0.1"),
            None,
            vec![check("web-2-ok", "ok", "web-2", CheckStatus::Passing)],
        ),
    );
    assert_eq!(
        store.apply(14, &deregister("n1", Some("web-2"), Some("serfHealth"))),
        CommandResult::Done
    );
    let ids: Vec<&str> = store
        .node_services("n1")
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(ids, vec!["web-1"]);
    let ids: Vec<&str> = store
        .node_checks("n1")
        .iter()
        .map(|c| c.check_id.as_str())
        .collect();
    assert_eq!(ids, vec!["serfHealth"]);
    assert_eq!(indexes(&store), [10, 14, 14, 0]);

    // The whole node.
    assert_eq!(
        store.apply(15, &deregister("n1", None, None)),
        CommandResult::Done
    );
    assert!(store.nodes().is_empty());
    assert!(store.node_services("n1").is_empty());
    assert!(store.node_checks("n1").is_empty());
    assert!(store.services().is_empty());
    assert_eq!(indexes(&store), [15, 15, 15, 0]);
    assert_eq!(store.service_index("web"), 15);
}

#[test]
fn deregistering_unknown_targets_is_a_no_op() {
    let mut store = populated();
    let before = store.clone();
    assert_eq!(
        store.apply(11, &deregister("nope", None, None)),
        CommandResult::Done
    );
    assert_eq!(
        store.apply(12, &deregister("n1", Some("nope"), None)),
        CommandResult::Done
    );
    assert_eq!(
        store.apply(13, &deregister("n1", None, Some("nope"))),
        CommandResult::Done
    );
    assert_eq!(
        store.apply(14, &deregister("n1", Some(""), Some("nope"))),
        CommandResult::Done
    );
    let mut expected = before;
    expected.last_index = 14;
    assert_eq!(store, expected);
}

#[test]
fn deregistering_a_node_without_services_moves_only_the_node_table() {
    let mut store = Store::new();
    store.apply(1, &register(node("n1", "a"), None, vec![]));
    store.apply(
        2,
        &register(node("n2", "b"), Some(service("s", "s", &[])), vec![]),
    );
    store.apply(3, &deregister("n1", None, None));
    assert_eq!(indexes(&store), [3, 2, 0, 0]);
}

fn two_node_catalog() -> Store {
    let mut store = Store::new();
    store.apply(
        1,
        &register(
            node("n2", "10.0.0.2"),
            Some(service("web-b", "web", &["Prod", "v1"])),
            vec![
                check("zz-node", "node", "", CheckStatus::Warning),
                check("aa-web", "web", "web-b", CheckStatus::Passing),
                check("mm-node", "node", "", CheckStatus::Passing),
            ],
        ),
    );
    store.apply(
        2,
        &register(
            node("n1", "10.0.0.1"),
            Some(service("web-a", "Web", &["prod"])),
            vec![check("web-a-ok", "ok", "web-a", CheckStatus::Critical)],
        ),
    );
    store.apply(
        3,
        &register(
            node("n1", "10.0.0.1"),
            Some(service("db", "db", &[])),
            vec![],
        ),
    );
    store.apply(
        4,
        &register(
            node("n1", "10.0.0.1"),
            Some(service("web-c", "web", &["v2"])),
            vec![],
        ),
    );
    store
}

#[test]
fn service_instances_sorted_with_node_checks_first_and_tag_filter() {
    let store = two_node_catalog();
    let found: Vec<(String, String, Vec<String>, CheckStatus)> = store
        .service_instances("WEB", &[])
        .iter()
        .map(|i| {
            (
                i.node.node.clone(),
                i.service.id.clone(),
                i.checks.iter().map(|c| c.check_id.clone()).collect(),
                i.aggregate_status(),
            )
        })
        .collect();
    assert_eq!(
        found,
        vec![
            (
                "n1".into(),
                "web-a".into(),
                vec!["web-a-ok".into()],
                CheckStatus::Critical
            ),
            ("n1".into(), "web-c".into(), vec![], CheckStatus::Passing),
            (
                "n2".into(),
                "web-b".into(),
                vec!["mm-node".into(), "zz-node".into(), "aa-web".into()],
                CheckStatus::Warning
            ),
        ]
    );
    let ids = |tags: &[&str]| -> Vec<String> {
        let tags: Vec<String> = tags.iter().map(|t| t.to_string()).collect();
        store
            .service_instances("web", &tags)
            .iter()
            .map(|i| i.service.id.clone())
            .collect()
    };
    assert_eq!(ids(&["PROD"]), vec!["web-a", "web-b"]);
    assert_eq!(ids(&["prod", "v1"]), vec!["web-b"]);
    assert_eq!(ids(&["nope"]), Vec::<String>::new());
    assert!(store.service_instances("missing", &[]).is_empty());
}

#[test]
fn catalog_listings() {
    let store = two_node_catalog();
    let names: Vec<&str> = store.nodes().iter().map(|n| n.node.as_str()).collect();
    assert_eq!(names, vec!["n1", "n2"]);
    let ids: Vec<&str> = store
        .node_services("n1")
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(ids, vec!["db", "web-a", "web-c"]);

    let expected: BTreeMap<String, Vec<String>> = [
        ("Web".to_string(), vec!["prod".to_string()]),
        ("db".to_string(), vec![]),
        (
            "web".to_string(),
            vec!["Prod".to_string(), "v1".to_string(), "v2".to_string()],
        ),
    ]
    .into();
    assert_eq!(store.services(), expected);

    let check_ids = |checks: Vec<&Check>| -> Vec<(String, String)> {
        checks
            .iter()
            .map(|c| (c.node.clone(), c.check_id.clone()))
            .collect()
    };
    let pair = |n: &str, c: &str| (n.to_string(), c.to_string());
    assert_eq!(
        check_ids(store.node_checks("n2")),
        vec![
            pair("n2", "aa-web"),
            pair("n2", "mm-node"),
            pair("n2", "zz-node")
        ]
    );
    assert_eq!(
        check_ids(store.service_checks("WEB")),
        vec![pair("n1", "web-a-ok"), pair("n2", "aa-web")]
    );
    assert_eq!(
        check_ids(store.checks_in_state(None)),
        vec![
            pair("n1", "web-a-ok"),
            pair("n2", "aa-web"),
            pair("n2", "mm-node"),
            pair("n2", "zz-node")
        ]
    );
    assert_eq!(
        check_ids(store.checks_in_state(Some(CheckStatus::Passing))),
        vec![pair("n2", "aa-web"), pair("n2", "mm-node")]
    );
    assert_eq!(
        check_ids(store.checks_in_state(Some(CheckStatus::Maintenance))),
        vec![]
    );
}

#[test]
fn per_service_index_follows_node_level_checks() {
    let mut store = two_node_catalog();
    assert_eq!(store.service_index("db"), 3);
    assert_eq!(store.service_index("web"), 4);
    // A node-level check on n2 touches only the services on n2.
    store.apply(
        5,
        &register(
            node("n2", "10.0.0.2"),
            None,
            vec![check("zz-node", "node", "", CheckStatus::Critical)],
        ),
    );
    assert_eq!(store.service_index("web"), 5);
    assert_eq!(store.service_index("db"), 3);
    // Unknown names fall back to the catalog's max index.
    assert_eq!(store.service_index("unknown"), 5);
    assert_eq!(store.catalog_index(), 5);
}

#[test]
fn a_check_moving_from_node_level_to_a_service_updates_both() {
    let mut store = two_node_catalog();
    store.apply(
        5,
        &register(
            node("n2", "10.0.0.2"),
            None,
            vec![check("zz-node", "node", "web-b", CheckStatus::Warning)],
        ),
    );
    let moved = store
        .node_checks("n2")
        .into_iter()
        .find(|c| c.check_id == "zz-node")
        .cloned();
    assert_eq!(
        moved.map(|c| (c.service_name, c.create_index, c.modify_index)),
        Some(("web".to_string(), 1, 5))
    );
    let web_b = store.service_instances("web", &["v1".to_string()]);
    let ids: Vec<&str> = web_b[0]
        .checks
        .iter()
        .map(|c| c.check_id.as_str())
        .collect();
    assert_eq!(ids, vec!["mm-node", "aa-web", "zz-node"]);
}

#[test]
fn snapshot_round_trips_through_the_codec() {
    let mut store = two_node_catalog();
    store.apply(
        5,
        &Command::Kv(KvOp::Set {
            key: "a/b".into(),
            value: vec![0, 1, 2],
            flags: 42,
        }),
    );
    store.apply(
        6,
        &Command::Kv(KvOp::Set {
            key: "a/c".into(),
            value: vec![],
            flags: 0,
        }),
    );
    store.apply(7, &Command::Kv(KvOp::Delete { key: "a/c".into() }));
    store.apply_noop(8);
    let bytes = crate::codec::encode(&store).expect("encode");
    let decoded: Store =
        crate::codec::decode(&bytes, crate::codec::MAX_DECODE_BYTES).expect("decode");
    assert_eq!(decoded, store);
    assert_eq!(decoded.last_index(), 8);
    assert_eq!(decoded.kv_prefix_index("a/"), 7);
    assert_eq!(decoded.service_index("web"), 4);
}

#[test]
fn a_node_id_registered_under_a_new_name_replaces_the_old_node() {
    let mut store = Store::new();
    let with_id = |name: &str| Node {
        id: "AB-12".into(),
        ..node(name, "10.0.0.1")
    };
    store.apply(
        1,
        &register(
            with_id("old"),
            Some(service("web-1", "web", &[])),
            vec![check("c", "c", "web-1", CheckStatus::Passing)],
        ),
    );
    store.apply(2, &register(node("other", "10.0.0.3"), None, vec![]));
    let renamed = Node {
        id: "ab-12".into(),
        ..node("new", "10.0.0.1")
    };
    assert_eq!(
        store.apply(3, &register(renamed, None, vec![])),
        CommandResult::Done
    );
    let names: Vec<&str> = store.nodes().iter().map(|n| n.node.as_str()).collect();
    assert_eq!(names, vec!["new", "other"]);
    assert!(store.node_services("old").is_empty());
    assert!(store.service_checks("web").is_empty());
    assert_eq!(indexes(&store), [3, 3, 3, 0]);
    // Re-registering under the same name is an update, not a rename.
    store.apply(
        4,
        &register(
            Node {
                id: "ab-12".into(),
                ..node("NEW", "10.0.0.9")
            },
            None,
            vec![],
        ),
    );
    let names: Vec<&str> = store.nodes().iter().map(|n| n.node.as_str()).collect();
    assert_eq!(names, vec!["NEW", "other"]);
}

#[test]
fn registrations_that_would_multiply_into_huge_state_are_refused() {
    // 1000 tags of 100 bytes: each check of the service carries about 124 KB.
    let tags: Vec<String> = (0..1000).map(|i| format!("{i:0>100}")).collect();
    let tag_refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let per_check = carried_bytes("n1", "web", &tags);
    assert!(per_check > 120_000);
    let checks = |from: usize, n: usize| -> Vec<Check> {
        (from..from + n)
            .map(|i| check(&format!("c{i}"), "", "web-1", CheckStatus::Passing))
            .collect()
    };
    let mut store = Store::new();
    let svc = service("web-1", "web", &tag_refs);
    let refused = |result: CommandResult| matches!(result, CommandResult::Rejected(t) if t.starts_with("Registration too large: "));
    // Too many checks in one request: refused, nothing changes.
    let over = MAX_REGISTRATION_COPY_BYTES / per_check + 1;
    let result = store.apply(
        1,
        &register(node("n1", "10.0.0.1"), Some(svc.clone()), checks(0, over)),
    );
    assert!(refused(result));
    assert_eq!(store.nodes().len(), 0);
    assert_eq!(indexes(&store), [0, 0, 0, 0]);
    // The same checks over two requests are fine ...
    let half = over / 2 + 1;
    assert_eq!(
        store.apply(
            2,
            &register(node("n1", "10.0.0.1"), Some(svc.clone()), checks(0, half))
        ),
        CommandResult::Done
    );
    assert_eq!(
        store.apply(
            3,
            &register(node("n1", "10.0.0.1"), None, checks(half, half))
        ),
        CommandResult::Done
    );
    assert_eq!(store.node_checks("n1").len(), 2 * half);
    // ... but then changing the service's tags would rewrite every one of them.
    let before = store.clone();
    let mut retagged = svc.clone();
    retagged.tags.push("new".into());
    let result = store.apply(4, &register(node("n1", "10.0.0.1"), Some(retagged), vec![]));
    assert!(refused(result));
    assert_eq!(
        store,
        Store {
            last_index: 4,
            ..before
        }
    );
    // A node name copied into many checks counts too.
    let long_name = "n".repeat(1024 * 1024);
    let node_checks: Vec<Check> = (0..17)
        .map(|i| check(&format!("c{i}"), "", "", CheckStatus::Passing))
        .collect();
    let result = store.apply(
        5,
        &register(node(&long_name, "10.0.0.2"), None, node_checks),
    );
    assert!(refused(result));
    assert!(store.node(&long_name).is_none());
}

#[test]
fn tag_and_id_folding_follows_go_equal_fold() {
    use super::eq_fold;
    for (a, b) in [
        ("web", "WEB"),
        ("v1", "v1"),
        ("", ""),
        ("σ", "ς"),
        ("Σ", "ς"),
        ("ſ", "S"),
        ("\u{212A}", "k"),
        ("ÄRGER", "ärger"),
        ("ß", "ẞ"),
    ] {
        assert!(eq_fold(a, b), "{a:?} ~ {b:?}");
        assert!(eq_fold(b, a), "{b:?} ~ {a:?}");
    }
    for (a, b) in [
        ("web", "web2"),
        ("web", ""),
        ("ß", "ss"),
        ("straße", "STRASSE"),
        ("\u{130}", "i"),
        ("é", "e"),
    ] {
        assert!(!eq_fold(a, b), "{a:?} !~ {b:?}");
        assert!(!eq_fold(b, a), "{b:?} !~ {a:?}");
    }
}
