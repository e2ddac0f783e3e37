//! Building blocks of the seeded simulators: a simulated network that any core speaking
//! the runtime seam (`crate::runtime`) sends through. Pure: time is a number the
//! simulation advances, randomness a seeded [`crate::rng::CoreRng`], so a failing seed
//! replays exactly.

mod net;

pub use net::{Faults, SimNet};
