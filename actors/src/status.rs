//! The shared Raft status cell: RaftCore and Fsm write it, every HTTP request reads it.

use crate::handle::RaftStatus;
use parking_lot::Mutex;
use std::time::Instant;

#[derive(Default)]
pub(crate) struct StatusCell {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    status: RaftStatus,
    /// When a leader was last heard from (None on the leader or when unknown).
    last_contact: Option<Instant>,
}

impl StatusCell {
    pub(crate) fn read(&self) -> RaftStatus {
        let inner = self.inner.lock();
        let mut status = inner.status.clone();
        status.last_contact_ms = inner
            .last_contact
            .map(|t| t.elapsed().as_millis() as u64)
            .unwrap_or(0);
        status
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut RaftStatus)) {
        f(&mut self.inner.lock().status)
    }

    pub(crate) fn set_last_contact(&self, at: Option<Instant>) {
        self.inner.lock().last_contact = at;
    }
}
