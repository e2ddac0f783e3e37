//! Forming a cluster of servers: `-bootstrap-expect N` (as Consul's `maybeBootstrap`),
//! and the leadership log lines operators look for.
//!
//! A server with an empty Raft state (no log, no snapshot, term 0) watches the gossip
//! members: once it sees N alive servers of its datacenter (tag `role=consul`, same
//! `dc`), none expecting a different N and none in `-bootstrap` mode, it bootstraps
//! with the configuration of all of them, sorted by id. Every server computes the same
//! set from the same members, and Raft writes it as the identical entry 1 on each
//! (hashicorp/raft's BootstrapCluster with identical configurations is safe). A server
//! whose Raft state is not empty never bootstraps again; so a server that missed the
//! moment (it voted, or a leader already reached it) simply follows.
//!
//! Before bootstrapping it asks every found server over the API RPC for its Raft peers
//! (as Consul does): if any already has some, a cluster exists and this server must not
//! write a configuration of its own ("Existing Raft peers reported by ..."); an
//! unreachable server postpones the decision to the next look.
//!
//! Not done: adding servers beyond the bootstrap set as voters and removing left ones
//! (configuration entries proposed by the leader); such a server stays without a
//! configuration.

use actors::membership::{MemberStatus, MemberView, Membership};
use actors::{
    Api, FaultRules, ForwardEndpoint, ForwardOptions, ServerEvent, ServerHandle, ServerList,
};
use protocol::api::{InfoData, InfoRequest};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tracing::{info, warn};

/// How often a server waiting to bootstrap looks at the members again.
pub const BOOTSTRAP_POLL: Duration = Duration::from_millis(200);

/// A server member as bootstrap sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct ServerMember {
    name: String,
    id: String,
    addr: String,
    expect: Option<u32>,
    bootstrap: bool,
}

fn server_member(member: &MemberView, datacenter: &str) -> Option<ServerMember> {
    let tag = |k: &str| member.tags.get(k).map(String::as_str);
    if member.status != MemberStatus::Alive || tag("role") != Some("consul") {
        return None;
    }
    if tag("dc") != Some(datacenter) {
        return None;
    }
    let id = tag("id").filter(|id| !id.is_empty())?;
    let port: u16 = tag("port")?.parse().ok()?;
    Some(ServerMember {
        name: member.name.clone(),
        id: id.to_string(),
        addr: std::net::SocketAddr::new(member.addr, port).to_string(),
        expect: tag("expect").and_then(|e| e.parse().ok()),
        bootstrap: tag("bootstrap") == Some("1"),
    })
}

/// Pure: the voter set (id, `ip:port`, sorted by id) to bootstrap with, given the
/// members this server sees; `Ok(None)` while too few servers are known; `Err` (with
/// Consul's text) when a server disagrees about how to form the cluster.
pub fn bootstrap_set(
    datacenter: &str,
    expect: u32,
    members: &[MemberView],
) -> Result<Option<Vec<(String, String)>>, String> {
    let servers: Vec<ServerMember> = members
        .iter()
        .filter_map(|m| server_member(m, datacenter))
        .collect();
    for s in &servers {
        if s.expect.is_some_and(|e| e != expect) {
            return Err(format!(
                "Member {} has a conflicting expect value. All nodes should expect the same number.",
                s.name
            ));
        }
        if s.bootstrap {
            return Err(format!(
                "Member {} has bootstrap mode. Expect disabled.",
                s.name
            ));
        }
    }
    if servers.len() < expect as usize {
        return Ok(None);
    }
    let mut set: Vec<(String, String)> = servers.into_iter().map(|s| (s.id, s.addr)).collect();
    set.sort();
    set.dedup_by(|a, b| a.0 == b.0);
    if set.len() < expect as usize {
        return Ok(None);
    }
    Ok(Some(set))
}

/// Whether this server has any Raft state (then it never bootstraps).
fn has_raft_state(server: &ServerHandle) -> bool {
    let s = server.status();
    s.term > 0 || s.last_log_index > 0 || !s.voters.is_empty()
}

/// Ask each server of `set` (other than `self_addr`) for its Raft peers. `Ok(None)`:
/// none has any; `Ok(Some(addr))`: `addr` does; `Err`: one could not be asked.
async fn existing_peers(
    set: &[(String, String)],
    self_addr: &str,
    faults: &FaultRules,
) -> Result<Option<String>, String> {
    for (_, addr) in set.iter().filter(|(_, a)| a != self_addr) {
        let target = addr.parse().map_err(|e| format!("{addr}: {e}"))?;
        let options = ForwardOptions {
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(2),
            max_attempts: 1,
            faults: faults.clone(),
            ..ForwardOptions::default()
        };
        let api = Api::new(ForwardEndpoint::new(ServerList::new(vec![target]), options));
        match api.info(InfoRequest::Peers).await {
            Ok(InfoData::Peers(peers)) if !peers.is_empty() => return Ok(Some(addr.clone())),
            Ok(_) => {}
            Err(e) => return Err(format!("Failed to confirm peer status for {addr}: {e}")),
        }
    }
    Ok(None)
}

/// Run until this server bootstrapped, or found it has (or got) Raft state, or that a
/// cluster already exists.
pub async fn bootstrap_expect(
    server: ServerHandle,
    membership: Arc<dyn Membership>,
    datacenter: String,
    expect: u32,
    self_addr: String,
    faults: FaultRules,
) {
    if server.recovered_raft_state() || has_raft_state(&server) {
        info!("Raft data found, disabling bootstrap mode");
        return;
    }
    info!("bootstrap_expect: expecting {expect} servers");
    let mut last_problem = None;
    loop {
        if has_raft_state(&server) {
            info!("joined an existing raft cluster; bootstrap not needed");
            return;
        }
        match bootstrap_set(&datacenter, expect, &membership.members()) {
            Ok(Some(set)) => {
                match existing_peers(&set, &self_addr, &faults).await {
                    Ok(None) => {}
                    Ok(Some(addr)) => {
                        info!("Existing Raft peers reported by server at {addr}, disabling bootstrap mode");
                        return;
                    }
                    Err(problem) => {
                        warn!("{problem}");
                        tokio::time::sleep(BOOTSTRAP_POLL).await;
                        continue;
                    }
                }
                let nodes: Vec<String> = set
                    .iter()
                    .map(|(id, addr)| format!("{id}@{addr}"))
                    .collect();
                info!("Found expected number of peers, attempting bootstrap");
                info!("Attempting bootstrap with nodes: [{}]", nodes.join(" "));
                if server.bootstrap_with(set).await {
                    info!("bootstrapped the raft cluster with {} voters", nodes.len());
                } else {
                    info!("Raft data found, disabling bootstrap mode");
                }
                return;
            }
            Ok(None) => {}
            Err(problem) => {
                if last_problem.as_ref() != Some(&problem) {
                    warn!("{problem}");
                    last_problem = Some(problem);
                }
            }
        }
        tokio::time::sleep(BOOTSTRAP_POLL).await;
    }
}

/// Log leadership changes as Consul does ("New leader elected: <node>", "cluster
/// leadership acquired").
pub async fn log_leadership(server: ServerHandle, membership: Arc<dyn Membership>) {
    let mut events = server.events();
    let mut last_leader: Option<String> = None;
    loop {
        match events.recv().await {
            Ok(ServerEvent::RoleChanged { leader_id, .. }) => {
                if leader_id.is_some() && leader_id != last_leader {
                    let id = leader_id.clone().unwrap_or_default();
                    let name = membership
                        .members()
                        .into_iter()
                        .find(|m| m.tags.get("id") == Some(&id))
                        .map(|m| m.name)
                        .unwrap_or_else(|| id.clone());
                    info!("New leader elected: {name}");
                }
                last_leader = leader_id;
            }
            Ok(ServerEvent::LeadershipAcquired { .. }) => info!("cluster leadership acquired"),
            Ok(ServerEvent::LeadershipLost { .. }) => info!("cluster leadership lost"),
            Ok(_) => {}
            Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn server(name: &str, ip: &str, tags: &[(&str, &str)]) -> MemberView {
        let mut all: BTreeMap<String, String> = [
            ("role", "consul"),
            ("dc", "dc1"),
            ("id", name),
            ("port", "8300"),
            ("expect", "3"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        for (k, v) in tags {
            if v.is_empty() {
                all.remove(*k);
            } else {
                all.insert(k.to_string(), v.to_string());
            }
        }
        MemberView {
            name: name.into(),
            addr: ip.parse().unwrap(),
            port: 8301,
            tags: all,
            status: MemberStatus::Alive,
            protocol: (1, 5, 2),
            delegate: (2, 5, 4),
        }
    }

    fn client(name: &str, ip: &str) -> MemberView {
        server(name, ip, &[("role", "node"), ("expect", ""), ("port", "")])
    }

    #[test]
    fn bootstraps_only_once_the_expected_servers_are_seen_with_one_sorted_set() {
        let s1 = server("n1", "10.0.0.1", &[]);
        let s2 = server("n2", "10.0.0.2", &[]);
        let s3 = server("n3", "10.0.0.3", &[]);
        let c = client("c", "10.0.0.9");
        assert_eq!(
            bootstrap_set("dc1", 3, &[s1.clone(), s2.clone(), c.clone()]),
            Ok(None)
        );
        let want = Some(vec![
            ("n1".to_string(), "10.0.0.1:8300".to_string()),
            ("n2".to_string(), "10.0.0.2:8300".to_string()),
            ("n3".to_string(), "10.0.0.3:8300".to_string()),
        ]);
        // Every server computes the same set whatever order it sees the members in.
        assert_eq!(
            bootstrap_set("dc1", 3, &[s3.clone(), c.clone(), s1.clone(), s2.clone()]),
            Ok(want.clone())
        );
        assert_eq!(
            bootstrap_set("dc1", 3, &[s2.clone(), s1.clone(), s3.clone()]),
            Ok(want)
        );

        // Failed members, other datacenters and servers without id or port do not count.
        let mut failed = s3.clone();
        failed.status = MemberStatus::Failed;
        assert_eq!(
            bootstrap_set("dc1", 3, &[s1.clone(), s2.clone(), failed]),
            Ok(None)
        );
        let other_dc = server("n3", "10.0.0.3", &[("dc", "dc2")]);
        assert_eq!(
            bootstrap_set("dc1", 3, &[s1.clone(), s2.clone(), other_dc]),
            Ok(None)
        );
        let no_port = server("n3", "10.0.0.3", &[("port", "")]);
        assert_eq!(
            bootstrap_set("dc1", 3, &[s1.clone(), s2.clone(), no_port]),
            Ok(None)
        );
        // A server started without an expect value counts, as in Consul.
        let no_expect = server("n3", "10.0.0.3", &[("expect", "")]);
        assert!(
            matches!(bootstrap_set("dc1", 3, &[s1.clone(), s2.clone(), no_expect]), Ok(Some(v)) if v.len() == 3)
        );
    }

    #[test]
    fn disagreement_about_how_to_form_the_cluster_stops_bootstrap() {
        let s1 = server("n1", "10.0.0.1", &[]);
        let s2 = server("n2", "10.0.0.2", &[]);
        let odd = server("n3", "10.0.0.3", &[("expect", "5")]);
        let err = bootstrap_set("dc1", 3, &[s1.clone(), s2.clone(), odd]).unwrap_err();
        assert!(err.contains("n3 has a conflicting expect value"), "{err}");
        let boot = server("n3", "10.0.0.3", &[("expect", ""), ("bootstrap", "1")]);
        let err = bootstrap_set("dc1", 3, &[s1, s2, boot]).unwrap_err();
        assert!(err.contains("bootstrap mode"), "{err}");
    }
}
