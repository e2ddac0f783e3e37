//! What a blocking read waits on, and what an applied command may have moved: the pure
//! half of targeted wake-ups (the registry of parked reads lives in `actors`).
//!
//! A parked read (`?index=N`) can only be answered once the index it reports moves.
//! That index is a function of a few rows of the store, so the read names them as a
//! [`WatchKey`], and every applied command names what it may have changed as a
//! [`Touch`]. The state machine wakes a parked read only when a touch [`Touch::hits`]
//! its key. Over-approximating is safe (a read woken for nothing re-checks and parks
//! again); missing a touch would lose a wake-up, so every mapping here errs wide:
//! a failed CAS still touches its key, and a catalog write touches the catalog table
//! plus every service name on the node it writes (found in the store before it applies,
//! [`services_touched`]), since a node-level change moves all of their indexes.
//!
//! Node-level reads (`catalog/node/:node`, `health/node/:node`) report a table-wide
//! index, as Consul's do, but watch only their node, as Consul's memdb watch sets do: a
//! write elsewhere in the catalog moves their index without changing their answer, so
//! it must not wake them (they answer at the end of their wait with the newer index).
//! Their property is therefore "no change to the answer escapes the watch key".

use super::Read;
use crate::store::txn::{KvVerb, TxnOp};
use crate::store::{Command, KvOp, Store};

/// The part of the store a blocking read's index depends on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WatchKey {
    /// One existing KV key: its index is the key's ModifyIndex.
    KvKey(String),
    /// Every KV key under a prefix (tombstones included). `""` is the whole KV table:
    /// a missing key reports the KV table's index, which any KV write moves.
    KvPrefix(String),
    /// One service name with instances (case-folded): its index is Consul's
    /// "service.<name>" index (catalog/service, health/service, health/checks).
    Service(String),
    /// One node's entry, services and checks (case-folded name): the reads of one node.
    Node(String),
    /// Nodes, services and checks (the other catalog and health reads, DNS, and a
    /// service name without instances, whose index is the catalog's).
    Catalog,
    /// The sessions table (session info, list and node reads report its index).
    Sessions,
}

/// What one applied command may have changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch<'a> {
    /// One KV key was written or deleted.
    KvKey(&'a str),
    /// Every KV key under this prefix may have been deleted.
    KvTree(&'a str),
    /// A registration or deregistration.
    Catalog,
    /// A catalog write that may move this (case-folded) service name's index.
    Service(&'a str),
    /// A catalog write on this node (the name as the command spells it).
    Node(&'a str),
    /// The whole store was replaced (a snapshot restore): every read may have moved.
    All,
    /// A session was created or invalidated.
    Sessions,
}

/// The key a blocking `read` watches, given the store it is about to be checked
/// against. It depends on the store for one case (a missing key watches the KV table),
/// so a caller registers it and re-reads the store before trusting a "not yet".
pub fn watch_key(store: &Store, read: &Read) -> WatchKey {
    match read {
        Read::KvGet { key } => match store.kv_get(key) {
            Some(_) => WatchKey::KvKey(key.clone()),
            None => WatchKey::KvPrefix(String::new()),
        },
        Read::KvList { prefix } | Read::KvKeys { prefix, .. } => WatchKey::KvPrefix(prefix.clone()),
        Read::CatalogService { name, .. }
        | Read::HealthService { name, .. }
        | Read::InstancesHealth { name, .. }
        | Read::HealthChecks { service: name } => match store.has_service(name) {
            true => WatchKey::Service(fold(name)),
            false => WatchKey::Catalog,
        },
        Read::CatalogNode { node } | Read::HealthNode { node } => WatchKey::Node(fold(node)),
        Read::CatalogNodes { .. }
        | Read::CatalogServices { .. }
        | Read::CatalogServiceInstances { .. }
        | Read::HealthState { .. }
        | Read::Node { .. }
        | Read::AddressOwners { .. } => WatchKey::Catalog,
        // The edge never blocks on it. Were it asked to, its index (the store's last
        // index) moves with any entry, which no single key names: it would wake on KV
        // writes and otherwise answer at the end of its wait, as a timeout does.
        Read::Snapshot | Read::Txn { .. } => WatchKey::KvPrefix(String::new()),
        Read::SessionInfo { .. } | Read::SessionList | Read::SessionNode { .. } => {
            WatchKey::Sessions
        }
    }
}

/// Service names are case-insensitive; watch keys and touches use the folded form (the
/// store's own folding).
fn fold(name: &str) -> String {
    name.to_lowercase()
}

/// The service names (case-folded) whose index applying `cmd` to `store` may move:
/// every name on the node it writes (a node or node-level check change moves them all,
/// and a deregistration removes them) plus the name it registers. `store` is the state
/// BEFORE `cmd` applies. Empty for KV commands.
pub fn services_touched(store: &Store, cmd: &Command) -> Vec<String> {
    // (node written, service registered) pairs: one for a catalog command, one per
    // catalog operation of a transaction.
    let writes: Vec<(&str, Option<&str>)> = match cmd.unstamped() {
        Command::Register(req) => vec![(
            req.node.node.as_str(),
            req.service.as_ref().map(|s| s.service.as_str()),
        )],
        Command::Deregister(req) => vec![(req.node.as_str(), None)],
        Command::Txn(ops) => ops
            .iter()
            .filter(|op| op.is_write())
            .filter_map(|op| match op {
                TxnOp::Kv(_) => None,
                TxnOp::Node(op) => Some((op.node.node.as_str(), None)),
                TxnOp::Service(op) => Some((op.node.as_str(), Some(op.service.service.as_str()))),
                TxnOp::Check(op) => Some((op.check.node.as_str(), None)),
            })
            .collect(),
        _ => return Vec::new(),
    };
    let mut names: Vec<String> = Vec::new();
    for (node, registered) in writes {
        names.extend(
            store
                .node_services(node)
                .into_iter()
                .map(|s| fold(&s.service)),
        );
        names.extend(registered.map(fold));
    }
    names.sort();
    names.dedup();
    names
}

/// What applying `cmd` may have changed (whether or not it did: a failed CAS too): one
/// touch, and a second for catalog writes (the table and the node written).
///
/// What a command changes through sessions (keys an invalidation releases or deletes)
/// depends on the store: see [`lock_keys_touched`].
pub fn touched_by(cmd: &Command) -> impl Iterator<Item = Touch<'_>> {
    let (first, node) = match cmd.unstamped() {
        Command::Txn(ops) => return txn_touches(ops).into_iter(),
        Command::Register(req) => (Touch::Catalog, Some(Touch::Node(&req.node.node))),
        Command::Deregister(req) => (Touch::Catalog, Some(Touch::Node(&req.node))),
        Command::Kv(op) => match op {
            KvOp::Set { key, .. }
            | KvOp::Cas { key, .. }
            | KvOp::Delete { key }
            | KvOp::DeleteCas { key, .. }
            | KvOp::Lock { key, .. }
            | KvOp::Unlock { key, .. } => (Touch::KvKey(key), None),
            KvOp::DeleteTree { prefix } => (Touch::KvTree(prefix), None),
        },
        Command::Restore { .. } => (Touch::All, None),
        Command::Session(_) => (Touch::Sessions, None),
        // `unstamped` never answers a stamp.
        Command::Stamped { .. } => (Touch::All, None),
        // A reap may raise the graveyard floor under every prefix.
        Command::ReapTombstones { .. } => (Touch::KvTree(""), None),
    };
    std::iter::once(first)
        .chain(node)
        .collect::<Vec<_>>()
        .into_iter()
}

/// What a transaction's write operations may change: each KV key or tree written, and
/// the catalog plus each node a catalog operation writes.
fn txn_touches(ops: &[TxnOp]) -> Vec<Touch<'_>> {
    let mut touches = Vec::new();
    for op in ops.iter().filter(|op| op.is_write()) {
        match op {
            TxnOp::Kv(kv) if kv.verb == KvVerb::DeleteTree => touches.push(Touch::KvTree(&kv.key)),
            TxnOp::Kv(kv) => touches.push(Touch::KvKey(&kv.key)),
            TxnOp::Node(op) => touches.extend([Touch::Catalog, Touch::Node(&op.node.node)]),
            TxnOp::Service(op) => touches.extend([Touch::Catalog, Touch::Node(&op.node)]),
            TxnOp::Check(op) => touches.extend([Touch::Catalog, Touch::Node(&op.check.node)]),
        }
    }
    touches
}

/// The sessions `cmd` may invalidate, given the store BEFORE it applies: the one it
/// destroys or expires, those linked to a check it makes critical or removes, those of
/// a node it deregisters (a service deregistration may remove checks: every session on
/// the node). Over-approximated, never under.
fn sessions_hit(store: &Store, cmd: &Command) -> Vec<String> {
    use crate::store::{CheckStatus, SessionOp};
    match cmd.unstamped() {
        Command::Session(SessionOp::Destroy { id } | SessionOp::Expire { id }) => {
            vec![id.clone()]
        }
        Command::Register(req) => {
            let mut ids = Vec::new();
            for check in &req.checks {
                if check.status == CheckStatus::Critical {
                    let id = if check.check_id.is_empty() {
                        &check.name
                    } else {
                        &check.check_id
                    };
                    ids.extend(store.check_sessions(&req.node.node, id));
                }
            }
            // A node renamed by its ID drops the old node's sessions: every session of
            // another node with this node's ID.
            if !req.node.id.is_empty() {
                for node in store.nodes() {
                    if node.node != req.node.node && node.id.eq_ignore_ascii_case(&req.node.id) {
                        ids.extend(store.node_sessions(&node.node).iter().map(|s| s.id.clone()));
                    }
                }
            }
            ids
        }
        Command::Deregister(req) => store
            .node_sessions(&req.node)
            .iter()
            .map(|s| s.id.clone())
            .collect(),
        // Every session on each node a catalog operation writes (wide, never short), and
        // those of another node carrying a node ID it sets (a rename drops that node).
        Command::Txn(ops) => {
            let mut ids = Vec::new();
            for op in ops.iter().filter(|op| op.is_write()) {
                let node = match op {
                    TxnOp::Kv(_) => continue,
                    TxnOp::Node(op) => &op.node,
                    TxnOp::Service(op) => {
                        ids.extend(store.node_sessions(&op.node).iter().map(|s| s.id.clone()));
                        continue;
                    }
                    TxnOp::Check(op) => {
                        let sessions = store.node_sessions(&op.check.node);
                        ids.extend(sessions.iter().map(|s| s.id.clone()));
                        continue;
                    }
                };
                for other in store.nodes() {
                    let renamed = !node.id.is_empty() && other.id.eq_ignore_ascii_case(&node.id);
                    if fold(&other.node) == fold(&node.node) || renamed {
                        ids.extend(
                            store
                                .node_sessions(&other.node)
                                .iter()
                                .map(|s| s.id.clone()),
                        );
                    }
                }
            }
            ids.sort();
            ids.dedup();
            ids
        }
        _ => Vec::new(),
    }
}

/// What `cmd` may change through sessions, given the store BEFORE it applies: whether
/// it may touch the sessions table (a session command, or a catalog write that
/// invalidates a session), and the KV keys held by every session it may invalidate
/// (released or deleted). The state machine adds `Touch::Sessions` and a `Touch::KvKey`
/// for each, as it adds the service names of [`services_touched`].
pub fn lock_keys_touched(store: &Store, cmd: &Command) -> (bool, Vec<String>) {
    let hit = sessions_hit(store, cmd);
    let sessions = !hit.is_empty() || matches!(cmd.unstamped(), Command::Session(_));
    let mut keys: Vec<String> = hit.iter().flat_map(|id| store.session_keys(id)).collect();
    keys.sort();
    keys.dedup();
    (sessions, keys)
}

impl Touch<'_> {
    /// Whether this change may move the index of a read watching `key`.
    pub fn hits(&self, key: &WatchKey) -> bool {
        match (self, key) {
            (Touch::All, _) => true,
            (Touch::Catalog, WatchKey::Catalog) => true,
            (Touch::Sessions, WatchKey::Sessions) => true,
            (Touch::Service(name), WatchKey::Service(watched)) => name == watched,
            (Touch::Node(name), WatchKey::Node(watched)) => fold(name) == *watched,
            (Touch::KvKey(k), WatchKey::KvKey(w)) => k == w,
            (Touch::KvKey(k), WatchKey::KvPrefix(p)) => k.starts_with(p.as_str()),
            (Touch::KvTree(t), WatchKey::KvKey(w)) => w.starts_with(t),
            // Deleting under `t` changes keys under `p` when one prefix holds the other.
            (Touch::KvTree(t), WatchKey::KvPrefix(p)) => {
                p.starts_with(t) || t.starts_with(p.as_str())
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::answer::{read_data, read_index, PrefixIndexWatch};
    use crate::store::{Check, CheckStatus, DeregisterRequest, Node, RegisterRequest, Service};

    const KEYS: [&str; 6] = ["", "a", "a/b", "a/c", "ab", "b"];

    fn kv_ops() -> Vec<KvOp> {
        let mut ops = Vec::new();
        for key in KEYS {
            let key = key.to_string();
            ops.push(KvOp::Set {
                key: key.clone(),
                value: vec![1],
                flags: 0,
            });
            ops.push(KvOp::Delete { key: key.clone() });
            ops.push(KvOp::DeleteTree {
                prefix: key.clone(),
            });
            ops.push(KvOp::Cas {
                key: key.clone(),
                value: vec![2],
                flags: 0,
                index: 0,
            });
        }
        ops
    }

    fn reads() -> Vec<Read> {
        let mut reads = vec![Read::CatalogNodes {
            node_meta: Default::default(),
        }];
        for name in ["web", "WEB", "db", "none"] {
            reads.push(Read::CatalogService {
                name: name.into(),
                tags: Vec::new(),
                node_meta: Default::default(),
            });
            reads.push(Read::HealthService {
                name: name.into(),
                tags: Vec::new(),
                node_meta: Default::default(),
                passing: true,
            });
            reads.push(Read::HealthChecks {
                service: name.into(),
            });
        }
        for key in KEYS {
            reads.push(Read::KvGet { key: key.into() });
            reads.push(Read::KvList { prefix: key.into() });
        }
        for node in ["n1", "N1", "n2", "none"] {
            reads.push(Read::CatalogNode { node: node.into() });
            reads.push(Read::HealthNode { node: node.into() });
        }
        reads
    }

    /// Whether a read watches a table-wide index for only part of the table (its node),
    /// so the property to hold is about its answer rather than its index.
    fn watches_its_answer(read: &Read) -> bool {
        matches!(read, Read::CatalogNode { .. } | Read::HealthNode { .. })
    }

    /// Every command that moves a read's index touches the key that read watched: the
    /// property that makes targeted wake-ups lose nothing. Checked exhaustively over
    /// two-command histories on a small key space (existing, missing, nested keys).
    #[test]
    fn no_change_to_a_read_index_escapes_its_watch_key() {
        let register = Command::Register(RegisterRequest {
            node: Node {
                node: "n1".into(),
                address: "10.0.0.1".into(),
                ..Node::default()
            },
            ..RegisterRequest::default()
        });
        let mut commands: Vec<Command> = kv_ops().into_iter().map(Command::Kv).collect();
        commands.push(register);
        commands.extend(catalog_commands());
        commands.extend(txn_commands());
        commands.push(Command::ReapTombstones { up_to_index: 1 });
        commands.push(Command::ReapTombstones { up_to_index: 2 });
        let mut checked = 0;
        for first in &commands {
            let mut base = Store::new();
            base.apply(1, first);
            for cmd in &commands {
                let mut after = base.clone();
                after.apply(2, cmd);
                for read in reads() {
                    let before = read_index(&base, &read, &mut PrefixIndexWatch::new());
                    let now = read_index(&after, &read, &mut PrefixIndexWatch::new());
                    let moved = match watches_its_answer(&read) {
                        true => read_data(&base, &read) != read_data(&after, &read),
                        false => before != now,
                    };
                    if moved {
                        let key = watch_key(&base, &read);
                        let names = services_touched(&base, cmd);
                        let hit = touched_by(cmd).any(|t| t.hits(&key))
                            || names.iter().any(|n| Touch::Service(n).hits(&key));
                        assert!(
                            hit,
                            "{cmd:?} moved {read:?} ({before} -> {now}) but missed {key:?}"
                        );
                        checked += 1;
                    }
                }
            }
        }
        assert!(checked > 500, "poor coverage: {checked}");
    }

    /// Registrations and deregistrations that move service indexes in every way: a new
    /// instance, a second node, another name, a node-level change (address, node check),
    /// a service check, removing a service, a check or the whole node.
    fn catalog_commands() -> Vec<Command> {
        let node = |name: &str, address: &str| Node {
            node: name.into(),
            address: address.into(),
            ..Node::default()
        };
        let service = |node: &str, name: &str| Service {
            node: node.into(),
            id: name.into(),
            service: name.into(),
            ..Service::default()
        };
        let check = |node: &str, id: &str, service_id: &str| Check {
            node: node.into(),
            check_id: id.into(),
            name: id.into(),
            status: CheckStatus::Critical,
            service_id: service_id.into(),
            ..Check::default()
        };
        let register = |n: Node, s: Option<Service>, checks: Vec<Check>| {
            Command::Register(RegisterRequest {
                node: n,
                skip_node_update: false,
                service: s,
                checks,
            })
        };
        let deregister = |n: &str, service: Option<&str>, check: Option<&str>| {
            Command::Deregister(DeregisterRequest {
                node: n.into(),
                service_id: service.map(Into::into),
                check_id: check.map(Into::into),
            })
        };
        vec![
            register(node("n1", "10.0.0.1"), Some(service("n1", "web")), vec![]),
            register(node("n2", "10.0.0.2"), Some(service("n2", "Web")), vec![]),
            register(node("n1", "10.0.0.1"), Some(service("n1", "db")), vec![]),
            register(node("n1", "10.0.0.9"), None, vec![]),
            register(node("N1", "10.0.0.1"), None, vec![check("n1", "disk", "")]),
            register(
                node("n1", "10.0.0.1"),
                None,
                vec![check("n1", "svc", "web")],
            ),
            deregister("n1", Some("web"), None),
            deregister("n1", None, Some("disk")),
            deregister("n1", None, None),
        ]
    }

    /// Transactions doing what the KV and catalog commands above do, alone and together.
    fn txn_commands() -> Vec<Command> {
        use crate::store::txn::{CatalogVerb as C, KvVerb, TxnCheck, TxnKv, TxnNode, TxnService};
        let kv = |verb: KvVerb, key: &str| {
            TxnOp::Kv(TxnKv {
                verb,
                key: key.into(),
                value: vec![3],
                flags: 0,
                index: 0,
                session: String::new(),
            })
        };
        let node = |verb: C, name: &str, address: &str| {
            TxnOp::Node(TxnNode {
                verb,
                node: Node {
                    node: name.into(),
                    address: address.into(),
                    ..Node::default()
                },
                index: 0,
            })
        };
        let service = |verb: C, node: &str, name: &str| {
            TxnOp::Service(TxnService {
                verb,
                node: node.into(),
                service: Service {
                    service: name.into(),
                    ..Service::default()
                },
                index: 0,
            })
        };
        let check = |verb: C, node: &str, id: &str, service_id: &str| {
            TxnOp::Check(TxnCheck {
                verb,
                check: Check {
                    node: node.into(),
                    check_id: id.into(),
                    status: CheckStatus::Passing,
                    service_id: service_id.into(),
                    ..Check::default()
                },
                index: 0,
            })
        };
        let mut txns: Vec<Vec<TxnOp>> = Vec::new();
        for key in KEYS.into_iter().filter(|k| !k.is_empty()) {
            txns.push(vec![kv(KvVerb::Set, key)]);
            txns.push(vec![kv(KvVerb::Cas, key)]);
            txns.push(vec![kv(KvVerb::Delete, key)]);
            txns.push(vec![kv(KvVerb::DeleteTree, key)]);
        }
        txns.extend([
            vec![kv(KvVerb::DeleteTree, "")],
            vec![node(C::Set, "n1", "10.0.0.1"), service(C::Set, "n1", "web")],
            vec![node(C::Set, "N1", "10.0.0.7")],
            vec![node(C::Set, "n2", "10.0.0.2"), service(C::Set, "n2", "Web")],
            vec![service(C::Set, "n1", "db"), check(C::Set, "n1", "disk", "")],
            vec![check(C::Set, "n1", "svc", "web")],
            vec![service(C::Delete, "n1", "web")],
            vec![check(C::Delete, "n1", "disk", "")],
            vec![node(C::Delete, "n1", "")],
            vec![kv(KvVerb::Set, "a/b"), node(C::Delete, "n2", "")],
            // A failing transaction changes nothing, so it may touch what it likes.
            vec![kv(KvVerb::Set, "a"), kv(KvVerb::Get, "missing")],
        ]);
        txns.into_iter().map(Command::Txn).collect()
    }

    #[test]
    fn a_service_read_watches_its_name_and_only_its_name() {
        let mut store = Store::new();
        for (i, cmd) in catalog_commands().iter().take(3).enumerate() {
            store.apply(i as u64 + 1, cmd);
        }
        let read = |name: &str| Read::CatalogService {
            name: name.into(),
            tags: Vec::new(),
            node_meta: Default::default(),
        };
        assert_eq!(
            watch_key(&store, &read("WEB")),
            WatchKey::Service("web".into())
        );
        // No instances: the index is the catalog's, so the whole catalog is watched.
        assert_eq!(watch_key(&store, &read("none")), WatchKey::Catalog);
        // Registering on n2 touches n2's names only, not db on n1.
        let on_n2 = &catalog_commands()[1];
        assert_eq!(services_touched(&store, on_n2), vec!["web".to_string()]);
        assert!(!Touch::Service("web").hits(&WatchKey::Service("db".into())));
        assert!(!Touch::Catalog.hits(&WatchKey::Service("db".into())));
        // A node-level change on n1 touches every name there.
        let node_change = &catalog_commands()[3];
        assert_eq!(services_touched(&store, node_change), vec!["db", "web"]);
    }

    #[test]
    fn a_node_read_watches_its_node_only() {
        let store = Store::new();
        let read = Read::HealthNode { node: "N1".into() };
        assert_eq!(watch_key(&store, &read), WatchKey::Node("n1".into()));
        let commands = catalog_commands();
        // A registration on n1 (any spelling) hits it; one on n2 does not.
        assert!(touched_by(&commands[0]).any(|t| t.hits(&WatchKey::Node("n1".into()))));
        assert!(touched_by(&commands[4]).any(|t| t.hits(&WatchKey::Node("n1".into()))));
        assert!(!touched_by(&commands[1]).any(|t| t.hits(&WatchKey::Node("n1".into()))));
        assert!(!Touch::Catalog.hits(&WatchKey::Node("n1".into())));
    }

    #[test]
    fn unrelated_keys_are_not_hit() {
        let key = WatchKey::KvKey("park/1".into());
        assert!(!Touch::KvKey("park/2").hits(&key));
        assert!(!Touch::KvKey("park/10").hits(&key));
        assert!(!Touch::Catalog.hits(&key));
        assert!(Touch::KvTree("park/").hits(&key));
        assert!(!Touch::KvTree("other/").hits(&key));
        let prefix = WatchKey::KvPrefix("park/".into());
        assert!(Touch::KvKey("park/2").hits(&prefix));
        assert!(!Touch::KvKey("parking").hits(&prefix));
        assert!(Touch::KvTree("p").hits(&prefix));
        assert!(Touch::KvTree("park/x/").hits(&prefix));
    }

    #[test]
    fn a_restore_touches_every_key() {
        let cmd = Command::Restore { image: Vec::new() };
        let touches: Vec<Touch<'_>> = touched_by(&cmd).collect();
        assert_eq!(touches, [Touch::All]);
        for key in [
            WatchKey::KvKey("k".into()),
            WatchKey::KvPrefix("p/".into()),
            WatchKey::Service("web".into()),
            WatchKey::Node("n1".into()),
            WatchKey::Catalog,
        ] {
            assert!(Touch::All.hits(&key), "{key:?}");
        }
        assert!(services_touched(&Store::new(), &cmd).is_empty());
    }
    /// An invalidation touches the sessions table and every key the session holds, for
    /// each of its causes; a session read watches the sessions table.
    #[test]
    fn an_invalidation_touches_the_keys_its_session_holds() {
        use crate::store::{Session, SessionOp};
        let mut store = Store::new();
        let n1 = Node {
            node: "n1".into(),
            address: "10.0.0.1".into(),
            ..Node::default()
        };
        let serf = Check {
            check_id: "serfHealth".into(),
            name: "serfHealth".into(),
            ..Check::default()
        };
        store.apply(
            1,
            &Command::Register(RegisterRequest {
                node: n1.clone(),
                checks: vec![serf.clone()],
                ..RegisterRequest::default()
            }),
        );
        let session = Session {
            id: "s".into(),
            node: "n1".into(),
            node_checks: vec!["serfHealth".into()],
            ..Session::default()
        };
        store.apply(2, &Command::Session(SessionOp::Create(session)));
        for (i, key) in ["held/1", "held/2"].iter().enumerate() {
            let lock = Command::Kv(KvOp::Lock {
                key: key.to_string(),
                value: vec![],
                flags: 0,
                session: "s".into(),
            });
            store.apply(3 + i as u64, &lock);
        }
        let held = vec!["held/1".to_string(), "held/2".to_string()];
        let destroy = Command::Session(SessionOp::Destroy { id: "s".into() });
        let critical = Command::Register(RegisterRequest {
            node: n1,
            checks: vec![Check {
                status: CheckStatus::Critical,
                ..serf
            }],
            ..RegisterRequest::default()
        });
        let gone = Command::Deregister(DeregisterRequest {
            node: "N1".into(),
            ..DeregisterRequest::default()
        });
        for cmd in [destroy, critical, gone] {
            let stamped = cmd.clone().stamped(1);
            assert_eq!(
                lock_keys_touched(&store, &stamped),
                (true, held.clone()),
                "{cmd:?}"
            );
            // And applying it does release them.
            let mut after = store.clone();
            after.apply(9, &stamped);
            assert!(after.session_keys("s").is_empty(), "{cmd:?}");
            assert!(after.kv_get("held/1").is_none_or(|e| e.session.is_none()));
        }
        let unrelated = Command::Kv(KvOp::Set {
            key: "held/1".into(),
            value: vec![],
            flags: 0,
        });
        assert_eq!(lock_keys_touched(&store, &unrelated), (false, vec![]));
        assert_eq!(watch_key(&store, &Read::SessionList), WatchKey::Sessions);
        assert!(Touch::Sessions.hits(&WatchKey::Sessions));
        assert!(!Touch::Sessions.hits(&WatchKey::Catalog));
    }

    /// The leader stamps catalog writes with the time: a stamp changes no touch.
    #[test]
    fn a_stamped_command_touches_what_the_command_touches() {
        let mut store = Store::new();
        let mut commands = catalog_commands();
        store.apply(1, &commands[0]);
        commands.extend(kv_ops().into_iter().map(Command::Kv));
        for cmd in &commands {
            let stamped = Command::Stamped {
                now_ms: 5,
                command: Box::new(cmd.clone()),
            };
            let plain: Vec<Touch<'_>> = touched_by(cmd).collect();
            assert_eq!(touched_by(&stamped).collect::<Vec<_>>(), plain, "{cmd:?}");
            assert_eq!(
                services_touched(&store, &stamped),
                services_touched(&store, cmd)
            );
        }
    }
}
