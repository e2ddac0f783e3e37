//! Consul's read consistency policy, as pure decisions over a Raft status (the waiting
//! is done by the endpoint).
//!
//! cairn's modes, stronger than Consul's where Consul's default can be stale:
//! - `stale`: any server answers from its own store, saying how old its last contact
//!   with a leader is (`X-Consul-LastContact`, `X-Consul-KnownLeader`);
//! - default (`leader`): linearizable. The leader answers from its store while it holds
//!   its leader lease (a quorum acknowledged one of its heartbeats less than 0.9 of an
//!   election timeout ago, so no other leader can exist; see `protocol::raft` reads),
//!   else after a ReadIndex round. Consul's default answers from a leader that may
//!   already be deposed;
//! - `consistent`: always a ReadIndex round (a quorum confirms leadership after the read
//!   arrived), as Consul's `consistent` does.
//!
//! Non-stale reads reaching a follower are forwarded to the leader (`rpc::leader`).

use crate::RaftStatus;
use protocol::api::{Consistency, QueryMeta, RequestError};
use rand::Rng;
use std::time::Duration;

/// Default-mode and consistent reads need a leader somewhere; stale reads never do.
pub fn check_read_allowed(status: &RaftStatus, mode: Consistency) -> Result<(), RequestError> {
    if mode == Consistency::Stale || status.is_leader() || status.known_leader() {
        Ok(())
    } else {
        Err(RequestError::NoLeader)
    }
}

/// Longest a default or consistent read waits for a new leader to apply the entries that
/// earlier terms committed (its no-op) before answering "No cluster leader".
pub const LEADER_CATCH_UP_WAIT: Duration = Duration::from_secs(5);

/// Whether a read in `mode` must wait before answering: a leader that has not yet applied
/// its own no-op may lack acknowledged writes (after a restart, everything after the last
/// snapshot is re-applied only once the no-op commits). Stale reads promise nothing more.
pub fn must_wait_for_catch_up(status: &RaftStatus, mode: Consistency, applied: u64) -> bool {
    mode != Consistency::Stale && status.is_leader() && applied < status.leader_ready_index
}

pub fn meta_for(status: &RaftStatus, index: u64, mode: Consistency) -> QueryMeta {
    QueryMeta {
        index,
        known_leader: status.is_leader() || status.known_leader(),
        last_contact_ms: if status.is_leader() {
            0
        } else {
            status.last_contact_ms
        },
        consistency: mode,
    }
}

/// Consul adds up to wait/16 of random jitter so that many watchers don't wake together.
pub fn jittered(wait: Duration) -> Duration {
    let max_jitter_ns = (wait.as_nanos() / 16) as u64;
    if max_jitter_ns == 0 {
        return wait;
    }
    wait + Duration::from_nanos(rand::rng().random_range(0..=max_jitter_ns))
}

/// Whether a blocking query may answer now.
pub fn ready(min_index: u64, current: u64, last_applied: u64) -> bool {
    // An index from the future (restored snapshot, other cluster) answers at once with
    // the lower index: clients then reset, which is friendlier than a full wait.
    min_index == 0 || current > min_index || min_index > last_applied
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RaftRole;

    #[test]
    fn a_new_leader_serves_reads_only_after_its_noop_is_applied() {
        let leader = RaftStatus {
            role: RaftRole::Leader,
            leader_id: Some("me".into()),
            leader_ready_index: 10,
            ..RaftStatus::default()
        };
        assert!(must_wait_for_catch_up(&leader, Consistency::Leader, 9));
        assert!(must_wait_for_catch_up(&leader, Consistency::Consistent, 9));
        assert!(!must_wait_for_catch_up(&leader, Consistency::Stale, 9));
        assert!(!must_wait_for_catch_up(&leader, Consistency::Leader, 10));
        let follower = RaftStatus {
            leader_id: Some("other".into()),
            leader_ready_index: 0,
            ..RaftStatus::default()
        };
        assert!(!must_wait_for_catch_up(&follower, Consistency::Leader, 0));
    }

    #[test]
    fn leaderless_reads_fail_unless_stale() {
        let none = RaftStatus::default();
        assert_eq!(
            check_read_allowed(&none, Consistency::Leader),
            Err(RequestError::NoLeader)
        );
        assert_eq!(
            check_read_allowed(&none, Consistency::Consistent),
            Err(RequestError::NoLeader)
        );
        assert_eq!(check_read_allowed(&none, Consistency::Stale), Ok(()));
        let leader = RaftStatus {
            role: RaftRole::Leader,
            ..Default::default()
        };
        assert_eq!(check_read_allowed(&leader, Consistency::Leader), Ok(()));
        let m = meta_for(&none, 7, Consistency::Stale);
        assert!(!m.known_leader);
    }

    #[test]
    fn blocking_readiness() {
        assert!(ready(0, 5, 5));
        assert!(ready(4, 5, 5));
        assert!(!ready(5, 5, 9));
        assert!(ready(50, 5, 9));
    }

    #[test]
    fn jitter_is_bounded() {
        let w = Duration::from_secs(16);
        for _ in 0..100 {
            let j = jittered(w);
            assert!(j >= w && j <= w + Duration::from_secs(1));
        }
    }
}
