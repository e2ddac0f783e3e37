//! `cairn lock` against a three-server cluster through a client agent (issue 11): two
//! `-n 1` contenders never run their child at once, a `-n 2` semaphore lets two in and
//! never three, a contender with `-timeout` gives up while the lock is held, a lost lock
//! kills the child, and everything is released and cleaned up when the children exit.
//! Each child appends `start`/`end` lines with nanosecond timestamps to one file; the
//! test checks the intervals. Addresses 127.0.10.1 to 127.0.10.4, standard ports.

mod common;

use common::cluster::Cluster;
use common::{cairn_bin, http_client, wait_for};
use serde_json::Value;
use std::path::Path;
use std::process::{Child, Command, Stdio};

const SERVERS: [&str; 3] = ["127.0.10.1", "127.0.10.2", "127.0.10.3"];
const CLIENT: &str = "127.0.10.4";

/// `cairn lock <flags> <prefix> <child that logs its hold to log>` through the client
/// agent, started (not waited for).
fn contender(flags: &[&str], prefix: &str, id: &str, hold: &str, log: &Path) -> Child {
    let script = format!(
        "echo start {id} $(date +%s%N) >> {log}; sleep {hold}; echo end {id} $(date +%s%N) >> {log}",
        log = log.display()
    );
    Command::new(cairn_bin())
        .arg("lock")
        .arg(format!("-http-addr={CLIENT}:8500"))
        .args(flags)
        .arg(prefix)
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cairn lock")
}

fn finish(child: Child) -> (i32, String) {
    let out = child.wait_with_output().expect("cairn lock exits");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The (start, end) of every hold in the log, by contender id.
fn holds(log: &Path) -> Vec<(u128, u128, String)> {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let mut open = std::collections::BTreeMap::new();
    let mut done = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split_whitespace().collect();
        let [what, id, at] = parts[..] else {
            panic!("odd log line {line:?}")
        };
        let at: u128 = at.parse().expect("timestamp");
        match what {
            "start" => {
                assert!(
                    open.insert(id.to_string(), at).is_none(),
                    "{id} started twice"
                );
            }
            "end" => {
                let start = open.remove(id).expect("end without start");
                done.push((start, at, id.to_string()));
            }
            other => panic!("odd log line {other:?}"),
        }
    }
    assert!(open.is_empty(), "holds that never ended: {open:?}");
    done.sort();
    done
}

/// The largest number of holds at one instant.
fn max_overlap(holds: &[(u128, u128, String)]) -> usize {
    let mut edges: Vec<(u128, i32)> = holds
        .iter()
        .flat_map(|(s, e, _)| [(*s, 1), (*e, -1)])
        .collect();
    // Ends before starts at the same instant: touching holds do not overlap.
    edges.sort();
    let (mut now, mut most) = (0i32, 0i32);
    for (_, step) in edges {
        now += step;
        most = most.max(now);
    }
    most as usize
}

fn kv_tree(prefix: &str) -> Vec<Value> {
    let r = http_client()
        .get(format!(
            "http://{CLIENT}:8500/v1/kv/{prefix}?recurse&consistent"
        ))
        .send()
        .expect("kv read");
    if r.status().as_u16() == 404 {
        return Vec::new();
    }
    r.json().expect("kv json")
}

fn lock_sessions() -> usize {
    let list: Vec<Value> = http_client()
        .get(format!("http://{CLIENT}:8500/v1/session/list"))
        .send()
        .expect("session list")
        .json()
        .expect("json");
    list.iter()
        .filter(|s| {
            s["Name"]
                .as_str()
                .unwrap_or("")
                .starts_with("Consul lock for")
        })
        .count()
}

#[test]
fn locks_and_semaphores_through_a_client_agent() {
    let dir = tempfile::tempdir().unwrap();
    let _cluster = Cluster::start(dir.path(), &SERVERS, CLIENT, &[]);
    // Sessions need the client agent registered in the catalog (serfHealth).
    wait_for("the client agent can create a session", || {
        let r = http_client()
            .put(format!("http://{CLIENT}:8500/v1/session/create"))
            .body("{}")
            .send()
            .ok()?;
        let id = r.status().is_success().then(|| r.json::<Value>().ok())??;
        let id = id["ID"].as_str()?.to_string();
        http_client()
            .put(format!("http://{CLIENT}:8500/v1/session/destroy/{id}"))
            .send()
            .ok()
    });

    // Two -n 1 contenders, three rounds each: never two children at once.
    let log = dir.path().join("mutex.log");
    let rounds: Vec<std::thread::JoinHandle<()>> = ["a", "b"]
        .into_iter()
        .map(|who| {
            let log = log.clone();
            std::thread::spawn(move || {
                for round in 0..3 {
                    let id = format!("{who}{round}");
                    let (code, err) = finish(contender(
                        &["-child-exit-code"],
                        "lk/mutex",
                        &id,
                        "0.3",
                        &log,
                    ));
                    assert_eq!((code, err.as_str()), (0, ""), "contender {id}");
                }
            })
        })
        .collect();
    for r in rounds {
        r.join().expect("contender thread");
    }
    let mutex_holds = holds(&log);
    assert_eq!(mutex_holds.len(), 6, "{mutex_holds:?}");
    assert_eq!(
        max_overlap(&mutex_holds),
        1,
        "two holders at once: {mutex_holds:?}"
    );
    // Released and cleaned up: no .lock key, no lock session left.
    assert!(kv_tree("lk/mutex").is_empty(), "{:?}", kv_tree("lk/mutex"));
    wait_for("the lock sessions destroyed", || {
        (lock_sessions() == 0).then_some(())
    });

    // A semaphore of 2 with 3 contenders: two in at once, never three.
    let log = dir.path().join("sem.log");
    let children: Vec<Child> = ["x", "y", "z"]
        .into_iter()
        .map(|id| contender(&["-n", "2"], "lk/sem", id, "2", &log))
        .collect();
    for child in children {
        let (code, err) = finish(child);
        assert_eq!((code, err.as_str()), (0, ""));
    }
    let sem_holds = holds(&log);
    assert_eq!(sem_holds.len(), 3, "{sem_holds:?}");
    assert_eq!(max_overlap(&sem_holds), 2, "{sem_holds:?}");
    assert!(kv_tree("lk/sem").is_empty(), "{:?}", kv_tree("lk/sem"));

    // While one holds the lock, a contender with -timeout gives up (exit 1).
    let log = dir.path().join("timeout.log");
    let holder = contender(&[], "lk/busy", "h", "3", &log);
    wait_for("the holder runs", || {
        std::fs::read_to_string(&log)
            .ok()?
            .contains("start h")
            .then_some(())
    });
    let (code, err) = finish(contender(&["-timeout=500ms"], "lk/busy", "t", "0", &log));
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Shutdown triggered or timeout during lock acquisition\n"
    );
    assert_eq!(finish(holder).0, 0);
    assert_eq!(holds(&log).len(), 1);

    // A lost lock (its session destroyed by an operator) kills the child.
    let log = dir.path().join("lost.log");
    let victim = contender(&["-verbose"], "lk/lost", "v", "60", &log);
    let session = wait_for("the victim holds the lock", || {
        let tree = kv_tree("lk/lost");
        tree.first()?["Session"].as_str().map(str::to_string)
    });
    let r = http_client()
        .put(format!("http://{CLIENT}:8500/v1/session/destroy/{session}"))
        .send()
        .expect("destroy");
    assert!(r.status().is_success());
    let started = std::time::Instant::now();
    let out = victim.wait_with_output().expect("victim exits");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the child outlived its lock"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Lock lost, killing child"), "{stdout}");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(!text.contains("end v"), "the child ran to its end: {text}");
}
