//! Issue 8 ("How it is checked"): the three-server walkthrough in every join order.
//!
//! Each order is its own cluster of real `cairn` processes on its own four loopback
//! addresses (127.0.0.100 to 127.0.0.115, standard ports):
//! (a) servers started 1, 2, 3 (each up before the next), each joining node1;
//! (b) servers started 3, 2, 1, each joining the one started after it (node3 joins node2,
//!     node2 joins node1, node1 joins nobody); each fails its first join before the next
//!     starts, so the first two only get in by retrying (the chain);
//! (c) all three started at once, each joining the other two, the client joining node2;
//! (d) the client started first, retry-joining node1 before any server runs.
//!
//! In every order exactly one Raft configuration forms (all servers name the same leader
//! and the same three peers; a server attempts bootstrap at most once and every attempt
//! lists the same three servers), and the walkthrough's checks pass: a PUT through the
//! client, a `?consistent` GET on a follower, status/peers through the client and
//! `cairn operator raft list-peers` with three voters. The orders run one after another
//! (a lock) to keep a loaded 2-core machine sane. Waits are bounded conditions.

mod common;

use common::cluster::{agreed_leader, get_raw, peers_of, put};
use common::{http_client, run_cairn, wait_for, Agent};
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Mutex;

/// One cluster at a time: each test holds this for its whole run.
static ONE_CLUSTER_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Four addresses for one order: three servers and the client agent.
struct Addrs {
    servers: [&'static str; 3],
    client: &'static str,
}

const ORDER_A: Addrs = Addrs {
    servers: ["127.0.0.100", "127.0.0.101", "127.0.0.102"],
    client: "127.0.0.103",
};
const ORDER_B: Addrs = Addrs {
    servers: ["127.0.0.104", "127.0.0.105", "127.0.0.106"],
    client: "127.0.0.107",
};
const ORDER_C: Addrs = Addrs {
    servers: ["127.0.0.108", "127.0.0.109", "127.0.0.110"],
    client: "127.0.0.111",
};
const ORDER_D: Addrs = Addrs {
    servers: ["127.0.0.112", "127.0.0.113", "127.0.0.114"],
    client: "127.0.0.115",
};

fn server(addrs: &Addrs, n: usize, dir: &Path, join: &[&str]) -> Agent {
    Agent::server_expect(
        addrs.servers[n - 1],
        &format!("node{n}"),
        &dir.join(format!("s{n}")),
        3,
        join,
    )
}

fn client(addrs: &Addrs, dir: &Path, join: &str) -> Agent {
    Agent::client_with(addrs.client, "node4", &dir.join("c4"), &["-join", join])
}

#[test]
fn servers_join_node1_in_start_order() {
    let _one = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let s = ORDER_A.servers;
    // Each server is up (node1 answering, the others joined) before the next starts.
    let node1 = server(&ORDER_A, 1, dir.path(), &[]);
    wait_answering(&node1);
    let node2 = server(&ORDER_A, 2, dir.path(), &[s[0]]);
    wait_log(&node2, "Join completed");
    let node3 = server(&ORDER_A, 3, dir.path(), &[s[0]]);
    wait_log(&node3, "Join completed");
    let servers = vec![node1, node2, node3];
    let client = client(&ORDER_A, dir.path(), s[0]);
    walkthrough(&ORDER_A, servers, client);
}

#[test]
fn servers_started_in_reverse_each_joining_the_next_started() {
    let _one = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let s = ORDER_B.servers;
    // Each of node3 and node2 has failed its first join (the next one is not up yet)
    // before the next starts, so both get in only by retrying.
    let node3 = server(&ORDER_B, 3, dir.path(), &[s[1]]);
    wait_log(&node3, "Join failed");
    let node2 = server(&ORDER_B, 2, dir.path(), &[s[0]]);
    wait_log(&node2, "Join failed");
    let node1 = server(&ORDER_B, 1, dir.path(), &[]);
    let client = client(&ORDER_B, dir.path(), s[0]);
    walkthrough(&ORDER_B, vec![node1, node2, node3], client);
}

#[test]
fn servers_started_at_once_each_joining_the_other_two() {
    let _one = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let s = ORDER_C.servers;
    let servers = vec![
        server(&ORDER_C, 1, dir.path(), &[s[1], s[2]]),
        server(&ORDER_C, 2, dir.path(), &[s[0], s[2]]),
        server(&ORDER_C, 3, dir.path(), &[s[0], s[1]]),
    ];
    let client = client(&ORDER_C, dir.path(), s[1]);
    walkthrough(&ORDER_C, servers, client);
}

#[test]
fn client_retry_joins_node1_before_any_server_runs() {
    let _one = ONE_CLUSTER_AT_A_TIME
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let s = ORDER_D.servers;
    let client = Agent::client_with(
        ORDER_D.client,
        "node4",
        &dir.path().join("c4"),
        &["-retry-join", s[0]],
    );
    // The client is up and has failed to join at least once before a server starts.
    wait_for("the client's first failed join", || {
        client.log_text().contains("Join failed").then_some(())
    });
    let servers = vec![
        server(&ORDER_D, 1, dir.path(), &[]),
        server(&ORDER_D, 2, dir.path(), &[s[0]]),
        server(&ORDER_D, 3, dir.path(), &[s[0]]),
    ];
    walkthrough(&ORDER_D, servers, client);
}

/// Wait until `agent`'s log contains `text`.
fn wait_log(agent: &Agent, text: &str) {
    wait_for(&format!("'{text}' in the log of {}", agent.ip), || {
        agent.log_text().contains(text).then_some(())
    });
}

/// Wait until `agent` answers HTTP (any answer: it has no leader yet).
fn wait_answering(agent: &Agent) {
    wait_for(&format!("{} answering HTTP", agent.ip), || {
        http_client()
            .get(agent.url("/v1/status/leader"))
            .send()
            .ok()
    });
}

/// The walkthrough's checks on a started cluster; `servers` are node1, node2, node3.
fn walkthrough(addrs: &Addrs, mut servers: Vec<Agent>, mut client: Agent) {
    let want_peers: BTreeSet<String> = addrs
        .servers
        .iter()
        .map(|ip| format!("{ip}:8300"))
        .collect();

    // Exactly one configuration: one leader named by every server, the same three
    // peers everywhere.
    let leader = wait_for(
        "one leader and the same three peers on every server",
        || {
            for s in servers.iter_mut() {
                assert!(!s.exited(), "{} exited; log:\n{}", s.ip, s.log_text());
            }
            let leader = agreed_leader(&servers.iter().collect::<Vec<_>>())?;
            let peers_agree = servers
                .iter()
                .all(|s| peers_of(s).as_ref() == Some(&want_peers));
            peers_agree.then_some(leader)
        },
    );
    assert!(want_peers.contains(&leader), "leader {leader}");

    // The client is in the catalog (its servers found through gossip).
    client.wait_ready();

    assert!(put(&client, "key1", "test"), "PUT through the client");
    let follower = servers
        .iter()
        .find(|s| format!("{}:8300", s.ip) != leader)
        .expect("a follower");
    assert_eq!(
        get_raw(follower, "key1", "consistent").as_deref(),
        Some("test"),
        "?consistent on follower {}",
        follower.ip
    );
    assert_eq!(peers_of(&client), Some(want_peers.clone()));
    let everyone: Vec<&Agent> = servers.iter().chain([&client]).collect();
    assert_eq!(agreed_leader(&everyone), Some(leader.clone()));
    check_list_peers(&client, &want_peers);
    check_logs(&servers, &leader, &want_peers);
}

/// `cairn operator raft list-peers` through the client: three voters, one leader.
fn check_list_peers(client: &Agent, want_peers: &BTreeSet<String>) {
    let (code, out, err) = run_cairn(&[
        "operator",
        "raft",
        "list-peers",
        &format!("-http-addr={}:8500", client.ip),
    ]);
    assert_eq!(code, 0, "{err}");
    let mut lines = out.lines();
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["Node", "ID", "Address", "State", "Voter", "RaftProtocol"],
        "{out}"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert_eq!(rows.len(), 3, "{out}");
    let addresses: BTreeSet<String> = rows.iter().map(|r| r[2].to_string()).collect();
    assert_eq!(&addresses, want_peers, "{out}");
    assert!(rows.iter().all(|r| r[4] == "true"), "all voters: {out}");
    assert_eq!(rows.iter().filter(|r| r[3] == "leader").count(), 1, "{out}");
}

/// Consul-like log lines, and no second configuration: each server attempts bootstrap
/// at most once, every attempt names the same three servers, and at least one did.
fn check_logs(servers: &[Agent], leader: &str, want_peers: &BTreeSet<String>) {
    let mut attempts: Vec<BTreeSet<String>> = Vec::new();
    for s in servers {
        // Leadership lines are written by a task of their own: wait for them.
        let log = wait_for(
            &format!("'New leader elected' in the log of {}", s.ip),
            || {
                let log = s.log_text();
                log.contains("New leader elected").then_some(log)
            },
        );
        assert!(log.contains("expecting 3 servers"), "{}: {log}", s.ip);
        let mine: Vec<BTreeSet<String>> = log
            .lines()
            .filter_map(|l| l.split("Attempting bootstrap with nodes: [").nth(1))
            .map(|rest| bootstrap_addrs(rest.split(']').next().unwrap_or_default()))
            .collect();
        assert!(mine.len() <= 1, "{} bootstrapped twice: {log}", s.ip);
        attempts.extend(mine);
        if format!("{}:8300", s.ip) == leader {
            let log = wait_for("'cluster leadership acquired' on the leader", || {
                let log = s.log_text();
                log.contains("cluster leadership acquired").then_some(log)
            });
            assert!(log.contains("cluster leadership acquired"));
        }
    }
    assert!(!attempts.is_empty(), "no server attempted bootstrap");
    for set in &attempts {
        assert_eq!(set, want_peers, "a bootstrap with another server set");
    }
}

/// The addresses of `id@ip:port id@ip:port ...` (ids differ per run).
fn bootstrap_addrs(list: &str) -> BTreeSet<String> {
    list.split_whitespace()
        .map(|node| node.rsplit('@').next().unwrap_or(node).to_string())
        .collect()
}
