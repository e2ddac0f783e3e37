//! Pure, deterministic cores of cairn.
//!
//! Nothing in this crate performs I/O, reads a clock or draws OS randomness: time comes in
//! as numbers, randomness from seeded generators. That is what lets the same code run in
//! production actors and in the seeded simulator.
#![forbid(unsafe_code)]

pub mod api;
pub mod autopilot;
pub mod codec;
pub mod dns;
pub mod filter;
pub mod health;
pub mod ids;
pub mod linearizability;
pub mod raft;
pub mod reconcile;
pub mod rng;
pub mod runtime;
pub mod sim;
pub mod store;
pub mod swim;
pub mod tombstone_gc;
pub mod user_event;
