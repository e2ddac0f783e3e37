//! Commands carried in the Raft log and what applying them returns.

use super::session::SessionOp;
use super::txn::{TxnOp, TxnOutcome};
use super::types::{Check, Node, Service};
use serde::{Deserialize, Serialize};

/// `PUT /v1/catalog/register`: upsert a node, optionally a service and checks on it.
/// Indexes inside the payload are ignored; the store stamps them at apply time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct RegisterRequest {
    pub node: Node,
    /// When true an existing node's fields are left as they are.
    pub skip_node_update: bool,
    pub service: Option<Service>,
    pub checks: Vec<Check>,
}

/// `PUT /v1/catalog/deregister`: remove a node (with its services and checks), or one
/// service (with its checks), or one check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DeregisterRequest {
    pub node: String,
    pub service_id: Option<String>,
    pub check_id: Option<String>,
}

/// KV verbs that change state (the read verbs are queries, not commands).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvOp {
    /// Unconditional set.
    Set {
        key: String,
        value: Vec<u8>,
        flags: u64,
    },
    /// Set only if the key's ModifyIndex equals `index` (0: only if the key is absent).
    Cas {
        key: String,
        value: Vec<u8>,
        flags: u64,
        index: u64,
    },
    /// Delete one key (true even when absent).
    Delete { key: String },
    /// Delete one key only if its ModifyIndex equals `index` (0 never deletes).
    DeleteCas { key: String, index: u64 },
    /// Delete every key with this prefix.
    DeleteTree { prefix: String },
    /// `?acquire=<session>`: take the key's lock for `session` and write value and flags
    /// (see `Store::kv_lock`). Needs the proposer's time (lock-delay).
    Lock {
        key: String,
        value: Vec<u8>,
        flags: u64,
        session: String,
    },
    /// `?release=<session>`: give the lock back if `session` holds it, writing value and
    /// flags (see `Store::kv_unlock`).
    Unlock {
        key: String,
        value: Vec<u8>,
        flags: u64,
        session: String,
    },
}

/// A replicated command: the payload of a Raft log entry.
// Commands are built once per request and moved into the log; boxing the register
// variant would only change every constructor for no measurable gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Register(RegisterRequest),
    Deregister(DeregisterRequest),
    Kv(KvOp),
    /// Replace the whole state with a snapshot image (`PUT /v1/snapshot`, see
    /// [`super::image`]): the image's rows, stamped with this entry's index, on every
    /// server alike (see `Store::apply_restore` for the index rules).
    Restore {
        image: Vec<u8>,
    },
    /// Session create / destroy / TTL expiry (`super::session`).
    Session(SessionOp),
    /// A command with the time its proposer (the leader) stamped on it, in wall-clock
    /// milliseconds: what lock-delays are computed from at apply, identically on every
    /// replica (the store never reads a clock). See [`Command::stamped`].
    Stamped {
        now_ms: u64,
        command: Box<Command>,
    },
    /// `PUT /v1/txn` with at least one write: every operation or none (see
    /// [`super::txn`]). Appended last so earlier variants keep their encoding.
    Txn(Vec<TxnOp>),
    /// Drop the KV tombstones deleted at or before `up_to_index` (proposed by the leader
    /// once they are older than `tombstone_ttl`; see `store::tombstones`).
    ReapTombstones {
        up_to_index: u64,
    },
}

impl Command {
    /// Whether applying this command may need the time: it may take a lock, or
    /// invalidate a session (destroy, expiry, a check going critical or removed, a node
    /// deregistered) and so start a lock-delay.
    pub fn needs_time(&self) -> bool {
        match self {
            Command::Register(_) | Command::Deregister(_) | Command::Session(_) => true,
            Command::Kv(op) => matches!(op, KvOp::Lock { .. }),
            Command::Restore { .. } | Command::Stamped { .. } | Command::ReapTombstones { .. } => {
                false
            }
            // A lock (lock-delay) or a catalog write (which may invalidate sessions).
            Command::Txn(ops) => ops.iter().any(|op| match op {
                TxnOp::Kv(kv) => kv.verb == super::txn::KvVerb::Lock,
                catalog => catalog.is_write(),
            }),
        }
    }

    /// `self` stamped with `now_ms` when it needs the time (unchanged otherwise, so the
    /// log of commands that never need it stays as it was).
    pub fn stamped(self, now_ms: u64) -> Command {
        if self.needs_time() {
            Command::Stamped {
                now_ms,
                command: Box::new(self),
            }
        } else {
            self
        }
    }

    /// The command inside any stamp.
    pub fn unstamped(&self) -> &Command {
        match self {
            Command::Stamped { command, .. } => command.unstamped(),
            other => other,
        }
    }
}

/// What applying a command returned. Errors here are deterministic rejections decided by
/// the state machine (the same on every replica), not I/O failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommandResult {
    /// The command took effect (or was an idempotent no-op), answered as `true`.
    Done,
    /// A conditional command: whether its condition held.
    Bool(bool),
    /// Rejected; the text is what Consul would answer (HTTP 500 unless mapped otherwise).
    Rejected(String),
    /// A transaction's results, or every failing operation (then nothing changed).
    Txn(TxnOutcome),
}
