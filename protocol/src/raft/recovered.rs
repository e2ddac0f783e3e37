//! What a restart needs of the durable log: the term of every stored index (run-length),
//! the configuration entries, and full entries only for a tail that fits the log cache
//! budget (see "The log cache" in `raft/mod.rs`). A log store builds it while it scans
//! its records at open ([`RecoveredLog::push`], oldest first): older entries leave the
//! tail as newer ones arrive, so opening a long log never holds it whole in memory.
//! [`super::Raft::new`] starts its cache with the tail; committed entries older than
//! it are read back from the log store for applying (`Output::LoadCommitted`).

use super::types::{Configuration, Entry};
use crate::ids::{LogIndex, Term};
use std::collections::VecDeque;

/// The budget of the log cache: approximate payload bytes (`Payload::approx_bytes`) and
/// number of the entries held whole in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CacheBudget {
    pub max_bytes: usize,
    pub max_entries: usize,
}

impl Default for CacheBudget {
    fn default() -> Self {
        CacheBudget {
            max_bytes: super::LOG_CACHE_BYTES,
            max_entries: super::LOG_CACHE_ENTRIES,
        }
    }
}

impl CacheBudget {
    /// No limit: every entry stays (tests, and logs known to be small).
    pub const UNLIMITED: CacheBudget = CacheBudget {
        max_bytes: usize::MAX,
        max_entries: usize::MAX,
    };

    /// The budget a core with `cfg` keeps its cache within.
    pub fn of(cfg: &super::RaftConfig) -> CacheBudget {
        CacheBudget {
            max_bytes: cfg.log_cache_bytes,
            max_entries: cfg.log_cache_entries,
        }
    }
}

/// The durable log as a restart sees it: entries `first..=last` (none when
/// `first > last`), their terms, their configuration entries, and the newest of them
/// whole (the tail, within the budget it was built with).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecoveredLog {
    budget: CacheBudget,
    /// Index of the first stored entry (0 while nothing was pushed).
    first: u64,
    last: u64,
    /// `(first index of the run, term)`, ascending: the term of every stored index.
    terms: Vec<(u64, Term)>,
    configs: Vec<(LogIndex, Configuration)>,
    /// Entries `last - tail.len() + 1 ..= last`.
    tail: VecDeque<Entry>,
    tail_bytes: usize,
    /// The first entry that could not be pushed (not contiguous), for `Raft::new` to
    /// refuse the log (only lists of entries built by hand get here).
    broken: Option<String>,
}

impl Default for RecoveredLog {
    fn default() -> Self {
        RecoveredLog::new(CacheBudget::default())
    }
}

impl RecoveredLog {
    /// An empty log whose tail will keep within `budget`.
    pub fn new(budget: CacheBudget) -> RecoveredLog {
        RecoveredLog {
            budget,
            first: 0,
            last: 0,
            terms: Vec::new(),
            configs: Vec::new(),
            tail: VecDeque::new(),
            tail_bytes: 0,
            broken: None,
        }
    }

    /// Every entry of `entries` whole (tests, and logs known to be small).
    pub fn whole(entries: Vec<Entry>) -> RecoveredLog {
        let mut log = RecoveredLog::new(CacheBudget::UNLIMITED);
        for e in entries {
            if let Err(why) = log.push(e) {
                log.broken.get_or_insert(why);
            }
        }
        log
    }

    /// Add the next stored entry (the first may have any index: the log may start
    /// after a compaction). Older entries leave the tail while it is over its budget;
    /// their term and configuration stay known. An entry that does not follow the last
    /// one is refused.
    pub fn push(&mut self, entry: Entry) -> Result<(), String> {
        if self.first == 0 {
            if entry.index.0 == 0 {
                return Err("a log entry has index 0".into());
            }
            self.first = entry.index.0;
        } else if entry.index.0 != self.last + 1 {
            return Err(format!(
                "log entry {} does not follow entry {}",
                entry.index, self.last
            ));
        }
        if self.terms.last().map(|&(_, t)| t) != Some(entry.term) {
            self.terms.push((entry.index.0, entry.term));
        }
        if let Some(c) = entry.payload.membership() {
            self.configs.push((entry.index, c));
        }
        self.last = entry.index.0;
        self.tail_bytes = self.tail_bytes.saturating_add(entry.payload.approx_bytes());
        self.tail.push_back(entry);
        while self.tail_bytes > self.budget.max_bytes || self.tail.len() > self.budget.max_entries {
            match self.tail.pop_front() {
                Some(e) => self.tail_bytes -= e.payload.approx_bytes(),
                None => break,
            }
        }
        Ok(())
    }

    /// No entry stored.
    pub fn is_empty(&self) -> bool {
        self.first == 0
    }

    /// Index of the first stored entry (None when empty).
    pub fn first_index(&self) -> Option<LogIndex> {
        (!self.is_empty()).then_some(LogIndex(self.first))
    }

    /// Index of the last stored entry (0 when empty).
    pub fn last_index(&self) -> LogIndex {
        LogIndex(self.last)
    }

    /// Number of entries stored (whole or not).
    pub fn len(&self) -> usize {
        if self.is_empty() {
            0
        } else {
            (self.last - self.first + 1) as usize
        }
    }

    /// Term of the stored entry at `index` (None outside `first..=last`).
    pub fn term_at(&self, index: LogIndex) -> Option<Term> {
        if self.is_empty() || index.0 < self.first || index.0 > self.last {
            return None;
        }
        let run = self.terms.partition_point(|&(first, _)| first <= index.0);
        self.terms.get(run.checked_sub(1)?).map(|&(_, t)| t)
    }

    /// The runs of terms: `(first index of the run, term)`, ascending.
    pub fn term_runs(&self) -> impl Iterator<Item = (LogIndex, Term)> + '_ {
        self.terms.iter().map(|&(i, t)| (LogIndex(i), t))
    }

    /// The configuration entries, ascending.
    pub fn configs(&self) -> &[(LogIndex, Configuration)] {
        &self.configs
    }

    /// The entries held whole: the newest ones, ending at [`RecoveredLog::last_index`].
    pub fn tail(&self) -> impl ExactSizeIterator<Item = &Entry> {
        self.tail.iter()
    }

    /// The tail's approximate payload bytes.
    pub fn tail_bytes(&self) -> usize {
        self.tail_bytes
    }

    /// Take it apart (for `Log::new`): a consistency error for a log built by hand with
    /// entries that do not follow each other.
    pub(super) fn into_parts(self) -> Result<RecoveredParts, String> {
        if let Some(why) = self.broken {
            return Err(why);
        }
        Ok(RecoveredParts {
            last: self.last,
            terms: self.terms,
            configs: self.configs,
            tail: self.tail,
        })
    }
}

/// Every entry whole: `Raft::new(.., entries, ..)` for tests and small logs.
impl From<Vec<Entry>> for RecoveredLog {
    fn from(entries: Vec<Entry>) -> RecoveredLog {
        RecoveredLog::whole(entries)
    }
}

/// The fields of a [`RecoveredLog`], for the core's log to start from.
pub(super) struct RecoveredParts {
    pub last: u64,
    pub terms: Vec<(u64, Term)>,
    pub configs: Vec<(LogIndex, Configuration)>,
    pub tail: VecDeque<Entry>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ServerId;
    use crate::raft::types::Payload;

    fn cmd(index: u64, term: u64, bytes: usize) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            payload: Payload::Command(vec![0; bytes]),
        }
    }

    #[test]
    fn keeps_terms_and_configs_of_every_entry_and_only_a_tail_whole() {
        let entry_bytes = cmd(1, 1, 8).payload.approx_bytes();
        let mut log = RecoveredLog::new(CacheBudget {
            max_bytes: 3 * entry_bytes,
            max_entries: 100,
        });
        for i in 5..=20 {
            let e = if i == 9 {
                Entry {
                    term: Term(2),
                    index: LogIndex(9),
                    payload: Payload::Configuration(vec![(ServerId("a".into()), "a:1".into())]),
                }
            } else {
                cmd(i, if i < 9 { 1 } else { 2 + i / 15 }, 8)
            };
            log.push(e).unwrap();
        }
        assert_eq!(log.first_index(), Some(LogIndex(5)));
        assert_eq!(log.last_index(), LogIndex(20));
        assert_eq!(log.len(), 16);
        assert_eq!(
            log.term_runs().collect::<Vec<_>>(),
            vec![
                (LogIndex(5), Term(1)),
                (LogIndex(9), Term(2)),
                (LogIndex(15), Term(3))
            ]
        );
        assert_eq!(log.term_at(LogIndex(4)), None);
        assert_eq!(log.term_at(LogIndex(8)), Some(Term(1)));
        assert_eq!(log.term_at(LogIndex(14)), Some(Term(2)));
        assert_eq!(log.term_at(LogIndex(20)), Some(Term(3)));
        assert_eq!(log.term_at(LogIndex(21)), None);
        assert_eq!(log.configs().len(), 1);
        assert_eq!(log.configs()[0].0, LogIndex(9));
        // The byte budget holds three entries: 18..=20.
        let tail: Vec<u64> = log.tail().map(|e| e.index.0).collect();
        assert_eq!(tail, vec![18, 19, 20]);
        assert_eq!(log.tail_bytes(), 3 * entry_bytes);
        // The count budget binds too.
        let mut counted = RecoveredLog::new(CacheBudget {
            max_bytes: usize::MAX,
            max_entries: 2,
        });
        for i in 1..=5 {
            counted.push(cmd(i, 1, 1000)).unwrap();
        }
        assert_eq!(
            counted.tail().map(|e| e.index.0).collect::<Vec<_>>(),
            [4, 5]
        );
    }

    #[test]
    fn refuses_entries_that_do_not_follow() {
        let mut log = RecoveredLog::new(CacheBudget::default());
        assert!(log.push(cmd(0, 1, 1)).is_err());
        log.push(cmd(3, 1, 1)).unwrap();
        assert!(log.push(cmd(5, 1, 1)).is_err());
        assert!(log.push(cmd(3, 1, 1)).is_err());
        assert_eq!(log.last_index(), LogIndex(3));
        let broken = RecoveredLog::whole(vec![cmd(1, 1, 1), cmd(3, 1, 1)]);
        assert!(broken.into_parts().is_err());
        assert!(RecoveredLog::default().is_empty());
    }
}
