//! DNS over TCP: 2-byte length framing (messages are at most 64 KiB by construction), one
//! task per connection (bounded in number, in total and per client IP), queries answered
//! in order, connections closed after an idle timeout (no complete query read, or no
//! answer written, for that long).

use super::core::{DnsCore, Handled};
use super::wire::Transport;
use crate::client_limit::ClientLimiter;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// How many TCP connections may be open: in total (shared by every listener), and per
/// client IP. A connection holds one slot of each for its whole life.
#[derive(Clone)]
pub struct ConnectionLimits {
    pub global: Arc<Semaphore>,
    pub per_client: Arc<ClientLimiter>,
}

pub async fn serve(
    listener: TcpListener,
    core: Arc<DnsCore>,
    connections: ConnectionLimits,
    idle_timeout: Duration,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(err) => {
                // Out of file descriptors and the like: back off a little, keep serving.
                tracing::debug!(error = %err, "dns tcp accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // The client's own cap first: a client over it is closed (by dropping the stream)
        // without touching the global cap, which it therefore can never fill alone.
        let Some(client_slot) = connections.per_client.try_acquire(peer.ip()) else {
            tracing::debug!(%peer, "dns tcp per-client connection limit reached; closing");
            continue;
        };
        let Ok(permit) = connections.global.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "dns tcp connection limit reached; closing");
            continue;
        };
        let (core, stop) = (core.clone(), stop.clone());
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = connection(stream, core, idle_timeout) => {}
            }
            drop((permit, client_slot));
        });
    }
}

async fn connection(mut stream: TcpStream, core: Arc<DnsCore>, idle_timeout: Duration) {
    let _ = stream.set_nodelay(true);
    let mut rng = StdRng::from_rng(&mut rand::rng());
    let mut request = Vec::with_capacity(512);
    let mut out = Vec::with_capacity(512);
    let mut frame = Vec::with_capacity(514);
    loop {
        // Idle, closed, or a short read: close the connection.
        let mut length = [0u8; 2];
        if !matches!(
            timeout(idle_timeout, stream.read_exact(&mut length)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        // A 2-byte length caps every query at 64 KiB; the buffer grows only as needed.
        request.resize(usize::from(u16::from_be_bytes(length)), 0);
        let body = request.as_mut_slice();
        if !matches!(
            timeout(idle_timeout, stream.read_exact(body)).await,
            Ok(Ok(_))
        ) {
            return;
        }
        let handled = match core.handle(body, Transport::Tcp, &mut rng, &mut out) {
            Handled::Pending(pending) => core.finish(pending, Transport::Tcp, &mut out).await,
            other => other,
        };
        match handled {
            Handled::Reply => {
                let Ok(length) = u16::try_from(out.len()) else {
                    return;
                };
                frame.clear();
                frame.extend_from_slice(&length.to_be_bytes());
                frame.extend_from_slice(&out);
                // A client that sends queries but never reads the answers must not hold
                // its slot forever once the socket buffers are full.
                if !matches!(
                    timeout(idle_timeout, stream.write_all(&frame)).await,
                    Ok(Ok(()))
                ) {
                    return;
                }
            }
            Handled::Drop | Handled::Pending(_) => return,
        }
    }
}
