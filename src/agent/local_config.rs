//! Services and checks defined in config files (`service`, `services`, `check`,
//! `checks`): decoded with the same bodies and rules as `/v1/agent/service/register`
//! (Consul's field names in any case, snake_case too), as config-file definitions
//! (`enable_local_script_checks` applies), and handed to the local state at start and
//! on every reload (`cairn reload`, `PUT /v1/agent/reload`, SIGHUP).

use crate::config::{file, Config};
use crate::http::agent_local::body::{CheckRegisterBody, ServiceRegisterBody};
use crate::http::body::normalize;
use crate::local::LocalAgent;
use protocol::health::definition::{
    parse_check, parse_service, CheckRules, Origin, ServiceDefinition,
};
use protocol::health::CheckSpec;
use serde_json::Value;
use tracing::{info, warn};

/// Validated config-file definitions.
pub struct Definitions {
    pub services: Vec<ServiceDefinition>,
    pub checks: Vec<CheckSpec>,
}

fn name_of(v: &Value) -> String {
    ["name", "Name", "id", "ID"]
        .iter()
        .find_map(|k| v.get(*k).and_then(Value::as_str))
        .unwrap_or_default()
        .to_string()
}

/// Decode and validate; the error reads as Consul's reload error does.
pub fn decode(
    services: &[Value],
    checks: &[Value],
    node: &str,
    rules: &CheckRules,
) -> Result<Definitions, String> {
    let mut out = Definitions {
        services: Vec::new(),
        checks: Vec::new(),
    };
    for raw in services {
        let name = name_of(raw);
        let fail = |e: String| format!("Failed to register service {name:?}: {e}");
        let body: ServiceRegisterBody =
            serde_json::from_value(normalize(raw.clone())).map_err(|e| fail(e.to_string()))?;
        let parsed = parse_service(body.into_draft(), node, Origin::Local, rules)
            .map_err(|e| fail(e.to_string()))?;
        for w in parsed.warnings {
            warn!("{w}");
        }
        out.services.push(parsed.value);
    }
    for raw in checks {
        let name = name_of(raw);
        let fail = |e: String| format!("Failed to register check {name:?}: {e}");
        let body: CheckRegisterBody =
            serde_json::from_value(normalize(raw.clone())).map_err(|e| fail(e.to_string()))?;
        let parsed = parse_check(body.into_draft(), Origin::Local, rules)
            .map_err(|e| fail(e.to_string()))?;
        for w in parsed.warnings {
            warn!("{w}");
        }
        out.checks.push(parsed.value);
    }
    Ok(out)
}

/// Hand the definitions to the local state.
pub async fn apply(
    local: &LocalAgent,
    services: &[Value],
    checks: &[Value],
    node: &str,
) -> Result<(), String> {
    let defs = decode(services, checks, node, &local.rules())?;
    let counts = (defs.services.len(), defs.checks.len());
    local
        .replace_local(defs.services, defs.checks)
        .await
        .map_err(|e| e.to_string())?;
    if counts != (0, 0) {
        info!(
            "config files define {} services and {} checks",
            counts.0, counts.1
        );
    }
    Ok(())
}

/// A reload: read the config files again and replace their services and checks (other
/// settings need a restart, as most of Consul's do).
pub async fn reload(config: &Config, local: &LocalAgent) -> Result<(), String> {
    let loaded = file::load_all(&config.config_paths).map_err(|e| e.to_string())?;
    for w in &loaded.warnings {
        warn!("{w}");
    }
    apply(
        local,
        &loaded.source.service_definitions,
        &loaded.source.check_definitions,
        &config.node_name,
    )
    .await
    .map_err(|e| format!("Failed reloading services: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn config_blocks_decode_with_consuls_names_and_local_script_rules() {
        let services = [json!({"name": "web", "port": 80,
            "checks": [{"http": "http://127.0.0.1/", "interval": "10s",
                        "deregister_critical_service_after": "90m"}]})];
        let checks = [json!({"id": "mem", "name": "Memory", "args": ["/bin/true"],
                             "interval": "30s"})];
        let rules = CheckRules::default();
        let err = decode(&services, &checks, "n1", &rules).err().unwrap();
        assert!(
            err.starts_with("Failed to register check \"Memory\": Scripts are disabled"),
            "{err}"
        );
        let local_scripts = CheckRules {
            enable_local_script_checks: true,
            ..rules
        };
        let defs = decode(&services, &checks, "n1", &local_scripts).unwrap();
        assert_eq!(defs.services[0].service.id, "web");
        assert_eq!(defs.services[0].checks[0].id, "service:web");
        assert_eq!(
            defs.services[0].checks[0].deregister_critical_service_after_ms,
            Some(90 * 60_000)
        );
        assert_eq!(defs.checks[0].id, "mem");
        let bad = [json!({"port": 1})];
        assert_eq!(
            decode(&bad, &[], "n1", &rules).err().unwrap(),
            "Failed to register service \"\": Missing service name"
        );
    }
}
