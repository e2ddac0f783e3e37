//! `cairn chaos`: a failure-injection run against a local cluster, with a verdict
//! (see `crate::chaos`). This module only parses the command line, gets the cluster
//! from `chaos::targets` and prints the outcome; exit code 0 only for a clean verdict
//! (linearizable, nothing lost, nodes converged), 1 for anything else, including
//! usage errors.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use super::api_client::{self, ParsedArgs};
use super::argv::{FlagKind, FlagSpec};
use super::Output;
use crate::chaos::target::{Cluster, FaultKind};
use crate::chaos::{self, ChaosOptions, TargetKind};
use crate::duration::parse_go_duration;

/// The longest run (16 workers at the default pace make a few million operations in it;
/// the whole history is held in memory and checked at the end).
const MAX_DURATION: Duration = Duration::from_secs(30 * 60);

const fn value(name: &'static str, value_name: &'static str, help: &'static str) -> FlagSpec {
    FlagSpec {
        name,
        kind: FlagKind::Value,
        value_name,
        help,
    }
}

const FLAGS: &[FlagSpec] = &[
    value("target", "<cairn|etcd>", "The system under test. Default cairn."),
    value("servers", "<n>", "Servers (voting, data-holding nodes). Default 3."),
    value("clients", "<n>", "Client agents (cairn only; etcd has none). Default 2."),
    value("duration", "<duration>", "How long the workload and the faults run, e.g. 60s. Default 60s."),
    value(
        "faults",
        "<kinds>",
        "Comma-separated fault kinds: kill, pause, partition, restart, membership, slow-disk (or none). Default kill,pause,partition.",
    ),
    value("seed", "<n>", "Seed of the workload and fault schedule. Default: random (printed, so a run can be replayed)."),
    value("keys", "<n>", "Shared keys the workload uses. Default 16."),
    value("workers", "<n>", "Workload threads. Default two per node, at most 16."),
    value("out", "<dir>", "Where history.jsonl, verdict.txt and report.html go. Default chaos-seed<seed>."),
    value("dir", "<dir>", "Where the cluster lives (data dirs, logs). Default: cluster/ in -out. A cairn cluster already up there (scripts/cluster up -dir DIR) is attached to and left running."),
    value("attach", "<addrs>", "Attach to running cairn agents instead of starting a cluster: their HTTP addresses, comma-separated. Faults: partition and slow-disk if they run with -fault-injection; nothing is killed or paused."),
    value("base", "<ipv4>", "The first loopback address of the nodes. Default 127.0.0.21."),
    FlagSpec {
        name: "unsafe-local-reads",
        kind: FlagKind::Bool,
        value_name: "",
        help: "cairn: let followers answer default reads locally (unsafe; the verdict should catch it).",
    },
    value("timeout", "<duration>", "Timeout of every workload request. Default 3s."),
    value("think", "<duration>", "A worker's pause between operations. Default 2ms."),
];

pub fn usage() -> String {
    api_client::usage(
        "Usage: cairn chaos [options]\n\n  Runs a seeded KV workload against a local cluster while injecting faults\n  (kill, pause, partition, restart, membership, slow disk), then checks the history for\n  linearizability, looks for lost acknowledged writes and checks that the\n  servers converged. Writes history.jsonl, verdict.txt and report.html.\n  Exit code 0 only for a clean verdict. A seed replays the same operations\n  and fault plan; timing (and so the outcome) may still differ. See\n  docs/chaos.md.",
        FLAGS,
    )
}

pub fn run(args: &[String], io: &mut Output<'_>) -> i32 {
    run_with(args, io, &chaos::targets::start_target)
}

/// A cluster for a run's options.
pub type StartTarget = dyn Fn(&ChaosOptions) -> Result<Box<dyn Cluster>, String>;

/// [`run`] with the cluster from `start` (tests pass an in-memory one).
pub fn run_with(args: &[String], io: &mut Output<'_>, start: &StartTarget) -> i32 {
    let opts = match parse(args) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            let _ = write!(io.out, "{}", usage());
            return 0;
        }
        Err(message) => {
            let _ = writeln!(
                io.err,
                "{message}\nRun 'cairn chaos -h' for the list of flags."
            );
            return 1;
        }
    };
    let _ = writeln!(
        io.err,
        "seed {} (replay with -seed {})",
        opts.seed, opts.seed
    );
    let mut cluster = match start(&opts) {
        Ok(cluster) => cluster,
        Err(e) => {
            let _ = writeln!(
                io.err,
                "Error starting the {} cluster: {e}",
                opts.target.name()
            );
            return 1;
        }
    };
    let result = chaos::run(&opts, cluster.as_mut(), io.err);
    cluster.shutdown();
    match result {
        Ok(outcome) => {
            let _ = writeln!(io.out, "{}", outcome.line);
            if let chaos::verdict::Linearity::No { explanation, .. } =
                &outcome.verdict.checked.linearity
            {
                let _ = writeln!(io.out, "\n{explanation}");
            }
            let _ = writeln!(
                io.out,
                "history: {}\nverdict: {}\nreport:  {}",
                outcome.history_path.display(),
                outcome.verdict_path.display(),
                outcome.report_path.display()
            );
            outcome.exit_code()
        }
        Err(e) => {
            let _ = writeln!(io.err, "Error: the run failed: {e}");
            1
        }
    }
}

/// The options of a command line; `Ok(None)` when help was asked for.
pub fn parse(args: &[String]) -> Result<Option<ChaosOptions>, String> {
    let Some(parsed) = api_client::parse_args(args, FLAGS).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    if let Some(extra) = parsed.args.first() {
        return Err(format!("unexpected argument: {extra:?}"));
    }
    let seed = match parsed.value("seed") {
        Some(text) => text
            .parse::<u64>()
            .map_err(|_| format!("invalid -seed {text:?}: expected a whole number"))?,
        None => rand::random(),
    };
    let mut opts = ChaosOptions::new(seed);
    if let Some(text) = parsed.value("target") {
        opts.target = TargetKind::parse(text)
            .ok_or_else(|| format!("unknown -target {text:?}: expected cairn or etcd"))?;
    }
    opts.servers = count(&parsed, "servers", opts.servers, 1, 15)?;
    opts.clients = count(&parsed, "clients", opts.clients, 0, 15)?;
    opts.keys = count(&parsed, "keys", opts.keys, 1, 1_000)?;
    if parsed.value("workers").is_some() {
        opts.workers = Some(count(&parsed, "workers", 0, 1, 64)?);
    }
    opts.duration = duration(&parsed, "duration", opts.duration, false)?;
    // The history is kept in memory and checked at the end: bound it.
    if opts.duration > MAX_DURATION {
        return Err(format!(
            "-duration {} is too long: at most {} (the history is kept in memory)",
            crate::duration::format_go_duration(opts.duration),
            crate::duration::format_go_duration(MAX_DURATION)
        ));
    }
    opts.request_timeout = duration(&parsed, "timeout", opts.request_timeout, false)?;
    opts.think_time = duration(&parsed, "think", opts.think_time, true)?;
    if let Some(text) = parsed.value("faults") {
        opts.faults = parse_faults(text)?;
    }
    opts.out_dir = match parsed.value("out") {
        Some("") => return Err("-out must not be empty".into()),
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(format!("chaos-seed{seed}")),
    };
    opts.data_dir = match parsed.value("dir") {
        Some("") => return Err("-dir must not be empty".into()),
        Some(dir) => Some(PathBuf::from(dir)),
        None => None,
    };
    if let Some(text) = parsed.value("base") {
        opts.base = text
            .parse::<Ipv4Addr>()
            .map_err(|_| format!("invalid -base {text:?}: expected an IPv4 address"))?;
        if !opts.base.is_loopback() {
            return Err(format!(
                "-base {text} is not a loopback address (127.x.y.z)"
            ));
        }
    }
    opts.unsafe_local_reads = parsed.bool("unsafe-local-reads");
    if opts.target == TargetKind::Etcd && parsed.value("clients").is_none() {
        opts.clients = 0;
    }
    if let Some(text) = parsed.value("attach") {
        opts.attach = text
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        if opts.attach.is_empty() {
            return Err(
                "-attach needs HTTP addresses: -attach 127.0.0.21:8500,127.0.0.22:8500".into(),
            );
        }
        if opts.target != TargetKind::Cairn {
            return Err("-attach works with cairn agents only".into());
        }
    }
    if opts.target == TargetKind::Etcd && opts.clients > 0 {
        return Err("etcd has no client agents: use -clients 0 with -target etcd".into());
    }
    if opts.target == TargetKind::Etcd && opts.unsafe_local_reads {
        return Err("-unsafe-local-reads is a cairn setting; etcd has no such mode".into());
    }
    Ok(Some(opts))
}

/// `-faults kill,pause,partition` (`none` or empty: no faults), duplicates dropped.
pub fn parse_faults(text: &str) -> Result<Vec<FaultKind>, String> {
    let mut kinds = Vec::new();
    if text.trim().is_empty() || text.trim() == "none" {
        return Ok(kinds);
    }
    for name in text.split(',').map(str::trim) {
        let kind = FaultKind::parse(name).ok_or_else(|| {
            let known: Vec<&str> = FaultKind::ALL.iter().map(|k| k.name()).collect();
            format!(
                "unknown fault {name:?} in -faults: expected some of {}",
                known.join(", ")
            )
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

fn count(
    parsed: &ParsedArgs,
    name: &str,
    default: usize,
    min: usize,
    max: usize,
) -> Result<usize, String> {
    let Some(text) = parsed.value(name) else {
        return Ok(default);
    };
    match text.parse::<usize>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid -{name} {text:?}: expected a whole number from {min} to {max}"
        )),
    }
}

fn duration(
    parsed: &ParsedArgs,
    name: &str,
    default: Duration,
    zero_ok: bool,
) -> Result<Duration, String> {
    let Some(text) = parsed.value(name) else {
        return Ok(default);
    };
    match parse_go_duration(text) {
        Some(d) if zero_ok || !d.is_zero() => Ok(d),
        Some(_) => Err(format!("invalid -{name} {text:?}: must be more than zero")),
        None => Err(format!(
            "invalid -{name} {text:?}: expected a duration such as 60s, 1m30s or 500ms"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::fake::{FakeCluster, Faulty};

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn parsed(list: &[&str]) -> ChaosOptions {
        parse(&args(list)).expect("parses").expect("not help")
    }

    fn refused(list: &[&str]) -> String {
        parse(&args(list)).expect_err("refused")
    }

    #[test]
    fn the_documented_command_line_parses() {
        let opts = parsed(&[
            "-servers",
            "3",
            "-clients",
            "2",
            "-duration",
            "60s",
            "-faults",
            "kill,pause,partition,restart",
            "-seed",
            "7",
            "-keys",
            "8",
            "-workers",
            "5",
            "-out",
            "/tmp/x",
            "-dir",
            "/tmp/d",
            "-base",
            "127.0.0.40",
            "-target=cairn",
            "-unsafe-local-reads",
            "-timeout",
            "1500ms",
            "-think=0",
        ]);
        assert_eq!(opts.servers, 3);
        assert_eq!(opts.clients, 2);
        assert_eq!(opts.duration, Duration::from_secs(60));
        assert_eq!(
            opts.faults,
            [
                FaultKind::Kill,
                FaultKind::Pause,
                FaultKind::Partition,
                FaultKind::Restart
            ]
        );
        assert_eq!(opts.seed, 7);
        assert_eq!((opts.keys, opts.workers), (8, Some(5)));
        assert_eq!(opts.out_dir, PathBuf::from("/tmp/x"));
        assert_eq!(opts.data_dir, Some(PathBuf::from("/tmp/d")));
        assert_eq!(opts.base, Ipv4Addr::new(127, 0, 0, 40));
        assert!(opts.unsafe_local_reads);
        assert_eq!(opts.request_timeout, Duration::from_millis(1500));
        assert_eq!(opts.think_time, Duration::ZERO);
    }

    #[test]
    fn defaults() {
        let opts = parsed(&["-seed", "9"]);
        assert_eq!(opts, ChaosOptions::new(9));
        assert_eq!(opts.out_dir, PathBuf::from("chaos-seed9"));
        // Without -seed, a random one.
        let a = parsed(&[]).seed;
        let b = parsed(&[]).seed;
        assert_ne!(a, b);
        assert!(parse(&args(&["-h"])).expect("help").is_none());
    }

    #[test]
    fn bad_input_is_a_clear_error() {
        assert_eq!(
            refused(&["-faults", "kill,explode"]),
            "unknown fault \"explode\" in -faults: expected some of kill, pause, partition, restart, membership, slow-disk"
        );
        assert_eq!(
            refused(&["-duration", "60"]),
            "invalid -duration \"60\": expected a duration such as 60s, 1m30s or 500ms"
        );
        assert_eq!(
            refused(&["-duration", "0s"]),
            "invalid -duration \"0s\": must be more than zero"
        );
        assert_eq!(
            refused(&["-servers", "0"]),
            "invalid -servers \"0\": expected a whole number from 1 to 15"
        );
        assert_eq!(
            refused(&["-seed", "x"]),
            "invalid -seed \"x\": expected a whole number"
        );
        assert_eq!(
            refused(&["-target", "zk"]),
            "unknown -target \"zk\": expected cairn or etcd"
        );
        assert_eq!(
            refused(&["-base", "10.0.0.1"]),
            "-base 10.0.0.1 is not a loopback address (127.x.y.z)"
        );
        assert_eq!(
            refused(&["-bogus"]),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(refused(&["extra"]), "unexpected argument: \"extra\"");
        assert!(refused(&["-target", "etcd", "-clients", "1"]).contains("-clients 0"));
        assert_eq!(parse_faults("none").expect("none"), []);
        assert_eq!(parse_faults("kill,kill").expect("dedup"), [FaultKind::Kill]);
    }

    fn capture_with(list: &[&str], faulty: Faulty) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let start = move |opts: &ChaosOptions| -> Result<Box<dyn Cluster>, String> {
            Ok(Box::new(FakeCluster::new(
                opts.servers,
                opts.clients,
                faulty,
            )))
        };
        let code = run_with(
            &args(list),
            &mut Output {
                out: &mut out,
                err: &mut err,
            },
            &start,
        );
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[test]
    fn a_clean_run_prints_the_verdict_and_the_files_and_exits_0() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out_dir = dir.path().join("out");
        let out_arg = out_dir.to_string_lossy().into_owned();
        let (code, out, err) = capture_with(
            &[
                "-duration",
                "1s",
                "-seed",
                "5",
                "-keys",
                "3",
                "-out",
                &out_arg,
            ],
            Faulty::default(),
        );
        assert_eq!(code, 0, "{out}\n{err}");
        assert!(out.starts_with("linearizable: yes ("), "{out}");
        assert!(out.contains(&format!(
            "report:  {}",
            out_dir.join("report.html").display()
        )));
        assert!(err.starts_with("seed 5 (replay with -seed 5)\n"), "{err}");
        assert!(out_dir.join("history.jsonl").exists());
    }

    #[test]
    fn a_violation_prints_its_explanation_and_exits_1() {
        let dir = tempfile::tempdir().expect("tempdir");
        let out_arg = dir.path().to_string_lossy().into_owned();
        let faulty = Faulty {
            buggy_node: Some(0),
            ..Faulty::default()
        };
        let (code, out, _) =
            capture_with(&["-duration", "1s", "-keys", "3", "-out", &out_arg], faulty);
        assert_eq!(code, 1, "{out}");
        assert!(out.starts_with("linearizable: no ("), "{out}");
        assert!(out.contains("\nnot linearizable: key"), "{out}");
    }

    #[test]
    fn exit_codes() {
        let (code, _, err) = crate::cli::tests::capture(&["chaos", "-faults", "nope"]);
        assert_eq!(code, 1);
        assert!(err.contains("unknown fault \"nope\""), "{err}");
        assert!(err.contains("Run 'cairn chaos -h'"), "{err}");
        let (code, out, _) = crate::cli::tests::capture(&["chaos", "-h"]);
        assert_eq!(code, 0);
        assert!(out.starts_with("Usage: cairn chaos"));
    }
}
