//! Request bodies of the agent's own service and check endpoints (canonical lowercase
//! field names, see `http/body.rs`), turned into the drafts the rules in
//! `protocol::health::definition` validate.

use crate::http::catalog::body::{tagged_addresses, ServiceAddressBody, WeightsBody};
use crate::http::query::parse_go_duration;
use protocol::health::definition::{AgentCheckDraft, AgentServiceDraft, DurationMs};
use protocol::store::registration::ServiceDraft;
use protocol::store::Weights;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// `PUT /v1/agent/service/register` (Consul's `ServiceDefinition`).
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct ServiceRegisterBody {
    pub id: String,
    #[serde(alias = "service")]
    pub name: String,
    pub kind: String,
    pub tags: Vec<String>,
    pub address: String,
    #[serde(rename = "taggedaddresses")]
    pub tagged_addresses: BTreeMap<String, ServiceAddressBody>,
    pub meta: BTreeMap<String, String>,
    pub port: u16,
    pub weights: Option<WeightsBody>,
    #[serde(rename = "enabletagoverride")]
    pub enable_tag_override: bool,
    pub check: Option<CheckRegisterBody>,
    pub checks: Vec<CheckRegisterBody>,
}

/// `PUT /v1/agent/check/register` and a service's `Check`/`Checks` (Consul's
/// `CheckDefinition`/`CheckType`).
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct CheckRegisterBody {
    #[serde(alias = "checkid")]
    pub id: String,
    pub name: String,
    pub notes: String,
    pub status: String,
    #[serde(rename = "serviceid")]
    pub service_id: String,
    pub http: String,
    pub method: String,
    pub header: BTreeMap<String, Vec<String>>,
    pub body: String,
    #[serde(rename = "tlsskipverify")]
    pub tls_skip_verify: bool,
    #[serde(rename = "tlsservername")]
    pub tls_server_name: String,
    pub tcp: String,
    pub udp: String,
    pub ttl: Value,
    pub args: Vec<String>,
    #[serde(rename = "scriptargs")]
    pub script_args: Vec<String>,
    #[serde(rename = "aliasnode")]
    pub alias_node: String,
    #[serde(rename = "aliasservice")]
    pub alias_service: String,
    pub interval: Value,
    pub timeout: Value,
    #[serde(rename = "deregistercriticalserviceafter")]
    pub deregister_critical_service_after: Value,
    #[serde(rename = "successbeforepassing")]
    pub success_before_passing: u32,
    #[serde(rename = "failuresbeforewarning")]
    pub failures_before_warning: u32,
    #[serde(rename = "failuresbeforecritical")]
    pub failures_before_critical: u32,
}

/// `PUT /v1/agent/check/update/:id`.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct CheckUpdateBody {
    pub status: String,
    pub output: String,
}

/// A Go duration as text or integer nanoseconds, in milliseconds (rounded up, so a
/// non-zero duration stays non-zero); the 400 text otherwise.
pub fn duration_ms(value: &Value) -> DurationMs {
    let nanos = match value {
        Value::Null => return Ok(None),
        Value::String(s) if s.is_empty() => return Ok(None),
        Value::String(s) => parse_go_duration(s)
            .ok_or_else(|| format!("Request decode failed: time: invalid duration {s:?}"))?
            .as_nanos(),
        Value::Number(n) => u128::from(
            n.as_u64()
                .ok_or_else(|| format!("Request decode failed: invalid duration {n}"))?,
        ),
        other => return Err(format!("Request decode failed: invalid duration {other}")),
    };
    let ms = nanos.div_ceil(1_000_000);
    Ok(Some(u64::try_from(ms).unwrap_or(u64::MAX)))
}

impl ServiceRegisterBody {
    pub fn into_draft(self) -> AgentServiceDraft {
        AgentServiceDraft {
            service: ServiceDraft {
                id: self.id,
                service: self.name,
                kind: self.kind,
                tags: self.tags,
                address: self.address,
                tagged_addresses: tagged_addresses(self.tagged_addresses),
                meta: self.meta,
                port: self.port,
                weights: self.weights.map(Weights::from),
                enable_tag_override: self.enable_tag_override,
            },
            check: self.check.map(CheckRegisterBody::into_draft),
            checks: self
                .checks
                .into_iter()
                .map(CheckRegisterBody::into_draft)
                .collect(),
        }
    }
}

impl CheckRegisterBody {
    pub fn into_draft(self) -> AgentCheckDraft {
        AgentCheckDraft {
            ttl: duration_ms(&self.ttl),
            interval: duration_ms(&self.interval),
            timeout: duration_ms(&self.timeout),
            deregister_critical_service_after: duration_ms(&self.deregister_critical_service_after),
            id: self.id,
            name: self.name,
            notes: self.notes,
            status: self.status,
            service_id: self.service_id,
            http: self.http,
            method: self.method,
            header: self.header,
            body: self.body,
            tls_skip_verify: self.tls_skip_verify,
            tls_server_name: self.tls_server_name,
            tcp: self.tcp,
            udp: self.udp,
            args: if self.args.is_empty() {
                self.script_args
            } else {
                self.args
            },
            alias_node: self.alias_node,
            alias_service: self.alias_service,
            success_before_passing: self.success_before_passing,
            failures_before_warning: self.failures_before_warning,
            failures_before_critical: self.failures_before_critical,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::decode_json;
    use serde_json::json;

    #[test]
    fn consul_spellings_decode() {
        let raw = json!({
            "Name": "web", "ID": "web-1", "Port": 8080, "Tags": ["v1"],
            "Meta": {"Ver": "2"},
            "Check": {"HTTP": "http://127.0.0.1:8080/health", "Interval": "1s",
                      "Timeout": "500ms", "Header": {"X-Token": ["a"]}, "TLSSkipVerify": true},
            "Checks": [{"CheckID": "t", "TTL": 15000000000u64, "ServiceID": "x",
                        "DeregisterCriticalServiceAfter": "90m", "ScriptArgs": ["a"]}]
        });
        let body: ServiceRegisterBody = decode_json(raw.to_string().as_bytes()).unwrap();
        let d = body.into_draft();
        assert_eq!(
            (d.service.id.as_str(), d.service.service.as_str()),
            ("web-1", "web")
        );
        assert_eq!(d.service.meta["Ver"], "2");
        let c = d.check.unwrap();
        assert_eq!(c.interval, Ok(Some(1000)));
        assert_eq!(c.timeout, Ok(Some(500)));
        assert_eq!(c.header["X-Token"], ["a"]);
        assert!(c.tls_skip_verify);
        let t = &d.checks[0];
        assert_eq!((t.id.as_str(), t.ttl.clone()), ("t", Ok(Some(15_000))));
        assert_eq!(t.deregister_critical_service_after, Ok(Some(90 * 60_000)));
        assert_eq!(t.args, ["a"]);
        assert!(duration_ms(&json!("soon")).is_err());
    }
}
