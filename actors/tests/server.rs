//! A real single server: file-backed log in a tempdir, actors on an actix System.

use cairn_actors::{ServerHandle, ServerOptions, WriteError};
use protocol::store::{Command, CommandResult, KvOp};
use std::path::Path;
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(10);

fn options(dir: Option<&Path>, bootstrap: bool) -> ServerOptions {
    ServerOptions {
        server_id: "11111111-2222-3333-4444-555555555555".into(),
        node_name: "node1".into(),
        server_addr: "127.0.0.1:8300".into(),
        data_dir: dir.map(Path::to_path_buf),
        bootstrap,
        raft_timing: protocol::raft::RaftTiming::with_multiplier(1),
        snapshot_threshold: cairn_actors::DEFAULT_SNAPSHOT_THRESHOLD,
        trailing_logs: cairn_actors::DEFAULT_TRAILING_LOGS,
        log_cache: protocol::raft::CacheBudget::default(),
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
}

fn set(key: &str, value: &str) -> Command {
    Command::Kv(KvOp::Set {
        key: key.into(),
        value: value.as_bytes().to_vec(),
        flags: 0,
    })
}

fn value_of(server: &ServerHandle, key: &str) -> Option<String> {
    server
        .view()
        .read()
        .kv_get(key)
        .map(|e| String::from_utf8_lossy(&e.value).into_owned())
}

#[actix::test]
async fn file_backed_server_elects_writes_and_rebuilds_after_restart() {
    let dir = tempfile::tempdir().unwrap();

    let server = ServerHandle::start(options(Some(dir.path()), true))
        .await
        .unwrap();
    wait_until("leadership", || server.status().is_leader()).await;
    let status = server.status();
    assert_eq!(status.term, 2);
    assert_eq!(status.leader_addr.as_deref(), Some("127.0.0.1:8300"));
    assert_eq!(
        status.voters,
        vec![(
            "11111111-2222-3333-4444-555555555555".to_string(),
            "127.0.0.1:8300".to_string()
        )]
    );

    for i in 0..20 {
        let r = server
            .propose(set(&format!("k{i}"), &format!("v{i}")))
            .await
            .unwrap();
        assert_eq!(r, CommandResult::Done);
    }
    // Concurrent proposals share fsyncs and all get their own answers.
    let answers =
        futures::future::join_all((0..50).map(|i| server.propose(set(&format!("c{i}"), "x"))))
            .await;
    assert!(answers.iter().all(|a| a == &Ok(CommandResult::Done)));
    assert_eq!(value_of(&server, "k7").as_deref(), Some("v7"));
    // 1 configuration + 1 no-op + 70 commands.
    assert_eq!(*server.applied().borrow(), 72);
    assert_eq!(server.status().commit_index, 72);
    server.shutdown().await;
    assert_eq!(
        server.propose(set("late", "x")).await,
        Err(WriteError::ShuttingDown)
    );
    // The view stays readable after shutdown.
    assert_eq!(value_of(&server, "k1").as_deref(), Some("v1"));

    // "Restart" on the same directory. -bootstrap is still given, as operators leave it
    // in their config: a non-empty log is never bootstrapped again.
    let restarted = ServerHandle::start(options(Some(dir.path()), true))
        .await
        .unwrap();
    wait_until("leadership after restart", || {
        restarted.status().is_leader()
    })
    .await;
    let mut applied = restarted.applied();
    let start = Instant::now();
    while *applied.borrow() < 73 {
        assert!(start.elapsed() < DEADLINE, "store not rebuilt");
        let _ = actix::clock::timeout(Duration::from_millis(100), applied.changed()).await;
    }
    assert_eq!(restarted.status().term, 3, "{:?}", restarted.status());
    assert_eq!(value_of(&restarted, "k7").as_deref(), Some("v7"));
    assert_eq!(value_of(&restarted, "c49").as_deref(), Some("x"));
    assert_eq!(
        restarted.propose(set("after", "restart")).await,
        Ok(CommandResult::Done)
    );
    assert_eq!(
        restarted
            .view()
            .read()
            .kv_get("after")
            .map(|e| e.modify_index),
        Some(74)
    );
    restarted.shutdown().await;

    // And once more without -bootstrap: the configuration comes from the log.
    let third = ServerHandle::start(options(Some(dir.path()), false))
        .await
        .unwrap();
    wait_until("leadership on the third start", || {
        third.status().is_leader()
    })
    .await;
    wait_until("store rebuilt again", || *third.applied().borrow() >= 75).await;
    assert_eq!(third.status().term, 4);
    assert_eq!(value_of(&third, "after").as_deref(), Some("restart"));
}

#[actix::test]
async fn a_server_restarted_on_a_new_address_corrects_its_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let first = ServerHandle::start(options(Some(dir.path()), true))
        .await
        .unwrap();
    wait_until("leadership", || first.status().is_ready_leader()).await;
    assert_eq!(first.propose(set("k", "v")).await, Ok(CommandResult::Done));
    first.shutdown().await;

    let moved = ServerOptions {
        server_addr: "127.0.0.2:8300".into(),
        ..options(Some(dir.path()), false)
    };
    let second = ServerHandle::start(moved.clone()).await.unwrap();
    wait_until("the new address in the configuration", || {
        let s = second.status();
        s.leader_addr.as_deref() == Some("127.0.0.2:8300")
            && s.voters == vec![(moved.server_id.clone(), "127.0.0.2:8300".to_string())]
    })
    .await;
    // The log after the snapshot is re-applied once the new leader's no-op commits.
    wait_until("the store rebuilt", || second.status().is_ready_leader()).await;
    assert_eq!(value_of(&second, "k").as_deref(), Some("v"));
    second.shutdown().await;

    // And it stays corrected on the next start.
    let third = ServerHandle::start(moved).await.unwrap();
    wait_until("leadership on the third start", || {
        third.status().is_ready_leader()
    })
    .await;
    assert_eq!(
        third.status().leader_addr.as_deref(),
        Some("127.0.0.2:8300")
    );
}

#[actix::test]
async fn dev_server_without_bootstrap_has_no_leader() {
    let server = ServerHandle::start(options(None, false)).await.unwrap();
    assert_eq!(
        server.propose(set("a", "b")).await,
        Err(WriteError::NoLeader)
    );
    assert!(!server.status().known_leader());
}

#[actix::test]
async fn dev_server_in_memory_writes() {
    let server = ServerHandle::start(options(None, true)).await.unwrap();
    wait_until("leadership", || server.status().is_leader()).await;
    assert_eq!(server.propose(set("a", "b")).await, Ok(CommandResult::Done));
    assert_eq!(value_of(&server, "a").as_deref(), Some("b"));
}
