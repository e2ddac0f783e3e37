//! A small seeded simulation of a 3-server cluster: random delays, reordering, loss,
//! duplication, partitions (both ways, or one way only: a server, often the leader,
//! that can send but not hear, or hear but not send), slow disks and crashes that lose
//! or tear unconfirmed writes (the disk had written some of the pending requests whole
//! and a prefix of the next one, the hard state in it or not; nothing confirmed by
//! `on_persisted` is ever lost), recovering with `Raft::new` on what the disk holds.
//! Checks election
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
//!
//! With membership changes on, two more servers start empty and an operator on the
//! leader adds servers as non-voters, promotes caught-up ones, and removes voters and
//! non-voters (the leader too: replacing the leader), one change at a time, under the
//! same faults. Then it also checks leader completeness (a new leader holds every
//! committed entry), that every server's configuration in effect is the latest one its
//! own log holds, that committed configurations change one server at a time, and that
//! every acknowledged write is in the final committed log.
//!
//! The log cache is tiny in most seeds (one to six entries, see [`cache_entries`]), so
//! leaders constantly load entries for lagging followers from the simulated disk:
//! each load is served after a random delay (so it reorders with messages, persists,
//! snapshots and crashes), sometimes fails, sometimes arrives twice, and is lost in a
//! crash; the disk it reads may have been truncated, compacted or reset meanwhile.
//! A crashed server restarts from a [`RecoveredLog`] built from its disk with the same
//! tiny budget (terms and configurations of every entry, a tail of one to six entries
//! whole), so what it commits after the restart is mostly older than its cache: its
//! core reads it back for applying (`Output::LoadCommitted`, served like the leaders'
//! loads: delayed, failing, duplicated, lost in a crash). Each server's state machine
//! (the entries it was fed through `Output::Apply`) must get every committed entry
//! from its snapshot on, in order, exactly once, the same entry at each index
//! everywhere (state-machine safety); snapshots are taken at what it applied, and
//! writes are acknowledged to their clients when their leader applies them.
//!
//! A failure names its seed; `RAFT_SIM_SEED=n` replays exactly that seed.
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

const IDS: [&str; 5] = ["a", "b", "c", "d", "e"];
/// Bootstrapped voters; the other servers start empty.
const INITIAL_VOTERS: usize = 3;
/// A non-voter within this many entries of the leader's last index may be promoted.
const CAUGHT_UP: u64 = 5;

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

    /// Write one persist request whole, in the order a backend applies it.
    fn write(&mut self, req: PersistRequest, seed: u64) {
        if let Some(after) = req.reset_after {
            self.entries.clear();
            self.first = after.0 + 1;
        }
        if let Some(from) = req.truncate_from {
            self.entries.retain(|e| e.index < from);
        }
        for e in req.entries {
            assert_eq!(e.index.0, self.next_index(), "seed {seed}: disk gap");
            self.entries.push(e);
        }
        if let Some(hs) = req.hard_state {
            self.hard_state = hs;
        }
    }

    /// Write only part of a request, as a crash in the middle of it leaves the disk:
    /// its first `steps` steps (the reset, the truncation, then entries one by one),
    /// and its hard state only if `hard_state`. Returns whether it was really torn:
    /// some of it written and some not.
    fn write_torn(
        &mut self,
        req: PersistRequest,
        steps: usize,
        hard_state: bool,
        seed: u64,
    ) -> bool {
        let has_hard_state = req.hard_state.is_some();
        let whole = Disk::steps(&req) <= steps && (hard_state || !has_hard_state);
        let some = steps > 0 || (hard_state && has_hard_state);
        let mut budget = steps;
        let mut take = |present: bool| {
            let taken = present && budget > 0;
            budget -= usize::from(taken);
            taken
        };
        let torn = PersistRequest {
            id: req.id,
            reset_after: req.reset_after.filter(|_| take(true)),
            truncate_from: req.truncate_from.filter(|_| take(true)),
            entries: req.entries.into_iter().take(budget).collect(),
            hard_state: req.hard_state.filter(|_| hard_state),
            // Never confirmed durable: its replies never leave.
            then_send: Vec::new(),
        };
        self.write(torn, seed);
        some && !whole
    }

    /// How many steps `write_torn` can cut a request's log changes into.
    fn steps(req: &PersistRequest) -> usize {
        usize::from(req.reset_after.is_some())
            + usize::from(req.truncate_from.is_some())
            + req.entries.len()
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

#[derive(Default)]
struct Stats {
    snapshots_sent: u64,
    snapshots_restored: u64,
    compactions: u64,
    /// Membership changes proposed / seen committed (by their proposer).
    changes_proposed: u64,
    changes_refused: u64,
    leaders_removed: u64,
    /// One-way partitions, and those of them that left the leader on the minority side.
    one_way_partitions: u64,
    leader_in_one_way_minority: u64,
    /// Crashes that left a persist request partly written.
    torn_writes: u64,
    /// `LoadEntries` served with entries / failed (on purpose or compacted away).
    loads_served: u64,
    loads_failed: u64,
    /// `LoadCommitted` (applying entries older than the cache) served with entries.
    apply_loads: u64,
    /// Replies sent by the disk straight after a persist (`PersistRequest::then_send`).
    replies_ridden: u64,
}

impl Stats {
    fn add_fault_counts(&mut self, run: &Stats) {
        self.one_way_partitions += run.one_way_partitions;
        self.leader_in_one_way_minority += run.leader_in_one_way_minority;
        self.torn_writes += run.torn_writes;
        self.loads_served += run.loads_served;
        self.loads_failed += run.loads_failed;
        self.apply_loads += run.apply_loads;
        self.replies_ridden += run.replies_ridden;
    }

    fn fault_counts(&self) -> String {
        format!(
            "{} one-way partitions ({} with the leader in a minority), {} torn writes, {} loads served, {} failed, {} loads for applying, {} replies sent by the disk",
            self.one_way_partitions,
            self.leader_in_one_way_minority,
            self.torn_writes,
            self.loads_served,
            self.loads_failed,
            self.apply_loads,
            self.replies_ridden
        )
    }

    /// Over the default seed counts, each fault kind must have happened (so a change
    /// to the schedule cannot silently stop exercising it); a single replayed seed
    /// need not show them all.
    fn assert_faults_exercised(&self, runs: u64) {
        assert!(
            runs < 12
                || (self.one_way_partitions > 0
                    && self.leader_in_one_way_minority > 0
                    && self.torn_writes > 0
                    && self.loads_served > 0
                    && self.loads_failed > 0
                    && self.apply_loads > 0
                    && self.replies_ridden > 0),
            "the simulation never exercised a fault kind: {}",
            self.fault_counts()
        );
    }
}

/// An `Output::LoadEntries` (for follower `to`) or `Output::LoadCommitted` (`to` is
/// None) the simulated disk will serve at `at`.
struct Load {
    at: u64,
    to: Option<ServerId>,
    from: LogIndex,
    up_to: LogIndex,
    max_bytes: usize,
}

struct SimNode {
    raft: Raft,
    disk: Disk,
    pending: Vec<PersistRequest>,
    loads: Vec<Load>,
    /// The last index its state machine was fed (`Output::Apply`) or restored to.
    applied: u64,
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
    /// The term committed at each index, as the servers reported commits.
    committed_terms: BTreeMap<u64, Term>,
    /// The entry applied at each index, as state machines were fed.
    committed: BTreeMap<u64, Entry>,
    lossy: bool,
    /// Per node, the commit index already checked against `committed`.
    checked: Vec<u64>,
    stats: Stats,
    /// The operator proposes membership changes on the leader.
    membership_changes: bool,
    /// Writes a leader proposed and then saw committed: (index, payload).
    acknowledged: BTreeMap<u64, Payload>,
    /// Per node, writes it proposed as leader and awaits: index → (term, payload).
    proposed: Vec<BTreeMap<u64, (Term, Payload)>>,
    /// A node cut off from the others (or, with membership changes, two nodes split
    /// from the rest, or links cut one way: `partition_one_way`) until the given time (makes followers lag far enough behind to
    /// need a snapshot).
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

fn config(i: usize, seed: u64) -> RaftConfig {
    let cache = cache_entries(seed);
    RaftConfig {
        id: ServerId(IDS[i].into()),
        election_timeout_ms: 50,
        heartbeat_interval_ms: 5,
        max_entries_per_append: 8,
        max_append_bytes: 256,
        // A command here is about 36 bytes (`approx_bytes`): the byte budget binds
        // about as often as the count.
        log_cache_bytes: cache.saturating_mul(36 + 4 * (seed as usize % 3)),
        log_cache_entries: cache,
        // Both ways a reply can wait for the disk, half the seeds each.
        replies_ride_persists: (seed / 7).is_multiple_of(2),
    }
}

/// Entries in each server's log cache: one to six in most seeds (every seventh keeps
/// the default, so the cache-less path stays exercised too).
fn cache_entries(seed: u64) -> usize {
    if seed % 7 == 6 {
        LOG_CACHE_ENTRIES
    } else {
        1 + (seed % 6) as usize
    }
}

fn index_of(id: &ServerId) -> usize {
    IDS.iter().position(|s| *s == id.0).unwrap()
}

fn id(i: usize) -> ServerId {
    ServerId(IDS[i].into())
}

impl Sim {
    /// `servers` nodes, the first three bootstrapped as voters.
    fn new(seed: u64, servers: usize) -> Sim {
        let conf = Payload::Configuration(
            IDS[..INITIAL_VOTERS]
                .iter()
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
        let nodes = (0..servers)
            .map(|i| {
                let disk = if i < INITIAL_VOTERS {
                    disk.clone()
                } else {
                    Disk {
                        first: 1,
                        ..Disk::default()
                    }
                };
                SimNode {
                    raft: Raft::new(
                        config(i, seed),
                        disk.hard_state.clone(),
                        None,
                        disk.entries.clone(),
                        seeded(seed * 10 + i as u64),
                        0,
                    )
                    .unwrap(),
                    disk,
                    pending: Vec::new(),
                    loads: Vec::new(),
                    applied: 0,
                    clock_rate: 0,
                }
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
            committed_terms: BTreeMap::new(),
            committed: BTreeMap::new(),
            lossy: true,
            checked: vec![0; servers],
            isolated: None,
            reads: BTreeMap::new(),
            next_read: 0,
            reads_confirmed: 0,
            lease_reads: 0,
            stats: Stats::default(),
            membership_changes: false,
            acknowledged: BTreeMap::new(),
            proposed: vec![BTreeMap::new(); servers],
        }
    }

    fn with_membership_changes(mut self) -> Sim {
        self.membership_changes = true;
        self
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
                    // Only the term is known below the cache.
                    for index in self.checked[i] + 1..=up_to.0 {
                        let term = self.nodes[i].raft.term_at(LogIndex(index));
                        let term = term.unwrap_or_else(|| {
                            panic!("seed {}: committed index {index} unknown", self.seed)
                        });
                        let known = *self.committed_terms.entry(index).or_insert(term);
                        assert_eq!(
                            known, term,
                            "seed {}: node {} committed another term at {index}",
                            self.seed, IDS[i]
                        );
                    }
                    self.checked[i] = self.checked[i].max(up_to.0);
                    self.check_membership_in_effect(i);
                }
                Output::Apply { entries } => self.apply(i, entries),
                Output::LoadCommitted {
                    from,
                    up_to,
                    max_bytes,
                } => {
                    let at = self.now + self.rng.random_range(0..15);
                    self.nodes[i].loads.push(Load {
                        at,
                        to: None,
                        from,
                        up_to,
                        max_bytes,
                    });
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
                    self.nodes[i].applied = meta.index.0;
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
                Output::LoadEntries {
                    to,
                    from,
                    up_to,
                    max_bytes,
                } => {
                    let at = self.now + self.rng.random_range(0..15);
                    self.nodes[i].loads.push(Load {
                        at,
                        to: Some(to),
                        from,
                        up_to,
                        max_bytes,
                    });
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
                        self.check_leader_completeness(i);
                    } else {
                        // Its proposals' fate is now unknown to it: never acknowledged.
                        self.proposed[i].clear();
                    }
                }
            }
        }
    }

    /// Node `i`'s state machine is fed `entries`: they must continue what it has, be
    /// committed there, and be the entries applied at those indexes everywhere. Its own
    /// proposals among them (still the entries it appended) are acknowledged to their
    /// clients.
    fn apply(&mut self, i: usize, entries: Vec<Entry>) {
        let seed = self.seed;
        let Some(last) = entries.last().map(|e| e.index.0) else {
            panic!("seed {seed}: an empty Apply");
        };
        let commit = self.nodes[i].raft.commit_index().0;
        assert!(
            last <= commit,
            "seed {seed}: {} applies {last} beyond its commit {commit}",
            IDS[i]
        );
        for (k, entry) in entries.into_iter().enumerate() {
            let index = entry.index.0;
            assert_eq!(
                index,
                self.nodes[i].applied + 1,
                "seed {seed}: {} applies {index} after {} (entry {k} of a batch)",
                IDS[i],
                self.nodes[i].applied
            );
            if let Some(term) = self.committed_terms.get(&index) {
                assert_eq!(
                    *term, entry.term,
                    "seed {seed}: {} applies another term at {index}",
                    IDS[i]
                );
            }
            match self.committed.get(&index) {
                Some(known) => assert_eq!(
                    known, &entry,
                    "seed {seed}: node {} applied a different entry at {index}",
                    IDS[i]
                ),
                None => {
                    self.committed.insert(index, entry.clone());
                }
            }
            self.nodes[i].applied = index;
            if let Some((term, payload)) = self.proposed[i].remove(&index) {
                if entry.term == term && entry.payload == payload {
                    self.acknowledged.insert(index, payload);
                }
            }
        }
        // Proposals below what is applied were replaced by other entries.
        let rest = self.proposed[i].split_off(&(last + 1));
        self.proposed[i] = rest;
    }

    /// A new leader holds every entry known to be committed (leader completeness).
    fn check_leader_completeness(&self, i: usize) {
        let raft = &self.nodes[i].raft;
        let base = raft.log_base();
        for (index, term) in &self.committed_terms {
            if *index > raft.last_log_index().0 {
                panic!(
                    "seed {}: leader {} lacks committed entry {index}",
                    self.seed, IDS[i]
                );
            }
            if *index == base.index.0 {
                assert_eq!(base.term, *term, "seed {}: leader base", self.seed);
            } else if *index > base.index.0 {
                // Below the cache only the term is known (and, by log matching, enough).
                assert_eq!(
                    raft.term_at(LogIndex(*index)),
                    Some(*term),
                    "seed {}: leader {} holds another term at committed {index}",
                    self.seed,
                    IDS[i]
                );
                let entry = self.committed.get(index);
                if let (Some(held), Some(entry)) = (raft.entry(LogIndex(*index)), entry) {
                    assert_eq!(
                        held, entry,
                        "seed {}: leader {} holds another entry at committed {index}",
                        self.seed, IDS[i]
                    );
                }
            }
        }
    }

    /// The configuration a server acts on is the latest one its own log holds (or its
    /// snapshot's), and the committed configurations change one server at a time.
    fn check_membership_in_effect(&self, i: usize) {
        let raft = &self.nodes[i].raft;
        let from_log = raft.configuration_at(raft.last_log_index());
        assert_eq!(
            raft.membership(),
            &from_log,
            "seed {}: {} acts on a configuration its log does not hold",
            self.seed,
            IDS[i]
        );
        let index = raft.membership_index();
        assert!(
            index.0 == 0
                || raft
                    .entry(index)
                    .is_some_and(|e| e.payload.membership().is_some())
                || index <= raft.log_base().index
                || (index < raft.cache_first_index()
                    && self.nodes[i]
                        .disk
                        .entries
                        .iter()
                        .any(|e| e.index == index && e.payload.membership().is_some())),
            "seed {}: {}'s configuration index {index} holds no configuration (base {}, cache from {}, last {}, commit {}, durable {}; disk from {} to {}: {:?}; pending {})",
            self.seed,
            IDS[i],
            raft.log_base().index,
            raft.cache_first_index(),
            raft.last_log_index(),
            raft.commit_index(),
            raft.durable_index(),
            self.nodes[i].disk.first,
            self.nodes[i].disk.next_index(),
            self.nodes[i].disk.entries.iter().find(|e| e.index == index),
            self.nodes[i].pending.len()
        );
        let mut previous: Option<Configuration> = None;
        for entry in self.committed.values() {
            let Some(next) = entry.payload.membership() else {
                continue;
            };
            if let Some(prev) = &previous {
                let differs = differing_servers(prev, &next);
                assert!(
                    differs <= 1,
                    "seed {}: committed configurations differ in {differs} servers: {prev:?} -> {next:?}",
                    self.seed
                );
            }
            previous = Some(next);
        }
    }

    /// The operator on the leader: add an outsider as a non-voter, promote a caught-up
    /// non-voter, or remove a voter (perhaps the leader) or a non-voter. Refusals (a
    /// change in progress, a leader not ready yet) are expected and counted.
    fn change_membership(&mut self, leader: usize) {
        let raft = &self.nodes[leader].raft;
        let membership = raft.membership().clone();
        let last = raft.last_log_index().0;
        let progress = raft.server_progress();
        let outsiders: Vec<usize> = (0..self.nodes.len())
            .filter(|&i| !membership.contains(&id(i)))
            .collect();
        let caught_up: Vec<ServerId> = progress
            .iter()
            .filter(|p| !p.voter && p.match_index.0 + CAUGHT_UP >= last)
            .map(|p| p.id.clone())
            .collect();
        let change = match self.rng.random_range(0..4) {
            0 if !outsiders.is_empty() => {
                let i = outsiders[self.rng.random_range(0..outsiders.len())];
                ConfigChange::AddNonVoter {
                    id: id(i),
                    addr: format!("{}:1", IDS[i]),
                }
            }
            1 if !caught_up.is_empty() => ConfigChange::Promote {
                id: caught_up[self.rng.random_range(0..caught_up.len())].clone(),
            },
            2 if membership.voters.len() > INITIAL_VOTERS => {
                let voters = &membership.voters;
                let victim = voters[self.rng.random_range(0..voters.len())].0.clone();
                if victim == id(leader) {
                    self.stats.leaders_removed += 1;
                }
                ConfigChange::Remove { id: victim }
            }
            3 if !membership.non_voters.is_empty() => {
                let nv = &membership.non_voters;
                ConfigChange::Remove {
                    id: nv[self.rng.random_range(0..nv.len())].0.clone(),
                }
            }
            _ => return,
        };
        match self.nodes[leader].raft.propose_change(change) {
            Ok(_) => self.stats.changes_proposed += 1,
            Err(
                ChangeError::ChangeInProgress { .. }
                | ChangeError::LeaderNotReady
                | ChangeError::NotLeader(_),
            ) => self.stats.changes_refused += 1,
            Err(e) => panic!("seed {}: change refused unexpectedly: {e}", self.seed),
        }
        self.run_outputs(leader);
    }

    fn persist_all(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let Some(last) = node.pending.last().map(|p| p.id) else {
            return;
        };
        let mut then_send = Vec::new();
        for mut req in node.pending.drain(..) {
            then_send.append(&mut req.then_send);
            node.disk.write(req, self.seed);
        }
        // Durable: the replies riding the requests leave first, as the shell sends them.
        for (to, msg) in then_send {
            self.stats.replies_ridden += 1;
            let to = index_of(&to);
            self.net.send(&mut self.rng, self.now, i, to, msg);
        }
        self.nodes[i].raft.on_persisted(last);
        self.run_outputs(i);
    }

    /// The node stops. None of its pending requests was confirmed, so the disk may
    /// hold any prefix of them in order: some written whole, the next torn part-way,
    /// the rest lost. Then it restarts from what the disk holds.
    fn crash(&mut self, i: usize) {
        self.proposed[i].clear();
        let node = &mut self.nodes[i];
        node.loads.clear();
        let mut pending = std::mem::take(&mut node.pending).into_iter();
        let written = self.rng.random_range(0..=pending.len());
        for req in pending.by_ref().take(written) {
            node.disk.write(req, self.seed);
        }
        if let Some(req) = pending.next() {
            let steps = self.rng.random_range(0..=Disk::steps(&req));
            let hard_state = self.rng.random_bool(0.5);
            if node.disk.write_torn(req, steps, hard_state, self.seed) {
                self.stats.torn_writes += 1;
            }
        }
        self.checked[i] = node.disk.snapshot.as_ref().map_or(0, |s| s.index.0);
        // The state machine restarts from the snapshot.
        node.applied = self.checked[i];
        self.net.drop_to(&i);
        let rng = seeded(self.rng.random());
        // As a log store's open scan: every entry seen, a tail within the budget kept.
        let cfg = config(i, self.seed);
        let mut recovered = RecoveredLog::new(CacheBudget::of(&cfg));
        for e in &node.disk.entries {
            recovered
                .push(e.clone())
                .unwrap_or_else(|e| panic!("seed {}: disk log: {e}", self.seed));
        }
        node.raft = Raft::new(
            cfg,
            node.disk.hard_state.clone(),
            node.disk.snapshot.clone(),
            recovered,
            rng,
            node.clock(self.now),
        )
        .unwrap_or_else(|e| panic!("seed {}: {} cannot recover: {e}", self.seed, IDS[i]));
        self.run_outputs(i);
    }

    /// Serve node `i`'s due loads from its disk as it is now (it may have been
    /// truncated, compacted or reset since the load was asked for): sometimes failing,
    /// sometimes answering twice.
    fn serve_loads(&mut self, i: usize) {
        let now = self.now;
        let (due, later): (Vec<Load>, Vec<Load>) = std::mem::take(&mut self.nodes[i].loads)
            .into_iter()
            .partition(|l| l.at <= now);
        self.nodes[i].loads = later;
        for load in due {
            let disk = &self.nodes[i].disk;
            let loaded = if self.rng.random_bool(0.1) {
                Err("injected read failure".to_string())
            } else if load.from.0 < disk.first || load.from.0 >= disk.next_index() {
                Err(format!("entry {} is not on disk", load.from))
            } else {
                let start = (load.from.0 - disk.first) as usize;
                let mut bytes = 0usize;
                let entries: Vec<Entry> = disk.entries[start..]
                    .iter()
                    .take_while(|e| e.index <= load.up_to)
                    .enumerate()
                    .take_while(|(k, e)| {
                        bytes += e.payload.approx_bytes();
                        *k == 0 || bytes <= load.max_bytes
                    })
                    .map(|(_, e)| e.clone())
                    .collect();
                Ok(entries)
            };
            if loaded.is_ok() {
                self.stats.loads_served += 1;
                if load.to.is_none() {
                    self.stats.apply_loads += 1;
                }
            } else {
                self.stats.loads_failed += 1;
            }
            let twice = self.rng.random_bool(0.05);
            for _ in 0..(1 + usize::from(twice)) {
                let clock = self.nodes[i].clock(now);
                let raft = &mut self.nodes[i].raft;
                raft.on_tick(clock);
                match &load.to {
                    Some(to) => raft.on_entries_loaded(to, load.from, loaded.clone()),
                    None => raft.on_committed_loaded(load.from, loaded.clone()),
                }
                self.run_outputs(i);
            }
        }
    }

    /// Snapshot at what the state machine has applied, then compact memory and disk
    /// below it, keeping `TRAILING` entries.
    fn snapshot(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let at = LogIndex(node.applied);
        let old = node.disk.snapshot.as_ref().map_or(0, |s| s.index.0);
        let Some(term) = node.raft.term_at(at) else {
            return;
        };
        if at.0 <= old {
            return;
        }
        let membership = node.raft.configuration_at(at);
        node.disk.snapshot = Some(SnapshotMeta {
            index: at,
            term,
            configuration: membership.voters,
            non_voters: membership.non_voters,
        });
        let keep_from = at.0.saturating_sub(TRAILING);
        if node.raft.compact(LogIndex(keep_from)) {
            self.stats.compactions += 1;
        }
        // Only entries the (older) snapshot covers go from the disk, and only those the
        // core forgot too (it may have refused: a log it still reads from the disk).
        node.disk
            .compact_until(keep_from.min(old).min(node.raft.log_base().index.0));
    }

    fn step(&mut self) {
        self.now += 1;
        self.net.faults = if self.lossy { LOSSY } else { Faults::HEALTHY };
        let n = self.nodes.len();
        for i in 0..n {
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
        for i in 0..n {
            self.serve_loads(i);
        }
        // Crash before this step's flushes, often a node whose disk has work in
        // progress (so its writes may be torn).
        if self.lossy && self.rng.random_bool(0.003) {
            let busy: Vec<usize> = (0..n)
                .filter(|&k| !self.nodes[k].pending.is_empty())
                .collect();
            let i = if !busy.is_empty() && self.rng.random_bool(0.5) {
                busy[self.rng.random_range(0..busy.len())]
            } else {
                self.rng.random_range(0..n)
            };
            self.crash(i);
        }
        for i in 0..n {
            if !self.lossy || self.rng.random_bool(0.5) {
                self.persist_all(i);
            }
        }
        if self.rng.random_bool(0.02) {
            let i = self.rng.random_range(0..n);
            self.snapshot(i);
        }
        match self.isolated {
            Some((_, until)) if self.now >= until || !self.lossy => {
                self.isolated = None;
                self.net.heal();
            }
            None if self.lossy && self.rng.random_bool(0.003) => {
                let i = self.rng.random_range(0..n);
                self.isolated = Some((i, self.now + 300));
                if self.rng.random_bool(1.0 / 3.0) {
                    self.partition_one_way(i);
                } else if self.membership_changes && self.rng.random_bool(0.5) {
                    // Two servers on one side, the rest on the other: with four or five
                    // members either side may hold an old leader.
                    let j = (i + self.rng.random_range(1..n)) % n;
                    self.net.split([i, j]);
                } else {
                    self.net.isolate(i);
                }
            }
            _ => {}
        }
        for i in 0..n {
            if self.nodes[i].raft.role() == Role::Leader && self.rng.random_bool(0.2) {
                let data = self.rng.random::<u32>().to_le_bytes().to_vec();
                let payload = Payload::Command(data);
                let index = self.nodes[i].raft.propose(payload.clone()).unwrap();
                let term = self.nodes[i].raft.term();
                self.proposed[i].insert(index.0, (term, payload));
                self.run_outputs(i);
            }
            self.check_reads(i);
            let operator = self.membership_changes && self.lossy;
            if operator && self.nodes[i].raft.role() == Role::Leader && self.rng.random_bool(0.05) {
                self.change_membership(i);
            }
        }
    }

    /// Cut links in one direction only, around the leader most of the time (else
    /// around `i`), with perhaps a second server on its side: that side either hears
    /// the others but cannot reach them, or reaches them but cannot hear them. Usually
    /// every link across is cut (with a leader on the minority side, that is the case
    /// where it keeps suppressing elections but cannot commit), sometimes just one.
    fn partition_one_way(&mut self, i: usize) {
        let n = self.nodes.len();
        let leader = (0..n).find(|&k| self.nodes[k].raft.role() == Role::Leader);
        let first = match leader {
            Some(l) if self.rng.random_bool(0.75) => l,
            _ => i,
        };
        let mut side = vec![first];
        if self.membership_changes && self.rng.random_bool(0.5) {
            side.push((first + self.rng.random_range(1..n)) % n);
        }
        let mut others: Vec<usize> = (0..n).filter(|k| !side.contains(k)).collect();
        let every_link = self.rng.random_bool(0.75);
        if !every_link {
            others = vec![others[self.rng.random_range(0..others.len())]];
        }
        if self.rng.random_bool(0.5) {
            self.net
                .cut_one_way(side.iter().copied(), others.iter().copied());
        } else {
            self.net
                .cut_one_way(others.iter().copied(), side.iter().copied());
        }
        self.stats.one_way_partitions += 1;
        if let Some(l) = leader.filter(|l| every_link && side.contains(l)) {
            let voters = &self.nodes[l].raft.membership().voters;
            let on_side = voters
                .iter()
                .filter(|v| side.contains(&index_of(&v.0)))
                .count();
            if 2 * on_side < voters.len() {
                self.stats.leader_in_one_way_minority += 1;
            }
        }
    }

    /// Ask node `i` for a ReadIndex read now and then; if it holds its lease, a read
    /// served from its own state must see everything committed anywhere.
    fn check_reads(&mut self, i: usize) {
        let committed_anywhere = self.committed_terms.keys().last().copied().unwrap_or(0);
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

/// How many servers are in one configuration and not (in that role) in the other.
fn differing_servers(a: &Configuration, b: &Configuration) -> usize {
    let role = |c: &Configuration, id: &ServerId| {
        if c.is_voter(id) {
            2
        } else if c.contains(id) {
            1
        } else {
            0
        }
    };
    let ids: std::collections::BTreeSet<&ServerId> =
        a.servers().chain(b.servers()).map(|(id, _)| id).collect();
    ids.into_iter()
        .filter(|id| role(a, id) != role(b, id))
        .count()
}

/// The seeds to run: `RAFT_SIM_SEED=n` replays one; `RAFT_SIM_SEEDS=n` runs n seeds from
/// `RAFT_SIM_FIRST_SEED` (default 0; CI picks a random one for its random batch). A test
/// reads its own knobs; the core stays pure.
fn seeds(default: u64) -> std::ops::Range<u64> {
    let knob = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
    match knob("RAFT_SIM_SEED") {
        Some(seed) => seed..seed + 1,
        None => {
            let first = knob("RAFT_SIM_FIRST_SEED").unwrap_or(0);
            first..first.saturating_add(knob("RAFT_SIM_SEEDS").unwrap_or(default))
        }
    }
}

/// Log matching: where two logs hold the same (index, term), all before agrees.
fn check_log_matching(sim: &Sim) {
    let seed = sim.seed;
    let n = sim.nodes.len();
    for x in 0..n {
        for y in x + 1..n {
            let (lx, ly) = (&sim.nodes[x].raft, &sim.nodes[y].raft);
            let common = lx.last_log_index().min(ly.last_log_index());
            let from = lx.first_log_index().max(ly.first_log_index());
            let agree_to = (from.0..=common.0)
                .rev()
                .find(|&i| {
                    let (tx, ty) = (lx.term_at(LogIndex(i)), ly.term_at(LogIndex(i)));
                    tx.is_some() && tx == ty
                })
                .unwrap_or(0);
            for i in from.0..=agree_to {
                let i = LogIndex(i);
                assert_eq!(
                    lx.term_at(i),
                    ly.term_at(i),
                    "seed {seed}: log matching violated at {i}"
                );
                if let (Some(ex), Some(ey)) = (lx.entry(i), ly.entry(i)) {
                    assert_eq!(ex, ey, "seed {seed}: log matching violated at {i}");
                }
            }
        }
    }
}

#[test]
fn seeded_cluster_keeps_safety_under_faults_and_recovers() {
    let seeds = seeds(64);
    let runs = seeds.end - seeds.start;
    let (mut sent, mut restored) = (0, 0);
    let (mut reads, mut lease_reads) = (0, 0);
    let mut faults = Stats::default();
    for seed in seeds {
        let mut sim = Sim::new(seed, INITIAL_VOTERS);
        for _ in 0..3000 {
            sim.step();
        }
        // Heal: no loss, no crashes, prompt disks. A leader must emerge and commit.
        sim.lossy = false;
        let committed_before = sim.committed_terms.len();
        for _ in 0..2000 {
            sim.step();
        }
        assert!(
            sim.nodes.iter().any(|n| n.raft.role() == Role::Leader),
            "seed {seed}: no leader after healing"
        );
        if sim.committed_terms.len() <= committed_before {
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
            sim.committed_terms.len() > committed_before,
            "seed {seed}: no progress after healing"
        );
        if seed == 0 {
            println!(
                "seed 0: {} terms with a leader, {} committed, {} compactions, {} snapshots sent, {} restored",
                sim.leaders.len(),
                sim.committed_terms.len(),
                sim.stats.compactions,
                sim.stats.snapshots_sent,
                sim.stats.snapshots_restored,
            );
        }
        check_log_matching(&sim);
        reads += sim.reads_confirmed;
        lease_reads += sim.lease_reads;
        sent += sim.stats.snapshots_sent;
        restored += sim.stats.snapshots_restored;
        faults.add_fault_counts(&sim.stats);
        // Every server converges on the committed log, and applies it.
        let max = *sim.committed_terms.keys().last().unwrap();
        for n in &sim.nodes {
            assert!(
                n.raft.commit_index().0 + 20 >= max,
                "seed {seed}: {} lags",
                n.raft.id()
            );
            assert!(
                n.applied + 20 >= max,
                "seed {seed}: {} applied only {} of {max}",
                n.raft.id(),
                n.applied
            );
        }
    }
    println!("{runs} seeds: {sent} snapshots sent, {restored} restored, {reads} ReadIndex reads confirmed, {lease_reads} lease reads, {}", faults.fault_counts());
    assert!(reads > 0 && lease_reads > 0, "reads were never exercised");
    faults.assert_faults_exercised(runs);
    assert!(
        runs < 12 || (sent > 0 && restored > 0),
        "the simulation never exercised InstallSnapshot"
    );
}

#[test]
fn seeded_membership_changes_keep_safety_under_faults() {
    let seeds = seeds(48);
    let runs = seeds.end - seeds.start;
    let mut totals = Stats::default();
    for seed in seeds {
        let mut sim = Sim::new(seed, IDS.len()).with_membership_changes();
        for _ in 0..4000 {
            sim.step();
        }
        // Heal: no faults, no more changes. The members elect a leader and converge.
        sim.lossy = false;
        let committed_before = sim.committed_terms.len();
        for _ in 0..2500 {
            sim.step();
        }
        let leader = sim
            .nodes
            .iter()
            .position(|n| n.raft.role() == Role::Leader)
            .unwrap_or_else(|| panic!("seed {seed}: no leader after healing"));
        assert!(
            sim.committed_terms.len() > committed_before,
            "seed {seed}: no progress after healing"
        );
        check_log_matching(&sim);
        let max = *sim.committed_terms.keys().last().unwrap();
        let membership = sim.nodes[leader].raft.membership().clone();
        for (member, _) in membership.servers() {
            let applied = sim.nodes[index_of(member)].applied;
            let n = &sim.nodes[index_of(member)].raft;
            assert!(
                n.commit_index().0 + 20 >= max,
                "seed {seed}: member {member} lags"
            );
            assert!(
                applied + 20 >= max,
                "seed {seed}: member {member} applied only {applied} of {max}"
            );
            assert_eq!(
                n.membership(),
                &membership,
                "seed {seed}: member {member} disagrees on the configuration"
            );
        }
        // Every acknowledged write is in the committed log (which never changed under
        // any server, checked as it went).
        for (index, payload) in &sim.acknowledged {
            let entry = sim.committed.get(index);
            assert_eq!(
                entry.map(|e| &e.payload),
                Some(payload),
                "seed {seed}: acknowledged write at {index} lost"
            );
        }
        totals.changes_proposed += sim.stats.changes_proposed;
        totals.changes_refused += sim.stats.changes_refused;
        totals.leaders_removed += sim.stats.leaders_removed;
        totals.snapshots_sent += sim.stats.snapshots_sent;
        totals.add_fault_counts(&sim.stats);
        let _ = leader;
    }
    println!(
        "{runs} seeds: {} changes proposed, {} refused, {} leaders removed, {} snapshots sent, {}",
        totals.changes_proposed,
        totals.changes_refused,
        totals.leaders_removed,
        totals.snapshots_sent,
        totals.fault_counts()
    );
    totals.assert_faults_exercised(runs);
    assert!(
        runs < 12 || (totals.changes_proposed > 20 && totals.leaders_removed > 0),
        "the simulation exercised too few membership changes"
    );
}
