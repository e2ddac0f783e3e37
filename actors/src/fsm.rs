//! Fsm actor: applies committed entries to the replicated store, in order and exactly
//! once, under the read view's write lock (one lock per batch); then resolves the
//! proposals waiting on those indexes and publishes the applied index.
//!
//! It runs on its own arbiter (thread) so applying overlaps with RaftCore's work.

use crate::handle::{ReadView, WriteError};
use crate::status::StatusCell;
use actix::prelude::*;
use protocol::codec;
use protocol::ids::Term;
use protocol::raft::{Entry, Payload};
use protocol::store::{Command, CommandResult};
use std::sync::Arc;
use tokio::sync::{oneshot, watch};

pub(crate) type ProposalReply = oneshot::Sender<Result<CommandResult, WriteError>>;

/// A client waiting for the entry it proposed at some index, in `term`.
pub(crate) struct Waiter {
    pub(crate) index: u64,
    pub(crate) term: Term,
    pub(crate) reply: ProposalReply,
}

/// Committed entries (consecutive) and the waiters for any of their indexes.
#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct Apply {
    pub(crate) entries: Vec<Entry>,
    pub(crate) waiters: Vec<Waiter>,
}

pub(crate) struct Fsm {
    view: ReadView,
    last_applied: u64,
    applied_tx: watch::Sender<u64>,
    status: Arc<StatusCell>,
}

impl Fsm {
    pub(crate) fn new(
        view: ReadView,
        applied_tx: watch::Sender<u64>,
        status: Arc<StatusCell>,
    ) -> Fsm {
        Fsm {
            view,
            last_applied: 0,
            applied_tx,
            status,
        }
    }
}

impl Actor for Fsm {
    type Context = Context<Self>;
}

fn apply_payload(store: &mut protocol::store::Store, entry: &Entry) -> Option<CommandResult> {
    match &entry.payload {
        Payload::Command(bytes) => match codec::decode::<Command>(bytes, codec::MAX_DECODE_BYTES) {
            Ok(cmd) => Some(store.apply(entry.index.0, &cmd)),
            Err(e) => {
                // Deterministic on every replica: the entry changes nothing.
                store.apply_noop(entry.index.0);
                Some(CommandResult::Rejected(format!("undecodable command: {e}")))
            }
        },
        Payload::Noop | Payload::Configuration(_) => {
            store.apply_noop(entry.index.0);
            None
        }
    }
}

impl Handler<Apply> for Fsm {
    type Result = ();

    fn handle(&mut self, msg: Apply, _: &mut Context<Self>) {
        let mut results: Vec<(u64, Term, Option<CommandResult>)> =
            Vec::with_capacity(msg.entries.len());
        {
            let mut store = self.view.inner().write();
            for entry in &msg.entries {
                if entry.index.0 <= self.last_applied {
                    continue; // exactly once
                }
                if entry.index.0 != self.last_applied + 1 {
                    tracing::error!(
                        index = entry.index.0,
                        last_applied = self.last_applied,
                        "gap in committed entries; not applying"
                    );
                    break;
                }
                let result = apply_payload(&mut store, entry);
                self.last_applied = entry.index.0;
                results.push((entry.index.0, entry.term, result));
            }
        }
        // Publish before answering, so a writer that reads next sees its own index.
        let applied = self.last_applied;
        self.status.update(|s| s.applied_index = applied);
        self.applied_tx.send_replace(applied);
        for waiter in msg.waiters {
            // `results` holds consecutive indexes, so a waiter's slot is a subtraction.
            let found = results
                .first()
                .and_then(|(first, _, _)| waiter.index.checked_sub(*first))
                .and_then(|pos| results.get(pos as usize));
            let answer = match found {
                Some((_, term, Some(result))) if *term == waiter.term => Ok(result.clone()),
                Some(_) => Err(WriteError::LeadershipLost),
                None => {
                    tracing::error!(
                        index = waiter.index,
                        "waiter for an entry that was not applied"
                    );
                    Err(WriteError::LeadershipLost)
                }
            };
            let _ = waiter.reply.send(answer);
        }
    }
}
