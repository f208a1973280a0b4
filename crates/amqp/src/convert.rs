//! Between AMQP messages and the port's `Message` / `ReceivedMessage`.
//!
//! Incoming: the properties section, application properties, body (data sections, or an
//! amqp-value holding binary or a string), `ttl` and `x-opt-scheduled-enqueue-time` become a
//! `fleet_bus::Message`. Outgoing: the original message is re-encoded section by section with
//! the broker's annotations (sequence number, times, lock token, dead-letter source).

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use fe2o3_amqp_types::messaging::message::__private::Deserializable;
use fe2o3_amqp_types::messaging::{
    AmqpValue, ApplicationProperties, Body, Data, DeliveryAnnotations, Header, Message,
    MessageAnnotations, MessageId, Priority, Properties, annotations::OwnedKey,
};
use fe2o3_amqp_types::primitives::{Binary, OrderedMap, SimpleValue, Symbol, Timestamp, Value};
use fleet_bus::{MessageState, PropertyValue, ReceivedMessage};
use serde_bytes::ByteBuf;

use crate::frame::to_amqp;

/// Message format of a Service Bus batch: one data section per encoded message.
pub(crate) const BATCH_FORMAT: u32 = 0x8001_3700;
/// Most messages one batch may carry (a bound on input, far above any client's batch).
const MAX_BATCH: usize = 4_500;

/// A decoded AMQP message with any body.
pub(crate) type AmqpMessage = Message<Body<Value>>;

pub(crate) const LOCK_TOKEN: &str = "x-opt-lock-token";
pub(crate) const SEQUENCE_NUMBER: &str = "x-opt-sequence-number";
pub(crate) const ENQUEUED_TIME: &str = "x-opt-enqueued-time";
pub(crate) const LOCKED_UNTIL: &str = "x-opt-locked-until";
pub(crate) const SCHEDULED_ENQUEUE_TIME: &str = "x-opt-scheduled-enqueue-time";
pub(crate) const DEAD_LETTER_SOURCE: &str = "x-opt-deadletter-source";
pub(crate) const MESSAGE_STATE: &str = "x-opt-message-state";
pub(crate) const DEAD_LETTER_REASON: &str = "DeadLetterReason";
pub(crate) const DEAD_LETTER_DESCRIPTION: &str = "DeadLetterErrorDescription";

/// Decodes an encoded AMQP message; the error says what failed.
pub(crate) fn decode_message(bytes: &[u8]) -> Result<AmqpMessage, String> {
    crate::scan::all(bytes).map_err(|why| format!("malformed message: {why}"))?;
    serde_amqp::from_slice::<Deserializable<AmqpMessage>>(bytes)
        .map(|d| d.0)
        .map_err(|err| format!("undecodable message: {err}"))
}

/// The messages one incoming delivery carries: one, or several for the batch format.
pub(crate) fn bus_messages(format: u32, payload: &[u8]) -> Result<Vec<fleet_bus::Message>, String> {
    let outer = decode_message(payload)?;
    if format != BATCH_FORMAT {
        return Ok(vec![to_bus_message(outer)?]);
    }
    let Body::Data(sections) = outer.body else {
        return Err("a batch must carry its messages in data sections".to_owned());
    };
    let sections: Vec<Data> = sections.into_iter().collect();
    if sections.len() > MAX_BATCH {
        return Err(format!(
            "a batch of {} messages exceeds the limit of {MAX_BATCH}",
            sections.len()
        ));
    }
    sections
        .iter()
        .map(|Data(bytes)| decode_message(bytes).and_then(to_bus_message))
        .collect()
}

/// Converts a decoded AMQP message to the port's message.
pub(crate) fn to_bus_message(msg: AmqpMessage) -> Result<fleet_bus::Message, String> {
    let mut out = fleet_bus::Message {
        body: body_bytes(msg.body)?.into(),
        ..Default::default()
    };
    if let Some(props) = msg.properties {
        out.message_id = props.message_id.map(message_id_text);
        out.correlation_id = props.correlation_id.map(message_id_text);
        out.subject = props.subject;
        out.content_type = props.content_type.map(Symbol::into_inner);
        out.reply_to = props.reply_to;
        out.to = props.to;
    }
    if let Some(ttl) = msg.header.and_then(|h| h.ttl) {
        out.time_to_live = Some(Duration::from_millis(u64::from(ttl)));
    }
    if let Some(annotations) = msg.message_annotations {
        let key = OwnedKey::Symbol(Symbol::from(SCHEDULED_ENQUEUE_TIME));
        if let Some(Value::Timestamp(at)) = annotations.0.get(&key) {
            out.scheduled_enqueue_time = Some(to_datetime(at.milliseconds()));
        }
    }
    if let Some(ApplicationProperties(props)) = msg.application_properties {
        for (name, value) in props {
            if let Some(value) = to_property(&name, value)? {
                out.application_properties.insert(name, value);
            }
        }
    }
    Ok(out)
}

fn body_bytes(body: Body<Value>) -> Result<Vec<u8>, String> {
    match body {
        Body::Data(sections) => Ok(sections
            .into_iter()
            .flat_map(|Data(b)| b.into_vec())
            .collect()),
        Body::Value(AmqpValue(Value::Binary(bytes))) => Ok(bytes.into_vec()),
        Body::Value(AmqpValue(Value::String(text))) => Ok(text.into_bytes()),
        Body::Value(AmqpValue(Value::Null)) | Body::Empty => Ok(Vec::new()),
        Body::Value(_) => {
            Err("an amqp-value body other than binary or string is not supported".to_owned())
        }
        Body::Sequence(_) => Err("an amqp-sequence body is not supported".to_owned()),
    }
}

fn message_id_text(id: MessageId) -> String {
    match id {
        MessageId::String(text) => text,
        MessageId::Ulong(n) => n.to_string(),
        MessageId::Uuid(u) => uuid::Uuid::from(u).to_string(),
        MessageId::Binary(bytes) => bytes.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn to_property(name: &str, value: SimpleValue) -> Result<Option<PropertyValue>, String> {
    Ok(Some(match value {
        SimpleValue::Null => return Ok(None),
        SimpleValue::Bool(b) => PropertyValue::Bool(b),
        SimpleValue::Ubyte(n) => PropertyValue::Int(n.into()),
        SimpleValue::Ushort(n) => PropertyValue::Int(n.into()),
        SimpleValue::Uint(n) => PropertyValue::Int(n.into()),
        SimpleValue::Byte(n) => PropertyValue::Int(n.into()),
        SimpleValue::Short(n) => PropertyValue::Int(n.into()),
        SimpleValue::Int(n) => PropertyValue::Int(n.into()),
        SimpleValue::Long(n) => PropertyValue::Int(n),
        SimpleValue::Ulong(n) => match i64::try_from(n) {
            Ok(n) => PropertyValue::Int(n),
            Err(_) => PropertyValue::String(n.to_string()),
        },
        SimpleValue::Float(f) => PropertyValue::Double(f64::from(f.into_inner())),
        SimpleValue::Double(f) => PropertyValue::Double(f.into_inner()),
        SimpleValue::Char(c) => PropertyValue::String(c.to_string()),
        SimpleValue::Timestamp(t) => PropertyValue::Timestamp(to_datetime(t.milliseconds())),
        SimpleValue::Uuid(u) => PropertyValue::Uuid(u.into()),
        SimpleValue::String(s) => PropertyValue::String(s),
        SimpleValue::Symbol(s) => PropertyValue::String(s.into_inner()),
        other => {
            return Err(format!(
                "application property \"{name}\" has a type the emulator cannot store ({other:?})"
            ));
        }
    }))
}

/// A property value as an AMQP simple value.
pub(crate) fn from_property(value: &PropertyValue) -> SimpleValue {
    match value {
        PropertyValue::String(s) => SimpleValue::String(s.clone()),
        PropertyValue::Int(n) => SimpleValue::Long(*n),
        PropertyValue::Double(f) => SimpleValue::Double((*f).into()),
        PropertyValue::Bool(b) => SimpleValue::Bool(*b),
        PropertyValue::Timestamp(t) => SimpleValue::Timestamp(timestamp(*t)),
        PropertyValue::Uuid(u) => SimpleValue::Uuid((*u).into()),
    }
}

/// A property value from an arbitrary AMQP value (properties-to-modify maps).
pub(crate) fn value_to_property(name: &str, value: Value) -> Result<Option<PropertyValue>, String> {
    let simple = match value {
        Value::Null => SimpleValue::Null,
        Value::Bool(b) => SimpleValue::Bool(b),
        Value::Ubyte(n) => SimpleValue::Ubyte(n),
        Value::Ushort(n) => SimpleValue::Ushort(n),
        Value::Uint(n) => SimpleValue::Uint(n),
        Value::Ulong(n) => SimpleValue::Ulong(n),
        Value::Byte(n) => SimpleValue::Byte(n),
        Value::Short(n) => SimpleValue::Short(n),
        Value::Int(n) => SimpleValue::Int(n),
        Value::Long(n) => SimpleValue::Long(n),
        Value::Float(f) => SimpleValue::Float(f),
        Value::Double(f) => SimpleValue::Double(f),
        Value::Char(c) => SimpleValue::Char(c),
        Value::Timestamp(t) => SimpleValue::Timestamp(t),
        Value::Uuid(u) => SimpleValue::Uuid(u),
        Value::String(s) => SimpleValue::String(s),
        Value::Symbol(s) => SimpleValue::Symbol(s),
        other => {
            return Err(format!(
                "property \"{name}\" has a type the emulator cannot store ({other:?})"
            ));
        }
    };
    to_property(name, simple)
}

pub(crate) fn timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp::from_milliseconds(at.timestamp_millis())
}

pub(crate) fn to_datetime(millis: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(millis).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}

fn annotation(map: &mut OrderedMap<OwnedKey, Value>, key: &str, value: Value) {
    map.insert(OwnedKey::Symbol(Symbol::from(key)), value);
}

/// How a received message is being handed out; decides header count and lock token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A delivery on a receiving link: `delivery_count` includes this delivery.
    Delivery,
    /// A peek: `delivery_count` counts deliveries that already happened.
    Peek,
}

/// Encodes a received message as Service Bus delivers it.
pub(crate) fn encode_received(rm: &ReceivedMessage, purpose: Purpose) -> Result<Vec<u8>, String> {
    let msg = &rm.message;
    let previous = match purpose {
        Purpose::Delivery => rm.delivery_count.saturating_sub(1),
        Purpose::Peek => rm.delivery_count,
    };
    let header = Header {
        durable: true,
        priority: Priority::default(),
        ttl: msg
            .time_to_live
            .map(|ttl| u32::try_from(ttl.as_millis()).unwrap_or(u32::MAX)),
        first_acquirer: false,
        delivery_count: previous,
    };
    let mut out = to_amqp(&header, "header").map_err(|e| e.to_string())?;

    if let (Purpose::Delivery, Some(token)) = (purpose, rm.lock_token) {
        let mut map = OrderedMap::new();
        annotation(&mut map, LOCK_TOKEN, Value::Uuid(token.into()));
        out.extend(
            to_amqp(&DeliveryAnnotations(map), "delivery annotations")
                .map_err(|e| e.to_string())?,
        );
    }

    let mut ann = OrderedMap::new();
    annotation(&mut ann, SEQUENCE_NUMBER, Value::Long(rm.sequence_number));
    annotation(
        &mut ann,
        ENQUEUED_TIME,
        Value::Timestamp(timestamp(rm.enqueued_time)),
    );
    if let (Purpose::Delivery, Some(until)) = (purpose, rm.locked_until) {
        annotation(&mut ann, LOCKED_UNTIL, Value::Timestamp(timestamp(until)));
    }
    if let Some(at) = msg.scheduled_enqueue_time {
        annotation(
            &mut ann,
            SCHEDULED_ENQUEUE_TIME,
            Value::Timestamp(timestamp(at)),
        );
    }
    if let Some(source) = &rm.dead_letter_source {
        annotation(&mut ann, DEAD_LETTER_SOURCE, Value::String(source.clone()));
    }
    let state = match rm.state {
        MessageState::Active => 0,
        MessageState::Deferred => 1,
        MessageState::Scheduled => 2,
    };
    annotation(&mut ann, MESSAGE_STATE, Value::Long(state));
    out.extend(
        to_amqp(&MessageAnnotations(ann), "message annotations").map_err(|e| e.to_string())?,
    );

    let props = Properties {
        message_id: msg.message_id.clone().map(MessageId::String),
        to: msg.to.clone(),
        subject: msg.subject.clone(),
        reply_to: msg.reply_to.clone(),
        correlation_id: msg.correlation_id.clone().map(MessageId::String),
        content_type: msg.content_type.clone().map(Symbol::from),
        absolute_expiry_time: rm.expires_at.map(timestamp),
        ..Properties::default()
    };
    out.extend(to_amqp(&props, "properties").map_err(|e| e.to_string())?);

    let mut app: BTreeMap<String, SimpleValue> = msg
        .application_properties
        .iter()
        .map(|(k, v)| (k.clone(), from_property(v)))
        .collect();
    if let Some(reason) = &rm.dead_letter_reason {
        app.insert(
            DEAD_LETTER_REASON.to_owned(),
            SimpleValue::String(reason.clone()),
        );
    }
    if let Some(description) = &rm.dead_letter_description {
        app.insert(
            DEAD_LETTER_DESCRIPTION.to_owned(),
            SimpleValue::String(description.clone()),
        );
    }
    if !app.is_empty() {
        let map: OrderedMap<String, SimpleValue> = app.into_iter().collect();
        out.extend(
            to_amqp(&ApplicationProperties(map), "application properties")
                .map_err(|e| e.to_string())?,
        );
    }
    out.extend(
        to_amqp(&Data(ByteBuf::from(msg.body.to_vec())), "body").map_err(|e| e.to_string())?,
    );
    Ok(out)
}

/// Encodes a reply (CBS or management): correlation id, application properties, a value body.
pub(crate) fn encode_reply(
    correlation_id: Option<MessageId>,
    properties: Vec<(&str, SimpleValue)>,
    body: Value,
) -> Result<Vec<u8>, String> {
    let props = Properties {
        correlation_id,
        ..Properties::default()
    };
    let mut out = to_amqp(&props, "properties").map_err(|e| e.to_string())?;
    let map: OrderedMap<String, SimpleValue> = properties
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    out.extend(
        to_amqp(&ApplicationProperties(map), "application properties")
            .map_err(|e| e.to_string())?,
    );
    out.extend(to_amqp(&AmqpValue(body), "body").map_err(|e| e.to_string())?);
    Ok(out)
}

/// A binary value (for message bodies inside management replies).
pub(crate) fn binary(bytes: Vec<u8>) -> Value {
    Value::Binary(Binary::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use fleet_bus::Message as BusMessage;

    fn received() -> ReceivedMessage {
        ReceivedMessage {
            message: BusMessage::new(&b"hello"[..])
                .with_message_id("m1")
                .with_subject("S")
                .with_property("tenantId", "t1")
                .with_property("n", 7i64),
            sequence_number: 42,
            delivery_count: 2,
            lock_token: Some(uuid::Uuid::from_u128(
                0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10,
            )),
            locked_until: Some(to_datetime(1_700_000_000_000)),
            enqueued_time: to_datetime(1_600_000_000_000),
            dead_letter_reason: Some("Bad".into()),
            ..ReceivedMessage::default()
        }
    }

    #[test]
    fn a_delivery_round_trips_with_broker_annotations() {
        let bytes = encode_received(&received(), Purpose::Delivery).unwrap();
        let msg = decode_message(&bytes).unwrap();
        assert_eq!(msg.header.as_ref().unwrap().delivery_count, 1);
        let da = msg.delivery_annotations.as_ref().unwrap();
        let token =
            da.0.get(&OwnedKey::Symbol(Symbol::from(LOCK_TOKEN)))
                .unwrap();
        assert_eq!(token, &Value::Uuid(received().lock_token.unwrap().into()));
        let ma = msg.message_annotations.as_ref().unwrap();
        assert_eq!(
            ma.0.get(&OwnedKey::Symbol(Symbol::from(SEQUENCE_NUMBER))),
            Some(&Value::Long(42))
        );
        let app = &msg.application_properties.as_ref().unwrap().0;
        assert_eq!(
            app.get(DEAD_LETTER_REASON),
            Some(&SimpleValue::String("Bad".into()))
        );
        let back = to_bus_message(msg).unwrap();
        assert_eq!(back.body, &b"hello"[..]);
        assert_eq!(back.message_id.as_deref(), Some("m1"));
        assert_eq!(
            back.application_properties.get("n"),
            Some(&PropertyValue::Int(7))
        );
    }

    #[test]
    fn peeks_carry_no_lock_token_and_the_raw_count() {
        let bytes = encode_received(&received(), Purpose::Peek).unwrap();
        let msg = decode_message(&bytes).unwrap();
        assert!(msg.delivery_annotations.is_none());
        assert_eq!(msg.header.unwrap().delivery_count, 2);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode_message(&[0x00, 0x53, 0x75, 0xa0, 0xff]).is_err());
        assert!(bus_messages(BATCH_FORMAT, &[1, 2, 3]).is_err());
    }
}
