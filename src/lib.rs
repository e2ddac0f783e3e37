//! cairn: a Consul-compatible service discovery, health checking and KV agent.
#![forbid(unsafe_code)]

pub mod agent;
pub mod chaos;
pub mod cli;
pub mod client_limit;
pub mod config;
pub mod context;
pub mod dns;
pub mod duration;
pub mod http;
pub mod local;
pub mod localcluster;
pub mod member_tags;
pub mod snapshot_archive;
pub mod user_events;
pub mod version;
