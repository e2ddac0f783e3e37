//! The agent's services: register, deregister, list, and one with hash-based blocking.

use super::body::ServiceRegisterBody;
use super::ok_empty;
use super::out::{content_hash, LocalServiceOut};
use crate::http::body::{decode_json, json_too_large, JSON_MAX_BODY_BYTES};
use crate::http::error::ApiError;
use crate::http::query::{parse_filter, parse_go_duration, Query};
use crate::http::render::{json_bytes, to_json, to_json_map_filtered};
use crate::http::{ApiRequest, BodyReader};
use crate::local::LocalAgent;
use actix_web::HttpResponse;
use protocol::health::definition::Origin;
use protocol::health::local::unknown_service;
use std::collections::BTreeMap;
use std::time::Duration;

/// Hash-blocking waits without `?wait` (Consul's default) and at most (its cap).
const DEFAULT_HASH_WAIT: Duration = Duration::from_secs(5 * 60);
const MAX_HASH_WAIT: Duration = Duration::from_secs(10 * 60);

/// `?replace-existing-checks`: present with an empty or true value.
fn replace_existing_checks(q: &Query) -> bool {
    matches!(
        q.get("replace-existing-checks"),
        Some("" | "1" | "t" | "T" | "true" | "TRUE" | "True")
    )
}

pub async fn register(
    local: &LocalAgent,
    req: &ApiRequest,
    body: &mut BodyReader<'_>,
) -> Result<HttpResponse, ApiError> {
    let raw = body.read(JSON_MAX_BODY_BYTES, json_too_large).await?;
    let body: ServiceRegisterBody = decode_json(&raw)?;
    local
        .register_service(
            body.into_draft(),
            Origin::Remote,
            replace_existing_checks(&req.query),
        )
        .await?;
    Ok(ok_empty())
}

pub async fn deregister(local: &LocalAgent, id: &str) -> Result<HttpResponse, ApiError> {
    local.deregister_service(id).await?;
    Ok(ok_empty())
}

/// `GET /v1/agent/services`: `{id: AgentService}`.
pub fn list(local: &LocalAgent, req: &ApiRequest) -> Result<HttpResponse, ApiError> {
    let filter = parse_filter(&req.query)?;
    let view = local.view();
    let out: BTreeMap<&str, LocalServiceOut<'_>> = view
        .services
        .iter()
        .map(|s| (s.id.as_str(), LocalServiceOut::new(s, &view.datacenter, "")))
        .collect();
    Ok(json_bytes(to_json_map_filtered(
        &out,
        filter.as_ref(),
        req.pretty,
    )?))
}

/// `GET /v1/agent/service/:id`, blocking while `?hash` is the current hash (up to
/// `?wait`), answered with `X-Consul-ContentHash`.
pub async fn one(local: &LocalAgent, req: &ApiRequest, id: &str) -> Result<HttpResponse, ApiError> {
    let wait = match req.query.get("wait").filter(|w| !w.is_empty()) {
        Some(w) => parse_go_duration(w)
            .ok_or_else(|| ApiError::bad_request("Invalid wait time"))?
            .min(MAX_HASH_WAIT),
        None => DEFAULT_HASH_WAIT,
    };
    let wanted = req.query.get("hash").filter(|h| !h.is_empty());
    let mut changes = local.subscribe();
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let view = changes.borrow_and_update().clone();
        let service = view.service(id).ok_or_else(|| unknown_service(id))?;
        let hash = content_hash(service, &view.datacenter);
        let timed_out = tokio::time::Instant::now() >= deadline;
        if wanted != Some(hash.as_str()) || timed_out {
            let body = to_json(
                &LocalServiceOut::new(service, &view.datacenter, &hash),
                req.pretty,
            )?;
            let mut resp = json_bytes(body);
            resp.headers_mut().insert(
                actix_web::http::header::HeaderName::from_static("x-consul-contenthash"),
                actix_web::http::header::HeaderValue::from_str(&hash)
                    .map_err(|e| ApiError::internal(e.to_string()))?,
            );
            return Ok(resp);
        }
        // Woken by any change of the local state, or the deadline: look again.
        let _ = tokio::time::timeout_at(deadline, changes.changed()).await;
    }
}
