//! KV: applying `KvOp`s, tombstones, and the KV reads.

use super::{CommandResult, KvEntry, KvOp, Store, Table};
use imbl::OrdMap;
use std::collections::BTreeSet;
use std::ops::Bound;
use std::sync::Arc;

/// Entries of a string-keyed map whose key starts with `prefix`, in key order.
fn under_prefix<'a, 'p, V: Clone>(
    map: &'a OrdMap<String, V>,
    prefix: &'p str,
) -> impl Iterator<Item = (&'a String, &'a V)> + use<'a, 'p, V> {
    map.range::<_, str>((Bound::Included(prefix), Bound::Unbounded))
        .take_while(move |(k, _)| k.starts_with(prefix))
}

impl Store {
    pub(super) fn apply_kv(&mut self, index: u64, now_ms: u64, op: &KvOp) -> CommandResult {
        match op {
            KvOp::Lock {
                key,
                value,
                flags,
                session,
            } => match self.kv_lock(index, key, value, *flags, session, now_ms) {
                Ok(taken) => CommandResult::Bool(taken),
                Err(text) => CommandResult::Rejected(text),
            },
            KvOp::Unlock {
                key,
                value,
                flags,
                session,
            } => match self.kv_unlock(index, key, value, *flags, session) {
                Ok(released) => CommandResult::Bool(released),
                Err(text) => CommandResult::Rejected(text),
            },
            KvOp::Set { key, value, flags } => {
                self.kv_write(index, key, value, *flags);
                CommandResult::Done
            }
            KvOp::Cas {
                key,
                value,
                flags,
                index: expected,
            } => {
                let holds = match self.kv.get(key) {
                    None => *expected == 0,
                    Some(entry) => *expected != 0 && entry.modify_index == *expected,
                };
                if holds {
                    self.kv_write(index, key, value, *flags);
                }
                CommandResult::Bool(holds)
            }
            KvOp::Delete { key } => {
                self.kv_remove(index, key);
                CommandResult::Done
            }
            KvOp::DeleteCas {
                key,
                index: expected,
            } => {
                let holds = *expected != 0
                    && self
                        .kv
                        .get(key)
                        .is_some_and(|e| e.modify_index == *expected);
                if holds {
                    self.kv_remove(index, key);
                }
                CommandResult::Bool(holds)
            }
            KvOp::DeleteTree { prefix } => {
                let doomed: Vec<String> = under_prefix(&self.kv, prefix)
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in doomed {
                    self.kv_remove(index, &key);
                }
                CommandResult::Done
            }
        }
    }

    /// `?acquire=<session>` at `index`, time `now_ms` (Consul's `kvsLockTxn` plus the
    /// lock-delay check its KVS endpoint makes):
    /// - `Err("missing session")` for an empty session; `Ok(false)` while the key's
    ///   lock-delay lasts (`now_ms` before its end); `Err("invalid session \"<id>\"")`
    ///   for an unknown session (Patroni reads that prefix);
    /// - `Ok(false)` when another session holds the key;
    /// - otherwise `Ok(true)`: value and flags written, `Session` set, ModifyIndex moved,
    ///   LockIndex + 1 on a new acquisition (not when the holder acquires again); a
    ///   missing key is created with LockIndex 1.
    ///
    /// Nothing changes unless it answers `Ok(true)`.
    pub fn kv_lock(
        &mut self,
        index: u64,
        key: &str,
        value: &[u8],
        flags: u64,
        session: &str,
        now_ms: u64,
    ) -> Result<bool, String> {
        if session.is_empty() {
            return Err("missing session".into());
        }
        if self
            .lock_delays
            .get(key)
            .is_some_and(|until| now_ms < *until)
        {
            return Ok(false);
        }
        if !self.sessions.contains_key(session) {
            return Err(format!("invalid session {session:?}"));
        }
        let (create_index, lock_index) = match self.kv.get(key) {
            Some(e) => match e.session.as_deref() {
                None | Some("") => (e.create_index, e.lock_index + 1),
                Some(holder) if holder == session => (e.create_index, e.lock_index),
                Some(_) => return Ok(false),
            },
            None => (index, 1),
        };
        let entry = KvEntry {
            key: key.to_string(),
            value: Arc::from(value),
            flags,
            lock_index,
            session: Some(session.to_string()),
            create_index,
            modify_index: index,
        };
        self.kv.insert(key.to_string(), Arc::new(entry));
        self.kv_tombstones.remove(key);
        self.note_lock(session, key);
        self.bump(Table::Kv, index);
        Ok(true)
    }

    /// `?release=<session>` at `index` (Consul's `kvsUnlockTxn`): `Err("missing
    /// session")` for an empty session; `Ok(false)` when the key is missing or not held
    /// by `session`; otherwise `Ok(true)`: value and flags written, `Session` cleared,
    /// LockIndex kept, ModifyIndex moved. No lock-delay follows an explicit release.
    pub fn kv_unlock(
        &mut self,
        index: u64,
        key: &str,
        value: &[u8],
        flags: u64,
        session: &str,
    ) -> Result<bool, String> {
        if session.is_empty() {
            return Err("missing session".into());
        }
        let Some(existing) = self.kv.get(key) else {
            return Ok(false);
        };
        if existing.session.as_deref() != Some(session) {
            return Ok(false);
        }
        let entry = KvEntry {
            key: key.to_string(),
            value: Arc::from(value),
            flags,
            lock_index: existing.lock_index,
            session: None,
            create_index: existing.create_index,
            modify_index: index,
        };
        self.kv.insert(key.to_string(), Arc::new(entry));
        self.forget_lock(session, key);
        self.bump(Table::Kv, index);
        Ok(true)
    }

    /// Whether `session` holds `key`'s lock (a txn's `check-session`).
    pub fn session_holds(&self, key: &str, session: &str) -> bool {
        self.kv
            .get(key)
            .is_some_and(|e| e.session.as_deref() == Some(session))
    }

    /// An invalidated session's key under behavior `release`: the value stays, the
    /// session goes, ModifyIndex moves (LockIndex kept).
    pub(super) fn kv_clear_session(&mut self, index: u64, key: &str) {
        let holder = match self.kv.get_mut(key) {
            Some(entry) if entry.session.is_some() => {
                let entry = Arc::make_mut(entry);
                entry.modify_index = index;
                entry.session.take()
            }
            _ => return,
        };
        self.bump(Table::Kv, index);
        if let Some(holder) = holder {
            self.forget_lock(&holder, key);
        }
    }

    /// Upsert a key. An existing key keeps its create index, lock index and session; KV
    /// writes always move the ModifyIndex (Consul does not compare KV content).
    fn kv_write(&mut self, index: u64, key: &str, value: &[u8], flags: u64) {
        let (create_index, lock_index, session) = match self.kv.get(key) {
            Some(e) => (e.create_index, e.lock_index, e.session.clone()),
            None => (index, 0, None),
        };
        let entry = KvEntry {
            key: key.to_string(),
            value: Arc::from(value),
            flags,
            lock_index,
            session,
            create_index,
            modify_index: index,
        };
        self.kv.insert(key.to_string(), Arc::new(entry));
        self.kv_tombstones.remove(key);
        self.bump(Table::Kv, index);
    }

    /// Delete a key, leaving a tombstone; absent keys change nothing. A held lock goes
    /// with the key (locks are advisory: a plain delete ignores them, as in Consul).
    pub(super) fn kv_remove(&mut self, index: u64, key: &str) -> bool {
        let Some(removed) = self.kv.remove(key) else {
            return false;
        };
        if let Some(holder) = removed.session.as_deref() {
            self.forget_lock(holder, key);
        }
        self.kv_tombstones.insert(key.to_string(), index);
        self.bump(Table::Kv, index);
        true
    }

    /// One KV entry.
    pub fn kv_get(&self, key: &str) -> Option<&KvEntry> {
        self.kv.get(key).map(Arc::as_ref)
    }

    /// Every entry whose key starts with `prefix`, sorted by key.
    pub fn kv_list(&self, prefix: &str) -> Vec<&KvEntry> {
        under_prefix(&self.kv, prefix)
            .map(|(_, e)| e.as_ref())
            .collect()
    }

    /// Keys under `prefix`; with a separator, keys are cut just after the first separator
    /// following the prefix and de-duplicated ("folders"), as Consul's `?keys&separator=`.
    /// An empty separator means none.
    pub fn kv_keys(&self, prefix: &str, separator: Option<&str>) -> Vec<String> {
        let separator = separator.filter(|s| !s.is_empty());
        let mut keys = BTreeSet::new();
        for key in under_prefix(&self.kv, prefix).map(|(k, _)| k) {
            let remainder = &key[prefix.len()..];
            let cut = separator
                .and_then(|sep| remainder.find(sep).map(|at| prefix.len() + at + sep.len()));
            match cut {
                Some(end) => keys.insert(key[..end].to_string()),
                None => keys.insert(key.clone()),
            };
        }
        keys.into_iter().collect()
    }

    /// Max ModifyIndex under a prefix, tombstones included, and never below the
    /// graveyard floor of reaped tombstones (0 when nothing ever lived there and nothing
    /// was reaped); what X-Consul-Index reports for recurse/keys reads.
    pub fn kv_prefix_index(&self, prefix: &str) -> u64 {
        let live = under_prefix(&self.kv, prefix).map(|(_, e)| e.modify_index);
        let dead = under_prefix(&self.kv_tombstones, prefix).map(|(_, idx)| *idx);
        live.chain(dead)
            .max()
            .unwrap_or(0)
            .max(self.kv_graveyard_floor())
    }
}
