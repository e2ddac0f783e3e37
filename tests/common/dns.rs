//! A tiny synchronous DNS client (hickory-proto wire format over std sockets) and a fake
//! upstream server, for exact inspection of cairn's DNS answers.

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::A;
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

pub fn query_message(name: &str, rtype: RecordType) -> Message {
    let mut msg = Message::query();
    msg.metadata.id = rand_id();
    msg.metadata.recursion_desired = true;
    msg.add_query(Query::query(Name::from_str(name).expect("name"), rtype));
    msg
}

fn rand_id() -> u16 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(7)
        & 0xffff) as u16
}

/// One UDP query; retries a few times because UDP may drop under load.
pub fn udp_query(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let msg = query_message(name, rtype);
    let bytes = msg.to_vec().expect("encode");
    let sock = UdpSocket::bind("127.0.0.1:0").expect("bind");
    sock.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut buf = vec![0u8; 65535];
    for _ in 0..10 {
        sock.send_to(&bytes, server).expect("send");
        if let Ok((n, _)) = sock.recv_from(&mut buf) {
            let reply = Message::from_vec(&buf[..n]).expect("decode reply");
            assert_eq!(reply.metadata.id, msg.metadata.id);
            return reply;
        }
    }
    panic!("no DNS reply from {server} for {name}");
}

/// One TCP query with the 2-byte length prefix.
pub fn tcp_query(server: SocketAddr, name: &str, rtype: RecordType) -> Message {
    let msg = query_message(name, rtype);
    let bytes = msg.to_vec().expect("encode");
    let mut stream = TcpStream::connect_timeout(&server, Duration::from_secs(5)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    stream
        .write_all(&(bytes.len() as u16).to_be_bytes())
        .expect("write len");
    stream.write_all(&bytes).expect("write");
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).expect("read len");
    let mut buf = vec![0u8; u16::from_be_bytes(len) as usize];
    stream.read_exact(&mut buf).expect("read body");
    Message::from_vec(&buf).expect("decode reply")
}

pub fn rcode(msg: &Message) -> ResponseCode {
    msg.metadata.response_code
}

/// Answer records rendered as `name type data` strings, sorted, for exact comparison.
pub fn render(records: &[Record]) -> Vec<String> {
    let mut out: Vec<String> = records
        .iter()
        .map(|r| format!("{} {} {} {}", r.name, r.ttl, r.record_type(), r.data))
        .collect();
    out.sort();
    out
}

/// A fake upstream DNS server answering A queries from a fixed table; NXDOMAIN otherwise.
pub struct FakeUpstream {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl FakeUpstream {
    pub fn start(addr: &str, table: &[(&str, &str)]) -> FakeUpstream {
        let sock = UdpSocket::bind(addr).expect("bind fake upstream");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .expect("timeout");
        let addr = sock.local_addr().expect("addr");
        let table: Vec<(Name, std::net::Ipv4Addr)> = table
            .iter()
            .map(|(n, ip)| (Name::from_str(n).expect("name"), ip.parse().expect("ip")))
            .collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            while !stop2.load(Ordering::Relaxed) {
                let Ok((n, peer)) = sock.recv_from(&mut buf) else {
                    continue;
                };
                let Ok(req) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut resp = Message::new(req.metadata.id, MessageType::Response, OpCode::Query);
                resp.metadata.recursion_desired = req.metadata.recursion_desired;
                resp.metadata.recursion_available = true;
                let mut found = false;
                for q in &req.queries {
                    resp.add_query(q.clone());
                    for (name, ip) in &table {
                        if q.name().eq_case(name) || q.name() == name {
                            if q.query_type() == RecordType::A {
                                resp.answers.push(Record::from_rdata(
                                    name.clone(),
                                    300,
                                    RData::A(A(*ip)),
                                ));
                            }
                            found = true;
                        }
                    }
                }
                if !found {
                    resp.metadata.response_code = ResponseCode::NXDomain;
                }
                if let Ok(bytes) = resp.to_vec() {
                    let _ = sock.send_to(&bytes, peer);
                }
            }
        });
        FakeUpstream {
            addr,
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for FakeUpstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
