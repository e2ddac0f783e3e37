//! PeerNet: Raft messages between servers over the server port (8300).
//!
//! ```text
//! RaftCore ──Output::Send{to,msg}──▶ PeerNet::send ──try_send──▶ link queue (bounded)
//!                                                          writer task per peer: connect,
//!                                                          'R', frames ══TCP══▶ RpcServer
//! RpcServer ('R' stream) ── decode frame ──▶ RaftInbox (bounded) ──▶ RaftCore (stream)
//! ```
//!
//! Messages are one-way: a reply travels on the replier's own outgoing connection to the
//! asker, which is why every frame names its sender and the address it listens on
//! (`protocol::raft::frame`). One outgoing connection per peer; the actor never waits
//! for the network: it hands the message to the peer's bounded queue and moves on. A
//! full queue drops the NEW message, and a peer that cannot be reached has its queued
//! messages discarded while the writer backs off (Raft re-sends heartbeats, appends and
//! votes by itself, so a lost message costs a retry, never safety). Every frame consults
//! the agent's [`FaultRules`] for the peer's IP, like the API paths of the server port.
//!
//! `Output::InstallSnapshot`: the newest durable snapshot is loaded off the actor thread
//! (a blocking task) and sent whole as ONE frame, so an image over
//! `MAX_RAFT_FRAME_BYTES` (64 MiB) cannot be sent yet (logged); chunking is left for
//! later.

use crate::faults::{FaultRules, Verdict};
use crate::snapshot_store::SnapshotBackend;
use futures::{SinkExt, StreamExt};
use protocol::api::frame::StreamKind;
use protocol::ids::{ServerId, Term};
use protocol::raft::frame::{
    decode_raft_frame, encode_raft_frame, RaftFrame, MAX_RAFT_FRAME_BYTES,
};
use protocol::raft::Message;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::mpsc;
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

/// Where the server port delivers decoded Raft frames (RaftCore reads the other end).
#[derive(Clone, Debug)]
pub struct RaftInbox(mpsc::Sender<RaftFrame>);

impl RaftInbox {
    pub(crate) fn channel() -> (RaftInbox, mpsc::Receiver<RaftFrame>) {
        let (tx, rx) = mpsc::channel(RAFT_INBOX_MESSAGES);
        (RaftInbox(tx), rx)
    }

    /// Waits for room (backpressure on that one connection); Err once Raft has stopped.
    pub async fn deliver(&self, frame: RaftFrame) -> Result<(), ()> {
        self.0.send(frame).await.map_err(|_| ())
    }
}

/// Serve one inbound `'R'` connection (its protocol byte already read): decode frames
/// and hand them to Raft until the peer closes, a frame is bad, a fault rule cuts the
/// peer, or `stop`.
pub async fn serve_raft_stream(
    stream: TcpStream,
    peer: SocketAddr,
    inbox: RaftInbox,
    faults: FaultRules,
    stop: CancellationToken,
) {
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
        let frame = match decode_raft_frame(&bytes) {
            Ok(frame) => frame,
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
    links: BTreeMap<ServerId, Link>,
    /// Addresses of senders that are not (yet) in our configuration: a server being
    /// caught up must answer a leader it has no entry for.
    learned: BTreeMap<ServerId, String>,
    stop: CancellationToken,
}

struct Link {
    addr: String,
    queue: mpsc::Sender<Message>,
}

impl PeerNet {
    pub(crate) fn new(
        self_id: ServerId,
        self_addr: String,
        faults: FaultRules,
        snapshots: Arc<dyn SnapshotBackend>,
    ) -> PeerNet {
        PeerNet {
            self_id,
            self_addr,
            faults,
            snapshots,
            links: BTreeMap::new(),
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

    /// Queue `msg` for `to` without waiting. Dropped (Raft retries) when the queue is
    /// full or no address is known.
    pub(crate) fn send(&mut self, to: ServerId, configured: Option<&str>, msg: Message) {
        let Some(addr) = self.address_of(&to, configured) else {
            tracing::debug!(%to, "raft message dropped: no address known for this server");
            return;
        };
        let queue = self.link(&to, &addr);
        match queue.try_send(msg) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(%to, "raft message dropped: the peer's queue is full");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.links.remove(&to);
            }
        }
    }

    /// Send `to` our newest durable snapshot (loaded and encoded off the actor thread).
    pub(crate) fn send_snapshot(&mut self, to: ServerId, configured: Option<&str>, term: Term) {
        let Some(addr) = self.address_of(&to, configured) else {
            return;
        };
        let queue = self.link(&to, &addr);
        let snapshots = self.snapshots.clone();
        let leader = self.self_id.clone();
        tokio::spawn(async move {
            let loaded = tokio::task::spawn_blocking(move || {
                let newest = snapshots
                    .list()
                    .map_err(|e| e.to_string())?
                    .into_iter()
                    .max()
                    .ok_or_else(|| "no snapshot stored".to_string())?;
                snapshots.load(newest).map_err(|e| e.to_string())
            })
            .await;
            let snapshot = match loaded {
                Ok(Ok(snapshot)) => snapshot,
                Ok(Err(e)) => {
                    tracing::warn!(%to, "snapshot for peer not sent: {e}");
                    return;
                }
                Err(_) => return,
            };
            tracing::info!(%to, index = snapshot.meta.index.0, bytes = snapshot.data.len(), "sending snapshot to peer");
            let msg = Message::InstallSnapshot {
                term,
                leader,
                meta: snapshot.meta,
                data: snapshot.data,
            };
            if queue.try_send(msg).is_err() {
                tracing::debug!(%to, "snapshot for peer dropped: its queue is full");
            }
        });
    }

    /// The queue of `to`'s link, (re)starting it when new or its address changed.
    fn link(&mut self, to: &ServerId, addr: &str) -> mpsc::Sender<Message> {
        if let Some(link) = self.links.get(to) {
            if link.addr == addr && !link.queue.is_closed() {
                return link.queue.clone();
            }
        }
        let (queue, rx) = mpsc::channel(PEER_QUEUE_MESSAGES);
        let writer = Writer {
            peer: to.clone(),
            addr: addr.to_string(),
            from: self.self_id.clone(),
            from_addr: self.self_addr.clone(),
            faults: self.faults.clone(),
            stop: self.stop.child_token(),
        };
        tokio::spawn(writer.run(rx));
        // Replacing a link drops its sender: the old writer ends.
        self.links.insert(
            to.clone(),
            Link {
                addr: addr.to_string(),
                queue: queue.clone(),
            },
        );
        queue
    }

    /// Close every connection (the server stops).
    pub(crate) fn stop(&mut self) {
        self.stop.cancel();
        self.links.clear();
    }
}

impl Drop for PeerNet {
    fn drop(&mut self) {
        self.stop.cancel();
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
}

type Sink = FramedWrite<TcpStream, LengthDelimitedCodec>;

impl Writer {
    async fn run(self, mut queue: mpsc::Receiver<Message>) {
        let Ok(target) = self.addr.parse::<SocketAddr>() else {
            tracing::warn!(peer = %self.peer, addr = %self.addr, "raft peer address does not parse; its messages are dropped");
            while queue.recv().await.is_some() {}
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
            if self.faults.check(target.ip()).blocks() {
                continue;
            }
            let source = self.from_addr.parse::<SocketAddr>().ok().map(|a| a.ip());
            let connected =
                match tokio::time::timeout(PEER_CONNECT_TIMEOUT, connect(source, target)).await {
                    Ok(Ok(sink)) => Some(sink),
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
                Some(mut sink) => {
                    backoff = PEER_RECONNECT_FIRST;
                    tracing::debug!(peer = %self.peer, %target, "raft connection open");
                    self.pump(target.ip(), &mut sink, first, &mut queue).await;
                }
                None => {
                    // Whatever queued meanwhile is stale by the time we could send it.
                    while queue.try_recv().is_ok() {}
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(PEER_RECONNECT_MAX);
                }
            }
        }
    }

    /// Send messages on one connection until it fails, a fault rule cuts the peer, the
    /// queue closes or `stop`.
    async fn pump(
        &self,
        ip: IpAddr,
        sink: &mut Sink,
        first: Message,
        queue: &mut mpsc::Receiver<Message>,
    ) {
        let mut next = Some(first);
        loop {
            let msg = match next.take() {
                Some(msg) => msg,
                None => {
                    tokio::select! {
                        _ = self.stop.cancelled() => return,
                        msg = queue.recv() => match msg {
                            Some(msg) => msg,
                            None => return,
                        },
                    }
                }
            };
            if !self.feed(ip, sink, msg).await {
                return;
            }
            // Messages ready together go out in one flush.
            while let Ok(msg) = queue.try_recv() {
                if !self.feed(ip, sink, msg).await {
                    return;
                }
            }
            if let Err(e) = SinkExt::<tokio_util::bytes::Bytes>::flush(sink).await {
                tracing::debug!(peer = %self.peer, "raft write failed: {e}");
                return;
            }
        }
    }

    /// Encode and queue one frame on the connection; false: the connection is done.
    async fn feed(&self, ip: IpAddr, sink: &mut Sink, msg: Message) -> bool {
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
        let bytes = match encode_raft_frame(&frame) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(peer = %self.peer, "raft message not sent: {e}");
                return true;
            }
        };
        match sink.feed(tokio_util::bytes::Bytes::from(bytes)).await {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(peer = %self.peer, "raft write failed: {e}");
                false
            }
        }
    }
}

/// Connect from our own server address when we have one, so the peer sees (and its
/// fault rules match) our address rather than whatever the kernel picks (on loopback,
/// 127.0.0.1 for every server).
async fn connect(source: Option<IpAddr>, target: SocketAddr) -> std::io::Result<Sink> {
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
    Ok(FramedWrite::new(stream, raft_codec()))
}
