//! The child process run while the lock is held: started through the shell as
//! Consul's `ExecScript` does (`$SHELL -c`, `/bin/sh` by default) or directly, with
//! `CONSUL_LOCK_HELD=true`; stopped with SIGTERM, then SIGKILL after a grace period.
//!
//! Deviation, on purpose: the child runs in its own process group and the signals go
//! to the whole group, so a shell's own children stop with it and cannot go on acting
//! as if they held a lock that is gone.

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Consul's `lockKillGracePeriod`: between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(10);

pub struct Child {
    process: std::process::Child,
}

/// The program and arguments that run `args`.
pub fn command_line(args: &[String], shell: bool, shell_env: Option<&str>) -> Vec<String> {
    if shell {
        let sh = shell_env.filter(|s| !s.is_empty()).unwrap_or("/bin/sh");
        vec![sh.to_string(), "-c".to_string(), args.join(" ")]
    } else {
        args.to_vec()
    }
}

impl Child {
    pub fn start(argv: &[String], pass_stdin: bool) -> Result<Child, String> {
        let (program, rest) = argv
            .split_first()
            .ok_or_else(|| "no command to run".to_string())?;
        let process = Command::new(program)
            .args(rest)
            .env("CONSUL_LOCK_HELD", "true")
            .stdin(if pass_stdin {
                Stdio::inherit()
            } else {
                Stdio::null()
            })
            .process_group(0)
            .spawn()
            .map_err(|e| format!("exec: {program:?}: {e}"))?;
        Ok(Child { process })
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// The exit status once the child is gone (reaped here, never signalled after).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.process.try_wait().ok().flatten()
    }

    /// SIGTERM the child's group, wait up to `grace`, then SIGKILL it; returns the
    /// status and whether the grace period ran out.
    pub fn terminate(&mut self, grace: Duration) -> Result<(ExitStatus, bool), String> {
        if let Some(status) = self.exited() {
            return Ok((status, false));
        }
        self.signal(Signal::SIGTERM)
            .map_err(|e| format!("Failed to terminate {}: {e}", self.pid()))?;
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Ok((status, false));
            }
            std::thread::sleep(POLL);
        }
        self.signal(Signal::SIGKILL)
            .map_err(|e| format!("Failed to kill {}: {e}", self.pid()))?;
        let status = self.process.wait().map_err(|e| e.to_string())?;
        Ok((status, true))
    }

    /// Signal the child's process group (the child leads it); a group already gone is
    /// fine.
    fn signal(&self, signal: Signal) -> Result<(), nix::errno::Errno> {
        let Ok(pid) = i32::try_from(self.pid()) else {
            return Ok(());
        };
        match killpg(Pid::from_raw(pid), signal) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// Go's `*exec.ExitError` text: `exit status 3`, `signal: terminated`.
pub fn status_text(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => match Signal::try_from(signal) {
            Ok(Signal::SIGTERM) => "signal: terminated".to_string(),
            Ok(Signal::SIGKILL) => "signal: killed".to_string(),
            Ok(Signal::SIGINT) => "signal: interrupt".to_string(),
            Ok(other) => format!("signal: {other}"),
            Err(_) => format!("signal: {signal}"),
        },
        (None, None) => status.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_shell_gets_the_words_joined() {
        assert_eq!(
            command_line(&strings(&["echo", "a b", "c"]), true, None),
            ["/bin/sh", "-c", "echo a b c"]
        );
        assert_eq!(
            command_line(&strings(&["x"]), true, Some("/bin/bash")),
            ["/bin/bash", "-c", "x"]
        );
        assert_eq!(
            command_line(&strings(&["x"]), true, Some("")),
            ["/bin/sh", "-c", "x"]
        );
        assert_eq!(command_line(&strings(&["a", "b"]), false, None), ["a", "b"]);
    }

    #[test]
    fn exit_codes_and_termination() {
        let mut child = Child::start(&strings(&["/bin/sh", "-c", "exit 3"]), false).expect("runs");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.exited() {
                break status;
            }
            assert!(Instant::now() < deadline, "child never exited");
            std::thread::sleep(POLL);
        };
        assert_eq!(status_text(status), "exit status 3");

        // A shell that waits on a grandchild: SIGTERM to the group ends both.
        let mut child = Child::start(
            &strings(&[
                "/bin/sh",
                "-c",
                "test \"$CONSUL_LOCK_HELD\" = true && sleep 30; exit 9",
            ]),
            false,
        )
        .expect("runs");
        assert!(child.exited().is_none());
        let (status, forced) = child.terminate(KILL_GRACE).expect("terminates");
        assert!(!forced);
        assert_eq!(status_text(status), "signal: terminated");

        // One that ignores SIGTERM is killed after the grace period.
        let mut child = Child::start(
            &strings(&["/bin/sh", "-c", "trap '' TERM; sleep 30"]),
            false,
        )
        .expect("runs");
        std::thread::sleep(Duration::from_millis(200));
        let (status, forced) = child.terminate(Duration::from_millis(300)).expect("kills");
        assert!(forced);
        assert_eq!(status_text(status), "signal: killed");

        assert!(Child::start(&strings(&["/nonexistent/prog"]), false).is_err());
    }
}
