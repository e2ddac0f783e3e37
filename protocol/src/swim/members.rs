//! The member table: every known member by name, plus the randomized round-robin probe
//! order (shuffled each round, newcomers inserted at random positions) and counts by
//! status, so the cluster size is known without a scan.

use super::types::{Member, MemberStatus};
use crate::rng::CoreRng;
use rand::seq::SliceRandom;
use rand::Rng;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// A member and when its status last changed (on the local clock).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub member: Member,
    pub status_changed_ms: u64,
}

#[derive(Debug, Clone, Default)]
pub struct MemberTable {
    by_name: BTreeMap<String, Entry>,
    /// Who we last heard of at each address (a newcomer at an address replaces).
    by_addr: BTreeMap<SocketAddr, String>,
    /// Probe order: every known member (the prober skips itself, dead and left).
    order: Vec<String>,
    next_probe: usize,
    /// Members per status, indexed by `status_slot`.
    counts: [usize; 4],
}

fn status_slot(status: MemberStatus) -> usize {
    match status {
        MemberStatus::Alive => 0,
        MemberStatus::Suspect => 1,
        MemberStatus::Dead => 2,
        MemberStatus::Left => 3,
    }
}

impl MemberTable {
    pub fn get(&self, name: &str) -> Option<&Entry> {
        self.by_name.get(name)
    }

    /// The member we last heard of at `addr`.
    pub fn name_at(&self, addr: &SocketAddr) -> Option<&str> {
        self.by_addr.get(addr).map(String::as_str)
    }

    /// Move a member to a new address.
    pub fn set_addr(&mut self, name: &str, addr: SocketAddr) {
        let Some(entry) = self.by_name.get_mut(name) else {
            return;
        };
        let old = std::mem::replace(&mut entry.member.addr, addr);
        if self.by_addr.get(&old).is_some_and(|n| n == name) {
            self.by_addr.remove(&old);
        }
        self.by_addr.insert(addr, name.to_string());
    }

    /// Mutable access to everything but the status and address (`set_status`,
    /// `set_addr`).
    pub fn member_mut(&mut self, name: &str) -> Option<&mut Member> {
        self.by_name.get_mut(name).map(|e| &mut e.member)
    }

    /// Add a member never seen before, at a random place in the probe order.
    pub fn insert(&mut self, rng: &mut CoreRng, member: Member, now_ms: u64) {
        debug_assert!(!self.by_name.contains_key(&member.name));
        self.counts[status_slot(member.status)] += 1;
        let name = member.name.clone();
        self.by_addr.insert(member.addr, name.clone());
        self.by_name.insert(
            name.clone(),
            Entry {
                member,
                status_changed_ms: now_ms,
            },
        );
        self.order.push(name);
        let last = self.order.len() - 1;
        let at = rng.random_range(0..=last);
        self.order.swap(at, last);
    }

    pub fn set_status(&mut self, name: &str, status: MemberStatus, now_ms: u64) {
        if let Some(entry) = self.by_name.get_mut(name) {
            if entry.member.status != status {
                self.counts[status_slot(entry.member.status)] -= 1;
                self.counts[status_slot(status)] += 1;
                entry.member.status = status;
                entry.status_changed_ms = now_ms;
            }
        }
    }

    /// Forget a member entirely.
    pub fn remove(&mut self, name: &str) -> Option<Member> {
        let entry = self.by_name.remove(name)?;
        if self
            .by_addr
            .get(&entry.member.addr)
            .is_some_and(|n| n == name)
        {
            self.by_addr.remove(&entry.member.addr);
        }
        self.counts[status_slot(entry.member.status)] -= 1;
        if let Some(pos) = self.order.iter().position(|n| n == name) {
            self.order.remove(pos);
            if pos < self.next_probe {
                self.next_probe -= 1;
            }
        }
        Some(entry.member)
    }

    pub fn count(&self, status: MemberStatus) -> usize {
        self.counts[status_slot(status)]
    }

    /// Alive and suspect members (ourselves included): the cluster size estimate.
    pub fn live_count(&self) -> usize {
        self.count(MemberStatus::Alive) + self.count(MemberStatus::Suspect)
    }

    /// Every member in name order.
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.by_name.values()
    }

    /// The next member to probe in round-robin order, skipping `me`, dead and left
    /// members; the order is reshuffled whenever a round completes.
    pub fn next_probe_target(&mut self, rng: &mut CoreRng, me: &str) -> Option<String> {
        for _ in 0..=self.order.len() {
            if self.next_probe >= self.order.len() {
                self.order.shuffle(rng);
                self.next_probe = 0;
            }
            let name = self.order.get(self.next_probe)?;
            self.next_probe += 1;
            let eligible = name != me
                && self
                    .by_name
                    .get(name)
                    .is_some_and(|e| !e.member.status.is_dead_or_left());
            if eligible {
                return Some(name.clone());
            }
        }
        None
    }

    /// Up to `k` distinct random members passing `filter` (memberlist's kRandomNodes:
    /// random draws, at most 3n of them, so large tables are never scanned whole).
    pub fn random_members(
        &self,
        rng: &mut CoreRng,
        k: usize,
        filter: impl Fn(&Entry) -> bool,
    ) -> Vec<String> {
        let n = self.order.len();
        let mut out: Vec<String> = Vec::with_capacity(k);
        if n == 0 || k == 0 {
            return out;
        }
        for _ in 0..3 * n {
            if out.len() >= k {
                break;
            }
            let name = &self.order[rng.random_range(0..n)];
            if out.contains(name) {
                continue;
            }
            if self.by_name.get(name).is_some_and(&filter) {
                out.push(name.clone());
            }
        }
        out
    }
}
