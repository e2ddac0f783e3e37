//! Frames of the Raft stream on the server port (the connection's first byte is
//! `StreamKind::Raft`, `'R'`): one-way messages between servers, length-delimited by the
//! transport, each one versioned codec value.
//!
//! A frame names its sender and the address it answers on, because replies travel on
//! the receiver's own outgoing connection to the sender, and a server that has not yet
//! learned the configuration (it is being caught up by a leader) must still be able to
//! answer. Pure data: the sockets live in `actors::peer_net`.

use super::types::Message;
use crate::codec::{self, CodecError, MAX_DECODE_BYTES};
use crate::ids::ServerId;
use serde::{Deserialize, Serialize};

/// The format version every Raft frame starts with (`u16`, little endian).
pub const RAFT_WIRE_VERSION: u16 = 1;
const VERSION_BYTES: usize = 2;

/// Longest Raft frame: one codec value ([`MAX_DECODE_BYTES`], 64 MiB) plus its version.
/// An `InstallSnapshot` travels as one frame for now, so a snapshot image larger than
/// this cannot be sent (chunking is left for later).
pub const MAX_RAFT_FRAME_BYTES: usize = MAX_DECODE_BYTES + VERSION_BYTES;

/// One Raft message with its sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftFrame {
    pub from: ServerId,
    /// `ip:port` of the sender's server port.
    pub from_addr: String,
    pub msg: Message,
}

pub fn encode_raft_frame(frame: &RaftFrame) -> Result<Vec<u8>, CodecError> {
    let body = codec::encode(frame)?;
    let mut bytes = Vec::with_capacity(VERSION_BYTES + body.len());
    bytes.extend_from_slice(&RAFT_WIRE_VERSION.to_le_bytes());
    bytes.extend_from_slice(&body);
    if bytes.len() > MAX_RAFT_FRAME_BYTES {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            limit: MAX_RAFT_FRAME_BYTES,
        });
    }
    Ok(bytes)
}

/// Decode one frame; an unknown version, garbage, trailing bytes or an oversized frame
/// are errors (the connection is closed), never panics.
pub fn decode_raft_frame(bytes: &[u8]) -> Result<RaftFrame, CodecError> {
    if bytes.len() > MAX_RAFT_FRAME_BYTES {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            limit: MAX_RAFT_FRAME_BYTES,
        });
    }
    let Some((version, body)) = bytes.split_first_chunk::<VERSION_BYTES>() else {
        return Err(CodecError::Decode(
            "raft frame too short for its format version".into(),
        ));
    };
    let version = u16::from_le_bytes(*version);
    if version != RAFT_WIRE_VERSION {
        return Err(CodecError::Decode(format!(
            "unknown raft wire format version {version} (this build speaks {RAFT_WIRE_VERSION})"
        )));
    }
    codec::decode(body, MAX_DECODE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{LogIndex, Term};
    use crate::raft::{Entry, Payload, SnapshotMeta};

    fn frame(msg: Message) -> RaftFrame {
        RaftFrame {
            from: ServerId("a".into()),
            from_addr: "127.0.0.1:8300".into(),
            msg,
        }
    }

    #[test]
    fn every_message_kind_round_trips() {
        let messages = vec![
            Message::RequestVote {
                term: Term(3),
                candidate: ServerId("a".into()),
                last_log_index: LogIndex(7),
                last_log_term: Term(2),
                pre_vote: true,
            },
            Message::RequestVoteReply {
                term: Term(3),
                granted: true,
                pre_vote: false,
            },
            Message::AppendEntries {
                term: Term(3),
                leader: ServerId("a".into()),
                prev_log_index: LogIndex(1),
                prev_log_term: Term(1),
                entries: vec![Entry {
                    term: Term(3),
                    index: LogIndex(2),
                    payload: Payload::Command(vec![1, 2, 3]),
                }],
                leader_commit: LogIndex(1),
            },
            Message::AppendEntriesReply {
                term: Term(3),
                success: false,
                match_index: LogIndex(0),
                last_log_index: LogIndex(9),
            },
            Message::InstallSnapshot {
                term: Term(3),
                leader: ServerId("a".into()),
                meta: SnapshotMeta {
                    index: LogIndex(5),
                    term: Term(2),
                    configuration: vec![(ServerId("a".into()), "x:1".into())],
                    non_voters: vec![(ServerId("b".into()), "y:1".into())],
                },
                data: vec![9; 100],
            },
            Message::InstallSnapshotReply {
                term: Term(3),
                match_index: LogIndex(5),
            },
        ];
        for msg in messages {
            let f = frame(msg);
            let bytes = encode_raft_frame(&f).unwrap();
            assert_eq!(&bytes[..2], &RAFT_WIRE_VERSION.to_le_bytes());
            assert_eq!(decode_raft_frame(&bytes), Ok(f));
        }
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        let good = encode_raft_frame(&frame(Message::InstallSnapshotReply {
            term: Term(1),
            match_index: LogIndex(0),
        }))
        .unwrap();
        // Unknown version.
        let mut wrong = good.clone();
        wrong[0] = 9;
        assert!(
            matches!(decode_raft_frame(&wrong), Err(CodecError::Decode(t)) if t.contains("version 9"))
        );
        // Too short, truncated, trailing bytes, garbage.
        assert!(decode_raft_frame(&[1]).is_err());
        assert!(decode_raft_frame(&good[..good.len() - 1]).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode_raft_frame(&trailing), Err(CodecError::Trailing(1)));
        assert!(decode_raft_frame(&[1, 0, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        // Over the limit: refused before decoding.
        let huge = vec![0u8; MAX_RAFT_FRAME_BYTES + 1];
        assert!(matches!(
            decode_raft_frame(&huge),
            Err(CodecError::TooLarge { .. })
        ));
    }
}
