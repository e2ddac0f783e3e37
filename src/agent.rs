//! Wiring: build the actors in dependency order and hand out typed addresses.
//!
//! [`run`] owns the whole life of a server agent: logging, the actix System, the Raft
//! server, the HTTP and DNS edges, the leader duty that registers this node in the
//! catalog, and a clean stop on SIGINT/SIGTERM.

pub mod autopilot;
pub mod banner;
pub mod cluster;
mod join;
pub mod leader_duty;
pub mod local_config;
pub mod tombstone_reaper;

use crate::config::Config;
use crate::context::AgentContext;
use actors::membership::{Gossip, GossipConfig, Membership};
use actors::{
    Api, FaultRules, ForwardEndpoint, ForwardOptions, LeaderForwarding, RpcServer,
    RpcServerOptions, ServerHandle, ServerList, ServerOptions, StartError,
};
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::{info, warn};

/// How long a shutdown waits for in-flight HTTP requests before dropping them.
pub const HTTP_DRAIN_TIMEOUT_MS: u64 = 5_000;

/// Why the agent could not start or run. `main` prints `==> <text>` and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("Error starting agent: {0}")]
    Server(#[from] StartError),
    #[error("Error starting agent: Failed to start HTTP listener on {addrs}: {err}")]
    Http { addrs: String, err: std::io::Error },
    #[error("Error starting agent: Failed to start DNS server on {addrs}: {err}")]
    Dns { addrs: String, err: std::io::Error },
    #[error("Error starting agent: Failed to start Serf LAN on {addr}: {err}")]
    Gossip {
        addr: SocketAddr,
        err: std::io::Error,
    },
    #[error("Error starting agent: Failed to start RPC layer on {addr}: {err}")]
    Rpc {
        addr: SocketAddr,
        err: std::io::Error,
    },
    #[error("Error starting agent: {0}")]
    Runtime(std::io::Error),
}

/// Run a server agent until SIGINT or SIGTERM. `startup_warnings` (from config parsing)
/// are logged once logging is up. Returns after a clean shutdown.
pub fn run(config: Config, startup_warnings: Vec<String>) -> Result<(), AgentError> {
    init_logging(&config.log_level);
    println!("==> Starting cairn agent...");
    for warning in &startup_warnings {
        warn!("{warning}");
    }
    let system = actix::System::new();
    system.block_on(async move {
        let result = run_in_system(config).await;
        actix::System::current().stop();
        result
    })
}

async fn run_in_system(config: Config) -> Result<(), AgentError> {
    let config = Arc::new(config);
    let faults = FaultRules::new();
    let gossip_config = gossip_config(&config);
    let gossip = Gossip::start(gossip_config.clone(), faults.clone())
        .await
        .map_err(|err| AgentError::Gossip {
            addr: gossip_config.bind,
            err,
        })?;
    let membership: Arc<dyn Membership> = Arc::new(gossip.clone());
    let mut server = None;
    let mut _rpc = None;
    let ctx = if config.server {
        let handle =
            ServerHandle::start_with_faults(server_options(&config), faults.clone()).await?;
        let mut ctx = AgentContext::for_server(
            config.clone(),
            handle.clone(),
            membership.clone(),
            unix_now(),
        );
        // In a cluster a follower sends what needs the leader to it (see
        // `actors::rpc::leader`); a single server is always its own leader.
        let forward = ForwardOptions {
            faults: faults.clone(),
            ..ForwardOptions::default()
        };
        let operator = Arc::new(autopilot::Operator::new(
            handle.clone(),
            membership.clone(),
            &config.datacenter,
            config.autopilot.clone(),
        ));
        let session_timers = actors::SessionTimers::new();
        ctx.api = Api::new(
            LeaderForwarding::new(
                handle.clone(),
                &config.datacenter,
                config.server_rpc_addr(),
                forward,
            )
            .with_operator(operator.clone())
            .with_session_timers(session_timers.clone())
            .with_unsafe_local_reads(config.debug_unsafe_local_reads),
        );
        // Leader-only duty: the session TTL timers act only while this server leads.
        actix::spawn(session_timers.run(handle.clone()));
        if config.debug_unsafe_local_reads {
            warn!("-debug-unsafe-local-reads is on: default reads may be stale (testing the chaos checker only)");
        }
        actix::spawn(autopilot::run(operator));
        let addr = SocketAddr::new(config.bind_addr, config.ports.server.max(0) as u16);
        let options = RpcServerOptions {
            faults: faults.clone(),
            raft: Some(handle.raft_inbox()),
            ..RpcServerOptions::default()
        };
        _rpc = Some(
            RpcServer::start(addr, ctx.api.clone(), options)
                .await
                .map_err(|err| AgentError::Rpc { addr, err })?,
        );
        server = Some(handle);
        ctx
    } else {
        // A client agent keeps no data: every request goes to a server that gossip
        // told it about.
        let servers = ServerList::new(gossip.servers());
        actix::spawn(follow_servers(gossip.clone(), servers.clone()));
        let options = ForwardOptions {
            faults: faults.clone(),
            ..ForwardOptions::default()
        };
        AgentContext::for_client(
            config.clone(),
            Api::new(ForwardEndpoint::new(servers, options)),
            membership.clone(),
            unix_now(),
        )
    };
    let mut ctx = ctx;
    let local = start_local_state(&config, ctx.api.clone(), membership.clone())?;
    local_config::apply(
        &local,
        &config.service_definitions,
        &config.check_definitions,
        &config.node_name,
    )
    .await
    .map_err(|e| AgentError::Runtime(std::io::Error::other(e)))?;
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(8);
    actix::spawn(serve_reloads(config.clone(), local.clone(), reload_rx));
    let local_for_events = local.clone();
    ctx.local = Some(local);
    ctx.reload = Some(reload_tx);
    if config.fault_injection {
        warn!(
            "fault injection is on: /v1/cairn/faults can cut this agent off (test clusters only)"
        );
        ctx.faults = Some(faults.clone());
    }
    let ctx = Arc::new(ctx);
    actix::spawn(crate::user_events::run(
        ctx.events.clone(),
        gossip.subscribe(),
        config.node_name.clone(),
        local_for_events,
    ));

    let http = if config.ports.http >= 0 {
        let server = crate::http::start(ctx.clone()).map_err(|err| AgentError::Http {
            addrs: listen_addrs(&config, config.ports.http),
            err,
        })?;
        let handle = server.handle();
        actix::spawn(async move {
            if let Err(e) = server.await {
                tracing::error!("HTTP server stopped with an error: {e}");
            }
        });
        Some(handle)
    } else {
        None
    };
    if config.ports.dns >= 0 {
        crate::dns::start(ctx.clone())
            .await
            .map_err(|err| AgentError::Dns {
                addrs: listen_addrs(&config, config.ports.dns),
                err,
            })?;
    }
    if let Some(server) = server {
        actix::spawn(cluster::log_leadership(server.clone(), membership.clone()));
        if let Some(expect) = config.bootstrap_expect {
            actix::spawn(cluster::bootstrap_expect(
                server.clone(),
                membership.clone(),
                config.datacenter.clone(),
                expect,
                config.server_rpc_addr(),
                faults.clone(),
            ));
        }
        actix::spawn(tombstone_reaper::run(
            server.clone(),
            config.tombstone_ttl_ms,
        ));
        let events = Some(gossip.subscribe());
        actix::spawn(leader_duty::run(
            server,
            config.clone(),
            membership.clone(),
            events,
        ));
    }
    if !config.retry_join.is_empty() {
        actix::spawn(join::retry_join(
            membership.clone(),
            join::RetryPolicy::of(&config),
        ));
    }

    print!("{}", banner::banner(&config));
    println!("==> Log data will now stream in as it occurs:");

    tokio::select! {
        signal = wait_for_shutdown_signal() => {
            let signal = signal.map_err(AgentError::Runtime)?;
            info!("Caught signal: {signal}; shutting down");
            if leaves_on(&config, signal) {
                info!("Gracefully leaving the cluster");
                if let Err(e) = membership.leave().await {
                    warn!("leave failed: {e}");
                }
            } else {
                gossip.stop();
            }
        }
        _ = ctx.shutdown.notified() => info!("Graceful leave complete; shutting down"),
    }
    if let Some(handle) = http {
        // Graceful, but bounded: open blocking queries may wait minutes otherwise.
        let drain = std::time::Duration::from_millis(HTTP_DRAIN_TIMEOUT_MS);
        if tokio::time::timeout(drain, handle.stop(true))
            .await
            .is_err()
        {
            warn!("HTTP connections still open after {HTTP_DRAIN_TIMEOUT_MS} ms; closing them");
        }
    }
    info!("Shutdown complete");
    Ok(())
}

/// The agent's local services and checks, restored from the data dir, syncing to the
/// catalog through the agent's own endpoint (forwarded like any write).
fn start_local_state(
    config: &Config,
    api: Api,
    membership: Arc<dyn Membership>,
) -> Result<crate::local::LocalAgent, AgentError> {
    use protocol::health::definition::CheckRules;
    let options = crate::local::LocalOptions {
        node: leader_duty::self_registration(config).node,
        datacenter: config.datacenter.clone(),
        rules: CheckRules {
            enable_script_checks: config.enable_script_checks,
            enable_local_script_checks: config.enable_local_script_checks,
            deregister_min_ms: config.check_deregister_interval_min_ms,
        },
        state_file: config
            .data_dir
            .as_deref()
            .map(crate::local::persist::state_path),
        full_sync_base_ms: config.anti_entropy_interval_ms,
        check_update_interval_ms: config.check_update_interval_ms,
        reap_interval_ms: crate::local::REAP_INTERVAL_MS
            .min(config.check_deregister_interval_min_ms / 2)
            .max(100),
        cluster_size: Arc::new(move || membership.members().len()),
    };
    crate::local::start(api, options).map_err(|e| {
        AgentError::Runtime(std::io::Error::other(format!(
            "Failed to load the local services and checks: {e}"
        )))
    })
}

/// Reload on SIGHUP and on `PUT /v1/agent/reload`, one at a time.
async fn serve_reloads(
    config: Arc<Config>,
    local: crate::local::LocalAgent,
    mut requests: tokio::sync::mpsc::Receiver<crate::context::ReloadRequest>,
) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangup = match signal(SignalKind::hangup()) {
        Ok(s) => Some(s),
        Err(e) => {
            warn!("cannot watch SIGHUP ({e}); reload through the API only");
            None
        }
    };
    loop {
        let reply = tokio::select! {
            request = requests.recv() => match request {
                Some(reply) => Some(reply),
                None => return,
            },
            Some(()) = async { match hangup.as_mut() { Some(h) => h.recv().await, None => None } } => {
                info!("Caught signal: hangup; reloading");
                None
            }
        };
        let outcome = local_config::reload(&config, &local).await;
        if let Err(e) = &outcome {
            warn!("reload failed: {e}");
        } else {
            info!("reload complete");
        }
        if let Some(reply) = reply {
            let _ = reply.send(outcome);
        }
    }
}

/// Whether a signal means "leave the cluster" (Consul's defaults: a client agent leaves
/// on SIGTERM and SIGINT, a server on neither, since a server that leaves also leaves
/// the Raft quorum).
fn leaves_on(config: &Config, signal: &str) -> bool {
    match signal {
        "interrupt" => !config.skip_leave_on_interrupt,
        _ => config.leave_on_terminate,
    }
}

/// Keep a client agent's server list equal to the alive servers gossip knows.
async fn follow_servers(gossip: Gossip, servers: ServerList) {
    loop {
        let changed = gossip.servers_changed();
        servers.set(gossip.servers());
        if gossip.is_stopped() {
            return;
        }
        changed.await;
    }
}

fn gossip_config(config: &Config) -> GossipConfig {
    let port = config.ports.serf_lan.max(0) as u16;
    GossipConfig {
        node_name: config.node_name.clone(),
        bind: SocketAddr::new(config.bind_addr, port),
        advertise: SocketAddr::new(config.advertise(), port),
        tags: crate::member_tags::member_tags(config),
        swim: config.swim_config(),
    }
}

fn server_options(config: &Config) -> ServerOptions {
    ServerOptions {
        server_id: config.node_id.clone(),
        node_name: config.node_name.clone(),
        server_addr: config.server_rpc_addr(),
        data_dir: config.data_dir.clone(),
        bootstrap: config.bootstrap,
        raft_timing: config.raft_timing(),
        snapshot_threshold: config.raft_snapshot_threshold,
        trailing_logs: config.raft_trailing_logs,
        log_cache: protocol::raft::CacheBudget {
            max_bytes: config.raft_log_cache_bytes,
            max_entries: config.raft_log_cache_entries,
        },
    }
}

/// Resolves with the signal's name on the first SIGINT or SIGTERM.
async fn wait_for_shutdown_signal() -> std::io::Result<&'static str> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::select! {
        _ = interrupt.recv() => Ok("interrupt"),
        _ = terminate.recv() => Ok("terminated"),
    }
}

/// Logs go to stdout at the configured level, as Consul's do. Dependencies that chatter
/// at info (actix-server's worker lines) are held to warn unless debugging.
fn init_logging(level: &str) {
    let quiet_deps = matches!(level, "info" | "warn" | "error");
    let directives = if quiet_deps {
        format!("{level},actix_server=warn")
    } else {
        level.to_string()
    };
    let filter = tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // A second init (tests, embedding) keeps the first subscriber; that is fine.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_writer(std::io::stdout)
        .try_init();
}

/// `127.0.0.1:8500` or `[127.0.0.1:8500 [::1]:8500]` for messages.
fn listen_addrs(config: &Config, port: i32) -> String {
    let port = port.max(0) as u16;
    let addrs: Vec<String> = config
        .client_addrs
        .iter()
        .map(|ip| std::net::SocketAddr::new(*ip, port).to_string())
        .collect();
    match addrs.as_slice() {
        [one] => one.clone(),
        _ => format!("[{}]", addrs.join(" ")),
    }
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
