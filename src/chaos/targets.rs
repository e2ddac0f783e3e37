//! Where `cairn chaos` gets the cluster it drives. The engine only needs a
//! `Box<dyn Cluster>`; the local cairn cluster and the etcd cluster are built
//! elsewhere and plugged in here.

use super::attached::AttachedCluster;
use super::etcd::EtcdCluster;
use super::target::Cluster;
use super::{ChaosOptions, TargetKind};
use crate::localcluster::{ClusterSpec, LocalCluster};
use std::path::PathBuf;

/// Start (or attach to) the cluster `opts.target` names, shaped by `opts` (servers,
/// clients, base address, data dir, unsafe local reads).
pub fn start_target(opts: &ChaosOptions) -> Result<Box<dyn Cluster>, String> {
    let dir = cluster_dir(opts);
    match opts.target {
        TargetKind::Etcd => {
            if opts.unsafe_local_reads {
                return Err("-unsafe-local-reads is a cairn flag; etcd has no such mode".into());
            }
            // etcd has no client agents: `-clients` does not apply to it.
            let cluster = EtcdCluster::start(&dir, opts.servers, opts.base)?;
            Ok(Box::new(cluster))
        }
        TargetKind::Cairn if !opts.attach.is_empty() => {
            Ok(Box::new(AttachedCluster::connect(&opts.attach)?))
        }
        TargetKind::Cairn => {
            let binary = std::env::current_exe()
                .map_err(|e| format!("cannot find the cairn binary to start agents with: {e}"))?;
            let mut spec = ClusterSpec::new(opts.servers, opts.clients, &dir, &binary);
            spec.base = opts.base;
            if opts.unsafe_local_reads {
                spec.agent_args
                    .push("-debug-unsafe-local-reads".to_string());
            }
            // A cluster already up in `dir` (`scripts/cluster up -dir DIR`) is attached
            // to and left running afterwards; otherwise a fresh one is started.
            let cluster = LocalCluster::start(spec).map_err(|e| e.to_string())?;
            Ok(Box::new(cluster))
        }
    }
}

/// Where the cluster's data dirs and logs go: `-dir`, else `cluster/` in the output dir
/// (so one run's files stay together and runs never share state).
fn cluster_dir(opts: &ChaosOptions) -> PathBuf {
    opts.data_dir
        .clone()
        .unwrap_or_else(|| opts.out_dir.join("cluster"))
}
