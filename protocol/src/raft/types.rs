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
    /// Written by bootstrap; logs from before membership changes hold only these.
    Configuration(Vec<(ServerId, String)>),
    /// The full membership (voters and non-voters), effective as soon as it is in the
    /// log: what every membership change writes. A new variant (appended last, so the
    /// codec's variant numbers of the others are unchanged) keeps old logs decodable.
    Membership(Configuration),
}

impl Payload {
    /// The membership this entry sets, if it is a configuration entry.
    pub fn membership(&self) -> Option<Configuration> {
        match self {
            Payload::Configuration(voters) => Some(Configuration {
                voters: voters.clone(),
                non_voters: Vec::new(),
            }),
            Payload::Membership(c) => Some(c.clone()),
            Payload::Noop | Payload::Command(_) => None,
        }
    }
}

/// The servers of a Raft group as (id, `ip:port`). Voters elect and count toward the
/// commit quorum; non-voters are only replicated to (a server being caught up before
/// it is promoted, as hashicorp/raft's non-voters).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Configuration {
    pub voters: Vec<(ServerId, String)>,
    pub non_voters: Vec<(ServerId, String)>,
}

impl Configuration {
    pub fn is_voter(&self, id: &ServerId) -> bool {
        self.voters.iter().any(|(v, _)| v == id)
    }
    pub fn contains(&self, id: &ServerId) -> bool {
        self.servers().any(|(v, _)| v == id)
    }
    /// Every server, voters first.
    pub fn servers(&self) -> impl Iterator<Item = &(ServerId, String)> {
        self.voters.iter().chain(self.non_voters.iter())
    }
    pub fn address_of(&self, id: &ServerId) -> Option<&str> {
        self.servers()
            .find(|(v, _)| v == id)
            .map(|(_, addr)| addr.as_str())
    }
}

/// One membership change, proposed by the leader with [`super::Raft::propose_change`].
/// Changes go one server at a time (Raft thesis §4.1): any two majorities of the old and
/// new voter sets overlap, so no joint consensus is needed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigChange {
    /// Start replicating to a new server without giving it a vote.
    AddNonVoter { id: ServerId, addr: String },
    /// Give a non-voter its vote (once it has caught up: the caller's judgement).
    Promote { id: ServerId },
    /// Take a server out, voter or not (the leader too: it leads until the change
    /// commits, then steps down).
    Remove { id: ServerId },
    /// A member's address changed (it restarted elsewhere); its role stays.
    Readdress { id: ServerId, addr: String },
}

impl ConfigChange {
    /// The server the change is about.
    pub fn server(&self) -> &ServerId {
        match self {
            ConfigChange::AddNonVoter { id, .. }
            | ConfigChange::Promote { id }
            | ConfigChange::Remove { id }
            | ConfigChange::Readdress { id, .. } => id,
        }
    }
}

/// Why a membership change was refused (nothing was appended).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("not the leader")]
    NotLeader(NotLeader),
    /// The leader has not committed an entry of its own term yet: a change now could
    /// conflict with an uncommitted change of an earlier leader (the single-server
    /// change bug, raft-dev 2015; the fix is this wait).
    #[error("the leader has not committed an entry of its term yet; try again shortly")]
    LeaderNotReady,
    #[error("a configuration change is already in progress (index {index})")]
    ChangeInProgress { index: LogIndex },
    #[error("server {id} is already in the configuration")]
    AlreadyMember { id: ServerId },
    #[error("address {addr} is already used by server {by}")]
    AddressInUse { addr: String, by: ServerId },
    #[error("server {id} is already a voter")]
    AlreadyVoter { id: ServerId },
    #[error("server {id} is not in the configuration")]
    UnknownServer { id: ServerId },
    #[error("server {id} is the last voter and cannot be removed")]
    LastVoter { id: ServerId },
}

/// The leader's view of one server's replication, for autopilot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerProgress {
    pub id: ServerId,
    pub addr: String,
    pub voter: bool,
    /// Highest index known to be durably stored there (the leader's own: its durable
    /// index).
    pub match_index: LogIndex,
    /// When the server last answered this leader (the leader itself: now).
    pub last_contact_ms: u64,
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
                Payload::Membership(m) => m
                    .servers()
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
/// term, and the membership in effect at it (`configuration` holds the voters, the
/// name it had before non-voters existed). Index 0 means "nothing".
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub index: LogIndex,
    pub term: Term,
    pub configuration: Vec<(ServerId, String)>,
    #[serde(default)]
    pub non_voters: Vec<(ServerId, String)>,
}

impl SnapshotMeta {
    pub fn membership(&self) -> Configuration {
        Configuration {
            voters: self.configuration.clone(),
            non_voters: self.non_voters.clone(),
        }
    }
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
    /// Send these once this request (and so every earlier one) is durable, before
    /// reporting it with `on_persisted`; drop them if it fails or the server stops
    /// first. They vouch for the state this request makes durable (see
    /// `RaftConfig::replies_ride_persists`), exactly as the same messages released by
    /// `on_persisted` would; in order, and before anything the core sends after
    /// learning of this request's durability.
    pub then_send: Vec<(ServerId, Message)>,
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
    /// Entries up to this index are committed (the commit index moved). The state
    /// machine is fed through `Output::Apply`, which may follow later.
    Committed {
        up_to: LogIndex,
    },
    /// The next committed entries for the state machine, in order: the first follows
    /// the last entry of the previous `Apply` (or the snapshot the core started from,
    /// or the last `RestoreSnapshot`). Each committed entry is handed out exactly once
    /// by a core (one rebuilt under a running state machine is told what it holds with
    /// [`super::Raft::skip_applied`]).
    Apply {
        entries: Vec<Entry>,
    },
    /// Committed entries to apply are older than the log cache (after a restart the
    /// cache holds only the recovered tail). The shell reads the log store's entries
    /// `from..=up_to` as for `LoadEntries` (in order with the persists, at most
    /// `max_bytes` of payload, at least one entry) and answers with
    /// [`super::Raft::on_committed_loaded`]`(from, ..)`; the entries then leave as an
    /// `Apply`. At most one is outstanding; it is asked again after an election timeout
    /// without an answer, or a heartbeat interval after a failed one.
    LoadCommitted {
        from: LogIndex,
        up_to: LogIndex,
        max_bytes: usize,
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
    /// (Leader) follower `to` needs entries that are no longer cached (see "The log
    /// cache" in `raft/mod.rs`). The shell reads the log store's entries `from..=up_to`
    /// in order, stopping once their payloads (`Payload::approx_bytes`) exceed
    /// `max_bytes` (at least one entry), and answers with
    /// [`super::Raft::on_entries_loaded`]`(to, from, ..)`: the entries, or an error
    /// (compacted away, unreadable, store stopped). The read must run after every
    /// `Persist` emitted before this output (the shell's one ordered log queue does
    /// that), so it sees at least every entry the core knows to be durable. It may
    /// answer late (or never: the core asks again after an election timeout); the core
    /// ignores answers it no longer waits for and checks the entries against its own
    /// terms.
    LoadEntries {
        to: ServerId,
        from: LogIndex,
        up_to: LogIndex,
        max_bytes: usize,
    },
}

/// A proposal reached a server that is not the leader.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not the leader")]
pub struct NotLeader {
    pub leader: Option<ServerId>,
}
