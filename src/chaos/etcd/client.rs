//! [`EtcdKv`]: the chaos harness's [`KvClient`] over one etcd member's v3 JSON gateway,
//! and how its failures map onto [`OpError`].

use std::time::Duration;

use serde_json::Value;

use super::json;
use crate::chaos::target::{KvClient, OpError, ReadMode, Versioned};

/// A bound on any answer body (a chaos key's range is a few hundred bytes; a
/// `local_snapshot` of a run's keys is well below this).
const MAX_BODY_BYTES: u64 = 16 * 1024 * 1024;

/// Blocking HTTP to one member; every request gives up after the timeout it was built
/// with (connect, send and answer together).
pub struct EtcdKv {
    /// `http://ip:port`, no trailing slash.
    base: String,
    agent: ureq::Agent,
}

impl EtcdKv {
    /// `api_addr` is the member's client `host:port`.
    pub fn new(api_addr: &str, timeout: Duration) -> EtcdKv {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_global(Some(timeout))
            .build();
        EtcdKv {
            base: format!("http://{api_addr}"),
            agent: config.into(),
        }
    }

    /// POSTs `body` to `path`; the answer body of a 200, else the classified failure.
    pub(super) fn call(&self, path: &str, body: &Value) -> Result<Vec<u8>, OpError> {
        let url = format!("{}{path}", self.base);
        let mut response = self
            .agent
            .post(&url)
            .header("Content-Type", "application/json")
            .send(body.to_string().as_bytes())
            .map_err(|e| transport_error(&e))?;
        let status = response.status().as_u16();
        let answer = response
            .body_mut()
            .with_config()
            .limit(MAX_BODY_BYTES)
            .read_to_vec()
            .map_err(|e| transport_error(&e))?;
        if status == 200 {
            Ok(answer)
        } else {
            Err(status_error(status, &json::error_message(&answer)))
        }
    }

    /// Every key under `prefix` as this member holds it (serializable range).
    pub fn range_prefix_local(&self, prefix: &str) -> Result<Vec<json::Kv>, OpError> {
        let answer = self.call("/v3/kv/range", &json::range_prefix_serializable(prefix))?;
        json::parse_range(&answer).map_err(bad_answer)
    }
}

impl KvClient for EtcdKv {
    fn get(&mut self, key: &str, mode: ReadMode) -> Result<Option<Versioned>, OpError> {
        let serializable = mode == ReadMode::Stale;
        let answer = self.call("/v3/kv/range", &json::range_key(key, serializable))?;
        let kvs = json::parse_range(&answer).map_err(bad_answer)?;
        // A one-key range holds that key or nothing; anything else is not an answer to it.
        match kvs.into_iter().find(|kv| kv.key == key) {
            Some(kv) => Ok(Some(Versioned {
                value: kv.value,
                version: kv.mod_revision,
            })),
            None => Ok(None),
        }
    }

    fn put(&mut self, key: &str, value: &str) -> Result<(), OpError> {
        let answer = self.call("/v3/kv/put", &json::put(key, value))?;
        json::parse_ack(&answer).map_err(bad_answer)
    }

    fn cas(&mut self, key: &str, expect: Option<u64>, value: &str) -> Result<bool, OpError> {
        let answer = self.call("/v3/kv/txn", &json::cas(key, expect, value))?;
        json::parse_txn(&answer).map_err(bad_answer)
    }

    fn delete(&mut self, key: &str) -> Result<(), OpError> {
        let answer = self.call("/v3/kv/deleterange", &json::delete(key))?;
        json::parse_ack(&answer).map_err(bad_answer)
    }
}

fn op_error(kind: &str, definitely_not_applied: bool, message: String) -> OpError {
    OpError {
        kind: kind.to_string(),
        definitely_not_applied,
        message,
    }
}

/// A 200 whose body is not what the request answers: the request was served, so a
/// write may have been applied.
fn bad_answer(message: String) -> OpError {
    op_error("bad-response", false, message)
}

/// A failure before any HTTP status arrived. Only a connection that was never made
/// (refused, no route, name not resolved, connect timeout) proves the request never
/// left; anything after the connection opened — a timeout waiting for the answer, a
/// reset, a half-read body — may follow a commit.
fn transport_error(e: &ureq::Error) -> OpError {
    use std::io::ErrorKind;
    let message = e.to_string();
    match e {
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => op_error("refused", true, message),
            ErrorKind::AddrNotAvailable | ErrorKind::NetworkUnreachable => {
                op_error("unreachable", true, message)
            }
            ErrorKind::TimedOut | ErrorKind::WouldBlock => op_error("timeout", false, message),
            ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted | ErrorKind::BrokenPipe => {
                op_error("reset", false, message)
            }
            ErrorKind::UnexpectedEof => op_error("reset", false, message),
            _ => op_error("io", false, message),
        },
        ureq::Error::ConnectionFailed => op_error("refused", true, message),
        ureq::Error::HostNotFound => op_error("unreachable", true, message),
        ureq::Error::Timeout(ureq::Timeout::Resolve | ureq::Timeout::Connect) => {
            op_error("connect-timeout", true, message)
        }
        ureq::Error::Timeout(_) => op_error("timeout", false, message),
        _ => op_error("unknown-outcome", false, message),
    }
}

/// A non-200 answer. A 4xx is the gateway or etcd refusing the request before acting
/// on it (bad request, too many requests): definite. Everything else may follow a
/// commit: etcd answers "request timed out" or "leader changed" for proposals it has
/// already handed to Raft, and "no leader" / "stopped" can come from a member that lost
/// its leader after proposing.
fn status_error(status: u16, message: &str) -> OpError {
    let text = if message.is_empty() {
        format!("HTTP {status}")
    } else {
        format!("HTTP {status}: {message}")
    };
    if (400..500).contains(&status) {
        let kind = if message.contains("too many requests") {
            "too-many-requests".to_string()
        } else {
            format!("http-{status}")
        };
        return op_error(&kind, true, text);
    }
    let kind = if message.contains("request timed out") {
        "server-timeout".to_string()
    } else if message.contains("leader changed") {
        "leader-changed".to_string()
    } else if message.contains("no leader") {
        "no-leader".to_string()
    } else if message.contains("server stopped") || message.contains("stopping") {
        "stopped".to_string()
    } else {
        format!("http-{status}")
    };
    op_error(&kind, false, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_not_definite_and_named_by_their_message() {
        let cases = [
            (503, "etcdserver: request timed out", "server-timeout"),
            (
                503,
                "etcdserver: request timed out, possibly due to previous leader failure",
                "server-timeout",
            ),
            (503, "etcdserver: leader changed", "leader-changed"),
            (503, "etcdserver: no leader", "no-leader"),
            (503, "etcdserver: server stopped", "stopped"),
            (504, "context deadline exceeded", "http-504"),
            (500, "", "http-500"),
        ];
        for (status, message, kind) in cases {
            let e = status_error(status, message);
            assert_eq!(e.kind, kind, "{message}");
            assert!(!e.definitely_not_applied, "{message}");
        }
    }

    #[test]
    fn client_errors_are_definite() {
        let e = status_error(400, "etcdserver: key is not provided");
        assert_eq!(e.kind, "http-400");
        assert!(e.definitely_not_applied);
        assert_eq!(e.message, "HTTP 400: etcdserver: key is not provided");
        let e = status_error(429, "etcdserver: too many requests");
        assert_eq!(e.kind, "too-many-requests");
        assert!(e.definitely_not_applied);
    }

    #[test]
    fn transport_errors_are_definite_only_before_the_connection() {
        let io = |kind| ureq::Error::Io(std::io::Error::new(kind, "x"));
        use std::io::ErrorKind::*;
        let e = transport_error(&io(ConnectionRefused));
        assert_eq!(
            (e.kind.as_str(), e.definitely_not_applied),
            ("refused", true)
        );
        let e = transport_error(&io(ConnectionReset));
        assert_eq!(
            (e.kind.as_str(), e.definitely_not_applied),
            ("reset", false)
        );
        let e = transport_error(&ureq::Error::Timeout(ureq::Timeout::Global));
        assert_eq!(
            (e.kind.as_str(), e.definitely_not_applied),
            ("timeout", false)
        );
        let e = transport_error(&ureq::Error::Timeout(ureq::Timeout::Connect));
        assert!(e.definitely_not_applied);
        let e = transport_error(&ureq::Error::BodyExceedsLimit(1));
        assert_eq!(
            (e.kind.as_str(), e.definitely_not_applied),
            ("unknown-outcome", false)
        );
    }

    #[test]
    fn a_closed_port_is_refused_and_definite() {
        // Bind, learn the port, close: nothing listens there now.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.1.59:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let mut kv = EtcdKv::new(&format!("127.0.1.59:{port}"), Duration::from_secs(2));
        let e = kv.put("k", "v").unwrap_err();
        assert_eq!(e.kind, "refused", "{e}");
        assert!(e.definitely_not_applied);
    }
}
