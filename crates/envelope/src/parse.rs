//! Bounded, single-pass JSON parsing that refuses duplicate keys at any depth.
//!
//! `serde_json::Value` silently keeps the last of two equal keys, which would let two readers of
//! the same bytes disagree about a field. This visitor builds the same `Value` tree in the same
//! pass and records every repeated key with its path, so the check costs no second parse.
//! Depth is bounded by serde_json's recursion limit (128), and size by the caller before parsing.

use std::cell::RefCell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use crate::MAX_ENVELOPE_BYTES;
use crate::error::{EnvelopeError, ErrorKind, FieldError};
use crate::rules::kind_of;

/// Where a value sits, as a linked list on the stack: rendering happens only for errors.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    /// The body itself.
    Root,
    /// A member of the object at the parent path.
    Key(&'a Path<'a>, &'a str),
    /// An element of the array at the parent path.
    Index(&'a Path<'a>, usize),
}

impl Path<'_> {
    /// The path as errors print it.
    pub(crate) fn render(&self) -> String {
        let mut segments = Vec::new();
        let mut cur = self;
        loop {
            match cur {
                Path::Root => break,
                Path::Key(parent, key) => {
                    segments.push(Segment::Key(key));
                    cur = parent;
                }
                Path::Index(parent, i) => {
                    segments.push(Segment::Index(*i));
                    cur = parent;
                }
            }
        }
        segments.reverse();
        render_segments(&segments)
    }
}

/// One step of a field path.
pub(crate) enum Segment<'a> {
    /// An object member.
    Key(&'a str),
    /// An array element.
    Index(usize),
}

/// Renders a path the way every error of this crate names fields: `data.probes[0]["odd key"]`,
/// `$` for the root.
pub(crate) fn render_segments(segments: &[Segment<'_>]) -> String {
    if segments.is_empty() {
        return "$".to_owned();
    }
    let mut out = String::new();
    for s in segments {
        match s {
            Segment::Key(k) if is_plain_key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Segment::Key(k) => out.push_str(&format!("[{k:?}]")),
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn is_plain_key(k: &str) -> bool {
    !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'$')
}

/// State shared by every level of one parse.
#[derive(Default)]
struct Ctx {
    duplicates: RefCell<Vec<FieldError>>,
    /// The innermost value that failed to parse; the first writer wins.
    error_path: RefCell<Option<String>>,
}

impl Ctx {
    fn failed_at(&self, path: &Path<'_>) {
        let mut slot = self.error_path.borrow_mut();
        if slot.is_none() {
            *slot = Some(path.render());
        }
    }
}

struct ValueSeed<'c, 'p> {
    ctx: &'c Ctx,
    path: Path<'p>,
}

impl<'de> DeserializeSeed<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ValueSeed<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // JSON text cannot spell NaN or infinity, so this is always Some.
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let path = Path::Index(&self.path, items.len());
            match seq.next_element_seed(ValueSeed {
                ctx: self.ctx,
                path,
            }) {
                Ok(Some(v)) => items.push(v),
                Ok(None) => return Ok(Value::Array(items)),
                Err(e) => {
                    self.ctx.failed_at(&path);
                    return Err(e);
                }
            }
        }
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        loop {
            let key: String = match access.next_key() {
                Ok(Some(k)) => k,
                Ok(None) => return Ok(Value::Object(map)),
                Err(e) => {
                    self.ctx.failed_at(&self.path);
                    return Err(e);
                }
            };
            let path = Path::Key(&self.path, &key);
            let value = match access.next_value_seed(ValueSeed {
                ctx: self.ctx,
                path,
            }) {
                Ok(v) => v,
                Err(e) => {
                    self.ctx.failed_at(&path);
                    return Err(e);
                }
            };
            if map.contains_key(&key) {
                let rule = "duplicate key (a JSON object must not repeat a member name)";
                self.ctx
                    .duplicates
                    .borrow_mut()
                    .push(FieldError::new(path.render(), rule));
            } else {
                map.insert(key, value);
            }
        }
    }
}

/// Parses a body that must be one JSON object, enforcing the size limit first, then UTF-8,
/// syntax, depth and duplicate keys. Every duplicate is reported, not only the first.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, EnvelopeError> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return Err(EnvelopeError::single(
            ErrorKind::TooLarge,
            "$",
            format!(
                "envelope is {} bytes, over the {MAX_ENVELOPE_BYTES}-byte limit",
                bytes.len()
            ),
        ));
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        EnvelopeError::single(
            ErrorKind::Malformed,
            "$",
            format!("not valid UTF-8 (bad byte at offset {})", e.valid_up_to()),
        )
    })?;
    let ctx = Ctx::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = ValueSeed {
        ctx: &ctx,
        path: Path::Root,
    }
    .deserialize(&mut de)
    .and_then(|v| de.end().map(|()| v));
    let value = match parsed {
        Ok(v) => v,
        Err(e) => {
            let path = ctx
                .error_path
                .borrow_mut()
                .take()
                .unwrap_or_else(|| "$".to_owned());
            return Err(syntax_error(path, e));
        }
    };
    let duplicates = ctx.duplicates.into_inner();
    if !duplicates.is_empty() {
        return Err(EnvelopeError {
            kind: ErrorKind::Malformed,
            errors: duplicates,
            source: None,
        });
    }
    match value {
        Value::Object(map) => Ok(map),
        other => Err(EnvelopeError::single(
            ErrorKind::Malformed,
            "$",
            format!("must be a JSON object (got {})", kind_of(&other)),
        )),
    }
}

fn syntax_error(path: String, e: serde_json::Error) -> EnvelopeError {
    let msg = e.to_string();
    let (path, rule) = if msg.starts_with("recursion limit exceeded") {
        ("$".to_owned(), "nested deeper than 128 levels".to_owned())
    } else if e.is_eof() {
        (
            "$".to_owned(),
            format!("invalid JSON: unexpected end of input ({msg})"),
        )
    } else {
        (path, format!("invalid JSON: {msg}"))
    };
    EnvelopeError {
        kind: ErrorKind::Malformed,
        errors: vec![FieldError::new(path, rule)],
        source: Some(e),
    }
}
