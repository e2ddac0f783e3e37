//! Local clusters on loopback from one command (issue 9): N servers and M client agents,
//! each on its own 127.x address with the standard ports, all under one folder, with
//! kill / restart / pause / resume / partition / heal. [`LocalCluster`] does the work;
//! `cairn cluster ...` (`src/cli/cluster_cmd.rs`) is a thin layer over it, and the chaos
//! harness drives it in-process through `chaos_target`.
//!
//! Every operation reads and writes `DIR/cluster.json` ([`state`]), so one command can
//! start the cluster and later commands (or another process) act on it. The agents are
//! detached: they outlive the command that started them.

pub mod chaos_target;
pub mod error;
pub mod faults;
pub mod http;
pub mod process;
pub mod spec;
pub mod state;
pub mod status;

pub use error::ClusterError;
pub use spec::{ClusterSpec, Role};
pub use state::{ClusterState, NodeRunState, NodeState};
pub use status::NodeStatus;

use nix::sys::signal::Signal;
use process::ProcState;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

/// How long `up` waits for every node to name a leader and see every member alive.
pub const UP_DEADLINE: Duration = Duration::from_secs(60);
/// How long a restarted agent may take to answer HTTP.
pub const RESTART_DEADLINE: Duration = Duration::from_secs(30);
/// How long a SIGKILLed agent may take to disappear.
const KILL_DEADLINE: Duration = Duration::from_secs(10);
/// How long `down` waits after SIGTERM before SIGKILL.
const TERM_DEADLINE: Duration = Duration::from_secs(10);
/// How long a SIGSTOP or SIGCONT may take to show in /proc.
const SIGNAL_DEADLINE: Duration = Duration::from_secs(5);
/// Per request of a readiness or leader poll: a paused agent must not hold a poll.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What `up` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpOutcome {
    Started,
    /// A cluster of the same shape was already running in the folder.
    AlreadyUp,
}

pub struct LocalCluster {
    state: ClusterState,
    /// Agents this process started, by node: waited for once they exit, so a harness
    /// that runs the cluster in-process for minutes leaves no zombies.
    children: BTreeMap<usize, Child>,
    /// Stop every agent when dropped (in-process users; the CLI leaves them running).
    stop_on_drop: bool,
}

impl LocalCluster {
    /// Start the cluster `spec` describes and wait until it is ready: every node names
    /// a leader and sees every member alive. If the folder already holds a running
    /// cluster of the same shape, attach to it instead; of another shape, refuse. A
    /// state file whose agents are all dead is stale: the cluster starts afresh.
    pub fn up(spec: ClusterSpec) -> Result<(LocalCluster, UpOutcome), ClusterError> {
        spec.validate().map_err(ClusterError::Invalid)?;
        if let Some(old) = ClusterState::load(&spec.dir)? {
            let cluster = LocalCluster::attach(old);
            if cluster.any_alive() {
                if !cluster.state.spec.same_shape(&spec) {
                    return Err(ClusterError::OtherShapeUp {
                        dir: spec.dir.display().to_string(),
                        running: cluster.state.spec.describe(),
                        dir_flag: error::dir_flag(&spec.dir),
                    });
                }
                return Ok((cluster, UpOutcome::AlreadyUp));
            }
            cluster.remove_files()?;
        }
        let mut cluster = LocalCluster::attach(ClusterState::fresh(&spec));
        if let Err(e) = cluster.start_all() {
            // Leave no agents behind on failure (keep their logs to read).
            cluster.stop_all();
            return Err(e);
        }
        Ok((cluster, UpOutcome::Started))
    }

    /// [`LocalCluster::up`] for in-process users: a cluster it started is stopped when
    /// the value is dropped; one it attached to (already up in the folder) is not.
    pub fn start(spec: ClusterSpec) -> Result<LocalCluster, ClusterError> {
        let (mut cluster, outcome) = LocalCluster::up(spec)?;
        cluster.stop_on_drop = outcome == UpOutcome::Started;
        Ok(cluster)
    }

    /// The cluster whose state is in `dir`.
    pub fn open(dir: &Path) -> Result<LocalCluster, ClusterError> {
        match ClusterState::load(dir)? {
            Some(state) => Ok(LocalCluster::attach(state)),
            None => Err(ClusterError::no_cluster(dir)),
        }
    }

    fn attach(state: ClusterState) -> LocalCluster {
        LocalCluster {
            state,
            children: BTreeMap::new(),
            stop_on_drop: false,
        }
    }

    /// Whether dropping this value stops every agent ([`LocalCluster::start`] sets it).
    pub fn set_stop_on_drop(&mut self, stop: bool) {
        self.stop_on_drop = stop;
    }

    pub fn spec(&self) -> &ClusterSpec {
        &self.state.spec
    }

    pub fn state(&self) -> &ClusterState {
        &self.state
    }

    pub fn nodes(&self) -> &[NodeState] {
        &self.state.nodes
    }

    /// The index of the node called `name` (an error naming the nodes if none).
    pub fn index_of(&self, name: &str) -> Result<usize, ClusterError> {
        self.state.index_of(name)
    }

    /// What /proc says about `node`'s agent now.
    pub fn proc_state(&self, node: usize) -> ProcState {
        let n = &self.state.nodes[node];
        match n.pid {
            Some(pid) => process::proc_state(pid, &n.data_dir),
            None => ProcState::Dead,
        }
    }

    fn any_alive(&self) -> bool {
        (0..self.state.nodes.len()).any(|i| self.proc_state(i) != ProcState::Dead)
    }

    fn check_node(&self, node: usize) -> Result<(), ClusterError> {
        if node < self.state.nodes.len() {
            Ok(())
        } else {
            Err(ClusterError::Invalid(format!(
                "no node {node} (the cluster has {})",
                self.state.nodes.len()
            )))
        }
    }

    /// Wait for the children that exited by themselves.
    fn reap(&mut self) {
        self.children
            .retain(|_, child| !matches!(child.try_wait(), Ok(Some(_))));
    }

    fn save(&self) -> Result<(), ClusterError> {
        self.state.save()
    }

    fn start_all(&mut self) -> Result<(), ClusterError> {
        let dir = self.state.spec.dir.clone();
        std::fs::create_dir_all(&dir)
            .map_err(|e| ClusterError::io(format!("create {}", dir.display()), e))?;
        for node in 0..self.state.nodes.len() {
            let node_dir = self.state.spec.node_dir(node);
            if node_dir.exists() {
                std::fs::remove_dir_all(&node_dir).map_err(|e| {
                    ClusterError::io(format!("remove old {}", node_dir.display()), e)
                })?;
            }
            self.spawn(node)?;
        }
        self.wait_ready(UP_DEADLINE)
    }

    /// Start `node`'s agent with its stored arguments (its data dir is created if
    /// missing) and record the pid.
    fn spawn(&mut self, node: usize) -> Result<(), ClusterError> {
        let n = &self.state.nodes[node];
        std::fs::create_dir_all(&n.data_dir)
            .map_err(|e| ClusterError::io(format!("create {}", n.data_dir.display()), e))?;
        let child =
            process::spawn_agent(&self.state.spec.binary, &n.args, &n.log).map_err(|e| {
                ClusterError::io(
                    format!("start {} ({})", n.name, self.state.spec.binary.display()),
                    e,
                )
            })?;
        let mut child = child;
        let started = process::wait_exec(&mut child, &n.data_dir, SIGNAL_DEADLINE);
        let n = &mut self.state.nodes[node];
        n.pid = Some(child.id());
        n.state = NodeRunState::Running;
        self.children.insert(node, child);
        self.save()?;
        if started {
            Ok(())
        } else {
            self.reap();
            Err(self.exited_error(node))
        }
    }

    /// Poll until every running node names a leader and sees every member alive.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        let names: BTreeSet<String> = self.state.node_names().into_iter().collect();
        loop {
            self.reap();
            let mut waiting = None;
            for (i, n) in self.state.nodes.iter().enumerate() {
                if n.state != NodeRunState::Running {
                    continue;
                }
                if self.proc_state(i) == ProcState::Dead {
                    return Err(self.exited_error(i));
                }
                if waiting.is_some() {
                    continue;
                }
                let addr = n.http_addr();
                if http::leader_of(&addr, PROBE_TIMEOUT).is_none() {
                    waiting = Some(format!("{} to name a leader", n.name));
                    continue;
                }
                let alive: BTreeSet<String> = http::alive_members(&addr, PROBE_TIMEOUT)
                    .unwrap_or_default()
                    .into_iter()
                    .collect();
                if !names.is_subset(&alive) {
                    let missing: Vec<&String> = names.difference(&alive).collect();
                    waiting = Some(format!(
                        "{} to see {} alive",
                        n.name,
                        missing
                            .iter()
                            .map(|s| s.as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    ));
                }
            }
            let Some(what) = waiting else {
                return Ok(());
            };
            if Instant::now() >= deadline {
                return Err(ClusterError::Failed(format!(
                    "cluster not ready after {}s: still waiting for {what} (logs: {}/nodeN/agent.log)",
                    timeout.as_secs(),
                    self.state.spec.dir.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn exited_error(&self, node: usize) -> ClusterError {
        let n = &self.state.nodes[node];
        ClusterError::Failed(format!(
            "{} exited; last lines of {}:\n{}",
            n.name,
            n.log.display(),
            log_tail(&n.log, 20)
        ))
    }

    /// SIGKILL `node` and wait until it is gone. Killing a dead node does nothing.
    pub fn kill(&mut self, node: usize) -> Result<(), ClusterError> {
        self.check_node(node)?;
        self.reap();
        self.kill_process(node, Signal::SIGKILL, KILL_DEADLINE)?;
        self.state.nodes[node].state = NodeRunState::Killed;
        self.save()
    }

    /// Send `signal` to `node` if its agent runs, and wait up to `timeout` for it to go.
    fn kill_process(
        &mut self,
        node: usize,
        signal: Signal,
        timeout: Duration,
    ) -> Result<(), ClusterError> {
        let n = &self.state.nodes[node];
        let Some(pid) = n.pid else { return Ok(()) };
        let data_dir = n.data_dir.clone();
        process::signal_agent(pid, &data_dir, signal).map_err(ClusterError::Failed)?;
        let child = self.children.get_mut(&node);
        if !process::wait_gone(pid, &data_dir, child, timeout) {
            return Err(ClusterError::Failed(format!(
                "{} (pid {pid}) still runs {}s after {signal}",
                self.state.nodes[node].name,
                timeout.as_secs()
            )));
        }
        self.children.remove(&node);
        Ok(())
    }

    /// Kill `node` if it runs, start it again with the same arguments and data dir,
    /// wait until it answers HTTP, and give it its partition rules again.
    pub fn restart(&mut self, node: usize) -> Result<(), ClusterError> {
        self.check_node(node)?;
        self.reap();
        self.kill_process(node, Signal::SIGKILL, KILL_DEADLINE)?;
        self.spawn(node)?;
        self.wait_answers(node, RESTART_DEADLINE)?;
        self.sync_rules(node)
    }

    /// Poll until `node` answers HTTP; fail at once if its process exits.
    fn wait_answers(&mut self, node: usize, timeout: Duration) -> Result<(), ClusterError> {
        let deadline = Instant::now() + timeout;
        let addr = self.state.nodes[node].http_addr();
        loop {
            self.reap();
            if self.proc_state(node) == ProcState::Dead {
                return Err(self.exited_error(node));
            }
            if http::answers(&addr, PROBE_TIMEOUT) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Failed(format!(
                    "{} does not answer on {addr} after {}s (log: {})",
                    self.state.nodes[node].name,
                    timeout.as_secs(),
                    self.state.nodes[node].log.display()
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGSTOP `node`. Pausing a paused node does nothing; a dead one is an error.
    pub fn pause(&mut self, node: usize) -> Result<(), ClusterError> {
        self.check_node(node)?;
        self.reap();
        match self.proc_state(node) {
            ProcState::Paused => {}
            ProcState::Dead => return Err(self.not_running(node, "pause")),
            ProcState::Running => self.signal_and_wait(node, Signal::SIGSTOP, ProcState::Paused)?,
        }
        self.state.nodes[node].state = NodeRunState::Paused;
        self.save()
    }

    /// SIGCONT `node` and give it the partition rules in force (they may have changed
    /// while it was stopped). Resuming a running node does nothing.
    pub fn resume(&mut self, node: usize) -> Result<(), ClusterError> {
        self.check_node(node)?;
        self.reap();
        match self.proc_state(node) {
            ProcState::Running => {}
            ProcState::Dead => return Err(self.not_running(node, "resume")),
            ProcState::Paused => {
                self.signal_and_wait(node, Signal::SIGCONT, ProcState::Running)?;
                self.state.nodes[node].state = NodeRunState::Running;
                self.save()?;
                return self.sync_rules(node);
            }
        }
        self.state.nodes[node].state = NodeRunState::Running;
        self.save()
    }

    fn not_running(&self, node: usize, what: &str) -> ClusterError {
        ClusterError::Failed(format!(
            "cannot {what} {}: it is not running (restart it first)",
            self.state.nodes[node].name
        ))
    }

    fn signal_and_wait(
        &self,
        node: usize,
        signal: Signal,
        want: ProcState,
    ) -> Result<(), ClusterError> {
        let n = &self.state.nodes[node];
        let pid = n.pid.unwrap_or_default();
        process::signal_agent(pid, &n.data_dir, signal).map_err(ClusterError::Failed)?;
        if process::wait_state(pid, &n.data_dir, want, SIGNAL_DEADLINE) {
            Ok(())
        } else {
            Err(ClusterError::Failed(format!(
                "{} (pid {pid}) is not {} after {signal}",
                n.name,
                want.name()
            )))
        }
    }

    /// Split the cluster: nodes in different groups cannot reach each other, nodes in
    /// no group reach all. Replaces the partition in force; an empty list heals.
    /// Stopped and dead nodes get their rules when resumed or restarted.
    pub fn partition(&mut self, groups: &[Vec<usize>]) -> Result<(), ClusterError> {
        faults::check_groups(groups, self.state.nodes.len()).map_err(ClusterError::Invalid)?;
        let groups: Vec<Vec<usize>> = groups.iter().filter(|g| !g.is_empty()).cloned().collect();
        if groups.len() < 2 {
            return self.heal();
        }
        self.reap();
        let previous = self.state.partition_indexes();
        self.state.partition = groups
            .iter()
            .map(|g| {
                g.iter()
                    .map(|&i| self.state.nodes[i].name.clone())
                    .collect()
            })
            .collect();
        self.save()?;
        for node in 0..self.state.nodes.len() {
            if self.proc_state(node) != ProcState::Running {
                continue;
            }
            let want = self.peer_ips(&faults::cut_peers(&groups, node));
            let before = self.peer_ips(&faults::cut_peers(&previous, node));
            faults::apply_rules(&self.state.nodes[node].http_addr(), &want, Some(&before))
                .map_err(|e| self.rule_error(node, e))?;
        }
        Ok(())
    }

    /// Lift every fault rule on every running node and forget the partition.
    pub fn heal(&mut self) -> Result<(), ClusterError> {
        self.reap();
        self.state.partition.clear();
        self.save()?;
        for node in 0..self.state.nodes.len() {
            if self.proc_state(node) == ProcState::Running {
                faults::clear_rules(&self.state.nodes[node].http_addr())
                    .map_err(|e| self.rule_error(node, e))?;
            }
        }
        Ok(())
    }

    /// Give `node` exactly the rules the stored partition asks of it.
    fn sync_rules(&self, node: usize) -> Result<(), ClusterError> {
        let want = self.peer_ips(&faults::cut_peers(&self.state.partition_indexes(), node));
        faults::apply_rules(&self.state.nodes[node].http_addr(), &want, None)
            .map_err(|e| self.rule_error(node, e))
    }

    fn rule_error(&self, node: usize, e: String) -> ClusterError {
        ClusterError::Failed(format!(
            "fault rules on {}: {e}",
            self.state.nodes[node].name
        ))
    }

    fn peer_ips(&self, peers: &BTreeSet<usize>) -> BTreeSet<Ipv4Addr> {
        peers.iter().map(|&p| self.state.nodes[p].ip).collect()
    }

    /// The node most running servers name as leader now (none if none answers).
    pub fn leader(&self) -> Option<usize> {
        let servers: Vec<usize> = (0..self.state.nodes.len())
            .filter(|&i| self.state.nodes[i].role == Role::Server)
            .filter(|&i| self.proc_state(i) == ProcState::Running)
            .collect();
        let answers: Vec<Option<String>> = std::thread::scope(|s| {
            let asks: Vec<_> = servers
                .iter()
                .map(|&i| {
                    let addr = self.state.nodes[i].http_addr();
                    s.spawn(move || http::leader_of(&addr, PROBE_TIMEOUT))
                })
                .collect();
            asks.into_iter().map(|h| h.join().ok().flatten()).collect()
        });
        let mut votes: BTreeMap<usize, usize> = BTreeMap::new();
        for addr in answers.into_iter().flatten() {
            if let Some(i) = self.state.index_of_server_addr(&addr) {
                *votes.entry(i).or_default() += 1;
            }
        }
        votes
            .into_iter()
            .max_by_key(|&(i, count)| (count, std::cmp::Reverse(i)))
            .map(|(i, _)| i)
    }

    /// One row per node: process state, the leader it names, the members it sees alive.
    pub fn status(&self) -> Vec<NodeStatus> {
        status::collect(self)
    }

    /// The partition in force, as groups of node names.
    pub fn partition_groups(&self) -> &[Vec<String>] {
        &self.state.partition
    }

    /// Stop every agent (SIGCONT the stopped ones, SIGTERM, SIGKILL after 10 s) and,
    /// unless `keep`, remove the cluster's files.
    pub fn down(mut self, keep: bool) -> Result<(), ClusterError> {
        self.stop_all();
        self.stop_on_drop = false;
        let still: Vec<String> = (0..self.state.nodes.len())
            .filter(|&i| self.proc_state(i) != ProcState::Dead)
            .map(|i| self.state.nodes[i].name.clone())
            .collect();
        if !still.is_empty() {
            return Err(ClusterError::Failed(format!(
                "could not stop {}",
                still.join(" ")
            )));
        }
        if keep {
            self.save()
        } else {
            self.remove_files()
        }
    }

    /// Stop every process the cluster runs, keeping its files (the chaos harness's
    /// end; errors are for `down` to report).
    pub fn shutdown(&mut self) {
        self.stop_all();
        let _ = self.save();
    }

    fn stop_all(&mut self) {
        self.reap();
        let nodes = 0..self.state.nodes.len();
        for node in nodes.clone() {
            let n = &self.state.nodes[node];
            if let Some(pid) = n.pid {
                // A stopped process would hold SIGTERM until continued.
                let _ = process::signal_agent(pid, &n.data_dir, Signal::SIGCONT);
                let _ = process::signal_agent(pid, &n.data_dir, Signal::SIGTERM);
            }
        }
        let deadline = Instant::now() + TERM_DEADLINE;
        for node in nodes.clone() {
            let left = deadline.saturating_duration_since(Instant::now());
            let n = &self.state.nodes[node];
            if let Some(pid) = n.pid {
                let data_dir = n.data_dir.clone();
                process::wait_gone(pid, &data_dir, self.children.get_mut(&node), left);
            }
        }
        for node in nodes {
            let _ = self.kill_process(node, Signal::SIGKILL, KILL_DEADLINE);
            self.children.remove(&node);
            self.state.nodes[node].state = NodeRunState::Killed;
        }
        self.state.partition.clear();
    }

    /// Remove `DIR/nodeN` of every node and the state file, then DIR itself if nothing
    /// else is in it (a folder the user also keeps other things in stays).
    fn remove_files(&self) -> Result<(), ClusterError> {
        for node in 0..self.state.nodes.len() {
            let node_dir = self.state.spec.node_dir(node);
            match std::fs::remove_dir_all(&node_dir) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(ClusterError::io(
                        format!("remove {}", node_dir.display()),
                        e,
                    ))
                }
            }
        }
        let path = ClusterState::path(&self.state.spec.dir);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(ClusterError::io(format!("remove {}", path.display()), e)),
        }
        let _ = std::fs::remove_dir(&self.state.spec.dir);
        Ok(())
    }

    /// Make server `node` leave the Raft configuration and come back with an empty
    /// data dir (see `chaos_target` for why and how).
    pub fn cycle_membership(&mut self, node: usize) -> Result<(), ClusterError> {
        chaos_target::cycle_membership(self, node)
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        if self.stop_on_drop {
            self.shutdown();
        }
    }
}

/// The last `lines` lines of a log file (for errors about an agent that exited).
pub fn log_tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
