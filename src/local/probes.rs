//! The seam to the probe runner (`actors::health::ProbeRunner`): the local state queues
//! `ProbeCommand`s, this sends them as the runner's messages, and a small forwarding
//! actor turns the runner's reports into [`ProbeReportIn`]s on the local-state actor's
//! bounded queue (full: the report is dropped; the check's next report carries the
//! same news).

use actix::{Actor, Addr, Context, Handler};
use actors::health::{ProbeOptions, ProbeReport, ProbeRunner, StartProbe, StopProbe};
use protocol::health::local::ProbeCommand;
use protocol::health::ProbeResult;
use tokio::sync::mpsc;

/// A probe's result on its way into the local-state actor.
#[derive(Debug)]
pub struct ProbeReportIn {
    pub check_id: String,
    pub generation: u64,
    pub result: ProbeResult,
}

struct Forward(mpsc::Sender<ProbeReportIn>);

impl Actor for Forward {
    type Context = Context<Self>;
}

impl Handler<ProbeReport> for Forward {
    type Result = ();

    fn handle(&mut self, r: ProbeReport, _: &mut Context<Self>) {
        let report = ProbeReportIn {
            check_id: r.check_id,
            generation: r.generation,
            result: r.result,
        };
        if self.0.try_send(report).is_err() {
            tracing::debug!("probe report dropped: the local state's queue is full");
        }
    }
}

pub struct Probes {
    runner: Addr<ProbeRunner>,
}

impl Probes {
    pub fn start(reports: mpsc::Sender<ProbeReportIn>, seed: u64) -> Probes {
        let forward = Forward(reports).start();
        let options = ProbeOptions {
            seed,
            ..ProbeOptions::default()
        };
        // Probes run on their own thread: a burst of reports being folded into the local
        // state must never delay the probes' own timers (which would time them out).
        Probes {
            runner: ProbeRunner::start_on_own_thread(forward.recipient(), options),
        }
    }

    pub fn apply(&mut self, commands: Vec<ProbeCommand>) {
        for command in commands {
            match command {
                ProbeCommand::Start { spec, generation } => {
                    self.runner.do_send(StartProbe { spec, generation })
                }
                ProbeCommand::Stop { check_id } => self.runner.do_send(StopProbe { check_id }),
            }
        }
    }
}
