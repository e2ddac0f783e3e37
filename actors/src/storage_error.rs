//! The error every storage backend (Raft log, snapshots) reports. Its own module so that
//! the log store and the snapshot store both depend on it and not on each other's
//! modules (the log store saves a leader's snapshot through the snapshot store; the
//! snapshot store needs nothing from the log store).

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    #[error("{0}")]
    Io(String),
    #[error("corrupt {what}: {detail}")]
    Corrupt { what: String, detail: String },
    #[error("log store is stopped")]
    Stopped,
}

impl From<std::io::Error> for StorageError {
    fn from(e: std::io::Error) -> Self {
        StorageError::Io(e.to_string())
    }
}
