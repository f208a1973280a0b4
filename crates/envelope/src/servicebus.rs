//! How an envelope travels as an Azure Service Bus message (DESIGN §3).
//!
//! | message | value |
//! |---|---|
//! | body | [`Envelope::encode`] |
//! | `content-type` | `application/json` |
//! | `MessageId` | `eventId` (broker duplicate detection) |
//! | `CorrelationId` | `correlationId` |
//! | `Subject` | `eventType` (subscriptions route on it with correlation filters) |
//! | application property `tenantId` | `tenantId` |
//! | application property `environmentId` | `environmentId` |
//! | application property `eventType` | `eventType` |
//! | application property `eventVersion` | `eventVersion` (integer) |
//! | application properties `traceparent` and `Diagnostic-Id` | [`Envelope::traceparent`] |

use std::collections::BTreeMap;

use crate::envelope::Envelope;

/// The body's content type.
pub const CONTENT_TYPE: &str = "application/json";

/// An application property value. The bus crate has a richer type; the envelope only needs
/// these two, and keeping its own type keeps this crate free of transport dependencies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PropertyValue {
    /// A string property.
    String(String),
    /// An integer property.
    Int(i64),
}

/// The broker properties of the message carrying an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageProperties {
    /// `MessageId` = `eventId`.
    pub message_id: String,
    /// `CorrelationId` = `correlationId`.
    pub correlation_id: String,
    /// `Subject` = `eventType`.
    pub subject: String,
    /// Always `application/json`.
    pub content_type: String,
    /// `tenantId`, `environmentId`, `eventType`, `eventVersion`, `traceparent`, `Diagnostic-Id`.
    pub application_properties: BTreeMap<String, PropertyValue>,
}

/// An application property value borrowed from the envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyRef<'a> {
    /// A string property.
    Str(&'a str),
    /// An integer property.
    Int(i64),
}

impl PropertyRef<'_> {
    /// The owned value.
    pub fn to_owned_value(self) -> PropertyValue {
        match self {
            PropertyRef::Str(s) => PropertyValue::String(s.to_owned()),
            PropertyRef::Int(i) => PropertyValue::Int(i),
        }
    }
}

/// The application properties of the message carrying `envelope`, in a fixed order, borrowed
/// from the envelope and from `traceparent` (which must be [`Envelope::traceparent`]). This is
/// the one definition of the mapping; [`to_message_properties`] owns a copy of it.
pub fn application_properties<'a>(
    envelope: &'a Envelope,
    traceparent: &'a str,
) -> [(&'static str, PropertyRef<'a>); 6] {
    [
        ("tenantId", PropertyRef::Str(&envelope.tenant_id)),
        ("environmentId", PropertyRef::Str(&envelope.environment_id)),
        ("eventType", PropertyRef::Str(envelope.event_type.as_str())),
        (
            "eventVersion",
            PropertyRef::Int(i64::from(envelope.event_version)),
        ),
        ("traceparent", PropertyRef::Str(traceparent)),
        ("Diagnostic-Id", PropertyRef::Str(traceparent)),
    ]
}

/// The properties for sending `envelope`.
pub fn to_message_properties(envelope: &Envelope) -> MessageProperties {
    let traceparent = envelope.traceparent();
    let props = application_properties(envelope, &traceparent)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned_value()))
        .collect();
    MessageProperties {
        message_id: envelope
            .event_id
            .hyphenated()
            .encode_lower(&mut uuid::Uuid::encode_buffer())
            .to_owned(),
        correlation_id: envelope.correlation_id.clone(),
        subject: envelope.event_type.as_str().to_owned(),
        content_type: CONTENT_TYPE.to_owned(),
        application_properties: props,
    }
}
