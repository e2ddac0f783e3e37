//! One run: start the workers, play the fault schedule for the run's duration with a
//! live progress line, undo every fault, stop the workers, compute the verdict and
//! write `history.jsonl`, `verdict.txt` and `report.html` to the output directory.

use std::fmt::Write as _;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::history::{write_jsonl, Record};
use super::schedule::{self, PlannedFault, Resolved, Shape};
use super::target::{Cluster, FaultKind};
use super::verdict::{self, FaultRecord, Linearity, Verdict};
use super::workload::{Shared, Workload, WorkloadSpec};
use super::{report, thousands, ChaosOptions};

/// The main loop's longest sleep: fault windows start and end within this.
const TICK: Duration = Duration::from_millis(50);

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    pub verdict: Verdict,
    /// The one-line verdict (also the first line of verdict.txt).
    pub line: String,
    /// Everything verdict.txt holds (figures, schedule, explanation of a violation).
    pub details: String,
    pub faults: Vec<FaultRecord>,
    pub history_path: PathBuf,
    pub verdict_path: PathBuf,
    pub report_path: PathBuf,
}

impl RunOutcome {
    /// The command's exit code: 0 only for a clean verdict.
    pub fn exit_code(&self) -> i32 {
        if self.verdict.passed() {
            0
        } else {
            1
        }
    }
}

/// Run the workload and the fault schedule of `opts` against `cluster`, writing the
/// progress line to `progress`. `Err` only when the run could not happen or its
/// outputs could not be written; a bad verdict is an `Ok` whose `exit_code` is 1. The
/// caller shuts the cluster down.
pub fn run(
    opts: &ChaosOptions,
    cluster: &mut dyn Cluster,
    progress: &mut dyn Write,
) -> Result<RunOutcome, String> {
    std::fs::create_dir_all(&opts.out_dir)
        .map_err(|e| format!("cannot create {}: {e}", opts.out_dir.display()))?;
    let nodes = cluster.nodes();
    if nodes.is_empty() {
        return Err("the cluster has no nodes".into());
    }
    let node_names: Vec<String> = nodes.iter().map(|n| n.name.clone()).collect();
    let shape = Shape::of(&nodes);
    let spec = WorkloadSpec {
        workers: opts.worker_count(nodes.len()),
        keys: opts.keys,
        think_time: opts.think_time,
        request_timeout: opts.request_timeout,
        seed: opts.seed,
    };
    let plan = {
        let view: &dyn Cluster = cluster;
        schedule::plan(
            opts.seed,
            &opts.faults,
            &|kind| view.supports(kind),
            &shape,
            opts.duration,
            &opts.timing,
        )
    };
    let unsupported: Vec<&str> = opts
        .faults
        .iter()
        .filter(|k| !cluster.supports(**k))
        .map(|k| k.name())
        .collect();
    let _ = writeln!(
        progress,
        "chaos: {} target, seed {}, {} servers + {} client nodes, {} workers, {} keys, {}; {} faults planned{}",
        opts.target.name(),
        opts.seed,
        shape.servers.len(),
        shape.clients.len(),
        spec.workers,
        spec.keys,
        crate::duration::format_go_duration(opts.duration),
        plan.len(),
        if unsupported.is_empty() {
            String::new()
        } else {
            format!(" (not supported by this target: {})", unsupported.join(", "))
        }
    );

    let epoch = Instant::now();
    let shared = Arc::new(Shared::new(epoch));
    let workload = Workload::start(cluster, &spec, shared.clone());
    let (faults, heal_failures) = play(opts, cluster, &plan, &shared, progress);
    let end_us = shared.now_us();
    let log = workload.stop();
    let _ = writeln!(
        progress,
        "workload stopped; waiting up to {} for the servers to converge",
        crate::duration::format_go_duration(opts.settle_timeout)
    );

    let convergence = verdict::wait_converged(cluster, opts.settle_timeout);
    let mut records = log.records;
    let (final_reads, unanswered) = verdict::final_reads(
        cluster,
        &spec.checked_keys(),
        epoch,
        spec.workers,
        opts.request_timeout,
        opts.settle_timeout,
    );
    records.extend(final_reads);
    let checked = verdict::check(&records, opts.check_budget, &node_names);
    let lost = verdict::lost_writes(&log.ledger_acked, &convergence);
    let figures = verdict::figures(&records, &faults, end_us);
    let verdict = Verdict {
        checked,
        lost,
        converged: convergence.converged,
        figures,
    };
    let line = verdict.line();
    let notes = Notes {
        heal_failures,
        unanswered,
        differences: convergence.differences.clone(),
        converge_wait: convergence.waited,
        crashed_workers: log.crashed_workers,
        ledger_acked: log.ledger_acked.len(),
    };
    let mut details = details(opts, &verdict, &faults, &notes, end_us);
    let roster: Vec<String> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let role = if n.server { "server" } else { "client" };
            format!("{i}={} ({role}, {})", n.name, n.api_addr)
        })
        .collect();
    details.insert_str(
        0,
        &format!(
            "nodes (history.jsonl names them by index): {}\n",
            roster.join(", ")
        ),
    );

    let history_path = opts.out_dir.join("history.jsonl");
    let verdict_path = opts.out_dir.join("verdict.txt");
    let report_path = opts.out_dir.join("report.html");
    write_jsonl(&history_path, &records)?;
    std::fs::write(&verdict_path, format!("{line}\n\n{details}"))
        .map_err(|e| format!("{}: {e}", verdict_path.display()))?;
    let html = report::render(&report::ReportInput {
        opts,
        records: &records,
        faults: &faults,
        verdict: &verdict,
        line: &line,
        details: &details,
        end_us,
    });
    std::fs::write(&report_path, html).map_err(|e| format!("{}: {e}", report_path.display()))?;
    Ok(RunOutcome {
        verdict,
        line,
        details,
        faults,
        history_path,
        verdict_path,
        report_path,
    })
}

/// Play the schedule until the run's duration is over, then undo whatever is left.
/// Returns what happened and the failures of the final clean-up.
fn play(
    opts: &ChaosOptions,
    cluster: &mut dyn Cluster,
    plan: &[PlannedFault],
    shared: &Shared,
    progress: &mut dyn Write,
) -> (Vec<FaultRecord>, Vec<String>) {
    let nodes = cluster.nodes();
    let mut faults: Vec<FaultRecord> = Vec::new();
    let mut next = 0;
    let mut active: Option<(Resolved, Duration)> = None;
    let mut line = ProgressLine::new(opts.duration);
    loop {
        let elapsed = shared.epoch.elapsed();
        if let Some((fault, end)) = &active {
            if elapsed >= *end || elapsed >= opts.duration {
                let result = schedule::undo(cluster, fault);
                if let Some(record) = faults.last_mut() {
                    record.end_us = shared.now_us();
                    if let Err(e) = result {
                        record.error = Some(format!("undo: {e}"));
                    }
                }
                active = None;
            }
        }
        if elapsed >= opts.duration {
            break;
        }
        if active.is_none() && next < plan.len() && elapsed >= plan[next].start {
            let planned = &plan[next];
            next += 1;
            let resolved = planned.resolve(&nodes, cluster.leader());
            let start_us = shared.now_us();
            let result = schedule::inject(cluster, &resolved);
            let effective_us = shared.now_us();
            let result = result.and_then(|()| schedule::complete(cluster, &resolved));
            faults.push(FaultRecord {
                kind: resolved.kind,
                description: resolved.description.clone(),
                start_us,
                effective_us,
                end_us: start_us,
                hits_leader: resolved.hits_leader,
                error: result.err().map(|e| format!("inject: {e}")),
            });
            active = Some((resolved, planned.end));
        }
        let fault = active.as_ref().map(|(f, _)| f.description.as_str());
        line.maybe_print(progress, shared, fault);
        let wake = [
            active.as_ref().map(|(_, end)| *end),
            plan.get(next).map(|p| p.start),
            Some(opts.duration),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(opts.duration);
        let elapsed = shared.epoch.elapsed();
        std::thread::sleep(
            wake.saturating_sub(elapsed)
                .clamp(Duration::from_millis(1), TICK),
        );
    }
    line.print(progress, shared, None);
    let _ = writeln!(progress);
    let heal_failures = schedule::heal_everything(cluster);
    (faults, heal_failures)
}

/// `[ 12s/60s] 14,210 ops  1,183/s  errors 12  fault: kill node2 (leader)`, rewritten
/// in place once a second.
struct ProgressLine {
    total: Duration,
    last_print: Option<Instant>,
    last_ops: u64,
    width: usize,
}

impl ProgressLine {
    fn new(total: Duration) -> ProgressLine {
        ProgressLine {
            total,
            last_print: None,
            last_ops: 0,
            width: 0,
        }
    }

    fn maybe_print(&mut self, out: &mut dyn Write, shared: &Shared, fault: Option<&str>) {
        if self
            .last_print
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.print(out, shared, fault);
    }

    fn print(&mut self, out: &mut dyn Write, shared: &Shared, fault: Option<&str>) {
        let (ops, errors) = shared.counters();
        let since = self
            .last_print
            .map(|t| t.elapsed().as_secs_f64())
            .unwrap_or(0.0);
        let rate = if since > 0.0 {
            ((ops - self.last_ops) as f64 / since).round() as u64
        } else {
            0
        };
        let text = format!(
            "[{:>3}s/{}s] {} ops  {}/s  errors {}  fault: {}",
            shared.epoch.elapsed().as_secs(),
            self.total.as_secs(),
            thousands(ops),
            thousands(rate),
            thousands(errors),
            fault.unwrap_or("none")
        );
        let pad = self.width.saturating_sub(text.chars().count());
        let _ = write!(out, "\r{text}{}", " ".repeat(pad));
        let _ = out.flush();
        self.width = text.chars().count();
        self.last_print = Some(Instant::now());
        self.last_ops = ops;
    }
}

/// What the verdict text mentions besides the verdict itself.
struct Notes {
    heal_failures: Vec<String>,
    unanswered: Vec<String>,
    differences: Vec<String>,
    converge_wait: Duration,
    crashed_workers: usize,
    ledger_acked: usize,
}

/// verdict.txt after its first line: the run, the figures, the schedule, and whatever
/// went wrong in detail.
fn details(
    opts: &ChaosOptions,
    verdict: &Verdict,
    faults: &[FaultRecord],
    notes: &Notes,
    end_us: u64,
) -> String {
    let f = &verdict.figures;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "run: target {}, seed {} (replay the same choices with -seed {}), {:.1} s",
        opts.target.name(),
        opts.seed,
        opts.seed,
        end_us as f64 / 1e6
    );
    let _ = writeln!(
        s,
        "ops: {} ({}/s); checked {} ops on {} keys in {} search steps",
        thousands(f.ops),
        thousands(f.ops_per_s.round() as u64),
        thousands(verdict.checked.ops as u64),
        verdict.checked.keys,
        thousands(verdict.checked.steps)
    );
    let kinds: Vec<String> = f
        .by_kind
        .iter()
        .map(|(k, n)| format!("{k} {}", thousands(*n)))
        .collect();
    let _ = writeln!(s, "by kind: {}", kinds.join(", "));
    let _ = writeln!(
        s,
        "ledger writes acknowledged: {}, lost: {}",
        thousands(notes.ledger_acked as u64),
        verdict.lost.len()
    );
    for lost in verdict.lost.iter().take(20) {
        let _ = writeln!(
            s,
            "  lost {} = {:?}: missing on {}",
            lost.key,
            lost.value,
            lost.missing_on.join(", ")
        );
    }
    let _ = writeln!(
        s,
        "convergence: {} after {:.1} s",
        if verdict.converged { "yes" } else { "no" },
        notes.converge_wait.as_secs_f64()
    );
    for d in notes.differences.iter().take(20) {
        let _ = writeln!(s, "  differs: {d}");
    }
    for u in notes.unanswered.iter().take(20) {
        let _ = writeln!(s, "  final read unanswered: {u}");
    }
    let _ = writeln!(s, "faults ({}):", faults.len());
    for (i, fault) in faults.iter().enumerate() {
        let availability = f.per_fault.get(i);
        let failover = f
            .failovers
            .iter()
            .find(|x| x.fault == i)
            .map(|x| match x.us {
                Some(us) => format!(", failover {} ms", us / 1000),
                None => ", no acknowledged write after it".to_string(),
            })
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  {:>7.1}..{:>7.1} s  {}{}{}{}",
            fault.start_us as f64 / 1e6,
            fault.end_us as f64 / 1e6,
            fault.description,
            availability
                .map(|a| format!(
                    "; available {:.0}% ({} ok, {} failed)",
                    a.available * 100.0,
                    thousands(a.ok),
                    thousands(a.failed)
                ))
                .unwrap_or_default(),
            failover,
            fault
                .error
                .as_ref()
                .map(|e| format!("; FAILED: {e}"))
                .unwrap_or_default()
        );
    }
    let _ = writeln!(s, "unavailable windows ({}):", f.unavailable.len());
    for (a, b) in &f.unavailable {
        let _ = writeln!(
            s,
            "  {:>7.1}..{:>7.1} s ({:.1} s)",
            *a as f64 / 1e6,
            *b as f64 / 1e6,
            (b - a) as f64 / 1e6
        );
    }
    for h in &notes.heal_failures {
        let _ = writeln!(s, "clean-up failed: {h}");
    }
    if notes.crashed_workers > 0 {
        let _ = writeln!(
            s,
            "{} workers failed to start or crashed; their operations are missing from the history",
            notes.crashed_workers
        );
    }
    match &verdict.checked.linearity {
        Linearity::Yes => {}
        Linearity::No { explanation, .. } => {
            let _ = writeln!(s, "\n{explanation}");
        }
        Linearity::Unknown { key } => {
            let _ = writeln!(
                s,
                "\nlinearizability unknown: key {key} exceeded the search budget of {} steps",
                thousands(opts.check_budget)
            );
        }
        Linearity::Malformed(e) => {
            let _ = writeln!(s, "\nthe history could not be checked: {e}");
        }
    }
    let unused: Vec<&str> = opts
        .faults
        .iter()
        .filter(|k| !faults.iter().any(|f| f.kind == **k))
        .map(|k: &FaultKind| k.name())
        .collect();
    if !unused.is_empty() {
        let _ = writeln!(
            s,
            "fault kinds asked for but not injected: {}",
            unused.join(", ")
        );
    }
    s
}

/// The history of a finished run, for callers that want to look at it.
pub fn load_history(path: &std::path::Path) -> Result<Vec<Record>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line).map_err(|e| format!("{}:{}: {e}", path.display(), i + 1))
        })
        .collect()
}
