//! `cairn lock`'s flag checks (Consul's texts and order) and the pieces that need no
//! agent; the lock against a real cluster is in tests/lock_cli.rs.

use super::*;
use std::sync::mpsc;

fn parse(list: &[&str]) -> Result<LockSettings, String> {
    let args: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    let specs = api_client::with_http_and_server_flags(&FLAGS);
    let parsed = api_client::parse_args(&args, &specs)
        .map_err(|e| e.to_string())?
        .expect("not help");
    settings(&parsed)
}

/// Run `cairn lock <args>` with no agent reachable (nothing listens on port 1).
fn capture(list: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    let env = ClientEnv {
        http_addr: Some("127.0.10.1:1".into()),
        token: None,
    };
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let (events, heard) = mpsc::channel();
    let code = run_with(
        &args,
        &env,
        &mut Output {
            out: &mut out,
            err: &mut err,
        },
        Arc::new(AtomicBool::new(false)),
        events,
        heard,
    );
    (
        code,
        String::from_utf8_lossy(&out).into_owned(),
        String::from_utf8_lossy(&err).into_owned(),
    )
}

#[test]
fn defaults_follow_consul_lock() {
    let s = parse(&["/svc/db", "echo", "hi there"]).expect("parses");
    assert_eq!(
        s,
        LockSettings {
            limit: 1,
            prefix: "svc/db".into(),
            child: vec!["echo".into(), "hi there".into()],
            name: "Consul lock for 'echo hi there' at 'svc/db'".into(),
            timeout: None,
            monitor_retries: 3,
            shell: true,
            pass_stdin: false,
            verbose: false,
            child_exit_code: false,
        }
    );
}

#[test]
fn every_flag_is_read() {
    let s = parse(&[
        "-n=3",
        "-timeout",
        "1m30s",
        "-name",
        "web",
        "-child-exit-code",
        "-verbose",
        "-monitor-retry=0",
        "-shell=false",
        "-pass-stdin",
        "svc",
        "run",
    ])
    .expect("parses");
    assert_eq!(s.limit, 3);
    assert_eq!(s.timeout, Some(Duration::from_secs(90)));
    assert_eq!(s.name, "web");
    assert!(s.child_exit_code && s.verbose && s.pass_stdin && !s.shell);
    assert_eq!(s.monitor_retries, 0);
    // `-try` is the deprecated spelling of `-timeout`; the later one wins; 0 is none.
    assert_eq!(
        parse(&["-timeout=5s", "-try=2s", "p", "c"])
            .expect("ok")
            .timeout,
        Some(Duration::from_secs(2))
    );
    assert_eq!(parse(&["-timeout=0", "p", "c"]).expect("ok").timeout, None);
    // Flags stop at the prefix: what follows belongs to the child.
    let s = parse(&["p", "ls", "-n", "2"]).expect("ok");
    assert_eq!((s.limit, s.child.join(" ")), (1, "ls -n 2".to_string()));
}

#[test]
fn bad_flags_are_refused_with_consuls_texts() {
    let err = |list: &[&str]| parse(list).expect_err("refused");
    assert_eq!(
        err(&["-n=0", "p", "c"]),
        "Lock holder limit must be positive"
    );
    assert_eq!(
        err(&["-n=-2", "p", "c"]),
        "Lock holder limit must be positive"
    );
    assert_eq!(
        err(&["-n=x", "p", "c"]),
        "invalid value \"x\" for flag -n: parse error"
    );
    assert_eq!(
        err(&["p"]),
        "Key prefix and child command must be specified"
    );
    assert_eq!(err(&[]), "Key prefix and child command must be specified");
    assert_eq!(err(&["-timeout=-1s", "p", "c"]), "Timeout must be positive");
    assert_eq!(
        err(&["-timeout=soon", "p", "c"]),
        "invalid value \"soon\" for flag -timeout: parse error"
    );
    assert_eq!(
        err(&["-monitor-retry=-1", "p", "c"]),
        "Number for 'monitor-retry' must be >= 0"
    );
    assert_eq!(
        err(&["-bogus", "p", "c"]),
        "flag provided but not defined: -bogus"
    );
}

#[test]
fn the_command_exits_1_before_and_at_the_agent() {
    let (code, _, err) = capture(&["p"]);
    assert_eq!(code, 1);
    assert_eq!(err, "Key prefix and child command must be specified\n");
    let (code, out, _) = capture(&["-h"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("Usage: cairn lock [options] prefix child..."));
    assert!(out.contains("  -child-exit-code\n"));
    assert!(out.contains("  -http-addr=<address>\n"));
    let (code, _, err) = capture(&["svc", "true"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("Error querying Consul agent: Get \"http://127.0.10.1:1/v1/agent/self\""),
        "{err}"
    );
    let (code, out, _) = super::super::tests::capture(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("    lock        Execute a command holding a lock\n"));
}

#[test]
fn pacing_follows_the_timeout() {
    let start = Instant::now();
    let mut forever = Pacing::new(start, None);
    for _ in 0..3 {
        assert_eq!(
            forever.next_wait(start + Duration::from_secs(99)),
            Some(ACQUIRE_WAIT)
        );
    }
    let mut timed = Pacing::new(start, Some(Duration::from_secs(10)));
    // The first read may use the whole timeout, later ones what is left of it.
    assert_eq!(
        timed.next_wait(start + Duration::from_secs(20)),
        Some(Duration::from_secs(10))
    );
    assert_eq!(
        timed.next_wait(start + Duration::from_secs(4)),
        Some(Duration::from_secs(6))
    );
    assert_eq!(timed.next_wait(start + Duration::from_secs(11)), None);
    let stop = AtomicBool::new(true);
    assert!(!forever.sleep(Duration::from_secs(5), &stop));
}

#[test]
fn keys_join_like_go_path_join() {
    assert_eq!(join_key("svc/db", ".lock"), "svc/db/.lock");
    assert_eq!(join_key("svc/db/", ".lock"), "svc/db/.lock");
    assert_eq!(join_key("", ".lock"), ".lock");
    assert_eq!(join_key("svc", "5c1e-sess"), "svc/5c1e-sess");
}
