//! The stream side of gossip: one length-prefixed frame per TCP connection each way
//! (a push-pull request and its reply, or one large message), every read bounded in
//! size and time.

use super::gossip::Inner;
use futures::{SinkExt, StreamExt};
use protocol::swim::{Message, Transport, MAX_STREAM_BYTES};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, LengthDelimitedCodec};
use tracing::debug;

/// The serf LAN port, used when a join address names none.
pub const DEFAULT_SERF_LAN_PORT: u16 = 8301;

/// At most this many inbound stream connections at once; more are closed at accept.
pub const MAX_INBOUND_STREAMS: usize = 256;

/// An input for the core from outside the driver.
pub(super) enum Inbound {
    Message(SocketAddr, Message),
    StreamFailed(SocketAddr),
}

fn framed(stream: TcpStream) -> Framed<TcpStream, LengthDelimitedCodec> {
    let codec = LengthDelimitedCodec::builder()
        .max_frame_length(MAX_STREAM_BYTES)
        .new_codec();
    Framed::new(stream, codec)
}

/// Accept stream connections until the actor stops.
pub(super) async fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    let open = Arc::new(tokio::sync::Semaphore::new(MAX_INBOUND_STREAMS));
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = inner.shutdown.cancelled() => return,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                debug!(error = %e, "gossip: accept failed");
                continue;
            }
        };
        if inner.faults.check(peer.ip()).blocks() {
            continue; // dropped: the peer sees its stream fail
        }
        let Ok(permit) = open.clone().try_acquire_owned() else {
            debug!(%peer, "gossip: too many stream connections; closed");
            continue;
        };
        let inner = inner.clone();
        tokio::spawn(async move {
            serve_stream(inner, stream, peer).await;
            drop(permit);
        });
    }
}

/// One inbound connection: a frame in, and for a push-pull request the core's reply out.
async fn serve_stream(inner: Arc<Inner>, stream: TcpStream, peer: SocketAddr) {
    let timeout = inner.stream_timeout();
    let mut framed = framed(stream);
    let frame = match tokio::time::timeout(timeout, framed.next()).await {
        Ok(Some(Ok(frame))) => frame,
        Ok(Some(Err(e))) => return debug!(%peer, error = %e, "gossip: bad stream frame"),
        Ok(None) | Err(_) => return,
    };
    let msg = match Message::decode(&frame, Transport::Stream) {
        Ok(msg) => msg,
        Err(e) => return debug!(%peer, error = %e, "gossip: undecodable stream message"),
    };
    let wants_reply = matches!(msg, Message::PushPull { reply: false, .. });
    if !wants_reply {
        return inner.input(Inbound::Message(peer, msg));
    }
    let reply = inner.push_pull_request(peer, msg);
    let reply = match tokio::time::timeout(timeout, reply).await {
        Ok(Ok(reply)) => reply,
        _ => return debug!(%peer, "gossip: no push-pull reply to send"),
    };
    if let Ok(bytes) = reply.encode() {
        let _ =
            tokio::time::timeout(timeout, framed.send(tokio_util::bytes::Bytes::from(bytes))).await;
    }
}

/// Send one stream message to `to`; for a push-pull request, hand the reply to the core.
/// Any failure is reported to the core (`stream_failed`), which ends a pending join.
pub(super) async fn send_stream(inner: Arc<Inner>, to: SocketAddr, msg: Message) {
    let wants_reply = matches!(msg, Message::PushPull { reply: false, .. });
    match exchange(&inner, to, msg, wants_reply).await {
        Ok(Some(reply)) => inner.input(super::net::Inbound::Message(to, reply)),
        Ok(None) => {}
        Err(reason) => {
            debug!(%to, %reason, "gossip: stream exchange failed");
            inner.note_stream_error(to, reason);
            inner.input(Inbound::StreamFailed(to));
        }
    }
}

async fn exchange(
    inner: &Inner,
    to: SocketAddr,
    msg: Message,
    wants_reply: bool,
) -> Result<Option<Message>, String> {
    let timeout = inner.stream_timeout();
    if inner.faults.check(to.ip()).blocks() {
        return Err("dropped by a fault rule".to_string());
    }
    let bytes = msg.encode().map_err(|e| e.to_string())?;
    let stream = tokio::time::timeout(timeout, TcpStream::connect(to))
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| format!("dial tcp {to}: {e}"))?;
    let mut framed = framed(stream);
    tokio::time::timeout(timeout, framed.send(tokio_util::bytes::Bytes::from(bytes)))
        .await
        .map_err(|_| "write timed out".to_string())?
        .map_err(|e| e.to_string())?;
    if !wants_reply {
        return Ok(None);
    }
    let frame = tokio::time::timeout(timeout, framed.next())
        .await
        .map_err(|_| "no reply in time".to_string())?
        .ok_or_else(|| "closed before replying".to_string())?
        .map_err(|e| e.to_string())?;
    if inner.faults.check(to.ip()).blocks() {
        return Err("reply dropped by a fault rule".to_string());
    }
    Message::decode(&frame, Transport::Stream)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// A join address: `ip`, `ip:port`, `[v6]:port`, or a host name (resolved, first
/// address), with the serf LAN port when none is given.
pub async fn resolve(text: &str) -> std::io::Result<SocketAddr> {
    let text = text.trim();
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    if let Ok(ip) = text.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, DEFAULT_SERF_LAN_PORT));
    }
    let with_port = match text.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() => text.to_string(),
        _ => format!("{text}:{DEFAULT_SERF_LAN_PORT}"),
    };
    tokio::net::lookup_host(with_port)
        .await?
        .next()
        .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no address"))
}
