//! Frames of the server port (8300): what a client agent and a server exchange on one
//! TCP connection to forward [`Request`]s.
//!
//! A connection starts with one byte naming its protocol ([`StreamKind`], as Consul's
//! RPC type byte does), then carries length-delimited frames. Each frame is one value of
//! this module, encoded by the crate's one codec behind the same `u16` [`WIRE_VERSION`]
//! prefix as [`super::encode_request`]. Requests are multiplexed: every frame names the
//! call it belongs to by an id the client chose, so many (long, blocking) reads share one
//! connection and answers come back in any order.
//!
//! Pure data: the sockets live in `actors::rpc`.

use super::{
    decode_frame, encode_frame, Answer, Request, MAX_ANSWER_BYTES, MAX_REQUEST_BYTES, VERSION_BYTES,
};
use crate::codec::{CodecError, MAX_DECODE_BYTES};
use serde::{Deserialize, Serialize};

/// The first byte of a connection to the server port: which protocol follows.
///
/// The values are deliberately outside the range Consul uses (0..=8), so a Consul agent
/// pointed at a cairn server is refused with a logged "unknown protocol byte" instead of
/// being half-understood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// cairn's API RPC: [`CallFrame`]s in, [`ReplyFrame`]s out.
    Api,
    /// Reserved for Raft between servers (the Raft cluster work adds its frames).
    Raft,
}

impl StreamKind {
    const API_BYTE: u8 = b'C';
    const RAFT_BYTE: u8 = b'R';

    pub fn byte(self) -> u8 {
        match self {
            StreamKind::Api => Self::API_BYTE,
            StreamKind::Raft => Self::RAFT_BYTE,
        }
    }

    /// `None`: a protocol this build does not speak (the server closes the connection).
    pub fn from_byte(byte: u8) -> Option<StreamKind> {
        match byte {
            Self::API_BYTE => Some(StreamKind::Api),
            Self::RAFT_BYTE => Some(StreamKind::Raft),
            _ => None,
        }
    }
}

/// Room for what a frame adds around its request: the call id and the enum tags.
const CALL_OVERHEAD_BYTES: usize = 64;

/// Longest client → server frame (a request of [`MAX_REQUEST_BYTES`] plus its id and
/// tags, with the version prefix): the length codec refuses anything longer unread.
pub const MAX_CALL_FRAME_BYTES: usize = MAX_REQUEST_BYTES + CALL_OVERHEAD_BYTES + VERSION_BYTES;

/// Longest server → client frame. Answers can be large reads, but never larger than the
/// codec decodes ([`MAX_DECODE_BYTES`], which is [`MAX_ANSWER_BYTES`]); a server whose
/// answer would not fit answers an error instead.
pub const MAX_REPLY_FRAME_BYTES: usize = MAX_DECODE_BYTES + VERSION_BYTES;

const _: () = assert!(MAX_ANSWER_BYTES <= MAX_DECODE_BYTES);

/// Client → server: start a call, or give one up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallFrame {
    /// Chosen by the client, unique among its calls in flight on this connection.
    pub id: u64,
    pub call: Call,
}

#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Call {
    Request(Request),
    /// The client no longer waits for call `id` (its caller went away, or its deadline
    /// passed): the server drops the work, which frees a parked blocking read at once
    /// instead of after its wait. No answer follows a cancel.
    Cancel,
}

/// Server → client: the answer to call `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyFrame {
    pub id: u64,
    pub answer: Answer,
}

pub fn encode_call(frame: &CallFrame) -> Result<Vec<u8>, CodecError> {
    encode_frame(frame)
}

/// [`encode_call`] of `CallFrame { id, call: Call::Request(request) }` without cloning
/// the request (a client encodes a large write once per attempt, from a borrow).
pub fn encode_request_call(id: u64, request: &Request) -> Result<Vec<u8>, CodecError> {
    encode_frame(&CallFrameRef {
        id,
        call: CallRef::Request(request),
    })
}

/// The borrowed twin of [`CallFrame`]: the same fields and variants in the same order,
/// so the codec writes the same bytes (a test checks it).
#[derive(Serialize)]
struct CallFrameRef<'a> {
    id: u64,
    call: CallRef<'a>,
}

#[derive(Serialize)]
enum CallRef<'a> {
    Request(&'a Request),
    #[allow(dead_code)] // keeps the variant order of `Call`
    Cancel,
}

/// Decode a client's frame; a wrong version, garbage or trailing bytes are errors.
pub fn decode_call(bytes: &[u8]) -> Result<CallFrame, CodecError> {
    decode_frame(bytes, MAX_CALL_FRAME_BYTES - VERSION_BYTES)
}

pub fn encode_reply(frame: &ReplyFrame) -> Result<Vec<u8>, CodecError> {
    encode_frame(frame)
}

/// Decode a server's frame; a wrong version, garbage or trailing bytes are errors.
pub fn decode_reply(bytes: &[u8]) -> Result<ReplyFrame, CodecError> {
    decode_frame(bytes, MAX_REPLY_FRAME_BYTES - VERSION_BYTES)
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
