//! Messages as senders hand them over and as receivers get them back.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// An application property value: the AMQP simple types Service Bus carries in
/// `application-properties`.
#[derive(Debug, Clone, PartialEq)]
pub enum PropertyValue {
    /// A UTF-8 string.
    String(String),
    /// A signed 64-bit integer (narrower integers widen to this).
    Int(i64),
    /// A 64-bit float.
    Double(f64),
    /// A boolean.
    Bool(bool),
    /// A UTC timestamp (millisecond precision on the wire).
    Timestamp(DateTime<Utc>),
    /// A UUID.
    Uuid(Uuid),
}

impl PropertyValue {
    /// The string inside, when this is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::String(s) => Some(s),
            _ => None,
        }
    }
}

impl fmt::Display for PropertyValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::String(s) => f.write_str(s),
            Self::Int(i) => write!(f, "{i}"),
            Self::Double(d) => write!(f, "{d}"),
            Self::Bool(b) => write!(f, "{b}"),
            Self::Timestamp(t) => write!(f, "{}", t.to_rfc3339()),
            Self::Uuid(u) => write!(f, "{u}"),
        }
    }
}

impl From<&str> for PropertyValue {
    fn from(value: &str) -> Self {
        Self::String(value.to_owned())
    }
}

impl From<String> for PropertyValue {
    fn from(value: String) -> Self {
        Self::String(value)
    }
}

impl From<i64> for PropertyValue {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<bool> for PropertyValue {
    fn from(value: bool) -> Self {
        Self::Bool(value)
    }
}

/// A message as a sender hands it over. `Default` gives an empty body and no properties, so
/// callers write `Message { body, ..Default::default() }` and stay source-compatible as fields
/// are added.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    /// The payload, opaque to the bus.
    pub body: Bytes,
    /// Application-assigned id; the key of broker-side duplicate detection.
    pub message_id: Option<String>,
    /// Correlation id (routing and tracing).
    pub correlation_id: Option<String>,
    /// Service Bus `Subject` (AMQP `subject`, formerly `Label`); correlation filters route on it.
    pub subject: Option<String>,
    /// MIME type of the body.
    pub content_type: Option<String>,
    /// AMQP `reply-to`; carried so correlation filters on `ReplyTo` can match.
    pub reply_to: Option<String>,
    /// AMQP `to`; carried so correlation filters on `To` can match.
    pub to: Option<String>,
    /// Application properties (tenant, event type, trace context...).
    pub application_properties: BTreeMap<String, PropertyValue>,
    /// When set on a sent message, the broker holds it until then (same as `schedule`).
    pub scheduled_enqueue_time: Option<DateTime<Utc>>,
    /// Time to live from enqueue; the entity's default applies when absent, and the smaller of
    /// the two wins.
    pub time_to_live: Option<Duration>,
}

impl Message {
    /// A message with this body and nothing else.
    pub fn new(body: impl Into<Bytes>) -> Self {
        Self {
            body: body.into(),
            ..Self::default()
        }
    }

    /// Sets the message id.
    pub fn with_message_id(mut self, id: impl Into<String>) -> Self {
        self.message_id = Some(id.into());
        self
    }

    /// Sets the subject.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }

    /// Adds an application property.
    pub fn with_property(
        mut self,
        name: impl Into<String>,
        value: impl Into<PropertyValue>,
    ) -> Self {
        self.application_properties
            .insert(name.into(), value.into());
        self
    }

    /// The size the broker counts against its limit: body plus the textual headers and
    /// application properties (an approximation of the encoded AMQP size, never below the body).
    pub fn size(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        let props: usize = self
            .application_properties
            .iter()
            .map(|(k, v)| {
                k.len()
                    + match v {
                        PropertyValue::String(s) => s.len(),
                        PropertyValue::Uuid(_) => 16,
                        _ => 8,
                    }
            })
            .sum();
        self.body.len()
            + text(&self.message_id)
            + text(&self.correlation_id)
            + text(&self.subject)
            + text(&self.content_type)
            + text(&self.reply_to)
            + text(&self.to)
            + props
    }
}

/// Where a received message sits in its entity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum MessageState {
    /// Available for (or currently under) delivery.
    #[default]
    Active,
    /// Set aside by `defer`; only `receive_deferred` by sequence number delivers it.
    Deferred,
    /// Waiting for its scheduled enqueue time (seen through `peek` only).
    Scheduled,
}

/// A message as a receiver gets it: the original message intact plus broker fields.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedMessage {
    /// The message as sent (abandon / dead-letter may have modified application properties).
    pub message: Message,
    /// Broker-assigned, unique and increasing within the queue or topic.
    pub sequence_number: i64,
    /// When the broker enqueued it (for a scheduled message: its scheduled time).
    pub enqueued_time: DateTime<Utc>,
    /// Deliveries so far including this one (1 on the first receive; what `peek` shows is the
    /// number of deliveries that already happened).
    pub delivery_count: u32,
    /// End of this delivery's lock (peek-lock only).
    pub locked_until: Option<DateTime<Utc>>,
    /// The token that settles this delivery (peek-lock only); a UUID as in Service Bus.
    pub lock_token: Option<Uuid>,
    /// When the message expires (absent: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// Why it was dead-lettered.
    pub dead_letter_reason: Option<String>,
    /// A longer explanation of the dead-lettering.
    pub dead_letter_description: Option<String>,
    /// The entity the message was dead-lettered from.
    pub dead_letter_source: Option<String>,
    /// Active, deferred or scheduled.
    pub state: MessageState,
}

impl Default for ReceivedMessage {
    fn default() -> Self {
        Self {
            message: Message::default(),
            sequence_number: 0,
            enqueued_time: DateTime::<Utc>::UNIX_EPOCH,
            delivery_count: 0,
            locked_until: None,
            lock_token: None,
            expires_at: None,
            dead_letter_reason: None,
            dead_letter_description: None,
            dead_letter_source: None,
            state: MessageState::Active,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_counts_body_headers_and_properties() {
        let msg = Message::new(vec![0u8; 100])
            .with_message_id("abc")
            .with_property("k", "vv");
        assert_eq!(msg.size(), 100 + 3 + 1 + 2);
    }
}
