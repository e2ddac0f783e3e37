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
    pub(super) fn apply_kv(&mut self, index: u64, op: &KvOp) -> CommandResult {
        match op {
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

    /// Delete a key, leaving a tombstone; absent keys change nothing.
    fn kv_remove(&mut self, index: u64, key: &str) -> bool {
        if self.kv.remove(key).is_none() {
            return false;
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
