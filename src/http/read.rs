//! The read path shared by every blocking-capable endpoint: consistency checks, blocking
//! on the applied-index watch, and the meta headers.

use super::error::ApiError;
use super::query::{Consistency, QueryOptions};
use super::render::QueryMeta;
use crate::agent::AgentContext;
use actors::RaftStatus;
use protocol::store::Store;
use rand::Rng;
use std::time::Duration;

/// Default-mode and consistent reads need a leader somewhere; stale reads never do.
/// (A follower with a known leader reads its own view until forwarding arrives.)
pub fn check_read_allowed(status: &RaftStatus, mode: Consistency) -> Result<(), ApiError> {
    if mode == Consistency::Stale || status.is_leader() || status.known_leader() {
        Ok(())
    } else {
        Err(ApiError::internal("No cluster leader"))
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

/// Wait (bounded) until this server may answer a read in `mode`; the status to answer with.
async fn catch_up(ctx: &AgentContext, mode: Consistency) -> Result<RaftStatus, ApiError> {
    let mut applied = ctx.server.applied();
    let deadline = tokio::time::Instant::now() + LEADER_CATCH_UP_WAIT;
    loop {
        let now_applied = *applied.borrow_and_update();
        let status = ctx.server.status();
        check_read_allowed(&status, mode)?;
        if !must_wait_for_catch_up(&status, mode, now_applied) {
            return Ok(status);
        }
        match tokio::time::timeout_at(deadline, applied.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return Err(ApiError::internal("No cluster leader")),
        }
    }
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

/// Run a read: `index_of` gives the resource's index, `render` builds the answer under
/// the same read lock. With `?index=N` the read parks until the index passes N or the
/// jittered wait expires.
pub async fn read<T>(
    ctx: &AgentContext,
    opts: &QueryOptions,
    index_of: impl Fn(&Store) -> u64,
    render: impl Fn(&Store, u64) -> Result<T, ApiError>,
) -> Result<(QueryMeta, T), ApiError> {
    let status = catch_up(ctx, opts.consistency).await?;
    if opts.min_index == 0 {
        let store = ctx.server.view().read();
        let index = index_of(&store);
        let out = render(&store, index)?;
        drop(store);
        return Ok((meta_for(&status, index, opts.consistency), out));
    }
    let deadline = tokio::time::Instant::now() + jittered(opts.effective_wait());
    let mut applied = ctx.server.applied();
    let mut expired = false;
    loop {
        applied.borrow_and_update();
        {
            let store = ctx.server.view().read();
            let index = index_of(&store);
            if expired || ready(opts.min_index, index, store.last_index()) {
                let out = render(&store, index)?;
                drop(store);
                return Ok((meta_for(&ctx.server.status(), index, opts.consistency), out));
            }
        }
        match tokio::time::timeout_at(deadline, applied.changed()).await {
            Ok(Ok(())) => {}
            // Timed out, or the applier is gone (shutdown): answer with what we have.
            Ok(Err(_)) | Err(_) => expired = true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::RaftRole;

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
            Err(ApiError::internal("No cluster leader"))
        );
        assert_eq!(
            check_read_allowed(&none, Consistency::Consistent),
            Err(ApiError::internal("No cluster leader"))
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
