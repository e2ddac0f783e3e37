//! `/v1/catalog/*`: register, deregister, datacenters, nodes, services, service/:name,
//! node/:node.

use super::body::{decode_json, duration_field, json_too_large, JSON_MAX_BODY_BYTES};
use super::error::ApiError;
use super::query::{check_dc, QueryOptions};
use super::read::read;
use super::render::{json_bytes, json_response, to_json};
use super::{write, ApiRequest, BodyReader};
use crate::agent::AgentContext;
use actix_web::HttpResponse;
use protocol::store::{
    carried_bytes, Check, CheckDefinition, CheckStatus, Command, DeregisterRequest, Node,
    RegisterRequest, Service, ServiceAddress, Store, Table, Weights, MAX_REGISTRATION_COPY_BYTES,
};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;

// ---------- response shapes ----------

#[derive(Serialize)]
pub struct WeightsOut {
    #[serde(rename = "Passing")]
    pub passing: i32,
    #[serde(rename = "Warning")]
    pub warning: i32,
}

impl From<Weights> for WeightsOut {
    fn from(w: Weights) -> Self {
        WeightsOut {
            passing: w.passing,
            warning: w.warning,
        }
    }
}

/// Service tagged addresses with PascalCase `Address`/`Port`.
pub struct ServiceTaggedOut<'a>(pub &'a BTreeMap<String, ServiceAddress>);

impl Serialize for ServiceTaggedOut<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Addr<'a> {
            #[serde(rename = "Address")]
            address: &'a str,
            #[serde(rename = "Port")]
            port: u16,
        }
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(
                k,
                &Addr {
                    address: &v.address,
                    port: v.port,
                },
            )?;
        }
        map.end()
    }
}

#[derive(Serialize)]
pub struct Empty {}

#[derive(Serialize)]
pub struct ProxyOut {
    #[serde(rename = "MeshGateway")]
    pub mesh_gateway: Empty,
    #[serde(rename = "Expose")]
    pub expose: Empty,
}

const PROXY: ProxyOut = ProxyOut {
    mesh_gateway: Empty {},
    expose: Empty {},
};

/// Element of `/v1/catalog/service/:name`.
#[derive(Serialize)]
pub struct CatalogServiceOut<'a> {
    #[serde(rename = "ID")]
    pub id: &'a str,
    #[serde(rename = "Node")]
    pub node: &'a str,
    #[serde(rename = "Address")]
    pub address: &'a str,
    #[serde(rename = "Datacenter")]
    pub datacenter: &'a str,
    #[serde(rename = "TaggedAddresses")]
    pub tagged_addresses: &'a BTreeMap<String, String>,
    #[serde(rename = "NodeMeta")]
    pub node_meta: &'a BTreeMap<String, String>,
    #[serde(rename = "ServiceKind")]
    pub service_kind: &'a str,
    #[serde(rename = "ServiceID")]
    pub service_id: &'a str,
    #[serde(rename = "ServiceName")]
    pub service_name: &'a str,
    #[serde(rename = "ServiceTags")]
    pub service_tags: &'a [String],
    #[serde(rename = "ServiceAddress")]
    pub service_address: &'a str,
    #[serde(rename = "ServiceTaggedAddresses")]
    pub service_tagged_addresses: ServiceTaggedOut<'a>,
    #[serde(rename = "ServiceWeights")]
    pub service_weights: WeightsOut,
    #[serde(rename = "ServiceMeta")]
    pub service_meta: &'a BTreeMap<String, String>,
    #[serde(rename = "ServicePort")]
    pub service_port: u16,
    #[serde(rename = "ServiceEnableTagOverride")]
    pub service_enable_tag_override: bool,
    #[serde(rename = "ServiceProxy")]
    pub service_proxy: &'static ProxyOut,
    #[serde(rename = "ServiceConnect")]
    pub service_connect: Empty,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
}

impl<'a> CatalogServiceOut<'a> {
    pub fn new(node: &'a Node, svc: &'a Service) -> Self {
        CatalogServiceOut {
            id: &node.id,
            node: &node.node,
            address: &node.address,
            datacenter: &node.datacenter,
            tagged_addresses: &node.tagged_addresses,
            node_meta: &node.meta,
            service_kind: &svc.kind,
            service_id: &svc.id,
            service_name: &svc.service,
            service_tags: &svc.tags,
            service_address: &svc.address,
            service_tagged_addresses: ServiceTaggedOut(&svc.tagged_addresses),
            service_weights: svc.weights.into(),
            service_meta: &svc.meta,
            service_port: svc.port,
            service_enable_tag_override: svc.enable_tag_override,
            service_proxy: &PROXY,
            service_connect: Empty {},
            create_index: svc.create_index,
            modify_index: svc.modify_index,
        }
    }
}

/// A catalog node (`/v1/catalog/nodes`, `Node` of `/v1/catalog/node/:node`).
#[derive(Serialize)]
pub struct NodeOut<'a> {
    #[serde(rename = "ID")]
    pub id: &'a str,
    #[serde(rename = "Node")]
    pub node: &'a str,
    #[serde(rename = "Address")]
    pub address: &'a str,
    #[serde(rename = "Datacenter")]
    pub datacenter: &'a str,
    #[serde(rename = "TaggedAddresses")]
    pub tagged_addresses: &'a BTreeMap<String, String>,
    #[serde(rename = "Meta")]
    pub meta: &'a BTreeMap<String, String>,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
}

impl<'a> From<&'a Node> for NodeOut<'a> {
    fn from(n: &'a Node) -> Self {
        NodeOut {
            id: &n.id,
            node: &n.node,
            address: &n.address,
            datacenter: &n.datacenter,
            tagged_addresses: &n.tagged_addresses,
            meta: &n.meta,
            create_index: n.create_index,
            modify_index: n.modify_index,
        }
    }
}

/// Consul's AgentService shape (values of `Services` in `/v1/catalog/node/:node`).
#[derive(Serialize)]
pub struct AgentServiceOut<'a> {
    #[serde(rename = "Kind", skip_serializing_if = "str::is_empty")]
    pub kind: &'a str,
    #[serde(rename = "ID")]
    pub id: &'a str,
    #[serde(rename = "Service")]
    pub service: &'a str,
    #[serde(rename = "Tags")]
    pub tags: &'a [String],
    #[serde(rename = "Meta")]
    pub meta: &'a BTreeMap<String, String>,
    #[serde(rename = "Port")]
    pub port: u16,
    #[serde(rename = "Address")]
    pub address: &'a str,
    #[serde(rename = "TaggedAddresses", skip_serializing_if = "tagged_is_empty")]
    pub tagged_addresses: ServiceTaggedOut<'a>,
    #[serde(rename = "Weights")]
    pub weights: WeightsOut,
    #[serde(rename = "EnableTagOverride")]
    pub enable_tag_override: bool,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
}

fn tagged_is_empty(t: &ServiceTaggedOut<'_>) -> bool {
    t.0.is_empty()
}

impl<'a> From<&'a Service> for AgentServiceOut<'a> {
    fn from(s: &'a Service) -> Self {
        AgentServiceOut {
            kind: &s.kind,
            id: &s.id,
            service: &s.service,
            tags: &s.tags,
            meta: &s.meta,
            port: s.port,
            address: &s.address,
            tagged_addresses: ServiceTaggedOut(&s.tagged_addresses),
            weights: s.weights.into(),
            enable_tag_override: s.enable_tag_override,
            create_index: s.create_index,
            modify_index: s.modify_index,
        }
    }
}

#[derive(Serialize)]
pub struct NodeServicesOut<'a> {
    #[serde(rename = "Node")]
    pub node: NodeOut<'a>,
    #[serde(rename = "Services")]
    pub services: BTreeMap<&'a str, AgentServiceOut<'a>>,
}

// ---------- pure renderers (tested against a Store) ----------

/// `?node-meta=k:v` (repeatable, all must match). A value without `:` matches an empty
/// value, as Consul's parser does.
pub type NodeMetaFilter = Vec<(String, String)>;

pub fn parse_node_meta(values: &[String]) -> NodeMetaFilter {
    values
        .iter()
        .map(|v| match v.split_once(':') {
            Some((k, val)) => (k.to_string(), val.to_string()),
            None => (v.clone(), String::new()),
        })
        .collect()
}

pub fn node_matches(node: &Node, filter: &NodeMetaFilter) -> bool {
    filter.iter().all(|(k, v)| node.meta.get(k) == Some(v))
}

pub fn render_nodes(
    store: &Store,
    filter: &NodeMetaFilter,
    pretty: bool,
) -> Result<Vec<u8>, ApiError> {
    let nodes: Vec<NodeOut<'_>> = store
        .nodes()
        .into_iter()
        .filter(|n| node_matches(n, filter))
        .map(NodeOut::from)
        .collect();
    to_json(&nodes, pretty)
}

pub fn render_services(
    store: &Store,
    filter: &NodeMetaFilter,
    pretty: bool,
) -> Result<Vec<u8>, ApiError> {
    if filter.is_empty() {
        return to_json(&store.services(), pretty);
    }
    let mut out: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for node in store
        .nodes()
        .into_iter()
        .filter(|n| node_matches(n, filter))
    {
        for svc in store.node_services(&node.node) {
            out.entry(svc.service.as_str())
                .or_default()
                .extend(svc.tags.iter().map(String::as_str));
        }
    }
    to_json(&out, pretty)
}

pub fn render_service(
    store: &Store,
    name: &str,
    tags: &[String],
    filter: &NodeMetaFilter,
    pretty: bool,
) -> Result<Vec<u8>, ApiError> {
    let out: Vec<CatalogServiceOut<'_>> = store
        .service_instances_health(name, tags)
        .iter()
        .filter(|i| node_matches(i.node, filter))
        .map(|i| CatalogServiceOut::new(i.node, i.service))
        .collect();
    to_json(&out, pretty)
}

pub fn render_node(store: &Store, name: &str, pretty: bool) -> Result<Vec<u8>, ApiError> {
    let Some(node) = store.node(name) else {
        return to_json(&Value::Null, pretty);
    };
    let services = store
        .node_services(&node.node)
        .into_iter()
        .map(|s| (s.id.as_str(), AgentServiceOut::from(s)))
        .collect();
    to_json(
        &NodeServicesOut {
            node: NodeOut::from(node),
            services,
        },
        pretty,
    )
}

// ---------- request bodies (canonical lowercase field names, see body.rs) ----------

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct RegisterBody {
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    #[serde(rename = "taggedaddresses")]
    pub tagged_addresses: BTreeMap<String, String>,
    #[serde(rename = "nodemeta")]
    pub node_meta: BTreeMap<String, String>,
    pub service: Option<ServiceBody>,
    pub check: Option<CheckBody>,
    pub checks: Vec<CheckBody>,
    #[serde(rename = "skipnodeupdate")]
    pub skip_node_update: bool,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct ServiceBody {
    pub id: String,
    pub service: String,
    pub kind: String,
    pub tags: Vec<String>,
    pub address: String,
    #[serde(rename = "taggedaddresses")]
    pub tagged_addresses: BTreeMap<String, ServiceAddressBody>,
    pub meta: BTreeMap<String, String>,
    pub port: u16,
    pub weights: Option<WeightsBody>,
    #[serde(rename = "enabletagoverride")]
    pub enable_tag_override: bool,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct ServiceAddressBody {
    pub address: String,
    pub port: u16,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct WeightsBody {
    pub passing: i32,
    pub warning: i32,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct CheckBody {
    pub node: String,
    #[serde(rename = "checkid", alias = "id")]
    pub check_id: String,
    pub name: String,
    pub status: String,
    pub notes: String,
    pub output: String,
    #[serde(rename = "serviceid")]
    pub service_id: String,
    pub definition: DefinitionBody,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct DefinitionBody {
    pub http: String,
    pub tcp: String,
    pub interval: Value,
    pub timeout: Value,
    #[serde(rename = "deregistercriticalserviceafter")]
    pub deregister_critical_service_after: Value,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct DeregisterBody {
    pub node: String,
    pub datacenter: String,
    #[serde(rename = "serviceid")]
    pub service_id: String,
    #[serde(rename = "checkid")]
    pub check_id: String,
}

fn check_body_dc(dc: &str, ours: &str) -> Result<(), ApiError> {
    if !dc.is_empty() && dc != ours {
        return Err(ApiError::internal("No path to datacenter"));
    }
    Ok(())
}

/// Validate a register body and fill Consul's defaults, giving the replicated command.
pub fn register_command(body: RegisterBody, our_dc: &str) -> Result<RegisterRequest, ApiError> {
    check_body_dc(&body.datacenter, our_dc)?;
    if body.node.is_empty() {
        return Err(ApiError::internal("Must provide node"));
    }
    if body.address.is_empty() && !body.skip_node_update {
        return Err(ApiError::internal(
            "Must provide address if SkipNodeUpdate is not set",
        ));
    }
    if !body.id.is_empty() {
        uuid::Uuid::parse_str(&body.id)
            .map_err(|e| ApiError::internal(format!("Bad node ID: {e}")))?;
    }
    let node = Node {
        id: body.id,
        node: body.node.clone(),
        address: body.address,
        datacenter: our_dc.to_string(),
        tagged_addresses: body.tagged_addresses,
        meta: body.node_meta,
        create_index: 0,
        modify_index: 0,
    };
    let service = match body.service {
        None => None,
        Some(s) => {
            if s.service.is_empty() {
                return Err(ApiError::internal("Must provide service name with ID"));
            }
            let id = if s.id.is_empty() {
                s.service.clone()
            } else {
                s.id
            };
            Some(Service {
                node: body.node.clone(),
                id,
                service: s.service,
                kind: s.kind,
                tags: s.tags,
                address: s.address,
                tagged_addresses: s
                    .tagged_addresses
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            k,
                            ServiceAddress {
                                address: v.address,
                                port: v.port,
                            },
                        )
                    })
                    .collect(),
                meta: s.meta,
                port: s.port,
                weights: s
                    .weights
                    .map(|w| Weights {
                        passing: w.passing,
                        warning: w.warning,
                    })
                    .unwrap_or_default(),
                enable_tag_override: s.enable_tag_override,
                create_index: 0,
                modify_index: 0,
            })
        }
    };
    // Each check carries the node's name and (at most) the service's name and tags: refuse
    // before copying when that multiplies past the store's limit (413).
    let check_count = body
        .checks
        .len()
        .saturating_add(usize::from(body.check.is_some()));
    let per_check = match &service {
        Some(s) => carried_bytes(&body.node, &s.service, &s.tags),
        None => carried_bytes(&body.node, "", &[]),
    };
    let copied = check_count.saturating_mul(per_check);
    if copied > MAX_REGISTRATION_COPY_BYTES {
        return Err(ApiError::TooLarge(format!(
            "Registration too large: {check_count} checks would carry {copied} bytes of node \
             and service data (limit {MAX_REGISTRATION_COPY_BYTES} bytes)"
        )));
    }
    let mut checks = Vec::with_capacity(check_count);
    for c in body.check.into_iter().chain(body.checks) {
        checks.push(check_from_body(c, &body.node, service.as_ref())?);
    }
    Ok(RegisterRequest {
        node,
        skip_node_update: body.skip_node_update,
        service,
        checks,
    })
}

fn check_from_body(c: CheckBody, node: &str, service: Option<&Service>) -> Result<Check, ApiError> {
    let check_node = if c.node.is_empty() {
        node.to_string()
    } else {
        c.node
    };
    if check_node != node {
        return Err(ApiError::internal(format!(
            "Node '{check_node}' does not match register request"
        )));
    }
    let check_id = if c.check_id.is_empty() {
        c.name.clone()
    } else {
        c.check_id
    };
    if check_id.is_empty() {
        return Err(ApiError::internal("Missing check ID"));
    }
    let status = if c.status.is_empty() {
        CheckStatus::Critical
    } else {
        CheckStatus::parse(&c.status)
            .ok_or_else(|| ApiError::bad_request(format!("Invalid check status: {:?}", c.status)))?
    };
    let (service_name, service_tags) = match service {
        Some(s) if !c.service_id.is_empty() && s.id == c.service_id => {
            (s.service.clone(), s.tags.clone())
        }
        _ => (String::new(), Vec::new()),
    };
    let check_type = if !c.definition.http.is_empty() {
        "http"
    } else if !c.definition.tcp.is_empty() {
        "tcp"
    } else {
        ""
    };
    Ok(Check {
        node: check_node,
        check_id,
        name: c.name,
        status,
        notes: c.notes,
        output: c.output,
        service_id: c.service_id,
        service_name,
        service_tags,
        check_type: check_type.to_string(),
        definition: CheckDefinition {
            http: c.definition.http,
            tcp: c.definition.tcp,
            interval: duration_field(&c.definition.interval)?,
            timeout: duration_field(&c.definition.timeout)?,
            deregister_critical_service_after: duration_field(
                &c.definition.deregister_critical_service_after,
            )?,
        },
        create_index: 0,
        modify_index: 0,
    })
}

pub fn deregister_command(
    body: DeregisterBody,
    our_dc: &str,
) -> Result<DeregisterRequest, ApiError> {
    check_body_dc(&body.datacenter, our_dc)?;
    if body.node.is_empty() {
        return Err(ApiError::internal("Must provide node"));
    }
    let some = |s: String| if s.is_empty() { None } else { Some(s) };
    Ok(DeregisterRequest {
        node: body.node,
        service_id: some(body.service_id),
        check_id: some(body.check_id),
    })
}

// ---------- handlers ----------

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
            write(ctx, Command::Register(cmd), pretty).await
        }
        CatalogRoute::Deregister => {
            check_dc(&req.query, dc)?;
            let raw = body.read(JSON_MAX_BODY_BYTES, json_too_large).await?;
            let cmd = deregister_command(decode_json(&raw)?, dc)?;
            write(ctx, Command::Deregister(cmd), pretty).await
        }
        CatalogRoute::Datacenters => json_response(&[dc.as_str()], pretty),
        CatalogRoute::Nodes => {
            let opts = QueryOptions::parse(&req.query, dc)?;
            let meta = parse_node_meta(&req.query.all("node-meta"));
            respond(
                read(
                    ctx,
                    &opts,
                    |s| s.table_index(Table::Nodes),
                    |s, _| render_nodes(s, &meta, pretty),
                )
                .await?,
            )
        }
        CatalogRoute::Services => {
            let opts = QueryOptions::parse(&req.query, dc)?;
            let meta = parse_node_meta(&req.query.all("node-meta"));
            respond(
                read(
                    ctx,
                    &opts,
                    |s| s.table_index(Table::Services),
                    |s, _| render_services(s, &meta, pretty),
                )
                .await?,
            )
        }
        CatalogRoute::Service(name) => {
            let opts = QueryOptions::parse(&req.query, dc)?;
            if name.is_empty() {
                return Err(ApiError::bad_request("Missing service name"));
            }
            let tags = req.query.all("tag");
            let meta = parse_node_meta(&req.query.all("node-meta"));
            respond(
                read(
                    ctx,
                    &opts,
                    |s| s.service_index(name),
                    |s, _| render_service(s, name, &tags, &meta, pretty),
                )
                .await?,
            )
        }
        CatalogRoute::Node(name) => {
            let opts = QueryOptions::parse(&req.query, dc)?;
            if name.is_empty() {
                return Err(ApiError::bad_request("Missing node name"));
            }
            let index = |s: &Store| {
                s.table_index(Table::Nodes)
                    .max(s.table_index(Table::Services))
            };
            respond(read(ctx, &opts, index, |s, _| render_node(s, name, pretty)).await?)
        }
    }
}

fn respond((meta, body): (super::render::QueryMeta, Vec<u8>)) -> Result<HttpResponse, ApiError> {
    let mut resp = json_bytes(body);
    meta.apply(&mut resp);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reg(json: &str) -> Result<RegisterRequest, ApiError> {
        register_command(decode_json(json.as_bytes())?, "dc1")
    }

    #[test]
    fn register_defaults_and_case_insensitive_fields() {
        let r = reg(r#"{"node":"n1","ADDRESS":"10.0.0.1","NodeMeta":{"Env":"prod"},
            "Service":{"service":"web","Port":80,"tagged_addresses":{"lan":{"address":"10.0.0.5","port":81}}},
            "Check":{"Name":"web alive","ServiceID":"web","Definition":{"HTTP":"http://x","Interval":"10s","Timeout":1000000000}}}"#)
        .unwrap();
        assert_eq!(r.node.node, "n1");
        assert_eq!(r.node.address, "10.0.0.1");
        assert_eq!(r.node.datacenter, "dc1");
        assert_eq!(r.node.meta.get("Env").map(String::as_str), Some("prod"));
        let svc = r.service.unwrap();
        assert_eq!(svc.id, "web");
        assert_eq!(
            svc.weights,
            Weights {
                passing: 1,
                warning: 1
            }
        );
        assert_eq!(
            svc.tagged_addresses["lan"],
            ServiceAddress {
                address: "10.0.0.5".into(),
                port: 81
            }
        );
        assert_eq!(r.checks.len(), 1);
        let c = &r.checks[0];
        assert_eq!(c.check_id, "web alive");
        assert_eq!(c.node, "n1");
        assert_eq!(c.status, CheckStatus::Critical);
        assert_eq!(c.service_name, "web");
        assert_eq!(c.check_type, "http");
        assert_eq!(c.definition.interval, "10s");
        assert_eq!(c.definition.timeout, "1s");
    }

    #[test]
    fn register_rejections() {
        let err = |j: &str| reg(j).unwrap_err();
        assert_eq!(
            err(r#"{"Address":"1.2.3.4"}"#),
            ApiError::internal("Must provide node")
        );
        assert_eq!(
            err(r#"{"Node":"n"}"#),
            ApiError::internal("Must provide address if SkipNodeUpdate is not set")
        );
        assert!(reg(r#"{"Node":"n","SkipNodeUpdate":true}"#).is_ok());
        assert_eq!(
            err(r#"{"Node":"n","Address":"a","Datacenter":"dc9"}"#),
            ApiError::internal("No path to datacenter")
        );
        assert!(
            matches!(err(r#"{"Node":"n","Address":"a","ID":"nope"}"#), ApiError::Internal(t) if t.starts_with("Bad node ID: "))
        );
        assert_eq!(
            err(r#"{"Node":"n","Address":"a","Service":{"ID":"x"}}"#),
            ApiError::internal("Must provide service name with ID")
        );
        assert_eq!(
            err(r#"{"Node":"n","Address":"a","Check":{"Name":"c","Status":"bogus"}}"#),
            ApiError::bad_request("Invalid check status: \"bogus\"")
        );
        assert_eq!(
            err(r#"{"Node":"n","Address":"a","Checks":[{"Node":"other","Name":"c"}]}"#),
            ApiError::internal("Node 'other' does not match register request")
        );
        assert!(
            matches!(err(r#"{"Node":"n","Address":"a","Service":{"Service":"s","Port":"80"}}"#),
            ApiError::BadRequest(t) if t.starts_with("Request decode failed: "))
        );
        assert!(
            matches!(err(r#"{"Node":"n","Address":"a","Service":{"Service":"s","Port":70000}}"#),
            ApiError::BadRequest(t) if t.starts_with("Request decode failed: "))
        );
        assert!(
            matches!(err("[1,2]"), ApiError::BadRequest(t) if t.starts_with("Request decode failed: "))
        );
        assert!(
            matches!(err(""), ApiError::BadRequest(t) if t.starts_with("Request decode failed: "))
        );
    }

    #[test]
    fn registrations_that_multiply_past_the_limit_are_413() {
        let tags: Vec<String> = (0..1000).map(|i| format!("\"{i:0>100}\"")).collect();
        let checks = vec![r#"{"Name":"c","ServiceID":"web"}"#; 200].join(",");
        let body = format!(
            r#"{{"Node":"n","Address":"a","Service":{{"Service":"web","Tags":[{}]}},"Checks":[{checks}]}}"#,
            tags.join(",")
        );
        match reg(&body) {
            Err(ApiError::TooLarge(t)) => {
                assert!(t.starts_with("Registration too large: 200 checks"), "{t}")
            }
            other => panic!("{other:?}"),
        }
        // The same node name copied a little: fine.
        let few = [r#"{"Name":"c"}"#; 3].join(",");
        let ok = format!(
            r#"{{"Node":"{}","Address":"a","Checks":[{few}]}}"#,
            "n".repeat(1000)
        );
        assert!(reg(&ok).is_ok());
    }

    #[test]
    fn deregister_shapes() {
        let d = |j: &str| deregister_command(decode_json(j.as_bytes())?, "dc1");
        assert_eq!(d(r#"{}"#), Err(ApiError::internal("Must provide node")));
        assert_eq!(
            d(r#"{"node":"n","service_id":"web"}"#),
            Ok(DeregisterRequest {
                node: "n".into(),
                service_id: Some("web".into()),
                check_id: None
            })
        );
        assert_eq!(
            d(r#"{"Node":"n","CheckID":"c"}"#),
            Ok(DeregisterRequest {
                node: "n".into(),
                service_id: None,
                check_id: Some("c".into())
            })
        );
    }

    #[test]
    fn catalog_service_shape() {
        let node = Node {
            id: "40e4a748-2192-161a-0510-9bf59fe950b5".into(),
            node: "n1".into(),
            address: "10.0.0.1".into(),
            datacenter: "dc1".into(),
            ..Default::default()
        };
        let svc = Service {
            node: "n1".into(),
            id: "web-1".into(),
            service: "web".into(),
            port: 80,
            create_index: 51,
            modify_index: 51,
            ..Default::default()
        };
        let body =
            String::from_utf8(to_json(&[CatalogServiceOut::new(&node, &svc)], false).unwrap())
                .unwrap();
        assert_eq!(
            body,
            concat!(
                r#"[{"ID":"40e4a748-2192-161a-0510-9bf59fe950b5","Node":"n1","Address":"10.0.0.1","Datacenter":"dc1","#,
                r#""TaggedAddresses":{},"NodeMeta":{},"ServiceKind":"","ServiceID":"web-1","ServiceName":"web","#,
                r#""ServiceTags":[],"ServiceAddress":"","ServiceTaggedAddresses":{},"ServiceWeights":{"Passing":1,"Warning":1},"#,
                r#""ServiceMeta":{},"ServicePort":80,"ServiceEnableTagOverride":false,"#,
                r#""ServiceProxy":{"MeshGateway":{},"Expose":{}},"ServiceConnect":{},"CreateIndex":51,"ModifyIndex":51}]"#
            )
        );
        let agent =
            String::from_utf8(to_json(&AgentServiceOut::from(&svc), false).unwrap()).unwrap();
        assert_eq!(
            agent,
            r#"{"ID":"web-1","Service":"web","Tags":[],"Meta":{},"Port":80,"Address":"","Weights":{"Passing":1,"Warning":1},"EnableTagOverride":false,"CreateIndex":51,"ModifyIndex":51}"#
        );
    }
}
