//! The version cairn reports. Clients parse Consul versions (`1.22.0`), so agent/self and
//! member tags carry a plain Consul-style number; cairn's own version rides alongside.

/// The Consul API level cairn implements, reported where Consul reports its version.
pub const CONSUL_COMPAT_VERSION: &str = "1.22.0";
/// cairn's own crate version.
pub const CAIRN_VERSION: &str = env!("CARGO_PKG_VERSION");
/// Consul reports a git revision; cairn reports its own version string there.
pub const REVISION: &str = concat!("cairn-", env!("CARGO_PKG_VERSION"));
/// Raft/gossip protocol version, as `consul version` prints it.
pub const PROTOCOL_VERSION: u32 = 2;
/// Oldest and newest protocol versions understood, as `consul version` prints them.
pub const PROTOCOL_VERSION_MIN: u32 = 2;
pub const PROTOCOL_VERSION_MAX: u32 = 3;
/// No build timestamp is stamped in (builds stay reproducible); this is the value Consul
/// itself reports when its build date is unset.
pub const BUILD_DATE: &str = "1970-01-01T00:00:01Z";

/// `cairn version` text output.
pub fn human() -> String {
    format!(
        "cairn v{CAIRN_VERSION}\nConsul API v{CONSUL_COMPAT_VERSION}\nRevision {REVISION}\nBuild Date {BUILD_DATE}\n\
         Protocol {PROTOCOL_VERSION} spoken by default, understands {PROTOCOL_VERSION_MIN} to {PROTOCOL_VERSION_MAX} \
         (agent will automatically use protocol >2 when speaking to compatible agents)\n"
    )
}

/// `cairn version -format=json`, the shape of `consul version -format=json` plus `Cairn`.
pub fn json() -> serde_json::Value {
    serde_json::json!({
        "Version": CONSUL_COMPAT_VERSION,
        "Revision": REVISION,
        "Prerelease": "",
        "FIPS": "",
        "BuildDate": BUILD_DATE,
        "RPC": { "Default": PROTOCOL_VERSION, "Min": PROTOCOL_VERSION_MIN, "Max": PROTOCOL_VERSION_MAX },
        "Cairn": CAIRN_VERSION,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_shapes() {
        let text = human();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("cairn v{CAIRN_VERSION}"));
        assert_eq!(lines[1], "Consul API v1.22.0");
        assert_eq!(lines[2], format!("Revision cairn-{CAIRN_VERSION}"));
        assert!(lines[4].starts_with("Protocol 2 spoken by default, understands 2 to 3"));
        let j = json();
        assert_eq!(j["Version"], "1.22.0");
        assert_eq!(j["Cairn"], CAIRN_VERSION);
        assert_eq!(j["RPC"]["Default"], 2);
    }
}
