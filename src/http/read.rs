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
    let status = ctx.server.status();
    check_read_allowed(&status, opts.consistency)?;
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
