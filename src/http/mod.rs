//! actix-web edge for Consul's HTTP API v1.
//!
//! One catch-all service does the routing itself, so that the Consul behaviours that
//! cut across endpoints live in one place: Go-style path cleaning (301), percent-decoded
//! keys, the unprintable-character filter, per-route method lists (405 + `Allow`,
//! `OPTIONS`), and the `X-Consul-Default-ACL-Policy` header. Each API family has its own
//! module; `error.rs` maps typed errors to status codes and plain-text bodies.

pub mod agent;
pub mod agent_local;
pub mod body;
pub mod catalog;
#[cfg(test)]
mod e2e;
pub mod error;
pub mod event;
pub mod faults;
#[cfg(test)]
mod fuzz_tests;
pub mod head_limit;
pub mod health;
pub mod kv;
pub mod limits;
pub mod members;
pub mod operator;
pub mod query;
pub mod render;
pub mod session;
pub mod snapshot;
pub mod status;
pub mod txn;
pub mod ui;

use crate::context::AgentContext;
use actix_web::dev::Server;
use actix_web::http::{header, Method, StatusCode};
use actix_web::web::{self, Bytes, Payload};
use actix_web::{App, HttpRequest, HttpResponse};
use error::ApiError;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};
use protocol::api::{WriteOutcome, WriteRequest};
use query::Query;
use std::sync::Arc;

/// Start the HTTP listener on every client address at `ports.http`, one worker per core.
/// The caller skips this when the port is negative, and awaits or spawns the server; OS
/// signals are not handled here (stop it with `Server::handle().stop(..)`).
///
/// Built from actix-server and actix-http's HTTP/1 service rather than actix-web's
/// `HttpServer` (which it mirrors: same timeouts, backlog, graceful shutdown) because
/// `HttpServer` cannot put anything between the socket and the parser, and
/// [`head_limit`] must: it answers oversized request heads 414/431 and closes cleanly.
pub fn start(ctx: Arc<AgentContext>) -> std::io::Result<Server> {
    let port = u16::try_from(ctx.config.ports.http).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "HTTP port is disabled or invalid",
        )
    })?;
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    // One limiter for every worker: the per-client limit is for the whole agent.
    let limiter = limits::ClientLimiter::new(limits::MAX_CONCURRENT_REQUESTS_PER_CLIENT);
    // Signals belong to the agent (leave, then stop every listener); blocking queries
    // should not hold a shutdown for long.
    let mut builder = actix_server::Server::build()
        .workers(workers)
        .disable_signals()
        .shutdown_timeout(5);
    let shutdown = builder.graceful_shutdown_signal();
    for ip in &ctx.config.client_addrs {
        let listener = listen(std::net::SocketAddr::new(*ip, port))?;
        let local = listener.local_addr()?;
        let (ctx, limiter, shutdown) = (ctx.clone(), limiter.clone(), shutdown.clone());
        builder = builder.listen(format!("cairn-http-{local}"), listener, move || {
            use actix_service::IntoServiceFactory;
            let app = App::new()
                .configure(configure_with_limiter(ctx.clone(), limiter.clone()))
                .into_factory();
            // The app config actix-web's `HttpServer` gives (host, address). Its constructor
            // is crate-private; `__priv_test_new` is the doc-hidden public door actix-test
            // uses (a change there fails the build, never silently), while
            // `AppConfig::default()` would report a made-up host and address.
            let app = actix_service::map_config(app, move |_| {
                actix_web::dev::AppConfig::__priv_test_new(false, local.to_string(), local)
            });
            let limiter = limiter.clone();
            let on_connect =
                move |peer: Option<std::net::SocketAddr>, data: &mut actix_web::dev::Extensions| {
                    limits::on_connect(&limiter, peer, data)
                };
            head_limit::serve(head_limit::h1_service(
                app,
                local,
                on_connect,
                shutdown.clone(),
            ))
        })?;
    }
    Ok(builder.run())
}

/// A listening socket as actix-web's `HttpServer::bind` makes it: address reuse (a
/// restarted agent binds at once) and a 1024-connection backlog.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// The app factory: `App::new().configure(http::configure(ctx))`, also used by tests
/// (with its own per-client limiter at Consul's default).
pub fn configure(ctx: Arc<AgentContext>) -> impl FnOnce(&mut web::ServiceConfig) {
    configure_with_limiter(
        ctx,
        limits::ClientLimiter::new(limits::MAX_CONCURRENT_REQUESTS_PER_CLIENT),
    )
}

/// The app factory with a given per-client limiter (shared by all workers of a server).
pub fn configure_with_limiter(
    ctx: Arc<AgentContext>,
    limiter: Arc<limits::ClientLimiter>,
) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::from(ctx));
        cfg.app_data(web::Data::from(limiter));
        cfg.default_service(web::to(dispatch));
    }
}

/// A request after path cleaning and query parsing; the body is read per route.
pub struct ApiRequest {
    pub method: Method,
    pub query: Query,
    /// `?pretty` or `pretty_json` in the config.
    pub pretty: bool,
}

/// Lazily reads the body with the route's limit.
pub struct BodyReader<'a> {
    content_length: Option<u64>,
    payload: &'a mut Payload,
}

impl BodyReader<'_> {
    pub async fn read(
        &mut self,
        limit: usize,
        too_large: fn(u64) -> ApiError,
    ) -> Result<Bytes, ApiError> {
        body::read_limited(
            self.content_length,
            self.payload,
            limit,
            too_large,
            std::time::Duration::from_secs(body::BODY_READ_TIMEOUT_SECS),
        )
        .await
    }
}

/// Ask the endpoint for a write and answer Consul-style: `true`, `true`/`false` for
/// conditional writes, 500 with the state machine's or Raft's text otherwise.
pub async fn write(
    ctx: &AgentContext,
    write: WriteRequest,
    pretty: bool,
) -> Result<HttpResponse, ApiError> {
    match ctx.api.write(write).await? {
        WriteOutcome::Done => render::json_response(&true, pretty),
        WriteOutcome::Bool(b) => render::json_response(&b, pretty),
        // Only `/v1/txn` sends transactions, and it renders their outcome itself.
        WriteOutcome::Txn(_) => Err(ApiError::internal(
            "unexpected transaction outcome for a plain write",
        )),
    }
}

// ---------- routing ----------

const GET: (&[Method], &str) = (&[Method::GET], "OPTIONS,GET");
const PUT: (&[Method], &str) = (&[Method::PUT], "OPTIONS,PUT");
const DELETE: (&[Method], &str) = (&[Method::DELETE], "OPTIONS,DELETE");
const FAULTS: (&[Method], &str) = (
    &[Method::GET, Method::PUT, Method::DELETE],
    "OPTIONS,GET,PUT,DELETE",
);
const GET_PUT: (&[Method], &str) = (&[Method::GET, Method::PUT], "OPTIONS,GET,PUT");
const KV: (&[Method], &str) = (
    &[Method::GET, Method::PUT, Method::DELETE],
    "OPTIONS,GET,PUT,DELETE",
);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route<'a> {
    Index,
    Kv(&'a str),
    Catalog(catalog::CatalogRoute<'a>),
    StatusLeader,
    StatusPeers,
    Agent(agent::AgentRoute),
    AgentLocal(agent_local::LocalRoute<'a>),
    Members(members::MembersRoute<'a>),
    Health(health::HealthRoute<'a>),
    Operator(operator::OperatorRoute),
    /// `/v1/cairn/faults[/<peer>]` (only with `-fault-injection`).
    Faults(Option<&'a str>),
    Snapshot,
    Session(session::SessionRoute<'a>),
    Txn,
    Event(event::EventRoute<'a>),
}

type Allowed = (&'static [Method], &'static str);

/// Match a cleaned, decoded path to its route and allowed methods.
fn route(path: &str) -> Option<(Route<'_>, Allowed)> {
    use catalog::CatalogRoute as C;
    use members::MembersRoute as M;
    use operator::OperatorRoute as O;
    use session::SessionRoute as S;
    if path == "/" {
        return Some((Route::Index, GET));
    }
    let rest = path.strip_prefix("/v1/")?;
    if let Some(key) = rest.strip_prefix("kv/") {
        return Some((Route::Kv(key), KV));
    }
    let found = match rest {
        "catalog/register" => (Route::Catalog(C::Register), PUT),
        "catalog/deregister" => (Route::Catalog(C::Deregister), PUT),
        "catalog/datacenters" => (Route::Catalog(C::Datacenters), GET),
        "catalog/nodes" => (Route::Catalog(C::Nodes), GET),
        "catalog/services" => (Route::Catalog(C::Services), GET),
        "status/leader" => (Route::StatusLeader, GET),
        "status/peers" => (Route::StatusPeers, GET),
        "agent/self" => (Route::Agent(agent::AgentRoute::SelfInfo), GET),
        "agent/members" => (Route::Members(M::Members), GET),
        "agent/leave" => (Route::Members(M::Leave), PUT),
        "cairn/faults" => (Route::Faults(None), FAULTS),
        "snapshot" => (Route::Snapshot, GET_PUT),
        "txn" => (Route::Txn, PUT),
        "event/list" => (Route::Event(event::EventRoute::List), GET),
        "operator/raft/configuration" => (Route::Operator(O::RaftConfiguration), GET),
        "operator/raft/peer" => (Route::Operator(O::RaftPeer), DELETE),
        "operator/autopilot/health" => (Route::Operator(O::AutopilotHealth), GET),
        "session/create" => (Route::Session(S::Create), PUT),
        "session/list" => (Route::Session(S::List), GET),
        _ => {
            if let Some(local) = rest.strip_prefix("agent/").and_then(agent_local::route) {
                let methods = if agent_local::is_read(local) {
                    GET
                } else {
                    PUT
                };
                (Route::AgentLocal(local), methods)
            } else if let Some(name) = rest.strip_prefix("event/fire/") {
                (Route::Event(event::EventRoute::Fire(name)), PUT)
            } else if let Some(peer) = rest.strip_prefix("cairn/faults/") {
                (Route::Faults(Some(peer)), FAULTS)
            } else if let Some(addr) = rest.strip_prefix("agent/join/") {
                (Route::Members(M::Join(addr)), PUT)
            } else if let Some(node) = rest.strip_prefix("agent/force-leave/") {
                (Route::Members(M::ForceLeave(node)), PUT)
            } else if let Some(name) = rest.strip_prefix("catalog/service/") {
                (Route::Catalog(C::Service(name)), GET)
            } else if let Some(name) = rest.strip_prefix("catalog/node/") {
                (Route::Catalog(C::Node(name)), GET)
            } else if let Some(name) = rest.strip_prefix("health/service/") {
                (Route::Health(health::HealthRoute::Service(name)), GET)
            } else if let Some(name) = rest.strip_prefix("health/node/") {
                (Route::Health(health::HealthRoute::Node(name)), GET)
            } else if let Some(name) = rest.strip_prefix("health/checks/") {
                (Route::Health(health::HealthRoute::Checks(name)), GET)
            } else if let Some(state) = rest.strip_prefix("health/state/") {
                (Route::Health(health::HealthRoute::State(state)), GET)
            } else if let Some(id) = rest.strip_prefix("session/destroy/") {
                (Route::Session(S::Destroy(id)), PUT)
            } else if let Some(id) = rest.strip_prefix("session/info/") {
                (Route::Session(S::Info(id)), GET)
            } else if let Some(node) = rest.strip_prefix("session/node/") {
                (Route::Session(S::Node(node)), GET)
            } else if let Some(id) = rest.strip_prefix("session/renew/") {
                (Route::Session(S::Renew(id)), PUT)
            } else {
                return None;
            }
        }
    };
    Some(found)
}

/// Whether a route's GET applies `?filter=`: the endpoints Consul filters (its handlers
/// that call `parseFilter` or build a bexpr filter). Every other GET refuses a filter
/// with [`query::FILTER_UNSUPPORTED_TEXT`] rather than answer everything, which would
/// tell the client its filter matched everything. No wildcard arm: a new route decides.
fn takes_filter(route: Route<'_>) -> bool {
    use agent_local::LocalRoute as L;
    use catalog::CatalogRoute as C;
    use members::MembersRoute as M;
    match route {
        Route::Catalog(c) => match c {
            C::Nodes | C::Services | C::Service(_) | C::Node(_) => true,
            C::Register | C::Deregister | C::Datacenters => false,
        },
        Route::Health(_) => true,
        Route::Members(m) => match m {
            M::Members => true,
            M::Join(_) | M::Leave | M::ForceLeave(_) => false,
        },
        Route::AgentLocal(l) => match l {
            L::Services | L::Checks => true,
            L::ServiceRegister
            | L::ServiceDeregister(_)
            | L::Service(_)
            | L::ServiceMaintenance(_)
            | L::CheckRegister
            | L::CheckDeregister(_)
            | L::CheckTtl(..)
            | L::CheckUpdate(_)
            | L::NodeMaintenance
            | L::HealthById(_)
            | L::HealthByName(_)
            | L::Reload => false,
        },
        Route::Index
        | Route::Kv(_)
        | Route::StatusLeader
        | Route::StatusPeers
        | Route::Agent(_)
        | Route::Operator(_)
        | Route::Faults(_)
        | Route::Snapshot
        | Route::Session(_)
        | Route::Txn
        | Route::Event(_) => false,
    }
}

/// Routes registered as Go subtrees (`/v1/kv/`); their bare names redirect to them.
const SUBTREES: &[&str] = &[
    "/v1/kv",
    "/v1/catalog/service",
    "/v1/catalog/node",
    "/v1/health/service",
    "/v1/health/node",
    "/v1/health/checks",
    "/v1/health/state",
    "/v1/agent/join",
    "/v1/agent/force-leave",
    "/v1/agent/service",
    "/v1/agent/service/deregister",
    "/v1/agent/service/maintenance",
    "/v1/agent/check/deregister",
    "/v1/agent/check/pass",
    "/v1/agent/check/warn",
    "/v1/agent/check/fail",
    "/v1/agent/check/update",
    "/v1/agent/health/service/id",
    "/v1/agent/health/service/name",
    "/v1/session/destroy",
    "/v1/session/info",
    "/v1/session/node",
    "/v1/session/renew",
    "/v1/event/fire",
];

/// Whether Go's `cleanPath` would change `path` (cheap check for the hot path).
fn needs_cleaning(path: &str) -> bool {
    !path.starts_with('/')
        || path.contains("//")
        || path.contains("/./")
        || path.contains("/../")
        || path.ends_with("/.")
        || path.ends_with("/..")
}

/// Go's `cleanPath`: resolve `.`/`..`, collapse `//`, keep a trailing slash.
pub fn clean_path(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    out.push('/');
    out.push_str(&parts.join("/"));
    if path.ends_with('/') && out != "/" {
        out.push('/');
    }
    out
}

/// Characters Go's `EscapedPath` escapes when it writes a redirect location.
const PATH_ESCAPE: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'^')
    .add(b'|')
    .add(b'\\')
    .add(b'[')
    .add(b']');

/// Refuse control characters in the (decoded) path, as Consul's unprintable filter does.
fn has_unprintable(path: &str) -> bool {
    path.chars().any(|c| c.is_control())
}

/// What `/` answers: cairn has no web UI yet, so it does not offer to enable one.
pub const BANNER: &str =
    "Consul Agent (cairn): no web UI is served by this version; the HTTP API is under /v1/.";

/// Whether this request may be served: its connection's slot (taken when the connection
/// was accepted), or else a per-request slot (in-process tests have no connection hook;
/// none is needed without a peer address). Over the limit: 429.
fn admit(
    req: &HttpRequest,
    limiter: &web::Data<limits::ClientLimiter>,
) -> Result<Option<limits::ClientSlot>, ApiError> {
    let too_many = || ApiError::TooManyRequests(limits::TOO_MANY_REQUESTS_TEXT.into());
    if let Some(limits::ConnectionSlot(slot)) = req.conn_data::<limits::ConnectionSlot>() {
        return if slot.is_some() {
            Ok(None)
        } else {
            Err(too_many())
        };
    }
    let Some(peer) = req.peer_addr() else {
        return Ok(None);
    };
    limiter
        .clone()
        .into_inner()
        .try_acquire(peer.ip())
        .map(Some)
        .ok_or_else(too_many)
}

async fn dispatch(
    req: HttpRequest,
    mut payload: Payload,
    ctx: web::Data<AgentContext>,
    limiter: web::Data<limits::ClientLimiter>,
) -> HttpResponse {
    let mut resp = match admit(&req, &limiter) {
        Err(e) => {
            // A connection over the limit is not kept open for more.
            let mut resp = e.to_response();
            resp.head_mut()
                .set_connection_type(actix_web::http::ConnectionType::Close);
            resp
        }
        Ok(slot) => {
            let resp = match handle(&req, &mut payload, &ctx).await {
                Ok(resp) => resp,
                Err(e) => e.to_response(),
            };
            // Held until the response is built: a parked blocking query keeps its slot.
            drop(slot);
            resp
        }
    };
    resp.headers_mut().insert(
        header::HeaderName::from_static("x-consul-default-acl-policy"),
        header::HeaderValue::from_static("allow"),
    );
    resp
}

async fn handle(
    req: &HttpRequest,
    payload: &mut Payload,
    ctx: &AgentContext,
) -> Result<HttpResponse, ApiError> {
    let raw_path = req.path();
    let path = percent_decode_str(raw_path)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("Invalid URL path: not valid UTF-8"))?;
    if has_unprintable(&path) {
        return Err(ApiError::bad_request(
            "Invalid URL path: contains non-printable characters",
        ));
    }
    // Go's mux redirects an unclean path, and a subtree root named without its slash.
    let target = if needs_cleaning(&path) {
        Some(clean_path(&path))
    } else if SUBTREES.contains(&&*path) {
        Some(format!("{path}/"))
    } else {
        None
    };
    if let Some(cleaned) = target {
        let mut location = utf8_percent_encode(&cleaned, PATH_ESCAPE).to_string();
        if !req.query_string().is_empty() {
            location.push('?');
            location.push_str(req.query_string());
        }
        return Ok(HttpResponse::build(StatusCode::MOVED_PERMANENTLY)
            .insert_header((header::LOCATION, location))
            .finish());
    }
    if let Some(page) = ui::route(&path) {
        if !ctx.config.ui || !matches!(*req.method(), Method::GET | Method::HEAD) {
            return Ok(HttpResponse::NotFound().finish());
        }
        return Ok(ui::serve(page));
    }
    let Some((route, (methods, allow))) = route(&path) else {
        if path.starts_with("/v1/") {
            return Err(ApiError::NotFound(
                "Invalid URL path: not a recognized HTTP API endpoint".into(),
            ));
        }
        return Ok(HttpResponse::NotFound().finish());
    };
    if matches!(route, Route::Faults(_)) && ctx.faults.is_none() {
        return Err(faults::not_found());
    }
    let method = req.method().clone();
    if method == Method::OPTIONS {
        return Ok(HttpResponse::Ok()
            .insert_header((header::ALLOW, allow))
            .finish());
    }
    if !methods.contains(&method) {
        return Err(ApiError::MethodNotAllowed {
            method: method.to_string(),
            allow,
        });
    }
    let query = Query::parse(req.query_string());
    if method == Method::GET && query::filter_given(&query) && !takes_filter(route) {
        return Err(ApiError::bad_request(query::FILTER_UNSUPPORTED_TEXT));
    }
    let pretty = ctx.config.pretty_json || query.has("pretty");
    let api = ApiRequest {
        method,
        query,
        pretty,
    };
    let content_length = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = BodyReader {
        content_length,
        payload,
    };
    match route {
        Route::Index if ctx.config.ui => Ok(ui::redirect_to_ui()),
        Route::Index => Ok(HttpResponse::Ok()
            .content_type(error::TEXT_PLAIN)
            .body(BANNER)),
        Route::Kv(key) => kv::handle(ctx, &api, key, &mut body).await,
        Route::Catalog(c) => catalog::handle(ctx, &api, c, &mut body).await,
        Route::StatusLeader => status::handle(ctx, &api, true).await,
        Route::StatusPeers => status::handle(ctx, &api, false).await,
        Route::Agent(a) => agent::handle(ctx, &api, a),
        Route::AgentLocal(l) => agent_local::handle(ctx, &api, l, &mut body).await,
        Route::Members(m) => members::handle(ctx, &api, m).await,
        Route::Health(h) => health::handle(ctx, &api, h).await,
        Route::Operator(o) => operator::handle(ctx, &api, o).await,
        Route::Faults(peer) => faults::handle(ctx, &api, peer),
        Route::Snapshot => snapshot::handle(ctx, &api, &mut body).await,
        Route::Session(s) => session::handle(ctx, &api, s, &mut body).await,
        Route::Txn => txn::handle(ctx, &api, &mut body).await,
        Route::Event(e) => event::handle(ctx, &api, e, &mut body).await,
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use crate::config::Config;

    pub fn test_config() -> Config {
        Config {
            node_name: "node1".into(),
            node_id: "11111111-2222-3333-4444-555555555555".into(),
            ui: false,
            pretty_json: false,
            ..Config::dev_for_tests()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_path_like_go() {
        assert_eq!(clean_path("/v1/kv/a//b"), "/v1/kv/a/b");
        assert_eq!(clean_path("/v1/kv/a/./b"), "/v1/kv/a/b");
        assert_eq!(clean_path("/v1/kv/a/../b"), "/v1/kv/b");
        assert_eq!(clean_path("/v1/kv/folder/"), "/v1/kv/folder/");
        assert_eq!(clean_path("/v1/kv/"), "/v1/kv/");
        assert_eq!(clean_path("/"), "/");
        assert_eq!(clean_path("//"), "/");
        for p in [
            "/v1/kv/a//b",
            "/v1/kv/a/./b",
            "/v1/kv/a/../b",
            "/v1/kv/a/.",
            "/v1/kv/..",
            "//",
        ] {
            assert!(needs_cleaning(p), "{p}");
        }
        for p in ["/v1/kv/a/b", "/v1/kv/folder/", "/", "/v1/kv/a..b/.c"] {
            assert!(!needs_cleaning(p), "{p}");
            assert_eq!(clean_path(p), p);
        }
    }

    #[test]
    fn routes_and_methods() {
        use catalog::CatalogRoute as C;
        assert_eq!(route("/v1/kv/a/b").map(|r| r.0), Some(Route::Kv("a/b")));
        assert_eq!(route("/v1/kv/").map(|r| r.0), Some(Route::Kv("")));
        assert_eq!(
            route("/v1/catalog/service/web").map(|r| r.0),
            Some(Route::Catalog(C::Service("web")))
        );
        assert_eq!(
            route("/v1/catalog/node/").map(|r| r.0),
            Some(Route::Catalog(C::Node("")))
        );
        assert_eq!(
            route("/v1/catalog/register").map(|r| r.1 .1),
            Some("OPTIONS,PUT")
        );
        assert_eq!(
            route("/v1/kv/x").map(|r| r.1 .1),
            Some("OPTIONS,GET,PUT,DELETE")
        );
        assert!(route("/v1/nope").is_none());
        assert!(route("/v2/kv/x").is_none());
    }

    #[test]
    fn unprintable_filter() {
        assert!(has_unprintable("/v1/kv/a\nb"));
        assert!(has_unprintable("/v1/kv/a\u{7f}"));
        assert!(!has_unprintable("/v1/kv/a b/ü"));
    }
}
