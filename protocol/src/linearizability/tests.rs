//! Tests of the linearizability checker: hand-written histories with exact verdicts, then
//! seeded random histories generated from a real sequential execution.

use super::*;
use crate::rng::seeded;
use rand::Rng;

/// Plenty for every hand-written history; the budget tests use their own.
const BUDGET: u64 = 1_000_000;

type History = Vec<Op<&'static str, u32>>;

fn op(
    client: u64,
    key: &'static str,
    call: u64,
    ret: u64,
    kind: OpKind<u32>,
    result: OpResult<u32>,
) -> Op<&'static str, u32> {
    Op {
        client,
        key,
        call,
        ret: Some(ret),
        kind,
        result,
    }
}

fn put(client: u64, key: &'static str, call: u64, ret: u64, value: u32) -> Op<&'static str, u32> {
    op(
        client,
        key,
        call,
        ret,
        OpKind::Put { value },
        OpResult::Done,
    )
}

fn get(
    client: u64,
    key: &'static str,
    call: u64,
    ret: u64,
    read: Option<u32>,
) -> Op<&'static str, u32> {
    op(client, key, call, ret, OpKind::Get, OpResult::Value(read))
}

fn delete(client: u64, key: &'static str, call: u64, ret: u64) -> Op<&'static str, u32> {
    op(client, key, call, ret, OpKind::Delete, OpResult::Done)
}

fn cas(
    client: u64,
    key: &'static str,
    (call, ret): (u64, u64),
    expect: Option<u32>,
    new: Option<u32>,
    swapped: bool,
) -> Op<&'static str, u32> {
    let kind = OpKind::Cas { expect, new };
    op(client, key, call, ret, kind, OpResult::Swapped(swapped))
}

/// The same operation, but its outcome never came back.
fn timed_out(mut op: Op<&'static str, u32>) -> Op<&'static str, u32> {
    op.ret = None;
    op.result = OpResult::Unknown;
    op
}

/// The same operation, but the client gave up at its `ret` without an answer.
fn gave_up(mut op: Op<&'static str, u32>) -> Op<&'static str, u32> {
    op.result = OpResult::Unknown;
    op
}

fn check(history: &History) -> Verdict<&'static str, u32> {
    check_kv(history, BUDGET).expect("well-formed history")
}

fn not_linearizable(
    key: &'static str,
    longest_prefix: Vec<usize>,
    value_after_prefix: Option<u32>,
    unplaced: Vec<usize>,
) -> Verdict<&'static str, u32> {
    Verdict::NotLinearizable {
        key,
        explanation: Explanation {
            longest_prefix,
            value_after_prefix,
            unplaced,
        },
    }
}

// ---- sequential histories ----

#[test]
fn an_empty_history_is_linearizable() {
    assert_eq!(check(&vec![]), Verdict::Linearizable);
}

#[test]
fn a_sequential_put_then_get_is_linearizable() {
    let h = vec![put(1, "k", 0, 1, 5), get(1, "k", 2, 3, Some(5))];
    assert_eq!(check(&h), Verdict::Linearizable);
}

#[test]
fn a_key_never_written_reads_absent() {
    assert_eq!(check(&vec![get(1, "k", 0, 1, None)]), Verdict::Linearizable);
    assert_eq!(
        check(&vec![get(1, "k", 0, 1, Some(1))]),
        not_linearizable("k", vec![], None, vec![0])
    );
}

#[test]
fn a_sequential_history_of_every_kind_is_linearizable() {
    let h = vec![
        put(1, "k", 0, 1, 1),
        get(2, "k", 2, 3, Some(1)),
        cas(1, "k", (4, 5), Some(1), Some(2), true),
        cas(2, "k", (6, 7), Some(1), Some(3), false),
        get(1, "k", 8, 9, Some(2)),
        delete(2, "k", 10, 11),
        get(1, "k", 12, 13, None),
        cas(2, "k", (14, 15), None, Some(4), true),
        get(1, "k", 16, 17, Some(4)),
    ];
    assert_eq!(check(&h), Verdict::Linearizable);
}

#[test]
fn a_sequential_history_with_a_wrong_read_is_rejected_with_its_prefix() {
    let h = vec![
        put(1, "k", 0, 1, 1),
        put(1, "k", 2, 3, 2),
        get(1, "k", 4, 5, Some(3)),
    ];
    assert_eq!(
        check(&h),
        not_linearizable("k", vec![0, 1], Some(2), vec![2])
    );
}

// ---- concurrent puts and gets ----

#[test]
fn a_get_overlapping_a_put_may_read_the_old_value() {
    let h = vec![put(1, "k", 0, 10, 1), get(2, "k", 2, 4, None)];
    assert_eq!(check(&h), Verdict::Linearizable);
}

#[test]
fn a_get_overlapping_a_put_may_read_the_new_value() {
    let h = vec![put(1, "k", 0, 10, 1), get(2, "k", 2, 4, Some(1))];
    assert_eq!(check(&h), Verdict::Linearizable);
}

#[test]
fn a_get_called_before_the_put_but_overlapping_it_may_read_either() {
    // Listed with the get first, so the search must reorder against history order.
    for read in [None, Some(1)] {
        let h = vec![get(2, "k", 0, 10, read), put(1, "k", 5, 6, 1)];
        assert_eq!(check(&h), Verdict::Linearizable, "read {read:?}");
    }
}

#[test]
fn overlapping_puts_may_take_effect_in_either_order() {
    for (last, other) in [(1, 2), (2, 1)] {
        let h = vec![
            put(1, "k", 0, 10, 1),
            put(2, "k", 1, 9, 2),
            get(3, "k", 11, 12, Some(last)),
            get(3, "k", 13, 14, Some(last)),
        ];
        assert_eq!(check(&h), Verdict::Linearizable, "last {last}");
        // ...but once settled, the other value cannot come back.
        let mut flip = h.clone();
        flip[3] = get(3, "k", 13, 14, Some(other));
        assert!(
            matches!(check(&flip), Verdict::NotLinearizable { key: "k", .. }),
            "last {last} then {other}"
        );
    }
}

#[test]
fn reads_during_overlapping_puts_may_see_both_values_in_one_order() {
    // While both puts are in flight a reader may see 1 then 2 (or 2 then 1).
    let h = vec![
        put(1, "k", 0, 100, 1),
        put(2, "k", 0, 100, 2),
        get(3, "k", 10, 11, Some(2)),
        get(3, "k", 20, 21, Some(1)),
    ];
    assert_eq!(check(&h), Verdict::Linearizable);
}

// ---- classic non-linearizable histories ----

#[test]
fn a_read_of_a_value_written_after_the_read_completed_is_rejected() {
    let h = vec![get(2, "k", 0, 1, Some(1)), put(1, "k", 2, 3, 1)];
    assert_eq!(check(&h), not_linearizable("k", vec![], None, vec![0, 1]));
}

#[test]
fn two_readers_seeing_two_writes_in_contradictory_orders_are_rejected() {
    // Reader 3 sees 1 then 2, reader 4 (interleaved in real time) sees 2 then 1. Each
    // reader alone is fine; together they need both writes to happen twice.
    let h = vec![
        put(1, "k", 0, 100, 1),
        put(2, "k", 0, 100, 2),
        get(3, "k", 10, 11, Some(1)),
        get(4, "k", 12, 13, Some(2)),
        get(3, "k", 20, 21, Some(2)),
        get(4, "k", 22, 23, Some(1)),
    ];
    assert_eq!(
        check(&h),
        not_linearizable("k", vec![0, 2, 1, 3, 4], Some(2), vec![5])
    );
    // Without reader 4's second read it is fine.
    assert_eq!(check(&h[..5].to_vec()), Verdict::Linearizable);
}

#[test]
fn a_stale_read_after_a_completed_write_is_rejected() {
    let h = vec![
        put(1, "k", 0, 1, 1),
        put(1, "k", 2, 3, 2),
        get(2, "k", 4, 5, Some(1)),
    ];
    assert_eq!(
        check(&h),
        not_linearizable("k", vec![0, 1], Some(2), vec![2])
    );
}

#[test]
fn a_stale_read_of_absent_after_a_completed_write_is_rejected() {
    let h = vec![put(1, "k", 0, 1, 1), get(2, "k", 2, 3, None)];
    assert_eq!(check(&h), not_linearizable("k", vec![0], Some(1), vec![1]));
}

#[test]
fn a_return_and_a_call_at_the_same_tick_count_as_concurrent() {
    let concurrent = vec![put(1, "k", 0, 5, 1), get(2, "k", 5, 6, None)];
    assert_eq!(check(&concurrent), Verdict::Linearizable);
    let after = vec![put(1, "k", 0, 5, 1), get(2, "k", 6, 7, None)];
    assert_eq!(
        check(&after),
        not_linearizable("k", vec![0], Some(1), vec![1])
    );
}

// ---- unknown outcomes ----

#[test]
fn a_timed_out_put_that_took_effect_is_linearizable() {
    let h = vec![timed_out(put(1, "k", 0, 0, 1)), get(2, "k", 5, 6, Some(1))];
    assert_eq!(check(&h), Verdict::Linearizable);
}

#[test]
fn a_timed_out_put_that_never_took_effect_is_linearizable() {
    let h = vec![timed_out(put(1, "k", 0, 0, 1)), get(2, "k", 5, 6, None)];
    assert_eq!(check(&h), Verdict::Linearizable);
}

#[test]
fn a_timed_out_put_may_take_effect_after_the_client_gave_up() {
    // The client gave up at 3; the write lands between the two later reads.
    let h = vec![
        gave_up(put(1, "k", 0, 3, 1)),
        get(2, "k", 10, 11, None),
        get(2, "k", 12, 13, Some(1)),
    ];
    assert_eq!(check(&h), Verdict::Linearizable);
}

#[test]
fn a_timed_out_put_takes_effect_at_most_once() {
    let h = vec![
        timed_out(put(1, "k", 0, 0, 1)),
        get(2, "k", 5, 6, Some(1)),
        put(3, "k", 7, 8, 2),
        get(2, "k", 9, 10, Some(1)),
    ];
    assert_eq!(
        check(&h),
        not_linearizable("k", vec![0, 1, 2], Some(2), vec![3])
    );
}

#[test]
fn a_timed_out_put_cannot_take_effect_before_it_was_called() {
    let h = vec![get(2, "k", 0, 1, Some(1)), timed_out(put(1, "k", 2, 0, 1))];
    assert_eq!(check(&h), not_linearizable("k", vec![], None, vec![0]));
}

#[test]
fn a_timed_out_delete_may_or_may_not_have_happened() {
    for read in [None, Some(1)] {
        let h = vec![
            put(1, "k", 0, 1, 1),
            timed_out(delete(1, "k", 2, 0)),
            get(2, "k", 5, 6, read),
        ];
        assert_eq!(check(&h), Verdict::Linearizable, "read {read:?}");
    }
}

#[test]
fn a_timed_out_get_constrains_nothing() {
    let h = vec![put(1, "k", 0, 1, 1), timed_out(get(2, "k", 2, 0, Some(9)))];
    assert_eq!(check(&h), Verdict::Linearizable);
}

// ---- compare-and-set ----

#[test]
fn a_cas_succeeds_on_the_expected_value() {
    let h = vec![
        put(1, "k", 0, 1, 1),
        cas(2, "k", (2, 3), Some(1), Some(2), true),
        get(1, "k", 4, 5, Some(2)),
    ];
    assert_eq!(check(&h), Verdict::Linearizable);
}

#[test]
fn a_cas_fails_on_another_value_and_changes_nothing() {
    let h = vec![
        put(1, "k", 0, 1, 1),
        cas(2, "k", (2, 3), Some(3), Some(2), false),
        get(1, "k", 4, 5, Some(1)),
    ];
    assert_eq!(check(&h), Verdict::Linearizable);
}

#[test]
fn a_cas_that_claims_success_on_the_wrong_value_is_rejected() {
    let h = vec![
        put(1, "k", 0, 1, 1),
        cas(2, "k", (2, 3), Some(3), Some(2), true),
    ];
    assert_eq!(check(&h), not_linearizable("k", vec![0], Some(1), vec![1]));
}

#[test]
fn a_cas_that_fails_on_the_expected_value_with_no_rival_is_rejected() {
    let h = vec![
        put(1, "k", 0, 1, 1),
        cas(2, "k", (2, 3), Some(1), Some(2), false),
    ];
    assert_eq!(check(&h), not_linearizable("k", vec![0], Some(1), vec![1]));
}

#[test]
fn a_cas_may_fail_when_a_concurrent_write_got_in_first() {
    let h = vec![
        put(1, "k", 0, 1, 1),
        put(3, "k", 2, 10, 7),
        cas(2, "k", (3, 4), Some(1), Some(2), false),
        get(1, "k", 11, 12, Some(7)),
    ];
    assert_eq!(check(&h), Verdict::Linearizable);
}

#[test]
fn only_one_of_two_concurrent_cas_on_the_same_value_can_win() {
    let both = vec![
        put(1, "k", 0, 1, 1),
        cas(2, "k", (2, 10), Some(1), Some(2), true),
        cas(3, "k", (3, 9), Some(1), Some(3), true),
    ];
    assert_eq!(
        check(&both),
        not_linearizable("k", vec![0, 1], Some(2), vec![2])
    );
    let one = vec![
        put(1, "k", 0, 1, 1),
        cas(2, "k", (2, 10), Some(1), Some(2), false),
        cas(3, "k", (3, 9), Some(1), Some(3), true),
        get(1, "k", 11, 12, Some(3)),
    ];
    assert_eq!(check(&one), Verdict::Linearizable);
}

#[test]
fn only_one_concurrent_create_if_absent_can_win() {
    let both = vec![
        cas(1, "k", (0, 10), None, Some(1), true),
        cas(2, "k", (1, 9), None, Some(2), true),
    ];
    assert_eq!(
        check(&both),
        not_linearizable("k", vec![0], Some(1), vec![1])
    );
    let one = vec![
        cas(1, "k", (0, 10), None, Some(1), true),
        cas(2, "k", (1, 9), None, Some(2), false),
        get(3, "k", 11, 12, Some(1)),
    ];
    assert_eq!(check(&one), Verdict::Linearizable);
}

#[test]
fn a_cas_delete_removes_the_value_only_when_it_matches() {
    let h = vec![
        put(1, "k", 0, 1, 1),
        cas(1, "k", (2, 3), Some(2), None, false),
        get(1, "k", 4, 5, Some(1)),
        cas(1, "k", (6, 7), Some(1), None, true),
        get(1, "k", 8, 9, None),
    ];
    assert_eq!(check(&h), Verdict::Linearizable);
}

#[test]
fn a_timed_out_cas_may_or_may_not_have_swapped() {
    for read in [Some(1), Some(2)] {
        let h = vec![
            put(1, "k", 0, 1, 1),
            timed_out(cas(2, "k", (2, 0), Some(1), Some(2), true)),
            get(1, "k", 5, 6, read),
        ];
        assert_eq!(check(&h), Verdict::Linearizable, "read {read:?}");
    }
}

#[test]
fn a_timed_out_cas_cannot_swap_from_a_value_it_never_saw() {
    let h = vec![
        put(1, "k", 0, 1, 1),
        timed_out(cas(2, "k", (2, 0), Some(5), Some(2), true)),
        get(1, "k", 5, 6, Some(2)),
    ];
    assert_eq!(check(&h), not_linearizable("k", vec![0], Some(1), vec![2]));
}

// ---- deletes ----

#[test]
fn a_delete_makes_the_key_absent() {
    let h = vec![
        put(1, "k", 0, 1, 1),
        delete(1, "k", 2, 3),
        get(2, "k", 4, 5, None),
    ];
    assert_eq!(check(&h), Verdict::Linearizable);
}

#[test]
fn a_read_of_the_old_value_after_a_completed_delete_is_rejected() {
    let h = vec![
        put(1, "k", 0, 1, 1),
        delete(1, "k", 2, 3),
        get(2, "k", 4, 5, Some(1)),
    ];
    assert_eq!(check(&h), not_linearizable("k", vec![0, 1], None, vec![2]));
}

#[test]
fn a_get_overlapping_a_delete_may_read_either() {
    for read in [None, Some(1)] {
        let h = vec![
            put(1, "k", 0, 1, 1),
            delete(1, "k", 2, 10),
            get(2, "k", 3, 4, read),
        ];
        assert_eq!(check(&h), Verdict::Linearizable, "read {read:?}");
    }
}

// ---- keys are independent ----

#[test]
fn keys_are_checked_independently() {
    // As one register this would be a stale read; as two keys it is fine.
    let h = vec![put(1, "a", 0, 1, 1), get(2, "b", 2, 3, None)];
    assert_eq!(check(&h), Verdict::Linearizable);
}

#[test]
fn the_failing_key_is_named_and_indexes_refer_to_the_whole_history() {
    let h = vec![
        put(1, "a", 0, 1, 1),
        put(1, "b", 2, 3, 2),
        get(2, "a", 4, 5, Some(1)),
        get(2, "b", 6, 7, None),
    ];
    assert_eq!(check(&h), not_linearizable("b", vec![1], Some(2), vec![3]));
}

#[test]
fn with_several_failing_keys_the_smallest_is_named() {
    let h = vec![get(1, "z", 0, 1, Some(1)), get(1, "m", 2, 3, Some(1))];
    assert_eq!(check(&h), not_linearizable("m", vec![], None, vec![1]));
}

// ---- budget ----

/// Many overlapping puts and a final read no put wrote: the search must try every order
/// before giving up.
fn exhausting_history(key: &'static str, writers: u32) -> History {
    let mut h: History = (0..writers)
        .map(|w| put(u64::from(w), key, 0, 100, w))
        .collect();
    h.push(get(99, key, 101, 102, Some(writers + 1)));
    h
}

#[test]
fn a_search_over_budget_reports_unknown() {
    let h = exhausting_history("k", 12);
    assert_eq!(check_kv(&h, 50), Ok(Verdict::Unknown { key: "k" }));
    // With enough budget the same history is decided.
    assert!(matches!(
        check(&h),
        Verdict::NotLinearizable { key: "k", .. }
    ));
}

#[test]
fn a_definite_failure_on_one_key_wins_over_unknown_on_another() {
    let mut h = exhausting_history("a", 12);
    h.push(put(1, "b", 200, 201, 1));
    h.push(get(1, "b", 202, 203, None));
    assert_eq!(
        check_kv(&h, 50),
        Ok(not_linearizable("b", vec![13], Some(1), vec![14]))
    );
}

#[test]
fn lowes_cache_keeps_overlapping_writes_cheap() {
    // 12 mutually concurrent puts have 12! (479 million) orders. Memoizing (set, value)
    // explores each of at most 2^12 sets x 13 values once, trying at most 13 candidates
    // and one undo from each. (It takes 184,346 steps.)
    let h = exhausting_history("k", 12);
    let checked = check_kv_counting(&h, BUDGET).unwrap();
    assert!(matches!(checked.verdict, Verdict::NotLinearizable { .. }));
    assert!(checked.steps <= 4096 * 13 * 14, "steps {}", checked.steps);
}

// ---- malformed histories ----

#[test]
fn malformed_operations_are_errors_naming_the_operation() {
    let backwards = vec![put(1, "k", 0, 1, 1), put(1, "k", 5, 4, 2)];
    assert_eq!(
        check_kv(&backwards, BUDGET),
        Err(HistoryError {
            index: 1,
            problem: "returned before it was called"
        })
    );
    let mut no_return = put(1, "k", 0, 1, 1);
    no_return.ret = None;
    assert_eq!(
        check_kv(&[no_return], BUDGET),
        Err(HistoryError {
            index: 0,
            problem: "a known outcome needs a return time"
        })
    );
    let mismatched = op(1, "k", 0, 1, OpKind::Get, OpResult::Done);
    assert_eq!(
        check_kv(&[mismatched], BUDGET).unwrap_err().problem,
        "result does not match the kind of operation"
    );
}

#[test]
fn a_verdict_renders_a_readable_explanation() {
    let h = vec![put(1, "k", 0, 1, 1), get(2, "k", 2, 3, None)];
    assert_eq!(
        check(&h).to_string(),
        "not linearizable: key \"k\": longest linearizable prefix [0] (ops by history index) \
         leaves the value Some(1); the search could not extend it with any of [1]"
    );
}

// ---- generated histories ----

/// Shape of a generated history.
#[derive(Clone, Copy)]
pub(super) struct Shape {
    pub(super) ops: usize,
    pub(super) keys: u32,
    pub(super) clients: u64,
    /// Percent of operations whose outcome is recorded as unknown.
    pub(super) unknown_percent: u32,
}

/// A history produced by really executing operations one at a time on a sequential KV
/// store, each at a linearization point inside a random [call, ret] window of a client
/// that is idle then. Linearizable by construction. Written values are unique.
pub(super) fn generate(seed: u64, shape: Shape) -> Vec<Op<u32, u64>> {
    let mut rng = seeded(seed);
    let mut store: BTreeMap<u32, u64> = BTreeMap::new();
    let mut written: Vec<u64> = Vec::new();
    let mut idle_from = vec![0u64; shape.clients as usize];
    let mut point = 0u64;
    let mut history = Vec::with_capacity(shape.ops);
    for _ in 0..shape.ops {
        point += rng.random_range(1..=4);
        let first = rng.random_range(0..idle_from.len());
        let client = (0..idle_from.len())
            .map(|i| (first + i) % idle_from.len())
            .find(|&c| idle_from[c] <= point)
            .unwrap_or_else(|| {
                let soonest = (0..idle_from.len()).min_by_key(|&c| idle_from[c]).unwrap();
                point = idle_from[soonest];
                soonest
            });
        let call = point
            .saturating_sub(rng.random_range(0..=30))
            .max(idle_from[client]);
        let ret = point + rng.random_range(0..=30);
        idle_from[client] = ret + 1;

        let key = rng.random_range(0..shape.keys);
        let current = store.get(&key).copied();
        let fresh = 1 + written.len() as u64;
        let kind = match rng.random_range(0..100) {
            0..35 => OpKind::Get,
            35..65 => OpKind::Put { value: fresh },
            65..75 => OpKind::Delete,
            _ => {
                let expect = if rng.random_bool(0.5) || written.is_empty() {
                    current
                } else {
                    Some(written[rng.random_range(0..written.len())])
                };
                let new = if rng.random_bool(0.8) {
                    Some(fresh)
                } else {
                    None
                };
                OpKind::Cas { expect, new }
            }
        };
        let unknown = rng.random_range(0..100) < shape.unknown_percent;
        // An unknown write takes effect or not: both must be accepted.
        let takes_effect = !unknown || rng.random_bool(0.5);
        let result = match &kind {
            OpKind::Get => OpResult::Value(current),
            OpKind::Put { value } => {
                if takes_effect {
                    store.insert(key, *value);
                    written.push(*value);
                }
                OpResult::Done
            }
            OpKind::Delete => {
                if takes_effect {
                    store.remove(&key);
                }
                OpResult::Done
            }
            OpKind::Cas { expect, new } => {
                let swapped = *expect == current;
                if swapped && takes_effect {
                    match new {
                        Some(value) => {
                            store.insert(key, *value);
                            written.push(*value);
                        }
                        None => {
                            store.remove(&key);
                        }
                    }
                }
                OpResult::Swapped(swapped)
            }
        };
        let (ret, result) = match (unknown, rng.random_bool(0.5)) {
            (false, _) => (Some(ret), result),
            (true, gave_up_at_ret) => (gave_up_at_ret.then_some(ret), OpResult::Unknown),
        };
        history.push(Op {
            client: client as u64,
            key,
            call,
            ret,
            kind,
            result,
        });
    }
    history
}

const SMALL: Shape = Shape {
    ops: 200,
    keys: 2,
    clients: 5,
    unknown_percent: 10,
};

#[test]
fn generated_histories_from_a_real_execution_are_linearizable() {
    for seed in 0..40 {
        let history = generate(seed, SMALL);
        assert_eq!(
            check_kv(&history, BUDGET),
            Ok(Verdict::Linearizable),
            "seed {seed}"
        );
    }
}

#[test]
fn generated_histories_with_a_read_of_a_never_written_value_are_rejected() {
    const NEVER_WRITTEN: u64 = u64::MAX;
    for seed in 0..40 {
        let mut history = generate(seed, SMALL);
        let reads: Vec<usize> = (0..history.len())
            .filter(|&i| matches!(history[i].result, OpResult::Value(_)))
            .collect();
        let mut rng = seeded(seed ^ 0x5eed);
        let victim = reads[rng.random_range(0..reads.len())];
        history[victim].result = OpResult::Value(Some(NEVER_WRITTEN));
        let key = history[victim].key;
        match check_kv(&history, BUDGET) {
            Ok(Verdict::NotLinearizable {
                key: k,
                explanation,
            }) => {
                assert_eq!(k, key, "seed {seed}");
                assert!(explanation.unplaced.contains(&victim), "seed {seed}");
            }
            other => panic!("seed {seed}: read {victim} mutated, got {other:?}"),
        }
    }
}

#[test]
fn generated_histories_with_a_stale_read_are_rejected() {
    // After the generated history, two completed puts of fresh values x then y and a read
    // of x: nothing else ever writes x, so no unknown outcome can excuse it.
    let (x, y) = (u64::MAX - 1, u64::MAX - 2);
    for seed in 0..20 {
        let mut history = generate(seed, SMALL);
        let end = history.iter().filter_map(|op| op.ret).max().unwrap_or(0) + 10;
        let key = history[0].key;
        let mut append = |call: u64, kind: OpKind<u64>, result: OpResult<u64>| {
            history.push(Op {
                client: 100,
                key,
                call,
                ret: Some(call + 1),
                kind,
                result,
            });
        };
        append(end, OpKind::Put { value: x }, OpResult::Done);
        append(end + 2, OpKind::Put { value: y }, OpResult::Done);
        append(end + 4, OpKind::Get, OpResult::Value(Some(x)));
        let stale = history.len() - 1;
        match check_kv(&history, BUDGET) {
            Ok(Verdict::NotLinearizable {
                key: k,
                explanation,
            }) => {
                assert_eq!(k, key, "seed {seed}");
                assert_eq!(explanation.unplaced, vec![stale], "seed {seed}");
                assert_eq!(explanation.value_after_prefix, Some(y), "seed {seed}");
            }
            other => panic!("seed {seed}: got {other:?}"),
        }
    }
}

#[test]
fn a_thousand_operations_over_five_keys_and_ten_clients_check_cheaply() {
    let shape = Shape {
        ops: 1_000,
        keys: 5,
        clients: 10,
        unknown_percent: 5,
    };
    // A clock-free guard: step counts are deterministic per seed. Measured: 3,535 /
    // 5,861 / 3,680 steps to accept, 17,803 / 57,319 / 30,984 to reject.
    for seed in 0..3 {
        let mut history = generate(seed, shape);
        let checked = check_kv_counting(&history, BUDGET).unwrap();
        assert_eq!(checked.verdict, Verdict::Linearizable, "seed {seed}");
        assert!(
            checked.steps < 20_000,
            "seed {seed}: steps {}",
            checked.steps
        );

        // Rejecting costs more: the search must exhaust everything before the bad read.
        let last_read = (0..history.len())
            .rev()
            .find(|&i| matches!(history[i].result, OpResult::Value(_)))
            .unwrap();
        history[last_read].result = OpResult::Value(Some(u64::MAX));
        let checked = check_kv_counting(&history, BUDGET).unwrap();
        let key = history[last_read].key;
        assert!(
            matches!(checked.verdict, Verdict::NotLinearizable { key: k, .. } if k == key),
            "seed {seed}: {:?}",
            checked.verdict
        );
        assert!(
            checked.steps < 200_000,
            "seed {seed}: steps {}",
            checked.steps
        );
    }
}

#[test]
fn checking_is_deterministic() {
    let mut history = generate(7, SMALL);
    let victim = history
        .iter()
        .position(|op| matches!(op.result, OpResult::Value(_)))
        .unwrap();
    history[victim].result = OpResult::Value(Some(u64::MAX));
    let first = check_kv_counting(&history, BUDGET);
    assert_eq!(first, check_kv_counting(&history, BUDGET));
}

// ---- cross-check against brute force ----

/// Exhaustive search without memoization or pruning: some order of all known operations
/// and any subset of the unknown ones respects real time and the register.
fn brute_force_linearizable(history: &[Op<u8, u8>]) -> bool {
    fn extend(
        history: &[Op<u8, u8>],
        placed: &mut Vec<bool>,
        values: &mut BTreeMap<u8, u8>,
    ) -> bool {
        let done = (0..history.len()).all(|i| placed[i] || history[i].result == OpResult::Unknown);
        if done {
            return true;
        }
        for i in 0..history.len() {
            // Every known operation that returned before this call must come first.
            let ready = !placed[i]
                && (0..history.len()).all(|j| {
                    placed[j]
                        || history[j].result == OpResult::Unknown
                        || history[j].ret.is_some_and(|ret| ret >= history[i].call)
                });
            if !ready {
                continue;
            }
            let key = history[i].key;
            let current = values.get(&key).copied();
            let Some(after) = super::model::step(&current, &history[i].kind, &history[i].result)
            else {
                continue;
            };
            placed[i] = true;
            match after {
                Some(value) => values.insert(key, value),
                None => values.remove(&key),
            };
            if extend(history, placed, values) {
                return true;
            }
            match current {
                Some(value) => values.insert(key, value),
                None => values.remove(&key),
            };
            placed[i] = false;
        }
        false
    }
    extend(
        history,
        &mut vec![false; history.len()],
        &mut BTreeMap::new(),
    )
}

/// Small random histories with arbitrary (often impossible) outcomes and repeated values.
fn random_small_history(rng: &mut crate::rng::CoreRng) -> Vec<Op<u8, u8>> {
    let len = rng.random_range(1..=7);
    let value = |rng: &mut crate::rng::CoreRng| rng.random_range(1..=3u8);
    let maybe = |rng: &mut crate::rng::CoreRng| rng.random_bool(0.7).then(|| value(rng));
    (0..len)
        .map(|i| {
            let call = rng.random_range(0..12);
            let ret = call + rng.random_range(0..8);
            let kind = match rng.random_range(0..4) {
                0 => OpKind::Put { value: value(rng) },
                1 => OpKind::Get,
                2 => OpKind::Delete,
                _ => OpKind::Cas {
                    expect: maybe(rng),
                    new: maybe(rng),
                },
            };
            let result = if rng.random_range(0..100) < 25 {
                OpResult::Unknown
            } else {
                match &kind {
                    OpKind::Get => OpResult::Value(maybe(rng)),
                    OpKind::Cas { .. } => OpResult::Swapped(rng.random_bool(0.5)),
                    _ => OpResult::Done,
                }
            };
            let ret = (result != OpResult::Unknown || rng.random_bool(0.5)).then_some(ret);
            Op {
                client: i,
                key: rng.random_range(0..2),
                call,
                ret,
                kind,
                result,
            }
        })
        .collect()
}

#[test]
fn the_checker_agrees_with_brute_force_on_small_random_histories() {
    let mut verdicts = [0usize; 2];
    for seed in 0..3_000 {
        let history = random_small_history(&mut seeded(seed));
        let expected = brute_force_linearizable(&history);
        let verdict = check_kv(&history, BUDGET).expect("well-formed");
        assert!(!matches!(verdict, Verdict::Unknown { .. }), "seed {seed}");
        assert_eq!(
            verdict == Verdict::Linearizable,
            expected,
            "seed {seed}: {history:?} -> {verdict}"
        );
        verdicts[usize::from(expected)] += 1;
    }
    // Both answers are well represented, so the comparison means something.
    assert!(verdicts[0] > 500 && verdicts[1] > 500, "{verdicts:?}");
}
