//! Three in-memory servers talking Raft over real TCP on loopback, each behind its own
//! server port (127.0.0.181 to .186, .245 to .247 and .250 to .252, port 8300);
//! partitions are fault rules. Every wait is for a condition, with a deadline.

// KV values are built with `.into()` (see endpoint/tests.rs).
#![allow(clippy::useless_conversion)]

use crate::endpoint::tests::{options, opts, set};
use crate::faults::{FaultRule, FaultRules};
use crate::rpc::{ForwardOptions, LeaderForwarding, RpcServer, RpcServerOptions};
use crate::server::Limits;
use crate::snapshot_sender::SnapshotSendOptions;
use crate::{Api, RaftRole, ServerHandle, ServerOptions};
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
    start_member_with_limits(i, octet, tune, Limits::default()).await
}

async fn start_member_with_limits(
    i: usize,
    octet: u8,
    tune: &impl Fn(&mut ServerOptions),
    limits: Limits,
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
    let server = ServerHandle::open_and_start_with_faults(opts, limits, faults.clone()).unwrap();
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
    cluster_with_limits(octets, tune, Limits::default()).await
}

async fn cluster_with_limits(
    octets: [u8; 3],
    tune: impl Fn(&mut ServerOptions),
    limits: Limits,
) -> Vec<Member> {
    let mut members = Vec::new();
    for (i, octet) in octets.iter().enumerate() {
        members.push(start_member_with_limits(i, *octet, &tune, limits.clone()).await);
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

/// A snapshot taken through a follower (forwarded to the leader), then restored through
/// a follower: the restore is one replicated entry, so every server ends with the old
/// data, and a blocking read parked on a follower before it wakes with a higher index.
#[actix::test]
async fn a_restore_through_a_follower_replicates_to_every_server() {
    let members = cluster([245, 246, 247], |_| {}).await;
    let leader = leader_of(&members, &[0, 1, 2]).await;
    let follower = (leader + 1) % 3;
    let other = (leader + 2) % 3;
    let api = &members[follower].api;
    assert_eq!(api.write(set("k", "old")).await, Ok(WriteOutcome::Done));

    let saved = api
        .read(opts(Consistency::Leader), Read::Snapshot)
        .await
        .expect("a snapshot through the follower");
    let protocol::api::ReadData::Snapshot(Ok(image)) = saved.data else {
        panic!("not a snapshot: {:?}", saved.data);
    };
    assert_eq!(image.index, saved.meta.index);
    assert!(image.term > 0, "the leader's term is filled in");

    assert_eq!(api.write(set("k", "new")).await, Ok(WriteOutcome::Done));
    assert_eq!(api.write(set("x", "1")).await, Ok(WriteOutcome::Done));
    let (before, _) =
        crate::endpoint::tests::kv_get(&members[other].api, "k", opts(Consistency::Consistent))
            .await;
    // The parked read is stale, on `other`: until `other` has applied `before`, that
    // index is "from the future" there and the read would answer at once (found under
    // CPU load: "3 > 4").
    eventually("the other follower applied the read's index", || {
        (*members[other].server.applied().borrow() >= before).then_some(())
    })
    .await;
    let parked = {
        let api = members[other].api.clone();
        tokio::spawn(async move {
            let options = protocol::api::QueryOptions {
                consistency: Consistency::Stale,
                min_index: before,
                wait: Some(Duration::from_secs(60)),
                filter: None,
            };
            crate::endpoint::tests::kv_get(&api, "k", options).await
        })
    };

    let restore = protocol::api::WriteRequest::Restore { image: image.image };
    assert_eq!(api.write(restore).await, Ok(WriteOutcome::Done));
    let (woke_at, value) = tokio::time::timeout(DEADLINE, parked)
        .await
        .expect("the parked read woke")
        .unwrap();
    assert!(woke_at > before, "{woke_at} > {before}");
    assert_eq!(value, Some(b"old".to_vec()));
    for m in &members {
        eventually("the restore on every server", || {
            let view = m.server.view().read();
            let k = view.kv_get("k").map(|e| e.value.to_vec());
            (k == Some(b"old".to_vec()) && view.kv_get("x").is_none()).then_some(())
        })
        .await;
    }
}

/// A follower far behind (what it lacks is compacted away on the leader) gets a snapshot
/// of dozens of chunks, paced to last several election timeouts and longer than the
/// leader's snapshot retry. Throughout, heartbeats keep it following the same leader in
/// the same term (no election, its last contact stays under the election timeout), the
/// transfer is never restarted (its bytes only grow), and it catches up.
#[actix::test]
async fn a_far_behind_follower_catches_up_from_a_chunked_snapshot_while_heartbeats_flow() {
    const CHUNK_BYTES: usize = 16 * 1024;
    const KEYS: usize = 96;
    const VALUE_BYTES: usize = 8 * 1024;
    let limits = Limits {
        snapshot_send: SnapshotSendOptions {
            chunk_bytes: CHUNK_BYTES,
            chunk_pause: Duration::from_millis(50),
            ..SnapshotSendOptions::default()
        },
        ..Limits::default()
    };
    // raft_multiplier 2: election timeout 400 ms, heartbeats every 40 ms, snapshot retry
    // after 2 s.
    let election_timeout_ms = 400;
    let members = cluster_with_limits(
        [250, 251, 252],
        |o| {
            o.raft_timing = protocol::raft::RaftTiming::with_multiplier(2);
            o.snapshot_threshold = 4;
            o.trailing_logs = 1;
        },
        limits,
    )
    .await;
    let leader = leader_of(&members, &[0, 1, 2]).await;
    let lagging = (leader + 1) % 3;
    isolate(&members, lagging);
    let value = "v".repeat(VALUE_BYTES);
    for i in 0..KEYS {
        let write = members[leader]
            .api
            .write(set(&format!("k{i}"), &value))
            .await;
        assert_eq!(write, Ok(WriteOutcome::Done));
    }
    let start = Instant::now();
    while members[leader].server.log_stats().await.0 <= 5 {
        assert!(start.elapsed() < DEADLINE, "the leader compacted its log");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let term = members[leader].server.status().term;
    let leader_addr = members[leader].addr.to_string();
    for m in &members {
        m.faults.clear();
    }

    let inbox = members[lagging].server.raft_inbox();
    let last_key = format!("k{}", KEYS - 1);
    let mut progress: Vec<u64> = Vec::new();
    let mut max_contact_ms = 0;
    let start = Instant::now();
    while members[lagging]
        .server
        .view()
        .read()
        .kv_get(&last_key)
        .is_none()
    {
        assert!(start.elapsed() < DEADLINE, "the lagging follower caught up");
        if let Some((key, received)) = inbox.snapshot_in_progress() {
            assert_eq!(key.term.0, term);
            if let Some(before) = progress.last() {
                assert!(received >= *before, "restarted: {received} after {before}");
            }
            progress.push(received);
            let s = members[lagging].server.status();
            assert_eq!(s.role, RaftRole::Follower);
            assert_eq!(
                (s.term, s.leader_addr.as_deref()),
                (term, Some(&*leader_addr))
            );
            max_contact_ms = max_contact_ms.max(s.last_contact_ms);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    progress.dedup();
    // Seen in flight at many sizes, one chunk apart (or more, between two looks).
    assert!(progress.len() >= 10, "seen in flight: {progress:?}");
    assert!(progress.iter().all(|b| *b % CHUNK_BYTES as u64 == 0));
    assert!(
        max_contact_ms < election_timeout_ms,
        "heartbeats stopped during the transfer: last contact {max_contact_ms} ms ago"
    );
    assert!(
        start.elapsed() > Duration::from_millis(3 * election_timeout_ms),
        "the transfer was paced over several election timeouts: {:?}",
        start.elapsed()
    );
    // Nobody started an election meanwhile.
    for m in &members {
        let s = m.server.status();
        assert_eq!(
            (s.term, s.leader_addr.as_deref()),
            (term, Some(&*leader_addr))
        );
    }
    let view = members[lagging].server.view().read();
    for i in 0..KEYS {
        let entry = view.kv_get(&format!("k{i}")).expect("every key");
        assert_eq!(entry.value.len(), VALUE_BYTES);
    }
    assert_eq!(inbox.snapshot_in_progress(), None);
}

/// The transport alone: a snapshot image larger than a whole Raft frame (64 MiB, the old
/// ceiling of a snapshot) crosses in chunks from a leader's PeerNet (127.0.0.254) to a
/// server port (127.0.0.253), verified, as one InstallSnapshot; heartbeats sent to the
/// same follower meanwhile overtake it on their own connection.
#[actix::test]
async fn a_snapshot_larger_than_a_frame_crosses_in_chunks_while_heartbeats_overtake_it() {
    use crate::peer_net::{PeerNet, RaftInbox};
    use crate::snapshot_store::{MemorySnapshotStore, SnapshotBackend};
    use crate::{ReadView, ViewEndpoint};
    use protocol::ids::{LogIndex, ServerId, Term};
    use protocol::raft::frame::MAX_RAFT_FRAME_BYTES;
    use protocol::raft::{Message, SnapshotMeta};
    use std::sync::Arc;

    let receiver = addr(253);
    let (inbox, mut frames) = RaftInbox::channel();
    let rpc_options = RpcServerOptions {
        raft: Some(inbox.clone()),
        ..RpcServerOptions::default()
    };
    let api = Api::new(ViewEndpoint::new(ReadView::new(
        protocol::store::Store::new(),
    )));
    let _rpc = RpcServer::start(receiver, api, rpc_options).await.unwrap();

    let image_len = MAX_RAFT_FRAME_BYTES + 1024 * 1024;
    let (crc, meta, snapshots) = {
        let image: Vec<u8> = (0..image_len).map(|i| (i % 251) as u8).collect();
        let meta = SnapshotMeta {
            index: LogIndex(77),
            term: Term(2),
            configuration: vec![(ServerId("leader".into()), addr(254).to_string())],
            non_voters: Vec::new(),
        };
        let snapshots = MemorySnapshotStore::new();
        snapshots.save(&meta, &image).unwrap();
        (crc32fast::hash(&image), meta, Arc::new(snapshots))
    };
    let options = SnapshotSendOptions {
        chunk_bytes: 1024 * 1024,
        chunk_pause: Duration::from_millis(5),
        ..SnapshotSendOptions::default()
    };
    let leader = ServerId("leader".into());
    let mut net = PeerNet::new(
        leader.clone(),
        addr(254).to_string(),
        FaultRules::new(),
        snapshots,
        options,
    );
    let follower = ServerId("follower".into());
    let to = receiver.to_string();
    net.send_snapshot(follower.clone(), Some(&to), Term(3));
    let heartbeat = Message::AppendEntries {
        term: Term(3),
        leader: leader.clone(),
        prev_log_index: LogIndex(0),
        prev_log_term: Term(0),
        entries: vec![],
        leader_commit: LogIndex(0),
        round: 0,
    };
    let mut heartbeats_first = 0;
    let mut every = tokio::time::interval(Duration::from_millis(20));
    let start = Instant::now();
    let snapshot = loop {
        assert!(start.elapsed() < DEADLINE, "the snapshot arrived");
        tokio::select! {
            _ = every.tick() => net.send(follower.clone(), Some(&to), heartbeat.clone()),
            frame = frames.recv() => {
                let frame = frame.expect("the inbox is open");
                match frame.msg {
                    Message::AppendEntries { .. } => heartbeats_first += 1,
                    _ => break frame,
                }
            }
        }
    };
    assert_eq!(
        (snapshot.from, snapshot.from_addr),
        (leader.clone(), addr(254).to_string())
    );
    let Message::InstallSnapshot {
        term,
        leader: from,
        meta: got,
        data,
    } = snapshot.msg
    else {
        panic!("not a snapshot: {:?}", snapshot.msg);
    };
    assert_eq!((term, from, got), (Term(3), leader, meta));
    assert_eq!((data.len(), crc32fast::hash(&data)), (image_len, crc));
    assert!(
        heartbeats_first >= 5,
        "{heartbeats_first} heartbeats arrived first"
    );
    assert_eq!(inbox.snapshot_in_progress(), None);
}

/// A follower that stops reading (SIGSTOP, a dead link) does not pin its transfer: a
/// chunk write that makes no progress within the timeout ends it, so the leader's next
/// retry starts a fresh one (while it ran, a retry would have been ignored).
#[actix::test]
async fn a_transfer_to_a_follower_that_stops_reading_ends_at_the_write_timeout() {
    use crate::peer_net::PeerNet;
    use crate::snapshot_store::{MemorySnapshotStore, SnapshotBackend};
    use protocol::ids::{LogIndex, ServerId, Term};
    use protocol::raft::SnapshotMeta;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    // A "follower" that accepts connections and never reads from them.
    let stalled = addr(254);
    let listener = tokio::net::TcpListener::bind(stalled).await.unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let holder = {
        let accepted = accepted.clone();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::SeqCst);
                held.push(stream);
            }
        })
    };
    // Larger than what the socket buffers of both ends can absorb.
    let snapshots = MemorySnapshotStore::new();
    let meta = SnapshotMeta {
        index: LogIndex(9),
        term: Term(1),
        configuration: vec![],
        non_voters: Vec::new(),
    };
    snapshots.save(&meta, &vec![7u8; 32 * 1024 * 1024]).unwrap();
    let options = SnapshotSendOptions {
        write_timeout: Duration::from_millis(300),
        ..SnapshotSendOptions::default()
    };
    let mut net = PeerNet::new(
        ServerId("leader".into()),
        addr(253).to_string(),
        FaultRules::new(),
        Arc::new(snapshots),
        options,
    );
    let follower = ServerId("follower".into());
    let to = stalled.to_string();
    net.send_snapshot(follower.clone(), Some(&to), Term(2));
    assert!(net.transfer_running(&follower));
    eventually("the stalled transfer ends", || {
        (!net.transfer_running(&follower)).then_some(())
    })
    .await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1);
    // The next ask is not mistaken for the running transfer: a new connection.
    net.send_snapshot(follower.clone(), Some(&to), Term(2));
    eventually("a fresh transfer connects", || {
        (accepted.load(Ordering::SeqCst) == 2).then_some(())
    })
    .await;
    net.stop();
    holder.abort();
}

/// The fast path (`PeerNet::send` writing on an idle connection itself) and the
/// writer's queue together deliver every frame in order, also when the socket takes a
/// burst only in part (the writer finishes the frame the fast path began, then the
/// queue); once the peer drops the connection, later sends reconnect. A raw listener
/// on 127.0.4.20 stands for the peer, so the test decides when it reads.
#[actix::test]
async fn frames_keep_their_order_across_the_fast_path_and_the_writer() {
    use crate::peer_net::PeerNet;
    use crate::snapshot_store::MemorySnapshotStore;
    use futures::StreamExt;
    use protocol::ids::{LogIndex, ServerId, Term};
    use protocol::raft::frame::{decode_wire_frame, WireFrame, MAX_RAFT_FRAME_BYTES};
    use protocol::raft::{Entry, Message, Payload};
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;
    use tokio_util::codec::{FramedRead, LengthDelimitedCodec};

    type Frames = FramedRead<TcpStream, LengthDelimitedCodec>;
    async fn frames_of(mut stream: TcpStream) -> Frames {
        let mut kind = [0u8; 1];
        stream.read_exact(&mut kind).await.unwrap();
        let codec = LengthDelimitedCodec::builder()
            .max_frame_length(MAX_RAFT_FRAME_BYTES)
            .new_codec();
        FramedRead::new(stream, codec)
    }
    async fn next_index(frames: &mut Frames) -> u64 {
        let bytes = tokio::time::timeout(DEADLINE, frames.next())
            .await
            .expect("a frame within the deadline")
            .expect("the connection stays open")
            .unwrap();
        match decode_wire_frame(&bytes).unwrap() {
            WireFrame::Message(frame) => match frame.msg {
                Message::AppendEntries { prev_log_index, .. } => prev_log_index.0,
                other => panic!("unexpected message {other:?}"),
            },
            WireFrame::SnapshotChunk(_) => panic!("unexpected snapshot chunk"),
        }
    }

    let peer = "127.0.4.20:8300";
    let listener = tokio::net::TcpListener::bind(peer).await.unwrap();
    let leader = ServerId("leader".into());
    let append = |i: u64| Message::AppendEntries {
        term: Term(1),
        leader: leader.clone(),
        prev_log_index: LogIndex(i),
        prev_log_term: Term(1),
        // Large enough that a burst overfills the socket buffers.
        entries: vec![Entry {
            term: Term(1),
            index: LogIndex(i + 1),
            payload: Payload::Command(vec![7; 64 * 1024]),
        }],
        leader_commit: LogIndex(0),
        round: 0,
    };
    let mut net = PeerNet::new(
        leader.clone(),
        "127.0.4.21:8300".into(),
        FaultRules::new(),
        Arc::new(MemorySnapshotStore::new()),
        SnapshotSendOptions::default(),
    );
    let to = ServerId("follower".into());

    // The first message waits in the queue while the writer connects.
    net.send(to.clone(), Some(peer), append(1));
    let (stream, _) = tokio::time::timeout(DEADLINE, listener.accept())
        .await
        .expect("a connection within the deadline")
        .unwrap();
    let mut frames = frames_of(stream).await;
    assert_eq!(next_index(&mut frames).await, 1);
    let mut sent = 1;
    // Lone messages on an idle connection, then bursts nobody reads yet: the socket
    // takes the first frames at once, the rest goes through the writer. At most 222
    // wait in the queue (it holds 256), so none is dropped.
    for burst in [1, 1, 1, 120, 1, 100] {
        tokio::time::sleep(Duration::from_millis(20)).await; // the writer goes idle
        for _ in 0..burst {
            sent += 1;
            net.send(to.clone(), Some(peer), append(sent));
        }
    }
    for expected in 2..=sent {
        assert_eq!(next_index(&mut frames).await, expected, "frames in order");
    }

    // The peer goes away: sends fail, then reconnect and carry on.
    drop(frames);
    let start = Instant::now();
    let stream = loop {
        assert!(start.elapsed() < DEADLINE, "the link reconnected");
        sent += 1;
        net.send(to.clone(), Some(peer), append(sent));
        if let Ok(Ok((stream, _))) =
            tokio::time::timeout(Duration::from_millis(50), listener.accept()).await
        {
            break stream;
        }
    };
    let mut frames = frames_of(stream).await;
    // Messages sent while it reconnected may follow the first, in order.
    let mut last = next_index(&mut frames).await;
    while last < sent {
        let next = next_index(&mut frames).await;
        assert!(next > last, "frames in order after reconnecting");
        last = next;
    }
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        sent += 1;
        net.send(to.clone(), Some(peer), append(sent));
        assert_eq!(
            next_index(&mut frames).await,
            sent,
            "lone messages after reconnecting"
        );
    }
}
