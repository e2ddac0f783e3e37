//! Session TTL timers on the leader (Consul's `session_ttl.go`).
//!
//! Every session with a TTL has a deadline of TTL x [`SESSION_TTL_MULTIPLIER`] (Consul's
//! grace: the TTL is a lower bound) from its creation or its last renew. Deadlines live
//! only in the leader's memory; when one passes, the leader proposes
//! `SessionOp::Expire`, a replicated command that invalidates the session on every
//! server alike. A server that is not the ready leader keeps no deadlines, so a new
//! leader starts every timer afresh, in full, when it finds the sessions in its store
//! (Consul's `initializeSessionTimers`); a renew answered by it resets one.
//!
//! The loop looks at the store every [`TICK`]: it arms sessions it has not seen (new
//! ones, or all of them after a change of leader) and forgets sessions that are gone.
//! It rescans the sessions only when the sessions table index moved.

use crate::ServerHandle;
use parking_lot::Mutex;
use protocol::store::session::SESSION_TTL_MULTIPLIER;
use protocol::store::{Command, SessionOp, Store, Table};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the leader checks its session deadlines (TTLs are at least 10 s).
pub const TICK: Duration = Duration::from_millis(100);

/// The leader's session deadlines. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct SessionTimers {
    inner: Arc<Mutex<Timers>>,
}

#[derive(Default)]
struct Timers {
    /// Session ID → when it expires.
    deadlines: HashMap<String, Instant>,
    /// Expiries proposed and not answered yet.
    expiring: HashSet<String>,
    /// Whether the last tick was on the ready leader.
    leading: bool,
    /// Sessions table index at the last scan.
    scanned_index: Option<u64>,
}

fn grace(ttl_ms: u64) -> Duration {
    Duration::from_millis(ttl_ms.saturating_mul(SESSION_TTL_MULTIPLIER))
}

impl SessionTimers {
    pub fn new() -> SessionTimers {
        SessionTimers::default()
    }

    /// Reset a session's timer (renew, on the leader): it now expires TTL x 2 from now.
    pub fn renew(&self, id: &str, ttl_ms: u64) {
        if ttl_ms == 0 {
            return;
        }
        let deadline = Instant::now() + grace(ttl_ms);
        self.inner.lock().deadlines.insert(id.to_string(), deadline);
    }

    /// When `id` expires, if it has a timer here.
    pub fn deadline(&self, id: &str) -> Option<Instant> {
        self.inner.lock().deadlines.get(id).copied()
    }

    /// One look at `store` at `now`: the sessions whose deadline passed (each answered
    /// once until [`SessionTimers::expired`] says its proposal ended).
    pub fn tick(&self, store: &Store, leading: bool, now: Instant) -> Vec<String> {
        let mut t = self.inner.lock();
        if !leading {
            if t.leading || !t.deadlines.is_empty() {
                *t = Timers::default();
            }
            return Vec::new();
        }
        if !t.leading {
            // Leadership (re)gained: every timer starts in full.
            *t = Timers {
                leading: true,
                ..Timers::default()
            };
        }
        let index = store.table_index(Table::Sessions);
        if t.scanned_index != Some(index) {
            t.scanned_index = Some(index);
            let live: HashSet<&str> = store
                .sessions()
                .into_iter()
                .filter(|s| s.ttl_ms > 0)
                .map(|s| {
                    t.deadlines
                        .entry(s.id.clone())
                        .or_insert_with(|| now + grace(s.ttl_ms));
                    s.id.as_str()
                })
                .collect();
            t.deadlines.retain(|id, _| live.contains(id.as_str()));
            t.expiring.retain(|id| live.contains(id.as_str()));
        }
        let due: Vec<String> = t
            .deadlines
            .iter()
            .filter(|(id, deadline)| **deadline <= now && !t.expiring.contains(*id))
            .map(|(id, _)| id.clone())
            .collect();
        t.expiring.extend(due.iter().cloned());
        due
    }

    /// The expiry proposed for `id` ended (applied or failed): a failed one is proposed
    /// again at the next tick while its deadline stays passed.
    pub fn expired(&self, id: &str) {
        self.inner.lock().expiring.remove(id);
    }

    /// Run the timers for `server` until it stops: every [`TICK`], propose the expiry of
    /// each session whose deadline passed (only on the ready leader).
    pub async fn run(self, server: ServerHandle) {
        let mut interval = tokio::time::interval(TICK);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            let leading = server.status().is_ready_leader();
            let store = server.view().read();
            let due = self.tick(&store, leading, Instant::now());
            drop(store);
            for id in due {
                tracing::info!(session = %id, "session TTL expired; invalidating it");
                let cmd = Command::Session(SessionOp::Expire { id: id.clone() });
                if let Err(e) = server.propose(cmd).await {
                    if matches!(e, crate::WriteError::ShuttingDown) {
                        return;
                    }
                    tracing::warn!(session = %id, error = %e, "session expiry not applied");
                }
                self.expired(&id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::store::{Node, RegisterRequest, Session};

    fn store_with(sessions: &[(&str, u64)]) -> Store {
        let mut store = Store::new();
        let node = Node {
            node: "n1".into(),
            address: "10.0.0.1".into(),
            ..Node::default()
        };
        store.apply(
            1,
            &Command::Register(RegisterRequest {
                node,
                ..RegisterRequest::default()
            }),
        );
        for (i, (id, ttl_ms)) in sessions.iter().enumerate() {
            let session = Session {
                id: id.to_string(),
                node: "n1".into(),
                ttl_ms: *ttl_ms,
                ..Session::default()
            };
            let cmd = Command::Session(SessionOp::Create(session));
            store.apply(2 + i as u64, &cmd);
        }
        store
    }

    #[test]
    fn a_session_expires_after_twice_its_ttl_and_a_renew_pushes_it_back() {
        let timers = SessionTimers::new();
        let store = store_with(&[("a", 10_000), ("none", 0)]);
        let t0 = Instant::now();
        assert!(timers.tick(&store, true, t0).is_empty());
        assert!(timers.deadline("none").is_none());
        let armed = timers.deadline("a").unwrap();
        assert_eq!(armed, t0 + Duration::from_secs(20));
        assert!(timers
            .tick(&store, true, t0 + Duration::from_secs(19))
            .is_empty());
        assert_eq!(
            timers.tick(&store, true, t0 + Duration::from_secs(20)),
            ["a"]
        );
        // Proposed once: not again while the proposal runs.
        assert!(timers
            .tick(&store, true, t0 + Duration::from_secs(21))
            .is_empty());
        timers.expired("a");
        timers.renew("a", 10_000);
        assert!(timers.deadline("a").unwrap() > t0 + Duration::from_secs(20));
    }

    #[test]
    fn a_new_leader_restarts_every_timer_in_full() {
        let timers = SessionTimers::new();
        let store = store_with(&[("a", 10_000)]);
        let t0 = Instant::now();
        timers.tick(&store, true, t0);
        timers.tick(&store, false, t0 + Duration::from_secs(15));
        assert!(timers.deadline("a").is_none());
        let t1 = t0 + Duration::from_secs(18);
        assert!(timers.tick(&store, true, t1).is_empty());
        assert_eq!(timers.deadline("a"), Some(t1 + Duration::from_secs(20)));
    }

    #[test]
    fn timers_of_sessions_gone_are_forgotten() {
        let timers = SessionTimers::new();
        let mut store = store_with(&[("a", 10_000), ("b", 10_000)]);
        let t0 = Instant::now();
        timers.tick(&store, true, t0);
        store.apply(9, &Command::Session(SessionOp::Destroy { id: "a".into() }));
        timers.tick(&store, true, t0);
        assert!(timers.deadline("a").is_none());
        assert!(timers.deadline("b").is_some());
    }
}
