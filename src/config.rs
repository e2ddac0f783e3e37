//! One Config for the agent: defaults, flags, config files, validation.
//! (Parsing is filled in by the CLI/config work; the struct is the shared contract.)

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

/// Listener ports; a negative value disables that listener (Consul's `-1`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    pub http: i32,
    pub https: i32,
    pub dns: i32,
    pub server: i32,
    pub serf_lan: i32,
    pub serf_wan: i32,
    pub grpc: i32,
    pub grpc_tls: i32,
}

impl Default for Ports {
    fn default() -> Self {
        Ports { http: 8500, https: -1, dns: 8600, server: 8300, serf_lan: 8301, serf_wan: 8302, grpc: -1, grpc_tls: -1 }
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    pub node_name: String,
    /// Node UUID; generated once and persisted in the data dir (fresh per run with -dev).
    pub node_id: String,
    pub datacenter: String,
    pub data_dir: Option<PathBuf>,
    pub dev: bool,
    pub server: bool,
    pub bootstrap: bool,
    pub bootstrap_expect: Option<u32>,
    pub bind_addr: IpAddr,
    pub advertise_addr: Option<IpAddr>,
    /// HTTP and DNS listen on every one of these.
    pub client_addrs: Vec<IpAddr>,
    pub ports: Ports,
    /// DNS domain with trailing dot, lower case (`consul.`).
    pub domain: String,
    /// Upstream DNS servers as `ip:port` (port 53 when not given).
    pub recursors: Vec<std::net::SocketAddr>,
    pub retry_join: Vec<String>,
    pub enable_script_checks: bool,
    pub log_level: String,
    pub raft_multiplier: u32,
    pub ui: bool,
    pub node_meta: BTreeMap<String, String>,
    /// Answer JSON indented even without ?pretty (Consul does so in -dev).
    pub pretty_json: bool,
}

impl Config {
    /// The address other nodes reach this one on.
    pub fn advertise(&self) -> IpAddr {
        self.advertise_addr.unwrap_or(self.bind_addr)
    }

    /// `ip:port` of the server RPC listener, as `/v1/status/leader` reports it.
    pub fn server_rpc_addr(&self) -> String {
        std::net::SocketAddr::new(self.advertise(), self.ports.server.max(0) as u16).to_string()
    }
}
