//! TCP and UDP probes (Consul's `CheckTCP` and `CheckUDP`).

use super::with_limit;
use protocol::health::ProbeResult;
use protocol::store::CheckStatus;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use tokio::net::{lookup_host, TcpStream, UdpSocket};
use tokio::time::Instant;

/// Connected within the limit: passing; refused, unreachable or timed out: critical.
pub async fn tcp(address: &str, limit: Duration) -> ProbeResult {
    match with_limit(limit, TcpStream::connect(address)).await {
        Some(Ok(_stream)) => ProbeResult::new(
            CheckStatus::Passing,
            format!("TCP connect {address}: Success"),
        ),
        Some(Err(e)) => ProbeResult::new(CheckStatus::Critical, format!("dial tcp {address}: {e}")),
        None => ProbeResult::new(
            CheckStatus::Critical,
            format!("dial tcp {address}: i/o timeout"),
        ),
    }
}

/// Consul's UDP rules: send a datagram; a reply, or silence until the limit, is passing
/// (UDP has no handshake, so silence is all a healthy listener may give); an error
/// (an ICMP port unreachable surfaces as "connection refused") is critical.
pub async fn udp(address: &str, limit: Duration) -> ProbeResult {
    let deadline = Instant::now() + limit;
    let success = || {
        ProbeResult::new(
            CheckStatus::Passing,
            format!("UDP connect {address}: Success"),
        )
    };
    let critical = |what: &str, e: std::io::Error| {
        ProbeResult::new(CheckStatus::Critical, format!("{what} udp {address}: {e}"))
    };
    let target = match with_limit(limit, lookup_host(address)).await {
        Some(Ok(mut addrs)) => match addrs.next() {
            Some(target) => target,
            None => {
                return ProbeResult::new(
                    CheckStatus::Critical,
                    format!("dial udp {address}: no address found"),
                )
            }
        },
        Some(Err(e)) => return critical("dial", e),
        None => {
            return ProbeResult::new(
                CheckStatus::Critical,
                format!("dial udp {address}: i/o timeout"),
            )
        }
    };
    let local: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = match UdpSocket::bind(local).await {
        Ok(socket) => socket,
        Err(e) => return critical("dial", e),
    };
    if let Err(e) = socket.connect(target).await {
        return critical("dial", e);
    }
    // Consul sends the check's (empty by default) message.
    if let Err(e) = socket.send(&[]).await {
        return critical("write", e);
    }
    let mut reply = [0u8; 1];
    match tokio::time::timeout_at(deadline, socket.recv(&mut reply)).await {
        Ok(Ok(_)) | Err(_) => success(),
        Ok(Err(e)) => critical("read", e),
    }
}
