//! SnapshotStore: durable state-machine snapshots behind the [`SnapshotBackend`] trait
//! (files for real servers, memory for `-dev` and tests; one conformance suite).
//!
//! A snapshot is the meta (last included index and term, configuration at that index)
//! plus a DATA SECTION: the store as a stream of framed records ([`records`]). It is
//! written and read as a stream (`save_with` hands the writer a `Write`, `load_with`
//! hands the reader a `Read`), so memory stays bounded by one record whatever the size
//! of the store, and there is no ceiling on the image below what the disk holds.
//! Saving makes it durable before returning, then keeps only the newest
//! [`RETAINED_SNAPSHOTS`]; a save that fails leaves nothing behind. Loading verifies a
//! CRC per record and one over the whole data section, so recovery can fall back to an
//! older snapshot when the newest is damaged.
//!
//! # The log compaction rule
//! The log on disk is only ever cut up to the OLDEST retained snapshot's index (and no
//! further than the trailing entries below the newest: `trailing_logs` entries, and at
//! most `TRAILING_LOG_BYTES` (64 MiB) of payload, see `RaftCore`'s `SnapshotTaken`). So
//! whichever retained snapshot recovery ends up using, the log continues it without a
//! gap. The byte bound matters at restart: recovery reads the whole disk log into
//! memory, so 10240 trailing entries of 512 KiB would cost 5 GiB there.

mod file;
mod memory;
pub(crate) mod records;

#[cfg(test)]
mod conformance;

pub use file::FileSnapshotStore;
pub use memory::MemorySnapshotStore;

use crate::storage_error::StorageError;
use protocol::ids::{LogIndex, Term};
use protocol::raft::SnapshotMeta;
use std::io::{self, Read, Write};

/// How many snapshots are kept (Consul keeps 2 as well).
pub const RETAINED_SNAPSHOTS: usize = 2;

/// Which snapshot: its last included index and term.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SnapshotId {
    pub index: LogIndex,
    pub term: Term,
}

impl SnapshotId {
    pub fn of(meta: &SnapshotMeta) -> SnapshotId {
        SnapshotId {
            index: meta.index,
            term: meta.term,
        }
    }
}

/// A verified snapshot held in memory: its data section (a record stream). For tests
/// and for sending a snapshot whole; recovery streams with `load_with` instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub meta: SnapshotMeta,
    pub data: Vec<u8>,
}

/// The length and crc32 of a stored data section, as recorded when it was saved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DataSummary {
    pub len: u64,
    pub crc: u32,
}

/// What a reader of a snapshot is handed.
pub enum SnapshotData<'a> {
    /// The data section: framed records ([`records`]), streamed.
    Records(&'a mut dyn Read),
    /// A version-1 file's data: the whole store as one codec value.
    V1Store(&'a [u8]),
}

/// Writes a snapshot's data section.
pub type DataWriter<'a> = &'a mut dyn FnMut(&mut dyn Write) -> io::Result<()>;
/// Reads a snapshot's data section (an `Err` is the reader's reason to refuse it).
pub type DataReader<'a> = &'a mut dyn FnMut(&SnapshotMeta, SnapshotData<'_>) -> Result<(), String>;

/// Why a snapshot could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// Reading failed (`StorageError::Io`: perhaps passing) or the file fails its own
    /// checks (`StorageError::Corrupt`: set it aside).
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The file verifies (every CRC holds) but the reader refused what it holds: real
    /// data this version cannot load (e.g. a record over the decode limit).
    #[error("raft snapshot {0} verifies but cannot be loaded: {1}")]
    Unloadable(String, String),
}

/// Durable snapshot storage. Shared between threads (the Fsm's writer thread saves,
/// recovery and the leader's snapshot sender load).
pub trait SnapshotBackend: Send + Sync + 'static {
    /// Store durably the data section `write` produces (on disk: temp file, fsync,
    /// rename, fsync the directory), then delete all but the newest
    /// [`RETAINED_SNAPSHOTS`]. Returns the data section's size. On any error (also one
    /// `write` returns) nothing is left behind: no temp file, no new snapshot.
    fn save_with(&self, meta: &SnapshotMeta, write: DataWriter<'_>) -> Result<u64, StorageError>;
    /// Retained snapshots, newest first (not yet verified).
    fn list(&self) -> Result<Vec<SnapshotId>, StorageError>;
    /// Stream one snapshot's data section to `read`, then verify the whole: header,
    /// lengths, CRC of the data (also over bytes `read` did not consume). Returns the
    /// meta when `read` succeeded and everything verifies.
    fn load_with(&self, id: SnapshotId, read: DataReader<'_>) -> Result<SnapshotMeta, LoadError>;
    /// Set a damaged snapshot aside so it no longer counts as retained: otherwise the
    /// next save would prune the good older snapshot and keep the damaged one, and log
    /// compaction (bounded by the oldest retained snapshot) could leave nothing usable.
    fn quarantine(&self, id: SnapshotId) -> Result<(), StorageError>;

    /// The meta, length and crc32 of `id`'s data section as recorded when it was saved
    /// (a file's header and trailer; the data itself is verified by `load_with`), so a
    /// leader can announce them before streaming the data to a follower in chunks.
    /// None when `load_with` would not hand out that record stream as stored (a
    /// version-1 file, converted by `load`): send it from `load` then.
    fn data_summary(
        &self,
        id: SnapshotId,
    ) -> Result<Option<(SnapshotMeta, DataSummary)>, LoadError> {
        let _ = id;
        Ok(None)
    }

    /// `save_with` for a data section at hand (a leader's snapshot).
    fn save(&self, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
        self.save_with(meta, &mut |w| w.write_all(data)).map(|_| ())
    }

    /// One snapshot with its whole data section in memory, as a record stream (a
    /// version-1 file is converted).
    fn load(&self, id: SnapshotId) -> Result<Snapshot, LoadError> {
        let mut data = Vec::new();
        let meta = self.load_with(id, &mut |_, section| match section {
            SnapshotData::Records(r) => r
                .read_to_end(&mut data)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            SnapshotData::V1Store(bytes) => {
                let store = records::decode_v1(bytes)?;
                records::write_store(&store, &mut data, protocol::codec::MAX_DECODE_BYTES)
                    .map_err(|e| e.to_string())
            }
        })?;
        Ok(Snapshot { meta, data })
    }
}

/// A `Write` that counts and checksums what passes through.
pub(crate) struct CrcWriter<W> {
    inner: W,
    hasher: crc32fast::Hasher,
    len: u64,
}

impl<W: Write> CrcWriter<W> {
    pub(crate) fn new(inner: W) -> Self {
        CrcWriter {
            inner,
            hasher: crc32fast::Hasher::new(),
            len: 0,
        }
    }

    /// (bytes written, their crc32)
    pub(crate) fn finish(self) -> (u64, u32) {
        (self.len, self.hasher.finalize())
    }
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A `Read` that checksums what passes through.
struct CrcReader<R> {
    inner: R,
    hasher: crc32fast::Hasher,
}

impl<R: Read> Read for CrcReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// Hand a data section (exactly `data_len` bytes of `source`) to `read`, then check the
/// whole of it against `expected_crc`. Shared by both backends, so they judge damage
/// alike: a bad CRC makes the snapshot `Corrupt` whatever `read` said (a damaged length
/// field shows up to `read` as a bad record first); with a good CRC, a refusal by `read`
/// or bytes left after its end record make it `Unloadable`.
pub(crate) fn stream_verified(
    what: &str,
    meta: &SnapshotMeta,
    source: impl Read,
    (data_len, expected_crc): (u64, u32),
    read: DataReader<'_>,
) -> Result<(), LoadError> {
    let mut reader = CrcReader {
        inner: source.take(data_len),
        hasher: crc32fast::Hasher::new(),
    };
    let outcome = read(meta, SnapshotData::Records(&mut reader));
    // Checksum what the reader left (after a refusal, possibly most of the file).
    let left = io::copy(&mut reader, &mut io::sink()).map_err(StorageError::from)?;
    if reader.inner.limit() != 0 {
        return Err(corrupt(
            what,
            "data is shorter than its trailer says".into(),
        ));
    }
    if reader.hasher.finalize() != expected_crc {
        return Err(corrupt(what, "data crc mismatch".into()));
    }
    match outcome {
        Err(detail) => Err(LoadError::Unloadable(what.into(), detail)),
        Ok(()) if left > 0 => Err(LoadError::Unloadable(
            what.into(),
            format!("{left} bytes after the end record"),
        )),
        Ok(()) => Ok(()),
    }
}

pub(crate) fn corrupt(what: &str, detail: String) -> LoadError {
    LoadError::Storage(StorageError::Corrupt {
        what: what.into(),
        detail,
    })
}
