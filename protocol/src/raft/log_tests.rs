//! The bounded log cache: terms for every index, entries for a suffix.

use super::Log;
use crate::ids::{LogIndex, ServerId, Term};
use crate::raft::types::{Configuration, Entry, Payload, SnapshotMeta};

fn cmd(index: u64, term: u64) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: Payload::Command(vec![0; 8]),
    }
}

fn conf(index: u64, term: u64, names: &[&str]) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: Payload::Membership(Configuration {
            voters: names
                .iter()
                .map(|n| (ServerId(n.to_string()), format!("{n}:1")))
                .collect(),
            non_voters: Vec::new(),
        }),
    }
}

/// Entries 1..=10: terms 1,1,1,2,2,3,3,3,3,3; a configuration at 5.
fn log() -> Log {
    let terms = [1, 1, 1, 2, 2, 3, 3, 3, 3, 3];
    let entries: Vec<Entry> = (1..=10)
        .map(|i| {
            let t = terms[i as usize - 1];
            if i == 5 {
                conf(i, t, &["a", "b"])
            } else {
                cmd(i, t)
            }
        })
        .collect();
    Log::new(None, entries).unwrap().0
}

fn entry_bytes() -> usize {
    cmd(1, 1).payload.approx_bytes()
}

#[test]
fn evicts_oldest_first_within_both_budgets_and_keeps_terms() {
    let mut log = log();
    assert_eq!(log.cache_first(), LogIndex(1));
    // Count cap: keep 4.
    assert_eq!(log.evict(usize::MAX, 4, LogIndex(10)), 6);
    assert_eq!(log.cache_first(), LogIndex(7));
    assert_eq!(log.cached().0, 4);
    assert!(log.get(LogIndex(6)).is_none());
    assert_eq!(log.get(LogIndex(7)), Some(&cmd(7, 3)));
    // Terms of evicted entries are still known.
    for (i, t) in [(1, 1), (3, 1), (4, 2), (5, 2), (6, 3), (10, 3)] {
        assert_eq!(log.term_at(LogIndex(i)), Some(Term(t)), "index {i}");
    }
    assert_eq!(log.term_at(LogIndex(0)), Some(Term(0)));
    assert_eq!(log.term_at(LogIndex(11)), None);
    assert_eq!(log.len(), 10);
    // Byte budget: two entries' worth.
    log.evict(2 * entry_bytes(), usize::MAX, LogIndex(10));
    assert_eq!(log.cache_first(), LogIndex(9));
    assert_eq!(log.cached(), (2, 2 * entry_bytes()));
    // The configuration set at 5 is still in effect without its entry.
    let (at, c) = log.membership_at(LogIndex(10));
    assert_eq!(at, LogIndex(5));
    assert_eq!(c.voters.len(), 2);
    assert_eq!(log.membership_at(LogIndex(4)).0, LogIndex(0));
}

#[test]
fn never_evicts_past_the_evictable_bound() {
    let mut log = log();
    assert_eq!(log.evict(0, 0, LogIndex(3)), 3);
    assert_eq!(log.cache_first(), LogIndex(4));
    assert_eq!(log.evict(0, 0, LogIndex(3)), 0);
    assert_eq!(log.evict(0, 0, LogIndex(0)), 0);
}

#[test]
fn slice_is_clamped_to_the_cache() {
    let mut log = log();
    log.evict(0, 0, LogIndex(6));
    let got: Vec<u64> = log
        .slice(LogIndex(2), LogIndex(8))
        .iter()
        .map(|e| e.index.0)
        .collect();
    assert_eq!(got, vec![7, 8]);
    assert!(log.slice(LogIndex(1), LogIndex(6)).is_empty());
}

#[test]
fn truncation_below_the_cache_drops_terms_and_configurations() {
    let mut log = log();
    log.evict(0, 0, LogIndex(7));
    log.truncate_from(LogIndex(5));
    assert_eq!(log.last_index(), LogIndex(4));
    assert_eq!(log.last_term(), Term(2));
    assert_eq!(log.cache_first(), LogIndex(5), "nothing cached");
    assert_eq!(log.cached(), (0, 0));
    assert_eq!(log.term_at(LogIndex(5)), None);
    assert_eq!(log.membership_at(LogIndex(10)).0, LogIndex(0));
    // Appending continues there with a new term run.
    log.append(cmd(5, 4));
    assert_eq!(log.term_at(LogIndex(4)), Some(Term(2)));
    assert_eq!(log.term_at(LogIndex(5)), Some(Term(4)));
    assert_eq!(log.get(LogIndex(5)), Some(&cmd(5, 4)));
}

#[test]
fn truncation_inside_the_cache_keeps_the_rest() {
    let mut log = log();
    log.evict(0, 0, LogIndex(3));
    log.truncate_from(LogIndex(8));
    assert_eq!(log.cache_first(), LogIndex(4));
    assert_eq!(
        log.cached(),
        (4, 4 * entry_bytes() - entry_bytes() + conf_bytes())
    );
    assert_eq!(log.last_term(), Term(3));
    // Truncating the start of a term run drops the run.
    log.truncate_from(LogIndex(6));
    assert_eq!(log.last_term(), Term(2));
}

fn conf_bytes() -> usize {
    conf(5, 2, &["a", "b"]).payload.approx_bytes()
}

#[test]
fn compaction_below_and_inside_the_cache() {
    let mut log = log();
    log.evict(0, 0, LogIndex(7));
    // Compact to 5 (not cached): base takes its term and the configuration at it.
    assert!(log.compact(LogIndex(5)));
    assert_eq!(log.base().index, LogIndex(5));
    assert_eq!(log.base().term, Term(2));
    assert_eq!(log.base().configuration.len(), 2);
    assert_eq!(log.term_at(LogIndex(4)), None);
    assert_eq!(log.term_at(LogIndex(6)), Some(Term(3)));
    assert_eq!(log.cache_first(), LogIndex(8));
    assert_eq!(log.membership_at(LogIndex(10)).0, LogIndex(5));
    // Compact into the cache: cached entries up to it go.
    assert!(log.compact(LogIndex(8)));
    assert_eq!(log.cache_first(), LogIndex(9));
    assert_eq!(log.cached().0, 2);
    assert_eq!(log.term_at(LogIndex(9)), Some(Term(3)));
    assert_eq!(log.len(), 2);
    // Not beyond the end, not backwards.
    assert!(!log.compact(LogIndex(11)));
    assert!(!log.compact(LogIndex(7)));
    // Compacting everything leaves an empty log that continues after the base.
    assert!(log.compact(LogIndex(10)));
    assert_eq!(log.last_index(), LogIndex(10));
    assert_eq!(log.last_term(), Term(3));
    assert_eq!(log.len(), 0);
    log.append(cmd(11, 4));
    assert_eq!(log.term_at(LogIndex(11)), Some(Term(4)));
}

#[test]
fn matches_checks_loaded_entries_against_the_terms() {
    let mut log = log();
    log.evict(0, 0, LogIndex(8));
    assert!(log.matches(&[cmd(3, 1), cmd(4, 2)]));
    // A different term at an index: from a truncated suffix.
    assert!(!log.matches(&[cmd(3, 1), cmd(4, 3)]));
    // Not contiguous.
    assert!(!log.matches(&[cmd(3, 1), cmd(5, 2)]));
    // Beyond the end, or compacted away.
    assert!(!log.matches(&[cmd(11, 3)]));
    log.compact(LogIndex(4));
    assert!(!log.matches(&[cmd(4, 2)]));
    assert!(log.matches(&[cmd(6, 3)]));
}

#[test]
fn new_after_a_snapshot_builds_terms_from_the_recovered_entries() {
    let base = SnapshotMeta {
        index: LogIndex(3),
        term: Term(1),
        configuration: vec![(ServerId("a".into()), "a:1".into())],
        non_voters: Vec::new(),
    };
    let entries: Vec<Entry> = (1..=6)
        .map(|i| cmd(i, if i <= 4 { 1 } else { 2 }))
        .collect();
    let (log, discarded) = Log::new(Some(base), entries).unwrap();
    assert!(!discarded);
    assert_eq!(log.first_index(), LogIndex(4));
    assert_eq!(log.cache_first(), LogIndex(4));
    assert_eq!(log.term_at(LogIndex(3)), Some(Term(1)));
    assert_eq!(log.term_at(LogIndex(4)), Some(Term(1)));
    assert_eq!(log.term_at(LogIndex(5)), Some(Term(2)));
    assert_eq!(log.membership_at(LogIndex(6)).0, LogIndex(3));
}
