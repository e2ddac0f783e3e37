//! Seeded property tests: hostile catalog content (odd node names and addresses, negative
//! weights, huge ports, unicode) and random query names never make the pure DNS layer
//! panic, and every answer keeps the shape rules the edge relies on.

use super::*;
use crate::store::{Check, CheckStatus, Command, Node, RegisterRequest, Service, Store, Weights};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const ZONE: Zone<'static> = Zone {
    domain: "consul.",
    datacenter: "dc1",
    soa_serial: 9,
    only_passing: false,
};

const NAMES: &[&str] = &[
    "web",
    "WEB",
    "db",
    "a.b",
    "é",
    "名前",
    "with space",
    "_web",
    "_tcp",
    "node",
    "service",
    "addr",
    "consul",
    "dc1",
    "-",
    ".",
    "..",
    "a..b",
    "x\\y",
    "c000020a",
    "big",
];
const ADDRESSES: &[&str] = &[
    "10.0.0.1",
    "10.0.0.2",
    "::1",
    "2001:db8::1",
    "::ffff:10.0.0.1",
    "www.example.com",
    "www.example.com.",
    "bad..host",
    "1.2.3.4.5",
    "",
    " ",
    "é.example",
    "256.1.1.1",
];

fn pick<'a>(rng: &mut StdRng, from: &[&'a str]) -> &'a str {
    from[rng.random_range(0..from.len())]
}

fn odd_name(rng: &mut StdRng) -> String {
    match rng.random_range(0..4) {
        0 => "n".repeat(rng.random_range(60..300)),
        1 => format!("{}{}", pick(rng, NAMES), rng.random_range(0..5)),
        _ => pick(rng, NAMES).to_string(),
    }
}

fn hostile_store(rng: &mut StdRng) -> Store {
    let mut store = Store::new();
    for index in 1..=80u64 {
        let node_name = odd_name(rng);
        let service = rng.random_bool(0.8).then(|| Service {
            id: odd_name(rng),
            service: pick(rng, NAMES).to_string(),
            tags: (0..rng.random_range(0..3))
                .map(|_| pick(rng, NAMES).to_string())
                .collect(),
            address: pick(rng, ADDRESSES).to_string(),
            port: rng.random(),
            weights: Weights {
                passing: rng.random(),
                warning: rng.random(),
            },
            ..Service::default()
        });
        let statuses = [
            CheckStatus::Passing,
            CheckStatus::Warning,
            CheckStatus::Critical,
        ];
        let checks = (0..rng.random_range(0..2))
            .map(|i| Check {
                check_id: format!("c{i}"),
                status: statuses[rng.random_range(0..3)],
                service_id: if rng.random_bool(0.5) {
                    service.as_ref().map(|s| s.id.clone()).unwrap_or_default()
                } else {
                    String::new()
                },
                ..Check::default()
            })
            .collect();
        let meta = (0..rng.random_range(0..3))
            .map(|_| {
                (
                    format!("{}=`{}", pick(rng, NAMES), rng.random_range(0..9)),
                    "v".repeat(rng.random_range(0..600)),
                )
            })
            .collect();
        let req = RegisterRequest {
            node: Node {
                node: node_name,
                address: pick(rng, ADDRESSES).to_string(),
                meta,
                ..Node::default()
            },
            skip_node_update: false,
            service,
            checks,
        };
        // Some of these are refused by the store (empty address ...): that is fine.
        let _ = store.apply(index, &Command::Register(req));
    }
    store
}

fn random_qname(rng: &mut StdRng) -> String {
    const SUFFIXES: &[&str] = &[
        ".node.consul.",
        ".service.consul.",
        ".service.dc1.consul.",
        ".service.dc2.dc.consul.",
        ".addr.consul.",
        ".consul.",
        ".in-addr.arpa.",
        ".ip6.arpa.",
        "",
        ".",
    ];
    let labels: Vec<String> = (0..rng.random_range(0..5))
        .map(|_| match rng.random_range(0..3) {
            0 => pick(rng, NAMES).to_string(),
            1 => rng.random_range(0..300).to_string(),
            _ => (0..rng.random_range(0..8))
                .map(|_| char::from(rng.random_range(32u8..127)))
                .collect(),
        })
        .collect();
    format!("{}{}", labels.join("."), pick(rng, SUFFIXES))
}

fn check_shape(answer: &DnsAnswer, qname: &str) {
    if answer.rcode == Rcode::NxDomain {
        assert!(answer.answers.is_empty(), "{qname}: NXDOMAIN with answers");
    }
    if answer.answers.is_empty() {
        assert!(
            matches!(answer.authorities.as_slice(), [soa] if matches!(soa.data, RecordData::Soa(_))),
            "{qname}: a negative answer carries exactly the SOA"
        );
        assert!(answer.additionals.is_empty() && answer.hosts_to_resolve.is_empty());
    }
    for record in answer
        .answers
        .iter()
        .chain(&answer.authorities)
        .chain(&answer.additionals)
    {
        assert!(
            record.name.ends_with('.'),
            "{qname}: relative {}",
            record.name
        );
        assert_eq!(record.ttl, ANSWER_TTL);
    }
    for host in &answer.hosts_to_resolve {
        assert!(host.ends_with('.'), "{qname}: relative host {host}");
    }
}

#[test]
fn hostile_catalogs_and_random_names_keep_answers_well_formed() {
    let types = [
        QueryType::A,
        QueryType::Aaaa,
        QueryType::Cname,
        QueryType::Srv,
        QueryType::Txt,
        QueryType::Soa,
        QueryType::Ns,
        QueryType::Ptr,
        QueryType::Any,
        QueryType::Other(15),
    ];
    let mut rng = StdRng::seed_from_u64(0xa115);
    let mut answered = 0;
    for _ in 0..4 {
        let store = hostile_store(&mut rng);
        // Names the store actually holds, so real answers are built, not just NXDOMAIN.
        let mut names: Vec<String> = store
            .nodes()
            .iter()
            .map(|n| format!("{}.node.consul.", n.node))
            .collect();
        names.extend(
            store
                .services()
                .keys()
                .map(|s| format!("{s}.service.consul.")),
        );
        names.extend(
            store
                .services()
                .keys()
                .map(|s| format!("_{s}._tcp.service.consul.")),
        );
        names.extend((0..800).map(|_| random_qname(&mut rng)));
        for name in &names {
            let qtype = types[rng.random_range(0..types.len())];
            if let Some(query) = parse_query_name(name, ZONE.domain) {
                let seed = rng.random();
                let answer = build_answer(
                    &store,
                    &ZONE,
                    name,
                    qtype,
                    &query,
                    &mut StdRng::seed_from_u64(seed),
                );
                check_shape(&answer, name);
                // Deterministic for a given seed (replayable).
                let again = build_answer(
                    &store,
                    &ZONE,
                    name,
                    qtype,
                    &query,
                    &mut StdRng::seed_from_u64(seed),
                );
                assert_eq!(answer, again);
                answered += 1;
            }
            if let Some(ip) = parse_reverse_name(name) {
                if let Some(answer) = build_ptr_answer(&store, &ZONE, name, ip) {
                    assert!(!answer.answers.is_empty());
                    check_shape(&answer, name);
                }
            }
        }
    }
    assert!(answered > 1000, "{answered}");
}

#[test]
fn huge_instance_counts_answer_in_bounded_time() {
    // 20 000 instances of one service on distinct addresses: the answer builder must not
    // be quadratic in the instance count (every DNS query for the name pays for it).
    let mut store = Store::new();
    for i in 0..20_000u64 {
        let req = RegisterRequest {
            node: Node {
                node: format!("n{i}"),
                address: format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255),
                ..Node::default()
            },
            skip_node_update: false,
            service: Some(Service {
                service: "many".into(),
                port: 80,
                ..Service::default()
            }),
            checks: vec![],
        };
        store.apply(i + 1, &Command::Register(req));
    }
    let query = parse_query_name("many.service.consul.", "consul.").unwrap();
    let mut rng = StdRng::seed_from_u64(1);
    let started = std::time::Instant::now();
    for qtype in [QueryType::A, QueryType::Srv] {
        let answer = build_answer(
            &store,
            &ZONE,
            "many.service.consul.",
            qtype,
            &query,
            &mut rng,
        );
        assert_eq!(answer.answers.len(), 20_000);
    }
    let spent = started.elapsed();
    assert!(spent < std::time::Duration::from_secs(3), "{spent:?}");
}
