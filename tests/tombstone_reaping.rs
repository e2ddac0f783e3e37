//! Tombstone reaping end to end: a real agent with a short (hidden, test-only)
//! `debug_tombstone_ttl` deletes many keys; the leader's reap empties the tombstones
//! (seen through `cairn snapshot save` + `inspect`, which count them), while the
//! prefix's index, as `?recurse` and `?keys` reads and a parked blocking read report it,
//! never goes below the index of the last delete.

mod common;

use common::{http_client, run_cairn, wait_for, Agent};
use std::sync::mpsc;
use std::time::Duration;

const IP: &str = "127.0.9.1";
const KEYS: usize = 120;

fn index_of(agent: &Agent, path: &str) -> u64 {
    let resp = http_client().get(agent.url(path)).send().unwrap();
    resp.headers()
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Tombstones in the store, from a saved snapshot's inspection.
fn tombstones(agent: &Agent, dir: &std::path::Path) -> usize {
    let file = dir.join("reap.snap");
    let file = file.to_str().unwrap();
    let addr = format!("-http-addr={IP}:8500");
    let (code, out, err) = run_cairn(&["snapshot", "save", &addr, file]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, _) = run_cairn(&["snapshot", "inspect", file]);
    assert_eq!(code, 0, "{out}");
    let _ = agent;
    out.lines()
        .find_map(|line| {
            let mut words = line.split_whitespace();
            (words.next() == Some("Tombstone")).then(|| words.next()?.parse().ok())?
        })
        .unwrap_or(0)
}

#[test]
fn deleted_keys_are_reaped_after_the_ttl_and_prefix_indexes_never_go_back() {
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("reap.json");
    std::fs::write(&config, r#"{"debug_tombstone_ttl":"2s"}"#).unwrap();
    let args: Vec<String> = [
        "agent",
        "-dev",
        "-node",
        "reaper",
        "-bind",
        IP,
        "-client",
        IP,
        "-config-file",
        config.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut agent = Agent::spawn(IP, &args, tmp.path());
    agent.wait_ready();
    let client = http_client();

    // One key stays (its index is the oldest under the prefix); many come and go.
    let put = |key: &str| {
        let resp = client
            .put(agent.url(&format!("/v1/kv/{key}")))
            .body("v")
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
    };
    put("reap/keep");
    for i in 0..KEYS {
        put(&format!("reap/k{i:03}"));
    }
    for i in 0..KEYS {
        let resp = client
            .delete(agent.url(&format!("/v1/kv/reap/k{i:03}")))
            .send()
            .unwrap();
        assert_eq!(resp.status(), 200);
    }
    let last_delete = index_of(&agent, "/v1/kv/reap/?recurse");
    let keep_index = index_of(&agent, "/v1/kv/reap/keep");
    assert!(last_delete > keep_index);
    assert!(tombstones(&agent, tmp.path()) >= KEYS);

    // A blocking read parked at the last delete's index: whenever it answers, its index
    // is never below what it waited on.
    let parked = {
        let url = agent.url(&format!("/v1/kv/reap/?recurse&index={last_delete}&wait=5s"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let resp = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap()
                .get(url)
                .send()
                .unwrap();
            let index: u64 = resp
                .headers()
                .get("X-Consul-Index")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let _ = tx.send(index);
        });
        rx
    };

    // Until the reap (TTL 2 s plus a bucket and a tick), and after it, the prefix's
    // index never goes below the last delete's.
    let mut polls = 0;
    wait_for("the tombstones to be reaped", || {
        polls += 1;
        for path in [
            "/v1/kv/reap/?recurse",
            "/v1/kv/reap/?keys",
            "/v1/kv/?keys&separator=/",
        ] {
            let index = index_of(&agent, path);
            assert!(
                index >= last_delete,
                "{path} went back: {index} < {last_delete}"
            );
        }
        (tombstones(&agent, tmp.path()) == 0).then_some(())
    });
    assert!(polls > 1, "reaped before the TTL could have passed");
    let answered = parked
        .recv_timeout(Duration::from_secs(40))
        .expect("the parked read answers by its wait");
    assert!(
        answered >= last_delete,
        "parked read answered {answered} < {last_delete}"
    );
    // The survivor is still there, and a new write moves the prefix index on.
    assert_eq!(index_of(&agent, "/v1/kv/reap/keep"), keep_index);
    put("reap/new");
    assert!(index_of(&agent, "/v1/kv/reap/?recurse") > last_delete);
    agent.signal("TERM");
}
