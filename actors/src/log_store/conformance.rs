//! One conformance suite for every [`LogBackend`]: each check takes an `open` function
//! that (re)opens the same storage, as a restart would.

use super::*;
use protocol::ids::{ServerId, Term};
use protocol::raft::{CacheBudget, Payload};
use std::path::Path;

type Opener<'a> = &'a mut dyn FnMut() -> (Box<dyn LogBackend>, Recovered);

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: Payload::Command(vec![index as u8; 100]),
    }
}

fn entries(term: u64, from: u64, to: u64) -> Vec<Entry> {
    (from..=to).map(|i| entry(term, i)).collect()
}

fn hard_state(term: u64, vote: Option<&str>) -> HardState {
    HardState {
        term: Term(term),
        voted_for: vote.map(|v| ServerId(v.into())),
    }
}

fn fresh_store_is_empty(open: Opener) {
    let (b, r) = open();
    assert_eq!(r, Recovered::default());
    assert_eq!(b.last_index(), LogIndex(0));
}

fn appends_and_hard_state_survive_reopen(open: Opener) {
    let (mut b, _) = open();
    b.append(&entries(1, 1, 3)).unwrap();
    b.append(&entries(2, 4, 40)).unwrap();
    b.sync().unwrap();
    b.save_hard_state(&hard_state(2, Some("a"))).unwrap();
    assert_eq!(b.last_index(), LogIndex(40));
    drop(b);
    let (b, r) = open();
    let mut want = entries(1, 1, 3);
    want.extend(entries(2, 4, 40));
    assert_eq!(r.hard_state, hard_state(2, Some("a")));
    assert_eq!(r.entries(), want);
    assert_eq!(b.last_index(), LogIndex(40));
}

fn truncation_removes_the_suffix_and_appending_continues(open: Opener) {
    let (mut b, _) = open();
    b.append(&entries(1, 1, 30)).unwrap();
    b.sync().unwrap();
    b.truncate_from(LogIndex(31)).unwrap(); // beyond the end: nothing
    b.truncate_from(LogIndex(12)).unwrap();
    assert_eq!(b.last_index(), LogIndex(11));
    b.append(&entries(3, 12, 14)).unwrap();
    b.sync().unwrap();
    drop(b);
    let (mut b, r) = open();
    let mut want = entries(1, 1, 11);
    want.extend(entries(3, 12, 14));
    assert_eq!(r.entries(), want);
    // Down to nothing, then a fresh start at 1.
    b.truncate_from(LogIndex(1)).unwrap();
    b.append(&entries(4, 1, 2)).unwrap();
    b.sync().unwrap();
    drop(b);
    assert_eq!(open().1.entries(), entries(4, 1, 2));
}

fn appends_must_be_contiguous(open: Opener) {
    let (mut b, _) = open();
    b.append(&entries(1, 1, 2)).unwrap();
    assert!(b.append(&entries(1, 4, 4)).is_err());
    assert!(b.append(&entries(1, 2, 2)).is_err());
}

fn batches_execute_in_order_with_one_sync(open: Opener) {
    let (mut b, _) = open();
    let batch = vec![
        PersistRequest {
            reset_after: None,
            id: 1,
            truncate_from: None,
            entries: entries(1, 1, 5),
            hard_state: Some(hard_state(1, None)),
            then_send: Vec::new(),
        },
        PersistRequest {
            reset_after: None,
            id: 2,
            truncate_from: Some(LogIndex(4)),
            entries: entries(2, 4, 6),
            hard_state: None,
            then_send: Vec::new(),
        },
        PersistRequest {
            reset_after: None,
            id: 3,
            truncate_from: None,
            entries: vec![],
            hard_state: Some(hard_state(2, Some("b"))),
            then_send: Vec::new(),
        },
    ];
    assert_eq!(persist_batch(b.as_mut(), &batch), Ok(3));
    drop(b);
    let (_, r) = open();
    let mut want = entries(1, 1, 3);
    want.extend(entries(2, 4, 6));
    assert_eq!(r.hard_state, hard_state(2, Some("b")));
    assert_eq!(r.entries(), want);
}

fn compaction_keeps_everything_after_the_point_and_survives_reopen(open: Opener) {
    let (mut b, _) = open();
    b.append(&entries(1, 1, 40)).unwrap();
    b.sync().unwrap();
    b.compact_until(LogIndex(25)).unwrap();
    assert_eq!(b.last_index(), LogIndex(40));
    b.append(&entries(1, 41, 41)).unwrap();
    b.sync().unwrap();
    drop(b);
    let (mut b, r) = open();
    let first = r.entries()[0].index.0;
    assert!((1..=26).contains(&first), "{first}");
    assert_eq!(r.entries(), entries(1, first, 41));
    // Compacting past the end keeps the log's position: appends continue.
    b.compact_until(LogIndex(100)).unwrap();
    assert_eq!(b.last_index(), LogIndex(41));
    b.append(&entries(2, 42, 43)).unwrap();
    b.sync().unwrap();
    drop(b);
    let (b, r) = open();
    let first = r.entries()[0].index.0;
    assert!((1..=42).contains(&first), "{first}");
    assert_eq!(r.entries().last().map(|e| e.index), Some(LogIndex(43)));
    assert_eq!(r.entries().first().map(|e| e.index.0), Some(first));
    assert_eq!(b.last_index(), LogIndex(43));
    // Truncating what follows the compaction point still works.
    let (mut b, _) = (b, ());
    b.truncate_from(LogIndex(43)).unwrap();
    b.append(&entries(3, 43, 43)).unwrap();
    b.sync().unwrap();
    drop(b);
    assert_eq!(open().1.entries().last(), Some(&entry(3, 43)));
}

fn reset_discards_the_log_and_continues_after_the_snapshot(open: Opener) {
    let (mut b, _) = open();
    b.append(&entries(1, 1, 10)).unwrap();
    b.sync().unwrap();
    let batch = vec![PersistRequest {
        id: 1,
        reset_after: Some(LogIndex(50)),
        truncate_from: None,
        entries: entries(2, 51, 52),
        hard_state: None,
        then_send: Vec::new(),
    }];
    assert_eq!(persist_batch(b.as_mut(), &batch), Ok(1));
    assert_eq!(b.last_index(), LogIndex(52));
    drop(b);
    let (mut b, r) = open();
    assert_eq!(r.entries(), entries(2, 51, 52));
    // A reset to an empty log also survives a reopen.
    b.reset_after(LogIndex(60)).unwrap();
    b.sync().unwrap();
    assert_eq!(b.last_index(), LogIndex(60));
    drop(b);
    let (mut b, r) = open();
    assert_eq!(r.entries(), vec![]);
    assert_eq!(b.last_index(), LogIndex(60));
    b.append(&entries(3, 61, 61)).unwrap();
    b.sync().unwrap();
    drop(b);
    assert_eq!(open().1.entries(), entries(3, 61, 61));
}

fn recover_after_error_keeps_exactly_what_was_synced(open: Opener) {
    let (mut b, _) = open();
    b.append(&entries(1, 1, 5)).unwrap();
    b.sync().unwrap();
    b.save_hard_state(&hard_state(1, Some("a"))).unwrap();
    b.append(&entries(1, 6, 8)).unwrap();
    let r = b.recover_after_error().unwrap();
    assert_eq!(r.entries(), entries(1, 1, 5));
    assert_eq!(r.hard_state, hard_state(1, Some("a")));
    assert_eq!(b.last_index(), LogIndex(5));
    // A truncation since the sync is not undone by recovery (it may be on disk), but
    // nothing older than the sync point is lost beyond it.
    b.append(&entries(2, 6, 7)).unwrap();
    b.sync().unwrap();
    drop(b);
    let (mut b, r) = open();
    let mut want = entries(1, 1, 5);
    want.extend(entries(2, 6, 7));
    assert_eq!(r.entries(), want);
    assert_eq!(
        b.recover_after_error().unwrap().entries(),
        want,
        "nothing unsynced"
    );
}

fn indexes(entries: &[Entry]) -> Vec<u64> {
    entries.iter().map(|e| e.index.0).collect()
}

fn reads_return_stored_entries_bounded_by_count_and_bytes(open: Opener) {
    let (mut b, _) = open();
    b.append(&entries(1, 1, 20)).unwrap();
    b.append(&entries(2, 21, 40)).unwrap();
    b.sync().unwrap();
    let all = usize::MAX;
    assert_eq!(
        b.read(LogIndex(5), LogIndex(10), all).unwrap(),
        entries(1, 5, 10)
    );
    assert_eq!(
        indexes(&b.read(LogIndex(19), LogIndex(100), all).unwrap()),
        (19..=40).collect::<Vec<_>>(),
        "clamped to the last entry"
    );
    // The byte bound: whole entries that fit, but always the first.
    let one = entry(1, 1).payload.approx_bytes();
    assert_eq!(
        indexes(&b.read(LogIndex(5), LogIndex(40), 3 * one).unwrap()),
        vec![5, 6, 7]
    );
    assert_eq!(
        indexes(&b.read(LogIndex(5), LogIndex(40), 3 * one + 1).unwrap()),
        vec![5, 6, 7]
    );
    assert_eq!(
        indexes(&b.read(LogIndex(5), LogIndex(40), 1).unwrap()),
        vec![5]
    );
    // Not stored: an error, not an empty answer.
    assert!(b.read(LogIndex(0), LogIndex(3), all).is_err());
    assert!(b.read(LogIndex(41), LogIndex(45), all).is_err());
    // Appends not yet synced are part of the log.
    b.append(&entries(3, 41, 42)).unwrap();
    assert_eq!(
        b.read(LogIndex(40), LogIndex(42), all).unwrap(),
        vec![entry(2, 40), entry(3, 41), entry(3, 42)]
    );
    b.sync().unwrap();
    // After a truncation the new suffix is read.
    b.truncate_from(LogIndex(30)).unwrap();
    b.append(&entries(4, 30, 31)).unwrap();
    b.sync().unwrap();
    assert_eq!(
        b.read(LogIndex(28), LogIndex(40), all).unwrap(),
        vec![entry(2, 28), entry(2, 29), entry(4, 30), entry(4, 31)]
    );
    drop(b);
    // After a reopen, and after compaction: whatever is still stored reads back; what
    // was compacted away is an error.
    let (mut b, r) = open();
    assert_eq!(
        b.read(LogIndex(2), LogIndex(4), all).unwrap(),
        entries(1, 2, 4)
    );
    b.compact_until(LogIndex(25)).unwrap();
    drop(b);
    let (mut b, r2) = open();
    let first = r2.entries()[0].index.0;
    assert_eq!(
        b.read(LogIndex(first), LogIndex(31), all).unwrap(),
        r.entries()[(first - 1) as usize..].to_vec()
    );
    if first > 1 {
        assert!(b.read(LogIndex(first - 1), LogIndex(31), all).is_err());
    }
    // After a reset, only what follows it.
    b.reset_after(LogIndex(50)).unwrap();
    b.append(&entries(5, 51, 52)).unwrap();
    assert_eq!(
        b.read(LogIndex(51), LogIndex(52), all).unwrap(),
        entries(5, 51, 52)
    );
    assert!(b.read(LogIndex(31), LogIndex(52), all).is_err());
}

type BoxedOpener = Box<dyn FnMut() -> (Box<dyn LogBackend>, Recovered)>;

/// The budget the tail checks open with: four entries whole.
const TAIL: CacheBudget = CacheBudget {
    max_bytes: usize::MAX,
    max_entries: 4,
};

fn conf_entry(term: u64, index: u64, names: &[&str]) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: Payload::Configuration(
            names
                .iter()
                .map(|n| (ServerId(n.to_string()), format!("{n}:1")))
                .collect(),
        ),
    }
}

/// Entries 1..=50: terms 1 (1..=3), 2 (4..=40), 3 (41..=50); configurations at 4 and 45.
fn long_log() -> Vec<Entry> {
    (1..=50)
        .map(|i| match i {
            4 => conf_entry(2, 4, &["a"]),
            45 => conf_entry(3, 45, &["a", "b"]),
            1..=3 => entry(1, i),
            5..=40 => entry(2, i),
            _ => entry(3, i),
        })
        .collect()
}

/// Open returns the term of every entry, the configurations and only a tail whole
/// (within the budget), and the older entries read back intact; so does a recovery
/// after an error, and a reopen after compaction.
fn open_keeps_terms_configs_and_a_tail_within_the_budget(open: Opener) {
    let (mut b, _) = open();
    let log = long_log();
    b.append(&log).unwrap();
    b.sync().unwrap();
    b.save_hard_state(&hard_state(3, Some("a"))).unwrap();
    drop(b);
    let check = |r: &Recovered, first: u64| {
        assert_eq!(r.hard_state, hard_state(3, Some("a")));
        assert_eq!(r.log.first_index(), Some(LogIndex(first)));
        assert_eq!(r.log.last_index(), LogIndex(50));
        assert_eq!(r.log.len() as u64, 51 - first);
        for e in &log[(first - 1) as usize..] {
            assert_eq!(r.log.term_at(e.index), Some(e.term), "term at {}", e.index);
        }
        let configs: Vec<u64> = r.log.configs().iter().map(|(i, _)| i.0).collect();
        let want: Vec<u64> = [4, 45].into_iter().filter(|i| *i >= first).collect();
        assert_eq!(configs, want);
        assert_eq!(
            r.log.tail().cloned().collect::<Vec<_>>(),
            log[46..].to_vec()
        );
    };
    let (mut b, r) = open();
    check(&r, 1);
    assert_eq!(
        b.read(LogIndex(1), LogIndex(46), usize::MAX).unwrap(),
        log[..46].to_vec()
    );
    // A write fails part way: what was synced comes back the same way.
    b.append(&[entry(3, 51)]).unwrap();
    let r = b.recover_after_error().unwrap();
    check(&r, 1);
    // Compacted: the log starts later, the rest is unchanged.
    b.compact_until(LogIndex(10)).unwrap();
    drop(b);
    let (b, r) = open();
    let first = r.log.first_index().unwrap().0;
    assert!((1..=11).contains(&first));
    check(&r, first);
    assert_eq!(b.last_index(), LogIndex(50));
}

/// A byte budget binds like the count: the newest entries that fit.
fn open_keeps_a_tail_within_the_byte_budget(open: Opener) {
    let (mut b, _) = open();
    b.append(&entries(1, 1, 20)).unwrap();
    b.sync().unwrap();
    drop(b);
    let (_, r) = open();
    assert_eq!(r.log.len(), 20);
    let tail: Vec<u64> = r.log.tail().map(|e| e.index.0).collect();
    assert_eq!(tail, vec![17, 18, 19, 20]);
    assert_eq!(r.log.tail_bytes(), 4 * entry(1, 1).payload.approx_bytes());
}

const TAIL_CHECKS: [fn(Opener); 1] = [open_keeps_terms_configs_and_a_tail_within_the_budget];

const CHECKS: [fn(Opener); 9] = [
    reads_return_stored_entries_bounded_by_count_and_bytes,
    recover_after_error_keeps_exactly_what_was_synced,
    compaction_keeps_everything_after_the_point_and_survives_reopen,
    reset_discards_the_log_and_continues_after_the_snapshot,
    fresh_store_is_empty,
    appends_and_hard_state_survive_reopen,
    truncation_removes_the_suffix_and_appending_continues,
    appends_must_be_contiguous,
    batches_execute_in_order_with_one_sync,
];

/// Run every check, each against brand-new storage from `new_storage` (opening with
/// the budget given: the default for `CHECKS`, whose logs fit it whole, and small
/// ones for the tail checks).
fn run_suite(new_storage: &mut dyn FnMut(CacheBudget) -> BoxedOpener) {
    for check in CHECKS {
        let mut open = new_storage(CacheBudget::default());
        check(&mut *open);
    }
    for check in TAIL_CHECKS {
        let mut open = new_storage(TAIL);
        check(&mut *open);
    }
    let four_entries = CacheBudget {
        max_bytes: 4 * entry(1, 1).payload.approx_bytes() + 1,
        max_entries: usize::MAX,
    };
    open_keeps_a_tail_within_the_byte_budget(&mut *new_storage(four_entries));
}

#[test]
fn memory_backend_conforms() {
    run_suite(&mut |budget| {
        let shared = MemoryBackend::new().with_budget(budget);
        Box::new(move || {
            (
                Box::new(shared.clone()) as Box<dyn LogBackend>,
                shared.recover(),
            )
        })
    });
}

fn file_suite(segment_max_bytes: u64) {
    let tmp = tempfile::tempdir().unwrap();
    let mut n = 0;
    run_suite(&mut |cache| {
        n += 1;
        let dir = tmp.path().join(format!("store{n}")).join("raft");
        Box::new(move || {
            let opts = FileOptions {
                segment_max_bytes,
                cache,
            };
            let (b, r) = FileBackend::open(&dir, opts).unwrap();
            (Box::new(b) as Box<dyn LogBackend>, r)
        })
    });
}

#[test]
fn file_backend_conforms_with_one_segment() {
    file_suite(16 * 1024 * 1024);
}

#[test]
fn file_backend_conforms_with_many_small_segments() {
    // About two entries per segment.
    file_suite(300);
}

// ----- file-specific recovery -------------------------------------------------------

fn segment_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    files.sort();
    files
}

fn write_ten(dir: &Path, segment_max_bytes: u64) {
    let (mut b, _) = FileBackend::open(
        dir,
        FileOptions {
            segment_max_bytes,
            ..FileOptions::default()
        },
    )
    .unwrap();
    b.append(&entries(1, 1, 10)).unwrap();
    b.sync().unwrap();
}

#[test]
fn torn_tail_mid_record_recovers_to_the_previous_entry() {
    let tmp = tempfile::tempdir().unwrap();
    write_ten(tmp.path(), 1 << 20);
    let last = segment_files(tmp.path()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 30)
        .unwrap();

    let (mut b, r) = FileBackend::open(tmp.path(), FileOptions::default()).unwrap();
    assert_eq!(r.entries(), entries(1, 1, 9));
    // The cut is permanent and appending continues after it.
    b.append(&entries(2, 10, 11)).unwrap();
    b.sync().unwrap();
    drop(b);
    let (_, r) = FileBackend::open(tmp.path(), FileOptions::default()).unwrap();
    let mut want = entries(1, 1, 9);
    want.extend(entries(2, 10, 11));
    assert_eq!(r.entries(), want);
}

#[test]
fn torn_header_recovers_to_the_previous_entry() {
    let tmp = tempfile::tempdir().unwrap();
    write_ten(tmp.path(), 1 << 20);
    let last = segment_files(tmp.path()).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&[7, 0, 0]); // three bytes of a next header
    std::fs::write(&last, bytes).unwrap();
    let (_, r) = FileBackend::open(tmp.path(), FileOptions::default()).unwrap();
    assert_eq!(r.entries(), entries(1, 1, 10));
}

#[test]
fn flipped_byte_in_the_last_record_recovers_to_the_previous_entry() {
    let tmp = tempfile::tempdir().unwrap();
    write_ten(tmp.path(), 1 << 20);
    let last = segment_files(tmp.path()).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    let n = bytes.len();
    bytes[n - 5] ^= 0x40;
    std::fs::write(&last, bytes).unwrap();
    let (_, r) = FileBackend::open(tmp.path(), FileOptions::default()).unwrap();
    assert_eq!(r.entries(), entries(1, 1, 9));
}

#[test]
fn corruption_in_an_earlier_segment_stops_the_start_and_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    write_ten(tmp.path(), 300);
    let files = segment_files(tmp.path());
    assert!(files.len() >= 3, "{files:?}");
    let mut bytes = std::fs::read(&files[1]).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1; // in the seal
    std::fs::write(&files[1], bytes).unwrap();
    let before = dir_contents(tmp.path());
    let opened = FileBackend::open(
        tmp.path(),
        FileOptions {
            segment_max_bytes: 300,
            ..FileOptions::default()
        },
    );
    assert_corrupt(opened, &files[1]);
    assert_eq!(dir_contents(tmp.path()), before, "nothing cut or deleted");
}

/// Every file in `dir` (not below it) with its bytes.
pub(crate) fn dir_contents(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut all: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    all.sort();
    all
}

/// The open failed with a Corrupt error naming `file`, an offset, an index and the
/// repair command.
pub(crate) fn assert_corrupt(
    opened: Result<(FileBackend, Recovered), StorageError>,
    file: &Path,
) -> String {
    match opened {
        Err(StorageError::Corrupt { what, detail }) => {
            assert_eq!(Path::new(&what), file, "{detail}");
            for needle in ["byte offset", "log index", "cairn debug repair-log"] {
                assert!(detail.contains(needle), "{needle:?} missing in {detail}");
            }
            detail
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok((_, r)) => panic!("opened with {} entries", r.entries().len()),
    }
}

#[test]
fn a_huge_length_prefix_is_treated_as_a_torn_tail() {
    let tmp = tempfile::tempdir().unwrap();
    write_ten(tmp.path(), 1 << 20);
    let last = segment_files(tmp.path()).pop().unwrap();
    let mut bytes = std::fs::read(&last).unwrap();
    bytes.extend_from_slice(&u32::MAX.to_le_bytes());
    bytes.extend_from_slice(&[0; 12]);
    std::fs::write(&last, bytes).unwrap();
    let (_, r) = FileBackend::open(tmp.path(), FileOptions::default()).unwrap();
    assert_eq!(r.entries(), entries(1, 1, 10));
}

#[test]
fn corrupt_hard_state_is_an_error_not_a_forgotten_vote() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let (mut b, _) = FileBackend::open(tmp.path(), FileOptions::default()).unwrap();
        b.save_hard_state(&hard_state(3, Some("a"))).unwrap();
    }
    let path = tmp.path().join("hardstate");
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    assert!(matches!(
        FileBackend::open(tmp.path(), FileOptions::default()),
        Err(StorageError::Corrupt { .. })
    ));
}

#[test]
fn a_damaged_record_is_an_error_on_reading_back() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = FileOptions {
        segment_max_bytes: 300,
        ..FileOptions::default()
    };
    let (mut b, _) = FileBackend::open(tmp.path(), opts).unwrap();
    b.append(&entries(1, 1, 10)).unwrap();
    b.sync().unwrap();
    // Flip a byte inside entry 3's payload (a hundred bytes of 3), in a sealed segment.
    let mut flipped = false;
    for path in segment_files(tmp.path()) {
        let mut bytes = std::fs::read(&path).unwrap();
        if let Some(pos) = bytes.windows(100).position(|w| w.iter().all(|&x| x == 3)) {
            bytes[pos + 50] ^= 0x40;
            std::fs::write(&path, bytes).unwrap();
            flipped = true;
            break;
        }
    }
    assert!(flipped);
    let err = b.read(LogIndex(2), LogIndex(5), usize::MAX).unwrap_err();
    assert!(
        matches!(&err, StorageError::Corrupt { detail, .. } if detail.contains("log index 3")),
        "{err}"
    );
    assert_eq!(
        b.read(LogIndex(4), LogIndex(5), usize::MAX).unwrap(),
        entries(1, 4, 5)
    );
}

#[test]
fn a_read_runs_after_everything_queued_before_it() {
    let backend = MemoryBackend::new();
    let store = LogStore::spawn(
        Box::new(backend.clone()),
        Arc::new(crate::snapshot_store::MemorySnapshotStore::new()),
        |_| {},
    )
    .unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    for id in 1..=5 {
        store.submit(request(id), None).unwrap();
        let tx = tx.clone();
        store
            .read(
                LogIndex(1),
                LogIndex(10),
                usize::MAX,
                Box::new(move |r| tx.send(r).unwrap()),
            )
            .unwrap();
    }
    for id in 1..=5 {
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap()
            .unwrap();
        assert_eq!(got, entries(1, 1, id));
    }
}

#[test]
fn log_store_thread_reports_the_highest_durable_id() {
    let backend = MemoryBackend::new();
    let (tx, rx) = std::sync::mpsc::channel();
    let store = LogStore::spawn(
        Box::new(backend.clone()),
        Arc::new(crate::snapshot_store::MemorySnapshotStore::new()),
        move |r| tx.send(r).unwrap(),
    )
    .unwrap();
    for id in 1..=5 {
        store.submit(request(id), None).unwrap();
    }
    let mut last = 0;
    while last < 5 {
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .unwrap()
            .unwrap();
        assert!(got > last);
        last = got;
    }
    assert_eq!(backend.recover().entries(), entries(1, 1, 5));
}

fn request(id: u64) -> PersistRequest {
    PersistRequest {
        reset_after: None,
        id,
        truncate_from: None,
        entries: entries(1, id, id),
        hard_state: None,
        then_send: Vec::new(),
    }
}

/// What the log store thread did, in order: "durable N" from an `AfterDurable`,
/// "reported N" / "failed" from `on_done`.
type Events = std::sync::Arc<parking_lot::Mutex<Vec<String>>>;

fn after(events: &Events, id: u64) -> Option<AfterDurable> {
    let events = events.clone();
    Some(Box::new(move || {
        events.lock().push(format!("durable {id}"))
    }))
}

fn wait_for_events(events: &Events, n: usize) -> Vec<String> {
    let start = std::time::Instant::now();
    while events.lock().len() < n {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            events.lock()
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    events.lock().clone()
}

#[test]
fn after_durable_runs_once_durable_before_the_report_and_never_after_a_failure() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut backend, _) = FileBackend::open(tmp.path(), FileOptions::default()).unwrap();
    // The first sync succeeds, every later one fails.
    backend.fail_syncs_after = Some(1);
    let events: Events = Default::default();
    let reports = events.clone();
    let store = LogStore::spawn(
        Box::new(backend),
        Arc::new(crate::snapshot_store::MemorySnapshotStore::new()),
        move |r| {
            reports.lock().push(match r {
                Ok(id) => format!("reported {id}"),
                Err(_) => "failed".into(),
            })
        },
    )
    .unwrap();
    store.submit(request(1), after(&events, 1)).unwrap();
    assert_eq!(wait_for_events(&events, 2), ["durable 1", "reported 1"]);
    store.submit(request(2), after(&events, 2)).unwrap();
    assert_eq!(
        wait_for_events(&events, 3),
        ["durable 1", "reported 1", "failed"]
    );
    store.stop();
    assert_eq!(events.lock().len(), 3, "{:?}", events.lock());
}

#[test]
fn compaction_deletes_only_whole_segments_below_the_point() {
    let tmp = tempfile::tempdir().unwrap();
    let opts = || FileOptions {
        segment_max_bytes: 300,
        ..FileOptions::default()
    };
    let (mut b, _) = FileBackend::open(tmp.path(), opts()).unwrap();
    b.append(&entries(1, 1, 10)).unwrap();
    b.sync().unwrap();
    let before = segment_files(tmp.path()).len();
    b.compact_until(LogIndex(0)).unwrap();
    assert_eq!(segment_files(tmp.path()).len(), before);
    b.compact_until(LogIndex(6)).unwrap();
    let after = segment_files(tmp.path());
    assert!(after.len() < before, "{after:?}");
    drop(b);
    let (_, r) = FileBackend::open(tmp.path(), opts()).unwrap();
    let first = r.entries()[0].index.0;
    // Whole segments only: entry 7 and everything after it stays.
    assert!((2..=7).contains(&first), "{first}");
    assert_eq!(r.entries(), entries(1, first, 10));
    assert!(after[0].ends_with(format!("{first:020}.seg")));
}

#[test]
fn a_crash_part_way_through_compaction_recovers_a_contiguous_log() {
    let tmp = tempfile::tempdir().unwrap();
    write_ten(tmp.path(), 300);
    let files = segment_files(tmp.path());
    assert!(files.len() >= 4, "{files:?}");
    // Compaction deletes oldest first: a crash after the first deletion leaves this.
    std::fs::remove_file(&files[0]).unwrap();
    let (mut b, r) = FileBackend::open(
        tmp.path(),
        FileOptions {
            segment_max_bytes: 300,
            ..FileOptions::default()
        },
    )
    .unwrap();
    let first = r.entries()[0].index.0;
    assert!(first > 1);
    assert_eq!(r.entries(), entries(1, first, 10));
    b.append(&entries(1, 11, 11)).unwrap();
    b.sync().unwrap();
    // A hole in the middle (never produced by compaction) stops the start.
    drop(b);
    let files = segment_files(tmp.path());
    std::fs::remove_file(&files[1]).unwrap();
    let opened = FileBackend::open(
        tmp.path(),
        FileOptions {
            segment_max_bytes: 300,
            ..FileOptions::default()
        },
    );
    let detail = assert_corrupt(opened, &files[2]);
    assert!(detail.contains("gap"), "{detail}");
}

#[test]
fn a_complete_record_over_the_limit_is_an_error_not_a_torn_tail() {
    // Entries of ~110 bytes read back with a 50-byte record limit: complete records
    // with valid CRCs, so recovery must refuse rather than cut committed entries.
    let tmp = tempfile::tempdir().unwrap();
    write_ten(tmp.path(), 1 << 20);
    let seg = segment_files(tmp.path()).pop().unwrap();
    let before = std::fs::read(&seg).unwrap();
    let opened = FileBackend::open_with_record_limit(tmp.path(), FileOptions::default(), 50);
    match opened {
        Err(StorageError::Corrupt { detail, .. }) => {
            assert!(detail.contains("valid crc"), "{detail}")
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok((_, r)) => panic!("opened with {} entries", r.entries().len()),
    }
    assert_eq!(std::fs::read(&seg).unwrap(), before, "nothing cut");
    // A torn record over the limit is still just a torn tail.
    std::fs::write(&seg, &before[..60]).unwrap();
    let (_, r) =
        FileBackend::open_with_record_limit(tmp.path(), FileOptions::default(), 50).unwrap();
    assert_eq!(r.entries(), vec![]);
}

#[test]
fn appending_a_record_over_the_limit_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut b, _) =
        FileBackend::open_with_record_limit(tmp.path(), FileOptions::default(), 50).unwrap();
    assert!(matches!(
        b.append(&entries(1, 1, 1)),
        Err(StorageError::Io(_))
    ));
    assert_eq!(b.last_index(), LogIndex(0));
}

#[test]
fn a_crash_part_way_through_a_reset_leaves_a_log_starting_where_it_did() {
    let opts = || FileOptions {
        segment_max_bytes: 300,
        ..FileOptions::default()
    };
    for deleted in 0..4 {
        let tmp = tempfile::tempdir().unwrap();
        write_ten(tmp.path(), 300);
        let files = segment_files(tmp.path());
        assert!(files.len() >= 4, "{files:?}");
        let (mut b, _) = FileBackend::open(tmp.path(), opts()).unwrap();
        b.crash_after_deletes = Some(deleted);
        assert!(b.reset_after(LogIndex(50)).is_err());
        drop(b);
        // What survives is the oldest part of the old log: it still starts at 1 (so the
        // snapshot at 50 plus this log has no gap) and is contiguous.
        let (_, r) = FileBackend::open(tmp.path(), opts()).unwrap();
        let n = r.entries().len() as u64;
        assert!(n < 10 || deleted == 0, "deleted {deleted}: {n} entries");
        assert_eq!(r.entries(), entries(1, 1, n), "after {deleted} deletions");
    }
}
