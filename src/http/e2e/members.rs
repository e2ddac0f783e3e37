//! `/v1/agent/members`, `join`, `leave`, `force-leave` end to end, over a
//! [`StaticMembership`] (the gossip actor is tested on its own).

use super::{test_ctx_with_membership, Reply};
use crate::http::tests_support::test_config;
use crate::member_tags::self_member;
use crate::{send, test_app};
use actix_web::http::StatusCode;
use actors::membership::{MemberStatus, MemberView, Membership, StaticMembership};
use std::sync::Arc;

/// A member of `dc1` with the tags of its role (`consul` or `node`).
fn member(name: &str, ip: [u8; 4], role: &str, status: MemberStatus) -> MemberView {
    let mut config = test_config();
    config.node_name = name.into();
    config.node_id = format!("id-{name}");
    config.bind_addr = ip.into();
    config.server = role == "consul";
    let mut m = self_member(&config);
    m.status = status;
    m
}

/// node1 (this agent, a server), srv2 (a failed server) and web (an alive client).
fn cluster() -> Arc<StaticMembership> {
    StaticMembership::new(vec![
        member("web", [10, 0, 0, 3], "node", MemberStatus::Alive),
        member("srv2", [10, 0, 0, 2], "consul", MemberStatus::Failed),
        self_member(&test_config()),
    ])
}

fn names(r: &Reply) -> Vec<String> {
    r.json()
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["Name"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[actix_web::test]
async fn members_have_consuls_shape_in_name_order() {
    let ctx = test_ctx_with_membership(test_config(), cluster()).await;
    let app = test_app!(ctx);
    let r = send!(app, "GET", "/v1/agent/members");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(names(&r), ["node1", "srv2", "web"]);
    let v = r.json();
    let web = &v[2];
    let build = crate::member_tags::build_tag();
    assert_eq!(
        web.to_string(),
        format!(
            "{{\"Addr\":\"10.0.0.3\",\"DelegateCur\":4,\"DelegateMax\":5,\"DelegateMin\":2,\
             \"Name\":\"web\",\"Port\":8301,\"ProtocolCur\":2,\"ProtocolMax\":5,\"ProtocolMin\":1,\
             \"Status\":1,\"Tags\":{{\"acls\":\"0\",\"build\":\"{build}\",\"dc\":\"dc1\",\
             \"id\":\"id-web\",\"role\":\"node\",\"segment\":\"\",\"vsn\":\"2\",\"vsn_max\":\"3\",\
             \"vsn_min\":\"2\"}}}}"
        )
    );
    // Field order on the wire is Consul's (Name first), not alphabetical.
    assert!(r
        .text()
        .starts_with("[{\"Name\":\"node1\",\"Addr\":\"127.0.0.1\",\"Port\":8301,\"Tags\":{"));
    assert_eq!(v[1]["Status"], 4);
    // agent/self reports the same member as the list.
    let me = send!(app, "GET", "/v1/agent/self").json();
    assert_eq!(me["Member"], v[0]);
}

#[actix_web::test]
async fn segments_and_the_wan_pool() {
    let ctx = test_ctx_with_membership(test_config(), cluster()).await;
    let app = test_app!(ctx);
    for q in ["segment=", "segment=_all", "wan=", "wan"] {
        let r = send!(app, "GET", &format!("/v1/agent/members?{q}"));
        assert_eq!(names(&r), ["node1", "srv2", "web"], "{q}");
    }
    let r = send!(app, "GET", "/v1/agent/members?segment=alpha");
    assert_eq!((r.status, r.text()), (StatusCode::OK, "[]".to_string()));

    // The WAN pool: servers only, as <node>.<dc> on their WAN port.
    for q in ["wan=1", "wan=1&segment=_all", "wan=true&segment="] {
        let r = send!(app, "GET", &format!("/v1/agent/members?{q}"));
        assert_eq!(names(&r), ["node1.dc1", "srv2.dc1"], "{q}");
        let v = r.json();
        assert_eq!(v[0]["Port"], 8302);
        assert_eq!(v[0]["Tags"]["role"], "consul");
        assert!(v[0]["Tags"].get("wan_join_port").is_none());
        assert_eq!(v[1]["Status"], 4);
    }
    let r = send!(app, "GET", "/v1/agent/members?wan=1&segment=alpha");
    assert_eq!(
        (r.status, r.text()),
        (
            StatusCode::BAD_REQUEST,
            "Cannot provide a segment with wan=true".to_string()
        )
    );
}

#[actix_web::test]
async fn members_take_a_filter() {
    let ctx = test_ctx_with_membership(test_config(), cluster()).await;
    let app = test_app!(ctx);
    let get = |expr: &str| {
        let q = percent_encoding::utf8_percent_encode(expr, percent_encoding::NON_ALPHANUMERIC);
        format!("/v1/agent/members?filter={q}")
    };
    let r = send!(app, "GET", &get("Status == 1"));
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(names(&r), ["node1", "web"]);
    // Kept members are written as the unfiltered list writes them (Name first).
    assert!(
        r.text().starts_with("[{\"Name\":\"node1\",\"Addr\":"),
        "{}",
        r.text()
    );
    let r = send!(app, "GET", &get("Tags.role == consul and Status != 1"));
    assert_eq!(names(&r), ["srv2"]);
    let r = send!(app, "GET", &get(r#"Addr matches "^10\\.""#));
    assert_eq!(names(&r), ["srv2", "web"]);
    let r = send!(app, "GET", &get("Name == nosuch"));
    assert_eq!((r.status, r.text()), (StatusCode::OK, "[]".to_string()));
    // The WAN pool and a segment filter the same way.
    let r = send!(app, "GET", &format!("{}&wan=1", get("Status == 4")));
    assert_eq!(names(&r), ["srv2.dc1"]);
    let r = send!(app, "GET", &format!("{}&segment=_all", get("Port == 8301")));
    assert_eq!(names(&r), ["node1", "srv2", "web"]);

    // Malformed, or not applicable to the data: 400, never the whole list.
    let r = send!(app, "GET", &get("Name =="));
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.text(),
        "Failed to create boolean expression evaluator: expected a value at the end of the filter (offset 7)"
    );
    let r = send!(app, "GET", &get("Nope == x"));
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.text().starts_with("Failed to evaluate filter: "),
        "{}",
        r.text()
    );
    // Consul checks wan and segment before the filter.
    let r = send!(app, "GET", &format!("{}&wan=1&segment=a", get("Name ==")));
    assert_eq!(r.text(), "Cannot provide a segment with wan=true");
    // An empty filter is none.
    let r = send!(app, "GET", "/v1/agent/members?filter=");
    assert_eq!(names(&r), ["node1", "srv2", "web"]);
}

#[actix_web::test]
async fn a_client_agent_has_no_wan_pool() {
    let mut config = test_config();
    config.server = false;
    let ctx = test_ctx_with_membership(config, cluster()).await;
    let app = test_app!(ctx);
    let r = send!(app, "GET", "/v1/agent/members?wan=1");
    assert_eq!((r.status, r.text()), (StatusCode::OK, "null".to_string()));
    // Consul's filter over the nil list gives an empty one.
    let r = send!(app, "GET", "/v1/agent/members?wan=1&filter=Status%20==%201");
    assert_eq!((r.status, r.text()), (StatusCode::OK, "[]".to_string()));
    let r = send!(app, "PUT", "/v1/agent/join/10.0.0.9?wan=1");
    assert_eq!(
        (r.status, r.text()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Must be a server to join WAN cluster".to_string()
        )
    );
    let r = send!(app, "PUT", "/v1/agent/force-leave/srv2.dc1?wan");
    assert_eq!(
        (r.status, r.text()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "Must be a server to force-leave a node from the WAN cluster".to_string()
        )
    );
    // On a client, the WAN name is just an unknown LAN name.
    let r = send!(app, "PUT", "/v1/agent/force-leave/srv2.dc1");
    assert_eq!(r.text(), "agent: No node found with name 'srv2.dc1'");
}

#[actix_web::test]
async fn join_routes_methods_and_errors() {
    let members = cluster();
    let ctx = test_ctx_with_membership(test_config(), members.clone()).await;
    let app = test_app!(ctx);
    let r = send!(app, "PUT", "/v1/agent/join/10.0.0.9:8301");
    assert_eq!((r.status, r.text()), (StatusCode::OK, String::new()));
    let r = send!(app, "PUT", "/v1/agent/join/%5B::1%5D:8301?wan=");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(members.state.lock().joined, ["10.0.0.9:8301", "[::1]:8301"]);

    let r = send!(app, "GET", "/v1/agent/join/10.0.0.9");
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("Allow").as_deref(), Some("OPTIONS,PUT"));
    let r = send!(app, "POST", "/v1/agent/members");
    assert_eq!(r.header("Allow").as_deref(), Some("OPTIONS,GET"));
    let r = send!(app, "PUT", "/v1/agent/join");
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.header("Location").as_deref(), Some("/v1/agent/join/"));

    let r = send!(app, "PUT", "/v1/agent/join/10.0.0.9?wan=1");
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.text().starts_with("WAN join is not supported"),
        "{}",
        r.text()
    );

    // A membership whose join fails: 500 with its text.
    let ctx = test_ctx_with_membership(test_config(), Arc::new(NoJoin)).await;
    let app = test_app!(ctx);
    let r = send!(app, "PUT", "/v1/agent/join/10.0.0.9");
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        r.text().starts_with("Failed to join 10.0.0.9: "),
        "{}",
        r.text()
    );
}

#[actix_web::test]
async fn force_leave_marks_left_or_prunes() {
    let members = cluster();
    let ctx = test_ctx_with_membership(test_config(), members.clone()).await;
    let app = test_app!(ctx);
    let r = send!(app, "PUT", "/v1/agent/force-leave/nosuch");
    assert_eq!(
        (r.status, r.text()),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "agent: No node found with name 'nosuch'".to_string()
        )
    );
    let r = send!(app, "PUT", "/v1/agent/force-leave/web");
    assert_eq!((r.status, r.text()), (StatusCode::OK, String::new()));
    let status = |name: &str| {
        members
            .members()
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.status)
    };
    assert_eq!(status("web"), Some(MemberStatus::Left));
    // A server's WAN name reaches it, with ?wan (presence) or without.
    let r = send!(app, "PUT", "/v1/agent/force-leave/srv2.dc1?wan");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(status("srv2"), Some(MemberStatus::Left));
    let r = send!(app, "PUT", "/v1/agent/force-leave/srv2.dc1?prune=");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(status("srv2"), None);
    let r = send!(app, "PUT", "/v1/agent/force-leave/web?wan=1");
    assert_eq!(r.text(), "agent: No node found with name 'web'");
    let r = send!(app, "PUT", "/v1/agent/force-leave/web?prune");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(names(&send!(app, "GET", "/v1/agent/members")), ["node1"]);
}

#[actix_web::test]
async fn leave_then_the_agent_is_asked_to_stop() {
    let members = cluster();
    let ctx = test_ctx_with_membership(test_config(), members.clone()).await;
    let app = test_app!(ctx);
    let r = send!(app, "GET", "/v1/agent/leave");
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(!members.state.lock().left);
    let r = send!(app, "PUT", "/v1/agent/leave");
    assert_eq!((r.status, r.text()), (StatusCode::OK, String::new()));
    assert!(members.state.lock().left);
    // The stop request is kept for the wiring even though nothing waits yet.
    tokio::time::timeout(std::time::Duration::from_secs(5), ctx.shutdown.notified())
        .await
        .expect("shutdown was requested");
}

/// A membership whose joins always fail, as a gossip layer with nobody at the address.
struct NoJoin;

impl actors::membership::Membership for NoJoin {
    fn members(&self) -> Vec<actors::membership::MemberView> {
        Vec::new()
    }
    fn join(
        &self,
        addrs: Vec<String>,
    ) -> futures::future::BoxFuture<'static, Result<usize, actors::membership::MembershipError>>
    {
        let text = format!("Failed to join {}: no push-pull reply", addrs.join(", "));
        Box::pin(async move { Err(actors::membership::MembershipError::JoinFailed(text)) })
    }
    fn leave(
        &self,
    ) -> futures::future::BoxFuture<'static, Result<(), actors::membership::MembershipError>> {
        Box::pin(async { Ok(()) })
    }
    fn force_leave(&self, _: &str, _: bool) -> Result<(), actors::membership::MembershipError> {
        Ok(())
    }
}
