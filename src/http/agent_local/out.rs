//! Consul's shapes of the agent's own services (`AgentService`, with `Datacenter` and,
//! from `service/:id`, `ContentHash`).

use crate::http::catalog::out::{ServiceTaggedOut, WeightsOut};
use protocol::store::Service;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

#[derive(Serialize)]
pub struct LocalServiceOut<'a> {
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
    #[serde(rename = "ContentHash", skip_serializing_if = "str::is_empty")]
    pub content_hash: &'a str,
    #[serde(rename = "Datacenter")]
    pub datacenter: &'a str,
}

fn tagged_is_empty(t: &ServiceTaggedOut<'_>) -> bool {
    t.0.is_empty()
}

impl<'a> LocalServiceOut<'a> {
    pub fn new(s: &'a Service, datacenter: &'a str, content_hash: &'a str) -> Self {
        LocalServiceOut {
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
            content_hash,
            datacenter,
        }
    }
}

/// An opaque hash of what `service/:id` shows of a service (16 hex digits, as Consul's).
pub fn content_hash(s: &Service, datacenter: &str) -> String {
    let rendered = serde_json::to_vec(&LocalServiceOut::new(s, datacenter, "")).unwrap_or_default();
    let digest = Sha256::digest(&rendered);
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}
