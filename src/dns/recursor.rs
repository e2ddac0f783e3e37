//! Forwarding names outside the domain to the configured recursors (hickory-resolver,
//! name servers taken only from the recursor list: no system configuration, no hosts file).

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::lookup::Lookup;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{Name, Record, RecordType};
use hickory_resolver::TokioResolver;
use std::net::SocketAddr;
use std::time::Duration;

/// What an upstream said about one question.
#[derive(Debug, Clone)]
pub struct Upstream {
    pub rcode: ResponseCode,
    pub answers: Vec<Record>,
    pub authorities: Vec<Record>,
}

/// One resolver per recursor, asked in the configured order (Consul's `sequential`
/// strategy): an answer that is neither NOERROR nor NXDOMAIN, or no answer in time, moves
/// on to the next; when all fail the client gets SERVFAIL. (A single hickory resolver over
/// all of them would stop at the first SERVFAIL.)
pub struct Recursor {
    resolvers: Vec<TokioResolver>,
    /// The whole time one recursor may take (the resolver's own per-try timeout can add
    /// up over its UDP and TCP connections).
    timeout: Duration,
}

impl Recursor {
    /// Resolvers for `recursors` (UDP, then TCP on truncation), each try bounded by
    /// `timeout`. Must be called inside a tokio runtime.
    pub fn new(recursors: &[SocketAddr], timeout: Duration) -> Result<Recursor, String> {
        let resolvers = recursors
            .iter()
            .map(|addr| resolver(*addr, timeout))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Recursor { resolvers, timeout })
    }

    /// Ask the recursors in order; a definite answer (records, NXDOMAIN or NODATA) ends it.
    pub async fn ask(&self, name: Name, record_type: RecordType) -> Upstream {
        for resolver in &self.resolvers {
            match self.lookup(resolver, name.clone(), record_type).await {
                Ok(lookup) => {
                    return Upstream {
                        rcode: ResponseCode::NoError,
                        answers: lookup.answers().to_vec(),
                        authorities: lookup.authorities().to_vec(),
                    }
                }
                Err(NetError::Dns(DnsError::NoRecordsFound(no_records))) => {
                    return Upstream {
                        rcode: no_records.response_code,
                        answers: Vec::new(),
                        authorities: no_records
                            .soa
                            .map(|soa| vec![soa.into_record_of_rdata()])
                            .unwrap_or_default(),
                    }
                }
                Err(err) => {
                    tracing::debug!(error = %err, "recursor lookup failed; trying the next");
                }
            }
        }
        Upstream {
            rcode: ResponseCode::ServFail,
            answers: Vec::new(),
            authorities: Vec::new(),
        }
    }

    async fn lookup(
        &self,
        resolver: &TokioResolver,
        name: Name,
        record_type: RecordType,
    ) -> Result<Lookup, NetError> {
        tokio::time::timeout(self.timeout, resolver.lookup(name, record_type))
            .await
            .unwrap_or(Err(NetError::Timeout))
    }

    /// Address records of a host name (for CNAME / SRV targets); empty on any failure.
    pub async fn addresses(&self, host: &str, record_type: RecordType) -> Vec<Record> {
        let Ok(name) = Name::from_ascii(host) else {
            return Vec::new();
        };
        for resolver in &self.resolvers {
            match self.lookup(resolver, name.clone(), record_type).await {
                Ok(lookup) => return lookup.answers().to_vec(),
                Err(NetError::Dns(DnsError::NoRecordsFound(_))) => return Vec::new(),
                Err(_) => continue,
            }
        }
        Vec::new()
    }
}

/// A resolver whose only name server is `addr`: no system configuration, no hosts file.
fn resolver(addr: SocketAddr, timeout: Duration) -> Result<TokioResolver, String> {
    let mut udp = ConnectionConfig::udp();
    udp.port = addr.port();
    let mut tcp = ConnectionConfig::tcp();
    tcp.port = addr.port();
    let name_server = NameServerConfig::new(addr.ip(), true, vec![udp, tcp]);
    let config = ResolverConfig::from_name_servers(vec![name_server]);
    let mut options = ResolverOpts::default();
    options.timeout = timeout;
    options.attempts = 1;
    options.use_hosts_file = ResolveHosts::Never;
    options.num_concurrent_reqs = 1;
    options.preserve_intermediates = true;
    options.recursion_desired = true;
    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(options)
        .build()
        .map_err(|e| e.to_string())
}
