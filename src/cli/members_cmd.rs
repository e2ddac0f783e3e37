//! `cairn members [-detailed] [-status=<regexp>] [-segment=<name>] [-wan]`: the members
//! of a running agent's cluster, printed as `consul members` prints them.
//!
//! Exit codes as Consul's: 0 members printed, 1 error, 2 no member matched.

use super::api_client::{self, ApiClient, ClientEnv, ParsedArgs};
use super::argv::{FlagKind, FlagSpec};
use super::columns::columnize;
use super::Output;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// What `-segment` defaults to: every segment (Consul's `api.AllSegments`).
pub const ALL_SEGMENTS: &str = "_all";

const MEMBERS_FLAGS: [FlagSpec; 4] = [
    FlagSpec {
        name: "detailed",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Provides detailed information about nodes.",
    },
    FlagSpec {
        name: "status",
        kind: FlagKind::Value,
        value_name: "<regexp>",
        help: "If provided, output is filtered to only nodes matching the regular \
               expression for status.",
    },
    FlagSpec {
        name: "segment",
        kind: FlagKind::Value,
        value_name: "<name>",
        help: "If provided, output is filtered to only nodes in the given segment \
               (only the default segment exists).",
    },
    FlagSpec {
        name: "wan",
        kind: FlagKind::Bool,
        value_name: "",
        help: "If the agent is in server mode, this can be used to return the other \
               peers in the WAN pool.",
    },
];

fn specs() -> Vec<FlagSpec> {
    api_client::with_http_flags(&MEMBERS_FLAGS)
}

pub fn usage() -> String {
    api_client::usage(
        "Usage: cairn members [options]\n\n  Outputs the members of a running cairn agent.",
        &specs(),
    )
}

/// A member as `/v1/agent/members` answers it (the fields this command reads).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Member {
    pub name: String,
    pub addr: String,
    pub port: u16,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    pub status: i64,
}

/// serf's status words for Consul's numeric codes.
pub fn status_word(code: i64) -> &'static str {
    match code {
        0 => "none",
        1 => "alive",
        2 => "leaving",
        3 => "left",
        4 => "failed",
        _ => "unknown",
    }
}

pub fn run(args: &[String], io: &mut Output<'_>) -> i32 {
    run_with_env(args, &ClientEnv::from_process(), io)
}

pub fn run_with_env(args: &[String], env: &ClientEnv, io: &mut Output<'_>) -> i32 {
    let parsed = match api_client::parse_or_exit(args, &specs(), "members", &usage(), io) {
        Ok(parsed) => parsed,
        Err(code) => return code,
    };
    if let Some(first) = parsed.args.first() {
        let _ = writeln!(
            io.err,
            "unexpected argument: {first:?}\nRun 'cairn members -h' for the list of flags."
        );
        return 1;
    }
    let status_filter = match regex_lite::Regex::new(parsed.value("status").unwrap_or(".*")) {
        Ok(re) => re,
        Err(e) => {
            let _ = writeln!(io.err, "Failed to compile status regexp: {e}");
            return 1;
        }
    };
    let client = match api_client::connect_or_exit(&parsed, env, io) {
        Ok(client) => client,
        Err(code) => return code,
    };
    let segment = parsed.value("segment").unwrap_or(ALL_SEGMENTS).to_string();
    let members = match fetch(&client, &parsed, &segment) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(io.err, "Error retrieving members: {e}");
            return 1;
        }
    };
    let members = prepare(members, &segment, |status| status_filter.is_match(status));
    if members.is_empty() {
        return 2;
    }
    let table = if parsed.bool("detailed") {
        detailed_table(&members)
    } else {
        standard_table(&members)
    };
    let _ = writeln!(io.out, "{table}");
    0
}

fn fetch(client: &ApiClient, parsed: &ParsedArgs, segment: &str) -> Result<Vec<Member>, String> {
    let mut path = format!("/v1/agent/members?segment={}", api_client::escape(segment));
    if parsed.bool("wan") {
        path.push_str("&wan=1");
    }
    let body = client.get(&path)?;
    // A client agent's WAN pool is `null`: no members.
    let members: Option<Vec<Member>> =
        serde_json::from_str(&body).map_err(|e| format!("invalid members answer: {e}"))?;
    Ok(members.unwrap_or_default())
}

fn is_default_partition(p: &str) -> bool {
    p.is_empty() || p == "default"
}

/// Consul's display rules, in its order: a member without a partition is in `default`;
/// in the default partition, servers show segment `<all>` when every segment was asked
/// for and others an empty segment shows `<default>`. Then the status filter, then the
/// sort: servers first, then the default partition, then by segment, partition, name.
pub fn prepare(
    members: Vec<Member>,
    segment_asked: &str,
    status_matches: impl Fn(&str) -> bool,
) -> Vec<Member> {
    let mut shown: Vec<Member> = members
        .into_iter()
        .map(|mut m| {
            let partition = m.tags.entry("ap".into()).or_default();
            if partition.is_empty() {
                *partition = "default".into();
            }
            let default_partition = is_default_partition(partition);
            let server = m.tags.get("role").map(String::as_str) == Some("consul");
            let segment = m.tags.entry("segment".into()).or_default();
            if !default_partition {
                segment.clear();
            } else if segment_asked == ALL_SEGMENTS && server {
                *segment = "<all>".into();
            } else if segment.is_empty() {
                *segment = "<default>".into();
            }
            m
        })
        .filter(|m| status_matches(status_word(m.status)))
        .collect();
    shown.sort_by_cached_key(|m| {
        let tag = |k: &str| m.tags.get(k).cloned().unwrap_or_default();
        let partition = tag("ap");
        (
            tag("role") != "consul",
            !is_default_partition(&partition),
            tag("segment"),
            partition,
            m.name.clone(),
        )
    });
    shown
}

/// `ip:port` as Go's `net.TCPAddr` prints it (`[v6]:port`; `:port` for no address).
fn address(m: &Member) -> String {
    match m.addr.parse::<IpAddr>() {
        Ok(ip) => SocketAddr::new(ip, m.port).to_string(),
        Err(_) => format!(":{}", m.port),
    }
}

/// `Node Address Status Type Build Protocol DC Partition Segment`.
pub fn standard_table(members: &[Member]) -> String {
    let header = [
        "Node",
        "Address",
        "Status",
        "Type",
        "Build",
        "Protocol",
        "DC",
        "Partition",
        "Segment",
    ];
    let mut rows = vec![header.iter().map(|h| h.to_string()).collect::<Vec<_>>()];
    for m in members {
        let tag = |k: &str| m.tags.get(k).cloned().unwrap_or_default();
        let build = match tag("build") {
            b if b.is_empty() => "< 0.3".to_string(),
            b => b.split(':').next().unwrap_or_default().to_string(),
        };
        let kind = match tag("role").as_str() {
            "node" => "client",
            "consul" => "server",
            _ => "unknown",
        };
        let mut row = vec![
            m.name.clone(),
            address(m),
            status_word(m.status).to_string(),
            kind.to_string(),
        ];
        if kind == "unknown" {
            row.extend(std::iter::repeat_n(String::new(), 5));
        } else {
            row.extend([build, tag("vsn"), tag("dc"), tag("ap"), tag("segment")]);
        }
        rows.push(row);
    }
    columnize(&rows)
}

/// `Node Address Status Tags`, the tags as `k=v` sorted by key and comma-joined.
pub fn detailed_table(members: &[Member]) -> String {
    let mut rows = vec![vec![
        "Node".to_string(),
        "Address".into(),
        "Status".into(),
        "Tags".into(),
    ]];
    for m in members {
        let tags: Vec<String> = m.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
        rows.push(vec![
            m.name.clone(),
            address(m),
            status_word(m.status).to_string(),
            tags.join(","),
        ]);
    }
    columnize(&rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANSWER: &str = r#"[
        {"Name":"web","Addr":"10.0.0.3","Port":8301,"Status":1,
         "Tags":{"build":"1.22.0:cairn-0.1.0","dc":"dc1","role":"node","segment":"","vsn":"2"}},
        {"Name":"srv2","Addr":"10.0.0.2","Port":8301,"Status":4,
         "Tags":{"build":"1.22.0:cairn-0.1.0","dc":"dc1","role":"consul","segment":"","vsn":"2","port":"8300"}},
        {"Name":"alpha","Addr":"10.0.0.1","Port":8301,"Status":1,
         "Tags":{"build":"1.22.0:cairn-0.1.0","dc":"dc1","role":"consul","segment":"","vsn":"2","port":"8300"}},
        {"Name":"odd","Addr":"::1","Port":8301,"Status":3,"Tags":{}}
    ]"#;

    fn members(segment: &str, status: &str) -> Vec<Member> {
        let re = regex_lite::Regex::new(status).expect("regex");
        prepare(serde_json::from_str(ANSWER).expect("json"), segment, |s| {
            re.is_match(s)
        })
    }

    #[test]
    fn standard_output_is_consuls_table() {
        // A member of no known role gets only its name, address and status; its empty
        // cells keep their padding (2 + 8 + 10 + 5 + 11 spaces after "unknown").
        let odd = format!("odd    [::1]:8301     left    unknown{}", " ".repeat(36));
        assert_eq!(
            standard_table(&members(ALL_SEGMENTS, ".*")),
            [
                "Node   Address        Status  Type     Build   Protocol  DC   Partition  Segment",
                "alpha  10.0.0.1:8301  alive   server   1.22.0  2         dc1  default    <all>",
                "srv2   10.0.0.2:8301  failed  server   1.22.0  2         dc1  default    <all>",
                &odd,
                "web    10.0.0.3:8301  alive   client   1.22.0  2         dc1  default    <default>",
            ]
            .join("\n")
        );
    }

    #[test]
    fn detailed_output_lists_every_tag() {
        assert_eq!(
            detailed_table(&members("", "alive")),
            "Node   Address        Status  Tags\n\
             alpha  10.0.0.1:8301  alive   ap=default,build=1.22.0:cairn-0.1.0,dc=dc1,port=8300,role=consul,segment=<default>,vsn=2\n\
             web    10.0.0.3:8301  alive   ap=default,build=1.22.0:cairn-0.1.0,dc=dc1,role=node,segment=<default>,vsn=2"
        );
    }

    #[test]
    fn status_filter_is_an_unanchored_regexp() {
        let names = |status: &str| -> Vec<String> {
            members(ALL_SEGMENTS, status)
                .into_iter()
                .map(|m| m.name)
                .collect()
        };
        assert_eq!(names("fail"), ["srv2"]);
        assert_eq!(names("^(alive|left)$"), ["alpha", "odd", "web"]);
        assert!(names("leaving").is_empty());
    }

    fn capture(args: &[&str], env: &ClientEnv) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let code = run_with_env(
            &args,
            env,
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
    fn flag_errors_and_help() {
        let env = ClientEnv::default();
        let (code, _, err) = capture(&["-bogus"], &env);
        assert_eq!(code, 1);
        assert_eq!(
            err,
            "flag provided but not defined: -bogus\nRun 'cairn members -h' for the list of flags.\n"
        );
        let (code, out, _) = capture(&["-h"], &env);
        assert_eq!(code, 0);
        assert!(out.starts_with("Usage: cairn members [options]"), "{out}");
        assert!(out.contains("\n  -http-addr=<address>\n"), "{out}");
        let (code, _, err) = capture(&["-status=("], &env);
        assert_eq!(code, 1);
        assert!(
            err.starts_with("Failed to compile status regexp: "),
            "{err}"
        );
        let (code, _, err) = capture(&["extra"], &env);
        assert_eq!(code, 1);
        assert!(err.starts_with("unexpected argument: \"extra\""), "{err}");
    }

    #[test]
    fn an_agent_that_is_not_there() {
        let env = ClientEnv {
            http_addr: Some("http://127.0.0.139:1".into()),
            token: None,
        };
        let (code, out, err) = capture(&["-wan"], &env);
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(
            err,
            "Error retrieving members: Get \"http://127.0.0.139:1/v1/agent/members?segment=_all&wan=1\": \
             dial tcp 127.0.0.139:1: connect: connection refused\n"
        );
    }
}
