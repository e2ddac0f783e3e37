//! One client connection to a server: calls multiplexed by id over one TCP stream.
//!
//! A writer task owns the write half (so a caller that goes away mid-call can never
//! leave half a frame on the stream), a reader task owns the read half and hands each
//! answer to the caller waiting for its id. Every call ends in an answer, a
//! [`CallError`] or the caller's deadline: when the connection fails, all its waiting
//! calls are told at once.

use super::length_codec;
use crate::faults::{FaultRules, Verdict};
use futures::{SinkExt, StreamExt};
use parking_lot::Mutex;
use protocol::api::frame::{
    decode_reply, encode_call, encode_request_call, Call, CallFrame, StreamKind,
    MAX_CALL_FRAME_BYTES, MAX_REPLY_FRAME_BYTES,
};
use protocol::api::{Answer, Request};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{timeout, timeout_at, Instant};
use tokio_util::bytes::Bytes;
use tokio_util::codec::{FramedRead, FramedWrite};
use tokio_util::sync::CancellationToken;

/// Calls queued for the writer before callers wait for room: the stream is the
/// bottleneck anyway, this only smooths bursts.
const WRITE_QUEUE_FRAMES: usize = 256;

/// Why a call got no answer. What the caller may do next depends on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CallError {
    /// Certainly never reached the server: safe to send elsewhere, writes included.
    NotSent(String),
    /// May have reached the server (the connection failed after the frame was handed
    /// to the socket): a write must not be sent again.
    Lost(String),
    /// The request does not fit in a frame.
    TooLarge { len: usize, limit: usize },
    /// No answer before the deadline (a cancel was sent).
    TimedOut,
}

type Waiter = oneshot::Sender<Result<Answer, CallError>>;

/// What the caller, the reader and the writer share.
struct Shared {
    peer: SocketAddr,
    calls: Mutex<Calls>,
    /// Cancelled when the connection closes, for whatever reason: stops both tasks.
    closed: CancellationToken,
}

#[derive(Default)]
struct Calls {
    waiting: HashMap<u64, Waiter>,
    /// Set once, when the connection closes; later calls are refused as `NotSent`.
    /// Checked under the same lock as `waiting`, so no call can slip in after the
    /// closing sweep and wait for an answer that will never come.
    closed_because: Option<String>,
}

impl Shared {
    fn answer(&self, id: u64, answer: Answer) {
        // An unknown id is a call already cancelled or timed out: nobody waits.
        if let Some(waiter) = self.calls.lock().waiting.remove(&id) {
            let _ = waiter.send(Ok(answer));
        }
    }

    fn fail(&self, id: u64, error: CallError) {
        if let Some(waiter) = self.calls.lock().waiting.remove(&id) {
            let _ = waiter.send(Err(error));
        }
    }

    /// Close the connection: every waiting call fails as `Lost` (its frame may have
    /// been written), both tasks stop, the socket closes when they do.
    fn close(&self, reason: &str) {
        let waiting = {
            let mut calls = self.calls.lock();
            if calls.closed_because.is_some() {
                return;
            }
            calls.closed_because = Some(format!("{}: {reason}", self.peer));
            std::mem::take(&mut calls.waiting)
        };
        if !waiting.is_empty() {
            tracing::debug!(peer = %self.peer, calls = waiting.len(), "rpc connection closed: {reason}");
        }
        for waiter in waiting.into_values() {
            let _ = waiter.send(Err(CallError::Lost(format!("{}: {reason}", self.peer))));
        }
        self.closed.cancel();
    }
}

/// A client's connection to one server. Dropping it closes the connection.
pub(crate) struct Connection {
    shared: Arc<Shared>,
    outgoing: mpsc::Sender<(u64, Bytes)>,
    /// Unbounded so a dropped call (in `Drop`, which cannot wait) always gets its cancel
    /// queued; there is at most one per call that was sent.
    cancels: mpsc::UnboundedSender<u64>,
    next_id: AtomicU64,
    faults: FaultRules,
}

impl Connection {
    /// Connect, name the protocol, start the reader and writer.
    pub(crate) async fn open(
        peer: SocketAddr,
        connect_timeout: Duration,
        faults: FaultRules,
    ) -> Result<Connection, String> {
        let connect = async {
            let mut stream = TcpStream::connect(peer).await?;
            stream.set_nodelay(true)?;
            stream.write_all(&[StreamKind::Api.byte()]).await?;
            Ok::<_, std::io::Error>(stream)
        };
        let stream = match timeout(connect_timeout, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return Err(format!("connecting to {peer}: {e}")),
            Err(_) => return Err(format!("connecting to {peer}: timed out")),
        };
        let (read_half, write_half) = stream.into_split();
        let shared = Arc::new(Shared {
            peer,
            calls: Mutex::new(Calls::default()),
            closed: CancellationToken::new(),
        });
        let (outgoing, outgoing_rx) = mpsc::channel(WRITE_QUEUE_FRAMES);
        let (cancels, cancels_rx) = mpsc::unbounded_channel();
        tokio::spawn(write_calls(
            write_half,
            outgoing_rx,
            cancels_rx,
            shared.clone(),
        ));
        let closing = CloseWhenDropped(shared.clone());
        tokio::spawn(read_replies(read_half, closing, faults.clone()));
        Ok(Connection {
            shared,
            outgoing,
            cancels,
            next_id: AtomicU64::new(1),
            faults,
        })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shared.closed.is_cancelled()
    }

    /// Send `request` and wait for its answer until `deadline`. Dropping the returned
    /// future (the edge's caller went away) cancels the call on the server.
    pub(crate) async fn call(
        &self,
        request: &Request,
        deadline: Instant,
    ) -> Result<Answer, CallError> {
        let peer = self.shared.peer;
        match self.faults.check(peer.ip()) {
            Verdict::Pass => {}
            Verdict::Delay(d) => tokio::time::sleep_until(deadline.min(Instant::now() + d)).await,
            Verdict::Drop => {
                return Err(CallError::NotSent(format!(
                    "{peer}: dropped by a fault rule"
                )))
            }
            Verdict::Cut => {
                self.shared.close("cut by a fault rule");
                return Err(CallError::NotSent(format!("{peer}: cut by a fault rule")));
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let frame = encode_request_call(id, request)
            .map_err(|e| CallError::NotSent(format!("encoding the request: {e}")))?;
        if frame.len() > MAX_CALL_FRAME_BYTES {
            return Err(CallError::TooLarge {
                len: frame.len(),
                limit: MAX_CALL_FRAME_BYTES,
            });
        }
        let (waiter, answer) = oneshot::channel();
        {
            let mut calls = self.shared.calls.lock();
            if let Some(reason) = &calls.closed_because {
                return Err(CallError::NotSent(reason.clone()));
            }
            calls.waiting.insert(id, waiter);
        }
        let mut pending = PendingCall {
            connection: self,
            id,
            sent: false,
        };
        match timeout_at(deadline, self.outgoing.send((id, frame.into()))).await {
            Ok(Ok(())) => pending.sent = true,
            // The writer is gone: the frame never reached it.
            Ok(Err(_)) => return Err(CallError::NotSent(format!("{peer}: connection closed"))),
            Err(_) => return Err(CallError::TimedOut),
        }
        match timeout_at(deadline, answer).await {
            Ok(Ok(result)) => result,
            // The connection dropped the waiter without a word: treat as a failure
            // after sending.
            Ok(Err(_)) => Err(CallError::Lost(format!("{peer}: connection closed"))),
            Err(_) => Err(CallError::TimedOut),
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.shared.close("closed by this agent");
    }
}

/// A call between sending and its answer. If it ends any other way (deadline, the
/// caller's future dropped), its waiter is removed and, if the frame went out, the
/// server is told to drop the work.
struct PendingCall<'a> {
    connection: &'a Connection,
    id: u64,
    sent: bool,
}

impl Drop for PendingCall<'_> {
    fn drop(&mut self) {
        let still_waiting = self
            .connection
            .shared
            .calls
            .lock()
            .waiting
            .remove(&self.id)
            .is_some();
        if still_waiting && self.sent {
            let _ = self.connection.cancels.send(self.id);
        }
    }
}

async fn write_calls(
    write_half: OwnedWriteHalf,
    mut calls: mpsc::Receiver<(u64, Bytes)>,
    mut cancels: mpsc::UnboundedReceiver<u64>,
    shared: Arc<Shared>,
) {
    let mut sink = FramedWrite::new(write_half, length_codec(MAX_CALL_FRAME_BYTES));
    loop {
        tokio::select! {
            biased;
            _ = shared.closed.cancelled() => break,
            Some(id) = cancels.recv() => {
                let cancel = CallFrame { id, call: Call::Cancel };
                let Ok(frame) = encode_call(&cancel) else { continue };
                if let Err(e) = sink.send(Bytes::from(frame)).await {
                    shared.close(&format!("writing: {e}"));
                    break;
                }
            }
            next = calls.recv() => {
                let Some((id, frame)) = next else { break };
                if let Err(e) = sink.send(frame).await {
                    // This frame may be partly written; the ones still queued are not.
                    shared.fail(id, CallError::Lost(format!("{}: writing: {e}", shared.peer)));
                    calls.close();
                    while let Ok((id, _)) = calls.try_recv() {
                        let reason = format!("{}: connection failed before sending", shared.peer);
                        shared.fail(id, CallError::NotSent(reason));
                    }
                    shared.close(&format!("writing: {e}"));
                    break;
                }
            }
        }
    }
}

/// Closes the connection however its reader ends, also when the runtime that runs it
/// stops and drops it mid-read: the waiting calls fail at once instead of at their
/// deadline, and the pool replaces the connection.
struct CloseWhenDropped(Arc<Shared>);

impl Drop for CloseWhenDropped {
    fn drop(&mut self) {
        self.0.close("the connection's reader stopped");
    }
}

/// `closing` is an argument, not a local, so that it closes the connection even when the
/// task is dropped before it first runs.
async fn read_replies(read_half: OwnedReadHalf, closing: CloseWhenDropped, faults: FaultRules) {
    let shared = closing.0.clone();
    let peer = shared.peer;
    let mut frames = FramedRead::new(read_half, length_codec(MAX_REPLY_FRAME_BYTES));
    let mut rules_changed = Box::pin(faults.changed());
    let reason = loop {
        tokio::select! {
            _ = shared.closed.cancelled() => return,
            _ = &mut rules_changed => {
                if faults.check(peer.ip()) == Verdict::Cut {
                    break "cut by a fault rule".to_string();
                }
                rules_changed = Box::pin(faults.changed());
            }
            frame = frames.next() => match frame {
                None => break "the server closed the connection".to_string(),
                Some(Err(e)) => break format!("reading a frame: {e}"),
                Some(Ok(bytes)) => {
                    if faults.check(peer.ip()).blocks() {
                        continue;
                    }
                    match decode_reply(&bytes) {
                        Ok(reply) => shared.answer(reply.id, reply.answer),
                        Err(e) => {
                            tracing::warn!(%peer, "closing the rpc connection: undecodable answer: {e}");
                            break format!("undecodable answer: {e}");
                        }
                    }
                }
            },
        }
    };
    shared.close(&reason);
}
