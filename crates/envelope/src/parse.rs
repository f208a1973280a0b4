//! Bounded, single-pass JSON parsing that refuses duplicate keys at any depth.
//!
//! `serde_json::Value` silently keeps the last of two equal keys, which would let two readers of
//! the same bytes disagree about a field. This visitor builds the same `Value` tree in the same
//! pass and records every repeated key with its path, so the check costs no second parse.
//! Depth is bounded by serde_json's recursion limit (128), and size by the caller before parsing.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

use crate::decode::{Slots, check_size};
use crate::envelope::FIELD_NAMES;
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
    /// Set when the body is valid JSON but not an object.
    not_object: RefCell<Option<&'static str>>,
}

const DUPLICATE: &str = "duplicate key (a JSON object must not repeat a member name)";

impl Ctx {
    fn duplicate(&self, path: &Path<'_>) {
        self.duplicates
            .borrow_mut()
            .push(FieldError::new(path.render(), DUPLICATE));
    }

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
        // Most payload objects have a handful of members: one allocation up front beats the
        // three or four regrowths an empty map goes through.
        let mut map = Map::with_capacity(8);
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
            match map.entry(key) {
                Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                Entry::Occupied(slot) => self.ctx.duplicate(&Path::Key(&self.path, slot.key())),
            }
        }
    }
}

/// Parses a body that must be one JSON object, enforcing the size limit first, then UTF-8,
/// syntax, depth and duplicate keys. Every duplicate is reported, not only the first.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, EnvelopeError> {
    let value = run(bytes, |de, ctx| {
        ValueSeed {
            ctx,
            path: Path::Root,
        }
        .deserialize(de)
    })?;
    match value {
        Value::Object(map) => Ok(map),
        other => Err(EnvelopeError::single(
            ErrorKind::Malformed,
            "$",
            format!("must be a JSON object (got {})", kind_of(&other)),
        )),
    }
}

/// Parses a Fleet JSON envelope straight into [`Slots`], with the same checks as
/// [`parse_object`]: the top-level object is never built as a map, and its member names are
/// matched without allocating.
pub(crate) fn parse_fleet(bytes: &[u8]) -> Result<Slots, EnvelopeError> {
    run(bytes, |de, ctx| de.deserialize_any(SlotsVisitor { ctx }))
}

type JsonDeserializer<'a> = serde_json::Deserializer<serde_json::de::StrRead<'a>>;

/// Size, UTF-8, then one `parse`; turns every failure into field errors.
fn run<T>(
    bytes: &[u8],
    parse: impl FnOnce(&mut JsonDeserializer<'_>, &Ctx) -> Result<T, serde_json::Error>,
) -> Result<T, EnvelopeError> {
    check_size(bytes.len())?;
    let text = std::str::from_utf8(bytes).map_err(|e| {
        EnvelopeError::single(
            ErrorKind::Malformed,
            "$",
            format!("not valid UTF-8 (bad byte at offset {})", e.valid_up_to()),
        )
    })?;
    let ctx = Ctx::default();
    let mut de = serde_json::Deserializer::from_str(text);
    let parsed = parse(&mut de, &ctx).and_then(|v| de.end().map(|()| v));
    let value = match parsed {
        Ok(v) => v,
        Err(e) => {
            if let Some(kind) = ctx.not_object.take() {
                let rule = format!("must be a JSON object (got {kind})");
                return Err(EnvelopeError::single(ErrorKind::Malformed, "$", rule));
            }
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
    Ok(value)
}

/// A top-level member name: one of the envelope's fields (its index in [`FIELD_NAMES`]) or an
/// extension.
enum Key {
    Field(usize),
    Other(String),
}

struct KeySeed;

impl<'de> DeserializeSeed<'de> for KeySeed {
    type Value = Key;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Key, D::Error> {
        deserializer.deserialize_str(self)
    }
}

impl Visitor<'_> for KeySeed {
    type Value = Key;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E>(self, v: &str) -> Result<Key, E> {
        Ok(match FIELD_NAMES.iter().position(|n| *n == v) {
            Some(i) => Key::Field(i),
            None => Key::Other(v.to_owned()),
        })
    }
}

struct SlotsVisitor<'c> {
    ctx: &'c Ctx,
}

impl SlotsVisitor<'_> {
    fn not_object<E: de::Error>(self, kind: &'static str) -> Result<Slots, E> {
        *self.ctx.not_object.borrow_mut() = Some(kind);
        Err(E::custom("not an object"))
    }
}

impl<'de> Visitor<'de> for SlotsVisitor<'_> {
    type Value = Slots;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Slots, A::Error> {
        let mut slots = Slots::default();
        loop {
            let key = match access.next_key_seed(KeySeed) {
                Ok(Some(k)) => k,
                Ok(None) => return Ok(slots),
                Err(e) => {
                    self.ctx.failed_at(&Path::Root);
                    return Err(e);
                }
            };
            let name = match &key {
                Key::Field(i) => FIELD_NAMES[*i],
                Key::Other(k) => k.as_str(),
            };
            let path = Path::Key(&Path::Root, name);
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
            match key {
                Key::Field(i) => {
                    let slot = slots.field_mut(i);
                    if slot.is_some() {
                        self.ctx.duplicate(&path);
                    } else {
                        *slot = Some(value);
                    }
                }
                Key::Other(k) => match slots.extensions.entry(k) {
                    Entry::Vacant(slot) => {
                        slot.insert(value);
                    }
                    Entry::Occupied(slot) => {
                        self.ctx.duplicate(&Path::Key(&Path::Root, slot.key()))
                    }
                },
            }
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Slots, A::Error> {
        self.not_object("array")
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Slots, E> {
        self.not_object("string")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Slots, E> {
        self.not_object("boolean")
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Slots, E> {
        self.not_object("integer")
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Slots, E> {
        self.not_object("integer")
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Slots, E> {
        self.not_object("number")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Slots, E> {
        self.not_object("null")
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
