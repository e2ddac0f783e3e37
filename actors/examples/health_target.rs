//! A small, fast HTTP target for health-check benchmarks: many "services" behind one
//! listener, each up or down on command.
//!
//! `health_target ADDR` serves:
//! - `GET /health/N`: 200 "ok", or 500 "down" once N was taken down;
//! - `GET /down/N`, `GET /up/N`: take instance N down or bring it back (200).
//!
//! HTTP/1.1 keep-alive is honoured (a request with `Connection: close` closes).
//! One thread, no framework: it must answer thousands of probes a second without
//! competing with the agent it is measuring for CPU.

use std::cell::RefCell;
use std::collections::HashSet;
use std::rc::Rc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.5.11:9000".to_string());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = TcpListener::bind(&addr).await.expect("bind");
        eprintln!("health_target listening on {addr}");
        let down: Rc<RefCell<HashSet<u32>>> = Rc::default();
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let down = down.clone();
            tokio::task::spawn_local(async move {
                // HTTP/1.1 keep-alive unless the client asks to close.
                let mut pending = Vec::with_capacity(512);
                let mut buf = [0u8; 1024];
                loop {
                    let head_end = loop {
                        if let Some(i) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        if pending.len() > 16 * 1024 {
                            return;
                        }
                        match stream.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => pending.extend_from_slice(&buf[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&pending[..head_end]).to_ascii_lowercase();
                    pending.drain(..head_end);
                    let close = head.contains("\r\nconnection: close");
                    let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                    let mut parts = path.trim_start_matches('/').splitn(2, '/');
                    let verb = parts.next().unwrap_or("");
                    let n: Option<u32> = parts.next().and_then(|n| n.parse().ok());
                    let (status, body) = match (verb, n) {
                        ("health", Some(n)) if down.borrow().contains(&n) => {
                            ("500 Internal Server Error", "down")
                        }
                        ("health", Some(_)) => ("200 OK", "ok"),
                        ("down", Some(n)) => {
                            down.borrow_mut().insert(n);
                            ("200 OK", "taken down")
                        }
                        ("up", Some(n)) => {
                            down.borrow_mut().remove(&n);
                            ("200 OK", "brought up")
                        }
                        _ => ("404 Not Found", "no such path"),
                    };
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n{}\r\n{body}",
                        body.len(),
                        if close { "Connection: close\r\n" } else { "" }
                    );
                    if stream.write_all(response.as_bytes()).await.is_err() || close {
                        let _ = stream.shutdown().await;
                        return;
                    }
                }
            });
        }
    });
}
