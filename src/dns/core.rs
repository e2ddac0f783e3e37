//! One request in, one response out. The synchronous part (parse, ask the endpoint for
//! the rows, answer, encode) runs inline on the serving task: a server's endpoint answers
//! stale reads at once (`Api::ask_now`). Anything that must wait (the recursors, or an
//! endpoint that has to ask another agent) comes back as a [`Pending`] the caller awaits
//! (TCP) or spawns (UDP).

use super::recursor::Recursor;
use super::wire::{self, SizeRules, Transport};
use super::DnsConfig;
use actors::Api;
use futures::future::join_all;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;
use protocol::api::{Answer, InstanceStatus, QueryOptions, Read, ReadData, ReadRequest, Request};
use protocol::dns::{
    answer_from, lookup_for, parse_query_name, parse_reverse_name, ptr_answer_from, DnsAnswer,
    DnsInstance, Found, Lookup, QueryType, Rcode, Zone,
};
use rand::rngs::StdRng;
use rand::SeedableRng;
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
    /// The endpoint could not answer at once: ask it, then answer the request.
    ask: Option<Request>,
}

/// Why the rows for an answer are not at hand.
enum NotAtHand {
    /// The endpoint must be awaited.
    Later(Box<Request>),
    /// The endpoint failed (SERVFAIL).
    Failed,
}

pub struct DnsCore {
    api: Api,
    config: DnsConfig,
    recursor: Option<Recursor>,
}

impl DnsCore {
    pub fn new(api: impl Into<Api>, config: DnsConfig, recursor: Option<Recursor>) -> DnsCore {
        DnsCore {
            api: api.into(),
            config,
            recursor,
        }
    }

    /// The rows of a stale read: the answer already fetched, or the endpoint's answer
    /// now (a server answers from its view inline).
    fn rows(&self, read: Read, fetched: &mut Option<Answer>) -> Result<ReadData, NotAtHand> {
        let answer = match fetched.take() {
            Some(answer) => answer,
            None => {
                let request = Request::Read(ReadRequest {
                    options: QueryOptions::stale(),
                    read,
                });
                match self.api.ask_now(&request) {
                    Some(answer) => answer,
                    None => return Err(NotAtHand::Later(Box::new(request))),
                }
            }
        };
        match answer.and_then(|r| r.into_read()) {
            Ok(r) => Ok(r.data),
            Err(e) => {
                tracing::debug!(error = %e, "dns lookup failed");
                Err(NotAtHand::Failed)
            }
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
        self.respond(request, transport, rng, out, None)
    }

    /// Answer a parsed query; `fetched` is the endpoint's answer when it had to be awaited.
    fn respond(
        &self,
        request: Message,
        transport: Transport,
        rng: &mut StdRng,
        out: &mut Vec<u8>,
        mut fetched: Option<Answer>,
    ) -> Handled {
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
            let read = match lookup_for(&zone, qtype, &parsed) {
                Lookup::Nothing => None,
                Lookup::Node(name) => Some(Read::Node {
                    node: name.to_string(),
                }),
                Lookup::Service { name, tag } => Some(Read::InstancesHealth {
                    name: name.to_string(),
                    tags: tag.map(|t| vec![t.to_string()]).unwrap_or_default(),
                }),
            };
            let data = match read.map(|read| self.rows(read, &mut fetched)).transpose() {
                Ok(data) => data,
                Err(not_at_hand) => return self.not_at_hand(request, not_at_hand, transport, out),
            };
            answer_from(
                found(data.as_ref()),
                &zone,
                &qname_text,
                qtype,
                &parsed,
                rng,
            )
        } else if let Some(ip) = reverse {
            let owners = match self.rows(Read::AddressOwners { address: ip }, &mut fetched) {
                Ok(ReadData::AddressOwners(owners)) => owners,
                Ok(_) => Default::default(),
                Err(not_at_hand) => return self.not_at_hand(request, not_at_hand, transport, out),
            };
            match ptr_answer_from(&owners, &zone, &qname_text) {
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
                ask: None,
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

    fn not_at_hand(
        &self,
        request: Message,
        not_at_hand: NotAtHand,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Handled {
        match not_at_hand {
            NotAtHand::Later(ask) => Handled::Pending(Box::new(Pending {
                request,
                local: None,
                ask: Some(*ask),
            })),
            NotAtHand::Failed => self.error(&request, ResponseCode::ServFail, transport, out),
        }
    }

    /// Finish a request that needed the endpoint's awaited answer or the recursors.
    pub async fn finish(
        &self,
        pending: Box<Pending>,
        transport: Transport,
        out: &mut Vec<u8>,
    ) -> Handled {
        let Pending {
            request,
            local,
            ask,
        } = *pending;
        if let Some(ask) = ask {
            let fetched = self.api.ask(ask).await;
            // Off the hot path (only endpoints that forward get here): a fresh generator.
            let mut rng = StdRng::from_rng(&mut rand::rng());
            return match self.respond(request, transport, &mut rng, out, Some(fetched)) {
                Handled::Pending(next) => Box::pin(self.finish(next, transport, out)).await,
                handled => handled,
            };
        }
        let Some(recursor) = &self.recursor else {
            return Handled::Drop;
        };
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
        ask: None,
    }))
}

/// The endpoint's rows as the answer builder borrows them.
fn found(data: Option<&ReadData>) -> Found<'_> {
    match data {
        Some(ReadData::Node(node)) => Found::Node(node.as_ref()),
        Some(ReadData::InstancesHealth(rows)) => {
            Found::Instances(rows.iter().map(instance_health).collect())
        }
        _ => Found::Nothing,
    }
}

fn instance_health(row: &InstanceStatus) -> DnsInstance<'_> {
    DnsInstance {
        node: &row.node,
        node_address: &row.node_address,
        node_meta: &row.node_meta,
        service_address: &row.service_address,
        port: row.port,
        weights: row.weights,
        status: row.status,
    }
}

/// SOA serial: the current unix time, as Consul does.
fn unix_now() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{query, sample_store};
    use super::*;
    use actors::{Endpoint, ViewEndpoint};
    use futures::future::BoxFuture;

    /// An endpoint that can only be awaited (as a client agent's will be): DNS must take
    /// the pending path and answer exactly as the inline path does.
    struct AwaitOnly(ViewEndpoint);

    impl Endpoint for AwaitOnly {
        fn ask(&self, request: Request) -> BoxFuture<'_, Answer> {
            self.0.ask(request)
        }
    }

    /// An endpoint that fails every request.
    struct Broken;

    impl Endpoint for Broken {
        fn ask(&self, _: Request) -> BoxFuture<'_, Answer> {
            Box::pin(async { Err(protocol::api::RequestError::ShuttingDown) })
        }

        fn ask_now(&self, _: &Request) -> Option<Answer> {
            Some(Err(protocol::api::RequestError::ShuttingDown))
        }
    }

    fn config() -> DnsConfig {
        DnsConfig::new("consul", "dc1", vec![])
    }

    #[tokio::test]
    async fn an_awaited_endpoint_gives_the_same_answers_as_an_inline_one() {
        let view = actors::ReadView::new(sample_store());
        let inline = DnsCore::new(view.clone(), config(), None);
        let awaited = DnsCore::new(Api::new(AwaitOnly(ViewEndpoint::new(view))), config(), None);
        let questions = [
            ("web.service.consul.", RecordType::A),
            ("_web._tcp.service.consul.", RecordType::SRV),
            ("n1.node.consul.", RecordType::ANY),
            ("nope.service.consul.", RecordType::A),
            ("1.0.0.10.in-addr.arpa.", RecordType::PTR),
            ("consul.", RecordType::NS),
        ];
        for (name, record_type) in questions {
            let bytes = query(name, record_type).to_vec().unwrap();
            // The same seed on both sides: shuffles must not differ.
            let mut rng = StdRng::seed_from_u64(1);
            let mut inline_out = Vec::new();
            assert!(matches!(
                inline.handle(&bytes, Transport::Tcp, &mut rng, &mut inline_out),
                Handled::Reply
            ));
            let mut rng = StdRng::seed_from_u64(1);
            let mut awaited_out = Vec::new();
            let Handled::Pending(pending) =
                awaited.handle(&bytes, Transport::Tcp, &mut rng, &mut awaited_out)
            else {
                panic!("{name}: an await-only endpoint must leave the query pending");
            };
            assert!(matches!(
                awaited
                    .finish(pending, Transport::Tcp, &mut awaited_out)
                    .await,
                Handled::Reply
            ));
            let a = Message::from_vec(&inline_out).unwrap();
            let b = Message::from_vec(&awaited_out).unwrap();
            assert_eq!(a.metadata.response_code, b.metadata.response_code, "{name}");
            // Answers may be shuffled with another stream on the awaited path: compare as sets.
            let set = |m: &Message| {
                let mut v: Vec<String> = m.answers.iter().map(|r| r.to_string()).collect();
                v.sort();
                v
            };
            assert_eq!(set(&a), set(&b), "{name}");
        }
    }

    #[test]
    fn a_failing_endpoint_is_servfail() {
        let core = DnsCore::new(Api::new(Broken), config(), None);
        let bytes = query("web.service.consul.", RecordType::A)
            .to_vec()
            .unwrap();
        let mut out = Vec::new();
        let mut rng = StdRng::seed_from_u64(1);
        assert!(matches!(
            core.handle(&bytes, Transport::Udp, &mut rng, &mut out),
            Handled::Reply
        ));
        let reply = Message::from_vec(&out).unwrap();
        assert_eq!(reply.metadata.response_code, ResponseCode::ServFail);
    }
}
