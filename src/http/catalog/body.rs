//! Request bodies of `/v1/catalog/register` and `/deregister` (canonical lowercase field
//! names, see `http/body.rs`), turned into drafts for the registration rules in
//! `protocol::store::registration`: decoding is the edge's, the rules are shared.

use crate::http::body::duration_field;
use crate::http::error::ApiError;
use protocol::store::registration::{
    self, CheckDraft, DeregistrationDraft, Parsed, RegistrationDraft, ServiceDraft,
};
use protocol::store::{DeregisterRequest, RegisterRequest, ServiceAddress, Weights};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct RegisterBody {
    pub id: String,
    pub node: String,
    pub address: String,
    pub datacenter: String,
    #[serde(rename = "taggedaddresses")]
    pub tagged_addresses: BTreeMap<String, String>,
    #[serde(rename = "nodemeta")]
    pub node_meta: BTreeMap<String, String>,
    pub service: Option<ServiceBody>,
    pub check: Option<CheckBody>,
    pub checks: Vec<CheckBody>,
    #[serde(rename = "skipnodeupdate")]
    pub skip_node_update: bool,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct ServiceBody {
    pub id: String,
    pub service: String,
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
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct ServiceAddressBody {
    pub address: String,
    pub port: u16,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct WeightsBody {
    pub passing: i32,
    pub warning: i32,
}

impl From<WeightsBody> for Weights {
    fn from(w: WeightsBody) -> Weights {
        Weights {
            passing: w.passing,
            warning: w.warning,
        }
    }
}

/// A service's `TaggedAddresses` as the store keeps them (catalog, agent and txn bodies).
pub fn tagged_addresses(
    body: BTreeMap<String, ServiceAddressBody>,
) -> BTreeMap<String, ServiceAddress> {
    body.into_iter()
        .map(|(tag, a)| {
            let address = ServiceAddress {
                address: a.address,
                port: a.port,
            };
            (tag, address)
        })
        .collect()
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct CheckBody {
    pub node: String,
    #[serde(rename = "checkid", alias = "id")]
    pub check_id: String,
    pub name: String,
    pub status: String,
    pub notes: String,
    pub output: String,
    #[serde(rename = "serviceid")]
    pub service_id: String,
    pub definition: DefinitionBody,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct DefinitionBody {
    pub http: String,
    pub tcp: String,
    pub interval: Value,
    pub timeout: Value,
    #[serde(rename = "deregistercriticalserviceafter")]
    pub deregister_critical_service_after: Value,
}

#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct DeregisterBody {
    pub node: String,
    pub datacenter: String,
    #[serde(rename = "serviceid")]
    pub service_id: String,
    #[serde(rename = "checkid")]
    pub check_id: String,
}

/// Validate a register body and fill Consul's defaults, giving the replicated command.
pub fn register_command(body: RegisterBody, our_dc: &str) -> Result<RegisterRequest, ApiError> {
    Ok(registration::register(body.into_draft(), our_dc)?)
}

pub fn deregister_command(
    body: DeregisterBody,
    our_dc: &str,
) -> Result<DeregisterRequest, ApiError> {
    let draft = DeregistrationDraft {
        node: body.node,
        datacenter: body.datacenter,
        service_id: body.service_id,
        check_id: body.check_id,
    };
    Ok(registration::deregister(draft, our_dc)?)
}

/// A Go duration field (string or nanoseconds), normalised; the 400 text otherwise.
fn duration(value: &Value) -> Parsed {
    duration_field(value).map_err(|e| e.text())
}

impl RegisterBody {
    pub fn into_draft(self) -> RegistrationDraft {
        let id = if self.id.is_empty() {
            Ok(String::new())
        } else {
            uuid::Uuid::parse_str(&self.id)
                .map(|_| self.id.clone())
                .map_err(|e| e.to_string())
        };
        RegistrationDraft {
            id,
            node: self.node,
            address: self.address,
            datacenter: self.datacenter,
            tagged_addresses: self.tagged_addresses,
            node_meta: self.node_meta,
            service: self.service.map(ServiceBody::into_draft),
            check: self.check.map(CheckBody::into_draft),
            checks: self.checks.into_iter().map(CheckBody::into_draft).collect(),
            skip_node_update: self.skip_node_update,
        }
    }
}

impl ServiceBody {
    fn into_draft(self) -> ServiceDraft {
        ServiceDraft {
            id: self.id,
            service: self.service,
            kind: self.kind,
            tags: self.tags,
            address: self.address,
            tagged_addresses: tagged_addresses(self.tagged_addresses),
            meta: self.meta,
            port: self.port,
            weights: self.weights.map(Weights::from),
            enable_tag_override: self.enable_tag_override,
        }
    }
}

impl CheckBody {
    fn into_draft(self) -> CheckDraft {
        let d = self.definition;
        CheckDraft {
            interval: duration(&d.interval),
            timeout: duration(&d.timeout),
            deregister_critical_service_after: duration(&d.deregister_critical_service_after),
            node: self.node,
            check_id: self.check_id,
            name: self.name,
            status: self.status,
            notes: self.notes,
            output: self.output,
            service_id: self.service_id,
            http: d.http,
            tcp: d.tcp,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::body::decode_json;
    use protocol::store::CheckStatus;

    fn reg(json: &str) -> Result<RegisterRequest, ApiError> {
        register_command(decode_json(json.as_bytes())?, "dc1")
    }

    #[test]
    fn register_defaults_and_case_insensitive_fields() {
        let r = reg(r#"{"node":"n1","ADDRESS":"10.0.0.1","NodeMeta":{"Env":"prod"},
            "Service":{"service":"web","Port":80,"tagged_addresses":{"lan":{"address":"10.0.0.5","port":81}}},
            "Check":{"Name":"web alive","ServiceID":"web","Definition":{"HTTP":"http://x","Interval":"10s","Timeout":1000000000}}}"#)
        .unwrap();
        assert_eq!(r.node.node, "n1");
        assert_eq!(r.node.address, "10.0.0.1");
        assert_eq!(r.node.datacenter, "dc1");
        assert_eq!(r.node.meta.get("Env").map(String::as_str), Some("prod"));
        let svc = r.service.unwrap();
        assert_eq!(svc.id, "web");
        assert_eq!(
            svc.weights,
            Weights {
                passing: 1,
                warning: 1
            }
        );
        assert_eq!(
            svc.tagged_addresses["lan"],
            ServiceAddress {
                address: "10.0.0.5".into(),
                port: 81
            }
        );
        assert_eq!(r.checks.len(), 1);
        let c = &r.checks[0];
        assert_eq!(c.check_id, "web alive");
        assert_eq!(c.node, "n1");
        assert_eq!(c.status, CheckStatus::Critical);
        assert_eq!(c.service_name, "web");
        assert_eq!(c.check_type, "http");
        assert_eq!(c.definition.interval, "10s");
        assert_eq!(c.definition.timeout, "1s");
    }

    #[test]
    fn register_rejections() {
        let err = |j: &str| reg(j).unwrap_err();
        assert_eq!(
            err(r#"{"Address":"1.2.3.4"}"#),
            ApiError::internal("Must provide node")
        );
        assert_eq!(
            err(r#"{"Node":"n"}"#),
            ApiError::internal("Must provide address if SkipNodeUpdate is not set")
        );
        assert!(reg(r#"{"Node":"n","SkipNodeUpdate":true}"#).is_ok());
        assert_eq!(
            err(r#"{"Node":"n","Address":"a","Datacenter":"dc9"}"#),
            ApiError::internal("No path to datacenter")
        );
        assert!(
            matches!(err(r#"{"Node":"n","Address":"a","ID":"nope"}"#), ApiError::Internal(t) if t.starts_with("Bad node ID: "))
        );
        assert_eq!(
            err(r#"{"Node":"n","Address":"a","Service":{"ID":"x"}}"#),
            ApiError::internal("Must provide service name with ID")
        );
        assert_eq!(
            err(r#"{"Node":"n","Address":"a","Check":{"Name":"c","Status":"bogus"}}"#),
            ApiError::bad_request("Invalid check status: \"bogus\"")
        );
        assert_eq!(
            err(r#"{"Node":"n","Address":"a","Checks":[{"Node":"other","Name":"c"}]}"#),
            ApiError::internal("Node 'other' does not match register request")
        );
        assert!(
            matches!(err(r#"{"Node":"n","Address":"a","Service":{"Service":"s","Port":"80"}}"#),
            ApiError::BadRequest(t) if t.starts_with("Request decode failed: "))
        );
        assert!(
            matches!(err(r#"{"Node":"n","Address":"a","Service":{"Service":"s","Port":70000}}"#),
            ApiError::BadRequest(t) if t.starts_with("Request decode failed: "))
        );
        assert!(
            matches!(err("[1,2]"), ApiError::BadRequest(t) if t.starts_with("Request decode failed: "))
        );
        assert!(
            matches!(err(""), ApiError::BadRequest(t) if t.starts_with("Request decode failed: "))
        );
    }

    #[test]
    fn registrations_that_multiply_past_the_limit_are_413() {
        let tags: Vec<String> = (0..1000).map(|i| format!("\"{i:0>100}\"")).collect();
        let checks = vec![r#"{"Name":"c","ServiceID":"web"}"#; 200].join(",");
        let body = format!(
            r#"{{"Node":"n","Address":"a","Service":{{"Service":"web","Tags":[{}]}},"Checks":[{checks}]}}"#,
            tags.join(",")
        );
        match reg(&body) {
            Err(ApiError::TooLarge(t)) => {
                assert!(t.starts_with("Registration too large: 200 checks"), "{t}")
            }
            other => panic!("{other:?}"),
        }
        // The same node name copied a little: fine.
        let few = [r#"{"Name":"c"}"#; 3].join(",");
        let ok = format!(
            r#"{{"Node":"{}","Address":"a","Checks":[{few}]}}"#,
            "n".repeat(1000)
        );
        assert!(reg(&ok).is_ok());
    }

    #[test]
    fn deregister_shapes() {
        let d = |j: &str| deregister_command(decode_json(j.as_bytes())?, "dc1");
        assert_eq!(d(r#"{}"#), Err(ApiError::internal("Must provide node")));
        assert_eq!(
            d(r#"{"node":"n","service_id":"web"}"#),
            Ok(DeregisterRequest {
                node: "n".into(),
                service_id: Some("web".into()),
                check_id: None
            })
        );
        assert_eq!(
            d(r#"{"Node":"n","CheckID":"c"}"#),
            Ok(DeregisterRequest {
                node: "n".into(),
                service_id: None,
                check_id: Some("c".into())
            })
        );
    }
}
