//! Per-client concurrency: Consul's `limits.http_max_conns_per_client`. The server counts
//! open connections per client IP (a connection holds its slot for its whole life, so
//! parked blocking queries, slow bodies, bodies actix drains, slow readers all count);
//! a connection over the limit is answered 429 and closed, other clients are unaffected.
//! Where no connection hook runs (in-process tests), requests in flight are counted.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Consul's default `limits.http_max_conns_per_client`.
pub const MAX_CONCURRENT_REQUESTS_PER_CLIENT: usize = 200;

/// Consul's text for a client over the limit (429).
pub const TOO_MANY_REQUESTS_TEXT: &str =
    "Your IP is issuing too many concurrent connections, please rate limit your calls";

/// In-flight request counts by client IP (only IPs with requests in flight are kept, so
/// the map never outgrows the number of concurrent requests).
#[derive(Debug)]
pub struct ClientLimiter {
    max_per_client: usize,
    in_flight: Mutex<HashMap<IpAddr, usize>>,
}

/// What the connection hook decided for one connection (kept in its connection data).
#[derive(Debug)]
pub struct ConnectionSlot(pub Option<ClientSlot>);

/// The `on_connect` hook: take a slot for the connection's peer. Anything that is not a
/// plain TCP stream (or has no peer address) is left alone.
pub fn on_connect(
    limiter: &Arc<ClientLimiter>,
    connection: &dyn std::any::Any,
    data: &mut actix_web::dev::Extensions,
) {
    let Some(stream) = connection.downcast_ref::<actix_web::rt::net::TcpStream>() else {
        return;
    };
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    data.insert(ConnectionSlot(limiter.try_acquire(peer.ip())));
}

/// One admitted connection or request; dropping it frees the slot.
#[derive(Debug)]
pub struct ClientSlot {
    limiter: Arc<ClientLimiter>,
    ip: IpAddr,
}

impl ClientLimiter {
    pub fn new(max_per_client: usize) -> Arc<ClientLimiter> {
        Arc::new(ClientLimiter {
            max_per_client,
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// A slot for a request from `ip`, or `None` when that client is at its limit.
    pub fn try_acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ClientSlot> {
        let mut in_flight = self.in_flight.lock();
        let count = in_flight.entry(ip).or_insert(0);
        if *count >= self.max_per_client {
            if *count == 0 {
                in_flight.remove(&ip);
            }
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            limiter: self.clone(),
            ip,
        })
    }

    /// Requests in flight for `ip`.
    pub fn in_flight(&self, ip: IpAddr) -> usize {
        self.in_flight.lock().get(&ip).copied().unwrap_or(0)
    }

    /// Clients with requests in flight.
    pub fn clients(&self) -> usize {
        self.in_flight.lock().len()
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut in_flight = self.limiter.in_flight.lock();
        if let Some(count) = in_flight.get_mut(&self.ip) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                in_flight.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_is_per_client_and_slots_free_on_drop() {
        let limiter = ClientLimiter::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let first = limiter.try_acquire(a).expect("first");
        let second = limiter.try_acquire(a).expect("second");
        assert!(limiter.try_acquire(a).is_none(), "third is over the limit");
        let other = limiter
            .try_acquire(b)
            .expect("another client is unaffected");
        assert_eq!((limiter.in_flight(a), limiter.in_flight(b)), (2, 1));
        drop(first);
        let again = limiter.try_acquire(a).expect("a freed slot is reusable");
        drop((second, again, other));
        assert_eq!(limiter.clients(), 0, "idle clients are forgotten");
        let none = ClientLimiter::new(0);
        assert!(none.try_acquire(a).is_none());
        assert_eq!(none.clients(), 0);
    }
}
