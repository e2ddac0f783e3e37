//! Edge limits against the real binary: one client address cannot fill the DNS TCP
//! connection cap, and oversized HTTP request heads get 414 / 431 (then a clean close,
//! never a reset) while everything else keeps working and the state is unchanged.

mod common;

use cairn::http::head_limit::{
    MAX_HEADER_FIELDS, MAX_HEADER_SECTION_BYTES, MAX_REQUEST_LINE_BYTES,
};
use common::dns::{query_message, rcode, tcp_query};
use common::{http_client, Agent, DEADLINE};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A TCP connection to `server` from the source address `from` (any port).
fn connect_from(from: &str, server: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let source: IpAddr = from.parse().expect("source address");
    socket
        .bind(&SocketAddr::new(source, 0).into())
        .expect("bind the source address");
    socket
        .connect_timeout(&server.into(), Duration::from_secs(5))
        .expect("connect");
    let stream: TcpStream = socket.into();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("read timeout");
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .expect("write timeout");
    stream
}

/// One framed DNS query on `stream`; an error when the server closed the connection
/// (or never answered within the read timeout).
fn ask(stream: &mut TcpStream, name: &str) -> io::Result<Message> {
    let bytes = query_message(name, RecordType::A).to_vec().expect("encode");
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream.write_all(&framed)?;
    let mut length = [0u8; 2];
    stream.read_exact(&mut length)?;
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(length))];
    stream.read_exact(&mut body)?;
    Message::from_vec(&body).map_err(io::Error::other)
}

#[test]
fn one_address_cannot_fill_the_dns_tcp_cap() {
    const PER_CLIENT: usize = cairn::dns::MAX_TCP_CONNECTIONS_PER_CLIENT;
    const GLOBAL: usize = cairn::dns::MAX_TCP_CONNECTIONS;
    let (greedy, other) = ("127.0.0.76", "127.0.0.77");
    let tmp = tempfile::tempdir().unwrap();
    let agent = Agent::server("127.0.0.75", "capped", &tmp.path().join("d"), &[]);
    let dns = agent.dns_addr();
    let name = "capped.node.consul.";
    // The greedy address's first connections are served: an answer proves the server
    // holds a slot for each.
    let mut held: Vec<TcpStream> = (0..PER_CLIENT)
        .map(|i| {
            let mut stream = connect_from(greedy, dns);
            let reply = ask(&mut stream, name).unwrap_or_else(|e| panic!("held {i}: {e}"));
            assert_eq!(rcode(&reply), ResponseCode::NoError);
            stream
        })
        .collect();
    // Queries on the held connections keep them from the idle close (10 s), so a slow
    // machine cannot free their slots halfway through.
    let idle_timeout = cairn::dns::DnsConfig::new("consul", "dc1", vec![]).tcp_idle_timeout;
    let mut refreshed = Instant::now();
    let refresh = |held: &mut Vec<TcpStream>| {
        for (i, stream) in held.iter_mut().enumerate() {
            let reply = ask(stream, name).unwrap_or_else(|e| panic!("held {i} lost: {e}"));
            assert_eq!(rcode(&reply), ResponseCode::NoError);
        }
    };
    // More than the global cap in all: every connection past the per-client cap is
    // closed without an answer.
    let started = Instant::now();
    for i in 0..GLOBAL + 8 - PER_CLIENT {
        if refreshed.elapsed() > idle_timeout / 4 {
            refresh(&mut held);
            refreshed = Instant::now();
        }
        let mut stream = connect_from(greedy, dns);
        if let Ok(reply) = ask(&mut stream, name) {
            panic!("connection {i} past the per-client cap was answered: {reply:?}");
        }
        assert!(started.elapsed() < DEADLINE, "refusals took too long");
    }
    // Everyone else is still served, over TCP, from other addresses.
    let mut stream = connect_from(other, dns);
    let reply = ask(&mut stream, name).expect("another address is served");
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    assert_eq!(reply.answers.len(), 1);
    let reply = tcp_query(dns, name, RecordType::A);
    assert_eq!(rcode(&reply), ResponseCode::NoError);
    // The greedy address held its cap the whole time...
    refresh(&mut held);
    let mut past = connect_from(greedy, dns);
    assert!(ask(&mut past, name).is_err(), "still at the cap");
    // ...and gets its slots back once it closes connections (freed just after the close).
    drop(held);
    let reply = common::wait_for("the greedy address to be served again", || {
        ask(&mut connect_from(greedy, dns), name).ok()
    });
    assert_eq!(rcode(&reply), ResponseCode::NoError);
}

/// Bound every read and write on `stream` (a stuck server fails the test, never hangs it).
fn with_io_timeouts(stream: &mut TcpStream) {
    let limit = Some(Duration::from_secs(20));
    stream.set_read_timeout(limit).unwrap();
    stream.set_write_timeout(limit).unwrap();
}

/// Send `request` whole (as an ordinary client does: no half-close), then read until the
/// server closes. Returns the bytes read and whether the close was a reset.
fn exchange(stream: &mut TcpStream, request: &[u8]) -> (Vec<u8>, bool) {
    with_io_timeouts(stream);
    let written = stream.write_all(request);
    let mut reply = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => reply.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {
                return (reply, true);
            }
            Err(e) => panic!("no close from the server: {e}; got {reply:?}"),
        }
    }
    assert!(written.is_ok(), "write failed: {written:?}");
    (reply, false)
}

fn status_and_body(reply: &[u8]) -> (String, String) {
    let text = String::from_utf8_lossy(reply);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().unwrap_or("").to_string();
    (status, body.to_string())
}

/// One request on a fresh connection, with `Connection: close`.
fn one_shot(http: SocketAddr, request: &[u8]) -> (String, String, bool) {
    let mut stream = TcpStream::connect_timeout(&http, Duration::from_secs(5)).expect("connect");
    let (reply, reset) = exchange(&mut stream, request);
    let (status, body) = status_and_body(&reply);
    (status, body, reset)
}

fn get(target: &str, extra_headers: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: x\r\n{extra_headers}Connection: close\r\n\r\n")
        .into_bytes()
}

#[test]
fn oversized_request_heads_get_414_and_431_and_a_clean_close() {
    let ip = "127.0.0.78";
    let tmp = tempfile::tempdir().unwrap();
    let agent = Agent::server(ip, "heads", &tmp.path().join("d"), &[]);
    let http: SocketAddr = format!("{ip}:8500").parse().unwrap();
    let client = http_client();
    let r = client
        .put(agent.url("/v1/kv/keep"))
        .body("v")
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let before = agent.state();
    let mega = 1024 * 1024;

    // A 1 MB header and a 1 MB URL: the answer, then a close that is not a reset.
    let header = format!("X-Big: {}\r\n", "b".repeat(mega));
    let (status, body, reset) = one_shot(http, &get("/v1/kv/keep", &header));
    assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(body, "431 Request Header Fields Too Large");
    assert!(!reset, "431 came with a reset");
    let url = format!("/v1/kv/{}", "u".repeat(mega));
    let (status, body, reset) = one_shot(http, &get(&url, ""));
    assert_eq!(status, "HTTP/1.1 414 URI Too Long");
    assert_eq!(body, "414 URI Too Long");
    assert!(!reset, "414 came with a reset");

    // A client still sending its head when the answer arrives (a slow uplink) can read the
    // answer and the server's half-close, and then go on sending: the server reads and
    // drops the rest of the head for a while instead of closing under it, which would
    // reset the connection (and often destroy the answer before it is read).
    let mut stream = TcpStream::connect_timeout(&http, Duration::from_secs(5)).unwrap();
    with_io_timeouts(&mut stream);
    let request = get("/v1/kv/keep", &header);
    let first = 2 * MAX_REQUEST_LINE_BYTES; // past every limit
    stream.write_all(&request[..first]).unwrap();
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .expect("the answer, then the server's half-close");
    assert!(answer.starts_with(b"HTTP/1.1 431 "), "{answer:?}");
    assert!(answer.ends_with(b"\r\n\r\n431 Request Header Fields Too Large"));
    for piece in request[first..].chunks(64 * 1024) {
        stream
            .write_all(piece)
            .expect("the server still reads what we send after its answer");
    }
    drop(stream);

    // The limits are exact: the longest request line and header section still pass.
    let line_overhead = "GET  HTTP/1.1\r\n".len();
    let longest_key = "k".repeat(MAX_REQUEST_LINE_BYTES - line_overhead - "/v1/kv/".len());
    let (status, _, _) = one_shot(http, &get(&format!("/v1/kv/{longest_key}"), ""));
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, _, _) = one_shot(http, &get(&format!("/v1/kv/{longest_key}k"), ""));
    assert_eq!(status, "HTTP/1.1 414 URI Too Long");
    // "Host: x\r\n", "Connection: close\r\n", the filler line, and the blank line.
    let fixed = "Host: x\r\n".len() + "Connection: close\r\n".len() + "X: \r\n".len() + 2;
    let filler = |n: usize| format!("X: {}\r\n", "f".repeat(n));
    let (status, body, _) = one_shot(
        http,
        &get("/v1/kv/keep?raw", &filler(MAX_HEADER_SECTION_BYTES - fixed)),
    );
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "v"));
    let (status, _, _) = one_shot(
        http,
        &get(
            "/v1/kv/keep?raw",
            &filler(MAX_HEADER_SECTION_BYTES - fixed + 1),
        ),
    );
    assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");

    // As many fields as actix parses (Host and Connection count) pass; one more is 431.
    let fields = |n: usize| (0..n).map(|i| format!("X-{i}: v\r\n")).collect::<String>();
    let (status, _, _) = one_shot(
        http,
        &get("/v1/kv/keep?raw", &fields(MAX_HEADER_FIELDS - 2)),
    );
    assert_eq!(status, "HTTP/1.1 200 OK");
    let (status, _, _) = one_shot(
        http,
        &get("/v1/kv/keep?raw", &fields(MAX_HEADER_FIELDS - 1)),
    );
    assert_eq!(status, "HTTP/1.1 431 Request Header Fields Too Large");

    // On a keep-alive connection, after a write with a body: the earlier requests are
    // answered, then the oversized one.
    let mut stream = TcpStream::connect_timeout(&http, Duration::from_secs(5)).unwrap();
    let mut requests =
        b"PUT /v1/kv/other HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello".to_vec();
    requests.extend_from_slice(b"GET /v1/kv/other?raw HTTP/1.1\r\nHost: x\r\n\r\n");
    requests.extend_from_slice(&get(&url, ""));
    let (reply, reset) = exchange(&mut stream, &requests);
    let text = String::from_utf8_lossy(&reply);
    let statuses: Vec<&str> = text
        .match_indices("HTTP/1.1 ")
        .filter_map(|(at, _)| text[at..].split("\r\n").next())
        .collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 414 URI Too Long"
        ],
        "{text}"
    );
    assert!(text.contains("\r\n\r\nhello"), "{text}");
    assert!(!reset, "414 after keep-alive requests came with a reset");

    // A normal request on a fresh connection still works; the refused ones changed nothing.
    let r = client.get(agent.url("/v1/kv/keep?raw")).send().unwrap();
    assert_eq!(r.text().unwrap(), "v");
    let r = client.delete(agent.url("/v1/kv/other")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(agent.state(), before, "oversized heads changed the state");
}
