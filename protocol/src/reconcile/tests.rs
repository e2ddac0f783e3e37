use super::*;

fn leader() -> RegisterRequest {
    let mut node = Node {
        id: "11111111-0000-0000-0000-000000000000".into(),
        node: "s1".into(),
        address: "10.0.0.1".into(),
        datacenter: "dc1".into(),
        ..Node::default()
    };
    node.meta.insert("rack".into(), "r1".into());
    RegisterRequest {
        node,
        skip_node_update: false,
        service: Some(Service {
            node: "s1".into(),
            id: "consul".into(),
            service: "consul".into(),
            port: 8300,
            ..Service::default()
        }),
        checks: vec![Check {
            node: "s1".into(),
            check_id: SERF_HEALTH_CHECK_ID.into(),
            name: SERF_HEALTH_NAME.into(),
            status: CheckStatus::Passing,
            output: ALIVE_OUTPUT.into(),
            check_type: "serf".into(),
            ..Check::default()
        }],
    }
}

fn member(name: &str, address: &str, health: MemberHealth, server: bool) -> MemberRecord {
    MemberRecord {
        name: name.into(),
        id: String::new(),
        address: address.into(),
        health,
        server_port: server.then_some(8300),
    }
}

/// Apply the commands one by one, as the leader proposes them.
fn apply(store: &mut Store, commands: &[Command]) {
    for cmd in commands {
        let index = store.last_index() + 1;
        store.apply(index, cmd);
    }
}

fn serf_status(store: &Store, node: &str) -> Option<CheckStatus> {
    store
        .node_checks(node)
        .iter()
        .find(|c| c.check_id == SERF_HEALTH_CHECK_ID)
        .map(|c| c.status)
}

fn cluster() -> Vec<MemberRecord> {
    vec![
        member("s1", "10.0.0.1", MemberHealth::Alive, true),
        member("s2", "10.0.0.2", MemberHealth::Alive, true),
        member("c1", "10.0.0.4", MemberHealth::Alive, false),
    ]
}

#[test]
fn alive_members_are_registered_once_and_a_second_pass_proposes_nothing() {
    let mut store = Store::new();
    let commands = reconcile(&store, &cluster(), &leader(), "dc1");
    assert_eq!(commands.len(), 3, "{commands:?}");
    apply(&mut store, &commands);
    for name in ["s1", "s2", "c1"] {
        assert_eq!(
            serf_status(&store, name),
            Some(CheckStatus::Passing),
            "{name}"
        );
    }
    assert_eq!(store.node("s1").unwrap().meta.get("rack").unwrap(), "r1");
    let consul_on = |node: &str| {
        store
            .node_services(node)
            .iter()
            .any(|s| s.service == "consul" && s.port == 8300)
    };
    assert!(consul_on("s2"));
    assert!(!consul_on("c1"), "a client runs no consul service");
    assert_eq!(reconcile(&store, &cluster(), &leader(), "dc1"), vec![]);
}

#[test]
fn a_failed_member_keeps_its_entries_with_serf_health_critical_then_recovers() {
    let mut store = Store::new();
    let commands = reconcile(&store, &cluster(), &leader(), "dc1");
    apply(&mut store, &commands);
    // A user's service on c1 and node meta from anti-entropy stay through the failure.
    let mut meta_update = registration(&store, &cluster()[2], "dc1");
    meta_update.node.meta.insert("team".into(), "a".into());
    meta_update.service = Some(Service {
        node: "c1".into(),
        id: "web".into(),
        service: "web".into(),
        ..Service::default()
    });
    apply(&mut store, &[Command::Register(meta_update)]);

    let mut members = cluster();
    members[2].health = MemberHealth::Failed;
    let commands = reconcile(&store, &members, &leader(), "dc1");
    assert_eq!(commands.len(), 1, "{commands:?}");
    apply(&mut store, &commands);
    assert_eq!(serf_status(&store, "c1"), Some(CheckStatus::Critical));
    assert_eq!(store.node("c1").unwrap().meta.get("team").unwrap(), "a");
    assert_eq!(store.node_services("c1").len(), 1);
    assert_eq!(reconcile(&store, &members, &leader(), "dc1"), vec![]);

    members[2].health = MemberHealth::Alive;
    let commands = reconcile(&store, &members, &leader(), "dc1");
    apply(&mut store, &commands);
    assert_eq!(serf_status(&store, "c1"), Some(CheckStatus::Passing));
}

#[test]
fn left_and_reaped_members_are_deregistered_but_external_nodes_stay() {
    let mut store = Store::new();
    let commands = reconcile(&store, &cluster(), &leader(), "dc1");
    apply(&mut store, &commands);
    // An external node (no serfHealth): not the leader's to remove.
    let external = RegisterRequest {
        node: Node {
            node: "ext".into(),
            address: "192.0.2.1".into(),
            ..Node::default()
        },
        ..RegisterRequest::default()
    };
    apply(&mut store, &[Command::Register(external)]);

    let mut members = cluster();
    members[2].health = MemberHealth::Left;
    members.remove(1); // s2 reaped: gossip no longer knows it
    let commands = reconcile(&store, &members, &leader(), "dc1");
    assert_eq!(commands, vec![deregister("c1"), deregister("s2")]);
    apply(&mut store, &commands);
    assert!(store.node("c1").is_none() && store.node("s2").is_none());
    assert!(store.node("ext").is_some());
    assert_eq!(reconcile(&store, &members, &leader(), "dc1"), vec![]);
}

#[test]
fn the_leaders_own_node_is_restored_and_never_deregistered() {
    let mut store = Store::new();
    let commands = reconcile(&store, &cluster(), &leader(), "dc1");
    apply(&mut store, &commands);
    // A user deregisters the leader's node: the next pass restores it in full.
    apply(&mut store, &[deregister("s1")]);
    let commands = reconcile(&store, &cluster(), &leader(), "dc1");
    assert_eq!(commands, vec![Command::Register(leader())]);
    apply(&mut store, &commands);
    assert_eq!(store.node("s1").unwrap().meta.get("rack").unwrap(), "r1");

    // Gossip calling the leader itself left or forgetting it changes nothing.
    let mut members = cluster();
    members[0].health = MemberHealth::Left;
    assert_eq!(reconcile(&store, &members, &leader(), "dc1"), vec![]);
    assert_eq!(reconcile(&store, &members[1..], &leader(), "dc1"), vec![]);
}

#[test]
fn a_member_at_a_new_address_is_moved_and_names_match_in_any_case() {
    let mut store = Store::new();
    let commands = reconcile(&store, &cluster(), &leader(), "dc1");
    apply(&mut store, &commands);
    let mut members = cluster();
    members[2].address = "10.0.0.40".into();
    members[2].name = "C1".into();
    let commands = reconcile(&store, &members, &leader(), "dc1");
    assert_eq!(commands.len(), 1, "{commands:?}");
    apply(&mut store, &commands);
    assert_eq!(store.node("c1").unwrap().address, "10.0.0.40");
    assert_eq!(reconcile(&store, &members, &leader(), "dc1"), vec![]);
}
