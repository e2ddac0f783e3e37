//! A single-holder lock on one key (Consul's `api.Lock`): a session of its own, the key
//! acquired with Consul's lock flags, a blocking read while another session holds it, a
//! timed retry while lock-delay refuses it, and a monitor that reports the loss.

use super::api::{KvPair, LockApi, Read};
use super::session::{Behavior, Session};
use super::{Acquired, Cleanup, Event, Holder, Pacing};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Consul's `LockFlagValue`: marks a key as a lock, so a semaphore (or anything else)
/// at the same place is a conflict, not a silent misuse.
pub const LOCK_FLAG: u64 = 0x2ddc_cbc0_58a5_0c18;
/// Consul's `DefaultLockRetryTime`: how long to wait when the key is free but the
/// acquire is refused (lock-delay after a holder's session was invalidated).
const LOCK_DELAY_RETRY: Duration = Duration::from_secs(5);

pub const ERR_CONFLICT: &str = "Existing key does not match lock use";
const ERR_NOT_HELD: &str = "Lock not held";

/// What one read of the key says about the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// The key is something else than a lock (other flags).
    Conflict,
    /// Our session holds it.
    Ours,
    /// Another session holds it: block until the key changes.
    Taken,
    /// Absent or unheld: try to acquire.
    Free,
}

pub fn key_state(pair: Option<&KvPair>, session: &str) -> KeyState {
    match pair {
        None => KeyState::Free,
        Some(p) if p.flags != LOCK_FLAG => KeyState::Conflict,
        Some(p) => match p.holder() {
            Some(holder) if holder == session => KeyState::Ours,
            Some(_) => KeyState::Taken,
            None => KeyState::Free,
        },
    }
}

pub struct Mutex {
    api: Arc<LockApi>,
    key: String,
    session_name: String,
    monitor_retries: u32,
    session: Option<Session>,
    /// Tells the monitor its reports no longer matter (we let go ourselves).
    released: Arc<AtomicBool>,
}

impl Mutex {
    pub fn new(api: Arc<LockApi>, key: String, session_name: String, monitor_retries: u32) -> Self {
        Mutex {
            api,
            key,
            session_name,
            monitor_retries,
            session: None,
            released: Arc::new(AtomicBool::new(false)),
        }
    }

    fn wait_for_key(
        &self,
        session: &str,
        mut pacing: Pacing,
        stop: &AtomicBool,
    ) -> Result<Acquired, String> {
        let mut index = 0;
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(Acquired::Stopped);
            }
            let Some(wait) = pacing.next_wait(Instant::now()) else {
                return Ok(Acquired::Stopped);
            };
            let read = Read {
                consistent: true,
                index,
                wait: Some(wait),
            };
            let (pair, last_index) = self
                .api
                .get(&self.key, read)
                .map_err(|e| format!("failed to read lock: {e}"))?;
            match key_state(pair.as_ref(), session) {
                KeyState::Conflict => return Err(ERR_CONFLICT.to_string()),
                KeyState::Ours => return Ok(Acquired::Held),
                KeyState::Taken => {
                    index = last_index;
                    continue;
                }
                KeyState::Free => {}
            }
            let params = vec![
                format!("acquire={}", super::super::api_client::escape(session)),
                format!("flags={LOCK_FLAG}"),
            ];
            let locked = self
                .api
                .put(&self.key, params, b"")
                .map_err(|e| format!("failed to acquire lock: {e}"))?;
            if locked {
                return Ok(Acquired::Held);
            }
            // Refused: taken in between (block on the key), or free but under
            // lock-delay (nothing to block on: wait a while and try again).
            let (pair, last_index) = self
                .api
                .get(&self.key, Read::default())
                .map_err(|e| format!("failed to read lock: {e}"))?;
            if pair.as_ref().and_then(KvPair::holder).is_some() {
                index = last_index;
            } else {
                index = 0;
                if !pacing.sleep(LOCK_DELAY_RETRY, stop) {
                    return Ok(Acquired::Stopped);
                }
            }
        }
    }
}

impl Holder for Mutex {
    fn acquire(
        &mut self,
        pacing: Pacing,
        stop: &AtomicBool,
        events: Sender<Event>,
    ) -> Result<Acquired, String> {
        if self.session.is_some() {
            return Err("Lock already held".to_string());
        }
        let session = Session::create(self.api.clone(), &self.session_name, Behavior::Release)?;
        let outcome = self.wait_for_key(session.id(), pacing, stop);
        if !matches!(outcome, Ok(Acquired::Held)) {
            session.end();
            return outcome;
        }
        let monitor = Monitor {
            api: self.api.clone(),
            key: self.key.clone(),
            session: session.id().to_string(),
            retries: self.monitor_retries,
            released: self.released.clone(),
        };
        std::thread::spawn(move || monitor.run(&events));
        self.session = Some(session);
        Ok(Acquired::Held)
    }

    fn release(&mut self) -> Result<(), String> {
        let Some(session) = self.session.take() else {
            return Err(ERR_NOT_HELD.to_string());
        };
        self.released.store(true, Ordering::SeqCst);
        let params = vec![
            format!("release={}", super::super::api_client::escape(session.id())),
            format!("flags={LOCK_FLAG}"),
        ];
        // A lock already lost is no error: the release just answers false.
        let released = self.api.put(&self.key, params, b"");
        session.end();
        released
            .map(|_| ())
            .map_err(|e| format!("failed to release lock: {e}"))
    }

    fn cleanup(&mut self) -> Result<Cleanup, String> {
        if self.session.is_some() {
            return Err("Lock held".to_string());
        }
        let (pair, _) = self
            .api
            .get(&self.key, Read::default())
            .map_err(|e| format!("failed to read lock: {e}"))?;
        let Some(pair) = pair else {
            return Ok(Cleanup::Done);
        };
        if pair.flags != LOCK_FLAG {
            return Err(ERR_CONFLICT.to_string());
        }
        if pair.holder().is_some() {
            return Ok(Cleanup::InUse);
        }
        self.api
            .remove_unchanged(&self.key, pair.modify_index, "lock")
    }
}

/// Watches the key with consistent blocking reads while we hold it; reports `Lost` when
/// another session (or none) holds it, or when the agent fails more than `retries`
/// times in a row.
struct Monitor {
    api: Arc<LockApi>,
    key: String,
    session: String,
    retries: u32,
    released: Arc<AtomicBool>,
}

impl Monitor {
    fn run(self, events: &Sender<Event>) {
        super::monitor_while_held(self.retries, &self.released, events, |read| {
            let (pair, last_index) = self.api.get(&self.key, read)?;
            Ok((key_state(pair.as_ref(), &self.session) == KeyState::Ours).then_some(last_index))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(flags: u64, session: Option<&str>) -> KvPair {
        KvPair {
            key: "svc/.lock".into(),
            modify_index: 9,
            flags,
            value: None,
            session: session.map(str::to_string),
        }
    }

    #[test]
    fn a_read_of_the_key_decides_the_next_step() {
        assert_eq!(key_state(None, "me"), KeyState::Free);
        assert_eq!(
            key_state(Some(&pair(LOCK_FLAG, None)), "me"),
            KeyState::Free
        );
        assert_eq!(
            key_state(Some(&pair(LOCK_FLAG, Some(""))), "me"),
            KeyState::Free
        );
        assert_eq!(
            key_state(Some(&pair(LOCK_FLAG, Some("me"))), "me"),
            KeyState::Ours
        );
        assert_eq!(
            key_state(Some(&pair(LOCK_FLAG, Some("you"))), "me"),
            KeyState::Taken
        );
        // A semaphore's .lock key, or a plain value, at the lock's place.
        assert_eq!(
            key_state(
                Some(&pair(super::super::semaphore::SEMAPHORE_FLAG, None)),
                "me"
            ),
            KeyState::Conflict
        );
        assert_eq!(
            key_state(Some(&pair(0, Some("me"))), "me"),
            KeyState::Conflict
        );
    }
}
