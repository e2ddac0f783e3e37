//! The in-memory copy of the Raft log. It may start after a snapshot (or after a
//! compaction point): `base` is the last entry no longer held, with its term and the
//! configuration in effect at it. Entries run contiguously from `base.index + 1`.

use super::types::{Configuration, Entry, SnapshotMeta};
use crate::ids::{LogIndex, Term};

#[derive(Debug, Default, Clone)]
pub struct Log {
    /// Everything up to and including `base.index` is compacted away (index 0: nothing).
    base: SnapshotMeta,
    entries: Vec<Entry>,
}

impl Log {
    /// Build from a snapshot (or none) and the recovered entries. Entries at or below the
    /// snapshot index are dropped (the snapshot covers them); the rest must continue the
    /// snapshot contiguously.
    ///
    /// Returns whether the entries had to be discarded because they do not continue the
    /// snapshot (they end before it, or hold a different entry at its index: a stale
    /// suffix, which by log matching is not committed); the caller then asks the disk
    /// to discard its log too.
    pub fn new(base: Option<SnapshotMeta>, entries: Vec<Entry>) -> Result<(Log, bool), String> {
        let base = base.unwrap_or_default();
        if let Some(first) = entries.first() {
            if first.index.0 > base.index.0 + 1 {
                // Entries between the snapshot and the log are missing: refuse rather
                // than run with a hole (e.g. every newer snapshot was unreadable).
                return Err(format!(
                    "the log starts at {} but the snapshot ends at {}",
                    first.index, base.index
                ));
            }
        }
        let continues = base.index.0 == 0
            || entries
                .first()
                .is_some_and(|e| e.index.0 == base.index.0 + 1)
            || entries
                .iter()
                .any(|e| e.index == base.index && e.term == base.term);
        let entries: Vec<Entry> = if continues {
            entries
                .into_iter()
                .filter(|e| e.index > base.index)
                .collect()
        } else {
            Vec::new()
        };
        for (pos, e) in entries.iter().enumerate() {
            if e.index.0 != base.index.0 + pos as u64 + 1 {
                return Err(format!(
                    "log entry at position {pos} has index {} but the log starts after {}",
                    e.index, base.index
                ));
            }
        }
        if let Some(first) = entries.first() {
            if first.term < base.term {
                return Err(format!(
                    "entry {} has term {} below the snapshot's term {}",
                    first.index, first.term, base.term
                ));
            }
        }
        Ok((Log { base, entries }, !continues))
    }

    /// The compaction point: the last index no longer held, its term and configuration.
    pub fn base(&self) -> &SnapshotMeta {
        &self.base
    }

    /// First index still held in memory (`base + 1`, even when the log is empty).
    pub fn first_index(&self) -> LogIndex {
        LogIndex(self.base.index.0 + 1)
    }

    pub fn last_index(&self) -> LogIndex {
        LogIndex(self.base.index.0 + self.entries.len() as u64)
    }

    pub fn last_term(&self) -> Term {
        self.entries
            .last()
            .map(|e| e.term)
            .unwrap_or(self.base.term)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Term of the entry at `index`: the base's term at the base index, term 0 at index
    /// 0; `None` for compacted indexes and beyond the end.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.base.index {
            return Some(self.base.term);
        }
        if index.0 == 0 {
            return Some(Term(0));
        }
        self.get(index).map(|e| e.term)
    }

    pub fn get(&self, index: LogIndex) -> Option<&Entry> {
        let pos = usize::try_from(index.0.checked_sub(self.first_index().0)?).ok()?;
        self.entries.get(pos)
    }

    /// Entries in `from..=to` (clamped to what is held).
    pub fn slice(&self, from: LogIndex, to: LogIndex) -> &[Entry] {
        let first = self.first_index().0;
        let start = from.0.max(first) - first;
        let end = (to.0.saturating_add(1).saturating_sub(first)).min(self.entries.len() as u64);
        if start >= end {
            return &[];
        }
        &self.entries[start as usize..end as usize]
    }

    pub fn append(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index.0, self.last_index().0 + 1);
        self.entries.push(entry);
    }

    /// Drop every entry with index >= `from` (never the base).
    pub fn truncate_from(&mut self, from: LogIndex) {
        let keep = from.0.saturating_sub(self.first_index().0) as usize;
        self.entries.truncate(keep);
    }

    /// Forget every entry up to and including `up_to` (which must be held), keeping its
    /// term and the configuration in effect at it as the new base.
    pub fn compact(&mut self, up_to: LogIndex) -> bool {
        let Some(term) = self.get(up_to).map(|e| e.term) else {
            return false;
        };
        let (_, membership) = self.membership_at(up_to);
        let drop = (up_to.0 - self.base.index.0) as usize;
        self.entries.drain(..drop);
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
        self.entries.clear();
        self.base = base;
    }

    /// The membership in effect at `index` (the latest configuration entry at or below
    /// it, else the base's) and the index that set it (the base's index for the base).
    pub fn membership_at(&self, index: LogIndex) -> (LogIndex, Configuration) {
        self.slice(self.first_index(), index)
            .iter()
            .rev()
            .find_map(|e| e.payload.membership().map(|c| (e.index, c)))
            .unwrap_or_else(|| (self.base.index, self.base.membership()))
    }
}
