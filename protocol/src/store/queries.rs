//! Read-only catalog queries. KV reads live in `kv.rs`.

use super::{
    eq_fold, fold, Check, CheckStatus, InstanceHealth, Node, Service, ServiceInstance, Store, Table,
};
use imbl::OrdMap;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// Entries of a map keyed by (node key, id) that belong to one node, in id order.
pub(super) fn on_node<'a, V: Clone>(
    map: &'a OrdMap<(String, String), V>,
    node_key: &str,
) -> impl Iterator<Item = (&'a (String, String), &'a V)> + 'a {
    let node_key = node_key.to_string();
    map.range((node_key.clone(), String::new())..)
        .take_while(move |(k, _)| k.0 == node_key)
}

impl Store {
    /// All nodes, sorted by name.
    pub fn nodes(&self) -> Vec<&Node> {
        self.nodes.values().map(Arc::as_ref).collect()
    }

    /// Node by name (case-insensitive, as Consul's node index is).
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.get(&fold(name)).map(Arc::as_ref)
    }

    /// Services registered on a node, sorted by service id.
    pub fn node_services(&self, node: &str) -> Vec<&Service> {
        on_node(&self.services, &fold(node))
            .map(|(_, s)| s.as_ref())
            .collect()
    }

    /// Service name → sorted, de-duplicated union of tags over its instances.
    pub fn services(&self) -> BTreeMap<String, Vec<String>> {
        let mut tags: BTreeMap<String, BTreeSet<&str>> = BTreeMap::new();
        for svc in self.services.values() {
            let set = tags.entry(svc.service.clone()).or_default();
            set.extend(svc.tags.iter().map(String::as_str));
        }
        tags.into_iter()
            .map(|(name, set)| (name, set.into_iter().map(str::to_string).collect()))
            .collect()
    }

    /// Instances of a service (name case-insensitive) carrying every tag in `tags`
    /// (case-insensitive), sorted by (node key, service id): the selection both instance
    /// views share, so they can't disagree on which instances exist.
    fn matching_instances<'s, 't>(
        &'s self,
        service: &str,
        tags: &'t [String],
    ) -> impl Iterator<Item = (&'s (String, String), &'s Node, &'s Service)> + 't
    where
        's: 't,
    {
        self.service_names
            .get(&fold(service))
            .into_iter()
            .flat_map(|entry| entry.instances.iter())
            .filter_map(|key| {
                let svc = self.services.get(key)?;
                let node = self.nodes.get(&key.0)?;
                let has_all_tags = tags
                    .iter()
                    .all(|want| svc.tags.iter().any(|have| eq_fold(have, want)));
                has_all_tags.then_some((key, node.as_ref(), svc.as_ref()))
            })
    }

    /// Instances of a service (name case-insensitive) that carry every tag in `tags`
    /// (case-insensitive), sorted by (node, service id), with their checks.
    pub fn service_instances(&self, service: &str, tags: &[String]) -> Vec<ServiceInstance<'_>> {
        self.matching_instances(service, tags)
            .map(|(key, node, svc)| {
                let node_checks = || on_node(&self.checks, &key.0).map(|(_, c)| c.as_ref());
                let mut checks: Vec<&Check> =
                    node_checks().filter(|c| c.service_id.is_empty()).collect();
                checks.extend(node_checks().filter(|c| c.service_id == key.1));
                ServiceInstance {
                    node,
                    service: svc,
                    checks,
                }
            })
            .collect()
    }

    /// Like [`Store::service_instances`], with each instance's aggregate status instead of
    /// its check list. Each node's checks are read once (not once per instance), so a node
    /// with many instances and many checks costs their sum, not their product.
    pub fn service_instances_health(
        &self,
        service: &str,
        tags: &[String],
    ) -> Vec<InstanceHealth<'_>> {
        // Statuses of the node whose instances are being visited (instances are sorted by
        // node): the worst node-level status and the worst status per service id.
        let mut current: Option<(&str, Option<CheckStatus>, BTreeMap<&str, CheckStatus>)> = None;
        let mut out = Vec::new();
        for (key, node, svc) in self.matching_instances(service, tags) {
            if current
                .as_ref()
                .is_none_or(|(node_key, ..)| *node_key != key.0)
            {
                let mut node_level: Option<CheckStatus> = None;
                let mut per_service: BTreeMap<&str, CheckStatus> = BTreeMap::new();
                for (_, check) in on_node(&self.checks, &key.0) {
                    if check.service_id.is_empty() {
                        node_level = Some(node_level.map_or(check.status, |s| s.max(check.status)));
                    } else {
                        per_service
                            .entry(check.service_id.as_str())
                            .and_modify(|s| *s = (*s).max(check.status))
                            .or_insert(check.status);
                    }
                }
                current = Some((key.0.as_str(), node_level, per_service));
            }
            let Some((_, node_level, per_service)) = &current else {
                continue;
            };
            let status = [*node_level, per_service.get(key.1.as_str()).copied()]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(CheckStatus::Passing);
            out.push(InstanceHealth {
                node,
                service: svc,
                status,
            });
        }
        out
    }

    /// Every check on a node (node-level and service-level), sorted by check id.
    pub fn node_checks(&self, node: &str) -> Vec<&Check> {
        on_node(&self.checks, &fold(node))
            .map(|(_, c)| c.as_ref())
            .collect()
    }

    /// Checks of every instance of a service, sorted by (node, check id).
    pub fn service_checks(&self, service: &str) -> Vec<&Check> {
        let Some(entry) = self.service_names.get(&fold(service)) else {
            return Vec::new();
        };
        let mut found: Vec<(&(String, String), &Check)> = entry
            .instances
            .iter()
            .flat_map(|(node_key, service_id)| {
                on_node(&self.checks, node_key)
                    .filter(move |(_, c)| c.service_id == *service_id)
                    .map(|(k, c)| (k, c.as_ref()))
            })
            .collect();
        found.sort_by(|a, b| a.0.cmp(b.0));
        found.into_iter().map(|(_, c)| c).collect()
    }

    /// All checks, or only those in `state`, sorted by (node, check id).
    pub fn checks_in_state(&self, state: Option<CheckStatus>) -> Vec<&Check> {
        self.checks
            .values()
            .map(Arc::as_ref)
            .filter(|c| state.is_none_or(|s| c.status == s))
            .collect()
    }

    /// Consul's per-service-name index ("service.<name>", name case-insensitive): the last
    /// index that changed an instance of the service, one of its checks, a node-level check
    /// of its nodes, or one of its nodes. For a name with no instances (never registered or
    /// all deregistered) it falls back to the catalog's max table index, which is never
    /// below the index that removed the last instance, so it never goes backwards.
    pub fn service_index(&self, name: &str) -> u64 {
        match self.service_names.get(&fold(name)) {
            Some(entry) => entry.index,
            None => self.catalog_index(),
        }
    }

    /// Whether any instance carries this service name (case-insensitive): then
    /// [`Store::service_index`] is the name's own index, else the catalog's.
    pub fn has_service(&self, name: &str) -> bool {
        self.service_names.contains_key(&fold(name))
    }

    /// Max of the node, service and check table indexes.
    pub fn catalog_index(&self) -> u64 {
        [Table::Nodes, Table::Services, Table::Checks]
            .into_iter()
            .map(|t| self.table_index(t))
            .max()
            .unwrap_or(0)
    }
}
