//! `cairn force-leave [-prune] [-wan] NODE`: mark a failed member as left (or forget it
//! at once with `-prune`), as `consul force-leave` does. Prints nothing on success.

use super::api_client::{self, ClientEnv};
use super::argv::{FlagKind, FlagSpec};
use super::Output;

const FORCE_LEAVE_FLAGS: [FlagSpec; 2] = [
    FlagSpec {
        name: "prune",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Remove agent completely from list of members",
    },
    FlagSpec {
        name: "wan",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Exclusively leave the agent from the WAN serf pool.",
    },
];

fn specs() -> Vec<FlagSpec> {
    api_client::with_http_flags(&FORCE_LEAVE_FLAGS)
}

pub fn usage() -> String {
    api_client::usage(
        "Usage: cairn force-leave [options] name\n\n  Forces a member of the cluster to enter the \"left\" state. Note\n  that if the member is still actually alive, it will eventually rejoin\n  the cluster. This command is most useful for cleaning out \"failed\" nodes\n  that are never coming back.",
        &specs(),
    )
}

pub fn run(args: &[String], io: &mut Output<'_>) -> i32 {
    run_with_env(args, &ClientEnv::from_process(), io)
}

pub fn run_with_env(args: &[String], env: &ClientEnv, io: &mut Output<'_>) -> i32 {
    let parsed = match api_client::parse_or_exit(args, &specs(), "force-leave", &usage(), io) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let [node] = parsed.args.as_slice() else {
        let _ = writeln!(
            io.err,
            "A single node name must be specified to force leave.\n\n{}",
            usage()
        );
        return 1;
    };
    let client = match api_client::connect_or_exit(&parsed, env, io) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let mut params = Vec::new();
    if parsed.bool("prune") {
        params.push("prune=1");
    }
    if parsed.bool("wan") {
        params.push("wan=1");
    }
    let mut path = format!("/v1/agent/force-leave/{}", api_client::escape(node));
    if !params.is_empty() {
        path = format!("{path}?{}", params.join("&"));
    }
    match client.put(&path) {
        Ok(_) => 0,
        Err(e) => {
            let _ = writeln!(io.err, "Error force leaving: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::fake_agent::{capture, serve};

    #[test]
    fn sends_prune_and_wan_and_prints_nothing() {
        let agent = serve(vec![(200, ""), (200, "")]);
        let (code, out, err) = capture(run_with_env, &["-prune", "-wan", "db 1"], &agent.env());
        assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
        let (code, _, _) = capture(run_with_env, &["web"], &agent.env());
        assert_eq!(code, 0);
        assert_eq!(
            agent.requests(),
            [
                "PUT /v1/agent/force-leave/db%201?prune=1&wan=1 HTTP/1.1",
                "PUT /v1/agent/force-leave/web HTTP/1.1",
            ]
        );
    }

    #[test]
    fn unknown_node_and_usage_errors() {
        let agent = serve(vec![(500, "agent: No node found with name 'nosuch'")]);
        let (code, out, err) = capture(run_with_env, &["nosuch"], &agent.env());
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(
            err,
            "Error force leaving: Unexpected response code: 500 (agent: No node found with name 'nosuch')\n"
        );
        for args in [&[][..], &["a", "b"]] {
            let (code, _, err) = capture(run_with_env, args, &ClientEnv::default());
            assert_eq!(code, 1);
            assert!(err.starts_with(
                "A single node name must be specified to force leave.\n\nUsage: cairn force-leave [options] name"
            ));
        }
    }
}
