//! A history recorder for linearizability tests against a real cluster.
//!
//! Client threads, each bound to one agent (its "home": servers and client agents alike),
//! do bounded random operations on a few shared keys: PUT, GET in the default
//! consistency mode, and read-then-CAS (`GET`, then `PUT ?cas=<ModifyIndex>`, or
//! `?cas=0` when the key is absent). Every operation's call and return times (µs since
//! the load started, one monotonic clock for every thread) and its outcome become a
//! [`protocol::linearizability::Op`] for `check_kv`. Written values are unique
//! (`c<client>-<seq>`), so Consul's index CAS is the checker's value CAS: CAS on the
//! index a read returned with value `v` is `Cas { expect: Some(v) }`.
//!
//! Outcomes, as the checker models them:
//! - a request that never left (connection refused) is not recorded: it did nothing;
//! - a write that timed out, or got anything but a clean `true`/`false`, is
//!   [`OpResult::Unknown`]: it may take effect at any time after its call, or never;
//! - a read that failed is dropped (an unknown read observes nothing).
//!
//! Each client also writes "ledger" keys of its own (`ledger/c<client>/<seq>`), never
//! overwritten, so "no acknowledged write is lost" is checked directly at the end: every
//! acknowledged ledger write must be readable on every server.

use protocol::linearizability::{check_kv_counting, Op, OpKind, OpResult, Verdict};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Search steps the checker may spend per key before answering "unknown".
const CHECK_BUDGET: u64 = 20_000_000;

/// The shape and bounds of one load.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    /// Client threads; client `i` goes through agent `i % agents`.
    pub clients: usize,
    /// Shared keys (`lin/k<i>`).
    pub keys: usize,
    /// Most operations one client starts.
    pub max_ops_per_client: usize,
    /// No client starts an operation after this (from the start of the load).
    pub max_duration: Duration,
    /// Per HTTP request; a write without an answer by then is `Unknown`.
    pub request_timeout: Duration,
    /// Between two operations of one client: leaves CPU to the servers on 2 cores.
    pub pause: Duration,
    /// Whether default-mode reads go into the history. `false`: they are still made (a
    /// CAS needs one) but only writes, CAS outcomes and the final `?consistent` reads
    /// are checked (for a fault whose read anomaly is a known, separately tested gap).
    pub check_reads: bool,
    pub seed: u64,
}

impl LoadSpec {
    /// The defaults the fault tests use, with `seed` from `CAIRN_LIN_SEED` if set.
    pub fn new(default_seed: u64) -> LoadSpec {
        let seed = std::env::var("CAIRN_LIN_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default_seed);
        LoadSpec {
            clients: 8,
            keys: 3,
            max_ops_per_client: 1500,
            max_duration: Duration::from_secs(90),
            request_timeout: Duration::from_secs(4),
            pause: Duration::from_millis(8),
            check_reads: true,
            seed,
        }
    }

    fn key(&self, i: usize) -> String {
        format!("lin/k{i}")
    }
}

/// A seed that differs per run (the clock), for tests that want fresh histories; it is
/// printed so a failing choice of operations can be replayed with `CAIRN_LIN_SEED`.
pub fn fresh_seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1)
}

/// One recorded operation and the agent it went through.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub op: Op<String, String>,
    pub via: String,
}

/// What the client threads share with the test driver.
struct Shared {
    epoch: Instant,
    stop: AtomicBool,
    /// Call times of writes that got a definite answer, for progress conditions.
    answered_writes: Mutex<Vec<(u64, String)>>,
    /// Per client, the call time and agent of the request it is waiting for.
    in_flight: Mutex<HashMap<u64, (u64, String)>>,
    running: AtomicUsize,
}

/// What one client thread recorded.
#[derive(Default)]
struct ClientLog {
    ops: Vec<Recorded>,
    ledger_acked: Vec<(String, String)>,
    errors: BTreeMap<String, u64>,
}

/// A running load; [`Load::finish`] stops it and returns the history.
pub struct Load {
    spec: LoadSpec,
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<ClientLog>>,
}

impl Load {
    /// Start `spec.clients` threads; client `i` sends everything to `agents[i % len]`
    /// (base URLs such as `http://127.0.0.220:8500`).
    pub fn start(agents: &[String], spec: LoadSpec) -> Load {
        assert!(!agents.is_empty() && spec.keys > 0);
        eprintln!(
            "load: {} clients over {} agents, {} keys, seed {} (CAIRN_LIN_SEED to replay the choices)",
            spec.clients,
            agents.len(),
            spec.keys,
            spec.seed
        );
        let shared = Arc::new(Shared {
            epoch: Instant::now(),
            stop: AtomicBool::new(false),
            answered_writes: Mutex::new(Vec::new()),
            in_flight: Mutex::new(HashMap::new()),
            running: AtomicUsize::new(spec.clients),
        });
        let threads = (0..spec.clients)
            .map(|id| {
                let home = agents[id % agents.len()].clone();
                let spec = spec.clone();
                let shared = shared.clone();
                std::thread::spawn(move || {
                    let log = Client::new(id as u64, home, &spec, &shared).run();
                    shared.running.fetch_sub(1, Ordering::AcqRel);
                    log
                })
            })
            .collect();
        Load {
            spec,
            shared,
            threads,
        }
    }

    /// Microseconds since the load started, on the clock the history uses.
    pub fn now_us(&self) -> u64 {
        self.shared.epoch.elapsed().as_micros() as u64
    }

    /// Print `what` with the load's clock, so a test's output shows its phases on the
    /// history's time line.
    pub fn mark(&self, what: &str) {
        eprintln!("[{:8.1} ms] {what}", self.now_us() as f64 / 1000.0);
    }

    /// Writes with a definite answer that were called at or after `since_us` (through
    /// `via` if given).
    pub fn answered_writes_since(&self, since_us: u64, via: Option<&str>) -> usize {
        let answered = self.shared.answered_writes.lock().unwrap();
        answered
            .iter()
            .filter(|(call, agent)| *call >= since_us && via.is_none_or(|v| v == agent))
            .count()
    }

    /// Wait until `count` writes called at or after `since_us` got a definite answer
    /// (through `via` if given). Fails if the clients run out of operations first.
    pub fn wait_answered_writes(&self, since_us: u64, count: usize, via: Option<&str>) {
        super::wait_for(&format!("{count} answered writes (via {via:?})"), || {
            if self.answered_writes_since(since_us, via) >= count {
                return Some(());
            }
            assert!(
                self.shared.running.load(Ordering::Acquire) > 0,
                "the load ended before {count} writes were answered: raise its bounds"
            );
            None
        })
    }

    /// Wait until some client has been waiting at least `for_at_least` for a request
    /// through `via` that it called at or after `called_after_us` (e.g. one that a
    /// paused agent holds). Returns that call time.
    pub fn wait_pending(&self, via: &str, called_after_us: u64, for_at_least: Duration) -> u64 {
        let min_age = for_at_least.as_micros() as u64;
        super::wait_for(&format!("a request pending at {via}"), || {
            let now = self.now_us();
            let in_flight = self.shared.in_flight.lock().unwrap();
            in_flight
                .values()
                .filter(|(call, agent)| {
                    agent == via && *call >= called_after_us && now.saturating_sub(*call) >= min_age
                })
                .map(|(call, _)| *call)
                .min()
        })
    }

    /// Stop the clients (each finishes its current request) and collect the history.
    pub fn finish(self) -> History {
        self.shared.stop.store(true, Ordering::Release);
        let mut history = History {
            spec: self.spec,
            epoch: self.shared.epoch,
            ops: Vec::new(),
            ledger_acked: Vec::new(),
            errors: BTreeMap::new(),
        };
        for thread in self.threads {
            let log = thread.join().expect("client thread");
            history.ops.extend(log.ops);
            history.ledger_acked.extend(log.ledger_acked);
            for (text, n) in log.errors {
                *history.errors.entry(text).or_default() += n;
            }
        }
        history
    }
}

/// An answer, or why there is none.
enum Reply<T> {
    Answer(T),
    /// Never left this process (connection refused): it did nothing.
    NotSent,
    /// Sent, but no usable answer: it may or may not have taken effect.
    Unknown(String),
}

struct Client<'a> {
    id: u64,
    home: String,
    spec: &'a LoadSpec,
    shared: &'a Shared,
    http: reqwest::blocking::Client,
    rng: StdRng,
    log: ClientLog,
}

impl<'a> Client<'a> {
    fn new(id: u64, home: String, spec: &'a LoadSpec, shared: &'a Shared) -> Client<'a> {
        let http = reqwest::blocking::Client::builder()
            .timeout(spec.request_timeout)
            .connect_timeout(Duration::from_secs(1))
            .build()
            .expect("http client");
        let rng = StdRng::seed_from_u64(spec.seed ^ (id + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Client {
            id,
            home,
            spec,
            shared,
            http,
            rng,
            log: ClientLog::default(),
        }
    }

    fn run(mut self) -> ClientLog {
        let end = self.shared.epoch + self.spec.max_duration;
        for seq in 0..self.spec.max_ops_per_client {
            if self.shared.stop.load(Ordering::Acquire) || Instant::now() >= end {
                break;
            }
            let key = self.spec.key(self.rng.random_range(0..self.spec.keys));
            let value = format!("c{}-{seq}", self.id);
            match self.rng.random_range(0..100) {
                0..30 => self.put(&key, value),
                30..40 => self.ledger_put(seq),
                40..75 => {
                    self.get(&key);
                }
                _ => self.cas(&key, value),
            }
            std::thread::sleep(self.spec.pause);
        }
        self.log
    }

    fn now(&self) -> u64 {
        self.shared.epoch.elapsed().as_micros() as u64
    }

    /// The call time of a request about to be sent (and shown to [`Load::wait_pending`]).
    fn call(&self) -> u64 {
        let call = self.now();
        let mut in_flight = self.shared.in_flight.lock().unwrap();
        in_flight.insert(self.id, (call, self.home.clone()));
        call
    }

    fn returned(&self) {
        self.shared.in_flight.lock().unwrap().remove(&self.id);
    }

    fn record(&mut self, key: &str, call: u64, kind: OpKind<String>, result: OpResult<String>) {
        let ret = self.now();
        if !matches!(result, OpResult::Unknown) && !matches!(kind, OpKind::Get) {
            let mut answered = self.shared.answered_writes.lock().unwrap();
            answered.push((call, self.home.clone()));
        }
        self.log.ops.push(Recorded {
            op: Op {
                client: self.id,
                key: key.to_string(),
                call,
                ret: Some(ret),
                kind,
                result,
            },
            via: self.home.clone(),
        });
    }

    fn note_error(&mut self, why: String) {
        *self.log.errors.entry(why).or_default() += 1;
    }

    fn put(&mut self, key: &str, value: String) {
        let call = self.call();
        let reply = put(&self.http, &self.home, key, &value, None);
        self.returned();
        let kind = OpKind::Put { value };
        match reply {
            Reply::Answer(true) => self.record(key, call, kind, OpResult::Done),
            Reply::Answer(false) => panic!("PUT without cas answered false"),
            Reply::NotSent => self.note_error("not sent".into()),
            Reply::Unknown(why) => {
                self.note_error(why);
                self.record(key, call, kind, OpResult::Unknown);
            }
        }
    }

    fn ledger_put(&mut self, seq: usize) {
        let key = format!("ledger/c{}/{seq}", self.id);
        let value = format!("c{}-{seq}", self.id);
        let call = self.call();
        let reply = put(&self.http, &self.home, &key, &value, None);
        self.returned();
        match reply {
            Reply::Answer(_) => {
                self.shared
                    .answered_writes
                    .lock()
                    .unwrap()
                    .push((call, self.home.clone()));
                self.log.ledger_acked.push((key, value));
            }
            Reply::NotSent => self.note_error("not sent".into()),
            Reply::Unknown(why) => self.note_error(why),
        }
    }

    /// A default-mode read, recorded; its value and ModifyIndex if it was answered.
    fn get(&mut self, key: &str) -> Option<Option<(String, u64)>> {
        let call = self.call();
        let reply = get(&self.http, &self.home, key, "");
        self.returned();
        match reply {
            Reply::Answer(found) => {
                if self.spec.check_reads {
                    let read = found.as_ref().map(|(v, _)| v.clone());
                    self.record(key, call, OpKind::Get, OpResult::Value(read));
                }
                Some(found)
            }
            Reply::NotSent => {
                self.note_error("not sent".into());
                None
            }
            Reply::Unknown(why) => {
                self.note_error(why);
                None
            }
        }
    }

    fn cas(&mut self, key: &str, value: String) {
        let Some(current) = self.get(key) else {
            return;
        };
        let (expect, index) = match current {
            Some((v, index)) => (Some(v), index),
            None => (None, 0),
        };
        let call = self.call();
        let reply = put(&self.http, &self.home, key, &value, Some(index));
        self.returned();
        let kind = OpKind::Cas {
            expect,
            new: Some(value),
        };
        match reply {
            Reply::Answer(swapped) => self.record(key, call, kind, OpResult::Swapped(swapped)),
            Reply::NotSent => self.note_error("not sent".into()),
            Reply::Unknown(why) => {
                self.note_error(why);
                self.record(key, call, kind, OpResult::Unknown);
            }
        }
    }
}

fn classify(e: &reqwest::Error) -> Reply<std::convert::Infallible> {
    if e.is_connect() {
        Reply::NotSent
    } else if e.is_timeout() {
        Reply::Unknown("timeout".into())
    } else {
        Reply::Unknown(format!("transport: {e}"))
    }
}

fn widen<T>(r: Reply<std::convert::Infallible>) -> Reply<T> {
    match r {
        Reply::Answer(never) => match never {},
        Reply::NotSent => Reply::NotSent,
        Reply::Unknown(why) => Reply::Unknown(why),
    }
}

/// A status and body that are not an answer, as one line for the error tally.
fn refusal(status: u16, body: &str) -> String {
    let mut line: String = body.trim().chars().take(60).collect();
    line.insert_str(0, &format!("{status} "));
    line
}

/// `PUT /v1/kv/<key>[?cas=<index>]`: `true`/`false`.
fn put(
    http: &reqwest::blocking::Client,
    base: &str,
    key: &str,
    value: &str,
    cas: Option<u64>,
) -> Reply<bool> {
    let url = match cas {
        Some(index) => format!("{base}/v1/kv/{key}?cas={index}"),
        None => format!("{base}/v1/kv/{key}"),
    };
    let response = match http.put(url).body(value.to_string()).send() {
        Ok(r) => r,
        Err(e) => return widen(classify(&e)),
    };
    let status = response.status().as_u16();
    let body = match response.text() {
        Ok(b) => b,
        Err(e) => return widen(classify(&e)),
    };
    match (status, body.trim()) {
        (200, "true") => Reply::Answer(true),
        (200, "false") => Reply::Answer(false),
        _ => Reply::Unknown(refusal(status, &body)),
    }
}

/// `GET /v1/kv/<key>?<mode>`: the value and its ModifyIndex, `None` if absent.
fn get(
    http: &reqwest::blocking::Client,
    base: &str,
    key: &str,
    mode: &str,
) -> Reply<Option<(String, u64)>> {
    let response = match http.get(format!("{base}/v1/kv/{key}?{mode}")).send() {
        Ok(r) => r,
        Err(e) => return widen(classify(&e)),
    };
    let status = response.status().as_u16();
    let body = match response.text() {
        Ok(b) => b,
        Err(e) => return widen(classify(&e)),
    };
    match status {
        404 => Reply::Answer(None),
        200 => match parse_entries(&body).as_deref() {
            Some([(_, value, index)]) => Reply::Answer(Some((value.clone(), *index))),
            _ => Reply::Unknown(format!("unparsable 200: {body}")),
        },
        _ => Reply::Unknown(refusal(status, &body)),
    }
}

/// A KV listing as (key, value, ModifyIndex).
fn parse_entries(body: &str) -> Option<Vec<(String, String, u64)>> {
    use base64::Engine;
    let rows: serde_json::Value = serde_json::from_str(body).ok()?;
    rows.as_array()?
        .iter()
        .map(|row| {
            let key = row["Key"].as_str()?.to_string();
            let raw = row["Value"].as_str().unwrap_or("");
            let bytes = base64::engine::general_purpose::STANDARD.decode(raw).ok()?;
            let value = String::from_utf8(bytes).ok()?;
            Some((key, value, row["ModifyIndex"].as_u64()?))
        })
        .collect()
}

/// The recorded operations of a finished load, plus the final reads.
pub struct History {
    pub spec: LoadSpec,
    epoch: Instant,
    pub ops: Vec<Recorded>,
    /// Acknowledged ledger writes: each must be readable at the end.
    pub ledger_acked: Vec<(String, String)>,
    /// Failed requests by cause (status and body, or transport error), for the report.
    pub errors: BTreeMap<String, u64>,
}

impl History {
    /// Read every shared key `?consistent` through each of `agents`, retrying failures
    /// until one answers (the cluster should be healed by now), and record the answers
    /// as operations of the history (client id 1000+).
    pub fn read_final(&mut self, agents: &[String]) {
        let http = super::http_client();
        for (n, agent) in agents.iter().enumerate() {
            for k in 0..self.spec.keys {
                let key = self.spec.key(k);
                let (call, found, ret) = super::wait_for(&format!("{key} via {agent}"), || {
                    let call = self.epoch.elapsed().as_micros() as u64;
                    match get(&http, agent, &key, "consistent") {
                        Reply::Answer(found) => {
                            let ret = self.epoch.elapsed().as_micros() as u64;
                            Some((call, found.map(|(v, _)| v), ret))
                        }
                        _ => None,
                    }
                });
                self.ops.push(Recorded {
                    op: Op {
                        client: 1000 + n as u64,
                        key,
                        call,
                        ret: Some(ret),
                        kind: OpKind::Get,
                        result: OpResult::Value(found),
                    },
                    via: agent.clone(),
                });
            }
        }
    }

    /// Acknowledged ledger writes that `agent` does not return in `mode` ("consistent",
    /// "stale"); `Err` if the listing could not be read.
    pub fn missing_ledger(&self, agent: &str, mode: &str) -> Result<Vec<String>, String> {
        let url = format!("{agent}/v1/kv/ledger/?recurse&{mode}");
        let response = super::http_client()
            .get(url)
            .send()
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.text().map_err(|e| e.to_string())?;
        let rows = match status {
            404 => Vec::new(),
            200 => parse_entries(&body).ok_or("unparsable listing")?,
            _ => return Err(refusal(status, &body)),
        };
        let have: HashMap<String, String> = rows.into_iter().map(|(k, v, _)| (k, v)).collect();
        Ok(self
            .ledger_acked
            .iter()
            .filter(|(k, v)| have.get(k) != Some(v))
            .map(|(k, _)| k.clone())
            .collect())
    }

    /// Counts for the test's output.
    pub fn summary(&self) -> String {
        let mut by_kind: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        for r in &self.ops {
            let name = match r.op.kind {
                OpKind::Put { .. } => "put",
                OpKind::Get => "get",
                OpKind::Delete => "delete",
                OpKind::Cas { .. } => "cas",
            };
            let entry = by_kind.entry(name).or_default();
            entry.0 += 1;
            if matches!(r.op.result, OpResult::Unknown) {
                entry.1 += 1;
            }
        }
        let reads = if self.spec.check_reads {
            ""
        } else {
            " (default-mode reads left out)"
        };
        let mut s = format!(
            "{} ops recorded{reads} (seed {}), {} ledger writes acknowledged;",
            self.ops.len(),
            self.spec.seed,
            self.ledger_acked.len()
        );
        for (kind, (n, unknown)) in by_kind {
            let _ = write!(s, " {kind} {n} ({unknown} unknown)");
        }
        let _ = write!(s, "; failed requests: {:?}", self.errors);
        s
    }

    /// Run the checker; on anything but "linearizable" write the whole history beside
    /// the test binaries and panic with an excerpt around the failure.
    pub fn assert_linearizable(&self, test: &str) {
        let ops: Vec<Op<String, String>> = self.ops.iter().map(|r| r.op.clone()).collect();
        let checked = check_kv_counting(&ops, CHECK_BUDGET).expect("a well-formed history");
        eprintln!(
            "{test}: {}; checker: {} in {} steps",
            self.summary(),
            checked.verdict,
            checked.steps
        );
        if checked.verdict == Verdict::Linearizable {
            return;
        }
        let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{test}-seed{}.history.txt", self.spec.seed));
        let full: String = self
            .ops
            .iter()
            .enumerate()
            .map(|(i, r)| self.line(i, r) + "\n")
            .collect();
        let _ = std::fs::write(&path, full);
        panic!(
            "{test}: {}\n{}\nfull history: {}",
            checked.verdict,
            self.excerpt(&checked.verdict),
            path.display()
        );
    }

    fn line(&self, i: usize, r: &Recorded) -> String {
        let op = &r.op;
        let kind = match &op.kind {
            OpKind::Put { value } => format!("put {value}"),
            OpKind::Get => "get".to_string(),
            OpKind::Delete => "delete".to_string(),
            OpKind::Cas { expect, new } => format!("cas {expect:?} -> {new:?}"),
        };
        let result = match &op.result {
            OpResult::Done => "ok".to_string(),
            OpResult::Value(v) => format!("read {v:?}"),
            OpResult::Swapped(b) => format!("swapped {b}"),
            OpResult::Unknown => "UNKNOWN".to_string(),
        };
        let ms = |us: u64| us as f64 / 1000.0;
        format!(
            "#{i:<5} {:<7} c{:<4} via {:<28} {:>9.1}..{:>9.1} ms  {kind}  => {result}",
            op.key,
            op.client,
            r.via,
            ms(op.call),
            ms(op.ret.unwrap_or(op.call))
        )
    }

    /// The last operations of the longest linearizable prefix, what could not follow
    /// it, and every operation on that key overlapping the first of those.
    fn excerpt(&self, verdict: &Verdict<String, String>) -> String {
        let Verdict::NotLinearizable { key, explanation } = verdict else {
            return String::new();
        };
        let mut s = String::new();
        let prefix = &explanation.longest_prefix;
        let _ = writeln!(
            s,
            "key {key}: last of the longest linearizable prefix ({} ops):",
            prefix.len()
        );
        for &i in &prefix[prefix.len().saturating_sub(12)..] {
            let _ = writeln!(s, "  {}", self.line(i, &self.ops[i]));
        }
        let _ = writeln!(
            s,
            "value after it: {:?}; none of these fits next:",
            explanation.value_after_prefix
        );
        for &i in explanation.unplaced.iter().take(10) {
            let _ = writeln!(s, "  {}", self.line(i, &self.ops[i]));
        }
        if let Some(&first) = explanation.unplaced.first() {
            let f = &self.ops[first].op;
            let (from, to) = (f.call, f.ret.unwrap_or(u64::MAX));
            let _ = writeln!(s, "operations on {key} overlapping #{first}:");
            let overlapping = self.ops.iter().enumerate().filter(|(i, r)| {
                *i != first
                    && r.op.key == *key
                    && r.op.call <= to
                    && (matches!(r.op.result, OpResult::Unknown)
                        || r.op.ret.unwrap_or(u64::MAX) >= from)
            });
            for (i, r) in overlapping.take(30) {
                let _ = writeln!(s, "  {}", self.line(i, r));
            }
        }
        s
    }
}
