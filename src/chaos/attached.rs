//! `cairn chaos -attach ADDR,...`: drive cairn agents that something else started. The
//! harness knows only their HTTP addresses, so it cannot kill or pause them; it can
//! partition them and slow their disks when they run with `-fault-injection` (through
//! `/v1/cairn/faults`), and it heals whatever it did and leaves them running.

use super::target::{Cluster, FaultKind, KvClient, NodeInfo};
use crate::localcluster::chaos_target::{kv_snapshot, set_disk_stall, CairnKv};
use crate::localcluster::faults::{apply_rules, clear_rules, cut_peers};
use crate::localcluster::http;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::time::Duration;

/// How long one agent may take to describe itself or name its leader.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// Running agents, as `/v1/agent/self` describes them.
pub struct AttachedCluster {
    nodes: Vec<NodeInfo>,
    /// Each node's gossip/server address: what fault rules name.
    ips: Vec<Ipv4Addr>,
    /// Every agent has `/v1/cairn/faults` (started with `-fault-injection`).
    faults: bool,
}

impl AttachedCluster {
    /// Ask every agent at `addrs` (`ip:port` of its HTTP API) who it is.
    pub fn connect(addrs: &[String]) -> Result<AttachedCluster, String> {
        let mut nodes = Vec::new();
        let mut ips = Vec::new();
        for addr in addrs {
            let (node, ip) = describe(addr)?;
            if let Some(twin) = nodes.iter().find(|n: &&NodeInfo| n.name == node.name) {
                return Err(format!(
                    "{addr} and {} are the same node {:?}",
                    twin.api_addr, node.name
                ));
            }
            nodes.push(node);
            ips.push(ip);
        }
        if !nodes.iter().any(|n| n.server) {
            return Err("none of the -attach agents is a server".into());
        }
        let faults = nodes.iter().all(|n| has_fault_endpoint(&n.api_addr));
        Ok(AttachedCluster { nodes, ips, faults })
    }
}

/// The node at `addr` and the IP its peers know it by.
fn describe(addr: &str) -> Result<(NodeInfo, Ipv4Addr), String> {
    let url = format!("http://{addr}/v1/agent/self");
    let (status, body) = http::call("GET", &url, None, ASK_TIMEOUT)?;
    if status != 200 {
        return Err(format!("GET {url}: {status} {}", body.trim()));
    }
    let me: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))?;
    let name = me["Config"]["NodeName"]
        .as_str()
        .ok_or_else(|| format!("GET {url}: no Config.NodeName"))?;
    let ip = me["Member"]["Addr"]
        .as_str()
        .and_then(|a| a.parse::<Ipv4Addr>().ok())
        .ok_or_else(|| format!("GET {url}: no IPv4 Member.Addr"))?;
    let node = NodeInfo {
        name: name.to_string(),
        server: me["Config"]["Server"].as_bool().unwrap_or(false),
        api_addr: addr.to_string(),
    };
    Ok((node, ip))
}

fn has_fault_endpoint(addr: &str) -> bool {
    let url = format!("http://{addr}/v1/cairn/faults");
    matches!(http::call("GET", &url, None, ASK_TIMEOUT), Ok((200, _)))
}

const NOT_OURS: &str = "an attached cluster's processes are not ours to kill, pause or restart";

impl Cluster for AttachedCluster {
    fn nodes(&self) -> Vec<NodeInfo> {
        self.nodes.clone()
    }

    fn client(&self, node: usize, timeout: Duration) -> Box<dyn KvClient> {
        let addr = self
            .nodes
            .get(node)
            .map_or("127.0.0.1:1", |n| n.api_addr.as_str());
        Box::new(CairnKv::new(addr, timeout))
    }

    fn supports(&self, fault: FaultKind) -> bool {
        matches!(fault, FaultKind::Partition | FaultKind::SlowDisk) && self.faults
    }

    fn leader(&self) -> Option<usize> {
        self.nodes
            .iter()
            .filter(|n| n.server)
            .find_map(|n| http::leader_of(&n.api_addr, ASK_TIMEOUT))
            .and_then(|leader| {
                let ip = leader.rsplit_once(':')?.0.parse::<Ipv4Addr>().ok()?;
                self.ips.iter().position(|&i| i == ip)
            })
    }

    fn kill(&mut self, _: usize) -> Result<(), String> {
        Err(NOT_OURS.into())
    }

    fn restart(&mut self, _: usize) -> Result<(), String> {
        Err(NOT_OURS.into())
    }

    fn pause(&mut self, _: usize) -> Result<(), String> {
        Err(NOT_OURS.into())
    }

    fn resume(&mut self, _: usize) -> Result<(), String> {
        Err(NOT_OURS.into())
    }

    fn partition(&mut self, groups: &[Vec<usize>]) -> Result<(), String> {
        for (node, n) in self.nodes.iter().enumerate() {
            let peers: BTreeSet<Ipv4Addr> = cut_peers(groups, node)
                .into_iter()
                .filter_map(|p| self.ips.get(p).copied())
                .collect();
            apply_rules(&n.api_addr, &peers, None)?;
        }
        Ok(())
    }

    fn heal(&mut self) -> Result<(), String> {
        for n in &self.nodes {
            clear_rules(&n.api_addr)?;
        }
        Ok(())
    }

    fn cycle_membership(&mut self, _: usize) -> Result<(), String> {
        Err(NOT_OURS.into())
    }

    fn slow_disk(&mut self, node: usize, stall: Option<Duration>) -> Result<(), String> {
        let n = self
            .nodes
            .get(node)
            .ok_or_else(|| format!("no node {node}"))?;
        set_disk_stall(&n.api_addr, stall)
    }

    fn local_snapshot(
        &self,
        node: usize,
        prefix: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        let n = self
            .nodes
            .get(node)
            .ok_or_else(|| format!("no node {node}"))?;
        kv_snapshot(&n.api_addr, prefix)
    }

    /// Leaves the agents running, with every fault rule this run could have set lifted.
    fn shutdown(&mut self) {
        if self.faults {
            let _ = self.heal();
        }
    }
}
