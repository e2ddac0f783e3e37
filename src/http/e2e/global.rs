//! Behaviour shared by every route: routing, methods, path cleaning, query validation.

use super::test_ctx;
use crate::{send, test_app};
use actix_web::http::StatusCode;

#[actix_web::test]
async fn unknown_paths_methods_options_and_banner() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);

    let r = send!(app, "GET", "/v1/nope");
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        r.text(),
        "Invalid URL path: not a recognized HTTP API endpoint"
    );
    assert_eq!(
        r.header("X-Consul-Default-ACL-Policy").as_deref(),
        Some("allow")
    );

    let r = send!(app, "POST", "/v1/kv/a");
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.text(), "method POST not allowed");
    assert_eq!(r.header("Allow").as_deref(), Some("OPTIONS,GET,PUT,DELETE"));

    let r = send!(app, "GET", "/v1/catalog/register");
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.text(), "method GET not allowed");
    assert_eq!(r.header("Allow").as_deref(), Some("OPTIONS,PUT"));

    let r = send!(app, "PUT", "/v1/status/leader");
    assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(r.header("Allow").as_deref(), Some("OPTIONS,GET"));

    let r = send!(app, "OPTIONS", "/v1/catalog/nodes");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.header("Allow").as_deref(), Some("OPTIONS,GET"));
    assert!(r.body.is_empty());

    let r = send!(app, "GET", "/");
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.text(), crate::http::BANNER);

    let r = send!(app, "GET", "/favicon.ico");
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn the_ui_is_served_only_when_enabled() {
    let ctx = super::test_ctx_with(crate::config::Config {
        ui: true,
        ..crate::http::tests_support::test_config()
    })
    .await;
    let app = test_app!(ctx);
    let r = send!(app, "GET", "/");
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.header("Location").as_deref(), Some("/ui/"));
    let r = send!(app, "GET", "/ui");
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    let r = send!(app, "GET", "/ui/");
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.header("Content-Type").unwrap().starts_with("text/html"));
    assert!(r.text().contains("/v1/catalog/services"));
    assert_eq!(
        send!(app, "GET", "/ui/nope.js").status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(send!(app, "PUT", "/ui/").status, StatusCode::NOT_FOUND);

    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    assert_eq!(send!(app, "GET", "/ui/").status, StatusCode::NOT_FOUND);
}

#[actix_web::test]
async fn paths_are_cleaned_and_filtered() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);

    let r = send!(app, "GET", "/v1/kv/a//b?raw=1");
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.header("Location").as_deref(), Some("/v1/kv/a/b?raw=1"));

    let r = send!(app, "GET", "/v1/kv/a/./b");
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.header("Location").as_deref(), Some("/v1/kv/a/b"));

    // Encoded separators are decoded before cleaning, as Go does.
    let r = send!(app, "GET", "/v1/kv/a%2F%2Fb");
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.header("Location").as_deref(), Some("/v1/kv/a/b"));

    let r = send!(app, "GET", "/v1/kv?keys");
    assert_eq!(r.status, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(r.header("Location").as_deref(), Some("/v1/kv/?keys"));

    let r = send!(app, "PUT", "/v1/kv/a%0ab", "x");
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        r.text(),
        "Invalid URL path: contains non-printable characters"
    );

    let r = send!(app, "GET", "/v1/kv/%ff");
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}

#[actix_web::test]
async fn query_validation() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    for (uri, code, text) in [
        (
            "/v1/kv/a?stale&consistent",
            400,
            "Cannot specify ?stale with ?consistent, conflicting semantics.",
        ),
        ("/v1/kv/a?index=abc", 400, "Invalid index"),
        ("/v1/kv/a?index=1&wait=5", 400, "Invalid wait time"),
        ("/v1/catalog/nodes?wait=forever", 400, "Invalid wait time"),
        ("/v1/catalog/services?index=-3", 400, "Invalid index"),
        ("/v1/kv/a?dc=dc2", 500, "No path to datacenter"),
        ("/v1/catalog/nodes?dc=other", 500, "No path to datacenter"),
        ("/v1/status/leader?dc=other", 500, "No path to datacenter"),
        (
            "/v1/kv/a?filter=Key%20==%20a",
            400,
            crate::http::query::FILTER_UNSUPPORTED_TEXT,
        ),
        (
            "/v1/catalog/nodes?filter=Node%20==",
            400,
            "Failed to create boolean expression evaluator: expected a value at the end of the filter (offset 7)",
        ),
    ] {
        let r = send!(app, "GET", uri);
        assert_eq!(r.status.as_u16(), code, "{uri}");
        assert_eq!(r.text(), text, "{uri}");
        assert_eq!(
            r.header("Content-Type").as_deref(),
            Some("text/plain; charset=utf-8"),
            "{uri}"
        );
    }
    let r = send!(app, "GET", "/v1/kv/a?dc=dc1");
    assert_eq!(r.status, StatusCode::NOT_FOUND);
}

/// Every GET route either applies `?filter=` or refuses it: none answers everything as if
/// the filter had matched. The filtering ones are Consul's (its handlers that parse a
/// filter); a malformed expression reaches their evaluator.
#[actix_web::test]
async fn every_get_route_filters_or_refuses_a_filter() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let refusing = [
        "/",
        "/v1/kv/a",
        "/v1/kv/?keys",
        "/v1/catalog/datacenters",
        "/v1/status/leader",
        "/v1/status/peers",
        "/v1/agent/self",
        "/v1/agent/service/web",
        "/v1/agent/health/service/id/web",
        "/v1/agent/health/service/name/web",
        "/v1/snapshot",
        "/v1/event/list",
        "/v1/operator/raft/configuration",
        "/v1/operator/autopilot/health",
        "/v1/session/list",
        "/v1/session/info/adf4238a-882b-9ddc-4a9d-5b6758e4159e",
        "/v1/session/node/node1",
    ];
    let filtering = [
        "/v1/catalog/nodes",
        "/v1/catalog/services",
        "/v1/catalog/service/web",
        "/v1/catalog/node/node1",
        "/v1/health/service/web",
        "/v1/health/node/node1",
        "/v1/health/checks/web",
        "/v1/health/state/any",
        "/v1/agent/members",
        "/v1/agent/members?wan=1",
    ];
    let with = |path: &str, filter: &str| {
        let sep = if path.contains('?') { '&' } else { '?' };
        format!("{path}{sep}filter={filter}")
    };
    for path in refusing {
        let r = send!(app, "GET", &with(path, "Name%20==%20x"));
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            r.text(),
            crate::http::query::FILTER_UNSUPPORTED_TEXT,
            "{path}"
        );
        // An empty filter is no filter, as in Consul.
        let r = send!(app, "GET", &with(path, ""));
        assert_ne!(r.status, StatusCode::BAD_REQUEST, "{path}");
    }
    for path in filtering {
        let r = send!(app, "GET", &with(path, "Name%20=="));
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(
            r.text()
                .starts_with("Failed to create boolean expression evaluator: "),
            "{path}: {}",
            r.text()
        );
    }
    // The agent's local services and checks filter too (tests/agent_local.rs shows it on a
    // running agent); this context has no local state, so only "not refused" shows here.
    for path in ["/v1/agent/services", "/v1/agent/checks"] {
        let r = send!(app, "GET", &with(path, "Name%20==%20x"));
        assert_ne!(
            r.text(),
            crate::http::query::FILTER_UNSUPPORTED_TEXT,
            "{path}"
        );
    }
    // Writes are not listings: a PUT route is not refused by the GET rule (KV and txn
    // writes still refuse through their query options).
    let r = send!(app, "PUT", "/v1/agent/join/10.0.0.9?filter=Name%20==%20x");
    assert_eq!(r.status, StatusCode::OK);
}

#[actix_web::test]
async fn pretty_output() {
    let ctx = test_ctx().await;
    let app = test_app!(ctx);
    let r = send!(app, "GET", "/v1/catalog/datacenters?pretty");
    assert_eq!(r.text(), "[\n    \"dc1\"\n]\n");
    let r = send!(app, "GET", "/v1/catalog/datacenters");
    assert_eq!(r.text(), "[\"dc1\"]");
    assert_eq!(
        r.header("Content-Type").as_deref(),
        Some("application/json")
    );

    let mut cfg = crate::http::tests_support::test_config();
    cfg.pretty_json = true;
    let ctx = super::test_ctx_with(cfg).await;
    let app = test_app!(ctx);
    let r = send!(app, "PUT", "/v1/kv/p", "v");
    assert_eq!(r.text(), "true\n");
}

#[actix_web::test]
async fn start_binds_and_stops() {
    let mut cfg = crate::http::tests_support::test_config();
    cfg.ports.http = 0;
    let ctx = super::test_ctx_with(cfg).await;
    let server = crate::http::start(ctx).expect("binds an ephemeral port");
    let handle = server.handle();
    actix_web::rt::spawn(server);
    handle.stop(true).await;

    let mut cfg = crate::http::tests_support::test_config();
    cfg.ports.http = -1;
    let ctx = super::test_ctx_with(cfg).await;
    assert!(crate::http::start(ctx).is_err());
}

#[actix_web::test]
async fn leaderless_server_refuses_default_reads_and_writes() {
    let config = crate::http::tests_support::test_config();
    let server = actors::ServerHandle::start(actors::ServerOptions {
        server_id: config.node_id.clone(),
        node_name: config.node_name.clone(),
        server_addr: config.server_rpc_addr(),
        data_dir: None,
        bootstrap: false,
        raft_timing: protocol::raft::RaftTiming::with_multiplier(1),
        snapshot_threshold: actors::DEFAULT_SNAPSHOT_THRESHOLD,
        trailing_logs: actors::DEFAULT_TRAILING_LOGS,
        log_cache: protocol::raft::CacheBudget::default(),
    })
    .await
    .expect("server starts");
    let membership =
        actors::membership::StaticMembership::new(vec![crate::member_tags::self_member(&config)]);
    let ctx = std::sync::Arc::new(crate::context::AgentContext::for_server(
        std::sync::Arc::new(config),
        server,
        membership,
        0,
    ));
    let app = test_app!(ctx);

    let r = send!(app, "GET", "/v1/kv/x");
    assert_eq!(
        (r.status.as_u16(), r.text()),
        (500, "No cluster leader".to_string())
    );
    let r = send!(app, "GET", "/v1/catalog/nodes?consistent");
    assert_eq!(
        (r.status.as_u16(), r.text()),
        (500, "No cluster leader".to_string())
    );

    let r = send!(app, "GET", "/v1/kv/x?stale");
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.header("X-Consul-KnownLeader").as_deref(), Some("false"));
    assert_eq!(
        r.header("X-Consul-Effective-Consistency").as_deref(),
        Some("stale")
    );

    let r = send!(app, "GET", "/v1/status/leader");
    assert_eq!(r.text(), "\"\"");

    let r = send!(app, "PUT", "/v1/kv/x", "v");
    assert_eq!(r.status.as_u16(), 500);
    assert_eq!(r.text(), "No cluster leader");
}

/// Manual load probe (ignored): serves on CAIRN_BENCH_PORT for CAIRN_BENCH_SECS seconds,
/// with the key `bench` present, so `hey` can be pointed at it.
#[actix_web::test]
#[ignore]
async fn serve_for_load_probe() {
    let port: i32 = std::env::var("CAIRN_BENCH_PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(18500);
    let secs: u64 = std::env::var("CAIRN_BENCH_SECS")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(30);
    let mut cfg = crate::http::tests_support::test_config();
    cfg.ports.http = port;
    let ctx = super::test_ctx_with(cfg).await;
    ctx.server
        .as_ref()
        .expect("a server agent")
        .propose(protocol::store::Command::Kv(protocol::store::KvOp::Set {
            key: "bench".into(),
            value: b"value".to_vec(),
            flags: 0,
        }))
        .await
        .expect("seed write");
    let server = crate::http::start(ctx).expect("binds");
    let handle = server.handle();
    actix_web::rt::spawn(server);
    tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
    handle.stop(true).await;
}

#[actix_web::test]
async fn a_client_over_its_concurrency_limit_gets_429_and_others_do_not() {
    use crate::http::limits::{ClientLimiter, TOO_MANY_REQUESTS_TEXT};
    use actix_web::test::{call_service, init_service, read_body, TestRequest};
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    let ctx = test_ctx().await;
    let limiter = ClientLimiter::new(1);
    let app = init_service(
        actix_web::App::new().configure(crate::http::configure_with_limiter(
            ctx.clone(),
            limiter.clone(),
        )),
    )
    .await;
    let busy: SocketAddr = "10.0.0.1:40000".parse().unwrap();
    let calm: SocketAddr = "10.0.0.2:40000".parse().unwrap();
    let get =
        |peer: SocketAddr, uri: &str| TestRequest::get().uri(uri).peer_addr(peer).to_request();
    let index = send!(app, "GET", "/v1/kv/?recurse").index();
    // A blocking query parks and keeps its slot; meanwhile the same client is refused.
    let parked = call_service(
        &app,
        get(busy, &format!("/v1/kv/missing?index={index}&wait=400ms")),
    );
    let meanwhile = async {
        let deadline = Instant::now() + Duration::from_secs(5);
        while limiter.in_flight(busy.ip()) == 0 {
            assert!(Instant::now() < deadline, "the blocking query never parked");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let refused = call_service(&app, get(busy, "/v1/kv/missing")).await;
        assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(
            refused
                .headers()
                .get("X-Consul-Default-ACL-Policy")
                .map(|v| v.as_bytes().to_vec()),
            Some(b"allow".to_vec())
        );
        assert_eq!(read_body(refused).await, TOO_MANY_REQUESTS_TEXT.as_bytes());
        let other = call_service(&app, get(calm, "/v1/kv/missing")).await;
        assert_eq!(other.status(), StatusCode::NOT_FOUND);
    };
    let (parked, ()) = futures::join!(parked, meanwhile);
    assert_eq!(parked.status(), StatusCode::NOT_FOUND);
    // Every slot is free again.
    assert_eq!(limiter.clients(), 0);
    let after = call_service(&app, get(busy, "/v1/kv/missing")).await;
    assert_eq!(after.status(), StatusCode::NOT_FOUND);
}
