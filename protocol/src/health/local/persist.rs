//! What the agent keeps of its local state in the data dir (serde; the actor writes it
//! as JSON, atomically). The version lets a later format refuse an older file by name.

use crate::health::spec::CheckSpec;
use crate::store::{CheckStatus, Service};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const PERSIST_FORMAT_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedCheck {
    pub spec: CheckSpec,
    pub status: CheckStatus,
    pub output: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersistedState {
    pub version: u32,
    pub services: Vec<Service>,
    pub checks: Vec<PersistedCheck>,
    pub node_maintenance: Option<String>,
    pub service_maintenance: BTreeMap<String, String>,
}
