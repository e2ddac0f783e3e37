//! Frames of the Raft stream on the server port (the connection's first byte is
//! `StreamKind::Raft`, `'R'`): one-way messages between servers, length-delimited by the
//! transport, each one versioned codec value.
//!
//! A frame is either a Raft message with its sender ([`RaftFrame`]) or one chunk of a
//! snapshot on its way to a follower ([`SnapshotChunk`], see `snapshot_chunks`): the
//! core's `InstallSnapshot` never crosses the wire whole, so no frame grows with the
//! store.
//!
//! A frame names its sender and the address it answers on, because replies travel on
//! the receiver's own outgoing connection to the sender, and a server that has not yet
//! learned the configuration (it is being caught up by a leader) must still be able to
//! answer. Pure data: the sockets live in `actors::peer_net`.

use super::snapshot_chunks::SnapshotChunk;
use super::types::Message;
use crate::codec::{self, CodecError, MAX_DECODE_BYTES};
use crate::ids::ServerId;
use serde::{Deserialize, Serialize};

/// The format version every Raft frame starts with (`u16`, little endian). 3: a frame
/// is a [`WireFrame`] (a message or a snapshot chunk); 2 was a bare [`RaftFrame`].
pub const RAFT_WIRE_VERSION: u16 = 3;
const VERSION_BYTES: usize = 2;

/// Longest Raft frame: one codec value ([`MAX_DECODE_BYTES`], 64 MiB) plus its version.
/// Snapshots travel in chunks far below it (`snapshot_chunks::MAX_SNAPSHOT_CHUNK_BYTES`).
pub const MAX_RAFT_FRAME_BYTES: usize = MAX_DECODE_BYTES + VERSION_BYTES;

/// One Raft message with its sender.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RaftFrame {
    pub from: ServerId,
    /// `ip:port` of the sender's server port.
    pub from_addr: String,
    pub msg: Message,
}

/// What one frame of the Raft stream carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum WireFrame {
    Message(RaftFrame),
    SnapshotChunk(SnapshotChunk),
}

/// [`WireFrame`] by reference: encodes to the same bytes without a copy of the body.
#[derive(Serialize)]
enum WireFrameRef<'a> {
    Message(&'a RaftFrame),
    SnapshotChunk(&'a SnapshotChunk),
}

fn encode_versioned(frame: &WireFrameRef<'_>) -> Result<Vec<u8>, CodecError> {
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

/// A message frame.
pub fn encode_raft_frame(frame: &RaftFrame) -> Result<Vec<u8>, CodecError> {
    encode_versioned(&WireFrameRef::Message(frame))
}

/// A snapshot chunk frame.
pub fn encode_snapshot_chunk(chunk: &SnapshotChunk) -> Result<Vec<u8>, CodecError> {
    encode_versioned(&WireFrameRef::SnapshotChunk(chunk))
}

/// Decode one frame; an unknown version, garbage, trailing bytes or an oversized frame
/// are errors (the connection is closed), never panics.
pub fn decode_wire_frame(bytes: &[u8]) -> Result<WireFrame, CodecError> {
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
                round: 7,
            },
            Message::AppendEntriesReply {
                term: Term(3),
                success: false,
                match_index: LogIndex(0),
                last_log_index: LogIndex(9),
                round: 7,
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
            assert_eq!(decode_wire_frame(&bytes), Ok(WireFrame::Message(f)));
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
            matches!(decode_wire_frame(&wrong), Err(CodecError::Decode(t)) if t.contains("version 9"))
        );
        // Too short, truncated, trailing bytes, garbage.
        assert!(decode_wire_frame(&[1]).is_err());
        assert!(decode_wire_frame(&good[..good.len() - 1]).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert_eq!(decode_wire_frame(&trailing), Err(CodecError::Trailing(1)));
        // A frame kind this version does not know.
        let mut unknown_kind = good.clone();
        unknown_kind[2] = 7;
        assert!(decode_wire_frame(&unknown_kind).is_err());
        assert!(decode_wire_frame(&[1, 0, 0xff, 0xff, 0xff, 0xff, 0xff]).is_err());
        // Over the limit: refused before decoding.
        let huge = vec![0u8; MAX_RAFT_FRAME_BYTES + 1];
        assert!(matches!(
            decode_wire_frame(&huge),
            Err(CodecError::TooLarge { .. })
        ));
    }

    fn chunk(bytes: Vec<u8>) -> SnapshotChunk {
        SnapshotChunk {
            from: ServerId("a".into()),
            from_addr: "127.0.0.1:8300".into(),
            term: Term(3),
            leader: ServerId("a".into()),
            meta: SnapshotMeta {
                index: LogIndex(5),
                term: Term(2),
                configuration: vec![(ServerId("a".into()), "x:1".into())],
                non_voters: Vec::new(),
            },
            offset: 1 << 20,
            total_len: 3 << 20,
            checksum: 0xdead_beef,
            bytes,
            last: false,
        }
    }

    #[test]
    fn snapshot_chunks_round_trip_and_their_bytes_encode_as_a_plain_byte_sequence() {
        let c = chunk((0..=255).cycle().take(70_000).collect());
        let bytes = encode_snapshot_chunk(&c).unwrap();
        assert_eq!(&bytes[..2], &RAFT_WIRE_VERSION.to_le_bytes());
        assert_eq!(
            decode_wire_frame(&bytes),
            Ok(WireFrame::SnapshotChunk(c.clone()))
        );
        // The owned enum encodes to the same bytes as the borrowed one.
        let owned = codec::encode(&WireFrame::SnapshotChunk(c.clone())).unwrap();
        assert_eq!(&bytes[2..], &owned[..]);
        // `bytes` is wire-identical to a `Vec<u8>` field (length, then the bytes).
        #[derive(Serialize)]
        struct Plain<'a>(&'a Vec<u8>);
        let plain = codec::encode(&Plain(&c.bytes)).unwrap();
        assert!(bytes.ends_with(&[&plain[..], &[0u8][..]].concat()));
    }

    #[test]
    fn a_chunk_announcing_a_huge_byte_string_is_refused_without_allocating() {
        let good = encode_snapshot_chunk(&chunk(vec![1, 2, 3])).unwrap();
        // Replace the byte string's length (varint 3, before the 3 bytes and `last`)
        // with u64::MAX.
        let cut = good.len() - 5;
        assert_eq!(good[cut], 3);
        let mut hostile = good[..cut].to_vec();
        hostile.push(253);
        hostile.extend_from_slice(&u64::MAX.to_le_bytes());
        hostile.extend_from_slice(&[1, 2, 3, 0]);
        assert!(decode_wire_frame(&hostile).is_err());
    }
}
