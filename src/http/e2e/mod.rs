//! End-to-end handler tests: the real app factory over a real in-memory, single-voter
//! Raft server (bootstrap), driven through `actix_web::test`.

mod agent_status;
mod catalog;
mod global;
mod health;
mod kv;
mod members;
mod session;
mod txn;

use super::tests_support::test_config;
use crate::context::AgentContext;
use actix_web::http::header::HeaderMap;
use actix_web::http::StatusCode;
use actors::membership::{Membership, StaticMembership};
use actors::{ServerHandle, ServerOptions};
use std::sync::Arc;
use std::time::{Duration, Instant};

pub async fn test_ctx() -> Arc<AgentContext> {
    test_ctx_with(test_config()).await
}

pub async fn test_ctx_with(config: crate::config::Config) -> Arc<AgentContext> {
    let membership = StaticMembership::new(vec![crate::member_tags::self_member(&config)]);
    test_ctx_with_membership(config, membership).await
}

/// A context whose membership is the given one (edge tests of members, join ...).
pub async fn test_ctx_with_membership(
    config: crate::config::Config,
    membership: Arc<dyn Membership>,
) -> Arc<AgentContext> {
    let server = ServerHandle::start(ServerOptions {
        server_id: config.node_id.clone(),
        node_name: config.node_name.clone(),
        server_addr: config.server_rpc_addr(),
        data_dir: None,
        bootstrap: true,
        raft_timing: protocol::raft::RaftTiming::with_multiplier(1),
        snapshot_threshold: actors::DEFAULT_SNAPSHOT_THRESHOLD,
        trailing_logs: actors::DEFAULT_TRAILING_LOGS,
        log_cache: protocol::raft::CacheBudget::default(),
    })
    .await
    .expect("in-memory server starts");
    // Wait (bounded) for the single voter to elect itself and apply its no-op.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !(server.status().is_leader() && *server.applied().borrow() > 0) {
        assert!(Instant::now() < deadline, "no leader within 10s");
        let mut applied = server.applied();
        let _ = tokio::time::timeout(Duration::from_millis(20), applied.changed()).await;
    }
    Arc::new(AgentContext::for_server(
        Arc::new(config),
        server,
        membership,
        1_700_000_000,
    ))
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap_or_default().to_string())
    }
    pub fn index(&self) -> u64 {
        self.header("X-Consul-Index")
            .and_then(|v| v.parse().ok())
            .expect("X-Consul-Index header")
    }
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// Send one request through the test app and collect the whole reply.
#[macro_export]
macro_rules! send {
    ($app:expr, $method:expr, $uri:expr) => {
        $crate::send!($app, $method, $uri, Vec::<u8>::new())
    };
    ($app:expr, $method:expr, $uri:expr, $body:expr) => {{
        let method = actix_web::http::Method::from_bytes($method.as_bytes()).expect("method");
        let body: Vec<u8> = $body.into();
        let req = actix_web::test::TestRequest::default()
            .method(method)
            .uri($uri)
            .set_payload(body)
            .to_request();
        let resp = actix_web::test::call_service(&$app, req).await;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = actix_web::test::read_body(resp).await.to_vec();
        $crate::http::e2e::Reply {
            status,
            headers,
            body,
        }
    }};
}

/// Build the app the way `start` does.
#[macro_export]
macro_rules! test_app {
    ($ctx:expr) => {
        actix_web::test::init_service(
            actix_web::App::new().configure($crate::http::configure($ctx.clone())),
        )
        .await
    };
}
