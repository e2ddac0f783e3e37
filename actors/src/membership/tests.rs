//! The membership actor over real sockets on loopback: each member on its own
//! 127.0.0.x address with the standard serf LAN port (this module's tests use
//! 127.0.0.140 to 127.0.0.159), the fast `SwimConfig::local()` timings, and waits on
//! conditions with deadlines (never fixed sleeps).

use super::*;
use crate::faults::{FaultRule, FaultRules};
use protocol::swim::{SwimConfig, SwimEvent, Tags};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(20);

fn addr(last: u8) -> SocketAddr {
    SocketAddr::new(IpAddr::from([127, 0, 0, last]), DEFAULT_SERF_LAN_PORT)
}

async fn member(name: &str, last: u8, server: bool) -> (Gossip, FaultRules) {
    let mut tags = Tags::new();
    tags.insert("role".into(), if server { "consul" } else { "node" }.into());
    tags.insert("dc".into(), "dc1".into());
    if server {
        tags.insert("port".into(), "8300".into());
    }
    let faults = FaultRules::new();
    let config = GossipConfig {
        node_name: name.into(),
        bind: addr(last),
        advertise: addr(last),
        tags,
        swim: SwimConfig::local(),
    };
    let gossip = Gossip::start(config, faults.clone()).await.expect("bind");
    (gossip, faults)
}

fn status_of(g: &Gossip, name: &str) -> Option<MemberStatus> {
    g.members()
        .into_iter()
        .find(|m| m.name == name)
        .map(|m| m.status)
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_join_through_anyone_and_see_a_crash_and_a_leave() {
    let (a, _) = member("a", 140, true).await;
    let (b, _) = member("b", 141, false).await;
    let (c, _) = member("c", 142, false).await;
    let mut events = a.subscribe();
    // b joins through a, c joins through b: everyone learns everyone.
    assert_eq!(b.join(vec!["127.0.0.140".into()]).await, Ok(1));
    assert_eq!(c.join(vec!["127.0.0.141:8301".into()]).await, Ok(1));
    for g in [&a, &b, &c] {
        wait_until("three alive members", || {
            g.members().len() == 3 && g.members().iter().all(|m| m.status == MemberStatus::Alive)
        })
        .await;
    }
    // The clients learn the server's RPC address from its tags.
    assert_eq!(c.servers(), vec![SocketAddr::new(addr(140).ip(), 8300)]);
    let joined = loop {
        match events.recv().await.unwrap() {
            SwimEvent::MemberJoined(m) if m.name == "c" => break m,
            _ => {}
        }
    };
    assert_eq!(joined.addr, addr(142));

    // c crashes (stops without a word): a and b declare it failed.
    c.stop();
    for g in [&a, &b] {
        wait_until("c failed", || {
            status_of(g, "c") == Some(MemberStatus::Failed)
        })
        .await;
    }
    // force-leave turns the failed member left; an unknown name is Consul's error.
    assert_eq!(a.force_leave("c", false), Ok(()));
    assert_eq!(status_of(&a, "c"), Some(MemberStatus::Left));
    assert_eq!(
        a.force_leave("nobody", false),
        Err(MembershipError::NoSuchNode("nobody".into()))
    );
    // b leaves gracefully: left, not failed, and its own view says leaving then stops.
    b.leave().await.unwrap();
    assert!(b.is_stopped());
    wait_until("b left", || status_of(&a, "b") == Some(MemberStatus::Left)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fault_rule_partition_is_detected_and_heals() {
    let (a, a_faults) = member("pa", 145, true).await;
    let (b, b_faults) = member("pb", 146, false).await;
    assert_eq!(b.join(vec!["127.0.0.145".into()]).await, Ok(1));
    wait_until("joined", || {
        status_of(&a, "pb") == Some(MemberStatus::Alive)
    })
    .await;
    // Cut both directions: each side declares the other failed.
    a_faults.set(addr(146).ip(), FaultRule::Drop);
    b_faults.set(addr(145).ip(), FaultRule::Drop);
    wait_until("pb failed on pa", || {
        status_of(&a, "pb") == Some(MemberStatus::Failed)
    })
    .await;
    wait_until("pa failed on pb", || {
        status_of(&b, "pa") == Some(MemberStatus::Failed)
    })
    .await;
    assert!(
        b.servers().is_empty(),
        "a failed server is not forwarded to"
    );
    // Heal: the periodic reconnect finds the other side again.
    a_faults.clear();
    b_faults.clear();
    wait_until("pb alive again", || {
        status_of(&a, "pb") == Some(MemberStatus::Alive)
    })
    .await;
    wait_until("pa alive again", || {
        status_of(&b, "pa") == Some(MemberStatus::Alive)
    })
    .await;
    assert_eq!(b.servers().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_to_nobody_fails_with_a_reason_and_garbage_is_ignored() {
    let (a, _) = member("ja", 150, false).await;
    let err = a.join(vec!["127.0.0.151".into()]).await.unwrap_err();
    assert!(err.to_string().contains("127.0.0.151:8301"), "{err}");
    // Garbage datagrams and a garbage stream frame change nothing and crash nothing.
    let udp = tokio::net::UdpSocket::bind("127.0.0.152:0").await.unwrap();
    udp.send_to(&[0xff; 300], addr(150)).await.unwrap();
    let mut tcp = tokio::net::TcpStream::connect(addr(150)).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, &[0, 0, 0, 4, 1, 2, 3, 4])
        .await
        .unwrap();
    let (b, _) = member("jb", 153, false).await;
    assert_eq!(b.join(vec!["127.0.0.150".into()]).await, Ok(1));
    assert_eq!(a.members().len(), 2);
}
