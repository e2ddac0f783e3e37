//! Why a cluster operation failed, worded for the person at the command line (the CLI
//! prints the Display text and exits 1).

use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("no cluster in {dir}; start one with: scripts/cluster up{dir_flag}")]
    NoCluster { dir: String, dir_flag: String },
    #[error("unknown node {name:?} (nodes: {nodes})")]
    UnknownNode { name: String, nodes: String },
    #[error(
        "a different cluster is up in {dir} ({running}); stop it first with: scripts/cluster down{dir_flag}"
    )]
    OtherShapeUp {
        dir: String,
        running: String,
        dir_flag: String,
    },
    /// Bad input: a spec out of range, a malformed partition.
    #[error("{0}")]
    Invalid(String),
    #[error("{context}: {source}")]
    Io {
        context: String,
        source: std::io::Error,
    },
    /// An operation that could not be completed (a node that never answered, a process
    /// that exited at start, a fault rule that was refused ...).
    #[error("{0}")]
    Failed(String),
}

impl ClusterError {
    pub fn no_cluster(dir: &Path) -> ClusterError {
        ClusterError::NoCluster {
            dir: dir.display().to_string(),
            dir_flag: dir_flag(dir),
        }
    }

    pub fn io(context: impl Into<String>, source: std::io::Error) -> ClusterError {
        ClusterError::Io {
            context: context.into(),
            source,
        }
    }
}

/// ` -dir DIR` when DIR is not the default, so a suggested command works as printed.
pub fn dir_flag(dir: &Path) -> String {
    if dir == Path::new(super::spec::DEFAULT_DIR) {
        String::new()
    } else {
        format!(" -dir {}", dir.display())
    }
}
