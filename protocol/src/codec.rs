//! The one place bincode is used. Every decode is bounded, so a hostile or corrupt
//! length prefix can never make us allocate more than the caller allows.
//!
//! Swapping the wire format later means changing this file only.

use serde::{de::DeserializeOwned, Serialize};

/// Upper bound for any single encoded value (a Raft entry, a snapshot chunk, a frame).
pub const MAX_DECODE_BYTES: usize = 64 * 1024 * 1024;

/// Largest encoded command a server accepts for replication. Well under
/// [`MAX_DECODE_BYTES`], which bounds a whole log record (the command plus the entry's
/// term, index and tags), so every entry we write can be read back at recovery.
pub const MAX_COMMAND_BYTES: usize = 16 * 1024 * 1024;

const _: () = assert!(MAX_COMMAND_BYTES + 1024 <= MAX_DECODE_BYTES);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    #[error("encode failed: {0}")]
    Encode(String),
    #[error("decode failed: {0}")]
    Decode(String),
    #[error("input of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge { len: usize, limit: usize },
    #[error("{0} trailing bytes after the value")]
    Trailing(usize),
}

/// Upper bound for a VERSION-1 snapshot image (the whole store as one codec value), the
/// format written before snapshots became record streams. Version-1 files were never
/// written above this size, so it only bounds reading old files; current snapshots have
/// no ceiling on the image: every record is decoded with [`MAX_DECODE_BYTES`].
pub const MAX_V1_SNAPSHOT_BYTES: usize = 1024 * 1024 * 1024;

fn config() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<MAX_DECODE_BYTES>()
}

/// Encode a value.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Encode(e.to_string()))
}

/// Decode exactly one value from `bytes`, refusing inputs longer than `limit` (which is
/// itself capped by [`MAX_DECODE_BYTES`]) and refusing trailing garbage.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], limit: usize) -> Result<T, CodecError> {
    let limit = limit.min(MAX_DECODE_BYTES);
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    let (value, used) = bincode::serde::decode_from_slice(bytes, config())
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

/// [`decode`] for version-1 snapshot images: the same rules with a limit capped by
/// [`MAX_V1_SNAPSHOT_BYTES`] instead.
pub fn decode_v1_snapshot<T: DeserializeOwned>(
    bytes: &[u8],
    limit: usize,
) -> Result<T, CodecError> {
    let limit = limit.min(MAX_V1_SNAPSHOT_BYTES);
    if bytes.len() > limit {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            limit,
        });
    }
    let config = bincode::config::standard().with_limit::<MAX_V1_SNAPSHOT_BYTES>();
    let (value, used) = bincode::serde::decode_from_slice(bytes, config)
        .map_err(|e| CodecError::Decode(e.to_string()))?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Sample {
        a: u64,
        b: String,
        c: Vec<u8>,
    }

    #[test]
    fn round_trip() {
        let s = Sample {
            a: u64::MAX,
            b: "hé".into(),
            c: vec![0, 1, 255],
        };
        let bytes = encode(&s).unwrap();
        assert_eq!(decode::<Sample>(&bytes, 1024).unwrap(), s);
    }

    #[test]
    fn v1_snapshot_decode_allows_more_than_the_entry_limit_but_not_unbounded() {
        let big = vec![7u8; MAX_DECODE_BYTES + 1];
        let bytes = encode(&big).unwrap();
        assert!(matches!(
            decode::<Vec<u8>>(&bytes, usize::MAX),
            Err(CodecError::TooLarge { .. })
        ));
        assert_eq!(
            decode_v1_snapshot::<Vec<u8>>(&bytes, usize::MAX).unwrap(),
            big
        );
        assert!(matches!(
            decode_v1_snapshot::<Vec<u8>>(&bytes, 10),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn limit_is_enforced() {
        let s = Sample {
            a: 1,
            b: "x".repeat(100),
            c: vec![],
        };
        let bytes = encode(&s).unwrap();
        assert!(matches!(
            decode::<Sample>(&bytes, 10),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn hostile_length_prefix_does_not_allocate() {
        // A Vec<u8> claiming u64::MAX elements: varint tag 253 followed by 8 bytes.
        let mut bytes = vec![253u8];
        bytes.extend_from_slice(&u64::MAX.to_le_bytes());
        assert!(decode::<Vec<u8>>(&bytes, 1024).is_err());
    }

    #[test]
    fn garbage_and_trailing_bytes_are_errors() {
        assert!(decode::<Sample>(&[0xff, 0xff, 0xff], 1024).is_err());
        let mut bytes = encode(&7u32).unwrap();
        bytes.push(0);
        assert_eq!(decode::<u32>(&bytes, 1024), Err(CodecError::Trailing(1)));
    }
}
