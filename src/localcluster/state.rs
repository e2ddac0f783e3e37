//! `DIR/cluster.json`: what a later command (or another process) needs to act on a
//! running cluster: the spec, each node's name, role, address, ports, pid, intended
//! state and exact agent arguments, and the partition in force. Written atomically
//! (a temporary file renamed over the old one), so a reader never sees half a file.

use super::error::ClusterError;
use super::spec::{ClusterSpec, Ports, Role, PORTS};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "cluster.json";

/// What the cluster last did to a node (the process may have died since: `status`
/// checks the pid).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeRunState {
    Running,
    Paused,
    Killed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeState {
    pub name: String,
    pub role: Role,
    pub ip: Ipv4Addr,
    pub ports: Ports,
    pub pid: Option<u32>,
    pub state: NodeRunState,
    /// The agent command line after the binary, exactly as started.
    pub args: Vec<String>,
    pub data_dir: PathBuf,
    pub log: PathBuf,
}

impl NodeState {
    pub fn http_addr(&self) -> String {
        format!("{}:{}", self.ip, self.ports.http)
    }

    pub fn dns_addr(&self) -> String {
        format!("{}:{}", self.ip, self.ports.dns)
    }

    /// The address Raft and `/v1/status/leader` name it by.
    pub fn server_addr(&self) -> String {
        format!("{}:{}", self.ip, self.ports.server)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterState {
    pub spec: ClusterSpec,
    pub nodes: Vec<NodeState>,
    /// Groups of node names that cannot reach each other; empty: no partition.
    pub partition: Vec<Vec<String>>,
}

impl ClusterState {
    /// The state of a cluster about to be started: every node killed (no pid yet).
    pub fn fresh(spec: &ClusterSpec) -> ClusterState {
        let nodes = (0..spec.node_count())
            .map(|i| NodeState {
                name: spec.name(i),
                role: spec.role(i),
                ip: spec.ip(i),
                ports: PORTS,
                pid: None,
                state: NodeRunState::Killed,
                args: spec.agent_args(i),
                data_dir: spec.data_dir(i),
                log: spec.log_path(i),
            })
            .collect();
        ClusterState {
            spec: spec.clone(),
            nodes,
            partition: Vec::new(),
        }
    }

    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// `Ok(None)`: there is no state file in `dir`.
    pub fn load(dir: &Path) -> Result<Option<ClusterState>, ClusterError> {
        let path = ClusterState::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(ClusterError::io(format!("read {}", path.display()), e)),
        };
        ClusterState::parse(&text)
            .map(Some)
            .map_err(|e| ClusterError::Failed(format!("{}: {e}", path.display())))
    }

    pub fn parse(text: &str) -> Result<ClusterState, String> {
        let state: ClusterState =
            serde_json::from_str(text).map_err(|e| format!("not a cluster state file: {e}"))?;
        if state.nodes.len() != state.spec.node_count() {
            return Err(format!(
                "not a cluster state file: {} nodes for a spec of {}",
                state.nodes.len(),
                state.spec.node_count()
            ));
        }
        Ok(state)
    }

    /// Write `DIR/cluster.json` through a temporary file and a rename.
    pub fn save(&self) -> Result<(), ClusterError> {
        let path = ClusterState::path(&self.spec.dir);
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| ClusterError::Failed(format!("encode cluster state: {e}")))?;
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(text.as_bytes())?;
            file.write_all(b"\n")?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)
        };
        write().map_err(|e| ClusterError::io(format!("write {}", path.display()), e))
    }

    /// The index of the node called `name`.
    pub fn index_of(&self, name: &str) -> Result<usize, ClusterError> {
        self.nodes
            .iter()
            .position(|n| n.name == name)
            .ok_or_else(|| ClusterError::UnknownNode {
                name: name.to_string(),
                nodes: self.node_names().join(" "),
            })
    }

    pub fn node_names(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.name.clone()).collect()
    }

    /// The node whose server address (`ip:8300`) is `addr`.
    pub fn index_of_server_addr(&self, addr: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.server_addr() == addr)
    }

    /// The partition as node indexes.
    pub fn partition_indexes(&self) -> Vec<Vec<usize>> {
        self.partition
            .iter()
            .map(|g| g.iter().filter_map(|n| self.index_of(n).ok()).collect())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_state_reads_back_and_the_tmp_file_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ClusterSpec::new(3, 1, dir.path(), Path::new("/bin/cairn"));
        let mut state = ClusterState::fresh(&spec);
        state.nodes[1].pid = Some(4242);
        state.nodes[1].state = NodeRunState::Paused;
        state.partition = vec![vec!["node1".into()], vec!["node2".into(), "node3".into()]];
        state.save().unwrap();
        assert_eq!(ClusterState::load(dir.path()).unwrap(), Some(state.clone()));
        assert!(!dir.path().join("cluster.json.tmp").exists());
        let text = std::fs::read_to_string(dir.path().join(STATE_FILE)).unwrap();
        assert!(text.contains("\"state\": \"paused\""), "{text}");
        assert!(text.contains("\"role\": \"client\""), "{text}");
        assert_eq!(state.partition_indexes(), vec![vec![0], vec![1, 2]]);
    }

    #[test]
    fn missing_and_damaged_state_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ClusterState::load(dir.path()).unwrap(), None);
        std::fs::write(dir.path().join(STATE_FILE), "{\"spec\":").unwrap();
        let e = ClusterState::load(dir.path()).unwrap_err().to_string();
        assert!(e.contains("not a cluster state file"), "{e}");
    }

    #[test]
    fn node_lookup_by_name_and_server_address() {
        let spec = ClusterSpec::new(3, 2, Path::new("/tmp/c"), Path::new("/bin/cairn"));
        let state = ClusterState::fresh(&spec);
        assert_eq!(state.index_of("node5").unwrap(), 4);
        assert_eq!(
            state.index_of("node9").unwrap_err().to_string(),
            "unknown node \"node9\" (nodes: node1 node2 node3 node4 node5)"
        );
        assert_eq!(state.index_of_server_addr("127.0.0.22:8300"), Some(1));
        assert_eq!(state.index_of_server_addr("127.0.0.99:8300"), None);
        assert_eq!(state.nodes[3].http_addr(), "127.0.0.24:8500");
        assert_eq!(state.nodes[3].dns_addr(), "127.0.0.24:8600");
        assert_eq!(state.nodes[0].args, spec.agent_args(0));
    }
}
