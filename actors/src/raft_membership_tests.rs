//! Membership changes through the shell: a fourth in-memory server (not bootstrapped)
//! is added as a non-voter, catches up, is promoted; a voter is removed; refusals come
//! back typed. Servers on 127.0.0.215 to .218, port 8300.

use crate::endpoint::tests::set;
use crate::peer_net_tests::{cluster, eventually, leader_of, start_member, value};
use crate::{MembershipError, WriteError};
use protocol::api::Consistency;
use protocol::ids::ServerId;
use protocol::raft::{ChangeError, ConfigChange};

#[actix::test]
async fn a_server_is_added_caught_up_promoted_and_removed() {
    let mut members = cluster([215, 216, 217], |_| {}).await;
    let leader = leader_of(&members, &[0, 1, 2]).await;
    members[leader].api.write(set("k", "v")).await.unwrap();
    members.push(start_member(3, 218, &|_| {}).await);
    let new_addr = members[3].addr.to_string();

    // On a follower: no leader here.
    let follower = (leader + 1) % 3;
    let add = ConfigChange::AddNonVoter {
        id: ServerId("server-3".into()),
        addr: new_addr.clone(),
    };
    assert_eq!(
        members[follower]
            .server
            .change_membership(add.clone())
            .await,
        Err(MembershipError::Write(WriteError::NoLeader))
    );
    let l = &members[leader].server;
    assert_eq!(l.change_membership(add.clone()).await, Ok(()));
    // The new server gets the log (and the store) without voting.
    let fourth = &members[3];
    eventually("the non-voter caught up", || {
        let s = fourth.server.status();
        (s.applied_index > 0 && s.leader_addr.is_some()).then_some(())
    })
    .await;
    assert_eq!(
        value(&fourth.api, "k", Consistency::Stale).await,
        Some(b"v".to_vec())
    );
    let m = l.raft_members().await.unwrap();
    let roles: Vec<(String, bool)> = m.servers.iter().map(|s| (s.id.clone(), s.voter)).collect();
    assert_eq!(
        roles,
        vec![
            ("server-0".into(), true),
            ("server-1".into(), true),
            ("server-2".into(), true),
            ("server-3".into(), false),
        ]
    );
    assert!(m.committed);
    assert_eq!(m.replication.len(), 4);
    assert_eq!(fourth.server.status().voters.len(), 3, "peers: voters only");

    // Refusals are typed and change nothing.
    assert_eq!(
        l.change_membership(add).await,
        Err(MembershipError::Refused(ChangeError::AlreadyMember {
            id: ServerId("server-3".into())
        }))
    );
    let promote = ConfigChange::Promote {
        id: ServerId("server-3".into()),
    };
    assert_eq!(l.change_membership(promote).await, Ok(()));
    eventually("every server sees four voters", || {
        members
            .iter()
            .all(|m| m.server.status().voters.len() == 4)
            .then_some(())
    })
    .await;

    // Remove a follower: three voters again, writes still commit.
    let gone = (leader + 2) % 3;
    let remove = ConfigChange::Remove {
        id: ServerId(format!("server-{gone}")),
    };
    assert_eq!(l.change_membership(remove).await, Ok(()));
    let m = l.raft_members().await.unwrap();
    assert_eq!(m.voters().count(), 3);
    assert!(m.get(&format!("server-{gone}")).is_none());
    members[3].api.write(set("k2", "v2")).await.unwrap();
    assert_eq!(
        value(&members[leader].api, "k2", Consistency::Consistent).await,
        Some(b"v2".to_vec())
    );
}

#[actix::test]
async fn a_leader_restarted_on_a_new_address_corrects_its_own() {
    use crate::endpoint::tests::options;
    use crate::{ServerHandle, ServerOptions};
    let dir = tempfile::tempdir().unwrap();
    let at = |addr: &str| ServerOptions {
        data_dir: Some(dir.path().to_path_buf()),
        server_addr: addr.into(),
        ..options(true)
    };
    let voters = |s: &ServerHandle| -> Vec<String> {
        s.status().voters.into_iter().map(|(_, a)| a).collect()
    };
    let first = ServerHandle::start(at("127.0.0.215:8300")).await.unwrap();
    eventually("a leader", || {
        first.status().is_ready_leader().then_some(())
    })
    .await;
    assert_eq!(voters(&first), vec!["127.0.0.215:8300".to_string()]);
    first.shutdown().await;
    // Same data dir, new address: the configuration follows through the log.
    let second = ServerHandle::start(at("127.0.0.216:8300")).await.unwrap();
    eventually("the corrected address", || {
        (voters(&second) == ["127.0.0.216:8300"]).then_some(())
    })
    .await;
    let m = second.raft_members().await.unwrap();
    assert!(m.index > 2, "a configuration entry of this term: {m:?}");
    second.shutdown().await;
}
