//! `cairn cluster up|status|kill|restart|pause|resume|partition|heal|down`: a local
//! cluster on loopback from one command (`scripts/cluster` wraps it). A thin layer over
//! [`crate::localcluster::LocalCluster`]: parse, call, print; every error is one line
//! on stderr and exit code 1.

use super::api_client::{self, ParsedArgs};
use super::argv::{FlagKind, FlagSpec};
use super::columns::columnize;
use super::Output;
use crate::localcluster::spec::{ClusterSpec, DEFAULT_BASE, DEFAULT_DIR};
use crate::localcluster::status::{describe_partition, rows};
use crate::localcluster::{ClusterError, LocalCluster, UpOutcome};
use std::path::PathBuf;

const DIR_FLAG: FlagSpec = FlagSpec {
    name: "dir",
    kind: FlagKind::Value,
    value_name: "<path>",
    help: "The cluster's folder: node data, logs and cluster.json (default /tmp/cairn-cluster).",
};

const UP_FLAGS: [FlagSpec; 6] = [
    FlagSpec {
        name: "servers",
        kind: FlagKind::Value,
        value_name: "<n>",
        help: "Number of servers, 1 to 7 (default 3).",
    },
    FlagSpec {
        name: "clients",
        kind: FlagKind::Value,
        value_name: "<n>",
        help: "Number of client agents, 0 to 16 (default 0).",
    },
    FlagSpec {
        name: "base",
        kind: FlagKind::Value,
        value_name: "<ip>",
        help: "Address of node1; node N gets base + N - 1 (default 127.0.0.21).",
    },
    DIR_FLAG,
    FlagSpec {
        name: "agent-arg",
        kind: FlagKind::List,
        value_name: "<arg>",
        help: "An extra argument for every agent (e.g. -agent-arg=-debug-unsafe-local-reads). \
               Repeatable.",
    },
    FlagSpec {
        name: "binary",
        kind: FlagKind::Value,
        value_name: "<path>",
        help: "The cairn binary the agents run (default: this one).",
    },
];

const DOWN_FLAGS: [FlagSpec; 2] = [
    DIR_FLAG,
    FlagSpec {
        name: "keep",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Keep the folder (data dirs and logs) after stopping the agents.",
    },
];

const ONLY_DIR: [FlagSpec; 1] = [DIR_FLAG];

pub fn usage() -> String {
    "Usage: cairn cluster <subcommand> [options] [args]\n\n\
     \x20 Runs a local cluster on loopback: N servers and M client agents, each on its\n\
     \x20 own address with the standard ports, under one folder; faults on demand.\n\n\
     Subcommands:\n\
     \x20   up          Start the cluster and wait until it is ready (-servers -clients -base -agent-arg -binary)\n\
     \x20   status      Show each node's process, leader and alive members, and the partition\n\
     \x20   kill        SIGKILL a node: kill NODE\n\
     \x20   restart     Restart a node with its data dir: restart NODE\n\
     \x20   pause       SIGSTOP a node: pause NODE\n\
     \x20   resume      SIGCONT a node: resume NODE\n\
     \x20   partition   Split the nodes: partition node1 / node2,node3 (nodes in no group stay connected)\n\
     \x20   heal        Lift every partition\n\
     \x20   down        Stop every agent and remove the folder (-keep keeps it)\n\n\
     Every subcommand takes -dir <path> (default /tmp/cairn-cluster), before its arguments.\n\
     Run 'cairn cluster <subcommand> -h' for its flags.\n"
        .to_string()
}

fn sub_usage(sub: &str, args: &str, about: &str, specs: &[FlagSpec]) -> String {
    api_client::usage(
        &format!("Usage: cairn cluster {sub} [options]{args}\n\n  {about}"),
        specs,
    )
}

pub fn run(args: &[String], io: &mut Output<'_>) -> i32 {
    let Some((sub, rest)) = args.split_first() else {
        let _ = write!(io.err, "{}", usage());
        return 1;
    };
    let result = match sub.as_str() {
        "-h" | "-help" | "--help" | "help" => {
            let _ = write!(io.out, "{}", usage());
            return 0;
        }
        "up" => up(rest, io),
        "status" => status(rest, io),
        "kill" | "restart" | "pause" | "resume" => node_op(sub, rest, io),
        "partition" => partition(rest, io),
        "heal" => heal(rest, io),
        "down" => down(rest, io),
        other => {
            let _ = writeln!(io.err, "Unknown subcommand: {other:?}\n");
            let _ = write!(io.err, "{}", usage());
            return 1;
        }
    };
    match result {
        Ok(()) => 0,
        Err(Exit::Code(code)) => code,
        Err(Exit::Error(e)) => {
            let _ = writeln!(io.err, "Error: {e}");
            1
        }
    }
}

/// How a subcommand ends early: a parse outcome (help: 0, bad flag: 1) or an error.
enum Exit {
    Code(i32),
    Error(String),
}

impl From<ClusterError> for Exit {
    fn from(e: ClusterError) -> Exit {
        Exit::Error(e.to_string())
    }
}

fn parse(
    args: &[String],
    specs: &[FlagSpec],
    sub: &str,
    usage: &str,
    io: &mut Output<'_>,
) -> Result<ParsedArgs, Exit> {
    api_client::parse_or_exit(args, specs, &format!("cluster {sub}"), usage, io).map_err(Exit::Code)
}

/// `-dir`, made absolute so the agents' command lines (which `/proc` is checked
/// against) do not depend on where a later command runs.
fn dir_of(parsed: &ParsedArgs) -> Result<PathBuf, Exit> {
    let dir = parsed.value("dir").unwrap_or(DEFAULT_DIR);
    if dir.is_empty() {
        return Err(Exit::Error("-dir must not be empty".into()));
    }
    std::path::absolute(dir).map_err(|e| Exit::Error(format!("-dir {dir}: {e}")))
}

fn no_args(parsed: &ParsedArgs, sub: &str) -> Result<(), Exit> {
    match parsed.args.is_empty() {
        true => Ok(()),
        false => Err(Exit::Error(format!(
            "unexpected arguments to cluster {sub}: {}",
            parsed.args.join(" ")
        ))),
    }
}

fn count(parsed: &ParsedArgs, name: &str, default: usize) -> Result<usize, Exit> {
    match parsed.value(name) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| Exit::Error(format!("invalid -{name} {text:?}: want a whole number"))),
    }
}

fn up(args: &[String], io: &mut Output<'_>) -> Result<(), Exit> {
    let usage = sub_usage(
        "up",
        "",
        "Starts N servers and M client agents on loopback and waits until every node\n  \
         names a leader and sees every member alive. Node N (node1, node2 ..., servers\n  \
         first) listens on base + N - 1 with the standard ports (HTTP 8500, DNS 8600).",
        &UP_FLAGS,
    );
    let parsed = parse(args, &UP_FLAGS, "up", &usage, io)?;
    no_args(&parsed, "up")?;
    let binary = match parsed.value("binary") {
        Some(path) => {
            std::path::absolute(path).map_err(|e| Exit::Error(format!("-binary {path}: {e}")))?
        }
        None => std::env::current_exe()
            .map_err(|e| Exit::Error(format!("cannot find this binary (use -binary): {e}")))?,
    };
    let base = match parsed.value("base") {
        None => DEFAULT_BASE,
        Some(text) => text.parse().map_err(|_| {
            Exit::Error(format!(
                "invalid -base {text:?}: want an IPv4 address such as 127.0.0.21"
            ))
        })?,
    };
    let mut spec = ClusterSpec::new(
        count(&parsed, "servers", 3)?,
        count(&parsed, "clients", 0)?,
        &dir_of(&parsed)?,
        &binary,
    );
    spec.base = base;
    spec.agent_args = parsed
        .flags
        .iter()
        .filter(|(n, _)| n == "agent-arg")
        .map(|(_, v)| v.clone())
        .collect();
    let (cluster, outcome) = LocalCluster::up(spec)?;
    let head = match outcome {
        UpOutcome::Started => "Cluster up",
        UpOutcome::AlreadyUp => "Cluster already up",
    };
    let _ = writeln!(
        io.out,
        "{head} in {} ({}):",
        cluster.spec().dir.display(),
        cluster.spec().describe()
    );
    let mut table = vec![vec![
        "Node".to_string(),
        "Role".into(),
        "HTTP".into(),
        "DNS".into(),
    ]];
    for n in cluster.nodes() {
        table.push(vec![
            n.name.clone(),
            n.role.name().into(),
            n.http_addr(),
            n.dns_addr(),
        ]);
    }
    let _ = writeln!(io.out, "{}", columnize(&table));
    Ok(())
}

fn status(args: &[String], io: &mut Output<'_>) -> Result<(), Exit> {
    let usage = sub_usage(
        "status",
        "",
        "Shows each node's process state, the leader it names and how many members it\n  \
         sees alive (\"-\": no answer within a second), then the partition in force.",
        &ONLY_DIR,
    );
    let parsed = parse(args, &ONLY_DIR, "status", &usage, io)?;
    no_args(&parsed, "status")?;
    let cluster = LocalCluster::open(&dir_of(&parsed)?)?;
    let _ = writeln!(io.out, "{}", columnize(&rows(&cluster.status())));
    let partition = match cluster.partition_groups() {
        [] => "none".to_string(),
        groups => describe_partition(groups),
    };
    let _ = writeln!(io.out, "Partition: {partition}");
    Ok(())
}

fn node_op(sub: &str, args: &[String], io: &mut Output<'_>) -> Result<(), Exit> {
    let about = match sub {
        "kill" => "Kills the node's agent with SIGKILL and waits until it is gone.",
        "restart" => {
            "Kills the node's agent if it runs and starts it again with the same\n  \
             arguments and data dir; waits until it answers HTTP."
        }
        "pause" => "Stops the node's agent with SIGSTOP.",
        _ => "Continues the node's agent with SIGCONT and gives it the partition in force.",
    };
    let usage = sub_usage(sub, " NODE", about, &ONLY_DIR);
    let parsed = parse(args, &ONLY_DIR, sub, &usage, io)?;
    let [name] = parsed.args.as_slice() else {
        return Err(Exit::Error(format!(
            "cluster {sub} takes one node name (e.g. node2), got {}",
            parsed.args.len()
        )));
    };
    let mut cluster = LocalCluster::open(&dir_of(&parsed)?)?;
    let node = cluster.index_of(name)?;
    let done = match sub {
        "kill" => {
            cluster.kill(node)?;
            "Killed"
        }
        "restart" => {
            cluster.restart(node)?;
            "Restarted"
        }
        "pause" => {
            cluster.pause(node)?;
            "Paused"
        }
        _ => {
            cluster.resume(node)?;
            "Resumed"
        }
    };
    let _ = writeln!(io.out, "{done} {name}");
    Ok(())
}

fn partition(args: &[String], io: &mut Output<'_>) -> Result<(), Exit> {
    let usage = sub_usage(
        "partition",
        " GROUP / GROUP [/ GROUP...]",
        "Cuts every link between nodes of different groups (fault rules on both sides;\n  \
         no root needed). Nodes are comma-separated, groups separated by '/', e.g.\n  \
         `partition node1 / node2,node3`. Nodes in no group stay connected to all.\n  \
         Replaces the partition in force.",
        &ONLY_DIR,
    );
    let parsed = parse(args, &ONLY_DIR, "partition", &usage, io)?;
    let groups = crate::localcluster::faults::parse_groups(&parsed.args).map_err(Exit::Error)?;
    let mut cluster = LocalCluster::open(&dir_of(&parsed)?)?;
    let indexes = groups
        .iter()
        .map(|g| g.iter().map(|n| cluster.index_of(n)).collect())
        .collect::<Result<Vec<Vec<usize>>, ClusterError>>()?;
    cluster.partition(&indexes)?;
    let _ = writeln!(io.out, "Partitioned: {}", describe_partition(&groups));
    Ok(())
}

fn heal(args: &[String], io: &mut Output<'_>) -> Result<(), Exit> {
    let usage = sub_usage(
        "heal",
        "",
        "Lifts every fault rule on every running node.",
        &ONLY_DIR,
    );
    let parsed = parse(args, &ONLY_DIR, "heal", &usage, io)?;
    no_args(&parsed, "heal")?;
    let mut cluster = LocalCluster::open(&dir_of(&parsed)?)?;
    cluster.heal()?;
    let _ = writeln!(io.out, "Healed: every node reaches every other");
    Ok(())
}

fn down(args: &[String], io: &mut Output<'_>) -> Result<(), Exit> {
    let usage = sub_usage(
        "down",
        "",
        "Stops every agent (SIGTERM, then SIGKILL after 10 s) and removes the folder.",
        &DOWN_FLAGS,
    );
    let parsed = parse(args, &DOWN_FLAGS, "down", &usage, io)?;
    no_args(&parsed, "down")?;
    let dir = dir_of(&parsed)?;
    let cluster = match LocalCluster::open(&dir) {
        Ok(cluster) => cluster,
        Err(ClusterError::NoCluster { .. }) => {
            let _ = writeln!(io.out, "No cluster in {}: nothing to stop", dir.display());
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let keep = parsed.bool("keep");
    cluster.down(keep)?;
    let _ = match keep {
        true => writeln!(io.out, "Cluster stopped; files kept in {}", dir.display()),
        false => writeln!(io.out, "Cluster stopped and {} removed", dir.display()),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::cli::tests::capture;

    #[test]
    fn usage_and_bad_input() {
        let (code, out, _) = capture(&["cluster", "-h"]);
        assert_eq!(code, 0);
        assert!(
            out.starts_with("Usage: cairn cluster <subcommand>"),
            "{out}"
        );
        let (code, _, err) = capture(&["cluster"]);
        assert_eq!(code, 1);
        assert!(err.starts_with("Usage: cairn cluster"), "{err}");
        let (code, _, err) = capture(&["cluster", "explode"]);
        assert_eq!(code, 1);
        assert!(err.starts_with("Unknown subcommand: \"explode\""), "{err}");
        let (code, out, _) = capture(&["cluster", "up", "-h"]);
        assert_eq!(code, 0);
        assert!(out.contains("-servers=<n>"), "{out}");
        assert!(out.contains("-agent-arg=<arg>"), "{out}");
        let (code, _, err) = capture(&["cluster", "up", "-nodes", "3"]);
        assert_eq!(code, 1);
        assert!(
            err.starts_with("flag provided but not defined: -nodes"),
            "{err}"
        );
        let (code, _, err) = capture(&["cluster", "up", "-servers", "three"]);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "Error: invalid -servers \"three\": want a whole number\n"
        );
        let (code, _, err) = capture(&["cluster", "up", "-servers", "9"]);
        assert_eq!(code, 1);
        assert_eq!(err, "Error: -servers must be between 1 and 7, not 9\n");
        let (code, _, err) = capture(&["cluster", "up", "-base", "localhost"]);
        assert_eq!(code, 1);
        assert!(err.contains("invalid -base \"localhost\""), "{err}");
    }

    #[test]
    fn commands_on_a_folder_without_a_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display().to_string();
        for cmd in [
            &["cluster", "status", "-dir", &d][..],
            &["cluster", "kill", "-dir", &d, "node1"],
            &["cluster", "heal", "-dir", &d],
            &["cluster", "partition", "-dir", &d, "node1", "/", "node2"],
        ] {
            let (code, _, err) = capture(cmd);
            assert_eq!(code, 1, "{cmd:?}");
            assert_eq!(
                err,
                format!("Error: no cluster in {d}; start one with: scripts/cluster up -dir {d}\n"),
                "{cmd:?}"
            );
        }
        let (code, out, _) = capture(&["cluster", "down", "-dir", &d]);
        assert_eq!(code, 0);
        assert!(out.starts_with("No cluster in"), "{out}");
        let (code, _, err) = capture(&["cluster", "kill", "-dir", &d]);
        assert_eq!(code, 1);
        assert!(err.contains("takes one node name"), "{err}");
        let (code, _, err) = capture(&["cluster", "partition", "-dir", &d, "node1"]);
        assert_eq!(code, 1);
        assert!(err.contains("at least two groups"), "{err}");
    }
}
