//! `PUT /v1/txn`: a JSON array of KV, Node, Service and Check operations applied all or
//! nothing (see `protocol::store::txn`).
//!
//! The edge decodes and validates, in Consul's order: the body size (413), the JSON and
//! base64 values (400 `Failed to parse body: …`), the op count (413), each KV value's
//! size (413); then the per-op checks Consul makes before proposing (`Must provide key`,
//! unknown verbs), which answer 409 with the failing op indexes and propose nothing.
//! A transaction with only read verbs is a read (consistency modes, no Raft write); any
//! write verb makes it one replicated command.

use super::body::{duration_field, normalize, KV_MAX_VALUE_BYTES};
use super::catalog::body::{tagged_addresses, ServiceAddressBody, WeightsBody};
use super::catalog::{AgentServiceOut, NodeOut};
use super::error::ApiError;
use super::health::HealthCheckOut;
use super::kv::KvEntryOut;
use super::query::QueryOptions;
use super::render::{to_json, APPLICATION_JSON};
use super::{ApiRequest, BodyReader};
use crate::context::AgentContext;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use base64::Engine as _;
use protocol::api::{QueryMeta, Read, ReadData, RequestError, WriteOutcome, WriteRequest};
use protocol::store::txn::{
    self, CatalogVerb, KvVerb, TxnCheck, TxnError, TxnKv, TxnNode, TxnOp, TxnOutcome, TxnResult,
    TxnService, MAX_TXN_OPS,
};
use protocol::store::{Check, CheckDefinition, CheckStatus, Node, Service, Weights};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Consul's `txn_max_req_len` default (512 KiB), the largest transaction body.
pub const TXN_MAX_REQ_BYTES: usize = 512 * 1024;

/// Consul's 413 text for a transaction body over the limit.
pub fn txn_too_large(body_bytes: u64) -> ApiError {
    ApiError::TooLarge(format!(
        "Request body({body_bytes} bytes) too large, max size: {TXN_MAX_REQ_BYTES} bytes. \
         See https://www.consul.io/docs/agent/config/config-files#txn_max_req_len."
    ))
}

pub async fn handle(
    ctx: &AgentContext,
    req: &ApiRequest,
    body: &mut BodyReader<'_>,
) -> Result<HttpResponse, ApiError> {
    let opts = QueryOptions::parse(&req.query, &ctx.config.datacenter)?;
    let bytes = body.read(TXN_MAX_REQ_BYTES, txn_too_large).await?;
    let ops = match parse_ops(&bytes, &ctx.config.datacenter)? {
        Ok(ops) => ops,
        Err(errors) => return render(&TxnOutcome::RolledBack(errors), None, req.pretty),
    };
    let invalid = txn::validate(&ops);
    if !invalid.is_empty() {
        return render(&TxnOutcome::RolledBack(invalid), None, req.pretty);
    }
    if txn::is_read_only(&ops) {
        // Served like any read under its consistency mode, never blocking (Consul's
        // Txn.Read ignores ?index).
        let options = protocol::api::QueryOptions {
            min_index: 0,
            ..opts.to_api()
        };
        let answer = ctx.api.read(options, Read::Txn { ops }).await?;
        let ReadData::Txn(outcome) = answer.data else {
            return Err(RequestError::unexpected_data().into());
        };
        return render(&outcome, Some(&answer.meta), req.pretty);
    }
    match ctx.api.write(WriteRequest::Txn(ops)).await? {
        WriteOutcome::Txn(outcome) => render(&outcome, None, req.pretty),
        _ => Err(ApiError::internal(
            "unexpected write outcome for a transaction",
        )),
    }
}

/// 200 with the results, or 409 with the errors; a read-only transaction also carries
/// its query meta (Consul's TxnReadResponse embeds QueryMeta) and the leader headers.
fn render(
    outcome: &TxnOutcome,
    meta: Option<&QueryMeta>,
    pretty: bool,
) -> Result<HttpResponse, ApiError> {
    let (status, results, errors) = match outcome {
        TxnOutcome::Committed(rows) => (
            StatusCode::OK,
            Some(rows.iter().map(ResultOut::from).collect::<Vec<_>>()),
            None,
        ),
        TxnOutcome::RolledBack(errors) => (
            StatusCode::CONFLICT,
            None,
            Some(errors.iter().map(ErrorOut::from).collect::<Vec<_>>()),
        ),
    };
    let body = to_json(
        &ResponseOut {
            results,
            errors,
            meta: meta.map(|m| ReadMetaOut {
                index: 0,
                last_contact_ns: m.last_contact_ms.saturating_mul(1_000_000),
                known_leader: m.known_leader,
                consistency_level: "",
                not_modified: false,
                backend: 0,
            }),
        },
        pretty,
    )?;
    let mut resp = HttpResponse::build(status);
    resp.content_type(APPLICATION_JSON);
    if let Some(m) = meta {
        resp.insert_header(("X-Consul-LastContact", m.last_contact_ms.to_string()));
        resp.insert_header((
            "X-Consul-KnownLeader",
            if m.known_leader { "true" } else { "false" },
        ));
    }
    Ok(resp.body(body))
}

#[derive(Serialize)]
struct ResponseOut<'a> {
    #[serde(rename = "Results")]
    results: Option<Vec<ResultOut<'a>>>,
    #[serde(rename = "Errors")]
    errors: Option<Vec<ErrorOut<'a>>>,
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    meta: Option<ReadMetaOut>,
}

/// The QueryMeta fields Consul's read-only answer carries in its body.
#[derive(Serialize)]
struct ReadMetaOut {
    #[serde(rename = "Index")]
    index: u64,
    #[serde(rename = "LastContact")]
    last_contact_ns: u64,
    #[serde(rename = "KnownLeader")]
    known_leader: bool,
    #[serde(rename = "ConsistencyLevel")]
    consistency_level: &'static str,
    #[serde(rename = "NotModified")]
    not_modified: bool,
    #[serde(rename = "Backend")]
    backend: u8,
}

/// One result: `{"KV": …}`, `{"Node": …}`, `{"Service": …}` or `{"Check": …}`.
#[derive(Serialize)]
enum ResultOut<'a> {
    #[serde(rename = "KV")]
    Kv(KvEntryOut<'a>),
    Node(NodeOut<'a>),
    Service(AgentServiceOut<'a>),
    Check(HealthCheckOut<'a>),
}

impl<'a> From<&'a TxnResult> for ResultOut<'a> {
    fn from(row: &'a TxnResult) -> Self {
        match row {
            TxnResult::Kv(e) => ResultOut::Kv(e.into()),
            TxnResult::Node(n) => ResultOut::Node(n.into()),
            TxnResult::Service(s) => ResultOut::Service(s.into()),
            TxnResult::Check(c) => ResultOut::Check(c.into()),
        }
    }
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    #[serde(rename = "OpIndex")]
    op_index: usize,
    #[serde(rename = "What")]
    what: &'a str,
}

impl<'a> From<&'a TxnError> for ErrorOut<'a> {
    fn from(e: &'a TxnError) -> Self {
        ErrorOut {
            op_index: e.op_index,
            what: &e.what,
        }
    }
}

// ---------- decoding (canonical lowercase field names, see `http/body.rs`) ----------

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct OpBody {
    kv: Option<KvBody>,
    node: Option<NodeOpBody>,
    service: Option<ServiceOpBody>,
    check: Option<CheckOpBody>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct KvBody {
    verb: String,
    key: String,
    /// Base64, decoded by [`decode_value`].
    value: Option<String>,
    flags: u64,
    index: u64,
    session: String,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct NodeOpBody {
    verb: String,
    node: NodeBody,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct NodeBody {
    id: String,
    node: String,
    address: String,
    datacenter: String,
    #[serde(rename = "taggedaddresses")]
    tagged_addresses: BTreeMap<String, String>,
    meta: BTreeMap<String, String>,
    #[serde(rename = "modifyindex")]
    modify_index: u64,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct ServiceOpBody {
    verb: String,
    node: String,
    service: ServiceBody,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct ServiceBody {
    id: String,
    service: String,
    kind: String,
    tags: Vec<String>,
    address: String,
    #[serde(rename = "taggedaddresses")]
    tagged_addresses: BTreeMap<String, ServiceAddressBody>,
    meta: BTreeMap<String, String>,
    port: u16,
    weights: Option<WeightsBody>,
    #[serde(rename = "enabletagoverride")]
    enable_tag_override: bool,
    #[serde(rename = "modifyindex")]
    modify_index: u64,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct CheckOpBody {
    verb: String,
    check: CheckBody,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct CheckBody {
    node: String,
    #[serde(rename = "checkid")]
    check_id: String,
    name: String,
    status: String,
    notes: String,
    output: String,
    #[serde(rename = "serviceid")]
    service_id: String,
    #[serde(rename = "servicename")]
    service_name: String,
    #[serde(rename = "servicetags")]
    service_tags: Vec<String>,
    definition: DefinitionBody,
    #[serde(rename = "modifyindex")]
    modify_index: u64,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
struct DefinitionBody {
    http: String,
    tcp: String,
    interval: Value,
    timeout: Value,
    #[serde(rename = "deregistercriticalserviceafter")]
    deregister_critical_service_after: Value,
}

fn parse_failed(text: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!("Failed to parse body: {text}"))
}

/// Go's name for a JSON value's kind, as `encoding/json` words its type errors.
fn go_json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The body as typed operations; `Ok(Err(..))` when some operations are wrong in a way
/// Consul reports per operation (409): unknown verbs, an op of no known kind.
pub fn parse_ops(
    bytes: &[u8],
    our_dc: &str,
) -> Result<Result<Vec<TxnOp>, Vec<TxnError>>, ApiError> {
    let raw: Value = serde_json::from_slice(bytes).map_err(parse_failed)?;
    let Value::Array(items) = raw else {
        return Err(parse_failed(format!(
            "json: cannot unmarshal {} into Go value of type api.TxnOps",
            go_json_kind(&raw)
        )));
    };
    let mut bodies = Vec::with_capacity(items.len().min(MAX_TXN_OPS + 1));
    for item in items {
        if !(item.is_object() || item.is_null()) {
            return Err(parse_failed(format!(
                "json: cannot unmarshal {} into Go value of type api.TxnOp",
                go_json_kind(&item)
            )));
        }
        let body: OpBody = serde_json::from_value(normalize(item)).map_err(parse_failed)?;
        // Values are decoded with the rest of the body, as Consul's decode hook does.
        let value = match body.kv.as_ref().and_then(|kv| kv.value.as_deref()) {
            Some(text) => decode_value(text)?,
            None => Vec::new(),
        };
        bodies.push((body, value));
    }
    if bodies.len() > MAX_TXN_OPS {
        return Err(ApiError::TooLarge(txn::too_many_ops_text(bodies.len())));
    }
    let mut ops = Vec::with_capacity(bodies.len());
    let mut errors = Vec::new();
    for (op_index, (body, value)) in bodies.into_iter().enumerate() {
        match convert(body, value, our_dc)? {
            Ok(op) => ops.push(op),
            Err(what) => errors.push(TxnError { op_index, what }),
        }
    }
    Ok(if errors.is_empty() {
        Ok(ops)
    } else {
        Err(errors)
    })
}

/// Standard base64 with padding (Go's `StdEncoding`), with Go's error wording.
fn decode_value(text: &str) -> Result<Vec<u8>, ApiError> {
    use base64::DecodeError;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| {
            let at = match e {
                DecodeError::InvalidByte(at, _) | DecodeError::InvalidLastSymbol(at, _) => at,
                DecodeError::InvalidLength(len) => len,
                DecodeError::InvalidPadding => text.len(),
            };
            parse_failed(format!(
                "failed to decode value: illegal base64 data at input byte {at}"
            ))
        })
}

/// One operation, or its per-op error text; request-level problems are `Err`.
fn convert(body: OpBody, value: Vec<u8>, our_dc: &str) -> Result<Result<TxnOp, String>, ApiError> {
    if let Some(kv) = body.kv {
        // Consul checks the size before it looks at the verb.
        if value.len() > KV_MAX_VALUE_BYTES {
            return Err(ApiError::TooLarge(format!(
                "Value for key {:?} is too large ({} > {KV_MAX_VALUE_BYTES} bytes)",
                kv.key,
                value.len()
            )));
        }
        let Some(verb) = KvVerb::parse(&kv.verb) else {
            return Ok(Err(format!("unknown KV verb {:?}", kv.verb)));
        };
        return Ok(Ok(TxnOp::Kv(TxnKv {
            verb,
            key: kv.key,
            value,
            flags: kv.flags,
            index: kv.index,
            session: kv.session,
        })));
    }
    if let Some(op) = body.node {
        let Some(verb) = CatalogVerb::parse(&op.verb) else {
            return Ok(Err(format!("unknown Node verb {:?}", op.verb)));
        };
        let n = op.node;
        let datacenter = if n.datacenter.is_empty() {
            our_dc.to_string()
        } else {
            n.datacenter
        };
        return Ok(Ok(TxnOp::Node(TxnNode {
            verb,
            index: n.modify_index,
            node: Node {
                id: n.id,
                node: n.node,
                address: n.address,
                datacenter,
                tagged_addresses: n.tagged_addresses,
                meta: n.meta,
                create_index: 0,
                modify_index: 0,
            },
        })));
    }
    if let Some(op) = body.service {
        let Some(verb) = CatalogVerb::parse(&op.verb) else {
            return Ok(Err(format!("unknown Service verb {:?}", op.verb)));
        };
        let s = op.service;
        return Ok(Ok(TxnOp::Service(TxnService {
            verb,
            index: s.modify_index,
            service: Service {
                node: op.node.clone(),
                id: s.id,
                service: s.service,
                kind: s.kind,
                tags: s.tags,
                address: s.address,
                tagged_addresses: tagged_addresses(s.tagged_addresses),
                meta: s.meta,
                port: s.port,
                weights: s.weights.map(Weights::from).unwrap_or_default(),
                enable_tag_override: s.enable_tag_override,
                create_index: 0,
                modify_index: 0,
            },
            node: op.node,
        })));
    }
    if let Some(op) = body.check {
        let Some(verb) = CatalogVerb::parse(&op.verb) else {
            return Ok(Err(format!("unknown Check verb {:?}", op.verb)));
        };
        return Ok(Ok(TxnOp::Check(TxnCheck {
            verb,
            index: op.check.modify_index,
            check: check(op.check)?,
        })));
    }
    Ok(Err("no operation specified".to_string()))
}

fn check(c: CheckBody) -> Result<Check, ApiError> {
    // Consul stores a check without a status as critical.
    let status = if c.status.is_empty() {
        CheckStatus::Critical
    } else {
        CheckStatus::parse(&c.status)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid check status: {:?}", c.status)))?
    };
    let d = c.definition;
    let check_type = if !d.http.is_empty() {
        "http"
    } else if !d.tcp.is_empty() {
        "tcp"
    } else {
        ""
    };
    Ok(Check {
        node: c.node,
        check_id: c.check_id,
        name: c.name,
        status,
        notes: c.notes,
        output: c.output,
        service_id: c.service_id,
        service_name: c.service_name,
        service_tags: c.service_tags,
        check_type: check_type.to_string(),
        definition: CheckDefinition {
            interval: duration_field(&d.interval)?,
            timeout: duration_field(&d.timeout)?,
            deregister_critical_service_after: duration_field(
                &d.deregister_critical_service_after,
            )?,
            http: d.http,
            tcp: d.tcp,
        },
        create_index: 0,
        modify_index: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(json: &str) -> Result<Result<Vec<TxnOp>, Vec<TxnError>>, ApiError> {
        parse_ops(json.as_bytes(), "dc1")
    }

    #[test]
    fn kinds_and_fields_are_case_insensitive_and_values_base64() {
        let ops = parsed(
            r#"[{"KV":{"Verb":"set","Key":"a","Value":"eA==","Flags":7}},
                {"kv":{"verb":"get","key":"a"}},
                {"Node":{"Verb":"set","Node":{"Node":"n1","Address":"10.0.0.1"}}},
                {"Service":{"Verb":"cas","Node":"n1","Service":{"Service":"web","ModifyIndex":3}}},
                {"Check":{"Verb":"delete","Check":{"Node":"n1","CheckID":"c"}}}]"#,
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            ops[0],
            TxnOp::Kv(TxnKv {
                verb: KvVerb::Set,
                key: "a".into(),
                value: b"x".to_vec(),
                flags: 7,
                index: 0,
                session: String::new(),
            })
        );
        let TxnOp::Node(n) = &ops[2] else {
            panic!("{ops:?}")
        };
        assert_eq!(n.node.datacenter, "dc1");
        let TxnOp::Service(s) = &ops[3] else {
            panic!("{ops:?}")
        };
        assert_eq!((s.index, s.service.weights), (3, Weights::default()));
        let TxnOp::Check(c) = &ops[4] else {
            panic!("{ops:?}")
        };
        assert_eq!(c.check.status, CheckStatus::Critical);
    }

    #[test]
    fn body_level_errors_are_400_and_413() {
        let text = |r: Result<_, ApiError>| match r {
            Err(e) => (e.status().as_u16(), e.text()),
            Ok(_) => panic!("accepted"),
        };
        assert_eq!(
            text(parsed(r#"{"KV":{}}"#)),
            (
                400,
                "Failed to parse body: json: cannot unmarshal object into Go value of type api.TxnOps"
                    .to_string()
            )
        );
        assert_eq!(
            text(parsed(
                r#"[{"KV":{"Verb":"set","Key":"a","Value":"e!=="}}]"#
            )),
            (
                400,
                "Failed to parse body: failed to decode value: illegal base64 data at input byte 1"
                    .to_string()
            )
        );
        assert!(text(parsed("[nope"))
            .1
            .starts_with("Failed to parse body: "));
        let many = format!(
            "[{}]",
            vec![r#"{"KV":{"Verb":"get","Key":"a"}}"#; 129].join(",")
        );
        assert_eq!(
            text(parsed(&many)),
            (
                413,
                "Transaction contains too many operations (129 > 128)".to_string()
            )
        );
        assert_eq!(
            text(parsed(
                r#"[{"Check":{"Verb":"set","Check":{"Node":"n","Name":"c","Status":"meh"}}}]"#
            )),
            (400, "Invalid check status: \"meh\"".to_string())
        );
    }

    #[test]
    fn a_value_over_the_kv_limit_is_413_with_consuls_text() {
        use base64::Engine as _;
        let value =
            base64::engine::general_purpose::STANDARD.encode(vec![0u8; KV_MAX_VALUE_BYTES + 1]);
        let body = format!(r#"[{{"KV":{{"Verb":"nope","Key":"big","Value":"{value}"}}}}]"#);
        let err = parsed(&body).unwrap_err();
        assert_eq!(err.status().as_u16(), 413);
        assert_eq!(
            err.text(),
            format!(
                "Value for key \"big\" is too large ({} > {KV_MAX_VALUE_BYTES} bytes)",
                KV_MAX_VALUE_BYTES + 1
            )
        );
    }

    #[test]
    fn per_op_errors_name_their_op() {
        let errors = parsed(
            r#"[{"KV":{"Verb":"get","Key":"a"}},{"KV":{"Verb":"frob","Key":"a"}},{},
                {"Node":{"Verb":"zap"}}]"#,
        )
        .unwrap()
        .unwrap_err();
        assert_eq!(
            errors,
            vec![
                TxnError {
                    op_index: 1,
                    what: "unknown KV verb \"frob\"".into()
                },
                TxnError {
                    op_index: 2,
                    what: "no operation specified".into()
                },
                TxnError {
                    op_index: 3,
                    what: "unknown Node verb \"zap\"".into()
                },
            ]
        );
    }
}
