//! The agent's user events (Consul's `eventBuf` and `handleEvents`): gossip delivers
//! every event to every agent; this agent keeps those that pass its filters (its node
//! name, its services and their tags, `protocol::user_event::accepts`) in a ring of the
//! last 256, which `/v1/event/list` serves, waking blocking lists on each new one.
//!
//! The service and tag filters look at the services registered with this agent (its
//! local state), as Consul's do; catalog-only registrations on this node do not count.

use crate::local::LocalAgent;
use actors::membership::Membership;
use protocol::swim::SwimEvent;
use protocol::user_event::{accepts, from_gossip, EventRing, LocalService, UserEvent};
use std::sync::Arc;
use tokio::sync::{broadcast, watch};
use tracing::{debug, warn};

/// The ring of accepted events and a counter that moves with each one.
pub struct EventLog {
    ring: parking_lot::Mutex<EventRing>,
    accepted: watch::Sender<u64>,
}

impl Default for EventLog {
    fn default() -> EventLog {
        EventLog {
            ring: parking_lot::Mutex::new(EventRing::new()),
            accepted: watch::channel(0).0,
        }
    }
}

impl EventLog {
    pub fn new() -> Arc<EventLog> {
        Arc::new(EventLog::default())
    }

    /// Keep an accepted event and wake blocking lists.
    pub fn push(&self, event: UserEvent) {
        self.ring.lock().push(event);
        self.accepted.send_modify(|n| *n += 1);
    }

    /// Events named `name` (all when empty), oldest first, with the list index.
    pub fn list(&self, name: &str) -> (Vec<UserEvent>, u64) {
        self.ring.lock().list(name)
    }

    /// Changes when an event is accepted; take it BEFORE looking at the list, so an
    /// event accepted in between still wakes the waiter.
    pub fn watch(&self) -> watch::Receiver<u64> {
        self.accepted.subscribe()
    }
}

/// This node's services as the event filters see them (ID and tags): the agent's own
/// registrations, as Consul's filters read its local state.
fn local_services(local: &LocalAgent) -> Vec<LocalService> {
    local
        .view()
        .services
        .iter()
        .map(|s| LocalService {
            id: s.id.clone(),
            tags: s.tags.clone(),
        })
        .collect()
}

/// Take gossip's user events into `log` for as long as gossip runs.
pub async fn run(
    log: Arc<EventLog>,
    mut gossip: broadcast::Receiver<SwimEvent>,
    node_name: String,
    local: LocalAgent,
) {
    loop {
        let (ltime, name, payload) = match gossip.recv().await {
            Ok(SwimEvent::UserEvent {
                ltime,
                name,
                payload,
            }) => (ltime, name, payload),
            Ok(_) => continue,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                warn!(
                    missed = n,
                    "events: gossip events were dropped before they were read"
                );
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let Some(event) = from_gossip(&name, &payload, ltime) else {
            continue;
        };
        let services = if event.service_filter.is_empty() {
            Vec::new()
        } else {
            local_services(&local)
        };
        if !accepts(&event, &node_name, &services) {
            debug!(event = %event.name, id = %event.id, "events: filtered out here");
            continue;
        }
        debug!(event = %event.name, id = %event.id, ltime, "agent: new event");
        log.push(event);
    }
}

/// Fire `event` through gossip (Consul's `agent.UserEvent` after validation): gives it
/// an ID and the version, checks the size, and hands it to the membership.
pub fn fire(membership: &dyn Membership, mut event: UserEvent) -> Result<UserEvent, String> {
    protocol::user_event::validate(&event).map_err(|e| e.to_string())?;
    event.id = uuid::Uuid::new_v4().hyphenated().to_string();
    event.version = protocol::user_event::USER_EVENT_VERSION;
    let (name, payload) = protocol::user_event::to_gossip(&event).map_err(|e| e.to_string())?;
    membership
        .user_event(&name, payload)
        .map_err(|e| e.to_string())?;
    Ok(event)
}
