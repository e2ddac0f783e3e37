//! The in-memory copy of the Raft log. Index 1 is the first entry (no compaction yet;
//! snapshots will move `first_index` forward).

use super::types::Entry;
use crate::ids::{LogIndex, Term};

#[derive(Debug, Default, Clone)]
pub struct Log {
    entries: Vec<Entry>,
}

impl Log {
    /// Build from recovered entries; they must be contiguous from index 1.
    pub fn from_entries(entries: Vec<Entry>) -> Result<Log, String> {
        for (pos, e) in entries.iter().enumerate() {
            if e.index.0 != pos as u64 + 1 {
                return Err(format!("log entry at position {pos} has index {}", e.index));
            }
        }
        Ok(Log { entries })
    }

    pub fn last_index(&self) -> LogIndex {
        LogIndex(self.entries.len() as u64)
    }

    pub fn last_term(&self) -> Term {
        self.entries.last().map(|e| e.term).unwrap_or_default()
    }

    /// Term of the entry at `index`; index 0 has term 0; `None` beyond the end.
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index.0 == 0 {
            return Some(Term(0));
        }
        self.get(index).map(|e| e.term)
    }

    pub fn get(&self, index: LogIndex) -> Option<&Entry> {
        let pos = usize::try_from(index.0.checked_sub(1)?).ok()?;
        self.entries.get(pos)
    }

    /// Entries in `from..=to` (clamped to the log).
    pub fn slice(&self, from: LogIndex, to: LogIndex) -> &[Entry] {
        let start = (from.0.max(1) - 1) as usize;
        let end = (to.0 as usize).min(self.entries.len());
        if start >= end {
            return &[];
        }
        &self.entries[start..end]
    }

    pub fn append(&mut self, entry: Entry) {
        debug_assert_eq!(entry.index.0, self.last_index().0 + 1);
        self.entries.push(entry);
    }

    /// Drop every entry with index >= `from`.
    pub fn truncate_from(&mut self, from: LogIndex) {
        let keep = from.0.saturating_sub(1) as usize;
        self.entries.truncate(keep);
    }

    pub fn iter_rev(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter().rev()
    }
}
