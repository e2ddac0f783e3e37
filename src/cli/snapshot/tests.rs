//! The snapshot commands against a canned agent and on files.

use super::super::fake_agent::{serve_with_headers, FakeAgent};
use super::inspect::{byte_size, pretty, report, KvDetails};
use super::*;
use crate::snapshot_archive::write_archive;
use protocol::store::image::encode_image;
use protocol::store::{Command, KvOp, Store};

const SELF: &str = r#"{"Config":{"Datacenter":"dc1","Version":"1.22.0"}}"#;

fn snapshot(args: &[&str], env: &ClientEnv) -> (i32, String, String) {
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

fn store() -> Store {
    let mut store = Store::new();
    for (i, key) in ["app/a/x", "app/b", "other"].iter().enumerate() {
        store.apply(
            i as u64 + 1,
            &Command::Kv(KvOp::Set {
                key: key.to_string(),
                value: vec![7; 10],
                flags: 0,
            }),
        );
    }
    store
}

fn archive() -> Vec<u8> {
    write_archive(3, 2, &encode_image(&store()).unwrap(), 1_600_000_000_000).unwrap()
}

fn agent(answers: Vec<(u16, Vec<u8>, &'static str)>) -> FakeAgent {
    serve_with_headers("127.0.0.248", answers)
}

#[test]
fn save_writes_a_verified_file_and_reports_the_index() {
    let a = agent(vec![
        (200, SELF.as_bytes().to_vec(), ""),
        (200, archive(), "X-Consul-Index: 3\r\n"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.snap");
    let file = file.to_str().unwrap();
    let (code, out, err) = snapshot(
        &["save", "-stale", "-append-filename=version,dc", file],
        &a.env(),
    );
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, "Saved and verified snapshot to index 3\n");
    assert_eq!(
        a.requests(),
        [
            "GET /v1/agent/self HTTP/1.1",
            "GET /v1/snapshot?stale= HTTP/1.1"
        ]
    );
    let saved = dir.path().join("backup-1.22.0-dc1.snap");
    assert_eq!(std::fs::read(&saved).unwrap(), archive());
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&saved).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no .unverified left"
    );
}

#[test]
fn save_refuses_a_damaged_archive_and_leaves_nothing() {
    let mut damaged = archive();
    let at = damaged.len() / 2;
    damaged[at] ^= 0xff;
    let a = agent(vec![
        (200, SELF.as_bytes().to_vec(), ""),
        (200, damaged, "X-Consul-Index: 3\r\n"),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.snap");
    let (code, out, err) = snapshot(&["save", file.to_str().unwrap()], &a.env());
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.starts_with("Error verifying snapshot file: "), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn save_and_restore_errors_read_like_consuls() {
    let env = ClientEnv::default();
    assert_eq!(snapshot(&["save"], &env).2, "Missing FILE argument\n");
    assert_eq!(
        snapshot(&["save", "a", "b"], &env).2,
        "Too many arguments (expected 1 or 3, got 2)\n"
    );
    assert_eq!(
        snapshot(&["restore", "a", "b"], &env).2,
        "Too many arguments (expected 1, got 2)\n"
    );
    let down = ClientEnv {
        http_addr: Some("127.0.0.247:1".into()),
        token: None,
    };
    let (code, _, err) = snapshot(&["save", "x.snap"], &down);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error connecting to Consul agent and fetching datacenter/version: Get "),
        "{err}"
    );
    let (code, _, err) = snapshot(&["restore", "/nonexistent/cairn.snap"], &down);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error opening snapshot file: open /nonexistent/cairn.snap: no such file or directory\n"
    );
}

#[test]
fn restore_puts_the_file() {
    let a = agent(vec![
        (200, Vec::new(), ""),
        (500, b"bad archive".to_vec(), ""),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.snap");
    std::fs::write(&file, archive()).unwrap();
    let (code, out, _) = snapshot(&["restore", file.to_str().unwrap()], &a.env());
    assert_eq!((code, out.as_str()), (0, "Restored snapshot\n"));
    let (code, _, err) = snapshot(&["restore", file.to_str().unwrap()], &a.env());
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error restoring snapshot: Unexpected response code: 500 (bad archive)\n"
    );
    assert_eq!(a.requests()[0], "PUT /v1/snapshot HTTP/1.1");
    assert_eq!(a.bodies()[0], archive());
}

#[test]
fn inspect_prints_consuls_table() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("b.snap");
    std::fs::write(&file, archive()).unwrap();
    let (code, out, err) = snapshot(&["inspect", file.to_str().unwrap()], &ClientEnv::default());
    assert_eq!((code, err.as_str()), (0, ""));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], " ID           2-3-1600000000000");
    assert!(lines[1].starts_with(" Size         "), "{out}");
    assert_eq!(lines[2], " Index        3");
    assert_eq!(lines[3], " Term         2");
    assert_eq!(lines[4], " Version      1");
    assert_eq!(lines[5], "");
    assert_eq!(lines[6], " Type       Count      Size");
    assert_eq!(lines[7], " ----       ----       ----");
    assert!(lines[8].starts_with(" KVS        3          "), "{out}");
    assert!(
        lines.last().unwrap().starts_with(" Total                 "),
        "{out}"
    );

    let (code, out, _) = snapshot(
        &[
            "inspect",
            "-kvdetails",
            "-kvdepth=1",
            "-format=json",
            file.to_str().unwrap(),
        ],
        &ClientEnv::default(),
    );
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Meta"]["Index"], 3);
    assert_eq!(v["StatsKV"][0]["Name"], "app");
    assert_eq!(v["StatsKV"][0]["Count"], 2);
    assert!(
        out.contains("\n   \"Meta\": {"),
        "three-space indent: {out}"
    );

    let (code, _, err) = snapshot(
        &["inspect", "-format=xml", file.to_str().unwrap()],
        &ClientEnv::default(),
    );
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error outputting enhanced snapshot data: Unknown format: xml\n"
    );
    std::fs::write(&file, b"junk").unwrap();
    let (code, _, err) = snapshot(&["inspect", file.to_str().unwrap()], &ClientEnv::default());
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error reading snapshot: failed reading snapshot: "),
        "{err}"
    );
}

#[test]
fn kv_details_break_keys_down_by_prefix() {
    let image = encode_image(&store()).unwrap();
    let archive = crate::snapshot_archive::read_archive(&archive()[..], 1 << 20).unwrap();
    let r = report(
        &archive.meta,
        &image,
        Some(&KvDetails {
            depth: 2,
            filter: "app".into(),
        }),
    )
    .unwrap();
    let names: Vec<&str> = r
        .stats_kv
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names, ["app/a", "app/b"]);
    let text = pretty(&r);
    assert!(
        text.contains("\n\n Key Name      Count      Size\n"),
        "{text}"
    );
}

#[test]
fn byte_sizes_are_consuls() {
    assert_eq!(byte_size(0), "0");
    assert_eq!(byte_size(313), "313B");
    assert_eq!(byte_size(1024), "1KB");
    assert_eq!(byte_size(1638), "1.6KB");
    assert_eq!(byte_size(5 * 1024 * 1024 + 1), "5MB");
}
