//! `/v1/agent/health/service/id/:id` and `/name/:name`: a service's aggregated health
//! from this agent's own checks (its checks and the node's), coded 200 passing, 429
//! warning, 503 critical or maintenance; `?format=text` answers the status alone.

use super::out::LocalServiceOut;
use crate::http::error::{ApiError, TEXT_PLAIN};
use crate::http::health::HealthCheckOut;
use crate::http::render::{to_json, APPLICATION_JSON};
use crate::http::ApiRequest;
use crate::local::{LocalAgent, LocalView};
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use protocol::health::local::maintenance::is_maintenance_check;
use protocol::store::{Check, CheckStatus, Service};
use serde::Serialize;

#[derive(Serialize)]
struct ServiceHealthOut<'a> {
    #[serde(rename = "AggregatedStatus")]
    aggregated_status: &'static str,
    #[serde(rename = "Service")]
    service: LocalServiceOut<'a>,
    #[serde(rename = "Checks")]
    checks: Vec<HealthCheckOut<'a>>,
}

/// Consul's aggregation: maintenance first, then the worst status.
pub fn aggregate(checks: &[&Check]) -> CheckStatus {
    if checks.iter().any(|c| is_maintenance_check(&c.check_id)) {
        return CheckStatus::Maintenance;
    }
    checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(CheckStatus::Passing)
}

fn code(status: CheckStatus) -> StatusCode {
    match status {
        CheckStatus::Passing => StatusCode::OK,
        CheckStatus::Warning => StatusCode::TOO_MANY_REQUESTS,
        CheckStatus::Critical | CheckStatus::Maintenance => StatusCode::SERVICE_UNAVAILABLE,
    }
}

fn entry<'a>(view: &'a LocalView, s: &'a Service) -> (CheckStatus, ServiceHealthOut<'a>) {
    let checks = view.service_health(&s.id);
    let status = aggregate(&checks);
    let out = ServiceHealthOut {
        aggregated_status: status.as_str(),
        service: LocalServiceOut::new(s, &view.datacenter, ""),
        checks: checks.into_iter().map(HealthCheckOut::from).collect(),
    };
    (status, out)
}

fn respond<T: Serialize>(
    req: &ApiRequest,
    status: CheckStatus,
    body: &T,
) -> Result<HttpResponse, ApiError> {
    let mut builder = HttpResponse::build(code(status));
    if req.query.get("format") == Some("text") {
        return Ok(builder.content_type(TEXT_PLAIN).body(status.as_str()));
    }
    Ok(builder
        .content_type(APPLICATION_JSON)
        .body(to_json(body, req.pretty)?))
}

fn not_found(req: &ApiRequest, text: String) -> Result<HttpResponse, ApiError> {
    if req.query.get("format") == Some("text") {
        return Ok(HttpResponse::NotFound().content_type(TEXT_PLAIN).body(text));
    }
    Err(ApiError::NotFound(text))
}

pub fn by_id(local: &LocalAgent, req: &ApiRequest, id: &str) -> Result<HttpResponse, ApiError> {
    let view = local.view();
    let Some(service) = view.service(id) else {
        return not_found(req, format!("ServiceId {id} not found"));
    };
    let (status, out) = entry(&view, service);
    respond(req, status, &out)
}

pub fn by_name(local: &LocalAgent, req: &ApiRequest, name: &str) -> Result<HttpResponse, ApiError> {
    let view = local.view();
    let mut worst = CheckStatus::Passing;
    let mut out = Vec::new();
    for s in view.services.iter().filter(|s| s.service == name) {
        let (status, e) = entry(&view, s);
        worst = worst.max(status);
        out.push(e);
    }
    if out.is_empty() {
        return not_found(req, format!("ServiceName {name} Not Found"));
    }
    respond(req, worst, &out)
}
