//! The façade the edges (HTTP, DNS, agent wiring) use to talk to a server's Raft group:
//! propose commands, read the published view, and see Raft status.

use crate::events::{announce_leadership, EventBus, ServerEvent};
use crate::fsm::{Fsm, SnapshotPolicy};
use crate::log_store::{
    FileBackend, FileOptions, LogBackend, LogStore, MemoryBackend, Recovered, StorageError,
};
use crate::raft_core::{
    CoreLimits, PersistDone, Propose, RaftCore, Shutdown, MAX_PENDING_PROPOSALS,
};
use crate::snapshot_store::{
    records, FileSnapshotStore, LoadError, MemorySnapshotStore, SnapshotBackend,
};
use crate::status::StatusCell;
use actix::prelude::*;
use parking_lot::{RwLock, RwLockReadGuard};
use protocol::codec;
use protocol::ids::ServerId;
use protocol::raft::{Raft, RaftConfig, SnapshotMeta};
use protocol::store::{Command, CommandResult, Store};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{oneshot, watch};

/// How to start the Raft group of this server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// Stable Raft id of this server (the node UUID).
    pub server_id: String,
    /// Node name, for logs and operator output.
    pub node_name: String,
    /// `ip:port` other servers reach this one on (advertise address + server port).
    pub server_addr: String,
    /// Where the log and hard state live; `None` keeps everything in memory (`-dev`).
    pub data_dir: Option<PathBuf>,
    /// `-bootstrap`: start as the only voter of a fresh cluster and elect itself.
    pub bootstrap: bool,
    /// Consul's `performance.raft_multiplier` (1 = fastest timings).
    pub raft_multiplier: u32,
    /// Take a snapshot once this many entries were applied since the last one
    /// (Consul's `raft_snapshot_threshold`, default [`DEFAULT_SNAPSHOT_THRESHOLD`]);
    /// 0 turns snapshots (and so log compaction) off.
    pub snapshot_threshold: u64,
    /// Entries kept in the log below each snapshot, so slightly lagging followers can
    /// still catch up from the log (Consul's `raft_trailing_logs`, default
    /// [`DEFAULT_TRAILING_LOGS`]).
    pub trailing_logs: u64,
}

/// Consul's default `raft_snapshot_threshold`.
pub const DEFAULT_SNAPSHOT_THRESHOLD: u64 = 16384;
/// Consul's default `raft_trailing_logs`.
pub const DEFAULT_TRAILING_LOGS: u64 = 10240;

/// Errors a write can end with. Their Display texts are what Consul answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteError {
    #[error("No cluster leader")]
    NoLeader,
    #[error("leadership lost while committing log")]
    LeadershipLost,
    /// Two cases share Consul's text. The pending-proposal queue was full: nothing was
    /// proposed. Or `propose` waited [`PROPOSE_TIMEOUT`] for its entry to be applied:
    /// then the outcome is UNKNOWN, the entry may still commit and be applied later.
    #[error("timed out enqueuing operation")]
    Timeout,
    #[error("storage error: {0}")]
    Storage(String),
    #[error("agent is shutting down")]
    ShuttingDown,
    #[error("encode failed: {0}")]
    Encode(String),
    /// The encoded command is over [`codec::MAX_COMMAND_BYTES`]; nothing was proposed.
    #[error("command of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    #[error("failed to open data dir: {0}")]
    Storage(String),
    #[error("{0}")]
    Config(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RaftRole {
    #[default]
    Follower,
    Candidate,
    Leader,
}

impl From<protocol::raft::Role> for RaftRole {
    fn from(role: protocol::raft::Role) -> Self {
        match role {
            protocol::raft::Role::Follower => RaftRole::Follower,
            protocol::raft::Role::Candidate => RaftRole::Candidate,
            protocol::raft::Role::Leader => RaftRole::Leader,
        }
    }
}

/// A snapshot of Raft status for headers, `/v1/status/*` and agent/self.
#[derive(Debug, Clone, Default)]
pub struct RaftStatus {
    pub role: RaftRole,
    pub term: u64,
    pub leader_id: Option<String>,
    /// Leader's `ip:port` (server RPC address), as `/v1/status/leader` reports it.
    pub leader_addr: Option<String>,
    pub commit_index: u64,
    pub applied_index: u64,
    pub last_log_index: u64,
    pub last_log_term: u64,
    /// Milliseconds since this server last heard from a leader (0 on the leader).
    pub last_contact_ms: u64,
    /// Voters as (id, address).
    pub voters: Vec<(String, String)>,
    /// On a leader, the index of its own term's no-op entry (0 otherwise). Until that is
    /// applied the store may still lack entries committed by earlier terms (after a
    /// restart: everything after the snapshot), so reads that promise to see every
    /// acknowledged write wait for it, and so do leader duties.
    pub leader_ready_index: u64,
    /// Why this server cannot write to its Raft log right now (a full disk, an I/O
    /// error), until a write succeeds again; None when healthy. While set the server is
    /// a follower without a leader and retries by itself (see `raft_core`).
    pub storage_error: Option<String>,
}

impl RaftStatus {
    pub fn is_leader(&self) -> bool {
        self.role == RaftRole::Leader
    }
    /// A leader whose store holds everything committed before its term.
    pub fn is_ready_leader(&self) -> bool {
        self.is_leader() && self.applied_index >= self.leader_ready_index
    }
    pub fn known_leader(&self) -> bool {
        self.leader_id.is_some()
    }
}

/// The published read view of the replicated store. Readers take a short read lock; the
/// Fsm actor takes the write lock only while applying one batch.
#[derive(Clone, Default)]
pub struct ReadView(Arc<RwLock<Store>>);

impl ReadView {
    pub fn new(store: Store) -> Self {
        ReadView(Arc::new(RwLock::new(store)))
    }
    pub fn read(&self) -> RwLockReadGuard<'_, Store> {
        self.0.read()
    }
    pub(crate) fn inner(&self) -> &Arc<RwLock<Store>> {
        &self.0
    }
}

/// How long `propose` waits for its entry to be applied before answering `Timeout`
/// (the entry may still be applied afterwards: the caller cannot tell).
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// Cheap to clone; every edge holds one.
#[derive(Clone)]
pub struct ServerHandle {
    view: ReadView,
    raft: Addr<RaftCore>,
    status: Arc<StatusCell>,
    applied: watch::Receiver<u64>,
    propose_timeout: Duration,
    max_command_bytes: usize,
    events: EventBus,
}

/// Bounds of the write path.
#[derive(Debug, Clone)]
pub(crate) struct Limits {
    pub(crate) propose_timeout: Duration,
    pub(crate) max_pending_proposals: usize,
    /// Log segment size of the file backend.
    pub(crate) segment_max_bytes: u64,
    /// Largest encoded command `propose` accepts (tests inject a small one).
    pub(crate) max_command_bytes: usize,
    /// Largest snapshot RECORD saved and loaded (tests inject a small one); the image
    /// as a whole has no ceiling.
    pub(crate) max_snapshot_record_bytes: usize,
    /// Floor of the Fsm's byte trigger for snapshots (`fsm::SnapshotPolicy::log_bytes`).
    pub(crate) snapshot_log_bytes: u64,
    /// Payload bytes of trailing log entries kept in memory below a snapshot.
    pub(crate) trailing_log_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            propose_timeout: PROPOSE_TIMEOUT,
            max_pending_proposals: MAX_PENDING_PROPOSALS,
            segment_max_bytes: FileOptions::default().segment_max_bytes,
            max_command_bytes: codec::MAX_COMMAND_BYTES,
            max_snapshot_record_bytes: codec::MAX_DECODE_BYTES,
            snapshot_log_bytes: crate::fsm::SNAPSHOT_LOG_BYTES,
            trailing_log_bytes: crate::fsm::TRAILING_LOG_BYTES,
        }
    }
}

impl ServerHandle {
    /// Start LogStore, RaftCore and Fsm actors. Must run inside an actix System.
    ///
    /// With a data dir the log lives in `<data_dir>/raft/` and snapshots in
    /// `<data_dir>/raft/snapshots/`. Recovery loads the newest snapshot that verifies
    /// (falling back to the older one with a warning), then the store is brought up to
    /// date by applying the log entries after it once this server's leadership no-op
    /// commits them. Without a data dir everything is in memory.
    pub async fn start(opts: ServerOptions) -> Result<ServerHandle, StartError> {
        Self::open_and_start(opts, Limits::default())
    }

    /// `start` with explicit limits.
    pub(crate) fn open_and_start(
        opts: ServerOptions,
        limits: Limits,
    ) -> Result<ServerHandle, StartError> {
        let storage = |e: crate::log_store::StorageError| StartError::Storage(e.to_string());
        let (backend, recovered, snapshots): (
            Box<dyn LogBackend>,
            Recovered,
            Arc<dyn SnapshotBackend>,
        ) = match &opts.data_dir {
            Some(dir) => {
                let file_opts = FileOptions {
                    segment_max_bytes: limits.segment_max_bytes,
                };
                let (b, r) = FileBackend::open(&dir.join("raft"), file_opts).map_err(storage)?;
                let snaps = FileSnapshotStore::open(&dir.join("raft").join("snapshots"))
                    .map_err(storage)?;
                (Box::new(b), r, Arc::new(snaps))
            }
            None => (
                Box::new(MemoryBackend::new()),
                Recovered::default(),
                Arc::new(MemorySnapshotStore::new()),
            ),
        };
        Self::start_with(opts, backend, recovered, snapshots, limits)
    }

    /// `start` with already opened storage and explicit limits (tests use a backend
    /// they can stall or break, or storage they reopen).
    pub(crate) fn start_with(
        opts: ServerOptions,
        backend: Box<dyn LogBackend>,
        recovered: Recovered,
        snapshots: Arc<dyn SnapshotBackend>,
        limits: Limits,
    ) -> Result<ServerHandle, StartError> {
        if opts.server_id.is_empty() {
            return Err(StartError::Config("server id must not be empty".into()));
        }
        let (snapshot_meta, store) =
            load_newest_snapshot(snapshots.as_ref(), limits.max_snapshot_record_bytes)?;
        let id = ServerId(opts.server_id.clone());
        let cfg = RaftConfig::with_multiplier(id, opts.raft_multiplier);
        let rng = protocol::rng::seeded(rand::random());
        let epoch = Instant::now();
        let mut raft = Raft::new(
            cfg,
            recovered.hard_state,
            snapshot_meta.clone(),
            recovered.entries,
            rng,
            0,
        )
        .map_err(|e| StartError::Storage(format!("recovered raft log is inconsistent: {e}")))?;
        if opts.bootstrap && raft.bootstrap(&opts.server_addr) {
            tracing::info!(node = %opts.node_name, "bootstrapped a new raft cluster with this server as the only voter");
        }
        if !raft.voters().is_empty() && !raft.voters().iter().any(|(v, _)| v.0 == opts.server_id) {
            tracing::warn!(server_id = %opts.server_id, "this server is not a voter in the recovered raft configuration; it will not start elections");
        }

        let start = snapshot_meta.unwrap_or_default();
        let view = ReadView::new(store);
        let status = Arc::new(StatusCell::default());
        status.update(|s| s.applied_index = start.index.0);
        let (applied_tx, applied_rx) = watch::channel(start.index.0);

        let ctx = Context::<RaftCore>::new();
        let addr = ctx.address();
        let policy = SnapshotPolicy {
            store: snapshots.clone(),
            threshold: opts.snapshot_threshold,
            taken: addr.clone().recipient(),
            max_record_bytes: limits.max_snapshot_record_bytes,
            log_bytes: limits.snapshot_log_bytes,
            trailing_bytes: limits.trailing_log_bytes,
        };
        let fsm = Fsm::new(view.clone(), applied_tx, status.clone(), start, policy);
        let fsm_arbiter = Arbiter::new();
        let fsm = Fsm::start_in_arbiter(&fsm_arbiter.handle(), move |_| fsm);

        let events = EventBus::default();
        actix::spawn(announce_leadership(
            events.clone(),
            events.subscribe(),
            status.clone(),
            applied_rx.clone(),
        ));
        let done_addr = addr.clone();
        let log_store = LogStore::spawn(backend, snapshots, move |result| {
            done_addr.do_send(PersistDone(result))
        })
        .map_err(|e| StartError::Storage(e.to_string()))?;
        ctx.run(
            RaftCore::new(
                raft,
                log_store,
                fsm_arbiter.handle(),
                fsm,
                status.clone(),
                epoch,
                CoreLimits {
                    max_pending: limits.max_pending_proposals,
                    trailing_logs: opts.trailing_logs,
                },
            )
            .with_self_addr(opts.server_addr.clone())
            .with_events(events.clone()),
        );
        Ok(ServerHandle {
            view,
            raft: addr,
            status,
            applied: applied_rx,
            propose_timeout: limits.propose_timeout,
            max_command_bytes: limits.max_command_bytes,
            events,
        })
    }

    /// Replicate a command and wait until it is applied; the result is the state
    /// machine's answer. Never answers success before the entry is applied. A
    /// `Timeout` after waiting leaves the outcome unknown (see [`WriteError::Timeout`]).
    pub async fn propose(&self, cmd: Command) -> Result<CommandResult, WriteError> {
        let data = codec::encode(&cmd).map_err(|e| WriteError::Encode(e.to_string()))?;
        if data.len() > self.max_command_bytes {
            // Refused here so that every log record stays readable at recovery.
            return Err(WriteError::TooLarge {
                len: data.len(),
                limit: self.max_command_bytes,
            });
        }
        let (reply, answer) = oneshot::channel();
        let wait = async {
            self.raft
                .send(Propose { data, reply })
                .await
                .map_err(|_| WriteError::ShuttingDown)?;
            answer.await.map_err(|_| WriteError::ShuttingDown)?
        };
        tokio::time::timeout(self.propose_timeout, wait)
            .await
            .map_err(|_| WriteError::Timeout)?
    }

    pub fn view(&self) -> &ReadView {
        &self.view
    }

    /// Stop this server's Raft group: waiting proposals fail with `ShuttingDown`, writes
    /// already queued reach the disk, files close. Later proposals answer `ShuttingDown`.
    /// The read view stays readable.
    pub async fn shutdown(&self) {
        let (done, stopped) = oneshot::channel();
        if self.raft.send(Shutdown { done }).await.is_ok() {
            let _ = stopped.await;
        }
    }

    /// Cheap: a copy of the status cell RaftCore keeps current.
    pub fn status(&self) -> RaftStatus {
        self.status.read()
    }

    /// The published status without copying it (its `last_contact_ms` is 0) and when a
    /// leader was last heard from: for per-request paths that must not allocate.
    pub(crate) fn status_snapshot(&self) -> (Arc<RaftStatus>, Option<Instant>) {
        self.status.snapshot()
    }

    /// Test probe: (first log index held in memory, entries held in memory).
    #[cfg(test)]
    pub(crate) async fn log_stats(&self) -> (u64, usize) {
        self.raft
            .send(crate::raft_core::LogStats)
            .await
            .unwrap_or_default()
    }

    /// Subscribe to role, leadership and storage events (see [`crate::events`]).
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<ServerEvent> {
        self.events.subscribe()
    }

    /// Watch of the last applied index; blocking queries wait on it.
    pub fn applied(&self) -> watch::Receiver<u64> {
        self.applied.clone()
    }
}

/// The newest retained snapshot that verifies and decodes, with its store; older ones
/// are tried (with a warning) when a newer one is unusable. None when there are none.
///
/// The store is rebuilt while the file streams in, one record at a time (each within
/// `max_record_bytes`), so memory holds the store being built and one record, never the
/// image. Only a file that fails its own checks (a record's or the data's CRC, header,
/// lengths: `StorageError::Corrupt`) is set aside. A file that verifies but does not
/// load (a record over `max_record_bytes`, an unknown file version, a stream this
/// version does not understand) is real data: it stays where it is, and if no snapshot
/// is usable the start fails with that reason rather than losing state. (Saving refuses
/// records over the same limit, see `fsm`, so our own files never hit the size case.)
pub(crate) fn load_newest_snapshot(
    snapshots: &dyn SnapshotBackend,
    max_record_bytes: usize,
) -> Result<(Option<SnapshotMeta>, Store), StartError> {
    let ids = snapshots
        .list()
        .map_err(|e| StartError::Storage(e.to_string()))?;
    let mut intact_but_unloadable: Option<String> = None;
    for id in &ids {
        let mut store = None;
        let loaded = snapshots.load_with(*id, &mut |_, data| {
            store = Some(records::load_store(data, max_record_bytes)?);
            Ok(())
        });
        match (loaded, store) {
            (Ok(meta), Some(store)) => {
                tracing::info!(
                    index = meta.index.0,
                    term = meta.term.0,
                    "restored raft snapshot"
                );
                return Ok((Some(meta), store));
            }
            (Ok(_), None) => {
                // A backend that verified a snapshot without handing it over: a bug, but
                // not a reason to panic at start.
                return Err(StartError::Storage(format!(
                    "raft snapshot {}-{} loaded without data",
                    id.term, id.index
                )));
            }
            (Err(error), _) => {
                tracing::warn!(%error, index = id.index.0, term = id.term.0, "raft snapshot unusable; trying an older one");
                match error {
                    LoadError::Storage(StorageError::Corrupt { .. }) => {
                        snapshots
                            .quarantine(*id)
                            .map_err(|e| StartError::Storage(e.to_string()))?
                    }
                    LoadError::Unloadable(..) => {
                        intact_but_unloadable.get_or_insert(error.to_string());
                    }
                    // An I/O error may be passing: that file stays where it is.
                    LoadError::Storage(_) => {}
                }
            }
        }
    }
    if let Some(error) = intact_but_unloadable {
        return Err(StartError::Storage(error));
    }
    if !ids.is_empty() {
        // Only safe if the log still starts at index 1; Raft::new refuses a log with a
        // gap, so a compacted log makes the start fail instead of losing state.
        tracing::warn!("no raft snapshot is usable; rebuilding the state from the log alone");
    }
    Ok((None, Store::new()))
}
