//! The `cairn` command line: subcommand dispatch. `agent` runs the agent; `debug` holds
//! operator tools for a stopped agent's data directory; `cluster` runs a local test
//! cluster of agents (`crate::localcluster`); the other commands (`members`,
//! `join`, `leave`, `force-leave`, and kv, catalog ... as the roadmap brings them) are
//! thin HTTP clients of a running agent (`api_client`), one module each.
//!
//! Everything below returns an exit code; only `main` exits.

pub mod agent_cmd;
pub mod agent_flags;
pub mod api_client;
pub mod argv;
pub mod chaos_cmd;
pub mod cluster_cmd;
pub mod columns;
pub mod debug_cmd;
pub mod event_cmd;
#[cfg(test)]
mod fake_agent;
pub mod force_leave_cmd;
pub mod join_cmd;
pub mod kv;
pub mod leave_cmd;
pub mod lock;
pub mod members_cmd;
pub mod operator_cmd;
pub mod reload_cmd;
pub mod services_cmd;
pub mod snapshot;

use std::ffi::OsString;
use std::io::Write;

/// Where a command writes; tests capture it, `main` passes stdout/stderr.
pub struct Output<'a> {
    pub out: &'a mut dyn Write,
    pub err: &'a mut dyn Write,
}

/// A subcommand: its name, one-line synopsis and entry point (args after its name).
struct Subcommand {
    name: &'static str,
    synopsis: &'static str,
    run: fn(&[String], &mut Output<'_>) -> i32,
}

const SUBCOMMANDS: &[Subcommand] = &[
    Subcommand {
        name: "agent",
        synopsis: "Runs a cairn agent",
        run: agent_cmd::run,
    },
    Subcommand {
        name: "chaos",
        synopsis: "Runs faults against a local cluster under load and checks the history",
        run: chaos_cmd::run,
    },
    Subcommand {
        name: "cluster",
        synopsis: "Runs a local test cluster on loopback (up, status, kill, partition, down ...)",
        run: cluster_cmd::run,
    },
    Subcommand {
        name: "debug",
        synopsis: "Operator tools for a stopped agent (repair-log)",
        run: debug_cmd::run,
    },
    Subcommand {
        name: "event",
        synopsis: "Fire a new event",
        run: event_cmd::run,
    },
    Subcommand {
        name: "force-leave",
        synopsis: "Forces a member of the cluster to enter the \"left\" state",
        run: force_leave_cmd::run,
    },
    Subcommand {
        name: "join",
        synopsis: "Tell cairn agent to join cluster",
        run: join_cmd::run,
    },
    Subcommand {
        name: "kv",
        synopsis: "Interact with the key-value store",
        run: kv::run,
    },
    Subcommand {
        name: "leave",
        synopsis: "Gracefully leaves the cluster and shuts down",
        run: leave_cmd::run,
    },
    Subcommand {
        name: "lock",
        synopsis: "Execute a command holding a lock",
        run: lock::run,
    },
    Subcommand {
        name: "members",
        synopsis: "Lists the members of a cluster",
        run: members_cmd::run,
    },
    Subcommand {
        name: "operator",
        synopsis: "Provides cluster-level tools for operators",
        run: operator_cmd::run,
    },
    Subcommand {
        name: "reload",
        synopsis: "Triggers the agent to reload configuration files",
        run: reload_cmd::run,
    },
    Subcommand {
        name: "services",
        synopsis: "Interact with services registered with the local agent",
        run: services_cmd::run,
    },
    Subcommand {
        name: "snapshot",
        synopsis: "Saves, restores and inspects snapshots of server state",
        run: snapshot::run,
    },
    Subcommand {
        name: "version",
        synopsis: "Prints the cairn version",
        run: version_cmd,
    },
];

/// Run the command line `args` (with the program name first); returns the exit code.
pub fn run(args: Vec<OsString>, io: &mut Output<'_>) -> i32 {
    let mut strings = Vec::with_capacity(args.len());
    for arg in args.into_iter().skip(1) {
        match arg.into_string() {
            Ok(s) => strings.push(s),
            Err(raw) => {
                let _ = writeln!(
                    io.err,
                    "argument is not valid UTF-8: {}",
                    raw.to_string_lossy()
                );
                return 1;
            }
        }
    }
    let Some((command, rest)) = strings.split_first() else {
        let _ = write!(io.err, "{}", usage());
        return 1;
    };
    match command.as_str() {
        "-h" | "-help" | "--help" | "help" => {
            let _ = write!(io.out, "{}", usage());
            0
        }
        "-v" | "-version" | "--version" => version_cmd(&[], io),
        name => match SUBCOMMANDS.iter().find(|c| c.name == name) {
            Some(sub) => (sub.run)(rest, io),
            None => {
                let _ = writeln!(io.err, "Unknown command: {name:?}\n");
                let _ = write!(io.err, "{}", usage());
                1
            }
        },
    }
}

pub fn usage() -> String {
    let mut text = String::from(
        "Usage: cairn [--version] [--help] <command> [<args>]\n\nAvailable commands are:\n",
    );
    for sub in SUBCOMMANDS {
        text.push_str(&format!("    {:<12}{}\n", sub.name, sub.synopsis));
    }
    text
}

/// `cairn version [-format=text|json]`.
fn version_cmd(args: &[String], io: &mut Output<'_>) -> i32 {
    let mut format = "text".to_string();
    let mut i = 0;
    while i < args.len() {
        let arg = args[i].trim_start_matches('-');
        if let Some(v) = arg.strip_prefix("format=") {
            format = v.to_string();
        } else if arg == "format" && args.len() > i + 1 {
            i += 1;
            format = args[i].clone();
        } else if matches!(arg, "h" | "help") {
            let _ = writeln!(
                io.out,
                "Usage: cairn version [-format=text|json]\n\n  Prints the version of cairn."
            );
            return 0;
        } else {
            let _ = writeln!(io.err, "flag provided but not defined: {}", args[i]);
            return 1;
        }
        i += 1;
    }
    match format.as_str() {
        "text" => {
            let _ = write!(io.out, "{}", crate::version::human());
            0
        }
        "json" => {
            let text = serde_json::to_string_pretty(&crate::version::json()).unwrap_or_default();
            let _ = writeln!(io.out, "{text}");
            0
        }
        other => {
            let _ = writeln!(
                io.err,
                "Invalid format {other:?}. Valid formats are: [text json]"
            );
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Run a command line and capture (exit code, stdout, stderr).
    pub(crate) fn capture(args: &[&str]) -> (i32, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let argv = std::iter::once("cairn")
            .chain(args.iter().copied())
            .map(OsString::from)
            .collect();
        let code = run(
            argv,
            &mut Output {
                out: &mut out,
                err: &mut err,
            },
        );
        (
            code,
            String::from_utf8_lossy(&out).into_owned(),
            String::from_utf8_lossy(&err).into_owned(),
        )
    }

    #[test]
    fn help_and_unknown_commands() {
        let (code, out, _) = capture(&["--help"]);
        assert_eq!(code, 0);
        assert!(out.starts_with("Usage: cairn"));
        assert!(out.contains("    agent       Runs a cairn agent"));
        assert!(out.contains("    members     Lists the members of a cluster"));
        assert!(out.contains("    force-leave Forces a member"));
        let (code, _, err) = capture(&[]);
        assert_eq!(code, 1);
        assert!(err.starts_with("Usage: cairn"));
        let (code, _, err) = capture(&["frobnicate"]);
        assert_eq!(code, 1);
        assert!(err.starts_with("Unknown command: \"frobnicate\""));
    }

    #[test]
    fn version_text_and_json() {
        let (code, out, _) = capture(&["version"]);
        assert_eq!(code, 0);
        assert_eq!(out, crate::version::human());
        for form in [
            &["version", "-format=json"][..],
            &["version", "--format", "json"],
        ] {
            let (code, out, _) = capture(form);
            assert_eq!(code, 0);
            let v: serde_json::Value = serde_json::from_str(&out).expect("json");
            assert_eq!(v["Version"], crate::version::CONSUL_COMPAT_VERSION);
        }
        let (code, _, err) = capture(&["version", "-format=xml"]);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "Invalid format \"xml\". Valid formats are: [text json]\n"
        );
        assert_eq!(capture(&["--version"]).1, crate::version::human());
    }
}
