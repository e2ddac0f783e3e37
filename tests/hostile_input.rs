//! A bounded barrage of hostile input against the real binary: broken HTTP written raw
//! over TCP (invalid methods, chunked garbage, truncated bodies, oversized URLs and
//! headers, non-UTF-8 bytes), randomly mutated requests, and garbage DNS over UDP and
//! TCP. Afterwards the agent must be alive, answer correctly, and hold exactly the state
//! it held before (catalog and KV).

mod common;

use common::dns::{rcode, tcp_query, udp_query};
use common::{http_client, Agent};
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

const IP: &str = "127.0.0.40";
/// How long actix gives a client to send a whole request head (its default
/// `client_request_timeout`, which the agent keeps): the longest the server should ever
/// need before answering or dropping a garbage exchange.
const HTTP_HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest a single hostile exchange may take before we call it a hang: the server's own
/// bound three times over plus slack, so a loaded machine can't trip it, yet well under
/// the 60 s body timeout, so a server that waited for that instead of noticing the
/// client's end would still fail.
const EXCHANGE_LIMIT: Duration = Duration::from_secs(HTTP_HEAD_TIMEOUT.as_secs() * 3 + 15);
const _: () = assert!(EXCHANGE_LIMIT.as_secs() < cairn::http::body::BODY_READ_TIMEOUT_SECS);

/// The agent's DNS TCP idle timeout (it runs DNS with `DnsConfig::new`'s defaults).
fn dns_tcp_idle_timeout() -> Duration {
    cairn::dns::DnsConfig::new("consul", "dc1", vec![]).tcp_idle_timeout
}

/// Write `bytes` raw, half-close, and read whatever comes back until the server closes
/// (or the limit passes, which fails the test: the server must never hang on garbage).
/// The limit covers the whole exchange, so a server trickling bytes can't stretch it.
fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let deadline = Instant::now() + EXCHANGE_LIMIT;
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_write_timeout(Some(EXCHANGE_LIMIT)).unwrap();
    // The server may answer (and close) before reading everything: a failed write is fine.
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!(
                    "server hung on {:?} (got {:?} so far)",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)]),
                    String::from_utf8_lossy(&reply)
                );
            }
            Err(_) => break, // reset: the server gave up on us, which is fine
        }
    }
    reply
}

/// Connect, send `partial` and then nothing: the server must close the connection (with
/// or without an error response) well before our own limit. Returns how long it took.
fn closed_by_server_within(addr: SocketAddr, partial: &[u8]) -> Duration {
    let started = Instant::now();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    stream.set_read_timeout(Some(EXCHANGE_LIMIT)).unwrap();
    stream.write_all(partial).unwrap();
    let mut sink = Vec::new();
    match stream.read_to_end(&mut sink) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("slow client to {addr} never dropped ({e}); got {sink:?}"),
    }
    started.elapsed()
}

/// The status code of the first response in `reply`, if any.
fn status_of(reply: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(reply);
    let line = text.lines().next()?;
    let mut parts = line.split(' ');
    let version = parts.next()?;
    if !version.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

fn body_of(reply: &[u8]) -> String {
    let text = String::from_utf8_lossy(reply);
    text.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// A complete PUT with a correct Content-Length.
fn put(path: &str, body: &[u8]) -> Vec<u8> {
    let mut req = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// Hand-written malformed requests; `None` means "no HTTP answer, connection closed" is
/// acceptable, `Some(codes)` lists the acceptable status codes.
fn malformed_requests() -> Vec<(&'static str, Vec<u8>, &'static [u16])> {
    let long_path = format!(
        "GET /v1/kv/{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(200_000)
    );
    let long_header = format!(
        "GET /v1/kv/x HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(200_000)
    );
    let many_headers = {
        let mut s = String::from("GET /v1/kv/x HTTP/1.1\r\nHost: x\r\n");
        for i in 0..500 {
            s.push_str(&format!("X-H{i}: v\r\n"));
        }
        s.push_str("\r\n");
        s
    };
    let many_params = format!(
        "GET /v1/kv/x?{} HTTP/1.1\r\nHost: x\r\n\r\n",
        (0..5000)
            .map(|i| format!("p{i}=1"))
            .collect::<Vec<_>>()
            .join("&")
    );
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_body = format!(
        "PUT /v1/catalog/register HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}",
        deep_json.len(),
        deep_json
    );
    let deep_object = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    let deep_object_body = format!(
        "PUT /v1/catalog/register HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}",
        deep_object.len(),
        deep_object
    );
    let huge_array = format!(
        r#"{{"Node":"evil","Address":"1.2.3.4","Service":{{"Service":"s","Port":-1,"Tags":[{}]}}}}"#,
        vec!["\"t\""; 100_000].join(",")
    );
    let huge_array_body = format!(
        "PUT /v1/catalog/register HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}",
        huge_array.len(),
        huge_array
    );
    let over_cap = format!(
        "PUT /v1/catalog/register HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}",
        5 * 1024 * 1024,
        "x".repeat(5 * 1024 * 1024)
    );
    // A long node name copied into each of many checks: small body, huge state.
    let amplifying = format!(
        r#"{{"Node":"{}","Address":"1.2.3.4","Checks":[{}]}}"#,
        "n".repeat(100_000),
        vec![r#"{"Name":"c"}"#; 200].join(",")
    );
    let s = |t: &str| t.as_bytes().to_vec();
    vec![
        ("invalid method", s("FROB /v1/kv/x HTTP/1.1\r\nHost: x\r\n\r\n"), &[405]),
        ("method with junk", s("G\x01T /v1/kv/x HTTP/1.1\r\nHost: x\r\n\r\n"), &[400]),
        ("bad version", s("GET /v1/kv/x HTTP/9.9\r\nHost: x\r\n\r\n"), &[400, 505]),
        ("no version", s("GET /v1/kv/x\r\n\r\n"), &[400]),
        ("binary", (0..=255u8).cycle().take(3000).collect(), &[400]),
        ("http2 preface", s("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), &[400, 404, 505]),
        ("tls hello", vec![0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03], &[400]),
        ("nul in path", s("GET /v1/kv/a\0b HTTP/1.1\r\nHost: x\r\n\r\n"), &[400]),
        ("encoded nul in path", s("GET /v1/kv/a%00b HTTP/1.1\r\nHost: x\r\n\r\n"), &[400]),
        ("encoded bad utf8 in path", s("GET /v1/kv/a%ff%fe HTTP/1.1\r\nHost: x\r\n\r\n"), &[400]),
        ("raw bad utf8 in path", b"GET /v1/kv/a\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[400, 404]),
        ("raw utf8 query on redirect", b"GET /v1//kv/x?q=\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), &[301, 400]),
        ("bad percent", s("GET /v1/kv/%zz%4 HTTP/1.1\r\nHost: x\r\n\r\n"), &[404]),
        ("bad utf8 query", s("GET /v1/kv/x?index=%ff&wait=%c3 HTTP/1.1\r\nHost: x\r\n\r\n"), &[400]),
        ("u64 overflow index", s("GET /v1/kv/x?index=99999999999999999999999 HTTP/1.1\r\nHost: x\r\n\r\n"), &[400]),
        ("huge wait", s("GET /v1/kv/x?wait=99999999999999999999h HTTP/1.1\r\nHost: x\r\n\r\n"), &[400]),
        ("flags overflow", s("PUT /v1/kv/x?flags=18446744073709551616 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv"), &[500]),
        ("cas overflow", s("PUT /v1/kv/x?cas=18446744073709551616 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv"), &[500]),
        ("negative flags", s("PUT /v1/kv/x?flags=-1 HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv"), &[500]),
        ("traversal key", s("PUT /v1/kv/a/%2e%2e/b HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nv"), &[301, 400]),
        ("truncated kv body", s("PUT /v1/kv/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly ten!!"), &[400]),
        ("truncated json body", s("PUT /v1/catalog/register HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"Node\":\"evil\",\"Address\":\"1.2.3.4\"}"), &[400]),
        ("kv over cap", format!("PUT /v1/kv/x HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", 600 * 1024).into_bytes(), &[413]),
        ("content-length overflow", s("PUT /v1/kv/x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\nv"), &[400, 413]),
        ("negative content-length", s("PUT /v1/kv/x HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\nv"), &[400]),
        ("two content-lengths", s("PUT /v1/kv/x HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nvv"), &[400]),
        ("chunked garbage", s("PUT /v1/kv/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n"), &[400]),
        ("chunked huge size", s("PUT /v1/kv/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nhello\r\n"), &[400, 413]),
        ("chunked over cap", format!("PUT /v1/kv/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n", 600 * 1024, "v".repeat(600 * 1024)).into_bytes(), &[413]),
        ("chunked truncated", s("PUT /v1/kv/x HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc"), &[400]),
        ("te and cl", s("PUT /v1/kv/x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), &[400]),
        ("bare lf", s("GET /v1/kv/x HTTP/1.1\nHost: x\n\n"), &[404]),
        ("header without colon", s("GET /v1/kv/x HTTP/1.1\r\nHost x\r\n\r\n"), &[400]),
        ("header with nul", s("GET /v1/kv/x HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n"), &[400]),
        ("long path", long_path.into_bytes(), &[414]),
        ("long header", long_header.into_bytes(), &[431]),
        ("many headers", many_headers.into_bytes(), &[431]),
        ("many params", many_params.into_bytes(), &[404]),
        ("deep json array", deep_body.into_bytes(), &[400]),
        ("deep json object", deep_object_body.into_bytes(), &[400]),
        ("huge array, bad port", huge_array_body.into_bytes(), &[400]),
        ("json over cap", over_cap.into_bytes(), &[413]),
        ("check amplification", put("/v1/catalog/register", amplifying.as_bytes()), &[413]),
        ("non-utf8 json", put("/v1/catalog/register", b"{\"\xff\xfe\":1}"), &[400]),
        ("port out of range", put("/v1/catalog/register", br#"{"Node":"evil","Address":"1.2.3.4","Service":{"Service":"s","Port":70000}}"#), &[400]),
        ("negative weights", put("/v1/catalog/register", br#"{"Node":"evil","Address":"1.2.3.4","Service":{"Service":"s","Weights":{"Passing":-1,"Warning":99999999999}}}"#), &[400]),
        ("bad check status", put("/v1/catalog/register", br#"{"Node":"evil","Address":"1.2.3.4","Check":{"Name":"c","Status":"\u0000"}}"#), &[400]),
        ("bad node id", put("/v1/catalog/register", br#"{"Node":"evil","Address":"1.2.3.4","ID":"\ud800"}"#), &[400, 500]),
        ("wrong dc", put("/v1/catalog/register", br#"{"Node":"evil","Address":"1.2.3.4","Datacenter":"elsewhere"}"#), &[500]),
        ("huge duration", put("/v1/catalog/register", br#"{"Node":"evil","Address":"1.2.3.4","Check":{"Name":"c","Definition":{"Interval":"9999999999999999h"}}}"#), &[400]),
        ("float flags in body", put("/v1/catalog/deregister", br#"{"Node":1.5e308}"#), &[400]),
        ("deregister wrong types", put("/v1/catalog/deregister", br#"{"Node":["a"],"x":1e999}"#), &[400]),
    ]
}

#[test]
fn hostile_http_and_dns_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let agent = Agent::server(IP, "hostile", &tmp.path().join("d"), &[]);
    let client = http_client();
    // Some state to protect.
    for (k, v) in [("keep/a", "1"), ("keep/b", "two"), ("zzz", "")] {
        let r = client
            .put(agent.url(&format!("/v1/kv/{k}")))
            .body(v)
            .send()
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let before = agent.state();
    let http: SocketAddr = format!("{IP}:8500").parse().unwrap();
    // Slow clients run alongside the barrage: a request head that never completes, and a
    // DNS TCP connection that never sends a whole frame, are both closed by the server.
    let slow_http = std::thread::spawn(move || {
        closed_by_server_within(http, b"GET /v1/kv/x HTTP/1.1\r\nHost:")
    });
    let dns_tcp = agent.dns_addr();
    let slow_dns = std::thread::spawn(move || closed_by_server_within(dns_tcp, &[0, 40, 0xbe]));

    let mut surprises = Vec::new();
    for (what, bytes, expected) in malformed_requests() {
        let reply = raw_exchange(http, &bytes);
        let status = status_of(&reply);
        println!(
            "{what}: {status:?} {:?}",
            body_of(&reply).chars().take(120).collect::<String>()
        );
        match status {
            Some(code) if expected.contains(&code) => {}
            None if reply.is_empty() => {} // closed without an answer: acceptable for garbage
            other => surprises.push(format!("{what}: {other:?} {:?}", body_of(&reply))),
        }
    }

    // Randomly mutated read requests: any answer but a hang or a 5xx.
    let templates: &[&[u8]] = &[
        b"GET /v1/kv/keep/?recurse&index=1&wait=10ms HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v1/catalog/service/web?tag=a&node-meta=k:v HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v1/health/service/web?passing=1&stale HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v1/kv/keep?keys&separator=/ HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
        b"OPTIONS /v1/catalog/nodes HTTP/1.1\r\nHost: x\r\n\r\n",
    ];
    let mut rng = StdRng::seed_from_u64(40);
    for round in 0..300 {
        let mut bytes = templates[round % templates.len()].to_vec();
        for _ in 0..rng.random_range(1..4) {
            let at = rng.random_range(0..bytes.len());
            match rng.random_range(0..3) {
                0 => bytes[at] = rng.random(),
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, rng.random()),
            }
        }
        let reply = raw_exchange(http, &bytes);
        if let Some(code) = status_of(&reply) {
            if code >= 500 {
                surprises.push(format!(
                    "mutated {:?}: {code} {}",
                    String::from_utf8_lossy(&bytes),
                    body_of(&reply)
                ));
            }
        }
    }

    // Garbage DNS over UDP: random datagrams and hand-made hostile messages.
    let dns = agent.dns_addr();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    for datagram in hostile_datagrams(&mut rng) {
        sock.send_to(&datagram, dns).unwrap();
    }
    // Garbage DNS over TCP: zero length, huge length then close, garbage frames. We
    // half-close after writing, so the server sees the end at once and must close too.
    // A close before the idle timeout can only be that reaction (an idle close comes at
    // the timeout or later), however slow the machine is otherwise.
    let idle_timeout = dns_tcp_idle_timeout();
    assert!(
        EXCHANGE_LIMIT > idle_timeout * 2,
        "we must outwait an idle close"
    );
    for frame in hostile_tcp_streams(&mut rng) {
        let started = Instant::now();
        let mut s = TcpStream::connect_timeout(&dns, Duration::from_secs(5)).expect("connect");
        s.set_read_timeout(Some(EXCHANGE_LIMIT)).unwrap();
        let _ = s.write_all(&frame);
        let _ = s.shutdown(Shutdown::Write);
        let mut replies = Vec::new();
        match s.read_to_end(&mut replies) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
            Err(e) => surprises.push(format!(
                "dns tcp {:?}: not closed ({e})",
                &frame[..frame.len().min(8)]
            )),
        }
        if started.elapsed() >= idle_timeout {
            surprises.push(format!(
                "dns tcp {:?}: closed only after {:?}, by the idle timeout, not at our end",
                &frame[..frame.len().min(8)],
                started.elapsed()
            ));
        }
    }

    assert!(
        surprises.is_empty(),
        "unexpected answers:\n{}",
        surprises.join("\n")
    );
    let head_wait = slow_http.join().unwrap();
    println!("slow request head closed after {head_wait:?}");
    let frame_wait = slow_dns.join().unwrap();
    println!("slow DNS frame closed after {frame_wait:?}");

    // Every HTTP worker still serves: several fresh connections in a row.
    for i in 0..16 {
        let r = client
            .get(agent.url("/v1/kv/keep/a?raw"))
            .header("Connection", "close")
            .send()
            .unwrap_or_else(|e| panic!("request {i} after the barrage: {e}"));
        assert_eq!(r.text().unwrap(), "1");
    }

    // Alive, correct, unchanged.
    let reply = udp_query(dns, "hostile.node.consul.", RecordType::A);
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert_eq!(reply.answers.len(), 1);
    let reply = tcp_query(dns, "consul.service.consul.", RecordType::SRV);
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert_eq!(reply.answers.len(), 1);
    let r = client.get(agent.url("/v1/kv/keep/b?raw")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().unwrap(), "two");
    assert_eq!(agent.state(), before, "hostile input changed the state");
}

/// Random bytes, mutated valid queries, and the classic parser traps.
fn hostile_datagrams(rng: &mut StdRng) -> Vec<Vec<u8>> {
    let header = |qd: u16, flags: u16| -> Vec<u8> {
        let mut h = vec![0xbe, 0xef];
        h.extend_from_slice(&flags.to_be_bytes());
        h.extend_from_slice(&qd.to_be_bytes());
        h.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        h
    };
    let question = |name: &[u8], qtype: u16, class: u16| -> Vec<u8> {
        let mut q = name.to_vec();
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&class.to_be_bytes());
        q
    };
    let web = b"\x03web\x07service\x06consul\x00";
    let mut out = Vec::new();
    // Compression loop: a pointer to itself.
    let mut m = header(1, 0x0100);
    m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    out.push(m);
    // Zero questions; two questions; 127 labels; a 63+ label; unknown class and type.
    out.push(header(0, 0x0100));
    let mut m = header(2, 0x0100);
    m.extend(question(web, 1, 1));
    m.extend(question(web, 28, 1));
    out.push(m);
    let mut deep = Vec::new();
    for _ in 0..127 {
        deep.extend_from_slice(b"\x01a");
    }
    deep.push(0);
    let mut m = header(1, 0x0100);
    m.extend(question(&deep, 1, 1));
    out.push(m);
    let mut long_label = vec![64u8];
    long_label.extend(std::iter::repeat_n(b'x', 64));
    long_label.push(0);
    let mut m = header(1, 0x0100);
    m.extend(question(&long_label, 1, 1));
    out.push(m);
    for (qtype, class) in [(1, 3), (1, 255), (65280, 1), (0, 0), (252, 1), (251, 1)] {
        let mut m = header(1, 0x0100);
        m.extend(question(web, qtype, class));
        out.push(m);
    }
    // EDNS with odd sizes (0, 1, 65535) and a truncated OPT record.
    for size in [0u16, 1, 511, 65535] {
        let mut m = header(1, 0x0100);
        m[11] = 1; // ARCOUNT
        m.extend(question(web, 33, 1));
        m.extend_from_slice(&[0, 0, 41]);
        m.extend_from_slice(&size.to_be_bytes());
        m.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        out.push(m);
    }
    let mut m = header(1, 0x0100);
    m[11] = 1;
    m.extend(question(web, 1, 1));
    m.extend_from_slice(&[0, 0, 41, 0x10]);
    out.push(m);
    // Every opcode, and responses (must be dropped, never answered).
    for opcode in 0..16u16 {
        let mut m = header(1, opcode << 11);
        m.extend(question(web, 1, 1));
        out.push(m);
    }
    // Random and mutated.
    let valid = {
        let mut m = header(1, 0x0100);
        m.extend(question(web, 33, 1));
        m
    };
    for i in 0..1000 {
        if i % 2 == 0 {
            let len = rng.random_range(0..600);
            out.push((0..len).map(|_| rng.random()).collect());
        } else {
            let mut m = valid.clone();
            for _ in 0..rng.random_range(1..5) {
                let at = rng.random_range(0..m.len());
                m[at] = rng.random();
            }
            out.push(m);
        }
    }
    out
}

fn hostile_tcp_streams(rng: &mut StdRng) -> Vec<Vec<u8>> {
    let mut out = vec![
        vec![0, 0],
        vec![0xff, 0xff],
        vec![0xff, 0xff, 1, 2, 3],
        vec![0],
        vec![0, 12, 0xbe, 0xef, 0x81, 0, 0, 1, 0, 0, 0, 0, 0, 0],
    ];
    for _ in 0..50 {
        let len = rng.random_range(0..300u16);
        let mut frame = len.to_be_bytes().to_vec();
        frame.extend((0..len).map(|_| rng.random::<u8>()));
        // Several frames back to back on one connection.
        let copy = frame.clone();
        frame.extend(copy);
        out.push(frame);
    }
    out
}

#[test]
fn one_client_cannot_hold_every_http_slot() {
    // Consul's http_max_conns_per_client (200): a client holding 200 connections (here
    // parked blocking queries) gets 429 on the next one, which is then closed. Raw
    // one-shot connections only: a pooled keep-alive connection would hold a slot itself.
    const LIMIT: usize = 200;
    let ip = "127.0.0.43";
    let tmp = tempfile::tempdir().unwrap();
    let agent = Agent::server(ip, "greedy", &tmp.path().join("d"), &[]);
    let http: SocketAddr = format!("{ip}:8500").parse().unwrap();
    // No half-close here: actix may drop a connection whose client stopped writing
    // before it answers; `Connection: close` makes the server end it after the answer.
    let one_shot = |path: &str| {
        let mut stream =
            TcpStream::connect_timeout(&http, Duration::from_secs(5)).expect("connect");
        stream.set_read_timeout(Some(EXCHANGE_LIMIT)).unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = Vec::new();
        let _ = stream.read_to_end(&mut reply);
        reply
    };
    let reply = String::from_utf8_lossy(&one_shot("/v1/kv/?recurse")).into_owned();
    let index: u64 = reply
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("x-consul-index: ")
                .map(str::to_string)
        })
        .and_then(|v| v.trim().parse().ok())
        .expect("index header");
    let request = format!("GET /v1/kv/parked?index={index}&wait=8s HTTP/1.1\r\nHost: x\r\n\r\n");
    let park = || {
        let mut s = TcpStream::connect_timeout(&http, Duration::from_secs(5)).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        s
    };
    let mut parked: Vec<TcpStream> = (0..LIMIT).map(|_| park()).collect();
    // A connection still being torn down (the one above, or the readiness poll's) may
    // have held a slot when some of ours arrived: park one more whenever a slot is free.
    let refused = common::wait_for("the per-client limit", || {
        let reply = one_shot("/v1/kv/parked");
        if status_of(&reply) == Some(429) {
            return Some(body_of(&reply));
        }
        parked.push(park());
        None
    });
    assert_eq!(
        refused,
        "Your IP is issuing too many concurrent connections, please rate limit your calls"
    );
    // When the parked queries end (and their connections close), the client is served.
    drop(parked);
    let status = common::wait_for("the slots to free", || {
        let status = status_of(&one_shot("/v1/kv/parked"))?;
        (status != 429).then_some(status)
    });
    assert_eq!(status, 404);
    drop(agent);
}
