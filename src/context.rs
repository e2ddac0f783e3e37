//! What every edge (HTTP, DNS) needs from the agent: the config and the endpoint that
//! answers typed requests. The edges depend on this module and on the endpoint's
//! interface only; the wiring (`agent.rs`) builds the context and starts the edges, so
//! imports run one way: `agent → {http, dns} → context`.

use crate::config::Config;
use actors::membership::{MemberView, Membership};
use actors::{Api, RaftStatus, ServerEndpoint, ServerHandle};
use std::sync::Arc;

pub struct AgentContext {
    pub config: Arc<Config>,
    /// Answers every request the edges ask (reads, writes, cluster facts).
    pub api: Api,
    /// This agent's own Raft server, for agent-local reports (`/v1/agent/self`); `None`
    /// on a client agent.
    pub server: Option<ServerHandle>,
    /// The agent's gossip membership (`/v1/agent/members`, join, leave, force-leave).
    pub membership: Arc<dyn Membership>,
    /// Unix time in seconds when the agent started (DNS SOA serials, agent/self stats).
    pub started_unix: u64,
    /// Fault rules an HTTP client may set (`/v1/cairn/faults`): only on an agent started
    /// with `-fault-injection`, for test clusters.
    pub faults: Option<actors::FaultRules>,
    /// Notified when an edge asks the agent to stop (`PUT /v1/agent/leave`); the wiring
    /// shuts down as on SIGTERM.
    pub shutdown: tokio::sync::Notify,
    /// The agent's own services and checks (`/v1/agent/service/*`, `/v1/agent/check/*`);
    /// `None` only in tests that build a bare context.
    pub local: Option<crate::local::LocalAgent>,
    /// Asks the wiring to reload (`PUT /v1/agent/reload`); answered with the outcome.
    pub reload: Option<tokio::sync::mpsc::Sender<ReloadRequest>>,
    /// The user events this agent accepted (`/v1/event/list`), fed from gossip.
    pub events: Arc<crate::user_events::EventLog>,
}

/// A reload request: the reply carries the error text, if any.
pub type ReloadRequest = tokio::sync::oneshot::Sender<Result<(), String>>;

impl AgentContext {
    /// The context of a server agent: its endpoint answers from `server`.
    pub fn for_server(
        config: Arc<Config>,
        server: ServerHandle,
        membership: Arc<dyn Membership>,
        started_unix: u64,
    ) -> Self {
        AgentContext {
            api: Api::new(ServerEndpoint::new(server.clone(), &config.datacenter)),
            config,
            server: Some(server),
            membership,
            started_unix,
            faults: None,
            shutdown: tokio::sync::Notify::new(),
            local: None,
            reload: None,
            events: crate::user_events::EventLog::new(),
        }
    }

    /// The context of a client agent: `api` forwards every request to a server.
    pub fn for_client(
        config: Arc<Config>,
        api: Api,
        membership: Arc<dyn Membership>,
        started_unix: u64,
    ) -> Self {
        AgentContext {
            api,
            config,
            server: None,
            membership,
            started_unix,
            faults: None,
            shutdown: tokio::sync::Notify::new(),
            local: None,
            reload: None,
            events: crate::user_events::EventLog::new(),
        }
    }

    /// This agent as a member, as the membership reports it (so `/v1/agent/self` and
    /// `/v1/agent/members` agree); the configured self while it is not listed (after a
    /// prune, or before the gossip layer has started).
    pub fn local_member(&self) -> MemberView {
        self.membership
            .members()
            .into_iter()
            .find(|m| m.name == self.config.node_name)
            .unwrap_or_else(|| crate::member_tags::self_member(&self.config))
    }

    /// This agent's Raft status (default, leaderless, when it runs no server).
    pub fn raft_status(&self) -> RaftStatus {
        self.server
            .as_ref()
            .map(ServerHandle::status)
            .unwrap_or_default()
    }
}
