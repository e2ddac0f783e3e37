//! The agent's own services and checks (Consul's `agent/local.State`), pure: what was
//! registered, each check's status under the rules of `check_state`, maintenance, alias
//! checks and reaping. The local-state actor (`src/agent/local`) owns one, feeds it
//! registrations, probe results, TTL updates and the time, runs the probe commands it
//! queues and syncs [`LocalState::catalog_services`] / [`LocalState::catalog_checks`] to
//! the catalog (see `health::sync`).

pub mod alias;
pub mod check_state;
pub mod maintenance;
mod persist;
#[cfg(test)]
mod tests;

pub use persist::{PersistedCheck, PersistedState, PERSIST_FORMAT_VERSION};

use super::definition::{Origin, ServiceDefinition};
use super::spec::{truncate_output, CheckKind, CheckSpec, ProbeResult};
use crate::api::RequestError;
use crate::store::{Check, CheckDefinition, CheckStatus, Service};
use check_state::CheckState;
use std::collections::BTreeMap;

/// What the probe runner must do, in order. (Boxing the spec would only move the
/// allocation: every Start is sent on to the runner whole.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeCommand {
    /// Run `spec` from now on; its reports carry `generation`.
    Start {
        spec: CheckSpec,
        generation: u64,
    },
    Stop {
        check_id: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalService {
    pub service: Service,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalCheck {
    pub spec: CheckSpec,
    pub state: CheckState,
    pub origin: Origin,
    /// Reports of older runs of this check ID (before a re-registration) are dropped.
    pub generation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalState {
    node: String,
    services: BTreeMap<String, LocalService>,
    checks: BTreeMap<String, LocalCheck>,
    /// The reason (may be empty) while the node is in maintenance.
    node_maintenance: Option<String>,
    /// Service ID to reason, for services in maintenance.
    service_maintenance: BTreeMap<String, String>,
    next_generation: u64,
    probe_commands: Vec<ProbeCommand>,
}

/// Consul's 404 for an unknown check.
pub fn unknown_check(id: &str) -> RequestError {
    RequestError::NotFound(format!(
        "Unknown check ID {id:?}. Ensure that the check ID is passed, not the check name."
    ))
}

/// Consul's 404 for an unknown service.
pub fn unknown_service(id: &str) -> RequestError {
    RequestError::NotFound(format!(
        "Unknown service ID {id:?}. Ensure that the service ID is passed, not the service name."
    ))
}

impl LocalState {
    pub fn new(node: &str) -> LocalState {
        LocalState {
            node: node.to_string(),
            services: BTreeMap::new(),
            checks: BTreeMap::new(),
            node_maintenance: None,
            service_maintenance: BTreeMap::new(),
            next_generation: 1,
            probe_commands: Vec::new(),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn service(&self, id: &str) -> Option<&LocalService> {
        self.services.get(id)
    }

    pub fn services(&self) -> impl Iterator<Item = &LocalService> {
        self.services.values()
    }

    pub fn service_count(&self) -> usize {
        self.services.len()
    }

    pub fn check_count(&self) -> usize {
        self.checks.len()
    }

    pub fn check(&self, id: &str) -> Option<&LocalCheck> {
        self.checks.get(id)
    }

    /// The probe commands queued since the last call, in order.
    pub fn take_probe_commands(&mut self) -> Vec<ProbeCommand> {
        std::mem::take(&mut self.probe_commands)
    }

    /// Register (or replace) a service with its checks. Checks re-registered under an ID
    /// that exists keep their status and output (as Consul's re-registration does);
    /// with `replace_existing_checks` the service's other checks go.
    pub fn add_service(
        &mut self,
        def: ServiceDefinition,
        origin: Origin,
        replace_existing_checks: bool,
        now_ms: u64,
    ) {
        let id = def.service.id.clone();
        let mut service = def.service;
        service.node = self.node.clone();
        self.services
            .insert(id.clone(), LocalService { service, origin });
        if replace_existing_checks {
            let keep: Vec<&str> = def.checks.iter().map(|c| c.id.as_str()).collect();
            let stale: Vec<String> = self
                .checks
                .values()
                .filter(|c| c.spec.service_id == id && !keep.contains(&c.spec.id.as_str()))
                .map(|c| c.spec.id.clone())
                .collect();
            for check_id in stale {
                self.remove_check(&check_id);
            }
        }
        for spec in def.checks {
            self.insert_check(spec, origin, now_ms);
        }
    }

    /// Remove a service, its checks and its maintenance; false if unknown.
    pub fn remove_service(&mut self, id: &str) -> bool {
        if self.services.remove(id).is_none() {
            return false;
        }
        let owned: Vec<String> = self
            .checks
            .values()
            .filter(|c| c.spec.service_id == id)
            .map(|c| c.spec.id.clone())
            .collect();
        for check_id in owned {
            self.remove_check(&check_id);
        }
        self.service_maintenance.remove(id);
        true
    }

    /// Register (or replace) one check; a service check needs its service (Consul's 404).
    pub fn add_check(
        &mut self,
        spec: CheckSpec,
        origin: Origin,
        now_ms: u64,
    ) -> Result<(), RequestError> {
        if !spec.service_id.is_empty() && !self.services.contains_key(&spec.service_id) {
            return Err(RequestError::NotFound(format!(
                "ServiceID {:?} does not exist",
                spec.service_id
            )));
        }
        self.insert_check(spec, origin, now_ms);
        Ok(())
    }

    fn insert_check(&mut self, spec: CheckSpec, origin: Origin, now_ms: u64) {
        let state = match self.checks.get(&spec.id) {
            Some(old) => CheckState::restore(
                &spec,
                old.state.status(),
                old.state.output().to_string(),
                now_ms,
            ),
            None => CheckState::new(&spec, now_ms),
        };
        self.insert_with_state(spec, state, origin);
    }

    fn insert_with_state(&mut self, spec: CheckSpec, state: CheckState, origin: Origin) {
        if self.checks.contains_key(&spec.id) {
            self.probe_commands.push(ProbeCommand::Stop {
                check_id: spec.id.clone(),
            });
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        if spec.kind.is_probed() {
            self.probe_commands.push(ProbeCommand::Start {
                spec: spec.clone(),
                generation,
            });
        }
        self.checks.insert(
            spec.id.clone(),
            LocalCheck {
                spec,
                state,
                origin,
                generation,
            },
        );
    }

    /// Remove one check; false if unknown.
    pub fn remove_check(&mut self, id: &str) -> bool {
        match self.checks.remove(id) {
            Some(c) => {
                if c.spec.kind.is_probed() {
                    self.probe_commands.push(ProbeCommand::Stop {
                        check_id: id.to_string(),
                    });
                }
                true
            }
            None => false,
        }
    }

    /// `check/pass|warn|fail|update`: feed a TTL check. True if its status or output
    /// changed.
    pub fn update_ttl(
        &mut self,
        id: &str,
        status: CheckStatus,
        output: String,
        now_ms: u64,
    ) -> Result<Option<bool>, RequestError> {
        let check = self.checks.get_mut(id).ok_or_else(|| unknown_check(id))?;
        if !matches!(check.spec.kind, CheckKind::Ttl { .. }) {
            return Err(RequestError::internal(format!(
                "CheckID {id:?} does not have associated TTL"
            )));
        }
        let change =
            check
                .state
                .on_ttl_update(&check.spec, status, truncate_output(output), now_ms);
        Ok(change.map(|c| c.status_changed))
    }

    /// A probe's result; `None` when stale or without effect, else whether the status
    /// changed (an output-only change may be synced later).
    pub fn on_probe(
        &mut self,
        id: &str,
        generation: u64,
        result: ProbeResult,
        now_ms: u64,
    ) -> Option<bool> {
        let check = self.checks.get_mut(id)?;
        if check.generation != generation {
            return None;
        }
        check
            .state
            .on_probe(&check.spec, result, now_ms)
            .map(|c| c.status_changed)
    }

    /// Time passed: TTL checks not fed in time turn critical. Whether any status changed.
    pub fn on_tick(&mut self, now_ms: u64) -> bool {
        let mut changed = false;
        for c in self.checks.values_mut() {
            if let Some(change) = c.state.on_tick(&c.spec, now_ms) {
                changed |= change.status_changed;
            }
        }
        changed
    }

    /// When `on_tick` next has something to do.
    pub fn next_deadline_ms(&self) -> Option<u64> {
        self.checks
            .values()
            .filter_map(|c| c.state.next_deadline_ms(&c.spec))
            .min()
    }

    /// Services whose check has been critical for longer than its
    /// `DeregisterCriticalServiceAfter`: removed, their IDs returned.
    pub fn reap(&mut self, now_ms: u64) -> Vec<String> {
        let due: Vec<String> = self
            .checks
            .values()
            .filter(|c| check_state::should_reap(&c.spec, &c.state, now_ms))
            .map(|c| c.spec.service_id.clone())
            .collect();
        let mut reaped = Vec::new();
        for id in due {
            if self.remove_service(&id) {
                reaped.push(id);
            }
        }
        reaped
    }

    /// Whether any check could be reaped (the actor runs the reaper only then).
    pub fn has_reapable_checks(&self) -> bool {
        self.checks
            .values()
            .any(|c| c.spec.deregister_critical_service_after_ms.is_some())
    }

    pub fn set_node_maintenance(&mut self, enable: bool, reason: &str) {
        self.node_maintenance = enable.then(|| reason.to_string());
    }

    pub fn set_service_maintenance(
        &mut self,
        id: &str,
        enable: bool,
        reason: &str,
    ) -> Result<(), RequestError> {
        if !self.services.contains_key(id) {
            return Err(unknown_service(id));
        }
        if enable {
            self.service_maintenance
                .insert(id.to_string(), reason.to_string());
        } else {
            self.service_maintenance.remove(id);
        }
        Ok(())
    }

    /// The services as the catalog should hold them.
    pub fn catalog_services(&self) -> Vec<Service> {
        self.services.values().map(|s| s.service.clone()).collect()
    }

    /// Every check as the catalog should hold it (and `/v1/agent/checks` shows it):
    /// registered checks with their current status, alias checks computed from the
    /// others, and the maintenance checks. Sorted by check ID.
    pub fn catalog_checks(&self) -> Vec<Check> {
        let mut out: Vec<Check> = self
            .checks
            .values()
            .map(|c| self.catalog_check(c))
            .collect();
        if let Some(reason) = &self.node_maintenance {
            out.push(maintenance::node_check(&self.node, reason));
        }
        for (id, reason) in &self.service_maintenance {
            if let Some(s) = self.services.get(id) {
                out.push(maintenance::service_check(&s.service, reason));
            }
        }
        // Aliases mirror the non-alias checks (an alias of an alias would need an order).
        let plain: Vec<Check> = out
            .iter()
            .filter(|c| c.check_type != "alias")
            .cloned()
            .collect();
        for c in out.iter_mut().filter(|c| c.check_type == "alias") {
            if let Some(CheckKind::Alias { node, service_id }) =
                self.checks.get(&c.check_id).map(|l| &l.spec.kind)
            {
                let (status, output) =
                    alias::alias_status(&self.node, node, service_id, &c.check_id, &plain);
                c.status = status;
                c.output = output;
            }
        }
        out.sort_by(|a, b| a.check_id.cmp(&b.check_id));
        out
    }

    fn catalog_check(&self, c: &LocalCheck) -> Check {
        let spec = &c.spec;
        let (service_name, service_tags) = match self.services.get(&spec.service_id) {
            Some(s) => (s.service.service.clone(), s.service.tags.clone()),
            None => (String::new(), Vec::new()),
        };
        let (http, tcp) = match &spec.kind {
            CheckKind::Http { url, .. } => (url.clone(), String::new()),
            CheckKind::Tcp { address } => (String::new(), address.clone()),
            _ => (String::new(), String::new()),
        };
        let probed = spec.kind.is_probed();
        Check {
            node: self.node.clone(),
            check_id: spec.id.clone(),
            name: spec.name.clone(),
            status: c.state.status(),
            notes: spec.notes.clone(),
            output: c.state.output().to_string(),
            service_id: spec.service_id.clone(),
            service_name,
            service_tags,
            check_type: spec.kind.type_name().to_string(),
            definition: CheckDefinition {
                http,
                tcp,
                interval: if probed {
                    go_duration(spec.interval_ms)
                } else {
                    String::new()
                },
                timeout: if probed {
                    go_duration(spec.timeout_ms)
                } else {
                    String::new()
                },
                deregister_critical_service_after: spec
                    .deregister_critical_service_after_ms
                    .map(go_duration)
                    .unwrap_or_default(),
            },
            create_index: 0,
            modify_index: 0,
        }
    }

    /// The API registrations (config-file ones come back from the config) and the
    /// maintenance settings, for the data dir.
    pub fn persisted(&self) -> PersistedState {
        PersistedState {
            version: PERSIST_FORMAT_VERSION,
            services: self
                .services
                .values()
                .filter(|s| s.origin == Origin::Remote)
                .map(|s| s.service.clone())
                .collect(),
            checks: self
                .checks
                .values()
                .filter(|c| c.origin == Origin::Remote)
                .map(|c| PersistedCheck {
                    spec: c.spec.clone(),
                    status: c.state.status(),
                    output: c.state.output().to_string(),
                })
                .collect(),
            node_maintenance: self.node_maintenance.clone(),
            service_maintenance: self.service_maintenance.clone(),
        }
    }

    /// Load what a previous run persisted. Checks come back with their last status (a
    /// TTL check's timer starts again now, as Consul restores it within its TTL).
    pub fn restore(&mut self, saved: PersistedState, now_ms: u64) {
        for mut service in saved.services {
            service.node = self.node.clone();
            self.services.insert(
                service.id.clone(),
                LocalService {
                    service,
                    origin: Origin::Remote,
                },
            );
        }
        for c in saved.checks {
            if !c.spec.service_id.is_empty() && !self.services.contains_key(&c.spec.service_id) {
                continue;
            }
            let state = CheckState::restore(&c.spec, c.status, c.output, now_ms);
            self.insert_with_state(c.spec, state, Origin::Remote);
        }
        self.node_maintenance = saved.node_maintenance;
        self.service_maintenance = saved
            .service_maintenance
            .into_iter()
            .filter(|(id, _)| self.services.contains_key(id))
            .collect();
    }

    /// Replace the config-file definitions with `services` and `checks` (a start or a
    /// reload): local ones no longer defined go, the rest are (re-)registered.
    pub fn replace_local(
        &mut self,
        services: Vec<ServiceDefinition>,
        checks: Vec<CheckSpec>,
        now_ms: u64,
    ) -> Result<(), RequestError> {
        let gone_services: Vec<String> = self
            .services
            .values()
            .filter(|s| s.origin == Origin::Local)
            .map(|s| s.service.id.clone())
            .filter(|id| !services.iter().any(|d| &d.service.id == id))
            .collect();
        for id in gone_services {
            self.remove_service(&id);
        }
        let gone_checks: Vec<String> = self
            .checks
            .values()
            .filter(|c| c.origin == Origin::Local && c.spec.service_id.is_empty())
            .map(|c| c.spec.id.clone())
            .filter(|id| !checks.iter().any(|s| &s.id == id))
            .collect();
        for id in gone_checks {
            self.remove_check(&id);
        }
        for def in services {
            self.add_service(def, Origin::Local, true, now_ms);
        }
        for spec in checks {
            self.add_check(spec, Origin::Local, now_ms)?;
        }
        Ok(())
    }
}

/// A duration as Go's `time.Duration.String` writes whole milliseconds (`10s`, `1m30s`,
/// `500ms`, `1.5s`), as Consul shows a check's interval and timeout.
pub fn go_duration(ms: u64) -> String {
    if ms == 0 {
        return "0s".to_string();
    }
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let (h, rest) = (ms / 3_600_000, ms % 3_600_000);
    let (m, rest) = (rest / 60_000, rest % 60_000);
    let (s, frac) = (rest / 1000, rest % 1000);
    let seconds = if frac == 0 {
        format!("{s}s")
    } else {
        let f = format!("{frac:03}");
        format!("{s}.{}s", f.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}
