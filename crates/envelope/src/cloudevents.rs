//! CloudEvents 1.0, JSON structured mode (`application/cloudevents+json`), both ways, losslessly.
//!
//! | envelope | CloudEvents |
//! |---|---|
//! | `eventId` | `id` |
//! | `source` | `source` |
//! | `eventType` | `type` |
//! | — | `specversion` = `"1.0"` |
//! | `subject` | `subject` |
//! | `occurredAt` | `time` |
//! | — | `datacontenttype` = `"application/json"` |
//! | `data` | `data` |
//! | `tenantId`, `environmentId`, `correlationId`, `causationId` | extensions `tenantid`, `environmentid`, `correlationid`, `causationid` |
//! | `eventVersion` | extension `eventversion` (integer) |
//! | `traceId` + `spanId` | extension `traceparent` (`00-<traceId>-<spanId>-01`) |
//! | unknown field `n` with a string, boolean or integer value, `n` a valid extension name | extension `n` |
//! | every other unknown field | extension `fleetextensions`: a JSON object text of them |
//!
//! Without `spanId` the parent-id is derived from `eventId` ([`crate::ids::derived_span_id`]);
//! on the way back a parent-id equal to that derivation means "no spanId". Trace flags are
//! always written as `01` and not kept.

use serde_json::{Map, Value};

use crate::decode::{Names, Slots, build};
use crate::envelope::{Envelope, FIELD_NAMES, format_time};
use crate::error::{EnvelopeError, ErrorKind, FieldError, quoted};
use crate::ids::derived_span_id;
use crate::parse::parse_object;
use crate::rules;

/// The content type of structured-mode CloudEvents JSON.
pub const CONTENT_TYPE: &str = "application/cloudevents+json";

/// The extension that carries unknown envelope fields that cannot be extensions of their own.
pub const FLEET_EXTENSIONS: &str = "fleetextensions";

/// Attribute names the mapping owns; an unknown envelope field with one of these names travels
/// inside [`FLEET_EXTENSIONS`].
const RESERVED: &[&str] = &[
    "specversion",
    "id",
    "source",
    "type",
    "subject",
    "time",
    "datacontenttype",
    "data",
    "tenantid",
    "environmentid",
    "correlationid",
    "causationid",
    "eventversion",
    "traceparent",
    FLEET_EXTENSIONS,
];

const NAMES: Names = Names {
    event_id: "id",
    event_type: "type",
    event_version: "eventversion",
    source: "source",
    tenant_id: "tenantid",
    environment_id: "environmentid",
    subject: "subject",
    occurred_at: "time",
    trace_id: "traceparent",
    span_id: "traceparent",
    correlation_id: "correlationid",
    causation_id: "causationid",
};

/// CloudEvents extension names: lowercase ASCII letters and digits, at most 20 (spec advice).
fn is_extension_name(name: &str) -> bool {
    (1..=20).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

fn is_direct(name: &str, value: &Value) -> bool {
    let scalar = matches!(value, Value::String(_) | Value::Bool(_)) || value.as_i64().is_some();
    scalar && is_extension_name(name) && !RESERVED.contains(&name)
}

/// The envelope as a structured-mode CloudEvent.
pub fn to_cloudevent(envelope: &Envelope) -> Value {
    let mut ce = Map::new();
    ce.insert("specversion".into(), "1.0".into());
    ce.insert("id".into(), envelope.event_id.to_string().into());
    ce.insert("source".into(), envelope.source.clone().into());
    ce.insert("type".into(), envelope.event_type.as_str().into());
    if let Some(s) = &envelope.subject {
        ce.insert("subject".into(), s.clone().into());
    }
    ce.insert("time".into(), format_time(&envelope.occurred_at).into());
    ce.insert("datacontenttype".into(), "application/json".into());
    ce.insert("tenantid".into(), envelope.tenant_id.clone().into());
    ce.insert(
        "environmentid".into(),
        envelope.environment_id.clone().into(),
    );
    ce.insert(
        "correlationid".into(),
        envelope.correlation_id.clone().into(),
    );
    if let Some(c) = envelope.causation_id {
        ce.insert("causationid".into(), c.to_string().into());
    }
    ce.insert("eventversion".into(), envelope.event_version.into());
    ce.insert("traceparent".into(), envelope.traceparent().into());
    let mut packed = Map::new();
    for (k, v) in &envelope.extensions {
        if is_direct(k, v) {
            ce.insert(k.clone(), v.clone());
        } else {
            packed.insert(k.clone(), v.clone());
        }
    }
    if !packed.is_empty() {
        ce.insert(
            FLEET_EXTENSIONS.into(),
            Value::Object(packed).to_string().into(),
        );
    }
    ce.insert("data".into(), envelope.data.to_value());
    Value::Object(ce)
}

/// [`to_cloudevent`] as bytes.
pub fn encode(envelope: &Envelope) -> Vec<u8> {
    serde_json::to_vec(&to_cloudevent(envelope)).unwrap_or_default()
}

/// Decodes a structured-mode CloudEvent into an envelope, with the same checks as
/// [`Envelope::decode`]; errors name CloudEvents attributes (`tenantid: required`).
pub fn from_cloudevent(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
    from_map(parse_object(bytes)?)
}

/// [`from_cloudevent`] on an already parsed object.
pub(crate) fn from_map(map: Map<String, Value>) -> Result<Envelope, EnvelopeError> {
    let mut s = Slots::default();
    let mut errors = Vec::new();
    let mut traceparent = None;
    let mut packed = None;
    let mut specversion = None;
    for (key, value) in map {
        match key.as_str() {
            "specversion" => specversion = Some(value),
            "id" => s.event_id = Some(value),
            "type" => s.event_type = Some(value),
            "source" => s.source = Some(value),
            "subject" => s.subject = Some(value),
            "time" => s.occurred_at = Some(value),
            "tenantid" => s.tenant_id = Some(value),
            "environmentid" => s.environment_id = Some(value),
            "correlationid" => s.correlation_id = Some(value),
            "causationid" => s.causation_id = Some(value),
            "eventversion" => s.event_version = Some(numeric(value)),
            "traceparent" => traceparent = Some(value),
            "data" => s.data = Some(value),
            FLEET_EXTENSIONS => packed = Some(value),
            "datacontenttype" => match value
                .as_str()
                .map(|t| t.split(';').next().unwrap_or("").trim())
            {
                Some(t) if t.eq_ignore_ascii_case("application/json") => {}
                _ => errors.push(FieldError::new(
                    "datacontenttype",
                    format!("must be application/json (got {})", rules::show(&value)),
                )),
            },
            "data_base64" => errors.push(FieldError::new(
                "data_base64",
                "not supported: data must be a JSON object",
            )),
            k if FIELD_NAMES.contains(&k) => errors.push(FieldError::new(
                k,
                "is a Fleet envelope field, not a CloudEvents attribute (use the mapped attribute)",
            )),
            _ => {
                s.extensions.insert(key, value);
            }
        }
    }
    match specversion {
        Some(Value::String(v)) if v == "1.0" => {}
        None => errors.push(FieldError::new("specversion", "required")),
        Some(other) => errors.push(FieldError::new(
            "specversion",
            format!("must be \"1.0\" (got {})", rules::show(&other)),
        )),
    }
    if let Some(p) = packed {
        unpack(p, &mut s.extensions, &mut errors);
    }
    match traceparent {
        None | Some(Value::Null) => {}
        Some(Value::String(tp)) => match split_traceparent(&tp) {
            Some((trace, span)) => {
                let event_id = s
                    .event_id
                    .as_ref()
                    .and_then(Value::as_str)
                    .and_then(|id| rules::uuid(id).ok());
                s.trace_id = Some(Value::String(trace.to_owned()));
                if event_id.map(derived_span_id).as_deref() != Some(span) {
                    s.span_id = Some(Value::String(span.to_owned()));
                }
            }
            None => {
                errors.push(FieldError::new(
                    "traceparent",
                    format!(
                        "must be a W3C traceparent like 00-<32 hex>-<16 hex>-01 (got {})",
                        quoted(&tp)
                    ),
                ));
                // Recorded above; a well-formed stand-in keeps `build` from adding a second line.
                s.trace_id = Some(Value::String(STAND_IN_TRACE_ID.to_owned()));
            }
        },
        Some(other) => {
            errors.push(FieldError::new(
                "traceparent",
                format!("must be a string (got {})", rules::show(&other)),
            ));
            s.trace_id = Some(Value::String(STAND_IN_TRACE_ID.to_owned()));
        }
    }
    // `build` fails whenever `errors` is not empty, so a stand-in never reaches an envelope.
    build(s, &NAMES, errors)
}

const STAND_IN_TRACE_ID: &str = "00000000000000000000000000000001";

/// `eventversion` may arrive as a string (some transports only carry strings).
fn numeric(value: Value) -> Value {
    match &value {
        Value::String(s) => s.parse::<u64>().map(Value::from).unwrap_or(value),
        _ => value,
    }
}

fn unpack(packed: Value, extensions: &mut Map<String, Value>, errors: &mut Vec<FieldError>) {
    let inner = match &packed {
        Value::String(text) => parse_object(text.as_bytes()),
        other => Err(EnvelopeError::single(
            ErrorKind::Invalid,
            "$",
            format!(
                "must be a string holding a JSON object (got {})",
                rules::kind_of(other)
            ),
        )),
    };
    match inner {
        Ok(map) => {
            for (k, v) in map {
                if FIELD_NAMES.contains(&k.as_str()) || extensions.contains_key(&k) {
                    errors.push(FieldError::new(
                        FLEET_EXTENSIONS,
                        format!("member {} repeats a field", quoted(&k)),
                    ));
                } else {
                    extensions.insert(k, v);
                }
            }
        }
        Err(e) => {
            for fe in e.errors {
                errors.push(FieldError::new(
                    FLEET_EXTENSIONS,
                    format!("{}: {}", fe.path, fe.rule),
                ));
            }
        }
    }
}

/// `00-<trace-id>-<parent-id>-<flags>` → (trace-id, parent-id); shapes are checked by `build`.
fn split_traceparent(tp: &str) -> Option<(&str, &str)> {
    let mut parts = tp.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex2 = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if parts.next().is_some()
        || version != "00"
        || !hex2(flags)
        || trace.len() != 32
        || span.len() != 16
    {
        return None;
    }
    Some((trace, span))
}
