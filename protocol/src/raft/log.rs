//! The in-memory view of the Raft log: a bounded cache over the durable log.
//!
//! It may start after a snapshot (or after a compaction point): `base` is the last entry
//! no longer covered, with its term and the configuration in effect at it. For every
//! index after `base` the log knows the TERM (kept run-length: one `(first index, term)`
//! pair per run of entries of one term, so a log of millions of entries costs a few
//! pairs) and the configuration entries (few, small). Full entries are held only for a
//! suffix, the cache: `cache_first..=last_index`. Terms are all that log matching,
//! conflict detection, elections and commit need, so the core decides without disk;
//! only sending old entries to a lagging follower needs the entries themselves, which
//! the leader then asks the shell to load (`Output::LoadEntries`).
//!
//! Entries leave the cache oldest first, and only through [`Log::evict`], whose caller
//! (the core) allows only entries that are durable and already handed to the state
//! machine: everything still to be persisted is always cached. After a restart the
//! cache starts with the recovered tail only ([`RecoveredLog`]): committed entries
//! older than it are read back for applying as well.

use super::recovered::RecoveredLog;
use super::types::{Configuration, Entry, SnapshotMeta};
use crate::ids::{LogIndex, Term};
use std::collections::VecDeque;

#[derive(Debug, Default, Clone)]
pub struct Log {
    /// Everything up to and including `base.index` is compacted away (index 0: nothing).
    base: SnapshotMeta,
    /// The terms of `base.index + 1 ..= last`, run-length: `(first index of the run,
    /// term)`, ascending in both; empty when the log is empty after the base.
    terms: Vec<(u64, Term)>,
    last: u64,
    /// Configuration entries after the base, ascending (the membership in effect at
    /// any index without the entries).
    configs: Vec<(LogIndex, Configuration)>,
    /// Full entries `last - cache.len() + 1 ..= last`.
    cache: VecDeque<Entry>,
    /// `approx_bytes` of the cached payloads.
    cache_bytes: usize,
}

impl Log {
    /// Build from a snapshot (or none) and the recovered log. Entries at or below the
    /// snapshot index are dropped (the snapshot covers them); the rest must continue the
    /// snapshot contiguously. The recovered tail starts out cached; older entries are
    /// known by their terms (and configurations) only.
    ///
    /// Returns whether the entries had to be discarded because they do not continue the
    /// snapshot (they end before it, or hold a different entry at its index: a stale
    /// suffix, which by log matching is not committed); the caller then asks the disk
    /// to discard its log too.
    pub fn new(
        base: Option<SnapshotMeta>,
        recovered: impl Into<RecoveredLog>,
    ) -> Result<(Log, bool), String> {
        let base = base.unwrap_or_default();
        let recovered: RecoveredLog = recovered.into();
        if let Some(first) = recovered.first_index() {
            if first.0 > base.index.0 + 1 {
                // Entries between the snapshot and the log are missing: refuse rather
                // than run with a hole (e.g. every newer snapshot was unreadable).
                return Err(format!(
                    "the log starts at {first} but the snapshot ends at {}",
                    base.index
                ));
            }
        }
        let continues = base.index.0 == 0
            || recovered.first_index() == Some(LogIndex(base.index.0 + 1))
            || recovered.term_at(base.index) == Some(base.term);
        let parts = recovered.into_parts()?;
        let mut log = Log {
            last: base.index.0,
            base,
            ..Log::default()
        };
        let after = log.base.index.0;
        if !continues || parts.last <= after {
            return Ok((log, !continues));
        }
        let tail_first = parts.last + 1 - parts.tail.len() as u64;
        if parts
            .tail
            .iter()
            .enumerate()
            .any(|(pos, e)| e.index.0 != tail_first + pos as u64)
        {
            return Err(format!(
                "the recovered tail is not contiguous up to {}",
                parts.last
            ));
        }
        // The run holding `after + 1` now starts there.
        let next = after + 1;
        let keep_from = parts.terms.partition_point(|&(first, _)| first <= next);
        let mut terms: Vec<(u64, Term)> = Vec::with_capacity(parts.terms.len() + 1);
        if let Some(&(_, t)) = keep_from.checked_sub(1).and_then(|k| parts.terms.get(k)) {
            terms.push((next, t));
        }
        terms.extend(parts.terms[keep_from..].iter().copied());
        if let Some(&(first, term)) = terms.first() {
            if term < log.base.term {
                return Err(format!(
                    "entry {first} has term {term} below the snapshot's term {}",
                    log.base.term
                ));
            }
        }
        log.terms = terms;
        log.configs = parts
            .configs
            .into_iter()
            .filter(|(i, _)| i.0 > after)
            .collect();
        log.last = parts.last;
        log.cache = parts
            .tail
            .into_iter()
            .filter(|e| e.index.0 > after)
            .collect();
        log.cache_bytes = log.cache.iter().map(|e| e.payload.approx_bytes()).sum();
        Ok((log, false))
    }

    /// The compaction point: the last index no longer held, its term and configuration.
    pub fn base(&self) -> &SnapshotMeta {
        &self.base
    }

    /// First index after the compaction point (`base + 1`, even when the log is empty).
    pub fn first_index(&self) -> LogIndex {
        LogIndex(self.base.index.0 + 1)
    }

    /// First index whose full entry is cached (`last + 1` when nothing is).
    pub fn cache_first(&self) -> LogIndex {
        LogIndex(self.last + 1 - self.cache.len() as u64)
    }

    pub fn last_index(&self) -> LogIndex {
        LogIndex(self.last)
    }

    pub fn last_term(&self) -> Term {
        self.terms.last().map(|&(_, t)| t).unwrap_or(self.base.term)
    }

    /// Entries after the compaction point (cached or not).
    pub fn len(&self) -> usize {
        (self.last - self.base.index.0) as usize
    }

    /// Entries whose full copy is cached, and their approximate payload bytes.
    pub fn cached(&self) -> (usize, usize) {
        (self.cache.len(), self.cache_bytes)
    }

    /// Term of the entry at `index`: the base's term at the base index, term 0 at index
    /// 0; `None` for compacted indexes and beyond the end. Known whether or not the entry
    /// itself is cached.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.base.index {
            return Some(self.base.term);
        }
        if index.0 == 0 {
            return Some(Term(0));
        }
        if index <= self.base.index || index.0 > self.last {
            return None;
        }
        let run = self.terms.partition_point(|&(first, _)| first <= index.0);
        self.terms.get(run.checked_sub(1)?).map(|&(_, t)| t)
    }

    /// The entry at `index` if it is cached.
    pub fn get(&self, index: LogIndex) -> Option<&Entry> {
        let pos = usize::try_from(index.0.checked_sub(self.cache_first().0)?).ok()?;
        self.cache.get(pos)
    }

    /// Cached entries in `from..=to`, borrowed (clamped to the cache: callers that need
    /// entries below [`Log::cache_first`] must load them).
    pub fn range(
        &self,
        from: LogIndex,
        to: LogIndex,
    ) -> std::collections::vec_deque::Iter<'_, Entry> {
        let first = self.cache_first().0;
        let start = from.0.max(first) - first;
        let end = (to.0.saturating_add(1).saturating_sub(first)).min(self.cache.len() as u64);
        self.cache.range(start.min(end) as usize..end as usize)
    }

    /// [`Log::range`], copied.
    pub fn slice(&self, from: LogIndex, to: LogIndex) -> Vec<Entry> {
        self.range(from, to).cloned().collect()
    }

    /// Whether `entries` are exactly this log's entries at their indexes as far as the
    /// log knows them: contiguous, after the base, each with the term the log holds
    /// there. (A loaded range is checked with this: the log may have been truncated or
    /// compacted since the load was asked for.)
    pub fn matches(&self, entries: &[Entry]) -> bool {
        entries.windows(2).all(|w| w[1].index.0 == w[0].index.0 + 1)
            && entries
                .iter()
                .all(|e| e.index > self.base.index && self.term_at(e.index) == Some(e.term))
    }

    pub fn append(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index.0, self.last + 1);
        if self.terms.last().map(|&(_, t)| t) != Some(entry.term) {
            self.terms.push((entry.index.0, entry.term));
        }
        if let Some(c) = entry.payload.membership() {
            self.configs.push((entry.index, c));
        }
        self.last = entry.index.0;
        self.cache_bytes += entry.payload.approx_bytes();
        self.cache.push_back(entry);
    }

    /// Drop every entry with index >= `from` (never the base), cached or not.
    pub fn truncate_from(&mut self, from: LogIndex) {
        let from = from.0.max(self.base.index.0 + 1);
        if from > self.last {
            return;
        }
        while self.cache.back().is_some_and(|e| e.index.0 >= from) {
            if let Some(e) = self.cache.pop_back() {
                self.cache_bytes -= e.payload.approx_bytes();
            }
        }
        self.terms.retain(|&(first, _)| first < from);
        self.configs.retain(|(i, _)| i.0 < from);
        self.last = from - 1;
    }

    /// Drop cached entries, oldest first, while the cache holds more than `max_bytes`
    /// or `max_entries`, never one after `evictable_up_to`. Their terms stay known.
    /// Returns how many were dropped.
    pub fn evict(
        &mut self,
        max_bytes: usize,
        max_entries: usize,
        evictable_up_to: LogIndex,
    ) -> usize {
        let mut dropped = 0;
        while (self.cache_bytes > max_bytes || self.cache.len() > max_entries)
            && self
                .cache
                .front()
                .is_some_and(|e| e.index <= evictable_up_to)
        {
            if let Some(e) = self.cache.pop_front() {
                self.cache_bytes -= e.payload.approx_bytes();
                dropped += 1;
            }
        }
        dropped
    }

    /// Forget every entry up to and including `up_to` (which must be known: after the
    /// base, not beyond the end), keeping its term and the configuration in effect at
    /// it as the new base.
    pub fn compact(&mut self, up_to: LogIndex) -> bool {
        if up_to <= self.base.index {
            return false;
        }
        let Some(term) = self.term_at(up_to) else {
            return false;
        };
        let (_, membership) = self.membership_at(up_to);
        while self.cache.front().is_some_and(|e| e.index <= up_to) {
            if let Some(e) = self.cache.pop_front() {
                self.cache_bytes -= e.payload.approx_bytes();
            }
        }
        // The run holding `up_to + 1` now starts there.
        let next = up_to.0 + 1;
        let keep_from = self.terms.partition_point(|&(first, _)| first <= next);
        let mut terms: Vec<(u64, Term)> = Vec::with_capacity(self.terms.len() + 1 - keep_from);
        if next <= self.last {
            if let Some(t) = self.term_at(LogIndex(next)) {
                terms.push((next, t));
            }
        }
        terms.extend(self.terms[keep_from..].iter().copied());
        self.terms = terms;
        self.configs.retain(|(i, _)| *i > up_to);
        self.base = SnapshotMeta {
            index: up_to,
            term,
            configuration: membership.voters,
            non_voters: membership.non_voters,
        };
        true
    }

    /// Throw the whole log away and start after `base` (a follower installing a snapshot
    /// its log does not contain).
    pub fn reset(&mut self, base: SnapshotMeta) {
        self.cache.clear();
        self.cache_bytes = 0;
        self.terms.clear();
        self.configs.clear();
        self.last = base.index.0;
        self.base = base;
    }

    /// The membership in effect at `index` (the latest configuration entry at or below
    /// it, else the base's) and the index that set it (the base's index for the base).
    pub fn membership_at(&self, index: LogIndex) -> (LogIndex, Configuration) {
        self.configs
            .iter()
            .rev()
            .find(|(i, _)| *i <= index)
            .map(|(i, c)| (*i, c.clone()))
            .unwrap_or_else(|| (self.base.index, self.base.membership()))
    }
}

#[cfg(test)]
#[path = "log_tests.rs"]
mod tests;
