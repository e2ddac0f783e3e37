//! The endpoint of a server: reads from the local store under the consistency policy,
//! writes through Raft.

use super::policy::{
    check_read_allowed, jittered, must_wait_for_catch_up, ready, LEADER_CATCH_UP_WAIT,
};
use super::Endpoint;
use crate::session_ttl::SessionTimers;
use crate::{ReadView, ServerHandle, WriteError};
use futures::future::BoxFuture;
use futures::FutureExt;
use protocol::api::answer::{read_data, read_index, PrefixIndexWatch};
use protocol::api::watch::watch_key;
use protocol::api::{
    Answer, Consistency, InfoData, InfoRequest, QueryMeta, Read, ReadData, ReadRequest,
    ReadResponse, Request, RequestError, Response, WriteOutcome, WriteRequest,
    FILTER_UNSUPPORTED_TEXT,
};
use protocol::store::{Command, CommandResult, Store, Table};
use std::sync::Arc;

/// Answers from this server's store and Raft group. Cheap to clone.
#[derive(Clone)]
pub struct ServerEndpoint {
    server: ServerHandle,
    datacenter: Arc<str>,
    /// Answers the operator requests ([`InfoRequest::is_operator`]): they need the
    /// agent's gossip and autopilot, which live above this crate.
    operator: Option<Arc<dyn Endpoint>>,
    /// The session TTL timers this server runs while it leads (renew resets them).
    session_timers: SessionTimers,
}

/// Without an operator endpoint (tests, tools), operator requests get this.
pub const NO_OPERATOR_TEXT: &str = "operator requests are not served by this endpoint";

impl ServerEndpoint {
    pub fn new(server: ServerHandle, datacenter: &str) -> ServerEndpoint {
        ServerEndpoint {
            server,
            datacenter: datacenter.into(),
            operator: None,
            session_timers: SessionTimers::new(),
        }
    }

    /// Renews reset `timers` (the ones the agent runs with [`SessionTimers::run`]).
    pub fn with_session_timers(mut self, timers: SessionTimers) -> ServerEndpoint {
        self.session_timers = timers;
        self
    }

    /// Operator requests go to `operator`.
    pub fn with_operator(mut self, operator: Arc<dyn Endpoint>) -> ServerEndpoint {
        self.operator = Some(operator);
        self
    }

    /// Meta from the published status: a pointer copy, no clone of the voter list.
    fn meta(&self, index: u64, consistency: Consistency) -> QueryMeta {
        let leadership = self.server.leadership();
        QueryMeta {
            index,
            known_leader: leadership.known_leader,
            last_contact_ms: leadership.last_contact_ms.unwrap_or(0),
            consistency,
        }
    }

    /// Wait (bounded) until this server may answer a read in `mode`.
    async fn catch_up(&self, mode: Consistency) -> Result<(), RequestError> {
        let mut applied = self.server.applied();
        let deadline = tokio::time::Instant::now() + LEADER_CATCH_UP_WAIT;
        loop {
            let now_applied = *applied.borrow_and_update();
            let (status, _) = self.server.status_snapshot();
            check_read_allowed(&status, mode)?;
            if !must_wait_for_catch_up(&status, mode, now_applied) {
                return Ok(());
            }
            match tokio::time::timeout_at(deadline, applied.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Err(RequestError::NoLeader),
            }
        }
    }

    /// A stale read that needs no waiting, answered inline.
    fn read_now(&self, request: &ReadRequest) -> Answer {
        let mode = request.options.consistency;
        let (index, data) = answer_from(&self.server.view().look(), &request.read);
        Ok(read_response(self.meta(index, mode), data))
    }

    async fn read(&self, request: ReadRequest) -> Answer {
        refuse_filters(&request)?;
        let ReadRequest { options, read } = request;
        let mode = options.consistency;
        self.catch_up(mode).await?;
        if read == Read::Snapshot {
            self.confirm_leadership(mode).await?;
            return self.snapshot(mode).await;
        }
        if options.min_index > 0 {
            // Block until the result moves past the client's index (or the wait ends);
            // the answer itself is read below, after the consistency check.
            let deadline = tokio::time::Instant::now() + jittered(options.effective_wait());
            let mut watch = PrefixIndexWatch::new();
            self.server
                .view()
                .wait_for(deadline, |store, expired| {
                    let index = read_index(store, &read, &mut watch);
                    if expired || ready(options.min_index, index, store.last_index()) {
                        Ok(())
                    } else {
                        Err(watch_key(store, &read))
                    }
                })
                .await;
        }
        self.confirm_leadership(mode).await?;
        let mut watch = PrefixIndexWatch::new();
        let (index, data) = {
            let store = self.server.view().read();
            (
                read_index(&store, &read, &mut watch),
                read_data(&store, &read),
            )
        };
        Ok(read_response(self.meta(index, mode), data))
    }

    /// Make a read in `mode` linearizable (see [`super::policy`]): default reads on a
    /// leader holding its lease go ahead at once; otherwise (and always for
    /// `consistent`) a ReadIndex round confirms leadership with a quorum and the read
    /// waits until the store has applied the index it names.
    async fn confirm_leadership(&self, mode: Consistency) -> Result<(), RequestError> {
        match mode {
            Consistency::Stale => return Ok(()),
            Consistency::Leader if self.server.lease_held() => return Ok(()),
            Consistency::Leader | Consistency::Consistent => {}
        }
        let deadline = tokio::time::Instant::now() + LEADER_CATCH_UP_WAIT;
        let index = tokio::time::timeout_at(deadline, self.server.read_index())
            .await
            .ok()
            .flatten()
            .ok_or(RequestError::NoLeader)?;
        let mut applied = self.server.applied();
        while *applied.borrow_and_update() < index {
            match tokio::time::timeout_at(deadline, applied.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return Err(RequestError::NoLeader),
            }
        }
        Ok(())
    }

    /// The whole store's image, encoded off the async workers (a big store takes a
    /// while), with the term this server is in. Never blocks on an index.
    async fn snapshot(&self, mode: Consistency) -> Answer {
        let store = self.server.view().read();
        let term = self.server.status_snapshot().0.term;
        let encoded = tokio::task::spawn_blocking(move || {
            let index = store.last_index();
            (index, read_data(&store, &Read::Snapshot))
        })
        .await;
        let (index, mut data) = encoded
            .map_err(|e| RequestError::internal(format!("snapshot encoding stopped: {e}")))?;
        if let ReadData::Snapshot(Ok(image)) = &mut data {
            image.term = term;
        }
        Ok(read_response(self.meta(index, mode), data))
    }

    /// `session/renew/:id` on the leader (Consul's `Session.Renew`): no log entry; the
    /// session's timer restarts and the session is the answer.
    async fn renew(&self, id: String) -> Answer {
        self.catch_up(Consistency::Leader).await?;
        let store = self.server.view().read();
        let Some(session) = store.session_get(&id).cloned() else {
            return Err(RequestError::NotFound(format!(
                "Session id '{id}' not found"
            )));
        };
        self.session_timers.renew(&id, session.ttl_ms);
        let index = store.table_index(Table::Sessions);
        let meta = self.meta(index, Consistency::Leader);
        Ok(read_response(meta, ReadData::Sessions(vec![session])))
    }

    async fn write(&self, write: WriteRequest) -> Answer {
        let cmd = match write {
            WriteRequest::SessionRenew { id } => return self.renew(id).await,
            WriteRequest::Register(r) => Command::Register(r),
            WriteRequest::Deregister(d) => Command::Deregister(d),
            WriteRequest::Kv(op) => Command::Kv(op),
            WriteRequest::Restore { image } => Command::Restore { image },
            WriteRequest::Session(op) => Command::Session(op),
        };
        let result = self.server.propose(cmd).await;
        match result.map_err(from_write_error)? {
            CommandResult::Done => Ok(Response::Write(WriteOutcome::Done)),
            CommandResult::Bool(b) => Ok(Response::Write(WriteOutcome::Bool(b))),
            CommandResult::Rejected(text) => Err(RequestError::Internal(text)),
        }
    }

    fn info(&self, info: &InfoRequest) -> Answer {
        let data = match info {
            InfoRequest::Datacenters => InfoData::Datacenters(vec![self.datacenter.to_string()]),
            InfoRequest::Leader => {
                InfoData::Leader(self.server.status_snapshot().0.leader_addr.clone())
            }
            InfoRequest::Peers => InfoData::Peers(
                self.server
                    .status_snapshot()
                    .0
                    .voters
                    .iter()
                    .map(|(_, addr)| addr.clone())
                    .collect(),
            ),
            InfoRequest::RaftConfiguration { .. }
            | InfoRequest::AutopilotHealth
            | InfoRequest::RemoveRaftPeer(_) => {
                return Err(RequestError::internal(NO_OPERATOR_TEXT))
            }
        };
        Ok(Response::Info(data))
    }
}

impl Endpoint for ServerEndpoint {
    fn ask(&self, request: Request) -> BoxFuture<'_, Answer> {
        match request {
            Request::Read(read) => self.read(read).boxed(),
            Request::Write(write) => self.write(write).boxed(),
            Request::Info(info) if info.is_operator() => match &self.operator {
                Some(operator) => operator.ask(Request::Info(info)),
                None => futures::future::ready(self.info(&info)).boxed(),
            },
            Request::Info(info) => futures::future::ready(self.info(&info)).boxed(),
        }
    }

    fn ask_now(&self, request: &Request) -> Option<Answer> {
        match request {
            Request::Read(read) if answerable_now(read) => Some(self.read_now(read)),
            Request::Info(info) if !info.is_operator() => Some(self.info(info)),
            _ => None,
        }
    }
}

/// Stale, non-blocking and unfiltered: nothing to wait for and nothing to refuse.
fn answerable_now(read: &ReadRequest) -> bool {
    let o = &read.options;
    // A snapshot encodes the whole store: never inline on a caller's thread.
    let cheap = read.read != Read::Snapshot;
    cheap && o.consistency == Consistency::Stale && o.min_index == 0 && o.filter.is_none()
}

fn refuse_filters(read: &ReadRequest) -> Result<(), RequestError> {
    match read.options.filter {
        Some(_) => Err(RequestError::bad_request(FILTER_UNSUPPORTED_TEXT)),
        None => Ok(()),
    }
}

/// The rows and their index, from one look at the store.
fn answer_from(store: &Store, read: &Read) -> (u64, ReadData) {
    let index = read_index(store, read, &mut PrefixIndexWatch::new());
    (index, read_data(store, read))
}

fn read_response(meta: QueryMeta, data: ReadData) -> Response {
    Response::Read(ReadResponse { meta, data })
}

/// Raft's write errors as request errors, with the same texts.
pub fn from_write_error(e: WriteError) -> RequestError {
    match e {
        WriteError::NoLeader => RequestError::NoLeader,
        WriteError::LeadershipLost => RequestError::LeadershipLost,
        WriteError::Timeout => RequestError::Timeout,
        WriteError::Storage(text) => RequestError::Storage(text),
        WriteError::ShuttingDown => RequestError::ShuttingDown,
        e @ (WriteError::Encode(_) | WriteError::OutcomeUnknown(_)) => {
            RequestError::Internal(e.to_string())
        }
        WriteError::TooLarge { len, limit } => RequestError::CommandTooLarge {
            len: len as u64,
            limit: limit as u64,
        },
    }
}

/// A store with no Raft group around it (a published view alone): answers every read
/// as stale and at once, and refuses what needs a leader. Tools and tests that hold only
/// a view (the DNS edge's tests) use it.
#[derive(Clone)]
pub struct ViewEndpoint {
    view: ReadView,
}

impl ViewEndpoint {
    pub fn new(view: ReadView) -> ViewEndpoint {
        ViewEndpoint { view }
    }

    fn answer(&self, request: &Request) -> Answer {
        match request {
            Request::Read(read) => {
                refuse_filters(read)?;
                if read.options.consistency != Consistency::Stale {
                    return Err(RequestError::NoLeader);
                }
                let (index, data) = answer_from(&self.view.read(), &read.read);
                let meta = QueryMeta {
                    index,
                    consistency: Consistency::Stale,
                    ..QueryMeta::default()
                };
                Ok(read_response(meta, data))
            }
            Request::Write(_) => Err(RequestError::NoLeader),
            Request::Info(InfoRequest::Datacenters) => {
                Ok(Response::Info(InfoData::Datacenters(Vec::new())))
            }
            Request::Info(InfoRequest::Leader) => Ok(Response::Info(InfoData::Leader(None))),
            Request::Info(InfoRequest::Peers) => Ok(Response::Info(InfoData::Peers(Vec::new()))),
            Request::Info(_) => Err(RequestError::internal(NO_OPERATOR_TEXT)),
        }
    }
}

impl Endpoint for ViewEndpoint {
    fn ask(&self, request: Request) -> BoxFuture<'_, Answer> {
        futures::future::ready(self.answer(&request)).boxed()
    }

    fn ask_now(&self, request: &Request) -> Option<Answer> {
        Some(self.answer(request))
    }
}

impl From<ReadView> for super::Api {
    fn from(view: ReadView) -> super::Api {
        super::Api::new(ViewEndpoint::new(view))
    }
}
