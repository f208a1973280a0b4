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

/// The properties for sending `envelope`.
pub fn to_message_properties(envelope: &Envelope) -> MessageProperties {
    let traceparent = envelope.traceparent();
    let mut props = BTreeMap::new();
    props.insert(
        "tenantId".to_owned(),
        PropertyValue::String(envelope.tenant_id.clone()),
    );
    props.insert(
        "environmentId".to_owned(),
        PropertyValue::String(envelope.environment_id.clone()),
    );
    props.insert(
        "eventType".to_owned(),
        PropertyValue::String(envelope.event_type.as_str().to_owned()),
    );
    props.insert(
        "eventVersion".to_owned(),
        PropertyValue::Int(i64::from(envelope.event_version)),
    );
    props.insert(
        "traceparent".to_owned(),
        PropertyValue::String(traceparent.clone()),
    );
    props.insert(
        "Diagnostic-Id".to_owned(),
        PropertyValue::String(traceparent),
    );
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
