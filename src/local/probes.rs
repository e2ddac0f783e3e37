//! The seam to the probe runner (`actors::health`, from the probes work): the local
//! state queues `ProbeCommand`s, this turns them into the runner's messages and its
//! reports into [`ProbeReportIn`]s on the actor's bounded queue. Until the runner is
//! merged, probed checks keep the status they were registered with.

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

pub struct Probes {
    _reports: mpsc::Sender<ProbeReportIn>,
    warned: bool,
}

impl Probes {
    pub fn start(reports: mpsc::Sender<ProbeReportIn>, _seed: u64) -> Probes {
        Probes {
            _reports: reports,
            warned: false,
        }
    }

    pub fn apply(&mut self, commands: Vec<ProbeCommand>) {
        for command in commands {
            if let ProbeCommand::Start { spec, .. } = command {
                if !self.warned {
                    tracing::warn!(
                        "check {:?}: this build runs no probes yet; its status stays as registered",
                        spec.id
                    );
                    self.warned = true;
                }
            }
        }
    }
}
