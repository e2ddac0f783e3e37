//! Sessions and KV locks on a three-server cluster with a client agent, real processes
//! on loopback (issue 11): sessions created through the client agent, acquire contention,
//! a blocking GET woken by a release, a TTL session left to expire (its key released
//! within 2 x TTL), lock-delay after the invalidation, and a lock contended across a
//! kill -9 of the leader that is never held by two sessions at once (a history of
//! acquire/release observations, checked for overlap).
//! Addresses 127.0.7.1 to 127.0.7.4, standard ports. Waits are conditions with
//! deadlines, never fixed sleeps as assertions.

mod common;

use common::cluster::Cluster;
use common::{http_client, wait_for, Agent};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SERVERS: [&str; 3] = ["127.0.7.1", "127.0.7.2", "127.0.7.3"];
const CLIENT: &str = "127.0.7.4";

/// Create a session through `agent` (retrying while the cluster settles); its ID.
fn create_session(agent: &Agent, body: Value) -> String {
    wait_for("a session created", || {
        let r = http_client()
            .put(agent.url("/v1/session/create"))
            .body(body.to_string())
            .send()
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        let v: Value = r.json().ok()?;
        v["ID"].as_str().map(str::to_string)
    })
}

/// `PUT ?acquire` / `?release`: Some(true/false) when answered, None on an error.
fn lock_op(agent: &Agent, key: &str, verb: &str, session: &str) -> Option<bool> {
    let url = agent.url(&format!("/v1/kv/{key}?{verb}={session}"));
    let r = http_client()
        .put(url)
        .body(session.to_string())
        .send()
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    match r.text().ok()?.trim() {
        "true" => Some(true),
        "false" => Some(false),
        _ => None,
    }
}

/// The key's entry (consistent read), None when missing or on an error.
fn entry(agent: &Agent, key: &str) -> Option<Value> {
    let r = http_client()
        .get(agent.url(&format!("/v1/kv/{key}?consistent")))
        .send()
        .ok()?;
    if !r.status().is_success() {
        return None;
    }
    let v: Value = r.json().ok()?;
    v.get(0).cloned()
}

fn holder(agent: &Agent, key: &str) -> Option<String> {
    entry(agent, key).and_then(|e| e["Session"].as_str().map(str::to_string))
}

#[test]
fn sessions_and_locks_across_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), &SERVERS, CLIENT, &[]);
    let client = &cluster.client;

    // Sessions through the client agent: default node (the agent's) and serfHealth.
    let a = create_session(client, json!({"Name": "a", "LockDelay": "0s"}));
    let b = create_session(
        client,
        json!({"Name": "b", "Checks": [], "LockDelay": "0s"}),
    );
    let info: Value = http_client()
        .get(client.url(&format!("/v1/session/info/{a}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(info[0]["Node"], "c0", "{info}");
    assert_eq!(info[0]["NodeChecks"], json!(["serfHealth"]), "{info}");

    // Contention: the first session takes the lock, the second does not.
    assert_eq!(lock_op(client, "svc/leader", "acquire", &a), Some(true));
    assert_eq!(lock_op(client, "svc/leader", "acquire", &b), Some(false));
    let held = entry(client, "svc/leader").unwrap();
    assert_eq!(held["Session"], a.as_str());
    assert_eq!(held["LockIndex"], 1);

    // A blocking GET on the key wakes on the release.
    let index = held["ModifyIndex"].as_u64().unwrap();
    let url = client.url(&format!("/v1/kv/svc/leader?index={index}&wait=30s"));
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let v: Value = http_client().get(url).send().unwrap().json().unwrap();
        (started.elapsed(), v)
    });
    // The read parks first (it answers at once only if something moved already).
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lock_op(client, "svc/leader", "release", &a), Some(true));
    let (waited, woke) = waiter.join().unwrap();
    assert!(waited < Duration::from_secs(10), "woke after {waited:?}");
    assert!(woke[0].get("Session").is_none(), "{woke}");
    assert_eq!(woke[0]["LockIndex"], 1);
    assert_eq!(lock_op(client, "svc/leader", "acquire", &b), Some(true));
    assert_eq!(holder(client, "svc/leader").as_deref(), Some(b.as_str()));

    // A TTL session left to expire: its key is released within 2 x TTL, and its
    // lock-delay then holds the key against other sessions for a while.
    let t = create_session(
        client,
        json!({"Name": "ttl", "TTL": "10s", "LockDelay": "10s", "Checks": []}),
    );
    let created = Instant::now();
    assert_eq!(lock_op(client, "ttl/key", "acquire", &t), Some(true));
    let c = create_session(
        client,
        json!({"Name": "c", "Checks": [], "LockDelay": "0s"}),
    );
    let started = Instant::now();
    loop {
        if holder(client, "ttl/key").is_none() && entry(client, "ttl/key").is_some() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(40),
            "TTL session never expired"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let expired_after = created.elapsed();
    // Consul's grace: at least the TTL, at most 2 x TTL (plus a tick and the poll).
    assert!(
        expired_after >= Duration::from_secs(10) && expired_after < Duration::from_secs(25),
        "expired after {expired_after:?}"
    );
    let gone: Value = http_client()
        .get(client.url(&format!("/v1/session/info/{t}")))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(gone, json!([]));
    let renew = http_client()
        .put(client.url(&format!("/v1/session/renew/{t}")))
        .send()
        .unwrap();
    assert_eq!(renew.status().as_u16(), 404);
    assert_eq!(renew.text().unwrap(), format!("Session id '{t}' not found"));
    // Lock-delay: refused now (a false, not an error), granted once it has passed.
    let invalidated = Instant::now();
    assert_eq!(lock_op(client, "ttl/key", "acquire", &c), Some(false));
    wait_for("the lock-delay to pass", || {
        lock_op(client, "ttl/key", "acquire", &c).filter(|taken| *taken)
    });
    assert!(
        invalidated.elapsed() > Duration::from_secs(5),
        "lock-delay did not hold"
    );

    // A renewed TTL session stays past 2 x TTL.
    let r = create_session(client, json!({"Name": "r", "TTL": "10s", "Checks": []}));
    let renewed_from = Instant::now();
    while renewed_from.elapsed() < Duration::from_secs(22) {
        let resp = http_client()
            .put(client.url(&format!("/v1/session/renew/{r}")))
            .send()
            .unwrap();
        assert!(resp.status().is_success(), "renew failed");
        let v: Value = resp.json().unwrap();
        assert_eq!(v[0]["ID"], r.as_str());
        std::thread::sleep(Duration::from_secs(3));
    }

    // A lock contended across a kill -9 of the leader is never held by two sessions.
    let history = Arc::new(Mutex::new(Vec::<(String, Instant, Instant)>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let contenders: Vec<_> = (0..2)
        .map(|i| {
            let id = create_session(
                client,
                json!({"Name": format!("contender{i}"), "Checks": [], "LockDelay": "0s"}),
            );
            let (history, stop) = (history.clone(), stop.clone());
            let ip = CLIENT.to_string();
            std::thread::spawn(move || contend(&ip, &id, &history, &stop))
        })
        .collect();
    wait_for("both contenders to hold the lock", || {
        let h = history.lock().unwrap();
        let holders: std::collections::BTreeSet<&String> = h.iter().map(|e| &e.0).collect();
        (holders.len() == 2).then_some(())
    });
    let before_kill = history.lock().unwrap().len();
    let leader = cluster.wait_leader(&[0, 1, 2]);
    cluster.servers[leader].kill9();
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    cluster.wait_leader(&others);
    wait_for("holds after the failover", || {
        (history.lock().unwrap().len() >= before_kill + 6).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    for c in contenders {
        c.join().unwrap();
    }
    let mut h = history.lock().unwrap().clone();
    h.sort_by_key(|e| e.1);
    for pair in h.windows(2) {
        let (first, second) = (&pair[0], &pair[1]);
        assert!(
            second.1 >= first.2,
            "{} held the lock from {:?} while {} held it until {:?}",
            second.0,
            second.1,
            first.0,
            first.2
        );
    }
    assert!(h.len() >= before_kill + 6, "{} holds", h.len());
}

/// Take and give back the lock `race/lock` in a loop until `stop`, recording each hold
/// as (session, acquire acknowledged, release sent): the times the session certainly
/// held it. An acquire or release whose outcome is unknown (the leader died) is settled
/// by reading the key.
fn contend(
    ip: &str,
    session: &str,
    history: &Mutex<Vec<(String, Instant, Instant)>>,
    stop: &AtomicBool,
) {
    let agent_url = |path: &str| format!("http://{ip}:8500{path}");
    let op = |verb: &str| -> Option<bool> {
        let url = agent_url(&format!("/v1/kv/race/lock?{verb}={session}"));
        let r = http_client()
            .put(url)
            .body(session.to_string())
            .send()
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        Some(r.text().ok()?.trim() == "true")
    };
    let held_by_me = || -> Option<bool> {
        let r = http_client()
            .get(agent_url("/v1/kv/race/lock?consistent"))
            .send()
            .ok()?;
        if r.status().as_u16() == 404 {
            return Some(false);
        }
        let v: Value = r.json().ok()?;
        Some(v[0]["Session"].as_str() == Some(session))
    };
    while !stop.load(Ordering::SeqCst) {
        let taken = match op("acquire") {
            Some(taken) => taken,
            None => held_by_me().unwrap_or(false),
        };
        if !taken {
            std::thread::sleep(Duration::from_millis(20));
            continue;
        }
        let from = Instant::now();
        // Hold a little, checking the key names us all along.
        std::thread::sleep(Duration::from_millis(30));
        if let Some(mine) = held_by_me() {
            assert!(mine, "{session} lost a lock it held");
        }
        let until = Instant::now();
        loop {
            if op("release") == Some(true) {
                break;
            }
            if held_by_me() == Some(false) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        history
            .lock()
            .unwrap()
            .push((session.to_string(), from, until));
        std::thread::sleep(Duration::from_millis(10));
    }
}
