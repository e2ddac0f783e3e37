//! Autopilot and the operator requests of a server agent.
//!
//! [`Operator`] joins the Raft group's view (members with their replication, from
//! `ServerHandle::raft_members`) to gossip's (node names, alive/left/failed) for two
//! purposes:
//! - while this server leads, the leader duty runs [`Operator::pass`] every
//!   [`AUTOPILOT_INTERVAL`]: `protocol::autopilot` picks the next membership change
//!   (add a new server as a non-voter, promote a stable one, remove one that left or,
//!   with `cleanup_dead_servers`, failed) and it is proposed and awaited, with Consul's
//!   log lines;
//! - it answers the operator requests (`/v1/operator/raft/configuration`,
//!   `DELETE /v1/operator/raft/peer`, `/v1/operator/autopilot/health`) as the
//!   [`Endpoint`] the server's request path hands them to (on the leader, unless a
//!   stale configuration is asked for).

use actors::membership::{MemberStatus, Membership};
use actors::{Endpoint, MembershipError, RaftMembers, ServerHandle, WriteError};
use futures::future::BoxFuture;
use futures::FutureExt;
use protocol::api::{
    Answer, InfoData, InfoRequest, PeerSelector, RaftConfigurationInfo, RaftServerInfo, Request,
    RequestError, Response,
};
use protocol::autopilot::{
    Autopilot, AutopilotConfig, Decision, GossipServer, RaftMember, RaftState, Reason, SerfStatus,
};
use protocol::ids::ServerId;
use protocol::raft::ConfigChange;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{info, warn};

/// How often the leader's autopilot looks at the cluster.
pub const AUTOPILOT_INTERVAL: Duration = Duration::from_millis(250);
/// Consul's Raft protocol version, reported for every server.
const RAFT_PROTOCOL_VERSION: &str = "3";

pub struct Operator {
    server: ServerHandle,
    members: Arc<dyn Membership>,
    datacenter: String,
    autopilot: Mutex<Autopilot>,
}

impl Operator {
    pub fn new(
        server: ServerHandle,
        members: Arc<dyn Membership>,
        datacenter: &str,
        config: AutopilotConfig,
    ) -> Operator {
        Operator {
            server,
            members,
            datacenter: datacenter.to_string(),
            autopilot: Mutex::new(Autopilot::new(config)),
        }
    }

    /// Servers of our datacenter as gossip knows them.
    fn gossip_servers(&self) -> Vec<GossipServer> {
        self.members
            .members()
            .into_iter()
            .filter(|m| m.tags.get("role").map(String::as_str) == Some("consul"))
            .filter(|m| m.tags.get("dc") == Some(&self.datacenter))
            .map(|m| {
                let port = m.tags.get("port").cloned().unwrap_or_default();
                GossipServer {
                    id: m.tags.get("id").cloned().unwrap_or_default(),
                    name: m.name.clone(),
                    addr: std::net::SocketAddr::new(m.addr, port.parse().unwrap_or(0)).to_string(),
                    status: serf_status(m.status),
                    version: m
                        .tags
                        .get("build")
                        .map(|b| b.split(':').next().unwrap_or_default().to_string())
                        .unwrap_or_default(),
                }
            })
            .collect()
    }

    /// This server's Raft members, or why it cannot tell.
    async fn raft_members(&self) -> Result<RaftMembers, RequestError> {
        self.server
            .raft_members()
            .await
            .ok_or(RequestError::ShuttingDown)
    }

    /// One autopilot pass on the leader: at most one change, proposed and awaited.
    /// Ok(true) when it changed something (another pass may follow at once).
    pub async fn pass(&self, now_unix_ms: u64) -> Result<bool, String> {
        let members = self.raft_members().await.map_err(|e| e.to_string())?;
        let Some(raft) = raft_state(&members) else {
            return Ok(false); // not the leader (any more)
        };
        let gossip = self.gossip_servers();
        let decision = {
            let mut autopilot = self.autopilot.lock().unwrap_or_else(|e| e.into_inner());
            let health = autopilot.observe(now_unix_ms, &raft, &gossip);
            autopilot.next_change(now_unix_ms, &raft, &gossip, &health)
        };
        let Some(decision) = decision else {
            return Ok(false);
        };
        log_decision(&decision);
        match self.server.change_membership(decision.change.clone()).await {
            Ok(()) => Ok(true),
            Err(e) => Err(format!("{e}")),
        }
    }

    /// A new term: health history from before means nothing.
    pub fn leadership_changed(&self) {
        self.autopilot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reset();
    }

    async fn raft_configuration(&self) -> Answer {
        let members = self.raft_members().await?;
        let gossip = self.gossip_servers();
        let servers = members
            .servers
            .iter()
            .map(|s| RaftServerInfo {
                id: s.id.clone(),
                node: node_name(&gossip, &s.id, &s.address),
                address: s.address.clone(),
                leader: members.leader_id.as_deref() == Some(s.id.as_str()),
                voter: s.voter,
                protocol_version: RAFT_PROTOCOL_VERSION.to_string(),
            })
            .collect();
        Ok(Response::Info(InfoData::RaftConfiguration(
            RaftConfigurationInfo {
                servers,
                index: members.index,
            },
        )))
    }

    async fn autopilot_health(&self, now_unix_ms: u64) -> Answer {
        let members = self.raft_members().await?;
        let raft = raft_state(&members).ok_or(RequestError::NoLeader)?;
        let gossip = self.gossip_servers();
        let health = self
            .autopilot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .observe(now_unix_ms, &raft, &gossip);
        Ok(Response::Info(InfoData::AutopilotHealth(health)))
    }

    async fn remove_peer(&self, selector: PeerSelector) -> Answer {
        let members = self.raft_members().await?;
        let found = members.servers.iter().find(|s| match &selector {
            PeerSelector::Id(id) => s.id == *id,
            PeerSelector::Address(addr) => s.address == *addr,
        });
        let Some(server) = found else {
            return Err(RequestError::Internal(selector.not_found_text()));
        };
        info!(id = %server.id, address = %server.address, "removing server by operator request");
        let change = ConfigChange::Remove {
            id: ServerId(server.id.clone()),
        };
        match self.server.change_membership(change).await {
            Ok(()) => Ok(Response::Info(InfoData::PeerRemoved)),
            Err(MembershipError::Refused(e)) => Err(RequestError::Internal(e.to_string())),
            Err(MembershipError::Write(e)) => Err(write_error(e)),
        }
    }
}

impl Endpoint for Operator {
    fn ask(&self, request: Request) -> BoxFuture<'_, Answer> {
        async move {
            match request {
                Request::Info(InfoRequest::RaftConfiguration { .. }) => {
                    self.raft_configuration().await
                }
                Request::Info(InfoRequest::AutopilotHealth) => {
                    self.autopilot_health(unix_now_ms()).await
                }
                Request::Info(InfoRequest::RemoveRaftPeer(selector)) => {
                    self.remove_peer(selector).await
                }
                _ => Err(RequestError::internal("not an operator request")),
            }
        }
        .boxed()
    }
}

/// The leader's view for autopilot; `None` on a non-leader.
fn raft_state(members: &RaftMembers) -> Option<RaftState> {
    if members.replication.is_empty() {
        return None;
    }
    Some(RaftState {
        members: members
            .servers
            .iter()
            .map(|s| {
                let r = members.replication_of(&s.id);
                RaftMember {
                    id: s.id.clone(),
                    address: s.address.clone(),
                    voter: s.voter,
                    match_index: r.map_or(0, |r| r.match_index),
                    last_contact_ms: r.map_or(u64::MAX, |r| r.last_contact.as_millis() as u64),
                }
            })
            .collect(),
        leader_id: members.leader_id.clone().unwrap_or_default(),
        term: members.term,
        last_index: members.last_index,
        change_pending: !members.committed,
    })
}

/// A member's node name: by Raft id, else by server address ("" when gossip does not
/// know it).
fn node_name(gossip: &[GossipServer], id: &str, address: &str) -> String {
    gossip
        .iter()
        .find(|g| g.id == id)
        .or_else(|| gossip.iter().find(|g| g.addr == address))
        .map(|g| g.name.clone())
        .unwrap_or_default()
}

fn serf_status(status: MemberStatus) -> SerfStatus {
    match status {
        MemberStatus::None => SerfStatus::None,
        MemberStatus::Alive => SerfStatus::Alive,
        MemberStatus::Leaving => SerfStatus::Leaving,
        MemberStatus::Left => SerfStatus::Left,
        MemberStatus::Failed => SerfStatus::Failed,
    }
}

/// Consul's log lines for autopilot's changes.
fn log_decision(d: &Decision) {
    let (id, name, address) = (&d.change.server().0, d.name.as_str(), d.address.as_str());
    match d.reason {
        Reason::New => info!(%id, server = name, %address, "Adding server as a non-voter"),
        Reason::Stable => info!(%id, server = name, %address, "Promoting server"),
        Reason::Left => info!(%id, server = name, %address, "removing server that left"),
        Reason::Failed => {
            info!(%id, server = name, %address, "removing failed server (dead server cleanup)")
        }
        Reason::AddressReused => info!(
            %id, server = name, %address,
            "removing server: its address is used by a new server"
        ),
        Reason::Moved => info!(%id, server = name, %address, "updating server address"),
    }
}

fn write_error(e: WriteError) -> RequestError {
    actors::endpoint::from_write_error(e)
}

pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Autopilot's loop beside the leader duty: a pass every [`AUTOPILOT_INTERVAL`] while
/// this server is a ready leader (its no-op applied), a few back to back while passes
/// change something. Ends when the server stops (its event bus closes).
pub async fn run(operator: Arc<Operator>) {
    let server = operator.server.clone();
    let mut events = server.events();
    let mut interval = tokio::time::interval(AUTOPILOT_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut leading_term = None;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            event = events.recv() => match event {
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                _ => continue,
            },
        }
        let status = server.status();
        let term = status.is_ready_leader().then_some(status.term);
        if term != leading_term {
            leading_term = term;
            operator.leadership_changed();
        }
        if term.is_none() {
            continue;
        }
        for _ in 0..4 {
            match operator.pass(unix_now_ms()).await {
                Ok(true) => continue,
                Ok(false) => break,
                Err(e) => {
                    warn!(error = %e, "autopilot: membership change failed");
                    break;
                }
            }
        }
    }
}
