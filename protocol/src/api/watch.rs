//! What a blocking read waits on, and what an applied command may have moved: the pure
//! half of targeted wake-ups (the registry of parked reads lives in `actors`).
//!
//! A parked read (`?index=N`) can only be answered once the index it reports moves.
//! That index is a function of a few rows of the store, so the read names them as a
//! [`WatchKey`], and every applied command names what it may have changed as a
//! [`Touch`]. The state machine wakes a parked read only when a touch [`Touch::hits`]
//! its key. Over-approximating is safe (a read woken for nothing re-checks and parks
//! again); missing a touch would lose a wake-up, so every mapping here errs wide:
//! a failed CAS still touches its key, and the catalog is watched as one table.

use super::Read;
use crate::store::{Command, KvOp, Store};

/// The part of the store a blocking read's index depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchKey {
    /// One existing KV key: its index is the key's ModifyIndex.
    KvKey(String),
    /// Every KV key under a prefix (tombstones included). `""` is the whole KV table:
    /// a missing key reports the KV table's index, which any KV write moves.
    KvPrefix(String),
    /// Nodes, services and checks (catalog and health reads, DNS).
    Catalog,
}

/// What one applied command may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch<'a> {
    /// One KV key was written or deleted.
    KvKey(&'a str),
    /// Every KV key under this prefix may have been deleted.
    KvTree(&'a str),
    /// A registration or deregistration.
    Catalog,
}

/// The key a blocking `read` watches, given the store it is about to be checked
/// against. It depends on the store for one case (a missing key watches the KV table),
/// so a caller registers it and re-reads the store before trusting a "not yet".
pub fn watch_key(store: &Store, read: &Read) -> WatchKey {
    match read {
        Read::KvGet { key } => match store.kv_get(key) {
            Some(_) => WatchKey::KvKey(key.clone()),
            None => WatchKey::KvPrefix(String::new()),
        },
        Read::KvList { prefix } | Read::KvKeys { prefix, .. } => WatchKey::KvPrefix(prefix.clone()),
        Read::CatalogNodes { .. }
        | Read::CatalogServices { .. }
        | Read::CatalogService { .. }
        | Read::CatalogNode { .. }
        | Read::HealthService { .. }
        | Read::HealthNode { .. }
        | Read::HealthChecks { .. }
        | Read::HealthState { .. }
        | Read::InstancesHealth { .. }
        | Read::Node { .. }
        | Read::AddressOwners { .. } => WatchKey::Catalog,
    }
}

/// What applying `cmd` may have changed (whether or not it did: a failed CAS too).
pub fn touched_by(cmd: &Command) -> Touch<'_> {
    match cmd {
        Command::Register(_) | Command::Deregister(_) => Touch::Catalog,
        Command::Kv(op) => match op {
            KvOp::Set { key, .. }
            | KvOp::Cas { key, .. }
            | KvOp::Delete { key }
            | KvOp::DeleteCas { key, .. } => Touch::KvKey(key),
            KvOp::DeleteTree { prefix } => Touch::KvTree(prefix),
        },
    }
}

impl Touch<'_> {
    /// Whether this change may move the index of a read watching `key`.
    pub fn hits(&self, key: &WatchKey) -> bool {
        match (self, key) {
            (Touch::Catalog, WatchKey::Catalog) => true,
            (Touch::KvKey(k), WatchKey::KvKey(w)) => k == w,
            (Touch::KvKey(k), WatchKey::KvPrefix(p)) => k.starts_with(p.as_str()),
            (Touch::KvTree(t), WatchKey::KvKey(w)) => w.starts_with(t),
            // Deleting under `t` changes keys under `p` when one prefix holds the other.
            (Touch::KvTree(t), WatchKey::KvPrefix(p)) => {
                p.starts_with(t) || t.starts_with(p.as_str())
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::answer::{read_index, PrefixIndexWatch};
    use crate::store::{Node, RegisterRequest};

    const KEYS: [&str; 6] = ["", "a", "a/b", "a/c", "ab", "b"];

    fn kv_ops() -> Vec<KvOp> {
        let mut ops = Vec::new();
        for key in KEYS {
            let key = key.to_string();
            ops.push(KvOp::Set {
                key: key.clone(),
                value: vec![1],
                flags: 0,
            });
            ops.push(KvOp::Delete { key: key.clone() });
            ops.push(KvOp::DeleteTree {
                prefix: key.clone(),
            });
            ops.push(KvOp::Cas {
                key: key.clone(),
                value: vec![2],
                flags: 0,
                index: 0,
            });
        }
        ops
    }

    fn reads() -> Vec<Read> {
        let mut reads = vec![Read::CatalogNodes {
            node_meta: Default::default(),
        }];
        for key in KEYS {
            reads.push(Read::KvGet { key: key.into() });
            reads.push(Read::KvList { prefix: key.into() });
        }
        reads
    }

    /// Every command that moves a read's index touches the key that read watched: the
    /// property that makes targeted wake-ups lose nothing. Checked exhaustively over
    /// two-command histories on a small key space (existing, missing, nested keys).
    #[test]
    fn no_change_to_a_read_index_escapes_its_watch_key() {
        let register = Command::Register(RegisterRequest {
            node: Node {
                node: "n1".into(),
                address: "10.0.0.1".into(),
                ..Node::default()
            },
            ..RegisterRequest::default()
        });
        let mut commands: Vec<Command> = kv_ops().into_iter().map(Command::Kv).collect();
        commands.push(register);
        let mut checked = 0;
        for first in &commands {
            let mut base = Store::new();
            base.apply(1, first);
            for cmd in &commands {
                let mut after = base.clone();
                after.apply(2, cmd);
                for read in reads() {
                    let before = read_index(&base, &read, &mut PrefixIndexWatch::new());
                    let now = read_index(&after, &read, &mut PrefixIndexWatch::new());
                    if before != now {
                        let key = watch_key(&base, &read);
                        assert!(
                            touched_by(cmd).hits(&key),
                            "{cmd:?} moved {read:?} ({before} -> {now}) but missed {key:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 500, "poor coverage: {checked}");
    }

    #[test]
    fn unrelated_keys_are_not_hit() {
        let key = WatchKey::KvKey("park/1".into());
        assert!(!Touch::KvKey("park/2").hits(&key));
        assert!(!Touch::KvKey("park/10").hits(&key));
        assert!(!Touch::Catalog.hits(&key));
        assert!(Touch::KvTree("park/").hits(&key));
        assert!(!Touch::KvTree("other/").hits(&key));
        let prefix = WatchKey::KvPrefix("park/".into());
        assert!(Touch::KvKey("park/2").hits(&prefix));
        assert!(!Touch::KvKey("parking").hits(&prefix));
        assert!(Touch::KvTree("p").hits(&prefix));
        assert!(Touch::KvTree("park/x/").hits(&prefix));
    }
}
