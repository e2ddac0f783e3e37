//! Leader duty: reap KV tombstones once they are older than `tombstone_ttl`.
//!
//! The timing is `protocol::tombstone_gc` (Consul's TombstoneGC); this shell gives it the
//! clock and the store. Every granularity tick, while this server is a ready leader
//! (ARCHITECTURE rule 8: after its no-op is applied) and the store holds tombstones, it
//! hints the KV table index (every tombstone so far was deleted at or below it); an
//! expired hint is proposed as `Command::ReapTombstones`, which every replica applies
//! alike. A new term starts from nothing: the first tick hints whatever tombstones the
//! store holds, so those of an earlier leader are reaped one TTL into this term. A
//! failed proposal is retried a tick later (lost leadership resets everything).

use actors::ServerHandle;
use protocol::store::{Command, Table};
use protocol::tombstone_gc::TombstoneGc;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, warn};

pub async fn run(server: ServerHandle, ttl_ms: u64) {
    let mut gc = TombstoneGc::new(ttl_ms);
    let mut events = server.events();
    let mut interval = tokio::time::interval(Duration::from_millis(gc.granularity_ms()));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let started = Instant::now();
    let mut leading_term = None;
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            event = events.recv() => match event {
                Err(RecvError::Closed) => return,
                _ => continue,
            },
        }
        let now_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let status = server.status();
        let term = status.is_ready_leader().then_some(status.term);
        if term != leading_term {
            leading_term = term;
            gc.reset();
        }
        if term.is_none() {
            continue;
        }
        let (tombstones, kv_index) = {
            let store = server.view().read();
            (store.kv_tombstone_count(), store.table_index(Table::Kv))
        };
        if tombstones == 0 {
            continue;
        }
        gc.hint(now_ms, kv_index);
        let Some(up_to_index) = gc.expired(now_ms) else {
            continue;
        };
        match server
            .propose(Command::ReapTombstones { up_to_index })
            .await
        {
            Ok(_) => debug!(up_to_index, "leader: reaped KV tombstones"),
            Err(e) => {
                warn!(up_to_index, error = %e, "leader: reaping KV tombstones failed");
                gc.retry(now_ms, up_to_index);
            }
        }
    }
}
