//! A three-server cluster (plus a client agent) on loopback for fault tests: start it,
//! find and name the leader, and set fault rules through `/v1/cairn/faults`.

use super::{http_client, wait_for, Agent};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

/// Servers `servers[i]` (node `s{i}`), one client agent, all started with `extra`.
pub struct Cluster {
    pub servers: Vec<Agent>,
    pub client: Agent,
}

impl Cluster {
    /// Start the servers (`-bootstrap-expect` their count, joining the first) and a
    /// client agent, and wait until every server names the same leader and the client
    /// agent answers.
    pub fn start(dir: &Path, servers: &[&str], client: &str, extra: &[&str]) -> Cluster {
        let expect = servers.len() as u32;
        let mut agents: Vec<Agent> = servers
            .iter()
            .enumerate()
            .map(|(i, ip)| {
                let join: &[&str] = if i == 0 { &[] } else { &servers[..1] };
                let data = dir.join(format!("s{i}"));
                Agent::server_expect_with(ip, &format!("s{i}"), &data, expect, join, extra)
            })
            .collect();
        wait_for("one leader named by every server", || {
            for s in agents.iter_mut() {
                assert!(!s.exited(), "server {} exited:\n{}", s.ip, s.log_text());
            }
            agreed_leader(&agents.iter().collect::<Vec<_>>())
        });
        let join = ["-join", servers[0]];
        let extra: Vec<&str> = join.iter().chain(extra).copied().collect();
        let mut client = Agent::client_with(client, "c0", &dir.join("c0"), &extra);
        client.wait_ready();
        Cluster {
            servers: agents,
            client,
        }
    }

    /// Index of the server every live server names as leader, once they agree.
    pub fn wait_leader(&self, among: &[usize]) -> usize {
        let agents: Vec<&Agent> = among.iter().map(|i| &self.servers[*i]).collect();
        let leader = wait_for("a leader named by the servers", || agreed_leader(&agents));
        self.index_of(&leader)
    }

    /// Index of the server whose server address is `addr` (`ip:8300`).
    pub fn index_of(&self, addr: &str) -> usize {
        self.servers
            .iter()
            .position(|s| server_addr(s) == addr)
            .unwrap_or_else(|| panic!("{addr} is not a server of this cluster"))
    }

    /// Every agent's HTTP base URL: the servers, then the client agent.
    pub fn urls(&self) -> Vec<String> {
        self.servers
            .iter()
            .chain([&self.client])
            .map(|a| a.url(""))
            .collect()
    }

    pub fn server_urls(&self) -> Vec<String> {
        self.servers.iter().map(|a| a.url("")).collect()
    }

    /// Cut `a` off from `b` both ways (gossip, Raft, RPC).
    pub fn partition(&self, a: usize, b: usize) {
        set_fault(&self.servers[a], &self.servers[b].ip, "drop");
        set_fault(&self.servers[b], &self.servers[a].ip, "drop");
    }

    /// Lift every fault rule on every agent.
    pub fn heal(&self) {
        for agent in self.servers.iter().chain([&self.client]) {
            let response = http_client()
                .delete(agent.url("/v1/cairn/faults"))
                .send()
                .expect("clear faults");
            assert!(response.status().is_success(), "{}", agent.ip);
        }
    }
}

pub fn server_addr(agent: &Agent) -> String {
    format!("{}:8300", agent.ip)
}

/// Make `agent` apply `rule` to all traffic with `peer_ip`.
pub fn set_fault(agent: &Agent, peer_ip: &str, rule: &str) {
    let url = agent.url(&format!("/v1/cairn/faults/{peer_ip}?rule={rule}"));
    let response = http_client().put(url).send().expect("set fault");
    assert!(
        response.status().is_success(),
        "fault rule on {}: {}",
        agent.ip,
        response.text().unwrap_or_default()
    );
}

/// The leader `agent` names (`ip:8300`), if any.
pub fn leader_of(agent: &Agent) -> Option<String> {
    let text = short_client()
        .get(agent.url("/v1/status/leader"))
        .send()
        .ok()?
        .text()
        .ok()?;
    let leader: String = serde_json::from_str(&text).ok()?;
    (!leader.is_empty()).then_some(leader)
}

/// Whether `agent` answers `/v1/status/leader` with "" (no leader known).
pub fn names_no_leader(agent: &Agent) -> bool {
    let text = short_client()
        .get(agent.url("/v1/status/leader"))
        .send()
        .ok()
        .and_then(|r| r.text().ok());
    text.is_some_and(|t| t.trim() == "\"\"")
}

/// The leader every one of `agents` names, once they all agree.
pub fn agreed_leader(agents: &[&Agent]) -> Option<String> {
    let leaders: BTreeSet<Option<String>> = agents.iter().map(|a| leader_of(a)).collect();
    match leaders.into_iter().collect::<Vec<_>>().as_slice() {
        [Some(leader)] => Some(leader.clone()),
        _ => None,
    }
}

/// The servers `agent` lists in `/v1/status/peers` (`ip:8300`).
pub fn peers_of(agent: &Agent) -> Option<BTreeSet<String>> {
    let peers: serde_json::Value = http_client()
        .get(agent.url("/v1/status/peers"))
        .send()
        .ok()?
        .json()
        .ok()?;
    Some(
        peers
            .as_array()?
            .iter()
            .filter_map(|p| p.as_str().map(String::from))
            .collect(),
    )
}

/// PUT through `agent`; true once acknowledged.
pub fn put(agent: &Agent, key: &str, value: &str) -> bool {
    let response = http_client()
        .put(agent.url(&format!("/v1/kv/{key}")))
        .body(value.to_string())
        .send();
    let Ok(response) = response else {
        return false;
    };
    response.status().is_success() && response.text().is_ok_and(|t| t.trim() == "true")
}

/// GET `?raw` in a consistency mode ("consistent", "stale" or "" for the default).
pub fn get_raw(agent: &Agent, key: &str, mode: &str) -> Option<String> {
    let url = agent.url(&format!("/v1/kv/{key}?raw&{mode}"));
    let response = http_client().get(url).send().ok()?;
    if !response.status().is_success() {
        return None;
    }
    response.text().ok()
}

/// For status polls: a stopped agent must not hold a poll for the usual 10 s.
fn short_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("http client")
}
