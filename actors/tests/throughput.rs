//! Throughput and latency probe of the single-server write path (ignored by default;
//! run with `cargo test -p cairn-actors --release --test throughput -- --ignored --nocapture`).

use cairn_actors::{ServerHandle, ServerOptions};
use protocol::store::{Command, KvOp};
use std::time::{Duration, Instant};

#[actix::test]
#[ignore]
async fn propose_throughput_and_latency() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerHandle::start(ServerOptions {
        server_id: "s1".into(),
        node_name: "n1".into(),
        server_addr: "127.0.0.1:8300".into(),
        data_dir: Some(dir.path().to_path_buf()),
        bootstrap: true,
        raft_timing: protocol::raft::RaftTiming::with_multiplier(1),
        snapshot_threshold: cairn_actors::DEFAULT_SNAPSHOT_THRESHOLD,
        trailing_logs: cairn_actors::DEFAULT_TRAILING_LOGS,
        log_cache: protocol::raft::CacheBudget::default(),
    })
    .await
    .unwrap();
    let start = Instant::now();
    while !server.status().is_leader() {
        assert!(start.elapsed() < Duration::from_secs(10));
        actix::clock::sleep(Duration::from_millis(5)).await;
    }
    let cmd = |i: usize| {
        Command::Kv(KvOp::Set {
            key: format!("k{i}"),
            value: vec![b'v'; 64],
            flags: 0,
        })
    };

    // One client: latency.
    let mut lat = Vec::new();
    for i in 0..500 {
        let t = Instant::now();
        server.propose(cmd(i)).await.unwrap();
        lat.push(t.elapsed());
    }
    lat.sort();
    println!(
        "1 client: p50 {:?} p99 {:?}",
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100]
    );

    // 64 clients: throughput.
    let run_for = Duration::from_secs(3);
    let t = Instant::now();
    let tasks: Vec<_> = (0..64)
        .map(|c| {
            let s = server.clone();
            actix::spawn(async move {
                let mut n = 0usize;
                while t.elapsed() < run_for {
                    s.propose(cmd(c * 1_000_000 + n)).await.unwrap();
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    println!(
        "64 clients: {:.0} writes/s",
        total as f64 / t.elapsed().as_secs_f64()
    );
}
