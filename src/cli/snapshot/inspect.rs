//! `cairn snapshot inspect [-kvdetails [-kvdepth=N] [-kvfilter=P]] [-format=pretty|json]
//! FILE`: the archive's meta and what its state holds, as Consul prints them.

use super::super::api_client;
use super::super::argv::{FlagKind, FlagSpec};
use super::super::columns::tabwrite;
use super::super::kv::go_io_error;
use super::super::Output;
use super::MAX_ARCHIVE_BYTES;
use crate::cli::api_client::ClientEnv;
use crate::snapshot_archive::{read_archive, SnapshotMeta};
use protocol::codec;
use protocol::store::image::read_records;
use protocol::store::SnapshotRecord;
use serde::Serialize;
use std::collections::BTreeMap;

const FLAGS: [FlagSpec; 4] = [
    FlagSpec {
        name: "kvdetails",
        kind: FlagKind::Bool,
        value_name: "",
        help: "Provides a detailed KV space usage breakdown for any KV data that's been stored.",
    },
    FlagSpec {
        name: "kvdepth",
        kind: FlagKind::Value,
        value_name: "<int>",
        help: "Can only be used with -kvdetails. The key prefix depth used to breakdown KV \
               store data. Defaults to 2.",
    },
    FlagSpec {
        name: "kvfilter",
        kind: FlagKind::Value,
        value_name: "<string>",
        help: "Can only be used with -kvdetails. Limits KV key breakdown using this prefix filter.",
    },
    FlagSpec {
        name: "format",
        kind: FlagKind::Value,
        value_name: "<string>",
        help: "Output format {pretty|json}",
    },
];

const HEAD: &str = "Usage: cairn snapshot inspect [options] FILE\n\n  Displays information about a snapshot file on disk.";

/// Count and bytes of one kind of record (or one KV prefix).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TypeStats {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(rename = "Sum")]
    pub sum: u64,
    #[serde(rename = "Count")]
    pub count: u64,
}

/// What `-format=json` prints (Consul's `OutputFormat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    #[serde(rename = "Meta")]
    pub meta: MetaInfo,
    #[serde(rename = "Stats")]
    pub stats: Vec<TypeStats>,
    #[serde(rename = "StatsKV")]
    pub stats_kv: Option<Vec<TypeStats>>,
    #[serde(rename = "TotalSize")]
    pub total_size: u64,
    #[serde(rename = "TotalSizeKV")]
    pub total_size_kv: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MetaInfo {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Size")]
    pub size: i64,
    #[serde(rename = "Index")]
    pub index: u64,
    #[serde(rename = "Term")]
    pub term: u64,
    #[serde(rename = "Version")]
    pub version: i64,
}

/// How `-kvdetails` breaks KV space down.
#[derive(Debug, Clone)]
pub struct KvDetails {
    pub depth: usize,
    pub filter: String,
}

pub fn run(args: &[String], _: &ClientEnv, io: &mut Output<'_>) -> i32 {
    let usage = api_client::usage(HEAD, &FLAGS);
    let parsed = match api_client::parse_or_exit(args, &FLAGS, "snapshot inspect", &usage, io) {
        Ok(p) => p,
        Err(code) => return code,
    };
    let depth = match parsed.value("kvdepth").map(str::parse::<i64>) {
        None => 2,
        Some(Ok(d)) => d.max(0) as usize,
        Some(Err(_)) => {
            let v = parsed.value("kvdepth").unwrap_or("");
            let _ = writeln!(io.err, "invalid value {v:?} for flag -kvdepth: parse error");
            return 1;
        }
    };
    let details = parsed.bool("kvdetails").then(|| KvDetails {
        depth,
        filter: parsed.value("kvfilter").unwrap_or("").to_string(),
    });
    let Some(file) = super::one_file(&parsed, "1", io) else {
        return 1;
    };
    let f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) => {
            let _ = writeln!(
                io.err,
                "Error opening snapshot file: {}",
                go_io_error("open", file, &e)
            );
            return 1;
        }
    };
    let archive = match read_archive(std::io::BufReader::new(f), MAX_ARCHIVE_BYTES) {
        Ok(a) => a,
        Err(e) => {
            let _ = writeln!(io.err, "Error reading snapshot: {e}");
            return 1;
        }
    };
    let report = match report(&archive.meta, &archive.image, details.as_ref()) {
        Ok(r) => r,
        Err(e) => {
            let _ = writeln!(io.err, "Error extracting snapshot data: {e}");
            return 1;
        }
    };
    let text = match parsed.value("format").unwrap_or("pretty") {
        "pretty" => pretty(&report),
        "json" => match json(&report) {
            Ok(t) => t,
            Err(e) => {
                let _ = writeln!(io.err, "Failed to marshal original snapshot stats: {e}");
                return 1;
            }
        },
        other => {
            let _ = writeln!(
                io.err,
                "Error outputting enhanced snapshot data: Unknown format: {other}"
            );
            return 1;
        }
    };
    let _ = writeln!(io.out, "{text}");
    0
}

/// Walk the image's records: counts and framed bytes per kind (and per KV prefix).
pub fn report(
    meta: &SnapshotMeta,
    image: &[u8],
    details: Option<&KvDetails>,
) -> Result<Report, String> {
    let mut stats: BTreeMap<&'static str, TypeStats> = BTreeMap::new();
    let mut kv: BTreeMap<String, TypeStats> = BTreeMap::new();
    let (mut total, mut total_kv) = (0u64, 0u64);
    read_records(
        &mut &image[..],
        codec::MAX_DECODE_BYTES,
        &mut |record, size| {
            let s = stats.entry(record.kind()).or_insert_with(|| TypeStats {
                name: record.kind().to_string(),
                ..TypeStats::default()
            });
            s.sum += size;
            s.count += 1;
            total += size;
            if let (Some(d), SnapshotRecord::Kv(entry)) = (details, &record) {
                if entry.key.starts_with(&d.filter) {
                    let parts: Vec<&str> = entry.key.split('/').collect();
                    let prefix = parts[..d.depth.min(parts.len())].join("/");
                    let k = kv.entry(prefix.clone()).or_insert_with(|| TypeStats {
                        name: prefix,
                        ..TypeStats::default()
                    });
                    k.sum += size;
                    k.count += 1;
                    total_kv += size;
                }
            }
            Ok(())
        },
    )?;
    let stats_kv = (!kv.is_empty()).then(|| sorted(kv.into_values().collect()));
    Ok(Report {
        meta: MetaInfo {
            id: meta.id.clone(),
            size: meta.size,
            index: meta.index,
            term: meta.term,
            version: meta.version,
        },
        stats: sorted(stats.into_values().collect()),
        stats_kv,
        total_size: total,
        total_size_kv: total_kv,
    })
}

/// Biggest first, then by name (Consul's order).
fn sorted(mut stats: Vec<TypeStats>) -> Vec<TypeStats> {
    stats.sort_by(|a, b| b.sum.cmp(&a.sum).then_with(|| a.name.cmp(&b.name)));
    stats
}

/// Consul's pretty formatter (a Go tabwriter: min width 8, padding 6).
pub fn pretty(r: &Report) -> String {
    let m = &r.meta;
    let mut t = format!(
        " ID\t{}\n Size\t{}\n Index\t{}\n Term\t{}\n Version\t{}\n",
        m.id, m.size, m.index, m.term, m.version
    );
    table(&mut t, "Type", &r.stats, r.total_size);
    if let Some(kv) = &r.stats_kv {
        t.push('\n');
        table(&mut t, "Key Name", kv, r.total_size_kv);
    }
    tabwrite(&t, 8, 6)
}

fn table(t: &mut String, title: &str, stats: &[TypeStats], total: u64) {
    t.push_str(&format!("\n {title}\tCount\tSize\n ----\t----\t----"));
    for s in stats {
        t.push_str(&format!("\n {}\t{}\t{}", s.name, s.count, byte_size(s.sum)));
    }
    t.push_str(&format!(
        "\n ----\t----\t----\n Total\t\t{}",
        byte_size(total)
    ));
}

/// Go's `json.MarshalIndent(report, "", "   ")`.
pub fn json(r: &Report) -> Result<String, String> {
    let mut buf = Vec::new();
    let fmt = serde_json::ser::PrettyFormatter::with_indent(b"   ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, fmt);
    r.serialize(&mut ser).map_err(|e| e.to_string())?;
    String::from_utf8(buf).map_err(|e| e.to_string())
}

/// Consul's `ByteSize`: one decimal, `.0` dropped, binary units.
pub fn byte_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (1 << 40, "TB"),
        (1 << 30, "GB"),
        (1 << 20, "MB"),
        (1 << 10, "KB"),
    ];
    if bytes == 0 {
        return "0".into();
    }
    let (value, unit) = UNITS
        .iter()
        .find(|(size, _)| bytes >= *size)
        .map_or((bytes as f64, "B"), |(size, unit)| {
            (bytes as f64 / *size as f64, *unit)
        });
    let text = format!("{value:.1}");
    format!("{}{unit}", text.strip_suffix(".0").unwrap_or(&text))
}
