//! Log lines written inside a message span carry the message context as top-level keys.

mod support;

use fleet_telemetry::{
    LogFormat, MessageSpanInfo, TelemetryConfig, build_dispatch, current_traceparent, message_span,
    record_envelope,
};
use serde_json::Value;
use support::LogBuffer;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT_SPAN_ID: &str = "00f067aa0ba902b7";
const EVENT_ID: &str = "0190a5d2-6f1e-7c3a-9a52-1b2c3d4e5f60";

fn capture(
    format: LogFormat,
    filter: &str,
) -> (
    LogBuffer,
    tracing::Dispatch,
    fleet_telemetry::TelemetryGuard,
) {
    let buffer = LogBuffer::default();
    let mut config = TelemetryConfig::new("test-worker");
    config.log_format = format;
    config.log_filter = filter.to_owned();
    let (dispatch, guard) = build_dispatch(&config, buffer.writer()).expect("subscriber builds");
    (buffer, dispatch, guard)
}

fn full_info<'a>(traceparent: &'a str) -> MessageSpanInfo<'a> {
    MessageSpanInfo {
        worker: "runtime-deployment",
        destination: "fleet-events",
        subscription: Some("runtime-deployment"),
        message_id: Some(EVENT_ID),
        conversation_id: Some("corr-1"),
        delivery_count: 1,
        traceparent: Some(traceparent),
        trace_id: Some(TRACE_ID),
        tenant_id: Some("tenant-a"),
        event_id: Some(EVENT_ID),
        event_type: Some("RuntimeDeploymentRequested"),
    }
}

fn str_of<'a>(line: &'a Value, key: &str) -> Option<&'a str> {
    line.get(key).and_then(Value::as_str)
}

fn is_span_id(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        v.len() == 16 && v.bytes().all(|b| b.is_ascii_hexdigit()) && v != "0000000000000000"
    })
}

#[test]
fn every_line_inside_a_message_span_carries_the_six_context_fields() {
    let (buffer, dispatch, _guard) = capture(LogFormat::Json, "info");
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    tracing::dispatcher::with_default(&dispatch, || {
        let span = message_span(&full_info(&traceparent));
        span.in_scope(|| {
            tracing::info!(step = 2, "applying step");
            tracing::info_span!("control_plane_call").in_scope(|| {
                tracing::warn!(attempt = 1_u64, "slow response");
            });
        });
        tracing::info!("between messages");
    });

    let lines = buffer.json_lines();
    assert_eq!(lines.len(), 3, "{}", buffer.text());
    let mut span_ids = Vec::new();
    for line in &lines[..2] {
        assert_eq!(str_of(line, "traceId"), Some(TRACE_ID), "{line}");
        assert!(is_span_id(str_of(line, "spanId")), "{line}");
        assert_ne!(str_of(line, "spanId"), Some(PARENT_SPAN_ID), "{line}");
        assert_eq!(str_of(line, "correlationId"), Some("corr-1"), "{line}");
        assert_eq!(str_of(line, "tenantId"), Some("tenant-a"), "{line}");
        assert_eq!(str_of(line, "eventId"), Some(EVENT_ID), "{line}");
        assert_eq!(str_of(line, "worker"), Some("runtime-deployment"), "{line}");
        assert_eq!(
            str_of(line, "eventType"),
            Some("RuntimeDeploymentRequested"),
            "{line}"
        );
        span_ids.push(str_of(line, "spanId").map(str::to_owned));
    }
    // The nested line names its own (child) span, still in the same trace and message.
    assert_ne!(span_ids[0], span_ids[1]);
    assert_eq!(str_of(&lines[0], "message"), Some("applying step"));
    assert_eq!(lines[0]["step"], 2);
    assert_eq!(str_of(&lines[0], "level"), Some("INFO"));
    assert_eq!(str_of(&lines[0], "span"), Some("fleet.message"));
    assert_eq!(str_of(&lines[1], "span"), Some("control_plane_call"));
    assert_eq!(str_of(&lines[1], "level"), Some("WARN"));
    assert_eq!(lines[1]["attempt"], 1);
    assert!(str_of(&lines[0], "timestamp").is_some_and(|t| t.ends_with('Z')));

    let outside = &lines[2];
    for key in [
        "traceId",
        "spanId",
        "correlationId",
        "tenantId",
        "eventId",
        "worker",
    ] {
        assert!(
            outside.get(key).is_none(),
            "{key} leaked outside the span: {outside}"
        );
    }
}

#[test]
fn fields_recorded_after_decoding_reach_later_lines() {
    let (buffer, dispatch, _guard) = capture(LogFormat::Json, "info");
    tracing::dispatcher::with_default(&dispatch, || {
        let span = message_span(&MessageSpanInfo {
            worker: "configuration-sync",
            destination: "fleet-events",
            delivery_count: 3,
            ..MessageSpanInfo::default()
        });
        span.in_scope(|| tracing::info!("received"));
        record_envelope(
            &span,
            "tenant-b",
            EVENT_ID,
            "ConfigurationPublished",
            "corr-9",
        );
        span.in_scope(|| tracing::info!("decoded"));
    });
    let lines = buffer.json_lines();
    assert_eq!(str_of(&lines[0], "worker"), Some("configuration-sync"));
    assert!(lines[0].get("tenantId").is_none());
    assert!(is_span_id(str_of(&lines[0], "spanId")));
    assert_eq!(str_of(&lines[1], "tenantId"), Some("tenant-b"));
    assert_eq!(str_of(&lines[1], "eventId"), Some(EVENT_ID));
    assert_eq!(str_of(&lines[1], "correlationId"), Some("corr-9"));
    assert_eq!(
        str_of(&lines[1], "eventType"),
        Some("ConfigurationPublished")
    );
    // Same span before and after: the context was added, not a new span started.
    assert_eq!(lines[0]["spanId"], lines[1]["spanId"]);
    assert_eq!(lines[0]["traceId"], lines[1]["traceId"]);
}

#[test]
fn an_event_field_never_overwrites_the_context() {
    let (buffer, dispatch, _guard) = capture(LogFormat::Json, "info");
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    tracing::dispatcher::with_default(&dispatch, || {
        message_span(&full_info(&traceparent)).in_scope(|| {
            tracing::info!(worker = "impostor", level = 7_u64, "collides");
        });
    });
    let line = &buffer.json_lines()[0];
    assert_eq!(str_of(line, "worker"), Some("runtime-deployment"));
    assert_eq!(str_of(line, "field.worker"), Some("impostor"));
    assert_eq!(str_of(line, "level"), Some("INFO"));
    assert_eq!(line["field.level"], 7);
}

#[test]
fn a_quiet_log_filter_still_traces_the_message() {
    let (buffer, dispatch, _guard) = capture(LogFormat::Json, "warn");
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    let emitted = tracing::dispatcher::with_default(&dispatch, || {
        message_span(&full_info(&traceparent)).in_scope(|| {
            tracing::info!("filtered out");
            tracing::warn!("kept");
            current_traceparent()
        })
    });
    let lines = buffer.json_lines();
    assert_eq!(lines.len(), 1, "{}", buffer.text());
    assert_eq!(str_of(&lines[0], "message"), Some("kept"));
    assert_eq!(str_of(&lines[0], "tenantId"), Some("tenant-a"));
    let emitted = emitted.expect("the message span exists even at warn");
    assert!(emitted.starts_with(&format!("00-{TRACE_ID}-")), "{emitted}");
}

#[test]
fn pretty_lines_show_worker_event_and_message() {
    let (buffer, dispatch, _guard) = capture(LogFormat::Pretty, "info");
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-01");
    tracing::dispatcher::with_default(&dispatch, || {
        message_span(&full_info(&traceparent)).in_scope(|| {
            tracing::info!(step = "apply", "step done");
        });
    });
    let text = buffer.text();
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains(" INFO [runtime-deployment RuntimeDeploymentRequested 0190a5d2] step done step=apply trace=4bf92f35"),
        "{text}"
    );
    assert!(
        !text.contains('\x1b'),
        "no colours when writing to a buffer: {text:?}"
    );
}

#[test]
fn an_invalid_filter_is_rejected_with_its_value() {
    let mut config = TelemetryConfig::new("w");
    config.log_filter = "info,[[[".to_owned();
    let err = build_dispatch(&config, LogBuffer::default().writer()).unwrap_err();
    assert_eq!(err.kind(), fleet_telemetry::TelemetryErrorKind::Config);
    assert!(err.to_string().contains("info,[[["), "{err}");
}

#[test]
fn an_unsampled_parent_still_yields_ids_for_logs_and_emitted_events() {
    let (buffer, dispatch, _guard) = capture(LogFormat::Json, "info");
    let traceparent = format!("00-{TRACE_ID}-{PARENT_SPAN_ID}-00");
    let emitted = tracing::dispatcher::with_default(&dispatch, || {
        message_span(&full_info(&traceparent)).in_scope(|| {
            tracing::info!("not sampled");
            current_traceparent()
        })
    });
    let emitted = emitted.expect("ids exist without sampling");
    assert!(emitted.starts_with(&format!("00-{TRACE_ID}-")), "{emitted}");
    assert!(
        emitted.ends_with("-00"),
        "the sampling decision propagates: {emitted}"
    );
    let line = &buffer.json_lines()[0];
    assert_eq!(str_of(line, "traceId"), Some(TRACE_ID));
    assert!(is_span_id(str_of(line, "spanId")));
    assert_ne!(str_of(line, "spanId"), Some(PARENT_SPAN_ID));
}

#[test]
fn a_message_without_trace_context_starts_its_own_trace_even_inside_another_span() {
    let (_buffer, dispatch, _guard) = capture(LogFormat::Json, "info");
    let (outer, inner) = tracing::dispatcher::with_default(&dispatch, || {
        tracing::info_span!("receive_loop").in_scope(|| {
            let outer = current_traceparent().expect("outer span has ids");
            let inner = message_span(&MessageSpanInfo {
                worker: "w",
                destination: "t",
                ..MessageSpanInfo::default()
            })
            .in_scope(current_traceparent)
            .expect("message span has ids");
            (outer, inner)
        })
    });
    let trace_of = |tp: &str| tp.split('-').nth(1).map(str::to_owned);
    assert_ne!(trace_of(&outer), trace_of(&inner), "{outer} vs {inner}");
}
