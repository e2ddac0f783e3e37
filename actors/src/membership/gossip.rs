//! The membership actor: runs the pure SWIM core (`protocol::swim`) on the serf LAN
//! port, UDP for probes and gossip, TCP for push-pull (one length-prefixed frame each
//! way), and implements [`Membership`] for the edges.
//!
//! One task (the driver) owns the UDP socket and the core's timer, and is the only one
//! that drains the core's effects, so they run in the order the core made them. Other
//! inputs (a TCP frame, a stream failure, a user's command) change the core under its
//! mutex and wake the driver. A push-pull request that arrives over TCP waits on its
//! connection for the reply the core addresses to that peer; every other stream send
//! opens a connection of its own.

use super::net::{self, Inbound};
use super::view::{member_view, servers_of};
use super::{MemberView, Membership, MembershipError};
use crate::faults::{FaultRules, Verdict};
use futures::future::BoxFuture;
use parking_lot::Mutex;
use protocol::rng::CoreRng;
use protocol::runtime::Effect;
use protocol::swim::{ForceLeaveError, Message, Swim, SwimConfig, SwimEvent, Tags, Transport};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UdpSocket;
use tokio::sync::{broadcast, oneshot, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

/// Member events kept for a slow subscriber before it lags.
pub const MEMBER_EVENT_BUFFER: usize = 1024;

/// How long `leave` waits for the leave to be gossiped before it stops anyway
/// (Consul's `leave_propagate_delay` is a few seconds too).
pub const LEAVE_PROPAGATE_WAIT: Duration = Duration::from_secs(5);

/// What the membership actor needs to start.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    pub node_name: String,
    /// Where the UDP and TCP sockets listen (`-bind`, serf LAN port).
    pub bind: SocketAddr,
    /// The address other members reach this one at (`-advertise` or `-bind`).
    pub advertise: SocketAddr,
    /// Consul's member tags (role, dc, port, id, vsn ...).
    pub tags: Tags,
    pub swim: SwimConfig,
}

/// The running membership actor. Cheap to clone.
#[derive(Clone)]
pub struct Gossip {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    core: Mutex<Swim>,
    started: Instant,
    /// Effects are waiting in the core, or the driver should stop.
    wake: Notify,
    events: broadcast::Sender<SwimEvent>,
    join_waiters: Mutex<HashMap<SocketAddr, Vec<oneshot::Sender<bool>>>>,
    leave_waiters: Mutex<Vec<oneshot::Sender<()>>>,
    /// Why the last stream exchange with an address failed (for a join's error text).
    stream_errors: Mutex<HashMap<SocketAddr, String>>,
    /// Inbound push-pull connections waiting for the core's reply, by peer address.
    pending_replies: Mutex<HashMap<SocketAddr, oneshot::Sender<Message>>>,
    /// Servers among the alive members (their RPC addresses), for client agents.
    servers: Mutex<Vec<SocketAddr>>,
    servers_changed: Notify,
    /// Cancelled when the actor stops (left, or stopped): every task ends.
    pub(super) shutdown: CancellationToken,
    pub(super) faults: FaultRules,
    stream_timeout: Duration,
}

impl Gossip {
    /// Bind the sockets and start gossiping (alone until a join).
    pub async fn start(config: GossipConfig, faults: FaultRules) -> std::io::Result<Gossip> {
        let udp = Arc::new(UdpSocket::bind(config.bind).await?);
        let listener = tokio::net::TcpListener::bind(config.bind).await?;
        let started = Instant::now();
        let rng = CoreRng::seed_from_u64(rand::rng().random());
        let stream_timeout = Duration::from_millis(config.swim.stream_timeout_ms);
        let core = Swim::new(
            config.node_name.clone(),
            config.advertise,
            config.tags.clone(),
            config.swim.clone(),
            rng,
            0,
        );
        let (events, _) = broadcast::channel(MEMBER_EVENT_BUFFER);
        let inner = Arc::new(Inner {
            core: Mutex::new(core),
            started,
            wake: Notify::new(),
            events,
            join_waiters: Mutex::new(HashMap::new()),
            leave_waiters: Mutex::new(Vec::new()),
            pending_replies: Mutex::new(HashMap::new()),
            stream_errors: Mutex::new(HashMap::new()),
            servers: Mutex::new(Vec::new()),
            servers_changed: Notify::new(),
            shutdown: CancellationToken::new(),
            faults,
            stream_timeout,
        });
        info!(node = %config.node_name, bind = %config.bind, "gossip: listening (udp+tcp)");
        tokio::spawn(net::accept_loop(listener, inner.clone()));
        tokio::spawn(drive(inner.clone(), udp));
        Ok(Gossip { inner })
    }

    /// Member events, in the order the core made them.
    pub fn subscribe(&self) -> broadcast::Receiver<SwimEvent> {
        self.inner.events.subscribe()
    }

    /// The RPC addresses of the alive servers (members tagged `role=consul`).
    pub fn servers(&self) -> Vec<SocketAddr> {
        self.inner.servers.lock().clone()
    }

    /// Completes the next time the server list may have changed.
    pub async fn servers_changed(&self) {
        self.inner.servers_changed.notified().await
    }

    /// Replace this member's tags (a new incarnation, gossiped).
    pub fn set_tags(&self, tags: Tags) -> Result<(), MembershipError> {
        let now = self.inner.now_ms();
        let result = self.inner.core.lock().set_tags(now, tags);
        self.inner.wake.notify_one();
        result.map_err(|e| MembershipError::Other(e.to_string()))
    }

    /// Stop gossiping at once, without telling anyone (a crash, for tests; `leave` is the
    /// graceful way).
    pub fn stop(&self) {
        self.inner.shutdown.cancel();
    }

    pub fn is_stopped(&self) -> bool {
        self.inner.is_stopped()
    }
}

impl Inner {
    pub(super) fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    pub(super) fn is_stopped(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// Hand an input to the core, then let the driver run its effects.
    pub(super) fn input(&self, input: Inbound) {
        if self.is_stopped() {
            return;
        }
        let now = self.now_ms();
        {
            let mut core = self.core.lock();
            match input {
                Inbound::Message(from, msg) => core.on_message(now, from, msg),
                Inbound::StreamFailed(to) => core.stream_failed(now, to),
            }
        }
        self.wake.notify_one();
    }

    /// An inbound push-pull request: register for the reply, then hand it to the core.
    pub(super) fn push_pull_request(
        &self,
        from: SocketAddr,
        msg: Message,
    ) -> oneshot::Receiver<Message> {
        let (tx, rx) = oneshot::channel();
        self.pending_replies.lock().insert(from, tx);
        self.input(Inbound::Message(from, msg));
        rx
    }

    /// Keep why a stream exchange failed, when a join waits on that address.
    pub(super) fn note_stream_error(&self, to: SocketAddr, reason: String) {
        if self.join_waiters.lock().contains_key(&to) {
            self.stream_errors.lock().insert(to, reason);
        }
    }

    pub(super) fn stream_timeout(&self) -> Duration {
        self.stream_timeout
    }
}

/// The driver: UDP in, timer, effects out. Ends when the actor stops.
async fn drive(inner: Arc<Inner>, udp: Arc<UdpSocket>) {
    let mut buf = vec![0u8; protocol::swim::MAX_DATAGRAM_BYTES];
    let mut next_tick: Option<u64> = Some(0);
    loop {
        let deadline = next_tick.map(|ms| inner.started + Duration::from_millis(ms));
        tokio::select! {
            received = udp.recv_from(&mut buf) => match received {
                Ok((len, from)) => {
                    if inner.faults.check(from.ip()).blocks() {
                        continue;
                    }
                    match Message::decode(&buf[..len], Transport::Datagram) {
                        Ok(msg) => inner.input(Inbound::Message(from, msg)),
                        Err(e) => debug!(%from, error = %e, "gossip: undecodable datagram dropped"),
                    }
                }
                Err(e) => debug!(error = %e, "gossip: udp receive failed"),
            },
            _ = inner.wake.notified() => {}
            _ = inner.shutdown.cancelled() => break,
            _ = sleep_until_opt(deadline) => {
                next_tick = None;
                let now = inner.now_ms();
                inner.core.lock().on_tick(now);
            }
        }
        let effects = inner.core.lock().drain_effects();
        for effect in effects {
            match effect {
                Effect::Send { to, msg } => send(&inner, &udp, to, msg),
                Effect::Notify(event) => on_event(&inner, event),
                Effect::TickAt(at) => next_tick = Some(at),
            }
        }
    }
    debug!("gossip: stopped");
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn send(inner: &Arc<Inner>, udp: &Arc<UdpSocket>, to: SocketAddr, msg: Message) {
    let delay = match inner.faults.check(to.ip()) {
        Verdict::Pass => None,
        Verdict::Delay(d) => Some(d),
        Verdict::Drop | Verdict::Cut => return,
    };
    if let Some(reply) = inner.pending_replies.lock().remove(&to) {
        let _ = reply.send(msg);
        return;
    }
    match msg.transport() {
        Transport::Datagram => match msg.encode() {
            Ok(bytes) => match delay {
                None => send_datagram(udp, &bytes, to),
                Some(delay) => {
                    let udp = udp.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        send_datagram(&udp, &bytes, to);
                    });
                }
            },
            Err(e) => warn!(%to, error = %e, "gossip: message not encodable"),
        },
        Transport::Stream => {
            tokio::spawn(net::send_stream(inner.clone(), to, msg));
        }
    }
}

/// A full socket buffer loses the datagram, as the network may: the core's timers
/// cover it.
fn send_datagram(udp: &UdpSocket, bytes: &[u8], to: SocketAddr) {
    if let Err(e) = udp.try_send_to(bytes, to) {
        debug!(%to, error = %e, "gossip: datagram not sent");
    }
}

fn on_event(inner: &Inner, event: SwimEvent) {
    match &event {
        SwimEvent::JoinResult { addr, ok } => {
            for waiter in inner.join_waiters.lock().remove(addr).unwrap_or_default() {
                let _ = waiter.send(*ok);
            }
        }
        SwimEvent::LeaveComplete => {
            for waiter in inner.leave_waiters.lock().drain(..) {
                let _ = waiter.send(());
            }
        }
        SwimEvent::MemberJoined(m)
        | SwimEvent::MemberUpdated(m)
        | SwimEvent::MemberAlive(m)
        | SwimEvent::MemberRecovered(m) => {
            info!(member = %m.name, addr = %m.addr, event = event_name(&event), "gossip: member")
        }
        SwimEvent::MemberFailed(m) | SwimEvent::MemberLeft(m) | SwimEvent::MemberReaped(m) => {
            info!(member = %m.name, event = event_name(&event), "gossip: member")
        }
        SwimEvent::MemberSuspect(m) => debug!(member = %m.name, "gossip: member suspect"),
        SwimEvent::UserEvent { ltime, name, .. } => {
            debug!(%name, ltime, "gossip: user event")
        }
    }
    if matches!(
        event,
        SwimEvent::JoinResult { .. } | SwimEvent::LeaveComplete | SwimEvent::UserEvent { .. }
    ) {
        let _ = inner.events.send(event);
        return;
    }
    let servers = servers_of(&inner.core.lock().members());
    let changed = {
        let mut current = inner.servers.lock();
        let changed = *current != servers;
        *current = servers;
        changed
    };
    if changed {
        inner.servers_changed.notify_waiters();
    }
    let _ = inner.events.send(event);
}

fn event_name(event: &SwimEvent) -> &'static str {
    match event {
        SwimEvent::MemberJoined(_) => "joined",
        SwimEvent::MemberUpdated(_) => "updated",
        SwimEvent::MemberSuspect(_) => "suspect",
        SwimEvent::MemberAlive(_) => "alive",
        SwimEvent::MemberFailed(_) => "failed",
        SwimEvent::MemberLeft(_) => "left",
        SwimEvent::MemberRecovered(_) => "recovered",
        SwimEvent::MemberReaped(_) => "reaped",
        SwimEvent::JoinResult { .. } => "join-result",
        SwimEvent::LeaveComplete => "leave-complete",
        SwimEvent::UserEvent { .. } => "user-event",
    }
}

impl Membership for Gossip {
    fn user_event(&self, name: &str, payload: Vec<u8>) -> Result<u64, MembershipError> {
        if self.inner.is_stopped() {
            return Err(MembershipError::Other("gossip has stopped".into()));
        }
        let result = self.inner.core.lock().user_event(name, payload);
        self.inner.wake.notify_one();
        result.map_err(|e| MembershipError::Other(e.to_string()))
    }

    fn members(&self) -> Vec<MemberView> {
        let core = self.inner.core.lock();
        let leaving = core.is_leaving();
        let me = core.name().to_string();
        core.members()
            .iter()
            .map(|m| member_view(m, leaving && m.name == me))
            .collect()
    }

    fn join(&self, addrs: Vec<String>) -> BoxFuture<'static, Result<usize, MembershipError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut failures = Vec::new();
            let mut targets = Vec::new();
            for text in &addrs {
                match net::resolve(text).await {
                    Ok(addr) => targets.push(addr),
                    Err(e) => failures.push(format!("Failed to resolve {text}: {e}")),
                }
            }
            let mut waiting = Vec::new();
            {
                let mut waiters = inner.join_waiters.lock();
                for addr in &targets {
                    let (tx, rx) = oneshot::channel();
                    waiters.entry(*addr).or_default().push(tx);
                    waiting.push((*addr, rx));
                }
            }
            let now = inner.now_ms();
            inner.core.lock().join(now, targets);
            inner.wake.notify_one();
            let mut joined = 0;
            let bound = inner.stream_timeout + Duration::from_secs(1);
            for (addr, rx) in waiting {
                match tokio::time::timeout(bound, rx).await {
                    Ok(Ok(true)) => joined += 1,
                    _ => {
                        let reason = inner.stream_errors.lock().remove(&addr);
                        let reason = reason.unwrap_or_else(|| "no push-pull reply".into());
                        failures.push(format!("Failed to join {addr}: {reason}"));
                    }
                }
            }
            match joined {
                0 => Err(MembershipError::JoinFailed(match failures.is_empty() {
                    true => "no address to join".to_string(),
                    false => failures.join("; "),
                })),
                n => Ok(n),
            }
        })
    }

    fn leave(&self) -> BoxFuture<'static, Result<(), MembershipError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let (tx, rx) = oneshot::channel();
            inner.leave_waiters.lock().push(tx);
            let now = inner.now_ms();
            inner.core.lock().leave(now);
            inner.wake.notify_one();
            if tokio::time::timeout(LEAVE_PROPAGATE_WAIT, rx)
                .await
                .is_err()
            {
                warn!("gossip: leave not fully propagated in time; stopping anyway");
            }
            inner.shutdown.cancel();
            Ok(())
        })
    }

    fn force_leave(&self, node: &str, prune: bool) -> Result<(), MembershipError> {
        let now = self.inner.now_ms();
        let result = self.inner.core.lock().force_leave(now, node, prune);
        self.inner.wake.notify_one();
        match result {
            Ok(()) => Ok(()),
            Err(ForceLeaveError::UnknownMember(n)) => Err(MembershipError::NoSuchNode(n)),
            // serf ignores a leave intent for a live member; so does Consul's force-leave.
            Err(ForceLeaveError::NotFailed(_)) => Ok(()),
        }
    }
}
