//! Exact-output tests of answer building against a real store.

use super::*;
use crate::store::{
    Check, CheckStatus, Command, CommandResult, Node, RegisterRequest, Service, Store, Weights,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
use std::collections::BTreeMap;

const ZONE: Zone<'static> = Zone {
    domain: "consul.",
    datacenter: "dc1",
    soa_serial: 7,
    only_passing: false,
};

struct Fixture {
    store: Store,
    index: u64,
}

impl Fixture {
    fn new() -> Fixture {
        Fixture {
            store: Store::new(),
            index: 0,
        }
    }

    fn register(
        &mut self,
        node: &str,
        address: &str,
        service: Option<Service>,
        checks: Vec<Check>,
    ) {
        self.index += 1;
        let req = RegisterRequest {
            node: Node {
                node: node.into(),
                address: address.into(),
                datacenter: "dc1".into(),
                ..Node::default()
            },
            skip_node_update: false,
            service,
            checks,
        };
        assert_eq!(
            self.store.apply(self.index, &Command::Register(req)),
            CommandResult::Done
        );
    }

    fn service(
        &mut self,
        node: &str,
        node_addr: &str,
        name: &str,
        address: &str,
        port: u16,
        tags: &[&str],
    ) {
        let svc = Service {
            id: name.into(),
            service: name.into(),
            address: address.into(),
            port,
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Service::default()
        };
        self.register(node, node_addr, Some(svc), vec![]);
    }

    fn check(
        &mut self,
        node: &str,
        node_addr: &str,
        id: &str,
        service_id: &str,
        status: CheckStatus,
    ) {
        let check = Check {
            node: node.into(),
            check_id: id.into(),
            name: id.into(),
            status,
            service_id: service_id.into(),
            ..Check::default()
        };
        self.register(node, node_addr, None, vec![check]);
    }

    fn ask(&self, qname: &str, qtype: QueryType) -> DnsAnswer {
        let query = parse_query_name(qname, ZONE.domain).expect("inside the domain");
        build_answer(
            &self.store,
            &ZONE,
            qname,
            qtype,
            &query,
            &mut StdRng::seed_from_u64(1),
        )
    }
}

fn a(name: &str, ip: &str) -> DnsRecord {
    DnsRecord::new(name, 0, RecordData::A(ip.parse().unwrap()))
}
fn srv(name: &str, weight: u16, port: u16, target: &str) -> DnsRecord {
    DnsRecord::new(
        name,
        0,
        RecordData::Srv {
            priority: 1,
            weight,
            port,
            target: target.into(),
        },
    )
}
fn soa() -> DnsRecord {
    ZONE.soa_record()
}
fn sorted(mut records: Vec<DnsRecord>) -> Vec<DnsRecord> {
    records.sort_by_key(|r| format!("{r:?}"));
    records
}

#[test]
fn soa_record_shape() {
    assert_eq!(
        soa(),
        DnsRecord::new(
            "consul.",
            0,
            RecordData::Soa(Soa {
                mname: "ns.consul.".into(),
                rname: "hostmaster.consul.".into(),
                serial: 7,
                refresh: 3600,
                retry: 600,
                expire: 86400,
                minimum: 0
            })
        )
    );
}

#[test]
fn node_a_with_meta_txt_in_additional() {
    let mut f = Fixture::new();
    f.register("foo", "10.1.1.1", None, vec![]);
    let answer = f.ask("Foo.node.consul.", QueryType::A);
    assert_eq!(answer.rcode, Rcode::NoError);
    assert_eq!(answer.answers, vec![a("Foo.node.consul.", "10.1.1.1")]);
    assert!(answer.authorities.is_empty());

    // Node meta as TXT: additional for A, answer for TXT.
    f.index += 1;
    let meta = BTreeMap::from([
        ("rack".to_string(), "r1".to_string()),
        ("rfc1035-x".to_string(), "raw".to_string()),
    ]);
    let req = RegisterRequest {
        node: Node {
            node: "foo".into(),
            address: "10.1.1.1".into(),
            meta,
            ..Node::default()
        },
        ..RegisterRequest::default()
    };
    f.store.apply(f.index, &Command::Register(req));
    let answer = f.ask("foo.node.dc1.consul.", QueryType::A);
    assert_eq!(
        answer.additionals,
        vec![
            DnsRecord::new("foo.node.dc1.consul.", 0, RecordData::Txt("rack=r1".into())),
            DnsRecord::new("foo.node.dc1.consul.", 0, RecordData::Txt("raw".into())),
        ]
    );
    let answer = f.ask("foo.node.consul.", QueryType::Txt);
    assert_eq!(answer.answers.len(), 2);
}

#[test]
fn node_nodata_and_nxdomain() {
    let mut f = Fixture::new();
    f.register("foo", "10.1.1.1", None, vec![]);
    let nodata = f.ask("foo.node.consul.", QueryType::Aaaa);
    assert_eq!(
        (nodata.rcode, nodata.answers, nodata.authorities),
        (Rcode::NoError, vec![], vec![soa()])
    );
    let nx = f.ask("bar.node.consul.", QueryType::A);
    assert_eq!(
        (nx.rcode, nx.answers, nx.authorities),
        (Rcode::NxDomain, vec![], vec![soa()])
    );
    let other_dc = f.ask("foo.node.dc2.consul.", QueryType::A);
    assert_eq!(
        (other_dc.rcode, other_dc.authorities),
        (Rcode::NxDomain, vec![soa()])
    );
    let unknown = f.ask("what.consul.", QueryType::A);
    assert_eq!(
        (unknown.rcode, unknown.authorities),
        (Rcode::NxDomain, vec![soa()])
    );
}

#[test]
fn service_a_uses_service_address_else_node_address_deduplicated() {
    let mut f = Fixture::new();
    f.service("n1", "10.0.0.1", "web", "", 80, &[]);
    f.service("n2", "10.0.0.2", "web", "192.0.2.10", 80, &[]);
    f.service("n3", "10.0.0.3", "web", "10.0.0.1", 80, &[]);
    let answer = f.ask("web.service.consul.", QueryType::A);
    assert_eq!(answer.rcode, Rcode::NoError);
    assert_eq!(
        sorted(answer.answers),
        vec![
            a("web.service.consul.", "10.0.0.1"),
            a("web.service.consul.", "192.0.2.10")
        ]
    );
    assert!(answer.authorities.is_empty());
}

#[test]
fn service_answers_are_shuffled_by_the_rng() {
    let mut f = Fixture::new();
    for i in 0..8 {
        f.service(&format!("n{i}"), &format!("10.0.0.{i}"), "web", "", 80, &[]);
    }
    let query = parse_query_name("web.service.consul.", "consul.").unwrap();
    let orders: std::collections::BTreeSet<String> = (0..5)
        .map(|seed| {
            build_answer(
                &f.store,
                &ZONE,
                "web.service.consul.",
                QueryType::A,
                &query,
                &mut StdRng::seed_from_u64(seed),
            )
            .answers
        })
        .inspect(|answers| assert_eq!(answers.len(), 8))
        .map(|answers| format!("{answers:?}"))
        .collect();
    assert!(orders.len() > 1, "different seeds give different orders");
}

#[test]
fn critical_instances_are_omitted_warning_kept() {
    let mut f = Fixture::new();
    f.service("n1", "10.0.0.1", "web", "", 80, &[]);
    f.service("n2", "10.0.0.2", "web", "", 80, &[]);
    f.service("n3", "10.0.0.3", "web", "", 80, &[]);
    f.check("n1", "10.0.0.1", "serfHealth", "", CheckStatus::Critical);
    f.check("n2", "10.0.0.2", "svc", "web", CheckStatus::Critical);
    f.check("n3", "10.0.0.3", "svc", "web", CheckStatus::Warning);
    let answer = f.ask("web.service.consul.", QueryType::A);
    assert_eq!(answer.answers, vec![a("web.service.consul.", "10.0.0.3")]);

    let mut only_passing = ZONE.clone();
    only_passing.only_passing = true;
    let query = parse_query_name("web.service.consul.", "consul.").unwrap();
    let answer = build_answer(
        &f.store,
        &only_passing,
        "web.service.consul.",
        QueryType::A,
        &query,
        &mut StdRng::seed_from_u64(1),
    );
    assert_eq!(
        (answer.rcode, answer.authorities),
        (Rcode::NxDomain, vec![soa()])
    );
}

#[test]
fn all_critical_or_unknown_service_is_nxdomain() {
    let mut f = Fixture::new();
    f.service("n1", "10.0.0.1", "web", "", 80, &[]);
    f.check("n1", "10.0.0.1", "serfHealth", "", CheckStatus::Critical);
    for name in ["web.service.consul.", "db.service.consul."] {
        let answer = f.ask(name, QueryType::A);
        assert_eq!(
            (answer.rcode, answer.answers, answer.authorities),
            (Rcode::NxDomain, vec![], vec![soa()])
        );
    }
}

#[test]
fn service_tag_filter() {
    let mut f = Fixture::new();
    f.service("n1", "10.0.0.1", "web", "", 80, &["v1.2"]);
    f.service("n2", "10.0.0.2", "web", "", 80, &["v2"]);
    let answer = f.ask("v1.2.web.service.consul.", QueryType::A);
    assert_eq!(
        answer.answers,
        vec![a("v1.2.web.service.consul.", "10.0.0.1")]
    );
    let answer = f.ask("_web._v2.service.consul.", QueryType::Srv);
    assert_eq!(
        answer.answers,
        vec![srv(
            "_web._v2.service.consul.",
            1,
            80,
            "n2.node.dc1.consul."
        )]
    );
}

#[test]
fn srv_targets_and_glue() {
    let mut f = Fixture::new();
    f.service("n1", "10.0.0.1", "web", "", 8080, &[]);
    f.service("n2", "10.0.0.2", "web", "192.0.2.10", 8081, &[]);
    f.service("n3", "10.0.0.3", "web", "web.example.com", 8082, &[]);
    let answer = f.ask("_web._tcp.service.consul.", QueryType::Srv);
    assert_eq!(answer.rcode, Rcode::NoError);
    let owner = "_web._tcp.service.consul.";
    assert_eq!(
        sorted(answer.answers),
        sorted(vec![
            srv(owner, 1, 8080, "n1.node.dc1.consul."),
            srv(owner, 1, 8081, "c000020a.addr.dc1.consul."),
            srv(owner, 1, 8082, "web.example.com."),
        ])
    );
    assert_eq!(
        sorted(answer.additionals),
        vec![
            a("c000020a.addr.dc1.consul.", "192.0.2.10"),
            a("n1.node.dc1.consul.", "10.0.0.1")
        ]
    );
    assert_eq!(
        answer.hosts_to_resolve,
        vec!["web.example.com.".to_string()]
    );
}

#[test]
fn srv_weight_follows_health() {
    let mut f = Fixture::new();
    let svc = Service {
        id: "web".into(),
        service: "web".into(),
        port: 80,
        weights: Weights {
            passing: 10,
            warning: 3,
        },
        ..Service::default()
    };
    f.register("n1", "10.0.0.1", Some(svc.clone()), vec![]);
    f.register("n2", "10.0.0.2", Some(svc), vec![]);
    f.check("n2", "10.0.0.2", "svc", "web", CheckStatus::Warning);
    let answer = f.ask("web.service.consul.", QueryType::Srv);
    assert_eq!(
        sorted(answer.answers),
        vec![
            srv("web.service.consul.", 10, 80, "n1.node.dc1.consul."),
            srv("web.service.consul.", 3, 80, "n2.node.dc1.consul.")
        ]
    );
}

#[test]
fn hostname_address_gives_cname_and_asks_to_resolve() {
    // The seed: node google with Address www.google.com, service search.
    let mut f = Fixture::new();
    f.service("google", "www.google.com", "search", "", 80, &[]);
    let answer = f.ask("search.service.consul.", QueryType::A);
    assert_eq!(answer.rcode, Rcode::NoError);
    assert_eq!(
        answer.answers,
        vec![DnsRecord::new(
            "search.service.consul.",
            0,
            RecordData::Cname("www.google.com.".into())
        )]
    );
    assert_eq!(answer.hosts_to_resolve, vec!["www.google.com.".to_string()]);

    // An instance with an IP wins over host names.
    f.service("local", "10.0.0.9", "search", "", 80, &[]);
    let answer = f.ask("search.service.consul.", QueryType::A);
    assert_eq!(
        answer.answers,
        vec![a("search.service.consul.", "10.0.0.9")]
    );
    assert!(answer.hosts_to_resolve.is_empty());
}

#[test]
fn service_aaaa_on_ipv4_only_is_nodata() {
    let mut f = Fixture::new();
    f.service("n1", "10.0.0.1", "web", "", 80, &[]);
    let answer = f.ask("web.service.consul.", QueryType::Aaaa);
    assert_eq!(
        (answer.rcode, answer.answers, answer.authorities),
        (Rcode::NoError, vec![], vec![soa()])
    );
    f.service("n2", "2001:db8::1", "web6", "", 80, &[]);
    let answer = f.ask("web6.service.consul.", QueryType::Aaaa);
    assert_eq!(
        answer.answers,
        vec![DnsRecord::new(
            "web6.service.consul.",
            0,
            RecordData::Aaaa("2001:db8::1".parse().unwrap())
        )]
    );
}

#[test]
fn addr_and_apex() {
    let f = Fixture::new();
    let answer = f.ask("c000020a.addr.dc1.consul.", QueryType::A);
    assert_eq!(
        answer.answers,
        vec![a("c000020a.addr.dc1.consul.", "192.0.2.10")]
    );
    let answer = f.ask("c000020a.addr.consul.", QueryType::Aaaa);
    assert_eq!(
        (answer.rcode, answer.authorities),
        (Rcode::NoError, vec![soa()])
    );
    let answer = f.ask("consul.", QueryType::Soa);
    assert_eq!(
        (answer.rcode, answer.answers),
        (Rcode::NoError, vec![soa()])
    );
    let answer = f.ask("consul.", QueryType::A);
    assert_eq!(
        (answer.rcode, answer.answers, answer.authorities),
        (Rcode::NoError, vec![], vec![soa()])
    );
}

#[test]
fn apex_ns_lists_consul_servers_with_glue() {
    let mut f = Fixture::new();
    f.service("s1", "10.0.0.1", "consul", "", 8300, &[]);
    let answer = f.ask("consul.", QueryType::Ns);
    assert_eq!(
        answer.answers,
        vec![DnsRecord::new(
            "consul.",
            0,
            RecordData::Ns("s1.node.dc1.consul.".into())
        )]
    );
    assert_eq!(
        answer.additionals,
        vec![a("s1.node.dc1.consul.", "10.0.0.1")]
    );
}

#[test]
fn two_hostname_instances_give_two_cnames() {
    let mut f = Fixture::new();
    f.service("google", "www.google.com", "search", "", 80, &[]);
    f.service("bing", "www.bing.com", "search", "", 80, &[]);
    let answer = f.ask("search.service.consul.", QueryType::A);
    assert_eq!(answer.answers.len(), 2, "{answer:?}");
    assert_eq!(answer.hosts_to_resolve.len(), 2);
}
