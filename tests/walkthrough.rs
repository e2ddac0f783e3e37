//! The seed walkthrough, command for command, against the real binary on 127.0.0.10:
//! single server, catalog of external services, DNS (CNAME to the external host names),
//! KV, then kill -9 and restart on the same data dir with nothing acknowledged lost.

mod common;

use common::dns::{rcode, render, udp_query, FakeUpstream};
use common::{http_client, wait_for, Agent};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{json, Value};

const IP: &str = "127.0.0.10";

fn register(client: &reqwest::blocking::Client, agent: &Agent, body: &str) {
    let resp = client
        .put(agent.url("/v1/catalog/register"))
        .body(body.to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "true");
}

fn get_json(client: &reqwest::blocking::Client, url: &str) -> Value {
    let resp = client.get(url).send().unwrap();
    assert_eq!(resp.status(), 200, "GET {url}");
    resp.json().unwrap()
}

#[test]
fn seed_walkthrough_then_kill_and_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("n1");
    let mut agent = Agent::server(IP, "node1", &data_dir, &[]);
    let client = http_client();

    // The server registered itself.
    let nodes = get_json(&client, &agent.url("/v1/catalog/nodes"));
    let nodes = nodes.as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert_eq!(nodes[0]["Node"], "node1");
    assert_eq!(nodes[0]["Address"], IP);
    assert_eq!(nodes[0]["Datacenter"], "dc1");

    // External services.
    register(
        &client,
        &agent,
        r#"{"Datacenter": "dc1", "Node": "google", "Address": "www.google.com", "Service": {"Service": "search", "Port": 80}}"#,
    );
    register(
        &client,
        &agent,
        r#"{"Datacenter": "dc1", "Node": "bing", "Address": "www.bing.com", "Service": {"Service": "search", "Port": 80}}"#,
    );
    assert_eq!(
        get_json(&client, &agent.url("/v1/catalog/services")),
        json!({"consul": [], "search": []})
    );

    let search = get_json(&client, &agent.url("/v1/catalog/service/search"));
    let mut search = search.as_array().unwrap().clone();
    search.sort_by_key(|e| e["Node"].as_str().unwrap().to_string());
    assert_eq!(search.len(), 2);
    for (entry, (node, addr)) in search
        .iter()
        .zip([("bing", "www.bing.com"), ("google", "www.google.com")])
    {
        assert_eq!(entry["Node"], node);
        assert_eq!(entry["Address"], addr);
        assert_eq!(entry["ServiceID"], "search");
        assert_eq!(entry["ServiceName"], "search");
        assert_eq!(entry["ServiceTags"], json!([]));
        assert_eq!(entry["ServicePort"], 80);
        assert_eq!(entry["Datacenter"], "dc1");
        assert!(entry["CreateIndex"].as_u64().unwrap() > 0);
        assert!(entry["ModifyIndex"].as_u64().unwrap() >= entry["CreateIndex"].as_u64().unwrap());
    }

    // DNS: a CNAME per external host name, TTL 0, authoritative.
    let reply = udp_query(agent.dns_addr(), "search.service.consul.", RecordType::A);
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert!(reply.metadata.authoritative);
    assert_eq!(
        render(&reply.answers),
        vec![
            "search.service.consul. 0 CNAME www.bing.com.".to_string(),
            "search.service.consul. 0 CNAME www.google.com.".to_string(),
        ]
    );
    let node_reply = udp_query(agent.dns_addr(), "node1.node.consul.", RecordType::A);
    assert_eq!(
        render(&node_reply.answers),
        vec![format!("node1.node.consul. 0 A {IP}")]
    );
    let missing = udp_query(agent.dns_addr(), "nothing.service.consul.", RecordType::A);
    assert_eq!(rcode(&missing), ResponseCode::NXDomain);
    assert_eq!(missing.authorities.len(), 1, "NXDOMAIN carries the SOA");
    // Outside the domain with no recursor configured: REFUSED.
    let outside = udp_query(agent.dns_addr(), "example.org.", RecordType::A);
    assert_eq!(rcode(&outside), ResponseCode::Refused);

    // KV: missing key is 404 with an index header and an empty body.
    let resp = client.get(agent.url("/v1/kv/key1")).send().unwrap();
    assert_eq!(resp.status(), 404);
    let index: u64 = resp.headers()["X-Consul-Index"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(index >= 1);
    assert_eq!(resp.text().unwrap(), "");

    let resp = client
        .put(agent.url("/v1/kv/key1"))
        .body("test")
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().unwrap(), "true");

    let kv = get_json(&client, &agent.url("/v1/kv/key1"));
    let entry = &kv[0];
    assert_eq!(entry["Key"], "key1");
    assert_eq!(entry["Value"], "dGVzdA==");
    assert_eq!(entry["Flags"], 0);
    assert_eq!(entry["LockIndex"], 0);
    assert!(entry.get("Session").is_none());
    let create_index = entry["CreateIndex"].as_u64().unwrap();
    assert!(create_index > index);
    assert_eq!(entry["ModifyIndex"], entry["CreateIndex"]);

    // Many more acknowledged writes, then SIGKILL: every one must survive.
    let big_flags = 3304740253564472344u64;
    for i in 0..50 {
        let url = agent.url(&format!("/v1/kv/many/{i}?flags={big_flags}"));
        let resp = client.put(url).body(format!("value-{i}")).send().unwrap();
        assert_eq!(resp.text().unwrap(), "true");
    }
    agent.kill9();

    // Restart on the same data dir, this time with a recursor for the external names.
    let upstream = FakeUpstream::start(
        "127.0.0.30:0",
        &[
            ("www.google.com.", "192.0.2.1"),
            ("www.bing.com.", "192.0.2.2"),
        ],
    );
    let recursor = upstream.addr.to_string();
    let agent = Agent::server(IP, "node1", &data_dir, &["-recursor", &recursor]);
    let kv = get_json(&client, &agent.url("/v1/kv/key1"));
    assert_eq!(kv[0]["Value"], "dGVzdA==");
    assert_eq!(kv[0]["CreateIndex"].as_u64().unwrap(), create_index);
    let all = get_json(&client, &agent.url("/v1/kv/many/?recurse"));
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 50);
    for entry in all {
        assert_eq!(entry["Flags"].as_u64().unwrap(), big_flags);
    }
    let search = get_json(&client, &agent.url("/v1/catalog/service/search"));
    assert_eq!(search.as_array().unwrap().len(), 2);

    // With a recursor the CNAME answers come with the host names' A records.
    let reply = wait_for("recursor-backed answer", || {
        let r = udp_query(agent.dns_addr(), "search.service.consul.", RecordType::A);
        (r.answers.len() == 4).then_some(r)
    });
    assert_eq!(
        render(&reply.answers),
        vec![
            "search.service.consul. 0 CNAME www.bing.com.".to_string(),
            "search.service.consul. 0 CNAME www.google.com.".to_string(),
            "www.bing.com. 300 A 192.0.2.2".to_string(),
            "www.google.com. 300 A 192.0.2.1".to_string(),
        ]
    );
    // And names outside the domain are forwarded.
    let outside = udp_query(agent.dns_addr(), "www.google.com.", RecordType::A);
    assert_eq!(
        render(&outside.answers),
        vec!["www.google.com. 300 A 192.0.2.1".to_string()]
    );
}

#[test]
fn dns_over_tcp_and_hickory_resolver() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = Agent::server("127.0.0.11", "tcpnode", &tmp.path().join("d"), &[]);
    let reply = common::dns::tcp_query(agent.dns_addr(), "tcpnode.node.dc1.consul.", RecordType::A);
    assert_eq!(
        render(&reply.answers),
        vec!["tcpnode.node.dc1.consul. 0 A 127.0.0.11".to_string()]
    );

    // hickory's own resolver, pointed at the agent, resolves the consul service.
    use hickory_resolver::config::{NameServerConfig, ResolverConfig};
    use hickory_resolver::net::runtime::TokioRuntimeProvider;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ips = rt.block_on(async {
        let mut ns = NameServerConfig::udp_and_tcp("127.0.0.11".parse().unwrap());
        for c in ns.connections.iter_mut() {
            c.port = 8600;
        }
        let config = ResolverConfig::from_name_servers(vec![ns]);
        let resolver = hickory_resolver::Resolver::builder_with_config(
            config,
            TokioRuntimeProvider::default(),
        )
        .build()
        .unwrap();
        let lookup = resolver.lookup_ip("consul.service.consul.").await.unwrap();
        lookup.iter().map(|ip| ip.to_string()).collect::<Vec<_>>()
    });
    assert_eq!(ips, vec!["127.0.0.11".to_string()]);
}
