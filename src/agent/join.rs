//! `-join` / `-retry-join` (and `start_join` / `retry_join` in config files): join the
//! cluster through the given addresses at start, retrying until one join works or
//! `retry_max` attempts have failed (0: forever), as Consul's retry-join does. The pause
//! between attempts backs off from [`FIRST_RETRY`] doubling up to `retry_interval`
//! (Consul waits the whole interval, 30 s by default, even when the first server was
//! only a second late). A failure is logged with the reason and never stops the agent.

use crate::config::Config;
use actors::membership::Membership;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The first pause after a failed join (never more than `retry_interval`).
pub const FIRST_RETRY: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    pub addrs: Vec<String>,
    pub interval: Duration,
    /// Attempts before giving up; 0: never give up.
    pub max_attempts: u32,
}

impl RetryPolicy {
    pub fn of(config: &Config) -> RetryPolicy {
        RetryPolicy {
            addrs: config.retry_join.clone(),
            interval: Duration::from_millis(config.retry_interval_ms),
            max_attempts: config.retry_max,
        }
    }

    /// Whether another attempt may follow `attempts` failed ones.
    pub fn may_retry(&self, attempts: u32) -> bool {
        self.max_attempts == 0 || attempts < self.max_attempts
    }

    /// The pause after `attempts` failed ones: `FIRST_RETRY` doubling, capped at the
    /// interval.
    pub fn pause_after(&self, attempts: u32) -> Duration {
        let doublings = attempts.saturating_sub(1).min(16);
        FIRST_RETRY
            .saturating_mul(1 << doublings)
            .min(self.interval)
    }
}

/// Join until it works (Ok: members contacted) or the policy gives up.
pub async fn retry_join(membership: Arc<dyn Membership>, policy: RetryPolicy) {
    info!(addrs = ?policy.addrs, "Joining cluster...");
    let mut attempts = 0;
    loop {
        attempts += 1;
        match membership.join(policy.addrs.clone()).await {
            Ok(n) => {
                info!("Join completed. Initial agents synced with: {n}");
                return;
            }
            Err(e) => {
                if !policy.may_retry(attempts) {
                    warn!("agent: Join failed after {attempts} attempts, giving up: {e}");
                    return;
                }
                let pause = policy.pause_after(attempts);
                warn!("agent: Join failed: {e}, retrying in {pause:?}");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actors::membership::{MemberView, MembershipError};
    use futures::future::BoxFuture;
    use parking_lot::Mutex;

    /// Fails its first `failures` joins, then succeeds; counts attempts.
    struct Flaky {
        failures: u32,
        attempts: Mutex<u32>,
    }

    impl Membership for Flaky {
        fn members(&self) -> Vec<MemberView> {
            Vec::new()
        }
        fn join(&self, _: Vec<String>) -> BoxFuture<'static, Result<usize, MembershipError>> {
            let mut attempts = self.attempts.lock();
            *attempts += 1;
            let result = match *attempts <= self.failures {
                true => Err(MembershipError::JoinFailed("nobody there".into())),
                false => Ok(1),
            };
            Box::pin(async move { result })
        }
        fn leave(&self) -> BoxFuture<'static, Result<(), MembershipError>> {
            Box::pin(async { Ok(()) })
        }
        fn force_leave(&self, _: &str, _: bool) -> Result<(), MembershipError> {
            Ok(())
        }
    }

    fn policy(max_attempts: u32) -> RetryPolicy {
        RetryPolicy {
            addrs: vec!["10.0.0.1".into()],
            interval: Duration::from_millis(1),
            max_attempts,
        }
    }

    #[test]
    fn pauses_back_off_up_to_the_interval() {
        let p = RetryPolicy {
            interval: Duration::from_secs(30),
            ..policy(0)
        };
        let pauses: Vec<u64> = (1..=7).map(|n| p.pause_after(n).as_secs()).collect();
        assert_eq!(pauses, vec![1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(policy(0).pause_after(1), Duration::from_millis(1));
    }

    #[tokio::test]
    async fn retries_until_a_join_works() {
        let flaky = Arc::new(Flaky {
            failures: 3,
            attempts: Mutex::new(0),
        });
        retry_join(flaky.clone(), policy(0)).await;
        assert_eq!(*flaky.attempts.lock(), 4);
    }

    #[tokio::test]
    async fn gives_up_after_retry_max_attempts() {
        let flaky = Arc::new(Flaky {
            failures: 10,
            attempts: Mutex::new(0),
        });
        retry_join(flaky.clone(), policy(2)).await;
        assert_eq!(*flaky.attempts.lock(), 2);
    }
}
