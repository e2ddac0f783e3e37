//! The server's event bus: state changes that an actor owns are published as typed
//! events, and whoever needs them subscribes; nothing polls for them.
//!
//! - RaftCore publishes role, term and leader changes, leadership lost, and storage
//!   failures and recoveries as they happen.
//! - "Leadership acquired" means more than "became leader": the new leader's store holds
//!   everything earlier terms committed only once its own no-op entry is applied (rule 8).
//!   [`announce_leadership`] turns "became leader with its no-op at index N" into
//!   `LeadershipAcquired` once the applied index reaches N, by waiting on the applied
//!   watch, and drops it if leadership is lost first.
//! - The applied index itself is a `watch` (`ServerHandle::applied`): subscribers only
//!   ever need its newest value, and a watch never lags or fills up.
//!
//! The bus is a bounded broadcast channel ([`EVENT_BUFFER`]). A subscriber that falls
//! that far behind gets `Lagged` and must re-read the current state
//! (`ServerHandle::status`) instead of replaying what it missed. Membership (gossip)
//! events join this bus with the membership issue.

use crate::status::RaftRole;
use crate::status::StatusCell;
use std::sync::Arc;
use tokio::sync::{broadcast, watch};

/// Events kept for a slow subscriber before it lags.
pub const EVENT_BUFFER: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Role, term or known leader changed. `ready_index`: on a new leader, the index of
    /// its no-op (0 otherwise).
    RoleChanged {
        role: RaftRole,
        term: u64,
        leader_id: Option<String>,
        ready_index: u64,
    },
    /// This server leads `term` and has applied its no-op: leader duties start.
    LeadershipAcquired { term: u64 },
    /// This server no longer leads `term` (stepped down, lost its quorum, its storage
    /// failed, or it is shutting down): leader duties stop.
    LeadershipLost { term: u64 },
    /// The Raft log cannot be written; the server stepped down and retries by itself.
    StorageFailed { error: String },
    /// A write to the Raft log succeeded again after a failure.
    StorageRecovered,
}

/// Cheap to clone; publishing never blocks and never fails for lack of subscribers.
#[derive(Clone)]
pub struct EventBus(broadcast::Sender<ServerEvent>);

impl Default for EventBus {
    fn default() -> Self {
        EventBus(broadcast::channel(EVENT_BUFFER).0)
    }
}

impl EventBus {
    pub fn subscribe(&self) -> broadcast::Receiver<ServerEvent> {
        self.0.subscribe()
    }

    pub(crate) fn publish(&self, event: ServerEvent) {
        tracing::debug!(?event, "server event");
        // No subscriber is fine: nobody needs to hear it.
        let _ = self.0.send(event);
    }
}

/// Publish `LeadershipAcquired` for each leadership whose no-op gets applied (see the
/// module docs). Runs until the bus or the applied watch closes. `events` must be
/// subscribed before RaftCore starts, so that no role change is missed.
pub(crate) async fn announce_leadership(
    bus: EventBus,
    mut events: broadcast::Receiver<ServerEvent>,
    status: Arc<StatusCell>,
    mut applied: watch::Receiver<u64>,
) {
    // The leadership being waited for: (term, no-op index).
    let mut pending: Option<(u64, u64)> = None;
    loop {
        if let Some((term, ready)) = pending {
            if *applied.borrow_and_update() >= ready {
                pending = None;
                bus.publish(ServerEvent::LeadershipAcquired { term });
                continue;
            }
        }
        tokio::select! {
            event = events.recv() => match event {
                Ok(ServerEvent::RoleChanged { role: RaftRole::Leader, term, ready_index, .. }) => {
                    pending = Some((term, ready_index));
                }
                Ok(ServerEvent::RoleChanged { .. } | ServerEvent::LeadershipLost { .. }) => {
                    pending = None;
                }
                Ok(_) => {}
                // Missed events: the status cell holds the current truth.
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::warn!(missed, "leadership announcer lagged behind the event bus");
                    let now = status.read();
                    pending = now.is_leader().then_some((now.term, now.leader_ready_index));
                }
                Err(broadcast::error::RecvError::Closed) => return,
            },
            changed = applied.changed(), if pending.is_some() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}
