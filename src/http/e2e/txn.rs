//! `/v1/txn` end to end: shapes, codes, all or nothing, the read-only path, limits.

use super::test_ctx;
use crate::{send, test_app};
use actix_web::http::StatusCode;
use serde_json::json;

fn applied(ctx: &crate::context::AgentContext) -> u64 {
    let server = ctx.server.as_ref().expect("a server context");
    let index = *server.applied().borrow();
    index
}

#[actix_web::test]
async fn a_write_transaction_commits_every_op_with_consuls_shapes() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let body = json!([
        {"KV": {"Verb": "set", "Key": "a", "Value": "eA==", "Flags": 3}},
        {"KV": {"Verb": "cas", "Key": "b", "Value": "eQ==", "Index": 0}},
        {"Node": {"Verb": "set", "Node": {"Node": "ext", "Address": "10.1.1.1"}}},
        {"Service": {"Verb": "set", "Node": "ext", "Service": {"Service": "web", "Port": 80}}},
        {"Check": {"Verb": "set", "Check": {"Node": "ext", "Name": "up", "ServiceID": "web", "Status": "passing"}}},
        {"KV": {"Verb": "get", "Key": "a"}}
    ]);
    let r = send!(app, "PUT", "/v1/txn", body.to_string());
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("application/json")
    );
    let v = r.json();
    assert_eq!(v["Errors"], serde_json::Value::Null);
    let results = v["Results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    let idx = results[0]["KV"]["ModifyIndex"].as_u64().unwrap();
    assert_eq!(
        results[0],
        json!({"KV": {"LockIndex": 0, "Key": "a", "Flags": 3, "Value": null,
                      "CreateIndex": idx, "ModifyIndex": idx}})
    );
    assert_eq!(results[1]["KV"]["Key"], "b");
    assert_eq!(results[2]["Node"]["Node"], "ext");
    assert_eq!(
        results[2]["Node"]["Datacenter"],
        ctx.config.datacenter.as_str()
    );
    assert_eq!(results[3]["Service"]["ID"], "web");
    assert_eq!(results[4]["Check"]["CheckID"], "up");
    assert_eq!(results[4]["Check"]["ServiceName"], "web");
    assert_eq!(results[4]["Check"]["Status"], "passing");
    // get answers the value; one Raft entry carried all of it.
    assert_eq!(results[5]["KV"]["Value"], "eA==");
    assert_eq!(results[5]["KV"]["ModifyIndex"], idx);
    assert_eq!(results[3]["Service"]["ModifyIndex"], idx);

    let r = send!(app, "GET", "/v1/kv/b?raw");
    assert_eq!(r.text(), "y");
    let r = send!(app, "GET", "/v1/health/service/web");
    assert_eq!(r.json()[0]["Checks"][0]["Status"], "passing");
}

#[actix_web::test]
async fn a_failing_op_rolls_back_everything_with_409() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let r = send!(app, "PUT", "/v1/kv/keep", "old");
    assert_eq!(r.status, StatusCode::OK);
    let keep_index = send!(app, "GET", "/v1/kv/keep").index();
    let body = json!([
        {"KV": {"Verb": "set", "Key": "keep", "Value": "bmV3"}},
        {"KV": {"Verb": "set", "Key": "fresh", "Value": "bmV3"}},
        {"KV": {"Verb": "cas", "Key": "keep", "Value": "bmV3", "Index": keep_index + 1000}},
        {"KV": {"Verb": "check-not-exists", "Key": "keep"}}
    ]);
    let r = send!(app, "PUT", "/v1/txn", body.to_string());
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("application/json")
    );
    assert_eq!(
        r.json(),
        json!({"Results": null, "Errors": [
            {"OpIndex": 2, "What": "failed to set key \"keep\", index is stale"},
            {"OpIndex": 3, "What": "key \"keep\" exists"}
        ]})
    );
    let r = send!(app, "GET", "/v1/kv/keep?raw");
    assert_eq!(r.text(), "old");
    assert_eq!(send!(app, "GET", "/v1/kv/keep").index(), keep_index);
    assert_eq!(
        send!(app, "GET", "/v1/kv/fresh").status,
        StatusCode::NOT_FOUND
    );
}

#[actix_web::test]
async fn read_only_transactions_use_the_read_path_and_consistency_modes() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let r = send!(app, "PUT", "/v1/kv/cfg/a", "1");
    assert_eq!(r.status, StatusCode::OK);
    let r = send!(app, "PUT", "/v1/kv/cfg/b", "2");
    assert_eq!(r.status, StatusCode::OK);
    let before = applied(&ctx);
    let body = json!([
        {"KV": {"Verb": "get-tree", "Key": "cfg/"}},
        {"KV": {"Verb": "check-not-exists", "Key": "cfg/c"}}
    ])
    .to_string();
    for query in ["", "?stale", "?consistent"] {
        let r = send!(app, "PUT", &format!("/v1/txn{query}"), body.clone());
        assert_eq!(r.status, StatusCode::OK, "{query}: {}", r.text());
        assert_eq!(r.header("X-Consul-KnownLeader").as_deref(), Some("true"));
        assert_eq!(r.header("X-Consul-LastContact").as_deref(), Some("0"));
        let v = r.json();
        assert_eq!(v["Results"][0]["KV"]["Value"], "MQ==");
        assert_eq!(v["Results"][1]["KV"]["Value"], "Mg==");
        assert_eq!(v["Errors"], serde_json::Value::Null);
        assert_eq!(v["KnownLeader"], true);
    }
    // No Raft entry was written for them.
    assert_eq!(applied(&ctx), before);
    let r = send!(app, "PUT", "/v1/txn?stale&consistent", body.clone());
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    // A failing read-only transaction is a 409 too.
    let r = send!(
        app,
        "PUT",
        "/v1/txn?stale",
        json!([{"KV": {"Verb": "get", "Key": "nope"}}]).to_string()
    );
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.json()["Errors"],
        json!([{"OpIndex": 0, "What": "key \"nope\" doesn't exist"}])
    );
    assert_eq!(applied(&ctx), before);
}

#[actix_web::test]
async fn validation_limits_and_texts() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let before = applied(&ctx);
    // Consul's pre-checks: 409 naming the op, nothing proposed.
    let r = send!(
        app,
        "PUT",
        "/v1/txn",
        json!([
            {"KV": {"Verb": "set", "Key": "ok", "Value": null}},
            {"KV": {"Verb": "set", "Key": ""}},
            {"KV": {"Verb": "explode", "Key": "x"}}
        ])
        .to_string()
    );
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.json()["Errors"],
        json!([{"OpIndex": 2, "What": "unknown KV verb \"explode\""}])
    );
    let r = send!(
        app,
        "PUT",
        "/v1/txn",
        json!([{"KV": {"Verb": "set", "Key": "ok"}}, {"KV": {"Verb": "set", "Key": ""}}])
            .to_string()
    );
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.json()["Errors"],
        json!([{"OpIndex": 1, "What": "Must provide key"}])
    );
    // Body-level problems: 400.
    let r = send!(
        app,
        "PUT",
        "/v1/txn",
        r#"[{"KV":{"Verb":"set","Key":"a","Value":"%%%"}}]"#
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.text(),
        "Failed to parse body: failed to decode value: illegal base64 data at input byte 0"
    );
    let r = send!(app, "PUT", "/v1/txn", "not json");
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text().starts_with("Failed to parse body: "),
        "{}",
        r.text()
    );
    // Limits: 128 ops pass, 129 are 413; bodies over 512 KiB are 413.
    let ops = |n: usize| {
        serde_json::Value::Array(
            (0..n)
                .map(|i| json!({"KV": {"Verb": "set", "Key": format!("k{i}"), "Value": "eA=="}}))
                .collect(),
        )
        .to_string()
    };
    let r = send!(app, "PUT", "/v1/txn", ops(129));
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        r.text(),
        "Transaction contains too many operations (129 > 128)"
    );
    assert_eq!(applied(&ctx), before, "nothing was proposed");
    let r = send!(app, "PUT", "/v1/txn", ops(128));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["Results"].as_array().unwrap().len(), 128);
    let big = format!(
        r#"[{{"KV":{{"Verb":"set","Key":"big","Value":"{}"}}}}]"#,
        "A".repeat(super::super::txn::TXN_MAX_REQ_BYTES)
    );
    let r = send!(app, "PUT", "/v1/txn", big);
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        r.text().contains("too large, max size: 524288 bytes"),
        "{}",
        r.text()
    );
    // Only PUT.
    let r = send!(app, "GET", "/v1/txn");
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[actix_web::test]
async fn catalog_cas_and_delete_verbs() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let r = send!(
        app,
        "PUT",
        "/v1/txn",
        json!([{"Node": {"Verb": "set", "Node": {"Node": "ext", "Address": "10.1.1.1"}}}])
            .to_string()
    );
    let idx = r.json()["Results"][0]["Node"]["ModifyIndex"]
        .as_u64()
        .unwrap();
    let stale =
        json!([{"Node": {"Verb": "delete-cas", "Node": {"Node": "ext", "ModifyIndex": idx + 1}}}]);
    let r = send!(app, "PUT", "/v1/txn", stale.to_string());
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.json()["Errors"][0]["What"],
        "failed to delete node \"ext\", index is stale"
    );
    let ok = json!([
        {"Node": {"Verb": "get", "Node": {"Node": "ext"}}},
        {"Node": {"Verb": "delete-cas", "Node": {"Node": "ext", "ModifyIndex": idx}}}
    ]);
    let r = send!(app, "PUT", "/v1/txn", ok.to_string());
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["Results"].as_array().unwrap().len(), 1);
    let r = send!(app, "GET", "/v1/catalog/node/ext");
    assert_eq!(r.text(), "null");
}

#[actix_web::test]
async fn a_blocking_read_wakes_on_a_transaction() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    send!(app, "PUT", "/v1/kv/watch/a", "1");
    let idx = send!(app, "GET", "/v1/kv/watch/?recurse").index();
    let uri = format!("/v1/kv/watch/?recurse&index={idx}&wait=30s");
    let blocked = async { send!(app, "GET", &uri) };
    let writer = async {
        let body = json!([
            {"KV": {"Verb": "set", "Key": "elsewhere", "Value": "eA=="}},
            {"KV": {"Verb": "delete-tree", "Key": "watch/"}}
        ]);
        send!(app, "PUT", "/v1/txn", body.to_string())
    };
    let started = std::time::Instant::now();
    let (r, w) = futures::join!(blocked, writer);
    assert_eq!(w.status, StatusCode::OK);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(r.index() > idx);
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn lock_unlock_and_check_session_through_http() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let r = send!(
        app,
        "PUT",
        "/v1/catalog/register",
        json!({"Node": "n1", "Address": "10.0.0.1"}).to_string()
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let mut ids = Vec::new();
    for _ in 0..2 {
        let r = send!(
            app,
            "PUT",
            "/v1/session/create",
            json!({"Node": "n1", "Checks": [], "LockDelay": "0s"}).to_string()
        );
        assert_eq!(r.status, StatusCode::OK, "{}", r.text());
        ids.push(r.json()["ID"].as_str().unwrap().to_string());
    }
    let lock = |session: &str| {
        json!([
            {"KV": {"Verb": "lock", "Key": "svc/leader", "Value": "bWU=", "Session": session}},
            {"KV": {"Verb": "check-session", "Key": "svc/leader", "Session": session}}
        ])
        .to_string()
    };
    let r = send!(app, "PUT", "/v1/txn", lock(&ids[0]));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let held = &r.json()["Results"][0]["KV"];
    assert_eq!(held["LockIndex"], 1);
    assert_eq!(held["Session"], ids[0].as_str());
    let r = send!(app, "PUT", "/v1/txn", lock(&ids[1]));
    assert_eq!(r.status, StatusCode::CONFLICT);
    assert_eq!(
        r.json()["Errors"][0],
        json!({"OpIndex": 0, "What": "failed to lock key \"svc/leader\", lock is already held"})
    );
    // check-session alone is a read.
    let check = json!([{"KV": {"Verb": "check-session", "Key": "svc/leader", "Session": ids[0]}}]);
    let r = send!(app, "PUT", "/v1/txn?stale", check.to_string());
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let unlock = json!([{"KV": {"Verb": "unlock", "Key": "svc/leader", "Session": ids[0]}}]);
    let r = send!(app, "PUT", "/v1/txn", unlock.to_string());
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    let r = send!(app, "GET", "/v1/kv/svc/leader");
    assert!(r.json()[0].get("Session").is_none(), "{}", r.text());
    let r = send!(app, "PUT", "/v1/txn", lock(&ids[1]));
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["Results"][0]["KV"]["LockIndex"], 2);
}
