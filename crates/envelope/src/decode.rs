//! Decoding: from parsed JSON members to a checked [`Envelope`], collecting every error.
//!
//! Both wire forms (Fleet JSON and CloudEvents) fill the same [`Slots`] and share [`build`]; only
//! the names used in error paths differ, so a CloudEvents sender reads `tenantid: required`.

use serde_json::{Map, Value};

use crate::data::Data;
use crate::envelope::{Envelope, FIELD_NAMES};
use crate::error::{EnvelopeError, ErrorKind, FieldError};
use crate::event_type::EventType;
use crate::parse::{parse_fleet, parse_object};
use crate::payload::rules::Fact;
use crate::payload::{check_data, rules_pass, unsupported_version};
use crate::rules::{self, MAX_ID_CHARS, MAX_TEXT_CHARS};
use crate::schema::stream::{CAPTURE_ROOT, Scanner};
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
            match field_index(&key) {
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
            Some(Data::from(d))
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

/// The common case in one pass: a valid Fleet JSON envelope whose `data` follows its
/// `eventType` and `eventVersion` (as [`Envelope::encode`] writes them), read by the strict
/// scanner of [`crate::schema::stream`], `data` checked as it is read and kept as text. `None`
/// for anything else — a problem, or just something the scanner leaves to the full decode — which
/// then runs and gives the exact verdict and every error. So this path can only make decoding
/// faster, never change its answer.
fn decode_fast(bytes: &[u8]) -> Option<Envelope> {
    if bytes.len() > MAX_ENVELOPE_BYTES {
        return None;
    }
    let text = std::str::from_utf8(bytes).ok()?;
    let mut s = Scanner::new(text);
    if !s.eat(b'{') {
        return None;
    }
    let mut fields: [Option<Member<'_>>; DATA] = [None; DATA];
    let mut data = None;
    let mut extensions = Map::new();
    s.members(|s, key| {
        match field_index(key) {
            Some(DATA) => {
                if data.is_some() {
                    return None;
                }
                data = Some(fast_data(s, &fields)?);
            }
            Some(i) => {
                if fields[i].is_some() {
                    return None;
                }
                fields[i] = Some(Member::read(s)?);
            }
            None => {
                if extensions.contains_key(key) {
                    return None;
                }
                let value = s.value()?;
                extensions.insert(key.to_owned(), value);
            }
        }
        Some(())
    })?;
    if !s.at_end() {
        return None;
    }
    // The rules of `build`, for values that are known to be of the right JSON type.
    let required = |i: usize| match fields[i] {
        Some(Member::Str(v)) => Some(v),
        _ => None,
    };
    let optional = |i: usize| match fields[i] {
        None | Some(Member::Null) => Some(None),
        Some(Member::Str(v)) => Some(Some(v)),
        Some(Member::Int(_)) => None,
    };
    let text_ok = |v: &str, max: usize| rules::text(v, max).is_ok();
    let (event_type, event_version) = type_and_version(&fields)?;
    let event_id = rules::uuid(required(0)?).ok()?;
    let source = required(3).filter(|v| rules::uri_reference(v).is_ok())?;
    let tenant_id = required(4).filter(|v| text_ok(v, MAX_ID_CHARS))?;
    let environment_id = required(5).filter(|v| text_ok(v, MAX_ID_CHARS))?;
    let subject = optional(6)?;
    if subject.is_some_and(|v| !text_ok(v, MAX_TEXT_CHARS)) {
        return None;
    }
    let occurred_at = rules::timestamp(required(7)?).ok()?;
    let trace_id = required(8).filter(|v| rules::trace_id(v).is_ok())?;
    let span_id = optional(9)?;
    if span_id.is_some_and(|v| rules::span_id(v).is_err()) {
        return None;
    }
    let correlation_id = required(10).filter(|v| text_ok(v, MAX_ID_CHARS))?;
    let causation_id = match optional(11)? {
        Some(v) => Some(rules::uuid(v).ok()?),
        None => None,
    };
    Some(Envelope {
        event_id,
        event_type,
        event_version,
        source: source.to_owned(),
        tenant_id: tenant_id.to_owned(),
        environment_id: environment_id.to_owned(),
        subject: subject.map(str::to_owned),
        occurred_at,
        trace_id: trace_id.to_owned(),
        span_id: span_id.map(str::to_owned),
        correlation_id: correlation_id.to_owned(),
        causation_id,
        data: data?,
        extensions,
    })
}

/// The index of `key` in [`FIELD_NAMES`], by a `match` the compiler turns into length and byte
/// tests rather than a string comparison per name.
fn field_index(key: &str) -> Option<usize> {
    Some(match key {
        "eventId" => 0,
        "eventType" => 1,
        "eventVersion" => 2,
        "source" => 3,
        "tenantId" => 4,
        "environmentId" => 5,
        "subject" => 6,
        "occurredAt" => 7,
        "traceId" => 8,
        "spanId" => 9,
        "correlationId" => 10,
        "causationId" => 11,
        "data" => 12,
        _ => return None,
    })
}

/// The index of `data` in [`FIELD_NAMES`]; the fields before it are read as [`Member`]s.
const DATA: usize = FIELD_NAMES.len() - 1;

/// A top-level field's value as the fast path reads it; other JSON types go to the full decode.
#[derive(Clone, Copy)]
enum Member<'a> {
    Str(&'a str),
    Null,
    Int(u64),
}

impl<'a> Member<'a> {
    fn read(s: &mut Scanner<'a>) -> Option<Member<'a>> {
        s.ws();
        match s.peek()? {
            b'"' => s.string().map(Member::Str),
            b'n' => s.null().then_some(Member::Null),
            _ => s.unsigned().map(Member::Int),
        }
    }
}

/// `eventType` and `eventVersion`, when both are valid and the version is supported.
fn type_and_version(fields: &[Option<Member<'_>>; DATA]) -> Option<(EventType, u32)> {
    let (Some(Member::Str(t)), Some(Member::Int(v))) = (fields[1], fields[2]) else {
        return None;
    };
    let event_type: EventType = t.parse().ok()?;
    let version = u32::try_from(v).ok().filter(|v| *v >= 1)?;
    event_type
        .supports_version(version)
        .then_some((event_type, version))
}

/// Reads and checks `data` against the payload of the type and version already read.
fn fast_data(s: &mut Scanner<'_>, fields: &[Option<Member<'_>>; DATA]) -> Option<Data> {
    let (event_type, version) = type_and_version(fields)?;
    let node = crate::schema::compiled(event_type).ok()?;
    s.ws();
    let start = s.pos();
    let fact = s.check(node, CAPTURE_ROOT)?;
    let passes = matches!(fact, Fact::Object(_)) && rules_pass(event_type, &fact);
    passes.then(|| Data::checked(s.slice(start, s.pos()), event_type, version))
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
        if let Some(envelope) = decode_fast(bytes) {
            return Ok(envelope);
        }
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
        if declared.is_none()
            && let Some(envelope) = decode_fast(bytes)
        {
            // It has a valid `eventId`, so sniffing would say Fleet JSON too.
            return Ok((envelope, Format::Fleet));
        }
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

#[cfg(test)]
mod tests {
    //! The fast path may only ever answer like the full decode: these tests hold it to that.

    use proptest::prelude::*;
    use serde_json::{Value, json};

    use super::*;
    use crate::examples::sample_envelope;

    /// The full decode, without the fast path.
    fn full(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        build(parse_fleet(bytes)?, &FLEET_NAMES, Vec::new())
    }

    #[test]
    fn field_index_is_the_position_in_field_names() {
        for (i, name) in FIELD_NAMES.iter().enumerate() {
            assert_eq!(field_index(name), Some(i), "{name}");
        }
        for other in ["eventid", "", "data ", "extension"] {
            assert_eq!(field_index(other), None, "{other}");
        }
    }

    #[test]
    fn every_sample_takes_the_fast_path_and_matches_the_full_decode() {
        for t in EventType::ALL {
            let body = sample_envelope(t).encode();
            let fast = decode_fast(&body).unwrap_or_else(|| panic!("{t}: fast path refused"));
            assert!(fast.data.is_checked_as(t, 1), "{t}");
            assert_eq!(FIELD_NAMES[DATA], "data");
            assert_eq!(fast, full(&body).unwrap(), "{t}");
        }
    }

    #[test]
    fn the_runtime_entry_point_takes_the_fast_path_too() {
        let body = sample_envelope(EventType::HealthCheckCompleted).encode();
        let (e, format) = Envelope::decode_detect(&body, Some("application/json")).unwrap();
        assert_eq!(format, Format::Fleet);
        assert!(e.data.is_checked_as(EventType::HealthCheckCompleted, 1));
    }

    #[test]
    fn data_the_fast_path_leaves_alone_still_gets_every_error() {
        let mut v: Value =
            serde_json::from_slice(&sample_envelope(EventType::HealthCheckCompleted).encode())
                .unwrap();
        v["data"]["probes"][0]["attempts"] = json!(0);
        v["data"]["serviceId"] = json!("");
        let body = serde_json::to_vec(&v).unwrap();
        assert!(decode_fast(&body).is_none());
        let err = Envelope::decode(&body).unwrap_err().to_string();
        assert!(err.contains("data.serviceId: must not be empty"), "{err}");
        assert!(err.contains("data.probes[0].attempts"), "{err}");
    }

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            (-3i64..70_000).prop_map(|n| json!(n)),
            Just(json!(u64::MAX)),
            Just(json!(i64::MIN)),
            Just(json!(0.5)),
            Just(json!(-1.5)),
            Just(json!(1e300)),
            Just(json!(3.0)),
            prop::sample::select(vec![
                "",
                "x",
                "2026-01-31T12:00:00Z",
                "2026-01-31T11:59:00Z",
                "2026-01-31T12:00:00+01:00",
                "2026-02-30T12:00:00Z",
                "healthy",
                "degraded",
                "succeeded",
                "failed",
                "removed",
                "updated",
                "added",
                "liveness",
                "image",
                "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
                "not-a-uuid",
                "é\u{1F600}",
                "tab\tinside",
                "quote\"and\\slash",
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "00000000000000000000000000000000",
                "00f067aa0ba902b7",
                "XYZ",
                "/workers/runtime-health",
                "has space",
                "tenant-contoso",
                "HealthCheckCompleted",
                "ScalingPolicyApplied",
                "Unknown",
            ])
            .prop_map(|s| json!(s)),
            Just(json!("a".repeat(300))),
        ]
    }

    fn json_value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(3, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::btree_map("[a-zA-Z]{1,12}", inner, 0..4)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    /// Sets (or, with `None`, removes) member `key` of the object at `at`: the envelope for
    /// `$`, `data` for "", or a member of `data`.
    fn mutate(envelope: &mut Value, at: &str, key: &str, value: Option<Value>) {
        let target = match at {
            "$" => Some(envelope),
            "" => envelope.get_mut("data"),
            _ => envelope.get_mut("data").and_then(|d| d.get_mut(at)),
        };
        let target = match target {
            Some(Value::Array(items)) => items.first_mut(),
            other => other,
        };
        if let Some(Value::Object(m)) = target {
            match value {
                Some(v) => {
                    m.insert(key.to_owned(), v);
                }
                None => {
                    m.shift_remove(key);
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

        /// Whatever the fast path accepts, the full decode accepts too, as the same envelope.
        #[test]
        fn the_fast_path_never_accepts_what_the_full_decode_refuses(
            type_index in 0..EventType::ALL.len(),
            mutations in prop::collection::vec(
                (
                    prop::sample::select(vec!["$", "$", "", "", "", "window", "probes", "observed", "metric", "values", "ref"]),
                    prop::sample::select(vec![
                        "serviceId", "status", "previousStatus", "start", "end", "kind", "attempts",
                        "fromReplicas", "toReplicas", "outcome", "failedStep", "error", "change",
                        "observed", "changedFields", "values", "ref", "version", "replicas", "image",
                        "firstSeenAt", "lastSeenAt", "completedAt", "startedAt", "newVersion",
                        "previousVersion", "window", "probes", "metric", "extra",
                        "eventId", "eventType", "eventVersion", "source", "tenantId",
                        "environmentId", "subject", "occurredAt", "traceId", "spanId",
                        "correlationId", "causationId", "data",
                    ]),
                    proptest::option::weighted(0.85, json_value()),
                ),
                1..4,
            ),
            duplicate in any::<bool>(),
        ) {
            let t = EventType::ALL[type_index];
            let mut v: Value = serde_json::from_slice(&sample_envelope(t).encode()).unwrap();
            for (at, key, value) in mutations {
                mutate(&mut v, at, key, value);
            }
            let mut body = serde_json::to_string(&v).unwrap();
            if duplicate {
                // Repeat the first member of `data` inside it.
                if let Some(start) = body.find("\"data\":{\"") {
                    let inner = start + "\"data\":{".len();
                    if let Some(end) = body[inner..].find(',') {
                        let member = body[inner..inner + end].to_owned();
                        body.insert_str(inner, &format!("{member},"));
                    }
                }
            }
            let slow = full(body.as_bytes());
            if let Some(fast) = decode_fast(body.as_bytes()) {
                prop_assert!(slow.is_ok(), "fast accepted, full refused {}: {}", body, slow.unwrap_err());
                prop_assert_eq!(fast, slow.unwrap(), "{}", body);
            }
        }
    }
}
