//! actix-web edge for Consul's HTTP API v1 (filled in by the HTTP work).
//!
//! PLACEHOLDER from the cli branch so the agent wiring compiles: it binds the HTTP port on
//! every client address and serves nothing. The real module replaces this file.

use crate::agent::AgentContext;
use std::sync::Arc;

pub fn start(ctx: Arc<AgentContext>) -> std::io::Result<actix_web::dev::Server> {
    let port = ctx.config.ports.http.max(0) as u16;
    let mut server = actix_web::HttpServer::new(actix_web::App::new)
        .disable_signals()
        .workers(1);
    for ip in &ctx.config.client_addrs {
        server = server.bind((*ip, port))?;
    }
    Ok(server.run())
}
