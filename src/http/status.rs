//! `/v1/status/leader` and `/v1/status/peers`.

use super::error::ApiError;
use super::query::check_dc;
use super::render::to_json;
use protocol::api::{InfoData, InfoRequest};

/// `"ip:port"` of the leader's server RPC address, `""` when none is known.
pub fn render_leader(leader: Option<&str>, pretty: bool) -> Result<Vec<u8>, ApiError> {
    to_json(leader.unwrap_or(""), pretty)
}

/// Voter addresses.
pub fn render_peers(peers: &[String], pretty: bool) -> Result<Vec<u8>, ApiError> {
    to_json(peers, pretty)
}

pub async fn handle(
    ctx: &crate::context::AgentContext,
    req: &super::ApiRequest,
    leader: bool,
) -> Result<actix_web::HttpResponse, ApiError> {
    check_dc(&req.query, &ctx.config.datacenter)?;
    let ask = if leader {
        InfoRequest::Leader
    } else {
        InfoRequest::Peers
    };
    let body = match ctx.api.info(ask).await? {
        InfoData::Leader(addr) => render_leader(addr.as_deref(), req.pretty)?,
        InfoData::Peers(peers) => render_peers(&peers, req.pretty)?,
        _ => return Err(protocol::api::RequestError::unexpected_data().into()),
    };
    Ok(super::render::json_bytes(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_and_peers() {
        assert_eq!(render_leader(None, false).unwrap(), b"\"\"");
        assert_eq!(render_peers(&[], false).unwrap(), b"[]");
        let peers = vec!["10.0.0.1:8300".to_string(), "10.0.0.2:8300".to_string()];
        assert_eq!(
            render_leader(Some("10.0.0.1:8300"), false).unwrap(),
            b"\"10.0.0.1:8300\""
        );
        assert_eq!(
            render_peers(&peers, false).unwrap(),
            b"[\"10.0.0.1:8300\",\"10.0.0.2:8300\"]"
        );
        assert_eq!(
            render_leader(Some("10.0.0.1:8300"), true).unwrap(),
            b"\"10.0.0.1:8300\"\n"
        );
    }
}
