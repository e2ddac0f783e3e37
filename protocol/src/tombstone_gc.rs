//! When the leader reaps KV tombstones (Consul's `TombstoneGC`, `state/tombstone_gc.go`).
//!
//! Tombstones are only useful while a client might still hold an index older than the
//! delete; after `ttl` they are reaped. The leader does not track each tombstone:
//! it hints "tombstones exist up to Raft index I" at its own clock time, hints are
//! batched into buckets `granularity` wide (expiring at the bucket's end plus `ttl`),
//! and an expired bucket becomes one `Command::ReapTombstones { up_to_index }` with the
//! highest index hinted into it. So every tombstone lives at least `ttl` and at most
//! `ttl + granularity` (plus the time to commit the reap).
//!
//! Only a ready leader keeps this state: a new leader starts with a hint of its applied
//! index (Consul hints `raft.LastIndex()` in `establishLeadership`), so tombstones left
//! by an earlier leader are reaped one `ttl` into the new term, and a follower keeps
//! nothing. Pure: time comes in as milliseconds.

use std::collections::BTreeMap;

/// Consul's `TombstoneTTL` default (15 minutes).
pub const DEFAULT_TOMBSTONE_TTL_MS: u64 = 15 * 60 * 1000;
/// Consul's `TombstoneTTLGranularity` default (30 seconds).
pub const DEFAULT_TOMBSTONE_GRANULARITY_MS: u64 = 30 * 1000;
/// At most this many buckets wait (older ones merge into the next): a bound however
/// small the granularity is against the TTL.
pub const MAX_PENDING_BUCKETS: usize = 1024;

/// The bucket width for a TTL: Consul's 30 s, or a tenth of a shorter TTL (tests).
pub fn granularity_for(ttl_ms: u64) -> u64 {
    DEFAULT_TOMBSTONE_GRANULARITY_MS.min(ttl_ms / 10).max(1)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TombstoneGc {
    ttl_ms: u64,
    granularity_ms: u64,
    /// Expiry time (ms) -> highest index hinted into that bucket.
    buckets: BTreeMap<u64, u64>,
    /// Highest index ever hinted (a repeat hint of it adds nothing).
    hinted: u64,
}

impl TombstoneGc {
    pub fn new(ttl_ms: u64) -> TombstoneGc {
        TombstoneGc {
            ttl_ms,
            granularity_ms: granularity_for(ttl_ms),
            buckets: BTreeMap::new(),
            hinted: 0,
        }
    }

    pub fn ttl_ms(&self) -> u64 {
        self.ttl_ms
    }

    pub fn granularity_ms(&self) -> u64 {
        self.granularity_ms
    }

    /// Tombstones exist up to `index` as of `now_ms`: reap them one TTL from the end of
    /// the current bucket. Indexes at or below an earlier hint are already covered.
    pub fn hint(&mut self, now_ms: u64, index: u64) {
        if index <= self.hinted {
            return;
        }
        self.hinted = index;
        let bucket_end = (now_ms / self.granularity_ms + 1).saturating_mul(self.granularity_ms);
        let expires = bucket_end.saturating_add(self.ttl_ms);
        let slot = self.buckets.entry(expires).or_insert(0);
        *slot = (*slot).max(index);
        while self.buckets.len() > MAX_PENDING_BUCKETS {
            // Merge the two oldest into the later one: reaps later, never earlier.
            if let Some((_, oldest)) = self.buckets.pop_first() {
                if let Some(mut next) = self.buckets.first_entry() {
                    *next.get_mut() = (*next.get()).max(oldest);
                }
            }
        }
    }

    /// The reap due at `now_ms`, if any: the highest index of every expired bucket
    /// (they are forgotten; a failed proposal is simply hinted again).
    pub fn expired(&mut self, now_ms: u64) -> Option<u64> {
        let mut up_to = None;
        while let Some(entry) = self.buckets.first_entry() {
            if *entry.key() > now_ms {
                break;
            }
            let index = entry.remove();
            up_to = Some(up_to.map_or(index, |u: u64| u.max(index)));
        }
        up_to
    }

    /// When the next bucket expires (for the shell's timer).
    pub fn next_expiry_ms(&self) -> Option<u64> {
        self.buckets.keys().next().copied()
    }

    /// Whether a reap is pending (Consul's `PendingExpiration`).
    pub fn pending(&self) -> bool {
        !self.buckets.is_empty()
    }

    /// Leadership ended: forget everything (the next leader hints its own).
    pub fn reset(&mut self) {
        self.buckets.clear();
        self.hinted = 0;
    }

    /// A reap of `up_to_index` could not be proposed: try it again one bucket later.
    pub fn retry(&mut self, now_ms: u64, up_to_index: u64) {
        let at = now_ms.saturating_add(self.granularity_ms);
        let slot = self.buckets.entry(at).or_insert(0);
        *slot = (*slot).max(up_to_index);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consuls_defaults_and_a_tenth_of_a_short_ttl() {
        assert_eq!(granularity_for(DEFAULT_TOMBSTONE_TTL_MS), 30_000);
        assert_eq!(granularity_for(2_000), 200);
        assert_eq!(granularity_for(5), 1);
    }

    #[test]
    fn hints_in_one_bucket_reap_together_after_the_ttl() {
        let mut gc = TombstoneGc::new(1_000); // buckets of 100 ms
        gc.hint(1_010, 5);
        gc.hint(1_090, 9);
        assert_eq!(gc.next_expiry_ms(), Some(2_100));
        assert_eq!(gc.expired(2_099), None);
        assert!(gc.pending());
        assert_eq!(gc.expired(2_100), Some(9));
        assert!(!gc.pending());
        assert_eq!(gc.expired(5_000), None);
    }

    #[test]
    fn every_hinted_index_lives_at_least_the_ttl_and_at_most_ttl_plus_a_bucket() {
        let mut gc = TombstoneGc::new(1_000);
        for now in (0..3_000).step_by(37) {
            gc.hint(now, now + 1);
            if let Some(up_to) = gc.expired(now) {
                // The newest index reaped was hinted at (up_to - 1) ms.
                let hinted_at = up_to - 1;
                assert!(now - hinted_at >= 1_000, "reaped too early at {now}");
                assert!(now - hinted_at <= 1_100 + 37, "reaped too late at {now}");
            }
        }
    }

    #[test]
    fn older_or_repeated_hints_add_nothing_and_reset_forgets() {
        let mut gc = TombstoneGc::new(1_000);
        gc.hint(0, 10);
        gc.hint(500, 10);
        gc.hint(600, 3);
        assert_eq!(gc.expired(u64::MAX), Some(10));
        gc.hint(0, 12);
        gc.reset();
        assert!(!gc.pending());
        gc.hint(0, 12);
        assert!(gc.pending(), "after a reset the same index is hinted again");
    }

    #[test]
    fn a_failed_reap_is_retried_a_bucket_later() {
        let mut gc = TombstoneGc::new(1_000);
        gc.hint(0, 7);
        assert_eq!(gc.expired(1_100), Some(7));
        gc.retry(1_100, 7);
        assert_eq!(gc.expired(1_150), None);
        assert_eq!(gc.expired(1_200), Some(7));
    }

    #[test]
    fn pending_buckets_are_bounded_and_merge_later_never_earlier() {
        let mut gc = TombstoneGc::new(10_000); // buckets of 1 s
        for i in 0..(MAX_PENDING_BUCKETS as u64 + 10) {
            gc.hint(i * 1_000, i + 1);
        }
        assert_eq!(gc.buckets.len(), MAX_PENDING_BUCKETS);
        let first = gc.next_expiry_ms().unwrap();
        // Indexes 1..=11 merged into the first kept bucket, which expires no earlier
        // than their own would have.
        assert_eq!(gc.expired(first), Some(11));
    }
}
