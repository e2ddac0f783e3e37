//! The client agent's endpoint: every request goes to a server.
//!
//! Server choice: start at a random server (so many clients spread over the servers),
//! stay with one that answers, move on when it fails. A request only the leader answers
//! starts at the leader when this agent knows it (asked of a server at most every
//! [`LEADER_REFRESH`]): a follower would forward it there anyway, one hop more on every
//! write. Knowing it is only a shortcut: a stale answer costs that hop until the next
//! refresh, and a failed server is forgotten as before. Retrying is safe only where it
//! cannot apply anything twice: reads and info may be retried on the next server after
//! any connection failure; a write only if it certainly never left this agent, or if the
//! server answered "No cluster leader" (it proposed nothing).
//!
//! Every request has a deadline (its blocking wait plus Consul's wait/16 jitter plus a
//! margin, or a fixed timeout), and every failure mode ends in an answer by then: an
//! edge never hangs on a dead server.

use super::connection::CallError;
use super::pool::Pool;
use super::servers::ServerList;
use crate::endpoint::policy::LEADER_CATCH_UP_WAIT;
use crate::endpoint::Endpoint;
use crate::faults::FaultRules;
use futures::future::BoxFuture;
use futures::FutureExt;
use parking_lot::Mutex;
use protocol::api::{Answer, InfoData, InfoRequest, Request, RequestError, Response};
use rand::Rng;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// How long the leader this agent learned is trusted before it asks again.
pub const LEADER_REFRESH: Duration = Duration::from_secs(10);

/// Limits of a [`ForwardEndpoint`].
#[derive(Debug, Clone)]
pub struct ForwardOptions {
    /// Longest wait for a TCP connect to one server (Consul dials with 10 s; less, so a
    /// retry on another server still fits in a non-blocking request's budget).
    pub connect_timeout: Duration,
    /// Deadline of a non-blocking request (writes, info, reads without `?index`).
    pub request_timeout: Duration,
    /// Added to a blocking read's wait and jitter: time for the server to answer after
    /// its wait ends, and for the answer to travel.
    pub blocking_margin: Duration,
    /// Most servers one request is tried on.
    pub max_attempts: usize,
    /// Fault rules consulted per server (test clusters; none by default).
    pub faults: FaultRules,
    /// Log "no server could be reached" at WARN (a client agent: its servers are all
    /// gone). A follower forwarding to its leader turns this off: while a new leader is
    /// elected it retries every few milliseconds, and the failures are expected.
    pub warn_unreachable: bool,
}

impl Default for ForwardOptions {
    fn default() -> ForwardOptions {
        ForwardOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            blocking_margin: Duration::from_secs(10),
            max_attempts: 3,
            faults: FaultRules::default(),
            warn_unreachable: true,
        }
    }
}

/// Forwards every request to a server of a [`ServerList`]. Implements [`Endpoint`]:
/// wrap it in an `Api` for the edges.
pub struct ForwardEndpoint {
    servers: ServerList,
    pool: Pool,
    /// The server that answered last: the next request starts there.
    preferred: Mutex<Option<SocketAddr>>,
    /// When the leader was last learned (see the module docs).
    leader_learned: Mutex<Option<Instant>>,
    options: ForwardOptions,
}

impl ForwardEndpoint {
    pub fn new(servers: ServerList, options: ForwardOptions) -> ForwardEndpoint {
        ForwardEndpoint {
            servers,
            pool: Pool::new(options.connect_timeout, options.faults.clone()),
            preferred: Mutex::new(None),
            leader_learned: Mutex::new(None),
            options,
        }
    }

    /// The list this endpoint reads; gossip updates it with [`ServerList::set`].
    pub fn servers(&self) -> &ServerList {
        &self.servers
    }

    /// Servers with an open connection, in address order (diagnostics, tests).
    pub fn connected(&self) -> Vec<SocketAddr> {
        self.pool.connected()
    }

    /// Start the next request at `server` (tests make the order deterministic).
    pub fn prefer(&self, server: SocketAddr) {
        *self.preferred.lock() = Some(server);
        *self.leader_learned.lock() = Some(Instant::now());
    }

    /// Prefer the leader, asking the server we would start at which one it is, unless
    /// it was learned within [`LEADER_REFRESH`]. Nothing changes when the answer names
    /// no leader or a server outside the list (asked again next time).
    async fn learn_leader(&self, servers: &[SocketAddr], deadline: Instant) {
        if self
            .leader_learned
            .lock()
            .is_some_and(|at| at.elapsed() < LEADER_REFRESH)
        {
            return;
        }
        let ask = servers[self.first_choice(servers)];
        let answer = self
            .call(ask, &Request::Info(InfoRequest::Leader), deadline)
            .await;
        let Ok(Ok(Response::Info(InfoData::Leader(Some(leader))))) = answer else {
            return;
        };
        let Some(leader) = leader
            .parse::<SocketAddr>()
            .ok()
            .filter(|l| servers.contains(l))
        else {
            return;
        };
        *self.preferred.lock() = Some(leader);
        *self.leader_learned.lock() = Some(Instant::now());
    }

    async fn forward(&self, request: Request) -> Answer {
        let budget = budget(&request, &self.options);
        let started = Instant::now();
        let deadline = started + budget;
        let servers = self.servers.get();
        if servers.is_empty() {
            return Err(RequestError::NoServers);
        }
        self.pool.prune(&servers);
        if servers.len() > 1 && request.needs_leader() {
            self.learn_leader(&servers, deadline).await;
        }
        let is_write = matches!(request, Request::Write(_));
        let first = self.first_choice(&servers);
        let attempts = servers.len().min(self.options.max_attempts.max(1));
        let mut failures = Vec::new();
        let mut no_leader = false;
        for attempt in 0..attempts {
            let server = servers[(first + attempt) % servers.len()];
            match self.call(server, &request, deadline).await {
                // That server knows no leader (e.g. it is cut off from the others), so it
                // proposed nothing: the next request starts elsewhere, and even a write
                // may go to the next server now, as Consul's client retries ErrNoLeader
                // within its hold time. Staying would pin this agent to a minority server.
                // A server that already waited its whole hold for a leader ends the
                // request, so that a leaderless cluster answers in one hold, not three.
                Ok(Err(RequestError::NoLeader)) => {
                    no_leader = true;
                    if started.elapsed() >= LEADER_CATCH_UP_WAIT {
                        self.forget(server);
                        break;
                    }
                    failures.push(format!("{server}: No cluster leader"));
                }
                Ok(answer) => {
                    *self.preferred.lock() = Some(server);
                    return answer;
                }
                Err(CallError::NotSent(reason)) => failures.push(reason),
                Err(CallError::Lost(reason)) if !is_write => failures.push(reason),
                Err(CallError::Lost(reason)) => {
                    self.forget(server);
                    return Err(RequestError::Internal(format!(
                        "rpc error making call: {reason} (the write may or may not have been applied)"
                    )));
                }
                Err(CallError::TooLarge { len, limit }) => {
                    return Err(RequestError::CommandTooLarge {
                        len: len as u64,
                        limit: limit as u64,
                    })
                }
                Err(CallError::TimedOut) => {
                    self.forget(server);
                    let unknown = if is_write {
                        " (the write may or may not have been applied)"
                    } else {
                        ""
                    };
                    return Err(RequestError::Internal(format!(
                        "rpc error making call: no answer from {server} within {budget:?}{unknown}"
                    )));
                }
            }
            self.forget(server);
            if Instant::now() >= deadline {
                break;
            }
        }
        if no_leader {
            return Err(RequestError::NoLeader);
        }
        if self.options.warn_unreachable {
            tracing::warn!(
                servers = servers.len(),
                "no server could be reached: {}",
                failures.join("; ")
            );
        } else {
            tracing::debug!(
                servers = servers.len(),
                "unreachable: {}",
                failures.join("; ")
            );
        }
        Err(RequestError::NoServers)
    }

    async fn call(
        &self,
        server: SocketAddr,
        request: &Request,
        deadline: Instant,
    ) -> Result<Answer, CallError> {
        let connection = self
            .pool
            .get(server, deadline)
            .await
            .map_err(CallError::NotSent)?;
        connection.call(request, deadline).await
    }

    fn first_choice(&self, servers: &[SocketAddr]) -> usize {
        let preferred = *self.preferred.lock();
        preferred
            .and_then(|p| servers.iter().position(|s| *s == p))
            .unwrap_or_else(|| rand::rng().random_range(0..servers.len()))
    }

    /// Stop preferring `server` after it failed (the next request starts elsewhere, and
    /// a leader-bound one asks again which server leads).
    fn forget(&self, server: SocketAddr) {
        let mut preferred = self.preferred.lock();
        if *preferred == Some(server) {
            *preferred = None;
            *self.leader_learned.lock() = None;
        }
    }
}

impl Endpoint for ForwardEndpoint {
    fn ask(&self, request: Request) -> BoxFuture<'_, Answer> {
        self.forward(request).boxed()
    }
}

/// How long one request may take, all attempts included.
pub(crate) fn budget(request: &Request, options: &ForwardOptions) -> Duration {
    match request {
        Request::Read(read) if read.options.min_index > 0 => {
            // The server waits up to the effective wait plus Consul's wait/16 jitter.
            let wait = read.options.effective_wait();
            wait + wait / 16 + options.blocking_margin
        }
        _ => options.request_timeout,
    }
}
