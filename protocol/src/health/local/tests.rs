use super::*;
use crate::health::definition::{
    parse_check, parse_service, AgentCheckDraft, AgentServiceDraft, CheckRules,
};
use crate::store::registration::ServiceDraft;

fn web(checks: Vec<AgentCheckDraft>) -> ServiceDefinition {
    let draft = AgentServiceDraft {
        service: ServiceDraft {
            id: "web-1".into(),
            service: "web".into(),
            tags: vec!["v1".into()],
            ..ServiceDraft::default()
        },
        check: None,
        checks,
    };
    parse_service(draft, "ignored", Origin::Remote, &CheckRules::default())
        .unwrap()
        .value
}

fn ttl(id: &str, ms: u64) -> AgentCheckDraft {
    AgentCheckDraft {
        id: id.into(),
        ttl: Ok(Some(ms)),
        ..AgentCheckDraft::default()
    }
}

fn status_of(state: &LocalState, id: &str) -> (CheckStatus, String) {
    let c = state
        .catalog_checks()
        .into_iter()
        .find(|c| c.check_id == id)
        .unwrap();
    (c.status, c.output)
}

#[test]
fn a_service_with_a_ttl_check_is_fed_and_expires() {
    let mut s = LocalState::new("n1");
    s.add_service(web(vec![ttl("t", 10_000)]), Origin::Remote, false, 0);
    let checks = s.catalog_checks();
    assert_eq!(checks[0].node, "n1");
    assert_eq!(checks[0].service_name, "web");
    assert_eq!(checks[0].service_tags, ["v1"]);
    assert_eq!(checks[0].check_type, "ttl");
    assert_eq!(checks[0].status, CheckStatus::Critical);
    assert_eq!(s.catalog_services()[0].node, "n1");

    assert_eq!(
        s.update_ttl("t", CheckStatus::Passing, "fine".into(), 1_000),
        Ok(Some(true))
    );
    assert_eq!(s.next_deadline_ms(), Some(11_000));
    assert!(!s.on_tick(10_999));
    assert!(s.on_tick(11_000));
    let (status, output) = status_of(&s, "t");
    assert_eq!(status, CheckStatus::Critical);
    assert!(output.starts_with("TTL expired"), "{output}");
    assert_eq!(
        s.update_ttl("nope", CheckStatus::Passing, String::new(), 0),
        Err(unknown_check("nope"))
    );
}

#[test]
fn probed_checks_are_started_stopped_and_stale_reports_dropped() {
    let mut s = LocalState::new("n1");
    let http = AgentCheckDraft {
        http: "http://127.0.0.1:1/".into(),
        interval: Ok(Some(1_000)),
        ..AgentCheckDraft::default()
    };
    s.add_service(web(vec![http.clone()]), Origin::Remote, false, 0);
    let cmds = s.take_probe_commands();
    let gen1 = match &cmds[..] {
        [ProbeCommand::Start { spec, generation }] if spec.id == "service:web-1" => *generation,
        other => panic!("{other:?}"),
    };
    // Re-registering keeps the status, restarts the probe under a new generation.
    assert_eq!(
        s.on_probe(
            "service:web-1",
            gen1,
            ProbeResult::new(CheckStatus::Passing, "200"),
            5
        ),
        Some(true)
    );
    s.add_service(web(vec![http]), Origin::Remote, false, 10);
    let cmds = s.take_probe_commands();
    assert!(matches!(cmds[0], ProbeCommand::Stop { .. }));
    assert_eq!(status_of(&s, "service:web-1").0, CheckStatus::Passing);
    assert_eq!(
        s.on_probe(
            "service:web-1",
            gen1,
            ProbeResult::new(CheckStatus::Critical, "x"),
            11
        ),
        None
    );
    assert!(s.remove_service("web-1"));
    assert!(matches!(
        &s.take_probe_commands()[..],
        [ProbeCommand::Stop { check_id }] if check_id == "service:web-1"
    ));
    assert!(s.catalog_checks().is_empty());
}

#[test]
fn replace_existing_checks_drops_the_others() {
    let mut s = LocalState::new("n1");
    s.add_service(
        web(vec![ttl("a", 1000), ttl("b", 1000)]),
        Origin::Remote,
        false,
        0,
    );
    s.add_service(web(vec![ttl("a", 1000)]), Origin::Remote, false, 0);
    assert_eq!(s.catalog_checks().len(), 2);
    s.add_service(web(vec![ttl("a", 1000)]), Origin::Remote, true, 0);
    assert_eq!(s.catalog_checks().len(), 1);
}

#[test]
fn maintenance_adds_consuls_critical_checks() {
    let mut s = LocalState::new("n1");
    s.add_service(web(vec![]), Origin::Remote, false, 0);
    s.set_node_maintenance(true, "");
    s.set_service_maintenance("web-1", true, "deploy").unwrap();
    let checks = s.catalog_checks();
    let ids: Vec<&str> = checks.iter().map(|c| c.check_id.as_str()).collect();
    assert_eq!(ids, ["_node_maintenance", "_service_maintenance:web-1"]);
    assert!(checks.iter().all(|c| c.status == CheckStatus::Critical));
    assert_eq!(checks[0].name, "Node Maintenance Mode");
    assert!(checks[0].notes.contains("no reason was provided"));
    assert_eq!(
        (checks[1].notes.as_str(), checks[1].service_name.as_str()),
        ("deploy", "web")
    );
    assert_eq!(
        s.set_service_maintenance("nope", true, ""),
        Err(unknown_service("nope"))
    );
    s.set_node_maintenance(false, "");
    s.set_service_maintenance("web-1", false, "").unwrap();
    assert!(s.catalog_checks().is_empty());
}

#[test]
fn a_service_critical_too_long_is_reaped() {
    let mut s = LocalState::new("n1");
    let mut c = ttl("t", 1_000);
    c.deregister_critical_service_after = Ok(Some(60_000));
    s.add_service(web(vec![c]), Origin::Remote, false, 0);
    assert!(s.has_reapable_checks());
    assert!(s.reap(59_999).is_empty());
    assert_eq!(s.reap(60_000), ["web-1"]);
    assert!(s.catalog_services().is_empty());
}

#[test]
fn check_registration_needs_its_service_and_aliases_follow_it() {
    let mut s = LocalState::new("n1");
    let rules = CheckRules::default();
    let alias = parse_check(
        AgentCheckDraft {
            name: "mirror".into(),
            alias_service: "web-1".into(),
            ..AgentCheckDraft::default()
        },
        Origin::Remote,
        &rules,
    )
    .unwrap()
    .value;
    let mut on_web = alias.clone();
    on_web.service_id = "web-1".into();
    assert!(matches!(
        s.add_check(on_web, Origin::Remote, 0),
        Err(RequestError::NotFound(t)) if t == "ServiceID \"web-1\" does not exist"
    ));
    s.add_service(web(vec![ttl("t", 10_000)]), Origin::Remote, false, 0);
    s.add_check(alias, Origin::Remote, 0).unwrap();
    assert_eq!(status_of(&s, "mirror").0, CheckStatus::Critical);
    s.update_ttl("t", CheckStatus::Passing, String::new(), 1)
        .unwrap();
    assert_eq!(
        status_of(&s, "mirror"),
        (CheckStatus::Passing, "All checks passing.".to_string())
    );
}

#[test]
fn persisted_registrations_come_back() {
    let mut s = LocalState::new("n1");
    s.add_service(web(vec![ttl("t", 10_000)]), Origin::Remote, false, 0);
    s.update_ttl("t", CheckStatus::Passing, "ok".into(), 0)
        .unwrap();
    s.set_service_maintenance("web-1", true, "r").unwrap();
    s.add_service(
        ServiceDefinition {
            service: Service {
                id: "cfg".into(),
                service: "cfg".into(),
                ..Service::default()
            },
            checks: vec![],
        },
        Origin::Local,
        false,
        0,
    );
    let saved = s.persisted();
    assert_eq!(
        saved.services.len(),
        1,
        "config-file services are not persisted"
    );
    let mut back = LocalState::new("n1");
    back.restore(saved, 500);
    assert_eq!(back.catalog_services(), {
        let mut v = s.catalog_services();
        v.retain(|x| x.id != "cfg");
        v
    });
    assert_eq!(
        status_of(&back, "t"),
        (CheckStatus::Passing, "ok".to_string())
    );
    assert_eq!(back.next_deadline_ms(), Some(10_500));
    assert_eq!(back.catalog_checks().len(), 2);
}

#[test]
fn go_durations_as_consul_renders_them() {
    assert_eq!(go_duration(10_000), "10s");
    assert_eq!(go_duration(90_000), "1m30s");
    assert_eq!(go_duration(500), "500ms");
    assert_eq!(go_duration(1_500), "1.5s");
    assert_eq!(go_duration(3_600_000), "1h0m0s");
}
