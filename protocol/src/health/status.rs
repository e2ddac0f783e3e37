//! The status rules of one agent-run check: how probe results, TTL updates and the
//! passing of time turn into the check's status and output.
//!
//! Consul's rules (its `StatusHandler` and `CheckTTL`):
//! - A passing or warning result counts toward `success_before_passing`, a critical one
//!   toward `failures_before_warning` / `failures_before_critical`; each kind of result
//!   resets the other counter. Both counters start at their thresholds, so the first
//!   result after registration (or a restart) applies at once.
//! - A result that reaches its threshold applies as it is (status and output). A failure
//!   that reached `failures_before_warning` but not `failures_before_critical` applies as
//!   *warning*, with the failure's output. A result below every threshold changes nothing,
//!   neither the status nor the output (Consul does not call `UpdateCheck` then).
//! - A TTL check takes its status and output from outside and is re-armed on each update;
//!   not fed for `ttl_ms`, it turns critical with the output "TTL expired" (followed by the
//!   last output fed, if any), once per expiry.
//!
//! Pure: time comes in as `now_ms` (the caller's monotonic milliseconds).

use super::spec::{truncate_output, CheckKind, CheckSpec, ProbeResult};
use crate::store::CheckStatus;
use serde::{Deserialize, Serialize};

/// The output of a TTL check that expired without ever being fed.
pub const TTL_EXPIRED_OUTPUT: &str = "TTL expired";

/// The live state of one check on its agent. Persisted with the agent's local state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckState {
    status: CheckStatus,
    output: String,
    /// When the status last turned critical; None while not critical.
    critical_since_ms: Option<u64>,
    /// Consecutive passing/warning results (saturating).
    successes: u32,
    /// Consecutive critical results (saturating).
    failures: u32,
    /// A TTL check's expiry; None for other kinds, and once expired until fed again.
    ttl_deadline_ms: Option<u64>,
    /// The last output fed to a TTL check, quoted in its expiry output.
    ttl_last_output: String,
}

/// What an input changed: returned only when the status or the output changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    /// The status changed (an output-only change may be coalesced; this may not).
    pub status_changed: bool,
}

impl CheckState {
    /// A newly registered check: the spec's initial status and output; a TTL check's
    /// clock starts now.
    pub fn new(spec: &CheckSpec, now_ms: u64) -> CheckState {
        CheckState::restore(
            spec,
            spec.initial_status,
            spec.initial_output.clone(),
            now_ms,
        )
    }

    /// A check brought back after an agent restart with its last known status and output.
    /// The thresholds start full (the next result applies at once, as after a
    /// registration), a TTL check gets a whole TTL from now, and a critical check counts
    /// as critical since now (Consul's reaper timer restarts with the agent too).
    pub fn restore(
        spec: &CheckSpec,
        status: CheckStatus,
        output: String,
        now_ms: u64,
    ) -> CheckState {
        let status = stored_status(status);
        CheckState {
            status,
            output: truncate_output(output),
            critical_since_ms: (status == CheckStatus::Critical).then_some(now_ms),
            successes: spec.success_before_passing,
            failures: spec.failures_before_critical,
            ttl_deadline_ms: ttl_ms(spec).map(|ttl| now_ms.saturating_add(ttl)),
            ttl_last_output: String::new(),
        }
    }

    pub fn status(&self) -> CheckStatus {
        self.status
    }

    pub fn output(&self) -> &str {
        &self.output
    }

    /// When the check last turned critical (None unless it is critical now): the start
    /// of `DeregisterCriticalServiceAfter`'s clock.
    pub fn critical_since_ms(&self) -> Option<u64> {
        self.critical_since_ms
    }

    /// One probe's result, through the thresholds.
    pub fn on_probe(
        &mut self,
        spec: &CheckSpec,
        result: ProbeResult,
        now_ms: u64,
    ) -> Option<Change> {
        let ProbeResult { status, output } = result;
        let applied = match stored_status(status) {
            CheckStatus::Critical => {
                self.failures = self.failures.saturating_add(1);
                self.successes = 0;
                if self.failures >= spec.failures_before_critical {
                    Some(CheckStatus::Critical)
                } else if self.failures >= spec.failures_before_warning {
                    Some(CheckStatus::Warning)
                } else {
                    None
                }
            }
            ok => {
                self.successes = self.successes.saturating_add(1);
                self.failures = 0;
                (self.successes >= spec.success_before_passing).then_some(ok)
            }
        };
        let status = applied?;
        self.set(status, truncate_output(output), now_ms)
    }

    /// A TTL check fed from outside (`/v1/agent/check/pass|warn|fail|update`): the status
    /// and output apply as given, no thresholds, and the TTL starts again.
    pub fn on_ttl_update(
        &mut self,
        spec: &CheckSpec,
        status: CheckStatus,
        output: String,
        now_ms: u64,
    ) -> Option<Change> {
        let output = truncate_output(output);
        if let Some(ttl) = ttl_ms(spec) {
            self.ttl_deadline_ms = Some(now_ms.saturating_add(ttl));
            self.ttl_last_output.clone_from(&output);
        }
        self.set(stored_status(status), output, now_ms)
    }

    /// Time passed: a TTL check past its deadline turns critical (once per expiry).
    pub fn on_tick(&mut self, spec: &CheckSpec, now_ms: u64) -> Option<Change> {
        ttl_ms(spec)?;
        let deadline = self.ttl_deadline_ms?;
        if now_ms < deadline {
            return None;
        }
        self.ttl_deadline_ms = None;
        let output = if self.ttl_last_output.is_empty() {
            TTL_EXPIRED_OUTPUT.to_string()
        } else {
            format!(
                "{TTL_EXPIRED_OUTPUT} (last output before timeout follows): {}",
                self.ttl_last_output
            )
        };
        self.set(CheckStatus::Critical, truncate_output(output), now_ms)
    }

    /// When [`CheckState::on_tick`] must next be called (a TTL check's expiry), if ever.
    pub fn next_deadline_ms(&self, spec: &CheckSpec) -> Option<u64> {
        ttl_ms(spec).and(self.ttl_deadline_ms)
    }

    fn set(&mut self, status: CheckStatus, output: String, now_ms: u64) -> Option<Change> {
        let status_changed = status != self.status;
        if !status_changed && output == self.output {
            return None;
        }
        if status_changed {
            self.critical_since_ms = (status == CheckStatus::Critical).then_some(now_ms);
        }
        self.status = status;
        self.output = output;
        Some(Change { status_changed })
    }
}

/// Whether the agent should deregister `spec`'s service now: the check has been critical
/// for at least its `DeregisterCriticalServiceAfter`.
pub fn should_reap(spec: &CheckSpec, state: &CheckState, now_ms: u64) -> bool {
    match (
        spec.deregister_critical_service_after_ms,
        state.critical_since_ms,
    ) {
        (Some(after_ms), Some(since_ms)) => {
            state.status == CheckStatus::Critical && now_ms.saturating_sub(since_ms) >= after_ms
        }
        _ => false,
    }
}

fn ttl_ms(spec: &CheckSpec) -> Option<u64> {
    match spec.kind {
        CheckKind::Ttl { ttl_ms } => Some(ttl_ms),
        _ => None,
    }
}

/// "maintenance" is an aggregate, never a check's own status; treat it as critical if it
/// ever arrives (it counts as failing everywhere it is read).
fn stored_status(status: CheckStatus) -> CheckStatus {
    match status {
        CheckStatus::Maintenance => CheckStatus::Critical,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::spec::MAX_OUTPUT_BYTES;
    use std::collections::BTreeMap;

    use CheckStatus::{Critical, Passing, Warning};

    fn http_spec(
        success_before_passing: u32,
        before_warning: u32,
        before_critical: u32,
    ) -> CheckSpec {
        CheckSpec {
            id: "service:web-1".into(),
            name: "Service 'web' check".into(),
            notes: String::new(),
            service_id: "web-1".into(),
            kind: CheckKind::Http {
                url: "http://127.0.0.1:8080/health".into(),
                method: "GET".into(),
                headers: BTreeMap::new(),
                body: String::new(),
                tls_skip_verify: false,
                tls_server_name: String::new(),
            },
            interval_ms: 1_000,
            timeout_ms: 500,
            success_before_passing,
            failures_before_warning: before_warning,
            failures_before_critical: before_critical,
            deregister_critical_service_after_ms: None,
            initial_status: Critical,
            initial_output: String::new(),
        }
    }

    fn ttl_spec(ttl_ms: u64) -> CheckSpec {
        CheckSpec {
            kind: CheckKind::Ttl { ttl_ms },
            interval_ms: 0,
            ..http_spec(0, 0, 0)
        }
    }

    fn result(status: CheckStatus, n: usize) -> ProbeResult {
        ProbeResult::new(status, format!("{} #{n}", status.as_str()))
    }

    /// Each row: thresholds (success, warning, critical), the initial status, the probe
    /// results in order, and the status after each.
    #[test]
    fn thresholds_follow_consuls_status_handler() {
        struct Row {
            name: &'static str,
            thresholds: (u32, u32, u32),
            initial: CheckStatus,
            results: &'static [CheckStatus],
            expected: &'static [CheckStatus],
        }
        let rows = [
            Row {
                name: "no thresholds: every result applies at once",
                thresholds: (0, 0, 0),
                initial: Critical,
                results: &[Passing, Critical, Warning, Passing],
                expected: &[Passing, Critical, Warning, Passing],
            },
            Row {
                name: "the first result applies at once even with thresholds",
                thresholds: (3, 3, 3),
                initial: Critical,
                results: &[Passing],
                expected: &[Passing],
            },
            Row {
                name: "failures before critical hold the status",
                thresholds: (0, 3, 3),
                initial: Passing,
                results: &[Passing, Critical, Critical, Critical, Critical],
                expected: &[Passing, Passing, Passing, Critical, Critical],
            },
            Row {
                name: "a success in between resets the failure count",
                thresholds: (0, 2, 2),
                initial: Passing,
                results: &[Passing, Critical, Passing, Critical, Critical],
                expected: &[Passing, Passing, Passing, Passing, Critical],
            },
            Row {
                name: "successes before passing hold critical",
                thresholds: (2, 0, 0),
                initial: Critical,
                results: &[
                    Critical, Passing, Passing, Passing, Critical, Passing, Passing,
                ],
                expected: &[
                    Critical, Critical, Passing, Passing, Critical, Critical, Passing,
                ],
            },
            Row {
                name: "failures before warning turn warning first",
                thresholds: (0, 1, 3),
                initial: Passing,
                results: &[Passing, Critical, Critical, Critical, Passing],
                expected: &[Passing, Warning, Warning, Critical, Passing],
            },
            Row {
                name: "a warning result counts as a success and applies as warning",
                thresholds: (2, 2, 2),
                initial: Passing,
                results: &[Passing, Critical, Critical, Warning, Warning, Passing],
                expected: &[Passing, Passing, Critical, Critical, Warning, Passing],
            },
        ];
        for row in rows {
            let (s, w, c) = row.thresholds;
            let spec = CheckSpec {
                initial_status: row.initial,
                ..http_spec(s, w, c)
            };
            let mut state = CheckState::new(&spec, 0);
            let mut seen = Vec::new();
            for (n, status) in row.results.iter().enumerate() {
                state.on_probe(&spec, result(*status, n), n as u64);
                seen.push(state.status());
            }
            assert_eq!(seen, row.expected, "{}", row.name);
        }
    }

    #[test]
    fn a_held_back_result_changes_neither_status_nor_output() {
        let spec = http_spec(0, 3, 3);
        let mut state = CheckState::new(&spec, 0);
        assert_eq!(
            state.on_probe(&spec, result(Passing, 0), 10),
            Some(Change {
                status_changed: true
            })
        );
        assert_eq!(state.on_probe(&spec, result(Critical, 1), 20), None);
        assert_eq!(state.output(), "passing #0");
        assert_eq!(state.on_probe(&spec, result(Critical, 2), 30), None);
        assert_eq!(
            state.on_probe(&spec, result(Critical, 3), 40),
            Some(Change {
                status_changed: true
            })
        );
        assert_eq!((state.status(), state.output()), (Critical, "critical #3"));
        assert_eq!(state.critical_since_ms(), Some(40));
    }

    #[test]
    fn the_warning_step_carries_the_failures_output() {
        let spec = http_spec(0, 1, 2);
        let mut state = CheckState::new(&spec, 0);
        state.on_probe(&spec, result(Passing, 0), 0);
        let failure = ProbeResult::new(
            Critical,
            "HTTP GET http://x: 500 Internal Server Error Output: ",
        );
        assert_eq!(
            state.on_probe(&spec, failure.clone(), 1),
            Some(Change {
                status_changed: true
            })
        );
        assert_eq!(
            (state.status(), state.output()),
            (Warning, failure.output.as_str())
        );
        assert_eq!(state.critical_since_ms(), None);
    }

    #[test]
    fn an_output_only_change_is_reported_without_a_status_change() {
        let spec = http_spec(0, 0, 0);
        let mut state = CheckState::new(&spec, 0);
        state.on_probe(&spec, ProbeResult::new(Passing, "a"), 0);
        assert_eq!(
            state.on_probe(&spec, ProbeResult::new(Passing, "b"), 1),
            Some(Change {
                status_changed: false
            })
        );
        assert_eq!(
            state.on_probe(&spec, ProbeResult::new(Passing, "b"), 2),
            None
        );
    }

    #[test]
    fn output_is_capped() {
        let spec = http_spec(0, 0, 0);
        let mut state = CheckState::new(&spec, 0);
        let long = ProbeResult {
            status: Passing,
            output: "x".repeat(MAX_OUTPUT_BYTES * 2),
        };
        state.on_probe(&spec, long, 0);
        assert_eq!(state.output().len(), MAX_OUTPUT_BYTES);
        state.on_ttl_update(&spec, Passing, "y".repeat(MAX_OUTPUT_BYTES + 1), 1);
        assert_eq!(state.output().len(), MAX_OUTPUT_BYTES);
    }

    #[test]
    fn a_new_check_starts_in_its_initial_state() {
        let spec = CheckSpec {
            initial_status: Passing,
            initial_output: "registered".into(),
            ..http_spec(0, 0, 0)
        };
        let state = CheckState::new(&spec, 5);
        assert_eq!((state.status(), state.output()), (Passing, "registered"));
        assert_eq!(state.critical_since_ms(), None);
        assert_eq!(state.next_deadline_ms(&spec), None);

        let critical = CheckState::new(&http_spec(0, 0, 0), 5);
        assert_eq!(critical.critical_since_ms(), Some(5));
    }

    #[test]
    fn a_ttl_check_expires_once_and_is_rearmed_by_each_update() {
        let spec = ttl_spec(1_000);
        let mut state = CheckState::new(&spec, 100);
        assert_eq!(state.next_deadline_ms(&spec), Some(1_100));
        assert_eq!(state.on_tick(&spec, 1_099), None);

        // Fed before the deadline: the TTL starts again from the update.
        assert_eq!(
            state.on_ttl_update(&spec, Passing, "ok".into(), 900),
            Some(Change {
                status_changed: true
            })
        );
        assert_eq!(state.next_deadline_ms(&spec), Some(1_900));
        assert_eq!(state.on_tick(&spec, 1_100), None);
        assert_eq!(state.status(), Passing);

        // Not fed: critical at the deadline, quoting the last output, once.
        assert_eq!(
            state.on_tick(&spec, 1_900),
            Some(Change {
                status_changed: true
            })
        );
        assert_eq!(state.status(), Critical);
        assert_eq!(
            state.output(),
            "TTL expired (last output before timeout follows): ok"
        );
        assert_eq!(state.critical_since_ms(), Some(1_900));
        assert_eq!(state.next_deadline_ms(&spec), None);
        assert_eq!(state.on_tick(&spec, 5_000), None);

        // Fed again: re-armed.
        state.on_ttl_update(&spec, Warning, "slow".into(), 6_000);
        assert_eq!(
            (state.status(), state.next_deadline_ms(&spec)),
            (Warning, Some(7_000))
        );
    }

    #[test]
    fn a_ttl_check_never_fed_expires_with_the_bare_text() {
        let spec = CheckSpec {
            initial_status: Passing,
            ..ttl_spec(500)
        };
        let mut state = CheckState::new(&spec, 0);
        assert_eq!(
            state.on_tick(&spec, 500),
            Some(Change {
                status_changed: true
            })
        );
        assert_eq!(
            (state.status(), state.output()),
            (Critical, TTL_EXPIRED_OUTPUT)
        );
    }

    #[test]
    fn ttl_updates_ignore_the_thresholds() {
        let spec = CheckSpec {
            kind: CheckKind::Ttl { ttl_ms: 1_000 },
            ..http_spec(5, 5, 5)
        };
        let mut state = CheckState::new(&spec, 0);
        state.on_ttl_update(&spec, Passing, String::new(), 1);
        assert_eq!(state.status(), Passing);
        state.on_ttl_update(&spec, Critical, "down".into(), 2);
        assert_eq!(state.status(), Critical);
    }

    #[test]
    fn a_probed_check_has_no_deadline_and_ignores_ticks() {
        let spec = http_spec(0, 0, 0);
        let mut state = CheckState::new(&spec, 0);
        assert_eq!(state.next_deadline_ms(&spec), None);
        assert_eq!(state.on_tick(&spec, u64::MAX), None);
    }

    #[test]
    fn restore_keeps_the_status_and_starts_the_clocks_again() {
        let spec = CheckSpec {
            deregister_critical_service_after_ms: Some(60_000),
            ..ttl_spec(10_000)
        };
        let state = CheckState::restore(&spec, Critical, "TTL expired".into(), 50_000);
        assert_eq!((state.status(), state.output()), (Critical, "TTL expired"));
        assert_eq!(state.critical_since_ms(), Some(50_000));
        assert_eq!(state.next_deadline_ms(&spec), Some(60_000));
        assert!(!should_reap(&spec, &state, 109_999));
        assert!(should_reap(&spec, &state, 110_000));

        // A restored check with thresholds takes its next result at once.
        let spec = http_spec(3, 3, 3);
        let mut state = CheckState::restore(&spec, Passing, "was fine".into(), 0);
        state.on_probe(&spec, result(Critical, 0), 1);
        assert_eq!(state.status(), Critical);
    }

    #[test]
    fn reaping_waits_for_a_continuous_critical_period() {
        let spec = CheckSpec {
            deregister_critical_service_after_ms: Some(1_000),
            initial_status: Passing,
            ..http_spec(0, 0, 0)
        };
        let mut state = CheckState::new(&spec, 0);
        assert!(!should_reap(&spec, &state, 10_000));
        state.on_probe(&spec, result(Critical, 0), 100);
        assert!(!should_reap(&spec, &state, 1_099));
        // Output changes while critical do not restart the clock.
        state.on_probe(&spec, result(Critical, 1), 500);
        assert!(should_reap(&spec, &state, 1_100));
        // A pass in between does.
        state.on_probe(&spec, result(Passing, 2), 1_200);
        state.on_probe(&spec, result(Critical, 3), 1_300);
        assert!(!should_reap(&spec, &state, 2_299));
        assert!(should_reap(&spec, &state, 2_300));
        // Warning is not critical.
        state.on_probe(&spec, result(Warning, 4), 2_400);
        assert!(!should_reap(&spec, &state, 99_000));

        let never = http_spec(0, 0, 0);
        let state = CheckState::new(&never, 0);
        assert!(!should_reap(&never, &state, u64::MAX));
    }

    #[test]
    fn state_round_trips_through_serde() {
        let spec = ttl_spec(1_000);
        let mut state = CheckState::new(&spec, 0);
        state.on_ttl_update(&spec, Warning, "w".into(), 10);
        let bytes = crate::codec::encode(&state).expect("encode");
        let back: CheckState = crate::codec::decode(&bytes, 1 << 20).expect("decode");
        assert_eq!(back, state);
    }
}
