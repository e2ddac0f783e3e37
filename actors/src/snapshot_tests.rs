//! Snapshots and compaction on a real file-backed server: snapshot files appear, old
//! segments go, the in-memory log stays bounded, and restarts (also with the newest
//! snapshot damaged) rebuild exactly the same store.

use crate::fsm::SnapshotLimits;
use crate::recovery::load_newest_snapshot;
use crate::server::{Limits, ServerHandle, ServerOptions};
use crate::snapshot_store::{records, FileSnapshotStore, SnapshotBackend};
use protocol::ids::{LogIndex, Term};
use protocol::raft::SnapshotMeta;
use protocol::store::{Command, CommandResult, KvOp, Store};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);
const THRESHOLD: u64 = 50;
const TRAILING: u64 = 20;

fn options(dir: &Path) -> ServerOptions {
    ServerOptions {
        server_id: "s1".into(),
        node_name: "n1".into(),
        server_addr: "127.0.0.1:8300".into(),
        data_dir: Some(dir.to_path_buf()),
        bootstrap: true,
        raft_timing: protocol::raft::RaftTiming::with_multiplier(1),
        snapshot_threshold: THRESHOLD,
        trailing_logs: TRAILING,
        log_cache: protocol::raft::CacheBudget::default(),
    }
}

fn limits() -> Limits {
    Limits {
        segment_max_bytes: 1024,
        ..Limits::default()
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
}

fn segments(dir: &Path) -> Vec<u64> {
    let mut firsts: Vec<u64> = std::fs::read_dir(dir.join("raft"))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".seg")?.parse().ok()
        })
        .collect();
    firsts.sort();
    firsts
}

fn snapshot_dir(dir: &Path) -> PathBuf {
    dir.join("raft").join("snapshots")
}

/// Indexes of the retained snapshots, newest first. Reads the directory itself: opening
/// a `FileSnapshotStore` on a running server's directory would delete the `.snap.tmp`
/// file of a snapshot being written (and so fail that save).
fn snapshot_indexes(dir: &Path) -> Vec<u64> {
    let mut ids: Vec<(u64, u64)> = std::fs::read_dir(snapshot_dir(dir))
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            let (term, index) = name.strip_suffix(".snap")?.split_once('-')?;
            Some((term.parse().ok()?, index.parse().ok()?))
        })
        .collect();
    ids.sort_by(|a, b| b.cmp(a));
    ids.into_iter()
        .take(crate::snapshot_store::RETAINED_SNAPSHOTS)
        .map(|(_, index)| index)
        .collect()
}

fn command(i: u64) -> Command {
    if i.is_multiple_of(7) {
        Command::Kv(KvOp::Delete {
            key: format!("k{}", (i / 7) % 13),
        })
    } else {
        Command::Kv(KvOp::Set {
            key: format!("k{}", i % 13),
            value: format!("v{i}").into_bytes(),
            flags: i,
        })
    }
}

async fn start(dir: &Path) -> ServerHandle {
    let server = ServerHandle::open_and_start(options(dir), limits()).unwrap();
    wait_until("leadership", || server.status().is_leader()).await;
    server
}

/// Restart and wait until the new no-op is applied; returns the server and the
/// no-op's index.
async fn restart(dir: &Path) -> (ServerHandle, u64) {
    let server = start(dir).await;
    let noop = server.status().last_log_index;
    let applied = server.applied();
    wait_until("no-op applied", || *applied.borrow() >= noop).await;
    (server, noop)
}

/// What the store must look like after a restart: the same, plus the no-op's index.
fn plus_noop(store: &Store, noop: u64) -> Store {
    let mut want = store.clone();
    want.apply_noop(noop);
    want
}

/// With a log cache of four entries and no snapshots, the core holds four entries
/// whatever the log's length; a restart recovers only the last four whole (the terms
/// of the rest), and applies the whole log by reading it back from disk.
#[actix::test]
async fn the_log_cache_stays_bounded_and_a_restart_applies_the_uncached_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let opts = || ServerOptions {
        snapshot_threshold: 1_000_000,
        log_cache: protocol::raft::CacheBudget {
            max_entries: 4,
            ..Default::default()
        },
        ..options(dir)
    };
    let limits = || Limits {
        snapshot_log_bytes: u64::MAX / 2,
        ..limits()
    };
    let server = ServerHandle::open_and_start(opts(), limits()).unwrap();
    wait_until("leadership", || server.status().is_leader()).await;
    for i in 0..200 {
        let r = server.propose(command(i)).await.unwrap();
        assert_eq!(r, CommandResult::Done);
    }
    let last = server.status().last_log_index;
    let started = Instant::now();
    loop {
        let (cached, first) = server.cache_stats().await;
        if cached <= 4 && first == last - cached as u64 + 1 {
            break;
        }
        assert!(
            started.elapsed() < DEADLINE,
            "cache holds {cached} from {first}"
        );
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
    assert!(snapshot_indexes(dir).is_empty(), "no snapshot was taken");
    let before = server.view().read().clone();
    server.shutdown().await;

    let server = ServerHandle::open_and_start(opts(), limits()).unwrap();
    let (cached, first) = server.cache_stats().await;
    assert!(
        cached <= 4 && first + 4 >= last,
        "restart cached {cached} entries from {first}"
    );
    wait_until("leadership", || server.status().is_leader()).await;
    let noop = server.status().last_log_index;
    assert_eq!(noop, last + 1);
    let applied = server.applied();
    wait_until("no-op applied", || *applied.borrow() >= noop).await;
    assert_eq!(*server.view().read(), plus_noop(&before, noop));
    let started = Instant::now();
    while server.cache_stats().await.0 > 4 {
        assert!(
            started.elapsed() < DEADLINE,
            "cache trimmed after the restart"
        );
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
    server.shutdown().await;
}

#[actix::test]
async fn snapshots_compact_the_log_and_restarts_rebuild_the_same_store() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = start(dir).await;
    for i in 0..300 {
        let r = server.propose(command(i)).await.unwrap();
        assert_eq!(r, CommandResult::Done);
    }
    let last = server.status().last_log_index;
    assert_eq!(last, 302); // configuration + no-op + 300 commands

    // Two snapshots retained, the newest within a threshold of the end, and old
    // segments deleted (all of this happens in the background).
    wait_until("two recent snapshots and a compacted disk log", || {
        let (s, segs) = (snapshot_indexes(dir), segments(dir));
        s.len() == 2 && s[0] + THRESHOLD > last && segs[0] + 2 * THRESHOLD + TRAILING > last
    })
    .await;
    let snaps = snapshot_indexes(dir);
    let (newest, oldest) = (snaps[0], snaps[1]);
    // Segments never go beyond the oldest retained snapshot.
    let segs = segments(dir);
    assert!(
        segs[0] <= oldest + 1,
        "{segs:?} vs oldest snapshot {oldest}"
    );
    // The in-memory log holds the trailing entries below the newest snapshot and what
    // came after it.
    let (first, len) = server.log_stats().await;
    assert!(
        first > newest - TRAILING - THRESHOLD,
        "memory log starts at {first}"
    );
    assert!(
        len as u64 <= TRAILING + 2 * THRESHOLD,
        "{len} entries in memory"
    );
    assert_eq!(first + len as u64 - 1, last);

    let before = server.view().read().clone();
    server.shutdown().await;

    // A restart loads the newest snapshot and replays only the log after it.
    let (server, noop) = restart(dir).await;
    assert_eq!(noop, last + 1);
    assert_eq!(*server.view().read(), plus_noop(&before, noop));
    let (first, _) = server.log_stats().await;
    assert_eq!(
        first,
        newest + 1,
        "memory log starts right after the snapshot"
    );
    // Writes continue with increasing indexes.
    server.propose(command(1)).await.unwrap();
    let entry = server.view().read().kv_get("k1").cloned().unwrap();
    assert_eq!(entry.modify_index, noop + 1);
    let before = server.view().read().clone();
    server.shutdown().await;

    // Damage the newest snapshot: recovery falls back to the older one and replays the
    // (longer) log after it, reaching the same store.
    let store = FileSnapshotStore::open(&snapshot_dir(dir)).unwrap();
    let newest_id = store.list().unwrap()[0];
    let path = store.path_of(newest_id);
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n / 2] ^= 0x55; // inside a record
    std::fs::write(&path, bytes).unwrap();

    let (server, noop) = restart(dir).await;
    assert_eq!(*server.view().read(), plus_noop(&before, noop));
    // The damaged snapshot was not used: memory starts after the older one, unless
    // replaying 50+ entries since it already triggered a fresh snapshot.
    let (first, _) = server.log_stats().await;
    assert!(
        first == oldest + 1 || snapshot_indexes(dir)[0] > newest,
        "memory log starts at {first}: the damaged snapshot {newest} was used"
    );
    server.shutdown().await;
}

#[actix::test]
async fn a_crash_between_snapshot_and_segment_deletion_recovers() {
    // With trailing logs longer than the log, snapshots are taken but nothing is
    // deleted: exactly the disk of a crash right after a snapshot was saved. Recovery
    // uses the snapshot and skips the log entries it covers.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let opts = ServerOptions {
        trailing_logs: 10_000,
        log_cache: protocol::raft::CacheBudget::default(),
        ..options(dir)
    };
    let server = ServerHandle::open_and_start(opts.clone(), limits()).unwrap();
    wait_until("leadership", || server.status().is_leader()).await;
    for i in 0..120 {
        server.propose(command(i)).await.unwrap();
    }
    wait_until("a snapshot", || {
        snapshot_indexes(dir).first().is_some_and(|&s| s >= 100)
    })
    .await;
    assert_eq!(segments(dir)[0], 1, "nothing deleted");
    let snapshot = snapshot_indexes(dir)[0];
    let before = server.view().read().clone();
    server.shutdown().await;

    let server = ServerHandle::open_and_start(opts, limits()).unwrap();
    wait_until("leadership", || server.status().is_leader()).await;
    let noop = server.status().last_log_index;
    let applied = server.applied();
    wait_until("no-op applied", || *applied.borrow() >= noop).await;
    assert_eq!(*server.view().read(), plus_noop(&before, noop));
    let (first, _) = server.log_stats().await;
    assert_eq!(first, snapshot + 1);
    server.shutdown().await;
}

/// Measures what the Fsm does under the store's read lock: cloning the store versus
/// encoding it. `cargo test -p cairn-actors --release clone_is_cheaper -- --ignored
/// --nocapture`.
#[test]
#[ignore]
fn clone_is_cheaper_than_encoding() {
    let mut store = Store::new();
    for i in 0..100_000u64 {
        let cmd = Command::Kv(KvOp::Set {
            key: format!("service/config/{i:08}"),
            value: vec![b'x'; 100],
            flags: i,
        });
        store.apply(i + 1, &cmd);
    }
    let t = Instant::now();
    let copy = store.clone();
    let clone_time = t.elapsed();
    let t = Instant::now();
    let bytes = protocol::codec::encode(&store).unwrap();
    let encode_time = t.elapsed();
    println!(
        "100k keys: clone {clone_time:?}, encode {encode_time:?} ({} bytes)",
        bytes.len()
    );
    assert_eq!(copy, store);
}

/// A store with more than `limit` bytes of records, each record well under it.
fn store_bigger_than(limit: usize) -> Store {
    let mut store = Store::new();
    let mut i = 0;
    while records::encode_store(&store).len() <= limit {
        i += 1;
        let cmd = Command::Kv(KvOp::Set {
            key: format!("key{i}"),
            value: format!("v{i}").into_bytes(),
            flags: i,
        });
        store.apply(i, &cmd);
    }
    store
}

/// A store with one record over `limit`.
fn store_with_a_record_over(limit: usize) -> Store {
    let mut store = store_bigger_than(limit);
    let cmd = Command::Kv(KvOp::Set {
        key: "big".into(),
        value: vec![b'x'; limit],
        flags: 0,
    });
    store.apply(1000, &cmd);
    store
}

/// Collects snapshot reports (none must arrive for a refused snapshot).
struct TakenSink;

impl actix::Actor for TakenSink {
    type Context = actix::Context<Self>;
}

impl actix::Handler<crate::fsm::SnapshotTaken> for TakenSink {
    type Result = ();
    fn handle(&mut self, _: crate::fsm::SnapshotTaken, _: &mut actix::Context<Self>) {}
}

fn meta(index: u64) -> SnapshotMeta {
    SnapshotMeta {
        index: LogIndex(index),
        term: Term(1),
        configuration: vec![],
        non_voters: vec![],
    }
}

fn snapshot_limits(max_record_bytes: usize) -> SnapshotLimits {
    SnapshotLimits {
        clone_us: 0,
        max_record_bytes,
        trailing_bytes: u64::MAX,
    }
}

#[actix::test]
async fn only_records_are_bounded_not_the_image() {
    use actix::Actor;
    const LIMIT: usize = 200;
    let tmp = tempfile::tempdir().unwrap();
    let backend = FileSnapshotStore::open(tmp.path()).unwrap();
    let taken = TakenSink.start().recipient();
    // Many times the limit in all, every record under it: saved, and loads back with
    // that record limit.
    let big = store_bigger_than(10 * LIMIT);
    let saved =
        crate::fsm::write_snapshot(&backend, &taken, meta(100), &big, snapshot_limits(LIMIT));
    assert!(saved.unwrap() > 10 * LIMIT as u64);
    let (loaded, store) = load_newest_snapshot(&backend, LIMIT).unwrap();
    assert_eq!((loaded.unwrap().index.0, store), (100, big));

    // One record over the limit: not saved (it could not be read back), nothing left
    // behind, the older snapshot stays.
    let over = store_with_a_record_over(LIMIT);
    let saved =
        crate::fsm::write_snapshot(&backend, &taken, meta(200), &over, snapshot_limits(LIMIT));
    assert_eq!(saved, None);
    let names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        vec!["00000000000000000001-00000000000000000100.snap"]
    );
}

#[test]
fn an_intact_snapshot_with_a_record_too_large_to_load_is_not_quarantined() {
    const LIMIT: usize = 200;
    let tmp = tempfile::tempdir().unwrap();
    let backend = FileSnapshotStore::open(tmp.path()).unwrap();
    let big = records::encode_store(&store_with_a_record_over(LIMIT));
    backend.save(&meta(50), &big).unwrap();

    // Alone: the start fails with the reason and the file stays.
    let Err(error) = load_newest_snapshot(&backend, LIMIT) else {
        panic!("must not start without the snapshot");
    };
    assert!(
        error.to_string().contains("verifies but cannot be loaded"),
        "{error}"
    );
    assert!(
        error.to_string().contains("over the limit of 200"),
        "{error}"
    );
    assert_eq!(backend.list().unwrap().len(), 1, "not quarantined");

    // With an older usable one: that one is used, the newer one still stays.
    backend
        .save(&meta(10), &records::encode_store(&Store::new()))
        .unwrap();
    let (loaded, _) = load_newest_snapshot(&backend, LIMIT).unwrap();
    assert_eq!(loaded.unwrap().index.0, 10);
    let kept: Vec<u64> = backend.list().unwrap().iter().map(|i| i.index.0).collect();
    assert_eq!(kept, vec![50, 10]);
}

#[test]
fn a_truncated_or_damaged_newest_snapshot_falls_back_to_the_older_one() {
    let older = store_bigger_than(2_000);
    let mut newer = older.clone();
    newer.apply(5_000, &command(5_000));
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 3] = [
        ("truncated", |b| b.truncate(b.len() * 2 / 3)),
        ("record damaged", |b| {
            let at = b.len() / 2;
            b[at] ^= 0x20;
        }),
        ("cut at the end of the records", |b| {
            b.truncate(b.len() - 20)
        }),
    ];
    for (what, damage) in damages {
        let tmp = tempfile::tempdir().unwrap();
        let backend = FileSnapshotStore::open(tmp.path()).unwrap();
        backend
            .save(&meta(10), &records::encode_store(&older))
            .unwrap();
        backend
            .save(&meta(20), &records::encode_store(&newer))
            .unwrap();
        let path = backend.path_of(backend.list().unwrap()[0]);
        let mut bytes = std::fs::read(&path).unwrap();
        damage(&mut bytes);
        std::fs::write(&path, bytes).unwrap();

        let (loaded, store) = load_newest_snapshot(&backend, 1 << 20).unwrap();
        assert_eq!(loaded.unwrap().index.0, 10, "{what}");
        assert_eq!(store, older, "{what}");
        let kept: Vec<u64> = backend.list().unwrap().iter().map(|i| i.index.0).collect();
        assert_eq!(kept, vec![10], "{what}: the damaged one is set aside");
    }
}

/// Options and limits for a server whose snapshots come from the byte trigger.
fn byte_trigger_server(dir: &Path, trailing_logs: u64) -> (ServerOptions, Limits) {
    let opts = ServerOptions {
        snapshot_threshold: 100_000, // never reached here
        trailing_logs,
        ..options(dir)
    };
    let limits = Limits {
        snapshot_log_bytes: 8 * 1024,
        trailing_log_bytes: 4 * 1024,
        ..limits()
    };
    (opts, limits)
}

fn kilobyte_set(i: u64) -> Command {
    Command::Kv(KvOp::Set {
        key: format!("big{i}"),
        value: vec![b'v'; 1024],
        flags: 0,
    })
}

#[actix::test]
async fn applied_bytes_trigger_snapshots_and_bound_the_memory_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Trailing entries by count: 10,000, far more than written; by bytes: 4 KiB.
    let (opts, limits) = byte_trigger_server(dir, 10_000);
    let server = ServerHandle::open_and_start(opts, limits).unwrap();
    wait_until("leadership", || server.status().is_leader()).await;
    for i in 0..20 {
        server.propose(kilobyte_set(i)).await.unwrap();
    }
    // 20 KiB of commands over an 8 KiB budget: snapshots without the entry threshold.
    wait_until("a snapshot from the byte trigger", || {
        snapshot_indexes(dir).first().is_some_and(|&s| s >= 10)
    })
    .await;
    for i in 20..60 {
        server.propose(kilobyte_set(i)).await.unwrap();
    }
    let last = server.status().last_log_index;
    // The budget grows with the snapshot (a quarter of it): 60 KiB written, each
    // snapshot within ~max(8 KiB, size/4) of the end.
    wait_until("a snapshot near the end", || {
        snapshot_indexes(dir)
            .first()
            .is_some_and(|&s| last - s < 20)
    })
    .await;
    let newest = snapshot_indexes(dir)[0];
    // Memory and disk hold at most ~4 KiB (5 entries) below the snapshot, although the
    // entry count would keep them all (the disk never beyond the oldest snapshot).
    // (RaftCore compacts once told, a moment after the file appears.)
    let started = Instant::now();
    let (first, len) = loop {
        let (first, len) = server.log_stats().await;
        if first + 5 >= newest || started.elapsed() > DEADLINE {
            break (first, len);
        }
        actix::clock::sleep(Duration::from_millis(5)).await;
    };
    assert!(
        first + 5 >= newest,
        "memory log starts at {first}, snapshot at {newest}"
    );
    assert_eq!(first + len as u64 - 1, last);
    let oldest = *snapshot_indexes(dir).last().unwrap();
    wait_until("the disk log compacted", || segments(dir)[0] > 1).await;
    assert!(
        segments(dir)[0] <= oldest + 1,
        "never beyond the oldest snapshot"
    );
    let before = server.view().read().clone();
    server.shutdown().await;

    // And the store restarts the same.
    let (opts, limits) = byte_trigger_server(dir, 10_000);
    let server = ServerHandle::open_and_start(opts, limits).unwrap();
    wait_until("leadership", || server.status().is_leader()).await;
    let noop = server.status().last_log_index;
    let applied = server.applied();
    wait_until("no-op applied", || *applied.borrow() >= noop).await;
    assert_eq!(*server.view().read(), plus_noop(&before, noop));
    server.shutdown().await;
}

/// A reader holds one published version (an `Arc<Store>`, no lock) across writes and a
/// snapshot: both complete while it is held, and it still answers the old values. With
/// the former `RwLock` view, a read guard held like this stalled the next apply (and so
/// every write) and the snapshot's clone.
#[actix::test]
async fn a_held_version_answers_old_values_while_writes_and_a_snapshot_proceed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let server = start(dir).await;
    let set = |key: &str, value: &str| {
        Command::Kv(KvOp::Set {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            flags: 0,
        })
    };
    for key in ["a", "b"] {
        server.propose(set(key, "old")).await.unwrap();
    }
    let held = server.view().read();
    let held_index = held.last_index();
    assert!(snapshot_indexes(dir).is_empty());

    // More than a threshold of writes: each is applied and answered, and a snapshot
    // is taken, all while `held` is alive.
    for i in 0..THRESHOLD + 10 {
        let r = server.propose(set("a", &format!("new{i}"))).await.unwrap();
        assert_eq!(r, CommandResult::Done);
    }
    wait_until("a snapshot past the held version", || {
        snapshot_indexes(dir)
            .first()
            .is_some_and(|i| *i > held_index)
    })
    .await;

    let value = |store: &Store, key: &str| store.kv_get(key).map(|e| e.value.to_vec());
    assert_eq!(value(&held, "a"), Some(b"old".to_vec()));
    assert_eq!(value(&held, "b"), Some(b"old".to_vec()));
    assert_eq!(held.last_index(), held_index);
    let now = server.view().read();
    assert_eq!(
        value(&now, "a"),
        Some(format!("new{}", THRESHOLD + 9).into_bytes())
    );
    assert!(now.last_index() > held_index);
    drop(held);
}

/// A log backend whose reads take longer than several election timeouts, counted.
struct SlowReads {
    inner: crate::log_store::MemoryBackend,
    reads: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl crate::log_store::LogBackend for SlowReads {
    fn truncate_from(&mut self, from: LogIndex) -> Result<(), crate::log_store::StorageError> {
        self.inner.truncate_from(from)
    }
    fn append(
        &mut self,
        entries: &[protocol::raft::Entry],
    ) -> Result<(), crate::log_store::StorageError> {
        self.inner.append(entries)
    }
    fn save_hard_state(
        &mut self,
        hard_state: &protocol::raft::HardState,
    ) -> Result<(), crate::log_store::StorageError> {
        self.inner.save_hard_state(hard_state)
    }
    fn sync(&mut self) -> Result<(), crate::log_store::StorageError> {
        self.inner.sync()
    }
    fn last_index(&self) -> LogIndex {
        self.inner.last_index()
    }
    fn compact_until(&mut self, index: LogIndex) -> Result<(), crate::log_store::StorageError> {
        self.inner.compact_until(index)
    }
    fn reset_after(&mut self, index: LogIndex) -> Result<(), crate::log_store::StorageError> {
        self.inner.reset_after(index)
    }
    fn recover_after_error(
        &mut self,
    ) -> Result<crate::log_store::Recovered, crate::log_store::StorageError> {
        self.inner.recover_after_error()
    }
    fn read(
        &mut self,
        from: LogIndex,
        to: LogIndex,
        max_bytes: usize,
    ) -> Result<Vec<protocol::raft::Entry>, crate::log_store::StorageError> {
        self.reads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(700));
        self.inner.read(from, to, max_bytes)
    }
}

/// A restart whose tail is four entries applies the rest by reading it back, and a
/// disk slower than the core's patience (it asks a load again after an election
/// timeout, 200 ms here) gets each read once, not a pile of duplicates.
#[actix::test]
async fn a_restart_applies_through_a_slow_disk_reading_each_range_once() {
    let budget = protocol::raft::CacheBudget {
        max_bytes: usize::MAX,
        max_entries: 4,
    };
    let opts = || ServerOptions {
        data_dir: None,
        snapshot_threshold: 1_000_000,
        log_cache: budget,
        ..options(Path::new("/nonexistent"))
    };
    let limits = || Limits {
        snapshot_log_bytes: u64::MAX / 2,
        ..limits()
    };
    let shared = crate::log_store::MemoryBackend::new().with_budget(budget);
    let snapshots = || {
        std::sync::Arc::new(crate::snapshot_store::MemorySnapshotStore::new())
            as std::sync::Arc<dyn SnapshotBackend>
    };
    let server = ServerHandle::start_with(
        opts(),
        Box::new(shared.clone()),
        shared.recover(),
        snapshots(),
        limits(),
    )
    .unwrap();
    wait_until("leadership", || server.status().is_leader()).await;
    for i in 0..100 {
        assert_eq!(
            server.propose(command(i)).await.unwrap(),
            CommandResult::Done
        );
    }
    let before = server.view().read().clone();
    server.shutdown().await;

    let reads = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let recovered = shared.recover();
    assert_eq!(recovered.log.tail().len(), 4);
    let slow = SlowReads {
        inner: shared.clone(),
        reads: reads.clone(),
    };
    let server =
        ServerHandle::start_with(opts(), Box::new(slow), recovered, snapshots(), limits()).unwrap();
    wait_until("leadership", || server.status().is_leader()).await;
    let noop = server.status().last_log_index;
    let applied = server.applied();
    let started = Instant::now();
    while *applied.borrow() < noop {
        assert!(
            started.elapsed() < DEADLINE,
            "the restart never applied its log"
        );
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(*server.view().read(), plus_noop(&before, noop));
    // 100 small entries fit one load: one read (a duplicate would be a second).
    assert_eq!(reads.load(std::sync::atomic::Ordering::SeqCst), 1);
    server.shutdown().await;
}
