//! What the HTTP-client commands (`members`, `join`, `leave`, `force-leave` ...) share:
//! Consul's client flags and environment (`-http-addr`, `CONSUL_HTTP_ADDR`, `-token`,
//! `CONSUL_HTTP_TOKEN`), a small blocking HTTP client, flag parsing and usage text, and
//! error texts as Consul's Go API client words them, so scripts that read
//! `consul members` output read cairn's too.

use super::argv::{self, ArgvError, FlagKind, FlagSpec, Prepared};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};
use std::time::Duration;

/// Where the agent's HTTP API is when neither the flag nor the environment says.
pub const DEFAULT_HTTP_ADDR: &str = "127.0.0.1:8500";
pub const HTTP_ADDR_ENV: &str = "CONSUL_HTTP_ADDR";
pub const TOKEN_ENV: &str = "CONSUL_HTTP_TOKEN";
/// A connection that takes longer than this fails (an agent that is down, a wrong address).
pub const CONNECT_TIMEOUT_SECS: u64 = 10;
/// No request waits longer than this for its answer (a join may take a while: it contacts
/// other agents before answering).
pub const REQUEST_TIMEOUT_SECS: u64 = 120;
/// Largest answer read (a members list of thousands of agents is well under this).
pub const MAX_RESPONSE_BYTES: u64 = 64 * 1024 * 1024;

/// The flags every HTTP-client command takes.
pub const HTTP_FLAGS: [FlagSpec; 2] = [
    FlagSpec {
        name: "http-addr",
        kind: FlagKind::Value,
        value_name: "<address>",
        help: "The agent's HTTP API address, host:port with an optional http:// \
               prefix. Also CONSUL_HTTP_ADDR (default 127.0.0.1:8500).",
    },
    FlagSpec {
        name: "token",
        kind: FlagKind::Value,
        value_name: "<value>",
        help: "ACL token sent with the request. Also CONSUL_HTTP_TOKEN.",
    },
];

/// Consul's server flags (`flags.ServerFlags`): which datacenter, and whether any server
/// may answer a read.
pub const SERVER_FLAGS: [FlagSpec; 2] = [
    FlagSpec {
        name: "datacenter",
        kind: FlagKind::Value,
        value_name: "<value>",
        help: "Name of the datacenter to query. If unspecified, this will default to \
               the datacenter of the queried agent.",
    },
    FlagSpec {
        name: "stale",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Permit any Consul server (non-leader) to respond to this request. This \
               allows for lower latency and higher throughput, but can result in stale \
               data. This option has no effect on non-read operations. The default value \
               is false.",
    },
];

/// The client settings from the environment (read once, by `run`; tests pass their own).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientEnv {
    pub http_addr: Option<String>,
    pub token: Option<String>,
}

impl ClientEnv {
    pub fn from_process() -> ClientEnv {
        let var = |name| std::env::var(name).ok().filter(|v: &String| !v.is_empty());
        ClientEnv {
            http_addr: var(HTTP_ADDR_ENV),
            token: var(TOKEN_ENV),
        }
    }
}

/// A command's parsed flags: `(name, value)` in command-line order, then the arguments.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ParsedArgs {
    pub flags: Vec<(String, String)>,
    pub args: Vec<String>,
}

impl ParsedArgs {
    /// The last value of a flag (Go's flag package keeps the last).
    pub fn value(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn bool(&self, name: &str) -> bool {
        self.value(name) == Some("true")
    }
}

/// Parse `args` against `specs` (Go-style flags, stopping at the first argument);
/// `Ok(None)` when help was asked for.
pub fn parse_args(args: &[String], specs: &[FlagSpec]) -> Result<Option<ParsedArgs>, ArgvError> {
    match argv::prepare(args, specs)? {
        Prepared::Help => Ok(None),
        Prepared::Args { flags, extra } => {
            // The pre-pass wrote every flag as `--name=value`.
            let flags = flags
                .iter()
                .filter_map(|f| f.strip_prefix("--")?.split_once('='))
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect();
            Ok(Some(ParsedArgs { flags, args: extra }))
        }
    }
}

/// A command's own flags followed by the HTTP client flags.
pub fn with_http_flags(own: &[FlagSpec]) -> Vec<FlagSpec> {
    own.iter().chain(HTTP_FLAGS.iter()).copied().collect()
}

/// A command's own flags, then the HTTP client flags, then the server flags.
pub fn with_http_and_server_flags(own: &[FlagSpec]) -> Vec<FlagSpec> {
    own.iter()
        .chain(HTTP_FLAGS.iter())
        .chain(SERVER_FLAGS.iter())
        .copied()
        .collect()
}

/// The query parameters the server flags add (`dc=`, `stale`), each ready to follow a
/// `?` or `&`.
pub fn server_params(parsed: &ParsedArgs) -> Vec<String> {
    let mut params = Vec::new();
    if let Some(dc) = parsed.value("datacenter").filter(|d| !d.is_empty()) {
        params.push(format!("dc={}", escape(dc)));
    }
    if parsed.bool("stale") {
        params.push("stale=".to_string());
    }
    params
}

/// `path` with `params` as its query (none: no `?`).
pub fn with_query(path: &str, params: &[String]) -> String {
    if params.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", params.join("&"))
    }
}

/// A KV key as a URL path under `/v1/kv/`: each segment escaped, the slashes kept, a
/// leading slash dropped (as Consul's Go client does).
pub fn kv_path(key: &str) -> String {
    let key = key.strip_prefix('/').unwrap_or(key);
    let segments: Vec<String> = key.split('/').map(escape).collect();
    format!("/v1/kv/{}", segments.join("/"))
}

/// [`parse_args`] for a command: `-h` prints `usage` (exit 0), a flag error prints
/// itself and the command's hint (exit 1). `Err` carries the exit code.
pub fn parse_or_exit(
    args: &[String],
    specs: &[FlagSpec],
    command: &str,
    usage: &str,
    io: &mut super::Output<'_>,
) -> Result<ParsedArgs, i32> {
    match parse_args(args, specs) {
        Ok(Some(parsed)) => Ok(parsed),
        Ok(None) => {
            let _ = write!(io.out, "{usage}");
            Err(0)
        }
        Err(e) => {
            let _ = writeln!(
                io.err,
                "{e}\nRun 'cairn {command} -h' for the list of flags."
            );
            Err(1)
        }
    }
}

/// [`ApiClient::new`], printing Consul's error on failure (`Err(1)`: the exit code).
pub fn connect_or_exit(
    parsed: &ParsedArgs,
    env: &ClientEnv,
    io: &mut super::Output<'_>,
) -> Result<ApiClient, i32> {
    ApiClient::new(parsed, env).map_err(|e| {
        let _ = writeln!(io.err, "Error connecting to Consul agent: {e}");
        1
    })
}

/// `<head>` then every flag with its help, in the agent's usage format.
pub fn usage(head: &str, specs: &[FlagSpec]) -> String {
    let mut out = format!("{head}\n\nOptions:\n");
    for spec in specs {
        let line = match spec.kind {
            FlagKind::Bool => format!("  -{}", spec.name),
            _ => format!("  -{}={}", spec.name, spec.value_name),
        };
        out.push_str(&format!("\n{line}\n     {}\n", spec.help));
    }
    out
}

/// Characters escaped in a path segment (a node name or an address).
const SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b']')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// Escape one path segment or query value.
pub fn escape(s: &str) -> String {
    utf8_percent_encode(s, SEGMENT)
        .to_string()
        .replace('&', "%26")
        .replace('+', "%2B")
        .replace('=', "%3D")
}

/// A blocking client of one agent's HTTP API.
pub struct ApiClient {
    /// `http://host:port`, no trailing slash.
    base: String,
    /// `host:port`, for error texts.
    host_port: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl ApiClient {
    /// The agent address from `-http-addr`, else `CONSUL_HTTP_ADDR`, else the default;
    /// `http://` is optional. Err is the text after "Error connecting to Consul agent: ".
    pub fn new(flags: &ParsedArgs, env: &ClientEnv) -> Result<ApiClient, String> {
        let addr = flags
            .value("http-addr")
            .filter(|a| !a.is_empty())
            .or(env.http_addr.as_deref())
            .unwrap_or(DEFAULT_HTTP_ADDR);
        let host_port = match addr.split_once("://") {
            None => addr,
            Some(("http", rest)) => rest,
            Some(("https" | "unix", _)) => {
                return Err(format!(
                    "{addr}: only plain http:// agent addresses are supported by this version"
                ))
            }
            Some((scheme, _)) => return Err(format!("Unknown protocol scheme: {scheme}")),
        }
        .trim_end_matches('/')
        .to_string();
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .timeout_connect(Some(Duration::from_secs(CONNECT_TIMEOUT_SECS)))
            .timeout_global(Some(Duration::from_secs(REQUEST_TIMEOUT_SECS)))
            .build();
        let token = flags
            .value("token")
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .or_else(|| env.token.clone());
        Ok(ApiClient {
            base: format!("http://{host_port}"),
            host_port,
            token,
            agent: config.into(),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// GET `path` (with its query); the body of a 200 answer.
    pub fn get(&self, path: &str) -> Result<String, String> {
        self.send("GET", path)
    }

    /// PUT `path` with an empty body; the body of a 200 answer.
    pub fn put(&self, path: &str) -> Result<String, String> {
        self.send("PUT", path)
    }

    /// Any request, with an optional body: the status, the X-Consul-Index header and the
    /// body (at most `max_body` bytes). Only transport failures are `Err` (Go's text).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        body: Option<&[u8]>,
        max_body: u64,
    ) -> Result<Reply, String> {
        let url = format!("{}{path}", self.base);
        let token = self.token.as_deref();
        let result = match method {
            "PUT" => with_token(self.agent.put(&url), token).send(body.unwrap_or_default()),
            "DELETE" => with_token(self.agent.delete(&url), token).call(),
            _ => with_token(self.agent.get(&url), token).call(),
        }
        .map_err(|e| self.transport_error(method, &url, e));
        let mut resp = result?;
        let status = resp.status().as_u16();
        let index = resp
            .headers()
            .get("X-Consul-Index")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok());
        let body = resp
            .body_mut()
            .with_config()
            .limit(max_body)
            .read_to_vec()
            .map_err(|e| self.transport_error(method, &url, e))?;
        Ok(Reply {
            status,
            index,
            body,
        })
    }

    /// DELETE `path`; the body of a 200 answer.
    pub fn delete(&self, path: &str) -> Result<String, String> {
        self.send("DELETE", path)
    }

    /// `method` on `path`: the body of a 200 answer, else Consul's "Unexpected response
    /// code" text.
    fn send(&self, method: &str, path: &str) -> Result<String, String> {
        let reply = self.request(method, path, None, MAX_RESPONSE_BYTES)?;
        let body = String::from_utf8_lossy(&reply.body).into_owned();
        if reply.status == 200 {
            Ok(body)
        } else {
            Err(unexpected_status(reply.status, &body))
        }
    }

    /// Go's `url.Error` text: `Get "http://…": dial tcp …: connect: connection refused`.
    fn transport_error(&self, method: &str, url: &str, e: ureq::Error) -> String {
        let op = format!("{}{}", &method[..1], method[1..].to_lowercase());
        let detail = match &e {
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                format!("dial tcp {}: connect: connection refused", self.host_port)
            }
            ureq::Error::HostNotFound => {
                let host = self
                    .host_port
                    .rsplit_once(':')
                    .map_or(self.host_port.as_str(), |(h, _)| h);
                format!("dial tcp: lookup {host}: no such host")
            }
            other => other.to_string(),
        };
        format!("{op} \"{url}\": {detail}")
    }
}

fn with_token<B>(req: ureq::RequestBuilder<B>, token: Option<&str>) -> ureq::RequestBuilder<B> {
    match token {
        Some(token) => req.header("X-Consul-Token", token),
        None => req,
    }
}

/// What [`ApiClient::request`] got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// `X-Consul-Index`, when the answer carried one.
    pub index: Option<u64>,
    pub body: Vec<u8>,
}

impl Reply {
    /// The body of a 200, else Go's "Unexpected response code" error.
    pub fn ok(self) -> Result<Vec<u8>, String> {
        match self.status {
            200 => Ok(self.body),
            status => Err(unexpected_status(
                status,
                &String::from_utf8_lossy(&self.body),
            )),
        }
    }

    /// A 200's `true`/`false` body (CAS writes and deletes).
    pub fn ok_bool(self) -> Result<bool, String> {
        let body = self.ok()?;
        Ok(String::from_utf8_lossy(&body).trim() == "true")
    }
}

/// Consul's API client text for a non-200 answer.
pub fn unexpected_status(status: u16, body: &str) -> String {
    format!("Unexpected response code: {status} ({})", body.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flags(list: &[&str]) -> ParsedArgs {
        let args: Vec<String> = list.iter().map(|s| s.to_string()).collect();
        parse_args(&args, &HTTP_FLAGS)
            .expect("parses")
            .expect("not help")
    }

    fn env(addr: Option<&str>) -> ClientEnv {
        ClientEnv {
            http_addr: addr.map(str::to_string),
            token: None,
        }
    }

    #[test]
    fn address_from_flag_then_env_then_default() {
        let base = |f: &[&str], e: Option<&str>| {
            ApiClient::new(&flags(f), &env(e)).map(|c| c.base_url().to_string())
        };
        assert_eq!(base(&[], None), Ok("http://127.0.0.1:8500".into()));
        assert_eq!(
            base(&[], Some("10.0.0.1:8500")),
            Ok("http://10.0.0.1:8500".into())
        );
        assert_eq!(
            base(&[], Some("http://10.0.0.1:8500/")),
            Ok("http://10.0.0.1:8500".into())
        );
        assert_eq!(
            base(
                &["-http-addr", "127.0.0.130:8500"],
                Some("http://10.0.0.1:8500")
            ),
            Ok("http://127.0.0.130:8500".into())
        );
        assert_eq!(
            base(&["--http-addr=http://[::1]:8500"], None),
            Ok("http://[::1]:8500".into())
        );
        assert_eq!(
            base(&[], Some("ftp://x:1")).err(),
            Some("Unknown protocol scheme: ftp".into())
        );
        assert!(base(&[], Some("https://x:8501"))
            .expect_err("no TLS")
            .contains("only plain http://"));
    }

    #[test]
    fn token_from_flag_or_env() {
        let e = ClientEnv {
            http_addr: None,
            token: Some("env-token".into()),
        };
        let c = ApiClient::new(&flags(&[]), &e).expect("client");
        assert_eq!(c.token.as_deref(), Some("env-token"));
        let c = ApiClient::new(&flags(&["-token=flag"]), &e).expect("client");
        assert_eq!(c.token.as_deref(), Some("flag"));
    }

    #[test]
    fn errors_read_like_the_go_client() {
        assert_eq!(
            unexpected_status(500, "agent: No node found with name 'x'\n"),
            "Unexpected response code: 500 (agent: No node found with name 'x')"
        );
        // Nothing listens on port 1 of this loopback address.
        let c = ApiClient::new(&flags(&["-http-addr=127.0.0.139:1"]), &env(None)).expect("client");
        assert_eq!(
            c.get("/v1/agent/members").expect_err("refused"),
            "Get \"http://127.0.0.139:1/v1/agent/members\": dial tcp 127.0.0.139:1: connect: connection refused"
        );
    }

    #[test]
    fn escaping_and_flag_values() {
        assert_eq!(escape("[::1]:8301"), "%5B::1%5D:8301");
        assert_eq!(escape("a b/c?d&e"), "a%20b%2Fc%3Fd%26e");
        let p = flags(&["-http-addr=a", "-http-addr", "b", "rest", "-x"]);
        assert_eq!(p.value("http-addr"), Some("b"));
        assert_eq!(p.args, ["rest", "-x"]);
        assert!(!p.bool("wan"));
    }
}
