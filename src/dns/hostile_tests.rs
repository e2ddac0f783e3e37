//! Hostile DNS input, message by message: through the core (no sockets) for the parser
//! traps and a seeded random barrage, and through real sockets for the recursion bound.
//! Every reply must parse, carry the query's id, fit the transport's byte budget, and
//! have the rcode Consul (miekg/dns) gives; responses and header-less junk are dropped.

use super::core::{DnsCore, Handled};
use super::tests::{query, sample_store};
use super::wire::{Transport, OUR_EDNS_PAYLOAD, TCP_MESSAGE_LIMIT, UDP_PLAIN_LIMIT};
use super::{DnsConfig, DnsServer};
use actors::ReadView;
use hickory_proto::op::{Edns, Message, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::time::timeout;

fn core() -> DnsCore {
    DnsCore::new(
        ReadView::new(sample_store()),
        DnsConfig::new("consul", "dc1", vec![]),
        None,
    )
}

/// The reply to `bytes`, checked against the transport's budget; `None` when dropped.
fn ask(core: &DnsCore, bytes: &[u8], transport: Transport) -> Option<Message> {
    let mut rng = StdRng::seed_from_u64(1);
    let mut out = Vec::new();
    match core.handle(bytes, transport, &mut rng, &mut out) {
        Handled::Drop => None,
        Handled::Pending(_) => panic!("no recursors, nothing may be pending"),
        Handled::Reply => {
            let has_opt = Message::from_vec(bytes).is_ok_and(|m| m.edns.is_some());
            let budget = match transport {
                Transport::Tcp => TCP_MESSAGE_LIMIT,
                Transport::Udp if has_opt => usize::from(OUR_EDNS_PAYLOAD),
                Transport::Udp => UDP_PLAIN_LIMIT,
            };
            assert!(out.len() <= budget, "{} bytes over {budget}", out.len());
            assert_eq!(out.get(..2), bytes.get(..2), "reply carries the query id");
            Some(Message::from_vec(&out).expect("every reply parses"))
        }
    }
}

fn header(questions: u16, flags: u16) -> Vec<u8> {
    let mut h = vec![0xbe, 0xef];
    h.extend_from_slice(&flags.to_be_bytes());
    h.extend_from_slice(&questions.to_be_bytes());
    h.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    h
}

fn question(wire_name: &[u8], qtype: u16, class: u16) -> Vec<u8> {
    let mut q = wire_name.to_vec();
    q.extend_from_slice(&qtype.to_be_bytes());
    q.extend_from_slice(&class.to_be_bytes());
    q
}

const WEB: &[u8] = b"\x03web\x07service\x06consul\x00";
const RD: u16 = 0x0100;

fn rcode_of(core: &DnsCore, bytes: &[u8]) -> ResponseCode {
    ask(core, bytes, Transport::Udp)
        .expect("answered")
        .metadata
        .response_code
}

#[test]
fn question_section_traps_get_formerr() {
    let core = core();
    // A name that points at itself.
    let mut m = header(1, RD);
    m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    assert_eq!(rcode_of(&core, &m), ResponseCode::FormErr);
    // A pointer forward, past the end.
    let mut m = header(1, RD);
    m.extend_from_slice(&[0xc0, 0xff, 0, 1, 0, 1]);
    assert_eq!(rcode_of(&core, &m), ResponseCode::FormErr);
    // No question, and a count promising more questions than there are.
    assert_eq!(rcode_of(&core, &header(0, RD)), ResponseCode::FormErr);
    let mut m = header(3, RD);
    m.extend(question(WEB, 1, 1));
    assert_eq!(rcode_of(&core, &m), ResponseCode::FormErr);
    // Two questions.
    let mut m = header(2, RD);
    m.extend(question(WEB, 1, 1));
    m.extend(question(WEB, 28, 1));
    assert_eq!(rcode_of(&core, &m), ResponseCode::FormErr);
    // A 64-byte label, and a name over 255 bytes.
    let mut long_label = vec![64u8];
    long_label.extend(std::iter::repeat_n(b'x', 64));
    long_label.push(0);
    let mut m = header(1, RD);
    m.extend(question(&long_label, 1, 1));
    assert_eq!(rcode_of(&core, &m), ResponseCode::FormErr);
    let mut too_long = Vec::new();
    for _ in 0..5 {
        too_long.push(63u8);
        too_long.extend(std::iter::repeat_n(b'y', 63));
    }
    too_long.push(0);
    let mut m = header(1, RD);
    m.extend(question(&too_long, 1, 1));
    assert_eq!(rcode_of(&core, &m), ResponseCode::FormErr);
}

#[test]
fn formerr_for_many_questions_still_fits_512_bytes() {
    // 300 questions of 6 bytes each (compression pointers to the first name): echoing
    // them all would exceed the classic UDP budget, so the reply drops the question
    // section and sets TC instead.
    let core = core();
    let mut m = header(300, RD);
    m.extend(question(WEB, 1, 1));
    for _ in 1..300 {
        m.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1]);
    }
    let reply = ask(&core, &m, Transport::Udp).expect("answered");
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    assert!(reply.queries.is_empty());
    assert!(reply.metadata.truncation);
    // Over TCP the budget is large enough to echo them.
    let reply = ask(&core, &m, Transport::Tcp).expect("answered");
    assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    assert_eq!(reply.queries.len(), 300);
}

#[test]
fn deep_and_odd_names_are_answered_not_crashed() {
    let core = core();
    // 127 one-byte labels (the most that fit in 255 bytes): outside the domain.
    let deep: String = "a.".repeat(127);
    let bytes = query(&deep, RecordType::A).to_vec().unwrap();
    assert_eq!(rcode_of(&core, &bytes), ResponseCode::Refused);
    // As deep as fits inside the domain: a node that does not exist.
    let deep_node = format!("{}node.consul.", "a.".repeat(120));
    let bytes = query(&deep_node, RecordType::A).to_vec().unwrap();
    let reply = ask(&core, &bytes, Transport::Udp).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(reply.authorities.len(), 1, "SOA");
    // Binary bytes, dots and backslashes inside labels.
    let odd = Name::from_labels(vec![
        b"\x00\xff.\\".to_vec(),
        b"web".to_vec(),
        b"service".to_vec(),
        b"consul".to_vec(),
    ])
    .unwrap();
    let mut message = query("x.consul.", RecordType::SRV);
    message.queries[0].set_name(odd);
    let reply = ask(&core, &message.to_vec().unwrap(), Transport::Udp).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn classes_types_and_opcodes() {
    let core = core();
    // Unknown classes are answered as IN (as Consul does: miekg/dns ignores the class).
    for class in [3u16, 254, 255, 4242] {
        let mut m = header(1, RD);
        m.extend(question(WEB, 1, class));
        let reply = ask(&core, &m, Transport::Udp).expect("answered");
        assert_eq!(
            reply.metadata.response_code,
            ResponseCode::NoError,
            "{class}"
        );
    }
    // A type we never have records of: NODATA with the SOA.
    let mut m = header(1, RD);
    m.extend(question(WEB, 65280, 1));
    let reply = ask(&core, &m, Transport::Udp).unwrap();
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert!(reply.answers.is_empty());
    assert_eq!(reply.authorities.len(), 1);
    // Zone transfers, and every other opcode: NOTIMP (or FORMERR when unparsable).
    for qtype in [251u16, 252] {
        let mut m = header(1, RD);
        m.extend(question(WEB, qtype, 1));
        assert_eq!(rcode_of(&core, &m), ResponseCode::NotImp, "{qtype}");
    }
    for opcode in 1..16u16 {
        let mut m = header(1, RD | (opcode << 11));
        m.extend(question(WEB, 1, 1));
        let rcode = rcode_of(&core, &m);
        assert!(
            matches!(rcode, ResponseCode::NotImp | ResponseCode::FormErr),
            "opcode {opcode}: {rcode:?}"
        );
    }
    // Responses are never answered, whatever they contain.
    let mut m = header(1, 0x8000 | RD);
    m.extend(question(WEB, 1, 1));
    assert!(ask(&core, &m, Transport::Udp).is_none());
    assert!(ask(&core, &m, Transport::Tcp).is_none());
}

#[test]
fn edns_sizes_are_clamped_to_our_range() {
    let core = core();
    for (size, budget) in [
        (0u16, UDP_PLAIN_LIMIT),
        (1, UDP_PLAIN_LIMIT),
        (511, UDP_PLAIN_LIMIT),
        (1232, 1232),
        (65535, usize::from(OUR_EDNS_PAYLOAD)),
    ] {
        let mut message = query("big.service.consul.", RecordType::SRV);
        let mut edns = Edns::new();
        edns.set_max_payload(size);
        message.edns = Some(edns);
        let bytes = message.to_vec().unwrap();
        let mut out = Vec::new();
        let mut rng = StdRng::seed_from_u64(2);
        assert!(matches!(
            core.handle(&bytes, Transport::Udp, &mut rng, &mut out),
            Handled::Reply
        ));
        assert!(out.len() <= budget, "EDNS {size}: {} > {budget}", out.len());
        let reply = Message::from_vec(&out).unwrap();
        assert!(!reply.answers.is_empty(), "EDNS {size}");
    }
    // An OPT record cut short: FORMERR, not a crash.
    let mut m = header(1, RD);
    m[11] = 1;
    m.extend(question(WEB, 1, 1));
    m.extend_from_slice(&[0, 0, 41, 0x10]);
    assert_eq!(rcode_of(&core, &m), ResponseCode::FormErr);
}

/// A random name: labels of random bytes (printable, binary, dots, backslashes, UTF-8),
/// often ending in one of our forms so the answer builder is reached.
fn random_name(rng: &mut StdRng) -> Option<Name> {
    const SUFFIXES: [&[&str]; 7] = [
        &["node", "consul"],
        &["service", "consul"],
        &["service", "dc1", "consul"],
        &["addr", "consul"],
        &["in-addr", "arpa"],
        &["consul"],
        &[],
    ];
    let mut labels: Vec<Vec<u8>> = Vec::new();
    for _ in 0..rng.random_range(0..6) {
        let len = rng.random_range(1..20);
        let label = match rng.random_range(0..4) {
            0 => (0..len).map(|_| rng.random()).collect(),
            1 => (0..len)
                .map(|_| b"abc_-.\\0f9"[rng.random_range(0..10)])
                .collect(),
            2 => "é名_web".as_bytes().to_vec(),
            _ => ["web", "big", "n1", "_web", "_tcp", "c000020a", "1", "10"]
                [rng.random_range(0..8)]
            .as_bytes()
            .to_vec(),
        };
        labels.push(label);
    }
    let suffix = SUFFIXES[rng.random_range(0..SUFFIXES.len())];
    labels.extend(suffix.iter().map(|l| l.as_bytes().to_vec()));
    Name::from_labels(labels).ok()
}

#[test]
fn random_names_types_and_sizes_always_get_a_well_formed_reply() {
    let core = core();
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::SRV,
        RecordType::TXT,
        RecordType::PTR,
        RecordType::ANY,
        RecordType::SOA,
        RecordType::NS,
        RecordType::CNAME,
        RecordType::MX,
        RecordType::Unknown(4242),
    ];
    let mut rng = StdRng::seed_from_u64(0xd05);
    let mut answered = 0;
    for _ in 0..3000 {
        let Some(name) = random_name(&mut rng) else {
            continue;
        };
        let mut message = query("x.", types[rng.random_range(0..types.len())]);
        message.queries[0].set_name(name.clone());
        message.metadata.id = rng.random();
        if rng.random_bool(0.3) {
            let mut edns = Edns::new();
            edns.set_max_payload(rng.random());
            message.edns = Some(edns);
        }
        let Ok(bytes) = message.to_vec() else {
            continue;
        };
        let transport = if rng.random_bool(0.5) {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        let reply = ask(&core, &bytes, transport).expect("a query is always answered");
        assert_eq!(reply.metadata.id, message.metadata.id);
        assert!(
            matches!(
                reply.metadata.response_code,
                ResponseCode::NoError | ResponseCode::NXDomain | ResponseCode::Refused
            ),
            "{name}: {:?}",
            reply.metadata.response_code
        );
        if let [q] = reply.queries.as_slice() {
            assert_eq!(q.name(), &name, "question echoed");
        }
        answered += 1;
    }
    assert!(answered > 2500, "{answered}");
}

#[tokio::test]
async fn recursion_queue_is_bounded() {
    // One pending recursion at most, and an upstream that never answers: of two queries
    // sent together, one waits for the recursor timeout (then SERVFAIL), the other is
    // dropped at once; afterwards the slot is free again.
    let silent = UdpSocket::bind("127.0.0.41:0").await.unwrap();
    let mut config = DnsConfig::new("consul", "dc1", vec![silent.local_addr().unwrap()]);
    config.max_pending_recursions = 1;
    config.recursor_timeout = Duration::from_millis(300);
    let addr = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 42), 0));
    let dns = DnsServer::bind(ReadView::new(sample_store()), config, &[addr]).unwrap();
    let server = dns.udp_addrs()[0];
    let ask_outside = |id: u16| {
        let mut message = query("www.example.com.", RecordType::A);
        message.metadata.id = id;
        message.to_vec().unwrap()
    };
    let first = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let second = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    first.send_to(&ask_outside(1), server).await.unwrap();
    second.send_to(&ask_outside(2), server).await.unwrap();
    let wait = Duration::from_secs(3);
    let mut buf = vec![0u8; 4096];
    let (got_first, got_second) = tokio::join!(timeout(wait, first.recv_from(&mut buf)), async {
        let mut buf = vec![0u8; 4096];
        timeout(wait, second.recv_from(&mut buf)).await.is_ok()
    });
    let replies = usize::from(got_first.is_ok()) + usize::from(got_second);
    assert_eq!(replies, 1, "exactly one query got a slot");
    // The slot was released: a later query is served (SERVFAIL from the silent upstream).
    let third = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    third.send_to(&ask_outside(3), server).await.unwrap();
    let (len, _) = timeout(wait, third.recv_from(&mut buf))
        .await
        .expect("slot freed")
        .unwrap();
    let reply = Message::from_vec(&buf[..len]).unwrap();
    assert_eq!(reply.metadata.id, 3);
    assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
}

#[tokio::test]
async fn a_tcp_client_that_never_reads_answers_loses_its_slot() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpSocket, TcpStream};
    // One connection at most. The first client pipelines thousands of queries with large
    // answers and never reads them: once the socket buffers fill, the server's write
    // stalls; after the idle timeout it must give the slot up so others are served.
    let mut config = DnsConfig::new("consul", "dc1", vec![]);
    config.max_tcp_connections = 1;
    config.tcp_idle_timeout = Duration::from_millis(300);
    let addr = SocketAddr::from((Ipv4Addr::new(127, 0, 0, 44), 0));
    let dns = DnsServer::bind(ReadView::new(sample_store()), config, &[addr]).unwrap();
    let server = dns.tcp_addrs()[0];

    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut greedy = socket.connect(server).await.unwrap();
    let one = query("big.service.consul.", RecordType::SRV)
        .to_vec()
        .unwrap();
    let mut framed = (one.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&one);
    let pipeline: Vec<u8> = framed.repeat(3000);
    // Our own write may stall too once the server stops reading; bound it.
    let _ = timeout(Duration::from_secs(5), greedy.write_all(&pipeline)).await;

    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let mut other = TcpStream::connect(server).await.unwrap();
        let small = query("n1.node.consul.", RecordType::A).to_vec().unwrap();
        let mut framed = (small.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&small);
        let _ = other.write_all(&framed).await;
        let mut length = [0u8; 2];
        if let Ok(Ok(_)) = timeout(Duration::from_millis(500), other.read_exact(&mut length)).await
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the stalled connection kept the only slot"
        );
    }
    drop(greedy);
}
