//! A recursive-descent parser for go-bexpr's grammar (its `grammar.peg`): `or` binds
//! loosest, then `and`, then `not`; a match is `Selector op Value`, `Selector is [not]
//! empty|nil`, or `Value [not] in Selector`; `any|all Selector as x { ... }` iterates.

use super::{Binding, Expr, FilterError, MatchOp, Selector, MAX_DEPTH, MAX_FILTER_BYTES};

pub(super) fn parse(text: &str) -> Result<Expr, FilterError> {
    if text.len() > MAX_FILTER_BYTES {
        return Err(FilterError(format!(
            "filter is {} bytes long, over the limit of {MAX_FILTER_BYTES}",
            text.len()
        )));
    }
    let mut p = Parser { text, pos: 0 };
    p.skip_ws();
    if p.at_end() {
        return Err(p.error("expected an expression"));
    }
    let expr = p.or_expr(0)?;
    p.skip_ws();
    if !p.at_end() {
        return Err(p.error("unexpected text after the expression"));
    }
    Ok(expr)
}

struct Parser<'a> {
    text: &'a str,
    pos: usize,
}

/// What stands on either side of an operator before we know which side is the selector.
enum Term {
    Selector(Selector),
    Literal(String),
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.pos..]
    }

    fn at_end(&self) -> bool {
        self.pos >= self.text.len()
    }

    fn error(&self, what: &str) -> FilterError {
        let near: String = self.rest().chars().take(20).collect();
        if near.is_empty() {
            FilterError(format!(
                "{what} at the end of the filter (offset {})",
                self.pos
            ))
        } else {
            FilterError(format!("{what} at offset {}, near {near:?}", self.pos))
        }
    }

    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while let Some(c) = self.rest().chars().next() {
            if matches!(c, ' ' | '\t' | '\r' | '\n') {
                self.pos += 1;
            } else {
                break;
            }
        }
        self.pos > start
    }

    /// Consume `word` if it stands here as a whole word (followed by whitespace or, when
    /// `then` allows, one of its characters).
    fn keyword(&mut self, word: &str, then: &[char]) -> bool {
        let rest = self.rest();
        if !rest.starts_with(word) {
            return false;
        }
        match rest[word.len()..].chars().next() {
            None => {
                self.pos += word.len();
                true
            }
            Some(c) if c.is_whitespace() || then.contains(&c) => {
                self.pos += word.len();
                true
            }
            Some(_) => false,
        }
    }

    /// Try `f`; on failure rewind to where it started.
    fn attempt<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        let start = self.pos;
        let out = f(self);
        if out.is_none() {
            self.pos = start;
        }
        out
    }

    fn nested(&self, depth: usize) -> Result<usize, FilterError> {
        if depth >= MAX_DEPTH {
            return Err(self.error("expression nested too deeply"));
        }
        Ok(depth + 1)
    }

    fn or_expr(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let depth = self.nested(depth)?;
        let left = self.and_expr(depth)?;
        let or = self.attempt(|p| {
            (p.skip_ws() && p.keyword("or", &['(']) && p.skip_ws_or_paren()).then_some(())
        });
        if or.is_some() {
            let right = self.or_expr(depth)?;
            return Ok(Expr::Or(Box::new(left), Box::new(right)));
        }
        Ok(left)
    }

    fn and_expr(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let depth = self.nested(depth)?;
        let left = self.not_expr(depth)?;
        let and = self.attempt(|p| {
            (p.skip_ws() && p.keyword("and", &['(']) && p.skip_ws_or_paren()).then_some(())
        });
        if and.is_some() {
            let right = self.and_expr(depth)?;
            return Ok(Expr::And(Box::new(left), Box::new(right)));
        }
        Ok(left)
    }

    /// After `and`/`or`/`not`: whitespace, or an opening parenthesis right away.
    fn skip_ws_or_paren(&mut self) -> bool {
        self.skip_ws() || self.rest().starts_with('(')
    }

    fn not_expr(&mut self, depth: usize) -> Result<Expr, FilterError> {
        let depth = self.nested(depth)?;
        let not =
            self.attempt(|p| (p.keyword("not", &['(']) && p.skip_ws_or_paren()).then_some(()));
        if not.is_some() {
            let operand = self.not_expr(depth)?;
            // `not not x` is `x`, as go-bexpr folds it.
            return Ok(match operand {
                Expr::Not(inner) => *inner,
                other => Expr::Not(Box::new(other)),
            });
        }
        self.primary(depth)
    }

    fn primary(&mut self, depth: usize) -> Result<Expr, FilterError> {
        if self.rest().starts_with('(') {
            self.pos += 1;
            self.skip_ws();
            let inner = self.or_expr(depth)?;
            self.skip_ws();
            if !self.rest().starts_with(')') {
                return Err(self.error("unmatched parentheses: expected ')'"));
            }
            self.pos += 1;
            return Ok(inner);
        }
        for (word, all) in [("any", false), ("all", true)] {
            let start = self.pos;
            if self.keyword(word, &[]) && self.skip_ws() {
                if let Some(expr) = self.collection(all, depth)? {
                    return Ok(expr);
                }
            }
            self.pos = start;
        }
        self.match_expr()
    }

    /// `any|all Selector as binding { expr }`, after the keyword; None when this is not a
    /// collection expression after all (a selector named `any`).
    fn collection(&mut self, all: bool, depth: usize) -> Result<Option<Expr>, FilterError> {
        let start = self.pos;
        let Some(selector) = self.selector()? else {
            self.pos = start;
            return Ok(None);
        };
        if !(self.skip_ws() && self.keyword("as", &[]) && self.skip_ws()) {
            self.pos = start;
            return Ok(None);
        }
        let binding = self.binding()?;
        self.skip_ws();
        if !self.rest().starts_with('{') {
            return Err(self.error("expected '{' after the collection's names"));
        }
        self.pos += 1;
        self.skip_ws();
        let inner = self.or_expr(depth)?;
        self.skip_ws();
        if !self.rest().starts_with('}') {
            return Err(self.error("expected '}' closing the collection expression"));
        }
        self.pos += 1;
        Ok(Some(Expr::Collection {
            all,
            selector,
            binding,
            inner: Box::new(inner),
        }))
    }

    fn binding(&mut self) -> Result<Binding, FilterError> {
        let first = self.binding_name()?;
        let comma = self.attempt(|p| {
            p.skip_ws();
            p.rest().starts_with(',').then(|| p.pos += 1)
        });
        if comma.is_none() {
            return match first {
                Some(name) => Ok(Binding::Default(name)),
                None => Err(self.error("'_' alone binds nothing")),
            };
        }
        self.skip_ws();
        let second = self.binding_name()?;
        match (first, second) {
            (Some(i), Some(v)) if i == v => Err(self.error(&format!(
                "{i:?} cannot be used as a placeholder for both the index and the value"
            ))),
            (Some(i), Some(v)) => Ok(Binding::IndexAndValue(i, v)),
            (Some(i), None) => Ok(Binding::Index(i)),
            (None, Some(v)) => Ok(Binding::Value(v)),
            (None, None) => Err(self.error("'_, _' binds nothing")),
        }
    }

    /// An identifier, or `_` (None).
    fn binding_name(&mut self) -> Result<Option<String>, FilterError> {
        if self.rest().starts_with('_') {
            self.pos += 1;
            return Ok(None);
        }
        match self.identifier() {
            Some(name) => Ok(Some(name)),
            None => Err(self.error("expected a name to bind")),
        }
    }

    fn match_expr(&mut self) -> Result<Expr, FilterError> {
        let Some(term) = self.term()? else {
            return Err(self.error("expected a selector or a value"));
        };
        let op_start = self.pos;
        let had_ws = self.skip_ws();
        // Operators that take a selector on the left.
        let left_ops: [(&[&str], MatchOp, bool); 6] = [
            (&["contains"], MatchOp::In, true),
            (&["not", "contains"], MatchOp::NotIn, true),
            (&["matches"], MatchOp::Matches, true),
            (&["not", "matches"], MatchOp::NotMatches, true),
            (&["is", "not", "empty"], MatchOp::IsNotEmpty, false),
            (&["is", "empty"], MatchOp::IsEmpty, false),
        ];
        let nil_ops: [(&[&str], MatchOp); 2] = [
            (&["is", "not", "nil"], MatchOp::IsNotNil),
            (&["is", "nil"], MatchOp::IsNil),
        ];
        let mut found: Option<(MatchOp, bool)> = None;
        for symbol in ["==", "!="] {
            if self.rest().starts_with(symbol) {
                self.pos += 2;
                self.skip_ws();
                let op = if symbol == "==" {
                    MatchOp::Equal
                } else {
                    MatchOp::NotEqual
                };
                found = Some((op, true));
                break;
            }
        }
        if found.is_none() && had_ws {
            for (words, op, takes_value) in left_ops {
                if self.words(words, takes_value) {
                    found = Some((op, takes_value));
                    break;
                }
            }
            if found.is_none() {
                for (words, op) in nil_ops {
                    if self.words(words, false) {
                        found = Some((op, false));
                        break;
                    }
                }
            }
        }
        if let Some((op, takes_value)) = found {
            let Term::Selector(selector) = term else {
                return Err(self.error("expected a selector on the left of this operator"));
            };
            let value = if takes_value {
                match self.term()? {
                    Some(Term::Selector(s)) => Some(s.to_string()),
                    Some(Term::Literal(v)) => Some(v),
                    None => return Err(self.error("expected a value")),
                }
            } else {
                None
            };
            return Ok(Expr::Match {
                selector,
                op,
                value,
            });
        }
        // `Value [not] in Selector`.
        if had_ws {
            for (words, op) in [
                (&["in"][..], MatchOp::In),
                (&["not", "in"][..], MatchOp::NotIn),
            ] {
                if self.words(words, true) {
                    let value = match term {
                        Term::Selector(s) => s.to_string(),
                        Term::Literal(v) => v,
                    };
                    let Some(selector) = self.selector()? else {
                        return Err(self.error("invalid selector"));
                    };
                    return Ok(Expr::Match {
                        selector,
                        op,
                        value: Some(value),
                    });
                }
            }
        }
        self.pos = op_start;
        Err(self.error("expected an operator (==, !=, contains, in, matches, is empty, ...)"))
    }

    /// A sequence of keywords separated by whitespace, then whitespace when a value
    /// follows; rewinds and returns false when they are not all there.
    fn words(&mut self, words: &[&str], value_follows: bool) -> bool {
        self.attempt(|p| {
            for (i, w) in words.iter().enumerate() {
                if i > 0 && !p.skip_ws() {
                    return None;
                }
                let last = i + 1 == words.len();
                let then: &[char] = if last && !value_follows {
                    &[')', '}']
                } else {
                    &[]
                };
                if !p.keyword(w, then) {
                    return None;
                }
            }
            if value_follows && !p.skip_ws() {
                return None;
            }
            Some(())
        })
        .is_some()
    }

    /// A selector, a number or a string.
    fn term(&mut self) -> Result<Option<Term>, FilterError> {
        if let Some(s) = self.selector()? {
            return Ok(Some(Term::Selector(s)));
        }
        if let Some(n) = self.number()? {
            return Ok(Some(Term::Literal(n)));
        }
        if let Some(s) = self.string()? {
            return Ok(Some(Term::Literal(s)));
        }
        Ok(None)
    }

    fn identifier(&mut self) -> Option<String> {
        let rest = self.rest();
        let mut chars = rest.char_indices();
        match chars.next() {
            Some((_, c)) if c.is_ascii_alphabetic() => {}
            _ => return None,
        }
        let end = chars
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_' || *c == '/'))
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let ident = rest[..end].to_string();
        self.pos += end;
        Some(ident)
    }

    /// `Ident(.Ident | ["key"] | .N)*`, or a JSON pointer in double quotes (`"/a/b"`).
    fn selector(&mut self) -> Result<Option<Selector>, FilterError> {
        if let Some(pointer) = self.json_pointer() {
            return Ok(Some(pointer));
        }
        let Some(first) = self.identifier() else {
            return Ok(None);
        };
        let mut path = vec![first];
        loop {
            let rest = self.rest();
            if rest.starts_with('.') {
                self.pos += 1;
                if let Some(ident) = self.identifier() {
                    path.push(ident);
                    continue;
                }
                let digits = self
                    .rest()
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .count();
                if digits == 0 {
                    return Err(self.error("expected a field name or an index after '.'"));
                }
                path.push(self.rest()[..digits].to_string());
                self.pos += digits;
            } else if rest.starts_with('[') {
                self.pos += 1;
                self.skip_ws();
                let Some(key) = self.string()? else {
                    return Err(self.error("invalid index: expected a quoted key"));
                };
                self.skip_ws();
                if !self.rest().starts_with(']') {
                    return Err(self.error("unclosed index expression"));
                }
                self.pos += 1;
                path.push(key);
            } else {
                return Ok(Some(Selector(path)));
            }
        }
    }

    fn json_pointer(&mut self) -> Option<Selector> {
        self.attempt(|p| {
            let rest = p.rest();
            let body = rest.strip_prefix("\"/")?;
            let end = body.find('"')?;
            let inner = &body[..end];
            let allowed = |c: char| c.is_alphanumeric() || "-_.~:|".contains(c);
            let mut path = Vec::new();
            for part in inner.split('/') {
                if part.is_empty() || !part.chars().all(allowed) {
                    return None;
                }
                // RFC 6901 escapes.
                path.push(part.replace("~1", "/").replace("~0", "~"));
            }
            p.pos += 2 + end + 1;
            Some(Selector(path))
        })
    }

    fn number(&mut self) -> Result<Option<String>, FilterError> {
        let rest = self.rest();
        let bytes = rest.as_bytes();
        let mut i = usize::from(bytes.first() == Some(&b'-'));
        let digits_start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if i == digits_start {
            return Ok(None);
        }
        if i < bytes.len() && bytes[i] == b'.' {
            let frac = i + 1;
            let mut j = frac;
            while j < bytes.len() && bytes[j].is_ascii_digit() {
                j += 1;
            }
            if j > frac {
                i = j;
            }
        }
        let after = rest[i..].chars().next();
        let leading_zero =
            bytes[digits_start] == b'0' && i > digits_start + 1 && bytes[digits_start + 1] != b'.';
        match after {
            None | Some(' ' | '\t' | '\r' | '\n' | ')' | '}') if !leading_zero => {
                let literal = rest[..i].to_string();
                self.pos += i;
                Ok(Some(literal))
            }
            _ => Err(self.error("invalid number literal")),
        }
    }

    /// A double-quoted string with Go escapes, or a raw backquoted one.
    fn string(&mut self) -> Result<Option<String>, FilterError> {
        let rest = self.rest();
        let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '`') else {
            return Ok(None);
        };
        let Some(len) = rest[1..].find(quote) else {
            return Err(self.error("unterminated string literal"));
        };
        let body = &rest[1..1 + len];
        let value = if quote == '`' {
            body.to_string()
        } else {
            unescape(body).map_err(|e| self.error(&e))?
        };
        self.pos += len + 2;
        Ok(Some(value))
    }
}

/// Go's escapes in a double-quoted string (`strconv.Unquote`).
fn unescape(body: &str) -> Result<String, String> {
    let mut out = String::with_capacity(body.len());
    let mut chars = body.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        let escaped = chars.next().ok_or("a string ends in a lone backslash")?;
        let simple = match escaped {
            'a' => Some('\u{7}'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            'v' => Some('\u{b}'),
            '\\' => Some('\\'),
            '\'' => Some('\''),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        let (radix, digits) = match escaped {
            'x' => (16, 2),
            'u' => (16, 4),
            'U' => (16, 8),
            '0'..='7' => (8, 2),
            other => return Err(format!("invalid escape '\\{other}' in a string")),
        };
        let mut text = String::new();
        if radix == 8 {
            text.push(escaped);
        }
        for _ in 0..digits {
            text.push(chars.next().ok_or("a string ends inside an escape")?);
        }
        let code = u32::from_str_radix(&text, radix)
            .map_err(|_| format!("invalid escape '\\{escaped}{text}'"))?;
        let ch = char::from_u32(code)
            .ok_or_else(|| format!("escape '\\{escaped}{text}' is not a character"))?;
        out.push(ch);
    }
    Ok(out)
}
