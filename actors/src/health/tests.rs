//! The probe runner against real targets on loopback (127.0.5.1-4): HTTP and HTTPS servers, TCP
//! and UDP listeners, and scripts. Each test waits for the reports it needs, with a
//! deadline.

use super::*;
use actix::prelude::*;
use protocol::health::{CheckKind, CheckSpec, MAX_OUTPUT_BYTES};
use protocol::store::CheckStatus;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::time::Instant;

const HTTP_IP: &str = "127.0.5.1";
const TCP_IP: &str = "127.0.5.2";
const UDP_IP: &str = "127.0.5.3";
const HTTPS_IP: &str = "127.0.5.4";

// ---- the receiving end -------------------------------------------------------------

#[derive(Clone, Default)]
struct Reports(Arc<Mutex<Vec<ProbeReport>>>);

impl Reports {
    fn all(&self) -> Vec<ProbeReport> {
        self.0.lock().unwrap().clone()
    }

    fn of(&self, check_id: &str) -> Vec<ProbeReport> {
        self.all()
            .into_iter()
            .filter(|r| r.check_id == check_id)
            .collect()
    }

    /// Waits (up to `within`) until `check_id` has at least `n` reports; returns them.
    async fn wait_for(&self, check_id: &str, n: usize, within: Duration) -> Vec<ProbeReport> {
        let deadline = Instant::now() + within;
        loop {
            let reports = self.of(check_id);
            if reports.len() >= n {
                return reports;
            }
            assert!(
                Instant::now() < deadline,
                "{check_id}: {} of {n} reports after {within:?}: {reports:?}",
                reports.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct Collector(Reports);

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<ProbeReport> for Collector {
    type Result = ();
    fn handle(&mut self, msg: ProbeReport, _ctx: &mut Self::Context) {
        self.0 .0.lock().unwrap().push(msg);
    }
}

fn start_runner(max_concurrent: usize) -> (Addr<ProbeRunner>, Reports) {
    let reports = Reports::default();
    let collector = Collector(reports.clone()).start();
    let runner = ProbeRunner::new(
        collector.recipient(),
        ProbeOptions {
            seed: 42,
            max_concurrent,
        },
    )
    .start();
    (runner, reports)
}

fn spec(id: &str, kind: CheckKind, timeout_ms: u64) -> CheckSpec {
    CheckSpec {
        id: id.to_string(),
        name: id.to_string(),
        notes: String::new(),
        service_id: String::new(),
        kind,
        interval_ms: 1_000,
        timeout_ms,
        success_before_passing: 0,
        failures_before_warning: 0,
        failures_before_critical: 0,
        deregister_critical_service_after_ms: None,
        initial_status: CheckStatus::Critical,
        initial_output: String::new(),
    }
}

fn http(url: String) -> CheckKind {
    CheckKind::Http {
        url,
        method: String::new(),
        headers: BTreeMap::new(),
        body: String::new(),
        tls_skip_verify: false,
        tls_server_name: String::new(),
    }
}

fn script(command: &str) -> CheckKind {
    CheckKind::Script {
        args: vec!["sh".into(), "-c".into(), command.into()],
    }
}

async fn start(runner: &Addr<ProbeRunner>, spec: CheckSpec, generation: u64) {
    runner
        .send(StartProbe { spec, generation })
        .await
        .expect("runner alive");
}

// ---- targets -------------------------------------------------------------------------

/// A small HTTP/1.1 target: `/ok` 200, `/busy` 429, `/fail` 500, `/slow` answers after
/// 5 s, `/big` 200 with 64 KiB, `/echo` 200 with the request's method, X-Test header and
/// body. Every answer closes the connection.
async fn http_target() -> SocketAddr {
    let listener = TcpListener::bind((HTTP_IP, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    actix::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            actix::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 4096];
                let head_end = loop {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    request.extend_from_slice(&buf[..n]);
                    if let Some(i) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break i + 4;
                    }
                };
                let head = String::from_utf8_lossy(&request[..head_end]).to_string();
                let content_length = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse::<usize>().ok())?
                    })
                    .unwrap_or(0);
                while request.len() < head_end + content_length {
                    let Ok(n) = stream.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        break;
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                let mut first = head.split_whitespace();
                let method = first.next().unwrap_or("").to_string();
                let path = first.next().unwrap_or("").to_string();
                let (status, body) = match path.as_str() {
                    "/ok" => ("200 OK", "healthy".to_string()),
                    "/busy" => ("429 Too Many Requests", "slow down".to_string()),
                    "/fail" => ("500 Internal Server Error", "broken".to_string()),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        ("200 OK", "late".to_string())
                    }
                    "/big" => ("200 OK", "b".repeat(64 * 1024)),
                    "/echo" => {
                        let x_test = head
                            .lines()
                            .find_map(|l| l.strip_prefix("x-test: "))
                            .unwrap_or("-");
                        let agent = head
                            .lines()
                            .find_map(|l| l.strip_prefix("user-agent: "))
                            .unwrap_or("-");
                        let body = String::from_utf8_lossy(&request[head_end..]);
                        ("200 OK", format!("{method} {x_test} {agent} {body}"))
                    }
                    _ => ("404 Not Found", String::new()),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    addr
}

/// A port on `ip` with nothing listening (bound, then released).
async fn closed_tcp_port(ip: &str) -> SocketAddr {
    let listener = TcpListener::bind((ip, 0)).await.unwrap();
    listener.local_addr().unwrap()
}

// ---- tests ---------------------------------------------------------------------------

#[actix::test]
async fn http_checks_follow_the_status_code_and_quote_the_body() {
    let target = http_target().await;
    let (runner, reports) = start_runner(16);
    for path in ["ok", "busy", "fail", "big"] {
        let kind = http(format!("http://{target}/{path}"));
        start(&runner, spec(path, kind, 2_000), 1).await;
    }
    start(
        &runner,
        spec("slow", http(format!("http://{target}/slow")), 300),
        1,
    )
    .await;
    let refused = closed_tcp_port(HTTP_IP).await;
    start(
        &runner,
        spec("refused", http(format!("http://{refused}/")), 1_000),
        1,
    )
    .await;

    let wait = Duration::from_secs(5);
    let ok = &reports.wait_for("ok", 1, wait).await[0];
    assert_eq!(ok.result.status, CheckStatus::Passing);
    assert_eq!(
        ok.result.output,
        format!("HTTP GET http://{target}/ok: 200 OK Output: healthy")
    );
    assert_eq!(ok.generation, 1);

    let busy = &reports.wait_for("busy", 1, wait).await[0];
    assert_eq!(busy.result.status, CheckStatus::Warning);
    assert_eq!(
        busy.result.output,
        format!("HTTP GET http://{target}/busy: 429 Too Many Requests Output: slow down")
    );

    let fail = &reports.wait_for("fail", 1, wait).await[0];
    assert_eq!(fail.result.status, CheckStatus::Critical);
    assert!(fail
        .result
        .output
        .ends_with("500 Internal Server Error Output: broken"));

    let big = &reports.wait_for("big", 1, wait).await[0];
    assert_eq!(big.result.status, CheckStatus::Passing);
    assert_eq!(big.result.output.len(), MAX_OUTPUT_BYTES);

    let slow = &reports.wait_for("slow", 1, wait).await[0];
    assert_eq!(slow.result.status, CheckStatus::Critical);
    assert!(
        slow.result.output.contains("Client.Timeout 300ms exceeded"),
        "{}",
        slow.result.output
    );

    let refused_report = &reports.wait_for("refused", 1, wait).await[0];
    assert_eq!(refused_report.result.status, CheckStatus::Critical);
    assert!(
        refused_report
            .result
            .output
            .starts_with(&format!("Get \"http://{refused}/\": ")),
        "{}",
        refused_report.result.output
    );

    // Checks keep running on their interval.
    reports.wait_for("ok", 3, Duration::from_secs(5)).await;
}

#[actix::test]
async fn http_checks_send_the_method_headers_and_body() {
    let target = http_target().await;
    let (runner, reports) = start_runner(16);
    let kind = CheckKind::Http {
        url: format!("http://{target}/echo"),
        method: "POST".into(),
        headers: BTreeMap::from([("X-Test".to_string(), vec!["yes".to_string()])]),
        body: "ping".into(),
        tls_skip_verify: false,
        tls_server_name: String::new(),
    };
    start(&runner, spec("echo", kind, 2_000), 1).await;
    let echo = &reports.wait_for("echo", 1, Duration::from_secs(5)).await[0];
    assert_eq!(
        echo.result.output,
        format!("HTTP POST http://{target}/echo: 200 OK Output: POST yes Consul Health Check ping")
    );
}

#[actix::test]
async fn tcp_checks_pass_on_connect_and_fail_on_a_closed_port() {
    let listener = TcpListener::bind((TCP_IP, 0)).await.unwrap();
    let open = listener.local_addr().unwrap();
    actix::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let closed = closed_tcp_port(TCP_IP).await;
    let (runner, reports) = start_runner(16);
    let tcp = |a: SocketAddr| CheckKind::Tcp {
        address: a.to_string(),
    };
    start(&runner, spec("open", tcp(open), 1_000), 1).await;
    start(&runner, spec("closed", tcp(closed), 1_000), 1).await;

    let open_report = &reports.wait_for("open", 1, Duration::from_secs(5)).await[0];
    assert_eq!(open_report.result.status, CheckStatus::Passing);
    assert_eq!(
        open_report.result.output,
        format!("TCP connect {open}: Success")
    );
    let closed_report = &reports.wait_for("closed", 1, Duration::from_secs(5)).await[0];
    assert_eq!(closed_report.result.status, CheckStatus::Critical);
    assert!(
        closed_report
            .result
            .output
            .starts_with(&format!("dial tcp {closed}: ")),
        "{}",
        closed_report.result.output
    );
}

#[actix::test]
async fn udp_checks_pass_on_a_reply_or_silence_and_fail_on_refusal() {
    let responder = UdpSocket::bind((UDP_IP, 0)).await.unwrap();
    let answering = responder.local_addr().unwrap();
    actix::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((_, from)) = responder.recv_from(&mut buf).await {
            let _ = responder.send_to(b"pong", from).await;
        }
    });
    // Bound but never reading: the datagram is queued, no reply, no ICMP error.
    let silent_socket = UdpSocket::bind((UDP_IP, 0)).await.unwrap();
    let silent = silent_socket.local_addr().unwrap();
    let closed = {
        let socket = UdpSocket::bind((UDP_IP, 0)).await.unwrap();
        socket.local_addr().unwrap()
    };
    let (runner, reports) = start_runner(16);
    let udp = |a: SocketAddr| CheckKind::Udp {
        address: a.to_string(),
    };
    start(&runner, spec("answering", udp(answering), 500), 1).await;
    start(&runner, spec("silent", udp(silent), 300), 1).await;
    start(&runner, spec("closed", udp(closed), 500), 1).await;

    let wait = Duration::from_secs(5);
    let answered = &reports.wait_for("answering", 1, wait).await[0];
    assert_eq!(answered.result.status, CheckStatus::Passing);
    assert_eq!(
        answered.result.output,
        format!("UDP connect {answering}: Success")
    );
    let quiet = &reports.wait_for("silent", 1, wait).await[0];
    assert_eq!(quiet.result.status, CheckStatus::Passing);
    let refused = &reports.wait_for("closed", 1, wait).await[0];
    assert_eq!(refused.result.status, CheckStatus::Critical, "{refused:?}");
    assert!(refused
        .result
        .output
        .starts_with(&format!("read udp {closed}: ")));
    drop(silent_socket);
}

#[actix::test]
async fn script_checks_map_exit_codes_and_capture_output() {
    let (runner, reports) = start_runner(16);
    start(&runner, spec("zero", script("echo fine; exit 0"), 2_000), 1).await;
    start(
        &runner,
        spec("one", script("echo meh >&2; exit 1"), 2_000),
        1,
    )
    .await;
    start(&runner, spec("two", script("echo bad; exit 2"), 2_000), 1).await;
    let missing = CheckKind::Script {
        args: vec!["/nonexistent/check".into()],
    };
    start(&runner, spec("missing", missing, 2_000), 1).await;

    let wait = Duration::from_secs(5);
    let zero = &reports.wait_for("zero", 1, wait).await[0];
    assert_eq!(
        (zero.result.status, zero.result.output.as_str()),
        (CheckStatus::Passing, "fine\n")
    );
    let one = &reports.wait_for("one", 1, wait).await[0];
    assert_eq!(
        (one.result.status, one.result.output.as_str()),
        (CheckStatus::Warning, "meh\n")
    );
    let two = &reports.wait_for("two", 1, wait).await[0];
    assert_eq!(
        (two.result.status, two.result.output.as_str()),
        (CheckStatus::Critical, "bad\n")
    );
    let missing = &reports.wait_for("missing", 1, wait).await[0];
    assert_eq!(missing.result.status, CheckStatus::Critical);
    assert!(missing.result.output.contains("/nonexistent/check"));
}

/// Processes in group `pgid` that are still running (zombies waiting for a reaper that
/// is not us do not count: they are dead).
fn live_members_of_group(pgid: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let Some((_, after_name)) = stat.rsplit_once(") ") else {
            continue;
        };
        let fields: Vec<&str> = after_name.split_whitespace().collect();
        if fields.get(2).and_then(|g| g.parse::<i32>().ok()) == Some(pgid) && fields[0] != "Z" {
            members.push(pid);
        }
    }
    members
}

async fn wait_group_gone(pgid: i32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !live_members_of_group(pgid).is_empty() {
        assert!(
            Instant::now() < deadline,
            "group {pgid} still has {:?}",
            live_members_of_group(pgid)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[actix::test]
async fn a_script_past_its_timeout_is_killed_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let command = format!(
        "echo $$ > {}; echo started; sleep 60 & sleep 60",
        pid_file.display()
    );
    let (runner, reports) = start_runner(16);
    start(&runner, spec("hang", script(&command), 500), 1).await;
    let hang = &reports.wait_for("hang", 1, Duration::from_secs(5)).await[0];
    assert_eq!(hang.result.status, CheckStatus::Critical);
    assert_eq!(
        hang.result.output,
        "Timed out (500ms) running check\n\nstarted\n"
    );
    let pgid: i32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    wait_group_gone(pgid).await;
}

#[actix::test]
async fn stopping_a_check_kills_its_running_script_and_silences_it() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    let command = format!("echo $$ > {}; sleep 60 & sleep 60", pid_file.display());
    let (runner, reports) = start_runner(16);
    start(&runner, spec("long", script(&command), 30_000), 1).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let pgid: i32 = loop {
        if let Some(pgid) = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|t| t.trim().parse().ok())
        {
            break pgid;
        }
        assert!(Instant::now() < deadline, "the script never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    runner
        .send(StopProbe {
            check_id: "long".into(),
        })
        .await
        .unwrap();
    wait_group_gone(pgid).await;

    // Another check's two reports span more than an interval: the stopped one stayed quiet.
    start(&runner, spec("marker", script("exit 0"), 1_000), 1).await;
    reports.wait_for("marker", 2, Duration::from_secs(5)).await;
    assert!(reports.of("long").is_empty(), "{:?}", reports.of("long"));
}

#[actix::test]
async fn a_replaced_check_reports_only_its_new_generation() {
    let target = http_target().await;
    let (runner, reports) = start_runner(16);
    start(
        &runner,
        spec("web", http(format!("http://{target}/ok")), 1_000),
        1,
    )
    .await;
    reports.wait_for("web", 1, Duration::from_secs(5)).await;
    start(
        &runner,
        spec("web", http(format!("http://{target}/fail")), 1_000),
        2,
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let web = reports.of("web");
        let first_new = web.iter().position(|r| r.generation == 2);
        if let Some(first_new) = first_new {
            if web.len() >= first_new + 2 {
                let newer = &web[first_new..];
                assert!(newer.iter().all(|r| r.generation == 2), "{web:?}");
                assert!(newer
                    .iter()
                    .all(|r| r.result.status == CheckStatus::Critical));
                break;
            }
        }
        assert!(Instant::now() < deadline, "{web:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A TTL spec under a probed id stops it: not a probed kind.
    let ttl = spec("web", CheckKind::Ttl { ttl_ms: 10_000 }, 0);
    start(&runner, ttl, 3).await;
    start(&runner, spec("marker", script("exit 0"), 1_000), 1).await;
    reports.wait_for("marker", 2, Duration::from_secs(5)).await;
    assert!(reports.of("web").iter().all(|r| r.generation != 3));
}

#[actix::test]
async fn a_runner_on_its_own_thread_reports_as_well() {
    let reports = Reports::default();
    let collector = Collector(reports.clone()).start();
    let options = ProbeOptions {
        seed: 1,
        max_concurrent: 4,
    };
    let runner = ProbeRunner::start_on_own_thread(collector.recipient(), options);
    start(&runner, spec("own", script("exit 0"), 1_000), 1).await;
    let own = &reports.wait_for("own", 1, Duration::from_secs(5)).await[0];
    assert_eq!(own.result.status, CheckStatus::Passing);
}

#[actix::test]
async fn probes_beyond_the_concurrency_limit_wait_for_a_slot() {
    let dir = tempfile::tempdir().unwrap();
    let lock = dir.path().join("lock");
    // Fails (exit 2) if another probe holds the lock: i.e. if two ever run at once.
    let command = format!(
        "mkdir {lock} || exit 2; sleep 0.2; rmdir {lock}",
        lock = lock.display()
    );
    let (runner, reports) = start_runner(1);
    for id in ["a", "b", "c", "d"] {
        start(&runner, spec(id, script(&command), 5_000), 1).await;
    }
    for id in ["a", "b", "c", "d"] {
        let got = reports.wait_for(id, 2, Duration::from_secs(8)).await;
        assert!(
            got.iter().all(|r| r.result.status == CheckStatus::Passing),
            "{id}: {got:?}"
        );
    }
}

/// An HTTPS target with a self-signed certificate for `cairn.test` (test-only key in
/// testdata/): answers 200 with the server name the client sent (SNI), or "-".
async fn https_target() -> SocketAddr {
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use tokio_rustls::rustls::{crypto::ring, ServerConfig};
    let cert = CertificateDer::from(include_bytes!("testdata/cert.der").to_vec());
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        include_bytes!("testdata/key.der").to_vec(),
    ));
    let config = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind((HTTPS_IP, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    actix::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            actix::spawn(async move {
                let Ok(mut tls) = acceptor.accept(stream).await else {
                    return;
                };
                let sni = tls.get_ref().1.server_name().unwrap_or("-").to_string();
                let mut buf = [0u8; 4096];
                let mut request = Vec::new();
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match tls.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{sni}",
                    sni.len()
                );
                let _ = tls.write_all(response.as_bytes()).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    addr
}

#[actix::test]
async fn https_checks_verify_or_skip_and_send_the_tls_server_name() {
    let target = https_target().await;
    let (runner, reports) = start_runner(16);
    let https = |skip: bool, server_name: &str| CheckKind::Http {
        url: format!("https://{target}/"),
        method: String::new(),
        headers: BTreeMap::new(),
        body: String::new(),
        tls_skip_verify: skip,
        tls_server_name: server_name.to_string(),
    };
    start(&runner, spec("skip", https(true, ""), 2_000), 1).await;
    start(&runner, spec("verify", https(false, ""), 2_000), 1).await;
    start(&runner, spec("named", https(true, "cairn.test"), 2_000), 1).await;
    start(
        &runner,
        spec("named-verify", https(false, "cairn.test"), 2_000),
        1,
    )
    .await;

    let wait = Duration::from_secs(5);
    let skip = &reports.wait_for("skip", 1, wait).await[0];
    assert_eq!(
        (skip.result.status, skip.result.output.as_str()),
        (
            CheckStatus::Passing,
            format!("HTTP GET https://{target}/: 200 OK Output: -").as_str()
        )
    );
    let verify = &reports.wait_for("verify", 1, wait).await[0];
    assert_eq!(verify.result.status, CheckStatus::Critical);
    assert!(
        verify.result.output.to_lowercase().contains("certificate"),
        "{}",
        verify.result.output
    );
    // The name goes out in SNI, the connection still goes to the URL's address.
    let named = &reports.wait_for("named", 1, wait).await[0];
    assert_eq!(
        (named.result.status, named.result.output.as_str()),
        (
            CheckStatus::Passing,
            format!("HTTP GET https://{target}/: 200 OK Output: cairn.test").as_str()
        )
    );
    // A self-signed certificate is still refused when verifying, under any name.
    let named_verify = &reports.wait_for("named-verify", 1, wait).await[0];
    assert_eq!(named_verify.result.status, CheckStatus::Critical);
}
