//! Seeded randomized check of the store's index invariants over thousands of commands.

use super::*;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const NODES: [&str; 4] = ["n1", "N1", "n2", "n3"];
const SERVICE_NAMES: [&str; 5] = ["web", "Web", "db", "api", ""];
const SERVICE_IDS: [&str; 4] = ["", "web-1", "db-1", "x"];
const CHECK_IDS: [&str; 4] = ["", "c1", "c2", "serfHealth"];
const TAGS: [&str; 3] = ["prod", "PROD", "v2"];
const KEYS: [&str; 7] = ["", "a", "a/b", "a/c", "b", "b/x/y", "é/ü"];
const PREFIXES: [&str; 5] = ["", "a", "a/", "b/", "zz"];

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

fn random_check(rng: &mut StdRng) -> Check {
    let status = [
        CheckStatus::Passing,
        CheckStatus::Warning,
        CheckStatus::Critical,
    ];
    Check {
        check_id: pick(rng, &CHECK_IDS).into(),
        name: pick(rng, &["", "alive", "c1"]).into(),
        service_id: pick(rng, &SERVICE_IDS).into(),
        status: status[rng.random_range(0..status.len())],
        output: pick(rng, &["", "ok"]).into(),
        ..Check::default()
    }
}

pub(super) fn random_command(rng: &mut StdRng) -> Command {
    match rng.random_range(0..10) {
        0..=2 => {
            let service = rng.random_bool(0.6).then(|| Service {
                id: pick(rng, &SERVICE_IDS).into(),
                service: pick(rng, &SERVICE_NAMES).into(),
                tags: (0..rng.random_range(0..3))
                    .map(|_| pick(rng, &TAGS).to_string())
                    .collect(),
                port: rng.random_range(0..3),
                ..Service::default()
            });
            Command::Register(RegisterRequest {
                node: Node {
                    id: pick(rng, &["", "", "id-1", "ID-1", "id-2"]).into(),
                    node: pick(rng, &NODES).into(),
                    address: pick(rng, &["", "10.0.0.1", "10.0.0.2"]).into(),
                    ..Node::default()
                },
                skip_node_update: rng.random_bool(0.3),
                service,
                checks: (0..rng.random_range(0..3))
                    .map(|_| random_check(rng))
                    .collect(),
            })
        }
        3 => Command::Deregister(DeregisterRequest {
            node: pick(rng, &["", "n1", "N1", "n2", "n3"]).into(),
            service_id: rng
                .random_bool(0.4)
                .then(|| pick(rng, &SERVICE_IDS).to_string()),
            check_id: rng
                .random_bool(0.4)
                .then(|| pick(rng, &CHECK_IDS).to_string()),
        }),
        _ => {
            let key = pick(rng, &KEYS).to_string();
            let value = vec![rng.random::<u8>(); rng.random_range(0..3)];
            let index = rng.random_range(0..40);
            Command::Kv(match rng.random_range(0..5) {
                0 => KvOp::Set {
                    key,
                    value,
                    flags: rng.random(),
                },
                1 => KvOp::Cas {
                    key,
                    value,
                    flags: 0,
                    index,
                },
                2 => KvOp::Delete { key },
                3 => KvOp::DeleteCas { key, index },
                _ => KvOp::DeleteTree {
                    prefix: pick(rng, &PREFIXES).into(),
                },
            })
        }
    }
}

const TABLES: [Table; 4] = [Table::Nodes, Table::Services, Table::Checks, Table::Kv];

/// Every row's indexes are ordered and bounded by its table's index, and the catalog's
/// cross references hold.
fn assert_rows_consistent(store: &Store) {
    let last = store.last_index();
    let within = |create: u64, modify: u64, table: Table| {
        assert!(create <= modify, "create {create} > modify {modify}");
        assert!(
            modify <= store.table_index(table),
            "{table:?} row above its table index"
        );
        assert!(
            store.table_index(table) <= last,
            "{table:?} index above last_index"
        );
    };
    for n in store.nodes.values() {
        within(n.create_index, n.modify_index, Table::Nodes);
    }
    for ((node_key, id), s) in &store.services {
        within(s.create_index, s.modify_index, Table::Services);
        assert!(
            store.nodes.contains_key(node_key),
            "service {id} without its node"
        );
        let entry = store.service_names.get(&fold(&s.service));
        assert!(entry.is_some_and(|e| e.instances.contains(&(node_key.clone(), id.clone()))));
    }
    for ((node_key, _), c) in &store.checks {
        within(c.create_index, c.modify_index, Table::Checks);
        assert!(store.nodes.contains_key(node_key), "check without its node");
        if !c.service_id.is_empty() {
            let owner = store
                .services
                .get(&(node_key.clone(), c.service_id.clone()));
            assert_eq!(
                owner.map(|s| (&s.service, &s.tags)),
                Some((&c.service_name, &c.service_tags))
            );
        }
    }
    for (name, entry) in &store.service_names {
        assert!(!entry.instances.is_empty(), "empty entry for {name}");
        assert!(entry.index <= last);
        for key in &entry.instances {
            assert_eq!(
                store.services.get(key).map(|s| fold(&s.service)).as_ref(),
                Some(name)
            );
        }
    }
    for e in store.kv.values() {
        within(e.create_index, e.modify_index, Table::Kv);
    }
    for (key, deleted_at) in &store.kv_tombstones {
        assert!(*deleted_at <= store.table_index(Table::Kv));
        assert!(
            !store.kv.contains_key(key),
            "{key} both live and tombstoned"
        );
    }
}

#[test]
fn indexes_never_go_backwards_over_random_commands() {
    for seed in [1u64, 2, 3] {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut store = Store::new();
        let mut replica = Store::new();
        let mut index = 0u64;
        let mut applied = 0usize;
        let mut rejected = 0usize;
        for _ in 0..3000 {
            index += rng.random_range(1..3);
            let before_tables = TABLES.map(|t| store.table_index(t));
            let before_services = SERVICE_NAMES.map(|n| store.service_index(n));
            let before_prefixes = PREFIXES.map(|p| store.kv_prefix_index(p));
            if rng.random_bool(0.05) {
                store.apply_noop(index);
                replica.apply_noop(index);
            } else {
                let cmd = random_command(&mut rng);
                let before = store.clone();
                let result = store.apply(index, &cmd);
                assert_eq!(
                    replica.apply(index, &cmd),
                    result,
                    "seed {seed}: replicas disagree"
                );
                if let CommandResult::Rejected(_) = result {
                    // A rejection changes nothing but the applied index.
                    let mut expected = before;
                    expected.last_index = index;
                    assert_eq!(store, expected, "seed {seed}: rejection changed the store");
                    rejected += 1;
                } else {
                    applied += 1;
                }
            }
            assert_eq!(store.last_index(), index);
            for (i, t) in TABLES.iter().enumerate() {
                assert!(
                    store.table_index(*t) >= before_tables[i],
                    "seed {seed}: {t:?} went back"
                );
            }
            for (i, n) in SERVICE_NAMES.iter().enumerate() {
                assert!(
                    store.service_index(n) >= before_services[i],
                    "seed {seed}: {n} went back"
                );
            }
            for (i, p) in PREFIXES.iter().enumerate() {
                assert!(
                    store.kv_prefix_index(p) >= before_prefixes[i],
                    "seed {seed}: {p} went back"
                );
            }
            assert_rows_consistent(&store);
        }
        assert_eq!(store, replica, "seed {seed}: replicas diverged");
        assert!(
            applied > 2000 && rejected > 50,
            "seed {seed}: poor coverage {applied}/{rejected}"
        );
        let bytes = crate::codec::encode(&store).expect("encode");
        let decoded: Store =
            crate::codec::decode(&bytes, crate::codec::MAX_DECODE_BYTES).expect("decode");
        assert_eq!(decoded, store);
    }
}

#[test]
fn instance_health_agrees_with_the_full_instance_view() {
    // The per-node shortcut of `service_instances_health` must give exactly the
    // instances, order and aggregate status of `service_instances`.
    for seed in [4u64, 5] {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut store = Store::new();
        for index in 1..2000u64 {
            store.apply(index, &random_command(&mut rng));
            if index % 50 != 0 {
                continue;
            }
            for name in SERVICE_NAMES {
                for tags in [vec![], vec![pick(&mut rng, &TAGS).to_string()]] {
                    let full: Vec<(&str, &str, CheckStatus)> = store
                        .service_instances(name, &tags)
                        .iter()
                        .map(|i| {
                            (
                                i.node.node.as_str(),
                                i.service.id.as_str(),
                                i.aggregate_status(),
                            )
                        })
                        .collect();
                    let quick: Vec<(&str, &str, CheckStatus)> = store
                        .service_instances_health(name, &tags)
                        .iter()
                        .map(|i| {
                            (
                                i.node.node.as_str(),
                                i.service.id.as_str(),
                                i.aggregate_status(),
                            )
                        })
                        .collect();
                    assert_eq!(quick, full, "seed {seed} at {index}: {name} {tags:?}");
                }
            }
        }
    }
}

#[test]
fn many_instances_and_node_checks_on_one_node_stay_linear() {
    // 3000 instances of one service and 3000 node-level checks on the same node: the
    // health view reads the node's checks once, not once per instance.
    let mut store = Store::new();
    let node = Node {
        node: "n".into(),
        address: "10.0.0.1".into(),
        ..Node::default()
    };
    for i in 0..3000u64 {
        let req = RegisterRequest {
            node: node.clone(),
            skip_node_update: false,
            service: Some(Service {
                id: format!("s{i}"),
                service: "many".into(),
                ..Service::default()
            }),
            checks: vec![Check {
                check_id: format!("c{i}"),
                status: CheckStatus::Warning,
                ..Check::default()
            }],
        };
        assert_eq!(
            store.apply(i + 1, &Command::Register(req)),
            CommandResult::Done
        );
    }
    let started = std::time::Instant::now();
    let health = store.service_instances_health("many", &[]);
    assert_eq!(health.len(), 3000);
    assert!(health.iter().all(|i| i.status == CheckStatus::Warning));
    let spent = started.elapsed();
    assert!(spent < std::time::Duration::from_millis(500), "{spent:?}");
}
