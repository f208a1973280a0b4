//! The [`Envelope`] type: construction, encoding and typed access.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::{Deserialize, Deserializer, Error as _};
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::data::Data;
use crate::error::EnvelopeError;
use crate::event_type::EventType;
use crate::ids::{decimal, emitted_event_id, push_span_hex};
use crate::payload::Payload;

/// One event in Fleet's canonical v1 envelope (DESIGN §3).
///
/// Build one with [`Envelope::new`] (a command from outside) or [`Envelope::caused`] (an event a
/// worker emits); read one with [`Envelope::decode`]. A decoded envelope has passed every rule,
/// including its payload's; [`Envelope::payload`] gives the typed `data`.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Unique id; the inbox dedupes on it and it is the Service Bus `MessageId`.
    pub event_id: Uuid,
    /// Which catalog event this is; routes the message (Service Bus `Subject`).
    pub event_type: EventType,
    /// The payload's schema version.
    pub event_version: u32,
    /// URI reference of the producer, e.g. `/workers/runtime-deployment`.
    pub source: String,
    /// The tenant the event acts for; the tenant guard checks it owns `environment_id`.
    pub tenant_id: String,
    /// The environment the event concerns.
    pub environment_id: String,
    /// The entity, e.g. `services/svc-42`.
    pub subject: Option<String>,
    /// When it happened, UTC.
    pub occurred_at: DateTime<Utc>,
    /// W3C trace-id (32 lowercase hex), shared by everything the event causes.
    pub trace_id: String,
    /// W3C parent-id (16 lowercase hex) of the span that produced the event, when known.
    pub span_id: Option<String>,
    /// Copied unchanged into every event caused by this one.
    pub correlation_id: String,
    /// The `event_id` of the event that caused this one; absent for commands from outside.
    pub causation_id: Option<Uuid>,
    /// The payload object as JSON text; typed view via [`Envelope::payload`], members by name
    /// via `data["serviceId"]`.
    pub data: Data,
    /// Unknown top-level fields, kept so that forwarding an envelope loses nothing.
    pub extensions: Map<String, Value>,
}

/// The names of the envelope's own top-level fields, in the order [`Envelope::encode`] writes them.
pub const FIELD_NAMES: [&str; 13] = [
    "eventId",
    "eventType",
    "eventVersion",
    "source",
    "tenantId",
    "environmentId",
    "subject",
    "occurredAt",
    "traceId",
    "spanId",
    "correlationId",
    "causationId",
    "data",
];

/// How `occurredAt` is written: RFC 3339, `Z`, as many fraction digits as needed (0, 3, 6 or 9).
pub(crate) fn format_time(t: &DateTime<Utc>) -> String {
    let mut out = Vec::with_capacity(30);
    push_time(&mut out, t);
    // Only ASCII digits and separators are written.
    String::from_utf8(out).unwrap_or_else(|_| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
}

/// Serializes a payload timestamp as chrono's own `Serialize` writes it, without chrono's
/// formatter for years 0–9999 (`#[serde(serialize_with = "crate::envelope::serialize_time")]`).
pub(crate) fn serialize_time<S: Serializer>(
    t: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    use chrono::Datelike;
    // Outside those years chrono's own text differs from `format_time`'s fallback.
    if (0..=9999).contains(&t.year()) {
        serializer.serialize_str(&format_time(t))
    } else {
        t.serialize(serializer)
    }
}

/// [`serialize_time`] for an optional timestamp (with `skip_serializing_if = "Option::is_none"`).
pub(crate) fn serialize_opt_time<S: Serializer>(
    t: &Option<DateTime<Utc>>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => serialize_time(t, serializer),
        None => serializer.serialize_none(),
    }
}

/// Appends `t` as `to_rfc3339_opts(SecondsFormat::AutoSi, true)` does: `Z`, and a fraction of 3,
/// 6 or 9 digits only when it is not zero. Years outside 0–9999 take chrono's path.
fn push_time(out: &mut Vec<u8>, t: &DateTime<Utc>) {
    use chrono::{Datelike, Timelike};
    let year = t.year();
    let Ok(year) = u32::try_from(year) else {
        out.extend_from_slice(t.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes());
        return;
    };
    if year > 9999 {
        out.extend_from_slice(t.to_rfc3339_opts(SecondsFormat::AutoSi, true).as_bytes());
        return;
    }
    let digits = |out: &mut Vec<u8>, value: u32, width: u32| {
        for i in (0..width).rev() {
            out.push(b'0' + (value / 10u32.pow(i) % 10) as u8);
        }
    };
    digits(out, year, 4);
    out.push(b'-');
    digits(out, t.month(), 2);
    out.push(b'-');
    digits(out, t.day(), 2);
    out.push(b'T');
    digits(out, t.hour(), 2);
    out.push(b':');
    digits(out, t.minute(), 2);
    out.push(b':');
    // A leap second shows as second 60, its nanoseconds counted past 1,000,000,000.
    let nanos = t.nanosecond();
    digits(out, t.second() + nanos / 1_000_000_000, 2);
    let nanos = nanos % 1_000_000_000;
    if nanos != 0 {
        out.push(b'.');
        if nanos.is_multiple_of(1_000_000) {
            digits(out, nanos / 1_000_000, 3);
        } else if nanos.is_multiple_of(1_000) {
            digits(out, nanos / 1_000, 6);
        } else {
            digits(out, nanos, 9);
        }
    }
    out.push(b'Z');
}

impl Envelope {
    /// A new command or event from outside the fleet: a fresh UUIDv7 `eventId` stamped from `now`,
    /// no causation, the payload's type and version.
    ///
    /// Nothing is checked here; [`Envelope::validate`] checks before sending.
    pub fn new(
        payload: Payload,
        tenant_id: impl Into<String>,
        environment_id: impl Into<String>,
        source: impl Into<String>,
        correlation_id: impl Into<String>,
        trace_id: impl Into<String>,
        now: DateTime<Utc>,
    ) -> Envelope {
        let secs = u64::try_from(now.timestamp()).unwrap_or(0);
        let ts = uuid::Timestamp::from_unix(uuid::NoContext, secs, now.timestamp_subsec_nanos());
        Envelope {
            event_id: Uuid::new_v7(ts),
            event_type: payload.event_type(),
            event_version: payload.event_version(),
            source: source.into(),
            tenant_id: tenant_id.into(),
            environment_id: environment_id.into(),
            subject: None,
            occurred_at: now,
            trace_id: trace_id.into(),
            span_id: None,
            correlation_id: correlation_id.into(),
            causation_id: None,
            data: payload.to_json(),
            extensions: Map::new(),
        }
    }

    /// The `ordinal`-th event `worker` emits while handling `self`: same tenant, environment,
    /// trace and correlation; `causationId` = `self.event_id`; a deterministic `eventId`
    /// ([`emitted_event_id`]) so a re-run emits the same ids; `source` = `/workers/<worker>`.
    ///
    /// `spanId` is left empty: the runtime sets the handler span's id with
    /// [`Envelope::with_span_id`]. Extensions of the trigger are not inherited.
    pub fn caused(
        &self,
        worker: &str,
        ordinal: u32,
        payload: Payload,
        subject: Option<String>,
        now: DateTime<Utc>,
    ) -> Envelope {
        Envelope {
            event_id: emitted_event_id(self.event_id, worker, ordinal),
            event_type: payload.event_type(),
            event_version: payload.event_version(),
            source: format!("/workers/{worker}"),
            tenant_id: self.tenant_id.clone(),
            environment_id: self.environment_id.clone(),
            subject,
            occurred_at: now,
            trace_id: self.trace_id.clone(),
            span_id: None,
            correlation_id: self.correlation_id.clone(),
            causation_id: Some(self.event_id),
            data: payload.to_json(),
            extensions: Map::new(),
        }
    }

    /// Sets `subject`.
    pub fn with_subject(mut self, subject: impl Into<String>) -> Envelope {
        self.subject = Some(subject.into());
        self
    }

    /// Sets `spanId` (16 lowercase hex).
    pub fn with_span_id(mut self, span_id: impl Into<String>) -> Envelope {
        self.span_id = Some(span_id.into());
        self
    }

    /// Reads `data` as the typed payload of this envelope's type and version.
    pub fn payload(&self) -> Result<Payload, EnvelopeError> {
        Payload::from_json(self.event_type, self.event_version, &self.data)
    }

    /// The envelope as compact JSON: the fields in [`FIELD_NAMES`] order (absent optionals
    /// omitted), then the extensions in their original order.
    pub fn encode(&self) -> Vec<u8> {
        // Written by hand rather than through `Serialize` so that `data` is copied as text (the
        // same bytes `serde_json::to_vec(&envelope)` gives, which a test holds it to).
        let mut out = Vec::with_capacity(320 + self.data.as_str().len());
        let mut uuid = uuid::Uuid::encode_buffer();
        out.extend_from_slice(b"{\"eventId\":\"");
        out.extend_from_slice(
            self.event_id
                .hyphenated()
                .encode_lower(&mut uuid)
                .as_bytes(),
        );
        out.extend_from_slice(b"\",\"eventType\":\"");
        out.extend_from_slice(self.event_type.as_str().as_bytes());
        out.extend_from_slice(b"\",\"eventVersion\":");
        out.extend_from_slice(decimal(u64::from(self.event_version), &mut [0; 20]));
        member(&mut out, "source", &self.source);
        member(&mut out, "tenantId", &self.tenant_id);
        member(&mut out, "environmentId", &self.environment_id);
        if let Some(s) = &self.subject {
            member(&mut out, "subject", s);
        }
        out.extend_from_slice(b",\"occurredAt\":\"");
        push_time(&mut out, &self.occurred_at);
        out.push(b'"');
        member(&mut out, "traceId", &self.trace_id);
        if let Some(s) = &self.span_id {
            member(&mut out, "spanId", s);
        }
        member(&mut out, "correlationId", &self.correlation_id);
        if let Some(c) = &self.causation_id {
            out.extend_from_slice(b",\"causationId\":\"");
            out.extend_from_slice(c.hyphenated().encode_lower(&mut uuid).as_bytes());
            out.push(b'"');
        }
        out.extend_from_slice(b",\"data\":");
        out.extend_from_slice(self.data.as_str().as_bytes());
        for (k, v) in &self.extensions {
            out.push(b',');
            json_into(&mut out, k);
            out.push(b':');
            json_into(&mut out, v);
        }
        out.push(b'}');
        out
    }

    /// Checks every rule an envelope must keep, exactly as [`Envelope::decode`] would on the
    /// encoded bytes (including the size limit and duplicate keys between fields and extensions).
    pub fn validate(&self) -> Result<(), EnvelopeError> {
        Envelope::decode(&self.encode()).map(|_| ())
    }

    /// The W3C `traceparent` value: `00-<traceId>-<spanId>-01`, with the parent-id derived from
    /// `eventId` ([`derived_span_id`](crate::derived_span_id)) when `spanId` is absent.
    pub fn traceparent(&self) -> String {
        let mut out = String::with_capacity(55);
        out.push_str("00-");
        out.push_str(&self.trace_id);
        out.push('-');
        match &self.span_id {
            Some(s) => out.push_str(s),
            None => push_span_hex(&mut out, self.event_id),
        }
        out.push_str("-01");
        out
    }
}

/// Appends `,"name":"<value as a JSON string>"`.
fn member(out: &mut Vec<u8>, name: &str, value: &str) {
    out.push(b',');
    out.push(b'"');
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    // Most values need no escaping: copy them as they are. A fold without early exit, which
    // the compiler turns into a vector loop.
    let plain = !value.bytes().fold(false, |hit, b| {
        hit | (b < 0x20) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        json_into(out, value);
    }
}

/// Appends `value` as JSON.
fn json_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    // Strings and `Value`s (string keys, finite numbers) always serialize, and writing to a
    // `Vec` cannot fail.
    let _ = serde_json::to_writer(&mut *out, value);
}

impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(None)?;
        m.serialize_entry("eventId", &self.event_id)?;
        m.serialize_entry("eventType", self.event_type.as_str())?;
        m.serialize_entry("eventVersion", &self.event_version)?;
        m.serialize_entry("source", &self.source)?;
        m.serialize_entry("tenantId", &self.tenant_id)?;
        m.serialize_entry("environmentId", &self.environment_id)?;
        if let Some(s) = &self.subject {
            m.serialize_entry("subject", s)?;
        }
        m.serialize_entry("occurredAt", &format_time(&self.occurred_at))?;
        m.serialize_entry("traceId", &self.trace_id)?;
        if let Some(s) = &self.span_id {
            m.serialize_entry("spanId", s)?;
        }
        m.serialize_entry("correlationId", &self.correlation_id)?;
        if let Some(c) = &self.causation_id {
            m.serialize_entry("causationId", c)?;
        }
        m.serialize_entry("data", &self.data)?;
        for (k, v) in &self.extensions {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Reads an envelope nested in another serde document (a dead-letter export, a fixture) with every
/// rule of [`Envelope::decode`] except the duplicate-key check, which only the byte decoder can
/// make: by the time serde hands over a value, repeated keys are already merged.
impl<'de> Deserialize<'de> for Envelope {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        let bytes = serde_json::to_vec(&value).map_err(D::Error::custom)?;
        Envelope::decode(&bytes).map_err(|e| D::Error::custom(e.to_string().replace('\n', "; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Timelike};
    use proptest::prelude::*;

    fn chrono_text(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::AutoSi, true)
    }

    #[test]
    fn times_are_written_as_chrono_writes_them_at_the_edges() {
        let cases = [
            Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 27, 8, 33, 9).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59).unwrap(),
            Utc.with_ymd_and_hms(0, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
        ];
        for base in cases {
            for nanos in [
                0,
                1,
                999,
                1_000,
                120_000,
                5_000_000,
                999_999_999,
                1_500_000_000,
            ] {
                let Some(t) = base.with_nanosecond(nanos) else {
                    continue;
                };
                assert_eq!(format_time(&t), chrono_text(&t), "{t:?}");
            }
        }
    }

    #[derive(serde::Serialize)]
    struct Fast(#[serde(serialize_with = "serialize_time")] DateTime<Utc>);

    #[derive(serde::Serialize)]
    struct FastOpt(#[serde(serialize_with = "serialize_opt_time")] Option<DateTime<Utc>>);

    #[test]
    fn payload_times_serialize_as_chrono_serializes_them_at_the_edges() {
        for t in [
            Utc.with_ymd_and_hms(2026, 11, 27, 8, 33, 9).unwrap(),
            Utc.with_ymd_and_hms(-1, 6, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(10000, 1, 1, 0, 0, 0).unwrap(),
            Utc.with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
                .unwrap()
                .with_nanosecond(1_500_000_000)
                .unwrap(),
        ] {
            let chrono = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::to_string(&Fast(t)).unwrap(), chrono, "{t:?}");
            assert_eq!(serde_json::to_string(&FastOpt(Some(t))).unwrap(), chrono);
        }
        assert_eq!(serde_json::to_string(&FastOpt(None)).unwrap(), "null");
    }

    proptest! {
        #[test]
        fn payload_times_serialize_as_chrono_serializes_them(
            secs in -62_167_219_200i64..253_402_300_800i64,
            nanos in prop_oneof![
                Just(0u32),
                (0u32..1000).prop_map(|ms| ms * 1_000_000),
                (0u32..1_000_000).prop_map(|us| us * 1_000),
                0u32..1_000_000_000,
            ],
        ) {
            if let Some(t) = DateTime::from_timestamp(secs, nanos) {
                prop_assert_eq!(
                    serde_json::to_string(&Fast(t)).unwrap(),
                    serde_json::to_string(&t).unwrap()
                );
            }
        }

        #[test]
        fn times_are_written_as_chrono_writes_them(
            secs in -62_167_219_200i64..253_402_300_800i64,
            nanos in prop_oneof![
                Just(0u32),
                (0u32..1000).prop_map(|ms| ms * 1_000_000),
                (0u32..1_000_000).prop_map(|us| us * 1_000),
                0u32..2_000_000_000,
            ],
        ) {
            if let Some(t) = DateTime::from_timestamp(secs, nanos) {
                prop_assert_eq!(format_time(&t), chrono_text(&t));
            }
        }
    }
}
