//! A small seeded simulation of a 3-server cluster: random delays, reordering, loss,
//! duplication, slow disks and crashes that lose unpersisted writes. Checks election
//! safety (one leader per term) and state-machine safety (a committed index never holds
//! two different entries) after every event, then heals and requires progress.
//! A failure names its seed.

use super::*;
use crate::ids::{LogIndex, ServerId, Term};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::BTreeMap;

const IDS: [&str; 3] = ["a", "b", "c"];

#[derive(Default, Clone)]
struct Disk {
    hard_state: HardState,
    entries: Vec<Entry>,
}

struct SimNode {
    raft: Raft,
    disk: Disk,
    pending: Vec<PersistRequest>,
}

struct Sim {
    seed: u64,
    rng: StdRng,
    now: u64,
    nodes: Vec<SimNode>,
    net: Vec<(u64, usize, usize, Message)>,
    leaders: BTreeMap<Term, ServerId>,
    committed: BTreeMap<u64, Entry>,
    lossy: bool,
    /// Per node, the commit index already checked against `committed`.
    checked: [u64; 3],
}

fn config(i: usize) -> RaftConfig {
    RaftConfig {
        id: ServerId(IDS[i].into()),
        election_timeout_ms: 50,
        heartbeat_interval_ms: 5,
        max_entries_per_append: 8,
    }
}

fn index_of(id: &ServerId) -> usize {
    IDS.iter().position(|s| *s == id.0).unwrap()
}

impl Sim {
    fn new(seed: u64) -> Sim {
        let conf = Payload::Configuration(
            IDS.iter()
                .map(|s| (ServerId(s.to_string()), format!("{s}:1")))
                .collect(),
        );
        let disk = Disk {
            hard_state: HardState {
                term: Term(1),
                voted_for: None,
            },
            entries: vec![Entry {
                term: Term(1),
                index: LogIndex(1),
                payload: conf,
            }],
        };
        let nodes = (0..3)
            .map(|i| SimNode {
                raft: Raft::new(
                    config(i),
                    disk.hard_state.clone(),
                    disk.entries.clone(),
                    StdRng::seed_from_u64(seed * 10 + i as u64),
                    0,
                )
                .unwrap(),
                disk: disk.clone(),
                pending: Vec::new(),
            })
            .collect();
        Sim {
            seed,
            rng: StdRng::seed_from_u64(seed),
            now: 0,
            nodes,
            net: Vec::new(),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            lossy: true,
            checked: [0; 3],
        }
    }

    fn run_outputs(&mut self, i: usize) {
        for out in self.nodes[i].raft.drain_outputs() {
            match out {
                Output::Persist(req) => self.nodes[i].pending.push(req),
                Output::Send { to, msg } => {
                    let copies = if self.lossy && self.rng.random_bool(0.1) {
                        0
                    } else if self.lossy && self.rng.random_bool(0.05) {
                        2
                    } else {
                        1
                    };
                    for _ in 0..copies {
                        let at = self.now + self.rng.random_range(1..10);
                        self.net.push((at, i, index_of(&to), msg.clone()));
                    }
                }
                Output::Committed { up_to } => {
                    for index in self.checked[i] + 1..=up_to.0 {
                        let entry = self.nodes[i].raft.entry(LogIndex(index)).cloned();
                        let entry = entry.unwrap_or_else(|| {
                            panic!("seed {}: committed entry missing", self.seed)
                        });
                        match self.committed.get(&index) {
                            Some(known) => assert_eq!(
                                known, &entry,
                                "seed {}: node {} committed a different entry at {index}",
                                self.seed, IDS[i]
                            ),
                            None => {
                                self.committed.insert(index, entry);
                            }
                        }
                    }
                    self.checked[i] = self.checked[i].max(up_to.0);
                }
                Output::RoleChanged { role, term, .. } => {
                    if role == Role::Leader {
                        let me = ServerId(IDS[i].into());
                        let previous = self.leaders.insert(term, me.clone());
                        assert!(
                            previous.is_none() || previous == Some(me),
                            "seed {}: two leaders in term {term}",
                            self.seed
                        );
                    }
                }
            }
        }
    }

    fn persist_all(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let Some(last) = node.pending.last().map(|p| p.id) else {
            return;
        };
        for req in node.pending.drain(..) {
            if let Some(from) = req.truncate_from {
                node.disk
                    .entries
                    .truncate(from.0.saturating_sub(1) as usize);
            }
            for e in req.entries {
                assert_eq!(
                    e.index.0,
                    node.disk.entries.len() as u64 + 1,
                    "seed {}: disk gap",
                    self.seed
                );
                node.disk.entries.push(e);
            }
            if let Some(hs) = req.hard_state {
                node.disk.hard_state = hs;
            }
        }
        node.raft.on_persisted(last);
        self.run_outputs(i);
    }

    fn crash(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        node.pending.clear(); // unflushed writes are lost
        self.checked[i] = 0;
        self.net.retain(|(_, _, to, _)| *to != i);
        let rng = StdRng::seed_from_u64(self.rng.random());
        node.raft = Raft::new(
            config(i),
            node.disk.hard_state.clone(),
            node.disk.entries.clone(),
            rng,
            self.now,
        )
        .unwrap();
        self.run_outputs(i);
    }

    fn step(&mut self) {
        self.now += 1;
        for i in 0..3 {
            self.nodes[i].raft.on_tick(self.now);
            self.run_outputs(i);
        }
        let now = self.now;
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.net)
            .into_iter()
            .partition(|m| m.0 <= now);
        self.net = later;
        for (_, from, to, msg) in due {
            self.nodes[to]
                .raft
                .on_message(now, ServerId(IDS[from].into()), msg);
            self.run_outputs(to);
        }
        for i in 0..3 {
            if !self.lossy || self.rng.random_bool(0.5) {
                self.persist_all(i);
            }
        }
        if self.lossy && self.rng.random_bool(0.003) {
            let i = self.rng.random_range(0..3);
            self.crash(i);
        }
        for i in 0..3 {
            if self.nodes[i].raft.role() == Role::Leader && self.rng.random_bool(0.2) {
                let data = self.rng.random::<u32>().to_le_bytes().to_vec();
                self.nodes[i].raft.propose(Payload::Command(data)).unwrap();
                self.run_outputs(i);
            }
        }
    }
}

#[test]
fn seeded_cluster_keeps_safety_under_faults_and_recovers() {
    // RAFT_SIM_SEEDS=n runs more seeds (a test reads its own knob; the core stays pure).
    let seeds = std::env::var("RAFT_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12);
    for seed in 0..seeds {
        let mut sim = Sim::new(seed);
        for _ in 0..3000 {
            sim.step();
        }
        // Heal: no loss, no crashes, prompt disks. A leader must emerge and commit.
        sim.lossy = false;
        let committed_before = sim.committed.len();
        for _ in 0..2000 {
            sim.step();
        }
        assert!(
            sim.nodes.iter().any(|n| n.raft.role() == Role::Leader),
            "seed {seed}: no leader after healing"
        );
        assert!(
            sim.committed.len() > committed_before,
            "seed {seed}: no progress after healing"
        );
        if seed == 0 {
            println!(
                "seed 0: {} terms with a leader, {} committed",
                sim.leaders.len(),
                sim.committed.len()
            );
        }
        // Log matching: where two logs hold the same (index, term), all before agrees.
        for x in 0..3 {
            for y in x + 1..3 {
                let (lx, ly) = (&sim.nodes[x].raft, &sim.nodes[y].raft);
                let common = lx.last_log_index().min(ly.last_log_index());
                let agree_to = (1..=common.0)
                    .rev()
                    .find(|&i| {
                        lx.entry(LogIndex(i)).map(|e| e.term)
                            == ly.entry(LogIndex(i)).map(|e| e.term)
                    })
                    .unwrap_or(0);
                assert_eq!(
                    lx.entries(LogIndex(1), LogIndex(agree_to)),
                    ly.entries(LogIndex(1), LogIndex(agree_to)),
                    "seed {seed}: log matching violated"
                );
            }
        }
        // Every server converges on the committed log.
        let max = *sim.committed.keys().last().unwrap();
        for n in &sim.nodes {
            assert!(
                n.raft.commit_index().0 + 20 >= max,
                "seed {seed}: {} lags",
                n.raft.id()
            );
        }
    }
}
