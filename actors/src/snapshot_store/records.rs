//! A snapshot's data section: the store's image (framed records, defined with the store
//! in `protocol::store::image`), and the version-1 format.
//!
//! Reading and writing hold one record at a time, whatever the size of the store; each
//! record is bounded by a limit (normally `codec::MAX_DECODE_BYTES`).

use super::SnapshotData;
use protocol::codec;
use protocol::store::Store;

pub(crate) use protocol::store::image::{
    read_image as read_store, store_from_image as store_from_bytes, write_image as write_store,
};

/// A version-1 file's data: the whole store as one codec value.
pub(crate) fn decode_v1(bytes: &[u8]) -> Result<Store, String> {
    codec::decode_v1_snapshot::<Store>(bytes, codec::MAX_V1_SNAPSHOT_BYTES)
        .map_err(|e| e.to_string())
}

/// The store a snapshot's data holds, whichever format.
pub(crate) fn load_store(data: SnapshotData<'_>, max_record_bytes: usize) -> Result<Store, String> {
    match data {
        SnapshotData::Records(input) => read_store(input, max_record_bytes),
        SnapshotData::V1Store(bytes) => decode_v1(bytes),
    }
}

/// A store's data section in memory (tests, `-dev`).
#[cfg(test)]
pub(crate) fn encode_store(store: &Store) -> Vec<u8> {
    let mut out = Vec::new();
    write_store(store, &mut out, codec::MAX_DECODE_BYTES).expect("writing to memory");
    out
}
