//! `/v1/agent/self`, `/v1/agent/members`, `/v1/status/*` end to end.

use super::test_ctx;
use crate::{send, test_app};
use actix_web::http::StatusCode;

#[actix_web::test]
async fn status_leader_and_peers() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let r = send!(app, "GET", "/v1/status/leader");
    assert_eq!(
        (r.status, r.text()),
        (StatusCode::OK, "\"127.0.0.1:8300\"".to_string())
    );
    let r = send!(app, "GET", "/v1/status/peers");
    assert_eq!(r.text(), "[\"127.0.0.1:8300\"]");
}

#[actix_web::test]
async fn agent_self_and_members() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let r = send!(app, "GET", "/v1/agent/self");
    assert_eq!(r.status, StatusCode::OK);
    let v = r.json();
    assert_eq!(v["Config"]["NodeName"], "node1");
    assert_eq!(v["Config"]["Datacenter"], "dc1");
    assert_eq!(v["Config"]["Server"], true);
    assert_eq!(v["Member"]["Addr"], "127.0.0.1");
    assert_eq!(v["Stats"]["consul"]["leader"], "true");
    assert_eq!(v["Stats"]["raft"]["state"], "Leader");
    assert_eq!(v["Stats"]["agent"]["started_unix"], "1700000000");

    let r = send!(app, "GET", "/v1/agent/members");
    let m = r.json();
    assert_eq!(m.as_array().map(Vec::len), Some(1));
    assert_eq!(m[0]["Name"], "node1");
    assert_eq!(m[0]["Tags"]["role"], "consul");
    assert_eq!(m[0]["Status"], 1);
}
