//! `cairn join [-wan] ADDRESS...`: ask a running agent to join a cluster through the
//! given members, as `consul join` does (one request per address; exit 1 when none
//! could be joined).

use super::api_client::{self, ClientEnv};
use super::argv::{FlagKind, FlagSpec};
use super::Output;

const JOIN_FLAGS: [FlagSpec; 1] = [FlagSpec {
    name: "wan",
    kind: FlagKind::Bool,
    value_name: "",
    help: "Joins a server to another server in the WAN pool.",
}];

fn specs() -> Vec<FlagSpec> {
    api_client::with_http_flags(&JOIN_FLAGS)
}

pub fn usage() -> String {
    api_client::usage(
        "Usage: cairn join [options] address ...\n\n  Tells a running cairn agent (with \"cairn agent\") to join the cluster\n  by specifying at least one existing member.",
        &specs(),
    )
}

pub fn run(args: &[String], io: &mut Output<'_>) -> i32 {
    run_with_env(args, &ClientEnv::from_process(), io)
}

pub fn run_with_env(args: &[String], env: &ClientEnv, io: &mut Output<'_>) -> i32 {
    let parsed = match api_client::parse_or_exit(args, &specs(), "join", &usage(), io) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    if parsed.args.is_empty() {
        let _ = writeln!(
            io.err,
            "At least one address to join must be specified.\n\n{}",
            usage()
        );
        return 1;
    }
    let client = match api_client::connect_or_exit(&parsed, env, io) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let wan = if parsed.bool("wan") { "?wan=1" } else { "" };
    let mut joined = 0;
    for addr in &parsed.args {
        let path = format!("/v1/agent/join/{}{wan}", api_client::escape(addr));
        match client.put(&path) {
            Ok(_) => joined += 1,
            Err(e) => {
                let _ = writeln!(io.err, "Error joining address '{addr}': {e}");
            }
        }
    }
    if joined == 0 {
        let _ = writeln!(io.err, "Failed to join any nodes.");
        return 1;
    }
    let _ = writeln!(
        io.out,
        "Successfully joined cluster by contacting {joined} nodes."
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::fake_agent::{capture, serve};

    #[test]
    fn joins_each_address_and_counts_successes() {
        let agent = serve(vec![
            (200, ""),
            (500, "Failed to join 10.0.0.9: connection refused"),
            (200, ""),
        ]);
        let (code, out, err) = capture(
            run_with_env,
            &["-wan", "10.0.0.2", "10.0.0.9", "[::1]:8301"],
            &agent.env(),
        );
        assert_eq!(code, 0);
        assert_eq!(out, "Successfully joined cluster by contacting 2 nodes.\n");
        assert_eq!(
            err,
            "Error joining address '10.0.0.9': Unexpected response code: 500 (Failed to join 10.0.0.9: connection refused)\n"
        );
        assert_eq!(
            agent.requests(),
            [
                "PUT /v1/agent/join/10.0.0.2?wan=1 HTTP/1.1",
                "PUT /v1/agent/join/10.0.0.9?wan=1 HTTP/1.1",
                "PUT /v1/agent/join/%5B::1%5D:8301?wan=1 HTTP/1.1",
            ]
        );
    }

    #[test]
    fn no_join_is_a_failure() {
        let agent = serve(vec![(500, "nope")]);
        let (code, out, err) = capture(run_with_env, &["10.0.0.2"], &agent.env());
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(
            err,
            "Error joining address '10.0.0.2': Unexpected response code: 500 (nope)\nFailed to join any nodes.\n"
        );
        assert_eq!(agent.requests(), ["PUT /v1/agent/join/10.0.0.2 HTTP/1.1"]);
    }

    #[test]
    fn usage_errors() {
        let env = ClientEnv::default();
        let (code, _, err) = capture(run_with_env, &[], &env);
        assert_eq!(code, 1);
        assert!(err.starts_with(
            "At least one address to join must be specified.\n\nUsage: cairn join [options] address ..."
        ));
        let (code, _, err) = capture(run_with_env, &["-prune", "x"], &env);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "flag provided but not defined: -prune\nRun 'cairn join -h' for the list of flags.\n"
        );
    }
}
