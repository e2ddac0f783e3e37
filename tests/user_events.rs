//! User events across three real agents (a server and two client agents): an event
//! fired on one agent reaches `/v1/event/list` on the others through gossip, a
//! blocking list wakes on a new event, and node / service / tag filters keep an event
//! off the agents that do not match. `cairn event` fires one too.

mod common;

use common::{http_client, run_cairn, wait_for, Agent};
use serde_json::Value;
use std::sync::mpsc;
use std::time::Duration;

const SERVER: &str = "127.0.9.10";
const WEB: &str = "127.0.9.11";
const DB: &str = "127.0.9.12";

/// (X-Consul-Index, events) of `/v1/event/list` with `query`.
fn list(agent: &Agent, query: &str) -> (u64, Vec<Value>) {
    let resp = http_client()
        .get(agent.url(&format!("/v1/event/list{query}")))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let index = resp
        .headers()
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let events: Value = resp.json().unwrap();
    (index, events.as_array().cloned().unwrap_or_default())
}

fn ids(agent: &Agent, name: &str) -> Vec<String> {
    list(agent, &format!("?name={name}"))
        .1
        .iter()
        .map(|e| e["ID"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// Fire `name` on `agent` with `query` filters; the answered event.
fn fire(agent: &Agent, name: &str, query: &str, payload: &str) -> Value {
    let resp = http_client()
        .put(agent.url(&format!("/v1/event/fire/{name}{query}")))
        .body(payload.to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().unwrap()
}

fn id_of(event: &Value) -> String {
    event["ID"].as_str().unwrap().to_string()
}

/// Wait until every one of `agents` lists the event `id` under `name`.
fn wait_seen(agents: &[&Agent], name: &str, id: &str) {
    for agent in agents {
        wait_for(&format!("{name} {id} on {}", agent.ip), || {
            ids(agent, name).contains(&id.to_string()).then_some(())
        });
    }
}

#[test]
fn events_spread_by_gossip_wake_blocking_lists_and_respect_filters() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = |n: &str| tmp.path().join(n);
    let server = Agent::server(SERVER, "ev-server", &dir("s"), &[]);
    let web = Agent::client(WEB, "ev-web", &dir("w"), &[SERVER]);
    let db = Agent::client(DB, "ev-db", &dir("d"), &[SERVER]);
    let all = [&server, &web, &db];

    // A service with a tag registered with the web agent, for the service and tag
    // filters (they read the agent's own services, as Consul's do).
    let resp = http_client()
        .put(web.url("/v1/agent/service/register"))
        .body(r#"{"ID":"web-1","Name":"web","Tags":["v2"],"Port":80}"#)
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);

    // Fired on the server, seen by everyone with its payload; the answer is Consul's.
    let deploy = fire(&server, "deploy", "", "v2");
    assert_eq!(deploy["Name"], "deploy");
    assert_eq!(deploy["Payload"], "djI=");
    assert_eq!(deploy["Version"], 1);
    assert_eq!(deploy["LTime"], 0);
    assert_eq!(deploy["NodeFilter"], "");
    wait_seen(&all, "deploy", &id_of(&deploy));
    let (_, on_db) = list(&db, "?name=deploy");
    assert_eq!(on_db[0]["Payload"], "djI=");

    // A blocking list on db, parked at its current index, wakes on an event fired on web.
    let (index, _) = list(&db, "?name=wake");
    assert_eq!(index, 1, "no event of that name: Consul's index 1");
    let (tx, rx) = mpsc::channel();
    let url = db.url(&format!("/v1/event/list?name=wake&index={index}&wait=30s"));
    std::thread::spawn(move || {
        let resp = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap()
            .get(url)
            .send()
            .unwrap();
        let index: u64 = resp.headers()["X-Consul-Index"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        let events: Value = resp.json().unwrap();
        let _ = tx.send((index, events));
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "the blocking list answered before any event"
    );
    let wake = fire(&web, "wake", "", "");
    let (woke_index, events) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the blocking list wakes on the new event");
    assert_ne!(woke_index, index);
    assert_eq!(events[0]["ID"], wake["ID"]);
    assert_eq!(events[0]["Payload"], Value::Null);

    // Filters: node, service, service + tag. Each filtered event is followed by an
    // unfiltered marker fired after it; once the marker is everywhere, the filtered
    // event has been judged everywhere too (and a rejected one is never listed).
    let only_web_node = fire(&db, "filtered", "?node=^ev-web$", "");
    let web_service = fire(&db, "filtered", "?service=^web", "");
    let web_v2 = fire(&db, "filtered", "?service=web&tag=^v2$", "");
    let web_v9 = fire(&db, "filtered", "?service=web&tag=v9", "");
    wait_seen(&[&web], "filtered", &id_of(&only_web_node));
    wait_seen(&[&web], "filtered", &id_of(&web_service));
    wait_seen(&[&web], "filtered", &id_of(&web_v2));
    let marker = fire(&db, "marker", "", "");
    wait_seen(&all, "marker", &id_of(&marker));
    assert!(
        ids(&server, "filtered").is_empty(),
        "no filter matches the server"
    );
    assert!(
        ids(&db, "filtered").is_empty(),
        "nothing matches db (its own events too)"
    );
    assert!(
        !ids(&web, "filtered").contains(&id_of(&web_v9)),
        "no v9 tag on web"
    );
    assert_eq!(ids(&web, "filtered").len(), 3);

    // Consul's refusals.
    let resp = http_client()
        .put(web.url("/v1/event/fire/x?tag=v2"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(
        resp.text().unwrap(),
        "Cannot provide tag filter without service filter"
    );
    let resp = http_client()
        .put(web.url("/v1/event/fire/big"))
        .body("x".repeat(600))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 500);
    assert_eq!(
        resp.text().unwrap(),
        "user event exceeds configured limit of 512 bytes before encoding"
    );

    // `cairn event` through the db agent.
    let addr = format!("-http-addr={DB}:8500");
    let (code, out, err) = run_cairn(&["event", &addr, "-name", "cli", "hello"]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    let id = out
        .trim()
        .strip_prefix("Event ID: ")
        .unwrap_or_else(|| panic!("{out}"))
        .to_string();
    wait_seen(&all, "cli", &id);
    for agent in all {
        agent.signal("TERM");
    }
}
