//! Anti-entropy, the pure half: what this agent knows of its own node against what the
//! catalog holds for it, as the writes that make the catalog match (Consul's
//! `local.State.SyncFull`). The agent is the authority for its node, so catalog services
//! and checks on it that the agent does not know are removed, except what the servers
//! own: the `serfHealth` check and the servers' `consul` service.

use crate::reconcile::SERF_HEALTH_CHECK_ID;
use crate::store::{Check, DeregisterRequest, Node, RegisterRequest, Service};
use std::collections::{BTreeMap, BTreeSet};

/// The service the servers register for themselves; never the agent's to remove.
pub const SERVER_SERVICE_ID: &str = "consul";

/// What the catalog holds for this agent's node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CatalogNodeView {
    pub node: Option<Node>,
    pub services: Vec<Service>,
    pub checks: Vec<Check>,
}

/// The writes of one sync, in order (deregistrations first), and the checks whose
/// only difference is their output and whose update is not due yet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SyncPlan {
    pub registers: Vec<RegisterRequest>,
    pub deregisters: Vec<DeregisterRequest>,
    pub deferred_outputs: Vec<String>,
}

impl SyncPlan {
    pub fn is_empty(&self) -> bool {
        self.registers.is_empty() && self.deregisters.is_empty()
    }
}

/// The writes that bring `catalog` in line with the agent's `node`, `services` and
/// `checks`. `output_due(check_id)` says whether an output-only change of that check may
/// go out now (Consul coalesces them over `check_update_interval`); status changes always
/// go at once.
pub fn plan(
    node: &Node,
    services: &[Service],
    checks: &[Check],
    catalog: &CatalogNodeView,
    output_due: &dyn Fn(&str) -> bool,
) -> SyncPlan {
    let mut out = SyncPlan::default();
    let node_name = node.node.as_str();
    let catalog_services: BTreeMap<&str, &Service> = catalog
        .services
        .iter()
        .map(|s| (s.id.as_str(), s))
        .collect();
    let catalog_checks: BTreeMap<&str, &Check> = catalog
        .checks
        .iter()
        .map(|c| (c.check_id.as_str(), c))
        .collect();
    let local_services: BTreeSet<&str> = services.iter().map(|s| s.id.as_str()).collect();
    let local_checks: BTreeSet<&str> = checks.iter().map(|c| c.check_id.as_str()).collect();

    // Unknown services go with their checks; unknown checks go one by one.
    let mut removed_services = BTreeSet::new();
    for s in &catalog.services {
        if s.id != SERVER_SERVICE_ID && !local_services.contains(s.id.as_str()) {
            removed_services.insert(s.id.as_str());
            out.deregisters.push(DeregisterRequest {
                node: node_name.to_string(),
                service_id: Some(s.id.clone()),
                check_id: None,
            });
        }
    }
    for c in &catalog.checks {
        let ours = local_checks.contains(c.check_id.as_str());
        let server_owned = c.check_id == SERF_HEALTH_CHECK_ID;
        let goes_with_service = removed_services.contains(c.service_id.as_str());
        if !ours && !server_owned && !goes_with_service {
            out.deregisters.push(DeregisterRequest {
                node: node_name.to_string(),
                service_id: None,
                check_id: Some(c.check_id.clone()),
            });
        }
    }

    let node_differs = match &catalog.node {
        None => true,
        Some(have) => {
            have.address != node.address
                || have.meta != node.meta
                || have.tagged_addresses != node.tagged_addresses
                || (!node.id.is_empty() && have.id != node.id)
        }
    };

    // Each service with all its checks when the service or any of its checks differs;
    // node checks that differ together in one more write.
    let mut node_checks = Vec::new();
    let mut service_checks: BTreeMap<&str, Vec<Check>> = BTreeMap::new();
    let mut dirty_checks: BTreeSet<&str> = BTreeSet::new();
    for c in checks {
        match catalog_checks.get(c.check_id.as_str()) {
            None => {
                dirty_checks.insert(&c.service_id);
            }
            Some(have) => match check_difference(c, have) {
                Difference::None => {}
                Difference::OutputOnly if !output_due(&c.check_id) => {
                    out.deferred_outputs.push(c.check_id.clone());
                }
                _ => {
                    dirty_checks.insert(&c.service_id);
                }
            },
        }
        if c.service_id.is_empty() {
            node_checks.push(c.clone());
        } else {
            service_checks
                .entry(c.service_id.as_str())
                .or_default()
                .push(c.clone());
        }
    }
    for s in services {
        let want = adopt_catalog_tags(s, catalog_services.get(s.id.as_str()).copied());
        let service_differs = catalog_services
            .get(s.id.as_str())
            .is_none_or(|have| !same_service(&want, have));
        if service_differs || dirty_checks.contains(s.id.as_str()) {
            let checks = service_checks.remove(s.id.as_str()).unwrap_or_default();
            out.registers.push(RegisterRequest {
                node: node.clone(),
                skip_node_update: true,
                service: Some(want),
                checks,
            });
        }
    }
    if dirty_checks.contains("") || node_differs {
        out.registers.push(RegisterRequest {
            node: node.clone(),
            skip_node_update: !node_differs,
            service: None,
            checks: if dirty_checks.contains("") {
                node_checks
            } else {
                Vec::new()
            },
        });
    }
    // A node registration goes first: the others skip the node update.
    out.registers.sort_by_key(|r| r.skip_node_update);
    out
}

/// With EnableTagOverride, tags written to the catalog by someone else are adopted
/// rather than overwritten (Consul's rule).
fn adopt_catalog_tags(local: &Service, catalog: Option<&Service>) -> Service {
    let mut want = local.clone();
    if let Some(have) = catalog {
        if local.enable_tag_override {
            want.tags = have.tags.clone();
        }
    }
    want.create_index = 0;
    want.modify_index = 0;
    want
}

fn same_service(a: &Service, b: &Service) -> bool {
    a.id == b.id
        && a.service == b.service
        && a.kind == b.kind
        && a.tags == b.tags
        && a.address == b.address
        && a.tagged_addresses == b.tagged_addresses
        && a.meta == b.meta
        && a.port == b.port
        && a.weights == b.weights
        && a.enable_tag_override == b.enable_tag_override
}

#[derive(Debug, PartialEq, Eq)]
enum Difference {
    None,
    OutputOnly,
    More,
}

fn check_difference(want: &Check, have: &Check) -> Difference {
    let same_but_output = want.name == have.name
        && want.status == have.status
        && want.notes == have.notes
        && want.service_id == have.service_id
        && want.check_type == have.check_type
        && want.definition == have.definition;
    match (same_but_output, want.output == have.output) {
        (true, true) => Difference::None,
        (true, false) => Difference::OutputOnly,
        _ => Difference::More,
    }
}

/// Consul's base interval between full syncs (`ae.Interval`).
pub const FULL_SYNC_BASE_MS: u64 = 60_000;
/// Cluster size up to which the base interval holds (Consul's `aeScale` threshold).
const SCALE_THRESHOLD: u64 = 128;

/// Consul's `aeScale`: the full-sync interval grows with the cluster so the servers see
/// a bounded rate of syncs: `base` up to 128 nodes, then one more `base` per doubling
/// (2x up to 256, 3x up to 512 ...).
pub fn scaled_interval_ms(base_ms: u64, cluster_size: u64) -> u64 {
    if cluster_size <= SCALE_THRESHOLD {
        return base_ms;
    }
    let mut mult = 1u64;
    let mut cap = SCALE_THRESHOLD;
    while cap < cluster_size {
        cap = cap.saturating_mul(2);
        mult += 1;
    }
    base_ms.saturating_mul(mult)
}

/// The wait before the next full sync: the scaled interval plus a stagger of up to half
/// of it (`fraction` in [0, 1), from the caller's randomness), so agents started together
/// do not sync together.
pub fn next_full_sync_ms(base_ms: u64, cluster_size: u64, fraction: f64) -> u64 {
    let scaled = scaled_interval_ms(base_ms, cluster_size);
    let stagger = (scaled as f64 / 2.0 * fraction.clamp(0.0, 1.0)) as u64;
    scaled.saturating_add(stagger)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reconcile::serf_health_check;
    use crate::store::CheckStatus;

    fn node() -> Node {
        Node {
            id: "id-1".into(),
            node: "n1".into(),
            address: "10.0.0.1".into(),
            ..Node::default()
        }
    }

    fn service(id: &str, tags: &[&str]) -> Service {
        Service {
            node: "n1".into(),
            id: id.into(),
            service: "web".into(),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            port: 80,
            ..Service::default()
        }
    }

    fn check(id: &str, service: &str, status: CheckStatus, output: &str) -> Check {
        Check {
            node: "n1".into(),
            check_id: id.into(),
            name: id.into(),
            status,
            output: output.into(),
            service_id: service.into(),
            check_type: "ttl".into(),
            ..Check::default()
        }
    }

    fn always(_: &str) -> bool {
        true
    }

    fn in_sync(services: &[Service], checks: &[Check]) -> CatalogNodeView {
        CatalogNodeView {
            node: Some(node()),
            services: services.to_vec(),
            checks: checks.to_vec(),
        }
    }

    #[test]
    fn nothing_to_do_when_the_catalog_matches() {
        let s = [service("web-1", &["a"])];
        let c = [check("service:web-1", "web-1", CheckStatus::Passing, "ok")];
        let mut catalog = in_sync(&s, &c);
        catalog.checks.push(serf_health_check("n1", true));
        catalog.services.push(Service {
            id: SERVER_SERVICE_ID.into(),
            service: "consul".into(),
            ..Service::default()
        });
        let p = plan(&node(), &s, &c, &catalog, &always);
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn registers_what_is_missing_and_removes_what_it_does_not_know() {
        let s = [service("web-1", &[])];
        let c = [
            check("service:web-1", "web-1", CheckStatus::Critical, ""),
            check("mem", "", CheckStatus::Passing, ""),
        ];
        let catalog = CatalogNodeView {
            node: Some(node()),
            services: vec![service("stray", &[])],
            checks: vec![
                check("stray-check", "stray", CheckStatus::Passing, ""),
                check("other", "", CheckStatus::Passing, ""),
                serf_health_check("n1", true),
            ],
        };
        let p = plan(&node(), &s, &c, &catalog, &always);
        let deregs: Vec<(Option<&str>, Option<&str>)> = p
            .deregisters
            .iter()
            .map(|d| (d.service_id.as_deref(), d.check_id.as_deref()))
            .collect();
        assert_eq!(deregs, [(Some("stray"), None), (None, Some("other"))]);
        assert_eq!(p.registers.len(), 2);
        let svc = &p.registers[0];
        assert_eq!(svc.service.as_ref().unwrap().id, "web-1");
        assert_eq!(svc.checks.len(), 1);
        assert!(svc.skip_node_update);
        assert_eq!(p.registers[1].checks[0].check_id, "mem");
    }

    #[test]
    fn a_missing_or_changed_node_is_registered_first() {
        let p = plan(&node(), &[], &[], &CatalogNodeView::default(), &always);
        assert_eq!(p.registers.len(), 1);
        assert!(!p.registers[0].skip_node_update);
        let s = [service("web-1", &[])];
        let mut moved = in_sync(&[], &[]);
        moved.node.as_mut().unwrap().address = "10.9.9.9".into();
        let p = plan(&node(), &s, &[], &moved, &always);
        assert_eq!(p.registers.len(), 2);
        assert!(!p.registers[0].skip_node_update);
        assert!(p.registers[0].service.is_none());
    }

    #[test]
    fn output_only_changes_wait_until_due_status_changes_do_not() {
        let s = [service("web-1", &[])];
        let catalog = in_sync(&s, &[check("t", "web-1", CheckStatus::Passing, "old")]);
        let never = |_: &str| false;
        let output_only = [check("t", "web-1", CheckStatus::Passing, "new")];
        let p = plan(&node(), &s, &output_only, &catalog, &never);
        assert!(p.is_empty());
        assert_eq!(p.deferred_outputs, ["t"]);
        let p = plan(&node(), &s, &output_only, &catalog, &always);
        assert_eq!(p.registers.len(), 1);
        let status = [check("t", "web-1", CheckStatus::Critical, "new")];
        let p = plan(&node(), &s, &status, &catalog, &never);
        assert_eq!(p.registers[0].checks[0].status, CheckStatus::Critical);
    }

    #[test]
    fn the_interval_scales_like_consuls_ae_scale() {
        assert_eq!(scaled_interval_ms(60_000, 1), 60_000);
        assert_eq!(scaled_interval_ms(60_000, 128), 60_000);
        assert_eq!(scaled_interval_ms(60_000, 129), 120_000);
        assert_eq!(scaled_interval_ms(60_000, 256), 120_000);
        assert_eq!(scaled_interval_ms(60_000, 257), 180_000);
        assert_eq!(scaled_interval_ms(60_000, 512), 180_000);
        assert_eq!(next_full_sync_ms(60_000, 3, 0.0), 60_000);
        assert_eq!(next_full_sync_ms(60_000, 3, 0.5), 75_000);
    }

    #[test]
    fn tag_override_adopts_the_catalogs_tags() {
        let mut local = service("web-1", &["mine"]);
        local.enable_tag_override = true;
        let mut theirs = local.clone();
        theirs.tags = vec!["theirs".into()];
        let catalog = in_sync(std::slice::from_ref(&theirs), &[]);
        let p = plan(&node(), &[local.clone()], &[], &catalog, &always);
        assert!(p.is_empty(), "{p:?}");
        // Without the override the agent's tags win.
        local.enable_tag_override = false;
        theirs.enable_tag_override = false;
        let catalog = in_sync(&[theirs], &[]);
        let p = plan(&node(), &[local], &[], &catalog, &always);
        assert_eq!(p.registers[0].service.as_ref().unwrap().tags, ["mine"]);
    }
}
