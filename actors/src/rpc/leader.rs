//! A server's endpoint in a cluster: answer here what this server may answer, send the
//! rest to the leader over the server port (Consul's `forward` in its RPC layer).
//!
//! - writes, default and `consistent` reads: on the leader, answered locally (the
//!   [`ServerEndpoint`] with its catch-up rules); on a follower, forwarded to the leader
//!   whose address the Raft status names;
//! - `stale` reads and cluster facts (`status/leader`, `status/peers`): local;
//! - operator requests (Raft configuration, autopilot health, removing a peer): to the
//!   leader (a stale Raft configuration: local);
//! - no leader known: wait for one, polling the status, at most
//!   [`LEADER_CATCH_UP_WAIT`], then 500 "No cluster leader".
//!
//! A single server (`-bootstrap`, `-dev`) is always its own leader, so for it nothing
//! changes. A request forwarded while leadership moves may be forwarded again by a server
//! that learned of the change first; there is no hop counter yet, each hop is bounded by
//! the forwarding deadline.

use super::client::{ForwardEndpoint, ForwardOptions};
use super::servers::ServerList;
use crate::endpoint::policy::LEADER_CATCH_UP_WAIT;
use crate::endpoint::{from_write_error, Endpoint, ServerEndpoint};
use crate::errors::WriteError;
use crate::{RaftStatus, ServerHandle};
use futures::future::BoxFuture;
use futures::FutureExt;
use protocol::api::{Answer, Consistency, InfoRequest, Request, RequestError};
use std::net::SocketAddr;
use std::time::Duration;

/// How often a request waiting for a leader looks at the status again.
const LEADER_POLL: Duration = Duration::from_millis(20);

/// Where one request is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Local,
    Leader(SocketAddr),
    /// Needs a leader and none is known yet.
    WaitForLeader,
}

/// Pure: where `request` is answered, given this server's Raft status and its own
/// server address.
pub fn route(request: &Request, status: &RaftStatus, self_addr: &str) -> Route {
    if !request.needs_leader() || status.is_leader() {
        return Route::Local;
    }
    match &status.leader_addr {
        // Never to ourselves (a status that is a moment old): the local endpoint answers
        // as a non-leader does.
        Some(addr) if addr == self_addr => Route::Local,
        Some(addr) => match addr.parse() {
            Ok(addr) => Route::Leader(addr),
            Err(_) => Route::Local,
        },
        None => Route::WaitForLeader,
    }
}

/// The endpoint of a server agent (see the module docs). Implements [`Endpoint`].
pub struct LeaderForwarding {
    local: ServerEndpoint,
    server: ServerHandle,
    self_addr: String,
    /// Its server list is the current leader alone.
    leader: ForwardEndpoint,
    /// See [`LeaderForwarding::with_unsafe_local_reads`].
    unsafe_local_reads: bool,
}

impl LeaderForwarding {
    pub fn new(
        server: ServerHandle,
        datacenter: &str,
        self_addr: String,
        options: ForwardOptions,
    ) -> LeaderForwarding {
        LeaderForwarding {
            local: ServerEndpoint::new(server.clone(), datacenter),
            server,
            self_addr,
            // Unreachable leaders are expected while one is elected: no WARN per retry.
            leader: ForwardEndpoint::new(
                ServerList::default(),
                ForwardOptions {
                    warn_unreachable: false,
                    ..options
                },
            ),
            unsafe_local_reads: false,
        }
    }

    /// Deliberately unsafe, for proving that `cairn chaos` catches stale reads: default
    /// reads are answered from this server's own store as if `?stale` had been asked, on
    /// followers and on a leader without confirming its leadership. Never on by default.
    pub fn with_unsafe_local_reads(mut self, on: bool) -> LeaderForwarding {
        self.unsafe_local_reads = on;
        self
    }

    /// Session renews this server answers (as the leader) reset `timers`.
    pub fn with_session_timers(mut self, timers: crate::SessionTimers) -> LeaderForwarding {
        self.local = self.local.with_session_timers(timers);
        self
    }

    /// Operator requests this server answers go to `operator` (see [`ServerEndpoint`]).
    pub fn with_operator(mut self, operator: std::sync::Arc<dyn Endpoint>) -> LeaderForwarding {
        self.local = self.local.with_operator(operator);
        self
    }

    async fn answer(&self, mut request: Request) -> Answer {
        if self.unsafe_local_reads {
            downgrade_default_read(&mut request);
        }
        let deadline = tokio::time::Instant::now() + LEADER_CATCH_UP_WAIT;
        loop {
            let (status, _) = self.server.status_snapshot();
            match route(&request, &status, &self.self_addr) {
                Route::Local => return self.local.ask(request).await,
                Route::Leader(addr) => match self.forward_while_leading(addr, &request).await {
                    // The leader could not be reached, so the request never left: a new
                    // leader is probably being elected; wait for it like for none.
                    Some(Err(RequestError::NoServers)) => {
                        if tokio::time::Instant::now() >= deadline {
                            return Err(RequestError::NoLeader);
                        }
                        tokio::time::sleep(LEADER_POLL).await;
                    }
                    Some(answer) => return answer,
                    // A read asked of a deposed leader is simply asked again of the new one.
                    None if !changes_state(&request) => {}
                    None => {
                        return Err(from_write_error(WriteError::OutcomeUnknown(
                            "the leader changed while the write was forwarded to it".into(),
                        )))
                    }
                },
                Route::WaitForLeader => {
                    if tokio::time::Instant::now() >= deadline {
                        return Err(RequestError::NoLeader);
                    }
                    tokio::time::sleep(LEADER_POLL).await;
                }
            }
        }
    }

    /// [`Self::forward`], given up as soon as this server learns of another leader: a
    /// leader that was paused or cut off may hold a forwarded request until the
    /// forwarding deadline, while a new one already answers (measured by `cairn chaos`:
    /// 3 s without any acknowledged write after a SIGSTOP of the leader, against 0.3 s
    /// after a kill). `None`: another leader became known first; the request was
    /// abandoned.
    async fn forward_while_leading(&self, leader: SocketAddr, request: &Request) -> Option<Answer> {
        let forward = self.forward(leader, request);
        tokio::pin!(forward);
        loop {
            tokio::select! {
                answer = &mut forward => return Some(answer),
                _ = tokio::time::sleep(LEADER_POLL) => {
                    let (status, _) = self.server.status_snapshot();
                    if leader_moved(&status, leader) {
                        return None;
                    }
                }
            }
        }
    }

    /// `Err(NoServers)`: the leader could not be reached and nothing was sent (or, for
    /// a read, nothing that matters).
    async fn forward(&self, leader: SocketAddr, request: &Request) -> Answer {
        let servers = self.leader.servers();
        if servers.get().as_slice() != [leader] {
            servers.set(vec![leader]);
        }
        self.leader.ask(request.clone()).await
    }
}

/// Whether the request changes state (a write, or removing a Raft peer): abandoned in
/// flight, it may still take effect, so it is never asked again.
fn changes_state(request: &Request) -> bool {
    matches!(
        request,
        Request::Write(_) | Request::Info(InfoRequest::RemoveRaftPeer(_))
    )
}

/// Whether `status` names a leader other than `forwarded_to` (a leader merely unknown
/// for a moment, during an election, is no reason to give up yet).
fn leader_moved(status: &RaftStatus, forwarded_to: SocketAddr) -> bool {
    status.is_leader()
        || status
            .leader_addr
            .as_deref()
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .is_some_and(|a| a != forwarded_to)
}

/// The unsafe debug mode's one change: a default-mode read becomes a stale one.
fn downgrade_default_read(request: &mut Request) {
    if let Request::Read(read) = request {
        if read.options.consistency == Consistency::Leader {
            read.options.consistency = Consistency::Stale;
        }
    }
}

impl Endpoint for LeaderForwarding {
    fn ask(&self, request: Request) -> BoxFuture<'_, Answer> {
        self.answer(request).boxed()
    }

    fn ask_now(&self, request: &Request) -> Option<Answer> {
        // Stale reads and cluster facts only: both are local by definition.
        self.local.ask_now(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RaftRole;
    use protocol::api::{QueryOptions, Read, ReadRequest};

    fn read(consistency: Consistency) -> Request {
        Request::Read(ReadRequest {
            options: QueryOptions {
                consistency,
                ..QueryOptions::default()
            },
            read: Read::CatalogNodes {
                node_meta: Vec::new(),
            },
        })
    }

    #[test]
    fn a_forwarded_request_is_given_up_only_when_another_leader_is_known() {
        let old: SocketAddr = "10.0.0.1:8300".parse().unwrap();
        let following = |leader: Option<&str>| RaftStatus {
            leader_id: leader.map(|_| "x".to_string()),
            leader_addr: leader.map(str::to_string),
            ..RaftStatus::default()
        };
        assert!(!leader_moved(&following(Some("10.0.0.1:8300")), old));
        assert!(
            !leader_moved(&following(None), old),
            "an election is no reason"
        );
        assert!(leader_moved(&following(Some("10.0.0.2:8300")), old));
        let leading = RaftStatus {
            role: RaftRole::Leader,
            ..RaftStatus::default()
        };
        assert!(leader_moved(&leading, old), "this server leads now");
    }

    #[test]
    fn the_unsafe_debug_mode_downgrades_only_default_reads() {
        let mut default = read(Consistency::Leader);
        downgrade_default_read(&mut default);
        let mut consistent = read(Consistency::Consistent);
        downgrade_default_read(&mut consistent);
        let consistency = |r: &Request| match r {
            Request::Read(read) => read.options.consistency,
            _ => unreachable!(),
        };
        assert_eq!(consistency(&default), Consistency::Stale);
        assert_eq!(consistency(&consistent), Consistency::Consistent);
    }

    #[test]
    fn followers_send_what_needs_a_leader_to_it_and_answer_the_rest() {
        let me = "10.0.0.2:8300";
        let follower = RaftStatus {
            leader_id: Some("one".into()),
            leader_addr: Some("10.0.0.1:8300".into()),
            ..RaftStatus::default()
        };
        let leader: SocketAddr = "10.0.0.1:8300".parse().unwrap();
        for mode in [Consistency::Leader, Consistency::Consistent] {
            assert_eq!(route(&read(mode), &follower, me), Route::Leader(leader));
        }
        assert_eq!(
            route(&read(Consistency::Stale), &follower, me),
            Route::Local
        );
        let info = Request::Info(InfoRequest::Leader);
        assert_eq!(route(&info, &follower, me), Route::Local);
        // Operator requests go to the leader, but a stale configuration is local.
        for info in [
            InfoRequest::RaftConfiguration { stale: false },
            InfoRequest::AutopilotHealth,
            InfoRequest::RemoveRaftPeer(protocol::api::PeerSelector::Id("x".into())),
        ] {
            let request = Request::Info(info);
            assert_eq!(route(&request, &follower, me), Route::Leader(leader));
        }
        let stale = Request::Info(InfoRequest::RaftConfiguration { stale: true });
        assert_eq!(route(&stale, &follower, me), Route::Local);

        let leading = RaftStatus {
            role: RaftRole::Leader,
            leader_addr: Some(me.into()),
            ..RaftStatus::default()
        };
        assert_eq!(
            route(&read(Consistency::Consistent), &leading, me),
            Route::Local
        );

        let leaderless = RaftStatus::default();
        assert_eq!(
            route(&read(Consistency::Leader), &leaderless, me),
            Route::WaitForLeader
        );
        assert_eq!(
            route(&read(Consistency::Stale), &leaderless, me),
            Route::Local
        );

        // A status naming ourselves while we do not lead: never forwarded to ourselves.
        let stale_self = RaftStatus {
            leader_addr: Some(me.into()),
            ..RaftStatus::default()
        };
        assert_eq!(
            route(&read(Consistency::Leader), &stale_self, me),
            Route::Local
        );
    }
}
