//! `cairn snapshot save|restore|inspect`: Consul's snapshot commands. `save` and
//! `restore` are clients of the agent's `/v1/snapshot`; `inspect` reads a file offline.
//! Archives are Consul's format (`crate::snapshot_archive`).

mod inspect;

use super::api_client::{self, ClientEnv, ParsedArgs};
use super::argv::{FlagKind, FlagSpec};
use super::kv::go_io_error;
use super::Output;
use crate::snapshot_archive::read_archive;
use std::io::Write as _;

/// Largest archive the commands read or write (the agent's own limits are lower: a
/// restore carries at most one Raft entry of state).
pub const MAX_ARCHIVE_BYTES: u64 = 1024 * 1024 * 1024;

struct SnapshotCommand {
    name: &'static str,
    synopsis: &'static str,
    run: fn(&[String], &ClientEnv, &mut Output<'_>) -> i32,
}

const COMMANDS: &[SnapshotCommand] = &[
    SnapshotCommand {
        name: "inspect",
        synopsis: "Displays information about a Consul snapshot file",
        run: inspect::run,
    },
    SnapshotCommand {
        name: "restore",
        synopsis: "Restores snapshot of Consul server state",
        run: restore,
    },
    SnapshotCommand {
        name: "save",
        synopsis: "Saves snapshot of Consul server state",
        run: save,
    },
];

pub fn usage() -> String {
    let mut text = String::from(
        "Usage: cairn snapshot <subcommand> [options] [args]\n\n  Saves, restores and inspects snapshots of the servers' state (KV and catalog).\n\nSubcommands:\n",
    );
    for c in COMMANDS {
        text.push_str(&format!("    {:<10}{}\n", c.name, c.synopsis));
    }
    text
}

pub fn run(args: &[String], io: &mut Output<'_>) -> i32 {
    run_with_env(args, &ClientEnv::from_process(), io)
}

pub fn run_with_env(args: &[String], env: &ClientEnv, io: &mut Output<'_>) -> i32 {
    let Some((name, rest)) = args.split_first() else {
        let _ = write!(io.err, "{}", usage());
        return 1;
    };
    match COMMANDS.iter().find(|c| c.name == name) {
        Some(c) => (c.run)(rest, env, io),
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

const SAVE_FLAGS: [FlagSpec; 1] = [FlagSpec {
    name: "append-filename",
    kind: FlagKind::Value,
    value_name: "<value>",
    help: "Append filename flag takes two possible values. 1. version, 2. dc. It appends \
           consul version and datacenter to filename given in command",
}];

const SAVE_HEAD: &str = "Usage: cairn snapshot save [options] FILE\n\n  Retrieves an atomic, point-in-time snapshot of the state of the servers\n  (key/value entries and the catalog), verifies it and writes it to FILE.\n  With -stale any server may answer (useful when no leader is available).";

const RESTORE_HEAD: &str = "Usage: cairn snapshot restore [options] FILE\n\n  Restores an atomic, point-in-time snapshot of the state of the servers\n  (key/value entries and the catalog). The restore is replicated to every\n  server; everything written since the snapshot is replaced.";

/// The FILE argument, or Consul's error.
fn one_file<'a>(parsed: &'a ParsedArgs, expected: &str, io: &mut Output<'_>) -> Option<&'a str> {
    match parsed.args.as_slice() {
        [] => {
            let _ = writeln!(io.err, "Missing FILE argument");
            None
        }
        [file] => Some(file),
        more => {
            let _ = writeln!(
                io.err,
                "Too many arguments (expected {expected}, got {})",
                more.len()
            );
            None
        }
    }
}

fn save(args: &[String], env: &ClientEnv, io: &mut Output<'_>) -> i32 {
    let specs = api_client::with_http_and_server_flags(&SAVE_FLAGS);
    let usage = api_client::usage(SAVE_HEAD, &specs);
    let parsed = match api_client::parse_or_exit(args, &specs, "snapshot save", &usage, io) {
        Ok(p) => p,
        Err(code) => return code,
    };
    // Consul's wording says "expected 1 or 3" here.
    let Some(file) = one_file(&parsed, "1 or 3", io) else {
        return 1;
    };
    let client = match api_client::connect_or_exit(&parsed, env, io) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Consul asks the agent for its version and datacenter first (whether or not the
    // file name needs them), so an agent that is down fails with this text.
    let self_info = client
        .request(
            "GET",
            "/v1/agent/self",
            None,
            api_client::MAX_RESPONSE_BYTES,
        )
        .and_then(|r| r.ok())
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| e.to_string()));
    let self_info = match self_info {
        Ok(v) => v,
        Err(e) => {
            let _ = writeln!(
                io.err,
                "Error connecting to Consul agent and fetching datacenter/version: {e}"
            );
            return 1;
        }
    };
    let file = appended_filename(file, parsed.value("append-filename"), &self_info);
    let path = api_client::with_query("/v1/snapshot", &api_client::server_params(&parsed));
    let reply = client.request("GET", &path, None, MAX_ARCHIVE_BYTES);
    let (index, archive) = match reply.and_then(|r| {
        let index = r.index.unwrap_or(0);
        r.ok().map(|body| (index, body))
    }) {
        Ok(x) => x,
        Err(e) => {
            let _ = writeln!(io.err, "Error saving snapshot: {e}");
            return 1;
        }
    };
    let unverified = format!("{file}.unverified");
    let outcome = write_verified(&archive, &unverified, &file);
    if outcome.is_err() {
        let _ = std::fs::remove_file(&unverified);
    }
    match outcome {
        Ok(()) => {
            let _ = writeln!(io.out, "Saved and verified snapshot to index {index}");
            0
        }
        Err(text) => {
            let _ = writeln!(io.err, "{text}");
            1
        }
    }
}

/// Consul's `-append-filename=version,dc`: `backup.snap` → `backup-1.22.0-dc1.snap`.
fn appended_filename(file: &str, flag: Option<&str>, self_info: &serde_json::Value) -> String {
    let wanted: Vec<&str> = flag.unwrap_or("").split(',').collect();
    let path = std::path::Path::new(file);
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    let mut stem = file[..file.len() - ext.len()].to_string();
    let config = &self_info["Config"];
    for (name, field) in [("version", "Version"), ("dc", "Datacenter")] {
        if let (true, Some(value)) = (wanted.contains(&name), config[field].as_str()) {
            stem.push('-');
            stem.push_str(value);
        }
    }
    format!("{stem}{ext}")
}

/// Write the archive to `unverified` (0600, synced), read it back and verify it (every
/// checksum, the versions, and that the state decodes), then rename it to `file`.
fn write_verified(archive: &[u8], unverified: &str, file: &str) -> Result<(), String> {
    let written = (|| {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(unverified)?;
        f.write_all(archive)?;
        f.sync_all()
    })();
    written.map_err(|e| format!("Error writing unverified snapshot file: {e}"))?;
    let f = std::fs::File::open(unverified).map_err(|e| {
        format!(
            "Error opening snapshot file for verify: {}",
            go_io_error("open", unverified, &e)
        )
    })?;
    let verified = read_archive(std::io::BufReader::new(f), MAX_ARCHIVE_BYTES)
        .map_err(|e| e.to_string())
        .and_then(|a| {
            protocol::store::image::store_from_image(&a.image, protocol::codec::MAX_DECODE_BYTES)
                .map_err(|e| format!("snapshot state does not decode: {e}"))
        });
    verified.map_err(|e| format!("Error verifying snapshot file: {e}"))?;
    std::fs::rename(unverified, file)
        .map_err(|e| format!("Error renaming {unverified:?} to {file:?}: {e}"))
}

fn restore(args: &[String], env: &ClientEnv, io: &mut Output<'_>) -> i32 {
    let specs = api_client::with_http_and_server_flags(&[]);
    let usage = api_client::usage(RESTORE_HEAD, &specs);
    let parsed = match api_client::parse_or_exit(args, &specs, "snapshot restore", &usage, io) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let Some(file) = one_file(&parsed, "1", io) else {
        return 1;
    };
    let client = match api_client::connect_or_exit(&parsed, env, io) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let archive = match std::fs::File::open(file) {
        Ok(f) => read_file_bounded(f),
        Err(e) => {
            let _ = writeln!(
                io.err,
                "Error opening snapshot file: {}",
                go_io_error("open", file, &e)
            );
            return 1;
        }
    };
    let path = match parsed.value("datacenter").filter(|d| !d.is_empty()) {
        Some(dc) => format!("/v1/snapshot?dc={}", api_client::escape(dc)),
        None => "/v1/snapshot".to_string(),
    };
    let result = archive.and_then(|bytes| {
        client
            .request("PUT", &path, Some(&bytes), api_client::MAX_RESPONSE_BYTES)
            .and_then(|r| r.ok())
    });
    match result {
        Ok(_) => {
            let _ = writeln!(io.out, "Restored snapshot");
            0
        }
        Err(e) => {
            let _ = writeln!(io.err, "Error restoring snapshot: {e}");
            1
        }
    }
}

fn read_file_bounded(f: std::fs::File) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let mut bytes = Vec::new();
    f.take(MAX_ARCHIVE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_ARCHIVE_BYTES {
        return Err(format!("the file is larger than {MAX_ARCHIVE_BYTES} bytes"));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests;
