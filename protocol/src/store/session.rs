//! Sessions (Consul's `sessions` table) and the rules that tie them to the catalog and to
//! KV locks. The store-level API other modules (HTTP edge, `/v1/txn`) call:
//!
//! - [`Store::session_get`], [`Store::sessions`], [`Store::node_sessions`]: reads.
//! - [`Store::kv_lock`] / [`Store::kv_unlock`] (in `kv.rs`): acquire and release, with
//!   Consul's semantics; [`Store::session_holds`] for a txn's `check-session`.
//! - [`Store::invalidate_session`]: destroy a session, releasing or deleting the keys it
//!   holds per its behavior and recording each key's lock-delay.
//!
//! # Time
//! Lock-delay is TIME-based, but the store never reads a clock: every command that may
//! invalidate a session or take a lock is applied with the proposer's wall-clock time in
//! milliseconds (`Command::Stamped`, stamped by the leader that proposes it), so every
//! replica computes the same delays. A key's delay is stored as the time until which it
//! cannot be acquired (`lock_delays`), replicated in snapshots; entries are dropped once
//! a later command's time has passed them.
//!
//! # Invalidation
//! A session is invalidated (and removed) when it is destroyed, its TTL runs out (the
//! leader proposes [`SessionOp::Expire`]), one of its checks goes critical or is
//! deregistered, or its node is deregistered: the last two happen inside the catalog
//! command's own apply, as Consul's state store does, so no replica can see a critical
//! check beside a live session linked to it.

use super::{fold, CheckStatus, CommandResult, Store, Table};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Consul's `session_ttl_min`.
pub const SESSION_TTL_MIN_MS: u64 = 10_000;
/// Consul's max session TTL (24h).
pub const SESSION_TTL_MAX_MS: u64 = 24 * 3600 * 1000;
/// Consul's `structs.MaxLockDelay`: a longer delay is cut to this when applied.
pub const MAX_LOCK_DELAY_NS: u64 = 60 * 1_000_000_000;
/// Consul's default lock-delay (15 s).
pub const DEFAULT_LOCK_DELAY_NS: u64 = 15 * 1_000_000_000;
/// Consul invalidates a TTL session only after TTL x this (`SessionTTLMultiplier`).
pub const SESSION_TTL_MULTIPLIER: u64 = 2;
/// The check every session gets when its request names none (`structs.SerfCheckID`).
pub const DEFAULT_SESSION_CHECK: &str = "serfHealth";

/// What happens to the keys a session holds when it is invalidated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum SessionBehavior {
    /// Keys stay, unlocked (Consul's default).
    #[default]
    Release,
    /// Keys are deleted (ephemeral entries).
    Delete,
}

impl SessionBehavior {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionBehavior::Release => "release",
            SessionBehavior::Delete => "delete",
        }
    }

    /// `""` is release (Consul's default); anything else but the two names is refused.
    pub fn parse(text: &str) -> Option<SessionBehavior> {
        match text {
            "" | "release" => Some(SessionBehavior::Release),
            "delete" => Some(SessionBehavior::Delete),
            _ => None,
        }
    }
}

/// A session row (Consul's `structs.Session`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Session {
    /// A UUID chosen by the proposer (never drawn at apply).
    pub id: String,
    pub name: String,
    /// Node name as given (matched case-insensitively).
    pub node: String,
    /// Nanoseconds (Consul renders `LockDelay` as integer nanoseconds).
    pub lock_delay_ns: u64,
    pub behavior: SessionBehavior,
    /// The TTL as the client gave it (Go duration text, rendered back as is); empty: none.
    pub ttl: String,
    /// The TTL in milliseconds (0: none), what the leader's timers use.
    pub ttl_ms: u64,
    /// Check IDs on the session's node (`NodeChecks`, plus the legacy `Checks`).
    pub node_checks: Vec<String>,
    /// Service check IDs on the session's node (`ServiceChecks[].ID`).
    pub service_checks: Vec<String>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl Session {
    /// Every check ID the session is linked to, node checks first.
    pub fn check_ids(&self) -> impl Iterator<Item = &String> {
        self.node_checks.iter().chain(&self.service_checks)
    }
}

/// Session commands (the payload of `Command::Session`). The proposer stamps the time
/// (`Command::Stamped`), which invalidations need for lock-delay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SessionOp {
    /// Create a session; its ID was chosen by the proposer, indexes are stamped at apply.
    Create(Session),
    /// `PUT /v1/session/destroy/:id`: invalidate it (true even when absent).
    Destroy { id: String },
    /// The leader's TTL timer ran out: invalidate it (the same effect as destroy; named
    /// apart so that the log says why).
    Expire { id: String },
}

/// The TTL error Consul answers (`ttl_ns` printed as Go's `%d` of a Duration).
pub fn invalid_ttl_text(ttl_ns: u64) -> String {
    format!("Invalid Session TTL '{ttl_ns}', must be between [10s=24h0m0s]")
}

/// Whether a TTL in milliseconds is allowed (0 means none).
pub fn ttl_allowed(ttl_ms: u64) -> bool {
    ttl_ms == 0 || (SESSION_TTL_MIN_MS..=SESSION_TTL_MAX_MS).contains(&ttl_ms)
}

/// Milliseconds a lock-delay of `ns` lasts once applied: capped at Consul's maximum,
/// rounded up so that a 1 ms delay (Patroni's) is not lost.
fn lock_delay_ms(ns: u64) -> u64 {
    ns.min(MAX_LOCK_DELAY_NS).div_ceil(1_000_000)
}

impl Store {
    pub(super) fn apply_session(
        &mut self,
        index: u64,
        now_ms: u64,
        op: &SessionOp,
    ) -> CommandResult {
        match op {
            SessionOp::Create(session) => match self.session_create(index, session) {
                Ok(()) => CommandResult::Done,
                Err(text) => CommandResult::Rejected(text),
            },
            SessionOp::Destroy { id } | SessionOp::Expire { id } => {
                self.invalidate_session(index, id, now_ms);
                CommandResult::Done
            }
        }
    }

    /// Create `session` at `index` with Consul's checks: an ID, a valid TTL, an existing
    /// node, and every linked check registered on it and not critical. Changes nothing
    /// when refused.
    pub fn session_create(&mut self, index: u64, session: &Session) -> Result<(), String> {
        if session.id.is_empty() {
            return Err("Missing session ID".into());
        }
        if self.sessions.contains_key(&session.id) {
            return Err(format!("Session ID {:?} already exists", session.id));
        }
        if !ttl_allowed(session.ttl_ms) {
            return Err(invalid_ttl_text(session.ttl_ms.saturating_mul(1_000_000)));
        }
        let node_key = fold(&session.node);
        if !self.nodes.contains_key(&node_key) {
            return Err("Missing node registration".into());
        }
        for check_id in session.check_ids() {
            match self.checks.get(&(node_key.clone(), check_id.clone())) {
                None => return Err(format!("Missing check '{check_id}' registration")),
                Some(c) if c.status == CheckStatus::Critical => {
                    return Err(format!("Check '{check_id}' is in critical state"))
                }
                Some(_) => {}
            }
        }
        let mut row = session.clone();
        row.create_index = index;
        row.modify_index = index;
        self.link_session_checks(&row);
        self.sessions.insert(row.id.clone(), Arc::new(row));
        self.bump(Table::Sessions, index);
        Ok(())
    }

    /// Invalidate a session at `index`, time `now_ms`: remove it, then release or delete
    /// (per its behavior) every key it holds, each getting the session's lock-delay from
    /// `now_ms`. False when there was no such session (nothing changes).
    pub fn invalidate_session(&mut self, index: u64, id: &str, now_ms: u64) -> bool {
        let Some(session) = self.sessions.remove(id) else {
            return false;
        };
        self.bump(Table::Sessions, index);
        self.unlink_session_checks(&session);
        // Delays already over are forgotten here, so the map only holds live ones.
        let over: Vec<String> = self
            .lock_delays
            .iter()
            .filter(|(_, until)| **until <= now_ms)
            .map(|(key, _)| key.clone())
            .collect();
        for key in over {
            self.lock_delays.remove(&key);
        }
        let held: Vec<String> = self
            .session_locks
            .remove(id)
            .map(|keys| keys.into_iter().collect())
            .unwrap_or_default();
        let delay_ms = lock_delay_ms(session.lock_delay_ns);
        for key in &held {
            match session.behavior {
                SessionBehavior::Release => self.kv_clear_session(index, key),
                SessionBehavior::Delete => {
                    self.kv_remove(index, key);
                }
            }
            if delay_ms > 0 {
                self.lock_delays
                    .insert(key.clone(), now_ms.saturating_add(delay_ms));
            }
        }
        true
    }

    /// Invalidate every session linked to this check (it went critical or was removed).
    pub(super) fn invalidate_check_sessions(
        &mut self,
        index: u64,
        now_ms: u64,
        node_key: &str,
        check_id: &str,
    ) {
        let linked: Vec<String> = self
            .session_checks
            .get(&(node_key.to_string(), check_id.to_string()))
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default();
        for id in linked {
            self.invalidate_session(index, &id, now_ms);
        }
    }

    /// Invalidate every session of a node being deregistered.
    pub(super) fn invalidate_node_sessions(&mut self, index: u64, now_ms: u64, node_key: &str) {
        let ids: Vec<String> = self
            .sessions
            .values()
            .filter(|s| fold(&s.node) == node_key)
            .map(|s| s.id.clone())
            .collect();
        for id in ids {
            self.invalidate_session(index, &id, now_ms);
        }
    }

    fn link_session_checks(&mut self, session: &Session) {
        let node_key = fold(&session.node);
        for check_id in session.check_ids() {
            self.session_checks
                .entry((node_key.clone(), check_id.clone()))
                .or_default()
                .insert(session.id.clone());
        }
    }

    fn unlink_session_checks(&mut self, session: &Session) {
        let node_key = fold(&session.node);
        for check_id in session.check_ids() {
            let key = (node_key.clone(), check_id.clone());
            if let Some(ids) = self.session_checks.get_mut(&key) {
                ids.remove(&session.id);
                if ids.is_empty() {
                    self.session_checks.remove(&key);
                }
            }
        }
    }

    /// Rebuild the derived session indexes (checks → sessions, session → held keys) from
    /// the rows: after a snapshot load or a restore.
    pub(super) fn rebuild_session_indexes(&mut self) {
        self.session_checks = Default::default();
        self.session_locks = Default::default();
        let sessions: Vec<Arc<Session>> = self.sessions.values().cloned().collect();
        for session in &sessions {
            self.link_session_checks(session);
        }
        let held: Vec<(String, String)> = self
            .kv
            .values()
            .filter_map(|e| e.session.as_ref().map(|s| (s.clone(), e.key.clone())))
            .collect();
        for (session, key) in held {
            self.session_locks.entry(session).or_default().insert(key);
        }
    }

    pub(super) fn note_lock(&mut self, session: &str, key: &str) {
        self.session_locks
            .entry(session.to_string())
            .or_default()
            .insert(key.to_string());
    }

    pub(super) fn forget_lock(&mut self, session: &str, key: &str) {
        if let Some(keys) = self.session_locks.get_mut(session) {
            keys.remove(key);
            if keys.is_empty() {
                self.session_locks.remove(session);
            }
        }
    }

    /// One session by ID.
    pub fn session_get(&self, id: &str) -> Option<&Session> {
        self.sessions.get(id).map(Arc::as_ref)
    }

    /// Every session, by ID.
    pub fn sessions(&self) -> Vec<&Session> {
        self.sessions.values().map(Arc::as_ref).collect()
    }

    /// The sessions of one node (case-insensitive), by ID.
    pub fn node_sessions(&self, node: &str) -> Vec<&Session> {
        let node_key = fold(node);
        self.sessions
            .values()
            .filter(|s| fold(&s.node) == node_key)
            .map(Arc::as_ref)
            .collect()
    }

    /// Keys `session` holds, in key order (empty when none or unknown).
    pub fn session_keys(&self, session: &str) -> Vec<String> {
        self.session_locks
            .get(session)
            .map(|keys| keys.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Sessions linked to this check on this node (case-insensitive node), by ID.
    pub fn check_sessions(&self, node: &str, check_id: &str) -> Vec<String> {
        self.session_checks
            .get(&(fold(node), check_id.to_string()))
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Until when (ms) `key` cannot be acquired, if a lock-delay is recorded for it (it
    /// may already be over: compare with the time at hand).
    pub fn lock_delay_until(&self, key: &str) -> Option<u64> {
        self.lock_delays.get(key).copied()
    }
}
