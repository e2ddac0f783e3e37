//! Where in its interval a check first runs: a seeded random offset, as Consul's
//! `lib.RandomStagger(interval)`, so that checks registered together (a config load, an
//! agent restart) spread their probes over the interval instead of firing at once.

use protocol::rng::{seeded, CoreRng};
use rand::Rng;

pub struct Stagger {
    rng: CoreRng,
}

impl Stagger {
    pub fn new(seed: u64) -> Stagger {
        Stagger { rng: seeded(seed) }
    }

    /// A uniform offset in `[0, interval_ms)` (0 for a zero interval).
    pub fn first_offset_ms(&mut self, interval_ms: u64) -> u64 {
        if interval_ms == 0 {
            return 0;
        }
        self.rng.random_range(0..interval_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_runs_of_many_checks_spread_over_the_interval() {
        let interval_ms = 1_000;
        let offsets: Vec<u64> = {
            let mut stagger = Stagger::new(7);
            (0..100)
                .map(|_| stagger.first_offset_ms(interval_ms))
                .collect()
        };
        assert!(offsets.iter().all(|o| *o < interval_ms));
        // Every tenth of the interval gets some checks, none gets a crowd.
        let mut per_decile = [0u32; 10];
        for offset in &offsets {
            per_decile[(*offset / 100) as usize] += 1;
        }
        assert!(
            per_decile.iter().all(|n| (2..=25).contains(n)),
            "{per_decile:?}"
        );
        // Deterministic with the seed, different with another.
        let mut again = Stagger::new(7);
        let replay: Vec<u64> = (0..100)
            .map(|_| again.first_offset_ms(interval_ms))
            .collect();
        assert_eq!(replay, offsets);
        let mut other = Stagger::new(8);
        let different: Vec<u64> = (0..100)
            .map(|_| other.first_offset_ms(interval_ms))
            .collect();
        assert_ne!(different, offsets);
        assert_eq!(Stagger::new(1).first_offset_ms(0), 0);
    }
}
