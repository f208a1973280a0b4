//! Outbox rows: an emitted envelope as it is stored (body + broker properties as JSON) and as it
//! is published (a bus [`Message`] with `MessageId = eventId`).

use chrono::{DateTime, Utc};
use fleet_bus::{Message, PropertyValue};
use fleet_envelope::Envelope;
use fleet_envelope::servicebus::{self, to_message_properties};
use fleet_store::OutboxMessage;
use serde_json::{Map, Value, json};

/// The outbox row for `envelope`, published later to `destination`.
pub fn outbox_message(
    envelope: &Envelope,
    worker: &str,
    destination: &str,
    now: DateTime<Utc>,
) -> OutboxMessage {
    let props = to_message_properties(envelope);
    let mut app = Map::new();
    for (k, v) in props.application_properties {
        let v = match v {
            servicebus::PropertyValue::String(s) => Value::String(s),
            servicebus::PropertyValue::Int(i) => Value::from(i),
        };
        app.insert(k, v);
    }
    OutboxMessage {
        id: envelope.event_id,
        worker: worker.to_owned(),
        destination: destination.to_owned(),
        body: envelope.encode(),
        content_type: props.content_type,
        properties: json!({
            "correlationId": props.correlation_id,
            "subject": props.subject,
            "applicationProperties": Value::Object(app),
        }),
        created_at: now,
    }
}

/// The bus message publishing an outbox row.
pub fn to_bus_message(row: &OutboxMessage) -> Message {
    into_bus_message(row.clone())
}

/// Like [`to_bus_message`], taking the row so the body moves instead of being copied.
pub fn into_bus_message(row: OutboxMessage) -> Message {
    let mut msg = Message::new(row.body);
    msg.message_id = Some(row.id.to_string());
    msg.content_type = Some(row.content_type);
    let Value::Object(mut props) = row.properties else {
        return msg;
    };
    let mut text = |k: &str| match props.remove(k) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    msg.correlation_id = text("correlationId");
    msg.subject = text("subject");
    if let Some(Value::Object(app)) = props.remove("applicationProperties") {
        for (k, v) in app {
            let value = match v {
                Value::String(s) => PropertyValue::String(s),
                Value::Bool(b) => PropertyValue::Bool(b),
                Value::Number(n) => match n.as_i64() {
                    Some(i) => PropertyValue::Int(i),
                    None => PropertyValue::Double(n.as_f64().unwrap_or_default()),
                },
                other => PropertyValue::String(other.to_string()),
            };
            msg.application_properties.insert(k, value);
        }
    }
    msg
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
        let msg = to_bus_message(&row);
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
}
