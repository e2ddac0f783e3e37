//! Consul's shapes of the agent's own services (`AgentService`, with `Datacenter` and,
//! from `service/:id`, `ContentHash`).

use crate::http::catalog::out::ServiceFieldsOut;
use protocol::store::Service;
use serde::Serialize;
use sha2::{Digest, Sha256};

#[derive(Serialize)]
pub struct LocalServiceOut<'a> {
    #[serde(flatten)]
    pub fields: ServiceFieldsOut<'a>,
    #[serde(rename = "ContentHash", skip_serializing_if = "str::is_empty")]
    pub content_hash: &'a str,
    #[serde(rename = "Datacenter")]
    pub datacenter: &'a str,
}

impl<'a> LocalServiceOut<'a> {
    pub fn new(s: &'a Service, datacenter: &'a str, content_hash: &'a str) -> Self {
        LocalServiceOut {
            fields: ServiceFieldsOut::from(s),
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
