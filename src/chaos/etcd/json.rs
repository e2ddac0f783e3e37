//! The etcd 3.4 v3 JSON gateway's request and response bodies, as far as the chaos
//! target uses them (grpc-gateway over etcdserverpb: keys and values are base64, int64
//! fields are JSON strings, fields holding their default value are left out).
//!
//! Pure: builders return JSON values, parsers take bytes. Nothing here panics on odd
//! input; a body that does not fit is an `Err` with a short reason.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use serde::{Deserialize, Deserializer};
use serde_json::{json, Value};

/// `/v3/kv/range` for one key. `serializable`: answer from the member's local state
/// without a quorum round (etcd's stale read).
pub fn range_key(key: &str, serializable: bool) -> Value {
    let mut body = json!({ "key": b64(key.as_bytes()) });
    if serializable {
        body["serializable"] = Value::Bool(true);
    }
    body
}

/// `/v3/kv/range` over every key starting with `prefix`, serializable.
pub fn range_prefix_serializable(prefix: &str) -> Value {
    json!({
        "key": b64(prefix.as_bytes()),
        "range_end": b64(&prefix_range_end(prefix.as_bytes())),
        "serializable": true,
    })
}

/// `/v3/kv/put`.
pub fn put(key: &str, value: &str) -> Value {
    json!({ "key": b64(key.as_bytes()), "value": b64(value.as_bytes()) })
}

/// `/v3/kv/deleterange` for one key.
pub fn delete(key: &str) -> Value {
    json!({ "key": b64(key.as_bytes()) })
}

/// `/v3/kv/txn` that puts `value` if the key's mod_revision is `expect`, or, for
/// `None`, if the key does not exist (version 0: etcd has no "absent" comparison, and
/// a deleted key's version is 0 again). Enum names as the 3.4 gateway spells them.
pub fn cas(key: &str, expect: Option<u64>, value: &str) -> Value {
    let key64 = b64(key.as_bytes());
    let compare = match expect {
        Some(revision) => json!({
            "key": key64, "target": "MOD", "result": "EQUAL",
            "mod_revision": revision.to_string(),
        }),
        None => json!({
            "key": key64, "target": "VERSION", "result": "EQUAL", "version": "0",
        }),
    };
    json!({
        "compare": [compare],
        "success": [{ "request_put": { "key": key64, "value": b64(value.as_bytes()) } }],
    })
}

/// etcd's `GetPrefixRangeEnd`: the prefix with its last byte below 0xff incremented and
/// what follows dropped; `\0` (every key) if there is no such byte.
fn prefix_range_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0]
}

fn b64(bytes: &[u8]) -> String {
    BASE64.encode(bytes)
}

/// grpc-gateway writes int64/uint64 as strings; accept numbers too, and missing = 0.
fn int64<'de, D: Deserializer<'de>>(de: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Int {
        Text(String),
        Number(u64),
    }
    match Option::<Int>::deserialize(de)? {
        None => Ok(0),
        Some(Int::Number(n)) => Ok(n),
        Some(Int::Text(text)) => text.parse().map_err(serde::de::Error::custom),
    }
}

#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Header {
    #[serde(default, deserialize_with = "int64", alias = "memberId")]
    pub member_id: u64,
    #[serde(default, deserialize_with = "int64", alias = "raftTerm")]
    pub raft_term: u64,
}

#[derive(Debug, Deserialize)]
struct RawKv {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
    #[serde(default, deserialize_with = "int64", alias = "modRevision")]
    mod_revision: u64,
}

#[derive(Debug, Deserialize)]
struct RawRange {
    #[serde(default)]
    kvs: Vec<RawKv>,
}

/// One key as a range returned it, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: String,
    pub mod_revision: u64,
}

/// The keys a `/v3/kv/range` answer holds (none: the key does not exist).
pub fn parse_range(body: &[u8]) -> Result<Vec<Kv>, String> {
    let raw: RawRange = parse(body)?;
    raw.kvs
        .into_iter()
        .map(|kv| {
            Ok(Kv {
                key: decode_text(&kv.key, "key")?,
                value: decode_text(&kv.value, "value")?,
                mod_revision: kv.mod_revision,
            })
        })
        .collect()
}

#[derive(Debug, Deserialize)]
struct RawTxn {
    #[serde(default)]
    succeeded: bool,
}

/// Whether a `/v3/kv/txn` took its success branch (a missing field is `false`, the
/// gateway's spelling of it).
pub fn parse_txn(body: &[u8]) -> Result<bool, String> {
    parse::<RawTxn>(body).map(|txn| txn.succeeded)
}

/// Checks that a put / deleterange answer is the JSON object a success is.
pub fn parse_ack(body: &[u8]) -> Result<(), String> {
    parse::<serde_json::Map<String, Value>>(body).map(|_| ())
}

/// `/v3/maintenance/status`: which member answered and whom it follows.
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Status {
    #[serde(default)]
    pub header: Header,
    #[serde(default, deserialize_with = "int64")]
    pub leader: u64,
    #[serde(default, deserialize_with = "int64", alias = "raftTerm")]
    pub raft_term: u64,
}

impl Status {
    /// The answering member says it leads (leader 0 = it knows of no leader).
    pub fn is_leader(&self) -> bool {
        self.leader != 0 && self.leader == self.header.member_id
    }
}

pub fn parse_status(body: &[u8]) -> Result<Status, String> {
    parse(body)
}

/// The gateway's error body: `{"error": "...", "code": 14, "message": "..."}` (older
/// and newer gateways fill one or both texts).
#[derive(Debug, Default, Deserialize)]
struct RawError {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// The error text of a non-200 answer: the gateway's message if the body is its error
/// JSON, else the body itself (cut short), else an empty string.
pub fn error_message(body: &[u8]) -> String {
    if let Ok(raw) = serde_json::from_slice::<RawError>(body) {
        if let Some(text) = raw.message.or(raw.error).filter(|t| !t.is_empty()) {
            return text;
        }
    }
    String::from_utf8_lossy(body).chars().take(200).collect()
}

/// Every gateway answer is a JSON object; serde would also take an array for a struct.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, String> {
    let bad = |e: serde_json::Error| format!("unexpected etcd answer ({e})");
    match serde_json::from_slice::<Value>(body).map_err(bad)? {
        object @ Value::Object(_) => serde_json::from_value(object).map_err(bad),
        other => {
            let shown: String = other.to_string().chars().take(100).collect();
            Err(format!("unexpected etcd answer (not an object: {shown})"))
        }
    }
}

fn decode_text(field: &str, what: &str) -> Result<String, String> {
    let bytes = BASE64
        .decode(field)
        .map_err(|e| format!("etcd {what} is not base64 ({e})"))?;
    String::from_utf8(bytes).map_err(|_| format!("etcd {what} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_bodies_name_the_key_in_base64_and_ask_serializable_only_for_stale() {
        assert_eq!(range_key("k1", false), json!({ "key": "azE=" }));
        assert_eq!(
            range_key("k1", true),
            json!({ "key": "azE=", "serializable": true })
        );
        assert_eq!(
            range_prefix_serializable("chaos/"),
            json!({ "key": "Y2hhb3Mv", "range_end": "Y2hhb3Mw", "serializable": true })
        );
    }

    #[test]
    fn prefix_range_end_follows_etcd() {
        assert_eq!(prefix_range_end(b"ab"), b"ac".to_vec());
        assert_eq!(prefix_range_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_range_end(b"\xff\xff"), vec![0]);
        assert_eq!(prefix_range_end(b""), vec![0]);
    }

    #[test]
    fn put_and_delete_bodies() {
        assert_eq!(put("k", "v"), json!({ "key": "aw==", "value": "dg==" }));
        assert_eq!(delete("k"), json!({ "key": "aw==" }));
    }

    #[test]
    fn cas_on_a_revision_compares_mod_revision_as_a_string() {
        assert_eq!(
            cas("k", Some(42), "v"),
            json!({
                "compare": [{ "key": "aw==", "target": "MOD", "result": "EQUAL", "mod_revision": "42" }],
                "success": [{ "request_put": { "key": "aw==", "value": "dg==" } }],
            })
        );
    }

    #[test]
    fn cas_on_absent_compares_version_zero() {
        assert_eq!(
            cas("k", None, "v")["compare"],
            json!([{ "key": "aw==", "target": "VERSION", "result": "EQUAL", "version": "0" }])
        );
    }

    #[test]
    fn a_range_answer_with_string_int64s_is_decoded() {
        let body =
            br#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437",
            "revision":"7","raft_term":"2"},"kvs":[{"key":"azE=","create_revision":"5",
            "mod_revision":"7","version":"2","value":"djI="}],"count":"1"}"#;
        assert_eq!(
            parse_range(body),
            Ok(vec![Kv {
                key: "k1".into(),
                value: "v2".into(),
                mod_revision: 7
            }])
        );
    }

    #[test]
    fn a_range_answer_without_kvs_means_absent_and_missing_fields_default() {
        assert_eq!(parse_range(br#"{"header":{"revision":"7"}}"#), Ok(vec![]));
        assert_eq!(parse_range(b"{}"), Ok(vec![]));
        // An empty value is left out by the gateway.
        let kvs = parse_range(br#"{"kvs":[{"key":"aw==","mod_revision":3}]}"#).unwrap();
        assert_eq!(kvs[0].value, "");
        assert_eq!(kvs[0].mod_revision, 3);
    }

    #[test]
    fn odd_range_answers_are_errors_not_panics() {
        for body in [
            &b""[..],
            b"[]",
            b"null",
            b"{\"kvs\":{}}",
            b"{\"kvs\":[{\"key\":\"***\"}]}",
            b"{\"kvs\":[{\"key\":\"aw==\",\"mod_revision\":\"x\"}]}",
            b"{\"kvs\":[{\"key\":\"aw==\",\"mod_revision\":-1}]}",
            b"{\"kvs\":[{\"key\":\"/w==\"}]}",
        ] {
            assert!(
                parse_range(body).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn txn_succeeded_missing_means_false() {
        assert_eq!(
            parse_txn(br#"{"header":{},"succeeded":true,"responses":[{}]}"#),
            Ok(true)
        );
        assert_eq!(parse_txn(br#"{"header":{"revision":"9"}}"#), Ok(false));
        assert!(parse_txn(b"not json").is_err());
        assert!(parse_txn(br#"{"succeeded":"yes"}"#).is_err());
    }

    #[test]
    fn acks_must_be_objects() {
        assert_eq!(parse_ack(br#"{"header":{"revision":"3"}}"#), Ok(()));
        assert_eq!(parse_ack(br#"{"header":{},"deleted":"1"}"#), Ok(()));
        assert!(parse_ack(b"").is_err());
        assert!(parse_ack(b"[1]").is_err());
    }

    #[test]
    fn status_tells_whether_the_member_leads() {
        let leader = br#"{"header":{"member_id":"42","raft_term":"3"},"version":"3.4.23",
            "dbSize":"20480","leader":"42","raftIndex":"9","raftTerm":"3"}"#;
        let status = parse_status(leader).unwrap();
        assert!(status.is_leader());
        assert_eq!(status.raft_term, 3);
        let follower = parse_status(br#"{"header":{"member_id":"7"},"leader":"42"}"#).unwrap();
        assert!(!follower.is_leader());
        let lost = parse_status(br#"{"header":{"member_id":"7"}}"#).unwrap();
        assert!(!lost.is_leader(), "leader 0 means no leader known");
        assert!(parse_status(br#"{"leader":{}}"#).is_err());
    }

    #[test]
    fn error_messages_come_from_the_gateway_body_or_the_raw_text() {
        assert_eq!(
            error_message(
                br#"{"error":"etcdserver: request timed out","code":14,"message":"etcdserver: request timed out"}"#
            ),
            "etcdserver: request timed out"
        );
        assert_eq!(
            error_message(br#"{"error":"etcdserver: leader changed","code":14}"#),
            "etcdserver: leader changed"
        );
        assert_eq!(error_message(b"Bad Gateway"), "Bad Gateway");
        assert_eq!(error_message(b""), "");
        assert_eq!(error_message(br#"{"code":"weird"}"#), r#"{"code":"weird"}"#);
    }
}
