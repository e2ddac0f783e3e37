//! cairn as the chaos harness's system under test: [`CairnKv`] is a KV client of one
//! agent's HTTP API, and [`LocalCluster`] is the [`Cluster`] it faults.
//!
//! Error classification follows [`OpError`]: only what certainly did not take effect
//! is `definitely_not_applied` (a refused connection or a connect timeout: nothing
//! was sent; a 4xx; "No cluster leader" and "No known Consul servers": cairn answers
//! them only when it proposed nothing). Every other failure after the request left —
//! timeouts, resets, other 5xx ("leadership lost", "may or may not have been
//! applied", even "timed out enqueuing operation", to stay on the safe side) — is an
//! unknown outcome.

use super::http;
use super::process::ProcState;
use super::spec::Role;
use super::{ClusterError, LocalCluster};
use crate::chaos::target::{Cluster, FaultKind, KvClient, NodeInfo, OpError, ReadMode, Versioned};
use crate::cli::api_client::kv_path;
use crate::cli::operator_cmd::parse_raft_configuration;
use base64::Engine;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// A KV client bound to one agent; every request gives up after its timeout.
pub struct CairnKv {
    base: String,
    agent: ureq::Agent,
}

impl CairnKv {
    /// `http_addr`: `ip:port` of the agent's HTTP API.
    pub fn new(http_addr: &str, timeout: Duration) -> CairnKv {
        CairnKv {
            base: format!("http://{http_addr}"),
            agent: http::agent(timeout),
        }
    }

    /// One request: `(status, body)` or the classified transport failure.
    fn send(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<&str>,
    ) -> Result<(u16, String), OpError> {
        let url = format!("{}{path_and_query}", self.base);
        let result = match method {
            "PUT" => self.agent.put(&url).send(body.unwrap_or_default()),
            "DELETE" => self.agent.delete(&url).call(),
            _ => self.agent.get(&url).call(),
        };
        let mut response = result.map_err(|e| transport_error(method, &url, e))?;
        let status = response.status().as_u16();
        let text = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| transport_error(method, &url, e))?;
        Ok((status, text))
    }

    /// A write's `true`/`false` answer.
    fn write(&self, method: &str, path: &str, body: Option<&str>) -> Result<bool, OpError> {
        let (status, text) = self.send(method, path, body)?;
        if status != 200 {
            return Err(status_error(status, &text));
        }
        match text.trim() {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(OpError {
                kind: "bad-answer".into(),
                definitely_not_applied: false,
                message: format!("{method} {path}: 200 with {other:?}, want true or false"),
            }),
        }
    }
}

impl KvClient for CairnKv {
    fn get(&mut self, key: &str, mode: ReadMode) -> Result<Option<Versioned>, OpError> {
        let query = match mode {
            ReadMode::Default => "",
            ReadMode::Consistent => "?consistent",
            ReadMode::Stale => "?stale",
        };
        let path = format!("{}{query}", kv_path(key));
        let (status, text) = self.send("GET", &path, None)?;
        match status {
            404 => Ok(None),
            200 => parse_entry(&text).map(Some).map_err(|message| OpError {
                kind: "bad-answer".into(),
                definitely_not_applied: true,
                message: format!("GET {path}: {message}"),
            }),
            _ => Err(status_error(status, &text)),
        }
    }

    fn put(&mut self, key: &str, value: &str) -> Result<(), OpError> {
        let path = kv_path(key);
        match self.write("PUT", &path, Some(value))? {
            true => Ok(()),
            false => Err(OpError {
                kind: "answered-false".into(),
                definitely_not_applied: true,
                message: format!("PUT {path}: answered false"),
            }),
        }
    }

    fn cas(&mut self, key: &str, expect: Option<u64>, value: &str) -> Result<bool, OpError> {
        let path = format!("{}?cas={}", kv_path(key), expect.unwrap_or(0));
        self.write("PUT", &path, Some(value))
    }

    fn delete(&mut self, key: &str) -> Result<(), OpError> {
        let path = kv_path(key);
        match self.write("DELETE", &path, None)? {
            true => Ok(()),
            false => Err(OpError {
                kind: "answered-false".into(),
                definitely_not_applied: true,
                message: format!("DELETE {path}: answered false"),
            }),
        }
    }
}

/// The value and ModifyIndex of the one entry a KV GET answers.
fn parse_entry(body: &str) -> Result<Versioned, String> {
    let entries: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let entry = entries
        .as_array()
        .and_then(|a| a.first())
        .ok_or("not a list of entries")?;
    let version = entry["ModifyIndex"].as_u64().ok_or("no ModifyIndex")?;
    let value = match entry["Value"].as_str() {
        None => String::new(), // a key written with an empty body: Value is null
        Some(b64) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| format!("Value is not base64: {e}"))?;
            String::from_utf8(raw).map_err(|_| "Value is not UTF-8".to_string())?
        }
    };
    Ok(Versioned { value, version })
}

/// Classify a failure to get an answer at all.
fn transport_error(method: &str, url: &str, e: ureq::Error) -> OpError {
    use std::io::ErrorKind;
    use ureq::Timeout;
    let (kind, nothing_sent) = match &e {
        ureq::Error::Io(io) if io.kind() == ErrorKind::ConnectionRefused => ("refused", true),
        ureq::Error::Timeout(Timeout::Connect | Timeout::Resolve) => ("connect-timeout", true),
        ureq::Error::ConnectionFailed | ureq::Error::HostNotFound => ("connect-failed", true),
        ureq::Error::Timeout(_) => ("timeout", false),
        ureq::Error::Io(io)
            if matches!(
                io.kind(),
                ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
                    | ErrorKind::UnexpectedEof
            ) =>
        {
            ("reset", false)
        }
        ureq::Error::Io(_) => ("io", false),
        _ => ("http-error", false),
    };
    OpError {
        kind: kind.into(),
        definitely_not_applied: nothing_sent,
        message: format!("{method} {url}: {e}"),
    }
}

/// Classify an answer other than the one wanted.
fn status_error(status: u16, body: &str) -> OpError {
    let body = body.trim();
    let (kind, not_applied) = if body.contains("may or may not have been applied") {
        ("unknown-outcome".to_string(), false)
    } else if status == 500 && body == "No cluster leader" {
        ("no-leader".to_string(), true)
    } else if status == 500 && body == "No known Consul servers" {
        ("no-servers".to_string(), true)
    } else if (400..500).contains(&status) {
        (format!("http-{status}"), true)
    } else {
        (format!("http-{status}"), false)
    };
    OpError {
        kind,
        definitely_not_applied: not_applied,
        message: format!("{status}: {body}"),
    }
}

impl Cluster for LocalCluster {
    fn nodes(&self) -> Vec<NodeInfo> {
        self.state()
            .nodes
            .iter()
            .map(|n| NodeInfo {
                name: n.name.clone(),
                server: n.role == Role::Server,
                api_addr: n.http_addr(),
            })
            .collect()
    }

    fn client(&self, node: usize, timeout: Duration) -> Box<dyn KvClient> {
        // An index out of range gets a client of an address nothing listens on: every
        // call fails as refused, which is what it is.
        let addr = self
            .state()
            .nodes
            .get(node)
            .map_or_else(|| "127.0.0.1:1".to_string(), |n| n.http_addr());
        Box::new(CairnKv::new(&addr, timeout))
    }

    fn supports(&self, fault: FaultKind) -> bool {
        match fault {
            FaultKind::Kill | FaultKind::Pause | FaultKind::Partition | FaultKind::Restart => true,
            // One server out of three or more leaves and comes back; with fewer there
            // is no quorum to remove it from.
            FaultKind::Membership => self.spec().servers >= 3,
            // Only servers keep a Raft log (the schedule aims this fault at servers).
            FaultKind::SlowDisk => true,
        }
    }

    fn leader(&self) -> Option<usize> {
        LocalCluster::leader(self)
    }

    fn kill(&mut self, node: usize) -> Result<(), String> {
        LocalCluster::kill(self, node).map_err(|e| e.to_string())
    }

    /// Starts a dead node again; a running or paused one is left alone (the trait's
    /// restart brings back a killed node; the Restart fault kills first itself).
    fn restart(&mut self, node: usize) -> Result<(), String> {
        if self.proc_state(node) != ProcState::Dead {
            return Ok(());
        }
        LocalCluster::restart(self, node).map_err(|e| e.to_string())
    }

    fn pause(&mut self, node: usize) -> Result<(), String> {
        LocalCluster::pause(self, node).map_err(|e| e.to_string())
    }

    fn resume(&mut self, node: usize) -> Result<(), String> {
        LocalCluster::resume(self, node).map_err(|e| e.to_string())
    }

    fn partition(&mut self, groups: &[Vec<usize>]) -> Result<(), String> {
        LocalCluster::partition(self, groups).map_err(|e| e.to_string())
    }

    fn heal(&mut self) -> Result<(), String> {
        LocalCluster::heal(self).map_err(|e| e.to_string())
    }

    fn cycle_membership(&mut self, node: usize) -> Result<(), String> {
        LocalCluster::cycle_membership(self, node).map_err(|e| e.to_string())
    }

    fn slow_disk(&mut self, node: usize, stall: Option<Duration>) -> Result<(), String> {
        let n = self
            .state()
            .nodes
            .get(node)
            .ok_or_else(|| format!("no node {node}"))?;
        set_disk_stall(&n.http_addr(), stall)
    }

    fn local_snapshot(
        &self,
        node: usize,
        prefix: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        let n = self
            .state()
            .nodes
            .get(node)
            .ok_or_else(|| format!("no node {node}"))?;
        kv_snapshot(&n.http_addr(), prefix)
    }

    /// Stops the cluster only if this value started it: one the harness attached to
    /// (already up in its folder) is left running, healed, for its owner.
    fn shutdown(&mut self) {
        if self.stop_on_drop {
            LocalCluster::shutdown(self);
        }
    }
}

/// How long the convergence check's read of one node may take.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(10);

/// Every key under `prefix` with its value as the agent at `http_addr` holds it (a
/// stale read: answered from its own store, never forwarded).
pub fn kv_snapshot(http_addr: &str, prefix: &str) -> Result<BTreeMap<String, String>, String> {
    let url = format!("http://{http_addr}{}?recurse&stale", kv_path(prefix));
    let (status, body) = http::call("GET", &url, None, SNAPSHOT_TIMEOUT)?;
    match status {
        404 => Ok(BTreeMap::new()),
        200 => parse_listing(&body).map_err(|e| format!("GET {url}: {e}")),
        _ => Err(format!("GET {url}: {status} {}", body.trim())),
    }
}

/// Make the agent at `http_addr` stall each log fsync by `stall` (`None`: lift it);
/// needs `-fault-injection`.
pub fn set_disk_stall(http_addr: &str, stall: Option<Duration>) -> Result<(), String> {
    let base = format!("http://{http_addr}/v1/cairn/faults/disk");
    let (method, url) = match stall {
        Some(stall) => (
            "PUT",
            format!("{base}?stall={}ms", stall.as_millis().max(1)),
        ),
        None => ("DELETE", base),
    };
    match http::call(method, &url, None, SNAPSHOT_TIMEOUT)? {
        (200, _) => Ok(()),
        (status, body) => Err(format!("{method} {url}: {status} {}", body.trim())),
    }
}

/// Key to value of a `?recurse` listing.
fn parse_listing(body: &str) -> Result<BTreeMap<String, String>, String> {
    let entries: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let mut out = BTreeMap::new();
    for entry in entries.as_array().ok_or("not a list of entries")? {
        let key = entry["Key"].as_str().ok_or("an entry without Key")?;
        let one = serde_json::to_string(&[entry]).unwrap_or_default();
        out.insert(key.to_string(), parse_entry(&one)?.value);
    }
    Ok(out)
}

/// How long a leaving server may take to exit, and then to leave the configuration.
const LEAVE_DEADLINE: Duration = Duration::from_secs(30);
/// How long the server may take to be a voter again: autopilot promotes a new server
/// after `server_stabilization_time` (10 s by default).
const REJOIN_DEADLINE: Duration = Duration::from_secs(60);

/// Make server `node` leave (`PUT /v1/agent/leave`: gossip leave, then the leader's
/// autopilot removes it from the Raft configuration), wait for its exit and its
/// removal, wipe its data dir, start it again (it joins the other servers), and wait
/// until the configuration lists it as a voter again: autopilot adds it as a
/// non-voter and promotes it once stable.
pub(super) fn cycle_membership(
    cluster: &mut LocalCluster,
    node: usize,
) -> Result<(), ClusterError> {
    cluster.check_node(node)?;
    cluster.reap();
    let n = cluster.state.nodes[node].clone();
    if n.role != Role::Server {
        return Err(ClusterError::Invalid(format!(
            "{} is a client agent: only servers are in the Raft configuration",
            n.name
        )));
    }
    if cluster.spec().servers < 3 {
        return Err(ClusterError::Invalid(
            "membership changes need at least 3 servers".into(),
        ));
    }
    if cluster.proc_state(node) != ProcState::Running {
        return Err(cluster.not_running(node, "cycle the membership of"));
    }
    let addr = n.server_addr();
    let others: Vec<String> = (0..cluster.state.nodes.len())
        .filter(|&i| i != node && cluster.state.nodes[i].role == Role::Server)
        .map(|i| cluster.state.nodes[i].http_addr())
        .collect();

    // Leave, and wait for the process to go (SIGKILL if it hangs: the server is then
    // failed rather than left, and autopilot removes it all the same while the others
    // keep a quorum).
    let leave = format!("http://{}/v1/agent/leave", n.http_addr());
    let _ = http::call("PUT", &leave, None, LEAVE_DEADLINE);
    if let Some(pid) = n.pid {
        let child = cluster.children.get_mut(&node);
        if !super::process::wait_gone(pid, &n.data_dir, child, LEAVE_DEADLINE) {
            cluster.kill_process(node, nix::sys::signal::Signal::SIGKILL, LEAVE_DEADLINE)?;
        }
        cluster.children.remove(&node);
    }
    cluster.state.nodes[node].state = super::NodeRunState::Killed;
    cluster.save()?;
    wait_configuration(&others, LEAVE_DEADLINE, "removed from", |servers| {
        !servers.iter().any(|(a, _)| *a == addr)
    })
    .map_err(|e| ClusterError::Failed(format!("{}: {e}", n.name)))?;

    // Back with an empty data dir: it catches up from the leader (by snapshot once the
    // log was compacted).
    if n.data_dir.exists() {
        std::fs::remove_dir_all(&n.data_dir)
            .map_err(|e| ClusterError::io(format!("wipe {}", n.data_dir.display()), e))?;
    }
    cluster.spawn(node)?;
    cluster.wait_answers(node, super::RESTART_DEADLINE)?;
    cluster.sync_rules(node)?;
    wait_configuration(&others, REJOIN_DEADLINE, "a voter in", |servers| {
        servers.iter().any(|(a, voter)| *a == addr && *voter)
    })
    .map_err(|e| ClusterError::Failed(format!("{}: {e}", n.name)))
}

/// Poll `/v1/operator/raft/configuration` through the servers `via` (any of them
/// forwards to the leader) until `done` holds for its (address, voter) list.
fn wait_configuration(
    via: &[String],
    timeout: Duration,
    what: &str,
    done: impl Fn(&[(String, bool)]) -> bool,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut last = String::from("no answer");
    loop {
        for addr in via {
            let url = format!("http://{addr}/v1/operator/raft/configuration");
            match http::call("GET", &url, None, Duration::from_secs(2)) {
                Ok((200, body)) => match parse_configuration(&body) {
                    Some(servers) if done(&servers) => return Ok(()),
                    Some(servers) => {
                        last = format!("{servers:?}");
                        break;
                    }
                    None => last = format!("unreadable configuration from {addr}"),
                },
                Ok((status, body)) => last = format!("{addr}: {status} {}", body.trim()),
                Err(e) => last = e,
            }
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "not {what} the Raft configuration after {}s (last: {last})",
                timeout.as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// (address, voter) of every server in a Raft configuration answer.
fn parse_configuration(body: &str) -> Option<Vec<(String, bool)>> {
    let servers = parse_raft_configuration(body).ok()?;
    Some(servers.into_iter().map(|s| (s.address, s.voter)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_decode_value_and_version() {
        let body = r#"[{"LockIndex":0,"Key":"k","Flags":0,"Value":"dGVzdA==","CreateIndex":5,"ModifyIndex":7}]"#;
        assert_eq!(
            parse_entry(body),
            Ok(Versioned {
                value: "test".into(),
                version: 7
            })
        );
        let empty = r#"[{"Key":"k","Value":null,"ModifyIndex":9}]"#;
        assert_eq!(parse_entry(empty).unwrap().value, "");
        assert!(parse_entry("[]").is_err());
        assert!(parse_entry("nope").is_err());
        assert!(parse_entry(r#"[{"Key":"k","Value":"@@","ModifyIndex":1}]"#).is_err());
    }

    #[test]
    fn listings_map_keys_to_values() {
        let body = r#"[{"Key":"p/a","Value":"MQ==","ModifyIndex":3},{"Key":"p/b","Value":null,"ModifyIndex":4}]"#;
        let map = parse_listing(body).unwrap();
        assert_eq!(map.get("p/a").map(String::as_str), Some("1"));
        assert_eq!(map.get("p/b").map(String::as_str), Some(""));
    }

    #[test]
    fn answers_are_classified() {
        let e = status_error(500, "No cluster leader");
        assert_eq!(
            (e.kind.as_str(), e.definitely_not_applied),
            ("no-leader", true)
        );
        let e = status_error(
            500,
            "rpc error making call: reset (the write may or may not have been applied)",
        );
        assert_eq!(
            (e.kind.as_str(), e.definitely_not_applied),
            ("unknown-outcome", false)
        );
        let e = status_error(500, "leadership lost while committing log");
        assert_eq!(
            (e.kind.as_str(), e.definitely_not_applied),
            ("http-500", false)
        );
        let e = status_error(500, "No known Consul servers");
        assert_eq!(
            (e.kind.as_str(), e.definitely_not_applied),
            ("no-servers", true)
        );
        let e = status_error(429, "Your IP is issuing too many concurrent connections");
        assert_eq!(
            (e.kind.as_str(), e.definitely_not_applied),
            ("http-429", true)
        );
        let e = status_error(503, "busy");
        assert_eq!(
            (e.kind.as_str(), e.definitely_not_applied),
            ("http-503", false)
        );
    }

    #[test]
    fn a_refused_connection_was_never_sent() {
        // Nothing listens on port 1 of this address (inside this crate's test range).
        let mut kv = CairnKv::new("127.0.1.19:1", Duration::from_secs(2));
        let e = kv.put("k", "v").unwrap_err();
        assert_eq!(
            (e.kind.as_str(), e.definitely_not_applied),
            ("refused", true)
        );
        let e = kv.get("k", ReadMode::Stale).unwrap_err();
        assert_eq!(e.kind, "refused");
    }

    #[test]
    fn configurations_parse() {
        let body = r#"{"Servers":[{"ID":"a","Address":"127.0.0.21:8300","Voter":true},{"Address":"127.0.0.22:8300","Voter":false}],"Index":5}"#;
        assert_eq!(
            parse_configuration(body),
            Some(vec![
                ("127.0.0.21:8300".to_string(), true),
                ("127.0.0.22:8300".to_string(), false)
            ])
        );
    }
}
