//! Write-path bounds and failures, with a backend the test can stall or break, and
//! exact-output tests of the Fsm actor.

use crate::fsm::{Apply, Fsm, Waiter};
use crate::handle::{Limits, ReadView, ServerHandle, ServerOptions, WriteError};
use crate::log_store::{LogBackend, MemoryBackend, Recovered, StorageError};
use crate::status::StatusCell;
use actix::prelude::*;
use parking_lot::{Condvar, Mutex};
use protocol::codec;
use protocol::ids::{LogIndex, Term};
use protocol::raft::{Entry, HardState, Payload};
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

/// A memory backend whose `sync` can be held (stalled) or made to fail.
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
            None => Ok(()),
        }
    }
    fn last_index(&self) -> LogIndex {
        self.inner.last_index()
    }
}

fn options() -> ServerOptions {
    ServerOptions {
        server_id: "s1".into(),
        node_name: "n1".into(),
        server_addr: "127.0.0.1:8300".into(),
        data_dir: None,
        bootstrap: true,
        raft_multiplier: 1,
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

/// A leader whose no-op is applied, on a gated backend.
async fn gated_leader(limits: Limits) -> (ServerHandle, GatedBackend) {
    let backend = GatedBackend::default();
    let server = ServerHandle::start_with(
        options(),
        Box::new(backend.clone()),
        Recovered::default(),
        limits,
    )
    .unwrap();
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
    assert_eq!(server.propose(set("a")).await, Err(WriteError::Timeout));
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
    let storage = Err(WriteError::Storage("disk on fire".into()));
    assert_eq!(waiting.await.unwrap(), storage);
    assert_eq!(server.propose(set("b")).await, storage);
    assert!(server.view().read().kv_get("a").is_none());
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

#[actix::test]
async fn fsm_applies_once_in_order_and_answers_by_term() {
    let view = ReadView::new(Store::new());
    let (applied_tx, applied_rx) = watch::channel(0);
    let fsm = Fsm::new(view.clone(), applied_tx, Arc::new(StatusCell::default())).start();

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
