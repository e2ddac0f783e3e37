//! `cairn chaos` end to end, attached to a cluster it did not start (issue 9): a local
//! cluster comes up through `cairn cluster up`, a short run drives it by its HTTP
//! addresses with partitions and a slow disk (the faults an attached cluster allows),
//! the verdict must be clean, and the cluster must still run, healed, afterwards.
//! `.ci/run` runs the longer, harsher runs (kill, pause, restart, membership) on a
//! cluster `cairn chaos` starts itself.
//!
//! Addresses 127.0.1.15 to 127.0.1.17 only. Waits are conditions with deadlines.

mod common;

use common::run_cairn;

#[test]
fn a_run_attached_to_a_running_cluster_is_clean_and_leaves_it_running_healed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("cluster").display().to_string();
    let out = tmp.path().join("run").display().to_string();
    let (code, stdout, stderr) = run_cairn(&[
        "cluster",
        "up",
        "-dir",
        &dir,
        "-servers",
        "3",
        "-clients",
        "0",
        "-base",
        "127.0.1.15",
    ]);
    assert_eq!(code, 0, "cluster up failed:\n{stdout}{stderr}");
    let down = Down(dir.clone());

    let (code, stdout, stderr) = run_cairn(&[
        "chaos",
        "-attach",
        "127.0.1.15:8500,127.0.1.16:8500,127.0.1.17:8500",
        "-duration",
        "12s",
        "-faults",
        "partition,slow-disk,kill",
        "-seed",
        "11",
        "-workers",
        "4",
        "-out",
        &out,
    ]);
    assert_eq!(code, 0, "chaos failed:\n{stdout}{stderr}");
    let verdict = stdout
        .lines()
        .find(|l| l.starts_with("linearizable: "))
        .unwrap_or_else(|| panic!("no verdict line:\n{stdout}{stderr}"));
    assert!(verdict.starts_with("linearizable: yes ("), "{verdict}");
    assert!(
        verdict.contains("acknowledged writes lost: 0;"),
        "{verdict}"
    );
    assert!(verdict.contains("nodes converged: yes;"), "{verdict}");
    // kill was asked for but cannot be done to processes that are not ours.
    let report = std::fs::read_to_string(tmp.path().join("run").join("verdict.txt")).unwrap();
    let not_injected = report
        .lines()
        .find(|l| l.starts_with("fault kinds asked for but not injected:"))
        .unwrap_or_else(|| panic!("{report}"));
    assert!(not_injected.contains("kill"), "{report}");
    assert!(report.contains("partition node"), "{report}");
    for file in ["history.jsonl", "report.html"] {
        assert!(tmp.path().join("run").join(file).is_file(), "{file}");
    }

    // Still up, no rules left behind.
    let (code, status, _) = run_cairn(&["cluster", "status", "-dir", &dir]);
    assert_eq!(code, 0);
    assert_eq!(status.matches(" running ").count(), 3, "{status}");
    for ip in ["127.0.1.15", "127.0.1.16", "127.0.1.17"] {
        let rules = reqwest::blocking::get(format!("http://{ip}:8500/v1/cairn/faults"))
            .unwrap()
            .text()
            .unwrap();
        assert_eq!(rules, "[]", "{ip}");
    }
    drop(down);
}

/// `cairn cluster down` when the test ends, failing or not.
struct Down(String);

impl Drop for Down {
    fn drop(&mut self) {
        let _ = run_cairn(&["cluster", "down", "-dir", &self.0]);
    }
}
