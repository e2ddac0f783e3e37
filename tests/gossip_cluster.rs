//! Gossip membership and client agents with real processes on loopback (issue
//! "Gossip membership and client agents"): the walkthrough, failure detection after
//! kill -9, a pause shorter and longer than the suspicion timeout, leave, force-leave,
//! and a client with no server. Addresses 127.0.0.160 to 127.0.0.179, standard ports.

mod common;

use common::dns::{rcode, render, udp_query};
use common::{http_client, run_cairn, wait_for, Agent};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::Value;
use std::path::Path;
use std::time::{Duration, Instant};

fn get_json(agent: &Agent, path: &str) -> Option<Value> {
    http_client().get(agent.url(path)).send().ok()?.json().ok()
}

/// The members an agent knows, as (name, status code).
fn members(agent: &Agent) -> Vec<(String, u64)> {
    let list = get_json(agent, "/v1/agent/members").unwrap_or(Value::Null);
    let mut out: Vec<(String, u64)> = list
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| {
                    (
                        m["Name"].as_str().unwrap_or("").to_string(),
                        m["Status"].as_u64().unwrap_or(0),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The status of `node`'s serfHealth check as `agent` answers it.
fn serf_health(agent: &Agent, node: &str) -> Option<String> {
    let checks = get_json(agent, &format!("/v1/health/node/{node}"))?;
    checks
        .as_array()?
        .iter()
        .find(|c| c["CheckID"] == "serfHealth")
        .and_then(|c| c["Status"].as_str().map(String::from))
}

fn node_names(agent: &Agent) -> Vec<String> {
    let nodes = get_json(agent, "/v1/catalog/nodes").unwrap_or(Value::Null);
    let mut names: Vec<String> = nodes
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["Node"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn dirs(root: &Path, name: &str) -> std::path::PathBuf {
    root.join(name)
}

#[test]
fn walkthrough_clients_forward_and_failures_are_seen_everywhere() {
    let tmp = tempfile::tempdir().unwrap();
    let n1 = Agent::server("127.0.0.160", "node1", &dirs(tmp.path(), "n1"), &[]);
    let n4 = Agent::client(
        "127.0.0.161",
        "node4",
        &dirs(tmp.path(), "n4"),
        &["127.0.0.160"],
    );
    let mut n5 = Agent::client(
        "127.0.0.162",
        "node5",
        &dirs(tmp.path(), "n5"),
        &["127.0.0.161"],
    );

    // Asked of a client, answered by the server: all three nodes.
    let want = vec!["node1".to_string(), "node4".into(), "node5".into()];
    wait_for("three nodes in the catalog, seen from node5", || {
        (node_names(&n5) == want).then_some(())
    });
    wait_for("three alive members everywhere", || {
        [&n1, &n4, &n5]
            .iter()
            .all(|a| {
                members(a)
                    == vec![
                        ("node1".into(), 1),
                        ("node4".into(), 1),
                        ("node5".into(), 1),
                    ]
            })
            .then_some(())
    });
    let list = get_json(&n5, "/v1/agent/members").unwrap();
    let server = list
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["Name"] == "node1")
        .unwrap();
    for tag in ["role", "dc", "port", "id", "vsn", "build"] {
        assert!(
            server["Tags"][tag].is_string(),
            "tag {tag} missing: {server}"
        );
    }
    assert_eq!(server["Tags"]["role"], "consul");
    assert_eq!(server["Addr"], "127.0.0.160");
    assert_eq!(server["Port"], 8301);

    // `cairn members` against a client prints the table.
    let (code, out, err) = run_cairn(&["members", "-http-addr=127.0.0.162:8500"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.starts_with("Node"), "{out}");
    for name in ["node1", "node4", "node5"] {
        assert!(out.contains(name), "{out}");
    }

    // A client answers exactly what the server answers (body and index), and answers
    // agent/self itself.
    let c = http_client();
    for path in [
        "/v1/catalog/nodes",
        "/v1/catalog/services",
        "/v1/health/service/consul",
    ] {
        let from = |a: &Agent| {
            let r = c.get(a.url(path)).send().unwrap();
            let index = r.headers()["X-Consul-Index"].to_str().unwrap().to_string();
            (r.status().as_u16(), index, r.text().unwrap())
        };
        assert_eq!(from(&n4), from(&n1), "{path}");
    }
    let me: Value = c
        .get(n4.url("/v1/agent/self"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(me["Config"]["NodeName"], "node4");
    assert_eq!(me["Config"]["Server"], false);
    assert_eq!(me["Member"]["Tags"]["role"], "node");

    // A write through a client reaches the server.
    let put = c.put(n4.url("/v1/kv/a")).body("v").send().unwrap();
    assert_eq!(put.status(), 200);
    assert_eq!(put.text().unwrap(), "true");
    let raw = c
        .get(n1.url("/v1/kv/a?raw"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(raw, "v");

    // DNS on a client agent answers too.
    let answer = udp_query(n4.dns_addr(), "node5.node.consul.", RecordType::A);
    assert_eq!(rcode(&answer), ResponseCode::NoError);
    assert!(
        render(&answer.answers)
            .iter()
            .any(|r| r.contains("127.0.0.162")),
        "{answer:?}"
    );

    // kill -9 node5: its serfHealth turns critical, seen from every node.
    n5.kill9();
    for agent in [&n1, &n4] {
        wait_for("node5 serfHealth critical", || {
            (serf_health(agent, "node5").as_deref() == Some("critical")).then_some(())
        });
    }
    wait_for("node5 failed in members", || {
        members(&n1)
            .contains(&("node5".to_string(), 4))
            .then_some(())
    });

    // force-leave of the failed node5: left, then gone from the catalog.
    let (code, _, err) = run_cairn(&["force-leave", "-http-addr=127.0.0.160:8500", "node5"]);
    assert_eq!(code, 0, "{err}");
    wait_for("node5 deregistered", || {
        (!node_names(&n1).contains(&"node5".to_string())).then_some(())
    });

    // `cairn leave` on node4: it is left everywhere and leaves the catalog.
    let (code, out, err) = run_cairn(&["leave", "-http-addr=127.0.0.161:8500"]);
    assert_eq!(code, 0, "{out}{err}");
    wait_for("node4 left", || {
        members(&n1)
            .contains(&("node4".to_string(), 3))
            .then_some(())
    });
    wait_for("node4 deregistered", || {
        (node_names(&n1) == vec!["node1".to_string()]).then_some(())
    });
}

#[test]
fn a_short_pause_is_not_a_failure_and_a_long_one_is_until_it_ends() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Agent::server("127.0.0.165", "ps1", &dirs(tmp.path(), "s"), &[]);
    let c = Agent::client(
        "127.0.0.166",
        "pc1",
        &dirs(tmp.path(), "c"),
        &["127.0.0.165"],
    );
    wait_for("pc1 alive", || {
        (serf_health(&s, "pc1").as_deref() == Some("passing")).then_some(())
    });

    // Paused for well under the suspicion timeout: never declared failed.
    c.signal("STOP");
    let paused = Instant::now();
    while paused.elapsed() < Duration::from_millis(300) {
        assert_ne!(serf_health(&s, "pc1").as_deref(), Some("critical"));
        std::thread::sleep(Duration::from_millis(20));
    }
    c.signal("CONT");
    // Paused until the server declares it failed; alive again after SIGCONT.
    c.signal("STOP");
    wait_for("pc1 failed while paused", || {
        (serf_health(&s, "pc1").as_deref() == Some("critical")).then_some(())
    });
    c.signal("CONT");
    wait_for("pc1 alive after SIGCONT", || {
        (serf_health(&s, "pc1").as_deref() == Some("passing")).then_some(())
    });
}

#[test]
fn a_client_without_servers_answers_500_no_known_servers_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = Agent::client_with("127.0.0.170", "lonely", &tmp.path().join("d"), &[]);
    let c = http_client();
    let response = wait_for("the client's HTTP API", || {
        c.get(agent.url("/v1/catalog/nodes")).send().ok()
    });
    assert_eq!(response.status(), 500);
    assert_eq!(response.text().unwrap(), "No known Consul servers");
    // Answered by the client itself: its own members and self.
    assert_eq!(members(&agent), vec![("lonely".to_string(), 1)]);
}

/// Fault rules over HTTP exist only with `-fault-injection`; a drop rule on each side
/// partitions two agents on loopback without root, and lifting it heals them.
#[test]
fn fault_rules_partition_agents_only_when_enabled() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Agent::server(
        "127.0.0.172",
        "fs1",
        &dirs(tmp.path(), "s"),
        &["-fault-injection"],
    );
    let plain = Agent::client(
        "127.0.0.173",
        "fc0",
        &dirs(tmp.path(), "p"),
        &["127.0.0.172"],
    );
    let c = http_client();
    let r = c
        .put(plain.url("/v1/cairn/faults/127.0.0.172?rule=drop"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 404, "no fault endpoint without the flag");

    let mut faulty = Agent::client_with(
        "127.0.0.174",
        "fc1",
        &dirs(tmp.path(), "c"),
        &["-join", "127.0.0.172", "-fault-injection"],
    );
    faulty.wait_ready();

    // Bad rules are refused and change nothing.
    let r = c
        .put(s.url("/v1/cairn/faults/127.0.0.174?rule=explode"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .put(s.url("/v1/cairn/faults/not-an-ip?rule=drop"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(
        c.get(s.url("/v1/cairn/faults"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "[]"
    );

    // A slow disk: every log fsync of this server waits first, so a write cannot be
    // acknowledged sooner (a lower bound: sleeping never returns early).
    let r = c
        .put(s.url("/v1/cairn/faults/disk?stall=soon"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .put(s.url("/v1/cairn/faults/disk?stall=300ms"))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let listed = c
        .get(s.url("/v1/cairn/faults"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert_eq!(listed, r#"[{"Peer":"disk","Rule":"stall","DelayMs":300}]"#);
    let started = std::time::Instant::now();
    let r = c.put(s.url("/v1/kv/slow")).body("v").send().unwrap();
    assert_eq!(r.text().unwrap(), "true");
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    let r = c.delete(s.url("/v1/cairn/faults/disk")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        c.get(s.url("/v1/cairn/faults"))
            .send()
            .unwrap()
            .text()
            .unwrap(),
        "[]"
    );

    // fc1 is cut off from both others (the plain client could otherwise probe it for
    // the server, as SWIM's indirect probes are meant to).
    for (agent, peer) in [
        (&s, "127.0.0.174"),
        (&faulty, "127.0.0.172"),
        (&faulty, "127.0.0.173"),
    ] {
        let r = c
            .put(agent.url(&format!("/v1/cairn/faults/{peer}?rule=drop")))
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let listed: Value = c
        .get(s.url("/v1/cairn/faults"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        listed,
        serde_json::json!([{"Peer": "127.0.0.174", "Rule": "drop"}])
    );
    wait_for("fc1 failed on the server", || {
        (serf_health(&s, "fc1").as_deref() == Some("critical")).then_some(())
    });
    // Cut off from its only server, the client answers at once instead of hanging.
    let r = c.get(faulty.url("/v1/catalog/nodes")).send().unwrap();
    assert_eq!(r.status(), 500);

    for agent in [&s, &faulty] {
        assert_eq!(
            c.delete(agent.url("/v1/cairn/faults"))
                .send()
                .unwrap()
                .status(),
            200
        );
    }
    wait_for("fc1 alive again", || {
        (serf_health(&s, "fc1").as_deref() == Some("passing")).then_some(())
    });
    wait_for("the client forwards again", || {
        (c.get(faulty.url("/v1/catalog/nodes")).send().ok()?.status() == 200).then_some(())
    });
}

/// A user's `catalog/deregister` of the server's own node is repaired by the leader's
/// periodic reconcile within a minute, so `consul.service.consul` answers again.
#[test]
fn the_servers_own_node_is_restored_after_a_deregister() {
    let tmp = tempfile::tempdir().unwrap();
    let s = Agent::server("127.0.0.176", "rs1", &dirs(tmp.path(), "s"), &[]);
    let c = http_client();
    // The leader's reconcile and the agent's own anti-entropy both register the node
    // when it starts; a deregister racing them is simply overwritten. So deregister until
    // the node is seen gone once, then wait for it to come back.
    wait_for("the node deregistered", || {
        let r = c
            .put(s.url("/v1/catalog/deregister"))
            .body(r#"{"Node":"rs1"}"#)
            .send()
            .ok()?;
        assert_eq!(r.status(), 200);
        (!node_names(&s).contains(&"rs1".to_string())).then_some(())
    });
    let start = Instant::now();
    loop {
        let answer = udp_query(s.dns_addr(), "consul.service.consul.", RecordType::A);
        if rcode(&answer) == ResponseCode::NoError && !answer.answers.is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not restored within a minute"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(serf_health(&s, "rs1").as_deref(), Some("passing"));
}

/// A client started before its server keeps retrying the join (backing off) and joins
/// once the server is up.
#[test]
fn retry_join_waits_for_a_server_that_starts_later() {
    let tmp = tempfile::tempdir().unwrap();
    let client = Agent::client_with(
        "127.0.0.179",
        "early",
        &dirs(tmp.path(), "c"),
        &["-retry-join", "127.0.0.178"],
    );
    wait_for("the client's first failed join", || {
        client.log_text().contains("Join failed").then_some(())
    });
    let server = Agent::server("127.0.0.178", "late", &dirs(tmp.path(), "s"), &[]);
    wait_for("the early client in the catalog", || {
        node_names(&server)
            .contains(&"early".to_string())
            .then_some(())
    });
    assert_eq!(members(&client).len(), 2);
}
