//! Deliberate repair of a damaged log (`cairn debug repair-log`): report the first
//! damage, and on request cut the log there. Nothing is deleted: the damaged segment is
//! copied and every later segment moved to `<raft dir>/damaged-<stamp>/`.
//!
//! When a verified snapshot covers the damage (a later segment starts at or below the
//! snapshot's index + 1), cutting would throw away intact, needed entries after it for
//! nothing: the damaged segment and every EARLIER one are moved aside instead, and the log
//! starts at that later segment, which continues the snapshot. Nothing is lost then.

use super::format::{self, Header};
use super::scan::{self, Damage, Repair, ScanError};
use crate::log_store::StorageError;
use protocol::raft::CacheBudget;
use std::fs::{self, OpenOptions};
use std::path::{Path, PathBuf};

/// What the log in a directory holds, and its first damage if any.
#[derive(Debug, Clone)]
pub struct Inspection {
    pub damage: Option<Damage>,
    /// Crash leftovers a normal start tidies by itself (torn tail and the like).
    pub tidy: Vec<String>,
    pub segments: usize,
    /// Entries readable (before the damage, if any): first and last index.
    pub first_index: Option<u64>,
    pub last_index: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct RepairReport {
    /// Where the damaged data was moved.
    pub aside: PathBuf,
    /// Segments moved there whole.
    pub moved: Vec<PathBuf>,
    /// The segment cut (a copy of it is in `aside`) and the length it was cut to.
    pub cut: Option<(PathBuf, u64)>,
    /// A segment created because none was left.
    pub created: Option<PathBuf>,
    /// The log as a start will now find it.
    pub after: Inspection,
}

pub fn inspect(dir: &Path, max_record: usize) -> Result<Inspection, StorageError> {
    if !dir.is_dir() {
        return Err(StorageError::Io(format!(
            "{} is not a directory: no raft log there",
            dir.display()
        )));
    }
    // Only the extent matters here: keep no entry whole.
    let nothing = CacheBudget {
        max_bytes: 0,
        max_entries: 0,
    };
    match scan::scan(dir, max_record, nothing) {
        Ok(s) => Ok(Inspection {
            damage: None,
            tidy: s.fixes.iter().map(|f| f.to_string()).collect(),
            segments: s.segments.len(),
            first_index: s.log.first_index().map(|i| i.0),
            last_index: (!s.log.is_empty()).then(|| s.log.last_index().0),
        }),
        Err(ScanError::Damage(d)) => {
            let segments = scan::list_segments(dir)?.len();
            Ok(Inspection {
                segments,
                first_index: None,
                last_index: d.index.checked_sub(1),
                tidy: Vec::new(),
                damage: Some(*d),
            })
        }
        Err(ScanError::Fatal(e)) => Err(e),
    }
}

/// `snapshot_index`: the index of the newest snapshot that verifies, if any.
pub fn repair(
    dir: &Path,
    damage: &Damage,
    stamp: &str,
    snapshot_index: Option<u64>,
    max_record: usize,
) -> Result<RepairReport, StorageError> {
    let aside = dir.join(format!("damaged-{stamp}"));
    fs::create_dir_all(&aside)?;
    let mut report = RepairReport {
        aside: aside.clone(),
        moved: Vec::new(),
        cut: None,
        created: None,
        after: Inspection {
            damage: None,
            tidy: Vec::new(),
            segments: 0,
            first_index: None,
            last_index: None,
        },
    };
    let listed = scan::list_segments(dir)?;
    let position = |path: &Path| listed.iter().position(|(_, p)| p == path);
    if let Some(keep_from) = covered_restart(&listed, position(&damage.path), snapshot_index) {
        report.moved = move_front_aside(&listed[..keep_from], &aside)?;
        super::sync_dir(&aside)?;
        super::sync_dir(dir)?;
        report.after = inspect(dir, max_record)?;
        return Ok(report);
    }
    match &damage.repair {
        Repair::Create { first_index } => {
            let (seg, _) = super::create_segment(dir, *first_index)?;
            report.created = Some(seg.path);
        }
        Repair::MoveFrom { segment } => {
            let from = position(segment).unwrap_or(listed.len());
            report.moved = move_aside(&listed[from..], &aside)?;
        }
        Repair::CutAt {
            segment,
            keep,
            first_index,
        } => {
            let at = position(segment).unwrap_or(listed.len());
            report.moved = move_aside(listed.get(at + 1..).unwrap_or(&[]), &aside)?;
            if at < listed.len() {
                cut_segment(segment, *keep, *first_index, &aside)?;
                report.cut = Some((segment.clone(), *keep));
            }
        }
    }
    super::sync_dir(&aside)?;
    super::sync_dir(dir)?;
    report.after = inspect(dir, max_record)?;
    Ok(report)
}

/// The first segment after the damaged one that starts at or below `snapshot + 1`: the
/// log may start there, since the snapshot covers everything before it.
fn covered_restart(
    listed: &[(u64, PathBuf)],
    damaged: Option<usize>,
    snapshot_index: Option<u64>,
) -> Option<usize> {
    let (damaged, snapshot) = (damaged?, snapshot_index?);
    (damaged + 1..listed.len()).find(|&k| listed[k].0 <= snapshot.saturating_add(1))
}

/// Move the oldest segments aside, oldest first: a crash part way leaves a log that
/// starts later (still damaged at its start, or clean), never one with a gap.
fn move_front_aside(
    segments: &[(u64, PathBuf)],
    aside: &Path,
) -> Result<Vec<PathBuf>, StorageError> {
    let mut moved = Vec::new();
    for (_, path) in segments {
        let Some(name) = path.file_name() else {
            continue;
        };
        let to = aside.join(name);
        fs::rename(path, &to)?;
        moved.push(to);
    }
    Ok(moved)
}

fn move_aside(segments: &[(u64, PathBuf)], aside: &Path) -> Result<Vec<PathBuf>, StorageError> {
    let mut moved = Vec::new();
    // Newest first, like every removal: a crash part way leaves a shorter log, no gap.
    for (_, path) in segments.iter().rev() {
        let Some(name) = path.file_name() else {
            continue;
        };
        let to = aside.join(name);
        fs::rename(path, &to)?;
        moved.push(to);
    }
    moved.reverse();
    Ok(moved)
}

/// Keep the first `keep` bytes of a segment after copying it whole aside; an empty
/// version-1 segment if that cuts into (or there is only) a damaged header.
fn cut_segment(path: &Path, keep: u64, first_index: u64, aside: &Path) -> Result<(), StorageError> {
    if let Some(name) = path.file_name() {
        let copy = aside.join(name);
        fs::copy(path, &copy)?;
        OpenOptions::new().write(true).open(&copy)?.sync_all()?;
    }
    let bytes = fs::read(path)?;
    let intact_header =
        matches!(format::parse_header(&bytes), Header::V1 { first_index: f } if f == first_index);
    let legacy = format::parse_header(&bytes) == Header::Legacy;
    if (intact_header && keep >= format::SEGMENT_HEADER_BYTES) || (legacy && keep > 0) {
        let f = OpenOptions::new().write(true).open(path)?;
        f.set_len(keep)?;
        f.sync_all()?;
    } else {
        super::rewrite_empty_segment(path, first_index)?;
    }
    Ok(())
}
