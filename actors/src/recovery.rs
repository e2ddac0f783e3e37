//! Snapshot recovery policy at start: which retained snapshot the store is rebuilt from.

use crate::errors::StartError;
use crate::log_store::StorageError;
use crate::snapshot_store::{records, LoadError, SnapshotBackend};
use protocol::raft::SnapshotMeta;
use protocol::store::Store;

/// The newest retained snapshot that verifies and decodes, with its store; older ones
/// are tried (with a warning) when a newer one is unusable. None when there are none.
///
/// The store is rebuilt while the file streams in, one record at a time (each within
/// `max_record_bytes`), so memory holds the store being built and one record, never the
/// image. Only a file that fails its own checks (a record's or the data's CRC, header,
/// lengths: `StorageError::Corrupt`) is set aside. A file that verifies but does not
/// load (a record over `max_record_bytes`, an unknown file version, a stream this
/// version does not understand) is real data: it stays where it is, and if no snapshot
/// is usable the start fails with that reason rather than losing state. (Saving refuses
/// records over the same limit, see `fsm`, so our own files never hit the size case.)
pub(crate) fn load_newest_snapshot(
    snapshots: &dyn SnapshotBackend,
    max_record_bytes: usize,
) -> Result<(Option<SnapshotMeta>, Store), StartError> {
    let ids = snapshots
        .list()
        .map_err(|e| StartError::Storage(e.to_string()))?;
    let mut intact_but_unloadable: Option<String> = None;
    for id in &ids {
        let mut store = None;
        let loaded = snapshots.load_with(*id, &mut |_, data| {
            store = Some(records::load_store(data, max_record_bytes)?);
            Ok(())
        });
        match (loaded, store) {
            (Ok(meta), Some(store)) => {
                tracing::info!(
                    index = meta.index.0,
                    term = meta.term.0,
                    "restored raft snapshot"
                );
                return Ok((Some(meta), store));
            }
            (Ok(_), None) => {
                // A backend that verified a snapshot without handing it over: a bug, but
                // not a reason to panic at start.
                return Err(StartError::Storage(format!(
                    "raft snapshot {}-{} loaded without data",
                    id.term, id.index
                )));
            }
            (Err(error), _) => {
                tracing::warn!(%error, index = id.index.0, term = id.term.0, "raft snapshot unusable; trying an older one");
                match error {
                    LoadError::Storage(StorageError::Corrupt { .. }) => {
                        snapshots
                            .quarantine(*id)
                            .map_err(|e| StartError::Storage(e.to_string()))?
                    }
                    LoadError::Unloadable(..) => {
                        intact_but_unloadable.get_or_insert(error.to_string());
                    }
                    // An I/O error may be passing: that file stays where it is.
                    LoadError::Storage(_) => {}
                }
            }
        }
    }
    if let Some(error) = intact_but_unloadable {
        return Err(StartError::Storage(error));
    }
    if !ids.is_empty() {
        // Only safe if the log still starts at index 1; Raft::new refuses a log with a
        // gap, so a compacted log makes the start fail instead of losing state.
        tracing::warn!("no raft snapshot is usable; rebuilding the state from the log alone");
    }
    Ok((None, Store::new()))
}
