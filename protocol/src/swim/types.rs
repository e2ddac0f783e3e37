//! Data the SWIM core exchanges with its shell and its peers: member records, the
//! gossip updates piggybacked on packets, the wire messages, and the events.

use crate::codec::{self, CodecError};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// A member's metadata (Consul's serf tags: role, dc, port, expect, id, vsn, build ...).
pub type Tags = BTreeMap<String, String>;

/// Tags as members, rumours and events carry them: shared, since the same set is
/// copied into every retransmission and event (an `Arc` encodes as the map itself).
pub type SharedTags = Arc<Tags>;

/// How many times a member has refuted rumours about itself (or changed its own record).
/// Only the member itself raises it; a higher number always wins over a lower one.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Incarnation(pub u64);

impl std::fmt::Display for Incarnation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A member's state as one node sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MemberStatus {
    Alive,
    /// Missed a probe; declared Dead unless it refutes before its suspicion times out.
    Suspect,
    /// Failed: declared dead by someone else (Consul's "failed").
    Dead,
    /// Left on purpose (its own dead message), or force-left by an operator.
    Left,
}

impl MemberStatus {
    pub fn is_dead_or_left(self) -> bool {
        matches!(self, MemberStatus::Dead | MemberStatus::Left)
    }
}

/// The gossip protocol versions a member speaks (memberlist's pmin/pmax/pcur).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProtocolVersion {
    pub min: u8,
    pub max: u8,
    pub current: u8,
}

/// The one version this core speaks.
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion {
    min: 1,
    max: 1,
    current: 1,
};

/// One member as seen from here (the row of `agent/members`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub addr: SocketAddr,
    pub incarnation: Incarnation,
    pub status: MemberStatus,
    pub tags: SharedTags,
    pub protocol: ProtocolVersion,
}

/// A rumour about one member, piggybacked on packets and kept in the broadcast queue
/// until retransmitted enough. A newer rumour about a node replaces the older one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Update {
    /// `node` is alive at `incarnation` with this address and record.
    Alive {
        node: String,
        incarnation: Incarnation,
        addr: SocketAddr,
        tags: SharedTags,
        protocol: ProtocolVersion,
    },
    /// `from` suspects `node` (a distinct `from` is an independent confirmation).
    Suspect {
        node: String,
        incarnation: Incarnation,
        from: String,
    },
    /// `from` declares `node` dead; `from == node` means it left gracefully.
    Dead {
        node: String,
        incarnation: Incarnation,
        from: String,
    },
    /// An operator force-left a failed `node` (serf's leave intent for a failed member):
    /// it becomes Left everywhere, and with `prune` it is forgotten at once.
    ForceLeave {
        node: String,
        incarnation: Incarnation,
        prune: bool,
    },
    /// serf's user event: an application message spread to every member, stamped with
    /// the sender's event Lamport time (see `swim/user_events.rs`).
    UserEvent {
        ltime: u64,
        name: String,
        payload: Vec<u8>,
    },
}

impl Update {
    /// The broadcast queue's invalidation key: a newer rumour about the same member
    /// replaces the queued one; every user event is its own (ltime, name, payload).
    pub fn queue_key(&self) -> std::borrow::Cow<'_, str> {
        match self {
            Update::Alive { node, .. }
            | Update::Suspect { node, .. }
            | Update::Dead { node, .. }
            | Update::ForceLeave { node, .. } => std::borrow::Cow::Borrowed(node),
            // NUL never starts a member name that came through a config or flag.
            Update::UserEvent {
                ltime,
                name,
                payload,
            } => std::borrow::Cow::Owned(format!(
                "\0event\0{ltime}\0{name}\0{:08x}",
                crc32fast::hash(payload)
            )),
        }
    }
}

/// One member's full record in a push-pull exchange.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushState {
    pub name: String,
    pub addr: SocketAddr,
    pub incarnation: Incarnation,
    pub status: MemberStatus,
    pub tags: SharedTags,
    pub protocol: ProtocolVersion,
}

/// Messages between members. Each datagram-sized message carries piggybacked updates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A direct probe. `target` is the name we believe lives at the address, so a node
    /// restarted under another name at the same address does not ack for the old one.
    Ping {
        seq: u32,
        target: String,
        piggyback: Vec<Update>,
    },
    /// Please probe `target` for me and relay its ack (and, with `nack`, tell me if it
    /// did not answer within your probe timeout: Lifeguard's nack).
    IndirectPing {
        seq: u32,
        target: String,
        target_addr: SocketAddr,
        nack: bool,
        piggyback: Vec<Update>,
    },
    Ack {
        seq: u32,
        piggyback: Vec<Update>,
    },
    /// The relay's target did not answer in time: the relay itself is alive and
    /// reachable, so the missed ack is less likely our own fault.
    Nack {
        seq: u32,
    },
    /// Periodic dissemination of queued updates.
    Gossip {
        updates: Vec<Update>,
    },
    /// A full state exchange (always over the stream transport). The receiver of a
    /// request (`reply == false`) answers with its own state, then merges.
    PushPull {
        join: bool,
        reply: bool,
        states: Vec<PushState>,
    },
    /// The user events of the sender's dedupe window (always over the stream
    /// transport), sent after a push-pull so a member that missed an event's gossip
    /// still gets it (serf carries them inside its push-pull). `from` is the sender's
    /// gossip address: with `ask_back` the receiver answers with its own window there.
    UserEventSync {
        from: SocketAddr,
        ask_back: bool,
        events: Vec<Update>,
    },
}

/// Which transport the shell must use for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// One UDP datagram.
    Datagram,
    /// A TCP connection (length-prefixed frame).
    Stream,
}

/// Bytes of one datagram we send (memberlist's UDP budget, safe under common MTUs).
pub const UDP_PACKET_BUDGET: usize = 1400;
/// Largest datagram we accept: the largest UDP payload.
pub const MAX_DATAGRAM_BYTES: usize = 65_507;
/// Largest stream message we accept (a push-pull of a very large cluster).
pub const MAX_STREAM_BYTES: usize = 16 * 1024 * 1024;
/// Largest encoded tag set (memberlist's MetaMaxSize).
pub const MAX_TAGS_BYTES: usize = 512;

impl Message {
    /// Push-pull always goes over the stream transport, as does anything whose encoding
    /// exceeds [`UDP_PACKET_BUDGET`]; everything else is one datagram.
    pub fn transport(&self) -> Transport {
        if matches!(
            self,
            Message::PushPull { .. } | Message::UserEventSync { .. }
        ) || self.encoded_len() > UDP_PACKET_BUDGET
        {
            Transport::Stream
        } else {
            Transport::Datagram
        }
    }

    /// The encoded size in bytes (through the one codec).
    pub fn encoded_len(&self) -> usize {
        // Encoding plain data into a Vec cannot fail below the codec's limit.
        codec::encode(self).map_or(usize::MAX, |b| b.len())
    }

    pub fn encode(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self)
    }

    /// Decode what arrived over `transport`, bounded by that transport's limit.
    pub fn decode(bytes: &[u8], transport: Transport) -> Result<Message, CodecError> {
        let limit = match transport {
            Transport::Datagram => MAX_DATAGRAM_BYTES,
            Transport::Stream => MAX_STREAM_BYTES,
        };
        codec::decode(bytes, limit)
    }
}

/// What the SWIM core tells its shell (`Effect::Notify`), in the order it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwimEvent {
    /// A member we did not know (including ourselves, at start).
    MemberJoined(Member),
    /// A known alive member changed its tags, address or protocol versions.
    MemberUpdated(Member),
    /// A member missed a probe and is now suspected.
    MemberSuspect(Member),
    /// A suspected member refuted the suspicion and is alive again.
    MemberAlive(Member),
    /// A member was declared dead (Consul's "failed").
    MemberFailed(Member),
    /// A member left gracefully or was force-left.
    MemberLeft(Member),
    /// A failed or left member came back (serf reports this as a join).
    MemberRecovered(Member),
    /// A failed or left member was forgotten (reconnect or tombstone timeout, or prune).
    MemberReaped(Member),
    /// The outcome of joining through `addr`: a push-pull reply arrived (ok) or the
    /// stream failed or timed out.
    JoinResult { addr: SocketAddr, ok: bool },
    /// Our leave message has been gossiped its full number of times (or there was no
    /// one to tell): the shell may stop the node.
    LeaveComplete,
    /// A user event seen for the first time (fired here, or received through gossip).
    UserEvent {
        ltime: u64,
        name: String,
        payload: Vec<u8>,
    },
}

/// Why a force-leave was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForceLeaveError {
    #[error("no member named {0}")]
    UnknownMember(String),
    #[error("member {0} is not failed (only failed or left members can be force-left)")]
    NotFailed(String),
}

/// Why new tags were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagsError {
    #[error("encoded tags take {len} bytes, more than the limit of {limit}")]
    TooLarge { len: usize, limit: usize },
}
