//! Leader duty (ARCHITECTURE rule 8): while this server leads, make sure the catalog holds
//! this node, its `serfHealth` check and the `consul` service, as a Consul leader does.
//! It starts only after the new leader's no-op entry is applied, runs once per leadership
//! term, and retries with backoff. The write is idempotent: identical rows leave the
//! indexes alone, so re-registering after every election costs nothing.

use crate::config::Config;
use actors::{RaftStatus, ServerHandle};
use protocol::store::{Check, CheckStatus, Command, CommandResult, Node, RegisterRequest, Service};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// How often Raft status is looked at when nothing was applied (role changes are not
/// announced through the applied-index watch).
pub const STATUS_POLL_MS: u64 = 250;
pub const RETRY_BACKOFF_INITIAL_MS: u64 = 250;
pub const RETRY_BACKOFF_MAX_MS: u64 = 10_000;

pub const SERF_HEALTH_CHECK_ID: &str = "serfHealth";

/// The decision part of the duty: given Raft status over time, when to register.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeaderDuty {
    /// The term in which registration last succeeded.
    registered_term: Option<u64>,
}

impl LeaderDuty {
    /// True when this status calls for a registration now.
    pub fn on_status(&mut self, status: &RaftStatus) -> bool {
        // Only once this term's no-op is applied: the store then holds everything earlier
        // terms committed (rule 8).
        status.is_ready_leader() && self.registered_term != Some(status.term)
    }

    pub fn on_registered(&mut self, term: u64) {
        self.registered_term = Some(term);
    }
}

/// The catalog write that describes this server, as Consul's leader writes it.
pub fn self_registration(config: &Config) -> RegisterRequest {
    let address = config.advertise().to_string();
    let family = match config.advertise() {
        IpAddr::V4(_) => "ipv4",
        IpAddr::V6(_) => "ipv6",
    };
    let tagged_addresses: BTreeMap<String, String> = [
        "lan".to_string(),
        format!("lan_{family}"),
        "wan".to_string(),
        format!("wan_{family}"),
    ]
    .into_iter()
    .map(|k| (k, address.clone()))
    .collect();
    let mut meta = config.node_meta.clone();
    meta.insert("consul-network-segment".to_string(), String::new());
    RegisterRequest {
        node: Node {
            id: config.node_id.clone(),
            node: config.node_name.clone(),
            address,
            datacenter: config.datacenter.clone(),
            tagged_addresses,
            meta,
            ..Default::default()
        },
        skip_node_update: false,
        service: Some(Service {
            node: config.node_name.clone(),
            id: "consul".to_string(),
            service: "consul".to_string(),
            port: u16::try_from(config.ports.server).unwrap_or(0),
            ..Default::default()
        }),
        checks: vec![Check {
            node: config.node_name.clone(),
            check_id: SERF_HEALTH_CHECK_ID.to_string(),
            name: "Serf Health Status".to_string(),
            status: CheckStatus::Passing,
            output: "Agent alive and reachable".to_string(),
            check_type: "serf".to_string(),
            ..Default::default()
        }],
    }
}

/// The duty's loop; runs for the life of the agent.
pub async fn run(server: ServerHandle, config: Arc<Config>) {
    let registration = self_registration(&config);
    let mut applied = server.applied();
    let mut duty = LeaderDuty::default();
    let mut backoff_ms = RETRY_BACKOFF_INITIAL_MS;
    loop {
        let status = server.status();
        if duty.on_status(&status) {
            match server
                .propose(Command::Register(registration.clone()))
                .await
            {
                Ok(CommandResult::Done | CommandResult::Bool(true)) => {
                    duty.on_registered(status.term);
                    backoff_ms = RETRY_BACKOFF_INITIAL_MS;
                    info!(node = %config.node_name, term = status.term, "leader: synced this node into the catalog");
                }
                outcome => {
                    warn!(
                        ?outcome,
                        retry_in_ms = backoff_ms,
                        "leader: failed to register this node in the catalog"
                    );
                    tokio::time::sleep(Duration::from_millis(backoff_ms)).await;
                    backoff_ms = (backoff_ms * 2).min(RETRY_BACKOFF_MAX_MS);
                    continue;
                }
            }
        }
        tokio::select! {
            changed = applied.changed() => {
                if changed.is_err() {
                    debug!("leader duty: the server stopped; duty ends");
                    return;
                }
            }
            _ = tokio::time::sleep(Duration::from_millis(STATUS_POLL_MS)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::RaftRole;

    /// A status whose term's no-op sits at `noop` (RaftCore publishes it on leaders only).
    fn status(role: RaftRole, term: u64, applied: u64, noop: u64) -> RaftStatus {
        RaftStatus {
            role,
            term,
            commit_index: applied,
            applied_index: applied,
            last_log_index: applied.max(noop),
            leader_ready_index: if role == RaftRole::Leader { noop } else { 0 },
            ..Default::default()
        }
    }

    #[test]
    fn registers_once_per_term_after_the_noop_is_applied() {
        let mut d = LeaderDuty::default();
        assert!(!d.on_status(&status(RaftRole::Follower, 1, 0, 0)));
        // Became leader with the no-op at index 5 not yet applied.
        assert!(!d.on_status(&status(RaftRole::Leader, 2, 4, 5)));
        // Later entries do not move the bar: it is this term's no-op.
        assert!(d.on_status(&status(RaftRole::Leader, 2, 5, 5)));
        d.on_registered(2);
        assert!(!d.on_status(&status(RaftRole::Leader, 2, 9, 5)));
        // Step down, lead again in a later term: register again once caught up.
        assert!(!d.on_status(&status(RaftRole::Follower, 3, 9, 0)));
        assert!(!d.on_status(&status(RaftRole::Leader, 4, 9, 10)));
        assert!(d.on_status(&status(RaftRole::Leader, 4, 10, 10)));
    }

    #[test]
    fn failed_registration_is_retried_in_the_same_term() {
        let mut d = LeaderDuty::default();
        assert!(d.on_status(&status(RaftRole::Leader, 1, 1, 1)));
        assert!(d.on_status(&status(RaftRole::Leader, 1, 1, 1)));
    }

    #[test]
    fn registration_describes_this_server() {
        let mut config = Config::dev_for_tests();
        config.node_meta.insert("rack".into(), "r1".into());
        let r = self_registration(&config);
        assert_eq!(r.node.id, config.node_id);
        assert_eq!(r.node.node, "test-node");
        assert_eq!(r.node.address, "127.0.0.1");
        assert_eq!(r.node.datacenter, "dc1");
        let tagged: Vec<(&str, &str)> = r
            .node
            .tagged_addresses
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            tagged,
            vec![
                ("lan", "127.0.0.1"),
                ("lan_ipv4", "127.0.0.1"),
                ("wan", "127.0.0.1"),
                ("wan_ipv4", "127.0.0.1")
            ]
        );
        let meta: Vec<(&str, &str)> = r
            .node
            .meta
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(meta, vec![("consul-network-segment", ""), ("rack", "r1")]);
        let svc = r.service.expect("consul service");
        assert_eq!(
            (
                svc.id.as_str(),
                svc.service.as_str(),
                svc.port,
                svc.tags.len()
            ),
            ("consul", "consul", 8300, 0)
        );
        assert_eq!(r.checks.len(), 1);
        let c = &r.checks[0];
        assert_eq!(
            (
                c.check_id.as_str(),
                c.name.as_str(),
                c.status,
                c.output.as_str(),
                c.check_type.as_str(),
                c.service_id.as_str()
            ),
            (
                "serfHealth",
                "Serf Health Status",
                CheckStatus::Passing,
                "Agent alive and reachable",
                "serf",
                ""
            )
        );
        assert!(!r.skip_node_update);
    }
}
