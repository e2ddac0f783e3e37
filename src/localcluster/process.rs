//! Agent processes: start one detached (its own process group, stdin from /dev/null,
//! output appended to its log), tell whether a pid is still that agent, signal it and
//! wait for it to go.
//!
//! A pid in the state file may belong to another process by now (the agent died and
//! the pid was reused), so nothing is signalled unless `/proc/PID/cmdline` names this
//! node's data dir. A zombie has an empty cmdline, so an agent that died but was not
//! reaped (its parent, a finished `cairn cluster` command, is gone) counts as dead.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How a process looks from /proc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcState {
    Running,
    /// Stopped by SIGSTOP.
    Paused,
    /// Gone, a zombie, or no longer our agent.
    Dead,
}

impl ProcState {
    pub fn name(self) -> &'static str {
        match self {
            ProcState::Running => "running",
            ProcState::Paused => "paused",
            ProcState::Dead => "dead",
        }
    }
}

/// Start `binary args...` detached, appending its output to `log`.
pub fn spawn_agent(binary: &Path, args: &[String], log: &Path) -> std::io::Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    Command::new(binary)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        // Its own process group: a Ctrl-C in the shell that ran `cluster up` (or the
        // end of a test harness's group) does not reach the agents.
        .process_group(0)
        .spawn()
}

/// Wait until a process just spawned shows its new command line (`spawn` may return
/// while the kernel is still setting it up, and an empty command line reads as dead).
/// False if it exited instead, or `timeout` passed.
pub fn wait_exec(child: &mut Child, data_dir: &Path, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if is_agent_of(child.id(), data_dir) {
            return true;
        }
        if matches!(child.try_wait(), Ok(Some(_))) || Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// What `/proc/PID` says about `pid`, which must be the agent whose data dir is
/// `data_dir` to count as alive.
pub fn proc_state(pid: u32, data_dir: &Path) -> ProcState {
    if !is_agent_of(pid, data_dir) {
        return ProcState::Dead;
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    match stat_state(&stat) {
        Some('T' | 't') => ProcState::Paused,
        Some('Z' | 'X' | 'x') | None => ProcState::Dead,
        Some(_) => ProcState::Running,
    }
}

/// Whether `pid` is a live process whose command line has `data_dir` as an argument.
pub fn is_agent_of(pid: u32, data_dir: &Path) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let want = data_dir.as_os_str().as_encoded_bytes();
    raw.split(|b| *b == 0).any(|arg| arg == want)
}

/// The state letter of a `/proc/PID/stat` line: the field after the command name,
/// which is in parentheses and may itself hold spaces and parentheses.
fn stat_state(stat: &str) -> Option<char> {
    let (_, after) = stat.rsplit_once(')')?;
    after.trim_start().chars().next()
}

/// Send `signal` to `pid` if it is still the agent of `data_dir`; a process that is
/// already gone is not an error.
pub fn signal_agent(pid: u32, data_dir: &Path, signal: Signal) -> Result<(), String> {
    if !is_agent_of(pid, data_dir) {
        return Ok(());
    }
    let Ok(raw) = i32::try_from(pid) else {
        return Err(format!("pid {pid} is out of range"));
    };
    match kill(Pid::from_raw(raw), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(format!("{signal} to pid {pid}: {e}")),
    }
}

/// Poll until `pid` is no longer the agent of `data_dir`, or `timeout` passes; true if
/// it went. With `child` (this process started it) the answer is `wait`'s, which also
/// reaps it; /proc alone cannot tell an exiting process (memory released, command line
/// empty, sockets still open) from a dead one, and a caller that starts the next agent
/// on the same address needs the sockets closed.
pub fn wait_gone(pid: u32, data_dir: &Path, child: Option<&mut Child>, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let mut child = child;
    loop {
        let gone = match child.as_mut() {
            Some(c) => !matches!(c.try_wait(), Ok(None)),
            None => is_gone(pid, data_dir),
        };
        if gone {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` has finished exiting as far as /proc shows: no such process, a zombie
/// (its files are closed by then), or another program under a reused pid. A process
/// with an empty command line that is not a zombie is still exiting.
fn is_gone(pid: u32, data_dir: &Path) -> bool {
    let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return true;
    };
    if raw.is_empty() {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        return matches!(stat_state(&stat), None | Some('Z' | 'X' | 'x'));
    }
    let want = data_dir.as_os_str().as_encoded_bytes();
    !raw.split(|b| *b == 0).any(|arg| arg == want)
}

/// Poll until `pid` shows `want` in /proc, or `timeout` passes.
pub fn wait_state(pid: u32, data_dir: &Path, want: ProcState, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if proc_state(pid, data_dir) == want {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_letter_follows_the_last_parenthesis() {
        assert_eq!(stat_state("42 (cairn) S 1 42 42 0"), Some('S'));
        assert_eq!(stat_state("42 (a) b) (c)) T 1"), Some('T'));
        assert_eq!(stat_state("garbage"), None);
    }

    #[test]
    fn signals_reach_only_our_process_and_wait_gone_reaps_it() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("node1").join("data");
        let other = dir.path().join("node2").join("data");
        // A stand-in agent: a shell whose command line names the data dir (`$1`); the
        // `exit` keeps the shell from replacing itself with `sleep`.
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30; exit 0", "sh"])
            .arg(&data)
            .stdin(Stdio::null())
            .process_group(0)
            .spawn()
            .expect("spawn sh");
        let pid = child.id();
        assert!(wait_exec(&mut child, &data, Duration::from_secs(5)));
        assert_eq!(proc_state(pid, &data), ProcState::Running);
        // Not the agent of node2: nothing is sent.
        assert_eq!(proc_state(pid, &other), ProcState::Dead);
        signal_agent(pid, &other, Signal::SIGKILL).unwrap();
        assert_eq!(proc_state(pid, &data), ProcState::Running);

        signal_agent(pid, &data, Signal::SIGSTOP).unwrap();
        assert!(wait_state(
            pid,
            &data,
            ProcState::Paused,
            Duration::from_secs(5)
        ));
        signal_agent(pid, &data, Signal::SIGCONT).unwrap();
        assert!(wait_state(
            pid,
            &data,
            ProcState::Running,
            Duration::from_secs(5)
        ));

        signal_agent(pid, &data, Signal::SIGKILL).unwrap();
        assert!(wait_gone(
            pid,
            &data,
            Some(&mut child),
            Duration::from_secs(5)
        ));
        assert_eq!(proc_state(pid, &data), ProcState::Dead);
        // Gone already: signalling again is fine.
        signal_agent(pid, &data, Signal::SIGKILL).unwrap();
    }
}
