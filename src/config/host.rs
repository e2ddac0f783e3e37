//! Facts about the host that defaults depend on: its name and its IPv4 addresses. Read
//! from /proc (no libc calls, no packets sent); the parsers are pure and tested on text.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

/// The host name, as Consul uses it for the default node name; `localhost` when unknown.
pub fn hostname() -> String {
    let from_proc = std::fs::read_to_string("/proc/sys/kernel/hostname").ok();
    let from_env = std::env::var("HOSTNAME").ok();
    from_proc
        .into_iter()
        .chain(from_env)
        .map(|name| name.trim().to_string())
        .find(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// The host's own IPv4 addresses, from the kernel's routing trie (`/proc/net/fib_trie`).
pub fn local_ipv4_addrs() -> Vec<Ipv4Addr> {
    std::fs::read_to_string("/proc/net/fib_trie")
        .map(|text| parse_fib_trie(&text))
        .unwrap_or_default()
}

/// Addresses the trie marks `/32 host LOCAL`: exactly the addresses assigned to this
/// host's interfaces. Each appears in several tables, so they are deduplicated and sorted.
pub fn parse_fib_trie(text: &str) -> Vec<Ipv4Addr> {
    let mut found = BTreeSet::new();
    let mut last_leaf: Option<Ipv4Addr> = None;
    for line in text.lines() {
        let trimmed = line.trim_start_matches([' ', '|', '+', '-']).trim();
        if let Some(rest) = line.trim_start().strip_prefix("|--") {
            last_leaf = rest.trim().parse().ok();
        } else if trimmed.starts_with("/32 host LOCAL") {
            if let Some(ip) = last_leaf {
                found.insert(ip);
            }
        }
    }
    found.into_iter().collect()
}

/// Private ranges as Consul's go-sockaddr sees them (RFC 1918 plus the RFC 6598 shared
/// space that cloud providers hand out).
pub fn is_private(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_private() || (a == 100 && (64..128).contains(&b))
}

/// What to advertise when bound to 0.0.0.0 without `-advertise`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdvertiseChoice {
    /// The host's single private IPv4 address, as Consul picks it.
    Private(Ipv4Addr),
    /// Several private addresses: Consul refuses to guess, and so do we.
    Ambiguous(Vec<Ipv4Addr>),
    /// No private address at all: cairn falls back to loopback (with a warning), so a
    /// single machine still works; other nodes cannot reach this one.
    Loopback,
}

pub fn choose_advertise(addrs: &[Ipv4Addr]) -> AdvertiseChoice {
    let private: Vec<Ipv4Addr> = addrs.iter().copied().filter(|ip| is_private(*ip)).collect();
    match private.as_slice() {
        [one] => AdvertiseChoice::Private(*one),
        [] => AdvertiseChoice::Loopback,
        _ => AdvertiseChoice::Ambiguous(private),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRIE: &str = "Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 127.255.255.255
           /32 link BROADCAST
     +-- 172.17.0.0/16 2 0 2
        |-- 172.17.0.0
           /16 link UNICAST
        |-- 172.17.0.5
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 172.17.0.5
           /32 host LOCAL
";

    #[test]
    fn fib_trie_yields_local_addresses_once() {
        assert_eq!(
            parse_fib_trie(TRIE),
            vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(172, 17, 0, 5)]
        );
    }

    #[test]
    fn advertise_choice_follows_consul() {
        let lo = Ipv4Addr::new(127, 0, 0, 1);
        let a = Ipv4Addr::new(10, 0, 0, 7);
        let b = Ipv4Addr::new(192, 168, 1, 2);
        let public = Ipv4Addr::new(8, 8, 8, 8);
        assert_eq!(
            choose_advertise(&[lo, a, public]),
            AdvertiseChoice::Private(a)
        );
        assert_eq!(
            choose_advertise(&[lo, a, b]),
            AdvertiseChoice::Ambiguous(vec![a, b])
        );
        assert_eq!(choose_advertise(&[lo, public]), AdvertiseChoice::Loopback);
        assert!(is_private(Ipv4Addr::new(100, 64, 0, 1)));
        assert!(!is_private(Ipv4Addr::new(100, 128, 0, 1)));
    }

    #[test]
    fn hostname_is_never_empty() {
        assert!(!hostname().is_empty());
    }
}
