//! `/v1/health/*`: service (with `?passing`, `?tag`, `?node-meta`), node, checks, state.

use super::catalog::{parse_node_meta, AgentServiceOut, NodeOut};
use super::error::ApiError;
use super::query::{Query, QueryOptions};
use super::render::{json_with_meta, to_json_filtered};
use super::ApiRequest;
use crate::context::AgentContext;
use actix_web::HttpResponse;
use protocol::api::{Read, ReadData, RequestError, ServiceEntry};
use protocol::filter::Filter;
use protocol::store::{Check, CheckStatus};
use serde::Serialize;

/// A check's definition; empty fields are omitted (`{}` for catalog-only checks).
#[derive(Serialize)]
pub struct DefinitionOut<'a> {
    #[serde(rename = "HTTP", skip_serializing_if = "str::is_empty")]
    pub http: &'a str,
    #[serde(rename = "TCP", skip_serializing_if = "str::is_empty")]
    pub tcp: &'a str,
    #[serde(rename = "Interval", skip_serializing_if = "str::is_empty")]
    pub interval: &'a str,
    #[serde(rename = "Timeout", skip_serializing_if = "str::is_empty")]
    pub timeout: &'a str,
    #[serde(
        rename = "DeregisterCriticalServiceAfter",
        skip_serializing_if = "str::is_empty"
    )]
    pub deregister_critical_service_after: &'a str,
}

/// Consul's HealthCheck object.
#[derive(Serialize)]
pub struct HealthCheckOut<'a> {
    #[serde(rename = "Node")]
    pub node: &'a str,
    #[serde(rename = "CheckID")]
    pub check_id: &'a str,
    #[serde(rename = "Name")]
    pub name: &'a str,
    #[serde(rename = "Status")]
    pub status: &'static str,
    #[serde(rename = "Notes")]
    pub notes: &'a str,
    #[serde(rename = "Output")]
    pub output: &'a str,
    #[serde(rename = "ServiceID")]
    pub service_id: &'a str,
    #[serde(rename = "ServiceName")]
    pub service_name: &'a str,
    #[serde(rename = "ServiceTags")]
    pub service_tags: &'a [String],
    #[serde(rename = "Type")]
    pub check_type: &'a str,
    #[serde(rename = "Interval")]
    pub interval: &'a str,
    #[serde(rename = "Timeout")]
    pub timeout: &'a str,
    #[serde(rename = "ExposedPort")]
    pub exposed_port: u16,
    #[serde(rename = "Definition")]
    pub definition: DefinitionOut<'a>,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
}

impl<'a> From<&'a Check> for HealthCheckOut<'a> {
    fn from(c: &'a Check) -> Self {
        let d = &c.definition;
        HealthCheckOut {
            node: &c.node,
            check_id: &c.check_id,
            name: &c.name,
            status: c.status.as_str(),
            notes: &c.notes,
            output: &c.output,
            service_id: &c.service_id,
            service_name: &c.service_name,
            service_tags: &c.service_tags,
            check_type: &c.check_type,
            interval: &d.interval,
            timeout: &d.timeout,
            exposed_port: 0,
            definition: DefinitionOut {
                http: &d.http,
                tcp: &d.tcp,
                interval: &d.interval,
                timeout: &d.timeout,
                deregister_critical_service_after: &d.deregister_critical_service_after,
            },
            create_index: c.create_index,
            modify_index: c.modify_index,
        }
    }
}

#[derive(Serialize)]
pub struct ServiceEntryOut<'a> {
    #[serde(rename = "Node")]
    pub node: NodeOut<'a>,
    #[serde(rename = "Service")]
    pub service: AgentServiceOut<'a>,
    #[serde(rename = "Checks")]
    pub checks: Vec<HealthCheckOut<'a>>,
}

/// `?passing`: absent → no filter; empty → true; otherwise Go's `ParseBool`.
pub fn parse_passing(q: &Query) -> Result<bool, ApiError> {
    match q.get("passing") {
        None => Ok(false),
        Some("" | "1" | "t" | "T" | "true" | "TRUE" | "True") => Ok(true),
        Some("0" | "f" | "F" | "false" | "FALSE" | "False") => Ok(false),
        Some(_) => Err(ApiError::bad_request("Invalid value for ?passing")),
    }
}

pub fn render_service(
    entries: &[ServiceEntry],
    filter: Option<&Filter>,
    pretty: bool,
) -> Result<Vec<u8>, ApiError> {
    let out: Vec<ServiceEntryOut<'_>> = entries
        .iter()
        .map(|e| ServiceEntryOut {
            node: NodeOut::from(&e.node),
            service: AgentServiceOut::from(&e.service),
            checks: e.checks.iter().map(HealthCheckOut::from).collect(),
        })
        .collect();
    to_json_filtered(&out, filter, pretty)
}

fn render_checks(
    checks: &[Check],
    filter: Option<&Filter>,
    pretty: bool,
) -> Result<Vec<u8>, ApiError> {
    let out: Vec<HealthCheckOut<'_>> = checks.iter().map(HealthCheckOut::from).collect();
    to_json_filtered(&out, filter, pretty)
}

/// `any` or one stored status.
pub fn parse_state(state: &str) -> Result<Option<CheckStatus>, ApiError> {
    if state.is_empty() {
        return Err(ApiError::bad_request("Missing check state"));
    }
    if state == "any" {
        return Ok(None);
    }
    CheckStatus::parse(state)
        .map(Some)
        .ok_or_else(|| ApiError::bad_request(format!("Invalid check state: {state:?}")))
}

/// Which health endpoint a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthRoute<'a> {
    Service(&'a str),
    Node(&'a str),
    Checks(&'a str),
    State(&'a str),
}

pub async fn handle(
    ctx: &AgentContext,
    req: &ApiRequest,
    route: HealthRoute<'_>,
) -> Result<HttpResponse, ApiError> {
    let (opts, filter) = QueryOptions::parse_with_filter(&req.query, &ctx.config.datacenter)?;
    let read = match route {
        HealthRoute::Service(name) => {
            if name.is_empty() {
                return Err(ApiError::bad_request("Missing service name"));
            }
            Read::HealthService {
                name: name.to_string(),
                tags: req.query.all("tag"),
                node_meta: parse_node_meta(&req.query.all("node-meta")),
                passing: parse_passing(&req.query)?,
            }
        }
        HealthRoute::Node(node) => {
            if node.is_empty() {
                return Err(ApiError::bad_request("Missing node name"));
            }
            Read::HealthNode {
                node: node.to_string(),
            }
        }
        HealthRoute::Checks(service) => {
            if service.is_empty() {
                return Err(ApiError::bad_request("Missing service name"));
            }
            Read::HealthChecks {
                service: service.to_string(),
            }
        }
        HealthRoute::State(state) => Read::HealthState {
            state: parse_state(state)?,
        },
    };
    let r = ctx.api.read(opts.to_api(), read).await?;
    let body = match &r.data {
        ReadData::ServiceEntries(entries) => render_service(entries, filter.as_ref(), req.pretty)?,
        ReadData::Checks(checks) => render_checks(checks, filter.as_ref(), req.pretty)?,
        _ => return Err(RequestError::unexpected_data().into()),
    };
    Ok(json_with_meta(&r.meta, body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::render::to_json;
    use protocol::store::CheckDefinition;

    #[test]
    fn passing_and_state_parsing() {
        let p = |s: &str| parse_passing(&Query::parse(s));
        assert_eq!(p(""), Ok(false));
        assert_eq!(p("passing"), Ok(true));
        assert_eq!(p("passing=1"), Ok(true));
        assert_eq!(p("passing=false"), Ok(false));
        assert_eq!(
            p("passing=maybe"),
            Err(ApiError::bad_request("Invalid value for ?passing"))
        );
        assert_eq!(parse_state("any"), Ok(None));
        assert_eq!(parse_state("critical"), Ok(Some(CheckStatus::Critical)));
        assert_eq!(
            parse_state("bogus"),
            Err(ApiError::bad_request("Invalid check state: \"bogus\""))
        );
        assert_eq!(
            parse_state(""),
            Err(ApiError::bad_request("Missing check state"))
        );
    }

    #[test]
    fn health_check_shape() {
        let c = Check {
            node: "n1".into(),
            check_id: "service:web-1".into(),
            name: "Service 'web' check".into(),
            status: CheckStatus::Passing,
            service_id: "web-1".into(),
            service_name: "web".into(),
            service_tags: vec!["prod".into()],
            check_type: "http".into(),
            definition: CheckDefinition {
                http: "http://x".into(),
                interval: "10s".into(),
                timeout: "1s".into(),
                ..Default::default()
            },
            create_index: 60,
            modify_index: 61,
            ..Default::default()
        };
        let body = String::from_utf8(to_json(&HealthCheckOut::from(&c), false).unwrap()).unwrap();
        assert_eq!(
            body,
            concat!(
                r#"{"Node":"n1","CheckID":"service:web-1","Name":"Service 'web' check","Status":"passing","#,
                r#""Notes":"","Output":"","ServiceID":"web-1","ServiceName":"web","ServiceTags":["prod"],"#,
                r#""Type":"http","Interval":"10s","Timeout":"1s","ExposedPort":0,"#,
                r#""Definition":{"HTTP":"http://x","Interval":"10s","Timeout":"1s"},"CreateIndex":60,"ModifyIndex":61}"#
            )
        );
    }
}
