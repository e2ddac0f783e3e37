//! Agent-run health checks, the pure half: what a check is ([`CheckSpec`]), the status
//! rules that turn probe results into a check's status (`status`), and the agent's view
//! of its own services and checks against the catalog (anti-entropy, `sync`).
//!
//! The shells: `actors::health` runs the probes (HTTP, TCP, UDP, script) on their
//! intervals and reports [`ProbeResult`]s; the agent's local state (in `src/agent/`)
//! applies the rules here and turns changes into catalog writes.
//!
//! Times are milliseconds on the caller's monotonic clock; nothing here reads a clock.

pub mod spec;
pub mod status;

pub use spec::{CheckKind, CheckSpec, ProbeResult, MAX_OUTPUT_BYTES, MIN_INTERVAL_MS};
pub use status::{should_reap, Change, CheckState, TTL_EXPIRED_OUTPUT};
