//! Acknowledged writes survive SIGKILL: concurrent writers, kill -9 while writes are in
//! flight, restart on the same data dir, then every write answered `true` must be there
//! with its value. Repeated over a few crash cycles; bounded in count and time.

mod common;

use common::{http_client, Agent};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const IP: &str = "127.0.0.15";
const WRITERS: usize = 8;
const CYCLES: usize = 3;
/// Acknowledged writes per cycle before the kill (the kill lands with more in flight).
const ACKED_BEFORE_KILL: usize = 200;

#[test]
fn acknowledged_writes_survive_kill_9() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("d");
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();

    for cycle in 0..CYCLES {
        let mut agent = Agent::server(IP, "durable", &data_dir, &[]);
        let client = http_client();

        // Everything acknowledged in earlier cycles is still there.
        verify(&client, &agent, &acked.lock().unwrap());

        let stop = Arc::new(AtomicBool::new(false));
        let count_before = acked.lock().unwrap().len();
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (stop, acked, url) = (stop.clone(), acked.clone(), agent.url(""));
                std::thread::spawn(move || {
                    let client = http_client();
                    let mut i = 0usize;
                    // Bounded: at most 10k attempts per writer per cycle.
                    while !stop.load(Ordering::Relaxed) && i < 10_000 {
                        let key = format!("c{cycle}/w{w}/k{i}");
                        let value = format!("v{cycle}-{w}-{i}");
                        let ok = client
                            .put(format!("{url}/v1/kv/{key}"))
                            .body(value.clone())
                            .send()
                            .ok()
                            .and_then(|r| r.text().ok())
                            .is_some_and(|t| t == "true");
                        if ok {
                            acked.lock().unwrap().insert(key, value);
                        } else {
                            return; // the agent is gone
                        }
                        i += 1;
                    }
                })
            })
            .collect();
        common::wait_for("writes to be acknowledged", || {
            (acked.lock().unwrap().len() >= count_before + ACKED_BEFORE_KILL).then_some(())
        });
        agent.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in writers {
            w.join().unwrap();
        }
    }

    let agent = Agent::server(IP, "durable", &data_dir, &[]);
    let acked = acked.lock().unwrap();
    assert!(acked.len() >= CYCLES * ACKED_BEFORE_KILL);
    verify(&http_client(), &agent, &acked);
}

fn verify(client: &reqwest::blocking::Client, agent: &Agent, acked: &BTreeMap<String, String>) {
    if acked.is_empty() {
        return;
    }
    let resp = client.get(agent.url("/v1/kv/?recurse")).send().unwrap();
    assert_eq!(resp.status(), 200);
    let entries: Vec<serde_json::Value> = resp.json().unwrap();
    let stored: BTreeMap<String, String> = entries
        .iter()
        .map(|e| {
            let key = e["Key"].as_str().unwrap().to_string();
            let value = e["Value"].as_str().map(decode_b64).unwrap_or_default();
            (key, value)
        })
        .collect();
    for (key, value) in acked {
        assert_eq!(
            stored.get(key),
            Some(value),
            "acknowledged write {key} lost"
        );
    }
}

fn decode_b64(s: &str) -> String {
    use base64::Engine;
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(s).unwrap()).unwrap()
}
