//! A stand-in for `health::status` (built on branch wip-probes) with the same interface,
//! so the local state can be written and tested before it lands. Thresholds are the
//! simple form (consecutive counts); the real rules replace this file at the merge, and
//! only `local::check_state` (the adapter) names it.

use super::spec::{CheckKind, CheckSpec, ProbeResult};
use crate::store::CheckStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub status_changed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckState {
    status: CheckStatus,
    output: String,
    critical_since_ms: Option<u64>,
    ttl_deadline_ms: Option<u64>,
    successes: u32,
    failures: u32,
}

impl CheckState {
    pub fn new(spec: &CheckSpec, now_ms: u64) -> CheckState {
        CheckState::restore(
            spec,
            spec.initial_status,
            spec.initial_output.clone(),
            now_ms,
        )
    }

    pub fn restore(spec: &CheckSpec, status: CheckStatus, output: String, now_ms: u64) -> Self {
        CheckState {
            status,
            output,
            critical_since_ms: (status == CheckStatus::Critical).then_some(now_ms),
            ttl_deadline_ms: match spec.kind {
                CheckKind::Ttl { ttl_ms } => Some(now_ms.saturating_add(ttl_ms)),
                _ => None,
            },
            successes: 0,
            failures: 0,
        }
    }

    pub fn status(&self) -> CheckStatus {
        self.status
    }

    pub fn output(&self) -> &str {
        &self.output
    }

    pub fn critical_since_ms(&self) -> Option<u64> {
        self.critical_since_ms
    }

    fn set(&mut self, status: CheckStatus, output: String, now: u64) -> Option<Change> {
        if status == self.status && output == self.output {
            return None;
        }
        let status_changed = status != self.status;
        if status_changed {
            self.critical_since_ms = (status == CheckStatus::Critical).then_some(now);
        }
        self.status = status;
        self.output = output;
        Some(Change { status_changed })
    }

    pub fn on_probe(&mut self, spec: &CheckSpec, r: ProbeResult, now: u64) -> Option<Change> {
        if r.status == CheckStatus::Passing {
            self.failures = 0;
            self.successes = self.successes.saturating_add(1);
            if self.successes <= spec.success_before_passing && self.status != CheckStatus::Passing
            {
                return None;
            }
            return self.set(r.status, r.output, now);
        }
        self.successes = 0;
        self.failures = self.failures.saturating_add(1);
        let status = if self.failures > spec.failures_before_critical {
            CheckStatus::Critical
        } else if self.failures > spec.failures_before_warning {
            CheckStatus::Warning
        } else {
            return None;
        };
        self.set(status.min(r.status), r.output, now)
    }

    pub fn on_ttl_update(
        &mut self,
        spec: &CheckSpec,
        status: CheckStatus,
        output: String,
        now: u64,
    ) -> Option<Change> {
        if let CheckKind::Ttl { ttl_ms } = spec.kind {
            self.ttl_deadline_ms = Some(now.saturating_add(ttl_ms));
        }
        self.set(status, output, now)
    }

    pub fn on_tick(&mut self, _spec: &CheckSpec, now: u64) -> Option<Change> {
        match self.ttl_deadline_ms {
            Some(deadline) if now >= deadline => {
                self.ttl_deadline_ms = None;
                let output = format!(
                    "TTL expired (last output before timeout follows): {}",
                    self.output
                );
                self.set(CheckStatus::Critical, output, now)
            }
            _ => None,
        }
    }

    pub fn next_deadline_ms(&self, _spec: &CheckSpec) -> Option<u64> {
        self.ttl_deadline_ms
    }
}

pub fn should_reap(spec: &CheckSpec, state: &CheckState, now: u64) -> bool {
    match (
        spec.deregister_critical_service_after_ms,
        state.critical_since_ms,
    ) {
        (Some(after), Some(since)) => {
            !spec.service_id.is_empty() && now.saturating_sub(since) >= after
        }
        _ => false,
    }
}
