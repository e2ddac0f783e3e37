//! `cairn chaos`: failure-injection runs with a verdict (issue 9). A seeded workload of
//! KV reads, writes and CAS runs through several nodes while a seeded schedule injects
//! faults; afterwards the history is checked for linearizability per key
//! (`protocol::linearizability`), acknowledged writes are looked for on every node, and
//! the figures and a picture are written. See `target.rs` for the system-under-test
//! interface.

pub mod etcd;
pub mod target;
