//! `cairn kv get [-recurse] [-keys [-separator=/]] [-detailed] [-base64] [KEY_OR_PREFIX]`.

use super::super::api_client::{self, ClientEnv, ParsedArgs};
use super::super::argv::{FlagKind, FlagSpec};
use super::super::columns::tabwrite;
use super::super::Output;
use base64::Engine as _;
use serde::Deserialize;
use std::io::Read;

const FLAGS: [FlagSpec; 5] = [
    FlagSpec {
        name: "base64",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Base64 encode the value. The default value is false.",
    },
    FlagSpec {
        name: "detailed",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Provide additional metadata about the key in addition to the value such as \
               the ModifyIndex and any flags that may have been set on the key. The default \
               value is false.",
    },
    FlagSpec {
        name: "keys",
        kind: FlagKind::Bool,
        value_name: "",
        help: "List keys which start with the given prefix, but not their values. This is \
               especially useful if you only need the key names themselves. This option is \
               commonly combined with the -separator option. The default value is false.",
    },
    FlagSpec {
        name: "recurse",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Recursively look at all keys prefixed with the given path. The default value \
               is false.",
    },
    FlagSpec {
        name: "separator",
        kind: FlagKind::Value,
        value_name: "<string>",
        help: "String to use as a separator between keys. The default value is \"/\", but \
               this option is only taken into account when paired with the -keys flag.",
    },
];

const HEAD: &str = "Usage: cairn kv get [options] [KEY_OR_PREFIX]\n\n  Retrieves the value from the key-value store at the given key name. If no\n  key exists with that name, an error is returned. If a key exists with that\n  name but has no data, nothing is returned. If the name or prefix is omitted,\n  it defaults to \"\" which is the root of the key-value store.";

/// One entry of a `/v1/kv` answer.
#[derive(Debug, Deserialize)]
pub(super) struct KvPair {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "CreateIndex", default)]
    pub create_index: u64,
    #[serde(rename = "ModifyIndex", default)]
    pub modify_index: u64,
    #[serde(rename = "LockIndex", default)]
    pub lock_index: u64,
    #[serde(rename = "Flags", default)]
    pub flags: u64,
    #[serde(rename = "Value", default)]
    pub value: Option<String>,
    #[serde(rename = "Session", default)]
    pub session: Option<String>,
}

impl KvPair {
    pub(super) fn value_bytes(&self) -> Vec<u8> {
        self.value
            .as_deref()
            .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
            .unwrap_or_default()
    }
}

pub fn run(args: &[String], env: &ClientEnv, _: &mut dyn Read, io: &mut Output<'_>) -> i32 {
    let parsed = match super::parse(args, &FLAGS, "kv get", HEAD, io) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let key = match super::optional_key(&parsed.args, io) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let (keys, recurse) = (parsed.bool("keys"), parsed.bool("recurse"));
    if key.is_empty() && !(recurse || keys) {
        let _ = writeln!(io.err, "Error! Missing KEY argument");
        return 1;
    }
    let client = match api_client::connect_or_exit(&parsed, env, io) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut params = api_client::server_params(&parsed);
    if keys {
        params.push("keys=".into());
        let separator = parsed.value("separator").unwrap_or("/");
        if !separator.is_empty() {
            params.push(format!("separator={}", api_client::escape(separator)));
        }
    } else if recurse {
        params.push("recurse=".into());
    }
    let path = api_client::with_query(&api_client::kv_path(key), &params);
    let reply = client.request("GET", &path, None, api_client::MAX_RESPONSE_BYTES);
    // The Go client reads a 404 as "nothing there", not as an error.
    let body = match reply.and_then(|r| match r.status {
        404 => Ok(None),
        _ => r.ok().map(Some),
    }) {
        Ok(body) => body,
        Err(e) => {
            let _ = writeln!(io.err, "Error querying Consul agent: {e}");
            return 1;
        }
    };
    match (keys, recurse) {
        (true, _) => print_keys(body.as_deref(), io),
        (false, true) => print_pairs(body.as_deref(), &parsed, io),
        (false, false) => print_one(body.as_deref(), key, &parsed, io),
    }
}

fn decode<T: serde::de::DeserializeOwned + Default>(
    body: Option<&[u8]>,
    io: &mut Output<'_>,
) -> Result<T, i32> {
    match body {
        None => Ok(T::default()),
        Some(bytes) => serde_json::from_slice(bytes).map_err(|e| {
            let _ = writeln!(io.err, "Error querying Consul agent: {e}");
            1
        }),
    }
}

fn print_keys(body: Option<&[u8]>, io: &mut Output<'_>) -> i32 {
    let keys: Vec<String> = match decode(body, io) {
        Ok(k) => k,
        Err(code) => return code,
    };
    for key in keys {
        let _ = writeln!(io.out, "{key}");
    }
    0
}

fn print_pairs(body: Option<&[u8]>, parsed: &ParsedArgs, io: &mut Output<'_>) -> i32 {
    let pairs: Vec<KvPair> = match decode(body, io) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let base64 = parsed.bool("base64");
    for (i, pair) in pairs.iter().enumerate() {
        if parsed.bool("detailed") {
            let _ = writeln!(io.out, "{}", detailed(pair, base64));
            if i + 1 < pairs.len() {
                let _ = writeln!(io.out);
            }
        } else {
            let _ = write!(io.out, "{}:", pair.key);
            let _ = io.out.write_all(&shown_value(pair, base64));
            let _ = writeln!(io.out);
        }
    }
    0
}

fn print_one(body: Option<&[u8]>, key: &str, parsed: &ParsedArgs, io: &mut Output<'_>) -> i32 {
    let pairs: Vec<KvPair> = match decode(body, io) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let Some(pair) = pairs.first() else {
        let _ = writeln!(io.err, "Error! No key exists at: {key}");
        return 1;
    };
    if parsed.bool("detailed") {
        let _ = writeln!(io.out, "{}", detailed(pair, parsed.bool("base64")));
    } else {
        // The raw value, whatever its bytes (Consul prints it unencoded).
        let _ = io.out.write_all(&pair.value_bytes());
        let _ = writeln!(io.out);
    }
    0
}

fn shown_value(pair: &KvPair, base64: bool) -> Vec<u8> {
    let value = pair.value_bytes();
    if base64 {
        base64::engine::general_purpose::STANDARD
            .encode(&value)
            .into_bytes()
    } else {
        value
    }
}

/// Consul's `prettyKVPair`: a two-column table, the value last and unpadded.
pub(super) fn detailed(pair: &KvPair, base64: bool) -> String {
    let session = pair
        .session
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("-");
    let value = String::from_utf8_lossy(&shown_value(pair, base64)).into_owned();
    let text = format!(
        "CreateIndex\t{}\nFlags\t{}\nKey\t{}\nLockIndex\t{}\nModifyIndex\t{}\nSession\t{session}\nValue\t{value}",
        pair.create_index, pair.flags, pair.key, pair.lock_index, pair.modify_index
    );
    tabwrite(&text, 0, 6)
}
