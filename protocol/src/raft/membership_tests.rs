//! Membership changes in the Raft core: non-voters, one change at a time, removing the
//! leader, and the configuration following the log (append, truncate, snapshot).

use super::*;

fn addrs(ids: &[&str]) -> Vec<(ServerId, String)> {
    ids.iter().map(|s| (id(s), format!("{s}:8300"))).collect()
}

fn members(voters: &[&str], non_voters: &[&str]) -> Configuration {
    Configuration {
        voters: addrs(voters),
        non_voters: addrs(non_voters),
    }
}

fn membership(voters: &[&str], non_voters: &[&str]) -> Payload {
    Payload::Membership(members(voters, non_voters))
}

fn add(s: &str) -> ConfigChange {
    ConfigChange::AddNonVoter {
        id: id(s),
        addr: format!("{s}:8300"),
    }
}

fn promote(s: &str) -> ConfigChange {
    ConfigChange::Promote { id: id(s) }
}

fn remove(s: &str) -> ConfigChange {
    ConfigChange::Remove { id: id(s) }
}

/// Make everything handed to the disk so far durable; returns the outputs drained.
fn durable(n: &mut Raft) -> Vec<Output> {
    let out = drain(n);
    let last = out
        .iter()
        .filter_map(|o| match o {
            Output::Persist(p) => Some(p.id),
            _ => None,
        })
        .max();
    if let Some(last) = last {
        n.on_persisted(last);
    }
    out
}

/// `a` leading term 2 with the membership at index 1 and its no-op (index 2) durable
/// but not yet committed.
fn unready_leader(voters: &[&str], non_voters: &[&str]) -> Raft {
    let log = vec![entry(1, 1, membership(voters, non_voters))];
    let mut a = node("a", hs(1, None), log);
    campaign(&mut a, "b");
    a.on_persisted(1); // the vote (its request was drained by `campaign`): a leads
    durable(&mut a); // the no-op
    assert_eq!(a.role(), Role::Leader);
    a
}

/// `a` leading term 2 with its no-op committed: ready for changes.
fn ready_leader(voters: &[&str], non_voters: &[&str]) -> Raft {
    let mut a = unready_leader(voters, non_voters);
    a.on_message(2 * T, id("b"), append_reply(2, true, 2, 2));
    drain(&mut a);
    assert_eq!(a.commit_index(), LogIndex(2));
    a
}

fn sends_to(out: &[Output], to: &str) -> Vec<Message> {
    out.iter()
        .filter_map(|o| match o {
            Output::Send { to: dest, msg } if dest.0 == to => Some(msg.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn old_configuration_entries_keep_their_encoding_and_still_decode() {
    // Variant 2 with the voter list: exactly what logs written before non-voters hold.
    let old = Payload::Configuration(vec![(id("a"), "x".into())]);
    let bytes = crate::codec::encode(&old).unwrap();
    assert_eq!(bytes, vec![2, 1, 1, b'a', 1, b'x']);
    let back: Payload = crate::codec::decode(&bytes, 1024).unwrap();
    assert_eq!(
        back.membership(),
        Some(members(&[], &[]).with_voters(&["a"], "x"))
    );
    let new = membership(&["a"], &["b"]);
    let bytes = crate::codec::encode(&new).unwrap();
    assert_eq!(bytes[0], 3, "the new variant comes last");
    assert_eq!(crate::codec::decode::<Payload>(&bytes, 1024).unwrap(), new);
}

impl Configuration {
    fn with_voters(mut self, ids: &[&str], addr: &str) -> Configuration {
        self.voters = ids.iter().map(|s| (id(s), addr.to_string())).collect();
        self
    }
}

#[test]
fn changes_need_a_ready_leader_and_go_one_at_a_time() {
    let log = vec![entry(1, 1, conf(&["a", "b", "c"]))];
    let mut follower = node("b", hs(1, None), log);
    assert_eq!(
        follower.propose_change(add("d")),
        Err(ChangeError::NotLeader(NotLeader { leader: None }))
    );

    // Until its no-op commits, a new leader may still hold an uncommitted change of an
    // earlier leader in its log: no change of its own yet.
    let mut a = unready_leader(&["a", "b", "c"], &[]);
    assert_eq!(a.propose_change(add("d")), Err(ChangeError::LeaderNotReady));
    a.on_message(2 * T, id("b"), append_reply(2, true, 2, 2));
    drain(&mut a);

    assert_eq!(a.propose_change(add("d")), Ok(LogIndex(3)));
    assert_eq!(a.membership(), &members(&["a", "b", "c"], &["d"]));
    assert_eq!(a.membership_index(), LogIndex(3));
    // The new server is sent the configuration entry at once.
    let out = durable(&mut a);
    assert_eq!(
        sends_to(&out, "d"),
        vec![append(
            2,
            "a",
            (2, 2),
            vec![entry(2, 3, membership(&["a", "b", "c"], &["d"]))],
            2
        )]
    );
    assert_eq!(
        a.propose_change(promote("d")),
        Err(ChangeError::ChangeInProgress { index: LogIndex(3) })
    );
    a.on_message(2 * T, id("b"), append_reply(2, true, 3, 3));
    assert!(drain(&mut a).contains(&committed(3)));
    assert_eq!(a.propose_change(promote("d")), Ok(LogIndex(4)));
    assert_eq!(a.membership(), &members(&["a", "b", "c", "d"], &[]));
}

#[test]
fn a_non_voter_is_replicated_to_but_never_counts_toward_commit() {
    let mut a = ready_leader(&["a", "b", "c"], &["d"]);
    a.on_message(2 * T, id("d"), append_reply(2, true, 2, 2));
    drain(&mut a);
    assert_eq!(a.propose(cmd("x")), Ok(LogIndex(3)));
    let out = durable(&mut a);
    assert_eq!(
        sends_to(&out, "d"),
        vec![append(2, "a", (2, 2), vec![entry(2, 3, cmd("x"))], 2)]
    );
    a.on_message(2 * T, id("d"), append_reply(2, true, 3, 3));
    assert_eq!(drain(&mut a), vec![], "a and d are not a quorum of a, b, c");
    a.on_message(2 * T, id("b"), append_reply(2, true, 3, 3));
    assert_eq!(drain(&mut a), vec![committed(3)]);
}

#[test]
fn a_non_voter_never_campaigns_and_its_votes_do_not_count() {
    let log = || vec![entry(1, 1, membership(&["a", "b", "c"], &["d"]))];
    let mut d = node("d", hs(1, None), log());
    d.on_tick(20 * T);
    assert_eq!(drain(&mut d), vec![]);
    assert_eq!(d.role(), Role::Follower);

    // A voter asks only voters, and a non-voter's (pre-)vote does not make a quorum.
    let mut a = node("a", hs(1, None), log());
    a.on_tick(2 * T);
    assert_eq!(
        drain(&mut a),
        vec![
            send("b", pre_vote(2, "a", 1, 1)),
            send("c", pre_vote(2, "a", 1, 1))
        ]
    );
    a.on_message(2 * T, id("d"), pre_vote_reply(2, true));
    assert_eq!(drain(&mut a), vec![]);
    assert_eq!(a.term(), Term(1));
}

#[test]
fn check_quorum_does_not_count_non_voters() {
    let mut a = ready_leader(&["a", "b", "c"], &["d"]);
    // Only the non-voter answers for a whole election timeout: a steps down.
    for t in (2 * T..=3 * T + 10).step_by(10) {
        a.on_message(t, id("d"), append_reply(2, true, 2, 2));
        a.on_tick(t);
    }
    assert_eq!(a.role(), Role::Follower);
}

#[test]
fn a_removed_leader_leads_until_the_change_commits_then_steps_down() {
    let mut a = ready_leader(&["a", "b", "c"], &[]);
    assert_eq!(a.propose_change(remove("a")), Ok(LogIndex(3)));
    assert_eq!(a.voters(), addrs(&["b", "c"]).as_slice());
    assert_eq!(a.role(), Role::Leader);
    durable(&mut a);
    // It no longer counts itself: b alone is not a quorum of b and c.
    a.on_message(2 * T, id("b"), append_reply(2, true, 3, 3));
    assert_eq!(drain(&mut a), vec![]);
    assert_eq!(a.role(), Role::Leader);
    a.on_message(2 * T, id("c"), append_reply(2, true, 3, 3));
    // Committed: the followers hear so, then a steps down.
    assert_eq!(
        drain(&mut a),
        vec![
            committed(3),
            send("b", append(2, "a", (3, 2), vec![], 3)),
            send("c", append(2, "a", (3, 2), vec![], 3)),
            role(Role::Follower, 2, None),
        ]
    );
    // Not a voter any more: it never campaigns.
    a.on_tick(20 * T);
    assert_eq!(drain(&mut a), vec![]);
}

#[test]
fn removing_a_follower_stops_replication_to_it() {
    let mut a = ready_leader(&["a", "b", "c"], &[]);
    assert_eq!(a.propose_change(remove("c")), Ok(LogIndex(3)));
    let out = durable(&mut a);
    assert_eq!(sends_to(&out, "c"), vec![]);
    assert_eq!(sends_to(&out, "b").len(), 1);
    // Two voters now: a and b are the quorum.
    a.on_message(2 * T, id("b"), append_reply(2, true, 3, 3));
    assert_eq!(drain(&mut a), vec![committed(3)]);
    a.on_tick(3 * T);
    assert_eq!(sends_to(&drain(&mut a), "c"), vec![]);
}

#[test]
fn refused_changes_name_their_reason() {
    let mut a = ready_leader(&["a", "b"], &["c"]);
    assert_eq!(
        a.propose_change(add("c")),
        Err(ChangeError::AlreadyMember { id: id("c") })
    );
    assert_eq!(
        a.propose_change(ConfigChange::AddNonVoter {
            id: id("e"),
            addr: "b:8300".into()
        }),
        Err(ChangeError::AddressInUse {
            addr: "b:8300".into(),
            by: id("b")
        })
    );
    assert_eq!(
        a.propose_change(promote("a")),
        Err(ChangeError::AlreadyVoter { id: id("a") })
    );
    assert_eq!(
        a.propose_change(promote("z")),
        Err(ChangeError::UnknownServer { id: id("z") })
    );
    assert_eq!(
        a.propose_change(remove("z")),
        Err(ChangeError::UnknownServer { id: id("z") })
    );
    // A non-voter can go; an address can move.
    assert_eq!(a.propose_change(remove("c")), Ok(LogIndex(3)));
    assert_eq!(a.membership(), &members(&["a", "b"], &[]));

    // The last voter stays.
    let mut solo = node("a", HardState::default(), vec![]);
    solo.bootstrap("a:8300");
    solo.on_tick(1);
    durable(&mut solo);
    durable(&mut solo);
    assert_eq!(solo.commit_index(), LogIndex(2));
    assert_eq!(
        solo.propose_change(remove("a")),
        Err(ChangeError::LastVoter { id: id("a") })
    );
    assert_eq!(
        solo.propose_change(ConfigChange::Readdress {
            id: id("a"),
            addr: "a:9300".into()
        }),
        Ok(LogIndex(3))
    );
    assert_eq!(solo.voters(), &[(id("a"), "a:9300".to_string())]);
}

#[test]
fn truncating_a_configuration_entry_restores_the_previous_one() {
    let log = vec![
        entry(1, 1, membership(&["a", "b", "c"], &[])),
        entry(2, 2, Payload::Noop),
        entry(2, 3, membership(&["a", "b", "c"], &["d"])),
    ];
    let mut b = node("b", hs(2, None), log);
    assert_eq!(b.membership(), &members(&["a", "b", "c"], &["d"]));
    assert_eq!(b.membership_index(), LogIndex(3));
    // A leader of term 3 never had that change: its entry replaces it.
    b.on_message(
        0,
        id("c"),
        append(3, "c", (2, 2), vec![entry(3, 3, cmd("x"))], 2),
    );
    assert_eq!(b.membership(), &members(&["a", "b", "c"], &[]));
    assert_eq!(b.membership_index(), LogIndex(1));
}

#[test]
fn progress_follows_the_configuration_and_reports_match_and_contact() {
    let mut a = ready_leader(&["a", "b", "c"], &[]);
    assert_eq!(a.propose_change(add("d")), Ok(LogIndex(3)));
    durable(&mut a);
    a.on_message(2 * T + 5, id("d"), append_reply(2, true, 3, 3));
    drain(&mut a);
    let progress = |a: &Raft| -> Vec<(String, bool, u64, u64)> {
        a.server_progress()
            .into_iter()
            .map(|p| (p.id.0, p.voter, p.match_index.0, p.last_contact_ms))
            .collect()
    };
    assert_eq!(
        progress(&a),
        vec![
            ("a".into(), true, 3, 2 * T + 5),
            ("b".into(), true, 2, 2 * T),
            ("c".into(), true, 0, 2 * T),
            ("d".into(), false, 3, 2 * T + 5),
        ]
    );
    a.on_message(2 * T + 6, id("b"), append_reply(2, true, 3, 3));
    assert_eq!(a.propose_change(remove("c")), Ok(LogIndex(4)));
    let ids: Vec<String> = progress(&a).into_iter().map(|p| p.0).collect();
    assert_eq!(ids, vec!["a", "b", "d"]);
    // A follower reports nothing.
    let log = vec![entry(1, 1, conf(&["a", "b"]))];
    assert_eq!(node("b", hs(1, None), log).server_progress(), vec![]);
}

#[test]
fn snapshots_and_compaction_keep_the_non_voters() {
    let mut a = ready_leader(&["a", "b"], &["c"]);
    assert!(a.compact(LogIndex(2)));
    assert_eq!(a.log_base().non_voters, addrs(&["c"]));
    assert_eq!(a.log_base().membership(), members(&["a", "b"], &["c"]));
    // A server restarted from that snapshot knows its non-voters.
    let snap = a.log_base().clone();
    let c = Raft::new(config("c"), hs(2, None), Some(snap), vec![], seeded(1), 0).unwrap();
    assert_eq!(c.membership(), &members(&["a", "b"], &["c"]));
    assert_eq!(c.membership_index(), LogIndex(2));
}
