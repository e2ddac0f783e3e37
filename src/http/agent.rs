//! `/v1/agent/self` (the membership endpoints are in `members.rs`).

use super::error::ApiError;
use super::render::json_response;
use super::ApiRequest;
use crate::config::Config;
use crate::context::AgentContext;
use crate::version::{CONSUL_COMPAT_VERSION, REVISION};
use actix_web::HttpResponse;
use actors::membership::MemberView;
use actors::{RaftRole, RaftStatus};
use serde_json::{json, Value};

/// Fixed build date reported in `Config.BuildDate` (cairn builds are reproducible).
pub const BUILD_DATE: &str = "1970-01-01T00:00:01Z";

fn role_name(role: RaftRole) -> &'static str {
    match role {
        RaftRole::Leader => "Leader",
        RaftRole::Candidate => "Candidate",
        RaftRole::Follower => "Follower",
    }
}

/// `/v1/agent/self`; every Stats value is a string, as in Consul.
/// `member` is this agent as the membership lists it, so `Member` here and this agent's
/// entry in `/v1/agent/members` are the same.
pub fn agent_self(
    config: &Config,
    status: &RaftStatus,
    started_unix: u64,
    member: &MemberView,
) -> Value {
    let leader = status.is_leader();
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let peers = status.voters.len().to_string();
    json!({
        "Config": {
            "Datacenter": config.datacenter,
            "PrimaryDatacenter": config.datacenter,
            "NodeName": config.node_name,
            "NodeID": config.node_id,
            "Revision": REVISION,
            "Server": config.server,
            "Version": CONSUL_COMPAT_VERSION,
            "BuildDate": BUILD_DATE,
        },
        "DebugConfig": {
            "Datacenter": config.datacenter,
            "PrimaryDatacenter": config.datacenter,
            "NodeName": config.node_name,
            "NodeID": config.node_id,
            "ServerMode": config.server,
            "DevMode": config.dev,
            "Bootstrap": config.bootstrap,
            "BootstrapExpect": config.bootstrap_expect.unwrap_or(0),
            "BindAddr": config.bind_addr.to_string(),
            "AdvertiseAddrLAN": config.advertise().to_string(),
            "ClientAddrs": config.client_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "DataDir": config.data_dir.as_ref().map(|d| d.display().to_string()).unwrap_or_default(),
            "DNSDomain": config.domain,
            "DNSRecursors": config.recursors.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
            "HTTPPort": config.ports.http,
            "HTTPSPort": config.ports.https,
            "DNSPort": config.ports.dns,
            "ServerPort": config.ports.server,
            "SerfPortLAN": config.ports.serf_lan,
            "SerfPortWAN": config.ports.serf_wan,
            "GRPCPort": config.ports.grpc,
            "RetryJoinLAN": config.retry_join,
            "EnableScriptChecks": config.enable_script_checks,
            "LogLevel": config.log_level,
            "RaftMultiplier": config.raft_multiplier,
            "UIEnabled": config.ui,
            "NodeMeta": config.node_meta,
            "KVMaxValueSize": super::body::KV_MAX_VALUE_BYTES,
            "Revision": REVISION,
            "Version": CONSUL_COMPAT_VERSION,
        },
        "Coord": {"Vec": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0], "Error": 1.5, "Adjustment": 0.0, "Height": 1e-5},
        "Member": super::members::member_json(member),
        "Stats": {
            "agent": {
                "check_monitors": "0", "check_ttls": "0", "checks": "0", "services": "0",
                "started_unix": started_unix.to_string(),
            },
            "consul": {
                "leader": leader.to_string(),
                "leader_addr": status.leader_addr.clone().unwrap_or_default(),
                "server": config.server.to_string(),
                "bootstrap": config.bootstrap.to_string(),
                "known_datacenters": "1",
            },
            "raft": {
                "state": role_name(status.role),
                "term": status.term.to_string(),
                "commit_index": status.commit_index.to_string(),
                "applied_index": status.applied_index.to_string(),
                "last_log_index": status.last_log_index.to_string(),
                "last_log_term": status.last_log_term.to_string(),
                "last_contact": if leader { "0".to_string() } else { format!("{}ms", status.last_contact_ms) },
                "num_peers": peers,
                "protocol_version": "3",
                "protocol_version_max": "3",
                "protocol_version_min": "0",
                // Not in Consul: why this server cannot write its Raft log right now.
                "storage_error": status.storage_error.clone().unwrap_or_default(),
            },
            "runtime": {
                "arch": std::env::consts::ARCH,
                "os": std::env::consts::OS,
                "cpu_count": cpus.to_string(),
                "max_procs": cpus.to_string(),
                "version": format!("cairn {}", crate::version::CAIRN_VERSION),
            },
            "build": {
                "version": CONSUL_COMPAT_VERSION,
                "revision": REVISION,
                "prerelease": "",
            },
        },
        "Meta": config.node_meta,
        "xDS": {"SupportedProxies": {}, "Port": -1, "Ports": {"Plaintext": -1, "TLS": -1}},
    })
}

/// Which agent endpoint a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentRoute {
    SelfInfo,
}

pub fn handle(
    ctx: &AgentContext,
    req: &ApiRequest,
    route: AgentRoute,
) -> Result<HttpResponse, ApiError> {
    match route {
        AgentRoute::SelfInfo => {
            let mut info = agent_self(
                &ctx.config,
                &ctx.raft_status(),
                ctx.started_unix,
                &ctx.local_member(),
            );
            if let Some(local) = &ctx.local {
                let view = local.view();
                let count = |kind: &[&str]| {
                    view.checks
                        .iter()
                        .filter(|c| kind.contains(&c.check_type.as_str()))
                        .count()
                        .to_string()
                };
                let agent = &mut info["Stats"]["agent"];
                agent["checks"] = view.checks.len().to_string().into();
                agent["services"] = view.services.len().to_string().into();
                agent["check_ttls"] = count(&["ttl"]).into();
                agent["check_monitors"] = count(&["script"]).into();
            }
            json_response(&info, req.pretty)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::tests_support::test_config;

    #[test]
    fn self_has_what_clients_read() {
        let cfg = test_config();
        let status = RaftStatus {
            role: RaftRole::Leader,
            term: 2,
            leader_addr: Some("127.0.0.1:8300".into()),
            ..Default::default()
        };
        let v = agent_self(&cfg, &status, 1234, &crate::member_tags::self_member(&cfg));
        assert_eq!(v["Config"]["Datacenter"], "dc1");
        assert_eq!(v["Config"]["NodeName"], "node1");
        assert_eq!(v["Config"]["Version"], CONSUL_COMPAT_VERSION);
        assert_eq!(v["Member"]["Addr"], "127.0.0.1");
        assert_eq!(v["Member"]["Port"], 8301);
        assert_eq!(v["Member"]["Status"], 1);
        assert_eq!(v["Member"]["Tags"]["role"], "consul");
        assert_eq!(
            v["Member"]["Tags"]["build"],
            format!("{CONSUL_COMPAT_VERSION}:{REVISION}")
        );
        assert_eq!(v["Member"]["Tags"]["port"], "8300");
        assert_eq!(v["Stats"]["consul"]["leader"], "true");
        assert_eq!(v["Stats"]["raft"]["state"], "Leader");
        assert_eq!(v["Stats"]["raft"]["term"], "2");
        assert_eq!(v["Stats"]["build"]["version"], CONSUL_COMPAT_VERSION);
        assert_eq!(v["Coord"]["Vec"].as_array().map(Vec::len), Some(8));
        assert!(v["Meta"].is_object());
    }
}
