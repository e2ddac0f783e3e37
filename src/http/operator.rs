//! `/v1/operator/raft/configuration`, `DELETE /v1/operator/raft/peer` and
//! `/v1/operator/autopilot/health`, with Consul's shapes (agent/operator_endpoint.go).
//! The answers come through the typed request path (`InfoRequest`), so any server, a
//! follower forwarding to its leader, and a client agent forwarding to a server answer
//! the same.

use super::error::ApiError;
use super::query::check_dc;
use super::render::to_json;
use super::ApiRequest;
use crate::context::AgentContext;
use crate::duration::format_go_duration;
use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use protocol::api::{
    AutopilotHealthInfo, InfoData, InfoRequest, PeerSelector, RaftConfigurationInfo, RequestError,
};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperatorRoute {
    RaftConfiguration,
    RaftPeer,
    AutopilotHealth,
}

/// Consul's texts for a `DELETE /v1/operator/raft/peer` without exactly one selector.
pub const PEER_NEITHER_TEXT: &str =
    "Must specify either ?id with the server's ID or ?address with IP:port of peer to remove";
pub const PEER_BOTH_TEXT: &str = "Must specify only one of ?id or ?address";

pub async fn handle(
    ctx: &AgentContext,
    req: &ApiRequest,
    route: OperatorRoute,
) -> Result<HttpResponse, ApiError> {
    check_dc(&req.query, &ctx.config.datacenter)?;
    match route {
        OperatorRoute::RaftConfiguration => {
            let stale = req.query.has("stale");
            match ctx
                .api
                .info(InfoRequest::RaftConfiguration { stale })
                .await?
            {
                InfoData::RaftConfiguration(c) => Ok(super::render::json_bytes(
                    render_configuration(&c, req.pretty)?,
                )),
                _ => Err(RequestError::unexpected_data().into()),
            }
        }
        OperatorRoute::RaftPeer => {
            let selector = peer_selector(req)?;
            match ctx.api.info(InfoRequest::RemoveRaftPeer(selector)).await? {
                InfoData::PeerRemoved => Ok(HttpResponse::Ok().finish()),
                _ => Err(RequestError::unexpected_data().into()),
            }
        }
        OperatorRoute::AutopilotHealth => match ctx.api.info(InfoRequest::AutopilotHealth).await? {
            InfoData::AutopilotHealth(h) => {
                let body = render_health(&h, req.pretty)?;
                // Consul answers 429 while anything is unhealthy.
                let status = if h.healthy {
                    StatusCode::OK
                } else {
                    StatusCode::TOO_MANY_REQUESTS
                };
                Ok(HttpResponse::build(status)
                    .content_type(super::render::APPLICATION_JSON)
                    .body(body))
            }
            _ => Err(RequestError::unexpected_data().into()),
        },
    }
}

/// `?id=` or `?address=`, exactly one (by presence, as Consul checks).
fn peer_selector(req: &ApiRequest) -> Result<PeerSelector, ApiError> {
    let (id, address) = (req.query.has("id"), req.query.has("address"));
    match (id, address) {
        (false, false) => Err(ApiError::bad_request(PEER_NEITHER_TEXT)),
        (true, true) => Err(ApiError::bad_request(PEER_BOTH_TEXT)),
        (true, false) => Ok(PeerSelector::Id(
            req.query.get("id").unwrap_or_default().to_string(),
        )),
        (false, true) => Ok(PeerSelector::Address(
            req.query.get("address").unwrap_or_default().to_string(),
        )),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ConfigurationJson<'a> {
    servers: Vec<ServerJson<'a>>,
    index: u64,
}

#[derive(Serialize)]
struct ServerJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    #[serde(rename = "Node")]
    node: &'a str,
    #[serde(rename = "Address")]
    address: &'a str,
    #[serde(rename = "Leader")]
    leader: bool,
    #[serde(rename = "Voter")]
    voter: bool,
    #[serde(rename = "ProtocolVersion")]
    protocol_version: &'a str,
}

pub fn render_configuration(c: &RaftConfigurationInfo, pretty: bool) -> Result<Vec<u8>, ApiError> {
    let json = ConfigurationJson {
        servers: c
            .servers
            .iter()
            .map(|s| ServerJson {
                id: &s.id,
                node: &s.node,
                address: &s.address,
                leader: s.leader,
                voter: s.voter,
                protocol_version: &s.protocol_version,
            })
            .collect(),
        index: c.index,
    };
    to_json(&json, pretty)
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct HealthJson<'a> {
    healthy: bool,
    failure_tolerance: u64,
    servers: Vec<ServerHealthJson<'a>>,
}

#[derive(Serialize)]
struct ServerHealthJson<'a> {
    #[serde(rename = "ID")]
    id: &'a str,
    #[serde(rename = "Name")]
    name: &'a str,
    #[serde(rename = "Address")]
    address: &'a str,
    #[serde(rename = "SerfStatus")]
    serf_status: &'a str,
    #[serde(rename = "Version")]
    version: &'a str,
    #[serde(rename = "Leader")]
    leader: bool,
    /// Go duration text, as Consul's `ReadableDuration`.
    #[serde(rename = "LastContact")]
    last_contact: String,
    #[serde(rename = "LastTerm")]
    last_term: u64,
    #[serde(rename = "LastIndex")]
    last_index: u64,
    #[serde(rename = "Healthy")]
    healthy: bool,
    #[serde(rename = "Voter")]
    voter: bool,
    /// RFC 3339, UTC, whole seconds.
    #[serde(rename = "StableSince")]
    stable_since: String,
}

pub fn render_health(h: &AutopilotHealthInfo, pretty: bool) -> Result<Vec<u8>, ApiError> {
    let json = HealthJson {
        healthy: h.healthy,
        failure_tolerance: h.failure_tolerance,
        servers: h
            .servers
            .iter()
            .map(|s| ServerHealthJson {
                id: &s.id,
                name: &s.name,
                address: &s.address,
                serf_status: &s.serf_status,
                version: &s.version,
                leader: s.leader,
                last_contact: format_go_duration(Duration::from_millis(s.last_contact_ms)),
                last_term: s.last_term,
                last_index: s.last_index,
                healthy: s.healthy,
                voter: s.voter,
                stable_since: rfc3339_utc((s.stable_since_unix_ms + 500) / 1000),
            })
            .collect(),
    };
    to_json(&json, pretty)
}

/// `YYYY-MM-DDTHH:MM:SSZ` for Unix seconds (the civil-from-days algorithm).
pub fn rfc3339_utc(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::api::{RaftServerInfo, ServerHealthInfo};

    #[test]
    fn configuration_has_consuls_shape() {
        let c = RaftConfigurationInfo {
            servers: vec![RaftServerInfo {
                id: "e3".into(),
                node: "alice".into(),
                address: "10.0.0.1:8300".into(),
                leader: true,
                voter: true,
                protocol_version: "3".into(),
            }],
            index: 22,
        };
        assert_eq!(
            String::from_utf8(render_configuration(&c, false).unwrap()).unwrap(),
            r#"{"Servers":[{"ID":"e3","Node":"alice","Address":"10.0.0.1:8300","Leader":true,"Voter":true,"ProtocolVersion":"3"}],"Index":22}"#
        );
    }

    #[test]
    fn health_has_consuls_shape() {
        let h = AutopilotHealthInfo {
            healthy: true,
            failure_tolerance: 1,
            servers: vec![ServerHealthInfo {
                id: "e3".into(),
                name: "alice".into(),
                address: "10.0.0.1:8300".into(),
                serf_status: "alive".into(),
                version: "1.21.0".into(),
                leader: false,
                last_contact_ms: 12,
                last_term: 2,
                last_index: 46,
                healthy: true,
                voter: true,
                stable_since_unix_ms: 1_488_838_071_000,
            }],
        };
        assert_eq!(
            String::from_utf8(render_health(&h, false).unwrap()).unwrap(),
            r#"{"Healthy":true,"FailureTolerance":1,"Servers":[{"ID":"e3","Name":"alice","Address":"10.0.0.1:8300","SerfStatus":"alive","Version":"1.21.0","Leader":false,"LastContact":"12ms","LastTerm":2,"LastIndex":46,"Healthy":true,"Voter":true,"StableSince":"2017-03-06T22:07:51Z"}]}"#
        );
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339_utc(1_709_251_199), "2024-02-29T23:59:59Z");
    }
}
