//! Alias checks: a check that mirrors the health of a service instance (with its node's
//! checks, as Consul's alias does) or of a whole node. Computed from the local state, so
//! an alias follows its target the moment that changes; only this agent's own node can
//! be aliased (another node's checks would need a catalog watch).

use crate::store::{Check, CheckStatus};

const NONE_TEXT: &str = "No checks found.";
const PASSING_TEXT: &str = "All checks passing.";
const REMOTE_TEXT: &str =
    "Aliasing a check on another node is not supported by this agent (only its own node)";

/// The status and output of an alias of `service_id` (empty: the whole node) on `node`,
/// from `checks` (this agent's other checks). `own_node` is this agent's node name.
pub fn alias_status(
    own_node: &str,
    node: &str,
    service_id: &str,
    alias_id: &str,
    checks: &[Check],
) -> (CheckStatus, String) {
    if !node.is_empty() && node != own_node {
        return (CheckStatus::Critical, REMOTE_TEXT.to_string());
    }
    let mut worst: Option<&Check> = None;
    let mut any = false;
    for c in checks {
        if c.check_id == alias_id {
            continue;
        }
        // A service alias counts node checks too; a node alias counts everything.
        if !service_id.is_empty() && !c.service_id.is_empty() && c.service_id != service_id {
            continue;
        }
        any = true;
        if worst.is_none_or(|w| c.status > w.status) {
            worst = Some(c);
        }
    }
    match worst {
        None if !any => (CheckStatus::Passing, NONE_TEXT.to_string()),
        Some(w) if w.status != CheckStatus::Passing => (
            w.status.min(CheckStatus::Critical),
            format!("Aliased check {:?} failing: {}", w.name, w.output),
        ),
        _ => (CheckStatus::Passing, PASSING_TEXT.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(id: &str, service: &str, status: CheckStatus) -> Check {
        Check {
            check_id: id.into(),
            name: id.into(),
            service_id: service.into(),
            status,
            ..Check::default()
        }
    }

    #[test]
    fn mirrors_the_worst_of_the_service_and_node_checks() {
        let checks = vec![
            check("a", "web", CheckStatus::Passing),
            check("b", "db", CheckStatus::Critical),
            check("node", "", CheckStatus::Warning),
            check("self", "", CheckStatus::Critical),
        ];
        let (s, out) = alias_status("n1", "", "web", "self", &checks);
        assert_eq!(s, CheckStatus::Warning);
        assert!(out.contains("\"node\""), "{out}");
        assert_eq!(
            alias_status("n1", "n1", "", "self", &checks).0,
            CheckStatus::Critical
        );
        assert_eq!(
            alias_status("n1", "", "web", "self", &checks[..1]),
            (CheckStatus::Passing, PASSING_TEXT.to_string())
        );
        assert_eq!(
            alias_status("n1", "", "x", "self", &[]),
            (CheckStatus::Passing, NONE_TEXT.to_string())
        );
        assert_eq!(
            alias_status("n1", "other", "", "self", &[]).0,
            CheckStatus::Critical
        );
    }
}
