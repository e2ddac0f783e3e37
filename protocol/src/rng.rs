//! The one pseudo-random generator the pure cores draw from.
//!
//! Seeded simulations must replay forever from a printed seed, so the generator is
//! ChaCha8 from `rand_chacha`, pinned with `=` in the workspace: its stream for a given
//! seed is fixed by that exact version. (`rand::rngs::StdRng` documents that its
//! algorithm may change in any release, which would silently change every schedule.)
//! Real servers seed it from the OS in the shell (`actors/`), never here.

use rand::SeedableRng;

/// The generator every pure core takes at construction.
pub type CoreRng = rand_chacha::ChaCha8Rng;

/// A generator whose stream is fixed by `seed`.
pub fn seeded(seed: u64) -> CoreRng {
    CoreRng::seed_from_u64(seed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    #[test]
    fn a_seed_replays_the_same_stream_forever() {
        // Fixed expected values: if a dependency change ever alters the stream, every
        // recorded simulation seed would replay a different schedule; fail loudly here.
        let mut rng = seeded(42);
        let first: Vec<u64> = (0..3).map(|_| rng.next_u64()).collect();
        assert_eq!(first, EXPECTED_42);
    }

    const EXPECTED_42: [u64; 3] = [
        12578764544318200737,
        17529487244874322312,
        7886285670807131020,
    ];
}
