//! The decoder's fast path: a strict JSON scanner that checks `data` against the compiled schema
//! as it reads, building no tree.
//!
//! It answers one question — does this text pass every rule? — and gives up at the first doubt:
//! a rule broken, a repeated member name, an escape sequence in a string, a number it would have
//! to round, nesting deeper than [`MAX_DEPTH`], or anything else unusual. It never produces an
//! error message: a `None` sends the body to the full decode ([`super::check`] on a parsed
//! `Value`, after `serde_json`'s parse), which reports every broken rule with its path. So the
//! error output has one source, and this pass only has to be *sound*: whatever it accepts, the
//! full decode accepts too, as the same envelope (a property test holds the two to that).
//!
//! Besides the verdict, [`Scanner::check`] returns a shallow [`Fact`] view of the value, which
//! the cross-field rules read; its strings borrow from the text.

use std::borrow::Cow;

use serde_json::{Map, Number, Value};

use super::check::{self, ARRAY, BOOLEAN, Checks, INTEGER, NULL, NUMBER, Node, OBJECT, STRING};
use crate::parse::Path;
use crate::payload::rules::Fact;

/// Deeper than this, the scanner gives up and leaves the verdict to the full decode, which
/// applies the exact nesting limit of the whole body.
const MAX_DEPTH: usize = 100;

/// Capture levels at the `data` object: its members' values, and the members of objects one
/// level down (e.g. `window.start`), are kept for the cross-field rules.
pub(crate) const CAPTURE_ROOT: u8 = 3;

/// A `Checks` with no keyword: anything, with repeated member names still refused.
static ANYTHING: Checks = Checks {
    types: 0,
    enum_values: None,
    min_len: None,
    max_len: None,
    string_rule: None,
    min: None,
    max: None,
    items: None,
    min_items: None,
    properties: Vec::new(),
    required: Vec::new(),
    required_mask: 0,
    additional: None,
};

static ANY_NODE: Node = Node::Any;

/// A cursor over JSON text. Every method returns `None` to give up.
pub(crate) struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    depth: usize,
}

/// Bytes with a `0x80` in each lane where `x`'s byte is below `n` (`n` ≤ 0x80), per lane.
fn lanes_below(x: u64, n: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH
}

/// Bytes with a `0x80` in each lane where `x`'s byte equals `b`.
fn lanes_equal(x: u64, b: u8) -> u64 {
    lanes_below(x ^ (0x0101_0101_0101_0101 * u64::from(b)), 1)
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(text: &'a str) -> Scanner<'a> {
        Scanner {
            text,
            pos: 0,
            depth: 0,
        }
    }

    /// The byte offset of the cursor.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// The text between two offsets the cursor has passed.
    pub(crate) fn slice(&self, start: usize, end: usize) -> &'a str {
        &self.text[start..end]
    }

    /// The next byte, not consumed.
    pub(crate) fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    /// Skips JSON whitespace.
    pub(crate) fn ws(&mut self) {
        let bytes = self.text.as_bytes();
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    /// Consumes `b` (after whitespace).
    pub(crate) fn eat(&mut self, b: u8) -> bool {
        self.ws();
        if self.peek() == Some(b) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    /// Whether only whitespace is left.
    pub(crate) fn at_end(&mut self) -> bool {
        self.ws();
        self.pos == self.text.len()
    }

    /// A string without escapes or control characters, borrowed.
    pub(crate) fn string(&mut self) -> Option<&'a str> {
        self.ws();
        let bytes = self.text.as_bytes();
        if bytes.get(self.pos) != Some(&b'"') {
            return None;
        }
        let start = self.pos + 1;
        let mut i = start;
        // Eight bytes at a time: the lowest flagged lane is the first quote, backslash or
        // control byte (the lane tricks can only over-flag lanes above a real hit).
        for chunk in bytes[start..].chunks_exact(8) {
            let Ok(lanes) = <[u8; 8]>::try_from(chunk) else {
                break;
            };
            let x = u64::from_le_bytes(lanes);
            let hits = lanes_below(x, 0x20) | lanes_equal(x, b'"') | lanes_equal(x, b'\\');
            if hits != 0 {
                i += (hits.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        // The last few bytes of the text, one at a time.
        while let Some(&b) = bytes.get(i) {
            if b == b'"' || b == b'\\' || b < 0x20 {
                break;
            }
            i += 1;
        }
        if bytes.get(i) != Some(&b'"') {
            return None;
        }
        self.pos = i + 1;
        // Quotes are ASCII, so both ends are character boundaries.
        self.text.get(start..i)
    }

    /// A number: integers as `u64` / `i64`, others as `f64`, exactly as `serde_json` reads them.
    fn number(&mut self) -> Option<(Number, u8)> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let digits = |s: &mut Scanner<'_>| {
            let from = s.pos;
            while s.peek().is_some_and(|b| b.is_ascii_digit()) {
                s.pos += 1;
            }
            s.pos > from
        };
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => {
                digits(self);
            }
            _ => return None,
        }
        let mut float = false;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !digits(self) {
                return None;
            }
            float = true;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !digits(self) {
                return None;
            }
            float = true;
        }
        let text = self.text.get(start..self.pos)?;
        if float {
            let f: f64 = text.parse().ok()?;
            if !f.is_finite() {
                return None;
            }
            return Some((Number::from_f64(f)?, NUMBER));
        }
        if bytes[start] == b'-' {
            // `-0` and integers below i64::MIN are read as floats by serde_json: leave them.
            if text == "-0" {
                return None;
            }
            let i: i64 = text.parse().ok()?;
            Some((i.into(), INTEGER))
        } else {
            let u: u64 = text.parse().ok()?;
            Some((u.into(), INTEGER))
        }
    }

    /// `null`.
    pub(crate) fn null(&mut self) -> bool {
        self.literal("null")
    }

    /// A non-negative integer that fits a `u64`.
    pub(crate) fn unsigned(&mut self) -> Option<u64> {
        match self.number()? {
            (n, INTEGER) => n.as_u64(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &str) -> bool {
        if self.text.as_bytes()[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            true
        } else {
            false
        }
    }

    /// Reads the members of an object whose `{` was just consumed, up to its `}`, calling
    /// `member` with each name while the cursor stands before its value.
    pub(crate) fn members(
        &mut self,
        mut member: impl FnMut(&mut Self, &'a str) -> Option<()>,
    ) -> Option<()> {
        if self.eat(b'}') {
            return Some(());
        }
        loop {
            let key = self.string()?;
            if !self.eat(b':') {
                return None;
            }
            member(self, key)?;
            if self.eat(b'}') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    /// Reads the elements of an array whose `[` was just consumed, up to its `]`, calling
    /// `element` while the cursor stands before each one.
    fn elements(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        if self.eat(b']') {
            return Some(());
        }
        loop {
            element(self)?;
            if self.eat(b']') {
                return Some(());
            }
            if !self.eat(b',') {
                return None;
            }
        }
    }

    fn enter(&mut self) -> Option<()> {
        self.depth += 1;
        (self.depth <= MAX_DEPTH).then_some(())
    }

    /// Any JSON value as a `Value`, refusing repeated member names.
    pub(crate) fn value(&mut self) -> Option<Value> {
        self.ws();
        match self.peek()? {
            b'"' => Some(Value::String(self.string()?.to_owned())),
            b'{' => {
                self.enter()?;
                self.pos += 1;
                let mut map = Map::new();
                self.members(|s, key| {
                    if map.contains_key(key) {
                        return None;
                    }
                    let v = s.value()?;
                    map.insert(key.to_owned(), v);
                    Some(())
                })?;
                self.depth -= 1;
                Some(Value::Object(map))
            }
            b'[' => {
                self.enter()?;
                self.pos += 1;
                let mut items = Vec::new();
                self.elements(|s| {
                    items.push(s.value()?);
                    Some(())
                })?;
                self.depth -= 1;
                Some(Value::Array(items))
            }
            b't' => self.literal("true").then_some(Value::Bool(true)),
            b'f' => self.literal("false").then_some(Value::Bool(false)),
            b'n' => self.literal("null").then_some(Value::Null),
            _ => self.number().map(|(n, _)| Value::Number(n)),
        }
    }

    /// Checks the next value against `node`; `Some` with its [`Fact`] (kept to `capture` levels,
    /// see [`CAPTURE_ROOT`]) when it passes.
    pub(crate) fn check(&mut self, node: &Node, capture: u8) -> Option<Fact<'a>> {
        let (c, or_null) = match node {
            Node::Any => (&ANYTHING, false),
            Node::Checks(c) => (&**c, false),
            Node::AnyOf(branches) if let Some(c) = optional(branches) => (c, true),
            // Several schemas over one value (`$ref` with siblings, other `anyOf`s): read this
            // value (small: an optional struct) and run the full check on it.
            Node::All(_) | Node::AnyOf(_) => {
                let value = self.value()?;
                let mut errors = Vec::new();
                check::check(node, &value, &Path::Root, &mut errors);
                return errors.is_empty().then(|| Fact::of_owned(value, capture));
            }
        };
        let kind_ok = |kind: u8| c.types == 0 || c.types & kind != 0;
        let enum_ok = |matches: &dyn Fn(&Value) -> bool| {
            c.enum_values
                .as_ref()
                .is_none_or(|allowed| allowed.iter().any(matches))
        };
        self.ws();
        match self.peek()? {
            b'"' => {
                let s = self.string()?;
                let ok = kind_ok(STRING)
                    && enum_ok(&|v: &Value| v.as_str() == Some(s))
                    && check::string_ok(c, s);
                ok.then(|| scalar(capture, Fact::Str(Cow::Borrowed(s))))
            }
            b'{' => {
                if !kind_ok(OBJECT) || c.enum_values.is_some() {
                    return None;
                }
                self.object(c, capture)
            }
            b'[' => {
                if !kind_ok(ARRAY) || c.enum_values.is_some() {
                    return None;
                }
                self.array(c, capture)
            }
            b't' | b'f' => {
                let v = if self.literal("true") {
                    true
                } else if self.literal("false") {
                    false
                } else {
                    return None;
                };
                let ok = kind_ok(BOOLEAN) && enum_ok(&|e: &Value| e.as_bool() == Some(v));
                ok.then_some(Fact::Bool(v))
            }
            b'n' => {
                if !self.literal("null") {
                    return None;
                }
                let ok = (kind_ok(NULL) && enum_ok(&Value::is_null)) || or_null;
                ok.then_some(Fact::Null)
            }
            _ => {
                let (n, kind) = self.number()?;
                if !kind_ok(kind) || !enum_ok(&|v: &Value| matches!(v, Value::Number(m) if *m == n))
                {
                    return None;
                }
                let (below, above) = check::out_of_range(c, &n);
                (!below && !above).then(|| scalar(capture, Fact::Num(n)))
            }
        }
    }

    fn object(&mut self, c: &Checks, capture: u8) -> Option<Fact<'a>> {
        self.enter()?;
        self.pos += 1;
        let keep = capture >= 2;
        let mut members = Vec::with_capacity(if keep { c.properties.len() } else { 0 });
        let mut seen = 0u64;
        let mut others: Vec<&'a str> = Vec::new();
        let child = capture.saturating_sub(1);
        self.members(|s, key| {
            let fact = match c.properties.iter().position(|(n, _)| n == key) {
                Some(i) => {
                    if seen & (1 << i) != 0 {
                        return None;
                    }
                    seen |= 1 << i;
                    s.check(&c.properties[i].1, child)?
                }
                None => {
                    if others.contains(&key) {
                        return None;
                    }
                    others.push(key);
                    s.check(c.additional.as_ref().unwrap_or(&ANY_NODE), child)?
                }
            };
            if keep {
                members.push((Cow::Borrowed(key), fact));
            }
            Some(())
        })?;
        self.depth -= 1;
        // `required` keeps only names without a schema of their own, so they are among `others`.
        let complete = c.required_mask & !seen == 0
            && c.required
                .iter()
                .all(|name| others.contains(&name.as_str()));
        let fact = if keep {
            Fact::Object(members)
        } else {
            Fact::Other
        };
        complete.then_some(fact)
    }

    fn array(&mut self, c: &Checks, capture: u8) -> Option<Fact<'a>> {
        self.enter()?;
        self.pos += 1;
        let items = c.items.as_ref().unwrap_or(&ANY_NODE);
        let mut len = 0usize;
        self.elements(|s| {
            s.check(items, capture.saturating_sub(1))?;
            len += 1;
            Some(())
        })?;
        self.depth -= 1;
        c.min_items
            .is_none_or(|min| len >= min)
            .then_some(Fact::Array(len))
    }
}

/// A scalar's fact, or [`Fact::Other`] below the capture depth.
fn scalar(capture: u8, fact: Fact<'_>) -> Fact<'_> {
    if capture > 0 { fact } else { Fact::Other }
}

/// `X` of `anyOf [X, {"type": "null"}]` (in either order) when `X` is one plain check.
fn optional(branches: &[Node]) -> Option<&Checks> {
    let is_null = |n: &Node| matches!(n, Node::Checks(c) if is_null_only(c));
    match branches {
        [Node::Checks(x), null] | [null, Node::Checks(x)] if is_null(null) && !is_null_only(x) => {
            Some(x)
        }
        _ => None,
    }
}

/// `{"type": "null"}` and nothing else.
fn is_null_only(c: &Checks) -> bool {
    c.types == NULL
        && c.enum_values.is_none()
        && c.properties.is_empty()
        && c.required.is_empty()
        && c.additional.is_none()
        && c.items.is_none()
}

/// Checks `text` (one whole JSON value) against `node`; `Some` with its view when it passes.
pub(crate) fn accepts<'a>(node: &Node, text: &'a str) -> Option<Fact<'a>> {
    let mut s = Scanner::new(text);
    let fact = s.check(node, CAPTURE_ROOT)?;
    s.at_end().then_some(fact)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str) -> Option<Value> {
        let mut s = Scanner::new(text);
        let v = s.value()?;
        s.at_end().then_some(v)
    }

    #[test]
    fn reads_what_serde_json_reads() {
        for text in [
            r#"{"a":[1,-2,3.5,1e3,-0.25,true,false,null,"x"],"b":{}}"#,
            r#" { "k" : [ ] , "l" : "héllo wörld, a longer string" } "#,
            "18446744073709551615",
            "-9223372036854775808",
            "0",
        ] {
            let ours = value(text).unwrap_or_else(|| panic!("refused {text}"));
            let theirs: Value = serde_json::from_str(text).unwrap();
            assert_eq!(ours, theirs, "{text}");
        }
    }

    #[test]
    fn gives_up_on_anything_it_would_have_to_interpret_or_that_is_not_json() {
        for text in [
            r#""esc\"aped""#,
            "\"tab\tinside\"",
            r#"{"a":1,"a":2}"#,
            "01",
            "-0",
            "1.",
            "1e",
            "18446744073709551616",
            "1e400",
            "tru",
            "nul",
            "[1,]",
            "{\"a\" 1}",
            "[1 2]",
            "\"unterminated",
            "{",
            "",
        ] {
            assert_eq!(value(text), None, "{text:?}");
        }
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(value(&deep), None);
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(value(&ok).is_some());
    }

    #[test]
    fn strings_find_their_end_across_the_eight_byte_steps() {
        for len in 0..40 {
            let s = "x".repeat(len);
            let text = format!("\"{s}\" ");
            let mut sc = Scanner::new(&text);
            assert_eq!(sc.string(), Some(s.as_str()));
            assert!(sc.at_end());
            for bad in ["\\", "\u{1}", "\u{1f}"] {
                let text = format!("\"{s}{bad}yyyyyyyyy\"");
                assert_eq!(Scanner::new(&text).string(), None, "{len} {bad:?}");
            }
        }
    }
}
