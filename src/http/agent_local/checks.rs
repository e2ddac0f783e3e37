//! The agent's checks: register, deregister, TTL updates, list, and maintenance.

use super::body::{CheckRegisterBody, CheckUpdateBody};
use super::{ok_empty, TtlVerb};
use crate::http::body::{decode_json, json_too_large, JSON_MAX_BODY_BYTES};
use crate::http::error::ApiError;
use crate::http::health::HealthCheckOut;
use crate::http::query::{parse_filter, Query};
use crate::http::render::{json_bytes, to_json_map_filtered};
use crate::http::{ApiRequest, BodyReader};
use crate::local::LocalAgent;
use actix_web::HttpResponse;
use protocol::health::definition::Origin;
use protocol::store::CheckStatus;
use std::collections::BTreeMap;

pub async fn register(
    local: &LocalAgent,
    body: &mut BodyReader<'_>,
) -> Result<HttpResponse, ApiError> {
    let raw = body.read(JSON_MAX_BODY_BYTES, json_too_large).await?;
    let body: CheckRegisterBody = decode_json(&raw)?;
    local
        .register_check(body.into_draft(), Origin::Remote)
        .await?;
    Ok(ok_empty())
}

pub async fn deregister(local: &LocalAgent, id: &str) -> Result<HttpResponse, ApiError> {
    local.deregister_check(id).await?;
    Ok(ok_empty())
}

/// `check/pass|warn|fail/:id?note=`.
pub async fn ttl(
    local: &LocalAgent,
    req: &ApiRequest,
    verb: TtlVerb,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let status = match verb {
        TtlVerb::Pass => CheckStatus::Passing,
        TtlVerb::Warn => CheckStatus::Warning,
        TtlVerb::Fail => CheckStatus::Critical,
    };
    let note = req.query.get("note").unwrap_or_default().to_string();
    local.update_ttl(id, status, note).await?;
    Ok(ok_empty())
}

/// `check/update/:id` with `{"Status", "Output"}`.
pub async fn update(
    local: &LocalAgent,
    id: &str,
    body: &mut BodyReader<'_>,
) -> Result<HttpResponse, ApiError> {
    let raw = body.read(JSON_MAX_BODY_BYTES, json_too_large).await?;
    let body: CheckUpdateBody = decode_json(&raw)?;
    let status = CheckStatus::parse(&body.status)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid check status: '{}'", body.status)))?;
    local.update_ttl(id, status, body.output).await?;
    Ok(ok_empty())
}

/// `GET /v1/agent/checks`: `{id: HealthCheck}`.
pub fn list(local: &LocalAgent, req: &ApiRequest) -> Result<HttpResponse, ApiError> {
    let filter = parse_filter(&req.query)?;
    let view = local.view();
    let out: BTreeMap<&str, HealthCheckOut<'_>> = view
        .checks
        .iter()
        .map(|c| (c.check_id.as_str(), HealthCheckOut::from(c)))
        .collect();
    Ok(json_bytes(to_json_map_filtered(
        &out,
        filter.as_ref(),
        req.pretty,
    )?))
}

/// `?enable=` (required, Go's ParseBool) and `?reason=`.
fn maintenance_args(q: &Query) -> Result<(bool, String), ApiError> {
    let enable = match q.get("enable") {
        None | Some("") => return Err(ApiError::bad_request("Missing value for enable")),
        Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "Invalid value for enable: {v:?}"
            )))
        }
    };
    Ok((enable, q.get("reason").unwrap_or_default().to_string()))
}

pub async fn node_maintenance(
    local: &LocalAgent,
    req: &ApiRequest,
) -> Result<HttpResponse, ApiError> {
    let (enable, reason) = maintenance_args(&req.query)?;
    local.node_maintenance(enable, reason).await?;
    Ok(ok_empty())
}

pub async fn service_maintenance(
    local: &LocalAgent,
    req: &ApiRequest,
    id: &str,
) -> Result<HttpResponse, ApiError> {
    let (enable, reason) = maintenance_args(&req.query)?;
    local.service_maintenance(id, enable, reason).await?;
    Ok(ok_empty())
}
