//! The one request path: an edge asks an [`Endpoint`] a typed [`Request`] and gets a
//! typed answer. On a server the endpoint answers from the local store (reads) or by
//! proposing a command (writes): [`ServerEndpoint`]. A client agent's endpoint (sending
//! the same requests to a server) and a follower's (forwarding to the leader) implement
//! the same trait later, so no edge changes when they arrive.
//!
//! The consistency policy lives here (see [`policy`]): which reads need a leader, the
//! new leader's catch-up, blocking on `?index` with Consul's jittered wait, and the meta
//! every answer carries. Answers are owned rows built while the store is read; nothing
//! borrowed from the store outlives that, so edges render without holding any lock.

pub mod policy;
mod server;
#[cfg(test)]
pub(crate) mod tests;

pub use server::{from_write_error, ServerEndpoint, ViewEndpoint, NO_OPERATOR_TEXT};

use futures::future::BoxFuture;
use protocol::api::{
    Answer, InfoData, InfoRequest, QueryOptions, Read, ReadRequest, ReadResponse, Request,
    RequestError, WriteOutcome, WriteRequest,
};
use std::sync::Arc;

/// Answers typed requests. `Send + Sync`: one endpoint serves every HTTP worker and DNS
/// task of an agent.
pub trait Endpoint: Send + Sync + 'static {
    /// Answer one request (may wait: leader catch-up, blocking reads, Raft commits).
    fn ask(&self, request: Request) -> BoxFuture<'_, Answer>;

    /// Answer at once, without waiting, when this endpoint can (a server's stale,
    /// non-blocking reads from its local store); `None`: use [`Endpoint::ask`]. DNS uses
    /// this so a query costs no future, no task switch and no allocation beyond its rows.
    fn ask_now(&self, request: &Request) -> Option<Answer> {
        let _ = request;
        None
    }
}

/// A shared endpoint is an endpoint: an agent can keep its own handle (diagnostics,
/// updating a client's server list) to the endpoint it gives the edges.
impl<E: Endpoint> Endpoint for Arc<E> {
    fn ask(&self, request: Request) -> BoxFuture<'_, Answer> {
        E::ask(self, request)
    }

    fn ask_now(&self, request: &Request) -> Option<Answer> {
        E::ask_now(self, request)
    }
}

/// A cheap, cloneable handle to the agent's endpoint: what `AgentContext` holds.
#[derive(Clone)]
pub struct Api(Arc<dyn Endpoint>);

impl Api {
    pub fn new(endpoint: impl Endpoint) -> Api {
        Api(Arc::new(endpoint))
    }

    pub async fn ask(&self, request: Request) -> Answer {
        self.0.ask(request).await
    }

    pub fn ask_now(&self, request: &Request) -> Option<Answer> {
        self.0.ask_now(request)
    }

    /// A read, answered with its rows and meta.
    pub async fn read(
        &self,
        options: QueryOptions,
        read: Read,
    ) -> Result<ReadResponse, RequestError> {
        self.ask(Request::Read(ReadRequest { options, read }))
            .await?
            .into_read()
    }

    /// A stale, non-blocking read answered without waiting when possible (DNS).
    pub async fn read_stale(&self, read: Read) -> Result<ReadResponse, RequestError> {
        let request = Request::Read(ReadRequest {
            options: QueryOptions::stale(),
            read,
        });
        match self.ask_now(&request) {
            Some(answer) => answer?.into_read(),
            None => self.ask(request).await?.into_read(),
        }
    }

    /// A write, answered once it is applied.
    pub async fn write(&self, write: WriteRequest) -> Result<WriteOutcome, RequestError> {
        self.ask(Request::Write(write)).await?.into_write()
    }

    pub async fn info(&self, info: InfoRequest) -> Result<InfoData, RequestError> {
        self.ask(Request::Info(info)).await?.into_info()
    }
}

impl From<ServerEndpoint> for Api {
    fn from(endpoint: ServerEndpoint) -> Api {
        Api::new(endpoint)
    }
}
