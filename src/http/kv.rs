//! `/v1/kv/:key`: GET (single, `?recurse`, `?keys&separator`, `?raw`), PUT (`?flags`,
//! `?cas`, `?acquire=<session>`, `?release=<session>`), DELETE (`?recurse`, `?cas`), with
//! Consul's index semantics.

use super::body::{kv_too_large, KV_MAX_VALUE_BYTES};
use super::error::ApiError;
use super::query::{parse_uint, Query, QueryOptions};
use super::render::{base64_or_null, empty_not_found, json_bytes, to_json, MetaHeaders};
use super::{write, ApiRequest, BodyReader};
use crate::context::AgentContext;
use actix_web::http::Method;
use actix_web::HttpResponse;
use protocol::api::{Read, ReadData, RequestError, WriteRequest};
use protocol::store::{KvEntry, KvOp};
use serde::Serialize;

/// One KV entry as Consul renders it (`Session` omitted when unlocked).
#[derive(Serialize)]
pub struct KvEntryOut<'a> {
    #[serde(rename = "LockIndex")]
    pub lock_index: u64,
    #[serde(rename = "Key")]
    pub key: &'a str,
    #[serde(rename = "Flags")]
    pub flags: u64,
    #[serde(rename = "Value", serialize_with = "base64_or_null")]
    pub value: &'a [u8],
    #[serde(rename = "Session", skip_serializing_if = "Option::is_none")]
    pub session: Option<&'a str>,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
}

impl<'a> From<&'a KvEntry> for KvEntryOut<'a> {
    fn from(e: &'a KvEntry) -> Self {
        KvEntryOut {
            lock_index: e.lock_index,
            key: &e.key,
            flags: e.flags,
            value: &e.value,
            session: e.session.as_deref().filter(|s| !s.is_empty()),
            create_index: e.create_index,
            modify_index: e.modify_index,
        }
    }
}

/// Keys cairn refuses, following Consul 1.22's relaxed validation: path traversal and
/// leading/trailing spaces. Everything else (spaces inside, `*`, `+`, `%` …) is accepted.
pub fn validate_key(key: &str) -> Result<(), ApiError> {
    if key.starts_with(' ') || key.ends_with(' ') {
        return Err(ApiError::bad_request(format!(
            "Invalid key name {key:?}: leading or trailing spaces are not allowed"
        )));
    }
    if key.split('/').any(|segment| segment == "..") {
        return Err(ApiError::bad_request(format!(
            "Invalid key name {key:?}: path traversal is not allowed"
        )));
    }
    Ok(())
}

/// Go's `conflictingFlags`: at most one of `flags` may be present.
pub fn conflicting_flags(q: &Query, flags: &[&str]) -> Result<(), ApiError> {
    if flags.iter().filter(|f| q.has(f)).count() > 1 {
        return Err(ApiError::bad_request(format!(
            "Conflicting flags: {}",
            q.encode()
        )));
    }
    Ok(())
}

fn missing_key() -> ApiError {
    ApiError::bad_request("Missing key name")
}

/// What a KV read renders to.
pub enum KvAnswer {
    Json(Vec<u8>),
    Raw(Vec<u8>),
    NotFound,
}

/// `?keys`: 404 when nothing is under a non-empty prefix.
pub fn render_keys(keys: &[String], prefix: &str, pretty: bool) -> Result<KvAnswer, ApiError> {
    if keys.is_empty() && !prefix.is_empty() {
        return Ok(KvAnswer::NotFound);
    }
    Ok(KvAnswer::Json(to_json(keys, pretty)?))
}

/// `?recurse`: 404 when nothing is under the prefix.
pub fn render_recurse(entries: &[KvEntry], pretty: bool) -> Result<KvAnswer, ApiError> {
    if entries.is_empty() {
        return Ok(KvAnswer::NotFound);
    }
    let out: Vec<KvEntryOut<'_>> = entries.iter().map(KvEntryOut::from).collect();
    Ok(KvAnswer::Json(to_json(&out, pretty)?))
}

/// One key, as a one-element array or (`?raw`) its bare value.
pub fn render_single(
    entry: Option<&KvEntry>,
    raw: bool,
    pretty: bool,
) -> Result<KvAnswer, ApiError> {
    match entry {
        None => Ok(KvAnswer::NotFound),
        Some(e) if raw => Ok(KvAnswer::Raw(e.value.to_vec())),
        Some(e) => Ok(KvAnswer::Json(to_json(&[KvEntryOut::from(e)], pretty)?)),
    }
}

pub async fn handle(
    ctx: &AgentContext,
    req: &ApiRequest,
    key: &str,
    body: &mut BodyReader<'_>,
) -> Result<HttpResponse, ApiError> {
    let opts = QueryOptions::parse(&req.query, &ctx.config.datacenter)?;
    if !key.is_empty() {
        validate_key(key)?;
    }
    match req.method {
        Method::GET => get(ctx, req, &opts, key).await,
        Method::PUT => put(ctx, req, key, body).await,
        Method::DELETE => delete(ctx, req, key).await,
        _ => Err(ApiError::internal(
            "unreachable: method filtered by the router",
        )),
    }
}

async fn get(
    ctx: &AgentContext,
    req: &ApiRequest,
    opts: &QueryOptions,
    key: &str,
) -> Result<HttpResponse, ApiError> {
    let q = &req.query;
    let pretty = req.pretty;
    let read = if q.has("keys") {
        let separator = q
            .get("separator")
            .or_else(|| q.get("seperator"))
            .filter(|s| !s.is_empty());
        Read::KvKeys {
            prefix: key.to_string(),
            separator: separator.map(str::to_string),
        }
    } else if q.has("recurse") {
        Read::KvList {
            prefix: key.to_string(),
        }
    } else {
        if key.is_empty() {
            return Err(missing_key());
        }
        Read::KvGet {
            key: key.to_string(),
        }
    };
    let r = ctx.api.read(opts.to_api(), read).await?;
    let answer = match &r.data {
        ReadData::KvKeys(keys) => render_keys(keys, key, pretty)?,
        ReadData::KvEntries(entries) => render_recurse(entries, pretty)?,
        ReadData::KvEntry(entry) => render_single(entry.as_ref(), q.has("raw"), pretty)?,
        _ => return Err(RequestError::unexpected_data().into()),
    };
    let mut resp = match answer {
        KvAnswer::Json(bytes) => json_bytes(bytes),
        KvAnswer::Raw(bytes) => HttpResponse::Ok()
            .content_type("text/plain")
            .insert_header(("X-Content-Type-Options", "nosniff"))
            .insert_header(("Content-Security-Policy", "sandbox"))
            .body(bytes),
        KvAnswer::NotFound => empty_not_found(),
    };
    r.meta.apply(&mut resp);
    Ok(resp)
}

/// What a KV PUT does, from its query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutMode {
    Set,
    /// `?cas=<index>`.
    Cas(u64),
    /// `?acquire=<session>`.
    Acquire(String),
    /// `?release=<session>`.
    Release(String),
}

/// Build the KV write for a PUT from its query (everything but the body), in Consul's
/// order of checks: the mode and the flags.
pub fn put_op(q: &Query, key: &str) -> Result<(PutMode, u64), ApiError> {
    if key.is_empty() {
        return Err(missing_key());
    }
    conflicting_flags(q, &["cas", "acquire", "release"])?;
    let flags = if q.has("flags") {
        parse_uint(q.get("flags").unwrap_or(""))?
    } else {
        0
    };
    let session = |name: &str| q.get(name).unwrap_or("").to_string();
    let mode = if q.has("cas") {
        PutMode::Cas(parse_uint(q.get("cas").unwrap_or(""))?)
    } else if q.has("acquire") {
        PutMode::Acquire(session("acquire"))
    } else if q.has("release") {
        PutMode::Release(session("release"))
    } else {
        PutMode::Set
    };
    Ok((mode, flags))
}

async fn put(
    ctx: &AgentContext,
    req: &ApiRequest,
    key: &str,
    body: &mut BodyReader<'_>,
) -> Result<HttpResponse, ApiError> {
    let (mode, flags) = put_op(&req.query, key)?;
    // `into`: the store's value type (a Vec today, shared bytes soon).
    #[allow(clippy::useless_conversion)]
    let value = body
        .read(KV_MAX_VALUE_BYTES, kv_too_large)
        .await?
        .to_vec()
        .into();
    let key = key.to_string();
    let op = match mode {
        PutMode::Cas(index) => KvOp::Cas {
            key,
            value,
            flags,
            index,
        },
        PutMode::Set => KvOp::Set { key, value, flags },
        PutMode::Acquire(session) => KvOp::Lock {
            key,
            value,
            flags,
            session,
        },
        PutMode::Release(session) => KvOp::Unlock {
            key,
            value,
            flags,
            session,
        },
    };
    write(ctx, WriteRequest::Kv(op), req.pretty).await
}

/// Build the KV delete from the query, in Consul's order of checks.
pub fn delete_op(q: &Query, key: &str) -> Result<KvOp, ApiError> {
    conflicting_flags(q, &["recurse", "cas"])?;
    if q.has("recurse") {
        return Ok(KvOp::DeleteTree {
            prefix: key.to_string(),
        });
    }
    if key.is_empty() {
        return Err(missing_key());
    }
    if q.has("cas") {
        let index = parse_uint(q.get("cas").unwrap_or(""))?;
        return Ok(KvOp::DeleteCas {
            key: key.to_string(),
            index,
        });
    }
    Ok(KvOp::Delete {
        key: key.to_string(),
    })
}

async fn delete(ctx: &AgentContext, req: &ApiRequest, key: &str) -> Result<HttpResponse, ApiError> {
    let op = delete_op(&req.query, key)?;
    write(ctx, WriteRequest::Kv(op), req.pretty).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(s: &str) -> Query {
        Query::parse(s)
    }

    #[test]
    fn entry_shape_value_base64_session_omitted() {
        let e = KvEntry {
            key: "service/leader".into(),
            value: b"node1".as_slice().into(),
            flags: 3304740253564472344,
            lock_index: 1,
            session: None,
            create_index: 100,
            modify_index: 200,
        };
        let body = String::from_utf8(to_json(&[KvEntryOut::from(&e)], false).unwrap()).unwrap();
        assert_eq!(
            body,
            r#"[{"LockIndex":1,"Key":"service/leader","Flags":3304740253564472344,"Value":"bm9kZTE=","CreateIndex":100,"ModifyIndex":200}]"#
        );
        let locked = KvEntry {
            value: std::sync::Arc::from([]),
            session: Some("abc".into()),
            ..e
        };
        let body = String::from_utf8(to_json(&KvEntryOut::from(&locked), false).unwrap()).unwrap();
        assert_eq!(
            body,
            r#"{"LockIndex":1,"Key":"service/leader","Flags":3304740253564472344,"Value":null,"Session":"abc","CreateIndex":100,"ModifyIndex":200}"#
        );
    }

    #[test]
    fn key_validation() {
        assert!(validate_key("a b/c*+%").is_ok());
        assert!(validate_key("folder/").is_ok());
        assert!(validate_key("a..b").is_ok());
        assert!(validate_key(" lead").is_err());
        assert!(validate_key("trail ").is_err());
        assert!(validate_key("../etc").is_err());
        assert!(validate_key("a/../b").is_err());
        assert!(validate_key("a/..").is_err());
    }

    #[test]
    fn put_query_checks_in_consul_order() {
        assert_eq!(
            put_op(&q(""), ""),
            Err(ApiError::bad_request("Missing key name"))
        );
        assert_eq!(
            put_op(&q("cas=1&acquire=x"), "k"),
            Err(ApiError::bad_request("Conflicting flags: acquire=x&cas=1"))
        );
        assert_eq!(
            put_op(&q("flags=abc"), "k"),
            Err(ApiError::internal(
                "strconv.ParseUint: parsing \"abc\": invalid syntax"
            ))
        );
        assert_eq!(
            put_op(&q("cas=-1"), "k"),
            Err(ApiError::internal(
                "strconv.ParseUint: parsing \"-1\": invalid syntax"
            ))
        );
        assert_eq!(
            put_op(&q("cas"), "k"),
            Err(ApiError::internal(
                "strconv.ParseUint: parsing \"\": invalid syntax"
            ))
        );
        assert_eq!(
            put_op(&q("acquire=s1&flags=3"), "k"),
            Ok((PutMode::Acquire("s1".into()), 3))
        );
        assert_eq!(
            put_op(&q("release=s1"), "k"),
            Ok((PutMode::Release("s1".into()), 0))
        );
        assert_eq!(
            put_op(&q("acquire=a&release=b"), "k"),
            Err(ApiError::bad_request(
                "Conflicting flags: acquire=a&release=b"
            ))
        );
        assert_eq!(
            put_op(&q("flags=18446744073709551615&cas=0"), "k"),
            Ok((PutMode::Cas(0), u64::MAX))
        );
        assert_eq!(put_op(&q(""), "k"), Ok((PutMode::Set, 0)));
    }

    #[test]
    fn delete_query_checks() {
        assert_eq!(
            delete_op(&q("recurse&cas=1"), "k"),
            Err(ApiError::bad_request("Conflicting flags: cas=1&recurse="))
        );
        assert_eq!(
            delete_op(&q(""), ""),
            Err(ApiError::bad_request("Missing key name"))
        );
        assert_eq!(
            delete_op(&q("recurse"), ""),
            Ok(KvOp::DeleteTree {
                prefix: String::new()
            })
        );
        assert_eq!(
            delete_op(&q("cas=5"), "k"),
            Ok(KvOp::DeleteCas {
                key: "k".into(),
                index: 5
            })
        );
        assert_eq!(
            delete_op(&q("cas=x"), "k"),
            Err(ApiError::internal(
                "strconv.ParseUint: parsing \"x\": invalid syntax"
            ))
        );
        assert_eq!(delete_op(&q(""), "k"), Ok(KvOp::Delete { key: "k".into() }));
    }
}
