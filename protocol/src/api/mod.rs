//! Typed requests and responses: what an edge (HTTP, DNS, later a client agent's RPC)
//! asks an endpoint, and what it gets back. Pure data: serde, no I/O.
//!
//! These types ARE the wire format between agents (client agent → server, follower →
//! leader): they travel through [`crate::codec`] with the size limits below, inside the
//! multiplexed frames of [`frame`]. Responses carry typed rows from [`crate::store`]
//! (owned copies), never JSON: rendering is the edge's business and happens outside any
//! lock.
//!
//! The pure half of answering a read from a store (the resource's index, the owned rows)
//! lives in [`answer`]; the consistency policy (leader checks, catch-up, blocking) lives
//! in the endpoint (`actors::endpoint`), because it waits on Raft.

pub mod answer;
mod error;
pub mod frame;
mod operator;
#[cfg(test)]
mod tests;
pub mod watch;

pub use error::RequestError;
pub use operator::{
    AutopilotHealthInfo, PeerSelector, RaftConfigurationInfo, RaftServerInfo, ServerHealthInfo,
};

use crate::codec::{self, CodecError};
use crate::store::txn::{TxnOp, TxnOutcome};
use crate::store::{
    Check, CheckStatus, DeregisterRequest, KvEntry, KvOp, Node, RegisterRequest, Service, Session,
    SessionOp, Weights,
};
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// Consul's read consistency modes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum Consistency {
    /// Default: answered by (or as) the leader.
    #[default]
    Leader,
    /// `?stale`: any server answers from its local state.
    Stale,
    /// `?consistent`: the leader confirms its leadership first.
    Consistent,
}

impl Consistency {
    /// What `X-Consul-Effective-Consistency` reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Consistency::Leader => "leader",
            Consistency::Stale => "stale",
            Consistency::Consistent => "consistent",
        }
    }
}

/// Default blocking wait (Consul's `default_query_time`).
pub const DEFAULT_WAIT: Duration = Duration::from_secs(300);
/// Longest blocking wait (Consul's `max_query_time`).
pub const MAX_WAIT: Duration = Duration::from_secs(600);

/// Options every read carries.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueryOptions {
    pub consistency: Consistency,
    /// Block while the resource's index is ≤ this (0: answer now).
    pub min_index: u64,
    /// How long a blocking read may wait (before jitter); `None`: [`DEFAULT_WAIT`].
    pub wait: Option<Duration>,
    /// A filter expression, for the filters issue; endpoints refuse it until then.
    pub filter: Option<String>,
}

impl QueryOptions {
    /// A non-blocking stale read (DNS, diagnostics).
    pub fn stale() -> QueryOptions {
        QueryOptions {
            consistency: Consistency::Stale,
            ..QueryOptions::default()
        }
    }

    /// The wait of a blocking read, before jitter: the default for none or zero, capped.
    pub fn effective_wait(&self) -> Duration {
        match self.wait {
            Some(w) if !w.is_zero() => w.min(MAX_WAIT),
            _ => DEFAULT_WAIT,
        }
    }
}

/// What a read's answer says about how it was served (Consul's X-Consul-* headers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct QueryMeta {
    /// The resource's index (blocking clients pass it back as `?index`).
    pub index: u64,
    pub known_leader: bool,
    /// Milliseconds since the answering server heard from its leader (0 on the leader).
    pub last_contact_ms: u64,
    /// The consistency the answer was served with.
    pub consistency: Consistency,
}

/// The answer to a read with a filter expression (400) until filters exist: answering
/// everything would tell the client its filter matched everything.
pub const FILTER_UNSUPPORTED_TEXT: &str =
    "Filter expressions (?filter=) are not supported by this agent yet";

/// `?node-meta=k:v` pairs; every pair must match.
pub type NodeMetaFilter = Vec<(String, String)>;

/// Everything an edge can ask for. One variant per question.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Read(ReadRequest),
    Write(WriteRequest),
    Info(InfoRequest),
}

impl Request {
    /// Only the leader answers it (a follower forwards it there): writes, reads other
    /// than `stale`, operator requests.
    pub fn needs_leader(&self) -> bool {
        match self {
            Request::Info(info) => info.needs_leader(),
            Request::Read(read) => read.options.consistency != Consistency::Stale,
            Request::Write(_) => true,
        }
    }
}

/// A read with its options.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadRequest {
    pub options: QueryOptions,
    pub read: Read,
}

/// The reads. Names are as given by the client; matching rules (case folding) are the
/// store's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Read {
    /// `/v1/catalog/nodes` → [`ReadData::Nodes`].
    CatalogNodes { node_meta: NodeMetaFilter },
    /// `/v1/catalog/services` → [`ReadData::Services`].
    CatalogServices { node_meta: NodeMetaFilter },
    /// `/v1/catalog/service/:name` → [`ReadData::ServiceNodes`].
    CatalogService {
        name: String,
        tags: Vec<String>,
        node_meta: NodeMetaFilter,
    },
    /// `/v1/catalog/node/:node` → [`ReadData::NodeServices`].
    CatalogNode { node: String },
    /// `/v1/health/service/:name` → [`ReadData::ServiceEntries`].
    HealthService {
        name: String,
        tags: Vec<String>,
        node_meta: NodeMetaFilter,
        /// Only instances whose every check passes.
        passing: bool,
    },
    /// `/v1/health/node/:node` → [`ReadData::Checks`].
    HealthNode { node: String },
    /// `/v1/health/checks/:service` → [`ReadData::Checks`].
    HealthChecks { service: String },
    /// `/v1/health/state/:state` (`None`: any) → [`ReadData::Checks`].
    HealthState { state: Option<CheckStatus> },
    /// Instances with their aggregate status, no check lists (DNS) →
    /// [`ReadData::InstancesHealth`].
    InstancesHealth { name: String, tags: Vec<String> },
    /// One node by name (DNS) → [`ReadData::Node`].
    Node { node: String },
    /// Nodes, and names of services with an instance, whose address is `address`
    /// (DNS PTR) → [`ReadData::AddressOwners`].
    AddressOwners { address: std::net::IpAddr },
    /// `/v1/kv/:key` → [`ReadData::KvEntry`].
    KvGet { key: String },
    /// `/v1/kv/:prefix?recurse` → [`ReadData::KvEntries`].
    KvList { prefix: String },
    /// `/v1/kv/:prefix?keys[&separator=]` → [`ReadData::KvKeys`].
    KvKeys {
        prefix: String,
        separator: Option<String>,
    },
    /// `GET /v1/snapshot`: the whole store as a snapshot image →
    /// [`ReadData::Snapshot`]. Never blocks (the edge sends no `min_index`).
    Snapshot,
    /// `/v1/catalog/services?filter=`: every service instance, by node, so a filter can
    /// test instances before they are grouped by name → [`ReadData::ServiceNodes`].
    /// Same index and watch as [`Read::CatalogServices`].
    CatalogServiceInstances { node_meta: NodeMetaFilter },
    /// `/v1/session/info/:id` → [`ReadData::Sessions`] (empty when unknown).
    SessionInfo { id: String },
    /// `/v1/session/list` → [`ReadData::Sessions`].
    SessionList,
    /// `/v1/session/node/:node` → [`ReadData::Sessions`].
    SessionNode { node: String },
    /// `PUT /v1/txn` with only read verbs: answered from the store under the
    /// consistency mode, never blocking → [`ReadData::Txn`].
    Txn { ops: Vec<TxnOp> },
}

/// A service instance with its node (catalog service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceNode {
    pub node: Node,
    pub service: Service,
}

/// A node with its services (catalog node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeServices {
    pub node: Node,
    pub services: Vec<Service>,
}

/// A service instance with its node and every check affecting it (health service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    pub node: Node,
    pub service: Service,
    pub checks: Vec<Check>,
}

/// A service instance as DNS answers it: where it is, its weights and its aggregate
/// status. Only what DNS prints is copied (DNS answers one of these per instance per
/// query, so whole `Node`/`Service` rows would triple the cost of an answer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceStatus {
    /// Node name.
    pub node: String,
    pub node_address: String,
    /// Published as TXT records next to SRV glue.
    pub node_meta: BTreeMap<String, String>,
    /// Empty: the node's address is used.
    pub service_address: String,
    pub port: u16,
    pub weights: Weights,
    pub status: CheckStatus,
}

/// What owns an address (DNS PTR).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AddressOwners {
    /// Names of nodes with this address, in node order.
    pub nodes: Vec<String>,
    /// Names of services with an instance at this (service) address, in name order.
    pub services: Vec<String>,
}

/// The rows a read answers with, one variant per [`Read`] shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReadData {
    Nodes(Vec<Node>),
    /// Service name → sorted tags.
    Services(BTreeMap<String, Vec<String>>),
    ServiceNodes(Vec<ServiceNode>),
    NodeServices(Option<NodeServices>),
    ServiceEntries(Vec<ServiceEntry>),
    Checks(Vec<Check>),
    InstancesHealth(Vec<InstanceStatus>),
    Node(Option<Node>),
    AddressOwners(AddressOwners),
    KvEntry(Option<KvEntry>),
    KvEntries(Vec<KvEntry>),
    KvKeys(Vec<String>),
    /// The store's image, or why it could not be encoded (a row over the record limit,
    /// which rows the log accepted never are).
    Snapshot(Result<StoreImage, String>),
    /// Session rows (info, list, node, and the answer to a renew).
    Sessions(Vec<Session>),
    Txn(TxnOutcome),
}

/// The whole store as one snapshot image (`crate::store::image`), with the point in
/// the log it stands for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreImage {
    /// Index of the last entry the store applied.
    pub index: u64,
    /// Raft term the answering server was in (the store knows no terms: the endpoint
    /// fills it in; 0 from a bare view).
    pub term: u64,
    pub image: Vec<u8>,
}

/// A read's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadResponse {
    pub meta: QueryMeta,
    pub data: ReadData,
}

/// The writes: proposed through Raft on the leader.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteRequest {
    /// `PUT /v1/catalog/register` (built by [`crate::store::registration`]).
    Register(RegisterRequest),
    /// `PUT /v1/catalog/deregister`.
    Deregister(DeregisterRequest),
    /// KV set (with flags), CAS set, delete, CAS delete, delete-tree.
    Kv(KvOp),
    /// `PUT /v1/snapshot`: replace the whole store with a snapshot image (verified by the
    /// edge; replicated as one command, so it must fit `codec::MAX_COMMAND_BYTES`).
    Restore { image: Vec<u8> },
    /// `PUT /v1/session/create` (the edge chose the ID), `destroy/:id`.
    Session(SessionOp),
    /// `PUT /v1/session/renew/:id`: answered by the LEADER without a log entry (as
    /// Consul's `Session.Renew`): it resets the session's TTL timer and answers a read
    /// ([`ReadData::Sessions`] with the session), or `NotFound("Session id '<id>' not
    /// found")`. A write so that followers and client agents forward it to the leader.
    SessionRenew { id: String },
    /// `PUT /v1/txn` with at least one write verb, validated by the edge.
    Txn(Vec<TxnOp>),
}

/// How a write ended when it was applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOutcome {
    /// The write took effect (answered `true`).
    Done,
    /// A conditional write: whether its condition held.
    Bool(bool),
    /// A transaction's results, or its failing operations (nothing changed).
    Txn(TxnOutcome),
}

/// Cluster facts a server answers without reading the store, and the operator's Raft
/// requests (answered by the leader, like Consul's `Operator.*` RPCs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InfoRequest {
    /// `/v1/catalog/datacenters` → [`InfoData::Datacenters`].
    Datacenters,
    /// `/v1/status/leader` → [`InfoData::Leader`].
    Leader,
    /// `/v1/status/peers` → [`InfoData::Peers`].
    Peers,
    /// `/v1/operator/raft/configuration` → [`InfoData::RaftConfiguration`]; `stale`:
    /// any server answers from its own log.
    RaftConfiguration { stale: bool },
    /// `/v1/operator/autopilot/health` → [`InfoData::AutopilotHealth`].
    AutopilotHealth,
    /// `DELETE /v1/operator/raft/peer` → [`InfoData::PeerRemoved`] once committed.
    RemoveRaftPeer(PeerSelector),
}

impl InfoRequest {
    /// Operator requests need the Raft group (and the agent's autopilot): a server
    /// answers them through its operator endpoint, on the leader unless stale.
    pub fn is_operator(&self) -> bool {
        matches!(
            self,
            InfoRequest::RaftConfiguration { .. }
                | InfoRequest::AutopilotHealth
                | InfoRequest::RemoveRaftPeer(_)
        )
    }

    /// Whether only the leader may answer.
    pub fn needs_leader(&self) -> bool {
        match self {
            InfoRequest::RaftConfiguration { stale } => !stale,
            InfoRequest::AutopilotHealth | InfoRequest::RemoveRaftPeer(_) => true,
            InfoRequest::Datacenters | InfoRequest::Leader | InfoRequest::Peers => false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum InfoData {
    Datacenters(Vec<String>),
    /// The leader's server address, `None` when no leader is known.
    Leader(Option<String>),
    /// Voter server addresses.
    Peers(Vec<String>),
    RaftConfiguration(RaftConfigurationInfo),
    AutopilotHealth(AutopilotHealthInfo),
    PeerRemoved,
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Read(ReadResponse),
    Write(WriteOutcome),
    Info(InfoData),
}

/// One answer: what travels back for one [`Request`].
pub type Answer = Result<Response, RequestError>;

/// Largest encoded request accepted: a command plus its options.
pub const MAX_REQUEST_BYTES: usize = codec::MAX_COMMAND_BYTES + 64 * 1024;
/// Largest encoded answer accepted (a big catalog read).
pub const MAX_ANSWER_BYTES: usize = codec::MAX_DECODE_BYTES;

/// Format version every request and answer frame starts with (`u16`, little endian).
/// A peer speaking another version gets a decode error naming both versions.
pub const WIRE_VERSION: u16 = 1;
const VERSION_BYTES: usize = 2;

fn encode_frame<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let body = codec::encode(value)?;
    let mut frame = Vec::with_capacity(VERSION_BYTES + body.len());
    frame.extend_from_slice(&WIRE_VERSION.to_le_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

fn decode_frame<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, CodecError> {
    // Size first: a huge frame is refused before anything in it is looked at.
    let limit = limit.saturating_add(VERSION_BYTES);
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    let Some((version, body)) = bytes.split_first_chunk::<VERSION_BYTES>() else {
        return Err(CodecError::Decode(
            "frame too short for its format version".into(),
        ));
    };
    let version = u16::from_le_bytes(*version);
    if version != WIRE_VERSION {
        return Err(CodecError::Decode(format!(
            "unknown wire format version {version} (this build speaks {WIRE_VERSION})"
        )));
    }
    codec::decode(body, limit)
}

pub fn encode_request(request: &Request) -> Result<Vec<u8>, CodecError> {
    encode_frame(request)
}

pub fn decode_request(bytes: &[u8]) -> Result<Request, CodecError> {
    decode_frame(bytes, MAX_REQUEST_BYTES)
}

pub fn encode_answer(answer: &Answer) -> Result<Vec<u8>, CodecError> {
    encode_frame(answer)
}

pub fn decode_answer(bytes: &[u8]) -> Result<Answer, CodecError> {
    decode_frame(bytes, MAX_ANSWER_BYTES)
}

impl Response {
    /// The read answer, or an internal error when the endpoint answered another kind
    /// (a bug or a version mismatch, never the client's fault).
    pub fn into_read(self) -> Result<ReadResponse, RequestError> {
        match self {
            Response::Read(r) => Ok(r),
            other => Err(RequestError::unexpected(&other)),
        }
    }

    pub fn into_write(self) -> Result<WriteOutcome, RequestError> {
        match self {
            Response::Write(w) => Ok(w),
            other => Err(RequestError::unexpected(&other)),
        }
    }

    pub fn into_info(self) -> Result<InfoData, RequestError> {
        match self {
            Response::Info(i) => Ok(i),
            other => Err(RequestError::unexpected(&other)),
        }
    }
}
