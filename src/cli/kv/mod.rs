//! `cairn kv get|put|delete|export|import`: Consul's KV commands, thin clients of the
//! agent's `/v1/kv/` API with Consul's flags, output texts and exit codes.
//!
//! Deviation, on purpose: `kv put -base64` with data that is not base64 fails (exit 1)
//! where Consul prints the error and then writes an empty value.

mod delete;
mod get;
mod impexp;
mod put;

use super::api_client::{self, ClientEnv, ParsedArgs};
use super::argv::{FlagKind, FlagSpec};
use super::Output;
use std::io::Read;

/// Largest value read from a file or stdin for `kv put` / `kv import` (the agent keeps
/// values to 512 KiB; an import file holds many).
pub const MAX_DATA_SOURCE_BYTES: u64 = 64 * 1024 * 1024;

/// One `kv` subcommand: name, synopsis, entry point.
struct KvCommand {
    name: &'static str,
    synopsis: &'static str,
    run: fn(&[String], &ClientEnv, &mut dyn Read, &mut Output<'_>) -> i32,
}

const COMMANDS: &[KvCommand] = &[
    KvCommand {
        name: "delete",
        synopsis: "Removes data from the KV store",
        run: delete::run,
    },
    KvCommand {
        name: "export",
        synopsis: "Exports a tree from the KV store as JSON",
        run: impexp::run_export,
    },
    KvCommand {
        name: "get",
        synopsis: "Retrieves or lists data from the KV store",
        run: get::run,
    },
    KvCommand {
        name: "import",
        synopsis: "Imports a tree stored as JSON to the KV store",
        run: impexp::run_import,
    },
    KvCommand {
        name: "put",
        synopsis: "Sets or updates data in the KV store",
        run: put::run,
    },
];

pub fn usage() -> String {
    let mut text = String::from(
        "Usage: cairn kv <subcommand> [options] [args]\n\n  This command has subcommands for interacting with the KV store.\n\nSubcommands:\n",
    );
    for c in COMMANDS {
        text.push_str(&format!("    {:<10}{}\n", c.name, c.synopsis));
    }
    text
}

pub fn run(args: &[String], io: &mut Output<'_>) -> i32 {
    let stdin = std::io::stdin();
    run_with(args, &ClientEnv::from_process(), &mut stdin.lock(), io)
}

/// `run` with the environment and stdin given (tests).
pub fn run_with(
    args: &[String],
    env: &ClientEnv,
    stdin: &mut dyn Read,
    io: &mut Output<'_>,
) -> i32 {
    let Some((name, rest)) = args.split_first() else {
        let _ = write!(io.err, "{}", usage());
        return 1;
    };
    match COMMANDS.iter().find(|c| c.name == name) {
        Some(c) => (c.run)(rest, env, stdin, io),
        None if matches!(name.as_str(), "-h" | "-help" | "--help") => {
            let _ = write!(io.out, "{}", usage());
            0
        }
        None => {
            let _ = write!(io.err, "{}", usage());
            1
        }
    }
}

/// Parse a subcommand's flags (its own, the HTTP client's, the server's).
fn parse(
    args: &[String],
    own: &[FlagSpec],
    command: &str,
    head: &str,
    io: &mut Output<'_>,
) -> Result<ParsedArgs, i32> {
    let specs = api_client::with_http_and_server_flags(own);
    let usage = api_client::usage(head, &specs);
    api_client::parse_or_exit(args, &specs, command, &usage, io)
}

/// A flag's value as Go's `Uint64Var` parses it (0 when absent).
fn uint_flag(parsed: &ParsedArgs, name: &str, io: &mut Output<'_>) -> Result<u64, i32> {
    match parsed.value(name) {
        None => Ok(0),
        Some(v) => v.parse().map_err(|_| {
            let _ = writeln!(io.err, "invalid value {v:?} for flag -{name}: parse error");
            1
        }),
    }
}

/// Consul's `LoadDataSource`: `@file` reads the file, `-` reads stdin, anything else
/// (also `-x`) is the data itself; empty is empty.
fn load_data_source(data: &str, stdin: &mut dyn Read) -> Result<Vec<u8>, String> {
    if let Some(path) = data.strip_prefix('@') {
        let file = std::fs::File::open(path)
            .map_err(|e| format!("Failed to read file: {}", go_io_error("open", path, &e)))?;
        return read_bounded(file).map_err(|e| format!("Failed to read file: {e}"));
    }
    if data == "-" {
        return read_bounded(stdin).map_err(|e| format!("Failed to read stdin: {e}"));
    }
    Ok(data.as_bytes().to_vec())
}

fn read_bounded(input: impl Read) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::new();
    input
        .take(MAX_DATA_SOURCE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_DATA_SOURCE_BYTES {
        return Err(format!("more than {MAX_DATA_SOURCE_BYTES} bytes"));
    }
    Ok(bytes)
}

/// Go's `*PathError` text: `open x.json: no such file or directory`.
pub fn go_io_error(op: &str, path: &str, e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let detail = match e.kind() {
        ErrorKind::NotFound => "no such file or directory".to_string(),
        ErrorKind::PermissionDenied => "permission denied".to_string(),
        ErrorKind::IsADirectory => "is a directory".to_string(),
        _ => e.to_string(),
    };
    format!("{op} {path}: {detail}")
}

/// `-cas`, shared by `kv put` and `kv delete` (Consul's text).
const CAS_FLAG: FlagSpec = FlagSpec {
    name: "cas",
    kind: FlagKind::Bool,
    value_name: "",
    help: "Perform a Check-And-Set operation. Specifying this value also requires the \
           -modify-index flag to be set. The default value is false.",
};

/// `-modify-index`, shared by `kv put` and `kv delete` (Consul's text).
const MODIFY_INDEX_FLAG: FlagSpec = FlagSpec {
    name: "modify-index",
    kind: FlagKind::Value,
    value_name: "<uint>",
    help: "Unsigned integer representing the ModifyIndex of the key. This is used in \
           combination with the -cas flag.",
};

/// The one optional KEY (or PREFIX) argument of `kv get`, `kv delete` and `kv export`,
/// without its leading `/`; "" when absent. More than one is Consul's usage error (the
/// caller exits 1).
fn optional_key<'a>(args: &'a [String], io: &mut Output<'_>) -> Result<&'a str, i32> {
    match args {
        [] => Ok(""),
        [key] => Ok(trim_key(key)),
        more => {
            let _ = writeln!(
                io.err,
                "Too many arguments (expected 1, got {})",
                more.len()
            );
            Err(1)
        }
    }
}

/// Drop one leading `/` (Consul's "nice thing to do": keys never start with one).
fn trim_key(key: &str) -> &str {
    key.strip_prefix('/').unwrap_or(key)
}

#[cfg(test)]
mod tests;
