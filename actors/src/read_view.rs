//! The published, versioned read view of the replicated store.
//!
//! After each applied batch the Fsm publishes a new immutable version (`Arc<Store>`,
//! an O(1) clone of its working store: the tables are persistent maps) with one atomic
//! pointer swap (`arc-swap`). A reader loads the current version without a lock and may
//! hold it as long as it likes: writers never wait for readers, readers never wait for
//! writers, and a snapshot is just a version kept by the snapshot thread. A version is
//! always a whole number of batches.
//!
//! The view also holds the registry of parked blocking reads ([`Watch`]): publishing a
//! version wakes only the reads whose watched key the batch touched.

pub use crate::watch_set::Watch;
use crate::watch_set::WatchSet;
use arc_swap::ArcSwap;
use protocol::api::watch::{Touch, WatchKey};
use protocol::store::Store;
use std::sync::Arc;

/// Cheap to clone: every clone sees the same versions and the same parked reads.
#[derive(Clone)]
pub struct ReadView {
    current: Arc<ArcSwap<Store>>,
    watches: Arc<WatchSet>,
}

impl Default for ReadView {
    fn default() -> Self {
        ReadView::new(Store::new())
    }
}

impl ReadView {
    pub fn new(store: Store) -> Self {
        ReadView {
            current: Arc::new(ArcSwap::from_pointee(store)),
            watches: Arc::new(WatchSet::default()),
        }
    }

    /// The newest published version. No lock is held: the caller owns this version
    /// until it drops it, whatever is published meanwhile.
    pub fn read(&self) -> Arc<Store> {
        self.current.load_full()
    }

    /// The newest published version for a short look (answering one read): no
    /// reference count is taken in the common case, so concurrent readers (DNS workers,
    /// HTTP workers) do not contend on one counter. Do not hold it across an `.await`.
    pub fn look(&self) -> arc_swap::Guard<Arc<Store>> {
        self.current.load()
    }

    /// Park on `key`: the returned watch wakes once a version published after this call
    /// touches it. Register BEFORE the look at the store that decided to wait.
    pub fn watch(&self, key: WatchKey) -> Watch {
        self.watches.register(key)
    }

    /// A blocking read's loop: `look` at the newest version until it answers (`Ok`) or,
    /// having said which key its answer waits on (`Err`), that key is touched; after the
    /// `deadline` it is asked once more with `expired` set and must answer.
    ///
    /// Never misses a change: the watch is registered BEFORE the look that decides to
    /// wait on it (a new key is registered, then the store is looked at again), so a
    /// version published after that look wakes it, and one published before is seen by
    /// it. Each version is dropped before waiting: a parked read pins no old version.
    pub async fn wait_for<T>(
        &self,
        deadline: tokio::time::Instant,
        mut look: impl FnMut(&Store, bool) -> Result<T, WatchKey>,
    ) -> T {
        let mut parked: Option<Watch> = None;
        let mut expired = false;
        loop {
            let key = match look(&self.read(), expired) {
                Ok(answer) => return answer,
                Err(key) => key,
            };
            match &parked {
                Some(watch) if *watch.key() == key => {
                    if tokio::time::timeout_at(deadline, watch.changed())
                        .await
                        .is_err()
                    {
                        expired = true;
                    }
                }
                // Register, then look again before waiting.
                _ => parked = Some(self.watch(key)),
            }
        }
    }

    /// Blocking reads parked right now.
    pub fn parked(&self) -> usize {
        self.watches.parked()
    }

    /// Publish a version, then wake the reads whose keys `touches` hit.
    pub(crate) fn publish(&self, store: Arc<Store>, touches: &[Touch<'_>]) {
        self.current.store(store);
        self.watches.notify(touches);
    }

    /// Publish a version that replaces the whole store, waking every parked read.
    pub(crate) fn replace(&self, store: Arc<Store>) {
        self.current.store(store);
        self.watches.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::store::{Command, KvOp};
    use std::time::Duration;

    fn set(store: &mut Store, index: u64, key: &str) {
        let cmd = Command::Kv(KvOp::Set {
            key: key.into(),
            value: vec![1],
            flags: 0,
        });
        store.apply(index, &cmd);
    }

    /// A version published right after a look (before the read waits) wakes it: the
    /// look here publishes the change itself, after the version it was handed was
    /// loaded, which is the narrowest race the Fsm's thread can win.
    #[tokio::test]
    async fn a_change_published_right_after_the_look_is_not_missed() {
        let mut working = Store::new();
        set(&mut working, 1, "k");
        let view = ReadView::new(working.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
        let mut looks = 0;
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            view.wait_for(deadline, |store, expired| {
                looks += 1;
                let index = store.kv_get("k").map_or(0, |e| e.modify_index);
                if index > 1 || expired {
                    return Ok(index);
                }
                if looks == 1 {
                    set(&mut working, 2, "k");
                    view.publish(Arc::new(working.clone()), &[Touch::KvKey("k")]);
                }
                Err(WatchKey::KvKey("k".into()))
            }),
        )
        .await
        .expect("the racing change woke the read");
        assert_eq!(answer, 2);
        assert_eq!(view.parked(), 0);
    }

    #[tokio::test]
    async fn the_deadline_answers_with_what_there_is() {
        let view = ReadView::new(Store::new());
        let deadline = tokio::time::Instant::now() + Duration::from_millis(20);
        let answer = view
            .wait_for(deadline, |store, expired| match expired {
                true => Ok(store.last_index()),
                false => Err(WatchKey::Catalog),
            })
            .await;
        assert_eq!(answer, 0);
        assert_eq!(view.parked(), 0);
    }
}
