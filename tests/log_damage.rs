//! A damaged raft log never silently loses acknowledged writes, against the real binary:
//! write 1 KiB values until the log spans several 16 MiB segments, SIGKILL, damage the
//! data dir, and check that the agent refuses to start with a message naming the file
//! and offset; then `cairn debug repair-log -yes` cuts the log at the damage and the
//! agent starts with exactly the writes before the damage.
//!
//! Snapshots are turned off (`raft_snapshot_threshold`) so that what must come back is
//! precise: every key whose ModifyIndex is below the first damaged log index, and no
//! other (with snapshots, keys a snapshot covers would survive regardless).

mod common;

use common::{copy_dir, http_client, run_cairn, Agent, DEADLINE};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

const IP: &str = "127.0.0.18";
const WRITERS: usize = 16;
/// Bound on PUTs: a 16 MiB segment holds ~15k entries of 1 KiB.
const MAX_PUTS: usize = 30_000;
const VALUE_BYTES: usize = 1024;

/// key -> (value, ModifyIndex)
type Acked = BTreeMap<String, (String, u64)>;

fn segments(data_dir: &Path) -> Vec<PathBuf> {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(data_dir.join("raft"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segs.sort();
    segs
}

fn first_index(seg: &Path) -> u64 {
    seg.file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .unwrap()
}

fn agent_args(data_dir: &Path, config: &Path) -> Vec<String> {
    [
        "agent",
        "-server",
        "-bootstrap",
        "-node",
        "damaged",
        "-bind",
        IP,
        "-client",
        IP,
        "-config-file",
        config.to_str().unwrap(),
        "-data-dir",
        data_dir.to_str().unwrap(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// PUT 1 KiB values from many writers until `enough(data_dir)` (at least two segments),
/// then 500 more; returns every acknowledged key with its value and ModifyIndex.
fn fill(agent: &Agent, data_dir: &Path, enough: &dyn Fn(&Path) -> bool) -> Acked {
    let done = Arc::new(AtomicBool::new(false));
    let puts = Arc::new(AtomicUsize::new(0));
    let acked: Arc<Mutex<BTreeMap<String, String>>> = Arc::default();
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (done, puts, acked, url) =
                (done.clone(), puts.clone(), acked.clone(), agent.url(""));
            std::thread::spawn(move || {
                let client = http_client();
                let mut i = 0;
                while !done.load(Ordering::Relaxed)
                    && puts.fetch_add(1, Ordering::Relaxed) < MAX_PUTS
                {
                    let key = format!("w{w:02}/k{i:05}");
                    let mut value = format!("{key}:");
                    value.extend(std::iter::repeat_n('x', VALUE_BYTES - value.len()));
                    let ok = client
                        .put(format!("{url}/v1/kv/{key}"))
                        .body(value.clone())
                        .send()
                        .ok()
                        .and_then(|r| r.text().ok())
                        .is_some_and(|t| t == "true");
                    assert!(ok, "PUT {key} failed");
                    acked.lock().unwrap().insert(key, value);
                    i += 1;
                }
            })
        })
        .collect();
    let start = Instant::now();
    let mut rolled_at = None;
    // Until the log has rolled to a second segment, then 500 more PUTs so that the
    // newest segment holds acknowledged writes too.
    loop {
        let n = puts.load(Ordering::Relaxed);
        if rolled_at.is_none() && enough(data_dir) {
            rolled_at = Some(n);
        }
        if rolled_at.is_some_and(|r| n >= r + 500) || n >= MAX_PUTS {
            break;
        }
        assert!(
            start.elapsed() < DEADLINE * 4,
            "log never reached 2 segments"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    done.store(true, Ordering::Relaxed);
    for w in writers {
        w.join().unwrap();
    }
    assert!(segments(data_dir).len() >= 2, "{:?}", segments(data_dir));
    let values = acked.lock().unwrap().clone();
    let indexes = read_all(agent);
    values
        .into_iter()
        .map(|(k, v)| {
            let (stored, index) = indexes
                .get(&k)
                .cloned()
                .unwrap_or_else(|| panic!("{k} missing"));
            assert_eq!(stored, v);
            (k, (v, index))
        })
        .collect()
}

/// Every KV entry: key -> (value, ModifyIndex).
fn read_all(agent: &Agent) -> BTreeMap<String, (String, u64)> {
    let resp = http_client()
        .get(agent.url("/v1/kv/?recurse"))
        .send()
        .unwrap();
    if resp.status().as_u16() == 404 {
        return BTreeMap::new();
    }
    let items: Vec<serde_json::Value> = resp.json().unwrap();
    use base64::Engine;
    items
        .iter()
        .map(|item| {
            let raw = item["Value"].as_str().unwrap_or("");
            let value = base64::engine::general_purpose::STANDARD
                .decode(raw)
                .unwrap();
            (
                item["Key"].as_str().unwrap().to_string(),
                (
                    String::from_utf8(value).unwrap(),
                    item["ModifyIndex"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

/// Start the agent and expect it to exit (bounded): returns (exit code, output).
fn start_expecting_exit(args: &[String]) -> (i32, String) {
    let mut child = Command::new(common::cairn_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let out = child.wait_with_output().unwrap();
            let text = format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            return (status.code().unwrap_or(-1), text);
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent started on a damaged log instead of refusing");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// After a repair that reports keeping the log below `first_lost`: exactly the keys
/// written before it are back, with their values.
fn assert_exactly_before(agent: &Agent, acked: &Acked, first_lost: u64) -> (usize, usize) {
    let now = read_all(agent);
    let (mut kept, mut lost) = (0, 0);
    for (key, (value, index)) in acked {
        if *index < first_lost {
            assert_eq!(
                now.get(key).map(|v| &v.0),
                Some(value),
                "{key} at {index} lost"
            );
            kept += 1;
        } else {
            assert!(!now.contains_key(key), "{key} at {index} is past the cut");
            lost += 1;
        }
    }
    (kept, lost)
}

/// Run the repair with `-yes`; returns the first log index it cut away.
fn repair(data_dir: &Path) -> u64 {
    let (code, out, err) = run_cairn(&[
        "debug",
        "repair-log",
        "-data-dir",
        data_dir.to_str().unwrap(),
        "-yes",
    ]);
    println!("repair-log output:\n{out}{err}");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("Repaired."), "{out}");
    out.lines()
        .find_map(|l| l.trim().strip_prefix("index:"))
        .and_then(|i| i.trim().parse().ok())
        .unwrap_or_else(|| panic!("no index in {out}"))
}

#[test]
fn a_damaged_log_refuses_to_start_and_repair_log_cuts_it_on_purpose() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("d");
    let config = tmp.path().join("no-snapshots.json");
    std::fs::write(&config, r#"{"raft_snapshot_threshold": 100000000}"#).unwrap();
    let mut agent = Agent::server(
        IP,
        "damaged",
        &data_dir,
        &["-config-file", config.to_str().unwrap()],
    );
    let acked = fill(&agent, &data_dir, &|d| segments(d).len() >= 2);
    agent.kill9();
    let segs = segments(&data_dir);
    println!("{} acknowledged PUTs, segments {segs:?}", acked.len());

    // Keep an undamaged copy for the second case.
    let copy = tmp.path().join("copy");
    copy_dir(&data_dir, &copy);

    // 1. One flipped byte in the middle of the oldest segment.
    let older = &segs[0];
    let mut bytes = std::fs::read(older).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(older, bytes).unwrap();
    let (code, text) = start_expecting_exit(&agent_args(&data_dir, &config));
    println!("start on the damaged log:\n{text}");
    assert_ne!(code, 0);
    assert!(text.contains(&older.display().to_string()), "{text}");
    assert!(text.contains("byte offset"), "{text}");
    assert!(text.contains("cairn debug repair-log"), "{text}");
    let cut = repair(&data_dir);
    assert!(cut > 1 && cut < first_index(&segs[1]), "{cut}");
    let agent = Agent::server(
        IP,
        "damaged",
        &data_dir,
        &["-config-file", config.to_str().unwrap()],
    );
    let (kept, lost) = assert_exactly_before(&agent, &acked, cut);
    println!("byte flip: kept {kept}, lost {lost} (cut at index {cut})");
    assert!(kept > 0 && lost > 0);
    drop(agent);

    // 2. The newest segment deleted.
    let segs = segments(&copy);
    let newest = segs.last().unwrap();
    std::fs::remove_file(newest).unwrap();
    let (code, text) = start_expecting_exit(&agent_args(&copy, &config));
    println!("start without the newest segment:\n{text}");
    assert_ne!(code, 0);
    assert!(
        text.contains(&segs[segs.len() - 2].display().to_string()),
        "{text}"
    );
    assert!(text.contains("missing"), "{text}");
    let cut = repair(&copy);
    assert_eq!(cut, first_index(newest));
    let agent = Agent::server(
        IP,
        "damaged",
        &copy,
        &["-config-file", config.to_str().unwrap()],
    );
    let (kept, lost) = assert_exactly_before(&agent, &acked, cut);
    println!("deleted newest segment: kept {kept}, lost {lost} (cut at index {cut})");
    assert!(kept > 0);
}

/// Index of the newest snapshot file in the data dir (0 when none).
fn newest_snapshot_index(data_dir: &Path) -> u64 {
    std::fs::read_dir(data_dir.join("raft").join("snapshots"))
        .map(|items| {
            items
                .filter_map(|i| i.ok())
                .filter_map(|i| {
                    let name = i.file_name().to_string_lossy().into_owned();
                    let stem = name.strip_suffix(".snap")?.to_string();
                    stem.split_once('-')?.1.parse::<u64>().ok()
                })
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// The issue's own case, with snapshots on: one flipped byte in the middle of the older
/// segment, below the newest snapshot. The start is refused (it used to cut the log there
/// and silently lose every later write); the repair sees that the snapshot covers the
/// damage and moves the damaged segment aside instead of cutting, so EVERY acknowledged
/// write comes back.
#[test]
fn damage_a_snapshot_covers_is_refused_then_repaired_without_losing_anything() {
    const SNAP_IP: &str = "127.0.0.80";
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("d");
    let config = tmp.path().join("snapshots.json");
    std::fs::write(&config, r#"{"raft_snapshot_threshold": 2048}"#).unwrap();
    let extra = ["-config-file", config.to_str().unwrap()];
    let mut agent = Agent::server(SNAP_IP, "damaged", &data_dir, &extra);
    let acked = fill(&agent, &data_dir, &|d| {
        let segs = segments(d);
        segs.len() >= 2 && newest_snapshot_index(d) >= first_index(&segs[1])
    });
    agent.kill9();
    let segs = segments(&data_dir);
    println!(
        "{} acknowledged PUTs, segments {segs:?}, newest snapshot {}",
        acked.len(),
        newest_snapshot_index(&data_dir)
    );

    let older = &segs[0];
    let mut bytes = std::fs::read(older).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x10;
    std::fs::write(older, bytes).unwrap();
    let mut args = agent_args(&data_dir, &config);
    for a in args.iter_mut() {
        if a == IP {
            *a = SNAP_IP.to_string();
        }
    }
    let (code, text) = start_expecting_exit(&args);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains(&older.display().to_string()), "{text}");
    assert!(text.contains("cairn debug repair-log"), "{text}");

    repair(&data_dir);
    let agent = Agent::server(SNAP_IP, "damaged", &data_dir, &extra);
    let now = read_all(&agent);
    let missing: Vec<&String> = acked
        .iter()
        .filter(|(k, (v, _))| now.get(*k).map(|n| &n.0) != Some(v))
        .map(|(k, _)| k)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes lost, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(5)]
    );
}
