//! Answering a [`Read`] from a store, the pure half: the resource's index (what blocking
//! reads watch) and the owned rows. The caller holds the store (a read lock or an
//! immutable view) only while these run; the rows it gets back borrow nothing.

use super::{
    AddressOwners, InstanceStatus, NodeMetaFilter, NodeServices, Read, ReadData, ServiceEntry,
    ServiceNode, StoreImage,
};
use crate::store::image::encode_image;
use crate::store::{CheckStatus, Node, Store, Table};
use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

/// Whether `node` carries every `key:value` pair of the filter.
pub fn node_matches(node: &Node, filter: &NodeMetaFilter) -> bool {
    filter.iter().all(|(k, v)| node.meta.get(k) == Some(v))
}

/// The index of the resource `read` looks at, as Consul reports it in X-Consul-Index.
/// A prefix read remembers its last scan in `watch` (see [`PrefixIndexWatch`]).
pub fn read_index(store: &Store, read: &Read, watch: &mut PrefixIndexWatch) -> u64 {
    match read {
        Read::CatalogNodes { .. } => store.table_index(Table::Nodes),
        Read::CatalogServices { .. } | Read::CatalogServiceInstances { .. } => {
            store.table_index(Table::Services)
        }
        Read::CatalogService { name, .. }
        | Read::HealthService { name, .. }
        | Read::InstancesHealth { name, .. } => store.service_index(name),
        Read::HealthChecks { service } => store.service_index(service),
        Read::CatalogNode { .. } | Read::Node { .. } => store
            .table_index(Table::Nodes)
            .max(store.table_index(Table::Services)),
        Read::HealthNode { .. } | Read::HealthState { .. } => store
            .table_index(Table::Checks)
            .max(store.table_index(Table::Nodes)),
        Read::AddressOwners { .. } => store.catalog_index(),
        Read::KvGet { key } => match store.kv_get(key) {
            Some(e) => e.modify_index,
            None => store.table_index(Table::Kv),
        },
        Read::KvList { prefix } | Read::KvKeys { prefix, .. } => watch.index(store, prefix),
        // Consul reports no index for a read transaction; the store's is the honest one.
        Read::Snapshot | Read::Txn { .. } => store.last_index(),
        Read::SessionInfo { .. } | Read::SessionList | Read::SessionNode { .. } => {
            store.table_index(Table::Sessions)
        }
    }
}

/// The owned rows answering `read`.
pub fn read_data(store: &Store, read: &Read) -> ReadData {
    match read {
        Read::CatalogNodes { node_meta } => ReadData::Nodes(
            store
                .nodes()
                .into_iter()
                .filter(|n| node_matches(n, node_meta))
                .cloned()
                .collect(),
        ),
        Read::CatalogServices { node_meta } => ReadData::Services(services(store, node_meta)),
        Read::CatalogServiceInstances { node_meta } => ReadData::ServiceNodes(
            store
                .nodes()
                .into_iter()
                .filter(|n| node_matches(n, node_meta))
                .flat_map(|node| {
                    store
                        .node_services(&node.node)
                        .into_iter()
                        .map(move |service| ServiceNode {
                            node: node.clone(),
                            service: service.clone(),
                        })
                })
                .collect(),
        ),
        Read::CatalogService {
            name,
            tags,
            node_meta,
        } => ReadData::ServiceNodes(
            store
                .service_instances_health(name, tags)
                .iter()
                .filter(|i| node_matches(i.node, node_meta))
                .map(|i| ServiceNode {
                    node: i.node.clone(),
                    service: i.service.clone(),
                })
                .collect(),
        ),
        Read::CatalogNode { node } => ReadData::NodeServices(store.node(node).map(|node| {
            NodeServices {
                node: node.clone(),
                services: store
                    .node_services(&node.node)
                    .into_iter()
                    .cloned()
                    .collect(),
            }
        })),
        Read::HealthService {
            name,
            tags,
            node_meta,
            passing,
        } => ReadData::ServiceEntries(
            store
                .service_instances(name, tags)
                .into_iter()
                .filter(|i| node_matches(i.node, node_meta))
                .filter(|i| !passing || i.checks.iter().all(|c| c.status == CheckStatus::Passing))
                .map(|i| ServiceEntry {
                    node: i.node.clone(),
                    service: i.service.clone(),
                    checks: i.checks.into_iter().cloned().collect(),
                })
                .collect(),
        ),
        Read::HealthNode { node } => {
            ReadData::Checks(store.node_checks(node).into_iter().cloned().collect())
        }
        Read::HealthChecks { service } => {
            ReadData::Checks(store.service_checks(service).into_iter().cloned().collect())
        }
        Read::HealthState { state } => {
            ReadData::Checks(store.checks_in_state(*state).into_iter().cloned().collect())
        }
        Read::InstancesHealth { name, tags } => ReadData::InstancesHealth(
            store
                .service_instances_health(name, tags)
                .into_iter()
                .map(|i| InstanceStatus {
                    node: i.node.node.clone(),
                    node_address: i.node.address.clone(),
                    node_meta: i.node.meta.clone(),
                    service_address: i.service.address.clone(),
                    port: i.service.port,
                    weights: i.service.weights,
                    status: i.status,
                })
                .collect(),
        ),
        Read::Node { node } => ReadData::Node(store.node(node).cloned()),
        Read::AddressOwners { address } => ReadData::AddressOwners(address_owners(store, *address)),
        Read::KvGet { key } => ReadData::KvEntry(store.kv_get(key).cloned()),
        Read::KvList { prefix } => {
            ReadData::KvEntries(store.kv_list(prefix).into_iter().cloned().collect())
        }
        Read::KvKeys { prefix, separator } => {
            ReadData::KvKeys(store.kv_keys(prefix, separator.as_deref()))
        }
        Read::SessionInfo { id } => {
            ReadData::Sessions(store.session_get(id).cloned().into_iter().collect())
        }
        Read::SessionList => ReadData::Sessions(store.sessions().into_iter().cloned().collect()),
        Read::SessionNode { node } => {
            ReadData::Sessions(store.node_sessions(node).into_iter().cloned().collect())
        }
        Read::Snapshot => ReadData::Snapshot(encode_image(store).map(|image| StoreImage {
            index: store.last_index(),
            term: 0,
            image,
        })),
        Read::Txn { ops } => ReadData::Txn(store.read_txn(ops)),
    }
}

/// Service names with their tags, over the nodes the filter keeps.
fn services(store: &Store, node_meta: &NodeMetaFilter) -> BTreeMap<String, Vec<String>> {
    if node_meta.is_empty() {
        return store.services();
    }
    let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for node in store
        .nodes()
        .into_iter()
        .filter(|n| node_matches(n, node_meta))
    {
        for svc in store.node_services(&node.node) {
            out.entry(svc.service.as_str())
                .or_default()
                .extend(svc.tags.iter().map(String::as_str));
        }
    }
    out.into_iter()
        .map(|(name, tags)| {
            (
                name.to_string(),
                tags.into_iter().map(str::to_string).collect(),
            )
        })
        .collect()
}

/// Nodes with this address; and, only when there are none, the names of services with an
/// instance whose own address is this one (Consul's PTR order).
pub fn address_owners(store: &Store, ip: IpAddr) -> AddressOwners {
    let same = |address: &str| address.parse::<IpAddr>().is_ok_and(|a| a == ip);
    let nodes: Vec<String> = store
        .nodes()
        .into_iter()
        .filter(|n| same(&n.address))
        .map(|n| n.node.clone())
        .collect();
    let services = if nodes.is_empty() {
        store
            .services()
            .into_keys()
            .filter(|name| {
                store
                    .service_instances_health(name, &[])
                    .iter()
                    .any(|i| same(&i.service.address))
            })
            .collect()
    } else {
        Vec::new()
    };
    AddressOwners { nodes, services }
}

/// The index of a `?recurse`/`?keys` read (the prefix's max ModifyIndex, tombstones
/// included), remembered across the wake-ups of one blocking query.
///
/// A parked query re-reads its index every time any entry is applied (catalog churn,
/// health updates, no-ops); recomputing the prefix index scans every key and tombstone
/// under the prefix. KV contents only change through an entry that moves the KV table
/// index (Raft indexes only grow) or through a tombstone reap (which lowers the tombstone
/// count and may raise the graveyard floor), so while those three are unchanged the
/// prefix index is too, and the remembered value is exact, not an estimate.
#[derive(Debug, Default)]
pub struct PrefixIndexWatch {
    /// ((KV table index, tombstone count, graveyard floor), prefix index) of the last
    /// scan.
    last: Option<((u64, usize, u64), u64)>,
    scans: u64,
}

impl PrefixIndexWatch {
    pub fn new() -> PrefixIndexWatch {
        PrefixIndexWatch::default()
    }

    /// Always equal to `store.kv_prefix_index(prefix)`; scans only when KV changed.
    /// One watch serves one prefix.
    pub fn index(&mut self, store: &Store, prefix: &str) -> u64 {
        let kv_state = (
            store.table_index(Table::Kv),
            store.kv_tombstone_count(),
            store.kv_graveyard_floor(),
        );
        if let Some((seen, index)) = self.last {
            if seen == kv_state {
                return index;
            }
        }
        let index = store.kv_prefix_index(prefix);
        self.scans += 1;
        self.last = Some((kv_state, index));
        index
    }

    /// How many prefix scans `index` has done (for tests and diagnostics).
    pub fn scans(&self) -> u64 {
        self.scans
    }
}
