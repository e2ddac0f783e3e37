//! The local registrations in the data dir: one JSON file, replaced atomically (write a
//! temp file, fsync it, rename it over the old one, fsync the directory), so a crash
//! leaves the old or the new file, never a torn one.

use protocol::health::local::{PersistedState, PERSIST_FORMAT_VERSION};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Registrations (everything but check outputs) take at most this much encoded; a
/// registration that would go over is refused.
pub const MAX_REGISTERED_BYTES: usize = 64 * 1024 * 1024;
/// Largest file loaded back (a bounded load: more is refused with its size). Above the
/// registrations' limit by what outputs can add: `MAX_LOCAL_CHECKS` outputs of 4 KiB,
/// each at most 6x longer once JSON-escaped.
pub const MAX_STATE_FILE_BYTES: u64 =
    MAX_REGISTERED_BYTES as u64 + super::actor::MAX_LOCAL_CHECKS as u64 * 4_096 * 6 + 1024 * 1024;

/// Where the state lives under a data dir.
pub fn state_path(data_dir: &Path) -> PathBuf {
    data_dir.join("local").join("state.json")
}

/// The file's bytes for `state`.
pub fn encode(state: &PersistedState) -> Vec<u8> {
    // Plain data (strings, numbers, maps with string keys): encoding cannot fail.
    serde_json::to_vec(state).unwrap_or_default()
}

/// Replace the file with `state`.
pub fn save(path: &Path, state: &PersistedState) -> std::io::Result<()> {
    save_bytes(path, &encode(state))
}

/// Replace the file with already encoded `bytes`.
pub fn save_bytes(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = path.with_extension("json.tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    std::fs::File::open(dir)?.sync_all()
}

/// Load the file; `Ok(None)` when there is none yet.
pub fn load(path: &Path) -> Result<Option<PersistedState>, String> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    if meta.len() > MAX_STATE_FILE_BYTES {
        return Err(format!(
            "{}: {} bytes, over the limit of {MAX_STATE_FILE_BYTES}",
            path.display(),
            meta.len()
        ));
    }
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let state: PersistedState =
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    if state.version != PERSIST_FORMAT_VERSION {
        return Err(format!(
            "{}: unknown format version {}",
            path.display(),
            state.version
        ));
    }
    Ok(Some(state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn saves_and_loads_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path());
        assert_eq!(load(&path), Ok(None));
        let state = PersistedState {
            version: PERSIST_FORMAT_VERSION,
            services: vec![],
            checks: vec![],
            node_maintenance: Some("why".into()),
            service_maintenance: BTreeMap::new(),
        };
        save(&path, &state).unwrap();
        save(&path, &state).unwrap();
        assert_eq!(load(&path), Ok(Some(state)));
        assert!(!path.with_extension("json.tmp").exists());
        std::fs::write(&path, b"{").unwrap();
        assert!(load(&path).is_err());
    }
}
