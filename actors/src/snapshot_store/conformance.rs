//! One conformance suite for every [`SnapshotBackend`], plus file-format checks.

use super::*;
use protocol::ids::ServerId;

fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta {
        index: LogIndex(index),
        term: Term(term),
        configuration: vec![(ServerId("a".into()), "a:8300".into())],
    }
}

fn id(index: u64, term: u64) -> SnapshotId {
    SnapshotId {
        index: LogIndex(index),
        term: Term(term),
    }
}

fn empty_store_lists_nothing(store: &dyn SnapshotBackend) {
    assert_eq!(store.list().unwrap(), vec![]);
    assert!(store.load(id(1, 1)).is_err());
}

fn saves_round_trip_and_only_the_newest_two_are_kept(store: &dyn SnapshotBackend) {
    store.save(&meta(10, 1), b"ten").unwrap();
    assert_eq!(store.list().unwrap(), vec![id(10, 1)]);
    assert_eq!(
        store.load(id(10, 1)).unwrap(),
        Snapshot {
            meta: meta(10, 1),
            data: b"ten".to_vec()
        }
    );
    store.save(&meta(20, 2), b"twenty").unwrap();
    store.save(&meta(30, 2), b"").unwrap();
    assert_eq!(store.list().unwrap(), vec![id(30, 2), id(20, 2)]);
    assert!(store.load(id(10, 1)).is_err(), "the oldest is gone");
    assert_eq!(store.load(id(30, 2)).unwrap().data, b"");
    assert_eq!(store.load(id(20, 2)).unwrap().data, b"twenty");
}

fn memory() -> MemorySnapshotStore {
    MemorySnapshotStore::new()
}

#[test]
fn memory_store_conforms() {
    empty_store_lists_nothing(&memory());
    saves_round_trip_and_only_the_newest_two_are_kept(&memory());
}

#[test]
fn file_store_conforms() {
    let tmp = tempfile::tempdir().unwrap();
    empty_store_lists_nothing(&FileSnapshotStore::open(tmp.path()).unwrap());
    let tmp = tempfile::tempdir().unwrap();
    saves_round_trip_and_only_the_newest_two_are_kept(
        &FileSnapshotStore::open(tmp.path()).unwrap(),
    );
    // A reopened store sees the same snapshots.
    let store = FileSnapshotStore::open(tmp.path()).unwrap();
    assert_eq!(store.list().unwrap(), vec![id(30, 2), id(20, 2)]);
}

#[test]
fn memory_store_detects_corruption_and_keeps_the_older_one() {
    let store = memory();
    store.save(&meta(10, 1), b"ten").unwrap();
    store.save(&meta(20, 1), b"twenty").unwrap();
    store.corrupt_newest();
    assert!(matches!(
        store.load(id(20, 1)),
        Err(StorageError::Corrupt { .. })
    ));
    assert_eq!(store.load(id(10, 1)).unwrap().data, b"ten");
    // Set aside, the damaged one no longer counts: the next save keeps the good one.
    store.quarantine(id(20, 1)).unwrap();
    store.save(&meta(30, 1), b"thirty").unwrap();
    assert_eq!(store.list().unwrap(), vec![id(30, 1), id(10, 1)]);
}

#[test]
fn file_store_quarantine_takes_a_snapshot_out_of_the_retained_set() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileSnapshotStore::open(tmp.path()).unwrap();
    store.save(&meta(10, 1), b"ten").unwrap();
    store.save(&meta(20, 1), b"twenty").unwrap();
    store.quarantine(id(20, 1)).unwrap();
    store.save(&meta(30, 1), b"thirty").unwrap();
    let store = FileSnapshotStore::open(tmp.path()).unwrap();
    assert_eq!(store.list().unwrap(), vec![id(30, 1), id(10, 1)]);
    assert_eq!(store.load(id(10, 1)).unwrap().data, b"ten");
}

#[test]
fn file_store_detects_every_kind_of_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let store = FileSnapshotStore::open(tmp.path()).unwrap();
    store.save(&meta(10, 1), b"some data").unwrap();
    let path = store.path_of(id(10, 1));
    assert!(path.ends_with("00000000000000000001-00000000000000000010.snap"));
    let good = std::fs::read(&path).unwrap();
    let n = good.len();
    let damaged: Vec<(&str, Vec<u8>)> = vec![
        ("flipped data byte", {
            let mut b = good.clone();
            b[n - 1] ^= 1;
            b
        }),
        ("flipped header byte", {
            let mut b = good.clone();
            b[17] ^= 1;
            b
        }),
        ("bad magic", {
            let mut b = good.clone();
            b[0] = b'X';
            b
        }),
        ("truncated", good[..n - 2].to_vec()),
        ("trailing garbage", [good.as_slice(), b"x"].concat()),
        ("empty", vec![]),
    ];
    for (what, bytes) in damaged {
        std::fs::write(&path, &bytes).unwrap();
        assert!(
            matches!(store.load(id(10, 1)), Err(StorageError::Corrupt { .. })),
            "{what} not detected"
        );
    }
    // A file whose name disagrees with its header.
    std::fs::write(&path, &good).unwrap();
    std::fs::rename(&path, store.path_of(id(11, 1))).unwrap();
    assert!(matches!(
        store.load(id(11, 1)),
        Err(StorageError::Corrupt { .. })
    ));
}

#[test]
fn file_store_deletes_a_torn_temp_file_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let torn = tmp
        .path()
        .join("00000000000000000001-00000000000000000010.snap.tmp");
    std::fs::write(&torn, b"CAIRN").unwrap();
    let store = FileSnapshotStore::open(tmp.path()).unwrap();
    assert!(!torn.exists());
    assert_eq!(store.list().unwrap(), vec![]);
}
