//! Partitions without root: every agent runs with `-fault-injection`, and a partition
//! is a set of `cut` rules over HTTP (`PUT /v1/cairn/faults/<peer-ip>?rule=cut` on both
//! sides of every link that crosses groups; see `src/http/faults.rs`). Nodes named in no
//! group keep every link.
//!
//! The command line writes groups as `node1 / node2,node3` (groups separated by `/`,
//! nodes by commas or spaces, in one argument or several).

use super::http;
use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// How long one fault-rule request may take.
const RULE_TIMEOUT: Duration = Duration::from_secs(3);
/// How long a node may take to accept its rules (it may be starting up).
const RULE_DEADLINE: Duration = Duration::from_secs(15);

/// Split partition words into groups of node names.
pub fn parse_groups(words: &[String]) -> Result<Vec<Vec<String>>, String> {
    let text = words.join(" ");
    let groups: Vec<Vec<String>> = text
        .split('/')
        .map(|g| {
            g.split([',', ' ', '\t'])
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect();
    if groups.len() < 2 {
        return Err(format!(
            "a partition needs at least two groups separated by '/' \
             (e.g. node1 / node2,node3), got {text:?}"
        ));
    }
    if groups.iter().any(Vec::is_empty) {
        return Err(format!("empty group in partition {text:?}"));
    }
    let mut seen = BTreeSet::new();
    for name in groups.iter().flatten() {
        if !seen.insert(name) {
            return Err(format!("node {name:?} is in more than one group"));
        }
    }
    Ok(groups)
}

/// Check node indexes given in process (every index below `nodes`, none twice, at least
/// two non-empty groups; an empty list is no partition).
pub fn check_groups(groups: &[Vec<usize>], nodes: usize) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for &node in groups.iter().flatten() {
        if node >= nodes {
            return Err(format!("no node {node} (the cluster has {nodes})"));
        }
        if !seen.insert(node) {
            return Err(format!("node {node} is in more than one group"));
        }
    }
    Ok(())
}

/// The nodes `node` must not reach under `groups`: every node of the other groups
/// (none if `node` is in no group).
pub fn cut_peers(groups: &[Vec<usize>], node: usize) -> BTreeSet<usize> {
    let Some(own) = groups.iter().position(|g| g.contains(&node)) else {
        return BTreeSet::new();
    };
    groups
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != own)
        .flat_map(|(_, g)| g.iter().copied())
        .collect()
}

/// Make the agent at `http_addr` cut exactly `peers`, given that it cut `previous`
/// before: new rules first, then the old ones that no longer apply, so no link opens
/// for a moment that should stay closed. With `previous == None` (a restarted or
/// resumed agent whose rules are not known), every rule is cleared first.
pub fn apply_rules(
    http_addr: &str,
    peers: &BTreeSet<Ipv4Addr>,
    previous: Option<&BTreeSet<Ipv4Addr>>,
) -> Result<(), String> {
    let base = format!("http://{http_addr}/v1/cairn/faults");
    if previous.is_none() {
        request("DELETE", &base)?;
    }
    for peer in peers {
        request("PUT", &format!("{base}/{peer}?rule=cut"))?;
    }
    for gone in previous
        .into_iter()
        .flatten()
        .filter(|p| !peers.contains(p))
    {
        request("DELETE", &format!("{base}/{gone}"))?;
    }
    Ok(())
}

/// Lift every rule on the agent at `http_addr`.
pub fn clear_rules(http_addr: &str) -> Result<(), String> {
    request("DELETE", &format!("http://{http_addr}/v1/cairn/faults"))
}

/// One rule request, retried until [`RULE_DEADLINE`] while the agent does not answer;
/// an answer other than 200 is an error at once (e.g. an agent without
/// `-fault-injection` answers 404).
fn request(method: &str, url: &str) -> Result<(), String> {
    let deadline = Instant::now() + RULE_DEADLINE;
    loop {
        match http::call(method, url, None, RULE_TIMEOUT) {
            Ok((200, _)) => return Ok(()),
            Ok((status, body)) => {
                return Err(format!(
                    "{method} {url}: {status} {} (was the agent started with -fault-injection?)",
                    body.trim()
                ))
            }
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn names(groups: &[&[&str]]) -> Vec<Vec<String>> {
        groups
            .iter()
            .map(|g| g.iter().map(|s| s.to_string()).collect())
            .collect()
    }

    #[test]
    fn groups_in_one_word_or_many() {
        let want = names(&[&["node1"], &["node2", "node3"]]);
        assert_eq!(
            parse_groups(&words(&["node1", "/", "node2,node3"])),
            Ok(want.clone())
        );
        assert_eq!(
            parse_groups(&words(&["node1/node2,node3"])),
            Ok(want.clone())
        );
        assert_eq!(
            parse_groups(&words(&["node1 / node2, node3"])),
            Ok(want.clone())
        );
        assert_eq!(
            parse_groups(&words(&["node1", "/", "node2", "node3"])),
            Ok(want)
        );
        assert_eq!(
            parse_groups(&words(&["a", "/", "b", "/", "c,d"])),
            Ok(names(&[&["a"], &["b"], &["c", "d"]]))
        );
    }

    #[test]
    fn malformed_partitions_are_refused() {
        assert!(parse_groups(&words(&["node1,node2"]))
            .unwrap_err()
            .contains("at least two groups"));
        assert!(parse_groups(&words(&[]))
            .unwrap_err()
            .contains("at least two groups"));
        assert!(parse_groups(&words(&["node1", "/"]))
            .unwrap_err()
            .contains("empty group"));
        assert!(parse_groups(&words(&["node1", "//", "node2"]))
            .unwrap_err()
            .contains("empty group"));
        assert_eq!(
            parse_groups(&words(&["node1", "/", "node2,node1"])).unwrap_err(),
            "node \"node1\" is in more than one group"
        );
    }

    #[test]
    fn index_groups_are_checked() {
        assert!(check_groups(&[vec![0], vec![1, 2]], 3).is_ok());
        assert!(check_groups(&[], 3).is_ok());
        assert!(check_groups(&[vec![0], vec![3]], 3).is_err());
        assert!(check_groups(&[vec![0], vec![0, 1]], 3).is_err());
    }

    #[test]
    fn cut_peers_are_the_other_groups() {
        let groups = vec![vec![0], vec![1, 2]];
        assert_eq!(cut_peers(&groups, 0), BTreeSet::from([1, 2]));
        assert_eq!(cut_peers(&groups, 2), BTreeSet::from([0]));
        // Node 3 is in no group: connected to all.
        assert_eq!(cut_peers(&groups, 3), BTreeSet::new());
        let three = vec![vec![0], vec![1], vec![2, 3]];
        assert_eq!(cut_peers(&three, 1), BTreeSet::from([0, 2, 3]));
    }
}
