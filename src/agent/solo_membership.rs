//! The membership of an agent that does not gossip yet: this agent alone, as Consul's
//! member shape. It stands in for the gossip actor until that lands, so that the edges
//! (`/v1/agent/members`, `cairn members` ...) already work against a real agent.
//!
//! It answers `join` with an error instead of pretending: the in-memory
//! [`StaticMembership`] it wraps records joins and reports success, which is right for
//! edge tests and wrong for a user who asked a real agent to join a cluster.

use crate::config::Config;
use crate::member_tags::self_member;
use actors::membership::{MemberView, Membership, MembershipError, StaticMembership};
use futures::future::BoxFuture;
use std::sync::Arc;

pub struct SoloMembership {
    members: Arc<StaticMembership>,
}

impl SoloMembership {
    pub fn new(config: &Config) -> Arc<SoloMembership> {
        Arc::new(SoloMembership {
            members: StaticMembership::new(vec![self_member(config)]),
        })
    }
}

/// Why a join cannot work yet (the text a failed `PUT /v1/agent/join` answers).
fn join_refused(addrs: &[String]) -> MembershipError {
    MembershipError::JoinFailed(format!(
        "Failed to join {}: this cairn agent has no gossip membership yet, so it cannot join other agents",
        addrs.join(", ")
    ))
}

impl Membership for SoloMembership {
    fn members(&self) -> Vec<MemberView> {
        self.members.members()
    }

    fn join(&self, addrs: Vec<String>) -> BoxFuture<'static, Result<usize, MembershipError>> {
        let err = join_refused(&addrs);
        Box::pin(async move { Err(err) })
    }

    fn leave(&self) -> BoxFuture<'static, Result<(), MembershipError>> {
        self.members.leave()
    }

    fn force_leave(&self, node: &str, prune: bool) -> Result<(), MembershipError> {
        self.members.force_leave(node, prune)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lists_itself_and_refuses_to_join() {
        let config = Config::dev_for_tests();
        let m = SoloMembership::new(&config);
        let members = m.members();
        assert_eq!(members.len(), 1);
        assert_eq!(members[0].name, "test-node");
        let err = m
            .join(vec!["10.0.0.2".into()])
            .await
            .expect_err("no gossip yet");
        assert_eq!(
            err.to_string(),
            "Failed to join 10.0.0.2: this cairn agent has no gossip membership yet, so it cannot join other agents"
        );
        assert_eq!(
            m.force_leave("nosuch", false)
                .expect_err("unknown")
                .to_string(),
            "agent: No node found with name 'nosuch'"
        );
        m.leave().await.expect("leave");
    }
}
