//! The kv commands against a canned agent: request lines, output texts, exit codes.

use super::super::api_client::ClientEnv;
use super::super::fake_agent::{serve_with_headers, FakeAgent};
use super::super::Output;
use super::impexp::{export_json, go_path_join, import_entries, Entry};
use super::*;

/// The canned agent for these tests (this module's own loopback address).
fn agent(answers: Vec<(u16, &str)>) -> FakeAgent {
    serve_with_headers(
        "127.0.0.249",
        answers
            .into_iter()
            .map(|(s, b)| (s, b.as_bytes().to_vec(), ""))
            .collect(),
    )
}

fn kv(args: &[&str], env: &ClientEnv, stdin: &[u8]) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let code = run_with(
        &args,
        env,
        &mut &stdin[..],
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

const ENTRY: &str = r#"[{"LockIndex":0,"Key":"app/a","Flags":42,"Value":"aGVsbG8=","CreateIndex":5,"ModifyIndex":7}]"#;

#[test]
fn get_prints_the_raw_value_or_consuls_miss() {
    let a = agent(vec![(200, ENTRY), (404, "")]);
    let (code, out, err) = kv(&["get", "/app/a"], &a.env(), b"");
    assert_eq!((code, out.as_str(), err.as_str()), (0, "hello\n", ""));
    let (code, out, err) = kv(&["get", "-stale", "nope"], &a.env(), b"");
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err, "Error! No key exists at: nope\n");
    assert_eq!(
        a.requests(),
        [
            "GET /v1/kv/app/a HTTP/1.1",
            "GET /v1/kv/nope?stale= HTTP/1.1"
        ]
    );
}

#[test]
fn get_detailed_is_consuls_table() {
    let a = agent(vec![(200, ENTRY), (200, ENTRY)]);
    let (code, out, _) = kv(&["get", "-detailed", "app/a"], &a.env(), b"");
    assert_eq!(code, 0);
    assert_eq!(
        out,
        "CreateIndex      5\nFlags            42\nKey              app/a\nLockIndex        0\n\
         ModifyIndex      7\nSession          -\nValue            hello\n"
    );
    let (_, out, _) = kv(&["get", "-detailed", "-base64", "app/a"], &a.env(), b"");
    assert!(out.ends_with("Value            aGVsbG8=\n"), "{out}");
}

#[test]
fn get_recurse_and_keys() {
    let two = r#"[{"Key":"a","Flags":0,"Value":"MQ==","CreateIndex":1,"ModifyIndex":1,"LockIndex":0},
                  {"Key":"b","Flags":0,"Value":null,"CreateIndex":2,"ModifyIndex":2,"LockIndex":0}]"#;
    let a = agent(vec![
        (200, two),
        (200, two),
        (200, r#"["a","dir/"]"#),
        (404, ""),
    ]);
    let (code, out, _) = kv(&["get", "-recurse"], &a.env(), b"");
    assert_eq!((code, out.as_str()), (0, "a:1\nb:\n"));
    let (_, out, _) = kv(&["get", "-recurse", "-detailed", "-base64"], &a.env(), b"");
    assert!(
        out.contains("Value            MQ==\n\nCreateIndex      2\n"),
        "{out}"
    );
    let (code, out, _) = kv(&["get", "-keys", "-separator=/", "x"], &a.env(), b"");
    assert_eq!((code, out.as_str()), (0, "a\ndir/\n"));
    // Nothing under the prefix: nothing printed, success (the Go client reads 404 so).
    let (code, out, err) = kv(&["get", "-recurse", "none/"], &a.env(), b"");
    assert_eq!((code, out.as_str(), err.as_str()), (0, "", ""));
    assert_eq!(
        a.requests(),
        [
            "GET /v1/kv/?recurse= HTTP/1.1",
            "GET /v1/kv/?recurse= HTTP/1.1",
            "GET /v1/kv/x?keys=&separator=%2F HTTP/1.1",
            "GET /v1/kv/none/?recurse= HTTP/1.1",
        ]
    );
}

#[test]
fn get_argument_errors() {
    let env = ClientEnv::default();
    assert_eq!(
        kv(&["get"], &env, b""),
        (1, String::new(), "Error! Missing KEY argument\n".into())
    );
    assert_eq!(
        kv(&["get", "a", "b"], &env, b"").2,
        "Too many arguments (expected 1, got 2)\n"
    );
    let (code, out, _) = kv(&["get", "-h"], &env, b"");
    assert_eq!(code, 0);
    assert!(
        out.starts_with("Usage: cairn kv get [options] [KEY_OR_PREFIX]"),
        "{out}"
    );
    assert!(
        out.contains("  -stale\n") && out.contains("  -datacenter=<value>\n"),
        "{out}"
    );
    let (code, _, err) = kv(&["get", "-bogus"], &env, b"");
    assert_eq!(code, 1);
    assert!(err.contains("Run 'cairn kv get -h'"), "{err}");
}

#[test]
fn put_from_arg_stdin_and_file_with_flags() {
    let a = agent(vec![
        (200, "true"),
        (200, "true"),
        (200, "true"),
        (200, "true"),
    ]);
    let (code, out, _) = kv(&["put", "-flags=9", "k", "v1"], &a.env(), b"");
    assert_eq!((code, out.as_str()), (0, "Success! Data written to: k\n"));
    kv(&["put", "k", "-"], &a.env(), b"from stdin");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("value.bin");
    std::fs::write(&file, [0u8, 255, 10]).unwrap();
    kv(
        &["put", "k", &format!("@{}", file.display())],
        &a.env(),
        b"",
    );
    kv(&["put", "-base64", "k", "aGk="], &a.env(), b"");
    assert_eq!(
        a.requests(),
        [
            "PUT /v1/kv/k?flags=9 HTTP/1.1",
            "PUT /v1/kv/k HTTP/1.1",
            "PUT /v1/kv/k HTTP/1.1",
            "PUT /v1/kv/k HTTP/1.1",
        ]
    );
    assert_eq!(
        a.bodies(),
        [
            b"v1".to_vec(),
            b"from stdin".to_vec(),
            vec![0, 255, 10],
            b"hi".to_vec()
        ]
    );
}

#[test]
fn put_cas_texts() {
    let a = agent(vec![
        (200, "true"),
        (200, "false"),
        (200, "false"),
        (500, "boom"),
    ]);
    let (code, out, _) = kv(&["put", "-cas", "-modify-index=7", "k", "v"], &a.env(), b"");
    assert_eq!((code, out.as_str()), (0, "Success! Data written to: k\n"));
    let (code, _, err) = kv(&["put", "-cas", "-modify-index=7", "k", "v"], &a.env(), b"");
    assert_eq!(
        (code, err.as_str()),
        (1, "Error! Did not write to k: CAS failed\n")
    );
    let (_, _, err) = kv(&["put", "-cas", "k", "v"], &a.env(), b"");
    assert_eq!(
        err,
        "Error! Did not write to k: CAS performed with index=0 and key already exists.\n"
    );
    let (code, _, err) = kv(&["put", "k", "v"], &a.env(), b"");
    assert_eq!(code, 1);
    assert_eq!(
        err,
        "Error! Failed writing data: Unexpected response code: 500 (boom)\n"
    );
    assert_eq!(
        a.requests()[..3],
        [
            "PUT /v1/kv/k?cas=7 HTTP/1.1",
            "PUT /v1/kv/k?cas=7 HTTP/1.1",
            "PUT /v1/kv/k?cas=0 HTTP/1.1",
        ]
    );
}

#[test]
fn put_argument_errors() {
    let env = ClientEnv::default();
    assert_eq!(kv(&["put"], &env, b"").2, "Error! Missing KEY argument\n");
    assert_eq!(
        kv(&["put", "a", "b", "c"], &env, b"").2,
        "Error! Too many arguments (expected 1 or 2, got 3)\n"
    );
    assert_eq!(
        kv(&["put", "a", "@/nonexistent/cairn-test"], &env, b"").2,
        "Error! Failed to read file: open /nonexistent/cairn-test: no such file or directory\n"
    );
    assert_eq!(
        kv(&["put", "-acquire", "a"], &env, b"").2,
        "Error! Missing -session (required with -acquire and -release)\n"
    );
    assert_eq!(
        kv(&["put", "-flags=x", "a"], &env, b"").2,
        "invalid value \"x\" for flag -flags: parse error\n"
    );
    let (code, _, err) = kv(&["put", "-base64", "a", "!!"], &env, b"");
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error! Cannot base 64 decode data: "),
        "{err}"
    );
}

#[test]
fn delete_variants_and_refusals() {
    let a = agent(vec![
        (200, "true"),
        (200, "true"),
        (200, "false"),
        (200, "true"),
    ]);
    let (code, out, _) = kv(&["delete", "/k"], &a.env(), b"");
    assert_eq!((code, out.as_str()), (0, "Success! Deleted key: k\n"));
    let (_, out, _) = kv(&["delete", "-recurse", "dir/"], &a.env(), b"");
    assert_eq!(out, "Success! Deleted keys with prefix: dir/\n");
    let (code, _, err) = kv(&["delete", "-cas", "-modify-index=3", "k"], &a.env(), b"");
    assert_eq!(
        (code, err.as_str()),
        (1, "Error! Did not delete key k: CAS failed\n")
    );
    let (code, _, _) = kv(&["delete", "-recurse"], &a.env(), b"");
    assert_eq!(code, 0, "an empty prefix with -recurse deletes everything");
    assert_eq!(
        a.requests(),
        [
            "DELETE /v1/kv/k HTTP/1.1",
            "DELETE /v1/kv/dir/?recurse= HTTP/1.1",
            "DELETE /v1/kv/k?cas=3 HTTP/1.1",
            "DELETE /v1/kv/?recurse= HTTP/1.1",
        ]
    );
    let env = ClientEnv::default();
    for (args, text) in [
        (&["delete"][..], "Error! Missing KEY argument"),
        (
            &["delete", "-cas", "k"],
            "Cannot delete a key that does not exist. Provide a -modify-index greater than than 0.",
        ),
        (
            &["delete", "-modify-index=2", "k"],
            "Cannot specify -modify-index without -cas!",
        ),
        (
            &["delete", "-cas", "-modify-index=2", "-recurse", "k"],
            "Cannot specify both -cas and -recurse!",
        ),
    ] {
        assert_eq!(kv(args, &env, b""), (1, String::new(), format!("{text}\n")));
    }
}

#[test]
fn export_is_consuls_json_and_import_reads_it_back() {
    let two = r#"[{"Key":"app/a<b","Flags":3,"Value":"MQ==","CreateIndex":1,"ModifyIndex":1,"LockIndex":0},
                  {"Key":"app/dir/","Flags":0,"Value":null,"CreateIndex":2,"ModifyIndex":2,"LockIndex":0}]"#;
    let a = agent(vec![(200, two), (404, "")]);
    let (code, out, _) = kv(&["export", "app"], &a.env(), b"");
    assert_eq!(code, 0);
    let expected = "[\n\t{\n\t\t\"key\": \"app/a\\u003cb\",\n\t\t\"flags\": 3,\n\t\t\"value\": \"MQ==\"\n\t},\n\t{\n\t\t\"key\": \"app/dir/\",\n\t\t\"flags\": 0,\n\t\t\"value\": \"\"\n\t}\n]\n";
    assert_eq!(out, expected);
    let (code, out, _) = kv(&["export", "nothing"], &a.env(), b"");
    assert_eq!((code, out.as_str()), (0, "[]\n"));

    let b = agent(vec![(200, "true"), (200, "true")]);
    let (code, out, err) = kv(&["import", "-prefix=copy", "-"], &b.env(), out_of(expected));
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(out, "Imported: copy/app/a<b\nImported: copy/app/dir/\n");
    assert_eq!(
        b.requests(),
        [
            "PUT /v1/kv/copy/app/a%3Cb?flags=3 HTTP/1.1",
            "PUT /v1/kv/copy/app/dir/ HTTP/1.1",
        ]
    );
    assert_eq!(b.bodies(), [b"1".to_vec(), Vec::new()]);
}

fn out_of(text: &str) -> &[u8] {
    text.as_bytes()
}

#[test]
fn import_parsing_is_gos() {
    assert_eq!(
        import_entries(br#"[{"Key":"a","FLAGS":1,"value":"eA=="}, null]"#).unwrap(),
        [Entry {
            key: "a".into(),
            flags: 1,
            value: "eA==".into()
        }]
    );
    assert!(import_entries(b"{").is_err());
    assert_eq!(
        import_entries(br#"[{"key":1}]"#).unwrap_err(),
        "json: cannot unmarshal number into Go struct field Entry.key of type string"
    );
    assert_eq!(go_path_join("", "a/b"), "a/b");
    assert_eq!(go_path_join("p/", "/a//b/"), "p/a/b");
    assert_eq!(go_path_join("p", "../x"), "x");
    assert_eq!(go_path_join("", ""), "");
    assert_eq!(export_json(&[]).unwrap(), "[]");
    let env = ClientEnv::default();
    assert_eq!(
        kv(&["import"], &env, b"").2,
        "Error! Missing DATA argument\n"
    );
    assert_eq!(
        kv(&["import", ""], &env, b"").2,
        "Error! Empty DATA argument\n"
    );
}

#[test]
fn dispatch_and_usage() {
    let env = ClientEnv::default();
    let (code, _, err) = kv(&[], &env, b"");
    assert_eq!(code, 1);
    assert!(
        err.contains("    put       Sets or updates data in the KV store"),
        "{err}"
    );
    let (code, out, _) = kv(&["-h"], &env, b"");
    assert_eq!(code, 0);
    assert!(out.starts_with("Usage: cairn kv <subcommand>"));
}
