//! Catalog registration rules, in one home: Consul's defaults, its validation and the
//! exact error texts, the copy limit, automatic IDs and check status parsing.
//!
//! [`register`] turns a plain draft (what a client sent, already decoded by an edge) into
//! the replicated [`RegisterRequest`], or a typed error. The HTTP edge uses it today;
//! anti-entropy and config-file services will use it later. The store re-checks what
//! protects replicas from bad log entries (`plan_register`), with the helpers below so a
//! rule is written once.

use super::{
    Check, CheckDefinition, CheckStatus, DeregisterRequest, Node, RegisterRequest, Service,
    ServiceAddress, Weights,
};
use crate::api::RequestError;
use std::collections::BTreeMap;

/// The most node and service data one registration may copy into checks. Every check
/// carries its node's name and its service's name and tags, so a request with many checks
/// and a long node name or many tags multiplies into a far larger state (a 4 MiB body
/// could ask for hundreds of gigabytes on every replica, and again on every log replay).
pub const MAX_REGISTRATION_COPY_BYTES: usize = 16 * 1024 * 1024;

/// Bytes one check holds for its node and service (tags counted with their headers).
pub fn carried_bytes(node_name: &str, service_name: &str, tags: &[String]) -> usize {
    let tags_bytes = tags.iter().fold(0usize, |sum, t| {
        sum.saturating_add(t.len())
            .saturating_add(std::mem::size_of::<String>())
    });
    node_name
        .len()
        .saturating_add(service_name.len())
        .saturating_add(tags_bytes)
}

/// The text of a registration over [`MAX_REGISTRATION_COPY_BYTES`]. `checks` is the
/// number of checks when the request alone explains the size (the edge's count); the
/// store, which also counts rows already there, gives none.
pub fn too_large_text(checks: Option<usize>, copied: usize) -> String {
    match checks {
        Some(n) => format!(
            "Registration too large: {n} checks would carry {copied} bytes of node \
             and service data (limit {MAX_REGISTRATION_COPY_BYTES} bytes)"
        ),
        None => format!(
            "Registration too large: its checks would carry over {copied} bytes of node and \
             service data (limit {MAX_REGISTRATION_COPY_BYTES} bytes)"
        ),
    }
}

/// A service instance's ID defaults to its name.
pub fn service_id_or_name<'a>(id: &'a str, name: &'a str) -> &'a str {
    if id.is_empty() {
        name
    } else {
        id
    }
}

/// A check's ID defaults to its name.
pub fn check_id_or_name<'a>(id: &'a str, name: &'a str) -> &'a str {
    if id.is_empty() {
        name
    } else {
        id
    }
}

/// A field the edge had to parse (a node UUID, a Go duration): the normalised text, or
/// the error text to answer (400) if the rules reach that field.
pub type Parsed = Result<String, String>;

/// `PUT /v1/catalog/register` as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationDraft {
    /// The node UUID; an `Err` carries the parse error text (answered as `Bad node ID`).
    pub id: Parsed,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    pub tagged_addresses: BTreeMap<String, String>,
    pub node_meta: BTreeMap<String, String>,
    pub service: Option<ServiceDraft>,
    pub check: Option<CheckDraft>,
    pub checks: Vec<CheckDraft>,
    pub skip_node_update: bool,
}

impl Default for RegistrationDraft {
    fn default() -> Self {
        RegistrationDraft {
            id: Ok(String::new()),
            node: String::new(),
            address: String::new(),
            datacenter: String::new(),
            tagged_addresses: BTreeMap::new(),
            node_meta: BTreeMap::new(),
            service: None,
            check: None,
            checks: Vec::new(),
            skip_node_update: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceDraft {
    pub id: String,
    pub service: String,
    pub kind: String,
    pub tags: Vec<String>,
    pub address: String,
    pub tagged_addresses: BTreeMap<String, ServiceAddress>,
    pub meta: BTreeMap<String, String>,
    pub port: u16,
    /// `None`: Consul's default weights (1/1).
    pub weights: Option<Weights>,
    pub enable_tag_override: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckDraft {
    pub node: String,
    pub check_id: String,
    pub name: String,
    /// As sent; empty means critical.
    pub status: String,
    pub notes: String,
    pub output: String,
    pub service_id: String,
    pub http: String,
    pub tcp: String,
    pub interval: Parsed,
    pub timeout: Parsed,
    pub deregister_critical_service_after: Parsed,
}

impl Default for CheckDraft {
    fn default() -> Self {
        CheckDraft {
            node: String::new(),
            check_id: String::new(),
            name: String::new(),
            status: String::new(),
            notes: String::new(),
            output: String::new(),
            service_id: String::new(),
            http: String::new(),
            tcp: String::new(),
            interval: Ok(String::new()),
            timeout: Ok(String::new()),
            deregister_critical_service_after: Ok(String::new()),
        }
    }
}

/// `PUT /v1/catalog/deregister` as sent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeregistrationDraft {
    pub node: String,
    pub datacenter: String,
    pub service_id: String,
    pub check_id: String,
}

fn check_datacenter(dc: &str, ours: &str) -> Result<(), RequestError> {
    if !dc.is_empty() && dc != ours {
        return Err(RequestError::internal("No path to datacenter"));
    }
    Ok(())
}

/// Parse one of Consul's stored check statuses; empty means critical.
pub fn parse_check_status(status: &str) -> Result<CheckStatus, RequestError> {
    if status.is_empty() {
        return Ok(CheckStatus::Critical);
    }
    CheckStatus::parse(status)
        .ok_or_else(|| RequestError::bad_request(format!("Invalid check status: {status:?}")))
}

/// Validate a registration and fill Consul's defaults, in Consul's order of checks.
pub fn register(draft: RegistrationDraft, our_dc: &str) -> Result<RegisterRequest, RequestError> {
    check_datacenter(&draft.datacenter, our_dc)?;
    if draft.node.is_empty() {
        return Err(RequestError::internal("Must provide node"));
    }
    if draft.address.is_empty() && !draft.skip_node_update {
        return Err(RequestError::internal(
            "Must provide address if SkipNodeUpdate is not set",
        ));
    }
    let id = draft
        .id
        .map_err(|e| RequestError::internal(format!("Bad node ID: {e}")))?;
    let node = Node {
        id,
        node: draft.node.clone(),
        address: draft.address,
        datacenter: our_dc.to_string(),
        tagged_addresses: draft.tagged_addresses,
        meta: draft.node_meta,
        create_index: 0,
        modify_index: 0,
    };
    let service = draft
        .service
        .map(|s| service_from_draft(s, &draft.node))
        .transpose()?;
    // Each check carries the node's name and (at most) the service's name and tags: refuse
    // before copying when that multiplies past the store's limit (413).
    let check_count = draft
        .checks
        .len()
        .saturating_add(usize::from(draft.check.is_some()));
    let per_check = match &service {
        Some(s) => carried_bytes(&draft.node, &s.service, &s.tags),
        None => carried_bytes(&draft.node, "", &[]),
    };
    let copied = check_count.saturating_mul(per_check);
    if copied > MAX_REGISTRATION_COPY_BYTES {
        return Err(RequestError::TooLarge(too_large_text(
            Some(check_count),
            copied,
        )));
    }
    let mut checks = Vec::with_capacity(check_count);
    for c in draft.check.into_iter().chain(draft.checks) {
        checks.push(check_from_draft(c, &draft.node, service.as_ref())?);
    }
    Ok(RegisterRequest {
        node,
        skip_node_update: draft.skip_node_update,
        service,
        checks,
    })
}

/// A service draft with Consul's defaults (ID from the name, weights 1/1) on `node`.
pub fn service_from_draft(s: ServiceDraft, node: &str) -> Result<Service, RequestError> {
    if s.service.is_empty() {
        return Err(RequestError::internal("Must provide service name with ID"));
    }
    Ok(Service {
        node: node.to_string(),
        id: service_id_or_name(&s.id, &s.service).to_string(),
        service: s.service,
        kind: s.kind,
        tags: s.tags,
        address: s.address,
        tagged_addresses: s.tagged_addresses,
        meta: s.meta,
        port: s.port,
        weights: s.weights.unwrap_or_default(),
        enable_tag_override: s.enable_tag_override,
        create_index: 0,
        modify_index: 0,
    })
}

fn check_from_draft(
    c: CheckDraft,
    node: &str,
    service: Option<&Service>,
) -> Result<Check, RequestError> {
    let check_node = if c.node.is_empty() {
        node.to_string()
    } else {
        c.node
    };
    if check_node != node {
        return Err(RequestError::internal(format!(
            "Node '{check_node}' does not match register request"
        )));
    }
    let check_id = check_id_or_name(&c.check_id, &c.name).to_string();
    if check_id.is_empty() {
        return Err(RequestError::internal("Missing check ID"));
    }
    let status = parse_check_status(&c.status)?;
    let (service_name, service_tags) = match service {
        Some(s) if !c.service_id.is_empty() && s.id == c.service_id => {
            (s.service.clone(), s.tags.clone())
        }
        _ => (String::new(), Vec::new()),
    };
    let check_type = if !c.http.is_empty() {
        "http"
    } else if !c.tcp.is_empty() {
        "tcp"
    } else {
        ""
    };
    Ok(Check {
        node: check_node,
        check_id,
        name: c.name,
        status,
        notes: c.notes,
        output: c.output,
        service_id: c.service_id,
        service_name,
        service_tags,
        check_type: check_type.to_string(),
        definition: CheckDefinition {
            http: c.http,
            tcp: c.tcp,
            interval: c.interval.map_err(RequestError::BadRequest)?,
            timeout: c.timeout.map_err(RequestError::BadRequest)?,
            deregister_critical_service_after: c
                .deregister_critical_service_after
                .map_err(RequestError::BadRequest)?,
        },
        create_index: 0,
        modify_index: 0,
    })
}

/// Validate a deregistration.
pub fn deregister(
    draft: DeregistrationDraft,
    our_dc: &str,
) -> Result<DeregisterRequest, RequestError> {
    check_datacenter(&draft.datacenter, our_dc)?;
    if draft.node.is_empty() {
        return Err(RequestError::internal("Must provide node"));
    }
    let some = |s: String| if s.is_empty() { None } else { Some(s) };
    Ok(DeregisterRequest {
        node: draft.node,
        service_id: some(draft.service_id),
        check_id: some(draft.check_id),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draft() -> RegistrationDraft {
        RegistrationDraft {
            node: "n1".into(),
            address: "10.0.0.1".into(),
            ..RegistrationDraft::default()
        }
    }

    #[test]
    fn defaults_are_consuls() {
        let r = register(
            RegistrationDraft {
                service: Some(ServiceDraft {
                    service: "web".into(),
                    tags: vec!["a".into()],
                    ..ServiceDraft::default()
                }),
                check: Some(CheckDraft {
                    name: "alive".into(),
                    service_id: "web".into(),
                    http: "http://x".into(),
                    ..CheckDraft::default()
                }),
                ..draft()
            },
            "dc1",
        )
        .unwrap();
        assert_eq!(r.node.datacenter, "dc1");
        let svc = r.service.unwrap();
        assert_eq!((svc.id.as_str(), svc.weights), ("web", Weights::default()));
        let c = &r.checks[0];
        assert_eq!(c.check_id, "alive");
        assert_eq!(c.node, "n1");
        assert_eq!(c.status, CheckStatus::Critical);
        assert_eq!((c.service_name.as_str(), c.service_tags.len()), ("web", 1));
        assert_eq!(c.check_type, "http");
    }

    #[test]
    fn rules_refuse_in_consuls_order_with_its_texts() {
        let err = |d: RegistrationDraft| register(d, "dc1").unwrap_err();
        assert_eq!(
            err(RegistrationDraft {
                datacenter: "dc9".into(),
                node: String::new(),
                ..draft()
            }),
            RequestError::internal("No path to datacenter")
        );
        assert_eq!(
            err(RegistrationDraft {
                node: String::new(),
                ..draft()
            }),
            RequestError::internal("Must provide node")
        );
        assert_eq!(
            err(RegistrationDraft {
                address: String::new(),
                id: Err("bad".into()),
                ..draft()
            }),
            RequestError::internal("Must provide address if SkipNodeUpdate is not set")
        );
        assert_eq!(
            err(RegistrationDraft {
                id: Err("bad".into()),
                ..draft()
            }),
            RequestError::internal("Bad node ID: bad")
        );
        assert_eq!(
            err(RegistrationDraft {
                service: Some(ServiceDraft {
                    id: "x".into(),
                    ..ServiceDraft::default()
                }),
                ..draft()
            }),
            RequestError::internal("Must provide service name with ID")
        );
        let check = |c: CheckDraft| RegistrationDraft {
            checks: vec![c],
            ..draft()
        };
        assert_eq!(
            err(check(CheckDraft::default())),
            RequestError::internal("Missing check ID")
        );
        assert_eq!(
            err(check(CheckDraft {
                node: "other".into(),
                name: "c".into(),
                ..CheckDraft::default()
            })),
            RequestError::internal("Node 'other' does not match register request")
        );
        assert_eq!(
            err(check(CheckDraft {
                name: "c".into(),
                status: "bogus".into(),
                interval: Err("late".into()),
                ..CheckDraft::default()
            })),
            RequestError::bad_request("Invalid check status: \"bogus\"")
        );
        assert_eq!(
            err(check(CheckDraft {
                name: "c".into(),
                interval: Err("Request decode failed: time: invalid duration \"x\"".into()),
                ..CheckDraft::default()
            })),
            RequestError::bad_request("Request decode failed: time: invalid duration \"x\"")
        );
    }

    #[test]
    fn the_copy_limit_is_checked_before_copying() {
        let tags: Vec<String> = (0..1000).map(|i| format!("{i:0>100}")).collect();
        let checks = (0..200)
            .map(|_| CheckDraft {
                name: "c".into(),
                service_id: "web".into(),
                ..CheckDraft::default()
            })
            .collect();
        let big = RegistrationDraft {
            service: Some(ServiceDraft {
                service: "web".into(),
                tags,
                ..ServiceDraft::default()
            }),
            checks,
            ..draft()
        };
        match register(big, "dc1") {
            Err(RequestError::TooLarge(text)) => {
                assert!(
                    text.starts_with("Registration too large: 200 checks"),
                    "{text}"
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn deregistration() {
        assert_eq!(
            deregister(DeregistrationDraft::default(), "dc1"),
            Err(RequestError::internal("Must provide node"))
        );
        assert_eq!(
            deregister(
                DeregistrationDraft {
                    node: "n".into(),
                    check_id: "c".into(),
                    ..DeregistrationDraft::default()
                },
                "dc1"
            ),
            Ok(DeregisterRequest {
                node: "n".into(),
                service_id: None,
                check_id: Some("c".into()),
            })
        );
    }
}
