//! The chunker and the assembler: exact outcomes for each kind of stream.

use super::frame::RaftFrame;
use super::snapshot_chunks::*;
use super::{Message, SnapshotMeta};
use crate::ids::{LogIndex, ServerId, Term};

const LIMIT: u64 = 1 << 20;

fn meta(index: u64) -> SnapshotMeta {
    SnapshotMeta {
        index: LogIndex(index),
        term: Term(2),
        configuration: vec![(ServerId("leader".into()), "127.0.0.1:8300".into())],
        non_voters: Vec::new(),
    }
}

fn image(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 % 251) as u8).collect()
}

/// The chunks of `data` sent by "leader" in `term` for a snapshot at `index`.
fn chunks_of(data: &[u8], term: u64, index: u64, chunk_bytes: usize) -> Vec<SnapshotChunk> {
    let sequence = ChunkSequence::new(
        ServerId("leader".into()),
        "127.0.0.1:8300".into(),
        Term(term),
        meta(index),
        (data.len() as u64, crc32fast::hash(data)),
    );
    split_image(sequence, data, chunk_bytes)
}

fn install(data: Vec<u8>, term: u64, index: u64) -> RaftFrame {
    RaftFrame {
        from: ServerId("leader".into()),
        from_addr: "127.0.0.1:8300".into(),
        msg: Message::InstallSnapshot {
            term: Term(term),
            leader: ServerId("leader".into()),
            meta: meta(index),
            data,
        },
    }
}

/// Feed every chunk on `stream`; the outcome of the last one.
fn feed(
    a: &mut ChunkAssembler,
    stream: u64,
    chunks: &[SnapshotChunk],
) -> Result<ChunkOutcome, ChunkError> {
    let (last, rest) = chunks.split_last().expect("chunks");
    for c in rest {
        assert_eq!(a.on_chunk(stream, c.clone()), Ok(ChunkOutcome::Accepted));
    }
    a.on_chunk(stream, last.clone())
}

#[test]
fn the_chunker_numbers_offsets_and_flags_only_the_last_chunk() {
    let data = image(2500);
    let chunks = chunks_of(&data, 3, 5, 1000);
    let offsets: Vec<(u64, usize, bool)> = chunks
        .iter()
        .map(|c| (c.offset, c.bytes.len(), c.last))
        .collect();
    assert_eq!(
        offsets,
        vec![(0, 1000, false), (1000, 1000, false), (2000, 500, true)]
    );
    assert!(chunks.iter().all(|c| c.total_len == 2500
        && c.checksum == crc32fast::hash(&data)
        && c.term == Term(3)
        && c.leader == ServerId("leader".into())));
    // An empty image is one empty, final chunk; a chunk size of 0 is taken as 1.
    let empty = chunks_of(&[], 3, 5, 1000);
    assert_eq!(empty.len(), 1);
    assert!(empty[0].last && empty[0].bytes.is_empty());
    assert_eq!(chunks_of(&[1, 2], 3, 5, 0).len(), 2);
}

#[test]
fn chunks_in_order_assemble_into_one_verified_install_snapshot() {
    for (len, chunk_bytes) in [(5500, 1000), (4000, 1000), (1, 1000), (0, 10), (999, 1)] {
        let data = image(len);
        let mut a = ChunkAssembler::new(LIMIT);
        let outcome = feed(&mut a, 1, &chunks_of(&data, 3, 5, chunk_bytes));
        assert_eq!(outcome, Ok(ChunkOutcome::Complete(install(data, 3, 5))));
        assert_eq!(a.in_progress(), None);
    }
}

#[test]
fn a_gap_discards_the_transfer_until_it_starts_again() {
    let data = image(5000);
    let chunks = chunks_of(&data, 3, 5, 1000);
    let mut a = ChunkAssembler::new(LIMIT);
    assert_eq!(a.on_chunk(1, chunks[0].clone()), Ok(ChunkOutcome::Accepted));
    // Chunk 1 lost: chunk 2 arrives out of order.
    assert_eq!(
        a.on_chunk(1, chunks[2].clone()),
        Err(ChunkError::Gap {
            expected: 1000,
            offset: 2000
        })
    );
    assert_eq!(a.in_progress(), None);
    // The late chunk 1 and the rest no longer belong to anything.
    for c in &chunks[1..] {
        assert_eq!(
            a.on_chunk(1, c.clone()),
            Err(ChunkError::NotInProgress { offset: c.offset })
        );
    }
    // The leader's retry starts from offset 0 and completes.
    assert_eq!(
        feed(&mut a, 2, &chunks),
        Ok(ChunkOutcome::Complete(install(data, 3, 5)))
    );
}

#[test]
fn a_repeated_chunk_is_ignored_and_a_repeated_first_chunk_restarts() {
    let data = image(3500);
    let chunks = chunks_of(&data, 3, 5, 1000);
    let mut a = ChunkAssembler::new(LIMIT);
    assert_eq!(a.on_chunk(1, chunks[0].clone()), Ok(ChunkOutcome::Accepted));
    assert_eq!(a.on_chunk(1, chunks[1].clone()), Ok(ChunkOutcome::Accepted));
    assert_eq!(
        a.on_chunk(1, chunks[1].clone()),
        Ok(ChunkOutcome::Duplicate)
    );
    assert_eq!(a.on_chunk(1, chunks[0].clone()), Ok(ChunkOutcome::Accepted));
    assert_eq!(a.in_progress().map(|(_, n)| n), Some(1000), "restarted");
    // A chunk overlapping the end of what arrived is not a clean repeat: a gap.
    let mut overlapping = chunks[1].clone();
    overlapping.offset = 500;
    assert_eq!(
        a.on_chunk(1, overlapping),
        Err(ChunkError::Gap {
            expected: 1000,
            offset: 500
        })
    );
    assert_eq!(a.in_progress(), None);
    assert_eq!(
        feed(&mut a, 1, &chunks),
        Ok(ChunkOutcome::Complete(install(data, 3, 5)))
    );
}

#[test]
fn sizes_from_the_wire_are_checked_before_anything_is_kept() {
    let mut a = ChunkAssembler::new(LIMIT);
    // Announced over the limit.
    let huge = chunks_of(&image(10), 3, 5, 1000);
    let mut over = huge[0].clone();
    over.total_len = LIMIT + 1;
    over.last = false;
    assert_eq!(
        a.on_chunk(1, over),
        Err(ChunkError::TooLarge {
            total_len: LIMIT + 1,
            limit: LIMIT
        })
    );
    assert_eq!(a.in_progress(), None);
    let mut servers = ChunkAssembler::new(MAX_SNAPSHOT_TRANSFER_BYTES);
    let mut over = huge[0].clone();
    over.total_len = MAX_SNAPSHOT_TRANSFER_BYTES + 1;
    over.last = false;
    assert!(matches!(
        servers.on_chunk(1, over),
        Err(ChunkError::TooLarge { .. })
    ));
    // Exactly at the limit is fine.
    let at_limit = image(LIMIT as usize);
    assert!(matches!(
        feed(&mut a, 1, &chunks_of(&at_limit, 3, 5, 64 * 1024)),
        Ok(ChunkOutcome::Complete(_))
    ));
    // A chunk reaching past the announced end, or an offset that overflows.
    let chunks = chunks_of(&image(3000), 3, 5, 1000);
    assert_eq!(a.on_chunk(1, chunks[0].clone()), Ok(ChunkOutcome::Accepted));
    let mut past = chunks[1].clone();
    past.bytes = vec![0; 2001];
    assert!(matches!(
        a.on_chunk(1, past),
        Err(ChunkError::OutOfBounds { .. })
    ));
    assert_eq!(a.in_progress(), None, "discarded");
    let mut overflow = chunks[0].clone();
    overflow.offset = u64::MAX;
    assert!(matches!(
        a.on_chunk(1, overflow),
        Err(ChunkError::OutOfBounds { .. })
    ));
    // A last chunk that ends before the announced length.
    assert_eq!(a.on_chunk(1, chunks[0].clone()), Ok(ChunkOutcome::Accepted));
    let mut short = chunks[1].clone();
    short.last = true;
    assert_eq!(
        a.on_chunk(1, short),
        Err(ChunkError::Length {
            received: 2000,
            total_len: 3000
        })
    );
    assert_eq!(a.in_progress(), None);
    // A chunk over the per-chunk limit, even inside a large enough announcement.
    let mut fat = chunks[0].clone();
    fat.bytes = vec![0; MAX_SNAPSHOT_CHUNK_BYTES + 1];
    let mut big = ChunkAssembler::new(MAX_SNAPSHOT_TRANSFER_BYTES);
    fat.total_len = MAX_SNAPSHOT_TRANSFER_BYTES;
    assert!(matches!(
        big.on_chunk(1, fat),
        Err(ChunkError::ChunkTooLarge { .. })
    ));
    assert_eq!(big.in_progress(), None);
}

#[test]
fn an_announced_size_alone_reserves_no_memory() {
    let mut a = ChunkAssembler::new(MAX_SNAPSHOT_TRANSFER_BYTES);
    let mut first = chunks_of(&image(10), 3, 5, 1000)[0].clone();
    first.total_len = MAX_SNAPSHOT_TRANSFER_BYTES;
    first.last = false;
    assert_eq!(a.on_chunk(1, first), Ok(ChunkOutcome::Accepted));
    assert!(a.reserved_bytes() < 1024, "{}", a.reserved_bytes());
    // Growth stays within twice what arrived, and within the announced total.
    let data = image(10_000);
    let chunks = chunks_of(&data, 3, 5, 100);
    for c in &chunks[..50] {
        assert_eq!(a.on_chunk(2, c.clone()), Ok(ChunkOutcome::Accepted));
    }
    assert!(a.reserved_bytes() <= 2 * 5_000, "{}", a.reserved_bytes());
    for c in &chunks[50..99] {
        assert_eq!(a.on_chunk(2, c.clone()), Ok(ChunkOutcome::Accepted));
    }
    assert!(a.reserved_bytes() <= 10_000, "{}", a.reserved_bytes());
}

#[test]
fn a_checksum_mismatch_discards_the_image() {
    let data = image(2500);
    let mut chunks = chunks_of(&data, 3, 5, 1000);
    chunks[1].bytes[7] ^= 1; // damaged on the way
    let mut a = ChunkAssembler::new(LIMIT);
    let outcome = feed(&mut a, 1, &chunks);
    assert_eq!(
        outcome,
        Err(ChunkError::Checksum {
            announced: crc32fast::hash(&data),
            received: crc32fast::hash(
                &[&chunks[0].bytes[..], &chunks[1].bytes, &chunks[2].bytes].concat()
            ),
        })
    );
    assert_eq!(a.in_progress(), None);
}

#[test]
fn a_chunk_that_contradicts_its_transfer_discards_it() {
    let data = image(3000);
    let chunks = chunks_of(&data, 3, 5, 1000);
    let mut a = ChunkAssembler::new(LIMIT);
    type Edit = fn(&mut SnapshotChunk);
    let edits: [(Edit, &str); 4] = [
        (|c| c.total_len = 4000, "total length changed"),
        (|c| c.checksum ^= 1, "checksum changed"),
        (|c| c.meta.configuration.clear(), "snapshot meta changed"),
        (|c| c.from = ServerId("other".into()), "sender changed"),
    ];
    for (edit, why) in edits {
        assert_eq!(a.on_chunk(1, chunks[0].clone()), Ok(ChunkOutcome::Accepted));
        let mut odd = chunks[1].clone();
        edit(&mut odd);
        assert_eq!(a.on_chunk(1, odd), Err(ChunkError::Mismatch(why)));
        assert_eq!(a.in_progress(), None, "{why}");
    }
}

#[test]
fn a_newer_transfer_replaces_an_older_one_and_never_the_reverse() {
    let old = image(3000);
    let new = image(2000);
    let old_chunks = chunks_of(&old, 3, 5, 1000);
    let mut a = ChunkAssembler::new(LIMIT);
    assert_eq!(
        a.on_chunk(1, old_chunks[0].clone()),
        Ok(ChunkOutcome::Accepted)
    );

    // A newer snapshot from the same leader and term (on a new connection) replaces it.
    let newer_index = chunks_of(&new, 3, 9, 1000);
    assert_eq!(
        a.on_chunk(2, newer_index[0].clone()),
        Ok(ChunkOutcome::Accepted)
    );
    let key = a.in_progress().unwrap().0;
    assert_eq!((key.term, key.index), (Term(3), LogIndex(9)));
    // The replaced transfer's connection goes on: its chunks are refused, its restart
    // is older, and neither disturbs the newer one.
    assert_eq!(
        a.on_chunk(1, old_chunks[1].clone()),
        Err(ChunkError::NotInProgress { offset: 1000 })
    );
    assert_eq!(a.on_chunk(1, old_chunks[0].clone()), Err(ChunkError::Stale));
    assert_eq!(a.in_progress().unwrap().1, 1000);

    // A new leader's transfer (higher term, even of an older index) replaces that.
    let next_term = chunks_of(&old, 4, 5, 1000);
    assert_eq!(
        a.on_chunk(3, next_term[0].clone()),
        Ok(ChunkOutcome::Accepted)
    );
    assert_eq!(
        a.on_chunk(2, newer_index[0].clone()),
        Err(ChunkError::Stale)
    );
    assert_eq!(
        a.on_chunk(2, newer_index[1].clone()),
        Err(ChunkError::NotInProgress { offset: 1000 })
    );
    assert_eq!(
        feed(&mut a, 3, &next_term[1..]),
        Ok(ChunkOutcome::Complete(install(old, 4, 5)))
    );
}

#[test]
fn a_later_chunk_counts_only_on_the_stream_that_started_the_transfer() {
    let data = image(3000);
    let chunks = chunks_of(&data, 3, 5, 1000);
    let mut a = ChunkAssembler::new(LIMIT);
    assert_eq!(a.on_chunk(1, chunks[0].clone()), Ok(ChunkOutcome::Accepted));
    assert_eq!(
        a.on_chunk(2, chunks[1].clone()),
        Err(ChunkError::NotInProgress { offset: 1000 })
    );
    assert_eq!(a.in_progress().unwrap().1, 1000, "untouched");
    // Another stream closing changes nothing; the owner closing drops the transfer.
    assert!(!a.on_stream_closed(2));
    assert!(a.in_progress().is_some());
    assert!(a.on_stream_closed(1));
    assert_eq!(a.in_progress(), None);
    assert_eq!(
        a.on_chunk(1, chunks[1].clone()),
        Err(ChunkError::NotInProgress { offset: 1000 })
    );
}
