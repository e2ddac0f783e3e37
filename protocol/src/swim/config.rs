//! Timings and limits of the SWIM core, with memberlist's LAN defaults plus the serf
//! values Consul uses for reconnecting and reaping.

/// Static settings of one SWIM member. Every duration is in milliseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwimConfig {
    /// One probe per interval (scaled by local health, see `awareness`).
    pub probe_interval_ms: u64,
    /// Wait this long for a direct ack before asking others (scaled by local health).
    pub probe_timeout_ms: u64,
    /// Members asked to probe indirectly; also the number of independent suspicion
    /// confirmations that shrink a suspicion timeout to its minimum.
    pub indirect_checks: usize,
    /// Each update is retransmitted `retransmit_mult * ceil(log10(n + 1))` times.
    pub retransmit_mult: u32,
    /// Minimum suspicion timeout = `suspicion_mult * max(1, log10(n)) * probe_interval`.
    pub suspicion_mult: u32,
    /// Maximum suspicion timeout = this multiple of the minimum (Lifeguard).
    pub suspicion_max_timeout_mult: u32,
    /// Full state exchange with one random member, scaled up beyond 32 members.
    pub push_pull_interval_ms: u64,
    /// Gossip queued updates to `gossip_nodes` random members this often.
    pub gossip_interval_ms: u64,
    pub gossip_nodes: usize,
    /// Dead members still receive gossip this long, so they learn they were declared
    /// dead and can refute.
    pub gossip_to_the_dead_ms: u64,
    /// Local health scales timeouts by at most this factor (Lifeguard).
    pub awareness_max_multiplier: u32,
    /// Serf: try a push-pull with a random failed member this often (with probability
    /// failed / alive), so healed partitions merge again.
    pub reconnect_interval_ms: u64,
    /// Consul `reconnect_timeout`: failed members are forgotten after this long.
    pub reconnect_timeout_ms: u64,
    /// Consul/serf tombstone timeout: left members are forgotten after this long.
    pub tombstone_timeout_ms: u64,
    /// How often the reaper looks for members to forget (serf's reap interval).
    pub reap_interval_ms: u64,
    /// A join (or push-pull) without a reply after this long failed (memberlist's
    /// TCPTimeout).
    pub stream_timeout_ms: u64,
    /// A failed member may come back at a different address after this long; 0 = never
    /// (memberlist's DeadNodeReclaimTime). Left members may always.
    pub dead_node_reclaim_ms: u64,
    /// At most this many queued updates; beyond it the most-sent are dropped (serf's
    /// max queue depth). Push-pull repairs anything lost this way.
    pub broadcast_queue_limit: usize,
}

const HOUR_MS: u64 = 60 * 60 * 1000;

impl Default for SwimConfig {
    /// memberlist's DefaultLANConfig plus Consul's serf timeouts.
    fn default() -> SwimConfig {
        SwimConfig {
            probe_interval_ms: 1000,
            probe_timeout_ms: 500,
            indirect_checks: 3,
            retransmit_mult: 4,
            suspicion_mult: 4,
            suspicion_max_timeout_mult: 6,
            push_pull_interval_ms: 30_000,
            gossip_interval_ms: 200,
            gossip_nodes: 3,
            gossip_to_the_dead_ms: 30_000,
            awareness_max_multiplier: 8,
            reconnect_interval_ms: 30_000,
            reconnect_timeout_ms: 72 * HOUR_MS,
            tombstone_timeout_ms: 24 * HOUR_MS,
            reap_interval_ms: 15_000,
            stream_timeout_ms: 10_000,
            dead_node_reclaim_ms: 0,
            broadcast_queue_limit: 4096,
        }
    }
}

impl SwimConfig {
    /// memberlist's LAN defaults (same as `default()`).
    pub fn lan() -> SwimConfig {
        SwimConfig::default()
    }

    /// What a cairn agent gossips with unless `gossip_lan` says otherwise: memberlist's
    /// LAN values with probing twice as often (every 500 ms, 250 ms timeout), gossip
    /// every 100 ms (Consul's dev value) and `suspicion_mult` 3. A dead member is then
    /// declared in about 3 s instead of serf's 6 to 8 s (bench/gossip.sh), for a few
    /// dozen more small datagrams per second per member; Lifeguard's local health and
    /// refutation keep a paused or slow member from being declared dead by mistake (no
    /// false failure in the flapping-member runs). `gossip_lan` restores Consul's values.
    pub fn agent() -> SwimConfig {
        SwimConfig {
            probe_interval_ms: 500,
            probe_timeout_ms: 250,
            gossip_interval_ms: 100,
            suspicion_mult: 3,
            ..SwimConfig::default()
        }
    }

    /// For clusters on one loopback interface (tests, `-dev` style runs): delays are
    /// microseconds, so everything runs five times faster than LAN (probe every 200 ms,
    /// timeout 100 ms, gossip every 40 ms, push-pull every 6 s, reconnect every 6 s,
    /// stream timeout 2 s). Counts, multipliers and the reap timeouts stay as on a LAN.
    pub fn local() -> SwimConfig {
        SwimConfig {
            probe_interval_ms: 200,
            probe_timeout_ms: 100,
            push_pull_interval_ms: 6_000,
            gossip_interval_ms: 40,
            gossip_to_the_dead_ms: 6_000,
            reconnect_interval_ms: 6_000,
            reap_interval_ms: 3_000,
            stream_timeout_ms: 2_000,
            ..SwimConfig::default()
        }
    }
}

/// `ceil(log10(n + 1))` in exact integer arithmetic: the decimal digits of `n`
/// (at least 1).
fn ceil_log10_plus_one(n: usize) -> u32 {
    let mut digits = 1;
    let mut bound = 10usize;
    while bound <= n {
        digits += 1;
        bound = bound.saturating_mul(10);
    }
    digits
}

/// How many times each update is sent among `n` members.
pub fn retransmit_limit(retransmit_mult: u32, n: usize) -> u32 {
    retransmit_mult * ceil_log10_plus_one(n)
}

/// memberlist's pushPullScale: the interval up to 32 members, then one more interval
/// per doubling (`ceil(log2(n) - log2(32)) + 1` times the interval).
pub fn push_pull_interval(interval_ms: u64, n: usize) -> u64 {
    const THRESHOLD: usize = 32;
    if n <= THRESHOLD {
        return interval_ms;
    }
    let mut multiplier = 1u64;
    let mut covered = THRESHOLD;
    while covered < n {
        covered = covered.saturating_mul(2);
        multiplier += 1;
    }
    interval_ms * multiplier
}

/// Minimum suspicion timeout for `n` members: `mult * max(1, log10(n)) * interval`.
/// (memberlist keeps the scale at 1 or more, so tiny clusters are not hasty.)
pub fn suspicion_min_timeout(suspicion_mult: u32, n: usize, probe_interval_ms: u64) -> u64 {
    let scale = (n.max(1) as f64).log10().max(1.0);
    (f64::from(suspicion_mult) * scale * probe_interval_ms as f64) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retransmit_limit_grows_with_the_decimal_digits() {
        assert_eq!(retransmit_limit(4, 0), 4);
        assert_eq!(retransmit_limit(4, 9), 4);
        assert_eq!(retransmit_limit(4, 10), 8);
        assert_eq!(retransmit_limit(4, 99), 8);
        assert_eq!(retransmit_limit(4, 100), 12);
        assert_eq!(retransmit_limit(4, 500), 12);
    }

    #[test]
    fn push_pull_scales_beyond_32_members() {
        assert_eq!(push_pull_interval(30_000, 32), 30_000);
        assert_eq!(push_pull_interval(30_000, 33), 60_000);
        assert_eq!(push_pull_interval(30_000, 64), 60_000);
        assert_eq!(push_pull_interval(30_000, 65), 90_000);
        assert_eq!(push_pull_interval(30_000, 500), 150_000);
    }

    #[test]
    fn suspicion_minimum_scales_with_log10_of_the_cluster() {
        assert_eq!(suspicion_min_timeout(4, 1, 1000), 4000);
        assert_eq!(suspicion_min_timeout(4, 10, 1000), 4000);
        assert_eq!(suspicion_min_timeout(4, 100, 1000), 8000);
        assert_eq!(suspicion_min_timeout(4, 1000, 1000), 12000);
    }
}
