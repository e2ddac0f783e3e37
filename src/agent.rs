//! Wiring: build the actors in dependency order and hand out typed addresses.

use crate::config::Config;
use actors::ServerHandle;
use std::sync::Arc;

/// What every edge (HTTP, DNS) needs: the config and the server's Raft façade.
pub struct AgentContext {
    pub config: Arc<Config>,
    pub server: ServerHandle,
    /// Unix time in seconds when the agent started (DNS SOA serials, agent/self stats).
    pub started_unix: u64,
}
