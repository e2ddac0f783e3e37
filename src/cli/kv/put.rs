//! `cairn kv put [-cas -modify-index=N] [-flags=N] [-base64] [-acquire|-release -session=ID]
//! KEY [DATA | @file | -]`.

use super::super::api_client::{self, ClientEnv};
use super::super::argv::{FlagKind, FlagSpec};
use super::super::Output;
use base64::Engine as _;
use std::io::Read;

const FLAGS: [FlagSpec; 7] = [
    super::CAS_FLAG,
    FlagSpec {
        name: "flags",
        kind: FlagKind::Value,
        value_name: "<uint>",
        help: "Unsigned integer value to assign to this key-value pair. This value is not \
               read by Consul, so clients can use this value however makes sense for their \
               use case. The default value is 0 (no flags).",
    },
    FlagSpec {
        name: "base64",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Treat the data as base 64 encoded. The default value is false.",
    },
    super::MODIFY_INDEX_FLAG,
    FlagSpec {
        name: "session",
        kind: FlagKind::Value,
        value_name: "<string>",
        help: "User-defined identifer for this session as a string. This is commonly used \
               with the -acquire and -release operations to build robust locking, but it can \
               be set on any key. The default value is empty (no session).",
    },
    FlagSpec {
        name: "acquire",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Obtain a lock on the key. If the key does not exist, this operation will \
               create the key and obtain the lock. The session must already exist and be \
               specified via the -session flag. The default value is false.",
    },
    FlagSpec {
        name: "release",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Forfeit the lock on the key at the given path. This requires the -session \
               flag to be set. The key must be held by the session in order to be unlocked. \
               The default value is false.",
    },
];

const HEAD: &str = "Usage: cairn kv put [options] KEY [DATA]\n\n  Writes the data to the given path in the key-value store. The data can be of\n  any type. It can be read from a file with \"@\" (kv put key @file) or from\n  stdin with \"-\" (echo data | kv put key -). Without DATA an empty value is\n  written. -cas -modify-index=N writes only if the key's ModifyIndex is N\n  (0: only if the key does not exist).";

pub fn run(args: &[String], env: &ClientEnv, stdin: &mut dyn Read, io: &mut Output<'_>) -> i32 {
    let parsed = match super::parse(args, &FLAGS, "kv put", HEAD, io) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let (flags, modify_index) = match (
        super::uint_flag(&parsed, "flags", io),
        super::uint_flag(&parsed, "modify-index", io),
    ) {
        (Ok(f), Ok(m)) => (f, m),
        _ => return 1,
    };
    let (key, data) = match parsed.args.as_slice() {
        [] => {
            let _ = writeln!(io.err, "Error! Missing KEY argument");
            return 1;
        }
        [key] => (key.as_str(), Vec::new()),
        [key, data] => match super::load_data_source(data, stdin) {
            Ok(bytes) => (key.as_str(), bytes),
            Err(e) => {
                let _ = writeln!(io.err, "Error! {e}");
                return 1;
            }
        },
        more => {
            let _ = writeln!(
                io.err,
                "Error! Too many arguments (expected 1 or 2, got {})",
                more.len()
            );
            return 1;
        }
    };
    let value = if parsed.bool("base64") {
        match base64::engine::general_purpose::STANDARD.decode(&data) {
            Ok(v) => v,
            Err(e) => {
                let _ = writeln!(io.err, "Error! Cannot base 64 decode data: {e}");
                return 1;
            }
        }
    } else {
        data
    };
    let session = parsed.value("session").unwrap_or("");
    let (acquire, release) = (parsed.bool("acquire"), parsed.bool("release"));
    if (acquire || release) && session.is_empty() {
        let _ = writeln!(
            io.err,
            "Error! Missing -session (required with -acquire and -release)"
        );
        return 1;
    }
    let client = match api_client::connect_or_exit(&parsed, env, io) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut params = Vec::new();
    if flags != 0 {
        params.push(format!("flags={flags}"));
    }
    let cas = parsed.bool("cas");
    if cas {
        params.push(format!("cas={modify_index}"));
    } else if acquire {
        params.push(format!("acquire={}", api_client::escape(session)));
    } else if release {
        params.push(format!("release={}", api_client::escape(session)));
    }
    if let Some(dc) = parsed.value("datacenter").filter(|d| !d.is_empty()) {
        params.push(format!("dc={}", api_client::escape(dc)));
    }
    let path = api_client::with_query(&api_client::kv_path(key), &params);
    let result = client
        .request("PUT", &path, Some(&value), api_client::MAX_RESPONSE_BYTES)
        .and_then(|r| r.ok_bool());
    let (ok_text, failed) = match (cas, acquire, release) {
        (true, _, _) => match result {
            Ok(true) => (format!("Success! Data written to: {key}"), None),
            Ok(false) if modify_index == 0 => (
                String::new(),
                Some(format!(
                "Error! Did not write to {key}: CAS performed with index=0 and key already exists."
            )),
            ),
            Ok(false) => (
                String::new(),
                Some(format!("Error! Did not write to {key}: CAS failed")),
            ),
            Err(e) => (
                String::new(),
                Some(format!("Error! Did not write to {key}: {e}")),
            ),
        },
        (_, true, _) => match result {
            Ok(true) => (format!("Success! Lock acquired on: {key}"), None),
            Ok(false) => (String::new(), Some("Error! Did not acquire lock".into())),
            Err(e) => (
                String::new(),
                Some(format!("Error! Failed writing data: {e}")),
            ),
        },
        (_, _, true) => match result {
            Ok(true) => (format!("Success! Lock released on: {key}"), None),
            Ok(false) => (String::new(), Some("Error! Did not release lock".into())),
            // Consul prints the key here, not the error.
            Err(_) => (
                String::new(),
                Some(format!("Error! Failed writing data: {key}")),
            ),
        },
        _ => match result {
            Ok(_) => (format!("Success! Data written to: {key}"), None),
            Err(e) => (
                String::new(),
                Some(format!("Error! Failed writing data: {e}")),
            ),
        },
    };
    match failed {
        Some(text) => {
            let _ = writeln!(io.err, "{text}");
            1
        }
        None => {
            let _ = writeln!(io.out, "{ok_text}");
            0
        }
    }
}
