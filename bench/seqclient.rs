//! One client, one kept-alive HTTP/1.1 connection, requests one after the other: the
//! load generator of the one-client figures in bench/raft.py and bench/locks.py.
//!
//! Why a compiled client: the Python loop those scripts used spends about 100 us of its
//! own inside every timed request (building the request, two `send`s for head and body,
//! parsing the response), a constant added to both systems' figures that pulls their
//! ratio toward 1. This one sends each request in one `write` and parses only what it
//! needs, so the figures are the servers' (plus one loopback round trip). Standard
//! library only; the bench scripts build it with `rustc -O`.
//!
//! ```text
//! seqclient request    HOST:PORT SECS WARMUP METHOD PATH BODY_FILE
//! seqclient cairn-lock HOST:PORT SECS WARMUP SESSION KEY   # PUT ?acquire, PUT ?release
//! seqclient etcd-lock  HOST:PORT SECS WARMUP LEASE NAME_B64 # /v3/lock/lock, /v3/lock/unlock
//! ```
//! Prints one line: `count=N secs=S p50_us=P p99_us=Q errors=E` (a lock round trip is
//! one count: its two requests). Every call is bounded by a 2 s socket timeout; a failed
//! call counts as an error and the connection is opened again.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(2);

struct Conn {
    addr: String,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

impl Conn {
    fn new(addr: &str) -> Conn {
        Conn {
            addr: addr.to_string(),
            stream: None,
            buf: Vec::with_capacity(8192),
        }
    }

    fn stream(&mut self) -> io::Result<&mut TcpStream> {
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.addr)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(TIMEOUT))?;
            s.set_write_timeout(Some(TIMEOUT))?;
            self.stream = Some(s);
        }
        Ok(self.stream.as_mut().expect("connected above"))
    }

    /// One request; the status and body. Any failure drops the connection.
    fn call(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        let result = self.try_call(method, path, body);
        if result.is_err() {
            self.stream = None;
        }
        result
    }

    fn try_call(&mut self, method: &str, path: &str, body: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        self.stream()?.write_all(&req)?;
        self.buf.clear();
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill()?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("no status"))?;
        let header = |name: &str| {
            head.lines()
                .find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string()))
        };
        let body = if let Some(len) = header("content-length:") {
            let len: usize = len.parse().map_err(|_| bad("content-length"))?;
            while self.buf.len() < head_end + len {
                self.fill()?;
            }
            self.buf[head_end..head_end + len].to_vec()
        } else if header("transfer-encoding:").is_some_and(|v| v.contains("chunked")) {
            self.read_chunked(head_end)?
        } else {
            return Err(bad("response without a length"));
        };
        if header("connection:").is_some_and(|v| v.contains("close")) {
            self.stream = None;
        }
        Ok((status, body))
    }

    fn read_chunked(&mut self, mut at: usize) -> io::Result<Vec<u8>> {
        let mut body = Vec::new();
        loop {
            let line_end = loop {
                if let Some(i) = find(&self.buf[at..], b"\r\n") {
                    break at + i;
                }
                self.fill()?;
            };
            let size_text = String::from_utf8_lossy(&self.buf[at..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| bad("chunk size"))?;
            at = line_end + 2;
            while self.buf.len() < at + size + 2 {
                self.fill()?;
            }
            body.extend_from_slice(&self.buf[at..at + size]);
            at += size + 2;
            if size == 0 {
                return Ok(body);
            }
        }
    }

    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 8192];
        let n = self.stream()?.read(&mut chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"));
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// One unit of work (a request, or a lock's two); Ok only if every answer was the
/// expected one.
type Step<'a> = Box<dyn FnMut(&mut Conn) -> io::Result<()> + 'a>;

fn expect_ok(answer: (u16, Vec<u8>), want_body: Option<&[u8]>) -> io::Result<Vec<u8>> {
    let (status, body) = answer;
    if status != 200 {
        return Err(bad(&format!("status {status}")));
    }
    if let Some(want) = want_body {
        if body.trim_ascii() != want {
            return Err(bad("unexpected answer"));
        }
    }
    Ok(body)
}

fn step(mode: &str, args: &[String]) -> Result<Step<'static>, String> {
    let arg = |i: usize| {
        args.get(i)
            .cloned()
            .ok_or(format!("{mode}: missing argument"))
    };
    match mode {
        "request" => {
            let (method, path) = (arg(0)?, arg(1)?);
            let body = std::fs::read(arg(2)?).map_err(|e| e.to_string())?;
            Ok(Box::new(move |c: &mut Conn| {
                expect_ok(c.call(&method, &path, &body)?, None).map(drop)
            }))
        }
        "cairn-lock" => {
            let (session, key) = (arg(0)?, arg(1)?);
            let acquire = format!("/v1/kv/{key}?acquire={session}");
            let release = format!("/v1/kv/{key}?release={session}");
            Ok(Box::new(move |c: &mut Conn| {
                expect_ok(c.call("PUT", &acquire, b"")?, Some(b"true"))?;
                expect_ok(c.call("PUT", &release, b"")?, Some(b"true")).map(drop)
            }))
        }
        "etcd-lock" => {
            let (lease, name) = (arg(0)?, arg(1)?);
            let lock = format!(r#"{{"name":"{name}","lease":"{lease}"}}"#).into_bytes();
            Ok(Box::new(move |c: &mut Conn| {
                let body = expect_ok(c.call("POST", "/v3/lock/lock", &lock)?, None)?;
                let text = String::from_utf8_lossy(&body);
                let key = text
                    .split("\"key\":\"")
                    .nth(1)
                    .and_then(|rest| rest.split('"').next())
                    .ok_or_else(|| bad("lock answer without a key"))?;
                let unlock = format!(r#"{{"key":"{key}"}}"#);
                expect_ok(c.call("POST", "/v3/lock/unlock", unlock.as_bytes())?, None).map(drop)
            }))
        }
        _ => Err(format!("unknown mode {mode:?}")),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 4 {
        eprintln!("usage: seqclient MODE HOST:PORT SECS WARMUP ARGS... (see the source)");
        std::process::exit(2);
    }
    let secs: f64 = args[2].parse().unwrap_or(5.0);
    let warmup: f64 = args[3].parse().unwrap_or(1.0);
    let mut work = match step(&args[0], &args[4..]) {
        Ok(work) => work,
        Err(e) => {
            eprintln!("seqclient: {e}");
            std::process::exit(2);
        }
    };
    let mut conn = Conn::new(&args[1]);
    let warm_end = Instant::now() + Duration::from_secs_f64(warmup);
    while Instant::now() < warm_end {
        let _ = work(&mut conn);
    }
    let (mut took, mut errors) = (Vec::new(), 0u64);
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    loop {
        let t0 = Instant::now();
        if t0 >= end {
            break;
        }
        if work(&mut conn).is_err() {
            errors += 1;
        }
        took.push(t0.elapsed().as_secs_f64() * 1e6);
    }
    let elapsed = start.elapsed().as_secs_f64();
    took.sort_by(f64::total_cmp);
    let pick = |q: f64| {
        took.get(((took.len() as f64 * q) as usize).min(took.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    println!(
        "count={} secs={elapsed:.3} p50_us={:.1} p99_us={:.1} errors={errors}",
        took.len(),
        pick(0.5),
        pick(0.99)
    );
}
