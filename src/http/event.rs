//! `PUT /v1/event/fire/:name` and `GET /v1/event/list` (Consul's `agent/event_endpoint.go`).
//!
//! Fire: the body is the payload, `?node=`, `?service=`, `?tag=` are regex filters the
//! receiving agents apply; the event goes out through this agent's gossip (Consul asks
//! a server to fire it; every agent gossips, so the outcome is the same) and the answer
//! is the event (`LTime` 0, as Consul's, which learns it only on delivery). List: the
//! events this agent accepted, optionally one `?name=`, with a blocking `?index=` that
//! is the newest listed event's ID folded to 64 bits (not monotonic: the list answers
//! as soon as the index differs from the one given, or when the wait ends).

use super::error::ApiError;
use super::query::{check_dc, parse_go_duration, MAX_WAIT};
use super::render::base64_or_null;
use super::{ApiRequest, BodyReader};
use crate::context::AgentContext;
use actix_web::HttpResponse;
use protocol::user_event::UserEvent;
use serde::Serialize;

/// A fire's body is read up to this many bytes (413 beyond); what gossip can carry is
/// far less (`user event exceeds configured limit of 512 bytes`, a 500 as in Consul).
pub const EVENT_MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventRoute<'a> {
    Fire(&'a str),
    List,
}

/// Consul's JSON shape of a user event.
#[derive(Serialize)]
struct EventJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Payload", serialize_with = "base64_or_null")]
    payload: &'a [u8],
    #[serde(rename = "NodeFilter")]
    node_filter: &'a str,
    #[serde(rename = "ServiceFilter")]
    service_filter: &'a str,
    #[serde(rename = "TagFilter")]
    tag_filter: &'a str,
    #[serde(rename = "Version")]
    version: u32,
    #[serde(rename = "LTime")]
    ltime: u64,
}

fn json_of(e: &UserEvent) -> EventJson<'_> {
    EventJson {
        id: &e.id,
        name: &e.name,
        payload: &e.payload,
        node_filter: &e.node_filter,
        service_filter: &e.service_filter,
        tag_filter: &e.tag_filter,
        version: e.version,
        ltime: e.ltime,
    }
}

fn too_large(body_bytes: u64) -> ApiError {
    ApiError::TooLarge(format!(
        "Request body({body_bytes} bytes) too large, max size: {EVENT_MAX_BODY_BYTES} bytes."
    ))
}

pub async fn handle(
    ctx: &AgentContext,
    req: &ApiRequest,
    route: EventRoute<'_>,
    body: &mut BodyReader<'_>,
) -> Result<HttpResponse, ApiError> {
    match route {
        EventRoute::Fire(name) => fire(ctx, req, name, body).await,
        EventRoute::List => list(ctx, req).await,
    }
}

async fn fire(
    ctx: &AgentContext,
    req: &ApiRequest,
    name: &str,
    body: &mut BodyReader<'_>,
) -> Result<HttpResponse, ApiError> {
    check_dc(&req.query, &ctx.config.datacenter)?;
    if name.is_empty() {
        return Err(ApiError::bad_request("Missing name"));
    }
    let filter = |key: &str| req.query.get(key).unwrap_or_default().to_string();
    let payload = body.read(EVENT_MAX_BODY_BYTES, too_large).await?;
    let event = UserEvent {
        id: String::new(),
        name: name.to_string(),
        payload: payload.to_vec(),
        node_filter: filter("node"),
        service_filter: filter("service"),
        tag_filter: filter("tag"),
        version: 0,
        ltime: 0,
    };
    let fired =
        crate::user_events::fire(ctx.membership.as_ref(), event).map_err(ApiError::internal)?;
    super::render::json_response(&json_of(&fired), req.pretty)
}

async fn list(ctx: &AgentContext, req: &ApiRequest) -> Result<HttpResponse, ApiError> {
    let given = |name: &str| req.query.get(name).filter(|v| !v.is_empty());
    let wait = match given("wait") {
        Some(w) => {
            Some(parse_go_duration(w).ok_or_else(|| ApiError::bad_request("Invalid wait time"))?)
        }
        None => None,
    };
    let min_index = match given("index") {
        Some(i) => i
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request("Invalid index"))?,
        None => 0,
    };
    let name = req.query.get("name").unwrap_or_default();
    // Consul: a blocking list waits at most 10 minutes, and that long when no wait is given.
    let wait = wait
        .filter(|w| !w.is_zero())
        .unwrap_or(MAX_WAIT)
        .min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let (events, index) = loop {
        let mut accepted = ctx.events.watch();
        accepted.borrow_and_update();
        let (events, index) = ctx.events.list(name);
        if min_index == 0 || index != min_index {
            break (events, index);
        }
        match tokio::time::timeout_at(deadline, accepted.changed()).await {
            Ok(Ok(())) => continue,
            // Timed out (or the log is gone): answer what there is.
            _ => break (events, index),
        }
    };
    let rows: Vec<EventJson<'_>> = events.iter().map(json_of).collect();
    let mut resp = super::render::json_response(&rows, req.pretty)?;
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&index.to_string()) {
        resp.headers_mut().insert(
            actix_web::http::header::HeaderName::from_static("x-consul-index"),
            value,
        );
    }
    Ok(resp)
}
