//! Today's binary still opens a data dir written by an older format: the committed fixture
//! `tests/fixtures/datadir-v0` (headerless version-0 log segments and a version-1
//! snapshot, written at commit 0d0d503). Everything it held is served, and after the
//! upgrade (the first open seals the legacy segment and continues in the current format)
//! a kill -9 and restart still serve it.

mod common;

use common::{copy_dir, http_client, Agent};
use std::path::Path;

const IP: &str = "127.0.0.82";

fn assert_fixture_served(agent: &Agent) {
    let client = http_client();
    for i in 1..=40 {
        let r = client
            .get(agent.url(&format!("/v1/kv/fixture/k{i}?raw")))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "fixture/k{i}");
        assert_eq!(r.text().unwrap(), format!("value-{i}"));
    }
    let flags: serde_json::Value = client
        .get(agent.url("/v1/kv/fixture/flags"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(flags[0]["Flags"], 42, "{flags}");
    let search: serde_json::Value = client
        .get(agent.url("/v1/catalog/service/search"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(search[0]["Node"], "google", "{search}");
    assert_eq!(search[0]["Address"], "www.google.com", "{search}");
}

#[test]
fn a_data_dir_in_the_previous_formats_still_opens() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/datadir-v0");
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("d");
    copy_dir(&fixture, &data_dir);
    let mut agent = Agent::server(IP, "fixture", &data_dir, &[]);
    assert_fixture_served(&agent);
    // New writes land in the current format, after the old entries.
    let client = http_client();
    let r = client
        .put(agent.url("/v1/kv/fixture/new"))
        .body("current format")
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "true");
    agent.kill9();
    let agent = Agent::server(IP, "fixture", &data_dir, &[]);
    assert_fixture_served(&agent);
    let r = client
        .get(agent.url("/v1/kv/fixture/new?raw"))
        .send()
        .unwrap();
    assert_eq!(r.text().unwrap(), "current format");
}
