//! `cairn members`, `join`, `force-leave` and `leave` against a real agent: the exact
//! text `consul members` prints, Consul's error texts and exit codes, the agent address
//! from `-http-addr` or `CONSUL_HTTP_ADDR`, and an agent that shuts down after `leave`.

mod common;

use common::{cairn_bin, http_client, run_cairn, wait_for, Agent};
use std::process::{Command, Stdio};

/// `cairn <args>` with `CONSUL_HTTP_ADDR` set; (exit code, stdout, stderr).
fn run_with_addr_env(addr: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(cairn_bin())
        .args(args)
        .env("CONSUL_HTTP_ADDR", addr)
        .stdin(Stdio::null())
        .output()
        .expect("run cairn");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn members_and_force_leave_against_a_server() {
    const IP: &str = "127.0.0.130";
    let tmp = tempfile::tempdir().unwrap();
    let agent = Agent::server(IP, "alpha", &tmp.path().join("d"), &[]);
    let http_addr = format!("{IP}:8500");

    let (code, out, err) = run_cairn(&["members", "-http-addr", &http_addr]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "Node   Address           Status  Type    Build   Protocol  DC   Partition  Segment\n\
         alpha  127.0.0.130:8301  alive   server  1.22.0  2         dc1  default    <all>\n"
    );

    // The same agent through the environment, with and without the scheme.
    let me: serde_json::Value = http_client()
        .get(agent.url("/v1/agent/self"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    let id = me["Config"]["NodeID"]
        .as_str()
        .expect("node id")
        .to_string();
    let build = me["Member"]["Tags"]["build"]
        .as_str()
        .expect("build")
        .to_string();
    assert!(build.starts_with("1.22.0:"), "{build}");
    for addr in [format!("http://{http_addr}"), http_addr.clone()] {
        let (code, out, _) = run_with_addr_env(&addr, &["members", "-detailed"]);
        assert_eq!(code, 0);
        assert_eq!(
            out,
            format!(
                "Node   Address           Status  Tags\n\
                 alpha  127.0.0.130:8301  alive   acls=0,ap=default,bootstrap=1,build={build},dc=dc1,\
                 id={id},port=8300,raft_vsn=3,role=consul,segment=<all>,vsn=2,vsn_max=3,vsn_min=2,\
                 wan_join_port=8302\n"
            )
        );
    }

    // The WAN pool of a single-datacenter server: itself as <node>.<dc> on the WAN port.
    let (code, out, _) = run_cairn(&["members", "-wan", "-http-addr", &http_addr]);
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "Node       Address           Status  Type    Build   Protocol  DC   Partition  Segment\n\
         alpha.dc1  127.0.0.130:8302  alive   server  1.22.0  2         dc1  default    <all>\n"
    );

    // No member matches: exit 2, nothing printed.
    let (code, out, err) = run_cairn(&["members", "-status=failed", "-http-addr", &http_addr]);
    assert_eq!((code, out.as_str(), err.as_str()), (2, "", ""));

    let (code, out, err) = run_cairn(&["force-leave", "-http-addr", &http_addr, "nosuch"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(
        err,
        "Error force leaving: Unexpected response code: 500 (agent: No node found with name 'nosuch')\n"
    );

    // Nobody gossips at that address: the join fails with the reason.
    let (code, out, err) = run_cairn(&["join", "-http-addr", &http_addr, "127.0.0.131"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(
        err.starts_with(
            "Error joining address '127.0.0.131': Unexpected response code: 500 (Failed to join 127.0.0.131:8301: "
        ),
        "{err}"
    );
    assert!(err.ends_with(")\nFailed to join any nodes.\n"), "{err}");

    let (code, _, err) = run_cairn(&["members", "-bogus"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "flag provided but not defined: -bogus\nRun 'cairn members -h' for the list of flags.\n"
    );
}

#[test]
fn leave_stops_the_agent() {
    const IP: &str = "127.0.0.132";
    let tmp = tempfile::tempdir().unwrap();
    let mut agent = Agent::server(IP, "leaver", &tmp.path().join("d"), &[]);
    let (code, out, err) = run_with_addr_env(&format!("{IP}:8500"), &["leave"]);
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (0, "Graceful leave complete\n", "")
    );
    wait_for("the agent to shut down after leave", || {
        agent.log_text().contains("Shutdown complete").then_some(())
    });
    // It exited on its own, cleanly (the SIGTERM here finds it already gone).
    assert_eq!(agent.terminate(), Some(0));
    let (code, _, err) = run_cairn(&["members", "-http-addr", &format!("{IP}:8500")]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        format!(
            "Error retrieving members: Get \"http://{IP}:8500/v1/agent/members?segment=_all\": \
             dial tcp {IP}:8500: connect: connection refused\n"
        )
    );
}
