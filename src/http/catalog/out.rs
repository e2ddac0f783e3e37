//! JSON shapes of the catalog answers, as Consul renders them, and their renderers from
//! the endpoint's rows. (`ServiceKind`, proxy and connect fields are fixed: cairn has no
//! mesh.)

use crate::http::error::ApiError;
use crate::http::render::{passing_value, to_json, to_json_filtered};
use protocol::api::{NodeServices, ServiceNode};
use protocol::filter::Filter;
use protocol::store::{Node, Service, ServiceAddress, Weights};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;

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

/// The fields of Consul's AgentService shape that every rendering of a service shares
/// (the catalog's adds its indexes, the agent's its datacenter and content hash).
#[derive(Serialize)]
pub struct ServiceFieldsOut<'a> {
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
}

fn tagged_is_empty(t: &ServiceTaggedOut<'_>) -> bool {
    t.0.is_empty()
}

impl<'a> From<&'a Service> for ServiceFieldsOut<'a> {
    fn from(s: &'a Service) -> Self {
        ServiceFieldsOut {
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
        }
    }
}

/// Consul's AgentService shape (values of `Services` in `/v1/catalog/node/:node`).
#[derive(Serialize)]
pub struct AgentServiceOut<'a> {
    #[serde(flatten)]
    pub fields: ServiceFieldsOut<'a>,
    #[serde(rename = "CreateIndex")]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex")]
    pub modify_index: u64,
}

impl<'a> From<&'a Service> for AgentServiceOut<'a> {
    fn from(s: &'a Service) -> Self {
        AgentServiceOut {
            fields: ServiceFieldsOut::from(s),
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

pub fn render_nodes(
    nodes: &[Node],
    filter: Option<&Filter>,
    pretty: bool,
) -> Result<Vec<u8>, ApiError> {
    let out: Vec<NodeOut<'_>> = nodes.iter().map(NodeOut::from).collect();
    to_json_filtered(&out, filter, pretty)
}

/// Service name → tags.
pub fn render_services(
    services: &BTreeMap<String, Vec<String>>,
    pretty: bool,
) -> Result<Vec<u8>, ApiError> {
    to_json(services, pretty)
}

/// Service name → tags over the instances `filter` keeps (tags merged, sorted, once each).
pub fn render_services_filtered(
    rows: &[ServiceNode],
    filter: &Filter,
    pretty: bool,
) -> Result<Vec<u8>, ApiError> {
    let mut grouped: BTreeMap<&str, std::collections::BTreeSet<&str>> = BTreeMap::new();
    for row in rows {
        let out = CatalogServiceOut::new(&row.node, &row.service);
        if passing_value(filter, &out)?.is_some() {
            grouped
                .entry(row.service.service.as_str())
                .or_default()
                .extend(row.service.tags.iter().map(String::as_str));
        }
    }
    to_json(&grouped, pretty)
}

pub fn render_service(
    rows: &[ServiceNode],
    filter: Option<&Filter>,
    pretty: bool,
) -> Result<Vec<u8>, ApiError> {
    let out: Vec<CatalogServiceOut<'_>> = rows
        .iter()
        .map(|r| CatalogServiceOut::new(&r.node, &r.service))
        .collect();
    to_json_filtered(&out, filter, pretty)
}

/// A node with its services, `null` when there is no such node. A filter applies to the
/// services (Consul filters the node's service list).
pub fn render_node(
    found: Option<&NodeServices>,
    filter: Option<&Filter>,
    pretty: bool,
) -> Result<Vec<u8>, ApiError> {
    let Some(found) = found else {
        return to_json(&Value::Null, pretty);
    };
    let mut services = BTreeMap::new();
    for s in &found.services {
        let out = AgentServiceOut::from(s);
        if let Some(filter) = filter {
            if passing_value(filter, &out)?.is_none() {
                continue;
            }
        }
        services.insert(s.id.as_str(), out);
    }
    to_json(
        &NodeServicesOut {
            node: NodeOut::from(&found.node),
            services,
        },
        pretty,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

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
