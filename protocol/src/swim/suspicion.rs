//! Lifeguard's dynamic suspicion timeout. A fresh suspicion waits the maximum; every
//! independent confirmation (a suspect message from a member other than the first
//! accuser) shrinks the wait logarithmically toward the minimum, reached after `k`
//! confirmations. A member suspected by many is declared dead quickly; a member only
//! one (perhaps unhealthy) prober accuses gets plenty of time to refute.

use super::types::Incarnation;
use std::collections::BTreeSet;

#[derive(Debug, Clone, PartialEq)]
pub struct Suspicion {
    pub incarnation: Incarnation,
    /// The first accuser: its own repeated messages are not confirmations.
    accuser: String,
    confirmations: BTreeSet<String>,
    /// Confirmations expected before the timeout reaches its minimum.
    k: usize,
    min_ms: u64,
    max_ms: u64,
    started_ms: u64,
    deadline_ms: u64,
}

/// The timeout after `confirmations` of `k` expected: `max - log(c+1)/log(k+1) * (max -
/// min)`, never below `min` (memberlist's remainingSuspicionTime before elapsed time).
pub fn suspicion_timeout(confirmations: usize, k: usize, min_ms: u64, max_ms: u64) -> u64 {
    if k == 0 {
        return min_ms;
    }
    let fraction = ((confirmations + 1) as f64).ln() / ((k + 1) as f64).ln();
    let raw = max_ms as f64 - fraction * (max_ms.saturating_sub(min_ms)) as f64;
    (raw.floor().max(0.0) as u64).max(min_ms)
}

impl Suspicion {
    pub fn new(
        incarnation: Incarnation,
        accuser: String,
        k: usize,
        min_ms: u64,
        max_ms: u64,
        now_ms: u64,
    ) -> Suspicion {
        Suspicion {
            incarnation,
            accuser,
            confirmations: BTreeSet::new(),
            k,
            min_ms,
            max_ms,
            started_ms: now_ms,
            deadline_ms: now_ms + suspicion_timeout(0, k, min_ms, max_ms),
        }
    }

    /// Count `from` as an independent confirmation. True when it was new (the caller
    /// re-gossips the suspicion so others hear of the confirmation too).
    pub fn confirm(&mut self, from: &str) -> bool {
        if self.confirmations.len() >= self.k
            || from == self.accuser
            || !self.confirmations.insert(from.to_string())
        {
            return false;
        }
        let timeout = suspicion_timeout(self.confirmations.len(), self.k, self.min_ms, self.max_ms);
        self.deadline_ms = self.started_ms + timeout;
        true
    }

    pub fn deadline_ms(&self) -> u64 {
        self.deadline_ms
    }

    #[cfg(test)]
    pub fn confirmations(&self) -> usize {
        self.confirmations.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeout_shrinks_from_max_to_min_with_confirmations() {
        assert_eq!(suspicion_timeout(0, 3, 8000, 48000), 48000);
        assert_eq!(suspicion_timeout(1, 3, 8000, 48000), 28000);
        assert_eq!(suspicion_timeout(2, 3, 8000, 48000), 16300);
        assert_eq!(suspicion_timeout(3, 3, 8000, 48000), 8000);
        assert_eq!(suspicion_timeout(0, 0, 8000, 48000), 8000);
    }

    #[test]
    fn only_distinct_other_members_confirm_up_to_k() {
        let mut s = Suspicion::new(Incarnation(1), "a".into(), 2, 1000, 6000, 100);
        assert_eq!(s.deadline_ms(), 6100);
        assert!(!s.confirm("a"), "the accuser does not confirm itself");
        assert!(s.confirm("b"));
        assert!(!s.confirm("b"), "one vote per member");
        assert!(s.deadline_ms() < 6100);
        assert!(s.confirm("c"));
        assert_eq!(s.deadline_ms(), 1100);
        assert!(!s.confirm("d"), "no more than k");
        assert_eq!(s.confirmations(), 2);
    }
}
