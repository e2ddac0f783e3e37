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
