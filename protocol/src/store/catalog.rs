//! Applying catalog registrations and deregistrations.
//!
//! Every request is validated and normalised into a plan first; only a valid plan touches
//! the store, so a rejection changes nothing. Rows whose content is unchanged keep their
//! ModifyIndex and move no index (Consul's IsSame), which keeps blocking queries quiet.

use super::queries::on_node;
use super::registration::{
    carried_bytes, check_id_or_name, service_id_or_name, too_large_text,
    MAX_REGISTRATION_COPY_BYTES,
};
use super::{
    eq_fold, fold, Check, CheckStatus, CommandResult, DeregisterRequest, Node, RegisterRequest,
    Service,
};
use super::{Store, Table};
use std::sync::Arc;

fn too_large(copied: usize) -> String {
    too_large_text(None, copied)
}

/// A validated, normalised registration.
struct RegisterPlan {
    node_key: String,
    /// Another node registered with the same node ID under a different name: the node was
    /// renamed, so the old one goes (with its services and checks), as in Consul.
    renamed_from: Option<String>,
    /// None when the existing node is kept as it is (`skip_node_update`).
    node: Option<Node>,
    service: Option<Service>,
    checks: Vec<Check>,
}

impl Store {
    pub(super) fn apply_register(
        &mut self,
        index: u64,
        now_ms: u64,
        req: &RegisterRequest,
    ) -> CommandResult {
        let plan = match self.plan_register(req) {
            Ok(plan) => plan,
            Err(reason) => return CommandResult::Rejected(reason),
        };
        if let Some(old_key) = &plan.renamed_from {
            self.remove_node(index, now_ms, old_key);
        }
        if let Some(node) = plan.node {
            self.upsert_node(index, &plan.node_key, node);
        }
        if let Some(service) = plan.service {
            self.upsert_service(index, &plan.node_key, service);
        }
        for check in plan.checks {
            self.upsert_check(index, now_ms, &plan.node_key, check);
        }
        CommandResult::Done
    }

    fn plan_register(&self, req: &RegisterRequest) -> Result<RegisterPlan, String> {
        if req.node.node.is_empty() || req.node.address.is_empty() {
            return Err("Must provide node and address".to_string());
        }
        let node_key = fold(&req.node.node);
        let existing = self.nodes.get(&node_key);
        let (node, node_name) = match existing {
            Some(existing) if req.skip_node_update => (None, existing.node.clone()),
            _ => {
                let node = Node {
                    create_index: 0,
                    modify_index: 0,
                    ..req.node.clone()
                };
                let name = node.node.clone();
                (Some(node), name)
            }
        };

        let renamed_from = match &node {
            Some(node) if !node.id.is_empty() => self
                .nodes
                .iter()
                .find(|(key, other)| **key != node_key && eq_fold(&other.id, &node.id))
                .map(|(key, _)| key.clone()),
            _ => None,
        };

        let service = match &req.service {
            None => None,
            Some(svc) => {
                if svc.service.is_empty() {
                    return Err("Must provide service name".to_string());
                }
                let id = service_id_or_name(&svc.id, &svc.service).to_string();
                Some(Service {
                    node: node_name.clone(),
                    id,
                    create_index: 0,
                    modify_index: 0,
                    ..svc.clone()
                })
            }
        };

        // What this registration copies: a service whose name or tags change rewrites every
        // check it already has on the node, and each new check carries node and service.
        let mut copied: usize = 0;
        if let Some(svc) = &service {
            let existing = on_node(&self.checks, &node_key)
                .filter(|(_, c)| c.service_id == svc.id)
                .count();
            copied = existing.saturating_mul(carried_bytes("", &svc.service, &svc.tags));
            if copied > MAX_REGISTRATION_COPY_BYTES {
                return Err(too_large(copied));
            }
        }
        let mut checks = Vec::with_capacity(req.checks.len());
        for check in &req.checks {
            let check_id = check_id_or_name(&check.check_id, &check.name);
            if check_id.is_empty() {
                return Err("Must provide check ID or name".to_string());
            }
            // Counted before anything is copied, with the owner's data when it has one.
            let owner_data = if check.service_id.is_empty() {
                None
            } else {
                service
                    .as_ref()
                    .filter(|s| s.id == check.service_id)
                    .or_else(|| {
                        self.services
                            .get(&(node_key.clone(), check.service_id.clone()))
                            .map(Arc::as_ref)
                    })
                    .map(|s| (s.service.as_str(), s.tags.as_slice()))
            };
            let (owner_name, owner_tags) = owner_data.unwrap_or(("", &[]));
            copied = copied.saturating_add(carried_bytes(&node_name, owner_name, owner_tags));
            if copied > MAX_REGISTRATION_COPY_BYTES {
                return Err(too_large(copied));
            }
            let mut check = Check {
                node: node_name.clone(),
                check_id: check_id.to_string(),
                create_index: 0,
                modify_index: 0,
                ..check.clone()
            };
            if check.service_id.is_empty() {
                // A node-level check belongs to no service, whatever the request said.
                check.service_name.clear();
                check.service_tags.clear();
            } else {
                let in_request = service.as_ref().filter(|s| s.id == check.service_id);
                let owner = in_request.or_else(|| {
                    self.services
                        .get(&(node_key.clone(), check.service_id.clone()))
                        .map(Arc::as_ref)
                });
                let Some(owner) = owner else {
                    return Err(format!(
                        "Unknown service ID {:?} for check ID {:?}",
                        check.service_id, check.check_id
                    ));
                };
                check.service_name = owner.service.clone();
                check.service_tags = owner.tags.clone();
            }
            checks.push(check);
        }
        Ok(RegisterPlan {
            node_key,
            renamed_from,
            node,
            service,
            checks,
        })
    }

    fn upsert_node(&mut self, index: u64, node_key: &str, mut node: Node) {
        if let Some(existing) = self.nodes.get(node_key) {
            node.create_index = existing.create_index;
            node.modify_index = existing.modify_index;
            if **existing == node {
                return;
            }
        } else {
            node.create_index = index;
        }
        node.modify_index = index;
        self.nodes.insert(node_key.to_string(), Arc::new(node));
        self.bump(Table::Nodes, index);
        self.touch_services_of_node(node_key, index);
    }

    fn upsert_service(&mut self, index: u64, node_key: &str, mut service: Service) {
        let key = (node_key.to_string(), service.id.clone());
        let mut old_name = None;
        if let Some(existing) = self.services.get(&key) {
            service.create_index = existing.create_index;
            service.modify_index = existing.modify_index;
            if **existing == service {
                return;
            }
            old_name = Some(fold(&existing.service));
        } else {
            service.create_index = index;
        }
        service.modify_index = index;
        let new_name = fold(&service.service);
        if let Some(old_name) = old_name.filter(|old| *old != new_name) {
            self.unlink_service_name(&old_name, &key, index);
        }
        self.link_service_name(new_name, key.clone(), index);

        // The service's checks carry its name and tags: keep them in step.
        let (name, tags) = (service.service.clone(), service.tags.clone());
        self.services.insert(key.clone(), Arc::new(service));
        self.bump(Table::Services, index);
        let stale: Vec<(String, String)> = on_node(&self.checks, node_key)
            .filter(|(_, c)| {
                c.service_id == key.1 && (c.service_name != name || c.service_tags != tags)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for check_key in &stale {
            if let Some(check) = self.checks.get_mut(check_key) {
                let check = Arc::make_mut(check);
                check.service_name = name.clone();
                check.service_tags = tags.clone();
                check.modify_index = index;
            }
        }
        if !stale.is_empty() {
            self.bump(Table::Checks, index);
        }
    }

    fn upsert_check(&mut self, index: u64, now_ms: u64, node_key: &str, mut check: Check) {
        let key = (node_key.to_string(), check.check_id.clone());
        if let Some(existing) = self.checks.get(&key) {
            check.create_index = existing.create_index;
            check.modify_index = existing.modify_index;
            if **existing == check {
                return;
            }
            let existing = existing.clone();
            self.touch_services_of_check(node_key, &existing, index);
        } else {
            check.create_index = index;
        }
        check.modify_index = index;
        self.touch_services_of_check(node_key, &check, index);
        let critical = check.status == CheckStatus::Critical;
        self.checks.insert(key.clone(), Arc::new(check));
        self.bump(Table::Checks, index);
        if critical {
            // Consul's ensureCheckTxn: a critical check invalidates its sessions.
            self.invalidate_check_sessions(index, now_ms, node_key, &key.1);
        }
    }

    pub(super) fn apply_deregister(
        &mut self,
        index: u64,
        now_ms: u64,
        req: &DeregisterRequest,
    ) -> CommandResult {
        if req.node.is_empty() {
            return CommandResult::Rejected("Must provide node".to_string());
        }
        let node_key = fold(&req.node);
        let service_id = req.service_id.as_deref().filter(|s| !s.is_empty());
        let check_id = req.check_id.as_deref().filter(|s| !s.is_empty());
        match (service_id, check_id) {
            (Some(service_id), _) => self.remove_service(index, now_ms, &node_key, service_id),
            (None, Some(check_id)) => self.remove_check(index, now_ms, &node_key, check_id),
            (None, None) => self.remove_node(index, now_ms, &node_key),
        }
        CommandResult::Done
    }

    fn remove_node(&mut self, index: u64, now_ms: u64, node_key: &str) {
        // Consul's deleteNodeTxn: the node's sessions go first.
        self.invalidate_node_sessions(index, now_ms, node_key);
        let service_ids: Vec<String> = on_node(&self.services, node_key)
            .map(|(k, _)| k.1.clone())
            .collect();
        for service_id in &service_ids {
            self.remove_service(index, now_ms, node_key, service_id);
        }
        let check_ids: Vec<String> = on_node(&self.checks, node_key)
            .map(|(k, _)| k.1.clone())
            .collect();
        for check_id in &check_ids {
            self.remove_check(index, now_ms, node_key, check_id);
        }
        if self.nodes.remove(node_key).is_some() {
            self.bump(Table::Nodes, index);
        }
    }

    /// Remove one service instance and its checks.
    fn remove_service(&mut self, index: u64, now_ms: u64, node_key: &str, service_id: &str) {
        let key = (node_key.to_string(), service_id.to_string());
        let Some(removed) = self.services.remove(&key) else {
            return;
        };
        self.bump(Table::Services, index);
        self.unlink_service_name(&fold(&removed.service), &key, index);
        let check_keys: Vec<(String, String)> = on_node(&self.checks, node_key)
            .filter(|(_, c)| c.service_id == service_id)
            .map(|(k, _)| k.clone())
            .collect();
        for check_key in &check_keys {
            self.checks.remove(check_key);
        }
        if !check_keys.is_empty() {
            self.bump(Table::Checks, index);
        }
        for (_, check_id) in &check_keys {
            self.invalidate_check_sessions(index, now_ms, node_key, check_id);
        }
    }

    fn remove_check(&mut self, index: u64, now_ms: u64, node_key: &str, check_id: &str) {
        let key = (node_key.to_string(), check_id.to_string());
        if let Some(removed) = self.checks.remove(&key) {
            self.bump(Table::Checks, index);
            self.touch_services_of_check(node_key, &removed, index);
            self.invalidate_check_sessions(index, now_ms, node_key, check_id);
        }
    }

    /// A check touches its own service, or, when node-level, every service on its node.
    fn touch_services_of_check(&mut self, node_key: &str, check: &Check, index: u64) {
        if check.service_id.is_empty() {
            self.touch_services_of_node(node_key, index);
        } else {
            self.touch_service_name(&fold(&check.service_name), index);
        }
    }

    fn touch_services_of_node(&mut self, node_key: &str, index: u64) {
        let names: Vec<String> = on_node(&self.services, node_key)
            .map(|(_, s)| fold(&s.service))
            .collect();
        for name in &names {
            self.touch_service_name(name, index);
        }
    }

    fn touch_service_name(&mut self, name_key: &str, index: u64) {
        if let Some(entry) = self.service_names.get_mut(name_key) {
            entry.index = entry.index.max(index);
        }
    }

    fn link_service_name(&mut self, name_key: String, instance: (String, String), index: u64) {
        let entry = self.service_names.entry(name_key).or_default();
        entry.instances.insert(instance);
        entry.index = entry.index.max(index);
    }

    /// Forget an instance under a name; the name's entry goes with its last instance
    /// (`service_index` then falls back to the table indexes, which moved to `index`).
    fn unlink_service_name(&mut self, name_key: &str, instance: &(String, String), index: u64) {
        let Some(entry) = self.service_names.get_mut(name_key) else {
            return;
        };
        entry.instances.remove(instance);
        entry.index = entry.index.max(index);
        if entry.instances.is_empty() {
            self.service_names.remove(name_key);
        }
    }
}
