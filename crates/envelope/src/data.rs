//! [`Data`]: an envelope's payload object, held as JSON text.
//!
//! A worker forwards, stores and re-encodes far more envelopes than it reads fields of, and its
//! handlers read the typed [`Payload`](crate::Payload), not a JSON tree. So `data` stays the text
//! it was decoded from (or encoded to): decoding checks it in one streaming pass without building
//! a tree, encoding copies it, and the typed read deserializes straight from it. A
//! `serde_json::Value` view is built on first use and kept, for code that inspects members by
//! name (`envelope.data["serviceId"]`).

use std::fmt;
use std::ops::Index;
use std::sync::OnceLock;

use serde::ser::{Serialize, Serializer};
use serde_json::Value;
use serde_json::value::RawValue;

use crate::event_type::EventType;

/// The `data` object of an envelope, as JSON text plus a lazily built [`Value`] view.
///
/// Equality compares the JSON values, so two envelopes that differ only in the spacing or member
/// order inside `data` are equal; [`Data::as_str`] gives the exact text that is encoded.
pub struct Data {
    /// Valid JSON by construction: written by `serde_json`, or read by the decoder.
    raw: Box<str>,
    value: OnceLock<Value>,
    /// The event type and version whose payload rules this exact text is known to pass (set by
    /// the decoder), so the typed read need not check it again.
    checked: Option<(EventType, u32)>,
}

impl Data {
    /// `{}`.
    pub fn empty() -> Data {
        Data {
            raw: empty_object(),
            value: OnceLock::new(),
            checked: None,
        }
    }

    /// The compact JSON text of `value`.
    pub fn from_value(value: &Value) -> Data {
        // A `Value` always serializes: its map keys are strings and it holds no non-finite float.
        let raw =
            serde_json::to_string(value).map_or_else(|_| empty_object(), String::into_boxed_str);
        Data {
            raw,
            value: OnceLock::new(),
            checked: None,
        }
    }

    /// The compact JSON text of a serializable value (e.g. a payload struct), without building a
    /// [`Value`] first. `None` when `value` does not serialize to JSON.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Option<Data> {
        // Room for a typical payload up front, so the writer does not grow the buffer in steps.
        let mut buf = Vec::with_capacity(512);
        serde_json::to_writer(&mut buf, value).ok()?;
        let raw = String::from_utf8(buf).ok()?.into_boxed_str();
        Some(Data {
            raw,
            value: OnceLock::new(),
            checked: None,
        })
    }

    /// Wraps text the decoder has read as JSON and found to pass every payload rule of
    /// `event_type` v`version`.
    pub(crate) fn checked(text: &str, event_type: EventType, version: u32) -> Data {
        Data {
            raw: text.into(),
            value: OnceLock::new(),
            checked: Some((event_type, version)),
        }
    }

    /// Whether the text is known to pass every payload rule of `event_type` v`version`.
    pub(crate) fn is_checked_as(&self, event_type: EventType, version: u32) -> bool {
        self.checked == Some((event_type, version))
    }

    /// The JSON text, exactly as [`Envelope::encode`](crate::Envelope::encode) writes it.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The [`Value`] view, parsed on first use.
    pub fn value(&self) -> &Value {
        self.value.get_or_init(|| {
            // The text is valid JSON by construction (decoded, or serialized by serde_json).
            serde_json::from_str(&self.raw).unwrap_or(Value::Null)
        })
    }

    /// An owned copy of the [`Value`] view, e.g. to change a member and build a new [`Data`].
    pub fn to_value(&self) -> Value {
        self.value().clone()
    }
}

/// `{}`.
fn empty_object() -> Box<str> {
    "{}".into()
}

impl Default for Data {
    fn default() -> Self {
        Data::empty()
    }
}

impl Clone for Data {
    fn clone(&self) -> Self {
        Data {
            raw: self.raw.clone(),
            value: OnceLock::new(),
            checked: self.checked,
        }
    }
}

impl PartialEq for Data {
    fn eq(&self, other: &Data) -> bool {
        self.raw == other.raw || self.value() == other.value()
    }
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl fmt::Display for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl From<Value> for Data {
    fn from(value: Value) -> Data {
        let data = Data::from_value(&value);
        let _ = data.value.set(value);
        data
    }
}

impl From<&Value> for Data {
    fn from(value: &Value) -> Data {
        Data::from_value(value)
    }
}

impl PartialEq<Value> for Data {
    fn eq(&self, other: &Value) -> bool {
        self.value() == other
    }
}

impl PartialEq<Data> for Value {
    fn eq(&self, other: &Data) -> bool {
        self == other.value()
    }
}

/// `data["serviceId"]`: the member's value, or `Value::Null` when absent (as with [`Value`]).
impl Index<&str> for Data {
    type Output = Value;

    fn index(&self, key: &str) -> &Value {
        &self.value()[key]
    }
}

/// Writes the text unchanged into `serde_json` output (other formats get the value).
/// [`Envelope::encode`](crate::Envelope::encode) copies the text without this.
impl Serialize for Data {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match RawValue::from_string(self.raw.to_string()) {
            Ok(raw) => raw.serialize(serializer),
            Err(_) => self.value().serialize(serializer),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn text_and_view_agree_and_equality_ignores_spacing() {
        let a = Data::from_value(&json!({"serviceId": "cart", "replicas": 3}));
        assert_eq!(a.as_str(), r#"{"serviceId":"cart","replicas":3}"#);
        assert_eq!(a["serviceId"], "cart");
        assert_eq!(a["missing"], Value::Null);
        let spaced = Data::checked(
            r#"{ "serviceId" : "cart", "replicas" : 3 }"#,
            EventType::ScalingPolicyApplied,
            1,
        );
        assert_eq!(a, spaced);
        assert_ne!(
            a,
            Data::from_value(&json!({"serviceId": "cart", "replicas": 4}))
        );
        assert_eq!(Data::default().as_str(), "{}");
    }

    #[test]
    fn serializing_writes_the_text_unchanged() {
        let d = Data::checked(r#"{"n":1.50}"#, EventType::ScalingPolicyApplied, 1);
        let out =
            serde_json::to_string(&json!({"data": serde_json::to_value(&d).unwrap()})).unwrap();
        assert_eq!(out, r#"{"data":{"n":1.5}}"#);
        assert_eq!(serde_json::to_string(&d).unwrap(), r#"{"n":1.50}"#);
    }
}
