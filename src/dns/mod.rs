//! DNS edge (filled in by the DNS work).
//!
//! PLACEHOLDER from the cli branch so the agent wiring compiles; the real module replaces
//! this file.

use crate::agent::AgentContext;
use std::sync::Arc;

pub async fn start(_ctx: Arc<AgentContext>) -> std::io::Result<()> {
    Ok(())
}
