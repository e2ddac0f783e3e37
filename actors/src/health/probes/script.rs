//! The script probe (Consul's `CheckMonitor` with `Args`): run the program directly (no
//! shell) in a process group of its own; exit 0 passing, 1 warning, anything else
//! critical; stdout and stderr together as the output, the last bytes kept. At the
//! timeout, or when the probe is cancelled, the whole group is killed, so a script's
//! children do not outlive it.

use super::{go_duration, with_limit};
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use protocol::health::{ProbeResult, MAX_OUTPUT_BYTES};
use protocol::store::CheckStatus;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

pub async fn probe(args: &[String], limit: Duration) -> ProbeResult {
    let Some((program, rest)) = args.split_first() else {
        return ProbeResult::new(CheckStatus::Critical, "check has no args to run");
    };
    let mut child = match Command::new(program)
        .args(rest)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
    {
        Ok(child) => child,
        Err(e) => {
            return ProbeResult::new(
                CheckStatus::Critical,
                format!("failed to invoke {program:?}: {e}"),
            )
        }
    };
    // From here on, leaving this function by any path (the timeout, or the probe's task
    // being aborted mid-run) kills the group.
    let mut group = GroupGuard(child.id().and_then(|pid| i32::try_from(pid).ok()));
    let output = Arc::new(Mutex::new(Tail::default()));
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let run = async {
        let ((), (), status) = tokio::join!(
            drain(stdout, output.clone()),
            drain(stderr, output.clone()),
            child.wait()
        );
        status
    };
    let finished = with_limit(limit, run).await;
    let text = output.lock().map(|tail| tail.text()).unwrap_or_default();
    match finished {
        Some(Ok(status)) => {
            group.disarm();
            let check_status = match status.code() {
                Some(0) => CheckStatus::Passing,
                Some(1) => CheckStatus::Warning,
                _ => CheckStatus::Critical,
            };
            ProbeResult::new(check_status, text)
        }
        Some(Err(e)) => ProbeResult::new(CheckStatus::Critical, format!("wait: {e}")),
        None => {
            group.kill();
            // Reap the leader so no zombie is left (the group is gone, this is quick).
            let _ = with_limit(Duration::from_secs(1), child.wait()).await;
            group.disarm();
            let mut msg = format!("Timed out ({}) running check", go_duration(limit));
            if !text.is_empty() {
                msg.push_str("\n\n");
                msg.push_str(&text);
            }
            ProbeResult::new(CheckStatus::Critical, msg)
        }
    }
}

async fn drain(pipe: Option<impl AsyncRead + Unpin>, into: Arc<Mutex<Tail>>) {
    let Some(mut pipe) = pipe else { return };
    let mut buf = [0u8; 4096];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if let Ok(mut tail) = into.lock() {
                    tail.push(&buf[..n]);
                }
            }
        }
    }
}

/// Kills the process group it holds when dropped, unless disarmed.
struct GroupGuard(Option<i32>);

impl GroupGuard {
    fn kill(&self) {
        if let Some(pgid) = self.0 {
            // ESRCH (already gone) is fine.
            let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The last bytes a script wrote, and how many it wrote in all (Consul's circular
/// buffer of `BufSize`).
#[derive(Default)]
struct Tail {
    bytes: Vec<u8>,
    total: u64,
}

impl Tail {
    fn push(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        self.bytes.extend_from_slice(chunk);
        if self.bytes.len() > MAX_OUTPUT_BYTES {
            let cut = self.bytes.len() - MAX_OUTPUT_BYTES;
            self.bytes.drain(..cut);
        }
    }

    /// The output, with Consul's "Captured N of M bytes" note when some was dropped; the
    /// whole text fits in `MAX_OUTPUT_BYTES`, so the note and the newest bytes survive.
    fn text(&self) -> String {
        if self.total as usize <= self.bytes.len() {
            return String::from_utf8_lossy(&self.bytes).into_owned();
        }
        let note_len = format!(
            "Captured {} of {} bytes\n...\n",
            MAX_OUTPUT_BYTES, self.total
        )
        .len();
        let keep = MAX_OUTPUT_BYTES
            .saturating_sub(note_len)
            .min(self.bytes.len());
        let kept = &self.bytes[self.bytes.len() - keep..];
        // The lossy conversion may grow a cut character into U+FFFD (3 bytes); start at
        // a character boundary instead where one is near.
        let start = kept
            .iter()
            .take(4)
            .position(|b| (*b as i8) >= -0x40)
            .unwrap_or(0);
        let kept = &kept[start..];
        format!(
            "Captured {} of {} bytes\n...\n{}",
            kept.len(),
            self.total,
            String::from_utf8_lossy(kept)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tail_keeps_the_newest_bytes_within_the_cap() {
        let mut tail = Tail::default();
        tail.push(b"short");
        assert_eq!(tail.text(), "short");
        for _ in 0..10 {
            tail.push(&[b'a'; 1000]);
        }
        tail.push(b"THE END");
        let text = tail.text();
        assert!(text.len() <= MAX_OUTPUT_BYTES, "{}", text.len());
        assert!(text.starts_with("Captured "), "{}", &text[..40]);
        assert!(text.contains(" of 10012 bytes\n...\n"));
        assert!(text.ends_with("aaTHE END"));
    }
}
