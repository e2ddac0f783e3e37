//! File backend of the Raft log.
//!
//! # On-disk format (directory `<data_dir>/raft/`)
//! - `<first index, 20 digits>.seg`: segment files. Each holds consecutive entries as
//!   records `u32 length (LE) | u32 crc32 of payload (LE, crc32fast) | payload`, where the
//!   payload is the codec-encoded `raft::Entry`. A new segment starts once the current
//!   one reaches `segment_max_bytes` (default 16 MiB).
//! - `hardstate`: one record of the same shape holding the codec-encoded `HardState`.
//!   Replaced atomically: write `hardstate.tmp`, fsync it, rename, fsync the directory.
//!
//! # Durability
//! Appends are buffered and written at `sync`, which does one fdatasync of the active
//! segment (group commit). Creating or deleting a segment fsyncs the directory at the
//! next `sync`; a finished segment is fdatasync'd before the next one is created.
//!
//! # Compaction
//! `compact_until(i)` deletes, oldest first, every segment whose entries are all <= i,
//! never the active one, then fsyncs the directory. A crash part way leaves a log that
//! simply starts a little earlier. `reset_after(i)` (snapshot install) deletes every
//! segment NEWEST first, fsyncs the directory, then starts an empty one named `i + 1`;
//! a crash part way leaves a prefix of the old segments (still starting at the old first
//! index; the core resets again on start), nothing, or the new empty segment.
//!
//! # Recovery
//! The log starts at the first segment's index (1, or later after compaction or a
//! reset). Segments are read in order; the first record that is short, fails its crc,
//! does not decode (with the codec's size limit) or breaks index continuity marks a torn
//! or corrupt tail: the file is cut there and every later segment is deleted. Nothing
//! after such a point was ever acknowledged, since acknowledgements follow a full sync.
//! A record over the size limit is torn only if its bytes are missing or fail the crc;
//! a complete one with a valid crc is a written (maybe committed) entry, so recovery
//! stops with an error instead of cutting it. Appends refuse such records anyway.

use super::{LogBackend, Recovered, StorageError};
use protocol::codec;
use protocol::ids::LogIndex;
use protocol::raft::{Entry, HardState};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

const HEADER_BYTES: usize = 8;
const SEGMENT_SUFFIX: &str = ".seg";
const HARD_STATE_FILE: &str = "hardstate";
const HARD_STATE_TMP: &str = "hardstate.tmp";
/// Largest record written or accepted on recovery: the codec's limit, which leaves room
/// for an entry around any command `ServerHandle::propose` accepts
/// ([`codec::MAX_COMMAND_BYTES`]).
const MAX_RECORD_BYTES: usize = codec::MAX_DECODE_BYTES;

#[derive(Debug, Clone)]
pub struct FileOptions {
    pub segment_max_bytes: u64,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            segment_max_bytes: 16 * 1024 * 1024,
        }
    }
}

#[derive(Debug)]
struct Segment {
    first_index: u64,
    path: PathBuf,
    /// Byte offset of each record in this segment; entry `first_index + i` is at `offsets[i]`.
    offsets: Vec<u64>,
    /// Bytes in the file, including what is still in the write buffer.
    len: u64,
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
    dir_dirty: bool,
    /// Largest record payload written or read back.
    max_record: usize,
    /// Test hook: `reset_after` stops (as a crash would) after this many deletions.
    #[cfg(test)]
    pub(crate) crash_after_deletes: Option<usize>,
}

fn segment_path(dir: &Path, first_index: u64) -> PathBuf {
    dir.join(format!("{first_index:020}{SEGMENT_SUFFIX}"))
}

fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// One record read back from disk.
enum Record<'a> {
    /// The payload and the offset just past it.
    Good(&'a [u8], usize),
    /// Short or failing its crc: a torn or corrupt tail.
    Torn,
    /// Complete with a valid crc but over `max_record` bytes: real data we cannot read.
    TooLarge(usize),
}

/// Parse one record at `pos`.
fn unframe(bytes: &[u8], pos: usize, max_record: usize) -> Record<'_> {
    let parse = || {
        let header = bytes.get(pos..pos.checked_add(HEADER_BYTES)?)?;
        let len = u32::from_le_bytes(header[0..4].try_into().ok()?) as usize;
        let crc = u32::from_le_bytes(header[4..8].try_into().ok()?);
        let start = pos + HEADER_BYTES;
        let payload = bytes.get(start..start.checked_add(len)?)?;
        (crc32fast::hash(payload) == crc).then_some((payload, start + len))
    };
    match parse() {
        None => Record::Torn,
        Some((payload, _)) if payload.len() > max_record => Record::TooLarge(payload.len()),
        Some((payload, end)) => Record::Good(payload, end),
    }
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl FileBackend {
    /// Open (creating if needed) the log in `dir`, recover it and cut any torn tail.
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
        let hard_state = read_hard_state(dir, max_record)?;
        let mut listed: Vec<(u64, PathBuf)> = Vec::new();
        for item in fs::read_dir(dir)? {
            let item = item?;
            let name = item.file_name().to_string_lossy().into_owned();
            if let Some(stem) = name.strip_suffix(SEGMENT_SUFFIX) {
                if let Ok(first) = stem.parse::<u64>() {
                    listed.push((first, item.path()));
                }
            }
        }
        listed.sort();

        let mut entries: Vec<Entry> = Vec::new();
        let mut segments: Vec<Segment> = Vec::new();
        let mut dir_dirty = false;
        let mut broken = false;
        // The index the next record must carry; the first segment sets it.
        let mut next = listed.first().map_or(1, |(first, _)| (*first).max(1));
        for (first_index, path) in listed {
            let expected = next;
            if broken || first_index != expected {
                if !broken {
                    tracing::warn!(path = %path.display(), expected, "raft log segment out of sequence; discarding it and all later segments");
                }
                broken = true;
                fs::remove_file(&path)?;
                dir_dirty = true;
                continue;
            }
            let bytes = fs::read(&path)?;
            let mut seg = Segment {
                first_index,
                path,
                offsets: Vec::new(),
                len: 0,
            };
            let mut pos = 0usize;
            while pos < bytes.len() {
                let good = match unframe(&bytes, pos, max_record) {
                    Record::TooLarge(len) => {
                        return Err(StorageError::Corrupt {
                            what: seg.path.display().to_string(),
                            detail: format!("record at offset {pos} is {len} bytes, over the limit of {max_record}, but complete with a valid crc: refusing to cut it as a torn tail"),
                        });
                    }
                    Record::Torn => None,
                    Record::Good(payload, end) => codec::decode::<Entry>(payload, max_record)
                        .ok()
                        .filter(|entry| entry.index.0 == next)
                        .map(|entry| (entry, end)),
                };
                match good {
                    Some((entry, end)) => {
                        seg.offsets.push(pos as u64);
                        entries.push(entry);
                        next += 1;
                        pos = end;
                    }
                    None => {
                        tracing::warn!(path = %seg.path.display(), offset = pos, "torn or corrupt raft log tail; truncating");
                        let f = OpenOptions::new().write(true).open(&seg.path)?;
                        f.set_len(pos as u64)?;
                        f.sync_all()?;
                        broken = true;
                        break;
                    }
                }
            }
            seg.len = pos as u64;
            segments.push(seg);
        }
        if segments.is_empty() {
            let path = segment_path(dir, next);
            File::create(&path)?;
            segments.push(Segment {
                first_index: next,
                path,
                offsets: Vec::new(),
                len: 0,
            });
            dir_dirty = true;
        }
        if dir_dirty {
            sync_dir(dir)?;
        }
        let active = open_append(&segments[segments.len() - 1].path)?;
        let backend = FileBackend {
            dir: dir.to_path_buf(),
            opts,
            segments,
            active,
            buf: Vec::new(),
            dirty: false,
            dir_dirty: false,
            max_record,
            #[cfg(test)]
            crash_after_deletes: None,
        };
        Ok((
            backend,
            Recovered {
                hard_state,
                entries,
            },
        ))
    }

    fn active_segment(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    fn write_buffer(&mut self) -> Result<(), StorageError> {
        if !self.buf.is_empty() {
            self.active.write_all(&self.buf)?;
            self.buf.clear();
            self.dirty = true;
        }
        Ok(())
    }

    /// Create an empty segment starting at `first_index` and make it the active one; the
    /// directory entry is made durable with the next sync.
    fn open_segment(&mut self, first_index: u64) -> Result<(), StorageError> {
        let path = segment_path(&self.dir, first_index);
        self.active = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)?;
        self.segments.push(Segment {
            first_index,
            path,
            offsets: Vec::new(),
            len: 0,
        });
        self.dir_dirty = true;
        Ok(())
    }

    /// Finish the active segment and start a new one at `first_index`.
    fn roll(&mut self, first_index: u64) -> Result<(), StorageError> {
        self.write_buffer()?;
        if self.dirty {
            self.active.sync_data()?;
            self.dirty = false;
        }
        self.open_segment(first_index)
    }
}

fn open_append(path: &Path) -> Result<File, StorageError> {
    Ok(OpenOptions::new().append(true).open(path)?)
}

fn read_hard_state(dir: &Path, max_record: usize) -> Result<HardState, StorageError> {
    let path = dir.join(HARD_STATE_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(HardState::default()),
        Err(e) => return Err(e.into()),
    };
    // Written by rename, so it is never torn: any damage is real corruption, and silently
    // forgetting a vote would be unsafe.
    let corrupt = |detail: &str| StorageError::Corrupt {
        what: path.display().to_string(),
        detail: detail.into(),
    };
    let Record::Good(payload, end) = unframe(&bytes, 0, max_record) else {
        return Err(corrupt("bad length or crc"));
    };
    if end != bytes.len() {
        return Err(corrupt("trailing bytes"));
    }
    codec::decode(payload, max_record).map_err(|e| corrupt(&e.to_string()))
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
            if let Some(seg) = self.segments.pop() {
                fs::remove_file(&seg.path)?;
                self.dir_dirty = true;
            }
        }
        let seg = self.active_segment();
        let keep = from.saturating_sub(seg.first_index) as usize;
        if keep < seg.offsets.len() {
            let cut = seg.offsets[keep];
            seg.offsets.truncate(keep);
            seg.len = cut;
        }
        let (path, len) = (seg.path.clone(), seg.len);
        self.active = open_append(&path)?;
        self.active.set_len(len)?;
        self.dirty = true;
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
            let len = self.active_segment().len;
            if len > 0 && len >= self.opts.segment_max_bytes {
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
            frame(&payload, &mut self.buf);
            let added = (self.buf.len() - start) as u64;
            let seg = self.active_segment();
            seg.offsets.push(seg.len);
            seg.len += added;
        }
        Ok(())
    }

    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError> {
        let payload = codec::encode(hard_state).map_err(|e| StorageError::Io(e.to_string()))?;
        let mut record = Vec::with_capacity(payload.len() + HEADER_BYTES);
        frame(&payload, &mut record);
        let tmp = self.dir.join(HARD_STATE_TMP);
        let mut f = File::create(&tmp)?;
        f.write_all(&record)?;
        f.sync_all()?;
        fs::rename(&tmp, self.dir.join(HARD_STATE_FILE))?;
        sync_dir(&self.dir)?;
        Ok(())
    }

    fn sync(&mut self) -> Result<(), StorageError> {
        self.write_buffer()?;
        if self.dirty {
            self.active.sync_data()?;
            self.dirty = false;
        }
        if self.dir_dirty {
            sync_dir(&self.dir)?;
            self.dir_dirty = false;
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
            let seg = self.segments.remove(0);
            fs::remove_file(&seg.path)?;
            removed += 1;
        }
        if removed > 0 {
            sync_dir(&self.dir)?;
            tracing::debug!(removed, %index, "deleted raft log segments below the snapshot");
        }
        Ok(())
    }

    fn reset_after(&mut self, index: LogIndex) -> Result<(), StorageError> {
        self.buf.clear();
        self.dirty = false;
        // Newest first, and the deletions are durable before the new segment exists: a
        // crash part way leaves a prefix of the old log starting at its old first index
        // (which recovery accepts, and the core resets again), never a log that starts
        // past `index + 1` with a gap behind it.
        while let Some(seg) = self.segments.pop() {
            #[cfg(test)]
            if self.crash_after_deletes == Some(0) {
                return Err(StorageError::Io("simulated crash".into()));
            }
            fs::remove_file(&seg.path)?;
            #[cfg(test)]
            if let Some(n) = self.crash_after_deletes.as_mut() {
                *n -= 1;
            }
        }
        sync_dir(&self.dir)?;
        let first_index = index.0 + 1;
        self.open_segment(first_index)
    }

    fn recover_after_error(&mut self) -> Result<Recovered, StorageError> {
        // TEMP until the log branch lands.
        Err(StorageError::Io(
            "recovery after an error is not supported yet".into(),
        ))
    }
}

impl FileBackend {
    fn active_segment_next(&self) -> u64 {
        self.segments[self.segments.len() - 1].next_index()
    }
}
