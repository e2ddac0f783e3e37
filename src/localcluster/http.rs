//! The few HTTP calls the cluster makes to its own agents (leader, members, fault
//! rules), each bounded by a timeout: a paused agent accepts connections (the kernel
//! does) but never answers, and no cluster command may hang on it.

use std::time::Duration;

/// Status and body of one request; `Err` is a transport failure (refused, timeout ...).
pub fn call(
    method: &str,
    url: &str,
    body: Option<&[u8]>,
    timeout: Duration,
) -> Result<(u16, String), String> {
    let agent = agent(timeout);
    let result = match method {
        "PUT" => agent.put(url).send(body.unwrap_or_default()),
        "DELETE" => agent.delete(url).call(),
        _ => agent.get(url).call(),
    };
    let mut response = result.map_err(|e| format!("{method} {url}: {e}"))?;
    let status = response.status().as_u16();
    let text = response
        .body_mut()
        .with_config()
        .limit(16 * 1024 * 1024)
        .read_to_string()
        .map_err(|e| format!("{method} {url}: {e}"))?;
    Ok((status, text))
}

/// A blocking client whose every request gives up after `timeout`; non-2xx answers
/// are answers, not errors; no connection is kept for reuse (an agent restarted since
/// would turn a reused connection into a spurious failure).
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .max_idle_connections(0)
        .max_idle_connections_per_host(0)
        .timeout_connect(Some(timeout))
        .timeout_global(Some(timeout))
        .build()
        .into()
}

/// The leader `http_addr` names (`ip:8300`); `None` if it names none or does not answer.
pub fn leader_of(http_addr: &str, timeout: Duration) -> Option<String> {
    let (status, body) = call(
        "GET",
        &format!("http://{http_addr}/v1/status/leader"),
        None,
        timeout,
    )
    .ok()?;
    if status != 200 {
        return None;
    }
    let leader: String = serde_json::from_str(&body).ok()?;
    (!leader.is_empty()).then_some(leader)
}

/// The names of the members `http_addr` sees alive (gossip status 1).
pub fn alive_members(http_addr: &str, timeout: Duration) -> Option<Vec<String>> {
    let (status, body) = call(
        "GET",
        &format!("http://{http_addr}/v1/agent/members"),
        None,
        timeout,
    )
    .ok()?;
    if status != 200 {
        return None;
    }
    let members: serde_json::Value = serde_json::from_str(&body).ok()?;
    Some(
        members
            .as_array()?
            .iter()
            .filter(|m| m["Status"].as_i64() == Some(1))
            .filter_map(|m| m["Name"].as_str().map(str::to_string))
            .collect(),
    )
}

/// Whether anything answers HTTP on `http_addr` (any status).
pub fn answers(http_addr: &str, timeout: Duration) -> bool {
    call(
        "GET",
        &format!("http://{http_addr}/v1/status/leader"),
        None,
        timeout,
    )
    .is_ok()
}
