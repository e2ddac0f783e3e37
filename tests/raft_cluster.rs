//! A three-server Raft cluster with real processes on loopback (issue "Raft cluster"):
//! `-bootstrap-expect 3` formation, a client agent's writes, `?consistent` reads on
//! every server, status/peers and status/leader, kill -9 of the leader, failover with
//! no acknowledged write lost, and the killed server's restart and catch-up.
//! A late fourth server finds the cluster and does not bootstrap.
//! Addresses 127.0.0.190 to 127.0.0.194, standard ports. Waits are conditions with
//! deadlines, never fixed sleeps.

mod common;

use common::cluster::{agreed_leader, get_raw, leader_of, peers_of, put};
use common::{wait_for, Agent};
use std::collections::BTreeSet;

const SERVERS: [&str; 3] = ["127.0.0.190", "127.0.0.191", "127.0.0.192"];
const CLIENT: &str = "127.0.0.193";
const LATE: &str = "127.0.0.194";

#[test]
fn three_servers_form_a_cluster_fail_over_and_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let data = |name: &str| dir.path().join(name);
    let mut servers: Vec<Agent> = SERVERS
        .iter()
        .enumerate()
        .map(|(i, ip)| {
            let join: &[&str] = if i == 0 { &[] } else { &[SERVERS[0]] };
            Agent::server_expect(
                ip,
                &format!("node{}", i + 1),
                &data(&format!("s{}", i + 1)),
                3,
                join,
            )
        })
        .collect();

    // One leader, named the same by every server; its no-op applied (a write works).
    let leader = wait_for("one leader named by every server", || {
        for s in servers.iter_mut() {
            assert!(!s.exited(), "a server exited; log:\n{}", s.log_text());
        }
        agreed_leader(&servers.iter().collect::<Vec<_>>())
    });
    let want_peers: BTreeSet<String> = SERVERS.iter().map(|ip| format!("{ip}:8300")).collect();
    assert!(want_peers.contains(&leader), "{leader}");
    let leader_log = servers
        .iter()
        .find(|s| format!("{}:8300", s.ip) == leader)
        .unwrap()
        .log_text();
    assert!(
        leader_log.contains("Attempting bootstrap with nodes"),
        "{leader_log}"
    );
    assert!(leader_log.contains("expecting 3 servers"), "{leader_log}");

    // A client agent joins and answers like the servers.
    let client = Agent::client(CLIENT, "node4", &data("c4"), &[SERVERS[0]]);
    assert!(put(&client, "key1", "test"));
    for s in &servers {
        assert_eq!(
            get_raw(s, "key1", "consistent").as_deref(),
            Some("test"),
            "on {}",
            s.ip
        );
        assert_eq!(
            get_raw(s, "key1", "").as_deref(),
            Some("test"),
            "on {}",
            s.ip
        );
    }
    // A write on a follower is forwarded to the leader.
    let follower = servers
        .iter()
        .position(|s| format!("{}:8300", s.ip) != leader)
        .unwrap();
    assert!(put(&servers[follower], "key2", "from-follower"));
    assert_eq!(
        get_raw(&client, "key2", "consistent").as_deref(),
        Some("from-follower")
    );
    // status/peers and status/leader agree everywhere, the client included.
    assert_eq!(peers_of(&client), Some(want_peers.clone()));
    for s in &servers {
        assert_eq!(peers_of(s), Some(want_peers.clone()));
    }
    let everyone: Vec<&Agent> = servers.iter().chain([&client]).collect();
    assert_eq!(agreed_leader(&everyone), Some(leader.clone()));

    // Acknowledged writes, then kill -9 the leader.
    let mut acknowledged = vec![
        ("key1", "test".to_string()),
        ("key2", "from-follower".to_string()),
    ];
    let keys: Vec<String> = (0..10).map(|i| format!("before/{i}")).collect();
    for key in &keys {
        assert!(put(&client, key, "v"));
        acknowledged.push((key.as_str(), "v".to_string()));
    }
    let dead = servers
        .iter()
        .position(|s| format!("{}:8300", s.ip) == leader)
        .unwrap();
    servers[dead].kill9();
    let survivors: Vec<usize> = (0..3).filter(|i| *i != dead).collect();

    // A new leader, and writes go on through the client.
    let new_leader = wait_for("a new leader among the survivors", || {
        let agents: Vec<&Agent> = survivors.iter().map(|i| &servers[*i]).collect();
        agreed_leader(&agents).filter(|l| *l != leader)
    });
    assert!(want_peers.contains(&new_leader));
    wait_for("a write after failover", || {
        put(&client, "after", "failover").then_some(())
    });
    acknowledged.push(("after", "failover".to_string()));
    for i in &survivors {
        for (key, value) in &acknowledged {
            assert_eq!(
                get_raw(&servers[*i], key, "consistent").as_deref(),
                Some(value.as_str()),
                "{key} on {}",
                servers[*i].ip
            );
        }
    }

    // The killed server comes back with its data dir and catches up.
    servers[dead].restart();
    wait_for("the restarted server caught up", || {
        assert!(
            !servers[dead].exited(),
            "restart failed; log:\n{}",
            servers[dead].log_text()
        );
        (get_raw(&servers[dead], "after", "stale").as_deref() == Some("failover")).then_some(())
    });
    wait_for("the restarted server follows the new leader", || {
        (leader_of(&servers[dead]).as_deref() == Some(new_leader.as_str())).then_some(())
    });
    let log = servers[dead].log_text();
    assert!(
        log.contains("Raft data found, disabling bootstrap mode"),
        "{log}"
    );
    for (key, value) in &acknowledged {
        assert_eq!(
            get_raw(&servers[dead], key, "consistent").as_deref(),
            Some(value.as_str())
        );
    }

    // A fourth server expecting 3 arrives late: it finds a cluster and does not write a
    // configuration of its own (autopilot adds it: see tests/raft_membership.rs).
    let mut late = Agent::server_expect(LATE, "node5", &data("s5"), 3, &[SERVERS[1]]);
    wait_for("the late server to see the existing cluster", || {
        assert!(
            !late.exited(),
            "late server exited; log:\n{}",
            late.log_text()
        );
        // Either it asked a server for its peers first, or autopilot's leader reached
        // it with the cluster's log before it looked.
        let log = late.log_text();
        (log.contains("Existing Raft peers reported by")
            || log.contains("joined an existing raft cluster"))
        .then_some(())
    });
    assert!(!late.log_text().contains("Attempting bootstrap with nodes"));
    // The original three vote again (a killed server that dead-server cleanup removed is
    // added back and promoted by autopilot once stable); the late one may join them.
    let late_peer = format!("{LATE}:8300");
    wait_for("the original servers as voters", || {
        let peers = peers_of(&client)?;
        let extra: Vec<&String> = peers.difference(&want_peers).collect();
        (peers.is_superset(&want_peers) && extra.iter().all(|p| **p == late_peer)).then_some(())
    });
}
