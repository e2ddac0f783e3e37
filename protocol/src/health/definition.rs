//! Consul's agent check and service definitions (`/v1/agent/check/register`,
//! `/v1/agent/service/register` with its embedded `Check`/`Checks`, and the `check`/
//! `service` blocks of config files), validated and defaulted into [`CheckSpec`]s and a
//! catalog [`Service`]. Decoding (JSON, Go durations) is the edge's; the rules, their
//! order and their texts are here, once, next to the catalog's registration rules they
//! reuse (`store::registration`).

use super::spec::{CheckKind, CheckSpec, MIN_INTERVAL_MS};
use crate::api::RequestError;
use crate::store::registration::{self, ServiceDraft};
use crate::store::{CheckStatus, Service};
use std::collections::BTreeMap;

/// A duration field as the edge decoded it: `Ok(None)` absent, `Ok(Some(ms))`, or the
/// 400 text of a value that does not parse.
pub type DurationMs = Result<Option<u64>, String>;

/// Probe timeout when none is given (Consul's 10 s for HTTP, TCP and UDP).
pub const DEFAULT_TIMEOUT_MS: u64 = 10_000;
/// Script checks get longer (Consul's 30 s).
pub const DEFAULT_SCRIPT_TIMEOUT_MS: u64 = 30_000;
/// Consul's floor on `DeregisterCriticalServiceAfter` (`check_deregister_interval_min`).
pub const DEFAULT_DEREGISTER_MIN_MS: u64 = 60_000;

/// Consul's text for a status the service endpoint refuses.
pub const SERVICE_CHECK_STATUS_TEXT: &str =
    "Status for checks must 'passing', 'warning', 'critical'";
/// Consul's text for a status the check endpoint refuses.
pub const CHECK_STATUS_TEXT: &str = "Bad check status";
const SCRIPTS_DISABLED_LOCAL: &str = "Scripts are disabled on this agent; to enable, configure \
     'enable_script_checks' or 'enable_local_script_checks' to true";
const SCRIPTS_DISABLED_REMOTE: &str = "Scripts are disabled on this agent from remote calls; \
     to enable, configure 'enable_script_checks' to true";

/// Where a definition came from: Consul lets config files run scripts under
/// `enable_local_script_checks`, API calls only under `enable_script_checks`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Origin {
    /// The HTTP API (persisted in the data dir).
    Remote,
    /// A config file (re-read at start and reload, never persisted).
    Local,
}

/// The agent settings the rules depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckRules {
    pub enable_script_checks: bool,
    pub enable_local_script_checks: bool,
    /// `DeregisterCriticalServiceAfter` below this is raised to it.
    pub deregister_min_ms: u64,
}

impl Default for CheckRules {
    fn default() -> Self {
        CheckRules {
            enable_script_checks: false,
            enable_local_script_checks: false,
            deregister_min_ms: DEFAULT_DEREGISTER_MIN_MS,
        }
    }
}

/// One check definition as sent (Consul's `CheckDefinition`/`CheckType` fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCheckDraft {
    /// `CheckID` or `ID`.
    pub id: String,
    pub name: String,
    pub notes: String,
    /// As sent; empty: critical.
    pub status: String,
    pub service_id: String,
    pub http: String,
    pub method: String,
    pub header: BTreeMap<String, Vec<String>>,
    pub body: String,
    pub tls_skip_verify: bool,
    pub tls_server_name: String,
    pub tcp: String,
    pub udp: String,
    pub ttl: DurationMs,
    /// `Args` or `ScriptArgs`.
    pub args: Vec<String>,
    pub alias_node: String,
    pub alias_service: String,
    pub interval: DurationMs,
    pub timeout: DurationMs,
    pub deregister_critical_service_after: DurationMs,
    pub success_before_passing: u32,
    pub failures_before_warning: u32,
    pub failures_before_critical: u32,
}

impl Default for AgentCheckDraft {
    fn default() -> Self {
        AgentCheckDraft {
            id: String::new(),
            name: String::new(),
            notes: String::new(),
            status: String::new(),
            service_id: String::new(),
            http: String::new(),
            method: String::new(),
            header: BTreeMap::new(),
            body: String::new(),
            tls_skip_verify: false,
            tls_server_name: String::new(),
            tcp: String::new(),
            udp: String::new(),
            ttl: Ok(None),
            args: Vec::new(),
            alias_node: String::new(),
            alias_service: String::new(),
            interval: Ok(None),
            timeout: Ok(None),
            deregister_critical_service_after: Ok(None),
            success_before_passing: 0,
            failures_before_warning: 0,
            failures_before_critical: 0,
        }
    }
}

/// `/v1/agent/service/register` (or a config file's `service`) as sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AgentServiceDraft {
    pub service: ServiceDraft,
    pub check: Option<AgentCheckDraft>,
    pub checks: Vec<AgentCheckDraft>,
}

/// A validated service with its checks (IDs assigned, `service_id` set on each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceDefinition {
    pub service: Service,
    pub checks: Vec<CheckSpec>,
}

/// A validated definition and the warnings Consul logs for it (raised intervals ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parsed<T> {
    pub value: T,
    pub warnings: Vec<String>,
}

/// `/v1/agent/check/register`: a named check, node-level or on a service (whose
/// existence the caller checks: that needs the local state).
pub fn parse_check(
    draft: AgentCheckDraft,
    origin: Origin,
    rules: &CheckRules,
) -> Result<Parsed<CheckSpec>, RequestError> {
    if draft.name.is_empty() {
        return Err(RequestError::bad_request("Missing check name"));
    }
    let status = parse_status(&draft.status, CHECK_STATUS_TEXT)?;
    let mut warnings = Vec::new();
    let spec = check_spec(draft, status, origin, rules, &mut warnings)?;
    Ok(Parsed {
        value: spec,
        warnings,
    })
}

/// `/v1/agent/service/register`: the service (Consul's defaults via the catalog rules)
/// and its embedded checks with Consul's automatic IDs and names.
pub fn parse_service(
    draft: AgentServiceDraft,
    node: &str,
    origin: Origin,
    rules: &CheckRules,
) -> Result<Parsed<ServiceDefinition>, RequestError> {
    if draft.service.service.is_empty() {
        return Err(RequestError::bad_request("Missing service name"));
    }
    if matches!(draft.service.address.as_str(), "0.0.0.0" | "::" | "[::]") {
        return Err(RequestError::bad_request(format!(
            "Invalid Service Address: {:?}",
            draft.service.address
        )));
    }
    let service = registration::service_from_draft(draft.service, node)?;
    let drafts: Vec<AgentCheckDraft> = draft.check.into_iter().chain(draft.checks).collect();
    // Consul checks every status before any check is validated.
    let mut statuses = Vec::with_capacity(drafts.len());
    for c in &drafts {
        statuses.push(parse_status(&c.status, SERVICE_CHECK_STATUS_TEXT)?);
    }
    let numbered = drafts.len() > 1;
    let mut warnings = Vec::new();
    let mut checks = Vec::with_capacity(drafts.len());
    for (i, (mut c, status)) in drafts.into_iter().zip(statuses).enumerate() {
        if c.id.is_empty() {
            c.id = if numbered {
                format!("service:{}:{}", service.id, i + 1)
            } else {
                format!("service:{}", service.id)
            };
        }
        if c.name.is_empty() {
            c.name = format!("Service '{}' check", service.service);
        }
        c.service_id = service.id.clone();
        checks.push(check_spec(c, status, origin, rules, &mut warnings)?);
    }
    Ok(Parsed {
        value: ServiceDefinition { service, checks },
        warnings,
    })
}

/// A status as sent; empty means critical, anything else not a status is `text` (400).
pub fn parse_status(status: &str, text: &str) -> Result<CheckStatus, RequestError> {
    if status.is_empty() {
        return Ok(CheckStatus::Critical);
    }
    CheckStatus::parse(status).ok_or_else(|| RequestError::bad_request(text))
}

fn invalid(text: &str) -> RequestError {
    RequestError::bad_request(format!("Invalid check: {text}"))
}

/// Consul's `CheckType.Validate` (in its order and texts), then the kind, defaults and
/// floors.
fn check_spec(
    c: AgentCheckDraft,
    initial_status: CheckStatus,
    origin: Origin,
    rules: &CheckRules,
    warnings: &mut Vec<String>,
) -> Result<CheckSpec, RequestError> {
    let interval = c.interval.map_err(RequestError::BadRequest)?.unwrap_or(0);
    let timeout = c.timeout.map_err(RequestError::BadRequest)?.unwrap_or(0);
    let ttl = c.ttl.map_err(RequestError::BadRequest)?.unwrap_or(0);
    let deregister = c
        .deregister_critical_service_after
        .map_err(RequestError::BadRequest)?
        .unwrap_or(0);
    let script = !c.args.is_empty();
    let alias = !c.alias_node.is_empty() || !c.alias_service.is_empty();
    let interval_kind = script || !c.http.is_empty() || !c.tcp.is_empty() || !c.udp.is_empty();
    if interval > 0 && ttl > 0 {
        return Err(invalid("Interval and TTL cannot both be specified"));
    }
    if interval_kind && interval == 0 {
        return Err(invalid(
            "Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks",
        ));
    }
    if interval_kind && alias {
        return Err(invalid("Interval cannot be set for Alias checks"));
    }
    if alias && ttl > 0 {
        return Err(invalid("TTL must be not be set for Alias checks"));
    }
    if !interval_kind && !alias && ttl == 0 {
        return Err(invalid("TTL must be > 0 for TTL checks"));
    }
    // Consul silently picks one kind when several are given; refusing is kinder.
    let kinds = [
        !c.http.is_empty(),
        !c.tcp.is_empty(),
        !c.udp.is_empty(),
        script,
        ttl > 0,
        alias,
    ];
    if kinds.iter().filter(|k| **k).count() > 1 {
        return Err(invalid(
            "only one of HTTP, TCP, UDP, Args, TTL or AliasNode/AliasService may be given",
        ));
    }
    if script {
        let allowed = match origin {
            Origin::Remote => rules.enable_script_checks,
            Origin::Local => rules.enable_script_checks || rules.enable_local_script_checks,
        };
        if !allowed {
            return Err(RequestError::internal(match origin {
                Origin::Remote => SCRIPTS_DISABLED_REMOTE,
                Origin::Local => SCRIPTS_DISABLED_LOCAL,
            }));
        }
    }
    let kind = if !c.http.is_empty() {
        CheckKind::Http {
            url: c.http,
            method: if c.method.is_empty() {
                "GET".to_string()
            } else {
                c.method
            },
            headers: c.header,
            body: c.body,
            tls_skip_verify: c.tls_skip_verify,
            tls_server_name: c.tls_server_name,
        }
    } else if !c.tcp.is_empty() {
        CheckKind::Tcp { address: c.tcp }
    } else if !c.udp.is_empty() {
        CheckKind::Udp { address: c.udp }
    } else if script {
        CheckKind::Script { args: c.args }
    } else if alias {
        CheckKind::Alias {
            node: c.alias_node,
            service_id: c.alias_service,
        }
    } else {
        CheckKind::Ttl { ttl_ms: ttl }
    };
    let id = registration::check_id_or_name(&c.id, &c.name).to_string();
    let probed = kind.is_probed();
    let interval_ms = if !probed {
        0
    } else if interval < MIN_INTERVAL_MS {
        warnings.push(format!(
            "check {id:?} has interval below minimum of {MIN_INTERVAL_MS}ms; raised to it"
        ));
        MIN_INTERVAL_MS
    } else {
        interval
    };
    let timeout_ms = match (timeout, &kind) {
        (0, CheckKind::Script { .. }) => DEFAULT_SCRIPT_TIMEOUT_MS,
        (0, _) => DEFAULT_TIMEOUT_MS,
        (t, _) => t,
    };
    let deregister_critical_service_after_ms = match deregister {
        0 => None,
        d if d < rules.deregister_min_ms => {
            warnings.push(format!(
                "check {id:?} has deregister interval below minimum of {}ms; raised to it",
                rules.deregister_min_ms
            ));
            Some(rules.deregister_min_ms)
        }
        d => Some(d),
    };
    Ok(CheckSpec {
        id,
        name: c.name,
        notes: c.notes,
        service_id: c.service_id,
        kind,
        interval_ms,
        timeout_ms,
        success_before_passing: c.success_before_passing,
        failures_before_warning: c.failures_before_warning,
        failures_before_critical: c.failures_before_critical,
        deregister_critical_service_after_ms,
        initial_status,
        initial_output: String::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ttl(id: &str, ms: u64) -> AgentCheckDraft {
        AgentCheckDraft {
            id: id.into(),
            name: id.into(),
            ttl: Ok(Some(ms)),
            ..AgentCheckDraft::default()
        }
    }

    fn service(checks: Vec<AgentCheckDraft>) -> AgentServiceDraft {
        AgentServiceDraft {
            service: ServiceDraft {
                id: "web-1".into(),
                service: "web".into(),
                port: 80,
                ..ServiceDraft::default()
            },
            check: None,
            checks,
        }
    }

    #[test]
    fn embedded_checks_get_consuls_automatic_ids_and_names() {
        let one = AgentServiceDraft {
            check: Some(AgentCheckDraft {
                ttl: Ok(Some(10_000)),
                ..AgentCheckDraft::default()
            }),
            ..service(vec![])
        };
        let p = parse_service(one, "n1", Origin::Remote, &CheckRules::default()).unwrap();
        let c = &p.value.checks[0];
        assert_eq!(c.id, "service:web-1");
        assert_eq!(c.name, "Service 'web' check");
        assert_eq!(c.service_id, "web-1");
        assert_eq!(c.initial_status, CheckStatus::Critical);
        assert_eq!(p.value.service.node, "n1");

        let two = AgentServiceDraft {
            check: Some(ttl("", 1000)),
            ..service(vec![ttl("", 1000), ttl("own", 1000)])
        };
        let p = parse_service(two, "n1", Origin::Remote, &CheckRules::default()).unwrap();
        let ids: Vec<&str> = p.value.checks.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(ids, ["service:web-1:1", "service:web-1:2", "own"]);
    }

    #[test]
    fn validation_follows_consuls_order_and_texts() {
        let rules = CheckRules::default();
        let err = |c: AgentCheckDraft| parse_check(c, Origin::Remote, &rules).unwrap_err();
        assert_eq!(
            err(AgentCheckDraft::default()),
            RequestError::bad_request("Missing check name")
        );
        let named = |c: AgentCheckDraft| AgentCheckDraft {
            name: "c".into(),
            ..c
        };
        assert_eq!(
            err(named(AgentCheckDraft {
                status: "up".into(),
                ..AgentCheckDraft::default()
            })),
            RequestError::bad_request("Bad check status")
        );
        assert_eq!(
            err(named(AgentCheckDraft::default())),
            RequestError::bad_request("Invalid check: TTL must be > 0 for TTL checks")
        );
        assert_eq!(
            err(named(AgentCheckDraft {
                http: "http://x".into(),
                ..AgentCheckDraft::default()
            })),
            RequestError::bad_request(
                "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or GRPC checks"
            )
        );
        assert_eq!(
            err(named(AgentCheckDraft {
                interval: Ok(Some(1000)),
                ttl: Ok(Some(1000)),
                ..AgentCheckDraft::default()
            })),
            RequestError::bad_request("Invalid check: Interval and TTL cannot both be specified")
        );
        assert!(matches!(
            err(named(AgentCheckDraft {
                http: "http://x".into(),
                tcp: "x:1".into(),
                interval: Ok(Some(1000)),
                ..AgentCheckDraft::default()
            })),
            RequestError::BadRequest(t) if t.starts_with("Invalid check: only one of")
        ));
        assert_eq!(
            err(named(AgentCheckDraft {
                interval: Err("Request decode failed: time: invalid duration \"x\"".into()),
                ..AgentCheckDraft::default()
            })),
            RequestError::bad_request("Request decode failed: time: invalid duration \"x\"")
        );
        let bad_status = AgentServiceDraft {
            check: Some(AgentCheckDraft {
                status: "ok".into(),
                ..ttl("", 1)
            }),
            ..service(vec![])
        };
        assert_eq!(
            parse_service(bad_status, "n", Origin::Remote, &rules).unwrap_err(),
            RequestError::bad_request(SERVICE_CHECK_STATUS_TEXT)
        );
        let mut nameless = service(vec![]);
        nameless.service.service.clear();
        assert_eq!(
            parse_service(nameless, "n", Origin::Remote, &rules).unwrap_err(),
            RequestError::bad_request("Missing service name")
        );
    }

    #[test]
    fn script_checks_need_their_setting() {
        let script = AgentCheckDraft {
            name: "s".into(),
            args: vec!["true".into()],
            interval: Ok(Some(5_000)),
            ..AgentCheckDraft::default()
        };
        let off = CheckRules::default();
        assert_eq!(
            parse_check(script.clone(), Origin::Remote, &off).unwrap_err(),
            RequestError::internal(SCRIPTS_DISABLED_REMOTE)
        );
        assert_eq!(
            parse_check(script.clone(), Origin::Local, &off).unwrap_err(),
            RequestError::internal(SCRIPTS_DISABLED_LOCAL)
        );
        let local_only = CheckRules {
            enable_local_script_checks: true,
            ..off
        };
        assert!(parse_check(script.clone(), Origin::Remote, &local_only).is_err());
        let spec = parse_check(script, Origin::Local, &local_only)
            .unwrap()
            .value;
        assert_eq!(spec.timeout_ms, DEFAULT_SCRIPT_TIMEOUT_MS);
    }

    #[test]
    fn floors_and_defaults() {
        let c = AgentCheckDraft {
            name: "h".into(),
            status: "passing".into(),
            http: "http://x/".into(),
            interval: Ok(Some(200)),
            deregister_critical_service_after: Ok(Some(5_000)),
            ..AgentCheckDraft::default()
        };
        let p = parse_check(c, Origin::Remote, &CheckRules::default()).unwrap();
        let s = p.value;
        assert_eq!(s.id, "h");
        assert_eq!(s.interval_ms, MIN_INTERVAL_MS);
        assert_eq!(s.timeout_ms, DEFAULT_TIMEOUT_MS);
        assert_eq!(s.deregister_critical_service_after_ms, Some(60_000));
        assert_eq!(s.initial_status, CheckStatus::Passing);
        assert_eq!(p.warnings.len(), 2);
        assert!(matches!(s.kind, CheckKind::Http { ref method, .. } if method == "GET"));
        let t = parse_check(ttl("t", 30_000), Origin::Remote, &CheckRules::default())
            .unwrap()
            .value;
        assert_eq!(
            (t.kind, t.interval_ms),
            (CheckKind::Ttl { ttl_ms: 30_000 }, 0)
        );
    }
}
