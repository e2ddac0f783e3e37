//! The fault schedule: a seeded plan of fault windows, and putting one into effect.
//!
//! [`plan`] draws, from the run seed alone, a warm-up, then alternating fault windows
//! (`fault_min..=fault_max`) and quiet windows (`quiet_min..=quiet_max`) until the run
//! ends, each fault of a requested kind the cluster supports, with what it aims at: the
//! leader (often), a random server, a client node; for partitions the leader isolated
//! in a minority, a random minority/majority split, or one node cut off. Who leads is
//! only known when a fault starts, so the plan holds the aim and a salt, and
//! [`PlannedFault::resolve`] picks the nodes then (deterministically from the salt and
//! the leader). Every fault is undone when its window ends, before the next one starts.
//!
//! The minority rule: no fault ever takes more than a minority of the servers away
//! (one server for kill/pause/restart/membership, at most `(servers - 1) / 2` on the
//! cut-off side of a partition), so the cluster should stay available outside
//! failovers. With fewer than three servers no server may be faulted; only client
//! nodes are, and without client nodes the plan is empty.

use rand::seq::SliceRandom;
use rand::Rng;
use std::time::Duration;

use super::target::{Cluster, FaultKind, NodeInfo};
use super::workload::stream_seed;
use super::ScheduleTiming;

/// The random stream of the schedule (workers use streams `0..workers`).
const SCHEDULE_STREAM: u64 = u64::MAX;

/// What a fault aims at, before the nodes are known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aim {
    /// The server that leads when the fault starts.
    Leader,
    RandomServer,
    ClientNode,
    /// Partition: the leader and maybe other servers cut off from the majority.
    LeaderInMinority,
    /// Partition: a random minority of servers cut off from the rest.
    RandomSplit,
    /// Partition: one node cut off from every other.
    SingleNode,
}

/// One fault window of the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedFault {
    pub kind: FaultKind,
    pub aim: Aim,
    /// From the start of the run.
    pub start: Duration,
    pub end: Duration,
    /// Seeds the choice of nodes when the fault starts.
    pub salt: u64,
}

/// The nodes a planned fault hits, chosen when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    pub kind: FaultKind,
    /// The node killed, paused, restarted or cycled (empty for partitions).
    pub node: Option<usize>,
    /// Partition groups (empty for the other kinds).
    pub groups: Vec<Vec<usize>>,
    /// Whether the node that led when it started lost its place: it was the node hit,
    /// or it is outside the partition group holding a majority of servers.
    pub hits_leader: bool,
    /// `kill node2 (leader)`, `partition node1 | node2 node3 (leader cut off)`.
    pub description: String,
}

/// The servers and client nodes of a cluster, by index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub servers: Vec<usize>,
    pub clients: Vec<usize>,
}

impl Shape {
    pub fn of(nodes: &[NodeInfo]) -> Shape {
        let (servers, clients) = (0..nodes.len()).partition(|&i| nodes[i].server);
        Shape { servers, clients }
    }

    /// The most servers a fault may take away.
    pub fn minority(&self) -> usize {
        self.servers.len().saturating_sub(1) / 2
    }
}

/// The plan for a run of `duration` seeded with `seed`: kinds drawn from `requested`
/// that `supports` accepts and that the cluster's shape allows.
pub fn plan(
    seed: u64,
    requested: &[FaultKind],
    supports: &dyn Fn(FaultKind) -> bool,
    shape: &Shape,
    duration: Duration,
    timing: &ScheduleTiming,
) -> Vec<PlannedFault> {
    let kinds: Vec<FaultKind> = FaultKind::ALL
        .into_iter()
        .filter(|k| requested.contains(k) && supports(*k) && feasible(*k, shape))
        .collect();
    let mut rng = protocol::rng::seeded(stream_seed(seed, SCHEDULE_STREAM));
    let mut faults = Vec::new();
    if kinds.is_empty() {
        return faults;
    }
    let mut t = timing.warmup;
    while t + timing.fault_min <= duration {
        let kind = kinds[rng.random_range(0..kinds.len())];
        let aim = draw_aim(&mut rng, kind, shape);
        let length = between(&mut rng, timing.fault_min, timing.fault_max);
        let end = (t + length).min(duration);
        faults.push(PlannedFault {
            kind,
            aim,
            start: t,
            end,
            salt: rng.random(),
        });
        t = end + between(&mut rng, timing.quiet_min, timing.quiet_max);
    }
    faults
}

/// Whether a fault of `kind` can respect the minority rule on this shape.
fn feasible(kind: FaultKind, shape: &Shape) -> bool {
    let servers_ok = shape.minority() >= 1;
    match kind {
        FaultKind::Membership | FaultKind::SlowDisk => servers_ok,
        _ => servers_ok || !shape.clients.is_empty(),
    }
}

fn between(rng: &mut impl Rng, min: Duration, max: Duration) -> Duration {
    let (lo, hi) = (
        min.as_millis() as u64,
        max.as_millis().max(min.as_millis()) as u64,
    );
    Duration::from_millis(rng.random_range(lo..=hi))
}

fn draw_aim(rng: &mut impl Rng, kind: FaultKind, shape: &Shape) -> Aim {
    let roll = rng.random_range(0..100u32);
    if shape.minority() == 0 {
        // Only client nodes may be faulted.
        return match kind {
            FaultKind::Partition => Aim::SingleNode,
            _ => Aim::ClientNode,
        };
    }
    match kind {
        FaultKind::Partition => match roll {
            0..40 => Aim::LeaderInMinority,
            40..70 => Aim::RandomSplit,
            _ => Aim::SingleNode,
        },
        FaultKind::Membership | FaultKind::SlowDisk => match roll {
            0..50 => Aim::Leader,
            _ => Aim::RandomServer,
        },
        FaultKind::Kill | FaultKind::Pause | FaultKind::Restart => match roll {
            0..50 => Aim::Leader,
            50..80 => Aim::RandomServer,
            _ if shape.clients.is_empty() => Aim::RandomServer,
            _ => Aim::ClientNode,
        },
    }
}

impl PlannedFault {
    /// The nodes this fault hits, given who leads now.
    pub fn resolve(&self, nodes: &[NodeInfo], leader: Option<usize>) -> Resolved {
        let shape = Shape::of(nodes);
        let mut rng = protocol::rng::seeded(self.salt);
        let leader = leader.filter(|l| shape.servers.contains(l));
        let name = |i: usize| nodes.get(i).map(|n| n.name.clone()).unwrap_or_default();
        let pick = |rng: &mut protocol::rng::CoreRng, from: &[usize]| -> Option<usize> {
            (!from.is_empty()).then(|| from[rng.random_range(0..from.len())])
        };
        if self.kind != FaultKind::Partition {
            let node = match self.aim {
                Aim::Leader => leader.or_else(|| pick(&mut rng, &shape.servers)),
                Aim::ClientNode => {
                    pick(&mut rng, &shape.clients).or_else(|| pick(&mut rng, &shape.servers))
                }
                _ => pick(&mut rng, &shape.servers),
            };
            let hits_leader = node.is_some() && node == leader;
            let role = if hits_leader {
                " (leader)"
            } else if node.is_some_and(|n| shape.clients.contains(&n)) {
                " (client)"
            } else {
                ""
            };
            let description = match node {
                Some(n) => format!("{} {}{role}", self.kind.name(), name(n)),
                None => format!("{} (no node to aim at)", self.kind.name()),
            };
            return Resolved {
                kind: self.kind,
                node,
                groups: Vec::new(),
                hits_leader,
                description,
            };
        }
        let mut cut_off: Vec<usize> = match self.aim {
            Aim::LeaderInMinority | Aim::RandomSplit => {
                let size = rng.random_range(1..=shape.minority().max(1));
                let mut others: Vec<usize> = shape.servers.clone();
                let mut side = Vec::new();
                if let (Aim::LeaderInMinority, Some(l)) = (self.aim, leader) {
                    side.push(l);
                    others.retain(|&s| s != l);
                }
                others.shuffle(&mut rng);
                let more = size.saturating_sub(side.len());
                side.extend(others.into_iter().take(more));
                // Client nodes land on either side.
                for &c in &shape.clients {
                    if rng.random_bool(0.5) {
                        side.push(c);
                    }
                }
                side
            }
            _ => {
                let candidates: Vec<usize> = if shape.minority() == 0 {
                    shape.clients.clone()
                } else {
                    (0..nodes.len()).collect()
                };
                pick(&mut rng, &candidates).into_iter().collect()
            }
        };
        cut_off.sort_unstable();
        let rest: Vec<usize> = (0..nodes.len()).filter(|n| !cut_off.contains(n)).collect();
        let hits_leader = leader.is_some_and(|l| cut_off.contains(&l));
        let why = match (self.aim, hits_leader) {
            (Aim::SingleNode, true) => "leader cut off",
            (Aim::SingleNode, false) => "one node cut off",
            (_, true) => "leader isolated",
            (_, false) => "minority split",
        };
        let names = |g: &[usize]| g.iter().map(|&n| name(n)).collect::<Vec<_>>().join(" ");
        let description = format!("partition {} | {} ({why})", names(&cut_off), names(&rest));
        Resolved {
            kind: self.kind,
            node: None,
            groups: vec![cut_off, rest],
            hits_leader,
            description,
        }
    }
}

/// How long a slow disk stalls each fsync: over 2000x this machine's fdatasync, so a
/// slowed leader's commits wait on the other servers and a slowed follower falls behind.
pub const SLOW_DISK_STALL: Duration = Duration::from_millis(250);

/// Put a resolved fault into effect.
pub fn inject(cluster: &mut dyn Cluster, fault: &Resolved) -> Result<(), String> {
    match (fault.kind, fault.node) {
        (FaultKind::Partition, _) => cluster.partition(&fault.groups),
        (_, None) => Ok(()),
        (FaultKind::Kill, Some(n)) => cluster.kill(n),
        (FaultKind::Pause, Some(n)) => cluster.pause(n),
        // The kill half only: the run notes when the fault took effect, then calls
        // `complete` for the restart.
        (FaultKind::Restart, Some(n)) => cluster.kill(n),
        (FaultKind::Membership, Some(n)) => cluster.cycle_membership(n),
        (FaultKind::SlowDisk, Some(n)) => cluster.slow_disk(n, Some(SLOW_DISK_STALL)),
    }
}

/// The rest of a fault whose injection has two halves: a Restart's restart (so that
/// the moment the node died can be noted between them).
pub fn complete(cluster: &mut dyn Cluster, fault: &Resolved) -> Result<(), String> {
    match (fault.kind, fault.node) {
        (FaultKind::Restart, Some(n)) => cluster.restart(n),
        _ => Ok(()),
    }
}

/// Undo a fault when its window ends (restart, resume, heal; nothing for faults that
/// end by themselves).
pub fn undo(cluster: &mut dyn Cluster, fault: &Resolved) -> Result<(), String> {
    match (fault.kind, fault.node) {
        (FaultKind::Partition, _) => cluster.heal(),
        (FaultKind::Kill, Some(n)) => cluster.restart(n),
        (FaultKind::Pause, Some(n)) => cluster.resume(n),
        (FaultKind::SlowDisk, Some(n)) => cluster.slow_disk(n, None),
        _ => Ok(()),
    }
}

/// Make sure nothing is left faulted: heal, resume and restart every node (each call
/// is idempotent). Returns the failures, one line each.
pub fn heal_everything(cluster: &mut dyn Cluster) -> Vec<String> {
    let mut failures = Vec::new();
    if cluster.supports(FaultKind::Partition) {
        if let Err(e) = cluster.heal() {
            failures.push(format!("heal: {e}"));
        }
    }
    let nodes = cluster.nodes();
    for (n, node) in nodes.iter().enumerate() {
        if cluster.supports(FaultKind::Pause) {
            if let Err(e) = cluster.resume(n) {
                failures.push(format!("resume {}: {e}", node.name));
            }
        }
        if cluster.supports(FaultKind::Kill) || cluster.supports(FaultKind::Restart) {
            if let Err(e) = cluster.restart(n) {
                failures.push(format!("restart {}: {e}", node.name));
            }
        }
    }
    failures
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes(servers: usize, clients: usize) -> Vec<NodeInfo> {
        (0..servers + clients)
            .map(|i| NodeInfo {
                name: format!("node{}", i + 1),
                server: i < servers,
                api_addr: format!("127.0.0.1:{}", 8500 + i),
            })
            .collect()
    }

    fn all(_: FaultKind) -> bool {
        true
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_seed_gives_the_same_plan_and_another_seed_another() {
        let shape = Shape::of(&nodes(3, 2));
        let timing = ScheduleTiming::default();
        let a = plan(7, &FaultKind::ALL, &all, &shape, MINUTE, &timing);
        let b = plan(7, &FaultKind::ALL, &all, &shape, MINUTE, &timing);
        let c = plan(8, &FaultKind::ALL, &all, &shape, MINUTE, &timing);
        assert!(a.len() >= 4, "{a:?}");
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Resolution too is a function of the plan and the leader.
        let ns = nodes(3, 2);
        for f in &a {
            assert_eq!(f.resolve(&ns, Some(1)), f.resolve(&ns, Some(1)));
        }
    }

    #[test]
    fn windows_alternate_within_the_run() {
        let shape = Shape::of(&nodes(5, 0));
        let timing = ScheduleTiming::default();
        for seed in 0..50 {
            let p = plan(seed, &FaultKind::ALL, &all, &shape, MINUTE, &timing);
            let mut previous_end = Duration::ZERO;
            for (i, f) in p.iter().enumerate() {
                assert!(f.end <= MINUTE && f.start < f.end);
                if i == 0 {
                    assert_eq!(f.start, timing.warmup);
                } else {
                    let quiet = f.start - previous_end;
                    assert!(quiet >= timing.quiet_min && quiet <= timing.quiet_max);
                }
                let length = f.end - f.start;
                assert!(length <= timing.fault_max);
                assert!(length >= timing.fault_min || f.end == MINUTE);
                previous_end = f.end;
            }
        }
    }

    #[test]
    fn only_requested_and_supported_kinds_are_drawn() {
        let shape = Shape::of(&nodes(3, 1));
        let no_partition = |k: FaultKind| k != FaultKind::Partition;
        for seed in 0..30 {
            let p = plan(
                seed,
                &[FaultKind::Kill, FaultKind::Partition, FaultKind::Restart],
                &no_partition,
                &shape,
                MINUTE,
                &ScheduleTiming::default(),
            );
            assert!(!p.is_empty());
            assert!(p
                .iter()
                .all(|f| matches!(f.kind, FaultKind::Kill | FaultKind::Restart)));
        }
        let none = plan(1, &[], &all, &shape, MINUTE, &ScheduleTiming::default());
        assert!(none.is_empty());
    }

    #[test]
    fn no_fault_takes_more_than_a_minority_of_servers() {
        for (servers, clients) in [(3, 0), (3, 2), (5, 1), (7, 0)] {
            let ns = nodes(servers, clients);
            let shape = Shape::of(&ns);
            let majority = servers / 2 + 1;
            for seed in 0..40 {
                let p = plan(
                    seed,
                    &FaultKind::ALL,
                    &all,
                    &shape,
                    MINUTE,
                    &ScheduleTiming::default(),
                );
                for f in &p {
                    for leader in [None, Some(0), Some(servers - 1)] {
                        let r = f.resolve(&ns, leader);
                        if f.kind == FaultKind::Partition {
                            assert_eq!(r.groups.len(), 2);
                            let servers_in =
                                |g: &Vec<usize>| g.iter().filter(|&&n| n < servers).count();
                            assert!(r.groups.iter().any(|g| servers_in(g) >= majority), "{r:?}");
                            assert!(r.groups.iter().all(|g| !g.is_empty()), "{r:?}");
                        } else {
                            assert!(r.node.is_some());
                        }
                        if f.aim == Aim::Leader || f.aim == Aim::LeaderInMinority {
                            assert_eq!(r.hits_leader, leader.is_some(), "{r:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn small_clusters_fault_only_client_nodes() {
        let ns = nodes(1, 2);
        let shape = Shape::of(&ns);
        let p = plan(
            3,
            &FaultKind::ALL,
            &all,
            &shape,
            MINUTE,
            &ScheduleTiming::default(),
        );
        assert!(!p.is_empty());
        for f in &p {
            assert_ne!(f.kind, FaultKind::Membership);
            let r = f.resolve(&ns, Some(0));
            assert!(!r.hits_leader, "{r:?}");
            match f.kind {
                FaultKind::Partition => assert!(r.groups[0].iter().all(|&n| n >= 1)),
                _ => assert!(r.node.is_some_and(|n| n >= 1)),
            }
        }
        let lone = Shape::of(&nodes(2, 0));
        assert!(plan(
            3,
            &FaultKind::ALL,
            &all,
            &lone,
            MINUTE,
            &ScheduleTiming::default()
        )
        .is_empty());
    }

    #[test]
    fn descriptions_name_nodes_and_roles() {
        let ns = nodes(3, 0);
        let f = PlannedFault {
            kind: FaultKind::Kill,
            aim: Aim::Leader,
            start: Duration::ZERO,
            end: Duration::from_secs(1),
            salt: 1,
        };
        assert_eq!(f.resolve(&ns, Some(1)).description, "kill node2 (leader)");
        let p = PlannedFault {
            kind: FaultKind::Partition,
            aim: Aim::LeaderInMinority,
            ..f
        };
        let r = p.resolve(&ns, Some(2));
        assert_eq!(r.groups, vec![vec![2], vec![0, 1]]);
        assert_eq!(
            r.description,
            "partition node3 | node1 node2 (leader isolated)"
        );
    }
}
