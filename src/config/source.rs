//! One source of configuration (a config file or the command line), every field optional,
//! and the merge rule between sources: later scalars replace earlier ones, lists append,
//! maps merge key by key.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// Ports as one source gives them; `None` means "not set here".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PortsSource {
    pub http: Option<i32>,
    pub https: Option<i32>,
    pub dns: Option<i32>,
    pub server: Option<i32>,
    pub serf_lan: Option<i32>,
    pub serf_wan: Option<i32>,
    pub grpc: Option<i32>,
    pub grpc_tls: Option<i32>,
}

/// Consul's `gossip_lan` block as one source gives it: memberlist knobs for the LAN pool.
/// Durations stay Go duration text (`"200ms"`) until `build` parses them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GossipLanSource {
    pub gossip_nodes: Option<i64>,
    pub gossip_interval: Option<String>,
    pub probe_interval: Option<String>,
    pub probe_timeout: Option<String>,
    pub retransmit_mult: Option<i64>,
    pub suspicion_mult: Option<i64>,
}

/// Consul's `autopilot` block as one source gives it (durations as Go duration text).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AutopilotSource {
    pub cleanup_dead_servers: Option<bool>,
    pub last_contact_threshold: Option<String>,
    pub max_trailing_logs: Option<i64>,
    pub server_stabilization_time: Option<String>,
}

impl AutopilotSource {
    fn merge(self, other: AutopilotSource) -> AutopilotSource {
        AutopilotSource {
            cleanup_dead_servers: later(self.cleanup_dead_servers, other.cleanup_dead_servers),
            last_contact_threshold: later(
                self.last_contact_threshold,
                other.last_contact_threshold,
            ),
            max_trailing_logs: later(self.max_trailing_logs, other.max_trailing_logs),
            server_stabilization_time: later(
                self.server_stabilization_time,
                other.server_stabilization_time,
            ),
        }
    }
}

/// Everything one source can say. Addresses stay text here; `build` parses and validates
/// them once every source is merged, so the error names the final value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigSource {
    pub dev: Option<bool>,
    /// `-fault-injection` (cairn's, for test clusters).
    pub fault_injection: Option<bool>,
    /// `-debug-unsafe-local-reads` (cairn's, to prove the chaos checker catches stale reads).
    pub debug_unsafe_local_reads: Option<bool>,
    pub node_name: Option<String>,
    pub node_id: Option<String>,
    pub datacenter: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub server: Option<bool>,
    pub bootstrap: Option<bool>,
    pub bootstrap_expect: Option<i64>,
    pub bind_addr: Option<String>,
    pub advertise_addr: Option<String>,
    /// Space-separated list, as Consul takes it.
    pub client_addr: Option<String>,
    pub ports: PortsSource,
    pub domain: Option<String>,
    pub recursors: Vec<String>,
    /// `-join`, `-retry-join`, `start_join` and `retry_join` all land here (Consul 1.15
    /// made `-join` an alias of `-retry-join`).
    pub retry_join: Vec<String>,
    /// Go duration text (`30s`, `1m`).
    pub retry_interval: Option<String>,
    pub enable_script_checks: Option<bool>,
    /// `enable_local_script_checks`: script checks from config files only.
    pub enable_local_script_checks: Option<bool>,
    /// `service`/`services` blocks of config files, as written (decoded by the agent's
    /// local state with the same rules as `/v1/agent/service/register`).
    pub service_definitions: Vec<serde_json::Value>,
    /// `check`/`checks` blocks of config files, as written.
    pub check_definitions: Vec<serde_json::Value>,
    /// Consul's `check_update_interval` (Go duration text).
    pub check_update_interval: Option<String>,
    /// `-debug-anti-entropy-interval` (cairn's, for tests): the full sync's base interval.
    pub debug_anti_entropy_interval: Option<String>,
    /// `check_deregister_interval_min` (Consul's internal floor; cairn lets tests lower it).
    pub check_deregister_interval_min: Option<String>,
    pub log_level: Option<String>,
    pub raft_multiplier: Option<i64>,
    /// `performance.raft_election_timeout` / `raft_heartbeat_interval` (cairn's: explicit
    /// timings that override what the multiplier gives).
    pub raft_election_timeout: Option<String>,
    pub raft_heartbeat_interval: Option<String>,
    /// Consul's `raft_snapshot_threshold` (entries applied between snapshots).
    pub raft_snapshot_threshold: Option<i64>,
    /// Consul's `raft_trailing_logs` (entries kept behind a snapshot).
    pub raft_trailing_logs: Option<i64>,
    /// cairn's `raft_log_cache_mb` / `-raft-log-cache-mb`: payload MiB of Raft log
    /// entries held in memory (and read whole at a restart).
    pub raft_log_cache_mb: Option<i64>,
    /// cairn's `raft_log_cache_entries` / `-raft-log-cache-entries`: most Raft log
    /// entries held in memory.
    pub raft_log_cache_entries: Option<i64>,
    pub ui: Option<bool>,
    pub node_meta: BTreeMap<String, String>,
    /// Consul's `gossip_lan { ... }`; each knob merges on its own.
    pub gossip_lan: GossipLanSource,
    /// Consul's `reconnect_timeout` (Go duration text): failed members are forgotten
    /// after this long.
    pub reconnect_timeout: Option<String>,
    /// `retry_max` / `-retry-max`: join attempts before giving up (0 = forever).
    pub retry_max: Option<i64>,
    /// `leave_on_terminate`: leave gracefully on SIGTERM (default: clients yes, servers no).
    pub leave_on_terminate: Option<bool>,
    /// `skip_leave_on_interrupt`: stay a member on SIGINT (default: servers yes, clients no).
    pub skip_leave_on_interrupt: Option<bool>,
    /// `rejoin_after_leave` / `-rejoin`: ignore a previous leave when starting.
    pub rejoin_after_leave: Option<bool>,
    /// cairn's `tombstone_ttl` (Go duration text, at least 1m): KV tombstones are
    /// reaped this long after the delete (Consul's internal `TombstoneTTL`, 15m).
    pub tombstone_ttl: Option<String>,
    /// Hidden `debug_tombstone_ttl`: the same without the minimum, for tests.
    pub debug_tombstone_ttl: Option<String>,
    /// Consul's `autopilot { ... }`; each knob merges on its own.
    pub autopilot: AutopilotSource,
}

fn later<T>(earlier: Option<T>, later: Option<T>) -> Option<T> {
    later.or(earlier)
}

impl PortsSource {
    fn merge(self, other: PortsSource) -> PortsSource {
        PortsSource {
            http: later(self.http, other.http),
            https: later(self.https, other.https),
            dns: later(self.dns, other.dns),
            server: later(self.server, other.server),
            serf_lan: later(self.serf_lan, other.serf_lan),
            serf_wan: later(self.serf_wan, other.serf_wan),
            grpc: later(self.grpc, other.grpc),
            grpc_tls: later(self.grpc_tls, other.grpc_tls),
        }
    }
}

impl GossipLanSource {
    fn merge(self, other: GossipLanSource) -> GossipLanSource {
        GossipLanSource {
            gossip_nodes: later(self.gossip_nodes, other.gossip_nodes),
            gossip_interval: later(self.gossip_interval, other.gossip_interval),
            probe_interval: later(self.probe_interval, other.probe_interval),
            probe_timeout: later(self.probe_timeout, other.probe_timeout),
            retransmit_mult: later(self.retransmit_mult, other.retransmit_mult),
            suspicion_mult: later(self.suspicion_mult, other.suspicion_mult),
        }
    }
}

impl ConfigSource {
    /// `self` overlaid by `other` (which came later).
    pub fn merge(self, other: ConfigSource) -> ConfigSource {
        let mut recursors = self.recursors;
        recursors.extend(other.recursors);
        let mut retry_join = self.retry_join;
        retry_join.extend(other.retry_join);
        let mut node_meta = self.node_meta;
        node_meta.extend(other.node_meta);
        let mut service_definitions = self.service_definitions;
        service_definitions.extend(other.service_definitions);
        let mut check_definitions = self.check_definitions;
        check_definitions.extend(other.check_definitions);
        ConfigSource {
            service_definitions,
            check_definitions,
            dev: later(self.dev, other.dev),
            fault_injection: later(self.fault_injection, other.fault_injection),
            debug_unsafe_local_reads: later(
                self.debug_unsafe_local_reads,
                other.debug_unsafe_local_reads,
            ),
            node_name: later(self.node_name, other.node_name),
            node_id: later(self.node_id, other.node_id),
            datacenter: later(self.datacenter, other.datacenter),
            data_dir: later(self.data_dir, other.data_dir),
            server: later(self.server, other.server),
            bootstrap: later(self.bootstrap, other.bootstrap),
            bootstrap_expect: later(self.bootstrap_expect, other.bootstrap_expect),
            bind_addr: later(self.bind_addr, other.bind_addr),
            advertise_addr: later(self.advertise_addr, other.advertise_addr),
            client_addr: later(self.client_addr, other.client_addr),
            ports: self.ports.merge(other.ports),
            domain: later(self.domain, other.domain),
            recursors,
            retry_join,
            retry_interval: later(self.retry_interval, other.retry_interval),
            enable_script_checks: later(self.enable_script_checks, other.enable_script_checks),
            enable_local_script_checks: later(
                self.enable_local_script_checks,
                other.enable_local_script_checks,
            ),
            check_update_interval: later(self.check_update_interval, other.check_update_interval),
            debug_anti_entropy_interval: later(
                self.debug_anti_entropy_interval,
                other.debug_anti_entropy_interval,
            ),
            check_deregister_interval_min: later(
                self.check_deregister_interval_min,
                other.check_deregister_interval_min,
            ),
            log_level: later(self.log_level, other.log_level),
            raft_multiplier: later(self.raft_multiplier, other.raft_multiplier),
            raft_election_timeout: later(self.raft_election_timeout, other.raft_election_timeout),
            raft_heartbeat_interval: later(
                self.raft_heartbeat_interval,
                other.raft_heartbeat_interval,
            ),
            raft_snapshot_threshold: later(
                self.raft_snapshot_threshold,
                other.raft_snapshot_threshold,
            ),
            raft_trailing_logs: later(self.raft_trailing_logs, other.raft_trailing_logs),
            raft_log_cache_mb: later(self.raft_log_cache_mb, other.raft_log_cache_mb),
            raft_log_cache_entries: later(
                self.raft_log_cache_entries,
                other.raft_log_cache_entries,
            ),
            ui: later(self.ui, other.ui),
            node_meta,
            gossip_lan: self.gossip_lan.merge(other.gossip_lan),
            reconnect_timeout: later(self.reconnect_timeout, other.reconnect_timeout),
            retry_max: later(self.retry_max, other.retry_max),
            leave_on_terminate: later(self.leave_on_terminate, other.leave_on_terminate),
            skip_leave_on_interrupt: later(
                self.skip_leave_on_interrupt,
                other.skip_leave_on_interrupt,
            ),
            rejoin_after_leave: later(self.rejoin_after_leave, other.rejoin_after_leave),
            tombstone_ttl: later(self.tombstone_ttl, other.tombstone_ttl),
            debug_tombstone_ttl: later(self.debug_tombstone_ttl, other.debug_tombstone_ttl),
            autopilot: self.autopilot.merge(other.autopilot),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_scalars_win_lists_append_maps_merge() {
        let a = ConfigSource {
            node_name: Some("a".into()),
            datacenter: Some("dc-a".into()),
            recursors: vec!["1.1.1.1".into()],
            retry_join: vec!["x".into()],
            ports: PortsSource {
                http: Some(1),
                dns: Some(2),
                ..Default::default()
            },
            node_meta: [
                ("k".to_string(), "1".to_string()),
                ("only-a".to_string(), "a".to_string()),
            ]
            .into(),
            ..Default::default()
        };
        let b = ConfigSource {
            node_name: Some("b".into()),
            recursors: vec!["8.8.8.8".into()],
            ports: PortsSource {
                http: Some(10),
                ..Default::default()
            },
            node_meta: [("k".to_string(), "2".to_string())].into(),
            ..Default::default()
        };
        let m = a.merge(b);
        assert_eq!(m.node_name.as_deref(), Some("b"));
        assert_eq!(m.datacenter.as_deref(), Some("dc-a"));
        assert_eq!(
            m.recursors,
            vec!["1.1.1.1".to_string(), "8.8.8.8".to_string()]
        );
        assert_eq!(m.retry_join, vec!["x".to_string()]);
        assert_eq!(m.ports.http, Some(10));
        assert_eq!(m.ports.dns, Some(2));
        assert_eq!(m.node_meta.get("k").map(String::as_str), Some("2"));
        assert_eq!(m.node_meta.get("only-a").map(String::as_str), Some("a"));
    }

    #[test]
    fn gossip_lan_knobs_merge_one_by_one() {
        let a = ConfigSource {
            gossip_lan: GossipLanSource {
                probe_interval: Some("2s".into()),
                gossip_nodes: Some(4),
                ..Default::default()
            },
            retry_max: Some(3),
            leave_on_terminate: Some(true),
            ..Default::default()
        };
        let b = ConfigSource {
            gossip_lan: GossipLanSource {
                probe_interval: Some("3s".into()),
                suspicion_mult: Some(5),
                ..Default::default()
            },
            reconnect_timeout: Some("9h".into()),
            ..Default::default()
        };
        let m = a.merge(b);
        assert_eq!(
            m.gossip_lan,
            GossipLanSource {
                probe_interval: Some("3s".into()),
                gossip_nodes: Some(4),
                suspicion_mult: Some(5),
                ..Default::default()
            }
        );
        assert_eq!(m.retry_max, Some(3));
        assert_eq!(m.leave_on_terminate, Some(true));
        assert_eq!(m.reconnect_timeout.as_deref(), Some("9h"));
    }
}
