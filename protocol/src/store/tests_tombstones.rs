//! Tombstone reaping: exact outputs of `Command::ReapTombstones`, and that no prefix
//! index (as KvList / KvKeys blocking reads report it) ever goes back across reaps,
//! snapshots and restores.

use super::*;
use crate::api::answer::{read_index, PrefixIndexWatch};
use crate::api::Read;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn set(key: &str) -> Command {
    Command::Kv(KvOp::Set {
        key: key.into(),
        value: b"v".to_vec(),
        flags: 0,
    })
}

fn delete(key: &str) -> Command {
    Command::Kv(KvOp::Delete { key: key.into() })
}

fn reap(up_to_index: u64) -> Command {
    Command::ReapTombstones { up_to_index }
}

#[test]
fn reap_up_to_drops_exactly_the_tombstones_at_or_below_the_index() {
    let mut store = Store::new();
    for (i, key) in ["a/1", "a/2", "b/1", "b/2"].iter().enumerate() {
        store.apply(i as u64 + 1, &set(key));
    }
    store.apply(5, &delete("a/1"));
    store.apply(6, &delete("b/1"));
    store.apply(7, &delete("a/2"));
    assert_eq!(store.kv_tombstone_count(), 3);
    assert_eq!(store.apply(8, &reap(4)), CommandResult::Done);
    assert_eq!(
        store.kv_tombstone_count(),
        3,
        "nothing deleted at or before 4"
    );
    assert_eq!(store.kv_graveyard_floor(), 0);
    assert_eq!(store.apply(9, &reap(6)), CommandResult::Done);
    assert_eq!(
        store.kv_tombstone_count(),
        1,
        "a/1 (5) and b/1 (6) reaped, a/2 (7) kept"
    );
    assert_eq!(store.kv_graveyard_floor(), 6);
    assert_eq!(
        store.kv_prefix_index("a/"),
        7,
        "a/2's tombstone still counts"
    );
    assert_eq!(
        store.kv_prefix_index("b/"),
        6,
        "b/1 reaped: the floor holds the index"
    );
    assert_eq!(
        store.kv_prefix_index("never/"),
        6,
        "the floor is under every prefix"
    );
    assert_eq!(store.apply(10, &reap(u64::MAX)), CommandResult::Done);
    assert_eq!(store.kv_tombstone_count(), 0);
    assert_eq!(store.kv_graveyard_floor(), 7);
    assert_eq!(store.kv_prefix_index("a/"), 7);
    // A reap never moves the KV table index (no row changed), nor the floor backwards.
    assert_eq!(store.table_index(Table::Kv), 7);
    store.apply(11, &reap(2));
    assert_eq!(store.kv_graveyard_floor(), 7);
    assert_eq!(store.last_index(), 11);
}

#[test]
fn a_key_written_again_after_a_reap_reports_its_own_newer_index() {
    let mut store = Store::new();
    store.apply(1, &set("k"));
    store.apply(2, &delete("k"));
    store.apply(3, &reap(2));
    assert_eq!(store.kv_prefix_index("k"), 2);
    store.apply(4, &set("k"));
    assert_eq!(store.kv_prefix_index("k"), 4);
}

#[test]
fn the_floor_survives_a_snapshot_and_a_restore() {
    let mut store = Store::new();
    store.apply(1, &set("a/x"));
    store.apply(2, &delete("a/x"));
    store.apply(3, &reap(2));
    let rebuilt = Store::from_records(
        store
            .snapshot_records()
            .map(|r| crate::codec::decode(&crate::codec::encode(&r).unwrap(), 1 << 20).unwrap()),
    )
    .expect("records make a store");
    assert_eq!(rebuilt, store);
    assert_eq!(rebuilt.kv_prefix_index("a/"), 2);
    // A restore of an image without that prefix keeps the floor.
    let image = crate::store::image::encode_image(&Store::new()).expect("image");
    let mut live = store.clone();
    live.apply(4, &Command::Restore { image });
    assert!(live.kv_prefix_index("zzz/") >= 2);
}

/// KvList and KvKeys blocking reads (through the `PrefixIndexWatch` a parked read keeps)
/// never see their index go back, whatever mix of writes, deletes and reaps applies, and
/// two replicas applying the same log stay equal.
#[test]
fn prefix_read_indexes_never_go_backwards_across_reaps() {
    const KEYS: [&str; 6] = ["a", "a/1", "a/2", "a/b/1", "b/1", "ab"];
    const PREFIXES: [&str; 5] = ["", "a", "a/", "a/b/", "b/"];
    for seed in 1..=5u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut store = Store::new();
        let mut replica = Store::new();
        let reads: Vec<Read> = PREFIXES
            .iter()
            .flat_map(|p| {
                [
                    Read::KvList {
                        prefix: p.to_string(),
                    },
                    Read::KvKeys {
                        prefix: p.to_string(),
                        separator: Some("/".into()),
                    },
                ]
            })
            .collect();
        let mut watches: Vec<PrefixIndexWatch> = reads.iter().map(|_| Default::default()).collect();
        let mut seen: Vec<u64> = vec![0; reads.len()];
        let mut reaped = 0;
        for index in 1..=2000u64 {
            let key = KEYS[rng.random_range(0..KEYS.len())];
            let cmd = match rng.random_range(0..10) {
                0..=3 => set(key),
                4..=7 => delete(key),
                8 => Command::Kv(KvOp::DeleteTree {
                    prefix: PREFIXES[rng.random_range(0..PREFIXES.len())].into(),
                }),
                _ => reap(index.saturating_sub(rng.random_range(0..50))),
            };
            let before = store.kv_tombstone_count();
            assert_eq!(store.apply(index, &cmd), replica.apply(index, &cmd));
            if matches!(cmd, Command::ReapTombstones { .. }) {
                reaped += before - store.kv_tombstone_count();
            }
            for (i, read) in reads.iter().enumerate() {
                let now = read_index(&store, read, &mut watches[i]);
                assert!(
                    now >= seen[i],
                    "seed {seed}: {read:?} went back {} -> {now} at {index} ({cmd:?})",
                    seen[i]
                );
                assert_eq!(now, read_index(&store, read, &mut PrefixIndexWatch::new()));
                seen[i] = now;
            }
        }
        assert_eq!(store, replica, "seed {seed}: replicas diverged");
        assert!(reaped > 50, "seed {seed}: poor coverage, {reaped} reaped");
    }
}
