//! Where `cairn chaos` gets the cluster it drives. The engine only needs a
//! `Box<dyn Cluster>`; the local cairn cluster and the etcd cluster are built
//! elsewhere and plugged in here.

use super::target::Cluster;
use super::ChaosOptions;

/// Start (or attach to) the cluster `opts.target` names, shaped by `opts` (servers,
/// clients, base address, data dir, unsafe local reads).
pub fn start_target(opts: &ChaosOptions) -> Result<Box<dyn Cluster>, String> {
    Err(format!(
        "target {} is not available in this build",
        opts.target.name()
    ))
}
