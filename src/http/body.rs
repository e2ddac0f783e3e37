//! Request bodies: bounded reading and Consul's forgiving JSON decoding (field names are
//! matched case-insensitively and snake_case aliases are accepted, while the keys of
//! user-owned maps such as `Meta` keep their exact spelling).

use super::error::ApiError;
use actix_web::web::{Bytes, BytesMut};
use futures::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Largest KV value (Consul's `kv_max_value_size`, 512 KiB).
pub const KV_MAX_VALUE_BYTES: usize = 512 * 1024;
/// Largest JSON body accepted by the other endpoints.
pub const JSON_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// A whole request body must arrive within this long once its headers have. actix bounds
/// the request head (5 s) and idle keep-alive (5 s) but not the body, so a client that
/// trickles a body, or promises more than it sends, would hold its connection forever.
/// 60 s still carries the largest body at about 70 KB/s.
pub const BODY_READ_TIMEOUT_SECS: u64 = 60;

/// Consul's modern 413 text, with the legacy `Value exceeds` wording Vault greps for.
pub fn kv_too_large(body_bytes: u64) -> ApiError {
    ApiError::TooLarge(format!(
        "Request body({body_bytes} bytes) too large, max size: {KV_MAX_VALUE_BYTES} bytes. \
         Value exceeds {KV_MAX_VALUE_BYTES} byte limit. \
         See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size."
    ))
}

pub fn json_too_large(body_bytes: u64) -> ApiError {
    ApiError::TooLarge(format!(
        "Request body({body_bytes} bytes) too large, max size: {JSON_MAX_BODY_BYTES} bytes."
    ))
}

/// Read the whole body, refusing more than `limit` bytes (checked against Content-Length
/// first so an oversized upload is refused before it is read) and giving up after
/// `timeout` (408).
pub async fn read_limited<S, E>(
    content_length: Option<u64>,
    payload: &mut S,
    limit: usize,
    too_large: fn(u64) -> ApiError,
    timeout: std::time::Duration,
) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    if let Some(len) = content_length {
        if len > limit as u64 {
            return Err(too_large(len));
        }
    }
    let read_all = async {
        let mut buf = BytesMut::new();
        while let Some(chunk) = payload.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::bad_request(format!("Request body read failed: {e}")))?;
            let total = buf.len().saturating_add(chunk.len());
            if total > limit {
                return Err(too_large(total as u64));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf.freeze())
    };
    tokio::time::timeout(timeout, read_all)
        .await
        .unwrap_or_else(|_| {
            Err(ApiError::RequestTimeout(format!(
                "Request body read timed out after {}s",
                timeout.as_secs_f64()
            )))
        })
}

/// Object keys whose *children* are user data: their keys are kept verbatim.
const USER_MAPS: &[&str] = &[
    "meta",
    "nodemeta",
    "servicemeta",
    "taggedaddresses",
    "header",
];

/// `TaggedAddresses`, `tagged_addresses` and `taggedaddresses` all become `taggedaddresses`.
pub fn canonical_key(key: &str) -> String {
    key.chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// Rewrite every struct-field key to its canonical form and drop `null` members (Go
/// decodes `null` as "leave the zero value").
pub fn normalize(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(normalize_object(map, true)),
        Value::Array(items) => Value::Array(items.into_iter().map(normalize).collect()),
        other => other,
    }
}

fn normalize_object(map: Map<String, Value>, fields: bool) -> Map<String, Value> {
    let mut out = Map::with_capacity(map.len());
    for (key, value) in map {
        if value.is_null() {
            continue;
        }
        if !fields {
            // A user map: keep the key, but its values may be structs (service tagged
            // addresses carry {Address, Port}).
            out.insert(key, normalize(value));
            continue;
        }
        let canon = canonical_key(&key);
        let value = match value {
            Value::Object(inner) if USER_MAPS.contains(&canon.as_str()) => {
                Value::Object(normalize_object(inner, false))
            }
            other => normalize(other),
        };
        out.insert(canon, value);
    }
    out
}

/// Decode a JSON body into `T`, whose serde names are the canonical (lowercase, no
/// underscore) field names. Errors read `Request decode failed: …` (400).
pub fn decode_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let raw: Value = serde_json::from_slice(body).map_err(decode_failed)?;
    if !raw.is_object() {
        // serde would fill a struct from an array positionally; Go refuses it.
        return Err(ApiError::bad_request(format!(
            "Request decode failed: expected a JSON object, found {}",
            json_kind(&raw)
        )));
    }
    serde_json::from_value(normalize(raw)).map_err(decode_failed)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn decode_failed(e: serde_json::Error) -> ApiError {
    ApiError::bad_request(format!("Request decode failed: {e}"))
}

/// Accept a duration as a Go duration string or as integer nanoseconds; answer the Go
/// string form (what Consul renders back).
pub fn duration_field(value: &Value) -> Result<String, ApiError> {
    match value {
        Value::String(s) if s.is_empty() => Ok(String::new()),
        Value::String(s) => super::query::parse_go_duration(s)
            .map(super::query::format_go_duration)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Request decode failed: time: invalid duration {s:?}"
                ))
            }),
        Value::Number(n) => n
            .as_u64()
            .map(|ns| super::query::format_go_duration(std::time::Duration::from_nanos(ns)))
            .ok_or_else(|| {
                ApiError::bad_request(format!("Request decode failed: invalid duration {n}"))
            }),
        Value::Null => Ok(String::new()),
        other => Err(ApiError::bad_request(format!(
            "Request decode failed: invalid duration {other}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;
    use std::collections::BTreeMap;

    #[derive(Debug, Deserialize, Default, PartialEq)]
    #[serde(default)]
    struct Probe {
        #[serde(rename = "taggedaddresses")]
        tagged: BTreeMap<String, Value>,
        meta: BTreeMap<String, String>,
        name: String,
        port: u16,
    }

    #[test]
    fn keys_are_case_and_underscore_insensitive_except_user_maps() {
        let v = normalize(json!({
            "Tagged_Addresses": {"LAN": {"Address": "1.2.3.4", "PORT": 80}},
            "META": {"Version": "2"},
            "NAME": "web",
            "port": 80,
            "Extra": null
        }));
        assert_eq!(
            v,
            json!({
                "taggedaddresses": {"LAN": {"address": "1.2.3.4", "port": 80}},
                "meta": {"Version": "2"},
                "name": "web",
                "port": 80
            })
        );
    }

    #[test]
    fn decode_errors_are_400_with_prefix() {
        let bad: Result<Probe, _> = decode_json(b"{not json");
        match bad {
            Err(ApiError::BadRequest(t)) => {
                assert!(t.starts_with("Request decode failed: "), "{t}")
            }
            other => panic!("{other:?}"),
        }
        let wrong_type: Result<Probe, _> = decode_json(br#"{"Port":"80"}"#);
        match wrong_type {
            Err(ApiError::BadRequest(t)) => assert!(t.contains("invalid type"), "{t}"),
            other => panic!("{other:?}"),
        }
        let ok: Probe = decode_json(br#"{"Name":"x","Port":null}"#).unwrap();
        assert_eq!(ok.name, "x");
    }

    #[test]
    fn durations_accept_strings_and_nanoseconds() {
        assert_eq!(duration_field(&json!("10s")).unwrap(), "10s");
        assert_eq!(duration_field(&json!(90_000_000_000u64)).unwrap(), "1m30s");
        assert_eq!(duration_field(&json!("")).unwrap(), "");
        assert!(duration_field(&json!("ten")).is_err());
        assert!(duration_field(&json!(true)).is_err());
    }

    fn chunks(parts: Vec<&'static [u8]>) -> impl Stream<Item = Result<Bytes, String>> + Unpin {
        futures::stream::iter(parts.into_iter().map(|p| Ok(Bytes::from_static(p))))
    }

    #[tokio::test]
    async fn body_limits_without_content_length_errors_and_timeout() {
        use std::time::Duration;
        let long = Duration::from_secs(5);
        let mut ok = chunks(vec![b"ab", b"cd"]);
        assert_eq!(
            read_limited(None, &mut ok, 4, kv_too_large, long).await,
            Ok(Bytes::from_static(b"abcd"))
        );
        // Chunked (no Content-Length) over the cap: refused as soon as it passes it.
        let mut big = chunks(vec![b"abc", b"de"]);
        let err = read_limited(None, &mut big, 4, json_too_large, long).await;
        assert_eq!(
            err.unwrap_err().text(),
            format!("Request body(5 bytes) too large, max size: {JSON_MAX_BODY_BYTES} bytes.")
        );
        // Content-Length over the cap: refused before reading anything.
        let mut unread = futures::stream::pending::<Result<Bytes, String>>();
        let err = read_limited(Some(5), &mut unread, 4, kv_too_large, long).await;
        assert_eq!(
            err.unwrap_err().status(),
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE
        );
        // A broken stream is a 400.
        let mut broken = futures::stream::iter(vec![Err::<Bytes, _>("reset".to_string())]);
        assert_eq!(
            read_limited(None, &mut broken, 4, kv_too_large, long).await,
            Err(ApiError::bad_request("Request body read failed: reset"))
        );
        // A body that stops arriving: 408 once the time is up.
        let mut stalled = chunks(vec![b"a"]).chain(futures::stream::pending());
        let err = read_limited(
            None,
            &mut stalled,
            4,
            kv_too_large,
            Duration::from_millis(50),
        )
        .await
        .unwrap_err();
        assert_eq!(err.status(), actix_web::http::StatusCode::REQUEST_TIMEOUT);
        assert_eq!(err.text(), "Request body read timed out after 0.05s");
    }

    #[test]
    fn kv_413_text_mentions_both_wordings() {
        let t = kv_too_large(600_000).text();
        assert!(
            t.starts_with("Request body(600000 bytes) too large, max size: 524288 bytes."),
            "{t}"
        );
        assert!(t.contains("Value exceeds 524288 byte limit"), "{t}");
    }
}
