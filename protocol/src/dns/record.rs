//! Protocol-level DNS records: just what cairn answers with, independent of any wire
//! library. Names are absolute (trailing dot).

use std::net::{Ipv4Addr, Ipv6Addr};

/// The query types the answer builder distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryType {
    A,
    Aaaa,
    Cname,
    Srv,
    Txt,
    Soa,
    Ns,
    Ptr,
    Any,
    /// Anything else (MX, PTR ...): the name may exist, but never has such records.
    Other(u16),
}

impl QueryType {
    pub fn from_u16(code: u16) -> QueryType {
        match code {
            1 => QueryType::A,
            28 => QueryType::Aaaa,
            5 => QueryType::Cname,
            33 => QueryType::Srv,
            16 => QueryType::Txt,
            6 => QueryType::Soa,
            2 => QueryType::Ns,
            12 => QueryType::Ptr,
            255 => QueryType::Any,
            other => QueryType::Other(other),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rcode {
    NoError,
    FormErr,
    ServFail,
    NxDomain,
    NotImp,
    Refused,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    pub mname: String,
    pub rname: String,
    pub serial: u32,
    pub refresh: i32,
    pub retry: i32,
    pub expire: i32,
    pub minimum: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordData {
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(String),
    Srv {
        priority: u16,
        weight: u16,
        port: u16,
        target: String,
    },
    Soa(Soa),
    Ns(String),
    Ptr(String),
    /// One character-string (RFC 1464 `key=value`).
    Txt(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsRecord {
    pub name: String,
    pub ttl: u32,
    pub data: RecordData,
}

impl DnsRecord {
    pub fn new(name: impl Into<String>, ttl: u32, data: RecordData) -> DnsRecord {
        DnsRecord {
            name: name.into(),
            ttl,
            data,
        }
    }
}

/// A complete authoritative answer, before any wire-size trimming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsAnswer {
    pub rcode: Rcode,
    pub answers: Vec<DnsRecord>,
    pub authorities: Vec<DnsRecord>,
    pub additionals: Vec<DnsRecord>,
    /// Host names (absolute) that appeared as CNAME / SRV targets; the edge resolves them
    /// through the recursors, when it has any, and appends their address records.
    pub hosts_to_resolve: Vec<String>,
}

impl DnsAnswer {
    pub fn new(rcode: Rcode) -> DnsAnswer {
        DnsAnswer {
            rcode,
            answers: Vec::new(),
            authorities: Vec::new(),
            additionals: Vec::new(),
            hosts_to_resolve: Vec::new(),
        }
    }
}
