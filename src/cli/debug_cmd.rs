//! `cairn debug`: tools for an operator looking at a stopped agent's data directory.
//!
//! `cairn debug repair-log -data-dir DIR [-yes]` is the deliberate way out when the
//! agent refuses to start because its raft log is damaged (recovery never cuts
//! anything but a torn tail by itself): it reports the first damage (file, byte offset,
//! log index) and, once confirmed, cuts the log there. Nothing is deleted: the damaged
//! segment is copied, and every later segment moved, to `DIR/raft/damaged-<unix time>/`.
//! Entries from the damage on that no snapshot covers are lost on this server; in a
//! cluster, rebuilding the server from the leader is the lossless alternative. When the
//! newest snapshot that verifies covers the damage, nothing is lost: the damaged segment
//! and the ones before it are moved aside instead, and the log continues the snapshot.
//!
//! Exit codes: 0 nothing to do or repaired, 1 error (or not confirmed), 2 usage.

use super::argv::{self, FlagKind, FlagSpec, Prepared};
use super::Output;
use actors::log_store::FileBackend;
use actors::snapshot_store::{FileSnapshotStore, SnapshotBackend, SnapshotData};
use std::io::BufRead;
use std::path::{Path, PathBuf};

const REPAIR_FLAGS: &[FlagSpec] = &[
    FlagSpec {
        name: "data-dir",
        kind: FlagKind::Value,
        value_name: "<path>",
        help: "The agent's data directory (its raft log is in <path>/raft).",
    },
    FlagSpec {
        name: "yes",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Repair without asking for confirmation (for scripts).",
    },
];

const USAGE: &str = "Usage: cairn debug <subcommand> [options]\n\nSubcommands:\n    repair-log    Report damage in a stopped agent's raft log and cut the log there\n";

pub fn repair_log_usage() -> String {
    let mut out = String::from(
        "Usage: cairn debug repair-log -data-dir=<path> [-yes]\n\n  \
         Checks the raft log of a STOPPED agent. If it is damaged, reports where\n  \
         (file, byte offset, log index) and, once confirmed, cuts the log at the\n  \
         damage: the damaged segment is copied and later segments are moved to\n  \
         <path>/raft/damaged-<unix time>/. Entries after the damage that no snapshot\n  \
         covers are lost on this server; in a cluster, rebuilding the server from the\n  \
         leader loses nothing. Exit codes: 0 nothing to do or repaired, 1 error,\n  \
         2 usage.\n\nOptions:\n",
    );
    for spec in REPAIR_FLAGS {
        let head = match spec.kind {
            FlagKind::Bool => format!("  -{}", spec.name),
            _ => format!("  -{}={}", spec.name, spec.value_name),
        };
        out.push_str(&format!("\n{head}\n     {}\n", spec.help));
    }
    out
}

/// `cairn debug ...`
pub fn run(args: &[String], io: &mut Output<'_>) -> i32 {
    match args.split_first() {
        Some((sub, rest)) if sub == "repair-log" => {
            let stdin = std::io::stdin();
            repair_log(rest, io, &mut stdin.lock())
        }
        Some((help, _)) if matches!(help.as_str(), "-h" | "-help" | "--help") => {
            let _ = write!(io.out, "{USAGE}");
            0
        }
        Some((other, _)) => {
            let _ = writeln!(io.err, "Unknown debug subcommand: {other:?}\n\n{USAGE}");
            2
        }
        None => {
            let _ = write!(io.err, "{USAGE}");
            2
        }
    }
}

/// An inspection's `(segments, first_index, last_index, tidy)` (see `CleanSummary`).
macro_rules! clean_summary {
    ($i:expr) => {
        (
            $i.segments,
            $i.first_index,
            $i.last_index,
            $i.tidy.as_slice(),
        )
    };
}

struct RepairArgs {
    data_dir: PathBuf,
    yes: bool,
}

/// `Ok(None)`: help was asked for. `Err`: a usage error to print.
fn parse_repair_args(args: &[String]) -> Result<Option<RepairArgs>, String> {
    let (flags, extra) = match argv::prepare(args, REPAIR_FLAGS).map_err(|e| e.to_string())? {
        Prepared::Help => return Ok(None),
        Prepared::Args { flags, extra } => (flags, extra),
    };
    if let Some(first) = extra.first() {
        return Err(format!("unexpected argument: {first:?}"));
    }
    let mut data_dir = None;
    let mut yes = false;
    for flag in flags {
        // The pre-pass writes every flag as `--name=value`.
        match flag.trim_start_matches("--").split_once('=') {
            Some(("data-dir", v)) if !v.is_empty() => data_dir = Some(PathBuf::from(v)),
            Some(("data-dir", _)) => return Err("-data-dir must not be empty".into()),
            Some(("yes", v)) => yes = v == "true",
            _ => return Err(format!("flag provided but not defined: {flag}")),
        }
    }
    let data_dir = data_dir.ok_or("missing required flag -data-dir")?;
    Ok(Some(RepairArgs { data_dir, yes }))
}

/// The repair command with its confirmation read from `input`.
pub fn repair_log(args: &[String], io: &mut Output<'_>, input: &mut dyn BufRead) -> i32 {
    let parsed = match parse_repair_args(args) {
        Ok(Some(parsed)) => parsed,
        Ok(None) => {
            let _ = write!(io.out, "{}", repair_log_usage());
            return 0;
        }
        Err(message) => {
            let _ = writeln!(
                io.err,
                "{message}\nRun 'cairn debug repair-log -h' for the list of flags."
            );
            return 2;
        }
    };
    let raft = parsed.data_dir.join("raft");
    let inspection = match FileBackend::inspect(&raft) {
        Ok(i) => i,
        Err(e) => {
            let _ = writeln!(io.err, "==> cannot check the raft log: {e}");
            return 1;
        }
    };
    let Some(damage) = inspection.damage.clone() else {
        report_clean(&raft, clean_summary!(inspection), io);
        return 0;
    };
    let covered_by = newest_verified_snapshot(&raft);
    if let Some(index) = covered_by {
        let _ = writeln!(
            io.out,
            "The newest snapshot that verifies covers the log up to index {index}: if the\n\
             damage lies below it, the damaged segment and older ones are moved aside\n\
             instead and no entry is lost."
        );
    }
    report_damage(
        &raft,
        (&damage.path, damage.offset, damage.index, &damage.detail),
        io,
    );
    if !parsed.yes && !confirmed(io, input) {
        let _ = writeln!(io.err, "Not confirmed; nothing was changed.");
        return 1;
    }
    let stamp = unique_stamp(&raft);
    match FileBackend::repair(&raft, &damage, &stamp, covered_by) {
        Ok(report) => {
            let _ = writeln!(
                io.out,
                "Repaired. Damaged data kept in {}:",
                report.aside.display()
            );
            if let Some((path, len)) = &report.cut {
                let _ = writeln!(
                    io.out,
                    "  cut {} to {len} bytes (a full copy is kept)",
                    path.display()
                );
            }
            for moved in &report.moved {
                let _ = writeln!(io.out, "  moved {}", moved.display());
            }
            if let Some(created) = &report.created {
                let _ = writeln!(io.out, "  created the empty segment {}", created.display());
            }
            if let Some(left) = &report.after.damage {
                let _ = writeln!(
                    io.err,
                    "==> the log is still damaged at {} (byte offset {}); run the command again",
                    left.path.display(),
                    left.offset
                );
                return 1;
            }
            report_clean(&raft, clean_summary!(report.after), io);
            0
        }
        Err(e) => {
            let _ = writeln!(io.err, "==> repair failed: {e}");
            1
        }
    }
}

/// The index of the newest retained snapshot whose every checksum holds (read whole).
fn newest_verified_snapshot(raft: &Path) -> Option<u64> {
    let snapshots = FileSnapshotStore::open(&raft.join("snapshots")).ok()?;
    let ids = snapshots.list().ok()?;
    // Read every byte so the data checksum is checked; the records are not decoded.
    let mut drain = |_: &_, data: SnapshotData<'_>| match data {
        SnapshotData::Records(r) => std::io::copy(r, &mut std::io::sink())
            .map(|_| ())
            .map_err(|e| e.to_string()),
        SnapshotData::V1Store(_) => Ok(()),
    };
    ids.into_iter()
        .find_map(|id| snapshots.load_with(id, &mut drain).ok().map(|m| m.index.0))
}

/// What an intact log holds: segments, first and last index, crash leftovers.
type CleanSummary<'a> = (usize, Option<u64>, Option<u64>, &'a [String]);

fn report_clean(raft: &Path, (segments, first, last, tidy): CleanSummary<'_>, io: &mut Output<'_>) {
    let range = match (first, last) {
        (Some(first), Some(last)) => format!("entries {first} to {last}"),
        _ => "no entries".to_string(),
    };
    let _ = writeln!(
        io.out,
        "The raft log in {} is intact: {} segment(s), {range}.",
        raft.display(),
        segments
    );
    for tidy in tidy {
        let _ = writeln!(
            io.out,
            "  the agent tidies this crash leftover at start: {tidy}"
        );
    }
}

/// Where the log is damaged: file, byte offset, first log index affected, what.
type DamageSummary<'a> = (&'a Path, u64, u64, &'a str);

fn report_damage(
    raft: &Path,
    (path, offset, index, detail): DamageSummary<'_>,
    io: &mut Output<'_>,
) {
    let _ = writeln!(
        io.out,
        "The raft log in {} is damaged:\n  file:   {}\n  offset: {}\n  index:  {}\n  {}\n",
        raft.display(),
        path.display(),
        offset,
        index,
        detail
    );
    let _ = writeln!(
        io.out,
        "Repairing keeps the log up to index {} and moves the rest to {}/damaged-<unix time>/.\n\
         Entries from index {} on that no snapshot covers are lost on this server; in a\n\
         cluster, rebuilding this server from the leader loses nothing.",
        index.saturating_sub(1),
        raft.display(),
        index
    );
}

fn confirmed(io: &mut Output<'_>, input: &mut dyn BufRead) -> bool {
    let _ = write!(io.out, "Type 'yes' to repair: ");
    let _ = io.out.flush();
    let mut line = String::new();
    input.read_line(&mut line).is_ok() && line.trim() == "yes"
}

/// `damaged-<unix seconds>`, with a suffix if that directory already exists.
fn unique_stamp(raft: &Path) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut stamp = secs.to_string();
    for n in 1..1000 {
        if !raft.join(format!("damaged-{stamp}")).exists() {
            break;
        }
        stamp = format!("{secs}-{n}");
    }
    stamp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::capture;

    #[test]
    fn usage_errors_exit_2() {
        let (code, _, err) = capture(&["debug", "repair-log", "-bogus"]);
        assert_eq!(code, 2);
        assert!(
            err.contains("flag provided but not defined: -bogus"),
            "{err}"
        );
        let (code, _, err) = capture(&["debug", "repair-log"]);
        assert_eq!(code, 2);
        assert!(err.contains("missing required flag -data-dir"), "{err}");
        let (code, _, err) = capture(&["debug", "repair-log", "-data-dir", "/x", "extra"]);
        assert_eq!(code, 2);
        assert!(err.contains("unexpected argument"), "{err}");
        assert_eq!(capture(&["debug", "frob"]).0, 2);
        assert_eq!(capture(&["debug"]).0, 2);
        let (code, out, _) = capture(&["debug", "repair-log", "-h"]);
        assert_eq!(code, 0);
        assert!(out.contains("-data-dir=<path>"));
    }

    #[test]
    fn a_missing_data_dir_is_an_error() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("nope");
        let (code, _, err) = capture(&["debug", "repair-log", "-data-dir", dir.to_str().unwrap()]);
        assert_eq!(code, 1);
        assert!(err.contains("cannot check the raft log"), "{err}");
    }

    fn run_with_input(dir: &Path, answer: &str) -> (i32, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let args = vec!["-data-dir".to_string(), dir.display().to_string()];
        let code = repair_log(
            &args,
            &mut Output {
                out: &mut out,
                err: &mut err,
            },
            &mut answer.as_bytes(),
        );
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[test]
    fn a_clean_log_needs_nothing_and_a_damaged_one_asks_first() {
        use actors::log_store::{FileOptions, LogBackend};
        use protocol::ids::{LogIndex, Term};
        use protocol::raft::{Entry, Payload};
        let tmp = tempfile::tempdir().unwrap();
        let raft = tmp.path().join("raft");
        {
            let (mut b, _) = FileBackend::open(
                &raft,
                FileOptions {
                    segment_max_bytes: 500,
                    ..FileOptions::default()
                },
            )
            .unwrap();
            let entries: Vec<Entry> = (1..=20)
                .map(|i| Entry {
                    term: Term(1),
                    index: LogIndex(i),
                    payload: Payload::Command(vec![7; 100]),
                })
                .collect();
            b.append(&entries).unwrap();
            b.sync().unwrap();
        }
        let mut segs: Vec<_> = std::fs::read_dir(&raft)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "seg"))
            .collect();
        segs.sort();
        let newest = segs.last().unwrap().clone();
        let newest_first: u64 = newest
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
            .unwrap();
        assert!(segs.len() >= 3 && newest_first > 2, "{segs:?}");
        let (code, out, _) = run_with_input(tmp.path(), "");
        assert_eq!(code, 0);
        let intact = format!("intact: {} segment(s), entries 1 to 20", segs.len());
        assert!(out.contains(&intact), "{out}");
        // Lose the newest segment.
        std::fs::remove_file(&newest).unwrap();
        let (code, out, err) = run_with_input(tmp.path(), "no\n");
        assert_eq!(code, 1, "{out}{err}");
        assert!(out.contains("is damaged"), "{out}");
        assert!(err.contains("nothing was changed"), "{err}");
        let (code, out, err) = run_with_input(tmp.path(), "yes\n");
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("Repaired."), "{out}");
        let intact = format!(
            "intact: {} segment(s), entries 1 to {}",
            segs.len() - 1,
            newest_first - 1
        );
        assert!(out.contains(&intact), "{out}");
        assert!(out.contains(&format!("index:  {newest_first}")), "{out}");
        let (code, out, _) = run_with_input(tmp.path(), "");
        assert_eq!(code, 0);
        assert!(out.contains("intact"), "{out}");
    }
}
