//! The local-state actor: one task owns the agent's `LocalState` and is the only writer
//! of its services and checks. Inputs: commands from the edges, probe reports, its own
//! timers (TTL expiry, the reaper, the periodic full sync, coalesced outputs, retries)
//! and the outcome of the sync pass it runs (one at a time, on its own task, so a
//! leaderless cluster never holds registrations up).
//!
//! Anti-entropy: a change that moves a status (or a registration) syncs at once; an
//! output-only change waits up to `check_update_interval` (Consul's coalescing); a full
//! sync also runs every `next_full_sync_ms` (Consul's interval scaled by cluster size,
//! staggered) to repair drift. A failed pass is retried with capped backoff.

use super::handle::{Command, LocalAgent, LocalView, MAILBOX_CAPACITY};
use super::persist;
use super::probes::{ProbeReportIn, Probes};
use super::sync::{sync_once, SyncOutcome};
use actors::Api;
use protocol::api::RequestError;
use protocol::health::definition::{CheckRules, Origin};
use protocol::health::local::LocalState;
use protocol::health::sync::next_full_sync_ms;
use protocol::store::Node;
use rand::Rng;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tokio::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// Probe reports queued at most (a burst beyond waits in the runner).
pub const PROBE_REPORT_CAPACITY: usize = 4096;
/// Consul's `check_reap_interval`.
pub const REAP_INTERVAL_MS: u64 = 30_000;
/// Consul's `check_update_interval`: how long an output-only change may wait.
pub const CHECK_UPDATE_INTERVAL_MS: u64 = 5 * 60_000;
/// Services and checks one agent holds at most. With the byte limit on registrations
/// and the 4 KiB output cap this bounds the data-dir file a restart must load.
pub const MAX_LOCAL_SERVICES: usize = 8_192;
pub const MAX_LOCAL_CHECKS: usize = 8_192;
const RETRY_INITIAL_MS: u64 = 500;
const RETRY_MAX_MS: u64 = 5_000;

pub struct LocalOptions {
    /// This agent's node as the catalog should hold it (address, meta, tagged addresses).
    pub node: Node,
    pub datacenter: String,
    pub rules: CheckRules,
    /// `None` (-dev without a data dir): registrations live in memory only.
    pub state_file: Option<PathBuf>,
    /// Base of the full-sync interval (Consul's 1 min; tests shorten it).
    pub full_sync_base_ms: u64,
    pub check_update_interval_ms: u64,
    pub reap_interval_ms: u64,
    /// The cluster's size now (members known to gossip), for the interval's scaling.
    pub cluster_size: Arc<dyn Fn() -> usize + Send + Sync>,
}

/// Load what the data dir holds and start the actor on the current actix System.
pub fn start(api: Api, options: LocalOptions) -> Result<LocalAgent, String> {
    let epoch = Instant::now();
    let mut state = LocalState::new(&options.node.node);
    if let Some(path) = &options.state_file {
        if let Some(saved) = persist::load(path)? {
            info!(
                "restored {} services and {} checks from {}",
                saved.services.len(),
                saved.checks.len(),
                path.display()
            );
            state.restore(saved, 0);
        }
    }
    let (commands_tx, commands) = mpsc::channel(MAILBOX_CAPACITY);
    let (reports_tx, reports) = mpsc::channel(PROBE_REPORT_CAPACITY);
    let (sync_tx, sync_done) = mpsc::channel(4);
    let (view_tx, view) = watch::channel(Arc::new(LocalView::default()));
    let handle = LocalAgent {
        commands: commands_tx,
        view,
        node: options.node.node.clone(),
        rules: options.rules,
    };
    let seed: u64 = rand::rng().random();
    // Its own thread: persisting fsyncs, and a burst of registrations or probe reports
    // must not delay the Raft and gossip actors of the main arbiter.
    let arbiter = actix::Arbiter::new();
    let started = arbiter.spawn_fn(move || {
        let mut probes = Probes::start(reports_tx, seed);
        probes.apply(state.take_probe_commands());
        let mut actor = Actor {
            state,
            api,
            epoch,
            view_tx,
            version: 0,
            probes,
            dirty: true,
            syncing: false,
            sync_tx,
            retry_at: None,
            backoff_ms: RETRY_INITIAL_MS,
            next_full_sync: epoch,
            next_reap: epoch + Duration::from_millis(options.reap_interval_ms),
            output_pending: BTreeMap::new(),
            last_error: None,
            options,
        };
        actor.publish();
        actix::spawn(actor.run(commands, reports, sync_done));
    });
    if !started {
        return Err("could not start the local state's thread".to_string());
    }
    Ok(handle)
}

struct Actor {
    state: LocalState,
    api: Api,
    epoch: Instant,
    view_tx: watch::Sender<Arc<LocalView>>,
    version: u64,
    probes: Probes,
    /// The catalog may differ from the local state: a pass is due.
    dirty: bool,
    syncing: bool,
    sync_tx: mpsc::Sender<Result<SyncOutcome, RequestError>>,
    retry_at: Option<Instant>,
    backoff_ms: u64,
    next_full_sync: Instant,
    next_reap: Instant,
    /// Checks with an output-only change not yet synced, since when (ms).
    output_pending: BTreeMap<String, u64>,
    /// The last pass's error, so a retry failing the same way logs quietly.
    last_error: Option<String>,
    options: LocalOptions,
}

impl Actor {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        mut reports: mpsc::Receiver<ProbeReportIn>,
        mut sync_done: mpsc::Receiver<Result<SyncOutcome, RequestError>>,
    ) {
        loop {
            self.maybe_sync();
            let wake = self.next_wake();
            tokio::select! {
                command = commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => return,
                },
                Some(report) = reports.recv() => self.on_report(report),
                Some(outcome) = sync_done.recv() => self.on_synced(outcome),
                _ = tokio::time::sleep_until(wake) => self.on_timer(),
            }
        }
    }

    fn next_wake(&self) -> Instant {
        let mut wake = self.next_full_sync;
        if let Some(ms) = self.state.next_deadline_ms() {
            wake = wake.min(self.at(ms));
        }
        if let Some(retry) = self.retry_at {
            wake = wake.min(retry);
        }
        if let Some(since) = self.output_pending.values().min() {
            wake = wake.min(self.at(since.saturating_add(self.options.check_update_interval_ms)));
        }
        if self.state.has_reapable_checks() {
            wake = wake.min(self.next_reap);
        }
        wake
    }

    fn on_command(&mut self, command: Command) {
        let now = self.now_ms();
        match command {
            Command::RegisterService {
                def,
                replace_existing_checks,
                reply,
            } => {
                let before = self.state.clone();
                self.state
                    .add_service(def, Origin::Remote, replace_existing_checks, now);
                let _ = reply.send(self.registered(before, Ok(())));
            }
            Command::DeregisterService { id, reply } => {
                let r = if self.state.remove_service(&id) {
                    self.changed(true)
                } else {
                    Err(protocol::health::local::unknown_service(&id))
                };
                let _ = reply.send(r);
            }
            Command::RegisterCheck { spec, reply } => {
                let before = self.state.clone();
                let outcome = self.state.add_check(spec, Origin::Remote, now);
                let _ = reply.send(self.registered(before, outcome));
            }
            Command::DeregisterCheck { id, reply } => {
                let r = if self.state.remove_check(&id) {
                    self.changed(true)
                } else {
                    Err(protocol::health::local::unknown_check(&id))
                };
                let _ = reply.send(r);
            }
            Command::UpdateTtl {
                id,
                status,
                output,
                reply,
            } => {
                let r = match self.state.update_ttl(&id, status, output, now) {
                    Ok(Some(status_changed)) => {
                        if !status_changed {
                            self.output_pending.entry(id).or_insert(now);
                        }
                        // A TTL check's status is persisted, as Consul's check state is.
                        self.changed(status_changed)
                    }
                    Ok(None) => Ok(()),
                    Err(e) => Err(e),
                };
                let _ = reply.send(r);
            }
            Command::NodeMaintenance {
                enable,
                reason,
                reply,
            } => {
                self.state.set_node_maintenance(enable, &reason);
                let _ = reply.send(self.changed(true));
            }
            Command::ServiceMaintenance {
                id,
                enable,
                reason,
                reply,
            } => {
                let r = self
                    .state
                    .set_service_maintenance(&id, enable, &reason)
                    .and_then(|()| self.changed(true));
                let _ = reply.send(r);
            }
            Command::ReplaceLocal {
                services,
                checks,
                reply,
            } => {
                let before = self.state.clone();
                let outcome = self.state.replace_local(services, checks, now);
                let _ = reply.send(self.registered(before, outcome));
            }
        }
    }

    /// After a registration: kept only if it succeeded and the state stays within its
    /// limits (so a restart can always load what was saved); otherwise the state goes
    /// back to `before`, as if the request had never come.
    fn registered(
        &mut self,
        before: LocalState,
        outcome: Result<(), RequestError>,
    ) -> Result<(), RequestError> {
        let within = outcome.and_then(|()| {
            let (services, checks) = (self.state.service_count(), self.state.check_count());
            if services > MAX_LOCAL_SERVICES || checks > MAX_LOCAL_CHECKS {
                return Err(RequestError::TooLarge(format!(
                    "Too many services or checks on this agent: {services} services and \
                     {checks} checks (limits {MAX_LOCAL_SERVICES} and {MAX_LOCAL_CHECKS})"
                )));
            }
            let bytes = persist::encode(&self.state.persisted()).len();
            if bytes > persist::MAX_REGISTERED_BYTES {
                return Err(RequestError::TooLarge(format!(
                    "The agent's registrations would take {bytes} bytes (limit {})",
                    persist::MAX_REGISTERED_BYTES
                )));
            }
            Ok(())
        });
        match within {
            Ok(()) => self.changed(true),
            Err(e) => {
                self.state = before;
                Err(e)
            }
        }
    }

    /// After a change: probes follow, the state is persisted and published, and a sync
    /// is due at once (`sync_now`) or with the coalesced outputs.
    fn changed(&mut self, sync_now: bool) -> Result<(), RequestError> {
        self.probes.apply(self.state.take_probe_commands());
        let saved = self.persist();
        self.publish();
        if sync_now {
            self.dirty = true;
        }
        saved
    }

    fn persist(&self) -> Result<(), RequestError> {
        let Some(path) = &self.options.state_file else {
            return Ok(());
        };
        let bytes = persist::encode(&self.state.persisted());
        persist::save_bytes(path, &bytes).map_err(|e| {
            warn!(
                "failed to persist the local state to {}: {e}",
                path.display()
            );
            RequestError::internal(format!(
                "failed to persist the local state to {}: {e}",
                path.display()
            ))
        })
    }

    fn publish(&mut self) {
        self.version += 1;
        let view = LocalView {
            node: self.state.node().to_string(),
            datacenter: self.options.datacenter.clone(),
            services: self.state.catalog_services(),
            checks: self.state.catalog_checks(),
            version: self.version,
        };
        self.view_tx.send_replace(Arc::new(view));
    }

    fn on_report(&mut self, report: ProbeReportIn) {
        let now = self.now_ms();
        match self
            .state
            .on_probe(&report.check_id, report.generation, report.result, now)
        {
            None => {}
            Some(true) => {
                self.publish();
                self.dirty = true;
            }
            Some(false) => {
                self.publish();
                self.output_pending.entry(report.check_id).or_insert(now);
            }
        }
    }

    fn on_timer(&mut self) {
        let now = self.now_ms();
        let instant = Instant::now();
        if self.state.on_tick(now) {
            let _ = self.changed(true);
        }
        if self.state.has_reapable_checks() && instant >= self.next_reap {
            self.next_reap = instant + Duration::from_millis(self.options.reap_interval_ms);
            let reaped = self.state.reap(now);
            if !reaped.is_empty() {
                for id in &reaped {
                    info!("service {id:?} deregistered: critical for longer than its DeregisterCriticalServiceAfter");
                }
                let _ = self.changed(true);
            }
        }
        let interval = self.options.check_update_interval_ms;
        if self
            .output_pending
            .values()
            .any(|since| now >= since.saturating_add(interval))
        {
            self.dirty = true;
        }
        if instant >= self.next_full_sync {
            self.dirty = true;
            // Pushed on now; a completed pass sets the real next time.
            self.next_full_sync = instant + Duration::from_millis(self.options.full_sync_base_ms);
        }
        if self.retry_at.is_some_and(|t| instant >= t) {
            self.retry_at = None;
        }
    }

    fn maybe_sync(&mut self) {
        if !self.dirty || self.syncing || self.retry_at.is_some() {
            return;
        }
        self.dirty = false;
        self.syncing = true;
        let api = self.api.clone();
        let node = self.options.node.clone();
        let services = self.state.catalog_services();
        let checks = self.state.catalog_checks();
        let now = self.now_ms();
        let interval = self.options.check_update_interval_ms;
        let pending = self.output_pending.clone();
        let done = self.sync_tx.clone();
        actix::spawn(async move {
            let due = move |id: &str| {
                pending
                    .get(id)
                    .is_some_and(|since| now >= since.saturating_add(interval))
            };
            let outcome = sync_once(&api, &node, &services, &checks, &due).await;
            let _ = done.send(outcome).await;
        });
    }

    fn on_synced(&mut self, outcome: Result<SyncOutcome, RequestError>) {
        self.syncing = false;
        match outcome {
            Ok(outcome) => {
                if outcome.writes > 0 {
                    debug!("anti-entropy: {} catalog writes", outcome.writes);
                }
                self.backoff_ms = RETRY_INITIAL_MS;
                if self.last_error.take().is_some() {
                    info!("anti-entropy: the local state is in sync again");
                }
                let now = self.now_ms();
                let mut pending = BTreeMap::new();
                for id in outcome.deferred_outputs {
                    let since = self.output_pending.get(&id).copied().unwrap_or(now);
                    pending.insert(id, since);
                }
                self.output_pending = pending;
                let size = (self.options.cluster_size)() as u64;
                let fraction: f64 = rand::rng().random();
                let wait = next_full_sync_ms(self.options.full_sync_base_ms, size, fraction);
                self.next_full_sync = Instant::now() + Duration::from_millis(wait);
            }
            Err(e) => {
                let text = e.to_string();
                if self.last_error.as_deref() == Some(text.as_str()) {
                    debug!("anti-entropy: still failing: {text}");
                } else {
                    warn!(
                        "anti-entropy: syncing the local state failed: {text}; retrying with backoff"
                    );
                }
                self.last_error = Some(text);
                self.dirty = true;
                self.retry_at = Some(Instant::now() + Duration::from_millis(self.backoff_ms));
                self.backoff_ms = (self.backoff_ms * 2).min(RETRY_MAX_MS);
            }
        }
    }
}
