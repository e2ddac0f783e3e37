//! Helpers for integration tests that run the real `cairn` binary on loopback.
//!
//! Every test uses its own 127.0.0.x address with the standard ports, so tests can run in
//! parallel. Waits are for conditions with a deadline, never fixed sleeps.
#![allow(dead_code)]

pub mod cluster;
pub mod dns;
pub mod history;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long any condition may take on a loaded 2-core machine before a test fails.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// Poll `check` until it returns Some, or panic with `what` after `DEADLINE`.
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn cairn_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cairn")
}

/// A running `cairn agent` process, killed when dropped. Its output goes to a log file
/// that is printed if the test panics while the agent is alive.
pub struct Agent {
    child: Option<Child>,
    pub ip: String,
    pub args: Vec<String>,
    pub log: PathBuf,
}

impl Agent {
    /// Start `cairn <args>`, logging to `<log_dir>/agent-<n>.log`.
    pub fn spawn(ip: &str, args: &[String], log_dir: &Path) -> Agent {
        let n = std::fs::read_dir(log_dir).map(|d| d.count()).unwrap_or(0);
        let log = log_dir.join(format!("agent-{n}.log"));
        let out = std::fs::File::create(&log).expect("create log");
        let err = out.try_clone().expect("clone log");
        let child = Command::new(cairn_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn cairn");
        Agent {
            child: Some(child),
            ip: ip.to_string(),
            args: args.to_vec(),
            log,
        }
    }

    /// A server agent as in the seed walkthrough, bound to `ip`.
    pub fn server(ip: &str, node: &str, data_dir: &Path, extra: &[&str]) -> Agent {
        Agent::server_logging_to(ip, node, data_dir, &logs_beside(data_dir), extra)
    }

    /// [`Agent::server`] with its log written to `log_dir` (for a data dir on a
    /// filesystem the test fills up).
    pub fn server_logging_to(
        ip: &str,
        node: &str,
        data_dir: &Path,
        log_dir: &Path,
        extra: &[&str],
    ) -> Agent {
        let args = agent_args(&["-server", "-bootstrap"], ip, node, data_dir, extra);
        std::fs::create_dir_all(log_dir).expect("log dir");
        let mut agent = Agent::spawn(ip, &args, log_dir);
        agent.wait_ready();
        agent
    }

    /// A client agent (no -server) bound to `ip`, joining through `join`; waits until
    /// it answers with itself in the catalog (registered by the leader from gossip).
    pub fn client(ip: &str, node: &str, data_dir: &Path, join: &[&str]) -> Agent {
        let extra: Vec<&str> = join.iter().flat_map(|j| ["-join", *j]).collect();
        let mut agent = Agent::client_with(ip, node, data_dir, &extra);
        agent.wait_ready();
        agent
    }

    /// Start a client agent (no -server) bound to `ip` with `extra` arguments, without
    /// waiting for anything; logs go beside `data_dir`.
    pub fn client_with(ip: &str, node: &str, data_dir: &Path, extra: &[&str]) -> Agent {
        let log_dir = logs_beside(data_dir);
        std::fs::create_dir_all(&log_dir).expect("log dir");
        Agent::spawn(ip, &agent_args(&[], ip, node, data_dir, extra), &log_dir)
    }

    /// A server of a multi-server cluster (`-bootstrap-expect expect`), joining
    /// through `join`. Does NOT wait for readiness: no server has a leader until
    /// `expect` of them run (wait for that with the cluster's own condition).
    pub fn server_expect(
        ip: &str,
        node: &str,
        data_dir: &Path,
        expect: u32,
        join: &[&str],
    ) -> Agent {
        Agent::server_expect_with(ip, node, data_dir, expect, join, &[])
    }

    /// [`Agent::server_expect`] with `extra` arguments (`-fault-injection`,
    /// `-config-file ...`).
    pub fn server_expect_with(
        ip: &str,
        node: &str,
        data_dir: &Path,
        expect: u32,
        join: &[&str],
        extra: &[&str],
    ) -> Agent {
        let log_dir = logs_beside(data_dir);
        std::fs::create_dir_all(&log_dir).expect("log dir");
        let expect = expect.to_string();
        let joins: Vec<&str> = join.iter().flat_map(|j| ["-join", *j]).collect();
        let extra: Vec<&str> = joins.iter().chain(extra).copied().collect();
        let mode = ["-server", "-bootstrap-expect", expect.as_str()];
        Agent::spawn(ip, &agent_args(&mode, ip, node, data_dir, &extra), &log_dir)
    }

    /// Start the same command again (after `kill9`), with the same data dir; does not
    /// wait for readiness.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "agent still running");
        let log_dir = self.log.parent().expect("log dir").to_path_buf();
        let again = Agent::spawn(&self.ip, &self.args, &log_dir);
        *self = again;
    }

    /// Whether the process has exited (then its log is the place to look).
    pub fn exited(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| c.try_wait().ok().flatten().is_some())
    }

    /// Send a signal (`STOP`, `CONT`, ...) to the agent process.
    pub fn signal(&self, name: &str) {
        let child = self.child.as_ref().expect("agent running");
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success(), "kill -{name}");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}:8500{}", self.ip, path)
    }

    pub fn dns_addr(&self) -> std::net::SocketAddr {
        format!("{}:8600", self.ip).parse().expect("dns addr")
    }

    /// Wait until the agent has a leader and its own node is in the catalog. Fails at
    /// once, with the agent's log, if the process exits first.
    pub fn wait_ready(&mut self) {
        let node_url = self.url("/v1/catalog/nodes");
        let client = http_client();
        let start = Instant::now();
        loop {
            let nodes: Option<serde_json::Value> = client
                .get(&node_url)
                .send()
                .ok()
                .and_then(|r| r.json().ok());
            let ready = nodes
                .as_ref()
                .and_then(|n| n.as_array())
                .is_some_and(|n| n.iter().any(|n| n["Address"] == self.ip.as_str()));
            if ready {
                return;
            }
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                panic!(
                    "agent on {} exited with {status}; log:\n{}",
                    self.ip,
                    self.log_text()
                );
            }
            if start.elapsed() > DEADLINE {
                panic!(
                    "agent on {} never became ready; log:\n{}",
                    self.ip,
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// Everything observable about the replicated state over HTTP (nodes, services and the
    /// KV listing), for tests that check bad input changed nothing.
    pub fn state(&self) -> (String, String, u16, String) {
        let c = http_client();
        let text = |path: &str| c.get(self.url(path)).send().unwrap().text().unwrap();
        let (nodes, services) = (text("/v1/catalog/nodes"), text("/v1/catalog/services"));
        let kv = c.get(self.url("/v1/kv/?recurse")).send().unwrap();
        (nodes, services, kv.status().as_u16(), kv.text().unwrap())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush anything that was not already durable.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM and wait for a clean exit; returns the exit status code.
    pub fn terminate(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let start = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if start.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if std::thread::panicking() && self.child.is_some() {
            eprintln!("---- log of agent on {} ----\n{}", self.ip, self.log_text());
        }
        self.kill9();
    }
}

/// Copy a directory tree (a data dir or a fixture).
/// `agent <mode...> -node N -bind IP -client IP -data-dir D <extra...>`.
fn agent_args(mode: &[&str], ip: &str, node: &str, data_dir: &Path, extra: &[&str]) -> Vec<String> {
    let data_dir = data_dir.display().to_string();
    let common = [
        "-node",
        node,
        "-bind",
        ip,
        "-client",
        ip,
        "-data-dir",
        &data_dir,
    ];
    ["agent"]
        .iter()
        .chain(mode)
        .chain(&common)
        .chain(extra)
        .map(|s| s.to_string())
        .collect()
}

/// Where an agent whose data dir is `data_dir` writes its log: `logs/` beside it.
fn logs_beside(data_dir: &Path) -> PathBuf {
    data_dir
        .parent()
        .expect("data dir has a parent")
        .join("logs")
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for item in std::fs::read_dir(from).unwrap() {
        let item = item.unwrap();
        let target = to.join(item.file_name());
        if item.file_type().unwrap().is_dir() {
            copy_dir(&item.path(), &target);
        } else {
            std::fs::copy(item.path(), target).unwrap();
        }
    }
}

pub fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
}

/// Run `cairn <args>` to completion and return (exit code, stdout, stderr).
pub fn run_cairn(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(cairn_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run cairn");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
