//! The client's connections: at most one per server and calling thread, opened on first
//! use and kept.
//!
//! Requests from one thread to a server share a connection (calls are multiplexed), so
//! a client agent with thousands of blocking watches still holds a few sockets per
//! server (one per HTTP worker, DNS thread or arbiter that forwards). One connection per
//! thread rather than per agent because a connection's reader and writer are tasks of
//! the runtime that opened it: a call from another thread crossed to it and back, two
//! wake-ups of a sleeping thread (10-30 us each on a 2-core machine) on every call,
//! depending on which thread happened to connect first. A closed connection is replaced
//! on the next request; concurrent requests wait for the same connect instead of
//! racing their own.

use super::connection::Connection;
use crate::faults::FaultRules;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::Duration;
use tokio::time::{timeout_at, Instant};

/// One server's connection, behind an async lock held while connecting.
type Slot = Arc<tokio::sync::Mutex<Option<Arc<Connection>>>>;

/// Whether a slot holds an open connection; None while it is locked (connecting).
fn holds_open(slot: &Slot) -> Option<bool> {
    let connection = slot.try_lock().ok()?;
    Some(connection.as_ref().is_some_and(|c| !c.is_closed()))
}

pub(crate) struct Pool {
    /// Per server, each calling thread's connection.
    slots: Mutex<BTreeMap<SocketAddr, HashMap<ThreadId, Slot>>>,
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

    /// This thread's open connection to `peer`, connecting first if there is none. The
    /// error says why `peer` cannot be reached now; nothing was sent to it.
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
        let thread = std::thread::current().id();
        let slot = {
            let mut slots = self.slots.lock();
            let threads = slots.entry(peer).or_default();
            if !threads.contains_key(&thread) {
                // Forget closed connections of other threads (a worker that was
                // restarted has a new thread id; its old slot would stay forever).
                threads.retain(|_, slot| holds_open(slot) != Some(false));
            }
            threads.entry(thread).or_default().clone()
        };
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

    /// Servers with an open connection (from any thread), in address order.
    pub(crate) fn connected(&self) -> Vec<SocketAddr> {
        self.slots
            .lock()
            .iter()
            .filter(|(_, threads)| threads.values().any(|s| holds_open(s) == Some(true)))
            .map(|(peer, _)| *peer)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    const WAIT: Duration = Duration::from_secs(10);

    /// `pool.get` on a new thread with its own runtime, which stops once it has the
    /// connection.
    fn connect_on_a_thread_of_its_own(pool: &Arc<Pool>, peer: SocketAddr) -> Arc<Connection> {
        let pool = pool.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime
                .block_on(pool.get(peer, Instant::now() + WAIT))
                .unwrap()
        })
        .join()
        .unwrap()
    }

    #[tokio::test]
    async fn each_thread_gets_its_own_connection_and_a_dead_threads_is_dropped() {
        let listener = TcpListener::bind("127.0.0.130:0").await.unwrap();
        let peer = listener.local_addr().unwrap();
        let _server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let pool = Arc::new(Pool::new(WAIT, FaultRules::default()));
        let here = pool.get(peer, Instant::now() + WAIT).await.unwrap();
        let again = pool.get(peer, Instant::now() + WAIT).await.unwrap();
        assert!(
            Arc::ptr_eq(&here, &again),
            "one thread reuses its connection"
        );

        // Another thread with its own runtime: its own connection, closed when that
        // runtime stops (its reader task is dropped with it).
        let there = connect_on_a_thread_of_its_own(&pool, peer);
        assert!(!Arc::ptr_eq(&here, &there), "another thread connects anew");
        assert!(
            there.is_closed(),
            "the stopped runtime's connection is closed"
        );
        assert_eq!(pool.connected(), vec![peer]);

        // The next thread that connects forgets the dead thread's slot.
        connect_on_a_thread_of_its_own(&pool, peer);
        let slots = pool.slots.lock()[&peer].len();
        assert_eq!(
            slots, 2,
            "this thread's and the last one's, not the closed one"
        );
    }
}
