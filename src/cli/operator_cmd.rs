//! `cairn operator raft list-peers [-stale]` and
//! `cairn operator raft remove-peer -id=<id> | -address=<ip:port>`: the Raft
//! configuration of a running cluster, as `consul operator raft` shows and edits it.
//!
//! Outputs and exit codes as Consul's: list-peers prints the table
//! (`Node ID Address State Voter RaftProtocol`) and exits 0, or `Error getting peers:
//! Failed to retrieve raft configuration: …` and 1; remove-peer prints
//! `Removed peer with address "…"` (or `id`) and exits 0, or `Error removing peer: …`
//! and 1.

use super::api_client::{self, ClientEnv};
use super::argv::{FlagKind, FlagSpec};
use super::columns::columnize;
use super::Output;
use serde::Deserialize;

const LIST_FLAGS: [FlagSpec; 1] = [FlagSpec {
    name: "stale",
    kind: FlagKind::Bool,
    value_name: "",
    help: "Permit any Consul server (non-leader) to respond to this request. This \
           allows for lower latency and higher throughput, but can result in stale \
           data.",
}];

const REMOVE_FLAGS: [FlagSpec; 2] = [
    FlagSpec {
        name: "address",
        kind: FlagKind::Value,
        value_name: "<value>",
        help: "The address to remove from the Raft configuration.",
    },
    FlagSpec {
        name: "id",
        kind: FlagKind::Value,
        value_name: "<value>",
        help: "The ID to remove from the Raft configuration.",
    },
];

pub fn usage() -> String {
    "Usage: cairn operator <subcommand> [options]\n\n  Provides cluster-level tools for operators.\n\nSubcommands:\n    raft    Provides cluster-level tools for operators (list-peers, remove-peer)\n".to_string()
}

fn raft_usage() -> String {
    "Usage: cairn operator raft <subcommand> [options]\n\n  The Raft operator command is used to interact with the Raft subsystem.\n\nSubcommands:\n    list-peers     Display the current Raft peer configuration\n    remove-peer    Remove a server from the Raft configuration\n".to_string()
}

fn list_usage() -> String {
    api_client::usage(
        "Usage: cairn operator raft list-peers [options]\n\n  Displays the current Raft peer configuration.",
        &api_client::with_http_flags(&LIST_FLAGS),
    )
}

fn remove_usage() -> String {
    api_client::usage(
        "Usage: cairn operator raft remove-peer [options]\n\n  Remove the server with given -address (or -id) from the Raft configuration.\n\n  There are rare cases where a peer may be left behind in the Raft quorum even\n  though the server is no longer present and known to the cluster. This command\n  can be used to remove the failed server so that it is no longer affects the Raft\n  quorum. If the server still shows in the output of the \"cairn members\" command,\n  it is preferable to clean up by simply running \"cairn force-leave\" instead of\n  this command.",
        &api_client::with_http_flags(&REMOVE_FLAGS),
    )
}

pub fn run(args: &[String], io: &mut Output<'_>) -> i32 {
    run_with_env(args, &ClientEnv::from_process(), io)
}

pub fn run_with_env(args: &[String], env: &ClientEnv, io: &mut Output<'_>) -> i32 {
    match args.first().map(String::as_str) {
        Some("raft") => match args.get(1).map(String::as_str) {
            Some("list-peers") => list_peers(&args[2..], env, io),
            Some("remove-peer") => remove_peer(&args[2..], env, io),
            Some("-h" | "-help" | "--help") => {
                let _ = write!(io.out, "{}", raft_usage());
                0
            }
            _ => {
                let _ = write!(io.err, "{}", raft_usage());
                1
            }
        },
        Some("-h" | "-help" | "--help") => {
            let _ = write!(io.out, "{}", usage());
            0
        }
        _ => {
            let _ = write!(io.err, "{}", usage());
            1
        }
    }
}

/// A server as `/v1/operator/raft/configuration` answers it.
#[derive(Debug, Clone, Deserialize)]
pub struct RaftServer {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(rename = "Node", default)]
    pub node: String,
    #[serde(rename = "Address")]
    pub address: String,
    #[serde(rename = "Leader", default)]
    pub leader: bool,
    #[serde(rename = "Voter")]
    pub voter: bool,
    #[serde(rename = "ProtocolVersion", default)]
    pub protocol_version: String,
}

#[derive(Debug, Clone, Deserialize)]
struct RaftConfiguration {
    #[serde(rename = "Servers")]
    servers: Vec<RaftServer>,
}

/// The servers of a `/v1/operator/raft/configuration` answer.
pub fn parse_raft_configuration(body: &str) -> Result<Vec<RaftServer>, serde_json::Error> {
    serde_json::from_str::<RaftConfiguration>(body).map(|c| c.servers)
}

/// Consul's table: `Node ID Address State Voter RaftProtocol`.
pub fn peers_table(servers: &[RaftServer]) -> String {
    let mut rows = vec![["Node", "ID", "Address", "State", "Voter", "RaftProtocol"]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()];
    for s in servers {
        let protocol = if s.protocol_version.is_empty() {
            "<=1".to_string()
        } else {
            s.protocol_version.clone()
        };
        let state = if s.leader { "leader" } else { "follower" };
        rows.push(vec![
            s.node.clone(),
            s.id.clone(),
            s.address.clone(),
            state.to_string(),
            s.voter.to_string(),
            protocol,
        ]);
    }
    columnize(&rows)
}

fn list_peers(args: &[String], env: &ClientEnv, io: &mut Output<'_>) -> i32 {
    let specs = api_client::with_http_flags(&LIST_FLAGS);
    let parsed = match api_client::parse_or_exit(
        args,
        &specs,
        "operator raft list-peers",
        &list_usage(),
        io,
    ) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let client = match api_client::connect_or_exit(&parsed, env, io) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let path = if parsed.bool("stale") {
        "/v1/operator/raft/configuration?stale="
    } else {
        "/v1/operator/raft/configuration"
    };
    let answer = client.get(path).and_then(|body| {
        parse_raft_configuration(&body).map_err(|e| format!("invalid configuration answer: {e}"))
    });
    match answer {
        Ok(servers) => {
            let _ = writeln!(io.out, "{}", peers_table(&servers));
            0
        }
        Err(e) => {
            let _ = writeln!(
                io.err,
                "Error getting peers: Failed to retrieve raft configuration: {e}"
            );
            1
        }
    }
}

fn remove_peer(args: &[String], env: &ClientEnv, io: &mut Output<'_>) -> i32 {
    let specs = api_client::with_http_flags(&REMOVE_FLAGS);
    let parsed = match api_client::parse_or_exit(
        args,
        &specs,
        "operator raft remove-peer",
        &remove_usage(),
        io,
    ) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    let address = parsed.value("address").unwrap_or_default().to_string();
    let id = parsed.value("id").unwrap_or_default().to_string();
    let client = match api_client::connect_or_exit(&parsed, env, io) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let result = match (address.is_empty(), id.is_empty()) {
        (true, true) => Err("an address or id is required for the peer to remove".to_string()),
        (false, false) => Err("cannot give both an address and id".to_string()),
        (false, true) => client
            .delete(&format!(
                "/v1/operator/raft/peer?address={}",
                api_client::escape(&address)
            ))
            .map(|_| format!("Removed peer with address {address:?}")),
        (true, false) => client
            .delete(&format!(
                "/v1/operator/raft/peer?id={}",
                api_client::escape(&id)
            ))
            .map(|_| format!("Removed peer with id {id:?}")),
    };
    match result {
        Ok(text) => {
            let _ = writeln!(io.out, "{text}");
            0
        }
        Err(e) => {
            let _ = writeln!(io.err, "Error removing peer: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::fake_agent::{capture, serve};

    const CONFIG: &str = r#"{"Servers":[{"ID":"a1","Node":"s1","Address":"127.0.0.1:8300","Leader":true,"Voter":true,"ProtocolVersion":"3"},{"ID":"b22","Node":"server-2","Address":"127.0.0.2:8300","Leader":false,"Voter":false,"ProtocolVersion":"3"}],"Index":9}"#;

    #[test]
    fn list_peers_prints_consuls_table() {
        let agent = serve(vec![(200, CONFIG), (200, CONFIG)]);
        let args = ["raft", "list-peers"];
        let (code, out, err) = capture(run_with_env, &args, &agent.env());
        assert_eq!((code, err.as_str()), (0, ""));
        assert_eq!(
            out,
            "Node      ID   Address         State     Voter  RaftProtocol\n\
             s1        a1   127.0.0.1:8300  leader    true   3\n\
             server-2  b22  127.0.0.2:8300  follower  false  3\n"
        );
        let (code, _, _) = capture(
            run_with_env,
            &["raft", "list-peers", "-stale"],
            &agent.env(),
        );
        assert_eq!(code, 0);
        assert_eq!(
            agent.requests(),
            [
                "GET /v1/operator/raft/configuration HTTP/1.1",
                "GET /v1/operator/raft/configuration?stale= HTTP/1.1",
            ]
        );
    }

    #[test]
    fn list_peers_error() {
        let agent = serve(vec![(500, "No cluster leader")]);
        let (code, out, err) = capture(run_with_env, &["raft", "list-peers"], &agent.env());
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(
            err,
            "Error getting peers: Failed to retrieve raft configuration: Unexpected response code: 500 (No cluster leader)\n"
        );
    }

    #[test]
    fn remove_peer_by_address_or_id() {
        let agent = serve(vec![
            (200, ""),
            (200, ""),
            (
                500,
                "address \"nope\" was not found in the Raft configuration",
            ),
        ]);
        let env = agent.env();
        let (code, out, _) = capture(
            run_with_env,
            &["raft", "remove-peer", "-address=127.0.0.2:8300"],
            &env,
        );
        assert_eq!(
            (code, out.as_str()),
            (0, "Removed peer with address \"127.0.0.2:8300\"\n")
        );
        let (code, out, _) = capture(run_with_env, &["raft", "remove-peer", "-id=b22"], &env);
        assert_eq!((code, out.as_str()), (0, "Removed peer with id \"b22\"\n"));
        let (code, _, err) = capture(
            run_with_env,
            &["raft", "remove-peer", "-address=nope"],
            &env,
        );
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "Error removing peer: Unexpected response code: 500 (address \"nope\" was not found in the Raft configuration)\n"
        );
        assert_eq!(
            agent.requests(),
            [
                "DELETE /v1/operator/raft/peer?address=127.0.0.2:8300 HTTP/1.1",
                "DELETE /v1/operator/raft/peer?id=b22 HTTP/1.1",
                "DELETE /v1/operator/raft/peer?address=nope HTTP/1.1",
            ]
        );
    }

    #[test]
    fn remove_peer_needs_exactly_one_selector() {
        let env = ClientEnv::default();
        let (code, _, err) = capture(run_with_env, &["raft", "remove-peer"], &env);
        assert_eq!(
            (code, err.as_str()),
            (
                1,
                "Error removing peer: an address or id is required for the peer to remove\n"
            )
        );
        let (code, _, err) = capture(
            run_with_env,
            &["raft", "remove-peer", "-id=a", "-address=b"],
            &env,
        );
        assert_eq!(
            (code, err.as_str()),
            (
                1,
                "Error removing peer: cannot give both an address and id\n"
            )
        );
        let (code, _, err) = capture(run_with_env, &["raft"], &env);
        assert_eq!(code, 1);
        assert!(err.contains("list-peers"));
    }
}
