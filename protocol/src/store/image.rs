//! The store's snapshot IMAGE: its records ([`super::snapshot`]) framed one by one.
//!
//! ```text
//! record*  where record = u32 length (LE) | u32 crc32 of the bytes (LE) | bytes
//! ```
//! `bytes` is one codec-encoded [`SnapshotRecord`] (a header, one table row, or the end
//! record that counts the records before it). Every record is decoded on its own, with a
//! limit (normally [`codec::MAX_DECODE_BYTES`]): the writer refuses a record over the
//! limit, the reader refuses a length over it before allocating. So reading and writing
//! hold one record at a time, whatever the size of the store.
//!
//! The same bytes are a snapshot file's data section, the image a leader sends to a
//! follower, the `state.bin` of a `/v1/snapshot` archive (behind its own format header)
//! and the payload of a replicated restore ([`super::Command::Restore`]). Pure: the
//! readers and writers are `std::io` traits over whatever the shell hands in.

use super::{SnapshotRecord, Store, StoreBuilder};
use crate::codec;
use std::io::{self, Read, Write};

/// Bytes each record's frame adds before the record (length and crc32).
pub const FRAME_BYTES: u64 = 8;

/// Write every record of `store` to `out` (framed). Fails, writing nothing more, on a
/// record over `max_record_bytes`: it could not be read back.
pub fn write_image(store: &Store, out: &mut dyn Write, max_record_bytes: usize) -> io::Result<()> {
    for record in store.snapshot_records() {
        let bytes = codec::encode(&record).map_err(io::Error::other)?;
        if bytes.len() > max_record_bytes {
            return Err(io::Error::other(format!(
                "a snapshot record of {} bytes exceeds the {max_record_bytes} bytes a record may have",
                bytes.len()
            )));
        }
        // Under the limit, which is far below 4 GiB, so the length fits a u32.
        let len = u32::try_from(bytes.len()).map_err(io::Error::other)?;
        out.write_all(&len.to_le_bytes())?;
        out.write_all(&crc32fast::hash(&bytes).to_le_bytes())?;
        out.write_all(&bytes)?;
    }
    Ok(())
}

/// The whole image of `store` in memory, with the normal record limit.
pub fn encode_image(store: &Store) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    write_image(store, &mut out, codec::MAX_DECODE_BYTES).map_err(|e| e.to_string())?;
    Ok(out)
}

/// Read records up to and including the end record and rebuild the store. Bytes after
/// the end record are not read (the caller decides about them).
pub fn read_image(input: &mut dyn Read, max_record_bytes: usize) -> Result<Store, String> {
    let mut builder = StoreBuilder::new();
    read_records(input, max_record_bytes, &mut |record, _| {
        builder.push(record).map_err(|e| e.to_string())
    })?;
    builder.finish().map_err(|e| e.to_string())
}

/// Hand every record, up to and including the end record, to `each` with its framed
/// size (frame included), checking lengths and CRCs on the way. Stops at the first
/// error, `each`'s included.
pub fn read_records(
    input: &mut dyn Read,
    max_record_bytes: usize,
    each: &mut dyn FnMut(SnapshotRecord, u64) -> Result<(), String>,
) -> Result<(), String> {
    let mut buf = Vec::new();
    for position in 0u64.. {
        let mut frame = [0u8; 8];
        input.read_exact(&mut frame).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                format!("the data ends at record {position}, before its end record")
            }
            _ => e.to_string(),
        })?;
        let len = u32::from_le_bytes([frame[0], frame[1], frame[2], frame[3]]) as usize;
        let crc = u32::from_le_bytes([frame[4], frame[5], frame[6], frame[7]]);
        if len > max_record_bytes {
            return Err(format!(
                "record {position} is {len} bytes, over the limit of {max_record_bytes}"
            ));
        }
        buf.resize(len, 0);
        input
            .read_exact(&mut buf)
            .map_err(|e| format!("record {position}: {e}"))?;
        if crc32fast::hash(&buf) != crc {
            return Err(format!("record {position}: crc mismatch"));
        }
        let record: SnapshotRecord =
            codec::decode(&buf, max_record_bytes).map_err(|e| format!("record {position}: {e}"))?;
        let end = matches!(record, SnapshotRecord::End { .. });
        each(record, FRAME_BYTES + len as u64)?;
        if end {
            return Ok(());
        }
    }
    Ok(())
}

/// An image at hand as a store: nothing may follow the end record.
pub fn store_from_image(data: &[u8], max_record_bytes: usize) -> Result<Store, String> {
    let mut rest = data;
    let store = read_image(&mut rest, max_record_bytes)?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the end record", rest.len()));
    }
    Ok(store)
}

impl SnapshotRecord {
    /// What the record holds, as `cairn snapshot inspect` names it (Consul's names where
    /// Consul has the same thing: `KVS`, `Tombstone`, `Index`).
    pub fn kind(&self) -> &'static str {
        match self {
            SnapshotRecord::Header { .. } => "Index",
            SnapshotRecord::Node { .. } => "Node",
            SnapshotRecord::Service { .. } => "Service",
            SnapshotRecord::Check { .. } => "Check",
            SnapshotRecord::ServiceName { .. } => "ServiceIndex",
            SnapshotRecord::Kv(_) => "KVS",
            SnapshotRecord::Tombstone { .. } => "Tombstone",
            SnapshotRecord::End { .. } => "End",
            SnapshotRecord::Session(_) => "Session",
            SnapshotRecord::LockDelay { .. } => "LockDelay",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Command, KvOp};

    fn store(keys: u64, value_len: usize) -> Store {
        let mut store = Store::new();
        for i in 1..=keys {
            let cmd = Command::Kv(KvOp::Set {
                key: format!("k{i:04}"),
                value: vec![i as u8; value_len],
                flags: i,
            });
            store.apply(i, &cmd);
        }
        store.apply(
            keys + 1,
            &Command::Kv(KvOp::Delete {
                key: "k0001".into(),
            }),
        );
        store
    }

    #[test]
    fn round_trip() {
        let s = store(50, 10);
        let bytes = encode_image(&s).unwrap();
        assert_eq!(
            store_from_image(&bytes, codec::MAX_DECODE_BYTES).unwrap(),
            s
        );
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let s = store(3, 4);
        let bytes = encode_image(&s).unwrap();
        for cut in 0..bytes.len() {
            assert!(
                store_from_image(&bytes[..cut], 1024).is_err(),
                "cut at {cut}"
            );
        }
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x10;
            assert!(store_from_image(&b, 1024).is_err(), "flip at {at}");
        }
        assert!(store_from_image(&[bytes.clone(), vec![0]].concat(), 1024).is_err());
    }

    #[test]
    fn the_record_limit_bounds_each_record_not_the_store() {
        // 40 records of ~100 bytes: far over a 200-byte limit in total, each under it.
        let s = store(40, 100);
        let bytes = encode_image(&s).unwrap();
        assert!(bytes.len() > 20 * 200);
        assert_eq!(store_from_image(&bytes, 200).unwrap(), s);
        // A record over the limit is refused by its length, before it is read.
        let err = store_from_image(&bytes, 50).unwrap_err();
        assert!(err.contains("over the limit of 50"), "{err}");
        // The writer refuses it too.
        let mut out = Vec::new();
        let err = write_image(&s, &mut out, 50).unwrap_err();
        assert!(err.to_string().contains("exceeds the 50 bytes"), "{err}");
    }

    #[test]
    fn records_are_handed_over_with_their_framed_sizes() {
        let s = store(3, 4);
        let bytes = encode_image(&s).unwrap();
        let mut kinds = Vec::new();
        let mut total = 0;
        read_records(&mut bytes.as_slice(), 1024, &mut |r, size| {
            kinds.push(r.kind());
            total += size;
            Ok(())
        })
        .unwrap();
        assert_eq!(kinds, ["Index", "KVS", "KVS", "Tombstone", "End"]);
        assert_eq!(total, bytes.len() as u64);
    }
}
