//! `/v1/session/*` and KV `?acquire` / `?release` end to end, on one server.

use super::test_ctx;
use crate::{send, test_app};
use actix_web::http::StatusCode;
use std::time::{Duration, Instant};

const REGISTER_NODE1: &str = r#"{"Node":"node1","Address":"10.0.0.1",
    "Check":{"CheckID":"serfHealth","Name":"Serf Health Status","Status":"passing"}}"#;
const NODE1_CRITICAL: &str = r#"{"Node":"node1","Address":"10.0.0.1",
    "Check":{"CheckID":"serfHealth","Name":"Serf Health Status","Status":"critical"}}"#;

#[actix_web::test]
async fn create_lock_block_and_invalidate() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);

    // The agent's node is not registered yet: Consul's text.
    let r = send!(app, "PUT", "/v1/session/create");
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.text(), "Missing node registration");
    let r = send!(app, "PUT", "/v1/catalog/register", REGISTER_NODE1);
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());

    for (body, code, text) in [
        (
            r#"{"TTL":"5s"}"#,
            500,
            "Invalid Session TTL '5000000000', must be between [10s=24h0m0s]",
        ),
        (
            r#"{"Behavior":"keep"}"#,
            500,
            "Invalid Behavior setting 'keep'",
        ),
        (r#"{"Node":"ghost"}"#, 500, "Missing node registration"),
        (
            r#"{"Checks":["disk"]}"#,
            500,
            "Missing check 'disk' registration",
        ),
    ] {
        let r = send!(app, "PUT", "/v1/session/create", body);
        assert_eq!(
            (r.status.as_u16(), r.text().as_str()),
            (code, text),
            "{body}"
        );
    }

    let r = send!(
        app,
        "PUT",
        "/v1/session/create",
        r#"{"name":"a","lockdelay":"2s"}"#
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let a = r.json()["ID"].as_str().unwrap().to_string();
    let r = send!(app, "PUT", "/v1/session/create", r#"{"Checks":[]}"#);
    let b = r.json()["ID"].as_str().unwrap().to_string();

    let r = send!(app, "GET", "/v1/session/list");
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    let r = send!(app, "GET", "/v1/session/node/NODE1");
    assert_eq!(r.json().as_array().unwrap().len(), 2);
    let r = send!(app, "GET", &format!("/v1/session/info/{a}"));
    assert_eq!(r.json()[0]["LockDelay"], 2_000_000_000u64);
    assert_eq!(r.json()[0]["Node"], "node1");
    let r = send!(app, "GET", "/v1/session/info/unknown");
    assert_eq!((r.status, r.text().as_str()), (StatusCode::OK, "[]"));
    let r = send!(app, "PUT", "/v1/session/renew/unknown");
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.text(), "Session id 'unknown' not found");
    let r = send!(app, "PUT", &format!("/v1/session/renew/{a}"));
    assert_eq!(r.json()[0]["ID"], a.as_str());

    // Locks.
    let r = send!(
        app,
        "PUT",
        &format!("/v1/kv/lead?acquire={a}&flags=42"),
        "me"
    );
    assert_eq!(r.text(), "true");
    let r = send!(app, "PUT", &format!("/v1/kv/lead?acquire={b}"), "you");
    assert_eq!(r.text(), "false");
    let r = send!(app, "PUT", &format!("/v1/kv/lead?release={b}"), "");
    assert_eq!(r.text(), "false");
    let r = send!(app, "GET", "/v1/kv/lead");
    let v = r.json();
    assert_eq!(
        (v[0]["Session"].as_str(), v[0]["LockIndex"].as_u64()),
        (Some(a.as_str()), Some(1))
    );
    assert_eq!(v[0]["Flags"], 42);
    let idx = r.index();

    // The session's check goes critical: a blocking GET on the key wakes, the lock is
    // released, the session is gone and the lock-delay refuses the other session.
    let uri = format!("/v1/kv/lead?index={idx}&wait=30s");
    let blocked = async { send!(app, "GET", &uri) };
    let critical = async {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        send!(app, "PUT", "/v1/catalog/register", NODE1_CRITICAL);
    };
    let started = Instant::now();
    let (r, _) = futures::join!(blocked, critical);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(r.index() > idx);
    assert!(r.json()[0].get("Session").is_none(), "{}", r.text());
    let r = send!(app, "GET", &format!("/v1/session/info/{a}"));
    assert_eq!(r.text(), "[]");
    let r = send!(app, "PUT", &format!("/v1/kv/lead?acquire={b}"), "you");
    assert_eq!(r.text(), "false", "within the lock-delay");

    // A blocking session list wakes on a destroy.
    let idx = send!(app, "GET", "/v1/session/list").index();
    let uri = format!("/v1/session/list?index={idx}&wait=30s");
    let blocked = async { send!(app, "GET", &uri) };
    let destroy_uri = format!("/v1/session/destroy/{b}");
    let destroy = async {
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        send!(app, "PUT", &destroy_uri)
    };
    let (r, d) = futures::join!(blocked, destroy);
    assert_eq!(d.text(), "true");
    assert!(r.index() > idx);
    assert_eq!(r.text(), "[]");
    // Destroy is idempotent; acquire with an unknown session is Consul's 500.
    assert_eq!(send!(app, "PUT", &destroy_uri).text(), "true");
    let r = send!(app, "PUT", &format!("/v1/kv/other?acquire={b}"), "x");
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(r.text(), format!("invalid session \"{b}\""));
}
