//! The DNS server end to end: real UDP and TCP sockets on 127.0.0.x, an in-memory store,
//! raw hickory-proto messages, and a fake upstream for recursion.

use super::{DnsConfig, DnsServer};
use actors::ReadView;
use hickory_proto::op::{Edns, Message, MessageType, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use protocol::store::{Check, CheckStatus, Command, Node, RegisterRequest, Service, Store};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

fn register(
    store: &mut Store,
    index: u64,
    node: &str,
    address: &str,
    service: Option<(&str, &str)>,
) {
    let service = service.map(|(name, addr)| Service {
        id: name.into(),
        service: name.into(),
        address: addr.into(),
        port: 80,
        ..Service::default()
    });
    let req = RegisterRequest {
        node: Node {
            node: node.into(),
            address: address.into(),
            ..Node::default()
        },
        skip_node_update: false,
        service,
        checks: vec![],
    };
    store.apply(index, &Command::Register(req));
}

pub(super) fn sample_store() -> Store {
    let mut store = Store::new();
    register(&mut store, 1, "n1", "10.0.0.1", Some(("web", "")));
    register(&mut store, 2, "n2", "10.0.0.2", Some(("web", "")));
    register(
        &mut store,
        3,
        "google",
        "www.google.com",
        Some(("search", "")),
    );
    register(&mut store, 4, "bing", "www.bing.com", Some(("search", "")));
    for i in 0..40u64 {
        register(
            &mut store,
            10 + i,
            &format!("big{i}"),
            &format!("10.1.0.{i}"),
            Some(("big", "")),
        );
    }
    let check = Check {
        node: "n2".into(),
        check_id: "serfHealth".into(),
        status: CheckStatus::Critical,
        ..Check::default()
    };
    let req = RegisterRequest {
        node: Node {
            node: "n2".into(),
            address: "10.0.0.2".into(),
            ..Node::default()
        },
        skip_node_update: true,
        service: None,
        checks: vec![check],
    };
    store.apply(100, &Command::Register(req));
    store
}

fn server(ip: [u8; 4], recursors: Vec<SocketAddr>) -> DnsServer {
    server_with(ip, DnsConfig::new("consul", "dc1", recursors))
}

fn server_with(ip: [u8; 4], config: DnsConfig) -> DnsServer {
    let addr = SocketAddr::from((Ipv4Addr::from(ip), 0));
    DnsServer::bind(ReadView::new(sample_store()), config, &[addr]).expect("bind dns server")
}

pub(super) fn query(name: &str, record_type: RecordType) -> Message {
    let mut message = Message::query();
    message.add_query(Query::query(Name::from_ascii(name).unwrap(), record_type));
    message.metadata.recursion_desired = true;
    message
}

async fn udp_raw(server: SocketAddr, bytes: &[u8]) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket.send_to(bytes, server).await.unwrap();
    let mut buf = vec![0u8; 65535];
    let (len, _) = timeout(Duration::from_millis(500), socket.recv_from(&mut buf))
        .await
        .ok()?
        .ok()?;
    buf.truncate(len);
    Some(buf)
}

async fn udp_ask(server: SocketAddr, message: &Message) -> (Message, usize) {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    socket
        .send_to(&message.to_vec().unwrap(), server)
        .await
        .unwrap();
    let mut buf = vec![0u8; 65535];
    let (len, _) = timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("udp answer in time")
        .unwrap();
    let response = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(response.metadata.id, message.metadata.id);
    (response, len)
}

async fn tcp_ask(stream: &mut TcpStream, message: &Message) -> Message {
    let bytes = message.to_vec().unwrap();
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .await
        .unwrap();
    stream.write_all(&bytes).await.unwrap();
    let mut length = [0u8; 2];
    timeout(WAIT, stream.read_exact(&mut length))
        .await
        .unwrap()
        .unwrap();
    let mut body = vec![0u8; usize::from(u16::from_be_bytes(length))];
    timeout(WAIT, stream.read_exact(&mut body))
        .await
        .unwrap()
        .unwrap();
    Message::from_vec(&body).unwrap()
}

fn a_records(message: &Message) -> Vec<(String, Ipv4Addr)> {
    let mut out: Vec<(String, Ipv4Addr)> = message
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some((r.name.to_ascii(), a.0)),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

#[tokio::test]
async fn udp_answers_services_and_nodes_authoritatively() {
    let dns = server([127, 0, 0, 53], vec![]);
    let addr = dns.udp_addrs()[0];
    assert_eq!(dns.tcp_addrs()[0].port(), addr.port());

    // n2 has a critical serfHealth check: only n1 is answered.
    let (response, _) = udp_ask(addr, &query("WEB.service.consul.", RecordType::A)).await;
    assert_eq!(response.metadata.message_type, MessageType::Response);
    assert!(response.metadata.authoritative);
    assert!(!response.metadata.recursion_available);
    assert!(response.metadata.recursion_desired);
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(
        a_records(&response),
        vec![(
            "WEB.service.consul.".to_string(),
            Ipv4Addr::new(10, 0, 0, 1)
        )]
    );
    assert_eq!(response.answers[0].ttl, 0);

    let (response, _) = udp_ask(addr, &query("n2.node.dc1.consul.", RecordType::A)).await;
    assert_eq!(
        a_records(&response),
        vec![(
            "n2.node.dc1.consul.".to_string(),
            Ipv4Addr::new(10, 0, 0, 2)
        )]
    );

    let (response, _) = udp_ask(addr, &query("nope.service.consul.", RecordType::A)).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
    assert!(response.answers.is_empty());
    assert_eq!(response.authorities.len(), 1);
    assert_eq!(response.authorities[0].record_type(), RecordType::SOA);

    // SRV with glue.
    let (response, _) = udp_ask(addr, &query("_web._tcp.service.consul.", RecordType::SRV)).await;
    assert_eq!(response.answers.len(), 1);
    let RData::SRV(srv) = &response.answers[0].data else {
        panic!("not SRV: {response:?}")
    };
    assert_eq!((srv.priority, srv.weight, srv.port), (1, 1, 80));
    assert_eq!(srv.target.to_ascii(), "n1.node.dc1.consul.");
    assert_eq!(response.additionals.len(), 1);
    assert_eq!(response.additionals[0].data, RData::A(A::new(10, 0, 0, 1)));
}

#[tokio::test]
async fn ptr_for_node_addresses() {
    let dns = server([127, 0, 0, 53], vec![]);
    let addr = dns.udp_addrs()[0];
    let (response, _) = udp_ask(addr, &query("1.0.0.10.in-addr.arpa.", RecordType::PTR)).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.metadata.authoritative);
    let targets: Vec<String> = response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::PTR(ptr) => Some(ptr.0.to_ascii()),
            _ => None,
        })
        .collect();
    assert_eq!(targets, vec!["n1.node.dc1.consul.".to_string()]);
    let (response, _) = udp_ask(addr, &query("9.9.9.9.in-addr.arpa.", RecordType::PTR)).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);
}

#[tokio::test]
async fn tcp_connections_are_bounded_and_idle_ones_closed() {
    let mut config = DnsConfig::new("consul", "dc1", vec![]);
    config.max_tcp_connections = 1;
    config.tcp_idle_timeout = Duration::from_millis(300);
    let dns = server_with([127, 0, 0, 57], config);
    let tcp = dns.tcp_addrs()[0];
    let mut first = TcpStream::connect(tcp).await.unwrap();
    let response = tcp_ask(&mut first, &query("n1.node.consul.", RecordType::A)).await;
    assert_eq!(response.answers.len(), 1);
    // Over the limit: closed at once.
    let mut second = TcpStream::connect(tcp).await.unwrap();
    let mut byte = [0u8; 1];
    let read = timeout(WAIT, second.read(&mut byte))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // The idle one is closed by the server after the idle timeout.
    let read = timeout(WAIT, first.read(&mut byte))
        .await
        .expect("idle close in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    // Its slot is free again (the permit is released just after the close).
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut third = TcpStream::connect(tcp).await.unwrap();
        let bytes = query("n1.node.consul.", RecordType::A).to_vec().unwrap();
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        let _ = third.write_all(&framed).await;
        let mut length = [0u8; 2];
        if let Ok(Ok(_)) = timeout(WAIT, third.read_exact(&mut length)).await {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        tokio::task::yield_now().await;
    }
}

/// A TCP connection to `server` from the source address `from` (port chosen by the OS).
async fn connect_from(from: [u8; 4], server: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((Ipv4Addr::from(from), 0)))
        .unwrap();
    socket.connect(server).await.unwrap()
}

/// Whether the server closes `stream` (EOF or reset) within `WAIT`.
async fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(
        timeout(WAIT, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

#[tokio::test]
async fn one_client_cannot_fill_the_tcp_connection_cap() {
    const PER_CLIENT: usize = 3;
    const GLOBAL: usize = 5;
    let mut config = DnsConfig::new("consul", "dc1", vec![]);
    config.max_tcp_connections = GLOBAL;
    config.max_tcp_connections_per_client = PER_CLIENT;
    // Far longer than the test: any close we see is a refusal, not an idle close.
    config.tcp_idle_timeout = Duration::from_secs(600);
    let dns = server_with([127, 0, 0, 71], config);
    let tcp = dns.tcp_addrs()[0];
    let (greedy, other) = ([127, 0, 0, 72], [127, 0, 0, 73]);
    let ask = query("n1.node.consul.", RecordType::A);
    // The greedy client's first connections are served (an answer proves the server holds
    // a slot for each), every further one is closed at once.
    let mut held = Vec::new();
    for _ in 0..PER_CLIENT {
        let mut stream = connect_from(greedy, tcp).await;
        assert_eq!(tcp_ask(&mut stream, &ask).await.answers.len(), 1);
        held.push(stream);
    }
    for i in 0..GLOBAL * 2 {
        let mut stream = connect_from(greedy, tcp).await;
        assert!(
            closed_by_server(&mut stream).await,
            "connection {i} over the cap kept"
        );
    }
    // The refused ones took no global slot: another client gets all the rest.
    let mut others = Vec::new();
    for _ in 0..GLOBAL - PER_CLIENT {
        let mut stream = connect_from(other, tcp).await;
        assert_eq!(tcp_ask(&mut stream, &ask).await.answers.len(), 1);
        others.push(stream);
    }
    // The global cap still holds for everyone.
    let mut third = connect_from([127, 0, 0, 74], tcp).await;
    assert!(
        closed_by_server(&mut third).await,
        "global cap not enforced"
    );
    // A closed connection gives its client its slot back (freed just after the close).
    drop(held.pop());
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let mut stream = connect_from(greedy, tcp).await;
        let bytes = ask.to_vec().unwrap();
        let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        let _ = stream.write_all(&framed).await;
        let mut length = [0u8; 2];
        if let Ok(Ok(_)) = timeout(WAIT, stream.read_exact(&mut length)).await {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "slot never freed");
        tokio::task::yield_now().await;
    }
    drop((held, others, dns));
}

#[tokio::test]
async fn outside_names_without_recursors_are_refused() {
    let dns = server([127, 0, 0, 53], vec![]);
    let (response, _) = udp_ask(
        dns.udp_addrs()[0],
        &query("www.example.com.", RecordType::A),
    )
    .await;
    assert_eq!(response.metadata.response_code, ResponseCode::Refused);
    assert!(!response.metadata.recursion_available);
}

#[tokio::test]
async fn garbage_gets_formerr_or_nothing_and_the_loop_keeps_serving() {
    let dns = server([127, 0, 0, 53], vec![]);
    let addr = dns.udp_addrs()[0];
    // A header that parses, a body that does not: FORMERR with the same id.
    let garbage = [
        0x12, 0x34, 0x01, 0x00, 0x00, 0x01, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff,
    ];
    let reply = udp_raw(addr, &garbage).await.expect("formerr reply");
    let reply = Message::from_vec(&reply).unwrap();
    assert_eq!(reply.metadata.id, 0x1234);
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    assert!(reply.metadata.recursion_desired);
    // Shorter than a header: dropped.
    assert_eq!(udp_raw(addr, &[1, 2, 3]).await, None);
    // A response sent to us is never answered (no reflection loops).
    let mut response = query("web.service.consul.", RecordType::A);
    response.metadata.message_type = MessageType::Response;
    assert_eq!(udp_raw(addr, &response.to_vec().unwrap()).await, None);
    // Still serving.
    let (response, _) = udp_ask(addr, &query("web.service.consul.", RecordType::A)).await;
    assert_eq!(a_records(&response).len(), 1);
}

#[tokio::test]
async fn udp_answer_limit_and_byte_budget_truncation() {
    let dns = server([127, 0, 0, 53], vec![]);
    let addr = dns.udp_addrs()[0];
    // No EDNS: cut to udp_answer_limit (3), a policy, no TC.
    let (response, _) = udp_ask(addr, &query("big.service.consul.", RecordType::A)).await;
    assert_eq!(response.answers.len(), 3);
    assert!(!response.metadata.truncation);
    assert!(response.edns.is_none());

    // EDNS with a 512-byte buffer: no answer limit, but 40 A records do not fit: TC.
    let mut message = query("big.service.consul.", RecordType::A);
    let mut edns = Edns::new();
    edns.set_max_payload(512);
    message.edns = Some(edns);
    let (response, len) = udp_ask(addr, &message).await;
    assert!(len <= 512, "{len} bytes");
    assert!(response.metadata.truncation);
    assert!(
        response.answers.len() > 3 && response.answers.len() < 40,
        "{}",
        response.answers.len()
    );
    assert_eq!(response.edns.as_ref().map(|e| e.max_payload()), Some(4096));

    // EDNS 4096: everything fits.
    let mut message = query("big.service.consul.", RecordType::A);
    message.edns = Some(Edns::new());
    message.edns.as_mut().unwrap().set_max_payload(4096);
    let (response, _) = udp_ask(addr, &message).await;
    assert_eq!(response.answers.len(), 40);
    assert!(!response.metadata.truncation);

    // TCP: everything, several queries on one connection.
    let mut stream = TcpStream::connect(dns.tcp_addrs()[0]).await.unwrap();
    for _ in 0..2 {
        let response = tcp_ask(&mut stream, &query("big.service.consul.", RecordType::A)).await;
        assert_eq!(response.answers.len(), 40);
        assert!(!response.metadata.truncation);
    }
    let response = tcp_ask(&mut stream, &query("n1.node.consul.", RecordType::AAAA)).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.answers.is_empty());
    assert_eq!(response.authorities.len(), 1);
}

/// A fake upstream: `missing.*` is NXDOMAIN, every other A question gets 203.0.113.7.
async fn fake_upstream(ip: [u8; 4]) -> SocketAddr {
    fake_upstream_with(ip, false).await
}

/// `broken`: every question gets SERVFAIL.
async fn fake_upstream_with(ip: [u8; 4], broken: bool) -> SocketAddr {
    let socket = UdpSocket::bind(SocketAddr::from((Ipv4Addr::from(ip), 0)))
        .await
        .unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((len, peer)) = socket.recv_from(&mut buf).await else {
                return;
            };
            let Ok(request) = Message::from_vec(&buf[..len]) else {
                continue;
            };
            let mut response = Message::response(request.metadata.id, request.metadata.op_code);
            response.metadata.recursion_desired = request.metadata.recursion_desired;
            response.metadata.recursion_available = true;
            response.queries = request.queries.clone();
            if let Some(q) = request.queries.first() {
                if broken {
                    response.metadata.response_code = ResponseCode::ServFail;
                } else if q.name().to_ascii().starts_with("missing") {
                    response.metadata.response_code = ResponseCode::NXDomain;
                } else if q.query_type() == RecordType::A {
                    response.add_answer(Record::from_rdata(
                        q.name().clone(),
                        60,
                        RData::A(A::new(203, 0, 113, 7)),
                    ));
                }
            }
            let _ = socket.send_to(&response.to_vec().unwrap(), peer).await;
        }
    });
    addr
}

#[tokio::test]
async fn recursion_through_an_upstream() {
    let upstream = fake_upstream([127, 0, 0, 54]).await;
    let dns = server([127, 0, 0, 55], vec![upstream]);
    let addr = dns.udp_addrs()[0];

    let (response, _) = udp_ask(addr, &query("www.example.com.", RecordType::A)).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert!(response.metadata.recursion_available);
    assert!(!response.metadata.authoritative);
    assert_eq!(
        a_records(&response),
        vec![(
            "www.example.com.".to_string(),
            Ipv4Addr::new(203, 0, 113, 7)
        )]
    );

    let (response, _) = udp_ask(addr, &query("missing.example.com.", RecordType::A)).await;
    assert_eq!(response.metadata.response_code, ResponseCode::NXDomain);

    // The seed: services on nodes whose addresses are host names → CNAMEs + upstream A
    // records (the UDP answer limit counts our own answers only, as the seed shows 6).
    let (response, _) = udp_ask(addr, &query("search.service.consul.", RecordType::A)).await;
    assert!(response.metadata.authoritative && response.metadata.recursion_available);
    assert_eq!(response.answers.len(), 4, "{response:?}");
    let mut cnames: Vec<(String, String)> = response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::CNAME(c) => Some((r.name.to_ascii(), c.0.to_ascii())),
            _ => None,
        })
        .collect();
    cnames.sort();
    let owner = "search.service.consul.".to_string();
    assert_eq!(
        cnames,
        vec![
            (owner.clone(), "www.bing.com.".to_string()),
            (owner, "www.google.com.".to_string())
        ]
    );
    assert_eq!(
        a_records(&response),
        vec![
            ("www.bing.com.".to_string(), Ipv4Addr::new(203, 0, 113, 7)),
            ("www.google.com.".to_string(), Ipv4Addr::new(203, 0, 113, 7))
        ]
    );

    // Over TCP too.
    let mut stream = TcpStream::connect(dns.tcp_addrs()[0]).await.unwrap();
    let response = tcp_ask(&mut stream, &query("www.example.com.", RecordType::A)).await;
    assert_eq!(a_records(&response).len(), 1);
}

#[tokio::test]
async fn negative_port_or_bad_address_reports_errors() {
    // Binding an address that is not local fails and the error is returned.
    let config = DnsConfig::new("consul.", "dc1", vec![]);
    let addr: SocketAddr = "192.0.2.1:0".parse().unwrap();
    assert!(DnsServer::bind(ReadView::default(), config, &[addr]).is_err());
}

/// A rough load check (closed loop, 200 queries in flight over one client socket, 1,000
/// services as in the NSD comparison). Run it in release:
/// `cargo test --release -p cairn --lib dns::tests::udp_throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
#[ignore]
async fn udp_throughput() {
    let mut store = Store::new();
    for i in 0..1000u64 {
        let ip = format!("10.0.{}.{}", i / 250, i % 250 + 1);
        register(
            &mut store,
            i + 1,
            &format!("node{i}"),
            &ip,
            Some((&format!("web{i}"), "")),
        );
    }
    let config = DnsConfig::new("consul", "dc1", vec![]);
    let addr = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 56), 0));
    let dns = DnsServer::bind(ReadView::new(store), config, &[addr]).unwrap();
    let server = dns.udp_addrs()[0];
    let queries: Vec<Vec<u8>> = (0..1000)
        .map(|i| {
            query(&format!("web{i}.service.consul."), RecordType::A)
                .to_vec()
                .unwrap()
        })
        .collect();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let in_flight = 200;
    for q in queries.iter().take(in_flight) {
        socket.send_to(q, server).await.unwrap();
    }
    let mut buf = vec![0u8; 4096];
    let started = std::time::Instant::now();
    let mut answered = 0usize;
    while started.elapsed() < Duration::from_secs(3) {
        match timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await {
            Ok(Ok(_)) => {
                answered += 1;
                socket
                    .send_to(&queries[answered % queries.len()], server)
                    .await
                    .unwrap();
            }
            // A lost datagram: put another query in flight.
            _ => socket
                .send_to(&queries[answered % queries.len()], server)
                .await
                .map(|_| ())
                .unwrap(),
        }
    }
    let qps = answered as f64 / started.elapsed().as_secs_f64();
    println!("udp throughput: {qps:.0} queries/s");
    assert!(answered > 0);
}

#[test]
fn random_and_mutated_datagrams_never_panic() {
    use super::core::{DnsCore, Handled};
    use super::wire::Transport;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let core = DnsCore::new(
        ReadView::new(sample_store()),
        DnsConfig::new("consul", "dc1", vec![]),
        None,
    );
    let mut rng = StdRng::seed_from_u64(7);
    let mut out = Vec::new();
    let valid = [
        query("web.service.consul.", RecordType::A)
            .to_vec()
            .unwrap(),
        query("_web._tcp.service.consul.", RecordType::SRV)
            .to_vec()
            .unwrap(),
        query("1.0.0.10.in-addr.arpa.", RecordType::PTR)
            .to_vec()
            .unwrap(),
    ];
    for round in 0..20_000 {
        let bytes: Vec<u8> = if round % 2 == 0 {
            let len = rng.random_range(0..64);
            (0..len).map(|_| rng.random()).collect()
        } else {
            let mut bytes = valid[round % valid.len()].clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..bytes.len());
                bytes[at] = rng.random();
            }
            bytes
        };
        for transport in [Transport::Udp, Transport::Tcp] {
            if let Handled::Reply = core.handle(&bytes, transport, &mut rng, &mut out) {
                assert!(out.len() >= 12);
            }
        }
    }
}

#[tokio::test]
async fn a_failing_recursor_moves_on_to_the_next() {
    let broken = fake_upstream_with([127, 0, 0, 58], true).await;
    let good = fake_upstream([127, 0, 0, 59]).await;
    let dns = server([127, 0, 0, 60], vec![broken, good]);
    let (response, _) = udp_ask(
        dns.udp_addrs()[0],
        &query("www.example.com.", RecordType::A),
    )
    .await;
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&response).len(), 1);

    let only_broken = server([127, 0, 0, 61], vec![broken]);
    let (response, _) = udp_ask(
        only_broken.udp_addrs()[0],
        &query("www.example.com.", RecordType::A),
    )
    .await;
    assert_eq!(response.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn a_silent_recursor_costs_at_most_the_recursor_timeout() {
    // Bound but never answering.
    let silent = UdpSocket::bind("127.0.0.62:0").await.unwrap();
    let good = fake_upstream([127, 0, 0, 63]).await;
    let mut config = DnsConfig::new("consul", "dc1", vec![silent.local_addr().unwrap(), good]);
    let recursor_timeout = Duration::from_millis(300);
    config.recursor_timeout = recursor_timeout;
    let dns = server_with([127, 0, 0, 64], config);
    // The answer must come from the good recursor once the silent one's try ran out:
    // about one recursor timeout. The bound is generous (three timeouts plus slack, for
    // a loaded machine) but finite: a try that is never cut off fails it, and so does
    // the answer never arriving (`udp_ask` gives up after `WAIT`).
    let bound = recursor_timeout * 3 + Duration::from_secs(3);
    assert!(bound < WAIT, "the bound must fail before udp_ask gives up");
    let started = std::time::Instant::now();
    let (response, _) = udp_ask(
        dns.udp_addrs()[0],
        &query("www.example.com.", RecordType::A),
    )
    .await;
    let spent = started.elapsed();
    assert_eq!(response.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_records(&response).len(), 1);
    assert!(
        spent < bound,
        "{spent:?} for a {recursor_timeout:?} recursor timeout"
    );
}
