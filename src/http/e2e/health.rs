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

#[actix_web::test]
async fn filter_expressions_select_and_malformed_ones_are_400() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    for (node, id, tags, port, meta) in [
        ("n1", "web-1", r#"["v1","primary"]"#, 80, r#"{"rack":"r1"}"#),
        ("n2", "web-2", r#"["v2"]"#, 8080, r#"{"rack":"r2"}"#),
    ] {
        let body = format!(
            r#"{{"Node":"{node}","Address":"10.0.0.1","NodeMeta":{meta},
            "Service":{{"ID":"{id}","Service":"web","Tags":{tags},"Port":{port}}},
            "Check":{{"CheckID":"{id}-ok","Name":"web","ServiceID":"{id}","Status":"passing"}}}}"#
        );
        assert_eq!(
            send!(app, "PUT", "/v1/catalog/register", body).text(),
            "true"
        );
    }
    let ids = |v: serde_json::Value, at: &[&str]| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let mut x = e;
                for k in at {
                    x = &x[*k];
                }
                x.as_str().unwrap().to_string()
            })
            .collect()
    };
    let q = |expr: &str| {
        percent_encoding::utf8_percent_encode(expr, percent_encoding::NON_ALPHANUMERIC).to_string()
    };

    let r = send!(
        app,
        "GET",
        &format!(
            "/v1/health/service/web?filter={}",
            q(r#"Service.Tags contains "v2""#)
        )
    );
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(ids(r.json(), &["Service", "ID"]), ["web-2"]);
    assert!(r.index() > 0, "a filtered answer keeps its index");
    let r = send!(
        app,
        "GET",
        &format!(
            "/v1/health/service/web?filter={}",
            q("Node.Meta.rack == r1 and Service.Port == 80")
        )
    );
    assert_eq!(ids(r.json(), &["Service", "ID"]), ["web-1"]);
    let r = send!(
        app,
        "GET",
        &format!(
            "/v1/catalog/service/web?filter={}",
            q("ServicePort == 8080")
        )
    );
    assert_eq!(ids(r.json(), &["ServiceID"]), ["web-2"]);
    let r = send!(
        app,
        "GET",
        &format!("/v1/catalog/nodes?filter={}", q("Meta.rack == r2"))
    );
    assert_eq!(ids(r.json(), &["Node"]), ["n2"]);
    let r = send!(
        app,
        "GET",
        &format!(
            "/v1/health/state/passing?filter={}",
            q(r#"ServiceID == "web-1""#)
        )
    );
    assert_eq!(ids(r.json(), &["CheckID"]), ["web-1-ok"]);
    let r = send!(
        app,
        "GET",
        &format!(
            "/v1/health/checks/web?filter={}",
            q("ServiceTags contains primary")
        )
    );
    assert_eq!(ids(r.json(), &["CheckID"]), ["web-1-ok"]);
    let r = send!(
        app,
        "GET",
        &format!("/v1/catalog/node/n1?filter={}", q("Port == 8080"))
    );
    assert_eq!(r.json()["Services"], json!({}));
    let r = send!(
        app,
        "GET",
        &format!(
            "/v1/catalog/services?filter={}",
            q("ServiceTags contains v2")
        )
    );
    assert_eq!(r.json(), json!({"web": ["v2"]}));
    assert!(r.index() > 0);
    let r = send!(
        app,
        "GET",
        &format!("/v1/catalog/services?filter={}", q("ServicePort > 1"))
    );
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    let r = send!(app, "GET", "/v1/health/service/web?filter=");
    assert_eq!(
        r.json().as_array().map(Vec::len),
        Some(2),
        "an empty filter is none"
    );

    for (expr, start) in [
        (
            "Service.Tags contains",
            "Failed to create boolean expression evaluator: ",
        ),
        (
            "(Service.Port == 80",
            "Failed to create boolean expression evaluator: ",
        ),
        ("Service.Port == abc", "Failed to evaluate filter: "),
        ("Nope == 1", "Failed to evaluate filter: "),
    ] {
        let r = send!(
            app,
            "GET",
            &format!("/v1/health/service/web?filter={}", q(expr))
        );
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{expr}");
        assert!(r.text().starts_with(start), "{expr}: {}", r.text());
    }
}
