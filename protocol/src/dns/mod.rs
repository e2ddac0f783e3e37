//! DNS, the pure part: query names → typed queries, and typed queries + the store →
//! protocol-level answers. The wire format (hickory-proto) lives in the root crate's
//! `dns` edge; nothing here knows about sockets or packets.

mod answer;
mod name;
mod record;
mod reverse;

#[cfg(test)]
mod answer_tests;
#[cfg(test)]
mod random_tests;

pub use answer::{
    answer_from, build_answer, lookup_for, DnsInstance, Found, Lookup, Zone, ANSWER_TTL,
};
pub use name::{hex_ip, parse_hex_ip, parse_query_name, DnsQuery};
pub use record::{DnsAnswer, DnsRecord, QueryType, Rcode, RecordData, Soa};
pub use reverse::{build_ptr_answer, parse_reverse_name, ptr_answer_from};
