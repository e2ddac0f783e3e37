//! File backend of the Raft log.
//!
//! # On-disk format (directory `<data_dir>/raft/`), format version 1
//! - `<first index, 20 digits>.seg`: segment files. Each starts with a 24-byte header
//!   `b"CAIRNLOG" | u32 format version (LE, 1) | u64 first index (LE) | u32 crc32 of the
//!   previous 20 bytes (LE)`, then holds consecutive entries as records
//!   `u32 length (LE) | u32 crc32 of payload (LE, crc32fast) | payload`, where the payload
//!   is the codec-encoded `raft::Entry`. A new segment starts once the current one
//!   reaches `segment_max_bytes` (default 16 MiB).
//! - A finished segment ends with a SEAL record: same framing, 16-byte payload
//!   `0xFF "CAIRNSL" | u64 first index of the next segment (LE)`. (0xFF never starts a
//!   codec-encoded entry.) The seal is what makes a lost newest segment visible.
//! - The newest (active) segment is preallocated to `segment_max_bytes` with zeros
//!   (fallocate), so an append does not grow the file and its fdatasync has no file
//!   size to commit; its records end at the first zero record header. A clean close
//!   trims the zeros, and a segment is trimmed to its records before it is sealed, so
//!   every other segment ends exactly with its seal. (Older cairn versions read a
//!   zero tail as a torn write and cut it: compatible both ways, same version.)
//! - `hardstate`: one record of the same shape holding the codec-encoded `HardState`.
//!   Replaced atomically: write `hardstate.tmp`, fsync it, rename, fsync the directory.
//! - Legacy format 0 (written before version 1): segments without header or seal. They
//!   are still read; the first open rolls to a new version-1 segment (sealing the legacy
//!   one), so everything written afterwards is version 1. A header naming another
//!   version stops the start with an error naming the file and the version.
//!
//! # Durability
//! Appends are buffered and written at `sync`, which does one fdatasync of the active
//! segment (group commit). Every other change is durable when it returns, in an order
//! that leaves a recoverable directory at each crash point:
//! - creating a segment: write its header, fsync it, fsync the directory;
//! - rolling: fdatasync the finished segment, create the next one, then append the seal
//!   to the finished one and fdatasync it (so a seal is never on disk without its
//!   successor);
//! - removing the newest segment (`truncate_from`, `reset_after`): first cut the seal
//!   off the one before it and fdatasync that, then delete, then fsync the directory;
//! - cutting records (`truncate_from`): set_len and fdatasync at once, so stale records
//!   can never reappear behind newer ones.
//!
//! # Compaction and reset
//! `compact_until(i)` deletes, oldest first, every segment whose entries are all <= i,
//! never the active one, then fsyncs the directory; a crash part way leaves a log that
//! simply starts a little earlier. `reset_after(i)` (snapshot install) removes segments
//! newest first as above, empties the oldest one (keeping its header), then creates the
//! empty segment `i + 1` and deletes the old one (or rewrites it in place if it is
//! already named `i + 1`). A crash part way leaves a prefix of the old log (still
//! starting at the old first index; the core resets again on start), an empty log
//! there, or the new empty segment, maybe behind an empty old first segment, which
//! recovery deletes.
//!
//! # Recovery
//! Acknowledgements follow a full sync, so the only damage a crash can cause is an
//! incomplete write at the very end of the newest segment. Recovery therefore cuts
//! ONLY these leftovers, with a warning (zeros from the newest segment's record end to
//! the end of its file are its preallocated space, not damage, and need no fix):
//! - a bad record (short, failing its crc, not decoding, or with the wrong index) in the
//!   newest segment with nothing valid after it: no later position holds a complete
//!   record with a valid crc that is a seal or an entry at or after the expected index
//!   (so a damaged length field pointing past the end, or a zeroed block, followed by
//!   real records, is damage, not a torn tail);
//! - a newest segment with no records whose header is missing or partial;
//! - an unfinished seal (a prefix of the expected seal bytes) on the segment before an
//!   empty newest one;
//! - an empty first segment followed by a later one (an interrupted reset).
//!
//! Everything else stops the start with `StorageError::Corrupt` naming the file, byte
//! offset and log index, and changes nothing: a bad record followed by valid data or in
//! an older segment, a damaged header, a gap between segments, a sealed newest segment
//! (its successor is missing), records after a seal, a record over the size limit with a
//! valid crc, or no segment at all while a hard state or snapshot exists. The message
//! names `cairn debug repair-log`, which reports the damage and, when confirmed, cuts
//! the log there, moving the cut-off bytes and later segments to
//! `raft/damaged-<time>/` (see [`FileBackend::inspect`] and [`FileBackend::repair`]).
//!
//! Not detectable: damage confined to the last record of the newest segment looks
//! exactly like a torn write and is cut; so does a zeroed block covering the whole of a
//! log that is a single segment (no header left to tell it from a legacy torn write).
//! Losing the OLDEST segment looks like compaction here; the core refuses a log that
//! starts after its snapshot + 1.
//!
//! # What open returns
//! The recovery scan reads and checks every record, but keeps only what the Raft core
//! needs to start (`protocol::raft::RecoveredLog`): the term of every entry (run-length),
//! the configuration entries, and the newest entries whole within `FileOptions::cache`.
//! Each segment file is read whole while it is scanned (at most `segment_max_bytes`
//! plus a record), so memory at open is bounded by the cache budget and one segment,
//! not by the log.
//!
//! # Reading back
//! `read` (a leader sending a lagging follower entries no longer in the core's cache,
//! or committed entries older than the cache after a restart, to apply) finds each entry through the in-memory offset table, reads its record with a
//! positioned read from its segment (sealed or active; appends still in the write
//! buffer are read from it), and checks the record's crc and that it decodes to the entry of
//! that index: anything else is `StorageError::Corrupt` naming the file, offset and
//! index. A read never changes the files.
//!
//! # After a failed write or fsync
//! `recover_after_error` cuts every segment back to its length at the last successful
//! `sync` (tracked per segment; bytes after it may exist only in the page cache, which a
//! failed fsync marks clean, so they are never read back), deletes segments created
//! since, fsyncs, and reopens the directory with the recovery above.

mod format;
mod repair;
mod scan;

pub use repair::{Inspection, RepairReport};
pub use scan::Damage;

use super::{check_readable, read_fits, LogBackend, Recovered, StorageError};
use format::{RECORD_HEADER_BYTES, SEAL_RECORD_BYTES, SEGMENT_HEADER_BYTES};
use protocol::codec;
use protocol::ids::LogIndex;
use protocol::raft::{CacheBudget, Entry, HardState};
#[cfg(test)]
use scan::Repair;
use scan::{Fix, ScanError, HARD_STATE_FILE, SEGMENT_SUFFIX};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const HARD_STATE_TMP: &str = "hardstate.tmp";
/// Largest record written or accepted on recovery: the codec's limit, which leaves room
/// for an entry around any command `ServerHandle::propose` accepts
/// ([`codec::MAX_COMMAND_BYTES`]).
const MAX_RECORD_BYTES: usize = codec::MAX_DECODE_BYTES;

#[derive(Debug, Clone)]
pub struct FileOptions {
    pub segment_max_bytes: u64,
    /// The tail of the log that `open` (and `recover_after_error`) keeps whole: the
    /// Raft core's cache budget. Older entries are only checked and measured.
    pub cache: CacheBudget,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            segment_max_bytes: 16 * 1024 * 1024,
            cache: CacheBudget::default(),
        }
    }
}

#[derive(Debug)]
struct Segment {
    first_index: u64,
    path: PathBuf,
    /// Where records start: after the header (0 for a legacy segment).
    data_start: u64,
    /// Byte offset of each record in this segment; entry `first_index + i` is at `offsets[i]`.
    offsets: Vec<u64>,
    /// Header and records in the file, including what is still in the write buffer;
    /// never the seal.
    len: u64,
    /// A seal record follows `len` on disk.
    sealed: bool,
    /// Length of the file as of the last successful `sync` (lowered by cuts since):
    /// what `recover_after_error` cuts back to. Those bytes were fsync'd. `None`:
    /// created since that sync.
    synced_len: Option<u64>,
}

impl Segment {
    fn next_index(&self) -> u64 {
        self.first_index + self.offsets.len() as u64
    }
}

pub struct FileBackend {
    dir: PathBuf,
    opts: FileOptions,
    /// Sorted by first index; the last one is active (open for appending).
    segments: Vec<Segment>,
    active: File,
    /// Records not yet written to `active`.
    buf: Vec<u8>,
    /// `active` has writes not yet fdatasync'd.
    dirty: bool,
    /// Everything in `active` past its written records is zeros from preallocation, so
    /// a clean close may trim it.
    zero_tail: bool,
    /// Largest record payload written or read back.
    max_record: usize,
    /// Test hook: removing segments (`reset_after`, `truncate_from`) stops, as a crash
    /// would, after this many deletions (after cutting the seal of the one before).
    #[cfg(test)]
    pub(crate) crash_after_deletes: Option<usize>,
    /// Test hook: after this many more successful fsyncs, every fsync fails (a full or
    /// failing disk) until the hook is cleared.
    #[cfg(test)]
    pub(crate) fail_syncs_after: Option<usize>,
    /// Test hook: the next buffer write writes half and fails (ENOSPC part way).
    #[cfg(test)]
    pub(crate) fail_next_write: bool,
}

fn segment_path(dir: &Path, first_index: u64) -> PathBuf {
    dir.join(format!("{first_index:020}{SEGMENT_SUFFIX}"))
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// The active segment is written with positioned writes (its end is the end of its
/// records, not of the file, which is preallocated).
fn open_active(path: &Path) -> Result<File, StorageError> {
    Ok(OpenOptions::new().read(true).write(true).open(path)?)
}

/// The message a start fails with: where, and what to do about it.
fn damage_error(dir: &Path, d: &Damage) -> StorageError {
    let data_dir = dir.parent().unwrap_or(dir);
    StorageError::Corrupt {
        what: d.path.display().to_string(),
        detail: format!(
            "{} (byte offset {}, log index {}). Nothing was changed: entries there may have been acknowledged, so the log is not cut automatically. Run `cairn debug repair-log -data-dir {}` to see the damage and cut the log there on purpose (damaged data is moved aside, not deleted); in a cluster you can instead rebuild this server from the leader",
            d.detail,
            d.offset,
            d.index,
            data_dir.display()
        ),
    }
}

impl FileBackend {
    /// Open (creating if needed) the log in `dir`, recover it and cut any torn tail.
    /// Every record is read and checked; only the tail within `opts.cache` is returned
    /// whole (with the terms and configurations of all).
    pub fn open(dir: &Path, opts: FileOptions) -> Result<(FileBackend, Recovered), StorageError> {
        Self::open_with_record_limit(dir, opts, MAX_RECORD_BYTES)
    }

    /// [`FileBackend::open`] with the largest record as a parameter (tests use a small one).
    pub(crate) fn open_with_record_limit(
        dir: &Path,
        opts: FileOptions,
        max_record: usize,
    ) -> Result<(FileBackend, Recovered), StorageError> {
        fs::create_dir_all(dir)?;
        let scanned = match scan::scan(dir, max_record, opts.cache) {
            Ok(s) => s,
            Err(ScanError::Damage(d)) => return Err(damage_error(dir, &d)),
            Err(ScanError::Fatal(e)) => return Err(e),
        };
        apply_fixes(dir, &scanned.fixes)?;
        let mut segments: Vec<Segment> = scanned
            .segments
            .into_iter()
            .map(|s| {
                let data_start = if s.legacy { 0 } else { SEGMENT_HEADER_BYTES };
                Segment {
                    first_index: s.first_index,
                    data_start,
                    synced_len: Some(s.len + if s.sealed { SEAL_RECORD_BYTES } else { 0 }),
                    len: s.len,
                    path: s.path,
                    offsets: s.offsets,
                    sealed: s.sealed,
                }
            })
            .collect();
        if segments.is_empty() {
            let (seg, _) = create_segment(dir, 1)?;
            segments.push(seg);
        }
        let active = open_active(&segments[segments.len() - 1].path)?;
        let mut backend = FileBackend {
            dir: dir.to_path_buf(),
            opts,
            segments,
            active,
            buf: Vec::new(),
            dirty: false,
            zero_tail: false,
            max_record,
            #[cfg(test)]
            crash_after_deletes: None,
            #[cfg(test)]
            fail_syncs_after: None,
            #[cfg(test)]
            fail_next_write: false,
        };
        backend.upgrade_legacy_active()?;
        backend.preallocate_active();
        Ok((
            backend,
            Recovered {
                hard_state: scanned.hard_state,
                log: scanned.log,
            },
        ))
    }

    /// Only version-1 segments are written: a legacy active segment is rewritten with a
    /// header if empty, or sealed and followed by a new version-1 segment.
    fn upgrade_legacy_active(&mut self) -> Result<(), StorageError> {
        let seg = self.active_segment();
        if seg.data_start != 0 {
            return Ok(());
        }
        if seg.offsets.is_empty() {
            let (first, path) = (seg.first_index, seg.path.clone());
            let (fresh, file) = rewrite_empty_segment(&path, first)?;
            *self.active_segment() = fresh;
            self.active = file;
            return Ok(());
        }
        let next = seg.next_index();
        self.roll(next)
    }

    fn active_segment(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    fn active_segment_next(&self) -> u64 {
        self.segments[self.segments.len() - 1].next_index()
    }

    /// Test hook point before every fsync.
    fn before_sync(&mut self) -> Result<(), StorageError> {
        #[cfg(test)]
        if let Some(n) = self.fail_syncs_after.as_mut() {
            if *n == 0 {
                return Err(StorageError::Io("injected fsync failure".into()));
            }
            *n -= 1;
        }
        Ok(())
    }

    fn write_buffer(&mut self) -> Result<(), StorageError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let at = self.written_end();
        self.dirty = true;
        #[cfg(test)]
        if std::mem::take(&mut self.fail_next_write) {
            self.zero_tail = false;
            let half = self.buf.len() / 2;
            self.active.write_all_at(&self.buf[..half], at)?;
            return Err(StorageError::Io("injected write failure".into()));
        }
        if let Err(e) = self.active.write_all_at(&self.buf, at) {
            // Part of it may be there: no longer zeros to trim on close.
            self.zero_tail = false;
            return Err(e.into());
        }
        self.buf.clear();
        Ok(())
    }

    /// Where the next buffered byte goes in the active file: the end of its records
    /// that are already written.
    fn written_end(&self) -> u64 {
        self.segments[self.segments.len() - 1].len - self.buf.len() as u64
    }

    /// Allocate the active segment's blocks up to `segment_max_bytes` ahead of the
    /// appends (zeros, which recovery reads as the end of the records). An append then
    /// never grows the file, so its fdatasync flushes the data alone instead of also
    /// committing the file system's journal for the new size: measured on ext4 here,
    /// three concurrent writers, 200-byte appends, fdatasync p50 260-290 us appending
    /// vs 186-231 us preallocated. Only an optimisation: where the file system cannot
    /// (or the disk is too full to) preallocate, appends grow the file as before.
    fn preallocate_active(&mut self) {
        let target = self.opts.segment_max_bytes;
        if self.written_end() >= target || !self.buf.is_empty() {
            return;
        }
        let Ok(target) = i64::try_from(target) else {
            return;
        };
        match nix::fcntl::fallocate(&self.active, nix::fcntl::FallocateFlags::empty(), 0, target) {
            Ok(()) => self.zero_tail = true,
            Err(e) => tracing::debug!("raft log: not preallocating the active segment: {e}"),
        }
    }

    /// Give back the preallocated zeros of the active segment (on a clean close), so
    /// a closed log's files end where their records end.
    fn trim_zero_tail(&mut self) {
        if std::mem::take(&mut self.zero_tail) {
            let end = self.written_end();
            if let Err(e) = self.active.set_len(end) {
                tracing::debug!("raft log: could not trim the preallocated tail: {e}");
            }
        }
    }

    /// fdatasync the active segment if it has unsynced writes.
    fn sync_active(&mut self) -> Result<(), StorageError> {
        if self.dirty {
            self.before_sync()?;
            self.active.sync_data()?;
            self.dirty = false;
        }
        Ok(())
    }

    /// Finish the active segment and start a new one at `first_index`: the finished one
    /// is durable, then its successor exists durably, and only then is the seal written.
    /// A finished segment first loses its preallocated zeros, so that every segment but
    /// the newest ends exactly with its records and seal (recovery's rules for older
    /// segments are unchanged by preallocation).
    fn roll(&mut self, first_index: u64) -> Result<(), StorageError> {
        self.write_buffer()?;
        self.sync_active()?;
        let end = self.written_end();
        if self.zero_tail || self.active.metadata()?.len() > end {
            self.zero_tail = false;
            self.active.set_len(end)?;
            self.before_sync()?;
            self.active.sync_data()?;
        }
        self.before_sync()?;
        let (mut seg, file) = create_segment(&self.dir, first_index)?;
        // Not covered by a `sync` yet: `recover_after_error` removes it again.
        seg.synced_len = None;
        let finished = std::mem::replace(&mut self.active, file);
        self.segments.push(seg);
        finished.write_all_at(&format::seal_record(first_index), end)?;
        self.before_sync()?;
        finished.sync_data()?;
        let n = self.segments.len();
        self.segments[n - 2].sealed = true;
        self.preallocate_active();
        Ok(())
    }

    /// Remove the newest segment (never the only one): cut the seal off the one before
    /// it first, so no crash point leaves a sealed segment without its successor.
    fn drop_newest(&mut self) -> Result<(), StorageError> {
        let n = self.segments.len();
        let prev = &mut self.segments[n - 2];
        if prev.sealed {
            prev.synced_len = prev.synced_len.map(|d| d.min(prev.len));
            let f = OpenOptions::new().write(true).open(&prev.path)?;
            f.set_len(prev.len)?;
            prev.sealed = false;
            self.before_sync()?;
            f.sync_data()?;
        }
        #[cfg(test)]
        if let Some(left) = self.crash_after_deletes.as_mut() {
            if *left == 0 {
                return Err(StorageError::Io("simulated crash".into()));
            }
            *left -= 1;
        }
        fs::remove_file(&self.segments[n - 1].path)?;
        self.segments.pop();
        self.buf.clear();
        self.dirty = false;
        self.zero_tail = false;
        self.active = open_active(&self.segments[n - 2].path)?;
        self.before_sync()?;
        sync_dir(&self.dir)?;
        self.preallocate_active();
        Ok(())
    }

    /// Inspect the log in `dir` without changing anything (`cairn debug repair-log`).
    pub fn inspect(dir: &Path) -> Result<Inspection, StorageError> {
        repair::inspect(dir, MAX_RECORD_BYTES)
    }

    /// Cut the log at `damage` (from [`FileBackend::inspect`]) on purpose, moving
    /// the cut-off bytes and every later segment to `<dir>/damaged-<stamp>/`; or, when
    /// the newest verified snapshot (`snapshot_index`) covers the damage, move the
    /// damaged segment and the ones before it aside instead (see `repair`).
    pub fn repair(
        dir: &Path,
        damage: &Damage,
        stamp: &str,
        snapshot_index: Option<u64>,
    ) -> Result<RepairReport, StorageError> {
        repair::repair(dir, damage, stamp, snapshot_index, MAX_RECORD_BYTES)
    }
}

/// Create an empty segment durably (header written and fsync'd, directory fsync'd),
/// open for appending.
fn create_segment(dir: &Path, first_index: u64) -> Result<(Segment, File), StorageError> {
    let path = segment_path(dir, first_index);
    let (seg, file) = rewrite_empty_segment(&path, first_index)?;
    sync_dir(dir)?;
    Ok((seg, file))
}

/// (Re)write `path` as an empty version-1 segment and fsync it.
fn rewrite_empty_segment(path: &Path, first_index: u64) -> Result<(Segment, File), StorageError> {
    // Not in append mode: on Linux a positioned write to an O_APPEND file appends.
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    file.set_len(0)?;
    file.write_all_at(&format::segment_header(first_index), 0)?;
    file.sync_all()?;
    Ok((
        Segment {
            first_index,
            path: path.to_path_buf(),
            data_start: SEGMENT_HEADER_BYTES,
            offsets: Vec::new(),
            len: SEGMENT_HEADER_BYTES,
            sealed: false,
            synced_len: Some(SEGMENT_HEADER_BYTES),
        },
        file,
    ))
}

/// The entry `index` from its record at `pos` of the write buffer.
fn buffered_record(
    buf: &[u8],
    pos: u64,
    index: u64,
    max_record: usize,
) -> Result<Entry, StorageError> {
    let bad = |detail: &str| StorageError::Io(format!("buffered entry {index}: {detail}"));
    let format::Record::Good(payload, _) = format::unframe(buf, pos as usize, max_record) else {
        return Err(bad("bad record"));
    };
    let entry: Entry = codec::decode(payload, max_record).map_err(|e| bad(&e.to_string()))?;
    if entry.index.0 != index {
        return Err(bad("wrong index"));
    }
    Ok(entry)
}

/// The entry `index` from its record at `offset` of the segment `file`: the crc must
/// hold and the payload must decode to the entry of that index.
fn read_record(
    file: &File,
    path: &Path,
    offset: u64,
    index: u64,
    max_record: usize,
) -> Result<Entry, StorageError> {
    let corrupt = |detail: String| StorageError::Corrupt {
        what: path.display().to_string(),
        detail: format!("{detail} (byte offset {offset}, log index {index}) on reading back"),
    };
    let mut header = [0u8; RECORD_HEADER_BYTES];
    file.read_exact_at(&mut header, offset)
        .map_err(|e| corrupt(format!("record header unreadable: {e}")))?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > max_record {
        return Err(corrupt(format!("record of {len} bytes over the limit")));
    }
    let mut payload = vec![0u8; len];
    file.read_exact_at(&mut payload, offset + RECORD_HEADER_BYTES as u64)
        .map_err(|e| corrupt(format!("record unreadable: {e}")))?;
    if crc32fast::hash(&payload) != crc {
        return Err(corrupt("record fails its crc".into()));
    }
    let entry: Entry = codec::decode(&payload, max_record)
        .map_err(|e| corrupt(format!("record does not decode: {e}")))?;
    if entry.index.0 != index {
        return Err(corrupt(format!("record holds entry {}", entry.index)));
    }
    Ok(entry)
}

fn apply_fixes(dir: &Path, fixes: &[Fix]) -> Result<(), StorageError> {
    for fix in fixes {
        match fix {
            Fix::CutTail { path, len, index } => {
                tracing::warn!(path = %path.display(), offset = len, index, "incomplete record at the end of the raft log (torn write); cutting it");
                let f = OpenOptions::new().write(true).open(path)?;
                f.set_len(*len)?;
                f.sync_all()?;
            }
            Fix::RewriteHeader { path, first_index } => {
                tracing::warn!(path = %path.display(), "newest raft log segment has no complete header and no records (creation cut short); rewriting it");
                rewrite_empty_segment(path, *first_index)?;
            }
            Fix::RemoveLeftover { path } => {
                tracing::warn!(path = %path.display(), "removing an empty raft log segment left by an interrupted reset");
                fs::remove_file(path)?;
            }
        }
    }
    if !fixes.is_empty() {
        sync_dir(dir)?;
    }
    Ok(())
}

impl LogBackend for FileBackend {
    fn truncate_from(&mut self, from: LogIndex) -> Result<(), StorageError> {
        let from = from.0.max(1);
        if from >= self.active_segment_next() {
            return Ok(());
        }
        self.write_buffer()?;
        // Drop whole segments that start at or after `from`, keeping at least the first.
        while self.segments.len() > 1 && self.segments[self.segments.len() - 1].first_index >= from
        {
            self.drop_newest()?;
        }
        let seg = self.active_segment();
        let keep = from.saturating_sub(seg.first_index) as usize;
        if keep < seg.offsets.len() {
            let cut = seg.offsets[keep];
            seg.offsets.truncate(keep);
            seg.len = cut;
            seg.synced_len = seg.synced_len.map(|d| d.min(cut));
            let path = seg.path.clone();
            self.zero_tail = false;
            self.active = open_active(&path)?;
            self.active.set_len(cut)?;
            // At once: a later append must never land in front of stale records.
            self.dirty = true;
            self.sync_active()?;
            self.preallocate_active();
        }
        Ok(())
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        for entry in entries {
            let next = self.active_segment_next();
            if entry.index.0 != next {
                return Err(StorageError::Io(format!(
                    "append of index {} but next is {next}",
                    entry.index
                )));
            }
            let seg = self.active_segment();
            if !seg.offsets.is_empty() && seg.len >= self.opts.segment_max_bytes {
                self.roll(next)?;
            }
            let payload = codec::encode(entry).map_err(|e| StorageError::Io(e.to_string()))?;
            if payload.len() > self.max_record {
                // Written, it would fail recovery; refused, the core halts writes cleanly.
                return Err(StorageError::Io(format!(
                    "entry {} is {} bytes, over the log record limit of {}",
                    entry.index,
                    payload.len(),
                    self.max_record
                )));
            }
            let start = self.buf.len();
            format::frame(&payload, &mut self.buf);
            let added = (self.buf.len() - start) as u64;
            let seg = self.active_segment();
            seg.offsets.push(seg.len);
            seg.len += added;
        }
        Ok(())
    }

    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError> {
        let payload = codec::encode(hard_state).map_err(|e| StorageError::Io(e.to_string()))?;
        let record = format::hard_state_file(&payload);
        let tmp = self.dir.join(HARD_STATE_TMP);
        let mut f = File::create(&tmp)?;
        f.write_all(&record)?;
        self.before_sync()?;
        f.sync_all()?;
        fs::rename(&tmp, self.dir.join(HARD_STATE_FILE))?;
        self.before_sync()?;
        sync_dir(&self.dir)?;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.write_buffer()?;
        self.sync_active()?;
        // Every other change (rolls, seals, cuts) was made durable as it happened.
        for seg in &mut self.segments {
            seg.synced_len = Some(seg.len + if seg.sealed { SEAL_RECORD_BYTES } else { 0 });
        }
        Ok(())
    }

    fn last_index(&self) -> LogIndex {
        LogIndex(self.active_segment_next() - 1)
    }

    fn compact_until(&mut self, index: LogIndex) -> Result<(), StorageError> {
        let mut removed = 0;
        // segments[1] starting at or below index + 1 means segments[0] is all <= index.
        while self.segments.len() > 1 && self.segments[1].first_index <= index.0.saturating_add(1) {
            fs::remove_file(&self.segments[0].path)?;
            self.segments.remove(0);
            removed += 1;
        }
        if removed > 0 {
            self.before_sync()?;
            sync_dir(&self.dir)?;
            tracing::debug!(removed, %index, "deleted raft log segments below the snapshot");
        }
        Ok(())
    }

    fn reset_after(&mut self, index: LogIndex) -> Result<(), StorageError> {
        self.buf.clear();
        self.dirty = false;
        self.zero_tail = false;
        // Newest first: a crash part way leaves a prefix of the old log starting at its
        // old first index (which recovery accepts, and the core resets again), never a
        // log that starts past `index + 1` with a gap behind it.
        while self.segments.len() > 1 {
            self.drop_newest()?;
        }
        let first_index = index.0 + 1;
        let oldest = self.active_segment();
        let (old_first, old_path, data_start) =
            (oldest.first_index, oldest.path.clone(), oldest.data_start);
        if old_first == first_index {
            let (fresh, file) = rewrite_empty_segment(&old_path, first_index)?;
            self.segments[0] = fresh;
            self.active = file;
            self.preallocate_active();
            return Ok(());
        }
        // Empty the old segment (a crash now leaves an empty log at its old start), then
        // create the new one; an empty first segment before it is a leftover recovery
        // deletes.
        oldest.offsets.clear();
        oldest.len = data_start;
        oldest.synced_len = oldest.synced_len.map(|d| d.min(data_start));
        self.active = open_active(&old_path)?;
        self.active.set_len(data_start)?;
        self.dirty = true;
        self.sync_active()?;
        self.before_sync()?;
        let (seg, file) = create_segment(&self.dir, first_index)?;
        self.segments.push(seg);
        self.active = file;
        #[cfg(test)]
        if let Some(left) = self.crash_after_deletes.as_mut() {
            if *left == 0 {
                return Err(StorageError::Io("simulated crash".into()));
            }
            *left -= 1;
        }
        fs::remove_file(&old_path)?;
        self.segments.remove(0);
        self.before_sync()?;
        sync_dir(&self.dir)?;
        self.preallocate_active();
        Ok(())
    }

    fn read(
        &mut self,
        from: LogIndex,
        to: LogIndex,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        let first = self.segments[0].first_index;
        let next = self.active_segment_next();
        check_readable(from, first, next)?;
        // Buffered appends are part of the log: the active segment's records from
        // `in_file` on are still in `buf` (a read never writes: a failed write here
        // could leave bytes that the next sync writes again).
        let active = self.segments.len() - 1;
        let in_file = self.segments[active].len - self.buf.len() as u64;
        let mut out = Vec::new();
        let mut total = 0usize;
        let mut open: Option<(usize, File)> = None;
        for index in from.0..=to.0.min(next - 1) {
            let seg_pos = self
                .segments
                .partition_point(|s| s.first_index <= index)
                .saturating_sub(1);
            let seg = &self.segments[seg_pos];
            let Some(&offset) = seg.offsets.get((index - seg.first_index) as usize) else {
                return Err(StorageError::Io(format!("entry {index} has no record")));
            };
            if seg_pos == active && offset >= in_file {
                let entry = buffered_record(&self.buf, offset - in_file, index, self.max_record)?;
                let bytes = entry.payload.approx_bytes();
                if !read_fits(out.len(), total, bytes, max_bytes) {
                    break;
                }
                total = total.saturating_add(bytes);
                out.push(entry);
                continue;
            }
            if open.as_ref().map(|(p, _)| *p) != Some(seg_pos) {
                open = Some((seg_pos, File::open(&seg.path)?));
            }
            let Some((_, file)) = open.as_ref() else {
                break;
            };
            let entry = read_record(file, &seg.path, offset, index, self.max_record)?;
            let bytes = entry.payload.approx_bytes();
            if !read_fits(out.len(), total, bytes, max_bytes) {
                break;
            }
            total = total.saturating_add(bytes);
            out.push(entry);
        }
        Ok(out)
    }

    fn recover_after_error(&mut self) -> Result<Recovered, StorageError> {
        self.buf.clear();
        self.dirty = false;
        self.zero_tail = false;
        // Cut every segment back to what an fsync confirmed: bytes past that may exist
        // only in the page cache (a failed fsync marks them clean without writing them).
        let known: Vec<(PathBuf, Option<u64>)> = self
            .segments
            .iter()
            .map(|s| (s.path.clone(), s.synced_len))
            .collect();
        for (path, synced_len) in known {
            match synced_len {
                None => match fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
                    _ => {}
                },
                Some(durable) => {
                    let f = OpenOptions::new().write(true).open(&path)?;
                    if f.metadata()?.len() > durable {
                        f.set_len(durable)?;
                    }
                    self.before_sync()?;
                    f.sync_all()?;
                }
            }
        }
        self.before_sync()?;
        sync_dir(&self.dir)?;
        let (fresh, recovered) =
            Self::open_with_record_limit(&self.dir, self.opts.clone(), self.max_record)?;
        #[cfg(test)]
        let hooks = (self.crash_after_deletes, self.fail_syncs_after);
        *self = fresh;
        #[cfg(test)]
        {
            (self.crash_after_deletes, self.fail_syncs_after) = hooks;
        }
        Ok(recovered)
    }
}

impl Drop for FileBackend {
    fn drop(&mut self) {
        self.trim_zero_tail();
    }
}

#[cfg(test)]
mod tests;
