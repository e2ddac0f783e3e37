//! Reverse lookups (PTR): an address back to `<node>.node.<dc>.<domain>`, or, failing a
//! node, to `<service>.service.<dc>.<domain>` for a service registered with that address.

use super::answer::{Zone, ANSWER_TTL};
use super::record::{DnsAnswer, DnsRecord, Rcode, RecordData};
use crate::api::answer::address_owners;
use crate::api::AddressOwners;
use crate::store::Store;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `10.2.0.192.in-addr.arpa.` → 192.0.2.10; 32 nibbles `.ip6.arpa.` → an IPv6 address.
/// Anything else (including partial reverse names) is `None`.
pub fn parse_reverse_name(qname: &str) -> Option<IpAddr> {
    let name = qname
        .strip_suffix('.')
        .unwrap_or(qname)
        .to_ascii_lowercase();
    if let Some(rest) = name.strip_suffix(".in-addr.arpa") {
        let mut octets = [0u8; 4];
        let labels: Vec<&str> = rest.split('.').collect();
        if labels.len() != 4 {
            return None;
        }
        for (i, label) in labels.iter().rev().enumerate() {
            if label.is_empty() || label.len() > 3 || !label.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            octets[i] = label.parse().ok()?;
        }
        return Some(IpAddr::V4(Ipv4Addr::from(octets)));
    }
    if let Some(rest) = name.strip_suffix(".ip6.arpa") {
        let nibbles: Vec<&str> = rest.split('.').collect();
        if nibbles.len() != 32 {
            return None;
        }
        let mut value: u128 = 0;
        for nibble in nibbles.iter().rev() {
            let [digit] = nibble.as_bytes() else {
                return None;
            };
            value = (value << 4) | u128::from(char::from(*digit).to_digit(16)?);
        }
        return Some(IpAddr::V6(Ipv6Addr::from(value)));
    }
    None
}

/// PTR answer for `ip` from the store: nodes with that address, else services with an
/// instance at that address. `None` when nothing here has that address.
pub fn build_ptr_answer(
    store: &Store,
    zone: &Zone<'_>,
    qname: &str,
    ip: IpAddr,
) -> Option<DnsAnswer> {
    ptr_answer_from(&address_owners(store, ip), zone, qname)
}

/// [`build_ptr_answer`] from the owners of the address (found by whoever holds the store).
pub fn ptr_answer_from(owners: &AddressOwners, zone: &Zone<'_>, qname: &str) -> Option<DnsAnswer> {
    let owner = if qname.ends_with('.') {
        qname.to_string()
    } else {
        format!("{qname}.")
    };
    let targets = owners
        .nodes
        .iter()
        .map(|node| format!("{}.node.{}.{}", node, zone.datacenter, zone.domain))
        .chain(
            owners
                .services
                .iter()
                .map(|name| format!("{}.service.{}.{}", name, zone.datacenter, zone.domain)),
        );
    let mut answer = DnsAnswer::new(Rcode::NoError);
    for target in targets {
        answer.answers.push(DnsRecord::new(
            owner.clone(),
            ANSWER_TTL,
            RecordData::Ptr(target),
        ));
    }
    (!answer.answers.is_empty()).then_some(answer)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Command, Node, RegisterRequest, Service};

    #[test]
    fn reverse_names() {
        assert_eq!(
            parse_reverse_name("10.2.0.192.in-addr.arpa."),
            Some("192.0.2.10".parse().unwrap())
        );
        assert_eq!(
            parse_reverse_name("10.2.0.192.IN-ADDR.ARPA"),
            Some("192.0.2.10".parse().unwrap())
        );
        let v6 = "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa.";
        assert_eq!(parse_reverse_name(v6), Some("2001:db8::1".parse().unwrap()));
        assert_eq!(parse_reverse_name("2.0.192.in-addr.arpa."), None);
        assert_eq!(parse_reverse_name("300.2.0.192.in-addr.arpa."), None);
        assert_eq!(parse_reverse_name("www.example.com."), None);
    }

    #[test]
    fn ptr_for_node_then_service_address() {
        let mut store = Store::new();
        let req = RegisterRequest {
            node: Node {
                node: "foo".into(),
                address: "10.0.0.1".into(),
                ..Node::default()
            },
            service: Some(Service {
                service: "db".into(),
                address: "10.0.0.99".into(),
                ..Service::default()
            }),
            ..RegisterRequest::default()
        };
        store.apply(1, &Command::Register(req));
        let zone = Zone {
            domain: "consul.",
            datacenter: "dc1",
            soa_serial: 1,
            only_passing: false,
        };
        let ptr = |ip: &str| {
            build_ptr_answer(&store, &zone, "q.in-addr.arpa.", ip.parse().unwrap())
                .map(|a| a.answers)
        };
        assert_eq!(
            ptr("10.0.0.1"),
            Some(vec![DnsRecord::new(
                "q.in-addr.arpa.",
                0,
                RecordData::Ptr("foo.node.dc1.consul.".into())
            )])
        );
        assert_eq!(
            ptr("10.0.0.99"),
            Some(vec![DnsRecord::new(
                "q.in-addr.arpa.",
                0,
                RecordData::Ptr("db.service.dc1.consul.".into())
            )])
        );
        assert_eq!(ptr("10.0.0.2"), None);
    }
}
