//! JSON Schemas of the catalog, generated from the payload types with `schemars`.
//!
//! [`schema_for`] gives a whole envelope of one event type (the envelope fields, with `eventType`
//! and `eventVersion` pinned, and `data` as the generated payload schema). These are the files in
//! `docs/schemas/<EventType>.v1.json`; a test fails when the committed files are stale, and
//! `FLEET_UPDATE_SCHEMAS=1 cargo test -p fleet-envelope` rewrites them.

pub(crate) mod check;
pub(crate) mod stream;

use std::sync::OnceLock;

use serde_json::{Map, Value, json};

use crate::event_type::EventType;
use crate::payload::payload_root_schema;
use crate::rules::{MAX_ID_CHARS, MAX_TEXT_CHARS};

/// The draft the schemas declare.
pub const DRAFT: &str = "https://json-schema.org/draft/2020-12/schema";

/// The generated schema of `event_type`'s v1 payload alone (the `data` object), with its `$defs`.
pub fn payload_schema(event_type: EventType) -> Value {
    payload_root_schema(event_type).to_value()
}

/// The JSON Schema of a whole v1 envelope of `event_type`.
pub fn schema_for(event_type: EventType) -> Value {
    let mut payload = match payload_schema(event_type) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let defs = payload.remove("$defs");
    payload.remove("$schema");
    let description = payload.remove("description");
    payload.remove("title");
    let text = |max: usize| json!({ "type": "string", "minLength": 1, "maxLength": max });
    let mut root = json!({
        "$schema": DRAFT,
        "$id": format!("urn:fleet:schema:{event_type}:v1"),
        "title": format!("{event_type} v1"),
        "description": description.unwrap_or(Value::Null),
        "type": "object",
        "required": [
            "eventId", "eventType", "eventVersion", "source", "tenantId", "environmentId",
            "occurredAt", "traceId", "correlationId", "data"
        ],
        "properties": {
            "eventId": { "description": "Unique id of the event (UUIDv7 for new events, UUIDv5 for emitted ones).", "type": "string", "format": "uuid" },
            "eventType": { "const": event_type.as_str() },
            "eventVersion": { "const": 1 },
            "source": { "description": "URI reference of the producer, e.g. /workers/runtime-deployment.", "type": "string", "minLength": 1, "maxLength": MAX_TEXT_CHARS },
            "tenantId": text(MAX_ID_CHARS),
            "environmentId": text(MAX_ID_CHARS),
            "subject": { "description": "The entity, e.g. services/svc-42.", "type": ["string", "null"], "minLength": 1, "maxLength": MAX_TEXT_CHARS },
            "occurredAt": { "description": "RFC 3339 in UTC (Z or +00:00).", "type": "string", "format": "date-time" },
            "traceId": { "description": "W3C trace-id.", "type": "string", "pattern": "^[0-9a-f]{32}$" },
            "spanId": { "description": "W3C parent-id.", "type": ["string", "null"], "pattern": "^[0-9a-f]{16}$" },
            "correlationId": text(MAX_ID_CHARS),
            "causationId": { "description": "eventId of the triggering event.", "type": ["string", "null"], "format": "uuid" },
            "data": Value::Object(payload),
        },
        "additionalProperties": true,
    });
    if let (Some(defs), Value::Object(root)) = (defs, &mut root) {
        root.insert("$defs".to_owned(), defs);
    }
    root
}

/// The schema files of `docs/schemas/`: (file name, pretty JSON with a final newline).
pub fn schema_files() -> Vec<(String, String)> {
    EventType::ALL
        .iter()
        .map(|t| {
            let text = serde_json::to_string_pretty(&schema_for(*t)).unwrap_or_default();
            (format!("{t}.v1.json"), text + "\n")
        })
        .collect()
}

/// The compiled payload checker of `event_type`, built once per process.
pub(crate) fn compiled(event_type: EventType) -> Result<&'static check::Node, &'static str> {
    static COMPILED: OnceLock<Vec<Result<check::Node, String>>> = OnceLock::new();
    let all = COMPILED.get_or_init(|| {
        EventType::ALL
            .iter()
            .map(|t| {
                let schema = payload_schema(*t);
                let defs = schema
                    .get("$defs")
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default();
                check::compile(&schema, &defs)
            })
            .collect()
    });
    let index = EventType::ALL
        .iter()
        .position(|t| *t == event_type)
        .unwrap_or(0);
    match &all[index] {
        Ok(node) => Ok(node),
        Err(e) => Err(e.as_str()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_payload_schema_compiles() {
        for t in EventType::ALL {
            if let Err(e) = compiled(t) {
                panic!("{t}: {e}");
            }
        }
    }

    #[test]
    fn envelope_schemas_compile_too() {
        // The published envelope schema must stay inside the subset the checker understands.
        for t in EventType::ALL {
            let s = schema_for(t);
            let defs = s
                .get("$defs")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let node = check::compile(&s, &defs).unwrap_or_else(|e| panic!("{t}: {e}"));
            let sample = crate::examples::sample_envelope(t).encode();
            let mut value: Value = serde_json::from_slice(&sample).unwrap_or_default();
            let mut errors = Vec::new();
            check::check(&node, &value, &crate::parse::Path::Root, &mut errors);
            assert!(
                errors.is_empty(),
                "{t}: the sample breaks its published schema: {errors:?}"
            );
            value["eventType"] = json!("SomethingElse");
            value["traceId"] = json!("XYZ");
            check::check(&node, &value, &crate::parse::Path::Root, &mut errors);
            let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
            assert_eq!(paths, ["eventType", "traceId"], "{t}");
        }
    }
}
