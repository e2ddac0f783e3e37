//! A small seeded simulation of a 3-server cluster: random delays, reordering, loss,
//! duplication, slow disks and crashes that lose unpersisted writes. Checks election
//! safety (one leader per term) and state-machine safety (a committed index never holds
//! two different entries) after every event, then heals and requires progress.
//! Servers also take snapshots and compact their logs at random moments (keeping a few
//! trailing entries), so lagging followers are caught up with InstallSnapshot, and
//! crashes recover from snapshot + log.
//! Reads: leaders are asked for ReadIndex reads at random; each must, when confirmed,
//! name an index at least as high as everything committed anywhere when it was asked.
//! Whenever a leader holds its lease, it must know every committed entry (a lease read
//! answers from its own state). Each server's clock runs at its own rate (±2 %), so the
//! lease's margin is exercised.
//! A failure names its seed.
//!
//! The servers are driven only through the runtime seam (`crate::runtime::Core`: tick,
//! receive, effects) and talk through the shared simulated network (`crate::sim::SimNet`),
//! the same harness pieces the SWIM simulation uses.

use super::*;
use crate::ids::{LogIndex, ServerId, Term};
use crate::rng::{seeded, CoreRng};
use crate::runtime::{Core, Effect};
use crate::sim::{Faults, SimNet};
use rand::Rng;
use std::collections::BTreeMap;

const IDS: [&str; 3] = ["a", "b", "c"];

/// Entries kept below a snapshot when compacting.
const TRAILING: u64 = 3;

#[derive(Default, Clone)]
struct Disk {
    hard_state: HardState,
    /// The durable snapshot (the sim's state machine is the committed log itself, so
    /// only its meta matters).
    snapshot: Option<SnapshotMeta>,
    /// Contiguous entries from `first`: they may start after 1 once compacted or reset.
    first: u64,
    entries: Vec<Entry>,
}

impl Disk {
    fn next_index(&self) -> u64 {
        self.first + self.entries.len() as u64
    }

    /// Drop whole entries up to `index` from the front, as the backends do.
    fn compact_until(&mut self, index: u64) {
        let drop = index
            .saturating_sub(self.first - 1)
            .min(self.entries.len() as u64);
        self.entries.drain(..drop as usize);
        self.first += drop;
    }
}

struct Stats {
    snapshots_sent: u64,
    snapshots_restored: u64,
    compactions: u64,
}

struct SimNode {
    raft: Raft,
    disk: Disk,
    pending: Vec<PersistRequest>,
    /// This server's clock rate, in thousandths of real time.
    clock_rate: u64,
}

impl SimNode {
    /// This server's own clock at simulated time `now`.
    fn clock(&self, now: u64) -> u64 {
        now * self.clock_rate / 1000
    }
}

struct Sim {
    seed: u64,
    rng: CoreRng,
    now: u64,
    nodes: Vec<SimNode>,
    net: SimNet<usize, Message>,
    leaders: BTreeMap<Term, ServerId>,
    committed: BTreeMap<u64, Entry>,
    lossy: bool,
    /// Per node, the commit index already checked against `committed`.
    checked: [u64; 3],
    stats: Stats,
    /// A node cut off from the others until the given time (makes followers lag far
    /// enough behind to need a snapshot).
    isolated: Option<(usize, u64)>,
    /// ReadIndex reads asked and not yet answered: id -> highest index committed
    /// anywhere when asked (what the read must see).
    reads: BTreeMap<u64, u64>,
    next_read: u64,
    reads_confirmed: u64,
    lease_reads: u64,
}

/// The network while faults are on.
const LOSSY: Faults = Faults {
    loss: 0.1,
    duplicate: 0.05,
    delay_ms: (1, 10),
};

fn config(i: usize) -> RaftConfig {
    RaftConfig {
        id: ServerId(IDS[i].into()),
        election_timeout_ms: 50,
        heartbeat_interval_ms: 5,
        max_entries_per_append: 8,
        max_append_bytes: 256,
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
            snapshot: None,
            first: 1,
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
                    None,
                    disk.entries.clone(),
                    seeded(seed * 10 + i as u64),
                    0,
                )
                .unwrap(),
                disk: disk.clone(),
                pending: Vec::new(),
                clock_rate: 0,
            })
            .collect::<Vec<_>>();
        let mut rng = seeded(seed);
        let mut nodes = nodes;
        for n in &mut nodes {
            n.clock_rate = rng.random_range(980..=1020);
        }
        Sim {
            seed,
            rng,
            now: 0,
            nodes,
            net: SimNet::new(LOSSY),
            leaders: BTreeMap::new(),
            committed: BTreeMap::new(),
            lossy: true,
            checked: [0; 3],
            isolated: None,
            reads: BTreeMap::new(),
            next_read: 0,
            reads_confirmed: 0,
            lease_reads: 0,
            stats: Stats {
                snapshots_sent: 0,
                snapshots_restored: 0,
                compactions: 0,
            },
        }
    }

    fn run_outputs(&mut self, i: usize) {
        for effect in self.nodes[i].raft.effects() {
            let out = match effect {
                Effect::Send { to, msg } => {
                    let to = index_of(&to);
                    self.net.send(&mut self.rng, self.now, i, to, msg);
                    continue;
                }
                Effect::TickAt(_) => continue, // ticked every simulated millisecond
                Effect::Notify(out) => out,
            };
            match out {
                Output::Persist(req) => self.nodes[i].pending.push(req),
                Output::Send { .. } => unreachable!("sends arrive as Effect::Send"),
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
                Output::InstallSnapshot { to, term } => {
                    let Some(meta) = self.nodes[i].disk.snapshot.clone() else {
                        panic!("seed {}: snapshot requested but none on disk", self.seed);
                    };
                    self.stats.snapshots_sent += 1;
                    let msg = Message::InstallSnapshot {
                        term,
                        leader: ServerId(IDS[i].into()),
                        meta,
                        data: Vec::new(),
                    };
                    self.net
                        .send(&mut self.rng, self.now, i, index_of(&to), msg);
                }
                Output::RestoreSnapshot { meta, .. } => {
                    // A snapshot only ever holds committed entries.
                    if let Some(known) = self.committed.get(&meta.index.0) {
                        assert_eq!(known.term, meta.term, "seed {}: bad snapshot", self.seed);
                    }
                    self.stats.snapshots_restored += 1;
                    self.checked[i] = self.checked[i].max(meta.index.0);
                    // Durable at once, before any later persist.
                    self.nodes[i].disk.snapshot = Some(meta);
                }
                Output::ReadReady { id, index } => {
                    let must_see = self.reads.remove(&id).unwrap_or_else(|| {
                        panic!("seed {}: unknown or repeated read {id}", self.seed)
                    });
                    assert!(
                        index.0 >= must_see,
                        "seed {}: read {id} at {} confirmed at index {index}, but {must_see} was committed when it was asked",
                        self.seed, IDS[i]
                    );
                    self.reads_confirmed += 1;
                }
                Output::ReadFailed { id } => {
                    self.reads.remove(&id);
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
            if let Some(after) = req.reset_after {
                node.disk.entries.clear();
                node.disk.first = after.0 + 1;
            }
            if let Some(from) = req.truncate_from {
                node.disk.entries.retain(|e| e.index < from);
            }
            for e in req.entries {
                assert_eq!(
                    e.index.0,
                    node.disk.next_index(),
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
        self.checked[i] = node.disk.snapshot.as_ref().map_or(0, |s| s.index.0);
        self.net.drop_to(&i);
        let rng = seeded(self.rng.random());
        node.raft = Raft::new(
            config(i),
            node.disk.hard_state.clone(),
            node.disk.snapshot.clone(),
            node.disk.entries.clone(),
            rng,
            node.clock(self.now),
        )
        .unwrap();
        self.run_outputs(i);
    }

    /// Snapshot at the commit index (the sim applies everything committed at once), then
    /// compact memory and disk below it, keeping `TRAILING` entries.
    fn snapshot(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let at = node.raft.commit_index();
        let old = node.disk.snapshot.as_ref().map_or(0, |s| s.index.0);
        let Some(term) = node.raft.term_at(at) else {
            return;
        };
        if at.0 <= old {
            return;
        }
        node.disk.snapshot = Some(SnapshotMeta {
            index: at,
            term,
            configuration: node.raft.configuration_at(at),
        });
        let keep_from = at.0.saturating_sub(TRAILING);
        if node.raft.compact(LogIndex(keep_from)) {
            self.stats.compactions += 1;
        }
        // Only entries the (older) snapshot covers go from the disk.
        node.disk.compact_until(keep_from.min(old));
    }

    fn step(&mut self) {
        self.now += 1;
        self.net.faults = if self.lossy { LOSSY } else { Faults::HEALTHY };
        for i in 0..3 {
            let clock = self.nodes[i].clock(self.now);
            self.nodes[i].raft.tick(clock);
            self.run_outputs(i);
        }
        let now = self.now;
        for (from, to, msg) in self.net.deliver_due(now) {
            let clock = self.nodes[to].clock(now);
            self.nodes[to]
                .raft
                .receive(clock, ServerId(IDS[from].into()), msg);
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
        if self.rng.random_bool(0.02) {
            let i = self.rng.random_range(0..3);
            self.snapshot(i);
        }
        match self.isolated {
            Some((_, until)) if self.now >= until || !self.lossy => {
                self.isolated = None;
                self.net.heal();
            }
            None if self.lossy && self.rng.random_bool(0.002) => {
                let i = self.rng.random_range(0..3);
                self.isolated = Some((i, self.now + 300));
                self.net.isolate(i);
            }
            _ => {}
        }
        for i in 0..3 {
            if self.nodes[i].raft.role() == Role::Leader && self.rng.random_bool(0.2) {
                let data = self.rng.random::<u32>().to_le_bytes().to_vec();
                self.nodes[i].raft.propose(Payload::Command(data)).unwrap();
                self.run_outputs(i);
            }
            self.check_reads(i);
        }
    }

    /// Ask node `i` for a ReadIndex read now and then; if it holds its lease, a read
    /// served from its own state must see everything committed anywhere.
    fn check_reads(&mut self, i: usize) {
        let committed_anywhere = self.committed.keys().last().copied().unwrap_or(0);
        let node = &mut self.nodes[i];
        // The node's clock must have reached its lease's end; tick it to now first so
        // its idea of "now" is current (as the shell does before asking).
        let clock = node.clock(self.now);
        node.raft.tick(clock);
        // (A new leader serves nothing before its no-op is applied: `read_floor`.)
        let lease = node
            .raft
            .lease_expiry_ms()
            .is_some_and(|until| clock < until);
        if lease && node.raft.commit_index() >= node.raft.read_floor() {
            self.lease_reads += 1;
            assert!(
                node.raft.commit_index().0 >= committed_anywhere,
                "seed {}: {} holds its lease at commit {} but {committed_anywhere} is committed",
                self.seed,
                IDS[i],
                node.raft.commit_index()
            );
        }
        let node = &mut self.nodes[i];
        if node.raft.role() == Role::Leader && self.rng.random_bool(0.1) {
            let id = self.next_read;
            self.next_read += 1;
            self.reads.insert(id, committed_anywhere);
            node.raft.read_index(id).unwrap();
        }
        self.run_outputs(i);
    }
}

#[test]
fn seeded_cluster_keeps_safety_under_faults_and_recovers() {
    // RAFT_SIM_SEEDS=n runs more seeds (a test reads its own knob; the core stays pure).
    let seeds = std::env::var("RAFT_SIM_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    let (mut sent, mut restored) = (0, 0);
    let (mut reads, mut lease_reads) = (0, 0);
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
        if sim.committed.len() <= committed_before {
            for n in &sim.nodes {
                let r = &n.raft;
                eprintln!(
                    "{} {:?} term {} commit {} last {} durable {} first {} base {:?} pending {}",
                    r.id(),
                    r.role(),
                    r.term(),
                    r.commit_index(),
                    r.last_log_index(),
                    r.durable_index(),
                    r.first_log_index(),
                    r.log_base().index,
                    n.pending.len()
                );
                eprintln!(
                    "   disk snap {:?} first {} n {}",
                    n.disk.snapshot.as_ref().map(|m| m.index),
                    n.disk.first,
                    n.disk.entries.len()
                );
            }
        }
        assert!(
            sim.committed.len() > committed_before,
            "seed {seed}: no progress after healing"
        );
        if seed == 0 {
            println!(
                "seed 0: {} terms with a leader, {} committed, {} compactions, {} snapshots sent, {} restored",
                sim.leaders.len(),
                sim.committed.len(),
                sim.stats.compactions,
                sim.stats.snapshots_sent,
                sim.stats.snapshots_restored,
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
                let from = lx.first_log_index().max(ly.first_log_index());
                assert_eq!(
                    lx.entries(from, LogIndex(agree_to)),
                    ly.entries(from, LogIndex(agree_to)),
                    "seed {seed}: log matching violated"
                );
            }
        }
        reads += sim.reads_confirmed;
        lease_reads += sim.lease_reads;
        sent += sim.stats.snapshots_sent;
        restored += sim.stats.snapshots_restored;
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
    println!("{seeds} seeds: {sent} snapshots sent, {restored} restored, {reads} ReadIndex reads confirmed, {lease_reads} lease reads");
    assert!(reads > 0 && lease_reads > 0, "reads were never exercised");
    assert!(
        seeds < 12 || (sent > 0 && restored > 0),
        "the simulation never exercised InstallSnapshot"
    );
}
