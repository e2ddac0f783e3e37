//! `cairn event -name NAME [-node RE] [-service RE] [-tag RE] [payload]`: fire a user
//! event through the agent, as `consul event` does (its texts and exit codes: the
//! filters are checked locally, the agent is asked for itself first, then
//! `PUT /v1/event/fire/NAME`; prints `Event ID: <id>`).

use super::api_client::{self, ClientEnv};
use super::argv::{FlagKind, FlagSpec};
use super::Output;

const EVENT_FLAGS: [FlagSpec; 4] = [
    FlagSpec {
        name: "name",
        kind: FlagKind::Value,
        value_name: "string",
        help: "Name of the event.",
    },
    FlagSpec {
        name: "node",
        kind: FlagKind::Value,
        value_name: "string",
        help: "Regular expression to filter on node names.",
    },
    FlagSpec {
        name: "service",
        kind: FlagKind::Value,
        value_name: "string",
        help: "Regular expression to filter on service instances.",
    },
    FlagSpec {
        name: "tag",
        kind: FlagKind::Value,
        value_name: "string",
        help: "Regular expression to filter on service tags. Must be used with -service.",
    },
];

fn specs() -> Vec<FlagSpec> {
    api_client::with_http_flags(&EVENT_FLAGS)
}

pub fn usage() -> String {
    api_client::usage(
        "Usage: cairn event [options] [payload]\n\n  Dispatches a custom user event across a datacenter. An event must provide\n  a name, but a payload is optional. Events support filtering using\n  regular expressions on node name, service, and tag definitions.",
        &specs(),
    )
}

pub fn run(args: &[String], io: &mut Output<'_>) -> i32 {
    run_with_env(args, &ClientEnv::from_process(), io)
}

pub fn run_with_env(args: &[String], env: &ClientEnv, io: &mut Output<'_>) -> i32 {
    let parsed = match api_client::parse_or_exit(args, &specs(), "event", &usage(), io) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let value = |name: &str| parsed.value(name).unwrap_or_default().to_string();
    let (name, node, service, tag) = (value("name"), value("node"), value("service"), value("tag"));
    if name.is_empty() {
        let _ = writeln!(io.err, "Event name must be specified\n\n{}", usage());
        return 1;
    }
    for (what, re) in [("node", &node), ("service", &service), ("tag", &tag)] {
        if let Err(e) = regex_lite::Regex::new(re) {
            let _ = writeln!(io.err, "Failed to compile {what} filter regexp: {e}");
            return 1;
        }
    }
    if !tag.is_empty() && service.is_empty() {
        let _ = writeln!(io.err, "Cannot provide tag filter without service filter.");
        return 1;
    }
    let payload = match parsed.args.as_slice() {
        [] => Vec::new(),
        [one] => one.as_bytes().to_vec(),
        _ => {
            let _ = writeln!(io.err, "Too many command line arguments.\n\n{}", usage());
            return 1;
        }
    };
    let client = match api_client::connect_or_exit(&parsed, env, io) {
        Ok(client) => client,
        Err(code) => return code,
    };
    if let Err(e) = client.get("/v1/agent/self") {
        let _ = writeln!(io.err, "Error querying Consul agent: {e}");
        return 1;
    }
    let mut params = Vec::new();
    for (key, re) in [("node", &node), ("service", &service), ("tag", &tag)] {
        if !re.is_empty() {
            params.push(format!("{key}={}", api_client::escape(re)));
        }
    }
    let path = api_client::with_query(
        &format!("/v1/event/fire/{}", api_client::escape(&name)),
        &params,
    );
    let body = (!payload.is_empty()).then_some(payload.as_slice());
    let reply = client.request("PUT", &path, body, api_client::MAX_RESPONSE_BYTES);
    let fired = reply.and_then(|r| {
        let text = String::from_utf8_lossy(&r.body).into_owned();
        match r.status {
            200 => serde_json::from_str::<serde_json::Value>(&text)
                .map_err(|e| e.to_string())
                .map(|v| v["ID"].as_str().unwrap_or_default().to_string()),
            status => Err(api_client::unexpected_status(status, &text)),
        }
    });
    match fired {
        Ok(id) => {
            let _ = writeln!(io.out, "Event ID: {id}");
            0
        }
        Err(e) => {
            let _ = writeln!(io.err, "Error firing event: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::fake_agent::{capture, serve_with_headers};

    const FIRED: &str = r#"{"ID":"b54fe110-7af5-cafc-d1fb-afc8ba432b1c","Name":"deploy","Payload":"djI=","NodeFilter":"web","ServiceFilter":"","TagFilter":"","Version":1,"LTime":0}"#;

    #[test]
    fn fires_with_filters_and_payload_and_prints_the_id() {
        let agent = serve_with_headers(
            "127.0.9.3",
            vec![
                (200, b"{}".to_vec(), ""),
                (200, FIRED.as_bytes().to_vec(), ""),
            ],
        );
        let (code, out, err) = capture(
            run_with_env,
            &["-name", "deploy", "-node", "web.+", "v2"],
            &agent.env(),
        );
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(out, "Event ID: b54fe110-7af5-cafc-d1fb-afc8ba432b1c\n");
        assert_eq!(
            agent.requests(),
            [
                "GET /v1/agent/self HTTP/1.1",
                "PUT /v1/event/fire/deploy?node=web.%2B HTTP/1.1"
            ]
        );
        assert_eq!(agent.bodies()[1], b"v2");
    }

    #[test]
    fn usage_errors_are_consuls() {
        let env = ClientEnv::default();
        let (code, _, err) = capture(run_with_env, &[], &env);
        assert_eq!(code, 1);
        assert!(err.starts_with("Event name must be specified\n\nUsage: cairn event"));
        let (code, _, err) = capture(run_with_env, &["-name", "x", "-tag", "v1"], &env);
        assert_eq!(
            (code, err.as_str()),
            (1, "Cannot provide tag filter without service filter.\n")
        );
        let (code, _, err) = capture(run_with_env, &["-name", "x", "-node", "("], &env);
        assert_eq!(code, 1);
        assert!(
            err.starts_with("Failed to compile node filter regexp: "),
            "{err}"
        );
        let (code, _, err) = capture(run_with_env, &["-name", "x", "a", "b"], &env);
        assert_eq!(code, 1);
        assert!(err.starts_with("Too many command line arguments."));
    }

    #[test]
    fn an_agent_error_is_reported() {
        let agent = serve_with_headers(
            "127.0.9.3",
            vec![
                (200, b"{}".to_vec(), ""),
                (
                    500,
                    b"user event exceeds configured limit of 512 bytes before encoding".to_vec(),
                    "",
                ),
            ],
        );
        let (code, out, err) = capture(run_with_env, &["-name", "big", "x"], &agent.env());
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(
            err,
            "Error firing event: Unexpected response code: 500 (user event exceeds configured limit of 512 bytes before encoding)\n"
        );
    }
}
