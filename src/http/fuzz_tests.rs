//! Seeded, bounded property tests of the HTTP edge with hostile input: random and mutated
//! JSON bodies, random KV keys through the real app (accepted keys round-trip exactly,
//! refused ones change nothing), and random paths and query strings (never a 5xx
//! that Consul would not give, never a panic).

use super::body::decode_json;
use super::catalog::{deregister_command, register_command, DeregisterBody, RegisterBody};
use super::e2e::test_ctx;
use super::error::ApiError;
use super::kv::{delete_op, put_op, validate_key};
use super::query::{parse_go_duration, Query, QueryOptions};
use crate::{send, test_app};
use actix_web::http::StatusCode;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Map, Value};

/// Field names of the register and deregister bodies, in assorted spellings.
const FIELDS: &[&str] = &[
    "Node",
    "node",
    "NODE",
    "Address",
    "address",
    "ID",
    "Datacenter",
    "TaggedAddresses",
    "tagged_addresses",
    "NodeMeta",
    "Service",
    "Check",
    "Checks",
    "SkipNodeUpdate",
    "Tags",
    "Port",
    "Weights",
    "Passing",
    "Warning",
    "Meta",
    "Kind",
    "EnableTagOverride",
    "CheckID",
    "Name",
    "Status",
    "ServiceID",
    "service_id",
    "Definition",
    "HTTP",
    "TCP",
    "Interval",
    "Timeout",
    "DeregisterCriticalServiceAfter",
    "Notes",
    "Output",
    "lan",
    "",
    "é",
    "\u{0}",
];

fn random_string(rng: &mut StdRng) -> String {
    match rng.random_range(0..5) {
        0 => FIELDS[rng.random_range(0..FIELDS.len())].to_string(),
        1 => [
            "passing", "critical", "10s", "1.2.3.4", "dc1", "-1", "web", "::1",
        ][rng.random_range(0..8)]
        .to_string(),
        2 => (0..rng.random_range(0..12))
            .map(|_| char::from_u32(rng.random_range(0..0x3000)).unwrap_or('?'))
            .collect(),
        3 => "x".repeat(rng.random_range(0..300)),
        _ => String::new(),
    }
}

fn random_number(rng: &mut StdRng) -> Value {
    match rng.random_range(0..6) {
        0 => json!(rng.random_range(0..70_000)),
        1 => json!(-rng.random_range(1..1_000_000i64)),
        2 => json!(u64::MAX),
        3 => json!(i64::MIN),
        4 => json!(rng.random::<f64>() * 1e300),
        _ => json!(0.5),
    }
}

fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    let leaf = depth == 0 || rng.random_bool(0.4);
    match rng.random_range(0..if leaf { 4 } else { 6 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.random()),
        2 => random_number(rng),
        3 => Value::String(random_string(rng)),
        4 => Value::Array(
            (0..rng.random_range(0..5))
                .map(|_| random_value(rng, depth - 1))
                .collect(),
        ),
        _ => Value::Object(random_object(rng, depth - 1)),
    }
}

fn random_object(rng: &mut StdRng, depth: u32) -> Map<String, Value> {
    (0..rng.random_range(0..7))
        .map(|_| (random_string(rng), random_value(rng, depth)))
        .collect()
}

/// A body that is often nearly right: a plausible registration with random parts.
fn plausible_register(rng: &mut StdRng) -> Value {
    let mut body = json!({
        "Node": "n1",
        "Address": "10.0.0.1",
        "Service": {"Service": "web", "Port": 80, "Tags": ["a"],
                    "TaggedAddresses": {"lan": {"Address": "10.0.0.2", "Port": 81}}},
        "Check": {"Name": "c", "Status": "passing", "ServiceID": "web",
                  "Definition": {"Interval": "10s", "Timeout": 1000000000}},
    });
    for _ in 0..rng.random_range(1..4) {
        let path: &[&str] = [
            &["Node"][..],
            &["Address"],
            &["ID"],
            &["Service", "Port"],
            &["Service", "Tags"],
            &["Service", "Weights"],
            &["Service", "TaggedAddresses", "lan", "Port"],
            &["Check", "Status"],
            &["Check", "Definition", "Interval"],
            &["Checks"],
            &["NodeMeta"],
        ][rng.random_range(0..11)];
        let mut at = &mut body;
        for key in &path[..path.len() - 1] {
            at = &mut at[*key];
        }
        at[path[path.len() - 1]] = random_value(rng, 3);
    }
    body
}

fn mutate_bytes(rng: &mut StdRng, mut bytes: Vec<u8>) -> Vec<u8> {
    for _ in 0..rng.random_range(1..4) {
        if bytes.is_empty() {
            bytes.push(rng.random());
            continue;
        }
        let at = rng.random_range(0..bytes.len());
        match rng.random_range(0..4) {
            0 => bytes[at] = rng.random(),
            1 => {
                bytes.remove(at);
            }
            2 => bytes.insert(at, b"{}[]\",:\\0-e"[rng.random_range(0..11)]),
            _ => bytes.truncate(at),
        }
    }
    bytes
}

fn assert_decode_error(e: &ApiError, body: &[u8]) {
    match e {
        ApiError::BadRequest(t) if t.starts_with("Request decode failed: ") => {}
        other => panic!(
            "{other:?} for {:?}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        ),
    }
}

#[test]
fn random_and_mutated_bodies_decode_or_fail_with_400() {
    let mut rng = StdRng::seed_from_u64(0xb0d1);
    let mut decoded = 0;
    for round in 0..4000 {
        let value = match round % 3 {
            0 => plausible_register(&mut rng),
            1 => Value::Object(random_object(&mut rng, 4)),
            _ => random_value(&mut rng, 4),
        };
        let mut body = serde_json::to_vec(&value).unwrap();
        if rng.random_bool(0.3) {
            body = mutate_bytes(&mut rng, body);
        }
        match decode_json::<RegisterBody>(&body) {
            Ok(register) => {
                decoded += 1;
                // Validation may refuse it (with Consul's words), never panic.
                let _ = register_command(register, "dc1");
            }
            Err(e) => assert_decode_error(&e, &body),
        }
        match decode_json::<DeregisterBody>(&body) {
            Ok(deregister) => {
                let _ = deregister_command(deregister, "dc1");
            }
            Err(e) => assert_decode_error(&e, &body),
        }
    }
    assert!(decoded > 500, "too few bodies decoded: {decoded}");
}

#[test]
fn random_query_strings_never_panic() {
    let mut rng = StdRng::seed_from_u64(0x9e57);
    let alphabet: Vec<char> = "&=%+?;#a0zZ9-_.~ é\u{0}\u{7f}fF".chars().collect();
    let names = [
        "index",
        "wait",
        "stale",
        "consistent",
        "dc",
        "flags",
        "cas",
        "recurse",
        "keys",
        "separator",
        "raw",
        "acquire",
        "release",
        "tag",
        "node-meta",
        "passing",
        "pretty",
    ];
    for _ in 0..5000 {
        let mut raw = String::new();
        for _ in 0..rng.random_range(0..6) {
            if rng.random_bool(0.6) {
                raw.push_str(names[rng.random_range(0..names.len())]);
            }
            for _ in 0..rng.random_range(0..8) {
                raw.push(alphabet[rng.random_range(0..alphabet.len())]);
            }
        }
        let q = Query::parse(&raw);
        let _ = QueryOptions::parse(&q, "dc1");
        let _ = q.encode();
        let _ = put_op(&q, "k");
        let _ = delete_op(&q, "k");
        if let Some(w) = q.get("wait") {
            let _ = parse_go_duration(w);
        }
    }
    for d in [
        "1e400s",
        "99999999999999999999h",
        "1.5.5s",
        "µs",
        "1µ",
        ".5s",
        "5.s",
        "+-1s",
        "1h-1s",
    ] {
        let _ = parse_go_duration(d);
    }
}

/// Everything but unreserved characters and `/` percent-encoded: the path then carries
/// the key exactly.
const KEY_ESCAPE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

fn random_key(rng: &mut StdRng) -> String {
    const PIECES: &[&str] = &[
        "a",
        "b",
        "/",
        "/",
        ".",
        "..",
        " ",
        "%",
        "%41",
        "?",
        "#",
        "&",
        "=",
        "+",
        "*",
        "é",
        "名",
        "\u{7f}",
        "\n",
        "\t",
        "\\",
        "~",
        "-",
        "\u{200b}",
        "\u{10ffff}",
    ];
    (0..rng.random_range(0..8))
        .map(|_| PIECES[rng.random_range(0..PIECES.len())])
        .collect()
}

/// What the KV endpoint must answer for a PUT of `key` (decoded).
fn expected_put_status(key: &str) -> StatusCode {
    let path = format!("/v1/kv/{key}");
    if key.chars().any(char::is_control) {
        StatusCode::BAD_REQUEST
    } else if path.contains("//")
        || path.contains("/./")
        || path.contains("/../")
        || path.ends_with("/.")
        || path.ends_with("/..")
    {
        StatusCode::MOVED_PERMANENTLY
    } else if key.is_empty() || validate_key(key).is_err() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    }
}

#[actix_web::test]
async fn random_keys_round_trip_or_are_refused_without_change() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let mut rng = StdRng::seed_from_u64(0x6b76);
    let mut stored = std::collections::BTreeMap::new();
    for round in 0..250 {
        let key = random_key(&mut rng);
        let value = format!("v{round}-{key}");
        let uri = format!("/v1/kv/{}", utf8_percent_encode(&key, KEY_ESCAPE));
        let r = send!(app, "PUT", &uri, value.clone());
        let want = expected_put_status(&key);
        assert_eq!(r.status, want, "PUT {key:?} ({uri}): {}", r.text());
        if want == StatusCode::OK {
            assert_eq!(r.text(), "true");
            stored.insert(key.clone(), value.clone());
            let r = send!(app, "GET", &format!("{uri}?raw"));
            assert_eq!(r.status, StatusCode::OK, "GET {key:?}");
            assert_eq!(r.text(), value, "value of {key:?}");
        }
    }
    assert!(stored.len() > 50, "too few keys accepted: {}", stored.len());
    // The listing holds exactly the accepted keys with their last values.
    let r = send!(app, "GET", "/v1/kv/?recurse");
    let listed: std::collections::BTreeMap<String, String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            use base64::Engine as _;
            let value = base64::engine::general_purpose::STANDARD
                .decode(e["Value"].as_str().unwrap_or_default())
                .unwrap();
            (
                e["Key"].as_str().unwrap().to_string(),
                String::from_utf8(value).unwrap(),
            )
        })
        .collect();
    assert_eq!(listed, stored);
}

#[actix_web::test]
async fn random_paths_and_queries_get_consul_status_codes() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let prefixes = [
        "/",
        "/v1/",
        "/v1/kv/",
        "/v1/catalog/",
        "/v1/catalog/service/",
        "/v1/catalog/node/",
        "/v1/health/service/",
        "/v1/health/node/",
        "/v1/health/checks/",
        "/v1/health/state/",
        "/v1/status/",
        "/v1/agent/",
        "/v2/",
        "//v1/kv/",
    ];
    let tails = [
        "", "x", "web", "nodes", "services", "leader", "peers", "self", "members", "any",
        "passing", "critical", "bogus", ".", "..", "%", "%zz", "%c3%28", "%ff", "%e2%82", "%00",
        "a%2fb", "é", "?", "??", "#",
    ];
    let queries = [
        "",
        "?index=1&wait=1ms",
        "?index=x",
        "?wait=forever",
        "?stale&consistent",
        "?dc=dc1",
        "?dc=",
        "?passing=maybe",
        "?recurse&keys&separator=",
        "?tag=&node-meta=:",
        "?raw",
        "?index=18446744073709551615&wait=1ms",
        "?%zz=%zz",
        "?pretty&stale",
    ];
    let methods = ["GET", "PUT", "DELETE", "OPTIONS", "POST", "PATCH", "HEAD"];
    let mut rng = StdRng::seed_from_u64(0x7a75);
    for _ in 0..400 {
        let method = methods[rng.random_range(0..methods.len())];
        let mut uri = prefixes[rng.random_range(0..prefixes.len())].to_string();
        for _ in 0..rng.random_range(0..3) {
            uri.push_str(tails[rng.random_range(0..tails.len())]);
            if rng.random_bool(0.3) {
                uri.push('/');
            }
        }
        // The query goes last; `?` and `#` inside the path are escaped first.
        let uri = uri
            .replace('?', "%3F")
            .replace('#', "%23")
            .replace('é', "%C3%A9");
        let uri = format!("{uri}{}", queries[rng.random_range(0..queries.len())]);
        // Only status codes are checked here: a PUT to a KV key may write, that is fine.
        let body = if method == "PUT" { "{not json" } else { "" };
        let r = send!(app, method, &uri, body);
        let code = r.status.as_u16();
        let text = r.text();
        let consul_500 = text.starts_with("strconv.ParseUint")
            || text == "No path to datacenter"
            || text.starts_with("Session locking");
        assert!(
            matches!(code, 200 | 301 | 400 | 404 | 405) || (code == 500 && consul_500),
            "{method} {uri}: {code} {text}"
        );
    }
}
