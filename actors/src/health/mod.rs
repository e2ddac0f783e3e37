//! The probe runner: runs the agent's probed checks (HTTP, TCP, UDP, script) on their
//! intervals and reports each result. It decides nothing about a check's status: the
//! agent's local state feeds the reports to `protocol::health::CheckState`, which applies
//! Consul's thresholds.
//!
//! ```text
//! agent local state ──StartProbe{spec, generation} / StopProbe{id}──▶ ProbeRunner
//!        ▲                                                              │ one task per check:
//!        └──────── ProbeReport{id, generation, result} ◀── (current?) ◀─┘ sleep, probe, repeat
//! ```
//!
//! - Each check is one light task on the runner's thread: it sleeps a seeded random
//!   offset within its interval (so thousands of checks do not fire together), then
//!   probes every interval. A probe still running when the next is due makes that one
//!   skipped, never doubled.
//! - At most `max_concurrent` probes run at once; the others wait for a slot (one waiting
//!   probe per check at most, since a check's task is sequential).
//! - Every probe is bounded by the check's timeout; a script is killed with its process
//!   group at the timeout, and when its check is stopped or replaced.
//! - Reports pass through the runner, which forwards only those of the check's current
//!   generation: none arrives after `StopProbe`, or from a replaced spec.

mod probes;
mod runner;
mod stagger;
#[cfg(test)]
mod tests;

pub use probes::{run_probe, HttpClients};
pub use runner::{ProbeOptions, ProbeReport, ProbeRunner, StartProbe, StopProbe};
pub use stagger::Stagger;
