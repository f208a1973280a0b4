//! Per-message telemetry cost: the span, its log lines and the metric updates the runtime
//! performs for every delivered message.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use fleet_telemetry::{
    LogFormat, MessageSpanInfo, Metrics, TelemetryConfig, build_dispatch, current_traceparent,
    message_span, record_disposition,
};

const EVENT_TYPES: [&str; 11] = [
    "RuntimeDeploymentRequested",
    "RuntimeDeploymentCompleted",
    "HealthCheckCompleted",
    "ScalingPolicyApplied",
    "RuntimeDriftDetected",
    "ConfigurationPublished",
    "ConfigurationSynced",
    "SecretRotationRequested",
    "SecretRotated",
    "SecretRotationFailed",
    "RuntimeInventoryUpdated",
];

fn info(traceparent: &str) -> MessageSpanInfo<'_> {
    MessageSpanInfo {
        worker: "runtime-deployment",
        destination: "fleet-events",
        subscription: Some("runtime-deployment"),
        message_id: Some("0190a5d2-6f1e-7c3a-9a52-1b2c3d4e5f60"),
        conversation_id: Some("corr-1"),
        delivery_count: 1,
        traceparent: Some(traceparent),
        trace_id: None,
        tenant_id: Some("tenant-a"),
        event_id: Some("0190a5d2-6f1e-7c3a-9a52-1b2c3d4e5f60"),
        event_type: Some("RuntimeDeploymentRequested"),
    }
}

fn message_path(c: &mut Criterion) {
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    for (name, format, filter) in [
        ("span_only_logs_filtered", LogFormat::Json, "warn"),
        ("span_and_two_json_lines", LogFormat::Json, "info"),
    ] {
        let mut config = TelemetryConfig::new("bench");
        config.log_format = format;
        config.log_filter = filter.to_owned();
        let (dispatch, _guard) = build_dispatch(&config, std::io::sink).expect("subscriber");
        tracing::dispatcher::with_default(&dispatch, || {
            c.bench_function(&format!("message/{name}"), |b| {
                b.iter(|| {
                    let span = message_span(&info(traceparent));
                    let emitted = span.in_scope(|| {
                        tracing::info!(step = 1, "applying step");
                        let emitted = current_traceparent();
                        tracing::info!(durationMs = 3, "message processed");
                        emitted
                    });
                    record_disposition(&span, "complete");
                    black_box(emitted)
                })
            });
        });
    }
}

fn metrics(c: &mut Criterion) {
    let metrics = Metrics::new();
    c.bench_function("metrics/processed_and_latency", |b| {
        b.iter(|| {
            metrics.in_flight_add("runtime-deployment", 1);
            metrics.processed("runtime-deployment", "RuntimeDeploymentRequested");
            metrics.observe_handler_latency(
                "runtime-deployment",
                "RuntimeDeploymentRequested",
                0.012,
            );
            metrics.in_flight_add("runtime-deployment", -1);
        })
    });
    let full = Metrics::new();
    for worker in ["a", "b", "c", "d", "e", "f", "g"] {
        full.register_worker(worker);
        for event_type in EVENT_TYPES {
            full.processed(worker, event_type);
            full.failed(worker, event_type, "Transient");
            full.observe_handler_latency(worker, event_type, 0.1);
        }
    }
    c.bench_function("metrics/render_7_workers_11_types", |b| {
        b.iter(|| black_box(full.render_prometheus().len()))
    });
}

criterion_group!(benches, message_path, metrics);
criterion_main!(benches);
