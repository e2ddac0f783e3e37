//! The probe runner actor: one task per running check, reports filtered by generation.

use super::probes::{run_probe, HttpClients};
use super::stagger::Stagger;
use actix::prelude::*;
use protocol::health::{CheckSpec, ProbeResult, MIN_INTERVAL_MS};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::time::{Instant, MissedTickBehavior};

/// Probes running at once when the options do not say (each is a socket or a process).
pub const DEFAULT_MAX_CONCURRENT_PROBES: usize = 256;

/// A probe's limit when its spec carries none (Consul's default check timeout).
const DEFAULT_TIMEOUT_MS: u64 = 10_000;

#[derive(Debug, Clone)]
pub struct ProbeOptions {
    /// Seeds the first-run offsets (tests fix it; the agent draws it from the OS).
    pub seed: u64,
    /// Probes in flight at most; more wait for a slot.
    pub max_concurrent: usize,
}

impl Default for ProbeOptions {
    fn default() -> ProbeOptions {
        ProbeOptions {
            seed: rand::random(),
            max_concurrent: DEFAULT_MAX_CONCURRENT_PROBES,
        }
    }
}

/// Start running `spec`, or replace the running check with the same id (its timer and
/// any probe in flight are cancelled). Kinds that are not probed stop the check.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct StartProbe {
    pub spec: CheckSpec,
    /// Echoed in every report of this spec, so the receiver can tell them from older ones.
    pub generation: u64,
}

/// Stop running a check; no report of it is sent after this is handled.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct StopProbe {
    pub check_id: String,
}

/// One probe's result, sent to the `reports` recipient.
#[derive(Message, Debug, Clone, PartialEq, Eq)]
#[rtype(result = "()")]
pub struct ProbeReport {
    pub check_id: String,
    pub generation: u64,
    pub result: ProbeResult,
}

/// A check's task finished a probe (internal: filtered by generation before forwarding).
#[derive(Message)]
#[rtype(result = "()")]
struct ProbeDone(ProbeReport);

/// A running check: its generation and the task that probes it.
struct Running {
    generation: u64,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        // Dropping the task's future cancels its timer and any probe in flight (a
        // script's process group is killed by the probe's guard).
        self.task.abort();
    }
}

pub struct ProbeRunner {
    reports: Recipient<ProbeReport>,
    stagger: Stagger,
    slots: Arc<Semaphore>,
    clients: HttpClients,
    running: HashMap<String, Running>,
}

impl ProbeRunner {
    pub fn new(reports: Recipient<ProbeReport>, options: ProbeOptions) -> ProbeRunner {
        ProbeRunner {
            reports,
            stagger: Stagger::new(options.seed),
            slots: Arc::new(Semaphore::new(options.max_concurrent.max(1))),
            clients: HttpClients::default(),
            running: HashMap::new(),
        }
    }
}

impl ProbeRunner {
    /// Start a runner on a thread (arbiter) of its own and return its address. Probes
    /// are timed on the thread that runs them: on a thread shared with busy actors, a
    /// probe's timeout can fire late, or a burst of work there reads as probe timeouts.
    /// The thread lives as long as the process (or until `System` stops).
    pub fn start_on_own_thread(
        reports: Recipient<ProbeReport>,
        options: ProbeOptions,
    ) -> Addr<ProbeRunner> {
        let arbiter = Arbiter::new();
        ProbeRunner::start_in_arbiter(&arbiter.handle(), move |_| {
            ProbeRunner::new(reports, options)
        })
    }
}

impl Actor for ProbeRunner {
    type Context = Context<Self>;

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        self.running.clear();
    }
}

impl Handler<StartProbe> for ProbeRunner {
    type Result = ();

    fn handle(&mut self, msg: StartProbe, ctx: &mut Self::Context) {
        let StartProbe { spec, generation } = msg;
        // Replacing: the old task goes first, so its probe cannot report as the new one.
        self.running.remove(&spec.id);
        if !spec.kind.is_probed() {
            tracing::warn!(check = %spec.id, kind = spec.kind.type_name(), "not a probed check; not run");
            return;
        }
        let interval = Duration::from_millis(spec.interval_ms.max(MIN_INTERVAL_MS));
        let first_offset =
            Duration::from_millis(self.stagger.first_offset_ms(interval.as_millis() as u64));
        let timeout = Duration::from_millis(match spec.timeout_ms {
            0 => DEFAULT_TIMEOUT_MS,
            ms => ms,
        });
        let check = CheckTask {
            http: self.clients.for_spec(&spec),
            spec,
            generation,
            interval,
            first_offset,
            timeout,
            slots: self.slots.clone(),
            runner: ctx.address(),
        };
        let id = check.spec.id.clone();
        let task = actix::spawn(check.run());
        self.running.insert(id, Running { generation, task });
    }
}

impl Handler<StopProbe> for ProbeRunner {
    type Result = ();

    fn handle(&mut self, msg: StopProbe, _ctx: &mut Self::Context) {
        self.running.remove(&msg.check_id);
    }
}

impl Handler<ProbeDone> for ProbeRunner {
    type Result = ();

    fn handle(&mut self, ProbeDone(report): ProbeDone, _ctx: &mut Self::Context) {
        let current = self
            .running
            .get(&report.check_id)
            .is_some_and(|running| running.generation == report.generation);
        if current {
            self.reports.do_send(report);
        }
    }
}

/// One check's loop: everything its task needs, owned.
struct CheckTask {
    spec: CheckSpec,
    generation: u64,
    interval: Duration,
    first_offset: Duration,
    timeout: Duration,
    http: Result<reqwest::Client, String>,
    slots: Arc<Semaphore>,
    runner: Addr<ProbeRunner>,
}

impl CheckTask {
    async fn run(self) {
        let mut ticks = tokio::time::interval_at(Instant::now() + self.first_offset, self.interval);
        // A probe that overran its interval makes the due tick(s) skipped, not bunched.
        ticks.set_missed_tick_behavior(MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            let Ok(_slot) = self.slots.acquire().await else {
                return; // the semaphore is never closed; nothing to run without it
            };
            // Boxed so that an idle task (most of them, most of the time) stays small.
            let result = Box::pin(run_probe(&self.spec, self.timeout, &self.http)).await;
            self.runner.do_send(ProbeDone(ProbeReport {
                check_id: self.spec.id.clone(),
                generation: self.generation,
                result,
            }));
        }
    }
}
