//! Query names → typed queries, the way Consul reads them: case-insensitive, relative to
//! the configured domain, scanned from the right (an optional datacenter label, then the
//! kind label, then the kind's own labels, which may themselves contain dots).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// What a name inside the domain asks for. Names are lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DnsQuery {
    /// The domain itself (`consul.`): SOA and NS live here.
    Apex,
    /// `<node>.node[.<dc>].consul`
    Node { name: String, dc: Option<String> },
    /// `[<tag>.]<service>.service[.<dc>].consul`, or RFC 2782
    /// `_<service>._<tag>[.service][.<dc>].consul` (`_tcp` = no tag filter).
    Service {
        name: String,
        tag: Option<String>,
        dc: Option<String>,
    },
    /// `<hex>.addr[.<dc>].consul`: 8 hex digits → IPv4, 32 → IPv6.
    Addr { ip: IpAddr, dc: Option<String> },
    /// Inside the domain but not a form we answer: NXDOMAIN.
    Unknown,
}

impl DnsQuery {
    /// The datacenter label the name carried, if any.
    pub fn dc(&self) -> Option<&str> {
        match self {
            DnsQuery::Node { dc, .. }
            | DnsQuery::Service { dc, .. }
            | DnsQuery::Addr { dc, .. } => dc.as_deref(),
            DnsQuery::Apex | DnsQuery::Unknown => None,
        }
    }
}

/// Labels that name the kind of a query; the one nearest the domain decides.
const KIND_LABELS: [&str; 7] = [
    "node", "service", "addr", "query", "connect", "ingress", "virtual",
];

fn is_kind(label: &str) -> bool {
    KIND_LABELS.contains(&label)
}

/// Parse `qname` (with or without the trailing dot, any case) against `domain` (e.g.
/// `consul.`). `None` means the name is outside the domain (a recursor's business).
pub fn parse_query_name(qname: &str, domain: &str) -> Option<DnsQuery> {
    let qname = qname
        .strip_suffix('.')
        .unwrap_or(qname)
        .to_ascii_lowercase();
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    if domain.is_empty() {
        return None;
    }
    if qname.eq_ignore_ascii_case(domain) {
        return Some(DnsQuery::Apex);
    }
    let rest_len = qname.len().checked_sub(domain.len() + 1)?;
    if !qname.is_char_boundary(rest_len) {
        return None;
    }
    let (rest, suffix) = qname.split_at(rest_len);
    if !suffix.starts_with('.') || !suffix[1..].eq_ignore_ascii_case(domain) {
        return None;
    }
    let labels: Vec<&str> = rest.split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return Some(DnsQuery::Unknown);
    }
    Some(parse_labels(&labels).unwrap_or(DnsQuery::Unknown))
}

fn parse_labels(labels: &[&str]) -> Option<DnsQuery> {
    let n = labels.len();
    // `<...>.<kind>.<dc>.dc`: the explicit datacenter form.
    if n >= 3 && labels[n - 1] == "dc" && is_kind(labels[n - 3]) {
        return parse_kind(labels[n - 3], &labels[..n - 3], Some(labels[n - 2]));
    }
    if is_kind(labels[n - 1]) {
        return parse_kind(labels[n - 1], &labels[..n - 1], None);
    }
    if n >= 2 && is_kind(labels[n - 2]) {
        return parse_kind(labels[n - 2], &labels[..n - 2], Some(labels[n - 1]));
    }
    // RFC 2782 without the `service` label: `_svc._tag[.dc]`.
    match labels {
        [svc, tag] => rfc2782(svc, tag, None),
        [svc, tag, dc] => rfc2782(svc, tag, Some(dc)),
        _ => None,
    }
}

fn parse_kind(kind: &str, labels: &[&str], dc: Option<&str>) -> Option<DnsQuery> {
    let dc = dc.map(str::to_string);
    match kind {
        "node" if !labels.is_empty() => Some(DnsQuery::Node {
            name: labels.join("."),
            dc,
        }),
        "service" => match labels {
            [svc, tag] if svc.starts_with('_') && tag.starts_with('_') => {
                rfc2782(svc, tag, dc.as_deref())
            }
            [] => None,
            [tags @ .., name] => {
                let tag = if tags.is_empty() {
                    None
                } else {
                    Some(tags.join("."))
                };
                Some(DnsQuery::Service {
                    name: name.to_string(),
                    tag,
                    dc,
                })
            }
        },
        "addr" => match labels {
            [hex] => Some(DnsQuery::Addr {
                ip: parse_hex_ip(hex)?,
                dc,
            }),
            _ => None,
        },
        // Prepared queries, Connect, ingress and virtual names are not served (yet).
        _ => None,
    }
}

fn rfc2782(svc: &str, tag: &str, dc: Option<&str>) -> Option<DnsQuery> {
    let name = svc.strip_prefix('_').filter(|s| !s.is_empty())?;
    let tag = tag.strip_prefix('_').filter(|s| !s.is_empty())?;
    let tag = if tag == "tcp" {
        None
    } else {
        Some(tag.to_string())
    };
    Some(DnsQuery::Service {
        name: name.to_string(),
        tag,
        dc: dc.map(str::to_string),
    })
}

/// `c000020a` → 192.0.2.10; 32 hex digits → an IPv6 address.
pub fn parse_hex_ip(hex: &str) -> Option<IpAddr> {
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    match hex.len() {
        8 => u32::from_str_radix(hex, 16)
            .ok()
            .map(|v| IpAddr::V4(Ipv4Addr::from(v))),
        32 => u128::from_str_radix(hex, 16)
            .ok()
            .map(|v| IpAddr::V6(Ipv6Addr::from(v))),
        _ => None,
    }
}

/// The inverse of [`parse_hex_ip`]: the label used in `<hex>.addr.<dc>.<domain>` targets.
pub fn hex_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("{:08x}", u32::from(v4)),
        IpAddr::V6(v6) => format!("{:032x}", u128::from(v6)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(q: &str) -> Option<DnsQuery> {
        parse_query_name(q, "consul.")
    }
    fn node(name: &str, dc: Option<&str>) -> Option<DnsQuery> {
        Some(DnsQuery::Node {
            name: name.into(),
            dc: dc.map(Into::into),
        })
    }
    fn svc(name: &str, tag: Option<&str>, dc: Option<&str>) -> Option<DnsQuery> {
        Some(DnsQuery::Service {
            name: name.into(),
            tag: tag.map(Into::into),
            dc: dc.map(Into::into),
        })
    }

    #[test]
    fn outside_the_domain_is_none() {
        assert_eq!(p("www.google.com."), None);
        assert_eq!(p("notconsul."), None);
        assert_eq!(p("xconsul."), None);
        assert_eq!(p("com."), None);
        assert_eq!(p(""), None);
        assert_eq!(p("é.consul"), Some(DnsQuery::Unknown));
        assert_eq!(p("xxxxxxxé"), None);
        assert_eq!(p("aé.node.consul"), node("aé", None));
    }

    #[test]
    fn apex_any_case() {
        assert_eq!(p("consul."), Some(DnsQuery::Apex));
        assert_eq!(p("CONSUL"), Some(DnsQuery::Apex));
    }

    #[test]
    fn nodes() {
        assert_eq!(p("foo.node.consul."), node("foo", None));
        assert_eq!(p("Foo.NODE.Consul."), node("foo", None));
        assert_eq!(p("foo.node.dc1.consul."), node("foo", Some("dc1")));
        assert_eq!(p("foo.node.dc1.dc.consul."), node("foo", Some("dc1")));
        assert_eq!(p("foo.bar.node.consul."), node("foo.bar", None));
        assert_eq!(p("node.consul."), Some(DnsQuery::Unknown));
    }

    #[test]
    fn services_with_tags_and_dc() {
        assert_eq!(p("web.service.consul."), svc("web", None, None));
        assert_eq!(p("WEB.Service.consul"), svc("web", None, None));
        assert_eq!(p("v1.web.service.consul."), svc("web", Some("v1"), None));
        assert_eq!(
            p("v1.2.web.service.consul."),
            svc("web", Some("v1.2"), None)
        );
        assert_eq!(p("web.service.dc2.consul."), svc("web", None, Some("dc2")));
        assert_eq!(
            p("web.service.dc2.dc.consul."),
            svc("web", None, Some("dc2"))
        );
        assert_eq!(p("service.consul."), Some(DnsQuery::Unknown));
    }

    #[test]
    fn rfc2782_forms() {
        assert_eq!(p("_web._tcp.service.consul."), svc("web", None, None));
        assert_eq!(p("_web._v1.service.consul."), svc("web", Some("v1"), None));
        assert_eq!(
            p("_web._tcp.service.dc1.consul."),
            svc("web", None, Some("dc1"))
        );
        assert_eq!(p("_web._tcp.consul."), svc("web", None, None));
        assert_eq!(p("_web._tcp.dc1.consul."), svc("web", None, Some("dc1")));
        assert_eq!(p("_._tcp.consul."), Some(DnsQuery::Unknown));
    }

    #[test]
    fn addr_hex() {
        assert_eq!(
            p("c000020a.addr.dc1.consul."),
            Some(DnsQuery::Addr {
                ip: "192.0.2.10".parse().unwrap(),
                dc: Some("dc1".into())
            })
        );
        assert_eq!(
            p("20010db8000000000000000000000001.addr.consul."),
            Some(DnsQuery::Addr {
                ip: "2001:db8::1".parse().unwrap(),
                dc: None
            })
        );
        assert_eq!(p("c00002.addr.consul."), Some(DnsQuery::Unknown));
        assert_eq!(p("zz00020a.addr.consul."), Some(DnsQuery::Unknown));
        assert_eq!(hex_ip("192.0.2.10".parse().unwrap()), "c000020a");
        assert_eq!(
            hex_ip("2001:db8::1".parse().unwrap()),
            "20010db8000000000000000000000001"
        );
    }

    #[test]
    fn bad_names_are_unknown() {
        assert_eq!(p("foo.consul."), Some(DnsQuery::Unknown));
        assert_eq!(p("a.b.c.consul."), Some(DnsQuery::Unknown));
        assert_eq!(p("foo..node.consul."), Some(DnsQuery::Unknown));
        assert_eq!(p("x.query.consul."), Some(DnsQuery::Unknown));
        assert_eq!(p("web.connect.consul."), Some(DnsQuery::Unknown));
    }

    #[test]
    fn other_domain() {
        assert_eq!(
            parse_query_name("a.node.cairn.internal.", "cairn.internal."),
            node("a", None)
        );
        assert_eq!(parse_query_name("a.node.consul.", "cairn.internal."), None);
    }
}

#[cfg(test)]
mod random_tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    #[test]
    fn random_names_never_panic() {
        let alphabet: Vec<char> = "ab_.é0f-".chars().collect();
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..50_000 {
            let len = rng.random_range(0..24);
            let mut name: String = (0..len)
                .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                .collect();
            if rng.random_bool(0.5) {
                name.push_str(".consul.");
            }
            let _ = parse_query_name(&name, "consul.");
            let _ = crate::dns::parse_reverse_name(&name);
        }
    }
}
