//! `cairn kv delete [-recurse] [-cas -modify-index=N] KEY_OR_PREFIX`.

use super::super::api_client::{self, ClientEnv};
use super::super::argv::{FlagKind, FlagSpec};
use super::super::Output;
use std::io::Read;

const FLAGS: [FlagSpec; 3] = [
    super::CAS_FLAG,
    super::MODIFY_INDEX_FLAG,
    FlagSpec {
        name: "recurse",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Recursively delete all keys with the path. The default value is false.",
    },
];

const HEAD: &str = "Usage: cairn kv delete [options] KEY_OR_PREFIX\n\n  Removes the value from the key-value store at the given path. If no key\n  exists at the path, no action is taken. With -recurse every key that starts\n  with the path is deleted.";

pub fn run(args: &[String], env: &ClientEnv, _: &mut dyn Read, io: &mut Output<'_>) -> i32 {
    let parsed = match super::parse(args, &FLAGS, "kv delete", HEAD, io) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let Ok(modify_index) = super::uint_flag(&parsed, "modify-index", io) else {
        return 1;
    };
    let key = match super::optional_key(&parsed.args, io) {
        Ok(k) => k,
        Err(code) => return code,
    };
    let (cas, recurse) = (parsed.bool("cas"), parsed.bool("recurse"));
    let refusal = if key.is_empty() && !recurse {
        Some("Error! Missing KEY argument")
    } else if cas && modify_index == 0 {
        Some(
            "Cannot delete a key that does not exist. Provide a -modify-index greater than than 0.",
        )
    } else if modify_index != 0 && !cas {
        Some("Cannot specify -modify-index without -cas!")
    } else if recurse && cas {
        Some("Cannot specify both -cas and -recurse!")
    } else {
        None
    };
    if let Some(text) = refusal {
        let _ = writeln!(io.err, "{text}");
        return 1;
    }
    let client = match api_client::connect_or_exit(&parsed, env, io) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let mut params = Vec::new();
    if recurse {
        params.push("recurse=".to_string());
    } else if cas {
        params.push(format!("cas={modify_index}"));
    }
    if let Some(dc) = parsed.value("datacenter").filter(|d| !d.is_empty()) {
        params.push(format!("dc={}", api_client::escape(dc)));
    }
    let path = api_client::with_query(&api_client::kv_path(key), &params);
    let result = client
        .request("DELETE", &path, None, api_client::MAX_RESPONSE_BYTES)
        .and_then(|r| r.ok_bool());
    let outcome = match (recurse, cas, result) {
        (true, _, Ok(_)) => Ok(format!("Success! Deleted keys with prefix: {key}")),
        (true, _, Err(e)) => Err(format!("Error! Did not delete prefix {key}: {e}")),
        (_, true, Ok(true)) => Ok(format!("Success! Deleted key: {key}")),
        (_, true, Ok(false)) => Err(format!("Error! Did not delete key {key}: CAS failed")),
        (_, true, Err(e)) => Err(format!("Error! Did not delete key {key}: {e}")),
        (_, _, Ok(_)) => Ok(format!("Success! Deleted key: {key}")),
        (_, _, Err(e)) => Err(format!("Error deleting key {key}: {e}")),
    };
    match outcome {
        Ok(text) => {
            let _ = writeln!(io.out, "{text}");
            0
        }
        Err(text) => {
            let _ = writeln!(io.err, "{text}");
            1
        }
    }
}
