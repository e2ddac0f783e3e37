//! The DNS edge: Consul's DNS interface over UDP and TCP.
//!
//! Answers are built by the pure `protocol::dns` core from the published read view (stale
//! by design, no round trip to any actor); this module only owns sockets, the wire format
//! (hickory-proto) and the recursors (hickory-resolver).
//!
//! DNS runs on its own small multi-thread tokio runtime (`cairn-dns` threads) rather than
//! on the actix system thread: a packet never becomes an actor message, and the hot path
//! is recv → parse → read lock → answer → send on a few tasks sharing each socket.
//!
//! Served: `<node>.node`, `[<tag>.]<svc>.service`, RFC 2782 `_svc._tag`, `<hex>.addr`,
//! SOA/NS on the apex, PTR for node and service addresses, all with an optional `<dc>`
//! label; prepared queries and mesh names are NXDOMAIN. Other names go to the recursors
//! (asked in order, each bounded by `recursor_timeout`), or get REFUSED without any.
//! AXFR/IXFR and non-query opcodes get NOTIMP; unparsable queries with a readable header
//! get FORMERR; anything shorter, and responses, are dropped.
//!
//! Truncation choice: over UDP without EDNS, answers are first cut to `udp_answer_limit`
//! (3, as Consul; a load-spreading policy over shuffled answers, so no TC). When records
//! must then be dropped to fit the byte budget (512, or the client's EDNS size capped at
//! 4096), TC is set so clients that need the full set retry over TCP (Consul only does so
//! with `enable_truncate`; we prefer the RFC-correct signal).

mod core;
mod recursor;
mod tcp;
mod udp;
mod wire;

#[cfg(test)]
mod hostile_tests;
#[cfg(test)]
mod tests;

use crate::client_limit::ClientLimiter;
use crate::context::AgentContext;
use actors::Api;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// What the DNS edge needs from the agent's configuration.
#[derive(Debug, Clone)]
pub struct DnsConfig {
    /// Lower case with the trailing dot (`consul.`).
    pub domain: String,
    pub datacenter: String,
    /// Upstream servers for names outside the domain; empty → REFUSED.
    pub recursors: Vec<SocketAddr>,
    /// One upstream try is bounded by this (Consul's `recursor_timeout`, 2 s).
    pub recursor_timeout: Duration,
    /// Answers kept over UDP without EDNS (Consul's `udp_answer_limit`, 3).
    pub udp_answer_limit: usize,
    /// Set TC when records are dropped to fit the byte budget.
    pub truncate_sets_tc: bool,
    /// Consul's `dns_config.only_passing`.
    pub only_passing: bool,
    /// Serving threads (and UDP tasks per socket).
    pub workers: usize,
    /// Open TCP connections at most; further ones are closed at once.
    pub max_tcp_connections: usize,
    /// Open TCP connections from one client IP at most; further ones are closed at once
    /// without taking one of the `max_tcp_connections` slots.
    pub max_tcp_connections_per_client: usize,
    /// A TCP connection with no complete query for this long is closed.
    pub tcp_idle_timeout: Duration,
    /// Queries waiting on the recursors at most (UDP); further ones are dropped.
    pub max_pending_recursions: usize,
}

impl DnsConfig {
    pub fn new(domain: &str, datacenter: &str, recursors: Vec<SocketAddr>) -> DnsConfig {
        let mut domain = domain.trim_end_matches('.').to_ascii_lowercase();
        domain.push('.');
        let cores = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        DnsConfig {
            domain,
            datacenter: datacenter.to_string(),
            recursors,
            recursor_timeout: Duration::from_secs(2),
            udp_answer_limit: 3,
            truncate_sets_tc: true,
            only_passing: false,
            workers: cores.clamp(1, 2),
            max_tcp_connections: MAX_TCP_CONNECTIONS,
            max_tcp_connections_per_client: MAX_TCP_CONNECTIONS_PER_CLIENT,
            tcp_idle_timeout: Duration::from_secs(10),
            max_pending_recursions: 1024,
        }
    }
}

/// Default cap on open DNS TCP connections (all clients together), in connections.
pub const MAX_TCP_CONNECTIONS: usize = 512;

/// Default cap on open DNS TCP connections from one client IP, in connections. Well below
/// [`MAX_TCP_CONNECTIONS`], so one address (a stuck resolver, a misbehaving or hostile
/// client) cannot fill the global cap and lock everyone else out of DNS over TCP: it takes
/// 512 / 64 = 8 such addresses to do that. A resolver needs a handful of connections; TCP
/// is only its fallback for truncated answers.
pub const MAX_TCP_CONNECTIONS_PER_CLIENT: usize = 64;

/// A running DNS server. Dropping it stops the serving tasks (unless detached).
pub struct DnsServer {
    udp_addrs: Vec<SocketAddr>,
    tcp_addrs: Vec<SocketAddr>,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsServer {
    /// Bind UDP and TCP on every address (port 0: one ephemeral port shared by both) and
    /// start serving. Returns once every socket is bound and registered.
    pub fn bind(
        api: impl Into<Api>,
        config: DnsConfig,
        addrs: &[SocketAddr],
    ) -> io::Result<DnsServer> {
        let api = api.into();
        let mut sockets = Vec::with_capacity(addrs.len());
        for addr in addrs {
            sockets.push(bind_pair(*addr)?);
        }
        let udp_addrs = sockets
            .iter()
            .map(|(u, _)| u.local_addr())
            .collect::<io::Result<Vec<_>>>()?;
        let tcp_addrs = sockets
            .iter()
            .map(|(_, t)| t.local_addr())
            .collect::<io::Result<Vec<_>>>()?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.workers.max(1))
            .thread_name("cairn-dns")
            .enable_all()
            .build()?;
        let stop = CancellationToken::new();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let thread_stop = stop.clone();
        let thread = std::thread::Builder::new()
            .name("cairn-dns-main".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let started = start_tasks(api, config, sockets, thread_stop.clone());
                    let ok = started.is_ok();
                    let _ = ready_tx.send(started);
                    if ok {
                        thread_stop.cancelled().await;
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(DnsServer {
                udp_addrs,
                tcp_addrs,
                stop,
                thread: Some(thread),
            }),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(io::Error::other("dns runtime thread ended during start")),
        }
    }

    pub fn udp_addrs(&self) -> &[SocketAddr] {
        &self.udp_addrs
    }

    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp_addrs
    }

    /// Keep serving for the life of the process.
    pub fn detach(mut self) {
        // Without the thread handle, Drop neither cancels nor joins.
        self.thread.take();
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stop.cancel();
            let _ = thread.join();
        }
    }
}

/// Receive buffer asked for on each UDP socket (the kernel caps it at `rmem_max`). Under
/// a burst the answering tasks may be descheduled for a moment; a deep buffer keeps such
/// bursts from turning into lost queries.
const UDP_RECEIVE_BUFFER_BYTES: usize = 4 * 1024 * 1024;

fn bind_udp(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(err) = socket.set_recv_buffer_size(UDP_RECEIVE_BUFFER_BYTES) {
        tracing::debug!(error = %err, "dns: could not enlarge the UDP receive buffer");
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

fn bind_pair(addr: SocketAddr) -> io::Result<(std::net::UdpSocket, std::net::TcpListener)> {
    let udp = bind_udp(addr)?;
    let port = udp.local_addr()?.port();
    let tcp = std::net::TcpListener::bind(SocketAddr::new(addr.ip(), port))?;
    udp.set_nonblocking(true)?;
    tcp.set_nonblocking(true)?;
    Ok((udp, tcp))
}

fn start_tasks(
    api: Api,
    config: DnsConfig,
    sockets: Vec<(std::net::UdpSocket, std::net::TcpListener)>,
    stop: CancellationToken,
) -> io::Result<()> {
    let recursor = if config.recursors.is_empty() {
        None
    } else {
        Some(
            recursor::Recursor::new(&config.recursors, config.recursor_timeout)
                .map_err(io::Error::other)?,
        )
    };
    let workers = config.workers.max(1);
    let idle_timeout = config.tcp_idle_timeout;
    let connections = tcp::ConnectionLimits {
        global: Arc::new(Semaphore::new(config.max_tcp_connections)),
        per_client: ClientLimiter::new(config.max_tcp_connections_per_client),
    };
    let recursions = Arc::new(Semaphore::new(config.max_pending_recursions));
    let core = Arc::new(core::DnsCore::new(api, config, recursor));
    for (udp_socket, tcp_listener) in sockets {
        let udp_socket = Arc::new(tokio::net::UdpSocket::from_std(udp_socket)?);
        let tcp_listener = tokio::net::TcpListener::from_std(tcp_listener)?;
        for _ in 0..workers {
            tokio::spawn(udp::serve(
                udp_socket.clone(),
                core.clone(),
                recursions.clone(),
                stop.clone(),
            ));
        }
        tokio::spawn(tcp::serve(
            tcp_listener,
            core.clone(),
            connections.clone(),
            idle_timeout,
            stop.clone(),
        ));
    }
    Ok(())
}

/// Start the DNS edge of an agent: UDP and TCP on every client address at the DNS port
/// (nothing when the port is negative). Returns once bound; bind errors are returned.
/// The server then runs for the life of the process.
pub async fn start(ctx: Arc<AgentContext>) -> io::Result<()> {
    if let Some(server) = start_server(&ctx)? {
        server.detach();
    }
    Ok(())
}

/// Like [`start`], but hands back the running server (dropping it stops DNS); `None`
/// when DNS is disabled (negative port) or there is no client address.
pub fn start_server(ctx: &AgentContext) -> io::Result<Option<DnsServer>> {
    let Ok(port) = u16::try_from(ctx.config.ports.dns) else {
        return Ok(None); // negative: disabled
    };
    if ctx.config.client_addrs.is_empty() {
        return Ok(None);
    }
    let config = DnsConfig::new(
        &ctx.config.domain,
        &ctx.config.datacenter,
        ctx.config.recursors.clone(),
    );
    let addrs: Vec<SocketAddr> = ctx
        .config
        .client_addrs
        .iter()
        .map(|ip: &IpAddr| SocketAddr::new(*ip, port))
        .collect();
    let server = DnsServer::bind(ctx.api.clone(), config, &addrs)?;
    tracing::info!(udp = ?server.udp_addrs(), tcp = ?server.tcp_addrs(), "dns listening");
    Ok(Some(server))
}
