//! `/v1/catalog/*`: register, deregister, datacenters, nodes, services, service/:name,
//! node/:node. Handlers parse the request, ask the endpoint, render its rows; the JSON
//! shapes are in `out`, the request bodies in `body`, the registration rules in
//! `protocol::store::registration`.

pub mod body;
pub mod out;

pub use body::{deregister_command, register_command, DeregisterBody, RegisterBody};
pub use out::{AgentServiceOut, NodeOut};

use super::body::{decode_json, json_too_large, JSON_MAX_BODY_BYTES};
use super::error::ApiError;
use super::query::{check_dc, QueryOptions};
use super::render::{json_response, json_with_meta};
use super::{write, ApiRequest, BodyReader};
use crate::context::AgentContext;
use actix_web::HttpResponse;
use protocol::api::{
    InfoData, InfoRequest, NodeMetaFilter, Read, ReadData, RequestError, WriteRequest,
};
use protocol::filter::Filter;

/// `?node-meta=k:v` (repeatable, all must match). A value without `:` matches an empty
/// value, as Consul's parser does.
pub fn parse_node_meta(values: &[String]) -> NodeMetaFilter {
    values
        .iter()
        .map(|v| match v.split_once(':') {
            Some((k, val)) => (k.to_string(), val.to_string()),
            None => (v.clone(), String::new()),
        })
        .collect()
}

/// Which catalog endpoint a path names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatalogRoute<'a> {
    Register,
    Deregister,
    Datacenters,
    Nodes,
    Services,
    Service(&'a str),
    Node(&'a str),
}

pub async fn handle(
    ctx: &AgentContext,
    req: &ApiRequest,
    route: CatalogRoute<'_>,
    body: &mut BodyReader<'_>,
) -> Result<HttpResponse, ApiError> {
    let dc = &ctx.config.datacenter;
    let pretty = req.pretty;
    match route {
        CatalogRoute::Register => {
            check_dc(&req.query, dc)?;
            let raw = body.read(JSON_MAX_BODY_BYTES, json_too_large).await?;
            let cmd = register_command(decode_json(&raw)?, dc)?;
            return write(ctx, WriteRequest::Register(cmd), pretty).await;
        }
        CatalogRoute::Deregister => {
            check_dc(&req.query, dc)?;
            let raw = body.read(JSON_MAX_BODY_BYTES, json_too_large).await?;
            let cmd = deregister_command(decode_json(&raw)?, dc)?;
            return write(ctx, WriteRequest::Deregister(cmd), pretty).await;
        }
        CatalogRoute::Datacenters => {
            let InfoData::Datacenters(dcs) = ctx.api.info(InfoRequest::Datacenters).await? else {
                return Err(RequestError::unexpected_data().into());
            };
            json_response(&dcs, pretty)
        }
        CatalogRoute::Nodes => {
            let (opts, filter) = QueryOptions::parse_with_filter(&req.query, dc)?;
            let read = Read::CatalogNodes {
                node_meta: parse_node_meta(&req.query.all("node-meta")),
            };
            return answer(ctx, opts, read, filter.as_ref(), pretty).await;
        }
        CatalogRoute::Services => {
            let (opts, filter) = QueryOptions::parse_with_filter(&req.query, dc)?;
            let node_meta = parse_node_meta(&req.query.all("node-meta"));
            let Some(filter) = filter else {
                return answer(ctx, opts, Read::CatalogServices { node_meta }, None, pretty).await;
            };
            // Consul filters the instances (ServiceNode rows), then groups them by name:
            // ask for the rows, filter, group here.
            let r = ctx
                .api
                .read(opts.to_api(), Read::CatalogServiceInstances { node_meta })
                .await?;
            let ReadData::ServiceNodes(rows) = &r.data else {
                return Err(RequestError::unexpected_data().into());
            };
            let body = out::render_services_filtered(rows, &filter, pretty)?;
            Ok(json_with_meta(&r.meta, body))
        }
        CatalogRoute::Service(name) => {
            let (opts, filter) = QueryOptions::parse_with_filter(&req.query, dc)?;
            if name.is_empty() {
                return Err(ApiError::bad_request("Missing service name"));
            }
            let read = Read::CatalogService {
                name: name.to_string(),
                tags: req.query.all("tag"),
                node_meta: parse_node_meta(&req.query.all("node-meta")),
            };
            return answer(ctx, opts, read, filter.as_ref(), pretty).await;
        }
        CatalogRoute::Node(name) => {
            let (opts, filter) = QueryOptions::parse_with_filter(&req.query, dc)?;
            if name.is_empty() {
                return Err(ApiError::bad_request("Missing node name"));
            }
            let read = Read::CatalogNode {
                node: name.to_string(),
            };
            answer(ctx, opts, read, filter.as_ref(), pretty).await
        }
    }
}

/// Ask the endpoint and render its rows with the meta headers.
async fn answer(
    ctx: &AgentContext,
    opts: QueryOptions,
    read: Read,
    filter: Option<&Filter>,
    pretty: bool,
) -> Result<HttpResponse, ApiError> {
    let r = ctx.api.read(opts.to_api(), read).await?;
    let body = match &r.data {
        ReadData::Nodes(nodes) => out::render_nodes(nodes, filter, pretty)?,
        ReadData::Services(services) => out::render_services(services, pretty)?,
        ReadData::ServiceNodes(rows) => out::render_service(rows, filter, pretty)?,
        ReadData::NodeServices(found) => out::render_node(found.as_ref(), filter, pretty)?,
        _ => return Err(RequestError::unexpected_data().into()),
    };
    Ok(json_with_meta(&r.meta, body))
}
