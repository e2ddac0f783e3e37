//! One request in, one response out. The synchronous part (parse, answer from the read
//! view, encode) runs inline on the serving task; anything that needs the recursors comes
//! back as a [`Pending`] the caller awaits (TCP) or spawns (UDP).

use super::recursor::Recursor;
use super::wire::{self, SizeRules, Transport};
use super::DnsConfig;
use actors::ReadView;
use futures::future::join_all;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use protocol::dns::{
    build_answer, build_ptr_answer, parse_query_name, parse_reverse_name, DnsAnswer, QueryType,
    Rcode, Zone,
};
use rand::rngs::StdRng;
use std::time::{SystemTime, UNIX_EPOCH};

/// Host names resolved through the recursors for one answer at most (Consul: 5 extra
/// records without EDNS).
const MAX_HOSTS_RESOLVED: usize = 5;

/// What to do with one incoming message.
pub enum Handled {
    /// `out` holds the encoded response.
    Reply,
    /// Nothing is sent (not a query, or not even a DNS header).
    Drop,
    /// The response needs the recursors first.
    Pending(Box<Pending>),
}

pub struct Pending {
    request: Message,
    /// `None`: forward the question as is. `Some`: our answer, plus host names to resolve.
    local: Option<(DnsAnswer, QueryType)>,
}

pub struct DnsCore {
    view: ReadView,
    config: DnsConfig,
    recursor: Option<Recursor>,
}

impl DnsCore {
    pub fn new(view: ReadView, config: DnsConfig, recursor: Option<Recursor>) -> DnsCore {
        DnsCore {
            view,
            config,
            recursor,
        }
    }

    fn rules(&self) -> SizeRules {
        SizeRules {
            udp_answer_limit: self.config.udp_answer_limit,
            truncate_sets_tc: self.config.truncate_sets_tc,
        }
    }

    fn recursion_available(&self) -> bool {
        self.recursor.is_some()
    }

    /// Handle one message; on `Reply` the response is in `out`.
    pub fn handle(
        &self,
        bytes: &[u8],
        transport: Transport,
        rng: &mut StdRng,
        out: &mut Vec<u8>,
    ) -> Handled {
        let request = match Message::from_vec(bytes) {
            Ok(request) => request,
            Err(_) => {
                return if wire::formerr_from_raw(bytes, out) {
                    Handled::Reply
                } else {
                    Handled::Drop
                };
            }
        };
        if request.metadata.message_type != hickory_proto::op::MessageType::Query {
            return Handled::Drop;
        }
        if !wire::is_standard_query(&request) {
            return self.error(&request, ResponseCode::NotImp, transport, out);
        }
        let [query] = request.queries.as_slice() else {
            return self.error(&request, ResponseCode::FormErr, transport, out);
        };
        let record_type = query.query_type();
        if matches!(record_type, RecordType::AXFR | RecordType::IXFR) {
            return self.error(&request, ResponseCode::NotImp, transport, out);
        }
        let qname = query.name().clone();
        let qname_text = qname.to_ascii();
        let qtype = QueryType::from_u16(wire::qtype_code(record_type));
        let zone = Zone {
            domain: &self.config.domain,
            datacenter: &self.config.datacenter,
            soa_serial: unix_now(),
            only_passing: self.config.only_passing,
        };
        let reverse = match qtype {
            QueryType::Ptr | QueryType::Any => parse_reverse_name(&qname_text),
            _ => None,
        };
        let answer = if let Some(parsed) = parse_query_name(&qname_text, &self.config.domain) {
            let store = self.view.read();
            build_answer(&store, &zone, &qname_text, qtype, &parsed, rng)
        } else if let Some(ip) = reverse {
            let found = build_ptr_answer(&self.view.read(), &zone, &qname_text, ip);
            match found {
                Some(answer) => answer,
                // Not ours: the recursors may know it; without them, NXDOMAIN (as Consul).
                None if self.recursor.is_some() => return forward(request),
                None => {
                    let mut answer = DnsAnswer::new(Rcode::NxDomain);
                    answer.authorities.push(zone.soa_record());
                    answer
                }
            }
        } else if self.recursor.is_some() {
            return forward(request);
        } else {
            return self.error(&request, ResponseCode::Refused, transport, out);
        };
        if !answer.hosts_to_resolve.is_empty() && self.recursor.is_some() {
            return Handled::Pending(Box::new(Pending {
                request,
                local: Some((answer, qtype)),
            }));
        }
        let mut response = wire::response_for(
            &request,
            ResponseCode::NoError,
            true,
            self.recursion_available(),
        );
        wire::fill(&mut response, &answer, &qname, &qname_text);
        self.limit_answers(&request, &mut response, transport);
        self.encode(&request, response, transport, out)
    }

    /// Consul's `udp_answer_limit`, over UDP without EDNS, on our own answers only.
    fn limit_answers(&self, request: &Message, response: &mut Message, transport: Transport) {
        if transport == Transport::Udp && request.edns.is_none() {
            wire::limit_answers(response, self.rules());
        }
    }

    /// Finish a request that needed the recursors.
    pub async fn finish(
        &self,
        pending: Box<Pending>,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Handled {
        let Some(recursor) = &self.recursor else {
            return Handled::Drop;
        };
        let Pending { request, local } = *pending;
        let Some(query) = request.queries.first() else {
            return Handled::Drop;
        };
        let qname = query.name().clone();
        let response = match local {
            None => {
                let upstream = recursor.ask(qname, query.query_type()).await;
                let mut response = wire::response_for(&request, upstream.rcode, false, true);
                response.answers = upstream.answers;
                response.authorities = upstream.authorities;
                response
            }
            Some((answer, qtype)) => {
                let (lookup_type, into_answers) = match qtype {
                    QueryType::Aaaa => (RecordType::AAAA, true),
                    QueryType::Srv => (RecordType::A, false),
                    _ => (RecordType::A, true),
                };
                let mut response = wire::response_for(&request, ResponseCode::NoError, true, true);
                let qname_text = qname.to_ascii();
                wire::fill(&mut response, &answer, &qname, &qname_text);
                self.limit_answers(&request, &mut response, transport);
                // Resolve only the targets that survived the answer limit.
                let targets = wire::answer_targets(&response);
                let hosts = answer
                    .hosts_to_resolve
                    .iter()
                    .filter(|host| {
                        targets
                            .iter()
                            .any(|t| t.to_ascii().eq_ignore_ascii_case(host))
                    })
                    .take(MAX_HOSTS_RESOLVED);
                let resolved =
                    join_all(hosts.map(|host| recursor.addresses(host, lookup_type))).await;
                let records = resolved.into_iter().flatten();
                if into_answers {
                    response.answers.extend(records);
                } else {
                    response.additionals.extend(records);
                }
                response
            }
        };
        self.encode(&request, response, transport, out)
    }

    fn error(
        &self,
        request: &Message,
        rcode: ResponseCode,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Handled {
        let response = wire::response_for(request, rcode, false, self.recursion_available());
        self.encode(request, response, transport, out)
    }

    fn encode(
        &self,
        request: &Message,
        mut response: Message,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Handled {
        let budget = wire::budget(request, transport);
        match wire::encode_fitted(&mut response, budget, self.rules(), out) {
            Ok(()) => Handled::Reply,
            Err(err) => {
                tracing::debug!(error = %err, "dns response encoding failed");
                let fallback = wire::response_for(
                    request,
                    ResponseCode::ServFail,
                    false,
                    self.recursion_available(),
                );
                match wire::encode_fitted(&mut { fallback }, budget, self.rules(), out) {
                    Ok(()) => Handled::Reply,
                    Err(_) => Handled::Drop,
                }
            }
        }
    }
}

fn forward(request: Message) -> Handled {
    Handled::Pending(Box::new(Pending {
        request,
        local: None,
    }))
}

/// SOA serial: the current unix time, as Consul does.
fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}
