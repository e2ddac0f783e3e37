//! The SWIM core's member records as the edges see them (Consul's Member shape), and
//! the server list a client agent forwards to.

use super::{MemberStatus, MemberView};
use protocol::swim::{Member, MemberStatus as SwimStatus};
use std::net::SocketAddr;

/// memberlist's (min, max, current) protocol versions, as Consul's members report them.
pub const GOSSIP_PROTOCOL: (u8, u8, u8) = (1, 5, 2);
/// serf's (min, max, current) delegate protocol versions, as Consul's members report them.
pub const DELEGATE_PROTOCOL: (u8, u8, u8) = (2, 5, 4);

/// `leaving`: this is our own record and we are leaving.
pub fn member_view(member: &Member, leaving: bool) -> MemberView {
    let status = match member.status {
        // serf shows a suspected member as alive until it is declared failed.
        SwimStatus::Alive | SwimStatus::Suspect if leaving => MemberStatus::Leaving,
        SwimStatus::Alive | SwimStatus::Suspect => MemberStatus::Alive,
        SwimStatus::Dead => MemberStatus::Failed,
        SwimStatus::Left => MemberStatus::Left,
    };
    MemberView {
        name: member.name.clone(),
        addr: member.addr.ip(),
        port: member.addr.port(),
        tags: member.tags.as_ref().clone(),
        status,
        protocol: GOSSIP_PROTOCOL,
        delegate: DELEGATE_PROTOCOL,
    }
}

/// The server RPC address of a member tagged as a Consul server (`role=consul`, its
/// `port` tag), if it is one.
pub fn server_addr(member: &Member) -> Option<SocketAddr> {
    if member.tags.get("role").map(String::as_str) != Some("consul") {
        return None;
    }
    let port = member.tags.get("port")?.parse::<u16>().ok()?;
    Some(SocketAddr::new(member.addr.ip(), port))
}

/// The RPC addresses of the alive (or suspected) servers, sorted.
pub fn servers_of(members: &[Member]) -> Vec<SocketAddr> {
    let mut servers: Vec<SocketAddr> = members
        .iter()
        .filter(|m| matches!(m.status, SwimStatus::Alive | SwimStatus::Suspect))
        .filter_map(server_addr)
        .collect();
    servers.sort();
    servers
}
