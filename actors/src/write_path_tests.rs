//! Write-path bounds and failures, with a backend the test can stall or break, and
//! exact-output tests of the Fsm actor.

use crate::fsm::SnapshotTaken;
use crate::fsm::{Apply, Fsm, SnapshotPolicy, Waiter};
use crate::log_store::{LogBackend, MemoryBackend, Recovered, StorageError};
use crate::server::{Limits, ServerHandle, ServerOptions};
use crate::snapshot_store::MemorySnapshotStore;
use crate::snapshot_store::SnapshotBackend;
use crate::status::StatusCell;
use crate::{ReadView, WriteError};
use actix::prelude::*;
use parking_lot::{Condvar, Mutex};
use protocol::codec;
use protocol::ids::{LogIndex, Term};
use protocol::raft::{Entry, HardState, Payload, SnapshotMeta};
use protocol::store::{Command, CommandResult, KvOp, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

const DEADLINE: Duration = Duration::from_secs(10);

#[derive(Default)]
struct GateState {
    stalled: bool,
    fail: Option<String>,
}

/// A memory backend whose `sync` can be held (stalled) or made to fail; a failed sync
/// leaves its entries unsynced, and `recover_after_error` drops them as a disk would.
#[derive(Clone, Default)]
struct GatedBackend {
    inner: MemoryBackend,
    gate: Arc<(Mutex<GateState>, Condvar)>,
}

impl GatedBackend {
    fn set(&self, f: impl FnOnce(&mut GateState)) {
        let (lock, cv) = &*self.gate;
        f(&mut lock.lock());
        cv.notify_all();
    }
}

impl LogBackend for GatedBackend {
    fn truncate_from(&mut self, from: LogIndex) -> Result<(), StorageError> {
        self.inner.truncate_from(from)
    }
    fn append(&mut self, entries: &[Entry]) -> Result<(), StorageError> {
        self.inner.append(entries)
    }
    fn save_hard_state(&mut self, hard_state: &HardState) -> Result<(), StorageError> {
        self.inner.save_hard_state(hard_state)
    }
    fn sync(&mut self) -> Result<(), StorageError> {
        let (lock, cv) = &*self.gate;
        let mut state = lock.lock();
        while state.stalled && state.fail.is_none() {
            cv.wait(&mut state);
        }
        match &state.fail {
            Some(e) => Err(StorageError::Io(e.clone())),
            // So that `recover_after_error` knows what was synced.
            None => self.inner.sync(),
        }
    }
    fn last_index(&self) -> LogIndex {
        self.inner.last_index()
    }
    fn compact_until(&mut self, index: LogIndex) -> Result<(), StorageError> {
        self.inner.compact_until(index)
    }
    fn reset_after(&mut self, index: LogIndex) -> Result<(), StorageError> {
        self.inner.reset_after(index)
    }
    fn recover_after_error(&mut self) -> Result<Recovered, StorageError> {
        self.inner.recover_after_error()
    }
    fn read(
        &mut self,
        from: LogIndex,
        to: LogIndex,
        max_bytes: usize,
    ) -> Result<Vec<Entry>, StorageError> {
        self.inner.read(from, to, max_bytes)
    }
}

fn options() -> ServerOptions {
    ServerOptions {
        server_id: "s1".into(),
        node_name: "n1".into(),
        server_addr: "127.0.0.1:8300".into(),
        data_dir: None,
        bootstrap: true,
        raft_timing: protocol::raft::RaftTiming::with_multiplier(1),
        snapshot_threshold: crate::DEFAULT_SNAPSHOT_THRESHOLD,
        trailing_logs: crate::DEFAULT_TRAILING_LOGS,
        log_cache: protocol::raft::CacheBudget::default(),
    }
}

fn set(key: &str) -> Command {
    Command::Kv(KvOp::Set {
        key: key.into(),
        value: b"v".to_vec(),
        flags: 0,
    })
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        actix::clock::sleep(Duration::from_millis(2)).await;
    }
}

/// A server on a gated backend, just started (its actors have not run yet).
fn gated_server(limits: Limits) -> (ServerHandle, GatedBackend) {
    let backend = GatedBackend::default();
    let server = ServerHandle::start_with(
        options(),
        Box::new(backend.clone()),
        Recovered::default(),
        Arc::new(MemorySnapshotStore::new()),
        limits,
    )
    .unwrap();
    (server, backend)
}

/// A leader whose no-op is applied, on a gated backend.
async fn gated_leader(limits: Limits) -> (ServerHandle, GatedBackend) {
    let (server, backend) = gated_server(limits);
    wait_until("leader with its no-op applied", || {
        *server.applied().borrow() >= 2
    })
    .await;
    (server, backend)
}

#[actix::test]
async fn pending_proposals_are_capped() {
    let limits = Limits {
        max_pending_proposals: 2,
        ..Limits::default()
    };
    let (server, backend) = gated_leader(limits).await;
    backend.set(|g| g.stalled = true);
    let first = actix::spawn({
        let s = server.clone();
        async move { s.propose(set("a")).await }
    });
    let second = actix::spawn({
        let s = server.clone();
        async move { s.propose(set("b")).await }
    });
    wait_until("two proposals in the log", || {
        server.status().last_log_index == 4
    })
    .await;
    // The third finds the table full and fails at once instead of queueing.
    assert_eq!(server.propose(set("c")).await, Err(WriteError::Timeout));
    backend.set(|g| g.stalled = false);
    assert_eq!(first.await.unwrap(), Ok(CommandResult::Done));
    assert_eq!(second.await.unwrap(), Ok(CommandResult::Done));
    assert_eq!(server.propose(set("d")).await, Ok(CommandResult::Done));
}

#[actix::test]
async fn a_proposal_waits_a_bounded_time() {
    let limits = Limits {
        propose_timeout: Duration::from_millis(100),
        ..Limits::default()
    };
    let (server, backend) = gated_leader(limits).await;
    backend.set(|g| g.stalled = true);
    let start = Instant::now();
    let waited = server.propose(set("a")).await;
    assert!(
        matches!(&waited, Err(WriteError::OutcomeUnknown(why)) if why.contains("not applied within")),
        "{waited:?}"
    );
    assert!(waited
        .unwrap_err()
        .to_string()
        .ends_with("(the write may or may not have been applied)"));
    assert!(start.elapsed() < DEADLINE);
    // The entry itself still commits once the disk comes back; nobody is answered twice.
    backend.set(|g| g.stalled = false);
    wait_until("late entry applied", || *server.applied().borrow() >= 3).await;
    assert!(server.view().read().kv_get("a").is_some());
}

#[actix::test]
async fn a_storage_failure_fails_waiting_and_later_writes() {
    let (server, backend) = gated_leader(Limits::default()).await;
    backend.set(|g| g.stalled = true);
    let waiting = actix::spawn({
        let s = server.clone();
        async move { s.propose(set("a")).await }
    });
    wait_until("proposal in the log", || {
        server.status().last_log_index == 3
    })
    .await;
    backend.set(|g| g.fail = Some("disk on fire".into()));
    // The entry was in the log (and maybe sent to followers) when the disk failed: its
    // fate is unknown, and the answer says so.
    assert_eq!(
        waiting.await.unwrap(),
        Err(WriteError::OutcomeUnknown(
            "storage error: disk on fire".into()
        ))
    );
    let storage = Err(WriteError::Storage("disk on fire".into()));
    // Halted (the storage error) or rebuilt and not yet leader (no leader): either way
    // the write is refused, never acknowledged.
    let later = server.propose(set("b")).await;
    assert!(
        later == storage || later == Err(WriteError::NoLeader),
        "{later:?}"
    );
    assert!(server.view().read().kv_get("a").is_none());
    // Status agrees with the writes: this server no longer claims to lead, and says why.
    let status = server.status();
    assert!(!status.is_leader(), "{status:?}");
    assert_eq!(status.leader_id, None);
    assert_eq!(status.storage_error.as_deref(), Some("disk on fire"));
}

#[actix::test]
async fn writes_resume_by_themselves_once_the_disk_accepts_them_again() {
    let (server, backend) = gated_leader(Limits::default()).await;
    assert_eq!(server.propose(set("before")).await, Ok(CommandResult::Done));
    backend.set(|g| g.fail = Some("No space left on device (os error 28)".into()));
    let refused = server.propose(set("refused")).await;
    assert!(
        matches!(
            refused,
            Err(WriteError::Storage(_) | WriteError::OutcomeUnknown(_))
        ),
        "{refused:?}"
    );
    // While the disk is full the server keeps failing over and over (each rebuilt core
    // fails its first write) and never claims leadership; stale reads still answer.
    let failing_since = Instant::now();
    wait_until("a few retries while full", || {
        failing_since.elapsed() > crate::raft_core::STORAGE_RETRY_FIRST * 4
    })
    .await;
    let status = server.status();
    assert!(!status.is_leader(), "{status:?}");
    assert!(status.storage_error.is_some(), "{status:?}");
    assert!(server.view().read().kv_get("before").is_some());
    // Space comes back: no restart, the server elects itself and writes again.
    backend.set(|g| g.fail = None);
    wait_until("leader again with the error cleared", || {
        let s = server.status();
        s.is_ready_leader() && s.storage_error.is_none()
    })
    .await;
    assert_eq!(server.propose(set("after")).await, Ok(CommandResult::Done));
    let view = server.view().read();
    assert!(view.kv_get("before").is_some() && view.kv_get("after").is_some());
    assert!(
        view.kv_get("refused").is_none(),
        "a refused write never applies"
    );
    drop(view);
    // What the disk holds agrees: a restart from it would have both acknowledged writes.
    let disk = backend.inner.recover();
    let keys: Vec<String> = disk
        .entries()
        .iter()
        .filter_map(|e| match &e.payload {
            Payload::Command(bytes) => match codec::decode::<Command>(bytes, usize::MAX) {
                Ok(Command::Kv(KvOp::Set { key, .. })) => Some(key),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(keys, ["before", "after"]);
}

#[test]
fn a_system_torn_down_before_the_raft_actor_ran_does_not_panic() {
    // The panic would happen in a destructor, where tokio swallows it: record panics
    // on this thread with a hook that chains to the previous one.
    let me = std::thread::current().id();
    let panicked = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = panicked.clone();
    let previous = Arc::new(std::panic::take_hook());
    let chained = previous.clone();
    std::panic::set_hook(Box::new(move |info| {
        if std::thread::current().id() == me {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
        }
        chained(info);
    }));
    let system = actix::System::new();
    system.block_on(async {
        let server = ServerHandle::start(options()).await.unwrap();
        // No await after start: the RaftCore actor has never been polled.
        drop(server);
        actix::System::current().stop();
    });
    drop(system);
    let _ = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| previous(info)));
    assert!(!panicked.load(std::sync::atomic::Ordering::SeqCst));
}

#[actix::test]
async fn a_dev_server_snapshots_in_memory_and_bounds_its_log() {
    let opts = ServerOptions {
        snapshot_threshold: 20,
        trailing_logs: 5,
        log_cache: protocol::raft::CacheBudget::default(),
        ..options()
    };
    let server = ServerHandle::open_and_start(opts, Limits::default()).unwrap();
    wait_until("leadership", || server.status().is_leader()).await;
    for i in 0..200 {
        server.propose(set(&format!("k{i}"))).await.unwrap();
    }
    let start = Instant::now();
    loop {
        let (first, len) = server.log_stats().await;
        if first > 150 && len <= 5 + 2 * 20 {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE,
            "log not compacted: {first} {len}"
        );
        actix::clock::sleep(Duration::from_millis(2)).await;
    }
    server.shutdown().await;
}

// ----- Fsm --------------------------------------------------------------------------

fn command_entry(term: u64, index: u64, cmd: &Command) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: Payload::Command(codec::encode(cmd).unwrap()),
    }
}

fn noop(term: u64, index: u64) -> Entry {
    Entry {
        term: Term(term),
        index: LogIndex(index),
        payload: Payload::Noop,
    }
}

/// Collects the Fsm's snapshot reports.
struct SnapshotSink(tokio::sync::mpsc::UnboundedSender<SnapshotTaken>);

impl Actor for SnapshotSink {
    type Context = Context<Self>;
}

impl Handler<SnapshotTaken> for SnapshotSink {
    type Result = ();
    fn handle(&mut self, msg: SnapshotTaken, _: &mut Context<Self>) {
        let _ = self.0.send(msg);
    }
}

fn fsm_with(
    view: &ReadView,
    applied_tx: watch::Sender<u64>,
    threshold: u64,
    store: Arc<dyn SnapshotBackend>,
) -> (
    Addr<Fsm>,
    tokio::sync::mpsc::UnboundedReceiver<SnapshotTaken>,
) {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let policy = SnapshotPolicy {
        store,
        threshold,
        taken: SnapshotSink(tx).start().recipient(),
        max_record_bytes: protocol::codec::MAX_DECODE_BYTES,
        log_bytes: crate::fsm::SNAPSHOT_LOG_BYTES,
        trailing_bytes: crate::fsm::TRAILING_LOG_BYTES,
    };
    let status = Arc::new(StatusCell::default());
    let fsm = Fsm::new(
        view.clone(),
        applied_tx,
        status,
        SnapshotMeta::default(),
        policy,
    );
    (fsm.start(), rx)
}

#[actix::test]
async fn fsm_applies_once_in_order_and_answers_by_term() {
    let view = ReadView::new(Store::new());
    let (applied_tx, applied_rx) = watch::channel(0);
    let (fsm, _) = fsm_with(&view, applied_tx, 0, Arc::new(MemorySnapshotStore::new()));

    let waiter = |index: u64, term: u64| {
        let (reply, rx) = oneshot::channel();
        (
            Waiter {
                index,
                term: Term(term),
                reply,
            },
            rx,
        )
    };
    let (w2, r2) = waiter(2, 2);
    let (w3, r3) = waiter(3, 1); // proposed in term 1, but index 3 holds a term-2 entry
    let (w4, r4) = waiter(4, 2);
    let entries = vec![
        noop(2, 1),
        command_entry(2, 2, &set("a")),
        command_entry(2, 3, &set("b")),
        Entry {
            term: Term(2),
            index: LogIndex(4),
            payload: Payload::Command(vec![0xff, 0xff]),
        },
    ];
    fsm.send(Apply {
        entries: entries.clone(),
        waiters: vec![w2, w3, w4],
    })
    .await
    .unwrap();
    assert_eq!(r2.await.unwrap(), Ok(CommandResult::Done));
    assert_eq!(r3.await.unwrap(), Err(WriteError::LeadershipLost));
    assert!(matches!(r4.await.unwrap(), Ok(CommandResult::Rejected(_))));
    assert_eq!(*applied_rx.borrow(), 4);
    assert_eq!(view.read().kv_get("a").map(|e| e.modify_index), Some(2));

    // Re-delivered entries are not applied again.
    fsm.send(Apply {
        entries,
        waiters: vec![],
    })
    .await
    .unwrap();
    assert_eq!(view.read().kv_get("b").map(|e| e.modify_index), Some(3));
    assert_eq!(view.read().last_index(), 4);
    assert_eq!(*applied_rx.borrow(), 4);
}

#[actix::test]
async fn fsm_snapshots_at_the_threshold_with_term_and_configuration() {
    let view = ReadView::new(Store::new());
    let (applied_tx, _applied_rx) = watch::channel(0);
    let snapshots = MemorySnapshotStore::new();
    let (fsm, mut taken) = fsm_with(&view, applied_tx, 3, Arc::new(snapshots.clone()));
    let config = vec![(
        protocol::ids::ServerId("s1".into()),
        "127.0.0.1:8300".into(),
    )];
    let entries = vec![
        Entry {
            term: Term(1),
            index: LogIndex(1),
            payload: Payload::Configuration(config.clone()),
        },
        noop(2, 2),
    ];
    fsm.send(Apply {
        entries,
        waiters: vec![],
    })
    .await
    .unwrap();
    assert!(taken.try_recv().is_err(), "below the threshold");
    fsm.send(Apply {
        entries: vec![command_entry(2, 3, &set("a"))],
        waiters: vec![],
    })
    .await
    .unwrap();
    let report = tokio::time::timeout(DEADLINE, taken.recv())
        .await
        .unwrap()
        .unwrap();
    let want = SnapshotMeta {
        index: LogIndex(3),
        term: Term(2),
        configuration: config,
        non_voters: vec![],
    };
    assert_eq!(report.meta, want);
    assert_eq!(report.oldest_retained, LogIndex(3));
    let ids = snapshots.list().unwrap();
    let saved = snapshots.load(ids[0]).unwrap();
    assert_eq!(saved.meta, want);
    let restored =
        crate::snapshot_store::records::store_from_bytes(&saved.data, codec::MAX_DECODE_BYTES)
            .unwrap();
    assert_eq!(&restored, &*view.read());
}

#[actix::test]
async fn a_command_over_the_size_limit_is_refused_before_replication() {
    const LIMIT: usize = 100;
    assert_eq!(
        Limits::default().max_command_bytes,
        protocol::codec::MAX_COMMAND_BYTES
    );
    let limits = Limits {
        max_command_bytes: LIMIT,
        ..Limits::default()
    };
    let (server, _backend) = gated_leader(limits).await;
    let last = server.status().last_log_index;
    let big = Command::Kv(KvOp::Set {
        key: "big".into(),
        value: vec![0; LIMIT],
        flags: 0,
    });
    let len = protocol::codec::encode(&big).unwrap().len();
    assert_eq!(
        server.propose(big).await,
        Err(WriteError::TooLarge { len, limit: LIMIT })
    );
    assert_eq!(server.status().last_log_index, last, "nothing proposed");
    // A small one still goes through.
    assert!(server.propose(set("small")).await.is_ok());
    server.shutdown().await;
}

#[test]
fn a_batch_is_decoded_up_front_without_the_store_lock() {
    use crate::fsm::{decode_batch, Decoded};
    let garbage = Entry {
        term: Term(1),
        index: LogIndex(3),
        payload: Payload::Command(vec![0xff, 0xff]),
    };
    let batch = vec![noop(1, 1), command_entry(1, 2, &set("a")), garbage];
    // Decoding needs no store at all: the Fsm does it before applying to its working
    // store, and applying only takes decoded commands.
    let decoded = decode_batch(&batch);
    assert!(matches!(decoded[0], Decoded::NotACommand));
    assert!(matches!(&decoded[1], Decoded::Command(c) if *c == set("a")));
    assert!(matches!(&decoded[2], Decoded::Undecodable(_)));
}

/// Receive events until `want` arrives (panics after the deadline); returns all seen.
async fn events_until(
    events: &mut tokio::sync::broadcast::Receiver<crate::events::ServerEvent>,
    want: &crate::events::ServerEvent,
) -> Vec<crate::events::ServerEvent> {
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(DEADLINE, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {want:?} within the deadline; saw {seen:?}"))
            .expect("event bus open");
        seen.push(event.clone());
        if &event == want {
            return seen;
        }
    }
}

#[actix::test]
async fn leadership_and_storage_changes_are_published_as_events() {
    use crate::events::ServerEvent::*;
    let (server, backend) = gated_server(Limits::default());
    // Subscribed before RaftCore first runs: nothing is missed.
    let mut events = server.events();
    let seen = events_until(&mut events, &LeadershipAcquired { term: 2 }).await;
    assert!(
        seen.contains(&RoleChanged {
            role: crate::RaftRole::Leader,
            term: 2,
            leader_id: Some("s1".into()),
            ready_index: 2,
        }),
        "{seen:?}"
    );
    // Acquired only once the no-op is applied.
    assert!(*server.applied().borrow() >= 2);

    backend.set(|g| g.fail = Some("disk on fire".into()));
    let _ = server.propose(set("x")).await;
    let seen = events_until(
        &mut events,
        &StorageFailed {
            error: "disk on fire".into(),
        },
    )
    .await;
    assert!(seen.contains(&LeadershipLost { term: 2 }), "{seen:?}");

    backend.set(|g| g.fail = None);
    events_until(&mut events, &StorageRecovered).await;
    let seen = events_until(&mut events, &LeadershipAcquired { term: 3 }).await;
    assert!(
        !seen.iter().any(|e| matches!(e, LeadershipLost { .. })),
        "{seen:?}"
    );
}
