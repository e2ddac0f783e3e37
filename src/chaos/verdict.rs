//! The verdict of a run, computed after the last fault was undone and the workload
//! stopped: (a) wait until every server holds the same `chaos/` keys ("nodes
//! converged"); (b) read every checked key `consistent` through every node and add
//! those reads to the history; (c) check linearizability per key; (d) look for every
//! acknowledged ledger write on every server. Plus the figures (ops, errors, unknown
//! outcomes, unavailability windows, failover times, availability per fault) and the
//! one-line summary the command prints.

use protocol::linearizability::{check_kv_counting, Verdict as CheckerVerdict};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use super::history::{describe, to_checker_ops, Outcome, Record, Request, PREFIX};
use super::target::{Cluster, ReadMode};
use super::thousands;

/// A gap of at least this long without a successful operation is an unavailability
/// window.
pub const UNAVAILABLE_GAP_US: u64 = 1_000_000;
/// Availability per fault is measured in slots of this length.
pub const SLOT_US: u64 = 100_000;
/// Pause between two convergence polls or two tries of a final read.
const POLL: Duration = Duration::from_millis(200);

/// A fault as it happened, for the figures and the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRecord {
    pub kind: super::target::FaultKind,
    pub description: String,
    /// µs since the run started.
    pub start_us: u64,
    /// When the fault was in effect: the node dead or stopped, every partition rule
    /// set (for a restart: once the kill was done, before the restart).
    pub effective_us: u64,
    pub end_us: u64,
    pub hits_leader: bool,
    /// Whether injecting or undoing it failed, and how.
    pub error: Option<String>,
}

/// One server's name and its local copy of `chaos/` (or why it could not be read).
pub type ServerSnapshot = (String, Result<BTreeMap<String, String>, String>);

/// The servers' local copies of `chaos/`, as last read.
#[derive(Debug, Clone, Default)]
pub struct Convergence {
    pub converged: bool,
    /// Per server: its name and what it held (or why it could not be read).
    pub snapshots: Vec<ServerSnapshot>,
    /// Keys that still differed, one line each (empty when converged).
    pub differences: Vec<String>,
    pub waited: Duration,
}

/// Poll every server's local snapshot of `chaos/` until all are identical or `timeout`
/// passes.
pub fn wait_converged(cluster: &dyn Cluster, timeout: Duration) -> Convergence {
    let started = Instant::now();
    let nodes = cluster.nodes();
    loop {
        let snapshots: Vec<ServerSnapshot> = nodes
            .iter()
            .enumerate()
            .filter(|(_, n)| n.server)
            .map(|(i, n)| (n.name.clone(), cluster.local_snapshot(i, PREFIX)))
            .collect();
        let differences = differences(&snapshots);
        let converged = differences.is_empty();
        if converged || started.elapsed() >= timeout {
            return Convergence {
                converged,
                snapshots,
                differences,
                waited: started.elapsed(),
            };
        }
        std::thread::sleep(POLL);
    }
}

/// What keeps the snapshots from being identical, one line per key (or unreadable
/// server).
fn differences(snapshots: &[ServerSnapshot]) -> Vec<String> {
    let mut lines = Vec::new();
    let mut readable = Vec::new();
    for (name, snapshot) in snapshots {
        match snapshot {
            Ok(map) => readable.push((name, map)),
            Err(e) => lines.push(format!("{name}: unreadable: {e}")),
        }
    }
    let keys: BTreeSet<&String> = readable.iter().flat_map(|(_, m)| m.keys()).collect();
    for key in keys {
        let values: Vec<Option<&String>> = readable.iter().map(|(_, m)| m.get(key)).collect();
        if values.windows(2).any(|w| w[0] != w[1]) {
            let held: Vec<String> = readable
                .iter()
                .zip(&values)
                .map(|((name, _), v)| match v {
                    Some(v) => format!("{name} {v:?}"),
                    None => format!("{name} absent"),
                })
                .collect();
            lines.push(format!("{key}: {}", held.join(", ")));
        }
    }
    lines
}

/// Read every key in `keys` `consistent` through every node, retrying failures until
/// `timeout` overall; the answers become history records of client `first_client +
/// node`. Returns the records and the reads that never got an answer.
pub fn final_reads(
    cluster: &dyn Cluster,
    keys: &[String],
    epoch: Instant,
    first_client: usize,
    request_timeout: Duration,
    timeout: Duration,
) -> (Vec<Record>, Vec<String>) {
    let deadline = Instant::now() + timeout;
    let now_us = || epoch.elapsed().as_micros() as u64;
    let mut records = Vec::new();
    let mut unanswered = Vec::new();
    for (n, node) in cluster.nodes().iter().enumerate() {
        let mut client = cluster.client(n, request_timeout);
        // Once a node has failed past the deadline, its other keys are not tried
        // (a node that never came back would cost a timeout per key).
        let mut gave_up = false;
        for key in keys {
            if gave_up {
                unanswered.push(format!("{key} via {}: not tried", node.name));
                continue;
            }
            loop {
                let call_us = now_us();
                match client.get(key, ReadMode::Consistent) {
                    Ok(found) => {
                        let ret_us = now_us().max(call_us);
                        records.push(Record {
                            call_us,
                            ret_us,
                            latency_us: ret_us - call_us,
                            worker: first_client + n,
                            node: n,
                            key: key.clone(),
                            request: Request::Get {
                                mode: super::history::Mode::Consistent,
                            },
                            result: Outcome::Value {
                                value: found.as_ref().map(|v| v.value.clone()),
                                version: found.map(|v| v.version),
                            },
                            verify: true,
                        });
                        break;
                    }
                    Err(e) if Instant::now() >= deadline => {
                        unanswered.push(format!("{key} via {}: {e}", node.name));
                        gave_up = true;
                        break;
                    }
                    Err(_) => std::thread::sleep(POLL),
                }
            }
        }
    }
    (records, unanswered)
}

/// An acknowledged ledger write a server does not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostWrite {
    pub key: String,
    pub value: String,
    /// The servers missing it (or holding another value).
    pub missing_on: Vec<String>,
}

/// Acknowledged ledger writes absent from any readable snapshot.
pub fn lost_writes(ledger_acked: &[(String, String)], convergence: &Convergence) -> Vec<LostWrite> {
    ledger_acked
        .iter()
        .filter_map(|(key, value)| {
            let missing_on: Vec<String> = convergence
                .snapshots
                .iter()
                .filter_map(|(name, snapshot)| match snapshot {
                    Ok(map) if map.get(key) != Some(value) => Some(name.clone()),
                    _ => None,
                })
                .collect();
            (!missing_on.is_empty()).then(|| LostWrite {
                key: key.clone(),
                value: value.clone(),
                missing_on,
            })
        })
        .collect()
}

/// The linearizability answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Linearity {
    Yes,
    /// The checker's explanation with the operations involved.
    No {
        key: String,
        explanation: String,
    },
    /// The search budget ran out on this key.
    Unknown {
        key: String,
    },
    /// The history could not be checked at all (a bug in the recorder).
    Malformed(String),
}

/// The check's answer with the size of what was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub linearity: Linearity,
    pub ops: usize,
    pub keys: usize,
    pub steps: u64,
}

/// Check `records` (workload and final reads) per key.
pub fn check(records: &[Record], budget: u64, node_names: &[String]) -> Checked {
    let (ops, origin) = to_checker_ops(records);
    let keys = ops.iter().map(|op| &op.key).collect::<BTreeSet<_>>().len();
    let (linearity, steps) = match check_kv_counting(&ops, budget) {
        Err(e) => (Linearity::Malformed(e.to_string()), 0),
        Ok(checked) => {
            let linearity = match &checked.verdict {
                CheckerVerdict::Linearizable => Linearity::Yes,
                CheckerVerdict::Unknown { key } => Linearity::Unknown { key: key.clone() },
                CheckerVerdict::NotLinearizable { key, explanation } => {
                    let mut text = render_violation(key, explanation, &origin);
                    text.push('\n');
                    let line = |i: usize| describe(origin[i], &records[origin[i]], node_names);
                    let prefix = &explanation.longest_prefix;
                    let _ = writeln!(
                        text,
                        "key {key}: the last of the longest linearizable prefix ({} ops):",
                        prefix.len()
                    );
                    for &i in &prefix[prefix.len().saturating_sub(12)..] {
                        let _ = writeln!(text, "  {}", line(i));
                    }
                    let _ = writeln!(
                        text,
                        "value after it: {:?}; none of these fits next:",
                        explanation.value_after_prefix
                    );
                    for &i in explanation.unplaced.iter().take(10) {
                        let _ = writeln!(text, "  {}", line(i));
                    }
                    if let Some(&first) = explanation.unplaced.first() {
                        let f = &ops[first];
                        let (from, to) = (f.call, f.ret.unwrap_or(u64::MAX));
                        let _ =
                            writeln!(text, "operations on {key} overlapping #{}:", origin[first]);
                        let overlapping = ops.iter().enumerate().filter(|(i, op)| {
                            *i != first
                                && op.key == *key
                                && op.call <= to
                                && (records[origin[*i]].is_unknown_write()
                                    || op.ret.unwrap_or(u64::MAX) >= from)
                        });
                        for (i, _) in overlapping.take(30) {
                            let _ = writeln!(text, "  {}", line(i));
                        }
                    }
                    Linearity::No {
                        key: key.clone(),
                        explanation: text,
                    }
                }
            };
            (linearity, checked.steps)
        }
    };
    Checked {
        linearity,
        ops: ops.len(),
        keys,
        steps,
    }
}

/// The checker's rendering of a violation with its indices turned into history
/// indices (`#n` is line n + 1 of history.jsonl), and a long prefix shortened to its
/// last operations.
fn render_violation(
    key: &str,
    explanation: &protocol::linearizability::Explanation<String>,
    origin: &[usize],
) -> String {
    const SHOWN: usize = 12;
    let to_history = |ops: &[usize]| ops.iter().map(|&i| origin[i]).collect::<Vec<_>>();
    let prefix = &explanation.longest_prefix;
    let remapped = CheckerVerdict::<String, String>::NotLinearizable {
        key: key.to_string(),
        explanation: protocol::linearizability::Explanation {
            longest_prefix: to_history(&prefix[prefix.len().saturating_sub(SHOWN)..]),
            value_after_prefix: explanation.value_after_prefix.clone(),
            unplaced: to_history(&explanation.unplaced[..explanation.unplaced.len().min(SHOWN)]),
        },
    };
    let mut text = remapped.to_string();
    if explanation.unplaced.len() > SHOWN {
        // Everything after the stuck point is "unplaced": name the first few only.
        let more = thousands((explanation.unplaced.len() - SHOWN) as u64);
        if text.ends_with(']') {
            text.pop();
            text.push_str(&format!(", and {more} later ops]"));
        }
    }
    if prefix.len() <= SHOWN {
        return text;
    }
    let elided = format!(
        "[{} earlier ops, ",
        thousands((prefix.len() - SHOWN) as u64)
    );
    text.replacen("prefix [", &format!("prefix {elided}"), 1)
}

/// How quickly writes came back after a fault that hit the leader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failover {
    /// Index into the faults.
    pub fault: usize,
    /// From the fault's start to the first acknowledged write called after it; `None`
    /// if none came before the workload stopped.
    pub us: Option<u64>,
}

/// Successful and failed operations during one fault, and the share of 100 ms slots
/// with at least one success.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultAvailability {
    pub ok: u64,
    pub failed: u64,
    pub available: f64,
}

/// The numbers of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Workload operations (not the final reads).
    pub ops: u64,
    pub by_kind: BTreeMap<&'static str, u64>,
    pub ops_per_s: f64,
    /// Errors by kind, most frequent first.
    pub errors: Vec<(String, u64)>,
    pub unknown_writes: u64,
    /// Spans of at least a second without a successful operation, (start, end) in µs.
    pub unavailable: Vec<(u64, u64)>,
    pub failovers: Vec<Failover>,
    pub per_fault: Vec<FaultAvailability>,
}

/// The figures of the workload `records` (final reads are skipped) over a workload
/// that ran from 0 to `end_us`.
pub fn figures(records: &[Record], faults: &[FaultRecord], end_us: u64) -> Figures {
    let work: Vec<&Record> = records.iter().filter(|r| !r.verify).collect();
    let mut by_kind = BTreeMap::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    for r in &work {
        *by_kind.entry(r.class().name()).or_default() += 1;
        if let Outcome::Error { kind, .. } = &r.result {
            *errors.entry(kind.clone()).or_default() += 1;
        }
    }
    let mut errors: Vec<(String, u64)> = errors.into_iter().collect();
    errors.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let mut successes: Vec<u64> = work
        .iter()
        .filter(|r| r.result.is_ok())
        .map(|r| r.ret_us)
        .collect();
    successes.sort_unstable();
    let mut unavailable = Vec::new();
    let mut previous = 0;
    for &t in successes
        .iter()
        .chain(std::iter::once(&end_us.max(previous)))
    {
        if t.saturating_sub(previous) >= UNAVAILABLE_GAP_US {
            unavailable.push((previous, t));
        }
        previous = previous.max(t);
    }
    let failovers = faults
        .iter()
        .enumerate()
        .filter(|(_, f)| f.hits_leader && f.kind.takes_the_leader_away())
        .map(|(i, f)| Failover {
            fault: i,
            // Writes called once the leader was really gone: one called earlier may
            // still be acknowledged by the old leader and say nothing of failover.
            us: work
                .iter()
                .filter(|r| {
                    r.call_us >= f.effective_us && r.is_write() && r.is_acknowledged_write()
                })
                .map(|r| r.ret_us - f.start_us)
                .min(),
        })
        .collect();
    let per_fault = faults
        .iter()
        .map(|f| {
            let during = work
                .iter()
                .filter(|r| r.ret_us >= f.start_us && r.ret_us <= f.end_us);
            let (mut ok, mut failed) = (0, 0);
            let mut slots = BTreeSet::new();
            for r in during {
                if r.result.is_ok() {
                    ok += 1;
                    slots.insert((r.ret_us - f.start_us) / SLOT_US);
                } else {
                    failed += 1;
                }
            }
            let total_slots = (f.end_us.saturating_sub(f.start_us))
                .div_ceil(SLOT_US)
                .max(1);
            FaultAvailability {
                ok,
                failed,
                available: (slots.len() as f64 / total_slots as f64).min(1.0),
            }
        })
        .collect();
    let seconds = (end_us as f64 / 1e6).max(1e-3);
    Figures {
        ops: work.len() as u64,
        by_kind,
        ops_per_s: work.len() as f64 / seconds,
        errors,
        unknown_writes: work.iter().filter(|r| r.is_unknown_write()).count() as u64,
        unavailable,
        failovers,
        per_fault,
    }
}

/// Everything the verdict says.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub checked: Checked,
    pub lost: Vec<LostWrite>,
    pub converged: bool,
    pub figures: Figures,
}

impl Verdict {
    /// A clean run: linearizable, nothing lost, every server the same.
    pub fn passed(&self) -> bool {
        self.checked.linearity == Linearity::Yes && self.lost.is_empty() && self.converged
    }

    /// `linearizable: yes (41,233 ops on 16 keys); acknowledged writes lost: 0; ...`
    pub fn line(&self) -> String {
        let linear = match self.checked.linearity {
            Linearity::Yes => "yes",
            Linearity::No { .. } => "no",
            Linearity::Unknown { .. } | Linearity::Malformed(_) => "unknown",
        };
        let f = &self.figures;
        let errors = if f.errors.is_empty() {
            "none".to_string()
        } else {
            f.errors
                .iter()
                .map(|(kind, n)| format!("{kind} {}", thousands(*n)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut measured: Vec<u64> = f.failovers.iter().filter_map(|x| x.us).collect();
        measured.sort_unstable();
        let never = f.failovers.len() - measured.len();
        let mut failover = match (measured.first(), measured.last()) {
            (Some(_), Some(max)) => {
                format!("median {}, max {}", millis(median(&measured)), millis(*max))
            }
            _ => "none".to_string(),
        };
        if never > 0 {
            let _ = write!(failover, ", {never} without an acknowledged write");
        }
        let longest = f.unavailable.iter().map(|(a, b)| b - a).max();
        let unavailable = match longest {
            None => "0 windows".to_string(),
            Some(longest) => format!(
                "{} window{}, longest {:.1} s",
                f.unavailable.len(),
                if f.unavailable.len() == 1 { "" } else { "s" },
                longest as f64 / 1e6
            ),
        };
        format!(
            "linearizable: {linear} ({} ops on {} keys); acknowledged writes lost: {}; nodes converged: {}; unknown-outcome writes: {}; errors: {errors}; failover: {failover}; unavailable: {unavailable}",
            thousands(self.checked.ops as u64),
            self.checked.keys,
            thousands(self.lost.len() as u64),
            if self.converged { "yes" } else { "no" },
            thousands(f.unknown_writes),
        )
    }
}

fn median(sorted: &[u64]) -> u64 {
    match sorted.len() {
        0 => 0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2,
    }
}

fn millis(us: u64) -> String {
    format!("{} ms", thousands((us + 500) / 1000))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::history::Mode;
    use crate::chaos::target::FaultKind;

    fn rec(call_ms: u64, ret_ms: u64, key: &str, request: Request, result: Outcome) -> Record {
        Record {
            call_us: call_ms * 1000,
            ret_us: ret_ms * 1000,
            latency_us: (ret_ms - call_ms) * 1000,
            worker: 0,
            node: 0,
            key: key.into(),
            request,
            result,
            verify: false,
        }
    }

    fn put(v: &str) -> Request {
        Request::Put { value: v.into() }
    }

    fn get() -> Request {
        Request::Get {
            mode: Mode::Default,
        }
    }

    fn read(v: Option<&str>) -> Outcome {
        Outcome::Value {
            value: v.map(String::from),
            version: v.map(|_| 1),
        }
    }

    fn error(kind: &str) -> Outcome {
        Outcome::Error {
            kind: kind.into(),
            definitely_not_applied: false,
            message: String::new(),
        }
    }

    #[test]
    fn the_verdict_line_reads_as_documented() {
        let errors = vec![("no-leader".to_string(), 9), ("timeout".to_string(), 3)];
        let verdict = Verdict {
            checked: Checked {
                linearity: Linearity::Yes,
                ops: 41_233,
                keys: 16,
                steps: 0,
            },
            lost: Vec::new(),
            converged: true,
            figures: Figures {
                ops: 41_300,
                by_kind: BTreeMap::new(),
                ops_per_s: 688.0,
                errors,
                unknown_writes: 12,
                unavailable: vec![(1_000_000, 2_200_000), (5_000_000, 6_000_000)],
                failovers: vec![
                    Failover {
                        fault: 0,
                        us: Some(900_000),
                    },
                    Failover {
                        fault: 1,
                        us: Some(420_000),
                    },
                    Failover {
                        fault: 2,
                        us: Some(300_000),
                    },
                ],
                per_fault: Vec::new(),
            },
        };
        assert_eq!(
            verdict.line(),
            "linearizable: yes (41,233 ops on 16 keys); acknowledged writes lost: 0; nodes converged: yes; unknown-outcome writes: 12; errors: no-leader 9, timeout 3; failover: median 420 ms, max 900 ms; unavailable: 2 windows, longest 1.2 s"
        );
        assert!(verdict.passed());
        let quiet = Verdict {
            checked: Checked {
                linearity: Linearity::Unknown { key: "k".into() },
                ..verdict.checked.clone()
            },
            figures: Figures {
                errors: Vec::new(),
                unavailable: Vec::new(),
                failovers: vec![Failover { fault: 0, us: None }],
                ..verdict.figures.clone()
            },
            ..verdict
        };
        assert!(quiet
            .line()
            .starts_with("linearizable: unknown (41,233 ops"));
        assert!(quiet.line().ends_with(
            "errors: none; failover: none, 1 without an acknowledged write; unavailable: 0 windows"
        ));
        assert!(!quiet.passed());
    }

    #[test]
    fn failover_counts_writes_called_once_the_fault_took_effect_and_only_leader_losses() {
        let records = vec![
            // Called after the start but before the partition rules were all set: the
            // old leader acknowledges it, which says nothing of failover.
            rec(310, 320, "k", put("a"), Outcome::Done),
            rec(400, 900, "k", put("b"), Outcome::Done),
        ];
        let fault = |kind| FaultRecord {
            kind,
            description: "x".into(),
            start_us: 300_000,
            effective_us: 350_000,
            end_us: 1_000_000,
            hits_leader: true,
            error: None,
        };
        let f = figures(&records, &[fault(FaultKind::Partition)], 1_000_000);
        assert_eq!(
            f.failovers,
            vec![Failover {
                fault: 0,
                us: Some(600_000)
            }]
        );
        for graceful in [FaultKind::SlowDisk, FaultKind::Membership] {
            let f = figures(&records, &[fault(graceful)], 1_000_000);
            assert!(f.failovers.is_empty(), "{graceful:?}");
        }
    }

    #[test]
    fn figures_find_gaps_failovers_and_availability() {
        let records = vec![
            rec(0, 100, "k", put("a"), Outcome::Done),
            rec(100, 200, "k", get(), read(Some("a"))),
            // The fault starts at 300 ms; nothing succeeds until 1,800 ms.
            rec(300, 1_300, "k", put("b"), error("timeout")),
            rec(1_400, 1_500, "k", get(), error("no-leader")),
            rec(1_400, 1_800, "k", get(), read(Some("b"))),
            rec(1_500, 2_000, "k", put("c"), Outcome::Done),
            rec(2_000, 2_100, "k", put("d"), Outcome::Done),
        ];
        let faults = vec![FaultRecord {
            kind: FaultKind::Kill,
            description: "kill node1 (leader)".into(),
            start_us: 300_000,
            effective_us: 300_000,
            end_us: 1_900_000,
            hits_leader: true,
            error: None,
        }];
        let f = figures(&records, &faults, 3_500_000);
        assert_eq!(f.ops, 7);
        assert_eq!(f.by_kind["put"], 4);
        assert_eq!(f.by_kind["get"], 3);
        assert_eq!(f.unknown_writes, 1);
        assert_eq!(
            f.errors,
            vec![("no-leader".to_string(), 1), ("timeout".to_string(), 1)]
        );
        // From 200 ms to 1,800 ms, and from 2,100 ms to the end at 3,500 ms.
        assert_eq!(
            f.unavailable,
            vec![(200_000, 1_800_000), (2_100_000, 3_500_000)]
        );
        assert_eq!(
            f.failovers,
            vec![Failover {
                fault: 0,
                us: Some(1_700_000)
            }]
        );
        let during = &f.per_fault[0];
        assert_eq!((during.ok, during.failed), (1, 2));
        assert!((during.available - 1.0 / 16.0).abs() < 1e-9, "{during:?}");
    }

    #[test]
    fn a_stale_read_is_explained_with_the_ops_involved() {
        let records = vec![
            rec(0, 10, "chaos/k0", put("w0-1"), Outcome::Done),
            rec(20, 30, "chaos/k0", get(), read(None)),
        ];
        let checked = check(&records, 1_000_000, &["node1".to_string()]);
        assert_eq!((checked.ops, checked.keys), (2, 1));
        let Linearity::No { key, explanation } = &checked.linearity else {
            panic!("{checked:?}");
        };
        assert_eq!(key, "chaos/k0");
        assert!(
            explanation.starts_with("not linearizable: key \"chaos/k0\""),
            "{explanation}"
        );
        assert!(explanation.contains("put \"w0-1\" => ok"), "{explanation}");
        assert!(
            explanation.contains("get (default) => read absent"),
            "{explanation}"
        );
    }

    #[test]
    fn a_violation_names_history_indices_and_elides_a_long_prefix() {
        // Stale reads are left out of the check, so checker index != history index.
        let mut records = vec![rec(
            0,
            1,
            "chaos/k0",
            Request::Get { mode: Mode::Stale },
            read(None),
        )];
        for i in 0..20u64 {
            records.push(rec(
                2 + 2 * i,
                3 + 2 * i,
                "chaos/k0",
                put(&format!("w0-{i}")),
                Outcome::Done,
            ));
        }
        records.push(rec(100, 101, "chaos/k0", get(), read(Some("w0-3"))));
        let checked = check(&records, 1_000_000, &["node1".to_string()]);
        let Linearity::No { explanation, .. } = &checked.linearity else {
            panic!("{checked:?}");
        };
        let first = explanation.lines().next().unwrap_or_default();
        assert_eq!(
            first,
            "not linearizable: key \"chaos/k0\": longest linearizable prefix [8 earlier ops, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20] (ops by history index) leaves the value Some(\"w0-19\"); the search could not extend it with any of [21]"
        );
    }

    #[test]
    fn a_long_tail_of_unplaced_ops_is_cut_to_the_first_few() {
        let mut records = vec![rec(0, 1, "chaos/k0", put("w0-0"), Outcome::Done)];
        records.push(rec(2, 3, "chaos/k0", get(), read(Some("never-written"))));
        for i in 0..30u64 {
            let value = format!("w1-{i}");
            records.push(rec(
                10 + 2 * i,
                11 + 2 * i,
                "chaos/k0",
                put(&value),
                Outcome::Done,
            ));
        }
        let checked = check(&records, 1_000_000, &["node1".to_string()]);
        let Linearity::No { explanation, .. } = &checked.linearity else {
            panic!("{checked:?}");
        };
        let first = explanation.lines().next().unwrap_or_default();
        assert!(
            first.ends_with("any of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, and 19 later ops]"),
            "{first}"
        );
    }

    #[test]
    fn lost_ledger_writes_name_the_servers_missing_them() {
        let mut full = BTreeMap::new();
        full.insert("chaos/ledger/w0/1".to_string(), "w0-1".to_string());
        let convergence = Convergence {
            converged: false,
            snapshots: vec![
                ("node1".into(), Ok(full.clone())),
                ("node2".into(), Ok(BTreeMap::new())),
                ("node3".into(), Err("down".into())),
            ],
            differences: Vec::new(),
            waited: Duration::ZERO,
        };
        let acked = vec![("chaos/ledger/w0/1".to_string(), "w0-1".to_string())];
        assert_eq!(
            lost_writes(&acked, &convergence),
            vec![LostWrite {
                key: "chaos/ledger/w0/1".into(),
                value: "w0-1".into(),
                missing_on: vec!["node2".into()]
            }]
        );
        assert_eq!(
            differences(&convergence.snapshots),
            vec![
                "node3: unreadable: down".to_string(),
                "chaos/ledger/w0/1: node1 \"w0-1\", node2 absent".to_string()
            ]
        );
    }
}
