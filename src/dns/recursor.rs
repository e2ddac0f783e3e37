//! Forwarding names outside the domain to the configured recursors (hickory-resolver,
//! name servers taken only from the recursor list: no system configuration, no hosts file).

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
    ServerOrderingStrategy,
};
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

pub struct Recursor {
    resolver: TokioResolver,
}

impl Recursor {
    /// A resolver that asks `recursors` in order (UDP, then TCP on truncation), each try
    /// bounded by `timeout`. Must be called inside a tokio runtime.
    pub fn new(recursors: &[SocketAddr], timeout: Duration) -> Result<Recursor, String> {
        let name_servers = recursors
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        let config = ResolverConfig::from_name_servers(name_servers);
        let mut options = ResolverOpts::default();
        options.timeout = timeout;
        options.attempts = 1;
        options.use_hosts_file = ResolveHosts::Never;
        options.server_ordering_strategy = ServerOrderingStrategy::UserProvidedOrder;
        options.num_concurrent_reqs = 1;
        options.preserve_intermediates = true;
        options.recursion_desired = true;
        let resolver = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
            .with_options(options)
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Recursor { resolver })
    }

    /// Ask the recursors. Any failure other than a definite negative answer is SERVFAIL.
    pub async fn ask(&self, name: Name, record_type: RecordType) -> Upstream {
        match self.resolver.lookup(name, record_type).await {
            Ok(lookup) => Upstream {
                rcode: ResponseCode::NoError,
                answers: lookup.answers().to_vec(),
                authorities: lookup.authorities().to_vec(),
            },
            Err(NetError::Dns(DnsError::NoRecordsFound(no_records))) => Upstream {
                rcode: no_records.response_code,
                answers: Vec::new(),
                authorities: no_records
                    .soa
                    .map(|soa| vec![soa.into_record_of_rdata()])
                    .unwrap_or_default(),
            },
            Err(NetError::Dns(DnsError::ResponseCode(rcode))) => Upstream {
                rcode,
                answers: Vec::new(),
                authorities: Vec::new(),
            },
            Err(err) => {
                tracing::debug!(error = %err, "recursor lookup failed");
                Upstream {
                    rcode: ResponseCode::ServFail,
                    answers: Vec::new(),
                    authorities: Vec::new(),
                }
            }
        }
    }

    /// Address records of a host name (for CNAME / SRV targets); empty on any failure.
    pub async fn addresses(&self, host: &str, record_type: RecordType) -> Vec<Record> {
        let Ok(name) = Name::from_ascii(host) else {
            return Vec::new();
        };
        match self.resolver.lookup(name, record_type).await {
            Ok(lookup) => lookup.answers().to_vec(),
            Err(_) => Vec::new(),
        }
    }
}
