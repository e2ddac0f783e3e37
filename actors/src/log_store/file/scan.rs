//! Recovery scan: reads the segment files and the hard state, and says what they hold,
//! which harmless leftovers of a crash may be tidied (a torn tail, a half-created
//! segment, an empty segment left by an interrupted reset), or where the log is damaged.
//! It never changes a file: `FileBackend::open` applies the fixes, `repair` the cut.
//! The rules are in the module docs of `file.rs`.

use super::format::{self, Header, Record};
use crate::log_store::StorageError;
use protocol::codec;
use protocol::raft::{CacheBudget, Entry, HardState, RecoveredLog};
use std::fs;
use std::path::{Path, PathBuf};

pub const SEGMENT_SUFFIX: &str = ".seg";
pub const HARD_STATE_FILE: &str = "hardstate";
pub const SNAPSHOT_DIR: &str = "snapshots";

/// A segment as recovery found it.
#[derive(Debug, Clone)]
pub struct ScannedSegment {
    pub first_index: u64,
    pub path: PathBuf,
    /// Headerless v0 segment.
    pub legacy: bool,
    /// Offset of each record; entry `first_index + i` is at `offsets[i]`.
    pub offsets: Vec<u64>,
    /// Header plus records, without any seal.
    pub len: u64,
    /// A seal record follows `len`.
    pub sealed: bool,
}

/// A harmless leftover of a crash, tidied by `open` (with a warning).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// An incomplete last record (nothing valid after it), or an unfinished seal of the
    /// segment before an empty newest one: cut the file to `len` bytes.
    CutTail { path: PathBuf, len: u64, index: u64 },
    /// The newest segment holds no record and its header is missing or partial (its
    /// creation was cut short): write the header again.
    RewriteHeader { path: PathBuf, first_index: u64 },
    /// An empty first segment followed by a later one: left by an interrupted reset.
    RemoveLeftover { path: PathBuf },
}

impl std::fmt::Display for Fix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fix::CutTail { path, len, index } => write!(
                f,
                "cut the incomplete record at byte offset {len} (log index {index}) of {}",
                path.display()
            ),
            Fix::RewriteHeader { path, .. } => {
                write!(
                    f,
                    "rewrite the unfinished header of the empty {}",
                    path.display()
                )
            }
            Fix::RemoveLeftover { path } => write!(
                f,
                "remove {}, an empty segment left by an interrupted reset",
                path.display()
            ),
        }
    }
}

/// What a deliberate repair does about a [`Damage`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Repair {
    /// Keep the first `keep` bytes of `segment` (an empty segment with a fresh header if
    /// that cuts into the header) and move every later segment aside.
    CutAt {
        segment: PathBuf,
        keep: u64,
        first_index: u64,
    },
    /// Move `segment` and every later segment aside.
    MoveFrom { segment: PathBuf },
    /// There is no segment at all: create an empty one starting at `first_index`.
    Create { first_index: u64 },
}

/// Where the log is damaged: the first point that is neither intact nor a torn tail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    pub path: PathBuf,
    pub offset: u64,
    /// The first log index the damage affects (the index expected there).
    pub index: u64,
    pub detail: String,
    pub repair: Repair,
}

#[derive(Debug)]
pub enum ScanError {
    Damage(Box<Damage>),
    /// Not repairable by truncation (I/O error, damaged hard state, unknown version).
    Fatal(StorageError),
}

impl From<std::io::Error> for ScanError {
    fn from(e: std::io::Error) -> Self {
        ScanError::Fatal(e.into())
    }
}

#[derive(Debug, Default)]
pub struct Scan {
    pub hard_state: HardState,
    pub segments: Vec<ScannedSegment>,
    /// Every entry's term and configuration, the newest entries whole (within the
    /// budget given to `scan`).
    pub log: RecoveredLog,
    pub fixes: Vec<Fix>,
}

fn damage(path: &Path, offset: u64, index: u64, detail: String, repair: Repair) -> ScanError {
    ScanError::Damage(Box::new(Damage {
        path: path.to_path_buf(),
        offset,
        index,
        detail,
        repair,
    }))
}

fn cut_at(path: &Path, keep: u64, first_index: u64) -> Repair {
    Repair::CutAt {
        segment: path.to_path_buf(),
        keep,
        first_index,
    }
}

/// Segment files in `dir`, sorted by first index.
pub fn list_segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut listed = Vec::new();
    for item in fs::read_dir(dir)? {
        let item = item?;
        if !item.file_type()?.is_file() {
            continue;
        }
        let name = item.file_name().to_string_lossy().into_owned();
        if let Some(first) = name
            .strip_suffix(SEGMENT_SUFFIX)
            .and_then(|stem| stem.parse::<u64>().ok())
        {
            listed.push((first, item.path()));
        }
    }
    listed.sort();
    Ok(listed)
}

/// Index of the newest snapshot in `<dir>/snapshots` (0 if none), and whether any exists.
fn newest_snapshot(dir: &Path) -> std::io::Result<Option<u64>> {
    let snaps = dir.join(SNAPSHOT_DIR);
    let items = match fs::read_dir(&snaps) {
        Ok(items) => items,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut newest = None;
    for item in items {
        let name = item?.file_name().to_string_lossy().into_owned();
        if let Some(stem) = name.strip_suffix(".snap") {
            let index = stem
                .split_once('-')
                .and_then(|(_, i)| i.parse::<u64>().ok())
                .unwrap_or(0);
            newest = Some(newest.map_or(index, |n: u64| n.max(index)));
        }
    }
    Ok(newest)
}

/// Read and check every record of the log in `dir`; keep the entries whole only for a
/// tail within `budget` (see [`RecoveredLog`]).
pub fn scan(dir: &Path, max_record: usize, budget: CacheBudget) -> Result<Scan, ScanError> {
    let hard_state = read_hard_state(dir, max_record).map_err(ScanError::Fatal)?;
    let listed = list_segments(dir)?;
    if listed.is_empty() {
        let snapshot = newest_snapshot(dir)?;
        if dir.join(HARD_STATE_FILE).exists() || snapshot.is_some() {
            // `open` creates a segment before anything else is written, and nothing
            // deletes the last one: the whole log was lost.
            let first_index = snapshot.unwrap_or(0) + 1;
            return Err(damage(
                dir,
                0,
                first_index,
                "no log segment, but a hard state or snapshot exists: the log files were deleted"
                    .into(),
                Repair::Create { first_index },
            ));
        }
        return Ok(Scan {
            hard_state,
            log: RecoveredLog::new(budget),
            ..Scan::default()
        });
    }
    let mut scan = Scan {
        hard_state,
        log: RecoveredLog::new(budget),
        ..Scan::default()
    };
    let count = listed.len();
    let mut next = listed[0].0;
    let mut seen_v1 = false;
    // An unfinished seal at the end of the previous segment, allowed only if this one
    // (the newest) holds nothing: (path, offset, first index of that segment).
    let mut partial_seal: Option<(PathBuf, u64)> = None;
    for (i, (first_index, path)) in listed.into_iter().enumerate() {
        let last = i + 1 == count;
        if i > 0 && first_index != next {
            let leftover = i == 1
                && scan
                    .segments
                    .first()
                    .is_some_and(|s| s.offsets.is_empty() && !s.sealed)
                && partial_seal.is_none();
            if !leftover {
                let prev = scan.segments.last().map(|s| s.path.display().to_string());
                return Err(damage(
                    &path,
                    0,
                    next,
                    format!(
                        "gap in the log: {} ends before index {next} but the next segment starts at {first_index} (a segment is missing)",
                        prev.unwrap_or_default()
                    ),
                    Repair::MoveFrom { segment: path.clone() },
                ));
            }
            if let Some(prev) = scan.segments.pop() {
                scan.fixes.push(Fix::RemoveLeftover { path: prev.path });
            }
            next = first_index;
        }
        let bytes = fs::read(&path)?;
        let (seg, end) = scan_segment(
            &path,
            first_index,
            &bytes,
            last,
            seen_v1,
            max_record,
            &mut next,
            &mut scan.log,
        )?;
        seen_v1 |= !seg.legacy;
        if let Some((prev_path, offset)) = partial_seal.take() {
            if !(last && seg.offsets.is_empty()) {
                return Err(damage(
                    &prev_path,
                    offset,
                    first_index,
                    "record fails its length or crc check in a segment that is not the newest"
                        .into(),
                    cut_at(&prev_path, offset, first_index),
                ));
            }
            scan.fixes.push(Fix::CutTail {
                path: prev_path,
                len: offset,
                index: first_index,
            });
        }
        match end {
            End::Clean | End::Sealed => {}
            End::Torn(at) => scan.fixes.push(Fix::CutTail {
                path: path.clone(),
                len: at,
                index: next,
            }),
            End::TornHeader => {
                scan.fixes.push(Fix::RewriteHeader {
                    path: path.clone(),
                    first_index,
                });
            }
            End::PartialSeal(at) => partial_seal = Some((path.clone(), at)),
        }
        scan.segments.push(seg);
    }
    if let Some(seg) = scan.segments.last().filter(|s| s.sealed) {
        return Err(damage(
            &seg.path,
            seg.len,
            next,
            format!("the segment is sealed, so a newer segment starting at index {next} was written, but it is missing"),
            cut_at(&seg.path, seg.len, seg.first_index),
        ));
    }
    Ok(scan)
}

/// How a segment's bytes end.
#[derive(Debug)]
enum End {
    Clean,
    Sealed,
    /// Newest segment: an incomplete record at this offset with nothing valid after it.
    Torn(u64),
    /// Newest segment: no header (or part of one) and nothing else.
    TornHeader,
    /// Not the newest: what may be an unfinished seal at this offset.
    PartialSeal(u64),
}

#[allow(clippy::too_many_arguments)]
fn scan_segment(
    path: &Path,
    first_index: u64,
    bytes: &[u8],
    last: bool,
    seen_v1: bool,
    max_record: usize,
    next: &mut u64,
    log: &mut RecoveredLog,
) -> Result<(ScannedSegment, End), ScanError> {
    let mut seg = ScannedSegment {
        first_index,
        path: path.to_path_buf(),
        legacy: true,
        offsets: Vec::new(),
        len: 0,
        sealed: false,
    };
    let header_damage =
        |detail: String| damage(path, 0, first_index, detail, cut_at(path, 0, first_index));
    match format::parse_header(bytes) {
        Header::Legacy if bytes.is_empty() && last => {
            // Created, header not yet written (or a legacy empty segment).
            if seen_v1 {
                return Ok((after_header_fix(seg), End::TornHeader));
            }
            return Ok((seg, End::Clean));
        }
        Header::Partial if last => return Ok((after_header_fix(seg), End::TornHeader)),
        Header::Legacy if seen_v1 => {
            return Err(header_damage(
                "segment has no header, but an older segment has one: its header was overwritten".into(),
            ))
        }
        Header::Legacy => {}
        Header::V1 { first_index: named } if named == first_index => {
            seg.legacy = false;
            seg.len = format::SEGMENT_HEADER_BYTES;
        }
        Header::V1 { first_index: named } => {
            return Err(header_damage(format!(
                "segment header names first index {named}, but the file name says {first_index}"
            )))
        }
        Header::Partial | Header::Damaged => {
            return Err(header_damage("segment header is damaged".into()))
        }
        Header::UnknownVersion(v) => {
            return Err(ScanError::Fatal(StorageError::Corrupt {
                what: path.display().to_string(),
                detail: format!(
                    "segment format version {v} is not supported (this cairn reads versions 0 and {}); was it written by a newer cairn?",
                    format::FORMAT_VERSION
                ),
            }))
        }
    }
    let mut pos = seg.len as usize;
    let end = loop {
        if pos == bytes.len() {
            break End::Clean;
        }
        if last && bytes[pos..].iter().all(|b| *b == 0) {
            // The preallocated rest of the newest segment (zeros never start a record:
            // no entry or seal encodes to an empty payload).
            break End::Clean;
        }
        match format::unframe(bytes, pos, max_record) {
            Record::TooLarge(len) => {
                return Err(damage(
                    path,
                    pos as u64,
                    *next,
                    format!("record is {len} bytes, over the limit of {max_record}, but complete with a valid crc: refusing to cut it as a torn tail"),
                    cut_at(path, pos as u64, first_index),
                ));
            }
            Record::Good(payload, end) => {
                if let Some(named) = format::parse_seal(payload) {
                    if end != bytes.len() || named != *next {
                        return Err(damage(
                            path,
                            pos as u64,
                            *next,
                            format!("seal naming index {named} is not the end of the segment, or the segment ends before index {next}"),
                            cut_at(path, pos as u64, first_index),
                        ));
                    }
                    seg.sealed = true;
                    break End::Sealed;
                }
                match codec::decode::<Entry>(payload, max_record) {
                    Ok(entry) if entry.index.0 == *next => {
                        seg.offsets.push(pos as u64);
                        // Contiguous by the index check; the budget trims the tail.
                        log.push(entry)
                            .map_err(|e| ScanError::Fatal(StorageError::Io(e)))?;
                        *next += 1;
                        pos = end;
                        continue;
                    }
                    _ => {}
                }
            }
            Record::Bad => {}
        }
        // A bad record at `pos`.
        if last && !valid_record_after(bytes, pos + 1, *next, max_record) {
            break End::Torn(pos as u64);
        }
        if !last && could_be_partial_seal(&bytes[pos..], *next) {
            break End::PartialSeal(pos as u64);
        }
        let detail = if last {
            "record fails its length, crc or index check, and valid records follow it"
        } else {
            "record fails its length, crc or index check in a segment that is not the newest"
        };
        return Err(damage(
            path,
            pos as u64,
            *next,
            detail.into(),
            cut_at(path, pos as u64, first_index),
        ));
    };
    seg.len = pos as u64;
    Ok((seg, end))
}

/// A segment whose header `open` rewrites, as it will be then: empty, version 1.
fn after_header_fix(mut seg: ScannedSegment) -> ScannedSegment {
    seg.legacy = false;
    seg.len = format::SEGMENT_HEADER_BYTES;
    seg
}

/// Whether a complete record with a valid crc that is a seal or an entry at or after
/// `next` starts anywhere in `bytes[from..]`. If one does, the bad bytes before it are
/// not a torn tail (a torn write is always the last thing in the file).
fn valid_record_after(bytes: &[u8], from: usize, next: u64, max_record: usize) -> bool {
    let limit = next.saturating_add(bytes.len() as u64);
    let mut p = from;
    while p + format::RECORD_HEADER_BYTES <= bytes.len() {
        let len = u32::from_le_bytes([bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]]) as usize;
        let start = p + format::RECORD_HEADER_BYTES;
        if len <= max_record && len <= bytes.len() - start {
            let payload = &bytes[start..start + len];
            // Cheap checks first: only a plausible payload is worth a crc.
            let seal = format::parse_seal(payload).is_some();
            let plausible =
                seal || format::claimed_index(payload).is_some_and(|i| i >= next && i <= limit);
            if plausible {
                let crc =
                    u32::from_le_bytes([bytes[p + 4], bytes[p + 5], bytes[p + 6], bytes[p + 7]]);
                if crc32fast::hash(payload) == crc
                    && (seal
                        || codec::decode::<Entry>(payload, max_record)
                            .is_ok_and(|e| e.index.0 >= next))
                {
                    return true;
                }
            }
        }
        p += 1;
    }
    false
}

/// Whether `rest` (shorter than a seal) matches the seal naming `next` byte for byte,
/// allowing bytes that never reached the disk (zero).
fn could_be_partial_seal(rest: &[u8], next: u64) -> bool {
    let seal = format::seal_record(next);
    rest.len() < seal.len() && rest.iter().zip(&seal).all(|(a, b)| a == b || *a == 0)
}

pub fn read_hard_state(dir: &Path, max_record: usize) -> Result<HardState, StorageError> {
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
    let record = format::hard_state_record(&bytes).map_err(|version| {
        corrupt(&format!(
            "unknown hard state format version {version} (this build reads 0 and {})",
            format::HARD_STATE_VERSION
        ))
    })?;
    let Record::Good(payload, end) = format::unframe(record, 0, max_record) else {
        return Err(corrupt("bad length or crc"));
    };
    if end != record.len() {
        return Err(corrupt("trailing bytes"));
    }
    codec::decode(payload, max_record).map_err(|e| corrupt(&e.to_string()))
}
