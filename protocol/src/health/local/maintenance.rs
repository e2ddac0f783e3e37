//! Consul's maintenance checks: critical checks the agent adds to take its node
//! (`_node_maintenance`) or one service (`_service_maintenance:<id>`) out of `?passing`
//! and DNS answers, with Consul's names, notes and type.

use crate::store::{Check, CheckStatus, Service};

pub const NODE_MAINTENANCE_CHECK_ID: &str = "_node_maintenance";
pub const SERVICE_MAINTENANCE_PREFIX: &str = "_service_maintenance:";
const NODE_NAME: &str = "Node Maintenance Mode";
const SERVICE_NAME: &str = "Service Maintenance Mode";
const NODE_DEFAULT_REASON: &str =
    "Maintenance mode is enabled for this node, but no reason was provided. This is a default message.";
const SERVICE_DEFAULT_REASON: &str =
    "Maintenance mode is enabled for this service, but no reason was provided. This is a default message.";
const TYPE: &str = "maintenance";

pub fn service_maintenance_check_id(service_id: &str) -> String {
    format!("{SERVICE_MAINTENANCE_PREFIX}{service_id}")
}

/// Whether `check_id` names one of the agent's maintenance checks.
pub fn is_maintenance_check(check_id: &str) -> bool {
    check_id == NODE_MAINTENANCE_CHECK_ID || check_id.starts_with(SERVICE_MAINTENANCE_PREFIX)
}

/// The node maintenance check for `reason` (empty: Consul's default note).
pub fn node_check(node: &str, reason: &str) -> Check {
    Check {
        node: node.to_string(),
        check_id: NODE_MAINTENANCE_CHECK_ID.to_string(),
        name: NODE_NAME.to_string(),
        status: CheckStatus::Critical,
        notes: or_default(reason, NODE_DEFAULT_REASON),
        check_type: TYPE.to_string(),
        ..Check::default()
    }
}

/// The maintenance check of `service` for `reason`.
pub fn service_check(service: &Service, reason: &str) -> Check {
    Check {
        node: service.node.clone(),
        check_id: service_maintenance_check_id(&service.id),
        name: SERVICE_NAME.to_string(),
        status: CheckStatus::Critical,
        notes: or_default(reason, SERVICE_DEFAULT_REASON),
        service_id: service.id.clone(),
        service_name: service.service.clone(),
        service_tags: service.tags.clone(),
        check_type: TYPE.to_string(),
        ..Check::default()
    }
}

fn or_default(reason: &str, default: &str) -> String {
    if reason.is_empty() {
        default.to_string()
    } else {
        reason.to_string()
    }
}
