//! A three-server cluster (plus a client agent) under faults, with concurrent clients
//! whose history is checked for linearizability (GitHub issue 8, "How it is checked",
//! integration part). Each test records PUT / default-mode GET / CAS operations through
//! every agent while it injects one fault, heals it, then checks:
//! - the history with `protocol::linearizability::check_kv` (timeouts and 5xx on writes
//!   are "unknown": may or may not have taken effect);
//! - that every acknowledged write is readable `?consistent` through every server, and
//!   `?stale` on every server once it caught up.
//!
//! Faults: kill -9 of the leader and its restart; SIGSTOP of the leader past the election
//! timeout, then SIGCONT; the leader cut off from both followers by fault rules (the
//! minority refuses what needs a leader, and says so in its stale reads' headers); a
//! follower that missed so much that it catches up by InstallSnapshot.
//!
//! Addresses 127.0.0.220 to 127.0.0.235, standard ports (the rpc unit test of a
//! leaderless server uses 127.0.0.236 on other ports). The tests take a lock so that
//! only one cluster runs at a time: their timing matters and the machine has 2 cores.

mod common;

use common::cluster::{leader_of, names_no_leader, server_addr, Cluster};
use common::history::{fresh_seed, History, Load, LoadSpec};
use common::{http_client, wait_for, Agent};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const KILL: ([&str; 3], &str) = (["127.0.0.220", "127.0.0.221", "127.0.0.222"], "127.0.0.223");
const STOP: ([&str; 3], &str) = (["127.0.0.224", "127.0.0.225", "127.0.0.226"], "127.0.0.227");
const CUT: ([&str; 3], &str) = (["127.0.0.228", "127.0.0.229", "127.0.0.230"], "127.0.0.231");
const SNAP: ([&str; 3], &str) = (["127.0.0.232", "127.0.0.233", "127.0.0.234"], "127.0.0.235");

/// Writes with an answer before a fault is injected (the load is under way).
const WARM_UP_WRITES: usize = 40;

static SERIAL: Mutex<()> = Mutex::new(());

/// One cluster at a time (a failed test must not block the others).
fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn others(of: usize) -> Vec<usize> {
    (0..3).filter(|i| *i != of).collect()
}

/// Wait until the servers `among` agree on a leader other than `old`; its index.
fn wait_new_leader(cluster: &Cluster, among: &[usize], old: usize) -> usize {
    let agents: Vec<&Agent> = among.iter().map(|i| &cluster.servers[*i]).collect();
    let old_addr = server_addr(&cluster.servers[old]);
    let leader = wait_for("a new leader", || {
        common::cluster::agreed_leader(&agents).filter(|l| *l != old_addr)
    });
    cluster.index_of(&leader)
}

/// After the load: read every key `?consistent` through every server (into the
/// history), every acknowledged ledger write `?consistent` through every server and
/// `?stale` on every server (each one caught up), then check linearizability.
fn check_end(cluster: &Cluster, mut history: History, test: &str) {
    let servers = cluster.server_urls();
    history.read_final(&servers);
    for url in &servers {
        for mode in ["consistent", "stale"] {
            let missing = wait_for(&format!("the ledger {mode} on {url}"), || {
                match history.missing_ledger(url, mode) {
                    Ok(missing) if missing.is_empty() || mode == "consistent" => Some(missing),
                    _ => None,
                }
            });
            assert!(
                missing.is_empty(),
                "{test}: acknowledged writes missing {mode} on {url}: {missing:?}"
            );
        }
    }
    history.assert_linearizable(test);
}

#[test]
fn leader_kill9_under_load_is_linearizable_and_loses_nothing() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (ips, client) = KILL;
    let mut cluster = Cluster::start(dir.path(), &ips, client, &[]);
    let leader = cluster.wait_leader(&[0, 1, 2]);
    let load = Load::start(&cluster.urls(), LoadSpec::new(fresh_seed()));
    load.wait_answered_writes(0, WARM_UP_WRITES, None);

    let killed_at = load.now_us();
    cluster.servers[leader].kill9();
    load.mark("killed the leader");
    let survivors = others(leader);
    let new_leader = wait_new_leader(&cluster, &survivors, leader);
    load.mark("new leader elected");
    // Writes go on through both survivors and the client agent.
    for agent in survivors
        .iter()
        .map(|i| &cluster.servers[*i])
        .chain([&cluster.client])
    {
        load.wait_answered_writes(killed_at, 3, Some(&agent.url("")));
    }
    load.wait_answered_writes(killed_at, WARM_UP_WRITES, None);
    load.mark("writes answered through every survivor");

    cluster.servers[leader].restart();
    let restarted_at = load.now_us();
    load.mark("restarted the old leader");
    // It follows the leader the others follow (normally `new_leader`; on a loaded
    // machine another election may have happened meanwhile, which is fine).
    wait_for(
        "the restarted server follows the same leader as the others",
        || {
            assert!(!cluster.servers[leader].exited(), "restart failed");
            let all: Vec<&Agent> = cluster.servers.iter().collect();
            common::cluster::agreed_leader(&all)
        },
    );
    load.mark(&format!(
        "all follow {:?} (elected after the kill: {})",
        leader_of(&cluster.servers[leader]),
        cluster.servers[new_leader].ip
    ));
    load.wait_answered_writes(restarted_at, 3, Some(&cluster.servers[leader].url("")));
    load.mark("writes answered through the restarted server");
    let history = load.finish();
    check_end(&cluster, history, "leader_kill9");
    let log = cluster.servers[leader].log_text();
    assert!(
        log.contains("Raft data found, disabling bootstrap mode"),
        "{log}"
    );
}

/// SIGSTOP of the leader past the election timeout, then SIGCONT, with every read of
/// the history checked: when the paused leader resumes, the default-mode reads that
/// waited in its sockets must not be answered from its own state (its lease has run
/// out, and a ReadIndex round fails: it was deposed). Before leader reads confirmed
/// leadership this failed about 2 runs in 3 with a value from before the pause.
/// The old leader then steps down and follows; nothing acknowledged is lost.
#[test]
fn leader_sigstop_then_sigcont_reads_stay_linearizable() {
    sigstop_scenario("leader_sigstop_reads");
}

fn sigstop_scenario(test: &str) {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (ips, client) = STOP;
    let cluster = Cluster::start(dir.path(), &ips, client, &[]);
    let old = cluster.wait_leader(&[0, 1, 2]);
    // Requests held by the paused server time out quickly, so that its clients send
    // new ones during the pause: those are the reads a deposed leader must not answer
    // from its own state when it resumes.
    let spec = LoadSpec {
        request_timeout: Duration::from_millis(1500),
        ..LoadSpec::new(fresh_seed())
    };
    let load = Load::start(&cluster.urls(), spec);
    load.wait_answered_writes(0, WARM_UP_WRITES, None);

    let stopped_at = load.now_us();
    cluster.servers[old].signal("STOP");
    load.mark("stopped the leader");
    // The others elect a new leader (so the pause outlasted the election timeout) and
    // it acknowledges writes the paused one has never seen.
    let new_leader = wait_new_leader(&cluster, &others(old), old);
    load.mark("new leader elected");
    load.wait_answered_writes(stopped_at, 20, None);
    let written_at = load.now_us();
    // Resume while a request sent after those writes waits at the paused server.
    let old_url = cluster.servers[old].url("");
    load.wait_pending(&old_url, written_at, Duration::from_millis(200));
    cluster.servers[old].signal("CONT");
    load.mark("resumed the old leader");
    let resumed_at = load.now_us();

    // The old leader steps down and follows; writes through it work again.
    let old_addr = server_addr(&cluster.servers[old]);
    wait_for("the resumed server follows a new leader", || {
        let all: Vec<&Agent> = cluster.servers.iter().collect();
        common::cluster::agreed_leader(&all).filter(|l| *l != old_addr)
    });
    load.mark("the old leader follows");
    load.wait_answered_writes(resumed_at, 3, Some(&old_url));
    load.mark("writes answered through the resumed server");
    let history = load.finish();
    eprintln!(
        "paused {} ms; new leader {}",
        (resumed_at - stopped_at) / 1000,
        cluster.servers[new_leader].ip
    );
    check_end(&cluster, history, test);
}

/// Status, headers and body of one request, and how long it took.
struct Answer {
    status: u16,
    known_leader: Option<String>,
    last_contact: Option<u64>,
    body: String,
    took: Duration,
}

fn ask(request: reqwest::blocking::RequestBuilder) -> Answer {
    let started = Instant::now();
    let response = request.send().expect("request");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let known_leader = header("X-Consul-KnownLeader");
    let last_contact = header("X-Consul-LastContact").and_then(|v| v.parse().ok());
    let status = response.status().as_u16();
    let body = response.text().unwrap_or_default();
    Answer {
        status,
        known_leader,
        last_contact,
        body,
        took: started.elapsed(),
    }
}

#[test]
fn leader_cut_off_from_both_followers_loses_its_leadership() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let (ips, client) = CUT;
    let cluster = Cluster::start(dir.path(), &ips, client, &["-fault-injection"]);
    let old = cluster.wait_leader(&[0, 1, 2]);
    let majority = others(old);
    let load = Load::start(&cluster.urls(), LoadSpec::new(fresh_seed()));
    load.wait_answered_writes(0, WARM_UP_WRITES, None);

    let cut_at = load.now_us();
    for f in &majority {
        cluster.partition(old, *f);
    }
    load.mark("cut the leader off");
    // The majority elects a leader and keeps serving, through itself and the client.
    wait_new_leader(&cluster, &majority, old);
    load.mark("new leader elected by the majority");
    for agent in majority
        .iter()
        .map(|i| &cluster.servers[*i])
        .chain([&cluster.client])
    {
        load.wait_answered_writes(cut_at, 3, Some(&agent.url("")));
    }
    load.mark("writes answered through the majority and the client agent");

    // The minority steps down, then refuses writes and default reads after a bounded
    // wait for a leader, and serves stale reads that say how old they are.
    let minority = &cluster.servers[old];
    wait_for("the cut-off leader to step down", || {
        names_no_leader(minority).then_some(())
    });
    load.mark("the cut-off leader stepped down");
    let http = http_client();
    let put = ask(http.put(minority.url("/v1/kv/minority-write")).body("x"));
    assert_eq!(
        (put.status, put.body.trim()),
        (500, "No cluster leader"),
        "PUT on the minority"
    );
    assert!(put.took < Duration::from_secs(8), "took {:?}", put.took);
    let read = ask(http.get(minority.url("/v1/kv/lin/k0")));
    assert_eq!(
        (read.status, read.body.trim()),
        (500, "No cluster leader"),
        "default GET on the minority"
    );
    let stale = || {
        let a = ask(http.get(minority.url("/v1/kv/lin/k0?stale")));
        assert!(matches!(a.status, 200 | 404), "stale read: {}", a.status);
        assert_eq!(a.known_leader.as_deref(), Some("false"));
        a.last_contact.expect("X-Consul-LastContact")
    };
    let first = stale();
    assert!(first > 0, "a deposed leader's last contact is not 0");
    wait_for("X-Consul-LastContact to grow", || {
        (stale() > first).then_some(())
    });
    load.mark("the minority refused, its stale reads age");

    cluster.heal();
    let healed_at = load.now_us();
    load.mark("healed");
    wait_for("all three servers agree on a leader", || {
        let all: Vec<&Agent> = cluster.servers.iter().collect();
        common::cluster::agreed_leader(&all)
    });
    load.wait_answered_writes(healed_at, 3, Some(&minority.url("")));
    load.mark("writes answered through the old leader");
    let history = load.finish();
    check_end(&cluster, history, "leader_cut_off");
    // The refused write never took effect.
    let after = ask(http.get(minority.url("/v1/kv/minority-write?consistent")));
    assert_eq!(after.status, 404, "{}", after.body);
}

#[test]
fn a_follower_that_missed_a_compaction_catches_up_by_snapshot() {
    let _serial = serial();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("small-snapshots.json");
    std::fs::write(
        &config,
        r#"{"raft_snapshot_threshold": 64, "raft_trailing_logs": 16}"#,
    )
    .unwrap();
    let config = config.display().to_string();
    let (ips, client) = SNAP;
    let mut cluster = Cluster::start(dir.path(), &ips, client, &["-config-file", &config]);
    let leader = cluster.wait_leader(&[0, 1, 2]);
    let lagging = others(leader)[0];
    let http = http_client();
    let put = |agent: &Agent, key: &str, value: &str| {
        let a = ask(http
            .put(agent.url(&format!("/v1/kv/{key}")))
            .body(value.to_string()));
        assert_eq!((a.status, a.body.trim()), (200, "true"), "PUT {key}");
    };
    put(&cluster.servers[leader], "before", "lag");
    wait_for("the follower has the first write", || {
        let a = ask(http.get(cluster.servers[lagging].url("/v1/kv/before?stale&raw")));
        (a.body == "lag").then_some(())
    });
    cluster.servers[lagging].kill9();

    // Enough writes for several snapshots, each followed by compaction down to 16
    // trailing entries: the entries the stopped follower needs are gone from the log.
    const WRITES: usize = 300;
    let writer = (0..3).find(|i| *i != leader && *i != lagging).unwrap();
    for i in 0..WRITES {
        let via = if i % 2 == 0 { leader } else { writer };
        put(
            &cluster.servers[via],
            &format!("snap/{i:03}"),
            &format!("v{i}"),
        );
    }
    wait_for("a snapshot on the leader", || {
        let log = cluster.servers[leader].log_text();
        (log.matches("raft snapshot saved").count() >= 2).then_some(())
    });

    cluster.servers[lagging].restart();
    let restarted = &cluster.servers[lagging];
    let load = Load::start(&cluster.urls(), LoadSpec::new(fresh_seed()));
    wait_for("the restarted follower serves every write", || {
        let url = restarted.url("/v1/kv/snap/?recurse&stale");
        let rows: serde_json::Value = http.get(url).send().ok()?.json().ok()?;
        (rows.as_array()?.len() == WRITES).then_some(())
    });
    let before = ask(http.get(restarted.url("/v1/kv/before?stale&raw")));
    assert_eq!(before.body, "lag");
    load.wait_answered_writes(load.now_us(), 3, Some(&restarted.url("")));
    let history = load.finish();
    check_end(&cluster, history, "snapshot_catch_up");

    let follower_log = restarted.log_text();
    assert!(
        follower_log.contains("raft: installed a snapshot from the leader"),
        "{follower_log}"
    );
    // Sent by the leader of the moment (normally the one from before the restart).
    let sent = others(lagging).iter().any(|i| {
        cluster.servers[*i]
            .log_text()
            .contains("sending snapshot to peer")
    });
    assert!(sent, "no server logged sending a snapshot");
}
