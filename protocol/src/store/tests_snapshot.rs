//! Snapshot records: stores survive records -> store exactly (derived indexes included),
//! borrowed and owned records encode alike, and KV values keep `Vec<u8>`'s encoding.

use super::tests_random::random_command;
use super::*;
use crate::codec;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::sync::Arc;

/// Encode every record and decode it back as the owned type, as the shell does.
fn through_codec(store: &Store) -> Vec<SnapshotRecord> {
    store
        .snapshot_records()
        .map(|r| {
            let bytes = codec::encode(&r).unwrap();
            codec::decode(&bytes, codec::MAX_DECODE_BYTES).unwrap()
        })
        .collect()
}

#[test]
fn random_stores_round_trip_through_records() {
    for seed in [11u64, 12, 13, 14] {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut store = Store::new();
        let mut index = 0;
        for step in 0..2000 {
            index += rng.random_range(1..3);
            store.apply(index, &random_command(&mut rng));
            if step % 250 == 0 || step == 1999 {
                let back = Store::from_records(through_codec(&store)).unwrap();
                assert_eq!(back, store, "seed {seed} step {step}");
                // Derived indexes answer the same.
                for name in ["web", "db", "api", "Web"] {
                    assert_eq!(back.service_index(name), store.service_index(name));
                }
            }
        }
        assert!(!store.services.is_empty() && !store.kv.is_empty());
        assert!(!store.kv_tombstones.is_empty() && !store.checks.is_empty());
    }
}

#[test]
fn an_empty_store_is_a_header_and_an_end() {
    let records = through_codec(&Store::new());
    assert_eq!(records.len(), 2);
    assert_eq!(records[1], SnapshotRecord::End { records: 1 });
    assert_eq!(Store::from_records(records).unwrap(), Store::new());
}

fn sample() -> Vec<SnapshotRecord> {
    let mut store = Store::new();
    for i in 1..=5u64 {
        let cmd = Command::Kv(KvOp::Set {
            key: format!("k{i}"),
            value: vec![i as u8; 3],
            flags: 0,
        });
        store.apply(i, &cmd);
    }
    store.apply(6, &Command::Kv(KvOp::Delete { key: "k1".into() }));
    through_codec(&store)
}

#[test]
fn broken_streams_are_refused() {
    let good = sample();
    assert!(Store::from_records(good.clone()).is_ok());
    let n = good.len();
    let cases: Vec<(&str, Vec<SnapshotRecord>)> = vec![
        ("cut before the end", good[..n - 1].to_vec()),
        ("cut at a row, with an end record", {
            let mut v = good[..n - 2].to_vec();
            v.push(SnapshotRecord::End {
                records: n as u64 - 2,
            });
            v.push(SnapshotRecord::End {
                records: n as u64 - 2,
            });
            v
        }),
        ("a row missing", {
            let mut v = good.clone();
            v.remove(2);
            v
        }),
        ("no header", good[1..].to_vec()),
        ("a duplicate row", {
            let mut v = good.clone();
            v.insert(2, good[2].clone());
            v
        }),
        ("out of order", {
            let mut v = good.clone();
            let last_row = v.remove(n - 2); // the tombstone
            v.insert(1, last_row);
            v
        }),
        (
            "after the end",
            [good.clone(), vec![good[1].clone()]].concat(),
        ),
    ];
    for (what, records) in cases {
        assert!(Store::from_records(records).is_err(), "{what} accepted");
    }
}

#[test]
fn shared_values_encode_exactly_as_vec_values() {
    #[derive(serde::Serialize)]
    struct OldKvEntry {
        key: String,
        value: Vec<u8>,
        flags: u64,
        lock_index: u64,
        session: Option<String>,
        create_index: u64,
        modify_index: u64,
    }
    for value in [vec![], vec![0u8, 255, 7], vec![9u8; 70_000]] {
        let old = OldKvEntry {
            key: "k".into(),
            value: value.clone(),
            flags: 3,
            lock_index: 1,
            session: Some("s".into()),
            create_index: 4,
            modify_index: 5,
        };
        let new = KvEntry {
            key: "k".into(),
            value: Arc::from(value.as_slice()),
            flags: 3,
            lock_index: 1,
            session: Some("s".into()),
            create_index: 4,
            modify_index: 5,
        };
        let old_bytes = codec::encode(&old).unwrap();
        assert_eq!(codec::encode(&new).unwrap(), old_bytes);
        let decoded: KvEntry = codec::decode(&old_bytes, codec::MAX_DECODE_BYTES).unwrap();
        assert_eq!(decoded, new);
    }
}

#[test]
fn cloning_a_store_shares_its_values() {
    let mut store = Store::new();
    let cmd = Command::Kv(KvOp::Set {
        key: "big".into(),
        value: vec![1; 1 << 20],
        flags: 0,
    });
    store.apply(1, &cmd);
    let copy = store.clone();
    let (a, b) = (store.kv_get("big").unwrap(), copy.kv_get("big").unwrap());
    assert!(Arc::ptr_eq(&a.value, &b.value));
}
