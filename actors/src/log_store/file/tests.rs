//! Damage, crash-point and failure-injection tests of the file backend. The rule under
//! test: after acknowledged (synced) writes, a damaged data directory either gives back
//! everything acknowledged or fails to open with `StorageError::Corrupt` naming the
//! file, offset and index, and changes nothing. The only exception is damage confined
//! to the final record of the newest segment, which is indistinguishable from a torn
//! write and is cut.

use super::*;
use crate::log_store::conformance::{assert_corrupt, dir_contents};
use protocol::ids::Term;
use protocol::raft::Payload;

fn entry(term: u64, index: u64) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: Payload::Command(vec![index as u8; 100]),
    }
}

fn entries(from: u64, to: u64) -> Vec<Entry> {
    (from..=to).map(|i| entry(1, i)).collect()
}

fn opts(segment_max_bytes: u64) -> FileOptions {
    FileOptions {
        segment_max_bytes,
        ..FileOptions::default()
    }
}

fn segment_files(dir: &Path) -> Vec<PathBuf> {
    scan::list_segments(dir)
        .unwrap()
        .into_iter()
        .map(|(_, p)| p)
        .collect()
}

/// Write entries 1..=n, each batch of 5 synced (acknowledged), plus a hard state.
fn write_acked(dir: &Path, n: u64, segment_max_bytes: u64) {
    let (mut b, _) = FileBackend::open(dir, opts(segment_max_bytes)).unwrap();
    b.save_hard_state(&HardState {
        term: Term(1),
        voted_for: None,
    })
    .unwrap();
    let mut i = 1;
    while i <= n {
        let to = (i + 4).min(n);
        b.append(&entries(i, to)).unwrap();
        b.sync().unwrap();
        i = to + 1;
    }
}

/// Open after damage: everything acknowledged, or a Corrupt error that changed nothing.
/// Returns the error detail, if any.
fn all_back_or_refused(dir: &Path, n: u64, segment_max_bytes: u64, file: &Path) -> Option<String> {
    let before = dir_contents(dir);
    match FileBackend::open(dir, opts(segment_max_bytes)) {
        Ok((_, r)) => {
            assert_eq!(r.entries(), entries(1, n), "silent loss");
            None
        }
        Err(e) => {
            let detail = assert_corrupt(Err(e), file);
            assert_eq!(dir_contents(dir), before, "a refused open changed files");
            Some(detail)
        }
    }
}

fn modify(path: &Path, f: impl FnOnce(&mut Vec<u8>)) {
    let mut bytes = fs::read(path).unwrap();
    f(&mut bytes);
    fs::write(path, bytes).unwrap();
}

/// Where record `k` (0-based) of a segment starts.
fn record_offsets(path: &Path) -> Vec<usize> {
    let bytes = fs::read(path).unwrap();
    let mut pos = match format::parse_header(&bytes) {
        Header::V1 { .. } => SEGMENT_HEADER_BYTES as usize,
        _ => 0,
    };
    let mut out = Vec::new();
    while let format::Record::Good(_, end) = format::unframe(&bytes, pos, 1 << 20) {
        out.push(pos);
        pos = end;
    }
    out
}

use format::Header;

#[test]
fn every_single_byte_flip_is_caught_except_in_the_final_record() {
    // ~3 entries a segment: 4 segments, so older, newest, headers and seals all get hit.
    let n = 14;
    let tmp = tempfile::tempdir().unwrap();
    write_acked(tmp.path(), n, 400);
    let files = segment_files(tmp.path());
    assert!(files.len() >= 4, "{files:?}");
    let pristine = dir_contents(tmp.path());
    let newest = files.last().unwrap().clone();
    let final_record = *record_offsets(&newest).last().unwrap();
    let mut refused = 0;
    for file in &files {
        let len = fs::metadata(file).unwrap().len() as usize;
        // Every byte of the header, the first record and the seal; every third byte
        // elsewhere (record headers land on all residues, payload bytes are alike).
        for at in (0..len).filter(|&at| at % 3 == 0 || at < 160 || len - at <= 32) {
            // One flip per byte: the crc catches any pattern alike; 0x41 changes a
            // length field's low and high bits of the byte.
            for mask in [0x41u8] {
                modify(file, |b| b[at] ^= mask);
                if file == &newest && at >= final_record {
                    // Indistinguishable from a torn write: the last record may go.
                    let (_, r) = FileBackend::open(tmp.path(), opts(400)).unwrap();
                    let got = r.entries().len() as u64;
                    assert!(got == n || got == n - 1, "{file:?}@{at}: {got}");
                    assert_eq!(r.entries(), entries(1, got));
                } else if all_back_or_refused(tmp.path(), n, 400, file).is_some() {
                    refused += 1;
                }
                for (path, bytes) in &pristine {
                    if path == file
                        || fs::metadata(path).map(|m| m.len()).ok() != Some(bytes.len() as u64)
                    {
                        fs::write(path, bytes).unwrap();
                    }
                }
            }
        }
    }
    assert!(refused > 600, "{refused}");
}

/// 4 KiB blocks need bigger segments: ~140 entries each.
const BIG: u64 = 16 * 1024;

#[test]
fn a_zeroed_block_in_an_older_segment_or_mid_newest_is_refused() {
    let n = 540;
    for (which, offset) in [(0usize, 5000usize), (1, 24), (0, 0), (usize::MAX, 4096)] {
        let tmp = tempfile::tempdir().unwrap();
        write_acked(tmp.path(), n, BIG);
        let files = segment_files(tmp.path());
        assert!(files.len() >= 3, "{files:?}");
        let file = files.get(which).unwrap_or(files.last().unwrap()).clone();
        modify(&file, |b| {
            assert!(b.len() > offset + 4096 + 200, "{}", b.len());
            b[offset..offset + 4096].fill(0);
        });
        let detail = all_back_or_refused(tmp.path(), n, BIG, &file);
        assert!(detail.is_some(), "{file:?}@{offset} opened");
    }
}

#[test]
fn a_zeroed_block_at_the_very_end_of_the_newest_segment_is_a_torn_tail() {
    let n = 500;
    let tmp = tempfile::tempdir().unwrap();
    write_acked(tmp.path(), n, BIG);
    let newest = segment_files(tmp.path()).pop().unwrap();
    let len = fs::metadata(&newest).unwrap().len() as usize;
    let cut_from = len.saturating_sub(4096).max(SEGMENT_HEADER_BYTES as usize);
    modify(&newest, |b| b[cut_from..].fill(0));
    let (_, r) = FileBackend::open(tmp.path(), opts(BIG)).unwrap();
    let kept = r.entries().len() as u64;
    assert!(kept < n && kept > n - 45, "{kept}");
    assert_eq!(r.entries(), entries(1, kept));
}

#[test]
fn a_bad_length_field_is_refused_even_when_it_points_past_the_end() {
    let n = 40;
    for (which, value) in [
        (0usize, u32::MAX),
        (0, 20_000),
        (1, 7),
        (usize::MAX, 60_000),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        write_acked(tmp.path(), n, 2000);
        let files = segment_files(tmp.path());
        assert!(files.len() >= 3, "{files:?}");
        let file = files.get(which).unwrap_or(files.last().unwrap()).clone();
        // A record in the middle of the segment.
        let offsets = record_offsets(&file);
        let at = offsets[offsets.len() / 2];
        modify(&file, |b| {
            b[at..at + 4].copy_from_slice(&value.to_le_bytes())
        });
        let detail = all_back_or_refused(tmp.path(), n, 2000, &file);
        let detail = detail.unwrap_or_else(|| panic!("{file:?} len {value} opened"));
        assert!(detail.contains(&format!("byte offset {at}")), "{detail}");
    }
}

#[test]
fn a_deleted_newest_segment_is_refused() {
    let n = 40;
    let tmp = tempfile::tempdir().unwrap();
    write_acked(tmp.path(), n, 2000);
    let files = segment_files(tmp.path());
    fs::remove_file(files.last().unwrap()).unwrap();
    let prev = &files[files.len() - 2];
    let detail = all_back_or_refused(tmp.path(), n, 2000, prev).unwrap();
    assert!(detail.contains("missing"), "{detail}");
}

#[test]
fn a_deleted_middle_segment_or_a_renamed_one_is_a_gap() {
    let n = 40;
    let tmp = tempfile::tempdir().unwrap();
    write_acked(tmp.path(), n, 1000);
    let files = segment_files(tmp.path());
    assert!(files.len() >= 4, "{files:?}");
    fs::remove_file(&files[1]).unwrap();
    let detail = all_back_or_refused(tmp.path(), n, 1000, &files[2]).unwrap();
    assert!(detail.contains("gap"), "{detail}");

    // A gap in indexes without a missing file: the newest renamed one index later.
    let tmp = tempfile::tempdir().unwrap();
    write_acked(tmp.path(), n, 1000);
    let files = segment_files(tmp.path());
    let newest = files.last().unwrap();
    let first: u64 = newest
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap();
    let moved = segment_path(tmp.path(), first + 1);
    fs::rename(newest, &moved).unwrap();
    assert!(all_back_or_refused(tmp.path(), n, 1000, &moved).is_some());
}

#[test]
fn no_segment_next_to_a_hard_state_or_snapshot_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    write_acked(tmp.path(), 10, 1 << 20);
    for f in segment_files(tmp.path()) {
        fs::remove_file(f).unwrap();
    }
    let detail = assert_corrupt(
        FileBackend::open(tmp.path(), FileOptions::default()),
        tmp.path(),
    );
    assert!(detail.contains("deleted"), "{detail}");
    // Snapshots alone count too.
    fs::remove_file(tmp.path().join(HARD_STATE_FILE)).unwrap();
    fs::create_dir(tmp.path().join("snapshots")).unwrap();
    fs::write(
        tmp.path()
            .join("snapshots/00000000000000000001-00000000000000000007.snap"),
        b"x",
    )
    .unwrap();
    let inspection = FileBackend::inspect(tmp.path()).unwrap();
    let damage = inspection.damage.unwrap();
    assert_eq!(damage.repair, Repair::Create { first_index: 8 });
}

#[test]
fn an_unknown_format_version_names_the_file_and_version() {
    let tmp = tempfile::tempdir().unwrap();
    write_acked(tmp.path(), 3, 1 << 20);
    let seg = segment_files(tmp.path()).pop().unwrap();
    modify(&seg, |b| {
        b[8..12].copy_from_slice(&7u32.to_le_bytes());
        let crc = crc32fast::hash(&b[..20]);
        b[20..24].copy_from_slice(&crc.to_le_bytes());
    });
    match FileBackend::open(tmp.path(), FileOptions::default()) {
        Err(StorageError::Corrupt { what, detail }) => {
            assert_eq!(Path::new(&what), seg);
            assert!(detail.contains("version 7"), "{detail}");
        }
        other => panic!("{:?}", other.map(|(_, r)| r.entries().len())),
    }
}

// ----- legacy v0 -------------------------------------------------------------------

/// A v0 segment byte for byte as the headerless format (before version 1) wrote it:
/// no header, records `u32 len LE | u32 crc32 LE | codec-encoded entry`, no seal. Built
/// here independently of `format` so that a change there cannot hide a break.
fn v0_segment(dir: &Path, from: u64, to: u64) {
    let mut bytes = Vec::new();
    for e in entries(from, to) {
        let payload = codec::encode(&e).unwrap();
        bytes.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        bytes.extend_from_slice(&payload);
    }
    fs::write(format!("{}/{from:020}.seg", dir.display()), bytes).unwrap();
}

#[test]
fn a_legacy_v0_log_is_read_then_continued_in_v1() {
    let tmp = tempfile::tempdir().unwrap();
    v0_segment(tmp.path(), 1, 4);
    v0_segment(tmp.path(), 5, 9);
    let (mut b, r) = FileBackend::open(tmp.path(), opts(1 << 20)).unwrap();
    assert_eq!(r.entries(), entries(1, 9));
    // The legacy active segment was sealed and a v1 one started after it.
    let files = segment_files(tmp.path());
    assert_eq!(files.len(), 3, "{files:?}");
    let newest = fs::read(&files[2]).unwrap();
    assert_eq!(
        format::parse_header(&newest),
        Header::V1 { first_index: 10 }
    );
    b.append(&entries(10, 12)).unwrap();
    b.sync().unwrap();
    drop(b);
    let (_, r) = FileBackend::open(tmp.path(), opts(1 << 20)).unwrap();
    assert_eq!(r.entries(), entries(1, 12));
    // Now the legacy segment is sealed: losing the newest one is caught.
    fs::remove_file(&files[2]).unwrap();
    assert_corrupt(FileBackend::open(tmp.path(), opts(1 << 20)), &files[1]);
}

#[test]
fn a_legacy_v0_torn_tail_is_still_cut_and_damage_refused() {
    let tmp = tempfile::tempdir().unwrap();
    v0_segment(tmp.path(), 1, 6);
    let seg = segment_path(tmp.path(), 1);
    modify(&seg, |b| b.truncate(b.len() - 10));
    let (_, r) = FileBackend::open(tmp.path(), opts(1 << 20)).unwrap();
    assert_eq!(r.entries(), entries(1, 5));

    let tmp = tempfile::tempdir().unwrap();
    v0_segment(tmp.path(), 1, 6);
    v0_segment(tmp.path(), 7, 9);
    let seg = segment_path(tmp.path(), 1);
    modify(&seg, |b| b[20] ^= 4);
    assert_corrupt(FileBackend::open(tmp.path(), opts(1 << 20)), &seg);

    // A gap between legacy segments is caught too.
    let tmp = tempfile::tempdir().unwrap();
    v0_segment(tmp.path(), 1, 3);
    v0_segment(tmp.path(), 4, 6);
    v0_segment(tmp.path(), 7, 9);
    fs::remove_file(segment_path(tmp.path(), 4)).unwrap();
    assert_corrupt(
        FileBackend::open(tmp.path(), opts(1 << 20)),
        &segment_path(tmp.path(), 7),
    );
}

// ----- crash points ----------------------------------------------------------------

#[test]
fn a_crash_during_a_roll_recovers_everything_synced() {
    let n = 12;
    let tmp = tempfile::tempdir().unwrap();
    write_acked(tmp.path(), n, 400);
    let files = segment_files(tmp.path());
    let (prev, newest) = (&files[files.len() - 2], files.last().unwrap());
    let sealed = fs::read(prev).unwrap();
    let content = sealed.len() - SEAL_RECORD_BYTES as usize;
    let newest_bytes = fs::read(newest).unwrap();
    // Successor created (header only), seal written partly or not at all.
    for keep in content..sealed.len() {
        fs::write(prev, &sealed[..keep]).unwrap();
        fs::write(newest, format::segment_header(first_of(newest))).unwrap();
        let (_, r) = FileBackend::open(tmp.path(), opts(400)).unwrap();
        let got = r.entries().len() as u64;
        assert_eq!(r.entries(), entries(1, got), "keep {keep}");
        assert_eq!(first_of(newest), got + 1);
        // ...but a partial seal before a segment holding records is damage.
        fs::write(prev, &sealed[..keep]).unwrap();
        fs::write(newest, &newest_bytes).unwrap();
        if keep > content {
            assert_corrupt(FileBackend::open(tmp.path(), opts(400)), prev);
        }
    }
    // The successor's header itself torn.
    for keep in 0..SEGMENT_HEADER_BYTES as usize {
        fs::write(prev, &sealed[..content]).unwrap();
        fs::write(newest, &format::segment_header(first_of(newest))[..keep]).unwrap();
        let (mut b, r) = FileBackend::open(tmp.path(), opts(400)).unwrap();
        assert_eq!(r.entries().len() as u64, first_of(newest) - 1);
        b.append(&[entry(2, first_of(newest))]).unwrap();
        b.sync().unwrap();
    }
}

fn first_of(path: &Path) -> u64 {
    path.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap()
}

#[test]
fn a_crash_at_any_point_of_a_reset_leaves_a_recoverable_log() {
    for crash_at in 0..8 {
        let tmp = tempfile::tempdir().unwrap();
        write_acked(tmp.path(), 12, 400);
        let segments = segment_files(tmp.path()).len();
        let (mut b, _) = FileBackend::open(tmp.path(), opts(400)).unwrap();
        b.crash_after_deletes = Some(crash_at);
        let finished = b.reset_after(LogIndex(50)).is_ok();
        assert_eq!(finished, crash_at >= segments, "crash at {crash_at}");
        drop(b);
        let (mut b, r) = FileBackend::open(tmp.path(), opts(400)).unwrap();
        // A prefix of the old log from 1, or the empty log after 50.
        let n = r.entries().len() as u64;
        if b.last_index() == LogIndex(50) {
            assert!(r.entries().is_empty());
        } else {
            assert_eq!(r.entries(), entries(1, n), "crash at {crash_at}");
        }
        let next = b.last_index().0 + 1;
        b.append(&[entry(2, next)]).unwrap();
        b.sync().unwrap();
        drop(b);
        let (_, again) = FileBackend::open(tmp.path(), opts(400)).unwrap();
        assert_eq!(again.entries().last(), Some(&entry(2, next)));
    }
}

#[test]
fn a_crash_at_any_point_of_a_multi_segment_truncation_keeps_the_prefix() {
    for crash_at in 0..4 {
        let tmp = tempfile::tempdir().unwrap();
        write_acked(tmp.path(), 12, 400);
        let (mut b, _) = FileBackend::open(tmp.path(), opts(400)).unwrap();
        b.crash_after_deletes = Some(crash_at);
        let done = b.truncate_from(LogIndex(3)).is_ok();
        drop(b);
        let (_, r) = FileBackend::open(tmp.path(), opts(400)).unwrap();
        let n = r.entries().len() as u64;
        assert_eq!(r.entries(), entries(1, n), "crash at {crash_at}");
        assert!(n >= 2);
        if done {
            assert_eq!(n, 2);
        }
    }
}

// ----- failing writes and fsyncs ---------------------------------------------------

/// Append one entry at a time with a sync each until something fails; returns the last
/// index whose sync succeeded.
fn append_until_failure(b: &mut FileBackend, from: u64, to: u64) -> u64 {
    let mut acked = from - 1;
    for i in from..=to {
        if b.append(&[entry(3, i)]).is_err() || b.sync().is_err() {
            return acked;
        }
        acked = i;
    }
    acked
}

#[test]
fn recover_after_error_resumes_after_any_failing_fsync() {
    for fail_after in 0..12 {
        let tmp = tempfile::tempdir().unwrap();
        write_acked(tmp.path(), 10, 400);
        let (mut b, _) = FileBackend::open(tmp.path(), opts(400)).unwrap();
        b.fail_syncs_after = Some(fail_after);
        let acked = append_until_failure(&mut b, 11, 40);
        assert!(acked < 40, "no failure injected at {fail_after}");
        b.fail_syncs_after = None;
        let r = b.recover_after_error().unwrap();
        let mut want = entries(1, 10);
        want.extend((11..=acked).map(|i| entry(3, i)));
        assert_eq!(r.entries(), want, "fail after {fail_after}");
        assert_eq!(b.last_index(), LogIndex(acked));
        // It resumes, and a restart sees exactly what recovery said.
        b.append(&[entry(4, acked + 1)]).unwrap();
        b.sync().unwrap();
        want.push(entry(4, acked + 1));
        drop(b);
        let (_, reopened) = FileBackend::open(tmp.path(), opts(400)).unwrap();
        assert_eq!(reopened.entries(), want, "fail after {fail_after}");
    }
}

#[test]
fn recover_after_error_drops_a_half_written_batch() {
    let tmp = tempfile::tempdir().unwrap();
    write_acked(tmp.path(), 10, 1 << 20);
    let seg = segment_files(tmp.path()).pop().unwrap();
    // Closed cleanly, the segment ends with its records (no preallocated zeros).
    let synced_len = fs::metadata(&seg).unwrap().len() as usize;
    let (mut b, _) = FileBackend::open(tmp.path(), opts(1 << 20)).unwrap();
    b.append(&entries(11, 20)).unwrap();
    b.fail_next_write = true;
    assert!(b.sync().is_err());
    let after_records = |what: &str| -> Vec<u8> {
        let bytes = fs::read(&seg).unwrap();
        assert!(bytes.len() >= synced_len, "{what}");
        bytes[synced_len..].to_vec()
    };
    assert!(
        after_records("half written").iter().any(|b| *b != 0),
        "half written"
    );
    let r = b.recover_after_error().unwrap();
    assert_eq!(r.entries(), entries(1, 10));
    // Past the synced records there are only (preallocated) zeros again.
    assert!(after_records("recovered").iter().all(|b| *b == 0));
    drop(b);
    assert_eq!(fs::metadata(&seg).unwrap().len() as usize, synced_len);
}

#[test]
fn recover_after_error_after_a_failed_truncation_or_reset_matches_a_restart() {
    for (fail_after, reset) in [
        (0, false),
        (1, false),
        (2, false),
        (0, true),
        (1, true),
        (3, true),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        write_acked(tmp.path(), 12, 400);
        let (mut b, _) = FileBackend::open(tmp.path(), opts(400)).unwrap();
        b.fail_syncs_after = Some(fail_after);
        let failed = if reset {
            b.reset_after(LogIndex(50)).is_err()
        } else {
            b.truncate_from(LogIndex(3)).is_err()
        };
        assert!(failed, "{fail_after} {reset}");
        b.fail_syncs_after = None;
        let r = b.recover_after_error().unwrap();
        drop(b);
        let (b, reopened) = FileBackend::open(tmp.path(), opts(400)).unwrap();
        assert_eq!(r, reopened);
        let n = r.entries().len() as u64;
        if n > 0 {
            assert_eq!(r.entries(), entries(1, n));
        } else {
            assert!(b.last_index() == LogIndex(50) || b.last_index().0 < 12);
        }
    }
}

// ----- repair ----------------------------------------------------------------------

#[test]
fn repair_cuts_at_the_damage_and_moves_the_rest_aside() {
    let n = 40;
    let tmp = tempfile::tempdir().unwrap();
    write_acked(tmp.path(), n, 1000);
    let files = segment_files(tmp.path());
    let offsets = record_offsets(&files[1]);
    let at = offsets[2];
    modify(&files[1], |b| b[at + 10] ^= 0xff);
    let inspection = FileBackend::inspect(tmp.path()).unwrap();
    let damage = inspection.damage.clone().unwrap();
    assert_eq!(
        (damage.path.clone(), damage.offset),
        (files[1].clone(), at as u64)
    );
    let first_bad = first_of(&files[1]) + 2;
    assert_eq!(damage.index, first_bad);
    let report = FileBackend::repair(tmp.path(), &damage, "test", None).unwrap();
    assert!(report.after.damage.is_none());
    assert_eq!(report.moved.len(), files.len() - 2);
    for f in &files[1..] {
        let name = f.file_name().unwrap();
        assert!(tmp.path().join("damaged-test").join(name).exists());
    }
    let (_, r) = FileBackend::open(tmp.path(), opts(1000)).unwrap();
    assert_eq!(r.entries(), entries(1, first_bad - 1));
}

#[test]
fn repair_of_a_missing_newest_segment_unseals_the_previous_one() {
    let tmp = tempfile::tempdir().unwrap();
    write_acked(tmp.path(), 40, 1000);
    let files = segment_files(tmp.path());
    fs::remove_file(files.last().unwrap()).unwrap();
    let damage = FileBackend::inspect(tmp.path()).unwrap().damage.unwrap();
    FileBackend::repair(tmp.path(), &damage, "x", None).unwrap();
    let (mut b, r) = FileBackend::open(tmp.path(), opts(1000)).unwrap();
    let n = r.entries().len() as u64;
    assert_eq!(n, first_of(files.last().unwrap()) - 1);
    b.append(&[entry(2, n + 1)]).unwrap();
    b.sync().unwrap();
}

#[test]
fn repair_of_damage_a_snapshot_covers_keeps_every_later_entry() {
    let tmp = tempfile::tempdir().unwrap();
    write_acked(tmp.path(), 40, 1000);
    let files = segment_files(tmp.path());
    let offsets = record_offsets(&files[1]);
    let at = offsets[2];
    modify(&files[1], |b| b[at + 10] ^= 0xff);
    let damage = FileBackend::inspect(tmp.path()).unwrap().damage.unwrap();
    // A snapshot at or past the next segment's first index - 1 covers the damage.
    let next_first = first_of(&files[2]);
    let report = FileBackend::repair(tmp.path(), &damage, "snap", Some(next_first - 1)).unwrap();
    assert!(report.after.damage.is_none(), "{report:?}");
    assert_eq!(
        report.moved.len(),
        2,
        "the damaged segment and the one before it"
    );
    assert!(report.cut.is_none());
    let (_, r) = FileBackend::open(tmp.path(), opts(1000)).unwrap();
    assert_eq!(
        r.entries(),
        entries(next_first, 40),
        "every entry after the damage kept"
    );
    // A snapshot that does not reach the next segment: the log is cut as before.
    let tmp = tempfile::tempdir().unwrap();
    write_acked(tmp.path(), 40, 1000);
    let files = segment_files(tmp.path());
    modify(&files[1], |b| b[at + 10] ^= 0xff);
    let damage = FileBackend::inspect(tmp.path()).unwrap().damage.unwrap();
    let report =
        FileBackend::repair(tmp.path(), &damage, "snap", Some(first_of(&files[2]) - 2)).unwrap();
    assert!(report.cut.is_some());
}

#[test]
fn the_hard_state_file_is_versioned_and_version_0_still_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let hs = HardState {
        term: Term(7),
        voted_for: Some(protocol::ids::ServerId("s1".into())),
    };
    {
        let (mut b, _) = FileBackend::open(tmp.path(), opts(1000)).unwrap();
        b.save_hard_state(&hs).unwrap();
    }
    let path = tmp.path().join(HARD_STATE_FILE);
    let bytes = fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], format::HARD_STATE_MAGIC);
    assert_eq!(
        FileBackend::open(tmp.path(), opts(1000))
            .unwrap()
            .1
            .hard_state,
        hs
    );
    // Version 0 (the bare record earlier builds wrote) still reads.
    fs::write(&path, &bytes[12..]).unwrap();
    assert_eq!(
        FileBackend::open(tmp.path(), opts(1000))
            .unwrap()
            .1
            .hard_state,
        hs
    );
    // An unknown version stops the start naming it and the file.
    let mut future = bytes.clone();
    future[8..12].copy_from_slice(&9u32.to_le_bytes());
    fs::write(&path, &future).unwrap();
    let err = FileBackend::open(tmp.path(), opts(1000))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("unknown hard state format version 9"), "{err}");
    assert!(err.contains("hardstate"), "{err}");
}

/// What a crash (no clean close) leaves of a backend: its files as they are, the
/// preallocated zeros of the active segment included.
fn crash(b: FileBackend) {
    std::mem::forget(b);
}

/// A log of ten acknowledged entries in one preallocated segment, left as a crash
/// leaves it.
fn crashed_after_ten_entries() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().unwrap();
    let (mut b, _) = FileBackend::open(tmp.path(), opts(1 << 20)).unwrap();
    b.append(&entries(1, 10)).unwrap();
    b.sync().unwrap();
    crash(b);
    tmp
}

/// The byte where the records of `path` end (from a recovery scan, which changes nothing).
fn records_end(dir: &Path, path: &Path) -> usize {
    let scanned = scan::scan(dir, MAX_RECORD_BYTES, CacheBudget::default()).unwrap();
    let seg = scanned.segments.iter().find(|s| s.path == path).unwrap();
    seg.len as usize
}

#[test]
fn preallocated_zeros_after_a_crash_are_the_end_of_the_log_not_damage() {
    let tmp = crashed_after_ten_entries();
    let seg = segment_files(tmp.path()).pop().unwrap();
    let bytes = fs::read(&seg).unwrap();
    let end = records_end(tmp.path(), &seg);
    assert_eq!(bytes.len(), 1 << 20, "the active segment is preallocated");
    assert!(bytes[end..].iter().all(|b| *b == 0));
    let scanned = scan::scan(tmp.path(), MAX_RECORD_BYTES, CacheBudget::default()).unwrap();
    assert!(scanned.fixes.is_empty(), "{:?}", scanned.fixes);

    // Appending after the restart writes over the zeros, in place.
    let (mut b, r) = FileBackend::open(tmp.path(), opts(1 << 20)).unwrap();
    assert_eq!(r.entries(), entries(1, 10));
    b.append(&entries(11, 15)).unwrap();
    b.sync().unwrap();
    crash(b);
    let (b, r) = FileBackend::open(tmp.path(), opts(1 << 20)).unwrap();
    assert_eq!(r.entries(), entries(1, 15));
    // A clean close gives the zeros back.
    drop(b);
    assert_eq!(fs::read(&seg).unwrap().len(), records_end(tmp.path(), &seg));
}

#[test]
fn a_torn_write_into_the_preallocated_zeros_is_cut_and_appends_go_on() {
    let tmp = crashed_after_ten_entries();
    let seg = segment_files(tmp.path()).pop().unwrap();
    let end = records_end(tmp.path(), &seg);
    // The start of the next record reached the disk, its end did not.
    let mut next = Vec::new();
    format::frame(&codec::encode(&entry(1, 11)).unwrap(), &mut next);
    modify(&seg, |bytes| {
        bytes[end..end + next.len() / 2].copy_from_slice(&next[..next.len() / 2])
    });
    let scanned = scan::scan(tmp.path(), MAX_RECORD_BYTES, CacheBudget::default()).unwrap();
    assert!(
        matches!(&scanned.fixes[..], [Fix::CutTail { len, .. }] if *len as usize == end),
        "{:?}",
        scanned.fixes
    );
    let (mut b, r) = FileBackend::open(tmp.path(), opts(1 << 20)).unwrap();
    assert_eq!(r.entries(), entries(1, 10));
    b.append(&entries(11, 12)).unwrap();
    b.sync().unwrap();
    crash(b);
    let (_, r) = FileBackend::open(tmp.path(), opts(1 << 20)).unwrap();
    assert_eq!(r.entries(), entries(1, 12));
}

#[test]
fn zeros_before_a_valid_record_in_the_preallocated_segment_are_damage() {
    let tmp = crashed_after_ten_entries();
    let seg = segment_files(tmp.path()).pop().unwrap();
    let offsets = record_offsets(&seg);
    // Entry 9's record zeroed; entry 10's still whole after it.
    let (from, to) = (offsets[8], offsets[9]);
    modify(&seg, |bytes| bytes[from..to].fill(0));
    let detail = all_back_or_refused(tmp.path(), 10, 1 << 20, &seg);
    assert!(detail.is_some(), "acknowledged entry 9 lost silently");
}

#[test]
fn rolled_segments_end_with_their_seal_and_only_the_newest_is_preallocated() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut b, _) = FileBackend::open(tmp.path(), opts(600)).unwrap();
    for i in 1..=30 {
        b.append(&entries(i, i)).unwrap();
        b.sync().unwrap();
    }
    crash(b);
    let files = segment_files(tmp.path());
    assert!(files.len() >= 4, "{files:?}");
    let scanned = scan::scan(tmp.path(), MAX_RECORD_BYTES, CacheBudget::default()).unwrap();
    assert!(scanned.fixes.is_empty(), "{:?}", scanned.fixes);
    for (seg, file) in scanned.segments.iter().zip(&files) {
        let on_disk = fs::metadata(file).unwrap().len();
        if file == files.last().unwrap() {
            assert!(!seg.sealed);
            assert!(on_disk >= seg.len, "{file:?}");
        } else {
            assert!(seg.sealed, "{file:?}");
            assert_eq!(on_disk, seg.len + SEAL_RECORD_BYTES, "{file:?}");
        }
    }
    let (_, r) = FileBackend::open(tmp.path(), opts(600)).unwrap();
    assert_eq!(r.entries(), entries(1, 30));
}

#[test]
fn truncation_leaves_no_stale_record_behind_the_preallocated_zeros() {
    let tmp = tempfile::tempdir().unwrap();
    let (mut b, _) = FileBackend::open(tmp.path(), opts(1 << 20)).unwrap();
    b.append(&entries(1, 20)).unwrap();
    b.sync().unwrap();
    b.truncate_from(LogIndex(8)).unwrap();
    b.append(&[entry(2, 8)]).unwrap();
    b.sync().unwrap();
    crash(b);
    let seg = segment_files(tmp.path()).pop().unwrap();
    let end = records_end(tmp.path(), &seg);
    assert!(fs::read(&seg).unwrap()[end..].iter().all(|b| *b == 0));
    let (_, r) = FileBackend::open(tmp.path(), opts(1 << 20)).unwrap();
    let mut want = entries(1, 7);
    want.push(entry(2, 8));
    assert_eq!(r.entries(), want);
}
