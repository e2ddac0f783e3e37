//! Snapshot archives as Consul makes them (`GET`/`PUT /v1/snapshot`, `cairn snapshot`):
//! a gzipped tar holding
//!
//! - `meta.json`: raft's snapshot meta as JSON (`Version`, `ID`, `Index`, `Term`, `Size`
//!   ...), one line, as Go's `json.Encoder` writes it;
//! - `state.bin`: cairn's store image (`protocol::store::image`) behind a format header
//!   (`CAIRNSTA | u32 version`), so a Consul archive fed to cairn is refused by name
//!   rather than half decoded;
//! - `SHA256SUMS`: `<hex>  <name>` for the two files above, checked on every read.
//!
//! Reading is bounded: each file's size is checked against its limit from its tar header
//! before anything of it is read, so a small gzip cannot unpack into a huge allocation.

use flate2::read::GzDecoder;
use flate2::write::GzEncoder;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;

/// raft's snapshot version, the one Consul writes (`meta.json` `Version`).
pub const SNAPSHOT_VERSION: i64 = 1;
/// First bytes of `state.bin`: cairn's store image follows.
pub const STATE_MAGIC: &[u8; 8] = b"CAIRNSTA";
/// Version of the store image format after the magic (`u32`, little endian).
pub const STATE_FORMAT_VERSION: u32 = 1;
/// Bytes of `state.bin` before the image (magic and version).
pub const STATE_HEADER_BYTES: usize = 12;

/// Largest `meta.json` and `SHA256SUMS` read (both are a few hundred bytes).
pub const MAX_SMALL_FILE_BYTES: u64 = 64 * 1024;

const META: &str = "meta.json";
const STATE: &str = "state.bin";
const SUMS: &str = "SHA256SUMS";

/// raft's `SnapshotMeta` as Consul's archives carry it. cairn fills what it knows: the
/// configuration is not part of the store image (a restore keeps the cluster's own).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    #[serde(rename = "Version")]
    pub version: i64,
    /// `<term>-<index>-<unix milliseconds>`, as raft names its snapshots.
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Index")]
    pub index: u64,
    #[serde(rename = "Term")]
    pub term: u64,
    #[serde(rename = "Peers", default)]
    pub peers: Option<String>,
    #[serde(rename = "Configuration", default)]
    pub configuration: Configuration,
    #[serde(rename = "ConfigurationIndex", default)]
    pub configuration_index: u64,
    /// Bytes of `state.bin`.
    #[serde(rename = "Size")]
    pub size: i64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configuration {
    #[serde(rename = "Servers", default)]
    pub servers: Option<Vec<serde_json::Value>>,
}

/// A verified archive: its meta and the store image (without the `state.bin` header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archive {
    pub meta: SnapshotMeta,
    pub image: Vec<u8>,
}

/// Why an archive was refused; the texts follow Consul's where Consul has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchiveError {
    #[error("failed reading snapshot: {0}")]
    Read(String),
    #[error("unexpected file {0:?} in snapshot")]
    UnexpectedFile(String),
    #[error("file {name:?} in snapshot is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { name: String, size: u64, limit: u64 },
    #[error("failed checking integrity of snapshot: {0}")]
    Integrity(String),
    #[error("failed to decode snapshot metadata: {0}")]
    Meta(String),
    #[error("unsupported snapshot version {0}")]
    Version(i64),
    #[error("snapshot state is {actual} bytes, its metadata says {declared}")]
    SizeMismatch { declared: i64, actual: u64 },
    #[error("state.bin is not a cairn store image (archives of other servers, such as Consul's own, cannot be restored into cairn)")]
    NotCairn,
    #[error("unsupported cairn store image version {0} (this build reads version {STATE_FORMAT_VERSION})")]
    StateVersion(u32),
}

/// The snapshot ID raft would give: `<term>-<index>-<unix ms>`.
pub fn snapshot_id(term: u64, index: u64, unix_ms: u128) -> String {
    format!("{term}-{index}-{unix_ms}")
}

/// Build the archive of a store image taken at `index` in `term`; `mtime` (Unix
/// seconds) stamps the tar entries and `unix_ms` the ID.
pub fn write_archive(
    index: u64,
    term: u64,
    image: &[u8],
    unix_ms: u128,
) -> std::io::Result<Vec<u8>> {
    let mut state = Vec::with_capacity(STATE_HEADER_BYTES + image.len());
    state.extend_from_slice(STATE_MAGIC);
    state.extend_from_slice(&STATE_FORMAT_VERSION.to_le_bytes());
    state.extend_from_slice(image);
    let meta = SnapshotMeta {
        version: SNAPSHOT_VERSION,
        id: snapshot_id(term, index, unix_ms),
        index,
        term,
        peers: None,
        configuration: Configuration::default(),
        configuration_index: 0,
        size: i64::try_from(state.len()).map_err(std::io::Error::other)?,
    };
    let mut meta_json = serde_json::to_vec(&meta).map_err(std::io::Error::other)?;
    meta_json.push(b'\n');
    let sums = format!(
        "{}  {META}\n{}  {STATE}\n",
        hex_sha256(&meta_json),
        hex_sha256(&state)
    );
    let mtime = u64::try_from(unix_ms / 1000).unwrap_or(0);
    let gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut tar = tar::Builder::new(gz);
    for (name, bytes) in [
        (META, meta_json.as_slice()),
        (STATE, state.as_slice()),
        (SUMS, sums.as_bytes()),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o600);
        header.set_mtime(mtime);
        tar.append_data(&mut header, name, bytes)?;
    }
    tar.into_inner()?.finish()
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Read and verify an archive: every file known and within its limit (`state.bin` at
/// most `max_state_bytes`), every checksum matching, a version this build reads.
pub fn read_archive(input: impl Read, max_state_bytes: u64) -> Result<Archive, ArchiveError> {
    let read_err = |e: std::io::Error| ArchiveError::Read(e.to_string());
    let mut tar = tar::Archive::new(GzDecoder::new(input));
    let (mut meta, mut state, mut sums) = (None, None, None);
    for entry in tar.entries().map_err(read_err)? {
        let mut entry = entry.map_err(read_err)?;
        let name = entry
            .path()
            .map_err(read_err)?
            .to_string_lossy()
            .into_owned();
        let (slot, limit) = match name.as_str() {
            META => (&mut meta, MAX_SMALL_FILE_BYTES),
            STATE => (&mut state, max_state_bytes),
            SUMS => (&mut sums, MAX_SMALL_FILE_BYTES),
            _ => return Err(ArchiveError::UnexpectedFile(name)),
        };
        let size = entry.header().size().map_err(read_err)?;
        if size > limit {
            return Err(ArchiveError::TooLarge { name, size, limit });
        }
        if slot.is_some() {
            return Err(ArchiveError::Read(format!("file {name:?} appears twice")));
        }
        // `size` is within a limit the caller chose to hold in memory.
        let mut bytes = Vec::with_capacity(size as usize);
        entry
            .by_ref()
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(read_err)?;
        *slot = Some(bytes);
    }
    let meta = meta.unwrap_or_default();
    let state = state.unwrap_or_default();
    verify_sums(&sums.unwrap_or_default(), &[(META, &meta), (STATE, &state)])?;
    let meta: SnapshotMeta =
        serde_json::from_slice(&meta).map_err(|e| ArchiveError::Meta(e.to_string()))?;
    if meta.version != SNAPSHOT_VERSION {
        return Err(ArchiveError::Version(meta.version));
    }
    if u64::try_from(meta.size).ok() != Some(state.len() as u64) {
        return Err(ArchiveError::SizeMismatch {
            declared: meta.size,
            actual: state.len() as u64,
        });
    }
    let image = state_image(state)?;
    Ok(Archive { meta, image })
}

/// The store image inside `state.bin`, after its header.
fn state_image(mut state: Vec<u8>) -> Result<Vec<u8>, ArchiveError> {
    let Some((magic, rest)) = state.split_first_chunk::<8>() else {
        return Err(ArchiveError::NotCairn);
    };
    if magic != STATE_MAGIC {
        return Err(ArchiveError::NotCairn);
    }
    let Some((version, _)) = rest.split_first_chunk::<4>() else {
        return Err(ArchiveError::NotCairn);
    };
    let version = u32::from_le_bytes(*version);
    if version != STATE_FORMAT_VERSION {
        return Err(ArchiveError::StateVersion(version));
    }
    state.drain(..STATE_HEADER_BYTES);
    Ok(state)
}

/// Consul's check: every line names a known file whose hash matches, and every known
/// file has a line.
fn verify_sums(sums: &[u8], files: &[(&str, &[u8])]) -> Result<(), ArchiveError> {
    let bad = |text: String| ArchiveError::Integrity(text);
    let text = std::str::from_utf8(sums).map_err(|_| bad("SHA256SUMS is not text".into()))?;
    let mut seen = Vec::new();
    for line in text.lines() {
        let Some((hex, name)) = line.split_once("  ") else {
            return Err(bad(format!("malformed SHA256SUMS line {line:?}")));
        };
        let Some((_, bytes)) = files.iter().find(|(known, _)| *known == name) else {
            return Err(bad(format!("list missing hash for {name:?}")));
        };
        if !hex.eq_ignore_ascii_case(&hex_sha256(bytes)) {
            return Err(bad(format!("hash check failed for {name:?}")));
        }
        seen.push(name);
    }
    match files.iter().find(|(name, _)| !seen.contains(name)) {
        Some((name, _)) => Err(bad(format!("file missing for {name:?}"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(archive: &[u8]) -> Vec<(String, Vec<u8>, u32)> {
        let mut tar = tar::Archive::new(GzDecoder::new(archive));
        tar.entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let name = e.path().unwrap().to_string_lossy().into_owned();
                let mode = e.header().mode().unwrap();
                let mut bytes = Vec::new();
                e.read_to_end(&mut bytes).unwrap();
                (name, bytes, mode)
            })
            .collect()
    }

    /// Re-pack files into a gzipped tar, as a hostile or broken writer might.
    fn pack(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut tar = tar::Builder::new(GzEncoder::new(Vec::new(), flate2::Compression::fast()));
        for (name, bytes) in files {
            let mut header = tar::Header::new_ustar();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o600);
            tar.append_data(&mut header, name, *bytes).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn an_archive_holds_consuls_three_files_and_reads_back() {
        let archive = write_archive(12, 3, b"image bytes", 1_700_000_000_123).unwrap();
        assert_eq!(&archive[..2], &[0x1f, 0x8b], "gzip");
        let files = entries(&archive);
        let names: Vec<&str> = files.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(names, [META, STATE, SUMS]);
        assert!(files.iter().all(|(_, _, mode)| *mode == 0o600));
        let meta = String::from_utf8(files[0].1.clone()).unwrap();
        assert_eq!(
            meta,
            "{\"Version\":1,\"ID\":\"3-12-1700000000123\",\"Index\":12,\"Term\":3,\"Peers\":null,\
             \"Configuration\":{\"Servers\":null},\"ConfigurationIndex\":0,\"Size\":23}\n"
        );
        assert_eq!(&files[1].1[..8], STATE_MAGIC);
        let sums = String::from_utf8(files[2].1.clone()).unwrap();
        assert_eq!(
            sums,
            format!(
                "{}  meta.json\n{}  state.bin\n",
                hex_sha256(&files[0].1),
                hex_sha256(&files[1].1)
            )
        );
        let read = read_archive(archive.as_slice(), 1024).unwrap();
        assert_eq!(read.image, b"image bytes");
        assert_eq!(
            (read.meta.index, read.meta.term, read.meta.size),
            (12, 3, 23)
        );
    }

    #[test]
    fn damaged_or_foreign_archives_are_refused_with_consuls_texts() {
        let archive = write_archive(1, 1, b"abc", 0).unwrap();
        let files = entries(&archive);
        let (meta, state, sums) = (&files[0].1, &files[1].1, &files[2].1);

        let mut flipped = state.clone();
        flipped[STATE_HEADER_BYTES] ^= 1;
        let err = read_archive(
            pack(&[(META, meta), (STATE, &flipped), (SUMS, sums)]).as_slice(),
            1024,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed checking integrity of snapshot: hash check failed for \"state.bin\""
        );

        let err = read_archive(pack(&[(META, meta), (STATE, state)]).as_slice(), 1024).unwrap_err();
        assert_eq!(
            err.to_string(),
            "failed checking integrity of snapshot: file missing for \"meta.json\""
        );

        let err = read_archive(
            pack(&[(META, meta), (STATE, state), (SUMS, sums), ("x", b"")]).as_slice(),
            1024,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "unexpected file \"x\" in snapshot");

        let err = read_archive(archive.as_slice(), 5).unwrap_err();
        assert!(
            matches!(
                err,
                ArchiveError::TooLarge {
                    size: 15,
                    limit: 5,
                    ..
                }
            ),
            "{err}"
        );

        let err = read_archive(&b"not gzip at all"[..], 1024).unwrap_err();
        assert!(
            err.to_string().starts_with("failed reading snapshot: "),
            "{err}"
        );

        // A newer raft snapshot version, with matching sums.
        let v2 = String::from_utf8(meta.clone())
            .unwrap()
            .replace("\"Version\":1", "\"Version\":2");
        let sums2 = format!(
            "{}  meta.json\n{}  state.bin\n",
            hex_sha256(v2.as_bytes()),
            hex_sha256(state)
        );
        let err = read_archive(
            pack(&[
                (META, v2.as_bytes()),
                (STATE, state),
                (SUMS, sums2.as_bytes()),
            ])
            .as_slice(),
            1024,
        )
        .unwrap_err();
        assert_eq!(err, ArchiveError::Version(2));

        // A Consul state.bin (not ours), with matching sums and size.
        let foreign = b"\x85\xa5Index\x01";
        let meta3 = String::from_utf8(meta.clone())
            .unwrap()
            .replace("\"Size\":15", &format!("\"Size\":{}", foreign.len()));
        let sums3 = format!(
            "{}  meta.json\n{}  state.bin\n",
            hex_sha256(meta3.as_bytes()),
            hex_sha256(foreign)
        );
        let err = read_archive(
            pack(&[
                (META, meta3.as_bytes()),
                (STATE, foreign),
                (SUMS, sums3.as_bytes()),
            ])
            .as_slice(),
            1024,
        )
        .unwrap_err();
        assert_eq!(err, ArchiveError::NotCairn);
    }
}
