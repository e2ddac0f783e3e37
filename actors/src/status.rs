//! The shared Raft status cell: RaftCore and Fsm write it, every HTTP request reads it.
//!
//! The status is kept behind an `Arc` so the lock is held only for a pointer copy (a
//! reader) or an in-place update (a writer): a reader clones the `Arc` under the lock and
//! copies the fields out after releasing it. A writer updates in place with
//! `Arc::make_mut`, which copies the status only when a reader still holds the previous
//! `Arc` at that instant, so readers always see a whole, consistent status.

use crate::handle::RaftStatus;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Instant;

#[derive(Default)]
pub(crate) struct StatusCell {
    inner: Mutex<Inner>,
}

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
        f(Arc::make_mut(&mut self.inner.lock().status))
    }

    pub(crate) fn set_last_contact(&self, at: Option<Instant>) {
        self.inner.lock().last_contact = at;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
