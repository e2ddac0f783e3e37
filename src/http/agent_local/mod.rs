//! `/v1/agent/service/*`, `/v1/agent/check/*`, `/v1/agent/services|checks`, maintenance
//! and `/v1/agent/health/service/*`: the agent's OWN services and checks, answered from
//! and applied to the local state (`crate::local`), never the catalog. The catalog
//! follows through anti-entropy, as in Consul.

pub mod body;
mod checks;
mod health;
mod out;
mod services;

use super::error::ApiError;
use super::{ApiRequest, BodyReader};
use crate::context::AgentContext;
use crate::local::LocalAgent;
use actix_web::HttpResponse;

/// Which agent-local endpoint a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalRoute<'a> {
    ServiceRegister,
    ServiceDeregister(&'a str),
    Services,
    Service(&'a str),
    ServiceMaintenance(&'a str),
    CheckRegister,
    CheckDeregister(&'a str),
    /// pass, warn or fail.
    CheckTtl(TtlVerb, &'a str),
    CheckUpdate(&'a str),
    Checks,
    NodeMaintenance,
    HealthById(&'a str),
    HealthByName(&'a str),
    /// `PUT /v1/agent/reload`: the config files' services and checks read again.
    Reload,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlVerb {
    Pass,
    Warn,
    Fail,
}

/// Whether the route is a read (GET) rather than a write (PUT).
pub fn is_read(route: LocalRoute<'_>) -> bool {
    matches!(
        route,
        LocalRoute::Services
            | LocalRoute::Service(_)
            | LocalRoute::Checks
            | LocalRoute::HealthById(_)
            | LocalRoute::HealthByName(_)
    )
}

/// Match the part of a path after `/v1/agent/`.
pub fn route(rest: &str) -> Option<LocalRoute<'_>> {
    use LocalRoute as R;
    Some(match rest {
        "service/register" => R::ServiceRegister,
        "services" => R::Services,
        "check/register" => R::CheckRegister,
        "checks" => R::Checks,
        "maintenance" => R::NodeMaintenance,
        "reload" => R::Reload,
        _ => {
            if let Some(id) = rest.strip_prefix("service/deregister/") {
                R::ServiceDeregister(id)
            } else if let Some(id) = rest.strip_prefix("service/maintenance/") {
                R::ServiceMaintenance(id)
            } else if let Some(id) = rest.strip_prefix("service/") {
                R::Service(id)
            } else if let Some(id) = rest.strip_prefix("check/deregister/") {
                R::CheckDeregister(id)
            } else if let Some(id) = rest.strip_prefix("check/pass/") {
                R::CheckTtl(TtlVerb::Pass, id)
            } else if let Some(id) = rest.strip_prefix("check/warn/") {
                R::CheckTtl(TtlVerb::Warn, id)
            } else if let Some(id) = rest.strip_prefix("check/fail/") {
                R::CheckTtl(TtlVerb::Fail, id)
            } else if let Some(id) = rest.strip_prefix("check/update/") {
                R::CheckUpdate(id)
            } else if let Some(id) = rest.strip_prefix("health/service/id/") {
                R::HealthById(id)
            } else if let Some(name) = rest.strip_prefix("health/service/name/") {
                R::HealthByName(name)
            } else {
                return None;
            }
        }
    })
}

fn local(ctx: &AgentContext) -> Result<&LocalAgent, ApiError> {
    ctx.local
        .as_ref()
        .ok_or_else(|| ApiError::internal("the agent's local state is not running"))
}

pub async fn handle(
    ctx: &AgentContext,
    req: &ApiRequest,
    route: LocalRoute<'_>,
    body: &mut BodyReader<'_>,
) -> Result<HttpResponse, ApiError> {
    use LocalRoute as R;
    if route == R::Reload {
        return reload(ctx).await;
    }
    let local = local(ctx)?;
    match route {
        R::ServiceRegister => services::register(local, req, body).await,
        R::ServiceDeregister(id) => services::deregister(local, id).await,
        R::Services => services::list(local, req),
        R::Service(id) => services::one(local, req, id).await,
        R::ServiceMaintenance(id) => checks::service_maintenance(local, req, id).await,
        R::CheckRegister => checks::register(local, body).await,
        R::CheckDeregister(id) => checks::deregister(local, id).await,
        R::CheckTtl(verb, id) => checks::ttl(local, req, verb, id).await,
        R::CheckUpdate(id) => checks::update(local, id, body).await,
        R::Checks => checks::list(local, req),
        R::NodeMaintenance => checks::node_maintenance(local, req).await,
        R::HealthById(id) => health::by_id(local, req, id),
        R::HealthByName(name) => health::by_name(local, req, name),
        R::Reload => reload(ctx).await,
    }
}

async fn reload(ctx: &AgentContext) -> Result<HttpResponse, ApiError> {
    let requests = ctx
        .reload
        .as_ref()
        .ok_or_else(|| ApiError::internal("reload is not available on this agent"))?;
    let (reply, outcome) = tokio::sync::oneshot::channel();
    requests
        .send(reply)
        .await
        .map_err(|_| ApiError::internal("agent is shutting down"))?;
    match outcome.await {
        Ok(Ok(())) => Ok(ok_empty()),
        Ok(Err(e)) => Err(ApiError::internal(e)),
        Err(_) => Err(ApiError::internal("agent is shutting down")),
    }
}

/// Consul answers these writes with an empty 200.
fn ok_empty() -> HttpResponse {
    HttpResponse::Ok().finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("service/web-1"), Some(LocalRoute::Service("web-1")));
        assert_eq!(
            route("service/maintenance/web-1"),
            Some(LocalRoute::ServiceMaintenance("web-1"))
        );
        assert_eq!(
            route("check/pass/service:web-1"),
            Some(LocalRoute::CheckTtl(TtlVerb::Pass, "service:web-1"))
        );
        assert_eq!(
            route("health/service/name/web"),
            Some(LocalRoute::HealthByName("web"))
        );
        assert_eq!(route("self"), None);
        assert!(is_read(LocalRoute::Checks));
        assert!(!is_read(LocalRoute::CheckRegister));
    }
}
