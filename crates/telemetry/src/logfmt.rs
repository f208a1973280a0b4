//! Log line formatting. Every line written inside a message span carries the message context
//! (`traceId`, `spanId`, `correlationId`, `tenantId`, `eventId`, `worker`, `eventType`) as
//! top-level keys, so a log query never has to know about span nesting.

use std::fmt;

use chrono::{SecondsFormat, Utc};
use serde_json::{Number, Value};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use crate::message::{MESSAGE_SPAN_NAME, MESSAGE_SPAN_TARGET, current_trace_ids};

/// Keys the formatter writes itself; an event field with one of these names is written as
/// `field.<name>` so it can never overwrite the context.
const RESERVED: [&str; 12] = [
    "timestamp",
    "level",
    "target",
    "message",
    "traceId",
    "spanId",
    "correlationId",
    "tenantId",
    "eventId",
    "worker",
    "eventType",
    "span",
];

/// Message context captured from the message span's fields, stored in the span's extensions so
/// the formatter can read it for any event nested (at any depth) inside the span.
#[derive(Debug, Default, Clone)]
struct MessageContext {
    worker: Option<String>,
    tenant_id: Option<String>,
    event_id: Option<String>,
    event_type: Option<String>,
    correlation_id: Option<String>,
}

impl Visit for MessageContext {
    fn record_str(&mut self, field: &Field, value: &str) {
        let slot = match field.name() {
            "fleet.worker" => &mut self.worker,
            "fleet.tenant_id" => &mut self.tenant_id,
            "fleet.event_id" => &mut self.event_id,
            "fleet.event_type" => &mut self.event_type,
            "messaging.message.conversation_id" => &mut self.correlation_id,
            _ => return,
        };
        *slot = Some(value.to_owned());
    }

    fn record_debug(&mut self, _field: &Field, _value: &dyn fmt::Debug) {}
}

/// Captures [`MessageContext`] when a message span opens and when its fields are recorded later.
#[derive(Debug, Default)]
pub(crate) struct ContextLayer;

impl<S> Layer<S> for ContextLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let meta = attrs.metadata();
        if meta.name() != MESSAGE_SPAN_NAME || meta.target() != MESSAGE_SPAN_TARGET {
            return;
        }
        let mut context = MessageContext::default();
        attrs.record(&mut context);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(context);
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id)
            && let Some(context) = span.extensions_mut().get_mut::<MessageContext>()
        {
            values.record(context);
        }
    }
}

/// An event's own fields, in order, with `message` split out.
#[derive(Default)]
struct EventFields {
    message: Option<String>,
    fields: Vec<(&'static str, Value)>,
}

impl EventFields {
    fn push(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(match value {
                Value::String(s) => s,
                other => other.to_string(),
            });
        } else {
            self.fields.push((field.name(), value));
        }
    }
}

impl Visit for EventFields {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::String(value.to_owned()));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::Number(value.into()));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::Number(value.into()));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        let value =
            Number::from_f64(value).map_or_else(|| Value::String(value.to_string()), Value::Number);
        self.push(field, value);
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, Value::String(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, Value::String(format!("{value:?}")));
    }
}

/// Everything one log line shows, collected once and rendered as JSON or pretty text.
struct LogRecord {
    level: Level,
    target: &'static str,
    span: Option<&'static str>,
    trace_ids: Option<(String, String)>,
    context: MessageContext,
    event: EventFields,
}

impl LogRecord {
    fn collect<S, N>(ctx: &FmtContext<'_, S, N>, event: &Event<'_>) -> LogRecord
    where
        S: Subscriber + for<'a> LookupSpan<'a>,
        N: for<'a> FormatFields<'a> + 'static,
    {
        let mut fields = EventFields::default();
        event.record(&mut fields);
        let mut span_name = None;
        let mut context = MessageContext::default();
        if let Some(scope) = ctx.event_scope() {
            for span in scope {
                span_name.get_or_insert(span.name());
                if let Some(found) = span.extensions().get::<MessageContext>() {
                    context = found.clone();
                    break;
                }
            }
        }
        LogRecord {
            level: *event.metadata().level(),
            target: event.metadata().target(),
            span: span_name,
            // The OpenTelemetry layer attaches the entered span's context to the thread, so the
            // current context is the innermost entered span: the right `spanId` for this line.
            trace_ids: current_trace_ids(),
            context,
            event: fields,
        }
    }

    fn context_pairs(&self) -> impl Iterator<Item = (&'static str, &str)> {
        let c = &self.context;
        let (trace_id, span_id) = match &self.trace_ids {
            Some((t, s)) => (Some(t.as_str()), Some(s.as_str())),
            None => (None, None),
        };
        [
            ("traceId", trace_id),
            ("spanId", span_id),
            ("correlationId", c.correlation_id.as_deref()),
            ("tenantId", c.tenant_id.as_deref()),
            ("eventId", c.event_id.as_deref()),
            ("worker", c.worker.as_deref()),
            ("eventType", c.event_type.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
    }

    /// Writes the JSON object straight into a byte buffer: no intermediate map, one allocation
    /// for the whole line in the common case.
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        fn entry(
            out: &mut Vec<u8>,
            key: &str,
            value: &impl serde::Serialize,
        ) -> serde_json::Result<()> {
            if out.len() > 1 {
                out.push(b',');
            }
            serde_json::to_writer(&mut *out, key)?;
            out.push(b':');
            serde_json::to_writer(&mut *out, value)
        }
        out.push(b'{');
        let timestamp = Utc::now().to_rfc3339_opts(SecondsFormat::Micros, true);
        entry(out, "timestamp", &timestamp)?;
        entry(out, "level", &self.level.as_str())?;
        entry(out, "target", &self.target)?;
        entry(
            out,
            "message",
            &self.event.message.as_deref().unwrap_or_default(),
        )?;
        for (key, value) in self.context_pairs() {
            entry(out, key, &value)?;
        }
        if let Some(span) = self.span {
            entry(out, "span", &span)?;
        }
        for (key, value) in &self.event.fields {
            if RESERVED.contains(key) {
                entry(out, &format!("field.{key}"), value)?;
            } else {
                entry(out, key, value)?;
            }
        }
        out.extend_from_slice(b"}\n");
        Ok(())
    }

    fn write_pretty(&self, out: &mut impl fmt::Write, ansi: bool) -> fmt::Result {
        let now = Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true);
        let (colour, reset) = match (ansi, self.level) {
            (false, _) => ("", ""),
            (true, Level::ERROR) => ("\x1b[31m", "\x1b[0m"),
            (true, Level::WARN) => ("\x1b[33m", "\x1b[0m"),
            (true, Level::INFO) => ("\x1b[32m", "\x1b[0m"),
            (true, _) => ("\x1b[2m", "\x1b[0m"),
        };
        write!(out, "{now} {colour}{:>5}{reset} ", self.level.as_str())?;
        if let Some(worker) = &self.context.worker {
            write!(out, "[{worker}")?;
            if let Some(event_type) = &self.context.event_type {
                write!(out, " {event_type}")?;
            }
            if let Some(event_id) = &self.context.event_id {
                write!(out, " {}", event_id.get(..8).unwrap_or(event_id))?;
            }
            out.write_str("] ")?;
        } else {
            write!(out, "{}: ", self.target)?;
        }
        out.write_str(self.event.message.as_deref().unwrap_or_default())?;
        for (key, value) in &self.event.fields {
            match value {
                Value::String(s) => write!(out, " {key}={s}")?,
                other => write!(out, " {key}={other}")?,
            }
        }
        if let Some((trace_id, _)) = &self.trace_ids {
            write!(out, " trace={}", trace_id.get(..8).unwrap_or(trace_id))?;
        }
        out.write_char('\n')
    }
}

/// Span fields are never printed: both formats read the message context from [`ContextLayer`],
/// so formatting every span's fields into a string (the `fmt` layer's default) is skipped.
#[derive(Debug, Default)]
pub(crate) struct NoSpanFields;

impl<'writer> FormatFields<'writer> for NoSpanFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        _writer: Writer<'writer>,
        _fields: R,
    ) -> fmt::Result {
        Ok(())
    }
}

/// JSON lines: one object per event (see `docs/telemetry.md` for the shape).
#[derive(Debug, Default)]
pub(crate) struct JsonFormat;

impl<S, N> FormatEvent<S, N> for JsonFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut line = Vec::with_capacity(512);
        LogRecord::collect(ctx, event)
            .write_json(&mut line)
            .map_err(|_| fmt::Error)?;
        // serde_json only ever writes UTF-8.
        writer.write_str(std::str::from_utf8(&line).map_err(|_| fmt::Error)?)
    }
}

/// Single human-readable lines for local runs: `time LEVEL [worker eventType eventId] message k=v`.
#[derive(Debug, Default)]
pub(crate) struct PrettyFormat {
    pub(crate) ansi: bool,
}

impl<S, N> FormatEvent<S, N> for PrettyFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        LogRecord::collect(ctx, event).write_pretty(&mut writer, self.ansi)
    }
}
