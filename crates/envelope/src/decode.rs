//! Decoding: from parsed JSON members to a checked [`Envelope`], collecting every error.
//!
//! Both wire forms (Fleet JSON and CloudEvents) fill the same [`Slots`] and share [`build`]; only
//! the names used in error paths differ, so a CloudEvents sender reads `tenantid: required`.

use serde_json::{Map, Value};

use crate::envelope::{Envelope, FIELD_NAMES};
use crate::error::{EnvelopeError, ErrorKind, FieldError};
use crate::event_type::EventType;
use crate::parse::{parse_fleet, parse_object};
use crate::payload::{check_data, unsupported_version};
use crate::rules::{self, MAX_ID_CHARS, MAX_TEXT_CHARS};
use crate::{MAX_ENVELOPE_BYTES, cloudevents};

/// The raw values of the envelope's fields, before their rules are checked.
#[derive(Default)]
pub(crate) struct Slots {
    pub event_id: Option<Value>,
    pub event_type: Option<Value>,
    pub event_version: Option<Value>,
    pub source: Option<Value>,
    pub tenant_id: Option<Value>,
    pub environment_id: Option<Value>,
    pub subject: Option<Value>,
    pub occurred_at: Option<Value>,
    pub trace_id: Option<Value>,
    pub span_id: Option<Value>,
    pub correlation_id: Option<Value>,
    pub causation_id: Option<Value>,
    pub data: Option<Value>,
    pub extensions: Map<String, Value>,
}

impl Slots {
    /// The slot of the field at `index` in [`FIELD_NAMES`].
    pub fn field_mut(&mut self, index: usize) -> &mut Option<Value> {
        match index {
            0 => &mut self.event_id,
            1 => &mut self.event_type,
            2 => &mut self.event_version,
            3 => &mut self.source,
            4 => &mut self.tenant_id,
            5 => &mut self.environment_id,
            6 => &mut self.subject,
            7 => &mut self.occurred_at,
            8 => &mut self.trace_id,
            9 => &mut self.span_id,
            10 => &mut self.correlation_id,
            11 => &mut self.causation_id,
            _ => &mut self.data,
        }
    }

    /// Sorts the members of a parsed Fleet JSON object into slots; unknown ones are extensions.
    fn from_map(map: Map<String, Value>) -> Slots {
        let mut s = Slots::default();
        for (key, value) in map {
            match FIELD_NAMES.iter().position(|n| *n == key) {
                Some(i) => *s.field_mut(i) = Some(value),
                None => {
                    s.extensions.insert(key, value);
                }
            }
        }
        s
    }
}

/// What each field is called in error paths.
pub(crate) struct Names {
    pub event_id: &'static str,
    pub event_type: &'static str,
    pub event_version: &'static str,
    pub source: &'static str,
    pub tenant_id: &'static str,
    pub environment_id: &'static str,
    pub subject: &'static str,
    pub occurred_at: &'static str,
    pub trace_id: &'static str,
    pub span_id: &'static str,
    pub correlation_id: &'static str,
    pub causation_id: &'static str,
}

const FLEET_NAMES: Names = Names {
    event_id: "eventId",
    event_type: "eventType",
    event_version: "eventVersion",
    source: "source",
    tenant_id: "tenantId",
    environment_id: "environmentId",
    subject: "subject",
    occurred_at: "occurredAt",
    trace_id: "traceId",
    span_id: "spanId",
    correlation_id: "correlationId",
    causation_id: "causationId",
};

/// Collects errors while reading slots.
struct Reader {
    errors: Vec<FieldError>,
    unsupported: usize,
}

impl Reader {
    fn push(&mut self, path: &str, rule: impl Into<String>) {
        self.errors.push(FieldError::new(path, rule));
    }

    /// A required string; `None` after recording why when it is missing or not a string.
    fn required_str(&mut self, v: Option<Value>, path: &str) -> Option<String> {
        match v {
            None | Some(Value::Null) => {
                self.push(path, "required");
                None
            }
            Some(Value::String(s)) => Some(s),
            Some(other) => {
                self.push(
                    path,
                    format!("must be a string (got {})", rules::show(&other)),
                );
                None
            }
        }
    }

    /// An optional string; JSON `null` counts as absent. `Err(())` after recording a bad value.
    fn optional_str(&mut self, v: Option<Value>, path: &str) -> Result<Option<String>, ()> {
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => {
                self.push(
                    path,
                    format!("must be a string (got {})", rules::show(&other)),
                );
                Err(())
            }
        }
    }

    fn apply<T>(&mut self, path: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|rule| self.push(path, rule)).ok()
    }
}

/// Checks every rule on `slots` and builds the envelope, or returns every broken rule.
pub(crate) fn build(
    slots: Slots,
    names: &Names,
    errors: Vec<FieldError>,
) -> Result<Envelope, EnvelopeError> {
    let mut r = Reader {
        errors,
        unsupported: 0,
    };

    let event_id = r
        .required_str(slots.event_id, names.event_id)
        .and_then(|s| r.apply(names.event_id, rules::uuid(&s)));

    let event_type = r
        .required_str(slots.event_type, names.event_type)
        .and_then(|s| {
            let parsed = s.parse::<EventType>().map_err(|e| {
                r.unsupported += 1;
                e.to_string()
            });
            r.apply(names.event_type, parsed)
        });

    let event_version = match slots.event_version {
        None | Some(Value::Null) => {
            r.push(names.event_version, "required");
            None
        }
        Some(v) => match v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| *n >= 1)
        {
            Some(n) => Some(n),
            None => {
                r.push(
                    names.event_version,
                    format!("must be an integer >= 1 (got {})", rules::show(&v)),
                );
                None
            }
        },
    };
    let supported = match (event_type, event_version) {
        (Some(t), Some(v)) if !t.supports_version(v) => {
            r.unsupported += 1;
            r.push(names.event_version, unsupported_version(t, v));
            false
        }
        (Some(_), Some(_)) => true,
        _ => false,
    };

    let source = r
        .required_str(slots.source, names.source)
        .and_then(|s| r.apply(names.source, rules::uri_reference(&s)).map(|()| s));
    let tenant_id = required_text(&mut r, slots.tenant_id, names.tenant_id, MAX_ID_CHARS);
    let environment_id = required_text(
        &mut r,
        slots.environment_id,
        names.environment_id,
        MAX_ID_CHARS,
    );
    let subject = r
        .optional_str(slots.subject, names.subject)
        .and_then(|s| match s {
            Some(s) => r
                .apply(names.subject, rules::text(&s, MAX_TEXT_CHARS))
                .map(|()| Some(s))
                .ok_or(()),
            None => Ok(None),
        });
    let occurred_at = r
        .required_str(slots.occurred_at, names.occurred_at)
        .and_then(|s| r.apply(names.occurred_at, rules::timestamp(&s)));
    let trace_id = r
        .required_str(slots.trace_id, names.trace_id)
        .and_then(|s| r.apply(names.trace_id, rules::trace_id(&s)).map(|()| s));
    let span_id = r
        .optional_str(slots.span_id, names.span_id)
        .and_then(|s| match s {
            Some(s) => r
                .apply(names.span_id, rules::span_id(&s))
                .map(|()| Some(s))
                .ok_or(()),
            None => Ok(None),
        });
    let correlation_id = required_text(
        &mut r,
        slots.correlation_id,
        names.correlation_id,
        MAX_ID_CHARS,
    );
    let causation_id = r
        .optional_str(slots.causation_id, names.causation_id)
        .and_then(|s| match s {
            Some(s) => r
                .apply(names.causation_id, rules::uuid(&s))
                .map(Some)
                .ok_or(()),
            None => Ok(None),
        });

    let data = match slots.data {
        None | Some(Value::Null) => {
            r.push("data", "required");
            None
        }
        Some(d) => {
            match event_type {
                Some(t) if supported => {
                    check_data(t, &d, &mut r.errors);
                }
                _ if !d.is_object() => {
                    r.push(
                        "data",
                        format!("must be a JSON object (got {})", rules::kind_of(&d)),
                    );
                }
                _ => {}
            }
            Some(d)
        }
    };

    match (
        event_id,
        event_type,
        event_version,
        source,
        tenant_id,
        environment_id,
        subject,
        occurred_at,
        trace_id,
        span_id,
        correlation_id,
        causation_id,
        data,
    ) {
        (
            Some(event_id),
            Some(event_type),
            Some(event_version),
            Some(source),
            Some(tenant_id),
            Some(environment_id),
            Ok(subject),
            Some(occurred_at),
            Some(trace_id),
            Ok(span_id),
            Some(correlation_id),
            Ok(causation_id),
            Some(data),
        ) if r.errors.is_empty() => Ok(Envelope {
            event_id,
            event_type,
            event_version,
            source,
            tenant_id,
            environment_id,
            subject,
            occurred_at,
            trace_id,
            span_id,
            correlation_id,
            causation_id,
            data,
            extensions: slots.extensions,
        }),
        _ => Err(EnvelopeError::from_errors(r.errors, r.unsupported)),
    }
}

fn required_text(r: &mut Reader, v: Option<Value>, path: &str, max: usize) -> Option<String> {
    r.required_str(v, path)
        .and_then(|s| r.apply(path, rules::text(&s, max)).map(|()| s))
}

/// The wire form of a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Fleet's own envelope JSON (`application/json`).
    Fleet,
    /// CloudEvents 1.0 structured mode (`application/cloudevents+json`).
    CloudEvents,
}

impl Envelope {
    /// Decodes a Fleet JSON envelope, checking every rule (size first, then UTF-8, JSON syntax,
    /// depth, duplicate keys, the fields, and the payload of its type and version).
    pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        build(parse_fleet(bytes)?, &FLEET_NAMES, Vec::new())
    }

    /// Decodes either wire form: `application/cloudevents+json` is CloudEvents; `application/json`
    /// or no content type is sniffed (a `specversion` member without `eventId` means CloudEvents).
    pub fn decode_with_content_type(
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> Result<Envelope, EnvelopeError> {
        Envelope::decode_detect(bytes, content_type).map(|(e, _)| e)
    }

    /// Like [`Envelope::decode_with_content_type`], also telling which wire form it was.
    pub fn decode_detect(
        bytes: &[u8],
        content_type: Option<&str>,
    ) -> Result<(Envelope, Format), EnvelopeError> {
        let declared = match content_type.map(media_type) {
            None => None,
            Some(t) if t == "application/json" => None,
            Some(t) if t == "application/cloudevents+json" => Some(Format::CloudEvents),
            Some(t) => {
                return Err(EnvelopeError::single(
                    ErrorKind::Malformed,
                    "$",
                    format!(
                        "unsupported content type {} (expected application/json or application/cloudevents+json)",
                        crate::error::quoted(&t)
                    ),
                ));
            }
        };
        let map = parse_object(bytes)?;
        let format = declared.unwrap_or_else(|| {
            if map.contains_key("specversion") && !map.contains_key("eventId") {
                Format::CloudEvents
            } else {
                Format::Fleet
            }
        });
        let envelope = match format {
            Format::Fleet => build(Slots::from_map(map), &FLEET_NAMES, Vec::new())?,
            Format::CloudEvents => cloudevents::from_map(map)?,
        };
        Ok((envelope, format))
    }
}

/// The media type of a `Content-Type` value, lowercased, without parameters.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// The size check alone, for callers that read a body in pieces.
pub fn check_size(len: usize) -> Result<(), EnvelopeError> {
    if len > MAX_ENVELOPE_BYTES {
        return Err(EnvelopeError::single(
            ErrorKind::TooLarge,
            "$",
            format!("envelope is {len} bytes, over the {MAX_ENVELOPE_BYTES}-byte limit"),
        ));
    }
    Ok(())
}
