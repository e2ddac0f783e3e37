//! PeerNet: Raft messages between servers over the server port (8300).
//!
//! ```text
//! RaftCore ──Output::Send{to,msg}──▶ PeerNet::send ──writer idle: try_write══TCP══▶ RpcServer
//!                                          └──otherwise: try_send──▶ link queue (bounded)
//!                                                          writer task per peer: connect,
//!                                                          'R', frames ══TCP══▶ RpcServer
//! RpcServer ('R' stream) ── decode frame ──▶ RaftInbox (bounded) ──▶ RaftCore (stream)
//! ```
//!
//! Messages are one-way: a reply travels on the replier's own outgoing connection to the
//! asker, which is why every frame names its sender and the address it listens on
//! (`protocol::raft::frame`). One outgoing connection per peer; the actor never waits
//! for the network. When the peer's writer is idle (connected, nothing queued or half
//! written) the actor writes the frame to the socket itself, without blocking
//! (`try_write`): a lone AppendEntries or acknowledgement leaves before the actor's
//! handler returns, not after a task switch (the write path's latency at one client).
//! Whatever the socket does not take at once goes to the writer, which finishes it
//! before anything else, so frames never reorder. Otherwise the actor hands the
//! message to the peer's bounded queue and moves on. A full queue drops the NEW
//! message, and a peer that cannot be reached has its queued messages discarded while
//! the writer backs off (Raft re-sends heartbeats, appends and votes by itself, so a
//! lost message costs a retry, never safety). Every frame consults the agent's
//! [`FaultRules`] for the peer's IP, like the API paths of the server port (the fast
//! path only writes when the rules let the frame pass untouched).
//!
//! `Output::InstallSnapshot`: the newest durable snapshot streams from the snapshot
//! store in bounded chunks on a connection of its own ([`crate::snapshot_sender`]), so
//! heartbeats keep flowing on the message link meanwhile. Inbound chunks (on any `'R'`
//! connection) go to the server's one [`ChunkAssembler`] (in the [`RaftInbox`]); Raft
//! sees a single `Message::InstallSnapshot` once the image is whole and its length and
//! crc32 verified, within [`MAX_SNAPSHOT_TRANSFER_BYTES`].

use crate::faults::{FaultRules, Verdict};
use crate::snapshot_sender::{SnapshotSendOptions, Transfer};
use crate::snapshot_store::SnapshotBackend;
use futures::StreamExt;
use parking_lot::Mutex;
use protocol::api::frame::StreamKind;
use protocol::ids::{ServerId, Term};
use protocol::raft::frame::{
    decode_wire_frame, encode_raft_frame, RaftFrame, WireFrame, MAX_RAFT_FRAME_BYTES,
};
use protocol::raft::snapshot_chunks::{
    ChunkAssembler, ChunkError, ChunkOutcome, SnapshotChunk, MAX_SNAPSHOT_TRANSFER_BYTES,
};
use protocol::raft::Message;
use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{mpsc, Notify};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};
use tokio_util::sync::CancellationToken;

/// Messages queued for one peer before new ones are dropped.
pub const PEER_QUEUE_MESSAGES: usize = 256;
/// Decoded messages waiting for RaftCore before the connections reading them wait.
pub const RAFT_INBOX_MESSAGES: usize = 1024;
/// Longest wait for a TCP connect to a peer.
pub const PEER_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// First wait before reconnecting to a peer that could not be reached, doubled up to
/// [`PEER_RECONNECT_MAX`].
pub const PEER_RECONNECT_FIRST: Duration = Duration::from_millis(50);
pub const PEER_RECONNECT_MAX: Duration = Duration::from_secs(2);
/// Peers learned from inbound frames (not yet in our configuration) that we remember.
const MAX_LEARNED_PEERS: usize = 64;

fn raft_codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_RAFT_FRAME_BYTES)
        .new_codec()
}

/// Where the server port delivers decoded Raft frames (RaftCore reads the other end),
/// and where snapshot chunks from any connection are assembled (one transfer at a time
/// per server, see `protocol::raft::snapshot_chunks`).
#[derive(Clone)]
pub struct RaftInbox {
    frames: mpsc::Sender<RaftFrame>,
    snapshots: Arc<Mutex<ChunkAssembler>>,
}

impl std::fmt::Debug for RaftInbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftInbox").finish_non_exhaustive()
    }
}

impl RaftInbox {
    pub(crate) fn channel() -> (RaftInbox, mpsc::Receiver<RaftFrame>) {
        let (tx, rx) = mpsc::channel(RAFT_INBOX_MESSAGES);
        let snapshots = ChunkAssembler::new(MAX_SNAPSHOT_TRANSFER_BYTES);
        let inbox = RaftInbox {
            frames: tx,
            snapshots: Arc::new(Mutex::new(snapshots)),
        };
        (inbox, rx)
    }

    /// Waits for room (backpressure on that one connection); Err once Raft has stopped.
    pub async fn deliver(&self, frame: RaftFrame) -> Result<(), ()> {
        self.frames.send(frame).await.map_err(|_| ())
    }

    /// One chunk that arrived on connection `stream` (appending it copies one chunk
    /// under the lock; the image's verification runs there once, at its end).
    fn take_chunk(&self, stream: u64, chunk: SnapshotChunk) -> Result<ChunkOutcome, ChunkError> {
        self.snapshots.lock().on_chunk(stream, chunk)
    }

    fn stream_closed(&self, stream: u64) -> bool {
        self.snapshots.lock().on_stream_closed(stream)
    }

    /// Test probe: the snapshot transfer being assembled and its bytes so far.
    #[cfg(test)]
    pub(crate) fn snapshot_in_progress(
        &self,
    ) -> Option<(protocol::raft::snapshot_chunks::TransferKey, u64)> {
        self.snapshots.lock().in_progress()
    }
}

/// Numbers inbound `'R'` connections, so that a snapshot transfer belongs to one.
static NEXT_STREAM: AtomicU64 = AtomicU64::new(1);

/// Drops the unfinished snapshot transfer of a connection when it ends, however it ends.
struct StreamGuard<'a> {
    inbox: &'a RaftInbox,
    stream: u64,
    peer: SocketAddr,
}

impl Drop for StreamGuard<'_> {
    fn drop(&mut self) {
        if self.inbox.stream_closed(self.stream) {
            tracing::info!(peer = %self.peer, "unfinished snapshot transfer dropped: its connection closed");
        }
    }
}

/// Serve one inbound `'R'` connection (its protocol byte already read): decode frames
/// and hand them to Raft until the peer closes, a frame is bad, a snapshot chunk is
/// refused, a fault rule cuts the peer, or `stop`.
pub async fn serve_raft_stream(
    stream: TcpStream,
    peer: SocketAddr,
    inbox: RaftInbox,
    faults: FaultRules,
    stop: CancellationToken,
) {
    let guard = StreamGuard {
        inbox: &inbox,
        stream: NEXT_STREAM.fetch_add(1, Ordering::Relaxed),
        peer,
    };
    let mut frames = FramedRead::new(stream, raft_codec());
    loop {
        let frame = tokio::select! {
            _ = stop.cancelled() => return,
            frame = frames.next() => frame,
        };
        let bytes = match frame {
            None => return,
            Some(Ok(bytes)) => bytes,
            Some(Err(e)) => {
                tracing::warn!(%peer, "closing raft connection: bad frame: {e}");
                return;
            }
        };
        match faults.check(peer.ip()) {
            Verdict::Cut => return,
            Verdict::Drop => continue,
            Verdict::Pass | Verdict::Delay(_) => {}
        }
        let frame = match decode_wire_frame(&bytes) {
            Ok(WireFrame::Message(frame)) => frame,
            Ok(WireFrame::SnapshotChunk(chunk)) => match inbox.take_chunk(guard.stream, chunk) {
                Ok(ChunkOutcome::Accepted | ChunkOutcome::Duplicate) => continue,
                Ok(ChunkOutcome::Complete(frame)) => {
                    if let Message::InstallSnapshot { meta, data, .. } = &frame.msg {
                        tracing::info!(%peer, index = meta.index.0, bytes = data.len(), "snapshot received from peer");
                    }
                    frame
                }
                Err(e) => {
                    // The sender stops at the closed connection; the leader retries.
                    tracing::warn!(%peer, "closing raft connection: snapshot chunk refused: {e}");
                    return;
                }
            },
            Err(e) => {
                tracing::warn!(%peer, "closing raft connection: undecodable frame: {e}");
                return;
            }
        };
        if inbox.deliver(frame).await.is_err() {
            return; // Raft stopped
        }
    }
}

/// The outgoing half: one bounded queue and writer task per peer. Owned by RaftCore.
pub(crate) struct PeerNet {
    self_id: ServerId,
    self_addr: String,
    faults: FaultRules,
    snapshots: Arc<dyn SnapshotBackend>,
    snapshot_send: SnapshotSendOptions,
    links: BTreeMap<ServerId, Link>,
    /// The snapshot transfer running to each follower (at most one).
    transfers: BTreeMap<ServerId, RunningTransfer>,
    /// Addresses of senders that are not (yet) in our configuration: a server being
    /// caught up must answer a leader it has no entry for.
    learned: BTreeMap<ServerId, String>,
    stop: CancellationToken,
}

#[derive(Clone)]
struct Link {
    addr: String,
    /// The peer's IP when `addr` parses (the fast path consults the fault rules with it).
    ip: Option<IpAddr>,
    queue: mpsc::Sender<Message>,
    shared: Arc<LinkShared>,
}

/// What a link's writer task shares with [`PeerNet::send`]'s fast path (see the module
/// docs).
#[derive(Default)]
struct LinkShared {
    state: Mutex<LinkState>,
    /// Wakes an idle writer: the fast path left it bytes to finish or broke the connection.
    wake: Notify,
}

#[derive(Default)]
struct LinkState {
    /// The open connection while its writer is idle; the fast path writes on it.
    idle: Option<TcpStream>,
    /// The end of a frame the socket did not take at once: the writer sends it first.
    rest: Vec<u8>,
    /// A fast-path write failed: the writer drops the connection (Raft re-sends).
    broken: bool,
    /// Messages in the writer's queue that it has not yet taken with the connection in
    /// hand; while any waits, the fast path is closed, so frames keep their order.
    queued: usize,
}

/// See [`PeerNet::sender`]. A message sent after the link was replaced (its writer
/// ended) is dropped, as Raft expects of a network.
pub(crate) struct PeerSender {
    link: Link,
    from: ServerId,
    from_addr: String,
    faults: FaultRules,
}

impl PeerSender {
    pub(crate) fn send(&self, msg: Message) {
        let _ = self
            .link
            .deliver(&self.from, &self.from_addr, &self.faults, msg);
    }
}

impl Link {
    /// Write `msg` on the idle connection now, else queue it for the writer; dropped
    /// (Raft retries) when the queue is full. Err: the writer has ended.
    fn deliver(
        &self,
        from: &ServerId,
        from_addr: &str,
        faults: &FaultRules,
        msg: Message,
    ) -> Result<(), ()> {
        let Some(msg) = self.send_now(from, from_addr, faults, msg) else {
            return Ok(());
        };
        // Counted before it is queued, so the writer never takes it uncounted.
        self.shared.state.lock().queued += 1;
        let queued = self.queue.try_send(msg);
        if queued.is_err() {
            let mut state = self.shared.state.lock();
            state.queued = state.queued.saturating_sub(1);
        }
        match queued {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(peer = %self.addr, "raft message dropped: the peer's queue is full");
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
        }
    }

    /// Write `msg` on the idle connection now (see the module docs); the message back
    /// when the writer must take it (busy, not connected, a fault rule for the peer).
    fn send_now(
        &self,
        from: &ServerId,
        from_addr: &str,
        faults: &FaultRules,
        msg: Message,
    ) -> Option<Message> {
        let ip = self.ip?;
        let mut state = self.shared.state.lock();
        if state.queued > 0 || state.broken || !state.rest.is_empty() {
            return Some(msg);
        }
        let Some(stream) = state.idle.as_ref() else {
            return Some(msg);
        };
        if faults.check(ip) != Verdict::Pass {
            return Some(msg);
        }
        let frame = RaftFrame {
            from: from.clone(),
            from_addr: from_addr.to_string(),
            msg,
        };
        let bytes = match length_delimited(&frame) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(peer = %self.addr, "raft message not sent: {e}");
                return None;
            }
        };
        let mut written = 0;
        while written < bytes.len() {
            match stream.try_write(&bytes[written..]) {
                Ok(0) => {
                    // A socket that takes nothing of a non-empty write is done.
                    state.broken = true;
                    self.shared.wake.notify_one();
                    return None;
                }
                Ok(n) => written += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    state.rest = bytes[written..].to_vec();
                    self.shared.wake.notify_one();
                    return None;
                }
                Err(e) => {
                    tracing::debug!(peer = %self.addr, "raft write failed: {e}");
                    state.broken = true;
                    self.shared.wake.notify_one();
                    return None;
                }
            }
        }
        None
    }
}

/// One frame as the length-delimited codec puts it on the wire (a 4-byte big-endian
/// length, then the frame).
fn length_delimited(frame: &RaftFrame) -> Result<Vec<u8>, String> {
    let body = encode_raft_frame(frame).map_err(|e| e.to_string())?;
    let len = u32::try_from(body.len()).map_err(|_| "raft frame too large".to_string())?;
    let mut bytes = Vec::with_capacity(4 + body.len());
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(&body);
    Ok(bytes)
}

struct RunningTransfer {
    term: Term,
    addr: String,
    task: tokio::task::JoinHandle<()>,
}

impl PeerNet {
    pub(crate) fn new(
        self_id: ServerId,
        self_addr: String,
        faults: FaultRules,
        snapshots: Arc<dyn SnapshotBackend>,
        snapshot_send: SnapshotSendOptions,
    ) -> PeerNet {
        PeerNet {
            self_id,
            self_addr,
            faults,
            snapshots,
            snapshot_send,
            links: BTreeMap::new(),
            transfers: BTreeMap::new(),
            learned: BTreeMap::new(),
            stop: CancellationToken::new(),
        }
    }

    /// Remember where a sender listens (from its frame).
    pub(crate) fn learn(&mut self, id: &ServerId, addr: &str) {
        if self.learned.get(id).map(String::as_str) == Some(addr) {
            return;
        }
        if self.learned.len() >= MAX_LEARNED_PEERS && !self.learned.contains_key(id) {
            return;
        }
        self.learned.insert(id.clone(), addr.to_string());
    }

    /// The address of `to`: the configuration's (`configured`) or else a learned one.
    fn address_of(&self, to: &ServerId, configured: Option<&str>) -> Option<String> {
        configured
            .map(str::to_string)
            .or_else(|| self.learned.get(to).cloned())
    }

    /// Send `msg` to `to` without waiting: written at once when the peer's writer is
    /// idle, else queued. Dropped (Raft retries) when the queue is full or no address is
    /// known.
    pub(crate) fn send(&mut self, to: ServerId, configured: Option<&str>, msg: Message) {
        let Some(addr) = self.address_of(&to, configured) else {
            tracing::debug!(%to, "raft message dropped: no address known for this server");
            return;
        };
        self.link(&to, &addr);
        let Some(link) = self.links.get(&to) else {
            return;
        };
        if link
            .deliver(&self.self_id, &self.self_addr, &self.faults, msg)
            .is_err()
        {
            self.links.remove(&to);
        }
    }

    /// A handle that sends to `to` from any thread, in order with [`PeerNet::send`]
    /// (the log store thread sends the replies riding a persist with it). None when no
    /// address is known for `to`.
    pub(crate) fn sender(&mut self, to: &ServerId, configured: Option<&str>) -> Option<PeerSender> {
        let addr = self.address_of(to, configured)?;
        self.link(to, &addr);
        Some(PeerSender {
            link: self.links.get(to)?.clone(),
            from: self.self_id.clone(),
            from_addr: self.self_addr.clone(),
            faults: self.faults.clone(),
        })
    }

    /// Send `to` our newest durable snapshot, in chunks, unless a transfer of this term
    /// to it is still running (see [`crate::snapshot_sender`]).
    pub(crate) fn send_snapshot(&mut self, to: ServerId, configured: Option<&str>, term: Term) {
        let Some(addr) = self.address_of(&to, configured) else {
            return;
        };
        if let Some(running) = self.transfers.get(&to) {
            if !running.task.is_finished() && running.term == term && running.addr == addr {
                tracing::debug!(%to, "snapshot for peer already on its way");
                return;
            }
            running.task.abort();
        }
        let Ok(target) = addr.parse::<SocketAddr>() else {
            tracing::warn!(%to, %addr, "snapshot for peer not sent: its address does not parse");
            return;
        };
        let transfer = Transfer {
            to: to.clone(),
            target,
            from: self.self_id.clone(),
            from_addr: self.self_addr.clone(),
            term,
            snapshots: self.snapshots.clone(),
            faults: self.faults.clone(),
            options: self.snapshot_send.clone(),
        };
        let task = tokio::spawn(transfer.run());
        self.transfers
            .insert(to, RunningTransfer { term, addr, task });
    }

    /// Test probe: whether a snapshot transfer to `to` is running.
    #[cfg(test)]
    pub(crate) fn transfer_running(&self, to: &ServerId) -> bool {
        self.transfers
            .get(to)
            .is_some_and(|t| !t.task.is_finished())
    }

    /// (Re)start `to`'s link when new or its address changed.
    fn link(&mut self, to: &ServerId, addr: &str) {
        if let Some(link) = self.links.get(to) {
            if link.addr == addr && !link.queue.is_closed() {
                return;
            }
        }
        let (queue, rx) = mpsc::channel(PEER_QUEUE_MESSAGES);
        let shared = Arc::new(LinkShared::default());
        let writer = Writer {
            peer: to.clone(),
            addr: addr.to_string(),
            from: self.self_id.clone(),
            from_addr: self.self_addr.clone(),
            faults: self.faults.clone(),
            stop: self.stop.child_token(),
            shared: shared.clone(),
        };
        tokio::spawn(writer.run(rx));
        // Replacing a link drops its sender: the old writer ends.
        self.links.insert(
            to.clone(),
            Link {
                addr: addr.to_string(),
                ip: addr.parse::<SocketAddr>().ok().map(|a| a.ip()),
                queue,
                shared,
            },
        );
    }

    /// Close every connection (the server stops).
    pub(crate) fn stop(&mut self) {
        self.stop.cancel();
        self.links.clear();
        for (_, transfer) in std::mem::take(&mut self.transfers) {
            transfer.task.abort();
        }
    }
}

impl Drop for PeerNet {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The writer task of one peer.
struct Writer {
    peer: ServerId,
    addr: String,
    from: ServerId,
    from_addr: String,
    faults: FaultRules,
    stop: CancellationToken,
    shared: Arc<LinkShared>,
}

pub(crate) type Sink = FramedWrite<TcpStream, LengthDelimitedCodec>;

/// What woke an idle writer.
enum Woken {
    Message(Message),
    /// The fast path left bytes to finish or broke the connection.
    Nudged,
    /// The queue closed or the server stops.
    Done,
}

impl Writer {
    async fn run(self, mut queue: mpsc::Receiver<Message>) {
        let Ok(target) = self.addr.parse::<SocketAddr>() else {
            tracing::warn!(peer = %self.peer, addr = %self.addr, "raft peer address does not parse; its messages are dropped");
            while queue.recv().await.is_some() {
                self.took_message();
            }
            return;
        };
        let mut backoff = PEER_RECONNECT_FIRST;
        loop {
            let first = tokio::select! {
                _ = self.stop.cancelled() => return,
                msg = queue.recv() => match msg {
                    Some(msg) => msg,
                    None => return, // link replaced or PeerNet gone
                },
            };
            self.took_message();
            if self.faults.check(target.ip()).blocks() {
                continue;
            }
            let source = self.from_addr.parse::<SocketAddr>().ok().map(|a| a.ip());
            let connected =
                match tokio::time::timeout(PEER_CONNECT_TIMEOUT, connect_stream(source, target))
                    .await
                {
                    Ok(Ok(stream)) => Some(stream),
                    Ok(Err(e)) => {
                        tracing::debug!(peer = %self.peer, %target, "raft connect failed: {e}");
                        None
                    }
                    Err(_) => {
                        tracing::debug!(peer = %self.peer, %target, "raft connect timed out");
                        None
                    }
                };
            match connected {
                Some(stream) => {
                    backoff = PEER_RECONNECT_FIRST;
                    tracing::debug!(peer = %self.peer, %target, "raft connection open");
                    self.pump(target.ip(), stream, first, &mut queue).await;
                    // Whatever happened, the connection is ours again and is dropped.
                    let mut state = self.shared.state.lock();
                    state.idle = None;
                    state.rest.clear();
                    state.broken = false;
                }
                None => {
                    // Whatever queued meanwhile is stale by the time we could send it.
                    while queue.try_recv().is_ok() {
                        self.took_message();
                    }
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(PEER_RECONNECT_MAX);
                }
            }
        }
    }

    /// A message left the queue (see `LinkState::queued`).
    fn took_message(&self) {
        let mut state = self.shared.state.lock();
        state.queued = state.queued.saturating_sub(1);
    }

    /// Send messages on one connection until it fails, a fault rule cuts the peer, the
    /// queue closes or `stop`. While there is nothing to send, the connection waits in
    /// the shared state, where the fast path writes on it.
    async fn pump(
        &self,
        ip: IpAddr,
        mut stream: TcpStream,
        first: Message,
        queue: &mut mpsc::Receiver<Message>,
    ) {
        let mut next = Some(first);
        let mut buf = Vec::new();
        loop {
            let msg = match next.take() {
                Some(msg) => msg,
                None => match self.idle(stream, queue).await {
                    None => return,
                    Some((back, woken)) => {
                        stream = back;
                        match woken {
                            Woken::Message(msg) => msg,
                            Woken::Nudged => continue,
                            Woken::Done => return,
                        }
                    }
                },
            };
            buf.clear();
            if !self.feed(ip, &mut buf, msg).await {
                return;
            }
            // Messages ready together go out in one write.
            while let Ok(msg) = queue.try_recv() {
                self.took_message();
                if !self.feed(ip, &mut buf, msg).await {
                    return;
                }
            }
            if !buf.is_empty() {
                if let Err(e) = stream.write_all(&buf).await {
                    tracing::debug!(peer = %self.peer, "raft write failed: {e}");
                    return;
                }
            }
        }
    }

    /// Lend the connection to the fast path until a message, a nudge or the end; then
    /// take it back and finish what the fast path left. None: the connection is done.
    async fn idle(
        &self,
        stream: TcpStream,
        queue: &mut mpsc::Receiver<Message>,
    ) -> Option<(TcpStream, Woken)> {
        self.shared.state.lock().idle = Some(stream);
        let woken = tokio::select! {
            _ = self.stop.cancelled() => Woken::Done,
            msg = queue.recv() => msg.map_or(Woken::Done, Woken::Message),
            _ = self.shared.wake.notified() => Woken::Nudged,
        };
        let (stream, rest, broken) = {
            let mut state = self.shared.state.lock();
            if matches!(woken, Woken::Message(_)) {
                // Taken together with the connection: the fast path stays closed.
                state.queued = state.queued.saturating_sub(1);
            }
            let stream = state.idle.take()?;
            (
                stream,
                std::mem::take(&mut state.rest),
                std::mem::take(&mut state.broken),
            )
        };
        if broken {
            return None;
        }
        let mut stream = stream;
        if !rest.is_empty() {
            if let Err(e) = stream.write_all(&rest).await {
                tracing::debug!(peer = %self.peer, "raft write failed: {e}");
                return None;
            }
        }
        Some((stream, woken))
    }

    /// Encode one frame onto `buf`; false: the connection is done.
    async fn feed(&self, ip: IpAddr, buf: &mut Vec<u8>, msg: Message) -> bool {
        match self.faults.check(ip) {
            Verdict::Pass => {}
            Verdict::Delay(d) => tokio::time::sleep(d).await,
            Verdict::Drop => return true,
            Verdict::Cut => return false,
        }
        let frame = RaftFrame {
            from: self.from.clone(),
            from_addr: self.from_addr.clone(),
            msg,
        };
        match length_delimited(&frame) {
            Ok(bytes) => buf.extend_from_slice(&bytes),
            Err(e) => tracing::warn!(peer = %self.peer, "raft message not sent: {e}"),
        }
        true
    }
}

/// Connect from our own server address when we have one, so the peer sees (and its
/// fault rules match) our address rather than whatever the kernel picks (on loopback,
/// 127.0.0.1 for every server).
pub(crate) async fn connect(source: Option<IpAddr>, target: SocketAddr) -> std::io::Result<Sink> {
    let stream = connect_stream(source, target).await?;
    Ok(FramedWrite::new(stream, raft_codec()))
}

/// [`connect`] without the framing: the peer's writer and the fast path write frames
/// themselves ([`length_delimited`]).
async fn connect_stream(source: Option<IpAddr>, target: SocketAddr) -> std::io::Result<TcpStream> {
    let bound = source
        .filter(|ip| ip.is_ipv4() == target.is_ipv4())
        .and_then(|ip| {
            let socket = if ip.is_ipv4() {
                TcpSocket::new_v4()
            } else {
                TcpSocket::new_v6()
            }
            .ok()?;
            socket.bind(SocketAddr::new(ip, 0)).ok()?;
            Some(socket)
        });
    let mut stream = match bound {
        Some(socket) => socket.connect(target).await?,
        None => TcpStream::connect(target).await?,
    };
    let _ = stream.set_nodelay(true);
    stream.write_all(&[StreamKind::Raft.byte()]).await?;
    Ok(stream)
}
