//! etcd as the control target of `cairn chaos` (issue 9): the same workload, faults and
//! checker against a local etcd 3.4 cluster (Debian's `etcd-server`), so that a verdict
//! on cairn can be compared with one on a well-tested Raft store.
//!
//! - [`EtcdCluster`]: starts `members` etcd processes, member `i` on its own loopback
//!   address `base + i - 1` (client port 2379, peer port 2380), with a data dir and a
//!   log file each under the run's directory, and implements [`Cluster`].
//! - [`EtcdKv`]: a [`KvClient`](crate::chaos::target::KvClient) over one member's v3
//!   JSON gateway (`json.rs` holds the bodies, `client.rs` the error mapping).

mod client;
mod json;
mod process;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

pub use client::EtcdKv;
use process::{Member, MemberSpec};

use super::target::{Cluster, FaultKind, KvClient, NodeInfo};

/// How long `start` waits for the members to elect a leader.
const LEADER_WAIT: Duration = Duration::from_secs(30);
/// Between two looks for a leader.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Per member, for `leader()`: a paused member must not hold the harness up for long.
const STATUS_TIMEOUT: Duration = Duration::from_millis(500);
/// For the post-run convergence read.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(5);
/// Log bytes quoted when a member fails to start.
const LOG_TAIL_BYTES: u64 = 2_000;

const UNSUPPORTED: &str = "not supported by the etcd target";

/// A local etcd cluster started by the harness; every process it started is killed and
/// reaped by [`Cluster::shutdown`] or when it is dropped.
///
/// Faults: kill, pause (SIGSTOP/SIGCONT) and restart only. Partitions would need
/// per-link packet filtering (iptables/nftables), which needs root, and etcd has no
/// switch of its own to cut a peer link; membership changes are not driven through
/// etcd's member API by this target. Both report "not supported".
pub struct EtcdCluster {
    etcd: PathBuf,
    members: Vec<Member>,
}

impl EtcdCluster {
    /// Starts `members` members under `dir` (`dir/nodeI/` data, `dir/nodeI.log`) on
    /// `base`, `base+1` ... and waits until one leads. `etcd` must be on `PATH`.
    pub fn start(dir: &Path, members: usize, base: Ipv4Addr) -> Result<EtcdCluster, String> {
        let etcd = find_on_path("etcd").ok_or_else(|| {
            "etcd not found on PATH: install etcd 3.4 with `apt-get install etcd-server`"
                .to_string()
        })?;
        if members == 0 {
            return Err("an etcd cluster needs at least one member".into());
        }
        let specs = member_specs(dir, members, base)?;
        let mut cluster = EtcdCluster {
            etcd,
            members: specs.into_iter().map(Member::new).collect(),
        };
        for i in 0..members {
            let etcd = cluster.etcd.clone();
            if let Err(e) = cluster.members[i].start(&etcd, false) {
                cluster.shutdown();
                return Err(e);
            }
        }
        if let Err(e) = cluster.wait_for_leader(LEADER_WAIT) {
            cluster.shutdown();
            return Err(e);
        }
        Ok(cluster)
    }

    /// Polls until a member reports itself leader; fails early if a member exits.
    pub fn wait_for_leader(&mut self, limit: Duration) -> Result<usize, String> {
        let deadline = Instant::now() + limit;
        loop {
            for member in &mut self.members {
                if let Some(status) = member.exited() {
                    return Err(format!(
                        "etcd member {} exited ({status}); end of {}:\n{}",
                        member.spec.name,
                        member.spec.log_file.display(),
                        member.spec.log_tail(LOG_TAIL_BYTES)
                    ));
                }
            }
            if let Some(leader) = self.leader() {
                return Ok(leader);
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "no etcd leader after {limit:?}; logs in {}",
                    self.members[0]
                        .spec
                        .log_file
                        .parent()
                        .map_or_else(String::new, |d| d.display().to_string())
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn member(&mut self, node: usize) -> Result<&mut Member, String> {
        let count = self.members.len();
        self.members
            .get_mut(node)
            .ok_or_else(|| format!("no node {node} (the cluster has {count})"))
    }
}

/// Member names, addresses and paths. The token includes the harness's pid, so members
/// left over from another run on the same addresses cannot join this cluster.
fn member_specs(dir: &Path, members: usize, base: Ipv4Addr) -> Result<Vec<MemberSpec>, String> {
    let base = u32::from(base);
    let mut addresses = Vec::with_capacity(members);
    for i in 0..members {
        let ip = u32::try_from(i)
            .ok()
            .and_then(|i| base.checked_add(i))
            .map(Ipv4Addr::from)
            .ok_or_else(|| format!("{members} members do not fit above {base}"))?;
        addresses.push((format!("node{}", i + 1), ip));
    }
    let initial_cluster = addresses
        .iter()
        .map(|(name, ip)| format!("{name}=http://{ip}:{}", process::PEER_PORT))
        .collect::<Vec<_>>()
        .join(",");
    let cluster_token = format!("cairn-chaos-{}", std::process::id());
    Ok(addresses
        .into_iter()
        .map(|(name, ip)| MemberSpec {
            data_dir: dir.join(&name),
            log_file: dir.join(format!("{name}.log")),
            name,
            ip,
            initial_cluster: initial_cluster.clone(),
            cluster_token: cluster_token.clone(),
        })
        .collect())
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

impl Cluster for EtcdCluster {
    fn nodes(&self) -> Vec<NodeInfo> {
        self.members
            .iter()
            .map(|m| NodeInfo {
                name: m.spec.name.clone(),
                server: true,
                api_addr: m.spec.client_addr(),
            })
            .collect()
    }

    fn client(&self, node: usize, timeout: Duration) -> Box<dyn KvClient> {
        // An index past the end gets a client that is refused on every call (port 0),
        // rather than a panic in the harness.
        let addr = self
            .members
            .get(node)
            .map_or_else(|| "127.0.0.1:0".to_string(), |m| m.spec.client_addr());
        Box::new(EtcdKv::new(&addr, timeout))
    }

    /// Kill, pause and restart. Not partitions: cutting links between members on
    /// loopback needs packet filtering (root), and etcd has no switch of its own for
    /// it. Not membership cycles: this target does not drive etcd's member API. Not a
    /// slow disk: etcd has no hook to stall its fsyncs.
    fn supports(&self, fault: FaultKind) -> bool {
        match fault {
            FaultKind::Kill | FaultKind::Pause | FaultKind::Restart => true,
            FaultKind::Partition | FaultKind::Membership | FaultKind::SlowDisk => false,
        }
    }

    /// Asks every running member for its status; the one whose own id is the leader it
    /// reports leads (the highest term wins if two claim it, e.g. one just resumed).
    /// Paused members are skipped: they cannot answer, and waiting for them would only
    /// delay the harness.
    fn leader(&self) -> Option<usize> {
        let mut best: Option<(u64, usize)> = None;
        for (i, member) in self.members.iter().enumerate() {
            if !member.is_running() || member.is_paused() {
                continue;
            }
            let kv = EtcdKv::new(&member.spec.client_addr(), STATUS_TIMEOUT);
            let Ok(answer) = kv.call("/v3/maintenance/status", &serde_json::json!({})) else {
                continue;
            };
            let Ok(status) = json::parse_status(&answer) else {
                continue;
            };
            let term = status.raft_term.max(status.header.raft_term);
            if status.is_leader() && best.is_none_or(|(t, _)| term > t) {
                best = Some((term, i));
            }
        }
        best.map(|(_, i)| i)
    }

    fn kill(&mut self, node: usize) -> Result<(), String> {
        self.member(node)?.kill()
    }

    /// With its data dir and `--initial-cluster-state existing`.
    fn restart(&mut self, node: usize) -> Result<(), String> {
        let etcd = self.etcd.clone();
        self.member(node)?.start(&etcd, true)
    }

    fn pause(&mut self, node: usize) -> Result<(), String> {
        self.member(node)?.pause()
    }

    fn resume(&mut self, node: usize) -> Result<(), String> {
        self.member(node)?.resume()
    }

    fn partition(&mut self, _groups: &[Vec<usize>]) -> Result<(), String> {
        Err(UNSUPPORTED.into())
    }

    /// Nothing to lift: partitions are never made.
    fn heal(&mut self) -> Result<(), String> {
        Ok(())
    }

    fn cycle_membership(&mut self, _node: usize) -> Result<(), String> {
        Err(UNSUPPORTED.into())
    }

    fn local_snapshot(
        &self,
        node: usize,
        prefix: &str,
    ) -> Result<BTreeMap<String, String>, String> {
        let member = self
            .members
            .get(node)
            .ok_or_else(|| format!("no node {node}"))?;
        let kv = EtcdKv::new(&member.spec.client_addr(), SNAPSHOT_TIMEOUT);
        let kvs = kv
            .range_prefix_local(prefix)
            .map_err(|e| format!("{}: {e}", member.spec.name))?;
        Ok(kvs.into_iter().map(|kv| (kv.key, kv.value)).collect())
    }

    fn shutdown(&mut self) {
        for member in &mut self.members {
            if let Err(e) = member.kill() {
                tracing::warn!("etcd shutdown: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_get_consecutive_addresses_names_and_their_own_paths() {
        let specs = member_specs(Path::new("/run/x"), 3, Ipv4Addr::new(127, 0, 1, 51)).unwrap();
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["node1", "node2", "node3"]);
        assert_eq!(specs[2].ip, Ipv4Addr::new(127, 0, 1, 53));
        assert_eq!(specs[1].client_addr(), "127.0.1.52:2379");
        assert_eq!(specs[0].data_dir, Path::new("/run/x/node1"));
        assert_eq!(specs[0].log_file, Path::new("/run/x/node1.log"));
        assert_eq!(
            specs[0].initial_cluster,
            "node1=http://127.0.1.51:2380,node2=http://127.0.1.52:2380,node3=http://127.0.1.53:2380"
        );
    }

    #[test]
    fn too_many_members_for_the_address_space_is_an_error() {
        assert!(member_specs(Path::new("/x"), 3, Ipv4Addr::new(255, 255, 255, 254)).is_err());
    }
}
