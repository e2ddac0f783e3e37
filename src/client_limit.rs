//! Open connections (or requests) counted per client IP, shared by both edges: HTTP's
//! `limits.http_max_conns_per_client` and DNS's per-client TCP connection cap. Without
//! a per-client bound one source address could take every slot of an edge's global cap
//! and lock every other client out.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Slots in use by client IP (only IPs holding slots are kept, so the map never outgrows
/// the number of slots in use).
#[derive(Debug)]
pub struct ClientLimiter {
    max_per_client: usize,
    in_flight: Mutex<HashMap<IpAddr, usize>>,
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

    /// A slot for `ip`, or `None` when that client is at its limit.
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

    /// Slots held by `ip`.
    pub fn in_flight(&self, ip: IpAddr) -> usize {
        self.in_flight.lock().get(&ip).copied().unwrap_or(0)
    }

    /// Clients holding slots.
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
