//! Raft core placeholder.
