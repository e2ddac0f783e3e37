//! `cairn lock [-n N] [-timeout D] [-name NAME] [-child-exit-code] [-verbose]
//! [-monitor-retry N] [-shell=false] [-pass-stdin] PREFIX CHILD...`: Consul's `consul lock`.
//! Holds a lock (`-n 1`, the key `PREFIX/.lock`) or a semaphore slot (`-n > 1`, under
//! `PREFIX`) while the child runs; releases and cleans up when it exits; kills it when
//! the lock is lost or cairn is told to stop. Texts, flags and exit codes are Consul's:
//! 0, or with `-child-exit-code` 2 when the child failed; 1 when the lock could not be
//! had, released or cleaned up.
//!
//! Threads, not async: one blocking acquisition on the calling thread, a session renewer
//! and a lock monitor beside it, and the child polled with `try_wait` so it is only ever
//! signalled while it is known to be ours.

mod api;
mod child;
mod mutex;
mod semaphore;
mod session;

use super::api_client::{self, ClientEnv, ParsedArgs};
use super::argv::{FlagKind, FlagSpec};
use super::Output;
use api::LockApi;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The key of a lock, and of a semaphore's holder set, under the prefix (Consul's
/// `DefaultSemaphoreKey`; a lock uses it too so a lock and a semaphore at one prefix
/// conflict visibly).
pub const LOCK_KEY: &str = ".lock";
/// Consul's `DefaultLockWaitTime`: each blocking read of an acquisition waits this long.
pub const ACQUIRE_WAIT: Duration = Duration::from_secs(15);
/// How long each blocking read of the monitor waits (under the HTTP client's timeout).
pub const MONITOR_WAIT: Duration = Duration::from_secs(60);
/// Consul's `defaultMonitorRetryTime`.
pub const MONITOR_RETRY_TIME: Duration = Duration::from_secs(1);
/// Consul's `defaultMonitorRetry`.
const DEFAULT_MONITOR_RETRIES: u32 = 3;
/// How often the main loop looks at the child between events.
const CHILD_POLL: Duration = Duration::from_millis(10);

/// What the main loop hears about while the child runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// The monitor saw the lock (or slot) go.
    Lost,
    /// SIGINT or SIGTERM reached cairn.
    Shutdown,
}

/// How an acquisition ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acquired {
    Held,
    /// Told to stop, or `-timeout` ran out.
    Stopped,
}

/// How a cleanup ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cleanup {
    Done,
    /// Someone else holds or waits for it: left in place.
    InUse,
}

/// A lock or a semaphore, as the command drives it (Consul's `LockUnlock`).
pub trait Holder {
    fn acquire(
        &mut self,
        pacing: Pacing,
        stop: &AtomicBool,
        events: Sender<Event>,
    ) -> Result<Acquired, String>;
    fn release(&mut self) -> Result<(), String>;
    fn cleanup(&mut self) -> Result<Cleanup, String>;
}

/// How long each blocking read of an acquisition may wait: 15 s each without
/// `-timeout`; with it, what is left of it (the first read may use all of it), and
/// nothing once it has run out.
#[derive(Debug, Clone, Copy)]
pub struct Pacing {
    limit: Option<(Instant, Duration)>,
    attempts: u32,
}

impl Pacing {
    pub fn new(start: Instant, timeout: Option<Duration>) -> Pacing {
        Pacing {
            limit: timeout.map(|t| (start, t)),
            attempts: 0,
        }
    }

    /// The wait for the next read, `None` when the timeout has run out.
    pub fn next_wait(&mut self, now: Instant) -> Option<Duration> {
        let wait = match self.limit {
            None => ACQUIRE_WAIT,
            Some((_, limit)) if self.attempts == 0 => limit,
            Some((start, limit)) => limit.checked_sub(now.saturating_duration_since(start))?,
        };
        self.attempts = self.attempts.saturating_add(1);
        Some(wait)
    }

    /// Sleep `pause` (less when the timeout ends sooner); false when told to stop or
    /// out of time.
    pub fn sleep(&self, pause: Duration, stop: &AtomicBool) -> bool {
        let until = match self.limit {
            Some((start, limit)) => (start + limit).min(Instant::now() + pause),
            None => Instant::now() + pause,
        };
        while Instant::now() < until {
            if stop.load(Ordering::SeqCst) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50).min(until - Instant::now()));
        }
        !stop.load(Ordering::SeqCst)
            && self
                .limit
                .is_none_or(|(start, limit)| start.elapsed() < limit)
    }
}

/// `prefix/name` as Go's `path.Join` writes it for the keys locks use.
pub fn join_key(prefix: &str, name: &str) -> String {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    }
}

const FLAGS: [FlagSpec; 9] = [
    FlagSpec {
        name: "child-exit-code",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Exit 2 if the child process exited with an error if this is true, otherwise \
               this doesn't propagate an error from the child. The default value is false.",
    },
    FlagSpec {
        name: "n",
        kind: FlagKind::Value,
        value_name: "<int>",
        help: "Optional limit on the number of concurrent lock holders. The underlying \
               implementation switches from a lock to a semaphore when the value is \
               greater than 1. The default value is 1.",
    },
    FlagSpec {
        name: "monitor-retry",
        kind: FlagKind::Value,
        value_name: "<int>",
        help: "Number of times to retry if the agent returns a 500 error (or cannot be \
               reached) while monitoring the lock. This allows riding out brief periods \
               of unavailability without causing leader elections, but increases the \
               amount of time required to detect a lost lock in some cases. The default \
               value is 3, with a 1s wait between retries. Set this value to 0 to \
               disable retries.",
    },
    FlagSpec {
        name: "name",
        kind: FlagKind::Value,
        value_name: "<string>",
        help: "Optional name to associate with the lock session. It not provided, one is \
               generated based on the provided child command.",
    },
    FlagSpec {
        name: "pass-stdin",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Pass stdin to the child process.",
    },
    FlagSpec {
        name: "shell",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Use a shell to run the command (can set a custom shell via the SHELL \
               environment variable). The default value is true.",
    },
    FlagSpec {
        name: "timeout",
        kind: FlagKind::Value,
        value_name: "<duration>",
        help: "Maximum amount of time to wait to acquire the lock, specified as a \
               duration like \"1s\" or \"3h\". The default value is 0.",
    },
    FlagSpec {
        name: "verbose",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Enable verbose (debugging) output.",
    },
    FlagSpec {
        name: "try",
        kind: FlagKind::Value,
        value_name: "<duration>",
        help: "DEPRECATED. Use -timeout instead.",
    },
];

const HEAD: &str = "Usage: cairn lock [options] prefix child...\n\n  Acquires a lock or semaphore at a given path, and invokes a child process\n  when successful. The child process can assume the lock is held while it\n  executes. If the lock is lost or communication is disrupted the child\n  process will be sent a SIGTERM signal and given time to gracefully exit.\n  After the grace period expires the process will be hard terminated.\n\n  When -n=1, only a single lock holder or leader exists providing mutual\n  exclusion. Setting a higher value switches to a semaphore allowing multiple\n  holders to coordinate.\n\n  The prefix provided must have write privileges.";

/// The command's settings, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockSettings {
    pub limit: i64,
    pub prefix: String,
    pub child: Vec<String>,
    pub name: String,
    pub timeout: Option<Duration>,
    pub monitor_retries: u32,
    pub shell: bool,
    pub pass_stdin: bool,
    pub verbose: bool,
    pub child_exit_code: bool,
}

/// Check the flags and arguments as Consul does, in its order; `Err` is the text.
pub fn settings(parsed: &ParsedArgs) -> Result<LockSettings, String> {
    let int_flag = |name: &str, default: i64| -> Result<i64, String> {
        match parsed.value(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| format!("invalid value {v:?} for flag -{name}: parse error")),
        }
    };
    let limit = int_flag("n", 1)?;
    let monitor_retry = int_flag("monitor-retry", i64::from(DEFAULT_MONITOR_RETRIES))?;
    // `-try` is the old spelling; the later of the two on the line wins (Go's flag
    // package writes both into one variable).
    let timeout_text = parsed
        .flags
        .iter()
        .rev()
        .find(|(n, _)| n == "timeout" || n == "try");
    let mut timeout = None;
    let mut negative = false;
    if let Some((name, text)) = timeout_text {
        let bad = || format!("invalid value {text:?} for flag -{name}: parse error");
        match text.strip_prefix('-') {
            Some(rest) => {
                negative = !crate::duration::parse_go_duration(rest)
                    .ok_or_else(bad)?
                    .is_zero();
            }
            None => timeout = Some(crate::duration::parse_go_duration(text).ok_or_else(bad)?),
        }
    }
    if limit <= 0 {
        return Err("Lock holder limit must be positive".to_string());
    }
    let [prefix, child @ ..] = parsed.args.as_slice() else {
        return Err("Key prefix and child command must be specified".to_string());
    };
    if child.is_empty() {
        return Err("Key prefix and child command must be specified".to_string());
    }
    let prefix = prefix.strip_prefix('/').unwrap_or(prefix).to_string();
    if negative {
        return Err("Timeout must be positive".to_string());
    }
    let name = match parsed.value("name").filter(|n| !n.is_empty()) {
        Some(name) => name.to_string(),
        None => format!("Consul lock for '{}' at '{prefix}'", child.join(" ")),
    };
    let monitor_retries =
        u32::try_from(monitor_retry).map_err(|_| "Number for 'monitor-retry' must be >= 0")?;
    Ok(LockSettings {
        limit,
        prefix,
        child: child.to_vec(),
        name,
        timeout: timeout.filter(|t| !t.is_zero()),
        monitor_retries,
        shell: parsed.value("shell") != Some("false"),
        pass_stdin: parsed.bool("pass-stdin"),
        verbose: parsed.bool("verbose"),
        child_exit_code: parsed.bool("child-exit-code"),
    })
}

pub fn run(args: &[String], io: &mut Output<'_>) -> i32 {
    let (events, heard) = mpsc::channel();
    let stop = Arc::new(AtomicBool::new(false));
    watch_shutdown_signals(stop.clone(), events.clone());
    run_with(args, &ClientEnv::from_process(), io, stop, events, heard)
}

/// SIGINT and SIGTERM set `stop` and send `Shutdown` (the lock is then released
/// cleanly instead of the process dying with it held).
fn watch_shutdown_signals(stop: Arc<AtomicBool>, events: Sender<Event>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build();
    let Ok(runtime) = runtime else { return };
    // Registered before the thread starts, so no signal slips past in between.
    let signals = runtime.block_on(async {
        use tokio::signal::unix::{signal, SignalKind};
        Some((
            signal(SignalKind::interrupt()).ok()?,
            signal(SignalKind::terminate()).ok()?,
        ))
    });
    let Some((mut interrupt, mut terminate)) = signals else {
        return;
    };
    std::thread::spawn(move || {
        runtime.block_on(async {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        });
        stop.store(true, Ordering::SeqCst);
        let _ = events.send(Event::Shutdown);
    });
}

/// `run` with the environment and the shutdown channel given (tests).
pub fn run_with(
    args: &[String],
    env: &ClientEnv,
    io: &mut Output<'_>,
    stop: Arc<AtomicBool>,
    events: Sender<Event>,
    heard: Receiver<Event>,
) -> i32 {
    let specs = api_client::with_http_and_server_flags(&FLAGS);
    let usage = api_client::usage(HEAD, &specs);
    let parsed = match api_client::parse_or_exit(args, &specs, "lock", &usage, io) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let settings = match settings(&parsed) {
        Ok(s) => s,
        Err(text) => {
            let _ = writeln!(io.err, "{text}");
            return 1;
        }
    };
    let client = match api_client::connect_or_exit(&parsed, env, io) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let dc = parsed
        .value("datacenter")
        .filter(|d| !d.is_empty())
        .map(str::to_string);
    let api = Arc::new(LockApi::new(client, dc));
    if let Err(e) = api.agent_self() {
        let _ = writeln!(io.err, "Error querying Consul agent: {e}");
        return 1;
    }
    let mut holder: Box<dyn Holder> = if settings.limit == 1 {
        let key = join_key(&settings.prefix, LOCK_KEY);
        info(
            io,
            settings.verbose,
            &format!("Setting up lock at path: {key}"),
        );
        Box::new(mutex::Mutex::new(
            api,
            key,
            settings.name.clone(),
            settings.monitor_retries,
        ))
    } else {
        info(
            io,
            settings.verbose,
            &format!(
                "Setting up semaphore (limit {}) at prefix: {}",
                settings.limit, settings.prefix
            ),
        );
        Box::new(semaphore::Semaphore::new(
            api,
            settings.prefix.clone(),
            settings.limit,
            settings.name.clone(),
            settings.monitor_retries,
        ))
    };
    info(io, settings.verbose, "Attempting lock acquisition");
    let pacing = Pacing::new(Instant::now(), settings.timeout);
    match holder.acquire(pacing, &stop, events) {
        Ok(Acquired::Held) => {}
        Ok(Acquired::Stopped) => {
            let _ = writeln!(
                io.err,
                "Shutdown triggered or timeout during lock acquisition"
            );
            return 1;
        }
        Err(e) => {
            let _ = writeln!(io.err, "Lock acquisition failed: {e}");
            return 1;
        }
    }
    let child_code = if stop.load(Ordering::SeqCst) {
        let _ = writeln!(io.err, "Shutdown triggered during lock acquisition");
        0
    } else {
        run_child(&settings, io, &heard)
    };
    if let Err(e) = holder.release() {
        let _ = writeln!(io.err, "Lock release failed: {e}");
        return 1;
    }
    match holder.cleanup() {
        Ok(Cleanup::Done) => info(io, settings.verbose, "Cleanup succeeded"),
        Ok(Cleanup::InUse) => info(io, settings.verbose, "Cleanup aborted, lock in use"),
        Err(e) => {
            let _ = writeln!(io.err, "Lock cleanup failed: {e}");
            return 1;
        }
    }
    if settings.child_exit_code {
        child_code
    } else {
        0
    }
}

/// Run the child until it exits (its code for `-child-exit-code`: 2 when it failed) or
/// the lock is lost or cairn is stopped (then it is terminated: 0, as Consul).
fn run_child(settings: &LockSettings, io: &mut Output<'_>, heard: &Receiver<Event>) -> i32 {
    info(io, settings.verbose, "Starting handler");
    let shell_env = std::env::var("SHELL").ok();
    let argv = child::command_line(&settings.child, settings.shell, shell_env.as_deref());
    let mut process = match child::Child::start(&argv, settings.pass_stdin) {
        Ok(c) => c,
        Err(e) => {
            let _ = writeln!(io.err, "Error starting handler: {e}");
            return 2;
        }
    };
    let event = loop {
        if let Some(status) = process.exited() {
            let code = if status.success() {
                0
            } else {
                let text = child::status_text(status);
                let _ = writeln!(io.err, "Error running handler: {text}");
                2
            };
            info(io, settings.verbose, "Child terminated, releasing lock");
            return code;
        }
        match heard.recv_timeout(CHILD_POLL) {
            Ok(event) => break event,
            Err(RecvTimeoutError::Timeout) => {}
            // Nobody can tell us anything any more: just wait for the child.
            Err(RecvTimeoutError::Disconnected) => std::thread::sleep(CHILD_POLL),
        }
    };
    match event {
        Event::Lost => info(io, settings.verbose, "Lock lost, killing child"),
        Event::Shutdown => info(io, settings.verbose, "Shutdown triggered, killing child"),
    }
    info(
        io,
        settings.verbose,
        &format!("Terminating child pid {}", process.pid()),
    );
    match process.terminate(child::KILL_GRACE) {
        Ok((_, false)) => info(io, settings.verbose, "Child terminated"),
        Ok((_, true)) => info(
            io,
            settings.verbose,
            &format!(
                "Child did not exit after grace period of {}s; killed",
                child::KILL_GRACE.as_secs()
            ),
        ),
        Err(e) => {
            let _ = writeln!(io.err, "{e}");
        }
    }
    0
}

fn info(io: &mut Output<'_>, verbose: bool, text: &str) {
    if verbose {
        let _ = writeln!(io.out, "{text}");
    }
}

#[cfg(test)]
mod tests;

/// The loop both monitors run while we hold: consistent blocking reads through `poll`,
/// which answers the index to wait on next while we still hold, or None once we do not.
/// Agent errors are retried `retries` times in a row (1 s apart, from index 0); `Lost` is
/// reported unless the holder released on purpose.
fn monitor_while_held(
    retries: u32,
    released: &AtomicBool,
    events: &Sender<Event>,
    mut poll: impl FnMut(api::Read) -> Result<Option<u64>, api::ApiError>,
) {
    let mut index = 0;
    let mut left = retries;
    while !released.load(Ordering::SeqCst) {
        let read = api::Read {
            consistent: true,
            index,
            wait: Some(MONITOR_WAIT),
        };
        match poll(read) {
            Ok(Some(last_index)) => {
                index = last_index;
                left = retries;
            }
            Ok(None) => break,
            Err(e) if left > 0 && api::ApiError::retryable(&e) => {
                left -= 1;
                index = 0;
                std::thread::sleep(MONITOR_RETRY_TIME);
            }
            Err(_) => break,
        }
    }
    if !released.load(Ordering::SeqCst) {
        let _ = events.send(Event::Lost);
    }
}
