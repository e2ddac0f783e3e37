//! Agent-run health checks, the pure half: what a check is ([`CheckSpec`]), how Consul's
//! definitions become one (`definition`), the status rules that turn probe results into a
//! check's status (`status`), the agent's own services and checks (`local`), and their
//! view against the catalog (anti-entropy, `sync`).
//!
//! The shells: `actors::health` runs the probes (HTTP, TCP, UDP, script) on their
//! intervals and reports [`ProbeResult`]s; the agent's local-state actor (in
//! `src/local`) applies the rules here and turns changes into catalog writes.
//!
//! Times are milliseconds on the caller's monotonic clock; nothing here reads a clock.

pub mod definition;
pub mod local;
pub mod spec;
pub mod status;
pub mod sync;

pub use spec::{CheckKind, CheckSpec, ProbeResult, MAX_OUTPUT_BYTES, MIN_INTERVAL_MS};
pub use status::{should_reap, Change, CheckState, TTL_EXPIRED_OUTPUT};
