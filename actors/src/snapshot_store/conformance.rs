//! One conformance suite for every [`SnapshotBackend`], plus file-format checks.

use super::*;
use protocol::codec;
use protocol::ids::ServerId;
use protocol::store::{Command, KvOp, Store};

fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta {
        index: LogIndex(index),
        term: Term(term),
        configuration: vec![(ServerId("a".into()), "a:8300".into())],
        non_voters: Vec::new(),
    }
}

fn id(index: u64, term: u64) -> SnapshotId {
    SnapshotId {
        index: LogIndex(index),
        term: Term(term),
    }
}

fn store_of(keys: u64) -> Store {
    let mut store = Store::new();
    for i in 1..=keys {
        let cmd = Command::Kv(KvOp::Set {
            key: format!("k{i}"),
            value: vec![i as u8; 100],
            flags: i,
        });
        store.apply(i, &cmd);
    }
    store
}

/// Stream a store in.
fn save_store(backend: &dyn SnapshotBackend, meta: &SnapshotMeta, store: &Store) -> u64 {
    backend
        .save_with(meta, &mut |w| {
            records::write_store(store, w, codec::MAX_DECODE_BYTES)
        })
        .unwrap()
}

/// Stream a store out, with a record limit.
fn load_store(
    backend: &dyn SnapshotBackend,
    id: SnapshotId,
    limit: usize,
) -> Result<(SnapshotMeta, Store), LoadError> {
    let mut store = None;
    let meta = backend.load_with(id, &mut |_, data| {
        store = Some(records::load_store(data, limit)?);
        Ok(())
    })?;
    Ok((meta, store.expect("the reader ran")))
}

fn empty_store_lists_nothing(backend: &dyn SnapshotBackend) {
    assert_eq!(backend.list().unwrap(), vec![]);
    assert!(backend.load(id(1, 1)).is_err());
}

fn saves_round_trip_and_only_the_newest_two_are_kept(backend: &dyn SnapshotBackend) {
    backend.save(&meta(10, 1), b"ten").unwrap();
    assert_eq!(backend.list().unwrap(), vec![id(10, 1)]);
    assert_eq!(
        backend.load(id(10, 1)).unwrap(),
        Snapshot {
            meta: meta(10, 1),
            data: b"ten".to_vec()
        }
    );
    backend.save(&meta(20, 2), b"twenty").unwrap();
    backend.save(&meta(30, 2), b"").unwrap();
    assert_eq!(backend.list().unwrap(), vec![id(30, 2), id(20, 2)]);
    assert!(backend.load(id(10, 1)).is_err(), "the oldest is gone");
    assert_eq!(backend.load(id(30, 2)).unwrap().data, b"");
    assert_eq!(backend.load(id(20, 2)).unwrap().data, b"twenty");
}

fn stores_stream_in_and_out(backend: &dyn SnapshotBackend) {
    let store = store_of(200);
    let len = save_store(backend, &meta(7, 1), &store);
    let bytes = records::encode_store(&store);
    assert_eq!(len, bytes.len() as u64);
    let (m, back) = load_store(backend, id(7, 1), codec::MAX_DECODE_BYTES).unwrap();
    assert_eq!((m, &back), (meta(7, 1), &store));
    // `load` hands over the same data section.
    assert_eq!(backend.load(id(7, 1)).unwrap().data, bytes);
    // Bounded per record: a limit far below the image but above every record works.
    assert!(load_store(backend, id(7, 1), 300).is_ok());
    // A record over the limit: the file verifies, so it is unloadable, not damaged.
    assert!(matches!(
        load_store(backend, id(7, 1), 50),
        Err(LoadError::Unloadable(..))
    ));
}

fn a_failing_writer_saves_nothing(backend: &dyn SnapshotBackend) {
    backend.save(&meta(5, 1), b"five").unwrap();
    let result = backend.save_with(&meta(9, 1), &mut |w| {
        w.write_all(&[7; 10_000])?;
        Err(io::Error::other("injected failure"))
    });
    assert!(matches!(result, Err(StorageError::Io(e)) if e.contains("injected")));
    assert_eq!(backend.list().unwrap(), vec![id(5, 1)]);
    assert_eq!(backend.load(id(5, 1)).unwrap().data, b"five");
}

fn a_reader_refusing_an_intact_snapshot_makes_it_unloadable(backend: &dyn SnapshotBackend) {
    backend.save(&meta(3, 1), b"not records").unwrap();
    let refused = backend.load_with(id(3, 1), &mut |_, _| Err("no thanks".into()));
    assert!(
        matches!(&refused, Err(LoadError::Unloadable(_, e)) if e == "no thanks"),
        "{refused:?}"
    );
    // Bytes the reader leaves unread are still checked, and also refuse the snapshot.
    let partial = backend.load_with(id(3, 1), &mut |_, data| {
        let SnapshotData::Records(r) = data else {
            return Err("v1".into());
        };
        r.read_exact(&mut [0u8; 3]).map_err(|e| e.to_string())
    });
    assert!(
        matches!(partial, Err(LoadError::Unloadable(..))),
        "{partial:?}"
    );
}

fn the_data_summary_is_what_a_load_hands_out(backend: &dyn SnapshotBackend) {
    assert!(backend.data_summary(id(10, 1)).is_err(), "no such snapshot");
    let store = store_of(40);
    let len = save_store(backend, &meta(10, 1), &store);
    let (m, summary) = backend.data_summary(id(10, 1)).unwrap().expect("a summary");
    let data = backend.load(id(10, 1)).unwrap().data;
    assert_eq!(m, meta(10, 1));
    assert_eq!(
        summary,
        DataSummary {
            len,
            crc: crc32fast::hash(&data)
        }
    );
    assert_eq!(len, data.len() as u64);
}

fn conforms(make: &dyn Fn() -> Box<dyn SnapshotBackend>) {
    empty_store_lists_nothing(make().as_ref());
    saves_round_trip_and_only_the_newest_two_are_kept(make().as_ref());
    stores_stream_in_and_out(make().as_ref());
    a_failing_writer_saves_nothing(make().as_ref());
    a_reader_refusing_an_intact_snapshot_makes_it_unloadable(make().as_ref());
    the_data_summary_is_what_a_load_hands_out(make().as_ref());
}

#[test]
fn memory_store_conforms() {
    conforms(&|| Box::new(MemorySnapshotStore::new()));
}

#[test]
fn file_store_conforms() {
    let dirs = parking_lot::Mutex::new(Vec::new());
    conforms(&|| {
        let tmp = tempfile::tempdir().unwrap();
        let backend = FileSnapshotStore::open(tmp.path()).unwrap();
        dirs.lock().push(tmp);
        Box::new(backend)
    });
    let tmp = tempfile::tempdir().unwrap();
    saves_round_trip_and_only_the_newest_two_are_kept(
        &FileSnapshotStore::open(tmp.path()).unwrap(),
    );
    // A reopened store sees the same snapshots.
    let backend = FileSnapshotStore::open(tmp.path()).unwrap();
    assert_eq!(backend.list().unwrap(), vec![id(30, 2), id(20, 2)]);
}

#[test]
fn memory_store_detects_corruption_and_keeps_the_older_one() {
    let backend = MemorySnapshotStore::new();
    save_store(&backend, &meta(10, 1), &store_of(3));
    save_store(&backend, &meta(20, 1), &store_of(4));
    backend.corrupt_newest();
    assert!(matches!(
        load_store(&backend, id(20, 1), codec::MAX_DECODE_BYTES),
        Err(LoadError::Storage(StorageError::Corrupt { .. }))
    ));
    assert_eq!(
        load_store(&backend, id(10, 1), codec::MAX_DECODE_BYTES)
            .unwrap()
            .1,
        store_of(3)
    );
    // Set aside, the damaged one no longer counts: the next save keeps the good one.
    backend.quarantine(id(20, 1)).unwrap();
    backend.save(&meta(30, 1), b"thirty").unwrap();
    assert_eq!(backend.list().unwrap(), vec![id(30, 1), id(10, 1)]);
}

#[test]
fn file_store_quarantine_takes_a_snapshot_out_of_the_retained_set() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = FileSnapshotStore::open(tmp.path()).unwrap();
    backend.save(&meta(10, 1), b"ten").unwrap();
    backend.save(&meta(20, 1), b"twenty").unwrap();
    backend.quarantine(id(20, 1)).unwrap();
    backend.save(&meta(30, 1), b"thirty").unwrap();
    let backend = FileSnapshotStore::open(tmp.path()).unwrap();
    assert_eq!(backend.list().unwrap(), vec![id(30, 1), id(10, 1)]);
    assert_eq!(backend.load(id(10, 1)).unwrap().data, b"ten");
}

fn is_corrupt(r: &Result<(SnapshotMeta, Store), LoadError>) -> bool {
    matches!(r, Err(LoadError::Storage(StorageError::Corrupt { .. })))
}

#[test]
fn file_store_detects_every_kind_of_damage() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = FileSnapshotStore::open(tmp.path()).unwrap();
    let store = store_of(20);
    save_store(&backend, &meta(10, 1), &store);
    let path = backend.path_of(id(10, 1));
    assert!(path.ends_with("00000000000000000001-00000000000000000010.snap"));
    let good = std::fs::read(&path).unwrap();
    let n = good.len();
    // Where the data section starts and each record ends (to cut at record boundaries).
    let data = records::encode_store(&store);
    let data_start = n - 20 - data.len();
    let damaged: Vec<(String, Vec<u8>)> = vec![
        ("flipped data byte".into(), {
            let mut b = good.clone();
            b[data_start + data.len() / 2] ^= 1;
            b
        }),
        ("flipped record length".into(), {
            let mut b = good.clone();
            b[data_start] ^= 0x40;
            b
        }),
        ("flipped trailer crc".into(), {
            let mut b = good.clone();
            b[n - 12] ^= 1;
            b
        }),
        ("flipped header byte".into(), {
            let mut b = good.clone();
            b[17] ^= 1;
            b
        }),
        ("bad magic".into(), {
            let mut b = good.clone();
            b[0] = b'X';
            b
        }),
        ("truncated by 2".into(), good[..n - 2].to_vec()),
        ("trailer cut off".into(), good[..n - 20].to_vec()),
        (
            "cut after the first record, trailer kept".into(),
            [&good[..data_start + 8 + 10], &good[n - 20..]].concat(),
        ),
        ("trailing garbage".into(), [good.as_slice(), b"x"].concat()),
        ("empty".into(), vec![]),
    ];
    for (what, bytes) in damaged {
        std::fs::write(&path, &bytes).unwrap();
        let loaded = load_store(&backend, id(10, 1), codec::MAX_DECODE_BYTES);
        assert!(is_corrupt(&loaded), "{what} not detected: {loaded:?}");
    }
    // A file whose name disagrees with its header.
    std::fs::write(&path, &good).unwrap();
    std::fs::rename(&path, backend.path_of(id(11, 1))).unwrap();
    assert!(is_corrupt(&load_store(&backend, id(11, 1), 1 << 20)));
}

#[test]
fn an_unknown_version_is_refused_naming_it_and_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = FileSnapshotStore::open(tmp.path()).unwrap();
    backend.save(&meta(10, 1), b"x").unwrap();
    let path = backend.path_of(id(10, 1));
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..12].copy_from_slice(&9u32.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let err = load_store(&backend, id(10, 1), 1024).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, LoadError::Unloadable(..)), "{text}");
    assert!(
        text.contains("version 9") && text.contains(".snap"),
        "{text}"
    );
}

/// A file exactly as version 1 wrote it: the whole store as one codec value.
fn write_v1_file(path: &std::path::Path, meta: &SnapshotMeta, store: &Store) {
    #[derive(serde::Serialize)]
    struct HeaderV1 {
        index: LogIndex,
        term: Term,
        configuration: Vec<(ServerId, String)>,
        data_len: u64,
        data_crc: u32,
    }
    let data = codec::encode(store).unwrap();
    let header = codec::encode(&HeaderV1 {
        index: meta.index,
        term: meta.term,
        configuration: meta.configuration.clone(),
        data_len: data.len() as u64,
        data_crc: crc32fast::hash(&data),
    })
    .unwrap();
    let mut out = b"CAIRNSNP".to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(&crc32fast::hash(&header).to_le_bytes());
    out.extend_from_slice(&data);
    std::fs::write(path, out).unwrap();
}

#[test]
fn version_1_files_still_load() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = FileSnapshotStore::open(tmp.path()).unwrap();
    let store = store_of(30);
    write_v1_file(&backend.path_of(id(40, 2)), &meta(40, 2), &store);
    let (m, back) = load_store(&backend, id(40, 2), codec::MAX_DECODE_BYTES).unwrap();
    assert_eq!((m, back), (meta(40, 2), store.clone()));
    // `load` converts it to the record stream, which the file does not hold as such:
    // no summary of it.
    let snap = backend.load(id(40, 2)).unwrap();
    assert_eq!(snap.data, records::encode_store(&store));
    assert_eq!(backend.data_summary(id(40, 2)), Ok(None));
    // Damage is still detected.
    let path = backend.path_of(id(40, 2));
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 1;
    std::fs::write(&path, bytes).unwrap();
    assert!(is_corrupt(&load_store(&backend, id(40, 2), 1 << 20)));
}

#[test]
fn non_voters_round_trip_and_version_2_files_still_load() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = FileSnapshotStore::open(tmp.path()).unwrap();
    let store = store_of(5);
    let with_non_voter = SnapshotMeta {
        non_voters: vec![(ServerId("b".into()), "b:8300".into())],
        ..meta(12, 2)
    };
    save_store(&backend, &with_non_voter, &store);
    let (m, back) = load_store(&backend, id(12, 2), codec::MAX_DECODE_BYTES).unwrap();
    assert_eq!((m, back), (with_non_voter, store.clone()));

    // The same file as version 2 wrote it: a header of index, term and voters only.
    save_store(&backend, &meta(14, 2), &store);
    let path = backend.path_of(id(14, 2));
    let bytes = std::fs::read(&path).unwrap();
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let rest = &bytes[16 + header_len + 4..];
    let m = meta(14, 2);
    let header = codec::encode(&(m.index, m.term, m.configuration.clone())).unwrap();
    let mut v2 = b"CAIRNSNP".to_vec();
    v2.extend_from_slice(&2u32.to_le_bytes());
    v2.extend_from_slice(&(header.len() as u32).to_le_bytes());
    v2.extend_from_slice(&header);
    v2.extend_from_slice(&crc32fast::hash(&header).to_le_bytes());
    v2.extend_from_slice(rest);
    std::fs::write(&path, v2).unwrap();
    let (m, back) = load_store(&backend, id(14, 2), codec::MAX_DECODE_BYTES).unwrap();
    assert_eq!((m, back), (meta(14, 2), store));
}

fn tmp_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect()
}

#[test]
fn a_failed_file_save_removes_its_temp_file_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let backend = FileSnapshotStore::open(tmp.path()).unwrap();
    let mut saw_tmp = false;
    let result = backend.save_with(&meta(9, 1), &mut |w| {
        w.write_all(&[1; 3 << 20])?; // past the write buffer: the file has data
        saw_tmp = !tmp_files(tmp.path()).is_empty();
        Err(io::Error::other("injected failure"))
    });
    assert!(result.is_err());
    assert!(saw_tmp, "the temp file existed while writing");
    assert_eq!(tmp_files(tmp.path()), Vec::<String>::new());
    assert_eq!(backend.list().unwrap(), vec![]);
}

/// A disk that fills up mid-snapshot: a 1 MiB tmpfs. Needs root (CI runs as root);
/// skipped otherwise.
#[test]
fn a_full_disk_leaves_no_temp_file() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(dir)
        .output()
        .is_ok_and(|o| o.status.success());
    if !mounted {
        eprintln!("skipped: cannot mount a tmpfs (not root?)");
        return;
    }
    let outcome = std::panic::catch_unwind(|| {
        let backend = FileSnapshotStore::open(dir).unwrap();
        backend.save(&meta(1, 1), b"small").unwrap();
        let big = store_of(30_000); // ~3.5 MB of records
        let result = backend.save_with(&meta(2, 1), &mut |w| {
            records::write_store(&big, w, codec::MAX_DECODE_BYTES)
        });
        assert!(result.is_err(), "a 3.5 MB snapshot fit in a 1 MiB tmpfs");
        assert_eq!(tmp_files(dir), Vec::<String>::new());
        assert_eq!(backend.list().unwrap(), vec![id(1, 1)]);
        assert_eq!(backend.load(id(1, 1)).unwrap().data, b"small");
    });
    let _ = std::process::Command::new("umount").arg(dir).status();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

#[test]
fn file_store_deletes_a_torn_temp_file_on_open() {
    let tmp = tempfile::tempdir().unwrap();
    let torn = tmp
        .path()
        .join("00000000000000000001-00000000000000000010.snap.tmp");
    std::fs::write(&torn, b"CAIRN").unwrap();
    let backend = FileSnapshotStore::open(tmp.path()).unwrap();
    assert!(!torn.exists());
    assert_eq!(backend.list().unwrap(), vec![]);
}
