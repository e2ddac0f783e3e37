//! Membership into the catalog, as Consul's leader does it (`leader.go`: reconcile,
//! handleAliveMember, handleFailedMember, handleLeftMember, reconcileReaped): pure, so
//! the leader duty only gathers the members, calls [`reconcile`] and proposes what it
//! returns.
//!
//! - an alive member → its node registered at its gossip address with a passing
//!   `serfHealth` check (and, for a server, the `consul` service on its RPC port);
//! - a failed member → the same entries kept, `serfHealth` critical;
//! - a member that left, or a catalog node with a `serfHealth` check that gossip no
//!   longer knows (reaped) → the node deregistered with everything on it.
//!
//! Every command is only returned when the catalog differs from what it should be, so a
//! periodic pass over an unchanged cluster proposes nothing. The leader's own node is
//! never deregistered here (Consul leaves that to a follower after a leadership change)
//! and is written from its full self-registration (node meta, tagged addresses), which
//! gossip does not carry.

use crate::store::Store;
use crate::store::{
    Check, CheckStatus, Command, DeregisterRequest, Node, RegisterRequest, Service,
};

/// The id of the check the leader keeps for every member.
pub const SERF_HEALTH_CHECK_ID: &str = "serfHealth";
const SERF_HEALTH_NAME: &str = "Serf Health Status";
const ALIVE_OUTPUT: &str = "Agent alive and reachable";
const FAILED_OUTPUT: &str = "Agent not live or unreachable";

/// What gossip says of a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberHealth {
    Alive,
    Failed,
    /// Left gracefully or forced out; also "leaving".
    Left,
}

/// One gossip member, reduced to what the catalog needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberRecord {
    pub name: String,
    /// Node id (the member's `id` tag); may be empty.
    pub id: String,
    /// The member's gossip address.
    pub address: String,
    pub health: MemberHealth,
    /// The server RPC port when the member is a server (`role=consul`).
    pub server_port: Option<u16>,
}

/// The commands that bring the catalog in line with `members`. `leader` is this
/// server's full self-registration (its node must stay, whatever gossip says of it);
/// `datacenter` is written on nodes the catalog does not have yet.
pub fn reconcile(
    store: &Store,
    members: &[MemberRecord],
    leader: &RegisterRequest,
    datacenter: &str,
) -> Vec<Command> {
    let leader_name = leader.node.node.as_str();
    let mut commands = Vec::new();
    if !registered_as(store, leader, CheckStatus::Passing) {
        commands.push(Command::Register(leader.clone()));
    }
    for member in members.iter().filter(|m| !same_name(&m.name, leader_name)) {
        match member.health {
            MemberHealth::Alive | MemberHealth::Failed => {
                let want = registration(store, member, datacenter);
                let status = want.checks[0].status;
                if !registered_as(store, &want, status) {
                    commands.push(Command::Register(want));
                }
            }
            MemberHealth::Left => {
                if store.node(&member.name).is_some() {
                    commands.push(deregister(&member.name));
                }
            }
        }
    }
    // Reaped: nodes the leader registered (they carry serfHealth) that gossip forgot.
    for node in store.nodes() {
        let known = members.iter().any(|m| same_name(&m.name, &node.node));
        if !known && !same_name(&node.node, leader_name) && has_serf_health(store, &node.node) {
            commands.push(deregister(&node.node));
        }
    }
    commands
}

/// What the catalog should hold for an alive or failed member: the node as it is
/// (meta, tagged addresses kept) at the member's address, its serfHealth check, and the
/// `consul` service for a server.
fn registration(store: &Store, member: &MemberRecord, datacenter: &str) -> RegisterRequest {
    let existing = store.node(&member.name);
    let mut node = existing.cloned().unwrap_or_else(|| Node {
        node: member.name.clone(),
        datacenter: datacenter.to_string(),
        ..Node::default()
    });
    node.address = member.address.clone();
    if !member.id.is_empty() {
        node.id = member.id.clone();
    }
    node.create_index = 0;
    node.modify_index = 0;
    let node_name = node.node.clone();
    let alive = member.health == MemberHealth::Alive;
    RegisterRequest {
        node,
        skip_node_update: false,
        service: member.server_port.map(|port| Service {
            node: node_name.clone(),
            id: "consul".to_string(),
            service: "consul".to_string(),
            port,
            ..Service::default()
        }),
        checks: vec![serf_health_check(&node_name, alive)],
    }
}

/// The `serfHealth` check the leader keeps on a member's node: passing while the member
/// is alive, critical once it failed.
pub fn serf_health_check(node: &str, alive: bool) -> Check {
    let (status, output) = match alive {
        true => (CheckStatus::Passing, ALIVE_OUTPUT),
        false => (CheckStatus::Critical, FAILED_OUTPUT),
    };
    Check {
        node: node.to_string(),
        check_id: SERF_HEALTH_CHECK_ID.to_string(),
        name: SERF_HEALTH_NAME.to_string(),
        status,
        output: output.to_string(),
        check_type: "serf".to_string(),
        ..Check::default()
    }
}

/// Whether the catalog already holds `want`: the node at the same address and id, the
/// serfHealth check in `status`, and the service (if any) on its port.
fn registered_as(store: &Store, want: &RegisterRequest, status: CheckStatus) -> bool {
    let Some(node) = store.node(&want.node.node) else {
        return false;
    };
    if node.address != want.node.address || (!want.node.id.is_empty() && node.id != want.node.id) {
        return false;
    }
    let check_ok = store
        .node_checks(&node.node)
        .iter()
        .any(|c| c.check_id == SERF_HEALTH_CHECK_ID && c.status == status);
    let service_ok = want.service.as_ref().is_none_or(|s| {
        store
            .node_services(&node.node)
            .iter()
            .any(|have| have.id == s.id && have.service == s.service && have.port == s.port)
    });
    check_ok && service_ok
}

fn has_serf_health(store: &Store, node: &str) -> bool {
    store
        .node_checks(node)
        .iter()
        .any(|c| c.check_id == SERF_HEALTH_CHECK_ID)
}

fn deregister(node: &str) -> Command {
    Command::Deregister(DeregisterRequest {
        node: node.to_string(),
        service_id: None,
        check_id: None,
    })
}

/// Node names are case-insensitive in the catalog.
fn same_name(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b) || a.to_lowercase() == b.to_lowercase()
}

#[cfg(test)]
mod tests;
