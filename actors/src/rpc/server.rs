//! The server side of the server port: accept connections, answer each call with the
//! server's own endpoint, concurrently, and send the answers back by id.
//!
//! Blocking reads may park for minutes, so every call runs in its own task and a
//! connection carries many at once; a cancel, or the connection closing, drops the
//! call's future, which unregisters a parked read at once. Limits: connections per
//! server, calls in flight per connection (over it: an error answer, never a hang),
//! frame sizes (over them: the connection closes), time to name the protocol.

use super::length_codec;
use crate::endpoint::Api;
use crate::faults::{FaultRules, Verdict};
use crate::peer_net::{serve_raft_stream, RaftInbox};
use futures::{SinkExt, StreamExt};
use protocol::api::frame::{
    decode_call, encode_reply, Call, ReplyFrame, StreamKind, MAX_CALL_FRAME_BYTES,
    MAX_REPLY_FRAME_BYTES,
};
use protocol::api::{Answer, Request, RequestError};
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncReadExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use tokio_util::bytes::Bytes;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

/// Limits of an [`RpcServer`].
#[derive(Debug, Clone)]
pub struct RpcServerOptions {
    /// Connections open at once; more are closed on accept (the client tries another
    /// server). Each client agent needs one.
    pub max_connections: usize,
    /// Calls in flight on one connection. A client agent multiplexes every blocking
    /// watch of its local clients over its one connection, so this is generous.
    pub max_in_flight_per_connection: usize,
    /// How long a new connection may take to send its protocol byte.
    pub handshake_timeout: Duration,
    /// Fault rules consulted per peer (test clusters; none by default).
    pub faults: FaultRules,
    /// Where `'R'` connections (Raft between servers) deliver their messages; None
    /// refuses them (a server port without a Raft group, as in tests).
    pub raft: Option<RaftInbox>,
}

impl Default for RpcServerOptions {
    fn default() -> RpcServerOptions {
        RpcServerOptions {
            max_connections: 1024,
            max_in_flight_per_connection: 4096,
            handshake_timeout: Duration::from_secs(10),
            faults: FaultRules::default(),
            raft: None,
        }
    }
}

/// Answers queued for the writer; callers wait for room (backpressure on a slow peer).
const REPLY_QUEUE_FRAMES: usize = 256;

/// The text of the answer to a call over the in-flight limit.
pub(crate) fn too_many_calls_text(limit: usize) -> String {
    format!("too many requests in flight on this connection (limit {limit})")
}

/// A running server port. Dropping it (or [`RpcServer::stop`]) stops accepting and
/// closes every connection, dropping their calls.
pub struct RpcServer {
    local_addr: SocketAddr,
    stop: CancellationToken,
    connection_slots: Arc<Semaphore>,
    max_connections: usize,
}

impl RpcServer {
    /// Bind `addr` and serve `api` on it.
    pub async fn start(
        addr: SocketAddr,
        api: Api,
        options: RpcServerOptions,
    ) -> io::Result<RpcServer> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        let max_connections = options.max_connections.max(1);
        let connection_slots = Arc::new(Semaphore::new(max_connections));
        let context = Arc::new(Context { api, options });
        tokio::spawn(accept(
            listener,
            context,
            connection_slots.clone(),
            stop.clone(),
        ));
        tracing::info!(%local_addr, "rpc server listening");
        Ok(RpcServer {
            local_addr,
            stop,
            connection_slots,
            max_connections,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connections open right now.
    pub fn open_connections(&self) -> usize {
        self.max_connections - self.connection_slots.available_permits()
    }

    pub fn stop(&self) {
        self.stop.cancel();
    }
}

impl Drop for RpcServer {
    fn drop(&mut self) {
        self.stop();
    }
}

struct Context {
    api: Api,
    options: RpcServerOptions,
}

async fn accept(
    listener: TcpListener,
    context: Arc<Context>,
    slots: Arc<Semaphore>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: pause instead of spinning.
                tracing::warn!("rpc accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::warn!(%peer, limit = context.options.max_connections, "refusing rpc connection: too many open");
            continue;
        };
        if context.options.faults.check(peer.ip()) == Verdict::Cut {
            continue;
        }
        tokio::spawn(serve(
            stream,
            peer,
            context.clone(),
            stop.child_token(),
            slot,
        ));
    }
}

/// One connection: read its protocol byte, then serve it (or close it).
async fn serve(
    mut stream: TcpStream,
    peer: SocketAddr,
    context: Arc<Context>,
    stop: CancellationToken,
    _slot: OwnedSemaphorePermit,
) {
    let _ = stream.set_nodelay(true);
    let mut kind = [0u8; 1];
    let timeout = context.options.handshake_timeout;
    match tokio::time::timeout(timeout, stream.read_exact(&mut kind)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => {
            tracing::debug!(%peer, "rpc connection closed before naming its protocol: {e}");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "closing rpc connection: no protocol byte within {timeout:?}");
            return;
        }
    }
    match StreamKind::from_byte(kind[0]) {
        Some(StreamKind::Api) => serve_api(stream, peer, &context, stop).await,
        Some(StreamKind::Raft) => match &context.options.raft {
            Some(inbox) => {
                let faults = context.options.faults.clone();
                serve_raft_stream(stream, peer, inbox.clone(), faults, stop).await
            }
            None => {
                tracing::warn!(%peer, "closing connection: this server port serves no Raft group")
            }
        },
        None => {
            tracing::warn!(%peer, "closing connection: unknown protocol byte {:#04x}", kind[0])
        }
    }
}

/// The calls in flight on one connection.
#[derive(Default)]
struct InFlight {
    by_call: HashMap<u64, AbortHandle>,
    by_task: HashMap<tokio::task::Id, u64>,
}

async fn serve_api(
    stream: TcpStream,
    peer: SocketAddr,
    context: &Context,
    stop: CancellationToken,
) {
    let faults = &context.options.faults;
    let limit = context.options.max_in_flight_per_connection;
    let (read_half, write_half) = stream.into_split();
    let mut frames = FramedRead::new(read_half, length_codec(MAX_CALL_FRAME_BYTES));
    let (replies, replies_rx) = mpsc::channel(REPLY_QUEUE_FRAMES);
    let mut writer = tokio::spawn(write_replies(write_half, replies_rx, peer));
    // Dropping the set (when this connection ends) aborts every call still running.
    let mut calls = JoinSet::new();
    let mut in_flight = InFlight::default();
    let mut rules_changed = Box::pin(faults.changed());
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = &mut writer => break,
            _ = &mut rules_changed => {
                if faults.check(peer.ip()) == Verdict::Cut {
                    tracing::info!(%peer, "closing rpc connection: cut by a fault rule");
                    break;
                }
                rules_changed = Box::pin(faults.changed());
            }
            Some(done) = calls.join_next_with_id() => {
                let task = match &done {
                    Ok((task, _)) => *task,
                    Err(e) => e.id(),
                };
                if let Some(id) = in_flight.by_task.remove(&task) {
                    if in_flight.by_call.get(&id).is_some_and(|h| h.id() == task) {
                        in_flight.by_call.remove(&id);
                    }
                    if matches!(&done, Err(e) if e.is_panic()) {
                        tracing::error!(%peer, id, "rpc call panicked");
                        let answer = Err(RequestError::internal("the server failed answering"));
                        let _ = replies.send(reply_frame(id, answer)).await;
                    }
                }
            }
            frame = frames.next() => {
                let bytes = match frame {
                    None => break,
                    Some(Ok(bytes)) => bytes,
                    Some(Err(e)) => {
                        tracing::warn!(%peer, "closing rpc connection: bad frame: {e}");
                        break;
                    }
                };
                match faults.check(peer.ip()) {
                    Verdict::Cut => break,
                    Verdict::Drop => continue,
                    Verdict::Pass | Verdict::Delay(_) => {}
                }
                let frame = match decode_call(&bytes) {
                    Ok(frame) => frame,
                    Err(e) => {
                        tracing::warn!(%peer, "closing rpc connection: undecodable frame: {e}");
                        break;
                    }
                };
                match frame.call {
                    Call::Cancel => {
                        if let Some(handle) = in_flight.by_call.remove(&frame.id) {
                            handle.abort();
                        }
                    }
                    Call::Request(_) if in_flight.by_call.contains_key(&frame.id) => {
                        // Two live calls with one id: answers could not be told apart.
                        tracing::warn!(%peer, id = frame.id, "closing rpc connection: call id reused while in flight");
                        break;
                    }
                    Call::Request(_) if in_flight.by_call.len() >= limit => {
                        let answer = Err(RequestError::Internal(too_many_calls_text(limit)));
                        if replies.send(reply_frame(frame.id, answer)).await.is_err() {
                            break;
                        }
                    }
                    Call::Request(request) => {
                        let answer = answer_call(frame.id, request, context.api.clone(), replies.clone(), faults.clone(), peer);
                        let handle = calls.spawn(answer);
                        in_flight.by_task.insert(handle.id(), frame.id);
                        in_flight.by_call.insert(frame.id, handle);
                    }
                }
            }
        }
    }
    writer.abort();
}

/// Answer one call and queue its answer (unless a fault rule holds or drops it).
async fn answer_call(
    id: u64,
    request: Request,
    api: Api,
    replies: mpsc::Sender<Bytes>,
    faults: FaultRules,
    peer: SocketAddr,
) {
    let answer = api.ask(request).await;
    let frame = reply_frame(id, answer);
    match faults.check(peer.ip()) {
        Verdict::Pass => {}
        Verdict::Delay(d) => tokio::time::sleep(d).await,
        Verdict::Drop | Verdict::Cut => return,
    }
    let _ = replies.send(frame).await;
}

/// The encoded answer; an answer too large for a frame becomes an error answer, so the
/// client never receives a frame it must refuse (which would close the connection and
/// fail every other call on it).
fn reply_frame(id: u64, answer: Answer) -> Bytes {
    let encoded = encode_reply(&ReplyFrame { id, answer });
    let error = match encoded {
        Ok(bytes) if bytes.len() <= MAX_REPLY_FRAME_BYTES => return bytes.into(),
        Ok(bytes) => format!(
            "answer of {} bytes exceeds the rpc limit of {MAX_REPLY_FRAME_BYTES} bytes",
            bytes.len()
        ),
        Err(e) => format!("encoding the answer failed: {e}"),
    };
    let answer = Err(RequestError::Internal(error));
    match encode_reply(&ReplyFrame { id, answer }) {
        Ok(bytes) => bytes.into(),
        // An error of a short string always encodes; nothing better to send if not.
        Err(_) => Bytes::new(),
    }
}

async fn write_replies(
    write_half: OwnedWriteHalf,
    mut replies: mpsc::Receiver<Bytes>,
    peer: SocketAddr,
) {
    let mut sink = FramedWrite::new(write_half, length_codec(MAX_REPLY_FRAME_BYTES));
    while let Some(frame) = replies.recv().await {
        if let Err(e) = sink.feed(frame).await {
            tracing::debug!(%peer, "rpc write failed: {e}");
            return;
        }
        // Answers that are ready together go out in one flush.
        while let Ok(frame) = replies.try_recv() {
            if let Err(e) = sink.feed(frame).await {
                tracing::debug!(%peer, "rpc write failed: {e}");
                return;
            }
        }
        if let Err(e) = SinkExt::<Bytes>::flush(&mut sink).await {
            tracing::debug!(%peer, "rpc write failed: {e}");
            return;
        }
    }
}
