//! Data the Raft core exchanges with its shell: log entries, hard state, peer messages,
//! and the outputs the shell must execute.

use crate::ids::{LogIndex, ServerId, Term};
use serde::{Deserialize, Serialize};

/// What a log entry carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Payload {
    /// Appended by every new leader so that entries of earlier terms get committed.
    Noop,
    /// A codec-encoded `store::Command`; the core never looks inside.
    Command(Vec<u8>),
    /// The full voter set as (id, `ip:port`), effective as soon as it is in the log.
    Configuration(Vec<(ServerId, String)>),
}

impl Payload {
    /// About how many bytes this payload takes on the wire (for batch limits).
    pub fn approx_bytes(&self) -> usize {
        const OVERHEAD: usize = 32;
        OVERHEAD
            + match self {
                Payload::Noop => 0,
                Payload::Command(data) => data.len(),
                Payload::Configuration(servers) => servers
                    .iter()
                    .map(|(id, addr)| id.0.len() + addr.len() + 16)
                    .sum(),
            }
    }
}

/// One Raft log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub term: Term,
    pub index: LogIndex,
    pub payload: Payload,
}

/// Where a snapshot (or a compacted log) ends: the last index it covers, that entry's
/// term, and the voter configuration in effect at it. Index 0 means "nothing".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: LogIndex,
    pub term: Term,
    pub configuration: Vec<(ServerId, String)>,
}

/// State that must survive a restart before a vote or term is acted upon.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HardState {
    pub term: Term,
    pub voted_for: Option<ServerId>,
}

/// Raft RPCs between servers. Replies carry the sender's term so stale leaders and
/// candidates step down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// With `pre_vote`, `term` is the term the candidate WOULD start; nobody changes
    /// term or vote for a pre-vote, so a server that cannot win never disrupts others.
    RequestVote {
        term: Term,
        candidate: ServerId,
        last_log_index: LogIndex,
        last_log_term: Term,
        pre_vote: bool,
    },
    /// A granted pre-vote carries the requested term; anything else our own term.
    RequestVoteReply {
        term: Term,
        granted: bool,
        pre_vote: bool,
    },
    AppendEntries {
        term: Term,
        leader: ServerId,
        prev_log_index: LogIndex,
        prev_log_term: Term,
        entries: Vec<Entry>,
        leader_commit: LogIndex,
        /// The leader's heartbeat round (see `raft/reads.rs`), echoed in the reply.
        round: u64,
    },
    AppendEntriesReply {
        term: Term,
        success: bool,
        /// On success: the highest index the follower has DURABLY stored that matches
        /// the leader's log. Never more than what is on the follower's disk.
        match_index: LogIndex,
        /// On failure: the follower's last log index, a hint for the leader's next index.
        last_log_index: LogIndex,
        /// The `round` of the AppendEntries this answers.
        round: u64,
    },
    /// The leader's newest snapshot, for a follower that needs entries the leader has
    /// compacted away. `data` is the state machine's encoded image; the core never looks
    /// inside. (One message for the core; the transport carries it in chunks, see
    /// `snapshot_chunks`.)
    InstallSnapshot {
        term: Term,
        leader: ServerId,
        meta: SnapshotMeta,
        data: Vec<u8>,
    },
    /// Sent once the snapshot is durable on the follower. `match_index` is the snapshot
    /// index the follower now holds (0 when it refused: stale term).
    InstallSnapshotReply { term: Term, match_index: LogIndex },
}

impl Message {
    pub fn term(&self) -> Term {
        match self {
            Message::RequestVote { term, .. }
            | Message::RequestVoteReply { term, .. }
            | Message::AppendEntries { term, .. }
            | Message::AppendEntriesReply { term, .. }
            | Message::InstallSnapshot { term, .. }
            | Message::InstallSnapshotReply { term, .. } => *term,
        }
    }
}

/// One unit of work for the durable log, executed strictly in `id` order. Truncation
/// (when present) happens before the append. The shell answers with
/// [`super::Raft::on_persisted`] carrying the highest id that is durable; that covers
/// every lower id too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersistRequest {
    pub id: u64,
    /// Discard the WHOLE log first; the next entry appended is this index + 1. Only a
    /// follower installing a snapshot its log does not contain asks for this, and only
    /// after the matching `Output::RestoreSnapshot` (whose data must be durable first).
    pub reset_after: Option<LogIndex>,
    /// Remove every entry with index >= this one before appending.
    pub truncate_from: Option<LogIndex>,
    pub entries: Vec<Entry>,
    pub hard_state: Option<HardState>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Role {
    #[default]
    Follower,
    Candidate,
    Leader,
}

/// What the shell must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Persist(PersistRequest),
    Send {
        to: ServerId,
        msg: Message,
    },
    /// Entries up to this index are committed and may be applied.
    Committed {
        up_to: LogIndex,
    },
    RoleChanged {
        role: Role,
        term: Term,
        leader: Option<ServerId>,
    },
    /// The follower `to` needs entries compacted away here: send it
    /// `Message::InstallSnapshot` with this `term`, our id as leader, and the newest
    /// durable snapshot (its meta and data). The reply comes back through `on_message`.
    InstallSnapshot {
        to: ServerId,
        term: Term,
    },
    /// (Follower) a leader sent a snapshot newer than our commit index. The shell must
    /// make `data` durable in its snapshot store BEFORE executing any later `Persist`
    /// (which may discard the log), then replace the state machine with it: the applied
    /// index becomes `meta.index`. Entries after `meta.index` keep being committed
    /// through `Committed` as usual.
    RestoreSnapshot {
        meta: SnapshotMeta,
        data: Vec<u8>,
    },
    /// (Leader) read `id` (from [`super::Raft::read_index`]) is confirmed: once the
    /// state machine has applied `index`, answering it from there is linearizable.
    ReadReady {
        id: u64,
        index: LogIndex,
    },
    /// Read `id` cannot be confirmed: leadership was lost (or too many reads wait).
    ReadFailed {
        id: u64,
    },
}

/// A proposal reached a server that is not the leader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not the leader")]
pub struct NotLeader {
    pub leader: Option<ServerId>,
}
