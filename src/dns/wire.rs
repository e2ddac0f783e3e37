//! The wire layer: DNS messages in (hickory-proto), protocol-level answers out, and the
//! size rules of the transport (512 bytes without EDNS, the client's EDNS size capped by
//! ours, 64 KiB over TCP).

use hickory_proto::op::{Edns, Message, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, PTR, SOA, SRV, TXT};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use protocol::dns::{DnsAnswer, DnsRecord, Rcode, RecordData};

/// Classic DNS over UDP: the most a client without EDNS can take.
pub const UDP_PLAIN_LIMIT: usize = 512;
/// The EDNS payload size we advertise and the most we send over UDP.
pub const OUR_EDNS_PAYLOAD: u16 = 4096;
/// Largest DNS message over TCP (2-byte length prefix).
pub const TCP_MESSAGE_LIMIT: usize = 65535;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// How to fit a response into one message.
#[derive(Debug, Clone, Copy)]
pub struct SizeRules {
    /// Answers kept at most over UDP without EDNS (Consul's `udp_answer_limit`).
    pub udp_answer_limit: usize,
    /// Set TC when records had to be dropped to fit the byte budget.
    pub truncate_sets_tc: bool,
}

/// The byte budget of a response to `request` over `transport`.
pub fn budget(request: &Message, transport: Transport) -> usize {
    match (transport, &request.edns) {
        (Transport::Tcp, _) => TCP_MESSAGE_LIMIT,
        (Transport::Udp, None) => UDP_PLAIN_LIMIT,
        (Transport::Udp, Some(edns)) => {
            usize::from(edns.max_payload().clamp(512, OUR_EDNS_PAYLOAD))
        }
    }
}

/// A response skeleton for `request`: id, opcode, RD copied, the question echoed, and an
/// OPT record with our size when the request had one.
pub fn response_for(
    request: &Message,
    rcode: ResponseCode,
    authoritative: bool,
    recursion_available: bool,
) -> Message {
    let mut response = Message::new(
        request.metadata.id,
        MessageType::Response,
        request.metadata.op_code,
    );
    response.metadata = Metadata::response_from_request(&request.metadata);
    response.metadata.response_code = rcode;
    response.metadata.authoritative = authoritative;
    response.metadata.recursion_available = recursion_available;
    response.queries = request.queries.clone();
    if let Some(request_edns) = &request.edns {
        let mut edns = Edns::new();
        edns.set_max_payload(OUR_EDNS_PAYLOAD);
        // Client subnet is echoed with scope 0: our answers are the same for everyone.
        if let Some(EdnsOption::Subnet(subnet)) = request_edns.option(EdnsCode::Subnet) {
            let mut subnet = *subnet;
            subnet.set_scope_prefix(0);
            edns.options_mut().insert(EdnsOption::Subnet(subnet));
        }
        response.edns = Some(edns);
    }
    response
}

/// Write into `out` a FORMERR for a message whose query header is readable but whose body
/// does not parse, and return true; false when there is not even a query header (such
/// datagrams are dropped, never answered).
pub fn formerr_from_raw(datagram: &[u8], out: &mut Vec<u8>) -> bool {
    let Some(header) = datagram.get(..12) else {
        return false;
    };
    let is_response = header[2] & 0x80 != 0;
    if is_response {
        return false;
    }
    let opcode_and_rd = header[2] & 0x79; // opcode bits and RD
    out.clear();
    out.extend_from_slice(&header[..2]);
    out.push(0x80 | opcode_and_rd);
    out.push(ResponseCode::FormErr.low());
    out.extend_from_slice(&[0; 8]);
    true
}

pub fn rcode(rcode: Rcode) -> ResponseCode {
    match rcode {
        Rcode::NoError => ResponseCode::NoError,
        Rcode::FormErr => ResponseCode::FormErr,
        Rcode::ServFail => ResponseCode::ServFail,
        Rcode::NxDomain => ResponseCode::NXDomain,
        Rcode::NotImp => ResponseCode::NotImp,
        Rcode::Refused => ResponseCode::Refused,
    }
}

/// Put a protocol answer's sections into `response`. `qname` is the question's name, used
/// as is for records owned by it (cheaper than re-parsing, and echoes the asked case).
pub fn fill(response: &mut Message, answer: &DnsAnswer, qname: &Name, qname_text: &str) {
    response.metadata.response_code = rcode(answer.rcode);
    response.answers.extend(
        answer
            .answers
            .iter()
            .filter_map(|r| to_record(r, qname, qname_text)),
    );
    response.authorities.extend(
        answer
            .authorities
            .iter()
            .filter_map(|r| to_record(r, qname, qname_text)),
    );
    response.additionals.extend(
        answer
            .additionals
            .iter()
            .filter_map(|r| to_record(r, qname, qname_text)),
    );
}

fn name(text: &str, qname: &Name, qname_text: &str) -> Option<Name> {
    if text == qname_text {
        Some(qname.clone())
    } else {
        Name::from_ascii(text).ok()
    }
}

fn to_record(record: &DnsRecord, qname: &Name, qname_text: &str) -> Option<Record> {
    let owner = name(&record.name, qname, qname_text)?;
    let data = match &record.data {
        RecordData::A(ip) => RData::A(A(*ip)),
        RecordData::Aaaa(ip) => RData::AAAA(AAAA(*ip)),
        RecordData::Cname(target) => RData::CNAME(CNAME(Name::from_ascii(target).ok()?)),
        RecordData::Ns(target) => RData::NS(NS(Name::from_ascii(target).ok()?)),
        RecordData::Ptr(target) => RData::PTR(PTR(Name::from_ascii(target).ok()?)),
        RecordData::Srv {
            priority,
            weight,
            port,
            target,
        } => RData::SRV(SRV::new(
            *priority,
            *weight,
            *port,
            Name::from_ascii(target).ok()?,
        )),
        RecordData::Soa(soa) => RData::SOA(SOA::new(
            Name::from_ascii(&soa.mname).ok()?,
            Name::from_ascii(&soa.rname).ok()?,
            soa.serial,
            soa.refresh,
            soa.retry,
            soa.expire,
            soa.minimum,
        )),
        RecordData::Txt(text) => RData::TXT(TXT::new(character_strings(text))),
    };
    Some(Record::from_rdata(owner, record.ttl, data))
}

/// A TXT character-string holds at most 255 bytes; longer text is split on char bounds.
fn character_strings(text: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text;
    while rest.len() > 255 {
        let mut cut = 255;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        parts.push(rest[..cut].to_string());
        rest = &rest[cut..];
    }
    parts.push(rest.to_string());
    parts
}

/// Over UDP without EDNS, keep at most `rules.udp_answer_limit` of our own answers (a
/// policy, like Consul's: the shuffled subset is the answer, so no TC), with the glue of
/// the SRV targets that remain.
pub fn limit_answers(response: &mut Message, rules: SizeRules) {
    if response.answers.len() > rules.udp_answer_limit {
        keep_answers(response, rules.udp_answer_limit);
    }
}

/// Serialize `response` into `out`, dropping answers (with the glue of dropped SRV
/// targets) until it fits `budget`. When such drops are needed, TC is set (when
/// `rules.truncate_sets_tc`) so clients that need everything retry over TCP.
pub fn encode_fitted(
    response: &mut Message,
    budget: usize,
    rules: SizeRules,
    out: &mut Vec<u8>,
) -> Result<(), hickory_proto::ProtoError> {
    loop {
        encode(response, out)?;
        if out.len() <= budget {
            return Ok(());
        }
        if rules.truncate_sets_tc {
            response.metadata.truncation = true;
        }
        let count = response.answers.len();
        if count > 0 {
            // Jump close to the size that fits, then step down one record at a time.
            let estimate = count * budget / out.len();
            keep_answers(response, estimate.min(count - 1));
        } else if !response.additionals.is_empty() || !response.authorities.is_empty() {
            response.additionals.clear();
            response.authorities.clear();
        } else if !response.queries.is_empty() {
            // Only an error reply echoing an oversized question section (a hostile
            // multi-question query) gets here: the header alone still says it all.
            response.queries.clear();
            response.metadata.truncation = true;
        } else {
            return Ok(()); // a bare header (plus OPT) always fits
        }
    }
}

/// Targets of CNAME and SRV answers still in `response` (the host names worth resolving).
pub fn answer_targets(response: &Message) -> Vec<Name> {
    response
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::CNAME(cname) => Some(cname.0.clone()),
            RData::SRV(srv) => Some(srv.target.clone()),
            _ => None,
        })
        .collect()
}

fn encode(response: &Message, out: &mut Vec<u8>) -> Result<(), hickory_proto::ProtoError> {
    out.clear();
    let mut encoder = BinEncoder::new(out);
    response.emit(&mut encoder)
}

/// Keep the first `n` answers; drop additional records that only served dropped ones.
fn keep_answers(response: &mut Message, n: usize) {
    let dropped = response.answers.split_off(n);
    let dropped_targets: Vec<&Name> = dropped.iter().filter_map(srv_target).collect();
    if dropped_targets.is_empty() {
        return;
    }
    let kept_targets: Vec<Name> = response
        .answers
        .iter()
        .filter_map(srv_target)
        .cloned()
        .collect();
    response
        .additionals
        .retain(|r| !dropped_targets.contains(&&r.name) || kept_targets.contains(&r.name));
}

fn srv_target(record: &Record) -> Option<&Name> {
    match &record.data {
        RData::SRV(srv) => Some(&srv.target),
        _ => None,
    }
}

/// The question's type as a number (for the pure layer's QueryType).
pub fn qtype_code(record_type: RecordType) -> u16 {
    u16::from(record_type)
}

/// Whether this request is something we answer at all (a standard query).
pub fn is_standard_query(request: &Message) -> bool {
    request.metadata.message_type == MessageType::Query && request.metadata.op_code == OpCode::Query
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::Query;

    fn srv_response(count: u8) -> Message {
        let mut request = Message::query();
        request.add_query(Query::query(
            Name::from_ascii("web.service.consul.").unwrap(),
            RecordType::SRV,
        ));
        let mut response = response_for(&request, ResponseCode::NoError, true, false);
        for i in 0..count {
            let target = Name::from_ascii(format!("n{i}.node.dc1.consul.")).unwrap();
            let srv = SRV::new(1, 1, 80, target.clone());
            response.answers.push(Record::from_rdata(
                request.queries[0].name().clone(),
                0,
                RData::SRV(srv),
            ));
            response
                .additionals
                .push(Record::from_rdata(target, 0, RData::A(A::new(10, 0, 0, i))));
        }
        response
    }

    fn rules() -> SizeRules {
        SizeRules {
            udp_answer_limit: 3,
            truncate_sets_tc: true,
        }
    }

    #[test]
    fn answer_limit_drops_the_glue_of_dropped_srv_targets_without_tc() {
        let mut response = srv_response(5);
        limit_answers(&mut response, rules());
        let targets: Vec<String> = answer_targets(&response)
            .iter()
            .map(|n| n.to_ascii())
            .collect();
        let glue: Vec<String> = response
            .additionals
            .iter()
            .map(|r| r.name.to_ascii())
            .collect();
        assert_eq!(targets, glue);
        assert_eq!(targets.len(), 3);
        assert!(!response.metadata.truncation);
    }

    #[test]
    fn byte_budget_trims_answers_and_sets_tc() {
        let mut response = srv_response(40);
        let mut out = Vec::new();
        encode_fitted(&mut response, 512, rules(), &mut out).unwrap();
        assert!(out.len() <= 512, "{}", out.len());
        assert!(response.metadata.truncation);
        assert!(!response.answers.is_empty() && response.answers.len() < 40);
        assert_eq!(response.answers.len(), response.additionals.len());
        let decoded = Message::from_vec(&out).unwrap();
        assert!(decoded.metadata.truncation);
        assert_eq!(decoded.answers.len(), response.answers.len());

        let mut fits = srv_response(2);
        encode_fitted(&mut fits, 512, rules(), &mut out).unwrap();
        assert!(!fits.metadata.truncation);
    }

    #[test]
    fn edns_is_echoed_with_our_size_and_client_subnet_scope_zero() {
        use hickory_proto::rr::rdata::opt::ClientSubnet;
        let mut request = Message::query();
        request.add_query(Query::query(
            Name::from_ascii("a.node.consul.").unwrap(),
            RecordType::A,
        ));
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        let subnet = ClientSubnet::new("192.0.2.0".parse().unwrap(), 24, 0);
        edns.options_mut().insert(EdnsOption::Subnet(subnet));
        request.edns = Some(edns);
        assert_eq!(budget(&request, Transport::Udp), 1232);
        assert_eq!(budget(&request, Transport::Tcp), TCP_MESSAGE_LIMIT);
        let response = response_for(&request, ResponseCode::NoError, true, false);
        let echoed = response.edns.expect("OPT echoed");
        assert_eq!(echoed.max_payload(), OUR_EDNS_PAYLOAD);
        let Some(EdnsOption::Subnet(subnet)) = echoed.option(EdnsCode::Subnet) else {
            panic!("no subnet echoed");
        };
        assert_eq!(
            (subnet.addr(), subnet.source_prefix(), subnet.scope_prefix()),
            ("192.0.2.0".parse().unwrap(), 24, 0)
        );
        request.edns = None;
        assert_eq!(budget(&request, Transport::Udp), UDP_PLAIN_LIMIT);
        assert!(response_for(&request, ResponseCode::NoError, true, false)
            .edns
            .is_none());
    }

    #[test]
    fn formerr_only_for_query_headers() {
        let mut out = Vec::new();
        assert!(formerr_from_raw(
            &[0xab, 0xcd, 0x01, 0, 0, 1, 0, 0, 0, 0, 0, 0, 9],
            &mut out
        ));
        assert_eq!(out, vec![0xab, 0xcd, 0x81, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert!(!formerr_from_raw(
            &[0xab, 0xcd, 0x81, 0, 0, 1, 0, 0, 0, 0, 0, 0],
            &mut out
        ));
        assert!(!formerr_from_raw(&[1, 2, 3], &mut out));
    }
}
