//! This agent as a gossip member: the tags Consul's agents put on their serf member (what
//! `consul members`, client libraries and other servers read), and the member itself.
//! The gossip wiring gives these same tags to the membership actor, for servers
//! (`role=consul`) and client agents (`role=node`) alike, so that `/v1/agent/members`,
//! `/v1/agent/self` and the gossip layer never disagree about what this agent is.
//! A leaf module (config and version only), so the wiring and the edges' context can
//! both use it without an import running backwards.

use crate::config::Config;
use crate::version::{
    CONSUL_COMPAT_VERSION, PROTOCOL_VERSION, PROTOCOL_VERSION_MAX, PROTOCOL_VERSION_MIN, REVISION,
};
use actors::membership::{MemberStatus, MemberView, DELEGATE_PROTOCOL, GOSSIP_PROTOCOL};
use std::collections::BTreeMap;

/// Raft protocol version a server advertises (`raft_vsn`); Consul servers speak 3.
pub const RAFT_PROTOCOL_VERSION: u32 = 3;

/// Consul's `build` tag: `<version>:<revision>`; `consul members` prints the part before
/// the colon, and servers parse it as the peer's version.
pub fn build_tag() -> String {
    format!("{CONSUL_COMPAT_VERSION}:{REVISION}")
}

/// The serf tags of this agent, with the keys Consul sets (agent/consul/server_serf.go
/// for servers, client.go for client agents). Segments and partitions are enterprise
/// features: `segment` is always the default (empty) segment.
pub fn member_tags(config: &Config) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        tags.insert(k.to_string(), v);
    };
    put("role", if config.server { "consul" } else { "node" }.into());
    put("dc", config.datacenter.clone());
    put("segment", String::new());
    put("id", config.node_id.clone());
    put("vsn", PROTOCOL_VERSION.to_string());
    put("vsn_min", PROTOCOL_VERSION_MIN.to_string());
    put("vsn_max", PROTOCOL_VERSION_MAX.to_string());
    put("build", build_tag());
    // ACLs are not enforced by cairn: Consul's "disabled" mode.
    put("acls", "0".into());
    if config.server {
        put("raft_vsn", RAFT_PROTOCOL_VERSION.to_string());
        put("port", config.ports.server.max(0).to_string());
        if config.bootstrap {
            put("bootstrap", "1".into());
        }
        if let Some(expect) = config.bootstrap_expect.filter(|n| *n > 0) {
            put("expect", expect.to_string());
        }
        // Servers tell the LAN where their WAN pool listens, so that others can list it.
        if config.ports.serf_wan > 0 {
            put("wan_join_port", config.ports.serf_wan.to_string());
        }
    }
    tags
}

/// This agent as an alive LAN member (what the gossip layer will report for itself).
pub fn self_member(config: &Config) -> MemberView {
    MemberView {
        name: config.node_name.clone(),
        addr: config.advertise(),
        port: u16::try_from(config.ports.serf_lan).unwrap_or(0),
        tags: member_tags(config),
        status: MemberStatus::Alive,
        protocol: GOSSIP_PROTOCOL,
        delegate: DELEGATE_PROTOCOL,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(tags: &BTreeMap<String, String>) -> Vec<String> {
        tags.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    #[test]
    fn server_tags_are_consuls() {
        let mut config = Config::dev_for_tests();
        config.node_id = "abc".into();
        let build = build_tag();
        assert_eq!(
            pairs(&member_tags(&config)),
            vec![
                "acls=0".to_string(),
                "bootstrap=1".into(),
                format!("build={build}"),
                "dc=dc1".into(),
                "id=abc".into(),
                "port=8300".into(),
                "raft_vsn=3".into(),
                "role=consul".into(),
                "segment=".into(),
                "vsn=2".into(),
                "vsn_max=3".into(),
                "vsn_min=2".into(),
                "wan_join_port=8302".into(),
            ]
        );
        assert!(build.starts_with("1.22.0:"), "{build}");
    }

    #[test]
    fn expect_only_when_set_and_wan_port_only_when_enabled() {
        let mut config = Config::dev_for_tests();
        config.bootstrap = false;
        config.bootstrap_expect = Some(3);
        config.ports.serf_wan = -1;
        config.ports.server = 9300;
        let tags = member_tags(&config);
        assert_eq!(tags.get("expect").map(String::as_str), Some("3"));
        assert_eq!(tags.get("port").map(String::as_str), Some("9300"));
        assert!(!tags.contains_key("bootstrap"));
        assert!(!tags.contains_key("wan_join_port"));
        config.bootstrap_expect = None;
        assert!(!member_tags(&config).contains_key("expect"));
    }

    #[test]
    fn client_tags_have_no_server_keys() {
        let mut config = Config::dev_for_tests();
        config.server = false;
        config.bootstrap = false;
        let tags = member_tags(&config);
        assert_eq!(tags.get("role").map(String::as_str), Some("node"));
        for server_only in ["port", "raft_vsn", "bootstrap", "expect", "wan_join_port"] {
            assert!(!tags.contains_key(server_only), "{server_only}");
        }
    }

    #[test]
    fn self_member_is_alive_on_the_advertised_lan_address() {
        let mut config = Config::dev_for_tests();
        config.advertise_addr = Some([10, 0, 0, 7].into());
        let m = self_member(&config);
        assert_eq!(m.name, "test-node");
        assert_eq!(m.addr.to_string(), "10.0.0.7");
        assert_eq!(m.port, 8301);
        assert_eq!(m.status, MemberStatus::Alive);
        assert_eq!((m.protocol, m.delegate), ((1, 5, 2), (2, 5, 4)));
    }
}
