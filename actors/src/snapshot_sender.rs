//! A leader's snapshot on its way to one follower, in chunks (the pure half, the chunk
//! format and the follower's assembler, is `protocol::raft::snapshot_chunks`).
//!
//! ```text
//! PeerNet::send_snapshot ─▶ transfer task (one per follower at a time)
//!   blocking thread: newest snapshot's data section, read `chunk_bytes` at a time from
//!   the snapshot store, each chunk encoded as a frame ──bounded channel──▶
//!   async task: its OWN 'R' connection to the follower, one frame at a time
//! ```
//!
//! - Memory: the image is never loaded whole (except a version-1 file, converted in
//!   memory as before). In flight per transfer: [`SNAPSHOT_CHUNKS_AHEAD`] encoded frames
//!   in the channel, the chunk being read, the chunk held back (see below), and the
//!   frame being written: about six chunks (6 MiB at the default 1 MiB), plus the
//!   socket's buffer.
//! - Heartbeats: the chunks travel on a connection of their own, not on the peer's
//!   message link. On one TCP stream a heartbeat would queue behind every chunk byte in
//!   the send buffer (megabytes, seconds on a slow link); on two, the kernel interleaves
//!   them, so a long transfer does not make the follower miss its leader and start an
//!   election (as hashicorp/raft and etcd send snapshots beside their message streams).
//! - The last chunk is held back until the snapshot store has verified the whole data
//!   section against its saved crc32: a snapshot damaged on the leader's disk is never
//!   completed. The chunks announce the crc32 recorded at save time, so the follower
//!   checks the image end to end (disk and wire).
//! - One transfer per follower: a new `InstallSnapshot` for a follower whose transfer
//!   of the same term is still running is ignored (the core re-asks after
//!   `SNAPSHOT_RETRY_TIMEOUTS` election timeouts, which a large image may outlast); one
//!   of another term replaces it. A transfer ends when done, when a write makes no
//!   progress for [`SNAPSHOT_CHUNK_WRITE_TIMEOUT`] (a stopped follower), when the
//!   follower closes the connection (it refused a chunk) or a fault rule cuts it; the
//!   core's next retry starts a fresh one.
//! - Fault rules apply per frame, as on the message link (a dropped chunk is a gap: the
//!   follower discards the transfer).

use crate::faults::{FaultRules, Verdict};
use crate::peer_net::{connect, PEER_CONNECT_TIMEOUT};
use crate::snapshot_store::{SnapshotBackend, SnapshotData};
use futures::SinkExt;
use protocol::ids::{ServerId, Term};
use protocol::raft::frame::encode_snapshot_chunk;
use protocol::raft::snapshot_chunks::{ChunkSequence, SnapshotChunk, MAX_SNAPSHOT_CHUNK_BYTES};
use std::io::Read;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_util::bytes::Bytes;

/// Image bytes per chunk by default.
pub const SNAPSHOT_CHUNK_BYTES: usize = 1024 * 1024;
/// Encoded chunks read ahead of the connection (the bound on memory in flight).
pub const SNAPSHOT_CHUNKS_AHEAD: usize = 2;
/// A chunk that cannot be written for this long ends the transfer (the follower is
/// stopped or the link is dead; at 1 MiB chunks it allows links down to ~100 KiB/s).
pub const SNAPSHOT_CHUNK_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// How snapshots are sent.
#[derive(Debug, Clone)]
pub(crate) struct SnapshotSendOptions {
    /// Image bytes per chunk (taken within 1..=`MAX_SNAPSHOT_CHUNK_BYTES`).
    pub(crate) chunk_bytes: usize,
    /// A pause after each chunk. None in servers; tests stretch a transfer over several
    /// election timeouts with it.
    pub(crate) chunk_pause: Duration,
    /// How long one chunk's write may make no progress ([`SNAPSHOT_CHUNK_WRITE_TIMEOUT`];
    /// tests shorten it).
    pub(crate) write_timeout: Duration,
}

impl Default for SnapshotSendOptions {
    fn default() -> Self {
        SnapshotSendOptions {
            chunk_bytes: SNAPSHOT_CHUNK_BYTES,
            chunk_pause: Duration::ZERO,
            write_timeout: SNAPSHOT_CHUNK_WRITE_TIMEOUT,
        }
    }
}

/// One transfer: who sends what to whom.
pub(crate) struct Transfer {
    pub(crate) to: ServerId,
    pub(crate) target: SocketAddr,
    pub(crate) from: ServerId,
    pub(crate) from_addr: String,
    pub(crate) term: Term,
    pub(crate) snapshots: Arc<dyn SnapshotBackend>,
    pub(crate) faults: FaultRules,
    pub(crate) options: SnapshotSendOptions,
}

/// What the reading thread hands the connection.
enum Piece {
    /// The transfer's snapshot index and image length (first, once).
    Start { index: u64, total_len: u64 },
    /// One encoded chunk frame.
    Frame(Bytes),
}

impl Transfer {
    /// Send the newest snapshot; every outcome is logged (nobody waits for it).
    pub(crate) async fn run(self) {
        let to = self.to.clone();
        let started = Instant::now();
        match self.send().await {
            Ok((index, bytes, chunks)) => tracing::info!(
                %to, index, bytes, chunks, elapsed_ms = started.elapsed().as_millis() as u64,
                "snapshot sent to peer"
            ),
            Err(e) => tracing::warn!(%to, "snapshot for peer not sent: {e}"),
        }
    }

    /// (snapshot index, image bytes, chunks) once every chunk was written.
    async fn send(self) -> Result<(u64, u64, u64), String> {
        let ip = self.target.ip();
        if self.faults.check(ip).blocks() {
            return Err("the peer is cut off by a fault rule".into());
        }
        let source = self.from_addr.parse::<SocketAddr>().ok().map(|a| a.ip());
        let mut sink = tokio::time::timeout(PEER_CONNECT_TIMEOUT, connect(source, self.target))
            .await
            .map_err(|_| "connect timed out".to_string())?
            .map_err(|e| format!("connect failed: {e}"))?;

        let (pieces, mut received) = mpsc::channel(SNAPSHOT_CHUNKS_AHEAD);
        let reader = {
            let Transfer {
                from,
                from_addr,
                term,
                snapshots,
                options,
                ..
            } = &self;
            let header = (from.clone(), from_addr.clone(), *term);
            let snapshots = snapshots.clone();
            let chunk_bytes = options.chunk_bytes.clamp(1, MAX_SNAPSHOT_CHUNK_BYTES);
            tokio::task::spawn_blocking(move || {
                read_chunks(snapshots.as_ref(), header, chunk_bytes, &pieces)
            })
        };
        let (mut index, mut bytes, mut chunks) = (0, 0, 0);
        while let Some(piece) = received.recv().await {
            let frame = match piece {
                Piece::Start {
                    index: at,
                    total_len,
                } => {
                    (index, bytes) = (at, total_len);
                    tracing::info!(to = %self.to, index, bytes, "sending snapshot to peer");
                    continue;
                }
                Piece::Frame(frame) => frame,
            };
            self.write(ip, &mut sink, frame).await?;
            chunks += 1;
            if !self.options.chunk_pause.is_zero() {
                tokio::time::sleep(self.options.chunk_pause).await;
            }
        }
        match reader.await {
            Ok(Ok(())) => Ok((index, bytes, chunks)),
            Ok(Err(e)) => Err(e),
            Err(e) => Err(format!("snapshot reader failed: {e}")),
        }
    }

    /// Write one frame, obeying the fault rules, within the write timeout.
    async fn write(
        &self,
        ip: IpAddr,
        sink: &mut crate::peer_net::Sink,
        frame: Bytes,
    ) -> Result<(), String> {
        match self.faults.check(ip) {
            Verdict::Pass => {}
            Verdict::Delay(d) => tokio::time::sleep(d).await,
            Verdict::Drop => return Ok(()),
            Verdict::Cut => return Err("the peer is cut off by a fault rule".into()),
        }
        let limit = self.options.write_timeout;
        match tokio::time::timeout(limit, sink.send(frame)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("write failed: {e}")),
            Err(_) => Err(format!("no progress writing a chunk for {limit:?}")),
        }
    }
}

/// The sending leader and its term, as every chunk carries them.
type Header = (ServerId, String, Term);

/// (Blocking) read the newest snapshot in chunks and hand each on as an encoded frame.
/// The last chunk leaves only once the store has verified the whole data section.
fn read_chunks(
    snapshots: &dyn SnapshotBackend,
    (from, from_addr, term): Header,
    chunk_bytes: usize,
    pieces: &mpsc::Sender<Piece>,
) -> Result<(), String> {
    let id = snapshots
        .list()
        .map_err(|e| e.to_string())?
        .into_iter()
        .max()
        .ok_or_else(|| "no snapshot stored".to_string())?;
    let Some((meta, summary)) = snapshots.data_summary(id).map_err(|e| e.to_string())? else {
        return send_converted(snapshots, id, (from, from_addr, term), chunk_bytes, pieces);
    };
    let start = Piece::Start {
        index: meta.index.0,
        total_len: summary.len,
    };
    hand_on(pieces, start)?;
    let mut sequence = ChunkSequence::new(from, from_addr, term, meta, (summary.len, summary.crc));
    let mut held: Option<Vec<u8>> = None;
    snapshots
        .load_with(id, &mut |_, data| {
            let SnapshotData::Records(input) = data else {
                return Err("the snapshot is not a record stream".into());
            };
            loop {
                let chunk = read_up_to(&mut *input, chunk_bytes).map_err(|e| e.to_string())?;
                if chunk.is_empty() {
                    return Ok(());
                }
                if let Some(previous) = held.replace(chunk) {
                    hand_on_chunk(pieces, sequence.next_chunk(previous, false))?;
                }
            }
        })
        .map_err(|e| e.to_string())?;
    // Verified: the held chunk ends the image.
    hand_on_chunk(pieces, sequence.next_chunk(held.unwrap_or_default(), true))
}

/// A snapshot whose stored form is not the record stream (a version-1 file): loaded
/// whole and converted, as before chunking, then sent in chunks.
fn send_converted(
    snapshots: &dyn SnapshotBackend,
    id: crate::snapshot_store::SnapshotId,
    (from, from_addr, term): Header,
    chunk_bytes: usize,
    pieces: &mpsc::Sender<Piece>,
) -> Result<(), String> {
    let snapshot = snapshots.load(id).map_err(|e| e.to_string())?;
    let total_len = snapshot.data.len() as u64;
    let start = Piece::Start {
        index: snapshot.meta.index.0,
        total_len,
    };
    hand_on(pieces, start)?;
    let checksum = crc32fast::hash(&snapshot.data);
    let mut sequence =
        ChunkSequence::new(from, from_addr, term, snapshot.meta, (total_len, checksum));
    let count = snapshot.data.len().div_ceil(chunk_bytes).max(1);
    let mut pieces_of = snapshot.data.chunks(chunk_bytes);
    for i in 0..count {
        let bytes = pieces_of.next().unwrap_or_default().to_vec();
        hand_on_chunk(pieces, sequence.next_chunk(bytes, i + 1 == count))?;
    }
    Ok(())
}

fn hand_on_chunk(pieces: &mpsc::Sender<Piece>, chunk: SnapshotChunk) -> Result<(), String> {
    let frame = encode_snapshot_chunk(&chunk).map_err(|e| e.to_string())?;
    drop(chunk);
    hand_on(pieces, Piece::Frame(Bytes::from(frame)))
}

/// Waits for room in the channel (the connection's pace); Err once the transfer ended.
fn hand_on(pieces: &mpsc::Sender<Piece>, piece: Piece) -> Result<(), String> {
    pieces
        .blocking_send(piece)
        .map_err(|_| "the transfer ended".to_string())
}

/// The next `n` bytes of `input` (fewer only at its end).
fn read_up_to(input: &mut dyn Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; n];
    let mut filled = 0;
    while filled < n {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(k) => filled += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(filled);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::snapshot_store::{
        records, DataReader, DataWriter, FileSnapshotStore, LoadError, MemorySnapshotStore,
        SnapshotId,
    };
    use crate::storage_error::StorageError;
    use protocol::codec;
    use protocol::ids::LogIndex;
    use protocol::raft::frame::{decode_wire_frame, WireFrame};
    use protocol::raft::snapshot_chunks::{
        ChunkAssembler, ChunkOutcome, MAX_SNAPSHOT_TRANSFER_BYTES,
    };
    use protocol::raft::{Message, SnapshotMeta};
    use protocol::store::{Command, KvOp, Store};

    const CHUNK: usize = 4096;

    fn meta() -> SnapshotMeta {
        SnapshotMeta {
            index: LogIndex(40),
            term: Term(2),
            configuration: vec![(ServerId("a".into()), "127.0.0.250:8300".into())],
            non_voters: Vec::new(),
        }
    }

    fn save_store(backend: &dyn SnapshotBackend) {
        let mut store = Store::new();
        for i in 1..=40u64 {
            let cmd = Command::Kv(KvOp::Set {
                key: format!("k{i}"),
                value: vec![i as u8; 1000],
                flags: i,
            });
            store.apply(i, &cmd);
        }
        backend
            .save_with(&meta(), &mut |w| {
                records::write_store(&store, w, codec::MAX_DECODE_BYTES)
            })
            .unwrap();
    }

    /// Run the reader on its own thread; (its result, the pieces it handed on).
    fn read_all(
        backend: Arc<dyn SnapshotBackend>,
    ) -> (Result<(), String>, Vec<SnapshotChunk>, u64) {
        let (tx, mut rx) = mpsc::channel(SNAPSHOT_CHUNKS_AHEAD);
        let header = (
            ServerId("a".into()),
            "127.0.0.250:8300".to_string(),
            Term(7),
        );
        let reader = std::thread::spawn(move || read_chunks(backend.as_ref(), header, CHUNK, &tx));
        let mut chunks = Vec::new();
        let mut announced = 0;
        while let Some(piece) = rx.blocking_recv() {
            match piece {
                Piece::Start { index, total_len } => {
                    assert!(chunks.is_empty(), "Start comes first");
                    assert_eq!(index, 40);
                    announced = total_len;
                }
                Piece::Frame(bytes) => match decode_wire_frame(&bytes) {
                    Ok(WireFrame::SnapshotChunk(chunk)) => chunks.push(chunk),
                    other => panic!("not a chunk: {other:?}"),
                },
            }
        }
        (reader.join().unwrap(), chunks, announced)
    }

    /// The chunks assemble into exactly what `load` hands out.
    fn assembles_to_the_stored_image(backend: Arc<dyn SnapshotBackend>) {
        let id = SnapshotId::of(&meta());
        let image = backend.load(id).unwrap().data;
        let (result, chunks, announced) = read_all(backend);
        assert_eq!(result, Ok(()));
        assert_eq!(announced, image.len() as u64);
        assert_eq!(chunks.len(), image.len().div_ceil(CHUNK));
        assert!(chunks
            .iter()
            .all(|c| c.bytes.len() <= CHUNK && c.term == Term(7)));
        let mut assembler = ChunkAssembler::new(MAX_SNAPSHOT_TRANSFER_BYTES);
        let mut outcome = None;
        for chunk in chunks {
            outcome = Some(assembler.on_chunk(1, chunk).unwrap());
        }
        let Some(ChunkOutcome::Complete(frame)) = outcome else {
            panic!("not complete: {outcome:?}");
        };
        let Message::InstallSnapshot {
            term,
            meta: m,
            data,
            ..
        } = frame.msg
        else {
            panic!("{:?}", frame.msg);
        };
        assert_eq!((term, m, data), (Term(7), meta(), image));
    }

    #[test]
    fn a_file_snapshot_streams_in_chunks_that_assemble_into_the_stored_image() {
        let tmp = tempfile::tempdir().unwrap();
        let backend = FileSnapshotStore::open(tmp.path()).unwrap();
        save_store(&backend);
        assembles_to_the_stored_image(Arc::new(backend));
        let memory = MemorySnapshotStore::new();
        save_store(&memory);
        assembles_to_the_stored_image(Arc::new(memory));
    }

    /// A store without a summary of its data (a version-1 file): loaded, converted,
    /// then sent in chunks all the same.
    struct NoSummary(MemorySnapshotStore);

    impl SnapshotBackend for NoSummary {
        fn save_with(
            &self,
            meta: &SnapshotMeta,
            write: DataWriter<'_>,
        ) -> Result<u64, StorageError> {
            self.0.save_with(meta, write)
        }
        fn list(&self) -> Result<Vec<SnapshotId>, StorageError> {
            self.0.list()
        }
        fn load_with(
            &self,
            id: SnapshotId,
            read: DataReader<'_>,
        ) -> Result<SnapshotMeta, LoadError> {
            self.0.load_with(id, read)
        }
        fn quarantine(&self, id: SnapshotId) -> Result<(), StorageError> {
            self.0.quarantine(id)
        }
    }

    #[test]
    fn a_snapshot_without_a_summary_is_converted_and_sent_in_chunks() {
        let backend = NoSummary(MemorySnapshotStore::new());
        save_store(&backend);
        assert_eq!(backend.data_summary(SnapshotId::of(&meta())), Ok(None));
        assembles_to_the_stored_image(Arc::new(backend));
    }

    #[test]
    fn a_snapshot_damaged_on_disk_never_sends_its_last_chunk() {
        let tmp = tempfile::tempdir().unwrap();
        let backend = FileSnapshotStore::open(tmp.path()).unwrap();
        save_store(&backend);
        let path = backend.path_of(SnapshotId::of(&meta()));
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let (result, chunks, _) = read_all(Arc::new(backend));
        assert!(result.is_err(), "{result:?}");
        assert!(!chunks.is_empty(), "chunks before the damage went out");
        assert!(chunks.iter().all(|c| !c.last));
    }

    #[test]
    fn nothing_is_sent_without_a_snapshot() {
        let (result, chunks, _) = read_all(Arc::new(MemorySnapshotStore::new()));
        assert_eq!(result, Err("no snapshot stored".to_string()));
        assert!(chunks.is_empty());
    }
}
