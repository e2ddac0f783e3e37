//! `cairn leave`: ask a running agent to leave its cluster gracefully and shut down, as
//! `consul leave` does.

use super::api_client::{self, ClientEnv, HTTP_FLAGS};
use super::Output;

pub fn usage() -> String {
    api_client::usage(
        "Usage: cairn leave [options]\n\n  Causes the agent to gracefully leave the cluster and shut down.",
        &HTTP_FLAGS,
    )
}

pub fn run(args: &[String], io: &mut Output<'_>) -> i32 {
    run_with_env(args, &ClientEnv::from_process(), io)
}

pub fn run_with_env(args: &[String], env: &ClientEnv, io: &mut Output<'_>) -> i32 {
    let parsed = match api_client::parse_or_exit(args, &HTTP_FLAGS, "leave", &usage(), io) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    if !parsed.args.is_empty() {
        // Go prints the slice as `[a b]`; the help goes to stdout, as Consul's does.
        let _ = writeln!(
            io.err,
            "Error found unexpected args: [{}]",
            parsed.args.join(" ")
        );
        let _ = writeln!(io.out, "{}", usage());
        return 1;
    }
    let client = match api_client::connect_or_exit(&parsed, env, io) {
        Ok(client) => client,
        Err(code) => return code,
    };
    match client.put("/v1/agent/leave") {
        Ok(_) => {
            let _ = writeln!(io.out, "Graceful leave complete");
            0
        }
        Err(e) => {
            let _ = writeln!(io.err, "Error leaving: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::fake_agent::{capture, serve};

    #[test]
    fn graceful_leave_and_its_failure() {
        let agent = serve(vec![(200, ""), (500, "leave failed")]);
        let (code, out, err) = capture(run_with_env, &[], &agent.env());
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, "Graceful leave complete\n", "")
        );
        let (code, out, err) = capture(run_with_env, &[], &agent.env());
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (
                1,
                "",
                "Error leaving: Unexpected response code: 500 (leave failed)\n"
            )
        );
        assert_eq!(agent.requests(), ["PUT /v1/agent/leave HTTP/1.1"; 2]);
    }

    #[test]
    fn extra_arguments_are_refused() {
        let (code, out, err) = capture(run_with_env, &["now", "please"], &ClientEnv::default());
        assert_eq!(code, 1);
        assert_eq!(err, "Error found unexpected args: [now please]\n");
        assert!(out.starts_with("Usage: cairn leave [options]"), "{out}");
    }
}
