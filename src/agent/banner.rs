//! The startup banner, in the layout of Consul's (`==> Starting Consul agent...` and the
//! aligned `Key: value` block), so operators and scripts find what they expect.

use crate::config::Config;
use crate::version::{BUILD_DATE, CAIRN_VERSION, CONSUL_COMPAT_VERSION};

pub fn banner(config: &Config) -> String {
    let p = &config.ports;
    let clients: Vec<String> = config.client_addrs.iter().map(|a| a.to_string()).collect();
    let rows: Vec<(&str, String)> = vec![
        (
            "Version",
            format!("'{CONSUL_COMPAT_VERSION}' (cairn {CAIRN_VERSION})"),
        ),
        ("Build Date", format!("'{BUILD_DATE}'")),
        ("Node ID", format!("'{}'", config.node_id)),
        ("Node name", format!("'{}'", config.node_name)),
        (
            "Datacenter",
            format!("'{}' (Segment: '<all>')", config.datacenter),
        ),
        (
            "Server",
            format!("{} (Bootstrap: {})", config.server, config.bootstrap),
        ),
        (
            "Client Addr",
            format!(
                "[{}] (HTTP: {}, HTTPS: {}, gRPC: {}, gRPC-TLS: {}, DNS: {})",
                clients.join(" "),
                p.http,
                p.https,
                p.grpc,
                p.grpc_tls,
                p.dns
            ),
        ),
        (
            "Cluster Addr",
            format!(
                "{} (LAN: {}, WAN: {})",
                config.advertise(),
                p.serf_lan,
                p.serf_wan
            ),
        ),
        ("Gossip Encryption", "false".into()),
        ("Auto-Encrypt-TLS", "false".into()),
        ("ACL Enabled", "false".into()),
        (
            "Data Dir",
            crate::config::build::describe_data_dir(&config.data_dir),
        ),
    ];
    let mut out = String::new();
    for (key, value) in rows {
        out.push_str(&format!("{key:>21}: {value}\n"));
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dev_banner_lines() {
        let text = banner(&Config::dev_for_tests());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[3], "            Node name: 'test-node'");
        assert_eq!(lines[4], "           Datacenter: 'dc1' (Segment: '<all>')");
        assert_eq!(lines[5], "               Server: true (Bootstrap: true)");
        assert_eq!(lines[6], "          Client Addr: [127.0.0.1] (HTTP: 8500, HTTPS: -1, gRPC: -1, gRPC-TLS: -1, DNS: 8600)");
        assert_eq!(
            lines[7],
            "         Cluster Addr: 127.0.0.1 (LAN: 8301, WAN: 8302)"
        );
        assert_eq!(lines[11], "             Data Dir: (in memory)");
    }
}
