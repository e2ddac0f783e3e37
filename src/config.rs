//! One Config for the agent: defaults, flags, config files, validation.
//!
//! Sources (config files in order, then command-line flags) each produce a
//! [`ConfigSource`]; they are merged (later scalars win, lists append) and
//! [`build::build`] turns the result into a validated [`Config`]. Nothing here exits the
//! process: every failure is a typed [`ConfigError`] whose Display text is the line
//! `main` prints after `==> `.

pub mod build;
pub mod file;
pub mod host;
pub mod node_id;
pub mod source;

pub use build::{build, Built};
pub use source::{AutopilotSource, ConfigSource, GossipLanSource, PortsSource};

use protocol::swim::SwimConfig;

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
        Ports {
            http: 8500,
            https: -1,
            dns: 8600,
            server: 8300,
            serf_lan: 8301,
            serf_wan: 8302,
            grpc: -1,
            grpc_tls: -1,
        }
    }
}

/// Consul's `gossip_lan` knobs, resolved: memberlist's LAN defaults, Consul's dev values
/// under `-dev`, then whatever the config files say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GossipLan {
    /// Members each gossip round sends queued updates to.
    pub gossip_nodes: usize,
    pub gossip_interval_ms: u64,
    pub probe_interval_ms: u64,
    pub probe_timeout_ms: u64,
    /// Updates are retransmitted `retransmit_mult * ceil(log10(n + 1))` times.
    pub retransmit_mult: u32,
    /// Suspicion lasts at least `suspicion_mult * max(1, log10(n)) * probe_interval`.
    pub suspicion_mult: u32,
}

impl Default for GossipLan {
    /// cairn's agent gossip timings (memberlist's LAN config, probing faster; see
    /// `SwimConfig::agent`).
    fn default() -> Self {
        let lan = SwimConfig::agent();
        GossipLan {
            gossip_nodes: lan.gossip_nodes,
            gossip_interval_ms: lan.gossip_interval_ms,
            probe_interval_ms: lan.probe_interval_ms,
            probe_timeout_ms: lan.probe_timeout_ms,
            retransmit_mult: lan.retransmit_mult,
            suspicion_mult: lan.suspicion_mult,
        }
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
    /// `-fault-injection`: fault rules may be set over HTTP (test clusters only).
    pub fault_injection: bool,
    /// `-debug-unsafe-local-reads`: servers answer default reads from their own store,
    /// unconfirmed (deliberately breaks linearizability; for `cairn chaos` to catch).
    pub debug_unsafe_local_reads: bool,
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
    /// Script checks from config files only (`enable_local_script_checks`).
    pub enable_local_script_checks: bool,
    /// Base of the anti-entropy full-sync interval (Consul's 1 min, scaled by cluster
    /// size; `-debug-anti-entropy-interval` shortens it for tests).
    pub anti_entropy_interval_ms: u64,
    /// How long an output-only check change may wait to be synced (`check_update_interval`).
    pub check_update_interval_ms: u64,
    /// Floor of `DeregisterCriticalServiceAfter` (`check_deregister_interval_min`, 1 min).
    pub check_deregister_interval_min_ms: u64,
    /// `service`/`services` blocks of the config files, as written.
    pub service_definitions: Vec<serde_json::Value>,
    /// `check`/`checks` blocks of the config files, as written.
    pub check_definitions: Vec<serde_json::Value>,
    /// The `-config-file`/`-config-dir` paths, read again by a reload.
    pub config_paths: Vec<file::ConfigPath>,
    pub log_level: String,
    pub raft_multiplier: u32,
    /// Explicit Raft timings (`performance.raft_election_timeout`,
    /// `performance.raft_heartbeat_interval`); each overrides what the multiplier gives.
    pub raft_election_timeout_ms: Option<u64>,
    pub raft_heartbeat_interval_ms: Option<u64>,
    /// Entries applied between Raft snapshots (Consul's `raft_snapshot_threshold`; 0 = off).
    pub raft_snapshot_threshold: u64,
    /// Entries kept in the log behind a snapshot (Consul's `raft_trailing_logs`).
    pub raft_trailing_logs: u64,
    /// Budget of the Raft log cache: payload bytes and number of the log entries held
    /// in memory, and read whole at a restart (`raft_log_cache_mb`,
    /// `raft_log_cache_entries`); older entries are read back from disk when needed.
    pub raft_log_cache_bytes: usize,
    pub raft_log_cache_entries: usize,
    pub ui: bool,
    pub node_meta: BTreeMap<String, String>,
    /// Answer JSON indented even without ?pretty (Consul does so in -dev).
    pub pretty_json: bool,
    /// Pause between join attempts (`-retry-interval`, default 30s); used by the
    /// membership work.
    pub retry_interval_ms: u64,
    /// LAN gossip timings and fan-out (`gossip_lan`); see [`Config::swim_config`].
    pub gossip_lan: GossipLan,
    /// Failed members are forgotten after this long (`reconnect_timeout`, default 72h,
    /// at least 8h).
    pub reconnect_timeout_ms: u64,
    /// Join attempts before the agent gives up and exits 1 (`-retry-max`); 0 = forever.
    pub retry_max: u32,
    /// Leave the cluster gracefully on SIGTERM (default: clients yes, servers no).
    pub leave_on_terminate: bool,
    /// Stay a member on SIGINT instead of leaving (default: servers yes, clients no).
    pub skip_leave_on_interrupt: bool,
    /// Rejoin at start even after a graceful leave (`-rejoin`).
    pub rejoin_after_leave: bool,
    /// Consul's `autopilot` settings (server stabilization, dead-server cleanup).
    pub autopilot: protocol::autopilot::AutopilotConfig,
    /// KV tombstones are reaped this long after their delete (`tombstone_ttl`, 15m).
    pub tombstone_ttl_ms: u64,
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

    /// The Raft timings: the multiplier's, with any explicit one in its place.
    pub fn raft_timing(&self) -> protocol::raft::RaftTiming {
        let scaled = protocol::raft::RaftTiming::with_multiplier(self.raft_multiplier);
        protocol::raft::RaftTiming {
            election_timeout_ms: self
                .raft_election_timeout_ms
                .unwrap_or(scaled.election_timeout_ms),
            heartbeat_interval_ms: self
                .raft_heartbeat_interval_ms
                .unwrap_or(scaled.heartbeat_interval_ms),
        }
    }

    /// The SWIM core's settings for the LAN pool: memberlist's LAN defaults with this
    /// agent's `gossip_lan` knobs and `reconnect_timeout` applied.
    pub fn swim_config(&self) -> SwimConfig {
        let g = &self.gossip_lan;
        SwimConfig {
            gossip_nodes: g.gossip_nodes,
            gossip_interval_ms: g.gossip_interval_ms,
            probe_interval_ms: g.probe_interval_ms,
            probe_timeout_ms: g.probe_timeout_ms,
            retransmit_mult: g.retransmit_mult,
            suspicion_mult: g.suspicion_mult,
            reconnect_timeout_ms: self.reconnect_timeout_ms,
            ..SwimConfig::agent()
        }
    }

    /// A dev-mode config with every default, for tests of other modules.
    pub fn dev_for_tests() -> Config {
        Config {
            node_name: "test-node".to_string(),
            node_id: "00000000-0000-4000-8000-000000000001".to_string(),
            datacenter: "dc1".to_string(),
            data_dir: None,
            dev: true,
            fault_injection: false,
            debug_unsafe_local_reads: false,
            server: true,
            bootstrap: true,
            bootstrap_expect: None,
            bind_addr: IpAddr::from([127, 0, 0, 1]),
            advertise_addr: None,
            client_addrs: vec![IpAddr::from([127, 0, 0, 1])],
            ports: Ports::default(),
            domain: "consul.".to_string(),
            recursors: Vec::new(),
            retry_join: Vec::new(),
            enable_script_checks: false,
            enable_local_script_checks: false,
            anti_entropy_interval_ms: build::DEFAULT_ANTI_ENTROPY_INTERVAL_MS,
            check_update_interval_ms: build::DEFAULT_CHECK_UPDATE_INTERVAL_MS,
            check_deregister_interval_min_ms: build::DEFAULT_CHECK_DEREGISTER_INTERVAL_MIN_MS,
            service_definitions: Vec::new(),
            check_definitions: Vec::new(),
            config_paths: Vec::new(),
            log_level: "info".to_string(),
            raft_multiplier: 1,
            raft_election_timeout_ms: None,
            raft_heartbeat_interval_ms: None,
            raft_snapshot_threshold: actors::DEFAULT_SNAPSHOT_THRESHOLD,
            raft_trailing_logs: actors::DEFAULT_TRAILING_LOGS,
            raft_log_cache_bytes: protocol::raft::LOG_CACHE_BYTES,
            raft_log_cache_entries: protocol::raft::LOG_CACHE_ENTRIES,
            ui: true,
            node_meta: BTreeMap::new(),
            pretty_json: true,
            retry_interval_ms: build::DEFAULT_RETRY_INTERVAL_MS,
            // What `-dev` builds to (Consul's DevSource gossip values).
            gossip_lan: GossipLan {
                gossip_interval_ms: 100,
                probe_interval_ms: 100,
                probe_timeout_ms: 100,
                suspicion_mult: 3,
                ..GossipLan::default()
            },
            reconnect_timeout_ms: build::DEFAULT_RECONNECT_TIMEOUT_MS,
            retry_max: 0,
            leave_on_terminate: false,
            skip_leave_on_interrupt: true,
            rejoin_after_leave: false,
            autopilot: protocol::autopilot::AutopilotConfig::default(),
            tombstone_ttl_ms: protocol::tombstone_gc::DEFAULT_TOMBSTONE_TTL_MS,
        }
    }
}

/// Why a configuration was refused. Display texts follow Consul's wording where Consul has
/// one; `main` prints them as `==> <text>` and exits 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A command-line problem (unknown flag, missing or malformed value).
    #[error("{0}")]
    Flag(String),
    /// A config file could not be read or has a value of the wrong type.
    #[error("Error parsing {file}: {message}")]
    File { file: String, message: String },
    /// A config file or dir could not be read at all.
    #[error("{0}")]
    Io(String),
    /// The merged configuration breaks a rule.
    #[error("{0}")]
    Invalid(String),
}
