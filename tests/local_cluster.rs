//! `cairn cluster` end to end (issue 9): the real binary starts a local cluster of
//! three servers and a client agent, and the test drives it only through the command
//! line: status, a write through the client read on a server, kill and restart of the
//! leader, pause and resume of a follower, a partition that cuts the leader off (the
//! majority elects another and takes writes), heal, errors, down. A second test runs
//! `LocalCluster` in-process as the chaos harness does: the KV client, leader lookup,
//! a membership cycle and the local snapshot.
//!
//! Addresses 127.0.1.1 to 127.0.1.19 only, standard ports. Waits are conditions with
//! deadlines, never fixed sleeps.

mod common;

use cairn::chaos::target::{Cluster, FaultKind, ReadMode};
use cairn::localcluster::process::{proc_state, ProcState};
use cairn::localcluster::{ClusterSpec, ClusterState, LocalCluster};
use common::{cairn_bin, http_client, run_cairn, wait_for};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Runs `cairn cluster down` on the folder when dropped, so a failing test leaves no
/// agents behind on its addresses.
struct DownOnDrop(PathBuf);

impl Drop for DownOnDrop {
    fn drop(&mut self) {
        let dir = self.0.display().to_string();
        if std::thread::panicking() {
            for node in ["node1", "node2", "node3", "node4"] {
                let log = self.0.join(node).join("agent.log");
                let text = std::fs::read_to_string(&log).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(30).collect();
                eprintln!("---- {} (last lines) ----", log.display());
                for line in tail.iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
        let _ = run_cairn(&["cluster", "down", "-dir", &dir]);
    }
}

/// `cairn cluster <sub> -dir DIR <args>`, which must succeed; its stdout.
fn cluster_ok(dir: &Path, sub: &str, args: &[&str]) -> String {
    let dir = dir.display().to_string();
    let mut argv = vec!["cluster", sub, "-dir", dir.as_str()];
    argv.extend_from_slice(args);
    let (code, out, err) = run_cairn(&argv);
    assert_eq!(code, 0, "cairn {argv:?} failed:\n{out}{err}");
    out
}

/// The status table as (node, process, leader) per node.
fn status(dir: &Path) -> BTreeMap<String, (String, String)> {
    cluster_ok(dir, "status", &[])
        .lines()
        .skip(1)
        .filter(|l| l.starts_with("node"))
        .map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (
                cells[0].to_string(),
                (cells[4].to_string(), cells[5].to_string()),
            )
        })
        .collect()
}

/// The leader every listed node names in `cluster status`, once they agree.
fn agreed_leader(dir: &Path, nodes: &[&str]) -> Option<String> {
    let rows = status(dir);
    let leaders: Vec<&String> = nodes.iter().map(|n| &rows[*n].1).collect();
    let first = leaders[0];
    (first != "-" && leaders.iter().all(|l| *l == first)).then(|| first.clone())
}

fn ip_of(node: &str) -> String {
    let n: u8 = node.trim_start_matches("node").parse().unwrap();
    format!("127.0.1.{n}")
}

fn put(node: &str, key: &str, value: &str) -> bool {
    let url = format!("http://{}:8500/v1/kv/{key}", ip_of(node));
    http_client()
        .put(url)
        .body(value.to_string())
        .send()
        .ok()
        .filter(|r| r.status().is_success())
        .and_then(|r| r.text().ok())
        .is_some_and(|t| t.trim() == "true")
}

fn get_consistent(node: &str, key: &str) -> Option<String> {
    let url = format!("http://{}:8500/v1/kv/{key}?consistent&raw", ip_of(node));
    let r = http_client().get(url).send().ok()?;
    r.status().is_success().then(|| r.text().ok())?
}

#[test]
fn a_cluster_driven_through_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster");
    let d = dir.display().to_string();
    let _guard = DownOnDrop(dir.clone());
    let up = ["-servers", "3", "-clients", "1", "-base", "127.0.1.1"];
    let out = cluster_ok(&dir, "up", &up);
    assert!(out.starts_with("Cluster up in"), "{out}");
    assert!(
        out.contains("node4  client  127.0.1.4:8500  127.0.1.4:8600"),
        "{out}"
    );
    // Idempotent: the same shape again is "already up"; another shape is refused.
    let again = cluster_ok(&dir, "up", &up);
    assert!(again.starts_with("Cluster already up"), "{again}");
    let (code, _, err) = run_cairn(&[
        "cluster",
        "up",
        "-dir",
        &d,
        "-servers",
        "1",
        "-base",
        "127.0.1.1",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("a different cluster is up"), "{err}");

    // Status names a leader, the same on every node; every node sees 4 members.
    let servers = ["node1", "node2", "node3"];
    let leader = wait_for("a leader in cluster status", || {
        agreed_leader(&dir, &["node1", "node2", "node3", "node4"])
    });
    let text = cluster_ok(&dir, "status", &[]);
    assert!(text.contains("Partition: none"), "{text}");
    assert_eq!(
        text.lines().filter(|l| l.ends_with("  4")).count(),
        4,
        "{text}"
    );

    // A write through the client agent is read on a server.
    assert!(put("node4", "k", "v1"));
    let reader = servers.iter().find(|s| **s != leader).unwrap();
    assert_eq!(get_consistent(reader, "k").as_deref(), Some("v1"));

    // Kill the leader: the other two elect another.
    assert_eq!(
        cluster_ok(&dir, "kill", &[&leader]),
        format!("Killed {leader}\n")
    );
    assert_eq!(status(&dir)[&leader].0, "dead");
    let rest: Vec<&str> = servers.iter().copied().filter(|s| *s != leader).collect();
    let second = wait_for("a new leader after the kill", || {
        agreed_leader(&dir, &rest).filter(|l| *l != leader)
    });
    wait_for("a write after the failover", || {
        put(rest[0], "k", "v2").then_some(())
    });
    // Killing it again does nothing.
    cluster_ok(&dir, "kill", &[&leader]);

    // Restart it: it follows the new leader and has the data.
    cluster_ok(&dir, "restart", &[&leader]);
    assert_eq!(status(&dir)[&leader].0, "running");
    wait_for("the restarted server to follow", || {
        agreed_leader(&dir, &servers).filter(|l| *l == second)
    });
    wait_for("the restarted server to read v2", || {
        (get_consistent(&leader, "k").as_deref() == Some("v2")).then_some(())
    });

    // Pause a follower, write, resume: it catches up.
    let follower = servers
        .iter()
        .copied()
        .find(|s| *s != second)
        .unwrap()
        .to_string();
    cluster_ok(&dir, "pause", &[&follower]);
    cluster_ok(&dir, "pause", &[&follower]);
    assert_eq!(status(&dir)[&follower].0, "paused");
    wait_for("a write while a follower is paused", || {
        put(&second, "k", "v3").then_some(())
    });
    cluster_ok(&dir, "resume", &[&follower]);
    cluster_ok(&dir, "resume", &[&follower]);
    assert_eq!(status(&dir)[&follower].0, "running");
    wait_for("the resumed follower to name the leader", || {
        agreed_leader(&dir, &servers).filter(|l| *l == second)
    });

    // Cut the leader off from the other two servers (separate argv words): the
    // majority elects a new leader and takes writes.
    let majority: Vec<&str> = servers.iter().copied().filter(|s| *s != second).collect();
    let groups = majority.join(",");
    let out = cluster_ok(&dir, "partition", &[&second, "/", &groups]);
    assert_eq!(out, format!("Partitioned: {second} / {groups}\n"));
    let rules: serde_json::Value = http_client()
        .get(format!("http://{}:8500/v1/cairn/faults", ip_of(&second)))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(rules.as_array().map(Vec::len), Some(2), "{rules}");
    assert!(cluster_ok(&dir, "status", &[]).contains(&format!("Partition: {second} / {groups}")));
    let third = wait_for("a leader in the majority", || {
        agreed_leader(&dir, &majority).filter(|l| *l != second)
    });
    wait_for("a write through the majority", || {
        put(majority[0], "k", "v4").then_some(())
    });
    assert_eq!(get_consistent(majority[1], "k").as_deref(), Some("v4"));

    // Heal: one leader for all three again, and the cut-off server has the write.
    cluster_ok(&dir, "heal", &[]);
    assert!(cluster_ok(&dir, "status", &[]).contains("Partition: none"));
    wait_for("one leader after the heal", || {
        agreed_leader(&dir, &servers)
    });
    wait_for("the healed server to read v4", || {
        (get_consistent(&second, "k").as_deref() == Some("v4")).then_some(())
    });
    let _ = third;

    // Errors: an unknown node, a malformed partition.
    let (code, _, err) = run_cairn(&["cluster", "kill", "-dir", &d, "node9"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error: unknown node \"node9\" (nodes: node1 node2 node3 node4)\n"
    );
    let (code, _, err) = run_cairn(&["cluster", "partition", "-dir", &d, "node1", "/", "node7"]);
    assert_eq!(code, 1);
    assert!(err.contains("unknown node \"node7\""), "{err}");

    // Down with -keep: every agent gone, the files kept; status shows them dead.
    let state = ClusterState::load(&dir).unwrap().expect("state file");
    let out = cluster_ok(&dir, "down", &["-keep"]);
    assert!(out.starts_with("Cluster stopped; files kept"), "{out}");
    for n in &state.nodes {
        let pid = n.pid.expect("pid");
        assert_eq!(proc_state(pid, &n.data_dir), ProcState::Dead, "{}", n.name);
        assert!(n.log.exists(), "{}", n.log.display());
    }
    assert!(status(&dir).values().all(|(process, _)| process == "dead"));

    // A state file whose agents are all dead is stale: `up` starts afresh (empty data).
    let out = cluster_ok(&dir, "up", &up);
    assert!(out.starts_with("Cluster up in"), "{out}");
    wait_for("a leader in the new cluster", || {
        agreed_leader(&dir, &servers)
    });
    assert_eq!(get_consistent("node1", "k"), None);

    // Down: every agent gone, the folder removed; then there is no cluster.
    let state = ClusterState::load(&dir).unwrap().expect("state file");
    let out = cluster_ok(&dir, "down", &[]);
    assert!(out.starts_with("Cluster stopped and"), "{out}");
    for n in &state.nodes {
        let pid = n.pid.expect("pid");
        assert_eq!(proc_state(pid, &n.data_dir), ProcState::Dead, "{}", n.name);
    }
    assert!(!dir.exists());
    let (code, _, err) = run_cairn(&["cluster", "status", "-dir", &d]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!("Error: no cluster in {d}; start one with: scripts/cluster up -dir {d}\n")
    );
}

#[test]
fn the_chaos_target_in_process() {
    let tmp = tempfile::tempdir().unwrap();
    let mut spec = ClusterSpec::new(3, 0, &tmp.path().join("c"), Path::new(cairn_bin()));
    spec.base = Ipv4Addr::new(127, 0, 1, 11);
    let mut cluster = LocalCluster::start(spec).expect("cluster starts");
    let nodes = Cluster::nodes(&cluster);
    assert_eq!(nodes.len(), 3);
    assert_eq!(nodes[2].api_addr, "127.0.1.13:8500");
    assert!(nodes.iter().all(|n| n.server));
    for fault in FaultKind::ALL {
        assert!(cluster.supports(fault), "{fault:?}");
    }
    let leader = wait_for("a leader", || Cluster::leader(&cluster));

    // The KV client: put, get in every mode, cas, delete.
    let timeout = Duration::from_secs(10);
    let mut kv = cluster.client((leader + 1) % 3, timeout);
    assert_eq!(kv.get("chaos/a", ReadMode::Default), Ok(None));
    kv.put("chaos/a", "one").unwrap();
    let got = kv
        .get("chaos/a", ReadMode::Consistent)
        .unwrap()
        .expect("value");
    assert_eq!(got.value, "one");
    assert!(
        !kv.cas("chaos/a", None, "x").unwrap(),
        "cas=0 on an existing key"
    );
    assert!(!kv.cas("chaos/a", Some(got.version + 100), "x").unwrap());
    assert!(kv.cas("chaos/a", Some(got.version), "two").unwrap());
    let now = kv
        .get("chaos/a", ReadMode::Default)
        .unwrap()
        .expect("value");
    assert_eq!(now.value, "two");
    assert!(now.version > got.version);
    assert!(kv.cas("chaos/b", None, "new").unwrap());
    kv.delete("chaos/b").unwrap();
    kv.delete("chaos/b").unwrap();
    assert_eq!(kv.get("chaos/b", ReadMode::Default), Ok(None));
    // Every node holds the write locally (a stale read: no forwarding).
    for node in 0..3 {
        let snapshot = wait_for("the write on every node", || {
            let s = cluster.local_snapshot(node, "chaos/").ok()?;
            (s.get("chaos/a").map(String::as_str) == Some("two")).then_some(s)
        });
        assert_eq!(snapshot.len(), 1, "{snapshot:?}");
        let stale = cluster
            .client(node, timeout)
            .get("chaos/a", ReadMode::Stale);
        assert_eq!(stale.unwrap().map(|v| v.value).as_deref(), Some("two"));
    }

    // A follower leaves the Raft configuration and comes back with an empty data dir.
    let follower = (leader + 1) % 3;
    let started = std::time::Instant::now();
    Cluster::cycle_membership(&mut cluster, follower).expect("membership cycle");
    eprintln!("membership cycle took {:?}", started.elapsed());
    let snapshot = wait_for("the data on the re-joined server", || {
        let s = cluster.local_snapshot(follower, "chaos/").ok()?;
        (s.get("chaos/a").map(String::as_str) == Some("two")).then_some(s)
    });
    assert_eq!(snapshot.len(), 1);

    // A killed node's client is refused and says nothing was applied.
    Cluster::kill(&mut cluster, follower).unwrap();
    let e = cluster
        .client(follower, timeout)
        .put("chaos/c", "x")
        .unwrap_err();
    assert_eq!(
        (e.kind.as_str(), e.definitely_not_applied),
        ("refused", true)
    );
    Cluster::restart(&mut cluster, follower).unwrap();

    let dir = cluster.spec().dir.clone();
    let pids: Vec<(u32, PathBuf)> = cluster
        .state()
        .nodes
        .iter()
        .map(|n| (n.pid.unwrap(), n.data_dir.clone()))
        .collect();
    Cluster::shutdown(&mut cluster);
    for (pid, data) in pids {
        assert_eq!(proc_state(pid, &data), ProcState::Dead);
    }
    assert!(
        dir.join("cluster.json").exists(),
        "shutdown keeps the files"
    );
}
