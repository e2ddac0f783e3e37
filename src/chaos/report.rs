//! report.html: the verdict, the figures and a picture of the run, as one
//! self-contained file (inline SVG generated here; no scripts, no network).
//!
//! The picture, on one time axis: the latency of every workload operation (a scatter
//! on a log scale, coloured ok / error / unknown outcome), the successful operations
//! per 100 ms as an availability band (empty slots in red), and every fault window
//! shaded and labelled across both.

use std::fmt::Write as _;

use super::history::Record;
use super::verdict::{FaultRecord, Verdict, SLOT_US};
use super::{thousands, ChaosOptions};

/// What the report shows.
pub struct ReportInput<'a> {
    pub opts: &'a ChaosOptions,
    pub records: &'a [Record],
    pub faults: &'a [FaultRecord],
    pub verdict: &'a Verdict,
    pub line: &'a str,
    pub details: &'a str,
    pub end_us: u64,
}

/// Above this many successful points, only every n-th is drawn, so the file stays a
/// few MB at most.
const MAX_OK_POINTS: usize = 30_000;
/// The same for failed operations (errors and unknown outcomes), drawn on top.
const MAX_FAILED_POINTS: usize = 30_000;

const WIDTH: f64 = 1100.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const SCATTER_H: f64 = 320.0;
const GAP: f64 = 30.0;
const BAND_H: f64 = 60.0;
const AXIS_H: f64 = 40.0;

const OK: &str = "#3b7dd8";
const ERROR: &str = "#d62728";
const UNKNOWN: &str = "#ff9f1c";

pub fn render(input: &ReportInput<'_>) -> String {
    let status = if input.verdict.passed() {
        "clean"
    } else {
        "NOT clean"
    };
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>cairn chaos: seed {seed}</title>\n\
         <style>body{{font-family:sans-serif;margin:20px;color:#222}} pre{{background:#f6f6f6;padding:10px;overflow:auto}} \
         .verdict{{font-size:15px;font-weight:bold}} .bad{{color:{ERROR}}} .good{{color:#2a7f2a}}</style></head><body>\n\
         <h1>cairn chaos: {target}, seed {seed}</h1>\n<p class=\"verdict {class}\">{status}: {line}</p>\n",
        seed = input.opts.seed,
        target = input.opts.target.name(),
        class = if input.verdict.passed() { "good" } else { "bad" },
        line = escape(input.line),
    );
    html.push_str(&svg(input));
    let _ = write!(
        html,
        "\n<h2>Figures</h2>\n<pre>{}</pre>\n</body></html>\n",
        escape(input.details)
    );
    html
}

/// The picture.
fn svg(input: &ReportInput<'_>) -> String {
    let work: Vec<&Record> = input.records.iter().filter(|r| !r.verify).collect();
    let end_us = work
        .iter()
        .map(|r| r.ret_us)
        .chain(std::iter::once(input.end_us))
        .max()
        .unwrap_or(1)
        .max(1);
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |us: u64| LEFT + plot_w * us as f64 / end_us as f64;
    // Log scale from 0.1 ms to the decade above the slowest operation (at least 1 s).
    let slowest = work
        .iter()
        .map(|r| r.latency_us)
        .max()
        .unwrap_or(0)
        .max(1_000_000);
    let lo = 2.0; // log10(100 µs)
    let hi = (slowest as f64).log10().ceil();
    let scatter_top = TOP;
    let y = |latency_us: u64| {
        let v = (latency_us.max(100) as f64).log10().clamp(lo, hi);
        scatter_top + SCATTER_H * (1.0 - (v - lo) / (hi - lo))
    };
    let band_top = TOP + SCATTER_H + GAP;
    let height = band_top + BAND_H + AXIS_H;

    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{height}\" \
         font-family=\"sans-serif\" font-size=\"11\">"
    );
    let _ = writeln!(
        s,
        "<rect x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{height}\" fill=\"white\"/>"
    );
    // Fault windows, across both panels, labels staggered over three rows.
    for (i, f) in input.faults.iter().enumerate() {
        let (x0, x1) = (x(f.start_us), x(f.end_us.max(f.start_us)));
        let _ = writeln!(
            s,
            "<rect x=\"{x0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#f4a261\" \
             fill-opacity=\"0.18\"><title>{}</title></rect>",
            (x1 - x0).max(1.0),
            band_top + BAND_H - TOP,
            escape(&f.description)
        );
        let label_y = 12.0 + 10.0 * (i % 3) as f64;
        let _ = writeln!(
            s,
            "<text x=\"{x0:.1}\" y=\"{label_y}\" font-size=\"9\" fill=\"#8a4b08\">{}</text>",
            escape(&short_label(f))
        );
    }
    // Latency axis.
    for decade in lo as i32..=hi as i32 {
        let us = 10f64.powi(decade) as u64;
        let yy = y(us);
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" x2=\"{:.1}\" y1=\"{yy:.1}\" y2=\"{yy:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            latency_label(us)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"14\" y=\"{:.1}\" transform=\"rotate(-90 14 {:.1})\" text-anchor=\"middle\">latency (log)</text>",
        TOP + SCATTER_H / 2.0,
        TOP + SCATTER_H / 2.0
    );
    // Points: successes first (thinned if there are many), then errors and unknowns on top.
    let ok_count = work.iter().filter(|r| r.result.is_ok()).count();
    let every = ok_count.div_ceil(MAX_OK_POINTS).max(1);
    let mut drawn_ok = 0;
    for (n, r) in work.iter().filter(|r| r.result.is_ok()).enumerate() {
        if n % every == 0 {
            drawn_ok += 1;
            let _ = writeln!(
                s,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.3\" fill=\"{OK}\" fill-opacity=\"0.5\"/>",
                x(r.call_us),
                y(r.latency_us)
            );
        }
    }
    let failed_count = work.iter().filter(|r| !r.result.is_ok()).count();
    let every_failed = failed_count.div_ceil(MAX_FAILED_POINTS).max(1);
    for (n, r) in work.iter().filter(|r| !r.result.is_ok()).enumerate() {
        if n % every_failed != 0 {
            continue;
        }
        let colour = if r.is_unknown_write() { UNKNOWN } else { ERROR };
        let _ = writeln!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"2\" fill=\"{colour}\"/>",
            x(r.call_us),
            y(r.latency_us)
        );
    }
    // Availability band: successful operations per 100 ms.
    let slots = end_us.div_ceil(SLOT_US).max(1) as usize;
    let mut per_slot = vec![0u64; slots];
    for r in work.iter().filter(|r| r.result.is_ok()) {
        let slot = ((r.ret_us / SLOT_US) as usize).min(slots - 1);
        per_slot[slot] += 1;
    }
    let busiest = per_slot.iter().copied().max().unwrap_or(0).max(1);
    let slot_w = plot_w / slots as f64;
    let _ = writeln!(
        s,
        "<rect x=\"{LEFT}\" y=\"{band_top}\" width=\"{plot_w}\" height=\"{BAND_H}\" fill=\"none\" stroke=\"#ccc\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">ok/100ms</text>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-size=\"9\">max {}</text>",
        LEFT - 6.0,
        band_top + BAND_H / 2.0,
        LEFT - 6.0,
        band_top + BAND_H / 2.0 + 12.0,
        thousands(busiest)
    );
    for (i, &n) in per_slot.iter().enumerate() {
        let x0 = LEFT + slot_w * i as f64;
        if n == 0 {
            let _ = writeln!(
                s,
                "<rect x=\"{x0:.1}\" y=\"{band_top}\" width=\"{:.2}\" height=\"{BAND_H}\" fill=\"{ERROR}\" fill-opacity=\"0.35\"/>",
                slot_w.max(0.5)
            );
        } else {
            let h = BAND_H * n as f64 / busiest as f64;
            let _ = writeln!(
                s,
                "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{h:.1}\" fill=\"{OK}\"/>",
                band_top + BAND_H - h,
                slot_w.max(0.5)
            );
        }
    }
    // Time axis.
    let axis_y = band_top + BAND_H;
    let step = time_step(end_us);
    let mut t = 0;
    while t <= end_us {
        let xx = x(t);
        let _ = writeln!(
            s,
            "<line x1=\"{xx:.1}\" x2=\"{xx:.1}\" y1=\"{TOP}\" y2=\"{:.1}\" stroke=\"#eee\"/>\
             <text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}s</text>",
            axis_y + 4.0,
            axis_y + 16.0,
            t / 1_000_000
        );
        t += step;
    }
    let mut thinned = String::new();
    if every > 1 {
        thinned = format!(" (every {every}th of {} shown)", thousands(ok_count as u64));
    }
    if every_failed > 1 {
        let _ = write!(
            thinned,
            " (failures: every {every_failed}th of {} shown)",
            thousands(failed_count as u64)
        );
    }
    let legend_y = axis_y + 34.0;
    let _ = writeln!(
        s,
        "<circle cx=\"{LEFT}\" cy=\"{:.1}\" r=\"4\" fill=\"{OK}\"/><text x=\"{:.1}\" y=\"{legend_y:.1}\">ok: {}{thinned}</text>\
         <circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{ERROR}\"/><text x=\"{:.1}\" y=\"{legend_y:.1}\">error, not applied or a failed read</text>\
         <circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"{UNKNOWN}\"/><text x=\"{:.1}\" y=\"{legend_y:.1}\">write with unknown outcome</text>\
         <rect x=\"{:.1}\" y=\"{:.1}\" width=\"12\" height=\"8\" fill=\"#f4a261\" fill-opacity=\"0.4\"/><text x=\"{:.1}\" y=\"{legend_y:.1}\">fault window (* hit the leader)</text>",
        legend_y - 4.0,
        LEFT + 8.0,
        thousands(drawn_ok),
        LEFT + 330.0,
        legend_y - 4.0,
        LEFT + 338.0,
        LEFT + 560.0,
        legend_y - 4.0,
        LEFT + 568.0,
        LEFT + 740.0,
        legend_y - 8.0,
        LEFT + 756.0,
    );
    s.push_str("</svg>\n");
    // The legend sits below the axis labels: make room for it.
    s.replacen(
        &format!("height=\"{height}\" font-family"),
        &format!("height=\"{}\" font-family", height + 10.0),
        1,
    )
}

/// `kill node2` from `kill node2 (leader)`, for the narrow label above a window.
fn short_label(f: &FaultRecord) -> String {
    let mut label = f.description.clone();
    if let Some(open) = label.find(" (") {
        label.truncate(open);
    }
    if f.hits_leader {
        label.push_str(" *");
    }
    label
}

fn latency_label(us: u64) -> String {
    match us {
        0..1_000 => format!("{} ms", us as f64 / 1000.0),
        1_000..1_000_000 => format!("{} ms", us / 1000),
        _ => format!("{} s", us / 1_000_000),
    }
}

/// Tick spacing for a run of `end_us`: about ten ticks, on a round number of seconds.
fn time_step(end_us: u64) -> u64 {
    let seconds = end_us / 1_000_000;
    let step = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600]
        .into_iter()
        .find(|s| seconds / s <= 12)
        .unwrap_or(3600);
    step * 1_000_000
}

/// Text as HTML.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_and_ticks() {
        assert_eq!(latency_label(100), "0.1 ms");
        assert_eq!(latency_label(10_000), "10 ms");
        assert_eq!(latency_label(1_000_000), "1 s");
        assert_eq!(time_step(2_000_000), 1_000_000);
        assert_eq!(time_step(60_000_000), 5_000_000);
        assert_eq!(time_step(600_000_000), 60_000_000);
        assert_eq!(escape("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
    }
}
