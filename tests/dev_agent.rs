//! `cairn agent -dev`: an in-memory single server with nothing else to set, plus the
//! agent endpoints clients read (agent/self, status) and a clean SIGTERM shutdown.

mod common;

use common::{http_client, wait_for, Agent};
use serde_json::Value;

const IP: &str = "127.0.0.14";

#[test]
fn dev_agent_serves_and_shuts_down_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let args: Vec<String> = [
        "agent", "-dev", "-node", "devnode", "-bind", IP, "-client", IP,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut agent = Agent::spawn(IP, &args, tmp.path());
    agent.wait_ready();
    let client = http_client();

    let leader: String = client
        .get(agent.url("/v1/status/leader"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(leader, format!("{IP}:8300"));
    let peers: Vec<String> = client
        .get(agent.url("/v1/status/peers"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(peers, vec![format!("{IP}:8300")]);

    let me: Value = client
        .get(agent.url("/v1/agent/self"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(me["Config"]["NodeName"], "devnode");
    assert_eq!(me["Config"]["Datacenter"], "dc1");
    assert_eq!(me["Config"]["Server"], true);
    assert_eq!(me["Config"]["Version"], "1.22.0");
    assert_eq!(me["Member"]["Addr"], IP);
    assert_eq!(me["Member"]["Tags"]["role"], "consul");

    let members: Value = client
        .get(agent.url("/v1/agent/members"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(members[0]["Name"], "devnode");
    assert_eq!(members[0]["Status"], 1);

    // -dev answers pretty JSON, and the consul service is in the catalog.
    let services = client
        .get(agent.url("/v1/catalog/services"))
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(
        services.contains("\n"),
        "dev mode pretty-prints: {services}"
    );
    let node: Value = client
        .get(agent.url("/v1/catalog/node/devnode"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(node["Services"]["consul"]["Service"], "consul");

    let resp = client
        .put(agent.url("/v1/kv/dev/key"))
        .body("v")
        .send()
        .unwrap();
    assert_eq!(resp.text().unwrap().trim_end(), "true");

    assert_eq!(agent.terminate(), Some(0), "SIGTERM exits cleanly");

    // In memory: a restarted dev agent starts empty.
    let mut agent = Agent::spawn(IP, &args, tmp.path());
    agent.wait_ready();
    let status = wait_for("dev agent answers", || {
        client
            .get(agent.url("/v1/kv/dev/key"))
            .send()
            .ok()
            .map(|r| r.status().as_u16())
    });
    assert_eq!(status, 404);
    assert_eq!(agent.terminate(), Some(0));
}
