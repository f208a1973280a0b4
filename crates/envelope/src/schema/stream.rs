//! The accept-only fast path of the payload check: one streaming pass over `data`'s JSON text
//! against the compiled schema, building no tree.
//!
//! It answers one question — does this text pass every rule? — and stops at the first doubt.
//! It never produces an error message: on any failure the decoder runs the full check
//! ([`super::check`] on a parsed `Value`), which reports every broken rule with its path. So the
//! error output has one source, and this pass only has to be *sound*: whatever it accepts, the
//! full check accepts too (a property test holds the two to that).
//!
//! Besides the verdict it returns a shallow [`Fact`] view of the object, which the cross-field
//! rules read. Strings in it borrow from the text whenever the text has no escapes.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Number, Value};

use super::check::{self, ARRAY, BOOLEAN, Checks, INTEGER, NULL, NUMBER, Node, OBJECT, STRING};
use crate::parse::{Path, strict_value};
use crate::payload::rules::Fact;

/// Deeper than this, the pass gives up and leaves the verdict to the full check, which applies
/// the exact nesting limit of the whole body.
const MAX_DEPTH: usize = 100;

/// Capture levels at the `data` object: its members' values, and the members of objects one
/// level down (e.g. `window.start`), are kept for the cross-field rules.
pub(crate) const CAPTURE_ROOT: u8 = 3;

/// A `Checks` with no keyword: anything, with duplicate keys still refused.
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

/// Checks `text` (one JSON value) against `node`; `Some` with the shallow view when it passes.
pub(crate) fn accepts<'a>(node: &Node, text: &'a str) -> Option<Fact<'a>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let fact = Stream {
        node,
        capture: CAPTURE_ROOT,
        depth: 0,
    }
    .deserialize(&mut de)
    .ok()?;
    de.end().ok()?;
    Some(fact)
}

fn reject<E: de::Error, T>() -> Result<T, E> {
    // Never shown: a rejection sends the body to the full check, which names the problem.
    Err(E::custom("left to the full check"))
}

/// One value to check against `node`.
struct Stream<'n> {
    node: &'n Node,
    /// How much of the value to keep in the returned [`Fact`] (see [`CAPTURE_ROOT`]).
    capture: u8,
    depth: usize,
}

impl<'de> DeserializeSeed<'de> for Stream<'_> {
    type Value = Fact<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Fact<'de>, D::Error> {
        if self.depth > MAX_DEPTH {
            return reject();
        }
        let (checks, or_null) = match self.node {
            Node::Any => (&ANYTHING, false),
            Node::Checks(c) => (&**c, false),
            Node::AnyOf(branches) if let Some(c) = optional(branches) => (c, true),
            // Several schemas over one value (`$ref` with siblings, other `anyOf`s): buffer this
            // value (small: an optional struct) and run the full check on it.
            Node::All(_) | Node::AnyOf(_) => {
                let value = strict_value(deserializer)?;
                let mut errors = Vec::new();
                check::check(self.node, &value, &Path::Root, &mut errors);
                if !errors.is_empty() {
                    return reject();
                }
                return Ok(Fact::of_owned(value, self.capture));
            }
        };
        deserializer.deserialize_any(ChecksVisitor {
            c: checks,
            or_null,
            capture: self.capture,
            depth: self.depth,
        })
    }
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

struct ChecksVisitor<'n> {
    c: &'n Checks,
    /// `null` passes too (the `anyOf [X, {"type": "null"}]` of an optional field).
    or_null: bool,
    capture: u8,
    depth: usize,
}

impl ChecksVisitor<'_> {
    fn kind_ok(&self, kind: u8) -> bool {
        self.c.types == 0 || self.c.types & kind != 0
    }

    fn enum_ok(&self, matches: impl Fn(&Value) -> bool) -> bool {
        match &self.c.enum_values {
            None => true,
            Some(allowed) => allowed.iter().any(matches),
        }
    }

    fn number<'de, E: de::Error>(&self, n: Number, kind: u8) -> Result<Fact<'de>, E> {
        if !self.kind_ok(kind) || !self.enum_ok(|v| matches!(v, Value::Number(m) if *m == n)) {
            return reject();
        }
        let (below, above) = check::out_of_range(self.c, &n);
        if below || above {
            return reject();
        }
        Ok(if self.capture > 0 {
            Fact::Num(n)
        } else {
            Fact::Other
        })
    }

    fn string<'de, E: de::Error>(&self, s: Cow<'de, str>) -> Result<Fact<'de>, E> {
        if !self.kind_ok(STRING)
            || !self.enum_ok(|v| v.as_str() == Some(&*s))
            || !check::string_ok(self.c, &s)
        {
            return reject();
        }
        Ok(if self.capture > 0 {
            Fact::Str(s)
        } else {
            Fact::Other
        })
    }

    fn child<'n>(&self, node: &'n Node) -> Stream<'n> {
        Stream {
            node,
            capture: self.capture.saturating_sub(1),
            depth: self.depth + 1,
        }
    }
}

impl<'de> Visitor<'de> for ChecksVisitor<'_> {
    type Value = Fact<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Fact<'de>, E> {
        if !self.kind_ok(BOOLEAN) || !self.enum_ok(|e| e.as_bool() == Some(v)) {
            return reject();
        }
        Ok(Fact::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Fact<'de>, E> {
        self.number(v.into(), INTEGER)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Fact<'de>, E> {
        self.number(v.into(), INTEGER)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Fact<'de>, E> {
        match Number::from_f64(v) {
            Some(n) => self.number(n, NUMBER),
            None => reject(),
        }
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Fact<'de>, E> {
        self.string(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Fact<'de>, E> {
        self.string(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Fact<'de>, E> {
        self.string(Cow::Owned(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Fact<'de>, E> {
        if !((self.kind_ok(NULL) && self.enum_ok(Value::is_null)) || self.or_null) {
            return reject();
        }
        Ok(Fact::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Fact<'de>, A::Error> {
        if !self.kind_ok(ARRAY) || self.c.enum_values.is_some() {
            return reject();
        }
        let items = self.c.items.as_ref().unwrap_or(&ANY_NODE);
        let mut len = 0usize;
        while seq.next_element_seed(self.child(items))?.is_some() {
            len += 1;
        }
        if self.c.min_items.is_some_and(|min| len < min) {
            return reject();
        }
        Ok(Fact::Array(len))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Fact<'de>, A::Error> {
        if !self.kind_ok(OBJECT) || self.c.enum_values.is_some() {
            return reject();
        }
        let keep = self.capture >= 2;
        let mut members = Vec::with_capacity(if keep { self.c.properties.len() } else { 0 });
        let mut seen = 0u64;
        let mut others: Vec<Cow<'de, str>> = Vec::new();
        while let Some(key) = access.next_key_seed(KeySeed)? {
            let fact = match self.c.properties.iter().position(|(n, _)| *n == *key) {
                Some(i) => {
                    if seen & (1 << i) != 0 {
                        return reject();
                    }
                    seen |= 1 << i;
                    access.next_value_seed(self.child(&self.c.properties[i].1))?
                }
                None => {
                    if others.contains(&key) {
                        return reject();
                    }
                    let node = self.c.additional.as_ref().unwrap_or(&ANY_NODE);
                    let fact = access.next_value_seed(self.child(node))?;
                    others.push(key.clone());
                    fact
                }
            };
            if keep {
                members.push((key, fact));
            }
        }
        if self.c.required_mask & !seen != 0 {
            return reject();
        }
        // `required` keeps only names without a schema of their own, so they are among `others`.
        if !self
            .c
            .required
            .iter()
            .all(|name| others.iter().any(|k| k == name))
        {
            return reject();
        }
        Ok(if keep {
            Fact::Object(members)
        } else {
            Fact::Other
        })
    }
}

/// A member name, borrowed from the text when it has no escapes.
struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Cow<'de, str>, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed {
    type Value = Cow<'de, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Borrowed(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Cow<'de, str>, E> {
        Ok(Cow::Owned(v))
    }
}
