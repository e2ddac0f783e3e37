//! Transactions (`PUT /v1/txn`): many KV and catalog operations applied as one.
//!
//! All or nothing: the operations run, in order, against a working copy of the store
//! (an O(1) clone of persistent maps), and the copy replaces the store only when every
//! operation succeeded. A failure leaves the store exactly as it was (only the applied
//! index moves, as for any entry), and the answer lists every failing operation with
//! its position, in Consul's texts. As in Consul, the operations after a failing one
//! still run (on the working copy), so a client sees every error at once.
//!
//! Read-only transactions (only get and check verbs) run the same code on a scratch
//! copy, outside Raft ([`Store::read_txn`]).

use super::registration::{check_id_or_name, service_id_or_name};
use super::{
    eq_fold, fold, Check, CommandResult, DeregisterRequest, KvEntry, KvOp, Node, RegisterRequest,
    Service, Store,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Consul's `maxTxnOps`: the most operations one transaction may carry.
pub const MAX_TXN_OPS: usize = 128;

/// KV verbs, spelled as Consul's API spells them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvVerb {
    Set,
    Cas,
    Lock,
    Unlock,
    Get,
    GetOrEmpty,
    GetTree,
    CheckIndex,
    CheckSession,
    CheckNotExists,
    Delete,
    DeleteTree,
    DeleteCas,
}

const KV_VERBS: [(KvVerb, &str); 13] = [
    (KvVerb::Set, "set"),
    (KvVerb::Cas, "cas"),
    (KvVerb::Lock, "lock"),
    (KvVerb::Unlock, "unlock"),
    (KvVerb::Get, "get"),
    (KvVerb::GetOrEmpty, "get-or-empty"),
    (KvVerb::GetTree, "get-tree"),
    (KvVerb::CheckIndex, "check-index"),
    (KvVerb::CheckSession, "check-session"),
    (KvVerb::CheckNotExists, "check-not-exists"),
    (KvVerb::Delete, "delete"),
    (KvVerb::DeleteTree, "delete-tree"),
    (KvVerb::DeleteCas, "delete-cas"),
];

impl KvVerb {
    /// Consul's spelling (exact, case-sensitive as Consul compares it).
    pub fn parse(verb: &str) -> Option<KvVerb> {
        KV_VERBS.iter().find(|(_, s)| *s == verb).map(|(v, _)| *v)
    }

    pub fn as_str(self) -> &'static str {
        KV_VERBS
            .iter()
            .find(|(v, _)| *v == self)
            .map_or("", |(_, s)| s)
    }

    /// Whether the verb changes the store (Consul's `isWrite`).
    pub fn is_write(self) -> bool {
        matches!(
            self,
            KvVerb::Set
                | KvVerb::Cas
                | KvVerb::Lock
                | KvVerb::Unlock
                | KvVerb::Delete
                | KvVerb::DeleteTree
                | KvVerb::DeleteCas
        )
    }
}

/// Node, service and check verbs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CatalogVerb {
    Set,
    Cas,
    Get,
    Delete,
    DeleteCas,
}

impl CatalogVerb {
    pub fn parse(verb: &str) -> Option<CatalogVerb> {
        Some(match verb {
            "set" => CatalogVerb::Set,
            "cas" => CatalogVerb::Cas,
            "get" => CatalogVerb::Get,
            "delete" => CatalogVerb::Delete,
            "delete-cas" => CatalogVerb::DeleteCas,
            _ => return None,
        })
    }

    pub fn is_write(self) -> bool {
        self != CatalogVerb::Get
    }
}

/// A KV operation. `index` is the CAS / check index (Consul's `Index`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnKv {
    pub verb: KvVerb,
    pub key: String,
    pub value: Vec<u8>,
    pub flags: u64,
    pub index: u64,
    pub session: String,
}

/// A node operation; `index` is the node's `ModifyIndex` for the CAS verbs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnNode {
    pub verb: CatalogVerb,
    pub node: Node,
    pub index: u64,
}

/// A service operation on the node named `node`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnService {
    pub verb: CatalogVerb,
    pub node: String,
    pub service: Service,
    pub index: u64,
}

/// A check operation (the check names its node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnCheck {
    pub verb: CatalogVerb,
    pub check: Check,
    pub index: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOp {
    Kv(TxnKv),
    Node(TxnNode),
    Service(TxnService),
    Check(TxnCheck),
}

impl TxnOp {
    pub fn is_write(&self) -> bool {
        match self {
            TxnOp::Kv(op) => op.verb.is_write(),
            TxnOp::Node(op) => op.verb.is_write(),
            TxnOp::Service(op) => op.verb.is_write(),
            TxnOp::Check(op) => op.verb.is_write(),
        }
    }
}

/// Whether a transaction only reads (then it is served without a Raft write).
pub fn is_read_only(ops: &[TxnOp]) -> bool {
    !ops.iter().any(TxnOp::is_write)
}

/// One result row. KV rows of write and check verbs carry no value (as Consul's).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnResult {
    Kv(KvEntry),
    Node(Node),
    Service(Service),
    Check(Check),
}

/// A failed operation: its position in the request and Consul's text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxnError {
    pub op_index: usize,
    pub what: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxnOutcome {
    /// Every operation succeeded; the results of those that answer one, in order.
    Committed(Vec<TxnResult>),
    /// Nothing changed; every failing operation.
    RolledBack(Vec<TxnError>),
}

/// The checks Consul makes before proposing (`kvsPreApply`, the op count), which need no
/// store: the edge runs them so a bad transaction never reaches the log, and the store
/// runs them again so a bad log entry can do no harm.
pub fn validate(ops: &[TxnOp]) -> Vec<TxnError> {
    if ops.len() > MAX_TXN_OPS {
        return vec![TxnError {
            op_index: 0,
            what: too_many_ops_text(ops.len()),
        }];
    }
    ops.iter()
        .enumerate()
        .filter_map(|(op_index, op)| {
            let what = match op {
                TxnOp::Kv(kv) if kv.key.is_empty() && kv.verb != KvVerb::DeleteTree => {
                    "Must provide key".to_string()
                }
                _ => return None,
            };
            Some(TxnError { op_index, what })
        })
        .collect()
}

/// Consul's 413 text for a transaction over [`MAX_TXN_OPS`].
pub fn too_many_ops_text(count: usize) -> String {
    format!("Transaction contains too many operations ({count} > {MAX_TXN_OPS})")
}

/// Whether a CAS on a row holds: index 0 means "only if absent", any other index must
/// equal the row's ModifyIndex.
fn cas_holds(expected: u64, current: Option<u64>) -> bool {
    match current {
        None => expected == 0,
        Some(index) => expected != 0 && index == expected,
    }
}

type OpResult = Result<Vec<TxnResult>, String>;

impl Store {
    /// Apply a transaction at `index`, proposed at `now_ms` (lock-delays, invalidations).
    pub(super) fn apply_txn(&mut self, index: u64, now_ms: u64, ops: &[TxnOp]) -> CommandResult {
        let invalid = validate(ops);
        if !invalid.is_empty() {
            return CommandResult::Txn(TxnOutcome::RolledBack(invalid));
        }
        let mut working = self.clone();
        let outcome = working.run_txn(index, now_ms, ops);
        if matches!(outcome, TxnOutcome::Committed(_)) {
            *self = working;
        }
        CommandResult::Txn(outcome)
    }

    /// A read-only transaction, answered from this store without changing it. Write
    /// verbs are refused (the caller routes those through Raft).
    pub fn read_txn(&self, ops: &[TxnOp]) -> TxnOutcome {
        let mut errors = validate(ops);
        errors.extend(ops.iter().enumerate().filter(|(_, op)| op.is_write()).map(
            |(op_index, _)| TxnError {
                op_index,
                what: "write operation in a read-only transaction".to_string(),
            },
        ));
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.op_index);
            return TxnOutcome::RolledBack(errors);
        }
        // Read verbs never write; the scratch copy (O(1)) only keeps `run_txn` one
        // function for both paths.
        self.clone().run_txn(0, 0, ops)
    }

    fn run_txn(&mut self, index: u64, now_ms: u64, ops: &[TxnOp]) -> TxnOutcome {
        let mut results = Vec::with_capacity(ops.len());
        let mut errors = Vec::new();
        for (op_index, op) in ops.iter().enumerate() {
            let outcome = match op {
                TxnOp::Kv(op) => self.txn_kv(index, now_ms, op),
                TxnOp::Node(op) => self.txn_node(index, now_ms, op),
                TxnOp::Service(op) => self.txn_service(index, now_ms, op),
                TxnOp::Check(op) => self.txn_check(index, now_ms, op),
            };
            match outcome {
                Ok(rows) => results.extend(rows),
                Err(what) => errors.push(TxnError { op_index, what }),
            }
        }
        if errors.is_empty() {
            TxnOutcome::Committed(results)
        } else {
            TxnOutcome::RolledBack(errors)
        }
    }

    /// The entry of `key` as a result row, its value blanked unless `with_value`.
    fn kv_row(&self, key: &str, with_value: bool) -> Vec<TxnResult> {
        self.kv_get(key)
            .map(|e| {
                let mut e = e.clone();
                if !with_value {
                    e.value = Arc::from(&[][..]);
                }
                TxnResult::Kv(e)
            })
            .into_iter()
            .collect()
    }

    fn txn_kv(&mut self, index: u64, now_ms: u64, op: &TxnKv) -> OpResult {
        let key = op.key.as_str();
        match op.verb {
            KvVerb::Set => {
                self.apply_kv(
                    index,
                    now_ms,
                    &KvOp::Set {
                        key: op.key.clone(),
                        value: op.value.clone(),
                        flags: op.flags,
                    },
                );
                Ok(self.kv_row(key, false))
            }
            KvVerb::Cas => {
                let current = self.kv_get(key).map(|e| e.modify_index);
                if !cas_holds(op.index, current) {
                    return Err(format!("failed to set key {key:?}, index is stale"));
                }
                self.apply_kv(
                    index,
                    now_ms,
                    &KvOp::Set {
                        key: op.key.clone(),
                        value: op.value.clone(),
                        flags: op.flags,
                    },
                );
                Ok(self.kv_row(key, false))
            }
            KvVerb::Delete => {
                self.kv_remove(index, key);
                Ok(Vec::new())
            }
            KvVerb::DeleteCas => {
                // Consul: a missing key is not a conflict (there is nothing to delete).
                match self.kv_get(key).map(|e| e.modify_index) {
                    None => Ok(Vec::new()),
                    Some(current) if current == op.index => {
                        self.kv_remove(index, key);
                        Ok(Vec::new())
                    }
                    Some(_) => Err(format!("failed to delete key {key:?}, index is stale")),
                }
            }
            KvVerb::DeleteTree => {
                self.apply_kv(
                    index,
                    now_ms,
                    &KvOp::DeleteTree {
                        prefix: op.key.clone(),
                    },
                );
                Ok(Vec::new())
            }
            KvVerb::Get => match self.kv_row(key, true) {
                rows if rows.is_empty() => Err(format!("key {key:?} doesn't exist")),
                rows => Ok(rows),
            },
            KvVerb::GetOrEmpty => match self.kv_row(key, true) {
                rows if rows.is_empty() => Ok(vec![TxnResult::Kv(KvEntry {
                    key: op.key.clone(),
                    flags: op.flags,
                    modify_index: op.index,
                    ..KvEntry::default()
                })]),
                rows => Ok(rows),
            },
            KvVerb::GetTree => Ok(self
                .kv_list(key)
                .into_iter()
                .map(|e| TxnResult::Kv(e.clone()))
                .collect()),
            KvVerb::CheckIndex => match self.kv_get(key).map(|e| e.modify_index) {
                None => Err(format!("failed to check index, key {key:?} doesn't exist")),
                Some(current) if current != op.index => Err(format!(
                    "failed index check for key {key:?}, current modify index {current} != {}",
                    op.index
                )),
                Some(_) => Ok(self.kv_row(key, false)),
            },
            KvVerb::CheckNotExists => match self.kv_get(key) {
                Some(_) => Err(format!("key {key:?} exists")),
                None => Ok(Vec::new()),
            },
            KvVerb::Lock => {
                // Consul checks the lock-delay before proposing, on the leader's clock;
                // here the leader's stamp decides, the same on every replica.
                if self
                    .lock_delays
                    .get(key)
                    .is_some_and(|until| now_ms < *until)
                {
                    return Err(format!("failed to lock key {key:?} due to lock delay"));
                }
                match self.kv_lock(index, key, &op.value, op.flags, &op.session, now_ms)? {
                    true => Ok(self.kv_row(key, false)),
                    false => Err(format!("failed to lock key {key:?}, lock is already held")),
                }
            }
            KvVerb::Unlock => match self.kv_unlock(index, key, &op.value, op.flags, &op.session)? {
                true => Ok(self.kv_row(key, false)),
                false => Err(format!(
                    "failed to unlock key {key:?}, lock isn't held, or is held by another session"
                )),
            },
            KvVerb::CheckSession => match self.kv_get(key) {
                None => Err(format!(
                    "failed to check session, key {key:?} doesn't exist"
                )),
                Some(e) if e.session.as_deref().unwrap_or("") != op.session => Err(format!(
                    "failed session check for key {key:?}, current session {:?} != {:?}",
                    e.session.as_deref().unwrap_or(""),
                    op.session
                )),
                Some(_) => Ok(self.kv_row(key, false)),
            },
        }
    }

    /// A registration through the catalog's own rules, its rejection as the op's error.
    fn txn_register(
        &mut self,
        index: u64,
        now_ms: u64,
        req: RegisterRequest,
    ) -> Result<(), String> {
        match self.apply_register(index, now_ms, &req) {
            CommandResult::Rejected(text) => Err(text),
            _ => Ok(()),
        }
    }

    fn txn_deregister(
        &mut self,
        index: u64,
        now_ms: u64,
        req: DeregisterRequest,
    ) -> Result<(), String> {
        match self.apply_deregister(index, now_ms, &req) {
            CommandResult::Rejected(text) => Err(text),
            _ => Ok(()),
        }
    }

    /// A node by ID when one is given, else by name (Consul's txn node lookup).
    fn txn_find_node(&self, node: &Node) -> Option<&Node> {
        if node.id.is_empty() {
            self.node(&node.node)
        } else {
            self.nodes
                .values()
                .find(|n| eq_fold(&n.id, &node.id))
                .map(Arc::as_ref)
        }
    }

    fn node_row(&self, name: &str) -> Vec<TxnResult> {
        self.node(name)
            .map(|n| TxnResult::Node(n.clone()))
            .into_iter()
            .collect()
    }

    fn txn_node(&mut self, index: u64, now_ms: u64, op: &TxnNode) -> OpResult {
        let name = op.node.node.as_str();
        let set = |store: &mut Store| {
            store.txn_register(
                index,
                now_ms,
                RegisterRequest {
                    node: op.node.clone(),
                    ..RegisterRequest::default()
                },
            )?;
            Ok(store.node_row(name))
        };
        let delete = |store: &mut Store| {
            store.txn_deregister(
                index,
                now_ms,
                DeregisterRequest {
                    node: op.node.node.clone(),
                    ..DeregisterRequest::default()
                },
            )
        };
        let row = format!("node {name:?}");
        let get = |store: &Store| {
            store
                .txn_find_node(&op.node)
                .map(|n| TxnResult::Node(n.clone()))
        };
        let current = |store: &Store| store.node(name).map(|n| n.modify_index);
        let delete_row = |store: &mut Store| delete(store).map(|()| Vec::new());
        self.txn_catalog_verb(op.verb, op.index, &row, get, current, set, delete_row)
    }

    /// The five catalog verbs over one row, as node, service and check operations share
    /// them: `row` names the row in Consul's texts (`service "a" on node "n"`), `get` is
    /// what Get answers, `current` the row's ModifyIndex for the CAS verbs.
    #[allow(clippy::too_many_arguments)]
    fn txn_catalog_verb(
        &mut self,
        verb: CatalogVerb,
        index: u64,
        row: &str,
        get: impl FnOnce(&Store) -> Option<TxnResult>,
        current: impl FnOnce(&Store) -> Option<u64>,
        set: impl FnOnce(&mut Store) -> OpResult,
        delete: impl FnOnce(&mut Store) -> OpResult,
    ) -> OpResult {
        match verb {
            CatalogVerb::Get => match get(self) {
                Some(found) => Ok(vec![found]),
                None => Err(format!("{row} doesn't exist")),
            },
            CatalogVerb::Set => set(self),
            CatalogVerb::Cas => {
                if !cas_holds(index, current(self)) {
                    return Err(format!("failed to set {row}, index is stale"));
                }
                set(self)
            }
            CatalogVerb::Delete => delete(self),
            CatalogVerb::DeleteCas => match current(self) {
                Some(at) if at == index => delete(self),
                _ => Err(format!("failed to delete {row}, index is stale")),
            },
        }
    }

    fn service_at(&self, node: &str, id: &str) -> Option<&Service> {
        self.services
            .get(&(fold(node), id.to_string()))
            .map(Arc::as_ref)
    }

    fn txn_service(&mut self, index: u64, now_ms: u64, op: &TxnService) -> OpResult {
        let node = op.node.as_str();
        let id = service_id_or_name(&op.service.id, &op.service.service).to_string();
        let set = |store: &mut Store| {
            let Some(existing) = store.node(node).cloned() else {
                return Err("Missing node registration".to_string());
            };
            store.txn_register(
                index,
                now_ms,
                RegisterRequest {
                    node: existing,
                    skip_node_update: true,
                    service: Some(op.service.clone()),
                    checks: Vec::new(),
                },
            )?;
            Ok(store
                .service_at(node, &id)
                .map(|s| TxnResult::Service(s.clone()))
                .into_iter()
                .collect())
        };
        let delete = |store: &mut Store| {
            store
                .txn_deregister(
                    index,
                    now_ms,
                    DeregisterRequest {
                        node: node.to_string(),
                        service_id: Some(id.clone()),
                        check_id: None,
                    },
                )
                .map(|()| Vec::new())
        };
        let row = format!("service {id:?} on node {node:?}");
        let get = |store: &Store| {
            store
                .service_at(node, &id)
                .map(|s| TxnResult::Service(s.clone()))
        };
        let current = |store: &Store| store.service_at(node, &id).map(|s| s.modify_index);
        self.txn_catalog_verb(op.verb, op.index, &row, get, current, set, delete)
    }

    fn check_at(&self, node: &str, check_id: &str) -> Option<&Check> {
        self.checks
            .get(&(fold(node), check_id.to_string()))
            .map(Arc::as_ref)
    }

    fn txn_check(&mut self, index: u64, now_ms: u64, op: &TxnCheck) -> OpResult {
        let node = op.check.node.as_str();
        let id = check_id_or_name(&op.check.check_id, &op.check.name).to_string();
        let set = |store: &mut Store| {
            let Some(existing) = store.node(node).cloned() else {
                return Err("Missing node registration".to_string());
            };
            let service_id = op.check.service_id.as_str();
            if !service_id.is_empty() && store.service_at(node, service_id).is_none() {
                return Err("Missing service registration".to_string());
            }
            let check = Check {
                check_id: id.clone(),
                ..op.check.clone()
            };
            store.txn_register(
                index,
                now_ms,
                RegisterRequest {
                    node: existing,
                    skip_node_update: true,
                    service: None,
                    checks: vec![check],
                },
            )?;
            Ok(store
                .check_at(node, &id)
                .map(|c| TxnResult::Check(c.clone()))
                .into_iter()
                .collect())
        };
        let delete = |store: &mut Store| {
            store
                .txn_deregister(
                    index,
                    now_ms,
                    DeregisterRequest {
                        node: node.to_string(),
                        service_id: None,
                        check_id: Some(id.clone()),
                    },
                )
                .map(|()| Vec::new())
        };
        let row = format!("check {id:?} on node {node:?}");
        let get = |store: &Store| {
            store
                .check_at(node, &id)
                .map(|c| TxnResult::Check(c.clone()))
        };
        let current = |store: &Store| store.check_at(node, &id).map(|c| c.modify_index);
        self.txn_catalog_verb(op.verb, op.index, &row, get, current, set, delete)
    }
}
