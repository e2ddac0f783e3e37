use super::*;

const STABLE: u64 = 1_000;

fn config() -> AutopilotConfig {
    AutopilotConfig {
        server_stabilization_ms: STABLE,
        ..AutopilotConfig::default()
    }
}

fn member(id: &str, voter: bool, match_index: u64) -> RaftMember {
    RaftMember {
        id: id.into(),
        address: format!("{id}:8300"),
        voter,
        match_index,
        last_contact_ms: 10,
    }
}

fn gossip(id: &str, status: SerfStatus) -> GossipServer {
    GossipServer {
        id: id.into(),
        name: format!("node-{id}"),
        addr: format!("{id}:8300"),
        status,
        version: "1.21.0".into(),
    }
}

fn raft(members: Vec<RaftMember>) -> RaftState {
    RaftState {
        members,
        leader_id: "a".into(),
        term: 2,
        last_index: 100,
        change_pending: false,
    }
}

fn three_voters() -> Vec<RaftMember> {
    vec![
        member("a", true, 100),
        member("b", true, 100),
        member("c", true, 99),
    ]
}

fn alive(ids: &[&str]) -> Vec<GossipServer> {
    ids.iter().map(|id| gossip(id, SerfStatus::Alive)).collect()
}

fn decide(ap: &mut Autopilot, now: u64, raft: &RaftState, g: &[GossipServer]) -> Option<Decision> {
    let health = ap.observe(now, raft, g);
    ap.next_change(now, raft, g, &health)
}

#[test]
fn a_new_alive_server_is_added_as_a_non_voter() {
    let mut ap = Autopilot::new(config());
    let r = raft(three_voters());
    let d = decide(&mut ap, 0, &r, &alive(&["a", "b", "c", "d"])).unwrap();
    assert_eq!(
        d.change,
        ConfigChange::AddNonVoter {
            id: ServerId("d".into()),
            addr: "d:8300".into()
        }
    );
    assert_eq!((d.reason, d.name.as_str()), (Reason::New, "node-d"));
    // Nothing while a change is uncommitted; nothing for a stable cluster.
    let pending = RaftState {
        change_pending: true,
        ..r.clone()
    };
    assert_eq!(
        decide(&mut ap, 0, &pending, &alive(&["a", "b", "c", "d"])),
        None
    );
    assert_eq!(decide(&mut ap, 0, &r, &alive(&["a", "b", "c"])), None);
    // A failed or left outsider is not added.
    let mut g = alive(&["a", "b", "c"]);
    g.push(gossip("d", SerfStatus::Failed));
    assert_eq!(decide(&mut ap, 0, &r, &g), None);
}

#[test]
fn a_non_voter_is_promoted_once_caught_up_and_stable() {
    let mut ap = Autopilot::new(config());
    let g = alive(&["a", "b", "c", "d"]);
    let mut members = three_voters();
    members.push(member("d", false, 50));
    let behind = raft(members.clone());
    // Far behind: unhealthy? No (within max_trailing_logs) but not caught up.
    assert_eq!(decide(&mut ap, 0, &behind, &g), None);
    members[3].match_index = 95;
    let caught_up = raft(members);
    // Healthy since 0, but not yet for the stabilization time.
    assert_eq!(decide(&mut ap, STABLE - 1, &caught_up, &g), None);
    let d = decide(&mut ap, STABLE, &caught_up, &g).unwrap();
    assert_eq!(
        (d.change, d.reason),
        (
            ConfigChange::Promote {
                id: ServerId("d".into())
            },
            Reason::Stable
        )
    );
}

#[test]
fn health_flapping_restarts_the_stabilization_wait() {
    let mut ap = Autopilot::new(config());
    let g = alive(&["a", "b", "c", "d"]);
    let mut members = three_voters();
    members.push(member("d", false, 100));
    let healthy = raft(members.clone());
    members[3].last_contact_ms = 5_000;
    let silent = raft(members);
    assert_eq!(decide(&mut ap, 0, &healthy, &g), None);
    let h = ap.observe(STABLE / 2, &silent, &g);
    assert!(!h.servers[3].healthy);
    assert_eq!(h.servers[3].stable_since_unix_ms, STABLE / 2);
    assert_eq!(decide(&mut ap, STABLE, &healthy, &g), None);
    assert!(decide(&mut ap, 2 * STABLE, &healthy, &g).is_some());
}

#[test]
fn a_server_that_left_is_removed_and_a_failed_one_only_with_quorum() {
    let mut ap = Autopilot::new(config());
    let r = raft(three_voters());
    let mut g = alive(&["a", "b"]);
    g.push(gossip("c", SerfStatus::Left));
    let d = decide(&mut ap, 0, &r, &g).unwrap();
    assert_eq!(
        (d.change, d.reason),
        (
            ConfigChange::Remove {
                id: ServerId("c".into())
            },
            Reason::Left
        )
    );

    // Failed: removed once down for the stabilization time, while the others still
    // make a quorum of the configuration.
    g[2].status = SerfStatus::Failed;
    assert_eq!(
        decide(&mut ap, 0, &r, &g),
        None,
        "just failed: keeps its vote"
    );
    assert_eq!(decide(&mut ap, STABLE - 1, &r, &g), None);
    let d = decide(&mut ap, STABLE, &r, &g).unwrap();
    assert_eq!(d.reason, Reason::Failed);
    // Back before the grace ran out: the clock starts again at its next failure.
    g[2].status = SerfStatus::Alive;
    assert_eq!(decide(&mut ap, STABLE + 1, &r, &g), None);
    g[2].status = SerfStatus::Failed;
    assert_eq!(decide(&mut ap, STABLE + 2, &r, &g), None);
    let two = raft(vec![member("a", true, 100), member("c", true, 100)]);
    let g2 = vec![
        gossip("a", SerfStatus::Alive),
        gossip("c", SerfStatus::Failed),
    ];
    assert_eq!(decide(&mut ap, 0, &two, &g2), None, "1 of 2 is no quorum");
    assert_eq!(
        decide(&mut ap, 10 * STABLE, &two, &g2),
        None,
        "1 of 2 is no quorum"
    );
    // Without cleanup, failed servers stay.
    let mut off = Autopilot::new(AutopilotConfig {
        cleanup_dead_servers: false,
        ..config()
    });
    assert_eq!(decide(&mut off, 0, &r, &g), None);
    // The leader never removes itself; unknown servers are left alone.
    assert_eq!(decide(&mut ap, 0, &r, &alive(&["b", "c"])), None);
}

#[test]
fn a_stale_member_on_a_reused_address_goes_first() {
    let mut ap = Autopilot::new(config());
    let r = raft(three_voters());
    // c restarted with a new data dir: a new id on c's address, the old id gone.
    let mut g = alive(&["a", "b"]);
    g.push(GossipServer {
        id: "c2".into(),
        ..gossip("c", SerfStatus::Alive)
    });
    let d = decide(&mut ap, 0, &r, &g).unwrap();
    assert_eq!(
        (d.change, d.reason),
        (
            ConfigChange::Remove {
                id: ServerId("c".into())
            },
            Reason::AddressReused
        )
    );
    // A member that moved gets its new address.
    let mut g = alive(&["a", "b", "c"]);
    g[2].addr = "c-new:8300".into();
    let d = decide(&mut ap, 0, &r, &g).unwrap();
    assert_eq!(d.reason, Reason::Moved);
}

#[test]
fn health_report_and_failure_tolerance() {
    let mut ap = Autopilot::new(config());
    let mut members = three_voters();
    members.push(member("d", false, 10));
    let r = raft(members);
    let h = ap.observe(7, &r, &alive(&["a", "b", "c", "d"]));
    assert!(h.healthy);
    assert_eq!(h.failure_tolerance, 1);
    let a = &h.servers[0];
    assert_eq!(
        (
            a.leader,
            a.last_contact_ms,
            a.voter,
            a.serf_status.as_str(),
            a.name.as_str()
        ),
        (true, 0, true, "alive", "node-a")
    );
    assert_eq!(a.stable_since_unix_ms, 7);
    // d lags by 90 < 250: healthy, but not a voter.
    assert!(h.servers[3].healthy && !h.servers[3].voter);
    let mut g = alive(&["a", "b", "d"]);
    g.push(gossip("c", SerfStatus::Failed));
    let h = ap.observe(8, &r, &g);
    assert!(!h.healthy);
    assert_eq!(h.failure_tolerance, 0);
    assert_eq!(h.servers[2].serf_status, "failed");
}
