//! Autopilot, as Consul's leader runs it (raft-autopilot): the decisions only. The
//! leader duty gathers the Raft configuration with each member's replication and the
//! servers gossip knows, and asks [`Autopilot`] for the next membership change and for
//! the health report `/v1/operator/autopilot/health` shows. Time comes in as Unix
//! milliseconds.
//!
//! - an alive server (gossip role `consul`, our datacenter) not in the configuration is
//!   added as a non-voter (a stale member holding its address, not alive under its own
//!   id, is removed first: a server restarted with a new data dir);
//! - a non-voter is promoted once it is healthy, has stayed so for
//!   `server_stabilization_time`, and its log is within [`PROMOTION_DISTANCE`] entries
//!   of the leader's;
//! - a server that left gossip is removed;
//! - with `cleanup_dead_servers`, a failed non-voter is removed, and a failed voter too
//!   once it has been unhealthy for `server_stabilization_time` and while the voters
//!   that are not failed still make a quorum of the configuration;
//! - servers gossip does not know at all are left alone (a new leader's gossip may not
//!   have heard of everyone yet).
//!
//! One change at a time: nothing while a configuration change is uncommitted.

use crate::api::{AutopilotHealthInfo, ServerHealthInfo};
use crate::ids::ServerId;
use crate::raft::ConfigChange;
use std::collections::BTreeMap;

/// A non-voter this close to the leader's last index counts as caught up.
pub const PROMOTION_DISTANCE: u64 = 10;

/// Consul's `autopilot` settings that cairn honours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutopilotConfig {
    pub cleanup_dead_servers: bool,
    /// A server not heard from for longer is unhealthy (Consul: 200ms).
    pub last_contact_threshold_ms: u64,
    /// A server further behind than this is unhealthy (Consul: 250).
    pub max_trailing_logs: u64,
    /// How long a non-voter must stay healthy before promotion (Consul: 10s).
    pub server_stabilization_ms: u64,
}

impl Default for AutopilotConfig {
    fn default() -> Self {
        AutopilotConfig {
            cleanup_dead_servers: true,
            last_contact_threshold_ms: 200,
            max_trailing_logs: 250,
            server_stabilization_ms: 10_000,
        }
    }
}

/// A member's gossip status, with Consul's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SerfStatus {
    None,
    Alive,
    Leaving,
    Left,
    Failed,
}

impl SerfStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SerfStatus::None => "none",
            SerfStatus::Alive => "alive",
            SerfStatus::Leaving => "leaving",
            SerfStatus::Left => "left",
            SerfStatus::Failed => "failed",
        }
    }
}

/// A server as gossip knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipServer {
    /// Its Raft id (the `id` tag).
    pub id: String,
    pub name: String,
    /// Its server address, `ip:port`.
    pub addr: String,
    pub status: SerfStatus,
    pub version: String,
}

/// One member of the Raft configuration with the leader's view of its replication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftMember {
    pub id: String,
    pub address: String,
    pub voter: bool,
    pub match_index: u64,
    pub last_contact_ms: u64,
}

/// The leader's Raft state autopilot looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RaftState {
    pub members: Vec<RaftMember>,
    pub leader_id: String,
    pub term: u64,
    pub last_index: u64,
    /// A configuration change is still uncommitted.
    pub change_pending: bool,
}

/// Why autopilot wants a change: what its log line says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// A new alive server.
    New,
    /// A caught-up non-voter, stable for the stabilization time.
    Stable,
    /// It left gossip.
    Left,
    /// It failed and dead-server cleanup is on.
    Failed,
    /// Another server (alive under another id) now has its address.
    AddressReused,
    /// Its address changed.
    Moved,
}

/// One change autopilot wants, and about whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub change: ConfigChange,
    pub reason: Reason,
    /// The server's node name ("" when gossip does not know it).
    pub name: String,
    pub address: String,
}

/// Autopilot's memory: since when each member's health has held.
#[derive(Debug, Clone, Default)]
pub struct Autopilot {
    config: AutopilotConfig,
    /// id → (healthy, since when, Unix ms).
    stable: BTreeMap<String, (bool, u64)>,
}

impl Autopilot {
    pub fn new(config: AutopilotConfig) -> Autopilot {
        Autopilot {
            config,
            stable: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &AutopilotConfig {
        &self.config
    }

    /// Leadership moved: health history from another term means nothing.
    pub fn reset(&mut self) {
        self.stable.clear();
    }

    /// Every member's health now (remembering since when it held) and the cluster's.
    pub fn observe(
        &mut self,
        now_ms: u64,
        raft: &RaftState,
        gossip: &[GossipServer],
    ) -> AutopilotHealthInfo {
        let mut servers = Vec::with_capacity(raft.members.len());
        for m in &raft.members {
            let g = gossip.iter().find(|g| g.id == m.id);
            let status = g.map_or(SerfStatus::None, |g| g.status);
            let leader = m.id == raft.leader_id;
            let last_contact_ms = if leader { 0 } else { m.last_contact_ms };
            let healthy = status == SerfStatus::Alive
                && last_contact_ms <= self.config.last_contact_threshold_ms
                && m.match_index + self.config.max_trailing_logs >= raft.last_index;
            let entry = self.stable.entry(m.id.clone()).or_insert((healthy, now_ms));
            if entry.0 != healthy {
                *entry = (healthy, now_ms);
            }
            servers.push(ServerHealthInfo {
                id: m.id.clone(),
                name: g.map(|g| g.name.clone()).unwrap_or_default(),
                address: m.address.clone(),
                serf_status: status.as_str().to_string(),
                version: g.map(|g| g.version.clone()).unwrap_or_default(),
                leader,
                last_contact_ms,
                last_term: raft.term,
                last_index: m.match_index,
                healthy,
                voter: m.voter,
                stable_since_unix_ms: entry.1,
            });
        }
        self.stable
            .retain(|id, _| raft.members.iter().any(|m| m.id == *id));
        let voters = servers.iter().filter(|s| s.voter).count();
        let healthy_voters = servers.iter().filter(|s| s.voter && s.healthy).count();
        let quorum = voters / 2 + 1;
        AutopilotHealthInfo {
            healthy: voters > 0 && healthy_voters == voters,
            failure_tolerance: healthy_voters.saturating_sub(quorum) as u64,
            servers,
        }
    }

    /// The next change to make, given `health` from [`Autopilot::observe`] at `now_ms`.
    pub fn next_change(
        &self,
        now_ms: u64,
        raft: &RaftState,
        gossip: &[GossipServer],
        health: &AutopilotHealthInfo,
    ) -> Option<Decision> {
        if raft.change_pending {
            return None;
        }
        let gossip_of = |id: &str| gossip.iter().find(|g| g.id == id);
        let status_of = |id: &str| gossip_of(id).map_or(SerfStatus::None, |g| g.status);
        let name_of = |id: &str| gossip_of(id).map(|g| g.name.clone()).unwrap_or_default();
        let member = |id: &str| raft.members.iter().find(|m| m.id == id);
        let decision = |change, reason, m: &RaftMember| Decision {
            change,
            reason,
            name: name_of(&m.id),
            address: m.address.clone(),
        };
        let remove = |m: &RaftMember| ConfigChange::Remove {
            id: ServerId(m.id.clone()),
        };
        let others = || raft.members.iter().filter(|m| m.id != raft.leader_id);

        // Left gossip: out of the configuration.
        if let Some(m) = others().find(|m| status_of(&m.id) == SerfStatus::Left) {
            return Some(decision(remove(m), Reason::Left, m));
        }
        let alive: Vec<&GossipServer> = gossip
            .iter()
            .filter(|g| g.status == SerfStatus::Alive && !g.id.is_empty())
            .collect();
        // A new server on an address a stale member still holds.
        for g in alive.iter().filter(|g| member(&g.id).is_none()) {
            let stale =
                others().find(|m| m.address == g.addr && status_of(&m.id) != SerfStatus::Alive);
            if let Some(m) = stale {
                return Some(decision(remove(m), Reason::AddressReused, m));
            }
        }
        // Dead-server cleanup.
        if self.config.cleanup_dead_servers {
            let failed = |m: &&RaftMember| status_of(&m.id) == SerfStatus::Failed;
            if let Some(m) = others().filter(|m| !m.voter).find(failed) {
                return Some(decision(remove(m), Reason::Failed, m));
            }
            let voters = raft.members.iter().filter(|m| m.voter).count();
            let not_failed = raft
                .members
                .iter()
                .filter(|m| m.voter && status_of(&m.id) != SerfStatus::Failed)
                .count();
            let quorum = voters / 2 + 1;
            // A voter only once it has been down for the stabilization time: a server
            // that is killed and restarted at once keeps its vote instead of coming back
            // as a non-voter for another stabilization time, with the cluster one
            // failure from unavailable meanwhile. (raft-autopilot gets a similar grace
            // from its reconcile interval.)
            let down_long_enough = |m: &&RaftMember| {
                health.servers.iter().any(|s| {
                    s.id == m.id
                        && !s.healthy
                        && now_ms.saturating_sub(s.stable_since_unix_ms)
                            >= self.config.server_stabilization_ms
                })
            };
            if not_failed >= quorum {
                if let Some(m) = others()
                    .filter(|m| m.voter)
                    .filter(failed)
                    .find(down_long_enough)
                {
                    return Some(decision(remove(m), Reason::Failed, m));
                }
            }
        }
        // New alive servers join as non-voters; moved ones get their new address.
        for g in &alive {
            let taken = raft
                .members
                .iter()
                .any(|m| m.address == g.addr && m.id != g.id);
            match member(&g.id) {
                None if !taken => {
                    return Some(Decision {
                        change: ConfigChange::AddNonVoter {
                            id: ServerId(g.id.clone()),
                            addr: g.addr.clone(),
                        },
                        reason: Reason::New,
                        name: g.name.clone(),
                        address: g.addr.clone(),
                    })
                }
                // The leader corrects its own address itself (RaftCore).
                Some(m) if m.address != g.addr && !taken && m.id != raft.leader_id => {
                    return Some(Decision {
                        change: ConfigChange::Readdress {
                            id: ServerId(g.id.clone()),
                            addr: g.addr.clone(),
                        },
                        reason: Reason::Moved,
                        name: g.name.clone(),
                        address: g.addr.clone(),
                    })
                }
                _ => {}
            }
        }
        // Promote caught-up, stable non-voters.
        let stabilized = |id: &str| {
            health.servers.iter().any(|s| s.id == id && s.healthy)
                && self.stable.get(id).is_some_and(|(healthy, since)| {
                    *healthy && now_ms.saturating_sub(*since) >= self.config.server_stabilization_ms
                })
        };
        let candidate = raft.members.iter().find(|m| {
            !m.voter && m.match_index + PROMOTION_DISTANCE >= raft.last_index && stabilized(&m.id)
        });
        candidate.map(|m| {
            let change = ConfigChange::Promote {
                id: ServerId(m.id.clone()),
            };
            decision(change, Reason::Stable, m)
        })
    }
}

#[cfg(test)]
mod tests;
