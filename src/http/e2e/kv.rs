//! `/v1/kv` end to end.

use super::test_ctx;
use crate::{send, test_app};
use actix_web::http::StatusCode;
use std::time::{Duration, Instant};

#[actix_web::test]
async fn put_get_raw_flags_and_headers() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);

    let r = send!(
        app,
        "PUT",
        "/v1/kv/web/config?flags=3304740253564472344",
        "hello"
    );
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "true");
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("application/json")
    );

    let r = send!(app, "GET", "/v1/kv/web/config");
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    let idx = v[0]["ModifyIndex"].as_u64().unwrap();
    assert_eq!(
        r.text(),
        format!(
            r#"[{{"LockIndex":0,"Key":"web/config","Flags":3304740253564472344,"Value":"aGVsbG8=","CreateIndex":{idx},"ModifyIndex":{idx}}}]"#
        )
    );
    assert_eq!(r.index(), idx);
    assert_eq!(r.header("X-Consul-KnownLeader").as_deref(), Some("true"));
    assert_eq!(r.header("X-Consul-LastContact").as_deref(), Some("0"));
    assert_eq!(
        r.header("X-Consul-Effective-Consistency").as_deref(),
        Some("leader")
    );
    assert_eq!(
        r.header("X-Consul-Default-ACL-Policy").as_deref(),
        Some("allow")
    );

    let r = send!(app, "GET", "/v1/kv/web/config?stale");
    assert_eq!(
        r.header("X-Consul-Effective-Consistency").as_deref(),
        Some("stale")
    );
    let r = send!(app, "GET", "/v1/kv/web/config?consistent=");
    assert_eq!(
        r.header("X-Consul-Effective-Consistency").as_deref(),
        Some("consistent")
    );

    let r = send!(app, "GET", "/v1/kv/web/config?raw");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, b"hello");
    assert_eq!(r.header("Content-Type").as_deref(), Some("text/plain"));
    assert_eq!(
        r.header("X-Content-Type-Options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(
        r.header("Content-Security-Policy").as_deref(),
        Some("sandbox")
    );

    // Empty value renders as null.
    send!(app, "PUT", "/v1/kv/empty");
    let r = send!(app, "GET", "/v1/kv/empty");
    assert_eq!(r.json()[0]["Value"], serde_json::Value::Null);
    assert!(r.json()[0].get("Session").is_none());
}

#[actix_web::test]
async fn missing_keys_404_with_index_and_empty_body() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let r = send!(app, "GET", "/v1/kv/nothing");
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.is_empty());
    assert_eq!(r.index(), 1);
    assert_eq!(r.header("X-Consul-KnownLeader").as_deref(), Some("true"));

    send!(app, "PUT", "/v1/kv/other", "x");
    let r = send!(app, "GET", "/v1/kv/nothing");
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.index() > 1, "missing key reports the KV table index");

    for uri in [
        "/v1/kv/nothing?recurse",
        "/v1/kv/nothing?keys",
        "/v1/kv/nothing?raw",
    ] {
        let r = send!(app, "GET", uri);
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{uri}");
        assert!(r.body.is_empty(), "{uri}");
        assert!(r.header("X-Consul-Index").is_some(), "{uri}");
    }
}

#[actix_web::test]
async fn missing_key_name_and_bad_params() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    for (method, uri, code, text) in [
        ("GET", "/v1/kv/", 400, "Missing key name"),
        ("PUT", "/v1/kv/", 400, "Missing key name"),
        ("DELETE", "/v1/kv/", 400, "Missing key name"),
        (
            "PUT",
            "/v1/kv/k?flags=abc",
            500,
            "strconv.ParseUint: parsing \"abc\": invalid syntax",
        ),
        (
            "PUT",
            "/v1/kv/k?flags=-1",
            500,
            "strconv.ParseUint: parsing \"-1\": invalid syntax",
        ),
        (
            "PUT",
            "/v1/kv/k?cas=x",
            500,
            "strconv.ParseUint: parsing \"x\": invalid syntax",
        ),
        (
            "PUT",
            "/v1/kv/k?cas=99999999999999999999",
            500,
            "strconv.ParseUint: parsing \"99999999999999999999\": value out of range",
        ),
        (
            "DELETE",
            "/v1/kv/k?cas=x",
            500,
            "strconv.ParseUint: parsing \"x\": invalid syntax",
        ),
        (
            "PUT",
            "/v1/kv/k?cas=1&release=s",
            400,
            "Conflicting flags: cas=1&release=s",
        ),
        (
            "DELETE",
            "/v1/kv/k?recurse&cas=1",
            400,
            "Conflicting flags: cas=1&recurse=",
        ),
        (
            "PUT",
            "/v1/kv/k?acquire=abc",
            500,
            "invalid session \"abc\"",
        ),
        ("PUT", "/v1/kv/k?index=zz", 400, "Invalid index"),
        (
            "PUT",
            "/v1/kv/%20lead",
            400,
            "Invalid key name \" lead\": leading or trailing spaces are not allowed",
        ),
    ] {
        let r = send!(app, method, uri, "v");
        assert_eq!(r.status.as_u16(), code, "{method} {uri}");
        assert_eq!(r.text(), text, "{method} {uri}");
    }
    // Nothing was written by any of those.
    let r = send!(app, "GET", "/v1/kv/?recurse");
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn value_size_limit() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let max = crate::http::body::KV_MAX_VALUE_BYTES;
    let r = send!(app, "PUT", "/v1/kv/big", vec![b'a'; max]);
    assert_eq!(r.status, StatusCode::OK);
    let r = send!(app, "PUT", "/v1/kv/big", vec![b'a'; max + 1]);
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        r.text()
            .starts_with("Request body(524289 bytes) too large, max size: 524288 bytes."),
        "{}",
        r.text()
    );
    assert!(r.text().contains("Value exceeds 524288 byte limit"));
    let r = send!(app, "GET", "/v1/kv/big?raw");
    assert_eq!(r.body.len(), max, "the refused write changed nothing");
}

#[actix_web::test]
async fn cas_and_delete_variants() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    assert_eq!(send!(app, "PUT", "/v1/kv/c?cas=0", "1").text(), "true");
    assert_eq!(send!(app, "PUT", "/v1/kv/c?cas=0", "2").text(), "false");
    let idx = send!(app, "GET", "/v1/kv/c").index();
    assert_eq!(
        send!(app, "PUT", &format!("/v1/kv/c?cas={}", idx + 100), "3").text(),
        "false"
    );
    assert_eq!(
        send!(app, "PUT", &format!("/v1/kv/c?cas={idx}"), "4").text(),
        "true"
    );
    assert_eq!(send!(app, "GET", "/v1/kv/c?raw").body, b"4");

    let idx = send!(app, "GET", "/v1/kv/c").index();
    assert_eq!(send!(app, "DELETE", "/v1/kv/c?cas=0").text(), "false");
    assert_eq!(
        send!(app, "DELETE", &format!("/v1/kv/c?cas={}", idx + 1)).text(),
        "false"
    );
    assert_eq!(
        send!(app, "DELETE", &format!("/v1/kv/c?cas={idx}")).text(),
        "true"
    );
    assert_eq!(send!(app, "GET", "/v1/kv/c").status, StatusCode::NOT_FOUND);

    assert_eq!(send!(app, "DELETE", "/v1/kv/never").text(), "true");

    for k in ["t/a", "t/b/c", "u"] {
        send!(app, "PUT", &format!("/v1/kv/{k}"), "x");
    }
    assert_eq!(send!(app, "DELETE", "/v1/kv/t?recurse").text(), "true");
    assert_eq!(
        send!(app, "GET", "/v1/kv/?keys").json(),
        serde_json::json!(["u"])
    );
}

#[actix_web::test]
async fn recurse_keys_separator_and_encoded_keys() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let r = send!(app, "GET", "/v1/kv/?keys");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), "[]");

    for k in [
        "web/foo",
        "web/bar",
        "web/subdir/x",
        "web/subdir/y",
        "other",
    ] {
        send!(app, "PUT", &format!("/v1/kv/{k}"), k);
    }
    let r = send!(app, "GET", "/v1/kv/web/?keys&separator=/");
    assert_eq!(
        r.json(),
        serde_json::json!(["web/bar", "web/foo", "web/subdir/"])
    );
    let r = send!(app, "GET", "/v1/kv/web/?keys&seperator=/");
    assert_eq!(
        r.json(),
        serde_json::json!(["web/bar", "web/foo", "web/subdir/"])
    );
    let max = r.index();
    let r = send!(app, "GET", "/v1/kv/web?keys");
    assert_eq!(r.json().as_array().map(Vec::len), Some(4));
    assert_eq!(r.index(), max);

    let r = send!(app, "GET", "/v1/kv/web/?recurse");
    let keys: Vec<String> = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Key"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, ["web/bar", "web/foo", "web/subdir/x", "web/subdir/y"]);
    let top = r
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["ModifyIndex"].as_u64().unwrap())
        .max()
        .unwrap();
    assert_eq!(r.index(), top);

    // `a%2Fb` is the key `a/b`; spaces and other characters inside keys are fine.
    send!(app, "PUT", "/v1/kv/a%2Fb", "slash");
    assert_eq!(send!(app, "GET", "/v1/kv/a/b?raw").body, b"slash");
    send!(app, "PUT", "/v1/kv/with%20space*+", "sp");
    assert_eq!(send!(app, "GET", "/v1/kv/with%20space*+?raw").body, b"sp");
}

#[actix_web::test]
async fn blocking_get_wakes_on_change_and_times_out() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    send!(app, "PUT", "/v1/kv/watch", "1");
    let idx = send!(app, "GET", "/v1/kv/watch").index();

    // Times out after the wait with the same index.
    let started = Instant::now();
    let r = send!(app, "GET", &format!("/v1/kv/watch?index={idx}&wait=200ms"));
    assert!(started.elapsed() >= Duration::from_millis(200));
    assert_eq!(r.index(), idx);

    // Wakes when the key changes.
    let uri = format!("/v1/kv/watch?index={idx}&wait=30s");
    let blocked = async { send!(app, "GET", &uri) };
    let writer = async {
        send!(app, "PUT", "/v1/kv/watch", "2");
    };
    let started = Instant::now();
    let (r, _) = futures::join!(blocked, writer);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(r.index() > idx);
    assert_eq!(r.json()[0]["Value"], "Mg==");

    // An index from the future answers at once.
    let r = send!(app, "GET", "/v1/kv/watch?index=999999&wait=30s");
    assert_eq!(r.status, StatusCode::OK);
}
