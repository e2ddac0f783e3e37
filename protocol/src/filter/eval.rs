//! Evaluation against JSON items, with go-bexpr's coercion and "not present" rules.

use super::{Binding, Expr, FilterError, MatchOp, Selector};
use serde_json::Value;

/// A name bound by a collection expression: a path into the item (an element or a
/// map value), or a plain value (a list index or a map key).
enum Local {
    Path(Vec<String>),
    Value(Value),
}

type Scope = Vec<(String, Local)>;

pub(super) fn evaluate_item(expr: &Expr, item: &Value) -> Result<bool, FilterError> {
    evaluate(expr, item, &mut Vec::new())
}

fn evaluate(expr: &Expr, item: &Value, scope: &mut Scope) -> Result<bool, FilterError> {
    match expr {
        Expr::Or(a, b) => Ok(evaluate(a, item, scope)? || evaluate(b, item, scope)?),
        Expr::And(a, b) => Ok(evaluate(a, item, scope)? && evaluate(b, item, scope)?),
        Expr::Not(a) => Ok(!evaluate(a, item, scope)?),
        Expr::Match {
            selector,
            op,
            value,
        } => match lookup(item, selector, scope)? {
            Found::Missing => Ok(not_present(*op)),
            Found::Value(v) => match_value(&v, *op, value.as_deref(), selector),
        },
        Expr::Collection {
            all,
            selector,
            binding,
            inner,
        } => collection(*all, selector, binding, inner, item, scope),
    }
}

enum Found {
    Value(Value),
    /// A key missing from a map (not an error: the operator's "not present" answer).
    Missing,
}

/// Resolve a selector: bound names first (innermost wins), then the item.
fn lookup(item: &Value, selector: &Selector, scope: &Scope) -> Result<Found, FilterError> {
    let mut path: Vec<String> = selector.0.clone();
    if let Some((_, local)) = scope.iter().rev().find(|(name, _)| *name == path[0]) {
        match local {
            Local::Value(v) => {
                if path.len() > 1 {
                    return Err(FilterError(format!(
                        "{} references a {} so {selector} is invalid",
                        path[0],
                        kind(v)
                    )));
                }
                return Ok(Found::Value(v.clone()));
            }
            Local::Path(prefix) => {
                let mut full = prefix.clone();
                full.extend(path.drain(1..));
                path = full;
            }
        }
    }
    let mut current = item;
    for (i, part) in path.iter().enumerate() {
        current = match current {
            Value::Object(map) => match map.get(part) {
                Some(v) => v,
                // A missing key of a map below the top: "not present". At the top the
                // item is a struct in Consul, and an unknown field is an error.
                None if i > 0 => return Ok(Found::Missing),
                None => {
                    return Err(FilterError(format!(
                        "error finding value in datum: /{}: couldn't find key {part:?}",
                        path.join("/")
                    )))
                }
            },
            Value::Array(list) => {
                let index = part.parse::<usize>().map_err(|_| {
                    FilterError(format!(
                        "error finding value in datum: /{}: {part:?} is not a list index",
                        path.join("/")
                    ))
                })?;
                list.get(index).ok_or_else(|| {
                    FilterError(format!(
                        "error finding value in datum: /{}: index {index} out of range",
                        path.join("/")
                    ))
                })?
            }
            // A nil map or struct pointer: nothing below it is present.
            Value::Null if i > 0 => return Ok(Found::Missing),
            other => {
                return Err(FilterError(format!(
                    "error finding value in datum: /{}: cannot select {part:?} in a {}",
                    path.join("/"),
                    kind(other)
                )))
            }
        };
    }
    Ok(Found::Value(current.clone()))
}

/// go-bexpr's answer for a selector naming a missing map key.
fn not_present(op: MatchOp) -> bool {
    matches!(
        op,
        MatchOp::NotEqual
            | MatchOp::NotIn
            | MatchOp::IsEmpty
            | MatchOp::NotMatches
            | MatchOp::IsNil
    )
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

fn match_value(
    v: &Value,
    op: MatchOp,
    raw: Option<&str>,
    selector: &Selector,
) -> Result<bool, FilterError> {
    let raw = raw.unwrap_or("");
    match op {
        MatchOp::Equal => equal(v, raw, selector),
        MatchOp::NotEqual => equal(v, raw, selector).map(|b| !b),
        MatchOp::In => contains(v, raw, selector),
        MatchOp::NotIn => contains(v, raw, selector).map(|b| !b),
        MatchOp::IsEmpty => is_empty(v, selector),
        MatchOp::IsNotEmpty => is_empty(v, selector).map(|b| !b),
        MatchOp::Matches => matches(v, raw),
        MatchOp::NotMatches => matches(v, raw).map(|b| !b),
        MatchOp::IsNil => is_nil(v, selector),
        MatchOp::IsNotNil => is_nil(v, selector).map(|b| !b),
    }
}

/// `v == raw`, with `raw` read as `v`'s type.
fn equal(v: &Value, raw: &str, selector: &Selector) -> Result<bool, FilterError> {
    match primitive_equal(v, raw)? {
        Some(eq) => Ok(eq),
        None => Err(FilterError(format!(
            "unable to find suitable primitive comparison function for matching {selector} (a {})",
            kind(v)
        ))),
    }
}

/// None when `v` is not a primitive; an error when `raw` does not read as its type.
fn primitive_equal(v: &Value, raw: &str) -> Result<Option<bool>, FilterError> {
    let bad = |what: &str| {
        FilterError(format!(
            "error getting match value in expression: {raw:?} is not a valid {what}"
        ))
    };
    Ok(Some(match v {
        Value::String(s) => s == raw,
        Value::Bool(b) => *b == parse_bool(raw).ok_or_else(|| bad("bool"))?,
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                i128::from(i) == parse_int(raw).ok_or_else(|| bad("integer"))?
            } else if let Some(u) = n.as_u64() {
                i128::from(u) == parse_int(raw).ok_or_else(|| bad("integer"))?
            } else {
                let f: f64 = raw.parse().map_err(|_| bad("number"))?;
                n.as_f64() == Some(f)
            }
        }
        _ => return Ok(None),
    }))
}

/// Go's `strconv.ParseBool`.
fn parse_bool(raw: &str) -> Option<bool> {
    match raw {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Go's `strconv.ParseInt(raw, 0, 64)`: decimal, or 0x / 0o / 0b / leading-0 octal.
fn parse_int(raw: &str) -> Option<i128> {
    let (negative, digits) = match raw.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, raw.strip_prefix('+').unwrap_or(raw)),
    };
    let digits = digits.replace('_', "");
    let lower = digits.to_ascii_lowercase();
    let magnitude = if let Some(hex) = lower.strip_prefix("0x") {
        i128::from_str_radix(hex, 16).ok()?
    } else if let Some(oct) = lower.strip_prefix("0o") {
        i128::from_str_radix(oct, 8).ok()?
    } else if let Some(bin) = lower.strip_prefix("0b") {
        i128::from_str_radix(bin, 2).ok()?
    } else if lower.len() > 1 && lower.starts_with('0') {
        i128::from_str_radix(&lower[1..], 8).ok()?
    } else {
        lower.parse::<i128>().ok()?
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// `raw in v` / `v contains raw`: a map key, a list element, or a substring.
fn contains(v: &Value, raw: &str, selector: &Selector) -> Result<bool, FilterError> {
    match v {
        Value::Object(map) => Ok(map.contains_key(raw)),
        Value::Array(list) => {
            for element in list {
                // Elements of other types than `raw` reads as are skipped, as go-bexpr
                // skips elements whose type the value does not parse as.
                if let Ok(Some(true)) = primitive_equal(element, raw) {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Value::String(s) => Ok(s.contains(raw)),
        Value::Null => Ok(false),
        other => Err(FilterError(format!(
            "cannot perform in/contains operations on type {} for selector: {:?}",
            kind(other),
            selector.to_string()
        ))),
    }
}

fn is_empty(v: &Value, selector: &Selector) -> Result<bool, FilterError> {
    match v {
        Value::Object(map) => Ok(map.is_empty()),
        Value::Array(list) => Ok(list.is_empty()),
        Value::String(s) => Ok(s.is_empty()),
        // A nil slice or map renders as null.
        Value::Null => Ok(true),
        other => Err(FilterError(format!(
            "cannot perform is-empty operations on type {} for selector: {:?}",
            kind(other),
            selector.to_string()
        ))),
    }
}

fn is_nil(v: &Value, selector: &Selector) -> Result<bool, FilterError> {
    match v {
        Value::Null => Ok(true),
        Value::Object(_) | Value::Array(_) => Ok(false),
        other => Err(FilterError(format!(
            "cannot perform is-nil operations on type {} for selector: {:?}",
            kind(other),
            selector.to_string()
        ))),
    }
}

fn matches(v: &Value, pattern: &str) -> Result<bool, FilterError> {
    let Value::String(s) = v else {
        return Err(FilterError(format!(
            "value of type {} is not convertible to []byte",
            kind(v)
        )));
    };
    let re = regex_lite::Regex::new(pattern).map_err(|e| {
        FilterError(format!(
            "failed to compile regular expression {pattern:?}: {e}"
        ))
    })?;
    Ok(re.is_match(s))
}

fn collection(
    all: bool,
    selector: &Selector,
    binding: &Binding,
    inner: &Expr,
    item: &Value,
    scope: &mut Scope,
) -> Result<bool, FilterError> {
    let target = match lookup(item, selector, scope)? {
        Found::Missing => return Ok(all),
        Found::Value(v) => v,
    };
    // The path of the collection itself, so bound elements resolve through the item.
    let base: Vec<String> = match scope.iter().rev().find(|(n, _)| *n == selector.0[0]) {
        Some((_, Local::Path(prefix))) => prefix
            .iter()
            .cloned()
            .chain(selector.0[1..].iter().cloned())
            .collect(),
        _ => selector.0.clone(),
    };
    let members: Vec<(Value, Vec<String>)> = match &target {
        Value::Array(list) => (0..list.len())
            .map(|i| (Value::from(i), with(&base, i.to_string())))
            .collect(),
        Value::Object(map) => map
            .keys()
            .map(|k| (Value::String(k.clone()), with(&base, k.clone())))
            .collect(),
        Value::Null => return Ok(all),
        _ => return Err(FilterError(format!("{selector} is not a list or a map"))),
    };
    let is_map = target.is_object();
    for (key, path) in members {
        let pushed = bind(binding, is_map, key, path, scope);
        let result = evaluate(inner, item, scope);
        scope.truncate(scope.len() - pushed);
        let result = result?;
        if result != all {
            return Ok(result);
        }
    }
    Ok(all)
}

fn with(base: &[String], last: String) -> Vec<String> {
    let mut path = base.to_vec();
    path.push(last);
    path
}

/// Push the names one member binds; returns how many were pushed.
fn bind(
    binding: &Binding,
    is_map: bool,
    key: Value,
    path: Vec<String>,
    scope: &mut Scope,
) -> usize {
    let before = scope.len();
    match binding {
        // One name: the key of a map, the element of a list.
        Binding::Default(name) if is_map => scope.push((name.clone(), Local::Value(key))),
        Binding::Default(name) => scope.push((name.clone(), Local::Path(path))),
        Binding::IndexAndValue(i, v) => {
            scope.push((i.clone(), Local::Value(key)));
            scope.push((v.clone(), Local::Path(path)));
        }
        Binding::Index(i) => scope.push((i.clone(), Local::Value(key))),
        Binding::Value(v) => scope.push((v.clone(), Local::Path(path))),
    }
    scope.len() - before
}
