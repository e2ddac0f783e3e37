//! The registry of parked blocking reads: who waits on which [`WatchKey`], so that the
//! state machine wakes only the reads whose index a batch may have moved.
//!
//! A parked read holds a [`Watch`]: one small `Notify` registered under its key. A
//! notification is a stored permit (`notify_one`), so a change published between the
//! registration and the wait is never lost; the read then re-checks the newest version
//! and either answers or waits again on the same registration. Dropping the `Watch`
//! (answered, timed out, client gone: the future is dropped) removes it, so the registry
//! holds exactly the reads parked right now.
//!
//! Lookups per touched KV key: its exact watchers, plus every prefix watcher whose
//! prefix is a prefix of the key, found by looking up the key cut at each length some
//! registered prefix has (so the cost follows the number of distinct prefix lengths,
//! not the number of watchers). A `DeleteTree` walks the sorted maps from its prefix.

use parking_lot::Mutex;
use protocol::api::watch::{Touch, WatchKey};
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use tokio::sync::Notify;

/// Watchers of one key: registration id → its waker.
type Waiters = HashMap<u64, Arc<Notify>>;

#[derive(Default)]
pub(crate) struct WatchSet {
    inner: Mutex<Registry>,
}

#[derive(Default)]
struct Registry {
    next_id: u64,
    keys: BTreeMap<String, Waiters>,
    prefixes: BTreeMap<String, Waiters>,
    /// Length → how many registered prefixes have it.
    prefix_lengths: BTreeMap<usize, usize>,
    catalog: Waiters,
    /// Reads of the sessions table.
    sessions: Waiters,
    /// Case-folded service name → reads of that name's index.
    services: BTreeMap<String, Waiters>,
    /// Case-folded node name → reads of that node.
    nodes: BTreeMap<String, Waiters>,
    parked: usize,
}

/// One parked read's registration; dropping it unregisters.
pub struct Watch {
    set: Arc<WatchSet>,
    id: u64,
    key: WatchKey,
    notify: Arc<Notify>,
}

impl Watch {
    pub fn key(&self) -> &WatchKey {
        &self.key
    }

    /// Completes once a batch touching the key was published after the registration
    /// (or at once, when one was published since the last wait).
    pub async fn changed(&self) {
        self.notify.notified().await
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.set.inner.lock().remove(self.id, &self.key);
    }
}

impl WatchSet {
    pub(crate) fn register(self: &Arc<Self>, key: WatchKey) -> Watch {
        let notify = Arc::new(Notify::new());
        let id = self.inner.lock().insert(&key, notify.clone());
        Watch {
            set: self.clone(),
            id,
            key,
            notify,
        }
    }

    /// Wake every read whose key one of `touches` hits.
    pub(crate) fn notify(&self, touches: &[Touch<'_>]) {
        let registry = self.inner.lock();
        if registry.parked == 0 {
            return;
        }
        if touches.contains(&Touch::All) {
            registry.wake_all();
            return;
        }
        let mut catalog_done = false;
        for touch in touches {
            match *touch {
                Touch::All => {}
                Touch::Catalog if !catalog_done => {
                    catalog_done = true;
                    wake(&registry.catalog);
                }
                Touch::Catalog => {}
                Touch::Sessions => wake(&registry.sessions),
                Touch::Service(name) => {
                    if let Some(waiters) = registry.services.get(name) {
                        wake(waiters);
                    }
                }
                Touch::Node(_) if registry.nodes.is_empty() => {}
                Touch::Node(name) => {
                    if let Some(waiters) = registry.nodes.get(&name.to_lowercase()) {
                        wake(waiters);
                    }
                }
                Touch::KvKey(key) => {
                    if let Some(waiters) = registry.keys.get(key) {
                        wake(waiters);
                    }
                    registry.wake_prefixes_of(key);
                }
                Touch::KvTree(prefix) => {
                    for map in [&registry.keys, &registry.prefixes] {
                        map.range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
                            .take_while(|(k, _)| k.starts_with(prefix))
                            .for_each(|(_, waiters)| wake(waiters));
                    }
                    registry.wake_prefixes_of(prefix);
                }
            }
        }
    }

    /// Wake every parked read (the whole store was replaced).
    pub(crate) fn notify_all(&self) {
        self.inner.lock().wake_all();
    }

    /// Reads parked right now.
    pub(crate) fn parked(&self) -> usize {
        self.inner.lock().parked
    }
}

fn wake(waiters: &Waiters) {
    waiters.values().for_each(|n| n.notify_one());
}

impl Registry {
    fn wake_all(&self) {
        let maps = self
            .keys
            .values()
            .chain(self.prefixes.values())
            .chain(self.services.values())
            .chain(self.nodes.values());
        maps.chain([&self.catalog, &self.sessions]).for_each(wake);
    }

    fn insert(&mut self, key: &WatchKey, notify: Arc<Notify>) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.parked += 1;
        let waiters = match key {
            WatchKey::Catalog => &mut self.catalog,
            WatchKey::Sessions => &mut self.sessions,
            WatchKey::Service(name) => self.services.entry(name.clone()).or_default(),
            WatchKey::Node(name) => self.nodes.entry(name.clone()).or_default(),
            WatchKey::KvKey(k) => self.keys.entry(k.clone()).or_default(),
            WatchKey::KvPrefix(p) => {
                let waiters = self.prefixes.entry(p.clone()).or_default();
                if waiters.is_empty() {
                    *self.prefix_lengths.entry(p.len()).or_default() += 1;
                }
                waiters
            }
        };
        waiters.insert(id, notify);
        id
    }

    fn remove(&mut self, id: u64, key: &WatchKey) {
        let removed = match key {
            WatchKey::Catalog => self.catalog.remove(&id).is_some(),
            WatchKey::Sessions => self.sessions.remove(&id).is_some(),
            WatchKey::Service(name) => remove_from(&mut self.services, name, id).is_some(),
            WatchKey::Node(name) => remove_from(&mut self.nodes, name, id).is_some(),
            WatchKey::KvKey(k) => remove_from(&mut self.keys, k, id).is_some(),
            WatchKey::KvPrefix(p) => match remove_from(&mut self.prefixes, p, id) {
                Some(emptied) => {
                    if emptied {
                        self.forget_prefix_length(p.len());
                    }
                    true
                }
                None => false,
            },
        };
        if removed {
            self.parked -= 1;
        }
    }

    fn forget_prefix_length(&mut self, len: usize) {
        if let Some(count) = self.prefix_lengths.get_mut(&len) {
            *count -= 1;
            if *count == 0 {
                self.prefix_lengths.remove(&len);
            }
        }
    }

    /// Wake the watchers of every registered prefix of `key` (itself included).
    fn wake_prefixes_of(&self, key: &str) {
        for &len in self.prefix_lengths.range(..=key.len()).map(|(len, _)| len) {
            let Some(prefix) = key.get(..len) else {
                continue; // not a char boundary: no prefix of this key has that length
            };
            if let Some(waiters) = self.prefixes.get(prefix) {
                wake(waiters);
            }
        }
    }
}

/// Remove one registration; `Some(true)` when its key has no watcher left (and is gone).
fn remove_from(map: &mut BTreeMap<String, Waiters>, key: &str, id: u64) -> Option<bool> {
    let waiters = map.get_mut(key)?;
    waiters.remove(&id)?;
    let emptied = waiters.is_empty();
    if emptied {
        map.remove(key);
    }
    Some(emptied)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;
    use std::time::Duration;

    /// Consumes a stored permit: a notified watch completes its wait at once.
    fn woken(watch: &Watch) -> bool {
        watch.changed().now_or_never().is_some()
    }

    #[test]
    fn only_the_touched_keys_wake_and_the_registry_empties() {
        let set = Arc::new(WatchSet::default());
        let exact = set.register(WatchKey::KvKey("park/1".into()));
        let other = set.register(WatchKey::KvKey("park/2".into()));
        let prefix = set.register(WatchKey::KvPrefix("park/".into()));
        let unrelated_prefix = set.register(WatchKey::KvPrefix("parking/".into()));
        let everything = set.register(WatchKey::KvPrefix(String::new()));
        let catalog = set.register(WatchKey::Catalog);
        assert_eq!(set.parked(), 6);

        set.notify(&[Touch::KvKey("park/1")]);
        assert!(woken(&exact));
        assert!(woken(&prefix));
        assert!(woken(&everything));
        assert!(!woken(&other));
        assert!(!woken(&unrelated_prefix));
        assert!(!woken(&catalog));

        set.notify(&[Touch::KvTree("park")]);
        for w in [&exact, &other, &prefix, &unrelated_prefix, &everything] {
            assert!(woken(w), "{:?}", w.key());
        }
        assert!(!woken(&catalog));
        set.notify(&[Touch::Catalog, Touch::Catalog]);
        assert!(woken(&catalog));
        assert!(!woken(&exact));

        drop((exact, other, prefix, unrelated_prefix, everything, catalog));
        assert_eq!(set.parked(), 0);
        let registry = set.inner.lock();
        assert!(registry.keys.is_empty() && registry.prefixes.is_empty());
        assert!(registry.prefix_lengths.is_empty() && registry.catalog.is_empty());
    }

    #[test]
    fn a_service_watch_wakes_for_its_name_only() {
        let set = Arc::new(WatchSet::default());
        let web = set.register(WatchKey::Service("web".into()));
        let db = set.register(WatchKey::Service("db".into()));
        let catalog = set.register(WatchKey::Catalog);
        // A registration of web touches the catalog table and the name web.
        set.notify(&[Touch::Catalog, Touch::Service("web")]);
        assert!(woken(&web));
        assert!(woken(&catalog));
        assert!(!woken(&db), "another service's readers sleep on");
        set.notify_all();
        assert!(woken(&db));
        drop((web, db, catalog));
        assert_eq!(set.parked(), 0);
        assert!(set.inner.lock().services.is_empty());
    }

    #[test]
    fn a_node_watch_wakes_for_its_node_in_any_spelling_only() {
        let set = Arc::new(WatchSet::default());
        let n1 = set.register(WatchKey::Node("n1".into()));
        let n2 = set.register(WatchKey::Node("n2".into()));
        set.notify(&[Touch::Catalog, Touch::Node("N1")]);
        assert!(woken(&n1));
        assert!(
            !woken(&n2),
            "a write on another node leaves this one asleep"
        );
        drop((n1, n2));
        assert_eq!(set.parked(), 0);
        assert!(set.inner.lock().nodes.is_empty());
    }

    #[tokio::test]
    async fn a_change_before_the_wait_is_not_lost() {
        let set = Arc::new(WatchSet::default());
        let watch = set.register(WatchKey::KvKey("k".into()));
        // Published after registering, before anyone waits: the permit is kept.
        set.notify(&[Touch::KvKey("k")]);
        tokio::time::timeout(Duration::from_secs(5), watch.changed())
            .await
            .expect("the stored permit completes the wait");
    }

    #[test]
    fn prefixes_cut_inside_a_character_are_skipped() {
        let set = Arc::new(WatchSet::default());
        let two_bytes = set.register(WatchKey::KvPrefix("é".into()));
        let one_byte = set.register(WatchKey::KvPrefix("a".into()));
        set.notify(&[Touch::KvKey("éa")]);
        assert!(woken(&two_bytes));
        assert!(!woken(&one_byte));
        set.notify(&[Touch::KvKey("a")]);
        assert!(woken(&one_byte));
    }
}
