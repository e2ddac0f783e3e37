//! The HTTP probe (Consul's `CheckHTTP`): 2xx passing, 429 warning, anything else or an
//! error critical; the output quotes the status and at most `MAX_OUTPUT_BYTES` of the
//! body, which is all that is read of it.

use super::{error_chain, go_duration, output_text, with_limit};
use protocol::health::{CheckKind, CheckSpec, ProbeResult, MAX_OUTPUT_BYTES};
use protocol::store::CheckStatus;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONNECTION, HOST, USER_AGENT};
use reqwest::{Client, Method, Url};
use std::sync::Arc;
use std::time::Duration;

/// Consul's `User-Agent` for HTTP checks (kept unless the check sets its own).
pub const USER_AGENT_VALUE: &str = "Consul Health Check";
const ACCEPT_VALUE: &str = "text/plain, text/*, */*";

/// The HTTP clients of the runner: two shared ones (verifying certificates or not) and,
/// for a check that names its TLS server, one of its own.
///
/// No connection is kept between probes (Consul disables keep-alive for checks, so a
/// check sees a fresh connection each time and an agent with thousands of checks keeps
/// no idle sockets): no pool, and `Connection: close` so the target closes first and
/// keeps the TIME_WAIT, not the agent's ephemeral ports.
#[derive(Default)]
pub struct HttpClients {
    verifying: Option<Client>,
    insecure: Option<Client>,
}

impl HttpClients {
    /// The client `spec` probes with: Err(why) for a non-HTTP spec or one whose client
    /// cannot be built (then each probe reports why, critical).
    pub fn for_spec(&mut self, spec: &CheckSpec) -> Result<Client, String> {
        let CheckKind::Http {
            url,
            tls_skip_verify,
            tls_server_name,
            ..
        } = &spec.kind
        else {
            return Err("not an HTTP check".to_string());
        };
        if !tls_server_name.is_empty() && url.starts_with("https:") {
            let real_host = Url::parse(url)
                .ok()
                .and_then(|u| u.host_str().map(|h| h.trim_matches(['[', ']']).to_string()))
                .unwrap_or_default();
            let resolver = ServerNameResolver {
                server_name: tls_server_name.clone(),
                real_host,
            };
            return builder(*tls_skip_verify)
                .dns_resolver(Arc::new(resolver))
                .build()
                .map_err(|e| error_chain(&e));
        }
        let slot = if *tls_skip_verify {
            &mut self.insecure
        } else {
            &mut self.verifying
        };
        if let Some(client) = slot {
            return Ok(client.clone());
        }
        let client = builder(*tls_skip_verify)
            .build()
            .map_err(|e| error_chain(&e))?;
        *slot = Some(client.clone());
        Ok(client)
    }
}

fn builder(tls_skip_verify: bool) -> reqwest::ClientBuilder {
    Client::builder()
        .pool_max_idle_per_host(0)
        .danger_accept_invalid_certs(tls_skip_verify)
        .use_rustls_tls()
}

/// Resolves the check's `TLSServerName` to the URL's real host: the URL is rewritten to
/// the server name (so it is the name sent in SNI and verified), the connection still
/// goes where the check's URL points.
struct ServerNameResolver {
    server_name: String,
    real_host: String,
}

impl Resolve for ServerNameResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = if name.as_str().eq_ignore_ascii_case(&self.server_name) {
            self.real_host.clone()
        } else {
            name.as_str().to_string()
        };
        Box::pin(async move {
            let addrs: Vec<_> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

pub async fn probe(kind: &CheckKind, limit: Duration, client: &Client) -> ProbeResult {
    let CheckKind::Http {
        url,
        method,
        headers,
        body,
        tls_server_name,
        ..
    } = kind
    else {
        return ProbeResult::new(CheckStatus::Critical, "not an HTTP check");
    };
    let method_name = if method.is_empty() { "GET" } else { method };
    let critical = |why: String| ProbeResult::new(CheckStatus::Critical, why);
    let Ok(method) = Method::from_bytes(method_name.as_bytes()) else {
        return critical(format!("net/http: invalid method {method_name:?}"));
    };
    let mut target = match Url::parse(url) {
        Ok(target) => target,
        Err(e) => return critical(format!("parse {url:?}: {e}")),
    };
    let mut header_map = HeaderMap::new();
    for (name, values) in headers {
        let Ok(name) = HeaderName::from_bytes(name.as_bytes()) else {
            return critical(format!("net/http: invalid header field name {name:?}"));
        };
        for value in values {
            let Ok(value) = HeaderValue::from_str(value) else {
                return critical(format!("net/http: invalid header field value for {name:?}"));
            };
            header_map.append(name.clone(), value);
        }
    }
    if target.scheme() == "https" && !tls_server_name.is_empty() {
        let authority = match (target.host_str(), target.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            _ => String::new(),
        };
        if !header_map.contains_key(HOST) {
            if let Ok(value) = HeaderValue::from_str(&authority) {
                header_map.insert(HOST, value);
            }
        }
        if target.set_host(Some(tls_server_name)).is_err() {
            return critical(format!("invalid TLS server name {tls_server_name:?}"));
        }
    }
    for (name, value) in [
        (USER_AGENT, USER_AGENT_VALUE),
        (ACCEPT, ACCEPT_VALUE),
        (CONNECTION, "close"),
    ] {
        if !header_map.contains_key(&name) {
            header_map.insert(name, HeaderValue::from_static(value));
        }
    }
    let request = client
        .request(method, target)
        .headers(header_map)
        .body(body.clone())
        .timeout(limit);
    let exchange = async {
        let mut response = request.send().await?;
        let status = response.status();
        let mut bytes = Vec::new();
        // Read no more than the output keeps; a read error keeps what came (Consul logs it).
        while bytes.len() < MAX_OUTPUT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_OUTPUT_BYTES - bytes.len();
                    bytes.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        Ok::<_, reqwest::Error>((status, bytes))
    };
    match with_limit(limit, exchange).await {
        Some(Ok((status, bytes))) => {
            let check_status = match status.as_u16() {
                200..=299 => CheckStatus::Passing,
                429 => CheckStatus::Warning,
                _ => CheckStatus::Critical,
            };
            ProbeResult::new(
                check_status,
                format!(
                    "HTTP {method_name} {url}: {status} Output: {}",
                    output_text(&bytes)
                ),
            )
        }
        Some(Err(e)) if e.is_timeout() => critical(timed_out(method_name, url, limit)),
        Some(Err(e)) => critical(format!(
            "{} {url:?}: {}",
            go_method(method_name),
            error_chain(&e)
        )),
        None => critical(timed_out(method_name, url, limit)),
    }
}

fn timed_out(method: &str, url: &str, limit: Duration) -> String {
    format!(
        "{} {url:?}: context deadline exceeded (Client.Timeout {} exceeded)",
        go_method(method),
        go_duration(limit)
    )
}

/// Go's error texts name the method as `Get`, `Post`...
fn go_method(method: &str) -> String {
    let lower = method.to_ascii_lowercase();
    let mut chars = lower.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}
