//! The endpoint driven with typed requests only (no HTTP), on a real in-memory server.

// KV values are built with `.into()` so these tests compile unchanged whether the store
// keeps values as `Vec<u8>` or as shared `Arc<[u8]>` (a change in flight on another branch).
#![allow(clippy::useless_conversion)]

use super::{Api, ServerEndpoint};
use crate::{ServerHandle, ServerOptions};
use protocol::api::{
    Consistency, InfoData, InfoRequest, QueryOptions, Read, ReadData, RequestError, WriteOutcome,
    WriteRequest,
};
use protocol::store::KvOp;
use protocol::store::{Node, RegisterRequest, Service};
use std::time::{Duration, Instant};

pub(crate) const DEADLINE: Duration = Duration::from_secs(10);

pub(crate) fn options(bootstrap: bool) -> ServerOptions {
    ServerOptions {
        server_id: "11111111-2222-3333-4444-555555555555".into(),
        node_name: "node1".into(),
        server_addr: "127.0.0.1:8300".into(),
        data_dir: None,
        bootstrap,
        raft_timing: protocol::raft::RaftTiming::with_multiplier(1),
        snapshot_threshold: crate::DEFAULT_SNAPSHOT_THRESHOLD,
        trailing_logs: crate::DEFAULT_TRAILING_LOGS,
        log_cache: protocol::raft::CacheBudget::default(),
    }
}

/// A bootstrapped single server that has applied its no-op, and its endpoint.
async fn leader() -> Api {
    let server = ServerHandle::start(options(true)).await.unwrap();
    let start = Instant::now();
    while !server.status().is_ready_leader() || *server.applied().borrow() == 0 {
        assert!(start.elapsed() < DEADLINE, "no leader in time");
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
    Api::new(ServerEndpoint::new(server, "dc1"))
}

pub(crate) fn opts(consistency: Consistency) -> QueryOptions {
    QueryOptions {
        consistency,
        ..QueryOptions::default()
    }
}

pub(crate) fn set(key: &str, value: &str) -> WriteRequest {
    WriteRequest::Kv(KvOp::Set {
        key: key.into(),
        value: value.as_bytes().to_vec().into(),
        flags: 0,
    })
}

pub(crate) async fn kv_get(api: &Api, key: &str, options: QueryOptions) -> (u64, Option<Vec<u8>>) {
    let r = api
        .read(options, Read::KvGet { key: key.into() })
        .await
        .unwrap();
    let ReadData::KvEntry(entry) = r.data else {
        panic!("{:?}", r.data)
    };
    (r.meta.index, entry.map(|e| e.value.to_vec()))
}

#[actix::test]
async fn register_write_and_read_in_every_mode() {
    let api = leader().await;
    let register = RegisterRequest {
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
    };
    assert_eq!(
        api.write(WriteRequest::Register(register)).await,
        Ok(WriteOutcome::Done)
    );
    for mode in [
        Consistency::Leader,
        Consistency::Stale,
        Consistency::Consistent,
    ] {
        let r = api
            .read(
                opts(mode),
                Read::CatalogService {
                    name: "WEB".into(),
                    tags: vec![],
                    node_meta: vec![],
                },
            )
            .await
            .unwrap();
        assert_eq!(r.meta.consistency, mode);
        assert!(r.meta.known_leader);
        assert_eq!(r.meta.last_contact_ms, 0);
        let ReadData::ServiceNodes(rows) = r.data else {
            panic!("{:?}", r.data)
        };
        assert_eq!(rows.len(), 1);
        assert_eq!(
            (rows[0].node.node.as_str(), rows[0].service.port),
            ("n1", 80)
        );
        assert!(r.meta.index > 0);
    }

    // KV: set, CAS that fails then holds, CAS delete, delete.
    assert_eq!(api.write(set("k", "v1")).await, Ok(WriteOutcome::Done));
    let (index, value) = kv_get(&api, "k", opts(Consistency::Leader)).await;
    assert_eq!(value.as_deref(), Some(&b"v1"[..]));
    let cas = |index: u64| {
        WriteRequest::Kv(KvOp::Cas {
            key: "k".into(),
            value: b"v2".to_vec().into(),
            flags: 0,
            index,
        })
    };
    assert_eq!(
        api.write(cas(index + 100)).await,
        Ok(WriteOutcome::Bool(false))
    );
    assert_eq!(api.write(cas(index)).await, Ok(WriteOutcome::Bool(true)));
    let (index, value) = kv_get(&api, "k", opts(Consistency::Stale)).await;
    assert_eq!(value.as_deref(), Some(&b"v2"[..]));
    let delete_cas = |index: u64| {
        WriteRequest::Kv(KvOp::DeleteCas {
            key: "k".into(),
            index,
        })
    };
    assert_eq!(
        api.write(delete_cas(1)).await,
        Ok(WriteOutcome::Bool(false))
    );
    assert_eq!(
        api.write(delete_cas(index)).await,
        Ok(WriteOutcome::Bool(true))
    );
    assert_eq!(
        kv_get(&api, "k", opts(Consistency::Consistent)).await.1,
        None
    );
    assert_eq!(api.write(set("k", "v3")).await, Ok(WriteOutcome::Done));
    assert_eq!(
        api.write(WriteRequest::Kv(KvOp::Delete { key: "k".into() }))
            .await,
        Ok(WriteOutcome::Done)
    );
    assert_eq!(kv_get(&api, "k", opts(Consistency::Leader)).await.1, None);

    // The state machine's refusals come back typed, with Consul's text.
    let bad = RegisterRequest::default();
    assert_eq!(
        api.write(WriteRequest::Register(bad)).await,
        Err(RequestError::internal("Must provide node and address"))
    );
    assert_eq!(
        api.info(InfoRequest::Leader).await,
        Ok(InfoData::Leader(Some("127.0.0.1:8300".into())))
    );
    assert_eq!(
        api.info(InfoRequest::Datacenters).await,
        Ok(InfoData::Datacenters(vec!["dc1".into()]))
    );
    // Stale reads are answered inline.
    let now = api.ask_now(&protocol::api::Request::Read(protocol::api::ReadRequest {
        options: QueryOptions::stale(),
        read: Read::Node { node: "N1".into() },
    }));
    assert!(matches!(
        now.unwrap().unwrap().into_read().unwrap().data,
        ReadData::Node(Some(n)) if n.node == "n1"
    ));
}

#[actix::test]
async fn a_blocking_read_wakes_on_a_write_to_its_key() {
    let api = leader().await;
    assert_eq!(api.write(set("watched", "a")).await, Ok(WriteOutcome::Done));
    let (index, _) = kv_get(&api, "watched", opts(Consistency::Leader)).await;
    let blocking = QueryOptions {
        min_index: index,
        wait: Some(Duration::from_secs(60)),
        ..QueryOptions::default()
    };
    let waiter = actix::spawn({
        let api = api.clone();
        async move { kv_get(&api, "watched", blocking).await }
    });
    // A write elsewhere does not answer the query; the write to its key does.
    assert_eq!(api.write(set("other", "x")).await, Ok(WriteOutcome::Done));
    assert_eq!(api.write(set("watched", "b")).await, Ok(WriteOutcome::Done));
    let started = Instant::now();
    let (new_index, value) = tokio::time::timeout(DEADLINE, waiter)
        .await
        .expect("the blocking read woke")
        .unwrap();
    assert!(started.elapsed() < DEADLINE);
    assert!(new_index > index);
    assert_eq!(value.as_deref(), Some(&b"b"[..]));
}

#[actix::test]
async fn a_blocking_read_times_out_after_its_jittered_wait() {
    let api = leader().await;
    assert_eq!(api.write(set("quiet", "a")).await, Ok(WriteOutcome::Done));
    let (index, _) = kv_get(&api, "quiet", opts(Consistency::Stale)).await;
    let wait = Duration::from_millis(400);
    let blocking = QueryOptions {
        consistency: Consistency::Stale,
        min_index: index,
        wait: Some(wait),
        filter: None,
    };
    let started = Instant::now();
    let (same, _) = kv_get(&api, "quiet", blocking).await;
    let waited = started.elapsed();
    assert_eq!(same, index, "nothing changed: the same index comes back");
    // At least the wait; at most the wait plus its jitter (wait/16) and scheduling slack.
    assert!(waited >= wait, "answered after {waited:?}");
    assert!(
        waited < wait + wait / 16 + Duration::from_secs(3),
        "{waited:?}"
    );
}

#[actix::test]
async fn without_a_leader_only_stale_reads_are_answered() {
    let server = ServerHandle::start(options(false)).await.unwrap();
    let api = Api::new(ServerEndpoint::new(server, "dc1"));
    for mode in [Consistency::Leader, Consistency::Consistent] {
        assert_eq!(
            api.read(opts(mode), Read::KvGet { key: "x".into() }).await,
            Err(RequestError::NoLeader)
        );
    }
    let r = api
        .read(opts(Consistency::Stale), Read::KvGet { key: "x".into() })
        .await
        .unwrap();
    assert!(!r.meta.known_leader);
    assert_eq!(r.data, ReadData::KvEntry(None));
    assert_eq!(api.write(set("x", "v")).await, Err(RequestError::NoLeader));
    assert_eq!(
        api.info(InfoRequest::Leader).await,
        Ok(InfoData::Leader(None))
    );
    let filtered = QueryOptions {
        filter: Some("x".into()),
        ..opts(Consistency::Stale)
    };
    assert!(matches!(
        api.read(filtered, Read::KvGet { key: "x".into() }).await,
        Err(RequestError::BadRequest(_))
    ));
}

/// A bootstrapped leader, its endpoint, and the server (to see the parked reads).
pub(crate) async fn leader_with_server() -> (Api, ServerHandle) {
    let server = ServerHandle::start(options(true)).await.unwrap();
    let start = Instant::now();
    while !server.status().is_ready_leader() || *server.applied().borrow() == 0 {
        assert!(start.elapsed() < DEADLINE, "no leader in time");
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
    let api = Api::new(ServerEndpoint::new(server.clone(), "dc1"));
    (api, server)
}

pub(crate) async fn wait_parked(server: &ServerHandle, want: usize) {
    let start = Instant::now();
    while server.view().parked() != want {
        assert!(
            start.elapsed() < DEADLINE,
            "parked reads: {} (want {want})",
            server.view().parked()
        );
        actix::clock::sleep(Duration::from_millis(2)).await;
    }
}

pub(crate) fn blocking(min_index: u64, wait: Duration) -> QueryOptions {
    QueryOptions {
        min_index,
        wait: Some(wait),
        ..QueryOptions::default()
    }
}

/// Many reads park on their own keys while writes to those keys race their
/// registration: every read must see its write (none may sleep through a change it
/// registered too late for), and the registry is empty once they have answered.
#[actix::test]
async fn parked_reads_never_miss_a_racing_write_and_leave_no_registration() {
    let (api, server) = leader_with_server().await;
    const READS: usize = 64;
    let mut indexes = Vec::new();
    for i in 0..READS {
        assert_eq!(
            api.write(set(&format!("race/{i}"), "a")).await,
            Ok(WriteOutcome::Done)
        );
        indexes.push(
            kv_get(&api, &format!("race/{i}"), opts(Consistency::Leader))
                .await
                .0,
        );
    }
    let readers: Vec<_> = indexes
        .iter()
        .enumerate()
        .map(|(i, index)| {
            let api = api.clone();
            let options = blocking(*index, Duration::from_secs(60));
            actix::spawn(async move { kv_get(&api, &format!("race/{i}"), options).await })
        })
        .collect();
    // No waiting for the reads to park: the writes race their registration.
    for i in 0..READS {
        assert_eq!(
            api.write(set(&format!("race/{i}"), "b")).await,
            Ok(WriteOutcome::Done)
        );
    }
    for (i, reader) in readers.into_iter().enumerate() {
        let (index, value) = tokio::time::timeout(DEADLINE, reader)
            .await
            .unwrap_or_else(|_| panic!("read {i} missed its write"))
            .unwrap();
        assert!(index > indexes[i]);
        assert_eq!(value.as_deref(), Some(&b"b"[..]));
    }
    assert_eq!(server.view().parked(), 0);
}

/// A read parked on a key is not woken by writes to other keys (it stays parked), a
/// missing key's read wakes on any KV write (its index is the KV table's), and the
/// jittered timeout still answers, unregistering the read.
#[actix::test]
async fn parked_reads_wake_only_for_their_key_and_still_time_out() {
    let (api, server) = leader_with_server().await;
    assert_eq!(api.write(set("mine", "a")).await, Ok(WriteOutcome::Done));
    let (index, _) = kv_get(&api, "mine", opts(Consistency::Leader)).await;
    let short = blocking(index, Duration::from_millis(300));
    let started = Instant::now();
    let parked = actix::spawn({
        let api = api.clone();
        async move { kv_get(&api, "mine", short).await }
    });
    wait_parked(&server, 1).await;
    assert_eq!(api.write(set("other", "x")).await, Ok(WriteOutcome::Done));
    let (answered, value) = tokio::time::timeout(DEADLINE, parked)
        .await
        .unwrap()
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "answered before its wait"
    );
    assert_eq!((answered, value.as_deref()), (index, Some(&b"a"[..])));
    assert_eq!(server.view().parked(), 0);

    let (table_index, _) = kv_get(&api, "missing", opts(Consistency::Leader)).await;
    let missing = actix::spawn({
        let api = api.clone();
        let options = blocking(table_index, Duration::from_secs(60));
        async move { kv_get(&api, "missing", options).await }
    });
    wait_parked(&server, 1).await;
    assert_eq!(
        api.write(set("elsewhere", "y")).await,
        Ok(WriteOutcome::Done)
    );
    let (answered, value) = tokio::time::timeout(DEADLINE, missing)
        .await
        .unwrap()
        .unwrap();
    assert!(answered > table_index);
    assert_eq!(value, None);
    assert_eq!(server.view().parked(), 0);
}

/// A client that goes away (its request future is dropped) leaves no registration.
#[actix::test]
async fn an_abandoned_parked_read_unregisters() {
    let (api, server) = leader_with_server().await;
    assert_eq!(api.write(set("gone", "a")).await, Ok(WriteOutcome::Done));
    let (index, _) = kv_get(&api, "gone", opts(Consistency::Leader)).await;
    let mut readers = Vec::new();
    for _ in 0..10 {
        let api = api.clone();
        let options = blocking(index, Duration::from_secs(60));
        readers.push(actix::spawn(
            async move { kv_get(&api, "gone", options).await },
        ));
    }
    wait_parked(&server, 10).await;
    for reader in &readers {
        reader.abort();
    }
    wait_parked(&server, 0).await;
}

fn register(node: &str, address: &str, service: &str) -> WriteRequest {
    WriteRequest::Register(RegisterRequest {
        node: Node {
            node: node.into(),
            address: address.into(),
            datacenter: "dc1".into(),
            ..Node::default()
        },
        service: Some(Service {
            id: service.into(),
            service: service.into(),
            port: 80,
            ..Service::default()
        }),
        ..RegisterRequest::default()
    })
}

async fn service_read(api: &Api, name: &str, options: QueryOptions) -> (u64, usize) {
    let r = api
        .read(
            options,
            Read::CatalogService {
                name: name.into(),
                tags: vec![],
                node_meta: vec![],
            },
        )
        .await
        .unwrap();
    let ReadData::ServiceNodes(rows) = r.data else {
        panic!("{:?}", r.data)
    };
    (r.meta.index, rows.len())
}

/// A read parked on one service name answers when that name's index moves (a new
/// instance on another node, a change to a node it runs on) and not for another
/// service's registration, which leaves it to its timeout with the same index.
#[actix::test]
async fn parked_service_reads_answer_for_their_name() {
    let (api, server) = leader_with_server().await;
    let done = Ok(WriteOutcome::Done);
    assert_eq!(api.write(register("n1", "10.0.0.1", "web")).await, done);
    let (index, _) = service_read(&api, "web", opts(Consistency::Leader)).await;

    let parked = actix::spawn({
        let api = api.clone();
        async move { service_read(&api, "WEB", blocking(index, Duration::from_millis(300))).await }
    });
    wait_parked(&server, 1).await;
    assert_eq!(api.write(register("n2", "10.0.0.2", "db")).await, done);
    let (answered, rows) = tokio::time::timeout(DEADLINE, parked)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (answered, rows),
        (index, 1),
        "another service moved nothing"
    );

    for (write, what) in [
        (register("n3", "10.0.0.3", "web"), "a second instance"),
        (register("n1", "10.0.0.9", "web"), "its node's address"),
    ] {
        let (before, _) = service_read(&api, "web", opts(Consistency::Leader)).await;
        let parked = actix::spawn({
            let api = api.clone();
            async move { service_read(&api, "web", blocking(before, Duration::from_secs(60))).await }
        });
        wait_parked(&server, 1).await;
        assert_eq!(api.write(write).await, done);
        let (answered, _) = tokio::time::timeout(DEADLINE, parked)
            .await
            .unwrap_or_else(|_| panic!("{what} did not wake the read"))
            .unwrap();
        assert!(answered > before, "{what}");
    }
    assert_eq!(server.view().parked(), 0);
}

/// A read parked on one node (`catalog/node/:node`, `health/node/:node`) answers for a
/// write on that node, in any spelling, and sleeps through writes on other nodes, which
/// move its table-wide index but not its answer (Consul's watch-set behaviour).
#[actix::test]
async fn parked_node_reads_answer_for_their_node_only() {
    let (api, server) = leader_with_server().await;
    let done = Ok(WriteOutcome::Done);
    assert_eq!(api.write(register("n1", "10.0.0.1", "web")).await, done);
    for (read, new_address) in [
        (Read::CatalogNode { node: "N1".into() }, "10.0.0.8"),
        (Read::HealthNode { node: "n1".into() }, "10.0.0.9"),
    ] {
        let first = api
            .read(opts(Consistency::Leader), read.clone())
            .await
            .unwrap();
        let parked = actix::spawn({
            let (api, read) = (api.clone(), read.clone());
            let options = blocking(first.meta.index, Duration::from_secs(60));
            async move { api.read(options, read).await.unwrap() }
        });
        wait_parked(&server, 1).await;
        assert_eq!(api.write(register("n2", "10.0.0.2", "db")).await, done);
        // A later write completing gives a wrongly woken read time to answer.
        assert_eq!(api.write(set("unrelated", "x")).await, done);
        assert!(!parked.is_finished(), "{read:?} woke for another node");
        assert_eq!(server.view().parked(), 1);

        assert_eq!(api.write(register("n1", new_address, "web")).await, done);
        let answered = tokio::time::timeout(DEADLINE, parked)
            .await
            .unwrap_or_else(|_| panic!("{read:?} slept through its node's change"))
            .unwrap();
        assert!(answered.meta.index > first.meta.index);
        if matches!(read, Read::CatalogNode { .. }) {
            assert_ne!(
                answered.data, first.data,
                "the new address is in the answer"
            );
        }
        assert_eq!(server.view().parked(), 0);
    }
}
