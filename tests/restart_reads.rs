//! Right after a restart, a default-consistency read must never miss an acknowledged
//! write: the new leader re-applies the log after its snapshot only once its no-op
//! commits, so until then reads wait (or answer "No cluster leader"), never 404.

mod common;

use common::{http_client, wait_for, Agent};

const IP: &str = "127.0.0.17";
const WRITERS: usize = 16;
const KEYS_PER_WRITER: usize = 250;

#[test]
fn reads_right_after_restart_see_every_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("d");
    let mut agent = Agent::server(IP, "restarter", &data_dir, &[]);
    let url = agent.url("");
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let url = url.clone();
            std::thread::spawn(move || {
                let client = http_client();
                for i in 0..KEYS_PER_WRITER {
                    let resp = client
                        .put(format!("{url}/v1/kv/r/{w}/{i:04}"))
                        .body(format!("{w}-{i}"))
                        .send()
                        .unwrap();
                    assert_eq!(resp.text().unwrap(), "true");
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    agent.kill9();

    // Restart and read as early as the HTTP listener answers.
    let log_dir = tmp.path().join("logs");
    let args = agent.args.clone();
    let _agent = Agent::spawn(IP, &args, &log_dir);
    let client = http_client();
    let last_key = format!("/v1/kv/r/{}/{:04}", WRITERS - 1, KEYS_PER_WRITER - 1);
    let mut early_answers = 0;
    wait_for("the last acknowledged key after restart", || {
        let resp = client.get(format!("{url}{last_key}")).send().ok()?;
        let status = resp.status().as_u16();
        let body = resp.text().unwrap_or_default();
        assert!(
            status == 200 || (status == 500 && body.contains("No cluster leader")),
            "read after restart answered {status} {body:?}: an acknowledged write looked lost"
        );
        early_answers += 1;
        (status == 200).then_some(())
    });
    let all: Vec<serde_json::Value> = client
        .get(format!("{url}/v1/kv/r/?recurse"))
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(all.len(), WRITERS * KEYS_PER_WRITER);
    assert!(early_answers >= 1);
}
