//! `cairn kv` against a real `cairn agent -dev`: put (argument, stdin, @file, flags,
//! CAS), get (raw, -detailed, -recurse, -keys), delete (CAS, -recurse), export and
//! import, with Consul's texts and exit codes.

mod common;

use common::{cairn_bin, run_cairn, Agent};
use std::io::Write;
use std::process::{Command, Stdio};

const IP: &str = "127.0.0.240";

fn dev_agent(dir: &std::path::Path) -> Agent {
    let args: Vec<String> = [
        "agent", "-dev", "-node", "kvnode", "-bind", IP, "-client", IP,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut agent = Agent::spawn(IP, &args, dir);
    agent.wait_ready();
    agent
}

/// `cairn kv <args> -http-addr=<agent>`, with `stdin` piped in.
fn kv(args: &[&str], stdin: &[u8]) -> (i32, String, String) {
    let addr = format!("-http-addr={IP}:8500");
    let mut child = Command::new(cairn_bin())
        .arg("kv")
        .arg(args[0])
        .arg(&addr)
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run cairn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("cairn exits");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ok(args: &[&str]) -> String {
    let (code, out, err) = kv(args, b"");
    assert_eq!((code, err.as_str()), (0, ""), "kv {args:?}");
    out
}

#[test]
fn kv_commands_against_a_dev_agent() {
    let tmp = tempfile::tempdir().unwrap();
    let _agent = dev_agent(tmp.path());

    assert_eq!(
        ok(&["put", "app/a", "one"]),
        "Success! Data written to: app/a\n"
    );
    assert_eq!(
        kv(&["put", "app/b", "-"], b"from stdin").0,
        0,
        "value from stdin"
    );
    let file = tmp.path().join("value.txt");
    std::fs::write(&file, "from a file").unwrap();
    ok(&["put", "-flags=42", "app/c", &format!("@{}", file.display())]);
    ok(&["put", "-base64", "app/d", "aGk="]);

    assert_eq!(ok(&["get", "app/a"]), "one\n");
    assert_eq!(ok(&["get", "/app/b"]), "from stdin\n");
    assert_eq!(ok(&["get", "-stale", "app/d"]), "hi\n");
    assert_eq!(
        ok(&["get", "-recurse", "app/"]),
        "app/a:one\napp/b:from stdin\napp/c:from a file\napp/d:hi\n"
    );
    assert_eq!(ok(&["get", "-keys", "-separator=/", ""]), "app/\n");
    let detailed = ok(&["get", "-detailed", "app/c"]);
    let index: u64 = detailed
        .lines()
        .find_map(|l| l.strip_prefix("ModifyIndex      "))
        .expect("ModifyIndex line")
        .parse()
        .unwrap();
    assert!(detailed.contains("Flags            42\n"), "{detailed}");
    assert!(
        detailed.ends_with("Value            from a file\n"),
        "{detailed}"
    );

    // CAS: a stale index fails with Consul's text, the current one writes.
    let (code, _, err) = kv(&["put", "-cas", "-modify-index=1", "app/c", "x"], b"");
    assert_eq!(
        (code, err.as_str()),
        (1, "Error! Did not write to app/c: CAS failed\n")
    );
    let (code, _, err) = kv(&["put", "-cas", "app/c", "x"], b"");
    assert_eq!(
        (code, err.as_str()),
        (
            1,
            "Error! Did not write to app/c: CAS performed with index=0 and key already exists.\n"
        )
    );
    ok(&[
        "put",
        "-cas",
        "-flags=42",
        &format!("-modify-index={index}"),
        "app/c",
        "x",
    ]);
    ok(&["put", "-cas", "-modify-index=0", "new/key", "created"]);

    // A miss, and the agent's own refusals passed through.
    let (code, out, err) = kv(&["get", "nope"], b"");
    assert_eq!(
        (code, out.as_str(), err.as_str()),
        (1, "", "Error! No key exists at: nope\n")
    );
    let (code, _, err) = kv(&["put", " bad", "v"], b"");
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error! Failed writing data: Unexpected response code: 400"),
        "{err}"
    );

    // Export, delete everything under app/, import it back under another prefix.
    let exported = ok(&["export", "app/"]);
    assert!(
        exported.starts_with(
            "[\n\t{\n\t\t\"key\": \"app/a\",\n\t\t\"flags\": 0,\n\t\t\"value\": \"b25l\"\n\t},"
        ),
        "{exported}"
    );
    assert_eq!(
        ok(&["delete", "-recurse", "app/"]),
        "Success! Deleted keys with prefix: app/\n"
    );
    assert_eq!(ok(&["get", "-recurse", "app/"]), "");
    let (code, out, err) = kv(&["import", "-prefix=copy", "-"], exported.as_bytes());
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "Imported: copy/app/a\nImported: copy/app/b\nImported: copy/app/c\nImported: copy/app/d\n"
    );
    assert_eq!(ok(&["get", "copy/app/c"]), "x\n");
    assert!(ok(&["get", "-detailed", "copy/app/c"]).contains("Flags            42\n"));

    // Delete with CAS.
    let (code, _, err) = kv(&["delete", "-cas", "-modify-index=1", "new/key"], b"");
    assert_eq!(
        (code, err.as_str()),
        (1, "Error! Did not delete key new/key: CAS failed\n")
    );
    assert_eq!(
        ok(&["delete", "new/key"]),
        "Success! Deleted key: new/key\n"
    );
    assert_eq!(kv(&["get", "new/key"], b"").0, 1);

    // Help and an agent that is not there.
    let (code, out, _) = run_cairn(&["kv", "put", "-h"]);
    assert_eq!(code, 0);
    assert!(
        out.starts_with("Usage: cairn kv put [options] KEY [DATA]"),
        "{out}"
    );
    let (code, _, err) = run_cairn(&["kv", "get", "-http-addr=127.0.0.240:1", "k"]);
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error querying Consul agent: Get \"http://127.0.0.240:1/v1/kv/k\": dial tcp 127.0.0.240:1: connect: connection refused\n"
    );
}
