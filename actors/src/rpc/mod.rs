//! Forwarding requests between agents over the server port (8300).
//!
//! A client agent has no store: its [`ForwardEndpoint`] sends every [`Request`] to a
//! server, whose [`RpcServer`] asks the server's own endpoint and sends the answer back.
//! So forwarding is one place, and the wire format is the request type itself.
//!
//! ```text
//! edge ─▶ ForwardEndpoint ─▶ Pool: per server and thread ═══TCP══▶ RpcServer
//!           picks a server,     (writer task, reader task,            one task per call:
//!           retries safely       calls multiplexed by id)             api.ask(request)
//! ```
//!
//! Wire (see `protocol::api::frame`): the connection's first byte names the protocol
//! (`StreamKind`), then 4-byte big-endian length-delimited frames, each one versioned
//! codec value: `CallFrame { id, Request | Cancel }` to the server, `ReplyFrame { id,
//! Answer }` back. A frame that is too long or does not decode closes its connection.
//!
//! Every path consults the agent's [`crate::FaultRules`] per peer (test clusters only).
//!
//! [`Request`]: protocol::api::Request

mod client;
mod connection;
mod leader;
mod pool;
mod server;
mod servers;
#[cfg(test)]
mod tests;

pub use client::{ForwardEndpoint, ForwardOptions};
pub use leader::{route, LeaderForwarding, Route};
pub use server::{RpcServer, RpcServerOptions};
pub use servers::ServerList;

use tokio_util::codec::LengthDelimitedCodec;

/// The server port, as Consul's `ports.server`.
pub const DEFAULT_SERVER_PORT: u16 = 8300;

/// The frame codec of both directions: a 4-byte length, refusing frames over `max_bytes`
/// before reading them.
fn length_codec(max_bytes: usize) -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(max_bytes)
        .new_codec()
}
