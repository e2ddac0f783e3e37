//! `cairn agent`: flags and config files to a validated Config, then the agent itself.

use super::agent_flags::{self, AgentCommand};
use super::Output;
use crate::config::build::HostFacts;
use crate::config::{self, file, Built, ConfigError};

/// Parse flags, load the config files they name, merge (files in order, then flags) and
/// validate. `Ok(None)` means help was asked for.
pub fn load_config(args: &[String], host: &HostFacts) -> Result<Option<Built>, ConfigError> {
    let AgentCommand::Run(parsed) = agent_flags::parse_agent_args(args)? else {
        return Ok(None);
    };
    let files = file::load_all(&parsed.config_paths)?;
    let merged = files.source.merge(parsed.flags);
    let mut built = config::build(merged, host)?;
    built.config.config_paths = parsed.config_paths.clone();
    let mut warnings = files.warnings;
    warnings.append(&mut built.warnings);
    built.warnings = warnings;
    Ok(Some(built))
}

pub fn run(args: &[String], io: &mut Output<'_>) -> i32 {
    match load_config(args, &HostFacts::detect()) {
        Ok(None) => {
            let _ = write!(io.out, "{}", agent_flags::usage());
            0
        }
        Ok(Some(built)) => match crate::agent::run(built.config, built.warnings) {
            Ok(()) => 0,
            Err(e) => {
                let _ = writeln!(io.err, "==> {e}");
                1
            }
        },
        Err(ConfigError::Flag(message)) => {
            let _ = writeln!(
                io.err,
                "{message}\nRun 'cairn agent -h' for the list of flags."
            );
            1
        }
        Err(e) => {
            let _ = writeln!(io.err, "==> {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn host() -> HostFacts {
        HostFacts {
            hostname: "box".into(),
            ipv4_addrs: vec![Ipv4Addr::LOCALHOST],
        }
    }

    fn load(args: &[&str]) -> Result<Option<Built>, ConfigError> {
        load_config(
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &host(),
        )
    }

    #[test]
    fn flags_override_files_and_lists_append() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("a.json");
        std::fs::write(
            &f,
            r#"{"node_name":"file","datacenter":"fdc","recursors":["1.1.1.1"],"bogus":1}"#,
        )
        .expect("write");
        let f = f.to_string_lossy().into_owned();
        let built = load(&[
            "-dev",
            "-config-file",
            &f,
            "-node=flag",
            "-recursor",
            "8.8.8.8",
        ])
        .expect("ok")
        .expect("run");
        let c = built.config;
        assert_eq!(c.node_name, "flag");
        assert_eq!(c.datacenter, "fdc");
        assert_eq!(
            c.recursors
                .iter()
                .map(|r| r.to_string())
                .collect::<Vec<_>>(),
            vec!["1.1.1.1:53", "8.8.8.8:53"]
        );
        assert_eq!(
            built.warnings[0],
            format!("config: unknown key \"bogus\" in {f} was ignored")
        );
    }

    #[test]
    fn exit_paths_have_consul_messages() {
        assert!(matches!(load(&["-h"]), Ok(None)));
        assert_eq!(
            load(&["-server"]).expect_err("no data dir").to_string(),
            "data_dir cannot be empty"
        );
        assert_eq!(
            load(&["-dev", "-bootstrap-expect=3"])
                .expect_err("dev+expect")
                .to_string(),
            "'bootstrap_expect > 0' not allowed in dev mode"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("bad.json");
        std::fs::write(&f, r#"{"server":"yes"}"#).expect("write");
        let f = f.to_string_lossy().into_owned();
        assert_eq!(
            load(&["-dev", "-config-file", &f]).expect_err("bad type").to_string(),
            format!("Error parsing {f}: 'server' expected type 'bool', got unconvertible type 'string', value: 'yes'")
        );
    }

    #[test]
    fn printed_errors_and_exit_codes() {
        let (code, _, err) = crate::cli::tests::capture(&["agent", "-bogus"]);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "flag provided but not defined: -bogus\nRun 'cairn agent -h' for the list of flags.\n"
        );
        let (code, _, err) = crate::cli::tests::capture(&[
            "agent",
            "-server",
            "-bootstrap",
            "-bootstrap-expect",
            "3",
            "-data-dir",
            "/tmp/x",
        ]);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "==> 'bootstrap_expect > 0' and 'bootstrap = true' are mutually exclusive\n"
        );
        let (code, out, _) = crate::cli::tests::capture(&["agent", "--help"]);
        assert_eq!(code, 0);
        assert!(out.starts_with("Usage: cairn agent [options]"));
    }
}
