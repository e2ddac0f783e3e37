//! Response rendering: JSON (compact or 4-space pretty, as Go's MarshalIndent), the
//! query-meta headers and a few small serde helpers for Consul's shapes.

use super::error::ApiError;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use base64::Engine as _;
use protocol::filter::Filter;
use serde::{Serialize, Serializer};

pub const APPLICATION_JSON: &str = "application/json";

/// Serialize `value` as Consul does: compact, or indented by four spaces plus a newline.
pub fn to_json<T: Serialize + ?Sized>(value: &T, pretty: bool) -> Result<Vec<u8>, ApiError> {
    let mut buf = Vec::with_capacity(128);
    let result = if pretty {
        let fmt = serde_json::ser::PrettyFormatter::with_indent(b"    ");
        let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
        value.serialize(&mut ser)
    } else {
        value.serialize(&mut serde_json::Serializer::new(&mut buf))
    };
    result.map_err(|e| ApiError::internal(format!("Failed to encode response: {e}")))?;
    if pretty {
        buf.push(b'\n');
    }
    Ok(buf)
}

/// Serialize a list, keeping only the items `filter` passes (`?filter=`). Each item is
/// tested in the JSON shape the client sees, so selectors name Consul's JSON fields; the
/// kept items are written as the unfiltered answer writes them (same field order).
pub fn to_json_filtered<T: Serialize>(
    items: &[T],
    filter: Option<&Filter>,
    pretty: bool,
) -> Result<Vec<u8>, ApiError> {
    let Some(filter) = filter else {
        return to_json(items, pretty);
    };
    let mut kept = Vec::with_capacity(items.len());
    for item in items {
        if passing_value(filter, item)?.is_some() {
            kept.push(item);
        }
    }
    to_json(&kept, pretty)
}

/// Serialize a map of ID → item (`/v1/agent/services`, `/v1/agent/checks`), keeping the
/// items `filter` passes.
pub fn to_json_map_filtered<T: Serialize>(
    items: &std::collections::BTreeMap<&str, T>,
    filter: Option<&Filter>,
    pretty: bool,
) -> Result<Vec<u8>, ApiError> {
    let Some(filter) = filter else {
        return to_json(items, pretty);
    };
    let mut kept = std::collections::BTreeMap::new();
    for (id, item) in items {
        if passing_value(filter, item)?.is_some() {
            kept.insert(*id, item);
        }
    }
    to_json(&kept, pretty)
}

/// `item` in the JSON shape the client sees, when `filter` passes it. A filter that
/// cannot be applied to the data (a selector into a scalar, a value not of the field's
/// type) is the client's mistake: 400, never an empty or unfiltered list.
pub fn passing_value<T: Serialize>(
    filter: &Filter,
    item: &T,
) -> Result<Option<serde_json::Value>, ApiError> {
    let value = serde_json::to_value(item)
        .map_err(|e| ApiError::internal(format!("Failed to encode response: {e}")))?;
    let passes = filter
        .matches(&value)
        .map_err(|e| ApiError::bad_request(format!("Failed to evaluate filter: {e}")))?;
    Ok(passes.then_some(value))
}

/// A 200 JSON response from already-serialized bytes.
pub fn json_bytes(body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok().content_type(APPLICATION_JSON).body(body)
}

pub fn json_response<T: Serialize + ?Sized>(
    value: &T,
    pretty: bool,
) -> Result<HttpResponse, ApiError> {
    Ok(json_bytes(to_json(value, pretty)?))
}

pub use protocol::api::QueryMeta;

/// A read's meta as X-Consul-* headers.
pub trait MetaHeaders {
    /// Add the headers; the index is never 0 (Consul rewrites 0 to 1 so that clients
    /// don't busy-loop).
    fn apply(&self, resp: &mut HttpResponse);
}

impl MetaHeaders for QueryMeta {
    fn apply(&self, resp: &mut HttpResponse) {
        let h = resp.headers_mut();
        let index = self.index.max(1);
        h.insert(hname("x-consul-index"), hval(&index.to_string()));
        h.insert(
            hname("x-consul-knownleader"),
            hval(if self.known_leader { "true" } else { "false" }),
        );
        h.insert(
            hname("x-consul-lastcontact"),
            hval(&self.last_contact_ms.to_string()),
        );
        h.insert(
            hname("x-consul-effective-consistency"),
            hval(self.consistency.as_str()),
        );
    }
}

fn hname(n: &'static str) -> actix_web::http::header::HeaderName {
    actix_web::http::header::HeaderName::from_static(n)
}

fn hval(v: &str) -> actix_web::http::header::HeaderValue {
    // Only called with ASCII digits and fixed words.
    actix_web::http::header::HeaderValue::from_str(v)
        .unwrap_or_else(|_| actix_web::http::header::HeaderValue::from_static(""))
}

/// A 200 JSON response from serialized bytes, with the read's meta headers.
pub fn json_with_meta(meta: &QueryMeta, body: Vec<u8>) -> HttpResponse {
    let mut resp = json_bytes(body);
    meta.apply(&mut resp);
    resp
}

/// 404 with an empty body (KV misses); meta headers are added by the caller.
pub fn empty_not_found() -> HttpResponse {
    HttpResponse::build(StatusCode::NOT_FOUND).finish()
}

/// `[]byte` fields: standard base64 with padding, `null` when empty.
pub fn base64_or_null<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
    if bytes.is_empty() {
        s.serialize_none()
    } else {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::api::Consistency;
    use serde_json::json;

    #[test]
    fn pretty_is_four_spaces_and_newline() {
        let body = to_json(&json!({"A": [1], "B": {}}), true).unwrap();
        assert_eq!(
            String::from_utf8(body).unwrap(),
            "{\n    \"A\": [\n        1\n    ],\n    \"B\": {}\n}\n"
        );
        let body = to_json(&json!({"A": [1]}), false).unwrap();
        assert_eq!(body, b"{\"A\":[1]}");
    }

    #[test]
    fn meta_headers_never_zero_index() {
        let mut resp = HttpResponse::Ok().finish();
        QueryMeta {
            index: 0,
            known_leader: true,
            last_contact_ms: 0,
            consistency: Consistency::Leader,
        }
        .apply(&mut resp);
        let h = resp.headers();
        assert_eq!(h.get("X-Consul-Index").unwrap(), "1");
        assert_eq!(h.get("X-Consul-KnownLeader").unwrap(), "true");
        assert_eq!(h.get("X-Consul-LastContact").unwrap(), "0");
        assert_eq!(h.get("X-Consul-Effective-Consistency").unwrap(), "leader");
    }

    #[derive(Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Item {
        name: &'static str,
        addr: &'static str,
    }

    #[test]
    fn filtered_items_keep_their_field_order() {
        let items = [
            Item {
                name: "b",
                addr: "x",
            },
            Item {
                name: "a",
                addr: "y",
            },
        ];
        let f = Filter::parse("Addr == y").unwrap();
        let body = to_json_filtered(&items, Some(&f), false).unwrap();
        assert_eq!(body, b"[{\"Name\":\"a\",\"Addr\":\"y\"}]");
        let map: std::collections::BTreeMap<&str, &Item> =
            items.iter().map(|i| (i.name, i)).collect();
        let body = to_json_map_filtered(&map, Some(&f), false).unwrap();
        assert_eq!(body, b"{\"a\":{\"Name\":\"a\",\"Addr\":\"y\"}}");
        let bad = Filter::parse("Addr.x == y").unwrap();
        assert!(to_json_filtered(&items, Some(&bad), false).is_err());
    }
}
