//! The façade the edges (HTTP, DNS, agent wiring) use to talk to a server's Raft group:
//! propose commands, read the published view, and see Raft status; and the wiring that
//! starts LogStore, RaftCore and Fsm.

use crate::errors::{MembershipError, StartError, WriteError};
use crate::events::{announce_leadership, EventBus, ServerEvent};
use crate::faults::FaultRules;
use crate::fsm::{Fsm, SnapshotPolicy};
use crate::log_store::{
    FileBackend, FileOptions, LogBackend, LogStore, MemoryBackend, Recovered, StallingBackend,
};
use crate::peer_net::{PeerNet, RaftInbox};
use crate::raft_core::{
    BootstrapWith, ChangeMembers, CoreLimits, PersistDone, PersistNotices, Propose, RaftCore,
    ReadIndex, ReadMembers, Shutdown, MAX_PENDING_PROPOSALS,
};
use crate::raft_members::RaftMembers;
use crate::read_view::ReadView;
use crate::recovery::load_newest_snapshot;
use crate::snapshot_sender::SnapshotSendOptions;
use crate::snapshot_store::{FileSnapshotStore, MemorySnapshotStore, SnapshotBackend};
use crate::status::{RaftStatus, StatusCell};
use actix::prelude::*;
use protocol::codec;
use protocol::ids::ServerId;
use protocol::raft::{CacheBudget, ConfigChange, Raft, RaftConfig, RaftTiming};
use protocol::store::{Command, CommandResult};
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
    /// Election timeout and heartbeat interval (from Consul's
    /// `performance.raft_multiplier`, or given explicitly).
    pub raft_timing: RaftTiming,
    /// Take a snapshot once this many entries were applied since the last one
    /// (Consul's `raft_snapshot_threshold`, default [`DEFAULT_SNAPSHOT_THRESHOLD`]);
    /// 0 turns snapshots (and so log compaction) off.
    pub snapshot_threshold: u64,
    /// Entries kept in the log below each snapshot, so slightly lagging followers can
    /// still catch up from the log (Consul's `raft_trailing_logs`, default
    /// [`DEFAULT_TRAILING_LOGS`]).
    pub trailing_logs: u64,
    /// Budget of the Raft log cache (`RaftConfig::log_cache_bytes`, `_entries`): the
    /// entries held whole in memory, and the tail of the log a restart reads whole
    /// (`raft_log_cache_mb`, `raft_log_cache_entries`).
    pub log_cache: CacheBudget,
}

/// Consul's default `raft_snapshot_threshold`.
pub const DEFAULT_SNAPSHOT_THRESHOLD: u64 = 16384;
/// Consul's default `raft_trailing_logs`.
pub const DEFAULT_TRAILING_LOGS: u64 = 10240;

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
    /// Where the server port hands Raft messages from other servers.
    raft_inbox: RaftInbox,
    /// The Raft state recovered at start was not empty (a log, a snapshot or a term).
    recovered_raft_state: bool,
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
    /// Chunk size (and, in tests, pace) of snapshots sent to followers.
    pub(crate) snapshot_send: SnapshotSendOptions,
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
            snapshot_send: SnapshotSendOptions::default(),
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

    /// `start` for a server of a cluster: its Raft traffic to other servers obeys
    /// `faults` (per peer IP, as the rest of the server port does).
    pub async fn start_with_faults(
        opts: ServerOptions,
        faults: FaultRules,
    ) -> Result<ServerHandle, StartError> {
        Self::open_and_start_with_faults(opts, Limits::default(), faults)
    }

    /// `start` with explicit limits.
    pub(crate) fn open_and_start(
        opts: ServerOptions,
        limits: Limits,
    ) -> Result<ServerHandle, StartError> {
        Self::open_and_start_with_faults(opts, limits, FaultRules::default())
    }

    pub(crate) fn open_and_start_with_faults(
        opts: ServerOptions,
        limits: Limits,
        faults: FaultRules,
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
                    cache: opts.log_cache,
                };
                let (b, r) = FileBackend::open(&dir.join("raft"), file_opts).map_err(storage)?;
                let snaps = FileSnapshotStore::open(&dir.join("raft").join("snapshots"))
                    .map_err(storage)?;
                (Box::new(b), r, Arc::new(snaps))
            }
            None => (
                Box::new(MemoryBackend::new().with_budget(opts.log_cache)),
                Recovered::default(),
                Arc::new(MemorySnapshotStore::new()),
            ),
        };
        // Fault injection may slow this server's disk (a no-op unless asked for).
        let backend = Box::new(StallingBackend::new(backend, faults.clone()));
        Self::start_inner(opts, backend, recovered, snapshots, limits, faults)
    }

    /// `start` with already opened storage and explicit limits (tests use a backend
    /// they can stall or break, or storage they reopen).
    #[cfg(test)]
    pub(crate) fn start_with(
        opts: ServerOptions,
        backend: Box<dyn LogBackend>,
        recovered: Recovered,
        snapshots: Arc<dyn SnapshotBackend>,
        limits: Limits,
    ) -> Result<ServerHandle, StartError> {
        Self::start_inner(
            opts,
            backend,
            recovered,
            snapshots,
            limits,
            FaultRules::default(),
        )
    }

    fn start_inner(
        opts: ServerOptions,
        backend: Box<dyn LogBackend>,
        recovered: Recovered,
        snapshots: Arc<dyn SnapshotBackend>,
        limits: Limits,
        faults: FaultRules,
    ) -> Result<ServerHandle, StartError> {
        if opts.server_id.is_empty() {
            return Err(StartError::Config("server id must not be empty".into()));
        }
        let (snapshot_meta, store) =
            load_newest_snapshot(snapshots.as_ref(), limits.max_snapshot_record_bytes)?;
        let id = ServerId(opts.server_id.clone());
        let cfg = RaftConfig {
            log_cache_bytes: opts.log_cache.max_bytes,
            log_cache_entries: opts.log_cache.max_entries,
            ..RaftConfig::with_timing(id, opts.raft_timing)
        };
        let rng = protocol::rng::seeded(rand::random());
        let epoch = Instant::now();
        let mut raft = Raft::new(
            cfg,
            recovered.hard_state,
            snapshot_meta.clone(),
            recovered.log,
            rng,
            0,
        )
        .map_err(|e| StartError::Storage(format!("recovered raft log is inconsistent: {e}")))?;
        let recovered_raft_state =
            raft.last_log_index().0 > 0 || raft.term().0 > 0 || !raft.voters().is_empty();
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
        // On RaftCore's thread: see the Fsm's module docs.
        let fsm = fsm.start();

        let events = EventBus::default();
        actix::spawn(announce_leadership(
            events.clone(),
            events.subscribe(),
            status.clone(),
            applied_rx.clone(),
        ));
        let peer_net = PeerNet::new(
            ServerId(opts.server_id.clone()),
            opts.server_addr.clone(),
            faults,
            snapshots.clone(),
            limits.snapshot_send.clone(),
        );
        let (raft_inbox, inbox) = RaftInbox::channel();
        let done_addr = addr.clone();
        let notices = PersistNotices::new();
        let left = notices.clone();
        let log_store = LogStore::spawn(backend, snapshots, move |result| match result {
            Ok(id) if !left.durable(id) => {} // RaftCore takes it with its next input
            result => done_addr.do_send(PersistDone(result)),
        })
        .map_err(|e| StartError::Storage(e.to_string()))?;
        ctx.run(
            RaftCore::new(
                raft,
                log_store,
                fsm,
                status.clone(),
                epoch,
                CoreLimits {
                    max_pending: limits.max_pending_proposals,
                    trailing_logs: opts.trailing_logs,
                },
            )
            .with_persist_notices(notices)
            .with_self_addr(opts.server_addr.clone())
            .with_events(events.clone())
            .with_peers(peer_net, inbox),
        );
        Ok(ServerHandle {
            view,
            raft: addr,
            status,
            applied: applied_rx,
            propose_timeout: limits.propose_timeout,
            max_command_bytes: limits.max_command_bytes,
            events,
            raft_inbox,
            recovered_raft_state,
        })
    }

    /// Whether this server started with Raft state from its data dir (then
    /// `-bootstrap-expect` never bootstraps it again).
    pub fn recovered_raft_state(&self) -> bool {
        self.recovered_raft_state
    }

    /// Where the server port delivers Raft messages from other servers.
    pub fn raft_inbox(&self) -> RaftInbox {
        self.raft_inbox.clone()
    }

    /// `-bootstrap-expect`: start a new cluster with these voters (id, `ip:port`) if
    /// this server's Raft state is empty (no log, no snapshot, term 0). Every server of
    /// the new cluster must be given the same set. Whether it bootstrapped.
    pub async fn bootstrap_with(&self, voters: Vec<(String, String)>) -> bool {
        let voters = voters
            .into_iter()
            .map(|(id, addr)| (ServerId(id), addr))
            .collect();
        let (reply, answer) = oneshot::channel();
        if self
            .raft
            .send(BootstrapWith { voters, reply })
            .await
            .is_err()
        {
            return false;
        }
        answer.await.unwrap_or(false)
    }

    /// Replicate a command and wait until it is applied; the result is the state
    /// machine's answer. Never answers success before the entry is applied. Waiting
    /// longer than the propose timeout answers [`WriteError::OutcomeUnknown`].
    ///
    /// Commands that need the time at apply (locks, session invalidations: lock-delay)
    /// are stamped here with this server's wall clock ([`Command::stamped`]): the store
    /// never reads a clock, so every replica applies them alike.
    pub async fn propose(&self, cmd: Command) -> Result<CommandResult, WriteError> {
        let cmd = cmd.stamped(unix_now_ms());
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
            // `try_send` when the mailbox has room: `send` would also wake this task
            // once the core has taken the proposal, a thread switch in the middle of
            // the write for nothing (the answer comes on `reply`). A full mailbox
            // still waits for room.
            match self.raft.try_send(Propose { data, reply }) {
                Ok(()) => {}
                Err(SendError::Full(propose)) => self
                    .raft
                    .send(propose)
                    .await
                    .map_err(|_| WriteError::ShuttingDown)?,
                Err(SendError::Closed(_)) => return Err(WriteError::ShuttingDown),
            }
            answer.await.map_err(|_| WriteError::ShuttingDown)?
        };
        tokio::time::timeout(self.propose_timeout, wait)
            .await
            .map_err(|_| {
                let waited = self.propose_timeout;
                WriteError::OutcomeUnknown(format!("not applied within {waited:?}"))
            })?
    }

    /// ReadIndex: confirm with a quorum that this server still leads, for a read that
    /// arrived before this call. The answer is the index the state machine must have
    /// applied before the read may be answered; None when this server cannot confirm
    /// it (not the leader, leadership lost meanwhile, stopped).
    pub async fn read_index(&self) -> Option<u64> {
        let (reply, answer) = oneshot::channel();
        self.raft.send(ReadIndex { reply }).await.ok()?;
        answer.await.ok().flatten()
    }

    /// Whether this server leads and holds the leader lease at this instant (default
    /// reads then need no ReadIndex round): two atomic loads.
    pub(crate) fn lease_held(&self) -> bool {
        self.status.leadership().is_leader && self.status.lease_held()
    }

    pub fn view(&self) -> &ReadView {
        &self.view
    }

    /// The Raft configuration in effect here and, on the leader, each member's
    /// replication. `None` once the server has stopped.
    pub async fn raft_members(&self) -> Option<RaftMembers> {
        self.raft.send(ReadMembers).await.ok()
    }

    /// (Leader) Change the Raft membership by one server and wait until the change is
    /// committed. Refusals say why (not the leader: `WriteError::NoLeader`); a
    /// `Timeout` after waiting leaves the outcome unknown, as for `propose`.
    pub async fn change_membership(&self, change: ConfigChange) -> Result<(), MembershipError> {
        let (reply, answer) = oneshot::channel();
        let wait = async {
            self.raft
                .send(ChangeMembers { change, reply })
                .await
                .map_err(|_| WriteError::ShuttingDown)?;
            answer.await.map_err(|_| WriteError::ShuttingDown)?
        };
        tokio::time::timeout(self.propose_timeout, wait)
            .await
            .map_err(|_| WriteError::Timeout)?
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

    /// Leadership for query meta, without a lock (see `StatusCell::leadership`).
    pub(crate) fn leadership(&self) -> crate::status::Leadership {
        self.status.leadership()
    }

    /// Test probe: (first log index held in memory, entries held in memory).
    #[cfg(test)]
    pub(crate) async fn log_stats(&self) -> (u64, usize) {
        self.raft
            .send(crate::raft_core::LogStats)
            .await
            .unwrap_or_default()
    }

    /// Test probe: (entries in the Raft core's log cache, first cached index).
    #[cfg(test)]
    pub(crate) async fn cache_stats(&self) -> (usize, u64) {
        self.raft
            .send(crate::raft_core::CacheStats)
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

/// Wall-clock milliseconds since the Unix epoch (0 if the clock is before it): the time
/// a leader stamps on the commands it proposes. Wall clock, not monotonic, because the
/// stamp outlives this process: a later leader compares its own time with it.
pub fn unix_now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
