//! The transmit-limited broadcast queue (memberlist's TransmitLimitedQueue): updates
//! waiting to be piggybacked. The least-sent go first (newest first among equals); each
//! is dropped once sent `limit` times; a new update about a node replaces the queued one.

use super::types::Update;
use crate::codec;
use std::cmp::Reverse;
use std::collections::BTreeMap;

/// Order of service: fewest transmissions first, then newest.
type Key = (u32, Reverse<u64>);

#[derive(Debug, Clone)]
struct Queued {
    update: Update,
    /// Encoded size in bytes, measured once through the codec.
    size: usize,
}

#[derive(Debug, Clone)]
pub struct BroadcastQueue {
    items: BTreeMap<Key, Queued>,
    by_node: BTreeMap<String, Key>,
    next_id: u64,
    limit: usize,
}

/// Encoded size of an update (what it adds to a message's piggyback list).
pub fn update_size(update: &Update) -> usize {
    codec::encode(update).map_or(usize::MAX, |b| b.len())
}

impl BroadcastQueue {
    /// A queue holding at most `limit` updates.
    pub fn new(limit: usize) -> BroadcastQueue {
        BroadcastQueue {
            items: BTreeMap::new(),
            by_node: BTreeMap::new(),
            next_id: 0,
            limit: limit.max(1),
        }
    }

    /// Queue `update`, replacing any queued update about the same node. Over the limit,
    /// the most-sent (oldest among equals) update is dropped.
    pub fn push(&mut self, update: Update) {
        let node = update.queue_key().into_owned();
        if let Some(old) = self.by_node.remove(&node) {
            self.items.remove(&old);
        }
        self.next_id += 1;
        let key = (0, Reverse(self.next_id));
        let size = update_size(&update);
        self.items.insert(key, Queued { update, size });
        self.by_node.insert(node, key);
        while self.items.len() > self.limit {
            if let Some((_, dropped)) = self.items.pop_last() {
                self.by_node.remove(dropped.update.queue_key().as_ref());
            }
        }
    }

    /// Take updates whose sizes fit in `budget` bytes (at most `max_items`), counting a
    /// transmission for each; those sent `transmit_limit` times leave the queue.
    pub fn take(&mut self, budget: usize, max_items: usize, transmit_limit: u32) -> Vec<Update> {
        let mut left = budget;
        let mut picked: Vec<Key> = Vec::new();
        for (key, item) in &self.items {
            if picked.len() >= max_items || left < MIN_UPDATE_BYTES {
                break;
            }
            if item.size <= left {
                left -= item.size;
                picked.push(*key);
            }
        }
        let mut out = Vec::with_capacity(picked.len());
        for key in picked {
            let Some(item) = self.items.remove(&key) else {
                continue;
            };
            out.push(item.update.clone());
            let transmits = key.0 + 1;
            if transmits >= transmit_limit {
                self.by_node.remove(item.update.queue_key().as_ref());
            } else {
                let new_key = (transmits, key.1);
                self.by_node
                    .insert(item.update.queue_key().into_owned(), new_key);
                self.items.insert(new_key, item);
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Is an update about `node` still queued?
    pub fn contains(&self, node: &str) -> bool {
        self.by_node.contains_key(node)
    }
}

/// No update encodes smaller than this (variant tag, a name, an incarnation, a name),
/// so a smaller leftover budget ends the search.
const MIN_UPDATE_BYTES: usize = 4;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::swim::types::Incarnation;

    fn suspect(node: &str, inc: u64) -> Update {
        Update::Suspect {
            node: node.into(),
            incarnation: Incarnation(inc),
            from: "x".into(),
        }
    }

    #[test]
    fn newest_and_least_sent_first_and_retired_after_the_limit() {
        let mut q = BroadcastQueue::new(100);
        q.push(suspect("a", 1));
        q.push(suspect("b", 1));
        assert_eq!(q.take(1400, 1, 2), vec![suspect("b", 1)]);
        // b was sent once, a never: a first now.
        assert_eq!(q.take(1400, 10, 2), vec![suspect("a", 1), suspect("b", 1)]);
        assert_eq!(q.len(), 1, "b reached the limit of 2");
        assert_eq!(q.take(1400, 10, 2), vec![suspect("a", 1)]);
        assert!(q.is_empty());
    }

    #[test]
    fn a_newer_update_about_a_node_replaces_the_older_one() {
        let mut q = BroadcastQueue::new(100);
        q.push(suspect("a", 1));
        q.take(1400, 10, 5);
        q.push(suspect("a", 2));
        assert_eq!(q.len(), 1);
        assert_eq!(q.take(1400, 10, 5), vec![suspect("a", 2)]);
    }

    #[test]
    fn the_byte_budget_and_the_queue_limit_hold() {
        let mut q = BroadcastQueue::new(3);
        for i in 0..5 {
            q.push(suspect(&format!("n{i}"), 1));
        }
        assert_eq!(q.len(), 3, "the queue limit drops the oldest");
        assert!(!q.contains("n0") && !q.contains("n1"));
        let one = update_size(&suspect("n4", 1));
        let got = q.take(2 * one, 10, 5);
        assert_eq!(got.len(), 2);
        assert_eq!(q.take(0, 10, 5), vec![]);
    }
}
