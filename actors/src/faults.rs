//! Fault rules for test clusters: per peer IP, drop its traffic, delay it, or cut it
//! (drop and close open connections). One shared [`FaultRules`] per agent; every network
//! path (RPC client and server here, gossip later) asks [`FaultRules::check`] before it
//! sends or handles a frame, so a partition is one call on each side.
//!
//! Checking is cheap because it happens on every frame: an atomic "any rules?" flag
//! first (the production case: no rules ever), then a lock-free load of the rule map.
//! Connections that must close at once on a cut wait on [`FaultRules::changed`].

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// What to do to the traffic of one peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultRule {
    /// Discard every frame to or from the peer (a black hole).
    Drop,
    /// Hold every frame to the peer this long before sending it.
    Delay(Duration),
    /// [`FaultRule::Drop`], and close the connections open with the peer.
    Cut,
}

/// The answer for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    Delay(Duration),
    Drop,
    /// Drop the frame and close the connection it would use.
    Cut,
}

impl Verdict {
    /// Whether the frame must not go through (dropped or cut).
    pub fn blocks(self) -> bool {
        matches!(self, Verdict::Drop | Verdict::Cut)
    }
}

/// Shared, cheap to clone and to check. The default has no rules.
#[derive(Clone)]
pub struct FaultRules(Arc<Inner>);

struct Inner {
    any: AtomicBool,
    rules: ArcSwap<BTreeMap<IpAddr, FaultRule>>,
    writer: Mutex<()>,
    /// Bumped on every change, so connections can re-check their peer at once.
    generation: watch::Sender<u64>,
    /// A slow disk: every log fsync waits this many microseconds first (0: none).
    disk_stall_us: AtomicU64,
}

impl Default for FaultRules {
    fn default() -> FaultRules {
        FaultRules(Arc::new(Inner {
            any: AtomicBool::new(false),
            rules: ArcSwap::from_pointee(BTreeMap::new()),
            writer: Mutex::new(()),
            generation: watch::Sender::new(0),
            disk_stall_us: AtomicU64::new(0),
        }))
    }
}

impl std::fmt::Debug for FaultRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.0.rules.load().iter()).finish()
    }
}

impl FaultRules {
    pub fn new() -> FaultRules {
        FaultRules::default()
    }

    /// Apply `rule` to all traffic with `peer` (replacing its previous rule).
    pub fn set(&self, peer: IpAddr, rule: FaultRule) {
        self.update(|rules| {
            rules.insert(peer, rule);
        });
    }

    /// Lift the rule on `peer`.
    pub fn remove(&self, peer: IpAddr) {
        self.update(|rules| {
            rules.remove(&peer);
        });
    }

    /// Lift every rule, the disk stall included.
    pub fn clear(&self) {
        self.set_disk_stall(Duration::ZERO);
        self.update(BTreeMap::clear);
    }

    /// Make the Raft log's disk slow: each fsync waits `stall` first (zero lifts it). Only
    /// the log store's syncs wait, so it stalls exactly what a slow disk stalls: durable
    /// acknowledgements, not reads or the network.
    pub fn set_disk_stall(&self, stall: Duration) {
        let micros = u64::try_from(stall.as_micros()).unwrap_or(u64::MAX);
        self.0.disk_stall_us.store(micros, Ordering::Release);
    }

    /// The disk stall in force (zero: none).
    pub fn disk_stall(&self) -> Duration {
        Duration::from_micros(self.0.disk_stall_us.load(Ordering::Acquire))
    }

    /// The rules in force, in address order (for an HTTP listing).
    pub fn rules(&self) -> Vec<(IpAddr, FaultRule)> {
        self.0.rules.load().iter().map(|(a, r)| (*a, *r)).collect()
    }

    /// What to do with one frame to or from `peer`.
    pub fn check(&self, peer: IpAddr) -> Verdict {
        if !self.0.any.load(Ordering::Acquire) {
            return Verdict::Pass;
        }
        match self.0.rules.load().get(&peer) {
            None => Verdict::Pass,
            Some(FaultRule::Drop) => Verdict::Drop,
            Some(FaultRule::Delay(d)) => Verdict::Delay(*d),
            Some(FaultRule::Cut) => Verdict::Cut,
        }
    }

    /// Resolves at the next change of the rules after this call (then check again).
    pub fn changed(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut receiver = self.0.generation.subscribe();
        async move {
            // The sender lives as long as any FaultRules clone; if it is gone nothing can
            // change any more, so wait forever rather than spin.
            if receiver.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    fn update(&self, edit: impl FnOnce(&mut BTreeMap<IpAddr, FaultRule>)) {
        // Writers are rare (a test harness): one at a time, copy the map, edit, swap,
        // so the "any rules" flag always matches the map that was published last.
        let _writer = self.0.writer.lock();
        let mut next = BTreeMap::clone(&self.0.rules.load());
        edit(&mut next);
        self.0.any.store(!next.is_empty(), Ordering::Release);
        self.0.rules.store(Arc::new(next));
        self.0.generation.send_modify(|g| *g += 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rules_set_check_remove_clear_and_notify() {
        let rules = FaultRules::new();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(rules.check(a), Verdict::Pass);

        let changed = rules.changed();
        rules.set(a, FaultRule::Drop);
        tokio::time::timeout(Duration::from_secs(10), changed)
            .await
            .expect("a change wakes the waiter");
        rules.set(b, FaultRule::Delay(Duration::from_millis(5)));
        assert_eq!(rules.check(a), Verdict::Drop);
        assert!(rules.check(a).blocks());
        assert_eq!(rules.check(b), Verdict::Delay(Duration::from_millis(5)));
        assert!(!rules.check(b).blocks());

        rules.set(a, FaultRule::Cut);
        assert_eq!(rules.check(a), Verdict::Cut);
        assert_eq!(
            rules.rules(),
            vec![
                (a, FaultRule::Cut),
                (b, FaultRule::Delay(Duration::from_millis(5)))
            ]
        );
        rules.remove(a);
        assert_eq!(rules.check(a), Verdict::Pass);

        rules.set_disk_stall(Duration::from_millis(30));
        assert_eq!(rules.disk_stall(), Duration::from_millis(30));
        let clone = rules.clone();
        clone.clear();
        assert_eq!(rules.disk_stall(), Duration::ZERO);
        assert_eq!(rules.check(b), Verdict::Pass);
        assert!(rules.rules().is_empty());
    }
}
