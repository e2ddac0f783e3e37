//! Leader duty (ARCHITECTURE rule 8): while this server leads, make sure the catalog holds
//! this node, its `serfHealth` check and the `consul` service, as a Consul leader does.
//! It is driven by the server's events: it starts on `LeadershipAcquired` (published
//! once the new leader's no-op entry is applied), stops on `LeadershipLost`, runs once
//! per leadership term, and retries with backoff while still leading. The write is
//! idempotent: identical rows leave the indexes alone, so re-registering after every
//! election costs nothing.

use crate::config::Config;
use actors::{RaftStatus, ServerEvent, ServerHandle};
use protocol::store::{Check, CheckStatus, Command, CommandResult, Node, RegisterRequest, Service};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info, warn};

pub const RETRY_BACKOFF_INITIAL_MS: u64 = 250;
pub const RETRY_BACKOFF_MAX_MS: u64 = 10_000;

pub const SERF_HEALTH_CHECK_ID: &str = "serfHealth";

/// The decision part of the duty: given the server's events, when to register.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeaderDuty {
    /// The term this server leads with its no-op applied (None when not leading).
    leading: Option<u64>,
    /// The term in which registration last succeeded.
    registered_term: Option<u64>,
}

impl LeaderDuty {
    pub fn on_event(&mut self, event: &ServerEvent) {
        match event {
            ServerEvent::LeadershipAcquired { term } => self.leading = Some(*term),
            ServerEvent::LeadershipLost { term } if self.leading == Some(*term) => {
                self.leading = None
            }
            _ => {}
        }
    }

    /// Take the current status as the truth (at start, and after missing events).
    pub fn on_status(&mut self, status: &RaftStatus) {
        self.leading = status.is_ready_leader().then_some(status.term);
    }

    /// The term to register in now, if any.
    pub fn due(&self) -> Option<u64> {
        self.leading
            .filter(|term| self.registered_term != Some(*term))
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

/// The duty's loop; runs for the life of the agent (until the server's event bus closes).
pub async fn run(server: ServerHandle, config: Arc<Config>) {
    let registration = self_registration(&config);
    // Subscribe first, then read the status: nothing can fall between the two.
    let mut events = server.events();
    let mut duty = LeaderDuty::default();
    duty.on_status(&server.status());
    let mut backoff_ms = RETRY_BACKOFF_INITIAL_MS;
    let mut retry_at: Option<tokio::time::Instant> = None;
    loop {
        let ready_to_try = retry_at.is_none_or(|at| tokio::time::Instant::now() >= at);
        if let (Some(term), true) = (duty.due(), ready_to_try) {
            match server
                .propose(Command::Register(registration.clone()))
                .await
            {
                Ok(CommandResult::Done | CommandResult::Bool(true)) => {
                    duty.on_registered(term);
                    backoff_ms = RETRY_BACKOFF_INITIAL_MS;
                    retry_at = None;
                    info!(node = %config.node_name, term, "leader: synced this node into the catalog");
                }
                outcome => {
                    warn!(
                        ?outcome,
                        retry_in_ms = backoff_ms,
                        "leader: failed to register this node in the catalog"
                    );
                    retry_at =
                        Some(tokio::time::Instant::now() + Duration::from_millis(backoff_ms));
                    backoff_ms = (backoff_ms * 2).min(RETRY_BACKOFF_MAX_MS);
                }
            }
            continue;
        }
        let retry = retry_at.filter(|_| duty.due().is_some());
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => {
                    if matches!(event, ServerEvent::LeadershipAcquired { .. }) {
                        // A new term starts with a fresh backoff.
                        backoff_ms = RETRY_BACKOFF_INITIAL_MS;
                        retry_at = None;
                    }
                    duty.on_event(&event);
                }
                Err(RecvError::Lagged(_)) => duty.on_status(&server.status()),
                Err(RecvError::Closed) => {
                    debug!("leader duty: the server stopped; duty ends");
                    return;
                }
            },
            _ = tokio::time::sleep_until(retry.unwrap_or_else(tokio::time::Instant::now)), if retry.is_some() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ServerEvent::{LeadershipAcquired, LeadershipLost};

    #[test]
    fn registers_once_per_term_while_leading() {
        let mut d = LeaderDuty::default();
        assert_eq!(d.due(), None);
        d.on_event(&LeadershipAcquired { term: 2 });
        assert_eq!(d.due(), Some(2));
        d.on_registered(2);
        assert_eq!(d.due(), None);
        // Step down, lead again in a later term: register again.
        d.on_event(&LeadershipLost { term: 2 });
        assert_eq!(d.due(), None);
        d.on_event(&LeadershipAcquired { term: 4 });
        assert_eq!(d.due(), Some(4));
    }

    #[test]
    fn a_stale_leadership_lost_does_not_stop_a_newer_term() {
        let mut d = LeaderDuty::default();
        d.on_event(&LeadershipAcquired { term: 5 });
        d.on_event(&LeadershipLost { term: 4 });
        assert_eq!(d.due(), Some(5));
    }

    #[test]
    fn failed_registration_stays_due_in_the_same_term() {
        let mut d = LeaderDuty::default();
        d.on_event(&LeadershipAcquired { term: 1 });
        assert_eq!(d.due(), Some(1));
        assert_eq!(d.due(), Some(1));
    }

    #[test]
    fn the_status_is_the_truth_at_start_and_after_lag() {
        use actors::RaftRole;
        let leader = |applied: u64, noop: u64| RaftStatus {
            role: RaftRole::Leader,
            term: 3,
            applied_index: applied,
            leader_ready_index: noop,
            ..Default::default()
        };
        let mut d = LeaderDuty::default();
        // Leading but the no-op is not applied yet: not due (rule 8).
        d.on_status(&leader(4, 5));
        assert_eq!(d.due(), None);
        d.on_status(&leader(5, 5));
        assert_eq!(d.due(), Some(3));
        d.on_status(&RaftStatus::default());
        assert_eq!(d.due(), None);
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
