//! `cluster status`: per node, its process state and what it reports (the leader it
//! names, the members it sees alive), asked of every node at once with a short timeout
//! so a stopped node costs one timeout, not one per question.

use super::http;
use super::process::ProcState;
use super::spec::Role;
use super::LocalCluster;
use std::time::Duration;

/// Per question: a node that does not answer within this shows "-".
const STATUS_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeStatus {
    pub name: String,
    pub role: Role,
    pub http_addr: String,
    pub pid: Option<u32>,
    pub process: ProcState,
    /// The leader the node names, as a node name when it is one of ours (else the
    /// `ip:port` it gave); `None`: no leader or no answer.
    pub leader: Option<String>,
    /// Members it sees alive; `None`: no answer.
    pub alive_members: Option<usize>,
}

pub fn collect(cluster: &LocalCluster) -> Vec<NodeStatus> {
    let state = cluster.state();
    std::thread::scope(|s| {
        let asks: Vec<_> = state
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let process = cluster.proc_state(i);
                s.spawn(move || {
                    let addr = n.http_addr();
                    let (leader, alive) = match process {
                        ProcState::Running => (
                            http::leader_of(&addr, STATUS_TIMEOUT),
                            http::alive_members(&addr, STATUS_TIMEOUT).map(|m| m.len()),
                        ),
                        _ => (None, None),
                    };
                    let leader = leader.map(|l| match state.index_of_server_addr(&l) {
                        Some(j) => state.nodes[j].name.clone(),
                        None => l,
                    });
                    NodeStatus {
                        name: n.name.clone(),
                        role: n.role,
                        http_addr: addr,
                        pid: n.pid,
                        process,
                        leader,
                        alive_members: alive,
                    }
                })
            })
            .collect();
        asks.into_iter()
            .zip(&state.nodes)
            .map(|(h, n)| {
                h.join().unwrap_or_else(|_| NodeStatus {
                    name: n.name.clone(),
                    role: n.role,
                    http_addr: n.http_addr(),
                    pid: n.pid,
                    process: ProcState::Dead,
                    leader: None,
                    alive_members: None,
                })
            })
            .collect()
    })
}

/// The status table: a header, then one row per node.
pub fn rows(statuses: &[NodeStatus]) -> Vec<Vec<String>> {
    let mut rows = vec![
        ["Node", "Role", "HTTP", "PID", "Process", "Leader", "Alive"]
            .iter()
            .map(|s| s.to_string())
            .collect(),
    ];
    for s in statuses {
        rows.push(vec![
            s.name.clone(),
            s.role.name().to_string(),
            s.http_addr.clone(),
            match (s.pid, s.process) {
                (Some(pid), ProcState::Running | ProcState::Paused) => pid.to_string(),
                _ => "-".to_string(),
            },
            s.process.name().to_string(),
            s.leader.clone().unwrap_or_else(|| "-".to_string()),
            s.alive_members
                .map_or_else(|| "-".to_string(), |n| n.to_string()),
        ]);
    }
    rows
}

/// `node1 / node2,node3`: a partition as the command line writes it.
pub fn describe_partition(groups: &[Vec<String>]) -> String {
    groups
        .iter()
        .map(|g| g.join(","))
        .collect::<Vec<_>>()
        .join(" / ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_show_dashes_for_what_is_unknown() {
        let statuses = vec![
            NodeStatus {
                name: "node1".into(),
                role: Role::Server,
                http_addr: "127.0.0.21:8500".into(),
                pid: Some(42),
                process: ProcState::Running,
                leader: Some("node1".into()),
                alive_members: Some(3),
            },
            NodeStatus {
                name: "node2".into(),
                role: Role::Client,
                http_addr: "127.0.0.22:8500".into(),
                pid: Some(43),
                process: ProcState::Dead,
                leader: None,
                alive_members: None,
            },
        ];
        let text = crate::cli::columns::columnize(&rows(&statuses));
        assert_eq!(
            text,
            "Node   Role    HTTP             PID  Process  Leader  Alive\n\
             node1  server  127.0.0.21:8500  42   running  node1   3\n\
             node2  client  127.0.0.22:8500  -    dead     -       -"
        );
        let groups = vec![
            vec!["node1".to_string()],
            vec!["node2".into(), "node3".into()],
        ];
        assert_eq!(describe_partition(&groups), "node1 / node2,node3");
    }
}
