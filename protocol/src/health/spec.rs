//! What an agent-run check is: the contract between the agent's local state (which
//! parses Consul's JSON into it, and persists it) and the probe runner (which runs it).

use crate::store::CheckStatus;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Consul's floor on a check's interval: a shorter one is raised to this (with a warning).
pub const MIN_INTERVAL_MS: u64 = 1_000;

/// Check output kept, as Consul's `BufSize` default: longer output is cut to this many
/// bytes (on a character boundary) before it is stored or compared.
pub const MAX_OUTPUT_BYTES: usize = 4 * 1024;

/// How a check finds out its status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CheckKind {
    /// GET (or `method`) the URL: 2xx passing, 429 warning, anything else critical.
    Http {
        url: String,
        method: String,
        /// Header name to its values, as Consul's `Header` map.
        headers: BTreeMap<String, Vec<String>>,
        body: String,
        tls_skip_verify: bool,
        tls_server_name: String,
    },
    /// A TCP connect to `host:port`: connected passing, else critical.
    Tcp { address: String },
    /// A UDP datagram to `host:port`: a reply, or no ICMP error within the timeout,
    /// passing; an error critical (Consul's rules).
    Udp { address: String },
    /// Fed from outside (`/v1/agent/check/pass|warn|fail|update`); critical
    /// "TTL expired" when not fed for `ttl_ms`.
    Ttl { ttl_ms: u64 },
    /// Runs `args` (no shell): exit 0 passing, 1 warning, other critical; killed with
    /// its process group at the timeout.
    Script { args: Vec<String> },
    /// Mirrors the health of a service (or a whole node when `service_id` is empty).
    Alias { node: String, service_id: String },
}

impl CheckKind {
    /// Consul's `Type` of a check of this kind.
    pub fn type_name(&self) -> &'static str {
        match self {
            CheckKind::Http { .. } => "http",
            CheckKind::Tcp { .. } => "tcp",
            CheckKind::Udp { .. } => "udp",
            CheckKind::Ttl { .. } => "ttl",
            CheckKind::Script { .. } => "script",
            CheckKind::Alias { .. } => "alias",
        }
    }

    /// Whether the probe runner runs this kind on an interval (TTL checks are fed from
    /// outside, alias checks follow the state they mirror).
    pub fn is_probed(&self) -> bool {
        matches!(
            self,
            CheckKind::Http { .. }
                | CheckKind::Tcp { .. }
                | CheckKind::Udp { .. }
                | CheckKind::Script { .. }
        )
    }
}

/// One agent-run check, fully defaulted and validated (the agent's parser does that).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckSpec {
    /// `CheckID`, unique on this agent.
    pub id: String,
    pub name: String,
    pub notes: String,
    /// The service instance this check belongs to; empty for a node check.
    pub service_id: String,
    pub kind: CheckKind,
    /// Between probes; at least [`MIN_INTERVAL_MS`] for probed kinds, 0 otherwise.
    pub interval_ms: u64,
    /// One probe's limit (Consul's default 10 s).
    pub timeout_ms: u64,
    /// Consecutive passing results before the status turns passing (0 = at once).
    pub success_before_passing: u32,
    /// Consecutive failures before the status turns warning (0 = at once).
    pub failures_before_warning: u32,
    /// Consecutive failures before the status turns critical (0 = at once).
    pub failures_before_critical: u32,
    /// Deregister the check's service once critical for this long (None = never).
    pub deregister_critical_service_after_ms: Option<u64>,
    /// The status a new check starts in: critical unless the registration gave one.
    pub initial_status: CheckStatus,
    /// The output a new check starts with.
    pub initial_output: String,
}

/// What one probe found: a status and its output (cut to [`MAX_OUTPUT_BYTES`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    pub status: CheckStatus,
    pub output: String,
}

impl ProbeResult {
    pub fn new(status: CheckStatus, output: impl Into<String>) -> ProbeResult {
        ProbeResult {
            status,
            output: truncate_output(output.into()),
        }
    }
}

/// Cut `output` to at most [`MAX_OUTPUT_BYTES`], on a character boundary.
pub fn truncate_output(mut output: String) -> String {
    if output.len() > MAX_OUTPUT_BYTES {
        let mut end = MAX_OUTPUT_BYTES;
        while !output.is_char_boundary(end) {
            end -= 1;
        }
        output.truncate(end);
    }
    output
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_is_cut_on_a_character_boundary() {
        let long = "é".repeat(MAX_OUTPUT_BYTES);
        let cut = truncate_output(long);
        assert!(cut.len() <= MAX_OUTPUT_BYTES);
        assert!(cut.len() > MAX_OUTPUT_BYTES - 2);
        assert_eq!(truncate_output("ok".into()), "ok");
    }
}
