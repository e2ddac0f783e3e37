//! One probe of each kind, as Consul's `agent/checks` runs them, bounded by a timeout.
//! Each returns the raw result (status and output); the thresholds are applied by the
//! agent's local state (`protocol::health::CheckState`), not here.

use protocol::health::{CheckKind, CheckSpec, ProbeResult, MAX_OUTPUT_BYTES};
use protocol::store::CheckStatus;
use std::time::Duration;
use tokio::time::timeout;

mod http;
mod script;
mod socket;

pub use http::HttpClients;

/// Run one probe of `spec`, taking at most about `limit`. `http` is the client an HTTP
/// check uses (from [`HttpClients::for_spec`]); other kinds ignore it.
pub async fn run_probe(
    spec: &CheckSpec,
    limit: Duration,
    http: &Result<reqwest::Client, String>,
) -> ProbeResult {
    match &spec.kind {
        CheckKind::Http { .. } => match http {
            Ok(client) => http::probe(&spec.kind, limit, client).await,
            Err(why) => ProbeResult::new(CheckStatus::Critical, why.clone()),
        },
        CheckKind::Tcp { address } => socket::tcp(address, limit).await,
        CheckKind::Udp { address } => socket::udp(address, limit).await,
        CheckKind::Script { args } => script::probe(args, limit).await,
        CheckKind::Ttl { .. } | CheckKind::Alias { .. } => ProbeResult::new(
            CheckStatus::Critical,
            format!("{} checks are not probed", spec.kind.type_name()),
        ),
    }
}

/// A duration as Go prints it (`500ms`, `1s`, `1.5s`, `2m0s`), for outputs that quote a
/// timeout the way Consul's do.
fn go_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1_000 {
        return format!("{ms}ms");
    }
    let (minutes, ms) = (ms / 60_000, ms % 60_000);
    let seconds = if ms % 1_000 == 0 {
        format!("{}s", ms / 1_000)
    } else {
        let text = format!("{}.{:03}", ms / 1_000, ms % 1_000);
        format!("{}s", text.trim_end_matches('0'))
    };
    match minutes {
        0 => seconds,
        m if m < 60 => format!("{m}m{seconds}"),
        m => format!("{}h{}m{seconds}", m / 60, m % 60),
    }
}

/// `error` with its chain of causes, `a: b: c`, as Go's wrapped errors read.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// At most `MAX_OUTPUT_BYTES` of `bytes` as text.
fn output_text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_OUTPUT_BYTES)]).into_owned()
}

async fn with_limit<T>(limit: Duration, work: impl std::future::Future<Output = T>) -> Option<T> {
    timeout(limit, work).await.ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_does() {
        let cases = [
            (500, "500ms"),
            (1_000, "1s"),
            (1_500, "1.5s"),
            (10_000, "10s"),
            (90_000, "1m30s"),
            (120_250, "2m0.25s"),
            (3_600_000, "1h0m0s"),
        ];
        for (ms, text) in cases {
            assert_eq!(go_duration(Duration::from_millis(ms)), text);
        }
    }
}
