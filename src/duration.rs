//! Go `time.Duration` text: the one parser used by the HTTP API (`?wait=`, check
//! intervals in bodies) and the config file (`retry_interval`), so both accept exactly
//! what Consul's `time.ParseDuration` accepts, plus the matching formatter.

use std::time::Duration;

/// Go's largest duration (`1<<63 - 1` ns); longer text is an overflow error in Go.
const MAX_NANOS: u64 = i64::MAX as u64;

/// Nanoseconds per unit, with every spelling Go's `unitMap` knows (`µ` is U+00B5, `μ` is
/// U+03BC: Go accepts both).
fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return None,
    })
}

/// Split off the leading ASCII digits of `s`.
fn leading_digits(s: &str) -> (&str, &str) {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s.split_at(end)
}

/// Parse a Go duration (`"10s"`, `"1m30s"`, `".5h"`, `"1.5µs"`, `"60000ms"`, `"0"`) with
/// Go's integer arithmetic, so results are exact to the nanosecond. A leading `+` is
/// allowed; negative durations are refused (no caller has a use for them), as are a
/// missing unit, an unknown unit and values beyond Go's ~292 years.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let (whole, after_whole) = leading_digits(rest);
        let (fraction, after_number) = match after_whole.strip_prefix('.') {
            Some(tail) => leading_digits(tail),
            None => ("", after_whole),
        };
        // Go needs a digit on at least one side of the dot: "5s", ".5s" and "5.s" parse,
        // ".s" does not.
        if whole.is_empty() && fraction.is_empty() {
            return None;
        }
        let unit_len = after_number
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after_number.len());
        let (unit, tail) = after_number.split_at(unit_len);
        let scale = unit_nanos(unit)?;
        let whole: u64 = if whole.is_empty() {
            0
        } else {
            whole.parse().ok()?
        };
        let mut part = whole.checked_mul(scale)?;
        part = part.checked_add(fraction_nanos(fraction, scale))?;
        total = total.checked_add(part)?;
        if total > MAX_NANOS {
            return None;
        }
        rest = tail;
    }
    Some(Duration::from_nanos(total))
}

/// `0.<digits>` of a unit worth `scale` ns, truncated to whole nanoseconds (Go truncates
/// too). Digits past what any unit can resolve are ignored, so long fractions can't
/// overflow.
fn fraction_nanos(digits: &str, scale: u64) -> u64 {
    let mut numerator: u128 = 0;
    let mut denominator: u128 = 1;
    for digit in digits.bytes().take(20) {
        numerator = numerator * 10 + u128::from(digit - b'0');
        denominator *= 10;
    }
    (numerator * u128::from(scale) / denominator) as u64
}

/// Render a duration the way Go's `time.Duration.String()` does for whole units
/// (`"10s"`, `"1m30s"`, `"1h0m0s"`, `"1.5s"`, `"250ms"`).
pub fn format_go_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".into();
    }
    if ns < 1_000_000_000 {
        let (div, unit) = if ns < 1_000 {
            (1, "ns")
        } else if ns < 1_000_000 {
            (1_000, "µs")
        } else {
            (1_000_000, "ms")
        };
        return format!("{}{}", trim_fraction(ns, div), unit);
    }
    let hours = ns / 3_600_000_000_000;
    let minutes = (ns / 60_000_000_000) % 60;
    let secs_ns = ns % 60_000_000_000;
    let secs = trim_fraction(secs_ns, 1_000_000_000);
    if hours > 0 {
        format!("{hours}h{minutes}m{secs}s")
    } else if minutes > 0 {
        format!("{minutes}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

fn trim_fraction(value: u128, div: u128) -> String {
    let whole = value / div;
    let frac = value % div;
    if frac == 0 {
        return whole.to_string();
    }
    let width = (div as f64).log10().round() as usize;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns(n: u64) -> Option<Duration> {
        Some(Duration::from_nanos(n))
    }

    #[test]
    fn accepts_what_go_accepts() {
        assert_eq!(parse_go_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("60000ms"), Some(Duration::from_secs(60)));
        assert_eq!(parse_go_duration("9.5s"), Some(Duration::from_millis(9500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("+0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("+5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_go_duration(".5s"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("5.s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_go_duration("3ns"), ns(3));
        assert_eq!(parse_go_duration("3us"), ns(3_000));
        assert_eq!(parse_go_duration("3µs"), ns(3_000)); // U+00B5 micro sign
        assert_eq!(parse_go_duration("3μs"), ns(3_000)); // U+03BC Greek mu
        assert_eq!(parse_go_duration("1.5µs"), ns(1_500));
        assert_eq!(parse_go_duration("1h2m3s4ms5us6ns"), ns(3_723_004_005_006));
        assert_eq!(parse_go_duration("1s1s"), Some(Duration::from_secs(2)));
        // Exact, not float-rounded: 0.1 + 0.2 seconds.
        assert_eq!(parse_go_duration("0.1s0.2s"), ns(300_000_000));
        assert_eq!(parse_go_duration("0.3333333333333s"), ns(333_333_333));
        // Go's largest duration, and one past it.
        assert_eq!(parse_go_duration("9223372036854775807ns"), ns(MAX_NANOS));
        assert_eq!(parse_go_duration("2562047h47m16.854775807s"), ns(MAX_NANOS));
        assert_eq!(parse_go_duration("9223372036854775808ns"), None);
        assert_eq!(parse_go_duration("2562048h"), None);
    }

    #[test]
    fn refuses_what_go_refuses_and_negatives() {
        for bad in [
            "",
            "5",
            "1.5",
            "abc",
            "-1s",
            "-0",
            "1x",
            ".s",
            ".",
            "s",
            "1S",
            "1 s",
            " 1s",
            "1s ",
            "1..5s",
            "1.2.3s",
            "++1s",
            "1h-1m",
            "1ss",
            "99999999999999999999h",
            "1e3s",
        ] {
            assert_eq!(parse_go_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn go_duration_strings() {
        assert_eq!(format_go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(format_go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_go_duration(Duration::from_millis(250)), "250ms");
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
    }
}
