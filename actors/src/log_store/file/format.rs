//! The bytes of the segment format (see the module docs of `file.rs`): segment header,
//! record framing and the seal record. Pure functions, no I/O.

/// First bytes of every v1 segment. A v0 (headerless) segment starts with a record
/// length instead; read as a little-endian u32 this magic is over 1 GiB, far above any
/// record limit, so a v0 file can never be mistaken for a v1 one.
pub const MAGIC: &[u8; 8] = b"CAIRNLOG";
/// Segment format written by this code. 0 is the legacy headerless format (read only).
pub const FORMAT_VERSION: u32 = 1;
/// `magic | u32 version | u64 first index | u32 crc32 of the previous 20 bytes`.
pub const SEGMENT_HEADER_BYTES: u64 = 24;
/// `u32 payload length | u32 crc32 of the payload`.
pub const RECORD_HEADER_BYTES: usize = 8;
/// Seal payload: this tag then the next segment's first index (u64 LE). The tag's first
/// byte, 0xFF, is never the first byte of a codec-encoded entry (a varint never starts
/// with 0xFF in bincode's standard config), so a seal never parses as an entry.
pub const SEAL_TAG: &[u8; 8] = &[0xFF, b'C', b'A', b'I', b'R', b'N', b'S', b'L'];
pub const SEAL_PAYLOAD_BYTES: usize = 16;
pub const SEAL_RECORD_BYTES: u64 = (RECORD_HEADER_BYTES + SEAL_PAYLOAD_BYTES) as u64;

/// The hard-state file: `"CAIRNHS\0" | u32 LE version | record` (the record framed like a
/// log record). Files without the magic are version 0 (a bare record) and still read.
pub const HARD_STATE_MAGIC: &[u8; 8] = b"CAIRNHS\0";
pub const HARD_STATE_VERSION: u32 = 1;

/// The whole hard-state file for a codec-encoded `HardState`.
pub fn hard_state_file(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(12 + RECORD_HEADER_BYTES + payload.len());
    out.extend_from_slice(HARD_STATE_MAGIC);
    out.extend_from_slice(&HARD_STATE_VERSION.to_le_bytes());
    frame(payload, &mut out);
    out
}

/// The framed record inside a hard-state file, or the unknown version it carries.
pub fn hard_state_record(bytes: &[u8]) -> Result<&[u8], u32> {
    match bytes.strip_prefix(HARD_STATE_MAGIC.as_slice()) {
        None => Ok(bytes), // version 0
        Some(rest) => {
            let version = rest
                .get(..4)
                .map(|v| u32::from_le_bytes([v[0], v[1], v[2], v[3]]))
                .unwrap_or(u32::MAX);
            if version == HARD_STATE_VERSION {
                Ok(&rest[4..])
            } else {
                Err(version)
            }
        }
    }
}

pub fn segment_header(first_index: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(SEGMENT_HEADER_BYTES as usize);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&first_index.to_le_bytes());
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// What the first bytes of a segment file say about its format.
#[derive(Debug, PartialEq, Eq)]
pub enum Header {
    /// No magic: a legacy v0 segment, records start at offset 0.
    Legacy,
    /// A complete, valid v1 header naming this first index.
    V1 { first_index: u64 },
    /// A strict prefix of a v1 header (a segment whose creation was cut short).
    Partial,
    /// The magic is there but the header fails its crc.
    Damaged,
    /// A valid header of a format this code does not know.
    UnknownVersion(u32),
}

pub fn parse_header(bytes: &[u8]) -> Header {
    let n = bytes.len().min(MAGIC.len());
    if bytes.len() < SEGMENT_HEADER_BYTES as usize {
        return if bytes[..n] == MAGIC[..n] && !bytes.is_empty() {
            Header::Partial
        } else {
            Header::Legacy
        };
    }
    if &bytes[..8] != MAGIC {
        return Header::Legacy;
    }
    let crc = u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    if crc32fast::hash(&bytes[..20]) != crc {
        return Header::Damaged;
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != FORMAT_VERSION {
        return Header::UnknownVersion(version);
    }
    let mut first = [0u8; 8];
    first.copy_from_slice(&bytes[12..20]);
    Header::V1 {
        first_index: u64::from_le_bytes(first),
    }
}

pub fn frame(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

pub fn seal_record(next_first_index: u64) -> Vec<u8> {
    let mut payload = Vec::with_capacity(SEAL_PAYLOAD_BYTES);
    payload.extend_from_slice(SEAL_TAG);
    payload.extend_from_slice(&next_first_index.to_le_bytes());
    let mut out = Vec::with_capacity(SEAL_RECORD_BYTES as usize);
    frame(&payload, &mut out);
    out
}

/// The next segment's first index if `payload` is a seal.
pub fn parse_seal(payload: &[u8]) -> Option<u64> {
    if payload.len() != SEAL_PAYLOAD_BYTES || &payload[..8] != SEAL_TAG {
        return None;
    }
    let mut next = [0u8; 8];
    next.copy_from_slice(&payload[8..]);
    Some(u64::from_le_bytes(next))
}

/// One record read at a position.
#[derive(Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// The payload and the offset just past it.
    Good(&'a [u8], usize),
    /// Short (runs past the end) or failing its crc.
    Bad,
    /// Complete with a valid crc but over the record limit: real data we cannot read.
    TooLarge(usize),
}

pub fn unframe(bytes: &[u8], pos: usize, max_record: usize) -> Record<'_> {
    let parse = || {
        let header = bytes.get(pos..pos.checked_add(RECORD_HEADER_BYTES)?)?;
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let start = pos + RECORD_HEADER_BYTES;
        let payload = bytes.get(start..start.checked_add(len)?)?;
        (crc32fast::hash(payload) == crc).then_some((payload, start + len))
    };
    match parse() {
        None => Record::Bad,
        Some((payload, _)) if payload.len() > max_record => Record::TooLarge(payload.len()),
        Some((payload, end)) => Record::Good(payload, end),
    }
}

/// A bincode standard-config varint at the start of `bytes`: (value, bytes used).
fn varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let first = *bytes.first()?;
    let wide = |n: usize| {
        let raw = bytes.get(1..1 + n)?;
        let mut buf = [0u8; 8];
        buf[..n].copy_from_slice(raw);
        Some((u64::from_le_bytes(buf), 1 + n))
    };
    match first {
        0..=250 => Some((u64::from(first), 1)),
        251 => wide(2),
        252 => wide(4),
        253 => wide(8),
        _ => None,
    }
}

/// The index an entry payload claims (its second varint, after the term), read without
/// decoding the entry: a cheap filter before checking a candidate record's crc.
pub fn claimed_index(payload: &[u8]) -> Option<u64> {
    let (_, used) = varint(payload)?;
    varint(&payload[used..]).map(|(index, _)| index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::codec;
    use protocol::ids::{LogIndex, Term};
    use protocol::raft::{Entry, Payload};

    #[test]
    fn header_round_trip_and_prefixes() {
        let h = segment_header(42);
        assert_eq!(h.len() as u64, SEGMENT_HEADER_BYTES);
        assert_eq!(parse_header(&h), Header::V1 { first_index: 42 });
        assert_eq!(parse_header(&h[..5]), Header::Partial);
        assert_eq!(parse_header(&h[..23]), Header::Partial);
        assert_eq!(parse_header(&[]), Header::Legacy);
        let mut bad = h.clone();
        bad[14] ^= 1;
        assert_eq!(parse_header(&bad), Header::Damaged);
        let mut v9 = h[..20].to_vec();
        v9[8] = 9;
        let crc = crc32fast::hash(&v9);
        v9.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(parse_header(&v9), Header::UnknownVersion(9));
    }

    #[test]
    fn a_seal_is_never_an_entry_and_indexes_are_read_cheaply() {
        let seal = seal_record(7);
        let Record::Good(payload, end) = unframe(&seal, 0, 1024) else {
            panic!("seal does not unframe")
        };
        assert_eq!(end as u64, SEAL_RECORD_BYTES);
        assert_eq!(parse_seal(payload), Some(7));
        assert!(codec::decode::<Entry>(payload, 1024).is_err());
        for index in [1u64, 250, 251, 70_000, 1 << 40] {
            let e = Entry {
                term: Term(300),
                index: LogIndex(index),
                payload: Payload::Noop,
            };
            let bytes = codec::encode(&e).unwrap();
            assert_eq!(claimed_index(&bytes), Some(index));
            assert_eq!(parse_seal(&bytes), None);
        }
    }
}
