//! Lifeguard's local health awareness: a member that misses acks it should have got
//! (or keeps having to refute rumours about itself) is more likely slow itself than
//! surrounded by failed peers, so it stretches its own probe interval and timeout
//! instead of accusing others too quickly.

/// A health score in `0..max_multiplier`: 0 is healthy; timeouts are multiplied by
/// `score + 1`, so at most by `max_multiplier` (as memberlist's awareness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Awareness {
    max_multiplier: u32,
    score: u32,
}

impl Awareness {
    pub fn new(max_multiplier: u32) -> Awareness {
        Awareness {
            max_multiplier: max_multiplier.max(1),
            score: 0,
        }
    }

    /// Raise (positive) or lower (negative) the score, clamped to its range.
    pub fn apply_delta(&mut self, delta: i64) {
        let max = i64::from(self.max_multiplier - 1);
        self.score = (i64::from(self.score) + delta).clamp(0, max) as u32;
    }

    pub fn score(&self) -> u32 {
        self.score
    }

    /// `timeout_ms * (score + 1)`.
    pub fn scale(&self, timeout_ms: u64) -> u64 {
        timeout_ms * u64::from(self.score + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_score_stays_in_range_and_scales_timeouts() {
        let mut a = Awareness::new(8);
        assert_eq!(a.scale(500), 500);
        a.apply_delta(-1);
        assert_eq!(a.score(), 0);
        a.apply_delta(3);
        assert_eq!(a.scale(500), 2000);
        a.apply_delta(100);
        assert_eq!(a.score(), 7);
        assert_eq!(a.scale(1000), 8000);
        a.apply_delta(-2);
        assert_eq!(a.score(), 5);
    }
}
