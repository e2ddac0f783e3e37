//! An in-memory cluster for the engine's tests: one shared, correctly locked store, so
//! every answer it gives is linearizable unless it is told to misbehave.
//!
//! Faults: a killed node refuses (definitely not applied); a paused or cut-off node
//! times out, and a write through it has then been applied, is applied once the node
//! is reachable again, or never is (all legal outcomes of a timeout). Misbehaviours: `buggy_node` answers
//! default and consistent reads from an old copy of the store (a stale read the
//! checker must catch); `lose_first_ledger_write` acknowledges the first ledger write
//! without storing it (a lost write the verdict must report).

use rand::Rng;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::history::LEDGER_PREFIX;
use super::target::{Cluster, FaultKind, KvClient, NodeInfo, OpError, ReadMode, Versioned};

/// How the fake misbehaves.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faulty {
    pub buggy_node: Option<usize>,
    pub lose_first_ledger_write: bool,
}

struct State {
    store: BTreeMap<String, Versioned>,
    index: u64,
    down: Vec<bool>,
    paused: Vec<bool>,
    cut_off: Vec<bool>,
    /// What the buggy node reads from, and when it was copied.
    old_copy: BTreeMap<String, Versioned>,
    copied_at: Instant,
    ledger_lost: bool,
    /// Writes an unreachable node holds, applied when it is reachable again (a write
    /// that takes effect after its client gave up: a legal unknown outcome).
    held: Vec<(usize, Write)>,
    faulty: Faulty,
    rng: protocol::rng::CoreRng,
    servers: usize,
}

impl State {
    fn unreachable(&self, node: usize) -> bool {
        self.paused[node] || self.cut_off[node]
    }

    /// Apply the writes held by nodes that are reachable again (a killed node loses
    /// its held writes: they were never committed).
    fn release_held(&mut self) {
        let held = std::mem::take(&mut self.held);
        for (node, write) in held {
            if self.down[node] {
                continue;
            }
            if self.unreachable(node) {
                self.held.push((node, write));
            } else {
                self.apply(&write);
            }
        }
    }

    fn apply(&mut self, write: &Write) -> bool {
        match write {
            Write::Put(key, value) => {
                if key.starts_with(LEDGER_PREFIX)
                    && self.faulty.lose_first_ledger_write
                    && !self.ledger_lost
                {
                    self.ledger_lost = true;
                    return true;
                }
                self.store_value(key, value);
                true
            }
            Write::Cas(key, expect, value) => {
                if self.store.get(key).map(|v| v.version) != *expect {
                    return false;
                }
                self.store_value(key, value);
                true
            }
            Write::Delete(key) => {
                self.index += 1;
                self.store.remove(key);
                true
            }
        }
    }

    fn store_value(&mut self, key: &str, value: &str) {
        self.index += 1;
        let version = self.index;
        self.store.insert(
            key.to_string(),
            Versioned {
                value: value.to_string(),
                version,
            },
        );
    }
}

/// A write request, kept as data so an unreachable node can hold it.
#[derive(Debug, Clone)]
enum Write {
    Put(String, String),
    Cas(String, Option<u64>, String),
    Delete(String),
}

pub struct FakeCluster {
    nodes: Vec<NodeInfo>,
    state: Arc<Mutex<State>>,
}

fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl FakeCluster {
    pub fn new(servers: usize, clients: usize, faulty: Faulty) -> FakeCluster {
        let n = servers + clients;
        let nodes = (0..n)
            .map(|i| NodeInfo {
                name: format!("node{}", i + 1),
                server: i < servers,
                api_addr: format!("fake:{i}"),
            })
            .collect();
        FakeCluster {
            nodes,
            state: Arc::new(Mutex::new(State {
                store: BTreeMap::new(),
                index: 0,
                down: vec![false; n],
                paused: vec![false; n],
                cut_off: vec![false; n],
                old_copy: BTreeMap::new(),
                copied_at: Instant::now(),
                ledger_lost: false,
                held: Vec::new(),
                faulty,
                rng: protocol::rng::seeded(99),
                servers,
            })),
        }
    }
}

fn error(kind: &str, definitely_not_applied: bool) -> OpError {
    OpError {
        kind: kind.to_string(),
        definitely_not_applied,
        message: format!("fake {kind}"),
    }
}

struct FakeClient {
    node: usize,
    state: Arc<Mutex<State>>,
    timeout: Duration,
}

impl FakeClient {
    /// The store, or the error of a node that cannot answer. A write through an
    /// unreachable node times out and then has taken effect, will take effect once
    /// the node is reachable again, or never: a third each.
    fn reach(&self, write: Option<&Write>) -> Result<MutexGuard<'_, State>, OpError> {
        let mut state = lock(&self.state);
        if state.down[self.node] {
            return Err(error("refused", true));
        }
        if state.unreachable(self.node) {
            if let Some(write) = write {
                match state.rng.random_range(0..3u32) {
                    0 => {
                        state.apply(write);
                    }
                    1 => state.held.push((self.node, write.clone())),
                    _ => {}
                }
            }
            drop(state);
            std::thread::sleep(self.timeout.min(Duration::from_millis(5)));
            return Err(error("timeout", false));
        }
        Ok(state)
    }

    fn write(&mut self, write: Write) -> Result<bool, OpError> {
        let mut state = self.reach(Some(&write))?;
        Ok(state.apply(&write))
    }
}

impl KvClient for FakeClient {
    fn get(&mut self, key: &str, mode: ReadMode) -> Result<Option<Versioned>, OpError> {
        let node = self.node;
        let mut state = self.reach(None)?;
        if state.faulty.buggy_node == Some(node) && mode != ReadMode::Stale {
            if state.copied_at.elapsed() > Duration::from_millis(30) {
                state.old_copy = state.store.clone();
                state.copied_at = Instant::now();
            }
            return Ok(state.old_copy.get(key).cloned());
        }
        Ok(state.store.get(key).cloned())
    }

    fn put(&mut self, key: &str, value: &str) -> Result<(), OpError> {
        self.write(Write::Put(key.to_string(), value.to_string()))
            .map(|_| ())
    }

    fn cas(&mut self, key: &str, expect: Option<u64>, value: &str) -> Result<bool, OpError> {
        self.write(Write::Cas(key.to_string(), expect, value.to_string()))
    }

    fn delete(&mut self, key: &str) -> Result<(), OpError> {
        self.write(Write::Delete(key.to_string())).map(|_| ())
    }
}

impl Cluster for FakeCluster {
    fn nodes(&self) -> Vec<NodeInfo> {
        self.nodes.clone()
    }

    fn client(&self, node: usize, timeout: Duration) -> Box<dyn KvClient> {
        Box::new(FakeClient {
            node,
            state: self.state.clone(),
            timeout,
        })
    }

    fn supports(&self, fault: FaultKind) -> bool {
        fault != FaultKind::Membership || self.nodes.len() > 1
    }

    fn leader(&self) -> Option<usize> {
        let state = lock(&self.state);
        (0..state.servers).find(|&n| !state.down[n] && !state.unreachable(n))
    }

    fn kill(&mut self, node: usize) -> Result<(), String> {
        let mut state = lock(&self.state);
        state.down[node] = true;
        state.held.retain(|(n, _)| *n != node);
        Ok(())
    }

    fn restart(&mut self, node: usize) -> Result<(), String> {
        let mut state = lock(&self.state);
        state.down[node] = false;
        state.release_held();
        Ok(())
    }

    fn pause(&mut self, node: usize) -> Result<(), String> {
        lock(&self.state).paused[node] = true;
        Ok(())
    }

    fn resume(&mut self, node: usize) -> Result<(), String> {
        let mut state = lock(&self.state);
        state.paused[node] = false;
        state.release_held();
        Ok(())
    }

    fn partition(&mut self, groups: &[Vec<usize>]) -> Result<(), String> {
        let mut state = lock(&self.state);
        let servers = state.servers;
        let majority = servers / 2 + 1;
        state.cut_off = vec![false; self.nodes.len()];
        for group in groups {
            let voters = group.iter().filter(|&&n| n < servers).count();
            if voters < majority {
                for &n in group {
                    state.cut_off[n] = true;
                }
            }
        }
        state.release_held();
        Ok(())
    }

    fn heal(&mut self) -> Result<(), String> {
        let mut state = lock(&self.state);
        state.cut_off = vec![false; self.nodes.len()];
        state.release_held();
        Ok(())
    }

    fn cycle_membership(&mut self, _node: usize) -> Result<(), String> {
        Ok(())
    }

    fn local_snapshot(
        &self,
        node: usize,
        prefix: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        let state = lock(&self.state);
        if state.down[node] || state.paused[node] {
            return Err(format!("{} does not answer", self.nodes[node].name));
        }
        Ok(state
            .store
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.value.clone()))
            .collect())
    }

    fn shutdown(&mut self) {}
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chaos::verdict::Linearity;
    use crate::chaos::{run, ChaosOptions, ScheduleTiming};

    /// A short run with quick fault windows.
    fn options(out: &std::path::Path, faults: Vec<FaultKind>) -> ChaosOptions {
        ChaosOptions {
            duration: Duration::from_millis(2_000),
            faults,
            keys: 4,
            out_dir: out.to_path_buf(),
            request_timeout: Duration::from_millis(200),
            think_time: Duration::from_millis(1),
            timing: ScheduleTiming {
                warmup: Duration::from_millis(200),
                quiet_min: Duration::from_millis(100),
                quiet_max: Duration::from_millis(300),
                fault_min: Duration::from_millis(200),
                fault_max: Duration::from_millis(400),
            },
            settle_timeout: Duration::from_secs(2),
            ..ChaosOptions::new(7)
        }
    }

    #[test]
    fn a_correct_cluster_under_faults_gets_a_clean_verdict() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = options(dir.path(), FaultKind::ALL.to_vec());
        let mut cluster = FakeCluster::new(3, 1, Faulty::default());
        let mut progress = Vec::new();
        let outcome = run(&opts, &mut cluster, &mut progress).expect("runs");
        let progress = String::from_utf8_lossy(&progress);
        assert!(
            outcome.verdict.passed(),
            "{}\n{}",
            outcome.line,
            outcome.details
        );
        assert_eq!(outcome.exit_code(), 0);
        assert!(
            outcome.line.starts_with("linearizable: yes ("),
            "{}",
            outcome.line
        );
        assert!(outcome
            .line
            .contains("acknowledged writes lost: 0; nodes converged: yes"));
        assert!(outcome.faults.len() >= 2, "{:?}", outcome.faults);
        assert!(outcome.verdict.figures.ops > 100, "{}", outcome.line);
        assert!(
            outcome.verdict.figures.unknown_writes > 0,
            "{}",
            outcome.line
        );
        assert!(
            progress.contains("ops") && progress.contains("fault: "),
            "{progress}"
        );
        assert!(progress.contains("\n"));
        let history = crate::chaos::run::load_history(&outcome.history_path).expect("history");
        assert!(history.len() as u64 > outcome.verdict.figures.ops);
        assert!(history.iter().any(|r| r.verify));
        let text = std::fs::read_to_string(&outcome.verdict_path).expect("verdict.txt");
        assert!(text.starts_with(&outcome.line));
        let html = std::fs::read_to_string(&outcome.report_path).expect("report.html");
        assert!(html.contains("<svg"), "report without a picture");
    }

    #[test]
    fn stale_reads_through_one_node_are_not_linearizable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = options(dir.path(), Vec::new());
        let faulty = Faulty {
            buggy_node: Some(1),
            ..Faulty::default()
        };
        let mut cluster = FakeCluster::new(3, 0, faulty);
        let outcome = run(&opts, &mut cluster, &mut Vec::new()).expect("runs");
        assert!(
            outcome.line.starts_with("linearizable: no ("),
            "{}",
            outcome.line
        );
        assert!(matches!(
            outcome.verdict.checked.linearity,
            Linearity::No { .. }
        ));
        assert_eq!(outcome.exit_code(), 1);
        assert!(
            outcome.details.contains("not linearizable: key"),
            "{}",
            outcome.details
        );
        assert!(outcome.details.contains("via node2"), "{}", outcome.details);
    }

    #[test]
    fn a_lost_acknowledged_write_is_reported() {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = options(dir.path(), Vec::new());
        let faulty = Faulty {
            lose_first_ledger_write: true,
            ..Faulty::default()
        };
        let mut cluster = FakeCluster::new(3, 0, faulty);
        let outcome = run(&opts, &mut cluster, &mut Vec::new()).expect("runs");
        assert_eq!(outcome.verdict.lost.len(), 1, "{}", outcome.details);
        assert_eq!(
            outcome.verdict.lost[0].missing_on,
            ["node1", "node2", "node3"]
        );
        assert!(
            outcome.line.contains("acknowledged writes lost: 1;"),
            "{}",
            outcome.line
        );
        assert_eq!(outcome.exit_code(), 1);
    }
}
