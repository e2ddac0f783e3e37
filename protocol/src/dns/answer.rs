//! Authoritative answers from the store, following Consul's rules: health filtering,
//! shuffling, SRV targets with glue, CNAMEs for host-name addresses, NXDOMAIN vs NODATA
//! with the SOA in the authority section, TTL 0.

use super::name::{hex_ip, DnsQuery};
use super::record::{DnsAnswer, DnsRecord, QueryType, Rcode, RecordData, Soa};
use crate::store::{CheckStatus, InstanceHealth, Node, Store, Weights};
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeMap;
use std::collections::BTreeSet;
use std::net::IpAddr;

/// TTL of every record cairn answers with (Consul's default `node_ttl`/`service_ttl`).
pub const ANSWER_TTL: u32 = 0;
/// How many name servers an NS query on the apex lists at most.
const MAX_NS_RECORDS: usize = 3;

/// The zone being answered for.
#[derive(Debug, Clone)]
pub struct Zone<'a> {
    /// Lower case, with the trailing dot (`consul.`).
    pub domain: &'a str,
    /// This agent's datacenter; other datacenters are NXDOMAIN (no WAN federation yet).
    pub datacenter: &'a str,
    /// SOA serial (Consul uses the current unix time).
    pub soa_serial: u32,
    /// Consul's `dns_config.only_passing`: drop warning instances too.
    pub only_passing: bool,
}

impl Zone<'_> {
    /// `consul. SOA ns.consul. hostmaster.consul. <serial> 3600 600 86400 0`.
    pub fn soa_record(&self) -> DnsRecord {
        DnsRecord::new(
            self.domain,
            ANSWER_TTL,
            RecordData::Soa(Soa {
                mname: format!("ns.{}", self.domain),
                rname: format!("hostmaster.{}", self.domain),
                serial: self.soa_serial,
                refresh: 3600,
                retry: 600,
                expire: 86400,
                minimum: 0,
            }),
        )
    }

    fn node_target(&self, node: &str) -> String {
        format!("{}.node.{}.{}", node, self.datacenter, self.domain)
    }

    fn addr_target(&self, ip: IpAddr) -> String {
        format!("{}.addr.{}.{}", hex_ip(ip), self.datacenter, self.domain)
    }
}

/// What an answer needs from the catalog, decided from the parsed name and type before
/// anything is read: the edge asks its endpoint for exactly this.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup<'q> {
    /// The answer needs no catalog rows.
    Nothing,
    /// One node by name.
    Node(&'q str),
    /// Instances of a service (with at most one tag) and their aggregate status.
    Service { name: &'q str, tag: Option<&'q str> },
}

/// The name servers are the healthy instances of this service.
const SERVERS_SERVICE: &str = "consul";

/// The rows `query` (asked for `qtype`) needs.
pub fn lookup_for<'q>(zone: &Zone<'_>, qtype: QueryType, query: &'q DnsQuery) -> Lookup<'q> {
    if query
        .dc()
        .is_some_and(|dc| !dc.eq_ignore_ascii_case(zone.datacenter))
    {
        return Lookup::Nothing;
    }
    match query {
        DnsQuery::Apex if qtype == QueryType::Ns => Lookup::Service {
            name: SERVERS_SERVICE,
            tag: None,
        },
        DnsQuery::Node { name, .. } => Lookup::Node(name),
        DnsQuery::Service { name, tag, .. } => Lookup::Service {
            name,
            tag: tag.as_deref(),
        },
        _ => Lookup::Nothing,
    }
}

/// What DNS needs of one service instance, borrowed from the store or from an
/// endpoint's rows: where it is, its weights and how healthy it is (no check lists, no
/// catalog fields DNS never prints).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DnsInstance<'a> {
    pub node: &'a str,
    pub node_address: &'a str,
    /// Published as TXT next to SRV glue.
    pub node_meta: &'a BTreeMap<String, String>,
    /// Empty: the node's address is used.
    pub service_address: &'a str,
    pub port: u16,
    pub weights: Weights,
    /// Worst status over the checks affecting the instance.
    pub status: CheckStatus,
}

impl<'a> From<&InstanceHealth<'a>> for DnsInstance<'a> {
    fn from(i: &InstanceHealth<'a>) -> DnsInstance<'a> {
        DnsInstance {
            node: &i.node.node,
            node_address: &i.node.address,
            node_meta: &i.node.meta,
            service_address: &i.service.address,
            port: i.service.port,
            weights: i.service.weights,
            status: i.status,
        }
    }
}

/// The rows found for a [`Lookup`], borrowed from the store or from owned rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Found<'a> {
    Nothing,
    Node(Option<&'a Node>),
    Instances(Vec<DnsInstance<'a>>),
}

impl<'a> Found<'a> {
    /// Read a lookup straight from a store.
    pub fn in_store(store: &'a Store, lookup: Lookup<'_>) -> Found<'a> {
        match lookup {
            Lookup::Nothing => Found::Nothing,
            Lookup::Node(name) => Found::Node(store.node(name)),
            Lookup::Service { name, tag } => {
                let tags: Vec<String> = tag.map(|t| vec![t.to_string()]).unwrap_or_default();
                let instances = store.service_instances_health(name, &tags);
                Found::Instances(instances.iter().map(DnsInstance::from).collect())
            }
        }
    }
}

/// Answer `query` (the parsed form of `qname`, a name inside the zone) for `qtype`,
/// reading the store. `qname` is echoed as the owner of direct answers, in the case it
/// was asked.
pub fn build_answer<R: Rng + ?Sized>(
    store: &Store,
    zone: &Zone<'_>,
    qname: &str,
    qtype: QueryType,
    query: &DnsQuery,
    rng: &mut R,
) -> DnsAnswer {
    let found = Found::in_store(store, lookup_for(zone, qtype, query));
    answer_from(found, zone, qname, qtype, query, rng)
}

fn instances(found: Found<'_>) -> Vec<DnsInstance<'_>> {
    match found {
        Found::Instances(instances) => instances,
        _ => Vec::new(),
    }
}

/// [`build_answer`] from the rows of [`lookup_for`] (found by whoever holds the store).
/// Rows of another lookup than the query's are treated as not found.
pub fn answer_from<R: Rng + ?Sized>(
    found: Found<'_>,
    zone: &Zone<'_>,
    qname: &str,
    qtype: QueryType,
    query: &DnsQuery,
    rng: &mut R,
) -> DnsAnswer {
    if let Some(dc) = query.dc() {
        if !dc.eq_ignore_ascii_case(zone.datacenter) {
            return negative(zone, Rcode::NxDomain);
        }
    }
    let owner = absolute(qname);
    let answer = match query {
        DnsQuery::Apex => apex_answer(instances(found), zone, &owner, qtype, rng),
        DnsQuery::Node { .. } => {
            let node = match found {
                Found::Node(node) => node,
                _ => None,
            };
            node_answer(node, &owner, qtype)
        }
        DnsQuery::Service { .. } => service_answer(instances(found), zone, &owner, qtype, rng),
        DnsQuery::Addr { ip, .. } => {
            let mut answer = DnsAnswer::new(Rcode::NoError);
            push_ip(&mut answer.answers, &owner, *ip, qtype);
            answer
        }
        DnsQuery::Unknown => DnsAnswer::new(Rcode::NxDomain),
    };
    with_soa_when_empty(zone, answer)
}

/// NXDOMAIN, or NODATA (NOERROR with no answers): both carry the SOA as authority.
fn negative(zone: &Zone<'_>, rcode: Rcode) -> DnsAnswer {
    let mut answer = DnsAnswer::new(rcode);
    answer.authorities.push(zone.soa_record());
    answer
}

fn with_soa_when_empty(zone: &Zone<'_>, mut answer: DnsAnswer) -> DnsAnswer {
    if answer.answers.is_empty() {
        answer.additionals.clear();
        answer.hosts_to_resolve.clear();
        answer.authorities = vec![zone.soa_record()];
    }
    answer
}

fn apex_answer<R: Rng + ?Sized>(
    mut servers: Vec<DnsInstance<'_>>,
    zone: &Zone<'_>,
    owner: &str,
    qtype: QueryType,
    rng: &mut R,
) -> DnsAnswer {
    let mut answer = DnsAnswer::new(Rcode::NoError);
    match qtype {
        QueryType::Soa | QueryType::Any => {
            let mut soa = zone.soa_record();
            soa.name = owner.to_string();
            answer.answers.push(soa);
        }
        QueryType::Ns => {
            // The servers are the healthy instances of the `consul` service, a random few.
            servers.retain(|i| is_healthy(i, false));
            servers.shuffle(rng);
            for instance in &servers {
                if answer.answers.len() == MAX_NS_RECORDS {
                    break;
                }
                let Some(ip) = parse_ip(instance.node_address) else {
                    continue;
                };
                let target = zone.node_target(instance.node);
                if answer
                    .answers
                    .iter()
                    .any(|r| r.data == RecordData::Ns(target.clone()))
                {
                    continue;
                }
                answer.answers.push(DnsRecord::new(
                    owner,
                    ANSWER_TTL,
                    RecordData::Ns(target.clone()),
                ));
                push_ip(&mut answer.additionals, &target, ip, QueryType::Any);
            }
        }
        _ => {}
    }
    answer
}

fn node_answer(node: Option<&Node>, owner: &str, qtype: QueryType) -> DnsAnswer {
    let Some(node) = node else {
        return DnsAnswer::new(Rcode::NxDomain);
    };
    let mut answer = DnsAnswer::new(Rcode::NoError);
    match classify(&node.address) {
        Address::Ip(ip) => push_ip(&mut answer.answers, owner, ip, qtype),
        Address::Host(host) => push_cname(&mut answer, owner, host, qtype),
        Address::Empty => {}
    }
    match qtype {
        QueryType::Txt | QueryType::Any => answer.answers.extend(meta_txt(owner, &node.meta)),
        _ if !answer.answers.is_empty() => answer.additionals.extend(meta_txt(owner, &node.meta)),
        _ => {}
    }
    answer
}

fn service_answer<R: Rng + ?Sized>(
    mut instances: Vec<DnsInstance<'_>>,
    zone: &Zone<'_>,
    owner: &str,
    qtype: QueryType,
    rng: &mut R,
) -> DnsAnswer {
    instances.retain(|i| is_healthy(i, zone.only_passing));
    if instances.is_empty() {
        return DnsAnswer::new(Rcode::NxDomain);
    }
    instances.shuffle(rng);
    let mut answer = DnsAnswer::new(Rcode::NoError);
    let mut seen = Seen::default();
    if qtype == QueryType::Srv {
        for instance in &instances {
            push_srv(&mut answer, &mut seen, zone, owner, instance);
        }
        return answer;
    }
    let mut cnames = DnsAnswer::new(Rcode::NoError);
    let mut any_ip = false;
    for instance in &instances {
        match classify(instance_address(instance)) {
            Address::Ip(ip) => {
                any_ip = true;
                if seen.answer_ips.insert(ip) {
                    answer.answers.extend(ip_record(owner, ip, qtype));
                }
            }
            Address::Host(host) => {
                if seen.cnames.insert(absolute(host)) {
                    push_cname(&mut cnames, owner, host, qtype);
                }
            }
            Address::Empty => {}
        }
    }
    // As Consul: CNAMEs only when no instance has an IP address.
    if any_ip {
        answer
    } else {
        cnames
    }
}

/// What a service answer already holds. A name may have tens of thousands of instances
/// and every DNS query for it builds the answer again, so duplicates are found in sets
/// (O(log n)) rather than by scanning the records built so far (which was quadratic).
#[derive(Default)]
struct Seen {
    /// Addresses already answered (A/AAAA answers of one owner differ only by address).
    answer_ips: BTreeSet<IpAddr>,
    /// CNAME targets already answered.
    cnames: BTreeSet<String>,
    /// (target, port) of the SRV records already answered.
    srv: BTreeSet<(String, u16)>,
    /// SRV targets whose glue is already in the additional section.
    glue_targets: BTreeSet<String>,
    /// Addresses already used as glue (an address is glued once, as before).
    glue_ips: BTreeSet<IpAddr>,
    /// Host names already queued for the recursors.
    hosts: BTreeSet<String>,
}

fn push_srv(
    answer: &mut DnsAnswer,
    seen: &mut Seen,
    zone: &Zone<'_>,
    owner: &str,
    instance: &DnsInstance<'_>,
) {
    let weight = if instance.status == CheckStatus::Warning {
        instance.weights.warning
    } else {
        instance.weights.passing
    };
    let weight = weight.clamp(0, i32::from(u16::MAX)) as u16;
    let (target, glue_ip, node_form) = if !instance.service_address.is_empty() {
        match classify(instance.service_address) {
            Address::Ip(ip) => (zone.addr_target(ip), Some(ip), false),
            Address::Host(host) => (absolute(host), None, false),
            Address::Empty => return,
        }
    } else {
        match classify(instance.node_address) {
            Address::Ip(ip) => (zone.node_target(instance.node), Some(ip), true),
            Address::Host(host) => (absolute(host), None, false),
            Address::Empty => return,
        }
    };
    if !seen.srv.insert((target.clone(), instance.port)) {
        return;
    }
    let srv = RecordData::Srv {
        priority: 1,
        weight,
        port: instance.port,
        target: target.clone(),
    };
    answer.answers.push(DnsRecord::new(owner, ANSWER_TTL, srv));
    match glue_ip {
        Some(ip) if !seen.glue_targets.contains(&target) => {
            seen.glue_targets.insert(target.clone());
            if seen.glue_ips.insert(ip) {
                answer
                    .additionals
                    .extend(ip_record(&target, ip, QueryType::Any));
            }
            if node_form {
                answer
                    .additionals
                    .extend(meta_txt(&target, instance.node_meta));
            }
        }
        Some(_) => {}
        None => {
            if seen.hosts.insert(target.clone()) {
                answer.hosts_to_resolve.push(target);
            }
        }
    }
}

/// The A or AAAA record of `ip` when `qtype` asks for that family.
fn ip_record(owner: &str, ip: IpAddr, qtype: QueryType) -> Option<DnsRecord> {
    let data = match (ip, qtype) {
        (IpAddr::V4(v4), QueryType::A | QueryType::Any) => RecordData::A(v4),
        (IpAddr::V6(v6), QueryType::Aaaa | QueryType::Any) => RecordData::Aaaa(v6),
        _ => return None,
    };
    Some(DnsRecord::new(owner, ANSWER_TTL, data))
}

/// Add an address record unless an equal one is there (for the short lists: apex, node).
fn push_ip(records: &mut Vec<DnsRecord>, owner: &str, ip: IpAddr, qtype: QueryType) {
    if let Some(record) = ip_record(owner, ip, qtype) {
        if !records.iter().any(|r| r.data == record.data) {
            records.push(record);
        }
    }
}

fn push_cname(answer: &mut DnsAnswer, owner: &str, host: &str, qtype: QueryType) {
    if !matches!(
        qtype,
        QueryType::A | QueryType::Aaaa | QueryType::Any | QueryType::Cname
    ) {
        return;
    }
    let target = absolute(host);
    let data = RecordData::Cname(target.clone());
    if answer.answers.iter().any(|r| r.data == data) {
        return;
    }
    answer.answers.push(DnsRecord::new(owner, ANSWER_TTL, data));
    if qtype != QueryType::Cname {
        answer.hosts_to_resolve.push(target);
    }
}

/// Node meta as RFC 1464 TXT records; `rfc1035-` keys carry the raw value only.
fn meta_txt(owner: &str, meta: &BTreeMap<String, String>) -> Vec<DnsRecord> {
    meta.iter()
        .map(|(key, value)| {
            let text = if key.starts_with("rfc1035-") {
                value.clone()
            } else {
                format!("{}={}", rfc1464_key(key), value)
            };
            DnsRecord::new(owner, ANSWER_TTL, RecordData::Txt(text))
        })
        .collect()
}

/// RFC 1464: a backquote escapes `=`, backquote and blanks in the attribute name.
fn rfc1464_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        if matches!(c, '=' | '`' | ' ' | '\t') {
            out.push('`');
        }
        out.push(c);
    }
    out
}

/// Healthy for DNS: no critical (or maintenance) check; warning only when allowed.
fn is_healthy(instance: &DnsInstance<'_>, only_passing: bool) -> bool {
    match instance.status {
        CheckStatus::Passing => true,
        CheckStatus::Warning => !only_passing,
        CheckStatus::Critical | CheckStatus::Maintenance => false,
    }
}

fn instance_address<'a>(instance: &DnsInstance<'a>) -> &'a str {
    if instance.service_address.is_empty() {
        instance.node_address
    } else {
        instance.service_address
    }
}

enum Address<'a> {
    Ip(IpAddr),
    Host(&'a str),
    Empty,
}

fn classify(address: &str) -> Address<'_> {
    if address.is_empty() {
        Address::Empty
    } else if let Some(ip) = parse_ip(address) {
        Address::Ip(ip)
    } else {
        Address::Host(address)
    }
}

fn parse_ip(address: &str) -> Option<IpAddr> {
    address.parse().ok()
}

fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}
