//! The sequential specification: one register per key, `None` meaning absent.

use super::{OpKind, OpResult};

/// Applies `kind` to a register holding `value`: the register's next value if `result` is
/// what a sequential register would have answered, `None` if it contradicts `value`.
/// For an unknown outcome any answer is acceptable, so only the effect matters.
pub(super) fn step<V: Eq + Clone>(
    value: &Option<V>,
    kind: &OpKind<V>,
    result: &OpResult<V>,
) -> Option<Option<V>> {
    match (kind, result) {
        (OpKind::Put { value: written }, OpResult::Done | OpResult::Unknown) => {
            Some(Some(written.clone()))
        }
        (OpKind::Delete, OpResult::Done | OpResult::Unknown) => Some(None),
        (OpKind::Get, OpResult::Value(read)) => (read == value).then(|| value.clone()),
        (OpKind::Get, OpResult::Unknown) => Some(value.clone()),
        (OpKind::Cas { expect, new }, result) => {
            let matches = expect == value;
            let after = if matches { new.clone() } else { value.clone() };
            match result {
                OpResult::Swapped(swapped) if *swapped != matches => None,
                _ => Some(after),
            }
        }
        // Unreachable after validation in `partition_by_key`; rejecting keeps it total.
        _ => None,
    }
}

#[cfg(test)]
mod model_tests {
    use super::*;

    #[test]
    fn linearizability_model_cas_swaps_only_on_the_expected_value() {
        let cas = OpKind::Cas {
            expect: Some(1),
            new: Some(2),
        };
        assert_eq!(
            step(&Some(1), &cas, &OpResult::Swapped(true)),
            Some(Some(2))
        );
        assert_eq!(step(&Some(1), &cas, &OpResult::Swapped(false)), None);
        assert_eq!(
            step(&Some(3), &cas, &OpResult::Swapped(false)),
            Some(Some(3))
        );
        assert_eq!(step(&Some(3), &cas, &OpResult::Swapped(true)), None);
        assert_eq!(step(&None, &cas, &OpResult::Unknown), Some(None));
        assert_eq!(step(&Some(1), &cas, &OpResult::Unknown), Some(Some(2)));
    }

    #[test]
    fn linearizability_model_cas_from_absent_and_to_absent() {
        let create = OpKind::Cas {
            expect: None,
            new: Some(7),
        };
        assert_eq!(
            step(&None, &create, &OpResult::Swapped(true)),
            Some(Some(7))
        );
        assert_eq!(
            step(&Some(7), &create, &OpResult::Swapped(false)),
            Some(Some(7))
        );
        let delete = OpKind::Cas {
            expect: Some(7),
            new: None,
        };
        assert_eq!(
            step(&Some(7), &delete, &OpResult::Swapped(true)),
            Some(None)
        );
    }

    #[test]
    fn linearizability_model_get_must_read_the_current_value() {
        assert_eq!(
            step(&Some(1), &OpKind::Get, &OpResult::Value(Some(1))),
            Some(Some(1))
        );
        assert_eq!(step(&Some(1), &OpKind::Get, &OpResult::Value(None)), None);
        assert_eq!(step::<u8>(&None, &OpKind::Get, &OpResult::Done), None);
    }
}
