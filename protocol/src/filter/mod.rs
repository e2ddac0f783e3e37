//! Consul's `?filter=` expressions (hashicorp/go-bexpr's language), evaluated against the
//! JSON shape of each item an endpoint lists.
//!
//! ```text
//! Service.Tags contains "v2" and not (Node.Meta.rack == r1 or Checks is empty)
//! "primary" in ServiceTags
//! Service.Meta["version"] matches "^1\\."
//! any Checks as c { c.Status == critical }
//! ```
//!
//! Items are `serde_json::Value`s (what the edge renders), so field names are Consul's
//! JSON names, which are its Go field names. Values are untyped until compared: the raw
//! text is read as the type of the field it meets (`Port == 80`, `Passing == true`), as
//! go-bexpr coerces. A selector naming a missing key of a map (`Meta.x`) gives the
//! operator's "not present" answer (`==` false, `!=` true, `is empty` true, ...); one
//! naming a missing top-level field is an error, as a missing struct field is in Consul.
//! Every error (syntax or evaluation) is a [`FilterError`] the edge answers with 400.

mod eval;
mod parse;
#[cfg(test)]
mod tests;

use serde_json::Value;

/// A malformed expression, or one that cannot be applied to the data (a selector into a
/// scalar, `contains` on a number, a value that is not of the field's type).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(pub String);

/// Longest expression accepted (Consul has no explicit limit; this bounds parse work).
pub const MAX_FILTER_BYTES: usize = 16 * 1024;
/// Deepest nesting of parentheses, `not` and collection expressions accepted.
pub const MAX_DEPTH: usize = 64;

/// A parsed expression, ready to test items.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    expr: Expr,
}

#[derive(Debug, Clone, PartialEq)]
enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Match {
        selector: Selector,
        op: MatchOp,
        /// None for `is empty` / `is nil` and their negations.
        value: Option<String>,
    },
    Collection {
        all: bool,
        selector: Selector,
        binding: Binding,
        inner: Box<Expr>,
    },
}

/// A path into the item: `Service.Meta["k"]` is `["Service", "Meta", "k"]`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Selector(Vec<String>);

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join("."))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchOp {
    Equal,
    NotEqual,
    In,
    NotIn,
    IsEmpty,
    IsNotEmpty,
    Matches,
    NotMatches,
    IsNil,
    IsNotNil,
}

/// The names a collection expression binds: `any Xs as x`, `as i, v`, `as i, _`, `as _, v`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Binding {
    /// One name: the element (lists) or the key (maps).
    Default(String),
    IndexAndValue(String, String),
    Index(String),
    Value(String),
}

impl Filter {
    /// Parse an expression; a syntax error says where.
    pub fn parse(text: &str) -> Result<Filter, FilterError> {
        parse::parse(text).map(|expr| Filter { expr })
    }

    /// Whether `item` passes.
    pub fn matches(&self, item: &Value) -> Result<bool, FilterError> {
        eval::evaluate_item(&self.expr, item)
    }

    /// Keep the items that pass, in order.
    pub fn retain(&self, items: Vec<Value>) -> Result<Vec<Value>, FilterError> {
        let mut kept = Vec::with_capacity(items.len());
        for item in items {
            if self.matches(&item)? {
                kept.push(item);
            }
        }
        Ok(kept)
    }
}
