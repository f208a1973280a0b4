//! `fleet_bus::Message` ↔ the AMQP message azservicebus sends and receives.
//!
//! Outgoing messages are built as raw AMQP (one data section) so every field and every typed
//! application property goes on the wire exactly as Service Bus expects. Incoming messages are
//! read from the raw AMQP message with checked types: azservicebus' own accessors panic on an
//! annotation of an unexpected type, and a broker (or emulator) must never crash a worker.

use std::collections::BTreeMap;
use std::time::Duration;

use azservicebus::ServiceBusMessage;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use fe2o3_amqp_types::messaging::annotations::OwnedKey;
use fe2o3_amqp_types::messaging::{
    ApplicationProperties, Body, Data, Header, Message as AmqpMessage, MessageAnnotations,
    MessageId, Properties,
};
use fe2o3_amqp_types::primitives::{
    Binary, OrderedMap, SimpleValue, Symbol, Timestamp, Uuid as AmqpUuid, Value,
};
use fleet_bus::{BusError, Message, MessageState, PropertyValue, ReceivedMessage};
use ordered_float::OrderedFloat;
use uuid::Uuid;

const SEQUENCE_NUMBER: &str = "x-opt-sequence-number";
const ENQUEUED_TIME: &str = "x-opt-enqueued-time";
const LOCKED_UNTIL: &str = "x-opt-locked-until";
const SCHEDULED_ENQUEUE_TIME: &str = "x-opt-scheduled-enqueue-time";
const DEAD_LETTER_SOURCE: &str = "x-opt-deadletter-source";
const MESSAGE_STATE: &str = "x-opt-message-state";
const LOCK_TOKEN: &str = "x-opt-lock-token";
const DEAD_LETTER_REASON: &str = "DeadLetterReason";
const DEAD_LETTER_DESCRIPTION: &str = "DeadLetterErrorDescription";

/// The AMQP header field `ttl` is a u32 of milliseconds.
const MAX_TTL: Duration = Duration::from_millis(u32::MAX as u64);

/// Builds the AMQP message for `msg`; `InvalidArgument` names a field that cannot be encoded.
pub(crate) fn to_amqp(msg: &Message) -> Result<ServiceBusMessage, BusError> {
    let ttl = match msg.time_to_live {
        Some(ttl) if ttl > MAX_TTL => {
            return Err(BusError::invalid(format!(
                "time to live {ttl:?} exceeds the AMQP maximum of {MAX_TTL:?}"
            )));
        }
        Some(ttl) => Some(u32::try_from(ttl.as_millis()).unwrap_or(u32::MAX)),
        None => None,
    };
    let header = Header {
        durable: true,
        ttl,
        ..Header::default()
    };
    let properties = Properties {
        message_id: msg.message_id.clone().map(MessageId::String),
        correlation_id: msg.correlation_id.clone().map(MessageId::String),
        subject: msg.subject.clone(),
        content_type: msg.content_type.as_deref().map(Symbol::from),
        reply_to: msg.reply_to.clone(),
        to: msg.to.clone(),
        ..Properties::default()
    };
    let mut app = OrderedMap::new();
    for (name, value) in &msg.application_properties {
        app.insert(name.clone(), to_simple(value));
    }
    let message_annotations = msg.scheduled_enqueue_time.map(|at| {
        let mut annotations = OrderedMap::new();
        annotations.insert(
            OwnedKey::Symbol(Symbol::from(SCHEDULED_ENQUEUE_TIME)),
            Value::Timestamp(Timestamp::from_milliseconds(at.timestamp_millis())),
        );
        MessageAnnotations(annotations)
    });
    let raw = AmqpMessage {
        header: Some(header),
        delivery_annotations: None,
        message_annotations,
        properties: Some(properties),
        application_properties: (!app.is_empty()).then_some(ApplicationProperties(app)),
        body: Data(Binary::from(msg.body.to_vec())),
        footer: None,
    };
    Ok(ServiceBusMessage::from_raw_amqp_message(raw))
}

fn to_simple(value: &PropertyValue) -> SimpleValue {
    match value {
        PropertyValue::String(s) => SimpleValue::String(s.clone()),
        PropertyValue::Int(i) => SimpleValue::Long(*i),
        PropertyValue::Double(d) => SimpleValue::Double(OrderedFloat(*d)),
        PropertyValue::Bool(b) => SimpleValue::Bool(*b),
        PropertyValue::Timestamp(t) => {
            SimpleValue::Timestamp(Timestamp::from_milliseconds(t.timestamp_millis()))
        }
        PropertyValue::Uuid(u) => SimpleValue::Uuid(AmqpUuid::from(*u.as_bytes())),
    }
}

/// The AMQP value of a property to modify (abandon, dead-letter).
pub(crate) fn to_value(value: &PropertyValue) -> Value {
    match value {
        PropertyValue::String(s) => Value::String(s.clone()),
        PropertyValue::Int(i) => Value::Long(*i),
        PropertyValue::Double(d) => Value::Double(OrderedFloat(*d)),
        PropertyValue::Bool(b) => Value::Bool(*b),
        PropertyValue::Timestamp(t) => {
            Value::Timestamp(Timestamp::from_milliseconds(t.timestamp_millis()))
        }
        PropertyValue::Uuid(u) => Value::Uuid(AmqpUuid::from(*u.as_bytes())),
    }
}

/// Properties to modify as azservicebus takes them (`None` when empty).
pub(crate) fn to_modify(
    props: &BTreeMap<String, PropertyValue>,
) -> Option<OrderedMap<String, Value>> {
    if props.is_empty() {
        return None;
    }
    Some(
        props
            .iter()
            .map(|(k, v)| (k.clone(), to_value(v)))
            .collect(),
    )
}

fn from_simple(value: &SimpleValue) -> Option<PropertyValue> {
    Some(match value {
        SimpleValue::String(s) => PropertyValue::String(s.clone()),
        SimpleValue::Symbol(s) => PropertyValue::String(s.as_str().to_owned()),
        SimpleValue::Bool(b) => PropertyValue::Bool(*b),
        SimpleValue::Ubyte(v) => PropertyValue::Int(i64::from(*v)),
        SimpleValue::Ushort(v) => PropertyValue::Int(i64::from(*v)),
        SimpleValue::Uint(v) => PropertyValue::Int(i64::from(*v)),
        SimpleValue::Ulong(v) => PropertyValue::Int(i64::try_from(*v).ok()?),
        SimpleValue::Byte(v) => PropertyValue::Int(i64::from(*v)),
        SimpleValue::Short(v) => PropertyValue::Int(i64::from(*v)),
        SimpleValue::Int(v) => PropertyValue::Int(i64::from(*v)),
        SimpleValue::Long(v) => PropertyValue::Int(*v),
        SimpleValue::Float(v) => PropertyValue::Double(f64::from(v.0)),
        SimpleValue::Double(v) => PropertyValue::Double(v.0),
        SimpleValue::Timestamp(t) => PropertyValue::Timestamp(millis(t.milliseconds())?),
        SimpleValue::Uuid(u) => PropertyValue::Uuid(Uuid::from_bytes(*u.as_inner())),
        SimpleValue::Char(c) => PropertyValue::String(c.to_string()),
        // Binary, decimal, described and null have no port equivalent; they are dropped
        // rather than failing the whole message.
        _ => return None,
    })
}

fn millis(ms: i64) -> Option<DateTime<Utc>> {
    DateTime::<Utc>::from_timestamp_millis(ms)
}

fn message_id_text(id: &MessageId) -> String {
    match id {
        MessageId::String(s) => s.clone(),
        MessageId::Ulong(n) => n.to_string(),
        MessageId::Uuid(u) => Uuid::from_bytes(*u.as_inner()).to_string(),
        MessageId::Binary(b) => b.iter().map(|x| format!("{x:02x}")).collect(),
    }
}

fn annotation<'a>(raw: &'a AmqpMessage<Body<Value>>, name: &str) -> Option<&'a Value> {
    raw.message_annotations
        .as_ref()?
        .0
        .iter()
        .find_map(|(k, v)| match k {
            OwnedKey::Symbol(s) if s.as_str() == name => Some(v),
            _ => None,
        })
}

fn annotation_time(raw: &AmqpMessage<Body<Value>>, name: &str) -> Option<DateTime<Utc>> {
    match annotation(raw, name)? {
        Value::Timestamp(t) => millis(t.milliseconds()),
        _ => None,
    }
}

fn body_bytes(body: &Body<Value>) -> Bytes {
    match body {
        Body::Data(batch) => {
            let mut out = Vec::new();
            for data in batch.iter() {
                out.extend_from_slice(&data.0);
            }
            Bytes::from(out)
        }
        Body::Value(v) => match &v.0 {
            Value::Binary(b) => Bytes::from(b.to_vec()),
            Value::String(s) => Bytes::from(s.clone().into_bytes()),
            _ => Bytes::new(),
        },
        _ => Bytes::new(),
    }
}

/// How a message reached us: decides how the header's delivery count is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Delivered (received or received deferred): the header counts earlier deliveries, Service
    /// Bus' `DeliveryCount` includes this one, so it is header + 1.
    Delivered,
    /// Peeked: no delivery happened, the count is the header's (deliveries so far).
    Peeked,
}

/// Reads a message as the broker handed it over.
pub(crate) fn from_amqp(
    raw: &AmqpMessage<Body<Value>>,
    lock_token: Option<Uuid>,
    seen: Seen,
) -> ReceivedMessage {
    let props = raw.properties.as_ref();
    let text = |f: fn(&Properties) -> Option<&String>| props.and_then(f).cloned();
    let mut application_properties = BTreeMap::new();
    if let Some(app) = &raw.application_properties {
        for (k, v) in app.0.iter() {
            if let Some(v) = from_simple(v) {
                application_properties.insert(k.clone(), v);
            }
        }
    }
    let dead_letter_reason = application_properties
        .get(DEAD_LETTER_REASON)
        .and_then(PropertyValue::as_str)
        .map(str::to_owned);
    let dead_letter_description = application_properties
        .get(DEAD_LETTER_DESCRIPTION)
        .and_then(PropertyValue::as_str)
        .map(str::to_owned);
    let header = raw.header.as_ref();
    let header_count = header.map_or(0, |h| h.delivery_count);
    let delivery_count = match seen {
        Seen::Delivered => header_count.saturating_add(1),
        Seen::Peeked => header_count,
    };
    let enqueued_time = annotation_time(raw, ENQUEUED_TIME).unwrap_or(DateTime::<Utc>::UNIX_EPOCH);
    let ttl = header
        .and_then(|h| h.ttl)
        .map(|ms| Duration::from_millis(u64::from(ms)));
    let expires_at = props
        .and_then(|p| p.absolute_expiry_time.as_ref())
        .and_then(|t| millis(t.milliseconds()))
        .or_else(|| {
            ttl.and_then(|t| chrono::Duration::from_std(t).ok())
                .and_then(|t| enqueued_time.checked_add_signed(t))
        });
    let state = match annotation(raw, MESSAGE_STATE) {
        Some(Value::Int(1) | Value::Long(1)) => MessageState::Deferred,
        Some(Value::Int(2) | Value::Long(2)) => MessageState::Scheduled,
        _ => MessageState::Active,
    };
    let sequence_number = match annotation(raw, SEQUENCE_NUMBER) {
        Some(Value::Long(n)) => *n,
        Some(Value::Int(n)) => i64::from(*n),
        Some(Value::Ulong(n)) => i64::try_from(*n).unwrap_or(i64::MAX),
        _ => 0,
    };
    let dead_letter_source = match annotation(raw, DEAD_LETTER_SOURCE) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Symbol(s)) => Some(s.as_str().to_owned()),
        _ => None,
    };
    let message = Message {
        body: body_bytes(&raw.body),
        message_id: props
            .and_then(|p| p.message_id.as_ref())
            .map(message_id_text),
        correlation_id: props
            .and_then(|p| p.correlation_id.as_ref())
            .map(message_id_text),
        subject: text(|p| p.subject.as_ref()),
        content_type: props
            .and_then(|p| p.content_type.as_ref())
            .map(|s| s.as_str().to_owned()),
        reply_to: text(|p| p.reply_to.as_ref()),
        to: text(|p| p.to.as_ref()),
        application_properties,
        scheduled_enqueue_time: annotation_time(raw, SCHEDULED_ENQUEUE_TIME),
        time_to_live: ttl,
    };
    ReceivedMessage {
        message,
        sequence_number,
        enqueued_time,
        delivery_count,
        locked_until: annotation_time(raw, LOCKED_UNTIL),
        lock_token,
        expires_at,
        dead_letter_reason,
        dead_letter_description,
        dead_letter_source,
        state,
    }
}

/// The lock token the broker put in the delivery annotations (or in the message annotations of
/// a message received by sequence number), when there is one.
pub(crate) fn annotated_lock_token(raw: &AmqpMessage<Body<Value>>) -> Option<Uuid> {
    let from = |v: &Value| match v {
        Value::Uuid(u) => Some(Uuid::from_bytes(*u.as_inner())),
        _ => None,
    };
    raw.delivery_annotations
        .as_ref()
        .and_then(|d| {
            d.0.iter().find_map(|(k, v)| match k {
                OwnedKey::Symbol(s) if s.as_str() == LOCK_TOKEN => from(v),
                _ => None,
            })
        })
        .or_else(|| annotation(raw, LOCK_TOKEN).and_then(from))
}

/// Converts a chrono time for azservicebus (which uses `time`).
pub(crate) fn to_offset(at: DateTime<Utc>) -> Result<time::OffsetDateTime, BusError> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(at.timestamp_millis()) * 1_000_000)
        .map_err(|_| BusError::invalid(format!("time {at} is out of range")))
}

/// Converts a `time` instant from azservicebus.
pub(crate) fn from_offset(at: time::OffsetDateTime) -> DateTime<Utc> {
    let ms = i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX);
    millis(ms).unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
}
