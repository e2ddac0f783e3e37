//! Per-client concurrency: Consul's `limits.http_max_conns_per_client`. The server counts
//! open connections per client IP (a connection holds its slot for its whole life, so
//! parked blocking queries, slow bodies, bodies actix drains, slow readers all count);
//! a connection over the limit is answered 429 and closed, other clients are unaffected.
//! Where no connection hook runs (in-process tests), requests in flight are counted.

pub use crate::client_limit::{ClientLimiter, ClientSlot};
use std::sync::Arc;

/// Consul's default `limits.http_max_conns_per_client`.
pub const MAX_CONCURRENT_REQUESTS_PER_CLIENT: usize = 200;

/// Consul's text for a client over the limit (429).
pub const TOO_MANY_REQUESTS_TEXT: &str =
    "Your IP is issuing too many concurrent connections, please rate limit your calls";

/// What the connection hook decided for one connection (kept in its connection data).
#[derive(Debug)]
pub struct ConnectionSlot(pub Option<ClientSlot>);

/// The `on_connect` hook: take a slot for the connection's peer (none without a peer
/// address).
pub fn on_connect(
    limiter: &Arc<ClientLimiter>,
    peer: Option<std::net::SocketAddr>,
    data: &mut actix_web::dev::Extensions,
) {
    if let Some(peer) = peer {
        data.insert(ConnectionSlot(limiter.try_acquire(peer.ip())));
    }
}
