//! What every operation of a run did and when: one [`Record`] per request, with call
//! and return times in µs since the run started (one shared `Instant`, so every
//! worker's times are comparable), written as JSON lines (`history.jsonl`) and turned
//! into the checker's operations by [`to_checker_ops`].
//!
//! Mapping to `protocol::linearizability` (see its module documentation):
//! - written values are unique (`w<i>-<seq>`), so Consul's version CAS is the checker's
//!   value CAS: a CAS on the version a read returned with value `v` is
//!   `Cas { expect: Some(v) }`, a CAS on "absent" is `Cas { expect: None }`;
//! - a write error that is not `definitely_not_applied` is `OpResult::Unknown` (it may
//!   take effect at any time after its call, or never); a definitely-not-applied error
//!   did nothing and is left out;
//! - a failed read observed nothing and is left out;
//! - stale-mode reads may legitimately be stale, so they stay in the file but not in
//!   the check;
//! - ledger writes (`chaos/ledger/...`) are checked by presence at the end, not here.

use protocol::linearizability::{Op, OpKind, OpResult};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

use super::target::{OpError, ReadMode};

/// The key prefix of everything a run writes.
pub const PREFIX: &str = "chaos/";
/// The prefix of never-overwritten ledger keys.
pub const LEDGER_PREFIX: &str = "chaos/ledger/";

/// A read mode as the history file spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Default,
    Consistent,
    Stale,
}

impl From<ReadMode> for Mode {
    fn from(mode: ReadMode) -> Mode {
        match mode {
            ReadMode::Default => Mode::Default,
            ReadMode::Consistent => Mode::Consistent,
            ReadMode::Stale => Mode::Stale,
        }
    }
}

/// What was asked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    Get {
        mode: Mode,
    },
    Put {
        value: String,
    },
    /// `expect_version` is what was sent; `expect_value` is the value the read that
    /// returned that version saw (`None`: the key was absent, `expect_version` too).
    Cas {
        expect_version: Option<u64>,
        expect_value: Option<String>,
        value: String,
    },
    Delete,
}

/// What came back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// A read's answer (`value: None` = absent).
    Value {
        value: Option<String>,
        version: Option<u64>,
    },
    Swapped {
        swapped: bool,
    },
    /// A put or delete succeeded.
    Done,
    Error {
        kind: String,
        definitely_not_applied: bool,
        message: String,
    },
}

impl Outcome {
    pub fn error(e: &OpError) -> Outcome {
        Outcome::Error {
            kind: e.kind.clone(),
            definitely_not_applied: e.definitely_not_applied,
            message: e.message.clone(),
        }
    }

    pub fn is_ok(&self) -> bool {
        !matches!(self, Outcome::Error { .. })
    }
}

/// One operation of the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// µs since the run started.
    pub call_us: u64,
    pub ret_us: u64,
    /// `ret_us - call_us`, for readers of the file.
    pub latency_us: u64,
    pub worker: usize,
    /// Index of the node it went through.
    pub node: usize,
    pub key: String,
    #[serde(flatten)]
    pub request: Request,
    pub result: Outcome,
    /// A read made by the verdict after the workload stopped, not by a worker.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub verify: bool,
}

/// The coarse kind of an operation, for counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OpClass {
    Get,
    ConsistentGet,
    StaleGet,
    Put,
    Cas,
    Delete,
    LedgerPut,
}

impl OpClass {
    pub fn name(self) -> &'static str {
        match self {
            OpClass::Get => "get",
            OpClass::ConsistentGet => "consistent-get",
            OpClass::StaleGet => "stale-get",
            OpClass::Put => "put",
            OpClass::Cas => "cas",
            OpClass::Delete => "delete",
            OpClass::LedgerPut => "ledger-put",
        }
    }
}

impl Record {
    pub fn is_ledger(&self) -> bool {
        self.key.starts_with(LEDGER_PREFIX)
    }

    pub fn class(&self) -> OpClass {
        match &self.request {
            Request::Get {
                mode: Mode::Default,
            } => OpClass::Get,
            Request::Get {
                mode: Mode::Consistent,
            } => OpClass::ConsistentGet,
            Request::Get { mode: Mode::Stale } => OpClass::StaleGet,
            Request::Put { .. } if self.is_ledger() => OpClass::LedgerPut,
            Request::Put { .. } => OpClass::Put,
            Request::Cas { .. } => OpClass::Cas,
            Request::Delete => OpClass::Delete,
        }
    }

    pub fn is_write(&self) -> bool {
        !matches!(self.request, Request::Get { .. })
    }

    /// A write whose effect is unknown: an error that may have been applied.
    pub fn is_unknown_write(&self) -> bool {
        self.is_write()
            && matches!(
                self.result,
                Outcome::Error {
                    definitely_not_applied: false,
                    ..
                }
            )
    }

    /// A write the cluster confirmed it applied.
    pub fn is_acknowledged_write(&self) -> bool {
        matches!(
            self.result,
            Outcome::Done | Outcome::Swapped { swapped: true }
        )
    }

    /// The checker's view of this record, or `None` when it is left out of the check
    /// (see the module documentation).
    pub fn to_checker_op(&self) -> Option<Op<String, String>> {
        if self.is_ledger() {
            return None;
        }
        let kind = match &self.request {
            Request::Get { mode: Mode::Stale } => return None,
            Request::Get { .. } => OpKind::Get,
            Request::Put { value } => OpKind::Put {
                value: value.clone(),
            },
            Request::Cas {
                expect_value,
                value,
                ..
            } => OpKind::Cas {
                expect: expect_value.clone(),
                new: Some(value.clone()),
            },
            Request::Delete => OpKind::Delete,
        };
        let result = match (&self.result, &kind) {
            (Outcome::Value { value, .. }, OpKind::Get) => OpResult::Value(value.clone()),
            (Outcome::Swapped { swapped }, OpKind::Cas { .. }) => OpResult::Swapped(*swapped),
            (Outcome::Done, OpKind::Put { .. } | OpKind::Delete) => OpResult::Done,
            (Outcome::Error { .. }, OpKind::Get) => return None,
            (
                Outcome::Error {
                    definitely_not_applied: true,
                    ..
                },
                _,
            ) => return None,
            (Outcome::Error { .. }, _) => OpResult::Unknown,
            // A record whose outcome does not fit its request cannot come from the
            // workload; leaving it out beats feeding the checker a malformed history.
            _ => return None,
        };
        Some(Op {
            client: self.worker as u64,
            key: self.key.clone(),
            call: self.call_us,
            ret: Some(self.ret_us.max(self.call_us)),
            kind,
            result,
        })
    }
}

/// The checker's operations and, for each, the index of the record it came from.
pub fn to_checker_ops(records: &[Record]) -> (Vec<Op<String, String>>, Vec<usize>) {
    let mut ops = Vec::new();
    let mut origin = Vec::new();
    for (i, record) in records.iter().enumerate() {
        if let Some(op) = record.to_checker_op() {
            ops.push(op);
            origin.push(i);
        }
    }
    (ops, origin)
}

/// One line for a human: `#12 w3 via node2 chaos/k1 1.2..3.4 ms  cas "w1-3"(v17) -> "w3-9" => swapped`.
pub fn describe(index: usize, record: &Record, node_names: &[String]) -> String {
    let request = match &record.request {
        Request::Get { mode } => format!("get ({mode:?})").to_lowercase(),
        Request::Put { value } => format!("put {value:?}"),
        Request::Cas {
            expect_version,
            expect_value,
            value,
        } => match (expect_value, expect_version) {
            (Some(v), Some(version)) => format!("cas {v:?}(v{version}) -> {value:?}"),
            _ => format!("cas absent -> {value:?}"),
        },
        Request::Delete => "delete".to_string(),
    };
    let result = match &record.result {
        Outcome::Value { value: Some(v), .. } => format!("read {v:?}"),
        Outcome::Value { value: None, .. } => "read absent".to_string(),
        Outcome::Swapped { swapped } => format!("swapped {swapped}"),
        Outcome::Done => "ok".to_string(),
        Outcome::Error {
            kind,
            definitely_not_applied,
            ..
        } => {
            if *definitely_not_applied {
                format!("error {kind} (not applied)")
            } else {
                format!("error {kind} (outcome unknown)")
            }
        }
    };
    let node = node_names
        .get(record.node)
        .cloned()
        .unwrap_or_else(|| format!("node#{}", record.node));
    let who = if record.verify {
        "final".to_string()
    } else {
        format!("w{}", record.worker)
    };
    format!(
        "#{index:<6} {who:<5} via {node:<6} {:<14} {:>10.1}..{:>10.1} ms  {request} => {result}",
        record.key,
        record.call_us as f64 / 1000.0,
        record.ret_us as f64 / 1000.0,
    )
}

/// Write `records` as JSON lines to `path`.
pub fn write_jsonl(path: &Path, records: &[Record]) -> Result<(), String> {
    let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    for record in records {
        serde_json::to_writer(&mut out, record).map_err(|e| format!("{}: {e}", path.display()))?;
        out.write_all(b"\n")
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    out.flush().map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, request: Request, result: Outcome) -> Record {
        Record {
            call_us: 10,
            ret_us: 20,
            latency_us: 10,
            worker: 3,
            node: 1,
            key: key.to_string(),
            request,
            result,
            verify: false,
        }
    }

    fn err(definitely_not_applied: bool) -> Outcome {
        Outcome::Error {
            kind: "timeout".into(),
            definitely_not_applied,
            message: "x".into(),
        }
    }

    fn put(v: &str) -> Request {
        Request::Put { value: v.into() }
    }

    #[test]
    fn outcomes_map_to_the_checker_as_documented() {
        let k = "chaos/k0";
        let op = |r: Request, o: Outcome| record(k, r, o).to_checker_op();
        // Clean answers.
        let done = op(put("w3-1"), Outcome::Done).expect("kept");
        assert_eq!(
            done.kind,
            OpKind::Put {
                value: "w3-1".into()
            }
        );
        assert_eq!(done.result, OpResult::Done);
        assert_eq!((done.client, done.call, done.ret), (3, 10, Some(20)));
        // Ambiguous write errors are unknown outcomes; certain ones are left out.
        assert_eq!(
            op(put("a"), err(false)).expect("kept").result,
            OpResult::Unknown
        );
        assert_eq!(op(put("a"), err(true)), None);
        assert_eq!(
            op(Request::Delete, err(false)).expect("kept").result,
            OpResult::Unknown
        );
        assert_eq!(
            op(Request::Delete, Outcome::Done).expect("kept").kind,
            OpKind::Delete
        );
        // A CAS compares on the value the version came with.
        let cas = Request::Cas {
            expect_version: Some(17),
            expect_value: Some("w1-3".into()),
            value: "w3-9".into(),
        };
        let checked = op(cas.clone(), Outcome::Swapped { swapped: false }).expect("kept");
        assert_eq!(
            checked.kind,
            OpKind::Cas {
                expect: Some("w1-3".into()),
                new: Some("w3-9".into())
            }
        );
        assert_eq!(checked.result, OpResult::Swapped(false));
        assert_eq!(op(cas, err(false)).expect("kept").result, OpResult::Unknown);
        // Reads: failed ones observe nothing, stale ones may be stale.
        let read = |mode| Request::Get { mode };
        let value = Outcome::Value {
            value: Some("v".into()),
            version: Some(4),
        };
        assert_eq!(
            op(read(Mode::Default), value.clone()).expect("kept").result,
            OpResult::Value(Some("v".into()))
        );
        assert!(op(read(Mode::Consistent), value.clone()).is_some());
        assert_eq!(op(read(Mode::Stale), value), None);
        assert_eq!(op(read(Mode::Default), err(false)), None);
        assert_eq!(op(read(Mode::Default), err(true)), None);
        // Ledger writes are checked by presence, not by the checker.
        assert_eq!(
            record("chaos/ledger/w1/4", put("w1-4"), Outcome::Done).to_checker_op(),
            None
        );
    }

    #[test]
    fn unknown_and_acknowledged_writes() {
        assert!(record("k", put("a"), err(false)).is_unknown_write());
        assert!(!record("k", put("a"), err(true)).is_unknown_write());
        assert!(!record(
            "k",
            Request::Get {
                mode: Mode::Default
            },
            err(false)
        )
        .is_unknown_write());
        assert!(record("k", put("a"), Outcome::Done).is_acknowledged_write());
        assert!(!record(
            "k",
            Request::Cas {
                expect_version: None,
                expect_value: None,
                value: "b".into()
            },
            Outcome::Swapped { swapped: false }
        )
        .is_acknowledged_write());
    }

    #[test]
    fn records_round_trip_as_json_lines() {
        let r = record(
            "chaos/k1",
            Request::Cas {
                expect_version: Some(3),
                expect_value: Some("w0-1".into()),
                value: "w3-2".into(),
            },
            Outcome::Swapped { swapped: true },
        );
        let line = serde_json::to_string(&r).expect("json");
        assert_eq!(
            line,
            r#"{"call_us":10,"ret_us":20,"latency_us":10,"worker":3,"node":1,"key":"chaos/k1","op":"cas","expect_version":3,"expect_value":"w0-1","value":"w3-2","result":{"outcome":"swapped","swapped":true}}"#
        );
        let back: Record = serde_json::from_str(&line).expect("parses");
        assert_eq!(back, r);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("history.jsonl");
        write_jsonl(&path, &[r.clone(), r]).expect("written");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(text.lines().count(), 2);
    }
}
