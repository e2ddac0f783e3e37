//! The classic example histories from the papers and test suites of two established
//! checkers, translated into this checker's [`Op`] form with the verdict their authors
//! give: Porcupine (Athalye, github.com/anishathalye/porcupine: README and
//! `porcupine_test.go`) and Knossos (Kingsbury, github.com/jepsen-io/knossos: README,
//! `test/knossos/{wgl,linear}_test.clj`, `data/cas-register/`), plus the properties
//! Herlihy & Wing prove about linearizability ("Linearizability: A Correctness Condition
//! for Concurrent Objects", TOPLAS 1990) that a per-key checker relies on. Their own
//! figures are FIFO-queue histories, which a register model cannot express.
//!
//! Translation rules, applied the same way everywhere:
//! - Both tools start the register at a value (Porcupine: 0; Knossos: `(register 0)` /
//!   `(cas-register 0)`, or `nil` when stated). Here an initial value is a completed put
//!   at time 0 by client 99, before every other operation; `nil` is "absent" (no put).
//! - Event lists (Porcupine's `Event`s, Knossos's op maps) give no clock: event `i` of the
//!   list happens at time `i + 1`. An invocation opens the process's operation, `ok` (or a
//!   Porcupine return) completes it with the result it carries.
//! - Knossos `:info`, or no completion at all, is an unknown outcome; `:fail` means the
//!   operation certainly did not happen, and Knossos drops it, so it is left out here.
//! - Porcupine `Operation`s carry explicit call/return times; they are shifted by one so
//!   the initial put comes strictly first.

use super::*;

type History = Vec<Op<&'static str, u32>>;

const BUDGET: u64 = 1_000_000;
const KEY: &str = "register";
/// The client that writes the initial value.
const SETUP: u64 = 99;

/// What an event does (Knossos `:f` with its `:value`; reads carry the value read on
/// their completion).
#[derive(Clone, Copy, Debug)]
enum F {
    Read(Option<u32>),
    Write(u32),
}

/// Knossos `:type` (Porcupine: `CallEvent` = Invoke, `ReturnEvent` = Ok).
#[derive(Clone, Copy, Debug, PartialEq)]
enum T {
    Invoke,
    Ok,
    Info,
    Fail,
}

use F::{Read, Write};
use T::{Fail, Info, Invoke, Ok};

fn initially(initial: Option<u32>) -> History {
    initial
        .map(|value| Op {
            client: SETUP,
            key: KEY,
            call: 0,
            ret: Some(0),
            kind: OpKind::Put { value },
            result: OpResult::Done,
        })
        .into_iter()
        .collect()
}

/// An event list as described in the module documentation. Operations appear in the
/// order they were invoked.
fn from_events(initial: Option<u32>, events: &[(u64, T, F)]) -> History {
    let mut history = initially(initial);
    // process -> index of its open operation in `history`
    let mut open: BTreeMap<u64, usize> = BTreeMap::new();
    let mut failed = Vec::new();
    for (i, &(process, kind, f)) in events.iter().enumerate() {
        let time = i as u64 + 1;
        if kind == Invoke {
            assert!(
                !open.contains_key(&process),
                "event {i}: process {process} busy"
            );
            let op_kind = match f {
                Read(_) => OpKind::Get,
                Write(value) => OpKind::Put { value },
            };
            open.insert(process, history.len());
            history.push(Op {
                client: process,
                key: KEY,
                call: time,
                ret: None,
                kind: op_kind,
                result: OpResult::Unknown,
            });
            continue;
        }
        let index = open
            .remove(&process)
            .unwrap_or_else(|| panic!("event {i}: process {process} has nothing open"));
        match (kind, f) {
            (Ok, Read(value)) => {
                history[index].ret = Some(time);
                history[index].result = OpResult::Value(value);
            }
            (Ok, Write(_)) => {
                history[index].ret = Some(time);
                history[index].result = OpResult::Done;
            }
            (Info, _) => {}
            (Fail, _) => failed.push(index),
            (Invoke, _) => unreachable!(),
        }
    }
    // Operations still open crashed: unknown, which they already are.
    for index in failed.into_iter().rev() {
        history.remove(index);
    }
    history
}

/// Porcupine's `Operation{ClientId, Input, Call, Output, Return}` for its register
/// model (initial value 0): `Write(v)` is `put(v)`, `Read(Some(v))` a `get()` that
/// returned `v`.
fn from_porcupine_ops(ops: &[(u64, F, u64, u64)]) -> History {
    let mut history = initially(Some(0));
    for &(client, f, call, ret) in ops {
        let (kind, result) = match f {
            Read(value) => (OpKind::Get, OpResult::Value(value)),
            Write(value) => (OpKind::Put { value }, OpResult::Done),
        };
        history.push(Op {
            client,
            key: KEY,
            call: call + 1,
            ret: Some(ret + 1),
            kind,
            result,
        });
    }
    history
}

fn verdict(history: &History) -> Verdict<&'static str, u32> {
    check_kv(history, BUDGET).expect("well-formed history")
}

/// Asserts the history is rejected and that the operation the source names as the one
/// that cannot be linearized — a read by `process` of `read` — is among those the
/// explanation could not place.
fn assert_rejected_at(history: &History, process: u64, read: Option<u32>) {
    match verdict(history) {
        Verdict::NotLinearizable { key, explanation } => {
            assert_eq!(key, KEY);
            let named = explanation.unplaced.iter().any(|&i| {
                history[i].client == process && history[i].result == OpResult::Value(read)
            });
            assert!(named, "unplaced {:?} in {history:?}", explanation.unplaced);
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

// ---- Porcupine ----

/// README and `TestRegisterModel` (events): C0 puts 100 while C1 and C2 read; C2 reads
/// the old 0 and returns first, C1 reads 100. Linearizable: C2's get, the put, C1's get.
#[test]
fn porcupine_readme_concurrent_reads_of_old_and_new_are_linearizable() {
    let h = from_events(
        Some(0),
        &[
            (0, Invoke, Write(100)),
            (1, Invoke, Read(None)),
            (2, Invoke, Read(None)),
            (2, Ok, Read(Some(0))),
            (1, Ok, Read(Some(100))),
            (0, Ok, Write(100)),
        ],
    );
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

/// README and `TestRegisterModel` (events): C1 reads 200 and returns before C2 even
/// calls, yet C2 reads the old 0 while the put of 200 is still pending. Not linearizable.
#[test]
fn porcupine_readme_old_value_after_a_completed_read_of_the_new_is_rejected() {
    let h = from_events(
        Some(0),
        &[
            (0, Invoke, Write(200)),
            (1, Invoke, Read(None)),
            (1, Ok, Read(Some(200))),
            (2, Invoke, Read(None)),
            (2, Ok, Read(Some(0))),
            (0, Ok, Write(200)),
        ],
    );
    assert_rejected_at(&h, 2, Some(0));
}

/// `TestRegisterModel` (operations with times; from MIT 6.824's 2017 quiz 2, section VII).
#[test]
fn porcupine_register_model_operations_with_times() {
    let good = from_porcupine_ops(&[
        (0, Write(100), 0, 100),
        (1, Read(Some(100)), 25, 75),
        (2, Read(Some(0)), 30, 60),
    ]);
    assert_eq!(verdict(&good), Verdict::Linearizable);

    let bad = from_porcupine_ops(&[
        (0, Write(200), 0, 100),
        (1, Read(Some(200)), 10, 30),
        (2, Read(Some(0)), 40, 90),
    ]);
    assert_rejected_at(&bad, 2, Some(0));
}

/// `TestZeroDuration`: operations whose call and return share a timestamp.
#[test]
fn porcupine_zero_duration_operations() {
    let good = from_porcupine_ops(&[
        (0, Write(100), 0, 100),
        (1, Read(Some(100)), 25, 75),
        (2, Read(Some(0)), 30, 30),
        (3, Read(Some(0)), 30, 30),
    ]);
    assert_eq!(verdict(&good), Verdict::Linearizable);

    let bad = from_porcupine_ops(&[
        (0, Write(200), 0, 100),
        (1, Read(Some(200)), 10, 10),
        (2, Read(Some(200)), 10, 10),
        (3, Read(Some(0)), 40, 90),
    ]);
    assert_rejected_at(&bad, 3, Some(0));
}

// ---- Knossos ----

/// README: a crashed (`:info`) write of 3 concurrent with a read of 3, from register 0.
/// Linearizable: the crashed write took effect before the read.
#[test]
fn knossos_readme_crashed_write_explains_a_concurrent_read() {
    let h = from_events(
        Some(0),
        &[
            (0, Invoke, Read(None)),
            (1, Invoke, Write(3)),
            (1, Info, Write(3)),
            (0, Ok, Read(Some(3))),
        ],
    );
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

/// `crash-test` and `sequential-test` (wgl_test.clj, linear_test.clj), register 0.
#[test]
fn knossos_crashed_write_alone_and_a_sequential_read_are_linearizable() {
    let crash = from_events(Some(0), &[(0, Invoke, Write(1)), (0, Info, Write(1))]);
    assert_eq!(verdict(&crash), Verdict::Linearizable);
    let sequential = from_events(Some(0), &[(0, Invoke, Read(None)), (0, Ok, Read(Some(0)))]);
    assert_eq!(verdict(&sequential), Verdict::Linearizable);
}

/// `read-wrong-initial-value-test`: register 0, a read of 1. `preserves-indices-test`:
/// register 0, write 1 then read 2 by the same process; the read is the culprit.
#[test]
fn knossos_reads_of_values_never_there_are_rejected() {
    let wrong_initial = from_events(Some(0), &[(0, Invoke, Read(None)), (0, Ok, Read(Some(1)))]);
    assert_rejected_at(&wrong_initial, 0, Some(1));
    let h = from_events(
        Some(0),
        &[
            (0, Invoke, Write(1)),
            (0, Ok, Write(1)),
            (0, Invoke, Read(None)),
            (0, Ok, Read(Some(2))),
        ],
    );
    assert_rejected_at(&h, 0, Some(2));
}

/// `data/cas-register/bad/bad-analysis.edn` (`bad-analysis-test`, cas-register 0): after
/// writes of 2, 4, 0 and a read of 0, with a read (process 6) and a write of 1
/// (process 20) left pending forever, two concurrent reads see 3 and 2. Nothing pending
/// writes 3 or 2, so neither fits; Knossos names process 21's read of 2.
#[test]
fn knossos_bad_analysis_is_rejected_at_the_read_of_two() {
    let h = from_events(
        Some(0),
        &[
            (4, Invoke, Write(2)),
            (4, Ok, Write(2)),
            (6, Invoke, Read(None)),
            (1, Invoke, Write(4)),
            (1, Ok, Write(4)),
            (14, Invoke, Read(None)),
            (14, Ok, Read(Some(4))),
            (9, Invoke, Write(0)),
            (9, Ok, Write(0)),
            (19, Invoke, Read(None)),
            (20, Invoke, Write(1)),
            (19, Ok, Read(Some(0))),
            (22, Invoke, Read(None)),
            (21, Invoke, Read(None)),
            (21, Ok, Read(Some(2))),
            (22, Ok, Read(Some(3))),
        ],
    );
    assert_rejected_at(&h, 21, Some(2));
    assert_rejected_at(&h, 22, Some(3));
}

/// `data/cas-register/good/cas-register-bug.edn` (once exposed a Knossos bug; valid
/// with cas-register 0): the same prefix as bad-analysis, ending at the read of 0.
#[test]
fn knossos_cas_register_bug_history_is_linearizable() {
    let h = from_events(
        Some(0),
        &[
            (4, Invoke, Write(2)),
            (4, Ok, Write(2)),
            (6, Invoke, Read(None)),
            (1, Invoke, Write(4)),
            (1, Ok, Write(4)),
            (14, Invoke, Read(None)),
            (14, Ok, Read(Some(4))),
            (9, Invoke, Write(0)),
            (9, Ok, Write(0)),
            (19, Invoke, Read(None)),
            (19, Ok, Read(Some(0))),
        ],
    );
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

/// `data/cas-register/bad/immediate-failure.edn` (`immediate-failure-test`,
/// cas-register 0): a write of 3 that *failed* (certainly not applied) cannot explain a
/// concurrent read of 3.
#[test]
fn knossos_immediate_failure_is_rejected() {
    let h = from_events(
        Some(0),
        &[
            (1, Invoke, Read(None)),
            (101, Invoke, Write(3)),
            (101, Fail, Write(3)),
            (1, Ok, Read(Some(3))),
        ],
    );
    assert_eq!(h.len(), 2, "the failed write is dropped");
    assert_rejected_at(&h, 1, Some(3));
    // The same history with the write's outcome unknown (`:info`) is the README's
    // linearizable example.
    let info = from_events(
        Some(0),
        &[
            (1, Invoke, Read(None)),
            (101, Invoke, Write(3)),
            (101, Info, Write(3)),
            (1, Ok, Read(Some(3))),
        ],
    );
    assert_eq!(verdict(&info), Verdict::Linearizable);
}

/// `data/cas-register/bad/rethink-fail-minimal.edn` (README, `rethink-fail-minimal-test`,
/// cas-register nil): 0 is written, then a read concurrent with a write of 4 returns 3,
/// which nobody wrote; a later read of 4 is fine, and the culprit is process 1's read.
#[test]
fn knossos_rethink_fail_minimal_is_rejected_at_the_read_of_three() {
    let h = from_events(
        None,
        &[
            (0, Invoke, Write(0)),
            (0, Ok, Write(0)),
            (1, Invoke, Read(None)),
            (2, Invoke, Write(4)),
            (1, Ok, Read(Some(3))),
            (2, Ok, Write(4)),
            (3, Invoke, Read(None)),
            (3, Ok, Read(Some(4))),
        ],
    );
    match verdict(&h) {
        Verdict::NotLinearizable { explanation, .. } => {
            // Knossos names the read of 3, not the later read of 4.
            let unplaced: Vec<u64> = explanation.unplaced.iter().map(|&i| h[i].client).collect();
            assert!(unplaced.contains(&1), "{explanation:?}");
        }
        other => panic!("{other:?}"),
    }
}

// ---- Herlihy & Wing: properties the checker relies on ----

/// Locality (H&W, "Locality"): a history is linearizable iff each object's
/// sub-history is. Two registers, each linearizable alone, make a linearizable whole;
/// and one bad register makes the whole bad, whatever the other does.
#[test]
fn herlihy_wing_locality_per_register() {
    let mut h: History = vec![
        Op {
            client: 1,
            key: "x",
            call: 1,
            ret: Some(4),
            kind: OpKind::Put { value: 1 },
            result: OpResult::Done,
        },
        Op {
            client: 2,
            key: "y",
            call: 2,
            ret: Some(5),
            kind: OpKind::Put { value: 2 },
            result: OpResult::Done,
        },
        Op {
            client: 1,
            key: "y",
            call: 6,
            ret: Some(7),
            kind: OpKind::Get,
            result: OpResult::Value(Some(2)),
        },
        Op {
            client: 2,
            key: "x",
            call: 6,
            ret: Some(7),
            kind: OpKind::Get,
            result: OpResult::Value(Some(1)),
        },
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
    // y's read now returns absent after y's put completed: y alone is not linearizable.
    h[2].result = OpResult::Value(None);
    assert!(matches!(
        verdict(&h),
        Verdict::NotLinearizable { key: "y", .. }
    ));
}

/// Non-blocking (H&W, "Blocking versus Non-blocking"): a pending invocation of a total
/// operation never forces a rejection, since it can be completed (or dropped). A
/// linearizable history stays linearizable with writes, deletes and CAS left pending
/// at the end.
#[test]
fn herlihy_wing_pending_invocations_never_block() {
    let mut h = from_events(
        Some(0),
        &[
            (1, Invoke, Write(1)),
            (1, Ok, Write(1)),
            (2, Invoke, Read(None)),
            (2, Ok, Read(Some(1))),
        ],
    );
    assert_eq!(verdict(&h), Verdict::Linearizable);
    for (client, kind) in [
        (3, OpKind::Put { value: 7 }),
        (4, OpKind::Delete),
        (
            5,
            OpKind::Cas {
                expect: Some(9),
                new: Some(8),
            },
        ),
    ] {
        h.push(Op {
            client,
            key: KEY,
            call: 10,
            ret: None,
            kind,
            result: OpResult::Unknown,
        });
        assert_eq!(verdict(&h), Verdict::Linearizable);
    }
}

/// Linearizability respects real time where sequential consistency need not (H&W,
/// "Sequential consistency" in the comparison with other conditions): p writes 1 and
/// completes, then q writes 2 and completes, then p reads 1. Sequentially consistent
/// (q's write may be ordered first), but not linearizable.
#[test]
fn herlihy_wing_sequentially_consistent_but_not_linearizable() {
    let h = from_events(
        Some(0),
        &[
            (1, Invoke, Write(1)),
            (1, Ok, Write(1)),
            (2, Invoke, Write(2)),
            (2, Ok, Write(2)),
            (1, Invoke, Read(None)),
            (1, Ok, Read(Some(1))),
        ],
    );
    assert_rejected_at(&h, 1, Some(1));
}
