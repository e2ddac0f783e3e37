//! The agent's own services and checks with real processes on loopback (issue 10):
//! registration through a client agent seen from every node, TTL checks fed and left to
//! expire (with `?passing` and DNS following), script checks refused, restart
//! persistence, reaping after DeregisterCriticalServiceAfter, maintenance, and the full
//! sync removing catalog entries on the agent's node that it does not know.
//! Addresses 127.0.6.1 to 127.0.6.20, standard ports.

mod common;

use common::dns::udp_query;
use common::{http_client, run_cairn, wait_for, Agent};
use hickory_proto::rr::RecordType;
use serde_json::{json, Value};
use std::path::Path;

fn get_json(agent: &Agent, path: &str) -> Option<Value> {
    http_client().get(agent.url(path)).send().ok()?.json().ok()
}

fn put(agent: &Agent, path: &str, body: Option<Value>) -> (u16, String) {
    let mut req = http_client().put(agent.url(path));
    if let Some(b) = body {
        req = req.body(b.to_string());
    }
    let resp = req.send().expect("PUT");
    (resp.status().as_u16(), resp.text().unwrap_or_default())
}

/// Node names of the instances of `service` as `agent` answers `/v1/health/service`.
fn instances(agent: &Agent, service: &str, passing: bool) -> Option<Vec<String>> {
    let q = if passing { "?passing" } else { "" };
    let list = get_json(agent, &format!("/v1/health/service/{service}{q}"))?;
    Some(
        list.as_array()?
            .iter()
            .filter_map(|e| e["Node"]["Node"].as_str().map(String::from))
            .collect(),
    )
}

fn dns_a_count(agent: &Agent, name: &str) -> usize {
    udp_query(agent.dns_addr(), name, RecordType::A)
        .answers
        .len()
}

fn server(ip: &str, node: &str, root: &Path, extra: &[&str]) -> Agent {
    Agent::server(ip, node, &root.join(node), extra)
}

#[test]
fn a_client_agents_service_is_seen_everywhere_and_follows_its_ttl_check() {
    let root = tempfile::tempdir().unwrap();
    let s1 = server("127.0.6.1", "s1", root.path(), &[]);
    let c1 = Agent::client("127.0.6.2", "c1", &root.path().join("c1"), &["127.0.6.1"]);
    let (code, text) = put(
        &c1,
        "/v1/agent/service/register",
        Some(
            json!({"Name": "web", "ID": "web-1", "Port": 8080, "Tags": ["v1"],
                     "Check": {"TTL": "3s"}}),
        ),
    );
    assert_eq!((code, text.as_str()), (200, ""));
    // New checks start critical: listed, but not passing, and not in DNS.
    for agent in [&s1, &c1] {
        wait_for("the instance in the catalog", || {
            (instances(agent, "web", false)? == ["c1"]).then_some(())
        });
        assert_eq!(instances(agent, "web", true), Some(vec![]));
    }
    assert_eq!(dns_a_count(&s1, "web.service.consul."), 0);

    let (code, _) = put(&c1, "/v1/agent/check/pass/service:web-1?note=fine", None);
    assert_eq!(code, 200);
    for agent in [&s1, &c1] {
        wait_for("the instance passing", || {
            (instances(agent, "web", true)? == ["c1"]).then_some(())
        });
    }
    wait_for("the instance in DNS", || {
        (dns_a_count(&s1, "web.service.consul.") == 1).then_some(())
    });
    let checks = get_json(&c1, "/v1/agent/checks").unwrap();
    assert_eq!(checks["service:web-1"]["Output"], "fine");
    assert_eq!(checks["service:web-1"]["Status"], "passing");

    // Not fed again: the TTL expires and the instance leaves ?passing and DNS.
    wait_for("the TTL to expire", || {
        instances(&s1, "web", true)?.is_empty().then_some(())
    });
    wait_for("the instance to leave DNS", || {
        (dns_a_count(&s1, "web.service.consul.") == 0).then_some(())
    });
    let checks = get_json(&s1, "/v1/health/checks/web").unwrap();
    let output = checks[0]["Output"].as_str().unwrap_or_default();
    assert!(output.starts_with("TTL expired"), "{output}");

    // Deregistered through the agent: gone from the catalog too.
    let (code, _) = put(&c1, "/v1/agent/service/deregister/web-1", None);
    assert_eq!(code, 200);
    wait_for("the instance gone", || {
        instances(&s1, "web", false)?.is_empty().then_some(())
    });
    let (code, text) = put(&c1, "/v1/agent/service/deregister/web-1", None);
    assert_eq!(code, 404);
    assert!(text.starts_with("Unknown service ID \"web-1\""), "{text}");
}

#[test]
fn script_checks_are_refused_unless_enabled_and_bad_checks_get_consuls_texts() {
    let root = tempfile::tempdir().unwrap();
    let s = server("127.0.6.3", "s3", root.path(), &[]);
    let (code, text) = put(
        &s,
        "/v1/agent/check/register",
        Some(json!({"Name": "disk", "Args": ["/bin/true"], "Interval": "10s"})),
    );
    assert_eq!(code, 500);
    assert!(
        text.starts_with("Scripts are disabled on this agent"),
        "{text}"
    );
    let (code, text) = put(
        &s,
        "/v1/agent/check/register",
        Some(json!({"Name": "h", "HTTP": "http://127.0.0.1:1/"})),
    );
    assert_eq!(code, 400);
    assert!(
        text.starts_with("Invalid check: Interval must be > 0"),
        "{text}"
    );
    let (code, text) = put(
        &s,
        "/v1/agent/check/register",
        Some(json!({"Name": "t", "TTL": "10s", "ServiceID": "nope"})),
    );
    assert_eq!(
        (code, text.as_str()),
        (404, "ServiceID \"nope\" does not exist")
    );
    let (code, text) = put(&s, "/v1/agent/check/pass/nope", None);
    assert_eq!(code, 404);
    assert!(text.starts_with("Unknown check ID \"nope\""), "{text}");
    assert!(get_json(&s, "/v1/agent/checks")
        .unwrap()
        .as_object()
        .unwrap()
        .is_empty());
    // Over the agent's check limit: refused whole (413), nothing of it kept.
    let many: Vec<Value> = (0..8_193).map(|_| json!({"TTL": "60s"})).collect();
    let (code, text) = put(
        &s,
        "/v1/agent/service/register",
        Some(json!({"Name": "huge", "Checks": many})),
    );
    assert_eq!(code, 413, "{text}");
    assert!(text.starts_with("Too many services or checks"), "{text}");
    assert!(get_json(&s, "/v1/agent/services")
        .unwrap()
        .as_object()
        .unwrap()
        .is_empty());

    let root2 = tempfile::tempdir().unwrap();
    let enabled = server("127.0.6.4", "s4", root2.path(), &["-enable-script-checks"]);
    let (code, text) = put(
        &enabled,
        "/v1/agent/check/register",
        Some(json!({"Name": "disk", "Args": ["/bin/true"], "Interval": "10s"})),
    );
    assert_eq!((code, text.as_str()), (200, ""));
}

#[test]
fn registrations_survive_a_restart_and_maintenance_takes_instances_out() {
    let root = tempfile::tempdir().unwrap();
    let mut s = server("127.0.6.5", "s5", root.path(), &[]);
    let (code, _) = put(
        &s,
        "/v1/agent/service/register",
        Some(json!({"Name": "db", "ID": "db-1", "Port": 5432,
                     "Checks": [{"TTL": "60s", "Status": "passing"}]})),
    );
    assert_eq!(code, 200);
    wait_for("db passing", || {
        (instances(&s, "db", true)? == ["s5"]).then_some(())
    });
    let (code, _) = put(
        &s,
        "/v1/agent/service/maintenance/db-1?enable=true&reason=deploy",
        None,
    );
    assert_eq!(code, 200);
    wait_for("db out while in maintenance", || {
        instances(&s, "db", true)?.is_empty().then_some(())
    });
    let health = http_client()
        .get(s.url("/v1/agent/health/service/id/db-1?format=text"))
        .send()
        .unwrap();
    assert_eq!(health.status().as_u16(), 503);
    assert_eq!(health.text().unwrap(), "maintenance");

    s.kill9();
    s.restart();
    s.wait_ready();
    let services = get_json(&s, "/v1/agent/services").unwrap();
    assert_eq!(services["db-1"]["Port"], 5432);
    let checks = get_json(&s, "/v1/agent/checks").unwrap();
    assert_eq!(checks["service:db-1"]["Status"], "passing");
    assert_eq!(checks["_service_maintenance:db-1"]["Notes"], "deploy");

    // Hash-based blocking on service/:id: an unchanged hash waits out ?wait, a change
    // answers at once with the new hash.
    let client = http_client();
    let first = client.get(s.url("/v1/agent/service/db-1")).send().unwrap();
    let hash = first.headers()["x-consul-contenthash"]
        .to_str()
        .unwrap()
        .to_string();
    let started = std::time::Instant::now();
    let same = client
        .get(s.url(&format!("/v1/agent/service/db-1?hash={hash}&wait=300ms")))
        .send()
        .unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_millis(300));
    assert_eq!(
        same.headers()["x-consul-contenthash"].to_str().unwrap(),
        hash
    );
    let url = s.url(&format!("/v1/agent/service/db-1?hash={hash}&wait=20s"));
    let waiter = std::thread::spawn(move || {
        let r = http_client().get(url).send().unwrap();
        r.json::<Value>().unwrap()
    });
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (code, _) = put(
        &s,
        "/v1/agent/service/register",
        Some(json!({"Name": "db", "ID": "db-1", "Port": 5433,
                     "Checks": [{"TTL": "60s", "Status": "passing"}]})),
    );
    assert_eq!(code, 200);
    let changed = waiter.join().unwrap();
    assert_eq!(changed["Port"], 5433);
    assert_ne!(changed["ContentHash"], hash.as_str());
    let stats = get_json(&s, "/v1/agent/self").unwrap();
    assert_eq!(stats["Stats"]["agent"]["services"], "1");
    assert_eq!(stats["Stats"]["agent"]["check_ttls"], "1");

    let (code, _) = put(&s, "/v1/agent/service/maintenance/db-1?enable=false", None);
    assert_eq!(code, 200);
    wait_for("db back after maintenance", || {
        (instances(&s, "db", true)? == ["s5"]).then_some(())
    });
    // The re-registration kept the check's status (passing) and moved the port.
    let entry = get_json(&s, "/v1/health/service/db?passing").unwrap();
    assert_eq!(entry[0]["Service"]["Port"], 5433);
    let (code, text) = put(&s, "/v1/agent/maintenance", None);
    assert_eq!((code, text.as_str()), (400, "Missing value for enable"));
}

#[test]
fn critical_services_are_reaped_and_unknown_catalog_entries_removed() {
    let root = tempfile::tempdir().unwrap();
    let s = server(
        "127.0.6.6",
        "s6",
        root.path(),
        &[
            "-debug-anti-entropy-interval",
            "1s",
            "-debug-check-deregister-interval-min",
            "1s",
        ],
    );
    // Written straight to the catalog on the agent's own node: the full sync removes it.
    let (code, _) = put(
        &s,
        "/v1/catalog/register",
        Some(json!({"Node": "s6", "Address": "127.0.6.6",
                     "Service": {"Service": "stray", "Port": 1},
                     "Check": {"CheckID": "stray-node-check", "Name": "x", "Status": "passing"}})),
    );
    assert_eq!(code, 200);
    wait_for("the stray service and check removed", || {
        let services = get_json(&s, "/v1/catalog/services")?;
        let checks = get_json(&s, "/v1/health/node/s6")?;
        let stray_check = checks
            .as_array()?
            .iter()
            .any(|c| c["CheckID"] == "stray-node-check");
        (services.get("stray").is_none() && !stray_check).then_some(())
    });
    // serfHealth and the consul service are the servers': kept.
    let checks = get_json(&s, "/v1/health/node/s6").unwrap();
    assert!(checks
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c["CheckID"] == "serfHealth"));
    assert!(get_json(&s, "/v1/catalog/services")
        .unwrap()
        .get("consul")
        .is_some());

    let (code, _) = put(
        &s,
        "/v1/agent/service/register",
        Some(json!({"Name": "flaky", "Port": 1,
                     "Check": {"TTL": "30s", "DeregisterCriticalServiceAfter": "2s"}})),
    );
    assert_eq!(code, 200);
    wait_for("flaky in the catalog", || {
        (instances(&s, "flaky", false)?.len() == 1).then_some(())
    });
    wait_for("flaky reaped from the agent and the catalog", || {
        let local = get_json(&s, "/v1/agent/services")?;
        let gone = local.get("flaky").is_none() && instances(&s, "flaky", false)?.is_empty();
        gone.then_some(())
    });
}

/// An HTTP target the test controls: answers 200 while `healthy`, else 500.
struct Target {
    addr: std::net::SocketAddr,
    healthy: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Target {
    fn start(ip: &str) -> Target {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let listener = std::net::TcpListener::bind((ip, 0)).unwrap();
        let addr = listener.local_addr().unwrap();
        let healthy = Arc::new(AtomicBool::new(true));
        let flag = healthy.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                let mut buf = [0u8; 4096];
                let mut seen = Vec::new();
                while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => seen.extend_from_slice(&buf[..n]),
                    }
                }
                let (code, body) = if flag.load(Ordering::SeqCst) {
                    ("200 OK", "fine")
                } else {
                    ("500 Internal Server Error", "broken")
                };
                let _ = write!(
                    conn,
                    "HTTP/1.1 {code}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        Target { addr, healthy }
    }

    fn set_healthy(&self, healthy: bool) {
        self.healthy
            .store(healthy, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn an_http_check_follows_its_target_in_passing_answers_and_dns() {
    let root = tempfile::tempdir().unwrap();
    let s = server("127.0.6.9", "s9", root.path(), &[]);
    let c = Agent::client(
        "127.0.6.10",
        "c10",
        &root.path().join("c10"),
        &["127.0.6.9"],
    );
    let target = Target::start("127.0.6.11");
    let (code, text) = put(
        &c,
        "/v1/agent/service/register",
        Some(
            json!({"Name": "api", "ID": "api-1", "Port": target.addr.port(),
                     "Check": {"HTTP": format!("http://{}/health", target.addr),
                               "Interval": "1s", "Timeout": "500ms"}}),
        ),
    );
    assert_eq!((code, text.as_str()), (200, ""));
    let in_dns = |n: usize| {
        wait_for(&format!("{n} api answers in DNS"), || {
            (dns_a_count(&s, "api.service.consul.") == n).then_some(())
        })
    };
    wait_for("api passing", || {
        (instances(&s, "api", true)? == ["c10"]).then_some(())
    });
    in_dns(1);
    target.set_healthy(false);
    wait_for("api critical", || {
        instances(&s, "api", true)?.is_empty().then_some(())
    });
    in_dns(0);
    let checks = get_json(&c, "/v1/agent/checks").unwrap();
    assert_eq!(checks["service:api-1"]["Status"], "critical");
    assert_eq!(checks["service:api-1"]["Type"], "http");
    target.set_healthy(true);
    wait_for("api passing again", || {
        (instances(&s, "api", true)? == ["c10"]).then_some(())
    });
    in_dns(1);
    // A client agent restarted (kill -9) comes back with its service, and the check
    // runs again from where it was.
    let mut c = c;
    c.kill9();
    c.restart();
    wait_for("the client's services restored", || {
        get_json(&c, "/v1/agent/services")?.get("api-1").map(|_| ())
    });
    target.set_healthy(false);
    wait_for("api critical after the restart", || {
        instances(&s, "api", true)?.is_empty().then_some(())
    });
    target.set_healthy(true);
    wait_for("api passing after the restart", || {
        (instances(&s, "api", true)? == ["c10"]).then_some(())
    });
    let filtered = get_json(&c, "/v1/agent/services?filter=Service%20%3D%3D%20api").unwrap();
    let ids: Vec<&String> = filtered.as_object().unwrap().keys().collect();
    assert_eq!(ids, ["api-1"]);
    let none = get_json(&c, "/v1/agent/services?filter=Service%20%3D%3D%20nope").unwrap();
    assert_eq!(none, serde_json::json!({}));
    let checks = get_json(
        &c,
        "/v1/agent/checks?filter=ServiceID%20%3D%3D%20%22api-1%22",
    )
    .unwrap();
    assert!(checks
        .as_object()
        .unwrap()
        .values()
        .all(|c| c["ServiceID"] == "api-1"));
    let malformed = http_client()
        .get(c.url("/v1/agent/services?filter=Service%20%3D%3D"))
        .send()
        .unwrap();
    assert_eq!(malformed.status().as_u16(), 400);
    let health = http_client()
        .get(c.url("/v1/agent/health/service/name/api"))
        .send()
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
    let body: Value = health.json().unwrap();
    assert_eq!(body[0]["AggregatedStatus"], "passing");
}

#[test]
fn config_file_services_load_at_start_and_reload_and_the_cli_registers() {
    let root = tempfile::tempdir().unwrap();
    let conf = root.path().join("services.json");
    std::fs::write(
        &conf,
        r#"{"service": {"name": "cache", "port": 6379, "check": {"ttl": "60s", "status": "passing"}}}"#,
    )
    .unwrap();
    let conf_arg = conf.display().to_string();
    let s = server(
        "127.0.6.12",
        "s12",
        root.path(),
        &["-config-file", &conf_arg],
    );
    wait_for("cache from the config file", || {
        (instances(&s, "cache", true)? == ["s12"]).then_some(())
    });

    // A reload through the CLI replaces the config-file services.
    std::fs::write(&conf, r#"{"services": [{"name": "queue", "port": 5672}]}"#).unwrap();
    let http = ["-http-addr", "127.0.6.12:8500"];
    let (code, out, err) = run_cairn(&["reload", http[0], http[1]]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "Configuration reload triggered
"
        ),
        "{err}"
    );
    wait_for("queue in, cache out", || {
        let services = get_json(&s, "/v1/catalog/services")?;
        (services.get("queue").is_some() && services.get("cache").is_none()).then_some(())
    });
    // SIGHUP reloads too.
    std::fs::write(&conf, r#"{"services": []}"#).unwrap();
    s.signal("HUP");
    wait_for("queue gone after SIGHUP", || {
        get_json(&s, "/v1/catalog/services")?
            .get("queue")
            .is_none()
            .then_some(())
    });
    // A broken file: the reload fails with the reason, the agent keeps running.
    std::fs::write(&conf, r#"{"service": {"port": 1}}"#).unwrap();
    let (code, _, err) = run_cairn(&["reload", http[0], http[1]]);
    assert_eq!(code, 1);
    assert!(err.contains("Missing service name"), "{err}");

    let (code, out, err) = run_cairn(&[
        "services", "register", http[0], http[1], "-name", "web", "-id", "web-9", "-port", "80",
        "-tag", "blue",
    ]);
    assert_eq!(
        (code, out.as_str()),
        (0, "Registered service: web\n"),
        "{err}"
    );
    wait_for("web in the catalog", || {
        (instances(&s, "web", false)? == ["s12"]).then_some(())
    });
    let (code, out, err) = run_cairn(&["services", "deregister", http[0], http[1], "-id", "web-9"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "Deregistered service: web-9\n"),
        "{err}"
    );
    wait_for("web gone", || {
        instances(&s, "web", false)?.is_empty().then_some(())
    });
}

#[test]
fn output_only_changes_are_coalesced_and_status_changes_are_not() {
    let root = tempfile::tempdir().unwrap();
    let conf = root.path().join("agent.json");
    std::fs::write(&conf, r#"{"check_update_interval": "3s"}"#).unwrap();
    let conf_arg = conf.display().to_string();
    let s = server(
        "127.0.6.13",
        "s13",
        root.path(),
        &["-config-file", &conf_arg],
    );
    let (code, _) = put(
        &s,
        "/v1/agent/check/register",
        Some(json!({"Name": "beat", "TTL": "60s"})),
    );
    assert_eq!(code, 200);
    let catalog_output = || -> Option<(String, String)> {
        let checks = get_json(&s, "/v1/health/node/s13")?;
        let c = checks.as_array()?.iter().find(|c| c["CheckID"] == "beat")?;
        Some((
            c["Status"].as_str()?.to_string(),
            c["Output"].as_str()?.to_string(),
        ))
    };
    put(&s, "/v1/agent/check/pass/beat?note=one", None);
    wait_for("the status change synced at once", || {
        (catalog_output()? == ("passing".into(), "one".into())).then_some(())
    });
    let changed_at = std::time::Instant::now();
    put(&s, "/v1/agent/check/pass/beat?note=two", None);
    // The agent shows the new output at once; the catalog only after the interval.
    let local = get_json(&s, "/v1/agent/checks").unwrap();
    assert_eq!(local["beat"]["Output"], "two");
    wait_for("the output change synced", || {
        (catalog_output()?.1 == "two").then_some(())
    });
    assert!(
        changed_at.elapsed() >= std::time::Duration::from_millis(2_500),
        "output-only change synced after {:?}",
        changed_at.elapsed()
    );
}
