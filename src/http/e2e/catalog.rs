//! `/v1/catalog` end to end.

use super::test_ctx;
use crate::{send, test_app};
use actix_web::http::StatusCode;
use serde_json::json;

const REGISTER: &str = r#"{
  "ID": "40e4a748-2192-161a-0510-9bf59fe950b5", "Node": "n1", "Address": "10.0.0.1",
  "TaggedAddresses": {"lan": "10.0.0.1"}, "NodeMeta": {"Env": "prod"},
  "Service": {"ID": "web-1", "Service": "web", "Tags": ["prod", "v2"], "Address": "10.0.0.5",
              "Meta": {"Version": "2"}, "Port": 80},
  "Check": {"CheckID": "web-1-alive", "Name": "alive", "Status": "passing", "ServiceID": "web-1"}
}"#;

#[actix_web::test]
async fn register_then_read_everything() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let r = send!(app, "PUT", "/v1/catalog/register", REGISTER);
    assert_eq!((r.status, r.text()), (StatusCode::OK, "true".to_string()));
    // snake_case + lowercase body, service without ID, no tags.
    let r = send!(
        app,
        "PUT",
        "/v1/catalog/register",
        r#"{"node":"n2","address":"10.0.0.2","service":{"service":"web","port":8080,"tagged_addresses":{"lan":{"address":"10.0.0.9","port":8081}}}}"#
    );
    assert_eq!(r.text(), "true");

    let r = send!(app, "GET", "/v1/catalog/services");
    assert_eq!(r.json(), json!({"web": ["prod", "v2"]}));
    assert!(r.index() > 1);

    let r = send!(app, "GET", "/v1/catalog/service/web");
    let list = r.json();
    assert_eq!(list.as_array().map(Vec::len), Some(2));
    let first = &list[0];
    let ci = first["CreateIndex"].as_u64().unwrap();
    assert_eq!(
        first,
        &json!({
            "ID": "40e4a748-2192-161a-0510-9bf59fe950b5", "Node": "n1", "Address": "10.0.0.1",
            "Datacenter": "dc1", "TaggedAddresses": {"lan": "10.0.0.1"}, "NodeMeta": {"Env": "prod"},
            "ServiceKind": "", "ServiceID": "web-1", "ServiceName": "web", "ServiceTags": ["prod", "v2"],
            "ServiceAddress": "10.0.0.5", "ServiceTaggedAddresses": {},
            "ServiceWeights": {"Passing": 1, "Warning": 1}, "ServiceMeta": {"Version": "2"},
            "ServicePort": 80, "ServiceEnableTagOverride": false,
            "ServiceProxy": {"MeshGateway": {}, "Expose": {}}, "ServiceConnect": {},
            "CreateIndex": ci, "ModifyIndex": ci
        })
    );
    assert_eq!(list[1]["ServiceID"], "web");
    assert_eq!(list[1]["ServiceTags"], json!([]));
    assert_eq!(
        list[1]["ServiceTaggedAddresses"],
        json!({"lan": {"Address": "10.0.0.9", "Port": 8081}})
    );

    let r = send!(app, "GET", "/v1/catalog/service/web?tag=prod&tag=v2");
    assert_eq!(r.json().as_array().map(Vec::len), Some(1));
    let r = send!(app, "GET", "/v1/catalog/service/web?tag=prod&tag=nope");
    assert_eq!(r.text(), "[]");
    let r = send!(app, "GET", "/v1/catalog/service/unknown");
    assert_eq!((r.status, r.text()), (StatusCode::OK, "[]".to_string()));
    assert!(r.header("X-Consul-Index").is_some());

    let r = send!(app, "GET", "/v1/catalog/nodes?node-meta=Env:prod");
    assert_eq!(r.json().as_array().map(Vec::len), Some(1));
    let r = send!(
        app,
        "GET",
        "/v1/catalog/services?node-meta=Env:prod&node-meta=x:y"
    );
    assert_eq!(r.text(), "{}");
    let r = send!(app, "GET", "/v1/catalog/services?node-meta=Env:prod");
    assert_eq!(r.json(), json!({"web": ["prod", "v2"]}));
    let r = send!(app, "GET", "/v1/catalog/service/web?node-meta=Env:dev");
    assert_eq!(r.text(), "[]");

    let r = send!(app, "GET", "/v1/catalog/nodes");
    let nodes = r.json();
    assert_eq!(nodes.as_array().map(Vec::len), Some(2));
    let n1 = &nodes[0];
    assert_eq!(n1["Node"], "n1");
    assert_eq!(n1["Meta"], json!({"Env": "prod"}));
    assert!(n1.get("CreateIndex").is_some() && n1.get("ModifyIndex").is_some());

    let r = send!(app, "GET", "/v1/catalog/node/n1");
    let v = r.json();
    assert_eq!(v["Node"]["Address"], "10.0.0.1");
    assert_eq!(v["Services"]["web-1"]["Service"], "web");
    assert_eq!(v["Services"]["web-1"]["Tags"], json!(["prod", "v2"]));
    let r = send!(app, "GET", "/v1/catalog/node/ghost");
    assert_eq!((r.status, r.text()), (StatusCode::OK, "null".to_string()));

    let r = send!(app, "GET", "/v1/catalog/datacenters");
    assert_eq!(r.text(), r#"["dc1"]"#);

    // Deregister the service, then the node.
    let r = send!(
        app,
        "PUT",
        "/v1/catalog/deregister",
        r#"{"Node":"n1","ServiceID":"web-1"}"#
    );
    assert_eq!(r.text(), "true");
    let r = send!(app, "GET", "/v1/catalog/service/web");
    assert_eq!(r.json().as_array().map(Vec::len), Some(1));
    let r = send!(app, "PUT", "/v1/catalog/deregister", r#"{"Node":"n2"}"#);
    assert_eq!(r.text(), "true");
    assert_eq!(send!(app, "GET", "/v1/catalog/services").text(), "{}");
}

#[actix_web::test]
async fn bad_register_and_read_inputs() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    for (uri, body, code, prefix) in [
        (
            "/v1/catalog/register",
            "{nope",
            400,
            "Request decode failed: ",
        ),
        ("/v1/catalog/register", "", 400, "Request decode failed: "),
        (
            "/v1/catalog/register",
            r#"{"Node":"n","Address":"a","Service":{"Service":"s","Port":"80"}}"#,
            400,
            "Request decode failed: ",
        ),
        (
            "/v1/catalog/register",
            r#"{"Node":"n","Address":"a","Service":{"Service":"s","Tags":"x"}}"#,
            400,
            "Request decode failed: ",
        ),
        (
            "/v1/catalog/register",
            r#"{"Node":["n"]}"#,
            400,
            "Request decode failed: ",
        ),
        (
            "/v1/catalog/register",
            r#"{"Address":"a"}"#,
            500,
            "Must provide node",
        ),
        (
            "/v1/catalog/register",
            r#"{"Node":"n","Address":"a","Datacenter":"dc9"}"#,
            500,
            "No path to datacenter",
        ),
        (
            "/v1/catalog/register",
            r#"{"Node":"n","Address":"a","Check":{"Name":"c","Status":"bad"}}"#,
            400,
            "Invalid check status: \"bad\"",
        ),
        (
            "/v1/catalog/deregister",
            "[]",
            400,
            "Request decode failed: ",
        ),
        ("/v1/catalog/deregister", "{}", 500, "Must provide node"),
    ] {
        let r = send!(app, "PUT", uri, body);
        assert_eq!(r.status.as_u16(), code, "{body}");
        assert!(r.text().starts_with(prefix), "{body}: {}", r.text());
    }
    let huge = format!(
        r#"{{"Node":"n","Address":"a","NodeMeta":{{"k":"{}"}}}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    let r = send!(app, "PUT", "/v1/catalog/register", huge);
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);

    let r = send!(app, "GET", "/v1/catalog/service/");
    assert_eq!(
        (r.status.as_u16(), r.text()),
        (400, "Missing service name".to_string())
    );
    let r = send!(app, "GET", "/v1/catalog/node/");
    assert_eq!(
        (r.status.as_u16(), r.text()),
        (400, "Missing node name".to_string())
    );
    // None of the refused writes registered anything.
    assert_eq!(send!(app, "GET", "/v1/catalog/nodes").text(), "[]");
}

#[actix_web::test]
async fn blocking_services_wakes_on_register() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let idx = send!(app, "GET", "/v1/catalog/services").index();
    let uri = format!("/v1/catalog/services?index={idx}&wait=30s");
    let blocked = async { send!(app, "GET", &uri) };
    let writer = async {
        send!(app, "PUT", "/v1/catalog/register", REGISTER);
    };
    let (r, _) = futures::join!(blocked, writer);
    assert!(r.index() > idx);
    assert_eq!(r.json(), json!({"web": ["prod", "v2"]}));
}
