//! `/v1/session/*`: create, destroy, info, node, list, renew, with Consul's shapes.
//!
//! The edge chooses a new session's ID (a v4 UUID, as Consul's endpoint does) so that
//! the replicated command carries it and every server applies the same row; the store
//! checks node and checks (`protocol::store::session`). Renew is answered by the leader
//! without a log entry (`WriteRequest::SessionRenew`).

use super::body::{decode_json, json_too_large, JSON_MAX_BODY_BYTES};
use super::error::ApiError;
use super::query::{parse_go_duration, QueryOptions};
use super::render::{json_with_meta, to_json};
use super::{write, ApiRequest, BodyReader};
use crate::context::AgentContext;
use protocol::api::{Read, ReadData, Request, RequestError, Response, WriteRequest};
use protocol::store::session::{
    invalid_ttl_text, ttl_allowed, DEFAULT_LOCK_DELAY_NS, DEFAULT_SESSION_CHECK,
};
use protocol::store::{Session, SessionBehavior, SessionOp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRoute<'a> {
    Create,
    Destroy(&'a str),
    Info(&'a str),
    Node(&'a str),
    List,
    Renew(&'a str),
}

/// `ServiceChecks[]` element of the create body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ServiceCheckBody {
    id: String,
}

/// The create body, keys already folded by `decode_json` (case-insensitive, as Consul's
/// decoder). `Checks` present (even `[]`) replaces the default `serfHealth`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct CreateBody {
    name: String,
    node: String,
    lockdelay: Option<Value>,
    checks: Option<Vec<String>>,
    nodechecks: Option<Vec<String>>,
    servicechecks: Option<Vec<ServiceCheckBody>>,
    behavior: String,
    ttl: String,
}

/// Consul's `FixupLockDelay`: a Go duration string, or a number of nanoseconds where a
/// value under 1000 means seconds.
fn lock_delay_ns(value: &Value) -> Result<u64, ApiError> {
    let bad = |what: &str| ApiError::bad_request(format!("Request decode failed: {what}"));
    match value {
        Value::Null => Ok(DEFAULT_LOCK_DELAY_NS),
        Value::String(s) => parse_go_duration(s)
            .map(|d| d.as_nanos().min(u64::MAX as u128) as u64)
            .ok_or_else(|| bad(&format!("time: invalid duration {s:?}"))),
        Value::Number(n) => {
            let Some(f) = n.as_f64().filter(|f| *f >= 0.0) else {
                return Err(bad(&format!("invalid LockDelay {n}")));
            };
            if f < 1000.0 {
                Ok((f * 1e9) as u64)
            } else {
                Ok(f as u64)
            }
        }
        other => Err(bad(&format!("invalid LockDelay {other}"))),
    }
}

/// Turn a create body into the session to propose, with Consul's defaults and checks
/// (the store checks node and checks again at apply). `id` is the new session's ID.
pub fn session_from_body(
    body: CreateBody,
    agent_node: &str,
    id: String,
) -> Result<Session, ApiError> {
    let lock_delay_ns = match &body.lockdelay {
        Some(v) => lock_delay_ns(v)?,
        None => DEFAULT_LOCK_DELAY_NS,
    };
    let Some(behavior) = SessionBehavior::parse(&body.behavior) else {
        return Err(ApiError::internal(format!(
            "Invalid Behavior setting '{}'",
            body.behavior
        )));
    };
    let ttl_ms = if body.ttl.is_empty() {
        0
    } else {
        let Some(ttl) = parse_go_duration(&body.ttl) else {
            return Err(ApiError::internal(format!(
                "Session TTL '{}' invalid: time: invalid duration {:?}",
                body.ttl, body.ttl
            )));
        };
        let ns = ttl.as_nanos().min(u64::MAX as u128) as u64;
        let ms = ttl.as_millis().min(u64::MAX as u128) as u64;
        // A TTL under a millisecond (but not zero) is below the minimum too.
        if (ns > 0 && ms == 0) || !ttl_allowed(ms) {
            return Err(ApiError::internal(invalid_ttl_text(ns)));
        }
        ms
    };
    let mut node_checks: Vec<String> = match (body.checks, body.nodechecks) {
        (None, None) => vec![DEFAULT_SESSION_CHECK.to_string()],
        (checks, node_checks) => checks
            .unwrap_or_default()
            .into_iter()
            .chain(node_checks.unwrap_or_default())
            .collect(),
    };
    let mut seen = std::collections::BTreeSet::new();
    node_checks.retain(|c| seen.insert(c.clone()));
    let service_checks = body
        .servicechecks
        .unwrap_or_default()
        .into_iter()
        .map(|c| c.id)
        .collect();
    let node = if body.node.is_empty() {
        agent_node.to_string()
    } else {
        body.node
    };
    Ok(Session {
        id,
        name: body.name,
        node,
        lock_delay_ns,
        behavior,
        ttl: if ttl_ms == 0 { String::new() } else { body.ttl },
        ttl_ms,
        node_checks,
        service_checks,
        create_index: 0,
        modify_index: 0,
    })
}

#[derive(Serialize)]
struct ServiceCheckOut<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    #[serde(rename = "Namespace")]
    namespace: &'a str,
}

/// A session as Consul renders it (`LockDelay` in nanoseconds, empty lists `null`).
#[derive(Serialize)]
pub struct SessionOut<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Node")]
    node: &'a str,
    #[serde(rename = "LockDelay")]
    lock_delay: u64,
    #[serde(rename = "Behavior")]
    behavior: &'a str,
    #[serde(rename = "TTL")]
    ttl: &'a str,
    #[serde(rename = "NodeChecks")]
    node_checks: Option<&'a [String]>,
    #[serde(rename = "ServiceChecks")]
    service_checks: Option<Vec<ServiceCheckOut<'a>>>,
    #[serde(rename = "CreateIndex")]
    create_index: u64,
    #[serde(rename = "ModifyIndex")]
    modify_index: u64,
}

impl<'a> From<&'a Session> for SessionOut<'a> {
    fn from(s: &'a Session) -> Self {
        SessionOut {
            id: &s.id,
            name: &s.name,
            node: &s.node,
            lock_delay: s.lock_delay_ns,
            behavior: s.behavior.as_str(),
            ttl: &s.ttl,
            node_checks: (!s.node_checks.is_empty()).then_some(s.node_checks.as_slice()),
            service_checks: (!s.service_checks.is_empty()).then(|| {
                s.service_checks
                    .iter()
                    .map(|id| ServiceCheckOut { id, namespace: "" })
                    .collect()
            }),
            create_index: s.create_index,
            modify_index: s.modify_index,
        }
    }
}

pub fn render_sessions(sessions: &[Session], pretty: bool) -> Result<Vec<u8>, ApiError> {
    let out: Vec<SessionOut<'_>> = sessions.iter().map(SessionOut::from).collect();
    to_json(&out, pretty)
}

fn missing(what: &str) -> ApiError {
    ApiError::bad_request(format!("Missing {what}"))
}

pub async fn handle(
    ctx: &AgentContext,
    req: &ApiRequest,
    route: SessionRoute<'_>,
    body: &mut BodyReader<'_>,
) -> Result<actix_web::HttpResponse, ApiError> {
    match route {
        SessionRoute::Create => {
            super::query::check_dc(&req.query, &ctx.config.datacenter)?;
            let raw = body.read(JSON_MAX_BODY_BYTES, json_too_large).await?;
            let parsed: CreateBody = if raw.iter().all(u8::is_ascii_whitespace) {
                CreateBody::default()
            } else {
                decode_json(&raw)?
            };
            let id = uuid::Uuid::new_v4().to_string();
            let session = session_from_body(parsed, &ctx.config.node_name, id.clone())?;
            let write = WriteRequest::Session(SessionOp::Create(session));
            ctx.api.write(write).await?;
            #[derive(Serialize)]
            struct Created<'a> {
                #[serde(rename = "ID")]
                id: &'a str,
            }
            super::render::json_response(&Created { id: &id }, req.pretty)
        }
        SessionRoute::Destroy(id) => {
            super::query::check_dc(&req.query, &ctx.config.datacenter)?;
            if id.is_empty() {
                return Err(missing("session"));
            }
            let write = WriteRequest::Session(SessionOp::Destroy { id: id.to_string() });
            write_true(ctx, write, req.pretty).await
        }
        SessionRoute::Renew(id) => {
            super::query::check_dc(&req.query, &ctx.config.datacenter)?;
            if id.is_empty() {
                return Err(missing("session"));
            }
            let answer = ctx
                .api
                .ask(Request::Write(WriteRequest::SessionRenew {
                    id: id.to_string(),
                }))
                .await?;
            let Response::Read(r) = answer else {
                return Err(RequestError::unexpected_data().into());
            };
            let ReadData::Sessions(sessions) = &r.data else {
                return Err(RequestError::unexpected_data().into());
            };
            Ok(json_with_meta(
                &r.meta,
                render_sessions(sessions, req.pretty)?,
            ))
        }
        SessionRoute::Info(_) | SessionRoute::Node(_) | SessionRoute::List => {
            let opts = QueryOptions::parse(&req.query, &ctx.config.datacenter)?;
            let read = match route {
                SessionRoute::Info("") => return Err(missing("session")),
                SessionRoute::Node("") => return Err(missing("node name")),
                SessionRoute::Info(id) => Read::SessionInfo { id: id.to_string() },
                SessionRoute::Node(node) => Read::SessionNode {
                    node: node.to_string(),
                },
                _ => Read::SessionList,
            };
            let r = ctx.api.read(opts.to_api(), read).await?;
            let ReadData::Sessions(sessions) = &r.data else {
                return Err(RequestError::unexpected_data().into());
            };
            Ok(json_with_meta(
                &r.meta,
                render_sessions(sessions, req.pretty)?,
            ))
        }
    }
}

async fn write_true(
    ctx: &AgentContext,
    request: WriteRequest,
    pretty: bool,
) -> Result<actix_web::HttpResponse, ApiError> {
    write(ctx, request, pretty).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(v: Value) -> CreateBody {
        decode_json(v.to_string().as_bytes()).unwrap()
    }

    fn from(v: Value) -> Result<Session, ApiError> {
        session_from_body(body(v), "agent1", "id1".into())
    }

    #[test]
    fn defaults_are_consuls() {
        let s = from(json!({})).unwrap();
        assert_eq!(s.node, "agent1");
        assert_eq!(s.node_checks, ["serfHealth"]);
        assert_eq!(s.lock_delay_ns, 15_000_000_000);
        assert_eq!(s.behavior, SessionBehavior::Release);
        assert_eq!((s.ttl.as_str(), s.ttl_ms), ("", 0));
    }

    #[test]
    fn patronis_body_is_understood() {
        let s = from(json!({"name": "pg", "checks": [], "lockdelay": "0.001s",
                            "behavior": "delete", "ttl": "15s"}))
        .unwrap();
        assert!(s.node_checks.is_empty());
        assert_eq!(s.lock_delay_ns, 1_000_000);
        assert_eq!(s.behavior, SessionBehavior::Delete);
        assert_eq!((s.ttl.as_str(), s.ttl_ms), ("15s", 15_000));
        let s = from(
            json!({"LockDelay": 15, "NodeChecks": ["a"], "Checks": ["a", "b"],
                            "ServiceChecks": [{"ID": "svc"}]}),
        )
        .unwrap();
        assert_eq!(s.lock_delay_ns, 15_000_000_000);
        assert_eq!(s.node_checks, ["a", "b"]);
        assert_eq!(s.service_checks, ["svc"]);
        assert_eq!(
            from(json!({"LockDelay": 2_000_000_000u64}))
                .unwrap()
                .lock_delay_ns,
            2_000_000_000
        );
    }

    #[test]
    fn bad_ttl_and_behavior_use_consuls_texts() {
        let text = |v: Value| from(v).unwrap_err().text();
        assert_eq!(
            text(json!({"TTL": "5s"})),
            "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]"
        );
        assert_eq!(
            text(json!({"TTL": "25h"})),
            "Invalid Session TTL '90000000000000', must be between [10s=24h0m0s]"
        );
        assert_eq!(
            text(json!({"TTL": "abc"})),
            "Session TTL 'abc' invalid: time: invalid duration \"abc\""
        );
        assert_eq!(
            text(json!({"Behavior": "keep"})),
            "Invalid Behavior setting 'keep'"
        );
        assert!(from(json!({"TTL": "0s"})).is_ok());
    }

    #[test]
    fn a_session_renders_like_consul() {
        let s = Session {
            id: "adf4".into(),
            name: "my-lock".into(),
            node: "n1".into(),
            lock_delay_ns: 15_000_000_000,
            behavior: SessionBehavior::Release,
            ttl: "30s".into(),
            ttl_ms: 30_000,
            node_checks: vec!["serfHealth".into()],
            service_checks: vec![],
            create_index: 5,
            modify_index: 5,
        };
        let out = String::from_utf8(render_sessions(&[s], false).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"[{"ID":"adf4","Name":"my-lock","Node":"n1","LockDelay":15000000000,"Behavior":"release","TTL":"30s","NodeChecks":["serfHealth"],"ServiceChecks":null,"CreateIndex":5,"ModifyIndex":5}]"#
        );
    }
}
