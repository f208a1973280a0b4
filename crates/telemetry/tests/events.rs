//! Each internal event writes its log line and moves its metric in the same call.

mod support;

use std::time::Duration;

use fleet_telemetry::events::{
    DedupeHit, EventEmitted, HandlerFailed, MessageAbandoned, MessageDeadLettered,
    MessageProcessed, MessageRetried, OutboxPublishFailed, OutboxPublished, TenantRejected,
    TimerFired,
};
use fleet_telemetry::{
    LogFormat, MessageSpanInfo, Metrics, TelemetryConfig, build_dispatch, message_span,
};
use serde_json::Value;
use support::LogBuffer;

const WORKER: &str = "runtime-deployment";
const EVENT_TYPE: &str = "RuntimeDeploymentRequested";

/// Runs `emit` inside a message span with debug logging; returns the log lines and metrics text.
fn emitted(emit: impl FnOnce(&Metrics)) -> (Vec<Value>, String) {
    let buffer = LogBuffer::default();
    let mut config = TelemetryConfig::new(WORKER);
    config.log_format = LogFormat::Json;
    config.log_filter = "debug".to_owned();
    let (dispatch, _guard) = build_dispatch(&config, buffer.writer()).expect("subscriber");
    let metrics = Metrics::new();
    tracing::dispatcher::with_default(&dispatch, || {
        let span = message_span(&MessageSpanInfo {
            worker: WORKER,
            destination: "fleet-events",
            tenant_id: Some("tenant-a"),
            event_id: Some("evt-1"),
            ..MessageSpanInfo::default()
        });
        span.in_scope(|| emit(&metrics));
    });
    (buffer.json_lines(), metrics.render_prometheus())
}

fn one_line(lines: &[Value]) -> &Value {
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = &lines[0];
    assert_eq!(line["worker"], WORKER, "{line}");
    assert_eq!(line["tenantId"], "tenant-a", "{line}");
    line
}

#[track_caller]
fn assert_metric(text: &str, line: &str) {
    assert!(
        text.lines().any(|l| l == line),
        "missing {line:?} in\n{text}"
    );
}

#[test]
fn message_processed_logs_counts_and_observes_latency() {
    let (lines, text) = emitted(|m| {
        MessageProcessed {
            worker: WORKER,
            event_type: EVENT_TYPE,
            duration: Duration::from_millis(40),
            emitted: 2,
        }
        .emit(m);
    });
    let line = one_line(&lines);
    assert_eq!(line["level"], "INFO");
    assert_eq!(line["message"], "message processed");
    assert_eq!(line["durationMs"], 40);
    assert_eq!(line["emitted"], 2);
    assert_metric(
        &text,
        r#"fleet_messages_processed_total{worker="runtime-deployment",event_type="RuntimeDeploymentRequested"} 1"#,
    );
    assert_metric(
        &text,
        r#"fleet_handler_duration_seconds_bucket{le="0.05",worker="runtime-deployment",event_type="RuntimeDeploymentRequested"} 1"#,
    );
}

#[test]
fn handler_failed_logs_the_kind_and_counts_it() {
    let (lines, text) = emitted(|m| {
        HandlerFailed {
            worker: WORKER,
            event_type: EVENT_TYPE,
            kind: "Throttled",
            error: "ARM answered 429",
            attempt: 2,
            duration: Duration::from_millis(5),
        }
        .emit(m);
    });
    let line = one_line(&lines);
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["errorKind"], "Throttled");
    assert_eq!(line["error"], "ARM answered 429");
    assert_eq!(line["attempt"], 2);
    assert_metric(
        &text,
        r#"fleet_messages_failed_total{worker="runtime-deployment",event_type="RuntimeDeploymentRequested",kind="Throttled"} 1"#,
    );
    assert_metric(
        &text,
        r#"fleet_handler_duration_seconds_count{worker="runtime-deployment",event_type="RuntimeDeploymentRequested"} 1"#,
    );
}

#[test]
fn message_retried_logs_the_backoff_and_counts_it() {
    let (lines, text) = emitted(|m| {
        MessageRetried {
            worker: WORKER,
            event_type: EVENT_TYPE,
            next_attempt: 3,
            max_attempts: 5,
            delay: Duration::from_millis(1500),
        }
        .emit(m);
    });
    let line = one_line(&lines);
    assert_eq!(line["message"], "retry scheduled");
    assert_eq!(line["nextAttempt"], 3);
    assert_eq!(line["maxAttempts"], 5);
    assert_eq!(line["delayMs"], 1500);
    assert_metric(
        &text,
        r#"fleet_messages_retried_total{worker="runtime-deployment",event_type="RuntimeDeploymentRequested"} 1"#,
    );
}

#[test]
fn dead_letter_logs_at_error_with_reason_and_counts_by_reason() {
    let (lines, text) = emitted(|m| {
        MessageDeadLettered {
            worker: WORKER,
            reason: "MaxRetriesExceeded",
            description: "5 attempts failed",
            attempts: 5,
        }
        .emit(m);
    });
    let line = one_line(&lines);
    assert_eq!(line["level"], "ERROR");
    assert_eq!(line["reason"], "MaxRetriesExceeded");
    assert_eq!(line["description"], "5 attempts failed");
    assert_eq!(line["attempts"], 5);
    assert_metric(
        &text,
        r#"fleet_messages_dead_lettered_total{worker="runtime-deployment",reason="MaxRetriesExceeded"} 1"#,
    );
}

#[test]
fn dedupe_hit_logs_and_counts() {
    let (lines, text) = emitted(|m| DedupeHit { worker: WORKER }.emit(m));
    assert_eq!(one_line(&lines)["eventId"], "evt-1");
    assert_metric(
        &text,
        r#"fleet_dedupe_hits_total{worker="runtime-deployment"} 1"#,
    );
}

#[test]
fn tenant_rejection_is_a_security_warning_and_is_counted() {
    let (lines, text) = emitted(|m| {
        TenantRejected {
            worker: WORKER,
            reason: "TenantMismatch",
            claimed_tenant_id: "tenant-a",
            environment_id: "env-7",
            owner_tenant_id: Some("tenant-b"),
        }
        .emit(m);
    });
    let line = one_line(&lines);
    assert_eq!(line["level"], "WARN");
    assert_eq!(line["security"], true);
    assert_eq!(line["reason"], "TenantMismatch");
    assert_eq!(line["claimedTenantId"], "tenant-a");
    assert_eq!(line["environmentId"], "env-7");
    assert_eq!(line["ownerTenantId"], "tenant-b");
    assert_metric(
        &text,
        r#"fleet_tenant_rejections_total{worker="runtime-deployment",reason="TenantMismatch"} 1"#,
    );
}

#[test]
fn the_remaining_events_log_and_count() {
    let (lines, text) = emitted(|m| {
        MessageAbandoned {
            worker: WORKER,
            reason: "shutdown",
        }
        .emit(m);
        EventEmitted {
            worker: WORKER,
            event_type: "RuntimeDeploymentCompleted",
            emitted_event_id: "evt-2",
        }
        .emit(m);
        OutboxPublished {
            worker: WORKER,
            count: 3,
        }
        .emit(m);
        OutboxPublishFailed {
            worker: WORKER,
            error: "ServiceBusy",
        }
        .emit(m);
        TimerFired {
            worker: WORKER,
            timer: "reconcile",
            window_start: "2026-01-01T00:00:00Z",
        }
        .emit(m);
    });
    let messages: Vec<&str> = lines.iter().filter_map(|l| l["message"].as_str()).collect();
    assert_eq!(
        messages,
        [
            "message abandoned for redelivery",
            "event emitted",
            "outbox messages published",
            "outbox publish failed; will retry",
            "timer fired",
        ]
    );
    assert_eq!(lines[1]["emittedEventId"], "evt-2");
    assert_eq!(lines[4]["timer"], "reconcile");
    for line in [
        r#"fleet_messages_abandoned_total{worker="runtime-deployment"} 1"#,
        r#"fleet_events_emitted_total{worker="runtime-deployment",event_type="RuntimeDeploymentCompleted"} 1"#,
        r#"fleet_outbox_published_total{worker="runtime-deployment"} 3"#,
        r#"fleet_outbox_publish_failures_total{worker="runtime-deployment"} 1"#,
        r#"fleet_timer_fires_total{worker="runtime-deployment",timer="reconcile"} 1"#,
    ] {
        assert_metric(&text, line);
    }
}
