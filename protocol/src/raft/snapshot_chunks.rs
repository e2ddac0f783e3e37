//! A leader's snapshot travels to a follower as a sequence of bounded chunks; the core
//! never sees them. It emits `Output::InstallSnapshot` and, on the follower, receives ONE
//! `Message::InstallSnapshot` once the whole image has arrived and verified. Chunking is
//! the transport's business (`actors::peer_net`, `actors::snapshot_sender`); this module
//! is its pure half:
//!
//! - [`SnapshotChunk`]: one chunk on the wire (a frame kind of its own, see `frame`).
//!   Every chunk of a transfer repeats the transfer's identity (leader, term, snapshot
//!   meta) and its announced size and crc32, so each one can be checked on its own.
//! - [`ChunkSequence`]: the sender's numbering (offsets, the `last` flag).
//! - [`ChunkAssembler`]: the receiver's one transfer in progress. It appends chunks in
//!   order, checks the length and crc32 at the end and only then hands back the
//!   `InstallSnapshot` frame for the core.
//!
//! Nothing from the wire is trusted: the announced size must be within the assembler's
//! limit ([`MAX_SNAPSHOT_TRANSFER_BYTES`] in servers), every chunk must fit inside it,
//! and the buffer grows with what actually arrived (never reserved from the
//! announcement alone). A gap, a chunk that contradicts the transfer, or a bad length or
//! checksum at the end discards the transfer; the leader sends the snapshot again after
//! `SNAPSHOT_RETRY_TIMEOUTS` election timeouts, as for any lost InstallSnapshot.
//!
//! Which transfer wins: at most one is assembled at a time (bounding memory to one
//! image). Transfers are ordered by (term, snapshot index, leader); a first chunk
//! (offset 0) of a transfer at least as new as the current one replaces it (a new
//! leader, a newer snapshot, or the same transfer started again), an older one is
//! refused. Later chunks count only on the stream (connection) that started the
//! transfer, so a stale connection of a replaced transfer cannot disturb the new one;
//! when that stream closes, its unfinished transfer is dropped.

use super::frame::RaftFrame;
use super::types::{Message, SnapshotMeta};
use crate::ids::{LogIndex, ServerId, Term};
use serde::{Deserialize, Serialize};

/// Largest snapshot image a server accepts from a leader (4 GiB). The whole image is
/// held in memory once assembled (the core takes it as one message), so this is also
/// the memory one transfer may take on the receiver.
pub const MAX_SNAPSHOT_TRANSFER_BYTES: u64 = 4 * 1024 * 1024 * 1024;

/// Most image bytes one chunk may carry: far inside a Raft frame
/// (`frame::MAX_RAFT_FRAME_BYTES`, 64 MiB), leaving room for the meta's configuration.
pub const MAX_SNAPSHOT_CHUNK_BYTES: usize = 16 * 1024 * 1024;

const _: () = assert!(MAX_SNAPSHOT_CHUNK_BYTES * 2 <= crate::codec::MAX_DECODE_BYTES);

/// One piece of a snapshot image on its way to a follower.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotChunk {
    /// The sender and where it listens (as in [`RaftFrame`]).
    pub from: ServerId,
    pub from_addr: String,
    /// The leader's term and id (as in `Message::InstallSnapshot`).
    pub term: Term,
    pub leader: ServerId,
    pub meta: SnapshotMeta,
    /// Where `bytes` starts in the image.
    pub offset: u64,
    /// The whole image's length and crc32, the same in every chunk of a transfer.
    pub total_len: u64,
    pub checksum: u32,
    #[serde(with = "byte_buf")]
    pub bytes: Vec<u8>,
    /// The final chunk: `offset + bytes.len() == total_len`.
    pub last: bool,
}

/// `Vec<u8>` as one byte string (the same bytes on the wire as the default sequence
/// encoding, without a call per byte).
mod byte_buf {
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(bytes)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        struct Bytes;
        impl<'de> serde::de::Visitor<'de> for Bytes {
            type Value = Vec<u8>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string")
            }
            fn visit_bytes<E>(self, v: &[u8]) -> Result<Vec<u8>, E> {
                Ok(v.to_vec())
            }
            fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
                Ok(v)
            }
        }
        d.deserialize_byte_buf(Bytes)
    }
}

/// The sender's side: numbers the chunks of one image.
#[derive(Debug, Clone)]
pub struct ChunkSequence {
    from: ServerId,
    from_addr: String,
    term: Term,
    meta: SnapshotMeta,
    total_len: u64,
    checksum: u32,
    next_offset: u64,
}

impl ChunkSequence {
    /// Chunks of an image of `total_len` bytes with crc32 `checksum`, sent by the
    /// leader `from` (listening on `from_addr`) in `term`.
    pub fn new(
        from: ServerId,
        from_addr: String,
        term: Term,
        meta: SnapshotMeta,
        (total_len, checksum): (u64, u32),
    ) -> ChunkSequence {
        ChunkSequence {
            from,
            from_addr,
            term,
            meta,
            total_len,
            checksum,
            next_offset: 0,
        }
    }

    /// The next chunk, carrying `bytes` (the image's next bytes); `last` ends the image.
    pub fn next_chunk(&mut self, bytes: Vec<u8>, last: bool) -> SnapshotChunk {
        let offset = self.next_offset;
        self.next_offset += bytes.len() as u64;
        SnapshotChunk {
            from: self.from.clone(),
            from_addr: self.from_addr.clone(),
            term: self.term,
            leader: self.from.clone(),
            meta: self.meta.clone(),
            offset,
            total_len: self.total_len,
            checksum: self.checksum,
            bytes,
            last,
        }
    }

    /// Image bytes numbered so far.
    pub fn sent_bytes(&self) -> u64 {
        self.next_offset
    }
}

/// A whole image in memory as chunks of at most `chunk_bytes` (at least one chunk,
/// the last flagged). For images at hand (version-1 snapshot files) and tests.
pub fn split_image(
    mut sequence: ChunkSequence,
    image: &[u8],
    chunk_bytes: usize,
) -> Vec<SnapshotChunk> {
    let chunk_bytes = chunk_bytes.clamp(1, MAX_SNAPSHOT_CHUNK_BYTES);
    let mut pieces: Vec<&[u8]> = image.chunks(chunk_bytes).collect();
    if pieces.is_empty() {
        pieces.push(&[]);
    }
    let count = pieces.len();
    pieces
        .into_iter()
        .enumerate()
        .map(|(i, piece)| sequence.next_chunk(piece.to_vec(), i + 1 == count))
        .collect()
}

/// Which transfer a chunk belongs to; newer transfers compare greater.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TransferKey {
    pub term: Term,
    pub index: LogIndex,
    pub leader: ServerId,
}

impl TransferKey {
    pub fn of(chunk: &SnapshotChunk) -> TransferKey {
        TransferKey {
            term: chunk.term,
            index: chunk.meta.index,
            leader: chunk.leader.clone(),
        }
    }
}

/// Why a chunk was not taken. Every error but [`ChunkError::NotInProgress`] and
/// [`ChunkError::Stale`] discarded the transfer the chunk belonged to.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    #[error("snapshot of {total_len} bytes is over the limit of {limit} bytes")]
    TooLarge { total_len: u64, limit: u64 },
    #[error(
        "chunk of {len} bytes at offset {offset} does not fit a snapshot of {total_len} bytes"
    )]
    OutOfBounds {
        offset: u64,
        len: u64,
        total_len: u64,
    },
    #[error("chunk of {len} bytes is over the chunk limit of {limit} bytes")]
    ChunkTooLarge { len: usize, limit: usize },
    #[error("gap in the snapshot stream: expected offset {expected}, got {offset}")]
    Gap { expected: u64, offset: u64 },
    #[error("chunk contradicts its transfer: {0}")]
    Mismatch(&'static str),
    #[error("snapshot ended at {received} bytes, {total_len} were announced")]
    Length { received: u64, total_len: u64 },
    #[error("snapshot checksum mismatch: announced {announced:#010x}, received {received:#010x}")]
    Checksum { announced: u32, received: u32 },
    #[error("chunk of a transfer older than the one in progress")]
    Stale,
    #[error("chunk at offset {offset} of a transfer not in progress on this stream")]
    NotInProgress { offset: u64 },
}

/// What a taken chunk led to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChunkOutcome {
    /// Appended; more to come.
    Accepted,
    /// Bytes already received (a repeated chunk): ignored, the transfer goes on.
    Duplicate,
    /// The image is complete and verified: the `InstallSnapshot` for the core.
    Complete(RaftFrame),
}

/// The transfer being assembled.
struct Partial {
    stream: u64,
    key: TransferKey,
    from: ServerId,
    from_addr: String,
    meta: SnapshotMeta,
    total_len: u64,
    checksum: u32,
    data: Vec<u8>,
    hasher: crc32fast::Hasher,
}

impl Partial {
    fn received(&self) -> u64 {
        self.data.len() as u64
    }

    /// The chunk agrees with what this transfer announced.
    fn check_same(&self, chunk: &SnapshotChunk) -> Result<(), ChunkError> {
        if chunk.total_len != self.total_len {
            return Err(ChunkError::Mismatch("total length changed"));
        }
        if chunk.checksum != self.checksum {
            return Err(ChunkError::Mismatch("checksum changed"));
        }
        if chunk.meta != self.meta {
            return Err(ChunkError::Mismatch("snapshot meta changed"));
        }
        if chunk.from != self.from {
            return Err(ChunkError::Mismatch("sender changed"));
        }
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) {
        let needed = self.data.len() + bytes.len();
        if needed > self.data.capacity() {
            // Grow geometrically but never past the announced total (checked against
            // the limit): the announcement alone never makes us reserve more than
            // twice what actually arrived.
            let cap = usize::try_from(self.total_len).unwrap_or(usize::MAX);
            let target = (self.data.capacity().saturating_mul(2))
                .max(needed)
                .min(cap.max(needed));
            self.data.reserve_exact(target - self.data.len());
        }
        self.data.extend_from_slice(bytes);
        self.hasher.update(bytes);
    }
}

/// The receiver's side: at most one transfer assembled at a time (see the module docs).
pub struct ChunkAssembler {
    limit: u64,
    current: Option<Partial>,
}

impl ChunkAssembler {
    /// Accepts images of at most `limit` bytes ([`MAX_SNAPSHOT_TRANSFER_BYTES`] in
    /// servers; tests pass small ones).
    pub fn new(limit: u64) -> ChunkAssembler {
        ChunkAssembler {
            limit,
            current: None,
        }
    }

    /// The transfer in progress and the bytes it has received.
    pub fn in_progress(&self) -> Option<(TransferKey, u64)> {
        self.current.as_ref().map(|p| (p.key.clone(), p.received()))
    }

    /// Bytes held for the transfer in progress (its buffer's capacity).
    pub fn reserved_bytes(&self) -> usize {
        self.current.as_ref().map_or(0, |p| p.data.capacity())
    }

    /// Take one chunk that arrived on `stream` (an id of the connection it came on).
    pub fn on_chunk(
        &mut self,
        stream: u64,
        chunk: SnapshotChunk,
    ) -> Result<ChunkOutcome, ChunkError> {
        let key = TransferKey::of(&chunk);
        let owns = |p: &Partial| p.stream == stream && p.key == key;
        let result = self.take(stream, &key, chunk);
        if result
            .as_ref()
            .is_err_and(|e| !matches!(e, ChunkError::Stale | ChunkError::NotInProgress { .. }))
            && self.current.as_ref().is_some_and(owns)
        {
            self.current = None;
        }
        result
    }

    fn take(
        &mut self,
        stream: u64,
        key: &TransferKey,
        chunk: SnapshotChunk,
    ) -> Result<ChunkOutcome, ChunkError> {
        check_bounds(&chunk, self.limit)?;
        if chunk.offset == 0 {
            if let Some(current) = &self.current {
                if *key < current.key {
                    return Err(ChunkError::Stale);
                }
            }
            // A new transfer, or the same one started again: what was assembled goes.
            self.current = Some(Partial {
                stream,
                key: key.clone(),
                from: chunk.from.clone(),
                from_addr: chunk.from_addr.clone(),
                meta: chunk.meta.clone(),
                total_len: chunk.total_len,
                checksum: chunk.checksum,
                data: Vec::new(),
                hasher: crc32fast::Hasher::new(),
            });
        }
        let Some(current) = self
            .current
            .as_mut()
            .filter(|p| p.stream == stream && p.key == *key)
        else {
            return Err(ChunkError::NotInProgress {
                offset: chunk.offset,
            });
        };
        current.check_same(&chunk)?;
        let len = chunk.bytes.len() as u64;
        let received = current.received();
        if chunk.offset != received {
            // Wholly inside what arrived: a harmless repeat.
            if chunk.offset < received && chunk.offset + len <= received {
                return Ok(ChunkOutcome::Duplicate);
            }
            return Err(ChunkError::Gap {
                expected: received,
                offset: chunk.offset,
            });
        }
        current.append(&chunk.bytes);
        if !chunk.last {
            return Ok(ChunkOutcome::Accepted);
        }
        let Some(done) = self.current.take() else {
            return Err(ChunkError::NotInProgress {
                offset: chunk.offset,
            });
        };
        if done.received() != done.total_len {
            return Err(ChunkError::Length {
                received: done.received(),
                total_len: done.total_len,
            });
        }
        let received_crc = done.hasher.finalize();
        if received_crc != done.checksum {
            return Err(ChunkError::Checksum {
                announced: done.checksum,
                received: received_crc,
            });
        }
        Ok(ChunkOutcome::Complete(RaftFrame {
            from: done.from,
            from_addr: done.from_addr,
            msg: Message::InstallSnapshot {
                term: done.key.term,
                leader: done.key.leader,
                meta: done.meta,
                data: done.data,
            },
        }))
    }

    /// `stream` closed: an unfinished transfer it was feeding is dropped. Whether one was.
    pub fn on_stream_closed(&mut self, stream: u64) -> bool {
        if self.current.as_ref().is_some_and(|p| p.stream == stream) {
            self.current = None;
            return true;
        }
        false
    }
}

/// The announced size is within the limit and the chunk inside it.
fn check_bounds(chunk: &SnapshotChunk, limit: u64) -> Result<(), ChunkError> {
    if chunk.total_len > limit {
        return Err(ChunkError::TooLarge {
            total_len: chunk.total_len,
            limit,
        });
    }
    if chunk.bytes.len() > MAX_SNAPSHOT_CHUNK_BYTES {
        return Err(ChunkError::ChunkTooLarge {
            len: chunk.bytes.len(),
            limit: MAX_SNAPSHOT_CHUNK_BYTES,
        });
    }
    let len = chunk.bytes.len() as u64;
    let end = chunk.offset.checked_add(len);
    if end.is_none_or(|end| end > chunk.total_len) {
        return Err(ChunkError::OutOfBounds {
            offset: chunk.offset,
            len,
            total_len: chunk.total_len,
        });
    }
    if chunk.last && end != Some(chunk.total_len) {
        return Err(ChunkError::Length {
            received: end.unwrap_or(u64::MAX),
            total_len: chunk.total_len,
        });
    }
    Ok(())
}
