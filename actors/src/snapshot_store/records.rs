//! A snapshot's data section: the store as framed records.
//!
//! ```text
//! record*  where record = u32 length (LE) | u32 crc32 of the bytes (LE) | bytes
//! ```
//! `bytes` is one codec-encoded `store::SnapshotRecord` (a header, one table row, or the
//! end record that counts the records before it; see `protocol::store::snapshot`).
//! Every record is decoded on its own, with a limit (normally
//! [`codec::MAX_DECODE_BYTES`]): the writer refuses a record over the limit, the reader
//! refuses a length over it before allocating. So reading and writing hold one record
//! at a time, whatever the size of the store. The same bytes are a snapshot file's data
//! section and the image a leader sends to a follower.

use super::SnapshotData;
use protocol::codec;
use protocol::store::{SnapshotRecord, Store, StoreBuilder};
use std::io::{self, Read, Write};

/// Write every record of `store` to `out` (framed). Fails, writing nothing more, on a
/// record over `max_record_bytes`: it could not be read back.
pub(crate) fn write_store(
    store: &Store,
    out: &mut dyn Write,
    max_record_bytes: usize,
) -> io::Result<()> {
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

/// Read records up to and including the end record and rebuild the store. Bytes after
/// the end record are not read (the caller decides about them).
pub(crate) fn read_store(input: &mut dyn Read, max_record_bytes: usize) -> Result<Store, String> {
    let mut builder = StoreBuilder::new();
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
        builder.push(record).map_err(|e| e.to_string())?;
        if end {
            break;
        }
    }
    builder.finish().map_err(|e| e.to_string())
}

/// A data section at hand (a leader's snapshot) as a store: nothing may follow the end
/// record.
pub(crate) fn store_from_bytes(data: &[u8], max_record_bytes: usize) -> Result<Store, String> {
    let mut rest = data;
    let store = read_store(&mut rest, max_record_bytes)?;
    if !rest.is_empty() {
        return Err(format!("{} bytes after the end record", rest.len()));
    }
    Ok(store)
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::store::{Command, KvOp};

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
        let bytes = encode_store(&s);
        assert_eq!(
            store_from_bytes(&bytes, codec::MAX_DECODE_BYTES).unwrap(),
            s
        );
    }

    #[test]
    fn every_truncation_and_every_flipped_byte_is_refused() {
        let s = store(3, 4);
        let bytes = encode_store(&s);
        for cut in 0..bytes.len() {
            assert!(
                store_from_bytes(&bytes[..cut], 1024).is_err(),
                "cut at {cut}"
            );
        }
        for at in 0..bytes.len() {
            let mut b = bytes.clone();
            b[at] ^= 0x10;
            assert!(store_from_bytes(&b, 1024).is_err(), "flip at {at}");
        }
        assert!(store_from_bytes(&[bytes.clone(), vec![0]].concat(), 1024).is_err());
    }

    #[test]
    fn the_record_limit_bounds_each_record_not_the_store() {
        // 40 records of ~100 bytes: far over a 200-byte limit in total, each under it.
        let s = store(40, 100);
        let bytes = encode_store(&s);
        assert!(bytes.len() > 20 * 200);
        assert_eq!(store_from_bytes(&bytes, 200).unwrap(), s);
        // A record over the limit is refused by its length, before it is read.
        let err = store_from_bytes(&bytes, 50).unwrap_err();
        assert!(err.contains("over the limit of 50"), "{err}");
        // The writer refuses it too.
        let mut out = Vec::new();
        let err = write_store(&s, &mut out, 50).unwrap_err();
        assert!(err.to_string().contains("exceeds the 50 bytes"), "{err}");
    }
}
