//! `/v1/agent/members`, `/v1/agent/join/:address`, `/v1/agent/leave` and
//! `/v1/agent/force-leave/:node`: the agent's gossip membership, over [`Membership`].
//!
//! Consul's behaviours kept here (agent/agent_endpoint.go): `wan` counts only with a
//! non-empty value on members and join, but by presence on force-leave; a segment other
//! than `""` or `_all` together with `wan` is a 400; commands answer 200 with an empty
//! body, or 500 with the error's text. A client agent has no WAN pool: its WAN member
//! list is JSON `null`, and WAN join / force-leave fail with Consul's texts. The member
//! list takes `?filter=` (selectors are the Member JSON fields: `Name`, `Addr`, `Port`,
//! `Tags`, `Status` ...), applied after the `wan`/`segment` checks as Consul does.
//!
//! cairn runs one datacenter and has no WAN gossip yet, so a server's WAN pool is derived
//! from its LAN pool as Consul's would look: every server, named `<node>.<dc>`, on the
//! WAN port it advertises (`wan_join_port`).

use super::error::ApiError;
use super::query::parse_filter;
use super::render::{json_bytes, json_response, to_json_filtered};
use super::ApiRequest;
use crate::context::AgentContext;
use actix_web::HttpResponse;
use actors::membership::{MemberView, MembershipError};
use protocol::filter::Filter;
use serde::Serialize;
use std::collections::BTreeMap;

/// `segment=_all` (what `consul members` sends): every segment.
pub const ALL_SEGMENTS: &str = "_all";
/// The WAN port when a server does not advertise one.
pub const DEFAULT_SERF_WAN_PORT: u16 = 8302;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MembersRoute<'a> {
    Members,
    Join(&'a str),
    Leave,
    ForceLeave(&'a str),
}

/// Consul's `Member` JSON shape.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct MemberJson<'a> {
    name: &'a str,
    addr: String,
    port: u16,
    tags: &'a BTreeMap<String, String>,
    status: u8,
    protocol_min: u8,
    protocol_max: u8,
    protocol_cur: u8,
    delegate_min: u8,
    delegate_max: u8,
    delegate_cur: u8,
}

impl<'a> From<&'a MemberView> for MemberJson<'a> {
    fn from(m: &'a MemberView) -> Self {
        MemberJson {
            name: &m.name,
            addr: m.addr.to_string(),
            port: m.port,
            tags: &m.tags,
            status: m.status.code(),
            protocol_min: m.protocol.0,
            protocol_max: m.protocol.1,
            protocol_cur: m.protocol.2,
            delegate_min: m.delegate.0,
            delegate_max: m.delegate.1,
            delegate_cur: m.delegate.2,
        }
    }
}

/// One member as Consul renders it (also `/v1/agent/self`'s `Member`).
pub fn member_json(m: &MemberView) -> serde_json::Value {
    serde_json::to_value(MemberJson::from(m)).unwrap_or_default()
}

fn is_server(m: &MemberView) -> bool {
    m.tags.get("role").map(String::as_str) == Some("consul")
}

/// A server's name in the WAN pool: `<node>.<dc>`.
fn wan_name(m: &MemberView, our_dc: &str) -> String {
    let dc = m.tags.get("dc").map(String::as_str).unwrap_or(our_dc);
    format!("{}.{dc}", m.name)
}

/// The WAN pool a single-datacenter Consul would show: the servers, as `<node>.<dc>` on
/// their WAN port, without the LAN-only `wan_join_port` tag; sorted by name.
pub fn wan_members(lan: &[MemberView], our_dc: &str) -> Vec<MemberView> {
    let mut wan: Vec<MemberView> = lan
        .iter()
        .filter(|m| is_server(m))
        .map(|m| {
            let name = wan_name(m, our_dc);
            let mut m = m.clone();
            m.name = name;
            m.port = m
                .tags
                .remove("wan_join_port")
                .and_then(|p| p.parse().ok())
                .unwrap_or(DEFAULT_SERF_WAN_PORT);
            m
        })
        .collect();
    wan.sort_by(|a, b| a.name.cmp(&b.name));
    wan
}

pub async fn handle(
    ctx: &AgentContext,
    req: &ApiRequest,
    route: MembersRoute<'_>,
) -> Result<HttpResponse, ApiError> {
    match route {
        MembersRoute::Members => members(ctx, req),
        MembersRoute::Join(addr) => join(ctx, req, addr).await,
        MembersRoute::Leave => {
            ctx.membership.leave().await.map_err(internal)?;
            // Consul's agent shuts down after a graceful leave; the wiring stops once this
            // response is out (its HTTP shutdown drains in-flight requests).
            ctx.shutdown.notify_one();
            Ok(HttpResponse::Ok().finish())
        }
        MembersRoute::ForceLeave(node) => force_leave(ctx, req, node),
    }
}

fn internal(e: MembershipError) -> ApiError {
    ApiError::internal(e.to_string())
}

/// `wan=<non-empty>`: members and join parse it so (clients send `wan=1`).
fn wan_value(req: &ApiRequest) -> bool {
    req.query.get("wan").is_some_and(|v| !v.is_empty())
}

fn members(ctx: &AgentContext, req: &ApiRequest) -> Result<HttpResponse, ApiError> {
    let segment = req.query.get("segment").unwrap_or("");
    let wan = wan_value(req);
    if wan && !matches!(segment, "" | ALL_SEGMENTS) {
        return Err(ApiError::bad_request(
            "Cannot provide a segment with wan=true",
        ));
    }
    let filter = parse_filter(&req.query)?;
    if wan {
        // A client agent (or a server with the WAN port disabled) has no WAN pool:
        // Consul answers its nil member list, `null` (a filter over it gives `[]`).
        if !ctx.config.server || ctx.config.ports.serf_wan <= 0 {
            if filter.is_some() {
                return render(&[], filter.as_ref(), req.pretty);
            }
            return json_response(&serde_json::Value::Null, req.pretty);
        }
        let wan = wan_members(&ctx.membership.members(), &ctx.config.datacenter);
        return render(&wan, filter.as_ref(), req.pretty);
    }
    let mut lan = ctx.membership.members();
    // Only the default segment exists; a named one has no members.
    if !matches!(segment, "" | ALL_SEGMENTS) {
        lan.retain(|m| m.tags.get("segment").map(String::as_str) == Some(segment));
    }
    render(&lan, filter.as_ref(), req.pretty)
}

fn render(
    members: &[MemberView],
    filter: Option<&Filter>,
    pretty: bool,
) -> Result<HttpResponse, ApiError> {
    let shaped: Vec<MemberJson<'_>> = members.iter().map(MemberJson::from).collect();
    Ok(json_bytes(to_json_filtered(&shaped, filter, pretty)?))
}

async fn join(ctx: &AgentContext, req: &ApiRequest, addr: &str) -> Result<HttpResponse, ApiError> {
    if wan_value(req) {
        let text = if ctx.config.server {
            "WAN join is not supported: cairn runs a single datacenter and has no WAN gossip pool"
        } else {
            "Must be a server to join WAN cluster"
        };
        return Err(ApiError::internal(text));
    }
    ctx.membership
        .join(vec![addr.to_string()])
        .await
        .map_err(internal)?;
    Ok(HttpResponse::Ok().finish())
}

fn force_leave(ctx: &AgentContext, req: &ApiRequest, node: &str) -> Result<HttpResponse, ApiError> {
    let prune = req.query.has("prune");
    let membership = &ctx.membership;
    if req.query.has("wan") {
        if !ctx.config.server {
            return Err(ApiError::internal(
                "Must be a server to force-leave a node from the WAN cluster",
            ));
        }
        // The WAN pool is derived from the LAN one: the WAN name leads to the LAN member.
        let dc = &ctx.config.datacenter;
        let lan_name = membership
            .members()
            .into_iter()
            .find(|m| is_server(m) && wan_name(m, dc) == node)
            .map(|m| m.name)
            .ok_or_else(|| internal(MembershipError::NoSuchNode(node.to_string())))?;
        membership.force_leave(&lan_name, prune).map_err(internal)?;
        return Ok(HttpResponse::Ok().finish());
    }
    match membership.force_leave(node, prune) {
        Ok(()) => Ok(HttpResponse::Ok().finish()),
        // A server also looks for `<node>.<dc>` in its WAN pool, so the WAN name of a
        // server works on the LAN command too.
        Err(MembershipError::NoSuchNode(_)) if ctx.config.server => {
            let suffix = format!(".{}", ctx.config.datacenter);
            let lan_name = node.strip_suffix(&suffix).filter(|n| {
                membership
                    .members()
                    .iter()
                    .any(|m| m.name == *n && is_server(m))
            });
            match lan_name {
                Some(n) => membership.force_leave(n, prune).map_err(internal)?,
                None => return Err(internal(MembershipError::NoSuchNode(node.to_string()))),
            }
            Ok(HttpResponse::Ok().finish())
        }
        Err(e) => Err(internal(e)),
    }
}
