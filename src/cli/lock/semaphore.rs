//! A semaphore of `limit` holders under a prefix (Consul's `api.Semaphore`): each
//! contender holds its own key `<prefix>/<session>` with its session; the `<prefix>/.lock`
//! key holds `{"Limit":N,"Holders":{session:true}}`, changed only with check-and-set.
//! Holders whose contender key is gone (their session ended) are pruned by whoever
//! reads the set next, so a dead holder never keeps its slot.

use super::api::{KvPair, LockApi, Read};
use super::session::{Behavior, Session};
use super::{join_key, Acquired, Cleanup, Event, Holder, Pacing, LOCK_KEY};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Instant;

/// Consul's `SemaphoreFlagValue`.
pub const SEMAPHORE_FLAG: u64 = 0xe0f6_9a2b_aa41_4de0;

const ERR_CONFLICT: &str = "Existing key does not match semaphore use";
/// A check-and-set on the `.lock` key that keeps losing races gives up after this many
/// tries rather than spinning forever.
const MAX_CAS_TRIES: u32 = 1000;

/// The `.lock` key's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HolderSet {
    #[serde(rename = "Limit")]
    pub limit: i64,
    #[serde(rename = "Holders", default)]
    pub holders: BTreeMap<String, bool>,
}

impl HolderSet {
    /// Decode the `.lock` key; an absent key or null value is an empty set of `limit`.
    pub fn decode(pair: Option<&KvPair>, limit: i64) -> Result<HolderSet, String> {
        let bytes = match pair {
            Some(p) => p.value_bytes()?,
            None => None,
        };
        match bytes {
            None => Ok(HolderSet {
                limit,
                holders: BTreeMap::new(),
            }),
            Some(bytes) => {
                serde_json::from_slice(&bytes).map_err(|e| format!("lock decoding failed: {e}"))
            }
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Drop holders no live session vouches for: a holder is alive while some key under
    /// the prefix (its contender key) is held by its session.
    pub fn prune(&mut self, pairs: &[KvPair]) {
        let alive: BTreeSet<&str> = pairs.iter().filter_map(KvPair::holder).collect();
        self.holders
            .retain(|holder, _| alive.contains(holder.as_str()));
    }

    pub fn is_full(&self) -> bool {
        self.holders.len() as i64 >= self.limit
    }
}

pub struct Semaphore {
    api: Arc<LockApi>,
    prefix: String,
    limit: i64,
    session_name: String,
    monitor_retries: u32,
    session: Option<Session>,
    released: Arc<AtomicBool>,
}

impl Semaphore {
    pub fn new(
        api: Arc<LockApi>,
        prefix: String,
        limit: i64,
        session_name: String,
        monitor_retries: u32,
    ) -> Self {
        Semaphore {
            api,
            prefix,
            limit,
            session_name,
            monitor_retries,
            session: None,
            released: Arc::new(AtomicBool::new(false)),
        }
    }

    fn lock_key(&self) -> String {
        join_key(&self.prefix, LOCK_KEY)
    }

    /// The `.lock` pair among `pairs`, and the set it holds, pruned.
    fn holder_set(&self, pairs: &[KvPair]) -> Result<(Option<KvPair>, HolderSet), String> {
        let lock_key = self.lock_key();
        let pair = pairs.iter().find(|p| p.key == lock_key).cloned();
        if pair.as_ref().is_some_and(|p| p.flags != SEMAPHORE_FLAG) {
            return Err(ERR_CONFLICT.to_string());
        }
        let mut set = HolderSet::decode(pair.as_ref(), self.limit)?;
        set.prune(pairs);
        Ok((pair, set))
    }

    fn take_slot(
        &self,
        session: &str,
        mut pacing: Pacing,
        stop: &AtomicBool,
    ) -> Result<Acquired, String> {
        let contender = join_key(&self.prefix, session);
        let params = vec![
            format!("acquire={}", super::super::api_client::escape(session)),
            format!("flags={SEMAPHORE_FLAG}"),
        ];
        match self.api.put(&contender, params, b"") {
            Ok(true) => {}
            Ok(false) => return Err("failed to make contender entry: <nil>".to_string()),
            Err(e) => return Err(format!("failed to make contender entry: {e}")),
        }
        let mut index = 0;
        loop {
            if stop.load(Ordering::SeqCst) {
                return Ok(Acquired::Stopped);
            }
            let Some(wait) = pacing.next_wait(Instant::now()) else {
                return Ok(Acquired::Stopped);
            };
            let read = Read {
                consistent: false,
                index,
                wait: Some(wait),
            };
            let (pairs, last_index) = self
                .api
                .list(&self.prefix, read)
                .map_err(|e| format!("failed to read prefix: {e}"))?;
            let (pair, mut set) = self.holder_set(&pairs)?;
            if set.limit != self.limit {
                return Err(format!(
                    "semaphore limit conflict (lock: {}, local: {})",
                    set.limit, self.limit
                ));
            }
            if set.is_full() {
                index = last_index;
                continue;
            }
            set.holders.insert(session.to_string(), true);
            let modify_index = pair.map_or(0, |p| p.modify_index);
            let params = vec![
                format!("cas={modify_index}"),
                format!("flags={SEMAPHORE_FLAG}"),
            ];
            let stored = self
                .api
                .put(&self.lock_key(), params, &set.encode())
                .map_err(|e| format!("failed to update lock: {e}"))?;
            if stored {
                return Ok(Acquired::Held);
            }
            // Another contender changed the set first: read it again (the blocking
            // read with the old index returns at once, the key having changed).
        }
    }

    /// Take our session out of the holder set, retrying lost check-and-sets.
    fn leave_holder_set(&self, session: &str) -> Result<(), String> {
        for _ in 0..MAX_CAS_TRIES {
            let (pair, _) = self
                .api
                .get(&self.lock_key(), Read::default())
                .map_err(|e| e.to_string())?;
            let mut set = HolderSet::decode(pair.as_ref(), self.limit)?;
            if set.holders.remove(session).is_none() {
                return Ok(());
            }
            let modify_index = pair.map_or(0, |p| p.modify_index);
            let params = vec![
                format!("cas={modify_index}"),
                format!("flags={SEMAPHORE_FLAG}"),
            ];
            let stored = self
                .api
                .put(&self.lock_key(), params, &set.encode())
                .map_err(|e| format!("failed to update lock: {e}"))?;
            if stored {
                return Ok(());
            }
        }
        Err("failed to update lock: too many concurrent changes".to_string())
    }
}

impl Holder for Semaphore {
    fn acquire(
        &mut self,
        pacing: Pacing,
        stop: &AtomicBool,
        events: Sender<Event>,
    ) -> Result<Acquired, String> {
        if self.session.is_some() {
            return Err("Semaphore already held".to_string());
        }
        let session = Session::create(self.api.clone(), &self.session_name, Behavior::Delete)?;
        let outcome = self.take_slot(session.id(), pacing, stop);
        if !matches!(outcome, Ok(Acquired::Held)) {
            // Destroying the session deletes its contender key (behavior delete).
            session.end();
            return outcome;
        }
        let monitor = Monitor {
            api: self.api.clone(),
            prefix: self.prefix.clone(),
            limit: self.limit,
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
            return Err("Semaphore not held".to_string());
        };
        self.released.store(true, Ordering::SeqCst);
        let left = self.leave_holder_set(session.id()).and_then(|()| {
            self.api
                .delete(&join_key(&self.prefix, session.id()), Vec::new())
                .map(|_| ())
                .map_err(|e| e.to_string())
        });
        session.end();
        left
    }

    fn cleanup(&mut self) -> Result<Cleanup, String> {
        if self.session.is_some() {
            return Err("Semaphore already held".to_string());
        }
        let (pairs, _) = self
            .api
            .list(&self.prefix, Read::default())
            .map_err(|e| format!("failed to read prefix: {e}"))?;
        let (pair, set) = self.holder_set(&pairs)?;
        let Some(pair) = pair else {
            return Ok(Cleanup::Done);
        };
        if !set.holders.is_empty() {
            return Ok(Cleanup::InUse);
        }
        self.api
            .remove_unchanged(&pair.key, pair.modify_index, "semaphore")
    }
}

/// Watches the prefix while we hold a slot; `Lost` once our session is no longer in the
/// (pruned) holder set.
struct Monitor {
    api: Arc<LockApi>,
    prefix: String,
    limit: i64,
    session: String,
    retries: u32,
    released: Arc<AtomicBool>,
}

impl Monitor {
    fn run(self, events: &Sender<Event>) {
        let lock_key = join_key(&self.prefix, LOCK_KEY);
        super::monitor_while_held(self.retries, &self.released, events, |read| {
            let (pairs, last_index) = self.api.list(&self.prefix, read)?;
            let pair = pairs.iter().find(|p| p.key == lock_key);
            let Ok(mut set) = HolderSet::decode(pair, self.limit) else {
                return Ok(None);
            };
            set.prune(&pairs);
            Ok(set
                .holders
                .contains_key(&self.session)
                .then_some(last_index))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;

    fn pair(key: &str, session: Option<&str>, value: Option<&[u8]>) -> KvPair {
        KvPair {
            key: key.into(),
            modify_index: 4,
            flags: SEMAPHORE_FLAG,
            value: value.map(|v| base64::engine::general_purpose::STANDARD.encode(v)),
            session: session.map(str::to_string),
        }
    }

    #[test]
    fn the_holder_set_reads_and_writes_consuls_json() {
        let empty = HolderSet::decode(None, 2).expect("absent");
        assert_eq!(empty.limit, 2);
        assert!(empty.holders.is_empty());
        let null = HolderSet::decode(Some(&pair("p/.lock", None, None)), 3).expect("null");
        assert_eq!(null.limit, 3);
        let stored = br#"{"Limit":2,"Holders":{"a":true,"b":true}}"#;
        let set = HolderSet::decode(Some(&pair("p/.lock", None, Some(stored))), 5).expect("set");
        assert_eq!(set.limit, 2, "the stored limit wins, to detect conflicts");
        assert!(set.is_full());
        assert_eq!(set.encode(), stored.to_vec());
        let bad = HolderSet::decode(Some(&pair("p/.lock", None, Some(b"{"))), 2);
        assert!(bad
            .expect_err("bad json")
            .starts_with("lock decoding failed: "));
    }

    #[test]
    fn holders_without_a_live_contender_key_are_pruned() {
        let mut set = HolderSet {
            limit: 2,
            holders: [("a".to_string(), true), ("gone".to_string(), true)]
                .into_iter()
                .collect(),
        };
        let pairs = vec![
            pair("p/.lock", None, None),
            pair("p/a", Some("a"), None),
            pair("p/gone", None, None),
            pair("p/c", Some("c"), None),
        ];
        set.prune(&pairs);
        assert_eq!(set.holders.keys().collect::<Vec<_>>(), ["a"]);
        assert!(!set.is_full());
    }
}
