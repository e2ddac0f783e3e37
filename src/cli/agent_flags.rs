//! `cairn agent` flags, named and behaving as Consul's. The table below is the one source
//! of truth: the argv pre-pass, the clap command and the usage text all come from it.

use super::argv::{self, FlagKind, FlagSpec, Prepared};
use crate::config::file::ConfigPath;
use crate::config::{ConfigError, ConfigSource};
use clap::{Arg, ArgAction, ArgMatches, Command};
use std::path::PathBuf;

use FlagKind::{Bool, List, Value};

const fn flag(
    name: &'static str,
    kind: FlagKind,
    value_name: &'static str,
    help: &'static str,
) -> FlagSpec {
    FlagSpec {
        name,
        kind,
        value_name,
        help,
    }
}

pub const AGENT_FLAGS: &[FlagSpec] = &[
    flag(
        "advertise",
        Value,
        "<ip>",
        "Address other nodes reach this one on.",
    ),
    flag(
        "bind",
        Value,
        "<ip>",
        "Cluster bind address (default 0.0.0.0).",
    ),
    flag(
        "bootstrap",
        Bool,
        "",
        "Bootstrap a single server: it elects itself.",
    ),
    flag(
        "bootstrap-expect",
        Value,
        "<n>",
        "Servers to wait for before bootstrapping (server only).",
    ),
    flag(
        "client",
        Value,
        "<ips>",
        "Address(es) for HTTP and DNS, space separated (default 127.0.0.1).",
    ),
    flag(
        "config-dir",
        List,
        "<dir>",
        "Directory of *.json config files, loaded alphabetically. Repeatable.",
    ),
    flag(
        "config-file",
        List,
        "<file>",
        "A JSON config file. Repeatable.",
    ),
    flag(
        "data-dir",
        Value,
        "<path>",
        "Where state is kept. Required unless -dev.",
    ),
    flag(
        "datacenter",
        Value,
        "<name>",
        "Datacenter name (default dc1).",
    ),
    flag(
        "dev",
        Bool,
        "",
        "Development mode: in-memory server, bootstrapped.",
    ),
    flag(
        "dns-port",
        Value,
        "<port>",
        "DNS port (default 8600, -1 disables).",
    ),
    flag(
        "debug-unsafe-local-reads",
        Bool,
        "",
        "UNSAFE, for testing the chaos checker only: every server answers default-mode reads from its own store, without forwarding to the leader or confirming leadership (reads can be stale).",
    ),
    flag("domain", Value, "<domain>", "DNS domain (default consul.)."),
    flag("enable-script-checks", Bool, "", "Allow script checks."),
    flag(
        "enable-local-script-checks",
        Bool,
        "",
        "Allow script checks from config files only.",
    ),
    flag(
        "debug-anti-entropy-interval",
        Value,
        "<duration>",
        "For tests: the base interval of the anti-entropy full sync (default 1m).",
    ),
    flag(
        "debug-check-deregister-interval-min",
        Value,
        "<duration>",
        "For tests: the floor of DeregisterCriticalServiceAfter (default 1m).",
    ),
    flag(
        "fault-injection",
        Bool,
        "",
        "Test clusters only: accept fault rules (drop, delay or cut traffic to chosen peers) over HTTP at /v1/cairn/faults.",
    ),
    flag("grpc-port", Value, "<port>", "gRPC port (default -1)."),
    flag(
        "http-port",
        Value,
        "<port>",
        "HTTP API port (default 8500, -1 disables).",
    ),
    flag(
        "https-port",
        Value,
        "<port>",
        "HTTPS API port (default -1).",
    ),
    flag(
        "join",
        List,
        "<addr>",
        "Address to join at start (alias of -retry-join). Repeatable.",
    ),
    flag(
        "log-level",
        Value,
        "<level>",
        "trace, debug, info, warn or error (default info).",
    ),
    flag(
        "node",
        Value,
        "<name>",
        "Node name (default: the host name).",
    ),
    flag(
        "node-id",
        Value,
        "<uuid>",
        "Node UUID (default: generated and kept in the data dir).",
    ),
    flag(
        "node-meta",
        List,
        "<key:value>",
        "Node metadata pair. Repeatable.",
    ),
    flag(
        "raft-log-cache-entries",
        Value,
        "<n>",
        "Most Raft log entries held in memory (default 65536).",
    ),
    flag(
        "raft-log-cache-mb",
        Value,
        "<MiB>",
        "Payload MiB of Raft log entries held in memory and read at a restart (default 64).",
    ),
    flag(
        "recursor",
        List,
        "<ip[:port]>",
        "Upstream DNS server. Repeatable.",
    ),
    flag(
        "rejoin",
        Bool,
        "",
        "Ignore a previous leave and rejoin the cluster at start.",
    ),
    flag(
        "retry-interval",
        Value,
        "<duration>",
        "Pause between join attempts (default 30s).",
    ),
    flag(
        "retry-join",
        List,
        "<addr>",
        "Address to join, retried until it works. Repeatable.",
    ),
    flag(
        "retry-max",
        Value,
        "<n>",
        "Join attempts before giving up (default 0: retry forever).",
    ),
    flag(
        "serf-lan-port",
        Value,
        "<port>",
        "LAN gossip port (default 8301).",
    ),
    flag(
        "serf-wan-port",
        Value,
        "<port>",
        "WAN gossip port (default 8302).",
    ),
    flag("server", Bool, "", "Run as a server."),
    flag(
        "server-port",
        Value,
        "<port>",
        "Server RPC port (default 8300).",
    ),
    flag(
        "ui",
        Bool,
        "",
        "Accepted for compatibility; this version serves no web UI.",
    ),
];

/// What `cairn agent <args>` asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentCommand {
    Help,
    Run(Box<AgentArgs>),
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentArgs {
    /// Everything the flags set; merged over the config files.
    pub flags: ConfigSource,
    /// `-config-file` / `-config-dir` in command-line order.
    pub config_paths: Vec<ConfigPath>,
}

fn clap_command() -> Command {
    let args = AGENT_FLAGS.iter().map(|spec| {
        Arg::new(spec.name)
            .long(spec.name)
            .action(ArgAction::Append)
            .num_args(1)
            .allow_hyphen_values(true)
    });
    Command::new("agent")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
        .args(args)
}

pub fn parse_agent_args(args: &[String]) -> Result<AgentCommand, ConfigError> {
    let flag_err = |e: argv::ArgvError| ConfigError::Flag(e.to_string());
    let (flags, extra) = match argv::prepare(args, AGENT_FLAGS).map_err(flag_err)? {
        Prepared::Help => return Ok(AgentCommand::Help),
        Prepared::Args { flags, extra } => (flags, extra),
    };
    if !extra.is_empty() {
        return Err(ConfigError::Flag(format!(
            "config: Unknown extra arguments: [{}]",
            extra.join(" ")
        )));
    }
    let matches = clap_command()
        .try_get_matches_from(&flags)
        .map_err(|e| ConfigError::Flag(e.to_string()))?;
    let m = Matches(&matches);

    let mut s = ConfigSource {
        dev: m.bool("dev"),
        fault_injection: m.bool("fault-injection"),
        debug_unsafe_local_reads: m.bool("debug-unsafe-local-reads"),
        node_name: m.last("node"),
        node_id: m.last("node-id"),
        datacenter: m.last("datacenter"),
        data_dir: m.last("data-dir").map(PathBuf::from),
        server: m.bool("server"),
        bootstrap: m.bool("bootstrap"),
        bootstrap_expect: m.int("bootstrap-expect")?,
        bind_addr: m.last("bind"),
        advertise_addr: m.last("advertise"),
        client_addr: m.last("client"),
        domain: m.last("domain"),
        recursors: m.all("recursor"),
        retry_interval: m.last("retry-interval"),
        retry_max: m.int("retry-max")?,
        raft_log_cache_mb: m.int("raft-log-cache-mb")?,
        raft_log_cache_entries: m.int("raft-log-cache-entries")?,
        rejoin_after_leave: m.bool("rejoin"),
        enable_script_checks: m.bool("enable-script-checks"),
        enable_local_script_checks: m.bool("enable-local-script-checks"),
        debug_anti_entropy_interval: m.last("debug-anti-entropy-interval"),
        check_deregister_interval_min: m.last("debug-check-deregister-interval-min"),
        log_level: m.last("log-level"),
        ui: m.bool("ui"),
        ..Default::default()
    };
    s.ports.http = m.port("http-port")?;
    s.ports.https = m.port("https-port")?;
    s.ports.dns = m.port("dns-port")?;
    s.ports.server = m.port("server-port")?;
    s.ports.serf_lan = m.port("serf-lan-port")?;
    s.ports.serf_wan = m.port("serf-wan-port")?;
    s.ports.grpc = m.port("grpc-port")?;
    // Consul 1.15 made -join an alias of -retry-join; both are kept, in order.
    s.retry_join = m.all("join");
    s.retry_join.extend(m.all("retry-join"));
    for pair in m.all("node-meta") {
        let (k, v) = pair.split_once(':').ok_or_else(|| {
            ConfigError::Flag(format!(
                "invalid value \"{pair}\" for flag -node-meta: must be key:value"
            ))
        })?;
        s.node_meta.insert(k.to_string(), v.to_string());
    }

    // Config paths keep their command-line order across the two flags.
    let config_paths = flags
        .iter()
        .filter_map(|f| {
            if let Some(p) = f.strip_prefix("--config-file=") {
                Some(ConfigPath::File(PathBuf::from(p)))
            } else {
                f.strip_prefix("--config-dir=")
                    .map(|p| ConfigPath::Dir(PathBuf::from(p)))
            }
        })
        .collect();
    Ok(AgentCommand::Run(Box::new(AgentArgs {
        flags: s,
        config_paths,
    })))
}

/// Typed reads of the (already normalised) clap matches.
struct Matches<'a>(&'a ArgMatches);

impl Matches<'_> {
    fn all(&self, name: &str) -> Vec<String> {
        self.0
            .get_many::<String>(name)
            .map(|vals| vals.cloned().collect())
            .unwrap_or_default()
    }

    /// Go's flag package lets a repeated scalar flag win with its last value.
    fn last(&self, name: &str) -> Option<String> {
        self.all(name).pop()
    }

    fn bool(&self, name: &str) -> Option<bool> {
        // The pre-pass wrote only `true` or `false`.
        self.last(name).map(|v| v == "true")
    }

    fn int(&self, name: &str) -> Result<Option<i64>, ConfigError> {
        self.last(name)
            .map(|v| {
                v.parse::<i64>().map_err(|_| {
                    ConfigError::Flag(format!(
                        "invalid value \"{v}\" for flag -{name}: parse error"
                    ))
                })
            })
            .transpose()
    }

    fn port(&self, name: &str) -> Result<Option<i32>, ConfigError> {
        self.int(name)?
            .map(|n| {
                i32::try_from(n).map_err(|_| {
                    ConfigError::Flag(format!(
                        "invalid value \"{n}\" for flag -{name}: value out of range"
                    ))
                })
            })
            .transpose()
    }
}

/// `cairn agent -h`.
pub fn usage() -> String {
    let mut out = String::from(
        "Usage: cairn agent [options]\n\n  Starts the cairn agent and runs until an interrupt is received.\n  \
         Flags may be written -flag value, -flag=value, --flag value or --flag=value.\n\nOptions:\n",
    );
    for spec in AGENT_FLAGS {
        let head = match spec.kind {
            Bool => format!("  -{}", spec.name),
            _ => format!("  -{}={}", spec.name, spec.value_name),
        };
        out.push_str(&format!("\n{head}\n     {}\n", spec.help));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn parse(list: &[&str]) -> Result<AgentCommand, ConfigError> {
        parse_agent_args(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    fn run_args(list: &[&str]) -> AgentArgs {
        match parse(list).expect("parses") {
            AgentCommand::Run(a) => *a,
            AgentCommand::Help => panic!("unexpected help"),
        }
    }

    #[test]
    fn every_flag_lands_in_the_source() {
        let a = run_args(&[
            "-server",
            "-bootstrap-expect",
            "3",
            "-node=n1",
            "--node-id",
            "ID",
            "-node-meta",
            "rack:r1",
            "--node-meta=zone:a:b",
            "-datacenter",
            "DC2",
            "-data-dir=/d",
            "-bind",
            "10.0.0.1",
            "-advertise=10.0.0.2",
            "-client",
            "0.0.0.0 ::1",
            "-ui",
            "-http-port=-1",
            "-dns-port",
            "8601",
            "-server-port",
            "1",
            "-serf-lan-port",
            "2",
            "-serf-wan-port",
            "3",
            "-grpc-port",
            "4",
            "-https-port",
            "5",
            "-domain",
            "cairn",
            "-recursor",
            "1.1.1.1",
            "-recursor=8.8.8.8:53",
            "-join",
            "j1",
            "-retry-join",
            "r1",
            "-retry-join=r2",
            "-retry-interval",
            "5s",
            "-enable-script-checks",
            "-log-level",
            "debug",
            "-bootstrap=false",
            "-retry-max",
            "7",
            "-rejoin",
        ]);
        let s = a.flags;
        assert_eq!(s.server, Some(true));
        assert_eq!(s.bootstrap, Some(false));
        assert_eq!(s.bootstrap_expect, Some(3));
        assert_eq!(s.node_name.as_deref(), Some("n1"));
        assert_eq!(s.node_id.as_deref(), Some("ID"));
        let meta: BTreeMap<String, String> = [
            ("rack".to_string(), "r1".to_string()),
            ("zone".to_string(), "a:b".to_string()),
        ]
        .into();
        assert_eq!(s.node_meta, meta);
        assert_eq!(s.datacenter.as_deref(), Some("DC2"));
        assert_eq!(s.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(s.bind_addr.as_deref(), Some("10.0.0.1"));
        assert_eq!(s.advertise_addr.as_deref(), Some("10.0.0.2"));
        assert_eq!(s.client_addr.as_deref(), Some("0.0.0.0 ::1"));
        assert_eq!(s.ui, Some(true));
        assert_eq!(
            (
                s.ports.http,
                s.ports.dns,
                s.ports.server,
                s.ports.serf_lan,
                s.ports.serf_wan,
                s.ports.grpc,
                s.ports.https
            ),
            (
                Some(-1),
                Some(8601),
                Some(1),
                Some(2),
                Some(3),
                Some(4),
                Some(5)
            )
        );
        assert_eq!(s.ports.grpc_tls, None);
        assert_eq!(s.domain.as_deref(), Some("cairn"));
        assert_eq!(
            s.recursors,
            vec!["1.1.1.1".to_string(), "8.8.8.8:53".to_string()]
        );
        assert_eq!(
            s.retry_join,
            vec!["j1".to_string(), "r1".to_string(), "r2".to_string()]
        );
        assert_eq!(s.retry_interval.as_deref(), Some("5s"));
        assert_eq!(s.retry_max, Some(7));
        assert_eq!(s.rejoin_after_leave, Some(true));
        assert_eq!(s.enable_script_checks, Some(true));
        assert_eq!(s.log_level.as_deref(), Some("debug"));
        assert_eq!(s.dev, None);
        assert!(a.config_paths.is_empty());
    }

    #[test]
    fn four_syntaxes_give_the_same_result() {
        let forms: [&[&str]; 4] = [
            &["-node", "x"],
            &["-node=x"],
            &["--node", "x"],
            &["--node=x"],
        ];
        for form in forms {
            assert_eq!(
                run_args(form).flags.node_name.as_deref(),
                Some("x"),
                "{form:?}"
            );
        }
    }

    #[test]
    fn last_scalar_wins_and_config_paths_keep_order() {
        let a = run_args(&[
            "-node=a",
            "-node=b",
            "-config-file=1.json",
            "-config-dir",
            "d",
            "--config-file",
            "2.json",
        ]);
        assert_eq!(a.flags.node_name.as_deref(), Some("b"));
        assert_eq!(
            a.config_paths,
            vec![
                ConfigPath::File("1.json".into()),
                ConfigPath::Dir("d".into()),
                ConfigPath::File("2.json".into())
            ]
        );
    }

    #[test]
    fn raft_log_cache_flags() {
        let s = run_args(&[]).flags;
        assert_eq!(
            (s.raft_log_cache_mb, s.raft_log_cache_entries),
            (None, None)
        );
        let s = run_args(&["-raft-log-cache-mb", "16", "--raft-log-cache-entries=500"]).flags;
        assert_eq!(
            (s.raft_log_cache_mb, s.raft_log_cache_entries),
            (Some(16), Some(500))
        );
        let msg = parse(&["-raft-log-cache-mb=lots"]).expect_err("must fail");
        assert_eq!(
            msg.to_string(),
            "invalid value \"lots\" for flag -raft-log-cache-mb: parse error"
        );
    }

    #[test]
    fn gossip_flags_default_to_unset_and_parse_like_go() {
        let s = run_args(&[]).flags;
        assert_eq!((s.retry_max, s.rejoin_after_leave), (None, None));
        let s = run_args(&["--retry-max=0", "-rejoin=false"]).flags;
        assert_eq!((s.retry_max, s.rejoin_after_leave), (Some(0), Some(false)));
        let msg = |list: &[&str]| parse(list).expect_err("must fail").to_string();
        assert_eq!(
            msg(&["-retry-max", "x"]),
            "invalid value \"x\" for flag -retry-max: parse error"
        );
        assert_eq!(msg(&["-retry-max"]), "flag needs an argument: -retry-max");
        // Consul has no flag for these; they are config-file keys only.
        assert_eq!(
            msg(&["-leave-on-terminate"]),
            "flag provided but not defined: -leave-on-terminate"
        );
        assert_eq!(
            msg(&["-reconnect-timeout=8h"]),
            "flag provided but not defined: -reconnect-timeout"
        );
    }

    #[test]
    fn dev_flag() {
        assert_eq!(run_args(&["-dev"]).flags.dev, Some(true));
    }

    #[test]
    fn errors_are_go_flag_style() {
        let msg = |list: &[&str]| parse(list).expect_err("must fail").to_string();
        assert_eq!(msg(&["-bogus"]), "flag provided but not defined: -bogus");
        assert_eq!(
            msg(&["-dev", "--nope=1"]),
            "flag provided but not defined: -nope"
        );
        assert_eq!(msg(&["-node"]), "flag needs an argument: -node");
        assert_eq!(
            msg(&["-http-port", "abc"]),
            "invalid value \"abc\" for flag -http-port: parse error"
        );
        assert_eq!(
            msg(&["-bootstrap-expect=x"]),
            "invalid value \"x\" for flag -bootstrap-expect: parse error"
        );
        assert_eq!(
            msg(&["-http-port", "99999999999"]),
            "invalid value \"99999999999\" for flag -http-port: value out of range"
        );
        assert_eq!(
            msg(&["-node-meta", "novalue"]),
            "invalid value \"novalue\" for flag -node-meta: must be key:value"
        );
        assert_eq!(
            msg(&["-server", "stray"]),
            "config: Unknown extra arguments: [stray]"
        );
        assert!(matches!(parse(&["-ui", "-h"]), Ok(AgentCommand::Help)));
    }

    #[test]
    fn usage_lists_every_flag() {
        let text = usage();
        for spec in AGENT_FLAGS {
            assert!(text.contains(&format!("  -{}", spec.name)), "{}", spec.name);
        }
        clap_command().debug_assert();
    }

    #[test]
    fn random_argument_lists_never_panic() {
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        let words = [
            "-server",
            "--server",
            "-server=maybe",
            "-bootstrap-expect",
            "-bootstrap-expect=-3",
            "-bootstrap-expect=99999999999999999999",
            "-node",
            "-node=",
            "-client",
            "-bind",
            "-dns-port",
            "-dns-port=70000",
            "-http-port=-5",
            "-retry-join",
            "-recursor",
            "-config-file",
            "-config-dir",
            "-data-dir",
            "-",
            "--",
            "-h",
            "=",
            "-=",
            "-é",
            "é",
            "",
            " ",
            "-1",
            "-datacenter=DC!",
            "-log-level=loud",
            "-ui",
            "-dev",
            "-node-meta=k",
            "-node-meta=k:v",
            "-raft-multiplier=0",
            "-retry-max",
            "-retry-max=-1",
            "-rejoin",
            "-rejoin=maybe",
        ];
        let mut rng = StdRng::seed_from_u64(0xf1a9);
        for _ in 0..5000 {
            let args: Vec<String> = (0..rng.random_range(0..8))
                .map(|_| words[rng.random_range(0..words.len())].to_string())
                .collect();
            // Files are not loaded here: parsing alone must never panic.
            let _ = parse_agent_args(&args);
        }
    }
}
