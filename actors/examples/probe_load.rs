//! The probe runner's own cost: N HTTP checks at a 1 s interval against a target (see
//! `health_target`), measured from /proc over a window.
//!
//! `probe_load URL_PREFIX N WINDOW_SECONDS`, e.g.
//! `probe_load http://127.0.5.11:9000/health/ 2000 20`: check i probes URL_PREFIX + i.

use actix::prelude::*;
use cairn_actors::health::{ProbeOptions, ProbeReport, ProbeRunner, StartProbe};
use protocol::health::{CheckKind, CheckSpec};
use protocol::store::CheckStatus;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Counts {
    passing: AtomicU64,
    failing: AtomicU64,
}

struct Counter(Arc<Counts>);

impl Actor for Counter {
    type Context = Context<Self>;
}

impl Handler<ProbeReport> for Counter {
    type Result = ();
    fn handle(&mut self, msg: ProbeReport, _ctx: &mut Self::Context) {
        match msg.result.status {
            CheckStatus::Passing => self.0.passing.fetch_add(1, Ordering::Relaxed),
            _ => self.0.failing.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// utime + stime of this process, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(") ").map(|(_, a)| a).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn main() {
    let mut args = std::env::args().skip(1);
    let prefix = args
        .next()
        .unwrap_or_else(|| "http://127.0.5.11:9000/health/".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(2_000);
    let window: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20);
    let system = System::new();
    system.block_on(async move {
        let counts = Arc::new(Counts::default());
        let counter = Counter(counts.clone()).start();
        let runner = ProbeRunner::new(counter.recipient(), ProbeOptions::default()).start();
        for i in 0..n {
            let spec = CheckSpec {
                id: format!("service:web-{i}"),
                name: format!("web-{i}"),
                notes: String::new(),
                service_id: format!("web-{i}"),
                kind: CheckKind::Http {
                    url: format!("{prefix}{i}"),
                    method: String::new(),
                    headers: BTreeMap::new(),
                    body: String::new(),
                    tls_skip_verify: false,
                    tls_server_name: String::new(),
                },
                interval_ms: 1_000,
                timeout_ms: 500,
                success_before_passing: 0,
                failures_before_warning: 0,
                failures_before_critical: 0,
                deregister_critical_service_after_ms: None,
                initial_status: CheckStatus::Critical,
                initial_output: String::new(),
            };
            runner.do_send(StartProbe { spec, generation: 1 });
        }
        // Warm up: every check has had its first (staggered) run.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let ticks_per_s = 100.0; // Linux USER_HZ
        let (t0, c0) = (Instant::now(), cpu_ticks());
        let (p0, f0) = (counts.passing.load(Ordering::Relaxed), counts.failing.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_secs(window)).await;
        let elapsed = t0.elapsed().as_secs_f64();
        let cpu = (cpu_ticks() - c0) as f64 / ticks_per_s / elapsed * 100.0;
        let passing = counts.passing.load(Ordering::Relaxed) - p0;
        let failing = counts.failing.load(Ordering::Relaxed) - f0;
        println!(
            "checks={n} window={elapsed:.1}s probes/s={:.0} passing={passing} failing={failing} cpu={cpu:.1}% rss={}KiB",
            (passing + failing) as f64 / elapsed,
            rss_kib()
        );
        System::current().stop();
    });
}
