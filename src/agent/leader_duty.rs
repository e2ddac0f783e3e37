//! Leader duty (ARCHITECTURE rule 8): while this server leads, keep the catalog in line
//! with gossip membership, as a Consul leader does: every member's node with its
//! `serfHealth` check (passing when alive, critical when failed), servers' `consul`
//! service, left and reaped members deregistered, and this server's own full
//! registration (see `protocol::reconcile`).
//!
//! Driven by events: it starts on `LeadershipAcquired` (published once the new leader's
//! no-op entry is applied), stops on `LeadershipLost`, and runs a pass on every member
//! event and every [`RECONCILE_INTERVAL`] (which repairs what a user broke, such as a
//! `catalog/deregister` of this server's own node). A pass proposes only what differs,
//! so an unchanged cluster costs no writes; a failed write is retried with backoff.

use crate::config::Config;
use actors::membership::{MemberStatus, MemberView, Membership};
use actors::{RaftStatus, ServerEvent, ServerHandle};
use protocol::reconcile::{reconcile, serf_health_check, MemberHealth, MemberRecord};
use protocol::store::{CommandResult, Node, RegisterRequest, Service};
use protocol::swim::SwimEvent;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::{self, error::RecvError};
use tracing::{debug, info, warn};

/// How often the leader reconciles even without member events. Consul's is a minute;
/// half of that keeps "repaired within a minute" true with room to spare.
pub const RECONCILE_INTERVAL: Duration = Duration::from_secs(30);

pub const RETRY_BACKOFF_INITIAL_MS: u64 = 250;
pub const RETRY_BACKOFF_MAX_MS: u64 = 10_000;

pub use protocol::reconcile::SERF_HEALTH_CHECK_ID;

/// The decision part of the duty: given the server's events, when a pass is due.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct LeaderDuty {
    /// The term this server leads with its no-op applied (None when not leading).
    leading: Option<u64>,
    /// Something may have changed since the last complete pass.
    dirty: bool,
}

impl LeaderDuty {
    pub fn on_event(&mut self, event: &ServerEvent) {
        match event {
            ServerEvent::LeadershipAcquired { term } => {
                self.leading = Some(*term);
                self.dirty = true;
            }
            ServerEvent::LeadershipLost { term } if self.leading == Some(*term) => {
                self.leading = None
            }
            _ => {}
        }
    }

    /// Take the current status as the truth (at start, and after missing events).
    pub fn on_status(&mut self, status: &RaftStatus) {
        self.leading = status.is_ready_leader().then_some(status.term);
        self.dirty = true;
    }

    /// A member event or the periodic timer: the next pass is due.
    pub fn on_change(&mut self) {
        self.dirty = true;
    }

    /// The term to reconcile in now, if any.
    pub fn due(&self) -> Option<u64> {
        self.leading.filter(|_| self.dirty)
    }

    /// A pass in `term` proposed everything it found (all of it applied).
    pub fn on_reconciled(&mut self, term: u64) {
        if self.leading == Some(term) {
            self.dirty = false;
        }
    }
}

/// Gossip's view of a member, reduced to what the catalog needs. A leaving member is
/// still alive until it has left (Consul does nothing for "leaving").
pub fn member_record(member: &MemberView) -> MemberRecord {
    let health = match member.status {
        MemberStatus::Failed => MemberHealth::Failed,
        MemberStatus::Left => MemberHealth::Left,
        MemberStatus::Alive | MemberStatus::Leaving | MemberStatus::None => MemberHealth::Alive,
    };
    let server_port = match member.tags.get("role").map(String::as_str) {
        Some("consul") => member.tags.get("port").and_then(|p| p.parse().ok()),
        _ => None,
    };
    MemberRecord {
        name: member.name.clone(),
        id: member.tags.get("id").cloned().unwrap_or_default(),
        address: member.addr.to_string(),
        health,
        server_port,
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
        checks: vec![serf_health_check(&config.node_name, true)],
    }
}

/// The duty's loop; runs for the life of the agent (until the server's event bus closes).
pub async fn run(
    server: ServerHandle,
    config: Arc<Config>,
    members: Arc<dyn Membership>,
    mut member_events: Option<broadcast::Receiver<SwimEvent>>,
) {
    let registration = self_registration(&config);
    // Subscribe first, then read the status: nothing can fall between the two.
    let mut events = server.events();
    let mut duty = LeaderDuty::default();
    duty.on_status(&server.status());
    let mut backoff_ms = RETRY_BACKOFF_INITIAL_MS;
    let mut retry_at: Option<tokio::time::Instant> = None;
    let mut periodic = tokio::time::interval(RECONCILE_INTERVAL);
    periodic.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let ready_to_try = retry_at.is_none_or(|at| tokio::time::Instant::now() >= at);
        if let (Some(term), true) = (duty.due(), ready_to_try) {
            match reconcile_pass(&server, &config, &registration, members.as_ref()).await {
                Ok(writes) => {
                    duty.on_reconciled(term);
                    backoff_ms = RETRY_BACKOFF_INITIAL_MS;
                    retry_at = None;
                    if writes > 0 {
                        info!(
                            term,
                            writes, "leader: reconciled membership into the catalog"
                        );
                    }
                }
                Err(outcome) => {
                    warn!(%outcome, retry_in_ms = backoff_ms, "leader: catalog reconcile failed");
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
            event = next_member_event(&mut member_events) => {
                if event.is_some() {
                    duty.on_change();
                }
            }
            _ = periodic.tick() => duty.on_change(),
            _ = tokio::time::sleep_until(retry.unwrap_or_else(tokio::time::Instant::now)), if retry.is_some() => {}
        }
    }
}

/// The next member change (`None` after a lag, which also calls for a pass; pending
/// forever once gossip has stopped).
async fn next_member_event(events: &mut Option<broadcast::Receiver<SwimEvent>>) -> Option<()> {
    let Some(receiver) = events.as_mut() else {
        return std::future::pending().await;
    };
    match receiver.recv().await {
        Ok(
            SwimEvent::JoinResult { .. } | SwimEvent::LeaveComplete | SwimEvent::UserEvent { .. },
        ) => None,
        Ok(_) | Err(RecvError::Lagged(_)) => Some(()),
        Err(RecvError::Closed) => {
            *events = None;
            None
        }
    }
}

/// One pass: what the catalog should change, proposed in order. Ok(number of writes).
async fn reconcile_pass(
    server: &ServerHandle,
    config: &Config,
    registration: &RegisterRequest,
    members: &dyn Membership,
) -> Result<usize, String> {
    let records: Vec<MemberRecord> = members.members().iter().map(member_record).collect();
    let commands = {
        let store = server.view().read();
        reconcile(&store, &records, registration, &config.datacenter)
    };
    let writes = commands.len();
    for command in commands {
        match server.propose(command).await {
            Ok(CommandResult::Done | CommandResult::Bool(true)) => {}
            outcome => return Err(format!("{outcome:?}")),
        }
    }
    Ok(writes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::store::CheckStatus;
    use ServerEvent::{LeadershipAcquired, LeadershipLost};

    #[test]
    fn reconciles_on_leadership_and_on_changes_while_leading() {
        let mut d = LeaderDuty::default();
        assert_eq!(d.due(), None);
        d.on_change();
        assert_eq!(d.due(), None, "not leading: nothing to do");
        d.on_event(&LeadershipAcquired { term: 2 });
        assert_eq!(d.due(), Some(2));
        d.on_reconciled(2);
        assert_eq!(d.due(), None);
        d.on_change();
        assert_eq!(d.due(), Some(2));
        d.on_reconciled(2);
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
