//! Outbox rows: an emitted envelope as it is stored (body + broker properties as a JSON
//! document) and as it is published (a bus [`Message`] with `MessageId = eventId`).
//!
//! The stored properties are `{"correlationId", "subject", "applicationProperties": {...}}`.
//! They are written straight from the envelope and read straight into the message, with no
//! JSON tree in between: the relay publishes every row, so both ends sit on the hot path.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use fleet_bus::{Message, PropertyValue};
use fleet_envelope::Envelope;
use fleet_envelope::servicebus::{CONTENT_TYPE, PropertyRef, application_properties};
use fleet_store::{Document, OutboxMessage};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// The outbox row for `envelope`, published later to `destination`.
pub fn outbox_message(
    envelope: &Envelope,
    worker: &str,
    destination: &str,
    now: DateTime<Utc>,
) -> OutboxMessage {
    let traceparent = envelope.traceparent();
    let properties = Document::object(|o| {
        o.string("correlationId", &envelope.correlation_id)
            .string("subject", envelope.event_type.as_str())
            .object("applicationProperties", |app| {
                for (name, value) in application_properties(envelope, &traceparent) {
                    match value {
                        PropertyRef::Str(s) => app.string(name, s),
                        PropertyRef::Int(i) => app.int(name, i),
                    };
                }
            });
    });
    OutboxMessage {
        id: envelope.event_id,
        worker: worker.to_owned(),
        destination: destination.to_owned(),
        body: envelope.encode(),
        content_type: CONTENT_TYPE.to_owned(),
        properties,
        created_at: now,
    }
}

/// The stored properties of a row, read back.
#[derive(Debug, PartialEq, Deserialize)]
struct Loaded {
    #[serde(rename = "correlationId", default)]
    correlation_id: Option<String>,
    #[serde(default)]
    subject: Option<String>,
    #[serde(rename = "applicationProperties", default)]
    application: Properties,
}

#[derive(Debug, Default, PartialEq)]
struct Properties(BTreeMap<String, PropertyValue>);

impl<'de> Deserialize<'de> for Properties {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Properties;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of application properties")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Properties, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((name, Scalar(value))) = map.next_entry::<String, Scalar>()? {
                    out.insert(name, value);
                }
                Ok(Properties(out))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

/// One property value: strings, integers, floats and booleans as themselves; anything else
/// (which the runtime never writes) as its JSON text.
struct Scalar(PropertyValue);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Value;
        impl<'de> Visitor<'de> for Value {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a property value")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(PropertyValue::String(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar, E> {
                Ok(Scalar(PropertyValue::String(v)))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(PropertyValue::Bool(v)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(PropertyValue::Int(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(match i64::try_from(v) {
                    Ok(i) => PropertyValue::Int(i),
                    Err(_) => PropertyValue::Double(v as f64),
                }))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar, E> {
                Ok(Scalar(PropertyValue::Double(v)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar, E> {
                Ok(Scalar(PropertyValue::String("null".to_owned())))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, seq: A) -> Result<Scalar, A::Error> {
                let v = serde_json::Value::deserialize(de::value::SeqAccessDeserializer::new(seq))?;
                Ok(Scalar(PropertyValue::String(v.to_string())))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Scalar, A::Error> {
                let v = serde_json::Value::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Scalar(PropertyValue::String(v.to_string())))
            }
        }
        deserializer.deserialize_any(Value)
    }
}

/// Reads the properties exactly as [`outbox_message`] writes them, without a deserializer.
/// Anything else (escapes, other spacing or member order as PostgreSQL's `jsonb` returns, floats,
/// `-0`, integers past 18 digits) gives `None`, and the serde reader takes over; a test holds the
/// two to the same answers.
fn read_written(text: &str) -> Option<Loaded> {
    let mut r = Reader { text, at: 0 };
    r.literal("{\"correlationId\":")?;
    let correlation_id = r.string()?;
    r.literal(",\"subject\":")?;
    let subject = r.string()?;
    r.literal(",\"applicationProperties\":{")?;
    let mut application = BTreeMap::new();
    if !r.eat(b'}') {
        loop {
            let name = r.string()?;
            r.literal(":")?;
            let value = if r.peek()? == b'"' {
                PropertyValue::String(r.string()?.to_owned())
            } else {
                PropertyValue::Int(r.int()?)
            };
            application.insert(name.to_owned(), value);
            if !r.eat(b',') {
                r.literal("}")?;
                break;
            }
        }
    }
    r.literal("}")?;
    (r.at == text.len()).then(|| Loaded {
        correlation_id: Some(correlation_id.to_owned()),
        subject: Some(subject.to_owned()),
        application: Properties(application),
    })
}

struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    fn rest(&self) -> &'a [u8] {
        self.text.as_bytes().get(self.at..).unwrap_or_default()
    }

    fn literal(&mut self, literal: &str) -> Option<()> {
        self.rest().starts_with(literal.as_bytes()).then(|| {
            self.at += literal.len();
        })
    }

    fn eat(&mut self, byte: u8) -> bool {
        let hit = self.peek() == Some(byte);
        self.at += usize::from(hit);
        hit
    }

    fn peek(&self) -> Option<u8> {
        self.rest().first().copied()
    }

    /// A string with no escapes or control characters.
    fn string(&mut self) -> Option<&'a str> {
        let rest = self.rest();
        if rest.first() != Some(&b'"') {
            return None;
        }
        let len = rest[1..]
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[1 + len] != b'"' {
            return None;
        }
        let start = self.at + 1;
        self.at = start + len + 1;
        self.text.get(start..start + len)
    }

    /// An integer of at most 18 digits (it cannot overflow), no leading zero, not `-0`.
    fn int(&mut self) -> Option<i64> {
        let rest = self.rest();
        let negative = rest.first() == Some(&b'-');
        let digits = &rest[usize::from(negative)..];
        let n = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        if n == 0 || n > 18 || (n > 1 && digits[0] == b'0') {
            return None;
        }
        // A fraction or an exponent makes it a float.
        if matches!(digits.get(n), Some(b'.' | b'e' | b'E')) {
            return None;
        }
        let value = digits[..n]
            .iter()
            .fold(0i64, |v, &d| v * 10 + i64::from(d - b'0'));
        if negative && value == 0 {
            return None;
        }
        self.at += usize::from(negative) + n;
        Some(if negative { -value } else { value })
    }
}

/// A stored outbox row whose properties are not the object the runtime writes.
#[derive(Debug)]
pub struct PropertiesError {
    /// The row's event id.
    pub id: uuid::Uuid,
    /// Why the properties did not decode.
    pub error: serde_json::Error,
}

impl fmt::Display for PropertiesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the properties of outbox row {} are unreadable: {}",
            self.id, self.error
        )
    }
}

impl std::error::Error for PropertiesError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

/// The bus message publishing an outbox row.
pub fn to_bus_message(row: &OutboxMessage) -> Result<Message, PropertiesError> {
    into_bus_message(row.clone())
}

/// Like [`to_bus_message`], taking the row so the body moves instead of being copied.
pub fn into_bus_message(row: OutboxMessage) -> Result<Message, PropertiesError> {
    let loaded = match read_written(row.properties.as_str()) {
        Some(loaded) => loaded,
        None => row
            .properties
            .decode::<Loaded>()
            .map_err(|error| PropertiesError { id: row.id, error })?,
    };
    let mut msg = Message::new(row.body);
    msg.message_id = Some(row.id.to_string());
    msg.content_type = Some(row.content_type);
    msg.correlation_id = loaded.correlation_id;
    msg.subject = loaded.subject;
    msg.application_properties = loaded.application.0;
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_envelope::EventType;
    use fleet_envelope::examples::sample_envelope;

    #[test]
    fn an_outbox_row_round_trips_to_the_service_bus_mapping() {
        let env = sample_envelope(EventType::HealthCheckCompleted);
        let row = outbox_message(&env, "runtime-health", "fleet-events", Utc::now());
        let msg = to_bus_message(&row).unwrap();
        assert_eq!(
            msg.message_id.as_deref(),
            Some(env.event_id.to_string().as_str())
        );
        assert_eq!(msg.subject.as_deref(), Some("HealthCheckCompleted"));
        assert_eq!(
            msg.correlation_id.as_deref(),
            Some(env.correlation_id.as_str())
        );
        assert_eq!(msg.content_type.as_deref(), Some("application/json"));
        let p = &msg.application_properties;
        assert_eq!(
            p.get("tenantId"),
            Some(&PropertyValue::String(env.tenant_id.clone()))
        );
        assert_eq!(p.get("eventVersion"), Some(&PropertyValue::Int(1)));
        assert_eq!(
            p.get("traceparent"),
            Some(&PropertyValue::String(env.traceparent()))
        );
        assert_eq!(Envelope::decode(&msg.body).unwrap(), env);
    }

    #[test]
    fn the_stored_properties_carry_exactly_the_service_bus_mapping() {
        let env = sample_envelope(EventType::ScalingPolicyApplied);
        let row = outbox_message(&env, "scaling-policy", "fleet-events", Utc::now());
        let msg = to_bus_message(&row).unwrap();
        let expected = fleet_envelope::servicebus::to_message_properties(&env);
        assert_eq!(msg.subject.as_deref(), Some(expected.subject.as_str()));
        let want: BTreeMap<String, PropertyValue> = expected
            .application_properties
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    fleet_envelope::servicebus::PropertyValue::String(s) => {
                        PropertyValue::String(s)
                    }
                    fleet_envelope::servicebus::PropertyValue::Int(i) => PropertyValue::Int(i),
                };
                (k, v)
            })
            .collect();
        assert_eq!(msg.application_properties, want);
    }

    #[test]
    fn rows_written_by_other_code_keep_their_property_types() {
        let mut row = outbox_message(
            &sample_envelope(EventType::HealthCheckCompleted),
            "w",
            "fleet-events",
            Utc::now(),
        );
        row.properties = Document::from(serde_json::json!({
            "subject": "S",
            "applicationProperties": {
                "flag": true, "ratio": 0.5, "big": u64::MAX, "n": -3,
                "nested": {"a": [1, 2]}, "list": [1, "x"], "none": null
            }
        }));
        let msg = into_bus_message(row).unwrap();
        assert_eq!(msg.correlation_id, None);
        assert_eq!(msg.subject.as_deref(), Some("S"));
        let p = &msg.application_properties;
        assert_eq!(p["flag"], PropertyValue::Bool(true));
        assert_eq!(p["ratio"], PropertyValue::Double(0.5));
        assert_eq!(p["big"], PropertyValue::Double(u64::MAX as f64));
        assert_eq!(p["n"], PropertyValue::Int(-3));
        assert_eq!(p["nested"], PropertyValue::String(r#"{"a":[1,2]}"#.into()));
        assert_eq!(p["list"], PropertyValue::String(r#"[1,"x"]"#.into()));
        assert_eq!(p["none"], PropertyValue::String("null".into()));
    }

    #[test]
    fn damaged_properties_are_an_error_naming_the_row() {
        let env = sample_envelope(EventType::HealthCheckCompleted);
        let mut row = outbox_message(&env, "w", "fleet-events", Utc::now());
        row.properties = Document::from(serde_json::json!(["not", "an", "object"]));
        let err = into_bus_message(row).unwrap_err();
        assert!(err.to_string().contains(&env.event_id.to_string()), "{err}");
    }

    #[test]
    fn the_fast_reader_agrees_with_the_serde_reader() {
        let env = sample_envelope(EventType::HealthCheckCompleted);
        let written = outbox_message(&env, "w", "fleet-events", Utc::now()).properties;
        assert!(
            read_written(written.as_str()).is_some(),
            "what the runtime writes takes the fast path: {written}"
        );
        let canonical = written.as_str().to_owned();
        let mut cases = vec![
            canonical.clone(),
            r#"{"correlationId":"c","subject":"s","applicationProperties":{}}"#.to_owned(),
            r#"{"correlationId":"c","subject":"s","applicationProperties":{"a":1,"a":"x"}}"#
                .to_owned(),
            r#"{"correlationId":"c\"q","subject":"s","applicationProperties":{}}"#.to_owned(),
            r#"{"subject": "s", "correlationId": "c", "applicationProperties": {"n": 1}}"#
                .to_owned(),
        ];
        for number in [
            "0",
            "-1",
            "7",
            "-0",
            "01",
            "1.5",
            "1e3",
            "-",
            "123456789012345678",
            "1234567890123456789",
            "-9223372036854775808",
            "18446744073709551615",
        ] {
            cases.push(format!(
                r#"{{"correlationId":"c","subject":"s","applicationProperties":{{"n":{number}}}}}"#
            ));
        }
        // Every prefix and every one-byte corruption of the canonical text.
        for cut in 0..canonical.len() {
            cases.push(canonical[..cut].to_owned());
        }
        for (i, _) in canonical.char_indices() {
            for b in ['"', '\\', ',', '}', '1', ' '] {
                let mut s = canonical.clone();
                s.replace_range(i..i + 1, &b.to_string());
                cases.push(s);
            }
        }
        let mut fast = 0;
        for text in &cases {
            let slow = serde_json::from_str::<Loaded>(text).ok();
            if let Some(quick) = read_written(text) {
                fast += 1;
                assert_eq!(Some(quick), slow, "{text}");
            }
        }
        assert!(fast > 10, "only {fast} cases took the fast path");
    }
}
