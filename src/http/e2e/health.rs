//! `/v1/health` end to end.

use super::test_ctx;
use crate::{send, test_app};
use actix_web::http::StatusCode;
use serde_json::json;

#[actix_web::test]
async fn service_entries_passing_filter_and_check_lists() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let ok = send!(
        app,
        "PUT",
        "/v1/catalog/register",
        r#"{"Node":"n1","Address":"10.0.0.1",
        "Service":{"ID":"web-1","Service":"web","Tags":["prod"],"Port":80},
        "Checks":[{"CheckID":"node-ok","Name":"node","Status":"passing"},
                  {"CheckID":"web-1-ok","Name":"web","Status":"passing","ServiceID":"web-1"}]}"#
    );
    assert_eq!(ok.text(), "true");
    let bad = send!(
        app,
        "PUT",
        "/v1/catalog/register",
        r#"{"Node":"n2","Address":"10.0.0.2",
        "Service":{"ID":"web-2","Service":"web","Port":80},
        "Check":{"CheckID":"web-2-down","Name":"web","ServiceID":"web-2"}}"#
    );
    assert_eq!(bad.text(), "true");

    let r = send!(app, "GET", "/v1/health/service/web");
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v.as_array().map(Vec::len), Some(2));
    assert_eq!(v[0]["Node"]["Node"], "n1");
    assert_eq!(v[0]["Service"]["ID"], "web-1");
    assert_eq!(v[0]["Service"]["Tags"], json!(["prod"]));
    let ids: Vec<&str> = v[0]["Checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["CheckID"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["node-ok", "web-1-ok"]);
    assert_eq!(
        v[1]["Checks"][0]["Status"], "critical",
        "status defaults to critical"
    );
    assert!(r.index() > 1);

    let r = send!(app, "GET", "/v1/health/service/web?passing");
    assert_eq!(r.json().as_array().map(Vec::len), Some(1));
    let r = send!(app, "GET", "/v1/health/service/web?passing=false");
    assert_eq!(r.json().as_array().map(Vec::len), Some(2));
    let r = send!(app, "GET", "/v1/health/service/web?tag=prod");
    assert_eq!(r.json().as_array().map(Vec::len), Some(1));
    let r = send!(app, "GET", "/v1/health/service/nope");
    assert_eq!(r.text(), "[]");

    let r = send!(app, "GET", "/v1/health/state/critical");
    assert_eq!(r.json().as_array().map(Vec::len), Some(1));
    assert_eq!(r.json()[0]["CheckID"], "web-2-down");
    let r = send!(app, "GET", "/v1/health/state/any");
    assert_eq!(r.json().as_array().map(Vec::len), Some(3));
    let r = send!(app, "GET", "/v1/health/node/n1");
    assert_eq!(r.json().as_array().map(Vec::len), Some(2));
    let r = send!(app, "GET", "/v1/health/checks/web");
    assert_eq!(r.json().as_array().map(Vec::len), Some(2));

    for (uri, text) in [
        (
            "/v1/health/service/web?passing=maybe",
            "Invalid value for ?passing",
        ),
        ("/v1/health/state/bogus", "Invalid check state: \"bogus\""),
        ("/v1/health/state/", "Missing check state"),
        ("/v1/health/service/", "Missing service name"),
        ("/v1/health/node/", "Missing node name"),
    ] {
        let r = send!(app, "GET", uri);
        assert_eq!(
            (r.status.as_u16(), r.text()),
            (400, text.to_string()),
            "{uri}"
        );
    }
}
