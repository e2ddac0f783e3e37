//! A lock's own session: created for the lock, renewed every half TTL by a thread while
//! the lock is wanted or held, destroyed when the lock is given up (as Consul's
//! `api.Lock` and `api.Semaphore` manage theirs).

use super::api::{ApiError, LockApi};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Consul's `DefaultLockSessionTTL` and `DefaultSemaphoreSessionTTL`.
pub const SESSION_TTL: Duration = Duration::from_secs(15);
/// How soon a failed renewal is tried again (within the TTL; after it the server has
/// let the session go anyway).
const RENEW_RETRY: Duration = Duration::from_secs(1);

/// What the server does with the session's keys when it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behavior {
    Release,
    Delete,
}

impl Behavior {
    fn as_str(self) -> &'static str {
        match self {
            Behavior::Release => "release",
            Behavior::Delete => "delete",
        }
    }
}

pub struct Session {
    id: String,
    api: Arc<LockApi>,
    /// Dropping it stops the renewer.
    stop: Option<mpsc::Sender<()>>,
    renewer: Option<JoinHandle<()>>,
}

impl Session {
    /// Create the session and start renewing it.
    pub fn create(api: Arc<LockApi>, name: &str, behavior: Behavior) -> Result<Session, String> {
        let id = api
            .create_session(name, SESSION_TTL, behavior.as_str())
            .map_err(|e| format!("failed to create session: {e}"))?;
        let (stop, stopped) = mpsc::channel();
        let renewer = {
            let api = api.clone();
            let id = id.clone();
            std::thread::spawn(move || renew_until_stopped(&api, &id, &stopped))
        };
        Ok(Session {
            id,
            api,
            stop: Some(stop),
            renewer: Some(renewer),
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Stop renewing and destroy the session (best effort, as Consul: a session that
    /// cannot be destroyed runs out its TTL).
    pub fn end(mut self) {
        self.stop_renewing();
        let _ = self.api.destroy_session(&self.id);
    }

    fn stop_renewing(&mut self) {
        self.stop.take();
        if let Some(renewer) = self.renewer.take() {
            let _ = renewer.join();
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.stop_renewing();
    }
}

/// Renew every half TTL until told to stop or the session is gone; a failed renewal is
/// retried every second until a whole TTL has passed since the last good one.
fn renew_until_stopped(api: &LockApi, id: &str, stopped: &mpsc::Receiver<()>) {
    let mut ttl = SESSION_TTL;
    let mut last_renewed = Instant::now();
    let mut failing = false;
    loop {
        let pause = if failing { RENEW_RETRY } else { ttl / 2 };
        match stopped.recv_timeout(pause) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        match api.renew_session(id) {
            Ok(Some(server_ttl)) => {
                ttl = server_ttl.unwrap_or(ttl);
                last_renewed = Instant::now();
                failing = false;
            }
            // Gone: the server invalidated it; the lock monitor sees the loss.
            Ok(None) => return,
            Err(ApiError::Status(..) | ApiError::Transport(_) | ApiError::Malformed(_)) => {
                if last_renewed.elapsed() >= ttl {
                    return;
                }
                failing = true;
            }
        }
    }
}
