//! `cairn reload`: ask a running agent to read its config files again (its services
//! and checks), as `consul reload` does.

use super::api_client::{self, ClientEnv, HTTP_FLAGS};
use super::Output;

pub fn usage() -> String {
    api_client::usage(
        "Usage: cairn reload [options]\n\n  Causes the agent to reload its configuration files (services and checks).",
        &HTTP_FLAGS,
    )
}

pub fn run(args: &[String], io: &mut Output<'_>) -> i32 {
    run_with_env(args, &ClientEnv::from_process(), io)
}

pub fn run_with_env(args: &[String], env: &ClientEnv, io: &mut Output<'_>) -> i32 {
    let parsed = match api_client::parse_or_exit(args, &HTTP_FLAGS, "reload", &usage(), io) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let client = match api_client::connect_or_exit(&parsed, env, io) {
        Ok(client) => client,
        Err(code) => return code,
    };
    match client.put("/v1/agent/reload") {
        Ok(_) => {
            let _ = writeln!(io.out, "Configuration reload triggered");
            0
        }
        Err(e) => {
            let _ = writeln!(io.err, "Error reloading: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::fake_agent::{capture, serve};

    #[test]
    fn reload_and_its_failure() {
        let agent = serve(vec![(200, ""), (500, "bad service")]);
        let (code, out, _) = capture(run_with_env, &[], &agent.env());
        assert_eq!(
            (code, out.as_str()),
            (0, "Configuration reload triggered\n")
        );
        let (code, _, err) = capture(run_with_env, &[], &agent.env());
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "Error reloading: Unexpected response code: 500 (bad service)\n"
        );
        assert_eq!(agent.requests(), ["PUT /v1/agent/reload HTTP/1.1"; 2]);
    }
}
