//! What every edge (HTTP, DNS) needs from the agent: the config and the endpoint that
//! answers typed requests. The edges depend on this module and on the endpoint's
//! interface only; the wiring (`agent.rs`) builds the context and starts the edges, so
//! imports run one way: `agent → {http, dns} → context`.

use crate::config::Config;
use actors::{Api, RaftStatus, ServerEndpoint, ServerHandle};
use std::sync::Arc;

pub struct AgentContext {
    pub config: Arc<Config>,
    /// Answers every request the edges ask (reads, writes, cluster facts).
    pub api: Api,
    /// This agent's own Raft server, for agent-local reports (`/v1/agent/self`); `None`
    /// on a client agent.
    pub server: Option<ServerHandle>,
    /// Unix time in seconds when the agent started (DNS SOA serials, agent/self stats).
    pub started_unix: u64,
}

impl AgentContext {
    /// The context of a server agent: its endpoint answers from `server`.
    pub fn for_server(config: Arc<Config>, server: ServerHandle, started_unix: u64) -> Self {
        AgentContext {
            api: Api::new(ServerEndpoint::new(server.clone(), &config.datacenter)),
            config,
            server: Some(server),
            started_unix,
        }
    }

    /// This agent's Raft status (default, leaderless, when it runs no server).
    pub fn raft_status(&self) -> RaftStatus {
        self.server
            .as_ref()
            .map(ServerHandle::status)
            .unwrap_or_default()
    }
}
