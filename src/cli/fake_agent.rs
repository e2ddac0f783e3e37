//! A canned HTTP agent for the client commands' tests: it answers each request with the
//! next (status, body) and records the request lines (`PUT /v1/agent/leave`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

pub struct FakeAgent {
    pub addr: String,
    pub requests: Arc<Mutex<Vec<String>>>,
    /// The body of each request, in order.
    pub bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

/// Serve `answers` in order, one connection each, on a loopback port of 127.0.0.131.
pub fn serve(answers: Vec<(u16, &'static str)>) -> FakeAgent {
    serve_with_headers(
        "127.0.0.131",
        answers
            .into_iter()
            .map(|(status, body)| (status, body.as_bytes().to_vec(), ""))
            .collect(),
    )
}

/// `serve` on a loopback port of `ip`, with binary bodies and extra header lines (each
/// ending in `\r\n`).
pub fn serve_with_headers(ip: &str, answers: Vec<(u16, Vec<u8>, &'static str)>) -> FakeAgent {
    let listener = TcpListener::bind((ip, 0)).expect("bind fake agent");
    let addr = listener.local_addr().expect("addr").to_string();
    let requests = Arc::new(Mutex::new(Vec::new()));
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = requests.clone();
    let seen_bodies = bodies.clone();
    std::thread::spawn(move || {
        for (status, body, headers) in answers {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            seen.lock().expect("lock").push(line.trim_end().to_string());
            // Read the head to its end, then the body it announces.
            let mut length = 0usize;
            loop {
                let mut header = String::new();
                match reader.read_line(&mut header) {
                    Ok(0) | Err(_) => break,
                    Ok(_) if header == "\r\n" => break,
                    Ok(_) => {
                        let lower = header.to_ascii_lowercase();
                        if let Some(v) = lower.strip_prefix("content-length:") {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                }
            }
            let mut request_body = vec![0u8; length];
            let _ = std::io::Read::read_exact(&mut reader, &mut request_body);
            seen_bodies.lock().expect("lock").push(request_body);
            let mut stream = reader.into_inner();
            let _ = write!(
                stream,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{headers}Connection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(&body);
        }
    });
    FakeAgent {
        addr,
        requests,
        bodies,
    }
}

impl FakeAgent {
    pub fn env(&self) -> super::api_client::ClientEnv {
        super::api_client::ClientEnv {
            http_addr: Some(format!("http://{}", self.addr)),
            token: None,
        }
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }

    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.bodies.lock().expect("lock").clone()
    }
}

/// Run a command's `run_with_env` and capture (exit code, stdout, stderr).
pub fn capture(
    run: fn(&[String], &super::api_client::ClientEnv, &mut super::Output<'_>) -> i32,
    args: &[&str],
    env: &super::api_client::ClientEnv,
) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let code = run(
        &args,
        env,
        &mut super::Output {
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
