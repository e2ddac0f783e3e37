//! A linearizability checker for KV histories (Wing & Gong's search with Lowe's
//! memoization, as in Porcupine and Knossos).
//!
//! # What it answers
//! Given a history recorded by one observer (every operation's call time, return time and
//! outcome, from any single clock), [`check_kv`] decides whether some total order of the
//! operations (a) respects real time — an operation that returned before another was
//! called comes first — and (b) explains every observed outcome when the operations are
//! replayed one at a time against a plain sequential register per key.
//!
//! # Model: one register per key
//! Keys never interact, so the history is partitioned by key and each key is checked
//! alone (Herlihy & Wing's locality, Porcupine's "P-compositionality"); a history is
//! linearizable iff every per-key sub-history is. The register holds `Option<V>` (absent
//! or a value). Per [`OpKind`]:
//! - `Put { value }` sets the value; outcome [`OpResult::Done`].
//! - `Get` observes the value; outcome [`OpResult::Value`] (`None` = key absent).
//! - `Delete` clears the value; outcome [`OpResult::Done`].
//! - `Cas { expect, new }` compare-and-set **on the value**: if the register holds
//!   `expect` (`None` = "absent", Consul's `cas=0`), it becomes `new` (`None` = delete, as
//!   Consul's `DELETE ?cas=`) and the outcome is `Swapped(true)`; otherwise nothing
//!   changes and the outcome is `Swapped(false)`.
//!
//! Why value CAS and not Consul's ModifyIndex CAS: modify indexes are Raft log indexes,
//! shared by all keys and other tables, so no per-key model can predict them. A client
//! that writes *unique values* (e.g. `client-id/sequence`) and compares against the value
//! it read makes value CAS exactly equivalent to index CAS: a value names the write that
//! produced it, so there is no ABA. Record Consul CAS that way (read index `i` returned
//! value `v`; CAS on `i` becomes `Cas { expect: Some(v), .. }`, `cas=0` becomes
//! `expect: None`).
//!
//! # Unknown outcomes
//! [`OpResult::Unknown`] (timeout, "outcome unknown" error, crash) means the operation may
//! have taken effect at any moment after its call — possibly after the client gave up —
//! or never. Its return time is treated as infinity whatever `ret` says (as Porcupine and
//! Knossos do). "Never" is the same as "after everything else", so the search is done once
//! every operation with a *known* outcome is placed. An unknown `Get` observes nothing and
//! changes nothing, so it is dropped; an unknown `Cas` swaps if and only if it is placed
//! where the register holds `expect`.
//!
//! # Time
//! Times are plain `u64`s from one observer. An operation must come after every operation
//! whose `ret` is strictly smaller than its `call`; equal times count as concurrent (a call
//! and a return stamped with the same tick could have happened in either order, so the
//! checker does not invent an order the clock could not see).
//!
//! # Search and budget
//! Per key, a depth-first search for a linearization (Wing & Gong), remembering explored
//! states (Lowe), trying known-outcome candidates before unknown ones and building only
//! canonical orders in which an unknown operation changes the value and is not directly
//! overwritten; `search.rs` explains why these keep the answer exact and why they matter
//! (without them, rejecting a history with `u` pending timeouts costs up to `2^u` more).
//!
//! The search is still exponential in the worst case. `budget` caps the search steps **per
//! key** (one step = one candidate tried or one choice undone); a key that runs out yields
//! [`Verdict::Unknown`] instead of running forever. A definite
//! [`Verdict::NotLinearizable`] for any key wins over `Unknown` for another. Accepting is
//! cheap (a few steps per operation); rejecting must exhaust every order up to the bad
//! operation. As a guide: 1,000 operations over 5 keys from 10 clients, 5% timeouts, took
//! 3.5k–6k steps to accept and 18k–57k to reject one bad read; 12 mutually concurrent
//! writes followed by an impossible read take 184k.
//!
//! # Determinism
//! Pure: no clock, no I/O, no randomness. Keys are visited in `Ord` order, candidates in
//! time order with ties broken by history index, and the memo table is only probed, so
//! the verdict, its explanation and the step count are a function of the input alone.
//!
//! # Example
//! ```
//! use cairn_protocol::linearizability::{check_kv, Op, OpKind, OpResult, Verdict};
//! // A put of 1 completes at t=2, then a get called at t=3 still reads nothing: stale.
//! let history = vec![
//!     Op { client: 1, key: "k", call: 0, ret: Some(2), kind: OpKind::Put { value: 1 }, result: OpResult::Done },
//!     Op { client: 2, key: "k", call: 3, ret: Some(4), kind: OpKind::Get, result: OpResult::Value(None) },
//! ];
//! let verdict = check_kv(&history, 10_000).unwrap();
//! assert!(matches!(verdict, Verdict::NotLinearizable { key: "k", .. }));
//! ```

#[cfg(test)]
mod classic_tests;
mod model;
#[cfg(test)]
mod scale_tests;
mod search;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::hash::Hash;

use search::{KeyOp, KeyOutcome};

/// One operation as the observer recorded it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op<K, V> {
    /// Which client issued it. Informational: real-time order comes from the times, so a
    /// client that pipelines is still checked correctly.
    pub client: u64,
    /// The key it acts on.
    pub key: K,
    /// When it was invoked.
    pub call: u64,
    /// When its response arrived; `None` if it never did (then `result` must be
    /// [`OpResult::Unknown`]). Ignored for unknown outcomes.
    pub ret: Option<u64>,
    /// What was asked.
    pub kind: OpKind<V>,
    /// What came back.
    pub result: OpResult<V>,
}

/// What an operation asked for. See the module documentation for the model.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OpKind<V> {
    Put {
        value: V,
    },
    Get,
    Delete,
    /// Compare-and-set on the value: `expect: None` = only if absent, `new: None` = delete.
    Cas {
        expect: Option<V>,
        new: Option<V>,
    },
}

/// What an operation returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum OpResult<V> {
    /// `Put` or `Delete` succeeded.
    Done,
    /// `Get` read this (`None` = key absent).
    Value(Option<V>),
    /// `Cas` reported whether it swapped.
    Swapped(bool),
    /// Timed out or failed ambiguously: may have taken effect, at any time after the call,
    /// or never. Valid for every kind.
    Unknown,
}

/// The checker's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict<K, V> {
    /// Every key's sub-history has a linearization.
    Linearizable,
    /// This key's sub-history has none (the smallest such key).
    NotLinearizable { key: K, explanation: Explanation<V> },
    /// No key was found non-linearizable, but this key (the smallest such) ran out of
    /// budget before the search could finish.
    Unknown { key: K },
}

/// Why a key's sub-history is not linearizable: the deepest partial linearization the
/// search reached and what it could not fit after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation<V> {
    /// Indices into the checked history, in the order of the longest linearizable prefix
    /// found: the first one reached that places the most known-outcome operations (it may
    /// include unknown-outcome ones).
    pub longest_prefix: Vec<usize>,
    /// The register after that prefix (`None` = absent).
    pub value_after_prefix: Option<V>,
    /// Indices of this key's known-outcome operations missing from that prefix, by call
    /// time. None that real-time order allows next fits the register's value there.
    pub unplaced: Vec<usize>,
}

/// A history the checker refuses to interpret, naming the first offending operation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("history operation {index}: {problem}")]
pub struct HistoryError {
    /// Index into the history.
    pub index: usize,
    pub problem: &'static str,
}

/// Checks `history` for linearizability against a register per key. `budget` caps the
/// search steps per key (see the module documentation); the work actually spent is
/// available from [`check_kv_counting`].
pub fn check_kv<K, V>(history: &[Op<K, V>], budget: u64) -> Result<Verdict<K, V>, HistoryError>
where
    K: Ord + Clone,
    V: Eq + Clone + Hash,
{
    check_kv_counting(history, budget).map(|checked| checked.verdict)
}

/// The verdict together with the search steps spent over all keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked<K, V> {
    pub verdict: Verdict<K, V>,
    pub steps: u64,
}

/// [`check_kv`], also reporting the search steps spent (a deterministic measure of cost,
/// useful for sizing `budget` and for tests that guard performance without a clock).
pub fn check_kv_counting<K, V>(
    history: &[Op<K, V>],
    budget: u64,
) -> Result<Checked<K, V>, HistoryError>
where
    K: Ord + Clone,
    V: Eq + Clone + Hash,
{
    let by_key = partition_by_key(history)?;
    let mut steps = 0u64;
    let mut first_unknown: Option<K> = None;
    for (key, ops) in by_key {
        let (outcome, spent) = search::check_register(&ops, budget);
        steps += spent;
        match outcome {
            KeyOutcome::Linearizable => {}
            KeyOutcome::NotLinearizable(explanation) => {
                return Ok(Checked {
                    verdict: Verdict::NotLinearizable {
                        key: key.clone(),
                        explanation,
                    },
                    steps,
                });
            }
            KeyOutcome::OutOfBudget => {
                first_unknown.get_or_insert_with(|| key.clone());
            }
        }
    }
    let verdict = match first_unknown {
        Some(key) => Verdict::Unknown { key },
        None => Verdict::Linearizable,
    };
    Ok(Checked { verdict, steps })
}

/// Validates every operation and groups them by key, in key order, keeping history order
/// inside a key. Unknown `Get`s are dropped: they neither observe nor change anything.
fn partition_by_key<K, V>(history: &[Op<K, V>]) -> Result<BTreeMap<&K, Vec<KeyOp<V>>>, HistoryError>
where
    K: Ord,
    V: Clone,
{
    let mut by_key: BTreeMap<&K, Vec<KeyOp<V>>> = BTreeMap::new();
    for (index, op) in history.iter().enumerate() {
        let fail = |problem| Err(HistoryError { index, problem });
        let known = !matches!(op.result, OpResult::Unknown);
        let kind_fits_result = matches!(
            (&op.kind, &op.result),
            (_, OpResult::Unknown)
                | (OpKind::Put { .. } | OpKind::Delete, OpResult::Done)
                | (OpKind::Get, OpResult::Value(_))
                | (OpKind::Cas { .. }, OpResult::Swapped(_))
        );
        if !kind_fits_result {
            return fail("result does not match the kind of operation");
        }
        let ret = match (known, op.ret) {
            (false, _) => None,
            (true, None) => return fail("a known outcome needs a return time"),
            (true, Some(ret)) if ret < op.call => return fail("returned before it was called"),
            (true, Some(ret)) => Some(ret),
        };
        if !known && matches!(op.kind, OpKind::Get) {
            continue;
        }
        by_key.entry(&op.key).or_default().push(KeyOp {
            index,
            call: op.call,
            ret,
            kind: op.kind.clone(),
            result: op.result.clone(),
        });
    }
    Ok(by_key)
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Display for Verdict<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Linearizable => write!(f, "linearizable"),
            Verdict::Unknown { key } => {
                write!(f, "unknown: key {key:?} exceeded the search budget")
            }
            Verdict::NotLinearizable { key, explanation } => write!(
                f,
                "not linearizable: key {key:?}: longest linearizable prefix {:?} (ops by \
                 history index) leaves the value {:?}; the search could not extend it with any of {:?}",
                explanation.longest_prefix, explanation.value_after_prefix, explanation.unplaced
            ),
        }
    }
}
