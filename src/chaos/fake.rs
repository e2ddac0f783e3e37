//! An in-memory cluster for the engine's tests: one shared, correctly locked store, so
//! every answer it gives is linearizable unless it is told to misbehave.
//!
//! Faults: a killed node refuses (definitely not applied); a paused or cut-off node
//! times out, and a write through it has then sometimes been applied and sometimes
//! not (both are legal outcomes of a timeout). Misbehaviours: `buggy_node` answers
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
    faulty: Faulty,
    rng: protocol::rng::CoreRng,
    servers: usize,
}

impl State {
    fn unreachable(&self, node: usize) -> bool {
        self.paused[node] || self.cut_off[node]
    }
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
    /// `Err` when the node cannot answer; `apply` says whether a write through an
    /// unreachable node takes effect before it times out.
    fn reach(&self, write: bool) -> Result<MutexGuard<'_, State>, (OpError, bool)> {
        let mut state = lock(&self.state);
        if state.down[self.node] {
            return Err((error("refused", true), false));
        }
        if state.unreachable(self.node) {
            let apply = write && state.rng.random_bool(0.5);
            drop(state);
            std::thread::sleep(self.timeout.min(Duration::from_millis(5)));
            return Err((error("timeout", false), apply));
        }
        Ok(state)
    }

    fn write(&mut self, op: impl FnOnce(&mut State) -> bool) -> Result<bool, OpError> {
        match self.reach(true) {
            Ok(mut state) => Ok(op(&mut state)),
            Err((e, apply)) => {
                if apply {
                    op(&mut lock(&self.state));
                }
                Err(e)
            }
        }
    }
}

impl KvClient for FakeClient {
    fn get(&mut self, key: &str, mode: ReadMode) -> Result<Option<Versioned>, OpError> {
        let node = self.node;
        let mut state = self.reach(false).map_err(|(e, _)| e)?;
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
        self.write(|state| {
            if key.starts_with(LEDGER_PREFIX)
                && state.faulty.lose_first_ledger_write
                && !state.ledger_lost
            {
                state.ledger_lost = true;
                return true;
            }
            state.index += 1;
            let version = state.index;
            state.store.insert(
                key.to_string(),
                Versioned {
                    value: value.to_string(),
                    version,
                },
            );
            true
        })
        .map(|_| ())
    }

    fn cas(&mut self, key: &str, expect: Option<u64>, value: &str) -> Result<bool, OpError> {
        self.write(|state| {
            if state.store.get(key).map(|v| v.version) != expect {
                return false;
            }
            state.index += 1;
            let version = state.index;
            state.store.insert(
                key.to_string(),
                Versioned {
                    value: value.to_string(),
                    version,
                },
            );
            true
        })
    }

    fn delete(&mut self, key: &str) -> Result<(), OpError> {
        self.write(|state| {
            state.index += 1;
            state.store.remove(key);
            true
        })
        .map(|_| ())
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
        lock(&self.state).down[node] = true;
        Ok(())
    }

    fn restart(&mut self, node: usize) -> Result<(), String> {
        lock(&self.state).down[node] = false;
        Ok(())
    }

    fn pause(&mut self, node: usize) -> Result<(), String> {
        lock(&self.state).paused[node] = true;
        Ok(())
    }

    fn resume(&mut self, node: usize) -> Result<(), String> {
        lock(&self.state).paused[node] = false;
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
        Ok(())
    }

    fn heal(&mut self) -> Result<(), String> {
        let mut state = lock(&self.state);
        state.cut_off = vec![false; self.nodes.len()];
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
