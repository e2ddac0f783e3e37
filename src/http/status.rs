//! `/v1/status/leader` and `/v1/status/peers`.

use super::error::ApiError;
use super::query::check_dc;
use super::render::to_json;
use actors::RaftStatus;

/// `"ip:port"` of the leader's server RPC address, `""` when none is known.
pub fn render_leader(status: &RaftStatus, pretty: bool) -> Result<Vec<u8>, ApiError> {
    to_json(status.leader_addr.as_deref().unwrap_or(""), pretty)
}

/// Voter addresses.
pub fn render_peers(status: &RaftStatus, pretty: bool) -> Result<Vec<u8>, ApiError> {
    let peers: Vec<&str> = status
        .voters
        .iter()
        .map(|(_, addr)| addr.as_str())
        .collect();
    to_json(&peers, pretty)
}

pub fn handle(
    ctx: &crate::agent::AgentContext,
    req: &super::ApiRequest,
    leader: bool,
) -> Result<actix_web::HttpResponse, ApiError> {
    check_dc(&req.query, &ctx.config.datacenter)?;
    let status = ctx.server.status();
    let body = if leader {
        render_leader(&status, req.pretty)?
    } else {
        render_peers(&status, req.pretty)?
    };
    Ok(super::render::json_bytes(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_and_peers() {
        let none = RaftStatus::default();
        assert_eq!(render_leader(&none, false).unwrap(), b"\"\"");
        assert_eq!(render_peers(&none, false).unwrap(), b"[]");
        let s = RaftStatus {
            leader_addr: Some("10.0.0.1:8300".into()),
            voters: vec![
                ("a".into(), "10.0.0.1:8300".into()),
                ("b".into(), "10.0.0.2:8300".into()),
            ],
            ..Default::default()
        };
        assert_eq!(render_leader(&s, false).unwrap(), b"\"10.0.0.1:8300\"");
        assert_eq!(
            render_peers(&s, false).unwrap(),
            b"[\"10.0.0.1:8300\",\"10.0.0.2:8300\"]"
        );
        assert_eq!(render_leader(&s, true).unwrap(), b"\"10.0.0.1:8300\"\n");
    }
}
