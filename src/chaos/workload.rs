//! The workload: worker threads doing seeded KV operations through one node each and
//! recording every request ([`super::history`]).
//!
//! Worker `i` goes through node `i % nodes` and draws its operations from its own
//! random stream (derived from the run seed and `i`), so a seed fixes every worker's
//! choices. Each op is one of: a default-mode, consistent or stale get; a put; a
//! read-then-CAS (a get, then a CAS on the version it returned, or on "absent"); a
//! delete; a lock-style sequence on `chaos/lock<j>` (acquire by CAS from absent or
//! from a free value to `owner-w<i>-<seq>`, one or two puts, release by CAS back to a
//! fresh free value); or a write of a never-overwritten ledger key
//! `chaos/ledger/w<i>/<seq>`, which must exist on every server at the end if it was
//! acknowledged. Every written value is unique (`w<i>-<seq>`, `owner-w<i>-<seq>`,
//! `free-w<i>-<seq>`), which is what makes version CAS equal to the checker's value CAS.

use rand::Rng;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::history::{Outcome, Record, Request, LEDGER_PREFIX, PREFIX};
use super::target::{Cluster, KvClient, OpError, ReadMode, Versioned};

/// The shape of a workload.
#[derive(Debug, Clone)]
pub struct WorkloadSpec {
    pub workers: usize,
    /// Shared keys `chaos/k<i>`.
    pub keys: usize,
    pub think_time: Duration,
    pub request_timeout: Duration,
    pub seed: u64,
}

impl WorkloadSpec {
    /// Lock keys `chaos/lock<j>`: one per eight shared keys, at least one.
    pub fn locks(&self) -> usize {
        (self.keys / 8).max(1)
    }

    /// Every key the checker sees: the shared keys, then the lock keys.
    pub fn checked_keys(&self) -> Vec<String> {
        (0..self.keys)
            .map(data_key)
            .chain((0..self.locks()).map(lock_key))
            .collect()
    }
}

pub fn data_key(i: usize) -> String {
    format!("{PREFIX}k{i}")
}

pub fn lock_key(j: usize) -> String {
    format!("{PREFIX}lock{j}")
}

/// A seed for stream `stream` of a run seeded with `seed` (SplitMix64's finaliser, so
/// neighbouring streams are unrelated).
pub fn stream_seed(seed: u64, stream: u64) -> u64 {
    let mut z = seed.wrapping_add(stream.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// One operation a worker chose (keys and locks by number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    Get(ReadMode, usize),
    Put(usize),
    ReadThenCas(usize),
    Delete(usize),
    /// Take the lock, put to these keys, release it.
    Lock {
        lock: usize,
        writes: Vec<usize>,
    },
    Ledger,
}

/// A worker's next choice. Every call takes the same number of draws from `rng`
/// whatever it chooses, and nothing else draws from a worker's stream, so a worker's
/// n-th choice depends on the seed alone, never on the answers it got.
pub fn draw(rng: &mut impl Rng, keys: usize, locks: usize) -> Choice {
    let keys = keys.max(1);
    let key = rng.random_range(0..keys);
    let roll = rng.random_range(0..100u32);
    let lock = rng.random_range(0..locks.max(1));
    let two_writes = rng.random_bool(0.5);
    let second = rng.random_range(0..keys);
    match roll {
        0..20 => Choice::Get(ReadMode::Default, key),
        20..30 => Choice::Get(ReadMode::Consistent, key),
        30..34 => Choice::Get(ReadMode::Stale, key),
        34..54 => Choice::Put(key),
        54..74 => Choice::ReadThenCas(key),
        74..80 => Choice::Delete(key),
        80..92 => Choice::Lock {
            lock,
            writes: if two_writes {
                vec![key, second]
            } else {
                vec![key]
            },
        },
        _ => Choice::Ledger,
    }
}

/// What the workers share with the run: the clock, the stop flag and live counters.
pub struct Shared {
    pub epoch: Instant,
    stop: AtomicBool,
    ops: AtomicU64,
    errors: AtomicU64,
}

impl Shared {
    pub fn new(epoch: Instant) -> Shared {
        Shared {
            epoch,
            stop: AtomicBool::new(false),
            ops: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        }
    }

    /// µs since the run started.
    pub fn now_us(&self) -> u64 {
        self.epoch.elapsed().as_micros() as u64
    }

    /// Operations finished so far, and how many of them failed.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.ops.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

/// What the workers recorded.
#[derive(Debug, Default)]
pub struct WorkloadLog {
    /// Every request, by call time.
    pub records: Vec<Record>,
    /// Acknowledged ledger writes, (key, value).
    pub ledger_acked: Vec<(String, String)>,
    /// Workers that could not start or ended by a panic (their records are lost).
    pub crashed_workers: usize,
}

/// Running workers; [`Workload::stop`] ends them.
pub struct Workload {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<WorkerLog>>,
    /// Workers whose thread could not be started.
    not_started: usize,
}

impl Workload {
    /// Start `spec.workers` threads against `cluster` (clients are made here, on the
    /// caller's thread, and moved into the workers).
    pub fn start(cluster: &dyn Cluster, spec: &WorkloadSpec, shared: Arc<Shared>) -> Workload {
        let nodes = cluster.nodes().len().max(1);
        let threads = (0..spec.workers)
            .map(|id| {
                let node = id % nodes;
                let client = cluster.client(node, spec.request_timeout);
                let worker = Worker::new(id, node, client, spec.clone(), shared.clone());
                std::thread::Builder::new()
                    .name(format!("chaos-w{id}"))
                    .spawn(move || worker.run())
            })
            .collect::<Vec<_>>();
        let not_started = threads.iter().filter(|t| t.is_err()).count();
        let threads = threads.into_iter().filter_map(Result::ok).collect();
        Workload {
            shared,
            threads,
            not_started,
        }
    }

    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Ask every worker to stop after its current request and collect their logs.
    pub fn stop(self) -> WorkloadLog {
        self.shared.stop.store(true, Ordering::Release);
        let mut log = WorkloadLog {
            crashed_workers: self.not_started,
            ..WorkloadLog::default()
        };
        for thread in self.threads {
            match thread.join() {
                Ok(worker) => {
                    log.records.extend(worker.records);
                    log.ledger_acked.extend(worker.ledger_acked);
                }
                Err(_) => log.crashed_workers += 1,
            }
        }
        log.records.sort_by_key(|r| (r.call_us, r.worker, r.ret_us));
        log
    }
}

#[derive(Default)]
struct WorkerLog {
    records: Vec<Record>,
    ledger_acked: Vec<(String, String)>,
}

struct Worker {
    id: usize,
    node: usize,
    client: Box<dyn KvClient>,
    spec: WorkloadSpec,
    shared: Arc<Shared>,
    rng: protocol::rng::CoreRng,
    seq: u64,
    /// Operations that failed so far (a failure is followed by [`ERROR_BACKOFF`]).
    errors: u64,
    log: WorkerLog,
}

/// Pause after an operation that failed.
const ERROR_BACKOFF: std::time::Duration = std::time::Duration::from_millis(50);

impl Worker {
    fn new(
        id: usize,
        node: usize,
        client: Box<dyn KvClient>,
        spec: WorkloadSpec,
        shared: Arc<Shared>,
    ) -> Worker {
        let rng = protocol::rng::seeded(stream_seed(spec.seed, id as u64));
        Worker {
            id,
            node,
            client,
            spec,
            shared,
            rng,
            seq: 0,
            errors: 0,
            log: WorkerLog::default(),
        }
    }

    fn run(mut self) -> WorkerLog {
        while !self.stopped() {
            let errors_before = self.errors;
            self.one_op();
            self.think();
            if self.errors > errors_before {
                // As a real client would: a node that just failed (dead, paused, cut
                // off) is not hammered, so error counts measure outages, not retry speed.
                std::thread::sleep(ERROR_BACKOFF);
            }
        }
        self.log
    }

    fn stopped(&self) -> bool {
        self.shared.stop.load(Ordering::Acquire)
    }

    fn think(&self) {
        if !self.spec.think_time.is_zero() {
            std::thread::sleep(self.spec.think_time);
        }
    }

    /// The next unique value with `prefix` (`w3-17`, `owner-w3-18` ...).
    fn fresh(&mut self, prefix: &str) -> String {
        self.seq += 1;
        format!("{prefix}w{}-{}", self.id, self.seq)
    }

    fn one_op(&mut self) {
        match draw(&mut self.rng, self.spec.keys, self.spec.locks()) {
            Choice::Get(mode, key) => {
                self.get(&data_key(key), mode);
            }
            Choice::Put(key) => {
                let value = self.fresh("");
                self.put(&data_key(key), &value);
            }
            Choice::ReadThenCas(key) => self.read_then_cas(&data_key(key)),
            Choice::Delete(key) => {
                self.delete(&data_key(key));
            }
            Choice::Lock { lock, writes } => self.lock_sequence(lock, &writes),
            Choice::Ledger => self.ledger_put(),
        }
    }

    /// A get, then a CAS on the version it returned (or on "absent").
    fn read_then_cas(&mut self, key: &str) {
        let Some(current) = self.get(key, ReadMode::Default) else {
            return;
        };
        let value = self.fresh("");
        self.cas(key, current.as_ref(), &value);
    }

    /// Acquire a lock by CAS, write one or two keys, release it by CAS.
    fn lock_sequence(&mut self, lock: usize, writes: &[usize]) {
        let lock = lock_key(lock);
        let Some(current) = self.get(&lock, ReadMode::Default) else {
            return;
        };
        // Free, never taken, or left held by this worker (a release that failed).
        let mine = format!("owner-w{}-", self.id);
        let free = match &current {
            None => true,
            Some(held) => held.value.starts_with("free-") || held.value.starts_with(&mine),
        };
        if !free {
            return;
        }
        let owner = self.fresh("owner-");
        if self.cas(&lock, current.as_ref(), &owner) != Some(true) {
            return;
        }
        for &key in writes {
            self.think();
            let value = self.fresh("");
            self.put(&data_key(key), &value);
        }
        self.think();
        // The CAS answered no version, so read it back to release on it.
        let Some(Some(held)) = self.get(&lock, ReadMode::Default) else {
            return;
        };
        if held.value != owner {
            return;
        }
        let release = self.fresh("free-");
        self.cas(&lock, Some(&held), &release);
    }

    fn ledger_put(&mut self) {
        let value = self.fresh("");
        let key = format!("{LEDGER_PREFIX}w{}/{}", self.id, self.seq);
        if self.put(&key, &value).is_some() {
            self.log.ledger_acked.push((key, value));
        }
    }

    /// A read; `Some(answer)` when it was answered.
    fn get(&mut self, key: &str, mode: ReadMode) -> Option<Option<Versioned>> {
        let call = self.shared.now_us();
        let reply = self.client.get(key, mode);
        let outcome = match &reply {
            Ok(found) => Outcome::Value {
                value: found.as_ref().map(|v| v.value.clone()),
                version: found.as_ref().map(|v| v.version),
            },
            Err(e) => Outcome::error(e),
        };
        self.record(call, key, Request::Get { mode: mode.into() }, outcome);
        reply.ok()
    }

    fn put(&mut self, key: &str, value: &str) -> Option<()> {
        let call = self.shared.now_us();
        let reply = self.client.put(key, value);
        let request = Request::Put {
            value: value.to_string(),
        };
        self.record(call, key, request, done_or_error(&reply));
        reply.ok()
    }

    fn delete(&mut self, key: &str) -> Option<()> {
        let call = self.shared.now_us();
        let reply = self.client.delete(key);
        self.record(call, key, Request::Delete, done_or_error(&reply));
        reply.ok()
    }

    /// A CAS on what a read returned (`None`: absent).
    fn cas(&mut self, key: &str, expect: Option<&Versioned>, value: &str) -> Option<bool> {
        let expect_version = expect.map(|v| v.version);
        let call = self.shared.now_us();
        let reply = self.client.cas(key, expect_version, value);
        let outcome = match &reply {
            Ok(swapped) => Outcome::Swapped { swapped: *swapped },
            Err(e) => Outcome::error(e),
        };
        let request = Request::Cas {
            expect_version,
            expect_value: expect.map(|v| v.value.clone()),
            value: value.to_string(),
        };
        self.record(call, key, request, outcome);
        reply.ok()
    }

    fn record(&mut self, call_us: u64, key: &str, request: Request, result: Outcome) {
        let ret_us = self.shared.now_us().max(call_us);
        self.shared.ops.fetch_add(1, Ordering::Relaxed);
        if !result.is_ok() {
            self.errors += 1;
            self.shared.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.log.records.push(Record {
            call_us,
            ret_us,
            latency_us: ret_us - call_us,
            worker: self.id,
            node: self.node,
            key: key.to_string(),
            request,
            result,
            verify: false,
        });
    }
}

fn done_or_error(reply: &Result<(), OpError>) -> Outcome {
    match reply {
        Ok(()) => Outcome::Done,
        Err(e) => Outcome::error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_and_repeat() {
        assert_eq!(stream_seed(7, 0), stream_seed(7, 0));
        assert_ne!(stream_seed(7, 0), stream_seed(7, 1));
        assert_ne!(stream_seed(7, 0), stream_seed(8, 0));
    }

    #[test]
    fn a_seed_fixes_every_choice_and_all_kinds_occur() {
        let choices = |seed| {
            let mut rng = protocol::rng::seeded(stream_seed(seed, 3));
            (0..500).map(|_| draw(&mut rng, 16, 2)).collect::<Vec<_>>()
        };
        let a = choices(7);
        assert_eq!(a, choices(7));
        assert_ne!(a, choices(8));
        let has = |f: &dyn Fn(&Choice) -> bool| a.iter().any(f);
        assert!(has(&|c| matches!(c, Choice::Get(ReadMode::Default, _))));
        assert!(has(&|c| matches!(c, Choice::Get(ReadMode::Consistent, _))));
        assert!(has(&|c| matches!(c, Choice::Get(ReadMode::Stale, _))));
        assert!(has(&|c| matches!(c, Choice::Put(_))));
        assert!(has(&|c| matches!(c, Choice::ReadThenCas(_))));
        assert!(has(&|c| matches!(c, Choice::Delete(_))));
        assert!(has(
            &|c| matches!(c, Choice::Lock { writes, .. } if writes.len() == 2)
        ));
        assert!(has(&|c| matches!(c, Choice::Ledger)));
        assert!(a.iter().all(|c| match c {
            Choice::Get(_, k) | Choice::Put(k) | Choice::ReadThenCas(k) | Choice::Delete(k) =>
                *k < 16,
            Choice::Lock { lock, writes } => *lock < 2 && writes.iter().all(|k| *k < 16),
            Choice::Ledger => true,
        }));
    }

    #[test]
    fn checked_keys_are_data_then_locks() {
        let spec = WorkloadSpec {
            workers: 1,
            keys: 3,
            think_time: Duration::ZERO,
            request_timeout: Duration::from_secs(1),
            seed: 1,
        };
        assert_eq!(
            spec.checked_keys(),
            ["chaos/k0", "chaos/k1", "chaos/k2", "chaos/lock0"]
        );
    }
}
