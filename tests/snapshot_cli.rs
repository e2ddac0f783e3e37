//! Snapshots end to end: `cairn snapshot save` / `inspect` / `restore` against real
//! agents. Keys written, saved, changed, restored: the old data is back, a blocking
//! query parked before the restore wakes with a higher index, a client agent saves and
//! restores through its server, and the restore survives the server's restart.

mod common;

use common::{http_client, run_cairn, wait_for, Agent, DEADLINE};
use std::sync::mpsc;
use std::time::Duration;

fn put(agent: &Agent, key: &str, value: &str) {
    let resp = http_client()
        .put(agent.url(&format!("/v1/kv/{key}")))
        .body(value.to_string())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
}

/// (status, X-Consul-Index, body) of a GET.
fn get(agent: &Agent, path: &str) -> (u16, u64, String) {
    let resp = http_client().get(agent.url(path)).send().unwrap();
    let index = resp
        .headers()
        .get("X-Consul-Index")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (resp.status().as_u16(), index, resp.text().unwrap())
}

fn raw(agent: &Agent, key: &str) -> Option<String> {
    let (status, _, body) = get(agent, &format!("/v1/kv/{key}?raw"));
    (status == 200).then_some(body)
}

/// Start a blocking GET of `path` at `index` on its own thread; its (status, index,
/// body) arrives on the returned channel.
fn park(agent: &Agent, path: &str, index: u64) -> mpsc::Receiver<(u16, u64, String)> {
    let url = agent.url(&format!("{path}&index={index}&wait=60s"));
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let client = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(90))
            .build()
            .unwrap();
        let resp = client.get(url).send().unwrap();
        let index = resp
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let _ = tx.send((resp.status().as_u16(), index, resp.text().unwrap()));
    });
    // It must really be parked (nothing it watches has moved): no answer for a while.
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "the blocking query on {path} answered before anything changed"
    );
    rx
}

fn dev_agent(ip: &str, dir: &std::path::Path) -> Agent {
    let args: Vec<String> = [
        "agent", "-dev", "-node", "snapnode", "-bind", ip, "-client", ip,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut agent = Agent::spawn(ip, &args, dir);
    agent.wait_ready();
    agent
}

#[test]
fn save_change_restore_brings_the_old_data_back_and_wakes_blocking_queries() {
    const IP: &str = "127.0.0.241";
    let tmp = tempfile::tempdir().unwrap();
    let agent = dev_agent(IP, tmp.path());
    let http_addr = format!("-http-addr={IP}:8500");
    put(&agent, "app/a", "one");
    put(&agent, "app/b", "two");

    // The archive over HTTP is Consul's: gzip, with the query meta.
    let resp = http_client().get(agent.url("/v1/snapshot")).send().unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["Content-Type"], "application/x-gzip");
    assert_eq!(resp.headers()["X-Consul-KnownLeader"], "true");
    assert!(resp.headers().contains_key("X-Consul-Index"));
    assert_eq!(&resp.bytes().unwrap()[..2], &[0x1f, 0x8b]);

    let file = tmp.path().join("backup.snap");
    let file = file.to_str().unwrap();
    let (code, out, err) = run_cairn(&["snapshot", "save", &http_addr, file]);
    assert_eq!((code, err.as_str()), (0, ""));
    let saved_index: u64 = out
        .trim()
        .strip_prefix("Saved and verified snapshot to index ")
        .unwrap_or_else(|| panic!("{out}"))
        .parse()
        .unwrap();
    let (code, out, _) = run_cairn(&["snapshot", "inspect", file]);
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("\n Index        {saved_index}\n")),
        "{out}"
    );
    assert!(out.contains("\n KVS "), "{out}");

    // Change everything after the backup.
    put(&agent, "app/a", "changed");
    http_client()
        .delete(agent.url("/v1/kv/app/b"))
        .send()
        .unwrap();
    put(&agent, "app/c", "new");
    let (_, prefix_index, _) = get(&agent, "/v1/kv/app/?recurse");
    let (_, key_index, _) = get(&agent, "/v1/kv/app/a");
    assert!(prefix_index > saved_index);

    // Blocking queries parked before the restore, on the prefix and on one key.
    let on_prefix = park(&agent, "/v1/kv/app/?recurse", prefix_index);
    let on_key = park(&agent, "/v1/kv/app/a?raw", key_index);

    let (code, out, err) = run_cairn(&["snapshot", "restore", &http_addr, file]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "Restored snapshot\n", "")
    );

    let (status, index, body) = on_prefix.recv_timeout(DEADLINE).expect("prefix query woke");
    assert_eq!(status, 200);
    assert!(
        index > prefix_index,
        "index went from {prefix_index} to {index}"
    );
    let keys: Vec<String> = serde_json::from_str::<Vec<serde_json::Value>>(&body)
        .unwrap()
        .iter()
        .map(|e| e["Key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["app/a", "app/b"]);
    let (status, index, body) = on_key.recv_timeout(DEADLINE).expect("key query woke");
    assert_eq!((status, body.as_str()), (200, "one"));
    assert!(index > key_index, "index went from {key_index} to {index}");

    assert_eq!(raw(&agent, "app/a").as_deref(), Some("one"));
    assert_eq!(raw(&agent, "app/b").as_deref(), Some("two"));
    assert_eq!(raw(&agent, "app/c"), None);
    let (_, index_after, _) = get(&agent, "/v1/kv/app/c");
    assert!(
        index_after > prefix_index,
        "a vanished key's index never goes back"
    );

    // Writes go on from there, and the CLI reads the restored data.
    put(&agent, "app/a", "later");
    let (code, out, _) = run_cairn(&["kv", "get", &http_addr, "-recurse", "app/"]);
    assert_eq!((code, out.as_str()), (0, "app/a:later\napp/b:two\n"));
}

#[test]
fn bad_archives_are_refused_with_a_reason() {
    const IP: &str = "127.0.0.244";
    let tmp = tempfile::tempdir().unwrap();
    let agent = dev_agent(IP, tmp.path());
    put(&agent, "k", "v");
    let good = http_client()
        .get(agent.url("/v1/snapshot"))
        .send()
        .unwrap()
        .bytes()
        .unwrap()
        .to_vec();
    let restore = |body: Vec<u8>| {
        let resp = http_client()
            .put(agent.url("/v1/snapshot"))
            .body(body)
            .send()
            .unwrap();
        (resp.status().as_u16(), resp.text().unwrap())
    };
    let (status, text) = restore(b"not an archive".to_vec());
    assert_eq!(status, 500);
    assert!(text.starts_with("failed reading snapshot: "), "{text}");

    // Garbage state with correct checksums: refused before anything is proposed.
    let bogus = cairn::snapshot_archive::write_archive(1, 1, b"garbage", 0).unwrap();
    let (status, text) = restore(bogus);
    assert_eq!(status, 500);
    assert!(
        text.starts_with("snapshot state does not decode: "),
        "{text}"
    );

    // More state than one Raft entry carries: a clear 413, and replication unharmed.
    let big = vec![0u8; protocol_command_limit() + 1];
    let too_big = cairn::snapshot_archive::write_archive(1, 1, &big, 0).unwrap();
    let (status, text) = restore(too_big);
    assert_eq!(status, 413);
    assert!(text.contains("too large to restore"), "{text}");

    put(&agent, "k", "after");
    assert_eq!(restore(good), (200, String::new()));
    assert_eq!(raw(&agent, "k").as_deref(), Some("v"));
    assert_eq!(
        run_cairn(&[
            "snapshot",
            "restore",
            &format!("-http-addr={IP}:8500"),
            "/nonexistent/x.snap"
        ])
        .0,
        1
    );
}

fn protocol_command_limit() -> usize {
    cairn::http::snapshot::MAX_RESTORE_IMAGE_BYTES
}

#[test]
fn a_client_agent_saves_and_restores_through_its_server_and_the_restore_is_durable() {
    const SERVER: &str = "127.0.0.242";
    const CLIENT: &str = "127.0.0.243";
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Agent::server(SERVER, "srv", &tmp.path().join("srv"), &[]);
    let client = Agent::client(CLIENT, "cli", &tmp.path().join("cli"), &[SERVER]);
    let via_client = format!("-http-addr={CLIENT}:8500");
    put(&server, "cfg/x", "1");

    let file = tmp.path().join("via-client.snap");
    let file = file.to_str().unwrap();
    let (code, out, err) = run_cairn(&["snapshot", "save", &via_client, file]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    let (code, _, err) = run_cairn(&["snapshot", "save", "-stale", &via_client, file]);
    assert_eq!((code, err.as_str()), (0, ""));

    put(&server, "cfg/x", "2");
    put(&server, "cfg/y", "3");
    let (code, out, err) = run_cairn(&["snapshot", "restore", &via_client, file]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "Restored snapshot\n", "")
    );
    assert_eq!(raw(&client, "cfg/x").as_deref(), Some("1"));
    assert_eq!(raw(&server, "cfg/y"), None);

    // The restore is in the Raft log: a restarted server has it.
    server.kill9();
    server.restart();
    server.wait_ready();
    wait_for("the restored key after a restart", || {
        (raw(&server, "cfg/x").as_deref() == Some("1")).then_some(())
    });
    assert_eq!(raw(&server, "cfg/y"), None);
}
