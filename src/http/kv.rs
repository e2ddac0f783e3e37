//! `/v1/kv/:key`: GET (single, `?recurse`, `?keys&separator`, `?raw`), PUT (`?flags`,
//! `?cas`), DELETE (`?recurse`, `?cas`), with Consul's index semantics.

use super::body::{kv_too_large, KV_MAX_VALUE_BYTES};
use super::error::ApiError;
use super::query::{parse_uint, Query, QueryOptions};
use super::read::read;
use super::render::{base64_or_null, empty_not_found, json_bytes, to_json};
use super::{write, ApiRequest, BodyReader};
use crate::agent::AgentContext;
use actix_web::http::Method;
use actix_web::HttpResponse;
use protocol::store::{Command, KvEntry, KvOp, Store, Table};
use serde::Serialize;
use std::cell::Cell;

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

/// What a KV read produced (rendered under the read lock).
pub enum KvAnswer {
    Json(Vec<u8>),
    Raw(Vec<u8>),
    NotFound,
}

/// Index of a single key: its ModifyIndex, or the KV table index when it is missing.
pub fn key_index(store: &Store, key: &str) -> u64 {
    match store.kv_get(key) {
        Some(e) => e.modify_index,
        None => store.table_index(Table::Kv),
    }
}

/// The index of a `?recurse`/`?keys` read (the prefix's max ModifyIndex, tombstones
/// included), remembered across the wake-ups of one blocking query.
///
/// A parked query re-reads its index every time any entry is applied (catalog churn,
/// health updates, no-ops); recomputing the prefix index scans every key and tombstone
/// under the prefix under the read lock. KV contents only change through an entry that
/// moves the KV table index (Raft indexes only grow) or through a tombstone reap (which
/// lowers the tombstone count), so while that pair is unchanged the prefix index is too,
/// and the remembered value is exact, not an estimate.
pub struct PrefixIndexWatch<'p> {
    prefix: &'p str,
    /// ((KV table index, tombstone count), prefix index) of the last scan.
    last: Cell<Option<((u64, usize), u64)>>,
    scans: Cell<u64>,
}

impl<'p> PrefixIndexWatch<'p> {
    pub fn new(prefix: &'p str) -> PrefixIndexWatch<'p> {
        PrefixIndexWatch {
            prefix,
            last: Cell::new(None),
            scans: Cell::new(0),
        }
    }

    /// Always equal to `store.kv_prefix_index(prefix)`; scans only when KV changed.
    pub fn index(&self, store: &Store) -> u64 {
        let kv_state = (store.table_index(Table::Kv), store.kv_tombstone_count());
        if let Some((seen, index)) = self.last.get() {
            if seen == kv_state {
                return index;
            }
        }
        let index = store.kv_prefix_index(self.prefix);
        self.scans.set(self.scans.get() + 1);
        self.last.set(Some((kv_state, index)));
        index
    }

    /// How many prefix scans `index` has done (for tests and diagnostics).
    pub fn scans(&self) -> u64 {
        self.scans.get()
    }
}

/// The GET variants, as pure functions of the store (tested directly).
pub fn render_keys(
    store: &Store,
    prefix: &str,
    separator: Option<&str>,
    pretty: bool,
) -> Result<KvAnswer, ApiError> {
    let keys = store.kv_keys(prefix, separator);
    if keys.is_empty() && !prefix.is_empty() {
        return Ok(KvAnswer::NotFound);
    }
    Ok(KvAnswer::Json(to_json(&keys, pretty)?))
}

pub fn render_recurse(store: &Store, prefix: &str, pretty: bool) -> Result<KvAnswer, ApiError> {
    let entries: Vec<KvEntryOut<'_>> = store
        .kv_list(prefix)
        .into_iter()
        .map(KvEntryOut::from)
        .collect();
    if entries.is_empty() {
        return Ok(KvAnswer::NotFound);
    }
    Ok(KvAnswer::Json(to_json(&entries, pretty)?))
}

pub fn render_single(
    store: &Store,
    key: &str,
    raw: bool,
    pretty: bool,
) -> Result<KvAnswer, ApiError> {
    match store.kv_get(key) {
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
    let prefix_index = PrefixIndexWatch::new(key);
    let (meta, answer) = if q.has("keys") {
        let separator = q
            .get("separator")
            .or_else(|| q.get("seperator"))
            .filter(|s| !s.is_empty());
        read(
            ctx,
            opts,
            |s| prefix_index.index(s),
            |s, _| render_keys(s, key, separator, pretty),
        )
        .await?
    } else if q.has("recurse") {
        read(
            ctx,
            opts,
            |s| prefix_index.index(s),
            |s, _| render_recurse(s, key, pretty),
        )
        .await?
    } else {
        if key.is_empty() {
            return Err(missing_key());
        }
        let raw = q.has("raw");
        read(
            ctx,
            opts,
            |s| key_index(s, key),
            |s, _| render_single(s, key, raw, pretty),
        )
        .await?
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
    meta.apply(&mut resp);
    Ok(resp)
}

/// Until sessions exist, say so plainly instead of pretending a lock was taken.
pub const SESSIONS_UNSUPPORTED: &str =
    "Session locking (?acquire / ?release) is not supported yet: cairn has no sessions in this version";

/// Build the KV write for a PUT from its query (everything but the body), in Consul's
/// order of checks.
pub fn put_op(q: &Query, key: &str) -> Result<(Option<u64>, u64), ApiError> {
    if key.is_empty() {
        return Err(missing_key());
    }
    conflicting_flags(q, &["cas", "acquire", "release"])?;
    let flags = if q.has("flags") {
        parse_uint(q.get("flags").unwrap_or(""))?
    } else {
        0
    };
    let cas = if q.has("cas") {
        Some(parse_uint(q.get("cas").unwrap_or(""))?)
    } else {
        None
    };
    if q.has("acquire") || q.has("release") {
        return Err(ApiError::internal(SESSIONS_UNSUPPORTED));
    }
    Ok((cas, flags))
}

async fn put(
    ctx: &AgentContext,
    req: &ApiRequest,
    key: &str,
    body: &mut BodyReader<'_>,
) -> Result<HttpResponse, ApiError> {
    let (cas, flags) = put_op(&req.query, key)?;
    let value = body.read(KV_MAX_VALUE_BYTES, kv_too_large).await?.to_vec();
    let key = key.to_string();
    let op = match cas {
        Some(index) => KvOp::Cas {
            key,
            value,
            flags,
            index,
        },
        None => KvOp::Set { key, value, flags },
    };
    write(ctx, Command::Kv(op), req.pretty).await
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
    write(ctx, Command::Kv(op), req.pretty).await
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
            put_op(&q("acquire=s1"), "k"),
            Err(ApiError::internal(SESSIONS_UNSUPPORTED))
        );
        assert_eq!(
            put_op(&q("flags=18446744073709551615&cas=0"), "k"),
            Ok((Some(0), u64::MAX))
        );
        assert_eq!(put_op(&q(""), "k"), Ok((None, 0)));
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

    /// Deterministic xorshift, so a failure replays.
    fn next(state: &mut u64) -> u64 {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        *state
    }

    #[test]
    fn prefix_index_watch_always_equals_a_fresh_scan() {
        const KEYS: [&str; 8] = ["a", "a/b", "a/b/c", "a/c", "ab", "b", "b/x", ""];
        const PREFIXES: [&str; 5] = ["", "a", "a/", "a/b", "zz"];
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut store = Store::new();
        let watches: Vec<PrefixIndexWatch<'_>> =
            PREFIXES.iter().map(|p| PrefixIndexWatch::new(p)).collect();
        for index in 1..3000u64 {
            let key = KEYS[(next(&mut rng) % KEYS.len() as u64) as usize].to_string();
            match next(&mut rng) % 6 {
                0 | 1 => {
                    let op = KvOp::Set {
                        key,
                        value: vec![1],
                        flags: 0,
                    };
                    store.apply(index, &Command::Kv(op));
                }
                2 => {
                    store.apply(index, &Command::Kv(KvOp::Delete { key }));
                }
                3 => {
                    store.apply(index, &Command::Kv(KvOp::DeleteTree { prefix: key }));
                }
                4 => {
                    store.reap_tombstones(index.saturating_sub(next(&mut rng) % 200));
                    store.apply_noop(index);
                }
                _ => store.apply_noop(index),
            }
            for (watch, prefix) in watches.iter().zip(PREFIXES) {
                assert_eq!(
                    watch.index(&store),
                    store.kv_prefix_index(prefix),
                    "prefix {prefix:?} after entry {index}"
                );
            }
        }
    }

    #[test]
    fn prefix_index_watch_does_not_rescan_when_kv_is_unchanged() {
        let mut store = Store::new();
        let set = |key: &str| {
            Command::Kv(KvOp::Set {
                key: key.into(),
                value: vec![],
                flags: 0,
            })
        };
        store.apply(1, &set("app/x"));
        store.apply(2, &set("other"));
        let watch = PrefixIndexWatch::new("app/");
        assert_eq!(watch.index(&store), 1);
        // Applied-index changes that leave KV alone (catalog writes, no-ops) wake the
        // query but must not cost a scan.
        for index in 3..100 {
            store.apply_noop(index);
            assert_eq!(watch.index(&store), 1);
        }
        assert_eq!(watch.scans(), 1);
        store.apply(100, &set("app/y"));
        assert_eq!(watch.index(&store), 100);
        store.apply(
            101,
            &Command::Kv(KvOp::Delete {
                key: "app/y".into(),
            }),
        );
        assert_eq!(watch.index(&store), 101);
        // Reaping the tombstone moves the prefix index back without a KV table bump.
        assert_eq!(store.reap_tombstones(101), 1);
        assert_eq!(watch.index(&store), 1);
        assert_eq!(watch.scans(), 4);
    }
}
