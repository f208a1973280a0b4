//! The `headers` column: a message's properties (everything but the body) as compact JSON.
//! JSON keeps the data file inspectable with the `sqlite3` shell; doubles travel as their bit
//! pattern so NaN and signed zero survive.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use fleet_bus::{Message, PropertyValue};
use serde_json::{Map, Value, json};

use crate::config::{CorrelationFilter, Filter};

/// Encodes everything of `msg` except the body and scheduling (stored in columns).
pub(crate) fn encode(msg: &Message) -> Vec<u8> {
    let mut obj = Map::new();
    let mut put = |key: &str, v: &Option<String>| {
        if let Some(v) = v {
            obj.insert(key.to_owned(), Value::String(v.clone()));
        }
    };
    put("mid", &msg.message_id);
    put("cid", &msg.correlation_id);
    put("sub", &msg.subject);
    put("ct", &msg.content_type);
    put("rt", &msg.reply_to);
    put("to", &msg.to);
    if let Some(ttl) = msg.time_to_live {
        obj.insert(
            "ttl".into(),
            json!(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
        );
    }
    if !msg.application_properties.is_empty() {
        obj.insert("p".into(), encode_properties(&msg.application_properties));
    }
    serde_json::to_vec(&Value::Object(obj)).unwrap_or_default()
}

/// Rebuilds a message from its `headers` column and body. The error names what is corrupt.
pub(crate) fn decode(headers: &[u8], body: Bytes) -> Result<Message, String> {
    let value: Value =
        serde_json::from_slice(headers).map_err(|e| format!("headers are not JSON: {e}"))?;
    let obj = value.as_object().ok_or("headers are not an object")?;
    let text = |key: &str| obj.get(key).and_then(Value::as_str).map(str::to_owned);
    let props = decode_properties(obj.get("p"))?;
    Ok(Message {
        body,
        message_id: text("mid"),
        correlation_id: text("cid"),
        subject: text("sub"),
        content_type: text("ct"),
        reply_to: text("rt"),
        to: text("to"),
        application_properties: props,
        scheduled_enqueue_time: None,
        time_to_live: obj
            .get("ttl")
            .and_then(Value::as_u64)
            .map(Duration::from_millis),
    })
}

/// Application properties as a JSON object of `[tag, value]` pairs.
fn encode_properties(props: &BTreeMap<String, PropertyValue>) -> Value {
    let props: Map<String, Value> = props
        .iter()
        .map(|(k, v)| {
            let tagged = match v {
                PropertyValue::String(s) => json!(["s", s]),
                PropertyValue::Int(i) => json!(["i", i]),
                PropertyValue::Double(d) => json!(["d", d.to_bits()]),
                PropertyValue::Bool(b) => json!(["b", b]),
                PropertyValue::Timestamp(t) => json!([
                    "t",
                    t.timestamp_nanos_opt()
                        .unwrap_or(t.timestamp_millis().saturating_mul(1_000_000))
                ]),
                PropertyValue::Uuid(u) => json!(["u", u.to_string()]),
            };
            (k.clone(), tagged)
        })
        .collect();
    Value::Object(props)
}

/// The inverse of [`encode_properties`]; absent means none.
fn decode_properties(value: Option<&Value>) -> Result<BTreeMap<String, PropertyValue>, String> {
    let mut props = BTreeMap::new();
    if let Some(p) = value.and_then(Value::as_object) {
        for (name, tagged) in p {
            let bad = || format!("property {name:?} is corrupt: {tagged}");
            let [tag, v] = tagged.as_array().map(Vec::as_slice).ok_or_else(bad)? else {
                return Err(bad());
            };
            let value = match tag.as_str().ok_or_else(bad)? {
                "s" => PropertyValue::String(v.as_str().ok_or_else(bad)?.to_owned()),
                "i" => PropertyValue::Int(v.as_i64().ok_or_else(bad)?),
                "d" => PropertyValue::Double(f64::from_bits(v.as_u64().ok_or_else(bad)?)),
                "b" => PropertyValue::Bool(v.as_bool().ok_or_else(bad)?),
                "t" => PropertyValue::Timestamp(DateTime::<Utc>::from_timestamp_nanos(
                    v.as_i64().ok_or_else(bad)?,
                )),
                "u" => {
                    PropertyValue::Uuid(v.as_str().and_then(|s| s.parse().ok()).ok_or_else(bad)?)
                }
                _ => return Err(bad()),
            };
            props.insert(name.clone(), value);
        }
    }
    Ok(props)
}

/// A rule filter as the `filter` column of the `rules` table:
/// `{"f":"true"}`, `{"f":"false"}` or `{"f":"correlation", "cid": …, "p": {…}}`.
pub(crate) fn encode_filter(filter: &Filter) -> String {
    let value = match filter {
        Filter::True => json!({"f": "true"}),
        Filter::False => json!({"f": "false"}),
        Filter::Correlation(c) => {
            let mut obj = Map::new();
            obj.insert("f".into(), json!("correlation"));
            for (key, v) in [
                ("ct", &c.content_type),
                ("cid", &c.correlation_id),
                ("sub", &c.subject),
                ("mid", &c.message_id),
                ("rt", &c.reply_to),
                ("to", &c.to),
            ] {
                if let Some(v) = v {
                    obj.insert(key.into(), Value::String(v.clone()));
                }
            }
            if !c.properties.is_empty() {
                obj.insert("p".into(), encode_properties(&c.properties));
            }
            Value::Object(obj)
        }
    };
    value.to_string()
}

/// The inverse of [`encode_filter`]; the error names what is corrupt.
pub(crate) fn decode_filter(text: &str) -> Result<Filter, String> {
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("filter is not JSON: {e}"))?;
    let obj = value.as_object().ok_or("filter is not an object")?;
    let field = |key: &str| obj.get(key).and_then(Value::as_str).map(str::to_owned);
    match field("f").as_deref() {
        Some("true") => Ok(Filter::True),
        Some("false") => Ok(Filter::False),
        Some("correlation") => Ok(Filter::Correlation(CorrelationFilter {
            content_type: field("ct"),
            correlation_id: field("cid"),
            subject: field("sub"),
            message_id: field("mid"),
            reply_to: field("rt"),
            to: field("to"),
            properties: decode_properties(obj.get("p"))?,
        })),
        other => Err(format!("unknown filter kind {other:?} in {text}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_property_type_round_trips() {
        let at = DateTime::<Utc>::from_timestamp_nanos(1_767_225_600_123_456_789);
        let msg = Message {
            body: Bytes::from_static(b"body"),
            message_id: Some("m".into()),
            correlation_id: Some("c".into()),
            subject: Some("s".into()),
            content_type: Some("application/json".into()),
            reply_to: Some("r".into()),
            to: Some("t".into()),
            time_to_live: Some(Duration::from_millis(1500)),
            ..Message::default()
        }
        .with_property("s", "v")
        .with_property("i", -7i64)
        .with_property("d", PropertyValue::Double(f64::NAN))
        .with_property("z", PropertyValue::Double(-0.0))
        .with_property("b", true)
        .with_property("t", PropertyValue::Timestamp(at))
        .with_property("u", PropertyValue::Uuid(uuid::Uuid::new_v4()));
        let back = decode(&encode(&msg), msg.body.clone()).unwrap();
        let bits = |m: &Message, k: &str| match m.application_properties[k] {
            PropertyValue::Double(d) => d.to_bits(),
            _ => 0,
        };
        assert_eq!(bits(&back, "d"), bits(&msg, "d"));
        assert_eq!(bits(&back, "z"), bits(&msg, "z"));
        let strip = |mut m: Message| {
            m.application_properties.remove("d");
            m
        };
        assert_eq!(strip(back), strip(msg));
    }

    #[test]
    fn every_filter_round_trips() {
        let mut correlation = CorrelationFilter {
            subject: Some("Deploy".into()),
            correlation_id: Some("c".into()),
            to: Some("t".into()),
            ..CorrelationFilter::default()
        };
        correlation.properties.insert("tenant".into(), "t1".into());
        correlation
            .properties
            .insert("n".into(), PropertyValue::Int(2));
        for filter in [
            Filter::True,
            Filter::False,
            Filter::Correlation(correlation),
        ] {
            assert_eq!(decode_filter(&encode_filter(&filter)).unwrap(), filter);
        }
        assert!(decode_filter(r#"{"f":"sql"}"#).unwrap_err().contains("sql"));
        assert!(decode_filter("[").is_err());
    }

    #[test]
    fn corrupt_headers_are_reported_not_panicked_on() {
        assert!(decode(b"[1]", Bytes::new()).is_err());
        assert!(
            decode(br#"{"p":{"x":["q",1]}}"#, Bytes::new())
                .unwrap_err()
                .contains("\"x\"")
        );
    }
}
