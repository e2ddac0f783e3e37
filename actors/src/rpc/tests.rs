//! Forwarding over real TCP on loopback, against real in-memory servers. Each test has
//! its own address (127.0.0.120 to .129, port 8300) so tests run in parallel; every wait
//! is for a condition, with a deadline.

// KV values are built with `.into()` (see endpoint/tests.rs).
#![allow(clippy::useless_conversion)]

use super::server::too_many_calls_text;
use super::{ForwardEndpoint, ForwardOptions, RpcServer, RpcServerOptions, ServerList};
use crate::endpoint::tests::{
    blocking, kv_get, leader_with_server, options, opts, set, wait_parked, DEADLINE,
};
use crate::faults::{FaultRule, FaultRules};
use crate::{Api, ServerEndpoint, ServerHandle};
use protocol::api::frame::{encode_call, Call, CallFrame, MAX_CALL_FRAME_BYTES};
use protocol::api::{
    Consistency, InfoData, InfoRequest, Read, ReadRequest, Request, RequestError, WriteOutcome,
    WriteRequest,
};
use protocol::store::{Node, RegisterRequest, Service};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn addr(last_octet: u8, port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last_octet)), port)
}

/// A bootstrapped leader answering RPC on `at`; also its direct endpoint.
async fn rpc_server(at: SocketAddr, rpc: RpcServerOptions) -> (RpcServer, ServerHandle, Api) {
    let (direct, server) = leader_with_server().await;
    let rpc = RpcServer::start(at, direct.clone(), rpc).await.unwrap();
    (rpc, server, direct)
}

fn client(servers: Vec<SocketAddr>, options: ForwardOptions) -> (Arc<ForwardEndpoint>, Api) {
    let forward = Arc::new(ForwardEndpoint::new(ServerList::new(servers), options));
    (forward.clone(), Api::new(forward))
}

async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let start = Instant::now();
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "not in time: {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `api.ask`, failing the test instead of hanging.
async fn ask(api: &Api, request: Request) -> protocol::api::Answer {
    tokio::time::timeout(DEADLINE, api.ask(request))
        .await
        .expect("an answer before the deadline")
}

fn kv_read(key: &str) -> Request {
    Request::Read(ReadRequest {
        options: opts(Consistency::Leader),
        read: Read::KvGet { key: key.into() },
    })
}

fn register() -> WriteRequest {
    WriteRequest::Register(RegisterRequest {
        node: Node {
            node: "n1".into(),
            address: "10.0.0.1".into(),
            datacenter: "dc1".into(),
            ..Node::default()
        },
        service: Some(Service {
            id: "web-1".into(),
            service: "web".into(),
            port: 80,
            ..Service::default()
        }),
        ..RegisterRequest::default()
    })
}

#[actix::test]
async fn forwarded_requests_answer_like_the_server_endpoint() {
    let at = addr(120, 8300);
    let (rpc, _server, direct) = rpc_server(at, RpcServerOptions::default()).await;
    let (forward, api) = client(vec![at], ForwardOptions::default());

    assert_eq!(api.write(set("k", "v")).await, Ok(WriteOutcome::Done));
    assert_eq!(api.write(register()).await, Ok(WriteOutcome::Done));
    let catalog = Request::Read(ReadRequest {
        options: opts(Consistency::Stale),
        read: Read::CatalogService {
            name: "web".into(),
            tags: vec![],
            node_meta: vec![],
        },
    });
    let requests = [
        kv_read("k"),
        kv_read("missing"),
        catalog,
        Request::Info(InfoRequest::Leader),
        Request::Info(InfoRequest::Datacenters),
        Request::Info(InfoRequest::Peers),
    ];
    for request in requests {
        let forwarded = ask(&api, request.clone()).await;
        assert!(forwarded.is_ok(), "{request:?}: {forwarded:?}");
        assert_eq!(forwarded, ask(&direct, request).await);
    }
    assert_eq!(
        api.info(InfoRequest::Leader).await,
        Ok(InfoData::Leader(Some("127.0.0.1:8300".into())))
    );
    let (_, value) = kv_get(&api, "k", opts(Consistency::Consistent)).await;
    assert_eq!(value.as_deref(), Some(&b"v"[..]));

    // All of that went over one kept connection.
    assert_eq!(forward.connected(), vec![at]);
    assert_eq!(rpc.open_connections(), 1);
}

#[actix::test]
async fn a_forwarded_blocking_read_parks_answers_and_is_cancelled_when_dropped() {
    let at = addr(121, 8300);
    let (_rpc, server, direct) = rpc_server(at, RpcServerOptions::default()).await;
    let (_, api) = client(vec![at], ForwardOptions::default());
    assert_eq!(api.write(set("watched", "a")).await, Ok(WriteOutcome::Done));
    let (index, _) = kv_get(&api, "watched", opts(Consistency::Leader)).await;

    let parked = tokio::spawn({
        let api = api.clone();
        async move { kv_get(&api, "watched", blocking(index, Duration::from_secs(60))).await }
    });
    wait_parked(&server, 1).await;
    assert_eq!(
        direct.write(set("watched", "b")).await,
        Ok(WriteOutcome::Done)
    );
    let (answered, value) = tokio::time::timeout(DEADLINE, parked)
        .await
        .expect("woken by the write")
        .unwrap();
    assert!(answered > index);
    assert_eq!(value.as_deref(), Some(&b"b"[..]));
    assert_eq!(server.view().parked(), 0);

    // The client goes away: its cancel frees the server's parked read at once.
    let abandoned = tokio::spawn({
        let api = api.clone();
        async move { kv_get(&api, "watched", blocking(answered, Duration::from_secs(60))).await }
    });
    wait_parked(&server, 1).await;
    abandoned.abort();
    wait_parked(&server, 0).await;
    // The connection still serves.
    assert_eq!(
        kv_get(&api, "watched", opts(Consistency::Stale)).await.0,
        answered
    );
}

#[actix::test]
async fn requests_rotate_past_a_dead_server_whichever_comes_first() {
    let live = addr(122, 8300);
    let dead = addr(122, 8309); // nothing listens there
    let (_rpc, _server, _) = rpc_server(live, RpcServerOptions::default()).await;
    for first in [dead, live] {
        let (forward, api) = client(vec![dead, live], ForwardOptions::default());
        forward.prefer(first);
        // A write is retried too: a refused connect certainly sent nothing.
        assert_eq!(api.write(set("rotate", "x")).await, Ok(WriteOutcome::Done));
        let answer = ask(&api, kv_read("rotate")).await;
        assert!(answer.is_ok(), "{answer:?}");
        assert_eq!(forward.connected(), vec![live]);
    }
}

#[actix::test]
async fn no_servers_or_none_reachable_answer_no_known_servers() {
    let (_, api) = client(vec![], ForwardOptions::default());
    assert_eq!(ask(&api, kv_read("k")).await, Err(RequestError::NoServers));
    assert_eq!(
        RequestError::NoServers.to_string(),
        "No known Consul servers"
    );

    let (forward, api) = client(
        vec![addr(123, 8300), addr(123, 8301)],
        ForwardOptions::default(),
    );
    assert_eq!(ask(&api, kv_read("k")).await, Err(RequestError::NoServers));
    assert_eq!(
        ask(&api, Request::Write(set("k", "v"))).await,
        Err(RequestError::NoServers)
    );
    forward.servers().set(vec![]);
    assert_eq!(ask(&api, kv_read("k")).await, Err(RequestError::NoServers));

    // A server that accepts but never answers: the request's own deadline answers.
    let silent = TcpListener::bind(addr(123, 8302)).await.unwrap();
    let held = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = silent.accept().await {
            held.push(stream);
        }
    });
    let (_, api) = client(
        vec![addr(123, 8302)],
        ForwardOptions {
            request_timeout: Duration::from_millis(200),
            ..ForwardOptions::default()
        },
    );
    let answer = ask(&api, kv_read("k")).await;
    assert!(
        matches!(&answer, Err(RequestError::Internal(t)) if t.contains("no answer from")),
        "{answer:?}"
    );
    held.abort();
}

/// Read from `stream` until the server closes it (end of stream or reset).
async fn closed_by_server(mut stream: TcpStream) {
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(DEADLINE, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the server kept a bad connection open");
}

async fn raw(at: SocketAddr, bytes: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(at).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

fn length_prefixed(payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(payload);
    frame
}

#[actix::test]
async fn bad_connections_are_closed_and_the_server_keeps_serving() {
    let at = addr(124, 8300);
    let (rpc, _server, _) = rpc_server(at, RpcServerOptions::default()).await;
    let (_, api) = client(vec![at], ForwardOptions::default());
    assert!(ask(&api, kv_read("k")).await.is_ok());

    // An unknown protocol byte (Consul's rpcConsul).
    closed_by_server(raw(at, &[0]).await).await;
    // Garbage in a well-formed frame.
    let mut garbage = b"C".to_vec();
    garbage.extend(length_prefixed(&[0xff, 0x13, 0x37, 0x00, 0x42]));
    closed_by_server(raw(at, &garbage).await).await;
    // A frame claiming more than the limit: refused before it is read.
    let mut oversized = b"C".to_vec();
    oversized.extend(((MAX_CALL_FRAME_BYTES + 1) as u32).to_be_bytes());
    closed_by_server(raw(at, &oversized).await).await;
    // A frame from a peer speaking another wire version.
    let mut call = encode_call(&CallFrame {
        id: 1,
        call: Call::Cancel,
    })
    .unwrap();
    call[..2].copy_from_slice(&9u16.to_le_bytes());
    let mut other_version = b"C".to_vec();
    other_version.extend(length_prefixed(&call));
    closed_by_server(raw(at, &other_version).await).await;
    // Raft is refused by a server port that serves no Raft group.
    closed_by_server(raw(at, b"R").await).await;

    // The well-behaved client's connection was never disturbed.
    assert!(ask(&api, kv_read("k")).await.is_ok());
    eventually("bad connections released", || rpc.open_connections() == 1).await;
}

#[actix::test]
async fn calls_over_the_in_flight_limit_get_an_error_answer() {
    let at = addr(127, 8300);
    let limits = RpcServerOptions {
        max_in_flight_per_connection: 2,
        ..RpcServerOptions::default()
    };
    let (_rpc, server, _) = rpc_server(at, limits).await;
    let (_, api) = client(vec![at], ForwardOptions::default());
    assert_eq!(api.write(set("busy", "a")).await, Ok(WriteOutcome::Done));
    let (index, _) = kv_get(&api, "busy", opts(Consistency::Leader)).await;
    let parked: Vec<_> = (0..2)
        .map(|_| {
            let api = api.clone();
            let options = blocking(index, Duration::from_secs(60));
            tokio::spawn(async move { kv_get(&api, "busy", options).await })
        })
        .collect();
    wait_parked(&server, 2).await;
    assert_eq!(
        ask(&api, kv_read("busy")).await,
        Err(RequestError::Internal(too_many_calls_text(2)))
    );
    for read in &parked {
        read.abort();
    }
    wait_parked(&server, 0).await;
    assert!(ask(&api, kv_read("busy")).await.is_ok());
}

#[actix::test]
async fn connections_over_the_limit_are_refused() {
    let at = addr(128, 8300);
    let limits = RpcServerOptions {
        max_connections: 1,
        ..RpcServerOptions::default()
    };
    let (rpc, _server, _) = rpc_server(at, limits).await;
    let (_, first) = client(vec![at], ForwardOptions::default());
    assert!(ask(&first, kv_read("k")).await.is_ok());
    let (_, second) = client(vec![at], ForwardOptions::default());
    assert_eq!(
        ask(&second, kv_read("k")).await,
        Err(RequestError::NoServers)
    );
    assert!(ask(&first, kv_read("k")).await.is_ok());
    assert_eq!(rpc.open_connections(), 1);
}

/// Two independent servers; which one answered is told by its leader address.
#[actix::test]
async fn fault_rules_fail_over_fail_and_clear() {
    let (a, b) = (addr(125, 8300), addr(126, 8300));
    let mut servers = Vec::new();
    let mut server_faults = Vec::new();
    for at in [a, b] {
        let server = ServerHandle::start(crate::ServerOptions {
            server_addr: at.to_string(),
            ..options(true)
        })
        .await
        .unwrap();
        eventually("leader", || server.status().is_ready_leader()).await;
        eventually("no-op applied", || *server.applied().borrow() > 0).await;
        let faults = FaultRules::new();
        let rpc_options = RpcServerOptions {
            faults: faults.clone(),
            ..RpcServerOptions::default()
        };
        let direct = Api::new(ServerEndpoint::new(server.clone(), "dc1"));
        servers.push((
            RpcServer::start(at, direct, rpc_options).await.unwrap(),
            server,
        ));
        server_faults.push(faults);
    }
    let faults = FaultRules::new();
    let (forward, api) = client(
        vec![a, b],
        ForwardOptions {
            faults: faults.clone(),
            ..ForwardOptions::default()
        },
    );
    let answered_by = || async {
        match api.info(InfoRequest::Leader).await {
            Ok(InfoData::Leader(Some(leader))) => Ok(leader),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        }
    };
    forward.prefer(a);
    assert_eq!(answered_by().await, Ok(a.to_string()));

    // Cut a: the open connection closes at once; requests go to b.
    faults.set(a.ip(), FaultRule::Cut);
    eventually("connection to a closed", || {
        !forward.connected().contains(&a)
    })
    .await;
    assert_eq!(answered_by().await, Ok(b.to_string()));
    // Drop b too: no server reachable.
    faults.set(b.ip(), FaultRule::Drop);
    assert_eq!(answered_by().await, Err(RequestError::NoServers));
    assert_eq!(api.write(set("k", "v")).await, Err(RequestError::NoServers));
    faults.clear();
    forward.prefer(a);
    assert_eq!(answered_by().await, Ok(a.to_string()));

    // The server side's rules: a cuts this client (loopback connections come from
    // 127.0.0.1), closing the connection and refusing new ones; the client moves to b.
    let client_ip: IpAddr = Ipv4Addr::LOCALHOST.into();
    server_faults[0].set(client_ip, FaultRule::Cut);
    eventually("a closed the connection", || {
        servers[0].0.open_connections() == 0
    })
    .await;
    assert_eq!(answered_by().await, Ok(b.to_string()));
    // A delay only slows answers down.
    server_faults[1].set(client_ip, FaultRule::Delay(Duration::from_millis(20)));
    assert_eq!(answered_by().await, Ok(b.to_string()));
    server_faults[0].clear();
    server_faults[1].clear();
    forward.prefer(a);
    assert_eq!(answered_by().await, Ok(a.to_string()));
}

#[test]
fn blocking_reads_get_their_wait_plus_jitter_plus_a_margin() {
    let options = ForwardOptions::default();
    let read = |min_index, wait| {
        Request::Read(ReadRequest {
            options: blocking(min_index, wait),
            read: Read::KvGet { key: "k".into() },
        })
    };
    assert_eq!(
        super::client::budget(&read(5, Duration::from_secs(160)), &options),
        Duration::from_secs(160 + 10 + 10)
    );
    assert_eq!(
        super::client::budget(&read(0, Duration::from_secs(160)), &options),
        options.request_timeout
    );
    assert_eq!(
        super::client::budget(&Request::Write(set("k", "v")), &options),
        options.request_timeout
    );
}

/// A fake server that reads one whole call frame per connection, counts it, and hangs
/// up without answering: the call may have been applied, the client cannot know.
async fn swallowing_server(
    at: SocketAddr,
) -> (
    Arc<std::sync::atomic::AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let listener = TcpListener::bind(at).await.unwrap();
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = calls.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut kind = [0u8; 1];
                let mut len = [0u8; 4];
                if stream.read_exact(&mut kind).await.is_err()
                    || stream.read_exact(&mut len).await.is_err()
                {
                    return;
                }
                let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
                if stream.read_exact(&mut frame).await.is_ok() {
                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            });
        }
    });
    (calls, task)
}

#[actix::test]
async fn a_write_that_may_have_been_sent_is_never_retried_but_a_read_is() {
    let (first, second) = (addr(129, 8300), addr(129, 8301));
    let (first_calls, first_task) = swallowing_server(first).await;
    let (second_calls, second_task) = swallowing_server(second).await;
    let (forward, api) = client(vec![first, second], ForwardOptions::default());
    let count = |c: &std::sync::atomic::AtomicUsize| c.load(std::sync::atomic::Ordering::SeqCst);

    forward.prefer(first);
    let answer = ask(&api, Request::Write(set("k", "v"))).await;
    assert!(
        matches!(&answer, Err(RequestError::Internal(t)) if t.contains("may or may not have been applied")),
        "{answer:?}"
    );
    assert_eq!((count(&first_calls), count(&second_calls)), (1, 0));

    forward.prefer(first);
    assert_eq!(ask(&api, kv_read("k")).await, Err(RequestError::NoServers));
    assert_eq!((count(&first_calls), count(&second_calls)), (2, 1));
    first_task.abort();
    second_task.abort();
}

#[actix::test]
async fn a_server_without_a_leader_is_skipped_even_for_a_write() {
    // 127.0.0.236 is in the range of the fault tests (tests/raft_faults.rs) that found
    // this, and no agent there uses ports 18300/18301.
    let (leaderless, live) = (addr(236, 18300), addr(236, 18301));
    // A store with no Raft group answers "No cluster leader" to writes and leader reads,
    // as a server cut off from the rest of its cluster does.
    let view = crate::ReadView::new(protocol::store::Store::new());
    let _minority = RpcServer::start(leaderless, Api::from(view), RpcServerOptions::default())
        .await
        .unwrap();
    let (_rpc, _server, _) = rpc_server(live, RpcServerOptions::default()).await;
    let (forward, api) = client(vec![leaderless, live], ForwardOptions::default());
    forward.prefer(leaderless);
    assert_eq!(api.write(set("moved", "on")).await, Ok(WriteOutcome::Done));
    // The next request starts at the server that answered: a stale read (which the
    // leaderless one would answer from its empty store) sees the write.
    let (_, value) = kv_get(&api, "moved", opts(Consistency::Stale)).await;
    assert!(value.is_some());

    // With no server that knows a leader, the answer is still "No cluster leader".
    let (forward, api) = client(vec![leaderless], ForwardOptions::default());
    forward.prefer(leaderless);
    assert_eq!(
        ask(&api, Request::Write(set("k", "v"))).await,
        Err(RequestError::NoLeader)
    );
}

/// A server's endpoint that names `leader` as the leader and counts the other requests
/// it answers (through a real in-memory server).
struct NamesLeader {
    leader: SocketAddr,
    inner: Api,
    answered: std::sync::atomic::AtomicUsize,
}

impl crate::endpoint::Endpoint for NamesLeader {
    fn ask(&self, request: Request) -> futures::future::BoxFuture<'_, protocol::api::Answer> {
        use futures::FutureExt;
        if request == Request::Info(InfoRequest::Leader) {
            let leader = Some(self.leader.to_string());
            return async move { Ok(protocol::api::Response::Info(InfoData::Leader(leader))) }
                .boxed();
        }
        self.answered
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.ask(request).boxed()
    }
}

#[actix::test]
async fn leader_bound_requests_go_straight_to_the_leader_the_servers_name() {
    let (follower_at, leader_at) = (addr(129, 8310), addr(129, 8311));
    let (direct, _server) = leader_with_server().await;
    let serve = |at: SocketAddr| {
        let endpoint = Arc::new(NamesLeader {
            leader: leader_at,
            inner: direct.clone(),
            answered: Default::default(),
        });
        let api = Api::new(endpoint.clone());
        async move {
            let rpc = RpcServer::start(at, api, RpcServerOptions::default())
                .await
                .unwrap();
            (rpc, endpoint)
        }
    };
    let (_follower_rpc, follower) = serve(follower_at).await;
    let (_leader_rpc, leader) = serve(leader_at).await;
    let (_forward, api) = client(vec![follower_at, leader_at], ForwardOptions::default());
    for i in 0..5 {
        assert_eq!(
            api.write(set(&format!("k{i}"), "v")).await,
            Ok(WriteOutcome::Done)
        );
    }
    assert!(ask(&api, kv_read("k1")).await.is_ok());
    let count = |e: &NamesLeader| e.answered.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!((count(&follower), count(&leader)), (0, 6));
}
