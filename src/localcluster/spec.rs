//! What a local cluster is: how many servers and clients, from which loopback address,
//! under which folder, run by which binary with which extra agent arguments; and from
//! that, every node's name, role, address, folders and exact agent command line.
//!
//! Nodes are numbered from 0 in code (`node` arguments) and named from 1 (`node1` ...),
//! servers first: node `i` listens on `base + i`, so `-servers 3 -clients 2` from
//! 127.0.0.21 gives servers .21-.23 and clients .24-.25. Every node has its own address,
//! so every node uses the standard ports.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub const MAX_SERVERS: usize = 7;
pub const MAX_CLIENTS: usize = 16;
pub const DEFAULT_BASE: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 21);
pub const DEFAULT_DIR: &str = "/tmp/cairn-cluster";

/// The standard ports every node uses on its own address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ports {
    pub http: u16,
    pub dns: u16,
    pub serf_lan: u16,
    pub server: u16,
}

pub const PORTS: Ports = Ports {
    http: 8500,
    dns: 8600,
    serf_lan: 8301,
    server: 8300,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Server,
    Client,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Server => "server",
            Role::Client => "client",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterSpec {
    pub servers: usize,
    pub clients: usize,
    /// The first node's address; node `i` gets `base + i`.
    pub base: Ipv4Addr,
    /// Everything of the cluster lives under it: `nodeN/data`, `nodeN/agent.log`,
    /// `cluster.json`.
    pub dir: PathBuf,
    /// The `cairn` binary the agents run.
    pub binary: PathBuf,
    /// Appended to every agent's command line (e.g. `-debug-unsafe-local-reads`).
    pub agent_args: Vec<String>,
}

impl ClusterSpec {
    /// `servers` and `clients` from [`DEFAULT_BASE`], no extra arguments.
    pub fn new(servers: usize, clients: usize, dir: &Path, binary: &Path) -> ClusterSpec {
        ClusterSpec {
            servers,
            clients,
            base: DEFAULT_BASE,
            dir: dir.to_path_buf(),
            binary: binary.to_path_buf(),
            agent_args: Vec::new(),
        }
    }

    /// Refuse shapes the cluster cannot have; the text is for the user.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_SERVERS).contains(&self.servers) {
            return Err(format!(
                "-servers must be between 1 and {MAX_SERVERS}, not {}",
                self.servers
            ));
        }
        if self.clients > MAX_CLIENTS {
            return Err(format!(
                "-clients must be between 0 and {MAX_CLIENTS}, not {}",
                self.clients
            ));
        }
        if !self.base.is_loopback() {
            return Err(format!(
                "-base must be a loopback address (127.x.y.z), not {}",
                self.base
            ));
        }
        let last = u32::from(self.base) + (self.node_count() as u32 - 1);
        let last = Ipv4Addr::from(last);
        if !last.is_loopback() || last.octets()[3] == 255 || self.base.octets()[3] == 0 {
            return Err(format!(
                "-base {}: the {} addresses from it must stay within 127.0.0.1-127.255.255.254 \
                 and avoid .0 and .255",
                self.base,
                self.node_count()
            ));
        }
        if self.dir.as_os_str().is_empty() {
            return Err("-dir must not be empty".into());
        }
        Ok(())
    }

    pub fn node_count(&self) -> usize {
        self.servers + self.clients
    }

    pub fn name(&self, node: usize) -> String {
        format!("node{}", node + 1)
    }

    pub fn role(&self, node: usize) -> Role {
        if node < self.servers {
            Role::Server
        } else {
            Role::Client
        }
    }

    /// `base + node`; [`ClusterSpec::validate`] makes sure it stays in 127/8.
    pub fn ip(&self, node: usize) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.base).wrapping_add(node as u32))
    }

    pub fn node_dir(&self, node: usize) -> PathBuf {
        self.dir.join(self.name(node))
    }

    pub fn data_dir(&self, node: usize) -> PathBuf {
        self.node_dir(node).join("data")
    }

    pub fn log_path(&self, node: usize) -> PathBuf {
        self.node_dir(node).join("agent.log")
    }

    /// The agent command line of `node` (without the binary): servers expect all the
    /// servers (`-bootstrap-expect 1` is plain bootstrap mode in cairn, as in Consul),
    /// every agent joins the other servers and takes fault rules over HTTP.
    pub fn agent_args(&self, node: usize) -> Vec<String> {
        let ip = self.ip(node).to_string();
        let mut args = vec!["agent".to_string()];
        if self.role(node) == Role::Server {
            args.extend([
                "-server".to_string(),
                "-bootstrap-expect".to_string(),
                self.servers.to_string(),
            ]);
        }
        args.extend([
            "-node".to_string(),
            self.name(node),
            "-bind".to_string(),
            ip.clone(),
            "-client".to_string(),
            ip,
            "-data-dir".to_string(),
            self.data_dir(node).display().to_string(),
            "-fault-injection".to_string(),
        ]);
        // Every other server, not just node1: `-join` is retried until one answers, so
        // an agent restarted while node1 is down still finds the cluster.
        for server in (0..self.servers).filter(|&s| s != node) {
            args.extend(["-join".to_string(), self.ip(server).to_string()]);
        }
        args.extend(self.agent_args.iter().cloned());
        args
    }

    /// Whether a cluster started from `other` is the one this spec asks for.
    pub fn same_shape(&self, other: &ClusterSpec) -> bool {
        self.servers == other.servers
            && self.clients == other.clients
            && self.base == other.base
            && self.agent_args == other.agent_args
    }

    /// `3 servers and 2 clients from 127.0.0.21`, for messages.
    pub fn describe(&self) -> String {
        let plural = |n: usize, word: &str| format!("{n} {word}{}", if n == 1 { "" } else { "s" });
        let mut text = format!(
            "{} and {} from {}",
            plural(self.servers, "server"),
            plural(self.clients, "client"),
            self.base
        );
        if !self.agent_args.is_empty() {
            text.push_str(&format!(" with {}", self.agent_args.join(" ")));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(servers: usize, clients: usize) -> ClusterSpec {
        ClusterSpec::new(
            servers,
            clients,
            Path::new("/tmp/c"),
            Path::new("/bin/cairn"),
        )
    }

    #[test]
    fn names_roles_and_addresses_follow_the_readme() {
        let s = spec(3, 2);
        assert_eq!(s.node_count(), 5);
        let ips: Vec<String> = (0..5).map(|i| s.ip(i).to_string()).collect();
        assert_eq!(
            ips,
            [
                "127.0.0.21",
                "127.0.0.22",
                "127.0.0.23",
                "127.0.0.24",
                "127.0.0.25"
            ]
        );
        assert_eq!(s.name(0), "node1");
        assert_eq!(s.name(4), "node5");
        assert_eq!(s.role(2), Role::Server);
        assert_eq!(s.role(3), Role::Client);
        assert_eq!(s.data_dir(1), Path::new("/tmp/c/node2/data"));
        assert_eq!(s.log_path(1), Path::new("/tmp/c/node2/agent.log"));
    }

    #[test]
    fn agent_command_lines() {
        let mut s = spec(3, 1);
        s.agent_args = vec!["-debug-unsafe-local-reads".into()];
        assert_eq!(
            s.agent_args(0).join(" "),
            "agent -server -bootstrap-expect 3 -node node1 -bind 127.0.0.21 -client 127.0.0.21 \
             -data-dir /tmp/c/node1/data -fault-injection -join 127.0.0.22 -join 127.0.0.23 \
             -debug-unsafe-local-reads"
        );
        assert_eq!(
            s.agent_args(2).join(" "),
            "agent -server -bootstrap-expect 3 -node node3 -bind 127.0.0.23 -client 127.0.0.23 \
             -data-dir /tmp/c/node3/data -fault-injection -join 127.0.0.21 -join 127.0.0.22 \
             -debug-unsafe-local-reads"
        );
        assert_eq!(
            s.agent_args(3).join(" "),
            "agent -node node4 -bind 127.0.0.24 -client 127.0.0.24 \
             -data-dir /tmp/c/node4/data -fault-injection -join 127.0.0.21 -join 127.0.0.22 \
             -join 127.0.0.23 -debug-unsafe-local-reads"
        );
        let single = spec(1, 0);
        assert!(!single.agent_args(0).contains(&"-join".to_string()));
    }

    #[test]
    fn shapes_are_validated() {
        assert!(spec(1, 0).validate().is_ok());
        assert!(spec(7, 16).validate().is_ok());
        assert_eq!(
            spec(0, 1).validate().unwrap_err(),
            "-servers must be between 1 and 7, not 0"
        );
        assert_eq!(
            spec(8, 0).validate().unwrap_err(),
            "-servers must be between 1 and 7, not 8"
        );
        assert_eq!(
            spec(1, 17).validate().unwrap_err(),
            "-clients must be between 0 and 16, not 17"
        );
        let mut s = spec(3, 0);
        s.base = Ipv4Addr::new(10, 0, 0, 1);
        assert!(s.validate().unwrap_err().contains("loopback"));
        s.base = Ipv4Addr::new(127, 0, 0, 253);
        assert!(s.validate().unwrap_err().contains("avoid .0 and .255"));
        s.base = Ipv4Addr::new(127, 0, 1, 1);
        assert!(s.validate().is_ok());
    }

    #[test]
    fn shape_comparison_and_description() {
        let a = spec(3, 2);
        let mut b = spec(3, 2);
        b.binary = PathBuf::from("/other/cairn");
        assert!(a.same_shape(&b));
        b.clients = 1;
        assert!(!a.same_shape(&b));
        assert_eq!(a.describe(), "3 servers and 2 clients from 127.0.0.21");
        assert_eq!(
            spec(1, 1).describe(),
            "1 server and 1 client from 127.0.0.21"
        );
    }
}
