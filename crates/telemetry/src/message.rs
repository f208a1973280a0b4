//! The per-message span: OpenTelemetry messaging attributes, parented on the envelope's W3C
//! trace context, and the W3C value handed to events emitted while handling it.

use std::cell::Cell;
use std::collections::HashMap;

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Name of the tracing span opened for every delivered message (the exported OpenTelemetry
/// span is renamed `process <destination>` per the messaging conventions).
pub const MESSAGE_SPAN_NAME: &str = "fleet.message";
/// Target of the message span. The subscriber always enables it, whatever the log filter says,
/// so traces and log context never depend on log verbosity.
pub const MESSAGE_SPAN_TARGET: &str = "fleet_telemetry::message";

/// Values of `messaging.servicebus.disposition_status`, as named by the semantic conventions.
pub mod disposition {
    /// The message was completed (settled successfully, including retries scheduled as copies).
    pub const COMPLETE: &str = "complete";
    /// The lock was released so the message is redelivered (e.g. at shutdown).
    pub const ABANDON: &str = "abandon";
    /// The message was moved to the dead-letter sub-queue.
    pub const DEAD_LETTER: &str = "dead_letter";
    /// The message was deferred.
    pub const DEFER: &str = "defer";
}

/// What the runtime knows about a delivered message when it opens the span. Everything but
/// `worker` and `destination` is optional because a malformed message may carry none of it.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageSpanInfo<'a> {
    /// Worker name, e.g. `runtime-deployment`.
    pub worker: &'a str,
    /// Topic or queue the message was received from (`messaging.destination.name`).
    pub destination: &'a str,
    /// Subscription name when receiving from a topic.
    pub subscription: Option<&'a str>,
    /// Broker `MessageId` (the envelope's `eventId` for Fleet publishers).
    pub message_id: Option<&'a str>,
    /// Broker `CorrelationId`, i.e. the envelope's `correlationId`.
    pub conversation_id: Option<&'a str>,
    /// Broker delivery count (1 on first delivery).
    pub delivery_count: u32,
    /// W3C `traceparent` from the application properties (or the CloudEvents extension).
    pub traceparent: Option<&'a str>,
    /// The envelope's `traceId`, used to stay in the publisher's trace when no valid
    /// `traceparent` came with the message.
    pub trace_id: Option<&'a str>,
    /// The envelope's `tenantId`.
    pub tenant_id: Option<&'a str>,
    /// The envelope's `eventId`.
    pub event_id: Option<&'a str>,
    /// The envelope's `eventType`.
    pub event_type: Option<&'a str>,
}

thread_local! {
    /// Trace id the next root span started on this thread must use; see [`FleetIdGenerator`].
    static NEXT_TRACE_ID: Cell<Option<TraceId>> = const { Cell::new(None) };
}

/// Random ids, except that a message arriving with an envelope `traceId` but no usable
/// `traceparent` keeps that trace id: the SDK offers no other way to start a root span in a
/// given trace, and without it the emitted events would silently join a new trace.
#[derive(Debug, Default)]
pub(crate) struct FleetIdGenerator {
    random: RandomIdGenerator,
}

impl IdGenerator for FleetIdGenerator {
    fn new_trace_id(&self) -> TraceId {
        NEXT_TRACE_ID
            .with(Cell::take)
            .unwrap_or_else(|| self.random.new_trace_id())
    }

    fn new_span_id(&self) -> SpanId {
        self.random.new_span_id()
    }
}

/// Opens the span for one delivered message. It is a root in the local span tree, parented
/// (in OpenTelemetry) on `info.traceparent`; failing that it starts a new root in the trace
/// `info.trace_id`; failing that, a new trace. Enter it (or `.instrument()` the handling
/// future) so log lines and [`current_traceparent`] see it.
pub fn message_span(info: &MessageSpanInfo<'_>) -> Span {
    let span = tracing::info_span!(
        target: MESSAGE_SPAN_TARGET,
        parent: None,
        "fleet.message",
        otel.name = %format_args!("process {}", info.destination),
        otel.kind = "consumer",
        otel.status_code = Empty,
        otel.status_description = Empty,
        messaging.system = "servicebus",
        messaging.operation = "process",
        messaging.operation.type = "process",
        messaging.operation.name = "process",
        messaging.destination.name = info.destination,
        messaging.destination.subscription.name = info.subscription,
        messaging.message.id = info.message_id,
        messaging.message.conversation_id = info.conversation_id,
        messaging.servicebus.message.delivery_count = i64::from(info.delivery_count),
        messaging.servicebus.disposition_status = Empty,
        error.type = Empty,
        fleet.worker = info.worker,
        fleet.tenant_id = info.tenant_id,
        fleet.event_id = info.event_id,
        fleet.event_type = info.event_type,
    );
    if span.is_disabled() {
        return span;
    }
    let parent = info.traceparent.and_then(parse_traceparent);
    match parent {
        Some(cx) => {
            // Fails only when no OpenTelemetry layer is installed; the span still logs.
            let _ = span.set_parent(cx);
        }
        None => {
            if let Some(trace_id) = info.trace_id.and_then(parse_trace_id) {
                NEXT_TRACE_ID.with(|next| next.set(Some(trace_id)));
                // Starting the span now makes the id generator consume the override while
                // it is still set on this thread.
                let _ = span.context();
                NEXT_TRACE_ID.with(|next| next.set(None));
            }
        }
    }
    span
}

/// Records fields learnt after the span was opened (the envelope is decoded inside it).
pub fn record_envelope(
    span: &Span,
    tenant_id: &str,
    event_id: &str,
    event_type: &str,
    correlation_id: &str,
) {
    span.record("fleet.tenant_id", tenant_id);
    span.record("fleet.event_id", event_id);
    span.record("fleet.event_type", event_type);
    span.record("messaging.message.conversation_id", correlation_id);
}

/// Records how the message was settled (`messaging.servicebus.disposition_status`); use the
/// values in [`disposition`].
pub fn record_disposition(span: &Span, disposition: &str) {
    span.record("messaging.servicebus.disposition_status", disposition);
}

/// Marks the span failed: OpenTelemetry status `ERROR` and `error.type` (an error kind such as
/// `Transient` or a dead-letter reason, never a message that could hold secrets).
pub fn record_failure(span: &Span, error_type: &str) {
    span.record("error.type", error_type);
    span.record("otel.status_code", "error");
    span.record("otel.status_description", error_type);
}

/// The W3C `traceparent` of the current span, for events emitted while handling a message:
/// same trace id, with the processing span as parent. `None` outside any span or when
/// telemetry is not initialised.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&Span::current())
}

/// The W3C `traceparent` of `span` (see [`current_traceparent`]).
pub fn traceparent_of(span: &Span) -> Option<String> {
    let cx = span.context();
    let otel_span = cx.span();
    let sc = otel_span.span_context();
    if !sc.is_valid() {
        return None;
    }
    Some(format!(
        "00-{}-{}-{:02x}",
        sc.trace_id(),
        sc.span_id(),
        sc.trace_flags().to_u8()
    ))
}

/// The current span's OpenTelemetry ids as lowercase hex (`traceId`, `spanId`), if any.
pub fn current_trace_ids() -> Option<(String, String)> {
    let cx = opentelemetry::Context::current();
    let otel_span = cx.span();
    let sc = otel_span.span_context();
    sc.is_valid()
        .then(|| (sc.trace_id().to_string(), sc.span_id().to_string()))
}

fn parse_traceparent(value: &str) -> Option<opentelemetry::Context> {
    let carrier = HashMap::from([("traceparent".to_owned(), value.trim().to_owned())]);
    let cx = TraceContextPropagator::new().extract(&carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

fn parse_trace_id(value: &str) -> Option<TraceId> {
    let valid = value.len() == 32
        && value
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let id = TraceId::from_hex(value).ok().filter(|_| valid)?;
    (id != TraceId::INVALID).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_valid_w3c_trace_ids_are_accepted() {
        assert!(parse_trace_id("4bf92f3577b34da6a3ce929d0e0e4736").is_some());
        assert!(parse_trace_id("00000000000000000000000000000000").is_none());
        assert!(parse_trace_id("4BF92F3577B34DA6A3CE929D0E0E4736").is_none());
        assert!(parse_trace_id("4bf92f3577b34da6").is_none());
        assert!(parse_trace_id("not-hex-not-hex-not-hex-not-hex-").is_none());
    }

    #[test]
    fn malformed_traceparents_are_ignored() {
        for value in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        ] {
            assert!(parse_traceparent(value).is_none(), "{value:?}");
        }
        assert!(
            parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01").is_some()
        );
    }

    #[test]
    fn no_traceparent_without_telemetry() {
        assert_eq!(current_traceparent(), None);
    }
}
