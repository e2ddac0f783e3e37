//! `/v1/txn` on a three-server cluster with real processes: a transaction sent to a
//! client agent (forwarded to the leader) commits on every server; a failing one changes
//! nothing anywhere and answers 409 with the op index; a follower forwards a write
//! transaction; a read-only transaction is answered in every consistency mode.
//! Addresses 127.0.8.1 to 127.0.8.4, standard ports. Waits are conditions with deadlines.

mod common;

use common::cluster::{get_raw, server_addr, Cluster};
use common::{http_client, wait_for, Agent};
use serde_json::{json, Value};

const SERVERS: [&str; 3] = ["127.0.8.1", "127.0.8.2", "127.0.8.3"];
const CLIENT: &str = "127.0.8.4";

/// PUT a transaction (with a query string); the status and the JSON body.
fn txn(agent: &Agent, query: &str, ops: &Value) -> (u16, Value) {
    let response = http_client()
        .put(agent.url(&format!("/v1/txn{query}")))
        .body(ops.to_string())
        .send()
        .expect("txn request");
    let status = response.status().as_u16();
    let text = response.text().expect("txn body");
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

#[test]
fn transactions_through_a_client_agent_and_a_follower() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), &SERVERS, CLIENT, &[]);
    let client = &cluster.client;

    // A write transaction through the client agent commits everywhere.
    let ops = json!([
        {"KV": {"Verb": "set", "Key": "txn/a", "Value": "YQ=="}},
        {"KV": {"Verb": "cas", "Key": "txn/b", "Value": "Yg==", "Index": 0}},
        {"Node": {"Verb": "set", "Node": {"Node": "ext", "Address": "10.9.9.9"}}},
        {"Service": {"Verb": "set", "Node": "ext", "Service": {"Service": "db", "Port": 5432}}}
    ]);
    let (status, body) = wait_for("a write transaction through the client", || {
        let (status, body) = txn(client, "", &ops);
        (status == 200).then_some((status, body))
    });
    assert_eq!(status, 200);
    assert_eq!(body["Errors"], Value::Null);
    let index = body["Results"][0]["KV"]["ModifyIndex"].as_u64().unwrap();
    assert_eq!(body["Results"][3]["Service"]["ModifyIndex"], index);
    for s in &cluster.servers {
        assert_eq!(get_raw(s, "txn/a", "consistent").as_deref(), Some("a"));
        assert_eq!(get_raw(s, "txn/b", "consistent").as_deref(), Some("b"));
    }

    // A failing transaction changes nothing on any server.
    let failing = json!([
        {"KV": {"Verb": "set", "Key": "txn/a", "Value": "eg=="}},
        {"KV": {"Verb": "delete-tree", "Key": "txn/a"}},
        {"KV": {"Verb": "check-index", "Key": "txn/b", "Index": index + 100}}
    ]);
    let (status, body) = txn(client, "", &failing);
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        body,
        json!({"Results": null, "Errors": [{"OpIndex": 2, "What": format!(
            "failed index check for key \"txn/b\", current modify index {index} != {}",
            index + 100
        )}]})
    );
    for s in &cluster.servers {
        assert_eq!(get_raw(s, "txn/a", "consistent").as_deref(), Some("a"));
        assert_eq!(get_raw(s, "txn/b", "consistent").as_deref(), Some("b"));
    }

    // A follower forwards a write transaction to the leader.
    let leader = cluster.wait_leader(&[0, 1, 2]);
    let follower = (0..3).find(|i| *i != leader).unwrap();
    assert_ne!(
        server_addr(&cluster.servers[follower]),
        server_addr(&cluster.servers[leader])
    );
    let (status, body) = txn(
        &cluster.servers[follower],
        "",
        &json!([{"KV": {"Verb": "delete", "Key": "txn/a"}}]),
    );
    assert_eq!(status, 200, "{body}");
    for s in &cluster.servers {
        assert_eq!(get_raw(s, "txn/a", "consistent"), None);
    }

    // Read-only transactions in every mode, through the client and a follower.
    let read = json!([
        {"KV": {"Verb": "get", "Key": "txn/b"}},
        {"Node": {"Verb": "get", "Node": {"Node": "ext"}}}
    ]);
    for agent in [client, &cluster.servers[follower]] {
        for query in ["", "?stale", "?consistent"] {
            let (status, body) = wait_for("a read-only transaction", || {
                let (status, body) = txn(agent, query, &read);
                (status == 200).then_some((status, body))
            });
            assert_eq!(status, 200);
            assert_eq!(body["Results"][0]["KV"]["Value"], "Yg==", "{query}");
            assert_eq!(body["Results"][1]["Node"]["Address"], "10.9.9.9");
        }
    }
}
