//! The client's connections: at most one per server, opened on first use and kept.
//!
//! Requests to a server share its connection (calls are multiplexed), so a client agent
//! with thousands of blocking watches still holds one socket per server. A closed
//! connection is replaced on the next request; concurrent requests wait for the same
//! connect instead of racing their own.

use super::connection::Connection;
use crate::faults::FaultRules;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{timeout_at, Instant};

/// One server's connection, behind an async lock held while connecting.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

pub(crate) struct Pool {
    slots: Mutex<BTreeMap<SocketAddr, Slot>>,
    /// The server list the slots were last pruned against (compared by pointer).
    pruned_for: Mutex<Option<Arc<Vec<SocketAddr>>>>,
    connect_timeout: Duration,
    faults: FaultRules,
}

impl Pool {
    pub(crate) fn new(connect_timeout: Duration, faults: FaultRules) -> Pool {
        Pool {
            slots: Mutex::new(BTreeMap::new()),
            pruned_for: Mutex::new(None),
            connect_timeout,
            faults,
        }
    }

    /// The open connection to `peer`, connecting first if there is none. The error says
    /// why `peer` cannot be reached now; nothing was sent to it.
    pub(crate) async fn get(
        &self,
        peer: SocketAddr,
        deadline: Instant,
    ) -> Result<Arc<Connection>, String> {
        if self.faults.check(peer.ip()).blocks() {
            // A black-holed peer looks unreachable; we know it without waiting for the
            // connect timeout.
            return Err(format!("{peer}: unreachable (fault rule)"));
        }
        let slot = self.slots.lock().entry(peer).or_default().clone();
        let Ok(mut slot) = timeout_at(deadline, slot.lock()).await else {
            return Err(format!("{peer}: no time left to connect"));
        };
        if let Some(connection) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(connection.clone());
        }
        *slot = None;
        let left = deadline.saturating_duration_since(Instant::now());
        let connection = Arc::new(
            Connection::open(peer, self.connect_timeout.min(left), self.faults.clone()).await?,
        );
        *slot = Some(connection.clone());
        Ok(connection)
    }

    /// Close the connections to servers that left `servers` (when the list changed).
    /// Calls in flight on them finish first: each holds its connection.
    pub(crate) fn prune(&self, servers: &Arc<Vec<SocketAddr>>) {
        {
            let mut pruned_for = self.pruned_for.lock();
            if pruned_for.as_ref().is_some_and(|p| Arc::ptr_eq(p, servers)) {
                return;
            }
            *pruned_for = Some(servers.clone());
        }
        self.slots.lock().retain(|peer, _| servers.contains(peer));
    }

    /// Servers with an open connection, in address order.
    pub(crate) fn connected(&self) -> Vec<SocketAddr> {
        self.slots
            .lock()
            .iter()
            .filter(|(_, slot)| {
                slot.try_lock()
                    .map(|c| c.as_ref().is_some_and(|c| !c.is_closed()))
                    .unwrap_or(false)
            })
            .map(|(peer, _)| *peer)
            .collect()
    }
}
