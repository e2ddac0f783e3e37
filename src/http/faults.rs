//! `/v1/cairn/faults`: fault rules for test clusters (cairn's own endpoint, not
//! Consul's). It exists only on an agent started with `-fault-injection`; elsewhere the
//! path is an unknown endpoint (404), so a production agent cannot be partitioned over
//! HTTP. The rules act on this agent's gossip sockets and server port, per peer IP:
//!
//! - `GET /v1/cairn/faults` lists them: `[{"Peer":"127.0.0.5","Rule":"drop"}, ...]`;
//! - `PUT /v1/cairn/faults/<ip>?rule=drop|cut|delay[&delay=<duration>]` sets one
//!   (`drop`: discard traffic both ways; `cut`: drop and close open connections;
//!   `delay`: hold outgoing traffic, e.g. `delay=200ms`);
//! - `DELETE /v1/cairn/faults/<ip>` lifts one, `DELETE /v1/cairn/faults` lifts all;
//! - `PUT /v1/cairn/faults/disk?stall=<duration>` makes this server's Raft log disk slow
//!   (each fsync waits that long first), `DELETE /v1/cairn/faults/disk` lifts it; the
//!   listing shows it as `{"Peer":"disk","Rule":"stall","DelayMs":200}`.
//!
//! A partition between A and B is a rule on each side (A drops B, B drops A); a one-way
//! rule makes an asymmetric partition.

use super::error::ApiError;
use super::render::json_response;
use super::ApiRequest;
use crate::context::AgentContext;
use crate::duration::parse_go_duration;
use actix_web::http::Method;
use actix_web::HttpResponse;
use actors::{FaultRule, FaultRules};
use serde::Serialize;
use std::net::IpAddr;
use std::time::Duration;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct RuleJson {
    peer: String,
    rule: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    delay_ms: Option<u64>,
}

/// `peer`: the path after `/v1/cairn/faults/` (None for the collection itself).
pub fn handle(
    ctx: &AgentContext,
    api: &ApiRequest,
    peer: Option<&str>,
) -> Result<HttpResponse, ApiError> {
    let Some(faults) = ctx.faults.as_ref() else {
        return Err(not_found());
    };
    match (&api.method, peer) {
        (&Method::GET, None) => json_response(&listing(faults), api.pretty),
        (&Method::DELETE, None) => {
            faults.clear();
            Ok(HttpResponse::Ok().finish())
        }
        (&Method::PUT, Some(DISK)) => {
            faults.set_disk_stall(parse_duration(api, "stall")?);
            Ok(HttpResponse::Ok().finish())
        }
        (&Method::DELETE, Some(DISK)) => {
            faults.set_disk_stall(Duration::ZERO);
            Ok(HttpResponse::Ok().finish())
        }
        (&Method::PUT, Some(peer)) => {
            let peer = parse_peer(peer)?;
            faults.set(peer, parse_rule(api)?);
            Ok(HttpResponse::Ok().finish())
        }
        (&Method::DELETE, Some(peer)) => {
            faults.remove(parse_peer(peer)?);
            Ok(HttpResponse::Ok().finish())
        }
        (method, _) => Err(ApiError::MethodNotAllowed {
            method: method.to_string(),
            allow: "OPTIONS,GET,PUT,DELETE",
        }),
    }
}

/// The pseudo-peer naming this agent's disk.
const DISK: &str = "disk";

/// What an agent without `-fault-injection` answers: the path does not exist.
pub fn not_found() -> ApiError {
    ApiError::NotFound("Invalid URL path: not a recognized HTTP API endpoint".into())
}

fn listing(faults: &FaultRules) -> Vec<RuleJson> {
    let stall = faults.disk_stall();
    let disk = (!stall.is_zero()).then(|| RuleJson {
        peer: DISK.to_string(),
        rule: "stall",
        delay_ms: Some(stall.as_millis() as u64),
    });
    faults
        .rules()
        .into_iter()
        .map(|(peer, rule)| {
            let (rule, delay_ms) = match rule {
                FaultRule::Drop => ("drop", None),
                FaultRule::Cut => ("cut", None),
                FaultRule::Delay(d) => ("delay", Some(d.as_millis() as u64)),
            };
            RuleJson {
                peer: peer.to_string(),
                rule,
                delay_ms,
            }
        })
        .chain(disk)
        .collect()
}

fn parse_peer(text: &str) -> Result<IpAddr, ApiError> {
    text.trim_matches(['[', ']'])
        .parse()
        .map_err(|_| ApiError::bad_request(format!("Invalid peer address {text:?}: want an IP")))
}

/// A positive duration from query parameter `name`.
fn parse_duration(api: &ApiRequest, name: &str) -> Result<Duration, ApiError> {
    let text = api.query.get(name).unwrap_or("");
    parse_go_duration(text)
        .filter(|d| !d.is_zero())
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Invalid {name} {text:?}: want a duration such as 200ms"
            ))
        })
}

fn parse_rule(api: &ApiRequest) -> Result<FaultRule, ApiError> {
    match api.query.get("rule") {
        Some("drop") => Ok(FaultRule::Drop),
        Some("cut") => Ok(FaultRule::Cut),
        Some("delay") => parse_duration(api, "delay").map(FaultRule::Delay),
        other => Err(ApiError::bad_request(format!(
            "Invalid rule {:?}: want drop, cut or delay",
            other.unwrap_or("")
        ))),
    }
}
