//! One etcd member as an OS process: how it is started, signalled and reaped.
//!
//! Each member runs in its own process group, so a signal reaches it and anything it
//! might spawn, and never the harness. The `Child` is kept so every killed member is
//! waited for (no zombies), also when the cluster is dropped after a failed run.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// The client and peer ports every member uses on its own loopback address.
pub const CLIENT_PORT: u16 = 2379;
pub const PEER_PORT: u16 = 2380;

/// What a member needs to (re)start: fixed for the cluster's lifetime.
#[derive(Debug, Clone)]
pub struct MemberSpec {
    /// `node1`, `node2` ... (also the etcd member name).
    pub name: String,
    pub ip: Ipv4Addr,
    pub data_dir: PathBuf,
    pub log_file: PathBuf,
    /// `node1=http://ip:2380,...`, the same for every member.
    pub initial_cluster: String,
    /// Tells this cluster's members from another run's that may reuse an address.
    pub cluster_token: String,
}

impl MemberSpec {
    pub fn client_addr(&self) -> String {
        format!("{}:{CLIENT_PORT}", self.ip)
    }

    pub fn peer_url(&self) -> String {
        format!("http://{}:{PEER_PORT}", self.ip)
    }

    /// The etcd command line. `existing`: rejoin with the data dir already there.
    fn command(&self, etcd: &Path, existing: bool) -> Command {
        let client_url = format!("http://{}", self.client_addr());
        let mut cmd = Command::new(etcd);
        cmd.arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &client_url])
            .args(["--advertise-client-urls", &client_url])
            .args(["--listen-peer-urls", &self.peer_url()])
            .args(["--initial-advertise-peer-urls", &self.peer_url()])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.cluster_token])
            .args([
                "--initial-cluster-state",
                if existing { "existing" } else { "new" },
            ])
            // zap writes structured lines to stderr; 3.4's default (capnslog) is deprecated.
            .args(["--logger", "zap", "--log-outputs", "stderr"]);
        cmd
    }

    /// The last `max` bytes of the member's log, for error messages.
    pub fn log_tail(&self, max: u64) -> String {
        let Ok(mut file) = File::open(&self.log_file) else {
            return String::new();
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        let _ = file.seek(SeekFrom::Start(len.saturating_sub(max)));
        let mut tail = Vec::new();
        let _ = file.take(max).read_to_end(&mut tail);
        String::from_utf8_lossy(&tail).into_owned()
    }
}

/// A member's process, if it runs, and whether it is stopped by SIGSTOP.
pub struct Member {
    pub spec: MemberSpec,
    child: Option<Child>,
    paused: bool,
}

impl Member {
    pub fn new(spec: MemberSpec) -> Member {
        Member {
            spec,
            child: None,
            paused: false,
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn is_paused(&self) -> bool {
        self.paused
    }

    /// Starts etcd (a no-op if it runs). Output goes to the member's log, appended so a
    /// restart keeps the earlier lines.
    pub fn start(&mut self, etcd: &Path, existing: bool) -> Result<(), String> {
        // A member that died by itself (etcd exits on some disk and peer errors) is
        // reaped here, so that a restart really starts it.
        let _ = self.exited();
        if self.child.is_some() {
            return Ok(());
        }
        fs::create_dir_all(&self.spec.data_dir)
            .map_err(|e| format!("{}: {e}", self.spec.data_dir.display()))?;
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.spec.log_file)
            .map_err(|e| format!("{}: {e}", self.spec.log_file.display()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("{}: {e}", self.spec.log_file.display()))?;
        let child = self
            .spec
            .command(etcd, existing)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("starting {} for {}: {e}", etcd.display(), self.spec.name))?;
        self.child = Some(child);
        self.paused = false;
        Ok(())
    }

    /// `Some(status text)` if the process has exited by itself (it is then reaped).
    pub fn exited(&mut self) -> Option<String> {
        let child = self.child.as_mut()?;
        match child.try_wait() {
            Ok(Some(status)) => {
                self.child = None;
                Some(status.to_string())
            }
            _ => None,
        }
    }

    /// SIGKILL the group and reap the process (a no-op if it does not run). SIGKILL
    /// also ends a stopped process, so a paused member needs no SIGCONT first.
    pub fn kill(&mut self) -> Result<(), String> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        self.paused = false;
        // ESRCH: it already exited; wait() below reaps it either way.
        if let Err(e) = signal_group(&child, Signal::SIGKILL) {
            if e != nix::errno::Errno::ESRCH {
                self.child = Some(child);
                return Err(format!("SIGKILL {}: {e}", self.spec.name));
            }
        }
        child
            .wait()
            .map(|_| ())
            .map_err(|e| format!("waiting for {}: {e}", self.spec.name))
    }

    /// SIGSTOP (a no-op if it does not run or is already paused).
    pub fn pause(&mut self) -> Result<(), String> {
        self.signal_if_running(!self.paused, Signal::SIGSTOP)?;
        self.paused = self.child.is_some();
        Ok(())
    }

    /// SIGCONT (a no-op if it does not run or is not paused).
    pub fn resume(&mut self) -> Result<(), String> {
        self.signal_if_running(self.paused, Signal::SIGCONT)?;
        self.paused = false;
        Ok(())
    }

    fn signal_if_running(&mut self, wanted: bool, signal: Signal) -> Result<(), String> {
        match &self.child {
            Some(child) if wanted => {
                signal_group(child, signal).map_err(|e| format!("{signal} {}: {e}", self.spec.name))
            }
            _ => Ok(()),
        }
    }
}

impl Drop for Member {
    /// A cluster dropped without `shutdown` (a panicking test) still leaves no etcd.
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// The process group is the child's pid (`process_group(0)` at spawn).
fn signal_group(child: &Child, signal: Signal) -> Result<(), nix::errno::Errno> {
    let pid = i32::try_from(child.id()).map_err(|_| nix::errno::Errno::ESRCH)?;
    killpg(Pid::from_raw(pid), signal)
}
