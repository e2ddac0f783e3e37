//! Bad input over real HTTP, DNS and the command line: a clear error in Consul's style,
//! no panic, and no change to the state.

mod common;

use common::dns::{rcode, udp_query};
use common::{http_client, run_cairn, Agent};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use std::net::UdpSocket;

const IP: &str = "127.0.0.12";

#[test]
fn http_bad_input_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = Agent::server(IP, "badnode", &tmp.path().join("d"), &[]);
    let client = http_client();
    let before = agent.state();

    let cases: Vec<(&str, &str, String, u16, &str)> = vec![
        (
            "PUT",
            "/v1/catalog/register",
            "{not json".into(),
            400,
            "Request decode failed",
        ),
        (
            "PUT",
            "/v1/catalog/register",
            r#"{"Node": 7, "Address": "x"}"#.into(),
            400,
            "Request decode failed",
        ),
        (
            "PUT",
            "/v1/catalog/register",
            r#"{"Node": "n", "Address": "a", "Service": {"Service": "s", "Port": "eighty"}}"#
                .into(),
            400,
            "Request decode failed",
        ),
        (
            "PUT",
            "/v1/catalog/register",
            "[1,2,3]".into(),
            400,
            "Request decode failed",
        ),
        (
            "PUT",
            "/v1/kv/big",
            "x".repeat(512 * 1024 + 1),
            413,
            "too large",
        ),
        (
            "PUT",
            "/v1/kv/flagged?flags=notanumber",
            "v".into(),
            500,
            "",
        ),
        ("PUT", "/v1/kv/casbad?cas=-1", "v".into(), 500, ""),
        (
            "GET",
            "/v1/kv/x?index=abc",
            String::new(),
            400,
            "Invalid index",
        ),
        (
            "GET",
            "/v1/kv/x?stale&consistent",
            String::new(),
            400,
            "Cannot specify ?stale with ?consistent",
        ),
        (
            "GET",
            "/v1/no/such/endpoint",
            String::new(),
            404,
            "Invalid URL path",
        ),
        (
            "POST",
            "/v1/kv/key",
            "v".into(),
            405,
            "method POST not allowed",
        ),
        (
            "DELETE",
            "/v1/catalog/nodes",
            String::new(),
            405,
            "method DELETE not allowed",
        ),
        ("PUT", "/v1/kv/", "v".into(), 400, "Missing key name"),
    ];
    for (method, path, body, code, text) in cases {
        let req = match method {
            "PUT" => client.put(agent.url(path)),
            "POST" => client.post(agent.url(path)),
            "DELETE" => client.delete(agent.url(path)),
            _ => client.get(agent.url(path)),
        };
        let resp = req.body(body).send().unwrap();
        let status = resp.status().as_u16();
        let allow = resp
            .headers()
            .get("Allow")
            .map(|v| v.to_str().unwrap().to_string());
        let got = resp.text().unwrap();
        assert_eq!(status, code, "{method} {path}: {got}");
        assert!(
            got.contains(text),
            "{method} {path}: body {got:?} lacks {text:?}"
        );
        if code == 405 {
            assert!(allow.is_some(), "405 carries Allow");
        }
    }
    assert_eq!(agent.state(), before, "bad input changed state");
}

#[test]
fn garbage_datagrams_do_not_kill_dns() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = Agent::server("127.0.0.13", "dnsnode", &tmp.path().join("d"), &[]);
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff],
        vec![0u8; 12],
        vec![0xde, 0xad, 0xbe, 0xef, 0, 1, 0, 1, 0, 0, 0, 0, 0xc0, 0x0c],
        (0..=255u8).collect(),
        vec![0x41; 3000],
    ];
    for g in &garbage {
        sock.send_to(g, agent.dns_addr()).unwrap();
    }
    // Still answering correctly afterwards.
    let reply = udp_query(agent.dns_addr(), "dnsnode.node.consul.", RecordType::A);
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert_eq!(reply.answers.len(), 1);
}

#[test]
fn cli_rejects_bad_flags_and_config() {
    let (code, _out, err) = run_cairn(&["agent", "-no-such-flag"]);
    assert_eq!(code, 1);
    assert!(err.contains("no-such-flag"), "stderr: {err}");

    let (code, _out, err) = run_cairn(&["agent", "-server"]);
    assert_eq!(code, 1, "missing data dir: {err}");
    assert!(
        err.to_lowercase().contains("data_dir") || err.to_lowercase().contains("data-dir"),
        "stderr: {err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.json");
    std::fs::write(&cfg, r#"{"server": "yes"}"#).unwrap();
    let (code, _out, err) = run_cairn(&["agent", "-dev", "-config-file", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("server"), "stderr: {err}");

    let (code, _out, err) = run_cairn(&[
        "agent",
        "-server",
        "-bootstrap",
        "-bootstrap-expect",
        "3",
        "-data-dir",
        "/tmp/x",
    ]);
    assert_eq!(code, 1, "{err}");
}

#[test]
fn version_command() {
    let (code, out, _) = run_cairn(&["version"]);
    assert_eq!(code, 0);
    assert!(
        out.contains("1.22.0") || out.contains(env!("CARGO_PKG_VERSION")),
        "{out}"
    );
    let (code, out, _) = run_cairn(&["version", "-format=json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["Version"].is_string());
}
