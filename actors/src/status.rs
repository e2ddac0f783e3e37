//! Raft status: the types every edge reads ([`RaftStatus`], [`RaftRole`]) and the shared
//! cell RaftCore and Fsm write and every HTTP request reads.
//!
//! The status is kept behind an `Arc` so the lock is held only for a pointer copy (a
//! reader) or an in-place update (a writer): a reader clones the `Arc` under the lock and
//! copies the fields out after releasing it. A writer updates in place with
//! `Arc::make_mut`, which copies the status only when a reader still holds the previous
//! `Arc` at that instant, so readers always see a whole, consistent status.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RaftRole {
    #[default]
    Follower,
    Candidate,
    Leader,
}

impl From<protocol::raft::Role> for RaftRole {
    fn from(role: protocol::raft::Role) -> Self {
        match role {
            protocol::raft::Role::Follower => RaftRole::Follower,
            protocol::raft::Role::Candidate => RaftRole::Candidate,
            protocol::raft::Role::Leader => RaftRole::Leader,
        }
    }
}

/// A snapshot of Raft status for headers, `/v1/status/*` and agent/self.
#[derive(Debug, Clone, Default)]
pub struct RaftStatus {
    pub role: RaftRole,
    pub term: u64,
    pub leader_id: Option<String>,
    /// Leader's `ip:port` (server RPC address), as `/v1/status/leader` reports it.
    pub leader_addr: Option<String>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub last_log_term: u64,
    /// Milliseconds since this server last heard from a leader (0 on the leader).
    pub last_contact_ms: u64,
    /// Voters as (id, address).
    pub voters: Vec<(String, String)>,
    /// On a leader, the index of its own term's no-op entry (0 otherwise). Until that is
    /// applied the store may still lack entries committed by earlier terms (after a
    /// restart: everything after the snapshot), so reads that promise to see every
    /// acknowledged write wait for it, and so do leader duties.
    pub leader_ready_index: u64,
    /// Why this server cannot write to its Raft log right now (a full disk, an I/O
    /// error), until a write succeeds again; None when healthy. While set the server is
    /// a follower without a leader and retries by itself (see `raft_core`).
    pub storage_error: Option<String>,
}

impl RaftStatus {
    pub fn is_leader(&self) -> bool {
        self.role == RaftRole::Leader
    }
    /// A leader whose store holds everything committed before its term.
    pub fn is_ready_leader(&self) -> bool {
        self.is_leader() && self.applied_index >= self.leader_ready_index
    }
    pub fn known_leader(&self) -> bool {
        self.leader_id.is_some()
    }
}

pub(crate) struct StatusCell {
    inner: Mutex<Inner>,
    /// What every read's query meta needs, readable without the lock (DNS and HTTP
    /// workers answer stale reads concurrently; a shared lock or refcount on that path
    /// costs throughput): bit 0 this server leads, bit 1 a leader is known.
    leadership: AtomicU8,
    /// When a leader was last heard from: milliseconds after `epoch`, plus one (0: never,
    /// or this server leads).
    contact: AtomicU64,
    /// Until when this server's leader lease lets it answer default reads without a
    /// ReadIndex round: milliseconds after `epoch`, rounded down (0: no lease;
    /// `u64::MAX`: always, a sole voter). See `protocol::raft` reads.
    lease_until: AtomicU64,
    epoch: Instant,
}

impl Default for StatusCell {
    fn default() -> Self {
        StatusCell {
            inner: Mutex::default(),
            leadership: AtomicU8::new(0),
            contact: AtomicU64::new(0),
            lease_until: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }
}

/// The leadership facts a query's meta reports, read without a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Leadership {
    pub(crate) is_leader: bool,
    pub(crate) known_leader: bool,
    /// Milliseconds since a leader was last heard from (None: never, or leading).
    pub(crate) last_contact_ms: Option<u64>,
}

const LEADING: u8 = 1;
const LEADER_KNOWN: u8 = 2;

#[derive(Default)]
struct Inner {
    /// `last_contact_ms` in here is always 0: it is computed at read time.
    status: Arc<RaftStatus>,
    /// When a leader was last heard from (None on the leader or when unknown).
    last_contact: Option<Instant>,
}

impl StatusCell {
    pub(crate) fn read(&self) -> RaftStatus {
        let (shared, last_contact) = self.snapshot();
        let mut status = (*shared).clone();
        status.last_contact_ms = last_contact
            .map(|t| t.elapsed().as_millis() as u64)
            .unwrap_or(0);
        status
    }

    /// The published status (without `last_contact_ms`) and the last leader contact:
    /// two pointer-sized copies under the lock.
    pub(crate) fn snapshot(&self) -> (Arc<RaftStatus>, Option<Instant>) {
        let inner = self.inner.lock();
        (inner.status.clone(), inner.last_contact)
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut RaftStatus)) {
        let mut inner = self.inner.lock();
        let status = Arc::make_mut(&mut inner.status);
        f(status);
        let mut flags = 0;
        if status.is_leader() {
            flags |= LEADING;
        }
        if status.is_leader() || status.known_leader() {
            flags |= LEADER_KNOWN;
        }
        // Under the lock, so the flags never lag behind a later update.
        self.leadership.store(flags, Ordering::Release);
    }

    pub(crate) fn set_last_contact(&self, at: Option<Instant>) {
        let mut inner = self.inner.lock();
        inner.last_contact = at;
        let encoded = at.map_or(0, |t| {
            t.saturating_duration_since(self.epoch).as_millis() as u64 + 1
        });
        self.contact.store(encoded, Ordering::Release);
    }

    /// Publish the leader lease (see [`Lease`]).
    pub(crate) fn set_lease(&self, lease: Lease) {
        let encoded = match lease {
            Lease::None => 0,
            Lease::Forever => u64::MAX,
            Lease::Until(at) => {
                // Rounded down, so the published lease never outlives the real one.
                (at.saturating_duration_since(self.epoch).as_millis() as u64).min(u64::MAX - 1)
            }
        };
        self.lease_until.store(encoded, Ordering::Release);
    }

    /// Whether the leader lease is held at this instant: one atomic load.
    pub(crate) fn lease_held(&self) -> bool {
        let until = self.lease_until.load(Ordering::Acquire);
        match until {
            0 => false,
            u64::MAX => true,
            // Rounded up, for the same reason.
            until => (self.epoch.elapsed().as_millis() as u64).saturating_add(1) < until,
        }
    }

    /// Leadership for a query's meta: two atomic loads, no lock, no refcount.
    pub(crate) fn leadership(&self) -> Leadership {
        let flags = self.leadership.load(Ordering::Acquire);
        let is_leader = flags & LEADING != 0;
        let contact = self.contact.load(Ordering::Acquire);
        let last_contact_ms = (contact != 0 && !is_leader).then(|| {
            let at = self.epoch + std::time::Duration::from_millis(contact - 1);
            at.elapsed().as_millis() as u64
        });
        Leadership {
            is_leader,
            known_leader: flags & LEADER_KNOWN != 0,
            last_contact_ms,
        }
    }
}

/// A leader lease as RaftCore publishes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lease {
    None,
    /// A sole voter: no other server can ever lead.
    Forever,
    Until(Instant),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_is_held_only_until_its_end_rounded_to_the_safe_side() {
        let cell = StatusCell::default();
        assert!(!cell.lease_held());
        cell.set_lease(Lease::Forever);
        assert!(cell.lease_held());
        cell.set_lease(Lease::Until(
            Instant::now() + std::time::Duration::from_secs(60),
        ));
        assert!(cell.lease_held());
        cell.set_lease(Lease::Until(Instant::now()));
        assert!(!cell.lease_held());
        cell.set_lease(Lease::None);
        assert!(!cell.lease_held());
    }

    #[test]
    fn reads_share_one_status_and_never_see_later_updates() {
        let cell = StatusCell::default();
        cell.update(|s| s.term = 3);
        let (a, _) = cell.snapshot();
        let (b, _) = cell.snapshot();
        assert!(
            Arc::ptr_eq(&a, &b),
            "a read copies a pointer, not the status"
        );
        cell.update(|s| s.term = 4);
        assert_eq!(a.term, 3, "a status already read stays as it was");
        assert_eq!(cell.read().term, 4);
        // With no reader holding it, an update does not copy.
        drop((a, b));
        let before = Arc::as_ptr(&cell.snapshot().0);
        cell.update(|s| s.commit_index = 9);
        assert_eq!(Arc::as_ptr(&cell.snapshot().0), before);
        assert_eq!(cell.read().commit_index, 9);
    }

    #[test]
    fn leadership_is_readable_without_the_lock_and_follows_updates() {
        // An epoch before the contact below (a real cell is made before any contact).
        let cell = StatusCell {
            epoch: Instant::now() - std::time::Duration::from_millis(200),
            ..StatusCell::default()
        };
        let none = cell.leadership();
        assert!(!none.is_leader && !none.known_leader && none.last_contact_ms.is_none());
        cell.update(|s| s.leader_id = Some("other".into()));
        let at = Instant::now() - std::time::Duration::from_millis(50);
        cell.set_last_contact(Some(at));
        let follower = cell.leadership();
        assert!(!follower.is_leader && follower.known_leader);
        assert!(
            follower.last_contact_ms.is_some_and(|ms| ms >= 49),
            "{follower:?}"
        );
        cell.update(|s| {
            s.role = RaftRole::Leader;
            s.leader_id = Some("me".into());
        });
        let leader = cell.leadership();
        assert!(leader.is_leader && leader.known_leader);
        assert_eq!(
            leader.last_contact_ms, None,
            "a leader reports no contact age"
        );
    }
}
