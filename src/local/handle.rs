//! What the edges hold of the local state: a [`LocalAgent`] sends commands into the
//! actor's bounded mailbox and waits for their outcome (a registration answers once it
//! is applied locally and persisted; the catalog follows through anti-entropy, as in
//! Consul), and reads the latest published [`LocalView`] without a round trip.

use protocol::api::RequestError;
use protocol::health::definition::{
    parse_check, parse_service, AgentCheckDraft, AgentServiceDraft, CheckRules, Origin,
    ServiceDefinition,
};
use protocol::health::CheckSpec;
use protocol::store::{Check, CheckStatus, Service};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// Commands queued at most; more wait for room (the callers are HTTP requests).
pub const MAILBOX_CAPACITY: usize = 1024;

/// The agent's services and checks as of one moment (sorted by ID).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalView {
    pub node: String,
    pub datacenter: String,
    pub services: Vec<Service>,
    /// Every check with its current status (maintenance and alias checks included).
    pub checks: Vec<Check>,
    /// Moves on every published change.
    pub version: u64,
}

impl LocalView {
    pub fn service(&self, id: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.id == id)
    }

    pub fn check(&self, id: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.check_id == id)
    }

    /// A service's checks and its node's (what its health is made of).
    pub fn service_health(&self, service_id: &str) -> Vec<&Check> {
        self.checks
            .iter()
            .filter(|c| c.service_id.is_empty() || c.service_id == service_id)
            .collect()
    }
}

pub(super) type Reply<T> = oneshot::Sender<Result<T, RequestError>>;

pub(super) enum Command {
    RegisterService {
        def: ServiceDefinition,
        replace_existing_checks: bool,
        reply: Reply<()>,
    },
    DeregisterService {
        id: String,
        reply: Reply<()>,
    },
    RegisterCheck {
        spec: CheckSpec,
        reply: Reply<()>,
    },
    DeregisterCheck {
        id: String,
        reply: Reply<()>,
    },
    UpdateTtl {
        id: String,
        status: CheckStatus,
        output: String,
        reply: Reply<()>,
    },
    NodeMaintenance {
        enable: bool,
        reason: String,
        reply: Reply<()>,
    },
    ServiceMaintenance {
        id: String,
        enable: bool,
        reason: String,
        reply: Reply<()>,
    },
    ReplaceLocal {
        services: Vec<ServiceDefinition>,
        checks: Vec<CheckSpec>,
        reply: Reply<()>,
    },
}

#[derive(Clone)]
pub struct LocalAgent {
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) view: watch::Receiver<Arc<LocalView>>,
    pub(super) node: String,
    pub(super) rules: CheckRules,
}

fn gone() -> RequestError {
    RequestError::ShuttingDown
}

impl LocalAgent {
    /// The latest published view.
    pub fn view(&self) -> Arc<LocalView> {
        self.view.borrow().clone()
    }

    /// A receiver that wakes on every published change (hash-based blocking reads).
    pub fn subscribe(&self) -> watch::Receiver<Arc<LocalView>> {
        self.view.clone()
    }

    pub fn rules(&self) -> CheckRules {
        self.rules
    }

    async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, RequestError> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(make(tx)).await.map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }

    /// `PUT /v1/agent/service/register`. Warnings (raised intervals ...) are logged.
    pub async fn register_service(
        &self,
        draft: AgentServiceDraft,
        origin: Origin,
        replace_existing_checks: bool,
    ) -> Result<(), RequestError> {
        let parsed = parse_service(draft, &self.node, origin, &self.rules)?;
        for w in &parsed.warnings {
            tracing::warn!("{w}");
        }
        self.ask(|reply| Command::RegisterService {
            def: parsed.value,
            replace_existing_checks,
            reply,
        })
        .await
    }

    pub async fn deregister_service(&self, id: &str) -> Result<(), RequestError> {
        let id = id.to_string();
        self.ask(|reply| Command::DeregisterService { id, reply })
            .await
    }

    /// `PUT /v1/agent/check/register`.
    pub async fn register_check(
        &self,
        draft: AgentCheckDraft,
        origin: Origin,
    ) -> Result<(), RequestError> {
        let parsed = parse_check(draft, origin, &self.rules)?;
        for w in &parsed.warnings {
            tracing::warn!("{w}");
        }
        self.ask(|reply| Command::RegisterCheck {
            spec: parsed.value,
            reply,
        })
        .await
    }

    pub async fn deregister_check(&self, id: &str) -> Result<(), RequestError> {
        let id = id.to_string();
        self.ask(|reply| Command::DeregisterCheck { id, reply })
            .await
    }

    /// `check/pass|warn|fail|update`.
    pub async fn update_ttl(
        &self,
        id: &str,
        status: CheckStatus,
        output: String,
    ) -> Result<(), RequestError> {
        let id = id.to_string();
        self.ask(|reply| Command::UpdateTtl {
            id,
            status,
            output,
            reply,
        })
        .await
    }

    pub async fn node_maintenance(&self, enable: bool, reason: String) -> Result<(), RequestError> {
        self.ask(|reply| Command::NodeMaintenance {
            enable,
            reason,
            reply,
        })
        .await
    }

    pub async fn service_maintenance(
        &self,
        id: &str,
        enable: bool,
        reason: String,
    ) -> Result<(), RequestError> {
        let id = id.to_string();
        self.ask(|reply| Command::ServiceMaintenance {
            id,
            enable,
            reason,
            reply,
        })
        .await
    }

    /// Replace the config-file services and checks (start, reload).
    pub async fn replace_local(
        &self,
        services: Vec<ServiceDefinition>,
        checks: Vec<CheckSpec>,
    ) -> Result<(), RequestError> {
        self.ask(|reply| Command::ReplaceLocal {
            services,
            checks,
            reply,
        })
        .await
    }
}
