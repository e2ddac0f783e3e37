//! Snapshot files.
//!
//! # On-disk format (directory `<data_dir>/raft/snapshots/`)
//! One file per snapshot, `<term, 20 digits>-<index, 20 digits>.snap`:
//! ```text
//! b"CAIRNSNP" | u32 version (LE, 1) | u32 header length (LE) | header | u32 crc32 of
//! the header (LE) | data
//! ```
//! where the header is the codec-encoded [`FileHeader`] (index, term, configuration,
//! data length, crc32 of the data) and the data is the codec-encoded `store::Store`.
//! The header is decoded with the codec's normal size limit; the data is decoded by the
//! caller with `codec::decode_snapshot` ([`protocol::codec::MAX_SNAPSHOT_BYTES`]).
//!
//! # Durability
//! Written to `<name>.tmp`, fsynced, renamed, directory fsynced. A crash leaves either
//! the old set of snapshots or the new one, plus perhaps a `.tmp` file that the next
//! open deletes. Older snapshots beyond the newest [`RETAINED_SNAPSHOTS`] are deleted
//! after the new one is durable.

use super::{Snapshot, SnapshotBackend, SnapshotId, RETAINED_SNAPSHOTS};
use crate::log_store::StorageError;
use parking_lot::Mutex;
use protocol::codec;
use protocol::ids::{LogIndex, ServerId, Term};
use protocol::raft::SnapshotMeta;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"CAIRNSNP";
const VERSION: u32 = 1;
const SUFFIX: &str = ".snap";
const TMP_SUFFIX: &str = ".snap.tmp";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileHeader {
    index: LogIndex,
    term: Term,
    configuration: Vec<(ServerId, String)>,
    data_len: u64,
    data_crc: u32,
}

pub struct FileSnapshotStore {
    dir: PathBuf,
    /// Saves are serialized (one writer at a time).
    writing: Mutex<()>,
}

fn file_name(id: SnapshotId) -> String {
    format!("{:020}-{:020}{SUFFIX}", id.term.0, id.index.0)
}

fn parse_name(name: &str) -> Option<SnapshotId> {
    let (term, index) = name.strip_suffix(SUFFIX)?.split_once('-')?;
    Some(SnapshotId {
        term: Term(term.parse().ok()?),
        index: LogIndex(index.parse().ok()?),
    })
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// The whole file for a snapshot.
fn encode_file(meta: &SnapshotMeta, data: &[u8]) -> Result<Vec<u8>, StorageError> {
    let header = FileHeader {
        index: meta.index,
        term: meta.term,
        configuration: meta.configuration.clone(),
        data_len: data.len() as u64,
        data_crc: crc32fast::hash(data),
    };
    let header = codec::encode(&header).map_err(|e| StorageError::Io(e.to_string()))?;
    let mut out = Vec::with_capacity(24 + header.len() + data.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&crc32fast::hash(&header).to_le_bytes());
    out.extend_from_slice(data);
    Ok(out)
}

/// Verify and split a snapshot file (the data is cut out of `file` without a copy).
fn decode_file(mut file: Vec<u8>) -> Result<Snapshot, String> {
    let bytes = file.as_slice();
    let take = |pos: usize, n: usize| -> Result<&[u8], String> {
        pos.checked_add(n)
            .and_then(|end| bytes.get(pos..end))
            .ok_or_else(|| "file is truncated".to_string())
    };
    let u32_at = |pos: usize| -> Result<u32, String> {
        let b = take(pos, 4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    };
    if take(0, 8)? != MAGIC {
        return Err("bad magic".into());
    }
    let version = u32_at(8)?;
    if version != VERSION {
        return Err(format!("unsupported version {version}"));
    }
    let header_len = u32_at(12)? as usize;
    let header_bytes = take(16, header_len)?;
    let header_crc = u32_at(16 + header_len)?;
    if crc32fast::hash(header_bytes) != header_crc {
        return Err("header crc mismatch".into());
    }
    let header: FileHeader =
        codec::decode(header_bytes, codec::MAX_DECODE_BYTES).map_err(|e| e.to_string())?;
    let start = 20 + header_len;
    let data_len = usize::try_from(header.data_len).map_err(|_| "data too long".to_string())?;
    if bytes.len() - start.min(bytes.len()) != data_len {
        return Err(format!(
            "data is {} bytes, header says {data_len}",
            bytes.len().saturating_sub(start)
        ));
    }
    if crc32fast::hash(&bytes[start..]) != header.data_crc {
        return Err("data crc mismatch".into());
    }
    file.drain(..start);
    Ok(Snapshot {
        meta: SnapshotMeta {
            index: header.index,
            term: header.term,
            configuration: header.configuration,
        },
        data: file,
    })
}

impl FileSnapshotStore {
    /// Open (creating if needed) the snapshot directory and delete leftover temp files.
    pub fn open(dir: &Path) -> Result<FileSnapshotStore, StorageError> {
        fs::create_dir_all(dir)?;
        let mut removed = false;
        for item in fs::read_dir(dir)? {
            let item = item?;
            if item.file_name().to_string_lossy().ends_with(TMP_SUFFIX) {
                fs::remove_file(item.path())?;
                removed = true;
            }
        }
        if removed {
            sync_dir(dir)?;
        }
        Ok(FileSnapshotStore {
            dir: dir.to_path_buf(),
            writing: Mutex::new(()),
        })
    }

    /// Every snapshot file present, newest first.
    fn all(&self) -> Result<Vec<SnapshotId>, StorageError> {
        let mut ids = Vec::new();
        for item in fs::read_dir(&self.dir)? {
            if let Some(id) = parse_name(&item?.file_name().to_string_lossy()) {
                ids.push(id);
            }
        }
        ids.sort_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    pub fn path_of(&self, id: SnapshotId) -> PathBuf {
        self.dir.join(file_name(id))
    }
}

impl SnapshotBackend for FileSnapshotStore {
    fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        let _one_writer = self.writing.lock();
        let id = SnapshotId::of(meta);
        let bytes = encode_file(meta, data)?;
        let path = self.path_of(id);
        let tmp = self.dir.join(format!("{}.tmp", file_name(id)));
        let mut f = File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &path)?;
        sync_dir(&self.dir)?;
        let old: Vec<SnapshotId> = self.all()?.into_iter().skip(RETAINED_SNAPSHOTS).collect();
        for id in &old {
            fs::remove_file(self.path_of(*id))?;
        }
        if !old.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(())
    }

    fn list(&self) -> Result<Vec<SnapshotId>, StorageError> {
        Ok(self.all()?.into_iter().take(RETAINED_SNAPSHOTS).collect())
    }

    fn quarantine(&self, id: SnapshotId) -> Result<(), StorageError> {
        let _one_writer = self.writing.lock();
        let path = self.path_of(id);
        fs::rename(&path, path.with_extension("snap.corrupt"))?;
        sync_dir(&self.dir)
    }

    fn load(&self, id: SnapshotId) -> Result<Snapshot, StorageError> {
        let path = self.path_of(id);
        let corrupt = |detail: String| StorageError::Corrupt {
            what: path.display().to_string(),
            detail,
        };
        let bytes = fs::read(&path)?;
        let snap = decode_file(bytes).map_err(corrupt)?;
        if SnapshotId::of(&snap.meta) != id {
            return Err(corrupt("header does not match the file name".into()));
        }
        Ok(snap)
    }
}
