//! Snapshot files.
//!
//! # On-disk format (directory `<data_dir>/raft/snapshots/`)
//! One file per snapshot, `<term, 20 digits>-<index, 20 digits>.snap`. Version 3:
//! ```text
//! b"CAIRNSNP" | u32 version (LE, 3) | u32 header length (LE) | header | u32 crc32 of
//! the header (LE) | data section | u64 data length (LE) | u32 crc32 of the data (LE)
//! | b"CAIRNEND"
//! ```
//! where the header is the codec-encoded [`FileHeader`] (index, term, voters,
//! non-voters) and the data section is the store as framed records, each with its own length and
//! CRC ([`super::records`]). The trailer comes last because the data is streamed
//! straight into the file (through a `BufWriter`) and its length and CRC are known only
//! at the end; a reader finds it at the end of the file (so a truncated file shows at
//! once), then streams the records through a `BufReader`.
//!
//! Version 2 (written before non-voters existed) is the same with a header of index,
//! term and voters only ([`FileHeaderV2`]); such files still load, with no non-voters.
//!
//! Version 1 (written before snapshots streamed): the same prefix, a header that also
//! holds the data's length and CRC, then the data: the whole store as one codec value.
//! Such files are still loaded (read whole, up to [`codec::MAX_V1_SNAPSHOT_BYTES`]);
//! new snapshots are always version 3. Any other version is refused, naming it.
//!
//! # Durability
//! Written to `<name>.tmp`, fsynced, renamed, directory fsynced. A save that fails
//! removes its `.tmp` at once; a crash leaves either the old set of snapshots or the
//! new one, plus perhaps a `.tmp` file that the next open deletes. Older snapshots
//! beyond the newest [`RETAINED_SNAPSHOTS`] are deleted after the new one is durable.

use super::{
    corrupt, stream_verified, CrcWriter, DataReader, DataSummary, DataWriter, LoadError,
    SnapshotBackend, SnapshotData, SnapshotId, RETAINED_SNAPSHOTS,
};
use crate::storage_error::StorageError;
use parking_lot::Mutex;
use protocol::codec;
use protocol::ids::{LogIndex, ServerId, Term};
use protocol::raft::SnapshotMeta;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"CAIRNSNP";
const END_MAGIC: &[u8; 8] = b"CAIRNEND";
const VERSION: u32 = 3;
const V2: u32 = 2;
const V1: u32 = 1;
/// u64 data length, u32 data crc, end magic.
const TRAILER_LEN: u64 = 8 + 4 + 8;
/// Buffer of the snapshot writer and reader.
const IO_BUFFER: usize = 1 << 20;
const SUFFIX: &str = ".snap";
const TMP_SUFFIX: &str = ".snap.tmp";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileHeader {
    index: LogIndex,
    term: Term,
    configuration: Vec<(ServerId, String)>,
    non_voters: Vec<(ServerId, String)>,
}

/// The version-2 header: voters only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileHeaderV2 {
    index: LogIndex,
    term: Term,
    configuration: Vec<(ServerId, String)>,
}

/// The version-1 header: the data's length and CRC came first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FileHeaderV1 {
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

/// Magic, version, header length, header, header CRC: everything before the data.
fn encode_prefix(meta: &SnapshotMeta) -> Result<Vec<u8>, StorageError> {
    let header = FileHeader {
        index: meta.index,
        term: meta.term,
        configuration: meta.configuration.clone(),
        non_voters: meta.non_voters.clone(),
    };
    let header = codec::encode(&header).map_err(|e| StorageError::Io(e.to_string()))?;
    let header_len = u32::try_from(header.len()).map_err(|e| StorageError::Io(e.to_string()))?;
    let mut out = Vec::with_capacity(20 + header.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&header_len.to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&crc32fast::hash(&header).to_le_bytes());
    Ok(out)
}

fn read_u32(r: &mut impl Read) -> std::io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// Where a version-2 or -3 file's data section lies, and what it must hash to.
struct DataSection {
    meta: SnapshotMeta,
    start: u64,
    len: u64,
    crc: u32,
}

/// Read and check a version-2 or -3 file's header and trailer (`f` is past magic and
/// version). Errors are texts for `Corrupt`.
fn read_framed(f: &mut File, file_len: u64, version: u32) -> Result<DataSection, String> {
    let truncated = |_| "file is truncated".to_string();
    let header_len = read_u32(f).map_err(truncated)? as u64;
    if 16 + header_len + 4 + TRAILER_LEN > file_len {
        return Err("file is truncated".into());
    }
    let mut header = vec![0u8; header_len as usize];
    f.read_exact(&mut header).map_err(truncated)?;
    if crc32fast::hash(&header) != read_u32(f).map_err(truncated)? {
        return Err("header crc mismatch".into());
    }
    let header: FileHeader = if version == V2 {
        let v2: FileHeaderV2 =
            codec::decode(&header, codec::MAX_DECODE_BYTES).map_err(|e| e.to_string())?;
        FileHeader {
            index: v2.index,
            term: v2.term,
            configuration: v2.configuration,
            non_voters: Vec::new(),
        }
    } else {
        codec::decode(&header, codec::MAX_DECODE_BYTES).map_err(|e| e.to_string())?
    };
    let start = 20 + header_len;
    f.seek(SeekFrom::Start(file_len - TRAILER_LEN))
        .map_err(|e| e.to_string())?;
    let mut trailer = [0u8; TRAILER_LEN as usize];
    f.read_exact(&mut trailer).map_err(truncated)?;
    if &trailer[12..] != END_MAGIC {
        return Err("no end marker: the file is truncated or damaged".into());
    }
    let mut len = [0u8; 8];
    len.copy_from_slice(&trailer[..8]);
    let len = u64::from_le_bytes(len);
    let crc = u32::from_le_bytes([trailer[8], trailer[9], trailer[10], trailer[11]]);
    let actual = file_len - TRAILER_LEN - start;
    if len != actual {
        return Err(format!("data is {actual} bytes, the trailer says {len}"));
    }
    f.seek(SeekFrom::Start(start)).map_err(|e| e.to_string())?;
    Ok(DataSection {
        meta: SnapshotMeta {
            index: header.index,
            term: header.term,
            configuration: header.configuration,
            non_voters: header.non_voters,
        },
        start,
        len,
        crc,
    })
}

/// Verify and split a version-1 file (the data is cut out of `file` without a copy).
fn decode_v1_file(mut file: Vec<u8>) -> Result<(SnapshotMeta, Vec<u8>), String> {
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
    let header_len = u32_at(12)? as usize;
    let header_bytes = take(16, header_len)?;
    let header_crc = u32_at(16 + header_len)?;
    if crc32fast::hash(header_bytes) != header_crc {
        return Err("header crc mismatch".into());
    }
    let header: FileHeaderV1 =
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
    let meta = SnapshotMeta {
        index: header.index,
        term: header.term,
        configuration: header.configuration,
        non_voters: Vec::new(),
    };
    Ok((meta, file))
}

/// Deletes a temp file when dropped, unless it was kept: a save that fails anywhere
/// leaves nothing behind.
struct TempFile<'a>(Option<&'a Path>);

impl TempFile<'_> {
    fn keep(mut self) {
        self.0 = None;
    }
}

impl Drop for TempFile<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.0 {
            if let Err(e) = fs::remove_file(path) {
                tracing::warn!(error = %e, path = %path.display(), "could not remove a failed snapshot's temp file");
            }
        }
    }
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

impl FileSnapshotStore {
    /// Write the whole temp file durably; the caller removes it on error.
    fn write_temp(
        &self,
        tmp: &Path,
        meta: &SnapshotMeta,
        write: DataWriter<'_>,
    ) -> Result<u64, StorageError> {
        let mut out = BufWriter::with_capacity(IO_BUFFER, File::create(tmp)?);
        out.write_all(&encode_prefix(meta)?)?;
        let mut data = CrcWriter::new(&mut out);
        write(&mut data)?;
        let (len, crc) = data.finish();
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&crc.to_le_bytes())?;
        out.write_all(END_MAGIC)?;
        let file = out
            .into_inner()
            .map_err(|e| StorageError::Io(e.error().to_string()))?;
        file.sync_all()?;
        Ok(len)
    }

    /// A version-1 file, verified whole, handed to `read`.
    fn load_v1(
        &self,
        path: &Path,
        what: &str,
        read: DataReader<'_>,
    ) -> Result<SnapshotMeta, LoadError> {
        let len = fs::metadata(path).map_err(StorageError::from)?.len();
        if len > codec::MAX_V1_SNAPSHOT_BYTES as u64 + (1 << 20) {
            return Err(LoadError::Unloadable(
                what.into(),
                format!("a version-1 file of {len} bytes is over the version-1 limit"),
            ));
        }
        let bytes = fs::read(path).map_err(StorageError::from)?;
        let (meta, data) = decode_v1_file(bytes).map_err(|e| corrupt(what, e))?;
        read(&meta, SnapshotData::V1Store(&data))
            .map_err(|e| LoadError::Unloadable(what.into(), e))?;
        Ok(meta)
    }
}

impl SnapshotBackend for FileSnapshotStore {
    fn save_with(&self, meta: &SnapshotMeta, write: DataWriter<'_>) -> Result<u64, StorageError> {
        let _one_writer = self.writing.lock();
        let id = SnapshotId::of(meta);
        let path = self.path_of(id);
        let tmp = self.dir.join(format!("{}.tmp", file_name(id)));
        let guard = TempFile(Some(&tmp));
        let len = self.write_temp(&tmp, meta, write)?;
        fs::rename(&tmp, &path)?;
        guard.keep();
        sync_dir(&self.dir)?;
        let old: Vec<SnapshotId> = self.all()?.into_iter().skip(RETAINED_SNAPSHOTS).collect();
        for id in &old {
            fs::remove_file(self.path_of(*id))?;
        }
        if !old.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(len)
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

    fn data_summary(
        &self,
        id: SnapshotId,
    ) -> Result<Option<(SnapshotMeta, DataSummary)>, LoadError> {
        let path = self.path_of(id);
        let what = path.display().to_string();
        let (mut f, file_len, version) = open_versioned(&path, &what)?;
        match version {
            VERSION | V2 => {
                let section =
                    read_framed(&mut f, file_len, version).map_err(|e| corrupt(&what, e))?;
                if SnapshotId::of(&section.meta) != id {
                    return Err(corrupt(&what, "header does not match the file name".into()));
                }
                let summary = DataSummary {
                    len: section.len,
                    crc: section.crc,
                };
                Ok(Some((section.meta, summary)))
            }
            V1 => Ok(None),
            other => Err(unsupported_version(what, other)),
        }
    }

    fn load_with(&self, id: SnapshotId, read: DataReader<'_>) -> Result<SnapshotMeta, LoadError> {
        let path = self.path_of(id);
        let what = path.display().to_string();
        let (mut f, file_len, version) = open_versioned(&path, &what)?;
        let meta = match version {
            VERSION | V2 => {
                let section =
                    read_framed(&mut f, file_len, version).map_err(|e| corrupt(&what, e))?;
                if SnapshotId::of(&section.meta) != id {
                    return Err(corrupt(&what, "header does not match the file name".into()));
                }
                let data = BufReader::with_capacity(IO_BUFFER, f);
                debug_assert!(section.start > 0);
                stream_verified(&what, &section.meta, data, (section.len, section.crc), read)?;
                section.meta
            }
            V1 => self.load_v1(&path, &what, read)?,
            other => return Err(unsupported_version(what, other)),
        };
        if SnapshotId::of(&meta) != id {
            return Err(corrupt(
                &self.path_of(id).display().to_string(),
                "header does not match the file name".into(),
            ));
        }
        Ok(meta)
    }
}

/// Open a snapshot file and read its magic and format version.
fn open_versioned(path: &Path, what: &str) -> Result<(File, u64, u32), LoadError> {
    let mut f = File::open(path).map_err(StorageError::from)?;
    let file_len = f.metadata().map_err(StorageError::from)?.len();
    let mut prefix = [0u8; 12];
    f.read_exact(&mut prefix)
        .map_err(|_| corrupt(what, "file is truncated".into()))?;
    if &prefix[..8] != MAGIC {
        return Err(corrupt(what, "bad magic".into()));
    }
    let version = u32::from_le_bytes([prefix[8], prefix[9], prefix[10], prefix[11]]);
    Ok((f, file_len, version))
}

fn unsupported_version(what: String, version: u32) -> LoadError {
    LoadError::Unloadable(
        what,
        format!("unsupported snapshot file version {version} (this build reads versions 1 to 3)"),
    )
}
