//! Frame round trips, the version check, and a seeded fuzz of both decoders.

// KV values are built with `.into()` (see api/tests.rs: the value type may change).
#![allow(clippy::useless_conversion)]

use super::*;
use crate::api::{
    InfoData, InfoRequest, QueryOptions, Read, ReadRequest, RequestError, Response, WriteOutcome,
    WriteRequest,
};
use crate::codec::CodecError;
use crate::rng;
use crate::store::KvOp;
use rand::{Rng, RngCore};

fn calls() -> Vec<CallFrame> {
    vec![
        CallFrame {
            id: 0,
            call: Call::Request(Request::Read(ReadRequest {
                options: QueryOptions {
                    min_index: 42,
                    wait: Some(std::time::Duration::from_secs(5)),
                    ..QueryOptions::default()
                },
                read: Read::KvGet { key: "a/b".into() },
            })),
        },
        CallFrame {
            id: u64::MAX,
            call: Call::Request(Request::Write(WriteRequest::Kv(KvOp::Set {
                key: "k".into(),
                value: b"v".to_vec().into(),
                flags: 3,
            }))),
        },
        CallFrame {
            id: 7,
            call: Call::Request(Request::Info(InfoRequest::Leader)),
        },
        CallFrame {
            id: 8,
            call: Call::Cancel,
        },
    ]
}

fn replies() -> Vec<ReplyFrame> {
    vec![
        ReplyFrame {
            id: 1,
            answer: Ok(Response::Write(WriteOutcome::Bool(true))),
        },
        ReplyFrame {
            id: 2,
            answer: Ok(Response::Info(InfoData::Leader(Some(
                "10.0.0.1:8300".into(),
            )))),
        },
        ReplyFrame {
            id: u64::MAX,
            answer: Err(RequestError::NoServers),
        },
    ]
}

#[test]
fn calls_and_replies_round_trip() {
    for call in calls() {
        let bytes = encode_call(&call).unwrap();
        assert!(bytes.len() <= MAX_CALL_FRAME_BYTES);
        assert_eq!(decode_call(&bytes).unwrap(), call);
    }
    for reply in replies() {
        let bytes = encode_reply(&reply).unwrap();
        assert_eq!(decode_reply(&bytes).unwrap(), reply);
    }
}

#[test]
fn a_borrowed_request_encodes_like_an_owned_call() {
    for call in calls() {
        if let Call::Request(request) = &call.call {
            assert_eq!(
                encode_request_call(call.id, request).unwrap(),
                encode_call(&call).unwrap()
            );
        }
    }
}

#[test]
fn stream_kind_bytes_round_trip_and_unknown_bytes_are_refused() {
    for kind in [StreamKind::Api, StreamKind::Raft] {
        assert_eq!(StreamKind::from_byte(kind.byte()), Some(kind));
    }
    // Consul's own RPC type bytes are not ours.
    for consul_byte in 0..=8u8 {
        assert_eq!(StreamKind::from_byte(consul_byte), None);
    }
}

#[test]
fn another_version_is_an_error_naming_both_versions() {
    let mut bytes = encode_call(&calls()[0]).unwrap();
    bytes[..2].copy_from_slice(&9u16.to_le_bytes());
    let CodecError::Decode(text) = decode_call(&bytes).unwrap_err() else {
        panic!("not a decode error")
    };
    assert!(text.contains("version 9"), "{text}");
    assert!(text.contains(&format!("speaks {}", super::super::WIRE_VERSION)));
}

#[test]
fn an_oversized_call_is_refused_before_decoding() {
    let bytes = vec![0u8; MAX_CALL_FRAME_BYTES + 1];
    assert!(matches!(
        decode_call(&bytes),
        Err(CodecError::TooLarge { .. })
    ));
}

/// Random bytes, and valid frames with random bytes changed, decode to a value or an
/// error: never a panic, never a huge allocation.
#[test]
fn fuzzed_frames_never_panic() {
    let seed = 0x5eed_f4a3e;
    let mut rng = rng::seeded(seed);
    let valid: Vec<Vec<u8>> = calls()
        .iter()
        .map(|c| encode_call(c).unwrap())
        .chain(replies().iter().map(|r| encode_reply(r).unwrap()))
        .collect();
    for round in 0..20_000 {
        let bytes = if round % 2 == 0 {
            let mut bytes = vec![0u8; rng.random_range(0..96)];
            rng.fill_bytes(&mut bytes);
            // Half of those claim our version, to reach the body decoder.
            if bytes.len() >= 2 && rng.random_bool(0.5) {
                bytes[..2].copy_from_slice(&super::super::WIRE_VERSION.to_le_bytes());
            }
            bytes
        } else {
            let mut bytes = valid[rng.random_range(0..valid.len())].clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(2..bytes.len());
                bytes[at] = rng.random();
            }
            if rng.random_bool(0.2) {
                bytes.truncate(rng.random_range(0..bytes.len()));
            }
            bytes
        };
        let _ = decode_call(&bytes);
        let _ = decode_reply(&bytes);
    }
    println!("fuzz seed {seed:#x}: no panic");
}
