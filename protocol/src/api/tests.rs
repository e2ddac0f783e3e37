//! Codec round trips of every request and answer variant, a seeded fuzz of the decoders,
//! and the prefix-index memo.

// KV values are built with `.into()` so these tests compile unchanged whether the store
// keeps values as `Vec<u8>` or as shared `Arc<[u8]>` (a change in flight on another branch).
#![allow(clippy::useless_conversion)]

use super::answer::PrefixIndexWatch;
use super::*;
use crate::rng;
use crate::store::{Command, Store, Weights};
use rand::{Rng, RngCore};

fn node() -> Node {
    Node {
        id: "40e4a748-2192-161a-0510-9bf59fe950b5".into(),
        node: "n1".into(),
        address: "10.0.0.1".into(),
        datacenter: "dc1".into(),
        meta: [("env".to_string(), "prod".to_string())].into(),
        create_index: 3,
        modify_index: 4,
        ..Node::default()
    }
}

fn service() -> Service {
    Service {
        node: "n1".into(),
        id: "web-1".into(),
        service: "web".into(),
        tags: vec!["a".into()],
        port: 80,
        ..Service::default()
    }
}

fn check() -> Check {
    Check {
        node: "n1".into(),
        check_id: "c".into(),
        status: CheckStatus::Warning,
        ..Check::default()
    }
}

fn entry() -> KvEntry {
    KvEntry {
        key: "k".into(),
        value: vec![0, 1, 255].into(),
        flags: u64::MAX,
        session: Some("s".into()),
        ..KvEntry::default()
    }
}

fn options() -> QueryOptions {
    QueryOptions {
        consistency: Consistency::Consistent,
        min_index: u64::MAX,
        wait: Some(Duration::from_millis(1500)),
        filter: Some("Node == x".into()),
    }
}

fn every_request() -> Vec<Request> {
    let meta: NodeMetaFilter = vec![("k".into(), "v".into())];
    let reads = vec![
        Read::CatalogNodes {
            node_meta: meta.clone(),
        },
        Read::CatalogServices { node_meta: vec![] },
        Read::CatalogService {
            name: "web".into(),
            tags: vec!["a".into(), "b".into()],
            node_meta: meta.clone(),
        },
        Read::CatalogNode { node: "n1".into() },
        Read::HealthService {
            name: "web".into(),
            tags: vec![],
            node_meta: meta,
            passing: true,
        },
        Read::HealthNode { node: "n1".into() },
        Read::HealthChecks {
            service: "web".into(),
        },
        Read::HealthState { state: None },
        Read::HealthState {
            state: Some(CheckStatus::Critical),
        },
        Read::InstancesHealth {
            name: "web".into(),
            tags: vec!["x".into()],
        },
        Read::Node { node: "n1".into() },
        Read::AddressOwners {
            address: "2001:db8::1".parse().unwrap(),
        },
        Read::KvGet { key: "k".into() },
        Read::KvList { prefix: "".into() },
        Read::KvKeys {
            prefix: "a/".into(),
            separator: Some("/".into()),
        },
    ];
    let mut out: Vec<Request> = reads
        .into_iter()
        .map(|read| {
            Request::Read(ReadRequest {
                options: options(),
                read,
            })
        })
        .collect();
    let register = RegisterRequest {
        node: node(),
        skip_node_update: true,
        service: Some(service()),
        checks: vec![check()],
    };
    out.extend([
        Request::Write(WriteRequest::Register(register)),
        Request::Write(WriteRequest::Deregister(DeregisterRequest {
            node: "n1".into(),
            service_id: Some("web".into()),
            check_id: None,
        })),
        Request::Write(WriteRequest::Kv(KvOp::Set {
            key: "k".into(),
            value: vec![1, 2].into(),
            flags: 7,
        })),
        Request::Write(WriteRequest::Kv(KvOp::Cas {
            key: "k".into(),
            value: vec![].into(),
            flags: 0,
            index: 9,
        })),
        Request::Write(WriteRequest::Kv(KvOp::Delete { key: "k".into() })),
        Request::Write(WriteRequest::Kv(KvOp::DeleteCas {
            key: "k".into(),
            index: 3,
        })),
        Request::Write(WriteRequest::Kv(KvOp::DeleteTree { prefix: "p".into() })),
        Request::Info(InfoRequest::Datacenters),
        Request::Info(InfoRequest::Leader),
        Request::Info(InfoRequest::Peers),
    ]);
    out
}

fn every_answer() -> Vec<Answer> {
    let meta = QueryMeta {
        index: 42,
        known_leader: true,
        last_contact_ms: 17,
        consistency: Consistency::Stale,
    };
    let data = vec![
        ReadData::Nodes(vec![node()]),
        ReadData::Services([("web".to_string(), vec!["a".to_string()])].into()),
        ReadData::ServiceNodes(vec![ServiceNode {
            node: node(),
            service: service(),
        }]),
        ReadData::NodeServices(Some(NodeServices {
            node: node(),
            services: vec![service()],
        })),
        ReadData::NodeServices(None),
        ReadData::ServiceEntries(vec![ServiceEntry {
            node: node(),
            service: service(),
            checks: vec![check()],
        }]),
        ReadData::Checks(vec![check(), check()]),
        ReadData::InstancesHealth(vec![InstanceStatus {
            node: "n1".into(),
            node_address: "10.0.0.1".into(),
            node_meta: node().meta,
            service_address: String::new(),
            port: 80,
            weights: Weights::default(),
            status: CheckStatus::Critical,
        }]),
        ReadData::Node(Some(node())),
        ReadData::Node(None),
        ReadData::AddressOwners(AddressOwners {
            nodes: vec!["n1".into()],
            services: vec!["web".into()],
        }),
        ReadData::KvEntry(Some(entry())),
        ReadData::KvEntry(None),
        ReadData::KvEntries(vec![entry()]),
        ReadData::KvKeys(vec!["a/".into(), "b".into()]),
    ];
    let mut out: Vec<Answer> = data
        .into_iter()
        .map(|data| Ok(Response::Read(ReadResponse { meta, data })))
        .collect();
    out.extend([
        Ok(Response::Write(WriteOutcome::Done)),
        Ok(Response::Write(WriteOutcome::Bool(false))),
        Ok(Response::Info(InfoData::Datacenters(vec!["dc1".into()]))),
        Ok(Response::Info(InfoData::Leader(Some(
            "10.0.0.1:8300".into(),
        )))),
        Ok(Response::Info(InfoData::Leader(None))),
        Ok(Response::Info(InfoData::Peers(vec!["a".into()]))),
        Err(RequestError::NoLeader),
        Err(RequestError::bad_request("Missing key name")),
        Err(RequestError::NotFound("nope".into())),
        Err(RequestError::TooLarge("big".into())),
        Err(RequestError::CommandTooLarge { len: 10, limit: 5 }),
        Err(RequestError::internal("No path to datacenter")),
        Err(RequestError::Timeout),
        Err(RequestError::LeadershipLost),
        Err(RequestError::Storage("disk full".into())),
        Err(RequestError::ShuttingDown),
    ]);
    out
}

#[test]
fn every_request_round_trips() {
    for request in every_request() {
        let bytes = encode_request(&request).unwrap();
        assert_eq!(decode_request(&bytes).unwrap(), request);
    }
}

#[test]
fn every_answer_round_trips() {
    for answer in every_answer() {
        let bytes = encode_answer(&answer).unwrap();
        assert_eq!(decode_answer(&bytes).unwrap(), answer);
    }
}

#[test]
fn error_texts_are_consuls() {
    assert_eq!(RequestError::NoLeader.to_string(), "No cluster leader");
    assert_eq!(
        RequestError::Timeout.to_string(),
        "timed out enqueuing operation"
    );
    assert_eq!(
        RequestError::CommandTooLarge { len: 10, limit: 5 }.to_string(),
        "command of 10 bytes exceeds the limit of 5 bytes"
    );
    assert_eq!(RequestError::bad_request("x").to_string(), "x");
}

#[test]
fn oversized_inputs_are_refused_before_decoding() {
    // The limit covers the body; the frame adds its 2-byte version.
    let big = vec![0u8; MAX_REQUEST_BYTES + 2 + 1];
    assert!(matches!(
        decode_request(&big),
        Err(CodecError::TooLarge { .. })
    ));
}

#[test]
fn frames_carry_their_format_version_and_refuse_unknown_ones() {
    let request = Request::Info(InfoRequest::Leader);
    let mut bytes = encode_request(&request).unwrap();
    assert_eq!(bytes[..2], WIRE_VERSION.to_le_bytes());
    bytes[..2].copy_from_slice(&7u16.to_le_bytes());
    assert_eq!(
        decode_request(&bytes),
        Err(CodecError::Decode(format!(
            "unknown wire format version 7 (this build speaks {WIRE_VERSION})"
        )))
    );
    assert!(
        decode_answer(&[1]).is_err(),
        "a frame shorter than its version"
    );
}

/// Random bytes, and every valid encoding cut short, bit-flipped or extended, must decode
/// to an error or a value, never panic. Seeded, so a failure replays.
#[test]
fn decoders_never_panic_on_hostile_bytes() {
    let mut rng = rng::seeded(0x00a9_1c0d);
    let requests: Vec<Vec<u8>> = every_request()
        .iter()
        .map(|r| encode_request(r).unwrap())
        .collect();
    let answers: Vec<Vec<u8>> = every_answer()
        .iter()
        .map(|a| encode_answer(a).unwrap())
        .collect();
    let mut decoded_ok = 0u32;
    for round in 0..4000 {
        let bytes = match round % 4 {
            0 => {
                let mut b = vec![0u8; rng.random_range(0..64)];
                rng.fill_bytes(&mut b);
                b
            }
            1 | 2 => {
                let pool = if round % 4 == 1 { &requests } else { &answers };
                let mut b = pool[rng.random_range(0..pool.len())].clone();
                for _ in 0..rng.random_range(1..4) {
                    if b.is_empty() {
                        break;
                    }
                    let at = rng.random_range(0..b.len());
                    b[at] ^= 1 << rng.random_range(0..8);
                }
                b
            }
            _ => {
                let pool = if rng.random_bool(0.5) {
                    &requests
                } else {
                    &answers
                };
                let b = &pool[rng.random_range(0..pool.len())];
                let mut cut = b[..rng.random_range(0..=b.len())].to_vec();
                if rng.random_bool(0.3) {
                    cut.push(rng.random());
                }
                cut
            }
        };
        if let Ok(request) = decode_request(&bytes) {
            decoded_ok += 1;
            // A value that decoded encodes again (it is a real value, not garbage).
            assert!(encode_request(&request).is_ok());
        }
        if let Ok(answer) = decode_answer(&bytes) {
            decoded_ok += 1;
            assert!(encode_answer(&answer).is_ok());
        }
    }
    // The mutations must not be so hostile that nothing ever decodes (then the test
    // would only exercise the first byte).
    assert!(decoded_ok > 0);
}

/// Deterministic xorshift, so a failure replays.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn prefix_index_watch_always_equals_a_fresh_scan() {
    const KEYS: [&str; 8] = ["a", "a/b", "a/b/c", "a/c", "ab", "b", "b/x", ""];
    const PREFIXES: [&str; 5] = ["", "a", "a/", "a/b", "zz"];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut store = Store::new();
    let mut watches: Vec<PrefixIndexWatch> =
        PREFIXES.iter().map(|_| PrefixIndexWatch::new()).collect();
    for index in 1..3000u64 {
        let key = KEYS[(next(&mut rng) % KEYS.len() as u64) as usize].to_string();
        match next(&mut rng) % 6 {
            0 | 1 => {
                let op = KvOp::Set {
                    key,
                    value: vec![1].into(),
                    flags: 0,
                };
                store.apply(index, &Command::Kv(op));
            }
            2 => {
                store.apply(index, &Command::Kv(KvOp::Delete { key }));
            }
            3 => {
                store.apply(index, &Command::Kv(KvOp::DeleteTree { prefix: key }));
            }
            4 => {
                store.reap_tombstones(index.saturating_sub(next(&mut rng) % 200));
                store.apply_noop(index);
            }
            _ => store.apply_noop(index),
        }
        for (watch, prefix) in watches.iter_mut().zip(PREFIXES) {
            assert_eq!(
                watch.index(&store, prefix),
                store.kv_prefix_index(prefix),
                "prefix {prefix:?} after entry {index}"
            );
        }
    }
}

#[test]
fn prefix_index_watch_does_not_rescan_when_kv_is_unchanged() {
    let mut store = Store::new();
    let set = |key: &str| {
        Command::Kv(KvOp::Set {
            key: key.into(),
            value: vec![].into(),
            flags: 0,
        })
    };
    store.apply(1, &set("app/x"));
    store.apply(2, &set("other"));
    let mut watch = PrefixIndexWatch::new();
    assert_eq!(watch.index(&store, "app/"), 1);
    // Applied-index changes that leave KV alone (catalog writes, no-ops) wake the query
    // but must not cost a scan.
    for index in 3..100 {
        store.apply_noop(index);
        assert_eq!(watch.index(&store, "app/"), 1);
    }
    assert_eq!(watch.scans(), 1);
    store.apply(100, &set("app/y"));
    assert_eq!(watch.index(&store, "app/"), 100);
    store.apply(
        101,
        &Command::Kv(KvOp::Delete {
            key: "app/y".into(),
        }),
    );
    assert_eq!(watch.index(&store, "app/"), 101);
    // Reaping the tombstone changes what is under the prefix without a KV table bump;
    // the graveyard floor keeps the index where it was.
    assert_eq!(store.reap_tombstones(101), 1);
    assert_eq!(watch.index(&store, "app/"), 101);
    assert_eq!(watch.scans(), 4);
}
