//! Wing & Gong's linearization search over one key, with Lowe's memoization extended for
//! unknown outcomes.
//!
//! Known-outcome operations become a time-ordered list of call and return entries. The
//! search walks it from the front: at a call entry it tries to linearize that operation
//! next; on success it unlinks the operation's entries and restarts from the front.
//! Reaching a return entry means that operation had to be linearized before now: the
//! candidates for "next" are exhausted. Unknown-outcome operations have no return entry;
//! they sit in a second list by call time and are tried only after the known candidates
//! (those called no later than the blocking return). When nothing fits, the last choice is
//! undone (entries are relinked in place, "dancing links") and the walk resumes after it.
//!
//! Unknown outcomes can make the search exponential in how many are pending, so it only
//! builds *canonical* linearizations, in which an unknown operation (a) changes the value
//! and (b) is not immediately followed by an overwrite (`Put` or `Delete`, known or not).
//! Dropping an unknown operation that breaks (a) or (b) from any linearization leaves a
//! linearization (it may never have happened, and nothing observed its effect), so one
//! exists iff a canonical one does.
//!
//! Memoization: a state is (known operations linearized, unknown operations linearized,
//! register value, whether the last one placed was unknown). Lowe's cache skips a state
//! already explored (every state on file has failed: a success ends the search, and a
//! state never recurs below itself). Here a failed state also rules out any state with
//! the same known set and value, a *superset* of its unknown operations and no fewer
//! restrictions on the next step: unknown operations constrain nothing (no return time),
//! so any completion from the larger state is one from the smaller. Trying known
//! candidates first makes those smaller states fail first.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hash};

use super::{model, Explanation, OpKind, OpResult};

/// One operation of a single key, validated.
#[derive(Debug, Clone)]
pub(super) struct KeyOp<V> {
    /// Index into the caller's history, for explanations.
    pub index: usize,
    pub call: u64,
    /// `None` for an unknown outcome: it never has to be linearized by any time.
    pub ret: Option<u64>,
    pub kind: OpKind<V>,
    pub result: OpResult<V>,
}

pub(super) enum KeyOutcome<V> {
    Linearizable,
    NotLinearizable(Explanation<V>),
    OutOfBudget,
}

/// Checks one key's operations; also returns the steps spent (one per candidate tried or
/// choice undone).
pub(super) fn check_register<V: Eq + Clone + Hash>(
    ops: &[KeyOp<V>],
    budget: u64,
) -> (KeyOutcome<V>, u64) {
    let mut search = Search::new(ops);
    let outcome = search.run(budget);
    (outcome, search.steps)
}

/// "No node": the end of a list.
const NIL: usize = usize::MAX;
/// Sentinel head of the list of known calls and returns.
const KNOWN_HEAD: usize = 0;
/// Sentinel head of the list of unknown-outcome calls.
const UNKNOWN_HEAD: usize = 1;

#[derive(Debug, Clone)]
struct Node {
    /// Position in `ops` (`NIL` for the heads).
    op: usize,
    is_call: bool,
    /// For a known call: its return node; otherwise `NIL`.
    partner: usize,
    /// For a return: its time.
    time: u64,
    prev: usize,
    next: usize,
}

/// Where the walk is.
#[derive(Debug, Clone, Copy)]
enum Cursor {
    /// At this node of the known list.
    Known(usize),
    /// At this node of the unknown list; only calls at or before `limit` (the blocking
    /// return's time; `None` = no return left) are candidates.
    Unknown { node: usize, limit: Option<u64> },
}

/// One choice on the current path: the node linearized, where its candidate came from
/// (to resume after it), and the register value before it.
struct Choice<V> {
    cursor: Cursor,
    before: Option<V>,
}

/// A state explored without success, filed under its known set.
struct FailedState<V> {
    value: Option<V>,
    unknown_set: Vec<u64>,
    /// Reached by placing an unknown operation last: then an overwrite may not follow.
    after_unknown: bool,
}

/// Explored-and-failed states by known set. Deterministic hashing (SipHash with fixed
/// keys); only probed, never iterated.
type Failed<V> = HashMap<Vec<u64>, Vec<FailedState<V>>, BuildHasherDefault<DefaultHasher>>;

struct Search<'a, V> {
    ops: &'a [KeyOp<V>],
    nodes: Vec<Node>,
    /// Bitsets over `ops`: the known and the unknown operations linearized now.
    known_set: Vec<u64>,
    unknown_set: Vec<u64>,
    /// The register's value after the current partial linearization.
    value: Option<V>,
    path: Vec<Choice<V>>,
    failed: Failed<V>,
    known_total: usize,
    known_placed: usize,
    steps: u64,
    /// The partial linearization with the most known outcomes found first, by history
    /// index, its known count and the value after it.
    deepest: Vec<usize>,
    deepest_known: usize,
    deepest_value: Option<V>,
}

impl<'a, V: Eq + Clone + Hash> Search<'a, V> {
    fn new(ops: &'a [KeyOp<V>]) -> Self {
        let words = ops.len().div_ceil(64);
        Search {
            ops,
            nodes: build_lists(ops),
            known_set: vec![0; words],
            unknown_set: vec![0; words],
            value: None,
            path: Vec::new(),
            failed: Failed::default(),
            known_total: ops.iter().filter(|op| op.ret.is_some()).count(),
            known_placed: 0,
            steps: 0,
            deepest: Vec::new(),
            deepest_known: 0,
            deepest_value: None,
        }
    }

    fn run(&mut self, budget: u64) -> KeyOutcome<V> {
        let mut cursor = Cursor::Known(self.nodes[KNOWN_HEAD].next);
        loop {
            // Every known outcome placed: the unknown ones may all come later (or never).
            if self.known_placed == self.known_total {
                return KeyOutcome::Linearizable;
            }
            if self.steps >= budget {
                return KeyOutcome::OutOfBudget;
            }
            self.steps += 1;
            cursor = match cursor {
                Cursor::Known(node) if node != NIL && self.nodes[node].is_call => {
                    if self.try_linearize(cursor, node) {
                        Cursor::Known(self.nodes[KNOWN_HEAD].next)
                    } else {
                        Cursor::Known(self.nodes[node].next)
                    }
                }
                // The known candidates end at the first pending return (`NIL` cannot be
                // reached while a known operation is pending; handled for totality).
                Cursor::Known(node) => Cursor::Unknown {
                    node: self.nodes[UNKNOWN_HEAD].next,
                    limit: (node != NIL).then(|| self.nodes[node].time),
                },
                Cursor::Unknown { node, limit }
                    if node != NIL
                        && limit.is_none_or(|t| self.ops[self.nodes[node].op].call <= t) =>
                {
                    if self.try_linearize(cursor, node) {
                        Cursor::Known(self.nodes[KNOWN_HEAD].next)
                    } else {
                        Cursor::Unknown {
                            node: self.nodes[node].next,
                            limit,
                        }
                    }
                }
                Cursor::Unknown { .. } => match self.undo_last() {
                    Some(resume) => resume,
                    None => return KeyOutcome::NotLinearizable(self.explanation()),
                },
            };
        }
    }

    /// Linearizes the operation of `node` next if the model accepts its outcome and the
    /// resulting state is not known to fail.
    fn try_linearize(&mut self, cursor: Cursor, node: usize) -> bool {
        let op = self.nodes[node].op;
        let Some(after) = model::step(&self.value, &self.ops[op].kind, &self.ops[op].result) else {
            return false;
        };
        let known = self.ops[op].ret.is_some();
        // Canonical linearizations only (see the module documentation): an unknown
        // operation never leaves the value unchanged, nor is it directly overwritten.
        let overwrites = matches!(self.ops[op].kind, OpKind::Put { .. } | OpKind::Delete);
        if (!known && after == self.value) || (overwrites && self.after_unknown()) {
            return false;
        }
        self.mark(op, known, true);
        if self.known_to_fail(&after, !known) {
            self.mark(op, known, false);
            return false;
        }
        let before = std::mem::replace(&mut self.value, after);
        self.path.push(Choice { cursor, before });
        if known {
            self.known_placed += 1;
        }
        self.unlink(node);
        // "Deepest" counts known outcomes: unknown ones can always be appended.
        if known && self.known_placed > self.deepest_known {
            self.deepest_known = self.known_placed;
            self.deepest = self
                .path
                .iter()
                .map(|choice| self.ops[self.nodes[choice.node()].op].index)
                .collect();
            self.deepest_value = self.value.clone();
        }
        true
    }

    /// Undoes the last choice, recording its state as failed (every candidate after it has
    /// been tried); returns where to resume, or `None` if nothing is left to undo.
    fn undo_last(&mut self) -> Option<Cursor> {
        let choice = self.path.pop()?;
        let node = choice.node();
        let op = self.nodes[node].op;
        let known = self.ops[op].ret.is_some();
        let failed = FailedState {
            value: std::mem::replace(&mut self.value, choice.before),
            unknown_set: self.unknown_set.clone(),
            after_unknown: !known,
        };
        self.failed
            .entry(self.known_set.clone())
            .or_default()
            .push(failed);
        self.mark(op, known, false);
        if known {
            self.known_placed -= 1;
        }
        self.relink(node);
        Some(match choice.cursor {
            Cursor::Known(_) => Cursor::Known(self.nodes[node].next),
            Cursor::Unknown { limit, .. } => Cursor::Unknown {
                node: self.nodes[node].next,
                limit,
            },
        })
    }

    /// Whether the last operation on the path has an unknown outcome.
    fn after_unknown(&self) -> bool {
        self.path
            .last()
            .is_some_and(|choice| matches!(choice.cursor, Cursor::Unknown { .. }))
    }

    /// Whether the current sets with register `value` (reached by placing an unknown
    /// operation last or not) are covered by a failed state: the same known set and
    /// value, a subset of the current unknown set, and no stricter restriction on what
    /// may come next.
    fn known_to_fail(&self, value: &Option<V>, after_unknown: bool) -> bool {
        let Some(states) = self.failed.get(self.known_set.as_slice()) else {
            return false;
        };
        states.iter().any(|failed| {
            failed.value == *value
                && (after_unknown || !failed.after_unknown)
                && failed
                    .unknown_set
                    .iter()
                    .zip(&self.unknown_set)
                    .all(|(failed, now)| failed & !now == 0)
        })
    }

    fn mark(&mut self, op: usize, known: bool, on: bool) {
        let set = if known {
            &mut self.known_set
        } else {
            &mut self.unknown_set
        };
        let (word, bit) = (op / 64, 1u64 << (op % 64));
        if on {
            set[word] |= bit;
        } else {
            set[word] &= !bit;
        }
    }

    /// Unlinks a call node and its return node; both keep their own links for `relink`.
    fn unlink(&mut self, call_node: usize) {
        self.unlink_one(call_node);
        let partner = self.nodes[call_node].partner;
        if partner != NIL {
            self.unlink_one(partner);
        }
    }

    /// Undoes `unlink`, in reverse order so each node's saved neighbours are current.
    fn relink(&mut self, call_node: usize) {
        let partner = self.nodes[call_node].partner;
        if partner != NIL {
            self.relink_one(partner);
        }
        self.relink_one(call_node);
    }

    fn unlink_one(&mut self, node: usize) {
        let Node { prev, next, .. } = self.nodes[node];
        self.nodes[prev].next = next;
        if next != NIL {
            self.nodes[next].prev = prev;
        }
    }

    fn relink_one(&mut self, node: usize) {
        let Node { prev, next, .. } = self.nodes[node];
        self.nodes[prev].next = node;
        if next != NIL {
            self.nodes[next].prev = node;
        }
    }

    fn explanation(&self) -> Explanation<V> {
        let mut unplaced: Vec<&KeyOp<V>> = self
            .ops
            .iter()
            .filter(|op| op.ret.is_some() && !self.deepest.contains(&op.index))
            .collect();
        unplaced.sort_by_key(|op| (op.call, op.index));
        Explanation {
            longest_prefix: self.deepest.clone(),
            value_after_prefix: self.deepest_value.clone(),
            unplaced: unplaced.iter().map(|op| op.index).collect(),
        }
    }
}

impl<V> Choice<V> {
    /// The node this choice linearized.
    fn node(&self) -> usize {
        match self.cursor {
            Cursor::Known(node) | Cursor::Unknown { node, .. } => node,
        }
    }
}

/// Both sentinel heads, then the known list: every known call and return in time order
/// (at equal times calls first, since the operations overlap; then history order); then
/// the unknown list: unknown calls by call time, then history order.
fn build_lists<V>(ops: &[KeyOp<V>]) -> Vec<Node> {
    // (time, 0 = call / 1 = return, op position)
    let mut known: Vec<(u64, u8, usize)> = Vec::with_capacity(ops.len() * 2);
    let mut unknown: Vec<(u64, u8, usize)> = Vec::new();
    for (position, op) in ops.iter().enumerate() {
        match op.ret {
            Some(ret) => {
                known.push((op.call, 0, position));
                known.push((ret, 1, position));
            }
            None => unknown.push((op.call, 0, position)),
        }
    }
    known.sort_unstable();
    unknown.sort_unstable();

    let head = Node {
        op: NIL,
        is_call: false,
        partner: NIL,
        time: 0,
        prev: NIL,
        next: NIL,
    };
    let mut nodes = vec![head.clone(), head];
    let mut call_node_of = vec![NIL; ops.len()];
    for (list_head, events) in [(KNOWN_HEAD, known), (UNKNOWN_HEAD, unknown)] {
        let mut last = list_head;
        for (time, kind, position) in events {
            let node = nodes.len();
            let is_call = kind == 0;
            if is_call {
                call_node_of[position] = node;
            } else {
                nodes[call_node_of[position]].partner = node;
            }
            nodes[last].next = node;
            nodes.push(Node {
                op: position,
                is_call,
                partner: NIL,
                time,
                prev: last,
                next: NIL,
            });
            last = node;
        }
    }
    nodes
}
