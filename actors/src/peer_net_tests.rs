//! Three in-memory servers talking Raft over real TCP on loopback, each behind its own
//! server port (127.0.0.181 to .186, port 8300); partitions are fault rules. Every
//! wait is for a condition, with a deadline.

// KV values are built with `.into()` (see endpoint/tests.rs).
#![allow(clippy::useless_conversion)]

use crate::endpoint::tests::{options, opts, set};
use crate::faults::{FaultRule, FaultRules};
use crate::rpc::{ForwardOptions, LeaderForwarding, RpcServer, RpcServerOptions};
use crate::{Api, ServerHandle, ServerOptions};
use protocol::api::{Consistency, Read, WriteOutcome};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);

pub(crate) struct Member {
    pub(crate) addr: SocketAddr,
    pub(crate) server: ServerHandle,
    pub(crate) api: Api,
    pub(crate) faults: FaultRules,
    _rpc: RpcServer,
}

pub(crate) fn addr(last_octet: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet)), 8300)
}

/// A fresh server `server-<i>` on 127.0.0.`octet` with its server port, not
/// bootstrapped.
pub(crate) async fn start_member(
    i: usize,
    octet: u8,
    tune: &impl Fn(&mut ServerOptions),
) -> Member {
    let at = addr(octet);
    let mut opts = ServerOptions {
        server_id: format!("server-{i}"),
        node_name: format!("node{i}"),
        server_addr: at.to_string(),
        ..options(false)
    };
    tune(&mut opts);
    let faults = FaultRules::new();
    let server = ServerHandle::start_with_faults(opts, faults.clone())
        .await
        .unwrap();
    let forward = ForwardOptions {
        faults: faults.clone(),
        ..ForwardOptions::default()
    };
    let api = Api::new(LeaderForwarding::new(
        server.clone(),
        "dc1",
        at.to_string(),
        forward,
    ));
    let rpc_options = RpcServerOptions {
        faults: faults.clone(),
        raft: Some(server.raft_inbox()),
        ..RpcServerOptions::default()
    };
    let rpc = RpcServer::start(at, api.clone(), rpc_options)
        .await
        .unwrap();
    Member {
        addr: at,
        server,
        api,
        faults,
        _rpc: rpc,
    }
}

/// Three fresh servers on `octets`, bootstrapped with one voter set.
pub(crate) async fn cluster(octets: [u8; 3], tune: impl Fn(&mut ServerOptions)) -> Vec<Member> {
    let mut members = Vec::new();
    for (i, octet) in octets.iter().enumerate() {
        members.push(start_member(i, *octet, &tune).await);
    }
    let voters: Vec<(String, String)> = members
        .iter()
        .enumerate()
        .map(|(i, m)| (format!("server-{i}"), m.addr.to_string()))
        .collect();
    for m in &members {
        assert!(m.server.bootstrap_with(voters.clone()).await);
        // Never twice.
        assert!(!m.server.bootstrap_with(voters.clone()).await);
    }
    members
}

pub(crate) async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "not in time: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The index of the one ready leader among `alive`, once every one of them names it.
pub(crate) async fn leader_of(members: &[Member], alive: &[usize]) -> usize {
    eventually("one leader everyone agrees on", || {
        let leaders: Vec<usize> = alive
            .iter()
            .copied()
            .filter(|i| members[*i].server.status().is_ready_leader())
            .collect();
        let [leader] = leaders[..] else {
            return None;
        };
        let addr = members[leader].addr.to_string();
        alive
            .iter()
            .all(|i| members[*i].server.status().leader_addr.as_deref() == Some(&addr))
            .then_some(leader)
    })
    .await
}

pub(crate) async fn value(api: &Api, key: &str, mode: Consistency) -> Option<Vec<u8>> {
    let read = Read::KvGet { key: key.into() };
    let answer = tokio::time::timeout(DEADLINE, api.read(opts(mode), read))
        .await
        .expect("an answer in time")
        .ok()?;
    match answer.data {
        protocol::api::ReadData::KvEntry(entry) => entry.map(|e| e.value.to_vec()),
        _ => None,
    }
}

/// Cut `who` off from the rest, in both directions.
fn isolate(members: &[Member], who: usize) {
    for (i, m) in members.iter().enumerate() {
        if i == who {
            for (j, other) in members.iter().enumerate() {
                if j != who {
                    m.faults.set(other.addr.ip(), FaultRule::Cut);
                }
            }
        } else {
            m.faults.set(members[who].addr.ip(), FaultRule::Cut);
        }
    }
}

#[actix::test]
async fn three_servers_elect_replicate_forward_and_fail_over() {
    let members = cluster([181, 182, 183], |_| {}).await;
    let leader = leader_of(&members, &[0, 1, 2]).await;
    let peers: Vec<String> = members.iter().map(|m| m.addr.to_string()).collect();
    for m in &members {
        let voters: Vec<String> = m.server.status().voters.into_iter().map(|v| v.1).collect();
        assert_eq!(voters, peers);
    }
    // A write on a follower is forwarded to the leader; consistent reads on every
    // server see it; a stale read on a follower sees it once replicated.
    let follower = (leader + 1) % 3;
    let write = members[follower].api.write(set("k1", "v1")).await;
    assert_eq!(write, Ok(WriteOutcome::Done));
    for m in &members {
        assert_eq!(
            value(&m.api, "k1", Consistency::Consistent).await,
            Some(b"v1".to_vec())
        );
    }
    let other = (leader + 2) % 3;
    let mut stale_seen = false;
    let start = Instant::now();
    while !stale_seen {
        stale_seen = value(&members[other].api, "k1", Consistency::Stale)
            .await
            .is_some();
        assert!(start.elapsed() < DEADLINE, "replicated to every follower");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // The leader is cut off: the other two elect a new one and writes go on there.
    isolate(&members, leader);
    let survivors: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    let new_leader = leader_of(&members, &survivors).await;
    assert_ne!(new_leader, leader);
    let survivor_follower = survivors
        .iter()
        .copied()
        .find(|i| *i != new_leader)
        .unwrap();
    let write = members[survivor_follower].api.write(set("k2", "v2")).await;
    assert_eq!(write, Ok(WriteOutcome::Done));
    assert_eq!(
        value(
            &members[survivor_follower].api,
            "k1",
            Consistency::Consistent
        )
        .await,
        Some(b"v1".to_vec())
    );

    // Healed, the old leader follows and catches up.
    for m in &members {
        m.faults.clear();
    }
    eventually("the old leader follows the new one", || {
        let s = members[leader].server.status();
        (s.leader_addr.as_deref() == Some(&members[new_leader].addr.to_string())).then_some(())
    })
    .await;
    assert_eq!(
        value(&members[leader].api, "k2", Consistency::Consistent).await,
        Some(b"v2".to_vec())
    );
}

/// A follower cut off while the leader compacts its log gets the leader's snapshot.
#[actix::test]
async fn a_follower_behind_the_compacted_log_catches_up_from_a_snapshot() {
    let members = cluster([184, 185, 186], |o| {
        o.snapshot_threshold = 4;
        o.trailing_logs = 1;
    })
    .await;
    let leader = leader_of(&members, &[0, 1, 2]).await;
    let lagging = (leader + 1) % 3;
    isolate(&members, lagging);
    for i in 0..30 {
        let write = members[leader].api.write(set(&format!("k{i}"), "v")).await;
        assert_eq!(write, Ok(WriteOutcome::Done));
    }
    // Wait until the leader's log no longer holds what the lagging follower lacks.
    let start = Instant::now();
    while members[leader].server.log_stats().await.0 <= 5 {
        assert!(start.elapsed() < DEADLINE, "the leader compacted its log");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for m in &members {
        m.faults.clear();
    }
    let start = Instant::now();
    while value(&members[lagging].api, "k29", Consistency::Stale)
        .await
        .is_none()
    {
        assert!(start.elapsed() < DEADLINE, "the lagging follower caught up");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        value(&members[lagging].api, "k0", Consistency::Stale).await,
        Some(b"v".to_vec())
    );
}
