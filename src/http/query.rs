//! Query-string parsing: presence flags, `index`/`wait`, consistency modes and `dc`,
//! following Go's `url.ParseQuery` and Consul's `parse*` helpers.

use super::error::ApiError;
pub use crate::duration::{format_go_duration, parse_go_duration};
use percent_encoding::percent_decode_str;
use protocol::filter::Filter;
use std::time::Duration;

/// Decoded query parameters in request order (repeatable keys such as `tag` keep all values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

fn unescape(s: &str) -> String {
    // Go's QueryUnescape: `+` is a space, then percent-decoding.
    let spaced;
    let s = if s.contains('+') {
        spaced = s.replace('+', " ");
        spaced.as_str()
    } else {
        s
    };
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

impl Query {
    pub fn parse(raw: &str) -> Query {
        let pairs = raw
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| match p.split_once('=') {
                Some((k, v)) => (unescape(k), unescape(v)),
                None => (unescape(p), String::new()),
            })
            .collect();
        Query { pairs }
    }

    /// Presence-based flag (`?stale`, `?stale=`, `?stale=1` all count).
    pub fn has(&self, name: &str) -> bool {
        self.pairs.iter().any(|(k, _)| k == name)
    }

    /// First value of a parameter.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a repeatable parameter.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Go's `url.Values.Encode()`: sorted by key, values in order, form-escaped. Consul
    /// echoes it in `Conflicting flags: …`.
    pub fn encode(&self) -> String {
        use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
        const FORM: &AsciiSet = &NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b'~');
        let esc = |s: &str| utf8_percent_encode(s, FORM).to_string().replace("%20", "+");
        let mut sorted: Vec<&(String, String)> = self.pairs.iter().collect();
        sorted.sort_by(|a, b| a.0.cmp(&b.0));
        sorted
            .iter()
            .map(|(k, v)| format!("{}={}", esc(k), esc(v)))
            .collect::<Vec<_>>()
            .join("&")
    }
}

pub use protocol::api::{Consistency, DEFAULT_WAIT, FILTER_UNSUPPORTED_TEXT, MAX_WAIT};

/// Parameters every Consul read (and most writes) parses first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueryOptions {
    /// `?index=`: block while the resource index is ≤ this (0 = answer now).
    pub min_index: u64,
    /// `?wait=`, clamped to [`MAX_WAIT`]; `None` means the default.
    pub wait: Option<Duration>,
    pub consistency: Consistency,
}

impl QueryOptions {
    /// Parse `dc`, `wait`, `index`, `stale`/`consistent` in Consul's order.
    pub fn parse(q: &Query, our_dc: &str) -> Result<QueryOptions, ApiError> {
        QueryOptions::parse_allowing_filter(q, our_dc, false)
    }

    fn parse_allowing_filter(
        q: &Query,
        our_dc: &str,
        filter_taken: bool,
    ) -> Result<QueryOptions, ApiError> {
        check_dc(q, our_dc)?;
        if filter_given(q) && !filter_taken {
            // Answering everything with a 200 would tell the client its filter matched
            // everything; endpoints that filter use `parse_with_filter`, the rest say so.
            return Err(ApiError::bad_request(FILTER_UNSUPPORTED_TEXT));
        }
        // Consul's parseWait skips a parameter whose value is empty (`query.Get(..) != ""`),
        // so `?wait=` and `?index=` mean "not given", not "malformed".
        let given = |name: &str| q.get(name).filter(|v| !v.is_empty());
        let wait = match given("wait") {
            Some(w) => Some(
                parse_go_duration(w).ok_or_else(|| ApiError::bad_request("Invalid wait time"))?,
            ),
            None => None,
        };
        let min_index = match given("index") {
            Some(i) => i
                .parse::<u64>()
                .map_err(|_| ApiError::bad_request("Invalid index"))?,
            None => 0,
        };
        let stale = q.has("stale");
        let consistent = q.has("consistent");
        let consistency = match (stale, consistent) {
            (true, true) => {
                return Err(ApiError::bad_request(
                    "Cannot specify ?stale with ?consistent, conflicting semantics.",
                ))
            }
            (true, false) => Consistency::Stale,
            (false, true) => Consistency::Consistent,
            (false, false) => Consistency::Leader,
        };
        Ok(QueryOptions {
            min_index,
            wait,
            consistency,
        })
    }

    /// [`QueryOptions::parse`] for the endpoints that take `?filter=`: the options, and the
    /// filter when one was given (an empty one is none, as in Consul).
    pub fn parse_with_filter(
        q: &Query,
        our_dc: &str,
    ) -> Result<(QueryOptions, Option<Filter>), ApiError> {
        let filter = parse_filter(q)?;
        let options = QueryOptions::parse_allowing_filter(q, our_dc, true)?;
        Ok((options, filter))
    }

    /// The wait to apply to a blocking query, before jitter.
    pub fn effective_wait(&self) -> Duration {
        self.to_api().effective_wait()
    }

    /// The options the endpoint reads (a filter never gets this far: `parse` refuses it).
    pub fn to_api(&self) -> protocol::api::QueryOptions {
        protocol::api::QueryOptions {
            consistency: self.consistency,
            min_index: self.min_index,
            wait: self.wait,
            filter: None,
        }
    }
}

/// A non-empty `?filter=` (Consul's `parseFilter` skips an empty one).
pub fn filter_given(q: &Query) -> bool {
    q.get("filter").is_some_and(|f| !f.is_empty())
}

/// `?filter=`: the parsed expression, None when absent or empty (as in Consul).
pub fn parse_filter(q: &Query) -> Result<Option<Filter>, ApiError> {
    match q.get("filter") {
        Some(text) if !text.is_empty() => Filter::parse(text).map(Some).map_err(|e| {
            ApiError::bad_request(format!(
                "Failed to create boolean expression evaluator: {e}"
            ))
        }),
        _ => Ok(None),
    }
}

/// `?dc=` naming another datacenter cannot be served: there is no WAN federation.
pub fn check_dc(q: &Query, our_dc: &str) -> Result<(), ApiError> {
    match q.get("dc") {
        Some(dc) if !dc.is_empty() && dc != our_dc => {
            Err(ApiError::internal("No path to datacenter"))
        }
        _ => Ok(()),
    }
}

/// Go's `strconv.ParseUint(s, 10, 64)` with its error text (Consul passes it through as 500).
pub fn parse_uint(s: &str) -> Result<u64, ApiError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::internal(format!(
            "strconv.ParseUint: parsing {s:?}: invalid syntax"
        )));
    }
    s.parse::<u64>().map_err(|_| {
        ApiError::internal(format!(
            "strconv.ParseUint: parsing {s:?}: value out of range"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_flags_and_repeats() {
        let q = Query::parse("stale&tag=a&tag=b%20c&x=1+2&recurse=");
        assert!(q.has("stale"));
        assert!(q.has("recurse"));
        assert!(!q.has("keys"));
        assert_eq!(q.all("tag"), vec!["a".to_string(), "b c".to_string()]);
        assert_eq!(q.get("x"), Some("1 2"));
        assert_eq!(q.get("stale"), Some(""));
    }

    #[test]
    fn encode_is_sorted_like_go() {
        let q = Query::parse("release=s&cas=1&acquire=a b");
        assert_eq!(q.encode(), "acquire=a+b&cas=1&release=s");
    }

    #[test]
    fn query_options_errors_and_modes() {
        let p = |s: &str| QueryOptions::parse(&Query::parse(s), "dc1");
        assert_eq!(p("index=abc"), Err(ApiError::bad_request("Invalid index")));
        assert_eq!(p("index=-1"), Err(ApiError::bad_request("Invalid index")));
        assert_eq!(p("wait=5"), Err(ApiError::bad_request("Invalid wait time")));
        assert_eq!(p("index=+"), Err(ApiError::bad_request("Invalid index")));
        assert_eq!(
            p("stale&consistent"),
            Err(ApiError::bad_request(
                "Cannot specify ?stale with ?consistent, conflicting semantics."
            ))
        );
        assert_eq!(
            p("dc=dc2"),
            Err(ApiError::internal("No path to datacenter"))
        );
        let ok = p("dc=dc1&index=18446744073709551615&wait=20m&stale=1").unwrap();
        assert_eq!(ok.min_index, u64::MAX);
        assert_eq!(ok.consistency, Consistency::Stale);
        assert_eq!(ok.effective_wait(), MAX_WAIT);
        assert_eq!(p("").unwrap().effective_wait(), DEFAULT_WAIT);
        assert_eq!(
            p("consistent").unwrap().consistency,
            Consistency::Consistent
        );
    }

    #[test]
    fn a_filter_is_refused_unless_taken_and_an_empty_one_is_none() {
        let p = |s: &str| QueryOptions::parse(&Query::parse(s), "dc1");
        assert_eq!(
            p("filter=Key%20==%20a"),
            Err(ApiError::bad_request(FILTER_UNSUPPORTED_TEXT))
        );
        assert!(p("filter=").is_ok());
        assert!(p("filter").is_ok());
        assert!(!filter_given(&Query::parse("filter=")));
        assert!(filter_given(&Query::parse("filter=a")));
        let (_, f) = QueryOptions::parse_with_filter(&Query::parse("filter="), "dc1").unwrap();
        assert!(f.is_none());
    }

    #[test]
    fn empty_wait_and_index_count_as_absent() {
        let p = |s: &str| QueryOptions::parse(&Query::parse(s), "dc1");
        let absent = p("").unwrap();
        for raw in ["wait=", "index=", "wait=&index=", "index&wait"] {
            assert_eq!(p(raw), Ok(absent), "{raw}");
        }
        let blocking = p("index=7&wait=").unwrap();
        assert_eq!(blocking.min_index, 7);
        assert_eq!(blocking.effective_wait(), DEFAULT_WAIT);
        assert_eq!(
            p("wait=10s&index=").unwrap().wait,
            Some(Duration::from_secs(10))
        );
    }

    #[test]
    fn uint_parse_errors_match_go() {
        assert_eq!(parse_uint("42"), Ok(42));
        assert_eq!(
            parse_uint("abc"),
            Err(ApiError::internal(
                "strconv.ParseUint: parsing \"abc\": invalid syntax"
            ))
        );
        assert_eq!(
            parse_uint("-1"),
            Err(ApiError::internal(
                "strconv.ParseUint: parsing \"-1\": invalid syntax"
            ))
        );
        assert_eq!(
            parse_uint("18446744073709551616"),
            Err(ApiError::internal(
                "strconv.ParseUint: parsing \"18446744073709551616\": value out of range"
            ))
        );
    }
}
