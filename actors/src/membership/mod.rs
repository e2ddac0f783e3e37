//! Gossip membership as the rest of the agent sees it: who the members are, and the
//! commands a user gives (join, leave, force-leave). The SWIM core (`protocol::swim`)
//! decides; the membership actor runs it on the serf LAN port and implements
//! [`Membership`]. The HTTP edge (`agent/members`, `agent/join`, ...) and the CLI depend
//! on this interface only, so they are written and tested against [`StaticMembership`].

mod gossip;
mod net;
#[cfg(test)]
mod tests;
mod view;

pub use gossip::{Gossip, GossipConfig, LEAVE_PROPAGATE_WAIT, MEMBER_EVENT_BUFFER};
pub use net::{resolve, DEFAULT_SERF_LAN_PORT};
pub use view::{member_view, server_addr, servers_of, DELEGATE_PROTOCOL, GOSSIP_PROTOCOL};

use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Serf's member status, with Consul's numeric codes (`Status` in agent/members).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MemberStatus {
    None = 0,
    Alive = 1,
    Leaving = 2,
    Left = 3,
    Failed = 4,
}

impl MemberStatus {
    /// The word `consul members` prints.
    pub fn as_str(self) -> &'static str {
        match self {
            MemberStatus::None => "none",
            MemberStatus::Alive => "alive",
            MemberStatus::Leaving => "leaving",
            MemberStatus::Left => "left",
            MemberStatus::Failed => "failed",
        }
    }

    pub fn code(self) -> u8 {
        self as u8
    }
}

/// One member as this agent knows it (Consul's `Member` shape).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberView {
    pub name: String,
    /// The gossip address (`-bind`) and port (serf LAN, 8301).
    pub addr: IpAddr,
    pub port: u16,
    /// Consul's member tags: role (consul | node), dc, port (server RPC), expect, id,
    /// vsn, vsn_min, vsn_max, build, segment...
    pub tags: BTreeMap<String, String>,
    pub status: MemberStatus,
    /// (min, max, current) of the gossip protocol and of Consul's delegate protocol.
    pub protocol: (u8, u8, u8),
    pub delegate: (u8, u8, u8),
}

/// Why a membership command failed, with the text Consul's HTTP API answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembershipError {
    /// No address given could be joined.
    #[error("{0}")]
    JoinFailed(String),
    /// force-leave of a node this agent does not know (Consul: "agent: No node found with name '<n>'").
    #[error("agent: No node found with name '{0}'")]
    NoSuchNode(String),
    /// Anything else (the actor is gone, a socket failed).
    #[error("{0}")]
    Other(String),
}

/// The agent's gossip membership.
pub trait Membership: Send + Sync + 'static {
    /// Every member known, this agent included, sorted by name.
    fn members(&self) -> Vec<MemberView>;
    /// Join through these addresses (`host` or `host:port`; the serf LAN port is the
    /// default). Ok(number joined), Err when none could be joined.
    fn join(&self, addrs: Vec<String>) -> BoxFuture<'static, Result<usize, MembershipError>>;
    /// Leave gracefully: tell the others, then stop gossiping.
    fn leave(&self) -> BoxFuture<'static, Result<(), MembershipError>>;
    /// Mark a failed member as left (`prune`: forget it at once).
    fn force_leave(&self, node: &str, prune: bool) -> Result<(), MembershipError>;
    /// Gossip a user event (serf's `UserEvent`) to every member, this one included.
    /// Ok(its Lamport time).
    fn user_event(&self, name: &str, payload: Vec<u8>) -> Result<u64, MembershipError> {
        let _ = (name, payload);
        Err(MembershipError::Other(
            "user events are not supported here".into(),
        ))
    }
}

/// A fixed member list answering commands from memory: for tests of the edges.
#[derive(Default)]
pub struct StaticMembership {
    pub state: parking_lot::Mutex<StaticState>,
}

#[derive(Debug, Default, Clone)]
pub struct StaticState {
    pub members: Vec<MemberView>,
    /// Addresses `join` was asked to use, in order.
    pub joined: Vec<String>,
    pub left: bool,
    /// User events fired, in order: (name, payload).
    pub user_events: Vec<(String, Vec<u8>)>,
}

impl StaticMembership {
    pub fn new(members: Vec<MemberView>) -> Arc<StaticMembership> {
        let state = StaticState {
            members,
            ..StaticState::default()
        };
        Arc::new(StaticMembership {
            state: parking_lot::Mutex::new(state),
        })
    }
}

impl Membership for StaticMembership {
    fn members(&self) -> Vec<MemberView> {
        let mut members = self.state.lock().members.clone();
        members.sort_by(|a, b| a.name.cmp(&b.name));
        members
    }

    fn join(&self, addrs: Vec<String>) -> BoxFuture<'static, Result<usize, MembershipError>> {
        let n = addrs.len();
        self.state.lock().joined.extend(addrs);
        Box::pin(async move { Ok(n) })
    }

    fn leave(&self) -> BoxFuture<'static, Result<(), MembershipError>> {
        self.state.lock().left = true;
        Box::pin(async { Ok(()) })
    }

    fn user_event(&self, name: &str, payload: Vec<u8>) -> Result<u64, MembershipError> {
        let mut state = self.state.lock();
        state.user_events.push((name.to_string(), payload));
        Ok(state.user_events.len() as u64 - 1)
    }

    fn force_leave(&self, node: &str, prune: bool) -> Result<(), MembershipError> {
        let mut state = self.state.lock();
        let Some(pos) = state.members.iter().position(|m| m.name == node) else {
            return Err(MembershipError::NoSuchNode(node.to_string()));
        };
        match prune {
            true => {
                state.members.remove(pos);
            }
            false => state.members[pos].status = MemberStatus::Left,
        }
        Ok(())
    }
}
