//! UDP serving: a few tight tasks share one socket, each with its own receive and send
//! buffers and RNG. A query that needs the recursors is spawned (bounded by a semaphore)
//! so one slow upstream never stalls the loop. Nothing here ends the loop but shutdown.

use super::core::{DnsCore, Handled};
use super::wire::Transport;
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Largest query datagram we read; anything longer is cut and fails to parse (FORMERR).
const MAX_QUERY_DATAGRAM: usize = 4096;

pub async fn serve(
    socket: Arc<UdpSocket>,
    core: Arc<DnsCore>,
    recursions: Arc<Semaphore>,
    stop: CancellationToken,
) {
    let mut rng = StdRng::from_rng(&mut rand::rng());
    let mut request = vec![0u8; MAX_QUERY_DATAGRAM];
    let mut response = Vec::with_capacity(512);
    loop {
        let received = tokio::select! {
            _ = stop.cancelled() => return,
            received = socket.recv_from(&mut request) => received,
        };
        let (len, peer) = match received {
            Ok(received) => received,
            // ICMP errors of earlier sends surface here on some systems; keep serving.
            Err(err) => {
                tracing::debug!(error = %err, "dns udp receive failed");
                continue;
            }
        };
        // A bug must cost one query, never the loop.
        let handled = std::panic::catch_unwind(AssertUnwindSafe(|| {
            core.handle(&request[..len], Transport::Udp, &mut rng, &mut response)
        }));
        let Ok(handled) = handled else {
            tracing::error!(%peer, "dns query handling panicked; query dropped");
            continue;
        };
        match handled {
            Handled::Reply => {
                if let Err(err) = socket.send_to(&response, peer).await {
                    tracing::debug!(error = %err, %peer, "dns udp send failed");
                }
            }
            Handled::Drop => {}
            Handled::Pending(pending) => {
                let Ok(permit) = recursions.clone().try_acquire_owned() else {
                    tracing::debug!(%peer, "dns recursion limit reached; query dropped");
                    continue;
                };
                let (socket, core) = (socket.clone(), core.clone());
                tokio::spawn(async move {
                    let mut out = Vec::with_capacity(512);
                    if let Handled::Reply = core.finish(pending, Transport::Udp, &mut out).await {
                        let _ = socket.send_to(&out, peer).await;
                    }
                    drop(permit);
                });
            }
        }
    }
}
