//! `cairn services register|deregister`: register services with the local agent from
//! flags or definition files (JSON `service`/`services` blocks, as in config files), or
//! deregister them by ID, as `consul services` does.

use super::api_client::{self, ApiClient, ClientEnv};
use super::argv::{FlagKind, FlagSpec};
use super::Output;
use serde_json::{json, Map, Value};

const REGISTER_FLAGS: [FlagSpec; 6] = [
    FlagSpec {
        name: "id",
        kind: FlagKind::Value,
        value_name: "<string>",
        help: "ID of the service to register. Defaults to the name.",
    },
    FlagSpec {
        name: "name",
        kind: FlagKind::Value,
        value_name: "<string>",
        help: "Name of the service to register.",
    },
    FlagSpec {
        name: "address",
        kind: FlagKind::Value,
        value_name: "<addr>",
        help: "Address of the service.",
    },
    FlagSpec {
        name: "port",
        kind: FlagKind::Value,
        value_name: "<port>",
        help: "Port of the service.",
    },
    FlagSpec {
        name: "tag",
        kind: FlagKind::List,
        value_name: "<value>",
        help: "Tag to add to the service. This flag can be specified multiple times.",
    },
    FlagSpec {
        name: "meta",
        kind: FlagKind::List,
        value_name: "<key=value>",
        help: "Metadata to set on the service, formatted as key=value. This flag can be \
               specified multiple times.",
    },
];

const DEREGISTER_FLAGS: [FlagSpec; 1] = [FlagSpec {
    name: "id",
    kind: FlagKind::Value,
    value_name: "<string>",
    help: "ID of the service to deregister.",
}];

const HEAD: &str = "Usage: cairn services <subcommand> [options] [args]\n\n  register    Register services with the local agent (flags or definition files)\n  deregister  Deregister services from the local agent (-id or definition files)";

pub fn run(args: &[String], io: &mut Output<'_>) -> i32 {
    run_with_env(args, &ClientEnv::from_process(), io)
}

pub fn run_with_env(args: &[String], env: &ClientEnv, io: &mut Output<'_>) -> i32 {
    match args.split_first() {
        Some((sub, rest)) if sub == "register" => register(rest, env, io),
        Some((sub, rest)) if sub == "deregister" => deregister(rest, env, io),
        Some((sub, _)) if matches!(sub.as_str(), "-h" | "-help" | "--help") => {
            let _ = writeln!(io.out, "{HEAD}");
            0
        }
        _ => {
            let _ = writeln!(io.err, "{HEAD}");
            1
        }
    }
}

/// The service blocks of definition files (`service` or `services`).
fn definitions_from_files(files: &[String]) -> Result<Vec<Value>, String> {
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("Error reading file {file:?}: {e}"))?;
        let value: Value =
            serde_json::from_str(&text).map_err(|e| format!("Error parsing file {file:?}: {e}"))?;
        let mut found = false;
        if let Some(one) = value.get("service") {
            out.push(one.clone());
            found = true;
        }
        match value.get("services") {
            Some(Value::Array(many)) => {
                out.extend(many.iter().cloned());
                found = true;
            }
            Some(one) => {
                out.push(one.clone());
                found = true;
            }
            None => {}
        }
        if !found {
            return Err(format!(
                "Error parsing file {file:?}: no \"service\" or \"services\" block"
            ));
        }
    }
    Ok(out)
}

fn field<'a>(v: &'a Value, names: &[&str]) -> &'a str {
    names
        .iter()
        .find_map(|n| v.get(*n).and_then(Value::as_str))
        .unwrap_or_default()
}

fn service_from_flags(parsed: &api_client::ParsedArgs) -> Result<Value, String> {
    let mut service = Map::new();
    let name = parsed.value("name").unwrap_or_default();
    if name.is_empty() {
        return Err("Service name must be specified with -name or a definition file".into());
    }
    service.insert("Name".into(), json!(name));
    if let Some(id) = parsed.value("id").filter(|v| !v.is_empty()) {
        service.insert("ID".into(), json!(id));
    }
    if let Some(address) = parsed.value("address").filter(|v| !v.is_empty()) {
        service.insert("Address".into(), json!(address));
    }
    if let Some(port) = parsed.value("port").filter(|v| !v.is_empty()) {
        let port: u16 = port
            .parse()
            .map_err(|_| format!("Invalid value {port:?} for -port"))?;
        service.insert("Port".into(), json!(port));
    }
    let list = |name: &str| -> Vec<String> {
        parsed
            .flags
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .collect()
    };
    let tags = list("tag");
    if !tags.is_empty() {
        service.insert("Tags".into(), json!(tags));
    }
    let mut meta = Map::new();
    for kv in list("meta") {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("Invalid -meta {kv:?}: expected key=value"))?;
        meta.insert(k.to_string(), json!(v));
    }
    if !meta.is_empty() {
        service.insert("Meta".into(), Value::Object(meta));
    }
    Ok(Value::Object(service))
}

fn connect(
    parsed: &api_client::ParsedArgs,
    env: &ClientEnv,
    io: &mut Output<'_>,
) -> Result<ApiClient, i32> {
    api_client::connect_or_exit(parsed, env, io)
}

fn register(args: &[String], env: &ClientEnv, io: &mut Output<'_>) -> i32 {
    let specs = api_client::with_http_flags(&REGISTER_FLAGS);
    let usage = api_client::usage(
        "Usage: cairn services register [options] [FILE...]\n\n  Registers services with the local agent, from flags or from definition files.",
        &specs,
    );
    let parsed = match api_client::parse_or_exit(args, &specs, "services register", &usage, io) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let services = if parsed.args.is_empty() {
        service_from_flags(&parsed).map(|s| vec![s])
    } else {
        definitions_from_files(&parsed.args)
    };
    let services = match services {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(io.err, "{e}");
            return 1;
        }
    };
    let client = match connect(&parsed, env, io) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for service in services {
        let name = field(&service, &["Name", "name"]).to_string();
        let body = service.to_string();
        let reply = client.request(
            "PUT",
            "/v1/agent/service/register",
            Some(body.as_bytes()),
            api_client::MAX_RESPONSE_BYTES,
        );
        match reply.and_then(|r| r.ok()) {
            Ok(_) => {
                let _ = writeln!(io.out, "Registered service: {name}");
            }
            Err(e) => {
                let _ = writeln!(io.err, "Error registering service {name:?}: {e}");
                return 1;
            }
        }
    }
    0
}

fn deregister(args: &[String], env: &ClientEnv, io: &mut Output<'_>) -> i32 {
    let specs = api_client::with_http_flags(&DEREGISTER_FLAGS);
    let usage = api_client::usage(
        "Usage: cairn services deregister [options] [FILE...]\n\n  Deregisters services from the local agent, by -id or as in definition files.",
        &specs,
    );
    let parsed = match api_client::parse_or_exit(args, &specs, "services deregister", &usage, io) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let ids: Vec<String> = match (parsed.value("id"), parsed.args.is_empty()) {
        (Some(id), true) if !id.is_empty() => vec![id.to_string()],
        (None, false) => match definitions_from_files(&parsed.args) {
            Ok(services) => services
                .iter()
                .map(|s| {
                    let id = field(s, &["ID", "id", "Id"]);
                    if id.is_empty() {
                        field(s, &["Name", "name"]).to_string()
                    } else {
                        id.to_string()
                    }
                })
                .collect(),
            Err(e) => {
                let _ = writeln!(io.err, "{e}");
                return 1;
            }
        },
        _ => {
            let _ = writeln!(
                io.err,
                "Either a service ID (-id) or definition files must be given, not both"
            );
            return 1;
        }
    };
    let client = match connect(&parsed, env, io) {
        Ok(c) => c,
        Err(code) => return code,
    };
    for id in ids {
        let path = format!("/v1/agent/service/deregister/{}", api_client::escape(&id));
        match client.put(&path) {
            Ok(_) => {
                let _ = writeln!(io.out, "Deregistered service: {id}");
            }
            Err(e) => {
                let _ = writeln!(io.err, "Error deregistering service {id:?}: {e}");
                return 1;
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::fake_agent::{capture, serve};

    #[test]
    fn register_from_flags_and_files_deregister_by_id() {
        let agent = serve(vec![
            (200, ""),
            (200, ""),
            (200, ""),
            (404, "Unknown service ID"),
        ]);
        let (code, out, err) = capture(
            run_with_env,
            &[
                "register", "-name", "web", "-id", "web-1", "-port", "80", "-tag", "a", "-tag",
                "b", "-meta", "v=1",
            ],
            &agent.env(),
        );
        assert_eq!(
            (code, out.as_str(), err.as_str()),
            (0, "Registered service: web\n", "")
        );
        let body: Value = serde_json::from_slice(&agent.bodies()[0]).unwrap();
        assert_eq!(
            body,
            json!({"Name": "web", "ID": "web-1", "Port": 80, "Tags": ["a", "b"], "Meta": {"v": "1"}})
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("db.json");
        std::fs::write(&file, r#"{"service": {"name": "db", "port": 5432}}"#).unwrap();
        let file = file.display().to_string();
        let (code, out, _) = capture(run_with_env, &["register", &file], &agent.env());
        assert_eq!((code, out.as_str()), (0, "Registered service: db\n"));
        let (code, out, _) = capture(run_with_env, &["deregister", "-id", "web-1"], &agent.env());
        assert_eq!((code, out.as_str()), (0, "Deregistered service: web-1\n"));
        let (code, _, err) = capture(run_with_env, &["deregister", &file], &agent.env());
        assert_eq!(code, 1);
        assert!(
            err.starts_with("Error deregistering service \"db\""),
            "{err}"
        );
        assert_eq!(
            agent.requests(),
            [
                "PUT /v1/agent/service/register HTTP/1.1",
                "PUT /v1/agent/service/register HTTP/1.1",
                "PUT /v1/agent/service/deregister/web-1 HTTP/1.1",
                "PUT /v1/agent/service/deregister/db HTTP/1.1",
            ]
        );
        let (code, _, err) = capture(run_with_env, &["register"], &ClientEnv::default());
        assert_eq!(code, 1);
        assert!(err.contains("-name"), "{err}");
    }
}
