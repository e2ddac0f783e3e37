//! Config files in Consul's JSON schema. Values are decoded the way Consul's weakly typed
//! decoder does (`"8500"` is a fine port, `"true"` a fine bool, a lone string a fine list),
//! but a value that cannot be converted is an error naming the key and the file. Unknown
//! keys only produce a warning, so a config written for Consul still starts cairn.

use super::source::ConfigSource;
use super::ConfigError;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// What parsing one or more files produced: the merged values and warnings to log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Loaded {
    pub source: ConfigSource,
    pub warnings: Vec<String>,
}

/// A `-config-file` or `-config-dir` argument, in command-line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigPath {
    File(PathBuf),
    Dir(PathBuf),
}

/// Largest config file read. Real configs are a few KiB; the cap keeps a mistaken path
/// (`/dev/zero`, a log file, a FIFO fed forever) from exhausting memory.
pub const MAX_CONFIG_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Consul gossip keys cairn does not implement (a separate Serf LAN bind address and
/// source-network filtering); each is ignored with its own warning.
const GOSSIP_NOT_SUPPORTED: &[&str] = &["serf_lan", "serf_lan_allowed_cidrs"];

/// Load every path in order and merge them (later files win).
pub fn load_all(paths: &[ConfigPath]) -> Result<Loaded, ConfigError> {
    let mut loaded = Loaded::default();
    for path in paths {
        let files = match path {
            ConfigPath::File(f) if f.is_dir() => json_files_in(f, &mut loaded.warnings)?,
            ConfigPath::File(f) => vec![f.clone()],
            ConfigPath::Dir(d) => json_files_in(d, &mut loaded.warnings)?,
        };
        for file in files {
            let one = load_file(&file)?;
            loaded.source = loaded.source.merge(one.source);
            loaded.warnings.extend(one.warnings);
        }
    }
    Ok(loaded)
}

/// The `*.json` files of a directory, sorted by name as Consul loads them. `*.hcl` files
/// (which Consul would also load) are skipped with a warning.
fn json_files_in(dir: &Path, warnings: &mut Vec<String>) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ConfigError::Io(format!("Error reading config dir {}: {e}", dir.display())))?;
    let mut files = Vec::new();
    let mut skipped = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            ConfigError::Io(format!("Error reading config dir {}: {e}", dir.display()))
        })?;
        let path = entry.path();
        if path.is_file() && path.extension().is_some_and(|ext| ext == "json") {
            files.push(path);
        } else if path.is_file() && path.extension().is_some_and(|ext| ext == "hcl") {
            skipped.push(path);
        }
    }
    files.sort();
    skipped.sort();
    for path in skipped {
        warnings.push(format!(
            "config: skipped {} (cairn reads JSON config files only)",
            path.display()
        ));
    }
    Ok(files)
}

pub fn load_file(path: &Path) -> Result<Loaded, ConfigError> {
    let name = path.display().to_string();
    if path.extension().is_some_and(|ext| ext == "hcl") {
        return Err(ConfigError::File {
            file: name,
            message: "HCL config files are not supported; use JSON".into(),
        });
    }
    let text = read_capped(path)
        .map_err(|e| ConfigError::Io(format!("Error reading config file {name}: {e}")))?;
    parse_json(&name, &text)
}

/// Read a whole text file, refusing more than [`MAX_CONFIG_FILE_BYTES`] (the size is
/// checked by reading, so devices and pipes, whose metadata says 0, are bounded too).
fn read_capped(path: &Path) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_CONFIG_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_CONFIG_FILE_BYTES {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("file is larger than {MAX_CONFIG_FILE_BYTES} bytes"),
        ));
    }
    String::from_utf8(bytes).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "stream did not contain valid UTF-8",
        )
    })
}

/// Parse the text of one JSON config file; `file` is used in messages only.
pub fn parse_json(file: &str, text: &str) -> Result<Loaded, ConfigError> {
    let value: Value = serde_json::from_str(text).map_err(|e| ConfigError::File {
        file: file.to_string(),
        message: e.to_string(),
    })?;
    let Value::Object(map) = value else {
        return Err(ConfigError::File {
            file: file.to_string(),
            message: "config must be a JSON object".into(),
        });
    };
    let mut reader = Reader {
        file,
        warnings: Vec::new(),
    };
    let source = reader.top_level(&map)?;
    Ok(Loaded {
        source,
        warnings: reader.warnings,
    })
}

struct Reader<'a> {
    file: &'a str,
    warnings: Vec<String>,
}

impl Reader<'_> {
    fn top_level(&mut self, map: &Map<String, Value>) -> Result<ConfigSource, ConfigError> {
        let mut s = ConfigSource::default();
        for (key, v) in map {
            match key.as_str() {
                "node_name" => s.node_name = Some(self.string(key, v)?),
                "node_id" => s.node_id = Some(self.string(key, v)?),
                "datacenter" => s.datacenter = Some(self.string(key, v)?),
                "data_dir" => s.data_dir = Some(PathBuf::from(self.string(key, v)?)),
                "server" => s.server = Some(self.bool(key, v)?),
                "bootstrap" => s.bootstrap = Some(self.bool(key, v)?),
                "bootstrap_expect" => s.bootstrap_expect = Some(self.int(key, v)?),
                "bind_addr" => s.bind_addr = Some(self.string(key, v)?),
                "advertise_addr" => s.advertise_addr = Some(self.string(key, v)?),
                "client_addr" => s.client_addr = Some(self.string(key, v)?),
                "domain" => s.domain = Some(self.string(key, v)?),
                "recursors" => s.recursors.extend(self.strings(key, v)?),
                "recursor" => s.recursors.push(self.string(key, v)?),
                "retry_join" | "start_join" => s.retry_join.extend(self.strings(key, v)?),
                "retry_interval" => s.retry_interval = Some(self.string(key, v)?),
                "enable_script_checks" => s.enable_script_checks = Some(self.bool(key, v)?),
                "enable_local_script_checks" => {
                    s.enable_local_script_checks = Some(self.bool(key, v)?)
                }
                "check_update_interval" => {
                    s.check_update_interval = Some(self.duration_text(key, v)?)
                }
                "check_deregister_interval_min" => {
                    s.check_deregister_interval_min = Some(self.duration_text(key, v)?)
                }
                "log_level" => s.log_level = Some(self.string(key, v)?),
                "ui" => s.ui = Some(self.bool(key, v)?),
                "raft_snapshot_threshold" => s.raft_snapshot_threshold = Some(self.int(key, v)?),
                "raft_trailing_logs" => s.raft_trailing_logs = Some(self.int(key, v)?),
                "raft_log_cache_mb" => s.raft_log_cache_mb = Some(self.int(key, v)?),
                "raft_log_cache_entries" => s.raft_log_cache_entries = Some(self.int(key, v)?),
                "node_meta" => s.node_meta.extend(self.string_map(key, v)?),
                "ports" => self.ports(&mut s, v)?,
                "gossip_lan" => self.gossip_lan(&mut s, v)?,
                "autopilot" => self.autopilot(&mut s, v)?,
                "reconnect_timeout" => s.reconnect_timeout = Some(self.duration_text(key, v)?),
                "retry_max" => s.retry_max = Some(self.int(key, v)?),
                "leave_on_terminate" => s.leave_on_terminate = Some(self.bool(key, v)?),
                "skip_leave_on_interrupt" => {
                    s.skip_leave_on_interrupt = Some(self.bool(key, v)?)
                }
                "rejoin_after_leave" => s.rejoin_after_leave = Some(self.bool(key, v)?),
                "tombstone_ttl" => s.tombstone_ttl = Some(self.duration_text(key, v)?),
                "debug_tombstone_ttl" => {
                    s.debug_tombstone_ttl = Some(self.duration_text(key, v)?)
                }
                "ui_config" => {
                    for (sub, sv) in self.object(key, v)? {
                        match sub.as_str() {
                            "enabled" => s.ui = Some(self.bool(&format!("ui_config.{sub}"), sv)?),
                            _ => self.unknown(&format!("ui_config.{sub}")),
                        }
                    }
                }
                "performance" => {
                    for (sub, sv) in self.object(key, v)? {
                        match sub.as_str() {
                            "raft_multiplier" => {
                                s.raft_multiplier = Some(self.int(&format!("performance.{sub}"), sv)?)
                            }
                            "raft_election_timeout" => {
                                let key = format!("performance.{sub}");
                                s.raft_election_timeout = Some(self.duration_text(&key, sv)?)
                            }
                            "raft_heartbeat_interval" => {
                                let key = format!("performance.{sub}");
                                s.raft_heartbeat_interval = Some(self.duration_text(&key, sv)?)
                            }
                            _ => self.unknown(&format!("performance.{sub}")),
                        }
                    }
                }
                k if GOSSIP_NOT_SUPPORTED.contains(&k) => self.warnings.push(format!(
                    "config: \"{k}\" in {} is not supported and was ignored (gossip binds to bind_addr and accepts every source address)",
                    self.file
                )),
                "service" => s.service_definitions.push(self.definition(key, v)?),
                "services" => s.service_definitions.extend(self.definitions(key, v)?),
                "check" => s.check_definitions.push(self.definition(key, v)?),
                "checks" => s.check_definitions.extend(self.definitions(key, v)?),
                _ => self.unknown(key),
            }
        }
        Ok(s)
    }

    fn ports(&mut self, s: &mut ConfigSource, v: &Value) -> Result<(), ConfigError> {
        for (sub, pv) in self.object("ports", v)? {
            let key = format!("ports.{sub}");
            let slot = match sub.as_str() {
                "http" => &mut s.ports.http,
                "https" => &mut s.ports.https,
                "dns" => &mut s.ports.dns,
                "server" => &mut s.ports.server,
                "serf_lan" => &mut s.ports.serf_lan,
                "serf_wan" => &mut s.ports.serf_wan,
                "grpc" => &mut s.ports.grpc,
                "grpc_tls" => &mut s.ports.grpc_tls,
                _ => {
                    self.unknown(&key);
                    continue;
                }
            };
            let n = self.int(&key, pv)?;
            *slot = Some(
                i32::try_from(n)
                    .map_err(|_| self.error(format!("'{key}' value {n} is out of range")))?,
            );
        }
        Ok(())
    }

    /// `gossip_lan { ... }`: durations as Go duration text, counts as ints. Keys are
    /// named `gossip_lan.<knob>` in messages.
    fn gossip_lan(&mut self, s: &mut ConfigSource, v: &Value) -> Result<(), ConfigError> {
        for (sub, gv) in self.object("gossip_lan", v)? {
            let key = format!("gossip_lan.{sub}");
            let g = &mut s.gossip_lan;
            match sub.as_str() {
                "gossip_nodes" => g.gossip_nodes = Some(self.int(&key, gv)?),
                "gossip_interval" => g.gossip_interval = Some(self.duration_text(&key, gv)?),
                "probe_interval" => g.probe_interval = Some(self.duration_text(&key, gv)?),
                "probe_timeout" => g.probe_timeout = Some(self.duration_text(&key, gv)?),
                "retransmit_mult" => g.retransmit_mult = Some(self.int(&key, gv)?),
                "suspicion_mult" => g.suspicion_mult = Some(self.int(&key, gv)?),
                _ => self.unknown(&key),
            }
        }
        Ok(())
    }

    /// `autopilot { ... }`: Consul's keys cairn honours; the others are warned about.
    fn autopilot(&mut self, s: &mut ConfigSource, v: &Value) -> Result<(), ConfigError> {
        for (sub, av) in self.object("autopilot", v)? {
            let key = format!("autopilot.{sub}");
            let a = &mut s.autopilot;
            match sub.as_str() {
                "cleanup_dead_servers" => a.cleanup_dead_servers = Some(self.bool(&key, av)?),
                "last_contact_threshold" => {
                    a.last_contact_threshold = Some(self.duration_text(&key, av)?)
                }
                "max_trailing_logs" => a.max_trailing_logs = Some(self.int(&key, av)?),
                "server_stabilization_time" => {
                    a.server_stabilization_time = Some(self.duration_text(&key, av)?)
                }
                _ => self.unknown(&key),
            }
        }
        Ok(())
    }

    fn unknown(&mut self, key: &str) {
        self.warnings.push(format!(
            "config: unknown key \"{key}\" in {} was ignored",
            self.file
        ));
    }

    fn error(&self, message: String) -> ConfigError {
        ConfigError::File {
            file: self.file.to_string(),
            message,
        }
    }

    /// Consul's (mapstructure's) wording for a value of the wrong type.
    fn type_error(&self, key: &str, want: &str, got: &Value) -> ConfigError {
        let shown = match got {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        self.error(format!(
            "'{key}' expected type '{want}', got unconvertible type '{}', value: '{shown}'",
            go_type_name(got)
        ))
    }

    fn string(&self, key: &str, v: &Value) -> Result<String, ConfigError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Number(n) => Ok(n.to_string()),
            Value::Bool(b) => Ok(if *b { "1" } else { "0" }.to_string()),
            other => Err(self.type_error(key, "string", other)),
        }
    }

    /// A duration key: Consul declares these as strings (`"200ms"`) and parses them after
    /// decoding, so only a JSON string is accepted here; `build` parses the text.
    fn duration_text(&self, key: &str, v: &Value) -> Result<String, ConfigError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            other => Err(self.type_error(key, "string", other)),
        }
    }

    fn bool(&self, key: &str, v: &Value) -> Result<bool, ConfigError> {
        match v {
            Value::Bool(b) => Ok(*b),
            Value::String(s) => parse_go_bool(s).ok_or_else(|| self.type_error(key, "bool", v)),
            Value::Number(n) => Ok(n.as_f64().is_some_and(|f| f != 0.0)),
            other => Err(self.type_error(key, "bool", other)),
        }
    }

    fn int(&self, key: &str, v: &Value) -> Result<i64, ConfigError> {
        match v {
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Ok(i),
                (None, Some(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
                _ => Err(self.type_error(key, "int", v)),
            },
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| self.type_error(key, "int", v)),
            Value::Bool(b) => Ok(i64::from(*b)),
            other => Err(self.type_error(key, "int", other)),
        }
    }

    fn strings(&self, key: &str, v: &Value) -> Result<Vec<String>, ConfigError> {
        match v {
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.string(&format!("{key}[{i}]"), item))
                .collect(),
            // A lone value is lifted into a one-element list, as Consul's decoder does.
            Value::String(_) | Value::Number(_) => Ok(vec![self.string(key, v)?]),
            other => Err(self.type_error(key, "[]string", other)),
        }
    }

    fn object<'v>(&self, key: &str, v: &'v Value) -> Result<&'v Map<String, Value>, ConfigError> {
        match v {
            Value::Object(map) => Ok(map),
            other => Err(self.type_error(key, "map[string]interface {}", other)),
        }
    }

    /// One `service`/`check` block: an object, kept as written.
    fn definition(&self, key: &str, v: &Value) -> Result<Value, ConfigError> {
        self.object(key, v).map(|m| Value::Object(m.clone()))
    }

    /// `services`/`checks`: a list of blocks (a lone block is a list of one).
    fn definitions(&self, key: &str, v: &Value) -> Result<Vec<Value>, ConfigError> {
        match v {
            Value::Array(items) => items.iter().map(|i| self.definition(key, i)).collect(),
            other => Ok(vec![self.definition(key, other)?]),
        }
    }

    fn string_map(&self, key: &str, v: &Value) -> Result<Vec<(String, String)>, ConfigError> {
        match v {
            Value::Object(map) => map
                .iter()
                .map(|(k, item)| Ok((k.clone(), self.string(&format!("{key}.{k}"), item)?)))
                .collect(),
            other => Err(self.type_error(key, "map[string]string", other)),
        }
    }
}

/// Go's `strconv.ParseBool` accepted spellings.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn go_type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::source::PortsSource;

    fn parse(text: &str) -> Loaded {
        parse_json("a.json", text).expect("valid config")
    }

    fn parse_err(text: &str) -> String {
        parse_json("a.json", text)
            .expect_err("invalid config")
            .to_string()
    }

    #[test]
    fn every_supported_key_is_read() {
        let l = parse(
            r#"{"node_name":"n1","node_id":"ID","datacenter":"DC2","data_dir":"/d","server":true,
            "bootstrap":false,"bootstrap_expect":3,"bind_addr":"10.0.0.1","client_addr":"0.0.0.0",
            "advertise_addr":"10.0.0.2","ports":{"http":18500,"dns":-1,"server":1,"serf_lan":2,
            "serf_wan":3,"https":4,"grpc":5,"grpc_tls":6},"recursors":["8.8.8.8"],"retry_join":["a"],
            "start_join":["b"],"enable_script_checks":true,"log_level":"debug","ui_config":{"enabled":true},
            "node_meta":{"rack":"r1"},"performance":{"raft_multiplier":5,"raft_election_timeout":"1s","raft_heartbeat_interval":"50ms"},"domain":"cairn",
            "retry_interval":"5s"}"#,
        );
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let s = l.source;
        assert_eq!(s.node_name.as_deref(), Some("n1"));
        assert_eq!(s.datacenter.as_deref(), Some("DC2"));
        assert_eq!(s.data_dir, Some(PathBuf::from("/d")));
        assert_eq!(s.server, Some(true));
        assert_eq!(s.bootstrap_expect, Some(3));
        assert_eq!(
            s.ports,
            PortsSource {
                http: Some(18500),
                https: Some(4),
                dns: Some(-1),
                server: Some(1),
                serf_lan: Some(2),
                serf_wan: Some(3),
                grpc: Some(5),
                grpc_tls: Some(6)
            }
        );
        assert_eq!(s.retry_join, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(s.ui, Some(true));
        assert_eq!(s.raft_multiplier, Some(5));
        assert_eq!(s.raft_election_timeout.as_deref(), Some("1s"));
        assert_eq!(s.raft_heartbeat_interval.as_deref(), Some("50ms"));
        assert_eq!(s.node_meta.get("rack").map(String::as_str), Some("r1"));
        assert_eq!(s.retry_interval.as_deref(), Some("5s"));
    }

    #[test]
    fn unknown_keys_warn_and_continue() {
        let l = parse(
            r#"{"server":true,"leave_on_terminat":true,"ports":{"sidecar_min_port":1},
            "gossip_lan":{"push_pull_interval":"1s"}}"#,
        );
        assert_eq!(l.source.server, Some(true));
        assert_eq!(
            l.warnings,
            vec![
                "config: unknown key \"gossip_lan.push_pull_interval\" in a.json was ignored"
                    .to_string(),
                "config: unknown key \"leave_on_terminat\" in a.json was ignored".to_string(),
                "config: unknown key \"ports.sidecar_min_port\" in a.json was ignored".to_string(),
            ]
        );
    }

    #[test]
    fn autopilot_keys_are_read() {
        let l = parse(
            r#"{"autopilot":{"cleanup_dead_servers":false,"last_contact_threshold":"300ms",
            "max_trailing_logs":50,"server_stabilization_time":"1s","upgrade_version_tag":"x"}}"#,
        );
        assert_eq!(
            l.warnings,
            vec![
                "config: unknown key \"autopilot.upgrade_version_tag\" in a.json was ignored"
                    .to_string()
            ]
        );
        let a = l.source.autopilot;
        assert_eq!(a.cleanup_dead_servers, Some(false));
        assert_eq!(a.last_contact_threshold.as_deref(), Some("300ms"));
        assert_eq!(a.max_trailing_logs, Some(50));
        assert_eq!(a.server_stabilization_time.as_deref(), Some("1s"));
    }

    #[test]
    fn gossip_keys_are_read() {
        use crate::config::GossipLanSource;
        let l = parse(
            r#"{"gossip_lan":{"gossip_nodes":4,"gossip_interval":"250ms","probe_interval":"2s",
            "probe_timeout":"750ms","retransmit_mult":5,"suspicion_mult":6},
            "reconnect_timeout":"9h","retry_max":3,"leave_on_terminate":true,
            "skip_leave_on_interrupt":false,"rejoin_after_leave":true}"#,
        );
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let s = l.source;
        assert_eq!(
            s.gossip_lan,
            GossipLanSource {
                gossip_nodes: Some(4),
                gossip_interval: Some("250ms".into()),
                probe_interval: Some("2s".into()),
                probe_timeout: Some("750ms".into()),
                retransmit_mult: Some(5),
                suspicion_mult: Some(6),
            }
        );
        assert_eq!(s.reconnect_timeout.as_deref(), Some("9h"));
        assert_eq!(s.retry_max, Some(3));
        assert_eq!(s.leave_on_terminate, Some(true));
        assert_eq!(s.skip_leave_on_interrupt, Some(false));
        assert_eq!(s.rejoin_after_leave, Some(true));
    }

    #[test]
    fn unsupported_gossip_keys_warn() {
        let l = parse(r#"{"serf_lan":"10.0.0.1","serf_lan_allowed_cidrs":["10.0.0.0/8"]}"#);
        assert_eq!(l.source, ConfigSource::default());
        assert_eq!(
            l.warnings,
            vec![
                "config: \"serf_lan\" in a.json is not supported and was ignored (gossip binds to bind_addr and accepts every source address)".to_string(),
                "config: \"serf_lan_allowed_cidrs\" in a.json is not supported and was ignored (gossip binds to bind_addr and accepts every source address)".to_string(),
            ]
        );
    }

    #[test]
    fn gossip_keys_of_the_wrong_type_are_consul_errors() {
        assert_eq!(
            parse_err(r#"{"gossip_lan":"fast"}"#),
            "Error parsing a.json: 'gossip_lan' expected type 'map[string]interface {}', got unconvertible type 'string', value: 'fast'"
        );
        assert_eq!(
            parse_err(r#"{"gossip_lan":{"gossip_nodes":"many"}}"#),
            "Error parsing a.json: 'gossip_lan.gossip_nodes' expected type 'int', got unconvertible type 'string', value: 'many'"
        );
        assert_eq!(
            parse_err(r#"{"gossip_lan":{"suspicion_mult":[4]}}"#),
            "Error parsing a.json: 'gossip_lan.suspicion_mult' expected type 'int', got unconvertible type '[]interface {}', value: '[4]'"
        );
        assert_eq!(
            parse_err(r#"{"gossip_lan":{"probe_interval":1000}}"#),
            "Error parsing a.json: 'gossip_lan.probe_interval' expected type 'string', got unconvertible type 'float64', value: '1000'"
        );
        assert_eq!(
            parse_err(r#"{"reconnect_timeout":72}"#),
            "Error parsing a.json: 'reconnect_timeout' expected type 'string', got unconvertible type 'float64', value: '72'"
        );
        assert_eq!(
            parse_err(r#"{"retry_max":"x"}"#),
            "Error parsing a.json: 'retry_max' expected type 'int', got unconvertible type 'string', value: 'x'"
        );
        assert_eq!(
            parse_err(r#"{"leave_on_terminate":"sure"}"#),
            "Error parsing a.json: 'leave_on_terminate' expected type 'bool', got unconvertible type 'string', value: 'sure'"
        );
        assert_eq!(
            parse_err(r#"{"skip_leave_on_interrupt":{}}"#),
            "Error parsing a.json: 'skip_leave_on_interrupt' expected type 'bool', got unconvertible type 'map[string]interface {}', value: '{}'"
        );
        assert_eq!(
            parse_err(r#"{"rejoin_after_leave":null}"#),
            "Error parsing a.json: 'rejoin_after_leave' expected type 'bool', got unconvertible type '<nil>', value: 'null'"
        );
    }

    #[test]
    fn services_and_checks_are_kept_as_written() {
        let l = parse(
            r#"{"services":[{"name":"web"},{"name":"db"}],"service":{"name":"x"},"check":{"id":"c"}}"#,
        );
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        assert_eq!(l.source.service_definitions.len(), 3);
        assert_eq!(l.source.check_definitions.len(), 1);
        assert_eq!(
            parse_err(r#"{"service":[1]}"#),
            "Error parsing a.json: 'service' expected type 'map[string]interface {}', got unconvertible type '[]interface {}', value: '[1]'"
        );
    }

    #[test]
    fn wrong_types_name_the_key_and_file() {
        assert_eq!(
            parse_err(r#"{"server":"yes"}"#),
            "Error parsing a.json: 'server' expected type 'bool', got unconvertible type 'string', value: 'yes'"
        );
        assert_eq!(
            parse_err(r#"{"ports":{"http":"abc"}}"#),
            "Error parsing a.json: 'ports.http' expected type 'int', got unconvertible type 'string', value: 'abc'"
        );
        assert_eq!(
            parse_err(r#"{"retry_join":[1,{}]}"#),
            "Error parsing a.json: 'retry_join[1]' expected type 'string', got unconvertible type 'map[string]interface {}', value: '{}'"
        );
        assert_eq!(
            parse_err(r#"{"ports":8500}"#),
            "Error parsing a.json: 'ports' expected type 'map[string]interface {}', got unconvertible type 'float64', value: '8500'"
        );
        assert_eq!(
            parse_err(r#"{"ports":{"http":99999999999}}"#),
            "Error parsing a.json: 'ports.http' value 99999999999 is out of range"
        );
        assert_eq!(
            parse_err("[1]"),
            "Error parsing a.json: config must be a JSON object"
        );
        assert!(parse_err("{").starts_with("Error parsing a.json: EOF while parsing"));
    }

    #[test]
    fn raft_log_cache_keys() {
        let s = parse(r#"{"raft_log_cache_mb":16,"raft_log_cache_entries":"5000"}"#).source;
        assert_eq!(s.raft_log_cache_mb, Some(16));
        assert_eq!(s.raft_log_cache_entries, Some(5000));
    }

    #[test]
    fn weak_types_are_converted_like_consul() {
        let s = parse(r#"{"server":"true","ports":{"http":"8501"},"recursors":"1.1.1.1","bootstrap_expect":3.0}"#).source;
        assert_eq!(s.server, Some(true));
        assert_eq!(s.ports.http, Some(8501));
        assert_eq!(s.recursors, vec!["1.1.1.1".to_string()]);
        assert_eq!(s.bootstrap_expect, Some(3));
    }

    #[test]
    fn dir_loads_json_alphabetically_and_merges() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join("b.json"),
            r#"{"node_name":"from-b","recursors":["2.2.2.2"]}"#,
        )
        .expect("write");
        std::fs::write(
            dir.path().join("a.json"),
            r#"{"node_name":"from-a","datacenter":"x","recursors":["1.1.1.1"]}"#,
        )
        .expect("write");
        std::fs::write(dir.path().join("c.txt"), "not json").expect("write");
        std::fs::write(dir.path().join("d.hcl"), "server = true").expect("write");
        let other_dir = tempfile::tempdir().expect("tempdir");
        let later = other_dir.path().join("z.json");
        std::fs::write(&later, r#"{"datacenter":"y"}"#).expect("write");
        let l = load_all(&[
            ConfigPath::Dir(dir.path().to_path_buf()),
            ConfigPath::File(later),
        ])
        .expect("loads");
        assert_eq!(l.source.node_name.as_deref(), Some("from-b"));
        assert_eq!(l.source.datacenter.as_deref(), Some("y"));
        assert_eq!(
            l.source.recursors,
            vec!["1.1.1.1".to_string(), "2.2.2.2".to_string()]
        );
    }

    #[test]
    fn missing_files_are_clear_errors() {
        let err = load_all(&[ConfigPath::File(PathBuf::from("/nonexistent/x.json"))])
            .expect_err("missing");
        assert!(
            err.to_string()
                .starts_with("Error reading config file /nonexistent/x.json:"),
            "{err}"
        );
        let err =
            load_all(&[ConfigPath::Dir(PathBuf::from("/nonexistent-dir"))]).expect_err("missing");
        assert!(
            err.to_string()
                .starts_with("Error reading config dir /nonexistent-dir:"),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn endless_files_are_refused_at_the_cap() {
        let err = load_file(Path::new("/dev/zero")).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "Error reading config file /dev/zero: file is larger than {MAX_CONFIG_FILE_BYTES} bytes"
            )
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let binary = dir.path().join("bin.json");
        std::fs::write(&binary, [0xff, 0xfe, b'{', b'}']).expect("write");
        assert!(load_file(&binary)
            .unwrap_err()
            .to_string()
            .ends_with("stream did not contain valid UTF-8"));
    }

    #[test]
    fn wrong_types_everywhere_and_deep_nesting_are_errors_not_panics() {
        use crate::config::build::{build, HostFacts};
        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};
        use serde_json::{json, Value};
        const KEYS: &[&str] = &[
            "node_name",
            "node_id",
            "datacenter",
            "server",
            "bootstrap",
            "bootstrap_expect",
            "bind_addr",
            "advertise_addr",
            "client_addr",
            "domain",
            "recursors",
            "recursor",
            "retry_join",
            "start_join",
            "retry_interval",
            "enable_script_checks",
            "log_level",
            "ui",
            "node_meta",
            "ports",
            "ui_config",
            "raft_snapshot_threshold",
            "raft_trailing_logs",
            "raft_log_cache_mb",
            "raft_log_cache_entries",
            "performance",
            "services",
            "bogus",
            "gossip_lan",
            "reconnect_timeout",
            "retry_max",
            "leave_on_terminate",
            "skip_leave_on_interrupt",
            "rejoin_after_leave",
            "serf_lan",
        ];
        const SUBKEYS: &[&str] = &[
            "http",
            "dns",
            "server",
            "serf_lan",
            "grpc",
            "enabled",
            "raft_multiplier",
            "gossip_nodes",
            "probe_interval",
            "suspicion_mult",
            "x",
        ];
        fn value(rng: &mut StdRng, depth: u32) -> Value {
            match rng.random_range(0..if depth == 0 { 7 } else { 9 }) {
                0 => Value::Null,
                1 => json!(rng.random::<bool>()),
                2 => json!(rng.random::<i64>()),
                3 => json!(rng.random::<f64>() * 1e20),
                4 => json!(["8.8.8.8", "1.2.3.4:53", "x"][rng.random_range(0..3)]),
                5 => json!(
                    ["", "true", "70000", "-1", "1e3", "consul", "::1", "100ms", "9h", "0s"]
                        [rng.random_range(0..10)]
                ),
                6 => json!(u64::MAX),
                7 => Value::Array(
                    (0..rng.random_range(0..3))
                        .map(|_| value(rng, depth - 1))
                        .collect(),
                ),
                _ => Value::Object(
                    (0..rng.random_range(0..4))
                        .map(|_| {
                            (
                                SUBKEYS[rng.random_range(0..SUBKEYS.len())].to_string(),
                                value(rng, depth - 1),
                            )
                        })
                        .collect(),
                ),
            }
        }
        let host = HostFacts {
            hostname: "box".into(),
            ipv4_addrs: vec![std::net::Ipv4Addr::new(10, 0, 0, 1)],
        };
        let mut rng = StdRng::seed_from_u64(0xc0f1);
        let mut built = 0;
        for _ in 0..3000 {
            let config: serde_json::Map<String, Value> = (0..rng.random_range(0..6))
                .map(|_| {
                    (
                        KEYS[rng.random_range(0..KEYS.len())].to_string(),
                        value(&mut rng, 2),
                    )
                })
                .collect();
            let text = Value::Object(config).to_string();
            let Ok(mut loaded) = parse_json("r.json", &text) else {
                continue;
            };
            // Dev mode: nothing is written to a data dir named by random input.
            loaded.source.dev = Some(true);
            loaded.source.bootstrap_expect = None;
            if build(loaded.source, &host).is_ok() {
                built += 1;
            }
        }
        assert!(built > 100, "{built}");
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_json("deep.json", &deep)
            .unwrap_err()
            .to_string()
            .contains("recursion limit exceeded"));
        let deep_object = format!(
            r#"{{"ports":{}1{}}}"#,
            r#"{"a":"#.repeat(5_000),
            "}".repeat(5_000)
        );
        assert!(parse_json("deep.json", &deep_object).is_err());
    }
}
